/* media_index.c — live window, VOD list and bytes of one playlist target.
 * See media_index.h for the threading contract. */
#include "packager/media_index.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "packager/segment_store.h"

#define MI_MAX_WINDOW 64
#define MI_MAX_PARTS 1024       /* parts per segment (0.5 s parts: 8.5 min) */
#define MI_MAX_INITS 64
#define MI_VOD_BLOCK 1024
#define MI_PART_POOL 2048       /* EXT-X-PART tags in one rendered playlist */

/* ---- media_buf ------------------------------------------------------------ */

struct media_buf {
    atomic_uint refs;
    size_t len;
    uint8_t data[];
};

struct media_buf *media_buf_new(const void *data, size_t len)
{
    struct media_buf *b = malloc(sizeof(*b) + (len ? len : 1));
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    return b;
}

struct media_buf *media_buf_ref(struct media_buf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void media_buf_unref(struct media_buf *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

const uint8_t *media_buf_data(const struct media_buf *b) { return b->data; }
size_t media_buf_len(const struct media_buf *b) { return b->len; }

/* ---- index state ---------------------------------------------------------- */

struct mi_part {
    struct media_buf *buf;   /* NULL once the segment left memory (mi_seg.trimmed) */
    int64_t duration_us;
    uint64_t len;
    bool independent;
};

struct mi_seg {
    uint64_t msn;
    uint64_t src_msn;        /* the segmenter's msn: groups parts */
    int64_t start_us, duration_us;
    long long pdt_us;
    uint32_t init_id;
    bool discontinuity;
    bool persisted;          /* its file is on disk (the store's writer said so) */
    bool trimmed;            /* its bytes left memory: served from the file */
    uint64_t bytes;
    uint32_t nparts, cap;
    struct mi_part *parts;   /* NULL: bytes not in memory (restored, or trimmed) */
};

struct mi_init {
    uint32_t id;
    struct media_buf *buf;   /* NULL: restored, on disk only */
    char codecs[128];
    int width, height;
    double frame_rate;
    bool audio_only;
};

/* One VOD record: immutable once vod_n covers it, so readers that sampled
 * vod_n under the lock may read it without the lock. */
struct mi_meta {
    uint64_t msn;
    int64_t duration_us;
    long long pdt_us;
    uint32_t init_id;
    bool discontinuity;
};

struct media_index {
    atomic_int refs;
    pthread_mutex_t mu;
    struct cmaf_sink sink;

    /* configuration (immutable) */
    char kind[16], id[65], name[84];
    char rel_dir[128];           /* hls/{kind}/{id}/seg */
    int64_t cfg_target_us, part_target_us;
    int window, ring_cap;
    int mem_segments;            /* 0 = no trimming */
    bool keep_vod;
    uint32_t vod_max;
    size_t max_part_bytes;
    struct segment_store *store;

    /* everything below under mu */
    enum media_index_state state;
    uint32_t session_no;
    bool pending_disc;
    uint64_t next_msn;           /* msn of the open segment / the next one */
    uint64_t closed_src_msn;     /* segmenter msn of the segment closed by ends_segment */
    bool closed_src_valid;
    uint64_t disk_first_msn;     /* first msn this target ever had */
    bool have_disk_first;

    struct mi_init inits[MI_MAX_INITS];
    int ninits;
    int cur_init;                /* index into inits, -1 none */
    uint32_t next_init_id;

    struct mi_seg *ring;         /* complete segments, oldest first, ring_cap slots */
    int ring_head, ring_len;
    struct mi_seg open;          /* segment in progress (open.nparts > 0) */

    bool anchor_valid;           /* PROGRAM-DATE-TIME anchor of the current run */
    long long anchor_wall;
    int64_t anchor_start;

    int64_t td_s;                /* EXT-X-TARGETDURATION once frozen */
    int64_t pt_us;               /* PART-TARGET in effect (≥ configured, ≥ every part) */
    int64_t max_part_us;
    bool td_frozen;
    int64_t max_rounded_s;
    uint64_t disc_seq;           /* discontinuities that left the window */

    struct mi_meta **vod_blocks;
    uint32_t vod_n, vod_nblocks;
    bool vod_full_logged;

    uint32_t parked;
    bool wake_pending;
    media_index_notify_fn notify_fn;
    void *notify_arg;
    void *reader_slot;

    uint64_t segments_total, parts_total, bytes_total;
    long long last_part_mono_us;

    /* Rendered playlists without a URI suffix, valid while gen == cache_gen[k]:
     * gen changes with everything a playlist shows. */
    uint64_t gen;
    struct media_buf *cache[4];  /* MULTIVARIANT, MEDIA, MEDIA skip, VOD */
    uint64_t cache_gen[4];
};

static struct mi_seg *ring_at(struct media_index *idx, int i)
{
    return &idx->ring[(idx->ring_head + i) % idx->ring_cap];
}

static struct mi_seg *ring_find(struct media_index *idx, uint64_t msn)
{
    if (idx->ring_len == 0)
        return NULL;
    uint64_t first = ring_at(idx, 0)->msn;
    if (msn < first || msn - first >= (uint64_t)idx->ring_len)
        return NULL;
    struct mi_seg *s = ring_at(idx, (int)(msn - first));
    return s->msn == msn ? s : NULL;
}

static void seg_clear(struct mi_seg *s)
{
    for (uint32_t i = 0; i < s->nparts; i++)
        media_buf_unref(s->parts[i].buf);
    free(s->parts);
    memset(s, 0, sizeof(*s));
}

static struct mi_init *init_find(struct media_index *idx, uint32_t id)
{
    for (int i = 0; i < idx->ninits; i++)
        if (idx->inits[i].id == id)
            return &idx->inits[i];
    return NULL;
}

static bool valid_name(const char *s, size_t max, bool lower_only)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') ||
                  (!lower_only && ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

/* Called with mu held: should the notify hook run (after unlocking)? */
static bool want_notify_locked(struct media_index *idx, media_index_notify_fn *fn, void **arg)
{
    if (idx->parked == 0 || !idx->notify_fn || idx->wake_pending)
        return false;
    idx->wake_pending = true;
    *fn = idx->notify_fn;
    *arg = idx->notify_arg;
    return true;
}

/* Frees inits that are neither current nor used by a segment in memory. */
static void prune_inits_locked(struct media_index *idx)
{
    for (int i = 0; i < idx->ninits;) {
        struct mi_init *in = &idx->inits[i];
        bool used = (i == idx->cur_init) || (idx->open.nparts > 0 && idx->open.init_id == in->id);
        for (int k = 0; !used && k < idx->ring_len; k++)
            used = ring_at(idx, k)->init_id == in->id;
        if (used) {
            i++;
            continue;
        }
        media_buf_unref(in->buf);
        int cur_id = idx->cur_init >= 0 ? (int)idx->inits[idx->cur_init].id : -1;
        memmove(&idx->inits[i], &idx->inits[i + 1], (size_t)(idx->ninits - i - 1) * sizeof(*in));
        idx->ninits--;
        idx->cur_init = -1;
        for (int k = 0; k < idx->ninits; k++)
            if ((int)idx->inits[k].id == cur_id)
                idx->cur_init = k;
    }
}

/* ---- persistence ---------------------------------------------------------- */

struct write_ctx {
    struct segment_store *store;
    struct media_index *idx;     /* reference: segment writes only */
    uint64_t msn;
    char rel_dir[128];
    char line[256];
    size_t nbufs;
    struct media_buf *bufs[];
};

static void trim_memory_locked(struct media_index *idx);

/* Writer thread: the file is on disk (or failed); log it and drop refs. A
 * segment on disk may now leave memory (mem_segments). */
static void write_done(void *arg, int err)
{
    struct write_ctx *w = arg;
    if (err == 0 && w->line[0])
        segment_store_append(w->store, w->rel_dir, "index.log", w->line, strlen(w->line));
    for (size_t i = 0; i < w->nbufs; i++)
        media_buf_unref(w->bufs[i]);
    if (w->idx) {
        struct media_index *idx = w->idx;
        if (err == 0) {
            pthread_mutex_lock(&idx->mu);
            struct mi_seg *s = ring_find(idx, w->msn);
            if (s) {
                s->persisted = true;
                trim_memory_locked(idx);
            }
            pthread_mutex_unlock(&idx->mu);
        }
        media_index_unref(idx);
    }
    free(w);
}

/* seg_msn >= 0: the file is that segment (write_done marks it persisted). */
static void persist_locked(struct media_index *idx, const char *name, struct media_buf **bufs, size_t n,
                           const char *line, int64_t seg_msn)
{
    if (!idx->store)
        return;
    struct write_ctx *w = calloc(1, sizeof(*w) + n * sizeof(w->bufs[0]));
    struct segment_store_chunk *chunks = calloc(n ? n : 1, sizeof(*chunks));
    if (!w || !chunks) {
        free(w);
        free(chunks);
        log_warn("hls: persist OOM index=%s file=%s", idx->name, name);
        return;
    }
    w->store = idx->store;
    if (seg_msn >= 0 && idx->mem_segments > 0) {
        w->idx = media_index_ref(idx);
        w->msn = (uint64_t)seg_msn;
    }
    snprintf(w->rel_dir, sizeof(w->rel_dir), "%s", idx->rel_dir);
    snprintf(w->line, sizeof(w->line), "%s", line);
    w->nbufs = n;
    for (size_t i = 0; i < n; i++) {
        w->bufs[i] = media_buf_ref(bufs[i]);
        chunks[i].data = media_buf_data(bufs[i]);
        chunks[i].len = media_buf_len(bufs[i]);
    }
    segment_store_write(idx->store, idx->rel_dir, name, chunks, n, write_done, w);
    free(chunks);
}

/* ---- building segments (media loop, mu held) ------------------------------ */

static void vod_append_locked(struct media_index *idx, const struct mi_seg *s)
{
    if (!idx->keep_vod)
        return;
    if (idx->vod_n >= idx->vod_max) {
        if (!idx->vod_full_logged)
            log_warn("hls: vod list full index=%s max=%u (older DVR kept, newer not listed)", idx->name,
                     idx->vod_max);
        idx->vod_full_logged = true;
        return;
    }
    uint32_t blk = idx->vod_n / MI_VOD_BLOCK;
    if (!idx->vod_blocks[blk]) {
        idx->vod_blocks[blk] = calloc(MI_VOD_BLOCK, sizeof(struct mi_meta));
        if (!idx->vod_blocks[blk])
            return;
    }
    struct mi_meta *m = &idx->vod_blocks[blk][idx->vod_n % MI_VOD_BLOCK];
    m->msn = s->msn;
    m->duration_us = s->duration_us;
    m->pdt_us = s->pdt_us;
    m->init_id = s->init_id;
    m->discontinuity = s->discontinuity;
    idx->vod_n++;
}

/* Appends a complete segment (takes its parts) to the window ring. */
static void ring_push_locked(struct media_index *idx, struct mi_seg *s)
{
    if (idx->ring_len == idx->ring_cap) {
        seg_clear(ring_at(idx, 0));
        idx->ring_head = (idx->ring_head + 1) % idx->ring_cap;
        idx->ring_len--;
    }
    *ring_at(idx, idx->ring_len) = *s;
    idx->ring_len++;
    memset(s, 0, sizeof(*s));
    /* RFC 8216bis §6.2.2: a discontinuity leaving the playlist increments
     * EXT-X-DISCONTINUITY-SEQUENCE. Exactly one segment leaves per push once
     * the window is full. */
    if (idx->ring_len > idx->window && ring_at(idx, idx->ring_len - idx->window - 1)->discontinuity)
        idx->disc_seq++;

    const struct mi_seg *t = ring_at(idx, idx->ring_len - 1);
    int64_t r = playlist_rounded_seconds(t->duration_us);
    if (r > idx->max_rounded_s)
        idx->max_rounded_s = r;
    if (idx->td_frozen && r > idx->td_s) {
        /* RFC 8216bis §6.2.1: EXTINF rounded must not exceed the target; the
         * target must not change either. The first rule protects playback. */
        log_warn("hls: segment longer than target duration index=%s msn=%" PRIu64 " dur_us=%lld td=%lld",
                 idx->name, t->msn, (long long)t->duration_us, (long long)idx->td_s);
        idx->td_s = r;
    }
    idx->segments_total++;
    idx->bytes_total += t->bytes;
    idx->next_msn = t->msn + 1;
}

/* Closes the open segment. duration_us <= 0: sum of its parts. */
static void close_open_locked(struct media_index *idx, int64_t duration_us)
{
    struct mi_seg *o = &idx->open;
    if (o->nparts == 0)
        return;
    int64_t sum = 0;
    for (uint32_t i = 0; i < o->nparts; i++)
        sum += o->parts[i].duration_us;
    o->duration_us = duration_us > 0 ? duration_us : sum;

    struct media_buf *bufs[MI_MAX_PARTS];
    for (uint32_t i = 0; i < o->nparts; i++)
        bufs[i] = o->parts[i].buf;
    char name[32], line[160];
    snprintf(name, sizeof(name), "%" PRIu64 ".m4s", o->msn);
    snprintf(line, sizeof(line), "seg %" PRIu64 " %lld %lld %u %d %" PRIu64 " %lld\n", o->msn,
             (long long)o->duration_us, o->pdt_us, o->init_id, o->discontinuity ? 1 : 0, o->bytes,
             (long long)o->start_us);
    persist_locked(idx, name, bufs, o->nparts, line, (int64_t)o->msn);

    vod_append_locked(idx, o);
    ring_push_locked(idx, o);
    prune_inits_locked(idx);
    trim_memory_locked(idx);
    idx->gen++;
}

static int64_t td_locked(struct media_index *idx);

/* mem_segments: drops the bytes of complete segments that are on disk, older
 * than the newest mem_segments and ending more than one target duration
 * before the live edge. get_segment then answers ON_DISK for them, and
 * get_part ON_DISK with the part's byte range in the segment's file (a
 * segment is its parts, concatenated); playlists are unchanged. */
static void trim_memory_locked(struct media_index *idx)
{
    if (idx->mem_segments <= 0 || !idx->store)
        return;
    int64_t keep_us = td_locked(idx) * 1000000;
    int64_t after = 0;   /* media time from the end of segment k to the live edge */
    for (uint32_t i = 0; i < idx->open.nparts; i++)
        after += idx->open.parts[i].duration_us;
    for (int k = idx->ring_len - 1; k >= 0; k--) {
        struct mi_seg *s = ring_at(idx, k);
        bool old = idx->ring_len - k > idx->mem_segments && after >= keep_us;
        after += s->duration_us;
        if (!old || !s->parts || s->trimmed || !s->persisted)
            continue;
        /* The part list stays (playlists, byte offsets into the file). */
        for (uint32_t i = 0; i < s->nparts; i++) {
            media_buf_unref(s->parts[i].buf);
            s->parts[i].buf = NULL;
        }
        s->trimmed = true;
    }
}

static void sink_on_init(void *ctx, const struct cmaf_init *init)
{
    struct media_index *idx = ctx;
    if (!init->data || init->len == 0 || init->len > idx->max_part_bytes) {
        log_warn("hls: init refused index=%s len=%zu", idx->name, init->len);
        return;
    }
    struct media_buf *buf = media_buf_new(init->data, init->len);
    if (!buf) {
        log_error("hls: init OOM index=%s", idx->name);
        return;
    }
    struct mi_init in = {0};
    in.buf = buf;
    in.audio_only = true;
    size_t off = 0;
    /* CODECS: video first, then audio (RFC 8216bis §4.4.6.2) */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < init->ntracks; i++) {
            const struct cmaf_track_info *t = &init->tracks[i];
            bool video = t->kind == MEDIA_KIND_VIDEO;
            if (video != (pass == 0) || !t->codec_string[0])
                continue;
            int n = snprintf(in.codecs + off, sizeof(in.codecs) - off, "%s%s", off ? "," : "", t->codec_string);
            if (n > 0 && (size_t)n < sizeof(in.codecs) - off)
                off += (size_t)n;
            if (video) {
                in.audio_only = false;
                in.width = t->width;
                in.height = t->height;
                in.frame_rate = t->frame_rate;
            }
        }
    }

    pthread_mutex_lock(&idx->mu);
    struct mi_init *cur = idx->cur_init >= 0 ? &idx->inits[idx->cur_init] : NULL;
    bool had_media = idx->segments_total > 0 || idx->open.nparts > 0;
    if (cur && cur->buf && media_buf_len(cur->buf) == init->len &&
        memcmp(media_buf_data(cur->buf), init->data, init->len) == 0) {
        /* same init again (reconnect with the same encoder settings) */
        if (init->discontinuity && had_media)
            idx->pending_disc = true;
        pthread_mutex_unlock(&idx->mu);
        media_buf_unref(buf);
        return;
    }
    /* parts already received belong to the old init: close their segment */
    close_open_locked(idx, 0);
    if (idx->ninits == MI_MAX_INITS)
        prune_inits_locked(idx);
    if (idx->ninits == MI_MAX_INITS) {
        pthread_mutex_unlock(&idx->mu);
        log_error("hls: too many init sections in the window index=%s", idx->name);
        media_buf_unref(buf);
        return;
    }
    in.id = idx->next_init_id++;
    idx->inits[idx->ninits] = in;
    idx->cur_init = idx->ninits++;
    idx->gen++;
    if (had_media)
        idx->pending_disc = true; /* ING-9: new init → EXT-X-DISCONTINUITY */
    char name[32], line[256];
    snprintf(name, sizeof(name), "init-%u.mp4", in.id);
    snprintf(line, sizeof(line), "init %u %s %d %d %lld %d\n", in.id, in.codecs[0] ? in.codecs : "-", in.width,
             in.height, (long long)(in.frame_rate * 1000.0 + 0.5), in.audio_only ? 1 : 0);
    persist_locked(idx, name, &buf, 1, line, -1);
    pthread_mutex_unlock(&idx->mu);
    log_info("hls: init index=%s id=%u codecs=%s %dx%d", idx->name, in.id, in.codecs, in.width, in.height);
}

static void sink_on_part(void *ctx, const struct cmaf_part *p)
{
    struct media_index *idx = ctx;
    if (!p->data || p->len == 0 || p->len > idx->max_part_bytes || p->duration_us < 0) {
        log_warn("hls: part refused index=%s len=%zu", idx->name, p->len);
        return;
    }
    struct media_buf *buf = media_buf_new(p->data, p->len);
    if (!buf) {
        log_error("hls: part OOM index=%s", idx->name);
        return;
    }
    media_index_notify_fn fn = NULL;
    void *arg = NULL;
    bool wake;

    pthread_mutex_lock(&idx->mu);
    struct mi_seg *o = &idx->open;
    if (idx->state == MEDIA_INDEX_ENDED || idx->cur_init < 0) {
        pthread_mutex_unlock(&idx->mu);
        log_warn("hls: part dropped index=%s (%s)", idx->name, idx->cur_init < 0 ? "no init" : "ended");
        media_buf_unref(buf);
        return;
    }
    idx->state = MEDIA_INDEX_LIVE;
    /* A part of another segmenter segment, or a discontinuity in the middle
     * of one, starts a new segment here. */
    if (o->nparts > 0 && (p->msn != o->src_msn || p->discontinuity))
        close_open_locked(idx, 0);
    if (o->nparts == 0) {
        bool had = idx->segments_total > 0;
        o->msn = idx->next_msn;
        o->src_msn = p->msn;
        o->start_us = p->start_us;
        o->init_id = idx->inits[idx->cur_init].id;
        o->discontinuity = had && (idx->pending_disc || p->discontinuity);
        idx->pending_disc = false;
        if (o->discontinuity || !idx->anchor_valid) {
            idx->anchor_valid = p->wall_us > 0;
            idx->anchor_wall = p->wall_us;
            idx->anchor_start = p->start_us;
        }
        o->pdt_us = idx->anchor_valid ? idx->anchor_wall + (p->start_us - idx->anchor_start) : 0;
        if (!idx->have_disk_first) {
            idx->disk_first_msn = o->msn;
            idx->have_disk_first = true;
        }
    }
    if (o->nparts == MI_MAX_PARTS) {
        pthread_mutex_unlock(&idx->mu);
        log_warn("hls: part dropped index=%s msn=%" PRIu64 " (too many parts, no keyframe?)", idx->name, o->msn);
        media_buf_unref(buf);
        return;
    }
    if (o->nparts == o->cap) {
        uint32_t ncap = o->cap ? o->cap * 2 : 8;
        struct mi_part *np = realloc(o->parts, ncap * sizeof(*np));
        if (!np) {
            pthread_mutex_unlock(&idx->mu);
            media_buf_unref(buf);
            return;
        }
        o->parts = np;
        o->cap = ncap;
    }
    o->parts[o->nparts++] = (struct mi_part){buf, p->duration_us, p->len, p->independent};
    if (p->duration_us > idx->max_part_us) {
        idx->max_part_us = p->duration_us;
        if (idx->td_frozen && idx->part_target_us > 0 && p->duration_us > idx->pt_us) {
            /* RFC 8216bis §4.4.4.9: no part longer than PART-TARGET */
            log_warn("hls: part longer than part target index=%s dur_us=%lld target_us=%lld", idx->name,
                     (long long)p->duration_us, (long long)idx->pt_us);
            idx->pt_us = (p->duration_us + 999) / 1000 * 1000;
        }
    }
    o->bytes += p->len;
    idx->parts_total++;
    idx->last_part_mono_us = p->ready_mono_us;
    idx->gen++;
    /* The segment is complete with this part: list it now, so a reader woken
     * for this part sees the segment too (its duration is the sum of its
     * parts, which is what on_segment would say). */
    if (p->ends_segment) {
        close_open_locked(idx, 0);
        idx->closed_src_msn = p->msn;
        idx->closed_src_valid = true;
    }
    wake = want_notify_locked(idx, &fn, &arg);
    pthread_mutex_unlock(&idx->mu);
    if (wake)
        fn(arg, idx);
}

static void sink_on_segment(void *ctx, const struct cmaf_segment *seg)
{
    struct media_index *idx = ctx;
    media_index_notify_fn fn = NULL;
    void *arg = NULL;
    bool wake = false;
    pthread_mutex_lock(&idx->mu);
    if (idx->open.nparts > 0 && idx->open.src_msn == seg->msn) {
        close_open_locked(idx, seg->duration_us);
        wake = want_notify_locked(idx, &fn, &arg);
    } else if (idx->closed_src_valid && idx->closed_src_msn == seg->msn) {
        /* already closed with its last part (ends_segment) */
    } else {
        log_debug("hls: segment without open parts index=%s src_msn=%" PRIu64, idx->name, seg->msn);
    }
    pthread_mutex_unlock(&idx->mu);
    if (wake)
        fn(arg, idx);
}

/* ---- restore -------------------------------------------------------------- */

static void restore_locked(struct media_index *idx)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/index.log", segment_store_root(idx->store), idx->rel_dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[512];
    unsigned nseg = 0, bad = 0;
    bool ended = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long msn, bytes;
        long long dur, pdt, fps, start = 0;
        unsigned id;
        int disc, w, h, ao;
        char codecs[128];
        if (sscanf(line, "seg %llu %lld %lld %u %d %llu %lld", &msn, &dur, &pdt, &id, &disc, &bytes, &start) >= 6) {
            if (dur <= 0 || (idx->segments_total > 0 && msn < idx->next_msn)) {
                bad++;
                continue;
            }
            struct mi_seg s = {.msn = msn, .src_msn = msn, .start_us = start, .duration_us = dur,
                               .pdt_us = pdt, .init_id = id, .discontinuity = disc != 0, .bytes = bytes};
            if (!idx->have_disk_first) {
                idx->disk_first_msn = msn;
                idx->have_disk_first = true;
            }
            vod_append_locked(idx, &s);
            ring_push_locked(idx, &s);
            nseg++;
        } else if (sscanf(line, "init %u %127s %d %d %lld %d", &id, codecs, &w, &h, &fps, &ao) == 6) {
            if (id >= idx->next_init_id)
                idx->next_init_id = id + 1;
            if (idx->ninits == MI_MAX_INITS)
                prune_inits_locked(idx);
            if (idx->ninits < MI_MAX_INITS) {
                struct mi_init *in = &idx->inits[idx->ninits];
                memset(in, 0, sizeof(*in));
                in->id = id;
                snprintf(in->codecs, sizeof(in->codecs), "%s", strcmp(codecs, "-") ? codecs : "");
                in->width = w;
                in->height = h;
                in->frame_rate = (double)fps / 1000.0;
                in->audio_only = ao != 0;
                idx->cur_init = idx->ninits++;
            }
        } else if (strncmp(line, "end", 3) == 0) {
            ended = true;
        } else {
            bad++;
        }
    }
    fclose(f);
    if (nseg == 0 && !ended)
        return;
    idx->state = ended ? MEDIA_INDEX_ENDED : MEDIA_INDEX_INACTIVE;
    /* the current init is known by metadata only: a new session brings its
     * own init; until then multivariant playlists use this one */
    log_info("hls: restored index=%s segments=%u next_msn=%" PRIu64 " ended=%d bad_lines=%u", idx->name, nseg,
             idx->next_msn, ended, bad);
}

/* ---- lifecycle ------------------------------------------------------------- */

struct media_index *media_index_new(const struct media_index_opts *o)
{
    if (!o || !valid_name(o->kind, 15, true) || !valid_name(o->id, 64, false) || o->target_duration_us < 0 ||
        o->part_target_us < 0)
        return NULL;
    struct media_index *idx = calloc(1, sizeof(*idx));
    if (!idx)
        return NULL;
    atomic_init(&idx->refs, 1);
    pthread_mutex_init(&idx->mu, NULL);
    snprintf(idx->kind, sizeof(idx->kind), "%s", o->kind);
    snprintf(idx->id, sizeof(idx->id), "%s", o->id);
    snprintf(idx->name, sizeof(idx->name), "%s/%s", o->kind, o->id);
    snprintf(idx->rel_dir, sizeof(idx->rel_dir), "hls/%s/%s/seg", o->kind, o->id);
    idx->cfg_target_us = o->target_duration_us ? o->target_duration_us : 2000000;
    idx->part_target_us = o->part_target_us;
    int w = o->live_window_segments ? o->live_window_segments : 10;
    idx->window = w < 3 ? 3 : (w > MI_MAX_WINDOW ? MI_MAX_WINDOW : w);
    int extra = o->keep_extra_segments > 0 ? o->keep_extra_segments : o->keep_extra_segments < 0 ? 0 : 4;
    idx->ring_cap = idx->window + (extra > 64 ? 64 : extra);
    idx->mem_segments = o->mem_segments > 0 && o->store ? o->mem_segments : 0;
    idx->keep_vod = o->keep_vod;
    idx->vod_max = o->vod_max_segments ? o->vod_max_segments : 200000;
    idx->max_part_bytes = o->max_part_bytes ? o->max_part_bytes : (size_t)32 << 20;
    idx->store = o->store;
    idx->cur_init = -1;
    idx->ring = calloc((size_t)idx->ring_cap, sizeof(*idx->ring));
    if (idx->keep_vod) {
        idx->vod_nblocks = (idx->vod_max + MI_VOD_BLOCK - 1) / MI_VOD_BLOCK;
        idx->vod_blocks = calloc(idx->vod_nblocks, sizeof(*idx->vod_blocks));
    }
    if (!idx->ring || (idx->keep_vod && !idx->vod_blocks)) {
        free(idx->ring);
        free(idx->vod_blocks);
        pthread_mutex_destroy(&idx->mu);
        free(idx);
        return NULL;
    }
    idx->sink = (struct cmaf_sink){idx, sink_on_init, sink_on_part, sink_on_segment};
    if (o->restore && idx->store)
        restore_locked(idx); /* not shared yet: no lock needed */
    return idx;
}

struct media_index *media_index_ref(struct media_index *idx)
{
    atomic_fetch_add_explicit(&idx->refs, 1, memory_order_relaxed);
    return idx;
}

void media_index_unref(struct media_index *idx)
{
    if (!idx || atomic_fetch_sub_explicit(&idx->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < idx->ring_len; i++)
        seg_clear(ring_at(idx, i));
    seg_clear(&idx->open);
    for (int i = 0; i < idx->ninits; i++)
        media_buf_unref(idx->inits[i].buf);
    for (int i = 0; i < 4; i++)
        media_buf_unref(idx->cache[i]);
    for (uint32_t b = 0; b < idx->vod_nblocks; b++)
        free(idx->vod_blocks[b]);
    free(idx->vod_blocks);
    free(idx->ring);
    pthread_mutex_destroy(&idx->mu);
    free(idx);
}

const char *media_index_name(const struct media_index *idx) { return idx->name; }
const char *media_index_kind(const struct media_index *idx) { return idx->kind; }
const char *media_index_id(const struct media_index *idx) { return idx->id; }
const struct cmaf_sink *media_index_sink(struct media_index *idx) { return &idx->sink; }

uint32_t media_index_begin_session(struct media_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    close_open_locked(idx, 0);
    idx->gen++;
    idx->session_no++;
    if (idx->state != MEDIA_INDEX_ENDED)
        idx->state = MEDIA_INDEX_LIVE;
    if (idx->segments_total > 0)
        idx->pending_disc = true;
    uint32_t n = idx->session_no;
    pthread_mutex_unlock(&idx->mu);
    log_info("hls: session begins index=%s session=%u next_msn=%" PRIu64, idx->name, n, media_index_next_msn(idx));
    return n;
}

static void set_state(struct media_index *idx, enum media_index_state st)
{
    media_index_notify_fn fn = NULL;
    void *arg = NULL;
    bool wake = false;
    pthread_mutex_lock(&idx->mu);
    close_open_locked(idx, 0);
    idx->gen++;
    bool changed = idx->state != st && idx->state != MEDIA_INDEX_ENDED;
    if (changed) {
        idx->state = st;
        if (st == MEDIA_INDEX_ENDED && idx->store)
            segment_store_append(idx->store, idx->rel_dir, "index.log", "end\n", 4);
    }
    wake = want_notify_locked(idx, &fn, &arg);
    pthread_mutex_unlock(&idx->mu);
    if (wake)
        fn(arg, idx);
}

void media_index_set_inactive(struct media_index *idx) { set_state(idx, MEDIA_INDEX_INACTIVE); }
void media_index_end(struct media_index *idx) { set_state(idx, MEDIA_INDEX_ENDED); }

uint64_t media_index_next_msn(struct media_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    uint64_t n = idx->open.nparts > 0 ? idx->open.msn + 1 : idx->next_msn;
    pthread_mutex_unlock(&idx->mu);
    return n;
}

int64_t media_index_next_start_us(struct media_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    int64_t t = 0;
    if (idx->open.nparts > 0) {
        t = idx->open.start_us;
        for (uint32_t i = 0; i < idx->open.nparts; i++)
            t += idx->open.parts[i].duration_us;
    } else if (idx->ring_len > 0) {
        const struct mi_seg *s = ring_at(idx, idx->ring_len - 1);
        t = s->start_us + s->duration_us;
    }
    pthread_mutex_unlock(&idx->mu);
    return t;
}

enum media_index_state media_index_get_state(struct media_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    enum media_index_state s = idx->state;
    pthread_mutex_unlock(&idx->mu);
    return s;
}

void media_index_set_notify(struct media_index *idx, media_index_notify_fn fn, void *arg)
{
    pthread_mutex_lock(&idx->mu);
    idx->notify_fn = fn;
    idx->notify_arg = arg;
    idx->wake_pending = false;
    pthread_mutex_unlock(&idx->mu);
}

void media_index_notify_done(struct media_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    idx->wake_pending = false;
    pthread_mutex_unlock(&idx->mu);
}

void **media_index_reader_slot(struct media_index *idx) { return &idx->reader_slot; }

/* ---- playlists ------------------------------------------------------------ */

static int64_t td_locked(struct media_index *idx)
{
    int64_t cfg = (idx->cfg_target_us + 999999) / 1000000;
    int64_t td = idx->max_rounded_s > cfg ? idx->max_rounded_s : cfg;
    if (!idx->td_frozen)
        return td < 1 ? 1 : td;
    return idx->td_s;
}

/* The first render publishes the target duration; from then on it only
 * grows if a segment forces it (logged in ring_push_locked). */
static int64_t freeze_td_locked(struct media_index *idx)
{
    if (!idx->td_frozen) {
        idx->td_s = td_locked(idx);
        /* parts are cut on frame boundaries (29.97 fps, 1024-sample AAC
         * frames) and may overshoot the configured target by a frame */
        int64_t pt = idx->max_part_us > idx->part_target_us ? idx->max_part_us : idx->part_target_us;
        idx->pt_us = idx->part_target_us > 0 ? (pt + 999) / 1000 * 1000 : 0;
        idx->td_frozen = true;
        idx->gen++;
    }
    return idx->td_s;
}

/* PART-TARGET for rendering and the Advance Part Limit. */
static int64_t part_target_locked(struct media_index *idx)
{
    return idx->td_frozen ? idx->pt_us : idx->part_target_us;
}

struct snapshot {
    struct playlist_segment segs[MI_MAX_WINDOW];
    struct playlist_part parts[MI_PART_POOL];
};

static void copy_parts(struct playlist_segment *dst, const struct mi_seg *src, struct snapshot *sn, size_t *used)
{
    uint32_t n = src->nparts;
    if (n > MI_PART_POOL - *used)
        n = (uint32_t)(MI_PART_POOL - *used);
    for (uint32_t i = 0; i < n; i++)
        sn->parts[*used + i] = (struct playlist_part){src->parts[i].duration_us, src->parts[i].independent};
    dst->parts = &sn->parts[*used];
    dst->nparts = n;
    *used += n;
}

static void seg_desc(struct playlist_segment *d, const struct mi_seg *s)
{
    d->msn = s->msn;
    d->duration_us = s->duration_us;
    d->pdt_us = s->pdt_us;
    d->init_id = s->init_id;
    d->discontinuity = s->discontinuity;
    d->parts = NULL;
    d->nparts = 0;
}

static int render_media(struct media_index *idx, bool skip, const char *sfx, struct playlist_buf *out,
                        uint64_t *gen)
{
    struct snapshot *sn = malloc(sizeof(*sn));
    if (!sn)
        return MEDIA_INDEX_ERR;
    struct playlist_media m = {0};
    size_t used = 0;

    pthread_mutex_lock(&idx->mu);
    if (idx->ring_len == 0) {
        pthread_mutex_unlock(&idx->mu);
        free(sn);
        return MEDIA_INDEX_NOT_FOUND;
    }
    int64_t td = freeze_td_locked(idx);
    bool ll = idx->part_target_us > 0;
    int first = idx->ring_len > idx->window ? idx->ring_len - idx->window : 0;
    size_t n = (size_t)(idx->ring_len - first);
    const struct mi_seg *o = &idx->open;
    if (ll && o->nparts > 0) {
        seg_desc(&m.open, o);
        copy_parts(&m.open, o, sn, &used);
    }
    /* RFC 8216bis §6.2.2: EXT-X-PART tags only within 3 target durations of
     * the end of the playlist; walk back from the live edge. */
    int64_t tail = 0;
    for (uint32_t i = 0; i < o->nparts; i++)
        tail += o->parts[i].duration_us;
    bool parts_on = ll;
    for (size_t k = n; k-- > 0;) {
        const struct mi_seg *s = ring_at(idx, first + (int)k);
        seg_desc(&sn->segs[k], s);
        if (parts_on && tail < 3 * td * 1000000 && s->parts)
            copy_parts(&sn->segs[k], s, sn, &used);
        tail += s->duration_us;
    }
    m.target_duration_s = td;
    m.part_target_us = part_target_locked(idx);
    m.media_sequence = ring_at(idx, first)->msn;
    m.discontinuity_sequence = idx->disc_seq;
    m.ended = idx->state == MEDIA_INDEX_ENDED;
    m.preload_hint = ll && idx->state == MEDIA_INDEX_LIVE;
    m.hint_msn = o->nparts > 0 ? o->msn : idx->next_msn;
    m.hint_part = o->nparts;
    *gen = idx->gen;
    pthread_mutex_unlock(&idx->mu);

    m.segs = sn->segs;
    m.nsegs = n;
    if (skip && ll && !m.ended) {
        m.skipped = playlist_skippable(sn->segs, n, playlist_skip_until_us(td));
        m.segs += m.skipped;
        m.nsegs -= m.skipped;
    }
    m.uri_suffix = sfx;
    int rc = playlist_render_media(out, &m);
    free(sn);
    return rc == 0 ? MEDIA_INDEX_OK : MEDIA_INDEX_ERR;
}

static int render_vod(struct media_index *idx, const char *sfx, struct playlist_buf *out, uint64_t *gen)
{
    pthread_mutex_lock(&idx->mu);
    uint32_t n = idx->vod_n;
    if (!idx->keep_vod || n == 0) {
        pthread_mutex_unlock(&idx->mu);
        return MEDIA_INDEX_NOT_FOUND;
    }
    int64_t td = freeze_td_locked(idx);
    bool ended = idx->state == MEDIA_INDEX_ENDED;
    struct mi_meta **blocks = idx->vod_blocks;
    *gen = idx->gen;
    pthread_mutex_unlock(&idx->mu);

    /* records [0, n) are immutable: read them without the lock */
    struct playlist_segment *segs = malloc((size_t)n * sizeof(*segs));
    if (!segs)
        return MEDIA_INDEX_ERR;
    for (uint32_t i = 0; i < n; i++) {
        const struct mi_meta *r = &blocks[i / MI_VOD_BLOCK][i % MI_VOD_BLOCK];
        segs[i] = (struct playlist_segment){r->msn, r->duration_us, r->pdt_us, r->init_id, r->discontinuity && i > 0,
                                            NULL, 0};
    }
    struct playlist_media m = {
        .target_duration_s = td,
        .media_sequence = segs[0].msn,
        .type = ended ? PLAYLIST_TYPE_VOD : PLAYLIST_TYPE_EVENT,
        .ended = ended,
        .segs = segs,
        .nsegs = n,
        .uri_suffix = sfx,
    };
    int rc = playlist_render_media(out, &m);
    free(segs);
    return rc == 0 ? MEDIA_INDEX_OK : MEDIA_INDEX_ERR;
}

/* Peak and average segment bit rate over the live window. */
static void bandwidth_locked(struct media_index *idx, uint64_t *peak, uint64_t *avg)
{
    int first = idx->ring_len > idx->window ? idx->ring_len - idx->window : 0;
    uint64_t bytes = 0;
    int64_t dur = 0;
    *peak = 0;
    for (int i = first; i < idx->ring_len; i++) {
        const struct mi_seg *s = ring_at(idx, i);
        if (s->duration_us <= 0)
            continue;
        uint64_t bps = s->bytes * 8 * 1000000 / (uint64_t)s->duration_us;
        if (bps > *peak)
            *peak = bps;
        bytes += s->bytes;
        dur += s->duration_us;
    }
    *avg = dur > 0 ? bytes * 8 * 1000000 / (uint64_t)dur : 0;
}

static int render_multivariant(struct media_index *idx, const char *sfx, struct playlist_buf *out, uint64_t *gen)
{
    struct mi_init in;
    struct playlist_variant v = {0};
    pthread_mutex_lock(&idx->mu);
    if (idx->ring_len == 0 || idx->cur_init < 0) {
        pthread_mutex_unlock(&idx->mu);
        return MEDIA_INDEX_NOT_FOUND;
    }
    in = idx->inits[idx->cur_init];
    bandwidth_locked(idx, &v.bandwidth, &v.average_bandwidth);
    *gen = idx->gen;
    pthread_mutex_unlock(&idx->mu);
    v.codecs = in.codecs;
    v.width = in.width;
    v.height = in.height;
    v.frame_rate = in.frame_rate;
    v.uri = "media.m3u8";
    v.uri_suffix = sfx;
    return playlist_render_multivariant(out, &v) == 0 ? MEDIA_INDEX_OK : MEDIA_INDEX_ERR;
}

static int render_any(struct media_index *idx, enum media_index_playlist which, bool skip, const char *uri_suffix,
                      struct playlist_buf *out, uint64_t *gen)
{
    if (!playlist_suffix_ok(uri_suffix))
        return MEDIA_INDEX_ERR;
    switch (which) {
    case MEDIA_INDEX_MULTIVARIANT:
        return render_multivariant(idx, uri_suffix, out, gen);
    case MEDIA_INDEX_MEDIA:
        return render_media(idx, skip, uri_suffix, out, gen);
    case MEDIA_INDEX_VOD:
        return render_vod(idx, uri_suffix, out, gen);
    }
    return MEDIA_INDEX_ERR;
}

int media_index_render(struct media_index *idx, enum media_index_playlist which, bool skip, const char *uri_suffix,
                       struct playlist_buf *out)
{
    uint64_t gen;
    return render_any(idx, which, skip, uri_suffix, out, &gen);
}

struct media_buf *media_index_playlist(struct media_index *idx, enum media_index_playlist which, bool skip,
                                       const char *uri_suffix, size_t max, int *rc)
{
    /* skip is ignored (so the same text) unless LL-HLS: see render_media */
    int slot = which == MEDIA_INDEX_MULTIVARIANT ? 0 : which == MEDIA_INDEX_VOD ? 3 : skip ? 2 : 1;
    bool cacheable = !uri_suffix || !uri_suffix[0];
    if (cacheable) {
        pthread_mutex_lock(&idx->mu);
        struct media_buf *hit = idx->cache[slot] && idx->cache_gen[slot] == idx->gen ? media_buf_ref(idx->cache[slot])
                                                                                     : NULL;
        pthread_mutex_unlock(&idx->mu);
        if (hit) {
            *rc = MEDIA_INDEX_OK;
            return hit;
        }
    }
    struct playlist_buf pb;
    uint64_t gen = 0;
    playlist_buf_init(&pb, max ? max : (size_t)16 << 20);
    int r = render_any(idx, which, skip, uri_suffix, &pb, &gen);
    struct media_buf *text = r == MEDIA_INDEX_OK && pb.len > 0 ? media_buf_new(pb.data, pb.len) : NULL;
    playlist_buf_free(&pb);
    if (r == MEDIA_INDEX_OK && !text)
        r = MEDIA_INDEX_ERR;
    *rc = r;
    if (text && cacheable) {
        pthread_mutex_lock(&idx->mu);
        if (gen == idx->gen && (!idx->cache[slot] || idx->cache_gen[slot] != gen)) {
            media_buf_unref(idx->cache[slot]);
            idx->cache[slot] = media_buf_ref(text);
            idx->cache_gen[slot] = gen;
        }
        pthread_mutex_unlock(&idx->mu);
    }
    return text;
}

/* ---- blocking reload ------------------------------------------------------- */

enum media_index_block media_index_block_check(struct media_index *idx, uint64_t msn, int64_t part, bool park)
{
    enum media_index_block r = MEDIA_INDEX_WAIT;
    pthread_mutex_lock(&idx->mu);
    uint64_t next = idx->open.nparts > 0 ? idx->open.msn : idx->next_msn;
    uint32_t k = idx->open.nparts;
    uint32_t apl = playlist_advance_part_limit(part_target_locked(idx));
    if (idx->part_target_us <= 0 || idx->state == MEDIA_INDEX_ENDED) {
        r = MEDIA_INDEX_READY; /* §6.2.5.2: ignore directives with ENDLIST */
    } else if (msn > next + 1) {
        r = MEDIA_INDEX_TOO_FAR; /* more than last msn + 2 */
    } else if (part < 0) {
        r = msn < next ? MEDIA_INDEX_READY : MEDIA_INDEX_WAIT;
    } else if (msn < next) {
        const struct mi_seg *s = ring_find(idx, msn);
        if (!s || (uint64_t)part < s->nparts || !s->parts)
            r = MEDIA_INDEX_READY;
        else if (msn + 1 < next || k > 0) /* §6.2.5.2: past the last part = part 0 of the next */
            r = MEDIA_INDEX_READY;
    } else if (msn == next) {
        if ((uint64_t)part < k)
            r = MEDIA_INDEX_READY;
        else if ((uint64_t)part + 1 - k > apl)
            r = MEDIA_INDEX_TOO_FAR;
    } else if ((uint64_t)part >= apl) {
        r = MEDIA_INDEX_TOO_FAR;
    }
    if (r == MEDIA_INDEX_WAIT && park)
        idx->parked++;
    pthread_mutex_unlock(&idx->mu);
    return r;
}

void media_index_unpark(struct media_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    if (idx->parked > 0)
        idx->parked--;
    pthread_mutex_unlock(&idx->mu);
}

int64_t media_index_block_timeout_us(struct media_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    int64_t td = td_locked(idx);
    pthread_mutex_unlock(&idx->mu);
    return 3 * td * 1000000;
}

/* ---- bytes ---------------------------------------------------------------- */

void media_index_body_release(struct media_index_body *b)
{
    for (size_t i = 0; i < b->nbufs; i++)
        media_buf_unref(b->bufs[i]);
    free(b->bufs);
    memset(b, 0, sizeof(*b));
}

static int body_from_parts(struct media_index_body *out, const struct mi_part *parts, uint32_t n)
{
    memset(out, 0, sizeof(*out));
    out->bufs = malloc((n ? n : 1) * sizeof(*out->bufs));
    if (!out->bufs)
        return MEDIA_INDEX_ERR;
    for (uint32_t i = 0; i < n; i++) {
        out->bufs[i] = media_buf_ref(parts[i].buf);
        out->len += media_buf_len(parts[i].buf);
    }
    out->nbufs = n;
    return MEDIA_INDEX_OK;
}

int media_index_get_segment(struct media_index *idx, uint64_t msn, struct media_index_body *out, char *path,
                            size_t pathsz)
{
    int rc = MEDIA_INDEX_NOT_FOUND;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&idx->mu);
    const struct mi_seg *s = ring_find(idx, msn);
    if (s && s->parts && !s->trimmed) {
        rc = body_from_parts(out, s->parts, s->nparts);
    } else if (idx->store && idx->have_disk_first && msn >= idx->disk_first_msn && msn < idx->next_msn) {
        snprintf(path, pathsz, "%s/%s/%" PRIu64 ".m4s", segment_store_root(idx->store), idx->rel_dir, msn);
        rc = MEDIA_INDEX_ON_DISK;
    }
    pthread_mutex_unlock(&idx->mu);
    return rc;
}

int media_index_get_part(struct media_index *idx, uint64_t msn, uint32_t part, bool park,
                         struct media_index_body *out, char *path, size_t pathsz)
{
    int rc = MEDIA_INDEX_NOT_FOUND;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&idx->mu);
    const struct mi_seg *o = &idx->open;
    const struct mi_seg *s = ring_find(idx, msn);
    uint64_t next = o->nparts > 0 ? o->msn : idx->next_msn;
    if (s && s->parts && part < s->nparts && s->trimmed) {
        if (path && idx->store) {
            for (uint32_t i = 0; i < part; i++)
                out->disk_offset += s->parts[i].len;
            out->len = s->parts[part].len;
            snprintf(path, pathsz, "%s/%s/%" PRIu64 ".m4s", segment_store_root(idx->store), idx->rel_dir, msn);
            rc = MEDIA_INDEX_ON_DISK;
        }
    } else if (s && s->parts) {
        if (part < s->nparts)
            rc = body_from_parts(out, &s->parts[part], 1);
    } else if (msn == next) {
        if (part < o->nparts)
            rc = body_from_parts(out, &o->parts[part], 1);
        else if (part == o->nparts && idx->state == MEDIA_INDEX_LIVE && idx->part_target_us > 0)
            rc = MEDIA_INDEX_NOT_YET; /* the EXT-X-PRELOAD-HINT resource (§6.2.6) */
    }
    if (rc == MEDIA_INDEX_NOT_YET && park)
        idx->parked++;
    pthread_mutex_unlock(&idx->mu);
    return rc;
}

int media_index_get_init(struct media_index *idx, int64_t id, struct media_index_body *out, char *path,
                         size_t pathsz)
{
    int rc = MEDIA_INDEX_NOT_FOUND;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&idx->mu);
    struct mi_init *in = NULL;
    if (id < 0)
        in = idx->cur_init >= 0 ? &idx->inits[idx->cur_init] : NULL;
    else if (id <= UINT32_MAX)
        in = init_find(idx, (uint32_t)id);
    if (in && in->buf) {
        out->bufs = malloc(sizeof(*out->bufs));
        if (out->bufs) {
            out->bufs[0] = media_buf_ref(in->buf);
            out->nbufs = 1;
            out->len = media_buf_len(in->buf);
            rc = MEDIA_INDEX_OK;
        } else {
            rc = MEDIA_INDEX_ERR;
        }
    } else if (idx->store && (in || (id >= 0 && id < (int64_t)idx->next_init_id))) {
        snprintf(path, pathsz, "%s/%s/init-%u.mp4", segment_store_root(idx->store), idx->rel_dir,
                 in ? in->id : (uint32_t)id);
        rc = MEDIA_INDEX_ON_DISK;
    }
    pthread_mutex_unlock(&idx->mu);
    return rc;
}

bool media_index_audio_only(struct media_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    bool ao = idx->cur_init >= 0 && idx->inits[idx->cur_init].audio_only;
    pthread_mutex_unlock(&idx->mu);
    return ao;
}

void media_index_get_stats(struct media_index *idx, struct media_index_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&idx->mu);
    out->state = idx->state;
    out->session_no = idx->session_no;
    out->next_msn = idx->open.nparts > 0 ? idx->open.msn + 1 : idx->next_msn;
    out->segments_total = idx->segments_total;
    out->parts_total = idx->parts_total;
    out->bytes_total = idx->bytes_total;
    bandwidth_locked(idx, &out->bandwidth_peak, &out->bandwidth_avg);
    out->target_duration_s = td_locked(idx);
    out->parked = idx->parked;
    out->last_part_mono_us = idx->last_part_mono_us;
    pthread_mutex_unlock(&idx->mu);
}
