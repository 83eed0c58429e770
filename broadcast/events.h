/* events.h — the append-only event log and cross-node notifications
 * (SPEC §2.2 "each transition is appended to an events table", API-10, OPS-7).
 *
 * Both run on a db thread inside the caller's transaction, so an event row,
 * its webhook delivery row and the NOTIFY become visible exactly when the
 * state change they describe commits (and vanish with it on rollback). */
#ifndef BROADCAST_EVENTS_H
#define BROADCAST_EVENTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

/* Appends one `events` row. room_id / key_id 0 = NULL; from / to may be NULL;
 * data may be NULL ({}), borrowed. When the app has a webhook_url a
 * webhook_deliveries row is queued in the same statement. actor says who
 * caused it: "api:app:3", "ingest:node-a", "timer", "recover:node-a".
 * 0, or -1 (the statement failed; *sqlstate says why when non-NULL). */
int events_append(PGconn *c, int64_t app_id, int64_t room_id, int64_t key_id, const char *type,
                  const char *from, const char *to, const char *actor, const json_t *data,
                  char sqlstate[6]);

/* SELECT pg_notify('castgate', {"type", "roomId", "keyId", "node"}) — the
 * payload broadcast/gateway.h documents. 0 = NULL id; node may be NULL.
 * 0 or -1. */
int events_notify(PGconn *c, const char *type, int64_t room_id, int64_t key_id, const char *node,
                  char sqlstate[6]);

#define EVENTS_CHANNEL "castgate"

#endif
