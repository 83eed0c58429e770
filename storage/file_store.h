/* file_store.h — files under data_dir: the layout, atomic publishing,
 * confined removal, and a writer thread for loops that must not block on
 * disk (SPEC PKG-7, REC-1; ARCHITECTURE §4).
 *
 * Layout (relative to data_dir):
 *   recordings/{appId}/{roomId}/{recordingId}.mp4   recordings (REC-1..3)
 *   hls/rooms/{roomId}/                             a room's live + DVR segments
 *
 * Paths from requests are never joined here: callers build paths from ids
 * and database rows only (file_store_join refuses absolute and ".." parts
 * as a second line of defence).
 *
 * The writer: a thread that appends byte chunks to files, fsyncs each file
 * every `fsync_interval_ms`, and reports failures (disk full, EFBIG, EIO)
 * back to the file owner's loop with loop_post(). Its queue has a ceiling
 * in bytes; an append over the ceiling fails the file (ENOBUFS: the disk is
 * slower than the stream) instead of growing without bound. */
#ifndef STORAGE_FILE_STORE_H
#define STORAGE_FILE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/loop.h"

/* --- layout ------------------------------------------------------------ */

/* "recordings/{app}/{room}/{id}.mp4". 0, or -1 if out is too small. */
int file_store_recording_relpath(char *out, size_t outlen, int64_t app_id, int64_t room_id,
                                 int64_t recording_id);
/* "hls/rooms/{room}". 0 or -1. */
int file_store_room_hls_relpath(char *out, size_t outlen, int64_t room_id);
/* data_dir + "/" + rel. Refuses an absolute rel, an empty one, and any
 * "." or ".." component. 0 or -1. */
int file_store_join(char *out, size_t outlen, const char *data_dir, const char *rel);

/* --- synchronous helpers (worker threads and the CLI only) -------------- */

/* mkdir -p with mode; 0 or -1 (errno). */
int file_store_mkdir_p(const char *path, mode_t mode);
/* mkdir -p of the directory holding path. 0 or -1. */
int file_store_mkdir_parent(const char *path);
/* fsync of the directory holding path (makes a rename/create durable). */
int file_store_fsync_parent(const char *path);
/* Writes data to path.tmp, fsyncs, renames over path, fsyncs the directory
 * (STYLE 8). 0 or -1 (errno); the tmp file is removed on failure. */
int file_store_write_atomic(const char *path, const void *data, size_t len);
/* rename(tmp, path) + fsync of the directory. 0 or -1. */
int file_store_publish(const char *tmp, const char *path);
/* Removes path and everything under it without following symlinks
 * (a symlink is removed, never its target). Missing path is success.
 * *files_removed (may be NULL) counts removed non-directories. 0 or -1. */
int file_store_remove_tree(const char *path, uint64_t *files_removed);

/* --- writer thread ------------------------------------------------------ */

struct file_writer;
struct fw_file;

struct fw_file_cb {
    struct loop *loop;   /* where callbacks run; NULL = on the writer thread */
    void *ctx;
    /* The file failed (first failure only): err is an errno value, msg says
     * what (e.g. "write /x.mp4: No space left on device"). Never called after
     * file_writer_close(). */
    void (*on_error)(void *ctx, int err, const char *msg);
};

struct fw_close_result {
    int err;             /* 0, or the errno of the first failure */
    char msg[256];       /* "" or the failure text */
    uint64_t bytes;      /* bytes written to the file */
    bool created;        /* the file exists (at least one append reached disk) */
    bool direct_io;      /* it was written with O_DIRECT */
};
typedef void (*fw_closed_fn)(void *ctx, const struct fw_close_result *res);

/* Starts a writer thread. queue_max_bytes: ceiling of bytes waiting to be
 * written over all files (0 = 256 MiB); fsync_interval_ms (0 = 2000). NULL on
 * failure. */
struct file_writer *file_writer_new(const char *name, size_t queue_max_bytes,
                                    int fsync_interval_ms);
/* Files opened after this call are written with O_DIRECT (where the file
 * system supports it): for write-once data such as recordings, which then
 * cost no page-cache copy. Appends still reach the file before the next op:
 * the unaligned tail is written padded and the file cut back to size. */
void file_writer_set_direct_io(struct file_writer *w, bool on);
/* Writes what is queued (including queued closes, whose on_closed are
 * posted), fsyncs and closes files their owner never closed (no callback),
 * joins the thread, frees. */
void file_writer_free(struct file_writer *w);

/* Registers a file. Nothing touches the disk until the first append; then
 * the parent directories are created and path is created/truncated.
 * Returns NULL only when out of memory. */
struct fw_file *file_writer_open(struct file_writer *w, const char *path, const struct fw_file_cb *cb);
/* Queues len bytes for the file. Takes ownership of data (malloc'd), in
 * every case. 0, or -1 when the file has failed already or the queue is over
 * its ceiling (which fails the file with ENOBUFS and reports it). */
int file_writer_append(struct fw_file *f, void *data, size_t len);
/* Marks the file failed from the owner's side (a muxer error): later appends
 * are dropped and on_error is reported like a disk error. */
void file_writer_fail(struct fw_file *f, int err, const char *msg);
/* 0, or the errno of the file's first failure (any thread). */
int file_writer_error(const struct fw_file *f);
/* Queues the close: after the bytes already queued are written, the file
 * is fsynced and closed and on_closed(ctx, result) is posted to cb.loop.
 * After this call the caller must not use f; on_error is not called any more
 * (the owner's loop thread is the one calling this). on_closed may be NULL. */
void file_writer_close(struct fw_file *f, fw_closed_fn on_closed, void *ctx);

/* Bytes queued right now (for tests and /metrics). */
size_t file_writer_queued_bytes(struct file_writer *w);

#endif
