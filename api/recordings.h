/* recordings.h — recordings API and signed downloads (SPEC API-7, REC-2, REC-5).
 *
 *   GET  /v2/apps/me/video-rooms/{id}/recordings
 *        → {success, data: {roomId, files: [{id, filename, downloadUrl, size,
 *           durationMs, status, startedAt, endedAt}], expiresAt, expiresIn}}
 *        expiresAt / expiresIn ("4h 23m") are null until the room has ended;
 *        downloadUrl is null unless the file is READY.
 *   POST /v2/apps/me/video-rooms/{id}/recording/start | …/recording/stop
 *        → {success, data: {isRecording}}; sets the room's recording intent and
 *        tells the node holding the stream (NOTIFY castgate recording_start|stop).
 *        400 VIDEO_ROOM_STATE_NOT_LIVE (room not LIVE / LIVE_INACTIVE),
 *        400 RECORDING_DISABLED (start with the room's `recording` setting off),
 *        404 VIDEO_ROOM_NOT_FOUND.
 *   GET|HEAD /downloads/recordings/{id}/{filename}?expires=UNIX&sig=HEX
 *        sig = hex HMAC-SHA256(secret, "/downloads/recordings/{id}/{filename}\n{expires}"),
 *        compared in constant time. 403 INVALID_SIGNATURE, 410 DOWNLOAD_URL_EXPIRED,
 *        410 RECORDING_EXPIRED (swept), 409 RECORDING_NOT_READY, 404 RECORDING_NOT_FOUND.
 *        Single byte Range (206 / 416), Content-Disposition: attachment,
 *        Content-Type: video/mp4. The file is found from the row (data_dir +
 *        row path), never from the request path, and sent with
 *        evbuffer_add_file (sendfile).
 *
 * The secret is token_secret, or one stored in the database and shared by all
 * nodes (storage/recordings.h). A download URL expires with the recording
 * (room endedAt + TTL), or recording_ttl_sec from now while the room is live.
 *
 * Auth for the /v2 routes: HTTP Basic appApiKey:appApiSecret through the
 * admin API's job (api/auth.h); another app's room is 404. Downloads carry
 * no credentials: the signature is the authorization. */
#ifndef API_RECORDINGS_H
#define API_RECORDINGS_H

#include <stddef.h>
#include <stdint.h>

#include "api/router.h"

/* Adds the routes above (HEAD goes to the GET route). 0 or -1. */
int recordings_api_routes(struct router *r);

void recordings_api_list(void *request, const struct route_params *params);
void recordings_api_start(void *request, const struct route_params *params);
void recordings_api_stop(void *request, const struct route_params *params);
void recordings_api_download(void *request, const struct route_params *params);

/* "/downloads/recordings/{id}/{filename}?expires=E&sig=HEX" (path + query,
 * no host). 0 or -1 (out too small). */
int recordings_sign_path(const char *secret, int64_t id, const char *filename, int64_t expires,
                         char *out, size_t outlen);

/* Parses one "bytes=" range against a size (RFC 9110 §14.1.2): 1 and
 * [*first, *last] for a satisfiable single range, 0 to ignore the header
 * (absent, malformed, several ranges: send the whole file), -1 for 416. */
int recordings_parse_range(const char *header, int64_t size, int64_t *first, int64_t *last);

#endif
