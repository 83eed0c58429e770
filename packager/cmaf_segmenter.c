/* cmaf_segmenter.c — timestamp normalization, interleaving, part/segment
 * cutting and init management over cmaf_muxer (SPEC ING-8, ING-9, PKG-1..3).
 *
 * Pipeline of one frame:
 *   normalize (input ms -> output ms, per-track offset, jump detection)
 *   -> track timescale (90 kHz video; AAC sample clock for audio)
 *   -> per-track queue (a frame is complete once its successor gives its
 *      duration)
 *   -> interleave (release the earliest complete frame once the other
 *      track cannot deliver anything earlier)
 *   -> cut (part / segment boundaries on the "cutting track": video when
 *      present, else audio) -> cmaf_muxer -> sink.
 * See cmaf_segmenter.h for the contract. */
#include "packager/cmaf_segmenter.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "packager/cmaf_muxer.h"

#define V MEDIA_KIND_VIDEO
#define A MEDIA_KIND_AUDIO

/* A track that delivered nothing for this long (media time, relative to the
 * other track) no longer holds the other one back. */
#define MAX_INTERLEAVE_US 1000000
/* Backwards steps up to this (or one frame, if longer) are jitter, not a
 * discontinuity: the frame is moved just after its predecessor. */
#define MIN_JITTER_MS 10
/* Composition offsets are clamped to this (B-frame delays are well below). */
#define MAX_CTS_MS 10000
#define MAX_INPUT_MS (1LL << 52)
/* PROGRAM-DATE-TIME re-anchors when arrival drifts this far from media time. */
#define WALL_DRIFT_US 1000000LL

struct qframe {
    struct qframe *next;
    int64_t t_us;         /* output decode time, µs */
    int64_t dts, pts;     /* track timescale */
    int64_t dur;          /* track timescale; 0 until the successor arrives */
    long long wall_us;    /* arrival */
    bool key;
    bool disc;            /* first frame after a re-base (ING-8) */
    bool cut_done;        /* the boundary before it was cut on arrival (early_cut) */
    size_t len;
    uint8_t data[];
};

struct track {
    bool configured;
    struct media_codec_config cfg;   /* extradata -> owned copy */
    uint8_t *extradata;
    uint32_t timescale;
    int64_t frame_ts;                /* audio: samples per frame */
    bool in_mux;

    /* normalization, milliseconds */
    bool have;
    int64_t off_ms, last_out_ms;
    int64_t fdur_us;                 /* estimated frame duration */
    uint32_t rebase_seen;

    /* timescale clock */
    bool clock_valid;
    int64_t last_ts, next_ts;

    /* queue */
    struct qframe *head, *tail;
    bool has_newest;
    int64_t newest_t_us;

    /* muxer side */
    bool mux_have;
    int64_t mux_end;                 /* dts + dur of the last sample written */

    /* frame-rate measurement (video) */
    uint64_t fr_n;
    int64_t fr_first_us, fr_last_us;
};

struct cmaf_segmenter {
    struct cmaf_segmenter_config cfg;
    struct cmaf_sink sink;
    struct track tr[2];
    bool running;                    /* a muxer exists */
    struct cmaf_muxer *mux;
    uint32_t next_fragment;
    size_t queued_bytes, max_queue, max_part;
    uint32_t rebase_serial;

    bool init_pending;
    bool disc_pending;               /* next segment starts a discontinuity */
    bool force_disc;                 /* cut at the first possible point */

    bool seg_open;
    uint64_t msn;
    int64_t seg_start_us;
    uint32_t part_index;
    size_t seg_bytes;
    bool seg_disc;
    long long seg_wall;

    bool part_open;
    int64_t part_start_us;
    bool part_indep, part_disc;
    long long part_wall;
    int64_t last_cut_end_us;         /* end of the last cutting-track frame */
    int64_t end_us;                  /* end of the last frame packaged */

    bool wall_anchored;
    long long wall_anchor;
    int64_t media_anchor_us;

    double frame_rate;
    struct cmaf_segmenter_stats stats;
};

/* ---- small helpers ---------------------------------------------------- */

static long long sys_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static long long now_wall(const struct cmaf_segmenter *s)
{
    return s->cfg.now_wall_us ? s->cfg.now_wall_us(s->cfg.clock_ctx) : sys_clock(CLOCK_REALTIME);
}

static long long now_mono(const struct cmaf_segmenter *s)
{
    return s->cfg.now_mono_us ? s->cfg.now_mono_us(s->cfg.clock_ctx) : sys_clock(CLOCK_MONOTONIC);
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ticks <-> µs in a track's timescale */
static int64_t ts_to_us(const struct track *t, int64_t ts)
{
    return ts * 1000000 / t->timescale;
}

static int64_t us_to_ts(const struct track *t, int64_t us)
{
    return us * t->timescale / 1000000;
}

static int cutting_kind(const struct cmaf_segmenter *s)
{
    return s->tr[V].in_mux ? V : A;
}

static const char *kind_name(int k) { return k == V ? "video" : "audio"; }

/* ---- config ----------------------------------------------------------- */

void cmaf_segmenter_config_defaults(struct cmaf_segmenter_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->segment_target_ms = 2000;
    cfg->part_target_ms = 500;
    cfg->max_buffer = 64u << 20;
    cfg->start_wait_ms = 1000;
    cfg->jump_threshold_ms = 5000;
}

struct cmaf_segmenter *cmaf_segmenter_new(const struct cmaf_segmenter_config *cfg,
                                          const struct cmaf_sink *sink, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (!cfg || !sink || !sink->on_init || !sink->on_part || !sink->on_segment)
        bad = "sink callbacks missing";
    else if (cfg->segment_target_ms < 100 || cfg->segment_target_ms > 60000)
        bad = "segment_target_ms out of range (100..60000)";
    else if (cfg->part_target_ms > cfg->segment_target_ms)
        bad = "part_target_ms larger than segment_target_ms";
    else if (cfg->part_target_ms != 0 && cfg->part_target_ms < 50)
        bad = "part_target_ms too small (>= 50)";
    else if (cfg->max_buffer < (1u << 20))
        bad = "max_buffer below 1 MiB";
    else if (cfg->jump_threshold_ms < 100 || cfg->jump_threshold_ms > 60000)
        bad = "jump_threshold_ms out of range (100..60000)";
    if (bad) {
        if (err && errlen)
            snprintf(err, errlen, "cmaf_segmenter: %s", bad);
        return NULL;
    }
    struct cmaf_segmenter *s = calloc(1, sizeof(*s));
    if (!s) {
        if (err && errlen)
            snprintf(err, errlen, "cmaf_segmenter: out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->sink = *sink;
    s->msn = cfg->first_msn;
    s->max_queue = cfg->max_buffer / 2;
    s->max_part = cfg->max_buffer / 2;
    s->next_fragment = 1;
    s->disc_pending = cfg->discontinuity_at_start;
    s->end_us = cfg->start_time_us;
    return s;
}

static void queue_drop_track(struct cmaf_segmenter *s, struct track *t)
{
    struct qframe *f = t->head;
    while (f) {
        struct qframe *n = f->next;
        s->queued_bytes -= f->len;
        s->stats.frames_dropped++;
        free(f);
        f = n;
    }
    t->head = t->tail = NULL;
    t->has_newest = false;
}

void cmaf_segmenter_free(struct cmaf_segmenter *s)
{
    if (!s)
        return;
    for (int k = 0; k < 2; k++) {
        queue_drop_track(s, &s->tr[k]);
        free(s->tr[k].extradata);
    }
    cmaf_muxer_free(s->mux);
    free(s);
}

uint64_t cmaf_segmenter_next_msn(const struct cmaf_segmenter *s)
{
    return s->seg_open ? s->msn + 1 : s->msn;
}

int64_t cmaf_segmenter_end_time_us(const struct cmaf_segmenter *s)
{
    return s->end_us;
}

double cmaf_segmenter_frame_rate(const struct cmaf_segmenter *s)
{
    return s->frame_rate;
}

void cmaf_segmenter_get_stats(const struct cmaf_segmenter *s, struct cmaf_segmenter_stats *out)
{
    *out = s->stats;
}

/* ---- frame rate ------------------------------------------------------- */

/* Measured rate, snapped to a broadcast rate: integer rates first (within
 * 0.3 %: over half a second of millisecond timestamps 30 and 29.97 cannot be
 * told apart), then the NTSC ones (0.5 %); the onMetaData hint wins when it
 * is within 2 %. */
static double snap_frame_rate(double measured, double hint)
{
    static const double ints[] = { 24, 25, 30, 48, 50, 60, 120 };
    static const double ntsc[] = { 23.976, 29.97, 59.94 };
    if (measured <= 0)
        return hint > 0 ? hint : 0;
    if (hint > 0 && fabs(measured - hint) <= hint * 0.02)
        return hint;
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if (fabs(measured - ints[i]) <= ints[i] * 0.003)
            return ints[i];
    for (size_t i = 0; i < sizeof(ntsc) / sizeof(ntsc[0]); i++)
        if (fabs(measured - ntsc[i]) <= ntsc[i] * 0.005)
            return ntsc[i];
    return round(measured * 1000) / 1000;
}

static void measure_frame(struct cmaf_segmenter *s, struct track *t, int64_t t_us)
{
    if (t->fr_n == 0)
        t->fr_first_us = t_us;
    t->fr_last_us = t_us;
    t->fr_n++;
    if (t->fr_n >= 2 && t->fr_last_us > t->fr_first_us)
        s->frame_rate = snap_frame_rate((double)(t->fr_n - 1) * 1e6 /
                                            (double)(t->fr_last_us - t->fr_first_us),
                                        s->cfg.frame_rate_hint);
}

/* ---- sink emission ---------------------------------------------------- */

static void emit_init(struct cmaf_segmenter *s)
{
    struct cmaf_track_info info[2];
    int n = 0;
    for (int k = 0; k < 2; k++) {  /* video first: track ids follow the muxer */
        struct track *t = &s->tr[k];
        if (!t->in_mux)
            continue;
        struct cmaf_track_info *ti = &info[n++];
        memset(ti, 0, sizeof(*ti));
        ti->kind = (enum media_kind)k;
        ti->codec = t->cfg.codec;
        memcpy(ti->codec_string, t->cfg.codec_string, sizeof(ti->codec_string));
        ti->codec_string[sizeof(ti->codec_string) - 1] = '\0';
        if (k == V) {
            ti->width = t->cfg.width;
            ti->height = t->cfg.height;
            ti->frame_rate = s->frame_rate > 0 ? s->frame_rate : s->cfg.frame_rate_hint;
        } else {
            struct cmaf_muxer_asc asc;
            if (cmaf_muxer_parse_asc(t->extradata, t->cfg.extradata_len, &asc) == 0) {
                ti->sample_rate = asc.out_rate;
                ti->channels = asc.channels >= 1 && asc.channels <= 6 ? asc.channels
                             : asc.channels == 7 ? 8 : t->cfg.channels;
            } else {
                ti->sample_rate = t->cfg.sample_rate;
                ti->channels = t->cfg.channels;
            }
        }
    }
    struct cmaf_init init = { 0 };
    init.data = cmaf_muxer_init_data(s->mux, &init.len);
    init.tracks = info;
    init.ntracks = n;
    init.discontinuity = s->stats.inits > 0 || s->cfg.discontinuity_at_start;
    s->init_pending = false;
    s->stats.inits++;
    s->sink.on_init(s->sink.ctx, &init);
}

static long long wall_for(struct cmaf_segmenter *s, int64_t t_us, long long arrival, bool reanchor)
{
    long long w = s->wall_anchor + (t_us - s->media_anchor_us);
    if (reanchor || !s->wall_anchored || llabs(w - arrival) > WALL_DRIFT_US) {
        s->wall_anchored = true;
        s->wall_anchor = arrival;
        s->media_anchor_us = t_us;
        w = arrival;
    }
    return w;
}

/* last: the segment closes right after this part (close_segment follows). */
static int close_part(struct cmaf_segmenter *s, int64_t end_us, bool last)
{
    const uint8_t *data;
    size_t len;
    if (!s->part_open)
        return 0;
    s->part_open = false;
    int rc = cmaf_muxer_flush(s->mux, &data, &len);
    if (rc < 0)
        return rc;
    if (len == 0)
        return 0;   /* nothing was written (cannot happen: a part opens with a frame) */
    if (s->init_pending)
        emit_init(s);
    struct cmaf_part p = { 0 };
    p.data = data;
    p.len = len;
    p.msn = s->msn;
    p.part_index = s->part_index;
    p.start_us = s->part_start_us;
    p.duration_us = max64(end_us - s->part_start_us, 1);
    p.independent = s->part_indep;
    p.discontinuity = s->part_disc;
    p.wall_us = s->part_wall;
    p.ready_mono_us = now_mono(s);
    p.ends_segment = last;
    s->part_index++;
    s->seg_bytes += len;
    s->stats.parts++;
    s->stats.bytes_out += len;
    s->sink.on_part(s->sink.ctx, &p);
    return 0;
}

static void close_segment(struct cmaf_segmenter *s, int64_t end_us)
{
    if (!s->seg_open)
        return;
    s->seg_open = false;
    if (s->part_index == 0)
        return;     /* no part reached the sink: the msn stays unused */
    struct cmaf_segment g = { 0 };
    g.msn = s->msn;
    g.start_us = s->seg_start_us;
    g.duration_us = max64(end_us - s->seg_start_us, 1);
    g.nparts = s->part_index;
    g.bytes = s->seg_bytes;
    g.discontinuity = s->seg_disc;
    g.wall_us = s->seg_wall;
    g.bitrate_bps = (uint64_t)((double)g.bytes * 8.0 * 1e6 / (double)g.duration_us);
    s->msn++;
    s->stats.segments++;
    s->sink.on_segment(s->sink.ctx, &g);
}

static void open_segment(struct cmaf_segmenter *s, const struct qframe *f)
{
    s->seg_open = true;
    s->seg_start_us = f->t_us;
    s->part_index = 0;
    s->seg_bytes = 0;
    s->seg_disc = s->disc_pending || s->force_disc;
    if (s->seg_disc)
        s->stats.discontinuities++;
    s->disc_pending = false;
    s->force_disc = false;
    s->seg_wall = wall_for(s, f->t_us, f->wall_us, s->seg_disc);
}

static void open_part(struct cmaf_segmenter *s, const struct qframe *f, int kind)
{
    s->part_open = true;
    s->part_start_us = f->t_us;
    s->part_indep = s->tr[V].in_mux ? (kind == V && f->key) : true;
    s->part_disc = s->part_index == 0 && s->seg_disc;
    s->part_wall = s->part_index == 0 ? s->seg_wall : wall_for(s, f->t_us, f->wall_us, false);
}

/* ---- cutting ---------------------------------------------------------- */

/* Takes one complete frame (dur known) in interleaved order, decides the
 * boundaries before it and writes it to the muxer. */
static int cut_and_write(struct cmaf_segmenter *s, struct qframe *f, int kind)
{
    struct track *t = &s->tr[kind];
    int ck = cutting_kind(s);
    int rc;

    if (f->disc && !f->cut_done)
        s->force_disc = true;
    /* The muxer must not see overlapping samples: a frame whose predecessor
     * got an estimated duration may start a little earlier; move it. */
    if (t->mux_have && f->dts < t->mux_end) {
        int64_t d = t->mux_end - f->dts;
        f->dts += d;
        f->pts += d;
        f->dur = f->dur > d ? f->dur - d : 1;
        f->t_us = ts_to_us(t, f->dts);
    }
    int64_t dur_us = max64(ts_to_us(t, f->dts + f->dur) - f->t_us, 1);

    if (f->cut_done) {
        /* boundary already cut when it arrived (early_cut) */
    } else if (!s->seg_open) {
        bool can = s->tr[V].in_mux ? (kind == V && f->key) : true;
        if (!can) {
            s->stats.frames_dropped++;
            return 0;
        }
        open_segment(s, f);
        open_part(s, f, kind);
    } else if (kind == ck) {
        int64_t seg_elapsed = f->t_us - s->seg_start_us;
        int64_t tol = t->fdur_us / 2;
        bool can_seg = ck == V ? f->key : true;
        bool want_seg = s->force_disc ||
                        seg_elapsed + tol >= (int64_t)s->cfg.segment_target_ms * 1000;
        bool want_part = s->cfg.part_target_ms > 0 &&
                         f->t_us + dur_us - s->part_start_us > (int64_t)s->cfg.part_target_ms * 1000;
        bool too_big = cmaf_muxer_pending_bytes(s->mux) + f->len > s->max_part;
        if (can_seg && want_seg) {
            if ((rc = close_part(s, f->t_us, true)) < 0)
                return rc;
            close_segment(s, f->t_us);
            open_segment(s, f);
            open_part(s, f, kind);
        } else if (want_part || too_big) {
            if ((rc = close_part(s, f->t_us, false)) < 0)
                return rc;
            open_part(s, f, kind);
        }
    }

    struct cmaf_muxer_sample smp = {
        .kind = (enum media_kind)kind, .dts = f->dts, .pts = f->pts, .duration = f->dur,
        .keyframe = kind == A ? true : f->key, .data = f->data, .len = f->len,
    };
    rc = cmaf_muxer_write(s->mux, &smp);
    if (rc == -EINVAL || rc == -ENOSPC) {
        /* A sample the muxer cannot take (should not happen: timestamps are
         * normalized above): drop it rather than the stream. */
        log_warn("cmaf_segmenter: muxer refused %s frame dts=%lld dur=%lld len=%zu: %s",
                 kind_name(kind), (long long)f->dts, (long long)f->dur, f->len, strerror(-rc));
        s->stats.frames_dropped++;
        return 0;
    }
    if (rc < 0) {
        log_error("cmaf_segmenter: muxer failed on %s frame dts=%lld: %s", kind_name(kind),
                  (long long)f->dts, strerror(-rc));
        return rc;
    }
    t->mux_have = true;
    t->mux_end = f->dts + f->dur;
    s->end_us = max64(s->end_us, f->t_us + dur_us);
    if (kind == ck)
        s->last_cut_end_us = f->t_us + dur_us;
    if (kind == V)
        measure_frame(s, t, f->t_us);
    return 0;
}

/* ---- interleaving ----------------------------------------------------- */

static bool stalled(const struct cmaf_segmenter *s, int k, int other)
{
    const struct track *t = &s->tr[k], *o = &s->tr[other];
    if (!o->has_newest)
        return false;
    int64_t ref = t->has_newest ? t->newest_t_us : (o->head ? o->head->t_us : o->newest_t_us);
    return o->newest_t_us - ref > MAX_INTERLEAVE_US;
}

static int64_t estimate_dur(const struct track *t)
{
    if (t->frame_ts > 0)
        return t->frame_ts;
    int64_t d = us_to_ts(t, t->fdur_us);
    return d > 0 ? d : 1;
}

/* Releases frames in decode-time order while that order is certain (or
 * everything, when draining). */
static int pump(struct cmaf_segmenter *s, bool drain)
{
    while (s->running) {
        bool over = s->queued_bytes > s->max_queue;
        int c = -1;
        for (int k = 0; k < 2; k++) {
            if (!s->tr[k].in_mux || !s->tr[k].head)
                continue;
            if (c < 0 || s->tr[k].head->t_us < s->tr[c].head->t_us)
                c = k;
        }
        if (c < 0)
            return 0;
        int o = !c;
        struct track *t = &s->tr[c];
        struct qframe *f = t->head;
        if (!drain && !over) {
            /* The other track may still deliver something earlier. */
            if (s->tr[o].in_mux && !s->tr[o].head && !stalled(s, o, c))
                return 0;
            /* Duration unknown until the next frame of this track. */
            if (f->dur == 0 && !(s->tr[o].in_mux && stalled(s, c, o)))
                return 0;
        }
        t->head = f->next;
        if (!t->head)
            t->tail = NULL;
        s->queued_bytes -= f->len;
        if (f->dur == 0)
            f->dur = estimate_dur(t);
        int rc = cut_and_write(s, f, c);
        free(f);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* LL-HLS wants a part the moment it is complete. The frame that opens the
 * next part is released only once the frame after it gives its duration
 * (one frame later), but often the boundary before it is already certain
 * when it arrives: a segment cut depends on its time and keyframe flag only,
 * and a part cut is certain once the part would be over the target with any
 * duration of it (>= 1 ms: timestamps strictly increase). Then, if the other
 * track has delivered everything before it, the frames before it are written
 * (the other track's last one with its estimated duration: AAC frames have
 * a fixed length) and the boundary is cut now, with the same decision
 * cut_and_write would take later; the frame follows into the new part when
 * its duration is known. Uncertain cases wait for cut_and_write. */
static int early_cut(struct cmaf_segmenter *s)
{
    if (!s->running || !s->seg_open || !s->part_open)
        return 0;
    int ck = cutting_kind(s), o = !ck;
    struct track *t = &s->tr[ck], *u = &s->tr[o];
    struct qframe *f = t->head;
    if (!f || f->dur != 0 || f->cut_done || (t->mux_have && f->dts < t->mux_end))
        return 0;
    if (u->in_mux && !(u->has_newest && u->newest_t_us + u->fdur_us >= f->t_us) && !stalled(s, o, ck))
        return 0;
    bool can_seg = ck == V ? f->key : true;
    bool want_seg = s->force_disc || f->disc ||
                    f->t_us - s->seg_start_us + t->fdur_us / 2 >= (int64_t)s->cfg.segment_target_ms * 1000;
    bool want_part = s->cfg.part_target_ms > 0 &&
                     f->t_us + 1000 - s->part_start_us > (int64_t)s->cfg.part_target_ms * 1000;
    bool seg = can_seg && want_seg;
    if (!seg && !want_part)
        return 0;
    /* the other track's frames before f (in time order: it is in order) */
    while (u->in_mux && u->head && u->head->t_us < f->t_us) {
        struct qframe *g = u->head;
        u->head = g->next;
        if (!u->head)
            u->tail = NULL;
        s->queued_bytes -= g->len;
        if (g->dur == 0)
            g->dur = estimate_dur(u);
        int rc = cut_and_write(s, g, o);
        free(g);
        if (rc < 0)
            return rc;
    }
    if (f->disc)
        s->force_disc = true;
    int rc = close_part(s, f->t_us, seg);
    if (rc < 0)
        return rc;
    if (seg) {
        close_segment(s, f->t_us);
        open_segment(s, f);
    }
    open_part(s, f, ck);
    f->cut_done = true;
    return 0;
}

/* ---- start / re-init -------------------------------------------------- */

static int start_muxer(struct cmaf_segmenter *s)
{
    struct cmaf_muxer_config mc = { 0 };
    char err[160] = "";
    mc.video = s->tr[V].configured ? &s->tr[V].cfg : NULL;
    mc.audio = s->tr[A].configured ? &s->tr[A].cfg : NULL;
    mc.max_bytes = s->max_part + (1u << 20);
    mc.first_fragment = s->next_fragment;
    if (!mc.video && !mc.audio)
        return 0;
    s->mux = cmaf_muxer_new(&mc, err, sizeof(err));
    if (!s->mux) {
        log_error("cmaf_segmenter: %s", err);
        return -EINVAL;
    }
    for (int k = 0; k < 2; k++) {
        struct track *t = &s->tr[k];
        t->in_mux = t->configured;
        t->mux_have = false;
        t->fr_n = 0;
        if (t->in_mux && cmaf_muxer_timescale(s->mux, (enum media_kind)k) != t->timescale) {
            log_error("cmaf_segmenter: %s timescale mismatch", kind_name(k));
            return -EINVAL;
        }
    }
    s->running = true;
    s->init_pending = true;
    if (s->stats.parts > 0)
        s->disc_pending = true;  /* ING-9: the next segment follows a new init */
    return 0;
}

/* Packages everything held, closes the open part and segment. */
static int drain_and_close(struct cmaf_segmenter *s)
{
    int rc = pump(s, true);
    if (rc < 0)
        return rc;
    if (s->part_open && (rc = close_part(s, s->last_cut_end_us, true)) < 0)
        return rc;
    close_segment(s, s->last_cut_end_us);
    return 0;
}

static int64_t queue_span_us(const struct cmaf_segmenter *s)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int k = 0; k < 2; k++) {
        const struct track *t = &s->tr[k];
        if (!t->head)
            continue;
        lo = min64(lo, t->head->t_us);
        hi = max64(hi, t->tail->t_us);
    }
    return hi >= lo ? hi - lo : 0;
}

/* First init: wait for announced / likely tracks (see header). */
static int maybe_start(struct cmaf_segmenter *s)
{
    if (s->running || (!s->tr[V].configured && !s->tr[A].configured))
        return 0;
    if (!s->tr[V].head && !s->tr[A].head)
        return 0;
    if (s->queued_bytes <= s->max_queue) {
        int64_t span = queue_span_us(s);
        int64_t wait = (int64_t)s->cfg.start_wait_ms * 1000;
        bool announced = s->cfg.expect_audio || s->cfg.expect_video;
        for (int k = 0; k < 2; k++) {
            if (s->tr[k].configured)
                continue;
            bool expected = k == V ? s->cfg.expect_video : s->cfg.expect_audio;
            if (expected && span < 5 * wait)
                return 0;
            if (!announced && span < wait)
                return 0;
        }
    }
    int rc = start_muxer(s);
    if (rc < 0)
        return rc;
    return pump(s, false);
}

/* ---- input ------------------------------------------------------------ */

static int validate_config(const struct media_codec_config *c, int64_t *frame_ts, uint32_t *ts)
{
    if (!c->extradata || c->extradata_len == 0 || c->extradata_len > (1u << 20))
        return -EINVAL;
    if (c->kind == V) {
        if (c->codec == MEDIA_CODEC_H264 || c->codec == MEDIA_CODEC_HEVC) {
            if (c->extradata[0] != 1 || c->extradata_len < 7)
                return -EINVAL;
        } else if (c->codec == MEDIA_CODEC_AV1) {
            if (c->extradata_len < 4 || c->extradata[0] != 0x81)
                return -EINVAL;
        } else {
            return -EINVAL;
        }
        *ts = CMAF_MUXER_VIDEO_TIMESCALE;
        *frame_ts = 0;
        return 0;
    }
    if (c->kind == A && c->codec == MEDIA_CODEC_AAC) {
        struct cmaf_muxer_asc asc;
        if (cmaf_muxer_parse_asc(c->extradata, c->extradata_len, &asc) < 0)
            return -EINVAL;
        *ts = (uint32_t)asc.out_rate;
        *frame_ts = asc.frame_samples;
        return 0;
    }
    return -EINVAL;
}

int cmaf_segmenter_config(struct cmaf_segmenter *s, const struct media_codec_config *c)
{
    if (!c || (c->kind != V && c->kind != A))
        return -EINVAL;
    struct track *t = &s->tr[c->kind];
    int64_t frame_ts;
    uint32_t timescale;
    int rc;

    if (t->configured && t->cfg.codec == c->codec && t->cfg.extradata_len == c->extradata_len &&
        memcmp(t->extradata, c->extradata, c->extradata_len) == 0)
        return 0;   /* a repeated sequence header */
    if (validate_config(c, &frame_ts, &timescale) < 0) {
        log_warn("cmaf_segmenter: unsupported or malformed %s config codec=%d len=%zu; "
                 "dropping the track", kind_name(c->kind), (int)c->codec, c->extradata_len);
        if (s->running && t->in_mux) {
            /* The track's old config is gone: continue without it. */
            if ((rc = drain_and_close(s)) < 0)
                return rc;
            s->next_fragment += cmaf_muxer_fragments(s->mux);
            cmaf_muxer_free(s->mux);
            s->mux = NULL;
            s->running = false;
            t->configured = t->in_mux = false;
            if ((rc = start_muxer(s)) < 0)
                return rc;
        }
        queue_drop_track(s, t);
        t->configured = false;
        return -EINVAL;
    }
    uint8_t *copy = malloc(c->extradata_len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, c->extradata, c->extradata_len);

    bool was_running = s->running;
    if (s->running) {
        /* ING-9: everything held was produced under the old configs. */
        if ((rc = drain_and_close(s)) < 0) {
            free(copy);
            return rc;
        }
        s->next_fragment += cmaf_muxer_fragments(s->mux);
        cmaf_muxer_free(s->mux);
        s->mux = NULL;
        s->running = false;
        log_info("cmaf_segmenter: new %s config codec=%s; new init segment", kind_name(c->kind),
                 c->codec_string);
    } else if (t->configured) {
        queue_drop_track(s, t);   /* queued under the replaced config */
    }
    free(t->extradata);
    t->extradata = copy;
    t->cfg = *c;
    t->cfg.extradata = copy;
    t->cfg.codec_string[sizeof(t->cfg.codec_string) - 1] = '\0';
    if (t->timescale != timescale)
        t->clock_valid = false;
    t->timescale = timescale;
    t->frame_ts = frame_ts;
    if (c->kind == A)
        t->fdur_us = frame_ts * 1000000 / timescale;
    else if (t->fdur_us <= 0)
        t->fdur_us = s->cfg.frame_rate_hint > 1 ? (int64_t)(1e6 / s->cfg.frame_rate_hint) : 33333;
    t->configured = true;
    if (was_running)
        return start_muxer(s);
    return maybe_start(s);
}

/* ING-8: maps a track's input ms onto the output timeline. Sets *disc when
 * the track was re-based (and the other track has not just done so). */
static int64_t normalize(struct cmaf_segmenter *s, int k, int64_t in, bool *disc)
{
    struct track *t = &s->tr[k], *u = &s->tr[!k];
    int64_t thr = s->cfg.jump_threshold_ms;
    int64_t fdur_ms = max64((t->fdur_us + 500) / 1000, 1);
    int64_t m;

    *disc = false;
    /* Input beyond ±2^52 ms (142,000 years) is garbage; clamping keeps every
     * sum below well inside int64 (the output never moves by more than the
     * jump threshold per frame). */
    if (in > MAX_INPUT_MS)
        in = MAX_INPUT_MS;
    else if (in < -MAX_INPUT_MS)
        in = -MAX_INPUT_MS;
    if (!t->have) {
        if (!u->have) {
            t->off_ms = s->cfg.start_time_us / 1000 - in;
        } else {
            /* Same offset as the other track keeps A/V sync, unless the two
             * started implausibly far apart. */
            int64_t head = u->last_out_ms + max64((u->fdur_us + 500) / 1000, 1);
            t->off_ms = u->off_ms;
            m = in + t->off_ms;
            if (m > head + thr || m < head - thr) {
                log_warn("cmaf_segmenter: %s starts %lld ms away from the other track; aligning",
                         kind_name(k), (long long)(m - head));
                t->off_ms = head - in;
            }
        }
        t->rebase_seen = s->rebase_serial;
        t->have = true;
        m = in + t->off_ms;
        t->last_out_ms = m;
        return m;
    }
    m = in + t->off_ms;
    int64_t exp = t->last_out_ms + fdur_ms;
    bool rebase = false;
    if (m <= t->last_out_ms) {
        if (t->last_out_ms - m <= max64(fdur_ms, MIN_JITTER_MS))
            m = t->last_out_ms + 1;   /* jitter: keep order, no discontinuity */
        else
            rebase = true;
    } else if (m - exp > thr) {
        rebase = true;
    }
    if (rebase) {
        bool adopted = false;
        if (u->have && u->rebase_seen == s->rebase_serial && t->rebase_seen != s->rebase_serial) {
            /* The other track just jumped: take its offset if it fits us too. */
            int64_t cand = in + u->off_ms;
            if (cand > t->last_out_ms && cand - exp <= thr) {
                t->off_ms = u->off_ms;
                m = cand;
                adopted = true;
            }
        }
        if (!adopted) {
            log_warn("cmaf_segmenter: %s timestamp jump %lld ms (in=%lld); re-based, discontinuity",
                     kind_name(k), (long long)(m - exp), (long long)in);
            t->off_ms = exp - in;
            m = exp;
            s->rebase_serial++;
            *disc = true;
        }
        t->rebase_seen = s->rebase_serial;
        t->fr_n = 0;
    } else if (k == V) {
        int64_t d = (m - t->last_out_ms) * 1000;
        if (d > 0 && d <= 250000)
            t->fdur_us = (t->fdur_us * 7 + d + 4) / 8;
    }
    t->last_out_ms = m;
    return m;
}

int cmaf_segmenter_frame(struct cmaf_segmenter *s, const struct media_frame *f)
{
    if (!f || (f->kind != V && f->kind != A))
        return -EINVAL;
    s->stats.frames_in++;
    struct track *t = &s->tr[f->kind];
    if (!t->configured || !f->data || f->len == 0 || f->len > s->max_queue) {
        s->stats.frames_dropped++;
        return 0;
    }
    bool disc;
    int64_t m = normalize(s, f->kind, f->dts_ms, &disc);

    struct qframe *q = malloc(sizeof(*q) + f->len);
    if (!q)
        return -ENOMEM;
    memset(q, 0, sizeof(*q));
    q->len = f->len;
    memcpy(q->data, f->data, f->len);
    q->key = f->kind == A ? true : f->keyframe;
    q->disc = disc;
    q->wall_us = now_wall(s);
    if (f->kind == V) {
        /* pts >= dts (trun v0, no edit lists); a negative offset becomes 0 */
        int64_t cts = f->cts_ms < 0 ? 0 : f->cts_ms > MAX_CTS_MS ? MAX_CTS_MS : f->cts_ms;
        q->dts = m * (CMAF_MUXER_VIDEO_TIMESCALE / 1000);
        q->pts = q->dts + cts * (CMAF_MUXER_VIDEO_TIMESCALE / 1000);
    } else {
        /* AAC: frames follow each other by frame length; re-anchor on the
         * input time when it drifts more than half a frame away. */
        int64_t cand = (m * (int64_t)t->timescale + 500) / 1000;
        int64_t ts = cand;
        if (t->clock_valid && !disc && llabs(cand - t->next_ts) <= t->frame_ts / 2)
            ts = t->next_ts;
        if (t->clock_valid && ts <= t->last_ts)
            ts = t->last_ts + 1;
        t->clock_valid = true;
        t->last_ts = ts;
        t->next_ts = ts + t->frame_ts;
        q->dts = q->pts = ts;
    }
    q->t_us = ts_to_us(t, q->dts);

    if (t->tail) {
        t->tail->dur = q->dts - t->tail->dts;   /* > 0: dts strictly increases */
        t->tail->next = q;
    } else {
        t->head = q;
    }
    t->tail = q;
    t->has_newest = true;
    t->newest_t_us = q->t_us;
    s->queued_bytes += q->len;

    if (!s->running)
        return maybe_start(s);   /* over the ceiling, it starts with what it has */
    int rc = pump(s, false);
    if (rc < 0)
        return rc;
    return early_cut(s);
}

int cmaf_segmenter_flush(struct cmaf_segmenter *s)
{
    if (!s->running) {
        /* Never started (e.g. waiting for a second config): start with what
         * there is, so a short stream still produces output. */
        if ((s->tr[V].configured || s->tr[A].configured) && (s->tr[V].head || s->tr[A].head)) {
            int rc = start_muxer(s);
            if (rc < 0)
                return rc;
        } else {
            return 0;
        }
    }
    int rc = drain_and_close(s);
    if (rc < 0)
        return rc;
    s->disc_pending = true;
    return 0;
}
