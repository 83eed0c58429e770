/* hls_routes.h — the router's entry for /hls/{rooms|keys}/{id}/{file}
 * (SPEC PKG-4..PKG-6): access checks, then packager delivery. */
#ifndef API_HLS_ROUTES_H
#define API_HLS_ROUTES_H

#include "api/router.h"

struct hls_delivery;

/* Set once at start-up, before requests flow. */
void hls_routes_init(struct hls_delivery *d);
void hls_rooms_handle(void *request, const struct route_params *params);
void hls_keys_handle(void *request, const struct route_params *params);

#endif
