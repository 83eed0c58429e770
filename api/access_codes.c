/* access_codes.c — API-9 access codes and the public join exchange.
 * See access_codes.h. */
#include "api/access_codes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http_server.h"
#include "api/router.h"
#include "api/viewer_common.h"
#include "api/viewer_tokens.h"
#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

#define GENERATED_CODE_LEN 10
#define RATE_KEYS_MAX 100000

static struct {
    pthread_mutex_t mu;
    bool started;
    struct vrate join_rate;
} C = {.mu = PTHREAD_MUTEX_INITIALIZER};

bool access_code_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        if (n >= 64 || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                         (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return n >= 4;
}

int access_codes_start(struct api_ctx *ctx, char *err, size_t errlen)
{
    (void)ctx;
    if (vrate_init(&C.join_rate, ACCESS_CODE_JOIN_LIMIT, ACCESS_CODE_JOIN_WINDOW_MS, RATE_KEYS_MAX) != 0) {
        snprintf(err, errlen, "access codes: out of memory");
        return -1;
    }
    C.started = true;
    return 0;
}

void access_codes_stop(void)
{
    pthread_mutex_lock(&C.mu);
    if (C.started)
        vrate_free(&C.join_rate);
    C.started = false;
    pthread_mutex_unlock(&C.mu);
}

#define CODE_COLUMNS                                                                               \
    "c.id, c.video_room_id, c.code, c.role, " VSQL_ISO("c.expires_at") ", "                        \
    VSQL_ISO("c.last_usage") ", " VSQL_ISO("c.created_at") ","                                     \
    " (c.expires_at IS NOT NULL AND c.expires_at <= now())"

static json_t *code_json(PGresult *res, int i)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(db_get_i64(res, i, 0)));
    json_object_set_new(o, "roomId", json_integer(db_get_i64(res, i, 1)));
    json_object_set_new(o, "code", json_string(db_get_str(res, i, 2)));
    json_object_set_new(o, "role", json_string(db_get_str(res, i, 3)));
    const char *expired = db_get_str(res, i, 7);
    json_object_set_new(o, "status", json_string(expired && expired[0] == 't' ? "EXPIRED" : "ACTIVE"));
    for (int k = 4; k <= 6; k++) {
        static const char *const names[] = {"expiresAt", "lastUsage", "createdAt"};
        const char *v = db_get_str(res, i, k);
        json_object_set_new(o, names[k - 4], v ? json_string(v) : json_null());
    }
    return o;
}

/* ---- POST …/access-codes ------------------------------------------------------ */

struct create_args {
    const char *code;       /* chosen, or NULL → generated */
    enum viewer_role role;
    const char *expires_at; /* ISO-8601 or NULL */
};

static void free_user(struct vjob *j)
{
    free(j->user);
    j->user = NULL;
}

static void create_work(PGconn *c, struct vjob *j)
{
    struct create_args *a = j->user;
    char app[24], room[24], generated[GENERATED_CODE_LEN + 1];
    snprintf(app, sizeof app, "%lld", (long long)j->app_id);
    snprintf(room, sizeof room, "%lld", (long long)j->room_id);
    /* A generated code may collide with an existing one: try a few times. */
    for (int attempt = 0; attempt < 3; attempt++) {
        const char *code = a->code;
        if (!code) {
            if (secure_random_alnum(generated, GENERATED_CODE_LEN) != 0) {
                vjob_fail(j, 500, "INTERNAL_ERROR", "no randomness");
                return;
            }
            code = generated;
        }
        const char *params[5] = {app, room, code, viewer_role_name(a->role), a->expires_at};
        char sqlstate[6];
        PGresult *res = db_exec(c, "access code create",
                                "INSERT INTO access_codes AS c (app_id, video_room_id, code, role, expires_at)"
                                " VALUES ($1, $2, $3, $4, $5::timestamptz) RETURNING " CODE_COLUMNS,
                                5, params, sqlstate);
        if (res) {
            j->status = 201;
            j->out = json_pack("{s:b, s:o}", "success", 1, "data", code_json(res, 0));
            PQclear(res);
            return;
        }
        if (strcmp(sqlstate, "23505") == 0) {
            if (a->code) {
                vjob_fail(j, 409, "ACCESS_CODE_ALREADY_EXISTS",
                          "this room already has the access code \"%s\"", a->code);
                return;
            }
            continue;
        }
        if (sqlstate[0] == '2' && sqlstate[1] == '2') { /* data exception: bad timestamp */
            vjob_fail_field(j, 400, "INVALID_PARAMETER", "expiresAt", "expiresAt must be an ISO-8601 date-time");
            return;
        }
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
        return;
    }
    vjob_fail(j, 500, "INTERNAL_ERROR", "could not generate a unique code");
}

static bool prepare_room_job(struct vjob *j, const struct route_params *params)
{
    j->auth = VJOB_AUTH_APP;
    j->bearer_min_role = VIEWER_ROLE_ADMIN;
    j->room_id = vparse_id(route_param(params, "id"));
    j->done = free_user;
    if (!j->room_id) {
        vjob_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
        vjob_reply(j);
        return false;
    }
    return true;
}

static void handle_create(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j || !prepare_room_job(j, params))
        return;
    j->in = api_read_json_object(r);
    if (!j->in) {
        free(j);
        return;
    }
    struct create_args *a = calloc(1, sizeof *a);
    if (!a) {
        vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        vjob_reply(j);
        return;
    }
    j->user = a;
    const char *role = NULL;
    if (vjson_opt_string(j, "code", 64, &a->code) != 0 || vjson_opt_string(j, "role", 32, &role) != 0 ||
        vjson_opt_string(j, "expiresAt", 64, &a->expires_at) != 0) {
        free_user(j);
        vjob_reply(j);
        return;
    }
    if (a->expires_at && !viso8601_valid(a->expires_at)) {
        free_user(j);
        vjob_fail_field(j, 400, "INVALID_PARAMETER", "expiresAt",
                  "expiresAt must be an ISO-8601 date-time with a zone, e.g. 2025-01-31T12:00:00Z");
        vjob_reply(j);
        return;
    }
    if (a->code && !access_code_valid(a->code)) {
        free_user(j);
        vjob_fail_field(j, 400, "INVALID_PARAMETER", "code", "code must be 4 to 64 of A-Z a-z 0-9 _ -");
        vjob_reply(j);
        return;
    }
    a->role = role ? viewer_role_parse(role) : VIEWER_ROLE_STUDENT;
    if (a->role == VIEWER_ROLE_NONE) {
        free_user(j);
        vjob_fail_field(j, 400, "INVALID_PARAMETER", "role",
                  "role must be one of STUDENT, MODERATOR, TEACHER, ADMIN");
        vjob_reply(j);
        return;
    }
    j->work = create_work;
    vjob_submit(j);
}

/* ---- GET …/access-codes --------------------------------------------------------- */

static const char *const list_sorts[] = {"CREATED_AT_DESC", "CREATED_AT_ASC", NULL};

static json_t *list_row(struct vjob *j, PGresult *res, int i)
{
    (void)j;
    return code_json(res, i);
}

static void list_work(PGconn *c, struct vjob *j)
{
    vpage_room_list(c, j, j->user, "access codes",
                    "SELECT count(*) FROM access_codes WHERE video_room_id = $1",
                    "SELECT " CODE_COLUMNS " FROM access_codes c WHERE c.video_room_id = $1"
                    " ORDER BY c.created_at ASC, c.id ASC LIMIT $2 OFFSET $3",
                    "SELECT " CODE_COLUMNS " FROM access_codes c WHERE c.video_room_id = $1"
                    " ORDER BY c.created_at DESC, c.id DESC LIMIT $2 OFFSET $3",
                    list_row);
}

static void handle_list(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j || !prepare_room_job(j, params))
        return;
    struct vpage *p = calloc(1, sizeof *p);
    j->user = p;
    if (!p || vpage_parse(j, list_sorts, p) != 0) {
        if (!p)
            vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        free_user(j);
        vjob_reply(j);
        return;
    }
    j->work = list_work;
    vjob_submit(j);
}

/* ---- DELETE ----------------------------------------------------------------------- */

static void delete_work(PGconn *c, struct vjob *j)
{
    int64_t *code_id = j->user; /* NULL = every code of the room */
    char room[24], id[24];
    snprintf(room, sizeof room, "%lld", (long long)j->room_id);
    snprintf(id, sizeof id, "%lld", code_id ? (long long)*code_id : 0LL);
    const char *params[2] = {room, id};
    PGresult *res = db_exec(c, "access code delete",
                            code_id ? "DELETE FROM access_codes WHERE video_room_id = $1 AND id = $2"
                                    : "DELETE FROM access_codes WHERE video_room_id = $1",
                            code_id ? 2 : 1, params, NULL);
    if (!res) {
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
        return;
    }
    if (code_id && strcmp(PQcmdTuples(res), "0") == 0)
        vjob_fail(j, 404, "ACCESS_CODE_NOT_FOUND", "access code %lld not found in this room",
                  (long long)*code_id);
    else
        j->status = 204;
    PQclear(res);
}

static void handle_delete_all(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j || !prepare_room_job(j, params))
        return;
    j->work = delete_work;
    vjob_submit(j);
}

static void handle_delete_one(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j || !prepare_room_job(j, params))
        return;
    int64_t id = vparse_id(route_param(params, "codeId"));
    int64_t *p = id ? malloc(sizeof *p) : NULL;
    if (!p) {
        vjob_fail(j, 404, "ACCESS_CODE_NOT_FOUND", "access code not found");
        vjob_reply(j);
        return;
    }
    *p = id;
    j->user = p;
    j->work = delete_work;
    vjob_submit(j);
}

/* ---- POST /v2/rooms/{id}/join ----------------------------------------------------- */

struct join_args {
    const char *code, *uid, *name, *photo;
};

static void join_work(PGconn *c, struct vjob *j)
{
    struct join_args *a = j->user;
    char room[24];
    snprintf(room, sizeof room, "%lld", (long long)j->room_id);
    const char *params[2] = {room, a->code};
    /* The code is looked up by (room, code): the unique index answers in the
     * same time whether it exists or not; the rate limit bounds guessing. */
    PGresult *res = db_exec(c, "join",
                            "UPDATE access_codes c SET last_usage = now()"
                            " FROM video_rooms r"
                            " WHERE c.video_room_id = $1 AND c.code = $2"
                            " AND (c.expires_at IS NULL OR c.expires_at > now())"
                            " AND r.id = c.video_room_id AND r.state = 'ACTIVE'"
                            " RETURNING c.id, c.role, c.app_id",
                            2, params, NULL);
    if (!res) {
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
        return;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        vjob_fail(j, 403, "ACCESS_CODE_INVALID", "invalid or expired access code for this room");
        return;
    }
    int64_t code_id = db_get_i64(res, 0, 0);
    enum viewer_role role = viewer_role_parse(db_get_str(res, 0, 1));
    int64_t app_id = db_get_i64(res, 0, 2);
    PQclear(res);
    json_t *o = viewer_tokens_create(c, j->r->ctx, app_id, j->room_id, role, a->uid, a->name, a->photo,
                                     VIEWER_TOKEN_DEFAULT_TTL, code_id);
    if (!o) {
        vjob_fail(j, 500, "INTERNAL_ERROR", "token could not be created");
        return;
    }
    log_info("access codes: join room=%lld code_id=%lld role=%s", (long long)j->room_id,
             (long long)code_id, viewer_role_name(role));
    j->status = 200;
    j->out = json_pack("{s:b, s:o}", "success", 1, "data", o);
}

static void handle_join(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j)
        return;
    j->auth = VJOB_AUTH_NONE;
    j->room_id = vparse_id(route_param(params, "id"));
    j->done = free_user;
    const char *ip = api_peer_ip(r);
    int retry = 0;
    pthread_mutex_lock(&C.mu);
    bool ok = C.started && vrate_hit(&C.join_rate, vhash_str(ip, strlen(ip)), loop_now_ms(), &retry);
    pthread_mutex_unlock(&C.mu);
    if (!ok) {
        snprintf(j->retry_after, sizeof j->retry_after, "%d", retry > 0 ? retry : 60);
        vjob_fail(j, 429, "RATE_LIMITED", "too many join attempts; retry in %d s", retry);
        vjob_reply(j);
        return;
    }
    if (!j->room_id) {
        vjob_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
        vjob_reply(j);
        return;
    }
    j->in = api_read_json_object(r);
    if (!j->in) {
        free(j);
        return;
    }
    struct join_args *a = calloc(1, sizeof *a);
    if (!a) {
        vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        vjob_reply(j);
        return;
    }
    j->user = a;
    if (vjson_opt_string(j, "code", 64, &a->code) != 0 ||
        vjson_opt_string(j, "uid", VIEWER_UID_MAX, &a->uid) != 0 ||
        vjson_opt_string(j, "name", 500, &a->name) != 0 ||
        vjson_opt_string(j, "photoURL", 2000, &a->photo) != 0) {
        free_user(j);
        vjob_reply(j);
        return;
    }
    if (!a->code || !*a->code) {
        free_user(j);
        vjob_fail_field(j, 400, "INVALID_PARAMETER", "code", "code is required");
        vjob_reply(j);
        return;
    }
    j->work = join_work;
    vjob_submit(j);
}

void access_codes_register_routes(struct router *r)
{
    router_add(r, "POST", "/v2/apps/me/video-rooms/{id}/access-codes", handle_create);
    router_add(r, "GET", "/v2/apps/me/video-rooms/{id}/access-codes", handle_list);
    router_add(r, "DELETE", "/v2/apps/me/video-rooms/{id}/access-codes", handle_delete_all);
    router_add(r, "DELETE", "/v2/apps/me/video-rooms/{id}/access-codes/{codeId}", handle_delete_one);
    router_add(r, "POST", "/v2/rooms/{id}/join", handle_join);
}
