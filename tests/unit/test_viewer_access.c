/* test_viewer_access.c — viewer session counting (SPEC PKG-8), session keys,
 * the hash table and the join rate limiter behind the viewer endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/access_codes.h"
#include "api/viewer_access.h"
#include "api/viewer_common.h"

#define W VIEWER_SESSION_WINDOW_MS

struct left_log {
    int n;
    int64_t rooms[16];
    uint64_t keys[16];
    int counts[16];
};

static void on_left(void *arg, int64_t room, uint64_t key, const struct viewer_session_info *info,
                    int count)
{
    (void)info;
    struct left_log *l = arg;
    if (l->n < 16) {
        l->rooms[l->n] = room;
        l->keys[l->n] = key;
        l->counts[l->n] = count;
    }
    l->n++;
}

/* One step of a session scenario: at time t, session key of room fetches a
 * playlist (max = maxParticipants); expect the result and the room count. */
struct touch_step {
    long long t;
    int64_t room;
    uint64_t key;
    int max;
    enum viewer_touch_result want;
    int want_count;
};

static void run_steps(const struct touch_step *steps, size_t n)
{
    struct viewer_sessions *s = viewer_sessions_new(100);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        int count = -1;
        enum viewer_touch_result got = viewer_sessions_touch(s, steps[i].room, steps[i].key, steps[i].max,
                                                             NULL, steps[i].t, &count);
        if (got != steps[i].want || count != steps[i].want_count)
            fail_msg("step %zu: got result %d count %d, want %d count %d", i, got, count, steps[i].want,
                     steps[i].want_count);
    }
    viewer_sessions_free(s);
}

static void test_sessions_count_distinct_viewers_per_room(void **state)
{
    (void)state;
    const struct touch_step steps[] = {
        {1000, 1, 0xA, 0, VIEWER_TOUCH_NEW, 1},
        {2000, 1, 0xA, 0, VIEWER_TOUCH_EXISTING, 1}, /* the same viewer reloading */
        {3000, 1, 0xB, 0, VIEWER_TOUCH_NEW, 2},
        {3000, 2, 0xA, 0, VIEWER_TOUCH_NEW, 1},      /* same key, other room: other session */
        {4000, 1, 0xC, 0, VIEWER_TOUCH_NEW, 3},
    };
    run_steps(steps, sizeof steps / sizeof steps[0]);
}

static void test_max_participants_refuses_only_new_sessions(void **state)
{
    (void)state;
    const struct touch_step steps[] = {
        {0, 7, 1, 2, VIEWER_TOUCH_NEW, 1},
        {10, 7, 2, 2, VIEWER_TOUCH_NEW, 2},
        {20, 7, 3, 2, VIEWER_TOUCH_FULL, 2},        /* third viewer refused */
        {30, 7, 1, 2, VIEWER_TOUCH_EXISTING, 2},    /* watchers keep watching */
        {40, 7, 2, 2, VIEWER_TOUCH_EXISTING, 2},
        {50, 8, 3, 2, VIEWER_TOUCH_NEW, 1},         /* the limit is per room */
        /* Viewer 2 stops fetching; once its 30 s are over a seat is free. */
        {40 + W + 1, 7, 3, 2, VIEWER_TOUCH_NEW, 1}, /* viewer 1 idle too by now */
    };
    run_steps(steps, sizeof steps / sizeof steps[0]);
}

static void test_session_window_is_thirty_seconds(void **state)
{
    (void)state;
    struct viewer_sessions *s = viewer_sessions_new(100);
    int count;
    assert_int_equal(viewer_sessions_touch(s, 5, 1, 0, NULL, 0, &count), VIEWER_TOUCH_NEW);
    assert_int_equal(viewer_sessions_touch(s, 5, 2, 0, NULL, 10000, &count), VIEWER_TOUCH_NEW);
    assert_int_equal(viewer_sessions_room_count(s, 5, 10000), 2);
    assert_int_equal(viewer_sessions_room_count(s, 5, W - 1), 2);
    assert_int_equal(viewer_sessions_room_count(s, 5, W), 1);       /* key 1 last seen at 0 */
    assert_int_equal(viewer_sessions_room_count(s, 5, 10000 + W), 0);
    assert_int_equal(viewer_sessions_room_count(s, 6, 0), 0);      /* unknown room */
    /* A viewer coming back after its window counts again (folded into one join). */
    assert_int_equal(viewer_sessions_touch(s, 5, 1, 0, NULL, W + 5000, &count), VIEWER_TOUCH_EXISTING);
    assert_int_equal(count, 2);
    viewer_sessions_free(s);
}

static void test_expiry_reports_each_leave_once(void **state)
{
    (void)state;
    struct viewer_sessions *s = viewer_sessions_new(100);
    int count;
    viewer_sessions_touch(s, 1, 0x11, 0, NULL, 0, &count);
    viewer_sessions_touch(s, 1, 0x12, 0, NULL, 20000, &count);
    viewer_sessions_touch(s, 2, 0x21, 0, NULL, 5000, &count);
    struct left_log log = {0};
    assert_int_equal(viewer_sessions_expire(s, W - 1, on_left, &log), 0);
    assert_int_equal(log.n, 0);
    assert_int_equal(viewer_sessions_expire(s, W + 5000, on_left, &log), 2);
    assert_int_equal(log.n, 2);
    for (int i = 0; i < 2; i++) {
        if (log.rooms[i] == 1) {
            assert_int_equal(log.keys[i], 0x11);
            assert_int_equal(log.counts[i], 1); /* 0x12 is still there */
        } else {
            assert_int_equal(log.rooms[i], 2);
            assert_int_equal(log.keys[i], 0x21);
            assert_int_equal(log.counts[i], 0);
        }
    }
    /* Nothing is reported twice. */
    assert_int_equal(viewer_sessions_expire(s, W + 5000, on_left, &log), 0);
    assert_int_equal(viewer_sessions_expire(s, 20000 + W, on_left, &log), 1);
    assert_int_equal(log.n, 3);
    assert_int_equal(viewer_sessions_room_count(s, 1, 20000 + W), 0);
    /* After everyone left, a viewer joining is a new session again. */
    assert_int_equal(viewer_sessions_touch(s, 1, 0x11, 0, NULL, 100000, &count), VIEWER_TOUCH_NEW);
    viewer_sessions_free(s);
}

static void test_session_table_ceiling_refuses_instead_of_growing(void **state)
{
    (void)state;
    struct viewer_sessions *s = viewer_sessions_new(3);
    int count;
    assert_int_equal(viewer_sessions_touch(s, 1, 1, 0, NULL, 0, &count), VIEWER_TOUCH_NEW);
    assert_int_equal(viewer_sessions_touch(s, 1, 2, 0, NULL, 0, &count), VIEWER_TOUCH_NEW);
    assert_int_equal(viewer_sessions_touch(s, 2, 3, 0, NULL, 0, &count), VIEWER_TOUCH_NEW);
    assert_int_equal(viewer_sessions_touch(s, 2, 4, 0, NULL, 0, &count), VIEWER_TOUCH_NOMEM);
    assert_int_equal(viewer_sessions_touch(s, 1, 1, 0, NULL, 1, &count), VIEWER_TOUCH_EXISTING);
    viewer_sessions_expire(s, W + 1, NULL, NULL);
    assert_int_equal(viewer_sessions_touch(s, 2, 4, 0, NULL, W + 2, &count), VIEWER_TOUCH_NEW);
    viewer_sessions_free(s);
}

static void test_session_keys_follow_the_identity_rules(void **state)
{
    (void)state;
    const uint8_t salt[16] = "0123456789abcdef";
    const uint8_t salt2[16] = "fedcba9876543210";
    uint64_t jti_only = viewer_session_key(salt, "JTI1", NULL, "1.2.3.4", "UA");
    /* Token alone: address and browser do not matter. */
    assert_int_equal(jti_only, viewer_session_key(salt, "JTI1", NULL, "9.9.9.9", "other"));
    /* One token shared by two tabs with different sids: two sessions. */
    uint64_t tab1 = viewer_session_key(salt, "JTI1", "tab1", "1.2.3.4", "UA");
    uint64_t tab2 = viewer_session_key(salt, "JTI1", "tab2", "1.2.3.4", "UA");
    assert_int_not_equal(tab1, tab2);
    assert_int_not_equal(tab1, jti_only);
    /* sid without a token. */
    assert_int_equal(viewer_session_key(salt, NULL, "tab1", "1.1.1.1", "a"),
                     viewer_session_key(salt, NULL, "tab1", "2.2.2.2", "b"));
    assert_int_not_equal(viewer_session_key(salt, NULL, "tab1", NULL, NULL), tab1);
    /* Neither: address + user agent. */
    uint64_t anon = viewer_session_key(salt, NULL, NULL, "1.2.3.4", "UA");
    assert_int_equal(anon, viewer_session_key(salt, "", NULL, "1.2.3.4", "UA"));
    assert_int_not_equal(anon, viewer_session_key(salt, NULL, NULL, "1.2.3.5", "UA"));
    assert_int_not_equal(anon, viewer_session_key(salt, NULL, NULL, "1.2.3.4", "UA2"));
    /* Keyed: another process salt gives other keys (nothing raw is kept). */
    assert_int_not_equal(anon, viewer_session_key(salt2, NULL, NULL, "1.2.3.4", "UA"));
}

static void test_sid_syntax(void **state)
{
    (void)state;
    const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"abc", true},
        {"A-Z_09", true},
        {"0123456789012345678901234567890123456789012345678901234567890123", true}, /* 64 */
        {"01234567890123456789012345678901234567890123456789012345678901234", false}, /* 65 */
        {"", false},
        {NULL, false},
        {"a b", false},
        {"a&token=x", false},
        {"ü", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (viewer_sid_valid(cases[i].s) != cases[i].ok)
            fail_msg("case %zu: \"%s\"", i, cases[i].s ? cases[i].s : "(null)");
}

struct item {
    struct vmap_entry e;
    int value;
};

static void free_item(struct vmap_entry *e) { free(e); }

static bool is_odd(struct vmap_entry *e, void *arg)
{
    (void)arg;
    return ((struct item *)e)->value % 2 == 1;
}

static void test_vmap_put_get_remove_sweep_and_ceiling(void **state)
{
    (void)state;
    struct vmap m;
    assert_int_equal(vmap_init(&m, 1000), 0);
    for (int i = 0; i < 1000; i++) {
        struct item *x = calloc(1, sizeof *x);
        x->e.key = (uint64_t)i * 7919u;
        x->value = i;
        assert_int_equal(vmap_put(&m, &x->e), 0);
    }
    struct item extra = {{1, NULL}, -1};
    assert_int_equal(vmap_put(&m, &extra.e), -1); /* ceiling */
    assert_int_equal(m.count, 1000);
    assert_true(m.nbuckets >= 1000); /* grew */
    for (int i = 0; i < 1000; i++) {
        struct item *x = (struct item *)vmap_get(&m, (uint64_t)i * 7919u);
        assert_non_null(x);
        assert_int_equal(x->value, i);
    }
    assert_null(vmap_get(&m, 1));
    struct item *five = (struct item *)vmap_get(&m, 5u * 7919u);
    vmap_remove(&m, &five->e);
    free(five);
    assert_null(vmap_get(&m, 5u * 7919u));
    assert_int_equal(vmap_sweep(&m, is_odd, NULL, free_item), 499);
    assert_int_equal(m.count, 500);
    assert_non_null(vmap_get(&m, 4u * 7919u));
    assert_null(vmap_get(&m, 3u * 7919u));
    vmap_free(&m, free_item);
}

static void test_vmap_keeps_entries_with_equal_keys(void **state)
{
    (void)state;
    struct vmap m;
    vmap_init(&m, 10);
    struct item a = {{42, NULL}, 1}, b = {{42, NULL}, 2}, c = {{43, NULL}, 3};
    vmap_put(&m, &a.e);
    vmap_put(&m, &b.e);
    vmap_put(&m, &c.e);
    int seen = 0;
    for (struct vmap_entry *e = vmap_get(&m, 42); e; e = vmap_next_same(e))
        seen |= ((struct item *)e)->value;
    assert_int_equal(seen, 3);
    vmap_free(&m, NULL);
}

static void test_join_rate_limit_is_per_address_and_window(void **state)
{
    (void)state;
    struct vrate r;
    assert_int_equal(vrate_init(&r, ACCESS_CODE_JOIN_LIMIT, ACCESS_CODE_JOIN_WINDOW_MS, 100), 0);
    int retry;
    for (int i = 0; i < ACCESS_CODE_JOIN_LIMIT; i++)
        assert_true(vrate_hit(&r, 1, 1000 + i, &retry));
    assert_false(vrate_hit(&r, 1, 2000, &retry));
    assert_int_equal(retry, 59); /* window started at 1000 ms */
    assert_true(vrate_hit(&r, 2, 2000, &retry)); /* another address */
    assert_false(vrate_hit(&r, 1, 1000 + ACCESS_CODE_JOIN_WINDOW_MS - 1, &retry));
    assert_int_equal(retry, 1);
    assert_true(vrate_hit(&r, 1, 1000 + ACCESS_CODE_JOIN_WINDOW_MS, &retry)); /* new window */
    vrate_free(&r);
}

static void test_rate_table_full_of_fresh_keys_refuses(void **state)
{
    (void)state;
    struct vrate r;
    vrate_init(&r, 5, 60000, 2);
    int retry;
    assert_true(vrate_hit(&r, 1, 0, &retry));
    assert_true(vrate_hit(&r, 2, 0, &retry));
    assert_false(vrate_hit(&r, 3, 10, &retry)); /* both windows still open */
    assert_true(vrate_hit(&r, 3, 60000, &retry)); /* old windows evicted */
    vrate_free(&r);
}

static void test_access_code_syntax(void **state)
{
    (void)state;
    assert_true(access_code_valid("1234"));
    assert_true(access_code_valid("math-101_A"));
    assert_false(access_code_valid("123"));
    assert_false(access_code_valid("12 34"));
    assert_false(access_code_valid("code/1"));
    char long64[65], long65[66];
    memset(long64, 'a', 64);
    long64[64] = 0;
    memset(long65, 'a', 65);
    long65[65] = 0;
    assert_true(access_code_valid(long64));
    assert_false(access_code_valid(long65));
}

static void test_iso8601_dates_need_the_full_form_and_a_zone(void **state)
{
    (void)state;
    const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"2025-01-31T12:00:00Z", true},
        {"2025-01-31T12:00:00.123456Z", true},
        {"2025-01-31t12:00:00z", true},
        {"2025-01-31T12:00:00+02:00", true},
        {"2025-01-31T12:00:00-05:30", true},
        {"2025-01-31T12:00:00", false},      /* no zone */
        {"2025-01-31 12:00:00Z", false},
        {"2025-01-31", false},
        {"tomorrow", false},
        {"epoch", false},
        {"2025-01-31T12:00:00.Z", false},
        {"2025-01-31T12:00:00.1234567890Z", false},
        {"2025-01-31T12:00:00+0200", false},
        {"2025-01-31T12:00:00Zjunk", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (viso8601_valid(cases[i].s) != cases[i].ok)
            fail_msg("case \"%s\"", cases[i].s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sessions_count_distinct_viewers_per_room),
        cmocka_unit_test(test_max_participants_refuses_only_new_sessions),
        cmocka_unit_test(test_session_window_is_thirty_seconds),
        cmocka_unit_test(test_expiry_reports_each_leave_once),
        cmocka_unit_test(test_session_table_ceiling_refuses_instead_of_growing),
        cmocka_unit_test(test_session_keys_follow_the_identity_rules),
        cmocka_unit_test(test_sid_syntax),
        cmocka_unit_test(test_vmap_put_get_remove_sweep_and_ceiling),
        cmocka_unit_test(test_vmap_keeps_entries_with_equal_keys),
        cmocka_unit_test(test_join_rate_limit_is_per_address_and_window),
        cmocka_unit_test(test_rate_table_full_of_fresh_keys_refuses),
        cmocka_unit_test(test_access_code_syntax),
        cmocka_unit_test(test_iso8601_dates_need_the_full_form_and_a_zone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
