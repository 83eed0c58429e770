/* health.h — GET /healthz (SPEC OPS-4): PostgreSQL reachable, data_dir writable. */
#ifndef API_HEALTH_H
#define API_HEALTH_H

#include "api/router.h"

void health_handle(void *request, const struct route_params *params);

#endif
