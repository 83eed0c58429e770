/* segment_store.h — writes HLS files under data_dir on a writer thread.
 *
 * The media path (a media loop) must never wait for the disk (SPEC PKG-7), so
 * segment_store_write() only queues a job; one writer thread creates the
 * directories and writes `name.tmp` then renames it to `name` (STYLE habit 8:
 * readers never see a half-written file). No fsync: a crash may lose the
 * newest files, never expose a torn one. The queue has a ceiling in bytes;
 * a job over the ceiling is refused (counted in stats, logged), so a stalled
 * disk costs recordings of those segments, never memory or latency.
 *
 * Paths are relative to the store's root (data_dir) and are built by the
 * caller from validated names only (media_index.c); the store refuses a
 * relative path with "..", a leading '/', or characters outside
 * [A-Za-z0-9._/-]. */
#ifndef PACKAGER_SEGMENT_STORE_H
#define PACKAGER_SEGMENT_STORE_H

#include <stddef.h>
#include <stdint.h>

struct segment_store;

struct segment_store_chunk {
    const void *data;
    size_t len;
};

/* Called once per accepted or refused write, on the writer thread (or on the
 * caller's thread when refused): err is 0 or -1. After it returns, the store
 * no longer touches the chunks: typically it drops references. */
typedef void (*segment_store_done_fn)(void *arg, int err);

/* root: data_dir (copied). max_queued_bytes: ceiling of bytes waiting to be
 * written (0 = 256 MiB). Starts the writer thread. NULL on failure. */
struct segment_store *segment_store_new(const char *root, size_t max_queued_bytes);
/* Writes everything still queued, stops the thread, frees. NULL is a no-op. */
void segment_store_free(struct segment_store *s);

const char *segment_store_root(const struct segment_store *s);

/* Queues root/rel_dir/name = concatenation of chunks. The chunks stay
 * borrowed until done(arg, err) is called. Returns 0 if queued, -1 if refused
 * (ceiling, bad path, stopping): done has then already been called with -1. */
int segment_store_write(struct segment_store *s, const char *rel_dir, const char *name,
                        const struct segment_store_chunk *chunks, size_t nchunks,
                        segment_store_done_fn done, void *arg);

/* Queues an append of one line (copied) to root/rel_dir/name, in order with
 * the writes queued before it. 0 or -1. */
int segment_store_append(struct segment_store *s, const char *rel_dir, const char *name,
                         const char *text, size_t len);

/* Blocks until every job queued before the call is done (tests, shutdown;
 * never on a loop thread). */
void segment_store_flush(struct segment_store *s);

struct segment_store_stats {
    uint64_t files_written;
    uint64_t bytes_written;
    uint64_t refused;      /* over the ceiling or bad path */
    uint64_t failed;       /* I/O errors */
    size_t queued_bytes;
};
void segment_store_get_stats(struct segment_store *s, struct segment_store_stats *out);

/* True if rel (a relative path or a name) is safe: non-empty, no leading '/',
 * no "." or ".." component, only [A-Za-z0-9._/-]. */
int segment_store_path_ok(const char *rel);

#endif
