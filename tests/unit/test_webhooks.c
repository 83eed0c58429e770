/* test_webhooks.c — webhook URL parsing, the X-Castgate-Signature value and
 * the retry backoff (SPEC API-10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broadcast/webhooks.h"

static void test_webhook_urls_parse_or_are_refused(void **state)
{
    (void)state;
    const struct {
        const char *url;
        int rc;
        const char *host;
        int port;
        const char *path;
    } cases[] = {
        {"http://example.com", 0, "example.com", 80, "/"},
        {"http://example.com/", 0, "example.com", 80, "/"},
        {"HTTP://Example.com:8080/hooks/castgate?x=1&y=2", 0, "Example.com", 8080, "/hooks/castgate?x=1&y=2"},
        {"http://127.0.0.1:9/a#frag", 0, "127.0.0.1", 9, "/a"},
        {"http://[::1]:8000/h", 0, "::1", 8000, "/h"},
        {"http://host?q=1", 0, "host", 80, "/?q=1"},
        {"https://example.com/h", -2, NULL, 0, NULL},
        {"ftp://example.com/h", -2, NULL, 0, NULL},
        {"example.com/h", -1, NULL, 0, NULL},
        {"http://", -1, NULL, 0, NULL},
        {"http://:80/", -1, NULL, 0, NULL},
        {"http://host:0/", -1, NULL, 0, NULL},
        {"http://host:65536/", -1, NULL, 0, NULL},
        {"http://host:80x/", -1, NULL, 0, NULL},
        {"http://user@host/", -1, NULL, 0, NULL},
        {"http://host/a b", -1, NULL, 0, NULL},
        {"http://host/a\r\nX-Injected: 1", -1, NULL, 0, NULL},
        {"http://[::1/", -1, NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct webhook_url u;
        int rc = webhooks_parse_url(cases[i].url, &u);
        if (rc != cases[i].rc)
            fail_msg("case %zu %s: got %d want %d", i, cases[i].url, rc, cases[i].rc);
        if (rc == 0) {
            assert_string_equal(u.host, cases[i].host);
            assert_int_equal(u.port, cases[i].port);
            assert_string_equal(u.path, cases[i].path);
        }
    }
}

static void test_signature_is_hmac_sha256_hex_of_the_body(void **state)
{
    (void)state;
    /* RFC 4231 test case 2. */
    char sig[72];
    const char *data = "what do ya want for nothing?";
    webhooks_signature("Jefe", data, strlen(data), sig);
    assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* The body length is honoured (bodies are not NUL-terminated strings to it). */
    webhooks_signature("Jefe", "what do ya want for nothing?XYZ", strlen(data), sig);
    assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    webhooks_signature("jefe", data, strlen(data), sig);
    assert_string_not_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_backoff_doubles_then_caps(void **state)
{
    (void)state;
    const int want[][2] = {{0, 1}, {1, 1}, {2, 2}, {3, 4}, {4, 8}, {10, 512}, {12, 2048},
                           {13, WEBHOOKS_BACKOFF_CAP_SEC}, {14, WEBHOOKS_BACKOFF_CAP_SEC},
                           {1000, WEBHOOKS_BACKOFF_CAP_SEC}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (webhooks_backoff_sec(want[i][0]) != want[i][1])
            fail_msg("attempts %d: got %d want %d", want[i][0], webhooks_backoff_sec(want[i][0]), want[i][1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_webhook_urls_parse_or_are_refused),
        cmocka_unit_test(test_signature_is_hmac_sha256_hex_of_the_body),
        cmocka_unit_test(test_backoff_doubles_then_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
