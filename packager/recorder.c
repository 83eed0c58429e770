/* recorder.c — fragmented MP4 recording of one ingest session (SPEC REC-1).
 *
 * Shape: the segmenter's init + parts → (pending queue while no path) →
 * gathered in `out` → about every fragment_ms of media handed to the file
 * writer thread. See recorder.h for the contract. */
#include "packager/recorder.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/log.h"
#include "core/metrics.h"
#include "storage/file_store.h"

#define REC_DEFAULT_FRAGMENT_MS 1000
#define REC_DEFAULT_PENDING_MAX (16u << 20)
#define REC_DEFAULT_FRAGMENT_MAX (8u << 20)
#define REC_MIN_BUFFER (64u << 10)
#define REC_MAX_TRACKS 4

enum rec_state {
    REC_WAIT,   /* no file: parts are queued until a path comes */
    REC_OPEN,   /* a file (path known); media from its first independent part */
    REC_FAILED, /* the file failed: everything is dropped until close */
    REC_CLOSED
};

struct rec_pending {
    struct rec_pending *next;
    struct cmaf_part part; /* data points at `bytes` */
    uint8_t bytes[];
};

struct recorder {
    struct recorder_config cfg;
    char path[PATH_MAX];
    bool have_path;
    struct file_writer *writer;
    bool own_writer;
    enum rec_state state;

    uint8_t *init;           /* the stream's current init segment */
    size_t init_len;
    char tracks_desc[128];   /* "avc1.64001f,mp4a.40.2" for the log */
    struct {
        uint32_t id, timescale;  /* from the init's tkhd / mdhd */
        uint64_t base;           /* tfdt of the file's start, in timescale units */
    } track[REC_MAX_TRACKS];
    int ntracks;

    /* the file in progress */
    struct fw_file *file;
    bool has_media;          /* init + at least one part went into it */
    int64_t first_start_us, end_us;
    uint8_t *out;            /* gathered, not yet handed to the writer */
    size_t out_len, out_cap, last_flush_len;
    int64_t out_media_us;
    struct recorder_stats stats;
    bool error_reported;

    struct rec_pending *pq_head, *pq_tail;
    size_t pq_bytes;
};

/* --- failure ----------------------------------------------------------- */

static void drop_buffer(struct recorder *r)
{
    free(r->out);
    r->out = NULL;
    r->out_len = r->out_cap = 0;
    r->out_media_us = 0;
}

/* Writer-thread failures arrive here, on the loop (file_store.h); our own
 * (out of memory) are routed the same way with file_writer_fail(), so the
 * owner hears about every failure once, never from inside a recorder_*
 * call. */
static void on_file_error(void *ctx, int err, const char *msg)
{
    struct recorder *r = ctx;
    (void)err;
    if (r->state == REC_OPEN) {
        drop_buffer(r);
        r->state = REC_FAILED;
    }
    if (r->error_reported)
        return;
    r->error_reported = true;
    metrics_add(METRIC_RECORDING_ERRORS_TOTAL, 1);
    log_warn("recorder: failed path=%s reason=\"%s\"", r->path, msg);
    if (r->cfg.on_error)
        r->cfg.on_error(r->cfg.ctx, r->path, msg);
}

static void fail(struct recorder *r, int err, const char *what)
{
    char msg[PATH_MAX + 160];
    snprintf(msg, sizeof msg, "%s %s: %s", what, r->path, strerror(err));
    drop_buffer(r);
    r->state = REC_FAILED;
    if (r->file)
        file_writer_fail(r->file, err, msg);
}

/* Polls the writer's verdict (cheap atomic) in case its report could not be
 * posted; the report itself still comes through on_file_error. */
static bool check_writer(struct recorder *r)
{
    if (r->file && r->state == REC_OPEN && file_writer_error(r->file) != 0) {
        drop_buffer(r);
        r->state = REC_FAILED;
    }
    return r->state != REC_FAILED;
}

/* --- ISO BMFF boxes (ISO/IEC 14496-12 §4.2) ------------------------------ */

/* Next box in [*pos, end): its type and payload. false at the end or on a
 * malformed size (the segmenter made these bytes; this is only a guard). */
static bool next_box(const uint8_t *buf, size_t end, size_t *pos, uint32_t *type, size_t *body,
                     size_t *body_end)
{
    if (*pos + 8 > end)
        return false;
    uint64_t size = rd_be32(buf + *pos);
    size_t hdr = 8;
    if (size == 1) {
        if (*pos + 16 > end)
            return false;
        size = rd_be64(buf + *pos + 8);
        hdr = 16;
    } else if (size == 0)
        size = end - *pos;
    if (size < hdr || size > end - *pos)
        return false;
    *type = rd_be32(buf + *pos + 4);
    *body = *pos + hdr;
    *body_end = *pos + (size_t)size;
    *pos = *body_end;
    return true;
}

#define BOX(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

/* Track ids and timescales of an init segment: moov/trak/tkhd and
 * moov/trak/mdia/mdhd (§8.3.2, §8.4.2). */
static void read_tracks(struct recorder *r, const uint8_t *buf, size_t len)
{
    r->ntracks = 0;
    size_t pos = 0, b, e;
    uint32_t t;
    while (next_box(buf, len, &pos, &t, &b, &e)) {
        if (t != BOX('m', 'o', 'o', 'v'))
            continue;
        size_t mp = b, tb, te;
        while (next_box(buf, e, &mp, &t, &tb, &te)) {
            if (t != BOX('t', 'r', 'a', 'k') || r->ntracks == REC_MAX_TRACKS)
                continue;
            uint32_t id = 0, ts = 0;
            size_t kp = tb, cb, ce;
            while (next_box(buf, te, &kp, &t, &cb, &ce)) {
                if (t == BOX('t', 'k', 'h', 'd') && ce - cb >= 24)
                    id = rd_be32(buf + cb + (buf[cb] == 1 ? 20 : 12));
                if (t != BOX('m', 'd', 'i', 'a'))
                    continue;
                size_t dp = cb, hb, he;
                while (next_box(buf, ce, &dp, &t, &hb, &he))
                    if (t == BOX('m', 'd', 'h', 'd') && he - hb >= 24)
                        ts = rd_be32(buf + hb + (buf[hb] == 1 ? 20 : 12));
            }
            if (id && ts) {
                r->track[r->ntracks].id = id;
                r->track[r->ntracks].timescale = ts;
                r->ntracks++;
            }
        }
    }
}

/* The file starts at media time 0: every moof/traf/tfdt (§8.8.12) of the
 * part gathered at buf[0, len) moves back by its track's base. */
static void rebase_part(struct recorder *r, uint8_t *buf, size_t len)
{
    size_t pos = 0, b, e;
    uint32_t t;
    while (next_box(buf, len, &pos, &t, &b, &e)) {
        if (t != BOX('m', 'o', 'o', 'f'))
            continue;
        size_t fp = b, tb, te;
        while (next_box(buf, e, &fp, &t, &tb, &te)) {
            if (t != BOX('t', 'r', 'a', 'f'))
                continue;
            uint64_t base = 0;
            size_t cp = tb, cb, ce;
            while (next_box(buf, te, &cp, &t, &cb, &ce)) {
                if (t == BOX('t', 'f', 'h', 'd') && ce - cb >= 8) {
                    uint32_t id = rd_be32(buf + cb + 4);
                    for (int i = 0; i < r->ntracks; i++)
                        if (r->track[i].id == id)
                            base = r->track[i].base;
                } else if (t == BOX('t', 'f', 'd', 't') && base) {
                    bool v1 = ce - cb >= 12 && buf[cb] == 1;
                    uint64_t d = v1 ? rd_be64(buf + cb + 4) : ce - cb >= 8 ? rd_be32(buf + cb + 4) : 0;
                    d = d > base ? d - base : 0;
                    if (v1)
                        wr_be64(buf + cb + 4, d);
                    else if (ce - cb >= 8)
                        wr_be32(buf + cb + 4, (uint32_t)d);
                }
            }
        }
    }
}

/* --- the file ------------------------------------------------------------ */

/* Moves what is gathered to the writer thread (the buffer goes with it). */
static void hand_off(struct recorder *r)
{
    if (!r->out_len)
        return;
    r->stats.bytes += r->out_len;
    r->stats.flushes++;
    r->last_flush_len = r->out_len;
    uint8_t *data = r->out;
    size_t len = r->out_len;
    r->out = NULL;
    r->out_len = r->out_cap = 0;
    r->out_media_us = 0;
    file_writer_append(r->file, data, len); /* a failure reaches us via on_error */
}

static int gather(struct recorder *r, const uint8_t *data, size_t len)
{
    size_t need = r->out_len + len;
    if (need > r->out_cap) {
        /* Sized for a whole hand-off at once: the last one's size, +25 %. */
        size_t cap = r->out_cap ? r->out_cap * 2 : r->last_flush_len + r->last_flush_len / 4;
        if (cap < REC_MIN_BUFFER)
            cap = REC_MIN_BUFFER;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(r->out, cap);
        if (!p) {
            fail(r, ENOMEM, "buffer for");
            return -1;
        }
        r->out = p;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, data, len);
    r->out_len = need;
    return 0;
}

static int write_part(struct recorder *r, const struct cmaf_part *p)
{
    if (!r->has_media) {
        /* The file starts at a sync point, with the init before it. */
        if (!p->independent || !r->init) {
            r->stats.dropped++;
            return 0;
        }
        if (gather(r, r->init, r->init_len) != 0)
            return -1;
        r->has_media = true;
        r->first_start_us = p->start_us;
        for (int i = 0; i < r->ntracks; i++)
            r->track[i].base = p->start_us > 0 ? (uint64_t)p->start_us * r->track[i].timescale / 1000000u : 0;
        r->end_us = p->start_us;
        log_info("recorder: file started path=%s tracks=%s", r->path, r->tracks_desc);
    }
    size_t at = r->out_len;
    if (gather(r, p->data, p->len) != 0)
        return -1;
    rebase_part(r, r->out + at, p->len);
    r->stats.parts++;
    int64_t end = p->start_us + p->duration_us;
    if (end > r->end_us)
        r->end_us = end;
    r->stats.duration_ms = (r->end_us - r->first_start_us) / 1000;
    r->out_media_us += p->duration_us;
    if (r->out_media_us >= (int64_t)r->cfg.fragment_ms * 1000 || r->out_len >= r->cfg.fragment_max_bytes)
        hand_off(r);
    return 0;
}

struct rec_close_ctx {
    struct recorder_config cfg; /* callbacks only */
    char path[PATH_MAX];
    struct recorder_stats stats;
};

static void on_closed(void *arg, const struct fw_close_result *res)
{
    struct rec_close_ctx *c = arg;
    c->stats.bytes = res->created ? res->bytes : 0;
    if (res->err)
        log_warn("recorder: file closed with error path=%s reason=\"%s\"", c->path, res->msg);
    else
        log_info("recorder: file closed path=%s bytes=%llu duration_ms=%lld", c->path,
                 (unsigned long long)c->stats.bytes, (long long)c->stats.duration_ms);
    if (c->cfg.on_file_closed)
        c->cfg.on_file_closed(c->cfg.ctx, c->path, &c->stats, res->err, res->msg);
    free(c);
}

/* Ends the current file (OPEN or FAILED) and hands it to the writer to
 * close. Leaves the recorder in WAIT without a path. */
static int end_file(struct recorder *r)
{
    if (r->state == REC_OPEN)
        hand_off(r);
    int rc = r->state == REC_FAILED ? -1 : 0;
    drop_buffer(r);
    if (r->file) {
        struct rec_close_ctx *c = calloc(1, sizeof *c);
        if (c) {
            c->cfg = r->cfg;
            snprintf(c->path, sizeof c->path, "%s", r->path);
            c->stats = r->stats;
        }
        file_writer_close(r->file, c ? on_closed : NULL, c);
        r->file = NULL;
    }
    r->have_path = false;
    r->has_media = false;
    r->state = REC_WAIT;
    return rc;
}

/* --- pending queue ------------------------------------------------------- */

static void pending_clear(struct recorder *r)
{
    struct rec_pending *p = r->pq_head;
    while (p) {
        struct rec_pending *n = p->next;
        free(p);
        p = n;
    }
    r->pq_head = r->pq_tail = NULL;
    r->pq_bytes = 0;
}

static void pending_push(struct recorder *r, const struct cmaf_part *part)
{
    /* Until an independent part is queued, earlier ones are useless. */
    if (!r->init || (!r->pq_head && !part->independent)) {
        r->stats.dropped++;
        return;
    }
    size_t sz = sizeof(struct rec_pending) + part->len;
    if (r->pq_bytes + sz > r->cfg.pending_max_bytes) {
        log_warn("recorder: pending queue over %zu bytes: dropping it", r->cfg.pending_max_bytes);
        pending_clear(r);
        r->stats.dropped++;
        return;
    }
    struct rec_pending *p = malloc(sz);
    if (!p) {
        r->stats.dropped++;
        return;
    }
    p->next = NULL;
    p->part = *part;
    memcpy(p->bytes, part->data, part->len);
    p->part.data = p->bytes;
    if (r->pq_tail)
        r->pq_tail->next = p;
    else
        r->pq_head = p;
    r->pq_tail = p;
    r->pq_bytes += sz;
}

/* --- public ------------------------------------------------------------ */

struct recorder *recorder_new(const struct recorder_config *cfg)
{
    if (!cfg || !cfg->loop)
        return NULL;
    struct recorder *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->cfg.path = NULL;
    if (r->cfg.fragment_ms <= 0)
        r->cfg.fragment_ms = REC_DEFAULT_FRAGMENT_MS;
    if (!r->cfg.pending_max_bytes)
        r->cfg.pending_max_bytes = REC_DEFAULT_PENDING_MAX;
    if (!r->cfg.fragment_max_bytes)
        r->cfg.fragment_max_bytes = REC_DEFAULT_FRAGMENT_MAX;
    snprintf(r->tracks_desc, sizeof r->tracks_desc, "-");
    r->writer = cfg->writer;
    if (!r->writer) {
        r->writer = file_writer_new("rec-writer", 0, 0);
        if (!r->writer) {
            free(r);
            return NULL;
        }
        /* as the gateway's writer with the default recording_direct_io */
        file_writer_set_direct_io(r->writer, true);
        r->own_writer = true;
    }
    r->state = REC_WAIT;
    if (cfg->path && recorder_set_path(r, cfg->path) != 0) {
        recorder_free(r);
        return NULL;
    }
    return r;
}

int recorder_init(struct recorder *r, const struct cmaf_init *init)
{
    if (r->state == REC_FAILED || r->state == REC_CLOSED)
        return -1;
    if (r->init && r->init_len == init->len && memcmp(r->init, init->data, init->len) == 0)
        return 0;
    uint8_t *copy = malloc(init->len ? init->len : 1);
    if (!copy)
        return -1;
    memcpy(copy, init->data, init->len);
    int rc = 0;
    if (r->state == REC_OPEN && r->has_media) {
        log_info("recorder: new init (codec configuration) path=%s: closing the file, next one follows",
                 r->path);
        end_file(r);
        rc = RECORDER_ROTATED;
    }
    /* Parts queued under the old init cannot go into a file with the new one. */
    pending_clear(r);
    free(r->init);
    r->init = copy;
    r->init_len = init->len;
    read_tracks(r, copy, init->len);
    size_t n = 0;
    r->tracks_desc[0] = 0;
    for (int i = 0; i < init->ntracks && n < sizeof r->tracks_desc; i++)
        n += (size_t)snprintf(r->tracks_desc + n, sizeof r->tracks_desc - n, "%s%s", i ? "," : "",
                              init->tracks[i].codec_string);
    return rc;
}

int recorder_part(struct recorder *r, const struct cmaf_part *part)
{
    if (r->state == REC_OPEN && !check_writer(r))
        return -1;
    if (r->state == REC_FAILED || r->state == REC_CLOSED)
        return -1;
    if (r->state == REC_WAIT) {
        pending_push(r, part);
        return 0;
    }
    return write_part(r, part);
}

int recorder_set_path(struct recorder *r, const char *path)
{
    if (r->state != REC_WAIT || r->have_path || !path || !path[0])
        return -1;
    if (snprintf(r->path, sizeof r->path, "%s", path) >= (int)sizeof r->path)
        return -1;
    struct fw_file_cb cb = {.loop = r->cfg.loop, .ctx = r, .on_error = on_file_error};
    r->file = file_writer_open(r->writer, r->path, &cb); /* nothing on disk before the first bytes */
    if (!r->file) {
        log_error("recorder: out of memory opening %s", r->path);
        return -1;
    }
    r->have_path = true;
    memset(&r->stats, 0, sizeof r->stats);
    r->error_reported = false;
    r->has_media = false;
    r->state = REC_OPEN;
    struct rec_pending *p = r->pq_head;
    r->pq_head = r->pq_tail = NULL;
    r->pq_bytes = 0;
    while (p) {
        struct rec_pending *n = p->next;
        if (r->state == REC_OPEN)
            write_part(r, &p->part);
        free(p);
        p = n;
    }
    return 0;
}

bool recorder_failed(const struct recorder *r) { return r->state == REC_FAILED; }

void recorder_stats(const struct recorder *r, struct recorder_stats *out)
{
    if (r->state == REC_OPEN || r->state == REC_FAILED) {
        *out = r->stats;
        out->bytes += r->out_len;
    } else
        memset(out, 0, sizeof *out);
}

int recorder_close(struct recorder *r, struct recorder_stats *out)
{
    if (r->state == REC_CLOSED) {
        if (out)
            memset(out, 0, sizeof *out);
        return 0;
    }
    int rc = end_file(r);
    if (out)
        *out = r->stats;
    pending_clear(r);
    r->state = REC_CLOSED;
    return rc;
}

void recorder_free(struct recorder *r)
{
    if (!r)
        return;
    recorder_close(r, NULL);
    if (r->own_writer)
        file_writer_free(r->writer);
    free(r->init);
    free(r);
}
