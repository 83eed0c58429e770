/* access_codes.h — room access codes (SPEC API-9): PIN-like strings an app
 * hands out; the player page (or any client) exchanges one for a viewer token.
 *
 *   POST   /v2/apps/me/video-rooms/{id}/access-codes   {code?, role?, expiresAt?} → 201
 *   GET    /v2/apps/me/video-rooms/{id}/access-codes   paged list (SPEC §6 shape)
 *   DELETE /v2/apps/me/video-rooms/{id}/access-codes   every code of the room → 204
 *   DELETE /v2/apps/me/video-rooms/{id}/access-codes/{codeId}                → 204
 *   POST   /v2/rooms/{id}/join  {code, uid?, name?, photoURL?}  (public)
 *          → {success, data: <token as from POST …/tokens>}
 *
 * A code is chosen (4..64 of [A-Za-z0-9_-], unique per room → 409
 * ACCESS_CODE_ALREADY_EXISTS) or generated (10 random alphanumerics); its
 * role (default STUDENT) becomes the token's role; expiresAt is optional (a
 * past date makes the code unusable). Codes are not secret from the app and
 * are stored as given (seed 003 "unencrypted data"). Joining is rate-limited
 * per client address: 10 attempts per minute (→ 429 RATE_LIMITED with
 * Retry-After), whatever their outcome. Behind a reverse proxy every client
 * shares the proxy's address. */
#ifndef API_ACCESS_CODES_H
#define API_ACCESS_CODES_H

#include <stdbool.h>
#include <stddef.h>

struct api_ctx;
struct router;

#define ACCESS_CODE_JOIN_LIMIT 10      /* attempts per window per client address */
#define ACCESS_CODE_JOIN_WINDOW_MS 60000

/* true when s is an acceptable chosen code. */
bool access_code_valid(const char *s);

int access_codes_start(struct api_ctx *ctx, char *err, size_t errlen);
void access_codes_stop(void);
void access_codes_register_routes(struct router *r);

#endif
