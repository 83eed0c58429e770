/* sweep.c — `castgate sweep --once`: one sweeper pass (SPEC REC-4, OPS-1),
 * printing what it did; without --once it sweeps every sweep_interval_sec
 * until SIGINT/SIGTERM (the same thread `serve` runs). */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "storage/db.h"
#include "storage/sweeper.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: castgate sweep [--once] [--setting value ...]\n"
               "Deletes expired recordings (READY/FAILED past room endedAt + recording_ttl_sec),\n"
               "archives ended rooms whose recordings are all gone (and deletes their HLS\n"
               "folders), and removes orphan files older than orphan_grace_sec under\n"
               "data_dir/recordings and data_dir/hls/rooms. Safe to run while nodes serve.\n"
               "  --once   one pass, print a summary line, exit (1 if the database failed)\n"
               "Without --once: a pass every sweep_interval_sec until SIGINT/SIGTERM.\n");
}

int cli_sweep(struct config *cfg, int argc, char **argv)
{
    bool once = false;
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0)
            once = true;
        else {
            fprintf(stderr, "castgate sweep: unknown %s \"%s\" (try castgate sweep --help)\n",
                    strncmp(argv[i], "--", 2) == 0 ? "flag" : "argument", argv[i]);
            return 2;
        }
    }
    char conninfo[CONFIG_STR_MAX + 128], err[1024];
    cli_database_conninfo(cfg, conninfo, sizeof conninfo);
    struct sweeper_config sc = {
        .data_dir = cfg->data_dir,
        .node_id = cfg->node_id,
        .recording_ttl_sec = cfg->recording_ttl_sec,
        .orphan_grace_sec = cfg->orphan_grace_sec,
    };
    if (!once) {
        /* Signals are taken by sigwait here, so the thread inherits the mask. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        struct sweeper *s = sweeper_start(conninfo, &sc, cfg->sweep_interval_sec, err, sizeof err);
        if (!s) {
            fprintf(stderr, "castgate sweep: %s\n", err);
            return 1;
        }
        log_info("sweep: every %d s; SIGINT/SIGTERM to stop", cfg->sweep_interval_sec);
        int sig;
        sigwait(&set, &sig);
        sweeper_stop(s);
        return 0;
    }
    PGconn *c = db_connect(conninfo, err, sizeof err);
    if (!c) {
        fprintf(stderr, "castgate sweep: %s\n", err);
        return 1;
    }
    struct sweep_report rep;
    int rc = sweeper_run_once(c, &sc, &rep, err, sizeof err);
    PQfinish(c);
    printf("sweep: expiry_set=%d recordings_expired=%d rooms_archived=%d orphans_removed=%d "
           "files_deleted=%llu errors=%d\n",
           rep.expiry_set, rep.recordings_expired, rep.rooms_archived, rep.orphans_removed,
           (unsigned long long)rep.files_deleted, rep.errors);
    if (rc != 0) {
        fprintf(stderr, "castgate sweep: %s\n", err);
        return 1;
    }
    return 0;
}
