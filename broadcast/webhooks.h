/* webhooks.h — delivery of events to the app's webhook URL (SPEC API-10).
 *
 * One worker thread per node with its own PostgreSQL connection (never the
 * db pool, never a loop: a slow receiver cannot delay the media path or the
 * API). Every second it
 *   1. enqueues: one webhook_deliveries row per new event of an app that has
 *      a webhook_url (events at or after apps.webhook_since), deduplicated by
 *      the unique index on event_id, so several nodes may do it at once;
 *   2. claims due rows (FOR UPDATE SKIP LOCKED, lease = next_try_at + 60 s);
 *   3. POSTs each event's JSON and records the outcome: delivered_at, or
 *      last_error and the next try after an exponential backoff
 *      (1 s, 2 s, 4 s … capped at 1 h; given up after WEBHOOKS_MAX_ATTEMPTS).
 *
 * Request: POST <webhook_url>, Content-Type: application/json, body = the
 * event object of API-10 {id, type, roomId, streamKeyId, fromState, toState,
 * actor, data, createdAt}; headers X-Castgate-Event (type),
 * X-Castgate-Delivery (delivery id) and
 *   X-Castgate-Signature: sha256=HEX(HMAC-SHA256(webhook_secret, body)).
 * Any 2xx is success. Plain http:// only: for an https receiver put a
 * forwarding proxy (nginx, stunnel) in between. */
#ifndef BROADCAST_WEBHOOKS_H
#define BROADCAST_WEBHOOKS_H

#include <stddef.h>

struct config;

#define WEBHOOKS_MAX_ATTEMPTS 15
#define WEBHOOKS_BACKOFF_CAP_SEC 3600

/* SQL expression: the API-10 event object of events row alias `e`, as json. */
#define WEBHOOKS_EVENT_JSON_SQL(e)                                                                 \
    "json_build_object('id', " e ".id, 'type', " e ".type, 'roomId', " e ".video_room_id,"         \
    " 'streamKeyId', " e ".stream_key_id, 'fromState', " e ".from_state, 'toState', " e            \
    ".to_state, 'actor', " e ".actor, 'data', " e ".data, 'createdAt', to_char(" e                 \
    ".created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"

/* Starts the worker (it connects with conninfo and keeps retrying if the
 * database is away). 0 or -1 with err. */
int webhooks_start(const struct config *cfg, const char *conninfo, char *err, size_t errlen);
/* Stops and joins the worker (an in-flight POST is abandoned within ~0.2 s;
 * its row is retried after its lease). Safe when not started. */
void webhooks_stop(void);
/* Wakes the worker now (e.g. after an event was written on this node). */
void webhooks_kick(void);

/* ---- pure helpers ----------------------------------------------------- */

struct webhook_url {
    char host[256];
    int port;
    char path[1024]; /* "/..." with the query, never empty */
};

/* Parses "http://host[:port][/path][?query]" (IPv6 literal in brackets).
 * 0; -1 malformed; -2 a scheme other than http (e.g. https). */
int webhooks_parse_url(const char *url, struct webhook_url *out);
/* "sha256=" + 64 lowercase hex of HMAC-SHA256(secret, body): out[72]. */
void webhooks_signature(const char *secret, const void *body, size_t len, char out[72]);
/* Seconds before the try after `attempts` failed tries (1, 2, 4 … cap). */
int webhooks_backoff_sec(int attempts);

#endif
