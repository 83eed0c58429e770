/* rtmp_chunk.h — RTMP chunk stream: a restartable reader that reassembles
 * messages, and a writer that splits a message into chunks (RTMP 1.0 spec
 * §5.3, SPEC ING-7/ING-8).
 *
 * Reader: feed bytes in any fragmentation; it returns one whole message at a
 * time. It handles the four chunk header formats (0: full, 1: no stream id,
 * 2: timestamp delta only, 3: nothing), chunk stream ids 2..65599 in their
 * 1/2/3-byte basic header forms, interleaved chunk streams, extended
 * timestamps (also on type-3 chunks, with the usual tolerance for senders
 * that omit it on continuation chunks), Set Chunk Size (applied by the
 * reader itself, also mid-message) and Abort (drops the partial message).
 *
 * Ceilings (struct rtmp_chunk_limits): chunk size the peer may set, message
 * size, number of live chunk streams, bytes held for partial messages.
 * Going over one is an error, never growth. Partial-message buffers grow
 * with the bytes actually received, not with the length a header claims.
 *
 * Timestamps (ING-8): each message carries its 32-bit RTMP timestamp and a
 * 64-bit unwrapped one. Unwrapping is per message stream id: the signed
 * 32-bit difference from the previous message of the same message stream is
 * added, so a 0xFFFFFFxx -> 0x000000xx wrap keeps counting up; a backward
 * jump stays a backward jump (the packager turns it into a discontinuity).
 *
 * Convention for a type-3 header that starts a new message: the timestamp
 * delta of the previous header on that chunk stream is applied again; after
 * a type-0 header the "delta" is its absolute timestamp field (as FFmpeg's
 * reader and writer agree). */
#ifndef INGEST_RTMP_CHUNK_H
#define INGEST_RTMP_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTMP_CHUNK_SIZE_DEFAULT 128u
#define RTMP_CHUNK_SIZE_HARD_MAX (16u * 1024 * 1024) /* no config may exceed this */
#define RTMP_CHUNK_CSID_MIN 2u
#define RTMP_CHUNK_CSID_MAX 65599u
#define RTMP_CHUNK_MAX_HEADER 18u /* 3 basic + 11 message + 4 extended timestamp */

enum rtmp_msg_type {
    RTMP_MSG_SET_CHUNK_SIZE = 1,
    RTMP_MSG_ABORT = 2,
    RTMP_MSG_ACK = 3,
    RTMP_MSG_USER_CONTROL = 4,
    RTMP_MSG_WINDOW_ACK_SIZE = 5,
    RTMP_MSG_SET_PEER_BANDWIDTH = 6,
    RTMP_MSG_AUDIO = 8,
    RTMP_MSG_VIDEO = 9,
    RTMP_MSG_DATA_AMF3 = 15,
    RTMP_MSG_SHARED_OBJECT_AMF3 = 16,
    RTMP_MSG_COMMAND_AMF3 = 17,
    RTMP_MSG_DATA_AMF0 = 18,
    RTMP_MSG_SHARED_OBJECT_AMF0 = 19,
    RTMP_MSG_COMMAND_AMF0 = 20,
    RTMP_MSG_AGGREGATE = 22,
};

enum rtmp_chunk_result {
    RTMP_CHUNK_NEED_MORE = 0,        /* all input consumed, no message complete */
    RTMP_CHUNK_MESSAGE = 1,          /* *msg filled */
    RTMP_CHUNK_ERR_CHUNK_SIZE = -1,  /* Set Chunk Size 0, > limit, or short */
    RTMP_CHUNK_ERR_TOO_BIG = -2,     /* message longer than max_message_size */
    RTMP_CHUNK_ERR_TOO_MANY_STREAMS = -3,
    RTMP_CHUNK_ERR_BUFFERED = -4,    /* partial messages over max_buffered */
    RTMP_CHUNK_ERR_PROTOCOL = -5,    /* e.g. type-3 header on an unknown chunk stream */
    RTMP_CHUNK_ERR_NOMEM = -6,
    RTMP_CHUNK_ERR_FAILED = -7,      /* reader already failed earlier */
};

struct rtmp_chunk_limits {
    uint32_t max_chunk_size;    /* largest Set Chunk Size accepted (default 65536, <= HARD_MAX) */
    uint32_t max_message_size;  /* default 8 MiB */
    uint32_t max_chunk_streams; /* live chunk streams (default 64) */
    size_t max_buffered;        /* bytes held in reassembly buffers (default 2 * max_message_size) */
};

/* Fills the defaults above. */
void rtmp_chunk_limits_default(struct rtmp_chunk_limits *lim);

struct rtmp_message {
    uint8_t type;           /* enum rtmp_msg_type or anything else the peer sent */
    uint32_t csid;
    uint32_t stream_id;     /* message stream id */
    uint32_t timestamp;     /* 32-bit RTMP timestamp (ms) */
    int64_t timestamp64;    /* unwrapped (ING-8) */
    const uint8_t *payload; /* borrowed: valid until the next rtmp_chunk_read / free */
    uint32_t len;
};

struct rtmp_chunk_reader;

/* lim may be NULL for the defaults; values of 0 mean "default" too. */
struct rtmp_chunk_reader *rtmp_chunk_reader_new(const struct rtmp_chunk_limits *lim);
void rtmp_chunk_reader_free(struct rtmp_chunk_reader *r);

/* Consumes bytes from data[0..len) until one message is complete or the
 * input is used up; *consumed says how many. Call again with the rest.
 * Returns RTMP_CHUNK_MESSAGE (msg filled), RTMP_CHUNK_NEED_MORE, or a
 * negative rtmp_chunk_result; after an error the reader stays failed.
 * Set Chunk Size and Abort messages are applied here and still returned. */
int rtmp_chunk_read(struct rtmp_chunk_reader *r, const uint8_t *data, size_t len,
                    size_t *consumed, struct rtmp_message *msg);

/* The chunk size in force for incoming chunks. */
uint32_t rtmp_chunk_reader_chunk_size(const struct rtmp_chunk_reader *r);
/* Number of chunk streams the reader currently tracks. */
uint32_t rtmp_chunk_reader_stream_count(const struct rtmp_chunk_reader *r);
const char *rtmp_chunk_strerror(int err);

/* ---- writer ------------------------------------------------------------ */

struct rtmp_chunk_out {
    uint32_t csid;      /* 2..65599 */
    uint8_t type;
    uint32_t stream_id;
    uint32_t timestamp; /* absolute; >= 0xFFFFFF uses the extended field */
};

/* Bytes rtmp_chunk_write will produce for a len-byte message. */
size_t rtmp_chunk_write_size(const struct rtmp_chunk_out *h, size_t len, uint32_t chunk_size);

/* Serializes the message as one type-0 chunk followed by type-3 chunks of
 * chunk_size payload bytes (extended timestamp repeated on each type-3
 * chunk when used, per the spec). Returns bytes written, or 0 if cap is too
 * small or an argument is invalid (chunk_size 0, csid out of range). */
size_t rtmp_chunk_write(uint8_t *dst, size_t cap, const struct rtmp_chunk_out *h,
                        const uint8_t *payload, size_t len, uint32_t chunk_size);

#endif
