/* video_rooms.c — SPEC API-4 / API-5 handlers (see video_rooms.h). */
#include "api/video_rooms.h"
#include "api/viewer_tokens.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/members.h"
#include "api/stream_keys.h"
#include "broadcast/events.h"
#include "broadcast/state_machine.h"
#include "core/secure.h"
#include "storage/db.h"

const char *const video_room_types[] = {"BROADCAST_RTMP", "BROADCAST_WEBRTC", "WEBINAR",
                                        "VIDEO_CONFERENCE", "SURVEILLANCE", NULL};
const char *const video_room_access[] = {"PUBLIC", "APP", "MEMBER", "FRIEND",
                                         "FOLLOWER", "RESTRICTED", "PRIVATE", NULL};
const char *const video_room_states[] = {"SCHEDULED", "LIVE", "LIVE_INACTIVE", "ENDED",
                                         "ARCHIVED", "ACTIVE", NULL};

/* ------------------------------------------------------------------------
 * Pure validation
 * ------------------------------------------------------------------------ */
static int parse_enum(json_t *body, const char *key, const char *const *allowed,
                      enum ju_presence *st, const char **out, struct ju_error *e)
{
    if (ju_get_string(body, key, NULL, 64, st, out, e))
        return -1;
    if (*st == JU_SET && ju_enum_index(*out, allowed) < 0)
        return ju_fail(e, 400, "INVALID_PARAMETER", key, "%s has an unknown value", key);
    return 0;
}

static int parse_scheduled_at(json_t *body, struct room_input *in, struct ju_error *e)
{
    const char *s;
    if (ju_get_string(body, "scheduledAt", NULL, 64, &in->sched_st, &s, e))
        return -1;
    if (in->sched_st != JU_SET)
        return 0;
    if (ju_is_blank(s)) {
        in->sched_st = JU_NULL;
        return 0;
    }
    int64_t us;
    if (ju_parse_time(s, &us) != 0)
        return ju_fail(e, 400, "INVALID_PARAMETER", "scheduledAt",
                       "scheduledAt must be an ISO-8601 time with a zone, like "
                       "2022-10-19T23:59:59.999Z");
    ju_format_time_us(us, in->scheduled_at);
    return 0;
}

static int parse_settings(json_t *body, struct room_input *in, struct ju_error *e)
{
    json_t *s = json_object_get(body, "settings");
    if (!s || json_is_null(s))
        return 0;
    if (!json_is_object(s))
        return ju_fail(e, 400, "INVALID_PARAMETER", "settings", "settings must be an object");
    static const struct {
        const char *key, *label;
        size_t off;
    } bools[] = {
        {"recording", "settings.recording", offsetof(struct room_input, recording)},
        {"autoStartRecording", "settings.autoStartRecording",
         offsetof(struct room_input, auto_start_recording)},
        {"autoStart", "settings.autoStart", offsetof(struct room_input, auto_start)},
    }, ints[] = {
        {"autoEndAfterSec", "settings.autoEndAfterSec",
         offsetof(struct room_input, auto_end_after_sec)},
        {"maxDurationSec", "settings.maxDurationSec",
         offsetof(struct room_input, max_duration_sec)},
        {"maxParticipants", "settings.maxParticipants",
         offsetof(struct room_input, max_participants)},
        {"dvrWindowSec", "settings.dvrWindowSec", offsetof(struct room_input, dvr_window_sec)},
    };
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        struct room_bool_setting *b = (struct room_bool_setting *)((char *)in + bools[i].off);
        if (ju_get_bool(s, bools[i].key, bools[i].label, &b->st, &b->v, e))
            return -1;
        if (b->st == JU_NULL)
            return ju_fail(e, 400, "INVALID_PARAMETER", bools[i].label, "%s must be a boolean",
                           bools[i].label);
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        struct room_int_setting *n = (struct room_int_setting *)((char *)in + ints[i].off);
        if (ju_get_int(s, ints[i].key, ints[i].label, 1, ROOM_SETTING_MAX, &n->st, &n->v, e))
            return -1;
    }
    return 0;
}

static int parse_common(json_t *body, struct room_input *in, struct ju_error *e)
{
    if (ju_get_string(body, "title", NULL, ROOM_TITLE_MAX, &in->title_st, &in->title, e) ||
        ju_get_string(body, "description", NULL, ROOM_DESCRIPTION_MAX, &in->desc_st,
                      &in->description, e) ||
        parse_enum(body, "accessLevel", video_room_access, &in->access_st, &in->access_level, e) ||
        ju_get_string(body, "externalId", NULL, ROOM_EXTERNAL_ID_MAX, &in->ext_st,
                      &in->external_id, e))
        return -1;
    if (in->ext_st == JU_SET && ju_is_blank(in->external_id))
        return ju_fail(e, 400, "INVALID_PARAMETER", "externalId",
                       "externalId must not be blank (use null to clear it)");
    json_t *meta = json_object_get(body, "metadata");
    if (meta && json_is_null(meta)) {
        in->meta_st = JU_NULL;
    } else if (meta) {
        if (ju_validate_metadata(meta, e))
            return -1;
        in->meta_st = JU_SET;
        in->metadata = meta;
    }
    return parse_settings(body, in, e);
}

int video_rooms_parse_create(json_t *body, struct room_input *in, struct ju_error *e)
{
    memset(in, 0, sizeof *in);
    enum ju_presence st;
    const char *v;
    if (ju_get_string(body, "appUserId", NULL, MEMBER_APP_USER_ID_MAX, &st, &v, e))
        return -1;
    if (st != JU_SET || ju_is_blank(v))
        return ju_fail(e, 400, "EMPTY_VIDEO_ROOM_APP_USER_ID", "appUserId",
                       "appUserId is required");
    in->app_user_id = v;
    if (ju_get_string(body, "type", NULL, 64, &st, &v, e))
        return -1;
    if (st != JU_SET || ju_is_blank(v))
        return ju_fail(e, 400, "EMPTY_VIDEO_ROOM_TYPE", "type", "type is required");
    if (ju_enum_index(v, video_room_types) < 0)
        return ju_fail(e, 400, "INVALID_PARAMETER", "type",
                       "type must be one of BROADCAST_RTMP, BROADCAST_WEBRTC, WEBINAR, "
                       "VIDEO_CONFERENCE, SURVEILLANCE");
    in->type = v;
    if (parse_scheduled_at(body, in, e))
        return -1;
    if (strcmp(in->type, "BROADCAST_RTMP") == 0 && in->sched_st != JU_SET)
        return ju_fail(e, 400, "EMPTY_VIDEO_ROOM_SCHEDULED_AT", "scheduledAt",
                       "scheduledAt is required for BROADCAST_RTMP rooms");
    return parse_common(body, in, e);
}

int video_rooms_parse_patch(json_t *body, struct room_input *in, struct ju_error *e)
{
    memset(in, 0, sizeof *in);
    if (parse_scheduled_at(body, in, e))
        return -1;
    if (parse_common(body, in, e))
        return -1;
    if (in->access_st == JU_NULL)
        return ju_fail(e, 400, "INVALID_PARAMETER", "accessLevel",
                       "accessLevel cannot be null");
    return 0;
}

void video_rooms_channel_key(int64_t room_id, char out[32])
{
    char text[64], hex[65];
    snprintf(text, sizeof text, "castgate-chat:%" PRId64, room_id);
    secure_sha256_hex(text, strlen(text), hex);
    snprintf(out, 32, "ch_%.24s", hex);
}

/* ------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------ */
enum {
    R_ID, R_STATE, R_RSTATE, R_TYPE, R_ACCESS, R_EXT, R_TITLE, R_DESC, R_SCHED, R_STARTED,
    R_ENDED, R_REC, R_ASR, R_AS, R_AEAS, R_MDS, R_MP, R_DVR, R_META, R_ISREC, R_CREATED,
    R_MODIFIED, R_MEMBER,
    R_KEY_ID = R_MEMBER + MEMBER_SUMMARY_NCOLS, R_KEY_STATE, R_KEY_KSTATE, R_NODE_URL,
};

#define ROOM_SELECT                                                                            \
    "SELECT r.id, r.state, r.video_room_state, r.type, r.access_level, r.external_id,"         \
    " r.title, r.description, iso_utc(r.scheduled_at), iso_utc(r.started_at),"               \
    " iso_utc(r.ended_at), r.recording, r.auto_start_recording, r.auto_start,"               \
    " r.auto_end_after_sec, r.max_duration_sec, r.max_participants, r.dvr_window_sec,"       \
    " r.metadata::text, r.is_recording, iso_utc(r.created_at), iso_utc(r.last_modified_at), " \
    MEMBER_SUMMARY_COLS ", k.id, k.state, k.stream_key_state, n.http_url"                     \
    " FROM video_rooms r JOIN members m ON m.id = r.member_id"                                 \
    " LEFT JOIN stream_keys k ON k.id = r.stream_key_id"                                       \
    " LEFT JOIN nodes n ON n.id = k.node_id"

static json_t *app_user(const struct api_job *j)
{
    return json_pack("{s:I, s:s, s:s, s:n}", "id", (json_int_t)j->app.id, "state", j->app.state,
                     "username", j->app.name, "email");
}

static json_t *render_room(const struct api_job *j, const PGresult *r, int row)
{
    int64_t id = db_get_i64(r, row, R_ID);
    const char *rstate = PQgetvalue(r, row, R_RSTATE);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "state", ju_col_string(r, row, R_STATE));
    json_object_set_new(o, "videoRoomState", ju_col_string(r, row, R_RSTATE));
    json_object_set_new(o, "type", ju_col_string(r, row, R_TYPE));
    json_object_set_new(o, "format", json_string("CMAF"));
    json_object_set_new(o, "app", json_pack("{s:I, s:s, s:s}", "id", (json_int_t)j->app.id,
                                            "state", j->app.state, "name", j->app.name));
    json_object_set_new(o, "member", members_render_summary(r, row, R_MEMBER));
    json_object_set_new(o, "creatorType", json_string("APP"));
    json_object_set_new(o, "creatorId", json_integer(j->app.id));
    json_object_set_new(o, "accessLevel", ju_col_string(r, row, R_ACCESS));
    json_object_set_new(o, "externalId", ju_col_string(r, row, R_EXT));
    json_object_set_new(o, "title", ju_col_string(r, row, R_TITLE));
    json_object_set_new(o, "description", ju_col_string(r, row, R_DESC));
    json_object_set_new(o, "scheduledAt", ju_col_string(r, row, R_SCHED));
    json_object_set_new(o, "startedAt", ju_col_string(r, row, R_STARTED));
    json_object_set_new(o, "endedAt", ju_col_string(r, row, R_ENDED));
    if (PQgetisnull(r, row, R_KEY_ID)) {
        json_object_set_new(o, "streamKey", json_null());
    } else {
        json_t *k = json_object();
        json_object_set_new(k, "id", ju_col_int(r, row, R_KEY_ID));
        json_object_set_new(k, "state", ju_col_string(r, row, R_KEY_STATE));
        json_object_set_new(k, "streamKeyState", ju_col_string(r, row, R_KEY_KSTATE));
        json_object_set_new(o, "streamKey", k);
    }
    if (strcmp(rstate, "LIVE") == 0 || strcmp(rstate, "LIVE_INACTIVE") == 0) {
        char base[CONFIG_STR_MAX], url[CONFIG_STR_MAX + 64];
        stream_keys_live_base(j->ctx, db_get_str(r, row, R_NODE_URL), base, sizeof base);
        snprintf(url, sizeof url, "%s/hls/rooms/%" PRId64 "/index.m3u8", base, id);
        json_object_set_new(o, "liveUrl", json_string(url));
    } else {
        json_object_set_new(o, "liveUrl", json_null());
    }
    char channel[32], video_key[24];
    video_rooms_channel_key(id, channel);
    snprintf(video_key, sizeof video_key, "%" PRId64, id);
    json_object_set_new(o, "chat", json_pack("{s:s, s:s}", "videoKey", video_key, "channelKey",
                                             channel));
    json_object_set_new(o, "stats", json_pack("{s:i}", "totalMemberWhitelistCount", 0));
    json_t *settings = json_object();
    json_object_set_new(settings, "recording", ju_col_bool(r, row, R_REC));
    json_object_set_new(settings, "autoStartRecording", ju_col_bool(r, row, R_ASR));
    json_object_set_new(settings, "autoStart", ju_col_bool(r, row, R_AS));
    json_object_set_new(settings, "autoEndAfterSec", ju_col_int(r, row, R_AEAS));
    json_object_set_new(settings, "maxDurationSec", ju_col_int(r, row, R_MDS));
    json_object_set_new(settings, "maxParticipants", ju_col_int(r, row, R_MP));
    json_object_set_new(settings, "dvrWindowSec", ju_col_int(r, row, R_DVR));
    json_object_set_new(o, "settings", settings);
    json_t *meta = ju_col_json(r, row, R_META);
    json_object_set_new(o, "metadata", json_is_object(meta) ? meta : json_object());
    if (!json_is_object(meta))
        json_decref(meta);
    json_object_set_new(o, "isRecording", ju_col_bool(r, row, R_ISREC));
    json_object_set_new(o, "createdAt", ju_col_string(r, row, R_CREATED));
    json_object_set_new(o, "lastModifiedAt", ju_col_string(r, row, R_MODIFIED));
    json_object_set_new(o, "createdBy", app_user(j));
    json_object_set_new(o, "lastModifiedBy", app_user(j));
    return o;
}

static void room_not_found(struct api_job *j)
{
    api_job_not_found(j, "VIDEO_ROOM_NOT_FOUND", "VideoRoom");
}

/* Room j->id of the caller's app (entity ACTIVE) into j->reply. */
static void reply_room(PGconn *c, struct api_job *j)
{
    api_job_reply_one(c, j, "room get",
                      ROOM_SELECT " WHERE r.app_id = $1 AND r.id = $2 AND r.state = 'ACTIVE'",
                      "VIDEO_ROOM_NOT_FOUND", "VideoRoom", render_room);
}

static char *metadata_text(const struct room_input *in)
{
    if (in->meta_st == JU_NULL)
        return strdup("{}");
    if (in->meta_st == JU_SET)
        return json_dumps(in->metadata, JSON_COMPACT);
    return NULL;
}

static const char *bool_param(const struct room_bool_setting *s)
{
    return s->st == JU_SET ? (s->v ? "true" : "false") : NULL;
}

static const char *int_param(const struct room_int_setting *s, char buf[24])
{
    if (s->st != JU_SET)
        return NULL;
    snprintf(buf, 24, "%" PRId64, s->v);
    return buf;
}

/* ------------------------------------------------------------------------
 * POST /v2/apps/me/video-rooms
 * ------------------------------------------------------------------------ */
static void create_work(PGconn *c, struct api_job *j)
{
    struct room_input *in = j->in;
    char app[24], b1[24], b2[24], b3[24], b4[24], sqlstate[6];
    snprintf(app, sizeof app, "%" PRId64, j->app.id);
    char *meta = metadata_text(in);
    const char *p[16] = {
        app,
        in->app_user_id,
        in->type,
        in->access_st == JU_SET ? in->access_level : NULL,
        in->ext_st == JU_SET ? in->external_id : NULL,
        in->title_st == JU_SET ? in->title : NULL,
        in->desc_st == JU_SET ? in->description : NULL,
        in->sched_st == JU_SET ? in->scheduled_at : NULL,
        bool_param(&in->recording),
        bool_param(&in->auto_start_recording),
        bool_param(&in->auto_start),
        int_param(&in->auto_end_after_sec, b1),
        int_param(&in->max_duration_sec, b2),
        int_param(&in->max_participants, b3),
        int_param(&in->dvr_window_sec, b4),
        meta,
    };
    PGresult *r = db_exec(c, "room create: begin", "BEGIN", 0, NULL, NULL);
    if (!r) {
        free(meta);
        return api_job_db_error(j);
    }
    PQclear(r);
    r = db_exec(c, "room create",
                "INSERT INTO video_rooms (app_id, member_id, type, access_level, external_id,"
                " title, description, scheduled_at, recording, auto_start_recording, auto_start,"
                " auto_end_after_sec, max_duration_sec, max_participants, dvr_window_sec, metadata)"
                " SELECT $1, m.id, $3, COALESCE($4, 'PUBLIC'), $5, $6, $7, $8::timestamptz,"
                " COALESCE($9::boolean, true), COALESCE($10::boolean, true),"
                " COALESCE($11::boolean, false), $12::int, $13::int, $14::int, $15::int,"
                " COALESCE($16::jsonb, '{}'::jsonb)"
                " FROM members m WHERE m.app_id = $1 AND m.app_user_id = $2 AND m.state = 'ACTIVE'"
                " RETURNING id",
                16, p, sqlstate);
    free(meta);
    if (!r) {
        PQclear(PQexec(c, "ROLLBACK"));
        if (strcmp(sqlstate, "23505") == 0)
            api_job_fail(j, 409, "VIDEO_ROOM_ALREADY_EXISTS",
                         "a video room with this externalId exists");
        else
            api_job_db_error(j);
        return;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
        return api_job_not_found(j, "MEMBER_NOT_FOUND", "Member");
    }
    j->id = db_get_i64(r, 0, 0);
    PQclear(r);
    json_t *d = json_pack("{s:b}", "created", 1);
    int rc = events_append(c, j->app.id, j->id, 0, "video_room_state", NULL, "SCHEDULED",
                           j->actor, d, NULL);
    json_decref(d);
    r = rc == 0 ? db_exec(c, "room create: commit", "COMMIT", 0, NULL, NULL) : NULL;
    if (!r) {
        PQclear(PQexec(c, "ROLLBACK"));
        return api_job_db_error(j);
    }
    PQclear(r);
    reply_room(c, j);
    j->status = 201;
}

void video_rooms_handle_create(void *request, const struct route_params *p)
{
    (void)p;
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    struct room_input *in = api_job_input(j, sizeof *in);
    if (in && api_job_read_body(j) == 0)
        video_rooms_parse_create(j->body, in, &j->err);
    j->work = create_work;
    api_job_submit(j);
}

/* ------------------------------------------------------------------------
 * GET /v2/apps/me/video-rooms
 * ------------------------------------------------------------------------ */
struct list_input {
    struct ju_page page;
    bool has_member;
    int64_t member_id;
    const char *keyword, *state, *type, *access, *app_user_id, *external_id;
};

static void list_filters(struct ju_query *q, const struct api_job *j, const void *arg)
{
    const struct list_input *in = arg;
    ju_query_add(q, " WHERE r.app_id = $?", ju_query_i64(q, j->app.id));
    ju_query_add(q, " AND r.state = 'ACTIVE'", NULL);
    if (in->has_member)
        ju_query_add(q, " AND r.member_id = $?", ju_query_i64(q, in->member_id));
    if (in->keyword)
        ju_query_add(q,
                     " AND r.title ILIKE '%' || replace(replace(replace($?, '\\', '\\\\'),"
                     " '%', '\\%'), '_', '\\_') || '%'",
                     in->keyword);
    if (in->state && strcmp(in->state, "ACTIVE") == 0)
        ju_query_add(q, " AND r.video_room_state IN ('LIVE', 'LIVE_INACTIVE')", NULL);
    else if (in->state)
        ju_query_add(q, " AND r.video_room_state = $?", in->state);
    if (in->type)
        ju_query_add(q, " AND r.type = $?", in->type);
    if (in->access)
        ju_query_add(q, " AND r.access_level = $?", in->access);
    if (in->app_user_id)
        ju_query_add(q, " AND m.app_user_id = $?", in->app_user_id);
    if (in->external_id)
        ju_query_add(q, " AND r.external_id = $?", in->external_id);
}

static void list_work(PGconn *c, struct api_job *j)
{
    struct list_input *in = j->in;
    api_job_page_list(c, j, "room",
                      "SELECT count(*) FROM video_rooms r JOIN members m ON m.id = r.member_id",
                      ROOM_SELECT, list_filters, in, "r", &in->page, render_room);
}

static int query_enum(struct api_job *j, const char *name, const char *const *allowed,
                      const char **out)
{
    if (api_job_query(j, name, out) != 0)
        return -1;
    if (*out && ju_enum_index(*out, allowed) < 0)
        return ju_fail(&j->err, 400, "INVALID_PARAMETER", name, "%s has an unknown value", name);
    return 0;
}

void video_rooms_handle_list(void *request, const struct route_params *p)
{
    (void)p;
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    struct list_input *in = api_job_input(j, sizeof *in);
    const char *member;
    if (in && api_job_page_query(j, false, &in->page) == 0 &&
        api_job_query(j, "memberId", &member) == 0 &&
        (!member ||
         ju_parse_query_int(member, "memberId", 1, INT64_MAX, &in->member_id, &j->err) == 0) &&
        api_job_query(j, "keyword", &in->keyword) == 0 &&
        query_enum(j, "videoRoomState", video_room_states, &in->state) == 0 &&
        query_enum(j, "type", video_room_types, &in->type) == 0 &&
        query_enum(j, "accessLevel", video_room_access, &in->access) == 0 &&
        api_job_query(j, "appUserId", &in->app_user_id) == 0) {
        api_job_query(j, "externalId", &in->external_id);
        in->has_member = member != NULL;
    }
    j->work = list_work;
    api_job_submit(j);
}

/* ------------------------------------------------------------------------
 * /v2/apps/me/video-rooms/{videoRoomId}
 * ------------------------------------------------------------------------ */
static struct api_job *by_id(void *request, const struct route_params *p, api_job_work_fn work)
{
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return NULL;
    api_job_path(j, p, "videoRoomId", true, "VIDEO_ROOM_NOT_FOUND", "VideoRoom");
    j->work = work;
    return j;
}

static void get_work(PGconn *c, struct api_job *j) { reply_room(c, j); }

void video_rooms_handle_get(void *request, const struct route_params *p)
{
    struct api_job *j = by_id(request, p, get_work);
    if (j)
        api_job_submit(j);
}

static void patch_work(PGconn *c, struct api_job *j)
{
    struct room_input *in = j->in;
    struct ju_query q;
    char *meta = metadata_text(in);
    ju_query_init(&q, "UPDATE video_rooms r SET last_modified_at = now()");
    if (in->title_st != JU_ABSENT)
        ju_query_add(&q, ", title = $?", in->title);
    if (in->desc_st != JU_ABSENT)
        ju_query_add(&q, ", description = $?", in->description);
    if (in->access_st == JU_SET)
        ju_query_add(&q, ", access_level = $?", in->access_level);
    if (in->ext_st != JU_ABSENT)
        ju_query_add(&q, ", external_id = $?", in->external_id);
    if (in->sched_st != JU_ABSENT)
        ju_query_add(&q, ", scheduled_at = $?::timestamptz",
                     in->sched_st == JU_SET ? in->scheduled_at : NULL);
    if (meta)
        ju_query_add(&q, ", metadata = $?::jsonb", meta);
    char b[7][24];
    const struct {
        const char *col;
        const struct room_bool_setting *s;
    } bools[] = {{"recording", &in->recording},
                 {"auto_start_recording", &in->auto_start_recording},
                 {"auto_start", &in->auto_start}};
    for (size_t i = 0; i < 3; i++) {
        if (bools[i].s->st != JU_SET)
            continue;
        char frag[64];
        snprintf(frag, sizeof frag, ", %s = $?::boolean", bools[i].col);
        ju_query_add(&q, frag, bool_param(bools[i].s));
    }
    const struct {
        const char *col;
        const struct room_int_setting *s;
    } ints[] = {{"auto_end_after_sec", &in->auto_end_after_sec},
                {"max_duration_sec", &in->max_duration_sec},
                {"max_participants", &in->max_participants},
                {"dvr_window_sec", &in->dvr_window_sec}};
    for (size_t i = 0; i < 4; i++) {
        if (ints[i].s->st == JU_ABSENT)
            continue;
        char frag[64];
        snprintf(frag, sizeof frag, ", %s = $?::int", ints[i].col);
        ju_query_add(&q, frag, int_param(ints[i].s, b[i]));
    }
    ju_query_add(&q, " WHERE r.app_id = $?", ju_query_i64(&q, j->app.id));
    ju_query_add(&q, " AND r.id = $?", ju_query_i64(&q, j->id));
    ju_query_add(&q, " AND r.state = 'ACTIVE' RETURNING r.id", NULL);
    char sqlstate[6] = "";
    PGresult *r = q.overflow ? NULL : db_exec(c, "room patch", q.sql, q.n, q.params, sqlstate);
    free(meta);
    if (!r) {
        if (strcmp(sqlstate, "23505") == 0)
            api_job_fail(j, 409, "VIDEO_ROOM_ALREADY_EXISTS",
                         "a video room with this externalId exists");
        else if (strcmp(sqlstate, "23514") == 0) {
            api_job_fail(j, 400, "INVALID_PARAMETER",
                         "scheduledAt cannot be null for a BROADCAST_RTMP room");
            snprintf(j->err.field, sizeof j->err.field, "scheduledAt");
        } else
            api_job_db_error(j);
        return;
    }
    int n = PQntuples(r);
    PQclear(r);
    if (n != 1)
        return room_not_found(j);
    reply_room(c, j);
}

void video_rooms_handle_patch(void *request, const struct route_params *p)
{
    struct api_job *j = by_id(request, p, patch_work);
    if (!j)
        return;
    struct room_input *in = api_job_input(j, sizeof *in);
    if (in && api_job_read_body(j) == 0)
        video_rooms_parse_patch(j->body, in, &j->err);
    api_job_submit(j);
}

static void state_error(struct api_job *j, enum bc_result rc)
{
    api_job_fail(j, bc_result_status(rc), bc_result_code(rc), "%s", bc_result_message(rc));
}

static void delete_work(PGconn *c, struct api_job *j)
{
    enum bc_result rc = bc_room_delete(c, j->app.id, j->id, j->actor);
    if (rc != BC_OK)
        return state_error(j, rc);
    j->status = 204;
}

void video_rooms_handle_delete(void *request, const struct route_params *p)
{
    struct api_job *j = by_id(request, p, delete_work);
    if (j)
        api_job_submit(j);
}

static void start_work(PGconn *c, struct api_job *j)
{
    enum bc_result rc = bc_room_start(c, j->app.id, j->id, j->actor);
    if (rc != BC_OK)
        return state_error(j, rc);
    reply_room(c, j);
}

static void end_work(PGconn *c, struct api_job *j)
{
    enum bc_result rc = bc_room_end(c, j->app.id, j->id, j->actor);
    if (rc != BC_OK)
        return state_error(j, rc);
    reply_room(c, j);
}

void video_rooms_handle_start(void *request, const struct route_params *p)
{
    struct api_job *j = by_id(request, p, start_work);
    if (j) {
        api_job_allow_bearer(j, j->id, VIEWER_ROLE_TEACHER);
        api_job_submit(j);
    }
}

void video_rooms_handle_end(void *request, const struct route_params *p)
{
    struct api_job *j = by_id(request, p, end_work);
    if (j) {
        api_job_allow_bearer(j, j->id, VIEWER_ROLE_TEACHER);
        api_job_submit(j);
    }
}
