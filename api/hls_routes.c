/* hls_routes.c — glue between the router and api/hls_delivery.c. */
#include "api/hls_routes.h"

#include <string.h>

#include "api/hls_delivery.h"
#include "api/http_server.h"

static struct hls_delivery *delivery;

void hls_routes_init(struct hls_delivery *d) { delivery = d; }

static void delivered(void *arg, int status)
{
    api_request_done(arg, status);
}

static void serve(struct api_request *r, const struct route_params *p, const char *kind)
{
    const char *id = route_param(p, "id");
    const char *file = route_param(p, "file");
    if (!delivery) {
        api_reply_error(r, 503, "UNAVAILABLE", "HLS delivery is not running");
        return;
    }
    api_add_cors(r);
    /* The query suffix carried to every URI in a playlist (PKG-6): the
     * viewer token, when one was given. */
    char suffix[600] = "";
    const char *token = api_query(r, "token");
    if (token && strlen(token) < 512 && !strpbrk(token, "\"\r\n &#<>"))
        snprintf(suffix, sizeof suffix, "?token=%s", token);
    hls_delivery_handle(delivery, r->req, kind, id, file, suffix, delivered, r);
}

void hls_rooms_handle(void *request, const struct route_params *params)
{
    serve(request, params, "rooms");
}

void hls_keys_handle(void *request, const struct route_params *params)
{
    serve(request, params, "keys");
}
