/* admin.c — `castgate migrate` and `castgate app create NAME [--json]`. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "storage/apps.h"
#include "storage/db.h"
#include "storage/migrate.h"

/* Flags a subcommand accepts besides settings: anything else starting with
 * "--" is an unknown flag. */
static int check_flags(const char *sub, int argc, char **argv, const char *const *allowed)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0 && strcmp(argv[i], "-h") != 0)
            continue;
        int ok = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
        for (const char *const *a = allowed; !ok && a && *a; a++)
            ok = strcmp(argv[i], *a) == 0;
        if (!ok) {
            fprintf(stderr, "castgate %s: unknown flag \"%s\" (try castgate %s --help)\n", sub,
                    argv[i], sub);
            return -1;
        }
    }
    return 0;
}

static PGconn *connect_db(const char *sub, const struct config *cfg)
{
    char conninfo[CONFIG_STR_MAX + 128], err[1024];
    cli_database_conninfo(cfg, conninfo, sizeof conninfo);
    PGconn *c = db_connect(conninfo, err, sizeof err);
    if (!c)
        fprintf(stderr, "castgate %s: %s\n", sub, err);
    return c;
}

int cli_migrate(struct config *cfg, int argc, char **argv)
{
    if (check_flags("migrate", argc, argv, NULL) != 0)
        return 2;
    if (cli_wants_help(argc, argv)) {
        printf("usage: castgate migrate [--database_url URL]\n"
               "Applies the schema migrations compiled into this binary (version %d), under an\n"
               "advisory lock; running it again changes nothing.\n",
               migrate_latest_version());
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "castgate migrate: unexpected argument \"%s\"\n", argv[1]);
        return 2;
    }
    PGconn *c = connect_db("migrate", cfg);
    if (!c)
        return 1;
    char err[1024];
    int n = migrate_apply(c, err, sizeof err);
    PQfinish(c);
    if (n < 0) {
        fprintf(stderr, "castgate migrate: %s\n", err);
        return 1;
    }
    printf("migrations applied: %d (schema version %d)\n", n, migrate_latest_version());
    return 0;
}

int cli_app(struct config *cfg, int argc, char **argv)
{
    static const char *const allowed[] = {"--json", NULL};
    if (check_flags("app", argc, argv, allowed) != 0)
        return 2;
    if (cli_wants_help(argc, argv) || argc < 2) {
        FILE *f = argc < 2 && !cli_wants_help(argc, argv) ? stderr : stdout;
        fprintf(f, "usage: castgate app create NAME [--json]\n"
                   "Creates an app (tenant) and prints appApiKey, appApiSecret (shown once, stored\n"
                   "hashed) and orgId. With --json, prints one JSON object and nothing else.\n");
        return f == stderr ? 2 : 0;
    }
    if (strcmp(argv[1], "create") != 0) {
        fprintf(stderr, "castgate app: unknown action \"%s\" (expected: create)\n", argv[1]);
        return 2;
    }
    int json = 0;
    const char *name = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (!name)
            name = argv[i];
        else {
            fprintf(stderr, "castgate app create: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (!name || !name[0] || strlen(name) > 200) {
        fprintf(stderr, "castgate app create: NAME is required (1..200 characters)\n");
        return 2;
    }
    PGconn *c = connect_db("app create", cfg);
    if (!c)
        return 1;
    char err[1024];
    int n = migrate_apply(c, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "castgate app create: %s\n", err);
        PQfinish(c);
        return 1;
    }
    struct app_credentials cr;
    if (apps_create(c, name, &cr, err, sizeof err) != 0) {
        fprintf(stderr, "castgate app create: %s\n", err);
        PQfinish(c);
        return 1;
    }
    PQfinish(c);
    if (json) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "appId", (json_int_t)cr.app_id,
                              "appApiKey", cr.api_key, "appApiSecret", cr.api_secret, "orgId",
                              cr.org_id);
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("app created: %s (appId %lld)\n"
               "  appApiKey:    %s\n"
               "  appApiSecret: %s   (shown once: store it now)\n"
               "  orgId:        %s\n",
               name, (long long)cr.app_id, cr.api_key, cr.api_secret, cr.org_id);
    }
    OPENSSL_cleanse(cr.api_secret, sizeof cr.api_secret);
    return 0;
}
