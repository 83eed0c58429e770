/* migrate.c — apply embedded SQL migrations under an advisory lock. */
#include "storage/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/embedded.h"
#include "core/log.h"
#include "storage/db.h"

/* Any constant; shared by every castgate node on the database. */
#define MIGRATE_LOCK_KEY "7231960412"

static int version_of(const char *name)
{
    return atoi(name); /* "0001_init.sql" -> 1 */
}

int migrate_latest_version(void)
{
    int v = 0;
    for (const struct embedded_file *m = migrations; m->name; m++)
        if (version_of(m->name) > v)
            v = version_of(m->name);
    return v;
}

static int exec_simple(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "migrate: %s", PQresultErrorMessage(r));
        for (char *p = err; *p; p++)
            if (*p == '\n')
                *p = ' ';
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

int migrate_apply(PGconn *c, char *err, size_t errlen)
{
    int applied = 0;
    if (exec_simple(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen) != 0)
        return -1;
    if (exec_simple(c,
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    err, errlen) != 0)
        goto fail;

    for (const struct embedded_file *m = migrations; m->name; m++) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", version_of(m->name));
        const char *params[2] = {ver, m->name};
        PGresult *r = db_exec(c, "migrate check", "SELECT 1 FROM schema_migrations WHERE version = $1",
                              1, params, NULL);
        if (!r) {
            snprintf(err, errlen, "migrate: cannot read schema_migrations");
            goto fail;
        }
        int have = PQntuples(r);
        PQclear(r);
        if (have)
            continue;
        if (exec_simple(c, "BEGIN", err, errlen) != 0)
            goto fail;
        if (exec_simple(c, (const char *)m->data, err, errlen) != 0) {
            char detail[1024];
            snprintf(detail, sizeof detail, "%s", err);
            snprintf(err, errlen, "migrate: %s failed: %s", m->name, detail);
            PQclear(PQexec(c, "ROLLBACK"));
            goto fail;
        }
        r = db_exec(c, "migrate record",
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, params, NULL);
        if (!r) {
            PQclear(PQexec(c, "ROLLBACK"));
            snprintf(err, errlen, "migrate: cannot record %s", m->name);
            goto fail;
        }
        PQclear(r);
        if (exec_simple(c, "COMMIT", err, errlen) != 0)
            goto fail;
        log_info("migrate: applied version=%s name=%s", ver, m->name);
        applied++;
    }
    PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
    return applied;
fail:
    PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
    return -1;
}
