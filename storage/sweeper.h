/* sweeper.h — expiry of recordings and rooms, and orphan cleanup (SPEC REC-4).
 *
 * One pass (sweeper_run_once):
 *  1. stores expires_at = room ended_at + ttl on rows still lacking it;
 *  2. recordings READY/FAILED whose expires_at passed (and PROCESSING ones
 *     stuck longer than the grace period): file deleted, row EXPIRED (a
 *     FAILED row keeps its status and reason), swept_at set, event;
 *  3. rooms ENDED whose ended_at + ttl passed and whose recordings are all
 *     EXPIRED or FAILED-and-swept (or none): data_dir/hls/rooms/{id}/ is
 *     deleted and the room moves to ARCHIVED, event video_room_state;
 *  4. orphans: files under data_dir/recordings and folders under
 *     data_dir/hls/rooms that no row explains (no row, another path, row
 *     EXPIRED/swept, stale finalizer .tmp, room ARCHIVED), older than
 *     orphan_grace_sec, are removed (an archived room's empty recordings
 *     folder goes in step 3).
 * A file of a row in RECORDING is never touched.
 *
 * Safety: rows are claimed in batches with `FOR UPDATE SKIP LOCKED` inside a
 * transaction, files are deleted while the rows are locked, and the rows are
 * updated in the same transaction; a crash between the two leaves the row
 * for the next pass, whose delete then finds nothing (ENOENT is success).
 * So passes are idempotent, restart-safe, and two nodes may sweep at once.
 *
 * The periodic sweeper is a thread (never a loop): a pass at start-up, then
 * one every interval_sec, on its own database connection. */
#ifndef STORAGE_SWEEPER_H
#define STORAGE_SWEEPER_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct sweeper_config {
    const char *data_dir;
    const char *node_id;        /* events actor "sweeper:NODE" */
    int recording_ttl_sec;      /* default TTL (apps may override) */
    int orphan_grace_sec;       /* age before an unexplained file is removed */
    int batch;                  /* rows per transaction; 0 = 100 */
};

struct sweep_report {
    int expiry_set;             /* rows that got their expires_at */
    int recordings_expired;     /* rows swept (READY → EXPIRED, FAILED swept) */
    int rooms_archived;
    int orphans_removed;        /* orphan files + folders */
    uint64_t files_deleted;     /* every file removed (recordings, HLS, orphans) */
    int errors;                 /* files that could not be removed (left for next pass) */
};

/* One pass on connection c (not in a transaction). 0, or -1 with err when the
 * database failed (what was done before stays done). */
int sweeper_run_once(PGconn *c, const struct sweeper_config *cfg, struct sweep_report *out,
                     char *err, size_t errlen);

struct sweeper;

/* Starts the thread: a pass now, then every interval_sec. Strings in cfg are
 * copied. NULL with err. */
struct sweeper *sweeper_start(const char *conninfo, const struct sweeper_config *cfg,
                              int interval_sec, char *err, size_t errlen);
/* Passes completed so far (tests, metrics). */
uint64_t sweeper_passes(struct sweeper *s);
/* Interrupts the wait (not a pass in progress), joins, frees. NULL is fine. */
void sweeper_stop(struct sweeper *s);

#endif
