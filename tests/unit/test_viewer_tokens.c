/* test_viewer_tokens.c — the viewer token format (SPEC API-8): signing,
 * verification and every way a token must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/viewer_tokens.h"
#include "core/secure.h"

static const uint8_t key[] = "0123456789abcdef0123456789abcdef";
#define KEYLEN (sizeof key - 1)
#define NOW 1700000000

static struct viewer_claims claims(const char *jti, int64_t tid, int64_t room, int64_t app,
                                   enum viewer_role role, const char *uid, int64_t exp)
{
    struct viewer_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.jti, sizeof c.jti, "%s", jti);
    c.tid = tid;
    c.room_id = room;
    c.app_id = app;
    c.role = role;
    snprintf(c.uid, sizeof c.uid, "%s", uid);
    c.exp = exp;
    return c;
}

/* A token with an arbitrary header and payload text, correctly signed with
 * key: what only the holder of the key could make. */
static void forge(const char *header_json, const char *payload_json, char *out, size_t cap)
{
    char h[512], p[2048];
    secure_base64url((const uint8_t *)header_json, strlen(header_json), h);
    secure_base64url((const uint8_t *)payload_json, strlen(payload_json), p);
    int n = snprintf(out, cap, "%s.%s", h, p);
    uint8_t mac[32];
    secure_hmac_sha256(key, KEYLEN, out, (size_t)n, mac);
    char sig[64];
    secure_base64url(mac, sizeof mac, sig);
    snprintf(out + n, cap - (size_t)n, ".%s", sig);
}

static void test_header_constant_is_the_hs256_jwt_header(void **state)
{
    (void)state;
    struct viewer_claims c = claims("abcDEF123", 7, 12, 3, VIEWER_ROLE_STUDENT, "", NOW + 60);
    char tok[VIEWER_TOKEN_MAX];
    assert_true(viewer_token_sign(key, KEYLEN, &c, tok, sizeof tok) > 0);
    char *dot = strchr(tok, '.');
    assert_non_null(dot);
    uint8_t hdr[64];
    int n = secure_base64url_decode(tok, (size_t)(dot - tok), hdr, sizeof hdr);
    assert_int_equal(n, (int)strlen("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"));
    assert_memory_equal(hdr, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", (size_t)n);
}

struct roundtrip_case {
    const char *name;
    struct viewer_claims c;
};

static void test_sign_then_verify_round_trips_every_claim(void **state)
{
    (void)state;
    const struct roundtrip_case cases[] = {
        {"student, no uid", claims("a", 1, 1, 1, VIEWER_ROLE_STUDENT, "", NOW + 1)},
        {"admin with uid", claims("ZZZZZZZZZZZZZZZZZZZZZZ", 99, 12345678901LL, 42, VIEWER_ROLE_ADMIN,
                                  "user-42", NOW + VIEWER_TOKEN_MAX_TTL)},
        {"moderator, utf-8 uid", claims("m0d", 5, 6, 7, VIEWER_ROLE_MODERATOR, "Zoë \"quoted\" \\ ü",
                                        NOW + 3600)},
        {"teacher, long uid", claims("t", 2, 3, 4, VIEWER_ROLE_TEACHER,
                                     "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
                                     "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu",
                                     NOW + 10)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tok[VIEWER_TOKEN_MAX];
        int n = viewer_token_sign(key, KEYLEN, &cases[i].c, tok, sizeof tok);
        if (n <= 0 || (size_t)n != strlen(tok))
            fail_msg("case %s: sign returned %d", cases[i].name, n);
        struct viewer_claims got;
        enum viewer_token_status st = viewer_token_verify(key, KEYLEN, tok, strlen(tok), NOW, &got);
        if (st != VIEWER_TOKEN_OK)
            fail_msg("case %s: verify returned %d", cases[i].name, st);
        assert_string_equal(got.jti, cases[i].c.jti);
        assert_int_equal(got.tid, cases[i].c.tid);
        assert_int_equal(got.room_id, cases[i].c.room_id);
        assert_int_equal(got.app_id, cases[i].c.app_id);
        assert_int_equal(got.role, cases[i].c.role);
        assert_string_equal(got.uid, cases[i].c.uid);
        assert_int_equal(got.exp, cases[i].c.exp);
        /* URL-safe: base64url characters and the two dots only. */
        for (const char *p = tok; *p; p++)
            if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", *p))
                fail_msg("case %s: character %c is not URL-safe", cases[i].name, *p);
    }
}

static void test_signing_is_deterministic(void **state)
{
    (void)state;
    struct viewer_claims c = claims("same", 1, 2, 3, VIEWER_ROLE_STUDENT, "u", NOW + 5);
    char a[VIEWER_TOKEN_MAX], b[VIEWER_TOKEN_MAX];
    assert_true(viewer_token_sign(key, KEYLEN, &c, a, sizeof a) > 0);
    assert_true(viewer_token_sign(key, KEYLEN, &c, b, sizeof b) > 0);
    assert_string_equal(a, b);
}

static void test_expired_token_is_refused_but_claims_are_read(void **state)
{
    (void)state;
    const struct {
        int64_t exp, now;
        enum viewer_token_status want;
    } cases[] = {
        {NOW + 1, NOW, VIEWER_TOKEN_OK},
        {NOW, NOW, VIEWER_TOKEN_EXPIRED},      /* exp is exclusive */
        {NOW - 1, NOW, VIEWER_TOKEN_EXPIRED},
        {1, NOW, VIEWER_TOKEN_EXPIRED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct viewer_claims c = claims("exp", 1, 2, 3, VIEWER_ROLE_STUDENT, "", cases[i].exp);
        char tok[VIEWER_TOKEN_MAX];
        assert_true(viewer_token_sign(key, KEYLEN, &c, tok, sizeof tok) > 0);
        struct viewer_claims got;
        assert_int_equal(viewer_token_verify(key, KEYLEN, tok, strlen(tok), cases[i].now, &got),
                         cases[i].want);
        assert_int_equal(got.room_id, 2);
    }
}

static void test_tampered_or_foreign_tokens_are_refused(void **state)
{
    (void)state;
    struct viewer_claims c = claims("tamper", 1, 2, 3, VIEWER_ROLE_STUDENT, "", NOW + 60);
    char good[VIEWER_TOKEN_MAX];
    int n = viewer_token_sign(key, KEYLEN, &c, good, sizeof good);
    assert_true(n > 0);
    const char *dot1 = strchr(good, '.');
    const char *dot2 = strrchr(good, '.');
    struct viewer_claims got;

    /* Each byte of the payload and of the signature matters. */
    for (size_t i = (size_t)(dot1 - good) + 1; i < (size_t)n; i++) {
        if (good[i] == '.')
            continue;
        char t[VIEWER_TOKEN_MAX];
        memcpy(t, good, (size_t)n + 1);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        enum viewer_token_status st = viewer_token_verify(key, KEYLEN, t, (size_t)n, NOW, &got);
        if (st == VIEWER_TOKEN_OK)
            fail_msg("flipping byte %zu was accepted", i);
        assert_int_equal(got.room_id, 0); /* nothing leaks from a refused token */
    }
    /* Another key. */
    static const uint8_t other[] = "another-secret-another-secret-xx";
    assert_int_equal(viewer_token_verify(other, sizeof other - 1, good, (size_t)n, NOW, &got),
                     VIEWER_TOKEN_BAD_SIGNATURE);
    /* The payload of one token with the signature of another. */
    struct viewer_claims c2 = claims("tamper", 1, 999, 3, VIEWER_ROLE_ADMIN, "", NOW + 60);
    char other_tok[VIEWER_TOKEN_MAX];
    assert_true(viewer_token_sign(key, KEYLEN, &c2, other_tok, sizeof other_tok) > 0);
    char spliced[VIEWER_TOKEN_MAX];
    snprintf(spliced, sizeof spliced, "%.*s%s", (int)(strrchr(other_tok, '.') - other_tok), other_tok,
             dot2);
    assert_int_equal(viewer_token_verify(key, KEYLEN, spliced, strlen(spliced), NOW, &got),
                     VIEWER_TOKEN_BAD_SIGNATURE);
}

static void test_malformed_tokens_are_refused(void **state)
{
    (void)state;
    char good[VIEWER_TOKEN_MAX];
    struct viewer_claims c = claims("shape", 1, 2, 3, VIEWER_ROLE_STUDENT, "", NOW + 60);
    int n = viewer_token_sign(key, KEYLEN, &c, good, sizeof good);
    assert_true(n > 0);
    char none_alg[VIEWER_TOKEN_MAX], padded[VIEWER_TOKEN_MAX + 2], extra[VIEWER_TOKEN_MAX + 3],
        noncanon[VIEWER_TOKEN_MAX], huge[VIEWER_TOKEN_MAX + 10];
    forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"jti\":\"a\",\"tid\":1,\"room\":2,\"app\":3,"
          "\"role\":\"ADMIN\",\"exp\":1800000000}", none_alg, sizeof none_alg);
    snprintf(padded, sizeof padded, "%s=", good);
    snprintf(extra, sizeof extra, "%s.x", good);
    /* 43 base64url chars carry 258 bits: the last char's low bits must be 0. */
    memcpy(noncanon, good, (size_t)n + 1);
    char last = noncanon[n - 1];
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    noncanon[n - 1] = alpha[(strchr(alpha, last) - alpha) ^ 1];
    memset(huge, 'A', sizeof huge - 1);
    huge[sizeof huge - 1] = 0;
    const struct {
        const char *name, *tok;
        enum viewer_token_status want;
    } cases[] = {
        {"empty", "", VIEWER_TOKEN_MALFORMED},
        {"no dots", "abcdef", VIEWER_TOKEN_MALFORMED},
        {"one dot", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30", VIEWER_TOKEN_MALFORMED},
        {"three parts + 1", extra, VIEWER_TOKEN_MALFORMED},
        {"alg none", none_alg, VIEWER_TOKEN_MALFORMED},
        {"padding", padded, VIEWER_TOKEN_MALFORMED},
        {"non-canonical signature", noncanon, VIEWER_TOKEN_BAD_SIGNATURE},
        {"too long", huge, VIEWER_TOKEN_MALFORMED},
        {"empty signature", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.", VIEWER_TOKEN_MALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct viewer_claims got;
        enum viewer_token_status st =
            viewer_token_verify(key, KEYLEN, cases[i].tok, strlen(cases[i].tok), NOW, &got);
        if (st != cases[i].want)
            fail_msg("case %s: got %d want %d", cases[i].name, st, cases[i].want);
    }
    struct viewer_claims got;
    assert_int_equal(viewer_token_verify(key, KEYLEN, NULL, 0, NOW, &got), VIEWER_TOKEN_MALFORMED);
}

static void test_signed_but_invalid_claims_are_refused(void **state)
{
    (void)state;
    static const char *const H = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const struct {
        const char *name, *payload;
        enum viewer_token_status want;
    } cases[] = {
        {"valid (control)", "{\"jti\":\"a1\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"STUDENT\",\"exp\":1800000000}", VIEWER_TOKEN_OK},
        {"extra claim ignored", "{\"jti\":\"a1\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"STUDENT\",\"exp\":1800000000,\"x\":[1]}", VIEWER_TOKEN_OK},
        {"not an object", "[1,2,3]", VIEWER_TOKEN_MALFORMED},
        {"not json", "{jti:", VIEWER_TOKEN_MALFORMED},
        {"missing tid", "{\"jti\":\"a1\",\"room\":2,\"app\":3,\"role\":\"STUDENT\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"room zero", "{\"jti\":\"a1\",\"tid\":1,\"room\":0,\"app\":3,\"role\":\"STUDENT\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"room as string", "{\"jti\":\"a1\",\"tid\":1,\"room\":\"2\",\"app\":3,\"role\":\"STUDENT\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"unknown role", "{\"jti\":\"a1\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"ROOT\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"lower-case role", "{\"jti\":\"a1\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"admin\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"jti with symbols", "{\"jti\":\"a/1\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"STUDENT\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"jti too long", "{\"jti\":\"aaaaaaaaaaaaaaaaaaaaaaa\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"STUDENT\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"uid not a string", "{\"jti\":\"a1\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"STUDENT\",\"uid\":5,\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"uid with NUL", "{\"jti\":\"a1\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"STUDENT\",\"uid\":\"a\\u0000b\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"duplicate room", "{\"jti\":\"a1\",\"tid\":1,\"room\":2,\"room\":5,\"app\":3,\"role\":\"STUDENT\",\"exp\":1800000000}", VIEWER_TOKEN_MALFORMED},
        {"exp as float", "{\"jti\":\"a1\",\"tid\":1,\"room\":2,\"app\":3,\"role\":\"STUDENT\",\"exp\":1.8e9}", VIEWER_TOKEN_MALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tok[VIEWER_TOKEN_MAX];
        forge(H, cases[i].payload, tok, sizeof tok);
        struct viewer_claims got;
        enum viewer_token_status st = viewer_token_verify(key, KEYLEN, tok, strlen(tok), NOW, &got);
        if (st != cases[i].want)
            fail_msg("case %s: got %d want %d", cases[i].name, st, cases[i].want);
    }
}

static void test_sign_refuses_claims_out_of_range(void **state)
{
    (void)state;
    char big_uid[VIEWER_UID_MAX + 2];
    memset(big_uid, 'u', sizeof big_uid - 1);
    big_uid[sizeof big_uid - 1] = 0;
    struct viewer_claims too_long = claims("a", 1, 2, 3, VIEWER_ROLE_STUDENT, "", NOW);
    memcpy(too_long.uid, big_uid, sizeof too_long.uid - 1); /* exactly VIEWER_UID_MAX: allowed */
    struct {
        const char *name;
        struct viewer_claims c;
        int ok;
    } cases[] = {
        {"role none", claims("a", 1, 2, 3, VIEWER_ROLE_NONE, "", NOW), 0},
        {"role past admin", claims("a", 1, 2, 3, (enum viewer_role)9, "", NOW), 0},
        {"empty jti", claims("", 1, 2, 3, VIEWER_ROLE_STUDENT, "", NOW), 0},
        {"jti symbol", claims("a-b", 1, 2, 3, VIEWER_ROLE_STUDENT, "", NOW), 0},
        {"tid zero", claims("a", 0, 2, 3, VIEWER_ROLE_STUDENT, "", NOW), 0},
        {"room negative", claims("a", 1, -2, 3, VIEWER_ROLE_STUDENT, "", NOW), 0},
        {"app zero", claims("a", 1, 2, 0, VIEWER_ROLE_STUDENT, "", NOW), 0},
        {"exp zero", claims("a", 1, 2, 3, VIEWER_ROLE_STUDENT, "", 0), 0},
        {"uid invalid utf-8", claims("a", 1, 2, 3, VIEWER_ROLE_STUDENT, "\xff\xfe", NOW), 0},
        {"uid at the limit", too_long, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tok[VIEWER_TOKEN_MAX];
        int n = viewer_token_sign(key, KEYLEN, &cases[i].c, tok, sizeof tok);
        if ((n > 0) != cases[i].ok)
            fail_msg("case %s: sign returned %d", cases[i].name, n);
    }
    /* A buffer too small is an error, never a truncated token. */
    struct viewer_claims c = claims("a", 1, 2, 3, VIEWER_ROLE_STUDENT, "", NOW);
    char small[40];
    assert_int_equal(viewer_token_sign(key, KEYLEN, &c, small, sizeof small), -1);
}

static void test_role_names_parse_exactly(void **state)
{
    (void)state;
    const struct {
        const char *s;
        enum viewer_role want;
    } cases[] = {
        {"STUDENT", VIEWER_ROLE_STUDENT}, {"MODERATOR", VIEWER_ROLE_MODERATOR},
        {"TEACHER", VIEWER_ROLE_TEACHER}, {"ADMIN", VIEWER_ROLE_ADMIN},
        {"student", VIEWER_ROLE_NONE},    {"NONE", VIEWER_ROLE_NONE},
        {"", VIEWER_ROLE_NONE},           {"ADMIN ", VIEWER_ROLE_NONE},
        {NULL, VIEWER_ROLE_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(viewer_role_parse(cases[i].s), cases[i].want);
    /* Roles are ordered by power: the authorization check compares them. */
    assert_true(VIEWER_ROLE_STUDENT < VIEWER_ROLE_MODERATOR);
    assert_true(VIEWER_ROLE_MODERATOR < VIEWER_ROLE_TEACHER);
    assert_true(VIEWER_ROLE_TEACHER < VIEWER_ROLE_ADMIN);
    for (int r = VIEWER_ROLE_STUDENT; r <= VIEWER_ROLE_ADMIN; r++)
        assert_int_equal(viewer_role_parse(viewer_role_name((enum viewer_role)r)), r);
}

static void test_service_refuses_tokens_before_start(void **state)
{
    (void)state;
    const char *code = NULL;
    assert_int_equal(viewer_tokens_check("", NULL, &code), 401);
    assert_string_equal(code, "TOKEN_REQUIRED");
    assert_int_equal(viewer_token_authorize("abc.def.ghi", 1, VIEWER_ROLE_STUDENT, NULL, &code), 401);
    assert_string_equal(code, "TOKEN_INVALID");
    struct viewer_claims c = claims("a", 1, 2, 3, VIEWER_ROLE_STUDENT, "", NOW);
    char tok[VIEWER_TOKEN_MAX];
    assert_int_equal(viewer_tokens_sign(&c, tok, sizeof tok), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_constant_is_the_hs256_jwt_header),
        cmocka_unit_test(test_sign_then_verify_round_trips_every_claim),
        cmocka_unit_test(test_signing_is_deterministic),
        cmocka_unit_test(test_expired_token_is_refused_but_claims_are_read),
        cmocka_unit_test(test_tampered_or_foreign_tokens_are_refused),
        cmocka_unit_test(test_malformed_tokens_are_refused),
        cmocka_unit_test(test_signed_but_invalid_claims_are_refused),
        cmocka_unit_test(test_sign_refuses_claims_out_of_range),
        cmocka_unit_test(test_role_names_parse_exactly),
        cmocka_unit_test(test_service_refuses_tokens_before_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
