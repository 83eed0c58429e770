/* config.c — table-driven settings: one row per key, parsed the same way
 * from the file, the environment and flags. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

enum opt_type { OPT_STR, OPT_INT, OPT_LOGLEVEL, OPT_ADDR };

struct opt {
    const char *key;
    const char *env;     /* NULL = CASTGATE_<KEY upper> */
    enum opt_type type;
    size_t offset, size; /* size for strings */
    long min, max;       /* ints */
    const char *help;
};

#define STR(f, h) OPT_STR, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0, h
#define ADDR(f, h) OPT_ADDR, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0, h
#define INT(f, lo, hi, h) OPT_INT, offsetof(struct config, f), 0, lo, hi, h

static const struct opt opts[] = {
    {"database_url", "DATABASE_URL", STR(database_url, "PostgreSQL URL (default: local server under data_dir)")},
    {"rtmp_listen", NULL, ADDR(rtmp_listen, "RTMP listen address")},
    {"http_listen", NULL, ADDR(http_listen, "HTTP (API + HLS) listen address")},
    {"public_url", NULL, STR(public_url, "base of liveUrl/playUrl/downloadUrl")},
    {"rtmp_public_url", NULL, STR(rtmp_public_url, "the ingestUrl given to broadcasters")},
    {"data_dir", NULL, STR(data_dir, "segments, recordings, local PostgreSQL")},
    {"rtmp_app", NULL, STR(rtmp_app, "RTMP application name")},
    {"segment_duration_ms", NULL, INT(segment_duration_ms, 500, 20000, "HLS segment target")},
    {"part_duration_ms", NULL, INT(part_duration_ms, 0, 5000, "LL-HLS part target (0 = off)")},
    {"live_window_segments", NULL, INT(live_window_segments, 3, 1000, "segments in the live playlist")},
    {"recording_ttl_sec", NULL, INT(recording_ttl_sec, 1, 31536000, "recordings kept after the room ends")},
    {"recording_fsync_interval_ms", NULL, INT(recording_fsync_interval_ms, 100, 600000, "how often a growing recording is fsynced (power-loss window; kill -9 loses nothing written)")},
    {"recording_direct_io", NULL, INT(recording_direct_io, 0, 1, "write recordings with O_DIRECT (1) or through the page cache (0)")},
    {"sweep_interval_sec", NULL, INT(sweep_interval_sec, 1, 86400, "sweeper period")},
    {"ingest_idle_sec", NULL, INT(ingest_idle_sec, 1, 3600, "no media this long = publisher gone")},
    {"takeover_idle_sec", NULL, INT(takeover_idle_sec, 0, 3600, "idle time before a new publisher may take a key over")},
    {"node_id", NULL, STR(node_id, "this node's id (scale-out)")},
    {"log_level", NULL, OPT_LOGLEVEL, offsetof(struct config, log_level), 0, 0, 0, "debug|info|warn|error"},
    {"media_threads", NULL, INT(media_threads, 0, 256, "media loops (0 = one per core)")},
    {"db_pool_size", NULL, INT(db_pool_size, 1, 64, "PostgreSQL connections")},
    {"db_queue_max", NULL, INT(db_queue_max, 16, 1000000, "pending database jobs")},
    {"rtmp_max_connections", NULL, INT(rtmp_max_connections, 1, 1000000, "RTMP connections in total")},
    {"rtmp_max_connections_per_ip", NULL, INT(rtmp_max_connections_per_ip, 1, 1000000, "RTMP connections per client address")},
    {"rtmp_max_chunk_size", NULL, INT(rtmp_max_chunk_size, 128, 16777215, "largest RTMP chunk size accepted")},
    {"rtmp_max_message_size", NULL, INT(rtmp_max_message_size, 4096, 16777215, "largest RTMP message accepted")},
    {"rtmp_handshake_timeout_sec", NULL, INT(rtmp_handshake_timeout_sec, 1, 600, "RTMP handshake deadline")},
    {"rtmp_failed_key_ban_threshold", NULL, INT(rtmp_failed_key_ban_threshold, 1, 1000000, "refused keys per address per minute before a ban")},
    {"rtmp_failed_key_ban_sec", NULL, INT(rtmp_failed_key_ban_sec, 1, 86400, "ban duration")},
    {"http_max_body_bytes", NULL, INT(http_max_body_bytes, 1024, 16777216, "largest API request body")},
    {"http_max_connections", NULL, INT(http_max_connections, 1, 1000000, "HTTP connections in total")},
    {"cors_origin", NULL, STR(cors_origin, "Access-Control-Allow-Origin (empty = no CORS)")},
    {"hls_max_blocking_requests", NULL, INT(hls_max_blocking_requests, 1, 1000000, "parked blocking playlist reloads per stream")},
    {"auto_start_early_sec", NULL, INT(auto_start_early_sec, 0, 31536000, "autoStart window before scheduledAt")},
    {"orphan_grace_sec", NULL, INT(orphan_grace_sec, 0, 31536000, "age before the sweeper removes unknown files")},
    {"token_secret", NULL, STR(token_secret, "HMAC secret for viewer tokens and download URLs")},
};
#define NOPTS (sizeof opts / sizeof opts[0])

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->rtmp_listen, sizeof c->rtmp_listen, "0.0.0.0:1935");
    snprintf(c->http_listen, sizeof c->http_listen, "0.0.0.0:8080");
    snprintf(c->data_dir, sizeof c->data_dir, "./var");
    snprintf(c->rtmp_app, sizeof c->rtmp_app, "live");
    c->segment_duration_ms = 2000;
    c->part_duration_ms = 500;
    c->recording_fsync_interval_ms = 10000;
    c->recording_direct_io = 1;
    c->live_window_segments = 10;
    c->recording_ttl_sec = 21600;
    c->sweep_interval_sec = 60;
    c->ingest_idle_sec = 10;
    c->takeover_idle_sec = 5;
    if (gethostname(c->node_id, sizeof c->node_id) != 0 || !c->node_id[0])
        snprintf(c->node_id, sizeof c->node_id, "node");
    c->node_id[sizeof c->node_id - 1] = 0;
    c->log_level = LOG_INFO;
    c->media_threads = 0;
    c->db_pool_size = 4;
    c->db_queue_max = 10000;
    c->rtmp_max_connections = 2000;
    c->rtmp_max_connections_per_ip = 500;
    c->rtmp_max_chunk_size = 65536;
    c->rtmp_max_message_size = 8 * 1024 * 1024;
    c->rtmp_handshake_timeout_sec = 10;
    c->rtmp_failed_key_ban_threshold = 10;
    c->rtmp_failed_key_ban_sec = 60;
    c->http_max_body_bytes = 65536;
    c->http_max_connections = 10000;
    snprintf(c->cors_origin, sizeof c->cors_origin, "*");
    c->hls_max_blocking_requests = 1000;
    c->auto_start_early_sec = 900;
    c->orphan_grace_sec = 3600;
}

static const struct opt *opt_find(const char *key)
{
    char norm[64];
    size_t n = strlen(key);
    if (n >= sizeof norm)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = key[i] == '-' ? '_' : (char)tolower((unsigned char)key[i]);
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].key, norm) == 0)
            return &opts[i];
    return NULL;
}

static void opt_env_name(const struct opt *o, char *out, size_t outlen)
{
    if (o->env) {
        snprintf(out, outlen, "%s", o->env);
        return;
    }
    size_t p = (size_t)snprintf(out, outlen, "CASTGATE_");
    for (const char *k = o->key; *k && p + 1 < outlen; k++)
        out[p++] = (char)toupper((unsigned char)*k);
    out[p] = 0;
}

int config_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

static int opt_apply(struct config *c, const struct opt *o, const char *value, const char *source,
                     char *err, size_t errlen)
{
    char *field = (char *)c + o->offset;
    switch (o->type) {
    case OPT_STR:
    case OPT_ADDR:
        if (strlen(value) >= o->size) {
            snprintf(err, errlen, "config: %s (%s): value too long (max %zu bytes)", o->key,
                     source, o->size - 1);
            return -1;
        }
        if (o->type == OPT_ADDR) {
            char host[256];
            int port;
            if (config_split_hostport(value, host, sizeof host, &port) != 0) {
                snprintf(err, errlen, "config: %s (%s): \"%s\" is not host:port", o->key, source,
                         value);
                return -1;
            }
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case OPT_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        while (*end && isspace((unsigned char)*end))
            end++;
        if (errno || end == value || *end) {
            snprintf(err, errlen, "config: %s (%s): \"%s\" is not an integer", o->key, source, value);
            return -1;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, errlen, "config: %s (%s): %ld is out of range %ld..%ld", o->key, source, v,
                     o->min, o->max);
            return -1;
        }
        int iv = (int)v;
        memcpy(field, &iv, sizeof iv);
        return 0;
    }
    case OPT_LOGLEVEL: {
        enum log_level lv;
        if (log_level_parse(value, &lv) != 0) {
            snprintf(err, errlen, "config: %s (%s): \"%s\" is not one of debug, info, warn, error",
                     o->key, source, value);
            return -1;
        }
        memcpy(field, &lv, sizeof lv);
        return 0;
    }
    }
    return -1;
}

int config_set(struct config *c, const char *key, const char *value, const char *source, char *err,
               size_t errlen)
{
    const struct opt *o = opt_find(key);
    if (!o) {
        snprintf(err, errlen, "config: unknown setting \"%s\" (%s)", key, source);
        return -1;
    }
    return opt_apply(c, o, value, source, err, errlen);
}

struct ini_ctx {
    struct config *c;
    const char *path;
    char *err;
    size_t errlen;
    int failed;
};

/* Debian's inih is built without INI_HANDLER_LINENO; a handler that fails
 * makes ini_parse_file() return that line, which config_load_file() adds. */
static int config_ini_line(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *x = user;
    (void)section;
    char src[CONFIG_STR_MAX + 32];
    snprintf(src, sizeof src, "file %s", x->path);
    if (x->failed)
        return 0;
    if (config_set(x->c, name, value, src, x->err, x->errlen) != 0) {
        x->failed = 1;
        return 0;
    }
    return 1;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "config: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct ini_ctx x = {c, path, err, errlen, 0};
    int rc = ini_parse_file(f, config_ini_line, &x);
    fclose(f);
    if (x.failed) {
        if (rc > 0) {
            char detail[512];
            snprintf(detail, sizeof detail, "%s", err);
            snprintf(err, errlen, "%s (line %d)", detail, rc);
        }
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "config: %s:%d: malformed line (expected `key = value`)", path, rc);
        return -1;
    }
    snprintf(c->config_file, sizeof c->config_file, "%s", path);
    return 0;
}

int config_load_env(struct config *c, char **envp, char *err, size_t errlen)
{
    if (!envp)
        envp = environ;
    for (size_t i = 0; i < NOPTS; i++) {
        char name[96];
        opt_env_name(&opts[i], name, sizeof name);
        size_t nl = strlen(name);
        for (char **e = envp; *e; e++) {
            if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') {
                char src[128];
                snprintf(src, sizeof src, "env %s", name);
                if (opt_apply(c, &opts[i], *e + nl + 1, src, err, errlen) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

/* Flag forms: --key value, --key=value. "--" ends flags. */
int config_resolve(struct config *c, int *argc, char **argv, char *err, size_t errlen)
{
    config_defaults(c);
    const char *file = getenv("CASTGATE_CONFIG");
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= *argc) {
                snprintf(err, errlen, "config: --config needs a file name");
                return -1;
            }
            file = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        } else if (strcmp(argv[i], "--") == 0) {
            break;
        }
    }
    if (file && *file && config_load_file(c, file, err, errlen) != 0)
        return -1;
    if (config_load_env(c, NULL, err, errlen) != 0)
        return -1;

    int out = 0;
    bool flags_done = false;
    for (int i = 0; i < *argc; i++) {
        char *a = argv[i];
        if (flags_done || strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (!flags_done && strcmp(a, "--") == 0) {
                flags_done = true;
                continue;
            }
            argv[out++] = a;
            continue;
        }
        char key[96];
        const char *value;
        const char *eq = strchr(a + 2, '=');
        if (eq) {
            size_t kl = (size_t)(eq - (a + 2));
            if (kl >= sizeof key)
                kl = sizeof key - 1;
            memcpy(key, a + 2, kl);
            key[kl] = 0;
            value = eq + 1;
        } else {
            snprintf(key, sizeof key, "%s", a + 2);
            value = NULL;
        }
        if (strcmp(key, "config") == 0) {
            if (!eq)
                i++;
            continue;
        }
        const struct opt *o = opt_find(key);
        if (!o) {
            /* Not a setting: leave it for the subcommand (e.g. --json, --help, --once). */
            argv[out++] = a;
            continue;
        }
        if (!value) {
            if (i + 1 >= *argc) {
                snprintf(err, errlen, "config: --%s needs a value", key);
                return -1;
            }
            value = argv[++i];
        }
        char src[128];
        snprintf(src, sizeof src, "flag --%s", key);
        if (opt_apply(c, o, value, src, err, errlen) != 0)
            return -1;
    }
    *argc = out;
    argv[out] = NULL;
    return config_validate(c, err, errlen);
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
    if (c->part_duration_ms > 0 && c->part_duration_ms * 2 > c->segment_duration_ms) {
        snprintf(err, errlen,
                 "config: part_duration_ms (%d) must be at most half of segment_duration_ms (%d)",
                 c->part_duration_ms, c->segment_duration_ms);
        return -1;
    }
    if (!c->data_dir[0]) {
        snprintf(err, errlen, "config: data_dir must not be empty");
        return -1;
    }
    if (!c->rtmp_app[0] || strchr(c->rtmp_app, '/')) {
        snprintf(err, errlen, "config: rtmp_app \"%s\" must be a non-empty name without '/'",
                 c->rtmp_app);
        return -1;
    }
    if (c->public_url[0] && strncmp(c->public_url, "http://", 7) != 0 &&
        strncmp(c->public_url, "https://", 8) != 0) {
        snprintf(err, errlen, "config: public_url \"%s\" must start with http:// or https://",
                 c->public_url);
        return -1;
    }
    if (c->rtmp_public_url[0] && strncmp(c->rtmp_public_url, "rtmp://", 7) != 0 &&
        strncmp(c->rtmp_public_url, "rtmps://", 8) != 0) {
        snprintf(err, errlen, "config: rtmp_public_url \"%s\" must start with rtmp://",
                 c->rtmp_public_url);
        return -1;
    }
    return 0;
}

void config_print_help(FILE *f)
{
    struct config d;
    config_defaults(&d);
    fprintf(f, "Settings (file `key = value` via --config FILE, env, or --key value):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        char env[96], def[64];
        opt_env_name(o, env, sizeof env);
        const char *field = (const char *)&d + o->offset;
        switch (o->type) {
        case OPT_INT: {
            int v;
            memcpy(&v, field, sizeof v);
            snprintf(def, sizeof def, "%d", v);
            break;
        }
        case OPT_LOGLEVEL:
            snprintf(def, sizeof def, "info");
            break;
        default:
            snprintf(def, sizeof def, "%.60s", field[0] ? field : "-");
        }
        fprintf(f, "  --%-30s %-38s default %-16s %s\n", o->key, env, def, o->help);
    }
}
