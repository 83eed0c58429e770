/* test_hls_delivery.c — HLS delivery over real HTTP: an evhttp server on
 * 127.0.0.1 runs on its own loop thread, this thread plays the media loop
 * (feeds the index through its sink) and the viewer (a raw socket client, so
 * malformed paths reach the server byte for byte).
 *
 * Also measures blocking-reload wake latency: part published → full response
 * received by the client (printed as p50/p99). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/hls_delivery.h"
#include "core/loop.h"
#include "packager/media_index.h"
#include "packager/media_registry.h"
#include "packager/segment_store.h"

#define WALL0 1700000000000000LL
#define BLOCK_TIMEOUT_MS 400
#define MAX_PARKED 100 /* below evhttp's listen backlog (128) */

/* ---- server fixture ------------------------------------------------------------- */

struct server {
    struct loop *loop;
    struct evhttp *http;
    struct media_registry *reg;
    struct segment_store *store;
    struct hls_delivery *hd;
    char dir[64];
    int port;
    /* the test's media loop: one room index fed from this thread */
    struct media_index *idx;
    const struct cmaf_sink *sink;
    uint64_t src_msn;
    uint32_t part_in_seg;
    int64_t t_us;
    pthread_mutex_t mu;
    int done_calls;
    int last_status;
};

static struct server S;

static void on_done(void *arg, int status)
{
    struct server *s = arg;
    pthread_mutex_lock(&s->mu);
    s->done_calls++;
    s->last_status = status;
    pthread_mutex_unlock(&s->mu);
}

/* A stand-in for the lead's router: /hls/{kind}/{id}/{file...}; the token
 * query parameter becomes the URI suffix. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    char path[1024];
    size_t n = strcspn(uri, "?");
    if (n >= sizeof(path) || strncmp(uri, "/hls/", 5) != 0) {
        evhttp_send_error(req, 404, NULL);
        return;
    }
    memcpy(path, uri, n);
    path[n] = '\0';
    char *kind = path + 5;
    char *id = strchr(kind, '/');
    char *file = id ? strchr(id + 1, '/') : NULL;
    if (!id || !file) {
        evhttp_send_error(req, 404, NULL);
        return;
    }
    *id++ = '\0';
    *file++ = '\0';
    const char *sfx = strstr(uri, "token=t1") ? "?token=t1" : "";
    hls_delivery_handle(s->hd, req, kind, id, file, sfx, on_done, s);
}

static int feed_init_bytes(const char *bytes)
{
    struct cmaf_track_info tr[2] = {
        {.kind = MEDIA_KIND_VIDEO, .codec = MEDIA_CODEC_H264, .codec_string = "avc1.64001f", .width = 640,
         .height = 360, .frame_rate = 25},
        {.kind = MEDIA_KIND_AUDIO, .codec = MEDIA_CODEC_AAC, .codec_string = "mp4a.40.2", .sample_rate = 48000,
         .channels = 2},
    };
    struct cmaf_init in = {(const uint8_t *)bytes, strlen(bytes), tr, 2, false};
    S.sink->on_init(S.sink->ctx, &in);
    return 0;
}

/* Part bytes: "[msn.part]" padded with 'x' to 100 bytes. */
static void make_part(char out[101], uint64_t msn, uint32_t part)
{
    memset(out, 'x', 100);
    out[100] = '\0';
    int n = snprintf(out, 100, "[%llu.%u]", (unsigned long long)msn, part);
    out[n] = 'x';
}

/* Publishes the next part; a segment has 4 parts of 250 ms. Returns the
 * (msn, part) it was published as. */
static void publish_part(uint64_t *msn, uint32_t *part)
{
    char b[101];
    make_part(b, S.src_msn, S.part_in_seg);
    struct cmaf_part p = {(const uint8_t *)b, 100, S.src_msn, S.part_in_seg, S.t_us, 250000,
                          S.part_in_seg == 0, false, WALL0 + S.t_us, loop_now_us(), false};
    if (msn)
        *msn = S.src_msn;
    if (part)
        *part = S.part_in_seg;
    S.sink->on_part(S.sink->ctx, &p);
    S.t_us += 250000;
    if (++S.part_in_seg == 4) {
        struct cmaf_segment sg = {S.src_msn, S.t_us - 1000000, 1000000, 4, 400, false, WALL0, 3200};
        S.sink->on_segment(S.sink->ctx, &sg);
        S.src_msn++;
        S.part_in_seg = 0;
    }
}

static void stop_on_loop(void *arg)
{
    struct server *s = arg;
    hls_delivery_free(s->hd);
    evhttp_free(s->http);
}

static int setup(void **state)
{
    (void)state;
    memset(&S, 0, sizeof(S));
    pthread_mutex_init(&S.mu, NULL);
    assert_int_equal(loop_global_init(), 0);
    snprintf(S.dir, sizeof(S.dir), "/tmp/castgate-test-hls-XXXXXX");
    assert_non_null(mkdtemp(S.dir));
    S.store = segment_store_new(S.dir, 0);
    struct media_registry_opts ro = {.target_duration_us = 1000000, .part_target_us = 250000,
                                     .live_window_segments = 3, .store = S.store};
    S.reg = media_registry_new(&ro);
    S.loop = loop_new("http-test", 0);
    S.http = evhttp_new(loop_base(S.loop));
    evhttp_set_allowed_methods(S.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(S.http, on_request, &S);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(S.http, "127.0.0.1", 0);
    assert_non_null(bs);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl), 0);
    S.port = ntohs(sa.sin_port);
    struct hls_delivery_opts ho = {.max_parked_per_index = MAX_PARKED, .block_timeout_ms = BLOCK_TIMEOUT_MS};
    S.hd = hls_delivery_new(S.loop, S.reg, &ho);
    assert_non_null(S.hd);
    assert_int_equal(loop_start(S.loop), 0);

    bool created;
    S.idx = media_registry_get_or_create(S.reg, "rooms", "r1", &created);
    assert_non_null(S.idx);
    S.sink = media_index_sink(S.idx);
    media_index_begin_session(S.idx);
    feed_init_bytes("INIT-ZERO");
    for (int i = 0; i < 4 * 6 + 2; i++) /* segments 0..5 complete, segment 6 has 2 parts */
        publish_part(NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    loop_post(S.loop, stop_on_loop, &S);
    loop_stop(S.loop);
    loop_free(S.loop);
    media_index_unref(S.idx);
    media_registry_free(S.reg);
    segment_store_free(S.store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", S.dir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

/* ---- tiny HTTP client ------------------------------------------------------------------ */

struct resp {
    int status;
    char head[4096];
    char *body;
    size_t body_len;
};

static int http_send(const char *method, const char *path, const char *extra)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[2048];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n", method,
                     path, extra ? extra : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    return fd;
}

static const char *hdr(const struct resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            size_t l = strcspn(v, "\r");
            if (l >= cap)
                l = cap - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
    }
    return NULL;
}

/* Reads one response: headers, then Content-Length bytes (none for HEAD). */
static void http_recv(int fd, bool head, struct resp *r)
{
    memset(r, 0, sizeof(*r));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    char *eoh = NULL;
    long clen = -1;
    for (;;) {
        if (len == cap - 1) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t k = read(fd, buf + len, cap - 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
        buf[len] = '\0';
        if (!eoh && (eoh = strstr(buf, "\r\n\r\n"))) {
            size_t hl = (size_t)(eoh - buf);
            memcpy(r->head, buf, hl < sizeof(r->head) - 1 ? hl : sizeof(r->head) - 1);
            char v[32];
            clen = hdr(r, "Content-Length", v, sizeof(v)) ? atol(v) : -1;
            if (head)
                clen = 0;
        }
        if (eoh && clen >= 0 && len - (size_t)(eoh + 4 - buf) >= (size_t)clen)
            break;
    }
    assert_non_null(eoh);
    sscanf(buf, "HTTP/1.%*d %d", &r->status);
    size_t bl = len - (size_t)(eoh + 4 - buf);
    r->body = malloc(bl + 1);
    memcpy(r->body, eoh + 4, bl);
    r->body[bl] = '\0';
    r->body_len = bl;
    free(buf);
    close(fd);
}

static void http(const char *method, const char *path, const char *extra, struct resp *r)
{
    http_recv(http_send(method, path, extra), strcmp(method, "HEAD") == 0, r);
}

static void resp_free(struct resp *r) { free(r->body); }

static void wait_parked(uint32_t n)
{
    /* a condition poll, not a sleep: returns as soon as the server parked them */
    struct media_index_stats st;
    long long deadline = loop_now_us() + 10000000;
    for (;;) {
        media_index_get_stats(S.idx, &st);
        if (st.parked >= n)
            return;
        assert_true(loop_now_us() < deadline);
        sched_yield();
    }
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_blocking_reload_answers_when_the_part_is_published(void **state)
{
    (void)state;
    enum { N = 200 };
    long long lat[N];
    for (int i = 0; i < N; i++) {
        /* the next part: segment src_msn (the index numbers like the source
         * here), which has part_in_seg parts so far */
        uint64_t msn = S.src_msn;
        uint32_t part = S.part_in_seg;
        char path[160];
        snprintf(path, sizeof(path), "/hls/rooms/r1/media.m3u8?_HLS_msn=%llu&_HLS_part=%u",
                 (unsigned long long)msn, part);
        int fd = http_send("GET", path, NULL);
        wait_parked(1);
        long long t0 = loop_now_us();
        uint64_t pm;
        uint32_t pp;
        publish_part(&pm, &pp);
        struct resp r;
        http_recv(fd, false, &r);
        lat[i] = loop_now_us() - t0;
        assert_int_equal(r.status, 200);
        char want[64];
        snprintf(want, sizeof(want), "URI=\"%llu.%u.m4s\"", (unsigned long long)pm, pp);
        if (!strstr(r.body, want))
            fail_msg("response lacks %s:\n%s", want, r.body);
        char cc[64];
        assert_non_null(hdr(&r, "Cache-Control", cc, sizeof(cc)));
        assert_string_equal(cc, "public, max-age=3");
        resp_free(&r);
    }
    qsort(lat, N, sizeof(lat[0]), cmp_ll);
    printf("blocking reload wake latency (part published -> response received, n=%d): p50=%lldus p99=%lldus "
           "max=%lldus\n",
           N, lat[N / 2], lat[N * 99 / 100], lat[N - 1]);
    assert_true(lat[N * 99 / 100] < 100000);
    struct hls_delivery_stats hs;
    hls_delivery_get_stats(S.hd, &hs);
    assert_true(hs.woken >= N);
}

/* One part wakes every viewer parked on it (one wake per index, not per
 * viewer): all of them are answered, and quickly. */
static void test_one_part_wakes_every_parked_viewer(void **state)
{
    (void)state;
    enum { V = MAX_PARKED };
    static int fds[V];
    static long long lat[V];
    char path[160], want[64];
    snprintf(path, sizeof(path), "/hls/rooms/r1/media.m3u8?_HLS_msn=%llu&_HLS_part=%u&_HLS_skip=YES",
             (unsigned long long)S.src_msn, S.part_in_seg);
    for (int i = 0; i < V; i++)
        fds[i] = http_send("GET", path, NULL);
    wait_parked(V);
    uint64_t pm;
    uint32_t pp;
    long long t0 = loop_now_us();
    publish_part(&pm, &pp);
    snprintf(want, sizeof(want), "URI=\"%llu.%u.m4s\"", (unsigned long long)pm, pp);
    for (int i = 0; i < V; i++) {
        struct resp r;
        http_recv(fds[i], false, &r);
        lat[i] = loop_now_us() - t0;
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, want));
        /* the 3 s window is shorter than CAN-SKIP-UNTIL (6 s): nothing skipped */
        assert_null(strstr(r.body, "#EXT-X-SKIP"));
        resp_free(&r);
    }
    qsort(lat, V, sizeof(lat[0]), cmp_ll);
    printf("fan-out: %d parked viewers, one part -> all answered: p50=%lldus p99=%lldus last=%lldus\n", V,
           lat[V / 2], lat[V * 99 / 100], lat[V - 1]);
    assert_true(lat[V - 1] < 500000);
}

static void test_blocking_reload_that_is_already_satisfied_answers_at_once(void **state)
{
    (void)state;
    struct resp r;
    http("GET", "/hls/rooms/r1/media.m3u8?_HLS_msn=1&_HLS_part=0&token=t1", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "#EXT-X-PART:DURATION=0.250,URI=\""));
    assert_non_null(strstr(r.body, ".m4s?token=t1\""));
    resp_free(&r);
}

static void test_blocking_reload_too_far_ahead_is_bad_request(void **state)
{
    (void)state;
    char path[160];
    struct {
        uint64_t msn;
        int part; /* -1: none */
    } cases[] = {{S.src_msn + 2, -1}, {S.src_msn + 5, 0}, {S.src_msn, (int)S.part_in_seg + 20}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].part < 0)
            snprintf(path, sizeof(path), "/hls/rooms/r1/media.m3u8?_HLS_msn=%llu",
                     (unsigned long long)cases[i].msn);
        else
            snprintf(path, sizeof(path), "/hls/rooms/r1/media.m3u8?_HLS_msn=%llu&_HLS_part=%d",
                     (unsigned long long)cases[i].msn, cases[i].part);
        struct resp r;
        http("GET", path, NULL, &r);
        if (r.status != 400)
            fail_msg("%s: status %d", path, r.status);
        resp_free(&r);
    }
    const char *bad[] = {"/hls/rooms/r1/media.m3u8?_HLS_part=1", "/hls/rooms/r1/media.m3u8?_HLS_msn=abc",
                         "/hls/rooms/r1/media.m3u8?_HLS_msn=99999999999999999999999",
                         "/hls/rooms/r1/media.m3u8?_HLS_msn=1&_HLS_msn=2",
                         "/hls/rooms/r1/media.m3u8?_HLS_skip=NO"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct resp r;
        http("GET", bad[i], NULL, &r);
        if (r.status != 400)
            fail_msg("%s: status %d", bad[i], r.status);
        resp_free(&r);
    }
}

static void test_blocking_reload_times_out_with_the_current_playlist(void **state)
{
    (void)state;
    char path[160];
    snprintf(path, sizeof(path), "/hls/rooms/r1/media.m3u8?_HLS_msn=%llu", (unsigned long long)S.src_msn + 1);
    long long t0 = loop_now_us();
    struct resp r;
    http("GET", path, NULL, &r);
    long long waited = loop_now_us() - t0;
    assert_int_equal(r.status, 200);
    assert_true(waited >= BLOCK_TIMEOUT_MS * 1000 - 5000);
    assert_true(waited < BLOCK_TIMEOUT_MS * 1000 + 500000);
    char cc[64];
    assert_string_equal(hdr(&r, "Cache-Control", cc, sizeof(cc)), "no-cache");
    assert_non_null(strstr(r.body, "#EXTM3U"));
    resp_free(&r);
    struct hls_delivery_stats hs;
    hls_delivery_get_stats(S.hd, &hs);
    assert_true(hs.timeouts >= 1);
    assert_int_equal(hs.parked_now, 0);
}

static void test_parked_requests_over_the_cap_get_503(void **state)
{
    (void)state;
    char path[160];
    snprintf(path, sizeof(path), "/hls/rooms/r1/media.m3u8?_HLS_msn=%llu", (unsigned long long)S.src_msn + 1);
    static int fds[MAX_PARKED];
    for (int i = 0; i < MAX_PARKED; i++)
        fds[i] = http_send("GET", path, NULL);
    wait_parked(MAX_PARKED);
    struct resp r;
    http("GET", path, NULL, &r);
    assert_int_equal(r.status, 503);
    char ra[16];
    assert_non_null(hdr(&r, "Retry-After", ra, sizeof(ra)));
    resp_free(&r);
    for (int i = 0; i < MAX_PARKED; i++) { /* they time out normally */
        http_recv(fds[i], false, &r);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
}

static void test_preload_hinted_part_is_sent_once_published(void **state)
{
    (void)state;
    char path[160], want[16];
    uint64_t msn = S.src_msn;
    uint32_t part = S.part_in_seg;
    snprintf(path, sizeof(path), "/hls/rooms/r1/%llu.%u.m4s", (unsigned long long)msn, part);
    int fd = http_send("GET", path, NULL);
    wait_parked(1);
    publish_part(NULL, NULL);
    struct resp r;
    http_recv(fd, false, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 100);
    snprintf(want, sizeof(want), "[%llu.%u]", (unsigned long long)msn, part);
    assert_memory_equal(r.body, want, strlen(want));
    resp_free(&r);
    /* two parts ahead is not hinted: 404 at once */
    snprintf(path, sizeof(path), "/hls/rooms/r1/%llu.%u.m4s", (unsigned long long)S.src_msn + 1, 1u);
    http("GET", path, NULL, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
}

static void test_range_head_and_416_on_media(void **state)
{
    (void)state;
    uint64_t msn = S.src_msn - 1; /* complete, in memory: 4 parts x 100 bytes */
    char path[128], seg[401], v[128];
    for (uint32_t i = 0; i < 4; i++)
        make_part(seg + i * 100, msn, i);
    snprintf(path, sizeof(path), "/hls/rooms/r1/%llu.m4s", (unsigned long long)msn);
    struct {
        const char *range;
        int status;
        size_t from, len;
        const char *content_range;
    } cases[] = {
        {NULL, 200, 0, 400, NULL},
        {"Range: bytes=2-5\r\n", 206, 2, 4, "bytes 2-5/400"},
        {"Range: bytes=95-204\r\n", 206, 95, 110, "bytes 95-204/400"}, /* spans three parts */
        {"Range: bytes=390-\r\n", 206, 390, 10, "bytes 390-399/400"},
        {"Range: bytes=-3\r\n", 206, 397, 3, "bytes 397-399/400"},
        {"Range: bytes=0-100000\r\n", 206, 0, 400, "bytes 0-399/400"},
        {"Range: bytes=0-1,5-6\r\n", 200, 0, 400, NULL}, /* multi-range ignored */
        {"Range: bytes=400-\r\n", 416, 0, 0, "bytes */400"},
        {"Range: bytes=-0\r\n", 416, 0, 0, "bytes */400"},
        {"Range: items=0-1\r\n", 200, 0, 400, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp r;
        http("GET", path, cases[i].range, &r);
        if (r.status != cases[i].status)
            fail_msg("case %zu: status %d", i, r.status);
        if (cases[i].status != 416) {
            assert_int_equal(r.body_len, cases[i].len);
            assert_memory_equal(r.body, seg + cases[i].from, cases[i].len);
            assert_string_equal(hdr(&r, "Accept-Ranges", v, sizeof(v)), "bytes");
        }
        if (cases[i].content_range)
            assert_string_equal(hdr(&r, "Content-Range", v, sizeof(v)), cases[i].content_range);
        else
            assert_null(hdr(&r, "Content-Range", v, sizeof(v)));
        resp_free(&r);
    }
    struct resp r;
    http("HEAD", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Length", v, sizeof(v)), "400");
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
    http("HEAD", "/hls/rooms/r1/media.m3u8", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(atoi(hdr(&r, "Content-Length", v, sizeof(v))) > 100);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
    /* a segment that left memory is read from disk, Range included */
    segment_store_flush(S.store);
    http("GET", "/hls/rooms/r1/0.m4s", "Range: bytes=100-104\r\n", &r);
    assert_int_equal(r.status, 206);
    assert_memory_equal(r.body, "[0.1]", 5);
    assert_string_equal(hdr(&r, "Content-Range", v, sizeof(v)), "bytes 100-104/400");
    resp_free(&r);
    /* so is a part of it: its byte range of the segment file, Range relative
     * to the part */
    char want[101];
    assert_true(S.src_msn >= 3);
    uint64_t old = S.src_msn - 3; /* older than the newest two: on disk */
    struct hls_delivery_stats hs0;
    hls_delivery_get_stats(S.hd, &hs0);
    make_part(want, old, 2);
    snprintf(path, sizeof(path), "/hls/rooms/r1/%llu.2.m4s", (unsigned long long)old);
    http("GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 100);
    assert_memory_equal(r.body, want, 100);
    assert_string_equal(hdr(&r, "Cache-Control", v, sizeof(v)), "public, max-age=31536000, immutable");
    resp_free(&r);
    snprintf(path, sizeof(path), "/hls/rooms/r1/%llu.3.m4s", (unsigned long long)old);
    http("GET", path, "Range: bytes=1-3\r\n", &r);
    assert_int_equal(r.status, 206);
    make_part(want, old, 3);
    assert_memory_equal(r.body, want + 1, 3);
    assert_string_equal(hdr(&r, "Content-Range", v, sizeof(v)), "bytes 1-3/100");
    resp_free(&r);
    snprintf(path, sizeof(path), "/hls/rooms/r1/%llu.4.m4s", (unsigned long long)old); /* past its last part */
    http("GET", path, NULL, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    struct hls_delivery_stats hs;
    hls_delivery_get_stats(S.hd, &hs);
    assert_true(hs.served_disk >= 1);
    assert_int_equal(hs.served_disk, hs0.served_disk + 2); /* both parts came from the file */
}

static void test_mime_types_and_caching_headers(void **state)
{
    (void)state;
    char seg_path[64], part_path[64];
    snprintf(seg_path, sizeof(seg_path), "/hls/rooms/r1/%llu.m4s", (unsigned long long)S.src_msn - 1);
    snprintf(part_path, sizeof(part_path), "/hls/rooms/r1/%llu.2.m4s", (unsigned long long)S.src_msn - 1);
    struct {
        const char *path;
        int status;
        const char *mime, *cache;
    } cases[] = {
        {"/hls/rooms/r1/index.m3u8", 200, "application/vnd.apple.mpegurl", "no-cache"},
        {"/hls/rooms/r1/media.m3u8", 200, "application/vnd.apple.mpegurl", "no-cache"},
        {"/hls/rooms/r1/vod.m3u8", 200, "application/vnd.apple.mpegurl", "no-cache"},
        {"/hls/rooms/r1/init.mp4", 200, "video/mp4", "no-cache"},
        {"/hls/rooms/r1/init-0.mp4", 200, "video/mp4", "public, max-age=31536000, immutable"},
        {seg_path, 200, "video/mp4", "public, max-age=31536000, immutable"},
        {part_path, 200, "video/mp4", "public, max-age=31536000, immutable"},
        {"/hls/rooms/r1/0.m4s", 200, "video/mp4", "public, max-age=31536000, immutable"}, /* disk */
        {"/hls/rooms/r1/init-7.mp4", 404, "text/plain; charset=utf-8", "no-store"},
        {"/hls/keys/r1/index.m3u8", 404, "text/plain; charset=utf-8", "no-store"},
        {"/hls/rooms/unknown/index.m3u8", 404, "text/plain; charset=utf-8", "no-store"},
    };
    char v[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp r;
        http("GET", cases[i].path, NULL, &r);
        if (r.status != cases[i].status)
            fail_msg("%s: status %d", cases[i].path, r.status);
        assert_string_equal(hdr(&r, "Content-Type", v, sizeof(v)), cases[i].mime);
        assert_string_equal(hdr(&r, "Cache-Control", v, sizeof(v)), cases[i].cache);
        assert_string_equal(hdr(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "*");
        resp_free(&r);
    }
    struct resp r;
    http("GET", "/hls/rooms/r1/index.m3u8?token=t1", NULL, &r);
    assert_non_null(strstr(r.body, "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=25.000\n"
                                   "media.m3u8?token=t1\n"));
    resp_free(&r);
    http("POST", "/hls/rooms/r1/index.m3u8", NULL, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
}

static void test_traversal_and_malformed_names_are_refused(void **state)
{
    (void)state;
    struct {
        const char *path;
        int status;
    } cases[] = {
        {"/hls/rooms/r1/../../../etc/passwd", 400},
        {"/hls/rooms/r1/..%2F..%2Fetc%2Fpasswd", 400},
        {"/hls/rooms/r1/%2e%2e", 400},
        {"/hls/rooms/r1/.hidden", 400},
        {"/hls/rooms/r1/seg/0.m4s", 400},
        {"/hls/rooms/../r1/index.m3u8", 400},
        {"/hls/rooms/r%201/index.m3u8", 400},
        {"/hls/rooms/r1/99999999999999999999999.m4s", 400},
        {"/hls/rooms/r1/1.99999999999.m4s", 400},
        {"/hls/rooms/r1/01.m4s", 404},
        {"/hls/rooms/r1/-1.m4s", 404},
        {"/hls/rooms/r1/1.m4s.tmp", 404},
        {"/hls/rooms/r1/index.log", 404},
        {"/hls/rooms/r1/audio.m3u8", 404},
        {"/hls/rooms/r1/1.2.3.m4s", 404},
        {"/hls/other/r1/index.m3u8", 404},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp r;
        http("GET", cases[i].path, NULL, &r);
        if (r.status != cases[i].status)
            fail_msg("%s: status %d, want %d", cases[i].path, r.status, cases[i].status);
        resp_free(&r);
    }
}

static void test_swept_room_is_gone(void **state)
{
    (void)state;
    bool created;
    struct media_index *old = media_registry_get_or_create(S.reg, "rooms", "old", &created);
    media_index_unref(old);
    media_registry_mark_gone(S.reg, "rooms", "old");
    struct resp r;
    http("GET", "/hls/rooms/old/index.m3u8", NULL, &r);
    assert_int_equal(r.status, 410);
    resp_free(&r);
    pthread_mutex_lock(&S.mu);
    assert_int_equal(S.last_status, 410);
    assert_true(S.done_calls > 0);
    pthread_mutex_unlock(&S.mu);
}

static void test_ended_room_answers_parked_requests_with_endlist(void **state)
{
    (void)state;
    char path[160];
    snprintf(path, sizeof(path), "/hls/rooms/r1/media.m3u8?_HLS_msn=%llu", (unsigned long long)S.src_msn + 1);
    int fd = http_send("GET", path, NULL);
    wait_parked(1);
    long long t0 = loop_now_us();
    media_index_end(S.idx);
    struct resp r;
    http_recv(fd, false, &r);
    assert_true(loop_now_us() - t0 < BLOCK_TIMEOUT_MS * 1000 / 2);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "#EXT-X-ENDLIST\n"));
    resp_free(&r);
    http("GET", "/hls/rooms/r1/vod.m3u8", NULL, &r);
    assert_non_null(strstr(r.body, "#EXT-X-PLAYLIST-TYPE:VOD\n"));
    char v[64];
    assert_string_equal(hdr(&r, "Cache-Control", v, sizeof(v)), "public, max-age=60");
    resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocking_reload_answers_when_the_part_is_published),
        cmocka_unit_test(test_one_part_wakes_every_parked_viewer),
        cmocka_unit_test(test_blocking_reload_that_is_already_satisfied_answers_at_once),
        cmocka_unit_test(test_blocking_reload_too_far_ahead_is_bad_request),
        cmocka_unit_test(test_blocking_reload_times_out_with_the_current_playlist),
        cmocka_unit_test(test_parked_requests_over_the_cap_get_503),
        cmocka_unit_test(test_preload_hinted_part_is_sent_once_published),
        cmocka_unit_test(test_range_head_and_416_on_media),
        cmocka_unit_test(test_mime_types_and_caching_headers),
        cmocka_unit_test(test_traversal_and_malformed_names_are_refused),
        cmocka_unit_test(test_swept_room_is_gone),
        cmocka_unit_test(test_ended_room_answers_parked_requests_with_endlist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
