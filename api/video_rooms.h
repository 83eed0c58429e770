/* video_rooms.h — SPEC API-4 and API-5: /v2/apps/me/video-rooms.
 *
 *   POST   /v2/apps/me/video-rooms                    201 room
 *   GET    /v2/apps/me/video-rooms                    paged; memberId, keyword (title),
 *                                                     videoRoomState, type, accessLevel
 *   GET    /v2/apps/me/video-rooms/{videoRoomId}      VIDEO_ROOM_NOT_FOUND
 *   PATCH  /v2/apps/me/video-rooms/{videoRoomId}      fields given; settings merged;
 *                                                     metadata replaced
 *   DELETE /v2/apps/me/video-rooms/{videoRoomId}      204; VIDEO_ROOM_IS_LIVE
 *   POST   …/{videoRoomId}/rtmp-broadcast/state/live  SCHEDULED → LIVE (SPEC §2.2)
 *   POST   …/{videoRoomId}/rtmp-broadcast/state/ended LIVE_INACTIVE → ENDED
 *
 * Room JSON: the seed's VideoRoom (id, state, videoRoomState, type, format,
 * app, member, creatorType, creatorId, accessLevel, title, description,
 * scheduledAt, streamKey, liveUrl, chat, stats, createdAt, lastModifiedAt,
 * createdBy, lastModifiedBy) plus externalId, startedAt, endedAt, settings,
 * metadata. */
#ifndef API_VIDEO_ROOMS_H
#define API_VIDEO_ROOMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/json_util.h"
#include "api/router.h"

#define ROOM_TITLE_MAX 500
#define ROOM_DESCRIPTION_MAX 10000
#define ROOM_EXTERNAL_ID_MAX 200
#define ROOM_SETTING_MAX 2147483647

extern const char *const video_room_types[];   /* BROADCAST_RTMP, … (NULL-terminated) */
extern const char *const video_room_access[];  /* PUBLIC, APP, … */
extern const char *const video_room_states[];  /* SCHEDULED, LIVE, … */

struct room_bool_setting {
    enum ju_presence st;
    bool v;
};
struct room_int_setting {
    enum ju_presence st;
    int64_t v;
};

/* The validated body of POST / PATCH; strings and metadata point into the
 * JSON body (which must outlive this). */
struct room_input {
    const char *app_user_id; /* create only */
    const char *type;        /* create only */
    enum ju_presence title_st, desc_st, access_st, sched_st, ext_st, meta_st;
    const char *title, *description, *access_level, *external_id;
    char scheduled_at[JU_TIME_LEN]; /* canonical UTC text when sched_st == JU_SET */
    json_t *metadata;
    struct room_bool_setting recording, auto_start_recording, auto_start;
    struct room_int_setting auto_end_after_sec, max_duration_sec, max_participants,
        dvr_window_sec;
};

/* Pure: POST body → input. Checks, in the seed's order:
 * EMPTY_VIDEO_ROOM_APP_USER_ID, EMPTY_VIDEO_ROOM_TYPE,
 * EMPTY_VIDEO_ROOM_SCHEDULED_AT (BROADCAST_RTMP); then INVALID_PARAMETER for
 * wrong types, unknown enum values, bad times, lengths, settings ranges and
 * metadata deeper than one level. */
int video_rooms_parse_create(json_t *body, struct room_input *in, struct ju_error *e);
/* Pure: PATCH body → input (type / appUserId are not changeable and are
 * ignored). null clears title, description, externalId and the integer
 * settings; null metadata becomes {}. */
int video_rooms_parse_patch(json_t *body, struct room_input *in, struct ju_error *e);

/* chat.channelKey: a stable opaque string per room. out holds 32 bytes. */
void video_rooms_channel_key(int64_t room_id, char out[32]);

void video_rooms_handle_create(void *request, const struct route_params *p);
void video_rooms_handle_list(void *request, const struct route_params *p);
void video_rooms_handle_get(void *request, const struct route_params *p);
void video_rooms_handle_patch(void *request, const struct route_params *p);
void video_rooms_handle_delete(void *request, const struct route_params *p);
void video_rooms_handle_start(void *request, const struct route_params *p);
void video_rooms_handle_end(void *request, const struct route_params *p);

#endif
