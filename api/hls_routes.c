/* hls_routes.c — glue between the router and api/hls_delivery.c. */
#include "api/hls_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/hls_delivery.h"
#include "api/http_server.h"
#include "api/viewer_access.h"

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

/* Route params live on the router's stack: copy them for the async path. */
struct room_req {
    char id[ROUTER_PARAM_MAX];
    char file[ROUTER_PARAM_MAX];
};

static void room_access_done(struct api_request *r, const struct viewer_access *a, void *arg)
{
    struct room_req *q = arg;
    if (a->status != 0) {
        viewer_access_reply_error(r, a);
    } else if (!delivery) {
        api_reply_error(r, 503, "UNAVAILABLE", "HLS delivery is not running");
    } else {
        api_add_cors(r);
        hls_delivery_handle(delivery, r->req, "rooms", q->id, q->file, a->query_suffix, delivered, r);
    }
    free(q);
}

/* PKG-6: the viewer access check (token, room access level) comes first;
 * playlists also count the viewer session (PKG-8). */
void hls_rooms_handle(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    const char *id = route_param(params, "id");
    const char *file = route_param(params, "file");
    struct room_req *q = calloc(1, sizeof *q);
    if (!q) {
        api_reply_error(r, 503, "UNAVAILABLE", "out of memory");
        return;
    }
    snprintf(q->id, sizeof q->id, "%s", id);
    snprintf(q->file, sizeof q->file, "%s", file);
    size_t fl = strlen(file);
    enum viewer_resource res =
        fl > 5 && strcmp(file + fl - 5, ".m3u8") == 0 ? VIEWER_RES_PLAYLIST : VIEWER_RES_MEDIA;
    char *end;
    long long room = strtoll(id, &end, 10);
    viewer_access_check(r, *end || room <= 0 ? 0 : (int64_t)room, res, room_access_done, q);
}

void hls_keys_handle(void *request, const struct route_params *params)
{
    serve(request, params, "keys");
}
