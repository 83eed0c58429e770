/* main.c — `castgate SUBCOMMAND [settings] [args]`.
 *
 * Settings (SPEC §9) are resolved once for every subcommand: defaults, config
 * file, environment, flags. Unknown subcommands and unknown flags are a
 * one-line error and exit status 2. */
#include <libavutil/log.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"

static void usage(FILE *f)
{
    fprintf(f,
            "castgate %s — RTMP ingest to HLS/CMAF broadcast gateway\n"
            "\n"
            "usage: castgate SUBCOMMAND [--setting value ...] [args]\n"
            "\n"
            "subcommands:\n"
            "  serve              run the gateway (RTMP + HTTP API + HLS delivery)\n"
            "  migrate            apply database schema migrations and exit\n"
            "  app create NAME    create an app (tenant); prints its API credentials once\n"
            "                     (--json: one JSON object on stdout)\n"
            "  sweep --once       delete expired recordings, archive rooms, remove orphans\n"
            "  version            print the version\n"
            "\n"
            "Run `castgate SUBCOMMAND --help` for details. Common flag: --config FILE.\n\n",
            CASTGATE_VERSION);
    config_print_help(f);
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

void cli_database_conninfo(const struct config *cfg, char *out, size_t outlen)
{
    if (cfg->database_url[0]) {
        snprintf(out, outlen, "%s", cfg->database_url);
        return;
    }
    char abs[PATH_MAX];
    if (!realpath(cfg->data_dir, abs))
        snprintf(abs, sizeof abs, "%s", cfg->data_dir);
    snprintf(out, outlen, "host=%s/pg/run dbname=castgate user=castgate", abs);
}

/* libav's messages become one castgate log line each (OPS-5), warnings
 * and worse only. */
static void libav_log(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_WARNING)
        return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    if (n)
        log_write(level <= AV_LOG_ERROR ? LOG_ERROR : LOG_WARN, "libav: %s", line);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(sub, "version") == 0 || strcmp(sub, "--version") == 0) {
        printf("castgate %s\n", CASTGATE_VERSION);
        return 0;
    }
    int (*fn)(struct config *, int, char **) = NULL;
    if (strcmp(sub, "serve") == 0)
        fn = cli_serve;
    else if (strcmp(sub, "migrate") == 0)
        fn = cli_migrate;
    else if (strcmp(sub, "app") == 0)
        fn = cli_app;
    else if (strcmp(sub, "sweep") == 0)
        fn = cli_sweep;
    if (!fn) {
        fprintf(stderr, "castgate: unknown subcommand \"%s\" (try castgate --help)\n", sub);
        return 2;
    }
    /* argv[1..] is the subcommand and its args; settings are consumed. */
    int sargc = argc - 1;
    char **sargv = argv + 1;
    struct config *cfg = malloc(sizeof *cfg);
    char err[1024];
    if (!cfg)
        return 1;
    if (config_resolve(cfg, &sargc, sargv, err, sizeof err) != 0) {
        fprintf(stderr, "castgate %s: %s\n", sub, err);
        free(cfg);
        return 2;
    }
    log_set_level(cfg->log_level);
    av_log_set_callback(libav_log);
    int rc = fn(cfg, sargc, sargv);
    free(cfg);
    return rc;
}
