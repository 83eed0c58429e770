/* serve.c — `castgate serve`: wires loops, the db pool, HTTP and RTMP, then
 * runs the main loop until SIGINT/SIGTERM.
 *
 * Threads: main (signals), rtmp-accept (RTMP listener, timers), http (evhttp:
 * API + HLS), K media loops
 * (RTMP sessions + packagers), db pool workers. Shutdown order: stop taking
 * new work (listeners), drain the db pool while the loops that receive its
 * results still run, then stop the loops. */
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/health.h"
#include "api/members.h"
#include "api/openapi.h"
#include "api/room_status.h"
#include "api/stream_keys.h"
#include "api/video_rooms.h"
#include "api/hls_delivery.h"
#include "api/hls_routes.h"
#include "broadcast/gateway.h"
#include "packager/media_registry.h"
#include "packager/segment_store.h"
#include "api/metrics.h"
#include "api/http_server.h"
#include "api/recordings.h"
#include "api/router.h"
#include "api/viewer_access.h"
#include "cli/cli.h"
#include "core/log.h"
#include "core/loop.h"
#include "storage/db.h"
#include "storage/finalizer.h"
#include "storage/migrate.h"
#include "storage/sweeper.h"

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct loop *main_loop = arg;
    log_info("serve: signal=%d shutting down", (int)sig);
    event_base_loopexit(loop_base(main_loop), NULL);
}

/* "0.0.0.0:8080" → "http://HOST:8080" using the host name when bound to any. */
static void default_url(const char *scheme, const char *listen, const char *suffix, char *out,
                        size_t outlen)
{
    char host[256];
    int port = 0;
    if (config_split_hostport(listen, host, sizeof host, &port) != 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "127.0.0.1");
    snprintf(out, outlen, "%s://%s:%d%s", scheme, host, port, suffix);
}

/* The HTTP server and delivery's parked requests belong to the http loop:
 * free them there, as its last callback. */
static struct hls_delivery *delivery_to_free;
static void http_free_on_loop(void *arg)
{
    if (delivery_to_free)
        hls_delivery_free(delivery_to_free);
    http_server_free(arg);
}

static void register_routes(struct router *r)
{
    router_add(r, "GET", "/healthz", health_handle);
    router_add(r, "GET", "/metrics", metrics_handle);
    /* Admin API (SPEC §6) */
    router_add(r, "GET", "/v2/openapi.yaml", openapi_handle);
    router_add(r, "POST", "/v2/apps/me/members", members_handle_create);
    router_add(r, "GET", "/v2/apps/me/members", members_handle_list);
    router_add(r, "GET", "/v2/apps/me/members/{appUserId}", members_handle_get);
    router_add(r, "PATCH", "/v2/apps/me/members/{appUserId}", members_handle_patch);
    router_add(r, "DELETE", "/v2/apps/me/members/{appUserIds}", members_handle_delete);
    router_add(r, "GET", "/v2/apps/me/members/{appUserId}/stream-key", stream_keys_handle_member_key);
    router_add(r, "GET", "/v2/apps/me/stream-keys", stream_keys_handle_list);
    router_add(r, "GET", "/v2/apps/me/stream-keys/{streamKeyId}", stream_keys_handle_get);
    router_add(r, "POST", "/v2/apps/me/stream-keys/{streamKeyId}/reissue", stream_keys_handle_reissue);
    router_add(r, "POST", "/v2/apps/me/stream-keys/{streamKeyId}/force-terminate",
               stream_keys_handle_force_terminate);
    router_add(r, "POST", "/v2/apps/me/video-rooms", video_rooms_handle_create);
    router_add(r, "GET", "/v2/apps/me/video-rooms", video_rooms_handle_list);
    router_add(r, "GET", "/v2/apps/me/video-rooms/{videoRoomId}", video_rooms_handle_get);
    router_add(r, "PATCH", "/v2/apps/me/video-rooms/{videoRoomId}", video_rooms_handle_patch);
    router_add(r, "DELETE", "/v2/apps/me/video-rooms/{videoRoomId}", video_rooms_handle_delete);
    router_add(r, "POST", "/v2/apps/me/video-rooms/{videoRoomId}/rtmp-broadcast/state/live",
               video_rooms_handle_start);
    router_add(r, "POST", "/v2/apps/me/video-rooms/{videoRoomId}/rtmp-broadcast/state/ended",
               video_rooms_handle_end);
    router_add(r, "GET", "/v2/apps/me/video-rooms/{videoRoomId}/status", room_status_handle_v2);
    router_add(r, "GET", "/v1/room/{roomId}/status", room_status_handle_v1);
    router_add(r, "GET", "/v1/room/{*rest}", room_status_handle_v1_other);
    router_add(r, "GET", "/hls/rooms/{id}/{file}", hls_rooms_handle);
    router_add(r, "GET", "/hls/keys/{id}/{file}", hls_keys_handle);
    recordings_api_routes(r);
    viewer_register_routes(r);
}

int cli_serve(struct config *cfg, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: castgate serve [--config FILE] [--setting value ...]\n"
               "Runs the gateway: RTMP ingest on rtmp_listen, HTTP API + HLS on http_listen.\n"
               "Applies database migrations at start-up. Logs `ready rtmp=ADDR http=ADDR` when\n"
               "both listeners accept connections. SIGINT/SIGTERM shut it down cleanly.\n\n");
        config_print_help(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        fprintf(stderr, "castgate serve: unknown %s \"%s\"\n",
                strncmp(argv[i], "--", 2) == 0 ? "flag" : "argument", argv[i]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = 1;
    char err[1024];
    struct loop *main_loop = NULL, *http_loop = NULL;
    struct db_pool *db = NULL;
    struct router *router = NULL;
    struct http_server *http = NULL;
    struct event *sigint = NULL, *sigterm = NULL;
    struct finalizer *finalizer = NULL;
    struct sweeper *sweeper = NULL;
    struct api_ctx *ctx = calloc(1, sizeof *ctx);
    struct loop *media_loops[256] = {0};
    struct loop *accept_loop = NULL;
    int nmedia = 0;
    struct segment_store *store = NULL;
    struct media_registry *registry = NULL;
    struct hls_delivery *delivery = NULL;
    struct gateway *gw = NULL;

    if (mkdir_p(cfg->data_dir) != 0) {
        log_error("serve: data_dir %s cannot be created: %s", cfg->data_dir, strerror(errno));
        goto out;
    }
    char conninfo[CONFIG_STR_MAX + 128];
    cli_database_conninfo(cfg, conninfo, sizeof conninfo);
    PGconn *c = db_connect(conninfo, err, sizeof err);
    if (!c) {
        log_error("serve: %s", err);
        goto out;
    }
    int applied = migrate_apply(c, err, sizeof err);
    if (applied < 0) {
        PQfinish(c);
        log_error("serve: %s", err);
        goto out;
    }
    /* Recordings (REC-3, OPS-6): the finalizer thread, then this node's
     * recordings left RECORDING/PROCESSING by a crash are finalized. */
    struct finalizer_config fc = {
        .conninfo = conninfo,
        .data_dir = cfg->data_dir,
        .node_id = cfg->node_id,
        .recording_ttl_sec = cfg->recording_ttl_sec,
    };
    finalizer = finalizer_start(&fc, err, sizeof err);
    if (!finalizer) {
        PQfinish(c);
        log_error("serve: %s", err);
        goto out;
    }
    if (finalizer_recover(finalizer, c) < 0)
        log_warn("serve: recovering unfinished recordings failed; retried at the next start");
    PQfinish(c);
    /* REC-4: a pass now, then every sweep_interval_sec, on its own thread. */
    struct sweeper_config sc = {
        .data_dir = cfg->data_dir,
        .node_id = cfg->node_id,
        .recording_ttl_sec = cfg->recording_ttl_sec,
        .orphan_grace_sec = cfg->orphan_grace_sec,
    };
    sweeper = sweeper_start(conninfo, &sc, cfg->sweep_interval_sec, err, sizeof err);
    if (!sweeper) {
        log_error("serve: %s", err);
        goto out;
    }

    if (loop_global_init() != 0) {
        log_error("serve: libevent threading init failed");
        goto out;
    }
    main_loop = loop_new("main", 1024);
    http_loop = loop_new("http", 65536);
    if (!main_loop || !http_loop)
        goto out;
    nmedia = cfg->media_threads > 0 ? cfg->media_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nmedia < 1)
        nmedia = 1;
    if (nmedia > 256)
        nmedia = 256;
    for (int i = 0; i < nmedia; i++) {
        char name[32];
        snprintf(name, sizeof name, "media-%d", i);
        media_loops[i] = loop_new(name, 65536);
        if (!media_loops[i])
            goto out;
    }
    accept_loop = loop_new("rtmp-accept", 65536);
    if (!accept_loop)
        goto out;
    store = segment_store_new(cfg->data_dir, 0);
    if (!store) {
        log_error("serve: segment store under %s failed", cfg->data_dir);
        goto out;
    }
    struct media_registry_opts ro = {0};
    ro.target_duration_us = (int64_t)cfg->segment_duration_ms * 1000;
    ro.part_target_us = (int64_t)cfg->part_duration_ms * 1000;
    ro.live_window_segments = cfg->live_window_segments;
    ro.store = store;
    registry = media_registry_new(&ro);
    if (!registry)
        goto out;
    db = db_pool_new(conninfo, cfg->db_pool_size, (size_t)cfg->db_queue_max, err, sizeof err);
    if (!db) {
        log_error("serve: %s", err);
        goto out;
    }

    ctx->cfg = cfg;
    ctx->db = db;
    ctx->http_loop = http_loop;
    if (cfg->public_url[0])
        snprintf(ctx->public_url, sizeof ctx->public_url, "%s", cfg->public_url);
    else
        default_url("http", cfg->http_listen, "", ctx->public_url, sizeof ctx->public_url);
    size_t pl = strlen(ctx->public_url);
    while (pl > 0 && ctx->public_url[pl - 1] == '/')
        ctx->public_url[--pl] = 0;
    if (cfg->rtmp_public_url[0])
        snprintf(ctx->rtmp_public_url, sizeof ctx->rtmp_public_url, "%s", cfg->rtmp_public_url);
    else {
        char suffix[80];
        snprintf(suffix, sizeof suffix, "/%s", cfg->rtmp_app);
        default_url("rtmp", cfg->rtmp_listen, suffix, ctx->rtmp_public_url, sizeof ctx->rtmp_public_url);
    }

    ctx->media_registry = registry;
    struct hls_delivery_opts hopts = {0};
    hopts.cors_origin = cfg->cors_origin;
    hopts.max_parked_per_index = cfg->hls_max_blocking_requests;
    delivery = hls_delivery_new(http_loop, registry, &hopts);
    if (!delivery)
        goto out;
    hls_routes_init(delivery);
    if (viewer_start(ctx, conninfo, err, sizeof err) != 0) {
        log_error("serve: %s", err);
        goto out;
    }
    router = router_new();
    register_routes(router);
    http = http_server_new(ctx, router, err, sizeof err);
    if (!http) {
        log_error("serve: %s", err);
        goto out;
    }

    sigint = evsignal_new(loop_base(main_loop), SIGINT, on_signal, main_loop);
    sigterm = evsignal_new(loop_base(main_loop), SIGTERM, on_signal, main_loop);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);

    if (loop_start(http_loop) != 0)
        goto out;
    for (int i = 0; i < nmedia; i++)
        if (loop_start(media_loops[i]) != 0)
            goto out;
    if (loop_start(accept_loop) != 0)
        goto out;
    struct gateway_deps gd = {cfg, db, conninfo, accept_loop, media_loops, nmedia, registry, finalizer};
    gw = gateway_start(&gd, err, sizeof err);
    if (!gw) {
        log_error("serve: %s", err);
        goto out;
    }
    ctx->gateway = gw;
    log_always(LOG_INFO, "ready rtmp=%s http=%s node=%s media_loops=%d", gateway_rtmp_address(gw),
             http_server_address(http), cfg->node_id, nmedia);
    loop_run_here(main_loop);
    rc = 0;

out:
    /* Stop taking new work: publishers are closed (their state changes go
     * to the db pool), then the pool drains while the loops that receive
     * its results still run, then the loops stop. */
    gateway_stop(gw);
    viewer_stop_timers(); /* frees the viewer timers: no db jobs after the pool */
    db_pool_stop(db);     /* drains; later submissions are refused, not a use after free */
    if (accept_loop)
        loop_stop(accept_loop);
    for (int i = 0; i < nmedia; i++)
        if (media_loops[i])
            loop_stop(media_loops[i]);
    if (http && http_loop) {
        delivery_to_free = delivery;
        loop_post(http_loop, http_free_on_loop, http);
        loop_stop(http_loop);
    }
    sweeper_stop(sweeper);
    finalizer_stop(finalizer);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (http_loop) {
        loop_stop(http_loop);
        loop_free(http_loop);
    }
    viewer_stop();
    if (main_loop)
        loop_free(main_loop);
    for (int i = 0; i < nmedia; i++)
        loop_free(media_loops[i]);
    if (accept_loop)
        loop_free(accept_loop);
    gateway_free(gw);
    db_pool_free(db);
    media_registry_free(registry);
    segment_store_free(store);
    router_free(router);
    free(ctx);
    if (rc == 0)
        log_info("serve: stopped");
    return rc;
}
