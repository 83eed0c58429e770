/* auth.h — admin API authentication (SPEC §6: HTTP Basic
 * `appApiKey:appApiSecret` → the caller's app; API-6: `VF-ORG-ID`) and the
 * job every authenticated handler runs on the db pool.
 *
 * Flow of one request:
 *   handler (http loop): api_job_new() → parse/validate path, query and body
 *     into the job (a validation error is stored, not sent: a request with
 *     bad credentials gets 401 before any 400) → api_job_submit().
 *   db thread: if the credentials were not in the cache, look the app up
 *     (apps.api_key, then sha256(secret) compared with secure_str_equal);
 *     then, when authenticated and no error is stored, job->work().
 *   http loop: verified credentials enter the cache; job->finish() (live
 *     figures from the gateway); the reply (error, JSON or 204).
 *
 * Verified credentials are cached for AUTH_CACHE_TTL_SEC keyed by api key
 * and the SHA-256 of the secret (never the secret itself), so most requests
 * cost one db round trip, not two. Failures are never cached. */
#ifndef API_AUTH_H
#define API_AUTH_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/http_server.h"
#include "api/json_util.h"

#define AUTH_CACHE_TTL_SEC 30
#define AUTH_CACHE_SLOTS 256

enum auth_mode {
    AUTH_BASIC,        /* /v2: Basic only; 401 {"errorCode": "UNAUTHORIZED"} */
    AUTH_BASIC_OR_ORG, /* /v1: Basic or VF-ORG-ID; 401 {"success": false, "message": "Unauthorized"} */
};

struct auth_app {
    int64_t id;
    char state[16];
    char name[256];
};

struct api_job;
/* Runs on a db thread after authentication: sets j->status + j->reply, or
 * j->err. Must not touch j->r (the request belongs to the http loop). */
typedef void (*api_job_work_fn)(PGconn *c, struct api_job *j);
/* Runs on the http loop before the reply (may read the gateway). */
typedef void (*api_job_finish_fn)(struct api_job *j);

struct api_job {
    struct api_request *r;      /* http loop only */
    const struct api_ctx *ctx;  /* read-only, safe on the db thread */
    enum auth_mode mode;
    bool v1_errors;             /* error bodies as {"success": false, "message"} */

    api_job_work_fn work;
    api_job_finish_fn finish;
    void *in;                   /* handler input, freed by in_free */
    void (*in_free)(void *in);
    json_t *body;               /* request body (api_job_read_body), freed with the job */
    int64_t id;                 /* a parsed path id */
    char param[256];            /* a path parameter */

    /* results */
    struct ju_error err;        /* err.status != 0 → error reply */
    int status;                 /* 200 / 201 / 204 */
    json_t *reply;              /* NULL for 204 */

    /* set by authentication */
    struct auth_app app;
    char actor[48];             /* "api:app:ID" for events rows */

    /* private */
    bool authed, cache_insert, org_auth;
    char key[128];
    char secret_sha[65];
    char org[128];
};

/* Creates the job and reads the credentials. NULL when out of memory (the
 * request was answered 503). */
struct api_job *api_job_new(struct api_request *r, enum auth_mode mode);
/* SPEC API-8: a room's control endpoint also accepts `Authorization: Bearer`
 * with a viewer token for room_id of at least min_role (enum viewer_role:
 * MODERATOR for recording start/stop, TEACHER for broadcast start/end).
 * Call after api_job_new when the request carries no Basic credentials;
 * verification is in memory (no database). A refused token fails the job
 * with 401/403 and the token's errorCode. */
void api_job_allow_bearer(struct api_job *j, int64_t room_id, int min_role);
/* Reads the body as a JSON object into j->body. On failure stores the error
 * (400 INVALID_JSON, 413 PAYLOAD_TOO_LARGE) in j->err and returns -1. */
int api_job_read_body(struct api_job *j);
/* Runs the job; always completes the request and frees the job. */
void api_job_submit(struct api_job *j);

/* Stores an error unless one is already stored; returns -1. */
int api_job_fail(struct api_job *j, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 500 INTERNAL_ERROR "database error", unless an error is already stored. */
void api_job_db_error(struct api_job *j);
/* 404 `code` "<what> does not exist", unless an error is already stored. */
void api_job_not_found(struct api_job *j, const char *code, const char *what);
/* Allocates the handler's input (size bytes, zeroed) as j->in, freed with the
 * job. NULL when out of memory (503 UNAVAILABLE stored). */
void *api_job_input(struct api_job *j, size_t size);

/* Query parameter `name` (NULL when absent); a value that is not UTF-8 or
 * longer than 500 bytes stores 400 INVALID_PARAMETER and returns -1. */
int api_job_query(struct api_job *j, const char *name, const char **out);
/* Reads the path parameter `name` into j->param and, as an id, j->id.
 * Not a positive int64 (or not UTF-8) → stores 404 not_found_code and
 * returns -1. With want_id false only j->param is set (UTF-8 checked). */
int api_job_path(struct api_job *j, const struct route_params *p, const char *name, bool want_id,
                 const char *not_found_code, const char *what);

/* --- paged lists (SPEC §6) ------------------------------------------------
 * The admin list endpoints share one shape: `count_sql` + filters gives the
 * total, `select_sql` + the same filters + ORDER BY (ju_sort_sql for
 * sort_alias) + LIMIT/OFFSET gives the page, each row rendered into the
 * seed's page object. Labels for the log are "<what> count" / "<what> list". */
typedef void (*api_page_filter_fn)(struct ju_query *q, const struct api_job *j, const void *in);
typedef json_t *(*api_page_render_fn)(const struct api_job *j, const PGresult *r, int row);
/* On the db thread: sets j->reply to the page (0), or stores 500
 * INTERNAL_ERROR "database error" (-1). `in` is passed to filters. */
int api_job_page_list(PGconn *c, struct api_job *j, const char *what, const char *count_sql,
                      const char *select_sql, api_page_filter_fn filters, const void *in,
                      const char *sort_alias, const struct ju_page *page,
                      api_page_render_fn render);

/* Reads the paging query (page, pageSize, sortBy) into *out (ju_parse_page
 * with allow_app_user_id). 0, or -1 with the 400 stored. */
int api_job_page_query(struct api_job *j, bool allow_app_user_id, struct ju_page *out);

/* On the db thread: runs `sql` with $1 = the caller's app id, $2 = j->id and
 * sets j->reply to row 0 rendered. No row → 404 not_found_code "<what> does
 * not exist"; a failed query → 500 (api_job_db_error). `label` names the
 * query in the log. */
void api_job_reply_one(PGconn *c, struct api_job *j, const char *label, const char *sql,
                       const char *not_found_code, const char *what, api_page_render_fn render);

/* db thread: the ACTIVE app with api key `key` whose api_secret_sha256 is
 * secret_sha (hex), compared in constant time (an unknown key costs the same
 * comparison). `label` names the query in the log. 1 (*out filled), 0 unknown
 * key or wrong secret, -1 database error. */
int auth_app_by_key(PGconn *c, const char *label, const char *key, const char *secret_sha,
                    struct auth_app *out);

/* Drops every cached credential (tests). */
void auth_cache_clear(void);

#endif
