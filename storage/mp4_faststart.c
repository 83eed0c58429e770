/* mp4_faststart.c — fragmented MP4 → faststart MP4 without a remux (see
 * mp4_faststart.h). Box layouts: ISO/IEC 14496-12 (§ numbers below).
 *
 * Shape: fs_parse() walks the top-level boxes with pread (the mdat payloads
 * are never read), keeps the init's boxes and fills per-track sample
 * tables (size, duration, composition offset, sync) and a list of chunks
 * (source offset, bytes, track). fs_layout() orders the chunks by source
 * offset, gives each its place in the output mdat and decides stco/co64;
 * fs_moov() serializes the moov; fs_write() writes ftyp + moov + mdat header
 * and copies the chunks' bytes. */
#include "storage/mp4_faststart.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bytes.h"

#define FS_INIT_MAX (4u << 20)       /* the init's moov */
#define FS_MOOF_MAX (16u << 20)      /* one moof */
#define FS_SAMPLES_MAX (64u << 20)   /* all tracks: ~13 bytes each in memory (a day at 30 fps + AAC is ~6.4 M) */
#define FS_CHUNKS_MAX (16u << 20)
#define FS_MOOV_MAX (1u << 30)       /* the output moov */
#define FS_OVERLAP_WALK 1024         /* samples an overlapping tfdt may shorten */
#define FS_COPY_BUF (1u << 20)
#define FS_MOVIE_TIMESCALE 1000u

#define BOX(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

/* trun (§8.8.8) and tfhd (§8.8.7) flags */
#define TRUN_DATA_OFFSET 0x000001u
#define TRUN_FIRST_FLAGS 0x000004u
#define TRUN_DURATION 0x000100u
#define TRUN_SIZE 0x000200u
#define TRUN_FLAGS 0x000400u
#define TRUN_CTS 0x000800u
#define TRUN_KNOWN (TRUN_DATA_OFFSET | TRUN_FIRST_FLAGS | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | TRUN_CTS)
#define TFHD_BASE_OFFSET 0x000001u
#define TFHD_SDI 0x000002u
#define TFHD_DURATION 0x000008u
#define TFHD_SIZE 0x000010u
#define TFHD_FLAGS 0x000020u
#define TFHD_EMPTY 0x010000u
#define TFHD_BASE_IS_MOOF 0x020000u
#define SAMPLE_NON_SYNC 0x00010000u  /* sample_is_non_sync_sample (§8.8.3.1) */

struct fs_track {
    uint32_t id, timescale;
    bool video;
    bool avc;                        /* sample entry avc1/avc3: the ftyp names avc1 */
    /* boxes of the init copied whole (header included); point into p->init */
    const uint8_t *hdlr, *xmhd, *dinf, *stsd;
    size_t hdlr_len, xmhd_len, dinf_len, stsd_len;
    uint32_t stsd_entries;
    /* tkhd / mdhd fields kept */
    uint16_t layer, alt_group, volume, language;
    uint8_t matrix[36];
    uint32_t width, height;
    /* trex defaults (§8.8.3) */
    bool have_trex;
    uint32_t trex_sdi, trex_dur, trex_size, trex_flags;
    /* samples in decode order */
    uint32_t *size, *dur;
    int32_t *cts;
    uint8_t *sync;
    size_t n, cap;
    uint64_t first_dts, next_dts;    /* media timescale */
    bool ended;                      /* a sample was dropped: the rest of the file is cut */
    /* layout */
    int64_t min_ct;                  /* earliest composition time from the first dts */
    uint64_t pres_end;               /* latest composition end from the first dts */
    uint64_t media_dur;              /* sum of durations */
    uint64_t empty_edit, seg_dur;    /* movie timescale */
    bool edit;
    uint64_t tkhd_dur;               /* movie timescale */
    uint32_t out_id;
};

struct fs_chunk {
    uint64_t src, bytes, rel;        /* rel: offset in the output mdat payload */
    uint32_t track, nsamples, sdi;
};

struct fs_parse {
    int fd;
    uint64_t eof;
    uint8_t *init;                   /* the init's moov */
    size_t init_len;
    bool have_moov, have_mvex;
    struct fs_track tr[MP4_FASTSTART_MAX_TRACKS];
    int ntr;
    struct fs_chunk *chunk;
    size_t nchunks, chunk_cap;
    uint64_t samples, dropped;
    uint32_t fragments;
    bool truncated;
    uint8_t *moof;                   /* reused from fragment to fragment */
    size_t moof_cap;
    char *reason;
    size_t cap;
};

static int fs_fail(struct fs_parse *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fs_fail(struct fs_parse *p, int code, const char *fmt, ...)
{
    if (p->reason && p->cap && !p->reason[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->reason, p->cap, fmt, ap);
        va_end(ap);
    }
    return code;
}
#define UNSUP(p, ...) fs_fail(p, MP4_FASTSTART_UNSUPPORTED, __VA_ARGS__)

static void fs_free(struct fs_parse *p)
{
    for (int i = 0; i < p->ntr; i++) {
        free(p->tr[i].size);
        free(p->tr[i].dur);
        free(p->tr[i].cts);
        free(p->tr[i].sync);
    }
    free(p->chunk);
    free(p->init);
    free(p->moof);
}

/* --- boxes in memory ------------------------------------------------------- */

struct fs_box {
    uint32_t type;
    const uint8_t *start, *body;  /* start: the header */
    size_t size, len;             /* size: whole box; len: body */
};

/* The next box in [*p, end): 1, 0 at the end, -1 when malformed. */
static int box_next(const uint8_t **p, const uint8_t *end, struct fs_box *b)
{
    size_t left = (size_t)(end - *p);
    if (left == 0)
        return 0;
    if (left < 8)
        return -1;
    uint64_t size = rd_be32(*p);
    size_t hdr = 8;
    if (size == 1) {
        if (left < 16)
            return -1;
        size = rd_be64(*p + 8);
        hdr = 16;
    } else if (size == 0) {
        size = left;
    }
    if (size < hdr || size > left)
        return -1;
    b->type = rd_be32(*p + 4);
    b->start = *p;
    b->size = (size_t)size;
    b->body = *p + hdr;
    b->len = (size_t)size - hdr;
    *p += size;
    return 1;
}

/* Finds the first child of type in body [b, b+len). */
static bool box_find(const uint8_t *b, size_t len, uint32_t type, struct fs_box *out)
{
    const uint8_t *p = b, *end = b + len;
    while (box_next(&p, end, out) == 1)
        if (out->type == type)
            return true;
    return false;
}

/* The boxes copied whole into the output (stsd's entries, dinf's children)
 * must be well-formed: [b, b+len) is exactly a sequence of boxes, `count`
 * of them (0: any number). A broken one would be written into our moov. */
static bool boxes_fill(const uint8_t *b, size_t len, uint32_t count)
{
    const uint8_t *p = b, *end = b + len;
    struct fs_box x;
    uint32_t n = 0;
    int r;
    while ((r = box_next(&p, end, &x)) == 1)
        n++;
    return r == 0 && (count == 0 || n == count);
}

/* --- the init (§8.2 - §8.7, §8.8.1 - §8.8.3) ------------------------------ */

static struct fs_track *track_by_id(struct fs_parse *p, uint32_t id)
{
    for (int i = 0; i < p->ntr; i++)
        if (p->tr[i].id == id)
            return &p->tr[i];
    return NULL;
}

/* tkhd (§8.3.2): id and the presentation fields copied to the output. */
static int parse_tkhd(struct fs_parse *p, struct fs_track *t, const struct fs_box *b)
{
    if (b->len < 4)
        return UNSUP(p, "short tkhd");
    bool v1 = b->body[0] == 1;
    size_t tail = v1 ? 36 : 24;   /* after duration */
    if (b->len < tail + 60)
        return UNSUP(p, "short tkhd");
    t->id = rd_be32(b->body + (v1 ? 20 : 12));
    const uint8_t *q = b->body + tail + 8;
    t->layer = rd_be16(q);
    t->alt_group = rd_be16(q + 2);
    t->volume = rd_be16(q + 4);
    memcpy(t->matrix, q + 8, 36);
    t->width = rd_be32(q + 44);
    t->height = rd_be32(q + 48);
    return 0;
}

/* stbl (§8.5): the sample entries are kept; the init must hold no sample. */
static int parse_stbl(struct fs_parse *p, struct fs_track *t, const struct fs_box *stbl)
{
    const uint8_t *q = stbl->body, *end = stbl->body + stbl->len;
    struct fs_box b;
    int r;
    while ((r = box_next(&q, end, &b)) == 1) {
        switch (b.type) {
        case BOX('s', 't', 's', 'd'):
            if (b.len < 16 || rd_be32(b.body + 4) == 0)
                return UNSUP(p, "track %u: empty stsd", t->id);
            t->stsd_entries = rd_be32(b.body + 4);
            if (!boxes_fill(b.body + 8, b.len - 8, t->stsd_entries))
                return UNSUP(p, "track %u: malformed stsd", t->id);
            t->stsd = b.start;
            t->stsd_len = b.size;
            uint32_t fmt = rd_be32(b.body + 12);
            t->avc = fmt == BOX('a', 'v', 'c', '1') || fmt == BOX('a', 'v', 'c', '3');
            break;
        case BOX('s', 't', 't', 's'):
        case BOX('s', 't', 'c', 'o'):
        case BOX('c', 'o', '6', '4'):
        case BOX('s', 't', 's', 'c'):
            if (b.len < 8 || rd_be32(b.body + 4) != 0)
                return UNSUP(p, "track %u: the init holds samples", t->id);
            break;
        case BOX('s', 't', 's', 'z'):
        case BOX('s', 't', 'z', '2'):
            if (b.len < 12 || rd_be32(b.body + 8) != 0)
                return UNSUP(p, "track %u: the init holds samples", t->id);
            break;
        default:
            break;
        }
    }
    if (r < 0)
        return UNSUP(p, "malformed stbl");
    if (!t->stsd)
        return UNSUP(p, "track %u: no stsd", t->id);
    return 0;
}

static int parse_mdia(struct fs_parse *p, struct fs_track *t, const struct fs_box *mdia)
{
    struct fs_box b, minf;
    if (!box_find(mdia->body, mdia->len, BOX('m', 'd', 'h', 'd'), &b) || b.len < 4)
        return UNSUP(p, "track %u: no mdhd", t->id);
    bool v1 = b.body[0] == 1;
    if (b.len < (v1 ? 36u : 24u))
        return UNSUP(p, "short mdhd");
    t->timescale = rd_be32(b.body + (v1 ? 20 : 12));
    t->language = rd_be16(b.body + (v1 ? 32 : 20));
    if (t->timescale == 0)
        return UNSUP(p, "track %u: timescale 0", t->id);
    if (!box_find(mdia->body, mdia->len, BOX('h', 'd', 'l', 'r'), &b) || b.len < 12)
        return UNSUP(p, "track %u: no hdlr", t->id);
    uint32_t handler = rd_be32(b.body + 8);
    if (handler != BOX('v', 'i', 'd', 'e') && handler != BOX('s', 'o', 'u', 'n'))
        return UNSUP(p, "track %u: handler %.4s", t->id, (const char *)b.body + 8);
    t->video = handler == BOX('v', 'i', 'd', 'e');
    t->hdlr = b.start;
    t->hdlr_len = b.size;
    if (!box_find(mdia->body, mdia->len, BOX('m', 'i', 'n', 'f'), &minf))
        return UNSUP(p, "track %u: no minf", t->id);
    if (!box_find(minf.body, minf.len, t->video ? BOX('v', 'm', 'h', 'd') : BOX('s', 'm', 'h', 'd'), &b))
        return UNSUP(p, "track %u: no %s", t->id, t->video ? "vmhd" : "smhd");
    t->xmhd = b.start;
    t->xmhd_len = b.size;
    if (!box_find(minf.body, minf.len, BOX('d', 'i', 'n', 'f'), &b) || !boxes_fill(b.body, b.len, 0))
        return UNSUP(p, "track %u: no dinf or a malformed one", t->id);
    t->dinf = b.start;
    t->dinf_len = b.size;
    if (!box_find(minf.body, minf.len, BOX('s', 't', 'b', 'l'), &b))
        return UNSUP(p, "track %u: no stbl", t->id);
    return parse_stbl(p, t, &b);
}

static int parse_trak(struct fs_parse *p, const struct fs_box *trak)
{
    if (p->ntr == MP4_FASTSTART_MAX_TRACKS)
        return UNSUP(p, "more than %d tracks", MP4_FASTSTART_MAX_TRACKS);
    struct fs_track *t = &p->tr[p->ntr];
    memset(t, 0, sizeof *t);
    struct fs_box b;
    int rc;
    if (!box_find(trak->body, trak->len, BOX('t', 'k', 'h', 'd'), &b))
        return UNSUP(p, "trak without tkhd");
    if ((rc = parse_tkhd(p, t, &b)) != 0)
        return rc;
    if (t->id == 0 || track_by_id(p, t->id))
        return UNSUP(p, "bad or repeated track id %u", t->id);
    if (box_find(trak->body, trak->len, BOX('e', 'd', 't', 's'), &b))
        return UNSUP(p, "track %u: the init has an edit list", t->id);
    if (!box_find(trak->body, trak->len, BOX('m', 'd', 'i', 'a'), &b))
        return UNSUP(p, "track %u: no mdia", t->id);
    if ((rc = parse_mdia(p, t, &b)) != 0)
        return rc;
    p->ntr++;
    return 0;
}

static int parse_mvex(struct fs_parse *p, const struct fs_box *mvex)
{
    const uint8_t *q = mvex->body, *end = mvex->body + mvex->len;
    struct fs_box b;
    int r;
    while ((r = box_next(&q, end, &b)) == 1) {
        if (b.type != BOX('t', 'r', 'e', 'x'))
            continue;
        if (b.len < 24)
            return UNSUP(p, "short trex");
        struct fs_track *t = track_by_id(p, rd_be32(b.body + 4));
        if (!t)
            continue;
        t->have_trex = true;
        t->trex_sdi = rd_be32(b.body + 8);
        t->trex_dur = rd_be32(b.body + 12);
        t->trex_size = rd_be32(b.body + 16);
        t->trex_flags = rd_be32(b.body + 20);
    }
    return r < 0 ? UNSUP(p, "malformed mvex") : 0;
}

static int parse_moov(struct fs_parse *p)
{
    const uint8_t *q = p->init, *end = p->init + p->init_len;
    struct fs_box b, mvex;
    int r, rc;
    if (!box_find(p->init, p->init_len, BOX('m', 'v', 'e', 'x'), &mvex))
        return UNSUP(p, "moov without mvex: not a fragmented MP4");
    while ((r = box_next(&q, end, &b)) == 1)
        if (b.type == BOX('t', 'r', 'a', 'k') && (rc = parse_trak(p, &b)) != 0)
            return rc;
    if (r < 0)
        return UNSUP(p, "malformed moov");
    if (p->ntr == 0)
        return UNSUP(p, "no audio or video track");
    if ((rc = parse_mvex(p, &mvex)) != 0)
        return rc;
    for (int i = 0; i < p->ntr; i++)
        if (!p->tr[i].have_trex)
            return UNSUP(p, "track %u has no trex", p->tr[i].id);
    p->have_mvex = true;
    return 0;
}

/* --- fragments (§8.8.4 - §8.8.8, §8.8.12) --------------------------------- */

static int grow(struct fs_parse *p, void **arr, size_t esz, size_t cap)
{
    void *n = realloc(*arr, cap * esz);
    if (!n)
        return fs_fail(p, MP4_FASTSTART_ERROR, "out of memory for %zu samples", cap);
    *arr = n;
    return 0;
}

static int track_reserve(struct fs_parse *p, struct fs_track *t, size_t more)
{
    if (t->n + more <= t->cap)
        return 0;
    if (p->samples + more > FS_SAMPLES_MAX)
        return UNSUP(p, "more than %u samples", FS_SAMPLES_MAX);
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->n + more)
        cap *= 2;
    if (grow(p, (void **)&t->size, sizeof *t->size, cap) || grow(p, (void **)&t->dur, sizeof *t->dur, cap) ||
        grow(p, (void **)&t->cts, sizeof *t->cts, cap) || grow(p, (void **)&t->sync, sizeof *t->sync, cap))
        return MP4_FASTSTART_ERROR;
    t->cap = cap;
    return 0;
}

static int chunk_new(struct fs_parse *p, uint32_t track, uint64_t src, uint32_t sdi)
{
    if (p->nchunks == p->chunk_cap) {
        if (p->nchunks == FS_CHUNKS_MAX)
            return UNSUP(p, "more than %u chunks", FS_CHUNKS_MAX);
        size_t cap = p->chunk_cap ? p->chunk_cap * 2 : 1024;
        if (grow(p, (void **)&p->chunk, sizeof *p->chunk, cap))
            return MP4_FASTSTART_ERROR;
        p->chunk_cap = cap;
    }
    p->chunk[p->nchunks++] = (struct fs_chunk){.src = src, .track = track, .sdi = sdi};
    return 0;
}

/* The track continues at decode time tfdt: a gap lengthens the previous
 * sample, an overlap shortens the previous ones (down to 1 tick each), so
 * every later sample keeps the decode time the fragmented file gives it. */
static int track_join(struct fs_parse *p, struct fs_track *t, uint64_t tfdt)
{
    if (t->n == 0) {
        t->first_dts = t->next_dts = tfdt;
        return 0;
    }
    if (tfdt > t->next_dts) {
        uint64_t d = (uint64_t)t->dur[t->n - 1] + (tfdt - t->next_dts);
        if (d > INT32_MAX)
            return UNSUP(p, "track %u: a gap of %llu ticks", t->id, (unsigned long long)(tfdt - t->next_dts));
        t->dur[t->n - 1] = (uint32_t)d;
    } else if (tfdt < t->next_dts) {
        uint64_t over = t->next_dts - tfdt;
        for (size_t i = t->n; i-- > 0 && over && t->n - i <= FS_OVERLAP_WALK;) {
            uint32_t take = t->dur[i] > 1 ? t->dur[i] - 1 : 0;
            if (take > over)
                take = (uint32_t)over;
            t->dur[i] -= take;
            over -= take;
        }
        if (over)
            return UNSUP(p, "track %u: decode time goes back %llu ticks", t->id, (unsigned long long)over);
    }
    t->next_dts = tfdt;
    return 0;
}

/* What a traf says about its samples before the truns. */
struct fs_traf {
    struct fs_track *t;
    uint32_t track;                  /* index in p->tr */
    uint32_t sdi, dur, size, flags;  /* defaults */
    uint64_t base;
    bool have_tfdt;
    uint64_t tfdt;
    bool joined;                     /* track_join done for this traf */
};

/* One trun: samples appended to the track and to one chunk. *pos is where
 * its data starts when it has no data offset; on return, where it ended.
 * The sample bytes must lie in the mdat [lo, hi); past eof they are cut. */
static int parse_trun(struct fs_parse *p, struct fs_traf *tf, const struct fs_box *b, uint64_t *pos,
                      uint64_t lo, uint64_t hi)
{
    if (b->len < 8)
        return UNSUP(p, "short trun");
    uint8_t version = b->body[0];
    uint32_t fl = rd_be24(b->body + 1);
    uint32_t count = rd_be32(b->body + 4);
    size_t off = 8;
    if (fl & ~TRUN_KNOWN)
        return UNSUP(p, "trun flags 0x%06x", fl);
    if (count > FS_SAMPLES_MAX)
        return UNSUP(p, "a trun of %u samples", count);
    if (version > 1)
        return UNSUP(p, "trun version %u", version);
    uint64_t at = *pos;
    uint32_t first_flags = 0;
    if (fl & TRUN_DATA_OFFSET) {
        if (b->len < off + 4)
            return UNSUP(p, "short trun");
        int32_t d = (int32_t)rd_be32(b->body + off);
        uint64_t mag = d < 0 ? (uint64_t)(-(int64_t)d) : (uint64_t)d;
        if (d < 0 ? mag > tf->base : mag > UINT64_MAX - tf->base)
            return UNSUP(p, "trun data offset out of the file");
        at = d < 0 ? tf->base - mag : tf->base + mag;
        off += 4;
    }
    if (fl & TRUN_FIRST_FLAGS) {
        if (b->len < off + 4)
            return UNSUP(p, "short trun");
        first_flags = rd_be32(b->body + off);
        off += 4;
    }
    size_t esz = 4u * (size_t)__builtin_popcount(fl & (TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | TRUN_CTS));
    if ((uint64_t)count * esz > b->len - off)
        return UNSUP(p, "trun of %u samples does not fit its box", count);
    struct fs_track *t = tf->t;
    if (count == 0) {
        *pos = at;
        return 0;
    }
    int rc;
    if (!t->ended) {
        if ((rc = track_reserve(p, t, count)) != 0)
            return rc;
        if (!tf->joined) {
            if ((rc = track_join(p, t, tf->have_tfdt ? tf->tfdt : t->next_dts)) != 0)
                return rc;
            tf->joined = true;
        }
        if ((rc = chunk_new(p, tf->track, at, tf->sdi)) != 0)
            return rc;
    }
    struct fs_chunk *c = t->ended ? NULL : &p->chunk[p->nchunks - 1];
    const uint8_t *e = b->body + off;
    for (uint32_t i = 0; i < count; i++, e += esz) {
        const uint8_t *f = e;
        uint32_t dur = tf->dur, size = tf->size, flags = tf->flags;
        int64_t cts = 0;
        if (fl & TRUN_DURATION)
            dur = rd_be32(f), f += 4;
        if (fl & TRUN_SIZE)
            size = rd_be32(f), f += 4;
        if (fl & TRUN_FLAGS)
            flags = rd_be32(f), f += 4;
        if (fl & TRUN_CTS)
            cts = version == 0 ? (int64_t)rd_be32(f) : (int64_t)(int32_t)rd_be32(f);
        if (i == 0 && (fl & TRUN_FIRST_FLAGS))
            flags = first_flags;
        if (at < lo || at > hi || size > hi - at)
            return UNSUP(p, "track %u: sample data outside its mdat", t->id);
        if (dur > INT32_MAX || cts > INT32_MAX)
            return UNSUP(p, "track %u: sample duration or composition offset out of range", t->id);
        if (!t->ended && at + size > p->eof) {
            t->ended = true;
            p->truncated = true;
        }
        if (t->ended) {
            p->dropped++;
        } else {
            t->size[t->n] = size;
            t->dur[t->n] = dur;
            t->cts[t->n] = (int32_t)cts;
            t->sync[t->n] = !(flags & SAMPLE_NON_SYNC);
            t->n++;
            t->next_dts += dur;
            c->bytes += size;
            c->nsamples++;
            p->samples++;
        }
        at += size;
    }
    if (c && c->nsamples == 0)
        p->nchunks--;
    *pos = at;
    return 0;
}

/* One traf; *prev_end is where the previous traf's data ended (the base
 * when tfhd names none and the moof is not the base), updated. */
static int parse_traf(struct fs_parse *p, const struct fs_box *traf, uint64_t moof_off, bool first,
                      uint64_t *prev_end, uint64_t lo, uint64_t hi)
{
    struct fs_box b;
    if (!box_find(traf->body, traf->len, BOX('t', 'f', 'h', 'd'), &b) || b.len < 8)
        return UNSUP(p, "traf without tfhd");
    uint32_t fl = rd_be24(b.body + 1);
    struct fs_traf tf = {0};
    tf.t = track_by_id(p, rd_be32(b.body + 4));
    if (!tf.t)
        return UNSUP(p, "traf of unknown track %u", rd_be32(b.body + 4));
    tf.track = (uint32_t)(tf.t - p->tr);
    size_t need = 8 + (fl & TFHD_BASE_OFFSET ? 8 : 0) + (fl & TFHD_SDI ? 4 : 0) + (fl & TFHD_DURATION ? 4 : 0) +
                  (fl & TFHD_SIZE ? 4 : 0) + (fl & TFHD_FLAGS ? 4 : 0);
    if (b.len < need)
        return UNSUP(p, "short tfhd");
    const uint8_t *q = b.body + 8;
    tf.sdi = tf.t->trex_sdi;
    tf.dur = tf.t->trex_dur;
    tf.size = tf.t->trex_size;
    tf.flags = tf.t->trex_flags;
    tf.base = first ? moof_off : *prev_end;
    if (fl & TFHD_BASE_IS_MOOF)
        tf.base = moof_off;
    if (fl & TFHD_BASE_OFFSET)
        tf.base = rd_be64(q), q += 8;
    if (fl & TFHD_SDI)
        tf.sdi = rd_be32(q), q += 4;
    if (fl & TFHD_DURATION)
        tf.dur = rd_be32(q), q += 4;
    if (fl & TFHD_SIZE)
        tf.size = rd_be32(q), q += 4;
    if (fl & TFHD_FLAGS)
        tf.flags = rd_be32(q);
    if (tf.sdi == 0 || tf.sdi > tf.t->stsd_entries)
        return UNSUP(p, "track %u: sample description %u", tf.t->id, tf.sdi);
    if (box_find(traf->body, traf->len, BOX('t', 'f', 'd', 't'), &b)) {
        if (b.len < 8 || (b.body[0] == 1 && b.len < 12))
            return UNSUP(p, "short tfdt");
        tf.have_tfdt = true;
        tf.tfdt = b.body[0] == 1 ? rd_be64(b.body + 4) : rd_be32(b.body + 4);
        if (tf.tfdt > INT64_MAX / 2)
            return UNSUP(p, "tfdt out of range");
    }
    uint64_t pos = tf.base;
    if (!(fl & TFHD_EMPTY)) {
        const uint8_t *r = traf->body, *end = traf->body + traf->len;
        int n, rc;
        while ((n = box_next(&r, end, &b)) == 1)
            if (b.type == BOX('t', 'r', 'u', 'n') && (rc = parse_trun(p, &tf, &b, &pos, lo, hi)) != 0)
                return rc;
        if (n < 0)
            return UNSUP(p, "malformed traf");
    }
    *prev_end = pos;
    return 0;
}

static int parse_moof(struct fs_parse *p, const uint8_t *m, size_t len, uint64_t moof_off, uint64_t lo,
                      uint64_t hi)
{
    const uint8_t *q = m, *end = m + len;
    struct fs_box b;
    uint64_t prev_end = moof_off;
    bool first = true;
    int r, rc;
    while ((r = box_next(&q, end, &b)) == 1) {
        if (b.type != BOX('t', 'r', 'a', 'f'))
            continue;
        if ((rc = parse_traf(p, &b, moof_off, first, &prev_end, lo, hi)) != 0)
            return rc;
        first = false;
    }
    return r < 0 ? UNSUP(p, "malformed moof at %llu", (unsigned long long)moof_off) : 0;
}

/* --- the file ------------------------------------------------------------- */

static int read_at(struct fs_parse *p, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(p->fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fs_fail(p, MP4_FASTSTART_ERROR, "read: %s", strerror(errno));
        if (n == 0)
            return fs_fail(p, MP4_FASTSTART_ERROR, "read: the file shrank");
        got += (size_t)n;
    }
    return 0;
}

struct fs_hdr {
    uint32_t type;
    uint64_t size;   /* 0: runs to the end of the file */
    uint32_t hlen;
};

/* The top-level box header at off: 1, 0 when the file ends (or holds
 * garbage) there, or an error code. */
static int read_hdr(struct fs_parse *p, uint64_t off, struct fs_hdr *h)
{
    uint8_t b[16];
    if (off + 8 > p->eof)
        return 0;
    int rc = read_at(p, b, 8, off);
    if (rc)
        return rc;
    h->type = rd_be32(b + 4);
    h->size = rd_be32(b);
    h->hlen = 8;
    if (h->size == 1) {
        if (off + 16 > p->eof || (rc = read_at(p, b + 8, 8, off + 8)) != 0)
            return rc ? rc : 0;
        h->size = rd_be64(b + 8);
        h->hlen = 16;
    }
    if (h->size != 0 && h->size < h->hlen)
        return 0;
    return 1;
}

/* Reads a whole box body into *buf (grown up to max). */
static int read_body(struct fs_parse *p, uint64_t off, const struct fs_hdr *h, uint8_t **buf, size_t *cap,
                     size_t max)
{
    uint64_t len = h->size - h->hlen;
    if (len > max)
        return UNSUP(p, "a %s of %llu bytes", h->type == BOX('m', 'o', 'o', 'v') ? "moov" : "moof",
                     (unsigned long long)len);
    if (len > *cap || !*buf) {
        uint8_t *n = realloc(*buf, len ? (size_t)len : 1);
        if (!n)
            return fs_fail(p, MP4_FASTSTART_ERROR, "out of memory for a %llu-byte box", (unsigned long long)len);
        *buf = n;
        *cap = (size_t)len;
    }
    return read_at(p, *buf, (size_t)len, off + h->hlen);
}

/* Walks the file: ftyp first, the init moov, then moof+mdat pairs.
 * probe: stop after the first fragment. */
static int fs_parse(struct fs_parse *p, bool probe)
{
    struct stat st;
    if (fstat(p->fd, &st) != 0)
        return fs_fail(p, MP4_FASTSTART_ERROR, "stat: %s", strerror(errno));
    p->eof = (uint64_t)st.st_size;
    struct fs_hdr h;
    int rc = read_hdr(p, 0, &h);
    if (rc < 0)
        return rc;
    if (rc == 0 || h.type != BOX('f', 't', 'y', 'p'))
        return UNSUP(p, "no ftyp at the start");
    uint64_t pos = 0;
    for (;;) {
        if ((rc = read_hdr(p, pos, &h)) < 0)
            return rc;
        if (rc == 0) {
            if (pos != p->eof)
                p->truncated = true;
            break;
        }
        if (h.size > p->eof - pos) { /* cut by the end of the file (or a size from garbage) */
            p->truncated = true;
            break;
        }
        uint64_t end = h.size ? pos + h.size : p->eof;
        if (h.type == BOX('m', 'o', 'o', 'v')) {
            if (p->have_moov)
                return UNSUP(p, "a second moov");
            if (!h.size)
                return UNSUP(p, "moov to the end of the file");
            size_t cap = 0;
            if ((rc = read_body(p, pos, &h, &p->init, &cap, FS_INIT_MAX)) != 0)
                return rc;
            p->init_len = (size_t)(h.size - h.hlen);
            p->have_moov = true;
            if ((rc = parse_moov(p)) != 0)
                return rc;
        } else if (h.type == BOX('m', 'o', 'o', 'f')) {
            if (!p->have_moov)
                return UNSUP(p, "moof before moov");
            if (!h.size)
                return UNSUP(p, "moof to the end of the file");
            if ((rc = read_body(p, pos, &h, &p->moof, &p->moof_cap, FS_MOOF_MAX)) != 0)
                return rc;
            struct fs_hdr d;
            if ((rc = read_hdr(p, end, &d)) < 0)
                return rc;
            if (rc == 0) {
                p->truncated = true; /* the moof made it to disk, its mdat did not */
                break;
            }
            if (d.type != BOX('m', 'd', 'a', 't'))
                return UNSUP(p, "moof at %llu not followed by mdat", (unsigned long long)pos);
            /* the mdat may be cut: its samples past the end are dropped */
            uint64_t lo = end + d.hlen;
            uint64_t hi = !d.size ? p->eof : d.size > UINT64_MAX - end ? UINT64_MAX : end + d.size;
            if ((rc = parse_moof(p, p->moof, (size_t)(h.size - h.hlen), pos, lo, hi)) != 0)
                return rc;
            p->fragments++;
            if (probe)
                return 0;
            if (hi >= p->eof) {
                p->truncated |= hi > p->eof;
                break;
            }
            pos = hi;
            continue;
        }
        if (!h.size)
            break;
        pos = end;
    }
    if (!p->have_moov)
        return UNSUP(p, "no moov");
    if (probe && !p->fragments)
        return UNSUP(p, "no complete fragment");
    return 0;
}

/* --- layout --------------------------------------------------------------- */

/* x * mul / div rounded to nearest, for x < 2^63 / mul. */
static uint64_t rescale(uint64_t x, uint64_t mul, uint64_t div)
{
    return (x / div) * mul + ((x % div) * mul + div / 2) / div;
}

static int cmp_chunk_src(const void *a, const void *b, void *arg)
{
    const struct fs_chunk *c = arg;
    uint64_t x = c[*(const uint32_t *)a].src, y = c[*(const uint32_t *)b].src;
    return x < y ? -1 : x > y;
}

/* Track timing: composition range, edit list, durations in both timescales
 * (see the header: the earliest presented sample of all tracks is at 0). */
static int layout_timing(struct fs_parse *p)
{
    uint64_t t0_us = UINT64_MAX;
    uint64_t pres_us[MP4_FASTSTART_MAX_TRACKS];
    for (int i = 0; i < p->ntr; i++) {
        struct fs_track *t = &p->tr[i];
        if (!t->n)
            continue;
        int64_t dts = 0, min_ct = INT64_MAX, end = INT64_MIN;
        for (size_t j = 0; j < t->n; j++) {
            int64_t ct = dts + t->cts[j];
            if (ct < min_ct)
                min_ct = ct;
            if (ct + t->dur[j] > end)
                end = ct + t->dur[j];
            dts += t->dur[j];
        }
        t->media_dur = (uint64_t)dts;
        if (min_ct < 0) {
            /* A sample composed before the first decode time: every offset
             * moves up by as much, so the media starts at composition 0. */
            for (size_t j = 0; j < t->n; j++) {
                int64_t c = (int64_t)t->cts[j] - min_ct;
                if (c > INT32_MAX)
                    return UNSUP(p, "track %u: composition offsets span more than 2^31 ticks", t->id);
                t->cts[j] = (int32_t)c;
            }
            end -= min_ct;
            min_ct = 0;
        }
        t->min_ct = min_ct;
        t->pres_end = end > min_ct ? (uint64_t)end : (uint64_t)min_ct;
        pres_us[i] = rescale(t->first_dts + (uint64_t)min_ct, 1000000, t->timescale);
        if (pres_us[i] < t0_us)
            t0_us = pres_us[i];
    }
    for (int i = 0; i < p->ntr; i++) {
        struct fs_track *t = &p->tr[i];
        if (!t->n)
            continue;
        t->empty_edit = rescale(pres_us[i] - t0_us, FS_MOVIE_TIMESCALE, 1000000);
        t->seg_dur = rescale(t->pres_end - (uint64_t)t->min_ct, FS_MOVIE_TIMESCALE, t->timescale);
        t->edit = t->empty_edit > 0 || t->min_ct > 0;
        t->tkhd_dur = t->edit ? t->empty_edit + t->seg_dur : rescale(t->media_dur, FS_MOVIE_TIMESCALE, t->timescale);
    }
    return 0;
}

/* Places the chunks in the output mdat in source order (so the copy is a
 * few long extents) and refuses overlapping ones. order[] gets the indices
 * in source order; returns the payload size, or UINT64_MAX on overlap. */
static uint64_t layout_chunks(struct fs_parse *p, uint32_t *order)
{
    for (size_t i = 0; i < p->nchunks; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, p->nchunks, sizeof *order, cmp_chunk_src, p->chunk);
    uint64_t rel = 0, prev_end = 0;
    for (size_t i = 0; i < p->nchunks; i++) {
        struct fs_chunk *c = &p->chunk[order[i]];
        if (i && c->src < prev_end)
            return UINT64_MAX;
        c->rel = rel;
        rel += c->bytes;
        prev_end = c->src + c->bytes;
    }
    return rel;
}

/* --- moov ------------------------------------------------------------------ */

/* A growable output buffer with a ceiling; errors are sticky. */
struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool err;
};

static uint8_t *wb_room(struct wbuf *w, size_t n)
{
    if (w->err)
        return NULL;
    if (w->len + n > w->cap) {
        if (w->len + n > FS_MOOV_MAX) {
            w->err = true;
            return NULL;
        }
        size_t cap = w->cap ? w->cap : 64 * 1024;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *q = realloc(w->p, cap);
        if (!q) {
            w->err = true;
            return NULL;
        }
        w->p = q;
        w->cap = cap;
    }
    uint8_t *r = w->p + w->len;
    w->len += n;
    return r;
}

static void wb_u16(struct wbuf *w, uint16_t v)
{
    uint8_t *q = wb_room(w, 2);
    if (q)
        wr_be16(q, v);
}
static void wb_u32(struct wbuf *w, uint32_t v)
{
    uint8_t *q = wb_room(w, 4);
    if (q)
        wr_be32(q, v);
}
static void wb_u64(struct wbuf *w, uint64_t v)
{
    uint8_t *q = wb_room(w, 8);
    if (q)
        wr_be64(q, v);
}
static void wb_bytes(struct wbuf *w, const void *b, size_t n)
{
    uint8_t *q = wb_room(w, n);
    if (q && n)
        memcpy(q, b, n);
}
static void wb_zero(struct wbuf *w, size_t n)
{
    uint8_t *q = wb_room(w, n);
    if (q)
        memset(q, 0, n);
}
/* Opens a box: returns where its size goes (patched by wb_end). */
static size_t wb_box(struct wbuf *w, const char *type)
{
    size_t at = w->len;
    wb_u32(w, 0);
    wb_bytes(w, type, 4);
    return at;
}
static size_t wb_fullbox(struct wbuf *w, const char *type, uint8_t version, uint32_t flags)
{
    size_t at = wb_box(w, type);
    wb_u32(w, ((uint32_t)version << 24) | flags);
    return at;
}
static void wb_end(struct wbuf *w, size_t at)
{
    if (!w->err)
        wr_be32(w->p + at, (uint32_t)(w->len - at));
}

static const uint32_t identity_matrix[9] = {0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000};

static void put_ftyp(struct wbuf *w, const struct fs_parse *p)
{
    bool avc = false;
    for (int i = 0; i < p->ntr; i++)
        avc |= p->tr[i].n && p->tr[i].avc;
    size_t b = wb_box(w, "ftyp");
    wb_bytes(w, "isom", 4);
    wb_u32(w, 0x200);
    wb_bytes(w, "isomiso2", 8);
    if (avc)
        wb_bytes(w, "avc1", 4);
    wb_bytes(w, "mp41", 4);
    wb_end(w, b);
}

/* mvhd (§8.2.2), movie timescale 1000 as libavformat writes it. */
static void put_mvhd(struct wbuf *w, uint64_t duration, uint32_t next_id)
{
    bool v1 = duration > UINT32_MAX;
    size_t b = wb_fullbox(w, "mvhd", v1, 0);
    if (v1) {
        wb_zero(w, 16);
        wb_u32(w, FS_MOVIE_TIMESCALE);
        wb_u64(w, duration);
    } else {
        wb_zero(w, 8);
        wb_u32(w, FS_MOVIE_TIMESCALE);
        wb_u32(w, (uint32_t)duration);
    }
    wb_u32(w, 0x00010000); /* rate 1.0 */
    wb_u16(w, 0x0100);     /* volume 1.0 */
    wb_zero(w, 10);
    for (int i = 0; i < 9; i++)
        wb_u32(w, identity_matrix[i]);
    wb_zero(w, 24);
    wb_u32(w, next_id);
    wb_end(w, b);
}

/* tkhd (§8.3.2): enabled + in movie; presentation fields from the init. */
static void put_tkhd(struct wbuf *w, const struct fs_track *t)
{
    bool v1 = t->tkhd_dur > UINT32_MAX;
    size_t b = wb_fullbox(w, "tkhd", v1, 0x3);
    wb_zero(w, v1 ? 16 : 8);
    wb_u32(w, t->out_id);
    wb_u32(w, 0);
    if (v1)
        wb_u64(w, t->tkhd_dur);
    else
        wb_u32(w, (uint32_t)t->tkhd_dur);
    wb_zero(w, 8);
    wb_u16(w, t->layer);
    wb_u16(w, t->alt_group);
    wb_u16(w, t->volume);
    wb_u16(w, 0);
    wb_bytes(w, t->matrix, 36);
    wb_u32(w, t->width);
    wb_u32(w, t->height);
    wb_end(w, b);
}

/* edts/elst (§8.6.6): an empty edit for a later start, then the media from
 * its earliest composition time. */
static void put_edts(struct wbuf *w, const struct fs_track *t)
{
    bool v1 = t->tkhd_dur > UINT32_MAX || (uint64_t)t->min_ct > INT32_MAX;
    size_t e = wb_box(w, "edts");
    size_t b = wb_fullbox(w, "elst", v1, 0);
    wb_u32(w, t->empty_edit ? 2 : 1);
    if (t->empty_edit) {
        if (v1) {
            wb_u64(w, t->empty_edit);
            wb_u64(w, UINT64_MAX); /* -1: empty */
        } else {
            wb_u32(w, (uint32_t)t->empty_edit);
            wb_u32(w, UINT32_MAX);
        }
        wb_u32(w, 0x00010000);
    }
    if (v1) {
        wb_u64(w, t->seg_dur);
        wb_u64(w, (uint64_t)t->min_ct);
    } else {
        wb_u32(w, (uint32_t)t->seg_dur);
        wb_u32(w, (uint32_t)t->min_ct);
    }
    wb_u32(w, 0x00010000);
    wb_end(w, b);
    wb_end(w, e);
}

static void put_mdhd(struct wbuf *w, const struct fs_track *t)
{
    bool v1 = t->media_dur > UINT32_MAX;
    size_t b = wb_fullbox(w, "mdhd", v1, 0);
    wb_zero(w, v1 ? 16 : 8);
    wb_u32(w, t->timescale);
    if (v1)
        wb_u64(w, t->media_dur);
    else
        wb_u32(w, (uint32_t)t->media_dur);
    wb_u16(w, t->language);
    wb_u16(w, 0);
    wb_end(w, b);
}

/* Run-length table of a per-sample u32 (stts: durations; ctts: offsets). */
static void put_rle(struct wbuf *w, const char *type, uint8_t version, const uint32_t *v, size_t n)
{
    size_t b = wb_fullbox(w, type, version, 0);
    size_t count_at = w->len;
    wb_u32(w, 0);
    uint32_t runs = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && v[j] == v[i] && j - i < UINT32_MAX)
            j++;
        wb_u32(w, (uint32_t)(j - i));
        wb_u32(w, v[i]);
        runs++;
        i = j;
    }
    if (!w->err)
        wr_be32(w->p + count_at, runs);
    wb_end(w, b);
}

static void put_stbl(struct wbuf *w, const struct fs_parse *p, int ti, bool co64, uint64_t payload_at)
{
    const struct fs_track *t = &p->tr[ti];
    size_t stbl = wb_box(w, "stbl");
    wb_bytes(w, t->stsd, t->stsd_len);
    put_rle(w, "stts", 0, t->dur, t->n);
    bool any_cts = false, neg_cts = false, all_sync = true;
    for (size_t i = 0; i < t->n; i++) {
        any_cts |= t->cts[i] != 0;
        neg_cts |= t->cts[i] < 0;
        all_sync &= t->sync[i] != 0;
    }
    if (any_cts) /* signed offsets need version 1 (§8.6.1.3); the bits are the same */
        put_rle(w, "ctts", neg_cts, (const uint32_t *)(const void *)t->cts, t->n);
    if (!all_sync) {
        size_t b = wb_fullbox(w, "stss", 0, 0);
        size_t count_at = w->len;
        wb_u32(w, 0);
        uint32_t n = 0;
        for (size_t i = 0; i < t->n; i++)
            if (t->sync[i]) {
                wb_u32(w, (uint32_t)i + 1);
                n++;
            }
        if (!w->err)
            wr_be32(w->p + count_at, n);
        wb_end(w, b);
    }
    bool same = true;
    for (size_t i = 1; i < t->n && same; i++)
        same = t->size[i] == t->size[0];
    size_t b = wb_fullbox(w, "stsz", 0, 0);
    wb_u32(w, same ? t->size[0] : 0);
    wb_u32(w, (uint32_t)t->n);
    if (!same)
        for (size_t i = 0; i < t->n; i++)
            wb_u32(w, t->size[i]);
    wb_end(w, b);
    /* stsc: a new entry when samples-per-chunk or the description changes */
    b = wb_fullbox(w, "stsc", 0, 0);
    size_t count_at = w->len;
    wb_u32(w, 0);
    uint32_t entries = 0, nchunk = 0, last_n = 0, last_sdi = 0;
    for (size_t i = 0; i < p->nchunks; i++) {
        const struct fs_chunk *c = &p->chunk[i];
        if (c->track != (uint32_t)ti)
            continue;
        nchunk++;
        if (entries && c->nsamples == last_n && c->sdi == last_sdi)
            continue;
        wb_u32(w, nchunk);
        wb_u32(w, c->nsamples);
        wb_u32(w, c->sdi);
        entries++;
        last_n = c->nsamples;
        last_sdi = c->sdi;
    }
    if (!w->err)
        wr_be32(w->p + count_at, entries);
    wb_end(w, b);
    b = wb_fullbox(w, co64 ? "co64" : "stco", 0, 0);
    wb_u32(w, nchunk);
    for (size_t i = 0; i < p->nchunks; i++) {
        const struct fs_chunk *c = &p->chunk[i];
        if (c->track != (uint32_t)ti)
            continue;
        if (co64)
            wb_u64(w, payload_at + c->rel);
        else
            wb_u32(w, (uint32_t)(payload_at + c->rel));
    }
    wb_end(w, b);
    wb_end(w, stbl);
}

/* The moov for a payload at file offset payload_at. */
static void put_moov(struct wbuf *w, const struct fs_parse *p, bool co64, uint64_t payload_at)
{
    uint64_t dur = 0;
    uint32_t next_id = 1;
    for (int i = 0; i < p->ntr; i++)
        if (p->tr[i].n) {
            if (p->tr[i].tkhd_dur > dur)
                dur = p->tr[i].tkhd_dur;
            if (p->tr[i].out_id >= next_id)
                next_id = p->tr[i].out_id + 1;
        }
    size_t moov = wb_box(w, "moov");
    put_mvhd(w, dur, next_id);
    for (int i = 0; i < p->ntr; i++) {
        const struct fs_track *t = &p->tr[i];
        if (!t->n)
            continue;
        size_t trak = wb_box(w, "trak");
        put_tkhd(w, t);
        if (t->edit)
            put_edts(w, t);
        size_t mdia = wb_box(w, "mdia");
        put_mdhd(w, t);
        wb_bytes(w, t->hdlr, t->hdlr_len);
        size_t minf = wb_box(w, "minf");
        wb_bytes(w, t->xmhd, t->xmhd_len);
        wb_bytes(w, t->dinf, t->dinf_len);
        put_stbl(w, p, i, co64, payload_at);
        wb_end(w, minf);
        wb_end(w, mdia);
        wb_end(w, trak);
    }
    wb_end(w, moov);
}

/* Everything before the payload: ftyp + moov + mdat header, in w. The
 * chunk offsets depend on the moov's size and the moov's size on whether
 * they need 64 bits: measured with stco first, co64 when the last chunk
 * would start past 4 GiB. bias: extra bytes before the payload (tests). */
struct fs_head {
    struct wbuf w;
    bool co64;
    uint64_t payload_at, payload;
    uint64_t duration;   /* movie timescale */
};

static int fs_build_head(struct fs_parse *p, uint64_t bias, struct fs_head *h)
{
    memset(h, 0, sizeof *h);
    if (p->samples == 0)
        return fs_fail(p, MP4_FASTSTART_ERROR, "no complete sample");
    uint32_t *order = malloc((p->nchunks ? p->nchunks : 1) * sizeof *order);
    if (!order)
        return fs_fail(p, MP4_FASTSTART_ERROR, "out of memory");
    h->payload = layout_chunks(p, order);
    free(order);
    if (h->payload == UINT64_MAX)
        return UNSUP(p, "sample data of two runs overlap");
    int rc = layout_timing(p);
    if (rc != 0)
        return rc;
    uint32_t id = 1;
    for (int i = 0; i < p->ntr; i++)
        if (p->tr[i].n) {
            p->tr[i].out_id = id++;
            if (p->tr[i].tkhd_dur > h->duration)
                h->duration = p->tr[i].tkhd_dur;
        }
    uint64_t max_rel = 0;
    for (size_t i = 0; i < p->nchunks; i++)
        if (p->chunk[i].rel > max_rel)
            max_rel = p->chunk[i].rel;
    size_t mdat_hdr = h->payload + 8 > UINT32_MAX ? 16 : 8;
    for (int pass = 0; pass < 2; pass++) {
        h->w.len = 0;
        put_ftyp(&h->w, p);
        put_moov(&h->w, p, h->co64, 0);
        if (h->w.err)
            return fs_fail(p, MP4_FASTSTART_ERROR, "moov over %u bytes or out of memory", FS_MOOV_MAX);
        h->payload_at = h->w.len + mdat_hdr + bias;
        if (h->co64 || h->payload_at + max_rel <= UINT32_MAX)
            break;
        h->co64 = true;
    }
    h->w.len = 0;
    put_ftyp(&h->w, p);
    put_moov(&h->w, p, h->co64, h->payload_at);
    if (mdat_hdr == 16) {
        wb_u32(&h->w, 1);
        wb_bytes(&h->w, "mdat", 4);
        wb_u64(&h->w, h->payload + 16);
    } else {
        wb_u32(&h->w, (uint32_t)(h->payload + 8));
        wb_bytes(&h->w, "mdat", 4);
    }
    if (h->w.err)
        return fs_fail(p, MP4_FASTSTART_ERROR, "out of memory");
    return 0;
}

/* --- the copy ------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *b, size_t len)
{
    while (len) {
        ssize_t n = write(fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copies len bytes at src offset `in` to the end of out: copy_file_range
 * (no trip through user space, a reflink where the file system can), then
 * pread/write from where the kernel refused. *buf is allocated on first
 * need. 0 or -1 (errno). */
static int copy_extent(int in_fd, uint64_t in, int out_fd, uint64_t len, bool *no_cfr, uint8_t **buf)
{
    loff_t off_in = (loff_t)in;
    while (len && !*no_cfr) {
        ssize_t n = copy_file_range(in_fd, &off_in, out_fd, NULL, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
            *no_cfr = true;
            break;
        }
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO; /* the source shrank under us */
            return -1;
        }
        len -= (uint64_t)n;
    }
    if (len && !*buf && !(*buf = malloc(FS_COPY_BUF)))
        return -1;
    while (len) {
        size_t want = len < FS_COPY_BUF ? (size_t)len : FS_COPY_BUF;
        ssize_t n = pread(in_fd, *buf, want, off_in);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        if (write_all(out_fd, *buf, (size_t)n) != 0)
            return -1;
        off_in += n;
        len -= (uint64_t)n;
    }
    return 0;
}

/* The payload: the chunks in source order, adjacent ones as one extent. */
static int copy_payload(struct fs_parse *p, int out_fd)
{
    uint32_t *order = malloc((p->nchunks ? p->nchunks : 1) * sizeof *order);
    if (!order)
        return fs_fail(p, MP4_FASTSTART_ERROR, "out of memory");
    layout_chunks(p, order);
    bool no_cfr = false;
    uint8_t *buf = NULL;
    int rc = 0;
    for (size_t i = 0; i < p->nchunks && rc == 0;) {
        uint64_t src = p->chunk[order[i]].src, len = 0;
        while (i < p->nchunks && p->chunk[order[i]].src == src + len)
            len += p->chunk[order[i++]].bytes;
        if (copy_extent(p->fd, src, out_fd, len, &no_cfr, &buf) != 0)
            rc = fs_fail(p, MP4_FASTSTART_ERROR, "copy: %s", strerror(errno));
    }
    free(buf);
    free(order);
    return rc;
}

/* --- public ---------------------------------------------------------------- */

static int fs_open(struct fs_parse *p, const char *src, char *reason, size_t cap)
{
    memset(p, 0, sizeof *p);
    p->reason = reason;
    p->cap = cap;
    if (reason && cap)
        reason[0] = 0;
    p->fd = open(src, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0)
        return fs_fail(p, MP4_FASTSTART_ERROR, "open %s: %s", src, strerror(errno));
    return 0;
}

static void fs_close(struct fs_parse *p)
{
    if (p->fd >= 0)
        close(p->fd);
    fs_free(p);
}

int mp4_faststart_probe(const char *path)
{
    struct fs_parse p;
    if (fs_open(&p, path, NULL, 0) != 0)
        return -1;
    int rc = fs_parse(&p, true);
    int e = errno;
    fs_close(&p);
    errno = e; /* the read error, for the caller's message */
    return rc == 0 ? 1 : rc == MP4_FASTSTART_UNSUPPORTED ? 0 : -1;
}

int mp4_faststart_moov_for_test(const char *src, uint64_t bias, uint8_t **moov, size_t *len, bool *co64,
                                char *reason, size_t cap)
{
    struct fs_parse p;
    struct fs_head h = {0};
    int rc = fs_open(&p, src, reason, cap);
    if (rc == 0)
        rc = fs_parse(&p, false);
    if (rc == 0)
        rc = fs_build_head(&p, bias, &h);
    if (rc == 0) {
        /* skip the ftyp; keep the moov, drop the mdat header */
        size_t ftyp = rd_be32(h.w.p), mlen = rd_be32(h.w.p + ftyp);
        memmove(h.w.p, h.w.p + ftyp, mlen);
        *moov = h.w.p;
        *len = mlen;
        *co64 = h.co64;
        h.w.p = NULL;
    }
    free(h.w.p);
    fs_close(&p);
    return rc;
}

int mp4_faststart_write(const char *src, const char *dst_tmp, struct mp4_faststart_stats *st, char *reason,
                        size_t cap)
{
    struct mp4_faststart_stats dummy;
    if (!st)
        st = &dummy;
    memset(st, 0, sizeof *st);
    struct fs_parse p;
    struct fs_head h = {0};
    int out = -1;
    bool created = false;
    int rc = fs_open(&p, src, reason, cap);
    if (rc == 0)
        rc = fs_parse(&p, false);
    if (rc == 0)
        rc = fs_build_head(&p, 0, &h);
    if (rc != 0)
        goto done;
    out = open(dst_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = fs_fail(&p, MP4_FASTSTART_ERROR, "create %s: %s", dst_tmp, strerror(errno));
        goto done;
    }
    created = true;
    posix_fadvise(p.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (write_all(out, h.w.p, h.w.len) != 0) {
        rc = fs_fail(&p, MP4_FASTSTART_ERROR, "write %s: %s", dst_tmp, strerror(errno));
        goto done;
    }
    if ((rc = copy_payload(&p, out)) != 0)
        goto done;
    /* durable before the caller renames it over the source */
    if (fsync(out) != 0) {
        rc = fs_fail(&p, MP4_FASTSTART_ERROR, "fsync %s: %s", dst_tmp, strerror(errno));
        goto done;
    }
    int crc = close(out);
    out = -1;
    if (crc != 0) {
        rc = fs_fail(&p, MP4_FASTSTART_ERROR, "close %s: %s", dst_tmp, strerror(errno));
        goto done;
    }
    st->bytes = h.w.len + h.payload;
    st->duration_ms = (int64_t)h.duration; /* movie timescale is ms */
    st->samples = p.samples;
    st->dropped = p.dropped;
    st->fragments = p.fragments;
    for (int i = 0; i < p.ntr; i++)
        st->tracks += p.tr[i].n > 0;
    st->truncated = p.truncated;
    st->co64 = h.co64;
done:
    if (out >= 0)
        close(out);
    if (rc != 0 && created)
        unlink(dst_tmp);
    free(h.w.p);
    fs_close(&p);
    return rc;
}
