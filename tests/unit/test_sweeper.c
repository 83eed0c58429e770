/* test_sweeper.c — recordings SQL, the finalizer thread and the sweeper
 * against the real PostgreSQL (DATABASE_URL; when unset, a local cluster is
 * started with scripts/pg.sh under var/test, as `make test` does).
 *
 * Time is never waited for: rows are written with times in the past
 * (`now() - interval …`), e.g. a room that ended 21 s ago in an app whose
 * recording_ttl_sec is 20 has expired recordings right now. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/loop.h"
#include "storage/apps.h"
#include "storage/db.h"
#include "storage/file_store.h"
#include "storage/finalizer.h"
#include "storage/migrate.h"
#include "storage/recordings.h"
#include "storage/sweeper.h"

static char g_conninfo[1024];
static bool g_started_pg;
static PGconn *g_c;
static char g_dir[PATH_MAX];
static int g_seq;

/* --- helpers ------------------------------------------------------------------ */

static void fmtbuf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fmtbuf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* Runs SQL built from trusted test values; returns the first column of the
 * first row as int64 (0 when no row). Fails the test on error. */
static int64_t sqlv(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t sqlv(const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    PGresult *r = db_exec(g_c, "test", q, 0, NULL, NULL);
    if (!r)
        fail_msg("SQL failed: %s", q);
    int64_t v = PQntuples(r) > 0 && PQnfields(r) > 0 ? db_get_i64(r, 0, 0) : 0;
    PQclear(r);
    return v;
}

/* First column of the first row as text (static buffer). */
static const char *sqls(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *sqls(const char *fmt, ...)
{
    static char out[512];
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    PGresult *r = db_exec(g_c, "test", q, 0, NULL, NULL);
    if (!r)
        fail_msg("SQL failed: %s", q);
    const char *v = PQntuples(r) > 0 ? db_get_str(r, 0, 0) : NULL;
    fmtbuf(out, sizeof out, "%s", v ? v : "(null)");
    PQclear(r);
    return out;
}

struct fixture {
    int64_t app, member, room;
};

/* An app with recording_ttl_sec = ttl, a member and a room in `state` that
 * ended `ended_ago` seconds ago (ignored for LIVE). */
static struct fixture make_room(int ttl, const char *state, int ended_ago)
{
    struct fixture f;
    struct app_credentials cred;
    char err[256], name[64];
    fmtbuf(name, sizeof name, "sweeper-test-%d-%d", (int)getpid(), ++g_seq);
    assert_int_equal(apps_create(g_c, name, &cred, err, sizeof err), 0);
    f.app = cred.app_id;
    sqlv("UPDATE apps SET recording_ttl_sec = %d WHERE id = %" PRId64, ttl, f.app);
    f.member = sqlv("INSERT INTO members (app_id, app_user_id) VALUES (%" PRId64 ", 'u%d') RETURNING id",
                    f.app, g_seq);
    bool ended = strcmp(state, "ENDED") == 0 || strcmp(state, "ARCHIVED") == 0;
    char ended_sql[64];
    fmtbuf(ended_sql, sizeof ended_sql, ended ? "now() - make_interval(secs => %d)" : "NULL", ended_ago);
    f.room = sqlv("INSERT INTO video_rooms (app_id, member_id, type, scheduled_at, video_room_state,"
                  " started_at, ended_at) VALUES (%" PRId64 ", %" PRId64 ", 'BROADCAST_RTMP', now(),"
                  " '%s', %s, %s) RETURNING id",
                  f.app, f.member, state,
                  strcmp(state, "SCHEDULED") ? "now() - interval '100000 seconds'" : "NULL", ended_sql);
    return f;
}

static int64_t make_recording(const struct fixture *f, const char *status, const char *expires_sql,
                              const char *modified_sql)
{
    int64_t id = sqlv("SELECT nextval(pg_get_serial_sequence('recordings', 'id'))");
    sqlv("INSERT INTO recordings (id, app_id, video_room_id, node_id, status, failure_reason, filename,"
         " path, expires_at, last_modified_at) VALUES (%" PRId64 ", %" PRId64 ", %" PRId64
         ", 'test-node', '%s', %s, 'r%" PRId64 ".mp4', 'recordings/%" PRId64 "/%" PRId64 "/%" PRId64
         ".mp4', %s, %s)",
         id, f->app, f->room, status, strcmp(status, "FAILED") == 0 ? "'disk full'" : "NULL", id, f->app,
         f->room, id, expires_sql, modified_sql);
    return id;
}

static void write_file(const char *rel, int age_sec)
{
    char path[PATH_MAX];
    fmtbuf(path, sizeof path, "%s/%s", g_dir, rel);
    assert_int_equal(file_store_mkdir_parent(path), 0);
    assert_int_equal(file_store_write_atomic(path, "data", 4), 0);
    if (age_sec > 0) {
        struct timeval tv[2];
        gettimeofday(&tv[0], NULL);
        tv[0].tv_sec -= age_sec;
        tv[1] = tv[0];
        assert_int_equal(utimes(path, tv), 0);
    }
}

static void age_dir(const char *rel, int age_sec)
{
    char path[PATH_MAX];
    fmtbuf(path, sizeof path, "%s/%s", g_dir, rel);
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= age_sec;
    tv[1] = tv[0];
    assert_int_equal(utimes(path, tv), 0);
}

static bool exists(const char *rel)
{
    char path[PATH_MAX];
    fmtbuf(path, sizeof path, "%s/%s", g_dir, rel);
    struct stat st;
    return lstat(path, &st) == 0;
}

static void rec_rel(char *out, size_t n, const struct fixture *f, int64_t id, const char *suffix)
{
    fmtbuf(out, n, "recordings/%" PRId64 "/%" PRId64 "/%" PRId64 ".mp4%s", f->app, f->room, id, suffix);
}

static struct sweeper_config sweep_cfg(void)
{
    struct sweeper_config sc = {
        .data_dir = g_dir,
        .node_id = "test-node",
        .recording_ttl_sec = 21600,
        .orphan_grace_sec = 3600,
        .batch = 7, /* small: several batches per pass */
    };
    return sc;
}

static struct sweep_report sweep(void)
{
    struct sweeper_config sc = sweep_cfg();
    struct sweep_report rep;
    char err[256];
    assert_int_equal(sweeper_run_once(g_c, &sc, &rep, err, sizeof err), 0);
    return rep;
}

/* --- setup ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    assert_int_equal(loop_global_init(), 0);
    const char *url = getenv("DATABASE_URL");
    if (url && *url)
        fmtbuf(g_conninfo, sizeof g_conninfo, "%s", url);
    else {
        /* As `make test` does for the e2e tests (scripts/test.sh). */
        FILE *p = popen("CASTGATE_PG_FAST=1 sh scripts/pg.sh start var/test 2>&1 | tail -n 1", "r");
        char line[1024] = "";
        if (!p || !fgets(line, sizeof line, p)) {
            if (p)
                pclose(p);
            fprintf(stderr, "test_sweeper: no DATABASE_URL and no local PostgreSQL\n");
            return -1;
        }
        pclose(p);
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "postgresql://", 13) != 0) {
            fprintf(stderr, "test_sweeper: pg.sh: %s\n", line);
            return -1;
        }
        fmtbuf(g_conninfo, sizeof g_conninfo, "%s", line);
        g_started_pg = true;
    }
    char err[512];
    g_c = db_connect(g_conninfo, err, sizeof err);
    if (!g_c) {
        fprintf(stderr, "test_sweeper: %s\n", err);
        return -1;
    }
    if (migrate_apply(g_c, err, sizeof err) < 0) {
        fprintf(stderr, "test_sweeper: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(g_c);
    if (g_started_pg)
        (void)!system("sh scripts/pg.sh stop var/test");
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    fmtbuf(g_dir, sizeof g_dir, "%s/castgate-test-sweeper.XXXXXX", tmp);
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    file_store_remove_tree(g_dir, NULL);
    return 0;
}

/* --- tests --------------------------------------------------------------------------- */

/* Table: a recording row (status, expiry, last change), whether its file
 * must be gone after one pass, and the status it must then have. */
struct expiry_case {
    const char *name;
    const char *status;
    const char *expires_sql;
    const char *modified_sql;
    bool file_removed;
    const char *status_after;
    bool swept;
};

static const struct expiry_case expiry_cases[] = {
    {"ready_expired", "READY", "now() - interval '1 second'", "now()", true, "EXPIRED", true},
    {"ready_not_yet", "READY", "now() + interval '1 hour'", "now()", false, "READY", false},
    {"ready_expiry_from_room_ttl", "READY", "NULL", "now()", true, "EXPIRED", true},
    {"failed_expired_keeps_reason", "FAILED", "now() - interval '1 second'", "now()", true, "FAILED", true},
    {"recording_never_touched", "RECORDING", "now() - interval '1 hour'", "now() - interval '3 hours'",
     false, "RECORDING", false},
    {"processing_in_progress_kept", "PROCESSING", "now() - interval '1 second'", "now()", false,
     "PROCESSING", false},
    {"processing_stuck_swept", "PROCESSING", "now() - interval '1 second'", "now() - interval '2 hours'",
     true, "EXPIRED", true},
};
#define NCASES (sizeof expiry_cases / sizeof expiry_cases[0])

static void test_sweeper_expires_recordings_past_expiry_and_nothing_else(void **state)
{
    (void)state;
    /* App TTL 20 s, room ended 21 s ago: its rows without expires_at expire now. */
    struct fixture f = make_room(20, "ENDED", 21);
    int64_t ids[NCASES];
    char rel[NCASES][256];
    for (size_t i = 0; i < NCASES; i++) {
        const struct expiry_case *tc = &expiry_cases[i];
        ids[i] = make_recording(&f, tc->status, tc->expires_sql, tc->modified_sql);
        rec_rel(rel[i], sizeof rel[i], &f, ids[i], "");
        write_file(rel[i], 0);
    }
    struct sweep_report rep = sweep();
    assert_true(rep.recordings_expired >= 4);
    assert_true(rep.expiry_set >= 1);
    for (size_t i = 0; i < NCASES; i++) {
        const struct expiry_case *tc = &expiry_cases[i];
        if (exists(rel[i]) == tc->file_removed)
            fail_msg("case %s: file %s", tc->name, tc->file_removed ? "still there" : "removed");
        const char *st = sqls("SELECT status FROM recordings WHERE id = %" PRId64, ids[i]);
        if (strcmp(st, tc->status_after) != 0)
            fail_msg("case %s: status %s, want %s", tc->name, st, tc->status_after);
        int64_t swept = sqlv("SELECT count(*) FROM recordings WHERE id = %" PRId64 " AND swept_at IS NOT NULL",
                             ids[i]);
        if (swept != (tc->swept ? 1 : 0))
            fail_msg("case %s: swept=%" PRId64, tc->name, swept);
        int64_t ev = sqlv("SELECT count(*) FROM events WHERE type = 'recording_state' AND actor = "
                          "'sweeper:test-node' AND (data->>'recordingId')::bigint = %" PRId64, ids[i]);
        if (ev != (tc->swept ? 1 : 0))
            fail_msg("case %s: %" PRId64 " sweep events", tc->name, ev);
    }
    /* FAILED keeps its reason; the expiry came from the app's 20 s TTL. */
    assert_string_equal(sqls("SELECT failure_reason FROM recordings WHERE id = %" PRId64, ids[3]), "disk full");
    assert_int_equal(sqlv("SELECT count(*) FROM recordings r JOIN video_rooms v ON v.id = r.video_room_id"
                          " WHERE r.id = %" PRId64 " AND r.expires_at = v.ended_at + interval '20 seconds'",
                          ids[2]),
                     1);
    /* The room still has a READY and a RECORDING row: not archived. */
    assert_string_equal(sqls("SELECT video_room_state FROM video_rooms WHERE id = %" PRId64, f.room), "ENDED");

    /* Idempotent: a second pass finds nothing of ours to do. */
    struct sweep_report again = sweep();
    assert_int_equal(again.errors, 0);
    for (size_t i = 0; i < NCASES; i++)
        assert_int_equal(sqlv("SELECT count(*) FROM events WHERE actor = 'sweeper:test-node' AND"
                              " (data->>'recordingId')::bigint = %" PRId64, ids[i]),
                         expiry_cases[i].swept ? 1 : 0);
}

static void test_sweeper_archives_ended_rooms_and_deletes_their_hls_folder(void **state)
{
    (void)state;
    /* due: ended 21 s ago, TTL 20 s, its only recording expired */
    struct fixture due = make_room(20, "ENDED", 21);
    int64_t r1 = make_recording(&due, "READY", "NULL", "now()");
    char rel1[256], hls_due[64];
    rec_rel(rel1, sizeof rel1, &due, r1, "");
    write_file(rel1, 0);
    fmtbuf(hls_due, sizeof hls_due, "hls/rooms/%" PRId64, due.room);
    write_file("hls/rooms/x", 0); /* make the parent */
    char seg[128];
    fmtbuf(seg, sizeof seg, "%s/1/init.mp4", hls_due);
    write_file(seg, 0);
    fmtbuf(seg, sizeof seg, "%s/1/0.m4s", hls_due);
    write_file(seg, 0);
    /* empty: ended 21 s ago with no recordings at all */
    struct fixture empty = make_room(20, "ENDED", 21);
    /* early: ended 10 s ago, TTL 20 s */
    struct fixture early = make_room(20, "ENDED", 10);
    char hls_early[64];
    fmtbuf(hls_early, sizeof hls_early, "hls/rooms/%" PRId64 "/1/0.m4s", early.room);
    write_file(hls_early, 0);
    /* live: never archived */
    struct fixture live = make_room(20, "LIVE", 0);

    struct sweep_report rep = sweep();
    assert_true(rep.rooms_archived >= 2);
    assert_false(exists(rel1));
    assert_false(exists(hls_due));
    assert_true(exists(hls_early));
    char recdir[128];
    fmtbuf(recdir, sizeof recdir, "recordings/%" PRId64 "/%" PRId64, due.app, due.room);
    assert_false(exists(recdir));
    assert_string_equal(sqls("SELECT video_room_state FROM video_rooms WHERE id = %" PRId64, due.room), "ARCHIVED");
    assert_string_equal(sqls("SELECT video_room_state FROM video_rooms WHERE id = %" PRId64, empty.room), "ARCHIVED");
    assert_string_equal(sqls("SELECT video_room_state FROM video_rooms WHERE id = %" PRId64, early.room), "ENDED");
    assert_string_equal(sqls("SELECT video_room_state FROM video_rooms WHERE id = %" PRId64, live.room), "LIVE");
    assert_int_equal(sqlv("SELECT count(*) FROM video_rooms WHERE id = %" PRId64 " AND archived_at IS NOT NULL",
                          due.room),
                     1);
    assert_int_equal(sqlv("SELECT count(*) FROM events WHERE video_room_id = %" PRId64
                          " AND type = 'video_room_state' AND from_state = 'ENDED' AND to_state = 'ARCHIVED'",
                          due.room),
                     1);
    struct sweep_report again = sweep();
    assert_int_equal(again.errors, 0);
    assert_int_equal(sqlv("SELECT count(*) FROM events WHERE video_room_id = %" PRId64
                          " AND to_state = 'ARCHIVED'", due.room),
                     1);
}

static void test_sweeper_removes_orphans_older_than_grace_only(void **state)
{
    (void)state;
    struct fixture f = make_room(21600, "LIVE", 0);
    int64_t ready = make_recording(&f, "READY", "NULL", "now()");
    int64_t processing = make_recording(&f, "PROCESSING", "NULL", "now()");
    int64_t recording = make_recording(&f, "RECORDING", "NULL", "now()");
    int64_t expired = make_recording(&f, "EXPIRED", "now() - interval '1 day'", "now()");
    char a[256], b[256], c[256], d[256], e[256], g[256], h[256];
    rec_rel(a, sizeof a, &f, ready, "");             /* kept: READY row */
    rec_rel(b, sizeof b, &f, ready, ".tmp");         /* removed: stale finalizer tmp */
    rec_rel(c, sizeof c, &f, processing, ".tmp");    /* kept: finalize may be running */
    rec_rel(d, sizeof d, &f, recording, "");         /* kept: RECORDING never touched */
    rec_rel(e, sizeof e, &f, expired, "");           /* removed: row EXPIRED */
    fmtbuf(g, sizeof g, "recordings/%" PRId64 "/%" PRId64 "/9000000000000001.mp4", f.app, f.room); /* no row */
    fmtbuf(h, sizeof h, "recordings/%" PRId64 "/%" PRId64 "/notes.txt", f.app, f.room);             /* junk */
    const char *old[] = {a, b, c, d, e, g, h};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        write_file(old[i], 7200);
    char fresh[256];
    fmtbuf(fresh, sizeof fresh, "recordings/%" PRId64 "/%" PRId64 "/9000000000000002.mp4", f.app, f.room);
    write_file(fresh, 0); /* no row, but younger than the grace period */

    char live_hls[64], gone_hls[64], odd_hls[64], archived_hls[64];
    struct fixture arch = make_room(20, "ARCHIVED", 100000);
    fmtbuf(live_hls, sizeof live_hls, "hls/rooms/%" PRId64, f.room);
    fmtbuf(gone_hls, sizeof gone_hls, "hls/rooms/9000000000000003");
    fmtbuf(odd_hls, sizeof odd_hls, "hls/rooms/abc");
    fmtbuf(archived_hls, sizeof archived_hls, "hls/rooms/%" PRId64, arch.room);
    const char *dirs[] = {live_hls, gone_hls, odd_hls, archived_hls};
    for (size_t i = 0; i < 4; i++) {
        char seg[128];
        fmtbuf(seg, sizeof seg, "%s/1/0.m4s", dirs[i]);
        write_file(seg, 7200);
        age_dir(dirs[i], 7200);
    }

    struct sweep_report rep = sweep();
    assert_int_equal(rep.errors, 0);
    assert_true(exists(a));
    assert_false(exists(b));
    assert_true(exists(c));
    assert_true(exists(d));
    assert_false(exists(e));
    assert_false(exists(g));
    assert_false(exists(h));
    assert_true(exists(fresh));
    assert_true(exists(live_hls));
    assert_false(exists(gone_hls));
    assert_false(exists(odd_hls));
    assert_false(exists(archived_hls));
    assert_int_equal(rep.orphans_removed, 7);
    /* Rows are left alone by orphan removal. */
    assert_string_equal(sqls("SELECT status FROM recordings WHERE id = %" PRId64, ready), "READY");
}

struct racer {
    struct sweep_report rep;
    int rc;
    pthread_barrier_t *go;
};

static void *race(void *arg)
{
    struct racer *x = arg;
    char err[512];
    PGconn *c = db_connect(g_conninfo, err, sizeof err);
    if (!c) {
        x->rc = -1;
        return NULL;
    }
    struct sweeper_config sc = sweep_cfg();
    pthread_barrier_wait(x->go);
    x->rc = sweeper_run_once(c, &sc, &x->rep, err, sizeof err);
    PQfinish(c);
    return NULL;
}

static void test_two_sweepers_at_once_sweep_each_recording_once(void **state)
{
    (void)state;
    struct fixture f = make_room(20, "ENDED", 3600);
    int64_t first = 0;
    const int n = 240;
    for (int i = 0; i < n; i++) {
        int64_t id = make_recording(&f, "READY", "now() - interval '1 minute'", "now()");
        if (!first)
            first = id;
        char rel[256];
        rec_rel(rel, sizeof rel, &f, id, "");
        write_file(rel, 0);
    }
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    struct racer x = {.go = &go}, y = {.go = &go};
    pthread_t tx, ty;
    pthread_create(&tx, NULL, race, &x);
    pthread_create(&ty, NULL, race, &y);
    pthread_join(tx, NULL);
    pthread_join(ty, NULL);
    pthread_barrier_destroy(&go);
    assert_int_equal(x.rc, 0);
    assert_int_equal(y.rc, 0);
    print_message("racers swept %d + %d\n", x.rep.recordings_expired, y.rep.recordings_expired);
    assert_true(x.rep.recordings_expired + y.rep.recordings_expired >= n);
    assert_int_equal(sqlv("SELECT count(*) FROM recordings WHERE video_room_id = %" PRId64
                          " AND status = 'EXPIRED' AND swept_at IS NOT NULL", f.room),
                     n);
    /* Exactly one sweep event per recording: nobody swept a row twice. */
    assert_int_equal(sqlv("SELECT count(*) FROM (SELECT data->>'recordingId' FROM events WHERE video_room_id = %"
                          PRId64 " AND type = 'recording_state' GROUP BY 1 HAVING count(*) > 1) t", f.room),
                     0);
    assert_int_equal(sqlv("SELECT count(*) FROM events WHERE video_room_id = %" PRId64
                          " AND type = 'recording_state'", f.room),
                     n);
    assert_int_equal(x.rep.errors + y.rep.errors, 0);
    /* and the room, now empty of live rows, was archived exactly once */
    assert_int_equal(sqlv("SELECT count(*) FROM events WHERE video_room_id = %" PRId64
                          " AND to_state = 'ARCHIVED'", f.room),
                     1);
}

static void test_sweeper_thread_sweeps_at_start_and_stops_promptly(void **state)
{
    (void)state;
    struct fixture f = make_room(20, "ENDED", 21);
    int64_t id = make_recording(&f, "READY", "NULL", "now()");
    char rel[256];
    rec_rel(rel, sizeof rel, &f, id, "");
    write_file(rel, 0);
    struct sweeper_config sc = sweep_cfg();
    char err[256];
    struct sweeper *s = sweeper_start(g_conninfo, &sc, 3600, err, sizeof err);
    assert_non_null(s);
    long long deadline = loop_now_ms() + 20000;
    while (sweeper_passes(s) < 1 && loop_now_ms() < deadline)
        usleep(10000);
    assert_true(sweeper_passes(s) >= 1);
    long long t0 = loop_now_ms();
    sweeper_stop(s); /* interrupts the hour-long wait */
    assert_true(loop_now_ms() - t0 < 2000);
    assert_false(exists(rel));
    assert_string_equal(sqls("SELECT status FROM recordings WHERE id = %" PRId64, id), "EXPIRED");
}

static void test_recording_rows_move_through_their_states(void **state)
{
    (void)state;
    struct fixture f = make_room(20, "LIVE", 0);
    sqlv("UPDATE apps SET webhook_url = 'http://127.0.0.1:9/hook' WHERE id = %" PRId64, f.app);
    struct recording_new in = {.room_id = f.room, .node_id = "test-node", .actor = "test"};
    struct recording_row row;
    assert_int_equal(recordings_create(g_c, &in, &row), 0);
    assert_string_equal(row.status, "RECORDING");
    char want[128];
    fmtbuf(want, sizeof want, "recordings/%" PRId64 "/%" PRId64 "/%" PRId64 ".mp4", f.app, f.room, row.id);
    assert_string_equal(row.path, want);
    assert_true(strncmp(row.filename, "room", 4) == 0);
    assert_string_equal(sqls("SELECT is_recording FROM video_rooms WHERE id = %" PRId64, f.room), "t");
    assert_int_equal(sqlv("SELECT count(*) FROM events WHERE video_room_id = %" PRId64
                          " AND type = 'recording_started'", f.room),
                     1);
    /* close (rotation: intent kept) → PROCESSING; closing again is refused */
    assert_int_equal(recordings_close(g_c, row.id, 1000, 2000, false, "test"), 0);
    assert_int_equal(recordings_close(g_c, row.id, 1000, 2000, false, "test"), RECORDINGS_WRONG_STATE);
    assert_string_equal(sqls("SELECT is_recording FROM video_rooms WHERE id = %" PRId64, f.room), "t");
    assert_int_equal(recordings_mark_ready(g_c, row.id, 1234, 5678, 21600, "test"), 0);
    struct recording_row got;
    assert_int_equal(recordings_get(g_c, row.id, 21600, &got), 0);
    assert_string_equal(got.status, "READY");
    assert_int_equal(got.size_bytes, 1234);
    assert_int_equal(got.duration_ms, 5678);
    assert_int_equal(got.expires_at, 0); /* room still live */
    /* a second file, then a failure: the room shows the error and stops */
    struct recording_row row2;
    assert_int_equal(recordings_create(g_c, &in, &row2), 0);
    assert_int_equal(recordings_mark_failed(g_c, row2.id, "write x: No space left on device", "test"), 0);
    assert_string_equal(sqls("SELECT is_recording FROM video_rooms WHERE id = %" PRId64, f.room), "f");
    assert_string_equal(sqls("SELECT recording_error FROM video_rooms WHERE id = %" PRId64, f.room),
                        "write x: No space left on device");
    /* room ends 21 s ago: expiry = ended_at + app TTL 20 s */
    sqlv("UPDATE video_rooms SET video_room_state = 'ENDED', ended_at = now() - interval '21 seconds'"
         " WHERE id = %" PRId64, f.room);
    assert_int_equal(recordings_set_expiry_for_room(g_c, f.room, 21600), 2);
    struct recordings_room room;
    struct recording_row *rows;
    int n;
    assert_int_equal(recordings_list_for_room(g_c, f.app, f.room, 21600, &room, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_true(room.ended);
    assert_true(room.expires_at <= room.now && room.expires_at >= room.now - 5);
    assert_true(room.expires_at_iso[0] != 0);
    free(rows);
    /* every recording event was queued for the app's webhook (API-10) */
    int64_t nev = sqlv("SELECT count(*) FROM events WHERE video_room_id = %" PRId64
                       " AND type LIKE 'recording%%'", f.room);
    assert_int_equal(nev, 5); /* started, stopped, READY, started, FAILED */
    assert_int_equal(sqlv("SELECT count(*) FROM webhook_deliveries w JOIN events e ON e.id = w.event_id"
                          " WHERE e.video_room_id = %" PRId64 " AND e.type LIKE 'recording%%'", f.room),
                     nev);
    /* another app cannot see the room */
    assert_int_equal(recordings_list_for_room(g_c, f.app + 100000000, f.room, 21600, &room, &rows, &n),
                     RECORDINGS_NOT_FOUND);
    /* creating in an ended room, or with recording off, is refused */
    assert_int_equal(recordings_create(g_c, &in, &row), RECORDINGS_WRONG_STATE);
    struct fixture off = make_room(20, "LIVE", 0);
    sqlv("UPDATE video_rooms SET recording = false WHERE id = %" PRId64, off.room);
    in.room_id = off.room;
    assert_int_equal(recordings_create(g_c, &in, &row), RECORDINGS_DISABLED);

    char h[16];
    recordings_format_expires_in(4 * 3600 + 23 * 60 + 59, h, sizeof h);
    assert_string_equal(h, "4h 23m");
    recordings_format_expires_in(59, h, sizeof h);
    assert_string_equal(h, "0m");
}

static void test_recording_start_stop_request_guards_and_notifies(void **state)
{
    (void)state;
    struct fixture live = make_room(20, "LIVE", 0);
    struct fixture sched = make_room(20, "SCHEDULED", 0);
    struct fixture off = make_room(20, "LIVE", 0);
    sqlv("UPDATE video_rooms SET recording = false WHERE id = %" PRId64, off.room);
    char err[256];
    PGconn *l = db_connect(g_conninfo, err, sizeof err);
    assert_non_null(l);
    PQclear(PQexec(l, "LISTEN castgate"));
    bool rec = true;
    assert_int_equal(recordings_request(g_c, live.app, live.room, false, &rec), 0);
    assert_false(rec);
    assert_int_equal(recordings_request(g_c, live.app, live.room, true, &rec), 0);
    assert_true(rec);
    assert_int_equal(recordings_request(g_c, sched.app, sched.room, true, &rec), RECORDINGS_WRONG_STATE);
    assert_int_equal(recordings_request(g_c, off.app, off.room, true, &rec), RECORDINGS_DISABLED);
    assert_int_equal(recordings_request(g_c, sched.app, live.room, true, &rec), RECORDINGS_NOT_FOUND);
    /* the two accepted requests notified, in order; the refused ones did not */
    char mine[64], seen[4][256];
    fmtbuf(mine, sizeof mine, "\"roomId\" : %" PRId64 ",", live.room);
    int got = 0;
    long long deadline = loop_now_ms() + 5000;
    while (got < 2 && loop_now_ms() < deadline) {
        PQconsumeInput(l);
        PGnotify *nf;
        while ((nf = PQnotifies(l)) != NULL) {
            if (strstr(nf->extra, mine) && got < 4)
                fmtbuf(seen[got++], sizeof seen[0], "%s", nf->extra);
            PQfreemem(nf);
        }
        if (got < 2)
            usleep(5000);
    }
    assert_int_equal(got, 2);
    assert_non_null(strstr(seen[0], "\"recording_stop\""));
    assert_non_null(strstr(seen[1], "\"recording_start\""));
    PQfinish(l);
}

/* The finalizer thread with the database: a RECORDING row left by this node
 * (a crash) is recovered, remuxed and marked READY with measured figures;
 * a row whose file is missing becomes FAILED with the reason. */
static void test_finalizer_recovers_rows_left_by_a_crash(void **state)
{
    (void)state;
    struct fixture f = make_room(21600, "LIVE", 0);
    char node[64];
    fmtbuf(node, sizeof node, "fin-node-%d", (int)getpid());
    int64_t good = sqlv("INSERT INTO recordings (app_id, video_room_id, node_id, status, filename, path)"
                        " VALUES (%" PRId64 ", %" PRId64 ", '%s', 'RECORDING', 'x.mp4', 'p') RETURNING id",
                        f.app, f.room, node);
    int64_t missing = sqlv("INSERT INTO recordings (app_id, video_room_id, node_id, status, filename, path)"
                           " VALUES (%" PRId64 ", %" PRId64 ", '%s', 'PROCESSING', 'y.mp4', 'p') RETURNING id",
                           f.app, f.room, node);
    char rel_good[256], rel_missing[256], path[PATH_MAX];
    rec_rel(rel_good, sizeof rel_good, &f, good, "");
    rec_rel(rel_missing, sizeof rel_missing, &f, missing, "");
    sqlv("UPDATE recordings SET path = '%s' WHERE id = %" PRId64, rel_good, good);
    sqlv("UPDATE recordings SET path = '%s' WHERE id = %" PRId64, rel_missing, missing);
    fmtbuf(path, sizeof path, "%s/%s", g_dir, rel_good);
    assert_int_equal(file_store_mkdir_parent(path), 0);
    char cmd[PATH_MAX + 300];
    fmtbuf(cmd, sizeof cmd,
           "ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=25 -t 3 -c:v libx264 -preset ultrafast "
           "-g 25 -movflags frag_keyframe+empty_moov+default_base_moof -f mp4 '%s'", path);
    assert_int_equal(system(cmd), 0);

    struct finalizer_config fc = {.conninfo = g_conninfo, .data_dir = g_dir, .node_id = node,
                                  .recording_ttl_sec = 21600};
    char err[256];
    struct finalizer *fin = finalizer_start(&fc, err, sizeof err);
    assert_non_null(fin);
    assert_int_equal(finalizer_recover(fin, g_c), 2);
    uint64_t done = 0;
    long long deadline = loop_now_ms() + 30000;
    while (done < 2 && loop_now_ms() < deadline) {
        finalizer_counts(fin, &done, NULL);
        usleep(10000);
    }
    finalizer_stop(fin);
    assert_int_equal(done, 2);
    assert_string_equal(sqls("SELECT status FROM recordings WHERE id = %" PRId64, good), "READY");
    int64_t dur = sqlv("SELECT duration_ms FROM recordings WHERE id = %" PRId64, good);
    assert_true(dur >= 2900 && dur <= 3100);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(sqlv("SELECT size_bytes FROM recordings WHERE id = %" PRId64, good), (int64_t)st.st_size);
    assert_string_equal(sqls("SELECT status FROM recordings WHERE id = %" PRId64, missing), "FAILED");
    assert_non_null(strstr(sqls("SELECT failure_reason FROM recordings WHERE id = %" PRId64, missing), "missing"));
    /* the crash-stopped RECORDING row got its recording_stopped event */
    assert_int_equal(sqlv("SELECT count(*) FROM events WHERE type = 'recording_stopped' AND"
                          " (data->>'recordingId')::bigint = %" PRId64, good),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweeper_expires_recordings_past_expiry_and_nothing_else, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_sweeper_archives_ended_rooms_and_deletes_their_hls_folder, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_sweeper_removes_orphans_older_than_grace_only, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_two_sweepers_at_once_sweep_each_recording_once, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_sweeper_thread_sweeps_at_start_and_stops_promptly, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_recording_rows_move_through_their_states, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_recording_start_stop_request_guards_and_notifies, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_finalizer_recovers_rows_left_by_a_crash, test_setup, test_teardown),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
