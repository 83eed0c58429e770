/* media_index.h — what viewers can fetch for one playlist target (SPEC PKG-1..7).
 *
 * One index per target: "rooms/{id}" (live window + whole-broadcast VOD list,
 * segments written to disk) or "keys/{id}" (broadcaster preview, live window
 * only). The packager feeds it through the cmaf_sink it exposes
 * (packager/cmaf_sink.h) on the stream's media loop; HTTP delivery reads it
 * on the HTTP loop. Threading (ARCHITECTURE §1):
 *
 *  - One mutex per index guards its metadata; every critical section is a
 *    few pointer moves or a small copy (playlists are rendered from a
 *    snapshot, outside the lock).
 *  - Init sections, parts and segments are immutable refcounted
 *    `struct media_buf`s. A reader takes references and sends them (e.g.
 *    evbuffer_add_reference with a cleanup that unrefs), so a slow viewer
 *    holds memory, never the publisher.
 *  - When something a blocked reader may wait for happens (a part, a
 *    segment, a state change) and a reader is parked, the index calls its
 *    notify hook once, on the media loop, outside the lock; it does not call
 *    it again until the receiver acknowledges with media_index_notify_done().
 *
 * The index survives publisher reconnects: begin a new session and the next
 * segment carries EXT-X-DISCONTINUITY, msn numbering continues
 * (media_index_next_msn()). The index assigns media sequence numbers itself:
 * the segmenter's msn only groups parts into segments.
 *
 * Disk layout (ARCHITECTURE §4), when a segment_store is given:
 *   data_dir/hls/{kind}/{id}/seg/{msn}.m4s, init-{n}.mp4, index.log
 * index.log has one line per init / segment / end, so the VOD list can be
 * rebuilt after a restart (media_index_opts.restore). */
#ifndef PACKAGER_MEDIA_INDEX_H
#define PACKAGER_MEDIA_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "packager/cmaf_sink.h"
#include "packager/playlist.h"

struct segment_store;

/* ---- immutable refcounted bytes ------------------------------------------ */

struct media_buf;

/* Copies len bytes. NULL on OOM. The new buffer has one reference. */
struct media_buf *media_buf_new(const void *data, size_t len);
/* Thread-safe. ref returns its argument. unref frees at zero; NULL is a no-op. */
struct media_buf *media_buf_ref(struct media_buf *b);
void media_buf_unref(struct media_buf *b);
const uint8_t *media_buf_data(const struct media_buf *b);
size_t media_buf_len(const struct media_buf *b);

/* ---- index --------------------------------------------------------------- */

struct media_index;

enum media_index_state {
    MEDIA_INDEX_LIVE = 0,   /* a publisher session is (or is about to be) feeding it */
    MEDIA_INDEX_INACTIVE,   /* publisher gone; playlists stay, no new parts */
    MEDIA_INDEX_ENDED,      /* EXT-X-ENDLIST; vod.m3u8 becomes PLAYLIST-TYPE:VOD */
};

struct media_index_opts {
    const char *kind;              /* "rooms" | "keys" (validated: [a-z]{1,15}) */
    const char *id;                /* [A-Za-z0-9_-]{1,64} */
    int64_t target_duration_us;    /* configured segment target; 0 = 2 s */
    int64_t part_target_us;        /* configured part target; 0 = LL-HLS off */
    int live_window_segments;      /* segments in media.m3u8; 0 = 10; clamped to [3, 64] */
    int keep_extra_segments;       /* kept after leaving the window; 0 = 4, < 0 = none */
    /* With a store: how many of the newest complete segments keep their bytes
     * in memory (0 = every segment of the window and the extra ones). Older
     * ones, once their file is written and they end more than one target
     * duration before the live edge, are served from disk: get_segment
     * answers ON_DISK, get_part ON_DISK with the part's byte range in the
     * segment file. Ignored without a store: a memory-only index keeps its
     * whole window. */
    int mem_segments;
    bool keep_vod;                 /* keep metadata of every segment since start (vod.m3u8) */
    uint32_t vod_max_segments;     /* ceiling of that list; 0 = 200000 */
    size_t max_part_bytes;         /* ceiling per part / init; 0 = 32 MiB */
    struct segment_store *store;   /* NULL: nothing on disk (preview) */
    bool restore;                  /* read index.log from the store's root (if any) */
};

/* NULL on bad opts or OOM. One reference, owned by the caller. */
struct media_index *media_index_new(const struct media_index_opts *opts);
struct media_index *media_index_ref(struct media_index *idx);
void media_index_unref(struct media_index *idx);

/* "rooms/{id}" — also the registry key. Valid for the index's lifetime. */
const char *media_index_name(const struct media_index *idx);
const char *media_index_kind(const struct media_index *idx);
const char *media_index_id(const struct media_index *idx);

/* The sink the CMAF segmenter feeds (ctx = idx). Callbacks run on one media
 * loop at a time; borrowed pointers are copied. Valid while idx lives. */
const struct cmaf_sink *media_index_sink(struct media_index *idx);

/* ---- publisher lifecycle (media loop) ------------------------------------ */

/* A publisher session starts: state LIVE; if the index already has segments,
 * the next one carries EXT-X-DISCONTINUITY. Returns the session number (1..). */
uint32_t media_index_begin_session(struct media_index *idx);
/* Publisher gone (call after flushing the segmenter): a segment left open is
 * closed from the parts it has; state INACTIVE (no preload hint, hinted part
 * requests get 404). Blocked playlist readers time out on their own. A part
 * arriving later makes the index LIVE again. */
void media_index_set_inactive(struct media_index *idx);
/* Room ended: closes an open segment, EXT-X-ENDLIST from now on, wakes
 * blocked readers. Idempotent. */
void media_index_end(struct media_index *idx);
/* The msn the next new segment will get (the segmenter may start there). */
uint64_t media_index_next_msn(struct media_index *idx);
/* Media time (µs) where the last segment ended: a reconnecting session's
 * segmenter may continue the timeline there (cmaf_segmenter start_time_us).
 * 0 before any segment. */
int64_t media_index_next_start_us(struct media_index *idx);
enum media_index_state media_index_get_state(struct media_index *idx);

/* ---- reader wake-ups ------------------------------------------------------ */

typedef void (*media_index_notify_fn)(void *arg, struct media_index *idx);
/* Sets the hook (fn NULL = none). Called on the media loop, outside the lock,
 * only while readers are parked, at most once until media_index_notify_done. */
void media_index_set_notify(struct media_index *idx, media_index_notify_fn fn, void *arg);
/* The receiver of a notification calls this before re-examining the index. */
void media_index_notify_done(struct media_index *idx);
/* One pointer owned by the HTTP loop (its per-index waiter list). The index
 * never looks at it. */
void **media_index_reader_slot(struct media_index *idx);

/* ---- playlists (any thread) ---------------------------------------------- */

enum media_index_playlist { MEDIA_INDEX_MULTIVARIANT, MEDIA_INDEX_MEDIA, MEDIA_INDEX_VOD };

enum {
    MEDIA_INDEX_OK = 0,
    MEDIA_INDEX_ERR = -1,        /* ceiling / OOM / bad suffix */
    MEDIA_INDEX_NOT_FOUND = -2,  /* nothing to serve (yet), or no such file */
    MEDIA_INDEX_ON_DISK = 1,     /* get_*: not in memory, read the path given */
    MEDIA_INDEX_NOT_YET = 2,     /* get_part: the hinted next part, wait for it */
};

/* Renders into out (appended). skip: _HLS_skip=YES|v2 (ignored unless
 * LL-HLS and not ended). Returns OK, ERR or NOT_FOUND (no segment yet, or no
 * VOD list). */
int media_index_render(struct media_index *idx, enum media_index_playlist which, bool skip,
                       const char *uri_suffix, struct playlist_buf *out);

/* The same playlist as an immutable buffer (a new reference, *rc = OK), or
 * NULL with *rc = NOT_FOUND / ERR. Playlists without a URI suffix are cached
 * until the index changes, so concurrent and repeated requests (every viewer
 * of a room polling media.m3u8) share one rendering. max: ceiling of the
 * text (0 = 16 MiB). */
struct media_buf *media_index_playlist(struct media_index *idx, enum media_index_playlist which, bool skip,
                                       const char *uri_suffix, size_t max, int *rc);

/* Blocking playlist reload (RFC 8216bis §6.2.5.2). part < 0: _HLS_msn only. */
enum media_index_block { MEDIA_INDEX_READY, MEDIA_INDEX_WAIT, MEDIA_INDEX_TOO_FAR };
/* With park=true and a WAIT answer, the caller is counted as parked in the
 * same critical section (so no publish can slip between check and park) and
 * must later call media_index_unpark() exactly once. */
enum media_index_block media_index_block_check(struct media_index *idx, uint64_t msn, int64_t part, bool park);
void media_index_unpark(struct media_index *idx);
/* Deadline for blocked requests: 3 × target duration (µs). */
int64_t media_index_block_timeout_us(struct media_index *idx);

/* ---- media bytes (any thread) -------------------------------------------- */

struct media_index_body {
    struct media_buf **bufs;   /* references, in order; release with _body_release */
    size_t nbufs;
    uint64_t len;              /* total bytes */
    uint64_t disk_offset;      /* get_part ON_DISK: where the part starts in the file */
};
void media_index_body_release(struct media_index_body *b);

/* Segment msn: OK (in memory, out filled), ON_DISK (path filled), NOT_FOUND. */
int media_index_get_segment(struct media_index *idx, uint64_t msn, struct media_index_body *out, char *path,
                            size_t pathsz);
/* Part: OK, ON_DISK (its segment left memory: path filled, the part is
 * out->len bytes at out->disk_offset of that file; only when path is not
 * NULL, else NOT_FOUND), NOT_YET (the next part of a live index, not
 * published yet; with park=true the caller is counted as parked as for
 * block_check), NOT_FOUND. */
int media_index_get_part(struct media_index *idx, uint64_t msn, uint32_t part, bool park,
                         struct media_index_body *out, char *path, size_t pathsz);
/* Init section id (id < 0: the current one): OK, ON_DISK, NOT_FOUND. */
int media_index_get_init(struct media_index *idx, int64_t id, struct media_index_body *out, char *path,
                         size_t pathsz);
/* True when the current init has no video track (MIME audio/mp4). */
bool media_index_audio_only(struct media_index *idx);

/* ---- stats ---------------------------------------------------------------- */

struct media_index_stats {
    enum media_index_state state;
    uint32_t session_no;
    uint64_t next_msn;
    uint64_t segments_total, parts_total, bytes_total;
    uint64_t bandwidth_peak, bandwidth_avg;  /* bit/s over the live window */
    int64_t target_duration_s;
    uint32_t parked;
    long long last_part_mono_us;             /* cmaf_part.ready_mono_us of the newest part */
};
void media_index_get_stats(struct media_index *idx, struct media_index_stats *out);

#endif
