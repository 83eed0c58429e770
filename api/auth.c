/* auth.c — Basic / VF-ORG-ID authentication with a short credential cache,
 * and the request → db job → reply cycle of the admin API (see auth.h). */
#include "api/auth.h"
#include "api/viewer_tokens.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

/* ------------------------------------------------------------------------
 * Credential cache: a small table, oldest slot replaced. Guarded by a mutex
 * so it stays correct whichever thread touches it (in practice: the http
 * loop only).
 * ------------------------------------------------------------------------ */
struct cache_slot {
    bool used, org;
    char key[128];        /* api key, or org id when org */
    char secret_sha[65];  /* sha256(secret); "" for org entries */
    struct auth_app app;
    long long expires_ms;
};

static struct cache_slot cache[AUTH_CACHE_SLOTS];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

void auth_cache_clear(void)
{
    pthread_mutex_lock(&cache_mu);
    memset(cache, 0, sizeof cache);
    pthread_mutex_unlock(&cache_mu);
}

static bool cache_lookup(bool org, const char *key, const char *secret_sha, struct auth_app *out)
{
    long long now = loop_now_ms();
    bool hit = false;
    pthread_mutex_lock(&cache_mu);
    for (int i = 0; i < AUTH_CACHE_SLOTS; i++) {
        struct cache_slot *s = &cache[i];
        if (!s->used || s->org != org || s->expires_ms <= now || strcmp(s->key, key) != 0)
            continue;
        if (!org && !secure_str_equal(s->secret_sha, secret_sha))
            continue;
        *out = s->app;
        hit = true;
        break;
    }
    pthread_mutex_unlock(&cache_mu);
    return hit;
}

static void cache_insert(bool org, const char *key, const char *secret_sha,
                         const struct auth_app *app)
{
    long long now = loop_now_ms();
    pthread_mutex_lock(&cache_mu);
    struct cache_slot *victim = &cache[0];
    for (int i = 0; i < AUTH_CACHE_SLOTS; i++) {
        struct cache_slot *s = &cache[i];
        if (s->used && s->org == org && strcmp(s->key, key) == 0) {
            victim = s; /* refresh in place */
            break;
        }
        if (!s->used || s->expires_ms < victim->expires_ms)
            victim = s;
    }
    victim->used = true;
    victim->org = org;
    snprintf(victim->key, sizeof victim->key, "%s", key);
    snprintf(victim->secret_sha, sizeof victim->secret_sha, "%s", org ? "" : secret_sha);
    victim->app = *app;
    victim->expires_ms = now + AUTH_CACHE_TTL_SEC * 1000LL;
    pthread_mutex_unlock(&cache_mu);
}

/* ------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------ */
int api_job_fail(struct api_job *j, int status, const char *code, const char *fmt, ...)
{
    if (j->err.status)
        return -1;
    j->err.status = status;
    snprintf(j->err.code, sizeof j->err.code, "%s", code);
    j->err.field[0] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err.message, sizeof j->err.message, fmt, ap);
    va_end(ap);
    return -1;
}

void api_job_db_error(struct api_job *j)
{
    api_job_fail(j, 500, "INTERNAL_ERROR", "database error");
}

void api_job_not_found(struct api_job *j, const char *code, const char *what)
{
    api_job_fail(j, 404, code, "%s does not exist", what);
}

void *api_job_input(struct api_job *j, size_t size)
{
    void *in = calloc(1, size);
    j->in = in;
    j->in_free = free;
    if (!in)
        api_job_fail(j, 503, "UNAVAILABLE", "out of memory");
    return in;
}

static void job_free(struct api_job *j)
{
    if (j->in_free && j->in)
        j->in_free(j->in);
    json_decref(j->body);
    json_decref(j->reply);
    OPENSSL_cleanse(j->secret_sha, sizeof j->secret_sha);
    free(j);
}

struct api_job *api_job_new(struct api_request *r, enum auth_mode mode)
{
    struct api_job *j = calloc(1, sizeof *j);
    if (!j) {
        api_reply_error(r, 503, "UNAVAILABLE", "out of memory");
        return NULL;
    }
    j->r = r;
    j->ctx = r->ctx;
    j->mode = mode;
    j->v1_errors = mode == AUTH_BASIC_OR_ORG;
    j->status = 200;

    char user[128], pass[256];
    if (api_basic_auth(r, user, sizeof user, pass, sizeof pass) == 0 && user[0] && pass[0]) {
        snprintf(j->key, sizeof j->key, "%s", user);
        secure_sha256_hex(pass, strlen(pass), j->secret_sha);
        OPENSSL_cleanse(pass, sizeof pass);
        j->authed = cache_lookup(false, j->key, j->secret_sha, &j->app);
    } else if (mode == AUTH_BASIC_OR_ORG && api_header(r, "VF-ORG-ID")) {
        const char *org = api_header(r, "VF-ORG-ID");
        if (strlen(org) < sizeof j->org && !ju_is_blank(org)) {
            snprintf(j->org, sizeof j->org, "%s", org);
            j->org_auth = true;
            j->authed = cache_lookup(true, j->org, NULL, &j->app);
        }
    }
    if (j->authed)
        snprintf(j->actor, sizeof j->actor, "api:app:%" PRId64, j->app.id);
    return j;
}

int api_job_read_body(struct api_job *j)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(j->r->req);
    size_t len = evbuffer_get_length(in);
    int max = j->ctx->cfg->http_max_body_bytes;
    if (len > (size_t)max)
        return api_job_fail(j, 413, "PAYLOAD_TOO_LARGE",
                            "request body is %zu bytes; the limit is %d", len, max);
    if (len == 0)
        return api_job_fail(j, 400, "INVALID_JSON", "request body must be a JSON object");
    const char *data = (const char *)evbuffer_pullup(in, -1);
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return api_job_fail(j, 400, "INVALID_JSON", "malformed JSON at line %d column %d: %s",
                            jerr.line, jerr.column, jerr.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return api_job_fail(j, 400, "INVALID_JSON", "request body must be a JSON object");
    }
    j->body = v;
    return 0;
}

int api_job_query(struct api_job *j, const char *name, const char **out)
{
    const char *v = api_query(j->r, name);
    *out = NULL;
    if (!v)
        return 0;
    size_t n = strlen(v);
    if (n > 500 || !ju_utf8_valid(v, n)) {
        api_job_fail(j, 400, "INVALID_PARAMETER", "%s must be UTF-8 text of at most 500 bytes",
                     name);
        snprintf(j->err.field, sizeof j->err.field, "%s", name);
        return -1;
    }
    *out = v;
    return 0;
}

int api_job_path(struct api_job *j, const struct route_params *p, const char *name, bool want_id,
                 const char *not_found_code, const char *what)
{
    const char *v = route_param(p, name);
    if (v && ju_utf8_valid(v, strlen(v))) {
        snprintf(j->param, sizeof j->param, "%s", v);
        if (!want_id || ju_parse_id(v, &j->id))
            return 0;
    }
    api_job_not_found(j, not_found_code, what);
    return -1;
}

/* Row 0 of an apps query (id, state, name, ...) into *out. */
static void app_from_row(const PGresult *r, struct auth_app *out)
{
    out->id = db_get_i64(r, 0, 0);
    snprintf(out->state, sizeof out->state, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 2));
}

int auth_app_by_key(PGconn *c, const char *label, const char *key, const char *secret_sha,
                    struct auth_app *out)
{
    const char *p[1] = {key};
    PGresult *r = db_exec(c, label, "SELECT id, state, name, api_secret_sha256 FROM apps"
                                    " WHERE api_key = $1 AND state = 'ACTIVE'", 1, p, NULL);
    if (!r)
        return -1;
    bool ok = false;
    if (PQntuples(r) == 1) {
        const char *stored = db_get_str(r, 0, 3);
        ok = stored && secure_str_equal(secret_sha, stored);
    } else {
        /* Same work on the miss path: an unknown key costs as much as a bad secret. */
        (void)secure_str_equal(secret_sha,
                               "0000000000000000000000000000000000000000000000000000000000000000");
    }
    if (ok)
        app_from_row(r, out);
    PQclear(r);
    return ok ? 1 : 0;
}

/* The ACTIVE app of a VF-ORG-ID (SPEC API-6). 1, 0 unknown, -1 db error. */
static int app_by_org(PGconn *c, const char *org, struct auth_app *out)
{
    const char *p[1] = {org};
    PGresult *r = db_exec(c, "auth org", "SELECT id, state, name FROM apps WHERE org_id = $1"
                                         " AND state = 'ACTIVE'", 1, p, NULL);
    if (!r)
        return -1;
    bool ok = PQntuples(r) == 1;
    if (ok)
        app_from_row(r, out);
    PQclear(r);
    return ok ? 1 : 0;
}

/* db thread: who is calling? */
static void authenticate(PGconn *c, struct api_job *j)
{
    int found;
    if (j->org_auth)
        found = app_by_org(c, j->org, &j->app);
    else if (j->key[0])
        found = auth_app_by_key(c, "auth", j->key, j->secret_sha, &j->app);
    else
        return;
    if (found < 0)
        return api_job_db_error(j);
    if (found) {
        j->authed = true;
        j->cache_insert = true;
        snprintf(j->actor, sizeof j->actor, "api:app:%" PRId64, j->app.id);
    }
}

static void job_work(PGconn *c, void *arg)
{
    struct api_job *j = arg;
    if (!j->authed)
        authenticate(c, j);
    if (j->authed && !j->err.status && j->work)
        j->work(c, j);
}

static void job_reply(struct api_job *j)
{
    struct api_request *r = j->r;
    if (!j->authed && j->err.status != 500) {
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate",
                          "Basic realm=\"castgate\"");
        if (j->v1_errors)
            api_reply_json(r, 401, json_pack("{s:b, s:s}", "success", 0, "message", "Unauthorized"));
        else
            api_reply_error(r, 401, "UNAUTHORIZED", "missing or invalid app credentials");
    } else if (j->err.status) {
        if (j->v1_errors)
            api_reply_json(r, j->err.status,
                           json_pack("{s:b, s:s, s:s}", "success", 0, "message", j->err.message,
                                     "errorCode", j->err.code));
        else
            api_reply_json(r, j->err.status, ju_error_json(&j->err));
    } else if (j->status == 204 || !j->reply) {
        api_reply_empty(r, j->status == 200 ? 204 : j->status);
    } else {
        json_t *body = j->reply;
        j->reply = NULL;
        api_reply_json(r, j->status, body);
    }
    job_free(j);
}

static void job_done(void *arg)
{
    struct api_job *j = arg;
    if (j->cache_insert)
        cache_insert(j->org_auth, j->org_auth ? j->org : j->key, j->secret_sha, &j->app);
    if (j->authed && !j->err.status && j->finish)
        j->finish(j);
    job_reply(j);
}

void api_job_allow_bearer(struct api_job *j, int64_t room_id, int min_role)
{
    if (j->authed || j->key[0] || j->org_auth || j->err.status)
        return;
    const char *token = api_bearer_token(j->r);
    if (!token)
        return;
    struct viewer_claims claims;
    const char *code = NULL;
    int st = viewer_token_authorize(token, room_id, (enum viewer_role)min_role, &claims, &code);
    j->authed = true; /* decided here: a refusal is answered without the database */
    if (st != 0) {
        api_job_fail(j, st, code ? code : "UNAUTHORIZED", "the viewer token may not do this");
        return;
    }
    j->app.id = claims.app_id;
    snprintf(j->app.state, sizeof j->app.state, "ACTIVE");
    j->app.name[0] = 0;
    snprintf(j->actor, sizeof j->actor, "token:%.40s", claims.jti);
}

void api_job_submit(struct api_job *j)
{
    /* No credentials at all: no need for the database. */
    if (!j->authed && !j->key[0] && !j->org_auth) {
        job_reply(j);
        return;
    }
    /* Authenticated from the cache and already refused: answer now. */
    if (j->authed && j->err.status) {
        job_reply(j);
        return;
    }
    if (db_pool_submit(j->ctx->db, j->ctx->http_loop, job_work, job_done, j) != 0) {
        api_reply_error(j->r, 503, "UNAVAILABLE", "database queue full; retry later");
        job_free(j);
    }
}

int api_job_page_list(PGconn *c, struct api_job *j, const char *what, const char *count_sql,
                      const char *select_sql, api_page_filter_fn filters, const void *in,
                      const char *sort_alias, const struct ju_page *page,
                      api_page_render_fn render)
{
    char label[64];
    struct ju_query q;
    ju_query_init(&q, count_sql);
    filters(&q, j, in);
    snprintf(label, sizeof label, "%s count", what);
    PGresult *r = q.overflow ? NULL : db_exec(c, label, q.sql, q.n, q.params, NULL);
    if (!r)
        goto fail;
    int64_t total = db_get_i64(r, 0, 0);
    PQclear(r);

    ju_query_init(&q, select_sql);
    filters(&q, j, in);
    char order[160];
    snprintf(order, sizeof order, " ORDER BY %s", ju_sort_sql(page->sort, sort_alias));
    ju_query_add(&q, order, NULL);
    ju_query_add(&q, " LIMIT $?", ju_query_i64(&q, page->page_size));
    ju_query_add(&q, " OFFSET $?", ju_query_i64(&q, page->page * page->page_size));
    snprintf(label, sizeof label, "%s list", what);
    r = q.overflow ? NULL : db_exec(c, label, q.sql, q.n, q.params, NULL);
    if (!r)
        goto fail;
    json_t *content = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(content, render(j, r, i));
    PQclear(r);
    j->reply = ju_page_json(content, total, page);
    return 0;
fail:
    api_job_db_error(j);
    return -1;
}

int api_job_page_query(struct api_job *j, bool allow_app_user_id, struct ju_page *out)
{
    const char *page, *size, *sort;
    if (api_job_query(j, "page", &page) != 0 || api_job_query(j, "pageSize", &size) != 0 ||
        api_job_query(j, "sortBy", &sort) != 0)
        return -1;
    return ju_parse_page(page, size, sort, allow_app_user_id, out, &j->err);
}

void api_job_reply_one(PGconn *c, struct api_job *j, const char *label, const char *sql,
                       const char *not_found_code, const char *what, api_page_render_fn render)
{
    char app[24], id[24];
    snprintf(app, sizeof app, "%" PRId64, j->app.id);
    snprintf(id, sizeof id, "%" PRId64, j->id);
    const char *p[2] = {app, id};
    PGresult *r = db_exec(c, label, sql, 2, p, NULL);
    if (!r)
        return api_job_db_error(j);
    if (PQntuples(r) != 1)
        api_job_not_found(j, not_found_code, what);
    else
        j->reply = render(j, r, 0);
    PQclear(r);
}
