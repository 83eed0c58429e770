/* test_player.c — the player page's escaping and templating, and the static
 * file table that never maps a request path to the file system (SPEC §7). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/player.h"

static void test_html_escape_neutralises_markup(void **state)
{
    (void)state;
    const struct {
        const char *in, *out;
    } cases[] = {
        {"Math 101", "Math 101"},
        {"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
        {"a & b \"c\" 'd'", "a &amp; b &quot;c&quot; &#39;d&#39;"},
        {"Zoë ü", "Zoë ü"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        size_t n = player_html_escape(cases[i].in, out, sizeof out);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
}

static void test_html_escape_truncates_on_character_boundaries(void **state)
{
    (void)state;
    char out[8];
    /* "&amp;" does not fit after "abcd": never half an entity. */
    player_html_escape("abcd&efgh", out, sizeof out);
    assert_string_equal(out, "abcd");
    /* "ëëëë" is 8 bytes; 7 fit: keep whole characters only. */
    player_html_escape("\xc3\xab\xc3\xab\xc3\xab\xc3\xab", out, sizeof out);
    assert_string_equal(out, "\xc3\xab\xc3\xab\xc3\xab");
    /* A complete character before the cut is kept. */
    player_html_escape("\xc3\xab\xc3\xab&", out, sizeof out);
    assert_string_equal(out, "\xc3\xab\xc3\xab");
    player_html_escape("abcde\xe2\x82\xac", out, sizeof out); /* euro sign needs 3, 2 fit */
    assert_string_equal(out, "abcde");
    char one[1];
    assert_int_equal(player_html_escape("x", one, sizeof one), 0);
    assert_string_equal(one, "");
}

static void test_render_fills_every_placeholder(void **state)
{
    (void)state;
    size_t len = 0;
    char *html = player_render("<title>{{TITLE}}</title><h1>{{TITLE}}</h1><script>{{CONFIG}}</script>{{OTHER}}",
                               "T&amp;", "{\"a\":1}", &len);
    assert_non_null(html);
    assert_string_equal(html, "<title>T&amp;</title><h1>T&amp;</h1><script>{\"a\":1}</script>{{OTHER}}");
    assert_int_equal(len, strlen(html));
    free(html);
    html = player_render("no placeholders", "x", "y", NULL);
    assert_string_equal(html, "no placeholders");
    free(html);
    /* A title containing a placeholder is not expanded again. */
    html = player_render("{{TITLE}}", "{{CONFIG}}", "SECRET", NULL);
    assert_string_equal(html, "{{CONFIG}}");
    free(html);
}

static void test_script_json_cannot_close_the_script_element(void **state)
{
    (void)state;
    char *s = player_script_json("{\"title\":\"</script><script>alert(1)</script>&\"}");
    assert_non_null(s);
    assert_null(strstr(s, "<"));
    assert_null(strstr(s, ">"));
    assert_null(strstr(s, "&"));
    assert_string_equal(s, "{\"title\":\"\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\\u0026\"}");
    free(s);
}

static void test_static_files_are_an_exact_whitelist(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(player_start(NULL, err, sizeof err), 0);
    const struct player_asset *js = player_static_lookup("player.js");
    assert_non_null(js);
    assert_true(js->len > 100);
    assert_string_equal(js->content_type, "text/javascript; charset=utf-8");
    assert_int_equal(strlen(js->etag), 18);
    assert_non_null(player_static_lookup("player.css"));
    const char *refused[] = {"", "player.html", "../player.js", "./player.js", "player.js/",
                             "hls.js/dist/../dist/hls.min.js", "/etc/passwd", "..", "hls.js",
                             "PLAYER.JS", "player.js%00", NULL};
    for (int i = 0; refused[i]; i++)
        if (player_static_lookup(refused[i]))
            fail_msg("\"%s\" was served", refused[i]);
    assert_null(player_static_lookup(NULL));
    player_stop();
    assert_null(player_static_lookup("player.js"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html_escape_neutralises_markup),
        cmocka_unit_test(test_html_escape_truncates_on_character_boundaries),
        cmocka_unit_test(test_render_fills_every_placeholder),
        cmocka_unit_test(test_script_json_cannot_close_the_script_element),
        cmocka_unit_test(test_static_files_are_an_exact_whitelist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
