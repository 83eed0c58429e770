/* fuzz_rtmp_handshake.c — libFuzzer target for the server handshake.
 *
 * Input: byte 0 = options (bit 0: plant a valid client digest so the digest
 * path is reached; bit 1: schema 1 instead of 0), byte 1 = feed step
 * (1..256), the rest = what the client sends (C0+C1, C2, trailing bytes).
 * Invariants checked: never consumes past C2, output is S0+S1+S2 exactly
 * once, states only move forward, a planted digest is recognised. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ingest/rtmp_handshake.h"

#define SIG RTMP_HANDSHAKE_SIG_SIZE

static const uint8_t fp_key[30] = {'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd',
                                   'o', 'b', 'e', ' ', 'F', 'l', 'a', 's', 'h', ' ',
                                   'P', 'l', 'a', 'y', 'e', 'r', ' ', '0', '0', '1'};

static void plant_digest(uint8_t *c1, int schema)
{
    if (c1[4] == 0 && c1[5] == 0 && c1[6] == 0 && c1[7] == 0)
        c1[4] = 9;
    size_t pos = rtmp_handshake_digest_offset(c1, schema);
    uint8_t tmp[SIG];
    memcpy(tmp, c1, pos);
    memcpy(tmp + pos, c1 + pos + 32, SIG - pos - 32);
    unsigned olen = 0;
    HMAC(EVP_sha256(), fp_key, sizeof fp_key, tmp, SIG - 32, c1 + pos, &olen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opts = data[0];
    size_t step = (size_t)data[1] + 1;
    size_t n = size - 2;
    uint8_t *in = malloc(n ? n : 1);
    memcpy(in, data + 2, n);
    bool planted = false;
    if ((opts & 1) && n >= 1 + SIG && in[0] == 3) {
        plant_digest(in + 1, (opts >> 1) & 1);
        planted = true;
    }

    struct rtmp_handshake *hs = rtmp_handshake_new(1234);
    if (hs == NULL)
        abort();
    size_t off = 0, outputs = 0;
    enum rtmp_handshake_state prev = RTMP_HS_WAIT_C0C1;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        ssize_t r = rtmp_handshake_feed(hs, in + off, k);
        enum rtmp_handshake_state st = rtmp_handshake_state(hs);
        if (st < prev)
            abort();
        prev = st;
        if (r < 0) {
            if (st != RTMP_HS_FAILED && st != RTMP_HS_DONE)
                abort();
            break;
        }
        if ((size_t)r > k)
            abort();
        off += (size_t)r;
        size_t olen;
        const uint8_t *out = rtmp_handshake_take_output(hs, &olen);
        if (out != NULL) {
            if (olen != 1 + 2 * SIG || out[0] != 3)
                abort();
            outputs++;
        }
        if (st == RTMP_HS_DONE) {
            if (off != 1 + 2 * (size_t)SIG)
                abort();
            break;
        }
        if ((size_t)r < k)
            abort(); /* short consumption only once DONE */
    }
    if (outputs > 1)
        abort();
    if (off >= 1 + SIG && in[0] == 3 && outputs != 1)
        abort();
    if (planted && rtmp_handshake_kind(hs) != RTMP_HS_KIND_DIGEST)
        abort();
    rtmp_handshake_free(hs);
    free(in);
    return 0;
}
