/* viewer_common.h — small pieces shared by the viewer-side modules
 * (viewer_tokens, viewer_access, access_codes, events_api, player):
 *
 *   - vmap: an intrusive chained hash table keyed by uint64 (room ids, token
 *     ids, hashed session keys) with a ceiling on its size;
 *   - vrate: a fixed-window rate limiter keyed by uint64 (per client IP);
 *   - vjob: the "authenticate, check the room, run SQL on a db thread, reply
 *     on the http loop" pattern of the admin endpoints (SPEC §6: HTTP Basic
 *     appApiKey:appApiSecret, or a viewer token as Bearer within its role);
 *   - the seed's paging shape (SPEC §6: content, pageable, totalElements …).
 *
 * Nothing here is thread-safe by itself: callers hold their own locks. */
#ifndef API_VIEWER_COMMON_H
#define API_VIEWER_COMMON_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/viewer_tokens.h"

struct api_request;

/* ---- vmap ---------------------------------------------------------------- */

/* Embed as the FIRST member of the entry struct. */
struct vmap_entry {
    uint64_t key;
    struct vmap_entry *next;
};

struct vmap {
    struct vmap_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    size_t max;      /* vmap_put refuses beyond this many entries */
};

/* 0 or -1 (no memory). max = ceiling on entries. */
int vmap_init(struct vmap *m, size_t max);
/* Frees the bucket array; each entry is passed to free_entry (may be NULL). */
void vmap_free(struct vmap *m, void (*free_entry)(struct vmap_entry *e));
/* First entry with key, or NULL. Later ones with the same key: vmap_next_same. */
struct vmap_entry *vmap_get(const struct vmap *m, uint64_t key);
struct vmap_entry *vmap_next_same(const struct vmap_entry *e);
/* Inserts (no duplicate check; the map does not own e until vmap_free).
 * 0, or -1 when the map is at its ceiling or cannot grow. */
int vmap_put(struct vmap *m, struct vmap_entry *e);
/* Unlinks e (which must be in the map); does not free it. */
void vmap_remove(struct vmap *m, struct vmap_entry *e);
/* Calls fn on every entry; when fn returns true the entry is unlinked and
 * passed to free_entry (if non-NULL). Returns how many were removed. */
size_t vmap_sweep(struct vmap *m, bool (*fn)(struct vmap_entry *e, void *arg), void *arg,
                  void (*free_entry)(struct vmap_entry *e));

/* 64-bit FNV-1a (for keys that are not secret: jti, ids). */
uint64_t vhash_str(const char *s, size_t len);

/* ---- vrate --------------------------------------------------------------- */

/* At most `limit` hits per key in each window of `window_ms`. */
struct vrate {
    struct vmap map;
    int limit;
    long long window_ms;
};
int vrate_init(struct vrate *r, int limit, long long window_ms, size_t max_keys);
void vrate_free(struct vrate *r);
/* Counts a hit. true = allowed; false = over the limit (or the table is full
 * of fresh keys: refusing then is the safe choice). *retry_after_sec gets the
 * seconds until the key's window resets. */
bool vrate_hit(struct vrate *r, uint64_t key, long long now_ms, int *retry_after_sec);

/* ---- vjob ---------------------------------------------------------------- */

struct vjob;
typedef void (*vjob_work_fn)(PGconn *c, struct vjob *j);
typedef void (*vjob_done_fn)(struct vjob *j);

enum vjob_auth {
    VJOB_AUTH_NONE = 0, /* public endpoint */
    VJOB_AUTH_APP,      /* Basic app credentials (or Bearer, see bearer_min_role) */
};

struct vjob {
    struct api_request *r;
    /* --- set by the handler before vjob_submit --- */
    enum vjob_auth auth;
    enum viewer_role bearer_min_role; /* 0 = Bearer tokens not accepted */
    int64_t room_id;                  /* > 0: the room must exist in the caller's app */
    json_t *in;                       /* request body or NULL; owned, freed with the job */
    vjob_work_fn work;                /* runs on a db thread after auth + room checks */
    vjob_done_fn done;                /* optional: on the http loop before the reply */
    void *user;                       /* handler's own data (freed by the handler's done) */
    bool detached;                    /* set by done: it took the request over (streams); no reply */
    /* --- filled by the framework --- */
    char basic_user[128], basic_pass[160];
    bool has_basic;
    bool by_token;                    /* authorized by a Bearer viewer token */
    struct viewer_claims claims;      /* when by_token */
    int64_t app_id;                   /* authenticated app */
    /* --- result, set by work --- */
    int status;                       /* HTTP status; 0 = 500 */
    json_t *out;                      /* reply body (owned) */
    char code[64];                    /* errorCode when out == NULL and status >= 400 */
    char field[64];                   /* the offending parameter ("" = none) */
    char msg[256];
    char retry_after[16];             /* Retry-After header when non-empty */
};

/* A zeroed job for r (NULL when out of memory: then the request got a 503). */
struct vjob *vjob_new(struct api_request *r);
/* Runs the job. On any refusal (bad auth, queue full) `done` still runs
 * (with the error status), the reply is sent and the job freed. The job is
 * always consumed. */
void vjob_submit(struct vjob *j);
/* Sets an error result (work functions and handlers). */
void vjob_fail(struct vjob *j, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same naming the offending field: {"errorCode", "message", "field"}. */
void vjob_fail_field(struct vjob *j, int status, const char *code, const char *field, const char *fmt,
                     ...) __attribute__((format(printf, 5, 6)));
/* Replies with the job's result now and frees it (handlers that answer
 * without the database, e.g. a validation error before vjob_submit). */
void vjob_reply(struct vjob *j);

/* Looks up the app by Basic credentials (apps.api_key, sha256(secret)
 * compared in constant time). app id, or 0 when unknown / wrong. */
int64_t vjob_auth_app(PGconn *c, const char *user, const char *pass);

/* True for an ISO-8601 date-time with an explicit zone, the form SPEC §6
 * uses: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM). (PostgreSQL alone
 * would also take "tomorrow" or "epoch".) Field ranges are checked by the
 * database cast. */
bool viso8601_valid(const char *s);

/* Parses a positive decimal id ("12"); 0 when not one. */
int64_t vparse_id(const char *s);

/* ---- request / reply helpers -------------------------------------------- */

/* Optional string member: absent or null → *out = NULL, 0. Wrong type or
 * longer than maxlen bytes → vjob_fail 400 INVALID_PARAMETER, -1. */
int vjson_opt_string(struct vjob *j, const char *name, size_t maxlen, const char **out);
/* Optional integer member in [min, max]; absent → *out = def, 0. */
int vjson_opt_int(struct vjob *j, const char *name, long long min, long long max, long long def,
                  long long *out);

/* SPEC §6 paging: page (zero-based), pageSize (1..100, default 10), sortBy
 * among `sorts` (NULL-terminated; the first is the default). 0, or -1 after
 * vjob_fail 400 INVALID_PARAMETER naming the field. */
struct vpage {
    long long page, size;
    int sort; /* index into sorts */
};
int vpage_parse(struct vjob *j, const char *const *sorts, struct vpage *p);
/* Wraps content (a JSON array, stolen) in the seed's page shape. */
json_t *vpage_wrap(json_t *content, long long total, const struct vpage *p);
/* On the db thread: one page of a room's rows. count_sql and the page
 * statements take $1 = j->room_id; the page statements also $2 = LIMIT,
 * $3 = OFFSET. sort index 1 runs asc_sql, any other desc_sql. Log labels are
 * "<what> count" / "<what> list". Sets j->status 200 and j->out, or
 * vjob_fail 503 UNAVAILABLE "database error". */
typedef json_t *(*vpage_row_fn)(struct vjob *j, PGresult *res, int row);
void vpage_room_list(PGconn *c, struct vjob *j, const struct vpage *p, const char *what,
                     const char *count_sql, const char *asc_sql, const char *desc_sql,
                     vpage_row_fn row);

/* SQL expression for an ISO-8601 UTC time with microseconds (SPEC §6). */
#define VSQL_ISO(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

#endif
