/* test_cmaf_segmenter.c — the CMAF segmenter on real media (ffmpeg-made FLV
 * and MP4), checked three ways: the sink's numbers (msn / part_index /
 * durations / flags), the fragments' own boxes (tfdt continuity, sync sample
 * first), and ffmpeg/ffprobe decoding what was produced (SPEC PKG-1..3,
 * ING-8, ING-9). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavformat/avformat.h>
#include <libavutil/log.h>

#include "packager/cmaf_muxer.h"
#include "packager/cmaf_segmenter.h"
#include "tests/unit/cmaf_test_media.h"

static char g_dir[64];
static int g_av_warnings;

static void av_log_counter(void *avcl, int level, const char *fmt, va_list vl)
{
    (void)avcl;
    if (level <= AV_LOG_WARNING) {
        char line[512];
        vsnprintf(line, sizeof(line), fmt, vl);
        fprintf(stderr, "libav: %s", line);
        g_av_warnings++;
    }
}

/* ---- collecting sink ---------------------------------------------------- */

struct c_init {
    uint8_t *data;
    size_t len;
    bool disc;
    int ntracks;
    struct cmaf_track_info tracks[2];
    size_t parts_before;
};

struct c_part {
    struct cmaf_part p;
    uint8_t *data;
    size_t init;   /* index of the init it belongs to */
    int64_t fed_ms;   /* input timestamp being fed when it was published */
};

static int64_t g_feed_ms;   /* set by the feeders before each frame */

struct collector {
    struct c_init inits[16];
    size_t ninit;
    struct c_part *parts;
    size_t nparts, cap;
    struct cmaf_segment segs[4096];
    size_t nsegs;
};

static void col_on_init(void *ctx, const struct cmaf_init *in)
{
    struct collector *c = ctx;
    assert_true(c->ninit < 16);
    struct c_init *i = &c->inits[c->ninit++];
    i->data = malloc(in->len);
    assert_non_null(i->data);
    memcpy(i->data, in->data, in->len);
    i->len = in->len;
    i->disc = in->discontinuity;
    i->ntracks = in->ntracks;
    assert_true(in->ntracks >= 1 && in->ntracks <= 2);
    memcpy(i->tracks, in->tracks, sizeof(*in->tracks) * (size_t)in->ntracks);
    i->parts_before = c->nparts;
}

static void col_on_part(void *ctx, const struct cmaf_part *p)
{
    struct collector *c = ctx;
    assert_true(c->ninit > 0);   /* an init precedes every part */
    if (c->nparts == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->parts = realloc(c->parts, c->cap * sizeof(*c->parts));
        assert_non_null(c->parts);
    }
    struct c_part *cp = &c->parts[c->nparts++];
    cp->p = *p;
    cp->data = malloc(p->len);
    assert_non_null(cp->data);
    memcpy(cp->data, p->data, p->len);
    cp->p.data = cp->data;
    cp->init = c->ninit - 1;
    cp->fed_ms = g_feed_ms;
}

static void col_on_segment(void *ctx, const struct cmaf_segment *g)
{
    struct collector *c = ctx;
    assert_true(c->nsegs < 4096);
    c->segs[c->nsegs++] = *g;
}

static void col_free(struct collector *c)
{
    for (size_t i = 0; i < c->ninit; i++)
        free(c->inits[i].data);
    for (size_t i = 0; i < c->nparts; i++)
        free(c->parts[i].data);
    free(c->parts);
    memset(c, 0, sizeof(*c));
}

static struct cmaf_sink col_sink(struct collector *c)
{
    struct cmaf_sink s = { c, col_on_init, col_on_part, col_on_segment };
    return s;
}

/* Fake wall clock that follows the media being fed (set by the feeder). */
static long long g_wall_us;
static long long fake_wall(void *ctx) { (void)ctx; return g_wall_us; }
static long long fake_mono(void *ctx) { (void)ctx; return g_wall_us; }

static struct cmaf_segmenter *new_seg_cfg(struct collector *c, struct cmaf_segmenter_config *cfg)
{
    cfg->now_wall_us = fake_wall;
    cfg->now_mono_us = fake_mono;
    struct cmaf_sink sink = col_sink(c);
    char err[128];
    struct cmaf_segmenter *s = cmaf_segmenter_new(cfg, &sink, err, sizeof(err));
    assert_non_null(s);
    return s;
}

static struct cmaf_segmenter *new_seg(struct collector *c, uint32_t seg_ms, uint32_t part_ms,
                                      uint64_t first_msn)
{
    struct cmaf_segmenter_config cfg;
    cmaf_segmenter_config_defaults(&cfg);
    cfg.segment_target_ms = seg_ms;
    cfg.part_target_ms = part_ms;
    cfg.first_msn = first_msn;
    cfg.now_wall_us = fake_wall;
    cfg.now_mono_us = fake_mono;
    struct cmaf_sink sink = col_sink(c);
    char err[128];
    struct cmaf_segmenter *s = cmaf_segmenter_new(&cfg, &sink, err, sizeof(err));
    assert_non_null(s);
    return s;
}

/* ---- feeding ------------------------------------------------------------- */

/* Timestamp rewrite for a fed tag: returns false to skip the tag. */
typedef bool (*ts_fn)(const struct cmaf_test_tag *t, size_t idx, int64_t *ts, void *ctx);

static void feed_flv(struct cmaf_segmenter *s, const struct cmaf_test_flv *flv, int w, int h,
                     ts_fn fn, void *ctx)
{
    for (size_t i = 0; i < flv->ntags; i++) {
        const struct cmaf_test_tag *t = &flv->tags[i];
        if (t->config) {
            struct media_codec_config c = cmaf_test_config(t, w, h);
            assert_int_equal(cmaf_segmenter_config(s, &c), 0);
            continue;
        }
        struct media_frame f = cmaf_test_frame(t);
        if (fn && !fn(t, i, &f.dts_ms, ctx))
            continue;
        g_wall_us = 1700000000000000LL + f.dts_ms * 1000;
        g_feed_ms = t->ts;
        assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
    }
}

static void load_flv(const char *name, struct cmaf_test_flv *flv)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    assert_int_equal(cmaf_test_flv_load(path, flv), 0);
    assert_true(flv->ntags > 10);
}

/* ---- checks ------------------------------------------------------------- */

struct expect {
    uint32_t seg_ms, part_ms;
    uint64_t first_msn;
    bool video;            /* segments must start with a video sync sample */
    bool gaps;             /* the input has gaps: tfdt may move ahead */
    int audio_rate;        /* nonzero: each A/V part holds the audio of its time range */
};

/* CMAF_TEST_VERBOSE=1 prints what the sink received. */
static void dump(const struct collector *c)
{
    if (!getenv("CMAF_TEST_VERBOSE"))
        return;
    size_t g = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        const struct cmaf_part *p = &c->parts[i].p;
        fprintf(stderr, "  part init=%zu msn=%llu idx=%u start=%lld dur=%lld ind=%d disc=%d len=%zu\n",
                c->parts[i].init, (unsigned long long)p->msn, p->part_index, (long long)p->start_us,
                (long long)p->duration_us, p->independent, p->discontinuity, p->len);
        if (g < c->nsegs && (i + 1 == c->nparts || c->parts[i + 1].p.msn != p->msn)) {
            const struct cmaf_segment *s = &c->segs[g++];
            fprintf(stderr, "segment msn=%llu start=%lld dur=%lld nparts=%u disc=%d\n",
                    (unsigned long long)s->msn, (long long)s->start_us, (long long)s->duration_us,
                    s->nparts, s->discontinuity);
        }
    }
}

/* The sink-level contract: numbering, contiguity, sizes, flags. */
static void check_numbers(const struct collector *c, const struct expect *e)
{
    dump(c);
    assert_true(c->nparts > 0);
    assert_true(c->nsegs > 0);
    size_t pi = 0;
    for (size_t g = 0; g < c->nsegs; g++) {
        const struct cmaf_segment *seg = &c->segs[g];
        assert_int_equal(seg->msn, e->first_msn + g);
        assert_true(seg->duration_us > 0);
        assert_true(seg->nparts >= 1);
        if (e->part_ms == 0)
            assert_int_equal(seg->nparts, 1);
        size_t bytes = 0;
        int64_t t = seg->start_us, dsum = 0;
        for (uint32_t k = 0; k < seg->nparts; k++, pi++) {
            assert_true(pi < c->nparts);
            const struct cmaf_part *p = &c->parts[pi].p;
            assert_int_equal(p->msn, seg->msn);
            assert_int_equal(p->part_index, k);
            assert_int_equal(p->start_us, t);   /* parts are contiguous */
            assert_true(p->duration_us > 0);
            if (e->part_ms)
                assert_true(p->duration_us <= (int64_t)e->part_ms * 1000);
            assert_int_equal(p->discontinuity, k == 0 && seg->discontinuity);
            if (k == 0) {
                assert_true(p->independent);
                assert_int_equal(p->wall_us, seg->wall_us);
            }
            if (!e->video)
                assert_true(p->independent);
            t += p->duration_us;
            dsum += p->duration_us;
            bytes += p->len;
        }
        assert_int_equal(dsum, seg->duration_us);
        assert_int_equal(bytes, seg->bytes);
        assert_true(seg->bitrate_bps > 0);
        assert_int_equal(seg->bitrate_bps,
                         (uint64_t)((double)seg->bytes * 8.0 * 1e6 / (double)seg->duration_us));
        /* Only the last segment and one closed by a new init may end early. */
        if (g + 1 < c->nsegs && !c->segs[g + 1].discontinuity) {
            assert_int_equal(c->segs[g + 1].start_us, seg->start_us + seg->duration_us);
            assert_true(seg->duration_us >= (int64_t)e->seg_ms * 1000 - 40000);
        }
    }
    assert_int_equal(pi, c->nparts);   /* every part belongs to a closed segment */
}

/* Box-level: fragments' tfdt continuity per track, sync sample first. */
static void check_boxes(const struct collector *c, const struct expect *e)
{
    if (e->part_ms == 0 && e->seg_ms == 0)
        dump(c);
    struct cmaf_test_trex trex[4];
    uint64_t expect_tfdt[8] = { 0 };
    bool have[8] = { false };
    size_t cur_init = (size_t)-1;
    int ntrex = 0;
    uint32_t last_seq = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        const struct c_part *cp = &c->parts[i];
        if (cp->init != cur_init) {
            cur_init = cp->init;
            ntrex = cmaf_test_parse_trex(c->inits[cur_init].data, c->inits[cur_init].len, trex, 4);
            assert_true(ntrex >= 1);
            memset(have, 0, sizeof(have));
        }
        struct cmaf_test_moof m;
        assert_int_equal(cmaf_test_parse_moof(cp->data, cp->p.len, trex, ntrex, &m), 0);
        assert_true(m.seq > last_seq);   /* mfhd sequence numbers increase */
        last_seq = m.seq;
        assert_true(m.ntraf >= 1);
        for (int k = 0; k < m.ntraf; k++) {
            const struct cmaf_test_traf *tf = &m.traf[k];
            uint32_t id = tf->track_id;
            assert_true(id >= 1 && id < 8);
            assert_true(tf->nsamples > 0);
            if (have[id] && !cp->p.discontinuity && !e->gaps && tf->tfdt != expect_tfdt[id])
                fprintf(stderr, "part %zu track %u: tfdt %llu, expected %llu\n", i, id,
                        (unsigned long long)tf->tfdt, (unsigned long long)expect_tfdt[id]);
            if (have[id] && !cp->p.discontinuity && !e->gaps)
                assert_int_equal(tf->tfdt, expect_tfdt[id]);
            if (have[id] && e->gaps)
                assert_true(tf->tfdt >= expect_tfdt[id]);
            if (getenv("CMAF_TEST_VERBOSE"))
                fprintf(stderr, "  part %zu seq %u track %u tfdt %llu n %u dur %llu sync %d\n", i, m.seq,
                        id, (unsigned long long)tf->tfdt, tf->nsamples,
                        (unsigned long long)tf->duration, tf->first_is_sync);
            have[id] = true;
            expect_tfdt[id] = tf->tfdt + tf->duration;
        }
        /* Interleaving: the audio in a part covers the part's time range, to
         * within one AAC frame (its samples start at or after the boundary). */
        if (e->audio_rate && m.ntraf == 2) {
            int64_t a0 = (int64_t)m.traf[1].tfdt * 1000000 / e->audio_rate;
            int64_t a1 = (int64_t)(m.traf[1].tfdt + m.traf[1].duration) * 1000000 / e->audio_rate;
            int64_t frame = 1024LL * 1000000 / e->audio_rate + 1000;
            int64_t end = cp->p.start_us + cp->p.duration_us;
            if (i > 0 && !(a0 >= cp->p.start_us - 1000 && a0 < cp->p.start_us + frame))
                fprintf(stderr, "part %zu: audio starts at %lld, part at %lld\n", i, (long long)a0,
                        (long long)cp->p.start_us);
            /* (the source's audio starts 44 ms after its video) */
            if (i > 0)
                assert_true(a0 >= cp->p.start_us - 1000 && a0 < cp->p.start_us + frame);
            if (i + 1 < c->nparts)
                assert_true(a1 > end - frame && a1 < end + frame);
        }
        /* Track 1 is video when the init has video: its tfdt is the part's start. */
        const struct c_init *in = &c->inits[cp->init];
        if (e->video && in->tracks[0].kind == MEDIA_KIND_VIDEO) {
            assert_int_equal(m.traf[0].track_id, 1);
            assert_int_equal((int64_t)m.traf[0].tfdt * 1000 / 90, cp->p.start_us);
            if (cp->p.independent)
                assert_true(m.traf[0].first_is_sync);
            if (cp->p.part_index == 0)
                assert_true(m.traf[0].first_is_sync);
        }
    }
}

/* Writes init[k] + its parts to a file; returns the path in out. */
static void write_output(const struct collector *c, size_t init, const char *name, char *out,
                         size_t outlen)
{
    snprintf(out, outlen, "%s/%s", g_dir, name);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(c->inits[init].data, 1, c->inits[init].len, f), c->inits[init].len);
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i].init == init)
            assert_int_equal(fwrite(c->parts[i].data, 1, c->parts[i].p.len, f), c->parts[i].p.len);
    fclose(f);
}

/* ffmpeg decodes the whole file without a single error line. */
static void check_decodes(const char *path)
{
    char errp[160];
    snprintf(errp, sizeof(errp), "%s.err", path);
    assert_int_equal(cmaf_test_sh("ffmpeg -nostdin -v error -i '%s' -f null - 2>'%s'", path, errp), 0);
    uint8_t *err = NULL;
    size_t n = 0;
    assert_int_equal(cmaf_test_read_file(errp, &err, &n), 0);
    if (n)
        fprintf(stderr, "ffmpeg: %.*s\n", (int)n, (const char *)err);
    assert_int_equal(n, 0);
    free(err);
}

struct pkt {
    int64_t pts, dts;
    bool key;
};

/* ffprobe's packets of one stream ("v" / "a"), in file order. */
static size_t probe_packets(const char *path, const char *sel, struct pkt *out, size_t max)
{
    char csv[160];
    snprintf(csv, sizeof(csv), "%s.%s.csv", path, sel);
    assert_int_equal(cmaf_test_sh("ffprobe -v error -select_streams %s -show_entries "
                                  "packet=pts,dts,flags -of csv=p=0 '%s' >'%s'",
                                  sel, path, csv), 0);
    FILE *f = fopen(csv, "r");
    assert_non_null(f);
    char line[128];
    size_t n = 0;
    while (fgets(line, sizeof(line), f) && n < max) {
        long long pts, dts;
        char flags[16] = "";
        if (sscanf(line, "%lld,%lld,%15s", &pts, &dts, flags) >= 2) {
            out[n].pts = pts;
            out[n].dts = dts;
            out[n].key = flags[0] == 'K';
            n++;
        }
    }
    fclose(f);
    return n;
}

static int probe_width(const char *path)
{
    char out[160];
    snprintf(out, sizeof(out), "%s.w", path);
    assert_int_equal(cmaf_test_sh("ffprobe -v error -select_streams v -show_entries stream=width "
                                  "-of csv=p=0 '%s' >'%s'", path, out), 0);
    uint8_t *b = NULL;
    size_t n = 0;
    assert_int_equal(cmaf_test_read_file(out, &b, &n), 0);
    b[n] = 0;
    int w = atoi((char *)b);
    free(b);
    return w;
}

/* ---- fixtures ----------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/cmaf_seg_XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    av_log_set_callback(av_log_counter);
    const char *x264 = "-c:v libx264 -preset veryfast -pix_fmt yuv420p -bf 2 -g 60 -keyint_min 60 "
                       "-sc_threshold 0";
    if (cmaf_test_sh("ffmpeg -nostdin -v error -f lavfi -i testsrc=size=320x240:rate=30 "
                     "-f lavfi -i sine=frequency=440:sample_rate=44100 -t 6.5 %s "
                     "-c:a aac -b:a 64k -ac 2 -f flv %s/av.flv", x264, g_dir) != 0 ||
        cmaf_test_sh("ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=480x270:rate=30 "
                     "-f lavfi -i sine=frequency=660:sample_rate=44100 -t 4.5 %s "
                     "-c:a aac -b:a 64k -ac 2 -f flv %s/av2.flv", x264, g_dir) != 0 ||
        cmaf_test_sh("ffmpeg -nostdin -v error -f lavfi -i sine=frequency=440:sample_rate=48000 "
                     "-t 5 -c:a aac -b:a 96k -f flv %s/a.flv", g_dir) != 0 ||
        cmaf_test_sh("ffmpeg -nostdin -v error -f lavfi -i testsrc=size=320x240:rate=25 -t 5 %s "
                     "-f flv %s/v.flv", x264, g_dir) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_dir[0])
        cmaf_test_sh("rm -rf '%s'", g_dir);
    return 0;
}

/* ---- tests: real media ------------------------------------------------- */

static const struct {
    const char *name;
    uint32_t seg_ms, part_ms;
    uint64_t first_msn;
} av_cases[] = {
    { "ll-hls defaults", 2000, 500, 0 },
    { "no parts", 2000, 0, 7 },
    { "4 s segments, 200 ms parts", 4000, 200, 1000 },
};

static void test_h264_aac_flv_is_cut_at_keyframes_and_decodes(void **state)
{
    (void)state;
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    for (size_t ci = 0; ci < sizeof(av_cases) / sizeof(av_cases[0]); ci++) {
        struct collector c = { 0 };
        struct expect e = { av_cases[ci].seg_ms, av_cases[ci].part_ms, av_cases[ci].first_msn, true,
                            false, 44100 };
        struct cmaf_segmenter *s = new_seg(&c, e.seg_ms, e.part_ms, e.first_msn);
        g_av_warnings = 0;
        feed_flv(s, &flv, 320, 240, NULL, NULL);
        assert_int_equal(cmaf_segmenter_flush(s), 0);
        assert_int_equal(g_av_warnings, 0);

        assert_int_equal(c.ninit, 1);
        assert_false(c.inits[0].disc);
        assert_int_equal(c.inits[0].ntracks, 2);
        assert_int_equal(c.inits[0].tracks[0].kind, MEDIA_KIND_VIDEO);
        assert_int_equal(c.inits[0].tracks[0].width, 320);
        assert_string_equal(c.inits[0].tracks[0].codec_string, "avc1.64001f");
        assert_true(fabs(c.inits[0].tracks[0].frame_rate - 30.0) < 0.01);
        assert_int_equal(c.inits[0].tracks[1].kind, MEDIA_KIND_AUDIO);
        assert_int_equal(c.inits[0].tracks[1].sample_rate, 44100);
        assert_int_equal(c.inits[0].tracks[1].channels, 2);
        check_numbers(&c, &e);
        check_boxes(&c, &e);
        for (size_t g = 0; g < c.nsegs; g++)
            assert_false(c.segs[g].discontinuity);
        /* PROGRAM-DATE-TIME: arrival of the first frame + media time (the
         * fake clock reads input time). */
        for (size_t i = 0; i < c.nparts; i++)
            assert_int_equal(c.parts[i].p.wall_us, 1700000000000000LL + c.parts[i].p.start_us);
        /* 6.5 s with a keyframe every 2 s. */
        if (e.seg_ms == 2000) {
            assert_int_equal(c.nsegs, 4);
            for (size_t g = 0; g < 3; g++)
                assert_int_equal(c.segs[g].duration_us, 2000000);
        }
        assert_int_equal(cmaf_segmenter_next_msn(s), e.first_msn + c.nsegs);
        int64_t total = c.segs[c.nsegs - 1].start_us + c.segs[c.nsegs - 1].duration_us -
                        c.segs[0].start_us;
        assert_true(llabs(total - 6500000) <= 34000);

        char path[128];
        write_output(&c, 0, "av_out.mp4", path, sizeof(path));
        check_decodes(path);

        /* B-frames: every video packet keeps its pts and dts (ffprobe in
         * 1/90000), shifted by one constant: the normalization offset. */
        static struct pkt vp[1024];
        size_t nv = probe_packets(path, "v", vp, 1024);
        size_t fi = 0, n = 0;
        int64_t shift = 0;
        for (size_t i = 0; i < flv.ntags; i++) {
            const struct cmaf_test_tag *t = &flv.tags[i];
            if (t->kind != MEDIA_KIND_VIDEO || t->config)
                continue;
            assert_true(fi < nv);
            if (n == 0)
                shift = vp[fi].dts - t->ts * 90;
            assert_int_equal(vp[fi].dts, t->ts * 90 + shift);
            assert_int_equal(vp[fi].pts, (t->ts + t->cts) * 90 + shift);
            assert_int_equal(vp[fi].key, t->key);
            fi++;
            n++;
        }
        assert_int_equal(n, nv);

        /* A/V sync: each audio packet keeps its distance to the video (within
         * the 1 ms rounding of FLV timestamps). */
        static struct pkt ap[1024];
        size_t na = probe_packets(path, "a", ap, 1024);
        assert_true(na > 200);
        size_t ai = 0;
        for (size_t i = 0; i < flv.ntags && ai < na; i++) {
            const struct cmaf_test_tag *t = &flv.tags[i];
            if (t->kind != MEDIA_KIND_AUDIO || t->config)
                continue;
            double out_ms = (double)ap[ai].pts * 1000.0 / 44100.0;
            double in_ms = (double)t->ts + (double)shift / 90.0;
            if (ai == 0 && fabs(out_ms - in_ms) > 1.0)
                continue;   /* dropped before the first keyframe */
            assert_true(fabs(out_ms - in_ms) <= 1.0);
            ai++;
        }
        assert_int_equal(ai, na);

        cmaf_segmenter_free(s);
        col_free(&c);
    }
    cmaf_test_flv_free(&flv);
}

static void test_audio_only_and_video_only_streams(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        bool video;
        int ntracks;
        int64_t last_frame_us;   /* duration of the last frame */
    } cases[] = {
        { "a.flv", false, 1, 21333 },
        { "v.flv", true, 1, 40000 },
    };
    for (size_t ci = 0; ci < 2; ci++) {
        struct cmaf_test_flv flv;
        load_flv(cases[ci].file, &flv);
        struct collector c = { 0 };
        struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = cases[ci].video, .gaps = false };
        struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
        g_av_warnings = 0;
        feed_flv(s, &flv, 320, 240, NULL, NULL);
        assert_int_equal(cmaf_segmenter_flush(s), 0);
        assert_int_equal(g_av_warnings, 0);
        assert_int_equal(c.ninit, 1);
        assert_int_equal(c.inits[0].ntracks, cases[ci].ntracks);
        assert_int_equal(c.inits[0].tracks[0].kind,
                         cases[ci].video ? MEDIA_KIND_VIDEO : MEDIA_KIND_AUDIO);
        if (cases[ci].video)
            assert_true(fabs(c.inits[0].tracks[0].frame_rate - 25.0) < 0.01);
        else
            assert_int_equal(c.inits[0].tracks[0].sample_rate, 48000);
        check_numbers(&c, &e);
        check_boxes(&c, &e);
        int64_t total = 0, first = -1, last = 0;
        for (size_t g = 0; g < c.nsegs; g++)
            total += c.segs[g].duration_us;
        for (size_t i = 0; i < flv.ntags; i++) {
            if (flv.tags[i].config)
                continue;
            if (first < 0)
                first = flv.tags[i].ts;
            last = flv.tags[i].ts;
        }
        /* the whole input, to the millisecond rounding of FLV timestamps */
        assert_true(llabs(total - ((last - first) * 1000 + cases[ci].last_frame_us)) <= 1000);
        char path[128];
        write_output(&c, 0, "single_out.mp4", path, sizeof(path));
        check_decodes(path);
        cmaf_segmenter_free(s);
        col_free(&c);
        cmaf_test_flv_free(&flv);
    }
}

/* ---- tests: timestamps (ING-8) ----------------------------------------- */

struct jump {
    size_t at_video;     /* index of the video frame from which the change applies */
    int64_t add_ms;      /* added to every timestamp from there on (both tracks) */
    bool audio_follows;  /* audio changes at the same media time */
    int64_t wrap;        /* nonzero: timestamps are taken modulo this (no unwrap) */
    int64_t base;        /* added to everything */
};

struct jump_ctx {
    const struct jump *j;
    size_t nvideo;
    int64_t cut_ts;      /* source time where the change happened */
};

static bool jump_ts(const struct cmaf_test_tag *t, size_t idx, int64_t *ts, void *vctx)
{
    (void)idx;
    struct jump_ctx *c = vctx;
    int64_t v = *ts;
    if (t->kind == MEDIA_KIND_VIDEO) {
        if (c->nvideo == c->j->at_video)
            c->cut_ts = t->ts;
        c->nvideo++;
    }
    bool after = c->cut_ts >= 0 && (t->kind == MEDIA_KIND_VIDEO ? c->nvideo > c->j->at_video
                                                                : c->j->audio_follows && t->ts >= c->cut_ts);
    v += c->j->base;
    if (after)
        v += c->j->add_ms;
    if (c->j->wrap)
        v = ((v % c->j->wrap) + c->j->wrap) % c->j->wrap;
    *ts = v;
    return true;
}

static void test_timestamp_jumps_become_discontinuities_without_bogus_durations(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        struct jump j;
        int discs;         /* discontinuity segments expected */
    } cases[] = {
        { "forward 60 s at a keyframe", { 60, 60000, true, 0, 0 }, 1 },
        { "forward 60 s mid-GOP", { 75, 60000, true, 0, 0 }, 1 },
        { "encoder restart (back to ~0)", { 90, -3000, true, 0, 0 }, 1 },
        { "32-bit wrap not unwrapped", { 0, 0, true, 4294967296LL, 4294967296LL - 2500 }, 1 },
        { "forward 2 s gap (below threshold)", { 60, 2000, true, 0, 0 }, 0 },
        { "video alone jumps 30 s", { 60, 30000, false, 0, 0 }, 1 },
    };
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        struct collector c = { 0 };
        struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = true, .gaps = false };
        struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
        struct jump_ctx jc = { &cases[ci].j, 0, -1 };
        g_av_warnings = 0;
        feed_flv(s, &flv, 320, 240, jump_ts, &jc);
        assert_int_equal(cmaf_segmenter_flush(s), 0);
        assert_int_equal(g_av_warnings, 0);
        int discs = 0;
        for (size_t g = 0; g < c.nsegs; g++) {
            discs += c.segs[g].discontinuity;
            /* Never a bogus duration: at most one GOP (+ the gap case). */
            assert_true(c.segs[g].duration_us > 0);
            assert_true(c.segs[g].duration_us <= 4100000);
        }
        for (size_t i = 0; i < c.nparts; i++)
            assert_true(c.parts[i].p.duration_us <= (cases[ci].discs ? 500000 : 2100000));
        if (discs != cases[ci].discs)
            fprintf(stderr, "case '%s': %d discontinuities\n", cases[ci].name, discs);
        assert_int_equal(discs, cases[ci].discs);
        if (cases[ci].discs == 0) {
            /* the 2 s gap: one video frame longer than a part, audio pauses */
            e.part_ms = 0;
            e.gaps = true;
        } else {
            check_numbers(&c, &e);
        }
        check_boxes(&c, &e);
        /* The output timeline stays continuous: segments follow each other. */
        for (size_t g = 1; g < c.nsegs; g++)
            assert_int_equal(c.segs[g].start_us, c.segs[g - 1].start_us + c.segs[g - 1].duration_us);
        char path[128];
        write_output(&c, 0, "jump_out.mp4", path, sizeof(path));
        check_decodes(path);
        cmaf_segmenter_free(s);
        col_free(&c);
    }
    cmaf_test_flv_free(&flv);
}

static void test_small_jitter_is_not_a_discontinuity(void **state)
{
    (void)state;
    /* Synthetic: AAC-LC 44.1 kHz stereo config, frames with timestamps that
     * step back by a few ms now and then. */
    static const uint8_t asc[] = { 0x12, 0x10 };
    static const uint8_t payload[] = { 0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c };
    struct collector c = { 0 };
    struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
    struct media_codec_config ac = { .kind = MEDIA_KIND_AUDIO, .codec = MEDIA_CODEC_AAC,
                                     .extradata = asc, .extradata_len = sizeof(asc),
                                     .codec_string = "mp4a.40.2", .sample_rate = 44100,
                                     .channels = 2 };
    assert_int_equal(cmaf_segmenter_config(s, &ac), 0);
    for (int i = 0; i < 400; i++) {
        int64_t ts = (int64_t)llround(i * 1024000.0 / 44100.0);
        if (i % 17 == 5)
            ts -= 30;   /* a step back, less than a frame behind the previous */
        struct media_frame f = { .kind = MEDIA_KIND_AUDIO, .dts_ms = ts, .keyframe = true,
                                 .data = payload, .len = sizeof(payload) };
        assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
    }
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = false, .gaps = false };
    check_numbers(&c, &e);
    check_boxes(&c, &e);
    for (size_t g = 0; g < c.nsegs; g++)
        assert_false(c.segs[g].discontinuity);
    cmaf_segmenter_free(s);
    col_free(&c);
}

/* ---- tests: configs (ING-9) -------------------------------------------- */

static void test_resolution_change_makes_new_init_and_both_halves_decode(void **state)
{
    (void)state;
    struct cmaf_test_flv a, b;
    load_flv("av.flv", &a);
    load_flv("av2.flv", &b);
    struct collector c = { 0 };
    struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 3);
    g_av_warnings = 0;
    feed_flv(s, &a, 320, 240, NULL, NULL);
    struct jump j = { 0, 0, true, 0, 6500 };   /* b continues where a ends */
    struct jump_ctx jc = { &j, 0, -1 };
    feed_flv(s, &b, 480, 270, jump_ts, &jc);
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    assert_int_equal(g_av_warnings, 0);

    assert_int_equal(c.ninit, 2);
    assert_false(c.inits[0].disc);
    assert_true(c.inits[1].disc);
    assert_int_equal(c.inits[1].tracks[0].width, 480);
    /* The first segment after the new init is a discontinuity, no other. */
    size_t first_new = c.parts[c.inits[1].parts_before].p.msn - 3;
    for (size_t g = 0; g < c.nsegs; g++)
        assert_int_equal(c.segs[g].discontinuity, g == first_new);
    struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 3, .video = true, .gaps = false };
    check_numbers(&c, &e);
    check_boxes(&c, &e);
    char p1[128], p2[128];
    write_output(&c, 0, "res1.mp4", p1, sizeof(p1));
    write_output(&c, 1, "res2.mp4", p2, sizeof(p2));
    check_decodes(p1);
    check_decodes(p2);
    assert_int_equal(probe_width(p1), 320);
    assert_int_equal(probe_width(p2), 480);
    cmaf_segmenter_free(s);
    col_free(&c);
    cmaf_test_flv_free(&a);
    cmaf_test_flv_free(&b);
}

/* The audio config arrives a little after the video frames start: one
 * init with both tracks, not a video-only one followed by another. */
static bool delay_audio_cfg(const struct cmaf_test_tag *t, size_t idx, int64_t *ts, void *ctx)
{
    (void)idx;
    (void)ts;
    (void)ctx;
    return t->kind == MEDIA_KIND_VIDEO || t->ts >= 300;
}

static void test_first_init_waits_for_a_late_audio_config(void **state)
{
    (void)state;
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    struct collector c = { 0 };
    struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
    /* configs by hand: video now, audio once 300 ms of video went by */
    const struct cmaf_test_tag *acfg = NULL;
    bool audio_sent = false;
    for (size_t i = 0; i < flv.ntags; i++) {
        const struct cmaf_test_tag *t = &flv.tags[i];
        if (t->config) {
            if (t->kind == MEDIA_KIND_AUDIO) {
                acfg = t;
                continue;
            }
            struct media_codec_config vc = cmaf_test_config(t, 320, 240);
            assert_int_equal(cmaf_segmenter_config(s, &vc), 0);
            continue;
        }
        if (!delay_audio_cfg(t, i, NULL, NULL))
            continue;
        if (t->kind == MEDIA_KIND_AUDIO && !audio_sent) {
            struct media_codec_config ac = cmaf_test_config(acfg, 0, 0);
            assert_int_equal(cmaf_segmenter_config(s, &ac), 0);
            audio_sent = true;
        }
        struct media_frame f = cmaf_test_frame(t);
        assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
    }
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    assert_int_equal(c.ninit, 1);
    assert_int_equal(c.inits[0].ntracks, 2);
    struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = true, .gaps = false };
    check_numbers(&c, &e);
    check_boxes(&c, &e);
    cmaf_segmenter_free(s);
    col_free(&c);
    cmaf_test_flv_free(&flv);
}

/* Audio that shows up seconds into a video-only start: a second init with
 * both tracks, marked as a discontinuity; both outputs decode. */
static void test_track_appearing_later_makes_a_new_init(void **state)
{
    (void)state;
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    struct collector c = { 0 };
    struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
    const struct cmaf_test_tag *acfg = NULL;
    bool audio_sent = false;
    for (size_t i = 0; i < flv.ntags; i++) {
        const struct cmaf_test_tag *t = &flv.tags[i];
        if (t->config) {
            if (t->kind == MEDIA_KIND_AUDIO)
                acfg = t;
            else {
                struct media_codec_config vc = cmaf_test_config(t, 320, 240);
                assert_int_equal(cmaf_segmenter_config(s, &vc), 0);
            }
            continue;
        }
        if (t->kind == MEDIA_KIND_AUDIO && t->ts < 3000)
            continue;
        if (t->kind == MEDIA_KIND_AUDIO && !audio_sent) {
            struct media_codec_config ac = cmaf_test_config(acfg, 0, 0);
            assert_int_equal(cmaf_segmenter_config(s, &ac), 0);
            audio_sent = true;
        }
        struct media_frame f = cmaf_test_frame(t);
        assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
    }
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    assert_int_equal(c.ninit, 2);
    assert_int_equal(c.inits[0].ntracks, 1);
    assert_int_equal(c.inits[1].ntracks, 2);
    assert_true(c.inits[1].disc);
    struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = true, .gaps = false };
    check_numbers(&c, &e);
    check_boxes(&c, &e);
    char p1[128], p2[128];
    write_output(&c, 0, "late1.mp4", p1, sizeof(p1));
    write_output(&c, 1, "late2.mp4", p2, sizeof(p2));
    check_decodes(p1);
    check_decodes(p2);
    cmaf_segmenter_free(s);
    col_free(&c);
    cmaf_test_flv_free(&flv);
}

static void test_frames_before_first_keyframe_and_unconfigured_tracks_are_dropped(void **state)
{
    (void)state;
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    struct collector c = { 0 };
    struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
    /* Skip the first 10 video frames (the first keyframe among them) and
     * send everything else: the output starts at the 2 s keyframe. */
    size_t nv = 0;
    for (size_t i = 0; i < flv.ntags; i++) {
        const struct cmaf_test_tag *t = &flv.tags[i];
        if (t->config) {
            struct media_codec_config cfg = cmaf_test_config(t, 320, 240);
            assert_int_equal(cmaf_segmenter_config(s, &cfg), 0);
            continue;
        }
        if (t->kind == MEDIA_KIND_VIDEO && nv++ < 10)
            continue;
        struct media_frame f = cmaf_test_frame(t);
        assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
    }
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    struct cmaf_segmenter_stats st;
    cmaf_segmenter_get_stats(s, &st);
    assert_true(st.frames_dropped >= 50);   /* 50 video + ~86 audio frames before 2 s */
    assert_int_equal(c.nsegs, 3);
    struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = true, .gaps = false };
    check_numbers(&c, &e);
    check_boxes(&c, &e);
    cmaf_segmenter_free(s);
    col_free(&c);

    /* Frames of a kind nobody configured never reach the muxer. */
    struct collector c2 = { 0 };
    s = new_seg(&c2, 2000, 500, 0);
    uint8_t junk[16] = { 0 };
    struct media_frame f = { .kind = MEDIA_KIND_VIDEO, .dts_ms = 0, .keyframe = true,
                             .data = junk, .len = sizeof(junk) };
    assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    assert_int_equal(c2.nparts, 0);
    assert_int_equal(cmaf_segmenter_next_msn(s), 0);
    cmaf_segmenter_free(s);
    col_free(&c2);
    cmaf_test_flv_free(&flv);
}

static void test_bad_configs_are_refused(void **state)
{
    (void)state;
    struct collector c = { 0 };
    struct cmaf_sink sink = col_sink(&c);
    struct cmaf_segmenter_config cfg;
    char err[128] = "";
    static const struct {
        uint32_t seg, part;
        size_t max;
    } bad[] = { { 0, 0, 64u << 20 }, { 2000, 3000, 64u << 20 }, { 2000, 10, 64u << 20 },
                { 2000, 500, 1000 } };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cmaf_segmenter_config_defaults(&cfg);
        cfg.segment_target_ms = bad[i].seg;
        cfg.part_target_ms = bad[i].part;
        cfg.max_buffer = bad[i].max;
        err[0] = 0;
        assert_null(cmaf_segmenter_new(&cfg, &sink, err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
    cmaf_segmenter_config_defaults(&cfg);
    struct cmaf_segmenter *s = cmaf_segmenter_new(&cfg, &sink, err, sizeof(err));
    assert_non_null(s);
    static const uint8_t not_avcc[] = { 0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1f };
    static const uint8_t bad_asc[] = { 0xff };
    struct media_codec_config v = { .kind = MEDIA_KIND_VIDEO, .codec = MEDIA_CODEC_H264,
                                    .extradata = not_avcc, .extradata_len = sizeof(not_avcc) };
    struct media_codec_config a = { .kind = MEDIA_KIND_AUDIO, .codec = MEDIA_CODEC_AAC,
                                    .extradata = bad_asc, .extradata_len = sizeof(bad_asc) };
    struct media_codec_config none = { .kind = MEDIA_KIND_VIDEO, .codec = MEDIA_CODEC_NONE,
                                       .extradata = not_avcc, .extradata_len = sizeof(not_avcc) };
    assert_true(cmaf_segmenter_config(s, &v) < 0);
    assert_true(cmaf_segmenter_config(s, &a) < 0);
    assert_true(cmaf_segmenter_config(s, &none) < 0);
    cmaf_segmenter_free(s);
    col_free(&c);
}

/* ---- tests: HEVC and AV1 (from MP4 via libavformat) -------------------- */

static void feed_mp4(struct cmaf_segmenter *s, const char *path, enum media_codec codec,
                     const char *codec_string)
{
    AVFormatContext *ic = NULL;
    assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(ic, NULL) >= 0);
    assert_int_equal(ic->nb_streams, 1);
    AVStream *st = ic->streams[0];
    struct media_codec_config vc = { .kind = MEDIA_KIND_VIDEO, .codec = codec,
                                     .extradata = st->codecpar->extradata,
                                     .extradata_len = (size_t)st->codecpar->extradata_size,
                                     .width = st->codecpar->width, .height = st->codecpar->height };
    snprintf(vc.codec_string, sizeof(vc.codec_string), "%s", codec_string);
    assert_int_equal(cmaf_segmenter_config(s, &vc), 0);
    AVPacket *pkt = av_packet_alloc();
    while (av_read_frame(ic, pkt) >= 0) {
        int64_t dts = av_rescale_q(pkt->dts, st->time_base, (AVRational){ 1, 1000 });
        int64_t pts = av_rescale_q(pkt->pts, st->time_base, (AVRational){ 1, 1000 });
        struct media_frame f = { .kind = MEDIA_KIND_VIDEO, .dts_ms = dts,
                                 .cts_ms = (int32_t)(pts - dts),
                                 .keyframe = (pkt->flags & AV_PKT_FLAG_KEY) != 0,
                                 .data = pkt->data, .len = (size_t)pkt->size };
        assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    avformat_close_input(&ic);
}

static void test_hevc_and_av1_are_packaged(void **state)
{
    (void)state;
    static const struct {
        const char *name, *encode, *tag, *codec_string;
        enum media_codec codec;
    } cases[] = {
        { "hevc.mp4", "-c:v libx265 -preset ultrafast -x265-params log-level=error:keyint=30:min-keyint=30:scenecut=0:open-gop=0:bframes=2",
          "hvc1", "hvc1.1.6.L60.90", MEDIA_CODEC_HEVC },
        { "av1.mp4", "-c:v libaom-av1 -cpu-used 8 -row-mt 1 -g 30 -b:v 200k", "av01",
          "av01.0.00M.08", MEDIA_CODEC_AV1 },
    };
    for (size_t ci = 0; ci < 2; ci++) {
        char src[128];
        snprintf(src, sizeof(src), "%s/%s", g_dir, cases[ci].name);
        assert_int_equal(cmaf_test_sh("ffmpeg -nostdin -v error -f lavfi -i "
                                      "testsrc=size=192x108:rate=30 -t 2 -pix_fmt yuv420p %s "
                                      "-tag:v %s '%s'", cases[ci].encode, cases[ci].tag, src), 0);
        struct collector c = { 0 };
        struct cmaf_segmenter *s = new_seg(&c, 1000, 250, 0);
        g_av_warnings = 0;
        feed_mp4(s, src, cases[ci].codec, cases[ci].codec_string);
        assert_int_equal(cmaf_segmenter_flush(s), 0);
        assert_int_equal(g_av_warnings, 0);
        assert_int_equal(c.ninit, 1);
        /* the sample entry names the codec as HLS wants it */
        assert_non_null(memmem(c.inits[0].data, c.inits[0].len, cases[ci].tag, 4));
        struct expect e = { .seg_ms = 1000, .part_ms = 250, .first_msn = 0, .video = true, .gaps = false };
        check_numbers(&c, &e);
        check_boxes(&c, &e);
        assert_int_equal(c.nsegs, 2);
        char path[128];
        write_output(&c, 0, "codec_out.mp4", path, sizeof(path));
        check_decodes(path);
        static struct pkt vp[128];
        assert_int_equal(probe_packets(path, "v", vp, 128), 60);
        cmaf_segmenter_free(s);
        col_free(&c);
    }
}


/* ---- tests: latency and continuity -------------------------------------- */

/* LL-HLS wants a part the moment it is complete: here, as soon as the frame
 * that begins the next part arrives (its own duration is not needed to know
 * the boundary), not one frame later. The last part of each segment says so
 * (ends_segment), so a sink can list the segment with it. */
static void test_parts_are_published_when_the_next_part_begins(void **state)
{
    (void)state;
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    struct collector c = { 0 };
    struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
    feed_flv(s, &flv, 320, 240, NULL, NULL);
    size_t before_flush = c.nparts;
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    assert_true(before_flush >= 12);
    for (size_t i = 0; i < before_flush; i++) {
        int64_t end_ms = (c.parts[i].p.start_us + c.parts[i].p.duration_us) / 1000;
        int64_t lag = c.parts[i].fed_ms - end_ms;
        assert_true(lag >= 0);
        assert_true(lag <= 5);
    }
    for (size_t i = 0; i < c.nparts; i++) {
        bool last = i + 1 == c.nparts || c.parts[i + 1].p.msn != c.parts[i].p.msn;
        assert_int_equal(c.parts[i].p.ends_segment, last);
    }
    cmaf_segmenter_free(s);
    col_free(&c);
    cmaf_test_flv_free(&flv);
}

/* Audio that stops for 2.5 s does not hold video back for more than the
 * interleaving window, and its gap stays a gap (tfdt jumps ahead). */
static bool drop_audio_2_to_4500(const struct cmaf_test_tag *t, size_t idx, int64_t *ts, void *ctx)
{
    (void)idx;
    (void)ts;
    (void)ctx;
    return t->kind == MEDIA_KIND_VIDEO || t->ts < 2000 || t->ts >= 4500;
}

static void test_a_stalled_audio_track_does_not_hold_video_back(void **state)
{
    (void)state;
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    struct collector c = { 0 };
    struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
    g_av_warnings = 0;
    feed_flv(s, &flv, 320, 240, drop_audio_2_to_4500, NULL);
    size_t before_flush = c.nparts;
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    assert_int_equal(g_av_warnings, 0);
    for (size_t i = 0; i < before_flush; i++) {
        int64_t end_ms = (c.parts[i].p.start_us + c.parts[i].p.duration_us) / 1000;
        assert_true(c.parts[i].fed_ms - end_ms <= 1100);
    }
    struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = true, .gaps = true };
    check_numbers(&c, &e);
    check_boxes(&c, &e);
    for (size_t g = 0; g < c.nsegs; g++)
        assert_false(c.segs[g].discontinuity);
    char path[128];
    write_output(&c, 0, "stall_out.mp4", path, sizeof(path));
    check_decodes(path);
    cmaf_segmenter_free(s);
    col_free(&c);
    cmaf_test_flv_free(&flv);
}

/* A reconnect: the next session's segmenter continues the room's msn and
 * media time and starts with a discontinuity. */
static bool first_3s(const struct cmaf_test_tag *t, size_t idx, int64_t *ts, void *ctx)
{
    (void)idx;
    (void)ts;
    (void)ctx;
    return t->ts < 3000;
}

static void test_reconnect_continues_msn_and_media_time(void **state)
{
    (void)state;
    struct cmaf_test_flv a, b;
    load_flv("av.flv", &a);
    load_flv("av2.flv", &b);
    struct collector c1 = { 0 }, c2 = { 0 };
    struct cmaf_segmenter *s1 = new_seg(&c1, 2000, 500, 100);
    feed_flv(s1, &a, 320, 240, first_3s, NULL);
    assert_int_equal(cmaf_segmenter_flush(s1), 0);
    uint64_t next = cmaf_segmenter_next_msn(s1);
    int64_t end = cmaf_segmenter_end_time_us(s1);
    assert_int_equal(next, 102);
    const struct cmaf_segment *last = &c1.segs[c1.nsegs - 1];
    /* past the end of both tracks (audio runs a little past the video) */
    assert_true(end >= last->start_us + last->duration_us);
    assert_true(end - (last->start_us + last->duration_us) < 50000);

    struct cmaf_segmenter_config cfg;
    cmaf_segmenter_config_defaults(&cfg);
    cfg.first_msn = next;
    cfg.start_time_us = end;
    cfg.discontinuity_at_start = true;
    struct cmaf_segmenter *s2 = new_seg_cfg(&c2, &cfg);
    feed_flv(s2, &b, 480, 270, NULL, NULL);
    assert_int_equal(cmaf_segmenter_flush(s2), 0);
    assert_int_equal(c2.ninit, 1);
    assert_true(c2.inits[0].disc);
    assert_true(c2.segs[0].discontinuity);
    assert_int_equal(c2.segs[0].msn, 102);
    assert_true(llabs(c2.segs[0].start_us - end) < 1000);
    struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 102, .video = true, .gaps = false };
    check_numbers(&c2, &e);
    check_boxes(&c2, &e);
    cmaf_segmenter_free(s1);
    cmaf_segmenter_free(s2);
    col_free(&c1);
    col_free(&c2);
    cmaf_test_flv_free(&a);
    cmaf_test_flv_free(&b);
}

/* Flush closes everything; frames after it open a discontinuity segment in
 * the same init; a repeated identical sequence header changes nothing. */
static void test_flush_then_more_frames_and_repeated_configs(void **state)
{
    (void)state;
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    struct collector c = { 0 };
    struct cmaf_segmenter *s = new_seg(&c, 2000, 500, 0);
    bool flushed = false;
    for (size_t i = 0; i < flv.ntags; i++) {
        const struct cmaf_test_tag *t = &flv.tags[i];
        if (!flushed && t->ts >= 3000) {
            assert_int_equal(cmaf_segmenter_flush(s), 0);
            assert_int_equal(c.nsegs, 2);
            assert_int_equal(cmaf_segmenter_next_msn(s), 2);
            /* the encoder resends its sequence headers */
            for (size_t k = 0; k < flv.ntags; k++) {
                if (flv.tags[k].config) {
                    struct media_codec_config cfg = cmaf_test_config(&flv.tags[k], 320, 240);
                    assert_int_equal(cmaf_segmenter_config(s, &cfg), 0);
                }
            }
            flushed = true;
        }
        if (t->config) {
            struct media_codec_config cfg = cmaf_test_config(t, 320, 240);
            assert_int_equal(cmaf_segmenter_config(s, &cfg), 0);
            continue;
        }
        struct media_frame f = cmaf_test_frame(t);
        g_feed_ms = t->ts;
        assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
    }
    assert_int_equal(cmaf_segmenter_flush(s), 0);
    assert_int_equal(c.ninit, 1);
    /* frames between 3 s and the 4 s keyframe are dropped */
    assert_int_equal(c.nsegs, 4);
    assert_false(c.segs[0].discontinuity);
    assert_false(c.segs[1].discontinuity);
    assert_true(c.segs[2].discontinuity);
    assert_int_equal(c.segs[2].start_us, 4000000);
    assert_false(c.segs[3].discontinuity);
    struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = true, .gaps = true };
    check_numbers(&c, &e);
    check_boxes(&c, &e);
    char path[128];
    write_output(&c, 0, "flush_out.mp4", path, sizeof(path));
    check_decodes(path);
    cmaf_segmenter_free(s);
    col_free(&c);
    cmaf_test_flv_free(&flv);
}

/* ---- tests: start policy ------------------------------------------------ */

static void test_start_waits_only_for_tracks_that_may_come(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool expect_audio, expect_video;
        int64_t audio_from_ms;     /* audio config + frames from here; -1 = never */
        size_t ninit;
        int ntracks;               /* of the first init */
        int64_t first_part_max_fed, first_part_min_fed;
    } cases[] = {
        { "announced audio 2.5 s late", true, true, 2500, 1, 2, 99999, 2500 },
        { "announced video only", false, true, -1, 1, 1, 600, 0 },
        { "nothing announced, no audio", false, false, -1, 1, 1, 99999, 1000 },
        { "nothing announced, audio 3 s late", false, false, 3000, 2, 1, 99999, 1000 },
    };
    struct cmaf_test_flv flv;
    load_flv("av.flv", &flv);
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        struct collector c = { 0 };
        struct cmaf_segmenter_config cfg;
        cmaf_segmenter_config_defaults(&cfg);
        cfg.expect_audio = cases[ci].expect_audio;
        cfg.expect_video = cases[ci].expect_video;
        struct cmaf_segmenter *s = new_seg_cfg(&c, &cfg);
        const struct cmaf_test_tag *acfg = NULL;
        bool audio_sent = false;
        for (size_t i = 0; i < flv.ntags; i++) {
            const struct cmaf_test_tag *t = &flv.tags[i];
            if (t->config && t->kind == MEDIA_KIND_AUDIO) {
                acfg = t;
                continue;
            }
            if (t->kind == MEDIA_KIND_AUDIO &&
                (cases[ci].audio_from_ms < 0 || t->ts < cases[ci].audio_from_ms))
                continue;
            if (t->kind == MEDIA_KIND_AUDIO && !audio_sent) {
                struct media_codec_config ac = cmaf_test_config(acfg, 0, 0);
                assert_int_equal(cmaf_segmenter_config(s, &ac), 0);
                audio_sent = true;
            }
            if (t->config) {
                struct media_codec_config vc = cmaf_test_config(t, 320, 240);
                assert_int_equal(cmaf_segmenter_config(s, &vc), 0);
                continue;
            }
            struct media_frame f = cmaf_test_frame(t);
            g_feed_ms = t->ts;
            assert_int_equal(cmaf_segmenter_frame(s, &f), 0);
        }
        assert_int_equal(cmaf_segmenter_flush(s), 0);
        if (c.ninit != cases[ci].ninit)
            fprintf(stderr, "case '%s': %zu inits\n", cases[ci].name, c.ninit);
        assert_int_equal(c.ninit, cases[ci].ninit);
        assert_int_equal(c.inits[0].ntracks, cases[ci].ntracks);
        assert_true(c.parts[0].fed_ms <= cases[ci].first_part_max_fed);
        assert_true(c.parts[0].fed_ms >= cases[ci].first_part_min_fed);
        assert_int_equal(c.segs[0].start_us, 0);   /* nothing lost while waiting */
        struct expect e = { .seg_ms = 2000, .part_ms = 500, .first_msn = 0, .video = true, .gaps = true };
        check_numbers(&c, &e);
        check_boxes(&c, &e);
        cmaf_segmenter_free(s);
        col_free(&c);
    }
    cmaf_test_flv_free(&flv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h264_aac_flv_is_cut_at_keyframes_and_decodes),
        cmocka_unit_test(test_audio_only_and_video_only_streams),
        cmocka_unit_test(test_timestamp_jumps_become_discontinuities_without_bogus_durations),
        cmocka_unit_test(test_small_jitter_is_not_a_discontinuity),
        cmocka_unit_test(test_resolution_change_makes_new_init_and_both_halves_decode),
        cmocka_unit_test(test_first_init_waits_for_a_late_audio_config),
        cmocka_unit_test(test_track_appearing_later_makes_a_new_init),
        cmocka_unit_test(test_frames_before_first_keyframe_and_unconfigured_tracks_are_dropped),
        cmocka_unit_test(test_bad_configs_are_refused),
        cmocka_unit_test(test_hevc_and_av1_are_packaged),
        cmocka_unit_test(test_parts_are_published_when_the_next_part_begins),
        cmocka_unit_test(test_a_stalled_audio_track_does_not_hold_video_back),
        cmocka_unit_test(test_reconnect_continues_msn_and_media_time),
        cmocka_unit_test(test_flush_then_more_frames_and_repeated_configs),
        cmocka_unit_test(test_start_waits_only_for_tracks_that_may_come),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
