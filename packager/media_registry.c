/* media_registry.c — name -> media_index map with tombstones. See media_registry.h. */
#include "packager/media_registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "packager/segment_store.h"

#define REG_BUCKETS 1024

struct reg_entry {
    struct reg_entry *next;
    struct media_index *idx;
    char name[84];
};

struct media_registry {
    pthread_mutex_t mu;
    struct media_registry_opts o;
    struct reg_entry *buckets[REG_BUCKETS];
    size_t count;
    char (*tomb)[84];          /* ring of gone names */
    size_t ntomb, tomb_head;
    media_index_notify_fn notify_fn;
    void *notify_arg;
};

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static bool kind_ok(const char *kind) { return kind && (!strcmp(kind, "rooms") || !strcmp(kind, "keys")); }

static bool id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int make_name(char out[84], const char *kind, const char *id)
{
    if (!kind_ok(kind) || !id_ok(id))
        return -1;
    snprintf(out, 84, "%s/%s", kind, id);
    return 0;
}

struct media_registry *media_registry_new(const struct media_registry_opts *opts)
{
    struct media_registry *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return NULL;
    if (opts)
        reg->o = *opts;
    if (!reg->o.max_indexes)
        reg->o.max_indexes = 4096;
    if (!reg->o.max_tombstones)
        reg->o.max_tombstones = 4096;
    reg->tomb = calloc(reg->o.max_tombstones, sizeof(*reg->tomb));
    if (!reg->tomb) {
        free(reg);
        return NULL;
    }
    pthread_mutex_init(&reg->mu, NULL);
    return reg;
}

void media_registry_free(struct media_registry *reg)
{
    if (!reg)
        return;
    for (size_t b = 0; b < REG_BUCKETS; b++) {
        struct reg_entry *e = reg->buckets[b];
        while (e) {
            struct reg_entry *n = e->next;
            media_index_set_notify(e->idx, NULL, NULL);
            media_index_unref(e->idx);
            free(e);
            e = n;
        }
    }
    free(reg->tomb);
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static struct reg_entry **find_locked(struct media_registry *reg, const char *name)
{
    struct reg_entry **pp = &reg->buckets[hash_name(name) % REG_BUCKETS];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

struct media_index *media_registry_get(struct media_registry *reg, const char *kind, const char *id)
{
    char name[84];
    if (make_name(name, kind, id) != 0)
        return NULL;
    pthread_mutex_lock(&reg->mu);
    struct reg_entry *e = *find_locked(reg, name);
    struct media_index *idx = e ? media_index_ref(e->idx) : NULL;
    pthread_mutex_unlock(&reg->mu);
    return idx;
}

/* Inserts fresh (taking its reference) unless the name appeared meanwhile;
 * returns a new reference to whichever index is in the map, or NULL. */
static struct media_index *insert(struct media_registry *reg, const char *name, struct media_index *fresh,
                                  bool *created)
{
    struct media_index *out = NULL;
    pthread_mutex_lock(&reg->mu);
    struct reg_entry **pp = find_locked(reg, name);
    if (*pp) {
        out = media_index_ref((*pp)->idx);
    } else if (reg->count < reg->o.max_indexes) {
        struct reg_entry *e = calloc(1, sizeof(*e));
        if (e) {
            snprintf(e->name, sizeof(e->name), "%s", name);
            e->idx = fresh;
            fresh = NULL;
            media_index_set_notify(e->idx, reg->notify_fn, reg->notify_arg);
            *pp = e;
            reg->count++;
            out = media_index_ref(e->idx);
            if (created)
                *created = true;
        }
    } else {
        log_warn("hls: registry full max=%zu name=%s", reg->o.max_indexes, name);
    }
    pthread_mutex_unlock(&reg->mu);
    media_index_unref(fresh);
    return out;
}

/* Per-kind memory policy (SPEC PKG-4, PKG-7): a room keeps its window's
 * metadata and the newest segments' bytes (older ones are read back from
 * disk); the preview, memory-only, keeps a short window and nothing more. */
static struct media_index *create(struct media_registry *reg, const char *kind, const char *id, bool restore)
{
    bool room = strcmp(kind, "rooms") == 0;
    int window = reg->o.live_window_segments;
    int mem = 0, extra = 0;
    if (room) {
        mem = reg->o.room_mem_segments == 0 ? 2 : reg->o.room_mem_segments > 0 ? reg->o.room_mem_segments : 0;
    } else {
        int max = window > 0 ? window : 10;
        window = reg->o.preview_window_segments > 0 ? reg->o.preview_window_segments : 4;
        window = window > max ? max : window;
        extra = -1;
    }
    struct media_index_opts o = {
        .kind = kind,
        .id = id,
        .target_duration_us = reg->o.target_duration_us,
        .part_target_us = reg->o.part_target_us,
        .live_window_segments = window,
        .keep_extra_segments = extra,
        .mem_segments = mem,
        .keep_vod = room,
        .store = room ? reg->o.store : NULL,
        .restore = room && restore,
    };
    return media_index_new(&o);
}

struct media_index *media_registry_get_or_create(struct media_registry *reg, const char *kind, const char *id,
                                                 bool *created)
{
    char name[84];
    if (created)
        *created = false;
    if (make_name(name, kind, id) != 0)
        return NULL;
    struct media_index *idx = media_registry_get(reg, kind, id);
    if (idx)
        return idx;
    struct media_index *fresh = create(reg, kind, id, true); /* file I/O outside the lock */
    if (!fresh)
        return NULL;
    return insert(reg, name, fresh, created);
}

struct media_index *media_registry_open(struct media_registry *reg, const char *kind, const char *id)
{
    char name[84], path[512];
    if (make_name(name, kind, id) != 0)
        return NULL;
    struct media_index *idx = media_registry_get(reg, kind, id);
    if (idx || strcmp(kind, "rooms") != 0 || !reg->o.store)
        return idx;
    struct stat st;
    snprintf(path, sizeof(path), "%s/hls/%s/seg/index.log", segment_store_root(reg->o.store), name);
    if (stat(path, &st) != 0)
        return NULL;
    struct media_index *fresh = create(reg, kind, id, true);
    if (!fresh)
        return NULL;
    struct media_index_stats s;
    media_index_get_stats(fresh, &s);
    if (s.segments_total == 0) {
        media_index_unref(fresh);
        return NULL;
    }
    return insert(reg, name, fresh, NULL);
}

static struct media_index *unlink_locked(struct media_registry *reg, const char *name)
{
    struct reg_entry **pp = find_locked(reg, name);
    struct reg_entry *e = *pp;
    if (!e)
        return NULL;
    *pp = e->next;
    reg->count--;
    struct media_index *idx = e->idx;
    free(e);
    return idx;
}

int media_registry_remove(struct media_registry *reg, const char *kind, const char *id)
{
    char name[84];
    if (make_name(name, kind, id) != 0)
        return -1;
    pthread_mutex_lock(&reg->mu);
    struct media_index *idx = unlink_locked(reg, name);
    pthread_mutex_unlock(&reg->mu);
    if (!idx)
        return -1;
    media_index_unref(idx);
    return 0;
}

static bool tomb_has_locked(struct media_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->ntomb; i++)
        if (strcmp(reg->tomb[i], name) == 0)
            return true;
    return false;
}

void media_registry_mark_gone(struct media_registry *reg, const char *kind, const char *id)
{
    char name[84];
    if (make_name(name, kind, id) != 0)
        return;
    pthread_mutex_lock(&reg->mu);
    struct media_index *idx = unlink_locked(reg, name);
    if (!tomb_has_locked(reg, name)) {
        if (reg->ntomb < reg->o.max_tombstones) {
            snprintf(reg->tomb[reg->ntomb++], 84, "%s", name);
        } else {
            snprintf(reg->tomb[reg->tomb_head], 84, "%s", name);
            reg->tomb_head = (reg->tomb_head + 1) % reg->o.max_tombstones;
        }
    }
    pthread_mutex_unlock(&reg->mu);
    media_index_unref(idx);
}

bool media_registry_is_gone(struct media_registry *reg, const char *kind, const char *id)
{
    char name[84];
    if (make_name(name, kind, id) != 0)
        return false;
    pthread_mutex_lock(&reg->mu);
    bool gone = tomb_has_locked(reg, name);
    pthread_mutex_unlock(&reg->mu);
    return gone;
}

size_t media_registry_foreach(struct media_registry *reg, void (*fn)(void *arg, struct media_index *idx), void *arg)
{
    pthread_mutex_lock(&reg->mu);
    size_t n = reg->count, k = 0;
    struct media_index **all = malloc((n ? n : 1) * sizeof(*all));
    if (!all) {
        pthread_mutex_unlock(&reg->mu);
        return 0;
    }
    for (size_t b = 0; b < REG_BUCKETS; b++)
        for (struct reg_entry *e = reg->buckets[b]; e; e = e->next)
            all[k++] = media_index_ref(e->idx);
    pthread_mutex_unlock(&reg->mu);
    for (size_t i = 0; i < k; i++) {
        fn(arg, all[i]);
        media_index_unref(all[i]);
    }
    free(all);
    return k;
}

size_t media_registry_count(struct media_registry *reg)
{
    pthread_mutex_lock(&reg->mu);
    size_t n = reg->count;
    pthread_mutex_unlock(&reg->mu);
    return n;
}

void media_registry_set_notify(struct media_registry *reg, media_index_notify_fn fn, void *arg)
{
    pthread_mutex_lock(&reg->mu);
    reg->notify_fn = fn;
    reg->notify_arg = arg;
    for (size_t b = 0; b < REG_BUCKETS; b++)
        for (struct reg_entry *e = reg->buckets[b]; e; e = e->next)
            media_index_set_notify(e->idx, fn, arg);
    pthread_mutex_unlock(&reg->mu);
}
