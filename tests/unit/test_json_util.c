/* test_json_util.c — the admin API's pure value rules: times, ids, paging,
 * typed fields, metadata nesting, UTF-8, and the request-body validators of
 * members and video rooms (SPEC §6, API-2, API-4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/json_util.h"
#include "api/members.h"
#include "api/video_rooms.h"

static void test_time_format_is_utc_with_microseconds(void **state)
{
    (void)state;
    static const struct {
        int64_t us;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000000Z"},
        {1666161669865054LL, "2022-10-19T06:41:09.865054Z"},
        {-1, "1969-12-31T23:59:59.999999Z"},
        {951782400000000LL, "2000-02-29T00:00:00.000000Z"},
        {253402300799999999LL, "9999-12-31T23:59:59.999999Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[JU_TIME_LEN];
        assert_int_equal(ju_format_time_us(cases[i].us, out), 0);
        assert_string_equal(out, cases[i].want);
    }
    char out[JU_TIME_LEN];
    assert_int_equal(ju_format_time_us(253402300800000000LL, out), -1); /* year 10000 */
}

static void test_time_parse_accepts_iso8601_with_zone_and_rejects_the_rest(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        const char *canonical;
    } cases[] = {
        {"2022-10-19T23:59:59.999Z", 1, "2022-10-19T23:59:59.999000Z"},
        {"2022-10-19T23:59:59Z", 1, "2022-10-19T23:59:59.000000Z"},
        {"2022-10-19T23:59Z", 1, "2022-10-19T23:59:00.000000Z"},
        {"2022-10-19 23:59:59.1234567z", 1, "2022-10-19T23:59:59.123456Z"},
        {"2022-10-20T01:59:59+02:00", 1, "2022-10-19T23:59:59.000000Z"},
        {"2022-10-19T20:29:59-0330", 1, "2022-10-19T23:59:59.000000Z"},
        {"2022-10-20T00:59:59+01", 1, "2022-10-19T23:59:59.000000Z"},
        {"2024-02-29T00:00:00Z", 1, "2024-02-29T00:00:00.000000Z"},
        {"2023-02-29T00:00:00Z", 0, NULL},
        {"2022-13-01T00:00:00Z", 0, NULL},
        {"2022-10-19T24:00:00Z", 0, NULL},
        {"2022-10-19T23:60:00Z", 0, NULL},
        {"2022-10-19T23:59:60Z", 0, NULL},
        {"2022-10-19T23:59:59", 0, NULL},   /* no zone */
        {"2022-10-19", 0, NULL},
        {"2022-10-19T23:59:59.Z", 0, NULL},
        {"2022-10-19T23:59:59Zjunk", 0, NULL},
        {"2022-10-19T23:59:59+25:00", 0, NULL},
        {"22-10-19T23:59:59Z", 0, NULL},
        {"tomorrow", 0, NULL},
        {"", 0, NULL},
        {"0000-01-01T00:00:00Z", 0, NULL},
        {"0001-01-01T00:00:00+01:00", 0, NULL}, /* before year 1 in UTC */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = 0;
        int rc = ju_parse_time(cases[i].in, &us);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu \"%s\": rc=%d", i, cases[i].in, rc);
        if (cases[i].ok) {
            char out[JU_TIME_LEN];
            ju_format_time_us(us, out);
            assert_string_equal(out, cases[i].canonical);
        }
    }
    assert_int_equal(ju_parse_time(NULL, &(int64_t){0}), -1);
}

static void test_path_ids_are_positive_int64_only(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        int64_t want;
    } cases[] = {
        {"1", 1, 1},
        {"9223372036854775807", 1, INT64_MAX},
        {"9223372036854775808", 0, 0},
        {"99999999999999999999", 0, 0},
        {"0", 0, 0},
        {"-1", 0, 0},
        {"+1", 0, 0},
        {"1a", 0, 0},
        {" 1", 0, 0},
        {"", 0, 0},
        {"0x10", 0, 0},
        {"1e3", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = 0;
        bool ok = ju_parse_id(cases[i].in, &v);
        if (ok != (bool)cases[i].ok)
            fail_msg("case %zu \"%s\"", i, cases[i].in);
        if (ok)
            assert_true(v == cases[i].want);
    }
    assert_false(ju_parse_id(NULL, &(int64_t){0}));
}

static void test_paging_defaults_limits_and_named_errors(void **state)
{
    (void)state;
    static const struct {
        const char *page, *size, *sort;
        bool members;
        int ok;
        int64_t want_page;
        int want_size;
        enum ju_sort want_sort;
        const char *field;
    } cases[] = {
        {NULL, NULL, NULL, false, 1, 0, 10, JU_SORT_CREATED_AT_DESC, NULL},
        {"2", "100", "CREATED_AT_ASC", false, 1, 2, 100, JU_SORT_CREATED_AT_ASC, NULL},
        {"0", "1", "LAST_MODIFIED_AT_DESC", false, 1, 0, 1, JU_SORT_LAST_MODIFIED_AT_DESC, NULL},
        {NULL, NULL, "LAST_MODIFIED_AT_ASC", false, 1, 0, 10, JU_SORT_LAST_MODIFIED_AT_ASC, NULL},
        {NULL, NULL, "APP_USER_ID_ASC", true, 1, 0, 10, JU_SORT_APP_USER_ID_ASC, NULL},
        {NULL, NULL, "APP_USER_ID_DESC", true, 1, 0, 10, JU_SORT_APP_USER_ID_DESC, NULL},
        {NULL, NULL, "APP_USER_ID_ASC", false, 0, 0, 0, 0, "sortBy"},
        {NULL, NULL, "created_at_asc", false, 0, 0, 0, 0, "sortBy"},
        {NULL, NULL, "", false, 0, 0, 0, 0, "sortBy"},
        {"-1", NULL, NULL, false, 0, 0, 0, 0, "page"},
        {"x", NULL, NULL, false, 0, 0, 0, 0, "page"},
        {"1.5", NULL, NULL, false, 0, 0, 0, 0, "page"},
        {"", NULL, NULL, false, 0, 0, 0, 0, "page"},
        {"99999999999999999999", NULL, NULL, false, 0, 0, 0, 0, "page"},
        {NULL, "0", NULL, false, 0, 0, 0, 0, "pageSize"},
        {NULL, "101", NULL, false, 0, 0, 0, 0, "pageSize"},
        {NULL, "-5", NULL, false, 0, 0, 0, 0, "pageSize"},
        {NULL, "ten", NULL, false, 0, 0, 0, 0, "pageSize"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ju_page p;
        struct ju_error e = {0};
        int rc = ju_parse_page(cases[i].page, cases[i].size, cases[i].sort, cases[i].members, &p, &e);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu: rc=%d", i, rc);
        if (rc == 0) {
            assert_true(p.page == cases[i].want_page);
            assert_int_equal(p.page_size, cases[i].want_size);
            assert_int_equal(p.sort, cases[i].want_sort);
        } else {
            assert_int_equal(e.status, 400);
            assert_string_equal(e.code, "INVALID_PARAMETER");
            assert_string_equal(e.field, cases[i].field);
            assert_non_null(strstr(e.message, cases[i].field));
        }
    }
}

static void test_page_json_has_the_seed_shape(void **state)
{
    (void)state;
    struct ju_page p = {.page = 1, .page_size = 2, .sort = JU_SORT_CREATED_AT_DESC};
    json_t *content = json_pack("[i,i]", 1, 2);
    json_t *o = ju_page_json(content, 5, &p);
    assert_int_equal(json_array_size(json_object_get(o, "content")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "totalElements")), 5);
    assert_int_equal(json_integer_value(json_object_get(o, "totalPages")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "size")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "number")), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "numberOfElements")), 2);
    assert_true(json_is_false(json_object_get(o, "first")));
    assert_true(json_is_false(json_object_get(o, "last")));
    assert_true(json_is_false(json_object_get(o, "empty")));
    json_t *pageable = json_object_get(o, "pageable");
    assert_int_equal(json_integer_value(json_object_get(pageable, "offset")), 2);
    assert_int_equal(json_integer_value(json_object_get(pageable, "pageNumber")), 1);
    assert_int_equal(json_integer_value(json_object_get(pageable, "pageSize")), 2);
    assert_true(json_is_true(json_object_get(pageable, "paged")));
    assert_true(json_is_false(json_object_get(pageable, "unpaged")));
    json_t *sort = json_object_get(pageable, "sort");
    assert_true(json_is_true(json_object_get(sort, "sorted")));
    assert_true(json_is_false(json_object_get(sort, "empty")));
    assert_true(json_is_false(json_object_get(sort, "unsorted")));
    assert_true(json_equal(sort, json_object_get(o, "sort")));
    json_decref(o);

    struct ju_page last = {.page = 0, .page_size = 10};
    o = ju_page_json(json_array(), 0, &last);
    assert_true(json_is_true(json_object_get(o, "empty")));
    assert_true(json_is_true(json_object_get(o, "first")));
    assert_true(json_is_true(json_object_get(o, "last")));
    assert_int_equal(json_integer_value(json_object_get(o, "totalPages")), 0);
    json_decref(o);
}

static void test_sort_sql_is_a_fixed_whitelist(void **state)
{
    (void)state;
    assert_string_equal(ju_sort_sql(JU_SORT_CREATED_AT_DESC, "r"), "r.created_at DESC, r.id DESC");
    assert_string_equal(ju_sort_sql(JU_SORT_LAST_MODIFIED_AT_ASC, "k"),
                        "k.last_modified_at ASC, k.id ASC");
    assert_string_equal(ju_sort_sql(JU_SORT_APP_USER_ID_DESC, "m"), "m.app_user_id DESC, m.id DESC");
    assert_string_equal(ju_sort_sql((enum ju_sort)99, "m"), "m.created_at DESC, m.id DESC");
}

static void test_typed_fields_name_the_field(void **state)
{
    (void)state;
    json_t *o = json_loads("{\"s\":\"héllo\",\"n\":5,\"b\":true,\"z\":null,\"r\":1.5,"
                           "\"long\":\"abcdef\",\"neg\":-3}", 0, NULL);
    assert_non_null(o);
    struct ju_error e = {0};
    enum ju_presence st;
    const char *s;
    int64_t n;
    bool b;
    assert_int_equal(ju_get_string(o, "s", NULL, 5, &st, &s, &e), 0);
    assert_int_equal(st, JU_SET);
    assert_string_equal(s, "héllo"); /* 5 code points, 6 bytes */
    assert_int_equal(ju_get_string(o, "missing", NULL, 5, &st, &s, &e), 0);
    assert_int_equal(st, JU_ABSENT);
    assert_int_equal(ju_get_string(o, "z", NULL, 5, &st, &s, &e), 0);
    assert_int_equal(st, JU_NULL);
    assert_int_equal(ju_get_string(o, "long", "x.long", 5, &st, &s, &e), -1);
    assert_string_equal(e.field, "x.long");
    assert_int_equal(ju_get_string(o, "n", NULL, 5, &st, &s, &e), -1);
    assert_string_equal(e.code, "INVALID_PARAMETER");
    assert_string_equal(e.field, "n");
    assert_int_equal(ju_get_int(o, "n", NULL, 1, 10, &st, &n, &e), 0);
    assert_true(n == 5 && st == JU_SET);
    assert_int_equal(ju_get_int(o, "r", NULL, 1, 10, &st, &n, &e), -1);
    assert_string_equal(e.field, "r");
    assert_int_equal(ju_get_int(o, "neg", NULL, 1, 10, &st, &n, &e), -1);
    assert_int_equal(ju_get_int(o, "s", NULL, 1, 10, &st, &n, &e), -1);
    assert_int_equal(ju_get_bool(o, "b", NULL, &st, &b, &e), 0);
    assert_true(b);
    assert_int_equal(ju_get_bool(o, "n", NULL, &st, &b, &e), -1);
    assert_string_equal(e.field, "n");
    json_decref(o);
}

static void test_metadata_allows_one_level_of_nesting(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int ok;
    } cases[] = {
        {"{}", 1},
        {"{\"a\":1,\"b\":\"x\",\"c\":null,\"d\":true,\"e\":1.5}", 1},
        {"{\"a\":{\"b\":1,\"c\":\"x\"}}", 1},
        {"{\"a\":[1,\"x\",null]}", 1},
        {"{\"a\":{\"b\":{\"c\":1}}}", 0},
        {"{\"a\":[[1]]}", 0},
        {"{\"a\":[{\"b\":1}]}", 0},
        {"{\"a\":{\"b\":[1]}}", 0},
        {"[1]", 0},
        {"\"x\"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        struct ju_error e = {0};
        int rc = ju_validate_metadata(v, &e);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu %s", i, cases[i].json);
        if (rc != 0) {
            assert_string_equal(e.code, "INVALID_PARAMETER");
            assert_string_equal(e.field, "metadata");
        }
        json_decref(v);
    }
}

static void test_utf8_validation(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        int ok;
    } cases[] = {
        {"plain", 5, 1},
        {"\xc3\xa9", 2, 1},
        {"\xe2\x82\xac", 3, 1},
        {"\xf0\x9f\x8e\xa5", 4, 1},
        {"\xc0\xaf", 2, 0},          /* overlong */
        {"\xed\xa0\x80", 3, 0},      /* surrogate */
        {"\xf4\x90\x80\x80", 4, 0},  /* > U+10FFFF */
        {"\xe2\x82", 2, 0},          /* truncated */
        {"\x80", 1, 0},
        {"a\0b", 3, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (ju_utf8_valid(cases[i].s, cases[i].n) != (bool)cases[i].ok)
            fail_msg("case %zu", i);
    assert_int_equal(ju_utf8_len("h\xc3\xa9\xf0\x9f\x8e\xa5", 7), 3);
    assert_true(ju_is_blank(" \t\n"));
    assert_true(ju_is_blank(""));
    assert_true(ju_is_blank(NULL));
    assert_false(ju_is_blank(" x "));
}

static void test_query_builder_numbers_parameters(void **state)
{
    (void)state;
    struct ju_query q;
    ju_query_init(&q, "SELECT 1 FROM t");
    ju_query_add(&q, " WHERE a = $?", ju_query_i64(&q, 42));
    ju_query_add(&q, " AND b = 'lit'", NULL);
    ju_query_add(&q, " AND c = $?", "x'; DROP TABLE t; --");
    assert_false(q.overflow);
    assert_string_equal(q.sql, "SELECT 1 FROM t WHERE a = $1 AND b = 'lit' AND c = $2");
    assert_int_equal(q.n, 2);
    assert_string_equal(q.params[0], "42");
    assert_string_equal(q.params[1], "x'; DROP TABLE t; --");
    for (int i = 0; i < JU_QUERY_MAX_PARAMS + 1; i++)
        ju_query_add(&q, " AND d = $?", "v");
    assert_true(q.overflow);
}

/* --- request bodies ----------------------------------------------------- */
struct body_case {
    const char *json;
    int status;          /* 0 = valid */
    const char *code, *field;
};

static void run_body_cases(const struct body_case *cases, size_t n,
                           int (*parse)(json_t *, void *, struct ju_error *), size_t insize)
{
    for (size_t i = 0; i < n; i++) {
        json_t *body = json_loads(cases[i].json, JSON_REJECT_DUPLICATES, NULL);
        if (!body)
            fail_msg("case %zu: bad fixture %s", i, cases[i].json);
        char in[4096];
        assert_true(insize <= sizeof in);
        struct ju_error e = {0};
        int rc = parse(body, in, &e);
        if (cases[i].status == 0 && rc != 0)
            fail_msg("case %zu %s: unexpected %d %s %s", i, cases[i].json, e.status, e.code,
                     e.message);
        if (cases[i].status != 0) {
            if (rc == 0)
                fail_msg("case %zu %s: accepted", i, cases[i].json);
            assert_int_equal(e.status, cases[i].status);
            assert_string_equal(e.code, cases[i].code);
            if (cases[i].field)
                assert_string_equal(e.field, cases[i].field);
        }
        json_decref(body);
    }
}

static int member_create(json_t *b, void *in, struct ju_error *e) { return members_parse_create(b, in, e); }
static int member_patch(json_t *b, void *in, struct ju_error *e) { return members_parse_patch(b, in, e); }
static int room_create(json_t *b, void *in, struct ju_error *e) { return video_rooms_parse_create(b, in, e); }
static int room_patch(json_t *b, void *in, struct ju_error *e) { return video_rooms_parse_patch(b, in, e); }

static void test_member_bodies(void **state)
{
    (void)state;
    static const struct body_case create[] = {
        {"{\"appUserId\":\"1\"}", 0, NULL, NULL},
        {"{\"appUserId\":\"1\",\"appUserName\":\"x\",\"appUserProfileImgUrl\":null,\"extra\":[1]}", 0, NULL, NULL},
        {"{}", 400, "EMPTY_APP_USER_ID", "appUserId"},
        {"{\"appUserId\":null}", 400, "EMPTY_APP_USER_ID", "appUserId"},
        {"{\"appUserId\":\"\"}", 400, "EMPTY_APP_USER_ID", "appUserId"},
        {"{\"appUserId\":\"   \"}", 400, "EMPTY_APP_USER_ID", "appUserId"},
        {"{\"appUserId\":1}", 400, "INVALID_PARAMETER", "appUserId"},
        {"{\"appUserId\":\"a,b\"}", 400, "INVALID_PARAMETER", "appUserId"},
        /* 112 × "日": 112 characters but 336 bytes, not addressable in a path */
        {"{\"appUserId\":\"\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5"
         "\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5"
         "\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5"
         "\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5"
         "\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5"
         "\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5"
         "\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5"
         "\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5\u65e5"
         "\u65e5\u65e5\u65e5\u65e5\"}", 400, "INVALID_PARAMETER", "appUserId"},
        {"{\"appUserId\":\"1\",\"appUserName\":5}", 400, "INVALID_PARAMETER", "appUserName"},
        {"{\"appUserId\":\"1\",\"appUserProfileImgUrl\":{}}", 400, "INVALID_PARAMETER",
         "appUserProfileImgUrl"},
    };
    run_body_cases(create, sizeof create / sizeof create[0], member_create, sizeof(struct member_input));
    static const struct body_case patch[] = {
        {"{}", 0, NULL, NULL},
        {"{\"appUserName\":null}", 0, NULL, NULL},
        {"{\"appUserName\":[]}", 400, "INVALID_PARAMETER", "appUserName"},
    };
    run_body_cases(patch, sizeof patch / sizeof patch[0], member_patch, sizeof(struct member_input));
}

static void test_member_id_lists_are_trimmed_deduplicated_and_bounded(void **state)
{
    (void)state;
    char buf[300];
    const char *ids[MEMBER_DELETE_MAX];
    struct ju_error e = {0};
    assert_int_equal(members_split_ids("a, b ,a,,c", buf, sizeof buf, ids, 10, &e), 3);
    assert_string_equal(ids[0], "a");
    assert_string_equal(ids[1], "b");
    assert_string_equal(ids[2], "c");
    assert_int_equal(members_split_ids(" , ,", buf, sizeof buf, ids, 10, &e), -1);
    assert_string_equal(e.code, "EMPTY_APP_USER_ID");
    assert_int_equal(members_split_ids("a,b,c", buf, sizeof buf, ids, 2, &e), -1);
    assert_string_equal(e.code, "INVALID_PARAMETER");
}

static void test_video_room_bodies(void **state)
{
    (void)state;
    static const struct body_case create[] = {
        {"{\"appUserId\":\"1\",\"type\":\"BROADCAST_RTMP\",\"scheduledAt\":\"2022-10-19T23:59:59.999Z\"}",
         0, NULL, NULL},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\"}", 0, NULL, NULL},
        {"{\"appUserId\":\"1\",\"type\":\"BROADCAST_RTMP\",\"scheduledAt\":\"2022-10-19T23:59:59Z\","
         "\"title\":\"t\",\"description\":null,\"accessLevel\":\"PRIVATE\",\"externalId\":\"math-101\","
         "\"settings\":{\"recording\":false,\"autoStart\":true,\"autoEndAfterSec\":30,\"maxDurationSec\":null},"
         "\"metadata\":{\"a\":{\"b\":1}},\"unknown\":{\"x\":[1,{}]}}",
         0, NULL, NULL},
        {"{\"type\":\"BROADCAST_RTMP\"}", 400, "EMPTY_VIDEO_ROOM_APP_USER_ID", "appUserId"},
        {"{\"appUserId\":\" \",\"type\":\"BROADCAST_RTMP\"}", 400, "EMPTY_VIDEO_ROOM_APP_USER_ID", NULL},
        {"{\"appUserId\":7,\"type\":\"BROADCAST_RTMP\"}", 400, "INVALID_PARAMETER", "appUserId"},
        {"{\"appUserId\":\"1\"}", 400, "EMPTY_VIDEO_ROOM_TYPE", "type"},
        {"{\"appUserId\":\"1\",\"type\":null}", 400, "EMPTY_VIDEO_ROOM_TYPE", "type"},
        {"{\"appUserId\":\"1\",\"type\":\"RADIO\"}", 400, "INVALID_PARAMETER", "type"},
        {"{\"appUserId\":\"1\",\"type\":\"BROADCAST_RTMP\"}", 400, "EMPTY_VIDEO_ROOM_SCHEDULED_AT",
         "scheduledAt"},
        {"{\"appUserId\":\"1\",\"type\":\"BROADCAST_RTMP\",\"scheduledAt\":\"\"}", 400,
         "EMPTY_VIDEO_ROOM_SCHEDULED_AT", "scheduledAt"},
        {"{\"appUserId\":\"1\",\"type\":\"BROADCAST_RTMP\",\"scheduledAt\":\"next week\"}", 400,
         "INVALID_PARAMETER", "scheduledAt"},
        {"{\"appUserId\":\"1\",\"type\":\"BROADCAST_RTMP\",\"scheduledAt\":12345}", 400,
         "INVALID_PARAMETER", "scheduledAt"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"accessLevel\":\"EVERYONE\"}", 400,
         "INVALID_PARAMETER", "accessLevel"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"title\":false}", 400, "INVALID_PARAMETER", "title"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"externalId\":\"\"}", 400, "INVALID_PARAMETER",
         "externalId"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"settings\":[]}", 400, "INVALID_PARAMETER", "settings"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"settings\":{\"recording\":\"yes\"}}", 400,
         "INVALID_PARAMETER", "settings.recording"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"settings\":{\"autoStart\":null}}", 400,
         "INVALID_PARAMETER", "settings.autoStart"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"settings\":{\"autoEndAfterSec\":0}}", 400,
         "INVALID_PARAMETER", "settings.autoEndAfterSec"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"settings\":{\"maxDurationSec\":-5}}", 400,
         "INVALID_PARAMETER", "settings.maxDurationSec"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"settings\":{\"maxParticipants\":1.5}}", 400,
         "INVALID_PARAMETER", "settings.maxParticipants"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"settings\":{\"dvrWindowSec\":4294967296}}", 400,
         "INVALID_PARAMETER", "settings.dvrWindowSec"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"metadata\":[]}", 400, "INVALID_PARAMETER", "metadata"},
        {"{\"appUserId\":\"1\",\"type\":\"WEBINAR\",\"metadata\":{\"a\":{\"b\":{\"c\":1}}}}", 400,
         "INVALID_PARAMETER", "metadata"},
    };
    run_body_cases(create, sizeof create / sizeof create[0], room_create, sizeof(struct room_input));
    static const struct body_case patch[] = {
        {"{}", 0, NULL, NULL},
        {"{\"type\":\"WEBINAR\",\"appUserId\":5}", 0, NULL, NULL}, /* not patchable: ignored */
        {"{\"title\":null,\"externalId\":null,\"metadata\":null,\"settings\":{\"maxDurationSec\":null}}",
         0, NULL, NULL},
        {"{\"scheduledAt\":null}", 0, NULL, NULL},
        {"{\"accessLevel\":null}", 400, "INVALID_PARAMETER", "accessLevel"},
        {"{\"scheduledAt\":\"2022-02-30T00:00:00Z\"}", 400, "INVALID_PARAMETER", "scheduledAt"},
        {"{\"settings\":{\"recording\":1}}", 400, "INVALID_PARAMETER", "settings.recording"},
    };
    run_body_cases(patch, sizeof patch / sizeof patch[0], room_patch, sizeof(struct room_input));
}

static void test_room_patch_records_presence_and_canonical_time(void **state)
{
    (void)state;
    json_t *b = json_loads("{\"title\":null,\"scheduledAt\":\"2022-10-20T01:00:00+02:00\","
                           "\"settings\":{\"autoStart\":true,\"maxParticipants\":null}}", 0, NULL);
    struct room_input in;
    struct ju_error e = {0};
    assert_int_equal(video_rooms_parse_patch(b, &in, &e), 0);
    assert_int_equal(in.title_st, JU_NULL);
    assert_int_equal(in.desc_st, JU_ABSENT);
    assert_int_equal(in.sched_st, JU_SET);
    assert_string_equal(in.scheduled_at, "2022-10-19T23:00:00.000000Z");
    assert_int_equal(in.auto_start.st, JU_SET);
    assert_true(in.auto_start.v);
    assert_int_equal(in.recording.st, JU_ABSENT);
    assert_int_equal(in.max_participants.st, JU_NULL);
    assert_int_equal(in.meta_st, JU_ABSENT);
    json_decref(b);
}

static void test_channel_key_is_stable_and_distinct(void **state)
{
    (void)state;
    char a[32], b[32], c[32];
    video_rooms_channel_key(1, a);
    video_rooms_channel_key(1, b);
    video_rooms_channel_key(2, c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 27);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format_is_utc_with_microseconds),
        cmocka_unit_test(test_time_parse_accepts_iso8601_with_zone_and_rejects_the_rest),
        cmocka_unit_test(test_path_ids_are_positive_int64_only),
        cmocka_unit_test(test_paging_defaults_limits_and_named_errors),
        cmocka_unit_test(test_page_json_has_the_seed_shape),
        cmocka_unit_test(test_sort_sql_is_a_fixed_whitelist),
        cmocka_unit_test(test_typed_fields_name_the_field),
        cmocka_unit_test(test_metadata_allows_one_level_of_nesting),
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_query_builder_numbers_parameters),
        cmocka_unit_test(test_member_bodies),
        cmocka_unit_test(test_member_id_lists_are_trimmed_deduplicated_and_bounded),
        cmocka_unit_test(test_video_room_bodies),
        cmocka_unit_test(test_room_patch_records_presence_and_canonical_time),
        cmocka_unit_test(test_channel_key_is_stable_and_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
