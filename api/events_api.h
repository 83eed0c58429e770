/* events_api.h — the events of a room (SPEC API-10) as a JSON list or a live
 * text/event-stream, and the app's webhook settings.
 *
 *   GET /v2/apps/me/video-rooms/{id}/events   Basic auth (or a MODERATOR+ token
 *       as Bearer). Query: afterId (only events with a larger id), type
 *       (one event type), page, pageSize (≤100), sortBy CREATED_AT_ASC
 *       (default, oldest first) | CREATED_AT_DESC. Reply: the seed's page
 *       shape whose content is [{id, type, roomId, streamKeyId, fromState,
 *       toState, actor, data, createdAt}]. To follow a room by polling, pass
 *       the largest id seen as afterId.
 *   GET /v2/rooms/{id}/events   the viewer's feed: open for PUBLIC rooms,
 *       otherwise ?token= (or Bearer) for that room; same query; events
 *       without `actor`, participant data without uid/sessionId/name.
 *
 *   With `Accept: text/event-stream` (or ?stream=1) either endpoint streams:
 *       "id: N\nevent: TYPE\ndata: JSON\n\n" per event, a ": ping" comment
 *       every 15 s, `retry: 3000`. It starts after Last-Event-ID / afterId when
 *       given (at most 1000 older events), else with new events only. A
 *       token-authorized stream ends with `event: kicked` when the token is
 *       revoked and `event: expired` when it expires. At most
 *       EVENTS_MAX_STREAMS streams per node (then 503). New rows are found
 *       by one shared poll of the events table every 500 ms on a db job.
 *
 *   GET   /v2/apps/me  → {id, state, name, orgId, webhookUrl, createdAt, lastModifiedAt}
 *   PATCH /v2/apps/me  {webhookUrl (http://… or null), webhookSecret?} → the
 *       same, plus `webhookSecret` once when one was generated (a URL set
 *       without a secret on an app that has none gets a random one). */
#ifndef API_EVENTS_API_H
#define API_EVENTS_API_H

#include <stddef.h>

struct api_ctx;
struct router;

#define EVENTS_MAX_STREAMS 1000
#define EVENTS_POLL_MS 500
#define EVENTS_HEARTBEAT_MS 15000

int events_api_start(struct api_ctx *ctx, char *err, size_t errlen);
/* Frees the poll timer (any thread; waits for a running tick). */
void events_api_stop_timer(void);
/* After the HTTP server is freed (its connections' close callbacks release
 * the streams) and the db pool is drained. */
void events_api_stop(void);
void events_api_register_routes(struct router *r);
/* Open event streams on this node. */
int events_api_stream_count(void);

#endif
