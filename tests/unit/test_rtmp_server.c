/* test_rtmp_server.c — the RTMP server on 127.0.0.1 with real publishers
 * (FFmpeg, GStreamer rtmpsink = librtmp, GStreamer rtmp2sink) and a small
 * scripted client for the protocol corners: deny path, deferred key check,
 * play refusal, wrong app, unknown commands, garbage, truncated handshake,
 * idle publisher, a client that stops reading, per-IP limit, failed-key ban,
 * unsupported codec, cross-thread close, shutdown.
 *
 * Synchronisation: the handler records events under a mutex and signals a
 * condition variable; the test waits on it with a deadline. External
 * processes are waited for with pidfd + poll. No sleeps. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/bytes.h"
#include "core/log.h"
#include "core/loop.h"
#include "ingest/amf0.h"
#include "ingest/rtmp_chunk.h"
#include "ingest/rtmp_server.h"

extern char **environ;

/* ---- recorder (handler side, runs on media loops) ------------------------ */

enum mode { MODE_ACCEPT, MODE_DENY, MODE_DEFER };

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum mode mode;
    int publishes, closes;
    char key[256], app[64], close_reason[64];
    struct rtmp_session *session; /* last published session (until closed) */
    struct loop *session_loop;
    uint64_t session_id;
    int vconf, aconf, vframes, aframes;
    char vcodec[48], acodec[48];
    int64_t last_vdts, last_adts;
    bool v_nonmonotonic, a_nonmonotonic, first_video_not_key, frame_before_config;
    int metas;
    double meta_w, meta_h, meta_fps;
};

static struct rec R;

static void rec_reset(enum mode mode)
{
    pthread_mutex_lock(&R.mu);
    pthread_mutex_t mu = R.mu;
    pthread_cond_t cv = R.cv;
    memset(&R, 0, sizeof R);
    R.mu = mu;
    R.cv = cv;
    R.mode = mode;
    R.last_vdts = R.last_adts = INT64_MIN;
    pthread_mutex_unlock(&R.mu);
}

static void h_publish(void *ctx, struct rtmp_session *s, const struct rtmp_publish_info *info)
{
    (void)ctx;
    pthread_mutex_lock(&R.mu);
    R.publishes++;
    snprintf(R.key, sizeof R.key, "%s", info->stream_key);
    snprintf(R.app, sizeof R.app, "%s", info->app);
    R.session = s;
    R.session_loop = rtmp_session_loop(s);
    R.session_id = rtmp_session_id(s);
    enum mode m = R.mode;
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
    if (m == MODE_ACCEPT)
        rtmp_session_publish_result(s, true, NULL, NULL);
    else if (m == MODE_DENY)
        rtmp_session_publish_result(s, false, NULL, "unknown stream key");
}

static void h_config(void *ctx, struct rtmp_session *s, const struct media_codec_config *c)
{
    (void)ctx;
    (void)s;
    pthread_mutex_lock(&R.mu);
    if (c->kind == MEDIA_KIND_VIDEO) {
        R.vconf++;
        snprintf(R.vcodec, sizeof R.vcodec, "%s", c->codec_string);
    } else {
        R.aconf++;
        snprintf(R.acodec, sizeof R.acodec, "%s", c->codec_string);
    }
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
}

static void h_frame(void *ctx, struct rtmp_session *s, const struct media_frame *f)
{
    (void)ctx;
    (void)s;
    pthread_mutex_lock(&R.mu);
    if (f->kind == MEDIA_KIND_VIDEO) {
        if (R.vconf == 0)
            R.frame_before_config = true;
        if (R.vframes == 0 && !f->keyframe)
            R.first_video_not_key = true;
        if (f->dts_ms < R.last_vdts)
            R.v_nonmonotonic = true;
        R.last_vdts = f->dts_ms;
        R.vframes++;
    } else {
        if (R.aconf == 0)
            R.frame_before_config = true;
        if (f->dts_ms < R.last_adts)
            R.a_nonmonotonic = true;
        R.last_adts = f->dts_ms;
        R.aframes++;
    }
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
}

static void h_meta(void *ctx, struct rtmp_session *s, double w, double h, double fps, double kbps)
{
    (void)ctx;
    (void)s;
    (void)kbps;
    pthread_mutex_lock(&R.mu);
    R.metas++;
    R.meta_w = w;
    R.meta_h = h;
    R.meta_fps = fps;
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
}

static void h_close(void *ctx, struct rtmp_session *s, const char *reason)
{
    (void)ctx;
    pthread_mutex_lock(&R.mu);
    R.closes++;
    snprintf(R.close_reason, sizeof R.close_reason, "%s", reason);
    if (R.session == s)
        R.session = NULL;
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
}

static const struct rtmp_handler handler = {
    .on_publish = h_publish, .on_codec_config = h_config, .on_frame = h_frame,
    .on_metadata = h_meta, .on_close = h_close,
};

/* Waits until cond (evaluated under R.mu) holds or timeout_ms passes. */
#define WAIT_FOR(cond, timeout_ms)                                                   \
    ({                                                                               \
        struct timespec dl_;                                                         \
        clock_gettime(CLOCK_REALTIME, &dl_);                                         \
        long long ns_ = dl_.tv_nsec + (long long)(timeout_ms) * 1000000LL;           \
        dl_.tv_sec += ns_ / 1000000000LL;                                            \
        dl_.tv_nsec = ns_ % 1000000000LL;                                            \
        pthread_mutex_lock(&R.mu);                                                   \
        while (!(cond) && pthread_cond_timedwait(&R.cv, &R.mu, &dl_) != ETIMEDOUT) { \
        }                                                                            \
        bool ok_ = (cond);                                                           \
        pthread_mutex_unlock(&R.mu);                                                 \
        ok_;                                                                         \
    })

/* ---- fixture ------------------------------------------------------------- */

struct fx {
    struct loop *accept, *media[2];
    struct rtmp_server *srv;
    int port;
};

static struct fx F;

static void test_config(struct rtmp_server_config *c)
{
    rtmp_server_config_defaults(c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:0");
    c->handshake_timeout_ms = 2000;
    c->idle_timeout_ms = 4000;
}

static void start_server(const struct rtmp_server_config *c)
{
    char err[256];
    F.srv = rtmp_server_new(c, F.accept, F.media, 2, &handler, err, sizeof err);
    if (F.srv == NULL)
        fail_msg("%s", err);
    const char *a = rtmp_server_address(F.srv);
    F.port = atoi(strrchr(a, ':') + 1);
    assert_true(F.port > 0);
}

static int setup(void **state)
{
    (void)state;
    F.accept = loop_new("t-accept", 0);
    F.media[0] = loop_new("t-media0", 0);
    F.media[1] = loop_new("t-media1", 0);
    assert_int_equal(loop_start(F.accept), 0);
    assert_int_equal(loop_start(F.media[0]), 0);
    assert_int_equal(loop_start(F.media[1]), 0);
    F.srv = NULL;
    rec_reset(MODE_ACCEPT);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rtmp_server_free(F.srv);
    F.srv = NULL;
    struct loop *ls[3] = {F.accept, F.media[0], F.media[1]};
    for (int i = 0; i < 3; i++) {
        if (ls[i] != NULL) {
            loop_stop(ls[i]);
            loop_free(ls[i]);
        }
    }
    return 0;
}

/* ---- external processes -------------------------------------------------- */

static bool have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* Per-process log file for a child's output (dumped on failure). */
static const char *log_path(const char *what)
{
    static char buf[4][128];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, sizeof buf[0], "/tmp/castgate_test_%s.%d.log", what, (int)getpid());
    return b;
}

static pid_t spawn(char *const argv[], const char *log_file)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    return pid;
}

/* Exit status, or -1 after killing it on timeout. *elapsed_ms if non-NULL. */
static int wait_pid(pid_t pid, int timeout_ms, long long *elapsed_ms)
{
    long long t0 = loop_now_ms();
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    assert_true(pfd >= 0);
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    close(pfd);
    int st = 0;
    if (n <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    waitpid(pid, &st, 0);
    if (elapsed_ms)
        *elapsed_ms = loop_now_ms() - t0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void dump_log(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 40)
        print_message("  | %s", line);
    fclose(f);
}

/* ---- a small scripted RTMP client --------------------------------------- */

struct cli {
    int fd;
    struct rtmp_chunk_reader *rd;
    uint8_t in[65536];
    size_t in_len, in_off;
    struct rtmp_message m; /* last message; payload copied below */
    uint8_t payload[1 << 20];
    struct amf0_arena arena;
    uint8_t arena_mem[65536];
    struct amf0_value *v[16];
    int nv;
};

static int tcp_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Waits for the peer to close: 1 = EOF/reset within timeout, 0 = still open. */
static int wait_eof(int fd, int timeout_ms)
{
    long long end = loop_now_ms() + timeout_ms;
    uint8_t b[4096];
    for (;;) {
        long long left = end - loop_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            return 0;
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n <= 0)
            return 1;
    }
}

static bool read_full(int fd, uint8_t *b, size_t n, int timeout_ms)
{
    size_t got = 0;
    long long end = loop_now_ms() + timeout_ms;
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = end - loop_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return false;
        ssize_t r = recv(fd, b + got, n - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static void send_all(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static struct cli *cli_open(int port)
{
    struct cli *c = calloc(1, sizeof *c);
    c->fd = tcp_connect(port, 0);
    c->rd = rtmp_chunk_reader_new(NULL);
    amf0_arena_init(&c->arena, c->arena_mem, sizeof c->arena_mem);
    /* plain handshake */
    uint8_t c0c1[1537] = {3};
    for (int i = 9; i < 1537; i++)
        c0c1[i] = (uint8_t)(i * 7);
    send_all(c->fd, c0c1, sizeof c0c1);
    uint8_t s[3073];
    assert_true(read_full(c->fd, s, sizeof s, 3000));
    assert_int_equal(s[0], 3);
    assert_memory_equal(s + 1 + 1536 + 8, c0c1 + 9, 1528); /* S2 echoes C1 */
    send_all(c->fd, s + 1, 1536); /* C2 = S1 */
    return c;
}

static void cli_close(struct cli *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    rtmp_chunk_reader_free(c->rd);
    free(c);
}

static void cli_send(struct cli *c, uint32_t csid, uint8_t type, uint32_t msid, uint32_t ts,
                     const uint8_t *p, size_t len)
{
    struct rtmp_chunk_out h = {.csid = csid, .type = type, .stream_id = msid, .timestamp = ts};
    size_t need = rtmp_chunk_write_size(&h, len, 128);
    uint8_t *buf = malloc(need);
    assert_int_equal(rtmp_chunk_write(buf, need, &h, p, len, 128), need);
    send_all(c->fd, buf, need);
    free(buf);
}

/* Sends an AMF0 command: name, txn, null, then string args (NULL ends). */
static void cli_cmd(struct cli *c, uint32_t msid, const char *name, double txn, ...)
{
    uint8_t b[2048], *p = b, *end = b + sizeof b;
    p = amf0_put_string(p, end, name);
    p = amf0_put_number(p, end, txn);
    p = amf0_put_null(p, end);
    va_list ap;
    va_start(ap, txn);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL)
        p = amf0_put_string(p, end, s);
    va_end(ap);
    assert_non_null(p);
    cli_send(c, 3, RTMP_MSG_COMMAND_AMF0, msid, 0, b, (size_t)(p - b));
}

static void cli_connect_cmd(struct cli *c, const char *app, const char *tc_url)
{
    uint8_t b[2048], *p = b, *end = b + sizeof b;
    p = amf0_put_string(p, end, "connect");
    p = amf0_put_number(p, end, 1);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "app");
    p = amf0_put_string(p, end, app);
    p = amf0_put_key(p, end, "type");
    p = amf0_put_string(p, end, "nonprivate");
    p = amf0_put_key(p, end, "tcUrl");
    p = amf0_put_string(p, end, tc_url);
    p = amf0_put_object_end(p, end);
    assert_non_null(p);
    cli_send(c, 3, RTMP_MSG_COMMAND_AMF0, 0, 0, b, (size_t)(p - b));
}

/* Next message, or false on timeout/EOF. */
static bool cli_read(struct cli *c, int timeout_ms)
{
    long long end = loop_now_ms() + timeout_ms;
    for (;;) {
        if (c->in_off < c->in_len) {
            size_t used = 0;
            int rc = rtmp_chunk_read(c->rd, c->in + c->in_off, c->in_len - c->in_off, &used, &c->m);
            c->in_off += used;
            assert_true(rc >= 0);
            if (rc == RTMP_CHUNK_MESSAGE) {
                assert_true(c->m.len <= sizeof c->payload);
                memcpy(c->payload, c->m.payload, c->m.len);
                c->m.payload = c->payload;
                return true;
            }
            continue;
        }
        long long left = end - loop_now_ms();
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return false;
        ssize_t n = recv(c->fd, c->in, sizeof c->in, 0);
        if (n <= 0)
            return false;
        c->in_len = (size_t)n;
        c->in_off = 0;
    }
}

/* Reads until an AMF0 command named `name`; decodes it into c->v. */
static bool cli_expect(struct cli *c, const char *name, int timeout_ms)
{
    long long end = loop_now_ms() + timeout_ms;
    while (cli_read(c, (int)(end - loop_now_ms() > 0 ? end - loop_now_ms() : 0))) {
        if (c->m.type != RTMP_MSG_COMMAND_AMF0)
            continue;
        amf0_arena_reset(&c->arena);
        c->nv = amf0_decode_all(c->m.payload, c->m.len, &c->arena, c->v, 16);
        if (c->nv > 0 && c->v[0]->type == AMF0_STRING && strcmp(c->v[0]->u.str.ptr, name) == 0)
            return true;
    }
    return false;
}

/* The "code" of the info object (4th value) of the last command. */
static const char *cli_code(struct cli *c)
{
    return c->nv > 3 ? amf0_get_string(c->v[3], "code") : NULL;
}

/* connect + createStream + publish(key); returns after the publish was sent. */
static void cli_publish(struct cli *c, const char *app, const char *key)
{
    char tc[128];
    snprintf(tc, sizeof tc, "rtmp://127.0.0.1:%d/%s", F.port, app);
    cli_connect_cmd(c, app, tc);
    assert_true(cli_expect(c, "_result", 3000));
    assert_string_equal(cli_code(c), "NetConnection.Connect.Success");
    cli_cmd(c, 0, "releaseStream", 2, key, NULL);
    cli_cmd(c, 0, "FCPublish", 3, key, NULL);
    cli_cmd(c, 0, "createStream", 4, NULL);
    assert_true(cli_expect(c, "_result", 3000));
    while (c->v[1]->u.number != 4) /* skip the releaseStream/FCPublish results */
        assert_true(cli_expect(c, "_result", 3000));
    assert_int_equal(c->v[3]->u.number, 1);
    cli_cmd(c, 1, "publish", 5, key, "live", NULL);
}

/* ---- real publishers ------------------------------------------------------ */

static void assert_media_ok(int min_v, int min_a)
{
    pthread_mutex_lock(&R.mu);
    print_message("  vconf=%d aconf=%d vframes=%d aframes=%d vcodec=%s acodec=%s meta=%.0fx%.0f@%.1f close=%s\n",
                  R.vconf, R.aconf, R.vframes, R.aframes, R.vcodec, R.acodec, R.meta_w, R.meta_h,
                  R.meta_fps, R.close_reason);
    assert_true(R.vconf >= 1);
    assert_true(R.aconf >= 1);
    assert_true(strncmp(R.vcodec, "avc1.", 5) == 0);
    assert_true(strncmp(R.acodec, "mp4a.40", 7) == 0);
    assert_true(R.vframes >= min_v);
    assert_true(R.aframes >= min_a);
    assert_false(R.v_nonmonotonic);
    assert_false(R.a_nonmonotonic);
    assert_false(R.first_video_not_key);
    assert_false(R.frame_before_config);
    assert_int_equal(R.publishes, 1);
    assert_int_equal(R.closes, 1);
    pthread_mutex_unlock(&R.mu);
}

static void test_ffmpeg_publish_delivers_configs_frames_and_metadata(void **state)
{
    (void)state;
    if (!have_tool("ffmpeg"))
        skip();
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    char url[128];
    snprintf(url, sizeof url, "rtmp://127.0.0.1:%d/live/ffkey?token=abc", F.port);
    char *argv[] = {"ffmpeg", "-hide_banner", "-loglevel", "warning", "-re",
                    "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-t", "3", "-f", "flv", url, NULL};
    pid_t pid = spawn(argv, log_path("ffmpeg"));
    int st = wait_pid(pid, 30000, NULL);
    if (st != 0)
        dump_log(log_path("ffmpeg"));
    assert_int_equal(st, 0);
    unlink(log_path("ffmpeg"));
    assert_true(WAIT_FOR(R.closes == 1, 5000));
    assert_string_equal(R.key, "ffkey");
    assert_string_equal(R.app, "live");
    assert_media_ok(85, 120);
    assert_true(R.metas >= 1);
    assert_int_equal((int)R.meta_w, 320);
    assert_int_equal((int)R.meta_h, 240);
    assert_int_equal((int)R.meta_fps, 30);
}

/* sink_fmt: the sink element with one %d for the port. */
static void gst_publish(const char *sink_fmt)
{
    if (!have_tool("gst-launch-1.0"))
        skip();
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    char sink[256];
    snprintf(sink, sizeof sink, sink_fmt, F.port);
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "exec gst-launch-1.0 -q "
             "videotestsrc num-buffers=60 is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 "
             "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! h264parse "
             "! flvmux name=m streamable=true ! %s "
             "audiotestsrc num-buffers=60 is-live=true ! audioconvert ! voaacenc ! aacparse ! m.",
             sink);
    char *argv[] = {"sh", "-c", cmd, NULL};
    pid_t pid = spawn(argv, log_path("gst"));
    int st = wait_pid(pid, 30000, NULL);
    if (st != 0)
        dump_log(log_path("gst"));
    assert_int_equal(st, 0);
    unlink(log_path("gst"));
    assert_true(WAIT_FOR(R.closes == 1, 5000));
    assert_string_equal(R.key, "gstkey");
    assert_media_ok(55, 50);
}

static void test_gst_rtmpsink_librtmp_publish(void **state)
{
    (void)state;
    gst_publish("rtmpsink location=\"rtmp://127.0.0.1:%d/live/gstkey live=1\"");
}

static void test_gst_rtmp2sink_publish(void **state)
{
    (void)state;
    gst_publish("rtmp2sink location=rtmp://127.0.0.1:%d/live/gstkey");
}

static void test_ffmpeg_publish_denied_exits_quickly(void **state)
{
    (void)state;
    if (!have_tool("ffmpeg"))
        skip();
    rec_reset(MODE_DENY);
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    char url[128];
    snprintf(url, sizeof url, "rtmp://127.0.0.1:%d/live/badkey", F.port);
    char *argv[] = {"ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                    "-f", "lavfi", "-i", "testsrc=size=160x120:rate=15",
                    "-c:v", "libx264", "-preset", "ultrafast", "-t", "10", "-f", "flv", url, NULL};
    long long ms = 0;
    pid_t pid = spawn(argv, log_path("ffdeny"));
    int st = wait_pid(pid, 15000, &ms);
    unlink(log_path("ffdeny"));
    print_message("  ffmpeg exit=%d after %lld ms\n", st, ms);
    assert_true(st > 0);
    assert_true(ms < 5000);
    assert_true(WAIT_FOR(R.closes == 1, 3000));
    assert_string_equal(R.close_reason, "publish denied");
    assert_int_equal(R.vframes + R.aframes + R.vconf + R.aconf, 0);
}

/* ---- scripted client: commands and refusals ------------------------------ */

static void test_deny_sends_badname_and_closes_within_a_second(void **state)
{
    (void)state;
    rec_reset(MODE_DENY);
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "nosuchkey");
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Publish.BadName");
    assert_string_equal(amf0_get_string(cl->v[3], "level"), "error");
    long long t0 = loop_now_ms();
    assert_int_equal(wait_eof(cl->fd, 1500), 1);
    print_message("  eof after %lld ms\n", loop_now_ms() - t0);
    assert_true(loop_now_ms() - t0 <= 1200);
    assert_true(WAIT_FOR(R.closes == 1, 2000));
    assert_string_equal(R.close_reason, "publish denied");
    cli_close(cl);
}

/* Posted to the session's loop by the test thread: the asynchronous key check. */
static void accept_pending(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&R.mu);
    struct rtmp_session *s = R.session;
    pthread_mutex_unlock(&R.mu);
    if (s != NULL)
        rtmp_session_publish_result(s, true, NULL, NULL);
}

/* AVC sequence header + one keyframe, FLV video tag bodies. */
/* from `ffmpeg -f lavfi -i testsrc=size=64x64 -c:v libx264 -profile:v baseline -f flv` */
static const uint8_t avc_seq[] = {
    0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x42, 0xC0, 0x0A, 0xFF, 0xE1, 0x00, 0x16, 0x67,
    0x42, 0xC0, 0x0A, 0xDA, 0x10, 0x9B, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x00, 0x20, 0xF1, 0x22, 0x6A, 0x01, 0x00, 0x04, 0x68, 0xCE, 0x0F, 0xC8};
static const uint8_t avc_key[] = {0x17, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x65, 0x88};

/* A publisher whose key check the upper layer leaves pending (MODE_DEFER). */
static struct cli *deferred_publisher(const char *name)
{
    rec_reset(MODE_DEFER);
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", name);
    assert_true(WAIT_FOR(R.publishes == 1, 3000));
    return cl;
}

/* The pending key check answers yes: Publish.Start within timeout_ms. */
static void accept_deferred(struct cli *cl, int timeout_ms)
{
    assert_int_equal(loop_post(R.session_loop, accept_pending, NULL), 0);
    assert_true(cli_expect(cl, "onStatus", timeout_ms));
    assert_string_equal(cli_code(cl), "NetStream.Publish.Start");
}

static void test_deferred_publish_holds_media_then_replays_it_in_order(void **state)
{
    (void)state;
    struct cli *cl = deferred_publisher("slowkey?x=1");
    assert_string_equal(R.key, "slowkey");
    /* media sent before the answer (a client that does not wait for
     * Publish.Start): held, nothing reaches the upper layer yet */
    cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 0, avc_seq, sizeof avc_seq);
    cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 0, avc_key, sizeof avc_key);
    cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 33, avc_key, sizeof avc_key);
    assert_false(cli_expect(cl, "onStatus", 300));
    assert_int_equal(R.vconf, 0);
    assert_int_equal(R.vframes, 0);
    accept_deferred(cl, 3000);
    /* accepted: the config and both frames, in order, the config once */
    assert_true(WAIT_FOR(R.vframes == 2, 2000));
    assert_int_equal(R.vconf, 1);
    assert_string_equal(R.vcodec, "avc1.42c00a");
    assert_int_equal(R.last_vdts, 33);
    cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 66, avc_key, sizeof avc_key);
    assert_true(WAIT_FOR(R.vframes == 3, 2000));
    assert_int_equal(R.last_vdts, 66);
    assert_int_equal(R.vconf, 1);
    cli_close(cl);
    assert_true(WAIT_FOR(R.closes == 1, 3000));
    assert_string_equal(R.close_reason, "eof");
}

/* Over HELD_TAGS_MAX (4 MiB) of media before the answer: the frames are let
 * go (a bounded hold), the latest sequence header still gets through, and
 * the stream goes on normally once accepted. */
static void test_deferred_publish_hold_is_bounded(void **state)
{
    (void)state;
    struct cli *cl = deferred_publisher("slowkey");
    cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 0, avc_seq, sizeof avc_seq);
    size_t nal = (1u << 20) - 9, len = nal + 9;
    uint8_t *big = calloc(1, len);
    assert_non_null(big);
    big[0] = 0x27; /* inter frame, AVC */
    big[1] = 0x01; /* NALU */
    big[5] = (uint8_t)(nal >> 24);
    big[6] = (uint8_t)(nal >> 16);
    big[7] = (uint8_t)(nal >> 8);
    big[8] = (uint8_t)nal;
    big[9] = 0x41;
    for (uint32_t i = 0; i < 5; i++)
        cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 33 * (i + 1), big, len);
    free(big);
    /* the server handles messages in order: once this is answered, all
     * the media above has been seen while the publish was pending */
    cli_cmd(cl, 0, "noSuchCommand", 9, NULL);
    assert_true(cli_expect(cl, "_error", 5000));
    assert_int_equal(R.vframes, 0);
    accept_deferred(cl, 5000);
    assert_true(WAIT_FOR(R.vconf == 1, 2000));
    assert_int_equal(R.vframes, 0);
    cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 200, avc_key, sizeof avc_key);
    assert_true(WAIT_FOR(R.vframes == 1, 2000));
    assert_int_equal(R.last_vdts, 200);
    cli_close(cl);
    assert_true(WAIT_FOR(R.closes == 1, 3000));
}

static void test_play_is_refused_with_clear_status(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    char tc[64];
    snprintf(tc, sizeof tc, "rtmp://127.0.0.1:%d/live", F.port);
    cli_connect_cmd(cl, "live", tc);
    assert_true(cli_expect(cl, "_result", 3000));
    cli_cmd(cl, 0, "createStream", 2, NULL);
    assert_true(cli_expect(cl, "_result", 3000));
    cli_cmd(cl, 1, "play", 0, "somekey", NULL);
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Play.Failed");
    assert_non_null(strstr(amf0_get_string(cl->v[3], "description"), "HLS"));
    assert_int_equal(wait_eof(cl->fd, 1500), 1);
    assert_int_equal(R.publishes, 0);
    cli_close(cl);
}

static void test_wrong_app_is_rejected(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_connect_cmd(cl, "other", "rtmp://127.0.0.1/other");
    assert_true(cli_expect(cl, "_error", 3000));
    assert_string_equal(cli_code(cl), "NetConnection.Connect.Rejected");
    assert_int_equal(wait_eof(cl->fd, 1500), 1);
    cli_close(cl);
}

static void test_unknown_command_gets_error_and_ping_gets_pong(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_connect_cmd(cl, "live", "rtmp://127.0.0.1/live");
    assert_true(cli_expect(cl, "_result", 3000));
    cli_cmd(cl, 0, "fooBar", 7, "x", NULL);
    assert_true(cli_expect(cl, "_error", 3000));
    assert_int_equal(cl->v[1]->u.number, 7);
    cli_cmd(cl, 0, "fooBarNoTxn", 0, NULL); /* no transaction: ignored */
    uint8_t ping[6];
    wr_be16(ping, 6);
    wr_be32(ping + 2, 0xCAFE);
    cli_send(cl, 2, RTMP_MSG_USER_CONTROL, 0, 0, ping, sizeof ping);
    bool pong = false;
    while (!pong && cli_read(cl, 3000))
        pong = cl->m.type == RTMP_MSG_USER_CONTROL && rd_be16(cl->m.payload) == 7 &&
               rd_be32(cl->m.payload + 2) == 0xCAFE;
    assert_true(pong);
    /* the session is still usable: publish works */
    cli_cmd(cl, 0, "createStream", 4, NULL);
    assert_true(cli_expect(cl, "_result", 3000));
    cli_cmd(cl, 1, "publish", 5, "afterkey", "live", NULL);
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Publish.Start");
    cli_close(cl);
    assert_true(WAIT_FOR(R.closes == 1, 3000));
}

static void test_key_in_app_path_with_empty_publish_name(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live/appkey?x=y", "");
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Publish.Start");
    assert_string_equal(R.key, "appkey");
    assert_string_equal(R.app, "live");
    cli_close(cl);
    assert_true(WAIT_FOR(R.closes == 1, 3000));
}

static void test_empty_key_is_refused_without_asking_upper_layer(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "?only=query");
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Publish.BadName");
    assert_int_equal(wait_eof(cl->fd, 1500), 1);
    assert_int_equal(R.publishes, 0);
    cli_close(cl);
}

static void test_delete_stream_ends_publish_but_lets_client_close(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    c.idle_timeout_ms = 600;
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "byekey");
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Publish.Start");
    cli_cmd(cl, 0, "FCUnpublish", 0, "byekey", NULL);
    cli_cmd(cl, 1, "deleteStream", 0, NULL);
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Unpublish.Success");
    assert_true(WAIT_FOR(R.closes == 1, 2000));
    assert_string_equal(R.close_reason, "unpublish");
    /* media after unpublish goes nowhere; a second publish is refused */
    cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 0, avc_seq, sizeof avc_seq);
    cli_cmd(cl, 0, "createStream", 9, NULL);
    assert_true(cli_expect(cl, "_result", 3000));
    cli_cmd(cl, 2, "publish", 10, "byekey", "live", NULL);
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Publish.BadName");
    assert_int_equal(R.vconf, 0);
    assert_int_equal(R.publishes, 1);
    /* the server does not hang up first; the idle timer ends a lingering client */
    assert_int_equal(wait_eof(cl->fd, 2000), 1);
    assert_int_equal(R.closes, 1); /* on_close was not called a second time */
    cli_close(cl);
}

static void test_acknowledgement_sent_per_client_window(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "ackkey");
    assert_true(cli_expect(cl, "onStatus", 3000));
    uint8_t win[4];
    wr_be32(win, 5000);
    cli_send(cl, 2, RTMP_MSG_WINDOW_ACK_SIZE, 0, 0, win, 4);
    uint8_t junk[3000];
    memset(junk, 0, sizeof junk);
    junk[0] = 0xAF; /* AAC raw frames without a config: dropped by the parser */
    junk[1] = 0x01;
    for (int i = 0; i < 3; i++)
        cli_send(cl, 4, RTMP_MSG_AUDIO, 1, (uint32_t)i, junk, sizeof junk);
    bool ack = false;
    uint32_t seq = 0;
    while (!ack && cli_read(cl, 3000)) {
        ack = cl->m.type == RTMP_MSG_ACK && cl->m.len == 4;
        if (ack)
            seq = rd_be32(cl->m.payload);
    }
    assert_true(ack);
    assert_true(seq >= 5000);
    cli_close(cl);
}

static void test_aggregate_message_is_split_into_tags(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "aggkey");
    assert_true(cli_expect(cl, "onStatus", 3000));
    /* two FLV tags (sequence header at 1000, keyframe at 1033) inside one
     * aggregate message stamped 5000: the keyframe lands at 5033 */
    uint8_t agg[256];
    size_t n = 0;
    const uint8_t *bodies[2] = {avc_seq, avc_key};
    size_t lens[2] = {sizeof avc_seq, sizeof avc_key};
    uint32_t tss[2] = {1000, 1033};
    for (int i = 0; i < 2; i++) {
        agg[n] = RTMP_MSG_VIDEO;
        wr_be24(agg + n + 1, (uint32_t)lens[i]);
        wr_be24(agg + n + 4, tss[i] & 0xFFFFFF);
        agg[n + 7] = (uint8_t)(tss[i] >> 24);
        wr_be24(agg + n + 8, 0);
        memcpy(agg + n + 11, bodies[i], lens[i]);
        wr_be32(agg + n + 11 + lens[i], (uint32_t)(11 + lens[i]));
        n += 11 + lens[i] + 4;
    }
    cli_send(cl, 6, RTMP_MSG_AGGREGATE, 1, 5000, agg, n);
    assert_true(WAIT_FOR(R.vframes == 1, 3000));
    assert_int_equal(R.vconf, 1);
    assert_int_equal(R.last_vdts, 5033);
    cli_close(cl);
}

static void test_free_after_loops_stopped_still_reports_close(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "stopkey");
    assert_true(cli_expect(cl, "onStatus", 3000));
    loop_stop(F.accept);
    loop_stop(F.media[0]);
    loop_stop(F.media[1]);
    rtmp_server_free(F.srv);
    F.srv = NULL;
    assert_int_equal(R.closes, 1);
    assert_string_equal(R.close_reason, "shutdown");
    /* libevent closes a freed bufferevent's socket from the loop's
     * finalizers: with the loop stopped, that is when the loop is freed */
    for (int i = 0; i < 2; i++) {
        loop_free(F.media[i]);
        F.media[i] = NULL;
    }
    loop_free(F.accept);
    F.accept = NULL;
    assert_int_equal(wait_eof(cl->fd, 2000), 1);
    cli_close(cl);
}

static void test_total_connection_limit(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    c.max_connections = 1;
    start_server(&c);
    struct cli *a = cli_open(F.port);
    int fd = tcp_connect(F.port, 0);
    assert_int_equal(wait_eof(fd, 2000), 1);
    close(fd);
    assert_int_equal(rtmp_server_connection_count(F.srv), 1);
    cli_close(a);
}

static void test_connection_that_never_publishes_is_closed_when_idle(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    c.idle_timeout_ms = 300;
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_connect_cmd(cl, "live", "rtmp://127.0.0.1/live");
    assert_true(cli_expect(cl, "_result", 3000));
    long long t0 = loop_now_ms();
    assert_int_equal(wait_eof(cl->fd, 3000), 1);
    assert_true(loop_now_ms() - t0 >= 150);
    assert_int_equal(R.publishes, 0);
    cli_close(cl);
}

/* ---- hostile and broken clients ------------------------------------------ */

static void test_garbage_instead_of_handshake_is_closed(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    int fd = tcp_connect(F.port, 0);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, strlen(req));
    long long t0 = loop_now_ms();
    assert_int_equal(wait_eof(fd, 2000), 1);
    assert_true(loop_now_ms() - t0 < 1000);
    close(fd);
}

static void test_truncated_handshake_times_out(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    c.handshake_timeout_ms = 300;
    start_server(&c);
    int fd = tcp_connect(F.port, 0);
    uint8_t part[101] = {3};
    send_all(fd, part, sizeof part);
    long long t0 = loop_now_ms();
    assert_int_equal(wait_eof(fd, 3000), 1);
    long long ms = loop_now_ms() - t0;
    print_message("  closed after %lld ms\n", ms);
    assert_true(ms >= 200 && ms < 1500);
    close(fd);
}

static void test_invalid_chunk_size_closes_connection(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    uint8_t zero[4] = {0, 0, 0, 0};
    cli_send(cl, 2, RTMP_MSG_SET_CHUNK_SIZE, 0, 0, zero, 4);
    assert_int_equal(wait_eof(cl->fd, 2000), 1);
    cli_close(cl);
}

static void test_idle_publisher_is_closed(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    c.idle_timeout_ms = 400;
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "idlekey");
    assert_true(cli_expect(cl, "onStatus", 3000));
    long long t0 = loop_now_ms();
    assert_true(WAIT_FOR(R.closes == 1, 3000));
    long long ms = loop_now_ms() - t0;
    print_message("  idle close after %lld ms\n", ms);
    assert_string_equal(R.close_reason, "idle");
    assert_true(ms >= 250);
    cli_close(cl);
}

static void test_client_that_stops_reading_is_closed(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    c.max_output_bytes = 16 * 1024;
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "slowreader");
    assert_true(cli_expect(cl, "onStatus", 3000));
    int small = 4096;
    setsockopt(cl->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* flood pings, never read the pongs */
    uint8_t ping[6];
    wr_be16(ping, 6);
    wr_be32(ping + 2, 1);
    struct rtmp_chunk_out h = {.csid = 2, .type = RTMP_MSG_USER_CONTROL};
    uint8_t one[32];
    size_t n1 = rtmp_chunk_write(one, sizeof one, &h, ping, sizeof ping, 128);
    uint8_t *burst = malloc(n1 * 4096);
    for (int i = 0; i < 4096; i++)
        memcpy(burst + (size_t)i * n1, one, n1);
    struct timeval tv = {.tv_sec = 1};
    setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    bool closed = false;
    for (int round = 0; round < 2000 && !closed; round++) {
        if (send(cl->fd, burst, n1 * 4096, MSG_NOSIGNAL) < 0)
            break;
        pthread_mutex_lock(&R.mu);
        closed = R.closes > 0;
        pthread_mutex_unlock(&R.mu);
    }
    free(burst);
    assert_true(WAIT_FOR(R.closes == 1, 5000));
    assert_string_equal(R.close_reason, "slow reader");
    cli_close(cl);
}

static void test_per_ip_connection_limit(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    c.max_connections_per_ip = 2;
    start_server(&c);
    struct cli *a = cli_open(F.port), *b = cli_open(F.port);
    int fd = tcp_connect(F.port, 0);
    assert_int_equal(wait_eof(fd, 2000), 1); /* refused at accept */
    close(fd);
    cli_close(a); /* frees a slot */
    /* the server notices a's close asynchronously; retry until admitted */
    struct cli *d = NULL;
    for (int i = 0; i < 50 && d == NULL; i++) {
        int t = tcp_connect(F.port, 0);
        uint8_t c0c1[1537] = {3};
        send_all(t, c0c1, sizeof c0c1);
        uint8_t s1;
        struct pollfd p = {.fd = t, .events = POLLIN};
        if (poll(&p, 1, 1000) == 1 && recv(t, &s1, 1, 0) == 1) {
            d = calloc(1, sizeof *d);
            d->fd = t;
        } else {
            close(t);
        }
    }
    assert_non_null(d);
    close(d->fd);
    free(d);
    cli_close(b);
}

static void test_repeated_failed_keys_ban_the_ip(void **state)
{
    (void)state;
    rec_reset(MODE_DENY);
    struct rtmp_server_config c;
    test_config(&c);
    c.failed_key_ban_threshold = 2;
    start_server(&c);
    for (int i = 0; i < 2; i++) {
        struct cli *cl = cli_open(F.port);
        cli_publish(cl, "live", "wrong");
        assert_true(cli_expect(cl, "onStatus", 3000));
        assert_string_equal(cli_code(cl), "NetStream.Publish.BadName");
        assert_int_equal(wait_eof(cl->fd, 2000), 1);
        cli_close(cl);
    }
    int fd = tcp_connect(F.port, 0);
    uint8_t c0c1[1537] = {3};
    send(fd, c0c1, sizeof c0c1, MSG_NOSIGNAL);
    assert_int_equal(wait_eof(fd, 2000), 1); /* no S0S1S2: banned */
    close(fd);
    assert_int_equal(R.publishes, 2);
}

static void test_unsupported_codec_fails_publish_cleanly(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "h263key");
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Publish.Start");
    const uint8_t h263[] = {0x12, 0x00, 0x00, 0x84, 0x00}; /* codec id 2: Sorenson H.263 */
    cli_send(cl, 6, RTMP_MSG_VIDEO, 1, 0, h263, sizeof h263);
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_string_equal(cli_code(cl), "NetStream.Publish.Failed");
    assert_int_equal(wait_eof(cl->fd, 2000), 1);
    assert_true(WAIT_FOR(R.closes == 1, 2000));
    assert_string_equal(R.close_reason, "unsupported codec");
    assert_int_equal(R.vframes, 0);
    cli_close(cl);
}

static void test_close_from_another_thread_by_id(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "takeme");
    assert_true(cli_expect(cl, "onStatus", 3000));
    assert_int_equal(rtmp_server_close_session(F.srv, R.session_loop, R.session_id, "takeover"), 0);
    assert_true(WAIT_FOR(R.closes == 1, 3000));
    assert_string_equal(R.close_reason, "takeover");
    assert_int_equal(wait_eof(cl->fd, 2000), 1);
    /* unknown id: queued, harmless */
    assert_int_equal(rtmp_server_close_session(F.srv, F.media[0], 999999, "x"), 0);
    assert_int_equal(rtmp_server_close_session(F.srv, F.accept, 1, "x"), -1);
    cli_close(cl);
}

static void test_server_free_closes_published_sessions(void **state)
{
    (void)state;
    struct rtmp_server_config c;
    test_config(&c);
    start_server(&c);
    struct cli *cl = cli_open(F.port);
    cli_publish(cl, "live", "shutkey");
    assert_true(cli_expect(cl, "onStatus", 3000));
    struct cli *idle = cli_open(F.port); /* connected, never publishes */
    rtmp_server_free(F.srv);
    F.srv = NULL;
    assert_int_equal(R.closes, 1); /* synchronous: done when free returns */
    assert_string_equal(R.close_reason, "shutdown");
    assert_int_equal(wait_eof(cl->fd, 2000), 1);
    assert_int_equal(wait_eof(idle->fd, 2000), 1);
    cli_close(cl);
    cli_close(idle);
}

static void test_config_validation(void **state)
{
    (void)state;
    char err[256];
    struct rtmp_server_config c;
    test_config(&c);
    c.max_chunk_size = 0;
    assert_null(rtmp_server_new(&c, F.accept, F.media, 2, &handler, err, sizeof err));
    assert_non_null(strstr(err, "max_chunk_size"));
    test_config(&c);
    c.max_chunk_size = (16u << 20) + 1;
    assert_null(rtmp_server_new(&c, F.accept, F.media, 2, &handler, err, sizeof err));
    test_config(&c);
    snprintf(c.listen, sizeof c.listen, "not-an-address");
    assert_null(rtmp_server_new(&c, F.accept, F.media, 2, &handler, err, sizeof err));
    assert_non_null(strstr(err, "listen"));
    test_config(&c);
    snprintf(c.app, sizeof c.app, "a/b");
    assert_null(rtmp_server_new(&c, F.accept, F.media, 2, &handler, err, sizeof err));
    test_config(&c);
    assert_null(rtmp_server_new(&c, F.accept, F.media, 0, &handler, err, sizeof err));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop_global_init();
    pthread_mutex_init(&R.mu, NULL);
    pthread_cond_init(&R.cv, NULL);
    if (getenv("TEST_VERBOSE") == NULL)
        log_set_level(LOG_WARN);
    else if (strcmp(getenv("TEST_VERBOSE"), "2") == 0)
        log_set_level(LOG_DEBUG);
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deny_sends_badname_and_closes_within_a_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_publish_holds_media_then_replays_it_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_publish_hold_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_play_is_refused_with_clear_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_app_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_command_gets_error_and_ping_gets_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_in_app_path_with_empty_publish_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_key_is_refused_without_asking_upper_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_stream_ends_publish_but_lets_client_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acknowledgement_sent_per_client_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_message_is_split_into_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_after_loops_stopped_still_reports_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_connection_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_that_never_publishes_is_closed_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_instead_of_handshake_is_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_handshake_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_chunk_size_closes_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_publisher_is_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_that_stops_reading_is_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_ip_connection_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_failed_keys_ban_the_ip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_codec_fails_publish_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_another_thread_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_free_closes_published_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ffmpeg_publish_delivers_configs_frames_and_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ffmpeg_publish_denied_exits_quickly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gst_rtmpsink_librtmp_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gst_rtmp2sink_publish, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
