/* playlist.h — HLS / LL-HLS playlist rendering (SPEC PKG-1..PKG-4).
 *
 * Pure functions: a description of the playlist goes in (plain structs, no
 * pointers into the media index), m3u8 text comes out, appended to a
 * `struct playlist_buf` that has a ceiling. Nothing here locks, allocates
 * beyond the buffer, or knows about HTTP.
 *
 * Naming of the URIs written into playlists (the delivery layer parses the
 * same names back, api/hls_delivery.c):
 *   init-{id}.mp4        initialization section (EXT-X-MAP), id stable per init
 *   {msn}.m4s            media segment
 *   {msn}.{part}.m4s     partial segment (LL-HLS), part is 0-based in its segment
 *   media.m3u8           the media playlist the multivariant playlist points at
 * Every URI gets `uri_suffix` appended verbatim (e.g. "?token=abc", SPEC PKG-6).
 *
 * References: RFC 8216bis (draft-pantos-hls-rfc8216bis) §4.4 tags, §6.2 server
 * responsibilities; Apple "Enabling Low-Latency HLS". */
#ifndef PACKAGER_PLAYLIST_H
#define PACKAGER_PLAYLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- output buffer with a ceiling (STYLE habit 6, curl's dynbuf) -------- */

struct playlist_buf {
    char *data;   /* NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    size_t max;   /* ceiling: appending beyond it fails, the buffer is poisoned */
    bool failed;
};

/* Starts empty with the given ceiling (bytes of text, excluding the NUL). */
void playlist_buf_init(struct playlist_buf *b, size_t max);
/* Frees the storage; the struct may be re-initialized afterwards. */
void playlist_buf_free(struct playlist_buf *b);
/* Transfers ownership of the text (malloc'd, NUL-terminated) to the caller and
 * leaves the buffer empty. Returns NULL if empty or failed. */
char *playlist_buf_take(struct playlist_buf *b, size_t *len);
/* Appends formatted text; -1 (and b->failed) when over the ceiling / OOM. */
int playlist_buf_printf(struct playlist_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- media playlist ------------------------------------------------------ */

struct playlist_part {
    int64_t duration_us;
    bool independent;        /* INDEPENDENT=YES (starts with a sync sample) */
};

struct playlist_segment {
    uint64_t msn;
    int64_t duration_us;     /* EXTINF, actual duration */
    long long pdt_us;        /* EXT-X-PROGRAM-DATE-TIME (µs since epoch); 0 = none */
    uint32_t init_id;        /* EXT-X-MAP URI init-{id}.mp4 */
    bool discontinuity;      /* EXT-X-DISCONTINUITY before this segment */
    const struct playlist_part *parts;  /* EXT-X-PART tags listed for it (may be 0) */
    uint32_t nparts;
};

enum playlist_type { PLAYLIST_TYPE_NONE = 0, PLAYLIST_TYPE_EVENT, PLAYLIST_TYPE_VOD };

struct playlist_media {
    int64_t target_duration_s;   /* EXT-X-TARGETDURATION (already ≥ every rounded EXTINF) */
    int64_t part_target_us;      /* EXT-X-PART-INF; 0 = no LL-HLS tags at all */
    uint64_t media_sequence;     /* msn of the first segment (skipped ones included) */
    uint64_t discontinuity_sequence;
    enum playlist_type type;
    bool ended;                  /* EXT-X-ENDLIST */
    uint32_t skipped;            /* > 0: Playlist Delta Update, EXT-X-SKIP (§4.4.5.2) */
    /* complete segments, oldest first, after the skipped ones */
    const struct playlist_segment *segs;
    size_t nsegs;
    /* the segment in progress (LL-HLS): its parts so far, listed after the
     * last complete segment; nparts 0 = none */
    struct playlist_segment open;
    /* EXT-X-PRELOAD-HINT:TYPE=PART for part hint_part of segment hint_msn */
    bool preload_hint;
    uint64_t hint_msn;
    uint32_t hint_part;
    const char *uri_suffix;      /* appended to every URI; NULL = none */
};

/* Renders a media playlist (media.m3u8 / vod.m3u8). 0, or -1 when the buffer
 * ceiling is hit or uri_suffix holds characters that cannot appear in a URI
 * inside a quoted-string. */
int playlist_render_media(struct playlist_buf *b, const struct playlist_media *m);

/* How many of the leading segments a delta update may replace with
 * EXT-X-SKIP: those whose end lies at least skip_until_us before the end of
 * the last segment (RFC 8216bis §6.2.5.1, Skip Boundary). */
uint32_t playlist_skippable(const struct playlist_segment *segs, size_t nsegs, int64_t skip_until_us);

/* LL-HLS derived values (RFC 8216bis §4.4.3.8): HOLD-BACK = 3 × target,
 * PART-HOLD-BACK = 3 × part target, CAN-SKIP-UNTIL = 6 × target. */
int64_t playlist_skip_until_us(int64_t target_duration_s);
/* Advance Part Limit (§6.2.5.2): 3 / part target if it is under 1 s, else 3. */
uint32_t playlist_advance_part_limit(int64_t part_target_us);
/* EXT-X-TARGETDURATION for a segment duration: RFC 8216 compares the
 * duration rounded to the nearest integer. */
int64_t playlist_rounded_seconds(int64_t duration_us);

/* ---- multivariant playlist (index.m3u8) ---------------------------------- */

struct playlist_variant {
    uint64_t bandwidth;          /* peak segment bit rate, bit/s */
    uint64_t average_bandwidth;  /* average segment bit rate; 0 = omit */
    const char *codecs;          /* RFC 6381 list, "avc1.64001f,mp4a.40.2" */
    int width, height;           /* RESOLUTION; 0 = omit (audio only) */
    double frame_rate;           /* FRAME-RATE; 0 = omit */
    const char *uri;             /* "media.m3u8" */
    const char *uri_suffix;
};

int playlist_render_multivariant(struct playlist_buf *b, const struct playlist_variant *v);

/* True if s may be appended to URIs in a playlist: empty, or starting with
 * '?' and made of RFC 3986 query characters (no quote, space, control). */
bool playlist_suffix_ok(const char *s);

#endif
