/* test_cmaf_muxer.c — cmaf_muxer: AudioSpecificConfig parsing, init segment
 * shape per codec, sample validation, the memory ceiling, and the tfdt /
 * mfhd values of the fragments it writes (ISO/IEC 14496-12 §8.8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/log.h>

#include "packager/cmaf_muxer.h"
#include "tests/unit/cmaf_test_media.h"

/* avcC of a 64x64 High-profile libx264 stream. */
static const uint8_t k_avcc[] = {
    0x01, 0x64, 0x00, 0x0a, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x64, 0x00, 0x0a, 0xac, 0xd9, 0x44,
    0x26, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x48,
    0x96, 0x58, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
};

/* hvcC (VPS, SPS, PPS) of a 64x64 Main-profile libx265 stream. */
static const uint8_t k_hvcc[] = {
    0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1e, 0xf0, 0x00,
    0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x03, 0xa0, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01,
    0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
    0x00, 0x03, 0x00, 0x1e, 0x95, 0x98, 0x09, 0xa1, 0x00, 0x01, 0x00, 0x28, 0x42, 0x01, 0x01,
    0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x1e,
    0xa0, 0x20, 0x81, 0x05, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0, 0x16, 0x80, 0x80, 0x00, 0x00,
    0x03, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x04, 0xa2, 0x00, 0x01, 0x00, 0x07, 0x44, 0x01, 0xc1,
    0x72, 0xb4, 0x22, 0x40,
};

/* av1C: Main profile, level 0, 8-bit 4:2:0, no config OBUs. */
static const uint8_t k_av1c[] = { 0x81, 0x00, 0x0c, 0x00 };

static const uint8_t k_asc_lc_44k_stereo[] = { 0x12, 0x10 };

static struct media_codec_config video_cfg(enum media_codec codec)
{
    struct media_codec_config c = { .kind = MEDIA_KIND_VIDEO, .codec = codec, .width = 64,
                                    .height = 64 };
    switch (codec) {
    case MEDIA_CODEC_HEVC: c.extradata = k_hvcc; c.extradata_len = sizeof(k_hvcc); break;
    case MEDIA_CODEC_AV1: c.extradata = k_av1c; c.extradata_len = sizeof(k_av1c); break;
    default: c.extradata = k_avcc; c.extradata_len = sizeof(k_avcc); break;
    }
    return c;
}

static struct media_codec_config audio_cfg(void)
{
    struct media_codec_config c = { .kind = MEDIA_KIND_AUDIO, .codec = MEDIA_CODEC_AAC,
                                    .extradata = k_asc_lc_44k_stereo,
                                    .extradata_len = sizeof(k_asc_lc_44k_stereo),
                                    .sample_rate = 44100, .channels = 2 };
    return c;
}

static int g_av_warnings;

static void av_log_counter(void *avcl, int level, const char *fmt, va_list vl)
{
    (void)avcl;
    (void)fmt;
    (void)vl;
    if (level <= AV_LOG_WARNING)
        g_av_warnings++;
}

/* ---- AudioSpecificConfig ------------------------------------------------ */

static void test_asc_parser_reads_rate_channels_and_frame_length(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint8_t asc[8];
        size_t len;
        int rc, aot, rate, out_rate, channels, frame;
    } cases[] = {
        { "AAC-LC 44.1 kHz stereo", { 0x12, 0x10 }, 2, 0, 2, 44100, 44100, 2, 1024 },
        { "AAC-LC 48 kHz stereo", { 0x11, 0x90 }, 2, 0, 2, 48000, 48000, 2, 1024 },
        { "AAC-LC 960-sample frames", { 0x11, 0x94 }, 2, 0, 2, 48000, 48000, 2, 960 },
        { "HE-AAC explicit SBR 24->48 kHz", { 0x2b, 0x11, 0x88, 0x00 }, 4, 0, 5, 24000, 48000, 2, 2048 },
        { "ER AAC ELD (escaped object type)", { 0xf8, 0xe6, 0x20 }, 3, 0, 39, 48000, 48000, 1, 512 },
        { "explicit 24-bit frequency", { 0x17, 0x80, 0x56, 0x22, 0x08 }, 5, 0, 2, 44100, 44100, 1, 1024 },
        { "truncated", { 0x12 }, 1, -1, 0, 0, 0, 0, 0 },
        { "reserved frequency index", { 0x16, 0x90 }, 2, -1, 0, 0, 0, 0, 0 },
        { "unsupported object type (CELP)", { 0x41, 0x10 }, 2, -1, 0, 0, 0, 0, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cmaf_muxer_asc a = { 0 };
        int rc = cmaf_muxer_parse_asc(cases[i].asc, cases[i].len, &a);
        if (rc != cases[i].rc)
            fprintf(stderr, "case %s: rc %d\n", cases[i].name, rc);
        assert_int_equal(rc, cases[i].rc);
        if (rc < 0)
            continue;
        assert_int_equal(a.object_type, cases[i].aot);
        assert_int_equal(a.sample_rate, cases[i].rate);
        assert_int_equal(a.out_rate, cases[i].out_rate);
        assert_int_equal(a.channels, cases[i].channels);
        assert_int_equal(a.frame_samples, cases[i].frame);
    }
    struct cmaf_muxer_asc a;
    assert_int_equal(cmaf_muxer_parse_asc(NULL, 0, &a), -1);
}

/* ---- creation ----------------------------------------------------------- */

static void test_init_segment_names_each_codec(void **state)
{
    (void)state;
    static const struct {
        enum media_codec codec;
        bool audio;
        const char *entries[3];
    } cases[] = {
        { MEDIA_CODEC_H264, true, { "avc1", "avcC", "mp4a" } },
        { MEDIA_CODEC_HEVC, false, { "hvc1", "hvcC", NULL } },
        { MEDIA_CODEC_AV1, true, { "av01", "av1C", "esds" } },
        { MEDIA_CODEC_NONE, true, { "mp4a", "esds", NULL } },   /* audio only */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct media_codec_config v = video_cfg(cases[i].codec), a = audio_cfg();
        struct cmaf_muxer_config mc = { cases[i].codec ? &v : NULL, cases[i].audio ? &a : NULL, 0, 0 };
        char err[128] = "";
        g_av_warnings = 0;
        struct cmaf_muxer *m = cmaf_muxer_new(&mc, err, sizeof(err));
        if (!m)
            fprintf(stderr, "case %zu: %s\n", i, err);
        assert_non_null(m);
        assert_int_equal(g_av_warnings, 0);
        size_t len;
        const uint8_t *init = cmaf_muxer_init_data(m, &len);
        assert_true(len > 100);
        assert_memory_equal(init + 4, "ftyp", 4);
        size_t bl;
        assert_non_null(cmaf_test_box(init, len, "moov", &bl));
        for (int k = 0; k < 3 && cases[i].entries[k]; k++)
            assert_non_null(memmem(init, len, cases[i].entries[k], 4));
        struct cmaf_test_trex trex[4];
        int ntracks = (cases[i].codec ? 1 : 0) + (cases[i].audio ? 1 : 0);
        assert_int_equal(cmaf_test_parse_trex(init, len, trex, 4), ntracks);
        assert_int_equal(cmaf_muxer_has_track(m, MEDIA_KIND_VIDEO), cases[i].codec != MEDIA_CODEC_NONE);
        assert_int_equal(cmaf_muxer_timescale(m, MEDIA_KIND_VIDEO), cases[i].codec ? 90000 : 0);
        assert_int_equal(cmaf_muxer_timescale(m, MEDIA_KIND_AUDIO), cases[i].audio ? 44100 : 0);
        /* an empty fragment is no fragment */
        const uint8_t *d;
        size_t dl = 1;
        assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
        assert_int_equal(dl, 0);
        assert_int_equal(cmaf_muxer_fragments(m), 0);
        cmaf_muxer_free(m);
    }
}

static void test_bad_track_configs_are_refused(void **state)
{
    (void)state;
    static const uint8_t annexb[] = { 0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f };
    static const uint8_t bad_asc[] = { 0x16, 0x90 };
    struct media_codec_config v_annexb = { .kind = MEDIA_KIND_VIDEO, .codec = MEDIA_CODEC_H264,
                                           .extradata = annexb, .extradata_len = sizeof(annexb) };
    struct media_codec_config v_empty = { .kind = MEDIA_KIND_VIDEO, .codec = MEDIA_CODEC_H264 };
    struct media_codec_config v_av1_bad = { .kind = MEDIA_KIND_VIDEO, .codec = MEDIA_CODEC_AV1,
                                            .extradata = annexb, .extradata_len = sizeof(annexb) };
    struct media_codec_config a_bad = { .kind = MEDIA_KIND_AUDIO, .codec = MEDIA_CODEC_AAC,
                                        .extradata = bad_asc, .extradata_len = sizeof(bad_asc) };
    struct media_codec_config a_as_video = audio_cfg();
    struct media_codec_config good_v = video_cfg(MEDIA_CODEC_H264);
    struct {
        const struct media_codec_config *v, *a;
    } cases[] = {
        { NULL, NULL }, { &v_annexb, NULL }, { &v_empty, NULL }, { &v_av1_bad, NULL },
        { NULL, &a_bad }, { &a_as_video, NULL }, { &good_v, &good_v },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cmaf_muxer_config mc = { cases[i].v, cases[i].a, 0, 0 };
        char err[128] = "";
        assert_null(cmaf_muxer_new(&mc, err, sizeof(err)));
        assert_true(strncmp(err, "cmaf_muxer: ", 12) == 0);
    }
}

/* ---- samples and fragments --------------------------------------------- */

static uint8_t g_payload[300 * 1024];

static struct cmaf_muxer_sample smp(enum media_kind k, int64_t dts, int64_t cts, int64_t dur,
                                    bool key, size_t len)
{
    struct cmaf_muxer_sample s = { k, dts, dts + cts, dur, key, g_payload, len };
    return s;
}

static void test_invalid_samples_are_refused_and_the_muxer_stays_usable(void **state)
{
    (void)state;
    struct media_codec_config v = video_cfg(MEDIA_CODEC_H264);
    struct cmaf_muxer_config mc = { &v, NULL, 0, 0 };
    struct cmaf_muxer *m = cmaf_muxer_new(&mc, NULL, 0);
    assert_non_null(m);
    memset(g_payload, 0, 64);
    g_payload[3] = 60;   /* one 60-byte NAL unit */
    struct cmaf_muxer_sample ok = smp(MEDIA_KIND_VIDEO, 3000, 6000, 3000, true, 64);
    assert_int_equal(cmaf_muxer_write(m, &ok), 0);
    struct {
        const char *name;
        struct cmaf_muxer_sample s;
    } bad[] = {
        { "absent track", smp(MEDIA_KIND_AUDIO, 9000, 0, 1024, true, 64) },
        { "overlaps the previous sample", smp(MEDIA_KIND_VIDEO, 5999, 0, 3000, false, 64) },
        { "pts before dts", smp(MEDIA_KIND_VIDEO, 6000, -1, 3000, false, 64) },
        { "zero duration", smp(MEDIA_KIND_VIDEO, 6000, 0, 0, false, 64) },
        { "empty", smp(MEDIA_KIND_VIDEO, 6000, 0, 3000, false, 0) },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cmaf_muxer_write(m, &bad[i].s), -EINVAL);
    struct cmaf_muxer_sample next = smp(MEDIA_KIND_VIDEO, 6000, 0, 3000, false, 64);
    assert_int_equal(cmaf_muxer_write(m, &next), 0);
    const uint8_t *d;
    size_t dl;
    assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
    assert_true(dl > 128);
    assert_int_equal(cmaf_muxer_pending_bytes(m), 0);
    cmaf_muxer_free(m);
}

static void test_fragment_over_the_ceiling_is_refused_not_grown(void **state)
{
    (void)state;
    struct media_codec_config v = video_cfg(MEDIA_CODEC_H264);
    struct cmaf_muxer_config mc = { &v, NULL, CMAF_MUXER_MIN_MAX_BYTES, 0 };
    struct cmaf_muxer *m = cmaf_muxer_new(&mc, NULL, 0);
    assert_non_null(m);
    struct cmaf_muxer_sample big = smp(MEDIA_KIND_VIDEO, 0, 0, 3000, true, 250 * 1024);
    assert_int_equal(cmaf_muxer_write(m, &big), -ENOSPC);
    struct cmaf_muxer_sample a = smp(MEDIA_KIND_VIDEO, 0, 0, 3000, true, 100 * 1024);
    struct cmaf_muxer_sample b = smp(MEDIA_KIND_VIDEO, 3000, 0, 3000, false, 100 * 1024);
    assert_int_equal(cmaf_muxer_write(m, &a), 0);
    assert_int_equal(cmaf_muxer_write(m, &b), -ENOSPC);   /* would outgrow: flush first */
    const uint8_t *d;
    size_t dl;
    assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
    assert_true(dl > 100 * 1024);
    assert_int_equal(cmaf_muxer_write(m, &b), 0);
    assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
    assert_true(dl > 100 * 1024);
    cmaf_muxer_free(m);
}

/* tfdt is the dts given, for the first fragment of a muxer started
 * mid-stream and after a gap; mfhd counts from first_fragment. */
static void test_tfdt_follows_the_given_timeline_and_mfhd_counts(void **state)
{
    (void)state;
    struct media_codec_config v = video_cfg(MEDIA_CODEC_H264), a = audio_cfg();
    struct cmaf_muxer_config mc = { &v, &a, 0, 41 };
    g_av_warnings = 0;
    struct cmaf_muxer *m = cmaf_muxer_new(&mc, NULL, 0);
    assert_non_null(m);
    size_t il;
    const uint8_t *init = cmaf_muxer_init_data(m, &il);
    struct cmaf_test_trex trex[4];
    int ntrex = cmaf_test_parse_trex(init, il, trex, 4);
    assert_int_equal(ntrex, 2);

    static const struct {
        int64_t vdts, adts;   /* first sample of each track in the fragment */
        int nv, na;
    } frags[] = {
        { 900000, 441000, 15, 21 },        /* starts at 10 s */
        { 945000, 462504, 15, 22 },        /* continuous */
        { 1170000, 573300, 15, 21 },       /* both tracks paused 2 s */
        { 1215000, 0, 15, 0 },             /* audio absent from this one */
        { 1260000, 617400, 3, 2 },         /* audio back after its own gap */
    };
    for (size_t i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
        for (int k = 0; k < frags[i].nv; k++) {
            struct cmaf_muxer_sample s = smp(MEDIA_KIND_VIDEO, frags[i].vdts + k * 3000, 3000, 3000,
                                             k == 0, 64);
            assert_int_equal(cmaf_muxer_write(m, &s), 0);
        }
        for (int k = 0; k < frags[i].na; k++) {
            struct cmaf_muxer_sample s = smp(MEDIA_KIND_AUDIO, frags[i].adts + k * 1024, 0, 1024,
                                             true, 32);
            assert_int_equal(cmaf_muxer_write(m, &s), 0);
        }
        const uint8_t *d;
        size_t dl;
        assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
        struct cmaf_test_moof mo;
        assert_int_equal(cmaf_test_parse_moof(d, dl, trex, ntrex, &mo), 0);
        assert_int_equal(mo.seq, 41 + i);
        assert_int_equal(mo.ntraf, frags[i].na ? 2 : 1);
        assert_int_equal(mo.traf[0].track_id, 1);
        assert_int_equal(mo.traf[0].tfdt, frags[i].vdts);
        assert_int_equal(mo.traf[0].nsamples, frags[i].nv);
        assert_int_equal(mo.traf[0].duration, (uint64_t)frags[i].nv * 3000);
        assert_true(mo.traf[0].first_is_sync);
        assert_int_equal(mo.traf[0].first_cts, 3000);
        if (frags[i].na) {
            assert_int_equal(mo.traf[1].track_id, 2);
            assert_int_equal(mo.traf[1].tfdt, frags[i].adts);
            assert_int_equal(mo.traf[1].nsamples, frags[i].na);
            assert_int_equal(mo.traf[1].duration, (uint64_t)frags[i].na * 1024);
        }
        /* moof is followed by its mdat holding exactly the samples */
        size_t ml, mdl;
        assert_non_null(cmaf_test_box(d, dl, "moof", &ml));
        const uint8_t *mdat = cmaf_test_box(d, dl, "mdat", &mdl);
        assert_non_null(mdat);
        assert_int_equal(mdl, (size_t)frags[i].nv * 64 + (size_t)frags[i].na * 32);
    }
    assert_int_equal(cmaf_muxer_fragments(m), 5);
    assert_int_equal(g_av_warnings, 0);
    cmaf_muxer_free(m);
}

/* AV1-ISOBMFF §2.4: temporal delimiter and padding OBUs are not stored in
 * samples; the other OBUs are, byte for byte. */
static void test_av1_samples_lose_temporal_delimiters_and_padding(void **state)
{
    (void)state;
    struct media_codec_config v = video_cfg(MEDIA_CODEC_AV1);
    struct cmaf_muxer_config mc = { &v, NULL, 0, 0 };
    struct cmaf_muxer *m = cmaf_muxer_new(&mc, NULL, 0);
    assert_non_null(m);
    static const uint8_t sample[] = {
        0x12, 0x00,                          /* OBU_TEMPORAL_DELIMITER, size 0 */
        0x32, 0x03, 0xaa, 0xbb, 0xcc,        /* OBU_FRAME, size 3 */
        0x7a, 0x02, 0x00, 0x00,              /* OBU_PADDING, size 2 */
        0x0a, 0x01, 0x5a,                    /* OBU_SEQUENCE_HEADER, size 1 */
    };
    static const uint8_t kept[] = { 0x32, 0x03, 0xaa, 0xbb, 0xcc, 0x0a, 0x01, 0x5a };
    /* not OBUs: a size running past the end is stored as given */
    static const uint8_t garbage[] = { 0x32, 0x09, 0x01 };
    struct cmaf_muxer_sample s1 = { MEDIA_KIND_VIDEO, 0, 0, 3000, true, sample, sizeof(sample) };
    struct cmaf_muxer_sample s2 = { MEDIA_KIND_VIDEO, 3000, 3000, 3000, false, garbage, sizeof(garbage) };
    assert_int_equal(cmaf_muxer_write(m, &s1), 0);
    assert_int_equal(cmaf_muxer_write(m, &s2), 0);
    assert_int_equal(cmaf_muxer_pending_bytes(m), sizeof(kept) + sizeof(garbage));
    const uint8_t *d;
    size_t dl, mdl;
    assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
    const uint8_t *mdat = cmaf_test_box(d, dl, "mdat", &mdl);
    assert_non_null(mdat);
    assert_int_equal(mdl, sizeof(kept) + sizeof(garbage));
    assert_memory_equal(mdat, kept, sizeof(kept));
    assert_memory_equal(mdat + sizeof(kept), garbage, sizeof(garbage));
    cmaf_muxer_free(m);
}

/* A fragment assembles moof + mdat around the staged samples: with few
 * samples in place, with hundreds (a moof bigger than the reserved room)
 * by moving them; either way the mdat holds each track's bytes in order,
 * video first, and the trun data offsets point at them. */
static void test_fragments_of_any_sample_count_keep_the_sample_bytes(void **state)
{
    (void)state;
    struct media_codec_config v = video_cfg(MEDIA_CODEC_H264), a = audio_cfg();
    struct cmaf_muxer_config mc = { &v, &a, 0, 0 };
    struct cmaf_muxer *m = cmaf_muxer_new(&mc, NULL, 0);
    assert_non_null(m);
    size_t il;
    const uint8_t *init = cmaf_muxer_init_data(m, &il);
    struct cmaf_test_trex trex[4];
    int ntrex = cmaf_test_parse_trex(init, il, trex, 4);
    static const int counts[] = { 3, 400, 5 };   /* 400 x 16 bytes of trun > 4 KiB */
    int64_t vdts = 0, adts = 0;
    for (size_t c = 0; c < 3; c++) {
        int nv = counts[c], na = counts[c] / 2 + 1;
        for (int k = 0; k < nv; k++) {
            uint8_t b[8];
            memset(b, (uint8_t)(k + 1), sizeof(b));
            struct cmaf_muxer_sample s = { MEDIA_KIND_VIDEO, vdts, vdts, 3000, k == 0, b, sizeof(b) };
            assert_int_equal(cmaf_muxer_write(m, &s), 0);
            vdts += 3000;
        }
        for (int k = 0; k < na; k++) {
            uint8_t b[3] = { 0xa0, (uint8_t)k, 0xa1 };
            struct cmaf_muxer_sample s = { MEDIA_KIND_AUDIO, adts, adts, 1024, true, b, sizeof(b) };
            assert_int_equal(cmaf_muxer_write(m, &s), 0);
            adts += 1024;
        }
        const uint8_t *d;
        size_t dl, ml = 0, mdl = 0;
        assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
        struct cmaf_test_moof mo;
        assert_int_equal(cmaf_test_parse_moof(d, dl, trex, ntrex, &mo), 0);
        assert_int_equal(mo.traf[0].nsamples, nv);
        assert_int_equal(mo.traf[1].nsamples, na);
        assert_non_null(cmaf_test_box(d, dl, "moof", &ml));
        const uint8_t *mdat = cmaf_test_box(d, dl, "mdat", &mdl);
        assert_int_equal(mdl, (size_t)nv * 8 + (size_t)na * 3);
        assert_int_equal(mdat - d, ml + 16);  /* moof, then mdat's header */
        for (int k = 0; k < nv; k++)
            assert_int_equal(mdat[k * 8 + 7], (uint8_t)(k + 1));
        for (int k = 0; k < na; k++)
            assert_int_equal(mdat[nv * 8 + k * 3 + 1], (uint8_t)k);
    }
    cmaf_muxer_free(m);
}

/* Nothing written since the last flush: no fragment, no sequence number used. */
static void test_empty_flush_writes_nothing(void **state)
{
    (void)state;
    struct media_codec_config a = audio_cfg();
    struct cmaf_muxer_config mc = { NULL, &a, 0, 7 };
    struct cmaf_muxer *m = cmaf_muxer_new(&mc, NULL, 0);
    assert_non_null(m);
    const uint8_t *d;
    size_t dl;
    assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
    assert_int_equal(dl, 0);
    assert_int_equal(cmaf_muxer_fragments(m), 0);
    size_t il;
    const uint8_t *init = cmaf_muxer_init_data(m, &il);
    struct cmaf_test_trex trex[2];
    int ntrex = cmaf_test_parse_trex(init, il, trex, 2);
    assert_int_equal(ntrex, 1);
    memset(g_payload, 0x11, 32);
    struct cmaf_muxer_sample s = smp(MEDIA_KIND_AUDIO, 1024, 0, 1024, true, 32);
    assert_int_equal(cmaf_muxer_write(m, &s), 0);
    assert_int_equal(cmaf_muxer_flush(m, &d, &dl), 0);
    struct cmaf_test_moof mo;
    assert_int_equal(cmaf_test_parse_moof(d, dl, trex, ntrex, &mo), 0);
    assert_int_equal(mo.seq, 7);
    assert_int_equal(mo.ntraf, 1);
    assert_int_equal(mo.traf[0].track_id, trex[0].track_id);
    assert_int_equal(mo.traf[0].tfdt, 1024);
    assert_true(mo.traf[0].first_is_sync);
    cmaf_muxer_free(m);
}

int main(void)
{
    av_log_set_callback(av_log_counter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_asc_parser_reads_rate_channels_and_frame_length),
        cmocka_unit_test(test_init_segment_names_each_codec),
        cmocka_unit_test(test_bad_track_configs_are_refused),
        cmocka_unit_test(test_invalid_samples_are_refused_and_the_muxer_stays_usable),
        cmocka_unit_test(test_fragment_over_the_ceiling_is_refused_not_grown),
        cmocka_unit_test(test_tfdt_follows_the_given_timeline_and_mfhd_counts),
        cmocka_unit_test(test_av1_samples_lose_temporal_delimiters_and_padding),
        cmocka_unit_test(test_empty_flush_writes_nothing),
        cmocka_unit_test(test_fragments_of_any_sample_count_keep_the_sample_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
