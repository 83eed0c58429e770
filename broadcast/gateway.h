/* gateway.h — the live side of a node: RTMP sessions, their packagers and
 * recorders, tied to the state machine in PostgreSQL.
 *
 * Flow of one publish (SPEC §2.1, §3, §4):
 *   RTMP publish → db job bc_ingest_publish (key check, claim, ACTIVE_PREP or
 *   ACTIVE_LIVE_PREP) → accept/deny → frames → CMAF segmenter → media indexes
 *   (preview "keys/{id}", and "rooms/{id}" while the key is live in a room) →
 *   first segment → db job bc_ingest_first_segment (ACTIVE / ACTIVE_LIVE) →
 *   publisher leaves → db job bc_ingest_closed.
 *
 * State changes made elsewhere (API on any node, timers) arrive through
 * PostgreSQL NOTIFY on channel "castgate" (OPS-7), payload JSON
 * {"type": "...", "roomId": N, "keyId": N}: room_started, room_ended,
 * key_force_terminated, recording_start, recording_stop, room_deleted.
 *
 * Threads: sessions and their packagers live on media loops; the gateway's
 * shared maps are guarded by one mutex with tiny critical sections; db work
 * goes to the pool and comes back to the stream's loop. The public query
 * functions below are thread-safe and never block. */
#ifndef BROADCAST_GATEWAY_H
#define BROADCAST_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gateway;
struct config;
struct db_pool;
struct loop;
struct media_registry;
struct finalizer;

struct gateway_deps {
    const struct config *cfg;
    struct db_pool *db;
    const char *conninfo;          /* for the LISTEN connection */
    struct loop *accept_loop;      /* RTMP listener */
    struct loop **media_loops;
    int nmedia_loops;
    struct media_registry *registry;
    struct finalizer *finalizer;   /* recordings: fragmented → faststart (REC-3) */
};

/* Recovers what this node owned (OPS-6), starts the RTMP listener and the
 * NOTIFY listener. NULL with err. */
struct gateway *gateway_start(const struct gateway_deps *deps, char *err, size_t errlen);
/* Bound RTMP address "ip:port". */
const char *gateway_rtmp_address(const struct gateway *gw);
/* Closes every session (publishers see a clean close; keys go INACTIVE /
 * INACTIVE_LIVE through the db pool, which must still run), stops listeners.
 * Media loops must still run while this is called. */
void gateway_stop(struct gateway *gw);
void gateway_free(struct gateway *gw);

/* A publisher is connected on this node for the stream key. */
bool gateway_key_has_publisher(struct gateway *gw, int64_t key_id);
/* Number of accepted publishers on this node. */
int gateway_live_streams(struct gateway *gw);

#endif
