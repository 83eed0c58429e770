/* test_flv.c — FLV tag bodies (legacy + Enhanced RTMP) and codec-config
 * records (avcC/SPS, hvcC/SPS, av1C/sequence header, AudioSpecificConfig).
 *
 * Real bytes: tests/unit/data/flv/ (see gen.sh there: ffmpeg 5.1 with
 * libx264, libx265, libaom, SVT-AV1, rav1e, native AAC). Expected sizes are
 * ffprobe's; expected avc1/hvc1/mp4a codec strings were cross-checked with
 * GStreamer 1.22's gst_codec_utils_caps_get_mime_codec() on the same bytes;
 * av01 strings against ffprobe's profile/level and the av1C bits.
 * Synthetic SPS / sequence headers are written with a small bit writer below
 * to reach branches encoders here do not produce (4:2:2, 4:0:0, separate
 * colour planes, poc type 1 with emulation-prevention bytes, HEVC sub-layers,
 * AV1 decoder models).
 *
 * Every parse gets an exact-size heap copy, so under SAN=1 any read past
 * `len` is an ASan error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/flv.h"

#define DATA "tests/unit/data/flv/"

struct blob {
    uint8_t *p;
    size_t len;
};

static struct blob load(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, DATA "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (tests run from the repo root)", path);
    static uint8_t tmp[1 << 16];
    size_t n = fread(tmp, 1, sizeof tmp, f);
    fclose(f);
    struct blob b = { malloc(n ? n : 1), n };
    assert_non_null(b.p);
    memcpy(b.p, tmp, n);
    return b;
}

static struct blob dup_blob(const uint8_t *p, size_t n)
{
    struct blob b = { malloc(n ? n : 1), n };
    assert_non_null(b.p);
    if (n)
        memcpy(b.p, p, n);
    return b;
}

/* header bytes ++ payload, exact size */
static struct blob cat(const uint8_t *hdr, size_t hlen, const uint8_t *pl, size_t plen)
{
    struct blob b = { malloc(hlen + plen + 1), hlen + plen };
    assert_non_null(b.p);
    memcpy(b.p, hdr, hlen);
    if (plen)
        memcpy(b.p + hlen, pl, plen);
    return b;
}

/* ---- bit writer for synthetic parameter sets ------------------------------ */

struct bw {
    uint8_t buf[512];
    size_t bits;
};

static void bw_put(struct bw *w, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        size_t byte = w->bits / 8;
        assert_true(byte < sizeof w->buf);
        if (w->bits % 8 == 0)
            w->buf[byte] = 0;
        if ((v >> i) & 1)
            w->buf[byte] |= (uint8_t)(0x80 >> (w->bits % 8));
        w->bits++;
    }
}

static void bw_ue(struct bw *w, uint32_t v)
{
    uint64_t x = (uint64_t)v + 1;
    int len = 0;
    while ((x >> len) > 1)
        len++;
    bw_put(w, 0, len);
    bw_put(w, x, len + 1);
}

static void bw_se(struct bw *w, int64_t v)
{
    bw_ue(w, v > 0 ? (uint32_t)(2 * v - 1) : (uint32_t)(-2 * v));
}

static size_t bw_finish(struct bw *w) /* rbsp_trailing_bits */
{
    bw_put(w, 1, 1);
    while (w->bits % 8)
        bw_put(w, 0, 1);
    return w->bits / 8;
}

/* NAL escaping, H.264 §7.4.1: 0x000000..03 -> 0x000003xx. Returns the new
 * length and counts the inserted bytes. */
static size_t nal_escape(const uint8_t *in, size_t n, uint8_t *out, int *epbs)
{
    size_t o = 0;
    int zeros = 0;
    *epbs = 0;
    for (size_t i = 0; i < n; i++) {
        if (zeros >= 2 && in[i] <= 3) {
            out[o++] = 3;
            zeros = 0;
            (*epbs)++;
        }
        out[o++] = in[i];
        zeros = in[i] == 0 ? zeros + 1 : 0;
    }
    return o;
}

/* ---- codec-config records: real fixtures ---------------------------------- */

enum rec_kind { AVCC, HVCC, AV1C, ASC };

static int parse_rec(enum rec_kind k, const uint8_t *p, size_t n, struct media_codec_config *c)
{
    switch (k) {
    case AVCC: return flv_parse_avcc(p, n, c);
    case HVCC: return flv_parse_hvcc(p, n, c);
    case AV1C: return flv_parse_av1c(p, n, c);
    case ASC: return flv_parse_asc(p, n, c);
    }
    return -99;
}

struct rec_case {
    const char *file;
    enum rec_kind kind;
    size_t skip; /* bytes of tag header before the record */
    const char *codec_string;
    enum media_codec codec;
    int width, height, sample_rate, channels;
};

static const struct rec_case rec_cases[] = {
    /* ffprobe: h264 High 1280x720 level 31 */
    { "avc_high_720p_seq.tag", AVCC, 5, "avc1.64001f", MEDIA_CODEC_H264, 1280, 720, 0, 0 },
    /* ffprobe: h264 High 1920x1080 level 40 (frame cropping 1088 -> 1080) */
    { "avc_high_1080p.avcc", AVCC, 0, "avc1.640028", MEDIA_CODEC_H264, 1920, 1080, 0, 0 },
    /* ffprobe: Constrained Baseline 642x362 level 30 (crop from 656x368) */
    { "avc_baseline_642x362.avcc", AVCC, 0, "avc1.42c01e", MEDIA_CODEC_H264, 642, 362, 0, 0 },
    /* ffprobe: High 4:4:4 Predictive 320x240, custom scaling matrices (cqm=jvt) */
    { "avc_high444_cqm_320x240.avcc", AVCC, 0, "avc1.f4000d", MEDIA_CODEC_H264, 320, 240, 0, 0 },
    /* ffprobe: High 720x576 field_order tt (frame_mbs_only_flag = 0) */
    { "avc_interlaced_720x576.avcc", AVCC, 0, "avc1.64001e", MEDIA_CODEC_H264, 720, 576, 0, 0 },
    /* ffprobe: hevc Main 1280x720 level 93; GStreamer: hvc1.1.6.L93.90 */
    { "hevc_main_720p.hvcc", HVCC, 0, "hvc1.1.6.L93.90", MEDIA_CODEC_HEVC, 1280, 720, 0, 0 },
    /* ffprobe: hevc Main 10 642x362 level 63 (conformance window); GStreamer: hvc1.2.4.L63.90 */
    { "hevc_main10_642x362.hvcc", HVCC, 0, "hvc1.2.4.L63.90", MEDIA_CODEC_HEVC, 642, 362, 0, 0 },
    /* ffprobe: hevc Rext gbrp (4:4:4) 1280x720; GStreamer: hvc1.4.10.L93.9E.08 */
    { "hevc_rext444_720p.hvcc", HVCC, 0, "hvc1.4.10.L93.9E.08", MEDIA_CODEC_HEVC, 1280, 720, 0, 0 },
    /* ffprobe: av1 Main 640x360 level 1 (seq_level_idx 1), 8-bit */
    { "av1_main_640x360.av1c", AV1C, 0, "av01.0.01M.08", MEDIA_CODEC_AV1, 640, 360, 0, 0 },
    /* ffprobe: av1 High (profile 1, 4:4:4) 640x360 */
    { "av1_high444_640x360.av1c", AV1C, 0, "av01.1.01M.08", MEDIA_CODEC_AV1, 640, 360, 0, 0 },
    /* ffprobe: av1 Main 642x362 yuv420p10le (SVT-AV1) */
    { "av1_main10_642x362.av1c", AV1C, 0, "av01.0.01M.10", MEDIA_CODEC_AV1, 642, 362, 0, 0 },
    /* ffprobe: av1 Main 1920x1080 level 31 (rav1e: seq_level_idx 31) */
    { "av1_main_1920x1080.av1c", AV1C, 0, "av01.0.31M.08", MEDIA_CODEC_AV1, 1920, 1080, 0, 0 },
    /* ffprobe: aac LC 48000 Hz stereo; GStreamer: mp4a.40.2 */
    { "aac_lc_48k_stereo_seq.tag", ASC, 2, "mp4a.40.2", MEDIA_CODEC_AAC, 0, 0, 48000, 2 },
    /* ffprobe: aac LC 44100 Hz mono */
    { "aac_lc_44k_mono.asc", ASC, 0, "mp4a.40.2", MEDIA_CODEC_AAC, 0, 0, 44100, 1 },
};

static void test_real_config_records_give_ffprobe_sizes_and_codec_strings(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rec_cases / sizeof rec_cases[0]; i++) {
        const struct rec_case *rc = &rec_cases[i];
        struct blob f = load(rc->file);
        struct blob r = dup_blob(f.p + rc->skip, f.len - rc->skip);
        struct media_codec_config c;
        memset(&c, 0, sizeof c);
        int got = parse_rec(rc->kind, r.p, r.len, &c);
        if (got != 0)
            fail_msg("%s: parse returned %d", rc->file, got);
        if (strcmp(c.codec_string, rc->codec_string) != 0)
            fail_msg("%s: codec string %s want %s", rc->file, c.codec_string, rc->codec_string);
        if (c.width != rc->width || c.height != rc->height)
            fail_msg("%s: %dx%d want %dx%d", rc->file, c.width, c.height, rc->width, rc->height);
        if (c.sample_rate != rc->sample_rate || c.channels != rc->channels)
            fail_msg("%s: %d Hz %d ch want %d Hz %d ch", rc->file, c.sample_rate, c.channels,
                     rc->sample_rate, rc->channels);
        assert_int_equal(c.codec, rc->codec);
        assert_int_equal(c.kind, rc->kind == ASC ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO);
        assert_ptr_equal(c.extradata, r.p);
        assert_int_equal(c.extradata_len, r.len);
        free(r.p);
        free(f.p);
    }
}

/* End of the last PPS in an avcC: bytes after it are optional extensions. */
static size_t avcc_required_len(const uint8_t *p)
{
    size_t pos = 6;
    for (unsigned i = 0, n = p[5] & 0x1f; i < n; i++)
        pos += 2 + (size_t)((p[pos] << 8) | p[pos + 1]);
    unsigned npps = p[pos++];
    for (unsigned i = 0; i < npps; i++)
        pos += 2 + (size_t)((p[pos] << 8) | p[pos + 1]);
    return pos;
}

static void test_truncated_config_records_are_malformed_at_every_length(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rec_cases / sizeof rec_cases[0]; i++) {
        const struct rec_case *rc = &rec_cases[i];
        struct blob f = load(rc->file);
        const uint8_t *rec = f.p + rc->skip;
        size_t len = f.len - rc->skip;
        size_t need;
        switch (rc->kind) {
        case AVCC: need = avcc_required_len(rec); break;
        case HVCC: need = len; break;         /* every array is checked */
        case AV1C: need = len; break;         /* (4 = no configOBUs: valid, checked below) */
        default: need = 2; break;             /* ASC: object type .. channels */
        }
        for (size_t cut = 0; cut < len; cut++) {
            struct blob r = dup_blob(rec, cut);
            struct media_codec_config c;
            memset(&c, 0x5a, sizeof c);
            struct media_codec_config before = c;
            int got = parse_rec(rc->kind, r.p, r.len, &c);
            bool may_pass = cut >= need || (rc->kind == AV1C && cut == 4);
            if (got == 0 && !may_pass)
                fail_msg("%s cut at %zu of %zu parsed", rc->file, cut, len);
            if (got != 0)
                assert_memory_equal(&c, &before, sizeof c); /* untouched on failure */
            if (rc->kind == AV1C && cut == 4) {
                assert_int_equal(got, 0);
                assert_int_equal(c.width, 0); /* no sequence header: size unknown */
            }
            free(r.p);
        }
        free(f.p);
    }
}

/* ---- synthetic H.264 SPS -------------------------------------------------- */

struct h264_case {
    const char *name;
    unsigned profile, chroma, sep_plane, scaling, poc_type, w_mbs, h_map, frame_mbs_only;
    unsigned crop[4]; /* left right top bottom; all 0 = no cropping */
    int want_w, want_h; /* 0 = malformed */
    bool want_epb;
};

static size_t build_h264_sps(const struct h264_case *k, uint8_t *nal, int *epbs)
{
    struct bw w = { .bits = 0 };
    bw_put(&w, k->profile, 8);
    bw_put(&w, 0, 8);  /* constraint flags */
    bw_put(&w, 30, 8); /* level */
    bw_ue(&w, 0);      /* sps id */
    if (k->profile == 100 || k->profile == 122 || k->profile == 244) {
        bw_ue(&w, k->chroma);
        if (k->chroma == 3)
            bw_put(&w, k->sep_plane, 1);
        bw_ue(&w, 0);
        bw_ue(&w, 0);
        bw_put(&w, 0, 1);
        bw_put(&w, k->scaling, 1);
        if (k->scaling) {
            int lists = k->chroma != 3 ? 8 : 12;
            for (int i = 0; i < lists; i++) {
                bw_put(&w, i % 2 == 0, 1);
                if (i % 2 == 0) {
                    int size = i < 6 ? 16 : 64;
                    bw_se(&w, 8); /* nextScale 16, then deltas of 0 */
                    for (int j = 1; j < size; j++)
                        bw_se(&w, j == size - 1 ? -16 : 0);
                }
            }
        }
    }
    bw_ue(&w, 0);          /* log2_max_frame_num_minus4 */
    bw_ue(&w, k->poc_type);
    if (k->poc_type == 0) {
        bw_ue(&w, 2);
    } else if (k->poc_type == 1) {
        bw_put(&w, 0, 1);
        bw_se(&w, -(1 << 30));
        bw_se(&w, -(1 << 30));
        bw_ue(&w, 1);
        bw_se(&w, -(1 << 30));
    }
    bw_ue(&w, 1);          /* max_num_ref_frames */
    bw_put(&w, 0, 1);
    bw_ue(&w, k->w_mbs - 1);
    bw_ue(&w, k->h_map - 1);
    bw_put(&w, k->frame_mbs_only, 1);
    if (!k->frame_mbs_only)
        bw_put(&w, 1, 1);
    bw_put(&w, 1, 1);      /* direct_8x8_inference */
    bool crop = k->crop[0] || k->crop[1] || k->crop[2] || k->crop[3];
    bw_put(&w, crop, 1);
    if (crop)
        for (int i = 0; i < 4; i++)
            bw_ue(&w, k->crop[i]);
    bw_put(&w, 0, 1);      /* vui_parameters_present_flag */
    size_t n = bw_finish(&w);
    nal[0] = 0x67;
    return 1 + nal_escape(w.buf, n, nal + 1, epbs);
}

static size_t wrap_avcc(const uint8_t *sps, size_t n, uint8_t *out)
{
    static const uint8_t pps[] = { 0x68, 0xce, 0x3c, 0x80 };
    size_t p = 0;
    out[p++] = 1;
    out[p++] = sps[1];
    out[p++] = sps[2];
    out[p++] = sps[3];
    out[p++] = 0xff;
    out[p++] = 0xe1;
    out[p++] = (uint8_t)(n >> 8);
    out[p++] = (uint8_t)n;
    memcpy(out + p, sps, n);
    p += n;
    out[p++] = 1;
    out[p++] = 0;
    out[p++] = sizeof pps;
    memcpy(out + p, pps, sizeof pps);
    return p + sizeof pps;
}

static const struct h264_case h264_cases[] = {
    { "baseline 1920x1088 cropped to 1080", 66, 1, 0, 0, 0, 120, 68, 1, {0, 0, 0, 4}, 1920, 1080, false },
    { "high 4:2:2 interlaced, CropUnitY = 2", 122, 2, 0, 0, 0, 40, 15, 0, {0, 2, 0, 4}, 636, 472, false },
    { "high 4:4:4 separate planes (ChromaArrayType 0)", 244, 3, 1, 0, 0, 40, 30, 1, {1, 1, 1, 1}, 638, 478, false },
    { "high 4:4:4, CropUnit 1x1", 244, 3, 0, 0, 0, 40, 30, 1, {1, 1, 1, 1}, 638, 478, false },
    { "high 4:0:0 interlaced, CropUnitY = 2", 100, 0, 0, 0, 0, 40, 15, 0, {2, 0, 1, 1}, 638, 476, false },
    { "high with scaling lists and poc type 1 (EPBs)", 100, 1, 0, 1, 1, 80, 45, 1, {0}, 1280, 720, true },
    { "4:4:4 with 12 scaling lists", 244, 3, 0, 1, 2, 20, 15, 1, {0}, 320, 240, false },
    { "cropping eats the whole width", 66, 1, 0, 0, 0, 1, 1, 1, {4, 4, 0, 0}, 0, 0, false },
    { "width over 65535", 66, 1, 0, 0, 0, 5000, 10, 1, {0}, 0, 0, false },
    { "pic_order_cnt_type 3", 66, 1, 0, 0, 3, 10, 10, 1, {0}, 0, 0, false },
    { "chroma_format_idc 4", 100, 4, 0, 0, 0, 10, 10, 1, {0}, 0, 0, false },
};

static void test_synthetic_h264_sps_cropping_and_profiles(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof h264_cases / sizeof h264_cases[0]; i++) {
        const struct h264_case *k = &h264_cases[i];
        uint8_t nal[1200], rec[1300];
        int epbs;
        size_t n = build_h264_sps(k, nal, &epbs);
        if (k->want_epb && epbs == 0)
            fail_msg("%s: test SPS has no emulation-prevention bytes", k->name);
        size_t rn = wrap_avcc(nal, n, rec);
        struct blob r = dup_blob(rec, rn);
        struct media_codec_config c;
        memset(&c, 0, sizeof c);
        int got = flv_parse_avcc(r.p, r.len, &c);
        if (k->want_w == 0) {
            if (got != -1)
                fail_msg("%s: parsed, want malformed", k->name);
        } else if (got != 0 || c.width != k->want_w || c.height != k->want_h) {
            fail_msg("%s: rc %d %dx%d want %dx%d", k->name, got, c.width, c.height, k->want_w, k->want_h);
        }
        free(r.p);
    }
}

static void test_sps_with_bogus_exp_golomb_is_malformed(void **state)
{
    (void)state;
    struct blob f = load("avc_high_1080p.avcc");
    /* SPS starts at 8: keep NAL header + profile/compat/level, then zero
     * bits: ue(v) with more than 31 leading zeros. The zeros are written
     * with emulation prevention so only the Exp-Golomb check can stop it. */
    size_t sps_len = (size_t)((f.p[6] << 8) | f.p[7]);
    for (size_t i = 8 + 4; i < 8 + sps_len; i++)
        f.p[i] = (i % 3 == 2) ? 0x03 : 0x00;
    struct media_codec_config c;
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_avcc(f.p, f.len, &c), -1);
    /* not an SPS NAL at all */
    struct blob g = load("avc_high_1080p.avcc");
    g.p[8] = 0x68;
    assert_int_equal(flv_parse_avcc(g.p, g.len, &c), -1);
    /* zero SPS count, wrong version */
    g.p[8] = 0x67;
    g.p[5] = 0xe0;
    assert_int_equal(flv_parse_avcc(g.p, g.len, &c), -1);
    g.p[5] = 0xe1;
    g.p[0] = 0;
    assert_int_equal(flv_parse_avcc(g.p, g.len, &c), -1);
    g.p[0] = 1;
    /* SPS length larger than the record */
    g.p[7] = 0xff;
    assert_int_equal(flv_parse_avcc(g.p, g.len, &c), -1);
    free(g.p);
    free(f.p);
}

/* ---- synthetic HEVC SPS --------------------------------------------------- */

struct hevc_case {
    const char *name;
    unsigned max_sub_layers_minus1, chroma, width, height;
    unsigned conf[4];
    int want_w, want_h;
};

static size_t build_hevc_sps(const struct hevc_case *k, uint8_t *nal)
{
    struct bw w = { .bits = 0 };
    bw_put(&w, 0, 4);
    bw_put(&w, k->max_sub_layers_minus1, 3);
    bw_put(&w, 1, 1);
    /* general profile_tier_level: Main, compat 1|2, progressive+frame-only */
    bw_put(&w, 0, 2);
    bw_put(&w, 0, 1);
    bw_put(&w, 1, 5);
    bw_put(&w, 0x60000000u, 32);
    bw_put(&w, 0x9, 4);
    bw_put(&w, 0, 43);
    bw_put(&w, 0, 1);
    bw_put(&w, 93, 8);
    unsigned msl = k->max_sub_layers_minus1 > 7 ? 7 : k->max_sub_layers_minus1;
    for (unsigned i = 0; i < msl; i++) {
        bw_put(&w, i % 2 == 0, 1); /* sub_layer_profile_present */
        bw_put(&w, 1, 1);          /* sub_layer_level_present */
    }
    if (msl > 0)
        for (unsigned i = msl; i < 8; i++)
            bw_put(&w, 0, 2);
    for (unsigned i = 0; i < msl; i++) {
        if (i % 2 == 0) {
            bw_put(&w, 0xffffffffu, 32); /* ones, so a mis-skip shows */
            bw_put(&w, 0xffffffffu, 32);
            bw_put(&w, 0xffffff, 24);
        }
        bw_put(&w, 0xff, 8);
    }
    bw_ue(&w, 0);
    bw_ue(&w, k->chroma);
    if (k->chroma == 3)
        bw_put(&w, 0, 1);
    bw_ue(&w, k->width);
    bw_ue(&w, k->height);
    bool conf = k->conf[0] || k->conf[1] || k->conf[2] || k->conf[3];
    bw_put(&w, conf, 1);
    if (conf)
        for (int i = 0; i < 4; i++)
            bw_ue(&w, k->conf[i]);
    bw_ue(&w, 0); /* bit_depth_luma_minus8 ... (not parsed) */
    bw_ue(&w, 0);
    size_t n = bw_finish(&w);
    nal[0] = 0x42;
    nal[1] = 0x01;
    int epbs;
    return 2 + nal_escape(w.buf, n, nal + 2, &epbs);
}

/* hvcC with the given 23-byte head fields and one SPS array */
static size_t wrap_hvcc(const uint8_t *sps, size_t n, uint8_t byte1, uint32_t compat,
                        const uint8_t constraint[6], uint8_t level, uint8_t *out)
{
    size_t p = 0;
    out[p++] = 1;
    out[p++] = byte1;
    out[p++] = (uint8_t)(compat >> 24);
    out[p++] = (uint8_t)(compat >> 16);
    out[p++] = (uint8_t)(compat >> 8);
    out[p++] = (uint8_t)compat;
    memcpy(out + p, constraint, 6);
    p += 6;
    out[p++] = level;
    static const uint8_t tail[] = { 0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f };
    memcpy(out + p, tail, sizeof tail);
    p += sizeof tail;
    out[p++] = 1;    /* numOfArrays */
    out[p++] = 0xa1; /* complete, SPS */
    out[p++] = 0;
    out[p++] = 1;
    out[p++] = (uint8_t)(n >> 8);
    out[p++] = (uint8_t)n;
    memcpy(out + p, sps, n);
    return p + n;
}

static const struct hevc_case hevc_cases[] = {
    { "4:2:0 1920x1088, conformance bottom 4 -> 1080", 0, 1, 1920, 1088, {0, 0, 0, 4}, 1920, 1080 },
    { "sub-layers with profile/level present are skipped", 3, 1, 1280, 720, {0}, 1280, 720 },
    { "six sub-layers", 6, 1, 640, 360, {0}, 640, 360 },
    { "4:2:2: SubWidthC 2, SubHeightC 1", 0, 2, 640, 480, {0, 1, 0, 1}, 638, 479 },
    { "4:4:4: SubWidthC 1", 0, 3, 640, 480, {1, 0, 0, 0}, 639, 480 },
    { "4:0:0: SubWidthC 1", 0, 0, 640, 480, {0, 0, 2, 0}, 640, 478 },
    { "sps_max_sub_layers_minus1 7", 7, 1, 640, 480, {0}, 0, 0 },
    { "conformance window larger than the picture", 0, 1, 64, 64, {0, 0, 16, 16}, 0, 0 },
    { "zero width", 0, 1, 0, 64, {0}, 0, 0 },
    { "chroma_format_idc 5", 0, 5, 64, 64, {0}, 0, 0 },
};

static void test_synthetic_hevc_sps_sub_layers_and_conformance_window(void **state)
{
    (void)state;
    static const uint8_t cons[6] = { 0x90, 0, 0, 0, 0, 0 };
    for (size_t i = 0; i < sizeof hevc_cases / sizeof hevc_cases[0]; i++) {
        const struct hevc_case *k = &hevc_cases[i];
        uint8_t nal[600], rec[700];
        size_t n = build_hevc_sps(k, nal);
        size_t rn = wrap_hvcc(nal, n, 0x01, 0x60000000u, cons, 93, rec);
        struct blob r = dup_blob(rec, rn);
        struct media_codec_config c;
        memset(&c, 0, sizeof c);
        int got = flv_parse_hvcc(r.p, r.len, &c);
        if (k->want_w == 0) {
            if (got != -1)
                fail_msg("%s: parsed, want malformed", k->name);
        } else if (got != 0 || c.width != k->want_w || c.height != k->want_h) {
            fail_msg("%s: rc %d %dx%d want %dx%d", k->name, got, c.width, c.height, k->want_w, k->want_h);
        } else {
            assert_string_equal(c.codec_string, "hvc1.1.6.L93.90");
        }
        free(r.p);
    }
}

struct hvc_string_case {
    uint8_t byte1;
    uint32_t compat;
    uint8_t cons[6];
    uint8_t level;
    const char *want;
};

static void test_hvcc_codec_string_follows_14496_15_annex_e(void **state)
{
    (void)state;
    static const struct hvc_string_case cases[] = {
        /* space 0, tier L, Main; compat bits 1 and 2 reversed = 0x6 */
        { 0x01, 0x60000000u, {0xb0, 0, 0, 0, 0, 0}, 93, "hvc1.1.6.L93.B0" },
        /* Main 10, high tier, level 6.1 */
        { 0x22, 0x20000000u, {0x90, 0, 0, 0, 0, 0}, 183, "hvc1.2.4.H183.90" },
        /* profile space 1 ("A"), all constraint bytes zero are omitted */
        { 0x44, 0x00000001u, {0, 0, 0, 0, 0, 0}, 120, "hvc1.A4.80000000.L120" },
        /* space 3 ("C"); zero bytes inside are kept, trailing ones dropped */
        { 0xc1, 0xffffffffu, {0x90, 0, 0, 0x01, 0, 0}, 255, "hvc1.C1.FFFFFFFF.L255.90.00.00.01" },
        /* all six constraint bytes */
        { 0x01, 0x60000000u, {1, 2, 3, 4, 5, 6}, 30, "hvc1.1.6.L30.01.02.03.04.05.06" },
    };
    static const struct hevc_case sps = { "sps", 0, 1, 320, 240, {0}, 320, 240 };
    uint8_t nal[600], rec[700];
    size_t n = build_hevc_sps(&sps, nal);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t rn = wrap_hvcc(nal, n, cases[i].byte1, cases[i].compat, cases[i].cons, cases[i].level, rec);
        struct blob r = dup_blob(rec, rn);
        struct media_codec_config c;
        memset(&c, 0, sizeof c);
        assert_int_equal(flv_parse_hvcc(r.p, r.len, &c), 0);
        assert_string_equal(c.codec_string, cases[i].want);
        free(r.p);
    }
}

static void test_hvcc_without_sps_or_with_bad_arrays_is_malformed(void **state)
{
    (void)state;
    struct blob f = load("hevc_main_720p.hvcc");
    struct media_codec_config c;
    memset(&c, 0, sizeof c);
    /* numOfArrays 0: no SPS */
    struct blob g = dup_blob(f.p, 23);
    g.p[22] = 0;
    assert_int_equal(flv_parse_hvcc(g.p, g.len, &c), -1);
    free(g.p);
    /* one array more than present */
    f.p[22]++;
    assert_int_equal(flv_parse_hvcc(f.p, f.len, &c), -1);
    f.p[22]--;
    /* wrong configurationVersion */
    f.p[0] = 0;
    assert_int_equal(flv_parse_hvcc(f.p, f.len, &c), -1);
    f.p[0] = 1;
    assert_int_equal(flv_parse_hvcc(f.p, f.len, &c), 0);
    free(f.p);
}

/* ---- synthetic AV1 sequence headers --------------------------------------- */

static size_t av1_seq_reduced(uint8_t *out)
{
    struct bw w = { .bits = 0 };
    bw_put(&w, 0, 3);  /* seq_profile */
    bw_put(&w, 1, 1);  /* still_picture */
    bw_put(&w, 1, 1);  /* reduced_still_picture_header */
    bw_put(&w, 8, 5);  /* seq_level_idx[0] */
    bw_put(&w, 10, 4); /* frame_width_bits_minus_1 */
    bw_put(&w, 10, 4);
    bw_put(&w, 1279, 11);
    bw_put(&w, 719, 11);
    size_t n = bw_finish(&w);
    memcpy(out, w.buf, n);
    return n;
}

static size_t av1_seq_full(uint8_t *out)
{
    struct bw w = { .bits = 0 };
    bw_put(&w, 0, 3);
    bw_put(&w, 0, 1);
    bw_put(&w, 0, 1);
    bw_put(&w, 1, 1);         /* timing_info_present_flag */
    bw_put(&w, 1001, 32);
    bw_put(&w, 60000, 32);
    bw_put(&w, 1, 1);         /* equal_picture_interval */
    bw_put(&w, 0, 3);         /* uvlc(): 3 zeros, 1, 3 bits */
    bw_put(&w, 1, 1);
    bw_put(&w, 5, 3);
    bw_put(&w, 1, 1);         /* decoder_model_info_present_flag */
    bw_put(&w, 9, 5);         /* buffer_delay_length_minus_1 -> 10 bits */
    bw_put(&w, 1001, 32);
    bw_put(&w, 31, 5);
    bw_put(&w, 31, 5);
    bw_put(&w, 1, 1);         /* initial_display_delay_present_flag */
    bw_put(&w, 1, 5);         /* operating_points_cnt_minus_1 -> 2 */
    bw_put(&w, 0x103, 12);    /* op 0 */
    bw_put(&w, 9, 5);         /* seq_level_idx 9 > 7: tier bit follows */
    bw_put(&w, 1, 1);
    bw_put(&w, 1, 1);         /* decoder_model_present_for_this_op */
    bw_put(&w, 0x3ff, 10);
    bw_put(&w, 0x3ff, 10);
    bw_put(&w, 1, 1);
    bw_put(&w, 1, 1);         /* initial_display_delay_present_for_this_op */
    bw_put(&w, 15, 4);
    bw_put(&w, 0x001, 12);    /* op 1 */
    bw_put(&w, 0, 5);
    bw_put(&w, 0, 1);
    bw_put(&w, 0, 1);
    bw_put(&w, 11, 4);        /* 12 bits of width */
    bw_put(&w, 10, 4);        /* 11 bits of height */
    bw_put(&w, 1919, 12);
    bw_put(&w, 1079, 11);
    size_t n = bw_finish(&w);
    memcpy(out, w.buf, n);
    return n;
}

static size_t wrap_av1c(uint8_t b1, uint8_t b2, uint8_t obu_hdr, const uint8_t *seq, size_t n,
                        bool with_size, uint8_t *out)
{
    size_t p = 0;
    out[p++] = 0x81;
    out[p++] = b1;
    out[p++] = b2;
    out[p++] = 0;
    out[p++] = obu_hdr;
    if (with_size)
        out[p++] = (uint8_t)n; /* n < 128 */
    memcpy(out + p, seq, n);
    return p + n;
}

static void test_av1c_sequence_header_variants_and_codec_strings(void **state)
{
    (void)state;
    uint8_t seq[64], rec[128];
    struct media_codec_config c;
    struct {
        const char *name;
        bool full, with_size;
        uint8_t b1, b2, hdr;
        int rc, w, h;
        const char *want;
    } cases[] = {
        { "reduced still picture header", false, true, 0x08, 0x00, 0x0a, 0, 1280, 720, "av01.0.08M.08" },
        { "timing info, decoder model, two operating points", true, true, 0x09, 0x80, 0x0a, 0, 1920, 1080,
          "av01.0.09H.08" },
        { "last OBU without obu_size", true, false, 0x09, 0x80, 0x08, 0, 1920, 1080, "av01.0.09H.08" },
        { "profile 2 twelve bit", false, true, 0x48, 0x60, 0x0a, 0, 1280, 720, "av01.2.08M.12" },
        { "profile 2 ten bit", false, true, 0x48, 0x40, 0x0a, 0, 1280, 720, "av01.2.08M.10" },
        { "profile 1 ten bit high tier", false, true, 0x33, 0xc0, 0x0a, 0, 1280, 720, "av01.1.19H.10" },
        { "profile 3 is reserved", false, true, 0x68, 0x00, 0x0a, -1, 0, 0, NULL },
        { "OBU forbidden bit", false, true, 0x08, 0x00, 0x8a, -1, 0, 0, NULL },
        { "OBU extension header", false, true, 0x08, 0x00, 0x0e, 0, 1280, 720, "av01.0.08M.08" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].full ? av1_seq_full(seq) : av1_seq_reduced(seq);
        size_t rn;
        if (cases[i].hdr == 0x0e) { /* extension byte between header and size */
            rec[0] = 0x81; rec[1] = cases[i].b1; rec[2] = cases[i].b2; rec[3] = 0;
            rec[4] = 0x0e; rec[5] = 0x00; rec[6] = (uint8_t)n;
            memcpy(rec + 7, seq, n);
            rn = 7 + n;
        } else {
            rn = wrap_av1c(cases[i].b1, cases[i].b2, cases[i].hdr, seq, n, cases[i].with_size, rec);
        }
        struct blob r = dup_blob(rec, rn);
        memset(&c, 0, sizeof c);
        int got = flv_parse_av1c(r.p, r.len, &c);
        if (got != cases[i].rc)
            fail_msg("%s: rc %d want %d", cases[i].name, got, cases[i].rc);
        if (got == 0) {
            if (c.width != cases[i].w || c.height != cases[i].h)
                fail_msg("%s: %dx%d", cases[i].name, c.width, c.height);
            assert_string_equal(c.codec_string, cases[i].want);
        }
        free(r.p);
    }
    /* OBU size larger than what is left */
    size_t n = av1_seq_reduced(seq);
    size_t rn = wrap_av1c(0x08, 0, 0x0a, seq, n, true, rec);
    rec[5] = (uint8_t)(n + 1);
    struct blob r = dup_blob(rec, rn);
    assert_int_equal(flv_parse_av1c(r.p, r.len, &c), -1);
    /* marker/version byte wrong */
    r.p[5] = (uint8_t)n;
    r.p[0] = 0x01;
    assert_int_equal(flv_parse_av1c(r.p, r.len, &c), -1);
    free(r.p);
    /* a metadata OBU before the sequence header is walked over */
    uint8_t two[160];
    size_t p = 0;
    two[p++] = 0x81; two[p++] = 0x08; two[p++] = 0; two[p++] = 0;
    two[p++] = 0x2a; two[p++] = 2; two[p++] = 0x01; two[p++] = 0x80; /* OBU_METADATA */
    two[p++] = 0x0a; two[p++] = (uint8_t)n;
    memcpy(two + p, seq, n);
    p += n;
    r = dup_blob(two, p);
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_av1c(r.p, r.len, &c), 0);
    assert_int_equal(c.width, 1280);
    free(r.p);
}

/* ---- AudioSpecificConfig -------------------------------------------------- */

static void test_audio_specific_config_table(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint8_t b[8];
        size_t n;
        int rc, rate, ch;
        const char *want;
    } cases[] = {
        { "LC 48 kHz stereo", {0x11, 0x90}, 2, 0, 48000, 2, "mp4a.40.2" },
        { "HE-AAC explicit SBR: output rate is the extension rate", {0x2b, 0x11, 0x88}, 3, 0, 48000, 2, "mp4a.40.5" },
        { "HE-AACv2 (PS) mono core", {0xeb, 0x09, 0x88}, 3, 0, 48000, 1, "mp4a.40.29" },
        { "explicit 24-bit sampling frequency", {0x17, 0x80, 0x5d, 0xc0, 0x10}, 5, 0, 48000, 2, "mp4a.40.2" },
        { "escaped object type 42", {0xf9, 0x48, 0x40}, 3, 0, 44100, 2, "mp4a.40.42" },
        { "channel configuration 7 is 8 channels", {0x11, 0xb8}, 2, 0, 48000, 8, "mp4a.40.2" },
        { "channel configuration 0 (PCE) leaves channels unknown", {0x11, 0x80}, 2, 0, 48000, 0, "mp4a.40.2" },
        { "reserved sampling frequency index 13", {0x16, 0x90}, 2, -1, 0, 0, NULL },
        { "object type 0", {0x01, 0x90}, 2, -1, 0, 0, NULL },
        { "reserved channel configuration 8", {0x11, 0xc0}, 2, -1, 0, 0, NULL },
        { "explicit frequency of 0", {0x17, 0x80, 0x00, 0x00, 0x10}, 5, -1, 0, 0, NULL },
        { "explicit frequency cut short", {0x17, 0x80, 0x5d}, 3, -1, 0, 0, NULL },
        { "HE-AAC with reserved extension index", {0x2b, 0x16, 0x88}, 3, -1, 0, 0, NULL },
        { "HE-AAC cut before the inner object type", {0x2b, 0x11}, 2, -1, 0, 0, NULL },
        { "one byte", {0x11}, 1, -1, 0, 0, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct blob r = dup_blob(cases[i].b, cases[i].n);
        struct media_codec_config c;
        memset(&c, 0, sizeof c);
        int got = flv_parse_asc(r.p, r.len, &c);
        if (got != cases[i].rc)
            fail_msg("%s: rc %d want %d", cases[i].name, got, cases[i].rc);
        if (got == 0) {
            if (c.sample_rate != cases[i].rate || c.channels != cases[i].ch)
                fail_msg("%s: %d Hz %d ch", cases[i].name, c.sample_rate, c.channels);
            assert_string_equal(c.codec_string, cases[i].want);
        }
        free(r.p);
    }
}

/* ---- FLV video tags: real legacy tags ------------------------------------- */

static void test_legacy_avc_tags_from_ffmpeg(void **state)
{
    (void)state;
    struct media_codec_config c;
    struct media_frame fr;
    const char *why = "unset";

    struct blob seq = load("avc_high_720p_seq.tag");
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_video(seq.p, seq.len, 0, &c, &fr, &why), FLV_CONFIG);
    assert_null(why);
    assert_int_equal(c.kind, MEDIA_KIND_VIDEO);
    assert_int_equal(c.codec, MEDIA_CODEC_H264);
    assert_string_equal(c.codec_string, "avc1.64001f");
    assert_int_equal(c.width, 1280);
    assert_int_equal(c.height, 720);
    assert_ptr_equal(c.extradata, seq.p + 5);
    assert_int_equal(c.extradata_len, seq.len - 5);

    /* ffprobe -show_packets: first packet dts 0 pts 67, flags K */
    struct blob key = load("avc_high_720p_key.tag");
    assert_int_equal(flv_parse_video(key.p, key.len, 4294967296LL + 5, &c, &fr, &why), FLV_FRAME);
    assert_int_equal(fr.kind, MEDIA_KIND_VIDEO);
    assert_true(fr.keyframe);
    assert_int_equal(fr.dts_ms, 4294967296LL + 5);
    assert_int_equal(fr.cts_ms, 67);
    assert_ptr_equal(fr.data, key.p + 5);
    assert_int_equal(fr.len, key.len - 5);

    /* second packet: inter frame, pts - dts = 166 */
    struct blob inter = load("avc_high_720p_inter.tag");
    assert_int_equal(flv_parse_video(inter.p, inter.len, 34, &c, &fr, &why), FLV_FRAME);
    assert_false(fr.keyframe);
    assert_int_equal(fr.cts_ms, 166);

    /* NULL outputs: classification only */
    assert_int_equal(flv_parse_video(key.p, key.len, 0, NULL, NULL, NULL), FLV_FRAME);

    /* every strict prefix of a frame cuts a NAL unit */
    for (size_t cut = 0; cut < inter.len; cut++) {
        struct blob b = dup_blob(inter.p, cut);
        int rc = flv_parse_video(b.p, b.len, 0, &c, &fr, &why);
        if (cut == 0 || cut == 5)
            assert_int_equal(rc, FLV_IGNORED);
        else if (cut < 5)
            assert_int_equal(rc, FLV_ERR_TRUNCATED);
        else
            assert_int_equal(rc, FLV_ERR_MALFORMED);
        free(b.p);
    }
    /* every prefix of the sequence header up to the end of the PPS */
    size_t need = 5 + avcc_required_len(seq.p + 5);
    for (size_t cut = 6; cut < need; cut++) {
        struct blob b = dup_blob(seq.p, cut);
        assert_int_equal(flv_parse_video(b.p, b.len, 0, &c, &fr, &why), FLV_ERR_MALFORMED);
        assert_non_null(why);
        free(b.p);
    }
    free(seq.p);
    free(key.p);
    free(inter.p);
}

static void test_avcc_with_other_nal_length_size_is_unsupported(void **state)
{
    (void)state;
    struct blob seq = load("avc_high_720p_seq.tag");
    seq.p[5 + 4] = 0xfd; /* lengthSizeMinusOne = 1 */
    struct media_codec_config c;
    struct media_frame fr;
    const char *why = NULL;
    assert_int_equal(flv_parse_video(seq.p, seq.len, 0, &c, &fr, &why), FLV_ERR_UNSUPPORTED);
    assert_non_null(strstr(why, "NAL length size"));
    /* ...while the record parser itself accepts it */
    assert_int_equal(flv_parse_avcc(seq.p + 5, seq.len - 5, &c), 0);
    free(seq.p);

    struct blob h = load("hevc_main_720p.hvcc");
    h.p[21] = (uint8_t)((h.p[21] & ~3) | 1);
    static const uint8_t hdr[] = { 0x90, 'h', 'v', 'c', '1' };
    struct blob tag = cat(hdr, sizeof hdr, h.p, h.len);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_ERR_UNSUPPORTED);
    assert_non_null(strstr(why, "hvcC NAL length size"));
    free(tag.p);
    free(h.p);
}

/* ---- FLV video tags: Enhanced RTMP with real payloads ---------------------- */

static void test_enhanced_rtmp_hevc_sequence_start_and_frames(void **state)
{
    (void)state;
    struct media_codec_config c;
    struct media_frame fr;
    const char *why;
    struct blob rec = load("hevc_main_720p.hvcc");
    static const uint8_t seq_hdr[] = { 0x90, 'h', 'v', 'c', '1' }; /* key, SequenceStart */
    struct blob tag = cat(seq_hdr, sizeof seq_hdr, rec.p, rec.len);
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_CONFIG);
    assert_int_equal(c.codec, MEDIA_CODEC_HEVC);
    assert_string_equal(c.codec_string, "hvc1.1.6.L93.90");
    assert_int_equal(c.width, 1280);
    assert_int_equal(c.height, 720);
    assert_ptr_equal(c.extradata, tag.p + 5);
    assert_int_equal(c.extradata_len, rec.len);
    free(tag.p);

    /* CodedFrames (1): SI24 composition time, here -33 */
    struct blob key = load("hevc_main_720p_key.sample");
    static const uint8_t cf_hdr[] = { 0x91, 'h', 'v', 'c', '1', 0xff, 0xff, 0xdf };
    tag = cat(cf_hdr, sizeof cf_hdr, key.p, key.len);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 1000, &c, &fr, &why), FLV_FRAME);
    assert_true(fr.keyframe);
    assert_int_equal(fr.cts_ms, -33);
    assert_int_equal(fr.dts_ms, 1000);
    assert_ptr_equal(fr.data, tag.p + 8);
    assert_int_equal(fr.len, key.len);
    free(tag.p);

    /* CodedFramesX (3): no composition time field; inter frame */
    struct blob inter = load("hevc_main_720p_inter.sample");
    static const uint8_t cfx_hdr[] = { 0xa3, 'h', 'v', 'c', '1' };
    tag = cat(cfx_hdr, sizeof cfx_hdr, inter.p, inter.len);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 1033, &c, &fr, &why), FLV_FRAME);
    assert_false(fr.keyframe);
    assert_int_equal(fr.cts_ms, 0);
    assert_ptr_equal(fr.data, tag.p + 5);
    assert_int_equal(fr.len, inter.len);
    free(tag.p);

    /* the same NALs with one byte missing */
    tag = cat(cfx_hdr, sizeof cfx_hdr, inter.p, inter.len - 1);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_ERR_MALFORMED);
    free(tag.p);

    /* legacy codec id 12 (the HEVC extension some encoders send) */
    static const uint8_t l12[] = { 0x1c, 0x00, 0, 0, 0 };
    tag = cat(l12, sizeof l12, rec.p, rec.len);
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_CONFIG);
    assert_string_equal(c.codec_string, "hvc1.1.6.L93.90");
    free(tag.p);
    free(key.p);
    free(inter.p);
    free(rec.p);
}

static void test_enhanced_rtmp_av1_and_avc(void **state)
{
    (void)state;
    struct media_codec_config c;
    struct media_frame fr;
    const char *why;
    struct blob rec = load("av1_main_640x360.av1c");
    static const uint8_t seq_hdr[] = { 0x90, 'a', 'v', '0', '1' };
    struct blob tag = cat(seq_hdr, sizeof seq_hdr, rec.p, rec.len);
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_CONFIG);
    assert_int_equal(c.codec, MEDIA_CODEC_AV1);
    assert_string_equal(c.codec_string, "av01.0.01M.08");
    assert_int_equal(c.width, 640);
    assert_int_equal(c.height, 360);
    free(tag.p);

    /* AV1 CodedFrames carries no composition time: the OBUs start right
     * after the FourCC */
    struct blob key = load("av1_main_640x360_key.sample");
    static const uint8_t cf_hdr[] = { 0x91, 'a', 'v', '0', '1' };
    tag = cat(cf_hdr, sizeof cf_hdr, key.p, key.len);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 40, &c, &fr, &why), FLV_FRAME);
    assert_true(fr.keyframe);
    assert_int_equal(fr.cts_ms, 0);
    assert_ptr_equal(fr.data, tag.p + 5);
    assert_int_equal(fr.len, key.len);
    free(tag.p);
    /* OBU sizes that do not match */
    tag = cat(cf_hdr, sizeof cf_hdr, key.p, key.len - 1);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_ERR_MALFORMED);
    assert_non_null(strstr(why, "OBU"));
    free(tag.p);

    /* 'avc1' over Enhanced RTMP: same avcC and NALUs as the legacy tags */
    struct blob lseq = load("avc_high_720p_seq.tag");
    static const uint8_t avc_seq[] = { 0x90, 'a', 'v', 'c', '1' };
    tag = cat(avc_seq, sizeof avc_seq, lseq.p + 5, lseq.len - 5);
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_CONFIG);
    assert_string_equal(c.codec_string, "avc1.64001f");
    free(tag.p);
    struct blob lkey = load("avc_high_720p_key.tag");
    static const uint8_t avc_cf[] = { 0x91, 'a', 'v', 'c', '1', 0x00, 0x00, 0x43 };
    tag = cat(avc_cf, sizeof avc_cf, lkey.p + 5, lkey.len - 5);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_FRAME);
    assert_int_equal(fr.cts_ms, 67);
    assert_true(fr.keyframe);
    assert_int_equal(fr.len, lkey.len - 5);
    free(tag.p);

    /* ModEx (TimestampOffsetNano) prefixes are skipped: 8-bit and 16-bit sizes */
    static const uint8_t modex8[] = { 0x97, 0x02, 0x00, 0x10, 0x00, 0x01, 'a', 'v', 'c', '1', 0x00, 0x00, 0x43 };
    tag = cat(modex8, sizeof modex8, lkey.p + 5, lkey.len - 5);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_FRAME);
    assert_int_equal(fr.cts_ms, 67);
    assert_ptr_equal(fr.data, tag.p + sizeof modex8);
    free(tag.p);
    static const uint8_t modex16[] = { 0x97, 0xff, 0x00, 0x02, 0xaa, 0xbb, 0xcc, /* 16-bit size 3 */
                                       0x07, 0x00, 0x01, /* a second ModEx */
                                       0x03, 'a', 'v', 'c', '1' };
    tag = cat(modex16, sizeof modex16, lkey.p + 5, lkey.len - 5);
    assert_int_equal(flv_parse_video(tag.p, tag.len, 0, &c, &fr, &why), FLV_FRAME);
    assert_int_equal(fr.cts_ms, 0);
    assert_ptr_equal(fr.data, tag.p + sizeof modex16);
    free(tag.p);

    free(lkey.p);
    free(lseq.p);
    free(key.p);
    free(rec.p);
}

/* ---- FLV video / audio: literal table -------------------------------------- */

struct tag_case {
    const char *name;
    uint8_t b[24];
    size_t n;
    int want;
    const char *reason; /* substring, or NULL = no reason expected */
};

static const struct tag_case video_cases[] = {
    { "zero-length tag", {0}, 0, FLV_IGNORED, NULL },
    { "Sorenson H.263", {0x22, 0x00, 0x84}, 3, FLV_ERR_UNSUPPORTED, "video codec id 2 (Sorenson H.263) unsupported" },
    { "screen video", {0x13, 0x00}, 2, FLV_ERR_UNSUPPORTED, "Screen video" },
    { "On2 VP6", {0x14, 0x00}, 2, FLV_ERR_UNSUPPORTED, "On2 VP6" },
    { "On2 VP6 alpha", {0x15, 0x00}, 2, FLV_ERR_UNSUPPORTED, "VP6 with alpha" },
    { "screen video v2", {0x26, 0x00}, 2, FLV_ERR_UNSUPPORTED, "Screen video v2" },
    { "MPEG-4 part 2 extension", {0x19}, 1, FLV_ERR_UNSUPPORTED, "MPEG-4 part 2" },
    { "legacy AV1 extension id", {0x1d}, 1, FLV_ERR_UNSUPPORTED, "legacy AV1" },
    { "AVC header cut at 4 bytes", {0x17, 0x01, 0, 0}, 4, FLV_ERR_TRUNCATED, "shorter" },
    { "AVCPacketType 3", {0x17, 0x03, 0, 0, 0}, 5, FLV_ERR_MALFORMED, "AVCPacketType" },
    { "AVC end of sequence (as ffmpeg writes it)", {0x17, 0x02, 0, 0, 0}, 5, FLV_IGNORED, NULL },
    { "command frame", {0x57, 0x00}, 2, FLV_IGNORED, NULL },
    { "frame type 0", {0x07, 0x01, 0, 0, 0}, 5, FLV_ERR_MALFORMED, "frame type" },
    { "frame type 6", {0x67, 0x01, 0, 0, 0}, 5, FLV_ERR_MALFORMED, "frame type" },
    { "empty AVC sequence header", {0x17, 0x00, 0, 0, 0}, 5, FLV_IGNORED, NULL },
    { "empty AVC frame", {0x27, 0x01, 0, 0, 0}, 5, FLV_IGNORED, NULL },
    { "NAL length larger than the payload", {0x17, 0x01, 0, 0, 0, 0, 0, 0, 5, 0x65, 0x88}, 11,
      FLV_ERR_MALFORMED, "NAL unit lengths" },
    { "bytes after the last NAL", {0x17, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88, 0x00}, 12,
      FLV_ERR_MALFORMED, "NAL unit lengths" },
    { "zero-length NAL", {0x17, 0x01, 0, 0, 0, 0, 0, 0, 0}, 9, FLV_ERR_MALFORMED, "NAL unit lengths" },
    { "Annex B start codes instead of lengths", {0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00}, 13,
      FLV_ERR_MALFORMED, "NAL unit lengths" },
    { "minimal valid AVC frame", {0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a}, 11, FLV_FRAME, NULL },
    { "E-RTMP FourCC cut", {0x90, 'h', 'v'}, 3, FLV_ERR_TRUNCATED, "truncated" },
    { "E-RTMP multitrack", {0x96, 0x00, 'h', 'v', 'c', '1'}, 6, FLV_ERR_UNSUPPORTED, "multitrack" },
    { "E-RTMP MPEG2TSSequenceStart", {0x95, 'a', 'v', '0', '1', 0x80}, 6, FLV_ERR_UNSUPPORTED, "MPEG2TSSequenceStart" },
    { "E-RTMP packet type 8", {0x98, 'h', 'v', 'c', '1'}, 5, FLV_ERR_UNSUPPORTED, "packet type 8" },
    { "E-RTMP VP9", {0x90, 'v', 'p', '0', '9', 0x01}, 6, FLV_ERR_UNSUPPORTED, "'vp09' (VP9)" },
    { "E-RTMP VP8", {0x91, 'v', 'p', '0', '8', 0x01}, 6, FLV_ERR_UNSUPPORTED, "'vp08' (VP8)" },
    { "E-RTMP unknown FourCC", {0x90, 'x', 'y', 'z', 'w'}, 5, FLV_ERR_UNSUPPORTED, "unknown video FourCC" },
    { "E-RTMP metadata (AMF colorInfo)", {0x94, 'h', 'v', 'c', '1', 0x02, 0x00, 0x09, 'c', 'o', 'l', 'o', 'r',
      'I', 'n', 'f', 'o', 0x03, 0, 0, 0x09}, 21, FLV_IGNORED, NULL },
    { "E-RTMP metadata ignores the frame type", {0xd4, 'h', 'v', 'c', '1'}, 5, FLV_IGNORED, NULL },
    { "E-RTMP sequence end", {0x92, 'a', 'v', '0', '1'}, 5, FLV_IGNORED, NULL },
    { "E-RTMP command frame", {0xd1, 0x00}, 2, FLV_IGNORED, NULL },
    { "E-RTMP frame type 0", {0x81, 'h', 'v', 'c', '1', 0, 0, 0}, 8, FLV_ERR_MALFORMED, "frame type" },
    { "E-RTMP CodedFrames without its composition time", {0x91, 'h', 'v', 'c', '1', 0, 0}, 7,
      FLV_ERR_TRUNCATED, "truncated" },
    { "E-RTMP CodedFramesX lying NAL length", {0xa3, 'h', 'v', 'c', '1', 0, 0, 0, 5, 0x26}, 10,
      FLV_ERR_MALFORMED, "NAL unit lengths" },
    { "E-RTMP AV1 OBU size lies", {0x91, 'a', 'v', '0', '1', 0x32, 0x10, 0x00}, 8, FLV_ERR_MALFORMED, "OBU" },
    { "E-RTMP AV1 OBU forbidden bit", {0x91, 'a', 'v', '0', '1', 0xb2, 0x00}, 7, FLV_ERR_MALFORMED, "OBU" },
    { "E-RTMP ModEx size beyond the tag", {0x97, 0x05, 0x00, 0x00}, 4, FLV_ERR_TRUNCATED, "truncated" },
    { "E-RTMP ModEx 16-bit size cut", {0x97, 0xff, 0x00}, 3, FLV_ERR_TRUNCATED, "truncated" },
    { "E-RTMP empty sequence start", {0x90, 'a', 'v', 'c', '1'}, 5, FLV_IGNORED, NULL },
    { "E-RTMP malformed avcC", {0x90, 'a', 'v', 'c', '1', 0x01, 0x64, 0x00}, 8, FLV_ERR_MALFORMED, "avcC" },
    { "E-RTMP malformed hvcC", {0x90, 'h', 'v', 'c', '1', 0x01, 0x01}, 7, FLV_ERR_MALFORMED, "hvcC" },
    { "E-RTMP malformed av1C", {0x90, 'a', 'v', '0', '1', 0x81, 0x00}, 7, FLV_ERR_MALFORMED, "av1C" },
};

static const struct tag_case audio_cases[] = {
    { "zero-length tag", {0}, 0, FLV_IGNORED, NULL },
    { "MP3", {0x2f, 0xff, 0xfb}, 3, FLV_ERR_UNSUPPORTED, "sound format 2 (MP3) unsupported" },
    { "ADPCM", {0x12, 0x00}, 2, FLV_ERR_UNSUPPORTED, "ADPCM" },
    { "PCM little endian", {0x3f, 0x00}, 2, FLV_ERR_UNSUPPORTED, "Linear PCM, little endian" },
    { "Nellymoser", {0x62, 0x00}, 2, FLV_ERR_UNSUPPORTED, "Nellymoser" },
    { "G.711 A-law", {0x72, 0x00}, 2, FLV_ERR_UNSUPPORTED, "G.711 A-law" },
    { "G.711 mu-law", {0x82, 0x00}, 2, FLV_ERR_UNSUPPORTED, "G.711 mu-law" },
    { "Speex", {0xb2, 0x00}, 2, FLV_ERR_UNSUPPORTED, "Speex" },
    { "MP3 8 kHz", {0xe2, 0x00}, 2, FLV_ERR_UNSUPPORTED, "MP3 8 kHz" },
    { "AAC header cut", {0xaf}, 1, FLV_ERR_TRUNCATED, "shorter" },
    { "AACPacketType 2", {0xaf, 0x02, 0x00}, 3, FLV_ERR_MALFORMED, "AACPacketType" },
    { "empty AAC sequence header", {0xaf, 0x00}, 2, FLV_IGNORED, NULL },
    { "empty AAC frame", {0xaf, 0x01}, 2, FLV_IGNORED, NULL },
    { "AudioSpecificConfig with object type 0", {0xaf, 0x00, 0x01, 0x90}, 4, FLV_ERR_MALFORMED, "AudioSpecificConfig" },
    { "E-RTMP mp4a sequence start", {0x90, 'm', 'p', '4', 'a', 0x11, 0x90}, 7, FLV_CONFIG, NULL },
    { "E-RTMP mp4a coded frames", {0x91, 'm', 'p', '4', 'a', 0x21, 0x00, 0x49}, 8, FLV_FRAME, NULL },
    { "E-RTMP mp4a sequence end", {0x92, 'm', 'p', '4', 'a'}, 5, FLV_IGNORED, NULL },
    { "E-RTMP multichannel config", {0x94, 'm', 'p', '4', 'a', 0x01, 0x02, 0, 0, 0, 3}, 11, FLV_IGNORED, NULL },
    { "E-RTMP audio packet type 3", {0x93, 'm', 'p', '4', 'a'}, 5, FLV_ERR_UNSUPPORTED, "packet type" },
    { "E-RTMP audio multitrack", {0x95, 0x00, 'm', 'p', '4', 'a'}, 6, FLV_ERR_UNSUPPORTED, "multitrack" },
    { "E-RTMP Opus", {0x90, 'O', 'p', 'u', 's', 0x01}, 6, FLV_ERR_UNSUPPORTED, "'Opus'" },
    { "E-RTMP FLAC", {0x90, 'f', 'L', 'a', 'C'}, 5, FLV_ERR_UNSUPPORTED, "FLAC" },
    { "E-RTMP AC-3", {0x91, 'a', 'c', '-', '3'}, 5, FLV_ERR_UNSUPPORTED, "AC-3" },
    { "E-RTMP E-AC-3", {0x91, 'e', 'c', '-', '3'}, 5, FLV_ERR_UNSUPPORTED, "E-AC-3" },
    { "E-RTMP MP3", {0x91, '.', 'm', 'p', '3'}, 5, FLV_ERR_UNSUPPORTED, "'.mp3'" },
    { "E-RTMP unknown FourCC", {0x91, 'a', 'b', 'c', 'd'}, 5, FLV_ERR_UNSUPPORTED, "unknown audio FourCC" },
    { "E-RTMP FourCC cut", {0x90, 'm', 'p'}, 3, FLV_ERR_TRUNCATED, "truncated" },
    { "E-RTMP ModEx then coded frames", {0x97, 0x02, 0, 0, 0x10, 0x01, 'm', 'p', '4', 'a', 0x21}, 11, FLV_FRAME, NULL },
    { "E-RTMP ModEx cut", {0x97, 0x02, 0}, 3, FLV_ERR_TRUNCATED, "truncated" },
};

static void run_tag_cases(const struct tag_case *cases, size_t n, bool video)
{
    for (size_t i = 0; i < n; i++) {
        struct blob b = dup_blob(cases[i].b, cases[i].n);
        struct media_codec_config c;
        struct media_frame fr;
        const char *why = "unset";
        memset(&c, 0, sizeof c);
        memset(&fr, 0, sizeof fr);
        int got = video ? flv_parse_video(b.p, b.len, 77, &c, &fr, &why)
                        : flv_parse_audio(b.p, b.len, 77, &c, &fr, &why);
        if (got != cases[i].want)
            fail_msg("%s case '%s': got %d want %d (%s)", video ? "video" : "audio", cases[i].name, got,
                     cases[i].want, why ? why : "no reason");
        if (cases[i].reason) {
            if (!why || !strstr(why, cases[i].reason))
                fail_msg("case '%s': reason '%s' lacks '%s'", cases[i].name, why ? why : "(null)", cases[i].reason);
        } else if (got >= 0 && why != NULL) {
            fail_msg("case '%s': unexpected reason '%s'", cases[i].name, why);
        }
        if (got == FLV_FRAME) {
            assert_int_equal(fr.dts_ms, 77);
            assert_true(fr.data >= b.p && fr.data + fr.len == b.p + b.len);
            assert_int_equal(fr.kind, video ? MEDIA_KIND_VIDEO : MEDIA_KIND_AUDIO);
            if (!video) {
                assert_true(fr.keyframe);
                assert_int_equal(fr.cts_ms, 0);
            }
        }
        if (got == FLV_CONFIG)
            assert_true(c.extradata >= b.p && c.extradata + c.extradata_len == b.p + b.len);
        free(b.p);
    }
}

static void test_video_tag_table(void **state)
{
    (void)state;
    run_tag_cases(video_cases, sizeof video_cases / sizeof video_cases[0], true);
}

static void test_audio_tag_table(void **state)
{
    (void)state;
    run_tag_cases(audio_cases, sizeof audio_cases / sizeof audio_cases[0], false);
}

static void test_legacy_aac_tags_from_ffmpeg(void **state)
{
    (void)state;
    struct media_codec_config c;
    struct media_frame fr;
    const char *why;
    struct blob seq = load("aac_lc_48k_stereo_seq.tag");
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_audio(seq.p, seq.len, 0, &c, &fr, &why), FLV_CONFIG);
    assert_int_equal(c.kind, MEDIA_KIND_AUDIO);
    assert_int_equal(c.codec, MEDIA_CODEC_AAC);
    assert_string_equal(c.codec_string, "mp4a.40.2");
    assert_int_equal(c.sample_rate, 48000);
    assert_int_equal(c.channels, 2);
    assert_ptr_equal(c.extradata, seq.p + 2);
    assert_int_equal(c.extradata_len, 5);
    struct blob frame = load("aac_lc_48k_stereo_frame.tag");
    assert_int_equal(flv_parse_audio(frame.p, frame.len, 46, &c, &fr, &why), FLV_FRAME);
    assert_int_equal(fr.kind, MEDIA_KIND_AUDIO);
    assert_true(fr.keyframe);
    assert_int_equal(fr.dts_ms, 46);
    assert_int_equal(fr.cts_ms, 0);
    assert_ptr_equal(fr.data, frame.p + 2);
    assert_int_equal(fr.len, frame.len - 2);
    /* the legacy tag's sound rate/size/type bits are not trusted: a lying
     * header (5.5 kHz mono) still reports the AudioSpecificConfig's values */
    seq.p[0] = 0xa0;
    memset(&c, 0, sizeof c);
    assert_int_equal(flv_parse_audio(seq.p, seq.len, 0, &c, &fr, &why), FLV_CONFIG);
    assert_int_equal(c.sample_rate, 48000);
    assert_int_equal(c.channels, 2);
    free(seq.p);
    free(frame.p);
}

static void test_config_changed_only_when_codec_or_record_bytes_differ(void **state)
{
    (void)state;
    struct media_frame fr;
    const char *why;
    struct blob a = load("avc_high_720p_seq.tag");
    struct blob b = dup_blob(a.p, a.len); /* same bytes, another buffer */
    struct media_codec_config ca, cb, ch;
    assert_int_equal(flv_parse_video(a.p, a.len, 0, &ca, &fr, &why), FLV_CONFIG);
    assert_int_equal(flv_parse_video(b.p, b.len, 0, &cb, &fr, &why), FLV_CONFIG);
    assert_true(flv_config_changed(NULL, &ca));           /* first configuration */
    assert_false(flv_config_changed(&ca, &cb));          /* re-sent, identical */
    b.p[b.len - 1] ^= 1;                                  /* one byte differs */
    assert_true(flv_config_changed(&ca, &cb));
    struct blob h = load("hevc_main_720p.hvcc");          /* codec change */
    memset(&ch, 0, sizeof ch);
    assert_int_equal(flv_parse_hvcc(h.p, h.len, &ch), 0);
    assert_true(flv_config_changed(&ca, &ch));
    struct media_codec_config empty;
    memset(&empty, 0, sizeof empty);
    assert_true(flv_config_changed(&empty, &ca));
    assert_false(flv_config_changed(&ca, NULL));
    free(h.p);
    free(a.p);
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_config_records_give_ffprobe_sizes_and_codec_strings),
        cmocka_unit_test(test_truncated_config_records_are_malformed_at_every_length),
        cmocka_unit_test(test_synthetic_h264_sps_cropping_and_profiles),
        cmocka_unit_test(test_sps_with_bogus_exp_golomb_is_malformed),
        cmocka_unit_test(test_synthetic_hevc_sps_sub_layers_and_conformance_window),
        cmocka_unit_test(test_hvcc_codec_string_follows_14496_15_annex_e),
        cmocka_unit_test(test_hvcc_without_sps_or_with_bad_arrays_is_malformed),
        cmocka_unit_test(test_av1c_sequence_header_variants_and_codec_strings),
        cmocka_unit_test(test_audio_specific_config_table),
        cmocka_unit_test(test_legacy_avc_tags_from_ffmpeg),
        cmocka_unit_test(test_avcc_with_other_nal_length_size_is_unsupported),
        cmocka_unit_test(test_enhanced_rtmp_hevc_sequence_start_and_frames),
        cmocka_unit_test(test_enhanced_rtmp_av1_and_avc),
        cmocka_unit_test(test_video_tag_table),
        cmocka_unit_test(test_audio_tag_table),
        cmocka_unit_test(test_legacy_aac_tags_from_ffmpeg),
        cmocka_unit_test(test_config_changed_only_when_codec_or_record_bytes_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
