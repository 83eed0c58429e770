/* playlist.c — m3u8 rendering for HLS and LL-HLS (RFC 8216bis). See playlist.h. */
#include "packager/playlist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- buffer -------------------------------------------------------------- */

void playlist_buf_init(struct playlist_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void playlist_buf_free(struct playlist_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

char *playlist_buf_take(struct playlist_buf *b, size_t *len)
{
    char *p = NULL;
    if (!b->failed && b->len > 0) {
        p = b->data;
        if (len)
            *len = b->len;
        b->data = NULL;
    }
    playlist_buf_free(b);
    return p;
}

/* Grows to hold `need` more bytes plus the NUL, never beyond max + 1. */
static int buf_reserve(struct playlist_buf *b, size_t need)
{
    if (b->failed)
        return -1;
    if (need > b->max || b->len > b->max - need) {
        b->failed = true;
        return -1;
    }
    size_t want = b->len + need + 1;
    if (want <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 1024;
    while (ncap < want)
        ncap *= 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    char *p = realloc(b->data, ncap);
    if (!p) {
        b->failed = true;
        return -1;
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

int playlist_buf_printf(struct playlist_buf *b, const char *fmt, ...)
{
    if (b->failed)
        return -1;
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return -1;
    }
    if (buf_reserve(b, (size_t)n) != 0)
        return -1;
    if ((size_t)n < sizeof(small)) {
        memcpy(b->data + b->len, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

/* ---- number formatting --------------------------------------------------- */

/* Seconds with 3 decimals from µs, rounded to the nearest millisecond. Integer
 * arithmetic so that golden files do not depend on the FPU. */
static const char *fmt_secs(char out[32], int64_t us)
{
    if (us < 0)
        us = 0;
    long long ms = (long long)((us + 500) / 1000);
    snprintf(out, 32, "%lld.%03lld", ms / 1000, ms % 1000);
    return out;
}

/* Same, rounded up: PART-TARGET must not be below any part's duration. */
static const char *fmt_secs_ceil(char out[32], int64_t us)
{
    if (us < 0)
        us = 0;
    long long ms = (long long)((us + 999) / 1000);
    snprintf(out, 32, "%lld.%03lld", ms / 1000, ms % 1000);
    return out;
}

/* ISO-8601 with milliseconds, UTC (RFC 8216bis §4.4.4.6). */
static const char *fmt_pdt(char out[80], long long us)
{
    time_t secs = (time_t)(us / 1000000);
    long long ms = (us % 1000000) / 1000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 80, "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return out;
}

int64_t playlist_rounded_seconds(int64_t duration_us)
{
    if (duration_us <= 0)
        return 0;
    return (duration_us + 500000) / 1000000;
}

int64_t playlist_skip_until_us(int64_t target_duration_s) { return 6 * target_duration_s * 1000000; }

uint32_t playlist_advance_part_limit(int64_t part_target_us)
{
    if (part_target_us <= 0)
        return 3;
    if (part_target_us < 1000000)
        return (uint32_t)(3000000 / part_target_us);
    return 3;
}

uint32_t playlist_skippable(const struct playlist_segment *segs, size_t nsegs, int64_t skip_until_us)
{
    int64_t after = 0; /* duration of the segments after segs[i] */
    for (size_t i = nsegs; i-- > 0;) {
        if (after >= skip_until_us)
            return (uint32_t)(i + 1);
        after += segs[i].duration_us;
    }
    return 0;
}

/* RFC 3986 query characters minus anything that could end a quoted-string
 * or a line. */
bool playlist_suffix_ok(const char *s)
{
    if (!s || !*s)
        return true;
    if (*s != '?')
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (!strchr("-._~%!$&'()*+,;=:@/?", c))
            return false;
    }
    return true;
}

/* ---- media playlist ------------------------------------------------------ */

static void put_parts(struct playlist_buf *b, const struct playlist_segment *s, const char *sfx)
{
    char d[32];
    for (uint32_t i = 0; i < s->nparts; i++) {
        const struct playlist_part *p = &s->parts[i];
        playlist_buf_printf(b, "#EXT-X-PART:DURATION=%s,URI=\"%llu.%u.m4s%s\"%s\n",
                            fmt_secs(d, p->duration_us), (unsigned long long)s->msn, i, sfx,
                            p->independent ? ",INDEPENDENT=YES" : "");
    }
}

/* Tags that apply to a segment and precede its parts / EXTINF:
 * DISCONTINUITY, MAP (when the init changes), PROGRAM-DATE-TIME. */
static void put_segment_head(struct playlist_buf *b, const struct playlist_segment *s, bool *have_map,
                             uint32_t *map_id, const char *sfx)
{
    char t[80];
    if (s->discontinuity)
        playlist_buf_printf(b, "#EXT-X-DISCONTINUITY\n");
    if (!*have_map || *map_id != s->init_id) {
        playlist_buf_printf(b, "#EXT-X-MAP:URI=\"init-%u.mp4%s\"\n", s->init_id, sfx);
        *have_map = true;
        *map_id = s->init_id;
    }
    if (s->pdt_us > 0)
        playlist_buf_printf(b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", fmt_pdt(t, s->pdt_us));
}

int playlist_render_media(struct playlist_buf *b, const struct playlist_media *m)
{
    const char *sfx = m->uri_suffix ? m->uri_suffix : "";
    if (!playlist_suffix_ok(sfx))
        return -1;
    bool ll = m->part_target_us > 0;
    /* RFC 8216bis §8: EXT-X-MAP in a playlist without I-FRAMES-ONLY needs
     * version 6; EXT-X-SKIP needs 9. Never more than the tags need (§6.2.1). */
    int version = (ll && m->skipped > 0) ? 9 : 6;
    char a[32], c[32], d[32];

    playlist_buf_printf(b, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-TARGETDURATION:%lld\n", version,
                        (long long)m->target_duration_s);
    if (ll) {
        /* §4.4.3.8: HOLD-BACK ≥ 3 × target, PART-HOLD-BACK ≥ 2 × part target
         * (Apple: 3 ×), CAN-SKIP-UNTIL ≥ 6 × target. */
        playlist_buf_printf(b,
                            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=%s,"
                            "HOLD-BACK=%s,PART-HOLD-BACK=%s\n",
                            fmt_secs(a, playlist_skip_until_us(m->target_duration_s)),
                            fmt_secs(c, 3 * m->target_duration_s * 1000000),
                            fmt_secs_ceil(d, 3 * m->part_target_us));
        playlist_buf_printf(b, "#EXT-X-PART-INF:PART-TARGET=%s\n", fmt_secs_ceil(a, m->part_target_us));
    }
    playlist_buf_printf(b, "#EXT-X-MEDIA-SEQUENCE:%llu\n", (unsigned long long)m->media_sequence);
    /* before EXT-X-SKIP: hls.js counts skipped segments as segments */
    playlist_buf_printf(b, "#EXT-X-DISCONTINUITY-SEQUENCE:%llu\n",
                        (unsigned long long)m->discontinuity_sequence);
    if (m->type == PLAYLIST_TYPE_EVENT)
        playlist_buf_printf(b, "#EXT-X-PLAYLIST-TYPE:EVENT\n");
    else if (m->type == PLAYLIST_TYPE_VOD)
        playlist_buf_printf(b, "#EXT-X-PLAYLIST-TYPE:VOD\n");
    playlist_buf_printf(b, "#EXT-X-INDEPENDENT-SEGMENTS\n");
    if (ll && m->skipped > 0)
        playlist_buf_printf(b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%u\n", m->skipped);

    bool have_map = false;
    uint32_t map_id = 0;
    for (size_t i = 0; i < m->nsegs; i++) {
        const struct playlist_segment *s = &m->segs[i];
        put_segment_head(b, s, &have_map, &map_id, sfx);
        if (ll)
            put_parts(b, s, sfx);
        playlist_buf_printf(b, "#EXTINF:%s,\n%llu.m4s%s\n", fmt_secs(a, s->duration_us),
                            (unsigned long long)s->msn, sfx);
    }
    if (ll && m->open.nparts > 0) {
        put_segment_head(b, &m->open, &have_map, &map_id, sfx);
        put_parts(b, &m->open, sfx);
    }
    if (ll && m->preload_hint && !m->ended)
        playlist_buf_printf(b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%llu.%u.m4s%s\"\n",
                            (unsigned long long)m->hint_msn, m->hint_part, sfx);
    if (m->ended)
        playlist_buf_printf(b, "#EXT-X-ENDLIST\n");
    return b->failed ? -1 : 0;
}

/* ---- multivariant -------------------------------------------------------- */

static bool codecs_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(".,-_", *p)))
            return false;
    return true;
}

int playlist_render_multivariant(struct playlist_buf *b, const struct playlist_variant *v)
{
    const char *sfx = v->uri_suffix ? v->uri_suffix : "";
    if (!playlist_suffix_ok(sfx) || !codecs_ok(v->codecs) || !v->uri)
        return -1;
    playlist_buf_printf(b, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    /* RFC 8216bis §4.4.6.2: BANDWIDTH is required and must not be 0 */
    playlist_buf_printf(b, "#EXT-X-STREAM-INF:BANDWIDTH=%llu",
                        (unsigned long long)(v->bandwidth ? v->bandwidth : 1));
    if (v->average_bandwidth)
        playlist_buf_printf(b, ",AVERAGE-BANDWIDTH=%llu", (unsigned long long)v->average_bandwidth);
    playlist_buf_printf(b, ",CODECS=\"%s\"", v->codecs);
    if (v->width > 0 && v->height > 0)
        playlist_buf_printf(b, ",RESOLUTION=%dx%d", v->width, v->height);
    if (v->frame_rate > 0)
        playlist_buf_printf(b, ",FRAME-RATE=%.3f", v->frame_rate);
    playlist_buf_printf(b, "\n%s%s\n", v->uri, sfx);
    return b->failed ? -1 : 0;
}
