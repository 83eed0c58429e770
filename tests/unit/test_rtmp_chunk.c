/* test_rtmp_chunk.c — chunk stream reader/writer (RTMP 1.0 §5.3, SPEC
 * ING-7 limits, ING-8 timestamps). Byte streams are built by hand with the
 * helpers below (independent of the module's writer), then the writer is
 * checked by round-tripping through the reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/bytes.h"
#include "ingest/rtmp_chunk.h"

/* ---- stream builder ---------------------------------------------------- */

struct bb {
    uint8_t *b;
    size_t n, cap;
};

static void bb_init(struct bb *s)
{
    s->cap = 1 << 20;
    s->b = malloc(s->cap);
    s->n = 0;
    assert_non_null(s->b);
}

static void put(struct bb *s, const void *p, size_t n)
{
    assert_true(s->n + n <= s->cap);
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void put8(struct bb *s, uint8_t v) { put(s, &v, 1); }
static void put24(struct bb *s, uint32_t v) { uint8_t b[3]; wr_be24(b, v); put(s, b, 3); }
static void put32(struct bb *s, uint32_t v) { uint8_t b[4]; wr_be32(b, v); put(s, b, 4); }

static void basic(struct bb *s, unsigned fmt, uint32_t csid)
{
    if (csid < 64) {
        put8(s, (uint8_t)(fmt << 6 | csid));
    } else if (csid < 320) {
        put8(s, (uint8_t)(fmt << 6));
        put8(s, (uint8_t)(csid - 64));
    } else {
        put8(s, (uint8_t)(fmt << 6 | 1));
        put8(s, (uint8_t)((csid - 64) & 0xff));
        put8(s, (uint8_t)((csid - 64) >> 8));
    }
}

static void ts_field(struct bb *s, uint32_t ts) { put24(s, ts >= 0xFFFFFF ? 0xFFFFFF : ts); }
static void ts_ext(struct bb *s, uint32_t ts) { if (ts >= 0xFFFFFF) put32(s, ts); }

static void hdr0(struct bb *s, uint32_t csid, uint32_t ts, uint32_t len, uint8_t type, uint32_t msid)
{
    basic(s, 0, csid);
    ts_field(s, ts);
    put24(s, len);
    put8(s, type);
    uint8_t m[4];
    wr_le32(m, msid);
    put(s, m, 4);
    ts_ext(s, ts);
}

static void hdr1(struct bb *s, uint32_t csid, uint32_t delta, uint32_t len, uint8_t type)
{
    basic(s, 1, csid);
    ts_field(s, delta);
    put24(s, len);
    put8(s, type);
    ts_ext(s, delta);
}

static void hdr2(struct bb *s, uint32_t csid, uint32_t delta)
{
    basic(s, 2, csid);
    ts_field(s, delta);
    ts_ext(s, delta);
}

static void hdr3(struct bb *s, uint32_t csid) { basic(s, 3, csid); }

/* payload bytes: byte i of message `tag` is (tag + i) & 0xff */
static void body(struct bb *s, uint8_t tag, uint32_t from, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        put8(s, (uint8_t)(tag + from + i));
}

/* ---- reader driver ----------------------------------------------------- */

struct got {
    uint8_t type;
    uint32_t csid, msid, ts, len;
    int64_t ts64;
    uint8_t *data;
};

struct run {
    struct got m[1100];
    int n;
    int rc; /* last non-message return */
    size_t consumed;
};

static void run_free(struct run *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->m[i].data);
    r->n = 0;
}

/* Feeds s to a new reader in pieces of `step` bytes (0 = all at once). */
static void drive(struct rtmp_chunk_reader *rd, const struct bb *s, size_t step, struct run *out)
{
    memset(out, 0, sizeof *out);
    size_t off = 0;
    while (off < s->n) {
        size_t avail = step == 0 ? s->n - off : (s->n - off < step ? s->n - off : step);
        size_t used = 0;
        struct rtmp_message msg;
        int rc = rtmp_chunk_read(rd, s->b + off, avail, &used, &msg);
        off += used;
        if (rc == RTMP_CHUNK_MESSAGE) {
            assert_true(out->n < (int)(sizeof out->m / sizeof out->m[0]));
            struct got *g = &out->m[out->n++];
            g->type = msg.type;
            g->csid = msg.csid;
            g->msid = msg.stream_id;
            g->ts = msg.timestamp;
            g->ts64 = msg.timestamp64;
            g->len = msg.len;
            g->data = malloc(msg.len + 1);
            if (msg.len)
                memcpy(g->data, msg.payload, msg.len);
            continue;
        }
        out->rc = rc;
        if (rc < 0)
            break;
        assert_int_equal(used, avail); /* NEED_MORE consumes everything */
    }
    out->consumed = off;
}

static void check_body(const struct got *g, uint8_t tag)
{
    for (uint32_t i = 0; i < g->len; i++)
        if (g->data[i] != (uint8_t)(tag + i))
            fail_msg("payload byte %u: got %u want %u", i, g->data[i], (uint8_t)(tag + i));
}

static const size_t steps[] = {0, 1, 3, 17, 129};
#define NSTEPS (sizeof steps / sizeof steps[0])

/* ---- header formats ---------------------------------------------------- */

static void test_chunk_fmt0_single_chunk_message(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 3, 1000, 100, RTMP_MSG_COMMAND_AMF0, 0);
    body(&s, 7, 0, 100);
    for (size_t i = 0; i < NSTEPS; i++) {
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
        struct run r;
        drive(rd, &s, steps[i], &r);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.m[0].type, RTMP_MSG_COMMAND_AMF0);
        assert_int_equal(r.m[0].csid, 3);
        assert_int_equal(r.m[0].msid, 0);
        assert_int_equal(r.m[0].ts, 1000);
        assert_int_equal(r.m[0].ts64, 1000);
        assert_int_equal(r.m[0].len, 100);
        check_body(&r.m[0], 7);
        assert_int_equal(r.rc, RTMP_CHUNK_NEED_MORE);
        run_free(&r);
        rtmp_chunk_reader_free(rd);
    }
    free(s.b);
}

static void test_chunk_message_split_over_default_chunk_size(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 6, 0, 300, RTMP_MSG_VIDEO, 1);
    body(&s, 1, 0, 128);
    hdr3(&s, 6);
    body(&s, 1, 128, 128);
    hdr3(&s, 6);
    body(&s, 1, 256, 44);
    for (size_t i = 0; i < NSTEPS; i++) {
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
        struct run r;
        drive(rd, &s, steps[i], &r);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.m[0].len, 300);
        assert_int_equal(r.m[0].msid, 1);
        check_body(&r.m[0], 1);
        run_free(&r);
        rtmp_chunk_reader_free(rd);
    }
    free(s.b);
}

/* Table: a sequence of headers on one chunk stream and the timestamps each
 * message must get. */
struct ts_case {
    const char *name;
    int n;
    struct { int fmt; uint32_t ts_or_delta; uint32_t len; } h[6];
    uint32_t want_ts[6];
    int64_t want_ts64[6];
};

static const struct ts_case ts_cases[] = {
    {"fmt0 then fmt1/fmt2/fmt3 deltas", 4,
     {{0, 1000, 10}, {1, 33, 20}, {2, 40, 0}, {3, 0, 0}},
     {1000, 1033, 1073, 1113}, {1000, 1033, 1073, 1113}},
    {"fmt3 after fmt0 repeats the absolute field", 2,
     {{0, 40, 8}, {3, 0, 0}}, {40, 80}, {40, 80}},
    {"extended delta on fmt1", 2,
     {{0, 0, 4}, {1, 0x1000000, 4}}, {0, 0x1000000}, {0, 0x1000000}},
    {"32-bit wrap keeps counting in 64 bits", 3,
     {{0, 0xFFFFFF00u, 4}, {1, 0x200, 4}, {2, 0x100, 0}},
     {0xFFFFFF00u, 0x100, 0x200}, {0xFFFFFF00ll, 0x100000100ll, 0x100000200ll}},
    {"backward jump stays backward", 3,
     {{0, 5000, 4}, {0, 1000, 4}, {1, 10, 4}},
     {5000, 1000, 1010}, {5000, 1000, 1010}},
    {"wrap with fmt0 absolute headers", 2,
     {{0, 0xFFFFFFF0u, 4}, {0, 0x10, 4}}, {0xFFFFFFF0u, 0x10}, {0xFFFFFFF0ll, 0x100000010ll}},
};

static void test_chunk_timestamp_table(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof ts_cases / sizeof ts_cases[0]; c++) {
        const struct ts_case *tc = &ts_cases[c];
        print_message("case: %s\n", tc->name);
        struct bb s;
        bb_init(&s);
        uint32_t len = 0;
        for (int i = 0; i < tc->n; i++) {
            if (tc->h[i].fmt <= 1)
                len = tc->h[i].len;
            switch (tc->h[i].fmt) {
            case 0: hdr0(&s, 4, tc->h[i].ts_or_delta, len, RTMP_MSG_AUDIO, 1); break;
            case 1: hdr1(&s, 4, tc->h[i].ts_or_delta, len, RTMP_MSG_AUDIO); break;
            case 2: hdr2(&s, 4, tc->h[i].ts_or_delta); break;
            default:
                hdr3(&s, 4);
                /* a type-3 header after an extended one carries it too */
                break;
            }
            body(&s, (uint8_t)i, 0, len);
        }
        for (size_t st = 0; st < NSTEPS; st++) {
            struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
            struct run r;
            drive(rd, &s, steps[st], &r);
            assert_int_equal(r.rc, RTMP_CHUNK_NEED_MORE);
            assert_int_equal(r.n, tc->n);
            for (int i = 0; i < tc->n; i++) {
                assert_int_equal(r.m[i].ts, tc->want_ts[i]);
                assert_int_equal(r.m[i].ts64, tc->want_ts64[i]);
                check_body(&r.m[i], (uint8_t)i);
            }
            run_free(&r);
            rtmp_chunk_reader_free(rd);
        }
        free(s.b);
    }
}

static void test_chunk_extended_timestamp_on_continuation_chunks(void **state)
{
    (void)state;
    const uint32_t ts = 0x01234567;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 6, ts, 300, RTMP_MSG_VIDEO, 1);
    body(&s, 9, 0, 128);
    hdr3(&s, 6);
    put32(&s, ts); /* spec: type-3 chunks repeat the extended timestamp */
    body(&s, 9, 128, 128);
    hdr3(&s, 6);
    put32(&s, ts);
    body(&s, 9, 256, 44);
    /* then a new message with a type-3 header: extended delta repeated */
    hdr3(&s, 6);
    put32(&s, ts);
    body(&s, 5, 0, 128);
    hdr3(&s, 6);
    put32(&s, ts);
    body(&s, 5, 128, 128);
    hdr3(&s, 6);
    put32(&s, ts);
    body(&s, 5, 256, 44);
    for (size_t i = 0; i < NSTEPS; i++) {
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
        struct run r;
        drive(rd, &s, steps[i], &r);
        assert_int_equal(r.n, 2);
        assert_int_equal(r.m[0].ts, ts);
        check_body(&r.m[0], 9);
        assert_int_equal(r.m[1].ts, 2 * ts);
        check_body(&r.m[1], 5);
        run_free(&r);
        rtmp_chunk_reader_free(rd);
    }
    free(s.b);
}

static void test_chunk_extended_timestamp_omitted_on_continuation_is_tolerated(void **state)
{
    (void)state;
    const uint32_t ts = 0x01000000;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 6, ts, 300, RTMP_MSG_VIDEO, 1);
    body(&s, 9, 0, 128);
    hdr3(&s, 6); /* no extended timestamp: payload follows directly */
    body(&s, 9, 128, 128);
    hdr3(&s, 6);
    body(&s, 9, 256, 44);
    for (size_t i = 0; i < NSTEPS; i++) {
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
        struct run r;
        drive(rd, &s, steps[i], &r);
        assert_int_equal(r.rc, RTMP_CHUNK_NEED_MORE);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.m[0].ts, ts);
        check_body(&r.m[0], 9);
        run_free(&r);
        rtmp_chunk_reader_free(rd);
    }
    free(s.b);
}

static void test_chunk_interleaved_chunk_streams(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 4, 10, 200, RTMP_MSG_AUDIO, 1);
    body(&s, 0x10, 0, 128);
    hdr0(&s, 6, 20, 300, RTMP_MSG_VIDEO, 1);
    body(&s, 0x60, 0, 128);
    hdr3(&s, 4);
    body(&s, 0x10, 128, 72); /* audio completes first */
    hdr3(&s, 6);
    body(&s, 0x60, 128, 128);
    hdr0(&s, 3, 0, 5, RTMP_MSG_COMMAND_AMF0, 0); /* a command in between */
    body(&s, 0x30, 0, 5);
    hdr3(&s, 6);
    body(&s, 0x60, 256, 44);
    for (size_t i = 0; i < NSTEPS; i++) {
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
        struct run r;
        drive(rd, &s, steps[i], &r);
        assert_int_equal(r.n, 3);
        assert_int_equal(r.m[0].csid, 4);
        assert_int_equal(r.m[0].type, RTMP_MSG_AUDIO);
        check_body(&r.m[0], 0x10);
        assert_int_equal(r.m[1].csid, 3);
        check_body(&r.m[1], 0x30);
        assert_int_equal(r.m[2].csid, 6);
        assert_int_equal(r.m[2].len, 300);
        assert_int_equal(r.m[2].ts, 20);
        check_body(&r.m[2], 0x60);
        assert_int_equal(rtmp_chunk_reader_stream_count(rd), 3);
        run_free(&r);
        rtmp_chunk_reader_free(rd);
    }
    free(s.b);
}

static void set_chunk_size_msg(struct bb *s, uint32_t size)
{
    hdr0(s, 2, 0, 4, RTMP_MSG_SET_CHUNK_SIZE, 0);
    put32(s, size);
}

static void test_chunk_set_chunk_size_mid_message(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 6, 0, 5000, RTMP_MSG_VIDEO, 1);
    body(&s, 3, 0, 128);          /* first chunk at the default 128 */
    set_chunk_size_msg(&s, 4096); /* peer raises the chunk size */
    hdr3(&s, 6);
    body(&s, 3, 128, 4096);       /* a 4096-byte chunk now */
    hdr3(&s, 6);
    body(&s, 3, 128 + 4096, 5000 - 128 - 4096);
    for (size_t i = 0; i < NSTEPS; i++) {
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
        struct run r;
        drive(rd, &s, steps[i], &r);
        assert_int_equal(r.rc, RTMP_CHUNK_NEED_MORE);
        assert_int_equal(r.n, 2);
        assert_int_equal(r.m[0].type, RTMP_MSG_SET_CHUNK_SIZE);
        assert_int_equal(r.m[1].len, 5000);
        check_body(&r.m[1], 3);
        assert_int_equal(rtmp_chunk_reader_chunk_size(rd), 4096);
        run_free(&r);
        rtmp_chunk_reader_free(rd);
    }
    free(s.b);
}

struct cs_case {
    const char *name;
    uint32_t size;
    uint32_t max; /* limits.max_chunk_size */
    int want;     /* RTMP_CHUNK_NEED_MORE when accepted */
};

static const struct cs_case cs_cases[] = {
    {"zero chunk size rejected", 0, 65536, RTMP_CHUNK_ERR_CHUNK_SIZE},
    {"2^31-1 chunk size rejected", 0x7FFFFFFF, 65536, RTMP_CHUNK_ERR_CHUNK_SIZE},
    {"top bit set and zero rejected", 0x80000000u, 65536, RTMP_CHUNK_ERR_CHUNK_SIZE},
    {"one over the cap rejected", 65537, 65536, RTMP_CHUNK_ERR_CHUNK_SIZE},
    {"exactly the cap accepted", 65536, 65536, RTMP_CHUNK_NEED_MORE},
    {"one accepted", 1, 65536, RTMP_CHUNK_NEED_MORE},
    {"16 MiB cap accepts 16 MiB", 16u << 20, 16u << 20, RTMP_CHUNK_NEED_MORE},
    {"config above the hard max is clamped", (16u << 20) + 1, 0x7FFFFFFF, RTMP_CHUNK_ERR_CHUNK_SIZE},
};

static void test_chunk_set_chunk_size_limits(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof cs_cases / sizeof cs_cases[0]; c++) {
        print_message("case: %s\n", cs_cases[c].name);
        struct rtmp_chunk_limits lim = {.max_chunk_size = cs_cases[c].max};
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(&lim);
        struct bb s;
        bb_init(&s);
        set_chunk_size_msg(&s, cs_cases[c].size);
        struct run r;
        drive(rd, &s, 0, &r);
        assert_int_equal(r.rc, cs_cases[c].want);
        if (cs_cases[c].want == RTMP_CHUNK_NEED_MORE) {
            assert_int_equal(rtmp_chunk_reader_chunk_size(rd), cs_cases[c].size);
        } else {
            assert_int_equal(rtmp_chunk_reader_chunk_size(rd), RTMP_CHUNK_SIZE_DEFAULT);
            /* a failed reader stays failed */
            size_t used;
            struct rtmp_message m;
            assert_int_equal(rtmp_chunk_read(rd, s.b, s.n, &used, &m), RTMP_CHUNK_ERR_FAILED);
        }
        run_free(&r);
        rtmp_chunk_reader_free(rd);
        free(s.b);
    }
}

static void test_chunk_set_chunk_size_short_payload_rejected(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 2, 0, 2, RTMP_MSG_SET_CHUNK_SIZE, 0);
    put8(&s, 0x10);
    put8(&s, 0x00);
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.rc, RTMP_CHUNK_ERR_CHUNK_SIZE);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

static void test_chunk_message_over_cap_rejected_at_header(void **state)
{
    (void)state;
    struct rtmp_chunk_limits lim = {.max_message_size = 1000};
    struct bb s;
    bb_init(&s);
    hdr0(&s, 6, 0, 1000, RTMP_MSG_VIDEO, 1); /* at the cap: fine */
    body(&s, 0, 0, 128);
    for (int i = 1; i < 8; i++) {
        hdr3(&s, 6);
        body(&s, 0, 128u * i, i == 7 ? 1000 - 7 * 128 : 128);
    }
    size_t ok_len = s.n;
    hdr1(&s, 6, 0, 1001, RTMP_MSG_VIDEO); /* one over */
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(&lim);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.rc, RTMP_CHUNK_ERR_TOO_BIG);
    assert_int_equal(r.consumed, ok_len + 8); /* the whole offending header */
    run_free(&r);
    rtmp_chunk_reader_free(rd);

    /* the largest possible length (24 bits) against the 8 MiB default */
    s.n = 0;
    hdr0(&s, 6, 0, 0xFFFFFF, RTMP_MSG_VIDEO, 1);
    rd = rtmp_chunk_reader_new(NULL);
    drive(rd, &s, 0, &r);
    assert_int_equal(r.rc, RTMP_CHUNK_ERR_TOO_BIG);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

/* ---- chunk stream ids -------------------------------------------------- */

static void test_chunk_csid_forms_round_trip(void **state)
{
    (void)state;
    static const uint32_t ids[] = {2, 3, 63, 64, 65, 319, 320, 321, 1000, 65535, 65599};
    struct bb s;
    bb_init(&s);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        hdr0(&s, ids[i], (uint32_t)i, 3, RTMP_MSG_AUDIO, 1);
        body(&s, (uint8_t)i, 0, 3);
    }
    for (size_t st = 0; st < NSTEPS; st++) {
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
        struct run r;
        drive(rd, &s, steps[st], &r);
        assert_int_equal(r.n, (int)(sizeof ids / sizeof ids[0]));
        for (int i = 0; i < r.n; i++) {
            assert_int_equal(r.m[i].csid, ids[i]);
            check_body(&r.m[i], (uint8_t)i);
        }
        run_free(&r);
        rtmp_chunk_reader_free(rd);
    }
    free(s.b);
}

static void test_chunk_too_many_chunk_streams_rejected(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    /* default cap 64: 64 distinct csids pass, the 65th fails */
    for (uint32_t i = 0; i < 65; i++) {
        hdr0(&s, 2 + i * 1000, 0, 1, RTMP_MSG_AUDIO, 1);
        put8(&s, 0);
    }
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.n, 64);
    assert_int_equal(r.rc, RTMP_CHUNK_ERR_TOO_MANY_STREAMS);
    run_free(&r);
    rtmp_chunk_reader_free(rd);

    /* a raised cap: 1000 csids spread over the whole 2..65599 range */
    s.n = 0;
    for (uint32_t i = 0; i < 1001; i++) {
        hdr0(&s, 2 + (i * 65) % 65598, i, 1, RTMP_MSG_AUDIO, 1);
        put8(&s, (uint8_t)i);
    }
    struct rtmp_chunk_limits lim = {.max_chunk_streams = 1000};
    rd = rtmp_chunk_reader_new(&lim);
    drive(rd, &s, 0, &r);
    assert_int_equal(r.n, 1000);
    assert_int_equal(r.rc, RTMP_CHUNK_ERR_TOO_MANY_STREAMS);
    assert_int_equal(rtmp_chunk_reader_stream_count(rd), 1000);
    run_free(&r);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

static void test_chunk_type3_or_type2_on_unknown_stream_is_protocol_error(void **state)
{
    (void)state;
    for (int fmt = 2; fmt <= 3; fmt++) {
        struct bb s;
        bb_init(&s);
        if (fmt == 2)
            hdr2(&s, 9, 10);
        else
            hdr3(&s, 9);
        put8(&s, 0);
        struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
        struct run r;
        drive(rd, &s, 0, &r);
        assert_int_equal(r.rc, RTMP_CHUNK_ERR_PROTOCOL);
        rtmp_chunk_reader_free(rd);
        free(s.b);
    }
}

static void test_chunk_type1_on_fresh_stream_is_tolerated(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr1(&s, 5, 3000, 4, RTMP_MSG_AUDIO); /* librtmp's first packet with ts != 0 */
    body(&s, 1, 0, 4);
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.m[0].ts, 3000);
    assert_int_equal(r.m[0].msid, 0);
    run_free(&r);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

/* ---- abort, restarts, ceilings ----------------------------------------- */

static void test_chunk_abort_drops_partial_message(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 6, 0, 300, RTMP_MSG_VIDEO, 1);
    body(&s, 0xAA, 0, 128);
    hdr0(&s, 2, 0, 4, RTMP_MSG_ABORT, 0);
    put32(&s, 6);
    hdr0(&s, 6, 40, 10, RTMP_MSG_VIDEO, 1); /* fresh message on the same csid */
    body(&s, 0x11, 0, 10);
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.m[0].type, RTMP_MSG_ABORT);
    assert_int_equal(r.m[1].len, 10);
    assert_int_equal(r.m[1].ts, 40);
    check_body(&r.m[1], 0x11);
    run_free(&r);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

static void test_chunk_new_header_mid_message_discards_partial(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 6, 0, 300, RTMP_MSG_VIDEO, 1);
    body(&s, 0xAA, 0, 128);
    hdr1(&s, 6, 33, 10, RTMP_MSG_VIDEO); /* encoder restarted the message */
    body(&s, 0x22, 0, 10);
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.rc, RTMP_CHUNK_NEED_MORE);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.m[0].len, 10);
    assert_int_equal(r.m[0].ts, 33);
    check_body(&r.m[0], 0x22);
    run_free(&r);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

static void test_chunk_partial_messages_over_buffer_ceiling_rejected(void **state)
{
    (void)state;
    struct rtmp_chunk_limits lim = {.max_message_size = 100000, .max_buffered = 64 * 1024};
    struct bb s;
    bb_init(&s);
    set_chunk_size_msg(&s, 30000);
    /* three half-sent 60000-byte messages on three chunk streams */
    for (uint32_t c = 4; c < 7; c++) {
        hdr0(&s, c, 0, 60000, RTMP_MSG_VIDEO, 1);
        body(&s, 0, 0, 30000);
    }
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(&lim);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.rc, RTMP_CHUNK_ERR_BUFFERED);
    run_free(&r);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

static void test_chunk_completed_buffers_are_reclaimed_under_pressure(void **state)
{
    (void)state;
    /* Many chunk streams each carrying complete 40000-byte messages in turn
     * stay within a 100 KB ceiling: finished buffers are given back. */
    struct rtmp_chunk_limits lim = {.max_message_size = 50000, .max_buffered = 100000};
    struct bb s;
    bb_init(&s);
    set_chunk_size_msg(&s, 65536);
    for (uint32_t c = 4; c < 20; c++) {
        hdr0(&s, c, c, 40000, RTMP_MSG_VIDEO, 1);
        body(&s, (uint8_t)c, 0, 40000);
    }
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(&lim);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.rc, RTMP_CHUNK_NEED_MORE);
    assert_int_equal(r.n, 17);
    for (int i = 1; i < r.n; i++)
        check_body(&r.m[i], (uint8_t)r.m[i].csid);
    run_free(&r);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

static void test_chunk_unwrap_is_per_message_stream(void **state)
{
    (void)state;
    struct bb s;
    bb_init(&s);
    hdr0(&s, 6, 0xFFFFFFF0u, 1, RTMP_MSG_VIDEO, 1);
    put8(&s, 0);
    hdr0(&s, 3, 5, 1, RTMP_MSG_COMMAND_AMF0, 0); /* control stream, own timeline */
    put8(&s, 0);
    hdr1(&s, 6, 0x20, 1, RTMP_MSG_VIDEO); /* wraps on msid 1 */
    put8(&s, 0);
    hdr0(&s, 4, 0x18, 1, RTMP_MSG_AUDIO, 1); /* audio on another csid, same msid */
    put8(&s, 0);
    struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
    struct run r;
    drive(rd, &s, 0, &r);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.m[0].ts64, 0xFFFFFFF0ll);
    assert_int_equal(r.m[1].ts64, 5);
    assert_int_equal(r.m[2].ts, 0x10);
    assert_int_equal(r.m[2].ts64, 0x100000010ll);
    assert_int_equal(r.m[3].ts64, 0x100000018ll);
    run_free(&r);
    rtmp_chunk_reader_free(rd);
    free(s.b);
}

/* ---- writer -------------------------------------------------------------- */

struct wr_case {
    const char *name;
    uint32_t csid, ts, chunk;
    size_t len;
};

static const struct wr_case wr_cases[] = {
    {"empty message", 3, 0, 128, 0},
    {"one chunk", 3, 1, 128, 128},
    {"default chunk size split", 6, 1234, 128, 1000},
    {"2-byte csid", 300, 55, 4096, 10000},
    {"3-byte csid", 65599, 56, 60, 200},
    {"extended timestamp repeated on type 3", 4, 0x01020304, 128, 700},
    {"extended timestamp at the marker value", 4, 0xFFFFFF, 100, 250},
    {"chunk size 1", 2, 9, 1, 20},
};

static void test_chunk_writer_round_trip_table(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof wr_cases / sizeof wr_cases[0]; c++) {
        const struct wr_case *w = &wr_cases[c];
        print_message("case: %s\n", w->name);
        uint8_t *payload = malloc(w->len + 1);
        for (size_t i = 0; i < w->len; i++)
            payload[i] = (uint8_t)(7 + i);
        struct rtmp_chunk_out h = {.csid = w->csid, .type = RTMP_MSG_VIDEO, .stream_id = 1, .timestamp = w->ts};
        size_t need = rtmp_chunk_write_size(&h, w->len, w->chunk);
        struct bb s;
        bb_init(&s);
        if (w->chunk != 128)
            set_chunk_size_msg(&s, w->chunk);
        assert_int_equal(rtmp_chunk_write(s.b + s.n, need - 1, &h, payload, w->len, w->chunk), 0);
        size_t n = rtmp_chunk_write(s.b + s.n, s.cap - s.n, &h, payload, w->len, w->chunk);
        assert_int_equal(n, need);
        s.n += n;
        for (size_t st = 0; st < NSTEPS; st++) {
            struct rtmp_chunk_reader *rd = rtmp_chunk_reader_new(NULL);
            struct run r;
            drive(rd, &s, steps[st], &r);
            assert_int_equal(r.rc, RTMP_CHUNK_NEED_MORE);
            struct got *g = &r.m[r.n - 1];
            assert_int_equal(g->csid, w->csid);
            assert_int_equal(g->ts, w->ts);
            assert_int_equal(g->msid, 1);
            assert_int_equal(g->len, w->len);
            check_body(g, 7);
            run_free(&r);
            rtmp_chunk_reader_free(rd);
        }
        free(s.b);
        free(payload);
    }
}

static void test_chunk_writer_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[64], p[4] = {0};
    struct rtmp_chunk_out h = {.csid = 3, .type = 20};
    assert_int_equal(rtmp_chunk_write(buf, sizeof buf, &h, p, 4, 0), 0);
    h.csid = 1;
    assert_int_equal(rtmp_chunk_write(buf, sizeof buf, &h, p, 4, 128), 0);
    h.csid = 65600;
    assert_int_equal(rtmp_chunk_write(buf, sizeof buf, &h, p, 4, 128), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_fmt0_single_chunk_message),
        cmocka_unit_test(test_chunk_message_split_over_default_chunk_size),
        cmocka_unit_test(test_chunk_timestamp_table),
        cmocka_unit_test(test_chunk_extended_timestamp_on_continuation_chunks),
        cmocka_unit_test(test_chunk_extended_timestamp_omitted_on_continuation_is_tolerated),
        cmocka_unit_test(test_chunk_interleaved_chunk_streams),
        cmocka_unit_test(test_chunk_set_chunk_size_mid_message),
        cmocka_unit_test(test_chunk_set_chunk_size_limits),
        cmocka_unit_test(test_chunk_set_chunk_size_short_payload_rejected),
        cmocka_unit_test(test_chunk_message_over_cap_rejected_at_header),
        cmocka_unit_test(test_chunk_csid_forms_round_trip),
        cmocka_unit_test(test_chunk_too_many_chunk_streams_rejected),
        cmocka_unit_test(test_chunk_type3_or_type2_on_unknown_stream_is_protocol_error),
        cmocka_unit_test(test_chunk_type1_on_fresh_stream_is_tolerated),
        cmocka_unit_test(test_chunk_abort_drops_partial_message),
        cmocka_unit_test(test_chunk_new_header_mid_message_discards_partial),
        cmocka_unit_test(test_chunk_partial_messages_over_buffer_ceiling_rejected),
        cmocka_unit_test(test_chunk_completed_buffers_are_reclaimed_under_pressure),
        cmocka_unit_test(test_chunk_unwrap_is_per_message_stream),
        cmocka_unit_test(test_chunk_writer_round_trip_table),
        cmocka_unit_test(test_chunk_writer_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
