/* cmaf_muxer.c — CMAF init segment from libavformat's mp4 muxer, fragments
 * written here, in memory.
 *
 * Init segment: libavformat's mp4 muxer (movenc) with movflags empty_moov
 * (the init segment is complete at write_header), default_base_moof,
 * frag_custom and skip_trailer, into a memory AVIOContext. movenc knows every
 * sample entry (avc1/hvc1/av01/mp4a with their configuration boxes); the
 * context is freed right after the header, so a live stream holds no
 * libavformat state.
 *
 * Fragments (one per cmaf_muxer_flush = one LL-HLS part): moof + mdat written
 * directly (ISO/IEC 14496-12 §8.8), the same boxes movenc writes in that mode:
 * mfhd; per track with samples, a traf with tfhd (default-base-is-moof,
 * §8.8.7), tfdt version 1 (§8.8.12) = the dts of the fragment's first sample
 * of that track, and one trun version 0 (§8.8.8) with per-sample duration,
 * size, flags and (video) composition offset; then one mdat holding each
 * track's samples contiguously, video first. Sample durations are the dts
 * distance to the next sample of the track in the fragment; the last one's is
 * the duration given. Samples are copied once, into per-track staging
 * buffers that are kept (warm) from one fragment to the next. Each staging
 * buffer starts with a gap (HEAD_GAP) where the moof is written at flush, so
 * the fragment is assembled in place: the first track's samples do not move,
 * the other track's (audio, small) are appended after them. (movenc did the same
 * with a dynamic buffer per track and fragment that grew by realloc, then
 * through a 64 KiB AVIO buffer into a third buffer: three to five copies of
 * every byte into freshly faulted memory, ~25 % of a stream's CPU.)
 *
 * AV1 samples are filtered as movenc does (AV1-ISOBMFF §2.4: no temporal
 * delimiter, padding, redundant frame header or tile list OBUs in samples).
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

#include "core/bytes.h"
#include "core/log.h"

#define AVIO_BUF_SIZE (4 * 1024)   /* the init segment only */

/* Bytes libavformat wrote since the last take; a seek may rewrite any of
 * them (movenc patches box sizes), never bytes already handed out. */
struct membuf {
    uint8_t *data;
    size_t len, cap, max;
    int64_t base;   /* stream offset of data[0] */
    int64_t pos;    /* stream offset of the next write */
    int error;      /* sticky: -ENOSPC / -EIO */
};

/* One sample of the open fragment. */
struct msample {
    int64_t dts;
    uint32_t size;
    uint32_t cts;       /* pts - dts */
    uint32_t dur;       /* as given */
    bool key;
};

struct mtrack {
    bool present;
    bool av1;
    uint32_t track_id;         /* from the init segment's trex */
    uint32_t timescale;
    int64_t last_end;          /* dts + duration of the last sample written (any fragment) */
    bool have_last;
    /* open fragment: sample table and the samples' bytes */
    struct msample *smp;
    size_t nsmp, smp_cap;
    uint8_t *data;             /* HEAD_GAP bytes, then the samples */
    size_t len, cap;           /* len: sample bytes after the gap */
};

struct cmaf_muxer {
    struct mtrack tr[2];       /* indexed by enum media_kind */
    size_t max;                /* ceiling of one fragment (and the init) */
    uint8_t *init;             /* the init segment */
    size_t init_len;
    uint32_t next_seq;         /* mfhd sequence number of the next fragment */
    uint32_t fragments;
    size_t frag_bytes;         /* sample bytes in the open fragment */
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

/* Adds the track to fmt; returns its stream index or -1. */
static int add_stream(AVFormatContext *fmt, const struct media_codec_config *c, char *err,
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
    AVStream *st = avformat_new_stream(fmt, NULL);
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
    return st->index;
}

/* Track ids of the init's trex boxes (moov/mvex/trex, §8.8.3), in order:
 * movenc writes one per stream, in stream order. Returns how many. */
static int init_track_ids(const uint8_t *p, size_t len, uint32_t *ids, int max)
{
    /* walk: top level -> moov -> mvex -> trex */
    static const char path[2][5] = { "moov", "mvex" };
    for (int depth = 0; depth < 2; depth++) {
        const uint8_t *found = NULL;
        size_t flen = 0;
        for (size_t off = 0; off + 8 <= len;) {
            uint32_t sz = rd_be32(p + off);
            if (sz < 8 || sz > len - off)
                return 0;
            if (memcmp(p + off + 4, path[depth], 4) == 0) {
                found = p + off + 8;
                flen = sz - 8;
                break;
            }
            off += sz;
        }
        if (!found)
            return 0;
        p = found;
        len = flen;
    }
    int n = 0;
    for (size_t off = 0; off + 8 <= len && n < max;) {
        uint32_t sz = rd_be32(p + off);
        if (sz < 8 || sz > len - off)
            break;
        if (memcmp(p + off + 4, "trex", 4) == 0 && sz >= 16)
            ids[n++] = rd_be32(p + off + 12);
        off += sz;
    }
    return n;
}

/* Writes the init segment with movenc; fills m->init and the track ids. */
static int write_init(struct cmaf_muxer *m, const struct cmaf_muxer_config *cfg, char *err,
                      size_t errlen)
{
    AVFormatContext *fmt = NULL;
    AVIOContext *pb = NULL;
    AVDictionary *opts = NULL;
    struct membuf buf = { .max = m->max };
    int stream_of[2] = { -1, -1 };
    int rc, ret = -1;

    rc = avformat_alloc_output_context2(&fmt, NULL, "mp4", NULL);
    if (rc < 0 || !fmt) {
        set_err(err, errlen, "mp4 muxer", rc);
        goto out;
    }
    if ((cfg->video && (stream_of[MEDIA_KIND_VIDEO] = add_stream(fmt, cfg->video, err, errlen)) < 0) ||
        (cfg->audio && (stream_of[MEDIA_KIND_AUDIO] = add_stream(fmt, cfg->audio, err, errlen)) < 0))
        goto out;

    unsigned char *iobuf = av_malloc(AVIO_BUF_SIZE);
    if (!iobuf) {
        set_err(err, errlen, "avio buffer", AVERROR(ENOMEM));
        goto out;
    }
    pb = avio_alloc_context(iobuf, AVIO_BUF_SIZE, 1, &buf, NULL, membuf_write, membuf_seek);
    if (!pb) {
        av_free(iobuf);
        set_err(err, errlen, "avio_alloc_context", AVERROR(ENOMEM));
        goto out;
    }
    pb->seekable = 0;  /* live output: movenc must not plan a rewrite */
    fmt->pb = pb;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_FLUSH_PACKETS;
    fmt->flags &= ~AVFMT_FLAG_AUTO_BSF;
    fmt->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;

    av_dict_set(&opts, "movflags", "empty_moov+default_base_moof+frag_custom+frag_discont+skip_trailer", 0);
    av_dict_set(&opts, "use_editlist", "0", 0);
    rc = avformat_write_header(fmt, &opts);
    if (rc < 0) {
        set_err(err, errlen, "avformat_write_header", rc);
        goto out;
    }
    avio_flush(pb);
    if (buf.error || pb->error) {
        set_err(err, errlen, "writing the init segment", buf.error ? buf.error : pb->error);
        goto out;
    }
    m->init = membuf_take(&buf, &m->init_len);
    if (!m->init || m->init_len < 16) {
        set_err(err, errlen, "empty init segment", 0);
        goto out;
    }
    uint32_t ids[4];
    int nids = init_track_ids(m->init, m->init_len, ids, 4);
    for (int k = 0; k < 2; k++) {
        if (stream_of[k] < 0)
            continue;
        AVRational tb = fmt->streams[stream_of[k]]->time_base;
        if (tb.num != 1 || tb.den <= 0 || stream_of[k] >= nids || ids[stream_of[k]] == 0) {
            set_err(err, errlen, "unexpected track time base or track id", 0);
            goto out;
        }
        m->tr[k].present = true;
        m->tr[k].timescale = (uint32_t)tb.den;
        m->tr[k].track_id = ids[stream_of[k]];
    }
    ret = 0;
out:
    av_dict_free(&opts);
    if (fmt) {
        /* No trailer (skip_trailer; a live stream has no end): freeing the
         * context runs the muxer's deinit. */
        fmt->pb = NULL;
        avformat_free_context(fmt);
    }
    if (pb) {
        av_freep(&pb->buffer);
        avio_context_free(&pb);
    }
    free(buf.data);
    return ret;
}

struct cmaf_muxer *cmaf_muxer_new(const struct cmaf_muxer_config *cfg, char *err, size_t errlen)
{
    struct cmaf_muxer *m = calloc(1, sizeof(*m));
    if (!m) {
        set_err(err, errlen, "out of memory", 0);
        return NULL;
    }
    m->max = cfg->max_bytes ? cfg->max_bytes : CMAF_MUXER_DEFAULT_MAX_BYTES;
    if (m->max < CMAF_MUXER_MIN_MAX_BYTES)
        m->max = CMAF_MUXER_MIN_MAX_BYTES;
    m->next_seq = cfg->first_fragment ? cfg->first_fragment : 1u;
    if (!cfg->video && !cfg->audio) {
        set_err(err, errlen, "no track", 0);
        goto fail;
    }
    if ((cfg->video && cfg->video->kind != MEDIA_KIND_VIDEO) ||
        (cfg->audio && cfg->audio->kind != MEDIA_KIND_AUDIO)) {
        set_err(err, errlen, "track config of the wrong kind", 0);
        goto fail;
    }
    if (write_init(m, cfg, err, errlen) < 0)
        goto fail;
    m->tr[MEDIA_KIND_VIDEO].av1 = cfg->video && cfg->video->codec == MEDIA_CODEC_AV1;
    return m;

fail:
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
    return (kind == MEDIA_KIND_VIDEO || kind == MEDIA_KIND_AUDIO) && m->tr[kind].present;
}

uint32_t cmaf_muxer_timescale(const struct cmaf_muxer *m, enum media_kind kind)
{
    return cmaf_muxer_has_track(m, kind) ? m->tr[kind].timescale : 0;
}

size_t cmaf_muxer_pending_bytes(const struct cmaf_muxer *m)
{
    return m->frag_bytes;
}

uint32_t cmaf_muxer_fragments(const struct cmaf_muxer *m)
{
    return m->fragments;
}

/* ---- fragments ---------------------------------------------------------- */

/* Room for moof + mdat header in front of the samples: a fragment of 0.5 s
 * needs ~1 KiB (16 bytes per video sample, 8 per audio sample); a bigger one
 * moves its samples once. */
#define HEAD_GAP 4096

/* Grows *p (capacity *cap) to hold need elements of size esz. Capacity
 * doubles, so a buffer reused from fragment to fragment stops growing. */
static int grow(void **p, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : (esz == 1 ? 64 * 1024 : 64);
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, ncap * esz);
    if (!np)
        return -ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

static uint64_t leb128(const uint8_t *p, size_t len, size_t *used)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8 && i < len; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *used = i + 1;
            return v;
        }
    }
    *used = 0;
    return 0;
}

/* AV1-ISOBMFF §2.4: copies the sample's OBUs into dst except temporal
 * delimiters (2), redundant frame headers (7), tile lists (8) and padding
 * (15), like libavformat's ff_av1_filter_obus. Returns the bytes written;
 * a sample that does not parse as OBUs is copied as is. */
static size_t av1_filter_obus(uint8_t *dst, const uint8_t *src, size_t len)
{
    size_t off = 0, w = 0;
    while (off < len) {
        uint8_t h = src[off];
        size_t hlen = (h & 0x04) ? 2 : 1;   /* obu_extension_flag */
        size_t olen;
        if (off + hlen > len)
            goto verbatim;
        if (h & 0x02) {                     /* obu_has_size_field */
            size_t used;
            uint64_t sz = leb128(src + off + hlen, len - off - hlen, &used);
            if (used == 0 || sz > len - off - hlen - used)
                goto verbatim;
            olen = hlen + used + (size_t)sz;
        } else {
            olen = len - off;               /* the last OBU runs to the end */
        }
        int type = (h >> 3) & 0x0f;
        if (type != 2 && type != 7 && type != 8 && type != 15) {
            memcpy(dst + w, src + off, olen);
            w += olen;
        }
        off += olen;
    }
    return w;
verbatim:
    memcpy(dst, src, len);
    return len;
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
    struct mtrack *t = &m->tr[s->kind];
    if (t->have_last && s->dts < t->last_end)
        return -EINVAL;
    /* the ceiling of one fragment, with room left for the moof */
    if (m->frag_bytes + s->len + 64 * 1024 > m->max)
        return -ENOSPC;
    if (grow((void **)&t->data, &t->cap, HEAD_GAP + t->len + s->len, 1) < 0 ||
        grow((void **)&t->smp, &t->smp_cap, t->nsmp + 1, sizeof(*t->smp)) < 0) {
        log_error("cmaf_muxer: out of memory for a %zu-byte sample", s->len);
        m->broken = true;
        return -ENOMEM;
    }
    size_t n = s->len;
    if (t->av1)
        n = av1_filter_obus(t->data + HEAD_GAP + t->len, s->data, s->len);
    else
        memcpy(t->data + HEAD_GAP + t->len, s->data, s->len);
    t->len += n;
    t->smp[t->nsmp++] = (struct msample){ s->dts, (uint32_t)n, (uint32_t)(s->pts - s->dts),
                                          (uint32_t)s->duration, s->keyframe };
    t->last_end = s->dts + s->duration;
    t->have_last = true;
    m->frag_bytes += n;
    return 0;
}

/* ISO/IEC 14496-12 §8.8.3.1 sample_flags: sample_depends_on = 2 (an I frame)
 * for sync samples, 1 and sample_is_non_sync_sample for the others. */
#define SAMPLE_FLAGS_SYNC 0x02000000u
#define SAMPLE_FLAGS_NON_SYNC 0x01010000u

#define TRUN_DATA_OFFSET 0x000001u
#define TRUN_DURATION 0x000100u
#define TRUN_SIZE 0x000200u
#define TRUN_FLAGS 0x000400u
#define TRUN_CTS 0x000800u
#define TFHD_DEFAULT_FLAGS 0x000020u
#define TFHD_DEFAULT_BASE_IS_MOOF 0x020000u

/* Video samples carry their own flags and composition offset; audio samples
 * are all sync samples: their flags are the tfhd default. */
static size_t trun_entry_size(int kind)
{
    return kind == MEDIA_KIND_VIDEO ? 16 : 8;
}

static size_t tfhd_size(int kind)
{
    return kind == MEDIA_KIND_VIDEO ? 16 : 20;
}

static uint8_t *box_start(uint8_t *p, const char *type, uint32_t size)
{
    wr_be32(p, size);
    memcpy(p + 4, type, 4);
    return p + 8;
}

static uint8_t *fullbox_start(uint8_t *p, const char *type, uint32_t size, uint8_t version, uint32_t flags)
{
    p = box_start(p, type, size);
    wr_be32(p, ((uint32_t)version << 24) | flags);
    return p + 4;
}

int cmaf_muxer_flush(struct cmaf_muxer *m, const uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (m->broken)
        return -EIO;
    static const int order[2] = { MEDIA_KIND_VIDEO, MEDIA_KIND_AUDIO };
    size_t traf_size[2] = { 0, 0 };
    size_t moof = 8 + 16;   /* moof header + mfhd */
    size_t payload = 0;
    for (int i = 0; i < 2; i++) {
        const struct mtrack *t = &m->tr[order[i]];
        if (!t->present || t->nsmp == 0)
            continue;
        /* traf + tfhd + tfdt v1 + trun header with data offset */
        traf_size[i] = 8 + tfhd_size(order[i]) + 20 + 20 + t->nsmp * trun_entry_size(order[i]);
        moof += traf_size[i];
        payload += t->len;
    }
    if (payload == 0)
        return 0;
    size_t head = moof + 8;
    size_t total = head + payload;
    /* the first track with samples hosts the fragment: moof + mdat header
     * go into its gap, the other track's samples after its own */
    struct mtrack *host = &m->tr[traf_size[0] ? order[0] : order[1]];
    struct mtrack *guest = traf_size[0] && traf_size[1] ? &m->tr[order[1]] : NULL;
    if (total > UINT32_MAX ||
        grow((void **)&host->data, &host->cap, HEAD_GAP + host->len + (guest ? guest->len : 0) + head, 1) < 0) {
        log_error("cmaf_muxer: cannot assemble a %zu-byte fragment", total);
        m->broken = true;
        return -ENOMEM;
    }
    size_t start;
    if (head <= HEAD_GAP) {
        start = HEAD_GAP - head;
    } else {
        /* a moof bigger than the gap (hundreds of samples): move them */
        memmove(host->data + head, host->data + HEAD_GAP, host->len);
        start = 0;
    }
    uint8_t *frag = host->data + start;
    if (guest)
        memcpy(frag + head + host->len, guest->data + HEAD_GAP, guest->len);

    uint8_t *p = box_start(frag, "moof", (uint32_t)moof);
    p = fullbox_start(p, "mfhd", 16, 0, 0);
    wr_be32(p, m->next_seq);
    p += 4;
    size_t data_off = head;   /* default-base-is-moof: from the moof's first byte */
    for (int i = 0; i < 2; i++) {
        int k = order[i];
        struct mtrack *t = &m->tr[k];
        if (!traf_size[i])
            continue;
        p = box_start(p, "traf", (uint32_t)traf_size[i]);
        bool video = k == MEDIA_KIND_VIDEO;
        p = fullbox_start(p, "tfhd", (uint32_t)tfhd_size(k), 0,
                          TFHD_DEFAULT_BASE_IS_MOOF | (video ? 0 : TFHD_DEFAULT_FLAGS));
        wr_be32(p, t->track_id);
        p += 4;
        if (!video) {
            wr_be32(p, SAMPLE_FLAGS_SYNC);
            p += 4;
        }
        p = fullbox_start(p, "tfdt", 20, 1, 0);
        wr_be64(p, (uint64_t)t->smp[0].dts);
        p += 8;
        uint32_t tflags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | (video ? TRUN_FLAGS | TRUN_CTS : 0);
        p = fullbox_start(p, "trun", (uint32_t)(20 + t->nsmp * trun_entry_size(k)), 0, tflags);
        wr_be32(p, (uint32_t)t->nsmp);
        wr_be32(p + 4, (uint32_t)data_off);
        p += 8;
        for (size_t j = 0; j < t->nsmp; j++) {
            const struct msample *e = &t->smp[j];
            int64_t d = j + 1 < t->nsmp ? t->smp[j + 1].dts - e->dts : (int64_t)e->dur;
            wr_be32(p, d > 0 && d <= UINT32_MAX ? (uint32_t)d : e->dur);
            wr_be32(p + 4, e->size);
            p += 8;
            if (video) {
                wr_be32(p, e->key ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC);
                wr_be32(p + 4, e->cts);
                p += 8;
            }
        }
        data_off += t->len;
    }
    box_start(p, "mdat", (uint32_t)(8 + payload));
    for (int k = 0; k < 2; k++) {
        m->tr[k].len = 0;
        m->tr[k].nsmp = 0;
    }
    m->frag_bytes = 0;
    m->next_seq++;
    m->fragments++;
    *data = frag;
    *len = total;
    return 0;
}

void cmaf_muxer_free(struct cmaf_muxer *m)
{
    if (!m)
        return;
    for (int k = 0; k < 2; k++) {
        free(m->tr[k].smp);
        free(m->tr[k].data);
    }
    free(m->init);
    free(m);
}
