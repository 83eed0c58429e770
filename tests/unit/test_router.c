/* test_router.c — path patterns, captures, 404 vs 405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/router.h"

static void h1(void *r, const struct route_params *p) { (void)r; (void)p; }
static void h2(void *r, const struct route_params *p) { (void)r; (void)p; }
static void h3(void *r, const struct route_params *p) { (void)r; (void)p; }

struct match_case {
    const char *method, *path;
    enum router_result want;
    route_handler handler;
    const char *param_name, *param_value;
};

static void test_router_table(void **state)
{
    (void)state;
    struct router *r = router_new();
    assert_int_equal(router_add(r, "GET", "/v2/apps/me/video-rooms/{id}", h1), 0);
    assert_int_equal(router_add(r, "PATCH", "/v2/apps/me/video-rooms/{id}", h2), 0);
    assert_int_equal(router_add(r, "GET", "/hls/rooms/{id}/{file}", h3), 0);
    assert_int_equal(router_add(r, "GET", "/static/{*rest}", h3), 0);
    assert_int_equal(router_add(r, "GET", "no-slash", h3), -1);
    static const struct match_case cases[] = {
        {"GET", "/v2/apps/me/video-rooms/12", ROUTER_FOUND, h1, "id", "12"},
        {"HEAD", "/v2/apps/me/video-rooms/12", ROUTER_FOUND, h1, "id", "12"},
        {"PATCH", "/v2/apps/me/video-rooms/abc", ROUTER_FOUND, h2, "id", "abc"},
        {"DELETE", "/v2/apps/me/video-rooms/12", ROUTER_BAD_METHOD, NULL, NULL, NULL},
        {"GET", "/v2/apps/me/video-rooms", ROUTER_NO_PATH, NULL, NULL, NULL},
        {"GET", "/v2/apps/me/video-rooms/", ROUTER_NO_PATH, NULL, NULL, NULL},
        {"GET", "/v2/apps/me/video-rooms/12/", ROUTER_NO_PATH, NULL, NULL, NULL},
        {"GET", "/hls/rooms/7/index.m3u8", ROUTER_FOUND, h3, "file", "index.m3u8"},
        {"GET", "/hls/rooms/7/a%2Fb", ROUTER_FOUND, h3, "file", "a/b"},
        {"GET", "/hls/rooms/7/%zz", ROUTER_BAD_PATH, NULL, NULL, NULL},
        {"GET", "/hls/rooms/7/%00", ROUTER_BAD_PATH, NULL, NULL, NULL},
        {"GET", "/hls/rooms/7/%4", ROUTER_BAD_PATH, NULL, NULL, NULL},
        {"GET", "/static/hls.js/dist/x.js", ROUTER_FOUND, h3, "rest", "hls.js/dist/x.js"},
        {"GET", "/", ROUTER_NO_PATH, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        route_handler h = NULL;
        struct route_params p;
        char allow[64];
        enum router_result got = router_match(r, cases[i].method, cases[i].path, &h, &p, allow, sizeof allow);
        if (got != cases[i].want)
            fail_msg("case %zu %s %s: got %d want %d", i, cases[i].method, cases[i].path, got, cases[i].want);
        if (got == ROUTER_FOUND) {
            assert_ptr_equal(h, cases[i].handler);
            assert_string_equal(route_param(&p, cases[i].param_name), cases[i].param_value);
        }
        if (got == ROUTER_BAD_METHOD)
            assert_string_equal(allow, "GET, PATCH");
    }
    const char *m, *pat;
    assert_int_equal(router_route_at(r, 0, &m, &pat), 0);
    assert_string_equal(pat, "/v2/apps/me/video-rooms/{id}");
    assert_int_equal(router_route_at(r, 4, &m, &pat), -1);
    router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_router_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
