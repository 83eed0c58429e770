/* fuzz_viewer_token.c — viewer token verification (SPEC API-8) on hostile
 * input. Two modes, chosen by the first byte:
 *   even: the bytes are a token string → verify must not crash, and must
 *         never accept it (the fuzzer cannot know the key);
 *   odd:  the bytes are a claims payload, signed with the key (what a key
 *         holder could make) → verify must not crash; when it accepts, the
 *         claims must satisfy the invariants the rest of castgate relies on,
 *         and re-signing them must give a token that verifies the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/viewer_tokens.h"
#include "core/secure.h"

static const uint8_t key[] = "fuzz-key-fuzz-key-fuzz-key-fuzz!";
#define KEYLEN (sizeof key - 1)
#define NOW 1700000000

static void check_claims(const struct viewer_claims *c)
{
    size_t jl = strlen(c->jti);
    if (jl < 1 || jl > VIEWER_JTI_LEN || c->tid <= 0 || c->room_id <= 0 || c->app_id <= 0 ||
        c->role < VIEWER_ROLE_STUDENT || c->role > VIEWER_ROLE_ADMIN || strlen(c->uid) > VIEWER_UID_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    struct viewer_claims c;
    if ((data[0] & 1) == 0) {
        enum viewer_token_status st =
            viewer_token_verify(key, KEYLEN, (const char *)data + 1, size - 1, NOW, &c);
        if (st == VIEWER_TOKEN_OK || st == VIEWER_TOKEN_EXPIRED)
            abort(); /* a forgery */
        return 0;
    }
    static const char hdr[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
    char tok[VIEWER_TOKEN_MAX * 2];
    size_t plen = size - 1;
    if (sizeof hdr + 4 * ((plen + 2) / 3) + 48 > sizeof tok)
        return 0;
    memcpy(tok, hdr, sizeof hdr - 1);
    tok[sizeof hdr - 1] = '.';
    secure_base64url(data + 1, plen, tok + sizeof hdr);
    size_t n = strlen(tok);
    uint8_t mac[32];
    secure_hmac_sha256(key, KEYLEN, tok, n, mac);
    tok[n] = '.';
    secure_base64url(mac, sizeof mac, tok + n + 1);
    enum viewer_token_status st = viewer_token_verify(key, KEYLEN, tok, strlen(tok), NOW, &c);
    if (st == VIEWER_TOKEN_OK || st == VIEWER_TOKEN_EXPIRED) {
        check_claims(&c);
        char again[VIEWER_TOKEN_MAX];
        if (viewer_token_sign(key, KEYLEN, &c, again, sizeof again) <= 0)
            abort();
        struct viewer_claims d;
        if (viewer_token_verify(key, KEYLEN, again, strlen(again), NOW, &d) != st)
            abort();
        if (memcmp(&c, &d, sizeof c) != 0)
            abort();
    }
    return 0;
}
