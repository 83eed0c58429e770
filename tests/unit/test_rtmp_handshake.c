/* test_rtmp_handshake.c — server handshake against client packets built the
 * way FFmpeg (digest, schema 0), Flash/librtmp-FP9 (schema 1) and
 * GStreamer rtmp2 / librtmp plain (zero version) build them. The S1/S2
 * checks are the ones librtmp's client performs (handshake.h HandShake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/bytes.h"
#include "ingest/rtmp_handshake.h"

#define SIG RTMP_HANDSHAKE_SIG_SIZE

static const uint8_t fp_key[62] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F', 'l', 'a', 's',
    'h', ' ', 'P', 'l', 'a', 'y', 'e', 'r', ' ', '0', '0', '1', 0xF0, 0xEE, 0xC2, 0x4A, 0x80,
    0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D,
    0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE};
static const uint8_t fms_key[68] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F', 'l', 'a', 's',
    'h', ' ', 'M', 'e', 'd', 'i', 'a', ' ', 'S', 'e', 'r', 'v', 'e', 'r', ' ', '0', '0', '1',
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E,
    0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB,
    0x31, 0xAE};

/* Client-side digest offset, written independently of the module:
 * librtmp GetDigestOffset1 (base 8) / GetDigestOffset2 (base 772). */
static size_t client_offset(const uint8_t *sig, int schema)
{
    size_t base = schema == 0 ? 8 : 772;
    unsigned sum = 0;
    for (int i = 0; i < 4; i++)
        sum += sig[base + i];
    return sum % 728 + base + 4;
}

static void hmac_without(const uint8_t *key, size_t klen, const uint8_t *sig, size_t skip,
                         uint8_t out[32])
{
    uint8_t tmp[SIG];
    memcpy(tmp, sig, skip);
    memcpy(tmp + skip, sig + skip + 32, SIG - skip - 32);
    unsigned olen = 0;
    assert_non_null(HMAC(EVP_sha256(), key, (int)klen, tmp, SIG - 32, out, &olen));
}

static void hmac_plain(const uint8_t *key, size_t klen, const uint8_t *m, size_t n, uint8_t out[32])
{
    unsigned olen = 0;
    assert_non_null(HMAC(EVP_sha256(), key, (int)klen, m, n, out, &olen));
}

/* Deterministic filler (no randomness in tests). */
static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

enum c1_kind { C1_PLAIN, C1_DIGEST0, C1_DIGEST1, C1_BAD_DIGEST };

/* c0c1 = 1 + SIG bytes; returns the client digest position or 0. */
static size_t build_c0c1(uint8_t *c0c1, enum c1_kind kind, uint32_t seed)
{
    uint8_t *c1 = c0c1 + 1;
    c0c1[0] = 3;
    fill(c1, SIG, seed);
    wr_be32(c1, 12345);
    if (kind == C1_PLAIN) {
        memset(c1 + 4, 0, 4);
        return 0;
    }
    /* FFmpeg's RTMP_CLIENT_VER 9.0.124.2 */
    c1[4] = 9; c1[5] = 0; c1[6] = 124; c1[7] = 2;
    size_t pos = client_offset(c1, kind == C1_DIGEST1 ? 1 : 0);
    hmac_without(fp_key, 30, c1, pos, c1 + pos);
    if (kind == C1_BAD_DIGEST)
        c1[pos] ^= 0xff;
    return pos;
}

struct hs_case {
    const char *name;
    enum c1_kind kind;
    enum rtmp_handshake_kind want_kind;
    int want_schema;
    size_t step; /* feed granularity; 0 = all at once */
};

static const struct hs_case hs_cases[] = {
    {"plain zero version", C1_PLAIN, RTMP_HS_KIND_PLAIN, -1, 0},
    {"plain byte by byte", C1_PLAIN, RTMP_HS_KIND_PLAIN, -1, 1},
    {"ffmpeg digest schema 0", C1_DIGEST0, RTMP_HS_KIND_DIGEST, 0, 0},
    {"digest schema 1", C1_DIGEST1, RTMP_HS_KIND_DIGEST, 1, 0},
    {"digest schema 0 in 7-byte pieces", C1_DIGEST0, RTMP_HS_KIND_DIGEST, 0, 7},
    {"nonzero version bad digest falls back to plain", C1_BAD_DIGEST, RTMP_HS_KIND_PLAIN, -1, 0},
};

/* Feeds buf in pieces of `step`, asserting everything is consumed. */
static void feed_all(struct rtmp_handshake *hs, const uint8_t *buf, size_t n, size_t step)
{
    size_t off = 0;
    while (off < n) {
        size_t k = step == 0 ? n - off : (n - off < step ? n - off : step);
        ssize_t r = rtmp_handshake_feed(hs, buf + off, k);
        assert_int_equal(r, (ssize_t)k);
        off += k;
    }
}

/* librtmp client's check of S1: digest with the 36-byte FMS key at either
 * schema (it tries schema 1 first, then schema 0). */
static int verify_s1(const uint8_t *s1)
{
    for (int schema = 1; schema >= 0; schema--) {
        size_t pos = client_offset(s1, schema);
        uint8_t d[32];
        hmac_without(fms_key, 36, s1, pos, d);
        if (memcmp(d, s1 + pos, 32) == 0)
            return schema;
    }
    return -1;
}

static void run_case(const struct hs_case *c)
{
    uint8_t c0c1[1 + SIG], c2[SIG];
    size_t cpos = build_c0c1(c0c1, c->kind, 77);
    fill(c2, SIG, 99);

    struct rtmp_handshake *hs = rtmp_handshake_new(4242);
    assert_non_null(hs);
    size_t olen = 1;
    assert_null(rtmp_handshake_take_output(hs, &olen));
    assert_int_equal(olen, 0);

    feed_all(hs, c0c1, sizeof c0c1, c->step);
    assert_int_equal(rtmp_handshake_state(hs), RTMP_HS_WAIT_C2);
    assert_int_equal(rtmp_handshake_kind(hs), c->want_kind);
    assert_int_equal(rtmp_handshake_digest_schema(hs), c->want_schema);
    assert_int_equal(rtmp_handshake_peer_epoch(hs), 12345);

    const uint8_t *out = rtmp_handshake_take_output(hs, &olen);
    assert_non_null(out);
    assert_int_equal(olen, 1 + 2 * SIG);
    assert_null(rtmp_handshake_take_output(hs, &olen)); /* taken once */
    const uint8_t *s1 = out + 1, *s2 = out + 1 + SIG, *c1 = c0c1 + 1;
    assert_int_equal(out[0], 3);
    assert_int_equal(rd_be32(s1), 4242);

    if (c->want_kind == RTMP_HS_KIND_PLAIN) {
        assert_int_equal(rd_be32(s1 + 4), 0);
        /* rtmp2sink compares S2[8..] with its C1 random bytes */
        assert_memory_equal(s2 + 8, c1 + 8, SIG - 8);
        assert_int_equal(rd_be32(s2), 12345);
    } else {
        assert_int_not_equal(rd_be32(s1 + 4), 0);
        assert_int_equal(verify_s1(s1), c->want_schema);
        /* S2 signature as librtmp verifies it */
        uint8_t key[32], sig[32];
        hmac_plain(fms_key, sizeof fms_key, c1 + cpos, 32, key);
        hmac_plain(key, 32, s2, SIG - 32, sig);
        assert_memory_equal(sig, s2 + SIG - 32, 32);
    }

    /* C2 then chunk-stream bytes: only C2 is consumed */
    uint8_t tail[SIG + 3];
    memcpy(tail, c2, SIG);
    memcpy(tail + SIG, "\x03\x00\x00", 3);
    if (c->step == 0) {
        assert_int_equal(rtmp_handshake_feed(hs, tail, sizeof tail), SIG);
    } else {
        size_t off = 0;
        while (rtmp_handshake_state(hs) != RTMP_HS_DONE) {
            size_t k = sizeof tail - off < c->step ? sizeof tail - off : c->step;
            ssize_t r = rtmp_handshake_feed(hs, tail + off, k);
            assert_true(r >= 0);
            off += (size_t)r;
        }
        assert_int_equal(off, SIG);
    }
    assert_int_equal(rtmp_handshake_state(hs), RTMP_HS_DONE);
    assert_true(rtmp_handshake_feed(hs, tail, 1) < 0);
    rtmp_handshake_free(hs);
}

static void test_handshake_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hs_cases / sizeof hs_cases[0]; i++) {
        print_message("case: %s\n", hs_cases[i].name);
        run_case(&hs_cases[i]);
    }
}

static void test_handshake_s1_is_fresh_per_session(void **state)
{
    (void)state;
    uint8_t c0c1[1 + SIG];
    build_c0c1(c0c1, C1_DIGEST0, 5);
    struct rtmp_handshake *a = rtmp_handshake_new(1), *b = rtmp_handshake_new(1);
    assert_int_equal(rtmp_handshake_feed(a, c0c1, sizeof c0c1), sizeof c0c1);
    assert_int_equal(rtmp_handshake_feed(b, c0c1, sizeof c0c1), sizeof c0c1);
    size_t la, lb;
    const uint8_t *oa = rtmp_handshake_take_output(a, &la), *ob = rtmp_handshake_take_output(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_not_equal(oa + 9, ob + 9, 64); /* random, not a constant */
    rtmp_handshake_free(a);
    rtmp_handshake_free(b);
}

struct bad_c0 { const char *name; uint8_t c0; };
static const struct bad_c0 bad_c0s[] = {
    {"rtmpe 6 refused", 6}, {"rtmpe 8 refused", 8}, {"http GET refused", 'G'}, {"zero", 0},
};

static void test_handshake_rejects_bad_c0(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_c0s / sizeof bad_c0s[0]; i++) {
        print_message("case: %s\n", bad_c0s[i].name);
        struct rtmp_handshake *hs = rtmp_handshake_new(0);
        uint8_t b[4] = {bad_c0s[i].c0, 1, 2, 3};
        assert_int_equal(rtmp_handshake_feed(hs, b, sizeof b), RTMP_HS_ERR_VERSION);
        assert_int_equal(rtmp_handshake_state(hs), RTMP_HS_FAILED);
        size_t n;
        assert_null(rtmp_handshake_take_output(hs, &n));
        assert_true(rtmp_handshake_feed(hs, b, 1) < 0);
        rtmp_handshake_free(hs);
    }
}

static void test_handshake_truncated_c1_waits_without_output(void **state)
{
    (void)state;
    uint8_t c0c1[1 + SIG];
    build_c0c1(c0c1, C1_DIGEST0, 3);
    struct rtmp_handshake *hs = rtmp_handshake_new(0);
    assert_int_equal(rtmp_handshake_feed(hs, c0c1, 1000), 1000);
    assert_int_equal(rtmp_handshake_feed(hs, c0c1, 0), 0);
    assert_int_equal(rtmp_handshake_state(hs), RTMP_HS_WAIT_C0C1);
    size_t n;
    assert_null(rtmp_handshake_take_output(hs, &n));
    assert_int_equal(rtmp_handshake_kind(hs), RTMP_HS_KIND_UNKNOWN);
    rtmp_handshake_free(hs);
}

static void test_handshake_digest_offset_matches_formula(void **state)
{
    (void)state;
    uint8_t sig[SIG];
    for (uint32_t seed = 0; seed < 64; seed++) {
        fill(sig, SIG, seed);
        for (int schema = 0; schema < 2; schema++) {
            size_t off = rtmp_handshake_digest_offset(sig, schema);
            assert_int_equal(off, client_offset(sig, schema));
            assert_true(off + 32 <= SIG);
        }
    }
    memset(sig, 0xff, SIG); /* max sum */
    assert_int_equal(rtmp_handshake_digest_offset(sig, 1), (4 * 255) % 728 + 776);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_table),
        cmocka_unit_test(test_handshake_s1_is_fresh_per_session),
        cmocka_unit_test(test_handshake_rejects_bad_c0),
        cmocka_unit_test(test_handshake_truncated_c1_waits_without_output),
        cmocka_unit_test(test_handshake_digest_offset_matches_formula),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
