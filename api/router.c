/* router.c — a small linear route table; a few dozen routes, matched by segment. */
#include "api/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTER_MAX_ROUTES 128

struct route {
    char method[8];
    char pattern[160];
    route_handler handler;
};

struct router {
    struct route routes[ROUTER_MAX_ROUTES];
    int count;
};

struct router *router_new(void) { return calloc(1, sizeof(struct router)); }
void router_free(struct router *r) { free(r); }

int router_add(struct router *r, const char *method, const char *pattern, route_handler h)
{
    if (r->count >= ROUTER_MAX_ROUTES || strlen(method) >= 8 || strlen(pattern) >= 160 ||
        pattern[0] != '/')
        return -1;
    struct route *rt = &r->routes[r->count++];
    strcpy(rt->method, method);
    strcpy(rt->pattern, pattern);
    rt->handler = h;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into dst (cap bytes incl. NUL). -1 on a bad
 * escape, an embedded NUL or overflow. */
static int pct_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(src[i + 1]), l = hexval(src[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = 0;
    return 0;
}

/* Matches one pattern; fills params. */
static int match_one(const char *pattern, const char *path, struct route_params *p, bool *bad)
{
    p->count = 0;
    const char *pp = pattern, *sp = path;
    while (*pp && *sp) {
        if (*pp != '/' || *sp != '/')
            return 0;
        pp++;
        sp++;
        const char *pe = strchr(pp, '/');
        size_t plen = pe ? (size_t)(pe - pp) : strlen(pp);
        const char *se = strchr(sp, '/');
        size_t slen = se ? (size_t)(se - sp) : strlen(sp);
        if (plen >= 2 && pp[0] == '{' && pp[plen - 1] == '}') {
            bool rest = plen > 3 && pp[1] == '*';
            if (rest)
                slen = strlen(sp);
            if (slen == 0 || p->count >= ROUTER_MAX_PARAMS)
                return 0;
            if (pct_decode(sp, slen, p->values[p->count], ROUTER_PARAM_MAX) != 0) {
                *bad = true;
                return 0;
            }
            /* names point into the pattern table: copy-free but not NUL-terminated there */
            p->names[p->count] = pp + 1 + (rest ? 1 : 0);
            p->count++;
        } else if (plen != slen || memcmp(pp, sp, plen) != 0) {
            return 0;
        }
        pp += plen;
        sp += slen;
    }
    return *pp == 0 && *sp == 0;
}

enum router_result router_match(const struct router *r, const char *method, const char *path,
                                route_handler *h, struct route_params *params, char *allow,
                                size_t allowlen)
{
    bool path_found = false, bad = false;
    if (allowlen)
        allow[0] = 0;
    for (int i = 0; i < r->count; i++) {
        const struct route *rt = &r->routes[i];
        struct route_params tmp;
        if (!match_one(rt->pattern, path, &tmp, &bad))
            continue;
        if (strcmp(rt->method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
            *h = rt->handler;
            *params = tmp;
            return ROUTER_FOUND;
        }
        if (allowlen && !strstr(allow, rt->method)) {
            size_t n = strlen(allow);
            snprintf(allow + n, allowlen - n, "%s%s", n ? ", " : "", rt->method);
        }
        path_found = true;
    }
    if (path_found)
        return ROUTER_BAD_METHOD;
    return bad ? ROUTER_BAD_PATH : ROUTER_NO_PATH;
}

const char *route_param(const struct route_params *p, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < p->count; i++)
        if (strncmp(p->names[i], name, n) == 0 && p->names[i][n] == '}')
            return p->values[i];
    return NULL;
}

int router_route_at(const struct router *r, int i, const char **method, const char **pattern)
{
    if (i < 0 || i >= r->count)
        return -1;
    *method = r->routes[i].method;
    *pattern = r->routes[i].pattern;
    return 0;
}
