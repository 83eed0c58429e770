/* room_status.h — SPEC API-6: live status of a room.
 *
 *   GET /v2/apps/me/video-rooms/{videoRoomId}/status   Basic auth
 *   GET /v1/room/{roomId}/status                       roomId = externalId or id;
 *                                                      Basic auth or VF-ORG-ID
 *   GET /v1/room/{*rest}                               anything else under /v1/room/
 *                                                      (e.g. "//status": 400 Missing roomId)
 *
 * 200 {success, message, data: {exists, isActive, roomId, title,
 * participantCount, hasTeacher, isRecording, createdAt, startedAt}}; an
 * unknown room is 200 with exists:false and message "Room not found".
 * participantCount and hasTeacher come from the gateway (this node's live
 * figures) on the http loop. */
#ifndef API_ROOM_STATUS_H
#define API_ROOM_STATUS_H

#include "api/router.h"

void room_status_handle_v2(void *request, const struct route_params *p);
void room_status_handle_v1(void *request, const struct route_params *p);
void room_status_handle_v1_other(void *request, const struct route_params *p);

#endif
