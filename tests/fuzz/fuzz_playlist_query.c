/* fuzz_playlist_query.c — libFuzzer target for what a viewer controls in an
 * HLS request: the file name, the query (_HLS_msn/_HLS_part/_HLS_skip), the
 * Range header and the id, plus the blocking-reload decision they drive.
 *
 * Input layout: bytes split on the first three NULs into file, query, range,
 * id (missing parts are empty). Invariants checked:
 *  - hls_parse_file accepts only [A-Za-z0-9._-] names without "..", and what
 *    it accepts re-renders to the same canonical name;
 *  - hls_parse_query never reports a part without an msn;
 *  - hls_parse_range returns a range inside the body;
 *  - media_index_block_check on a small live index never crashes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/hls_delivery.h"
#include "packager/media_index.h"

static struct media_index *fixture(void)
{
    static struct media_index *idx;
    if (idx)
        return idx;
    struct media_index_opts o = {.kind = "keys", .id = "fuzz", .target_duration_us = 2000000,
                                 .part_target_us = 500000};
    idx = media_index_new(&o);
    const struct cmaf_sink *s = media_index_sink(idx);
    struct cmaf_track_info tr = {.kind = MEDIA_KIND_VIDEO, .codec_string = "avc1.64001f"};
    struct cmaf_init in = {(const uint8_t *)"init", 4, &tr, 1, false};
    s->on_init(s->ctx, &in);
    for (uint64_t m = 0; m < 3; m++) {
        for (uint32_t i = 0; i < 4; i++) {
            struct cmaf_part p = {(const uint8_t *)"part", 4, m, i, 0, 500000, i == 0, false, 1, 0, false};
            s->on_part(s->ctx, &p);
        }
        struct cmaf_segment sg = {m, 0, 2000000, 4, 16, false, 1, 64};
        s->on_segment(s->ctx, &sg);
    }
    struct cmaf_part p = {(const uint8_t *)"part", 4, 3, 0, 0, 500000, true, false, 1, 0, false};
    s->on_part(s->ctx, &p);
    return idx;
}

static char *take(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
    size_t n = z ? (size_t)(z - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = z ? z + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *file = take(&p, end), *query = take(&p, end), *range = take(&p, end), *id = take(&p, end);

    struct hls_file f;
    int r = hls_parse_file(file, &f);
    if (r == 0) {
        for (const char *c = file; *c; c++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c))
                abort();
        if (strstr(file, ".."))
            abort();
        char canon[96];
        switch (f.kind) {
        case HLS_FILE_SEGMENT:
            snprintf(canon, sizeof(canon), "%llu.m4s", (unsigned long long)f.msn);
            break;
        case HLS_FILE_PART:
            snprintf(canon, sizeof(canon), "%llu.%u.m4s", (unsigned long long)f.msn, f.part);
            break;
        case HLS_FILE_INIT:
            snprintf(canon, sizeof(canon), "init-%u.mp4", f.init_id);
            break;
        default:
            snprintf(canon, sizeof(canon), "%s", file);
        }
        if (strcmp(canon, file) != 0)
            abort();
    } else if (r != -400 && r != -404) {
        abort();
    }

    struct hls_query q;
    if (hls_parse_query(query, &q) == 0) {
        if (q.has_part && !q.has_msn)
            abort();
        struct media_index *idx = fixture();
        enum media_index_block b = media_index_block_check(idx, q.msn, q.has_part ? (int64_t)q.part : -1, false);
        if (b != MEDIA_INDEX_READY && b != MEDIA_INDEX_WAIT && b != MEDIA_INDEX_TOO_FAR)
            abort();
        if (q.has_msn && q.msn > 5 && b != MEDIA_INDEX_TOO_FAR)
            abort(); /* open segment is 3: anything past 4 is too far */
    }

    uint64_t len = size, s = 0, e = 0;
    r = hls_parse_range(range, len, &s, &e);
    if (r == 0 && (s > e || e >= len))
        abort();
    if (r != 0 && r != 1 && r != -416)
        abort();

    if (hls_id_ok(id) && (strchr(id, '/') || strchr(id, '.')))
        abort();

    free(file);
    free(query);
    free(range);
    free(id);
    return 0;
}
