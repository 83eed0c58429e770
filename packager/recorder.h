/* recorder.h — one ingest session's MP4 recording (SPEC REC-1, REC-2).
 *
 * The recorder muxes codec configs and frames (core/media.h) with
 * libavformat's "mp4" muxer in fragmented mode
 * (movflags=frag_custom+empty_moov+default_base_moof+skip_trailer): ftyp +
 * an empty moov first, then one moof+mdat fragment about every
 * `fragment_ms`, cut before a video keyframe (audio-only: at any frame).
 * A fragment is also cut at a non-keyframe after 2 × fragment_ms without a
 * keyframe, so a long GOP cannot widen what a crash loses. A crash or
 * `kill -9` therefore leaves a file that plays up to the last complete
 * fragment; the finalizer (storage/finalizer.h) later rewrites it as a
 * faststart MP4.
 *
 * Threads: everything runs on the owner's loop and never touches the disk.
 * The muxer writes into memory (a custom AVIOContext); each finished
 * fragment is handed to a file writer thread (storage/file_store.h), which
 * writes, fsyncs every few seconds and reports failures back to the loop.
 * A failure (disk full, EFBIG, writer queue over its ceiling, muxer error)
 * puts the recorder in the failed state: it drops frames from then on and
 * tells the owner once through on_error; the live stream is not affected.
 *
 * Files and configs:
 * - The file's tracks are the codec configs known when its header is
 *   written: as soon as both a video and an audio config are known, or when
 *   frames of only one kind span `wait_other_track_ms` (an audio-only or
 *   video-only stream). Until then frames are queued (copied, bounded by
 *   pending_max_bytes) and the file starts at the first video keyframe.
 * - A config identical to the file's is ignored (publishers resend them).
 *   A different one (resolution / codec change, ING-9), or a config for a
 *   track kind the file lacks, closes the file: recorder_codec_config()
 *   returns RECORDER_ROTATED, on_file_closed reports the closed file, and
 *   frames are queued until the owner gives the next file's path with
 *   recorder_set_path() (it creates the next recording row first).
 * - Timestamps are rebased so the file starts at 0; a frame whose dts does
 *   not increase on its track is dropped (ingest already unwraps and
 *   normalizes, ING-8; this only guards the muxer). */
#ifndef PACKAGER_RECORDER_H
#define PACKAGER_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/media.h"

struct file_writer;
struct recorder;

struct recorder_stats {
    uint64_t bytes;        /* bytes the muxer produced for the file */
    int64_t duration_ms;   /* media duration in the file (longest track) */
    uint64_t frames;       /* frames written */
    uint64_t dropped;      /* frames dropped (no config, non-monotonic, waiting for keyframe, queue full) */
    uint64_t fragments;    /* moof+mdat fragments written */
};

struct recorder_config {
    /* Absolute path of the file to write; NULL = queue frames until
     * recorder_set_path(). Copied. */
    const char *path;
    /* The owner's loop: every callback runs on it. Required. */
    struct loop *loop;
    /* Writer thread to use (shared by many recorders); NULL = the recorder
     * starts a private one and stops it in recorder_free(). */
    struct file_writer *writer;
    int fragment_ms;            /* 0 = 1000 */
    int wait_other_track_ms;    /* 0 = 2000 */
    size_t pending_max_bytes;   /* 0 = 16 MiB */
    size_t fragment_max_bytes;  /* in-memory fragment ceiling; 0 = 64 MiB */
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

/* A sequence header for a track. 0; RECORDER_ROTATED when the file in
 * progress was closed because of it (call recorder_set_path() for the next
 * file); -1 when failed / unsupported codec. Borrowed pointers are copied. */
int recorder_codec_config(struct recorder *r, const struct media_codec_config *cfg);

/* One access unit. 0 when written or queued (or deliberately dropped, see
 * stats), -1 when the recorder has failed. Never blocks. */
int recorder_frame(struct recorder *r, const struct media_frame *f);

/* Path of the next file after RECORDER_ROTATED or a NULL initial path.
 * 0, or -1 when a file is already open / failed. */
int recorder_set_path(struct recorder *r, const char *path);

/* True once the current file has failed (on_error was or will be called). */
bool recorder_failed(const struct recorder *r);
/* Figures of the file in progress (zeros if none). */
void recorder_stats(const struct recorder *r, struct recorder_stats *out);

/* Ends the file in progress: writes the last fragment, hands the file to the
 * writer to be fsynced and closed (on_file_closed follows on the loop).
 * *out (may be NULL) receives the muxer-side figures. After this the
 * recorder takes no frames; 0 or -1 (it had failed). Idempotent. */
int recorder_close(struct recorder *r, struct recorder_stats *out);

/* Closes (if needed) and frees. With a private writer this waits until the
 * file is on disk (the writer thread is joined). */
void recorder_free(struct recorder *r);

#endif
