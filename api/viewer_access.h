/* viewer_access.h — who may read a room's HLS (SPEC PKG-6) and how many are
 * watching (PKG-8); also the start/stop of the whole viewer side.
 *
 * Access: a room whose accessLevel is PUBLIC is open; any other level needs a
 * valid, unexpired, unrevoked viewer token for THAT room (any role), given as
 * `?token=` or `Authorization: Bearer`. Room access levels, apps and
 * maxParticipants are cached in memory and refreshed every 2 s from rows
 * modified since the last refresh, so a segment request never waits for
 * PostgreSQL (PKG-7); only a room never seen before costs one lookup
 * (negative answers are cached too).
 *
 * Viewer sessions (PKG-8): a session is identified by
 *   token jti + `?sid=` (the player page sends a random per-tab sid),
 *   else the token jti alone, else sid alone, else client address + User-Agent
 * (hashed with a per-process key; nothing raw is kept). A session is counted
 * while it fetched a playlist in the last 30 s. maxParticipants refuses NEW
 * sessions with 429 MAX_PARTICIPANTS_REACHED; sessions already watching keep
 * going. Joins and leaves become participant_joined / participant_left events,
 * written in batches every 2 s.
 *
 * Threading: every function here is thread-safe; the decision path takes one
 * mutex for a hash lookup and never blocks. */
#ifndef API_VIEWER_ACCESS_H
#define API_VIEWER_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/viewer_tokens.h"

struct api_ctx;
struct api_request;
struct router;

#define VIEWER_SUFFIX_MAX (VIEWER_TOKEN_MAX + 96)
#define VIEWER_SESSION_WINDOW_MS 30000

enum viewer_resource {
    VIEWER_RES_PLAYLIST = 0, /* any .m3u8: counts the session, applies maxParticipants */
    VIEWER_RES_MEDIA = 1,    /* init.mp4, segments, parts: access only */
};

struct viewer_access {
    int status;             /* 0 = allowed; otherwise the HTTP status to refuse with */
    const char *error_code; /* static, when refused */
    const char *message;    /* static, when refused */
    /* "" or "?token=T&sid=S" — append to every URI the playlist lists (PKG-6)
     * so segments and parts carry the same credentials. */
    char query_suffix[VIEWER_SUFFIX_MAX];
    bool has_token;
    struct viewer_claims claims; /* when has_token */
    int retry_after_sec;         /* for 429 */
};

/* Called exactly once per check: synchronously when the room is cached (the
 * usual case), else from a db-job completion on the http loop. The callee
 * owns the request as before; on a refusal use viewer_access_reply_error(). */
typedef void (*viewer_access_cb)(struct api_request *r, const struct viewer_access *a, void *arg);

/* Decides whether r may read room_id's HLS (PKG-6) and, for playlists,
 * counts the viewer session (PKG-8). Call on the http loop. */
void viewer_access_check(struct api_request *r, int64_t room_id, enum viewer_resource res,
                         viewer_access_cb cb, void *arg);
/* Sends the refusal as JSON {errorCode, message} (401/403/404/429, with
 * Retry-After on 429). Completes r. */
void viewer_access_reply_error(struct api_request *r, const struct viewer_access *a);

/* Distinct viewer sessions of the room in the last 30 s on this node (PKG-8);
 * gateway_room_viewer_count() returns this. */
int viewer_sessions_count(int64_t room_id);
/* Viewer sessions of every room on this node (the /metrics gauge); sessions
 * idle past 30 s leave within the expiry period. */
int viewer_sessions_total(void);

/* ---- the session table (pure, for tests; the node keeps one) ------------ */

struct viewer_sessions;

struct viewer_session_info {
    int64_t app_id;
    int64_t token_id;          /* 0 = no token */
    enum viewer_role role;
    char uid[VIEWER_UID_MAX + 1];
};

enum viewer_touch_result {
    VIEWER_TOUCH_EXISTING = 0, /* a known session fetched again */
    VIEWER_TOUCH_NEW = 1,      /* a new session joined */
    VIEWER_TOUCH_FULL = 2,     /* new session refused: maxParticipants reached */
    VIEWER_TOUCH_NOMEM = 3,    /* table ceiling reached: refused */
};

/* max_total = ceiling on sessions across rooms. */
struct viewer_sessions *viewer_sessions_new(size_t max_total);
void viewer_sessions_free(struct viewer_sessions *s);
/* Records a playlist fetch of session `key` in room at now_ms. max_participants
 * <= 0 = unlimited. *count_out (may be NULL) receives the room's count after. */
enum viewer_touch_result viewer_sessions_touch(struct viewer_sessions *s, int64_t room, uint64_t key,
                                               int max_participants,
                                               const struct viewer_session_info *info,
                                               long long now_ms, int *count_out);
/* Sessions of the room seen within the window before now_ms. */
int viewer_sessions_room_count(struct viewer_sessions *s, int64_t room, long long now_ms);
/* Forgets sessions idle for longer than the window; calls left() for each
 * (room, key, info, remaining count). Returns how many left. */
size_t viewer_sessions_expire(struct viewer_sessions *s, long long now_ms,
                              void (*left)(void *arg, int64_t room, uint64_t key,
                                           const struct viewer_session_info *info, int count),
                              void *arg);

/* Session key of a request's credentials (see above). sid must already be
 * validated ([A-Za-z0-9_-]{1,64}) or NULL; ip/ua may be NULL. */
uint64_t viewer_session_key(const uint8_t salt[16], const char *jti, const char *sid,
                            const char *ip, const char *ua);
/* true when s is a usable sid: 1..64 of [A-Za-z0-9_-]. */
bool viewer_sid_valid(const char *s);

/* ---- the whole viewer side ---------------------------------------------- */

/* Starts tokens, the room cache, session counting, the event streams and the
 * webhook worker. Call before the http loop runs; conninfo opens one
 * start-up connection (and the webhook worker's own). 0 or -1 with err. */
int viewer_start(struct api_ctx *ctx, const char *conninfo, char *err, size_t errlen);
/* Before the db pool is freed (any thread; the http loop may still run):
 * frees the viewer timers, so no viewer db job is submitted afterwards. */
void viewer_stop_timers(void);
/* After the http loop is stopped and the HTTP server freed (its close
 * callbacks release the event streams): stops the webhook worker, writes
 * what is pending with one short-lived connection, frees everything.
 * Safe when viewer_start failed or never ran. */
void viewer_stop(void);
/* Every viewer-side route: tokens, access codes, join, events, apps/me,
 * player page and static files. */
void viewer_register_routes(struct router *r);

/* Room facts from the cache (for the player page and event streams).
 * Returns 1 and fills the outputs when cached and existing, 0 when unknown
 * (not cached yet), -1 when known not to exist. */
int viewer_room_lookup(int64_t room_id, int64_t *app_id, bool *is_public);

#endif
