/* events.c — events rows and NOTIFY payloads (see events.h). */
#include "broadcast/events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/db.h"

static const char *id_or_null(int64_t id, char buf[24])
{
    if (id <= 0)
        return NULL;
    snprintf(buf, 24, "%" PRId64, id);
    return buf;
}

int events_append(PGconn *c, int64_t app_id, int64_t room_id, int64_t key_id, const char *type,
                  const char *from, const char *to, const char *actor, const json_t *data,
                  char sqlstate[6])
{
    char app[24], room[24], key[24];
    char *data_text = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    const char *params[8] = {
        id_or_null(app_id, app), id_or_null(room_id, room), id_or_null(key_id, key), type, from,
        to, actor, data_text ? data_text : "{}",
    };
    PGresult *r = db_exec(c, "events append",
                          "WITH e AS (INSERT INTO events (app_id, video_room_id, stream_key_id, type,"
                          " from_state, to_state, actor, data)"
                          " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) RETURNING id, app_id)"
                          " INSERT INTO webhook_deliveries (app_id, event_id)"
                          " SELECT e.app_id, e.id FROM e JOIN apps a ON a.id = e.app_id"
                          " WHERE a.webhook_url IS NOT NULL",
                          8, params, sqlstate);
    free(data_text);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int events_notify(PGconn *c, const char *type, int64_t room_id, int64_t key_id, const char *node,
                  char sqlstate[6])
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "roomId", room_id > 0 ? json_integer(room_id) : json_null());
    json_object_set_new(o, "keyId", key_id > 0 ? json_integer(key_id) : json_null());
    json_object_set_new(o, "node", node ? json_string(node) : json_null());
    char *payload = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!payload)
        return -1;
    const char *params[2] = {EVENTS_CHANNEL, payload};
    PGresult *r = db_exec(c, "events notify", "SELECT pg_notify($1, $2)", 2, params, sqlstate);
    free(payload);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}
