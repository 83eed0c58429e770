/* http_server.c — evhttp wiring: one generic callback routes every request. */
#include "api/http_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"

struct http_server {
    struct api_ctx *ctx;
    struct router *router;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    char address[128];
    struct http_stats stats;
};

static void count_status(struct http_server *s, int code)
{
    s->stats.requests++;
    if (code >= 100 && code < 600)
        s->stats.by_code[code / 100][code % 100]++;
}

void http_server_stats(const struct http_server *s, struct http_stats *out) { *out = s->stats; }

static void request_free(struct api_request *r)
{
    evhttp_clear_headers(&r->query);
    free(r);
}

static void log_request(struct api_request *r, int status)
{
    long long us = loop_now_us() - r->start_us;
    if (status >= 500)
        log_warn("http: %s %s status=%d us=%lld peer=%s", r->method, r->path, status, us,
                 api_peer_ip(r));
    else
        log_debug("http: %s %s status=%d us=%lld", r->method, r->path, status, us);
}

void api_add_cors(struct api_request *r)
{
    const char *origin = r->ctx->cfg->cors_origin;
    if (!origin[0])
        return;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    if (!evhttp_find_header(h, "Access-Control-Allow-Origin")) {
        evhttp_add_header(h, "Access-Control-Allow-Origin", origin);
        evhttp_add_header(h, "Access-Control-Expose-Headers", "Content-Length, Content-Range, Content-Type");
        if (strcmp(origin, "*") != 0)
            evhttp_add_header(h, "Vary", "Origin");
    }
}

static void send_reply(struct api_request *r, int status, struct evbuffer *body)
{
    api_add_cors(r);
    count_status(r->srv, status);
    log_request(r, status);
    const char *reason = NULL; /* evhttp fills the standard phrase */
    if (strcmp(r->method, "HEAD") == 0 && body) {
        /* evhttp drops the body of a HEAD reply but keeps Content-Length. */
    }
    evhttp_send_reply(r->req, status, reason, body);
    request_free(r);
}

void api_reply_json(struct api_request *r, int status, json_t *body)
{
    struct evbuffer *buf = evbuffer_new();
    if (body) {
        char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
        json_decref(body);
        if (text) {
            evbuffer_add(buf, text, strlen(text));
            free(text);
        }
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
                          "application/json");
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    send_reply(r, status, buf);
    evbuffer_free(buf);
}

void api_reply_error(struct api_request *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "errorCode", json_string(code));
    json_object_set_new(o, "message", json_string(msg));
    api_reply_json(r, status, o);
}

void api_reply_bytes(struct api_request *r, int status, const char *content_type, const void *data,
                     size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, data, len);
    if (content_type)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type", content_type);
    send_reply(r, status, buf);
    evbuffer_free(buf);
}

void api_reply_empty(struct api_request *r, int status)
{
    send_reply(r, status, NULL);
}

void api_request_done(struct api_request *r, int status)
{
    count_status(r->srv, status);
    log_request(r, status);
    request_free(r);
}

const char *api_query(const struct api_request *r, const char *name)
{
    return evhttp_find_header(&r->query, name);
}

const char *api_header(const struct api_request *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *api_peer_ip(const struct api_request *r)
{
    struct evhttp_connection *c = evhttp_request_get_connection(r->req);
    if (!c)
        return "-";
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(c, &addr, &port);
    return addr ? addr : "-";
}

int api_basic_auth(const struct api_request *r, char *user, size_t userlen, char *pass,
                   size_t passlen)
{
    const char *h = api_header(r, "Authorization");
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return -1;
    const char *b64 = h + 6;
    while (*b64 == ' ')
        b64++;
    size_t n = strlen(b64);
    if (n == 0 || n > 1024 || n % 4 != 0)
        return -1;
    unsigned char out[800];
    int m = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (m < 0)
        return -1;
    /* EVP_DecodeBlock counts padding bytes as output: drop them. */
    if (n >= 1 && b64[n - 1] == '=')
        m--;
    if (n >= 2 && b64[n - 2] == '=')
        m--;
    out[m] = 0;
    if (memchr(out, 0, (size_t)m))
        return -1;
    char *colon = strchr((char *)out, ':');
    if (!colon)
        return -1;
    size_t ul = (size_t)(colon - (char *)out), pl = (size_t)m - ul - 1;
    if (ul >= userlen || pl >= passlen)
        return -1;
    memcpy(user, out, ul);
    user[ul] = 0;
    memcpy(pass, colon + 1, pl);
    pass[pl] = 0;
    OPENSSL_cleanse(out, sizeof out);
    return 0;
}

const char *api_bearer_token(const struct api_request *r)
{
    const char *h = api_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

json_t *api_read_json_object(struct api_request *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in);
    if ((long)len > r->ctx->cfg->http_max_body_bytes) {
        api_reply_error(r, 413, "PAYLOAD_TOO_LARGE", "request body is %zu bytes; the limit is %d",
                        len, r->ctx->cfg->http_max_body_bytes);
        return NULL;
    }
    if (len == 0) {
        api_reply_error(r, 400, "INVALID_JSON", "request body must be a JSON object");
        return NULL;
    }
    const char *data = (const char *)evbuffer_pullup(in, -1);
    json_error_t jerr;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        api_reply_error(r, 400, "INVALID_JSON", "malformed JSON at line %d column %d: %s",
                        jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_reply_error(r, 400, "INVALID_JSON", "request body must be a JSON object");
        return NULL;
    }
    return j;
}

static void handle_preflight(struct api_request *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    if (r->ctx->cfg->cors_origin[0]) {
        evhttp_add_header(h, "Access-Control-Allow-Methods", "GET, HEAD, POST, PATCH, DELETE, OPTIONS");
        const char *req_headers = api_header(r, "Access-Control-Request-Headers");
        evhttp_add_header(h, "Access-Control-Allow-Headers",
                          req_headers ? req_headers : "Authorization, Content-Type, VF-ORG-ID, Range");
        evhttp_add_header(h, "Access-Control-Max-Age", "86400");
    }
    api_reply_empty(r, 204);
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct http_server *s = arg;
    struct api_request *r = calloc(1, sizeof *r);
    if (!r) {
        evhttp_send_error(req, 503, NULL);
        return;
    }
    r->req = req;
    r->srv = s;
    r->ctx = s->ctx;
    r->start_us = loop_now_us();
    r->method = method_name(evhttp_request_get_command(req));
    r->query.tqh_first = NULL;
    r->query.tqh_last = &r->query.tqh_first;

    const char *uri = evhttp_request_get_uri(req);
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    if (plen == 0 || plen >= sizeof r->path || uri[0] != '/') {
        api_reply_error(r, plen >= sizeof r->path ? 414 : 400, "INVALID_PATH", "malformed request path");
        return;
    }
    memcpy(r->path, uri, plen);
    r->path[plen] = 0;
    if (q && evhttp_parse_query_str(q + 1, &r->query) != 0) {
        api_reply_error(r, 400, "INVALID_PARAMETER", "malformed query string");
        return;
    }
    if (strcmp(r->method, "OPTIONS") == 0) {
        handle_preflight(r);
        return;
    }
    route_handler h;
    struct route_params params;
    char allow[128];
    switch (router_match(s->router, r->method, r->path, &h, &params, allow, sizeof allow)) {
    case ROUTER_FOUND:
        h(r, &params);
        return;
    case ROUTER_BAD_METHOD:
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        api_reply_error(r, 405, "METHOD_NOT_ALLOWED", "%s is not allowed here; use %s", r->method, allow);
        return;
    case ROUTER_BAD_PATH:
        api_reply_error(r, 400, "INVALID_PATH", "malformed percent-encoding in path");
        return;
    case ROUTER_NO_PATH:
    default:
        api_reply_error(r, 404, "NOT_FOUND", "no such resource");
        return;
    }
}

struct http_server *http_server_new(struct api_ctx *ctx, struct router *router, char *err,
                                    size_t errlen)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ctx = ctx;
    s->router = router;
    s->http = evhttp_new(loop_base(ctx->http_loop));
    if (!s->http) {
        snprintf(err, errlen, "http: evhttp_new failed");
        goto fail;
    }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    /* The JSON reader enforces http_max_body_bytes with a JSON 413; evhttp's
     * own (HTML) 413 is only the backstop for bodies far over it. */
    ev_ssize_t hard = (ev_ssize_t)ctx->cfg->http_max_body_bytes * 4;
    evhttp_set_max_body_size(s->http, hard > 1048576 ? hard : 1048576);
    evhttp_set_max_headers_size(s->http, 16384);
    evhttp_set_timeout(s->http, 60);
    evhttp_set_default_content_type(s->http, "application/json");
    evhttp_set_gencb(s->http, on_request, s);

    char host[256];
    int port;
    if (config_split_hostport(ctx->cfg->http_listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "http: http_listen \"%s\" is not host:port", ctx->cfg->http_listen);
        goto fail;
    }
    s->sock = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
    if (!s->sock) {
        snprintf(err, errlen, "http: cannot listen on %s: %s", ctx->cfg->http_listen,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s->sock);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[INET6_ADDRSTRLEN] = "?";
        int p = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            p = ntohs(a->sin_port);
            snprintf(s->address, sizeof s->address, "%s:%d", ip, p);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            p = ntohs(a->sin6_port);
            snprintf(s->address, sizeof s->address, "[%s]:%d", ip, p);
        }
    }
    return s;
fail:
    if (s->http)
        evhttp_free(s->http);
    free(s);
    return NULL;
}

const char *http_server_address(const struct http_server *s) { return s->address; }

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    evhttp_free(s->http);
    free(s);
}
