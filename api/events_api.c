/* events_api.c — API-10 event lists and live streams (SSE), and the app's
 * webhook settings (GET/PATCH /v2/apps/me). See events_api.h.
 *
 * Streams live on the http loop. One shared poll every 500 ms reads new
 * events of the rooms being watched and fans them out. Because a row's id is
 * allocated before its transaction commits, a smaller id can appear after a
 * larger one: the poll re-reads a sliding window (ids above the newest id
 * seen 5 s ago) and each stream remembers which ids of that window it sent. */
#include "api/events_api.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/http_server.h"
#include "api/router.h"
#include "api/viewer_common.h"
#include "api/viewer_tokens.h"
#include "broadcast/webhooks.h"
#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

#define RECENT_MAX 256           /* ids of the rescan window remembered per stream */
#define POLL_LIMIT 2000          /* rows per poll */
#define BACKLOG_LIMIT 1000       /* older events sent when a stream starts */
#define WINDOW_SLIDE_MS 5000
#define STREAM_OUTPUT_MAX (1 << 20) /* a client this far behind is dropped */
#define STR_(x) #x
#define STR(x) STR_(x)

/* The viewer-facing form of an event: no actor, no personal data. */
#define EVENTS_PUBLIC_JSON_SQL(e)                                                                  \
    "json_build_object('id', " e ".id, 'type', " e ".type, 'roomId', " e ".video_room_id,"         \
    " 'fromState', " e ".from_state, 'toState', " e ".to_state,"                                   \
    " 'data', " e ".data - 'uid' - 'sessionId' - 'name', 'createdAt', to_char(" e                  \
    ".created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"

static const char *const event_types[] = {
    "video_room_state", "stream_key_state", "connected", "disconnected", "participant_joined",
    "participant_left", "class_ended", "participant_removed", "recording_started",
    "recording_stopped", "recording_state", "quality_changed", NULL};

struct sse_stream {
    struct sse_stream *prev, *next;
    struct api_request *r;
    int64_t room_id;
    bool is_public;
    bool has_token;
    char jti[VIEWER_JTI_LEN + 1];
    int64_t token_exp;
    int64_t start_id;     /* events up to this id are never sent */
    int64_t recent[RECENT_MAX];
    int nrecent, recent_head;
    long long last_write_ms;
    long long kick_at_ms;  /* revoked: end with `kicked` at this time (0 = not revoked) */
};

struct poll_job {
    char *rooms;          /* "{1,2,3}" */
    int64_t floor;
    PGresult *rows;       /* id, room, json, public json, type */
    int64_t max_id;
};

static struct {
    struct api_ctx *ctx;
    bool started;
    struct sse_stream *head;
    int count;
    struct event *tick;
    bool poll_busy;
    struct poll_job job;
    int64_t floor, next_floor;
    long long slide_at_ms;
} S;

int events_api_stream_count(void) { return S.count; }

/* ---- stream I/O ---------------------------------------------------------------- */

static void unlink_stream(struct sse_stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (S.head == s)
        S.head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    S.count--;
}

/* The client went away (or the server is shutting down): evhttp is freeing
 * the connection. A request evhttp detached (client EOF while we were still
 * sending) is ours to free; one still attached is freed by evhttp after this. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct sse_stream *s = arg;
    struct evhttp_request *req = s->r->req;
    bool detached = evhttp_request_get_connection(req) == NULL;
    unlink_stream(s);
    api_request_done(s->r, 200);
    if (detached)
        evhttp_request_free(req);
    free(s);
}

/* Server-side end of a stream. */
static void stream_end(struct sse_stream *s)
{
    struct evhttp_request *req = s->r->req;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    unlink_stream(s);
    api_request_done(s->r, 200);
    evhttp_send_reply_end(req);
    free(s);
}

/* Queues text on the stream. -1 when the client is too far behind (the
 * stream was ended). */
static int stream_write(struct sse_stream *s, const char *text, size_t len)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->r->req);
    if (evcon) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
        if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > STREAM_OUTPUT_MAX) {
            log_info("events: dropping a slow event stream room=%lld", (long long)s->room_id);
            stream_end(s);
            return -1;
        }
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return 0;
    evbuffer_add(b, text, len);
    evhttp_send_reply_chunk(s->r->req, b);
    evbuffer_free(b);
    s->last_write_ms = loop_now_ms();
    return 0;
}

static bool sent_recently(const struct sse_stream *s, int64_t id)
{
    for (int i = 0; i < s->nrecent; i++)
        if (s->recent[i] == id)
            return true;
    return false;
}

static void remember(struct sse_stream *s, int64_t id)
{
    if (s->nrecent < RECENT_MAX) {
        s->recent[s->nrecent++] = id;
        return;
    }
    /* Full: forget the oldest and never look below it again. */
    int64_t old = s->recent[s->recent_head];
    if (old > s->start_id)
        s->start_id = old;
    s->recent[s->recent_head] = id;
    s->recent_head = (s->recent_head + 1) % RECENT_MAX;
}

static void prune_recent(struct sse_stream *s, int64_t floor)
{
    int n = 0;
    int64_t keep[RECENT_MAX];
    for (int i = 0; i < s->nrecent; i++)
        if (s->recent[i] > floor)
            keep[n++] = s->recent[i];
    memcpy(s->recent, keep, (size_t)n * sizeof keep[0]);
    s->nrecent = n;
    s->recent_head = 0;
}

/* Sends one event unless already sent. -1 when the stream ended. */
static int stream_event(struct sse_stream *s, int64_t id, const char *type, const char *json)
{
    if (id <= s->start_id || sent_recently(s, id))
        return 0;
    remember(s, id);
    size_t n = strlen(json) + strlen(type) + 64;
    char *buf = malloc(n);
    if (!buf)
        return 0;
    int len = snprintf(buf, n, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)id, type, json);
    int rc = stream_write(s, buf, (size_t)len);
    free(buf);
    return rc;
}

/* ---- shared poll -------------------------------------------------------------- */

static void poll_work(PGconn *c, void *arg)
{
    struct poll_job *p = arg;
    char floor[24];
    snprintf(floor, sizeof floor, "%lld", (long long)p->floor);
    const char *params[2] = {floor, p->rooms};
    p->rows = db_exec(c, "events poll",
                      "SELECT e.id, e.video_room_id, " WEBHOOKS_EVENT_JSON_SQL("e") ", "
                      EVENTS_PUBLIC_JSON_SQL("e") ", e.type"
                      " FROM events e WHERE e.id > $1 AND e.video_room_id = ANY($2::bigint[])"
                      " ORDER BY e.id LIMIT " STR(POLL_LIMIT),
                      2, params, NULL);
    PGresult *mx = db_exec(c, "events max", "SELECT coalesce(max(id), 0) FROM events", 0, NULL, NULL);
    p->max_id = mx ? db_get_i64(mx, 0, 0) : 0;
    PQclear(mx);
}

static void poll_done(void *arg)
{
    struct poll_job *p = arg;
    free(p->rooms);
    p->rooms = NULL;
    S.poll_busy = false;
    PGresult *rows = p->rows;
    p->rows = NULL;
    if (!rows || !S.started) {
        PQclear(rows);
        return;
    }
    int n = PQntuples(rows);
    for (int i = 0; i < n; i++) {
        int64_t id = db_get_i64(rows, i, 0);
        int64_t room = db_get_i64(rows, i, 1);
        const char *type = db_get_str(rows, i, 4);
        struct sse_stream *s = S.head;
        while (s) {
            struct sse_stream *next = s->next; /* s may end */
            if (s->room_id == room)
                stream_event(s, id, type, db_get_str(rows, i, s->is_public ? 3 : 2));
            s = next;
        }
    }
    long long now = loop_now_ms();
    if (n >= POLL_LIMIT) {
        /* Overload: move on without the rescan window rather than stall. */
        S.floor = db_get_i64(rows, n - 1, 0);
        S.next_floor = S.floor;
    } else if (now >= S.slide_at_ms) {
        if (S.next_floor > S.floor)
            S.floor = S.next_floor;
        S.next_floor = p->max_id;
        S.slide_at_ms = now + WINDOW_SLIDE_MS;
        for (struct sse_stream *s = S.head; s; s = s->next)
            prune_recent(s, S.floor);
    }
    PQclear(rows);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    long long now = loop_now_ms();
    int64_t now_s = (int64_t)time(NULL);
    struct sse_stream *s = S.head;
    while (s) {
        struct sse_stream *next = s->next;
        if (s->has_token && !s->kick_at_ms && viewer_tokens_is_revoked(s->jti)) {
            /* Let the next polls deliver participant_removed first. */
            s->kick_at_ms = now + 2 * EVENTS_POLL_MS + 200;
        }
        if (s->kick_at_ms && now >= s->kick_at_ms) {
            static const char k[] = "event: kicked\ndata: {\"reason\":\"TOKEN_REVOKED\"}\n\n";
            if (stream_write(s, k, sizeof k - 1) == 0)
                stream_end(s);
        } else if (s->has_token && s->token_exp <= now_s) {
            static const char k[] = "event: expired\ndata: {\"reason\":\"TOKEN_EXPIRED\"}\n\n";
            if (stream_write(s, k, sizeof k - 1) == 0)
                stream_end(s);
        } else if (now - s->last_write_ms >= EVENTS_HEARTBEAT_MS) {
            stream_write(s, ": ping\n\n", 8);
        }
        s = next;
    }
    if (!S.head || S.poll_busy)
        return;
    /* Distinct rooms being watched, as a PostgreSQL array literal. */
    size_t cap = (size_t)S.count * 21 + 3, len = 0;
    char *rooms = malloc(cap);
    if (!rooms)
        return;
    rooms[len++] = '{';
    for (struct sse_stream *a = S.head; a; a = a->next) {
        bool dup = false;
        for (struct sse_stream *b = S.head; b != a; b = b->next)
            if (b->room_id == a->room_id) {
                dup = true;
                break;
            }
        if (!dup)
            len += (size_t)snprintf(rooms + len, cap - len, "%s%lld", len > 1 ? "," : "",
                                    (long long)a->room_id);
    }
    snprintf(rooms + len, cap - len, "}");
    S.job.rooms = rooms;
    S.job.floor = S.floor;
    S.poll_busy = true;
    if (db_pool_submit(S.ctx->db, S.ctx->http_loop, poll_work, poll_done, &S.job) != 0) {
        free(S.job.rooms);
        S.job.rooms = NULL;
        S.poll_busy = false;
    }
}

/* ---- list + subscribe jobs ------------------------------------------------------ */

struct list_args {
    struct vpage page;
    long long after_id;       /* -1 = none */
    const char *type;         /* static string or NULL */
    bool stream;
    bool is_public;           /* the viewer endpoint */
    bool has_token;           /* the viewer presented a valid token */
    PGresult *backlog;        /* stream: older events to send first */
    int64_t start_id;         /* stream: newest id at subscription */
};

static const char *const list_sorts[] = {"CREATED_AT_ASC", "CREATED_AT_DESC", NULL};

static void list_or_subscribe_work(PGconn *c, struct vjob *j)
{
    struct list_args *a = j->user;
    char room[24], after[24];
    snprintf(room, sizeof room, "%lld", (long long)j->room_id);
    snprintf(after, sizeof after, "%lld", a->after_id < 0 ? 0LL : a->after_id);
    if (a->is_public) {
        /* The viewer feed: the room must exist; without a token it must be PUBLIC. */
        const char *p[1] = {room};
        PGresult *res = db_exec(c, "events room",
                                "SELECT access_level FROM video_rooms WHERE id = $1 AND state = 'ACTIVE'",
                                1, p, NULL);
        if (!res) {
            vjob_fail(j, 503, "UNAVAILABLE", "database error");
            return;
        }
        bool found = PQntuples(res) == 1;
        bool open = found && strcmp(db_get_str(res, 0, 0), "PUBLIC") == 0;
        PQclear(res);
        if (!found) {
            vjob_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room %lld not found", (long long)j->room_id);
            return;
        }
        if (!open && !a->has_token) {
            vjob_fail(j, 401, "TOKEN_REQUIRED", "this room needs a viewer token (?token=)");
            return;
        }
    }
    int json_col = a->is_public ? 1 : 0;
    if (a->stream) {
        PGresult *mx = db_exec(c, "events max", "SELECT coalesce(max(id), 0) FROM events", 0, NULL, NULL);
        if (!mx) {
            vjob_fail(j, 503, "UNAVAILABLE", "database error");
            return;
        }
        a->start_id = db_get_i64(mx, 0, 0);
        PQclear(mx);
        if (a->after_id >= 0) {
            char upto[24];
            snprintf(upto, sizeof upto, "%lld", (long long)a->start_id);
            const char *p[3] = {room, after, upto};
            a->backlog = db_exec(c, "events backlog",
                                 "SELECT e.id, e.type, " WEBHOOKS_EVENT_JSON_SQL("e") ", "
                                 EVENTS_PUBLIC_JSON_SQL("e") " FROM events e"
                                 " WHERE e.video_room_id = $1 AND e.id > $2 AND e.id <= $3"
                                 " ORDER BY e.id DESC LIMIT " STR(BACKLOG_LIMIT),
                                 3, p, NULL);
        }
        j->status = 200;
        return;
    }
    char limit[24], offset[24];
    snprintf(limit, sizeof limit, "%lld", a->page.size);
    snprintf(offset, sizeof offset, "%lld", a->page.page * a->page.size);
    const char *p[5] = {room, after, a->type, limit, offset};
    PGresult *cnt = db_exec(c, "events count",
                            "SELECT count(*) FROM events e WHERE e.video_room_id = $1 AND e.id > $2"
                            " AND ($3::text IS NULL OR e.type = $3)",
                            3, p, NULL);
    PGresult *res = db_exec(c, "events list",
                            a->page.sort == 1
                                ? "SELECT " WEBHOOKS_EVENT_JSON_SQL("e") ", " EVENTS_PUBLIC_JSON_SQL("e")
                                  " FROM events e WHERE e.video_room_id = $1 AND e.id > $2"
                                  " AND ($3::text IS NULL OR e.type = $3)"
                                  " ORDER BY e.id DESC LIMIT $4 OFFSET $5"
                                : "SELECT " WEBHOOKS_EVENT_JSON_SQL("e") ", " EVENTS_PUBLIC_JSON_SQL("e")
                                  " FROM events e WHERE e.video_room_id = $1 AND e.id > $2"
                                  " AND ($3::text IS NULL OR e.type = $3)"
                                  " ORDER BY e.id ASC LIMIT $4 OFFSET $5",
                            5, p, NULL);
    if (!cnt || !res) {
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
    } else {
        json_t *arr = json_array();
        for (int i = 0; i < PQntuples(res); i++) {
            json_t *ev = json_loads(db_get_str(res, i, json_col), 0, NULL);
            if (ev)
                json_array_append_new(arr, ev);
        }
        j->status = 200;
        j->out = vpage_wrap(arr, db_get_i64(cnt, 0, 0), &a->page);
    }
    PQclear(cnt);
    PQclear(res);
}

/* On the http loop: turns the reply into an event stream. */
static void subscribe_done(struct vjob *j)
{
    struct list_args *a = j->user;
    if (!a->stream || j->status != 200) {
        PQclear(a->backlog);
        free(a);
        j->user = NULL;
        return;
    }
    struct sse_stream *s = NULL;
    if (!S.started || S.count >= EVENTS_MAX_STREAMS || !(s = calloc(1, sizeof *s))) {
        vjob_fail(j, 503, "UNAVAILABLE", "too many event streams on this node");
        snprintf(j->retry_after, sizeof j->retry_after, "5");
        goto out;
    }
    s->r = j->r;
    s->room_id = j->room_id;
    s->is_public = a->is_public;
    if (a->has_token || j->by_token) {
        s->has_token = true;
        snprintf(s->jti, sizeof s->jti, "%s", j->claims.jti);
        s->token_exp = j->claims.exp;
    }
    s->start_id = a->start_id;
    struct evhttp_request *req = j->r->req;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    api_add_cors(j->r);
    evhttp_send_reply_start(req, 200, "OK");
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon)
        evhttp_connection_set_closecb(evcon, on_close, s);
    s->next = S.head;
    if (S.head)
        S.head->prev = s;
    S.head = s;
    if (S.count++ == 0) {
        S.floor = S.next_floor = s->start_id;
        S.slide_at_ms = loop_now_ms() + WINDOW_SLIDE_MS;
    }
    j->detached = true;
    static const char hello[] = "retry: 3000\n: castgate events\n\n";
    if (stream_write(s, hello, sizeof hello - 1) != 0)
        goto out;
    if (a->backlog) {
        /* Backlog rows come newest first (so the limit keeps the latest); send oldest first. */
        int64_t start = s->start_id;
        s->start_id = a->after_id;
        int col = a->is_public ? 3 : 2;
        for (int i = PQntuples(a->backlog) - 1; i >= 0; i--)
            if (stream_event(s, db_get_i64(a->backlog, i, 0), db_get_str(a->backlog, i, 1),
                             db_get_str(a->backlog, i, col)) != 0)
                goto out; /* s is gone */
        if (start > s->start_id)
            s->start_id = start;
    }
out:
    PQclear(a->backlog);
    free(a);
    j->user = NULL;
}

static bool wants_stream(struct api_request *r)
{
    const char *acc = api_header(r, "Accept");
    const char *q = api_query(r, "stream");
    return (acc && strstr(acc, "text/event-stream")) || (q && strcmp(q, "1") == 0);
}

/* Common parsing for both list endpoints. false after replying. */
static bool parse_list(struct vjob *j, struct list_args *a)
{
    struct api_request *r = j->r;
    a->after_id = -1;
    const char *after = api_query(r, "afterId");
    const char *last = api_header(r, "Last-Event-ID");
    const char *from = after ? after : last;
    if (from) {
        char *end;
        long long v = strtoll(from, &end, 10);
        if (!*from || *end || v < 0) {
            vjob_fail_field(j, 400, "INVALID_PARAMETER", "afterId", "afterId must be a non-negative integer");
            return false;
        }
        a->after_id = v;
    }
    const char *type = api_query(r, "type");
    if (type) {
        for (int i = 0; event_types[i]; i++)
            if (strcmp(event_types[i], type) == 0)
                a->type = event_types[i];
        if (!a->type) {
            vjob_fail_field(j, 400, "INVALID_PARAMETER", "type", "type: unknown event type \"%.64s\"", type);
            return false;
        }
    }
    a->stream = wants_stream(r);
    return vpage_parse(j, list_sorts, &a->page) == 0;
}

/* The job both list endpoints start with: room id from the path, the list
 * arguments parsed into j->user. NULL after replying (no memory, no such
 * room id, a bad parameter). */
static struct vjob *list_job_new(void *request, const struct route_params *params,
                                 enum vjob_auth auth)
{
    struct vjob *j = vjob_new(request);
    if (!j)
        return NULL;
    struct list_args *a = calloc(1, sizeof *a);
    j->auth = auth;
    j->room_id = vparse_id(route_param(params, "id"));
    j->user = a;
    j->done = subscribe_done;
    if (!a || !j->room_id || !parse_list(j, a)) {
        if (!a)
            vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        else if (!j->room_id)
            vjob_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
        free(a);
        vjob_reply(j);
        return NULL;
    }
    return j;
}

static void handle_admin_events(void *request, const struct route_params *params)
{
    struct vjob *j = list_job_new(request, params, VJOB_AUTH_APP);
    if (!j)
        return;
    j->bearer_min_role = VIEWER_ROLE_MODERATOR;
    j->work = list_or_subscribe_work;
    vjob_submit(j);
}

static void handle_viewer_events(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = list_job_new(request, params, VJOB_AUTH_NONE);
    if (!j)
        return;
    struct list_args *a = j->user;
    a->is_public = true;
    const char *qt = api_query(r, "token");
    const char *token = qt && *qt ? qt : api_bearer_token(r);
    if (token) {
        const char *code = NULL;
        int st = viewer_token_authorize(token, j->room_id, VIEWER_ROLE_STUDENT, &j->claims, &code);
        if (st != 0) {
            free(a);
            vjob_fail(j, st, code, "viewer token refused: %s", code);
            vjob_reply(j);
            return;
        }
        a->has_token = true;
    }
    j->work = list_or_subscribe_work;
    vjob_submit(j);
}

/* ---- GET / PATCH /v2/apps/me ----------------------------------------------------------- */

struct app_patch {
    bool set_url;
    const char *url;      /* NULL = clear */
    const char *secret;   /* NULL = keep / generate */
    char generated[41];
};

#define APP_COLUMNS                                                                                \
    "id, state, name, org_id, webhook_url, " VSQL_ISO("created_at") ", " VSQL_ISO("last_modified_at")

static json_t *app_json(PGresult *res)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(db_get_i64(res, 0, 0)));
    json_object_set_new(o, "state", json_string(db_get_str(res, 0, 1)));
    json_object_set_new(o, "name", json_string(db_get_str(res, 0, 2)));
    json_object_set_new(o, "orgId", json_string(db_get_str(res, 0, 3)));
    const char *url = db_get_str(res, 0, 4);
    json_object_set_new(o, "webhookUrl", url ? json_string(url) : json_null());
    json_object_set_new(o, "createdAt", json_string(db_get_str(res, 0, 5)));
    json_object_set_new(o, "lastModifiedAt", json_string(db_get_str(res, 0, 6)));
    return o;
}

static void app_get_work(PGconn *c, struct vjob *j)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->app_id);
    const char *p[1] = {id};
    PGresult *res = db_exec(c, "app get", "SELECT " APP_COLUMNS " FROM apps WHERE id = $1", 1, p, NULL);
    if (!res || PQntuples(res) != 1) {
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
    } else {
        j->status = 200;
        j->out = app_json(res);
    }
    PQclear(res);
}

static void app_patch_work(PGconn *c, struct vjob *j)
{
    struct app_patch *a = j->user;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->app_id);
    const char *p[5] = {id, a->set_url ? "t" : "f", a->url, a->secret, a->generated};
    PGresult *res = db_exec(c, "app patch",
                            "UPDATE apps SET"
                            " webhook_url = CASE WHEN $2::boolean THEN $3::text ELSE webhook_url END,"
                            " webhook_secret = CASE WHEN $4::text IS NOT NULL THEN $4::text"
                            "   WHEN $2::boolean AND $3::text IS NOT NULL AND webhook_secret IS NULL THEN $5::text"
                            "   ELSE webhook_secret END,"
                            " webhook_since = CASE WHEN $2::boolean AND $3::text IS DISTINCT FROM webhook_url"
                            "   THEN now() ELSE webhook_since END,"
                            " last_modified_at = now()"
                            " WHERE id = $1"
                            " RETURNING " APP_COLUMNS ", webhook_secret = $5::text",
                            5, p, NULL);
    if (!res || PQntuples(res) != 1) {
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
    } else {
        j->status = 200;
        j->out = app_json(res);
        const char *gen = db_get_str(res, 0, 7);
        if (gen && gen[0] == 't')
            json_object_set_new(j->out, "webhookSecret", json_string(a->generated));
        log_info("apps: app=%lld webhook %s", (long long)j->app_id,
                 a->set_url ? (a->url ? "set" : "cleared") : "unchanged");
        webhooks_kick();
    }
    PQclear(res);
}

static void free_user(struct vjob *j)
{
    if (j->user) {
        OPENSSL_cleanse(((struct app_patch *)j->user)->generated, 41);
        free(j->user);
    }
    j->user = NULL;
}

/* A PATCH refused before the database: drop its input, reply with the error. */
static void app_patch_refuse(struct vjob *j)
{
    free_user(j);
    vjob_reply(j);
}

static void handle_app_get(void *request, const struct route_params *params)
{
    (void)params;
    struct vjob *j = vjob_new(request);
    if (!j)
        return;
    j->auth = VJOB_AUTH_APP;
    j->work = app_get_work;
    vjob_submit(j);
}

static void handle_app_patch(void *request, const struct route_params *params)
{
    (void)params;
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j)
        return;
    j->auth = VJOB_AUTH_APP;
    j->in = api_read_json_object(r);
    if (!j->in) {
        free(j);
        return;
    }
    struct app_patch *a = calloc(1, sizeof *a);
    if (!a) {
        vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        vjob_reply(j);
        return;
    }
    j->user = a;
    j->done = free_user;
    json_t *url = json_object_get(j->in, "webhookUrl");
    if (url) {
        a->set_url = true;
        if (!json_is_null(url)) {
            struct webhook_url u;
            if (!json_is_string(url) || json_string_length(url) > 2000 ||
                webhooks_parse_url(json_string_value(url), &u) != 0) {
                vjob_fail_field(j, 400, "INVALID_PARAMETER", "webhookUrl",
                          "webhookUrl must be null or http://host[:port]/path (https receivers need a"
                          " forwarding proxy)");
                app_patch_refuse(j);
                return;
            }
            a->url = json_string_value(url);
        }
    }
    if (vjson_opt_string(j, "webhookSecret", 256, &a->secret) != 0) {
        app_patch_refuse(j);
        return;
    }
    if (a->secret && strlen(a->secret) < 16) {
        vjob_fail_field(j, 400, "INVALID_PARAMETER", "webhookSecret", "webhookSecret must be at least 16 characters");
        app_patch_refuse(j);
        return;
    }
    if (secure_random_alnum(a->generated, 40) != 0) {
        vjob_fail(j, 500, "INTERNAL_ERROR", "no randomness");
        app_patch_refuse(j);
        return;
    }
    j->work = app_patch_work;
    vjob_submit(j);
}

/* ---- start / stop --------------------------------------------------------------- */

int events_api_start(struct api_ctx *ctx, char *err, size_t errlen)
{
    S.ctx = ctx;
    S.tick = event_new(loop_base(ctx->http_loop), -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, EVENTS_POLL_MS * 1000};
    if (!S.tick || event_add(S.tick, &tv) != 0) {
        snprintf(err, errlen, "events: cannot start the timer");
        return -1;
    }
    S.started = true;
    return 0;
}

void events_api_stop_timer(void)
{
    if (S.tick)
        event_free(S.tick);
    S.tick = NULL;
}

void events_api_stop(void)
{
    events_api_stop_timer();
    S.started = false;
    /* Streams are released by the HTTP server's close callbacks; anything
     * left (a server freed without closing) is only our memory now. */
    while (S.head) {
        struct sse_stream *s = S.head;
        unlink_stream(s);
        free(s);
    }
    free(S.job.rooms);
    S.job.rooms = NULL;
    PQclear(S.job.rows);
    S.job.rows = NULL;
}

void events_api_register_routes(struct router *r)
{
    router_add(r, "GET", "/v2/apps/me/video-rooms/{id}/events", handle_admin_events);
    router_add(r, "GET", "/v2/rooms/{id}/events", handle_viewer_events);
    router_add(r, "GET", "/v2/apps/me", handle_app_get);
    router_add(r, "PATCH", "/v2/apps/me", handle_app_patch);
}
