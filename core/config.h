/* config.h — castgate settings (SPEC §9, OPS-2).
 *
 * Every setting has a safe default, and may come from the config file
 * (`key = value`), the environment (CASTGATE_KEY, plus DATABASE_URL) or a flag
 * (`--key value` / `--key=value`, dashes or underscores). Precedence: flags >
 * environment > file > default. A bad value is an error naming the setting. */
#ifndef CORE_CONFIG_H
#define CORE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "core/log.h"

#define CONFIG_STR_MAX 512

struct config {
    /* SPEC §9 — the fixed names */
    char database_url[CONFIG_STR_MAX];
    char rtmp_listen[128];
    char http_listen[128];
    char public_url[CONFIG_STR_MAX];
    char rtmp_public_url[CONFIG_STR_MAX];
    char data_dir[CONFIG_STR_MAX];
    char rtmp_app[64];
    int segment_duration_ms;
    int part_duration_ms;
    int recording_fsync_interval_ms;
    int recording_direct_io;  /* 1: recordings bypass the page cache (O_DIRECT) */
    int live_window_segments;
    int recording_ttl_sec;
    int sweep_interval_sec;
    int ingest_idle_sec;
    int takeover_idle_sec;
    char node_id[128];
    enum log_level log_level;

    /* further limits and knobs, each with a safe default */
    int media_threads;            /* media loops; 0 = one per core */
    int db_pool_size;             /* libpq connections on worker threads */
    int db_queue_max;             /* pending db jobs before new ones are refused */
    int rtmp_max_connections;
    int rtmp_max_connections_per_ip;
    int rtmp_max_chunk_size;
    int rtmp_max_message_size;
    int rtmp_handshake_timeout_sec;
    int rtmp_failed_key_ban_threshold;
    int rtmp_failed_key_ban_sec;
    int http_max_body_bytes;
    int http_max_connections;
    char cors_origin[256];
    int hls_max_blocking_requests;
    int auto_start_early_sec;
    int orphan_grace_sec;
    char token_secret[256];       /* signs viewer tokens + download URLs; empty = random per node */
    char config_file[CONFIG_STR_MAX];
};

/* Fills defaults. The node_id default is the host name. */
void config_defaults(struct config *c);

/* Sets one setting by name ("http_listen" or "http-listen"). source is for
 * the error text ("flag", "env CASTGATE_X", "file:12"). 0, or -1 with err. */
int config_set(struct config *c, const char *key, const char *value, const char *source,
               char *err, size_t errlen);

/* Reads a `key = value` file (inih). 0 or -1 with err naming file:line. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Applies CASTGATE_* and DATABASE_URL from envp (NULL = environ). */
int config_load_env(struct config *c, char **envp, char *err, size_t errlen);

/* Full resolution for a subcommand: defaults, then --config FILE (from argv or
 * CASTGATE_CONFIG), env, flags. Consumes recognised flags from argv; the
 * remaining positional arguments are compacted to argv[0..*argc). Unknown
 * flags are an error. 0 or -1 with err. */
int config_resolve(struct config *c, int *argc, char **argv, char *err, size_t errlen);

/* Cross-field checks after everything is loaded (listen addresses parse,
 * part < segment, ...). 0 or -1 with err. */
int config_validate(const struct config *c, char *err, size_t errlen);

/* Splits "host:port" ("[::1]:80" too). 0 or -1. */
int config_split_hostport(const char *s, char *host, size_t hostlen, int *port);

/* Prints the settings table (name, env, default) for --help. */
void config_print_help(FILE *f);

#endif
