/* room_status.c — SPEC API-6 (see room_status.h; shape from seed 001). */
#include "api/room_status.h"
#include "api/viewer_access.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "broadcast/gateway.h"
#include "storage/db.h"

struct status_input {
    bool v1;
    bool found, has_id;
    int64_t id, room_id, key_id, key_room_id;
    char rstate[16], kstate[24];
    bool is_recording;
    json_t *title, *created_at, *started_at; /* owned */
};

static void input_free(void *p)
{
    struct status_input *in = p;
    json_decref(in->title);
    json_decref(in->created_at);
    json_decref(in->started_at);
    free(in);
}

static void status_work(PGconn *c, struct api_job *j)
{
    struct status_input *in = j->in;
    char app[24], id[24];
    snprintf(app, sizeof app, "%" PRId64, j->app.id);
    snprintf(id, sizeof id, "%" PRId64, in->id);
    const char *p[3] = {app, in->has_id ? id : NULL, in->v1 ? j->param : NULL};
    PGresult *r = db_exec(c, "room status",
                          "SELECT r.id, r.title, r.video_room_state, r.is_recording,"
                          " iso_utc(r.created_at), iso_utc(r.started_at), COALESCE(k.id, 0),"
                          " COALESCE(k.stream_key_state, ''), COALESCE(k.video_room_id, 0)"
                          " FROM video_rooms r"
                          " LEFT JOIN stream_keys k ON k.member_id = r.member_id AND k.state = 'ACTIVE'"
                          " WHERE r.app_id = $1 AND r.state = 'ACTIVE'"
                          " AND (r.id = $2::bigint OR r.external_id = $3)"
                          " ORDER BY (r.external_id IS NOT DISTINCT FROM $3) DESC, r.id LIMIT 1",
                          3, p, NULL);
    if (!r) {
        api_job_fail(j, 500, "INTERNAL_ERROR", "database error");
        return;
    }
    if (PQntuples(r) == 1) {
        in->found = true;
        in->room_id = db_get_i64(r, 0, 0);
        in->title = ju_col_string(r, 0, 1);
        snprintf(in->rstate, sizeof in->rstate, "%s", PQgetvalue(r, 0, 2));
        in->is_recording = PQgetvalue(r, 0, 3)[0] == 't';
        in->created_at = ju_col_string(r, 0, 4);
        in->started_at = ju_col_string(r, 0, 5);
        in->key_id = db_get_i64(r, 0, 6);
        snprintf(in->kstate, sizeof in->kstate, "%s", PQgetvalue(r, 0, 7));
        in->key_room_id = db_get_i64(r, 0, 8);
    }
    PQclear(r);
}

static bool is_state(const char *s, const char *a, const char *b)
{
    return strcmp(s, a) == 0 || (b && strcmp(s, b) == 0);
}

/* http loop: the live figures, then the reply body. */
static void status_finish(struct api_job *j)
{
    struct status_input *in = j->in;
    json_t *room_id = in->v1 || !in->has_id ? json_string(j->param) : json_integer(in->id);
    json_t *data = json_object();
    if (!in->found) {
        json_object_set_new(data, "exists", json_false());
        json_object_set_new(data, "isActive", json_false());
        json_object_set_new(data, "roomId", room_id);
        j->reply = json_pack("{s:b, s:s, s:o}", "success", 1, "message", "Room not found",
                             "data", data);
        return;
    }
    struct gateway *gw = j->ctx->gateway;
    bool active = is_state(in->rstate, "LIVE", "LIVE_INACTIVE");
    bool scheduled = strcmp(in->rstate, "SCHEDULED") == 0;
    /* A publisher is there for this room: live in it, or previewing before
     * it starts (the member's key ACTIVE_PREP / ACTIVE). */
    bool teacher = false;
    if (in->key_id && active && in->key_room_id == in->room_id)
        teacher = is_state(in->kstate, "ACTIVE_LIVE", "ACTIVE_LIVE_PREP") ||
                  (gw && gateway_key_has_publisher(gw, in->key_id));
    else if (in->key_id && scheduled && !in->key_room_id)
        teacher = is_state(in->kstate, "ACTIVE_PREP", "ACTIVE") ||
                  (gw && gateway_key_has_publisher(gw, in->key_id));
    /* PKG-8: distinct viewer sessions of the last 30 s (api/viewer_access.c). */
    int viewers = active ? viewer_sessions_count(in->room_id) : 0;
    json_object_set_new(data, "exists", json_true());
    json_object_set_new(data, "isActive", json_boolean(active));
    json_object_set_new(data, "roomId", room_id);
    json_object_set_new(data, "videoRoomId", json_integer(in->room_id));
    json_object_set_new(data, "videoRoomState", json_string(in->rstate));
    json_object_set_new(data, "title", json_incref(in->title));
    json_object_set_new(data, "participantCount", json_integer(viewers));
    json_object_set_new(data, "hasTeacher", json_boolean(teacher));
    json_object_set_new(data, "isRecording", json_boolean(active && in->is_recording));
    json_object_set_new(data, "createdAt", json_incref(in->created_at));
    json_object_set_new(data, "startedAt", json_incref(in->started_at));
    j->reply = json_pack("{s:b, s:s, s:o}", "success", 1, "message", "Room status retrieved",
                         "data", data);
}

static struct api_job *status_job(void *request, enum auth_mode mode)
{
    struct api_job *j = api_job_new(request, mode);
    if (!j)
        return NULL;
    struct status_input *in = calloc(1, sizeof *in);
    j->in = in;
    j->in_free = input_free;
    if (!in)
        api_job_fail(j, 503, "UNAVAILABLE", "out of memory");
    else
        in->v1 = mode == AUTH_BASIC_OR_ORG;
    j->work = status_work;
    j->finish = status_finish;
    return j;
}

void room_status_handle_v2(void *request, const struct route_params *p)
{
    struct api_job *j = status_job(request, AUTH_BASIC);
    if (!j)
        return;
    const char *v = route_param(p, "videoRoomId");
    struct status_input *in = j->in;
    snprintf(j->param, sizeof j->param, "%s", v ? v : "");
    if (in && ju_utf8_valid(j->param, strlen(j->param)))
        in->has_id = ju_parse_id(j->param, &in->id);
    else if (in)
        j->param[0] = 0;
    /* Not an id at all: no room can match; still 200 exists:false. */
    api_job_submit(j);
}

/* 400 {"success": false, "message": "Missing roomId"} (seed 001). */
static void missing_room_id(struct api_request *r)
{
    api_reply_json(r, 400, json_pack("{s:b, s:s}", "success", 0, "message", "Missing roomId"));
}

void room_status_handle_v1(void *request, const struct route_params *p)
{
    const char *v = route_param(p, "roomId");
    if (!v || ju_is_blank(v)) {
        missing_room_id(request);
        return;
    }
    struct api_job *j = status_job(request, AUTH_BASIC_OR_ORG);
    if (!j)
        return;
    struct status_input *in = j->in;
    if (!ju_utf8_valid(v, strlen(v))) {
        api_job_fail(j, 400, "INVALID_PARAMETER", "roomId must be UTF-8 text");
    } else {
        snprintf(j->param, sizeof j->param, "%s", v);
        if (in)
            in->has_id = ju_parse_id(v, &in->id);
    }
    api_job_submit(j);
}

void room_status_handle_v1_other(void *request, const struct route_params *p)
{
    /* "/v1/room//status", "/v1/room/status", "/v1/room/%20/status": the
     * status path without a room id. Anything else here does not exist. */
    const char *rest = route_param(p, "rest");
    size_t n = rest ? strlen(rest) : 0;
    bool status_path = n >= 6 && strcmp(rest + n - 6, "status") == 0 &&
                       (n == 6 || rest[n - 7] == '/');
    if (status_path) {
        char id[ROUTER_PARAM_MAX];
        snprintf(id, sizeof id, "%.*s", (int)(n > 6 ? n - 7 : 0), rest);
        if (ju_is_blank(id)) {
            missing_room_id(request);
            return;
        }
    }
    api_reply_json(request, 404,
                   json_pack("{s:b, s:s}", "success", 0, "message", "Not found"));
}
