/* recorder.h — one ingest session's MP4 recording (SPEC REC-1, REC-2).
 *
 * The recorder writes what the CMAF segmenter already made for HLS
 * (packager/cmaf_sink.h): the init segment (ftyp + moov with mvex), then
 * every part (moof+mdat fragments) as it is closed. A CMAF init followed
 * by its fragments is a fragmented MP4 file (ISO/IEC 14496-12 §8.8,
 * ISO/IEC 23000-19 §7.3), so a recording costs one copy of the bytes and a
 * write — no second muxer, no second timeline. A crash or `kill -9`
 * therefore leaves a file that plays up to the last fragment handed to the
 * writer; the finalizer (storage/finalizer.h) later rewrites it as a
 * faststart MP4 starting at time 0.
 *
 * Threads: everything runs on the owner's loop and never touches the disk.
 * Parts are gathered in memory and handed to a file writer thread
 * (storage/file_store.h) about every `fragment_ms` of media (and when the
 * file ends), which writes, fsyncs every few seconds and reports failures
 * back to the loop. A failure (disk full, EFBIG, writer queue over its
 * ceiling) puts the recorder in the failed state: it drops parts from then
 * on and tells the owner once through on_error; the live stream is not
 * affected.
 *
 * Files and inits:
 * - A file starts with the current init and the first independent part
 *   (one that begins with a video keyframe; audio-only: any part) that
 *   arrives once the file's path is known. Until the path comes, parts are
 *   queued (copied, from an independent one on, bounded by
 *   pending_max_bytes).
 * - An init identical to the file's is ignored. A different one (new codec
 *   configuration or a track appearing, ING-9) closes a file that already
 *   holds media: recorder_init() returns RECORDER_ROTATED, on_file_closed
 *   reports the closed file, and parts are queued until the owner gives the
 *   next file's path with recorder_set_path() (it creates the next
 *   recording row first).
 * - Timestamps are the stream's CMAF media time (tfdt), which starts where
 *   the recording joined the stream; the finalizer rebases the faststart
 *   file to 0. */
#ifndef PACKAGER_RECORDER_H
#define PACKAGER_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "packager/cmaf_sink.h"

struct file_writer;
struct recorder;

struct recorder_stats {
    uint64_t bytes;        /* bytes handed to the file (init + parts) */
    int64_t duration_ms;   /* media duration in the file */
    uint64_t parts;        /* CMAF parts (moof+mdat fragments) written */
    uint64_t dropped;      /* parts dropped (before an independent one, queue full) */
    uint64_t flushes;      /* hand-offs to the writer thread */
};

struct recorder_config {
    /* Absolute path of the file to write; NULL = queue parts until
     * recorder_set_path(). Copied. */
    const char *path;
    /* The owner's loop: every callback runs on it. Required. */
    struct loop *loop;
    /* Writer thread to use (shared by many recorders); NULL = the recorder
     * starts a private one and stops it in recorder_free(). */
    struct file_writer *writer;
    int fragment_ms;            /* media gathered before a hand-off; 0 = 1000 */
    size_t pending_max_bytes;   /* 0 = 16 MiB */
    size_t fragment_max_bytes;  /* gathered bytes that force a hand-off; 0 = 8 MiB */
    /* Passed to the callbacks; must outlive the last on_file_closed, which
     * may come after recorder_free(). */
    void *ctx;
    /* The current file failed; reason is one line ("write …: No space left
     * on device"). Called once per file, from the loop, never from inside a
     * recorder_* call. The recorder stays valid (the owner frees it). */
    void (*on_error)(void *ctx, const char *path, const char *reason);
    /* A file is completely on disk (written, fsynced, closed), or failed:
     * error is 0 or an errno, reason "" or the failure text. Runs on the loop
     * after recorder_close()/a rotation; the recorder may be gone by then.
     * When no media reached the file, stats->bytes is 0 and no file exists. */
    void (*on_file_closed)(void *ctx, const char *path, const struct recorder_stats *stats,
                           int error, const char *reason);
};

enum { RECORDER_ROTATED = 1 };

/* NULL when out of memory or the writer thread cannot start. */
struct recorder *recorder_new(const struct recorder_config *cfg);

/* The stream's init segment (the segmenter's on_init, or the owner's cached
 * copy when recording starts mid-stream). 0; RECORDER_ROTATED when the file
 * in progress was closed because of it (call recorder_set_path() for the
 * next file); -1 when failed or out of memory. The bytes are copied. */
int recorder_init(struct recorder *r, const struct cmaf_init *init);

/* One part (the segmenter's on_part). 0 when written, queued or
 * deliberately dropped (see stats), -1 when the recorder has failed. Never
 * blocks. The bytes are copied. */
int recorder_part(struct recorder *r, const struct cmaf_part *part);

/* Path of the next file after RECORDER_ROTATED or a NULL initial path.
 * 0, or -1 when a file is already open / failed. */
int recorder_set_path(struct recorder *r, const char *path);

/* True once the current file has failed (on_error was or will be called). */
bool recorder_failed(const struct recorder *r);
/* Figures of the file in progress (zeros if none). */
void recorder_stats(const struct recorder *r, struct recorder_stats *out);

/* Ends the file in progress: hands what is gathered to the writer, which
 * fsyncs and closes it (on_file_closed follows on the loop). *out (may be
 * NULL) receives the figures. After this the recorder takes nothing; 0 or
 * -1 (it had failed). Idempotent. */
int recorder_close(struct recorder *r, struct recorder_stats *out);

/* Closes (if needed) and frees. With a private writer this waits until the
 * file is on disk (the writer thread is joined). */
void recorder_free(struct recorder *r);

#endif
