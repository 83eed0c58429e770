/* rtmp_server.h — the RTMP listener and publisher sessions (SPEC §3 ING-1..4,
 * ING-6 hooks, ING-7).
 *
 * Threads: one listener on `accept_loop`; each accepted connection is handed
 * round-robin to one of the media loops (core/loop.h loop_post) and lives
 * there until it closes. Every rtmp_session_* call and every handler callback
 * happens on the session's loop thread, with the exceptions marked
 * "any thread".
 *
 * A session runs: handshake (rtmp_handshake) -> chunk stream (rtmp_chunk) ->
 * commands (connect, releaseStream, FCPublish, createStream, publish, ...).
 * `publish` asks the upper layer through handler.on_publish, which answers
 * later with rtmp_session_publish_result() (the database check, ING-4). Only
 * after ok=true are audio/video/data messages parsed (ingest/flv.h) and
 * handed up as codec configs and frames (core/media.h). Before that they are
 * dropped, except that the latest codec configuration of each kind is kept
 * and delivered first when the publish is accepted.
 *
 * Limits (ING-7), all in struct rtmp_server_config: connections total and per
 * IP, failed publishes per IP (a temporary ban), chunk/message sizes,
 * handshake and idle timeouts, and a ceiling on each session's unsent output
 * (a client that stops reading is closed; memory never grows).
 *
 * Logs never contain a stream key: at most its first 4 characters + "…". */
#ifndef INGEST_RTMP_SERVER_H
#define INGEST_RTMP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/media.h"

struct loop;
struct config;
struct rtmp_server;
struct rtmp_session;

struct rtmp_server_config {
    char listen[128];              /* "host:port", "[::]:1935"; port 0 = any free port */
    char app[64];                  /* accepted application name (rtmp_app, default "live") */
    int max_connections;           /* total open connections (1000) */
    int max_connections_per_ip;    /* (50) */
    uint32_t max_chunk_size;       /* largest Set Chunk Size accepted from a client (65536; 1..16 MiB) */
    uint32_t max_message_size;     /* (8 MiB) */
    uint32_t max_chunk_streams;    /* live chunk streams per connection (64) */
    int handshake_timeout_ms;      /* (10000) */
    int idle_timeout_ms;           /* no media for this long -> close "idle" (ingest_idle_sec, 10000) */
    int failed_key_ban_threshold;  /* refused publishes per IP per minute before a ban (10; 0 = never) */
    int failed_key_ban_ms;         /* ban duration (60000) */
    size_t max_output_bytes;       /* unsent bytes per session before it is closed (1 MiB) */
    uint32_t out_chunk_size;       /* our chunk size, announced after connect (4096) */
    uint32_t window_ack_size;      /* announced Window Acknowledgement Size (2500000) */
};

/* Safe defaults for every field. */
void rtmp_server_config_defaults(struct rtmp_server_config *c);
/* Defaults, then the values castgate's config carries (rtmp_listen,
 * rtmp_app, ingest_idle_sec, rtmp_max_* ...). */
void rtmp_server_config_from(struct rtmp_server_config *c, const struct config *cfg);

struct rtmp_publish_info {
    const char *app;        /* application as connected, "?query" removed */
    const char *stream_key; /* the secret key (publish name, "?query" removed); never log it */
    const char *tc_url;     /* as sent by the client ("" if absent) */
    const char *peer_ip;
    int peer_port;
};

/* Callbacks on the session's loop. The session pointer is valid until
 * on_close returns. Every callback may call rtmp_session_close(). */
struct rtmp_handler {
    void *ctx;
    /* Publish requested; the upper layer MUST later call
     * rtmp_session_publish_result() on the session's loop (it may do so
     * inside this callback), unless on_close came first. If NULL, every
     * publish is accepted. */
    void (*on_publish)(void *ctx, struct rtmp_session *s, const struct rtmp_publish_info *info);
    /* Sequence header (new or changed: ING-9). cfg is borrowed. */
    void (*on_codec_config)(void *ctx, struct rtmp_session *s, const struct media_codec_config *cfg);
    /* One access unit; f->dts_ms is the unwrapped 64-bit timestamp (ING-8). */
    void (*on_frame)(void *ctx, struct rtmp_session *s, const struct media_frame *f);
    /* onMetaData values (0 when absent). */
    void (*on_metadata)(void *ctx, struct rtmp_session *s, double width, double height,
                        double fps, double kbps);
    /* Called exactly once for every session that got on_publish, when it
     * closes for any reason (reason: "eof", "idle", "publish denied",
     * "unpublish", "shutdown", a caller's reason, ...). After it returns the
     * session pointer is dead. */
    void (*on_close)(void *ctx, struct rtmp_session *s, const char *reason);
};

/* Answers a pending publish. ok: onStatus NetStream.Publish.Start, media
 * starts flowing up. !ok: onStatus level "error" with `code` (NULL =
 * "NetStream.Publish.BadName") and `description` (NULL = "publish refused"),
 * then the connection closes within 1 s; counts toward the IP's ban. Ignored
 * when no publish is pending. */
void rtmp_session_publish_result(struct rtmp_session *s, bool ok, const char *code,
                                 const char *description);
/* Closes the session after the current callback returns (never frees inside
 * the caller's stack). Safe to call repeatedly; the first reason wins. */
void rtmp_session_close(struct rtmp_session *s, const char *reason);

void rtmp_session_set_userdata(struct rtmp_session *s, void *p);
void *rtmp_session_userdata(const struct rtmp_session *s);
struct loop *rtmp_session_loop(const struct rtmp_session *s);
uint64_t rtmp_session_id(const struct rtmp_session *s);
/* loop_now_ms() of the last audio/video message after the publish was
 * accepted (the acceptance time until the first one); 0 before acceptance.
 * Any thread may read it while the session is alive (ING-6 takeover check). */
long long rtmp_session_last_media_ms(const struct rtmp_session *s);
/* "ip:port" of the client. */
const char *rtmp_session_peer(const struct rtmp_session *s);
/* Bytes received on the connection so far. */
uint64_t rtmp_session_bytes_in(const struct rtmp_session *s);

/* Any thread: closes the session with this id if it still lives on loop l
 * (rtmp_session_loop). Used for takeovers and force-terminate (ING-6) where
 * the caller is not on the session's loop. 0 if the request was queued,
 * -1 if it could not be (unknown loop, inbox full). */
int rtmp_server_close_session(struct rtmp_server *srv, struct loop *l, uint64_t id,
                              const char *reason);

/* Binds and listens on cfg->listen on accept_loop; sessions go to
 * media_loops[0..n) (n >= 1; the accept loop may be one of them). The
 * handler table is copied. Returns NULL with a message in err on failure. */
struct rtmp_server *rtmp_server_new(const struct rtmp_server_config *cfg, struct loop *accept_loop,
                                    struct loop **media_loops, int n, const struct rtmp_handler *h,
                                    char *err, size_t errlen);
/* The bound address, "ip:port" (resolves port 0). */
const char *rtmp_server_address(const struct rtmp_server *srv);
/* Open connections (any thread). */
int rtmp_server_connection_count(const struct rtmp_server *srv);
/* Stops listening and closes every session (on_close with reason "shutdown"
 * for published ones) before it returns. Call with all loops running, or
 * after all were stopped with loop_stop(); from any thread (it waits for
 * each loop to do its part). With stopped loops, libevent closes the
 * sockets when the loops are freed (loop_free). Do not call rtmp_server_*
 * or rtmp_session_* afterwards. */
void rtmp_server_free(struct rtmp_server *srv);

#endif
