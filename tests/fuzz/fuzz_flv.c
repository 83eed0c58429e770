/* fuzz_flv.c — libFuzzer target for ingest/flv.c: FLV video/audio tag
 * bodies (legacy and Enhanced RTMP) and the codec-config record parsers.
 *
 * The first input byte picks the entry point (low 3 bits: 0 video tag,
 * 1 audio tag, 2 avcC, 3 hvcC, 4 av1C, 5 AudioSpecificConfig, 6-7 all of
 * them); the rest is copied to an exact-size heap buffer so ASan flags any
 * read past `len`. Invariants checked: frames and configs point inside the
 * input; errors carry a reason and successes do not; sizes are sane; codec
 * strings are NUL-terminated inside their array.
 * Seeds: tests/fuzz/corpus/flv (real tags and records, see
 * tests/unit/data/flv/gen.sh, prefixed with their selector byte). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/flv.h"

static void check_config(const struct media_codec_config *c, const uint8_t *buf, size_t len)
{
    if (!memchr(c->codec_string, '\0', sizeof c->codec_string))
        abort();
    if (c->extradata < buf || c->extradata_len > len || c->extradata + c->extradata_len > buf + len)
        abort();
    /* record parsers leave the other kind's fields alone */
    if (c->kind == MEDIA_KIND_VIDEO && (c->width < 0 || c->width > 65535 || c->height < 0 || c->height > 65535))
        abort();
    if (c->kind == MEDIA_KIND_AUDIO && (c->sample_rate <= 0 || c->channels < 0 || c->channels > 24))
        abort();
    if (c->kind != MEDIA_KIND_VIDEO && c->kind != MEDIA_KIND_AUDIO)
        abort();
}

static void run_tag(int video, const uint8_t *buf, size_t len)
{
    struct media_codec_config c;
    struct media_frame f;
    const char *why = "unset";
    memset(&c, 0, sizeof c);
    memset(&f, 0, sizeof f);
    int rc = video ? flv_parse_video(buf, len, 12345, &c, &f, &why)
                   : flv_parse_audio(buf, len, 12345, &c, &f, &why);
    if (rc < 0 && (!why || !*why))
        abort();
    if (rc >= 0 && why)
        abort();
    if (rc == FLV_FRAME) {
        if (f.data < buf || f.data + f.len > buf + len || f.len == 0 || f.dts_ms != 12345)
            abort();
        if (f.kind != (video ? MEDIA_KIND_VIDEO : MEDIA_KIND_AUDIO))
            abort();
        volatile uint8_t s = f.data[0] ^ f.data[f.len - 1];
        (void)s;
    } else if (rc == FLV_CONFIG) {
        check_config(&c, buf, len);
    } else if (rc != FLV_IGNORED && rc != FLV_ERR_TRUNCATED && rc != FLV_ERR_UNSUPPORTED &&
               rc != FLV_ERR_MALFORMED) {
        abort();
    }
}

static void run_rec(int which, const uint8_t *buf, size_t len)
{
    struct media_codec_config c;
    memset(&c, 0x5a, sizeof c);
    struct media_codec_config before = c;
    int rc;
    switch (which) {
    case 2: rc = flv_parse_avcc(buf, len, &c); break;
    case 3: rc = flv_parse_hvcc(buf, len, &c); break;
    case 4: rc = flv_parse_av1c(buf, len, &c); break;
    default: rc = flv_parse_asc(buf, len, &c); break;
    }
    if (rc == 0)
        check_config(&c, buf, len);
    else if (rc != -1 || memcmp(&c, &before, sizeof c) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0] & 7;
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, len);
    if (sel <= 1) {
        run_tag(sel == 0, buf, len);
    } else if (sel <= 5) {
        run_rec(sel, buf, len);
    } else {
        run_tag(1, buf, len);
        run_tag(0, buf, len);
        for (int i = 2; i <= 5; i++)
            run_rec(i, buf, len);
    }
    free(buf);
    return 0;
}
