/* player.h — the embeddable player page (SPEC §7) and its static files.
 *
 *   GET /play/{videoRoomId}?token=…   web/player.html (compiled in) with the
 *       room's title (HTML-escaped; only shown when the room is PUBLIC or the
 *       token is valid for it) and a JSON config block. The page plays
 *       /hls/rooms/{id}/index.m3u8 with hls.js (low-latency mode), follows
 *       /v2/rooms/{id}/events, shows the classroom states idle → connecting →
 *       connected → reconnecting → ended | kicked | error, and posts
 *       {type: 'castgate', state, event} to the parent window.
 *       Headers: a Content-Security-Policy allowing only this origin (plus
 *       blob: workers/media for MSE), frame-ancestors * (embeddable), and
 *       Referrer-Policy: no-referrer (the token is in the URL).
 *   GET /static/{*rest}   exactly these names, anything else is 404 (no path
 *       is ever mapped to the file system at request time):
 *         player.js, player.css            compiled in (web/)
 *         hls.js/dist/hls.min.js           the npm package's file, read once at
 *                                          start-up from node_modules (the
 *                                          working directory, the binary's
 *                                          directory and its parents, or
 *                                          /usr/share/castgate)
 *       with ETag / If-None-Match (304) and Cache-Control. */
#ifndef API_PLAYER_H
#define API_PLAYER_H

#include <stdbool.h>
#include <stddef.h>

struct api_ctx;
struct router;

#define PLAYER_HLSJS_PATH "hls.js/dist/hls.min.js"
#define PLAYER_HLSJS_MAX (8u << 20)

int player_start(struct api_ctx *ctx, char *err, size_t errlen);
void player_stop(void);
void player_register_routes(struct router *r);

/* ---- pure helpers (tested) ----------------------------------------------- */

/* HTML-escapes in (& < > " ') into out; truncates on a UTF-8 boundary when
 * out is too small. Returns the length written. */
size_t player_html_escape(const char *in, char *out, size_t cap);
/* Replaces every "{{TITLE}}" with title_html and "{{CONFIG}}" with
 * config_json (both inserted verbatim: escape first). malloc'd, NUL-terminated;
 * *len (may be NULL) gets the length. NULL on no memory. */
char *player_render(const char *tmpl, const char *title_html, const char *config_json, size_t *len);
/* JSON text safe inside <script type="application/json">: every '<', '>'
 * and '&' written as \u003c, \u003e, \u0026. malloc'd. */
char *player_script_json(const char *json);

struct player_asset {
    const char *name;          /* the {*rest} it answers */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    char etag[24];             /* "\"<16 hex>\"" */
    const char *cache_control;
};
/* The asset for a /static/ path or NULL (exact match only). */
const struct player_asset *player_static_lookup(const char *rest);

#endif
