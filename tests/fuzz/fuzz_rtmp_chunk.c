/* fuzz_rtmp_chunk.c — libFuzzer target for the chunk stream reader, with a
 * differential check through the writer.
 *
 * Input: byte 0 = feed step (1..256), byte 1 = limit profile (max chunk
 * size / message size / chunk streams / buffered bytes), the rest = the
 * chunk stream a client sends after the handshake.
 * Invariants: consumption within bounds, progress on every call, messages
 * within the message-size ceiling, payload fully readable (ASan), errors
 * sticky; each message re-serialized by rtmp_chunk_write and read back by
 * a second reader is identical (type, stream id, timestamp, payload). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/rtmp_chunk.h"

static void roundtrip(const struct rtmp_message *m)
{
    static const uint32_t sizes[] = {1, 7, 128, 4096};
    uint32_t cs = sizes[m->len % 4];
    struct rtmp_chunk_out h = {.csid = m->csid, .type = m->type, .stream_id = m->stream_id,
                               .timestamp = m->timestamp};
    size_t need = rtmp_chunk_write_size(&h, m->len, cs);
    /* prefix: Set Chunk Size so the second reader uses cs */
    uint8_t pre[16];
    struct rtmp_chunk_out hp = {.csid = 2, .type = RTMP_MSG_SET_CHUNK_SIZE};
    uint8_t v[4] = {(uint8_t)(cs >> 24), (uint8_t)(cs >> 16), (uint8_t)(cs >> 8), (uint8_t)cs};
    size_t np = rtmp_chunk_write(pre, sizeof pre, &hp, v, 4, 128);
    uint8_t *buf = malloc(np + need);
    memcpy(buf, pre, np);
    if (rtmp_chunk_write(buf + np, need, &h, m->payload, m->len, cs) != need)
        abort();
    struct rtmp_chunk_limits lim = {.max_chunk_size = 65536, .max_message_size = 1u << 24,
                                    .max_chunk_streams = 4};
    struct rtmp_chunk_reader *r2 = rtmp_chunk_reader_new(&lim);
    size_t off = 0, used;
    struct rtmp_message m2;
    int rc;
    int got = 0;
    while (off < np + need) {
        rc = rtmp_chunk_read(r2, buf + off, np + need - off, &used, &m2);
        off += used;
        if (rc < 0)
            abort();
        if (rc == RTMP_CHUNK_MESSAGE && ++got == 2) {
            if (m2.type != m->type || m2.stream_id != m->stream_id ||
                m2.timestamp != m->timestamp || m2.len != m->len || m2.csid != m->csid ||
                (m->len && memcmp(m2.payload, m->payload, m->len) != 0))
                abort();
        }
        if (rc == RTMP_CHUNK_NEED_MORE && used == 0)
            break;
    }
    if (got != 2)
        abort();
    rtmp_chunk_reader_free(r2);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = (size_t)data[0] + 1;
    uint8_t prof = data[1];
    struct rtmp_chunk_limits lim = {
        .max_chunk_size = (prof & 1) ? 256 : 65536,
        .max_message_size = (prof & 2) ? 1024 : 1u << 20,
        .max_chunk_streams = (prof & 4) ? 3 : 64,
        .max_buffered = (prof & 8) ? 4096 : 0,
    };
    data += 2;
    size -= 2;
    struct rtmp_chunk_reader *r = rtmp_chunk_reader_new(&lim);
    if (r == NULL)
        abort();
    uint32_t cap_msg = lim.max_message_size;
    size_t off = 0;
    int failed = 0;
    while (off < size) {
        size_t avail = size - off < step ? size - off : step;
        size_t used = 99999999;
        struct rtmp_message m;
        int rc = rtmp_chunk_read(r, data + off, avail, &used, &m);
        if (used > avail)
            abort();
        off += used;
        if (rc < 0) {
            failed = rc;
            break;
        }
        if (rc == RTMP_CHUNK_MESSAGE) {
            if (m.len > cap_msg)
                abort();
            volatile uint8_t sink = 0;
            for (uint32_t i = 0; i < m.len; i++)
                sink ^= m.payload[i];
            (void)sink;
            if (m.csid < RTMP_CHUNK_CSID_MIN || m.csid > RTMP_CHUNK_CSID_MAX)
                abort();
            if (m.len <= 65536)
                roundtrip(&m);
        } else if (used != avail) {
            abort(); /* NEED_MORE consumes everything */
        }
        if (rtmp_chunk_reader_chunk_size(r) == 0 || rtmp_chunk_reader_chunk_size(r) > lim.max_chunk_size)
            if (rtmp_chunk_reader_chunk_size(r) != RTMP_CHUNK_SIZE_DEFAULT)
                abort();
    }
    if (failed) {
        size_t used;
        struct rtmp_message m;
        uint8_t b = 0;
        if (rtmp_chunk_read(r, &b, 1, &used, &m) != RTMP_CHUNK_ERR_FAILED)
            abort();
    }
    rtmp_chunk_reader_free(r);
    return 0;
}
