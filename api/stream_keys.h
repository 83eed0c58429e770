/* stream_keys.h — SPEC API-3: a member's stream key.
 *
 *   GET  /v2/apps/me/members/{appUserId}/stream-key
 *   GET  /v2/apps/me/stream-keys                    paged; memberId, appUserId,
 *                                                   appUserName, videoRoomId
 *   GET  /v2/apps/me/stream-keys/{streamKeyId}
 *   POST /v2/apps/me/stream-keys/{streamKeyId}/reissue          only INACTIVE
 *   POST /v2/apps/me/stream-keys/{streamKeyId}/force-terminate  204
 *
 * Stream key JSON: {id, state, streamKeyState, app{id,state,name},
 * member{…}, videoRoom{id,state,videoRoomState}|null, streamKey, ingestUrl,
 * liveUrl|null, profile{…}, error, createdAt, lastModifiedAt}. liveUrl is the
 * preview (/hls/keys/{id}/index.m3u8) while ACTIVE_PREP / ACTIVE and the
 * room's playlist while the key is live in a room (SPEC PKG-4). */
#ifndef API_STREAM_KEYS_H
#define API_STREAM_KEYS_H

#include <jansson.h>

#include "api/http_server.h"
#include "api/router.h"

/* The base URL for liveUrl: the configured public_url when set, else the
 * base of the node holding the stream (nodes.http_url, OPS-7), else this
 * node's resolved public URL. node_url may be NULL. Writes into out. */
void stream_keys_live_base(const struct api_ctx *ctx, const char *node_url, char *out,
                           size_t outlen);
/* The `profile` object: packaging settings from the config. */
json_t *stream_keys_profile(const struct api_ctx *ctx);

void stream_keys_handle_member_key(void *request, const struct route_params *p);
void stream_keys_handle_list(void *request, const struct route_params *p);
void stream_keys_handle_get(void *request, const struct route_params *p);
void stream_keys_handle_reissue(void *request, const struct route_params *p);
void stream_keys_handle_force_terminate(void *request, const struct route_params *p);

#endif
