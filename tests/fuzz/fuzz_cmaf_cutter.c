/* fuzz_cmaf_cutter.c — libFuzzer target for the CMAF segmenter's
 * normalizer and cutter (SPEC ING-8, PKG-2, PKG-3).
 *
 * The input drives a segmenter with valid codec configs (two of each kind,
 * so config changes happen) and tiny synthetic frames whose timestamps,
 * composition offsets, keyframe flags and order are arbitrary: jumps, wraps,
 * steps back, duplicates, huge gaps. The sink checks, for every callback:
 * an init comes first; parts carry data, a positive duration, the expected
 * msn and part_index and follow each other without a hole inside a segment;
 * a segment's numbers are the sum of its parts'; msn increase by one; no
 * call ever fails and libavformat never complains about a timestamp. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/log.h>

#include "core/log.h"
#include "packager/cmaf_segmenter.h"

static const uint8_t k_avcc_a[] = {
    0x01, 0x64, 0x00, 0x0a, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x64, 0x00, 0x0a, 0xac, 0xd9, 0x44,
    0x26, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x48,
    0x96, 0x58, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
};
/* same SPS with a different PPS byte: "a new sequence header" */
static const uint8_t k_avcc_b[] = {
    0x01, 0x64, 0x00, 0x0a, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x64, 0x00, 0x0a, 0xac, 0xd9, 0x44,
    0x26, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x48,
    0x96, 0x58, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf9, 0x00,
};
static const uint8_t k_asc_44k[] = { 0x12, 0x10 };
static const uint8_t k_asc_48k[] = { 0x11, 0x90 };

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_cmaf_cutter: invariant broken: %s\n", what);
    abort();
}

static void av_log_strict(void *avcl, int level, const char *fmt, va_list vl)
{
    (void)avcl;
    if (level <= AV_LOG_WARNING) {
        vfprintf(stderr, fmt, vl);
        fail("libavformat warning");
    }
}

struct check {
    bool have_init;
    uint64_t msn;            /* msn of the open segment */
    uint32_t next_part;      /* part_index expected next */
    int64_t seg_start, next_start, dur_sum;
    size_t bytes;
    bool first_disc;
    uint64_t segments;
};

static void on_init(void *ctx, const struct cmaf_init *i)
{
    struct check *c = ctx;
    if (!i->data || i->len < 16 || i->ntracks < 1 || i->ntracks > 2)
        fail("init shape");
    if (c->next_part != 0)
        fail("init inside a segment");
    c->have_init = true;
}

static void on_part(void *ctx, const struct cmaf_part *p)
{
    struct check *c = ctx;
    if (!c->have_init)
        fail("part before init");
    if (!p->data || p->len == 0)
        fail("empty part");
    if (p->duration_us <= 0)
        fail("part duration <= 0");
    if (p->msn != c->msn || p->part_index != c->next_part)
        fail("msn / part_index out of sequence");
    if (p->part_index == 0) {
        if (!p->independent)
            fail("segment not starting independent");
        c->seg_start = p->start_us;
        c->dur_sum = 0;
        c->bytes = 0;
        c->first_disc = p->discontinuity;
    } else {
        if (p->start_us != c->next_start)
            fail("hole between parts");
        if (p->discontinuity)
            fail("discontinuity on a non-first part");
    }
    c->next_start = p->start_us + p->duration_us;
    c->dur_sum += p->duration_us;
    c->bytes += p->len;
    c->next_part++;
}

static void on_segment(void *ctx, const struct cmaf_segment *g)
{
    struct check *c = ctx;
    if (g->msn != c->msn || g->nparts != c->next_part || g->nparts == 0)
        fail("segment numbering");
    if (g->start_us != c->seg_start || g->duration_us != c->dur_sum || g->bytes != c->bytes)
        fail("segment totals");
    if (g->discontinuity != c->first_disc)
        fail("segment discontinuity flag");
    if (g->duration_us <= 0)
        fail("segment duration <= 0");
    c->msn++;
    c->next_part = 0;
    c->segments++;
}

static long long fake_clock(void *ctx)
{
    (void)ctx;
    return 1000000;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    av_log_set_callback(av_log_strict);
    log_set_level(LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static const uint32_t parts[] = { 0, 50, 200, 500 };
    static const uint32_t segs[] = { 100, 1000, 2000, 4000 };
    struct cmaf_segmenter_config cfg;
    cmaf_segmenter_config_defaults(&cfg);
    cfg.segment_target_ms = segs[data[0] & 3];
    cfg.part_target_ms = parts[(data[0] >> 2) & 3];
    if (cfg.part_target_ms > cfg.segment_target_ms)
        cfg.part_target_ms = cfg.segment_target_ms;
    cfg.expect_audio = data[0] & 0x10;
    cfg.expect_video = data[0] & 0x20;
    cfg.discontinuity_at_start = data[0] & 0x40;
    cfg.first_msn = data[1];
    cfg.start_time_us = (int64_t)data[2] * 1000003;
    cfg.max_buffer = 1u << 20;
    cfg.now_wall_us = fake_clock;
    cfg.now_mono_us = fake_clock;
    struct check chk = { .msn = cfg.first_msn };
    struct cmaf_sink sink = { &chk, on_init, on_part, on_segment };
    struct cmaf_segmenter *s = cmaf_segmenter_new(&cfg, &sink, NULL, 0);
    if (!s)
        fail("config rejected");

    static uint8_t payload[4096];
    int64_t ts[2] = { 0, 0 };
    size_t i = 3;
    while (i < size) {
        uint8_t op = data[i++];
        int rc = 0;
        if (op < 8) {
            struct media_codec_config c = { 0 };
            switch (op & 3) {
            case 0: case 1:
                c.kind = MEDIA_KIND_VIDEO;
                c.codec = MEDIA_CODEC_H264;
                c.extradata = (op & 1) ? k_avcc_b : k_avcc_a;
                c.extradata_len = sizeof(k_avcc_a);
                c.width = c.height = 64;
                break;
            default:
                c.kind = MEDIA_KIND_AUDIO;
                c.codec = MEDIA_CODEC_AAC;
                c.extradata = (op & 1) ? k_asc_48k : k_asc_44k;
                c.extradata_len = 2;
                break;
            }
            rc = cmaf_segmenter_config(s, &c);
        } else if (op < 10) {
            rc = cmaf_segmenter_flush(s);
        } else {
            if (i + 3 > size)
                break;
            enum media_kind k = (op & 1) ? MEDIA_KIND_AUDIO : MEDIA_KIND_VIDEO;
            int16_t delta = (int16_t)((data[i] << 8) | data[i + 1]);
            uint8_t extra = data[i + 2];
            i += 3;
            /* mostly small steps; sometimes big jumps or a 32-bit wrap */
            int64_t step = delta;
            if ((op & 0x0e) == 0x0e)
                step *= 1000;
            else if ((op & 0x3e) == 0x3c)
                step = -(int64_t)4294967296LL + step;
            else if ((op & 0x3e) == 0x3a)
                step = (int64_t)delta << 48;   /* absurd timestamps */
            ts[k] += step;
            struct media_frame f = {
                .kind = k, .dts_ms = ts[k],
                .cts_ms = k != MEDIA_KIND_VIDEO ? 0 : (op & 0x20) ? (int32_t)((uint32_t)extra << 24)
                                                                 : (int8_t)extra,
                .keyframe = k == MEDIA_KIND_AUDIO || (op & 0x40), .data = payload,
                .len = 1 + (size_t)(extra & 0x3f) * ((op & 0x80) ? 64 : 1),
            };
            rc = cmaf_segmenter_frame(s, &f);
        }
        if (rc < 0)
            fail("segmenter call failed");
    }
    if (cmaf_segmenter_flush(s) < 0)
        fail("final flush failed");
    if (chk.next_part != 0)
        fail("flush left a segment open");
    if (cmaf_segmenter_next_msn(s) != chk.msn)
        fail("next_msn");
    cmaf_segmenter_free(s);
    return 0;
}
