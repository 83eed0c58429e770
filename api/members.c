/* members.c — SPEC API-2 handlers (see members.h). Validation is pure; the
 * SQL runs in the job's work function on a db thread. */
#include "api/members.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "broadcast/state_machine.h"
#include "storage/db.h"
#include "storage/members.h"

/* ------------------------------------------------------------------------
 * Pure validation
 * ------------------------------------------------------------------------ */
static int parse_optional_fields(json_t *body, struct member_input *in, struct ju_error *e)
{
    if (ju_get_string(body, "appUserName", NULL, MEMBER_NAME_MAX, &in->name_st, &in->name, e) ||
        ju_get_string(body, "appUserProfileImgUrl", NULL, MEMBER_IMG_URL_MAX, &in->img_st,
                      &in->img_url, e))
        return -1;
    return 0;
}

int members_parse_create(json_t *body, struct member_input *in, struct ju_error *e)
{
    memset(in, 0, sizeof *in);
    enum ju_presence st;
    const char *id;
    json_t *v = json_object_get(body, "appUserId");
    if (v && !json_is_string(v) && !json_is_null(v))
        return ju_fail(e, 400, "INVALID_PARAMETER", "appUserId", "appUserId must be a string");
    if (ju_get_string(body, "appUserId", NULL, MEMBER_APP_USER_ID_MAX, &st, &id, e))
        return -1;
    if (st != JU_SET || ju_is_blank(id))
        return ju_fail(e, 400, "EMPTY_APP_USER_ID", "appUserId", "appUserId is required");
    if (strlen(id) > MEMBER_APP_USER_ID_MAX_BYTES)
        return ju_fail(e, 400, "INVALID_PARAMETER", "appUserId",
                       "appUserId must be at most %d bytes of UTF-8 (it is used in URL paths)",
                       MEMBER_APP_USER_ID_MAX_BYTES);
    if (strchr(id, ','))
        return ju_fail(e, 400, "INVALID_PARAMETER", "appUserId",
                       "appUserId must not contain ',' (it separates ids in DELETE)");
    in->app_user_id = id;
    return parse_optional_fields(body, in, e);
}

int members_parse_patch(json_t *body, struct member_input *in, struct ju_error *e)
{
    memset(in, 0, sizeof *in);
    return parse_optional_fields(body, in, e);
}

int members_split_ids(const char *list, char *buf, size_t buflen, const char **ids, size_t max,
                      struct ju_error *e)
{
    size_t n = 0, used = 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        size_t len = (size_t)(b - a);
        if (len > 0) {
            if (ju_utf8_len(a, len) > MEMBER_APP_USER_ID_MAX)
                return ju_fail(e, 400, "INVALID_PARAMETER", "appUserIds",
                               "each appUserId must be at most %d characters",
                               MEMBER_APP_USER_ID_MAX);
            if (used + len + 1 > buflen)
                return ju_fail(e, 400, "INVALID_PARAMETER", "appUserIds", "id list too long");
            char *dst = buf + used;
            memcpy(dst, a, len);
            dst[len] = 0;
            bool dup = false;
            for (size_t i = 0; i < n && !dup; i++)
                dup = strcmp(ids[i], dst) == 0;
            if (!dup) {
                if (n >= max)
                    return ju_fail(e, 400, "INVALID_PARAMETER", "appUserIds",
                                   "at most %zu appUserIds per request", max);
                ids[n++] = dst;
                used += len + 1;
            }
        }
        p = *end ? end + 1 : end;
    }
    if (n == 0)
        return ju_fail(e, 400, "EMPTY_APP_USER_ID", "appUserIds", "appUserIds is required");
    return (int)n;
}

/* ------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------ */
json_t *members_render_summary(const PGresult *r, int row, int col)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", ju_col_int(r, row, col));
    json_object_set_new(o, "state", ju_col_string(r, row, col + 1));
    json_object_set_new(o, "appUserId", ju_col_string(r, row, col + 2));
    json_object_set_new(o, "appUserName", ju_col_string(r, row, col + 3));
    json_object_set_new(o, "appUserProfileImgUrl", ju_col_string(r, row, col + 4));
    return o;
}

#define MEMBER_SELECT                                                                          \
    "SELECT " MEMBER_SUMMARY_COLS ", iso_utc(m.created_at), iso_utc(m.last_modified_at)"       \
    " FROM members m"

static json_t *render_member(const PGresult *r, int row)
{
    json_t *o = members_render_summary(r, row, 0);
    json_object_set_new(o, "createdAt", ju_col_string(r, row, MEMBER_SUMMARY_NCOLS));
    json_object_set_new(o, "lastModifiedAt", ju_col_string(r, row, MEMBER_SUMMARY_NCOLS + 1));
    return o;
}

static void not_found(struct api_job *j) { api_job_not_found(j, "MEMBER_NOT_FOUND", "Member"); }

/* One member by appUserId (ACTIVE only) into j->reply, or MEMBER_NOT_FOUND. */
static void reply_member(PGconn *c, struct api_job *j, const char *app_user_id)
{
    char app[24];
    snprintf(app, sizeof app, "%" PRId64, j->app.id);
    const char *p[2] = {app, app_user_id};
    PGresult *r = db_exec(c, "member get",
                          MEMBER_SELECT " WHERE m.app_id = $1 AND m.app_user_id = $2"
                                        " AND m.state = 'ACTIVE'",
                          2, p, NULL);
    if (!r)
        return api_job_db_error(j);
    if (PQntuples(r) != 1)
        not_found(j);
    else
        j->reply = render_member(r, 0);
    PQclear(r);
}

/* ------------------------------------------------------------------------
 * POST /v2/apps/me/members
 * ------------------------------------------------------------------------ */
static void create_work(PGconn *c, struct api_job *j)
{
    struct member_input *in = j->in;
    int64_t member_id, key_id;
    int rc = members_create(c, j->app.id, in->app_user_id,
                            in->name_st == JU_SET ? in->name : NULL,
                            in->img_st == JU_SET ? in->img_url : NULL, &member_id, &key_id);
    if (rc == 1) {
        api_job_fail(j, 409, "MEMBER_ALREADY_EXISTS", "a member with this appUserId exists");
        return;
    }
    if (rc != 0)
        return api_job_db_error(j);
    reply_member(c, j, in->app_user_id);
    j->status = 201;
}

void members_handle_create(void *request, const struct route_params *p)
{
    (void)p;
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    struct member_input *in = calloc(1, sizeof *in);
    j->in = in;
    j->in_free = free;
    if (!in)
        api_job_fail(j, 503, "UNAVAILABLE", "out of memory");
    else if (api_job_read_body(j) == 0)
        members_parse_create(j->body, in, &j->err);
    j->work = create_work;
    api_job_submit(j);
}

/* ------------------------------------------------------------------------
 * GET /v2/apps/me/members
 * ------------------------------------------------------------------------ */
struct list_input {
    struct ju_page page;
    const char *app_user_id, *app_user_name;
};

static void list_filters(struct ju_query *q, const struct api_job *j, const void *arg)
{
    const struct list_input *in = arg;
    ju_query_add(q, " WHERE m.app_id = $?", ju_query_i64(q, j->app.id));
    ju_query_add(q, " AND m.state = 'ACTIVE'", NULL);
    if (in->app_user_id)
        ju_query_add(q, " AND m.app_user_id = $?", in->app_user_id);
    if (in->app_user_name)
        ju_query_add(q, " AND m.app_user_name = $?", in->app_user_name);
}

static json_t *render_list_row(const struct api_job *j, const PGresult *r, int row)
{
    (void)j;
    return render_member(r, row);
}

static void list_work(PGconn *c, struct api_job *j)
{
    struct list_input *in = j->in;
    api_job_page_list(c, j, "member", "SELECT count(*) FROM members m", MEMBER_SELECT,
                      list_filters, in, "m", &in->page, render_list_row);
}

void members_handle_list(void *request, const struct route_params *p)
{
    (void)p;
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    struct list_input *in = calloc(1, sizeof *in);
    j->in = in;
    j->in_free = free;
    const char *page, *size, *sort;
    if (!in)
        api_job_fail(j, 503, "UNAVAILABLE", "out of memory");
    else if (api_job_query(j, "page", &page) == 0 && api_job_query(j, "pageSize", &size) == 0 &&
             api_job_query(j, "sortBy", &sort) == 0 &&
             ju_parse_page(page, size, sort, true, &in->page, &j->err) == 0 &&
             api_job_query(j, "appUserId", &in->app_user_id) == 0)
        api_job_query(j, "appUserName", &in->app_user_name);
    j->work = list_work;
    api_job_submit(j);
}

/* ------------------------------------------------------------------------
 * GET / PATCH / DELETE /v2/apps/me/members/{appUserId}
 * ------------------------------------------------------------------------ */
static void get_work(PGconn *c, struct api_job *j) { reply_member(c, j, j->param); }

void members_handle_get(void *request, const struct route_params *p)
{
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    api_job_path(j, p, "appUserId", false, "MEMBER_NOT_FOUND", "Member");
    j->work = get_work;
    api_job_submit(j);
}

static void patch_work(PGconn *c, struct api_job *j)
{
    struct member_input *in = j->in;
    if (in->name_st != JU_ABSENT || in->img_st != JU_ABSENT) {
        char app[24];
        snprintf(app, sizeof app, "%" PRId64, j->app.id);
        const char *p[6] = {
            app,
            j->param,
            in->name_st != JU_ABSENT ? "t" : "f",
            in->name,
            in->img_st != JU_ABSENT ? "t" : "f",
            in->img_url,
        };
        PGresult *r = db_exec(c, "member patch",
                              "UPDATE members SET"
                              " app_user_name = CASE WHEN $3::boolean THEN $4 ELSE app_user_name END,"
                              " app_user_profile_img_url = CASE WHEN $5::boolean THEN $6"
                              "   ELSE app_user_profile_img_url END,"
                              " last_modified_at = now()"
                              " WHERE app_id = $1 AND app_user_id = $2 AND state = 'ACTIVE'",
                              6, p, NULL);
        if (!r)
            return api_job_db_error(j);
        PQclear(r);
    }
    reply_member(c, j, j->param);
}

void members_handle_patch(void *request, const struct route_params *p)
{
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    struct member_input *in = calloc(1, sizeof *in);
    j->in = in;
    j->in_free = free;
    if (!in)
        api_job_fail(j, 503, "UNAVAILABLE", "out of memory");
    else if (api_job_path(j, p, "appUserId", false, "MEMBER_NOT_FOUND", "Member") == 0 &&
             api_job_read_body(j) == 0)
        members_parse_patch(j->body, in, &j->err);
    j->work = patch_work;
    api_job_submit(j);
}

struct delete_input {
    char buf[ROUTER_PARAM_MAX + 8];
    const char *ids[MEMBER_DELETE_MAX];
    int n;
};

static void delete_work(PGconn *c, struct api_job *j)
{
    struct delete_input *in = j->in;
    size_t missing = 0;
    enum bc_result rc = bc_members_delete(c, j->app.id, in->ids, (size_t)in->n, j->actor, &missing);
    if (rc == BC_MEMBER_NOT_FOUND) {
        api_job_fail(j, 404, "MEMBER_NOT_FOUND", "Member %.200s does not exist",
                     in->ids[missing]);
        return;
    }
    if (rc != BC_OK)
        return api_job_db_error(j);
    j->status = 204;
}

void members_handle_delete(void *request, const struct route_params *p)
{
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    struct delete_input *in = calloc(1, sizeof *in);
    j->in = in;
    j->in_free = free;
    if (!in) {
        api_job_fail(j, 503, "UNAVAILABLE", "out of memory");
    } else if (api_job_path(j, p, "appUserIds", false, "MEMBER_NOT_FOUND", "Member") == 0) {
        in->n = members_split_ids(j->param, in->buf, sizeof in->buf, in->ids, MEMBER_DELETE_MAX,
                                  &j->err);
    }
    j->work = delete_work;
    api_job_submit(j);
}
