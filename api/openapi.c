/* openapi.c — serves the embedded api/openapi.yaml. */
#include "api/openapi.h"

#include <string.h>

#include "api/http_server.h"
#include "core/embedded.h"

void openapi_handle(void *request, const struct route_params *p)
{
    (void)p;
    struct api_request *r = request;
    for (const struct embedded_file *f = web_assets; f->name; f++) {
        if (strcmp(f->name, "openapi.yaml") == 0) {
            evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control",
                              "public, max-age=300");
            api_reply_bytes(r, 200, "application/yaml; charset=utf-8", f->data, f->len);
            return;
        }
    }
    api_reply_error(r, 404, "NOT_FOUND", "openapi.yaml is not built into this binary");
}
