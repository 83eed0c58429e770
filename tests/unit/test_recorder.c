/* test_recorder.c — the MP4 recorder and the faststart finalizer with real
 * media (SPEC REC-1, REC-3).
 *
 * Media: ffmpeg (lavfi test source + sine, libx264 + aac) writes FLV clips
 * once into a cache directory; a tiny FLV tag walker with ingest's own tag
 * parsers turns them into the codec configs and frames ingest hands over
 * (core/media.h), and the CMAF segmenter into the init + parts the gateway
 * gives the recorder. Both run on a real loop thread with a real writer
 * thread; the result is judged by ffprobe/ffmpeg and by walking the MP4
 * boxes ourselves. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <libavformat/avformat.h>

#include "core/bytes.h"
#include "core/loop.h"
#include "core/media.h"
#include "api/recordings.h"
#include "ingest/flv.h"
#include "packager/cmaf_segmenter.h"
#include "packager/recorder.h"
#include "storage/file_store.h"
#include "storage/finalizer.h"

/* --- test media ---------------------------------------------------------- */

static char g_media[PATH_MAX];  /* cache of generated clips */
static char g_work[PATH_MAX];   /* per-run scratch directory */

/* snprintf without gcc's truncation analysis (paths here are short). */
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

/* Runs a command and returns its stdout's first line parsed as a double. */
static double sh_double(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static double sh_double(const char *fmt, ...)
{
    char cmd[4096], line[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    if (!fgets(line, sizeof line, p))
        line[0] = 0;
    pclose(p);
    return line[0] ? atof(line) : -1;
}

/* Generates clip NAME once: SECONDS of SIZE video at 30 fps (GOP 2 s,
 * 2.5 Mbit/s) + 44.1 kHz stereo AAC, or a -stream_loop copy of another clip. */
static const char *media(const char *name)
{
    static char path[8][PATH_MAX];
    static int next;
    char *p = path[next++ % 8];
    bool mp4 = strcmp(name, "hevc4") == 0 || strcmp(name, "av1_4") == 0;
    fmtbuf(p, PATH_MAX, "%s/%s.%s", g_media, name, mp4 ? "mp4" : "flv");
    if (access(p, R_OK) == 0)
        return p;
    int rc;
    if (strcmp(name, "clip10") == 0)
        rc = sh("ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i "
                "sine=frequency=440:sample_rate=44100 -t 10 -c:v libx264 -preset veryfast -g 60 "
                "-b:v 2500k -maxrate 2500k -bufsize 5000k -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 "
                "-f flv %s.tmp && mv %s.tmp %s", p, p, p);
    else if (strcmp(name, "small4") == 0)
        rc = sh("ffmpeg -v error -y -f lavfi -i testsrc=size=640x360:rate=30 -f lavfi -i "
                "sine=frequency=880:sample_rate=44100 -t 4 -c:v libx264 -preset veryfast -g 30 "
                "-pix_fmt yuv420p -c:a aac -b:a 96k -ac 2 -f flv %s.tmp && mv %s.tmp %s", p, p, p);
    else if (strcmp(name, "hevc4") == 0)
        rc = sh("ffmpeg -v error -y -f lavfi -i testsrc=size=640x360:rate=30 -t 4 -c:v libx265 "
                "-preset ultrafast -x265-params log-level=error -tag:v hvc1 -g 30 -f mp4 %s.tmp && "
                "mv %s.tmp %s", p, p, p);
    else if (strcmp(name, "av1_4") == 0)
        rc = sh("ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=30 -t 4 -c:v libsvtav1 "
                "-preset 12 -g 30 -f mp4 %s.tmp 2>/dev/null && mv %s.tmp %s", p, p, p);
    else if (strcmp(name, "clip60") == 0)
        rc = sh("ffmpeg -v error -y -stream_loop 5 -i %s -c copy -f flv %s.tmp && mv %s.tmp %s",
                media("clip10"), p, p, p);
    else
        rc = -1;
    assert_int_equal(rc, 0);
    return p;
}

/* --- a tiny FLV reader (FLV spec v10.1 §E.4) ------------------------------ */

struct media_event {
    bool is_config;
    struct media_codec_config cfg;
    struct media_frame frame;
};

struct clip {
    uint8_t *buf;
    size_t len;
    struct media_event *ev;
    size_t n;
    int64_t last_dts;
    size_t video_frames, audio_frames;
    uint8_t **owned;   /* copies made by clip_load_mp4 */
    size_t nowned;
};

static void clip_free(struct clip *c)
{
    for (size_t i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->buf);
    free(c->ev);
    memset(c, 0, sizeof *c);
}

static void clip_load(const char *path, struct clip *c)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    c->buf = malloc((size_t)sz);
    assert_non_null(c->buf);
    assert_int_equal(fread(c->buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    c->len = (size_t)sz;
    assert_true(c->len > 13 && memcmp(c->buf, "FLV", 3) == 0);
    size_t cap = 4096;
    c->ev = calloc(cap, sizeof *c->ev);
    size_t pos = rd_be32(c->buf + 5) + 4; /* header, then PreviousTagSize0 */
    while (pos + 11 <= c->len) {
        const uint8_t *t = c->buf + pos;
        int type = t[0] & 0x1f;
        size_t dlen = rd_be24(t + 1);
        int64_t ts = (int64_t)(rd_be24(t + 4) | ((uint32_t)t[7] << 24));
        if (pos + 11 + dlen + 4 > c->len)
            break;
        const uint8_t *d = t + 11;
        pos += 11 + dlen + 4;
        if (c->n == cap) {
            cap *= 2;
            c->ev = realloc(c->ev, cap * sizeof *c->ev);
        }
        struct media_event *e = &c->ev[c->n];
        memset(e, 0, sizeof *e);
        /* What ingest hands over: its own FLV tag parsers (ingest/flv.h). */
        const char *why = NULL;
        int got = type == 9   ? flv_parse_video(d, dlen, ts, &e->cfg, &e->frame, &why)
                  : type == 8 ? flv_parse_audio(d, dlen, ts, &e->cfg, &e->frame, &why)
                              : FLV_IGNORED;
        if (got == FLV_CONFIG)
            e->is_config = true;
        else if (got == FLV_FRAME && e->frame.kind == MEDIA_KIND_VIDEO)
            c->video_frames++;
        else if (got == FLV_FRAME)
            c->audio_frames++;
        else
            continue;
        if (!e->is_config && ts > c->last_dts)
            c->last_dts = ts;
        c->n++;
    }
    assert_true(c->n > 10);
}


static const uint8_t *own(struct clip *c, const uint8_t *data, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, data, len);
    c->owned = realloc(c->owned, (c->nowned + 1) * sizeof *c->owned);
    c->owned[c->nowned++] = p;
    return p;
}

/* An MP4 read with libavformat into the same events (HEVC: hvcC + length-
 * prefixed NAL units; AV1: av1C + OBUs — what ingest hands over for Enhanced
 * RTMP). Width/height are left 0: the recorder must find them itself. */
static void clip_load_mp4(const char *path, struct clip *c)
{
    memset(c, 0, sizeof *c);
    AVFormatContext *ic = NULL;
    assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
    size_t cap = 1024;
    c->ev = calloc(cap, sizeof *c->ev);
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        AVCodecParameters *par = ic->streams[i]->codecpar;
        struct media_event *e = &c->ev[c->n++];
        memset(e, 0, sizeof *e);
        e->is_config = true;
        e->cfg.kind = par->codec_type == AVMEDIA_TYPE_AUDIO ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO;
        e->cfg.codec = par->codec_id == AV_CODEC_ID_HEVC ? MEDIA_CODEC_HEVC
                       : par->codec_id == AV_CODEC_ID_AV1 ? MEDIA_CODEC_AV1
                       : par->codec_id == AV_CODEC_ID_AAC ? MEDIA_CODEC_AAC
                                                          : MEDIA_CODEC_H264;
        e->cfg.extradata = own(c, par->extradata, (size_t)par->extradata_size);
        e->cfg.extradata_len = (size_t)par->extradata_size;
        fmtbuf(e->cfg.codec_string, sizeof e->cfg.codec_string, "%s", avcodec_get_name(par->codec_id));
        /* as ingest does: size and codec string from the configuration record */
        if (e->cfg.codec == MEDIA_CODEC_HEVC)
            assert_int_equal(flv_parse_hvcc(e->cfg.extradata, e->cfg.extradata_len, &e->cfg), 0);
        else if (e->cfg.codec == MEDIA_CODEC_AV1)
            assert_int_equal(flv_parse_av1c(e->cfg.extradata, e->cfg.extradata_len, &e->cfg), 0);
    }
    AVPacket *pkt = av_packet_alloc();
    while (av_read_frame(ic, pkt) >= 0) {
        if (c->n == cap) {
            cap *= 2;
            c->ev = realloc(c->ev, cap * sizeof *c->ev);
        }
        AVStream *st = ic->streams[pkt->stream_index];
        struct media_event *e = &c->ev[c->n++];
        memset(e, 0, sizeof *e);
        bool audio = st->codecpar->codec_type == AVMEDIA_TYPE_AUDIO;
        e->frame.kind = audio ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO;
        e->frame.dts_ms = av_rescale_q(pkt->dts, st->time_base, (AVRational){1, 1000});
        e->frame.cts_ms = (int32_t)(av_rescale_q(pkt->pts, st->time_base, (AVRational){1, 1000}) -
                                    e->frame.dts_ms);
        e->frame.keyframe = audio || (pkt->flags & AV_PKT_FLAG_KEY);
        e->frame.data = own(c, pkt->data, (size_t)pkt->size);
        e->frame.len = (size_t)pkt->size;
        if (audio)
            c->audio_frames++;
        else
            c->video_frames++;
        if (e->frame.dts_ms > c->last_dts)
            c->last_dts = e->frame.dts_ms;
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    avformat_close_input(&ic);
}

/* --- MP4 box walk --------------------------------------------------------- */

/* Top-level box types of an MP4 file, in order, as a string "ftyp moov mdat". */
static void top_boxes(const char *path, char *out, size_t outlen, int *nmoof)
{
    out[0] = 0;
    *nmoof = 0;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t h[16];
    long long pos = 0;
    size_t used = 0;
    while (fseek(f, pos, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
        uint64_t size = rd_be32(h);
        if (size == 1) {
            if (fread(h + 8, 1, 8, f) != 8)
                break;
            size = rd_be64(h + 8);
        }
        if (size < 8)
            break;
        char type[5] = {(char)h[4], (char)h[5], (char)h[6], (char)h[7], 0};
        if (strcmp(type, "moof") == 0)
            (*nmoof)++;
        else if (used + 6 < outlen) {
            used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? " " : "", type);
        }
        pos += (long long)size;
    }
    fclose(f);
}

static double probe_duration(const char *path)
{
    return sh_double("ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 '%s'", path);
}

/* Decodes the file completely; returns the pts (s) of the last decoded video
 * frame, or -1 if ffmpeg could not decode. */
static double decoded_video_end(const char *path)
{
    return sh_double("ffprobe -v quiet -select_streams v:0 -show_entries frame=pts_time "
                     "-of csv=p=0 '%s' | sort -g | tail -n 1", path);
}

static long decoded_video_frames(const char *path)
{
    return (long)sh_double("ffprobe -v error -select_streams v:0 -count_frames -show_entries "
                           "stream=nb_read_frames -of default=nw=1:nk=1 '%s'", path);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* --- driving a recorder on a loop ----------------------------------------- */

struct run {
    struct loop *loop;
    const struct clip *clip;
    struct cmaf_segmenter *seg;      /* frames -> init + parts, as in the gateway */
    struct recorder *rec;
    struct file_writer *writer;      /* NULL = private */
    char path[PATH_MAX];
    char path2[PATH_MAX];            /* next file after a rotation */
    bool null_path;                  /* start without a path, set it after `set_path_after` events */
    size_t set_path_after;
    const struct clip *clip2;        /* fed after clip (a codec change) */
    bool only_audio;
    size_t next;                     /* next event */
    size_t stop_after;               /* 0 = all events */
    double speed;                    /* 0 = as fast as possible, else × real time */
    long long t0_ms;
    struct event *timer;
    int progress_fd;                 /* kill test: writes fed dts here */
    int stop_loop_when_done;
    /* results */
    sem_t done;
    int closed_calls;
    int closed_error[4];
    char closed_reason[4][256];
    char closed_path[4][PATH_MAX];
    struct recorder_stats closed_stats[4];
    int error_calls;
    char error_reason[256];
    int frame_failures;
    int rotations;
    struct recorder_stats final_stats;
    int expect_closed;
};

static void on_error(void *ctx, const char *path, const char *reason)
{
    struct run *r = ctx;
    (void)path;
    r->error_calls++;
    snprintf(r->error_reason, sizeof r->error_reason, "%s", reason);
}

static void on_file_closed(void *ctx, const char *path, const struct recorder_stats *st, int error,
                           const char *reason)
{
    struct run *r = ctx;
    int i = r->closed_calls++;
    if (i < 4) {
        r->closed_error[i] = error;
        snprintf(r->closed_reason[i], sizeof r->closed_reason[i], "%s", reason);
        snprintf(r->closed_path[i], sizeof r->closed_path[i], "%s", path);
        r->closed_stats[i] = *st;
    }
    if (r->closed_calls == r->expect_closed)
        sem_post(&r->done);
}

static const struct media_event *event_at(struct run *r, size_t i)
{
    if (i < r->clip->n)
        return &r->clip->ev[i];
    if (r->clip2 && i - r->clip->n < r->clip2->n)
        return &r->clip2->ev[i - r->clip->n];
    return NULL;
}

/* The segmenter's sink, wired to the recorder as broadcast/gateway.c does. */
static void sink_init(void *ctx, const struct cmaf_init *init)
{
    struct run *r = ctx;
    if (recorder_init(r->rec, init) == RECORDER_ROTATED) {
        r->rotations++;
        assert_int_equal(recorder_set_path(r->rec, r->path2), 0);
    }
}

static void sink_part(void *ctx, const struct cmaf_part *part)
{
    struct run *r = ctx;
    if (recorder_part(r->rec, part) != 0)
        r->frame_failures++;
}

static void sink_segment(void *ctx, const struct cmaf_segment *seg)
{
    (void)ctx;
    (void)seg;
}

static void feed_one(struct run *r, const struct media_event *e)
{
    if (e->is_config) {
        if (r->only_audio && e->cfg.kind == MEDIA_KIND_VIDEO)
            return;
        assert_int_equal(cmaf_segmenter_config(r->seg, &e->cfg), 0);
        return;
    }
    if (r->only_audio && e->frame.kind == MEDIA_KIND_VIDEO)
        return;
    struct media_frame f = e->frame;
    if (r->clip2 && e >= r->clip2->ev && e < r->clip2->ev + r->clip2->n)
        f.dts_ms += r->clip->last_dts + 40; /* the second clip continues in time */
    assert_int_equal(cmaf_segmenter_frame(r->seg, &f), 0);
}

static void finish(struct run *r)
{
    cmaf_segmenter_flush(r->seg);
    cmaf_segmenter_free(r->seg);
    r->seg = NULL;
    recorder_close(r->rec, &r->final_stats);
    recorder_free(r->rec); /* a private writer is joined here: the close is posted */
    r->rec = NULL;
    if (r->timer) {
        event_free(r->timer);
        r->timer = NULL;
    }
}

static void feed_step(evutil_socket_t fd, short what, void *arg);

static void feed_post(void *arg) { feed_step(-1, 0, arg); }

static void feed_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct run *r = arg;
    if (!r->rec) {
        struct recorder_config cfg = {
            .path = r->null_path ? NULL : r->path,
            .loop = r->loop,
            .writer = r->writer,
            .ctx = r,
            .on_error = on_error,
            .on_file_closed = on_file_closed,
        };
        r->rec = recorder_new(&cfg);
        assert_non_null(r->rec);
        struct cmaf_segmenter_config sc;
        cmaf_segmenter_config_defaults(&sc);
        struct cmaf_sink sink = {r, sink_init, sink_part, sink_segment};
        char err[256];
        r->seg = cmaf_segmenter_new(&sc, &sink, err, sizeof err);
        assert_non_null(r->seg);
        r->t0_ms = loop_now_ms();
    }
    size_t end = r->stop_after ? r->stop_after : SIZE_MAX;
    int budget = 64;
    const struct media_event *e;
    int64_t fed = -1;
    while (budget-- > 0 && r->next < end && (e = event_at(r, r->next)) != NULL) {
        if (r->speed > 0 && !e->is_config &&
            (double)e->frame.dts_ms / r->speed > (double)(loop_now_ms() - r->t0_ms))
            break; /* not due yet */
        if (r->null_path && r->next == r->set_path_after)
            assert_int_equal(recorder_set_path(r->rec, r->path), 0);
        feed_one(r, e);
        if (!e->is_config)
            fed = e->frame.dts_ms;
        r->next++;
    }
    if (fed >= 0 && r->progress_fd >= 0) {
        ssize_t n = write(r->progress_fd, &fed, sizeof fed);
        (void)n;
    }
    if (r->next >= end || !event_at(r, r->next)) {
        finish(r);
        return;
    }
    if (r->speed > 0) {
        struct timeval tv = {0, 10000};
        evtimer_add(r->timer, &tv);
    } else
        assert_int_equal(loop_post(r->loop, feed_post, r), 0);
}

/* Runs the scenario on a loop thread and waits for the expected closes. */
static void run_scenario(struct run *r)
{
    sem_init(&r->done, 0, 0);
    if (!r->expect_closed)
        r->expect_closed = 1;
    r->loop = loop_new("t-rec", 65536);
    assert_non_null(r->loop);
    r->progress_fd = r->progress_fd ? r->progress_fd : -1;
    if (r->speed > 0)
        r->timer = evtimer_new(loop_base(r->loop), feed_step, r);
    assert_int_equal(loop_start(r->loop), 0);
    assert_int_equal(loop_post(r->loop, feed_post, r), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 120;
    assert_int_equal(sem_timedwait(&r->done, &ts), 0);
    loop_stop(r->loop);
    loop_free(r->loop);
    sem_destroy(&r->done);
}

/* --- tests ----------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    assert_int_equal(loop_global_init(), 0);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    fmtbuf(g_media, sizeof g_media, "%s/castgate-test-media", tmp);
    file_store_mkdir_p(g_media, 0755);
    fmtbuf(g_work, sizeof g_work, "%s/castgate-test-rec.XXXXXX", tmp);
    assert_non_null(mkdtemp(g_work));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char full[PATH_MAX];
    fmtbuf(full, sizeof full, "%s/full", g_work);
    umount2(full, MNT_DETACH); /* in case the disk-full test failed half-way */
    if (!getenv("KEEP_TEST_FILES"))
        file_store_remove_tree(g_work, NULL);
    return 0;
}

/* Table: how a clip is fed, and what the file must then be. */
struct record_case {
    const char *name;
    bool null_path;          /* no path at first: frames queue */
    size_t set_path_after;   /* events fed before the path is given */
    bool only_audio;
    bool shared_writer;
    double min_duration, max_duration; /* ffprobe, seconds */
    bool expect_video;
};

static const struct record_case record_cases[] = {
    {"full_clip", false, 0, false, false, 9.8, 10.2, true},
    {"path_given_late_frames_queued", true, 200, false, true, 9.8, 10.2, true},
    {"audio_only_after_waiting_for_video", false, 0, true, false, 9.7, 10.2, false},
};

static void test_recorder_writes_playable_file_with_clip_duration(void **state)
{
    (void)state;
    struct clip clip;
    clip_load(media("clip10"), &clip);
    for (size_t i = 0; i < sizeof record_cases / sizeof record_cases[0]; i++) {
        const struct record_case *tc = &record_cases[i];
        struct run r;
        memset(&r, 0, sizeof r);
        r.clip = &clip;
        r.null_path = tc->null_path;
        r.set_path_after = tc->set_path_after;
        r.only_audio = tc->only_audio;
        if (tc->shared_writer)
            r.writer = file_writer_new("t-writer", 0, 0);
        fmtbuf(r.path, sizeof r.path, "%s/%s/1.mp4", g_work, tc->name);
        run_scenario(&r);
        if (r.writer)
            file_writer_free(r.writer);

        print_message("case %s: bytes=%llu parts=%llu dropped=%llu flushes=%llu dur=%lld\n", tc->name,
                      (unsigned long long)r.closed_stats[0].bytes,
                      (unsigned long long)r.final_stats.parts, (unsigned long long)r.final_stats.dropped,
                      (unsigned long long)r.final_stats.flushes, (long long)r.final_stats.duration_ms);
        assert_int_equal(r.error_calls, 0);
        assert_int_equal(r.frame_failures, 0);
        assert_int_equal(r.closed_calls, 1);
        assert_int_equal(r.closed_error[0], 0);
        assert_string_equal(r.closed_path[0], r.path);
        assert_int_equal((long long)r.closed_stats[0].bytes, file_size(r.path));
        double d = probe_duration(r.path);
        if (d < tc->min_duration || d > tc->max_duration)
            fail_msg("case %s: duration %.3f not in [%.2f, %.2f]", tc->name, d, tc->min_duration,
                     tc->max_duration);
        char boxes[256];
        int nmoof;
        top_boxes(r.path, boxes, sizeof boxes, &nmoof);
        assert_true(strncmp(boxes, "ftyp moov mdat", 14) == 0);
        assert_true(nmoof >= 4); /* about one fragment per keyframe (2 s GOP) or per second */
        if (tc->expect_video) {
            /* Every frame of the clip decodes: nothing lost, nothing broken. */
            assert_int_equal(decoded_video_frames(r.path), (long)clip.video_frames);
            assert_int_equal((long)r.final_stats.dropped, 0);
        } else {
            assert_int_equal(sh("ffprobe -v error -select_streams v -show_entries stream=index "
                                "-of csv=p=0 '%s' | grep -q .", r.path), 1);
        }
    }
    clip_free(&clip);
}


/* ING-5: HEVC and AV1 (Enhanced RTMP) are recorded too; the picture size is
 * read from the first keyframe when the config did not carry it. */
static void test_recorder_records_hevc_and_av1(void **state)
{
    (void)state;
    static const struct {
        const char *clip, *codec;
        int width;
    } cases[] = {
        {"hevc4", "hevc", 640},
        {"av1_4", "av1", 320},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct clip clip;
        clip_load_mp4(media(cases[i].clip), &clip);
        struct run r;
        memset(&r, 0, sizeof r);
        r.clip = &clip;
        fmtbuf(r.path, sizeof r.path, "%s/%s/1.mp4", g_work, cases[i].clip);
        run_scenario(&r);
        assert_int_equal(r.error_calls, 0);
        assert_int_equal(r.closed_error[0], 0);
        double d = probe_duration(r.path);
        if (d < 3.9 || d > 4.1)
            fail_msg("%s: duration %.3f", cases[i].clip, d);
        char cmd[PATH_MAX + 200];
        fmtbuf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width "
               "-of csv=p=0 '%s' | grep -qx '%s,%d'", r.path, cases[i].codec, cases[i].width);
        if (sh("%s", cmd) != 0)
            fail_msg("%s: codec/width not as expected", cases[i].clip);
        assert_int_equal(decoded_video_frames(r.path), (long)clip.video_frames);
        /* and it finalizes */
        struct finalize_result res;
        char out[PATH_MAX];
        fmtbuf(out, sizeof out, "%s.final.mp4", r.path);
        assert_int_equal(finalizer_remux(r.path, out, &res), 0);
        assert_int_equal(decoded_video_frames(out), (long)clip.video_frames);
        clip_free(&clip);
    }
}

static void test_recorder_codec_change_closes_file_and_starts_next(void **state)
{
    (void)state;
    struct clip a, b;
    clip_load(media("clip10"), &a);
    clip_load(media("small4"), &b);
    struct run r;
    memset(&r, 0, sizeof r);
    r.clip = &a;
    r.clip2 = &b;
    r.expect_closed = 2;
    fmtbuf(r.path, sizeof r.path, "%s/rotate/1.mp4", g_work);
    fmtbuf(r.path2, sizeof r.path2, "%s/rotate/2.mp4", g_work);
    run_scenario(&r);
    assert_int_equal(r.rotations, 1);
    assert_int_equal(r.closed_calls, 2);
    assert_string_equal(r.closed_path[0], r.path);
    assert_string_equal(r.closed_path[1], r.path2);
    assert_int_equal(r.closed_error[0], 0);
    assert_int_equal(r.closed_error[1], 0);
    double d1 = probe_duration(r.path), d2 = probe_duration(r.path2);
    assert_true(d1 > 9.8 && d1 < 10.2);
    assert_true(d2 > 3.8 && d2 < 4.2);
    /* The second file joined the stream 10 s in, yet starts at 0 (tfdt
     * rebased), already before the finalizer. */
    double start2 = sh_double("ffprobe -v error -show_entries format=start_time -of csv=p=0 '%s'", r.path2);
    assert_true(start2 >= 0 && start2 < 0.1);
    double w = sh_double("ffprobe -v error -select_streams v:0 -show_entries stream=width "
                         "-of csv=p=0 '%s'", r.path2);
    assert_true(w == 640);
    clip_free(&a);
    clip_free(&b);
}

/* A child records at real-time pace and is SIGKILLed mid-way: the file
 * decodes up to within ~2 s of what was fed (fragments are ~1-2 s). */
static void test_recorder_kill9_leaves_file_playable_up_to_last_fragment(void **state)
{
    (void)state;
    struct clip clip;
    clip_load(media("clip10"), &clip);
    char path[PATH_MAX];
    fmtbuf(path, sizeof path, "%s/kill9/1.mp4", g_work);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        struct run r;
        memset(&r, 0, sizeof r);
        r.clip = &clip;
        r.speed = 2.0; /* twice real time: 6 s of media in 3 s */
        r.progress_fd = pfd[1];
        fmtbuf(r.path, sizeof r.path, "%s", path);
        run_scenario(&r);
        _exit(0);
    }
    close(pfd[1]);
    int64_t fed = 0, v;
    /* 5.5 s: between two keyframes (GOP 2 s), the worst place to die. */
    while (fed < 5500 && read(pfd[0], &v, sizeof v) == (ssize_t)sizeof v)
        fed = v;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(pfd[0]);
    assert_true(WIFSIGNALED(status));
    assert_true(fed >= 5500);

    double end = decoded_video_end(path);
    double lost = (double)fed / 1000.0 - end;
    print_message("kill -9 after %.3f s fed: decodes to %.3f s, lost %.3f s\n", fed / 1000.0, end, lost);
    assert_true(end > 1.0);
    /* decoded end is a pts (B-frames put it up to ~100 ms past the dts fed) */
    assert_true(lost >= -0.2 && lost <= 2.5);
    assert_int_equal(sh("ffmpeg -v error -xerror -i '%s' -f null - 2>/dev/null", path), 0);

    /* The finalizer turns what survived into a faststart file. */
    char out[PATH_MAX];
    fmtbuf(out, sizeof out, "%s/kill9/1.final.mp4", g_work);
    struct finalize_result res;
    assert_int_equal(finalizer_remux(path, out, &res), 0);
    assert_true(res.duration_ms > (int64_t)(end * 1000) - 200);
    assert_true(res.duration_ms < (int64_t)(end * 1000) + 400);
    clip_free(&clip);
}

static void test_finalize_puts_moov_before_mdat_and_keeps_duration(void **state)
{
    (void)state;
    struct clip clip;
    clip_load(media("clip10"), &clip);
    struct run r;
    memset(&r, 0, sizeof r);
    r.clip = &clip;
    fmtbuf(r.path, sizeof r.path, "%s/final/1.mp4", g_work);
    run_scenario(&r);
    assert_int_equal(r.closed_error[0], 0);
    double before = probe_duration(r.path);

    struct finalize_result res;
    long long t0 = loop_now_us();
    assert_int_equal(finalizer_remux(r.path, r.path, &res), 0); /* in place: tmp + rename */
    long long us = loop_now_us() - t0;
    print_message("finalize 10 s: %lld us, %lld bytes, %lld ms\n", us, (long long)res.size_bytes,
                  (long long)res.duration_ms);
    char boxes[256];
    int nmoof;
    top_boxes(r.path, boxes, sizeof boxes, &nmoof);
    print_message("boxes after finalize: %s\n", boxes);
    assert_int_equal(nmoof, 0);
    char *moov = strstr(boxes, "moov"), *mdat = strstr(boxes, "mdat");
    assert_non_null(moov);
    assert_non_null(mdat);
    assert_true(moov < mdat);
    assert_int_equal(res.size_bytes, file_size(r.path));
    double after = probe_duration(r.path);
    assert_true(after > before - 0.05 && after < before + 0.05);
    assert_true(res.duration_ms > (int64_t)(before * 1000) - 60 &&
                res.duration_ms < (int64_t)(before * 1000) + 60);
    assert_int_equal(decoded_video_frames(r.path), (long)clip.video_frames);
    char tmp[PATH_MAX];
    fmtbuf(tmp, sizeof tmp, "%s.tmp", r.path);
    assert_int_equal(access(tmp, F_OK), -1);

    /* Garbage in: a clear failure, the source untouched. */
    char bad[PATH_MAX], bad_out[PATH_MAX];
    fmtbuf(bad, sizeof bad, "%s/final/bad.mp4", g_work);
    fmtbuf(bad_out, sizeof bad_out, "%s/final/bad.out.mp4", g_work);
    assert_int_equal(file_store_write_atomic(bad, "not an mp4 at all", 17), 0);
    assert_int_equal(finalizer_remux(bad, bad_out, &res), -1);
    assert_true(res.reason[0] != 0);
    assert_int_equal(file_size(bad), 17);
    assert_int_equal(access(bad_out, F_OK), -1);
    clip_free(&clip);
}

/* Disk full: a 2 MiB tmpfs (or, without mount rights, RLIMIT_FSIZE with
 * SIGXFSZ ignored) under a 3 MB recording → one clear error, frames refused
 * from then on, no crash, the close reports the failure. */
static void test_recorder_disk_full_fails_cleanly(void **state)
{
    (void)state;
    struct clip clip;
    clip_load(media("clip10"), &clip);
    char dir[PATH_MAX];
    fmtbuf(dir, sizeof dir, "%s/full", g_work);
    assert_int_equal(file_store_mkdir_p(dir, 0755), 0);
    bool mounted = mount("tmpfs", dir, "tmpfs", 0, "size=2m") == 0;
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    if (!mounted) {
        print_message("tmpfs mount refused (%s): using RLIMIT_FSIZE\n", strerror(errno));
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {2u << 20, old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    }
    struct run r;
    memset(&r, 0, sizeof r);
    r.clip = &clip;
    r.speed = 20; /* the writer keeps up, so the failure arrives while recording */
    fmtbuf(r.path, sizeof r.path, "%s/1.mp4", dir);
    run_scenario(&r);
    if (!mounted)
        setrlimit(RLIMIT_FSIZE, &old);
    print_message("disk full: error=\"%s\" frames refused=%d\n", r.error_reason, r.frame_failures);
    assert_int_equal(r.error_calls, 1);
    assert_true(strstr(r.error_reason, mounted ? "No space left" : "too large") != NULL);
    assert_true(r.frame_failures > 0);
    assert_int_equal(r.closed_calls, 1);
    assert_true(r.closed_error[0] == ENOSPC || r.closed_error[0] == EFBIG);
    /* What did reach the disk is still a readable fragmented MP4. */
    assert_true(decoded_video_end(r.path) > 1.0);
    if (mounted)
        assert_int_equal(umount(dir), 0);
    clip_free(&clip);
}

/* Recorder CPU per stream: a 60 s 2.5 Mbit/s clip fed as fast as possible on
 * the loop thread; the muxing cost must be a small fraction of real time. */
static void test_recorder_cpu_per_stream_is_small(void **state)
{
    (void)state;
    struct clip clip;
    clip_load(media("clip60"), &clip);
    struct run r;
    memset(&r, 0, sizeof r);
    r.clip = &clip;
    fmtbuf(r.path, sizeof r.path, "%s/cpu/1.mp4", g_work);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    run_scenario(&r);
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    double media_s = (double)clip.last_dts / 1000.0;
    print_message("recorder CPU: %.3f s for %.1f s of media (%.3f%% of one core per stream), %llu bytes\n",
                  cpu, media_s, 100.0 * cpu / media_s, (unsigned long long)r.closed_stats[0].bytes);
    assert_int_equal(r.closed_error[0], 0);
    assert_true(media_s > 59);
    assert_true(cpu / media_s < 0.05);

    /* Finalize time for the same 60 s, for the record. */
    struct finalize_result res;
    long long t0 = loop_now_us();
    assert_int_equal(finalizer_remux(r.path, r.path, &res), 0);
    print_message("finalize 60 s: %.3f s\n", (double)(loop_now_us() - t0) / 1e6);
    assert_true(res.duration_ms > 59500);
    clip_free(&clip);
}


/* --- pure helpers of the recordings path ---------------------------------- */

static void test_download_range_header_is_parsed_per_rfc9110(void **state)
{
    (void)state;
    static const struct {
        const char *h;
        int64_t size;
        int rc;
        int64_t first, last;
    } cases[] = {
        {NULL, 100, 0, 0, 0},
        {"bytes=0-9", 100, 1, 0, 9},
        {"bytes=10-", 100, 1, 10, 99},
        {"bytes=-10", 100, 1, 90, 99},
        {"bytes=-1000", 100, 1, 0, 99},
        {"bytes=50-5000", 100, 1, 50, 99},
        {"bytes=99-99", 100, 1, 99, 99},
        {"BYTES=1-2", 100, 1, 1, 2},
        {"bytes=100-", 100, -1, 0, 0},   /* starts past the end: 416 */
        {"bytes=-0", 100, -1, 0, 0},
        {"bytes=0-", 0, -1, 0, 0},
        {"bytes=5-1", 100, 0, 0, 0},     /* invalid: ignored, whole file */
        {"bytes=0-1,4-5", 100, 0, 0, 0}, /* several: whole file */
        {"bytes=", 100, 0, 0, 0},
        {"bytes=-", 100, 0, 0, 0},
        {"bytes=a-b", 100, 0, 0, 0},
        {"items=0-1", 100, 0, 0, 0},
        {"bytes=99999999999999999999-", 100, 0, 0, 0},
        {"bytes=1-2x", 100, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t first = -7, last = -7;
        int rc = recordings_parse_range(cases[i].h, cases[i].size, &first, &last);
        if (rc != cases[i].rc)
            fail_msg("Range \"%s\": rc %d, want %d", cases[i].h ? cases[i].h : "(none)", rc, cases[i].rc);
        if (rc == 1 && (first != cases[i].first || last != cases[i].last))
            fail_msg("Range \"%s\": %lld-%lld", cases[i].h, (long long)first, (long long)last);
    }
}

static void test_download_url_signature_is_hmac_sha256_of_path_and_expiry(void **state)
{
    (void)state;
    char out[512];
    /* echo -n $'/downloads/recordings/42/room7-x-42.mp4\n1700000000' |
     *   openssl dgst -sha256 -hmac secret-key */
    assert_int_equal(recordings_sign_path("secret-key", 42, "room7-x-42.mp4", 1700000000, out, sizeof out), 0);
    char want[512];
    FILE *p = popen("printf '/downloads/recordings/42/room7-x-42.mp4\\n1700000000' | "
                    "openssl dgst -sha256 -hmac secret-key | sed 's/.*= //'", "r");
    assert_non_null(p);
    char hexsig[128] = "";
    assert_non_null(fgets(hexsig, sizeof hexsig, p));
    pclose(p);
    hexsig[strcspn(hexsig, "\n")] = 0;
    fmtbuf(want, sizeof want, "/downloads/recordings/42/room7-x-42.mp4?expires=1700000000&sig=%s", hexsig);
    assert_string_equal(out, want);
    assert_int_equal(recordings_sign_path("k", 1, "a.mp4", 1, out, 20), -1); /* too small */
}

static void test_file_store_join_keeps_paths_inside_data_dir(void **state)
{
    (void)state;
    static const struct {
        const char *rel;
        const char *want; /* NULL = refused */
    } cases[] = {
        {"recordings/1/2/3.mp4", "/d/recordings/1/2/3.mp4"},
        {"hls/rooms/7", "/d/hls/rooms/7"},
        {"../etc/passwd", NULL},
        {"recordings/../../x", NULL},
        {"/etc/passwd", NULL},
        {"recordings//x", NULL},
        {"recordings/./x", NULL},
        {"recordings/x/", NULL},
        {"", NULL},
        {"..", NULL},
        {"a..b/c", "/d/a..b/c"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        int rc = file_store_join(out, sizeof out, "/d/", cases[i].rel);
        if (!cases[i].want) {
            if (rc != -1)
                fail_msg("\"%s\" was not refused: %s", cases[i].rel, out);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(out, cases[i].want);
        }
    }
    char rel[64];
    assert_int_equal(file_store_recording_relpath(rel, sizeof rel, 3, 14, 159), 0);
    assert_string_equal(rel, "recordings/3/14/159.mp4");
    assert_int_equal(file_store_room_hls_relpath(rel, sizeof rel, 9), 0);
    assert_string_equal(rel, "hls/rooms/9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorder_writes_playable_file_with_clip_duration),
        cmocka_unit_test(test_recorder_records_hevc_and_av1),
        cmocka_unit_test(test_recorder_codec_change_closes_file_and_starts_next),
        cmocka_unit_test(test_recorder_kill9_leaves_file_playable_up_to_last_fragment),
        cmocka_unit_test(test_finalize_puts_moov_before_mdat_and_keeps_duration),
        cmocka_unit_test(test_recorder_disk_full_fails_cleanly),
        cmocka_unit_test(test_recorder_cpu_per_stream_is_small),
        cmocka_unit_test(test_download_range_header_is_parsed_per_rfc9110),
        cmocka_unit_test(test_download_url_signature_is_hmac_sha256_of_path_and_expiry),
        cmocka_unit_test(test_file_store_join_keeps_paths_inside_data_dir),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
