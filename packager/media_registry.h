/* media_registry.h — thread-safe map "rooms/{id}" | "keys/{id}" -> media_index.
 *
 * The packager side get-or-creates the index of the target it feeds; HTTP
 * delivery looks indexes up by the name in the request. The registry holds
 * one reference per entry; lookups return a new reference the caller drops
 * with media_index_unref(). The notify hook set here is installed on every
 * index the registry holds or creates (HTTP delivery uses it to wake parked
 * requests).
 *
 * Gone targets (SPEC PKG-5 "410 for swept"): media_registry_mark_gone()
 * removes the index and remembers the name in a bounded tombstone set, so
 * delivery can answer 410 instead of 404 until the process restarts. After a
 * restart the router decides from the database (room ARCHIVED → 410). */
#ifndef PACKAGER_MEDIA_REGISTRY_H
#define PACKAGER_MEDIA_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "packager/media_index.h"

struct media_registry;
struct segment_store;

struct media_registry_opts {
    size_t max_indexes;            /* ceiling of live entries; 0 = 4096 */
    size_t max_tombstones;         /* 0 = 4096; oldest forgotten first */
    /* defaults for indexes created by get_or_create (per-kind policy) */
    int64_t target_duration_us;
    int64_t part_target_us;
    int live_window_segments;      /* "rooms" */
    struct segment_store *store;   /* used for "rooms" (persist + VOD), never for "keys" */
    /* "keys" (memory-only preview): segments in its media playlist; 0 = 4
     * (HOLD-BACK is 3 target durations), clamped to [3, live_window_segments
     * or 10]. A segment leaving that window is dropped at once. */
    int preview_window_segments;
    /* "rooms" with a store: newest segments whose bytes stay in memory
     * (media_index_opts.mem_segments); 0 = 2, < 0 = the whole window. */
    int room_mem_segments;
};

struct media_registry *media_registry_new(const struct media_registry_opts *opts);
/* Drops the registry's references. Indexes still referenced elsewhere live on. */
void media_registry_free(struct media_registry *reg);

/* New reference to the index, or NULL. */
struct media_index *media_registry_get(struct media_registry *reg, const char *kind, const char *id);
/* Same, creating it when missing: "rooms" keep the VOD list and write to the
 * store (restoring index.log if present), "keys" are memory-only preview.
 * NULL on bad kind/id, over the ceiling, or OOM. *created tells which. */
struct media_index *media_registry_get_or_create(struct media_registry *reg, const char *kind, const char *id,
                                                 bool *created);
/* Looks up, or restores from disk an index of a room that has an
 * index.log (after a restart), never creating an empty one. */
struct media_index *media_registry_open(struct media_registry *reg, const char *kind, const char *id);
/* Removes the entry (the registry's reference is dropped). 0, or -1 if absent. */
int media_registry_remove(struct media_registry *reg, const char *kind, const char *id);
/* Removes the entry (if any) and records a tombstone. */
void media_registry_mark_gone(struct media_registry *reg, const char *kind, const char *id);
bool media_registry_is_gone(struct media_registry *reg, const char *kind, const char *id);

/* Calls fn for every index (with a reference held during the call, the
 * registry lock not held). Returns the number visited. */
size_t media_registry_foreach(struct media_registry *reg, void (*fn)(void *arg, struct media_index *idx),
                              void *arg);
size_t media_registry_count(struct media_registry *reg);

/* Installs the hook on every current and future index (NULL: none). */
void media_registry_set_notify(struct media_registry *reg, media_index_notify_fn fn, void *arg);

#endif
