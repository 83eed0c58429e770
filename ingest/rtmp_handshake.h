/* rtmp_handshake.h — server side of the RTMP handshake (SPEC ING-2).
 *
 * A restartable state machine: feed it whatever bytes arrived (C0+C1, then
 * C2, in any fragmentation), send what it hands back (S0+S1+S2, produced at
 * once when C0+C1 is complete), and stop feeding when it reports DONE: bytes
 * after C2 belong to the chunk stream and are not consumed.
 *
 * Two flavours, chosen by what the client sends:
 *   - plain (RTMP 1.0 spec §5.2): C1 "version" field is zero. S1 is random,
 *     S2 echoes C1 (GStreamer rtmp2sink checks this echo byte for byte).
 *   - digest ("FP9", the unofficial Flash 9 handshake): C1 carries an
 *     HMAC-SHA256 digest keyed with "Genuine Adobe Flash Player 001" at a
 *     position given by schema 0 (offset bytes at 8..11) or schema 1 (offset
 *     bytes at 772..775). The server answers with an S1 digest (key "Genuine
 *     Adobe Flash Media Server 001", same schema) and an S2 whose last 32
 *     bytes are HMAC(HMAC(full FMS key, client digest), S2[0..1504)), as
 *     nginx-rtmp's ngx_rtmp_handshake.c does. FFmpeg sends this form.
 *   A non-zero version without a valid digest falls back to plain.
 * C0 must be 3; 6/8 (RTMPE, encrypted) are refused.
 *
 * C2 is read and not verified (clients differ; nginx-rtmp does the same).
 * Uses OpenSSL HMAC-SHA256 and RAND_bytes. No allocation besides _new. */
#ifndef INGEST_RTMP_HANDSHAKE_H
#define INGEST_RTMP_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RTMP_HANDSHAKE_SIG_SIZE 1536
#define RTMP_HANDSHAKE_DIGEST_LEN 32

enum rtmp_handshake_state {
    RTMP_HS_WAIT_C0C1 = 0, /* initial */
    RTMP_HS_WAIT_C2 = 1,   /* S0S1S2 produced; waiting for C2 */
    RTMP_HS_DONE = 2,      /* C2 consumed; continue with the chunk stream */
    RTMP_HS_FAILED = 3,
};

enum rtmp_handshake_kind {
    RTMP_HS_KIND_UNKNOWN = 0, /* C1 not seen yet */
    RTMP_HS_KIND_PLAIN = 1,
    RTMP_HS_KIND_DIGEST = 2,
};

enum rtmp_handshake_err {
    RTMP_HS_ERR_VERSION = -1, /* C0 is not 3 (6/8 = encrypted RTMPE, unsupported) */
    RTMP_HS_ERR_CRYPTO = -2,  /* RAND_bytes / HMAC failed */
    RTMP_HS_ERR_STATE = -3,   /* fed after DONE or FAILED */
};

struct rtmp_handshake;

/* epoch_ms goes into S1's time field (uptime-like; any value is valid).
 * Returns NULL on allocation failure. Free with rtmp_handshake_free. */
struct rtmp_handshake *rtmp_handshake_new(uint32_t epoch_ms);
void rtmp_handshake_free(struct rtmp_handshake *hs);

/* Consumes bytes of C0+C1 / C2 from data[0..len). Returns how many bytes
 * were consumed (< len only once the state reaches DONE: the rest is chunk
 * stream), or a negative rtmp_handshake_err (state becomes FAILED). When
 * C0+C1 completes, S0+S1+S2 become available from rtmp_handshake_take_output. */
ssize_t rtmp_handshake_feed(struct rtmp_handshake *hs, const uint8_t *data, size_t len);

/* Bytes to send to the client (S0+S1+S2, 3073 bytes) or NULL with *len = 0
 * if nothing is pending. The pointer stays valid until the handshake is
 * freed; after this call the output counts as taken (the next call returns
 * NULL). */
const uint8_t *rtmp_handshake_take_output(struct rtmp_handshake *hs, size_t *len);

enum rtmp_handshake_state rtmp_handshake_state(const struct rtmp_handshake *hs);
enum rtmp_handshake_kind rtmp_handshake_kind(const struct rtmp_handshake *hs);
/* 0 or 1 for a digest handshake (position schema of the client digest), -1 otherwise. */
int rtmp_handshake_digest_schema(const struct rtmp_handshake *hs);
/* Client's C1 time and version fields (valid once C1 was seen). */
uint32_t rtmp_handshake_peer_epoch(const struct rtmp_handshake *hs);
uint32_t rtmp_handshake_peer_version(const struct rtmp_handshake *hs);

/* Offset of the digest inside a 1536-byte C1/S1 for schema 0 (base 8) or
 * schema 1 (base 772): sum of the 4 bytes at base, mod 728, plus base + 4.
 * Exposed for the tests and fuzzers, which build client packets. */
size_t rtmp_handshake_digest_offset(const uint8_t *sig, int schema);

#endif
