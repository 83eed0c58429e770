/* gateway.h — the live side of a node, as the API sees it.
 *
 * The gateway glues ingest (RTMP sessions), the packager (media indexes) and
 * the state machine together. The API reads live figures from it and tells
 * it about state changes made through the API. State changes also reach
 * every node through PostgreSQL NOTIFY on channel "castgate" (OPS-7):
 * payload JSON {"type": "...", "roomId": N, "keyId": N, "node": "..."} with
 * types room_started, room_ended, key_force_terminated, recording_start,
 * recording_stop, room_deleted. The API sends them with
 * `SELECT pg_notify('castgate', $1)` inside the transition's transaction.
 *
 * All functions are thread-safe and non-blocking (they read in-memory state). */
#ifndef BROADCAST_GATEWAY_H
#define BROADCAST_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

struct gateway;

/* Distinct viewer sessions of the room in the last 30 s (SPEC PKG-8), on this node. */
int gateway_room_viewer_count(struct gateway *gw, int64_t room_id);
/* A publisher is connected on this node for the stream key. */
bool gateway_key_has_publisher(struct gateway *gw, int64_t key_id);

#endif
