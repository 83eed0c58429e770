/* hls_delivery.h — serves /hls/{rooms|keys}/{id}/{file} from the media index
 * (SPEC PKG-3..PKG-7).
 *
 * Files: index.m3u8 (multivariant), media.m3u8 (LL-HLS media playlist),
 * vod.m3u8 (rooms: the whole broadcast, EVENT → VOD), init.mp4 (current init),
 * init-{n}.mp4, {msn}.m4s (segment), {msn}.{part}.m4s (part). Names are parsed
 * by hls_parse_file(); a disk path is only ever built from the index's own
 * validated kind/id and parsed numbers (media_index_get_*), never from the
 * request.
 *
 * Blocking playlist reload (RFC 8216bis §6.2.5.2): media.m3u8?_HLS_msn=M
 * [&_HLS_part=N][&_HLS_skip=YES|v2]. If the index does not have it yet the
 * request is parked on the index's waiter list (HTTP loop only) with its own
 * deadline timer (3 × target duration). The media loop that publishes a part
 * posts one wake to the HTTP loop (loop_post), which answers every parked
 * request that is now satisfiable. At the deadline a playlist request gets the
 * current playlist (or 503 with opts.block_timeout_503); a request for the
 * preload-hinted part that never came gets 404. Parked requests are capped per
 * index and in total: over the cap → 503 with Retry-After.
 *
 * HTTP (SPEC PKG-5): GET and HEAD; single byte Range on media (206 +
 * Content-Range, 416 unsatisfiable, multi-range ignored → 200); MIME
 * application/vnd.apple.mpegurl, video/mp4 (audio/mp4 when there is no video
 * track); segments, parts and init-{n}.mp4 `Cache-Control: public,
 * max-age=31536000, immutable`; playlists `no-cache` (a satisfied blocking
 * reload: `public, max-age=<3 × target>`; an ended vod.m3u8: max-age=60);
 * CORS from opts; 400 malformed, 404 unknown, 410 for a target the registry
 * tombstoned (media_registry_mark_gone). After a restart, an unknown room
 * with an index.log on disk is restored (ended or inactive); the router
 * answers 410 itself for rooms the database says are ARCHIVED.
 *
 * Threading: everything here runs on the HTTP loop, except the notify hook
 * the delivery installs on the registry (media loops), which only posts. */
#ifndef API_HLS_DELIVERY_H
#define API_HLS_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evhttp_request;
struct loop;
struct media_registry;
struct hls_delivery;

struct hls_delivery_opts {
    const char *cors_origin;       /* NULL = "*", "" = no CORS headers */
    int max_parked_per_index;      /* 0 = 1000 */
    int max_parked_total;          /* 0 = 20000 */
    bool block_timeout_503;        /* deadline reached: 503 instead of the current playlist */
    int block_timeout_ms;          /* 0 = 3 × target duration (RFC 8216bis §6.2.5.2) */
    size_t playlist_max_bytes;     /* rendering ceiling; 0 = 16 MiB (vod.m3u8 of a long broadcast) */
};

/* http_loop: the loop running the evhttp server (waiters and timers live
 * there). Installs the wake hook on reg (media_registry_set_notify). */
struct hls_delivery *hls_delivery_new(struct loop *http_loop, struct media_registry *reg,
                                      const struct hls_delivery_opts *opts);
/* On the HTTP loop, before evhttp_free: removes the hook, answers every
 * parked request with 503. Media loops may still run (they only post; a wake
 * arriving later finds no waiters). */
void hls_delivery_free(struct hls_delivery *d);

/* Called exactly once per handled request, when its response has been handed
 * to evhttp (synchronously or later for a parked one). The evhttp request may
 * already be freed: use status, never the request. */
typedef void (*hls_delivery_done_fn)(void *arg, int status);

/* Serves one request (the router checked auth/token before). kind: "rooms" |
 * "keys"; id and file: path segments (decoded); uri_suffix: appended to every
 * URI in playlists (e.g. "?token=..."; NULL or "" for none). The request's own
 * query carries the _HLS_ directives. Returns 0 when answered now, 1 when
 * parked; done runs in both cases. */
int hls_delivery_handle(struct hls_delivery *d, struct evhttp_request *req, const char *kind, const char *id,
                        const char *file, const char *uri_suffix, hls_delivery_done_fn done, void *done_arg);

struct hls_delivery_stats {
    uint64_t parked_now;
    uint64_t parked_total;
    uint64_t woken;               /* parked requests answered by a publish */
    uint64_t timeouts;
    uint64_t refused_over_cap;
    uint64_t served_memory, served_disk;
};
void hls_delivery_get_stats(struct hls_delivery *d, struct hls_delivery_stats *out);

/* ---- pure parsers (fuzzed: tests/fuzz/fuzz_playlist_query.c) ------------- */

enum hls_file_kind {
    HLS_FILE_MULTIVARIANT,   /* index.m3u8 */
    HLS_FILE_MEDIA,          /* media.m3u8 */
    HLS_FILE_VOD,            /* vod.m3u8 */
    HLS_FILE_INIT_CURRENT,   /* init.mp4 */
    HLS_FILE_INIT,           /* init-{n}.mp4 */
    HLS_FILE_SEGMENT,        /* {msn}.m4s */
    HLS_FILE_PART,           /* {msn}.{part}.m4s */
};

struct hls_file {
    enum hls_file_kind kind;
    uint64_t msn;
    uint32_t part;
    uint32_t init_id;
};

/* 0, -400 (malformed: bad characters, "..", too long, number overflow) or
 * -404 (well-formed but not a file we serve, non-canonical numbers). */
int hls_parse_file(const char *name, struct hls_file *out);

struct hls_query {
    bool has_msn, has_part, skip;
    uint64_t msn;
    uint32_t part;
};

/* Parses the _HLS_ delivery directives from a raw query string (without
 * '?', may be NULL); other parameters are ignored. 0 or -400 (bad number,
 * duplicate directive, _HLS_skip other than YES/v2, _HLS_part without
 * _HLS_msn per §6.2.5.2). */
int hls_parse_query(const char *query, struct hls_query *out);

/* Range header against a body of len bytes (RFC 9110 §14): 0 = serve
 * [*start, *end] (206), 1 = ignore the header (200: absent, not bytes,
 * multiple ranges, malformed), -416 = unsatisfiable. */
int hls_parse_range(const char *header, uint64_t len, uint64_t *start, uint64_t *end);

/* [A-Za-z0-9_-]{1,64} */
bool hls_id_ok(const char *id);

#endif
