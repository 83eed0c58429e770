/* rtmp_server.c — RTMP listener, per-connection sessions and the publisher
 * command set (SPEC §3 ING-1..ING-4, ING-7). See rtmp_server.h.
 *
 * Structure:
 *   listener (accept loop)  -> limits/bans -> loop_post(session_start) on a
 *   media loop (round-robin) -> session: a read event recv()s into the
 *   loop's scratch buffer and feeds the handshake, then the chunk reader;
 *   each message is dispatched by type. Replies go out through a bufferevent
 *   used for writing only.
 *
 * A session is freed only from its own event (ev_close, made active by
 * session_close) or by the shutdown job on its loop, never inside a callback
 * that may still touch it (Redis-style asynchronous close). */
#include "ingest/rtmp_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "core/bytes.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "ingest/amf0.h"
#include "ingest/flv.h"
#include "ingest/rtmp_chunk.h"
#include "ingest/rtmp_handshake.h"

#define ARENA_SIZE (64 * 1024)
#define MAX_AMF_VALUES 16
/* Reads go straight from the socket into the loop's scratch buffer, up to
 * READ_CHUNK per recv() and READ_BUDGET per wakeup (then other sessions get
 * their turn; level-triggered epoll reports the rest). libevent 2.1's
 * bufferevent reads at most 4096 bytes per callback, each costing one
 * epoll_wait + ioctl(FIONREAD) + readv: three loop passes per 720p frame. */
#define READ_CHUNK (64 * 1024)
#define READ_BUDGET (256 * 1024)
#define GRACEFUL_CLOSE_MS 1000
#define FAIL_WINDOW_MS 60000
#define MAX_STREAMS_PER_CONN 8
#define KEY_MAX 255
#define CONFIG_COPY_MAX (256 * 1024) /* ceiling for a held-back sequence header */
#define HELD_TAGS_MAX (4u << 20)       /* media held while the stream key is checked */

/* chunk stream ids we send on (conventional values) */
#define CSID_PROTOCOL 2
#define CSID_COMMAND 3
#define CSID_STREAM 5

/* User Control event types (RTMP 1.0 §7.1.7) */
#define UC_STREAM_BEGIN 0
#define UC_PING_REQUEST 6
#define UC_PING_RESPONSE 7

enum sess_state { /* ordered: comparisons like state >= S_PUBLISH_PENDING are used */
    S_HANDSHAKE,
    S_WAIT_CONNECT,
    S_CONNECTED,
    S_UNPUBLISHED, /* published once and stopped; the client closes the socket */
    S_PUBLISH_PENDING,
    S_PUBLISHING,
};

struct held_config { /* sequence header received while the publish was pending */
    uint8_t *data;
    size_t len;
    int64_t ts;
};

/* A media tag that arrived while the publish was pending (clients that do not
 * wait for NetStream.Publish.Start): replayed in order once accepted. */
struct held_tag {
    struct held_tag *next;
    uint8_t type;
    int64_t ts;
    size_t len;
    uint8_t data[];
};

struct worker {
    struct rtmp_server *srv;
    struct loop *loop;
    struct rtmp_session *sessions; /* doubly linked, this loop's only */
    bool shutdown;
    struct amf0_arena arena;       /* scratch for decoding one message at a time */
    uint8_t arena_mem[ARENA_SIZE];
    uint8_t rbuf[READ_CHUNK];      /* socket reads of this loop's sessions */
};

struct rtmp_session {
    struct rtmp_server *srv;
    struct worker *w;
    struct rtmp_session *prev, *next;
    uint64_t id;
    struct bufferevent *bev;   /* output only (EV_WRITE) */
    struct event *ev_read;     /* input: on_sock_read */
    struct event *ev_timer;
    struct event *ev_close;
    struct rtmp_handshake *hs;
    struct rtmp_chunk_reader *rd;

    enum sess_state state;
    char peer_ip[INET6_ADDRSTRLEN];
    int peer_port;
    char peer[INET6_ADDRSTRLEN + 8];
    char app[128];
    char tc_url[512];
    char app_key[KEY_MAX + 1]; /* key given in the app path (rtmp://h/live/KEY as app) */
    char key[KEY_MAX + 1];
    char key_hint[16];         /* first 4 chars + "…" for logs */

    uint32_t out_chunk_size;
    uint32_t streams_created;
    uint32_t publish_msid;
    uint32_t ack_window;       /* from the client's Window Ack Size, else ours */
    uint64_t bytes_in, last_ack;

    long long created_ms;
    long long activity_ms;     /* idle deadline base */
    _Atomic long long last_media_ms;
    long long close_deadline_ms;

    bool got_on_publish, on_close_done, counted_live;
    bool closing, graceful;
    char close_reason[64];

    bool have_meta;
    double meta[4];
    struct held_config held[2]; /* [MEDIA_KIND_VIDEO], [MEDIA_KIND_AUDIO] */
    struct held_tag *held_head, *held_tail;
    size_t held_bytes;
    bool held_overflow;         /* over HELD_TAGS_MAX: only the configs are kept */
    int malformed_logged;
    void *userdata;
};

struct ip_entry {
    char ip[INET6_ADDRSTRLEN];
    int conns;
    int fails;
    long long fail_window_start;
    long long ban_until;
};

struct rtmp_server {
    struct rtmp_server_config cfg;
    struct rtmp_handler h;
    struct loop *accept_loop;
    struct evconnlistener *listener;
    char address[INET6_ADDRSTRLEN + 8];
    struct worker *workers;
    int nworkers;
    unsigned rr;
    _Atomic int nconns;
    _Atomic uint64_t next_id;

    pthread_mutex_t mu; /* guards ips[] */
    struct ip_entry *ips;
    int nips, ips_cap;

    long long refuse_log_ms; /* accept-thread only: rate limit for refusal logs */
    int refuse_suppressed;
};

/* ---- config ------------------------------------------------------------ */

void rtmp_server_config_defaults(struct rtmp_server_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "0.0.0.0:1935");
    snprintf(c->app, sizeof c->app, "live");
    c->max_connections = 1000;
    c->max_connections_per_ip = 50;
    c->max_chunk_size = 65536;
    c->max_message_size = 8u * 1024 * 1024;
    c->max_chunk_streams = 64;
    c->handshake_timeout_ms = 10000;
    c->idle_timeout_ms = 10000;
    c->failed_key_ban_threshold = 10;
    c->failed_key_ban_ms = 60000;
    c->max_output_bytes = 1024 * 1024;
    c->out_chunk_size = 4096;
    c->window_ack_size = 2500000;
}

void rtmp_server_config_from(struct rtmp_server_config *c, const struct config *cfg)
{
    rtmp_server_config_defaults(c);
    snprintf(c->listen, sizeof c->listen, "%s", cfg->rtmp_listen);
    snprintf(c->app, sizeof c->app, "%s", cfg->rtmp_app);
    if (cfg->ingest_idle_sec > 0)
        c->idle_timeout_ms = cfg->ingest_idle_sec * 1000;
    if (cfg->rtmp_max_connections > 0)
        c->max_connections = cfg->rtmp_max_connections;
    if (cfg->rtmp_max_connections_per_ip > 0)
        c->max_connections_per_ip = cfg->rtmp_max_connections_per_ip;
    if (cfg->rtmp_max_chunk_size > 0)
        c->max_chunk_size = (uint32_t)cfg->rtmp_max_chunk_size;
    if (cfg->rtmp_max_message_size > 0)
        c->max_message_size = (uint32_t)cfg->rtmp_max_message_size;
    if (cfg->rtmp_handshake_timeout_sec > 0)
        c->handshake_timeout_ms = cfg->rtmp_handshake_timeout_sec * 1000;
    if (cfg->rtmp_failed_key_ban_threshold >= 0)
        c->failed_key_ban_threshold = cfg->rtmp_failed_key_ban_threshold;
    if (cfg->rtmp_failed_key_ban_sec > 0)
        c->failed_key_ban_ms = cfg->rtmp_failed_key_ban_sec * 1000;
}

/* ---- per-IP accounting (any thread, under srv->mu) --------------------- */

static struct ip_entry *ip_find(struct rtmp_server *srv, const char *ip)
{
    for (int i = 0; i < srv->nips; i++)
        if (strcmp(srv->ips[i].ip, ip) == 0)
            return &srv->ips[i];
    return NULL;
}

static bool ip_entry_idle(const struct ip_entry *e, long long now)
{
    return e->conns == 0 && e->ban_until <= now &&
           (e->fails == 0 || now - e->fail_window_start > FAIL_WINDOW_MS);
}

static void ip_compact(struct rtmp_server *srv, long long now)
{
    int j = 0;
    for (int i = 0; i < srv->nips; i++)
        if (!ip_entry_idle(&srv->ips[i], now))
            srv->ips[j++] = srv->ips[i];
    srv->nips = j;
}

/* Admits one more connection from ip. NULL on success, else the reason. */
static const char *ip_admit(struct rtmp_server *srv, const char *ip)
{
    long long now = loop_now_ms();
    const char *why = NULL;
    pthread_mutex_lock(&srv->mu);
    struct ip_entry *e = ip_find(srv, ip);
    if (e == NULL) {
        if (srv->nips == srv->ips_cap)
            ip_compact(srv, now);
        if (srv->nips == srv->ips_cap) {
            why = "ip table full";
            goto out;
        }
        e = &srv->ips[srv->nips++];
        memset(e, 0, sizeof *e);
        snprintf(e->ip, sizeof e->ip, "%s", ip);
    }
    if (e->ban_until > now)
        why = "banned";
    else if (e->conns >= srv->cfg.max_connections_per_ip)
        why = "too many connections from ip";
    else
        e->conns++;
out:
    pthread_mutex_unlock(&srv->mu);
    return why;
}

static void ip_release(struct rtmp_server *srv, const char *ip)
{
    pthread_mutex_lock(&srv->mu);
    struct ip_entry *e = ip_find(srv, ip);
    if (e != NULL && e->conns > 0)
        e->conns--;
    pthread_mutex_unlock(&srv->mu);
}

/* A refused publish from ip (ING-7 failed-key ban). */
static void ip_failed_publish(struct rtmp_server *srv, const char *ip)
{
    if (srv->cfg.failed_key_ban_threshold <= 0)
        return;
    long long now = loop_now_ms();
    bool banned = false;
    int fails = 0;
    pthread_mutex_lock(&srv->mu);
    struct ip_entry *e = ip_find(srv, ip);
    if (e != NULL) {
        if (e->fails == 0 || now - e->fail_window_start > FAIL_WINDOW_MS) {
            e->fails = 0;
            e->fail_window_start = now;
        }
        fails = ++e->fails;
        if (fails >= srv->cfg.failed_key_ban_threshold && e->ban_until <= now) {
            e->ban_until = now + srv->cfg.failed_key_ban_ms;
            banned = true;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    if (banned)
        log_warn("rtmp: ip banned ip=%s failed_publishes=%d ban_ms=%d", ip, fails,
                 srv->cfg.failed_key_ban_ms);
}

/* ---- output -------------------------------------------------------------- */

static void session_close(struct rtmp_session *s, const char *reason, bool graceful);

static void send_msg(struct rtmp_session *s, uint32_t csid, uint8_t type, uint32_t msid,
                     const uint8_t *p, size_t len)
{
    if (s->closing && !s->graceful)
        return;
    struct rtmp_chunk_out h = {.csid = csid, .type = type, .stream_id = msid, .timestamp = 0};
    size_t need = rtmp_chunk_write_size(&h, len, s->out_chunk_size);
    uint8_t stackbuf[8192];
    uint8_t *buf = need <= sizeof stackbuf ? stackbuf : malloc(need);
    if (buf == NULL) {
        session_close(s, "out of memory", false);
        return;
    }
    size_t n = rtmp_chunk_write(buf, need, &h, p, len, s->out_chunk_size);
    if (n > 0)
        bufferevent_write(s->bev, buf, n);
    if (buf != stackbuf)
        free(buf);
    /* A client that does not read its replies is closed before its
     * output can grow past the ceiling (ING-7). */
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) > s->srv->cfg.max_output_bytes)
        session_close(s, "slow reader", false);
}

static void send_u32(struct rtmp_session *s, uint8_t type, uint32_t v)
{
    uint8_t b[4];
    wr_be32(b, v);
    send_msg(s, CSID_PROTOCOL, type, 0, b, 4);
}

static void send_user_control(struct rtmp_session *s, uint16_t event, uint32_t v)
{
    uint8_t b[6];
    wr_be16(b, event);
    wr_be32(b + 2, v);
    send_msg(s, CSID_PROTOCOL, RTMP_MSG_USER_CONTROL, 0, b, sizeof b);
}

/* AMF0 body builder over amf0_put_*: once one put fails, p stays NULL. */
struct amfbuf {
    uint8_t b[4096];
    uint8_t *p;
};

static void ab_init(struct amfbuf *a) { a->p = a->b; }
static const uint8_t *ab_end(const struct amfbuf *a) { return a->b + sizeof a->b; }
static void ab_str(struct amfbuf *a, const char *s) { if (a->p) a->p = amf0_put_string(a->p, ab_end(a), s); }
static void ab_num(struct amfbuf *a, double v) { if (a->p) a->p = amf0_put_number(a->p, ab_end(a), v); }
static void ab_null(struct amfbuf *a) { if (a->p) a->p = amf0_put_null(a->p, ab_end(a)); }
static void ab_obj(struct amfbuf *a) { if (a->p) a->p = amf0_put_object_start(a->p, ab_end(a)); }
static void ab_end_obj(struct amfbuf *a) { if (a->p) a->p = amf0_put_object_end(a->p, ab_end(a)); }
static void ab_key(struct amfbuf *a, const char *k) { if (a->p) a->p = amf0_put_key(a->p, ab_end(a), k); }
static void ab_kstr(struct amfbuf *a, const char *k, const char *v) { ab_key(a, k); ab_str(a, v); }
static void ab_knum(struct amfbuf *a, const char *k, double v) { ab_key(a, k); ab_num(a, v); }

static void send_amf(struct rtmp_session *s, uint32_t csid, uint32_t msid, const struct amfbuf *a)
{
    if (a->p == NULL) {
        log_error("rtmp: reply too large id=%llu", (unsigned long long)s->id);
        return;
    }
    send_msg(s, csid, RTMP_MSG_COMMAND_AMF0, msid, a->b, (size_t)(a->p - a->b));
}

static void send_on_status(struct rtmp_session *s, uint32_t msid, const char *level,
                           const char *code, const char *desc)
{
    struct amfbuf a;
    ab_init(&a);
    ab_str(&a, "onStatus");
    ab_num(&a, 0);
    ab_null(&a);
    ab_obj(&a);
    ab_kstr(&a, "level", level);
    ab_kstr(&a, "code", code);
    ab_kstr(&a, "description", desc);
    ab_end_obj(&a);
    send_amf(s, CSID_STREAM, msid, &a);
}

/* _result / _error with a null command object and an optional info object. */
static void send_result(struct rtmp_session *s, const char *name, double txn,
                        const char *level, const char *code, const char *desc)
{
    struct amfbuf a;
    ab_init(&a);
    ab_str(&a, name);
    ab_num(&a, txn);
    ab_null(&a);
    if (code != NULL) {
        ab_obj(&a);
        ab_kstr(&a, "level", level);
        ab_kstr(&a, "code", code);
        ab_kstr(&a, "description", desc);
        ab_end_obj(&a);
    } else {
        ab_null(&a);
    }
    send_amf(s, CSID_COMMAND, 0, &a);
}

/* ---- session lifetime ---------------------------------------------------- */

static void key_hint(char *out, size_t n, const char *key)
{
    /* never the whole key: 4 characters and an ellipsis at most */
    snprintf(out, n, "%.4s\xE2\x80\xA6", key);
}

static void held_tags_clear(struct rtmp_session *s)
{
    struct held_tag *t = s->held_head;
    while (t) {
        struct held_tag *n = t->next;
        free(t);
        t = n;
    }
    s->held_head = s->held_tail = NULL;
    s->held_bytes = 0;
}

static void session_free_now(struct rtmp_session *s)
{
    struct rtmp_server *srv = s->srv;
    if (s->got_on_publish && !s->on_close_done) {
        s->on_close_done = true;
        if (srv->h.on_close)
            srv->h.on_close(srv->h.ctx, s, s->close_reason[0] ? s->close_reason : "closed");
    }
    log_info("rtmp: closed id=%llu peer=%s reason=\"%s\" bytes_in=%llu duration_ms=%lld",
             (unsigned long long)s->id, s->peer, s->close_reason[0] ? s->close_reason : "closed",
             (unsigned long long)s->bytes_in, loop_now_ms() - s->created_ms);
    if (s->counted_live)
        metrics_add(METRIC_LIVE_STREAMS, -1);
    metrics_add(METRIC_RTMP_CONNECTIONS, -1);

    if (s->prev)
        s->prev->next = s->next;
    else
        s->w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;

    if (s->ev_read)
        event_free(s->ev_read); /* before the bufferevent closes the fd */
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->ev_timer)
        event_free(s->ev_timer);
    if (s->ev_close)
        event_free(s->ev_close);
    rtmp_handshake_free(s->hs);
    rtmp_chunk_reader_free(s->rd);
    for (int i = 0; i < 2; i++)
        free(s->held[i].data);
    held_tags_clear(s);
    ip_release(srv, s->peer_ip);
    atomic_fetch_sub(&srv->nconns, 1);
    free(s);
}

static void on_close_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_free_now(arg);
}

static void arm_timer(struct rtmp_session *s);

/* Starts closing. graceful: stop reading, let queued replies (an error
 * status) reach the client, free within GRACEFUL_CLOSE_MS. Otherwise free
 * as soon as the current callback returns. */
static void session_close(struct rtmp_session *s, const char *reason, bool graceful)
{
    if (s->closing) {
        if (graceful || !s->graceful)
            return;
        s->graceful = false; /* escalate to immediate */
        event_active(s->ev_close, EV_TIMEOUT, 0);
        return;
    }
    s->closing = true;
    s->graceful = graceful;
    snprintf(s->close_reason, sizeof s->close_reason, "%s", reason ? reason : "closed");
    if (!graceful || s->bev == NULL ||
        evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        event_active(s->ev_close, EV_TIMEOUT, 0);
        return;
    }
    if (s->ev_read)
        event_del(s->ev_read);
    s->close_deadline_ms = loop_now_ms() + GRACEFUL_CLOSE_MS;
    arm_timer(s);
}

void rtmp_session_close(struct rtmp_session *s, const char *reason)
{
    session_close(s, reason, false);
}

static long long session_deadline(const struct rtmp_session *s)
{
    const struct rtmp_server_config *c = &s->srv->cfg;
    if (s->closing)
        return s->close_deadline_ms;
    if (s->state == S_HANDSHAKE)
        return s->created_ms + c->handshake_timeout_ms;
    return s->activity_ms + c->idle_timeout_ms;
}

static void arm_timer(struct rtmp_session *s)
{
    long long left = session_deadline(s) - loop_now_ms();
    if (left < 0)
        left = 0;
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    evtimer_add(s->ev_timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct rtmp_session *s = arg;
    if (loop_now_ms() < session_deadline(s)) {
        arm_timer(s); /* activity moved the deadline */
        return;
    }
    if (s->closing)
        session_close(s, NULL, false);
    else if (s->state == S_HANDSHAKE)
        session_close(s, "handshake timeout", false);
    else
        session_close(s, "idle", false);
}

/* ---- media --------------------------------------------------------------- */

static void deliver_metadata(struct rtmp_session *s)
{
    if (s->have_meta && s->srv->h.on_metadata)
        s->srv->h.on_metadata(s->srv->h.ctx, s, s->meta[0], s->meta[1], s->meta[2], s->meta[3]);
}

static void publish_failed(struct rtmp_session *s, const char *code, const char *desc,
                           const char *reason)
{
    send_on_status(s, s->publish_msid, "error", code, desc);
    session_close(s, reason, true);
}

/* Parses one audio/video tag body and hands the result up. */
static void handle_media(struct rtmp_session *s, uint8_t type, const uint8_t *p, size_t len,
                         int64_t ts)
{
    struct media_codec_config cfg;
    struct media_frame f;
    const char *reason = NULL;
    memset(&cfg, 0, sizeof cfg);
    memset(&f, 0, sizeof f);
    int rc = type == RTMP_MSG_VIDEO ? flv_parse_video(p, len, ts, &cfg, &f, &reason)
                                    : flv_parse_audio(p, len, ts, &cfg, &f, &reason);

    if (s->state == S_PUBLISH_PENDING) {
        /* Media waits for the key check: every tag is held (up to
         * HELD_TAGS_MAX) and replayed in order when the publish is accepted,
         * so a client that does not wait for Publish.Start loses nothing.
         * Past the limit only the latest sequence headers are kept. */
        if (!s->held_overflow) {
            if (s->held_bytes + len > HELD_TAGS_MAX) {
                log_warn("rtmp: media before publish accepted over %u bytes: dropped id=%llu key=%s",
                         HELD_TAGS_MAX, (unsigned long long)s->id, s->key_hint);
                held_tags_clear(s);
                s->held_overflow = true;
            } else {
                struct held_tag *t = malloc(sizeof *t + len);
                if (t != NULL) {
                    t->next = NULL;
                    t->type = type;
                    t->ts = ts;
                    t->len = len;
                    memcpy(t->data, p, len);
                    if (s->held_tail)
                        s->held_tail->next = t;
                    else
                        s->held_head = t;
                    s->held_tail = t;
                    s->held_bytes += len;
                }
            }
        }
        if (rc == FLV_CONFIG && len <= CONFIG_COPY_MAX) {
            struct held_config *hc = &s->held[type == RTMP_MSG_VIDEO ? MEDIA_KIND_VIDEO : MEDIA_KIND_AUDIO];
            uint8_t *copy = malloc(len ? len : 1);
            if (copy != NULL) {
                memcpy(copy, p, len);
                free(hc->data);
                hc->data = copy;
                hc->len = len;
                hc->ts = ts;
            }
        }
        return;
    }

    long long now = loop_now_ms();
    atomic_store_explicit(&s->last_media_ms, now, memory_order_relaxed);
    s->activity_ms = now;
    metrics_add(METRIC_INGEST_BYTES_TOTAL, (long long)len);

    switch (rc) {
    case FLV_CONFIG:
        if (s->srv->h.on_codec_config)
            s->srv->h.on_codec_config(s->srv->h.ctx, s, &cfg);
        break;
    case FLV_FRAME:
        if (s->srv->h.on_frame)
            s->srv->h.on_frame(s->srv->h.ctx, s, &f);
        break;
    case FLV_IGNORED:
    case FLV_ERR_TRUNCATED:
        break;
    case FLV_ERR_UNSUPPORTED:
        /* ING-5: refused with a clear log line and status, never a crash */
        log_warn("rtmp: unsupported codec id=%llu peer=%s key=%s reason=\"%s\"",
                 (unsigned long long)s->id, s->peer, s->key_hint, reason ? reason : "unsupported");
        publish_failed(s, "NetStream.Publish.Failed", reason ? reason : "unsupported codec",
                       "unsupported codec");
        break;
    default:
        if (s->malformed_logged < 3) {
            s->malformed_logged++;
            log_warn("rtmp: malformed %s tag dropped id=%llu key=%s reason=\"%s\"",
                     type == RTMP_MSG_VIDEO ? "video" : "audio", (unsigned long long)s->id,
                     s->key_hint, reason ? reason : "malformed");
        }
        break;
    }
}

/* onMetaData (ING-9 quality figures): width, height, framerate, videodatarate. */
static void handle_data(struct rtmp_session *s, const uint8_t *p, size_t len)
{
    struct worker *w = s->w;
    struct amf0_value *v[MAX_AMF_VALUES];
    amf0_arena_reset(&w->arena);
    int n = amf0_decode_all(p, len, &w->arena, v, MAX_AMF_VALUES);
    if (n < 2 || v[0]->type != AMF0_STRING)
        return;
    const struct amf0_value *obj = NULL;
    if (strcmp(v[0]->u.str.ptr, "@setDataFrame") == 0) {
        if (n >= 3 && v[1]->type == AMF0_STRING && strcmp(v[1]->u.str.ptr, "onMetaData") == 0)
            obj = v[2];
    } else if (strcmp(v[0]->u.str.ptr, "onMetaData") == 0) {
        obj = v[1];
    }
    if (obj == NULL || (obj->type != AMF0_OBJECT && obj->type != AMF0_ECMA_ARRAY))
        return;
    double m[4] = {0, 0, 0, 0};
    amf0_get_number(obj, "width", &m[0]);
    amf0_get_number(obj, "height", &m[1]);
    if (!amf0_get_number(obj, "framerate", &m[2]))
        amf0_get_number(obj, "fps", &m[2]);
    amf0_get_number(obj, "videodatarate", &m[3]);
    /* encoders repeat onMetaData (GStreamer's flvmux every second): hand it
     * up only when a value changed */
    if (s->have_meta && memcmp(s->meta, m, sizeof m) == 0)
        return;
    memcpy(s->meta, m, sizeof m);
    s->have_meta = true;
    log_info("rtmp: metadata id=%llu width=%.0f height=%.0f fps=%.2f kbps=%.0f",
             (unsigned long long)s->id, m[0], m[1], m[2], m[3]);
    if (s->state == S_PUBLISHING)
        deliver_metadata(s);
}

/* Aggregate message (type 22): a run of FLV tags whose timestamps are
 * relative to the first one's, rebased on the message timestamp. */
static void handle_aggregate(struct rtmp_session *s, const uint8_t *p, size_t len, int64_t ts)
{
    size_t off = 0;
    bool first = true;
    uint32_t base = 0;
    while (off + 11 <= len && !s->closing) {
        uint8_t type = p[off] & 0x1f;
        uint32_t size = rd_be24(p + off + 1);
        uint32_t tts = rd_be24(p + off + 4) | (uint32_t)p[off + 7] << 24;
        if (size > len - off - 11)
            break;
        if (first) {
            base = tts;
            first = false;
        }
        const uint8_t *body = p + off + 11;
        int64_t t = ts + (int32_t)(tts - base);
        if (type == RTMP_MSG_AUDIO || type == RTMP_MSG_VIDEO)
            handle_media(s, type, body, size, t);
        else if (type == RTMP_MSG_DATA_AMF0)
            handle_data(s, body, size);
        off += 11 + (size_t)size + 4; /* + PreviousTagSize */
    }
}

/* ---- commands (ING-3) ---------------------------------------------------- */

/* Copies s[0..) up to '?' into out, dropping trailing '/'. */
static void strip_query(char *out, size_t n, const char *s)
{
    size_t len = strcspn(s, "?");
    if (len >= n)
        len = n - 1;
    memcpy(out, s, len);
    out[len] = 0;
    while (len > 0 && out[len - 1] == '/')
        out[--len] = 0;
}

static bool key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] <= 0x20 || (unsigned char)k[i] >= 0x7f)
            return false;
    return true;
}

static const char *amf_str(struct amf0_value **v, int n, int i)
{
    return i < n && v[i]->type == AMF0_STRING ? v[i]->u.str.ptr : NULL;
}

static void cmd_connect(struct rtmp_session *s, double txn, const struct amf0_value *obj)
{
    const struct rtmp_server_config *c = &s->srv->cfg;
    if (s->state != S_WAIT_CONNECT) {
        send_result(s, "_error", txn, "error", "NetConnection.Call.Failed", "already connected");
        return;
    }
    const char *app = obj ? amf0_get_string(obj, "app") : NULL;
    const char *tc = obj ? amf0_get_string(obj, "tcUrl") : NULL;
    double enc = 0;
    if (obj)
        amf0_get_number(obj, "objectEncoding", &enc);
    strip_query(s->app, sizeof s->app, app ? app : "");
    snprintf(s->tc_url, sizeof s->tc_url, "%s", tc ? tc : "");
    while (s->app[0] == '/')
        memmove(s->app, s->app + 1, strlen(s->app));

    /* ING-1: the configured app, or app/KEY (key in the path). */
    size_t alen = strlen(c->app);
    bool ok = strcmp(s->app, c->app) == 0;
    if (!ok && strncmp(s->app, c->app, alen) == 0 && s->app[alen] == '/') {
        snprintf(s->app_key, sizeof s->app_key, "%s", s->app + alen + 1);
        s->app[alen] = 0;
        ok = true;
    }
    if (!ok) {
        log_warn("rtmp: connect rejected id=%llu peer=%s app=\"%.*s\"", (unsigned long long)s->id,
                 s->peer, (int)strcspn(s->app, "/"), s->app);
        send_result(s, "_error", txn, "error", "NetConnection.Connect.Rejected",
                    "unknown application");
        session_close(s, "connect rejected", true);
        return;
    }

    send_u32(s, RTMP_MSG_WINDOW_ACK_SIZE, c->window_ack_size);
    uint8_t bw[5];
    wr_be32(bw, c->window_ack_size);
    bw[4] = 2; /* dynamic */
    send_msg(s, CSID_PROTOCOL, RTMP_MSG_SET_PEER_BANDWIDTH, 0, bw, sizeof bw);
    send_u32(s, RTMP_MSG_SET_CHUNK_SIZE, c->out_chunk_size);
    s->out_chunk_size = c->out_chunk_size;

    struct amfbuf a;
    ab_init(&a);
    ab_str(&a, "_result");
    ab_num(&a, txn);
    ab_obj(&a);
    ab_kstr(&a, "fmsVer", "FMS/3,0,1,123");
    ab_knum(&a, "capabilities", 31);
    ab_knum(&a, "mode", 1);
    ab_end_obj(&a);
    ab_obj(&a);
    ab_kstr(&a, "level", "status");
    ab_kstr(&a, "code", "NetConnection.Connect.Success");
    ab_kstr(&a, "description", "Connection succeeded.");
    ab_knum(&a, "objectEncoding", enc);
    ab_end_obj(&a);
    send_amf(s, CSID_COMMAND, 0, &a);
    s->state = S_CONNECTED;
    log_info("rtmp: connect id=%llu peer=%s app=%s", (unsigned long long)s->id, s->peer, s->app);
}

static void cmd_create_stream(struct rtmp_session *s, double txn)
{
    if (s->state < S_CONNECTED || s->streams_created >= MAX_STREAMS_PER_CONN) {
        send_result(s, "_error", txn, "error", "NetConnection.Call.Failed", "createStream refused");
        return;
    }
    uint32_t id = ++s->streams_created;
    struct amfbuf a;
    ab_init(&a);
    ab_str(&a, "_result");
    ab_num(&a, txn);
    ab_null(&a);
    ab_num(&a, id);
    send_amf(s, CSID_COMMAND, 0, &a);
}

static void cmd_publish(struct rtmp_session *s, const struct rtmp_message *m, const char *name)
{
    struct rtmp_server *srv = s->srv;
    uint32_t msid = m->stream_id ? m->stream_id : 1;
    if (s->state != S_CONNECTED) {
        send_on_status(s, msid, "error", "NetStream.Publish.BadName",
                       s->state < S_CONNECTED      ? "connect first"
                       : s->state == S_UNPUBLISHED ? "reconnect to publish again"
                                                   : "already publishing");
        return;
    }
    s->publish_msid = msid;

    /* ING-1: the publish name is the key; "?query" ignored. OBS-style
     * rtmp://host/APP/KEY with an empty name: the key came in the app path
     * or, failing that, as the last tcUrl path element. */
    strip_query(s->key, sizeof s->key, name ? name : "");
    if (s->key[0] == 0 && s->app_key[0] != 0)
        strip_query(s->key, sizeof s->key, s->app_key);
    if (s->key[0] == 0 && s->tc_url[0] != 0) {
        char tc[sizeof s->tc_url];
        strip_query(tc, sizeof tc, s->tc_url);
        char needle[sizeof srv->cfg.app + 2];
        snprintf(needle, sizeof needle, "/%s/", srv->cfg.app);
        const char *at = strstr(tc, needle);
        if (at != NULL)
            snprintf(s->key, sizeof s->key, "%s", at + strlen(needle));
    }
    key_hint(s->key_hint, sizeof s->key_hint, s->key);
    if (!key_valid(s->key)) {
        log_warn("rtmp: publish refused id=%llu peer=%s reason=\"invalid stream key\"",
                 (unsigned long long)s->id, s->peer);
        metrics_add(METRIC_PUBLISH_DENIED_TOTAL, 1);
        ip_failed_publish(srv, s->peer_ip);
        publish_failed(s, "NetStream.Publish.BadName", "invalid stream key", "publish denied");
        return;
    }

    s->state = S_PUBLISH_PENDING;
    s->activity_ms = loop_now_ms();
    s->got_on_publish = true;
    log_info("rtmp: publish requested id=%llu peer=%s app=%s key=%s", (unsigned long long)s->id,
             s->peer, s->app, s->key_hint);
    if (srv->h.on_publish == NULL) {
        rtmp_session_publish_result(s, true, NULL, NULL);
        return;
    }
    struct rtmp_publish_info info = {
        .app = s->app, .stream_key = s->key, .tc_url = s->tc_url,
        .peer_ip = s->peer_ip, .peer_port = s->peer_port,
    };
    srv->h.on_publish(srv->h.ctx, s, &info);
}

void rtmp_session_publish_result(struct rtmp_session *s, bool ok, const char *code,
                                 const char *description)
{
    if (s->state != S_PUBLISH_PENDING || s->closing)
        return;
    if (!ok) {
        log_info("rtmp: publish denied id=%llu peer=%s key=%s code=%s", (unsigned long long)s->id,
                 s->peer, s->key_hint, code ? code : "NetStream.Publish.BadName");
        metrics_add(METRIC_PUBLISH_DENIED_TOTAL, 1);
        ip_failed_publish(s->srv, s->peer_ip);
        publish_failed(s, code ? code : "NetStream.Publish.BadName",
                       description ? description : "publish refused", "publish denied");
        return;
    }
    s->state = S_PUBLISHING;
    long long now = loop_now_ms();
    s->activity_ms = now;
    atomic_store_explicit(&s->last_media_ms, now, memory_order_relaxed);
    s->counted_live = true;
    metrics_add(METRIC_LIVE_STREAMS, 1);
    send_user_control(s, UC_STREAM_BEGIN, s->publish_msid);
    send_on_status(s, s->publish_msid, "status", "NetStream.Publish.Start", "Start publishing");
    log_info("rtmp: publish accepted id=%llu peer=%s key=%s", (unsigned long long)s->id, s->peer,
             s->key_hint);
    deliver_metadata(s);
    if (s->held_head != NULL) {
        /* everything that arrived while the key was being checked, in order */
        struct held_tag *t = s->held_head;
        s->held_head = s->held_tail = NULL;
        s->held_bytes = 0;
        while (t) {
            struct held_tag *n = t->next;
            if (!s->closing)
                handle_media(s, t->type, t->data, t->len, t->ts);
            free(t);
            t = n;
        }
        for (int k = 0; k < 2; k++) { /* already in the replay */
            free(s->held[k].data);
            s->held[k].data = NULL;
        }
    }
    /* sequence headers that arrived while the key was being checked */
    for (int k = 0; k < 2 && !s->closing; k++) {
        struct held_config *hc = &s->held[k];
        if (hc->data == NULL)
            continue;
        uint8_t *d = hc->data;
        hc->data = NULL;
        handle_media(s, k == MEDIA_KIND_VIDEO ? RTMP_MSG_VIDEO : RTMP_MSG_AUDIO, d, hc->len, hc->ts);
        free(d);
    }
}

/* The publisher stopped (deleteStream / closeStream). The upper layer hears
 * on_close("unpublish") now; the socket stays open for the client to close
 * (GStreamer rtmp2sink reports an error if the server closes first), and the
 * idle timer ends it if the client lingers. No further callbacks. */
static void session_unpublish(struct rtmp_session *s)
{
    s->state = S_UNPUBLISHED;
    s->activity_ms = loop_now_ms();
    if (s->counted_live) {
        s->counted_live = false;
        metrics_add(METRIC_LIVE_STREAMS, -1);
    }
    log_info("rtmp: unpublish id=%llu peer=%s key=%s", (unsigned long long)s->id, s->peer,
             s->key_hint);
    if (s->got_on_publish && !s->on_close_done) {
        s->on_close_done = true;
        if (s->srv->h.on_close)
            s->srv->h.on_close(s->srv->h.ctx, s, "unpublish");
    }
}

static void handle_command(struct rtmp_session *s, const struct rtmp_message *m,
                           const uint8_t *p, size_t len)
{
    struct worker *w = s->w;
    struct amf0_value *v[MAX_AMF_VALUES];
    amf0_arena_reset(&w->arena);
    int n = amf0_decode_all(p, len, &w->arena, v, MAX_AMF_VALUES);
    const char *name = n > 0 ? amf_str(v, n, 0) : NULL;
    if (name == NULL) {
        log_debug("rtmp: undecodable command dropped id=%llu rc=%d", (unsigned long long)s->id, n);
        return;
    }
    double txn = n > 1 && v[1]->type == AMF0_NUMBER ? v[1]->u.number : 0;
    const struct amf0_value *obj = n > 2 ? v[2] : NULL;
    log_debug("rtmp: command id=%llu name=%s txn=%.0f", (unsigned long long)s->id, name, txn);

    if (strcmp(name, "connect") == 0) {
        cmd_connect(s, txn, obj);
    } else if (s->state < S_CONNECTED) {
        if (txn > 0)
            send_result(s, "_error", txn, "error", "NetConnection.Call.Failed", "connect first");
    } else if (strcmp(name, "releaseStream") == 0) {
        if (txn > 0)
            send_result(s, "_result", txn, NULL, NULL, NULL);
    } else if (strcmp(name, "FCPublish") == 0) {
        if (txn > 0)
            send_result(s, "_result", txn, NULL, NULL, NULL);
        struct amfbuf a;
        ab_init(&a);
        ab_str(&a, "onFCPublish");
        ab_num(&a, 0);
        ab_null(&a);
        ab_obj(&a);
        ab_kstr(&a, "code", "NetStream.Publish.Start");
        ab_kstr(&a, "description", "FCPublish");
        ab_end_obj(&a);
        send_amf(s, CSID_COMMAND, 0, &a);
    } else if (strcmp(name, "createStream") == 0) {
        cmd_create_stream(s, txn);
    } else if (strcmp(name, "publish") == 0) {
        cmd_publish(s, m, amf_str(v, n, 3));
    } else if (strcmp(name, "FCUnpublish") == 0) {
        if (txn > 0)
            send_result(s, "_result", txn, NULL, NULL, NULL);
        struct amfbuf a;
        ab_init(&a);
        ab_str(&a, "onFCUnpublish");
        ab_num(&a, 0);
        ab_null(&a);
        ab_obj(&a);
        ab_kstr(&a, "code", "NetStream.Unpublish.Success");
        ab_kstr(&a, "description", "FCUnpublish");
        ab_end_obj(&a);
        send_amf(s, CSID_COMMAND, 0, &a);
    } else if (strcmp(name, "deleteStream") == 0 || strcmp(name, "closeStream") == 0) {
        if (s->state >= S_PUBLISH_PENDING) {
            send_on_status(s, s->publish_msid, "status", "NetStream.Unpublish.Success",
                           "Stop publishing");
            session_unpublish(s);
        }
    } else if (strcmp(name, "play") == 0 || strcmp(name, "play2") == 0) {
        uint32_t msid = m->stream_id ? m->stream_id : 1;
        log_info("rtmp: play refused id=%llu peer=%s", (unsigned long long)s->id, s->peer);
        send_on_status(s, msid, "error", "NetStream.Play.Failed",
                       "playback is not offered over RTMP; use the HLS URL");
        session_close(s, "play refused", true);
    } else if (strcmp(name, "_result") == 0 || strcmp(name, "_error") == 0 ||
               strcmp(name, "onStatus") == 0) {
        /* replies to calls we never make: ignore */
    } else if (strcmp(name, "@setDataFrame") == 0 || strcmp(name, "onMetaData") == 0) {
        handle_data(s, p, len); /* some encoders send metadata as a command */
    } else if (txn > 0) {
        send_result(s, "_error", txn, "error", "NetConnection.Call.Failed", "unknown command");
    }
}

/* ---- message dispatch ---------------------------------------------------- */

static void handle_message(struct rtmp_session *s, const struct rtmp_message *m)
{
    const uint8_t *p = m->payload;
    size_t len = m->len;
    switch (m->type) {
    case RTMP_MSG_SET_CHUNK_SIZE: /* applied by the reader */
    case RTMP_MSG_ABORT:
    case RTMP_MSG_ACK:
    case RTMP_MSG_SET_PEER_BANDWIDTH:
        break;
    case RTMP_MSG_WINDOW_ACK_SIZE:
        if (len >= 4)
            s->ack_window = rd_be32(p);
        break;
    case RTMP_MSG_USER_CONTROL:
        if (len >= 6 && rd_be16(p) == UC_PING_REQUEST)
            send_user_control(s, UC_PING_RESPONSE, rd_be32(p + 2));
        break;
    case RTMP_MSG_COMMAND_AMF3: /* AMF0 body behind a format byte */
        if (len > 0)
            handle_command(s, m, p + 1, len - 1);
        break;
    case RTMP_MSG_COMMAND_AMF0:
        handle_command(s, m, p, len);
        break;
    case RTMP_MSG_AUDIO:
    case RTMP_MSG_VIDEO:
        if (s->state >= S_PUBLISH_PENDING)
            handle_media(s, m->type, p, len, m->timestamp64);
        break;
    case RTMP_MSG_DATA_AMF3:
        if (len > 0 && s->state >= S_PUBLISH_PENDING)
            handle_data(s, p + 1, len - 1);
        break;
    case RTMP_MSG_DATA_AMF0:
        if (s->state >= S_PUBLISH_PENDING)
            handle_data(s, p, len);
        break;
    case RTMP_MSG_AGGREGATE:
        if (s->state >= S_PUBLISH_PENDING)
            handle_aggregate(s, p, len, m->timestamp64);
        break;
    default:
        break; /* shared objects and unknown types: ignored, never fatal */
    }
}

static void maybe_ack(struct rtmp_session *s)
{
    uint32_t win = s->ack_window ? s->ack_window : s->srv->cfg.window_ack_size;
    if (s->state == S_HANDSHAKE || win == 0 || s->bytes_in - s->last_ack < win)
        return;
    s->last_ack = s->bytes_in;
    send_u32(s, RTMP_MSG_ACK, (uint32_t)s->bytes_in);
}

static void handshake_done(struct rtmp_session *s)
{
    const struct rtmp_server_config *c = &s->srv->cfg;
    log_debug("rtmp: handshake done id=%llu kind=%s", (unsigned long long)s->id,
              rtmp_handshake_kind(s->hs) == RTMP_HS_KIND_DIGEST ? "digest" : "plain");
    rtmp_handshake_free(s->hs);
    s->hs = NULL;
    struct rtmp_chunk_limits lim = {
        .max_chunk_size = c->max_chunk_size,
        .max_message_size = c->max_message_size,
        .max_chunk_streams = c->max_chunk_streams,
        .max_buffered = 2 * (size_t)c->max_message_size,
    };
    s->rd = rtmp_chunk_reader_new(&lim);
    if (s->rd == NULL) {
        session_close(s, "out of memory", false);
        return;
    }
    s->state = S_WAIT_CONNECT;
    s->activity_ms = loop_now_ms();
    arm_timer(s);
}

/* Feeds received bytes to the handshake, then to the chunk reader, message
 * by message, until they are used up or the session is closing. */
static void feed(struct rtmp_session *s, const uint8_t *data, size_t len)
{
    while (!s->closing && len > 0) {
        if (s->state == S_HANDSHAKE) {
            ssize_t r = rtmp_handshake_feed(s->hs, data, len);
            if (r < 0) {
                log_info("rtmp: handshake failed id=%llu peer=%s first_byte=%u",
                         (unsigned long long)s->id, s->peer, data[0]);
                session_close(s, "handshake failed", false);
                break;
            }
            data += r;
            len -= (size_t)r;
            s->bytes_in += (size_t)r;
            size_t olen;
            const uint8_t *out = rtmp_handshake_take_output(s->hs, &olen);
            if (out != NULL)
                bufferevent_write(s->bev, out, olen);
            if (rtmp_handshake_state(s->hs) == RTMP_HS_DONE)
                handshake_done(s);
            continue;
        }
        struct rtmp_message m;
        size_t used = 0;
        int rc = rtmp_chunk_read(s->rd, data, len, &used, &m);
        data += used;
        len -= used;
        s->bytes_in += used;
        if (rc < 0) {
            log_warn("rtmp: protocol error id=%llu peer=%s err=\"%s\"", (unsigned long long)s->id,
                     s->peer, rtmp_chunk_strerror(rc));
            session_close(s, "protocol error", false);
            break;
        }
        if (rc == RTMP_CHUNK_MESSAGE)
            handle_message(s, &m);
        maybe_ack(s);
    }
}

static void on_sock_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct rtmp_session *s = arg;
    uint8_t *buf = s->w->rbuf;
    size_t total = 0;
    while (!s->closing && total < READ_BUDGET) {
        ssize_t n = recv(fd, buf, READ_CHUNK, MSG_DONTWAIT);
        if (n > 0) {
            total += (size_t)n;
            feed(s, buf, (size_t)n);
            if ((size_t)n < READ_CHUNK)
                break; /* the socket is (very likely) empty: epoll says when it is not */
            continue;
        }
        if (n == 0) {
            session_close(s, "eof", false);
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            session_close(s, "socket error", false);
        }
        break;
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct rtmp_session *s = arg;
    if (s->closing && s->graceful && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        event_active(s->ev_close, EV_TIMEOUT, 0);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct rtmp_session *s = arg;
    if (what & BEV_EVENT_EOF)
        session_close(s, "eof", false);
    else if (what & BEV_EVENT_ERROR)
        session_close(s, "socket error", false);
}

/* ---- accept and hand-off ------------------------------------------------- */

struct pending_conn {
    struct worker *w;
    evutil_socket_t fd;
    char ip[INET6_ADDRSTRLEN];
    int port;
};

static void session_start(void *arg)
{
    struct pending_conn *pc = arg;
    struct worker *w = pc->w;
    struct rtmp_server *srv = w->srv;
    struct event_base *base = loop_base(w->loop);
    struct rtmp_session *s = NULL;

    if (w->shutdown)
        goto fail;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto fail;
    s->srv = srv;
    s->w = w;
    s->id = atomic_fetch_add(&srv->next_id, 1) + 1;
    snprintf(s->peer_ip, sizeof s->peer_ip, "%s", pc->ip);
    s->peer_port = pc->port;
    snprintf(s->peer, sizeof s->peer, strchr(pc->ip, ':') ? "[%s]:%d" : "%s:%d", pc->ip, pc->port);
    s->out_chunk_size = RTMP_CHUNK_SIZE_DEFAULT;
    s->created_ms = loop_now_ms();
    s->state = S_HANDSHAKE;
    key_hint(s->key_hint, sizeof s->key_hint, "");
    s->hs = rtmp_handshake_new((uint32_t)s->created_ms);
    s->ev_timer = evtimer_new(base, on_timer, s);
    s->ev_close = event_new(base, -1, 0, on_close_event, s);
    s->ev_read = event_new(base, pc->fd, EV_READ | EV_PERSIST, on_sock_read, s);
    s->bev = bufferevent_socket_new(base, pc->fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->bev != NULL)
        pc->fd = -1; /* owned by the bufferevent now */
    if (s->hs == NULL || s->ev_timer == NULL || s->ev_close == NULL || s->bev == NULL || s->ev_read == NULL)
        goto fail;

    int one = 1;
    setsockopt(bufferevent_getfd(s->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_setcb(s->bev, NULL, on_write, on_event, s);
    bufferevent_enable(s->bev, EV_WRITE);
    bufferevent_disable(s->bev, EV_READ); /* reads: ev_read */
    if (event_add(s->ev_read, NULL) != 0)
        goto fail;

    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
    metrics_add(METRIC_RTMP_CONNECTIONS, 1);
    metrics_add(METRIC_RTMP_ACCEPTED_TOTAL, 1);
    log_info("rtmp: accepted id=%llu peer=%s loop=%s", (unsigned long long)s->id, s->peer,
             loop_name(w->loop));
    arm_timer(s);
    free(pc);
    return;

fail:
    if (s != NULL) {
        if (s->ev_read)
            event_free(s->ev_read);
        if (s->bev)
            bufferevent_free(s->bev);
        if (s->ev_timer)
            event_free(s->ev_timer);
        if (s->ev_close)
            event_free(s->ev_close);
        rtmp_handshake_free(s->hs);
        free(s);
    }
    if (pc->fd >= 0)
        evutil_closesocket(pc->fd);
    ip_release(srv, pc->ip);
    atomic_fetch_sub(&srv->nconns, 1);
    free(pc);
}

static void refuse(struct rtmp_server *srv, evutil_socket_t fd, const char *ip, const char *why)
{
    evutil_closesocket(fd);
    metrics_add(METRIC_RTMP_REFUSED_TOTAL, 1);
    long long now = loop_now_ms();
    if (now - srv->refuse_log_ms >= 1000) {
        log_warn("rtmp: connection refused ip=%s reason=\"%s\" suppressed=%d", ip, why,
                 srv->refuse_suppressed);
        srv->refuse_log_ms = now;
        srv->refuse_suppressed = 0;
    } else {
        srv->refuse_suppressed++;
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)l;
    (void)socklen;
    struct rtmp_server *srv = arg;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
    }

    if (atomic_load(&srv->nconns) >= srv->cfg.max_connections) {
        refuse(srv, fd, ip, "too many connections");
        return;
    }
    const char *why = ip_admit(srv, ip);
    if (why != NULL) {
        refuse(srv, fd, ip, why);
        return;
    }
    atomic_fetch_add(&srv->nconns, 1);

    struct pending_conn *pc = malloc(sizeof *pc);
    struct worker *w = &srv->workers[srv->rr++ % (unsigned)srv->nworkers];
    if (pc != NULL) {
        pc->w = w;
        pc->fd = fd;
        pc->port = port;
        snprintf(pc->ip, sizeof pc->ip, "%s", ip);
        if (loop_post(w->loop, session_start, pc) == 0)
            return;
        free(pc);
    }
    ip_release(srv, ip);
    atomic_fetch_sub(&srv->nconns, 1);
    refuse(srv, fd, ip, "media loop busy");
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    /* EMFILE and friends: log; libevent keeps the listener armed. */
    log_error("rtmp: accept: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* ---- cross-loop jobs ------------------------------------------------------ */

struct sync_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    void (*fn)(void *);
    void *arg;
};

static void sync_job_run(void *arg)
{
    struct sync_job *j = arg;
    j->fn(j->arg);
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Runs fn(arg) on loop l and waits; runs it here when this thread is l's,
 * or when l no longer takes jobs (stopped). */
static void run_on_loop(struct loop *l, void (*fn)(void *), void *arg)
{
    if (loop_is_current(l)) {
        fn(arg);
        return;
    }
    struct sync_job j = {.done = false, .fn = fn, .arg = arg};
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    if (loop_post(l, sync_job_run, &j) != 0) {
        fn(arg);
    } else {
        pthread_mutex_lock(&j.mu);
        while (!j.done)
            pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
    }
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
}

struct close_req {
    struct worker *w;
    uint64_t id;
    char reason[64];
};

static void close_by_id(void *arg)
{
    struct close_req *r = arg;
    if (!r->w->shutdown) {
        for (struct rtmp_session *s = r->w->sessions; s != NULL; s = s->next) {
            if (s->id == r->id) {
                session_close(s, r->reason, false);
                break;
            }
        }
    }
    free(r);
}

int rtmp_server_close_session(struct rtmp_server *srv, struct loop *l, uint64_t id,
                              const char *reason)
{
    for (int i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].loop != l)
            continue;
        struct close_req *r = malloc(sizeof *r);
        if (r == NULL)
            return -1;
        r->w = &srv->workers[i];
        r->id = id;
        snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "closed");
        if (loop_post(l, close_by_id, r) != 0) {
            free(r);
            return -1;
        }
        return 0;
    }
    return -1;
}

/* ---- server lifetime ------------------------------------------------------ */

static void listener_free_job(void *arg)
{
    struct rtmp_server *srv = arg;
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
}

static void worker_shutdown_job(void *arg)
{
    struct worker *w = arg;
    w->shutdown = true;
    while (w->sessions != NULL) {
        struct rtmp_session *s = w->sessions;
        if (!s->closing)
            snprintf(s->close_reason, sizeof s->close_reason, "shutdown");
        s->closing = true;
        session_free_now(s);
    }
}

/* "ip:port" / "[ip6]:port" with a numeric host (no DNS: this may run on a
 * loop thread); port 0 = any free port. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, int *len)
{
    char host[INET6_ADDRSTRLEN];
    int port;
    if (config_split_hostport(s, host, sizeof host, &port) != 0)
        return -1;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

struct rtmp_server *rtmp_server_new(const struct rtmp_server_config *cfg, struct loop *accept_loop,
                                    struct loop **media_loops, int n, const struct rtmp_handler *h,
                                    char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    struct rtmp_server *srv = NULL;

    if (n < 1 || media_loops == NULL || accept_loop == NULL) {
        snprintf(err, errlen, "rtmp: no media loops");
        return NULL;
    }
    if (cfg->max_chunk_size == 0 || cfg->max_chunk_size > RTMP_CHUNK_SIZE_HARD_MAX) {
        snprintf(err, errlen, "rtmp: max_chunk_size must be 1..%u", RTMP_CHUNK_SIZE_HARD_MAX);
        return NULL;
    }
    if (cfg->out_chunk_size < 128 || cfg->out_chunk_size > 65536) {
        snprintf(err, errlen, "rtmp: out_chunk_size must be 128..65536");
        return NULL;
    }
    if (cfg->app[0] == 0 || strchr(cfg->app, '/') != NULL) {
        snprintf(err, errlen, "rtmp: app name must be non-empty without '/'");
        return NULL;
    }
    if (parse_listen(cfg->listen, &ss, &sslen) != 0) {
        snprintf(err, errlen, "rtmp: bad listen address \"%s\" (want numeric host:port)",
                 cfg->listen);
        return NULL;
    }

    srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        goto nomem;
    srv->cfg = *cfg;
    if (srv->cfg.max_connections <= 0)
        srv->cfg.max_connections = 1000;
    if (srv->cfg.max_connections_per_ip <= 0)
        srv->cfg.max_connections_per_ip = 50;
    if (srv->cfg.max_output_bytes == 0)
        srv->cfg.max_output_bytes = 1024 * 1024;
    if (h != NULL)
        srv->h = *h;
    srv->accept_loop = accept_loop;
    pthread_mutex_init(&srv->mu, NULL);
    srv->ips_cap = srv->cfg.max_connections + 1024;
    srv->ips = calloc((size_t)srv->ips_cap, sizeof *srv->ips);
    srv->workers = calloc((size_t)n, sizeof *srv->workers);
    if (srv->ips == NULL || srv->workers == NULL)
        goto nomem;
    srv->nworkers = n;
    for (int i = 0; i < n; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->loop = media_loops[i];
        amf0_arena_init(&w->arena, w->arena_mem, sizeof w->arena_mem);
    }

    srv->listener = evconnlistener_new_bind(
        loop_base(accept_loop), on_accept, srv,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_THREADSAFE, 128,
        (struct sockaddr *)&ss, sslen);
    if (srv->listener == NULL) {
        snprintf(err, errlen, "rtmp: listen on %s: %s", cfg->listen, strerror(errno));
        goto fail;
    }
    evconnlistener_set_error_cb(srv->listener, on_accept_error);

    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound, &blen) == 0) {
        if (bound.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&bound;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&bound;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        }
    }
    snprintf(srv->address, sizeof srv->address, bound.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
             host, port);
    log_info("rtmp: listening addr=%s app=%s loops=%d", srv->address, srv->cfg.app, n);
    return srv;

nomem:
    snprintf(err, errlen, "rtmp: out of memory");
fail:
    if (srv != NULL) {
        free(srv->ips);
        free(srv->workers);
        pthread_mutex_destroy(&srv->mu);
        free(srv);
    }
    return NULL;
}

const char *rtmp_server_address(const struct rtmp_server *srv) { return srv->address; }
int rtmp_server_connection_count(const struct rtmp_server *srv) { return atomic_load(&srv->nconns); }

void rtmp_server_free(struct rtmp_server *srv)
{
    if (srv == NULL)
        return;
    /* 1. no new connections (on the accept loop, so no accept callback
     *    runs concurrently); 2. each loop closes its sessions. Jobs already
     *    queued on a loop (session_start) run first: the inbox is FIFO. */
    run_on_loop(srv->accept_loop, listener_free_job, srv);
    for (int i = 0; i < srv->nworkers; i++)
        run_on_loop(srv->workers[i].loop, worker_shutdown_job, &srv->workers[i]);
    free(srv->ips);
    free(srv->workers);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

/* ---- small accessors ------------------------------------------------------ */

void rtmp_session_set_userdata(struct rtmp_session *s, void *p) { s->userdata = p; }
void *rtmp_session_userdata(const struct rtmp_session *s) { return s->userdata; }
struct loop *rtmp_session_loop(const struct rtmp_session *s) { return s->w->loop; }
uint64_t rtmp_session_id(const struct rtmp_session *s) { return s->id; }
const char *rtmp_session_peer(const struct rtmp_session *s) { return s->peer; }
uint64_t rtmp_session_bytes_in(const struct rtmp_session *s) { return s->bytes_in; }

long long rtmp_session_last_media_ms(const struct rtmp_session *s)
{
    return atomic_load_explicit(&s->last_media_ms, memory_order_relaxed);
}
