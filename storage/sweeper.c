/* sweeper.c — recording / room expiry and orphan cleanup (see sweeper.h). */
#include "storage/sweeper.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "storage/db.h"
#include "storage/file_store.h"

#define SWEEP_DEFAULT_BATCH 100
#define SWEEP_MAX_ORPHAN_CANDIDATES 10000

struct sweep_ctx {
    PGconn *c;
    const struct sweeper_config *cfg;
    struct sweep_report *rep;
    char actor[160];
    char ttl[16], grace[16], batch[16];
    char *err;
    size_t errlen;
};

static void set_err(struct sweep_ctx *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct sweep_ctx *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->errlen, fmt, ap);
    va_end(ap);
}

static int exec_cmd(struct sweep_ctx *s, const char *sql)
{
    PGresult *r = db_exec(s->c, "sweeper", sql, 0, NULL, NULL);
    if (!r) {
        set_err(s, "sweeper: %s failed", sql);
        return -1;
    }
    PQclear(r);
    return 0;
}

static void rollback(struct sweep_ctx *s)
{
    PQclear(PQexec(s->c, "ROLLBACK"));
}

/* Growable "{1,2,3}" array literal for a bigint[] / text[] parameter. */
struct arr {
    char *buf;
    size_t len, cap;
    int n;
};

static int arr_add(struct arr *a, const char *item)
{
    size_t need = a->len + strlen(item) + 3;
    if (need > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        while (cap < need)
            cap *= 2;
        char *p = realloc(a->buf, cap);
        if (!p)
            return -1;
        a->buf = p;
        a->cap = cap;
    }
    a->len += (size_t)sprintf(a->buf + a->len, "%s%s", a->n ? "," : "{", item);
    a->n++;
    return 0;
}

static const char *arr_done(struct arr *a)
{
    if (!a->n)
        return "{}";
    sprintf(a->buf + a->len, "}");
    return a->buf;
}

static void arr_free(struct arr *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/* Removes a file (and its finalizer .tmp); a missing file is success. */
static int remove_recording_file(struct sweep_ctx *s, const char *rel)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    if (file_store_join(path, sizeof path, s->cfg->data_dir, rel) != 0) {
        log_warn("sweeper: refusing recording path \"%s\"", rel);
        return -1;
    }
    if (unlink(path) == 0)
        s->rep->files_deleted++;
    else if (errno != ENOENT) {
        log_warn("sweeper: unlink %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (unlink(tmp) == 0)
        s->rep->files_deleted++;
    return 0;
}

/* --- 1. expiry ------------------------------------------------------------ */

static int step_expiry(struct sweep_ctx *s)
{
    const char *p[1] = {s->ttl};
    PGresult *r = db_exec(
        s->c, "sweeper_expiry",
        "UPDATE recordings r"
        "   SET expires_at = v.ended_at + make_interval(secs => COALESCE(a.recording_ttl_sec, $1::int))"
        "  FROM video_rooms v JOIN apps a ON a.id = v.app_id"
        " WHERE r.expires_at IS NULL AND v.id = r.video_room_id AND v.ended_at IS NOT NULL",
        1, p, NULL);
    if (!r) {
        set_err(s, "sweeper: storing expires_at failed");
        return -1;
    }
    s->rep->expiry_set += atoi(PQcmdTuples(r));
    PQclear(r);
    return 0;
}

/* --- batches (steps 2 and 3) ------------------------------------------------- */

/* Rolls the batch's transaction back and stores err; returns -1. */
static int abort_batch(struct sweep_ctx *s, const char *err)
{
    rollback(s);
    set_err(s, "%s", err);
    return -1;
}

/* Reads the update statement's count (first column) into *updated and frees
 * r; -1 when the statement failed (r NULL). */
static int take_count(PGresult *r, int *updated)
{
    if (!r)
        return -1;
    *updated = (int)db_get_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* Ends a batch: rc < 0 aborts it with err; otherwise commits and adds
 * updated to *total. Returns n (rows claimed), or -1. */
static int end_batch(struct sweep_ctx *s, int rc, const char *err, int updated, int *total, int n)
{
    if (rc < 0)
        return abort_batch(s, err);
    if (exec_cmd(s, "COMMIT") != 0)
        return -1;
    *total += updated;
    return n;
}

/* One batch: returns rows claimed (>= 0), or -1. *updated gets rows swept. */
typedef int (*batch_fn)(struct sweep_ctx *s, int *updated);

/* Runs batches until one is short or sweeps nothing. */
static int run_batches(struct sweep_ctx *s, batch_fn batch)
{
    int size = atoi(s->batch);
    for (;;) {
        int updated;
        int n = batch(s, &updated);
        if (n < 0)
            return -1;
        /* A full batch that made progress: there may be more. */
        if (n < size || updated == 0)
            return 0;
    }
}

/* --- 2. recordings ----------------------------------------------------------- */

static int recordings_batch(struct sweep_ctx *s, int *updated)
{
    *updated = 0;
    if (exec_cmd(s, "BEGIN") != 0)
        return -1;
    const char *p[2] = {s->grace, s->batch};
    PGresult *r = db_exec(
        s->c, "sweeper_recordings",
        "SELECT r.id, r.path, r.status FROM recordings r"
        " WHERE r.swept_at IS NULL AND r.expires_at <= now()"
        "   AND (r.status IN ('READY', 'FAILED')"
        "        OR (r.status = 'PROCESSING'"
        "            AND r.last_modified_at < now() - make_interval(secs => $1::int)))"
        " ORDER BY r.expires_at, r.id LIMIT $2::int FOR UPDATE SKIP LOCKED",
        2, p, NULL);
    if (!r)
        return abort_batch(s, "sweeper: selecting expired recordings failed");
    int n = PQntuples(r);
    struct arr ids = {0}, olds = {0};
    int rc = n;
    for (int i = 0; i < n; i++) {
        if (remove_recording_file(s, db_get_str(r, i, 1)) != 0) {
            s->rep->errors++;
            continue; /* row stays; the next pass retries */
        }
        if (arr_add(&ids, db_get_str(r, i, 0)) != 0 || arr_add(&olds, db_get_str(r, i, 2)) != 0) {
            rc = -1;
            break;
        }
    }
    PQclear(r);
    if (rc >= 0 && ids.n) {
        const char *q[3] = {arr_done(&ids), arr_done(&olds), s->actor};
        r = db_exec(
            s->c, "sweeper_recordings_mark",
            "WITH x AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS t(id, old)),"
            " u AS ("
            "  UPDATE recordings r SET status = CASE WHEN r.status = 'FAILED' THEN 'FAILED' ELSE 'EXPIRED' END,"
            "         swept_at = now(), last_modified_at = now()"
            "    FROM x WHERE r.id = x.id"
            "  RETURNING r.id, r.app_id, r.video_room_id, r.status, r.filename, x.old),"
            " ev AS ("
            "  INSERT INTO events (app_id, video_room_id, type, from_state, to_state, actor, data)"
            "  SELECT app_id, video_room_id, 'recording_state', old, status, $3,"
            "         jsonb_build_object('recordingId', id, 'filename', filename, 'swept', true)"
            "    FROM u RETURNING id, app_id),"
            " wh AS (INSERT INTO webhook_deliveries (app_id, event_id)"
            "        SELECT ev.app_id, ev.id FROM ev JOIN apps a ON a.id = ev.app_id"
            "         WHERE a.webhook_url IS NOT NULL)"
            " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ev)",
            3, q, NULL);
        if (take_count(r, updated) != 0)
            rc = -1;
    }
    arr_free(&ids);
    arr_free(&olds);
    return end_batch(s, rc, "sweeper: marking expired recordings failed", *updated,
                     &s->rep->recordings_expired, n);
}

/* --- 3. rooms ------------------------------------------------------------------ */

static int rooms_batch(struct sweep_ctx *s, int *updated)
{
    *updated = 0;
    if (exec_cmd(s, "BEGIN") != 0)
        return -1;
    const char *p[2] = {s->ttl, s->batch};
    PGresult *r = db_exec(
        s->c, "sweeper_rooms",
        "SELECT v.id, v.app_id FROM video_rooms v JOIN apps a ON a.id = v.app_id"
        " WHERE v.video_room_state = 'ENDED'"
        "   AND v.ended_at + make_interval(secs => COALESCE(a.recording_ttl_sec, $1::int)) <= now()"
        "   AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.video_room_id = v.id"
        "                      AND NOT (r.status = 'EXPIRED'"
        "                               OR (r.status = 'FAILED' AND r.swept_at IS NOT NULL)))"
        " ORDER BY v.ended_at, v.id LIMIT $2::int FOR UPDATE OF v SKIP LOCKED",
        2, p, NULL);
    if (!r)
        return abort_batch(s, "sweeper: selecting rooms to archive failed");
    int n = PQntuples(r), rc = n;
    struct arr ids = {0};
    for (int i = 0; i < n; i++) {
        char rel[64], path[PATH_MAX];
        int64_t id = db_get_i64(r, i, 0);
        uint64_t removed = 0;
        if (file_store_room_hls_relpath(rel, sizeof rel, id) != 0 ||
            file_store_join(path, sizeof path, s->cfg->data_dir, rel) != 0)
            continue;
        if (file_store_remove_tree(path, &removed) != 0) {
            log_warn("sweeper: removing %s: %s", path, strerror(errno));
            s->rep->files_deleted += removed;
            s->rep->errors++;
            continue;
        }
        s->rep->files_deleted += removed;
        /* The room's recordings folder is empty now (all rows swept). */
        char recdir[PATH_MAX];
        snprintf(rel, sizeof rel, "recordings/%" PRId64 "/%" PRId64, db_get_i64(r, i, 1), id);
        if (file_store_join(recdir, sizeof recdir, s->cfg->data_dir, rel) == 0)
            rmdir(recdir);
        if (arr_add(&ids, db_get_str(r, i, 0)) != 0) {
            rc = -1;
            break;
        }
    }
    PQclear(r);
    if (rc >= 0 && ids.n) {
        const char *q[2] = {arr_done(&ids), s->actor};
        r = db_exec(
            s->c, "sweeper_rooms_archive",
            "WITH u AS ("
            "  UPDATE video_rooms SET video_room_state = 'ARCHIVED', archived_at = now(),"
            "         last_modified_at = now()"
            "   WHERE id = ANY($1::bigint[]) AND video_room_state = 'ENDED' RETURNING id, app_id),"
            " ev AS ("
            "  INSERT INTO events (app_id, video_room_id, type, from_state, to_state, actor)"
            "  SELECT app_id, id, 'video_room_state', 'ENDED', 'ARCHIVED', $2 FROM u RETURNING id, app_id),"
            " wh AS (INSERT INTO webhook_deliveries (app_id, event_id)"
            "        SELECT ev.app_id, ev.id FROM ev JOIN apps a ON a.id = ev.app_id"
            "         WHERE a.webhook_url IS NOT NULL),"
            " n AS (SELECT pg_notify('castgate', json_build_object('type', 'room_archived',"
            "                     'roomId', id, 'keyId', NULL, 'node', NULL)::text) FROM u)"
            " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ev), (SELECT count(*) FROM n)",
            2, q, NULL);
        if (take_count(r, updated) != 0)
            rc = -1;
    }
    arr_free(&ids);
    return end_batch(s, rc, "sweeper: archiving rooms failed", *updated, &s->rep->rooms_archived,
                     n);
}

/* --- 4. orphans --------------------------------------------------------------- */

struct orphan {
    char rel[160];      /* relative to data_dir */
    int64_t id;         /* recording id / room id parsed from the name; 0 = none */
    bool tmp;           /* a finalizer .tmp */
    bool dir;           /* a folder (room HLS folder, or unexpected) */
};

struct orphans {
    struct orphan *v;
    int n, cap;
};

static int orphans_add(struct orphans *o, const struct orphan *x)
{
    if (o->n >= SWEEP_MAX_ORPHAN_CANDIDATES)
        return -1; /* enough for one pass */
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        struct orphan *p = realloc(o->v, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        o->v = p;
        o->cap = cap;
    }
    o->v[o->n++] = *x;
    return 0;
}

/* Digits only, no leading zero, fits int64: the id; else 0. */
static int64_t parse_id(const char *s, size_t n)
{
    if (n == 0 || n > 18 || s[0] == '0')
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "." or "..". */
static bool is_dot_entry(const char *name)
{
    return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

static bool old_enough(const struct stat *st, time_t now, int grace)
{
    return now - st->st_mtime >= grace;
}

/* dir/name into path, lstat'ed into *st (a link is not followed). false when
 * the path does not fit or the entry is gone. */
static bool stat_entry(const char *dir, const char *name, char path[PATH_MAX], struct stat *st)
{
    return snprintf(path, PATH_MAX, "%s/%s", dir, name) < PATH_MAX && lstat(path, st) == 0;
}

/* Collects candidates under recordings/{app}/{room}/: files old enough. */
static void scan_recordings(struct sweep_ctx *s, struct orphans *out, time_t now)
{
    char root[PATH_MAX];
    if (file_store_join(root, sizeof root, s->cfg->data_dir, "recordings") != 0)
        return;
    DIR *d1 = opendir(root);
    if (!d1)
        return;
    struct dirent *a;
    while ((a = readdir(d1)) != NULL) {
        if (is_dot_entry(a->d_name))
            continue;
        char appdir[PATH_MAX];
        struct stat st;
        if (!stat_entry(root, a->d_name, appdir, &st))
            continue;
        if (!S_ISDIR(st.st_mode)) {
            struct orphan o = {.id = 0};
            snprintf(o.rel, sizeof o.rel, "recordings/%.140s", a->d_name);
            if (old_enough(&st, now, s->cfg->orphan_grace_sec))
                orphans_add(out, &o);
            continue;
        }
        DIR *d2 = opendir(appdir);
        if (!d2)
            continue;
        struct dirent *b;
        while ((b = readdir(d2)) != NULL) {
            if (is_dot_entry(b->d_name))
                continue;
            char roomdir[PATH_MAX];
            if (!stat_entry(appdir, b->d_name, roomdir, &st))
                continue;
            if (!S_ISDIR(st.st_mode)) {
                struct orphan o = {.id = 0};
                snprintf(o.rel, sizeof o.rel, "recordings/%.60s/%.60s", a->d_name, b->d_name);
                if (old_enough(&st, now, s->cfg->orphan_grace_sec))
                    orphans_add(out, &o);
                continue;
            }
            DIR *d3 = opendir(roomdir);
            if (!d3)
                continue;
            struct dirent *f;
            while ((f = readdir(d3)) != NULL) {
                if (is_dot_entry(f->d_name))
                    continue;
                char fpath[PATH_MAX];
                if (!stat_entry(roomdir, f->d_name, fpath, &st) ||
                    !old_enough(&st, now, s->cfg->orphan_grace_sec))
                    continue;
                struct orphan o = {.dir = S_ISDIR(st.st_mode)};
                if (snprintf(o.rel, sizeof o.rel, "recordings/%s/%s/%s", a->d_name, b->d_name,
                             f->d_name) >= (int)sizeof o.rel)
                    continue;
                size_t nl = strlen(f->d_name);
                if (nl > 8 && strcmp(f->d_name + nl - 8, ".mp4.tmp") == 0) {
                    o.tmp = true;
                    o.id = parse_id(f->d_name, nl - 8);
                } else if (nl > 4 && strcmp(f->d_name + nl - 4, ".mp4") == 0)
                    o.id = parse_id(f->d_name, nl - 4);
                if (o.dir)
                    o.id = 0;
                orphans_add(out, &o);
            }
            closedir(d3);
        }
        closedir(d2);
    }
    closedir(d1);
}

/* Collects hls/rooms/{name} folders (and stray files) old enough. */
static void scan_hls_rooms(struct sweep_ctx *s, struct orphans *out, time_t now)
{
    char root[PATH_MAX];
    if (file_store_join(root, sizeof root, s->cfg->data_dir, "hls/rooms") != 0)
        return;
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (is_dot_entry(e->d_name))
            continue;
        char path[PATH_MAX];
        struct stat st;
        if (!stat_entry(root, e->d_name, path, &st) ||
            !old_enough(&st, now, s->cfg->orphan_grace_sec))
            continue;
        struct orphan o = {.dir = S_ISDIR(st.st_mode)};
        if (snprintf(o.rel, sizeof o.rel, "hls/rooms/%s", e->d_name) >= (int)sizeof o.rel)
            continue;
        o.id = o.dir ? parse_id(e->d_name, strlen(e->d_name)) : 0;
        orphans_add(out, &o);
    }
    closedir(d);
}

static int remove_orphan(struct sweep_ctx *s, const struct orphan *o)
{
    char path[PATH_MAX];
    if (file_store_join(path, sizeof path, s->cfg->data_dir, o->rel) != 0)
        return -1;
    uint64_t removed = 0;
    int rc = file_store_remove_tree(path, &removed);
    s->rep->files_deleted += removed;
    if (rc != 0) {
        log_warn("sweeper: removing orphan %s: %s", path, strerror(errno));
        s->rep->errors++;
        return -1;
    }
    s->rep->orphans_removed++;
    log_info("sweeper: orphan removed path=%s", o->rel);
    return 0;
}

/* Looks up the rows named by the candidates' ids (id = ANY($1)); the query's
 * first column is the id. NULL with s->err set when it fails. */
static PGresult *orphans_lookup(struct sweep_ctx *s, const struct orphans *o, const char *label,
                                const char *sql)
{
    struct arr ids = {0};
    char buf[24];
    for (int i = 0; i < o->n; i++)
        if (o->v[i].id > 0) {
            snprintf(buf, sizeof buf, "%" PRId64, o->v[i].id);
            arr_add(&ids, buf);
        }
    const char *p[1] = {arr_done(&ids)};
    PGresult *r = db_exec(s->c, label, sql, 1, p, NULL);
    arr_free(&ids);
    if (!r)
        set_err(s, "sweeper: orphan lookup failed");
    return r;
}

/* The row of r whose first column is id (> 0), or -1. */
static int find_row(const PGresult *r, int64_t id)
{
    for (int j = 0; id > 0 && j < PQntuples(r); j++)
        if (db_get_i64(r, j, 0) == id)
            return j;
    return -1;
}

static int step_orphans(struct sweep_ctx *s)
{
    time_t now = time(NULL);
    struct orphans rec = {0}, hls = {0};
    scan_recordings(s, &rec, now);
    scan_hls_rooms(s, &hls, now);
    int rc = 0;

    if (rec.n) {
        PGresult *r = orphans_lookup(s, &rec, "sweeper_orphans_rec",
                                     "SELECT id, path, status, swept_at IS NOT NULL FROM recordings"
                                     " WHERE id = ANY($1::bigint[])");
        if (!r) {
            rc = -1;
        } else {
            for (int i = 0; i < rec.n; i++) {
                const struct orphan *o = &rec.v[i];
                int row = find_row(r, o->id);
                bool keep = false;
                if (row >= 0) {
                    const char *path = db_get_str(r, row, 1), *status = db_get_str(r, row, 2);
                    bool swept = strcmp(db_get_str(r, row, 3), "t") == 0;
                    char want[300];
                    snprintf(want, sizeof want, "%s%s", path, o->tmp ? ".tmp" : "");
                    if (strcmp(want, o->rel) == 0) {
                        if (o->tmp)
                            keep = strcmp(status, "PROCESSING") == 0; /* a finalize may be running */
                        else
                            keep = strcmp(status, "EXPIRED") != 0 && !swept;
                    }
                    /* RECORDING rows are never touched, whatever the name says. */
                    if (strcmp(status, "RECORDING") == 0)
                        keep = true;
                }
                if (!keep)
                    remove_orphan(s, o);
            }
            PQclear(r);
        }
    }

    if (rc == 0 && hls.n) {
        PGresult *r = orphans_lookup(s, &hls, "sweeper_orphans_hls",
                                     "SELECT id, video_room_state FROM video_rooms"
                                     " WHERE id = ANY($1::bigint[])");
        if (!r) {
            rc = -1;
        } else {
            for (int i = 0; i < hls.n; i++) {
                const struct orphan *o = &hls.v[i];
                int row = find_row(r, o->id);
                bool keep = row >= 0 && strcmp(db_get_str(r, row, 1), "ARCHIVED") != 0;
                if (!keep)
                    remove_orphan(s, o);
            }
            PQclear(r);
        }
    }
    free(rec.v);
    free(hls.v);
    return rc;
}

/* --- the pass ------------------------------------------------------------------ */

int sweeper_run_once(PGconn *c, const struct sweeper_config *cfg, struct sweep_report *out,
                     char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct sweep_ctx s = {.c = c, .cfg = cfg, .rep = out, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = 0;
    snprintf(s.actor, sizeof s.actor, "sweeper:%s", cfg->node_id);
    snprintf(s.ttl, sizeof s.ttl, "%d", cfg->recording_ttl_sec);
    snprintf(s.grace, sizeof s.grace, "%d", cfg->orphan_grace_sec);
    snprintf(s.batch, sizeof s.batch, "%d", cfg->batch > 0 ? cfg->batch : SWEEP_DEFAULT_BATCH);
    int rc = 0;
    if (step_expiry(&s) != 0 || run_batches(&s, recordings_batch) != 0 ||
        run_batches(&s, rooms_batch) != 0 || step_orphans(&s) != 0)
        rc = -1;
    metrics_add(METRIC_SWEEPER_RUNS_TOTAL, 1);
    metrics_add(METRIC_SWEEPER_DELETED_TOTAL, (long long)out->files_deleted);
    return rc;
}

/* --- the thread ----------------------------------------------------------------- */

struct sweeper {
    char conninfo[1024];
    char data_dir[PATH_MAX];
    char node_id[128];
    struct sweeper_config cfg;
    int interval_sec;
    PGconn *conn;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    uint64_t passes;
};

static void sweeper_pass(struct sweeper *s)
{
    char err[512];
    if (s->conn && PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    if (!s->conn) {
        s->conn = db_connect(s->conninfo, err, sizeof err);
        if (!s->conn) {
            log_warn("sweeper: %s", err);
            return;
        }
    }
    struct sweep_report rep;
    long long t0 = loop_now_ms();
    if (sweeper_run_once(s->conn, &s->cfg, &rep, err, sizeof err) != 0)
        log_warn("sweeper: pass incomplete: %s", err);
    if (rep.recordings_expired || rep.rooms_archived || rep.orphans_removed || rep.errors)
        log_info("sweeper: pass expired=%d archived=%d orphans=%d files=%llu errors=%d ms=%lld",
                 rep.recordings_expired, rep.rooms_archived, rep.orphans_removed,
                 (unsigned long long)rep.files_deleted, rep.errors, loop_now_ms() - t0);
    else
        log_debug("sweeper: pass, nothing to do ms=%lld", loop_now_ms() - t0);
}

static void *sweeper_main(void *arg)
{
    struct sweeper *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        pthread_mutex_unlock(&s->mu);
        sweeper_pass(s);
        pthread_mutex_lock(&s->mu);
        s->passes++;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += s->interval_sec;
        while (!s->stopping) {
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

struct sweeper *sweeper_start(const char *conninfo, const struct sweeper_config *cfg,
                              int interval_sec, char *err, size_t errlen)
{
    struct sweeper *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "sweeper: out of memory");
        return NULL;
    }
    snprintf(s->conninfo, sizeof s->conninfo, "%s", conninfo);
    snprintf(s->data_dir, sizeof s->data_dir, "%s", cfg->data_dir);
    snprintf(s->node_id, sizeof s->node_id, "%s", cfg->node_id);
    s->cfg = *cfg;
    s->cfg.data_dir = s->data_dir;
    s->cfg.node_id = s->node_id;
    s->interval_sec = interval_sec > 0 ? interval_sec : 60;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_create(&s->thread, NULL, sweeper_main, s) != 0) {
        snprintf(err, errlen, "sweeper: cannot start thread");
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    pthread_setname_np(s->thread, "sweeper");
    return s;
}

uint64_t sweeper_passes(struct sweeper *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->passes;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void sweeper_stop(struct sweeper *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->conn)
        PQfinish(s->conn);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
