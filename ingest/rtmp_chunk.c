/* rtmp_chunk.c — RTMP chunk stream reader and writer (RTMP 1.0 spec §5.3,
 * SPEC ING-7, ING-8). See rtmp_chunk.h for the contract.
 *
 * Reader states: collecting a chunk header into r->hdr (at most 18 bytes,
 * so a header split across reads costs nothing to resume), then copying
 * r->chunk_left payload bytes into the chunk stream's reassembly buffer. */
#include "ingest/rtmp_chunk.h"

#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"

#define EXT_TS_MARK 0xFFFFFFu
#define UNWRAP_SLOTS 4
#define MIN_BUF 4096u

struct cstream {
    uint32_t csid;
    bool used;
    /* last header values, inherited by later headers (§5.3.1.2) */
    uint32_t ts;       /* timestamp of the current / last message */
    uint32_t delta;    /* last timestamp field of a type 0/1/2 header */
    uint32_t len;
    uint8_t type;
    uint32_t msid;
    bool ext;          /* that header used the extended timestamp */
    /* reassembly */
    bool in_msg;
    uint32_t have;
    uint8_t *buf;
    size_t cap;
};

struct unwrap {
    bool used;
    uint32_t msid;
    uint32_t last32;
    int64_t last64;
    uint64_t tick;
};

struct rtmp_chunk_reader {
    struct rtmp_chunk_limits lim;
    uint32_t chunk_size;
    int failed; /* 0 or the first error */

    uint8_t hdr[RTMP_CHUNK_MAX_HEADER];
    size_t hdr_have;

    struct cstream *cur;  /* stream whose chunk payload is being copied */
    uint32_t chunk_left;  /* payload bytes left in the current chunk */

    struct cstream *streams; /* lim.max_chunk_streams slots */
    uint32_t nstreams;       /* slots in use */
    struct cstream *last;    /* lookup cache */
    struct cstream *emitted; /* message returned last call: reset on next */
    size_t buffered;         /* sum of reassembly buffer capacities */

    struct unwrap uw[UNWRAP_SLOTS];
    uint64_t tick;
};

void rtmp_chunk_limits_default(struct rtmp_chunk_limits *lim)
{
    lim->max_chunk_size = 65536;
    lim->max_message_size = 8u * 1024 * 1024;
    lim->max_chunk_streams = 64;
    lim->max_buffered = 2u * lim->max_message_size;
}

struct rtmp_chunk_reader *rtmp_chunk_reader_new(const struct rtmp_chunk_limits *lim)
{
    struct rtmp_chunk_limits d;
    rtmp_chunk_limits_default(&d);
    if (lim != NULL) {
        if (lim->max_chunk_size)
            d.max_chunk_size = lim->max_chunk_size;
        if (lim->max_message_size)
            d.max_message_size = lim->max_message_size;
        if (lim->max_chunk_streams)
            d.max_chunk_streams = lim->max_chunk_streams;
        d.max_buffered = lim->max_buffered ? lim->max_buffered : 2u * (size_t)d.max_message_size;
    }
    if (d.max_chunk_size > RTMP_CHUNK_SIZE_HARD_MAX)
        d.max_chunk_size = RTMP_CHUNK_SIZE_HARD_MAX;
    if (d.max_chunk_streams > RTMP_CHUNK_CSID_MAX - 1)
        d.max_chunk_streams = RTMP_CHUNK_CSID_MAX - 1;

    struct rtmp_chunk_reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->streams = calloc(d.max_chunk_streams, sizeof *r->streams);
    if (r->streams == NULL) {
        free(r);
        return NULL;
    }
    r->lim = d;
    r->chunk_size = RTMP_CHUNK_SIZE_DEFAULT;
    return r;
}

void rtmp_chunk_reader_free(struct rtmp_chunk_reader *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->lim.max_chunk_streams; i++)
        free(r->streams[i].buf);
    free(r->streams);
    free(r);
}

uint32_t rtmp_chunk_reader_chunk_size(const struct rtmp_chunk_reader *r) { return r->chunk_size; }
uint32_t rtmp_chunk_reader_stream_count(const struct rtmp_chunk_reader *r) { return r->nstreams; }

const char *rtmp_chunk_strerror(int err)
{
    switch (err) {
    case RTMP_CHUNK_NEED_MORE: return "need more";
    case RTMP_CHUNK_MESSAGE: return "message";
    case RTMP_CHUNK_ERR_CHUNK_SIZE: return "invalid chunk size";
    case RTMP_CHUNK_ERR_TOO_BIG: return "message too big";
    case RTMP_CHUNK_ERR_TOO_MANY_STREAMS: return "too many chunk streams";
    case RTMP_CHUNK_ERR_BUFFERED: return "too many bytes buffered";
    case RTMP_CHUNK_ERR_PROTOCOL: return "protocol violation";
    case RTMP_CHUNK_ERR_NOMEM: return "out of memory";
    case RTMP_CHUNK_ERR_FAILED: return "reader failed earlier";
    default: return "unknown";
    }
}

static struct cstream *find_stream(struct rtmp_chunk_reader *r, uint32_t csid)
{
    if (r->last != NULL && r->last->csid == csid)
        return r->last;
    for (uint32_t i = 0; i < r->lim.max_chunk_streams; i++) {
        if (r->streams[i].used && r->streams[i].csid == csid) {
            r->last = &r->streams[i];
            return r->last;
        }
    }
    return NULL;
}

static struct cstream *add_stream(struct rtmp_chunk_reader *r, uint32_t csid)
{
    if (r->nstreams >= r->lim.max_chunk_streams)
        return NULL;
    for (uint32_t i = 0; i < r->lim.max_chunk_streams; i++) {
        struct cstream *cs = &r->streams[i];
        if (!cs->used) {
            memset(cs, 0, sizeof *cs);
            cs->used = true;
            cs->csid = csid;
            r->nstreams++;
            r->last = cs;
            return cs;
        }
    }
    return NULL;
}

static void drop_partial(struct cstream *cs)
{
    cs->in_msg = false;
    cs->have = 0;
}

/* Frees reassembly buffers of streams holding no partial message. */
static void reclaim(struct rtmp_chunk_reader *r, const struct cstream *keep)
{
    for (uint32_t i = 0; i < r->lim.max_chunk_streams; i++) {
        struct cstream *cs = &r->streams[i];
        if (cs == keep || !cs->used || cs->in_msg || cs->buf == NULL)
            continue;
        r->buffered -= cs->cap;
        free(cs->buf);
        cs->buf = NULL;
        cs->cap = 0;
    }
}

/* Makes room for `need` bytes in cs->buf, growing geometrically but never
 * past the message length, within lim.max_buffered overall. */
static int grow(struct rtmp_chunk_reader *r, struct cstream *cs, size_t need)
{
    if (need <= cs->cap)
        return 0;
    size_t ncap = cs->cap * 2;
    if (ncap < MIN_BUF)
        ncap = MIN_BUF;
    if (ncap < need)
        ncap = need;
    if (ncap > cs->len)
        ncap = cs->len;
    if (r->buffered - cs->cap + ncap > r->lim.max_buffered) {
        reclaim(r, cs);
        if (r->buffered - cs->cap + ncap > r->lim.max_buffered)
            return RTMP_CHUNK_ERR_BUFFERED;
    }
    uint8_t *nb = realloc(cs->buf, ncap);
    if (nb == NULL)
        return RTMP_CHUNK_ERR_NOMEM;
    r->buffered = r->buffered - cs->cap + ncap;
    cs->buf = nb;
    cs->cap = ncap;
    return 0;
}

/* Basic header length from its first byte (§5.3.1.1). */
static size_t basic_len(uint8_t b0)
{
    uint8_t c = b0 & 0x3f;
    return c == 0 ? 2 : c == 1 ? 3 : 1;
}

static uint32_t basic_csid(const uint8_t *h)
{
    uint8_t c = h[0] & 0x3f;
    if (c == 0)
        return 64u + h[1];
    if (c == 1)
        return 64u + h[1] + 256u * h[2];
    return c;
}

static const size_t msg_hdr_len[4] = {11, 7, 3, 0};

/* Total header bytes needed given what r->hdr holds so far (grows as more
 * of the header is known). */
static size_t header_need(struct rtmp_chunk_reader *r)
{
    if (r->hdr_have < 1)
        return 1;
    size_t b = basic_len(r->hdr[0]);
    if (r->hdr_have < b)
        return b;
    unsigned fmt = r->hdr[0] >> 6;
    size_t need = b + msg_hdr_len[fmt];
    if (fmt < 3) {
        if (r->hdr_have < b + 3)
            return need;
        if (rd_be24(r->hdr + b) == EXT_TS_MARK)
            need += 4;
        return need;
    }
    struct cstream *cs = find_stream(r, basic_csid(r->hdr));
    if (cs != NULL && cs->ext)
        need += 4;
    return need;
}

static void unwrap(struct rtmp_chunk_reader *r, uint32_t msid, uint32_t ts, int64_t *out)
{
    struct unwrap *slot = NULL, *oldest = &r->uw[0];
    r->tick++;
    for (int i = 0; i < UNWRAP_SLOTS; i++) {
        struct unwrap *u = &r->uw[i];
        if (u->used && u->msid == msid) {
            slot = u;
            break;
        }
        if (!u->used || (oldest->used && u->tick < oldest->tick))
            oldest = u;
    }
    if (slot == NULL) {
        slot = oldest;
        slot->used = true;
        slot->msid = msid;
        slot->last32 = ts;
        slot->last64 = ts;
    } else {
        /* ING-8: signed 32-bit difference, so a wrap keeps counting up. */
        slot->last64 += (int32_t)(ts - slot->last32);
        slot->last32 = ts;
    }
    slot->tick = r->tick;
    *out = slot->last64;
}

static int fail(struct rtmp_chunk_reader *r, int err)
{
    r->failed = err;
    return err;
}

/* Fills *msg from the completed message of cs and applies protocol control
 * messages that change how the reader parses (§5.4.1, §5.4.2). */
static int emit(struct rtmp_chunk_reader *r, struct cstream *cs, struct rtmp_message *msg)
{
    msg->type = cs->type;
    msg->csid = cs->csid;
    msg->stream_id = cs->msid;
    msg->timestamp = cs->ts;
    msg->payload = cs->buf;
    msg->len = cs->len;
    unwrap(r, cs->msid, cs->ts, &msg->timestamp64);
    r->emitted = cs;
    r->cur = NULL;

    if (cs->type == RTMP_MSG_SET_CHUNK_SIZE) {
        if (cs->len < 4)
            return fail(r, RTMP_CHUNK_ERR_CHUNK_SIZE);
        uint32_t size = rd_be32(cs->buf) & 0x7FFFFFFFu; /* first bit must be 0 */
        if (size == 0 || size > r->lim.max_chunk_size)
            return fail(r, RTMP_CHUNK_ERR_CHUNK_SIZE);
        r->chunk_size = size;
    } else if (cs->type == RTMP_MSG_ABORT && cs->len >= 4) {
        struct cstream *a = find_stream(r, rd_be32(cs->buf));
        if (a != NULL && a != cs)
            drop_partial(a);
    }
    return RTMP_CHUNK_MESSAGE;
}

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* A complete header sits in r->hdr: update the chunk stream and set up the
 * payload copy. Returns 0, RTMP_CHUNK_MESSAGE (zero-length message), or an
 * error. */
static int on_header(struct rtmp_chunk_reader *r, struct rtmp_message *msg)
{
    const uint8_t *h = r->hdr;
    size_t b = basic_len(h[0]);
    unsigned fmt = h[0] >> 6;
    uint32_t csid = basic_csid(h);
    const uint8_t *mh = h + b;

    struct cstream *cs = find_stream(r, csid);
    if (cs == NULL) {
        /* A type-3 header needs a previous one. Types 1 and 2 on a fresh
         * chunk stream are tolerated with zero defaults (librtmp sends a
         * type-1 header first when the first packet's timestamp is not 0). */
        if (fmt == 3)
            return fail(r, RTMP_CHUNK_ERR_PROTOCOL);
        if (fmt == 2)
            return fail(r, RTMP_CHUNK_ERR_PROTOCOL); /* no length known */
        cs = add_stream(r, csid);
        if (cs == NULL)
            return fail(r, RTMP_CHUNK_ERR_TOO_MANY_STREAMS);
    }

    if (fmt <= 2) {
        uint32_t field = rd_be24(mh);
        bool ext = field == EXT_TS_MARK;
        if (ext)
            field = rd_be32(mh + msg_hdr_len[fmt]);
        uint32_t len = cs->len;
        uint8_t type = cs->type;
        if (fmt <= 1) {
            len = rd_be24(mh + 3);
            type = mh[6];
        }
        if (len > r->lim.max_message_size)
            return fail(r, RTMP_CHUNK_ERR_TOO_BIG);
        /* A new header while a message is half-received: the sender
         * abandoned it. Drop it rather than mixing two messages. */
        if (cs->in_msg)
            drop_partial(cs);
        cs->len = len;
        cs->type = type;
        if (fmt == 0)
            cs->msid = rd_le32(mh + 7);
        cs->ext = ext;
        cs->delta = field;
        cs->ts = fmt == 0 ? field : cs->ts + field;
    } else if (!cs->in_msg) {
        /* type 3 starting a new message: repeat the last delta */
        if (cs->ext)
            cs->delta = rd_be32(mh);
        cs->ts += cs->delta;
    } else {
        /* type 3 continuation */
        r->cur = cs;
        r->chunk_left = min_u32(r->chunk_size, cs->len - cs->have);
        if (cs->ext && rd_be32(mh) != cs->delta && r->chunk_left >= 4) {
            /* The sender omitted the extended timestamp on a continuation
             * chunk (older encoders): these 4 bytes are payload. */
            int e = grow(r, cs, (size_t)cs->have + 4);
            if (e != 0)
                return fail(r, e);
            memcpy(cs->buf + cs->have, mh, 4);
            cs->have += 4;
            r->chunk_left -= 4;
            if (cs->have == cs->len)
                return emit(r, cs, msg);
        }
        return 0;
    }

    cs->in_msg = true;
    cs->have = 0;
    if (cs->len == 0)
        return emit(r, cs, msg);
    r->cur = cs;
    r->chunk_left = min_u32(r->chunk_size, cs->len);
    return 0;
}

int rtmp_chunk_read(struct rtmp_chunk_reader *r, const uint8_t *data, size_t len,
                    size_t *consumed, struct rtmp_message *msg)
{
    size_t used = 0;
    *consumed = 0;
    if (r->failed)
        return RTMP_CHUNK_ERR_FAILED;
    if (r->emitted != NULL) {
        drop_partial(r->emitted);
        r->emitted = NULL;
    }

    while (used < len) {
        if (r->cur == NULL) {
            /* collect the header */
            size_t need = header_need(r);
            while (r->hdr_have < need && used < len) {
                size_t n = need - r->hdr_have;
                if (n > len - used)
                    n = len - used;
                memcpy(r->hdr + r->hdr_have, data + used, n);
                r->hdr_have += n;
                used += n;
                need = header_need(r);
            }
            if (r->hdr_have < need)
                break;
            r->hdr_have = 0;
            int rc = on_header(r, msg);
            if (rc != 0) {
                *consumed = used;
                return rc;
            }
            continue;
        }
        struct cstream *cs = r->cur;
        size_t n = r->chunk_left;
        if (n > len - used)
            n = len - used;
        int e = grow(r, cs, (size_t)cs->have + n);
        if (e != 0) {
            *consumed = used;
            return fail(r, e);
        }
        memcpy(cs->buf + cs->have, data + used, n);
        cs->have += (uint32_t)n;
        r->chunk_left -= (uint32_t)n;
        used += n;
        if (cs->have == cs->len) {
            *consumed = used;
            return emit(r, cs, msg);
        }
        if (r->chunk_left == 0)
            r->cur = NULL;
    }
    *consumed = used;
    return RTMP_CHUNK_NEED_MORE;
}

/* ---- writer ------------------------------------------------------------ */

static size_t basic_size(uint32_t csid)
{
    return csid < 64 ? 1 : csid < 320 ? 2 : 3;
}

static uint8_t *put_basic(uint8_t *p, unsigned fmt, uint32_t csid)
{
    if (csid < 64) {
        *p++ = (uint8_t)(fmt << 6 | csid);
    } else if (csid < 320) {
        *p++ = (uint8_t)(fmt << 6);
        *p++ = (uint8_t)(csid - 64);
    } else {
        *p++ = (uint8_t)(fmt << 6 | 1);
        *p++ = (uint8_t)((csid - 64) & 0xff);
        *p++ = (uint8_t)((csid - 64) >> 8);
    }
    return p;
}

size_t rtmp_chunk_write_size(const struct rtmp_chunk_out *h, size_t len, uint32_t chunk_size)
{
    if (chunk_size == 0)
        return 0;
    size_t ext = h->timestamp >= EXT_TS_MARK ? 4 : 0;
    size_t chunks = len == 0 ? 1 : (len + chunk_size - 1) / chunk_size;
    size_t bs = basic_size(h->csid);
    return (bs + 11 + ext) + (chunks - 1) * (bs + ext) + len;
}

size_t rtmp_chunk_write(uint8_t *dst, size_t cap, const struct rtmp_chunk_out *h,
                        const uint8_t *payload, size_t len, uint32_t chunk_size)
{
    if (chunk_size == 0 || h->csid < RTMP_CHUNK_CSID_MIN || h->csid > RTMP_CHUNK_CSID_MAX ||
        len > 0xFFFFFFu)
        return 0;
    size_t total = rtmp_chunk_write_size(h, len, chunk_size);
    if (total > cap)
        return 0;
    bool ext = h->timestamp >= EXT_TS_MARK;
    uint8_t *p = put_basic(dst, 0, h->csid);
    wr_be24(p, ext ? EXT_TS_MARK : h->timestamp);
    wr_be24(p + 3, (uint32_t)len);
    p[6] = h->type;
    wr_le32(p + 7, h->stream_id);
    p += 11;
    if (ext) {
        wr_be32(p, h->timestamp);
        p += 4;
    }
    size_t off = 0;
    for (;;) {
        size_t n = len - off < chunk_size ? len - off : chunk_size;
        if (n > 0)
            memcpy(p, payload + off, n);
        p += n;
        off += n;
        if (off >= len)
            break;
        p = put_basic(p, 3, h->csid);
        if (ext) {
            wr_be32(p, h->timestamp);
            p += 4;
        }
    }
    return (size_t)(p - dst);
}
