/* recordings.c — recordings rows, their state changes and expiry (see
 * recordings.h). One statement per change; events written in the same one. */
#include "storage/recordings.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

#define ISO(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
/* Effective expiry (REC-4) of a row r of room v in app a; TTL is the
 * parameter holding the node's recording_ttl_sec. */
#define EXPIRY(TTL) \
    "COALESCE(r.expires_at, v.ended_at + make_interval(secs => COALESCE(a.recording_ttl_sec, " TTL "::int)))"
#define ROW_COLS(TTL)                                                                          \
    "r.id, r.app_id, r.video_room_id, r.status, r.filename, r.path, r.node_id, "               \
    "COALESCE(r.failure_reason, ''), r.size_bytes, r.duration_ms, " ISO("r.started_at") ", "   \
    "COALESCE(" ISO("r.ended_at") ", ''), "                                                    \
    "COALESCE(floor(extract(epoch FROM " EXPIRY(TTL) "))::bigint, 0)"
#define ROW_NCOLS 13
#define ROW_JOIN "JOIN video_rooms v ON v.id = r.video_room_id JOIN apps a ON a.id = r.app_id"

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void parse_row(const PGresult *res, int i, int col, struct recording_row *o)
{
    memset(o, 0, sizeof *o);
    o->id = db_get_i64(res, i, col + 0);
    o->app_id = db_get_i64(res, i, col + 1);
    o->room_id = db_get_i64(res, i, col + 2);
    copy_str(o->status, sizeof o->status, db_get_str(res, i, col + 3));
    copy_str(o->filename, sizeof o->filename, db_get_str(res, i, col + 4));
    copy_str(o->path, sizeof o->path, db_get_str(res, i, col + 5));
    copy_str(o->node_id, sizeof o->node_id, db_get_str(res, i, col + 6));
    copy_str(o->failure_reason, sizeof o->failure_reason, db_get_str(res, i, col + 7));
    o->size_bytes = db_get_i64(res, i, col + 8);
    o->duration_ms = db_get_i64(res, i, col + 9);
    copy_str(o->started_at, sizeof o->started_at, db_get_str(res, i, col + 10));
    copy_str(o->ended_at, sizeof o->ended_at, db_get_str(res, i, col + 11));
    o->expires_at = db_get_i64(res, i, col + 12);
}

static void i64s(char *buf, size_t n, int64_t v) { snprintf(buf, n, "%" PRId64, v); }

int recordings_create(PGconn *c, const struct recording_new *in, struct recording_row *out)
{
    char room[24], sess[24];
    i64s(room, sizeof room, in->room_id);
    i64s(sess, sizeof sess, in->ingest_session_id);
    const char *p[4] = {room, in->ingest_session_id > 0 ? sess : NULL, in->node_id, in->actor};
    PGresult *res = db_exec(
        c, "recordings_create",
        "WITH room AS ("
        "  SELECT id, app_id FROM video_rooms"
        "   WHERE id = $1 AND state = 'ACTIVE' AND video_room_state IN ('LIVE', 'LIVE_INACTIVE')"
        "     AND recording FOR UPDATE),"
        " nid AS (SELECT nextval(pg_get_serial_sequence('recordings', 'id')) AS id FROM room),"
        " ins AS ("
        "  INSERT INTO recordings (id, app_id, video_room_id, ingest_session_id, node_id, status,"
        "                          filename, path)"
        "  SELECT nid.id, room.app_id, room.id, $2::bigint, $3, 'RECORDING',"
        "         'room' || room.id || '-' || to_char(now() AT TIME ZONE 'UTC',"
        "             'YYYYMMDD\"T\"HH24MISS\"Z\"') || '-' || nid.id || '.mp4',"
        "         'recordings/' || room.app_id || '/' || room.id || '/' || nid.id || '.mp4'"
        "    FROM room, nid RETURNING *),"
        " upd AS (UPDATE video_rooms v SET is_recording = true, recording_error = NULL"
        "          FROM ins WHERE v.id = ins.video_room_id RETURNING v.id),"
        " ev AS (INSERT INTO events (app_id, video_room_id, type, to_state, actor, data)"
        "        SELECT app_id, video_room_id, 'recording_started', 'RECORDING', $4,"
        "               jsonb_build_object('recordingId', id, 'filename', filename) FROM ins"
        "        RETURNING id, app_id),"
        " wh AS (INSERT INTO webhook_deliveries (app_id, event_id)"
        "        SELECT ev.app_id, ev.id FROM ev JOIN apps a ON a.id = ev.app_id"
        "         WHERE a.webhook_url IS NOT NULL)"
        " SELECT " ROW_COLS("0") ", (SELECT count(*) FROM upd), (SELECT count(*) FROM ev)"
        "   FROM ins r " ROW_JOIN,
        4, p, NULL);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1) {
        parse_row(res, 0, 0, out);
        PQclear(res);
        return 0;
    }
    PQclear(res);
    /* Why not: tell the caller which guard failed. */
    const char *q[1] = {room};
    res = db_exec(c, "recordings_create_why",
                  "SELECT video_room_state, recording FROM video_rooms WHERE id = $1 AND state = 'ACTIVE'",
                  1, q, NULL);
    if (!res)
        return -1;
    if (PQntuples(res) == 0)
        rc = RECORDINGS_NOT_FOUND;
    else if (strcmp(db_get_str(res, 0, 1), "t") != 0)
        rc = RECORDINGS_DISABLED;
    else
        rc = RECORDINGS_WRONG_STATE;
    PQclear(res);
    return rc;
}

static int one_row_or(PGresult *res, int otherwise)
{
    if (!res)
        return -1;
    int n = PQntuples(res);
    PQclear(res);
    return n > 0 ? 0 : otherwise;
}

int recordings_close(PGconn *c, int64_t id, int64_t size_bytes, int64_t duration_ms,
                     bool stop_intent, const char *actor)
{
    char sid[24], ssz[24], sdur[24];
    i64s(sid, sizeof sid, id);
    i64s(ssz, sizeof ssz, size_bytes < 0 ? 0 : size_bytes);
    i64s(sdur, sizeof sdur, duration_ms < 0 ? 0 : duration_ms);
    const char *p[5] = {sid, ssz, sdur, stop_intent ? "true" : "false", actor};
    PGresult *res = db_exec(
        c, "recordings_close",
        "WITH u AS ("
        "  UPDATE recordings SET status = 'PROCESSING', size_bytes = $2, duration_ms = $3,"
        "         ended_at = now(), last_modified_at = now()"
        "   WHERE id = $1 AND status = 'RECORDING'"
        "  RETURNING id, app_id, video_room_id, filename, size_bytes, duration_ms),"
        " room AS ("
        "  UPDATE video_rooms v SET is_recording = false FROM u"
        "   WHERE $4::boolean AND v.id = u.video_room_id"
        "     AND NOT EXISTS (SELECT 1 FROM recordings o WHERE o.video_room_id = u.video_room_id"
        "                        AND o.status = 'RECORDING' AND o.id <> u.id)"
        "  RETURNING v.id),"
        " ev AS ("
        "  INSERT INTO events (app_id, video_room_id, type, from_state, to_state, actor, data)"
        "  SELECT app_id, video_room_id, 'recording_stopped', 'RECORDING', 'PROCESSING', $5,"
        "         jsonb_build_object('recordingId', id, 'filename', filename,"
        "                            'sizeBytes', size_bytes, 'durationMs', duration_ms)"
        "    FROM u RETURNING id, app_id),"
        " wh AS (INSERT INTO webhook_deliveries (app_id, event_id)"
        "        SELECT ev.app_id, ev.id FROM ev JOIN apps a ON a.id = ev.app_id"
        "         WHERE a.webhook_url IS NOT NULL)"
        " SELECT u.id, (SELECT count(*) FROM room), (SELECT count(*) FROM ev) FROM u",
        5, p, NULL);
    return one_row_or(res, RECORDINGS_WRONG_STATE);
}

int recordings_mark_ready(PGconn *c, int64_t id, int64_t size_bytes, int64_t duration_ms,
                          int default_ttl_sec, const char *actor)
{
    char sid[24], ssz[24], sdur[24], sttl[16];
    i64s(sid, sizeof sid, id);
    i64s(ssz, sizeof ssz, size_bytes < 0 ? 0 : size_bytes);
    i64s(sdur, sizeof sdur, duration_ms < 0 ? 0 : duration_ms);
    snprintf(sttl, sizeof sttl, "%d", default_ttl_sec);
    const char *p[5] = {sid, ssz, sdur, sttl, actor};
    PGresult *res = db_exec(
        c, "recordings_mark_ready",
        "WITH old AS (SELECT id, status FROM recordings WHERE id = $1 FOR UPDATE),"
        " u AS ("
        "  UPDATE recordings r SET status = 'READY', size_bytes = $2, duration_ms = $3,"
        "         ended_at = COALESCE(r.ended_at, now()), last_modified_at = now(),"
        "         expires_at = COALESCE(r.expires_at,"
        "            (SELECT v.ended_at + make_interval(secs => COALESCE(a.recording_ttl_sec, $4::int))"
        "               FROM video_rooms v JOIN apps a ON a.id = v.app_id"
        "              WHERE v.id = r.video_room_id))"
        "    FROM old WHERE r.id = old.id AND old.status IN ('RECORDING', 'PROCESSING')"
        "  RETURNING r.id, r.app_id, r.video_room_id, r.filename, old.status AS from_status),"
        " ev AS ("
        "  INSERT INTO events (app_id, video_room_id, type, from_state, to_state, actor, data)"
        "  SELECT app_id, video_room_id, 'recording_state', from_status, 'READY', $5,"
        "         jsonb_build_object('recordingId', id, 'filename', filename,"
        "                            'sizeBytes', $2::bigint, 'durationMs', $3::bigint)"
        "    FROM u RETURNING id, app_id),"
        " wh AS (INSERT INTO webhook_deliveries (app_id, event_id)"
        "        SELECT ev.app_id, ev.id FROM ev JOIN apps a ON a.id = ev.app_id"
        "         WHERE a.webhook_url IS NOT NULL)"
        " SELECT u.id, (SELECT count(*) FROM ev) FROM u",
        5, p, NULL);
    return one_row_or(res, RECORDINGS_WRONG_STATE);
}

int recordings_mark_failed(PGconn *c, int64_t id, const char *reason, const char *actor)
{
    char sid[24];
    i64s(sid, sizeof sid, id);
    const char *p[3] = {sid, reason && reason[0] ? reason : "unknown error", actor};
    PGresult *res = db_exec(
        c, "recordings_mark_failed",
        "WITH old AS (SELECT id, status FROM recordings WHERE id = $1 FOR UPDATE),"
        " u AS ("
        "  UPDATE recordings r SET status = 'FAILED', failure_reason = left($2, 500),"
        "         ended_at = COALESCE(r.ended_at, now()), last_modified_at = now()"
        "    FROM old WHERE r.id = old.id AND old.status IN ('RECORDING', 'PROCESSING')"
        "  RETURNING r.id, r.app_id, r.video_room_id, old.status AS from_status),"
        " room AS ("
        "  UPDATE video_rooms v SET recording_error = left($2, 500),"
        "         is_recording = CASE WHEN u.from_status = 'RECORDING' THEN false"
        "                             ELSE v.is_recording END"
        "    FROM u WHERE v.id = u.video_room_id RETURNING v.id),"
        " ev AS ("
        "  INSERT INTO events (app_id, video_room_id, type, from_state, to_state, actor, data)"
        "  SELECT app_id, video_room_id, 'recording_state', from_status, 'FAILED', $3,"
        "         jsonb_build_object('recordingId', id, 'reason', left($2, 500)) FROM u RETURNING id, app_id),"
        " wh AS (INSERT INTO webhook_deliveries (app_id, event_id)"
        "        SELECT ev.app_id, ev.id FROM ev JOIN apps a ON a.id = ev.app_id"
        "         WHERE a.webhook_url IS NOT NULL)"
        " SELECT u.id, (SELECT count(*) FROM room), (SELECT count(*) FROM ev) FROM u",
        3, p, NULL);
    return one_row_or(res, RECORDINGS_WRONG_STATE);
}

int recordings_set_expiry_for_room(PGconn *c, int64_t room_id, int default_ttl_sec)
{
    char sroom[24], sttl[16];
    i64s(sroom, sizeof sroom, room_id);
    snprintf(sttl, sizeof sttl, "%d", default_ttl_sec);
    const char *p[2] = {sroom, sttl};
    PGresult *res = db_exec(
        c, "recordings_set_expiry_for_room",
        "UPDATE recordings r"
        "   SET expires_at = v.ended_at + make_interval(secs => COALESCE(a.recording_ttl_sec, $2::int))"
        "  FROM video_rooms v JOIN apps a ON a.id = v.app_id"
        " WHERE r.video_room_id = $1 AND v.id = r.video_room_id AND v.ended_at IS NOT NULL"
        "   AND r.expires_at IS NULL",
        2, p, NULL);
    if (!res)
        return -1;
    int n = atoi(PQcmdTuples(res));
    PQclear(res);
    return n;
}

int recordings_get(PGconn *c, int64_t id, int default_ttl_sec, struct recording_row *out)
{
    char sid[24], sttl[16];
    i64s(sid, sizeof sid, id);
    snprintf(sttl, sizeof sttl, "%d", default_ttl_sec);
    const char *p[2] = {sid, sttl};
    PGresult *res = db_exec(c, "recordings_get",
                            "SELECT " ROW_COLS("$2") " FROM recordings r " ROW_JOIN " WHERE r.id = $1",
                            2, p, NULL);
    if (!res)
        return -1;
    int rc = RECORDINGS_NOT_FOUND;
    if (PQntuples(res) == 1) {
        parse_row(res, 0, 0, out);
        rc = 0;
    }
    PQclear(res);
    return rc;
}

int recordings_list_for_room(PGconn *c, int64_t app_id, int64_t room_id, int default_ttl_sec,
                             struct recordings_room *room, struct recording_row **rows, int *nrows)
{
    *rows = NULL;
    *nrows = 0;
    char sroom[24], sapp[24], sttl[16];
    i64s(sroom, sizeof sroom, room_id);
    i64s(sapp, sizeof sapp, app_id);
    snprintf(sttl, sizeof sttl, "%d", default_ttl_sec);
    const char *p[3] = {sroom, sapp, sttl};
    PGresult *res = db_exec(
        c, "recordings_list_room",
        "SELECT v.id, v.app_id, v.video_room_state, v.recording, v.is_recording,"
        "       COALESCE(v.recording_error, ''), v.ended_at IS NOT NULL,"
        "       COALESCE(floor(extract(epoch FROM v.ended_at + make_interval(secs =>"
        "                COALESCE(a.recording_ttl_sec, $3::int))))::bigint, 0),"
        "       floor(extract(epoch FROM now()))::bigint,"
        "       COALESCE(" ISO("v.ended_at + make_interval(secs => COALESCE(a.recording_ttl_sec, $3::int))") ", '')"
        "  FROM video_rooms v JOIN apps a ON a.id = v.app_id"
        " WHERE v.id = $1 AND v.app_id = $2 AND v.state = 'ACTIVE'",
        3, p, NULL);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return RECORDINGS_NOT_FOUND;
    }
    memset(room, 0, sizeof *room);
    room->id = db_get_i64(res, 0, 0);
    room->app_id = db_get_i64(res, 0, 1);
    copy_str(room->video_room_state, sizeof room->video_room_state, db_get_str(res, 0, 2));
    room->recording_enabled = strcmp(db_get_str(res, 0, 3), "t") == 0;
    room->is_recording = strcmp(db_get_str(res, 0, 4), "t") == 0;
    copy_str(room->recording_error, sizeof room->recording_error, db_get_str(res, 0, 5));
    room->ended = strcmp(db_get_str(res, 0, 6), "t") == 0;
    room->expires_at = db_get_i64(res, 0, 7);
    room->now = db_get_i64(res, 0, 8);
    copy_str(room->expires_at_iso, sizeof room->expires_at_iso, db_get_str(res, 0, 9));
    PQclear(res);

    const char *q[2] = {sroom, sttl};
    res = db_exec(c, "recordings_list_rows",
                  "SELECT " ROW_COLS("$2") " FROM recordings r " ROW_JOIN
                  " WHERE r.video_room_id = $1 ORDER BY r.id LIMIT 10000",
                  2, q, NULL);
    if (!res)
        return -1;
    int n = PQntuples(res);
    if (n > 0) {
        *rows = calloc((size_t)n, sizeof **rows);
        if (!*rows) {
            PQclear(res);
            return -1;
        }
        for (int i = 0; i < n; i++)
            parse_row(res, i, 0, &(*rows)[i]);
    }
    *nrows = n;
    PQclear(res);
    return 0;
}

int recordings_request(PGconn *c, int64_t app_id, int64_t room_id, bool start, bool *is_recording)
{
    char sroom[24], sapp[24];
    i64s(sroom, sizeof sroom, room_id);
    i64s(sapp, sizeof sapp, app_id);
    const char *p[3] = {sroom, sapp, start ? "true" : "false"};
    /* The notify is in the same statement (so the same transaction) as the
     * update: it is delivered only if the change commits (OPS-7). */
    PGresult *res = db_exec(
        c, "recordings_request",
        "WITH cur AS ("
        "  SELECT id, video_room_state, recording, is_recording, stream_key_id FROM video_rooms"
        "   WHERE id = $1 AND app_id = $2 AND state = 'ACTIVE' FOR UPDATE),"
        " u AS ("
        "  UPDATE video_rooms v SET is_recording = $3::boolean,"
        "         recording_error = CASE WHEN $3::boolean THEN NULL ELSE v.recording_error END"
        "    FROM cur WHERE v.id = cur.id AND cur.video_room_state IN ('LIVE', 'LIVE_INACTIVE')"
        "     AND (cur.recording OR NOT $3::boolean)"
        "  RETURNING v.id, v.is_recording, v.stream_key_id),"
        " n AS ("
        "  SELECT pg_notify('castgate', json_build_object("
        "           'type', CASE WHEN $3::boolean THEN 'recording_start' ELSE 'recording_stop' END,"
        "           'roomId', u.id, 'keyId', u.stream_key_id, 'node', NULL)::text) FROM u)"
        " SELECT cur.video_room_state, cur.recording,"
        "        COALESCE((SELECT is_recording FROM u), cur.is_recording),"
        "        (SELECT count(*) FROM u), (SELECT count(*) FROM n)"
        "   FROM cur",
        3, p, NULL);
    if (!res)
        return -1;
    int rc;
    if (PQntuples(res) != 1)
        rc = RECORDINGS_NOT_FOUND;
    else {
        const char *state = db_get_str(res, 0, 0);
        bool live = strcmp(state, "LIVE") == 0 || strcmp(state, "LIVE_INACTIVE") == 0;
        *is_recording = strcmp(db_get_str(res, 0, 2), "t") == 0;
        if (db_get_i64(res, 0, 3) == 1)
            rc = 0;
        else if (!live)
            rc = RECORDINGS_WRONG_STATE;
        else
            rc = RECORDINGS_DISABLED;
    }
    PQclear(res);
    return rc;
}

static pthread_mutex_t secret_mu = PTHREAD_MUTEX_INITIALIZER;
static char secret_cache[128];

int recordings_signing_secret(PGconn *c, const struct config *cfg, char *out, size_t outlen)
{
    if (cfg && cfg->token_secret[0]) {
        copy_str(out, outlen, cfg->token_secret);
        return 0;
    }
    pthread_mutex_lock(&secret_mu);
    if (secret_cache[0]) {
        copy_str(out, outlen, secret_cache);
        pthread_mutex_unlock(&secret_mu);
        return 0;
    }
    pthread_mutex_unlock(&secret_mu);
    char fresh[65];
    if (secure_random_alnum(fresh, 64) != 0)
        return -1;
    const char *p[1] = {fresh};
    /* The first node to ask creates it; every node then reads the same one. */
    PGresult *res = db_exec(c, "recordings_secret",
                            "WITH ins AS (INSERT INTO cluster_secrets (name, value)"
                            "             VALUES ('download_url', $1) ON CONFLICT (name) DO NOTHING"
                            "             RETURNING value)"
                            " SELECT value FROM ins UNION ALL"
                            " SELECT value FROM cluster_secrets WHERE name = 'download_url'",
                            1, p, NULL);
    if (!res)
        return -1;
    int rc = -1;
    if (PQntuples(res) >= 1 && db_get_str(res, 0, 0)) {
        pthread_mutex_lock(&secret_mu);
        copy_str(secret_cache, sizeof secret_cache, db_get_str(res, 0, 0));
        copy_str(out, outlen, secret_cache);
        pthread_mutex_unlock(&secret_mu);
        rc = 0;
    }
    PQclear(res);
    return rc;
}

int recordings_claim_unfinished(PGconn *c, const char *node_id, const char *actor,
                                struct recording_row **rows, int *nrows)
{
    *rows = NULL;
    *nrows = 0;
    const char *p[2] = {node_id, actor};
    PGresult *res = db_exec(
        c, "recordings_claim_unfinished",
        "WITH old AS (SELECT id, status FROM recordings"
        "              WHERE node_id = $1 AND status IN ('RECORDING', 'PROCESSING') FOR UPDATE),"
        " u AS ("
        "  UPDATE recordings r SET status = 'PROCESSING', ended_at = COALESCE(r.ended_at, now()),"
        "         last_modified_at = now()"
        "    FROM old WHERE r.id = old.id RETURNING r.*, old.status AS from_status),"
        " ev AS ("
        "  INSERT INTO events (app_id, video_room_id, type, from_state, to_state, actor, data)"
        "  SELECT app_id, video_room_id, 'recording_stopped', 'RECORDING', 'PROCESSING', $2,"
        "         jsonb_build_object('recordingId', id, 'filename', filename, 'reason', 'node restart')"
        "    FROM u WHERE from_status = 'RECORDING' RETURNING id, app_id),"
        " wh AS (INSERT INTO webhook_deliveries (app_id, event_id)"
        "        SELECT ev.app_id, ev.id FROM ev JOIN apps a ON a.id = ev.app_id"
        "         WHERE a.webhook_url IS NOT NULL)"
        " SELECT " ROW_COLS("0") ", (SELECT count(*) FROM ev) FROM u r " ROW_JOIN " ORDER BY r.id",
        2, p, NULL);
    if (!res)
        return -1;
    int n = PQntuples(res);
    if (n > 0) {
        *rows = calloc((size_t)n, sizeof **rows);
        if (!*rows) {
            PQclear(res);
            return -1;
        }
        for (int i = 0; i < n; i++)
            parse_row(res, i, 0, &(*rows)[i]);
    }
    *nrows = n;
    PQclear(res);
    return 0;
}

void recordings_format_expires_in(int64_t seconds, char *out, size_t outlen)
{
    if (seconds < 0)
        seconds = 0;
    int64_t h = seconds / 3600, m = (seconds % 3600) / 60;
    if (h > 0)
        snprintf(out, outlen, "%" PRId64 "h %" PRId64 "m", h, m);
    else
        snprintf(out, outlen, "%" PRId64 "m", m);
}
