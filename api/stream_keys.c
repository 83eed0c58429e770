/* stream_keys.c — SPEC API-3 handlers (see stream_keys.h). */
#include "api/stream_keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/members.h"
#include "broadcast/state_machine.h"
#include "storage/db.h"

void stream_keys_live_base(const struct api_ctx *ctx, const char *node_url, char *out,
                           size_t outlen)
{
    const char *base = ctx->public_url;
    if (!ctx->cfg->public_url[0] && node_url && node_url[0])
        base = node_url;
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    snprintf(out, outlen, "%.*s", (int)n, base);
}

json_t *stream_keys_profile(const struct api_ctx *ctx)
{
    const struct config *cfg = ctx->cfg;
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("CMAF"));
    json_object_set_new(o, "segmentDuration", json_real(cfg->segment_duration_ms / 1000.0));
    json_object_set_new(o, "partDuration", json_real(cfg->part_duration_ms / 1000.0));
    json_object_set_new(o, "lowLatency", json_boolean(cfg->part_duration_ms > 0));
    json_object_set_new(o, "liveWindowSegments", json_integer(cfg->live_window_segments));
    json_object_set_new(o, "videoCodecs", json_pack("[s,s,s]", "H264", "HEVC", "AV1"));
    json_object_set_new(o, "audioCodecs", json_pack("[s]", "AAC"));
    json_object_set_new(o, "transcoding", json_false());
    return o;
}

/* Column order of KEY_SELECT. */
enum {
    K_ID, K_STATE, K_KSTATE, K_KEY, K_ERROR, K_CREATED, K_MODIFIED,
    K_MEMBER, /* MEMBER_SUMMARY_NCOLS columns */
    K_ROOM_ID = K_MEMBER + MEMBER_SUMMARY_NCOLS, K_ROOM_STATE, K_ROOM_RSTATE, K_NODE_URL,
};

#define KEY_SELECT                                                                             \
    "SELECT k.id, k.state, k.stream_key_state, k.stream_key, k.error,"                         \
    " iso_utc(k.created_at), iso_utc(k.last_modified_at), " MEMBER_SUMMARY_COLS ","           \
    " r.id, r.state, r.video_room_state, n.http_url"                                           \
    " FROM stream_keys k JOIN members m ON m.id = k.member_id"                                 \
    " LEFT JOIN video_rooms r ON r.id = k.video_room_id"                                       \
    " LEFT JOIN nodes n ON n.id = k.node_id"

static json_t *render_key(const struct api_job *j, const PGresult *r, int row)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", ju_col_int(r, row, K_ID));
    json_object_set_new(o, "state", ju_col_string(r, row, K_STATE));
    json_object_set_new(o, "streamKeyState", ju_col_string(r, row, K_KSTATE));
    json_object_set_new(o, "app", json_pack("{s:I, s:s, s:s}", "id", (json_int_t)j->app.id,
                                            "state", j->app.state, "name", j->app.name));
    json_object_set_new(o, "member", members_render_summary(r, row, K_MEMBER));
    if (PQgetisnull(r, row, K_ROOM_ID))
        json_object_set_new(o, "videoRoom", json_null());
    else {
        json_t *room = json_object();
        json_object_set_new(room, "id", ju_col_int(r, row, K_ROOM_ID));
        json_object_set_new(room, "state", ju_col_string(r, row, K_ROOM_STATE));
        json_object_set_new(room, "videoRoomState", ju_col_string(r, row, K_ROOM_RSTATE));
        json_object_set_new(o, "videoRoom", room);
    }
    json_object_set_new(o, "streamKey", ju_col_string(r, row, K_KEY));
    json_object_set_new(o, "ingestUrl", json_string(j->ctx->rtmp_public_url));

    const char *kstate = PQgetvalue(r, row, K_KSTATE);
    char base[CONFIG_STR_MAX], url[CONFIG_STR_MAX + 96];
    stream_keys_live_base(j->ctx, db_get_str(r, row, K_NODE_URL), base, sizeof base);
    bool preview = strcmp(kstate, "ACTIVE_PREP") == 0 || strcmp(kstate, "ACTIVE") == 0;
    bool live = !PQgetisnull(r, row, K_ROOM_ID) &&
                (strcmp(kstate, "ACTIVE_LIVE") == 0 || strcmp(kstate, "INACTIVE_LIVE") == 0 ||
                 strcmp(kstate, "ACTIVE_LIVE_PREP") == 0);
    if (live) {
        snprintf(url, sizeof url, "%s/hls/rooms/%s/index.m3u8", base,
                 PQgetvalue(r, row, K_ROOM_ID));
        json_object_set_new(o, "liveUrl", json_string(url));
    } else if (preview) {
        snprintf(url, sizeof url, "%s/hls/keys/%s/index.m3u8", base, PQgetvalue(r, row, K_ID));
        json_object_set_new(o, "liveUrl", json_string(url));
    } else {
        json_object_set_new(o, "liveUrl", json_null());
    }
    json_object_set_new(o, "profile", stream_keys_profile(j->ctx));
    json_object_set_new(o, "error", ju_col_string(r, row, K_ERROR));
    json_object_set_new(o, "createdAt", ju_col_string(r, row, K_CREATED));
    json_object_set_new(o, "lastModifiedAt", ju_col_string(r, row, K_MODIFIED));
    return o;
}

static void key_not_found(struct api_job *j)
{
    api_job_not_found(j, "STREAM_KEY_NOT_FOUND", "StreamKey");
}

/* The key with id j->id of the caller's app (ACTIVE) into j->reply. */
static void reply_key_by_id(PGconn *c, struct api_job *j)
{
    api_job_reply_one(c, j, "key get",
                      KEY_SELECT " WHERE k.app_id = $1 AND k.id = $2 AND k.state = 'ACTIVE'",
                      "STREAM_KEY_NOT_FOUND", "StreamKey", render_key);
}

/* ------------------------------------------------------------------------
 * GET /v2/apps/me/members/{appUserId}/stream-key
 * ------------------------------------------------------------------------ */
static void member_key_work(PGconn *c, struct api_job *j)
{
    char app[24];
    snprintf(app, sizeof app, "%" PRId64, j->app.id);
    const char *p[2] = {app, j->param};
    PGresult *r = db_exec(c, "member key",
                          "SELECT m.id, COALESCE(k.id, 0) FROM members m"
                          " LEFT JOIN stream_keys k ON k.member_id = m.id AND k.state = 'ACTIVE'"
                          " WHERE m.app_id = $1 AND m.app_user_id = $2 AND m.state = 'ACTIVE'",
                          2, p, NULL);
    if (!r)
        return api_job_db_error(j);
    int found = PQntuples(r) == 1;
    j->id = found ? db_get_i64(r, 0, 1) : 0;
    PQclear(r);
    if (!found)
        return api_job_not_found(j, "MEMBER_NOT_FOUND", "Member");
    if (!j->id)
        return key_not_found(j);
    reply_key_by_id(c, j);
}

void stream_keys_handle_member_key(void *request, const struct route_params *p)
{
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    api_job_path(j, p, "appUserId", false, "MEMBER_NOT_FOUND", "Member");
    j->work = member_key_work;
    api_job_submit(j);
}

/* ------------------------------------------------------------------------
 * GET /v2/apps/me/stream-keys
 * ------------------------------------------------------------------------ */
struct list_input {
    struct ju_page page;
    bool has_member, has_room;
    int64_t member_id, room_id;
    const char *app_user_id, *app_user_name;
};

static void list_filters(struct ju_query *q, const struct api_job *j, const void *arg)
{
    const struct list_input *in = arg;
    ju_query_add(q, " WHERE k.app_id = $?", ju_query_i64(q, j->app.id));
    ju_query_add(q, " AND k.state = 'ACTIVE'", NULL);
    if (in->has_member)
        ju_query_add(q, " AND k.member_id = $?", ju_query_i64(q, in->member_id));
    if (in->has_room)
        ju_query_add(q, " AND k.video_room_id = $?", ju_query_i64(q, in->room_id));
    if (in->app_user_id)
        ju_query_add(q, " AND m.app_user_id = $?", in->app_user_id);
    if (in->app_user_name)
        ju_query_add(q, " AND m.app_user_name = $?", in->app_user_name);
}

static void list_work(PGconn *c, struct api_job *j)
{
    struct list_input *in = j->in;
    api_job_page_list(c, j, "key",
                      "SELECT count(*) FROM stream_keys k JOIN members m ON m.id = k.member_id",
                      KEY_SELECT, list_filters, in, "k", &in->page, render_key);
}

/* An optional id filter from the query string. */
static int query_id(struct api_job *j, const char *name, bool *has, int64_t *out)
{
    const char *v;
    if (api_job_query(j, name, &v) != 0)
        return -1;
    *has = v != NULL;
    if (!v)
        return 0;
    return ju_parse_query_int(v, name, 1, INT64_MAX, out, &j->err);
}

void stream_keys_handle_list(void *request, const struct route_params *p)
{
    (void)p;
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    struct list_input *in = api_job_input(j, sizeof *in);
    if (in && api_job_page_query(j, true, &in->page) == 0 &&
        query_id(j, "memberId", &in->has_member, &in->member_id) == 0 &&
        query_id(j, "videoRoomId", &in->has_room, &in->room_id) == 0 &&
        api_job_query(j, "appUserId", &in->app_user_id) == 0)
        api_job_query(j, "appUserName", &in->app_user_name);
    j->work = list_work;
    api_job_submit(j);
}

/* ------------------------------------------------------------------------
 * GET /v2/apps/me/stream-keys/{streamKeyId} and the two actions
 * ------------------------------------------------------------------------ */
static void get_work(PGconn *c, struct api_job *j) { reply_key_by_id(c, j); }

static void state_error(struct api_job *j, enum bc_result rc)
{
    api_job_fail(j, bc_result_status(rc), bc_result_code(rc), "%s", bc_result_message(rc));
}

static void reissue_work(PGconn *c, struct api_job *j)
{
    enum bc_result rc = bc_key_reissue(c, j->app.id, j->id, j->actor);
    if (rc != BC_OK)
        return state_error(j, rc);
    reply_key_by_id(c, j);
}

static void force_work(PGconn *c, struct api_job *j)
{
    enum bc_result rc = bc_key_force_terminate(c, j->app.id, j->id, j->actor);
    if (rc != BC_OK)
        return state_error(j, rc);
    j->status = 204;
}

static void by_id(void *request, const struct route_params *p, api_job_work_fn work)
{
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    api_job_path(j, p, "streamKeyId", true, "STREAM_KEY_NOT_FOUND", "StreamKey");
    j->work = work;
    api_job_submit(j);
}

void stream_keys_handle_get(void *request, const struct route_params *p)
{
    by_id(request, p, get_work);
}

void stream_keys_handle_reissue(void *request, const struct route_params *p)
{
    by_id(request, p, reissue_work);
}

void stream_keys_handle_force_terminate(void *request, const struct route_params *p)
{
    by_id(request, p, force_work);
}
