/* test_playlist.c — m3u8 rendering against golden files (tests/unit/data/playlist_*.m3u8)
 * and the small derived values of RFC 8216bis.
 *
 * CASTGATE_UPDATE_GOLDEN=1 rewrites the golden files from the current output
 * (review the diff before committing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "packager/playlist.h"

#define PDT0 1700000000000000LL /* 2023-11-14T22:13:20.000Z */

static const char *data_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "%s", __FILE__);
        char *slash = strrchr(dir, '/');
        if (slash)
            snprintf(slash + 1, sizeof(dir) - (size_t)(slash + 1 - dir), "data");
        else
            snprintf(dir, sizeof(dir), "data");
    }
    return dir;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    if (p)
        p[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void check_golden(const char *name, const struct playlist_buf *b)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", data_dir(), name);
    if (getenv("CASTGATE_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(b->data, 1, b->len, f);
        fclose(f);
    }
    size_t len = 0;
    char *want = read_file(path, &len);
    if (!want)
        fail_msg("golden file missing: %s", path);
    if (len != b->len || memcmp(want, b->data, len) != 0)
        fail_msg("%s differs from the rendering:\n--- want\n%s--- got\n%s", name, want, b->data);
    free(want);
}

/* ---- fixtures -------------------------------------------------------------- */

static const struct playlist_part parts4[] = {
    {500000, true}, {500000, false}, {500000, false}, {500000, false}};
static const struct playlist_part parts2[] = {{500000, true}, {500000, false}};

/* 2 s segments from msn0 (the second one 2.033 s), PDT continuous */
static void make_segs(struct playlist_segment *s, int n, uint64_t msn0, bool with_parts_last2)
{
    long long pdt = PDT0;
    for (int i = 0; i < n; i++) {
        s[i] = (struct playlist_segment){.msn = msn0 + (uint64_t)i,
                                         .duration_us = 2000000 + (i == 1 ? 33367 : 0),
                                         .pdt_us = pdt,
                                         .init_id = 0};
        pdt += s[i].duration_us;
        if (with_parts_last2 && i >= n - 2) {
            s[i].parts = parts4;
            s[i].nparts = 4;
        }
    }
}

struct media_case {
    const char *golden;
    void (*setup)(struct playlist_media *m, struct playlist_segment *segs);
};

static void setup_plain(struct playlist_media *m, struct playlist_segment *segs)
{
    make_segs(segs, 4, 20, false);
    m->target_duration_s = 2;
    m->media_sequence = 20;
    m->segs = segs;
    m->nsegs = 4;
}

static void setup_ll_mid(struct playlist_media *m, struct playlist_segment *segs)
{
    make_segs(segs, 4, 20, true);
    m->target_duration_s = 2;
    m->part_target_us = 500000;
    m->media_sequence = 20;
    m->segs = segs;
    m->nsegs = 4;
    m->open = (struct playlist_segment){.msn = 24, .pdt_us = PDT0 + 8033367, .parts = parts2, .nparts = 2};
    m->preload_hint = true;
    m->hint_msn = 24;
    m->hint_part = 2;
    m->uri_suffix = "?token=abc.DEF-1";
}

/* reconnect: msn 22 starts a new session with a new init, the discontinuity
 * of msn 20 already left the window (sequence 1) */
static void setup_disc(struct playlist_media *m, struct playlist_segment *segs)
{
    make_segs(segs, 4, 20, true);
    segs[2].discontinuity = true;
    segs[2].init_id = 1;
    segs[2].pdt_us = PDT0 + 60000000;
    segs[3].init_id = 1;
    segs[3].pdt_us = PDT0 + 62000000;
    m->target_duration_s = 2;
    m->part_target_us = 500000;
    m->media_sequence = 20;
    m->discontinuity_sequence = 1;
    m->segs = segs;
    m->nsegs = 4;
    m->preload_hint = true;
    m->hint_msn = 24;
    m->hint_part = 0;
}

static void setup_ended(struct playlist_media *m, struct playlist_segment *segs)
{
    setup_ll_mid(m, segs);
    m->open.nparts = 0;
    m->ended = true;
    m->uri_suffix = NULL;
}

static void setup_delta(struct playlist_media *m, struct playlist_segment *segs)
{
    make_segs(segs, 10, 100, true);
    m->target_duration_s = 2;
    m->part_target_us = 500000;
    m->media_sequence = 100;
    m->discontinuity_sequence = 3;
    uint32_t skip = playlist_skippable(segs, 10, playlist_skip_until_us(2));
    m->skipped = skip;
    m->segs = segs + skip;
    m->nsegs = 10 - skip;
    m->open = (struct playlist_segment){.msn = 110, .pdt_us = PDT0 + 20033367, .parts = parts2, .nparts = 1};
    m->preload_hint = true;
    m->hint_msn = 110;
    m->hint_part = 1;
}

static void setup_vod(struct playlist_media *m, struct playlist_segment *segs)
{
    make_segs(segs, 5, 0, false);
    segs[3].discontinuity = true;
    segs[3].init_id = 1;
    segs[4].init_id = 1;
    m->target_duration_s = 2;
    m->type = PLAYLIST_TYPE_VOD;
    m->ended = true;
    m->segs = segs;
    m->nsegs = 5;
}

static void setup_event(struct playlist_media *m, struct playlist_segment *segs)
{
    setup_vod(m, segs);
    m->type = PLAYLIST_TYPE_EVENT;
    m->ended = false;
    m->uri_suffix = "?token=t";
}

/* LL-HLS off: even with parts and a hint in the input, no LL tag at all */
static void setup_ll_off(struct playlist_media *m, struct playlist_segment *segs)
{
    setup_ll_mid(m, segs);
    m->part_target_us = 0;
    m->skipped = 0;
}

static const struct media_case media_cases[] = {
    {"playlist_plain.m3u8", setup_plain},
    {"playlist_ll_mid_segment.m3u8", setup_ll_mid},
    {"playlist_discontinuity.m3u8", setup_disc},
    {"playlist_ended.m3u8", setup_ended},
    {"playlist_delta_update.m3u8", setup_delta},
    {"playlist_vod.m3u8", setup_vod},
    {"playlist_event.m3u8", setup_event},
    {"playlist_ll_off.m3u8", setup_ll_off},
};

static void test_media_playlists_match_golden_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(media_cases) / sizeof(media_cases[0]); i++) {
        struct playlist_media m = {0};
        struct playlist_segment segs[16];
        media_cases[i].setup(&m, segs);
        struct playlist_buf b;
        playlist_buf_init(&b, 1 << 20);
        assert_int_equal(playlist_render_media(&b, &m), 0);
        check_golden(media_cases[i].golden, &b);
        playlist_buf_free(&b);
    }
}

static void test_multivariant_playlists_match_golden_files(void **state)
{
    (void)state;
    struct {
        const char *golden;
        struct playlist_variant v;
    } cases[] = {
        {"playlist_multivariant_av.m3u8",
         {4200000, 3000000, "avc1.64001f,mp4a.40.2", 1280, 720, 29.97002997, "media.m3u8", "?token=xyz"}},
        {"playlist_multivariant_video.m3u8", {2500000, 2400000, "avc1.640028", 1920, 1080, 30, "media.m3u8", NULL}},
        {"playlist_multivariant_audio.m3u8", {130000, 0, "mp4a.40.2", 0, 0, 0, "media.m3u8", NULL}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct playlist_buf b;
        playlist_buf_init(&b, 4096);
        assert_int_equal(playlist_render_multivariant(&b, &cases[i].v), 0);
        check_golden(cases[i].golden, &b);
        playlist_buf_free(&b);
    }
}

static void test_render_fails_past_the_buffer_ceiling(void **state)
{
    (void)state;
    struct playlist_media m = {0};
    struct playlist_segment segs[16];
    setup_ll_mid(&m, segs);
    struct playlist_buf b;
    playlist_buf_init(&b, 200);
    assert_int_equal(playlist_render_media(&b, &m), -1);
    assert_true(b.failed);
    assert_null(playlist_buf_take(&b, NULL));
    playlist_buf_free(&b);
}

static void test_suffix_that_could_break_a_quoted_uri_is_refused(void **state)
{
    (void)state;
    struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},          {"?token=abc", true}, {"?a=b&c=%20d", true}, {"token=abc", false},
        {"?a=\"b", false},   {"?a=b\nX", false},   {"?a b", false},       {"?a=<script>", false},
        {"?x=\x01", false},  {"?ok=1/2:3@4", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(playlist_suffix_ok(cases[i].s), cases[i].ok);

    struct playlist_media m = {0};
    struct playlist_segment segs[16];
    setup_plain(&m, segs);
    m.uri_suffix = "?t=\"evil";
    struct playlist_buf b;
    playlist_buf_init(&b, 1 << 16);
    assert_int_equal(playlist_render_media(&b, &m), -1);
    playlist_buf_free(&b);
}

static void test_skip_boundary_skips_only_segments_older_than_six_targets(void **state)
{
    (void)state;
    struct playlist_segment segs[16];
    struct {
        int n;
        int64_t dur_us;
        int64_t until_us;
        uint32_t want;
    } cases[] = {
        {10, 2000000, 12000000, 4}, /* last 6 segments = 12 s stay */
        {6, 2000000, 12000000, 0},  /* playlist too short to skip anything */
        {7, 2000000, 12000000, 1},
        {10, 1000000, 12000000, 0},
        {16, 1000000, 12000000, 4},
        {0, 2000000, 12000000, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int k = 0; k < cases[i].n; k++)
            segs[k] = (struct playlist_segment){.msn = (uint64_t)k, .duration_us = cases[i].dur_us};
        assert_int_equal(playlist_skippable(segs, (size_t)cases[i].n, cases[i].until_us), cases[i].want);
    }
}

static void test_derived_values_follow_rfc8216bis(void **state)
{
    (void)state;
    assert_int_equal(playlist_advance_part_limit(500000), 6);
    assert_int_equal(playlist_advance_part_limit(333334), 8);
    assert_int_equal(playlist_advance_part_limit(1000000), 3);
    assert_int_equal(playlist_advance_part_limit(2000000), 3);
    assert_int_equal(playlist_rounded_seconds(2499999), 2);
    assert_int_equal(playlist_rounded_seconds(2500000), 3);
    assert_int_equal(playlist_rounded_seconds(0), 0);
    assert_int_equal(playlist_skip_until_us(2), 12000000);
}

static void test_buffer_take_transfers_ownership(void **state)
{
    (void)state;
    struct playlist_buf b;
    playlist_buf_init(&b, 64);
    assert_int_equal(playlist_buf_printf(&b, "%s-%d", "abc", 42), 0);
    size_t len = 0;
    char *p = playlist_buf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 6);
    assert_string_equal(p, "abc-42");
    assert_null(b.data);
    free(p);
    /* exactly at the ceiling is fine, one more byte is not */
    playlist_buf_init(&b, 4);
    assert_int_equal(playlist_buf_printf(&b, "abcd"), 0);
    assert_int_equal(playlist_buf_printf(&b, "e"), -1);
    playlist_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_playlists_match_golden_files),
        cmocka_unit_test(test_multivariant_playlists_match_golden_files),
        cmocka_unit_test(test_render_fails_past_the_buffer_ceiling),
        cmocka_unit_test(test_suffix_that_could_break_a_quoted_uri_is_refused),
        cmocka_unit_test(test_skip_boundary_skips_only_segments_older_than_six_targets),
        cmocka_unit_test(test_derived_values_follow_rfc8216bis),
        cmocka_unit_test(test_buffer_take_transfers_ownership),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
