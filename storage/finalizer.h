/* finalizer.h — fragmented recording → faststart MP4, in the background
 * (SPEC REC-3, OPS-6).
 *
 * finalizer_remux() is the pure file step: the fragmented (possibly
 * truncated, after a crash) file becomes a faststart MP4 (moov before mdat)
 * in `dst.tmp`, which is fsynced and renamed over dst (dst may be the
 * source: the READY file keeps the recording's name). The recorder's own
 * files go through storage/mp4_faststart.c (a new moov over the fragments'
 * sample bytes, copied once); a file it does not handle
 * (mp4_faststart_probe() says 0, or the writer finds something unsupported
 * further in) is remuxed by libavformat's mp4 muxer with
 * `movflags=faststart`. A crash at any point leaves the source intact; a
 * stale `.tmp` is overwritten by the next attempt (and removed by the
 * sweeper).
 *
 * The finalizer thread takes jobs (recording id + path), runs
 * finalizer_remux() and moves the row PROCESSING → READY (size and duration
 * of the new file) or → FAILED with the reason. It owns one PostgreSQL connection
 * (reconnected when lost). A job whose row update cannot be written stays
 * PROCESSING and is redone by finalizer_recover() on the next start. */
#ifndef STORAGE_FINALIZER_H
#define STORAGE_FINALIZER_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct finalize_result {
    int64_t size_bytes;     /* of the final file */
    int64_t duration_ms;    /* from the final file's moov (longest track, edit lists included) */
    int64_t packets;        /* samples copied */
    const char *writer;     /* static: "mp4_faststart" or "libavformat" (which one ran last); NULL if neither */
    char reason[256];       /* why it failed ("" on success) */
};

/* 0, or -1 with out->reason. Blocking: worker threads only. */
int finalizer_remux(const char *src, const char *dst, struct finalize_result *out);

/* The libavformat remux alone (what finalizer_remux falls back to), for
 * tests and measurements. Same contract. */
int finalizer_remux_libavformat(const char *src, const char *dst, struct finalize_result *out);

struct finalizer;

struct finalizer_config {
    const char *conninfo;   /* copied */
    const char *data_dir;   /* copied; job paths are relative to it */
    const char *node_id;    /* copied; events actor "finalizer:NODE" */
    int recording_ttl_sec;  /* default TTL for expires_at when the room has ended */
    int queue_max;          /* pending jobs ceiling; 0 = 1024 */
};

/* Starts the thread (the connection is opened lazily). NULL with err. */
struct finalizer *finalizer_start(const struct finalizer_config *cfg, char *err, size_t errlen);

/* Queues a PROCESSING recording (rel_path relative to data_dir). Thread-safe,
 * never blocks. 0, or -1 when the queue is full / stopping (the row stays
 * PROCESSING for finalizer_recover). */
int finalizer_submit(struct finalizer *f, int64_t recording_id, const char *rel_path);

/* Start-up recovery (OPS-6): this node's rows left RECORDING/PROCESSING
 * become PROCESSING and are queued. c is a connection the caller owns.
 * Returns how many were queued, or -1. */
int finalizer_recover(struct finalizer *f, PGconn *c);

/* Jobs done (READY or FAILED) since start, and queued now. */
void finalizer_counts(struct finalizer *f, uint64_t *done, size_t *queued);

/* Finishes the job in progress, drops the rest (they stay PROCESSING and are
 * recovered on the next start), joins, frees. NULL is fine. */
void finalizer_stop(struct finalizer *f);

#endif
