/* cmaf_muxer.c — libavformat mp4 muxer in CMAF fragment mode, into memory.
 *
 * movflags: empty_moov (the init segment is complete at write_header),
 * default_base_moof (CMAF / ISO 14496-12 §8.8.7: data offsets relative to
 * the moof), frag_custom (a fragment is closed only by
 * av_write_frame(ctx, NULL)), frag_discont (the first sample of each track
 * sets its tfdt) and skip_trailer (a live stream never ends with an mfra).
 * avoid_negative_ts is disabled so libavformat never shifts our timeline.
 * See cmaf_muxer.h for the contract and why not movflags=cmaf. */
#include "packager/cmaf_muxer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/channel_layout.h>
#include <libavutil/dict.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>

#include "core/bytes.h"
#include "core/log.h"

#define AVIO_BUF_SIZE (64 * 1024)

/* Bytes libavformat wrote since the last take; a seek may rewrite any of
 * them (movenc patches box sizes), never bytes already handed out. */
struct membuf {
    uint8_t *data;
    size_t len, cap, max;
    int64_t base;   /* stream offset of data[0] */
    int64_t pos;    /* stream offset of the next write */
    int error;      /* sticky: -ENOSPC / -EIO */
};

struct cmaf_muxer {
    AVFormatContext *fmt;
    AVIOContext *pb;
    struct membuf buf;
    int stream_of[2];          /* media_kind -> stream index, -1 = absent */
    uint32_t timescale[2];
    int64_t last_dts[2];
    int64_t last_end[2];       /* dts + duration of the last sample */
    bool have_last[2];
    uint8_t *init;             /* copy of the init segment */
    size_t init_len;
    uint8_t *frag;             /* last flushed fragment (taken buffer) */
    uint32_t fragments;
    size_t frag_bytes;         /* sample bytes in the open fragment */
    AVPacket *pkt;
    bool broken;               /* a write error happened: refuse further work */
};

/* ---- memory AVIOContext ---------------------------------------------- */

static int membuf_reserve(struct membuf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    if (need > b->max)
        return -ENOSPC;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap < need)
        cap = cap > b->max / 2 ? b->max : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int membuf_write(void *opaque, uint8_t *data, int size)
{
    struct membuf *b = opaque;
    if (b->error)
        return AVERROR(EIO);
    if (size <= 0)
        return 0;
    if (b->pos < b->base) {             /* rewriting bytes already handed out */
        b->error = -EIO;
        return AVERROR(EIO);
    }
    size_t off = (size_t)(b->pos - b->base);
    int rc = membuf_reserve(b, off + (size_t)size);
    if (rc < 0) {
        b->error = rc;
        return AVERROR(ENOSPC);
    }
    if (off > b->len)
        memset(b->data + b->len, 0, off - b->len);
    memcpy(b->data + off, data, (size_t)size);
    b->pos += size;
    if (off + (size_t)size > b->len)
        b->len = off + (size_t)size;
    return size;
}

static int64_t membuf_seek(void *opaque, int64_t offset, int whence)
{
    struct membuf *b = opaque;
    int64_t end = b->base + (int64_t)b->len;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return end;
    case SEEK_SET: break;
    case SEEK_CUR: offset += b->pos; break;
    case SEEK_END: offset += end; break;
    default: return AVERROR(EINVAL);
    }
    if (offset < b->base)
        return AVERROR(EINVAL);
    b->pos = offset;
    return offset;
}

/* Hands the buffered bytes to the caller (who frees them with free()). */
static uint8_t *membuf_take(struct membuf *b, size_t *len)
{
    uint8_t *p = b->data;
    *len = b->len;
    b->base += (int64_t)b->len;
    b->pos = b->base;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- AudioSpecificConfig ---------------------------------------------- */

struct bitreader {
    const uint8_t *p;
    size_t len, bit;
};

static int br_get(struct bitreader *r, int n, uint32_t *out)
{
    uint32_t v = 0;
    if (r->bit + (size_t)n > r->len * 8)
        return -1;
    for (int i = 0; i < n; i++, r->bit++)
        v = (v << 1) | ((r->p[r->bit >> 3] >> (7 - (r->bit & 7))) & 1);
    *out = v;
    return 0;
}

static int asc_object_type(struct bitreader *r, int *aot)
{
    uint32_t v, ext;
    if (br_get(r, 5, &v) < 0)
        return -1;
    if (v == 31) {
        if (br_get(r, 6, &ext) < 0)
            return -1;
        v = 32 + ext;
    }
    *aot = (int)v;
    return 0;
}

static int asc_frequency(struct bitreader *r, int *rate)
{
    static const int rates[13] = { 96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                   22050, 16000, 12000, 11025, 8000, 7350 };
    uint32_t idx, v;
    if (br_get(r, 4, &idx) < 0)
        return -1;
    if (idx == 15) {
        if (br_get(r, 24, &v) < 0)
            return -1;
        *rate = (int)v;
    } else if (idx < 13) {
        *rate = rates[idx];
    } else {
        return -1;
    }
    return *rate > 0 ? 0 : -1;
}

/* ISO/IEC 14496-3 §1.6.2.1 AudioSpecificConfig, up to the frame length flag
 * of GASpecificConfig (§4.4.1) / ELDSpecificConfig. */
int cmaf_muxer_parse_asc(const uint8_t *asc, size_t len, struct cmaf_muxer_asc *out)
{
    struct bitreader r = { asc, len, 0 };
    uint32_t chan, flag = 0;
    int aot, rate, ext_rate = 0;
    bool sbr = false;

    if (!asc || asc_object_type(&r, &aot) < 0 || asc_frequency(&r, &rate) < 0 ||
        br_get(&r, 4, &chan) < 0)
        return -1;
    if (aot == 5 || aot == 29) {
        sbr = true;
        if (asc_frequency(&r, &ext_rate) < 0 || asc_object_type(&r, &aot) < 0)
            return -1;
    }
    int frame = 1024;
    switch (aot) {
    case 1: case 2: case 3: case 4: case 6: case 7:
    case 17: case 19: case 20: case 21: case 22:
        if (br_get(&r, 1, &flag) < 0)
            return -1;
        frame = flag ? 960 : 1024;
        break;
    case 23: case 39:
        if (br_get(&r, 1, &flag) < 0)
            return -1;
        frame = flag ? 480 : 512;
        break;
    default:
        return -1;  /* not an AAC flavour we package */
    }
    out->object_type = sbr ? 5 : aot;
    out->sample_rate = rate;
    out->out_rate = sbr && ext_rate > 0 ? ext_rate : rate;
    out->channels = (int)chan;
    out->frame_samples = (int)((int64_t)frame * out->out_rate / rate);
    if (out->frame_samples <= 0)
        return -1;
    return 0;
}

/* ---- muxer ------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *what, int averr)
{
    char msg[AV_ERROR_MAX_STRING_SIZE] = "";
    if (!err || !errlen)
        return;
    if (averr)
        av_strerror(averr, msg, sizeof(msg));
    snprintf(err, errlen, "cmaf_muxer: %s%s%s", what, averr ? ": " : "", msg);
}

static int add_stream(struct cmaf_muxer *m, const struct media_codec_config *c, char *err,
                      size_t errlen)
{
    if (c->kind != MEDIA_KIND_VIDEO && c->kind != MEDIA_KIND_AUDIO) {
        set_err(err, errlen, "bad track kind", 0);
        return -1;
    }
    if (!c->extradata || c->extradata_len == 0 || c->extradata_len > (1u << 20)) {
        set_err(err, errlen, "codec config without extradata", 0);
        return -1;
    }
    AVStream *st = avformat_new_stream(m->fmt, NULL);
    if (!st) {
        set_err(err, errlen, "avformat_new_stream", AVERROR(ENOMEM));
        return -1;
    }
    AVCodecParameters *par = st->codecpar;
    par->extradata = av_mallocz(c->extradata_len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!par->extradata) {
        set_err(err, errlen, "extradata", AVERROR(ENOMEM));
        return -1;
    }
    memcpy(par->extradata, c->extradata, c->extradata_len);
    par->extradata_size = (int)c->extradata_len;

    if (c->kind == MEDIA_KIND_VIDEO) {
        par->codec_type = AVMEDIA_TYPE_VIDEO;
        switch (c->codec) {
        case MEDIA_CODEC_H264:
            /* avcC (first byte 1) is written as is and samples stay AVCC. */
            if (c->extradata[0] != 1) {
                set_err(err, errlen, "H.264 extradata is not an avcC record", 0);
                return -1;
            }
            par->codec_id = AV_CODEC_ID_H264;
            break;
        case MEDIA_CODEC_HEVC:
            /* hvcC with all parameter sets: sample entry "hvc1" (ISO/IEC
             * 14496-15 §8.4.1), which is what Apple's HLS requires. */
            if (c->extradata[0] != 1) {
                set_err(err, errlen, "HEVC extradata is not an hvcC record", 0);
                return -1;
            }
            par->codec_id = AV_CODEC_ID_HEVC;
            par->codec_tag = MKTAG('h', 'v', 'c', '1');
            break;
        case MEDIA_CODEC_AV1:
            /* av1C: marker bit + version 1 (AV1-ISOBMFF §2.3.3). */
            if (c->extradata_len < 4 || c->extradata[0] != 0x81) {
                set_err(err, errlen, "AV1 extradata is not an av1C record", 0);
                return -1;
            }
            par->codec_id = AV_CODEC_ID_AV1;
            break;
        default:
            set_err(err, errlen, "unsupported video codec", 0);
            return -1;
        }
        par->width = c->width > 0 ? c->width : 0;
        par->height = c->height > 0 ? c->height : 0;
        st->time_base = (AVRational){ 1, CMAF_MUXER_VIDEO_TIMESCALE };
    } else {
        struct cmaf_muxer_asc asc;
        if (c->codec != MEDIA_CODEC_AAC) {
            set_err(err, errlen, "unsupported audio codec", 0);
            return -1;
        }
        if (cmaf_muxer_parse_asc(c->extradata, c->extradata_len, &asc) < 0) {
            set_err(err, errlen, "malformed AudioSpecificConfig", 0);
            return -1;
        }
        par->codec_type = AVMEDIA_TYPE_AUDIO;
        par->codec_id = AV_CODEC_ID_AAC;
        par->sample_rate = asc.out_rate;
        /* channelConfiguration 1..6 = that many, 7 = 7.1, 0 = in a PCE. */
        int ch = asc.channels >= 1 && asc.channels <= 6 ? asc.channels
               : asc.channels == 7                      ? 8
               : c->channels > 0                        ? c->channels
                                                        : 2;
        av_channel_layout_default(&par->ch_layout, ch);
        par->frame_size = asc.frame_samples;
        st->time_base = (AVRational){ 1, asc.out_rate };
    }
    m->stream_of[c->kind] = st->index;
    return 0;
}

struct cmaf_muxer *cmaf_muxer_new(const struct cmaf_muxer_config *cfg, char *err, size_t errlen)
{
    struct cmaf_muxer *m = calloc(1, sizeof(*m));
    AVDictionary *opts = NULL;
    unsigned char *iobuf = NULL;
    int rc;
    char num[16];

    if (!m) {
        set_err(err, errlen, "out of memory", 0);
        return NULL;
    }
    m->stream_of[0] = m->stream_of[1] = -1;
    m->buf.max = cfg->max_bytes ? cfg->max_bytes : CMAF_MUXER_DEFAULT_MAX_BYTES;
    if (m->buf.max < CMAF_MUXER_MIN_MAX_BYTES)
        m->buf.max = CMAF_MUXER_MIN_MAX_BYTES;
    if (!cfg->video && !cfg->audio) {
        set_err(err, errlen, "no track", 0);
        goto fail;
    }
    if ((cfg->video && cfg->video->kind != MEDIA_KIND_VIDEO) ||
        (cfg->audio && cfg->audio->kind != MEDIA_KIND_AUDIO)) {
        set_err(err, errlen, "track config of the wrong kind", 0);
        goto fail;
    }
    m->pkt = av_packet_alloc();
    if (!m->pkt) {
        set_err(err, errlen, "av_packet_alloc", AVERROR(ENOMEM));
        goto fail;
    }
    rc = avformat_alloc_output_context2(&m->fmt, NULL, "mp4", NULL);
    if (rc < 0 || !m->fmt) {
        set_err(err, errlen, "mp4 muxer", rc);
        goto fail;
    }
    if ((cfg->video && add_stream(m, cfg->video, err, errlen) < 0) ||
        (cfg->audio && add_stream(m, cfg->audio, err, errlen) < 0))
        goto fail;

    iobuf = av_malloc(AVIO_BUF_SIZE);
    if (!iobuf) {
        set_err(err, errlen, "avio buffer", AVERROR(ENOMEM));
        goto fail;
    }
    m->pb = avio_alloc_context(iobuf, AVIO_BUF_SIZE, 1, &m->buf, NULL, membuf_write, membuf_seek);
    if (!m->pb) {
        av_free(iobuf);
        set_err(err, errlen, "avio_alloc_context", AVERROR(ENOMEM));
        goto fail;
    }
    m->pb->seekable = 0;  /* live output: movenc must not plan a rewrite */
    m->fmt->pb = m->pb;
    m->fmt->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_FLUSH_PACKETS;
    m->fmt->flags &= ~AVFMT_FLAG_AUTO_BSF;
    m->fmt->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;

    av_dict_set(&opts, "movflags", "empty_moov+default_base_moof+frag_custom+frag_discont+skip_trailer", 0);
    snprintf(num, sizeof(num), "%u", cfg->first_fragment ? cfg->first_fragment : 1u);
    av_dict_set(&opts, "fragment_index", num, 0);
    av_dict_set(&opts, "use_editlist", "0", 0);
    rc = avformat_write_header(m->fmt, &opts);
    av_dict_free(&opts);
    if (rc < 0) {
        set_err(err, errlen, "avformat_write_header", rc);
        goto fail;
    }
    avio_flush(m->pb);
    if (m->buf.error || m->pb->error) {
        set_err(err, errlen, "writing the init segment", m->buf.error ? m->buf.error : m->pb->error);
        goto fail;
    }
    m->init = membuf_take(&m->buf, &m->init_len);
    if (!m->init || m->init_len < 16) {
        set_err(err, errlen, "empty init segment", 0);
        goto fail;
    }
    for (int k = 0; k < 2; k++) {
        if (m->stream_of[k] < 0)
            continue;
        AVRational tb = m->fmt->streams[m->stream_of[k]]->time_base;
        if (tb.num != 1 || tb.den <= 0) {
            set_err(err, errlen, "unexpected track time base", 0);
            goto fail;
        }
        m->timescale[k] = (uint32_t)tb.den;
    }
    m->fragments = 0;
    return m;

fail:
    av_dict_free(&opts);
    cmaf_muxer_free(m);
    return NULL;
}

const uint8_t *cmaf_muxer_init_data(const struct cmaf_muxer *m, size_t *len)
{
    *len = m->init_len;
    return m->init;
}

bool cmaf_muxer_has_track(const struct cmaf_muxer *m, enum media_kind kind)
{
    return (kind == MEDIA_KIND_VIDEO || kind == MEDIA_KIND_AUDIO) && m->stream_of[kind] >= 0;
}

uint32_t cmaf_muxer_timescale(const struct cmaf_muxer *m, enum media_kind kind)
{
    return cmaf_muxer_has_track(m, kind) ? m->timescale[kind] : 0;
}

size_t cmaf_muxer_pending_bytes(const struct cmaf_muxer *m)
{
    return m->frag_bytes;
}

uint32_t cmaf_muxer_fragments(const struct cmaf_muxer *m)
{
    return m->fragments;
}

int cmaf_muxer_write(struct cmaf_muxer *m, const struct cmaf_muxer_sample *s)
{
    if (m->broken)
        return -EIO;
    if (!cmaf_muxer_has_track(m, s->kind) || !s->data || s->len == 0 || s->len > INT_MAX / 2)
        return -EINVAL;
    if (s->duration <= 0 || s->duration > INT32_MAX || s->pts < s->dts ||
        s->pts - s->dts > INT32_MAX)
        return -EINVAL;
    if (m->have_last[s->kind] && s->dts < m->last_end[s->kind])
        return -EINVAL;
    /* movenc keeps the open fragment's mdat in its own growable buffer; the
     * ceiling is enforced here, with room left for the moof. */
    if (m->frag_bytes + s->len + 64 * 1024 > m->buf.max)
        return -ENOSPC;

    /* The packet borrows the sample's bytes: movenc copies them into its
     * mdat buffer during the call, so no reference outlives it. */
    AVPacket *pkt = m->pkt;
    av_packet_unref(pkt);
    pkt->data = (uint8_t *)s->data;
    pkt->size = (int)s->len;
    pkt->stream_index = m->stream_of[s->kind];
    pkt->dts = s->dts;
    pkt->pts = s->pts;
    pkt->duration = s->duration;
    pkt->flags = s->keyframe ? AV_PKT_FLAG_KEY : 0;
    int rc = av_write_frame(m->fmt, pkt);
    pkt->data = NULL;
    pkt->size = 0;
    av_packet_unref(pkt);
    if (rc < 0 || m->buf.error) {
        char msg[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(rc, msg, sizeof(msg));
        log_error("cmaf_muxer: write sample kind=%d dts=%lld: %s", (int)s->kind,
                  (long long)s->dts, m->buf.error ? strerror(-m->buf.error) : msg);
        m->broken = true;
        return m->buf.error ? m->buf.error : -EIO;
    }
    m->last_dts[s->kind] = s->dts;
    m->last_end[s->kind] = s->dts + s->duration;
    m->have_last[s->kind] = true;
    m->frag_bytes += s->len;
    return 0;
}

int cmaf_muxer_flush(struct cmaf_muxer *m, const uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (m->broken)
        return -EIO;
    free(m->frag);
    m->frag = NULL;
    int rc = av_write_frame(m->fmt, NULL);
    avio_flush(m->pb);
    if (rc < 0 || m->buf.error || m->pb->error) {
        log_error("cmaf_muxer: flush fragment: %s",
                  m->buf.error ? strerror(-m->buf.error) : "libavformat error");
        m->broken = true;
        return m->buf.error ? m->buf.error : -EIO;
    }
    m->frag_bytes = 0;
    /* Re-arm frag_discont: the next fragment's tfdt is then its first
     * sample's dts for every track, so a gap (a track that paused) stays a
     * gap instead of being folded into the previous sample. */
    rc = av_opt_set(m->fmt->priv_data, "movflags", "+frag_discont", 0);
    if (rc < 0) {
        log_error("cmaf_muxer: re-arm frag_discont: %d", rc);
        m->broken = true;
        return -EIO;
    }
    if (m->buf.len == 0)
        return 0;
    m->frag = membuf_take(&m->buf, len);
    *data = m->frag;
    m->fragments++;
    return 0;
}

void cmaf_muxer_free(struct cmaf_muxer *m)
{
    if (!m)
        return;
    if (m->fmt) {
        /* No trailer (skip_trailer; a live stream has no end): freeing the
         * context runs the muxer's deinit. */
        m->fmt->pb = NULL;
        avformat_free_context(m->fmt);
    }
    if (m->pb) {
        av_freep(&m->pb->buffer);
        avio_context_free(&m->pb);
    }
    av_packet_free(&m->pkt);
    free(m->buf.data);
    free(m->init);
    free(m->frag);
    free(m);
}
