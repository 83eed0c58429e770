/* viewer_tokens.c — viewer token format, the node's token service
 * (key, revocation set, usage batching) and the API-8 endpoints.
 * See viewer_tokens.h for the format and the propagation rules. */
#include "api/viewer_tokens.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/http_server.h"
#include "api/router.h"
#include "api/viewer_common.h"
#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

/* base64url('{"alg":"HS256","typ":"JWT"}') — the only header accepted. */
static const char token_header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
#define SIG_B64_LEN 43 /* 32 bytes, base64url without padding */

static const char *const role_names[] = {"NONE", "STUDENT", "MODERATOR", "TEACHER", "ADMIN"};

enum viewer_role viewer_role_parse(const char *s)
{
    if (!s)
        return VIEWER_ROLE_NONE;
    for (int i = VIEWER_ROLE_STUDENT; i <= VIEWER_ROLE_ADMIN; i++)
        if (strcmp(s, role_names[i]) == 0)
            return (enum viewer_role)i;
    return VIEWER_ROLE_NONE;
}

const char *viewer_role_name(enum viewer_role r)
{
    return (r >= VIEWER_ROLE_NONE && r <= VIEWER_ROLE_ADMIN) ? role_names[r] : "NONE";
}

static bool jti_valid(const char *s, size_t n)
{
    if (n < 1 || n > VIEWER_JTI_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* base64url(HMAC-SHA256(key, data)) into out[SIG_B64_LEN + 1]. */
static void sign_b64(const uint8_t *key, size_t keylen, const char *data, size_t len,
                     char out[SIG_B64_LEN + 1])
{
    uint8_t mac[32];
    secure_hmac_sha256(key, keylen, data, len, mac);
    secure_base64url(mac, sizeof mac, out);
    OPENSSL_cleanse(mac, sizeof mac);
}

int viewer_token_sign(const uint8_t *key, size_t keylen, const struct viewer_claims *c, char *out,
                      size_t outcap)
{
    if (!jti_valid(c->jti, strlen(c->jti)) || c->tid <= 0 || c->room_id <= 0 || c->app_id <= 0 ||
        c->role < VIEWER_ROLE_STUDENT || c->role > VIEWER_ROLE_ADMIN ||
        strlen(c->uid) > VIEWER_UID_MAX || c->exp <= 0)
        return -1;
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:s}", "jti", c->jti, "tid", (json_int_t)c->tid,
                          "room", (json_int_t)c->room_id, "app", (json_int_t)c->app_id, "role",
                          viewer_role_name(c->role));
    if (!o)
        return -1;
    if (c->uid[0]) {
        json_t *u = json_string(c->uid); /* NULL when not UTF-8 */
        if (!u) {
            json_decref(o);
            return -1;
        }
        json_object_set_new(o, "uid", u);
    }
    json_object_set_new(o, "exp", json_integer((json_int_t)c->exp));
    char *payload = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!payload)
        return -1;
    size_t plen = strlen(payload);
    size_t hlen = sizeof token_header_b64 - 1;
    size_t b64len = 4 * ((plen + 2) / 3); /* upper bound without padding */
    int rc = -1;
    if (hlen + 1 + b64len + 1 + SIG_B64_LEN + 1 > outcap)
        goto out;
    memcpy(out, token_header_b64, hlen);
    out[hlen] = '.';
    secure_base64url((const uint8_t *)payload, plen, out + hlen + 1);
    size_t signed_len = strlen(out);
    out[signed_len] = '.';
    sign_b64(key, keylen, out, signed_len, out + signed_len + 1);
    rc = (int)strlen(out);
out:
    free(payload);
    return rc;
}

/* Copies an integer member > 0 (or >= 0 when allow_zero). */
static bool claim_int(json_t *o, const char *name, int64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

enum viewer_token_status viewer_token_verify(const uint8_t *key, size_t keylen, const char *token,
                                             size_t len, int64_t now, struct viewer_claims *out)
{
    memset(out, 0, sizeof *out);
    if (!token || len == 0 || len >= VIEWER_TOKEN_MAX)
        return VIEWER_TOKEN_MALFORMED;
    const char *dot1 = memchr(token, '.', len);
    if (!dot1)
        return VIEWER_TOKEN_MALFORMED;
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return VIEWER_TOKEN_MALFORMED;
    size_t hlen = (size_t)(dot1 - token);
    if (hlen != sizeof token_header_b64 - 1 || memcmp(token, token_header_b64, hlen) != 0)
        return VIEWER_TOKEN_MALFORMED;
    const char *sig = dot2 + 1;
    size_t siglen = len - (size_t)(sig - token);
    if (siglen != SIG_B64_LEN)
        return VIEWER_TOKEN_MALFORMED;
    /* The MAC is compared in its encoded form: one canonical spelling only. */
    char want[SIG_B64_LEN + 1];
    sign_b64(key, keylen, token, (size_t)(dot2 - token), want);
    if (CRYPTO_memcmp(want, sig, SIG_B64_LEN) != 0)
        return VIEWER_TOKEN_BAD_SIGNATURE;

    /* Signed by us: now parse the claims. */
    const char *p64 = dot1 + 1;
    size_t p64len = (size_t)(dot2 - p64);
    uint8_t payload[VIEWER_TOKEN_MAX];
    int plen = secure_base64url_decode(p64, p64len, payload, sizeof payload);
    if (plen <= 0)
        return VIEWER_TOKEN_MALFORMED;
    json_error_t jerr;
    json_t *o = json_loadb((const char *)payload, (size_t)plen, JSON_REJECT_DUPLICATES, &jerr);
    enum viewer_token_status st = VIEWER_TOKEN_MALFORMED;
    if (!json_is_object(o))
        goto out;
    json_t *jti = json_object_get(o, "jti");
    json_t *role = json_object_get(o, "role");
    json_t *uid = json_object_get(o, "uid");
    if (!json_is_string(jti) || !jti_valid(json_string_value(jti), json_string_length(jti)))
        goto out;
    if (!json_is_string(role) || viewer_role_parse(json_string_value(role)) == VIEWER_ROLE_NONE)
        goto out;
    if (uid && (!json_is_string(uid) || json_string_length(uid) > VIEWER_UID_MAX ||
                strlen(json_string_value(uid)) != json_string_length(uid)))
        goto out;
    if (!claim_int(o, "tid", &out->tid) || !claim_int(o, "room", &out->room_id) ||
        !claim_int(o, "app", &out->app_id) || !claim_int(o, "exp", &out->exp))
        goto out;
    memcpy(out->jti, json_string_value(jti), json_string_length(jti) + 1);
    out->role = viewer_role_parse(json_string_value(role));
    if (uid)
        memcpy(out->uid, json_string_value(uid), json_string_length(uid) + 1);
    st = out->exp > now ? VIEWER_TOKEN_OK : VIEWER_TOKEN_EXPIRED;
out:
    json_decref(o);
    if (st == VIEWER_TOKEN_MALFORMED)
        memset(out, 0, sizeof *out);
    return st;
}

/* ---- the node's token service -------------------------------------------- */

#define REVOKED_MAX 1000000  /* revoked, unexpired tokens remembered */
#define USAGE_MAX 200000     /* tokens whose use is tracked */
#define USAGE_EVERY_SEC 30   /* lastUsage written at most this often per token */
#define POLL_EVERY_TICKS 2   /* revocation poll: every 2 s */
#define FLUSH_EVERY_TICKS 5  /* usage flush: every 5 s */
#define REVOKE_OVERLAP_SEC 10 /* re-read this much before the last poll (late commits) */

struct revoked_entry {
    struct vmap_entry e; /* key = vhash_str(jti) */
    int64_t exp;
    char jti[VIEWER_JTI_LEN + 1];
};

struct usage_entry {
    struct vmap_entry e; /* key = tid */
    int64_t exp;
    int64_t last_used;
    int64_t last_flushed;
    bool dirty;
};

static struct {
    pthread_mutex_t mu;
    bool started;
    uint8_t key[256];
    size_t keylen;
    struct vmap revoked;
    struct vmap usage;
    struct api_ctx *ctx;
    struct event *tick;
    unsigned ticks;
    atomic_bool poll_busy;
    atomic_bool flush_busy;
    long long since_us; /* DB clock of the last revocation poll */
} T = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void free_entry(struct vmap_entry *e) { free(e); }

static int64_t now_sec(void) { return (int64_t)time(NULL); }

static bool revoked_locked(const char *jti)
{
    uint64_t k = vhash_str(jti, strlen(jti));
    for (struct vmap_entry *e = vmap_get(&T.revoked, k); e; e = vmap_next_same(e))
        if (strcmp(((struct revoked_entry *)e)->jti, jti) == 0)
            return true;
    return false;
}

static void revoke_locked(const char *jti, int64_t exp)
{
    if (!jti_valid(jti, strlen(jti)) || revoked_locked(jti))
        return;
    struct revoked_entry *x = calloc(1, sizeof *x);
    if (!x)
        return;
    x->e.key = vhash_str(jti, strlen(jti));
    x->exp = exp;
    snprintf(x->jti, sizeof x->jti, "%s", jti);
    if (vmap_put(&T.revoked, &x->e) != 0) {
        log_error("tokens: revoked set full (%zu); refusing to forget a revocation is not "
                  "possible, raise REVOKED_MAX", T.revoked.count);
        free(x);
    }
}

void viewer_tokens_revoke_local(const char *jti, int64_t exp)
{
    pthread_mutex_lock(&T.mu);
    if (T.started)
        revoke_locked(jti, exp);
    pthread_mutex_unlock(&T.mu);
}

bool viewer_tokens_is_revoked(const char *jti)
{
    pthread_mutex_lock(&T.mu);
    bool r = T.started && revoked_locked(jti);
    pthread_mutex_unlock(&T.mu);
    return r;
}

static bool expired_revoked(struct vmap_entry *e, void *arg)
{
    return ((struct revoked_entry *)e)->exp < *(int64_t *)arg;
}

static bool expired_usage(struct vmap_entry *e, void *arg)
{
    struct usage_entry *u = (struct usage_entry *)e;
    return !u->dirty && u->exp < *(int64_t *)arg;
}

/* Reads revocations since `since_us` (DB clock, minus the overlap) into the
 * set; returns the DB clock of this read, or -1. Runs on a db thread or at
 * start-up. */
static long long load_revoked(PGconn *c, long long since_us)
{
    char since[32];
    snprintf(since, sizeof since, "%lld", since_us - (long long)REVOKE_OVERLAP_SEC * 1000000);
    const char *params[1] = {since};
    PGresult *now = db_exec(c, "tokens clock", "SELECT (extract(epoch FROM now()) * 1000000)::bigint",
                            0, NULL, NULL);
    PGresult *res = db_exec(c, "tokens revoked",
                            "SELECT jti, floor(extract(epoch FROM expires_at))::bigint"
                            " FROM viewer_tokens"
                            " WHERE revoked_at IS NOT NULL AND expires_at > now()"
                            " AND ($1::bigint <= 0 OR revoked_at >= to_timestamp($1::bigint / 1e6))",
                            1, params, NULL);
    long long at = -1;
    if (now && res) {
        at = db_get_i64(now, 0, 0);
        pthread_mutex_lock(&T.mu);
        for (int i = 0; i < PQntuples(res); i++)
            revoke_locked(db_get_str(res, i, 0), db_get_i64(res, i, 1));
        int64_t t = now_sec();
        vmap_sweep(&T.revoked, expired_revoked, &t, free_entry);
        pthread_mutex_unlock(&T.mu);
    }
    PQclear(now);
    PQclear(res);
    return at;
}

static void poll_work(PGconn *c, void *arg)
{
    (void)arg;
    long long at = load_revoked(c, T.since_us);
    if (at > 0)
        T.since_us = at;
    atomic_store(&T.poll_busy, false);
}

/* The batched lastUsage write: payload is a JSON array [{"id":N,"t":unix}]. */
static void flush_work(PGconn *c, void *arg)
{
    char *json = arg;
    const char *params[1] = {json};
    PGresult *res = db_exec(c, "tokens usage",
                            "UPDATE viewer_tokens t SET last_usage = to_timestamp((x->>'t')::bigint)"
                            " FROM jsonb_array_elements($1::jsonb) x"
                            " WHERE t.id = (x->>'id')::bigint"
                            " AND (t.last_usage IS NULL OR t.last_usage < to_timestamp((x->>'t')::bigint))",
                            1, params, NULL);
    PQclear(res);
    free(json);
    atomic_store(&T.flush_busy, false);
}

/* Collects the dirty usage entries as JSON text (NULL when none). */
static char *collect_usage(void)
{
    json_t *arr = json_array();
    int64_t now = now_sec();
    pthread_mutex_lock(&T.mu);
    for (size_t i = 0; i < T.usage.nbuckets; i++)
        for (struct vmap_entry *e = T.usage.buckets[i]; e; e = e->next) {
            struct usage_entry *u = (struct usage_entry *)e;
            if (!u->dirty)
                continue;
            json_array_append_new(arr, json_pack("{s:I, s:I}", "id", (json_int_t)u->e.key, "t",
                                                 (json_int_t)u->last_used));
            u->dirty = false;
            u->last_flushed = now;
        }
    vmap_sweep(&T.usage, expired_usage, &now, free_entry);
    pthread_mutex_unlock(&T.mu);
    char *text = json_array_size(arr) ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return text;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    T.ticks++;
    if (T.ticks % POLL_EVERY_TICKS == 0 && !atomic_exchange(&T.poll_busy, true)) {
        if (db_pool_submit(T.ctx->db, NULL, poll_work, NULL, NULL) != 0)
            atomic_store(&T.poll_busy, false);
    }
    if (T.ticks % FLUSH_EVERY_TICKS == 0 && !atomic_exchange(&T.flush_busy, true)) {
        char *json = collect_usage();
        if (!json || db_pool_submit(T.ctx->db, NULL, flush_work, NULL, json) != 0) {
            free(json);
            atomic_store(&T.flush_busy, false);
        }
    }
}

static void note_use(const struct viewer_claims *c)
{
    int64_t now = now_sec();
    pthread_mutex_lock(&T.mu);
    struct usage_entry *u = (struct usage_entry *)vmap_get(&T.usage, (uint64_t)c->tid);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (u) {
            u->e.key = (uint64_t)c->tid;
            u->exp = c->exp;
            if (vmap_put(&T.usage, &u->e) != 0) {
                free(u);
                u = NULL;
            }
        }
    }
    if (u && now - u->last_flushed >= USAGE_EVERY_SEC) {
        u->dirty = true;
        u->last_used = now;
    }
    pthread_mutex_unlock(&T.mu);
}

/* The signing key: config token_secret, else the shared DB row. */
static int load_key(const struct config *cfg, PGconn *c, char *err, size_t errlen)
{
    if (cfg->token_secret[0]) {
        size_t n = strlen(cfg->token_secret);
        if (n < 16) {
            snprintf(err, errlen, "token_secret must be at least 16 characters");
            return -1;
        }
        if (n > sizeof T.key)
            n = sizeof T.key;
        memcpy(T.key, cfg->token_secret, n);
        T.keylen = n;
        return 0;
    }
    char fresh[49];
    if (secure_random_alnum(fresh, 48) != 0) {
        snprintf(err, errlen, "tokens: no randomness for the token secret");
        return -1;
    }
    const char *params[1] = {fresh};
    PGresult *ins = db_exec(c, "token secret",
                            "INSERT INTO cluster_secrets (name, value) VALUES ('viewer_token', $1)"
                            " ON CONFLICT (name) DO NOTHING",
                            1, params, NULL);
    OPENSSL_cleanse(fresh, sizeof fresh);
    PQclear(ins);
    PGresult *res = db_exec(c, "token secret",
                            "SELECT value FROM cluster_secrets WHERE name = 'viewer_token'", 0, NULL,
                            NULL);
    const char *v = res && PQntuples(res) == 1 ? db_get_str(res, 0, 0) : NULL;
    if (!v || strlen(v) < 16) {
        snprintf(err, errlen, "tokens: cannot read cluster_secrets 'viewer_token'");
        PQclear(res);
        return -1;
    }
    size_t n = strlen(v) < sizeof T.key ? strlen(v) : sizeof T.key;
    memcpy(T.key, v, n);
    T.keylen = n;
    PQclear(res);
    return 0;
}

int viewer_tokens_start(struct api_ctx *ctx, PGconn *c, char *err, size_t errlen)
{
    if (T.started) {
        snprintf(err, errlen, "tokens: already started");
        return -1;
    }
    if (vmap_init(&T.revoked, REVOKED_MAX) != 0 || vmap_init(&T.usage, USAGE_MAX) != 0) {
        snprintf(err, errlen, "tokens: out of memory");
        goto fail;
    }
    if (load_key(ctx->cfg, c, err, errlen) != 0)
        goto fail;
    pthread_mutex_lock(&T.mu);
    T.started = true;
    pthread_mutex_unlock(&T.mu);
    long long at = load_revoked(c, 0);
    if (at < 0) {
        snprintf(err, errlen, "tokens: cannot read revoked tokens");
        goto fail;
    }
    T.since_us = at;
    T.ctx = ctx;
    T.tick = event_new(loop_base(ctx->http_loop), -1, EV_PERSIST, on_tick, NULL);
    struct timeval one = {1, 0};
    if (!T.tick || event_add(T.tick, &one) != 0) {
        snprintf(err, errlen, "tokens: cannot start the timer");
        goto fail;
    }
    log_info("tokens: started key=%s revoked=%zu", ctx->cfg->token_secret[0] ? "config" : "database",
             T.revoked.count);
    return 0;
fail:
    if (T.tick)
        event_free(T.tick);
    T.tick = NULL;
    pthread_mutex_lock(&T.mu);
    T.started = false;
    pthread_mutex_unlock(&T.mu);
    vmap_free(&T.revoked, free_entry);
    vmap_free(&T.usage, free_entry);
    return -1;
}

void viewer_tokens_stop_timer(void)
{
    if (T.tick)
        event_free(T.tick);
    T.tick = NULL;
}

void viewer_tokens_stop(PGconn *c)
{
    viewer_tokens_stop_timer();
    if (!T.started)
        return;
    char *json = collect_usage();
    if (json && c) {
        atomic_store(&T.flush_busy, true);
        flush_work(c, json); /* frees json */
    } else {
        free(json);
    }
    pthread_mutex_lock(&T.mu);
    T.started = false;
    vmap_free(&T.revoked, free_entry);
    vmap_free(&T.usage, free_entry);
    OPENSSL_cleanse(T.key, sizeof T.key);
    T.keylen = 0;
    pthread_mutex_unlock(&T.mu);
}

int viewer_tokens_sign(const struct viewer_claims *c, char *out, size_t outcap)
{
    if (!T.started)
        return -1;
    return viewer_token_sign(T.key, T.keylen, c, out, outcap);
}

int viewer_tokens_check(const char *token, struct viewer_claims *out, const char **error_code)
{
    struct viewer_claims tmp;
    struct viewer_claims *c = out ? out : &tmp;
    const char *code = NULL;
    int status = 0;
    if (!token || !*token) {
        memset(c, 0, sizeof *c);
        status = 401;
        code = "TOKEN_REQUIRED";
        goto out;
    }
    if (!T.started) {
        memset(c, 0, sizeof *c);
        status = 401;
        code = "TOKEN_INVALID";
        goto out;
    }
    switch (viewer_token_verify(T.key, T.keylen, token, strlen(token), now_sec(), c)) {
    case VIEWER_TOKEN_OK:
        break;
    case VIEWER_TOKEN_EXPIRED:
        status = 401;
        code = "TOKEN_EXPIRED";
        goto out;
    default:
        status = 401;
        code = "TOKEN_INVALID";
        goto out;
    }
    if (viewer_tokens_is_revoked(c->jti)) {
        status = 403;
        code = "TOKEN_REVOKED";
    }
out:
    if (error_code)
        *error_code = code;
    return status;
}

int viewer_token_authorize(const char *token, int64_t room_id, enum viewer_role min_role,
                           struct viewer_claims *out, const char **error_code)
{
    struct viewer_claims tmp;
    struct viewer_claims *c = out ? out : &tmp;
    int st = viewer_tokens_check(token, c, error_code);
    if (st != 0)
        return st;
    if (c->room_id != room_id) {
        if (error_code)
            *error_code = "TOKEN_ROOM_MISMATCH";
        return 403;
    }
    if (c->role < min_role) {
        if (error_code)
            *error_code = "INSUFFICIENT_ROLE";
        return 403;
    }
    note_use(c);
    return 0;
}

void viewer_tokens_urls(const struct api_ctx *ctx, int64_t room_id, const char *token,
                        char *play_url, size_t play_len, char *iframe_url, size_t iframe_len)
{
    /* Tokens are base64url + '.': nothing to percent-encode. */
    snprintf(play_url, play_len, "%s/hls/rooms/%lld/index.m3u8?token=%s", ctx->public_url,
             (long long)room_id, token);
    snprintf(iframe_url, iframe_len, "%s/play/%lld?token=%s", ctx->public_url, (long long)room_id,
             token);
}

/* ---- endpoints ------------------------------------------------------------ */

#define TOKEN_COLUMNS                                                                              \
    "t.id, t.jti, t.role, t.uid, t.name, t.photo_url,"                                             \
    " floor(extract(epoch FROM t.expires_at))::bigint, " VSQL_ISO("t.expires_at") ","              \
    " " VSQL_ISO("t.revoked_at") ", " VSQL_ISO("t.last_usage") ", " VSQL_ISO("t.created_at") ","   \
    " t.access_code_id, t.app_id, t.video_room_id, (t.expires_at <= now())"

static void set_str_or_null(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v ? json_string(v) : json_null());
}

/* One token row (TOKEN_COLUMNS) as the API's JSON, with the token re-signed
 * from its claims (the format is deterministic). */
static json_t *token_json(const struct api_ctx *ctx, PGresult *res, int i)
{
    struct viewer_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.jti, sizeof c.jti, "%s", db_get_str(res, i, 1));
    c.tid = db_get_i64(res, i, 0);
    c.role = viewer_role_parse(db_get_str(res, i, 2));
    if (db_get_str(res, i, 3))
        snprintf(c.uid, sizeof c.uid, "%s", db_get_str(res, i, 3));
    c.exp = db_get_i64(res, i, 6);
    c.app_id = db_get_i64(res, i, 12);
    c.room_id = db_get_i64(res, i, 13);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(c.tid));
    json_object_set_new(o, "roomId", json_integer(c.room_id));
    json_object_set_new(o, "role", json_string(viewer_role_name(c.role)));
    set_str_or_null(o, "uid", db_get_str(res, i, 3));
    set_str_or_null(o, "name", db_get_str(res, i, 4));
    set_str_or_null(o, "photoURL", db_get_str(res, i, 5));
    char token[VIEWER_TOKEN_MAX];
    if (viewer_tokens_sign(&c, token, sizeof token) > 0) {
        char play[CONFIG_STR_MAX + VIEWER_TOKEN_MAX + 64], iframe[CONFIG_STR_MAX + VIEWER_TOKEN_MAX + 64];
        viewer_tokens_urls(ctx, c.room_id, token, play, sizeof play, iframe, sizeof iframe);
        json_object_set_new(o, "token", json_string(token));
        json_object_set_new(o, "playUrl", json_string(play));
        json_object_set_new(o, "iframeUrl", json_string(iframe));
    }
    const char *revoked = db_get_str(res, i, 8);
    bool expired = db_get_str(res, i, 14) && db_get_str(res, i, 14)[0] == 't';
    json_object_set_new(o, "status",
                        json_string(revoked ? "REVOKED" : expired ? "EXPIRED" : "ACTIVE"));
    set_str_or_null(o, "expiresAt", db_get_str(res, i, 7));
    set_str_or_null(o, "revokedAt", revoked);
    set_str_or_null(o, "lastUsage", db_get_str(res, i, 9));
    set_str_or_null(o, "createdAt", db_get_str(res, i, 10));
    json_object_set_new(o, "accessCodeId",
                        db_get_str(res, i, 11) ? json_integer(db_get_i64(res, i, 11)) : json_null());
    return o;
}

json_t *viewer_tokens_create(PGconn *c, const struct api_ctx *ctx, int64_t app_id, int64_t room_id,
                             enum viewer_role role, const char *uid, const char *name,
                             const char *photo_url, long long ttl_sec, int64_t access_code_id)
{
    char jti[VIEWER_JTI_LEN + 1];
    if (secure_random_alnum(jti, VIEWER_JTI_LEN) != 0)
        return NULL;
    char app[24], room[24], ttl[24], code[24];
    snprintf(app, sizeof app, "%lld", (long long)app_id);
    snprintf(room, sizeof room, "%lld", (long long)room_id);
    snprintf(ttl, sizeof ttl, "%lld", ttl_sec);
    snprintf(code, sizeof code, "%lld", (long long)access_code_id);
    const char *params[9] = {app, room, viewer_role_name(role), uid, name, photo_url, jti, ttl,
                             access_code_id > 0 ? code : NULL};
    PGresult *res = db_exec(c, "token create",
                            "INSERT INTO viewer_tokens AS t (app_id, video_room_id, role, uid, name,"
                            " photo_url, jti, expires_at, access_code_id)"
                            " VALUES ($1, $2, $3, $4, $5, $6, $7,"
                            " date_trunc('second', now()) + make_interval(secs => $8::bigint), $9)"
                            " RETURNING " TOKEN_COLUMNS,
                            9, params, NULL);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return NULL;
    }
    json_t *o = token_json(ctx, res, 0);
    PQclear(res);
    if (!json_object_get(o, "token")) {
        json_decref(o);
        return NULL;
    }
    return o;
}

struct create_args {
    enum viewer_role role;
    long long ttl;
    const char *uid, *name, *photo; /* point into j->in */
};

static void create_work(PGconn *c, struct vjob *j)
{
    struct create_args *a = j->user;
    json_t *o = viewer_tokens_create(c, j->r->ctx, j->app_id, j->room_id, a->role, a->uid, a->name,
                                     a->photo, a->ttl, 0);
    if (!o) {
        vjob_fail(j, 500, "INTERNAL_ERROR", "token could not be created");
        return;
    }
    j->status = 201;
    j->out = json_pack("{s:b, s:o}", "success", 1, "data", o);
}

static void free_user(struct vjob *j)
{
    free(j->user);
    j->user = NULL;
}

static void handle_create(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j)
        return;
    j->auth = VJOB_AUTH_APP;
    j->bearer_min_role = VIEWER_ROLE_ADMIN;
    j->room_id = vparse_id(route_param(params, "id"));
    j->done = free_user;
    if (!j->room_id) {
        vjob_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
        vjob_reply(j);
        return;
    }
    j->in = api_read_json_object(r);
    if (!j->in) { /* replied */
        free(j);
        return;
    }
    struct create_args *a = calloc(1, sizeof *a);
    j->user = a;
    if (!a) {
        vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        vjob_reply(j);
        return;
    }
    const char *role = NULL;
    if (vjson_opt_string(j, "role", 32, &role) != 0 ||
        vjson_opt_string(j, "uid", VIEWER_UID_MAX, &a->uid) != 0 ||
        vjson_opt_string(j, "name", 500, &a->name) != 0 ||
        vjson_opt_string(j, "photoURL", 2000, &a->photo) != 0 ||
        vjson_opt_int(j, "expiresInSec", 60, VIEWER_TOKEN_MAX_TTL, VIEWER_TOKEN_DEFAULT_TTL,
                      &a->ttl) != 0) {
        free_user(j);
        vjob_reply(j);
        return;
    }
    a->role = viewer_role_parse(role);
    if (a->role == VIEWER_ROLE_NONE) {
        free_user(j);
        vjob_fail_field(j, 400, "INVALID_PARAMETER", "role",
                  "role must be one of STUDENT, MODERATOR, TEACHER, ADMIN");
        vjob_reply(j);
        return;
    }
    j->work = create_work;
    vjob_submit(j);
}

static const char *const list_sorts[] = {"CREATED_AT_DESC", "CREATED_AT_ASC", NULL};

static json_t *list_row(struct vjob *j, PGresult *res, int i)
{
    return token_json(j->r->ctx, res, i);
}

static void list_work(PGconn *c, struct vjob *j)
{
    vpage_room_list(c, j, j->user, "tokens",
                    "SELECT count(*) FROM viewer_tokens WHERE video_room_id = $1",
                    "SELECT " TOKEN_COLUMNS " FROM viewer_tokens t WHERE t.video_room_id = $1"
                    " ORDER BY t.created_at ASC, t.id ASC LIMIT $2 OFFSET $3",
                    "SELECT " TOKEN_COLUMNS " FROM viewer_tokens t WHERE t.video_room_id = $1"
                    " ORDER BY t.created_at DESC, t.id DESC LIMIT $2 OFFSET $3",
                    list_row);
}

static void handle_list(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j)
        return;
    j->auth = VJOB_AUTH_APP;
    j->bearer_min_role = VIEWER_ROLE_ADMIN;
    j->room_id = vparse_id(route_param(params, "id"));
    j->done = free_user;
    struct vpage *p = calloc(1, sizeof *p);
    j->user = p;
    if (!j->room_id || !p || vpage_parse(j, list_sorts, p) != 0) {
        if (!j->room_id)
            vjob_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
        else if (!p)
            vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        free_user(j);
        vjob_reply(j);
        return;
    }
    j->work = list_work;
    vjob_submit(j);
}

static void delete_work(PGconn *c, struct vjob *j)
{
    int64_t *token_id = j->user;
    char room[24], tid[24], actor[64];
    snprintf(room, sizeof room, "%lld", (long long)j->room_id);
    snprintf(tid, sizeof tid, "%lld", (long long)*token_id);
    if (j->by_token)
        snprintf(actor, sizeof actor, "token:%lld", (long long)j->claims.tid);
    else
        snprintf(actor, sizeof actor, "api:app:%lld", (long long)j->app_id);
    const char *params[3] = {tid, room, actor};
    /* Revoke and record participant_removed atomically (SPEC API-10). */
    PGresult *res = db_exec(c, "token revoke",
                            "WITH t AS (UPDATE viewer_tokens SET revoked_at = now()"
                            "  WHERE id = $1 AND video_room_id = $2 AND revoked_at IS NULL"
                            "  RETURNING id, jti, uid, name, role, app_id, video_room_id, expires_at),"
                            " e AS (INSERT INTO events (app_id, video_room_id, type, actor, data)"
                            "  SELECT app_id, video_room_id, 'participant_removed', $3,"
                            "   jsonb_strip_nulls(jsonb_build_object('tokenId', id, 'uid', uid,"
                            "    'name', name, 'role', role))"
                            "  FROM t)"
                            " SELECT jti, floor(extract(epoch FROM expires_at))::bigint FROM t",
                            3, params, NULL);
    if (!res) {
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
        return;
    }
    if (PQntuples(res) == 1) {
        viewer_tokens_revoke_local(db_get_str(res, 0, 0), db_get_i64(res, 0, 1));
        log_info("tokens: revoked token_id=%lld room=%lld by=%s", (long long)*token_id,
                 (long long)j->room_id, actor);
        j->status = 204;
        PQclear(res);
        return;
    }
    PQclear(res);
    /* Already revoked is success (idempotent DELETE); unknown is 404. */
    PGresult *ex = db_exec(c, "token exists",
                           "SELECT 1 FROM viewer_tokens WHERE id = $1 AND video_room_id = $2", 2,
                           params, NULL);
    if (ex && PQntuples(ex) == 1)
        j->status = 204;
    else
        vjob_fail(j, 404, "TOKEN_NOT_FOUND", "token %lld not found in this room",
                  (long long)*token_id);
    PQclear(ex);
}

static void handle_delete(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j)
        return;
    j->auth = VJOB_AUTH_APP;
    j->bearer_min_role = VIEWER_ROLE_ADMIN;
    j->room_id = vparse_id(route_param(params, "id"));
    j->done = free_user;
    int64_t tid = vparse_id(route_param(params, "tokenId"));
    int64_t *p = malloc(sizeof *p);
    if (!j->room_id || !tid || !p) {
        free(p);
        if (!p)
            vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        else if (!j->room_id)
            vjob_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
        else
            vjob_fail(j, 404, "TOKEN_NOT_FOUND", "token not found");
        vjob_reply(j);
        return;
    }
    *p = tid;
    j->user = p;
    j->work = delete_work;
    vjob_submit(j);
}

void viewer_tokens_register_routes(struct router *r)
{
    router_add(r, "POST", "/v2/apps/me/video-rooms/{id}/tokens", handle_create);
    router_add(r, "GET", "/v2/apps/me/video-rooms/{id}/tokens", handle_list);
    router_add(r, "DELETE", "/v2/apps/me/video-rooms/{id}/tokens/{tokenId}", handle_delete);
}
