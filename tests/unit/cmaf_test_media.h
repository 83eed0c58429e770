/* cmaf_test_media.h — test/bench helpers for the CMAF packager: make media
 * with the ffmpeg CLI, read FLV tags (legacy H.264 / AAC only), read the
 * boxes of fMP4 fragments. Header-only (static inline) so it is compiled only
 * into the programs that include it; it deliberately does not use ingest/.
 *
 * FLV (Adobe FLV spec v10.1 §E): 9-byte header, then PreviousTagSize0 and
 * tags of 11-byte header + body + 4-byte PreviousTagSize. Video body (AVC):
 * frame type/codec byte, AVCPacketType, SI24 composition time, then the
 * avcC (type 0) or AVCC NAL units (type 1). Audio body (AAC): format byte,
 * AACPacketType, then the AudioSpecificConfig (type 0) or a raw frame. */
#ifndef TESTS_UNIT_CMAF_TEST_MEDIA_H
#define TESTS_UNIT_CMAF_TEST_MEDIA_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/bytes.h"
#include "core/media.h"

struct cmaf_test_tag {
    enum media_kind kind;
    bool config;          /* sequence header: data is avcC / ASC */
    bool key;
    int64_t ts;           /* FLV timestamp (dts), ms */
    int32_t cts;
    const uint8_t *data;
    size_t len;
};

struct cmaf_test_flv {
    uint8_t *buf;
    size_t len;
    struct cmaf_test_tag *tags;
    size_t ntags;
};

static inline int cmaf_test_read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return -1;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return -1;
    }
    uint8_t *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        fclose(f);
        return -1;
    }
    fclose(f);
    *out = b;
    *len = (size_t)n;
    return 0;
}

static inline void cmaf_test_flv_free(struct cmaf_test_flv *flv)
{
    free(flv->buf);
    free(flv->tags);
    memset(flv, 0, sizeof(*flv));
}

/* Loads an FLV file with H.264 video and/or AAC audio. Returns 0 or -1. */
static inline int cmaf_test_flv_load(const char *path, struct cmaf_test_flv *flv)
{
    memset(flv, 0, sizeof(*flv));
    if (cmaf_test_read_file(path, &flv->buf, &flv->len) < 0)
        return -1;
    const uint8_t *b = flv->buf;
    if (flv->len < 13 || memcmp(b, "FLV", 3) != 0)
        goto fail;
    size_t cap = 1024, p = rd_be32(b + 5) + 4;
    flv->tags = malloc(cap * sizeof(*flv->tags));
    if (!flv->tags)
        goto fail;
    while (p + 11 <= flv->len) {
        int type = b[p] & 0x1f;
        size_t sz = rd_be24(b + p + 1);
        int64_t ts = (int64_t)(rd_be24(b + p + 4) | ((uint32_t)b[p + 7] << 24));
        const uint8_t *d = b + p + 11;
        if (p + 11 + sz > flv->len)
            break;
        p += 11 + sz + 4;
        struct cmaf_test_tag t = { 0 };
        t.ts = ts;
        if (type == 9 && sz >= 5 && (d[0] & 0x0f) == 7) {
            if (d[1] > 1)
                continue;   /* end of sequence */
            t.kind = MEDIA_KIND_VIDEO;
            t.config = d[1] == 0;
            t.key = (d[0] >> 4) == 1;
            t.cts = (int32_t)(rd_be24(d + 2) << 8) >> 8;
            t.data = d + 5;
            t.len = sz - 5;
        } else if (type == 8 && sz >= 2 && (d[0] >> 4) == 10) {
            t.kind = MEDIA_KIND_AUDIO;
            t.config = d[1] == 0;
            t.key = true;
            t.data = d + 2;
            t.len = sz - 2;
        } else {
            continue;
        }
        if (t.len == 0)
            continue;
        if (flv->ntags == cap) {
            cap *= 2;
            struct cmaf_test_tag *n = realloc(flv->tags, cap * sizeof(*flv->tags));
            if (!n)
                goto fail;
            flv->tags = n;
        }
        flv->tags[flv->ntags++] = t;
    }
    return 0;
fail:
    cmaf_test_flv_free(flv);
    return -1;
}

/* A media_codec_config for an FLV sequence header (fixed codec strings: the
 * packager copies them, it does not derive them). */
static inline struct media_codec_config cmaf_test_config(const struct cmaf_test_tag *t, int width,
                                                         int height)
{
    struct media_codec_config c;
    memset(&c, 0, sizeof(c));
    c.kind = t->kind;
    c.codec = t->kind == MEDIA_KIND_VIDEO ? MEDIA_CODEC_H264 : MEDIA_CODEC_AAC;
    c.extradata = t->data;
    c.extradata_len = t->len;
    if (t->kind == MEDIA_KIND_VIDEO) {
        snprintf(c.codec_string, sizeof(c.codec_string), "avc1.64001f");
        c.width = width;
        c.height = height;
    } else {
        snprintf(c.codec_string, sizeof(c.codec_string), "mp4a.40.2");
        c.sample_rate = 44100;
        c.channels = 2;
    }
    return c;
}

static inline struct media_frame cmaf_test_frame(const struct cmaf_test_tag *t)
{
    struct media_frame f;
    memset(&f, 0, sizeof(f));
    f.kind = t->kind;
    f.dts_ms = t->ts;
    f.cts_ms = t->cts;
    f.keyframe = t->key;
    f.data = t->data;
    f.len = t->len;
    return f;
}

/* Runs a shell command; returns its exit status (or -1). */
static inline int cmaf_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int cmaf_test_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd))
        return -1;
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc))
        return -1;
    return WEXITSTATUS(rc);
}

/* ---- ISO-BMFF fragment reading (ISO/IEC 14496-12 §8.8) ---------------- */

struct cmaf_test_traf {
    uint32_t track_id;
    uint64_t tfdt;
    uint32_t nsamples;
    uint64_t duration;       /* sum of sample durations */
    bool first_is_sync;      /* first sample's sample_is_non_sync_sample == 0 */
    int64_t first_cts;
};

struct cmaf_test_moof {
    uint32_t seq;
    int ntraf;
    struct cmaf_test_traf traf[4];
};

/* Finds the first box of a type in [p, p+len); returns its body or NULL. */
static inline const uint8_t *cmaf_test_box(const uint8_t *p, size_t len, const char *type,
                                           size_t *body_len)
{
    size_t off = 0;
    while (off + 8 <= len) {
        uint64_t sz = rd_be32(p + off);
        size_t hdr = 8;
        if (sz == 1) {
            if (off + 16 > len)
                return NULL;
            sz = rd_be64(p + off + 8);
            hdr = 16;
        } else if (sz == 0) {
            sz = len - off;
        }
        if (sz < hdr || off + sz > len)
            return NULL;
        if (memcmp(p + off + 4, type, 4) == 0) {
            *body_len = (size_t)sz - hdr;
            return p + off + hdr;
        }
        off += (size_t)sz;
    }
    return NULL;
}

/* Trex default durations / flags per track id, from the init's mvex. */
struct cmaf_test_trex {
    uint32_t track_id, duration, flags;
};

static inline int cmaf_test_parse_trex(const uint8_t *init, size_t len, struct cmaf_test_trex *out,
                                       int max)
{
    size_t ml, xl;
    const uint8_t *moov = cmaf_test_box(init, len, "moov", &ml);
    if (!moov)
        return -1;
    const uint8_t *mvex = cmaf_test_box(moov, ml, "mvex", &xl);
    if (!mvex)
        return -1;
    int n = 0;
    size_t off = 0;
    while (off + 8 <= xl && n < max) {
        uint32_t sz = rd_be32(mvex + off);
        if (sz < 8 || off + sz > xl)
            break;
        if (memcmp(mvex + off + 4, "trex", 4) == 0 && sz >= 32) {
            const uint8_t *b = mvex + off + 8;
            out[n].track_id = rd_be32(b + 4);
            out[n].duration = rd_be32(b + 12);
            out[n].flags = rd_be32(b + 20);
            n++;
        }
        off += sz;
    }
    return n;
}

/* Parses one moof (the first in data). Returns 0 or -1 when malformed. */
static inline int cmaf_test_parse_moof(const uint8_t *data, size_t len, const struct cmaf_test_trex *trex,
                                       int ntrex, struct cmaf_test_moof *out)
{
    size_t ml;
    memset(out, 0, sizeof(*out));
    const uint8_t *moof = cmaf_test_box(data, len, "moof", &ml);
    if (!moof)
        return -1;
    size_t hl;
    const uint8_t *mfhd = cmaf_test_box(moof, ml, "mfhd", &hl);
    if (!mfhd || hl < 8)
        return -1;
    out->seq = rd_be32(mfhd + 4);
    size_t off = 0;
    while (off + 8 <= ml) {
        uint32_t sz = rd_be32(moof + off);
        if (sz < 8 || off + sz > ml)
            return -1;
        if (memcmp(moof + off + 4, "traf", 4) == 0 && out->ntraf < 4) {
            const uint8_t *traf = moof + off + 8;
            size_t tl = sz - 8, bl;
            struct cmaf_test_traf *t = &out->traf[out->ntraf++];
            const uint8_t *tfhd = cmaf_test_box(traf, tl, "tfhd", &bl);
            if (!tfhd || bl < 8)
                return -1;
            uint32_t fl = rd_be32(tfhd) & 0xffffff;
            t->track_id = rd_be32(tfhd + 4);
            uint32_t def_dur = 0, def_flags = 0;
            for (int i = 0; i < ntrex; i++) {
                if (trex[i].track_id == t->track_id) {
                    def_dur = trex[i].duration;
                    def_flags = trex[i].flags;
                }
            }
            size_t q = 8;
            if (fl & 0x1)
                q += 8;
            if (fl & 0x2)
                q += 4;
            if (fl & 0x8) {
                def_dur = rd_be32(tfhd + q);
                q += 4;
            }
            if (fl & 0x10)
                q += 4;
            if (fl & 0x20)
                def_flags = rd_be32(tfhd + q);
            const uint8_t *tfdt = cmaf_test_box(traf, tl, "tfdt", &bl);
            if (!tfdt || bl < 8)
                return -1;
            t->tfdt = tfdt[0] == 1 ? rd_be64(tfdt + 4) : rd_be32(tfdt + 4);
            const uint8_t *trun = cmaf_test_box(traf, tl, "trun", &bl);
            if (!trun || bl < 8)
                return -1;
            uint32_t rf = rd_be32(trun) & 0xffffff;
            int ver = trun[0];
            t->nsamples = rd_be32(trun + 4);
            q = 8;
            if (rf & 0x1)
                q += 4;
            uint32_t first_flags = def_flags;
            bool have_first = false;
            if (rf & 0x4) {
                first_flags = rd_be32(trun + q);
                have_first = true;
                q += 4;
            }
            for (uint32_t i = 0; i < t->nsamples; i++) {
                uint32_t dur = def_dur, flags = def_flags;
                int64_t cts = 0;
                if (rf & 0x100) { dur = rd_be32(trun + q); q += 4; }
                if (rf & 0x200) q += 4;
                if (rf & 0x400) { flags = rd_be32(trun + q); q += 4; }
                if (rf & 0x800) {
                    cts = ver ? (int64_t)(int32_t)rd_be32(trun + q) : (int64_t)rd_be32(trun + q);
                    q += 4;
                }
                if (q > bl)
                    return -1;
                if (i == 0) {
                    if (have_first)
                        flags = first_flags;
                    t->first_is_sync = !(flags & 0x10000);
                    t->first_cts = cts;
                }
                t->duration += dur;
            }
        }
        off += sz;
    }
    return 0;
}

#endif
