/* test_media_index.c — the media index fed through its cmaf_sink with
 * synthetic parts (fake bytes: this is index logic, the segmenter's real
 * bytes are tested with the segmenter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "packager/media_index.h"
#include "packager/media_registry.h"
#include "packager/segment_store.h"

#define WALL0 1700000000000000LL

/* ---- feeding helpers --------------------------------------------------------- */

struct feeder {
    struct media_index *idx;
    const struct cmaf_sink *sink;
    int64_t t_us;          /* media time of the next part */
    long long wall_us;
};

static void feeder_init(struct feeder *f, struct media_index *idx)
{
    memset(f, 0, sizeof(*f));
    f->idx = idx;
    f->sink = media_index_sink(idx);
    f->wall_us = WALL0;
}

static void feed_init(struct feeder *f, const char *bytes, bool video, bool disc)
{
    struct cmaf_track_info tr[2] = {0};
    int n = 0;
    if (video) {
        tr[n] = (struct cmaf_track_info){.kind = MEDIA_KIND_VIDEO, .codec = MEDIA_CODEC_H264, .width = 1280,
                                         .height = 720, .frame_rate = 30.0};
        snprintf(tr[n].codec_string, sizeof(tr[n].codec_string), "avc1.64001f");
        n++;
    }
    tr[n] = (struct cmaf_track_info){.kind = MEDIA_KIND_AUDIO, .codec = MEDIA_CODEC_AAC, .sample_rate = 48000,
                                     .channels = 2};
    snprintf(tr[n].codec_string, sizeof(tr[n].codec_string), "mp4a.40.2");
    n++;
    struct cmaf_init in = {(const uint8_t *)bytes, strlen(bytes), tr, n, disc};
    f->sink->on_init(f->sink->ctx, &in);
}

static void part_bytes(char *out, size_t cap, uint64_t src_msn, uint32_t i)
{
    snprintf(out, cap, "part-%llu-%u;", (unsigned long long)src_msn, i);
}

static void feed_part(struct feeder *f, uint64_t src_msn, uint32_t i, int64_t dur_us, bool disc)
{
    char b[64];
    part_bytes(b, sizeof(b), src_msn, i);
    struct cmaf_part p = {(const uint8_t *)b, strlen(b), src_msn, i, f->t_us, dur_us, i == 0, disc && i == 0,
                          f->wall_us, 0, false};
    f->sink->on_part(f->sink->ctx, &p);
    f->t_us += dur_us;
    f->wall_us += dur_us;
}

static void feed_close(struct feeder *f, uint64_t src_msn, int64_t dur_us, uint32_t nparts)
{
    struct cmaf_segment s = {src_msn, f->t_us - dur_us, dur_us, nparts, 0, false, 0, 0};
    f->sink->on_segment(f->sink->ctx, &s);
}

/* A segment of nparts parts of part_us each. */
static void feed_segment(struct feeder *f, uint64_t src_msn, uint32_t nparts, int64_t part_us, bool disc)
{
    for (uint32_t i = 0; i < nparts; i++)
        feed_part(f, src_msn, i, part_us, disc);
    feed_close(f, src_msn, part_us * nparts, nparts);
}

static struct media_index *new_index(int window, int extra, int64_t part_us, struct segment_store *store)
{
    struct media_index_opts o = {.kind = "rooms", .id = "room-1", .target_duration_us = 2000000,
                                 .part_target_us = part_us, .live_window_segments = window,
                                 .keep_extra_segments = extra, .keep_vod = true, .store = store};
    struct media_index *idx = media_index_new(&o);
    assert_non_null(idx);
    return idx;
}

static char *render(struct media_index *idx, enum media_index_playlist which, bool skip, int *rc)
{
    struct playlist_buf b;
    playlist_buf_init(&b, 1 << 20);
    *rc = media_index_render(idx, which, skip, "", &b);
    char *s = playlist_buf_take(&b, NULL);
    return s ? s : strdup("");
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static bool has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* ---- tests ---------------------------------------------------------------------- */

static void test_nothing_is_served_before_the_first_segment(void **state)
{
    (void)state;
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    int rc;
    char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_int_equal(rc, MEDIA_INDEX_NOT_FOUND);
    free(s);
    feed_part(&f, 0, 0, 500000, false); /* no init yet: dropped */
    feed_init(&f, "INIT-A", true, false);
    feed_part(&f, 0, 0, 500000, false);
    s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_int_equal(rc, MEDIA_INDEX_NOT_FOUND);
    free(s);
    s = render(idx, MEDIA_INDEX_MULTIVARIANT, false, &rc);
    assert_int_equal(rc, MEDIA_INDEX_NOT_FOUND);
    free(s);
    feed_part(&f, 0, 1, 500000, false);
    feed_close(&f, 0, 1000000, 2);
    s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_int_equal(rc, MEDIA_INDEX_OK);
    assert_true(has(s, "#EXTINF:1.000,\n0.m4s\n"));
    assert_true(has(s, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.0.m4s\""));
    free(s);
    media_index_unref(idx);
}

static void test_window_slides_and_media_sequence_advances(void **state)
{
    (void)state;
    struct media_index *idx = new_index(3, 1, 500000, NULL); /* window 3, 1 extra in memory */
    struct feeder f;
    feeder_init(&f, idx);
    feed_init(&f, "INIT-A", true, false);
    for (uint64_t m = 0; m < 6; m++)
        feed_segment(&f, m, 4, 500000, false);
    int rc;
    char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_int_equal(rc, MEDIA_INDEX_OK);
    assert_true(has(s, "#EXT-X-MEDIA-SEQUENCE:3\n"));
    assert_int_equal(count(s, "#EXTINF:"), 3);
    assert_false(has(s, "\n2.m4s"));
    free(s);

    struct media_index_body b;
    char path[256];
    assert_int_equal(media_index_get_segment(idx, 2, &b, path, sizeof(path)), MEDIA_INDEX_OK); /* grace copy */
    media_index_body_release(&b);
    assert_int_equal(media_index_get_segment(idx, 1, &b, path, sizeof(path)), MEDIA_INDEX_NOT_FOUND);
    assert_int_equal(media_index_get_segment(idx, 6, &b, path, sizeof(path)), MEDIA_INDEX_NOT_FOUND);
    /* the VOD list keeps everything since the start */
    s = render(idx, MEDIA_INDEX_VOD, false, &rc);
    assert_int_equal(rc, MEDIA_INDEX_OK);
    assert_int_equal(count(s, "#EXTINF:"), 6);
    assert_true(has(s, "#EXT-X-PLAYLIST-TYPE:EVENT\n"));
    assert_true(has(s, "#EXT-X-MEDIA-SEQUENCE:0\n"));
    assert_false(has(s, "#EXT-X-ENDLIST"));
    assert_false(has(s, "EXT-X-PART"));
    free(s);
    media_index_unref(idx);
}

static void test_segment_bytes_are_the_concatenation_of_its_parts(void **state)
{
    (void)state;
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    feed_init(&f, "INIT-A", true, false);
    feed_segment(&f, 0, 3, 500000, false);
    struct media_index_body b;
    char path[256], want[256] = "", pb[64];
    for (uint32_t i = 0; i < 3; i++) {
        part_bytes(pb, sizeof(pb), 0, i);
        strcat(want, pb);
    }
    assert_int_equal(media_index_get_segment(idx, 0, &b, path, sizeof(path)), MEDIA_INDEX_OK);
    assert_int_equal(b.nbufs, 3);
    assert_int_equal(b.len, strlen(want));
    char got[256] = "";
    for (size_t i = 0; i < b.nbufs; i++)
        strncat(got, (const char *)media_buf_data(b.bufs[i]), media_buf_len(b.bufs[i]));
    assert_string_equal(got, want);
    media_index_body_release(&b);

    assert_int_equal(media_index_get_part(idx, 0, 1, false, &b, NULL, 0), MEDIA_INDEX_OK);
    part_bytes(pb, sizeof(pb), 0, 1);
    assert_int_equal(b.len, strlen(pb));
    assert_memory_equal(media_buf_data(b.bufs[0]), pb, strlen(pb));
    media_index_body_release(&b);
    assert_int_equal(media_index_get_part(idx, 0, 3, false, &b, NULL, 0), MEDIA_INDEX_NOT_FOUND);

    assert_int_equal(media_index_get_init(idx, -1, &b, path, sizeof(path)), MEDIA_INDEX_OK);
    assert_memory_equal(media_buf_data(b.bufs[0]), "INIT-A", 6);
    media_index_body_release(&b);
    assert_int_equal(media_index_get_init(idx, 0, &b, path, sizeof(path)), MEDIA_INDEX_OK);
    media_index_body_release(&b);
    assert_int_equal(media_index_get_init(idx, 1, &b, path, sizeof(path)), MEDIA_INDEX_NOT_FOUND);
    assert_false(media_index_audio_only(idx));
    media_index_unref(idx);
}

static void test_reconnect_continues_msn_with_a_discontinuity(void **state)
{
    (void)state;
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    assert_int_equal(media_index_begin_session(idx), 1);
    feed_init(&f, "INIT-A", true, false);
    feed_segment(&f, 0, 4, 500000, false);
    feed_segment(&f, 1, 4, 500000, false);
    feed_part(&f, 2, 0, 500000, false); /* publisher dies mid-segment */
    media_index_set_inactive(idx);
    assert_int_equal(media_index_get_state(idx), MEDIA_INDEX_INACTIVE);
    assert_int_equal(media_index_next_msn(idx), 3); /* the orphan part became segment 2 */
    assert_int_equal(media_index_next_start_us(idx), 4500000);

    int rc;
    char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_false(has(s, "PRELOAD-HINT")); /* nothing is coming while inactive */
    assert_true(has(s, "#EXTINF:0.500,\n2.m4s"));
    free(s);

    /* new session: the new segmenter numbers from 0 again, the same init */
    assert_int_equal(media_index_begin_session(idx), 2);
    f.wall_us += 30000000;
    feed_init(&f, "INIT-A", true, false);
    feed_segment(&f, 0, 4, 500000, false);
    feed_segment(&f, 1, 4, 500000, false);
    s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_int_equal(count(s, "#EXT-X-DISCONTINUITY\n"), 1);
    assert_true(has(s, "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:54.500Z\n"));
    const char *disc = strstr(s, "#EXT-X-DISCONTINUITY\n");
    assert_non_null(strstr(disc, "3.m4s"));
    assert_true(has(s, "\n4.m4s\n"));
    assert_false(has(s, "init-1")); /* same init bytes: same id */
    assert_int_equal(media_index_next_msn(idx), 5);
    free(s);
    media_index_unref(idx);
}

static void test_discontinuity_sequence_counts_discontinuities_leaving_the_window(void **state)
{
    (void)state;
    struct media_index *idx = new_index(3, 0, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    feed_init(&f, "INIT-A", true, false);
    feed_segment(&f, 0, 2, 500000, false);
    feed_segment(&f, 1, 2, 500000, false);
    media_index_set_inactive(idx);
    media_index_begin_session(idx);
    feed_init(&f, "INIT-B", true, true); /* new encoder settings */
    feed_segment(&f, 0, 2, 500000, false); /* msn 2, discontinuity */
    int rc;
    char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_true(has(s, "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
    assert_true(has(s, "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"));
    free(s);
    /* msn 3 and 4 keep it in the window (3 segments: 2,3,4) */
    feed_segment(&f, 1, 2, 500000, false);
    feed_segment(&f, 2, 2, 500000, false);
    s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_true(has(s, "#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
    free(s);
    /* msn 5: segment 2 and its discontinuity leave the playlist */
    feed_segment(&f, 3, 2, 500000, false);
    s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_true(has(s, "#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    assert_false(has(s, "#EXT-X-DISCONTINUITY\n"));
    assert_false(has(s, "init-0"));
    free(s);
    /* the VOD list still shows it, without a sequence change */
    s = render(idx, MEDIA_INDEX_VOD, false, &rc);
    assert_int_equal(count(s, "#EXT-X-DISCONTINUITY\n"), 1);
    assert_true(has(s, "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
    free(s);
    media_index_unref(idx);
}

static void test_target_duration_never_changes_once_published(void **state)
{
    (void)state;
    struct {
        int64_t cfg_us;
        int64_t first_us;     /* first segment, before the first render */
        int64_t later_us;     /* after the first render */
        int want_first, want_later;
    } cases[] = {
        {2000000, 2000000, 2400000, 2, 2},  /* 2.4 rounds to 2: unchanged */
        {2000000, 2000000, 1000000, 2, 2},  /* shorter: unchanged */
        {1500000, 1500000, 1500000, 2, 2},  /* ceil of the configured target */
        {2000000, 3400000, 2000000, 3, 3},  /* a long first segment (GOP) sets it */
        {2000000, 2000000, 2600000, 2, 3},  /* forced: never below a rounded EXTINF */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct media_index_opts o = {.kind = "keys", .id = "k1", .target_duration_us = cases[i].cfg_us,
                                     .part_target_us = 0};
        struct media_index *idx = media_index_new(&o);
        struct feeder f;
        feeder_init(&f, idx);
        feed_init(&f, "INIT", true, false);
        feed_segment(&f, 0, 1, cases[i].first_us, false);
        char want[64];
        int rc;
        char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
        snprintf(want, sizeof(want), "#EXT-X-TARGETDURATION:%d\n", cases[i].want_first);
        assert_true(has(s, want));
        free(s);
        feed_segment(&f, 1, 1, cases[i].later_us, false);
        feed_segment(&f, 2, 1, 2000000, false);
        s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
        snprintf(want, sizeof(want), "#EXT-X-TARGETDURATION:%d\n", cases[i].want_later);
        assert_true(has(s, want));
        assert_false(has(s, "EXT-X-PART")); /* LL-HLS off for part target 0 */
        assert_false(has(s, "SERVER-CONTROL"));
        free(s);
        media_index_unref(idx);
    }
}

/* 5 complete segments of 4 parts, segment 5 open with 2 parts; PART-TARGET
 * 0.5 s so the Advance Part Limit is 6. */
static struct media_index *blocking_fixture(struct feeder *f)
{
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    feeder_init(f, idx);
    feed_init(f, "INIT-A", true, false);
    for (uint64_t m = 0; m < 5; m++)
        feed_segment(f, m, 4, 500000, false);
    feed_part(f, 5, 0, 500000, false);
    feed_part(f, 5, 1, 500000, false);
    return idx;
}

static void test_part_target_covers_parts_longer_than_configured(void **state)
{
    (void)state;
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    feed_init(&f, "INIT-A", true, false);
    feed_segment(&f, 0, 4, 500500, false); /* 15 frames at 29.97 fps */
    int rc;
    char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_true(has(s, "#EXT-X-PART-INF:PART-TARGET=0.501\n"));
    assert_true(has(s, "PART-HOLD-BACK=1.503\n"));
    free(s);
    feed_segment(&f, 1, 4, 512000, false); /* longer still: raised, never below a part */
    s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_true(has(s, "#EXT-X-PART-INF:PART-TARGET=0.512\n"));
    free(s);
    media_index_unref(idx);
}

static void test_blocking_reload_decisions_follow_rfc8216bis(void **state)
{
    (void)state;
    struct feeder f;
    struct media_index *idx = blocking_fixture(&f);
    struct {
        uint64_t msn;
        int64_t part;
        enum media_index_block want;
    } cases[] = {
        {4, -1, MEDIA_INDEX_READY},   {5, -1, MEDIA_INDEX_WAIT},    {6, -1, MEDIA_INDEX_WAIT},
        {7, -1, MEDIA_INDEX_TOO_FAR}, /* last complete 4, + 2 = 6 */
        {5, 1, MEDIA_INDEX_READY},    {5, 2, MEDIA_INDEX_WAIT},     {5, 7, MEDIA_INDEX_WAIT},
        {5, 8, MEDIA_INDEX_TOO_FAR},  {4, 3, MEDIA_INDEX_READY},
        {4, 4, MEDIA_INDEX_READY},    /* past the last part = part 0 of segment 5, which exists */
        {4, 99, MEDIA_INDEX_READY},   {6, 0, MEDIA_INDEX_WAIT},     {6, 6, MEDIA_INDEX_TOO_FAR},
        {0, 0, MEDIA_INDEX_READY},    {UINT64_MAX, 0, MEDIA_INDEX_TOO_FAR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum media_index_block got = media_index_block_check(idx, cases[i].msn, cases[i].part, false);
        if (got != cases[i].want)
            fail_msg("case %zu msn=%llu part=%lld: got %d want %d", i, (unsigned long long)cases[i].msn,
                     (long long)cases[i].part, got, cases[i].want);
    }
    /* close segment 5: a request past its last part waits for segment 6 */
    feed_part(&f, 5, 2, 500000, false);
    feed_part(&f, 5, 3, 500000, false);
    feed_close(&f, 5, 2000000, 4);
    assert_int_equal(media_index_block_check(idx, 5, 4, false), MEDIA_INDEX_WAIT);
    assert_int_equal(media_index_block_check(idx, 5, -1, false), MEDIA_INDEX_READY);
    /* ended: directives are ignored */
    media_index_end(idx);
    assert_int_equal(media_index_block_check(idx, 7, 0, false), MEDIA_INDEX_READY);
    assert_int_equal(media_index_block_check(idx, 6, 3, false), MEDIA_INDEX_READY);
    media_index_unref(idx);
}

struct notify_count {
    int n;
    struct media_index *last;
};

static void on_notify(void *arg, struct media_index *idx)
{
    struct notify_count *c = arg;
    c->n++;
    c->last = idx;
}

static void test_parked_reader_is_notified_once_until_acknowledged(void **state)
{
    (void)state;
    struct feeder f;
    struct media_index *idx = blocking_fixture(&f);
    struct notify_count c = {0};
    media_index_set_notify(idx, on_notify, &c);
    feed_part(&f, 5, 2, 500000, false);
    assert_int_equal(c.n, 0); /* nobody parked: no wake-ups */
    assert_int_equal(media_index_block_check(idx, 5, 3, true), MEDIA_INDEX_WAIT);
    feed_part(&f, 5, 3, 500000, false);
    assert_int_equal(c.n, 1);
    assert_ptr_equal(c.last, idx);
    feed_close(&f, 5, 2000000, 4);
    assert_int_equal(c.n, 1); /* not acknowledged yet */
    media_index_notify_done(idx);
    feed_part(&f, 6, 0, 500000, false);
    assert_int_equal(c.n, 2);
    media_index_notify_done(idx);
    media_index_unpark(idx);
    feed_part(&f, 6, 1, 500000, false);
    assert_int_equal(c.n, 2);
    /* parked on a hinted part; ending wakes it */
    struct media_index_body b;
    assert_int_equal(media_index_get_part(idx, 6, 2, true, &b, NULL, 0), MEDIA_INDEX_NOT_YET);
    media_index_end(idx);
    assert_int_equal(c.n, 3);
    assert_int_equal(media_index_get_part(idx, 6, 2, false, &b, NULL, 0), MEDIA_INDEX_NOT_FOUND);
    media_index_unpark(idx);
    media_index_unref(idx);
}

static void test_preload_hinted_part_is_not_yet_then_served(void **state)
{
    (void)state;
    struct feeder f;
    struct media_index *idx = blocking_fixture(&f);
    struct media_index_body b;
    assert_int_equal(media_index_get_part(idx, 5, 2, false, &b, NULL, 0), MEDIA_INDEX_NOT_YET);
    assert_int_equal(media_index_get_part(idx, 5, 3, false, &b, NULL, 0), MEDIA_INDEX_NOT_FOUND);
    assert_int_equal(media_index_get_part(idx, 6, 0, false, &b, NULL, 0), MEDIA_INDEX_NOT_FOUND);
    feed_part(&f, 5, 2, 500000, false);
    assert_int_equal(media_index_get_part(idx, 5, 2, false, &b, NULL, 0), MEDIA_INDEX_OK);
    media_index_body_release(&b);
    int rc;
    char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_true(has(s, "#EXT-X-PART:DURATION=0.500,URI=\"5.2.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"5.3.m4s\"\n"));
    /* parts listed for the segments within 3 target durations (6 s) of the end:
     * the open one (1.5 s) + segments 4, 3, 2 (ends 1.5, 3.5, 5.5 s before) */
    assert_int_equal(count(s, "#EXT-X-PART:"), 3 + 4 * 3);
    assert_false(has(s, "\"1.3.m4s\""));
    assert_true(has(s, "\"2.3.m4s\""));
    free(s);
    media_index_set_inactive(idx);
    assert_int_equal(media_index_get_part(idx, 6, 0, false, &b, NULL, 0), MEDIA_INDEX_NOT_FOUND);
    media_index_unref(idx);
}

static void test_ended_index_lists_endlist_and_vod_becomes_vod(void **state)
{
    (void)state;
    struct feeder f;
    struct media_index *idx = blocking_fixture(&f);
    media_index_end(idx);
    media_index_end(idx); /* idempotent */
    int rc;
    char *s = render(idx, MEDIA_INDEX_MEDIA, true, &rc);
    assert_true(has(s, "#EXT-X-ENDLIST\n"));
    assert_false(has(s, "PRELOAD-HINT"));
    assert_false(has(s, "EXT-X-SKIP")); /* _HLS_skip ignored with ENDLIST */
    assert_true(has(s, "\n5.m4s\n"));    /* the open segment was closed */
    free(s);
    s = render(idx, MEDIA_INDEX_VOD, false, &rc);
    assert_true(has(s, "#EXT-X-PLAYLIST-TYPE:VOD\n"));
    assert_true(has(s, "#EXT-X-ENDLIST\n"));
    assert_int_equal(count(s, "#EXTINF:"), 6);
    free(s);
    /* late parts after the end are dropped */
    feed_part(&f, 9, 0, 500000, false);
    assert_int_equal(media_index_next_msn(idx), 6);
    media_index_unref(idx);
}

static void test_delta_update_skips_segments_past_the_skip_boundary(void **state)
{
    (void)state;
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    feed_init(&f, "INIT-A", true, false);
    for (uint64_t m = 0; m < 12; m++)
        feed_segment(&f, m, 4, 500000, false);
    int rc;
    char *s = render(idx, MEDIA_INDEX_MEDIA, true, &rc);
    assert_true(has(s, "#EXT-X-VERSION:9\n"));
    assert_true(has(s, "#EXT-X-MEDIA-SEQUENCE:2\n"));
    assert_true(has(s, "#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXT-X-MAP:URI=\"init-0.mp4\"\n"));
    assert_int_equal(count(s, "#EXTINF:"), 6);
    free(s);
    s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_true(has(s, "#EXT-X-VERSION:6\n"));
    assert_int_equal(count(s, "#EXTINF:"), 10);
    free(s);
    media_index_unref(idx);
}

static void test_multivariant_reports_measured_bandwidth_and_codecs(void **state)
{
    (void)state;
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    const struct cmaf_sink *sink = media_index_sink(idx);
    struct feeder f;
    feeder_init(&f, idx);
    feed_init(&f, "INIT-A", true, false);
    /* segment 0: 1000 bytes in 1 s = 8000 bit/s; segment 1: 3000 bytes in 1 s */
    static uint8_t big[3000];
    struct cmaf_part p = {big, 1000, 0, 0, 0, 1000000, true, false, WALL0, 0, false};
    sink->on_part(sink->ctx, &p);
    struct cmaf_segment sg = {0, 0, 1000000, 1, 1000, false, WALL0, 8000};
    sink->on_segment(sink->ctx, &sg);
    p = (struct cmaf_part){big, 3000, 1, 0, 1000000, 1000000, true, false, WALL0 + 1000000, 0, false};
    sink->on_part(sink->ctx, &p);
    sg = (struct cmaf_segment){1, 1000000, 1000000, 1, 3000, false, WALL0 + 1000000, 24000};
    sink->on_segment(sink->ctx, &sg);
    int rc;
    char *s = render(idx, MEDIA_INDEX_MULTIVARIANT, false, &rc);
    assert_int_equal(rc, MEDIA_INDEX_OK);
    assert_true(has(s, "BANDWIDTH=24000,AVERAGE-BANDWIDTH=16000,CODECS=\"avc1.64001f,mp4a.40.2\","
                       "RESOLUTION=1280x720,FRAME-RATE=30.000\nmedia.m3u8\n"));
    free(s);
    struct media_index_stats st;
    media_index_get_stats(idx, &st);
    assert_int_equal(st.bandwidth_peak, 24000);
    assert_int_equal(st.segments_total, 2);
    assert_int_equal(st.bytes_total, 4000);
    /* audio-only init: MIME audio/mp4, no RESOLUTION */
    feed_init(&f, "INIT-AUDIO", false, true);
    assert_true(media_index_audio_only(idx));
    s = render(idx, MEDIA_INDEX_MULTIVARIANT, false, &rc);
    assert_true(has(s, "CODECS=\"mp4a.40.2\"\n"));
    free(s);
    media_index_unref(idx);
}

static char *tmpdir_new(void)
{
    char *d = strdup("/tmp/castgate-test-index-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rm_rf(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static void test_segments_are_written_to_disk_and_restored_after_a_restart(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    struct segment_store *store = segment_store_new(dir, 0);
    assert_non_null(store);
    struct media_index *idx = new_index(3, 1, 500000, store);
    struct feeder f;
    feeder_init(&f, idx);
    media_index_begin_session(idx);
    feed_init(&f, "INIT-A", true, false);
    for (uint64_t m = 0; m < 6; m++)
        feed_segment(&f, m, 2, 500000, false);
    segment_store_flush(store);
    segment_store_flush(store); /* index.log lines are queued by the first writes */

    /* segment 0 left memory: it is served from disk now */
    struct media_index_body b;
    char path[512], want_path[512];
    assert_int_equal(media_index_get_segment(idx, 0, &b, path, sizeof(path)), MEDIA_INDEX_ON_DISK);
    snprintf(want_path, sizeof(want_path), "%s/hls/rooms/room-1/seg/0.m4s", dir);
    assert_string_equal(path, want_path);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char got[128] = {0};
    size_t n = fread(got, 1, sizeof(got) - 1, fp);
    fclose(fp);
    assert_string_equal(got, "part-0-0;part-0-1;");
    assert_int_equal(n, 18);
    snprintf(want_path, sizeof(want_path), "%s/hls/rooms/room-1/seg/init-0.mp4", dir);
    struct stat st;
    assert_int_equal(stat(want_path, &st), 0);
    assert_int_equal(st.st_size, 6);
    snprintf(want_path, sizeof(want_path), "%s/hls/rooms/room-1/seg/5.m4s.tmp", dir);
    assert_int_not_equal(stat(want_path, &st), 0); /* tmp files renamed away */

    int rc;
    char *vod_before = render(idx, MEDIA_INDEX_VOD, false, &rc);
    media_index_unref(idx);

    /* "restart": a new index restores the VOD list and continues numbering */
    struct media_index_opts o = {.kind = "rooms", .id = "room-1", .target_duration_us = 2000000,
                                 .part_target_us = 500000, .live_window_segments = 3, .keep_vod = true,
                                 .store = store, .restore = true};
    idx = media_index_new(&o);
    assert_non_null(idx);
    assert_int_equal(media_index_get_state(idx), MEDIA_INDEX_INACTIVE);
    assert_int_equal(media_index_next_msn(idx), 6);
    assert_int_equal(media_index_next_start_us(idx), 6000000); /* 6 segments of 1 s */
    char *vod_after = render(idx, MEDIA_INDEX_VOD, false, &rc);
    assert_string_equal(vod_before, vod_after);
    free(vod_before);
    free(vod_after);
    char *mv = render(idx, MEDIA_INDEX_MULTIVARIANT, false, &rc);
    assert_int_equal(rc, MEDIA_INDEX_OK);
    assert_true(has(mv, "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720"));
    free(mv);
    assert_int_equal(media_index_get_segment(idx, 5, &b, path, sizeof(path)), MEDIA_INDEX_ON_DISK);
    assert_int_equal(media_index_get_init(idx, 0, &b, path, sizeof(path)), MEDIA_INDEX_ON_DISK);

    feeder_init(&f, idx);
    media_index_begin_session(idx);
    feed_init(&f, "INIT-A", true, false);
    feed_segment(&f, 0, 2, 500000, false);
    char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
    assert_true(has(s, "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"));
    assert_true(has(s, "\n6.m4s\n"));
    free(s);
    media_index_end(idx);
    media_index_unref(idx);
    segment_store_flush(store);
    segment_store_flush(store);

    /* after the end, a restored index is ended and its VOD playlist is VOD */
    idx = media_index_new(&o);
    assert_int_equal(media_index_get_state(idx), MEDIA_INDEX_ENDED);
    s = render(idx, MEDIA_INDEX_VOD, false, &rc);
    assert_true(has(s, "#EXT-X-PLAYLIST-TYPE:VOD\n"));
    assert_int_equal(count(s, "#EXTINF:"), 7);
    free(s);
    media_index_unref(idx);

    struct segment_store_stats ss;
    segment_store_get_stats(store, &ss);
    assert_int_equal(ss.failed, 0);
    assert_int_equal(ss.files_written, 9); /* 7 segments + 2 inits */
    segment_store_free(store);
    rm_rf(dir);
    free(dir);
}

static struct media_index *new_mem_index(const char *id, int mem_segments, struct segment_store *store)
{
    struct media_index_opts o = {.kind = "rooms", .id = id, .target_duration_us = 2000000, .part_target_us = 500000,
                                 .live_window_segments = 10, .keep_extra_segments = -1, .keep_vod = true,
                                 .store = store, .mem_segments = mem_segments};
    struct media_index *idx = media_index_new(&o);
    assert_non_null(idx);
    return idx;
}

/* mem_segments: window segments older than the newest ones, and ending more
 * than a target duration before the live edge, leave memory once on disk
 * and are served from there — segments as files, their parts as byte
 * ranges of those files; the playlists do not change. Without a file on
 * disk (the store refused it) a segment stays in memory. */
static void test_mem_segments_serve_older_window_segments_from_disk(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    struct segment_store *store = segment_store_new(dir, 0);
    struct segment_store *refusing = segment_store_new(dir, 1); /* every write over its ceiling */
    assert_non_null(store);
    assert_non_null(refusing);
    struct media_index *trim = new_mem_index("trim", 2, store);
    struct media_index *full = new_mem_index("full", 0, store);
    struct media_index *nodisk = new_mem_index("nodisk", 2, refusing);
    struct media_index *all[3] = {trim, full, nodisk};
    for (int i = 0; i < 3; i++) {
        struct feeder f;
        feeder_init(&f, all[i]);
        media_index_begin_session(all[i]);
        feed_init(&f, "INIT-A", true, false);
        for (uint64_t m = 0; m < 8; m++)
            feed_segment(&f, m, 4, 500000, false);
        feed_part(&f, 8, 0, 500000, false); /* an open segment */
    }
    segment_store_flush(store);
    segment_store_flush(store);

    int rc;
    char *a = render(trim, MEDIA_INDEX_MEDIA, false, &rc);
    char *b = render(full, MEDIA_INDEX_MEDIA, false, &rc);
    assert_string_equal(a, b);
    assert_int_equal(count(a, "#EXTINF:"), 8);
    free(a);
    free(b);

    /* segments 6 and 7 are the newest two: in memory; segment 5 ends 4.5 s
     * before the live edge: on disk */
    struct media_index_body body;
    char path[512], want[512];
    for (uint64_t m = 0; m < 8; m++) {
        int g = media_index_get_segment(trim, m, &body, path, sizeof(path));
        if (m >= 6) {
            assert_int_equal(g, MEDIA_INDEX_OK);
            assert_int_equal(body.nbufs, 4);
            media_index_body_release(&body);
            continue;
        }
        assert_int_equal(g, MEDIA_INDEX_ON_DISK);
        snprintf(want, sizeof(want), "%s/hls/rooms/trim/seg/%llu.m4s", dir, (unsigned long long)m);
        assert_string_equal(path, want);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        char got[128] = {0}, exp[128] = "", pb[64];
        assert_true(fread(got, 1, sizeof(got) - 1, fp) > 0);
        fclose(fp);
        for (uint32_t i = 0; i < 4; i++) {
            part_bytes(pb, sizeof(pb), m, i);
            strcat(exp, pb);
        }
        assert_string_equal(got, exp);
    }
    /* A part of a segment on disk: its byte range in the segment's file
     * (only for a caller that takes a path). */
    assert_int_equal(media_index_get_part(trim, 3, 0, false, &body, NULL, 0), MEDIA_INDEX_NOT_FOUND);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(media_index_get_part(trim, 5, i, false, &body, path, sizeof(path)), MEDIA_INDEX_ON_DISK);
        snprintf(want, sizeof(want), "%s/hls/rooms/trim/seg/5.m4s", dir);
        assert_string_equal(path, want);
        char pb[64], got[64] = {0};
        part_bytes(pb, sizeof(pb), 5, i);
        assert_int_equal(body.len, strlen(pb));
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        assert_int_equal(fseek(fp, (long)body.disk_offset, SEEK_SET), 0);
        assert_int_equal(fread(got, 1, body.len, fp), body.len);
        fclose(fp);
        assert_string_equal(got, pb);
    }
    assert_int_equal(media_index_get_part(trim, 5, 4, false, &body, path, sizeof(path)), MEDIA_INDEX_NOT_FOUND);
    assert_int_equal(media_index_get_part(trim, 6, 0, false, &body, path, sizeof(path)), MEDIA_INDEX_OK);
    media_index_body_release(&body);
    for (uint64_t m = 0; m < 8; m++) {
        assert_int_equal(media_index_get_segment(full, m, &body, path, sizeof(path)), MEDIA_INDEX_OK);
        media_index_body_release(&body);
        assert_int_equal(media_index_get_segment(nodisk, m, &body, path, sizeof(path)), MEDIA_INDEX_OK);
        media_index_body_release(&body);
    }
    for (int i = 0; i < 3; i++)
        media_index_unref(all[i]);
    segment_store_free(store);
    segment_store_free(refusing);
    rm_rf(dir);
    free(dir);
}

/* A part with ends_segment completes its segment at once (a reader woken by
 * that part sees the segment); the on_segment that follows changes nothing. */
static void test_part_ending_a_segment_lists_the_segment_at_once(void **state)
{
    (void)state;
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    feed_init(&f, "INIT-A", true, false);
    for (uint64_t m = 0; m < 2; m++) {
        for (uint32_t i = 0; i < 4; i++) {
            char b[64];
            part_bytes(b, sizeof(b), m, i);
            struct cmaf_part p = {.data = (const uint8_t *)b, .len = strlen(b), .msn = m, .part_index = i,
                                  .start_us = f.t_us, .duration_us = 500000, .independent = i == 0,
                                  .wall_us = f.wall_us, .ends_segment = i == 3};
            f.sink->on_part(f.sink->ctx, &p);
            f.t_us += 500000;
            f.wall_us += 500000;
        }
        int rc;
        char *s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
        assert_int_equal(rc, MEDIA_INDEX_OK);
        assert_int_equal(count(s, "#EXTINF:2.000,"), (int)m + 1);
        assert_true(has(s, m == 0 ? "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.0.m4s\"" :
                                    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"2.0.m4s\""));
        free(s);
        /* the next part of this segment cannot come: wait for the next one */
        assert_int_equal(media_index_block_check(idx, m + 1, 0, false), MEDIA_INDEX_WAIT);
        assert_int_equal(media_index_block_check(idx, m, 3, false), MEDIA_INDEX_READY);
        feed_close(&f, m, 2000000, 4);
        s = render(idx, MEDIA_INDEX_MEDIA, false, &rc);
        assert_int_equal(count(s, "#EXTINF:2.000,"), (int)m + 1);
        free(s);
    }
    assert_int_equal(media_index_next_msn(idx), 2);
    media_index_unref(idx);
}

/* media_index_playlist: one rendering is shared until the index changes;
 * its text is what media_index_render writes; a URI suffix is not cached. */
static void test_rendered_playlists_are_shared_until_the_index_changes(void **state)
{
    (void)state;
    struct media_index *idx = new_index(10, 0, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    int rc;
    assert_null(media_index_playlist(idx, MEDIA_INDEX_MEDIA, false, "", 0, &rc));
    assert_int_equal(rc, MEDIA_INDEX_NOT_FOUND);
    feed_init(&f, "INIT-A", true, false);
    feed_segment(&f, 0, 4, 500000, false);
    static const enum media_index_playlist kinds[] = {MEDIA_INDEX_MULTIVARIANT, MEDIA_INDEX_MEDIA, MEDIA_INDEX_VOD};
    for (size_t k = 0; k < 3; k++) {
        for (int skip = 0; skip < 2; skip++) {
            struct media_buf *a = media_index_playlist(idx, kinds[k], skip, "", 0, &rc);
            assert_int_equal(rc, MEDIA_INDEX_OK);
            struct media_buf *b = media_index_playlist(idx, kinds[k], skip, NULL, 0, &rc);
            assert_ptr_equal(a, b);
            char *want = render(idx, kinds[k], skip, &rc);
            assert_int_equal(media_buf_len(a), strlen(want));
            assert_memory_equal(media_buf_data(a), want, strlen(want));
            free(want);
            struct media_buf *c = media_index_playlist(idx, kinds[k], skip, "?t=1", 0, &rc);
            assert_ptr_not_equal(a, c);
            media_buf_unref(a);
            media_buf_unref(b);
            media_buf_unref(c);
        }
    }
    struct media_buf *before = media_index_playlist(idx, MEDIA_INDEX_MEDIA, false, "", 0, &rc);
    feed_part(&f, 1, 0, 500000, false);
    struct media_buf *after = media_index_playlist(idx, MEDIA_INDEX_MEDIA, false, "", 0, &rc);
    assert_ptr_not_equal(before, after);
    assert_non_null(memmem(media_buf_data(after), media_buf_len(after), "1.0.m4s", 7));
    assert_null(memmem(media_buf_data(before), media_buf_len(before), "\"1.0.m4s\",INDEPENDENT", 20));
    media_buf_unref(before);
    media_buf_unref(after);
    before = media_index_playlist(idx, MEDIA_INDEX_MEDIA, false, "", 0, &rc);
    media_index_end(idx);
    after = media_index_playlist(idx, MEDIA_INDEX_MEDIA, false, "", 0, &rc);
    assert_non_null(memmem(media_buf_data(after), media_buf_len(after), "#EXT-X-ENDLIST", 14));
    assert_null(memmem(media_buf_data(before), media_buf_len(before), "#EXT-X-ENDLIST", 14));
    media_buf_unref(before);
    media_buf_unref(after);
    media_index_unref(idx);
}

/* keep_extra_segments < 0: a segment leaving the window is gone at once. */
static void test_no_extra_segments_when_keep_extra_is_negative(void **state)
{
    (void)state;
    struct media_index *idx = new_index(3, -1, 500000, NULL);
    struct feeder f;
    feeder_init(&f, idx);
    feed_init(&f, "INIT-A", true, false);
    for (uint64_t m = 0; m < 5; m++)
        feed_segment(&f, m, 2, 500000, false);
    struct media_index_body b;
    char path[64];
    assert_int_equal(media_index_get_segment(idx, 1, &b, path, sizeof(path)), MEDIA_INDEX_NOT_FOUND);
    assert_int_equal(media_index_get_segment(idx, 2, &b, path, sizeof(path)), MEDIA_INDEX_OK);
    media_index_body_release(&b);
    media_index_unref(idx);
}

/* The registry's per-kind policy: a preview lists 4 segments and keeps no
 * more; a room lists the configured window and, with a store, keeps only
 * the newest segments in memory. */
static void test_registry_gives_previews_a_short_window_and_rooms_a_memory_cap(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    struct segment_store *store = segment_store_new(dir, 0);
    struct media_registry_opts ro = {.target_duration_us = 2000000, .part_target_us = 500000,
                                     .live_window_segments = 10, .store = store};
    struct media_registry *reg = media_registry_new(&ro);
    struct media_index *k = media_registry_get_or_create(reg, "keys", "k", NULL);
    struct media_index *r = media_registry_get_or_create(reg, "rooms", "r", NULL);
    assert_non_null(k);
    assert_non_null(r);
    struct media_index *both[2] = {k, r};
    for (int i = 0; i < 2; i++) {
        struct feeder f;
        feeder_init(&f, both[i]);
        media_index_begin_session(both[i]);
        feed_init(&f, "INIT", true, false);
        for (uint64_t m = 0; m < 10; m++)
            feed_segment(&f, m, 4, 500000, false);
    }
    segment_store_flush(store);
    segment_store_flush(store);
    int rc;
    char *s = render(k, MEDIA_INDEX_MEDIA, false, &rc);
    assert_int_equal(count(s, "#EXTINF:"), 4);
    assert_true(has(s, "#EXT-X-MEDIA-SEQUENCE:6\n"));
    free(s);
    s = render(r, MEDIA_INDEX_MEDIA, false, &rc);
    assert_int_equal(count(s, "#EXTINF:"), 10);
    free(s);
    struct media_index_body b;
    char path[512];
    assert_int_equal(media_index_get_segment(k, 5, &b, path, sizeof(path)), MEDIA_INDEX_NOT_FOUND);
    assert_int_equal(media_index_get_segment(k, 6, &b, path, sizeof(path)), MEDIA_INDEX_OK);
    media_index_body_release(&b);
    assert_int_equal(media_index_get_segment(r, 0, &b, path, sizeof(path)), MEDIA_INDEX_ON_DISK);
    assert_int_equal(media_index_get_segment(r, 7, &b, path, sizeof(path)), MEDIA_INDEX_ON_DISK);
    assert_int_equal(media_index_get_segment(r, 8, &b, path, sizeof(path)), MEDIA_INDEX_OK); /* the newest two */
    media_index_body_release(&b);
    media_index_unref(k);
    media_index_unref(r);
    media_registry_free(reg);
    segment_store_free(store);
    rm_rf(dir);
    free(dir);
}

static void test_registry_gets_creates_and_tombstones(void **state)
{
    (void)state;
    struct media_registry_opts ro = {.max_indexes = 2, .target_duration_us = 2000000, .part_target_us = 500000};
    struct media_registry *reg = media_registry_new(&ro);
    bool created = false;
    struct media_index *a = media_registry_get_or_create(reg, "rooms", "r1", &created);
    assert_non_null(a);
    assert_true(created);
    struct media_index *a2 = media_registry_get_or_create(reg, "rooms", "r1", &created);
    assert_ptr_equal(a, a2);
    assert_false(created);
    assert_string_equal(media_index_name(a), "rooms/r1");
    struct media_index *k = media_registry_get_or_create(reg, "keys", "r1", &created);
    assert_non_null(k);
    assert_ptr_not_equal(a, k);
    assert_null(media_registry_get_or_create(reg, "keys", "r2", &created)); /* ceiling */
    assert_null(media_registry_get_or_create(reg, "../x", "r2", &created));
    assert_null(media_registry_get_or_create(reg, "rooms", "a/b", &created));
    assert_null(media_registry_get_or_create(reg, "rooms", "", &created));
    assert_null(media_registry_get(reg, "rooms", "nope"));
    assert_int_equal(media_registry_count(reg), 2);

    struct notify_count c = {0};
    media_registry_set_notify(reg, on_notify, &c);
    assert_int_equal(media_index_block_check(a, 0, -1, true), MEDIA_INDEX_WAIT);
    struct feeder f;
    feeder_init(&f, a);
    feed_init(&f, "I", true, false);
    feed_part(&f, 0, 0, 500000, false);
    assert_int_equal(c.n, 1); /* hook installed on existing indexes */
    media_index_unpark(a);

    media_registry_mark_gone(reg, "rooms", "r1");
    assert_true(media_registry_is_gone(reg, "rooms", "r1"));
    assert_false(media_registry_is_gone(reg, "keys", "r1"));
    assert_null(media_registry_get(reg, "rooms", "r1"));
    assert_int_equal(media_registry_count(reg), 1);
    /* our references keep it alive */
    assert_string_equal(media_index_id(a), "r1");
    media_index_unref(a);
    media_index_unref(a2);
    assert_int_equal(media_registry_remove(reg, "keys", "r1"), 0);
    assert_int_equal(media_registry_remove(reg, "keys", "r1"), -1);
    media_index_unref(k);
    media_registry_free(reg);
}

static void test_store_refuses_unsafe_paths_and_over_ceiling_writes(void **state)
{
    (void)state;
    struct {
        const char *p;
        int ok;
    } cases[] = {{"hls/rooms/a/seg", 1}, {"../etc", 0}, {"/abs", 0}, {"a//b", 0}, {"a/./b", 0},
                 {"a/b/", 0},           {"", 0},       {"a b", 0},  {"a/..", 0}, {"x.m4s", 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(segment_store_path_ok(cases[i].p), cases[i].ok);

    char *dir = tmpdir_new();
    struct segment_store *store = segment_store_new(dir, 10);
    int done_err = 1;
    struct segment_store_chunk c = {"0123456789ABC", 13};
    assert_int_equal(segment_store_write(store, "x", "big", &c, 1, NULL, NULL), -1);
    assert_int_equal(segment_store_write(store, "../x", "f", &c, 1, NULL, NULL), -1);
    c.len = 5;
    assert_int_equal(segment_store_write(store, "x", "small", &c, 1, NULL, NULL), 0);
    segment_store_flush(store);
    struct segment_store_stats st;
    segment_store_get_stats(store, &st);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.files_written, 1);
    (void)done_err;
    segment_store_free(store);
    rm_rf(dir);
    free(dir);
}

/* A segment of many parts is written whole (writev in batches), into a
 * directory made on first use and made again after the sweeper removed it. */
static void test_store_writes_many_chunks_and_remakes_a_removed_directory(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    struct segment_store *store = segment_store_new(dir, 0);
    assert_non_null(store);
    static uint8_t data[150][97];
    struct segment_store_chunk chunks[150];
    size_t total = 0;
    for (size_t i = 0; i < 150; i++) {
        size_t len = 1 + (i * 7) % 97;
        memset(data[i], (int)('A' + i % 26), len);
        chunks[i] = (struct segment_store_chunk){data[i], len};
        total += len;
    }
    char path[512], sub[256];
    for (int round = 0; round < 2; round++) {
        assert_int_equal(segment_store_write(store, "hls/rooms/x/seg", "1.m4s", chunks, 150, NULL, NULL), 0);
        assert_int_equal(segment_store_append(store, "hls/rooms/x/seg", "index.log", "seg 1\n", 6), 0);
        segment_store_flush(store);
        snprintf(path, sizeof(path), "%s/hls/rooms/x/seg/1.m4s", dir);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        uint8_t got[150 * 97];
        assert_int_equal(fread(got, 1, sizeof(got), f), total);
        fclose(f);
        size_t at = 0;
        for (size_t i = 0; i < 150; i++) {
            assert_memory_equal(got + at, data[i], chunks[i].len);
            at += chunks[i].len;
        }
        snprintf(sub, sizeof(sub), "%s/hls/rooms/x", dir);
        rm_rf(sub); /* the sweeper removes a room's segments */
    }
    segment_store_free(store);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_is_served_before_the_first_segment),
        cmocka_unit_test(test_window_slides_and_media_sequence_advances),
        cmocka_unit_test(test_segment_bytes_are_the_concatenation_of_its_parts),
        cmocka_unit_test(test_reconnect_continues_msn_with_a_discontinuity),
        cmocka_unit_test(test_discontinuity_sequence_counts_discontinuities_leaving_the_window),
        cmocka_unit_test(test_target_duration_never_changes_once_published),
        cmocka_unit_test(test_part_target_covers_parts_longer_than_configured),
        cmocka_unit_test(test_blocking_reload_decisions_follow_rfc8216bis),
        cmocka_unit_test(test_parked_reader_is_notified_once_until_acknowledged),
        cmocka_unit_test(test_preload_hinted_part_is_not_yet_then_served),
        cmocka_unit_test(test_ended_index_lists_endlist_and_vod_becomes_vod),
        cmocka_unit_test(test_delta_update_skips_segments_past_the_skip_boundary),
        cmocka_unit_test(test_multivariant_reports_measured_bandwidth_and_codecs),
        cmocka_unit_test(test_segments_are_written_to_disk_and_restored_after_a_restart),
        cmocka_unit_test(test_mem_segments_serve_older_window_segments_from_disk),
        cmocka_unit_test(test_no_extra_segments_when_keep_extra_is_negative),
        cmocka_unit_test(test_part_ending_a_segment_lists_the_segment_at_once),
        cmocka_unit_test(test_rendered_playlists_are_shared_until_the_index_changes),
        cmocka_unit_test(test_registry_gives_previews_a_short_window_and_rooms_a_memory_cap),
        cmocka_unit_test(test_registry_gets_creates_and_tombstones),
        cmocka_unit_test(test_store_refuses_unsafe_paths_and_over_ceiling_writes),
        cmocka_unit_test(test_store_writes_many_chunks_and_remakes_a_removed_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
