/* player.c — GET /play/{id} and GET /static/{*rest}. See player.h. */
#include "api/player.h"

#include <errno.h>
#include <event2/http.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/http_server.h"
#include "api/router.h"
#include "api/viewer_common.h"
#include "api/viewer_tokens.h"
#include "core/embedded.h"
#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"

#define MAX_ASSETS 8
#define TITLE_MAX 500

static const char csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors *; base-uri 'none'; form-action 'self'; object-src 'none'";

static struct {
    struct player_asset assets[MAX_ASSETS];
    int nassets;
    unsigned char *hlsjs; /* owned */
    const unsigned char *page;
    bool started;
} P;

/* ---- pure helpers ------------------------------------------------------------- */

size_t player_html_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (const char *p = in; *p; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        size_t n = rep ? strlen(rep) : 1;
        if (o + n >= cap) {
            /* Do not leave half a UTF-8 sequence behind. */
            size_t start = o;
            while (start > 0 && ((unsigned char)out[start - 1] & 0xC0) == 0x80)
                start--;
            if (start > 0 && (unsigned char)out[start - 1] >= 0xC0) {
                unsigned char lead = (unsigned char)out[start - 1];
                size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
                if (o - (start - 1) < want)
                    o = start - 1;
            }
            break;
        }
        if (rep)
            memcpy(out + o, rep, n);
        else
            out[o] = *p;
        o += n;
    }
    out[o] = 0;
    return o;
}

char *player_render(const char *tmpl, const char *title_html, const char *config_json, size_t *len)
{
    static const char t_title[] = "{{TITLE}}", t_config[] = "{{CONFIG}}";
    size_t tl = strlen(title_html), cl = strlen(config_json);
    size_t need = 1;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, t_title, sizeof t_title - 1) == 0) {
            need += tl;
            p += sizeof t_title - 1;
        } else if (strncmp(p, t_config, sizeof t_config - 1) == 0) {
            need += cl;
            p += sizeof t_config - 1;
        } else {
            need++;
            p++;
        }
    }
    char *out = malloc(need);
    if (!out)
        return NULL;
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, t_title, sizeof t_title - 1) == 0) {
            memcpy(out + o, title_html, tl);
            o += tl;
            p += sizeof t_title - 1;
        } else if (strncmp(p, t_config, sizeof t_config - 1) == 0) {
            memcpy(out + o, config_json, cl);
            o += cl;
            p += sizeof t_config - 1;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    if (len)
        *len = o;
    return out;
}

char *player_script_json(const char *json)
{
    size_t n = 1;
    for (const char *p = json; *p; p++)
        n += (*p == '<' || *p == '>' || *p == '&') ? 6 : 1;
    char *out = malloc(n);
    if (!out)
        return NULL;
    size_t o = 0;
    for (const char *p = json; *p; p++) {
        if (*p == '<' || *p == '>' || *p == '&') {
            o += (size_t)sprintf(out + o, "\\u%04x", (unsigned)*p);
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
    return out;
}

const struct player_asset *player_static_lookup(const char *rest)
{
    if (!rest)
        return NULL;
    for (int i = 0; i < P.nassets; i++)
        if (strcmp(P.assets[i].name, rest) == 0)
            return &P.assets[i];
    return NULL;
}

/* ---- assets ------------------------------------------------------------------------ */

static void add_asset(const char *name, const char *type, const unsigned char *data, size_t len,
                      const char *cache)
{
    if (P.nassets >= MAX_ASSETS)
        return;
    struct player_asset *a = &P.assets[P.nassets++];
    a->name = name;
    a->content_type = type;
    a->data = data;
    a->len = len;
    a->cache_control = cache;
    char hex[65];
    secure_sha256_hex(data, len, hex);
    snprintf(a->etag, sizeof a->etag, "\"%.16s\"", hex);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (size_t)st.st_size > PLAYER_HLSJS_MAX)
        goto out;
    buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        goto out;
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[st.st_size] = 0;
    *len = (size_t)st.st_size;
out:
    fclose(f);
    return buf;
}

/* node_modules/hls.js/dist/hls.min.js from the usual places (see player.h). */
static unsigned char *load_hlsjs(size_t *len, char *found, size_t foundlen)
{
    char exe[PATH_MAX], dir[PATH_MAX];
    char candidates[6][PATH_MAX + 64];
    int n = 0;
    if (getcwd(dir, sizeof dir))
        snprintf(candidates[n++], sizeof candidates[0], "%s/node_modules/" PLAYER_HLSJS_PATH, dir);
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el > 0) {
        exe[el] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(candidates[n++], sizeof candidates[0], "%s/node_modules/" PLAYER_HLSJS_PATH, exe);
            snprintf(candidates[n++], sizeof candidates[0], "%s/../node_modules/" PLAYER_HLSJS_PATH, exe);
            snprintf(candidates[n++], sizeof candidates[0], "%s/../../node_modules/" PLAYER_HLSJS_PATH, exe);
        }
    }
    snprintf(candidates[n++], sizeof candidates[0], "/usr/share/castgate/node_modules/" PLAYER_HLSJS_PATH);
    for (int i = 0; i < n; i++) {
        unsigned char *b = read_file(candidates[i], len);
        if (b) {
            size_t fl = strlen(candidates[i]);
            if (fl >= foundlen)
                fl = foundlen - 1;
            memcpy(found, candidates[i], fl);
            found[fl] = 0;
            return b;
        }
    }
    return NULL;
}

int player_start(struct api_ctx *ctx, char *err, size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    P.nassets = 0;
    P.page = NULL;
    for (const struct embedded_file *f = web_assets; f->name; f++) {
        if (strcmp(f->name, "player.html") == 0)
            P.page = f->data;
        else if (strcmp(f->name, "player.js") == 0)
            add_asset("player.js", "text/javascript; charset=utf-8", f->data, f->len,
                      "public, max-age=300");
        else if (strcmp(f->name, "player.css") == 0)
            add_asset("player.css", "text/css; charset=utf-8", f->data, f->len, "public, max-age=300");
    }
    size_t len = 0;
    char found[PATH_MAX + 64] = "";
    P.hlsjs = load_hlsjs(&len, found, sizeof found);
    if (P.hlsjs) {
        add_asset(PLAYER_HLSJS_PATH, "text/javascript; charset=utf-8", P.hlsjs, len,
                  "public, max-age=86400");
        log_info("player: hls.js loaded from %s (%zu bytes)", found, len);
    } else {
        log_warn("player: node_modules/" PLAYER_HLSJS_PATH " not found (run npm ci in the "
                 "source tree); the player page will not play");
    }
    if (!P.page)
        log_warn("player: web/player.html was not compiled in");
    P.started = true;
    return 0;
}

void player_stop(void)
{
    free(P.hlsjs);
    P.hlsjs = NULL;
    P.nassets = 0;
    P.started = false;
}

/* ---- handlers ------------------------------------------------------------------------ */

static void handle_static(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    const struct player_asset *a = player_static_lookup(route_param(params, "rest"));
    if (!a) {
        api_reply_error(r, 404, "NOT_FOUND", "no such file");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "ETag", a->etag);
    evhttp_add_header(h, "Cache-Control", a->cache_control);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    const char *inm = api_header(r, "If-None-Match");
    if (inm && strstr(inm, a->etag)) {
        api_reply_empty(r, 304);
        return;
    }
    api_reply_bytes(r, 200, a->content_type, a->data, a->len);
}

struct page_args {
    bool token_ok;
    const char *token_error; /* static */
    /* results */
    bool found;
    char title[TITLE_MAX + 1];
    bool is_public;
    char room_state[32];
};

static void page_work(PGconn *c, struct vjob *j)
{
    struct page_args *a = j->user;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->room_id);
    const char *p[1] = {id};
    PGresult *res = db_exec(c, "player room",
                            "SELECT coalesce(title, ''), access_level, video_room_state FROM video_rooms"
                            " WHERE id = $1 AND state = 'ACTIVE'",
                            1, p, NULL);
    if (!res) {
        vjob_fail(j, 503, "UNAVAILABLE", "database error");
        return;
    }
    if (PQntuples(res) == 1) {
        a->found = true;
        snprintf(a->title, sizeof a->title, "%s", db_get_str(res, 0, 0));
        a->is_public = strcmp(db_get_str(res, 0, 1), "PUBLIC") == 0;
        snprintf(a->room_state, sizeof a->room_state, "%s", db_get_str(res, 0, 2));
    }
    PQclear(res);
    j->status = 200;
}

static void reply_html(struct api_request *r, int status, const char *html, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Security-Policy", csp);
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Cache-Control", "no-store");
    api_reply_bytes(r, status, "text/html; charset=utf-8", html, len);
}

static void page_done(struct vjob *j)
{
    struct page_args *a = j->user;
    if (j->status != 200 || !P.page) {
        if (j->status == 200)
            vjob_fail(j, 503, "UNAVAILABLE", "the player page is not available in this build");
        free(a);
        j->user = NULL;
        return;
    }
    j->detached = true;
    if (!a->found) {
        static const char nf[] = "<!doctype html><meta charset=\"utf-8\"><title>Not found</title>"
                                 "<p>This video room does not exist.</p>";
        reply_html(j->r, 404, nf, sizeof nf - 1);
        goto out;
    }
    bool may_see = a->is_public || a->token_ok;
    const char *title = may_see ? (a->title[0] ? a->title : "Live class") : "Private class";
    char title_html[TITLE_MAX * 6 + 1];
    player_html_escape(title, title_html, sizeof title_html);
    char base[64];
    snprintf(base, sizeof base, "%lld", (long long)j->room_id);
    json_t *cfg = json_object();
    json_object_set_new(cfg, "roomId", json_integer(j->room_id));
    json_object_set_new(cfg, "title", json_string(title));
    json_object_set_new(cfg, "roomState", json_string(may_see ? a->room_state : "UNKNOWN"));
    json_object_set_new(cfg, "needsToken", json_boolean(!a->is_public));
    json_object_set_new(cfg, "tokenError", a->token_error ? json_string(a->token_error) : json_null());
    /* Relative to /play/{id}, so a path prefix in front of castgate keeps working. */
    char url[128];
    snprintf(url, sizeof url, "../hls/rooms/%s/index.m3u8", base);
    json_object_set_new(cfg, "hlsUrl", json_string(url));
    snprintf(url, sizeof url, "../v2/rooms/%s/events", base);
    json_object_set_new(cfg, "eventsUrl", json_string(url));
    snprintf(url, sizeof url, "../v2/rooms/%s/join", base);
    json_object_set_new(cfg, "joinUrl", json_string(url));
    json_object_set_new(cfg, "hlsJsAvailable", json_boolean(player_static_lookup(PLAYER_HLSJS_PATH) != NULL));
    char *cfg_text = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(cfg);
    char *safe = cfg_text ? player_script_json(cfg_text) : NULL;
    size_t len = 0;
    char *html = safe ? player_render((const char *)P.page, title_html, safe, &len) : NULL;
    if (html)
        reply_html(j->r, 200, html, len);
    else
        api_reply_error(j->r, 503, "UNAVAILABLE", "out of memory");
    free(html);
    free(safe);
    free(cfg_text);
out:
    free(a);
    j->user = NULL;
}

static void handle_page(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    struct vjob *j = vjob_new(r);
    if (!j)
        return;
    j->auth = VJOB_AUTH_NONE;
    j->room_id = vparse_id(route_param(params, "id"));
    struct page_args *a = calloc(1, sizeof *a);
    if (!a || !j->room_id) {
        free(a);
        if (!j->room_id) {
            static const char nf[] = "<!doctype html><meta charset=\"utf-8\"><title>Not found</title>"
                                     "<p>This video room does not exist.</p>";
            free(j);
            reply_html(r, 404, nf, sizeof nf - 1);
            return;
        }
        vjob_fail(j, 503, "UNAVAILABLE", "out of memory");
        vjob_reply(j);
        return;
    }
    const char *token = api_query(r, "token");
    if (token && *token) {
        const char *code = NULL;
        a->token_ok = viewer_token_authorize(token, j->room_id, VIEWER_ROLE_STUDENT, NULL, &code) == 0;
        a->token_error = a->token_ok ? NULL : code;
    }
    j->user = a;
    j->done = page_done;
    j->work = page_work;
    vjob_submit(j);
}

void player_register_routes(struct router *r)
{
    router_add(r, "GET", "/play/{id}", handle_page);
    router_add(r, "GET", "/static/{*rest}", handle_static);
}
