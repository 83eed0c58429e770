/* viewer_common.c — hash table, rate limiter, db-job pattern and paging
 * shape shared by the viewer-side endpoints. See viewer_common.h. */
#include "api/viewer_common.h"

#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/http_server.h"
#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

/* ---- vmap ---------------------------------------------------------------- */

static size_t bucket_of(const struct vmap *m, uint64_t key)
{
    /* Mix so sequential ids spread (splitmix64 finalizer). */
    uint64_t x = key + 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (size_t)(x & (m->nbuckets - 1));
}

int vmap_init(struct vmap *m, size_t max)
{
    memset(m, 0, sizeof *m);
    m->nbuckets = 16;
    m->max = max;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    return m->buckets ? 0 : -1;
}

void vmap_free(struct vmap *m, void (*free_entry)(struct vmap_entry *e))
{
    if (!m->buckets)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct vmap_entry *e = m->buckets[i];
        while (e) {
            struct vmap_entry *next = e->next;
            if (free_entry)
                free_entry(e);
            e = next;
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof *m);
}

struct vmap_entry *vmap_get(const struct vmap *m, uint64_t key)
{
    for (struct vmap_entry *e = m->buckets[bucket_of(m, key)]; e; e = e->next)
        if (e->key == key)
            return e;
    return NULL;
}

struct vmap_entry *vmap_next_same(const struct vmap_entry *e)
{
    for (struct vmap_entry *n = e->next; n; n = n->next)
        if (n->key == e->key)
            return n;
    return NULL;
}

static void grow(struct vmap *m)
{
    size_t nb = m->nbuckets * 2;
    struct vmap_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* keep the longer chains */
    struct vmap old = *m;
    m->buckets = b;
    m->nbuckets = nb;
    for (size_t i = 0; i < old.nbuckets; i++) {
        struct vmap_entry *e = old.buckets[i];
        while (e) {
            struct vmap_entry *next = e->next;
            size_t k = bucket_of(m, e->key);
            e->next = m->buckets[k];
            m->buckets[k] = e;
            e = next;
        }
    }
    free(old.buckets);
}

int vmap_put(struct vmap *m, struct vmap_entry *e)
{
    if (m->count >= m->max)
        return -1;
    if (m->count >= m->nbuckets)
        grow(m);
    size_t k = bucket_of(m, e->key);
    e->next = m->buckets[k];
    m->buckets[k] = e;
    m->count++;
    return 0;
}

void vmap_remove(struct vmap *m, struct vmap_entry *e)
{
    struct vmap_entry **pp = &m->buckets[bucket_of(m, e->key)];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            e->next = NULL;
            m->count--;
            return;
        }
    }
}

size_t vmap_sweep(struct vmap *m, bool (*fn)(struct vmap_entry *e, void *arg), void *arg,
                  void (*free_entry)(struct vmap_entry *e))
{
    size_t removed = 0;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct vmap_entry **pp = &m->buckets[i];
        while (*pp) {
            struct vmap_entry *e = *pp;
            if (fn(e, arg)) {
                *pp = e->next;
                m->count--;
                removed++;
                if (free_entry)
                    free_entry(e);
            } else {
                pp = &e->next;
            }
        }
    }
    return removed;
}

uint64_t vhash_str(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- vrate --------------------------------------------------------------- */

struct vrate_entry {
    struct vmap_entry e;
    long long window_start_ms;
    int hits;
};

static void free_rate_entry(struct vmap_entry *e) { free(e); }

int vrate_init(struct vrate *r, int limit, long long window_ms, size_t max_keys)
{
    r->limit = limit;
    r->window_ms = window_ms;
    return vmap_init(&r->map, max_keys);
}

void vrate_free(struct vrate *r) { vmap_free(&r->map, free_rate_entry); }

static bool rate_expired(struct vmap_entry *e, void *arg)
{
    const long long *cut = arg;
    return ((struct vrate_entry *)e)->window_start_ms <= *cut;
}

bool vrate_hit(struct vrate *r, uint64_t key, long long now_ms, int *retry_after_sec)
{
    *retry_after_sec = 0;
    struct vrate_entry *x = (struct vrate_entry *)vmap_get(&r->map, key);
    if (x && now_ms - x->window_start_ms >= r->window_ms) {
        x->window_start_ms = now_ms;
        x->hits = 0;
    }
    if (!x) {
        if (r->map.count >= r->map.max) {
            long long cut = now_ms - r->window_ms;
            vmap_sweep(&r->map, rate_expired, &cut, free_rate_entry);
        }
        x = calloc(1, sizeof *x);
        if (!x || (x->e.key = key, vmap_put(&r->map, &x->e) != 0)) {
            free(x);
            *retry_after_sec = (int)((r->window_ms + 999) / 1000);
            return false;
        }
        x->window_start_ms = now_ms;
    }
    if (x->hits >= r->limit) {
        long long left = x->window_start_ms + r->window_ms - now_ms;
        *retry_after_sec = (int)((left + 999) / 1000);
        if (*retry_after_sec < 1)
            *retry_after_sec = 1;
        return false;
    }
    x->hits++;
    return true;
}

/* ---- vjob ---------------------------------------------------------------- */

struct vjob *vjob_new(struct api_request *r)
{
    struct vjob *j = calloc(1, sizeof *j);
    if (!j) {
        api_reply_error(r, 503, "UNAVAILABLE", "out of memory");
        return NULL;
    }
    j->r = r;
    return j;
}

static void vjob_free(struct vjob *j)
{
    OPENSSL_cleanse(j->basic_pass, sizeof j->basic_pass);
    json_decref(j->in);
    json_decref(j->out);
    free(j);
}

static void vjob_vfail(struct vjob *j, int status, const char *code, const char *field,
                       const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void vjob_vfail(struct vjob *j, int status, const char *code, const char *field,
                       const char *fmt, va_list ap)
{
    j->status = status;
    snprintf(j->code, sizeof j->code, "%s", code);
    snprintf(j->field, sizeof j->field, "%s", field ? field : "");
    vsnprintf(j->msg, sizeof j->msg, fmt, ap);
    json_decref(j->out);
    j->out = NULL;
}

void vjob_fail_field(struct vjob *j, int status, const char *code, const char *field, const char *fmt,
                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    vjob_vfail(j, status, code, field, fmt, ap);
    va_end(ap);
}

void vjob_fail(struct vjob *j, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vjob_vfail(j, status, code, NULL, fmt, ap);
    va_end(ap);
}

void vjob_reply(struct vjob *j)
{
    struct api_request *r = j->r;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    if (j->retry_after[0])
        evhttp_add_header(h, "Retry-After", j->retry_after);
    int status = j->status ? j->status : 500;
    if (status == 401 && !j->by_token && j->auth == VJOB_AUTH_APP)
        evhttp_add_header(h, "WWW-Authenticate", "Basic realm=\"castgate\"");
    if (status >= 400 && !j->out && j->field[0]) {
        api_reply_json(r, status, json_pack("{s:s, s:s, s:s}", "errorCode", j->code, "message", j->msg,
                                            "field", j->field));
    } else if (status >= 400 && !j->out) {
        api_reply_error(r, status, j->code[0] ? j->code : "INTERNAL_ERROR", "%s",
                        j->msg[0] ? j->msg : "internal error");
    } else if (status == 204 || !j->out) {
        api_reply_empty(r, status);
    } else {
        api_reply_json(r, status, j->out);
        j->out = NULL;
    }
    vjob_free(j);
}

int64_t vjob_auth_app(PGconn *c, const char *user, const char *pass)
{
    char hash[65];
    struct auth_app app;
    secure_sha256_hex(pass, strlen(pass), hash);
    return auth_app_by_key(c, "auth app", user, hash, &app) == 1 ? app.id : 0;
}

static void vjob_work(PGconn *c, void *arg)
{
    struct vjob *j = arg;
    if (j->auth == VJOB_AUTH_APP && j->has_basic) {
        j->app_id = vjob_auth_app(c, j->basic_user, j->basic_pass);
        if (!j->app_id) {
            vjob_fail(j, 401, "UNAUTHORIZED", "invalid app credentials");
            return;
        }
    }
    if (j->auth == VJOB_AUTH_APP && j->room_id > 0) {
        char room[24], app[24];
        snprintf(room, sizeof room, "%lld", (long long)j->room_id);
        snprintf(app, sizeof app, "%lld", (long long)j->app_id);
        const char *params[2] = {room, app};
        PGresult *res = db_exec(c, "room of app",
                                "SELECT 1 FROM video_rooms"
                                " WHERE id = $1 AND app_id = $2 AND state = 'ACTIVE'",
                                2, params, NULL);
        bool found = res && PQntuples(res) == 1;
        PQclear(res);
        if (!res) {
            vjob_fail(j, 503, "UNAVAILABLE", "database error");
            return;
        }
        if (!found) {
            vjob_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room %lld not found",
                      (long long)j->room_id);
            return;
        }
    }
    j->work(c, j);
}

/* Runs the handler's done hook (it sees the status, success or not), then
 * replies unless the hook took the request over. */
static void vjob_finish(struct vjob *j)
{
    if (j->done)
        j->done(j);
    if (j->detached)
        vjob_free(j);
    else
        vjob_reply(j);
}

static void vjob_done(void *arg) { vjob_finish(arg); }

void vjob_submit(struct vjob *j)
{
    struct api_request *r = j->r;
    if (j->auth == VJOB_AUTH_APP) {
        if (api_basic_auth(r, j->basic_user, sizeof j->basic_user, j->basic_pass,
                           sizeof j->basic_pass) == 0) {
            j->has_basic = true;
        } else if (j->bearer_min_role != VIEWER_ROLE_NONE && api_bearer_token(r)) {
            const char *code = NULL;
            int st = viewer_token_authorize(api_bearer_token(r), j->room_id, j->bearer_min_role,
                                            &j->claims, &code);
            if (st != 0) {
                j->by_token = true; /* no Basic challenge for a token refusal */
                vjob_fail(j, st, code, "viewer token refused: %s", code);
                vjob_finish(j);
                return;
            }
            j->by_token = true;
            j->app_id = j->claims.app_id;
        } else {
            vjob_fail(j, 401, "UNAUTHORIZED", "HTTP Basic app credentials required");
            vjob_finish(j);
            return;
        }
    }
    if (db_pool_submit(r->ctx->db, r->ctx->http_loop, vjob_work, vjob_done, j) != 0) {
        vjob_fail(j, 503, "UNAVAILABLE", "database queue full; retry shortly");
        snprintf(j->retry_after, sizeof j->retry_after, "1");
        vjob_finish(j);
    }
}

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool viso8601_valid(const char *s)
{
    /* 2024-12-31T23:59:59 */
    if (strlen(s) < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++)
            n++;
        if (n < 1 || n > 9)
            return false;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == 0)
        return true;
    return (*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) && p[6] == 0;
}

int64_t vparse_id(const char *s)
{
    if (!s || !*s || strlen(s) > 18)
        return 0;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* ---- request helpers ----------------------------------------------------- */

int vjson_opt_string(struct vjob *j, const char *name, size_t maxlen, const char **out)
{
    *out = NULL;
    json_t *v = j->in ? json_object_get(j->in, name) : NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        vjob_fail_field(j, 400, "INVALID_PARAMETER", name, "%s must be a string", name);
        return -1;
    }
    if (json_string_length(v) > maxlen) {
        vjob_fail_field(j, 400, "INVALID_PARAMETER", name, "%s is longer than %zu bytes", name, maxlen);
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        vjob_fail_field(j, 400, "INVALID_PARAMETER", name, "%s must not contain NUL", name);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int vjson_opt_int(struct vjob *j, const char *name, long long min, long long max, long long def,
                  long long *out)
{
    *out = def;
    json_t *v = j->in ? json_object_get(j->in, name) : NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        vjob_fail_field(j, 400, "INVALID_PARAMETER", name, "%s must be an integer", name);
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < min || x > max) {
        vjob_fail_field(j, 400, "INVALID_PARAMETER", name, "%s must be between %lld and %lld", name, min,
                        max);
        return -1;
    }
    *out = x;
    return 0;
}

static int query_int(struct vjob *j, const char *name, long long min, long long max,
                     long long def, long long *out)
{
    const char *s = api_query(j->r, name);
    *out = def;
    if (!s)
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < min || v > max) {
        vjob_fail_field(j, 400, "INVALID_PARAMETER", name, "%s must be an integer between %lld and %lld",
                        name, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int vpage_parse(struct vjob *j, const char *const *sorts, struct vpage *p)
{
    memset(p, 0, sizeof *p);
    if (query_int(j, "page", 0, 1000000, 0, &p->page) != 0 ||
        query_int(j, "pageSize", 1, 100, 10, &p->size) != 0)
        return -1;
    const char *s = api_query(j->r, "sortBy");
    if (s) {
        int i = 0;
        for (; sorts[i]; i++)
            if (strcmp(sorts[i], s) == 0)
                break;
        if (!sorts[i]) {
            vjob_fail_field(j, 400, "INVALID_PARAMETER", "sortBy", "sortBy: unknown value \"%.64s\"", s);
            return -1;
        }
        p->sort = i;
    }
    return 0;
}

static json_t *sort_obj(void)
{
    return json_pack("{s:b, s:b, s:b}", "empty", 0, "sorted", 1, "unsorted", 0);
}

json_t *vpage_wrap(json_t *content, long long total, const struct vpage *p)
{
    long long n = (long long)json_array_size(content);
    long long pages = p->size > 0 ? (total + p->size - 1) / p->size : 0;
    json_t *o = json_object();
    json_object_set_new(o, "content", content);
    json_object_set_new(o, "pageable",
                        json_pack("{s:o, s:I, s:I, s:I, s:b, s:b}", "sort", sort_obj(), "offset",
                                  (json_int_t)(p->page * p->size), "pageNumber",
                                  (json_int_t)p->page, "pageSize", (json_int_t)p->size, "paged", 1,
                                  "unpaged", 0));
    json_object_set_new(o, "last", json_boolean(p->page + 1 >= pages));
    json_object_set_new(o, "totalPages", json_integer(pages));
    json_object_set_new(o, "totalElements", json_integer(total));
    json_object_set_new(o, "size", json_integer(p->size));
    json_object_set_new(o, "number", json_integer(p->page));
    json_object_set_new(o, "sort", sort_obj());
    json_object_set_new(o, "first", json_boolean(p->page == 0));
    json_object_set_new(o, "numberOfElements", json_integer(n));
    json_object_set_new(o, "empty", json_boolean(n == 0));
    return o;
}

void vpage_room_list(PGconn *c, struct vjob *j, const struct vpage *p, const char *what,
                     const char *count_sql, const char *asc_sql, const char *desc_sql,
                     vpage_row_fn row)
{
    char room[24], limit[24], offset[24], label[64];
    snprintf(room, sizeof room, "%lld", (long long)j->room_id);
    snprintf(limit, sizeof limit, "%lld", p->size);
    snprintf(offset, sizeof offset, "%lld", p->page * p->size);
    const char *params[3] = {room, limit, offset};
    snprintf(label, sizeof label, "%s count", what);
    PGresult *cnt = db_exec(c, label, count_sql, 1, params, NULL);
    snprintf(label, sizeof label, "%s list", what);
    PGresult *res = db_exec(c, label, p->sort == 1 ? asc_sql : desc_sql, 3, params, NULL);
    if (!cnt || !res) {
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
    } else {
        json_t *arr = json_array();
        for (int i = 0; i < PQntuples(res); i++)
            json_array_append_new(arr, row(j, res, i));
        j->status = 200;
        j->out = vpage_wrap(arr, db_get_i64(cnt, 0, 0), p);
    }
    PQclear(cnt);
    PQclear(res);
}
