/* gateway.c — live state of this node (stub until ingest + packager land). */
#include "broadcast/gateway.h"

int gateway_room_viewer_count(struct gateway *gw, int64_t room_id)
{
    (void)gw;
    (void)room_id;
    return 0;
}

bool gateway_key_has_publisher(struct gateway *gw, int64_t key_id)
{
    (void)gw;
    (void)key_id;
    return false;
}
