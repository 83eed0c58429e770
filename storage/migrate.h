/* migrate.h — versioned SQL migrations (SPEC OPS-3).
 *
 * The migrations are storage/migrations/NNNN_name.sql, compiled into the
 * binary (core/embedded.h). Each is applied once, in order, in its own
 * transaction, under a PostgreSQL advisory lock so that several nodes
 * starting at once apply each exactly once. */
#ifndef STORAGE_MIGRATE_H
#define STORAGE_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

/* Applies what is missing. Returns the number applied (>= 0), or -1 with err. */
int migrate_apply(PGconn *conn, char *err, size_t errlen);

/* Highest embedded migration version. */
int migrate_latest_version(void);

#endif
