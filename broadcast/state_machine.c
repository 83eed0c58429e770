/* state_machine.c — SPEC §2 in one place: the transition table, the guarded
 * statements that apply it, and the events every transition appends
 * (see state_machine.h for the locking and transaction rules). */
#include "broadcast/state_machine.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast/events.h"
#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

/* ------------------------------------------------------------------------
 * The table. "*" matches any state. Nothing else in castgate decides which
 * state follows which.
 * ------------------------------------------------------------------------ */
struct transition {
    const char *from;
    enum bc_event ev;
    const char *to;
};

/* SPEC §2.1 — stream key (streamKeyState). */
static const struct transition key_table[] = {
    {"INACTIVE", BC_EV_PUBLISH, "ACTIVE_PREP"},
    {"ACTIVE_PREP", BC_EV_FIRST_SEGMENT, "ACTIVE"},
    {"ACTIVE_PREP", BC_EV_PUBLISHER_GONE, "INACTIVE"},
    {"ACTIVE", BC_EV_PUBLISHER_GONE, "INACTIVE"},
    {"ACTIVE", BC_EV_ROOM_START, "ACTIVE_LIVE"},
    {"ACTIVE_LIVE", BC_EV_PUBLISHER_GONE, "INACTIVE_LIVE"},
    {"INACTIVE_LIVE", BC_EV_PUBLISH, "ACTIVE_LIVE_PREP"},
    {"ACTIVE_LIVE_PREP", BC_EV_FIRST_SEGMENT, "ACTIVE_LIVE"},
    {"ACTIVE_LIVE_PREP", BC_EV_PUBLISHER_GONE, "INACTIVE_LIVE"},
    {"INACTIVE_LIVE", BC_EV_ROOM_END, "INACTIVE"},
    {"*", BC_EV_FORCE_TERMINATE, "INACTIVE"},
    /* the room ended by a timer: the key leaves it */
    {"INACTIVE_LIVE", BC_EV_AUTO_END, "INACTIVE"},
    {"ACTIVE_LIVE", BC_EV_MAX_DURATION, "INACTIVE"},
    {"ACTIVE_LIVE_PREP", BC_EV_MAX_DURATION, "INACTIVE"},
    {"INACTIVE_LIVE", BC_EV_MAX_DURATION, "INACTIVE"},
};

/* SPEC §2.2 — video room (videoRoomState). */
static const struct transition room_table[] = {
    {"SCHEDULED", BC_EV_ROOM_START, "LIVE"},
    {"LIVE", BC_EV_PUBLISHER_GONE, "LIVE_INACTIVE"},
    {"LIVE_INACTIVE", BC_EV_FIRST_SEGMENT, "LIVE"}, /* publisher back and producing */
    {"LIVE_INACTIVE", BC_EV_ROOM_END, "ENDED"},
    {"LIVE", BC_EV_FORCE_TERMINATE, "ENDED"},
    {"LIVE_INACTIVE", BC_EV_FORCE_TERMINATE, "ENDED"},
    {"LIVE_INACTIVE", BC_EV_AUTO_END, "ENDED"},
    {"LIVE", BC_EV_MAX_DURATION, "ENDED"},
    {"LIVE_INACTIVE", BC_EV_MAX_DURATION, "ENDED"}, /* a room cannot outlive its cap by idling */
    {"ENDED", BC_EV_SWEEP, "ARCHIVED"},
};

static const char *next_in(const struct transition *t, size_t n, const char *from, enum bc_event ev)
{
    if (!from)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (t[i].ev == ev && (strcmp(t[i].from, "*") == 0 || strcmp(t[i].from, from) == 0))
            return t[i].to;
    return NULL;
}

const char *bc_key_next(const char *from, enum bc_event ev)
{
    return next_in(key_table, sizeof key_table / sizeof key_table[0], from, ev);
}

const char *bc_room_next(const char *from, enum bc_event ev)
{
    return next_in(room_table, sizeof room_table / sizeof room_table[0], from, ev);
}

const char *bc_event_name(enum bc_event ev)
{
    static const char *const names[] = {"publish", "first_segment", "publisher_gone",
                                        "room_start", "room_end", "force_terminate",
                                        "auto_end", "max_duration", "sweep"};
    return (unsigned)ev < sizeof names / sizeof names[0] ? names[ev] : "?";
}

/* ------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------ */
static const struct {
    const char *code;
    int status;
    const char *message;
} results[] = {
    [BC_OK] = {"OK", 200, "ok"},
    [BC_ERR_DB] = {"INTERNAL_ERROR", 500, "database error"},
    [BC_ROOM_NOT_FOUND] = {"VIDEO_ROOM_NOT_FOUND", 404, "VideoRoom does not exist"},
    [BC_ROOM_TYPE_NOT_BROADCAST_RTMP] = {"VIDEO_ROOM_TYPE_NOT_BROADCAST_RTMP", 400,
                                         "VideoRoom type is not BROADCAST_RTMP"},
    [BC_ROOM_NOT_SCHEDULED] = {"VIDEO_ROOM_STATE_NOT_SCHEDULED", 400,
                               "VideoRoom state is not SCHEDULED"},
    [BC_ROOM_NOT_LIVE_INACTIVE] = {"VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE", 400,
                                   "VideoRoom state is not LIVE_INACTIVE"},
    [BC_ROOM_IS_LIVE] = {"VIDEO_ROOM_IS_LIVE", 400,
                         "VideoRoom is live; end it before deleting it"},
    [BC_KEY_NOT_FOUND] = {"STREAM_KEY_NOT_FOUND", 404, "StreamKey does not exist"},
    [BC_KEY_NOT_ACTIVE] = {"STREAM_KEY_STATE_NOT_ACTIVE", 400, "StreamKey state is not ACTIVE"},
    [BC_KEY_NOT_INACTIVE] = {"STREAM_KEY_STATE_NOT_INACTIVE", 400,
                             "StreamKey state is not INACTIVE"},
    [BC_KEY_NOT_INACTIVE_LIVE] = {"STREAM_KEY_STATE_NOT_INACTIVE_LIVE", 400,
                                  "StreamKey state is not INACTIVE_LIVE"},
    [BC_MEMBER_NOT_FOUND] = {"MEMBER_NOT_FOUND", 404, "Member does not exist"},
};

const char *bc_result_code(enum bc_result r)
{
    return (unsigned)r < sizeof results / sizeof results[0] ? results[r].code : "INTERNAL_ERROR";
}
int bc_result_status(enum bc_result r)
{
    return (unsigned)r < sizeof results / sizeof results[0] ? results[r].status : 500;
}
const char *bc_result_message(enum bc_result r)
{
    return (unsigned)r < sizeof results / sizeof results[0] ? results[r].message : "error";
}

/* ------------------------------------------------------------------------
 * Plumbing: one transaction, its statements, retries
 * ------------------------------------------------------------------------ */

/* Internal outcomes besides enum bc_result. */
#define SM_RETRY (-100) /* deadlock, serialization failure, binding changed: run again */
#define SM_MAX_ATTEMPTS 8

struct sm {
    PGconn *c;
    const char *actor;
    char sqlstate[6];
    char actor_buf[160]; /* when the actor is only known under the lock */
};

static PGresult *q(struct sm *s, const char *what, const char *sql, int n, const char *const *p)
{
    return db_exec(s->c, what, sql, n, p, s->sqlstate);
}

/* Runs sql and discards the result. 0 or -1. */
static int qx(struct sm *s, const char *what, const char *sql, int n, const char *const *p)
{
    PGresult *r = q(s, what, sql, n, p);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* -1 from a statement: retry if PostgreSQL says so. */
static int db_fail(struct sm *s)
{
    if (strcmp(s->sqlstate, "40P01") == 0 || strcmp(s->sqlstate, "40001") == 0 ||
        strcmp(s->sqlstate, "23505") == 0 /* a new random key collided */)
        return SM_RETRY;
    return BC_ERR_DB;
}

/* Runs an UPDATE ... RETURNING that must hit exactly one row, which the
 * caller holds locked: anything else cannot happen and is retried rather than
 * half-applied. 0, SM_RETRY, or db_fail(s). */
static int update_one(struct sm *s, const char *what, const char *sql, int n,
                      const char *const *p)
{
    PGresult *r = q(s, what, sql, n, p);
    if (!r)
        return db_fail(s);
    int rows = PQntuples(r);
    PQclear(r);
    return rows == 1 ? 0 : SM_RETRY;
}

typedef int (*tx_body)(struct sm *s, void *arg);

/* BEGIN; body; COMMIT — or ROLLBACK when body returns anything but 0.
 * body returns 0 (commit), SM_RETRY, or a non-zero outcome to hand back. */
static int run_tx(PGconn *c, const char *actor, tx_body body, void *arg)
{
    struct sm s = {.c = c, .actor = actor};
    for (int attempt = 0; attempt < SM_MAX_ATTEMPTS; attempt++) {
        if (qx(&s, "begin", "BEGIN", 0, NULL) != 0)
            return BC_ERR_DB;
        s.sqlstate[0] = 0;
        int rc = body(&s, arg);
        if (rc == 0) {
            if (qx(&s, "commit", "COMMIT", 0, NULL) == 0)
                return 0;
            if (db_fail(&s) == SM_RETRY)
                continue;
            return BC_ERR_DB;
        }
        PQclear(PQexec(c, "ROLLBACK"));
        if (rc != SM_RETRY)
            return rc;
        log_debug("state: retrying transaction attempt=%d sqlstate=%s", attempt + 1, s.sqlstate);
    }
    log_warn("state: transaction gave up after %d attempts", SM_MAX_ATTEMPTS);
    return BC_ERR_DB;
}

static const char *i64(int64_t v, char buf[24])
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

static int64_t col_i64(PGresult *r, int row, int col) { return db_get_i64(r, row, col); }

static void col_str(PGresult *r, int row, int col, char *out, size_t cap)
{
    const char *v = db_get_str(r, row, col);
    snprintf(out, cap, "%s", v ? v : "");
}

static bool col_bool(PGresult *r, int row, int col)
{
    const char *v = db_get_str(r, row, col);
    return v && v[0] == 't';
}

/* ------------------------------------------------------------------------
 * Rows, locked in the global order room → key
 * ------------------------------------------------------------------------ */
struct room_row {
    int64_t id, app_id, member_id, key_id, next_msn;
    int session_no;
    char state[16];  /* entity state */
    char rstate[16]; /* videoRoomState */
    char type[24];
    bool recording, auto_start_recording, is_recording;
    bool auto_due, max_due; /* timers (bc_rooms_auto_end) */
};

struct key_row {
    int64_t id, app_id, member_id, room_id, session_id;
    char state[16];  /* entity state */
    char kstate[24]; /* streamKeyState */
    char node[128];  /* holder, "" = none */
    char key[160];   /* the secret (compared, never logged) */
};

#define ROOM_COLS                                                                              \
    "id, app_id, member_id, COALESCE(stream_key_id, 0), state, video_room_state, type,"        \
    " recording, auto_start_recording, is_recording, hls_next_msn, hls_session_no,"            \
    " (video_room_state = 'LIVE_INACTIVE' AND auto_end_after_sec IS NOT NULL"                  \
    "  AND inactive_since <= now() - make_interval(secs => auto_end_after_sec)),"              \
    " (video_room_state IN ('LIVE', 'LIVE_INACTIVE') AND max_duration_sec IS NOT NULL"         \
    "  AND started_at <= now() - make_interval(secs => max_duration_sec))"

static void room_from(PGresult *r, struct room_row *out)
{
    memset(out, 0, sizeof *out);
    out->id = col_i64(r, 0, 0);
    out->app_id = col_i64(r, 0, 1);
    out->member_id = col_i64(r, 0, 2);
    out->key_id = col_i64(r, 0, 3);
    col_str(r, 0, 4, out->state, sizeof out->state);
    col_str(r, 0, 5, out->rstate, sizeof out->rstate);
    col_str(r, 0, 6, out->type, sizeof out->type);
    out->recording = col_bool(r, 0, 7);
    out->auto_start_recording = col_bool(r, 0, 8);
    out->is_recording = col_bool(r, 0, 9);
    out->next_msn = col_i64(r, 0, 10);
    out->session_no = (int)col_i64(r, 0, 11);
    out->auto_due = col_bool(r, 0, 12);
    out->max_due = col_bool(r, 0, 13);
}

/* Locks a room. app_id 0 = any app. 1 found, 0 not found (or another app's,
 * or DELETED when only_active), -1 error. */
static int lock_room(struct sm *s, int64_t room_id, int64_t app_id, bool only_active,
                     struct room_row *out)
{
    char a[24], b[24];
    const char *p[2] = {i64(room_id, a), i64(app_id, b)};
    PGresult *r = q(s, "lock room",
                    "SELECT " ROOM_COLS " FROM video_rooms"
                    " WHERE id = $1 AND ($2::bigint = 0 OR app_id = $2) FOR UPDATE",
                    2, p);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1;
    if (found)
        room_from(r, out);
    PQclear(r);
    if (found && only_active && strcmp(out->state, "ACTIVE") != 0)
        found = 0;
    return found;
}

#define KEY_COLS                                                                               \
    "id, app_id, member_id, COALESCE(video_room_id, 0), COALESCE(ingest_session_id, 0),"       \
    " state, stream_key_state, COALESCE(node_id, ''), stream_key"

static int lock_key(struct sm *s, int64_t key_id, struct key_row *out)
{
    char a[24];
    const char *p[1] = {i64(key_id, a)};
    PGresult *r = q(s, "lock key", "SELECT " KEY_COLS " FROM stream_keys WHERE id = $1 FOR UPDATE",
                    1, p);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1;
    if (found) {
        memset(out, 0, sizeof *out);
        out->id = col_i64(r, 0, 0);
        out->app_id = col_i64(r, 0, 1);
        out->member_id = col_i64(r, 0, 2);
        out->room_id = col_i64(r, 0, 3);
        out->session_id = col_i64(r, 0, 4);
        col_str(r, 0, 5, out->state, sizeof out->state);
        col_str(r, 0, 6, out->kstate, sizeof out->kstate);
        col_str(r, 0, 7, out->node, sizeof out->node);
        col_str(r, 0, 8, out->key, sizeof out->key);
    }
    PQclear(r);
    return found;
}

/* Locks a key and the room it is bound to, room first. A key whose binding
 * changed between the unlocked read and the locks is SM_RETRY. *room is
 * zeroed (id 0) when the key is unbound. 1, 0 not found, -1 error. */
static int lock_key_and_room(struct sm *s, int64_t key_id, struct key_row *k, struct room_row *room)
{
    char a[24];
    const char *p[1] = {i64(key_id, a)};
    PGresult *r = q(s, "read key binding",
                    "SELECT COALESCE(video_room_id, 0) FROM stream_keys WHERE id = $1", 1, p);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    int64_t room_id = col_i64(r, 0, 0);
    PQclear(r);
    memset(room, 0, sizeof *room);
    if (room_id && lock_room(s, room_id, 0, false, room) < 0)
        return -1;
    int found = lock_key(s, key_id, k);
    if (found <= 0)
        return found;
    if (k->room_id != room_id)
        return SM_RETRY;
    return 1;
}

/* ------------------------------------------------------------------------
 * Guarded transitions: one UPDATE each, plus its events row
 * ------------------------------------------------------------------------ */

/* One state column of one row, as a guarded transition sees it. */
struct move_row {
    const char *what;   /* "key" / "room": log words */
    const char *label;  /* db_exec's name for the UPDATE */
    const char *table;  /* "stream_keys" / "video_rooms" */
    const char *column; /* the state column, also the events row type */
    int64_t id, app_id, room_id, key_id; /* row id; events row context */
    char *state;        /* current state, replaced by `to` on success */
    size_t state_size;
};

/* UPDATE <table> SET <column> = to, <extra> WHERE id AND <column> = from.
 * extra is a fixed fragment using $4.. for extra_params. Appends a <column>
 * event. to is NULL when the table has no such move. Takes data.
 * 0, SM_RETRY / BC_ERR_DB, or BC_ERR_DB when the table has no such move. */
static int state_move(struct sm *s, const struct move_row *m, const char *to, enum bc_event ev,
                      const char *extra, int nextra, const char *const *extra_params, json_t *data)
{
    if (!to) {
        log_error("state: illegal %s transition %s_id=%" PRId64 " from=%s event=%s", m->what,
                  m->what, m->id, m->state, bc_event_name(ev));
        json_decref(data);
        return BC_ERR_DB;
    }
    char sql[768], a[24];
    snprintf(sql, sizeof sql,
             "UPDATE %s SET %s = $3, last_modified_at = now()%s"
             " WHERE id = $1 AND %s = $2 RETURNING id",
             m->table, m->column, extra ? extra : "", m->column);
    const char *p[10] = {i64(m->id, a), m->state, to};
    for (int i = 0; i < nextra && i < 7; i++)
        p[3 + i] = extra_params[i];
    int rc = update_one(s, m->label, sql, 3 + nextra, p);
    if (rc != 0) {
        json_decref(data);
        return rc;
    }
    rc = events_append(s->c, m->app_id, m->room_id, m->key_id, m->column, m->state, to,
                       s->actor, data, s->sqlstate);
    json_decref(data);
    if (rc != 0)
        return db_fail(s);
    log_info("state: %s %s_id=%" PRId64 " %s -> %s event=%s actor=%s", m->what, m->what, m->id,
             m->state, to, bc_event_name(ev), s->actor);
    snprintf(m->state, m->state_size, "%s", to);
    return 0;
}

/* A stream key's move (room_id for the event's context); see state_move. */
static int key_move(struct sm *s, struct key_row *k, enum bc_event ev, int64_t room_id,
                    const char *extra, int nextra, const char *const *extra_params, json_t *data)
{
    const struct move_row m = {"key", "key transition", "stream_keys", "stream_key_state",
                               k->id, k->app_id, room_id, k->id, k->kstate, sizeof k->kstate};
    return state_move(s, &m, bc_key_next(k->kstate, ev), ev, extra, nextra, extra_params, data);
}

/* A video room's move; see state_move. */
static int room_move(struct sm *s, struct room_row *room, enum bc_event ev, const char *extra,
                     int nextra, const char *const *extra_params, json_t *data)
{
    const struct move_row m = {"room", "room transition", "video_rooms", "video_room_state",
                               room->id, room->app_id, room->id, room->key_id,
                               room->rstate, sizeof room->rstate};
    return state_move(s, &m, bc_room_next(room->rstate, ev), ev, extra, nextra, extra_params,
                      data);
}

static int event_row(struct sm *s, int64_t app_id, int64_t room_id, int64_t key_id,
                     const char *type, json_t *data)
{
    int rc = events_append(s->c, app_id, room_id, key_id, type, NULL, NULL, s->actor, data,
                           s->sqlstate);
    json_decref(data);
    return rc == 0 ? 0 : db_fail(s);
}

static int notify(struct sm *s, const char *type, int64_t room_id, int64_t key_id,
                  const char *node)
{
    return events_notify(s->c, type, room_id, key_id, node && node[0] ? node : NULL,
                         s->sqlstate) == 0
               ? 0
               : db_fail(s);
}

/* Closes an open ingest session row; a `disconnected` event when it was open. */
static int close_session(struct sm *s, const struct key_row *k, int64_t room_id,
                         int64_t session_id, const char *reason)
{
    if (!session_id)
        return 0;
    char a[24];
    const char *p[2] = {i64(session_id, a), reason};
    PGresult *r = q(s, "close session",
                    "UPDATE ingest_sessions SET state = 'CLOSED', ended_at = now(),"
                    " close_reason = $2 WHERE id = $1 AND state <> 'CLOSED' RETURNING node_id",
                    2, p);
    if (!r)
        return db_fail(s);
    int n = PQntuples(r);
    char node[128] = "";
    if (n)
        col_str(r, 0, 0, node, sizeof node);
    PQclear(r);
    if (!n)
        return 0;
    return event_row(s, k->app_id, room_id, k->id, "disconnected",
                     json_pack("{s:I, s:s, s:s}", "sessionId", (json_int_t)session_id, "node",
                               node, "reason", reason));
}

/* ------------------------------------------------------------------------
 * Composite moves shared by several events
 * ------------------------------------------------------------------------ */

/* room SCHEDULED → LIVE with key ACTIVE → ACTIVE_LIVE (both locked). */
static int start_locked(struct sm *s, struct room_row *room, struct key_row *k, json_t *data)
{
    char a[24], b[24];
    const char *kp[1] = {i64(room->id, a)};
    int rc = key_move(s, k, BC_EV_ROOM_START, room->id, ", video_room_id = $4", 1, kp,
                      json_incref(data));
    if (rc)
        goto out;
    bool rec = room->recording && room->auto_start_recording;
    const char *rp[2] = {i64(k->id, b), rec ? "true" : "false"};
    room->key_id = k->id;
    rc = room_move(s, room, BC_EV_ROOM_START,
                   ", started_at = now(), stream_key_id = $4, is_recording = $5::boolean,"
                   " inactive_since = NULL, ended_at = NULL",
                   2, rp, json_incref(data));
    if (rc)
        goto out;
    room->is_recording = rec;
    k->room_id = room->id;
    rc = notify(s, "room_started", room->id, k->id, k->node);
out:
    json_decref(data);
    return rc;
}

/* The publisher of k is gone: session closed, key (and a LIVE room) inactive. */
static int gone_locked(struct sm *s, struct key_row *k, struct room_row *room, const char *reason)
{
    int rc = close_session(s, k, k->room_id, k->session_id, reason);
    if (rc)
        return rc;
    bool was_live = strcmp(k->kstate, "ACTIVE_LIVE") == 0;
    rc = key_move(s, k, BC_EV_PUBLISHER_GONE, k->room_id,
                  ", node_id = NULL, lease_until = NULL, ingest_session_id = NULL", 0, NULL,
                  json_pack("{s:s}", "reason", reason));
    if (rc)
        return rc;
    k->session_id = 0;
    k->node[0] = 0;
    if (was_live && room->id && strcmp(room->rstate, "LIVE") == 0) {
        rc = room_move(s, room, BC_EV_PUBLISHER_GONE, ", inactive_since = now()", 0, NULL,
                       json_pack("{s:s}", "reason", reason));
        if (rc)
            return rc;
    }
    return 0;
}

/* Ends a room (LIVE / LIVE_INACTIVE) on ev: the key leaves it, the session
 * (if any) closes; class_ended; NOTIFY room_ended (to the holder node). */
static int end_locked(struct sm *s, struct room_row *room, struct key_row *k, enum bc_event ev,
                      const char *reason)
{
    char holder[128] = "";
    int rc = 0;
    if (k && k->id) {
        snprintf(holder, sizeof holder, "%s", k->node);
        rc = close_session(s, k, room->id, k->session_id, reason);
        if (rc)
            return rc;
    }
    rc = room_move(s, room, ev,
                   ", ended_at = now(), stream_key_id = NULL, is_recording = false,"
                   " inactive_since = NULL",
                   0, NULL, json_pack("{s:s}", "reason", reason));
    if (rc)
        return rc;
    if (k && k->id && ev != BC_EV_FORCE_TERMINATE) {
        rc = key_move(s, k, ev, room->id,
                      ", video_room_id = NULL, node_id = NULL, lease_until = NULL,"
                      " ingest_session_id = NULL",
                      0, NULL, json_pack("{s:s}", "reason", reason));
        if (rc)
            return rc;
        k->room_id = 0;
        k->session_id = 0;
        k->node[0] = 0;
    }
    rc = event_row(s, room->app_id, room->id, k ? k->id : 0, "class_ended",
                   json_pack("{s:s}", "reason", reason));
    if (rc)
        return rc;
    return notify(s, "room_ended", room->id, k ? k->id : 0, holder);
}

/* SPEC API-3 force-terminate on a locked key (+ its locked room). */
static int force_terminate_locked(struct sm *s, struct key_row *k, struct room_row *room,
                                  const char *reason)
{
    char holder[128];
    snprintf(holder, sizeof holder, "%s", k->node);
    int64_t room_id = room->id;
    int rc = close_session(s, k, k->room_id, k->session_id, reason);
    if (rc)
        return rc;
    k->session_id = 0;
    if (room->id && (strcmp(room->rstate, "LIVE") == 0 || strcmp(room->rstate, "LIVE_INACTIVE") == 0)) {
        rc = end_locked(s, room, k, BC_EV_FORCE_TERMINATE, reason);
        if (rc)
            return rc;
        char a[24];
        const char *p[1] = {i64(room->id, a)};
        if (qx(s, "discard recordings",
               "UPDATE recordings SET status = 'FAILED',"
               " failure_reason = 'discarded by force-terminate', last_modified_at = now()"
               " WHERE video_room_id = $1 AND status IN ('RECORDING', 'PROCESSING')",
               1, p) != 0)
            return db_fail(s);
    }
    char key[BC_STREAM_KEY_LEN + 1], prefix[BC_KEY_PREFIX_LEN + 1];
    if (bc_new_stream_key(key, prefix) != 0)
        return BC_ERR_DB;
    const char *p[2] = {key, prefix};
    rc = key_move(s, k, BC_EV_FORCE_TERMINATE, room_id,
                  ", stream_key = $4, key_prefix = $5, video_room_id = NULL, node_id = NULL,"
                  " lease_until = NULL, ingest_session_id = NULL, last_media_at = NULL",
                  2, p, json_pack("{s:s, s:b}", "reason", reason, "reissued", 1));
    if (rc)
        return rc;
    k->room_id = 0;
    k->node[0] = 0;
    return notify(s, "key_force_terminated", room_id, k->id, holder);
}

/* ------------------------------------------------------------------------
 * API events
 * ------------------------------------------------------------------------ */
struct api_arg {
    int64_t app_id, id;
    const char *const *names;
    size_t n, missing;
};

/* Runs one API event on one row (id) of one app in its own transaction. */
static enum bc_result run_api(PGconn *c, int64_t app_id, int64_t id, const char *actor,
                              tx_body body)
{
    struct api_arg a = {.app_id = app_id, .id = id};
    return (enum bc_result)run_tx(c, actor, body, &a);
}

/* Locks the API call's room (ACTIVE, of a->app_id). 0, or BC_ROOM_NOT_FOUND,
 * BC_ROOM_TYPE_NOT_BROADCAST_RTMP (only when rtmp_only) or db_fail(s). */
static int lock_api_room(struct sm *s, const struct api_arg *a, bool rtmp_only,
                         struct room_row *room)
{
    int f = lock_room(s, a->id, a->app_id, true, room);
    if (f < 0)
        return db_fail(s);
    if (f == 0)
        return BC_ROOM_NOT_FOUND;
    if (rtmp_only && strcmp(room->type, "BROADCAST_RTMP") != 0)
        return BC_ROOM_TYPE_NOT_BROADCAST_RTMP;
    return 0;
}

/* Locks the API call's BROADCAST_RTMP room for ev: 0, bad_state when the
 * room's state has no such move, or lock_api_room's refusals. */
static int lock_api_room_for(struct sm *s, const struct api_arg *a, enum bc_event ev,
                             int bad_state, struct room_row *room)
{
    int f = lock_api_room(s, a, true, room);
    if (f != 0)
        return f;
    return bc_room_next(room->rstate, ev) ? 0 : bad_state;
}

/* Locks key_id when it names an ACTIVE key: 0, BC_KEY_NOT_FOUND (also for
 * key_id 0) or db_fail(s). */
static int lock_active_key(struct sm *s, int64_t key_id, struct key_row *k)
{
    int f = key_id ? lock_key(s, key_id, k) : 0;
    if (f < 0)
        return db_fail(s);
    if (f == 0 || strcmp(k->state, "ACTIVE") != 0)
        return BC_KEY_NOT_FOUND;
    return 0;
}

static int room_start_tx(struct sm *s, void *arg)
{
    struct room_row room;
    struct key_row k;
    int f = lock_api_room_for(s, arg, BC_EV_ROOM_START, BC_ROOM_NOT_SCHEDULED, &room);
    if (f != 0)
        return f;
    char b[24];
    const char *p[1] = {i64(room.member_id, b)};
    PGresult *r = q(s, "room start: key",
                    "SELECT id FROM stream_keys WHERE member_id = $1 AND state = 'ACTIVE'", 1, p);
    if (!r)
        return db_fail(s);
    int64_t key_id = PQntuples(r) ? col_i64(r, 0, 0) : 0;
    PQclear(r);
    f = lock_active_key(s, key_id, &k);
    if (f != 0)
        return f;
    if (strcmp(k.kstate, "ACTIVE") != 0 || k.room_id)
        return BC_KEY_NOT_ACTIVE;
    return start_locked(s, &room, &k, json_object());
}

enum bc_result bc_room_start(PGconn *c, int64_t app_id, int64_t room_id, const char *actor)
{
    return run_api(c, app_id, room_id, actor, room_start_tx);
}

static int room_end_tx(struct sm *s, void *arg)
{
    struct room_row room;
    struct key_row k;
    int f = lock_api_room_for(s, arg, BC_EV_ROOM_END, BC_ROOM_NOT_LIVE_INACTIVE, &room);
    if (f == 0)
        f = lock_active_key(s, room.key_id, &k);
    if (f != 0)
        return f;
    if (!bc_key_next(k.kstate, BC_EV_ROOM_END) || k.room_id != room.id)
        return BC_KEY_NOT_INACTIVE_LIVE;
    return end_locked(s, &room, &k, BC_EV_ROOM_END, "ended by api");
}

enum bc_result bc_room_end(PGconn *c, int64_t app_id, int64_t room_id, const char *actor)
{
    return run_api(c, app_id, room_id, actor, room_end_tx);
}

static int room_delete_tx(struct sm *s, void *arg)
{
    struct api_arg *a = arg;
    struct room_row room;
    int f = lock_api_room(s, a, false, &room);
    if (f != 0)
        return f;
    if (strcmp(room.rstate, "LIVE") == 0 || strcmp(room.rstate, "LIVE_INACTIVE") == 0)
        return BC_ROOM_IS_LIVE;
    char b[24];
    const char *p[1] = {i64(room.id, b)};
    int rc = update_one(s, "room delete",
                        "UPDATE video_rooms SET state = 'DELETED', last_modified_at = now()"
                        " WHERE id = $1 AND state = 'ACTIVE'"
                        " AND video_room_state NOT IN ('LIVE', 'LIVE_INACTIVE') RETURNING id",
                        1, p);
    if (rc != 0)
        return rc;
    /* The entity state is not a videoRoomState: the row keeps the room's
     * state on both sides and says what changed in data. */
    json_t *d = json_pack("{s:s}", "state", "DELETED");
    rc = events_append(s->c, room.app_id, room.id, 0, "video_room_state", room.rstate,
                       room.rstate, s->actor, d, s->sqlstate);
    json_decref(d);
    if (rc != 0)
        return db_fail(s);
    log_info("state: room room_id=%" PRId64 " deleted actor=%s", room.id, s->actor);
    return notify(s, "room_deleted", room.id, 0, NULL);
}

enum bc_result bc_room_delete(PGconn *c, int64_t app_id, int64_t room_id, const char *actor)
{
    return run_api(c, app_id, room_id, actor, room_delete_tx);
}

static int key_reissue_tx(struct sm *s, void *arg)
{
    struct api_arg *a = arg;
    struct key_row k;
    int f = lock_key(s, a->id, &k);
    if (f < 0)
        return db_fail(s);
    if (f == 0 || k.app_id != a->app_id || strcmp(k.state, "ACTIVE") != 0)
        return BC_KEY_NOT_FOUND;
    if (strcmp(k.kstate, "INACTIVE") != 0)
        return BC_KEY_NOT_INACTIVE;
    char key[BC_STREAM_KEY_LEN + 1], prefix[BC_KEY_PREFIX_LEN + 1], b[24];
    if (bc_new_stream_key(key, prefix) != 0)
        return BC_ERR_DB;
    const char *p[4] = {i64(k.id, b), key, prefix};
    int rc = update_one(s, "key reissue",
                        "UPDATE stream_keys SET stream_key = $2, key_prefix = $3,"
                        " last_modified_at = now()"
                        " WHERE id = $1 AND stream_key_state = 'INACTIVE' RETURNING id",
                        3, p);
    if (rc != 0)
        return rc;
    log_info("state: key key_id=%" PRId64 " reissued actor=%s", k.id, s->actor);
    return event_row(s, k.app_id, 0, k.id, "stream_key_state",
                     json_pack("{s:b}", "reissued", 1)) ;
}

enum bc_result bc_key_reissue(PGconn *c, int64_t app_id, int64_t key_id, const char *actor)
{
    return run_api(c, app_id, key_id, actor, key_reissue_tx);
}

static int key_force_tx(struct sm *s, void *arg)
{
    struct api_arg *a = arg;
    struct key_row k;
    struct room_row room;
    int f = lock_key_and_room(s, a->id, &k, &room);
    if (f < 0)
        return f == SM_RETRY ? SM_RETRY : db_fail(s);
    if (f == 0 || k.app_id != a->app_id || strcmp(k.state, "ACTIVE") != 0)
        return BC_KEY_NOT_FOUND;
    return force_terminate_locked(s, &k, &room, "force-terminated");
}

enum bc_result bc_key_force_terminate(PGconn *c, int64_t app_id, int64_t key_id, const char *actor)
{
    return run_api(c, app_id, key_id, actor, key_force_tx);
}

static int members_delete_tx(struct sm *s, void *arg)
{
    struct api_arg *a = arg;
    char b[24];
    for (size_t i = 0; i < a->n; i++) {
        const char *p[2] = {i64(a->app_id, b), a->names[i]};
        PGresult *r = q(s, "member delete: find",
                        "SELECT m.id, COALESCE(k.id, 0) FROM members m"
                        " LEFT JOIN stream_keys k ON k.member_id = m.id AND k.state = 'ACTIVE'"
                        " WHERE m.app_id = $1 AND m.app_user_id = $2 AND m.state = 'ACTIVE'"
                        " FOR UPDATE OF m",
                        2, p);
        if (!r)
            return db_fail(s);
        if (PQntuples(r) != 1) {
            PQclear(r);
            a->missing = i;
            return BC_MEMBER_NOT_FOUND;
        }
        int64_t member_id = col_i64(r, 0, 0), key_id = col_i64(r, 0, 1);
        PQclear(r);
        if (key_id) {
            struct key_row k;
            struct room_row room;
            int f = lock_key_and_room(s, key_id, &k, &room);
            if (f < 0)
                return f == SM_RETRY ? SM_RETRY : db_fail(s);
            /* A key in use is force-terminated first: the publisher is
             * disconnected and a live room ends (SPEC API-2 + §2.1 "any"). */
            if (f == 1 && (strcmp(k.kstate, "INACTIVE") != 0 || k.room_id || k.session_id)) {
                int rc = force_terminate_locked(s, &k, &room, "member deleted");
                if (rc)
                    return rc;
            }
            char c2[24];
            const char *kp[1] = {i64(key_id, c2)};
            if (qx(s, "member delete: key",
                   "UPDATE stream_keys SET state = 'DELETED', last_modified_at = now()"
                   " WHERE id = $1",
                   1, kp) != 0)
                return db_fail(s);
            json_t *d = json_pack("{s:s}", "state", "DELETED");
            int rc = events_append(s->c, a->app_id, 0, key_id, "stream_key_state", k.kstate,
                                   k.kstate, s->actor, d, s->sqlstate);
            json_decref(d);
            if (rc != 0)
                return db_fail(s);
        }
        char c3[24];
        const char *mp[1] = {i64(member_id, c3)};
        if (qx(s, "member delete",
               "UPDATE members SET state = 'DELETED', last_modified_at = now() WHERE id = $1", 1,
               mp) != 0)
            return db_fail(s);
        log_info("state: member member_id=%" PRId64 " deleted actor=%s", member_id, s->actor);
    }
    return 0;
}

enum bc_result bc_members_delete(PGconn *c, int64_t app_id, const char *const *app_user_ids,
                                 size_t n, const char *actor, size_t *missing)
{
    struct api_arg a = {.app_id = app_id, .names = app_user_ids, .n = n};
    int rc = run_tx(c, actor, members_delete_tx, &a);
    if (missing)
        *missing = a.missing;
    return (enum bc_result)rc;
}

#define SM_NOT_ENDED 1004

static int room_archive_tx(struct sm *s, void *arg)
{
    struct api_arg *a = arg;
    struct room_row room;
    int f = lock_room(s, a->id, 0, false, &room);
    if (f < 0)
        return db_fail(s);
    if (f == 0 || !bc_room_next(room.rstate, BC_EV_SWEEP))
        return SM_NOT_ENDED;
    return room_move(s, &room, BC_EV_SWEEP, ", archived_at = now()", 0, NULL, NULL);
}

int bc_room_archive(PGconn *c, int64_t room_id, const char *actor)
{
    struct api_arg a = {.id = room_id};
    int rc = run_tx(c, actor, room_archive_tx, &a);
    return rc == 0 ? 0 : rc == SM_NOT_ENDED ? 1 : -1;
}

/* ------------------------------------------------------------------------
 * Ingest events
 * ------------------------------------------------------------------------ */
static bool key_is_held(const char *kstate)
{
    return strcmp(kstate, "ACTIVE_PREP") == 0 || strcmp(kstate, "ACTIVE") == 0 ||
           strcmp(kstate, "ACTIVE_LIVE") == 0 || strcmp(kstate, "ACTIVE_LIVE_PREP") == 0;
}

static void fill_publish(struct bc_publish *out, const struct key_row *k,
                         const struct room_row *room)
{
    out->key_id = k->id;
    out->app_id = k->app_id;
    out->member_id = k->member_id;
    out->room_id = k->room_id;
    snprintf(out->key_state, sizeof out->key_state, "%s", k->kstate);
    if (k->room_id && room->id == k->room_id) {
        out->room_next_msn = room->next_msn;
        out->room_session_no = room->session_no;
        out->room_recording = room->is_recording;
    } else {
        out->room_next_msn = 0;
        out->room_session_no = 0;
        out->room_recording = false;
    }
}

struct publish_arg {
    const char *stream_key, *node, *peer;
    int takeover_idle_sec, lease_sec;
    struct bc_publish *out;
};

static bool key_syntax_ok(const char *key)
{
    size_t n = strlen(key);
    if (n < 24 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = key[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            return false;
    }
    return true;
}

#define PUB_UNKNOWN 1001
#define PUB_BUSY 1002

static int publish_tx(struct sm *s, void *arg)
{
    struct publish_arg *a = arg;
    char prefix[BC_KEY_PREFIX_LEN + 1];
    memcpy(prefix, a->stream_key, BC_KEY_PREFIX_LEN);
    prefix[BC_KEY_PREFIX_LEN] = 0;
    const char *p[1] = {prefix};
    PGresult *r = q(s, "publish: find key",
                    "SELECT k.id FROM stream_keys k JOIN members m ON m.id = k.member_id"
                    " JOIN apps a ON a.id = k.app_id WHERE k.key_prefix = $1"
                    " AND k.state = 'ACTIVE' AND m.state = 'ACTIVE' AND a.state = 'ACTIVE'",
                    1, p);
    if (!r)
        return db_fail(s);
    int64_t key_id = PQntuples(r) == 1 ? col_i64(r, 0, 0) : 0;
    PQclear(r);
    if (!key_id)
        return PUB_UNKNOWN;
    struct key_row k;
    struct room_row room;
    int f = lock_key_and_room(s, key_id, &k, &room);
    if (f < 0)
        return f == SM_RETRY ? SM_RETRY : db_fail(s);
    /* ING-4: the whole key, compared in constant time, under the lock (a
     * reissue may have raced the lookup). */
    bool match = f == 1 && strcmp(k.state, "ACTIVE") == 0 && secure_str_equal(k.key, a->stream_key);
    memset(k.key, 0, sizeof k.key);
    if (!match)
        return PUB_UNKNOWN;

    a->out->replaced_session_id = 0;
    if (key_is_held(k.kstate)) {
        /* ING-6 / OPS-7: take over only an idle holder or an expired lease. */
        char b[24], c2[24];
        const char *sp[2] = {i64(k.id, b), i64(a->takeover_idle_sec, c2)};
        r = q(s, "publish: holder idle",
              "SELECT (lease_until IS NULL OR lease_until < now() OR last_media_at IS NULL"
              " OR last_media_at < now() - make_interval(secs => $2::int)) FROM stream_keys"
              " WHERE id = $1",
              2, sp);
        if (!r)
            return db_fail(s);
        bool stale = PQntuples(r) == 1 && col_bool(r, 0, 0);
        PQclear(r);
        if (!stale)
            return PUB_BUSY;
        int64_t old = k.session_id;
        int rc = gone_locked(s, &k, &room, "taken over");
        if (rc)
            return rc;
        a->out->replaced_session_id = old;
    }

    char b[24], c2[24], roombuf[24];
    const char *ip[5] = {i64(k.app_id, b), i64(k.id, c2), k.room_id ? i64(k.room_id, roombuf) : NULL,
                         a->node, a->peer};
    r = q(s, "publish: session",
          "INSERT INTO ingest_sessions (app_id, stream_key_id, video_room_id, node_id, peer)"
          " VALUES ($1, $2, $3, $4, $5) RETURNING id",
          5, ip);
    if (!r)
        return db_fail(s);
    int64_t session_id = col_i64(r, 0, 0);
    PQclear(r);

    char d[24], e[24];
    const char *kp[3] = {a->node, i64(a->lease_sec, d), i64(session_id, e)};
    int rc = key_move(s, &k, BC_EV_PUBLISH, k.room_id,
                      ", node_id = $4, lease_until = now() + make_interval(secs => $5::int),"
                      " ingest_session_id = $6, last_media_at = now(), error = NULL",
                      3, kp, json_pack("{s:I, s:s}", "sessionId", (json_int_t)session_id, "node",
                                       a->node));
    if (rc)
        return rc;
    k.session_id = session_id;
    snprintf(k.node, sizeof k.node, "%s", a->node);
    rc = event_row(s, k.app_id, k.room_id, k.id, "connected",
                   json_pack("{s:I, s:s, s:s}", "sessionId", (json_int_t)session_id, "node",
                             a->node, "peer", a->peer ? a->peer : ""));
    if (rc)
        return rc;
    fill_publish(a->out, &k, &room);
    a->out->session_id = session_id;
    return 0;
}

enum bc_publish_status bc_ingest_publish(PGconn *c, const char *stream_key, const char *node_id,
                                         const char *peer, int takeover_idle_sec, int lease_sec,
                                         struct bc_publish *out)
{
    memset(out, 0, sizeof *out);
    if (!stream_key || !key_syntax_ok(stream_key) || !node_id || !node_id[0])
        return BC_PUBLISH_UNKNOWN_KEY;
    char actor[160];
    snprintf(actor, sizeof actor, "ingest:%s", node_id);
    struct publish_arg a = {stream_key, node_id, peer, takeover_idle_sec, lease_sec, out};
    int rc = run_tx(c, actor, publish_tx, &a);
    if (rc == 0)
        return BC_PUBLISH_OK;
    memset(out, 0, sizeof *out);
    if (rc == PUB_UNKNOWN)
        return BC_PUBLISH_UNKNOWN_KEY;
    if (rc == PUB_BUSY)
        return BC_PUBLISH_BUSY;
    return BC_PUBLISH_ERROR;
}

struct segment_arg {
    int64_t key_id, session_id;
    int early_sec;
    struct bc_publish *out;
};

#define SM_STALE 1003 /* the session no longer holds the key */

static int first_segment_tx(struct sm *s, void *arg)
{
    struct segment_arg *a = arg;
    char b[24], c2[24];
    const char *p[2] = {i64(a->key_id, b), i64(a->early_sec, c2)};
    /* Unlocked read: the bound room, or the §2.3 auto-start candidate, so
     * the room can be locked before the key. */
    PGresult *r = q(s, "first segment: read",
                    "SELECT COALESCE(k.video_room_id, 0), k.stream_key_state,"
                    " COALESCE((SELECT r.id FROM video_rooms r WHERE r.member_id = k.member_id"
                    "   AND r.state = 'ACTIVE' AND r.video_room_state = 'SCHEDULED'"
                    "   AND r.type = 'BROADCAST_RTMP' AND r.auto_start"
                    "   AND r.scheduled_at <= now() + make_interval(secs => $2::int)"
                    "   ORDER BY r.scheduled_at, r.id LIMIT 1), 0)"
                    " FROM stream_keys k WHERE k.id = $1",
                    2, p);
    if (!r)
        return db_fail(s);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return SM_STALE;
    }
    int64_t bound = col_i64(r, 0, 0), candidate = col_i64(r, 0, 2);
    PQclear(r);
    struct room_row room;
    memset(&room, 0, sizeof room);
    int64_t lock_id = bound ? bound : candidate;
    if (lock_id && lock_room(s, lock_id, 0, false, &room) < 0)
        return db_fail(s);
    struct key_row k;
    int f = lock_key(s, a->key_id, &k);
    if (f < 0)
        return db_fail(s);
    if (f == 0 || k.session_id != a->session_id)
        return SM_STALE;
    if (k.room_id != bound)
        return SM_RETRY;
    snprintf(s->actor_buf, sizeof s->actor_buf, "ingest:%s", k.node);
    s->actor = s->actor_buf;
    char e[24];
    const char *sp[1] = {i64(a->session_id, e)};
    if (strcmp(k.kstate, "ACTIVE_PREP") == 0 || strcmp(k.kstate, "ACTIVE_LIVE_PREP") == 0) {
        if (qx(s, "first segment: session",
               "UPDATE ingest_sessions SET state = 'ACTIVE', first_segment_at = now()"
               " WHERE id = $1 AND state = 'PREP'",
               1, sp) != 0)
            return db_fail(s);
    }
    int rc = 0;
    if (strcmp(k.kstate, "ACTIVE_PREP") == 0) {
        rc = key_move(s, &k, BC_EV_FIRST_SEGMENT, 0, NULL, 0, NULL, NULL);
        if (rc)
            return rc;
        if (candidate && room.id == candidate) {
            /* SPEC §2.3: re-check the candidate under its lock. */
            char g[24];
            const char *cp[2] = {i64(candidate, g), p[1]};
            r = q(s, "auto-start: recheck",
                  "SELECT 1 FROM video_rooms WHERE id = $1 AND state = 'ACTIVE'"
                  " AND video_room_state = 'SCHEDULED' AND type = 'BROADCAST_RTMP' AND auto_start"
                  " AND scheduled_at <= now() + make_interval(secs => $2::int)",
                  2, cp);
            if (!r)
                return db_fail(s);
            bool still = PQntuples(r) == 1;
            PQclear(r);
            if (still) {
                rc = start_locked(s, &room, &k, json_pack("{s:b}", "autoStart", 1));
                if (rc)
                    return rc;
            }
        }
    } else if (strcmp(k.kstate, "ACTIVE_LIVE_PREP") == 0) {
        rc = key_move(s, &k, BC_EV_FIRST_SEGMENT, k.room_id, NULL, 0, NULL, NULL);
        if (rc)
            return rc;
        if (room.id && strcmp(room.rstate, "LIVE_INACTIVE") == 0) {
            rc = room_move(s, &room, BC_EV_FIRST_SEGMENT, ", inactive_since = NULL", 0, NULL, NULL);
            if (rc)
                return rc;
        }
    }
    fill_publish(a->out, &k, &room);
    a->out->session_id = a->session_id;
    return 0;
}

int bc_ingest_first_segment(PGconn *c, int64_t key_id, int64_t session_id,
                            int auto_start_early_sec, struct bc_publish *out)
{
    memset(out, 0, sizeof *out);
    struct segment_arg a = {key_id, session_id, auto_start_early_sec, out};
    int rc = run_tx(c, "ingest", first_segment_tx, &a);
    return rc == 0 ? 0 : rc == SM_STALE ? 1 : -1;
}

struct closed_arg {
    int64_t key_id, session_id;
    const char *reason;
};

static int closed_tx(struct sm *s, void *arg)
{
    struct closed_arg *a = arg;
    struct key_row k;
    struct room_row room;
    int f = lock_key_and_room(s, a->key_id, &k, &room);
    if (f < 0)
        return f == SM_RETRY ? SM_RETRY : db_fail(s);
    snprintf(s->actor_buf, sizeof s->actor_buf, "ingest:%s", f == 1 && k.node[0] ? k.node : "-");
    s->actor = s->actor_buf;
    if (f == 0 || k.session_id != a->session_id || !key_is_held(k.kstate)) {
        /* Not the holder any more (taken over, force-terminated, ended):
         * close only its own row. Committed, so return 0 and report via flag. */
        struct key_row ghost = {.id = f == 1 ? k.id : 0, .app_id = f == 1 ? k.app_id : 0};
        if (f == 1) {
            int rc = close_session(s, &ghost, 0, a->session_id, a->reason);
            if (rc)
                return rc;
        }
        a->key_id = -1; /* flag: stale */
        return 0;
    }
    return gone_locked(s, &k, &room, a->reason);
}

int bc_ingest_closed(PGconn *c, int64_t key_id, int64_t session_id, const char *reason)
{
    struct closed_arg a = {key_id, session_id, reason ? reason : "closed"};
    int rc = run_tx(c, "ingest", closed_tx, &a);
    if (rc != 0)
        return -1;
    return a.key_id == -1 ? 1 : 0;
}

int bc_ingest_heartbeat(PGconn *c, int64_t key_id, int64_t session_id, int lease_sec)
{
    char a[24], b[24], d[24];
    const char *p[3] = {i64(key_id, a), i64(session_id, b), i64(lease_sec, d)};
    PGresult *r = db_exec(c, "ingest heartbeat",
                          "UPDATE stream_keys SET lease_until = now() + make_interval(secs => $3::int),"
                          " last_media_at = now() WHERE id = $1 AND ingest_session_id = $2"
                          " RETURNING id",
                          3, p, NULL);
    if (!r)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    return n == 1 ? 0 : 1;
}

int bc_room_set_hls_position(PGconn *c, int64_t room_id, int64_t next_msn, int session_no)
{
    char a[24], b[24], d[24];
    const char *p[3] = {i64(room_id, a), i64(next_msn, b), i64(session_no, d)};
    PGresult *r = db_exec(c, "room hls position",
                          "UPDATE video_rooms SET hls_next_msn = $2, hls_session_no = $3"
                          " WHERE id = $1",
                          3, p, NULL);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */
struct timer_arg {
    int64_t room_id;
    bool changed;
};

static int auto_end_tx(struct sm *s, void *arg)
{
    struct timer_arg *a = arg;
    struct room_row room;
    struct key_row k;
    memset(&k, 0, sizeof k);
    a->changed = false;
    int f = lock_room(s, a->room_id, 0, false, &room);
    if (f < 0)
        return db_fail(s);
    if (f == 0 || (!room.auto_due && !room.max_due))
        return 0;
    if (room.key_id) {
        f = lock_key(s, room.key_id, &k);
        if (f < 0)
            return db_fail(s);
        if (f == 0 || k.room_id != room.id)
            memset(&k, 0, sizeof k);
    }
    if (room.max_due) {
        a->changed = true;
        return end_locked(s, &room, k.id ? &k : NULL, BC_EV_MAX_DURATION, "maxDurationSec reached");
    }
    /* autoEndAfterSec: only while nobody has reconnected. */
    if (k.id && strcmp(k.kstate, "INACTIVE_LIVE") != 0)
        return 0;
    a->changed = true;
    return end_locked(s, &room, k.id ? &k : NULL, BC_EV_AUTO_END, "autoEndAfterSec elapsed");
}

int bc_rooms_auto_end(PGconn *c)
{
    PGresult *r = db_exec(c, "auto end: candidates",
                          "SELECT id FROM video_rooms WHERE video_room_state IN ('LIVE', 'LIVE_INACTIVE')"
                          " AND ((video_room_state = 'LIVE_INACTIVE' AND auto_end_after_sec IS NOT NULL"
                          "   AND inactive_since <= now() - make_interval(secs => auto_end_after_sec))"
                          "  OR (max_duration_sec IS NOT NULL"
                          "   AND started_at <= now() - make_interval(secs => max_duration_sec)))"
                          " ORDER BY id LIMIT 1000",
                          0, NULL, NULL);
    if (!r)
        return -1;
    int n = PQntuples(r), changed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        struct timer_arg a = {.room_id = col_i64(r, i, 0)};
        if (run_tx(c, "timer", auto_end_tx, &a) != 0)
            failed++;
        else if (a.changed)
            changed++;
    }
    PQclear(r);
    return failed && !changed ? -1 : changed;
}

struct recover_arg {
    int64_t key_id;
    const char *node;
    bool changed;
};

static int recover_tx(struct sm *s, void *arg)
{
    struct recover_arg *a = arg;
    struct key_row k;
    struct room_row room;
    a->changed = false;
    int f = lock_key_and_room(s, a->key_id, &k, &room);
    if (f < 0)
        return f == SM_RETRY ? SM_RETRY : db_fail(s);
    if (f == 0 || strcmp(k.node, a->node) != 0)
        return 0;
    if (!key_is_held(k.kstate)) {
        /* holder fields without a publisher state: just clear them */
        char b[24];
        const char *p[1] = {i64(k.id, b)};
        return qx(s, "recover: clear holder",
                  "UPDATE stream_keys SET node_id = NULL, lease_until = NULL,"
                  " ingest_session_id = NULL WHERE id = $1",
                  1, p) == 0
                   ? 0
                   : db_fail(s);
    }
    a->changed = true;
    return gone_locked(s, &k, &room, "node restart");
}

int bc_node_recover(PGconn *c, const char *node_id)
{
    const char *p[1] = {node_id};
    PGresult *r = db_exec(c, "recover: keys",
                          "SELECT id FROM stream_keys WHERE node_id = $1 ORDER BY id", 1, p, NULL);
    if (!r)
        return -1;
    int n = PQntuples(r), changed = 0, failed = 0;
    char actor[160];
    snprintf(actor, sizeof actor, "recover:%s", node_id);
    for (int i = 0; i < n; i++) {
        struct recover_arg a = {.key_id = col_i64(r, i, 0), .node = node_id};
        if (run_tx(c, actor, recover_tx, &a) != 0)
            failed++;
        else if (a.changed)
            changed++;
    }
    PQclear(r);
    r = db_exec(c, "recover: sessions",
                "UPDATE ingest_sessions SET state = 'CLOSED', ended_at = now(),"
                " close_reason = 'node restart' WHERE node_id = $1 AND state <> 'CLOSED'",
                1, p, NULL);
    if (!r)
        return -1;
    PQclear(r);
    if (changed || failed)
        log_info("state: recovered node=%s keys=%d failed=%d", node_id, changed, failed);
    return failed ? -1 : changed;
}

int bc_new_stream_key(char *key, char *prefix)
{
    if (secure_random_alnum(key, BC_STREAM_KEY_LEN) != 0)
        return -1;
    memcpy(prefix, key, BC_KEY_PREFIX_LEN);
    prefix[BC_KEY_PREFIX_LEN] = 0;
    return 0;
}
