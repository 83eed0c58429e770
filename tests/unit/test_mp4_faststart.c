/* test_mp4_faststart.c — the fragmented → faststart MP4 writer (SPEC REC-3)
 * on real recordings.
 *
 * Media: ffmpeg (lavfi testsrc2 + sine, libx264 with B-frames + AAC) writes
 * FLV clips once into the cache directory test_recorder uses; ingest's own
 * FLV tag parsers turn them into frames, the CMAF segmenter into init +
 * parts, and the recorder (on a loop thread, with its writer thread) into
 * the fragmented file, exactly as in the gateway. The output is judged by
 * libavformat (every packet: count, pts/dts, key flag, bytes), ffprobe and
 * a full decode with ffmpeg -xerror. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libavformat/avformat.h>

#include "core/bytes.h"
#include "core/loop.h"
#include "core/media.h"
#include "ingest/flv.h"
#include "packager/cmaf_segmenter.h"
#include "packager/recorder.h"
#include "storage/file_store.h"
#include "storage/finalizer.h"
#include "storage/mp4_faststart.h"

static char g_media[PATH_MAX]; /* cache of generated clips (shared with test_recorder) */
static char g_work[PATH_MAX];  /* per-run scratch directory */

static void fmtbuf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fmtbuf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Clip NAME, generated once: 720p30 H.264 (GOP 2 s, B-frames) + 44.1 kHz
 * stereo AAC as FLV, as test_recorder makes them (same names, same cache). */
static const char *media(const char *name)
{
    static char path[4][PATH_MAX];
    static int next;
    char *p = path[next++ % 4];
    fmtbuf(p, PATH_MAX, "%s/%s.flv", g_media, name);
    if (access(p, R_OK) == 0)
        return p;
    int rc;
    if (strcmp(name, "clip10") == 0)
        rc = sh("ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i "
                "sine=frequency=440:sample_rate=44100 -t 10 -c:v libx264 -preset veryfast -g 60 "
                "-b:v 2500k -maxrate 2500k -bufsize 5000k -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 "
                "-f flv %s.tmp && mv %s.tmp %s", p, p, p);
    else if (strcmp(name, "clip60") == 0)
        rc = sh("ffmpeg -v error -y -stream_loop 5 -i %s -c copy -f flv %s.tmp && mv %s.tmp %s",
                media("clip10"), p, p, p);
    else
        rc = -1;
    assert_int_equal(rc, 0);
    return p;
}

/* --- a recording, made as the gateway makes it ---------------------------- */

struct event {
    bool is_config;
    struct media_codec_config cfg;
    struct media_frame frame;
};

struct clip {
    uint8_t *buf;
    struct event *ev;
    size_t n;
};

/* FLV tags (FLV spec v10.1 §E.4) through ingest's parsers (ingest/flv.h). */
static void clip_load(const char *path, struct clip *c)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    c->buf = malloc(len);
    assert_non_null(c->buf);
    assert_int_equal(fread(c->buf, 1, len, f), len);
    fclose(f);
    assert_true(len > 13 && memcmp(c->buf, "FLV", 3) == 0);
    size_t cap = 4096;
    c->ev = calloc(cap, sizeof *c->ev);
    size_t pos = rd_be32(c->buf + 5) + 4;
    while (pos + 11 <= len) {
        const uint8_t *t = c->buf + pos;
        int type = t[0] & 0x1f;
        size_t dlen = rd_be24(t + 1);
        int64_t ts = (int64_t)(rd_be24(t + 4) | ((uint32_t)t[7] << 24));
        if (pos + 11 + dlen + 4 > len)
            break;
        pos += 11 + dlen + 4;
        if (c->n == cap) {
            cap *= 2;
            c->ev = realloc(c->ev, cap * sizeof *c->ev);
        }
        struct event *e = &c->ev[c->n];
        memset(e, 0, sizeof *e);
        const char *why = NULL;
        int got = type == 9   ? flv_parse_video(t + 11, dlen, ts, &e->cfg, &e->frame, &why)
                  : type == 8 ? flv_parse_audio(t + 11, dlen, ts, &e->cfg, &e->frame, &why)
                              : FLV_IGNORED;
        if (got == FLV_CONFIG)
            e->is_config = true;
        else if (got != FLV_FRAME)
            continue;
        c->n++;
    }
    assert_true(c->n > 10);
}

static void clip_free(struct clip *c)
{
    free(c->buf);
    free(c->ev);
}

struct rec_run {
    struct loop *loop;
    const struct clip *clip;
    bool only_audio;
    char path[PATH_MAX];
    struct recorder *rec;
    sem_t done;
    int closed_error;
};

static void on_file_closed(void *ctx, const char *path, const struct recorder_stats *st, int error,
                           const char *reason)
{
    (void)path, (void)st, (void)reason;
    struct rec_run *r = ctx;
    r->closed_error = error;
    sem_post(&r->done);
}

static void sink_init(void *ctx, const struct cmaf_init *init)
{
    assert_int_equal(recorder_init(((struct rec_run *)ctx)->rec, init), 0);
}
static void sink_part(void *ctx, const struct cmaf_part *part)
{
    assert_int_equal(recorder_part(((struct rec_run *)ctx)->rec, part), 0);
}
static void sink_segment(void *ctx, const struct cmaf_segment *seg) { (void)ctx, (void)seg; }

/* On the loop: the whole clip through segmenter and recorder, then close. */
static void feed_all(void *arg)
{
    struct rec_run *r = arg;
    struct recorder_config cfg = {.path = r->path, .loop = r->loop, .ctx = r, .on_file_closed = on_file_closed};
    r->rec = recorder_new(&cfg);
    assert_non_null(r->rec);
    struct cmaf_segmenter_config sc;
    cmaf_segmenter_config_defaults(&sc);
    struct cmaf_sink sink = {r, sink_init, sink_part, sink_segment};
    char err[256];
    struct cmaf_segmenter *seg = cmaf_segmenter_new(&sc, &sink, err, sizeof err);
    assert_non_null(seg);
    for (size_t i = 0; i < r->clip->n; i++) {
        const struct event *e = &r->clip->ev[i];
        enum media_kind k = e->is_config ? e->cfg.kind : e->frame.kind;
        if (r->only_audio && k == MEDIA_KIND_VIDEO)
            continue;
        if (e->is_config)
            assert_int_equal(cmaf_segmenter_config(seg, &e->cfg), 0);
        else
            assert_int_equal(cmaf_segmenter_frame(seg, &e->frame), 0);
    }
    cmaf_segmenter_flush(seg);
    cmaf_segmenter_free(seg);
    recorder_close(r->rec, NULL);
    recorder_free(r->rec); /* joins the private writer; the close report is posted to us */
}

/* Records clip NAME into g_work/OUT (once per run). */
static const char *record(const char *name, bool only_audio, const char *out)
{
    static char path[4][PATH_MAX];
    static int next;
    char *p = path[next++ % 4];
    fmtbuf(p, PATH_MAX, "%s/%s", g_work, out);
    if (exists(p))
        return p;
    struct clip clip;
    clip_load(media(name), &clip);
    struct rec_run r;
    memset(&r, 0, sizeof r);
    r.clip = &clip;
    r.only_audio = only_audio;
    fmtbuf(r.path, sizeof r.path, "%s", p);
    sem_init(&r.done, 0, 0);
    r.loop = loop_new("t-fs", 1024);
    assert_non_null(r.loop);
    assert_int_equal(loop_start(r.loop), 0);
    assert_int_equal(loop_post(r.loop, feed_all, &r), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 120;
    assert_int_equal(sem_timedwait(&r.done, &ts), 0);
    loop_stop(r.loop);
    loop_free(r.loop);
    sem_destroy(&r.done);
    clip_free(&clip);
    assert_int_equal(r.closed_error, 0);
    return p;
}

/* --- reading an MP4 back ----------------------------------------------------- */

struct pkt {
    int64_t pts, dts, pos, duration;
    int size;
    bool key;
    uint64_t hash;  /* FNV-1a of the bytes */
};

struct track_pkts {
    enum AVMediaType type;
    AVRational tb;
    struct pkt *v;
    size_t n, cap;
};

struct mp4_pkts {
    struct track_pkts t[4];
    int nt;
    int64_t duration_us;  /* AVFormatContext.duration */
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Every packet libavformat gives for path, per stream. */
static void read_pkts(const char *path, struct mp4_pkts *out)
{
    memset(out, 0, sizeof *out);
    AVFormatContext *ic = NULL;
    assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(ic, NULL) >= 0);
    assert_true(ic->nb_streams <= 4);
    out->nt = (int)ic->nb_streams;
    out->duration_us = ic->duration;
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        out->t[i].type = ic->streams[i]->codecpar->codec_type;
        out->t[i].tb = ic->streams[i]->time_base;
    }
    AVPacket *pkt = av_packet_alloc();
    while (av_read_frame(ic, pkt) >= 0) {
        struct track_pkts *t = &out->t[pkt->stream_index];
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 1024;
            t->v = realloc(t->v, t->cap * sizeof *t->v);
        }
        t->v[t->n++] = (struct pkt){pkt->pts, pkt->dts, pkt->pos, pkt->duration, pkt->size, (pkt->flags & AV_PKT_FLAG_KEY) != 0,
                                    fnv(pkt->data, (size_t)pkt->size)};
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    avformat_close_input(&ic);
}

static void free_pkts(struct mp4_pkts *p)
{
    for (int i = 0; i < p->nt; i++)
        free(p->t[i].v);
}

/* From the earliest presented sample to the end of the last one, in ms. */
static int64_t span_ms(const struct mp4_pkts *p)
{
    double start = 1e300, end = -1e300;
    for (int s = 0; s < p->nt; s++) {
        double tb = (double)p->t[s].tb.num / p->t[s].tb.den;
        for (size_t i = 0; i < p->t[s].n; i++) {
            const struct pkt *k = &p->t[s].v[i];
            if (k->pts * tb < start)
                start = k->pts * tb;
            if ((k->pts + k->duration) * tb > end)
                end = (k->pts + k->duration) * tb;
        }
    }
    return (int64_t)((end - start) * 1000 + 0.5);
}

static size_t total_pkts(const struct mp4_pkts *p)
{
    size_t n = 0;
    for (int i = 0; i < p->nt; i++)
        n += p->t[i].n;
    return n;
}

/* out holds the first n_i packets of each stream of in (all when limit is
 * NULL), byte for byte, with key flags, in the same order, and with pts/dts
 * moved by one constant per stream; the constants of all streams agree to
 * within 1 ms (the movie timescale of the edit lists): A/V sync is kept. */
static void assert_same_packets(const struct mp4_pkts *in, const struct mp4_pkts *out, const size_t *limit)
{
    assert_int_equal(in->nt, out->nt);
    double shift0_us = 0;
    for (int s = 0; s < in->nt; s++) {
        const struct track_pkts *a = &in->t[s], *b = &out->t[s];
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->tb.num, b->tb.num);
        assert_int_equal(a->tb.den, b->tb.den);
        size_t want = limit ? limit[s] : a->n;
        if (b->n != want)
            fail_msg("stream %d: %zu packets, want %zu", s, b->n, want);
        if (!want)
            continue;
        int64_t dpts = a->v[0].pts - b->v[0].pts, ddts = a->v[0].dts - b->v[0].dts;
        for (size_t i = 0; i < want; i++) {
            const struct pkt *x = &a->v[i], *y = &b->v[i];
            if (x->size != y->size || x->hash != y->hash || x->key != y->key)
                fail_msg("stream %d packet %zu: size %d/%d key %d/%d or bytes differ", s, i, x->size, y->size,
                         x->key, y->key);
            if (x->pts - y->pts != dpts || x->dts - y->dts != ddts)
                fail_msg("stream %d packet %zu: pts %" PRId64 "->%" PRId64 " dts %" PRId64 "->%" PRId64
                         " (first moved by %" PRId64 "/%" PRId64 ")",
                         s, i, x->pts, y->pts, x->dts, y->dts, dpts, ddts);
        }
        double shift_us = (double)dpts * 1e6 * a->tb.num / a->tb.den;
        if (s == 0)
            shift0_us = shift_us;
        else if (shift_us - shift0_us > 1000 || shift0_us - shift_us > 1000)
            fail_msg("stream %d moved by %.0f us, stream 0 by %.0f us: A/V sync changed", s, shift_us, shift0_us);
    }
}

/* Top-level boxes in order, "ftyp moov mdat". */
static void top_boxes(const char *path, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t h[16];
    long long pos = 0;
    size_t used = 0;
    while (fseeko(f, pos, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
        uint64_t size = rd_be32(h);
        if (size == 1 && fread(h + 8, 1, 8, f) == 8)
            size = rd_be64(h + 8);
        if (size < 8)
            break;
        if (used + 6 < cap)
            used += (size_t)snprintf(out + used, cap - used, "%s%.4s", used ? " " : "", (const char *)h + 4);
        pos += (long long)size;
    }
    fclose(f);
}

/* ffprobe -v error prints nothing and ffmpeg decodes every frame. */
static void assert_clean_decode(const char *path)
{
    char log[PATH_MAX + 16];
    fmtbuf(log, sizeof log, "%s.probe.log", path);
    assert_int_equal(sh("ffprobe -v error -show_streams -show_format '%s' >/dev/null 2>'%s'", path, log), 0);
    if (file_size(log) != 0) {
        sh("cat '%s' >&2", log);
        fail_msg("ffprobe complained about %s", path);
    }
    assert_int_equal(sh("ffmpeg -v error -xerror -i '%s' -f null - 2>/dev/null", path), 0);
}

/* --- the tests ---------------------------------------------------------------- */

static void test_recording_becomes_faststart_with_the_same_packets(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool only_audio;
        int tracks;
    } cases[] = {
        {"av", false, 2},
        {"audio_only", true, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char file[64], out[PATH_MAX];
        fmtbuf(file, sizeof file, "%s.frag.mp4", cases[c].name);
        const char *src = record("clip10", cases[c].only_audio, file);
        fmtbuf(out, sizeof out, "%s/%s.fast.mp4", g_work, cases[c].name);
        assert_int_equal(mp4_faststart_probe(src), 1);
        struct mp4_faststart_stats st;
        char reason[256];
        int rc = mp4_faststart_write(src, out, &st, reason, sizeof reason);
        if (rc != 0)
            fail_msg("%s: %d %s", cases[c].name, rc, reason);
        print_message("%s: %" PRIu64 " bytes, %" PRId64 " ms, %" PRIu64 " samples, %u fragments\n", cases[c].name,
                      st.bytes, st.duration_ms, st.samples, st.fragments);
        assert_int_equal(st.bytes, file_size(out));
        assert_int_equal(st.tracks, cases[c].tracks);
        assert_false(st.truncated);
        assert_false(st.co64);
        assert_int_equal(st.dropped, 0);
        assert_true(st.fragments >= 19); /* 10 s in parts of <= 0.5 s */

        char boxes[128];
        top_boxes(out, boxes, sizeof boxes);
        assert_string_equal(boxes, "ftyp moov mdat");
        assert_int_equal(mp4_faststart_probe(out), 0); /* already classic: not ours to take */

        struct mp4_pkts a, b;
        read_pkts(src, &a);
        read_pkts(out, &b);
        assert_int_equal(st.samples, total_pkts(&a));
        assert_same_packets(&a, &b, NULL);
        /* duration: the source's span, within one frame (33 ms at 30 fps) */
        int64_t src_ms = span_ms(&a), out_ms = b.duration_us / 1000;
        print_message("%s: duration source %" PRId64 " ms, output %" PRId64 " ms, stats %" PRId64 " ms\n",
                      cases[c].name, src_ms, out_ms, st.duration_ms);
        assert_true(llabs(src_ms - st.duration_ms) <= 33);
        assert_true(llabs(out_ms - st.duration_ms) <= 1);
        assert_true(st.duration_ms >= 9900 && st.duration_ms <= 10200);
        free_pkts(&a);
        free_pkts(&b);
        assert_clean_decode(out);
    }
}

/* Where each fragment's moof and mdat start, and where the mdat ends. */
struct frag_pos {
    long long moof, mdat, end;
};

static size_t fragments(const char *path, struct frag_pos *fp, size_t max)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t h[8];
    long long pos = 0;
    size_t n = 0;
    while (fseeko(f, pos, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
        uint32_t size = rd_be32(h);
        if (size < 8)
            break;
        if (memcmp(h + 4, "moof", 4) == 0 && n < max)
            fp[n].moof = pos;
        if (memcmp(h + 4, "mdat", 4) == 0 && n < max) {
            fp[n].mdat = pos;
            fp[n++].end = pos + size;
        }
        pos += size;
    }
    fclose(f);
    return n;
}

static void copy_prefix(const char *src, const char *dst, long long len)
{
    assert_int_equal(sh("head -c %lld '%s' > '%s'", len, src, dst), 0);
    assert_int_equal(file_size(dst), len);
}

/* A crash cuts the file anywhere: every sample whose bytes made it to disk
 * is kept (a prefix of each track), the rest dropped, and the result plays. */
static void test_truncated_recording_keeps_every_complete_sample(void **state)
{
    (void)state;
    const char *src = record("clip10", false, "av.frag.mp4");
    struct mp4_pkts full;
    read_pkts(src, &full);
    struct frag_pos fp[64];
    assert_true(fragments(src, fp, 64) > 10);
    const struct {
        const char *what;
        long long cut;
        bool truncated;
    } cases[] = {
        {"at a fragment boundary", fp[6].end, false},
        {"inside a moof", fp[7].moof + 100, true},
        {"right after a moof", fp[7].mdat, true},
        {"inside an mdat header", fp[8].mdat + 3, true},
        {"in the middle of an mdat", (fp[9].mdat + fp[9].end) / 2, true},
        {"one byte before the end of an mdat", fp[10].end - 1, true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char cut[PATH_MAX], out[PATH_MAX];
        fmtbuf(cut, sizeof cut, "%s/cut%zu.mp4", g_work, c);
        fmtbuf(out, sizeof out, "%s/cut%zu.fast.mp4", g_work, c);
        copy_prefix(src, cut, cases[c].cut);
        assert_int_equal(mp4_faststart_probe(cut), 1);
        struct mp4_faststart_stats st;
        char reason[256];
        int rc = mp4_faststart_write(cut, out, &st, reason, sizeof reason);
        if (rc != 0)
            fail_msg("cut %s: %d %s", cases[c].what, rc, reason);
        size_t want[4] = {0}, want_total = 0;
        for (int s = 0; s < full.nt; s++) {
            while (want[s] < full.t[s].n && full.t[s].v[want[s]].pos + full.t[s].v[want[s]].size <= cases[c].cut)
                want[s]++;
            want_total += want[s];
        }
        print_message("cut %s at %lld: kept %" PRIu64 " (v %zu a %zu), dropped %" PRIu64 ", %" PRId64 " ms\n",
                      cases[c].what, cases[c].cut, st.samples, want[0], want[1], st.dropped, st.duration_ms);
        assert_int_equal(st.samples, want_total);
        assert_int_equal(st.truncated, cases[c].truncated);
        struct mp4_pkts b;
        read_pkts(out, &b);
        assert_same_packets(&full, &b, want);
        free_pkts(&b);
        assert_clean_decode(out);
    }
    /* Cut inside the first fragment's moof: nothing to keep, a clear no. */
    char cut[PATH_MAX], out[PATH_MAX];
    fmtbuf(cut, sizeof cut, "%s/cut_init.mp4", g_work);
    fmtbuf(out, sizeof out, "%s/cut_init.fast.mp4", g_work);
    copy_prefix(src, cut, fp[0].moof + 20);
    assert_int_equal(mp4_faststart_probe(cut), 0);
    char reason[256];
    assert_true(mp4_faststart_write(cut, out, NULL, reason, sizeof reason) != 0);
    assert_true(reason[0] != 0);
    assert_false(exists(out));
    free_pkts(&full);
}

/* Not a fragmented MP4 of ours: probe 0 (or -1 for a missing file), the
 * writer refuses with a reason, nothing is left behind, nothing crashes. */
static void test_other_inputs_are_refused_cleanly(void **state)
{
    (void)state;
    const char *src = record("clip10", false, "av.frag.mp4");
    char classic[PATH_MAX], out[PATH_MAX], reason[256];
    fmtbuf(classic, sizeof classic, "%s/classic.mp4", g_work);
    fmtbuf(out, sizeof out, "%s/refused.out", g_work);
    struct finalize_result fr;
    assert_int_equal(finalizer_remux_libavformat(src, classic, &fr), 0);

    static const char garbage[] = "this is not an mp4 at all, just text long enough to have box headers";
    uint8_t ftyp_only[] = {0, 0, 0, 16, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0};
    uint8_t bad_size[] = {0, 0, 0, 16, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0,
                          0, 0, 0, 4,  'm', 'o', 'o', 'v'};
    uint8_t huge_moov[] = {0, 0, 0, 16, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0,
                           0x7f, 0xff, 0xff, 0xff, 'm', 'o', 'o', 'v'};
    /* a 64-bit box size that wraps the offset around to 0: a walk that adds
     * sizes without checking them would go round forever */
    uint8_t wrap[] = {0, 0, 0, 16, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0,
                      0, 0, 0, 1, 'f', 'r', 'e', 'e', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0};
    const struct {
        const char *name;
        const void *data;
        size_t len;
    } blobs[] = {
        {"empty", "", 0},
        {"garbage", garbage, sizeof garbage},
        {"ftyp_only", ftyp_only, sizeof ftyp_only},
        {"bad_box_size", bad_size, sizeof bad_size},
        {"moov_past_eof", huge_moov, sizeof huge_moov},
        {"size_wraps_around", wrap, sizeof wrap},
    };
    for (size_t i = 0; i < sizeof blobs / sizeof blobs[0]; i++) {
        char p[PATH_MAX];
        fmtbuf(p, sizeof p, "%s/blob_%s", g_work, blobs[i].name);
        assert_int_equal(file_store_write_atomic(p, blobs[i].data, blobs[i].len), 0);
        if (mp4_faststart_probe(p) != 0)
            fail_msg("%s: probe took it", blobs[i].name);
        assert_int_equal(mp4_faststart_write(p, out, NULL, reason, sizeof reason), MP4_FASTSTART_UNSUPPORTED);
        assert_true(reason[0] != 0);
        assert_false(exists(out));
    }
    /* a classic MP4 (libavformat's faststart output) */
    assert_int_equal(mp4_faststart_probe(classic), 0);
    assert_int_equal(mp4_faststart_write(classic, out, NULL, reason, sizeof reason), MP4_FASTSTART_UNSUPPORTED);
    print_message("classic mp4 refused: %s\n", reason);
    assert_non_null(strstr(reason, "mvex"));
    assert_false(exists(out));
    /* a missing file: an I/O error, not "unsupported" */
    char missing[PATH_MAX];
    fmtbuf(missing, sizeof missing, "%s/does-not-exist.mp4", g_work);
    assert_int_equal(mp4_faststart_probe(missing), -1);
    assert_int_equal(mp4_faststart_write(missing, out, NULL, reason, sizeof reason), MP4_FASTSTART_ERROR);
    assert_non_null(strstr(reason, "No such file"));
    /* an unwritable destination */
    char nodir[PATH_MAX];
    fmtbuf(nodir, sizeof nodir, "%s/no/such/dir/x.tmp", g_work);
    assert_int_equal(mp4_faststart_write(src, nodir, NULL, reason, sizeof reason), MP4_FASTSTART_ERROR);
    assert_non_null(strstr(reason, "create"));
}

/* Bytes of a real recording flipped at random (deterministic seed) in its
 * init and first fragments: never a crash or a sanitizer report; either a
 * refusal with a reason and no file, or a file libavformat opens. */
static void test_corrupted_recordings_never_crash(void **state)
{
    (void)state;
    const char *src = record("clip10", false, "av.frag.mp4");
    struct frag_pos fp[4];
    assert_int_equal(fragments(src, fp, 4), 4);
    size_t len = (size_t)fp[2].end; /* init + 3 fragments */
    uint8_t *orig = malloc(len), *buf = malloc(len);
    FILE *f = fopen(src, "rb");
    assert_int_equal(fread(orig, 1, len, f), len);
    fclose(f);
    char p[PATH_MAX], out[PATH_MAX];
    fmtbuf(p, sizeof p, "%s/mutant.mp4", g_work);
    fmtbuf(out, sizeof out, "%s/mutant.out.mp4", g_work);
    uint32_t seed = 12345;
    int ok = 0, refused = 0, unreadable = 0;
    for (int round = 0; round < 150; round++) {
        memcpy(buf, orig, len);
        int flips = 1 + round % 4;
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            /* aim at boxes, not media: the init and the moofs */
            size_t region = (seed >> 8) % 3, at;
            seed = seed * 1103515245u + 12345u;
            if (region == 0)
                at = (seed >> 4) % (size_t)fp[0].moof;
            else
                at = (size_t)fp[region - 1].moof + (seed >> 4) % (size_t)(fp[region - 1].mdat - fp[region - 1].moof);
            seed = seed * 1103515245u + 12345u;
            buf[at] ^= (uint8_t)(1u << ((seed >> 16) % 8));
        }
        assert_int_equal(file_store_write_atomic(p, buf, len), 0);
        int probe = mp4_faststart_probe(p);
        assert_true(probe == 0 || probe == 1);
        char reason[256];
        int rc = mp4_faststart_write(p, out, NULL, reason, sizeof reason);
        if (rc == 0) {
            AVFormatContext *ic = NULL;
            if (avformat_open_input(&ic, out, NULL, NULL) == 0) {
                avformat_close_input(&ic);
            } else {
                /* the init's sample entries are copied as they are: a
                 * flip there breaks the source for libavformat too */
                if (avformat_open_input(&ic, p, NULL, NULL) == 0) {
                    avformat_close_input(&ic);
                    fail_msg("round %d: the source opens, the output does not", round);
                }
                unreadable++;
            }
            unlink(out);
            ok++;
        } else {
            assert_true(rc == MP4_FASTSTART_UNSUPPORTED || rc == MP4_FASTSTART_ERROR);
            assert_true(reason[0] != 0);
            assert_false(exists(out));
            refused++;
        }
    }
    print_message("150 corrupted recordings: %d written (%d unreadable like their source), %d refused\n", ok,
                  unreadable, refused);
    assert_true(ok > 0 && refused > 0);
    free(orig);
    free(buf);
}

/* Chunk offsets (stco entries, or co64) of each trak of a moov, in order. */
static size_t chunk_offsets(const uint8_t *moov, size_t len, uint64_t *off, size_t max, int *n64)
{
    size_t n = 0;
    *n64 = 0;
    for (size_t i = 8; i + 16 <= len; i++) {
        bool c64 = memcmp(moov + i + 4, "co64", 4) == 0;
        if (!c64 && memcmp(moov + i + 4, "stco", 4) != 0)
            continue;
        uint32_t cnt = rd_be32(moov + i + 12);
        *n64 += c64;
        for (uint32_t k = 0; k < cnt && n < max; k++)
            off[n++] = c64 ? rd_be64(moov + i + 16 + 8 * k) : rd_be32(moov + i + 16 + 4 * k);
        i += 15;
    }
    return n;
}

/* 32-bit chunk offsets as long as the last chunk starts at or below 4 GiB - 1,
 * co64 from the next byte on, with the moov's own growth (4 more bytes per
 * chunk) counted in. A 4 GiB file is not needed: the payload is pretended to
 * start `bias` bytes later (mp4_faststart_moov_for_test). */
static void test_chunk_offsets_switch_to_co64_past_4gib(void **state)
{
    (void)state;
    const char *src = record("clip10", false, "av.frag.mp4");
    uint8_t *m0, *m1, *m2, *m3;
    size_t l0, l1, l2, l3;
    bool c0, c1, c2, c3;
    char reason[256];
    assert_int_equal(mp4_faststart_moov_for_test(src, 0, &m0, &l0, &c0, reason, sizeof reason), 0);
    assert_false(c0);
    static uint64_t o0[4096], o[4096];
    int n64;
    size_t n = chunk_offsets(m0, l0, o0, 4096, &n64);
    assert_int_equal(n64, 0);
    assert_true(n > 20);
    uint64_t max0 = 0;
    for (size_t i = 0; i < n; i++)
        max0 = o0[i] > max0 ? o0[i] : max0;

    uint64_t edge = UINT32_MAX - max0; /* the last chunk lands exactly on 4 GiB - 1 */
    assert_int_equal(mp4_faststart_moov_for_test(src, edge, &m1, &l1, &c1, reason, sizeof reason), 0);
    assert_false(c1);
    assert_int_equal(l1, l0);
    assert_int_equal(chunk_offsets(m1, l1, o, 4096, &n64), n);
    for (size_t i = 0; i < n; i++)
        assert_true(o[i] == o0[i] + edge && o[i] <= UINT32_MAX);

    assert_int_equal(mp4_faststart_moov_for_test(src, edge + 1, &m2, &l2, &c2, reason, sizeof reason), 0);
    assert_true(c2);
    assert_int_equal(l2, l0 + 4 * n); /* every chunk offset got 4 bytes longer */
    assert_int_equal(chunk_offsets(m2, l2, o, 4096, &n64), n);
    assert_true(n64 >= 2);
    for (size_t i = 0; i < n; i++)
        assert_true(o[i] == o0[i] + edge + 1 + 4 * n);

    uint64_t far = 5ull << 30;
    assert_int_equal(mp4_faststart_moov_for_test(src, far, &m3, &l3, &c3, reason, sizeof reason), 0);
    assert_true(c3);
    assert_int_equal(chunk_offsets(m3, l3, o, 4096, &n64), n);
    for (size_t i = 0; i < n; i++)
        assert_true(o[i] == o0[i] + far + 4 * n);
    /* the rest of the moov does not change */
    print_message("moov %zu bytes with stco, %zu with co64 (%zu chunks)\n", l0, l2, n);
    free(m0);
    free(m1);
    free(m2);
    free(m3);
}

/* finalizer_remux: our recordings through mp4_faststart (in place, as the
 * finalizer thread runs it), anything else through libavformat. */
static void test_finalizer_uses_the_writer_and_falls_back_to_libavformat(void **state)
{
    (void)state;
    const char *src = record("clip10", false, "av.frag.mp4");
    char inplace[PATH_MAX], tmp[PATH_MAX];
    fmtbuf(inplace, sizeof inplace, "%s/inplace.mp4", g_work);
    fmtbuf(tmp, sizeof tmp, "%s.tmp", inplace);
    assert_int_equal(sh("cp '%s' '%s'", src, inplace), 0);
    struct mp4_pkts a, b;
    read_pkts(src, &a);

    struct finalize_result res;
    assert_int_equal(finalizer_remux(inplace, inplace, &res), 0);
    assert_string_equal(res.writer, "mp4_faststart");
    assert_int_equal(res.size_bytes, file_size(inplace));
    assert_int_equal(res.packets, total_pkts(&a));
    assert_false(exists(tmp));
    read_pkts(inplace, &b);
    assert_same_packets(&a, &b, NULL);
    assert_true(llabs(res.duration_ms - b.duration_us / 1000) <= 1);
    free_pkts(&b);

    /* the same file again is classic now: libavformat takes it */
    struct finalize_result res2;
    assert_int_equal(finalizer_remux(inplace, inplace, &res2), 0);
    assert_string_equal(res2.writer, "libavformat");
    assert_int_equal(res2.packets, total_pkts(&a));
    assert_true(llabs(res2.duration_ms - res.duration_ms) <= 2);
    read_pkts(inplace, &b);
    assert_same_packets(&a, &b, NULL);
    free_pkts(&b);
    free_pkts(&a);
}

static double thread_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU of finalizing a 60 s 720p recording, page cache warm: best of 3 of
 * each way. The writer copies bytes and builds a table; the remux demuxes
 * and muxes every packet and reads the file twice (faststart's second pass). */
static void test_writer_costs_less_cpu_than_the_remux(void **state)
{
    (void)state;
    const char *src = record("clip60", false, "clip60.frag.mp4");
    char out[PATH_MAX];
    fmtbuf(out, sizeof out, "%s/clip60.out.mp4", g_work);
    double best_new = 1e9, best_old = 1e9;
    for (int i = 0; i < 4; i++) { /* the first round warms the cache */
        /* a new output each time, as in production (truncating the last
         * one would charge its page cache teardown to the next writer) */
        char reason[256];
        unlink(out);
        double t0 = thread_cpu_s();
        assert_int_equal(mp4_faststart_write(src, out, NULL, reason, sizeof reason), 0);
        double t1 = thread_cpu_s();
        unlink(out);
        struct finalize_result res;
        double t2 = thread_cpu_s();
        assert_int_equal(finalizer_remux_libavformat(src, out, &res), 0);
        double t3 = thread_cpu_s();
        if (i == 0)
            continue;
        best_new = t1 - t0 < best_new ? t1 - t0 : best_new;
        best_old = t3 - t2 < best_old ? t3 - t2 : best_old;
    }
    print_message("finalize 60 s 720p (%lld bytes): mp4_faststart %.1f ms CPU, libavformat %.1f ms CPU\n",
                  file_size(src), best_new * 1e3, best_old * 1e3);
    assert_true(best_new < best_old);
}

static int group_setup(void **state)
{
    (void)state;
    assert_int_equal(loop_global_init(), 0);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    fmtbuf(g_media, sizeof g_media, "%s/castgate-test-media", tmp);
    file_store_mkdir_p(g_media, 0755);
    fmtbuf(g_work, sizeof g_work, "%s/castgate-test-fs.XXXXXX", tmp);
    assert_non_null(mkdtemp(g_work));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!getenv("KEEP_TEST_FILES"))
        file_store_remove_tree(g_work, NULL);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recording_becomes_faststart_with_the_same_packets),
        cmocka_unit_test(test_truncated_recording_keeps_every_complete_sample),
        cmocka_unit_test(test_other_inputs_are_refused_cleanly),
        cmocka_unit_test(test_corrupted_recordings_never_crash),
        cmocka_unit_test(test_chunk_offsets_switch_to_co64_past_4gib),
        cmocka_unit_test(test_finalizer_uses_the_writer_and_falls_back_to_libavformat),
        cmocka_unit_test(test_writer_costs_less_cpu_than_the_remux),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
