/* metrics.h — GET /metrics: Prometheus text (SPEC OPS-4). */
#ifndef API_METRICS_H
#define API_METRICS_H

#include "api/router.h"

void metrics_handle(void *request, const struct route_params *params);

#endif
