/* test_state_machine.c — SPEC §2 against a real PostgreSQL (DATABASE_URL;
 * `make test` always sets it, otherwise every test is skipped with a note).
 *
 * Drives the ingest events (bc_ingest_*) and the API events directly, checks
 * the rows, the events log (every transition exactly once, forming a legal
 * chain that ends in the current state) and the NOTIFY payloads, and races
 * many connections against one key and room. Time-based rules (takeover
 * after idle, autoEndAfterSec, maxDurationSec) are driven by moving the
 * stored timestamps back, not by sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "broadcast/state_machine.h"
#include "core/log.h"
#include "core/loop.h"
#include "storage/apps.h"
#include "storage/db.h"
#include "storage/members.h"
#include "storage/migrate.h"

static const char *dburl;
static PGconn *conn;

/* --- helpers -------------------------------------------------------------- */
static PGresult *sql(const char *q, int n, const char *const *p)
{
    PGresult *r = db_exec(conn, "test", q, n, p, NULL);
    if (!r)
        fail_msg("sql failed: %s", q);
    return r;
}

static void sqlx(const char *q, int64_t id)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, id);
    const char *p[1] = {b};
    PQclear(sql(q, 1, p));
}

static char *str1(const char *q, int64_t id)
{
    static char out[256];
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, id);
    const char *p[1] = {b};
    PGresult *r = sql(q, 1, p);
    snprintf(out, sizeof out, "%s", PQntuples(r) && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return out;
}

static int64_t i64_1(const char *q, int64_t id) { return strtoll(str1(q, id), NULL, 10); }

static const char *key_state(int64_t key) { return str1("SELECT stream_key_state FROM stream_keys WHERE id = $1", key); }
static const char *room_state(int64_t room) { return str1("SELECT video_room_state FROM video_rooms WHERE id = $1", room); }

struct fixture {
    int64_t app, member, key, room;
    char key_str[64];
};

static void make_member(struct fixture *f, const char *user)
{
    assert_int_equal(members_create(conn, f->app, user, "Teacher", NULL, &f->member, &f->key), 0);
    snprintf(f->key_str, sizeof f->key_str, "%s", str1("SELECT stream_key FROM stream_keys WHERE id = $1", f->key));
}

static int64_t make_room(const struct fixture *f, const char *extra_cols, const char *extra_vals)
{
    char q[512], a[24], m[24];
    snprintf(q, sizeof q,
             "INSERT INTO video_rooms (app_id, member_id, type, scheduled_at%s)"
             " VALUES ($1, $2, 'BROADCAST_RTMP', now()%s) RETURNING id",
             extra_cols ? extra_cols : "", extra_vals ? extra_vals : "");
    snprintf(a, sizeof a, "%" PRId64, f->app);
    snprintf(m, sizeof m, "%" PRId64, f->member);
    const char *p[2] = {a, m};
    PGresult *r = sql(q, 2, p);
    int64_t id = db_get_i64(r, 0, 0);
    PQclear(r);
    return id;
}

static void setup_fixture(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    struct app_credentials cred;
    char err[256];
    assert_int_equal(apps_create(conn, "state-machine-test", &cred, err, sizeof err), 0);
    f->app = cred.app_id;
    make_member(f, "teacher");
    f->room = make_room(f, NULL, NULL);
}

/* A legal step: some event of the table (bc_key_next or bc_room_next) maps
 * from → to (or a marker row with from == to: reissue, entity deletion). */
static bool legal_step(const char *(*next)(const char *, enum bc_event), const char *from,
                       const char *to)
{
    if (strcmp(from, to) == 0)
        return true;
    for (int ev = BC_EV_PUBLISH; ev <= BC_EV_SWEEP; ev++) {
        const char *n = next(from, (enum bc_event)ev);
        if (n && strcmp(n, to) == 0)
            return true;
    }
    return false;
}

/* The events of one key or room, in order, must chain from `initial` by
 * legal steps to the current state: nothing lost, nothing doubled. Returns
 * the number of state-changing events. */
static int check_chain(bool key, int64_t id, const char *initial)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, id);
    const char *p[1] = {b};
    PGresult *r = sql(key ? "SELECT from_state, to_state FROM events WHERE stream_key_id = $1"
                            " AND type = 'stream_key_state' ORDER BY id"
                          : "SELECT from_state, to_state FROM events WHERE video_room_id = $1"
                            " AND type = 'video_room_state' AND from_state IS NOT NULL ORDER BY id",
                      1, p);
    char cur[32];
    snprintf(cur, sizeof cur, "%s", initial);
    int changes = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *from = PQgetvalue(r, i, 0), *to = PQgetvalue(r, i, 1);
        if (strcmp(from, cur) != 0)
            fail_msg("%s %" PRId64 " event %d: from %s but state was %s", key ? "key" : "room", id, i,
                     from, cur);
        if (!(key ? legal_step(bc_key_next, from, to) : legal_step(bc_room_next, from, to)))
            fail_msg("%s %" PRId64 " event %d: illegal %s -> %s", key ? "key" : "room", id, i, from, to);
        if (strcmp(from, to) != 0)
            changes++;
        snprintf(cur, sizeof cur, "%s", to);
    }
    PQclear(r);
    const char *now = key ? key_state(id) : room_state(id);
    if (strcmp(now, cur) != 0)
        fail_msg("%s %" PRId64 ": events end at %s but state is %s", key ? "key" : "room", id, cur, now);
    return changes;
}

static int count_events(const char *type, int64_t room, int64_t key)
{
    char a[24], b[24];
    snprintf(a, sizeof a, "%" PRId64, room);
    snprintf(b, sizeof b, "%" PRId64, key);
    const char *p[3] = {type, a, b};
    PGresult *r = sql("SELECT count(*) FROM events WHERE type = $1"
                      " AND ($2::bigint = 0 OR video_room_id = $2)"
                      " AND ($3::bigint = 0 OR stream_key_id = $3)",
                      3, p);
    int n = (int)db_get_i64(r, 0, 0);
    PQclear(r);
    return n;
}

/* --- NOTIFY ------------------------------------------------------------------ */
static PGconn *listener;

static void listen_start(void)
{
    char err[256];
    listener = db_connect(dburl, err, sizeof err);
    assert_non_null(listener);
    PQclear(PQexec(listener, "LISTEN castgate"));
}

/* Waits (up to 5 s, on the socket) for a notification of type for
 * key/room (0 = any); drops the others it reads on the way. */
static bool notified(const char *type, int64_t room, int64_t key)
{
    bool found = false;
    long long deadline = loop_now_ms() + 5000;
    while (!found && loop_now_ms() < deadline) {
        PQconsumeInput(listener);
        PGnotify *n;
        bool any = false;
        while ((n = PQnotifies(listener))) {
            any = true;
        json_t *o = json_loads(n->extra, 0, NULL);
        if (o && strcmp(json_string_value(json_object_get(o, "type")), type) == 0 &&
            (!room || json_integer_value(json_object_get(o, "roomId")) == room) &&
            (!key || json_integer_value(json_object_get(o, "keyId")) == key))
            found = true;
        json_decref(o);
        PQfreemem(n);
        }
        if (!found && !any) {
            struct pollfd pfd = {.fd = PQsocket(listener), .events = POLLIN};
            poll(&pfd, 1, 100);
        }
    }
    return found;
}

static void listen_stop(void)
{
    PQfinish(listener);
    listener = NULL;
}

/* --- group setup ------------------------------------------------------------- */

/* Without DATABASE_URL (scripts/test.sh runs the unit tests before it starts
 * PostgreSQL), use the same local test cluster the e2e tests use:
 * `scripts/pg.sh start var/test` (idempotent). Set CASTGATE_TEST_NO_PG=1 to
 * skip instead. Returns the URL or NULL. */
static const char *local_test_database(void)
{
    static char url[512];
    if (getenv("CASTGATE_TEST_NO_PG"))
        return NULL;
    FILE *p = popen("[ -f scripts/pg.sh ] && CASTGATE_PG_FAST=1 sh scripts/pg.sh start var/test"
                    " 2>/dev/null | tail -n 1", "r");
    if (!p)
        return NULL;
    bool ok = fgets(url, sizeof url, p) != NULL;
    int rc = pclose(p);
    if (!ok || rc != 0 || strncmp(url, "postgres", 8) != 0)
        return NULL;
    url[strcspn(url, "\n")] = 0;
    fprintf(stderr, "test_state_machine: DATABASE_URL not set; using %s\n", url);
    return url;
}

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_WARN);
    dburl = getenv("DATABASE_URL");
    if (!dburl || !*dburl)
        dburl = local_test_database();
    if (!dburl) {
        fprintf(stderr, "test_state_machine: DATABASE_URL is not set and scripts/pg.sh could not"
                        " start var/test; skipping the database tests\n");
        return 0;
    }
    char err[512];
    conn = db_connect(dburl, err, sizeof err);
    if (!conn) {
        fprintf(stderr, "test_state_machine: %s\n", err);
        return -1;
    }
    if (migrate_apply(conn, err, sizeof err) < 0) {
        fprintf(stderr, "test_state_machine: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (conn)
        PQfinish(conn);
    return 0;
}

#define NEED_DB()                                                                              \
    do {                                                                                       \
        if (!conn)                                                                             \
            skip();                                                                            \
    } while (0)

/* --- tests ------------------------------------------------------------------- */
static void test_transition_table_matches_spec(void **state)
{
    (void)state;
    static const struct {
        bool key;
        const char *from;
        enum bc_event ev;
        const char *to; /* NULL = illegal */
    } cases[] = {
        {true, "INACTIVE", BC_EV_PUBLISH, "ACTIVE_PREP"},
        {true, "ACTIVE_PREP", BC_EV_FIRST_SEGMENT, "ACTIVE"},
        {true, "ACTIVE_PREP", BC_EV_PUBLISHER_GONE, "INACTIVE"},
        {true, "ACTIVE", BC_EV_PUBLISHER_GONE, "INACTIVE"},
        {true, "ACTIVE", BC_EV_ROOM_START, "ACTIVE_LIVE"},
        {true, "ACTIVE_LIVE", BC_EV_PUBLISHER_GONE, "INACTIVE_LIVE"},
        {true, "INACTIVE_LIVE", BC_EV_PUBLISH, "ACTIVE_LIVE_PREP"},
        {true, "ACTIVE_LIVE_PREP", BC_EV_FIRST_SEGMENT, "ACTIVE_LIVE"},
        {true, "ACTIVE_LIVE_PREP", BC_EV_PUBLISHER_GONE, "INACTIVE_LIVE"},
        {true, "INACTIVE_LIVE", BC_EV_ROOM_END, "INACTIVE"},
        {true, "ACTIVE_LIVE", BC_EV_FORCE_TERMINATE, "INACTIVE"},
        {true, "INACTIVE", BC_EV_FORCE_TERMINATE, "INACTIVE"},
        {true, "INACTIVE", BC_EV_ROOM_START, NULL},
        {true, "ACTIVE_PREP", BC_EV_ROOM_START, NULL},
        {true, "ACTIVE_LIVE", BC_EV_ROOM_END, NULL},
        {true, "ACTIVE", BC_EV_PUBLISH, NULL},
        {true, "INACTIVE", BC_EV_FIRST_SEGMENT, NULL},
        {false, "SCHEDULED", BC_EV_ROOM_START, "LIVE"},
        {false, "LIVE", BC_EV_PUBLISHER_GONE, "LIVE_INACTIVE"},
        {false, "LIVE_INACTIVE", BC_EV_FIRST_SEGMENT, "LIVE"},
        {false, "LIVE_INACTIVE", BC_EV_ROOM_END, "ENDED"},
        {false, "LIVE", BC_EV_FORCE_TERMINATE, "ENDED"},
        {false, "LIVE_INACTIVE", BC_EV_AUTO_END, "ENDED"},
        {false, "LIVE", BC_EV_MAX_DURATION, "ENDED"},
        {false, "ENDED", BC_EV_SWEEP, "ARCHIVED"},
        {false, "LIVE", BC_EV_ROOM_END, NULL},
        {false, "SCHEDULED", BC_EV_ROOM_END, NULL},
        {false, "LIVE", BC_EV_ROOM_START, NULL},
        {false, "ENDED", BC_EV_ROOM_START, NULL},
        {false, "SCHEDULED", BC_EV_FORCE_TERMINATE, NULL},
        {false, "LIVE", BC_EV_AUTO_END, NULL},
        {false, "ARCHIVED", BC_EV_SWEEP, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = cases[i].key ? bc_key_next(cases[i].from, cases[i].ev)
                                       : bc_room_next(cases[i].from, cases[i].ev);
        if ((got == NULL) != (cases[i].to == NULL) || (got && strcmp(got, cases[i].to) != 0))
            fail_msg("case %zu: %s on %s gave %s", i, bc_event_name(cases[i].ev), cases[i].from,
                     got ? got : "(illegal)");
    }
    assert_null(bc_key_next(NULL, BC_EV_PUBLISH));
}

static void test_result_codes_are_the_seeds(void **state)
{
    (void)state;
    assert_string_equal(bc_result_code(BC_ROOM_NOT_FOUND), "VIDEO_ROOM_NOT_FOUND");
    assert_int_equal(bc_result_status(BC_ROOM_NOT_FOUND), 404);
    assert_string_equal(bc_result_code(BC_KEY_NOT_FOUND), "STREAM_KEY_NOT_FOUND");
    assert_int_equal(bc_result_status(BC_KEY_NOT_FOUND), 404);
    assert_string_equal(bc_result_code(BC_KEY_NOT_ACTIVE), "STREAM_KEY_STATE_NOT_ACTIVE");
    assert_string_equal(bc_result_code(BC_ROOM_NOT_LIVE_INACTIVE), "VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE");
    assert_string_equal(bc_result_code(BC_KEY_NOT_INACTIVE_LIVE), "STREAM_KEY_STATE_NOT_INACTIVE_LIVE");
    assert_string_equal(bc_result_code(BC_ROOM_IS_LIVE), "VIDEO_ROOM_IS_LIVE");
    assert_int_equal(bc_result_status(BC_ROOM_IS_LIVE), 400);
}

static void test_publish_with_unknown_or_wrong_key_is_refused(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f;
    setup_fixture(&f);
    struct bc_publish out;
    char wrong[64];
    snprintf(wrong, sizeof wrong, "%s", f.key_str);
    wrong[20] = wrong[20] == 'a' ? 'b' : 'a'; /* same prefix, different key */
    static const char *const bad[] = {"", "short", "0123456789abcdef0123456789abcdef",
                                      "has spaces in it but is long enough", "ab'; DROP TABLE apps; --xxxxxxxx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(bc_ingest_publish(conn, bad[i], "node-a", "1.2.3.4", 5, 30, &out),
                         BC_PUBLISH_UNKNOWN_KEY);
    assert_int_equal(bc_ingest_publish(conn, wrong, "node-a", "1.2.3.4", 5, 30, &out),
                     BC_PUBLISH_UNKNOWN_KEY);
    assert_int_equal(bc_ingest_publish(conn, NULL, "node-a", NULL, 5, 30, &out), BC_PUBLISH_UNKNOWN_KEY);
    assert_string_equal(key_state(f.key), "INACTIVE");
    assert_int_equal(count_events("connected", 0, f.key), 0);
}

static void test_preview_then_start_then_reconnect_then_end(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f;
    setup_fixture(&f);
    listen_start();
    char actor[32];
    snprintf(actor, sizeof actor, "api:app:%" PRId64, f.app);

    /* start before the key is ACTIVE: refused, nothing changes */
    assert_int_equal(bc_room_start(conn, f.app, f.room, actor), BC_KEY_NOT_ACTIVE);
    assert_string_equal(room_state(f.room), "SCHEDULED");

    struct bc_publish p;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", "10.0.0.1", 5, 30, &p), BC_PUBLISH_OK);
    assert_true(p.key_id == f.key && p.app_id == f.app && p.member_id == f.member);
    assert_true(p.room_id == 0 && p.session_id > 0 && p.replaced_session_id == 0);
    assert_string_equal(p.key_state, "ACTIVE_PREP");
    assert_string_equal(str1("SELECT node_id FROM stream_keys WHERE id = $1", f.key), "node-a");
    assert_string_equal(str1("SELECT state FROM ingest_sessions WHERE id = $1", p.session_id), "PREP");
    assert_int_equal(bc_room_start(conn, f.app, f.room, actor), BC_KEY_NOT_ACTIVE);

    struct bc_publish s;
    assert_int_equal(bc_ingest_first_segment(conn, f.key, p.session_id, 900, &s), 0);
    assert_string_equal(s.key_state, "ACTIVE");
    assert_true(s.room_id == 0); /* no autoStart room */
    assert_string_equal(str1("SELECT state FROM ingest_sessions WHERE id = $1", p.session_id), "ACTIVE");
    /* a second first-segment call changes nothing */
    assert_int_equal(bc_ingest_first_segment(conn, f.key, p.session_id, 900, &s), 0);
    assert_string_equal(s.key_state, "ACTIVE");

    /* another app cannot start it */
    assert_int_equal(bc_room_start(conn, f.app + 100000, f.room, actor), BC_ROOM_NOT_FOUND);
    assert_int_equal(bc_room_start(conn, f.app, f.room, actor), BC_OK);
    assert_string_equal(room_state(f.room), "LIVE");
    assert_string_equal(key_state(f.key), "ACTIVE_LIVE");
    assert_true(i64_1("SELECT video_room_id FROM stream_keys WHERE id = $1", f.key) == f.room);
    assert_true(i64_1("SELECT stream_key_id FROM video_rooms WHERE id = $1", f.room) == f.key);
    assert_string_equal(str1("SELECT is_recording FROM video_rooms WHERE id = $1", f.room), "t");
    assert_string_equal(str1("SELECT started_at IS NOT NULL FROM video_rooms WHERE id = $1", f.room), "t");
    assert_true(notified("room_started", f.room, f.key));
    assert_int_equal(bc_room_start(conn, f.app, f.room, actor), BC_ROOM_NOT_SCHEDULED);
    /* end needs LIVE_INACTIVE */
    assert_int_equal(bc_room_end(conn, f.app, f.room, actor), BC_ROOM_NOT_LIVE_INACTIVE);

    /* the publisher goes away: room LIVE_INACTIVE, key INACTIVE_LIVE */
    assert_int_equal(bc_ingest_closed(conn, f.key, p.session_id, "idle timeout"), 0);
    assert_string_equal(key_state(f.key), "INACTIVE_LIVE");
    assert_string_equal(room_state(f.room), "LIVE_INACTIVE");
    assert_string_equal(str1("SELECT inactive_since IS NOT NULL FROM video_rooms WHERE id = $1", f.room), "t");
    assert_string_equal(str1("SELECT close_reason FROM ingest_sessions WHERE id = $1", p.session_id),
                        "idle timeout");
    assert_string_equal(str1("SELECT COALESCE(node_id, '-') FROM stream_keys WHERE id = $1", f.key), "-");
    /* closing again is stale */
    assert_int_equal(bc_ingest_closed(conn, f.key, p.session_id, "again"), 1);

    /* reconnect: ACTIVE_LIVE_PREP, then producing: ACTIVE_LIVE + LIVE */
    assert_int_equal(bc_room_set_hls_position(conn, f.room, 42, 1), 0);
    struct bc_publish p2;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-b", "10.0.0.2", 5, 30, &p2), BC_PUBLISH_OK);
    assert_string_equal(p2.key_state, "ACTIVE_LIVE_PREP");
    assert_true(p2.room_id == f.room && p2.room_next_msn == 42 && p2.room_session_no == 1);
    assert_true(p2.room_recording);
    assert_string_equal(room_state(f.room), "LIVE_INACTIVE");
    assert_int_equal(bc_ingest_first_segment(conn, f.key, p2.session_id, 900, &s), 0);
    assert_string_equal(s.key_state, "ACTIVE_LIVE");
    assert_true(s.room_id == f.room);
    assert_string_equal(room_state(f.room), "LIVE");
    assert_string_equal(str1("SELECT inactive_since IS NULL FROM video_rooms WHERE id = $1", f.room), "t");

    /* key not INACTIVE_LIVE while reconnecting: end refused with the key's code */
    assert_int_equal(bc_ingest_closed(conn, f.key, p2.session_id, "clean close"), 0);
    struct bc_publish p3;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-b", "10.0.0.2", 5, 30, &p3), BC_PUBLISH_OK);
    assert_int_equal(bc_room_end(conn, f.app, f.room, actor), BC_KEY_NOT_INACTIVE_LIVE);
    assert_int_equal(bc_ingest_closed(conn, f.key, p3.session_id, "clean close"), 0);

    assert_int_equal(bc_room_end(conn, f.app, f.room, actor), BC_OK);
    assert_string_equal(room_state(f.room), "ENDED");
    assert_string_equal(key_state(f.key), "INACTIVE");
    assert_string_equal(str1("SELECT COALESCE(video_room_id, 0) FROM stream_keys WHERE id = $1", f.key), "0");
    assert_string_equal(str1("SELECT COALESCE(stream_key_id, 0) FROM video_rooms WHERE id = $1", f.room), "0");
    assert_string_equal(str1("SELECT ended_at IS NOT NULL AND NOT is_recording FROM video_rooms WHERE id = $1",
                             f.room), "t");
    assert_true(notified("room_ended", f.room, 0));
    assert_int_equal(count_events("class_ended", f.room, 0), 1);
    assert_int_equal(count_events("connected", 0, f.key), 3);
    assert_int_equal(count_events("disconnected", 0, f.key), 3);
    assert_int_equal(bc_room_end(conn, f.app, f.room, actor), BC_ROOM_NOT_LIVE_INACTIVE);

    /* SCHEDULED → LIVE → LIVE_INACTIVE → LIVE → LIVE_INACTIVE → ENDED */
    assert_int_equal(check_chain(false, f.room, "SCHEDULED"), 5);
    check_chain(true, f.key, "INACTIVE");
    assert_string_equal(str1("SELECT actor FROM events WHERE video_room_id = $1 AND to_state = 'LIVE'"
                             " ORDER BY id LIMIT 1", f.room), actor);
    /* the sweeper's ENDED → ARCHIVED, once */
    assert_int_equal(bc_room_archive(conn, f.room, "sweeper:test"), 0);
    assert_string_equal(room_state(f.room), "ARCHIVED");
    assert_int_equal(bc_room_archive(conn, f.room, "sweeper:test"), 1);
    listen_stop();
}

static void test_duplicate_publisher_is_busy_until_idle_then_takes_over(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f;
    setup_fixture(&f);
    struct bc_publish a, b, s;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", "1.1.1.1", 5, 30, &a), BC_PUBLISH_OK);
    assert_int_equal(bc_ingest_first_segment(conn, f.key, a.session_id, 900, &s), 0);
    assert_int_equal(bc_ingest_heartbeat(conn, f.key, a.session_id, 30), 0);
    /* ING-6: media within takeoverIdleSec → refused */
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-b", "2.2.2.2", 5, 30, &b), BC_PUBLISH_BUSY);
    assert_string_equal(key_state(f.key), "ACTIVE");
    /* the holder went quiet 6 s ago → the newcomer takes over */
    sqlx("UPDATE stream_keys SET last_media_at = now() - interval '6 seconds' WHERE id = $1", f.key);
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-b", "2.2.2.2", 5, 30, &b), BC_PUBLISH_OK);
    assert_true(b.replaced_session_id == a.session_id);
    assert_string_equal(b.key_state, "ACTIVE_PREP");
    assert_string_equal(str1("SELECT close_reason FROM ingest_sessions WHERE id = $1", a.session_id), "taken over");
    /* the old session's late events change nothing */
    assert_int_equal(bc_ingest_heartbeat(conn, f.key, a.session_id, 30), 1);
    assert_int_equal(bc_ingest_first_segment(conn, f.key, a.session_id, 900, &s), 1);
    assert_int_equal(bc_ingest_closed(conn, f.key, a.session_id, "socket closed"), 1);
    assert_string_equal(key_state(f.key), "ACTIVE_PREP");
    assert_string_equal(str1("SELECT node_id FROM stream_keys WHERE id = $1", f.key), "node-b");
    /* OPS-7: an expired lease is taken over even with recent media */
    sqlx("UPDATE stream_keys SET lease_until = now() - interval '1 second' WHERE id = $1", f.key);
    struct bc_publish c;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-c", "3.3.3.3", 5, 30, &c), BC_PUBLISH_OK);
    assert_true(c.replaced_session_id == b.session_id);
    check_chain(true, f.key, "INACTIVE");
}

static void test_takeover_while_live_keeps_the_room_and_reconnects(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f;
    setup_fixture(&f);
    struct bc_publish a, b, s;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", "1.1.1.1", 5, 30, &a), BC_PUBLISH_OK);
    assert_int_equal(bc_ingest_first_segment(conn, f.key, a.session_id, 900, &s), 0);
    assert_int_equal(bc_room_start(conn, f.app, f.room, "api:test"), BC_OK);
    sqlx("UPDATE stream_keys SET last_media_at = now() - interval '1 minute' WHERE id = $1", f.key);
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-b", "2.2.2.2", 5, 30, &b), BC_PUBLISH_OK);
    assert_string_equal(b.key_state, "ACTIVE_LIVE_PREP");
    assert_true(b.room_id == f.room);
    assert_string_equal(room_state(f.room), "LIVE_INACTIVE");
    assert_int_equal(bc_ingest_first_segment(conn, f.key, b.session_id, 900, &s), 0);
    assert_string_equal(room_state(f.room), "LIVE");
    check_chain(false, f.room, "SCHEDULED");
    check_chain(true, f.key, "INACTIVE");
}

static void test_auto_start_picks_the_oldest_room_in_the_window(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f;
    setup_fixture(&f);
    int64_t later = make_room(&f, ", auto_start", " + interval '10 minutes', true");
    int64_t sooner = make_room(&f, ", auto_start", " + interval '5 minutes', true");
    int64_t far = make_room(&f, ", auto_start", " + interval '2 hours', true");
    struct bc_publish p, s;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", NULL, 5, 30, &p), BC_PUBLISH_OK);
    assert_int_equal(bc_ingest_first_segment(conn, f.key, p.session_id, 900, &s), 0);
    assert_string_equal(s.key_state, "ACTIVE_LIVE");
    assert_true(s.room_id == sooner);
    assert_true(s.room_recording);
    assert_string_equal(room_state(sooner), "LIVE");
    assert_string_equal(room_state(later), "SCHEDULED");
    assert_string_equal(room_state(far), "SCHEDULED");
    assert_string_equal(room_state(f.room), "SCHEDULED"); /* not autoStart */
    assert_string_equal(str1("SELECT data->>'autoStart' FROM events WHERE video_room_id = $1"
                             " AND to_state = 'LIVE'", sooner), "true");
    check_chain(false, sooner, "SCHEDULED");
    check_chain(true, f.key, "INACTIVE");
}

static void test_auto_end_and_max_duration_end_rooms(void **state)
{
    (void)state;
    NEED_DB();
    listen_start();
    struct fixture f;
    setup_fixture(&f);
    sqlx("UPDATE video_rooms SET auto_end_after_sec = 60 WHERE id = $1", f.room);
    struct bc_publish p, s;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", NULL, 5, 30, &p), BC_PUBLISH_OK);
    assert_int_equal(bc_ingest_first_segment(conn, f.key, p.session_id, 900, &s), 0);
    assert_int_equal(bc_room_start(conn, f.app, f.room, "api:test"), BC_OK);
    assert_int_equal(bc_ingest_closed(conn, f.key, p.session_id, "gone"), 0);
    /* inside the window: nothing */
    int n = bc_rooms_auto_end(conn);
    assert_true(n >= 0);
    assert_string_equal(room_state(f.room), "LIVE_INACTIVE");
    sqlx("UPDATE video_rooms SET inactive_since = now() - interval '61 seconds' WHERE id = $1", f.room);
    assert_true(bc_rooms_auto_end(conn) >= 1);
    assert_string_equal(room_state(f.room), "ENDED");
    assert_string_equal(key_state(f.key), "INACTIVE");
    assert_true(notified("room_ended", f.room, 0));
    check_chain(false, f.room, "SCHEDULED");
    check_chain(true, f.key, "INACTIVE");

    /* maxDurationSec: a LIVE room with its publisher connected */
    struct fixture g;
    setup_fixture(&g);
    sqlx("UPDATE video_rooms SET max_duration_sec = 3600 WHERE id = $1", g.room);
    assert_int_equal(bc_ingest_publish(conn, g.key_str, "node-a", NULL, 5, 30, &p), BC_PUBLISH_OK);
    assert_int_equal(bc_ingest_first_segment(conn, g.key, p.session_id, 900, &s), 0);
    assert_int_equal(bc_room_start(conn, g.app, g.room, "api:test"), BC_OK);
    sqlx("UPDATE video_rooms SET started_at = now() - interval '2 hours' WHERE id = $1", g.room);
    assert_true(bc_rooms_auto_end(conn) >= 1);
    assert_string_equal(room_state(g.room), "ENDED");
    assert_string_equal(key_state(g.key), "INACTIVE");
    assert_string_equal(str1("SELECT state FROM ingest_sessions WHERE id = $1", p.session_id), "CLOSED");
    assert_true(notified("room_ended", g.room, g.key));
    /* the publisher's node closes it afterwards: stale, nothing changes */
    assert_int_equal(bc_ingest_closed(conn, g.key, p.session_id, "disconnected"), 1);
    check_chain(false, g.room, "SCHEDULED");
    check_chain(true, g.key, "INACTIVE");
    listen_stop();
}

static void test_force_terminate_ends_the_room_discards_recordings_and_reissues(void **state)
{
    (void)state;
    NEED_DB();
    listen_start();
    struct fixture f;
    setup_fixture(&f);
    struct bc_publish p, s;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", NULL, 5, 30, &p), BC_PUBLISH_OK);
    assert_int_equal(bc_ingest_first_segment(conn, f.key, p.session_id, 900, &s), 0);
    assert_int_equal(bc_room_start(conn, f.app, f.room, "api:test"), BC_OK);
    char a[24], r[24];
    snprintf(a, sizeof a, "%" PRId64, f.app);
    snprintf(r, sizeof r, "%" PRId64, f.room);
    const char *rp[2] = {a, r};
    PQclear(sql("INSERT INTO recordings (app_id, video_room_id, node_id, filename, path)"
                " VALUES ($1, $2, 'node-a', 'a.mp4', 'x/a.mp4'), ($1, $2, 'node-a', 'b.mp4', 'x/b.mp4')",
                2, rp));
    sqlx("UPDATE recordings SET status = 'READY' WHERE video_room_id = $1 AND filename = 'b.mp4'", f.room);

    assert_int_equal(bc_key_reissue(conn, f.app, f.key, "api:test"), BC_KEY_NOT_INACTIVE);
    assert_int_equal(bc_key_force_terminate(conn, f.app + 100000, f.key, "api:test"), BC_KEY_NOT_FOUND);
    assert_int_equal(bc_key_force_terminate(conn, f.app, f.key, "api:test"), BC_OK);
    assert_string_equal(key_state(f.key), "INACTIVE");
    assert_string_equal(room_state(f.room), "ENDED");
    assert_string_not_equal(str1("SELECT stream_key FROM stream_keys WHERE id = $1", f.key), f.key_str);
    assert_string_equal(str1("SELECT status || ':' || failure_reason FROM recordings WHERE video_room_id = $1"
                             " AND filename = 'a.mp4'", f.room), "FAILED:discarded by force-terminate");
    assert_string_equal(str1("SELECT status FROM recordings WHERE video_room_id = $1 AND filename = 'b.mp4'",
                             f.room), "READY");
    assert_string_equal(str1("SELECT state FROM ingest_sessions WHERE id = $1", p.session_id), "CLOSED");
    assert_true(notified("key_force_terminated", f.room, f.key));
    /* the old key string is refused; the node's late close changes nothing */
    struct bc_publish q;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", NULL, 5, 30, &q), BC_PUBLISH_UNKNOWN_KEY);
    assert_int_equal(bc_ingest_closed(conn, f.key, p.session_id, "kicked"), 1);
    check_chain(false, f.room, "SCHEDULED");
    check_chain(true, f.key, "INACTIVE");

    /* reissue (INACTIVE only) changes the string and logs one marker event */
    char before[64];
    snprintf(before, sizeof before, "%s", str1("SELECT stream_key FROM stream_keys WHERE id = $1", f.key));
    int ev = count_events("stream_key_state", 0, f.key);
    assert_int_equal(bc_key_reissue(conn, f.app, f.key, "api:test"), BC_OK);
    assert_string_not_equal(str1("SELECT stream_key FROM stream_keys WHERE id = $1", f.key), before);
    assert_int_equal(strlen(str1("SELECT stream_key FROM stream_keys WHERE id = $1", f.key)), BC_STREAM_KEY_LEN);
    assert_string_equal(str1("SELECT key_prefix = left(stream_key, 12) FROM stream_keys WHERE id = $1", f.key), "t");
    assert_int_equal(count_events("stream_key_state", 0, f.key), ev + 1);
    listen_stop();
}

static void test_room_delete_and_member_delete(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f;
    setup_fixture(&f);
    struct bc_publish p, s;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", NULL, 5, 30, &p), BC_PUBLISH_OK);
    assert_int_equal(bc_ingest_first_segment(conn, f.key, p.session_id, 900, &s), 0);
    assert_int_equal(bc_room_start(conn, f.app, f.room, "api:test"), BC_OK);
    assert_int_equal(bc_room_delete(conn, f.app, f.room, "api:test"), BC_ROOM_IS_LIVE);
    int64_t other = make_room(&f, NULL, NULL);
    assert_int_equal(bc_room_delete(conn, f.app + 100000, other, "api:test"), BC_ROOM_NOT_FOUND);
    assert_int_equal(bc_room_delete(conn, f.app, other, "api:test"), BC_OK);
    assert_string_equal(str1("SELECT state FROM video_rooms WHERE id = $1", other), "DELETED");
    assert_int_equal(bc_room_delete(conn, f.app, other, "api:test"), BC_ROOM_NOT_FOUND);
    assert_int_equal(bc_room_start(conn, f.app, other, "api:test"), BC_ROOM_NOT_FOUND);

    /* member delete: all or nothing; a live key is force-terminated first */
    const char *names[2] = {"teacher", "nobody"};
    size_t missing = 99;
    assert_int_equal(bc_members_delete(conn, f.app, names, 2, "api:test", &missing), BC_MEMBER_NOT_FOUND);
    assert_int_equal(missing, 1);
    assert_string_equal(str1("SELECT state FROM members WHERE id = $1", f.member), "ACTIVE");
    assert_int_equal(bc_members_delete(conn, f.app, names, 1, "api:test", &missing), BC_OK);
    assert_string_equal(str1("SELECT state FROM members WHERE id = $1", f.member), "DELETED");
    assert_string_equal(str1("SELECT state FROM stream_keys WHERE id = $1", f.key), "DELETED");
    assert_string_equal(room_state(f.room), "ENDED");
    struct bc_publish q;
    assert_int_equal(bc_ingest_publish(conn, f.key_str, "node-a", NULL, 5, 30, &q), BC_PUBLISH_UNKNOWN_KEY);
    /* the member's remaining SCHEDULED room cannot start: its key is gone */
    int64_t third;
    {
        char a[24], m[24];
        snprintf(a, sizeof a, "%" PRId64, f.app);
        snprintf(m, sizeof m, "%" PRId64, f.member);
        const char *pp[2] = {a, m};
        PGresult *r = sql("INSERT INTO video_rooms (app_id, member_id, type, scheduled_at)"
                          " VALUES ($1, $2, 'BROADCAST_RTMP', now()) RETURNING id", 2, pp);
        third = db_get_i64(r, 0, 0);
        PQclear(r);
    }
    assert_int_equal(bc_room_start(conn, f.app, third, "api:test"), BC_KEY_NOT_FOUND);
    /* the appUserId is free again */
    struct fixture g = f;
    make_member(&g, "teacher");
    assert_true(g.member != f.member);
}

static void test_non_rtmp_room_cannot_start(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f;
    setup_fixture(&f);
    sqlx("UPDATE video_rooms SET type = 'WEBINAR' WHERE id = $1", f.room);
    assert_int_equal(bc_room_start(conn, f.app, f.room, "api:test"), BC_ROOM_TYPE_NOT_BROADCAST_RTMP);
    assert_int_equal(bc_room_end(conn, f.app, f.room, "api:test"), BC_ROOM_TYPE_NOT_BROADCAST_RTMP);
}

static void test_node_recover_releases_what_the_node_held(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f, g;
    setup_fixture(&f);
    setup_fixture(&g);
    struct bc_publish p, q, s;
    char node[64];
    snprintf(node, sizeof node, "recover-%" PRId64, f.app);
    assert_int_equal(bc_ingest_publish(conn, f.key_str, node, NULL, 5, 30, &p), BC_PUBLISH_OK);
    assert_int_equal(bc_ingest_first_segment(conn, f.key, p.session_id, 900, &s), 0);
    assert_int_equal(bc_room_start(conn, f.app, f.room, "api:test"), BC_OK);
    assert_int_equal(bc_ingest_publish(conn, g.key_str, node, NULL, 5, 30, &q), BC_PUBLISH_OK);
    assert_int_equal(bc_node_recover(conn, node), 2);
    assert_string_equal(key_state(f.key), "INACTIVE_LIVE");
    assert_string_equal(room_state(f.room), "LIVE_INACTIVE");
    assert_string_equal(key_state(g.key), "INACTIVE");
    assert_string_equal(str1("SELECT close_reason FROM ingest_sessions WHERE id = $1", q.session_id), "node restart");
    assert_int_equal(bc_node_recover(conn, node), 0);
    check_chain(true, f.key, "INACTIVE");
    check_chain(false, f.room, "SCHEDULED");
}

/* --- concurrency ------------------------------------------------------------ */
struct racer {
    int64_t app, key, room;
    const char *key_str;
    int id;
    int ok_start, ok_end;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    char err[256], node[32];
    snprintf(node, sizeof node, "race-%d", r->id);
    PGconn *c = db_connect(dburl, err, sizeof err);
    if (!c)
        return NULL;
    for (int i = 0; i < 12; i++) {
        struct bc_publish p, s;
        switch ((r->id + i) % 4) {
        case 0:
            if (bc_ingest_publish(c, r->key_str, node, NULL, 0, 30, &p) == BC_PUBLISH_OK) {
                bc_ingest_first_segment(c, r->key, p.session_id, 900, &s);
                if (i % 3 == 0)
                    bc_ingest_closed(c, r->key, p.session_id, "race");
            }
            break;
        case 1:
            if (bc_room_start(c, r->app, r->room, "api:race") == BC_OK)
                r->ok_start++;
            break;
        case 2:
            if (bc_room_end(c, r->app, r->room, "api:race") == BC_OK)
                r->ok_end++;
            break;
        case 3: {
            /* close whatever session holds the key now */
            char b[24];
            snprintf(b, sizeof b, "%" PRId64, r->key);
            const char *pp[1] = {b};
            PGresult *res = db_exec(c, "race", "SELECT COALESCE(ingest_session_id, 0) FROM stream_keys"
                                               " WHERE id = $1", 1, pp, NULL);
            int64_t sid = res ? db_get_i64(res, 0, 0) : 0;
            PQclear(res);
            if (sid)
                bc_ingest_closed(c, r->key, sid, "race close");
            break;
        }
        }
    }
    PQfinish(c);
    return NULL;
}

static void test_concurrent_events_never_produce_an_impossible_state(void **state)
{
    (void)state;
    NEED_DB();
    struct fixture f;
    setup_fixture(&f);
    enum { N = 16 };
    pthread_t t[N];
    struct racer r[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){.app = f.app, .key = f.key, .room = f.room, .key_str = f.key_str, .id = i};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    int starts = 0, ends = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        starts += r[i].ok_start;
        ends += r[i].ok_end;
    }
    assert_true(starts <= 1 && ends <= starts);
    check_chain(true, f.key, "INACTIVE");
    check_chain(false, f.room, "SCHEDULED");
    /* exactly one start event per successful start, one end per end */
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, f.room);
    const char *p[1] = {b};
    PGresult *res = sql("SELECT count(*) FILTER (WHERE from_state = 'SCHEDULED' AND to_state = 'LIVE'),"
                        " count(*) FILTER (WHERE to_state = 'ENDED') FROM events"
                        " WHERE video_room_id = $1 AND type = 'video_room_state'", 1, p);
    assert_int_equal(db_get_i64(res, 0, 0), starts);
    assert_int_equal(db_get_i64(res, 0, 1), ends);
    PQclear(res);
    /* the key and room agree about their binding */
    const char *ks = key_state(f.key);
    const char *rs = room_state(f.room);
    if (strcmp(rs, "LIVE") == 0)
        assert_string_equal(ks, "ACTIVE_LIVE");
    if (strcmp(rs, "LIVE_INACTIVE") == 0)
        assert_true(strcmp(key_state(f.key), "INACTIVE_LIVE") == 0 ||
                    strcmp(key_state(f.key), "ACTIVE_LIVE_PREP") == 0);
    /* at most one open session holds the key */
    assert_true(i64_1("SELECT count(*) FROM ingest_sessions WHERE stream_key_id = $1 AND state <> 'CLOSED'",
                      f.key) <= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_table_matches_spec),
        cmocka_unit_test(test_result_codes_are_the_seeds),
        cmocka_unit_test(test_publish_with_unknown_or_wrong_key_is_refused),
        cmocka_unit_test(test_preview_then_start_then_reconnect_then_end),
        cmocka_unit_test(test_duplicate_publisher_is_busy_until_idle_then_takes_over),
        cmocka_unit_test(test_takeover_while_live_keeps_the_room_and_reconnects),
        cmocka_unit_test(test_auto_start_picks_the_oldest_room_in_the_window),
        cmocka_unit_test(test_auto_end_and_max_duration_end_rooms),
        cmocka_unit_test(test_force_terminate_ends_the_room_discards_recordings_and_reissues),
        cmocka_unit_test(test_room_delete_and_member_delete),
        cmocka_unit_test(test_non_rtmp_room_cannot_start),
        cmocka_unit_test(test_node_recover_releases_what_the_node_held),
        cmocka_unit_test(test_concurrent_events_never_produce_an_impossible_state),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
