/* rtmp_handshake.c — server side of the RTMP handshake, plain and digest
 * (SPEC ING-2). See rtmp_handshake.h for the protocol outline.
 *
 * Digest layout (both C1 and S1, 1536 bytes):
 *   [0..4) time  [4..8) version  [8..1536) random with a 32-byte digest at
 *   rtmp_handshake_digest_offset(sig, schema). The digest is
 *   HMAC-SHA256(key, sig without the 32 digest bytes). */
#include "ingest/rtmp_handshake.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/bytes.h"

#define SIG RTMP_HANDSHAKE_SIG_SIZE
#define DLEN RTMP_HANDSHAKE_DIGEST_LEN

/* "Genuine Adobe Flash Media Server 001" + 32 bytes; the first 36 bytes are
 * the partial key used for S1's digest, all 68 for the S2 signature key. */
static const uint8_t fms_key[68] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ',
    'F', 'l', 'a', 's', 'h', ' ', 'M', 'e', 'd', 'i', 'a', ' ',
    'S', 'e', 'r', 'v', 'e', 'r', ' ', '0', '0', '1',
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1,
    0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB,
    0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
};
#define FMS_PARTIAL_LEN 36

/* "Genuine Adobe Flash Player 001": the client's digest key (30 bytes). */
static const uint8_t fp_key_partial[30] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ',
    'F', 'l', 'a', 's', 'h', ' ', 'P', 'l', 'a', 'y', 'e', 'r', ' ',
    '0', '0', '1',
};

/* Version we announce in S1 for a digest handshake (as nginx-rtmp). */
static const uint8_t server_version[4] = {0x0D, 0x0E, 0x0A, 0x0D};

struct rtmp_handshake {
    enum rtmp_handshake_state state;
    enum rtmp_handshake_kind kind;
    int schema;
    uint32_t epoch;
    uint32_t peer_epoch;
    uint32_t peer_version;
    size_t have;            /* bytes of the packet being collected */
    uint8_t in[1 + SIG];    /* C0+C1, then C2 (from offset 0) */
    uint8_t out[1 + 2 * SIG];
    size_t out_len;         /* pending output, 0 once taken */
};

size_t rtmp_handshake_digest_offset(const uint8_t *sig, int schema)
{
    size_t base = schema == 0 ? 8 : 772;
    size_t sum = (size_t)sig[base] + sig[base + 1] + sig[base + 2] + sig[base + 3];
    return sum % 728 + base + 4;
}

/* HMAC-SHA256 over sig[0..SIG) minus the 32 bytes at skip (skip == SIZE_MAX:
 * over n bytes of msg with nothing skipped). 0 or -1. */
static int hmac_skip(const uint8_t *key, size_t keylen, const uint8_t *msg, size_t n,
                     size_t skip, uint8_t out[DLEN])
{
    uint8_t tmp[SIG];
    const uint8_t *p = msg;
    size_t len = n;
    if (skip != SIZE_MAX) {
        memcpy(tmp, msg, skip);
        memcpy(tmp + skip, msg + skip + DLEN, n - skip - DLEN);
        p = tmp;
        len = n - DLEN;
    }
    unsigned int olen = 0;
    if (HMAC(EVP_sha256(), key, (int)keylen, p, len, out, &olen) == NULL || olen != DLEN)
        return -1;
    return 0;
}

/* True when c1 carries a valid client digest at the given schema. */
static bool find_client_digest(const uint8_t *c1, int schema, size_t *pos)
{
    size_t off = rtmp_handshake_digest_offset(c1, schema);
    uint8_t d[DLEN];
    if (hmac_skip(fp_key_partial, sizeof fp_key_partial, c1, SIG, off, d) != 0)
        return false;
    if (CRYPTO_memcmp(d, c1 + off, DLEN) != 0)
        return false;
    *pos = off;
    return true;
}

struct rtmp_handshake *rtmp_handshake_new(uint32_t epoch_ms)
{
    struct rtmp_handshake *hs = calloc(1, sizeof *hs);
    if (hs == NULL)
        return NULL;
    hs->state = RTMP_HS_WAIT_C0C1;
    hs->kind = RTMP_HS_KIND_UNKNOWN;
    hs->schema = -1;
    hs->epoch = epoch_ms;
    return hs;
}

void rtmp_handshake_free(struct rtmp_handshake *hs)
{
    if (hs == NULL)
        return;
    OPENSSL_cleanse(hs, sizeof *hs);
    free(hs);
}

/* Builds S0+S1+S2 into hs->out from the complete C0+C1 in hs->in. */
static int make_response(struct rtmp_handshake *hs)
{
    const uint8_t *c1 = hs->in + 1;
    uint8_t *s0 = hs->out, *s1 = hs->out + 1, *s2 = hs->out + 1 + SIG;
    size_t cpos = 0;

    hs->peer_epoch = rd_be32(c1);
    hs->peer_version = rd_be32(c1 + 4);
    hs->kind = RTMP_HS_KIND_PLAIN;
    if (hs->peer_version != 0) {
        /* nginx-rtmp tries schema 1 first, then schema 0. */
        if (find_client_digest(c1, 1, &cpos))
            hs->schema = 1;
        else if (find_client_digest(c1, 0, &cpos))
            hs->schema = 0;
        if (hs->schema >= 0)
            hs->kind = RTMP_HS_KIND_DIGEST;
    }

    s0[0] = 3;
    wr_be32(s1, hs->epoch);
    if (RAND_bytes(s1 + 8, SIG - 8) != 1)
        return -1;

    if (hs->kind == RTMP_HS_KIND_PLAIN) {
        /* RTMP 1.0 §5.2.3/§5.2.4: S1 version zero; S2 = C1 with time2. */
        memset(s1 + 4, 0, 4);
        memcpy(s2, c1, SIG);
        wr_be32(s2 + 4, hs->epoch);
        return 0;
    }

    /* S1: our version, digest at the client's schema keyed with the
     * partial FMS key. */
    memcpy(s1 + 4, server_version, 4);
    size_t spos = rtmp_handshake_digest_offset(s1, hs->schema);
    if (hmac_skip(fms_key, FMS_PARTIAL_LEN, s1, SIG, spos, s1 + spos) != 0)
        return -1;

    /* S2: random, signed with HMAC(full FMS key, client digest). */
    uint8_t key[DLEN];
    if (hmac_skip(fms_key, sizeof fms_key, c1 + cpos, DLEN, SIZE_MAX, key) != 0)
        return -1;
    if (RAND_bytes(s2, SIG - DLEN) != 1)
        return -1;
    if (hmac_skip(key, DLEN, s2, SIG - DLEN, SIZE_MAX, s2 + SIG - DLEN) != 0)
        return -1;
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}

ssize_t rtmp_handshake_feed(struct rtmp_handshake *hs, const uint8_t *data, size_t len)
{
    size_t used = 0;

    if (hs->state == RTMP_HS_WAIT_C0C1) {
        if (hs->have == 0 && len > 0 && data[0] != 3) {
            hs->state = RTMP_HS_FAILED;
            return RTMP_HS_ERR_VERSION;
        }
        size_t n = 1 + SIG - hs->have;
        if (n > len)
            n = len;
        memcpy(hs->in + hs->have, data, n);
        hs->have += n;
        used += n;
        if (hs->have < 1 + SIG)
            return (ssize_t)used;
        if (make_response(hs) != 0) {
            hs->state = RTMP_HS_FAILED;
            return RTMP_HS_ERR_CRYPTO;
        }
        hs->out_len = 1 + 2 * SIG;
        hs->have = 0;
        hs->state = RTMP_HS_WAIT_C2;
    }

    if (hs->state == RTMP_HS_WAIT_C2) {
        size_t n = SIG - hs->have;
        if (n > len - used)
            n = len - used;
        /* C2 is not verified; only counted. */
        hs->have += n;
        used += n;
        if (hs->have == SIG)
            hs->state = RTMP_HS_DONE;
        return (ssize_t)used;
    }

    return RTMP_HS_ERR_STATE;
}

const uint8_t *rtmp_handshake_take_output(struct rtmp_handshake *hs, size_t *len)
{
    if (hs->out_len == 0) {
        *len = 0;
        return NULL;
    }
    *len = hs->out_len;
    hs->out_len = 0;
    return hs->out;
}

enum rtmp_handshake_state rtmp_handshake_state(const struct rtmp_handshake *hs) { return hs->state; }
enum rtmp_handshake_kind rtmp_handshake_kind(const struct rtmp_handshake *hs) { return hs->kind; }
int rtmp_handshake_digest_schema(const struct rtmp_handshake *hs) { return hs->schema; }
uint32_t rtmp_handshake_peer_epoch(const struct rtmp_handshake *hs) { return hs->peer_epoch; }
uint32_t rtmp_handshake_peer_version(const struct rtmp_handshake *hs) { return hs->peer_version; }
