/* recordings.c — the recordings endpoints and signed downloads (see
 * recordings.h). Handlers parse on the http loop, do SQL + file opening in a
 * db-pool job, and reply from the job's completion on the http loop. */
#include "api/recordings.h"
#include "api/viewer_tokens.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "api/http_server.h"
#include "api/json_util.h"
#include "core/log.h"
#include "core/secure.h"
#include "storage/db.h"
#include "storage/file_store.h"
#include "storage/recordings.h"

/* A download: no app credentials (the signature is the authorization). */
struct dl_job {
    struct api_request *r;
    const struct config *cfg;
    /* in */
    int64_t rec_id;
    char filename[ROUTER_PARAM_MAX];
    int64_t url_expires;
    char sig[72];
    /* out */
    int status;
    char code[48];
    char msg[256];
    int fd;
    int64_t size;
    char disposition_name[128];
};

/* --- helpers ------------------------------------------------------------------ */

static void dl_error(struct dl_job *j, int status, const char *code, const char *msg)
{
    j->status = status;
    snprintf(j->code, sizeof j->code, "%s", code);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
}

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

/* hex HMAC-SHA256(secret, "/downloads/recordings/{id}/{filename}\n{expires}") (REC-5) */
static void sign(const char *secret, int64_t id, const char *filename, int64_t expires, char out[65])
{
    char msg[ROUTER_PARAM_MAX + 96];
    int n = snprintf(msg, sizeof msg, "/downloads/recordings/%" PRId64 "/%s\n%" PRId64, id, filename,
                     expires);
    uint8_t mac[32];
    secure_hmac_sha256(secret, strlen(secret), msg, n < 0 ? 0 : (size_t)n, mac);
    hex(mac, sizeof mac, out);
}

int recordings_sign_path(const char *secret, int64_t id, const char *filename, int64_t expires,
                         char *out, size_t outlen)
{
    char sig[65];
    sign(secret, id, filename, expires, sig);
    int n = snprintf(out, outlen, "/downloads/recordings/%" PRId64 "/%s?expires=%" PRId64 "&sig=%s", id,
                     filename, expires, sig);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Filenames we generate are [A-Za-z0-9._-]; anything else is not ours. */
static bool filename_ok(const char *s)
{
    if (!*s || *s == '.' || strlen(s) >= 128)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    return true;
}

static void iso_or_null(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, v && v[0] ? json_string(v) : json_null());
}

/* --- the db-thread work ----------------------------------------------------------- */

/* GET …/recordings (API-7), after authentication (api/auth.h). */
static void work_list(PGconn *c, struct api_job *j)
{
    const struct config *cfg = j->ctx->cfg;
    struct recordings_room room;
    struct recording_row *rows = NULL;
    int n = 0;
    int rc = recordings_list_for_room(c, j->app.id, j->id, cfg->recording_ttl_sec, &room, &rows, &n);
    if (rc == RECORDINGS_NOT_FOUND) {
        api_job_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
        return;
    }
    char secret[128];
    if (rc != 0 || recordings_signing_secret(c, cfg, secret, sizeof secret) != 0) {
        free(rows);
        api_job_fail(j, 503, "UNAVAILABLE", "database error");
        return;
    }
    json_t *files = json_array();
    for (int i = 0; i < n; i++) {
        const struct recording_row *w = &rows[i];
        json_t *f = json_object();
        json_object_set_new(f, "id", json_integer(w->id));
        json_object_set_new(f, "filename", json_string(w->filename));
        if (strcmp(w->status, "READY") == 0) {
            int64_t expires = w->expires_at > 0 ? w->expires_at : room.now + cfg->recording_ttl_sec;
            char path[512], url[CONFIG_STR_MAX + 600];
            if (recordings_sign_path(secret, w->id, w->filename, expires, path, sizeof path) == 0) {
                snprintf(url, sizeof url, "%s%s", j->ctx->public_url, path);
                json_object_set_new(f, "downloadUrl", json_string(url));
            } else
                json_object_set_new(f, "downloadUrl", json_null());
        } else
            json_object_set_new(f, "downloadUrl", json_null());
        json_object_set_new(f, "size", json_integer(w->size_bytes));
        json_object_set_new(f, "durationMs", json_integer(w->duration_ms));
        json_object_set_new(f, "status", json_string(w->status));
        iso_or_null(f, "startedAt", w->started_at);
        iso_or_null(f, "endedAt", w->ended_at);
        if (strcmp(w->status, "FAILED") == 0)
            json_object_set_new(f, "failureReason", json_string(w->failure_reason));
        json_array_append_new(files, f);
    }
    free(rows);
    json_t *data = json_object();
    json_object_set_new(data, "roomId", json_integer(room.id));
    json_object_set_new(data, "files", files);
    if (room.ended) {
        char in[32];
        recordings_format_expires_in(room.expires_at - room.now, in, sizeof in);
        iso_or_null(data, "expiresAt", room.expires_at_iso);
        json_object_set_new(data, "expiresIn", json_string(in));
    } else {
        json_object_set_new(data, "expiresAt", json_null());
        json_object_set_new(data, "expiresIn", json_null());
    }
    json_object_set_new(data, "isRecording", json_boolean(room.is_recording));
    iso_or_null(data, "recordingError", room.recording_error);
    json_t *body = json_object();
    json_object_set_new(body, "success", json_true());
    json_object_set_new(body, "data", data);
    j->reply = body;
    j->status = 200;
}

/* POST …/recording/start|stop (REC-2). */
static void work_request(PGconn *c, struct api_job *j, bool start)
{
    bool is_recording = false;
    int rc = recordings_request(c, j->app.id, j->id, start, &is_recording);
    switch (rc) {
    case 0: {
        json_t *data = json_object();
        json_object_set_new(data, "isRecording", json_boolean(is_recording));
        json_t *body = json_object();
        json_object_set_new(body, "success", json_true());
        json_object_set_new(body, "data", data);
        j->reply = body;
        j->status = 200;
        return;
    }
    case RECORDINGS_NOT_FOUND:
        api_job_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
        return;
    case RECORDINGS_WRONG_STATE:
        api_job_fail(j, 400, "VIDEO_ROOM_STATE_NOT_LIVE",
                     "recording can be started or stopped only while the room is LIVE or LIVE_INACTIVE");
        return;
    case RECORDINGS_DISABLED:
        api_job_fail(j, 400, "RECORDING_DISABLED", "recording is turned off in the room's settings");
        return;
    default:
        api_job_fail(j, 503, "UNAVAILABLE", "database error");
    }
}

static void work_start(PGconn *c, struct api_job *j) { work_request(c, j, true); }
static void work_stop(PGconn *c, struct api_job *j) { work_request(c, j, false); }

static void work_download(PGconn *c, void *arg)
{
    struct dl_job *j = arg;
    const struct config *cfg = j->cfg;
    char secret[128], want[65];
    if (recordings_signing_secret(c, cfg, secret, sizeof secret) != 0) {
        dl_error(j, 503, "UNAVAILABLE", "database error");
        return;
    }
    sign(secret, j->rec_id, j->filename, j->url_expires, want);
    if (!secure_str_equal(want, j->sig)) {
        dl_error(j, 403, "INVALID_SIGNATURE", "the download link is not valid");
        return;
    }
    if (j->url_expires < (int64_t)time(NULL)) {
        dl_error(j, 410, "DOWNLOAD_URL_EXPIRED", "the download link has expired; list the recordings again");
        return;
    }
    struct recording_row row;
    int rc = recordings_get(c, j->rec_id, cfg->recording_ttl_sec, &row);
    if (rc < 0) {
        dl_error(j, 503, "UNAVAILABLE", "database error");
        return;
    }
    if (rc != 0 || strcmp(row.filename, j->filename) != 0) {
        dl_error(j, 404, "RECORDING_NOT_FOUND", "recording not found");
        return;
    }
    if (strcmp(row.status, "EXPIRED") == 0) {
        dl_error(j, 410, "RECORDING_EXPIRED", "the recording has expired and was deleted");
        return;
    }
    if (strcmp(row.status, "READY") != 0) {
        char m[200];
        snprintf(m, sizeof m, "the recording is %s", row.status);
        dl_error(j, 409, "RECORDING_NOT_READY", m);
        return;
    }
    char path[PATH_MAX];
    if (file_store_join(path, sizeof path, cfg->data_dir, row.path) != 0) {
        dl_error(j, 404, "RECORDING_NOT_FOUND", "recording not found");
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (e == ENOENT)
            dl_error(j, 410, "RECORDING_EXPIRED", "the recording file is gone");
        else {
            log_warn("recordings: open %s: %s", path, strerror(e));
            dl_error(j, 500, "INTERNAL_ERROR", "the recording file cannot be read");
        }
        return;
    }
    j->fd = fd;
    j->size = (int64_t)st.st_size;
    snprintf(j->disposition_name, sizeof j->disposition_name, "%s", row.filename);
    j->status = 200;
}

/* --- replies on the http loop ---------------------------------------------------- */

int recordings_parse_range(const char *h, int64_t size, int64_t *first, int64_t *last)
{
    if (!h)
        return 0;
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "bytes=", 6) != 0)
        return 0;
    h += 6;
    if (strchr(h, ','))
        return 0; /* several ranges: we answer with the whole file (RFC 9110 §14.2) */
    int64_t a = -1, b = -1;
    const char *p = h;
    if (isdigit((unsigned char)*p)) {
        a = 0;
        for (; isdigit((unsigned char)*p); p++) {
            if (a > (INT64_MAX - 9) / 10)
                return 0;
            a = a * 10 + (*p - '0');
        }
    }
    if (*p++ != '-')
        return 0;
    if (isdigit((unsigned char)*p)) {
        b = 0;
        for (; isdigit((unsigned char)*p); p++) {
            if (b > (INT64_MAX - 9) / 10)
                return 0;
            b = b * 10 + (*p - '0');
        }
    }
    while (*p == ' ')
        p++;
    if (*p)
        return 0;
    if (a < 0 && b < 0)
        return 0;
    if (a < 0) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (b >= 0 && b < a)
        return 0; /* invalid: ignored */
    if (a >= size)
        return -1;
    *first = a;
    *last = b < 0 || b >= size ? size - 1 : b;
    return 1;
}

static void reply_file(struct dl_job *j)
{
    struct api_request *r = j->r;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(r->req);
    char v[256];
    int64_t first = 0, last = j->size - 1;
    int pr = recordings_parse_range(api_header(r, "Range"), j->size, &first, &last);
    evhttp_add_header(oh, "Accept-Ranges", "bytes");
    evhttp_add_header(oh, "Content-Type", "video/mp4");
    snprintf(v, sizeof v, "attachment; filename=\"%s\"", j->disposition_name);
    evhttp_add_header(oh, "Content-Disposition", v);
    evhttp_add_header(oh, "Cache-Control", "private, no-transform");
    if (pr < 0) {
        close(j->fd);
        snprintf(v, sizeof v, "bytes */%" PRId64, j->size);
        evhttp_add_header(oh, "Content-Range", v);
        evhttp_add_header(oh, "Content-Length", "0");
        api_add_cors(r);
        evhttp_send_reply(r->req, 416, NULL, NULL);
        api_request_done(r, 416);
        return;
    }
    int status = pr == 1 ? 206 : 200;
    if (pr != 1) {
        first = 0;
        last = j->size - 1;
    }
    int64_t len = j->size ? last - first + 1 : 0;
    if (status == 206) {
        snprintf(v, sizeof v, "bytes %" PRId64 "-%" PRId64 "/%" PRId64, first, last, j->size);
        evhttp_add_header(oh, "Content-Range", v);
    }
    snprintf(v, sizeof v, "%" PRId64, len);
    evhttp_add_header(oh, "Content-Length", v);
    api_add_cors(r);
    if (strcmp(r->method, "HEAD") == 0 || len == 0) {
        close(j->fd);
        evhttp_send_reply(r->req, status, NULL, NULL);
    } else {
        struct evbuffer *body = evbuffer_new();
        /* evbuffer_add_file owns the fd from here (sendfile when it can). */
        if (!body || evbuffer_add_file(body, j->fd, first, len) != 0) {
            if (body)
                evbuffer_free(body);
            else
                close(j->fd);
            evhttp_send_error(r->req, 500, NULL);
            api_request_done(r, 500);
            return;
        }
        evhttp_send_reply(r->req, status, NULL, body);
        evbuffer_free(body);
    }
    api_request_done(r, status);
}

static void dl_done(void *arg)
{
    struct dl_job *j = arg;
    if (j->code[0])
        api_reply_error(j->r, j->status, j->code, "%s", j->msg);
    else
        reply_file(j);
    free(j);
}

/* The /v2 routes: authenticated jobs of the admin API (api/auth.h). */
/* bearer_role: the least viewer-token role allowed instead of Basic auth
 * (0 = Basic only). */
static void room_handler(void *request, const struct route_params *params, api_job_work_fn work,
                         int bearer_role)
{
    struct api_job *j = api_job_new(request, AUTH_BASIC);
    if (!j)
        return;
    j->work = work;
    if (!ju_parse_id(route_param(params, "id"), &j->id))
        api_job_fail(j, 404, "VIDEO_ROOM_NOT_FOUND", "video room not found");
    else if (bearer_role)
        api_job_allow_bearer(j, j->id, bearer_role);
    api_job_submit(j);
}

void recordings_api_list(void *request, const struct route_params *params)
{
    room_handler(request, params, work_list, 0);
}

void recordings_api_start(void *request, const struct route_params *params)
{
    room_handler(request, params, work_start, VIEWER_ROLE_MODERATOR);
}

void recordings_api_stop(void *request, const struct route_params *params)
{
    room_handler(request, params, work_stop, VIEWER_ROLE_MODERATOR);
}

void recordings_api_download(void *request, const struct route_params *params)
{
    struct api_request *r = request;
    int64_t id = 0;
    const char *name = route_param(params, "filename");
    if (!ju_parse_id(route_param(params, "id"), &id) || !name || !filename_ok(name)) {
        api_reply_error(r, 404, "RECORDING_NOT_FOUND", "recording not found");
        return;
    }
    const char *exp = api_query(r, "expires"), *sig = api_query(r, "sig");
    int64_t expires = 0;
    if (!sig || strlen(sig) != 64 || !exp || !ju_parse_id(exp, &expires)) {
        api_reply_error(r, 403, "INVALID_SIGNATURE", "the download link is not valid");
        return;
    }
    struct dl_job *j = calloc(1, sizeof *j);
    if (!j) {
        api_reply_error(r, 503, "UNAVAILABLE", "out of memory");
        return;
    }
    j->r = r;
    j->cfg = r->ctx->cfg;
    j->fd = -1;
    j->rec_id = id;
    snprintf(j->filename, sizeof j->filename, "%s", name);
    j->url_expires = expires;
    snprintf(j->sig, sizeof j->sig, "%s", sig);
    for (char *p = j->sig; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (db_pool_submit(r->ctx->db, r->ctx->http_loop, work_download, dl_done, j) != 0) {
        free(j);
        api_reply_error(r, 503, "UNAVAILABLE", "database queue full");
    }
}

int recordings_api_routes(struct router *rt)
{
    int rc = 0;
    rc |= router_add(rt, "GET", "/v2/apps/me/video-rooms/{id}/recordings", recordings_api_list);
    rc |= router_add(rt, "POST", "/v2/apps/me/video-rooms/{id}/recording/start", recordings_api_start);
    rc |= router_add(rt, "POST", "/v2/apps/me/video-rooms/{id}/recording/stop", recordings_api_stop);
    /* HEAD is routed to GET handlers; reply_file sends no body for it. */
    rc |= router_add(rt, "GET", "/downloads/recordings/{id}/{filename}", recordings_api_download);
    return rc ? -1 : 0;
}
