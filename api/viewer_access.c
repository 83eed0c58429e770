/* viewer_access.c — the HLS access decision (PKG-6), the room cache behind
 * it, viewer session counting (PKG-8) with participant events, and the
 * start/stop of the viewer side. See viewer_access.h. */
#include "api/viewer_access.h"

#include <event2/event.h>
#include <event2/http.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/access_codes.h"
#include "api/events_api.h"
#include "api/http_server.h"
#include "api/player.h"
#include "api/router.h"
#include "api/viewer_common.h"
#include "broadcast/webhooks.h"
#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

/* ---- session table ---------------------------------------------------------- */

struct vs_sess {
    struct vmap_entry e; /* key = session key */
    long long last_ms;
    struct viewer_session_info info;
};

struct vs_room {
    struct vmap_entry e; /* key = room id */
    struct vmap sess;
};

struct viewer_sessions {
    struct vmap rooms;
    size_t total, max_total;
};

static void free_plain(struct vmap_entry *e) { free(e); }

static void free_room(struct vmap_entry *e)
{
    struct vs_room *r = (struct vs_room *)e;
    vmap_free(&r->sess, free_plain);
    free(r);
}

struct viewer_sessions *viewer_sessions_new(size_t max_total)
{
    struct viewer_sessions *s = calloc(1, sizeof *s);
    if (!s || vmap_init(&s->rooms, max_total ? max_total : 1) != 0) {
        free(s);
        return NULL;
    }
    s->max_total = max_total;
    return s;
}

void viewer_sessions_free(struct viewer_sessions *s)
{
    if (!s)
        return;
    vmap_free(&s->rooms, free_room);
    free(s);
}

static int room_live_count(const struct vs_room *r, long long now_ms)
{
    int n = 0;
    for (size_t i = 0; i < r->sess.nbuckets; i++)
        for (struct vmap_entry *e = r->sess.buckets[i]; e; e = e->next)
            if (((struct vs_sess *)e)->last_ms > now_ms - VIEWER_SESSION_WINDOW_MS)
                n++;
    return n;
}

int viewer_sessions_room_count(struct viewer_sessions *s, int64_t room, long long now_ms)
{
    struct vs_room *r = (struct vs_room *)vmap_get(&s->rooms, (uint64_t)room);
    return r ? room_live_count(r, now_ms) : 0;
}

enum viewer_touch_result viewer_sessions_touch(struct viewer_sessions *s, int64_t room, uint64_t key,
                                               int max_participants,
                                               const struct viewer_session_info *info,
                                               long long now_ms, int *count_out)
{
    enum viewer_touch_result res;
    struct vs_room *r = (struct vs_room *)vmap_get(&s->rooms, (uint64_t)room);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || vmap_init(&r->sess, s->max_total) != 0) {
            free(r);
            res = VIEWER_TOUCH_NOMEM;
            goto out_none;
        }
        r->e.key = (uint64_t)room;
        if (vmap_put(&s->rooms, &r->e) != 0) {
            free_room(&r->e);
            res = VIEWER_TOUCH_NOMEM;
            goto out_none;
        }
    }
    struct vs_sess *x = (struct vs_sess *)vmap_get(&r->sess, key);
    if (x && x->last_ms > now_ms - VIEWER_SESSION_WINDOW_MS) {
        x->last_ms = now_ms;
        res = VIEWER_TOUCH_EXISTING;
        goto out;
    }
    /* New (or came back after its window: that is a new session too, and
     * the expiry sweep reports the old one as left). */
    if (max_participants > 0 && room_live_count(r, now_ms) >= max_participants) {
        res = VIEWER_TOUCH_FULL;
        goto out;
    }
    if (x) {
        /* Stale entry not swept yet: reuse it; the leave is folded into the join. */
        x->last_ms = now_ms;
        if (info)
            x->info = *info;
        res = VIEWER_TOUCH_EXISTING;
        goto out;
    }
    if (s->total >= s->max_total) {
        res = VIEWER_TOUCH_NOMEM;
        goto out;
    }
    x = calloc(1, sizeof *x);
    if (!x) {
        res = VIEWER_TOUCH_NOMEM;
        goto out;
    }
    x->e.key = key;
    x->last_ms = now_ms;
    if (info)
        x->info = *info;
    if (vmap_put(&r->sess, &x->e) != 0) {
        free(x);
        res = VIEWER_TOUCH_NOMEM;
        goto out;
    }
    s->total++;
    res = VIEWER_TOUCH_NEW;
out:
    if (count_out)
        *count_out = room_live_count(r, now_ms);
    return res;
out_none:
    if (count_out)
        *count_out = 0;
    return res;
}

struct expire_ctx {
    long long cut;
    struct viewer_sessions *s;
    struct vs_room *room;
    void (*left)(void *arg, int64_t room, uint64_t key, const struct viewer_session_info *info,
                 int count);
    void *arg;
    size_t n;
};

static bool sess_expired(struct vmap_entry *e, void *arg)
{
    struct expire_ctx *c = arg;
    struct vs_sess *x = (struct vs_sess *)e;
    if (x->last_ms > c->cut)
        return false;
    c->n++;
    c->s->total--;
    if (c->left) {
        /* count after this one left: the room's fresh sessions */
        int remaining = room_live_count(c->room, c->cut + VIEWER_SESSION_WINDOW_MS);
        c->left(c->arg, (int64_t)c->room->e.key, x->e.key, &x->info, remaining);
    }
    return true;
}

static bool room_sweep(struct vmap_entry *e, void *arg)
{
    struct expire_ctx *c = arg;
    c->room = (struct vs_room *)e;
    vmap_sweep(&c->room->sess, sess_expired, c, free_plain);
    return c->room->sess.count == 0;
}

size_t viewer_sessions_expire(struct viewer_sessions *s, long long now_ms,
                              void (*left)(void *arg, int64_t room, uint64_t key,
                                           const struct viewer_session_info *info, int count),
                              void *arg)
{
    struct expire_ctx c = {now_ms - VIEWER_SESSION_WINDOW_MS, s, NULL, left, arg, 0};
    vmap_sweep(&s->rooms, room_sweep, &c, free_room);
    return c.n;
}

bool viewer_sid_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        if (n >= 64 || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                         (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return n > 0;
}

uint64_t viewer_session_key(const uint8_t salt[16], const char *jti, const char *sid,
                            const char *ip, const char *ua)
{
    char buf[1024];
    if (jti && jti[0] && sid)
        snprintf(buf, sizeof buf, "J%s|S%s", jti, sid);
    else if (jti && jti[0])
        snprintf(buf, sizeof buf, "J%s", jti);
    else if (sid)
        snprintf(buf, sizeof buf, "S%s", sid);
    else
        snprintf(buf, sizeof buf, "A%s|%.900s", ip ? ip : "-", ua ? ua : "-");
    uint8_t mac[32];
    secure_hmac_sha256(salt, 16, buf, strlen(buf), mac);
    uint64_t k = 0;
    for (int i = 0; i < 8; i++)
        k = (k << 8) | mac[i];
    return k;
}

/* ---- node state --------------------------------------------------------------- */

#define ROOMS_MAX 200000
#define SESSIONS_MAX 500000
#define PENDING_EVENTS_MAX 20000
#define NEGATIVE_TTL_MS 30000
#define ROOM_REFRESH_OVERLAP_SEC 10

struct room_entry {
    struct vmap_entry e; /* key = room id */
    int64_t app_id;
    bool exists;
    bool is_public;
    int max_participants;
    long long checked_ms;
};

static struct {
    pthread_mutex_t mu;
    bool started;
    struct api_ctx *ctx;
    struct vmap rooms;
    struct viewer_sessions *sessions;
    uint8_t salt[16];
    json_t *pending; /* array of participant events to write */
    struct event *tick;
    unsigned ticks;
    atomic_bool refresh_busy;
    atomic_bool flush_busy;
    long long since_us; /* DB clock of the last room refresh */
    char conninfo[CONFIG_STR_MAX + 128];
} A = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Applies one video_rooms row (id, app_id, state, access_level,
 * max_participants) to the cache. Caller holds A.mu. */
static void apply_room_row(PGresult *res, int i, long long now_ms)
{
    int64_t id = db_get_i64(res, i, 0);
    struct room_entry *x = (struct room_entry *)vmap_get(&A.rooms, (uint64_t)id);
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x)
            return;
        x->e.key = (uint64_t)id;
        if (vmap_put(&A.rooms, &x->e) != 0) {
            free(x);
            return;
        }
    }
    const char *state = db_get_str(res, i, 2);
    const char *level = db_get_str(res, i, 3);
    x->app_id = db_get_i64(res, i, 1);
    x->exists = state && strcmp(state, "ACTIVE") == 0;
    x->is_public = level && strcmp(level, "PUBLIC") == 0;
    x->max_participants = db_get_str(res, i, 4) ? (int)db_get_i64(res, i, 4) : 0;
    x->checked_ms = now_ms;
}

static void set_absent_locked(int64_t id, long long now_ms)
{
    struct room_entry *x = (struct room_entry *)vmap_get(&A.rooms, (uint64_t)id);
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x)
            return;
        x->e.key = (uint64_t)id;
        if (vmap_put(&A.rooms, &x->e) != 0) {
            free(x);
            return;
        }
    }
    x->exists = false;
    x->checked_ms = now_ms;
}

#define ROOM_COLUMNS "id, app_id, state, access_level, max_participants"

static bool stale_negative(struct vmap_entry *e, void *arg)
{
    struct room_entry *x = (struct room_entry *)e;
    return !x->exists && x->checked_ms < *(long long *)arg;
}

/* Rooms modified since the last refresh (minus an overlap for late commits). */
static void refresh_work(PGconn *c, void *arg)
{
    (void)arg;
    char since[32];
    snprintf(since, sizeof since, "%lld", A.since_us - (long long)ROOM_REFRESH_OVERLAP_SEC * 1000000);
    const char *params[1] = {since};
    PGresult *now = db_exec(c, "rooms clock", "SELECT (extract(epoch FROM now()) * 1000000)::bigint",
                            0, NULL, NULL);
    PGresult *res = db_exec(c, "rooms refresh",
                            "SELECT " ROOM_COLUMNS " FROM video_rooms"
                            " WHERE last_modified_at >= to_timestamp($1::bigint / 1e6)"
                            " ORDER BY last_modified_at LIMIT 100000",
                            1, params, NULL);
    if (now && res) {
        long long t = loop_now_ms();
        pthread_mutex_lock(&A.mu);
        for (int i = 0; i < PQntuples(res); i++)
            apply_room_row(res, i, t);
        long long cut = t - NEGATIVE_TTL_MS;
        vmap_sweep(&A.rooms, stale_negative, &cut, free_plain);
        pthread_mutex_unlock(&A.mu);
        A.since_us = db_get_i64(now, 0, 0);
    }
    PQclear(now);
    PQclear(res);
    atomic_store(&A.refresh_busy, false);
}

static void flush_events_work(PGconn *c, void *arg)
{
    char *json = arg;
    const char *params[1] = {json};
    PGresult *res = db_exec(c, "participant events",
                            "INSERT INTO events (app_id, video_room_id, type, actor, data)"
                            " SELECT (x->>'app')::bigint, (x->>'room')::bigint, x->>'type',"
                            "  x->>'actor', x->'data'"
                            " FROM jsonb_array_elements($1::jsonb) x"
                            " WHERE EXISTS (SELECT 1 FROM video_rooms r WHERE r.id = (x->>'room')::bigint)",
                            1, params, NULL);
    PQclear(res);
    free(json);
    atomic_store(&A.flush_busy, false);
}

/* Caller holds A.mu. */
static void queue_event_locked(int64_t room, const char *type, uint64_t key,
                               const struct viewer_session_info *info, int count)
{
    if (!A.pending)
        return;
    if (json_array_size(A.pending) >= PENDING_EVENTS_MAX) {
        static long long warned;
        long long t = loop_now_ms();
        if (t - warned > 10000) {
            log_warn("viewers: participant event queue full (%d); dropping", PENDING_EVENTS_MAX);
            warned = t;
        }
        return;
    }
    char sid[17], actor[160];
    snprintf(sid, sizeof sid, "%016llx", (unsigned long long)key);
    if (info->token_id > 0)
        snprintf(actor, sizeof actor, "token:%lld", (long long)info->token_id);
    else
        snprintf(actor, sizeof actor, "viewer:%s", A.ctx ? A.ctx->cfg->node_id : "-");
    json_t *data = json_pack("{s:s, s:i}", "sessionId", sid, "participantCount", count);
    if (info->token_id > 0) {
        json_object_set_new(data, "tokenId", json_integer(info->token_id));
        json_object_set_new(data, "role", json_string(viewer_role_name(info->role)));
    }
    if (info->uid[0]) {
        json_t *u = json_string(info->uid);
        if (u)
            json_object_set_new(data, "uid", u);
    }
    json_array_append_new(A.pending, json_pack("{s:I, s:I, s:s, s:s, s:o}", "app",
                                               (json_int_t)info->app_id, "room", (json_int_t)room,
                                               "type", type, "actor", actor, "data", data));
}

static void on_left(void *arg, int64_t room, uint64_t key, const struct viewer_session_info *info,
                    int count)
{
    (void)arg;
    queue_event_locked(room, "participant_left", key, info, count);
}

static char *take_pending_locked(void)
{
    if (!A.pending || json_array_size(A.pending) == 0)
        return NULL;
    char *text = json_dumps(A.pending, JSON_COMPACT);
    json_array_clear(A.pending);
    return text;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    A.ticks++;
    long long now = loop_now_ms();
    if (!atomic_exchange(&A.refresh_busy, true)) {
        if (db_pool_submit(A.ctx->db, NULL, refresh_work, NULL, NULL) != 0)
            atomic_store(&A.refresh_busy, false);
    }
    pthread_mutex_lock(&A.mu);
    viewer_sessions_expire(A.sessions, now, on_left, NULL);
    char *json = atomic_load(&A.flush_busy) ? NULL : take_pending_locked();
    pthread_mutex_unlock(&A.mu);
    if (json) {
        atomic_store(&A.flush_busy, true);
        if (db_pool_submit(A.ctx->db, NULL, flush_events_work, NULL, json) != 0) {
            free(json);
            atomic_store(&A.flush_busy, false);
        }
    }
}

int viewer_sessions_count(int64_t room_id)
{
    pthread_mutex_lock(&A.mu);
    int n = A.started ? viewer_sessions_room_count(A.sessions, room_id, loop_now_ms()) : 0;
    pthread_mutex_unlock(&A.mu);
    return n;
}

int viewer_sessions_total(void)
{
    pthread_mutex_lock(&A.mu);
    int n = A.started ? (int)A.sessions->total : 0;
    pthread_mutex_unlock(&A.mu);
    return n;
}

int viewer_room_lookup(int64_t room_id, int64_t *app_id, bool *is_public)
{
    int rc = 0;
    pthread_mutex_lock(&A.mu);
    struct room_entry *x = A.started ? (struct room_entry *)vmap_get(&A.rooms, (uint64_t)room_id) : NULL;
    if (x) {
        rc = x->exists ? 1 : -1;
        if (app_id)
            *app_id = x->app_id;
        if (is_public)
            *is_public = x->is_public;
    }
    pthread_mutex_unlock(&A.mu);
    return rc;
}

/* ---- the decision ------------------------------------------------------------- */

static void refuse(struct viewer_access *a, int status, const char *code, const char *msg)
{
    a->status = status;
    a->error_code = code;
    a->message = msg;
}

static const char *token_message(const char *code)
{
    if (!code)
        return "access refused";
    if (strcmp(code, "TOKEN_REQUIRED") == 0)
        return "this room needs a viewer token (?token=)";
    if (strcmp(code, "TOKEN_EXPIRED") == 0)
        return "the viewer token has expired";
    if (strcmp(code, "TOKEN_REVOKED") == 0)
        return "the viewer token was revoked";
    if (strcmp(code, "TOKEN_ROOM_MISMATCH") == 0)
        return "the viewer token is for another room";
    return "the viewer token is not valid";
}

static void decide(struct api_request *r, int64_t room_id, const struct room_entry *room,
                   enum viewer_resource res, struct viewer_access *a)
{
    memset(a, 0, sizeof *a);
    if (!room->exists) {
        refuse(a, 404, "VIDEO_ROOM_NOT_FOUND", "no such video room");
        return;
    }
    const char *qtoken = api_query(r, "token");
    const char *token = qtoken && *qtoken ? qtoken : api_bearer_token(r);
    const char *sid = api_query(r, "sid");
    if (!viewer_sid_valid(sid))
        sid = NULL;
    if (token) {
        /* A token that is presented must be good, even for a public room:
         * that is how a revoked viewer learns it was removed. */
        const char *code = NULL;
        int st = viewer_token_authorize(token, room_id, VIEWER_ROLE_STUDENT, &a->claims, &code);
        if (st != 0) {
            refuse(a, st, code, token_message(code));
            return;
        }
        a->has_token = true;
    } else if (!room->is_public) {
        refuse(a, 401, "TOKEN_REQUIRED", token_message("TOKEN_REQUIRED"));
        return;
    }
    size_t n = 0;
    if (qtoken && *qtoken && a->has_token)
        n += (size_t)snprintf(a->query_suffix + n, sizeof a->query_suffix - n, "?token=%s", qtoken);
    if (sid && n < sizeof a->query_suffix)
        snprintf(a->query_suffix + n, sizeof a->query_suffix - n, "%ssid=%s", n ? "&" : "?", sid);

    if (res != VIEWER_RES_PLAYLIST)
        return;
    struct viewer_session_info info;
    memset(&info, 0, sizeof info);
    info.app_id = room->app_id;
    if (a->has_token) {
        info.token_id = a->claims.tid;
        info.role = a->claims.role;
        memcpy(info.uid, a->claims.uid, sizeof info.uid);
    }
    uint64_t key = viewer_session_key(A.salt, a->has_token ? a->claims.jti : NULL, sid,
                                      api_peer_ip(r), api_header(r, "User-Agent"));
    int count = 0;
    pthread_mutex_lock(&A.mu);
    enum viewer_touch_result t =
        viewer_sessions_touch(A.sessions, room_id, key, room->max_participants, &info,
                              loop_now_ms(), &count);
    if (t == VIEWER_TOUCH_NEW)
        queue_event_locked(room_id, "participant_joined", key, &info, count);
    pthread_mutex_unlock(&A.mu);
    if (t == VIEWER_TOUCH_FULL) {
        refuse(a, 429, "MAX_PARTICIPANTS_REACHED", "this room has reached its maxParticipants");
        a->retry_after_sec = 10;
    } else if (t == VIEWER_TOUCH_NOMEM) {
        refuse(a, 503, "UNAVAILABLE", "too many viewer sessions on this node");
        a->retry_after_sec = 5;
    }
}

struct miss_job {
    struct api_request *r;
    int64_t room_id;
    enum viewer_resource res;
    viewer_access_cb cb;
    void *arg;
    bool db_error;
};

static void miss_work(PGconn *c, void *arg)
{
    struct miss_job *m = arg;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)m->room_id);
    const char *params[1] = {id};
    PGresult *res = db_exec(c, "room lookup", "SELECT " ROOM_COLUMNS " FROM video_rooms WHERE id = $1",
                            1, params, NULL);
    if (!res) {
        m->db_error = true;
        return;
    }
    long long t = loop_now_ms();
    pthread_mutex_lock(&A.mu);
    if (A.started) {
        if (PQntuples(res) == 1)
            apply_room_row(res, 0, t);
        else
            set_absent_locked(m->room_id, t);
    }
    pthread_mutex_unlock(&A.mu);
    PQclear(res);
}

static bool cached_room(int64_t room_id, struct room_entry *out)
{
    pthread_mutex_lock(&A.mu);
    struct room_entry *x = A.started ? (struct room_entry *)vmap_get(&A.rooms, (uint64_t)room_id) : NULL;
    if (x)
        *out = *x;
    pthread_mutex_unlock(&A.mu);
    return x != NULL;
}

static void miss_done(void *arg)
{
    struct miss_job *m = arg;
    struct viewer_access a;
    struct room_entry room;
    if (m->db_error || !cached_room(m->room_id, &room)) {
        memset(&a, 0, sizeof a);
        refuse(&a, 503, "UNAVAILABLE", "room lookup failed; retry");
        a.retry_after_sec = 1;
    } else {
        decide(m->r, m->room_id, &room, m->res, &a);
    }
    m->cb(m->r, &a, m->arg);
    free(m);
}

void viewer_access_check(struct api_request *r, int64_t room_id, enum viewer_resource res,
                         viewer_access_cb cb, void *arg)
{
    struct viewer_access a;
    struct room_entry room;
    if (room_id <= 0) {
        memset(&a, 0, sizeof a);
        refuse(&a, 404, "VIDEO_ROOM_NOT_FOUND", "no such video room");
        cb(r, &a, arg);
        return;
    }
    if (cached_room(room_id, &room)) {
        decide(r, room_id, &room, res, &a);
        cb(r, &a, arg);
        return;
    }
    struct miss_job *m = calloc(1, sizeof *m);
    if (m) {
        *m = (struct miss_job){r, room_id, res, cb, arg, false};
        if (db_pool_submit(r->ctx->db, r->ctx->http_loop, miss_work, miss_done, m) == 0)
            return;
        free(m);
    }
    memset(&a, 0, sizeof a);
    refuse(&a, 503, "UNAVAILABLE", "busy; retry");
    a.retry_after_sec = 1;
    cb(r, &a, arg);
}

void viewer_access_reply_error(struct api_request *r, const struct viewer_access *a)
{
    if (a->retry_after_sec > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", a->retry_after_sec);
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", ra);
    }
    api_reply_error(r, a->status ? a->status : 500, a->error_code ? a->error_code : "INTERNAL_ERROR",
                    "%s", a->message ? a->message : "access refused");
}

/* ---- start / stop ----------------------------------------------------------- */

int viewer_start(struct api_ctx *ctx, const char *conninfo, char *err, size_t errlen)
{
    char salt[17];
    if (strlen(conninfo) >= sizeof A.conninfo) {
        snprintf(err, errlen, "viewers: database_url too long");
        return -1;
    }
    PGconn *c = db_connect(conninfo, err, errlen);
    if (!c)
        return -1;
    int rc = -1;
    if (viewer_tokens_start(ctx, c, err, errlen) != 0)
        goto out;
    if (vmap_init(&A.rooms, ROOMS_MAX) != 0 || !(A.sessions = viewer_sessions_new(SESSIONS_MAX)) ||
        !(A.pending = json_array()) || secure_random_alnum(salt, sizeof salt - 1) != 0) {
        snprintf(err, errlen, "viewers: out of memory");
        goto out;
    }
    memcpy(A.salt, salt, sizeof A.salt);
    snprintf(A.conninfo, sizeof A.conninfo, "%s", conninfo);
    PGresult *now = db_exec(c, "rooms clock", "SELECT (extract(epoch FROM now()) * 1000000)::bigint",
                            0, NULL, NULL);
    A.since_us = now ? db_get_i64(now, 0, 0) : 0;
    PQclear(now);
    A.ctx = ctx;
    pthread_mutex_lock(&A.mu);
    A.started = true;
    pthread_mutex_unlock(&A.mu);
    A.tick = event_new(loop_base(ctx->http_loop), -1, EV_PERSIST, on_tick, NULL);
    struct timeval two = {2, 0};
    if (!A.tick || event_add(A.tick, &two) != 0) {
        snprintf(err, errlen, "viewers: cannot start the timer");
        goto out;
    }
    if (access_codes_start(ctx, err, errlen) != 0 || events_api_start(ctx, err, errlen) != 0 ||
        player_start(ctx, err, errlen) != 0 || webhooks_start(ctx->cfg, conninfo, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    PQfinish(c);
    return rc;
}

void viewer_stop_timers(void)
{
    /* event_free from another thread waits for a running callback (libevent
     * 2.1 with threading): afterwards none of them can submit a job. */
    if (A.tick)
        event_free(A.tick);
    A.tick = NULL;
    viewer_tokens_stop_timer();
    events_api_stop_timer();
}

void viewer_stop(void)
{
    viewer_stop_timers();
    webhooks_stop();
    events_api_stop();
    player_stop();
    access_codes_stop();
    char *json = NULL;
    pthread_mutex_lock(&A.mu);
    bool was = A.started;
    A.started = false;
    json = take_pending_locked();
    pthread_mutex_unlock(&A.mu);
    /* Best effort: what is still queued (joins/leaves, lastUsage) is written
     * with one short-lived connection; the pool is gone by now. */
    PGconn *c = NULL;
    if (was && A.conninfo[0]) {
        char err[256];
        c = db_connect(A.conninfo, err, sizeof err);
        if (!c)
            log_warn("viewers: pending events dropped at shutdown: %s", err);
    }
    if (json && c) {
        atomic_store(&A.flush_busy, true);
        flush_events_work(c, json); /* frees json */
    } else {
        free(json);
    }
    viewer_tokens_stop(c);
    if (c)
        PQfinish(c);
    if (was) {
        vmap_free(&A.rooms, free_plain);
        viewer_sessions_free(A.sessions);
        A.sessions = NULL;
        json_decref(A.pending);
        A.pending = NULL;
    }
}

void viewer_register_routes(struct router *r)
{
    viewer_tokens_register_routes(r);
    access_codes_register_routes(r);
    events_api_register_routes(r);
    player_register_routes(r);
}
