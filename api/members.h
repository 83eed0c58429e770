/* members.h — SPEC API-2: /v2/apps/me/members.
 *
 *   POST   /v2/apps/me/members               201 member (+ its INACTIVE stream key)
 *   GET    /v2/apps/me/members               paged; appUserId, appUserName, sortBy
 *   GET    /v2/apps/me/members/{appUserId}   MEMBER_NOT_FOUND
 *   PATCH  /v2/apps/me/members/{appUserId}   appUserName, appUserProfileImgUrl
 *   DELETE /v2/apps/me/members/{appUserIds}  comma list, 204; keys DELETED too
 *
 * Member JSON: {id, state, appUserId, appUserName, appUserProfileImgUrl,
 * createdAt, lastModifiedAt}. */
#ifndef API_MEMBERS_H
#define API_MEMBERS_H

#include <jansson.h>
#include <libpq-fe.h>

#include "api/json_util.h"
#include "api/router.h"

#define MEMBER_APP_USER_ID_MAX 200
#define MEMBER_APP_USER_ID_MAX_BYTES 255 /* a path segment the router can capture */
#define MEMBER_NAME_MAX 500
#define MEMBER_IMG_URL_MAX 2000
#define MEMBER_DELETE_MAX 100

/* The validated body of POST / PATCH; strings point into the JSON body. */
struct member_input {
    const char *app_user_id;
    enum ju_presence name_st, img_st;
    const char *name, *img_url;
};
/* Pure (no db): POST body → input. EMPTY_APP_USER_ID when appUserId is
 * missing, null or blank; wrong types / lengths → INVALID_PARAMETER. */
int members_parse_create(json_t *body, struct member_input *in, struct ju_error *e);
/* Pure: PATCH body → input (appUserId in the body is ignored). */
int members_parse_patch(json_t *body, struct member_input *in, struct ju_error *e);
/* Pure: "a,b, c" → up to MEMBER_DELETE_MAX distinct trimmed ids, written
 * into buf (NUL-separated) with pointers in ids. Returns the count, or -1
 * (EMPTY_APP_USER_ID when none, INVALID_PARAMETER when too many / too long). */
int members_split_ids(const char *list, char *buf, size_t buflen, const char **ids, size_t max,
                      struct ju_error *e);

/* Columns of a member summary (alias m), in this order; then render with
 * members_render_summary(r, row, first_col). */
#define MEMBER_SUMMARY_COLS                                                                    \
    "m.id, m.state, m.app_user_id, m.app_user_name, m.app_user_profile_img_url"
#define MEMBER_SUMMARY_NCOLS 5
/* {id, state, appUserId, appUserName, appUserProfileImgUrl}. New reference. */
json_t *members_render_summary(const PGresult *r, int row, int col);

void members_handle_create(void *request, const struct route_params *p);
void members_handle_list(void *request, const struct route_params *p);
void members_handle_get(void *request, const struct route_params *p);
void members_handle_patch(void *request, const struct route_params *p);
void members_handle_delete(void *request, const struct route_params *p);

#endif
