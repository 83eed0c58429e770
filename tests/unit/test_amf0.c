/* test_amf0.c — AMF0 decoder ceilings and malformations, real command bytes
 * (FFmpeg and librtmp `connect`, FFmpeg onMetaData), encoder round trips.
 * Fixtures: tests/unit/data/amf0/ (captured from ffmpeg 5.1 / gst rtmpsink
 * publishing to a throwaway listener; onMetaData from an ffmpeg -f flv file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/amf0.h"

static uint8_t *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (tests run from the repo root)", path);
    uint8_t tmp[4096];
    size_t n = fread(tmp, 1, sizeof tmp, f);
    fclose(f);
    /* Exact-size heap copy so ASan catches any read past the end. */
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, tmp, n);
    *len = n;
    return p;
}

/* Exact-size heap copy of a literal. */
static uint8_t *dup_bytes(const uint8_t *b, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n)
        memcpy(p, b, n);
    return p;
}

static _Alignas(16) uint8_t arena_mem[64 * 1024];

static void test_ffmpeg_connect_decodes_with_app_and_tcurl(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = load("tests/unit/data/amf0/connect_ffmpeg.bin", &len);
    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    struct amf0_value *v[8];
    int n = amf0_decode_all(buf, len, &a, v, 8);
    free(buf); /* decoded values must not point into the input */
    assert_int_equal(n, 3);
    assert_int_equal(v[0]->type, AMF0_STRING);
    assert_string_equal(v[0]->u.str.ptr, "connect");
    assert_int_equal(v[0]->u.str.len, 7);
    assert_int_equal(v[1]->type, AMF0_NUMBER);
    assert_true(v[1]->u.number == 1.0);
    assert_int_equal(v[2]->type, AMF0_OBJECT);
    assert_int_equal(v[2]->u.obj.count, 4);
    assert_string_equal(amf0_get_string(v[2], "app"), "live");
    assert_string_equal(amf0_get_string(v[2], "type"), "nonprivate");
    assert_string_equal(amf0_get_string(v[2], "flashVer"), "FMLE/3.0 (compatible; Lavf59.27.100)");
    assert_string_equal(amf0_get_string(v[2], "tcUrl"), "rtmp://127.0.0.1:36527/live");
    /* property order is preserved */
    assert_string_equal(v[2]->u.obj.props[0].key, "app");
    assert_string_equal(v[2]->u.obj.props[3].key, "tcUrl");
    assert_null(amf0_get(v[2], "objectEncoding"));
    assert_true(a.used <= a.cap);
}

static void test_librtmp_connect_decodes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = load("tests/unit/data/amf0/connect_librtmp.bin", &len);
    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    struct amf0_value *v[8];
    int n = amf0_decode_all(buf, len, &a, v, 8);
    free(buf);
    assert_int_equal(n, 3);
    assert_string_equal(v[0]->u.str.ptr, "connect");
    assert_string_equal(amf0_get_string(v[2], "app"), "live");
    assert_string_equal(amf0_get_string(v[2], "tcUrl"), "rtmp://127.0.0.1:40137/live");
}

static void test_ffmpeg_onmetadata_ecma_array_decodes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = load("tests/unit/data/amf0/onmetadata_ffmpeg.bin", &len);
    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    struct amf0_value *v[4];
    int n = amf0_decode_all(buf, len, &a, v, 4);
    free(buf);
    assert_int_equal(n, 2);
    assert_string_equal(v[0]->u.str.ptr, "onMetaData");
    assert_int_equal(v[1]->type, AMF0_ECMA_ARRAY);
    assert_int_equal(v[1]->u.obj.count, 13);
    double d = 0;
    assert_true(amf0_get_number(v[1], "width", &d));
    assert_true(d == 1280.0);
    assert_true(amf0_get_number(v[1], "height", &d));
    assert_true(d == 720.0);
    assert_true(amf0_get_number(v[1], "videocodecid", &d));
    assert_true(d == 7.0);
    assert_true(amf0_get_number(v[1], "audiocodecid", &d));
    assert_true(d == 10.0);
    assert_true(amf0_get_number(v[1], "framerate", &d));
    assert_true(d == 30.0);
    const struct amf0_value *stereo = amf0_get(v[1], "stereo");
    assert_non_null(stereo);
    assert_int_equal(stereo->type, AMF0_BOOLEAN);
    assert_true(stereo->u.boolean);
    assert_string_equal(amf0_get_string(v[1], "encoder"), "Lavf59.27.100");
    /* typed lookups refuse the wrong type */
    assert_false(amf0_get_number(v[1], "encoder", &d));
    assert_null(amf0_get_string(v[1], "width"));
    assert_null(amf0_get(v[0], "width")); /* not an object */
}

/* ---- table of hand-made inputs ------------------------------------------- */

struct decode_case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    size_t arena;   /* 0 = the big arena */
    int want;       /* count or amf0_err */
};

#define B(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

static const struct decode_case decode_cases[] = {
    { "empty input decodes nothing", (const uint8_t[]){0}, 0, 0, 0 },
    { "number", B(0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), 0, 1 },
    { "number truncated", B(0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0), 0, AMF0_ERR_TRUNCATED },
    { "boolean truncated", B(0x01), 0, AMF0_ERR_TRUNCATED },
    { "null undefined boolean", B(0x05, 0x06, 0x01, 0x00), 0, 3 },
    { "string length lies", B(0x02, 0x00, 0x10, 'a', 'b'), 0, AMF0_ERR_TRUNCATED },
    { "string length field truncated", B(0x02, 0x00), 0, AMF0_ERR_TRUNCATED },
    { "long string length 0xffffffff", B(0x0c, 0xff, 0xff, 0xff, 0xff, 'a'), 0, AMF0_ERR_TRUNCATED },
    { "long string over the arena", B(0x0c, 0, 0, 0, 8, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'),
      sizeof(struct amf0_value) + 8, AMF0_ERR_TOO_BIG },
    { "long string just fits the arena", B(0x0c, 0, 0, 0, 7, 'a', 'b', 'c', 'd', 'e', 'f', 'g'),
      sizeof(struct amf0_value) + 8, 1 },
    { "object without end marker", B(0x03, 0x00, 0x01, 'a', 0x05), 0, AMF0_ERR_TRUNCATED },
    { "object key length lies", B(0x03, 0x00, 0x09, 'a', 0x05), 0, AMF0_ERR_TRUNCATED },
    { "empty object", B(0x03, 0x00, 0x00, 0x09), 0, 1 },
    { "object-end marker at top level", B(0x09), 0, AMF0_ERR_MALFORMED },
    { "object-end marker as a property value", B(0x03, 0x00, 0x01, 'a', 0x09, 0x00, 0x00, 0x09), 0,
      AMF0_ERR_MALFORMED },
    { "unknown marker 0x20", B(0x20), 0, AMF0_ERR_MALFORMED },
    { "movieclip unsupported", B(0x04), 0, AMF0_ERR_UNSUPPORTED },
    { "reference unsupported", B(0x07, 0x00, 0x01), 0, AMF0_ERR_UNSUPPORTED },
    { "unsupported marker", B(0x0d), 0, AMF0_ERR_UNSUPPORTED },
    { "recordset unsupported", B(0x0e), 0, AMF0_ERR_UNSUPPORTED },
    { "xml document unsupported", B(0x0f, 0, 0, 0, 0), 0, AMF0_ERR_UNSUPPORTED },
    { "typed object unsupported", B(0x10, 0, 1, 'x', 0, 0, 9), 0, AMF0_ERR_UNSUPPORTED },
    { "AMF3 switch unsupported", B(0x11, 0x01), 0, AMF0_ERR_UNSUPPORTED },
    { "strict array count 0xffffffff lies", B(0x0a, 0xff, 0xff, 0xff, 0xff, 0x05), 0, AMF0_ERR_TRUNCATED },
    { "strict array count 3 with 2 items", B(0x0a, 0, 0, 0, 3, 0x05, 0x05), 0, AMF0_ERR_TRUNCATED },
    { "strict array", B(0x0a, 0, 0, 0, 2, 0x05, 0x01, 0x01), 0, 1 },
    { "ecma count 1000 with one property", B(0x08, 0, 0, 0x03, 0xe8, 0, 1, 'a', 0x05, 0, 0, 0x09), 0, 1 },
    { "ecma count 0 with one property", B(0x08, 0, 0, 0, 0, 0, 1, 'a', 0x05, 0, 0, 0x09), 0, 1 },
    { "ecma without end marker at end of message", B(0x08, 0, 0, 0, 1, 0, 1, 'a', 0x05), 0, 1 },
    { "ecma cut inside a property", B(0x08, 0, 0, 0, 1, 0, 1, 'a'), 0, AMF0_ERR_TRUNCATED },
    { "ecma count field truncated", B(0x08, 0, 0), 0, AMF0_ERR_TRUNCATED },
    { "date", B(0x0b, 0x42, 0x77, 0, 0, 0, 0, 0, 0, 0, 0), 0, 1 },
    { "date without time zone", B(0x0b, 0x42, 0x77, 0, 0, 0, 0, 0, 0), 0, AMF0_ERR_TRUNCATED },
    { "object over a tiny arena", B(0x03, 0x00, 0x01, 'a', 0x05, 0x00, 0x00, 0x09), 48, AMF0_ERR_TOO_BIG },
    { "arena of zero bytes", B(0x05), 1, AMF0_ERR_TOO_BIG },
};

static void test_decode_table(void **state)
{
    (void)state;
    static _Alignas(16) uint8_t small[4096];
    for (size_t i = 0; i < sizeof decode_cases / sizeof decode_cases[0]; i++) {
        const struct decode_case *c = &decode_cases[i];
        uint8_t *buf = dup_bytes(c->bytes, c->len);
        struct amf0_arena a;
        if (c->arena)
            amf0_arena_init(&a, small, c->arena == 1 ? 0 : c->arena);
        else
            amf0_arena_init(&a, arena_mem, sizeof arena_mem);
        struct amf0_value *v[8];
        int got = amf0_decode_all(buf, c->len, &a, v, 8);
        free(buf);
        if (got != c->want)
            fail_msg("case '%s': got %d want %d", c->name, got, c->want);
        assert_true(a.used <= a.cap);
    }
}

static void test_ecma_array_with_lying_count_keeps_real_properties(void **state)
{
    (void)state;
    static const uint8_t in[] = { 0x08, 0, 0, 0x03, 0xe8, 0, 1, 'a', 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0,
                                  0, 2, 'b', 'c', 0x02, 0, 2, 'h', 'i', 0, 0, 0x09 };
    uint8_t *buf = dup_bytes(in, sizeof in);
    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    struct amf0_value *v[2];
    assert_int_equal(amf0_decode_all(buf, sizeof in, &a, v, 2), 1);
    free(buf);
    assert_int_equal(v[0]->type, AMF0_ECMA_ARRAY);
    assert_int_equal(v[0]->u.obj.count, 2);
    double d;
    assert_true(amf0_get_number(v[0], "a", &d));
    assert_true(d == 2.0);
    assert_string_equal(amf0_get_string(v[0], "bc"), "hi");
}

static void test_empty_key_with_a_value_is_a_property_not_the_end(void **state)
{
    (void)state;
    static const uint8_t in[] = { 0x03, 0, 0, 0x05, 0, 1, 'x', 0x06, 0, 0, 0x09 };
    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    struct amf0_value *v[1];
    uint8_t *buf = dup_bytes(in, sizeof in);
    assert_int_equal(amf0_decode_all(buf, sizeof in, &a, v, 1), 1);
    free(buf);
    assert_int_equal(v[0]->u.obj.count, 2);
    assert_int_equal(v[0]->u.obj.props[0].key_len, 0);
    assert_int_equal(v[0]->u.obj.props[0].value->type, AMF0_NULL);
    assert_int_equal(amf0_get(v[0], "x")->type, AMF0_UNDEFINED);
}

/* n nested objects {"k": {"k": ... null}} */
static size_t nested_objects(uint8_t *out, int n)
{
    size_t p = 0;
    for (int i = 0; i < n; i++) {
        out[p++] = 0x03;
        out[p++] = 0;
        out[p++] = 1;
        out[p++] = 'k';
    }
    out[p++] = 0x05;
    for (int i = 0; i < n; i++) {
        out[p++] = 0;
        out[p++] = 0;
        out[p++] = 0x09;
    }
    return p;
}

static void test_nesting_up_to_max_depth_decodes_and_one_more_is_too_deep(void **state)
{
    (void)state;
    uint8_t tmp[512];
    struct amf0_value *v[1];
    struct amf0_arena a;

    size_t n = nested_objects(tmp, AMF0_MAX_DEPTH);
    uint8_t *buf = dup_bytes(tmp, n);
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    assert_int_equal(amf0_decode_all(buf, n, &a, v, 1), 1);
    const struct amf0_value *x = v[0];
    for (int i = 1; i < AMF0_MAX_DEPTH; i++)
        x = amf0_get(x, "k");
    assert_int_equal(x->type, AMF0_OBJECT);
    assert_int_equal(amf0_get(x, "k")->type, AMF0_NULL);
    free(buf);

    n = nested_objects(tmp, AMF0_MAX_DEPTH + 1);
    buf = dup_bytes(tmp, n);
    amf0_arena_reset(&a);
    assert_int_equal(amf0_decode_all(buf, n, &a, v, 1), AMF0_ERR_TOO_DEEP);
    free(buf);

    /* strict arrays count toward the same limit */
    size_t p = 0;
    for (int i = 0; i < AMF0_MAX_DEPTH + 1; i++) {
        tmp[p++] = 0x0a;
        tmp[p++] = 0;
        tmp[p++] = 0;
        tmp[p++] = 0;
        tmp[p++] = 1;
    }
    tmp[p++] = 0x05;
    buf = dup_bytes(tmp, p);
    amf0_arena_reset(&a);
    assert_int_equal(amf0_decode_all(buf, p, &a, v, 1), AMF0_ERR_TOO_DEEP);
    free(buf);
}

static void test_decode_stops_at_max_values(void **state)
{
    (void)state;
    static const uint8_t in[] = { 0x05, 0x05, 0x05 };
    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    struct amf0_value *v[2];
    assert_int_equal(amf0_decode_all(in, sizeof in, &a, v, 2), 2);
    assert_int_equal(amf0_decode_all(in, sizeof in, &a, v, 0), 0);
}

static void test_misaligned_arena_still_yields_aligned_values(void **state)
{
    (void)state;
    static const uint8_t in[] = { 0x03, 0, 1, 'n', 0x00, 0x40, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x09 };
    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem + 3, 1000);
    struct amf0_value *v[1];
    assert_int_equal(amf0_decode_all(in, sizeof in, &a, v, 1), 1);
    assert_int_equal((uintptr_t)v[0] % _Alignof(struct amf0_value), 0);
    double d;
    assert_true(amf0_get_number(v[0], "n", &d));
    assert_true(d == 3.0);
}

static void test_truncation_at_every_length_never_succeeds_with_garbage(void **state)
{
    (void)state;
    size_t len;
    uint8_t *whole = load("tests/unit/data/amf0/onmetadata_ffmpeg.bin", &len);
    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *buf = dup_bytes(whole, cut);
        struct amf0_value *v[4];
        amf0_arena_reset(&a);
        int n = amf0_decode_all(buf, cut, &a, v, 4);
        free(buf);
        /* A cut at a value boundary decodes fewer values; an ECMA array may
         * end at a property boundary; anything else is an error. */
        if (n >= 0) {
            assert_true(n <= 2);
            if (n == 2 && cut != len - 3) /* len - 3: only the end marker cut */
                assert_true(v[1]->u.obj.count < 13);
            if (n == 2 && cut == len - 3)
                assert_int_equal(v[1]->u.obj.count, 13);
        }
        assert_true(a.used <= a.cap);
    }
    free(whole);
}

/* ---- encoder ------------------------------------------------------------- */

static void test_encoder_round_trip_result_command(void **state)
{
    (void)state;
    uint8_t out[512];
    uint8_t *p = out, *end = out + sizeof out;
    p = amf0_put_string(p, end, "_result");
    p = amf0_put_number(p, end, 1);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "fmsVer");
    p = amf0_put_string(p, end, "FMS/3,0,1,123");
    p = amf0_put_key(p, end, "capabilities");
    p = amf0_put_number(p, end, 31);
    p = amf0_put_object_end(p, end);
    p = amf0_put_ecma_array_start(p, end, 1);
    p = amf0_put_key(p, end, "ok");
    p = amf0_put_bool(p, end, true);
    p = amf0_put_object_end(p, end);
    p = amf0_put_null(p, end);
    p = amf0_put_undefined(p, end);
    p = amf0_put_string_len(p, end, "ab\0c", 4);
    assert_non_null(p);

    struct amf0_arena a;
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    struct amf0_value *v[8];
    assert_int_equal(amf0_decode_all(out, (size_t)(p - out), &a, v, 8), 7);
    assert_string_equal(v[0]->u.str.ptr, "_result");
    assert_true(v[1]->u.number == 1.0);
    assert_string_equal(amf0_get_string(v[2], "fmsVer"), "FMS/3,0,1,123");
    double d;
    assert_true(amf0_get_number(v[2], "capabilities", &d));
    assert_true(d == 31.0);
    assert_int_equal(v[3]->type, AMF0_ECMA_ARRAY);
    assert_true(amf0_get(v[3], "ok")->u.boolean);
    assert_int_equal(v[4]->type, AMF0_NULL);
    assert_int_equal(v[5]->type, AMF0_UNDEFINED);
    assert_int_equal(v[6]->u.str.len, 4);
    assert_memory_equal(v[6]->u.str.ptr, "ab\0c", 5);
}

static void test_encoder_refuses_to_pass_the_end_and_chains_null(void **state)
{
    (void)state;
    uint8_t out[16] = {0};
    /* exact fits */
    assert_ptr_equal(amf0_put_number(out, out + 9, 2.5), out + 9);
    assert_ptr_equal(amf0_put_bool(out, out + 2, false), out + 2);
    assert_ptr_equal(amf0_put_string(out, out + 5, "ab"), out + 5);
    assert_ptr_equal(amf0_put_null(out, out + 1), out + 1);
    assert_ptr_equal(amf0_put_object_start(out, out + 1), out + 1);
    assert_ptr_equal(amf0_put_ecma_array_start(out, out + 5, 3), out + 5);
    assert_ptr_equal(amf0_put_key(out, out + 4, "ab"), out + 4);
    assert_ptr_equal(amf0_put_object_end(out, out + 3), out + 3);
    assert_memory_equal(out, ((const uint8_t[]){ 0, 0, 9 }), 3);
    /* one byte short */
    assert_null(amf0_put_number(out, out + 8, 2.5));
    assert_null(amf0_put_bool(out, out + 1, false));
    assert_null(amf0_put_string(out, out + 4, "ab"));
    assert_null(amf0_put_null(out, out));
    assert_null(amf0_put_object_start(out, out));
    assert_null(amf0_put_ecma_array_start(out, out + 4, 3));
    assert_null(amf0_put_key(out, out + 3, "ab"));
    assert_null(amf0_put_object_end(out, out + 2));
    /* NULL in, NULL out */
    assert_null(amf0_put_number(NULL, out + 16, 1));
    assert_null(amf0_put_string(NULL, out + 16, "a"));
    assert_null(amf0_put_object_end(NULL, out + 16));
    /* an empty key would read as the object end */
    assert_null(amf0_put_key(out, out + 16, ""));
}

static void test_encoder_writes_long_string_over_64k(void **state)
{
    (void)state;
    size_t n = 70000;
    char *s = malloc(n + 1);
    memset(s, 'x', n);
    s[n] = '\0';
    size_t cap = n + 16;
    uint8_t *out = calloc(1, cap);
    uint8_t *p = amf0_put_string(out, out + cap, s);
    assert_ptr_equal(p, out + 5 + n);
    assert_int_equal(out[0], 0x0c);
    assert_null(amf0_put_string(out, out + 5 + n - 1, s));
    static uint8_t big[80000];
    struct amf0_arena a;
    amf0_arena_init(&a, big, sizeof big);
    struct amf0_value *v[1];
    assert_int_equal(amf0_decode_all(out, (size_t)(p - out), &a, v, 1), 1);
    assert_int_equal(v[0]->type, AMF0_STRING);
    assert_int_equal(v[0]->u.str.len, n);
    assert_int_equal(v[0]->u.str.ptr[n], '\0');
    /* the same string does not fit a 64 KiB arena */
    amf0_arena_init(&a, arena_mem, sizeof arena_mem);
    assert_int_equal(amf0_decode_all(out, (size_t)(p - out), &a, v, 1), AMF0_ERR_TOO_BIG);
    free(out);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ffmpeg_connect_decodes_with_app_and_tcurl),
        cmocka_unit_test(test_librtmp_connect_decodes),
        cmocka_unit_test(test_ffmpeg_onmetadata_ecma_array_decodes),
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_ecma_array_with_lying_count_keeps_real_properties),
        cmocka_unit_test(test_empty_key_with_a_value_is_a_property_not_the_end),
        cmocka_unit_test(test_nesting_up_to_max_depth_decodes_and_one_more_is_too_deep),
        cmocka_unit_test(test_decode_stops_at_max_values),
        cmocka_unit_test(test_misaligned_arena_still_yields_aligned_values),
        cmocka_unit_test(test_truncation_at_every_length_never_succeeds_with_garbage),
        cmocka_unit_test(test_encoder_round_trip_result_command),
        cmocka_unit_test(test_encoder_refuses_to_pass_the_end_and_chains_null),
        cmocka_unit_test(test_encoder_writes_long_string_over_64k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
