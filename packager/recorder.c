/* recorder.c — fragmented MP4 recording of one ingest session (SPEC REC-1).
 *
 * Shape: frames → (pending queue while no file) → one held packet per track
 * (its duration is known when the next one arrives) → libavformat mp4 muxer
 * (frag_custom) → custom AVIOContext into `out` → at each fragment cut the
 * bytes go to the file writer thread. See recorder.h for the contract. */
#include "packager/recorder.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/mathematics.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "storage/file_store.h"

#define REC_DEFAULT_FRAGMENT_MS 1000
#define REC_DEFAULT_WAIT_OTHER_MS 2000
#define REC_DEFAULT_PENDING_MAX (16u << 20)
#define REC_DEFAULT_FRAGMENT_MAX (64u << 20)
#define REC_IOBUF_SIZE (32 * 1024) /* a staging copy only: bytes go on to `out` */
/* A fragment is cut at a non-keyframe after this many fragment_ms. */
#define REC_FORCED_CUT_FACTOR 2
/* Default duration of a last sample when no delta is known. */
#define REC_DEFAULT_VIDEO_DUR_MS 33

enum rec_state { REC_WAIT, REC_OPEN, REC_FAILED, REC_CLOSED };

struct rec_codec {
    bool present;
    struct media_codec_config cfg; /* extradata points at `extradata` */
    uint8_t *extradata;
};

struct rec_held {
    bool valid;
    uint8_t *data;
    size_t len, cap;
    int64_t dts, pts;
    bool key;
};

struct rec_track {
    int stream;           /* AVStream index in the file, -1 = not in the file */
    bool has_last;
    int64_t last_dts;     /* input ms of the last accepted frame */
    int64_t last_delta;   /* ms between the last two frames */
    int64_t end_ms;       /* relative end of the last written sample */
    struct rec_held held;
};

struct rec_pending {
    struct rec_pending *next;
    struct media_frame f;
    uint8_t data[];
};

struct recorder {
    struct recorder_config cfg;
    char path[PATH_MAX];
    bool have_path;
    struct file_writer *writer;
    bool own_writer;
    enum rec_state state;
    struct rec_codec codec[2];

    /* the file in progress */
    AVFormatContext *oc;
    AVIOContext *pb;
    struct fw_file *file;
    struct rec_track tr[2];
    bool header_written;
    bool base_set;
    int64_t base_ms;
    int64_t frag_start_ms;   /* relative start of the fragment being built */
    bool frag_has_samples;
    uint8_t *out;
    size_t out_len, out_cap;
    struct recorder_stats stats;
    bool error_reported;

    /* frames waiting for a path or for the other track's config */
    struct rec_pending *pq_head, *pq_tail;
    size_t pq_bytes;
    bool pq_has_first;
    int64_t pq_first_dts, pq_last_dts;
};

static const char *kind_name(int k) { return k == MEDIA_KIND_VIDEO ? "video" : "audio"; }

/* --- memory AVIO ------------------------------------------------------- */

static int avio_write_cb(void *opaque, uint8_t *buf, int size)
{
    struct recorder *r = opaque;
    if (size <= 0)
        return 0;
    size_t need = r->out_len + (size_t)size;
    if (need > r->cfg.fragment_max_bytes)
        return AVERROR(ENOBUFS);
    if (need > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap : 64 * 1024;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(r->out, cap);
        if (!p)
            return AVERROR(ENOMEM);
        r->out = p;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, buf, (size_t)size);
    r->out_len += (size_t)size;
    return size;
}

/* Moves what the muxer produced to the writer thread (ownership of the
 * buffer goes with it). */
static void hand_off(struct recorder *r)
{
    if (r->pb)
        avio_flush(r->pb);
    if (!r->out_len)
        return;
    r->stats.bytes += r->out_len;
    uint8_t *data = r->out;
    size_t len = r->out_len;
    r->out = NULL;
    r->out_len = r->out_cap = 0;
    file_writer_append(r->file, data, len); /* failure reaches us via on_error */
}

/* --- failure ----------------------------------------------------------- */

static void teardown_muxer(struct recorder *r)
{
    if (r->oc) {
        avformat_free_context(r->oc);
        r->oc = NULL;
    }
    if (r->pb) {
        av_freep(&r->pb->buffer);
        avio_context_free(&r->pb);
    }
    free(r->out);
    r->out = NULL;
    r->out_len = r->out_cap = 0;
    for (int k = 0; k < 2; k++) {
        free(r->tr[k].held.data);
        memset(&r->tr[k], 0, sizeof r->tr[k]);
        r->tr[k].stream = -1;
    }
}

/* Writer-thread failures arrive here, on the loop (file_store.h). Muxer
 * failures are routed the same way with file_writer_fail(), so the owner
 * hears about every failure once, never from inside a recorder_* call. */
static void on_file_error(void *ctx, int err, const char *msg)
{
    struct recorder *r = ctx;
    (void)err;
    if (r->state == REC_OPEN) {
        teardown_muxer(r);
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

static void fail(struct recorder *r, int averr, const char *what)
{
    char msg[PATH_MAX + 160];
    char e[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, e, sizeof e);
    snprintf(msg, sizeof msg, "%s %s: %s", what, r->path, e);
    teardown_muxer(r);
    r->state = REC_FAILED;
    int err = averr < 0 && averr > -4096 ? -averr : EIO;
    if (r->file)
        file_writer_fail(r->file, err, msg);
}

/* Polls the writer's verdict (cheap atomic) in case its report could not be
 * posted; the report itself still comes through on_file_error. */
static bool check_writer(struct recorder *r)
{
    if (r->file && r->state == REC_OPEN && file_writer_error(r->file) != 0) {
        teardown_muxer(r);
        r->state = REC_FAILED;
    }
    return r->state != REC_FAILED;
}

/* --- file open / write / close ------------------------------------------ */

/* Sampling rate and channels from an AudioSpecificConfig (ISO 14496-3
 * §1.6.2.1) when ingest did not fill them in. */
static void asc_defaults(const struct media_codec_config *c, int *rate, int *channels)
{
    static const int rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                  22050, 16000, 12000, 11025, 8000,  7350};
    *rate = c->sample_rate;
    *channels = c->channels;
    if ((*rate > 0 && *channels > 0) || c->extradata_len < 2)
        goto out;
    const uint8_t *a = c->extradata;
    int idx = ((a[0] & 0x07) << 1) | (a[1] >> 7);
    int ch = (a[1] >> 3) & 0x0f;
    if (*rate <= 0 && idx < 13)
        *rate = rates[idx];
    if (*channels <= 0 && ch > 0 && ch < 8)
        *channels = ch == 7 ? 8 : ch;
out:
    if (*rate <= 0)
        *rate = 44100;
    if (*channels <= 0)
        *channels = 2;
}

static int add_stream(struct recorder *r, int k)
{
    const struct media_codec_config *c = &r->codec[k].cfg;
    AVStream *st = avformat_new_stream(r->oc, NULL);
    if (!st)
        return AVERROR(ENOMEM);
    AVCodecParameters *par = st->codecpar;
    if (c->extradata_len) {
        par->extradata = av_mallocz(c->extradata_len + AV_INPUT_BUFFER_PADDING_SIZE);
        if (!par->extradata)
            return AVERROR(ENOMEM);
        memcpy(par->extradata, c->extradata, c->extradata_len);
        par->extradata_size = (int)c->extradata_len;
    }
    if (k == MEDIA_KIND_VIDEO) {
        par->codec_type = AVMEDIA_TYPE_VIDEO;
        par->codec_id = c->codec == MEDIA_CODEC_HEVC ? AV_CODEC_ID_HEVC
                        : c->codec == MEDIA_CODEC_AV1 ? AV_CODEC_ID_AV1
                                                      : AV_CODEC_ID_H264;
        if (c->codec == MEDIA_CODEC_HEVC)
            par->codec_tag = MKTAG('h', 'v', 'c', '1'); /* Apple players want hvc1 */
        par->width = c->width;
        par->height = c->height;
    } else {
        int rate, channels;
        asc_defaults(c, &rate, &channels);
        par->codec_type = AVMEDIA_TYPE_AUDIO;
        par->codec_id = AV_CODEC_ID_AAC;
        par->sample_rate = rate;
        av_channel_layout_default(&par->ch_layout, channels);
        par->frame_size = 1024;
    }
    st->time_base = (AVRational){1, 1000};
    r->tr[k].stream = st->index;
    return 0;
}

/* Starts the file: muxer, header (ftyp + empty moov) handed to the writer. */
static int open_file(struct recorder *r)
{
    struct fw_file_cb cb = {.loop = r->cfg.loop, .ctx = r, .on_error = on_file_error};
    if (!r->file) /* kept when only the muxer is rebuilt before the header */
        r->file = file_writer_open(r->writer, r->path, &cb);
    if (!r->file) {
        log_error("recorder: out of memory opening %s", r->path);
        r->state = REC_FAILED;
        return -1;
    }
    memset(&r->stats, 0, sizeof r->stats);
    r->base_set = false;
    r->header_written = false;
    r->frag_has_samples = false;
    r->error_reported = false;
    for (int k = 0; k < 2; k++) {
        memset(&r->tr[k], 0, sizeof r->tr[k]);
        r->tr[k].stream = -1;
    }
    r->state = REC_OPEN;

    int ret = avformat_alloc_output_context2(&r->oc, NULL, "mp4", NULL);
    if (ret < 0 || !r->oc) {
        fail(r, ret < 0 ? ret : AVERROR(ENOMEM), "muxer for");
        return -1;
    }
    uint8_t *iobuf = av_malloc(REC_IOBUF_SIZE);
    r->pb = iobuf ? avio_alloc_context(iobuf, REC_IOBUF_SIZE, 1, r, NULL, avio_write_cb, NULL) : NULL;
    if (!r->pb) {
        av_free(iobuf);
        fail(r, AVERROR(ENOMEM), "io for");
        return -1;
    }
    r->pb->seekable = 0;
    r->oc->pb = r->pb;
    r->oc->flags |= AVFMT_FLAG_CUSTOM_IO;
    for (int k = 0; k < 2; k++) {
        if (r->codec[k].present && (ret = add_stream(r, k)) < 0) {
            fail(r, ret, "stream for");
            return -1;
        }
    }
    return 0;
}

/* Picture size from the first keyframe with libavcodec's parser, for a
 * config that came without it (the mp4 muxer needs it for tkhd). */
static void probe_dimensions(AVCodecParameters *par, const struct media_frame *f)
{
    AVCodecParserContext *pc = av_parser_init(par->codec_id);
    AVCodecContext *avctx = avcodec_alloc_context3(NULL);
    uint8_t *buf = av_malloc(f->len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (pc && avctx && buf && avcodec_parameters_to_context(avctx, par) >= 0) {
        memcpy(buf, f->data, f->len);
        memset(buf + f->len, 0, AV_INPUT_BUFFER_PADDING_SIZE);
        uint8_t *outp = NULL;
        int outlen = 0;
        av_parser_parse2(pc, avctx, &outp, &outlen, buf, (int)f->len, AV_NOPTS_VALUE,
                         AV_NOPTS_VALUE, 0);
        int w = pc->width > 0 ? pc->width : avctx->width;
        int h = pc->height > 0 ? pc->height : avctx->height;
        if (w > 0 && h > 0) {
            par->width = w;
            par->height = h;
        }
    }
    av_free(buf);
    avcodec_free_context(&avctx);
    if (pc)
        av_parser_close(pc);
}

/* The header (ftyp + empty moov) goes out with the file's first frame, so
 * a missing picture size can be read from that keyframe. */
static int write_header(struct recorder *r, const struct media_frame *first)
{
    int vs = r->tr[MEDIA_KIND_VIDEO].stream;
    if (vs >= 0) {
        AVCodecParameters *par = r->oc->streams[vs]->codecpar;
        if (par->width <= 0 || par->height <= 0)
            probe_dimensions(par, first);
        if (par->width <= 0 || par->height <= 0) {
            log_warn("recorder: picture size unknown path=%s: writing 16x16 in tkhd", r->path);
            par->width = par->height = 16;
        }
    }
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "movflags", "frag_custom+empty_moov+default_base_moof+skip_trailer", 0);
    int ret = avformat_write_header(r->oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        fail(r, ret, "header of");
        return -1;
    }
    hand_off(r);
    r->header_written = true;
    log_info("recorder: file started path=%s video=%s audio=%s", r->path,
             r->codec[MEDIA_KIND_VIDEO].present ? r->codec[MEDIA_KIND_VIDEO].cfg.codec_string : "-",
             r->codec[MEDIA_KIND_AUDIO].present ? r->codec[MEDIA_KIND_AUDIO].cfg.codec_string : "-");
    return 0;
}

/* Writes the held packet of track k with the duration up to next_dts. */
static int write_held(struct recorder *r, int k, int64_t next_dts)
{
    struct rec_track *t = &r->tr[k];
    if (!t->held.valid)
        return 0;
    int64_t dur = next_dts - t->held.dts;
    if (dur <= 0)
        dur = t->last_delta > 0 ? t->last_delta : REC_DEFAULT_VIDEO_DUR_MS;
    AVStream *st = r->oc->streams[t->stream];
    AVPacket *pkt = av_packet_alloc();
    if (!pkt) {
        fail(r, AVERROR(ENOMEM), "packet for");
        return -1;
    }
    pkt->data = t->held.data;
    pkt->size = (int)t->held.len;
    pkt->stream_index = t->stream;
    pkt->dts = t->held.dts - r->base_ms;
    pkt->pts = t->held.pts - r->base_ms;
    pkt->duration = dur;
    pkt->flags = t->held.key ? AV_PKT_FLAG_KEY : 0;
    pkt->pos = -1;
    av_packet_rescale_ts(pkt, (AVRational){1, 1000}, st->time_base);
    int ret = av_write_frame(r->oc, pkt);
    av_packet_free(&pkt);
    t->held.valid = false;
    if (ret < 0) {
        fail(r, ret, "write to");
        return -1;
    }
    r->frag_has_samples = true;
    r->stats.frames++;
    int64_t end = t->held.dts - r->base_ms + dur;
    if (end > t->end_ms)
        t->end_ms = end;
    if (end > r->stats.duration_ms)
        r->stats.duration_ms = end;
    return 0;
}

static int cut_fragment(struct recorder *r, int64_t rel_start)
{
    int ret = av_write_frame(r->oc, NULL); /* frag_custom: flush = one moof+mdat */
    if (ret < 0) {
        fail(r, ret, "fragment of");
        return -1;
    }
    hand_off(r);
    r->stats.fragments++;
    r->frag_start_ms = rel_start;
    r->frag_has_samples = false;
    return 0;
}

static int hold(struct recorder *r, int k, const struct media_frame *f)
{
    struct rec_held *h = &r->tr[k].held;
    if (f->len > h->cap) {
        size_t cap = f->len + f->len / 4 + 64;
        uint8_t *p = realloc(h->data, cap);
        if (!p) {
            fail(r, AVERROR(ENOMEM), "frame copy for");
            return -1;
        }
        h->data = p;
        h->cap = cap;
    }
    memcpy(h->data, f->data, f->len);
    h->len = f->len;
    h->dts = f->dts_ms;
    int64_t pts = f->dts_ms + f->cts_ms;
    h->pts = pts < f->dts_ms ? f->dts_ms : pts;
    h->key = f->kind == MEDIA_KIND_AUDIO || f->keyframe;
    h->valid = true;
    return 0;
}

static int write_frame(struct recorder *r, const struct media_frame *f)
{
    int k = f->kind == MEDIA_KIND_AUDIO ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO;
    struct rec_track *t = &r->tr[k];
    bool has_video = r->tr[MEDIA_KIND_VIDEO].stream >= 0;
    if (t->stream < 0 || f->len == 0 || f->len > INT_MAX) {
        r->stats.dropped++;
        return 0;
    }
    if (!r->base_set) {
        /* The file starts with a video keyframe (or any audio frame). */
        if (has_video && !(k == MEDIA_KIND_VIDEO && f->keyframe)) {
            r->stats.dropped++;
            return 0;
        }
        if (write_header(r, f) != 0)
            return -1;
        r->base_ms = f->dts_ms;
        r->base_set = true;
        r->frag_start_ms = 0;
    }
    if ((t->has_last && f->dts_ms <= t->last_dts) || f->dts_ms < r->base_ms) {
        r->stats.dropped++;
        return 0;
    }
    int64_t rel = f->dts_ms - r->base_ms;
    bool sync_point = !has_video || (k == MEDIA_KIND_VIDEO && f->keyframe);
    int64_t since = rel - r->frag_start_ms;
    bool cut = r->frag_has_samples &&
               ((sync_point && since >= r->cfg.fragment_ms) ||
                (k == MEDIA_KIND_VIDEO && since >= (int64_t)REC_FORCED_CUT_FACTOR * r->cfg.fragment_ms));
    if (write_held(r, k, f->dts_ms) != 0)
        return -1;
    if (cut && cut_fragment(r, rel) != 0)
        return -1;
    if (t->has_last)
        t->last_delta = f->dts_ms - t->last_dts;
    t->has_last = true;
    t->last_dts = f->dts_ms;
    return hold(r, k, f);
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

/* Ends the current file (OPEN or FAILED, or WAIT with a path and no media
 * yet) and hands it to the writer to close. Leaves the recorder in WAIT
 * without a path. */
static int end_file(struct recorder *r)
{
    int rc = 0;
    if (r->state == REC_OPEN) {
        for (int k = 0; k < 2 && r->state == REC_OPEN; k++) {
            struct rec_track *t = &r->tr[k];
            if (t->held.valid) {
                int64_t d = t->last_delta > 0 ? t->last_delta
                            : k == MEDIA_KIND_VIDEO ? REC_DEFAULT_VIDEO_DUR_MS : 23;
                write_held(r, k, t->held.dts + d);
            }
        }
        if (r->state == REC_OPEN && r->header_written) {
            int ret = av_write_trailer(r->oc); /* flushes the last fragment */
            if (ret < 0)
                fail(r, ret, "trailer of");
            else {
                hand_off(r);
                if (r->frag_has_samples)
                    r->stats.fragments++;
            }
        }
    } else if (r->state == REC_WAIT && r->have_path && !r->file) {
        /* A file was promised (path given) but no media came: report an
         * empty close so the owner can settle the recording row. */
        struct fw_file_cb cb = {.loop = r->cfg.loop, .ctx = r, .on_error = on_file_error};
        r->file = file_writer_open(r->writer, r->path, &cb);
        memset(&r->stats, 0, sizeof r->stats);
    }
    if (r->state == REC_FAILED)
        rc = -1;
    teardown_muxer(r);
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
    r->pq_has_first = false;
}

static void pending_push(struct recorder *r, const struct media_frame *f)
{
    int k = f->kind == MEDIA_KIND_AUDIO ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO;
    bool video_known = r->codec[MEDIA_KIND_VIDEO].present;
    /* Until a video keyframe is queued, earlier video frames are useless. */
    if (video_known && !r->pq_head && !(k == MEDIA_KIND_VIDEO && f->keyframe)) {
        r->stats.dropped++;
        return;
    }
    size_t sz = sizeof(struct rec_pending) + f->len;
    if (r->pq_bytes + sz > r->cfg.pending_max_bytes) {
        log_warn("recorder: pending queue over %zu bytes path=%s: dropping it",
                 r->cfg.pending_max_bytes, r->have_path ? r->path : "-");
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
    p->f = *f;
    memcpy(p->data, f->data, f->len);
    p->f.data = p->data;
    if (r->pq_tail)
        r->pq_tail->next = p;
    else
        r->pq_head = p;
    r->pq_tail = p;
    r->pq_bytes += sz;
    if (!r->pq_has_first) {
        r->pq_first_dts = f->dts_ms;
        r->pq_has_first = true;
    }
    r->pq_last_dts = f->dts_ms;
}

/* In WAIT with a path: opens the file when its tracks are decided, then
 * feeds it what was queued. */
static void try_open(struct recorder *r)
{
    if (r->state != REC_WAIT || !r->have_path)
        return;
    bool v = r->codec[MEDIA_KIND_VIDEO].present, a = r->codec[MEDIA_KIND_AUDIO].present;
    if (!v && !a)
        return;
    if (!(v && a)) {
        if (!r->pq_has_first || r->pq_last_dts - r->pq_first_dts < r->cfg.wait_other_track_ms)
            return;
        log_info("recorder: no %s config after %d ms; recording %s only path=%s",
                 kind_name(v ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO), r->cfg.wait_other_track_ms,
                 kind_name(v ? MEDIA_KIND_VIDEO : MEDIA_KIND_AUDIO), r->path);
    }
    if (open_file(r) != 0) {
        pending_clear(r);
        return;
    }
    struct rec_pending *p = r->pq_head;
    r->pq_head = r->pq_tail = NULL;
    while (p) {
        struct rec_pending *n = p->next;
        if (r->state == REC_OPEN)
            write_frame(r, &p->f);
        free(p);
        p = n;
    }
    pending_clear(r);
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
    if (r->cfg.wait_other_track_ms <= 0)
        r->cfg.wait_other_track_ms = REC_DEFAULT_WAIT_OTHER_MS;
    if (!r->cfg.pending_max_bytes)
        r->cfg.pending_max_bytes = REC_DEFAULT_PENDING_MAX;
    if (!r->cfg.fragment_max_bytes)
        r->cfg.fragment_max_bytes = REC_DEFAULT_FRAGMENT_MAX;
    r->writer = cfg->writer;
    if (!r->writer) {
        r->writer = file_writer_new("rec-writer", 0, 0);
        if (!r->writer) {
            free(r);
            return NULL;
        }
        r->own_writer = true;
    }
    for (int k = 0; k < 2; k++)
        r->tr[k].stream = -1;
    r->state = REC_WAIT;
    if (cfg->path && recorder_set_path(r, cfg->path) != 0) {
        recorder_free(r);
        return NULL;
    }
    return r;
}

static bool same_config(const struct rec_codec *have, const struct media_codec_config *c)
{
    return have->present && have->cfg.codec == c->codec &&
           have->cfg.extradata_len == c->extradata_len &&
           (c->extradata_len == 0 || memcmp(have->extradata, c->extradata, c->extradata_len) == 0) &&
           have->cfg.width == c->width && have->cfg.height == c->height;
}

static int store_config(struct recorder *r, const struct media_codec_config *c)
{
    int k = c->kind == MEDIA_KIND_AUDIO ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO;
    uint8_t *copy = NULL;
    if (c->extradata_len) {
        copy = malloc(c->extradata_len);
        if (!copy)
            return -1;
        memcpy(copy, c->extradata, c->extradata_len);
    }
    free(r->codec[k].extradata);
    r->codec[k].extradata = copy;
    r->codec[k].cfg = *c;
    r->codec[k].cfg.kind = k;
    r->codec[k].cfg.extradata = copy;
    r->codec[k].present = true;
    return 0;
}

int recorder_codec_config(struct recorder *r, const struct media_codec_config *c)
{
    if (r->state == REC_FAILED || r->state == REC_CLOSED)
        return -1;
    bool video = c->kind == MEDIA_KIND_VIDEO;
    bool ok = video ? (c->codec == MEDIA_CODEC_H264 || c->codec == MEDIA_CODEC_HEVC ||
                       c->codec == MEDIA_CODEC_AV1)
                    : c->codec == MEDIA_CODEC_AAC;
    if (!ok) {
        log_warn("recorder: unsupported %s codec %d path=%s: track not recorded", kind_name(c->kind),
                 (int)c->codec, r->have_path ? r->path : "-");
        return -1;
    }
    int k = video ? MEDIA_KIND_VIDEO : MEDIA_KIND_AUDIO;
    if (same_config(&r->codec[k], c))
        return 0;
    int rc = 0;
    if (r->state == REC_OPEN && !r->header_written) {
        /* Nothing written yet: rebuild the muxer with the new config, same file. */
        teardown_muxer(r);
        r->state = REC_WAIT;
        if (store_config(r, c) != 0)
            return -1;
        if (open_file(r) != 0)
            return -1;
        return 0;
    }
    if (r->state == REC_OPEN) {
        log_info("recorder: %s config %s path=%s: closing the file, next one follows",
                 kind_name(k), r->tr[k].stream >= 0 ? "changed" : "appeared", r->path);
        end_file(r);
        rc = RECORDER_ROTATED;
    }
    if (store_config(r, c) != 0)
        return -1;
    try_open(r);
    return rc;
}

int recorder_frame(struct recorder *r, const struct media_frame *f)
{
    if (r->state == REC_OPEN && !check_writer(r))
        return -1;
    if (r->state == REC_FAILED || r->state == REC_CLOSED)
        return -1;
    int k = f->kind == MEDIA_KIND_AUDIO ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO;
    if (r->state == REC_WAIT) {
        if (!r->codec[k].present) {
            r->stats.dropped++;
            return 0;
        }
        pending_push(r, f);
        try_open(r);
        return r->state == REC_FAILED ? -1 : 0;
    }
    return write_frame(r, f) == 0 ? 0 : -1;
}

int recorder_set_path(struct recorder *r, const char *path)
{
    if (r->state != REC_WAIT || r->have_path || !path || !path[0])
        return -1;
    if (snprintf(r->path, sizeof r->path, "%s", path) >= (int)sizeof r->path)
        return -1;
    r->have_path = true;
    try_open(r);
    return 0;
}

bool recorder_failed(const struct recorder *r) { return r->state == REC_FAILED; }

void recorder_stats(const struct recorder *r, struct recorder_stats *out)
{
    if (r->state == REC_OPEN || r->state == REC_FAILED)
        *out = r->stats;
    else
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
    for (int k = 0; k < 2; k++)
        free(r->codec[k].extradata);
    free(r);
}
