/* hls_delivery.c — HLS files over evhttp, blocking reloads, Range. See hls_delivery.h. */
#include "api/hls_delivery.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "packager/media_index.h"
#include "packager/media_registry.h"

#define MIME_PLAYLIST "application/vnd.apple.mpegurl"
#define CACHE_IMMUTABLE "public, max-age=31536000, immutable"
#define HLS_MAX_QUERY 4096
#define HLS_MAX_FILE 64
#define HLS_MAX_SINGLE_WRITE (1 << 20)

/* ---- pure parsers ------------------------------------------------------------ */

bool hls_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Decimal digits s[0..n): 0 and *out, -1 not all digits / empty, -2 over max. */
static int parse_digits(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (max - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* A number in a file name: digits, canonical (no leading zero), <= max. */
static int file_number(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    int r = parse_digits(s, n, max, out);
    if (r == -2)
        return -400;
    if (r != 0 || (n > 1 && s[0] == '0'))
        return -404;
    return 0;
}

int hls_parse_file(const char *name, struct hls_file *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = name ? strnlen(name, HLS_MAX_FILE + 1) : 0;
    if (n == 0 || n > HLS_MAX_FILE)
        return -400;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return -400; /* '/', '\\', '%', controls, spaces ... */
    }
    if (strstr(name, "..") || name[0] == '.')
        return -400;
    if (!strcmp(name, "index.m3u8")) {
        out->kind = HLS_FILE_MULTIVARIANT;
        return 0;
    }
    if (!strcmp(name, "media.m3u8")) {
        out->kind = HLS_FILE_MEDIA;
        return 0;
    }
    if (!strcmp(name, "vod.m3u8")) {
        out->kind = HLS_FILE_VOD;
        return 0;
    }
    if (!strcmp(name, "init.mp4")) {
        out->kind = HLS_FILE_INIT_CURRENT;
        return 0;
    }
    uint64_t a, b;
    int r;
    if (n > 9 && !strncmp(name, "init-", 5) && !strcmp(name + n - 4, ".mp4")) {
        if ((r = file_number(name + 5, n - 9, UINT32_MAX, &a)) != 0)
            return r;
        out->kind = HLS_FILE_INIT;
        out->init_id = (uint32_t)a;
        return 0;
    }
    if (n > 4 && !strcmp(name + n - 4, ".m4s")) {
        size_t body = n - 4;
        const char *dot = memchr(name, '.', body);
        if (!dot) {
            if ((r = file_number(name, body, UINT64_MAX, &a)) != 0)
                return r;
            out->kind = HLS_FILE_SEGMENT;
            out->msn = a;
            return 0;
        }
        size_t l1 = (size_t)(dot - name);
        if ((r = file_number(name, l1, UINT64_MAX, &a)) != 0)
            return r;
        if ((r = file_number(dot + 1, body - l1 - 1, UINT32_MAX, &b)) != 0)
            return r;
        out->kind = HLS_FILE_PART;
        out->msn = a;
        out->part = (uint32_t)b;
        return 0;
    }
    return -404;
}

int hls_parse_query(const char *query, struct hls_query *out)
{
    memset(out, 0, sizeof(*out));
    if (!query)
        return 0;
    size_t qlen = strnlen(query, HLS_MAX_QUERY + 1);
    if (qlen > HLS_MAX_QUERY)
        return -400;
    bool seen_skip = false;
    const char *p = query, *end = query + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        size_t klen = (size_t)((eq ? eq : pe) - p);
        const char *v = eq ? eq + 1 : pe;
        size_t vlen = (size_t)(pe - v);
        uint64_t num;
        if (klen == 8 && !memcmp(p, "_HLS_msn", 8)) {
            if (out->has_msn || parse_digits(v, vlen, UINT64_MAX, &num) != 0)
                return -400;
            out->has_msn = true;
            out->msn = num;
        } else if (klen == 9 && !memcmp(p, "_HLS_part", 9)) {
            if (out->has_part || parse_digits(v, vlen, UINT32_MAX, &num) != 0)
                return -400;
            out->has_part = true;
            out->part = (uint32_t)num;
        } else if (klen == 9 && !memcmp(p, "_HLS_skip", 9)) {
            if (seen_skip || !((vlen == 3 && !memcmp(v, "YES", 3)) || (vlen == 2 && !memcmp(v, "v2", 2))))
                return -400;
            seen_skip = true;
            out->skip = true;
        }
        p = pe + 1;
    }
    if (out->has_part && !out->has_msn)
        return -400; /* RFC 8216bis §6.2.5.2 */
    return 0;
}

int hls_parse_range(const char *h, uint64_t len, uint64_t *start, uint64_t *end)
{
    if (!h)
        return 1;
    if (strncasecmp(h, "bytes=", 6) != 0)
        return 1;
    const char *spec = h + 6;
    if (strchr(spec, ','))
        return 1; /* multipart/byteranges not supported: serve the whole body */
    const char *dash = strchr(spec, '-');
    if (!dash)
        return 1;
    size_t l1 = (size_t)(dash - spec), l2 = strlen(dash + 1);
    uint64_t a = 0, b = 0;
    if (l1 == 0) { /* suffix: last b bytes */
        if (parse_digits(dash + 1, l2, UINT64_MAX, &b) != 0)
            return 1;
        if (b == 0 || len == 0)
            return -416;
        *start = b >= len ? 0 : len - b;
        *end = len - 1;
        return 0;
    }
    if (parse_digits(spec, l1, UINT64_MAX, &a) != 0)
        return 1;
    if (l2 == 0) {
        b = UINT64_MAX;
    } else if (parse_digits(dash + 1, l2, UINT64_MAX, &b) != 0 || b < a) {
        return 1; /* invalid range-spec: ignore the header (RFC 9110 §14.2) */
    }
    if (a >= len)
        return -416;
    *start = a;
    *end = b >= len ? len - 1 : b;
    return 0;
}

/* ---- delivery state ------------------------------------------------------------ */

struct hls_waiter;

struct hls_waitq { /* in media_index_reader_slot(); HTTP loop only */
    struct hls_waiter *head;
    int n;
};

struct reply {
    struct hls_delivery *d;
    struct evhttp_request *req;
    bool head;
    hls_delivery_done_fn done;
    void *done_arg;
};

struct hls_waiter {
    struct hls_waiter *prev, *next;    /* per index */
    struct hls_waiter *gprev, *gnext;  /* all waiters of the delivery */
    struct reply rp;
    struct media_index *idx;           /* reference */
    struct event *timer;
    struct hls_file file;
    struct hls_query q;
    char *suffix;
};

struct hls_delivery {
    struct loop *loop;
    struct event_base *base;
    struct media_registry *reg;
    char cors[256];
    int max_per_index, max_total;
    bool timeout_503;
    int64_t block_timeout_us;
    size_t pl_max;
    struct hls_waiter *all;
    struct hls_delivery_stats st;
};

/* ---- replies --------------------------------------------------------------------- */

static void add_cors(struct hls_delivery *d, struct evkeyvalq *h)
{
    if (!d->cors[0] || evhttp_find_header(h, "Access-Control-Allow-Origin"))
        return;
    evhttp_add_header(h, "Access-Control-Allow-Origin", d->cors);
    evhttp_add_header(h, "Access-Control-Expose-Headers", "Content-Length, Content-Range, Content-Type");
    if (strcmp(d->cors, "*") != 0)
        evhttp_add_header(h, "Vary", "Origin");
}

/* Sends and completes. body may be NULL; content_length is what a GET would
 * carry (used for HEAD, where no body is sent). */
static void send_reply(struct reply *rp, int status, const char *mime, const char *cache, struct evbuffer *body,
                       uint64_t content_length)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(rp->req);
    if (mime)
        evhttp_add_header(h, "Content-Type", mime);
    if (cache)
        evhttp_add_header(h, "Cache-Control", cache);
    add_cors(rp->d, h);
    if (rp->head) {
        char cl[32];
        snprintf(cl, sizeof(cl), "%" PRIu64, content_length);
        evhttp_remove_header(h, "Content-Length");
        evhttp_add_header(h, "Content-Length", cl);
        if (body)
            evbuffer_drain(body, evbuffer_get_length(body));
    }
    if (body && evbuffer_get_length(body) > 16384) {
        /* libevent 2.1 writes at most 16 KiB per loop pass by default: a
         * 600 KiB segment took ~40 epoll rounds */
        struct evhttp_connection *conn = evhttp_request_get_connection(rp->req);
        struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
        if (bev)
            bufferevent_set_max_single_write(bev, HLS_MAX_SINGLE_WRITE);
    }
    evhttp_send_reply(rp->req, status, NULL, rp->head ? NULL : body);
    if (body)
        evbuffer_free(body);
    rp->req = NULL; /* may be freed by now (client gone while parked) */
    if (rp->done)
        rp->done(rp->done_arg, status);
}

static void reply_error(struct reply *rp, int status, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "%s\n", text);
    if (b)
        evbuffer_add(b, msg, (size_t)n);
    if (status == 503)
        evhttp_add_header(evhttp_request_get_output_headers(rp->req), "Retry-After", "1");
    send_reply(rp, status, "text/plain; charset=utf-8", "no-store", b, (uint64_t)n);
}

static void unref_buf(const void *data, size_t len, void *extra)
{
    (void)data;
    (void)len;
    media_buf_unref(extra);
}

static enum media_index_playlist playlist_of(enum hls_file_kind kind)
{
    return kind == HLS_FILE_MULTIVARIANT ? MEDIA_INDEX_MULTIVARIANT
           : kind == HLS_FILE_VOD        ? MEDIA_INDEX_VOD
                                         : MEDIA_INDEX_MEDIA;
}

/* A playlist as an immutable buffer (shared when several requests get the
 * same text: the index caches playlists without a URI suffix until it
 * changes). MEDIA_INDEX_OK, _NOT_FOUND or _ERR. */
static int render_playlist(struct hls_delivery *d, struct media_index *idx, enum media_index_playlist which,
                           bool skip, const char *sfx, struct media_buf **out)
{
    int r;
    *out = media_index_playlist(idx, which, skip, sfx, d->pl_max, &r);
    if (r == MEDIA_INDEX_ERR)
        log_error("hls: playlist render failed index=%s which=%d", media_index_name(idx), (int)which);
    return r;
}

static void send_playlist(struct reply *rp, struct media_buf *text, const char *cache)
{
    struct evbuffer *b = evbuffer_new();
    struct media_buf *ref = media_buf_ref(text);
    if (!b || evbuffer_add_reference(b, media_buf_data(ref), media_buf_len(ref), unref_buf, ref) != 0) {
        media_buf_unref(ref);
        if (b)
            evbuffer_free(b);
        reply_error(rp, 500, "internal error");
        return;
    }
    send_reply(rp, 200, MIME_PLAYLIST, cache ? cache : "no-cache", b, media_buf_len(text));
}

static void answer_playlist(struct reply *rp, struct media_index *idx, enum hls_file_kind kind, bool skip,
                            const char *sfx, const char *cache)
{
    enum media_index_playlist which = playlist_of(kind);
    struct media_buf *text = NULL;
    int r = render_playlist(rp->d, idx, which, skip, sfx, &text);
    if (r == MEDIA_INDEX_NOT_FOUND) {
        reply_error(rp, 404, "not found");
        return;
    }
    if (r != MEDIA_INDEX_OK) {
        reply_error(rp, 500, "internal error");
        return;
    }
    if (!cache && which == MEDIA_INDEX_VOD && media_index_get_state(idx) == MEDIA_INDEX_ENDED)
        cache = "public, max-age=60";
    send_playlist(rp, text, cache);
    media_buf_unref(text);
}

/* Range handling shared by memory and disk bodies. Returns the status to send
 * (200/206) with [*s, *e] to send, or 0 after answering 416 itself. */
static int range_for(struct reply *rp, uint64_t len, uint64_t *s, uint64_t *e)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(rp->req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(rp->req);
    const char *hdr = in ? evhttp_find_header(in, "Range") : NULL;
    int r = hls_parse_range(hdr, len, s, e);
    evhttp_add_header(out, "Accept-Ranges", "bytes");
    char cr[96];
    if (r == -416) {
        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, len);
        evhttp_add_header(out, "Content-Range", cr);
        reply_error(rp, 416, "range not satisfiable");
        return 0;
    }
    if (r == 0) {
        snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, *s, *e, len);
        evhttp_add_header(out, "Content-Range", cr);
        return 206;
    }
    *s = 0;
    *e = len ? len - 1 : 0;
    return 200;
}

static void answer_memory(struct reply *rp, struct media_index_body *body, const char *mime, const char *cache)
{
    uint64_t s, e;
    int status = range_for(rp, body->len, &s, &e);
    if (status == 0)
        return;
    uint64_t n = body->len ? e - s + 1 : 0;
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        reply_error(rp, 500, "internal error");
        return;
    }
    if (!rp->head) {
        uint64_t off = 0; /* offset of bufs[i] in the body */
        for (size_t i = 0; i < body->nbufs && n > 0; i++) {
            uint64_t bl = media_buf_len(body->bufs[i]);
            if (off + bl > s && off <= e) {
                uint64_t from = s > off ? s - off : 0;
                uint64_t to = e - off < bl - 1 ? e - off : bl - 1;
                struct media_buf *ref = media_buf_ref(body->bufs[i]);
                if (evbuffer_add_reference(b, media_buf_data(ref) + from, (size_t)(to - from + 1), unref_buf, ref) !=
                    0) {
                    media_buf_unref(ref);
                    evbuffer_free(b);
                    reply_error(rp, 500, "internal error");
                    return;
                }
            }
            off += bl;
        }
    }
    rp->d->st.served_memory++;
    send_reply(rp, status, mime, cache, b, n);
}

/* The file at path, or (part of a segment file) its `size` bytes from
 * `at`; size UINT64_MAX = the whole file. */
static void answer_disk_range(struct reply *rp, const char *path, uint64_t at, uint64_t size, const char *mime,
                              const char *cache)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        reply_error(rp, 404, "not found");
        return;
    }
    if (size == UINT64_MAX) {
        at = 0;
        size = (uint64_t)st.st_size;
    } else if (at > (uint64_t)st.st_size || size > (uint64_t)st.st_size - at) {
        close(fd); /* shorter than its index says: never serve a cut part */
        log_warn("hls: segment file shorter than indexed path=%s", path);
        reply_error(rp, 404, "not found");
        return;
    }
    uint64_t s, e;
    int status = range_for(rp, size, &s, &e);
    if (status == 0) {
        close(fd);
        return;
    }
    uint64_t n = size ? e - s + 1 : 0;
    s += at;
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        close(fd);
        reply_error(rp, 500, "internal error");
        return;
    }
    if (!rp->head && n > 0) {
        /* evbuffer_add_file takes the fd. Marked as bound for a socket, the
         * file stays a sendfile(2) chain when evhttp moves it into the
         * connection's buffer (else libevent mmaps or reads it here). */
        evbuffer_set_flags(b, EVBUFFER_FLAG_DRAINS_TO_FD);
        if (evbuffer_add_file(b, fd, (ev_off_t)s, (ev_off_t)n) != 0) {
            evbuffer_free(b);
            reply_error(rp, 500, "internal error");
            return;
        }
    } else {
        close(fd);
    }
    rp->d->st.served_disk++;
    send_reply(rp, status, mime, cache, b, n);
}

static void answer_disk(struct reply *rp, const char *path, const char *mime, const char *cache)
{
    answer_disk_range(rp, path, 0, UINT64_MAX, mime, cache);
}

static const char *media_mime(struct media_index *idx) { return media_index_audio_only(idx) ? "audio/mp4" : "video/mp4"; }

/* get_part's answer other than NOT_YET. */
static void answer_part_got(struct reply *rp, struct media_index *idx, int got, struct media_index_body *body,
                            const char *path)
{
    if (got == MEDIA_INDEX_OK) {
        answer_memory(rp, body, media_mime(idx), CACHE_IMMUTABLE);
        media_index_body_release(body);
    } else if (got == MEDIA_INDEX_ON_DISK) {
        answer_disk_range(rp, path, body->disk_offset, body->len, media_mime(idx), CACHE_IMMUTABLE);
    } else {
        reply_error(rp, 404, "not found");
    }
}

static void answer_part(struct reply *rp, struct media_index *idx, const struct hls_file *f)
{
    struct media_index_body body;
    char path[512];
    int g = media_index_get_part(idx, f->msn, f->part, false, &body, path, sizeof(path));
    answer_part_got(rp, idx, g == MEDIA_INDEX_NOT_YET ? MEDIA_INDEX_NOT_FOUND : g, &body, path);
}

/* ---- parked requests ------------------------------------------------------------- */

static struct hls_waitq *waitq_of(struct media_index *idx) { return *media_index_reader_slot(idx); }

/* Unlinks w, answers nothing, frees it. */
static void waiter_drop(struct hls_waiter *w)
{
    struct hls_delivery *d = w->rp.d;
    struct hls_waitq *q = waitq_of(w->idx);
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (--q->n == 0) {
        *media_index_reader_slot(w->idx) = NULL;
        free(q);
    }
    if (w->gprev)
        w->gprev->gnext = w->gnext;
    else
        d->all = w->gnext;
    if (w->gnext)
        w->gnext->gprev = w->gprev;
    d->st.parked_now--;
    if (w->timer)
        event_free(w->timer);
    media_index_unpark(w->idx);
    media_index_unref(w->idx);
    free(w->suffix);
    free(w);
}

/* Playlists rendered during one wake pass: parked requests with the same
 * skip flag and URI suffix (all viewers of a public room) share one text. */
struct wake_cache {
    int n;
    struct {
        bool skip;
        char *sfx;
        struct media_buf *text;
    } e[4];
};

static void wake_cache_clear(struct wake_cache *wc)
{
    for (int i = 0; i < wc->n; i++) {
        free(wc->e[i].sfx);
        media_buf_unref(wc->e[i].text);
    }
    wc->n = 0;
}

/* Answers a waiter whose condition holds (or whose time is up). wc may be NULL. */
static void waiter_answer(struct hls_waiter *w, bool timed_out, struct wake_cache *wc)
{
    struct reply rp = w->rp;
    struct media_index *idx = media_index_ref(w->idx);
    struct hls_file f = w->file;
    struct hls_query q = w->q;
    char *sfx = w->suffix;
    w->suffix = NULL;
    waiter_drop(w);
    if (f.kind == HLS_FILE_PART) {
        if (timed_out)
            reply_error(&rp, 404, "not found");
        else
            answer_part(&rp, idx, &f);
    } else if (timed_out && rp.d->timeout_503) {
        reply_error(&rp, 503, "playlist not updated in time");
    } else if (timed_out || !wc) {
        answer_playlist(&rp, idx, HLS_FILE_MEDIA, q.skip, sfx, "no-cache");
    } else {
        /* a satisfied blocking request: any cache may keep it (§6.2.5.2 — a
         * later identical request accepts a playlist that has the part) */
        char cache[64];
        snprintf(cache, sizeof(cache), "public, max-age=%lld",
                 (long long)(media_index_block_timeout_us(idx) / 1000000));
        struct media_buf *text = NULL;
        for (int i = 0; i < wc->n && !text; i++)
            if (wc->e[i].skip == q.skip && !strcmp(wc->e[i].sfx, sfx))
                text = media_buf_ref(wc->e[i].text);
        if (!text) {
            int r = render_playlist(rp.d, idx, MEDIA_INDEX_MEDIA, q.skip, sfx, &text);
            if (r != MEDIA_INDEX_OK)
                text = NULL;
            else if (wc->n < (int)(sizeof(wc->e) / sizeof(wc->e[0])) && (wc->e[wc->n].sfx = strdup(sfx))) {
                wc->e[wc->n].skip = q.skip;
                wc->e[wc->n].text = media_buf_ref(text);
                wc->n++;
            }
        }
        if (text)
            send_playlist(&rp, text, cache);
        else
            reply_error(&rp, 500, "internal error");
        media_buf_unref(text);
    }
    free(sfx);
    media_index_unref(idx);
}

static void on_waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hls_waiter *w = arg;
    w->rp.d->st.timeouts++;
    waiter_answer(w, true, NULL);
}

/* Is the waiter's condition met now? For a part: 1 yes, 0 keep waiting, -1
 * it will never come (answer 404 now). */
static int waiter_ready(struct hls_waiter *w)
{
    if (w->file.kind == HLS_FILE_PART) {
        struct media_index_body b;
        char path[512];
        int r = media_index_get_part(w->idx, w->file.msn, w->file.part, false, &b, path, sizeof(path));
        if (r == MEDIA_INDEX_OK || r == MEDIA_INDEX_ON_DISK) {
            media_index_body_release(&b);
            return 1;
        }
        return r == MEDIA_INDEX_NOT_YET ? 0 : -1;
    }
    int64_t part = w->q.has_part ? (int64_t)w->q.part : -1;
    return media_index_block_check(w->idx, w->q.msn, part, false) == MEDIA_INDEX_WAIT ? 0 : 1;
}

/* HTTP loop: a media loop published something on idx (loop_post from on_publish). */
static void on_wake(void *arg)
{
    struct media_index *idx = arg;
    media_index_notify_done(idx); /* before looking: a later publish notifies again */
    struct hls_waitq *q = waitq_of(idx);
    struct hls_waiter *w = q ? q->head : NULL;
    struct wake_cache wc = {0};
    while (w) {
        struct hls_waiter *next = w->next;
        bool last = next == NULL; /* the queue may be freed with its last waiter */
        int r = waiter_ready(w);
        if (r != 0) {
            w->rp.d->st.woken++;
            if (r > 0) {
                waiter_answer(w, false, &wc);
            } else {
                struct reply rp = w->rp;
                waiter_drop(w);
                reply_error(&rp, 404, "not found");
            }
        }
        w = last ? NULL : next;
    }
    wake_cache_clear(&wc);
    media_index_unref(idx);
}

/* Media loop: runs with no index lock held; only posts (arg is the HTTP loop,
 * which outlives every media loop's use of the registry). */
static void on_publish(void *arg, struct media_index *idx)
{
    struct loop *http_loop = arg;
    media_index_ref(idx);
    if (loop_post(http_loop, on_wake, idx) != 0) {
        /* inbox full: parked requests fall back on their deadline timers */
        media_index_notify_done(idx);
        media_index_unref(idx);
    }
}

/* Parks rp (the index already counted it as parked). */
static int park(struct reply *rp, struct media_index *idx, const struct hls_file *f, const struct hls_query *q,
                const char *sfx)
{
    struct hls_delivery *d = rp->d;
    struct hls_waitq *wq = waitq_of(idx);
    if ((wq && wq->n >= d->max_per_index) || (int)d->st.parked_now >= d->max_total) {
        media_index_unpark(idx);
        d->st.refused_over_cap++;
        reply_error(rp, 503, "too many waiting requests");
        return 0;
    }
    struct hls_waiter *w = calloc(1, sizeof(*w));
    if (!wq)
        wq = calloc(1, sizeof(*wq));
    if (!w || !wq || !(w->suffix = strdup(sfx ? sfx : "")) ||
        !(w->timer = evtimer_new(d->base, on_waiter_timeout, w))) {
        if (w) {
            free(w->suffix);
            free(w);
        }
        if (wq && !waitq_of(idx))
            free(wq);
        media_index_unpark(idx);
        reply_error(rp, 503, "out of memory");
        return 0;
    }
    *media_index_reader_slot(idx) = wq;
    w->rp = *rp;
    w->idx = media_index_ref(idx);
    w->file = *f;
    w->q = *q;
    w->next = wq->head;
    if (wq->head)
        wq->head->prev = w;
    wq->head = w;
    wq->n++;
    w->gnext = d->all;
    if (d->all)
        d->all->gprev = w;
    d->all = w;
    d->st.parked_now++;
    d->st.parked_total++;
    int64_t us = d->block_timeout_us ? d->block_timeout_us : media_index_block_timeout_us(idx);
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    evtimer_add(w->timer, &tv);
    /* No re-check needed: the index counted us as parked in the same critical
     * section as its check, so any later publish notifies, and the wake runs
     * on this (HTTP) thread only after this insertion. */
    return 1;
}

/* ---- entry points ----------------------------------------------------------------- */

struct hls_delivery *hls_delivery_new(struct loop *http_loop, struct media_registry *reg,
                                      const struct hls_delivery_opts *opts)
{
    struct hls_delivery *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->loop = http_loop;
    d->base = loop_base(http_loop);
    d->reg = reg;
    struct hls_delivery_opts o = opts ? *opts : (struct hls_delivery_opts){0};
    snprintf(d->cors, sizeof(d->cors), "%s", o.cors_origin ? o.cors_origin : "*");
    d->max_per_index = o.max_parked_per_index > 0 ? o.max_parked_per_index : 1000;
    d->max_total = o.max_parked_total > 0 ? o.max_parked_total : 20000;
    d->timeout_503 = o.block_timeout_503;
    d->block_timeout_us = o.block_timeout_ms > 0 ? (int64_t)o.block_timeout_ms * 1000 : 0;
    d->pl_max = o.playlist_max_bytes ? o.playlist_max_bytes : (size_t)16 << 20;
    media_registry_set_notify(reg, on_publish, http_loop);
    return d;
}

void hls_delivery_free(struct hls_delivery *d)
{
    if (!d)
        return;
    media_registry_set_notify(d->reg, NULL, NULL);
    while (d->all) {
        struct reply rp = d->all->rp;
        waiter_drop(d->all);
        reply_error(&rp, 503, "shutting down");
    }
    free(d);
}

void hls_delivery_get_stats(struct hls_delivery *d, struct hls_delivery_stats *out) { *out = d->st; }

int hls_delivery_handle(struct hls_delivery *d, struct evhttp_request *req, const char *kind, const char *id,
                        const char *file, const char *uri_suffix, hls_delivery_done_fn done, void *done_arg)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct reply rp = {d, req, cmd == EVHTTP_REQ_HEAD, done, done_arg};
    const char *sfx = uri_suffix ? uri_suffix : "";
    struct hls_file f;
    struct hls_query q;
    struct media_index *idx = NULL;
    int parked = 0;

    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_error(&rp, 405, "method not allowed");
        return 0;
    }
    if (!kind || (strcmp(kind, "rooms") != 0 && strcmp(kind, "keys") != 0)) {
        reply_error(&rp, 404, "not found");
        return 0;
    }
    int r = hls_parse_file(file, &f);
    if (!hls_id_ok(id) || r == -400 || !playlist_suffix_ok(sfx)) {
        reply_error(&rp, 400, "bad request");
        return 0;
    }
    if (r != 0) {
        reply_error(&rp, 404, "not found");
        return 0;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    if (hls_parse_query(uri ? evhttp_uri_get_query(uri) : NULL, &q) != 0) {
        reply_error(&rp, 400, "bad delivery directive");
        return 0;
    }
    idx = media_registry_open(d->reg, kind, id);
    if (!idx) {
        if (media_registry_is_gone(d->reg, kind, id))
            reply_error(&rp, 410, "gone");
        else
            reply_error(&rp, 404, "not found");
        return 0;
    }

    struct media_index_body body;
    char path[512];
    switch (f.kind) {
    case HLS_FILE_MULTIVARIANT:
    case HLS_FILE_VOD:
        answer_playlist(&rp, idx, f.kind, false, sfx, NULL);
        break;
    case HLS_FILE_MEDIA:
        if (!q.has_msn) {
            answer_playlist(&rp, idx, f.kind, q.skip, sfx, NULL);
            break;
        }
        switch (media_index_block_check(idx, q.msn, q.has_part ? (int64_t)q.part : -1, true)) {
        case MEDIA_INDEX_TOO_FAR:
            reply_error(&rp, 400, "_HLS_msn/_HLS_part too far ahead");
            break;
        case MEDIA_INDEX_WAIT:
            parked = park(&rp, idx, &f, &q, sfx);
            break;
        case MEDIA_INDEX_READY: {
            char cache[64];
            snprintf(cache, sizeof(cache), "public, max-age=%lld",
                     (long long)(media_index_block_timeout_us(idx) / 1000000));
            answer_playlist(&rp, idx, f.kind, q.skip, sfx,
                            media_index_get_state(idx) == MEDIA_INDEX_ENDED ? NULL : cache);
            break;
        }
        }
        break;
    case HLS_FILE_INIT_CURRENT:
    case HLS_FILE_INIT: {
        /* init.mp4 follows the current init: revalidate; init-N never changes */
        const char *cache = f.kind == HLS_FILE_INIT ? CACHE_IMMUTABLE : "no-cache";
        int g = media_index_get_init(idx, f.kind == HLS_FILE_INIT ? (int64_t)f.init_id : -1, &body, path, sizeof(path));
        if (g == MEDIA_INDEX_OK) {
            answer_memory(&rp, &body, media_mime(idx), cache);
            media_index_body_release(&body);
        } else if (g == MEDIA_INDEX_ON_DISK) {
            answer_disk(&rp, path, media_mime(idx), cache);
        } else {
            reply_error(&rp, 404, "not found");
        }
        break;
    }
    case HLS_FILE_SEGMENT: {
        int g = media_index_get_segment(idx, f.msn, &body, path, sizeof(path));
        if (g == MEDIA_INDEX_OK) {
            answer_memory(&rp, &body, media_mime(idx), CACHE_IMMUTABLE);
            media_index_body_release(&body);
        } else if (g == MEDIA_INDEX_ON_DISK) {
            answer_disk(&rp, path, media_mime(idx), CACHE_IMMUTABLE);
        } else {
            reply_error(&rp, 404, "not found");
        }
        break;
    }
    case HLS_FILE_PART: {
        int g = media_index_get_part(idx, f.msn, f.part, true, &body, path, sizeof(path));
        if (g == MEDIA_INDEX_NOT_YET) /* §6.2.6: the preload-hinted part is answered once it exists */
            parked = park(&rp, idx, &f, &q, sfx);
        else
            answer_part_got(&rp, idx, g, &body, path);
        break;
    }
    }
    media_index_unref(idx);
    return parked;
}
