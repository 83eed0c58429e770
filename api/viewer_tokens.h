/* viewer_tokens.h — viewer tokens (SPEC API-8): the token format, signing and
 * verification as pure functions; the node's revocation set and usage
 * batching; the token endpoints.
 *
 * Format: a JWT in compact serialization (RFC 7519 §3) signed with HS256
 * (RFC 7518 §3.2):
 *
 *   base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256(key, h "." c))
 *
 * base64url without padding (RFC 7515 §2). The header must be exactly
 * {"alg":"HS256","typ":"JWT"} (compared as text: no "alg":"none", no key
 * confusion). Claims: {"jti": random id, "tid": viewer_tokens.id, "room":
 * video room id, "app": app id, "role": "STUDENT"|"MODERATOR"|"TEACHER"|
 * "ADMIN", "uid": caller's user id (optional), "exp": unix seconds}.
 * Verification is an HMAC, a constant-time compare and, only after the
 * signature matched, a small JSON parse: cheap enough for every segment.
 *
 * Revocation (API-8, "effective within 10 s on every node"): DELETE sets
 * viewer_tokens.revoked_at; every node polls `revoked_at >= last - overlap`
 * every 2 s on a db job and keeps the revoked jti set in memory (entries
 * leave it once the token has expired anyway). The node that handled the
 * DELETE adds the jti at once.
 *
 * lastUsage: a use is recorded in memory; a flush every 5 s writes at most one
 * update per token per 30 s, batched in one statement. */
#ifndef API_VIEWER_TOKENS_H
#define API_VIEWER_TOKENS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct api_ctx;
struct router;

/* Roles in increasing power (SPEC API-8): STUDENT watches; MODERATOR also
 * starts/stops recordings; TEACHER also starts/ends the broadcast; ADMIN may
 * do everything for that room. */
enum viewer_role {
    VIEWER_ROLE_NONE = 0,
    VIEWER_ROLE_STUDENT = 1,
    VIEWER_ROLE_MODERATOR = 2,
    VIEWER_ROLE_TEACHER = 3,
    VIEWER_ROLE_ADMIN = 4,
};

/* "STUDENT" → VIEWER_ROLE_STUDENT (exact, upper case); NONE when unknown. */
enum viewer_role viewer_role_parse(const char *s);
/* Upper-case name; "NONE" for VIEWER_ROLE_NONE. */
const char *viewer_role_name(enum viewer_role r);

#define VIEWER_TOKEN_MAX 2048   /* longest token accepted or produced, with NUL */
#define VIEWER_JTI_LEN 22       /* random [A-Za-z0-9] characters (~131 bits) */
#define VIEWER_UID_MAX 128      /* bytes of uid carried in a token */
#define VIEWER_TOKEN_DEFAULT_TTL 3600
#define VIEWER_TOKEN_MAX_TTL (7 * 24 * 3600)

struct viewer_claims {
    char jti[VIEWER_JTI_LEN + 1];
    int64_t tid;       /* viewer_tokens.id */
    int64_t room_id;
    int64_t app_id;
    enum viewer_role role;
    char uid[VIEWER_UID_MAX + 1]; /* "" when none */
    int64_t exp;       /* unix seconds */
};

enum viewer_token_status {
    VIEWER_TOKEN_OK = 0,
    VIEWER_TOKEN_MALFORMED,     /* not three base64url parts, bad header or claims */
    VIEWER_TOKEN_BAD_SIGNATURE,
    VIEWER_TOKEN_EXPIRED,       /* exp <= now */
};

/* Writes the signed token for c into out (NUL-terminated). Returns its length,
 * or -1 when out is too small or a claim is out of range (jti not 1..22
 * alnum, uid longer than VIEWER_UID_MAX, role NONE, ids <= 0). Pure. */
int viewer_token_sign(const uint8_t *key, size_t keylen, const struct viewer_claims *c, char *out,
                      size_t outcap);
/* Checks token (len bytes, no NUL needed) and, when the signature matches,
 * fills *out. EXPIRED still fills *out. Pure (now = unix seconds). */
enum viewer_token_status viewer_token_verify(const uint8_t *key, size_t keylen, const char *token,
                                             size_t len, int64_t now, struct viewer_claims *out);

/* ---- the node's token service (thread-safe) ----------------------------- */

/* Loads the signing key (config token_secret, else the shared
 * cluster_secrets row 'viewer_token', created once) and the revoked set, using
 * the synchronous connection c; then starts the revocation poll and the usage
 * flush on ctx->http_loop. 0 or -1 with err. */
int viewer_tokens_start(struct api_ctx *ctx, PGconn *c, char *err, size_t errlen);
/* Frees the timer (any thread; waits for a running tick). */
void viewer_tokens_stop_timer(void);
/* Stops (timer included) and writes pending usage with c (may be NULL: then
 * it is dropped). */
void viewer_tokens_stop(PGconn *c);

/* Signs with the node key. -1 before viewer_tokens_start. */
int viewer_tokens_sign(const struct viewer_claims *c, char *out, size_t outcap);

/* Verifies a token for room_id with at least min_role (SPEC API-8, PKG-6):
 * signature, expiry, revocation, room, role. Returns 0 and fills *out
 * (may be NULL), or the HTTP status to refuse with — 401 (missing, malformed,
 * bad signature, expired) or 403 (revoked, another room, role too low) — and
 * sets *error_code (may be NULL) to a static errorCode string. Records the use
 * for lastUsage. This is what the room's control endpoints call with a Bearer
 * token. Never blocks. */
int viewer_token_authorize(const char *token, int64_t room_id, enum viewer_role min_role,
                           struct viewer_claims *out, const char **error_code);
/* Same without the usage record and without the room/role checks: just
 * "would this token be accepted at all" (0 / 401 / 403). */
int viewer_tokens_check(const char *token, struct viewer_claims *out, const char **error_code);
/* True when the jti is in the revoked set. */
bool viewer_tokens_is_revoked(const char *jti);
/* Adds a jti to the revoked set now (the DELETE handler on this node). */
void viewer_tokens_revoke_local(const char *jti, int64_t exp);

/* Public URLs for a token (SPEC API-8): playUrl = PUBLIC/hls/rooms/ID/index.m3u8?token=T,
 * iframeUrl = PUBLIC/play/ID?token=T. */
void viewer_tokens_urls(const struct api_ctx *ctx, int64_t room_id, const char *token,
                        char *play_url, size_t play_len, char *iframe_url, size_t iframe_len);

/* Creates a token row + signed token on a db thread (the access-code
 * exchange uses it too). Returns a JSON object {id, token, role, uid, name,
 * photoURL, playUrl, iframeUrl, expiresAt, createdAt} or NULL (logged). */
json_t *viewer_tokens_create(PGconn *c, const struct api_ctx *ctx, int64_t app_id,
                                    int64_t room_id, enum viewer_role role, const char *uid,
                                    const char *name, const char *photo_url, long long ttl_sec,
                                    int64_t access_code_id);

/* POST|GET /v2/apps/me/video-rooms/{id}/tokens, DELETE …/tokens/{tokenId}. */
void viewer_tokens_register_routes(struct router *r);

#endif
