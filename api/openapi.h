/* openapi.h — GET /v2/openapi.yaml: the OpenAPI 3 description of every
 * route (api/openapi.yaml, compiled into the binary with the web assets). */
#ifndef API_OPENAPI_H
#define API_OPENAPI_H

#include "api/router.h"

void openapi_handle(void *request, const struct route_params *p);

#endif
