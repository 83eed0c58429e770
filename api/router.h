/* router.h — method + path pattern → handler.
 *
 * Patterns are literal segments and `{name}` captures of one segment, e.g.
 * "/v2/apps/me/video-rooms/{id}/status". A capture matches 1..255 bytes
 * without '/'; captures are percent-decoded. Matching is exact (no prefix
 * routes) except a pattern ending in "/{*rest}" which captures the remainder.
 * router_match() distinguishes "no such path" (404) from "path exists, other
 * method" (405 with the allowed methods). */
#ifndef API_ROUTER_H
#define API_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 6
#define ROUTER_PARAM_MAX 256

struct route_params {
    int count;
    const char *names[ROUTER_MAX_PARAMS];
    char values[ROUTER_MAX_PARAMS][ROUTER_PARAM_MAX];
};

struct router;
typedef void (*route_handler)(void *request, const struct route_params *params);

struct router *router_new(void);
void router_free(struct router *r);
/* Adds a route; method is "GET", "POST", ... 0 or -1 (bad pattern / full). */
int router_add(struct router *r, const char *method, const char *pattern, route_handler h);

enum router_result { ROUTER_FOUND = 0, ROUTER_NO_PATH = 1, ROUTER_BAD_METHOD = 2, ROUTER_BAD_PATH = 3 };
/* path excludes the query string. On ROUTER_BAD_METHOD, allow receives
 * "GET, POST" style text. */
enum router_result router_match(const struct router *r, const char *method, const char *path,
                                route_handler *h, struct route_params *params, char *allow,
                                size_t allowlen);
/* Value of a named capture or NULL. */
const char *route_param(const struct route_params *p, const char *name);

/* Iterates the table (for the OpenAPI coverage test): returns 0 and fills
 * method/pattern for index i, -1 past the end. */
int router_route_at(const struct router *r, int i, const char **method, const char **pattern);

#endif
