/* http_server.h — the HTTP front: evhttp on the http loop, routing, CORS,
 * limits and reply helpers shared by every handler (API, HLS, player page).
 *
 * A handler receives a `struct api_request *` that it owns until it calls one
 * of the api_reply_* functions (exactly once), possibly later from a db-job
 * completion on the same http loop. After the reply the request is freed. */
#ifndef API_HTTP_SERVER_H
#define API_HTTP_SERVER_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/router.h"
#include "core/config.h"
#include "core/loop.h"

struct db_pool;
struct http_server;

/* What handlers may use. Owned by `serve`; outlives the server. */
struct api_ctx {
    const struct config *cfg;
    struct db_pool *db;
    struct loop *http_loop;
    char public_url[CONFIG_STR_MAX];      /* resolved, no trailing slash */
    char rtmp_public_url[CONFIG_STR_MAX]; /* resolved */
    void *gateway;                        /* live state (ingest + packager), see broadcast/ */
    void *media_registry;                 /* packager/media_registry.h */
};

struct api_request {
    struct evhttp_request *req;
    struct http_server *srv;
    struct api_ctx *ctx;
    const char *method;           /* "GET", "POST", ... */
    char path[1024];              /* raw path, no query */
    struct evkeyvalq query;       /* decoded query parameters */
    long long start_us;
    void *user;                   /* handler's own state */
};

struct http_server *http_server_new(struct api_ctx *ctx, struct router *router, char *err,
                                    size_t errlen);
/* Bound address (after listen on port 0): "127.0.0.1:PORT". */
const char *http_server_address(const struct http_server *s);
void http_server_free(struct http_server *s);

/* --- reply helpers (each completes and frees the request) --- */
/* Sends a JSON document (takes ownership of `body`; NULL = no body). */
void api_reply_json(struct api_request *r, int status, json_t *body);
/* {"errorCode": code, "message": message} */
void api_reply_error(struct api_request *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Raw bytes with a content type (copied). */
void api_reply_bytes(struct api_request *r, int status, const char *content_type,
                     const void *data, size_t len);
/* 204 No Content. */
void api_reply_empty(struct api_request *r, int status);
/* Completes the request after the handler already sent it with evhttp
 * directly (HLS delivery): counts `status` and frees our wrapper. Never
 * touches r->req: evhttp may have freed it (client gone while parked). */
void api_request_done(struct api_request *r, int status);

/* --- request helpers --- */
/* Parses the body as a JSON object. On failure replies 400/413 itself and
 * returns NULL (the request is then done). */
json_t *api_read_json_object(struct api_request *r);
/* Query parameter or NULL. */
const char *api_query(const struct api_request *r, const char *name);
/* Header or NULL. */
const char *api_header(const struct api_request *r, const char *name);
/* Decodes "Authorization: Basic base64(user:pass)". 0 or -1. */
int api_basic_auth(const struct api_request *r, char *user, size_t userlen, char *pass,
                   size_t passlen);
/* "Authorization: Bearer X" → X or NULL. */
const char *api_bearer_token(const struct api_request *r);
/* Adds the CORS headers configured (cors_origin) to a response. */
void api_add_cors(struct api_request *r);
/* Client address "ip". */
const char *api_peer_ip(const struct api_request *r);

/* Counters for /metrics: requests by status class and code. */
struct http_stats {
    unsigned long long requests;
    unsigned long long by_code[6][100]; /* [class 1..5][code % 100] */
};
void http_server_stats(const struct http_server *s, struct http_stats *out);

#endif
