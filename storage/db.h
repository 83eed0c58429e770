/* db.h — PostgreSQL access: a pool of libpq connections on worker threads.
 *
 * Loops never call libpq (ARCHITECTURE §1). A loop submits a job: `work`
 * runs on a db thread with a connection of its own; then `done` is posted
 * back to the submitting loop. The same `arg` travels through both and stays
 * the caller's: the pool never frees it.
 *
 * The queue has a ceiling (db_queue_max); a full queue refuses new jobs
 * (db_pool_submit returns -1), so a database stall shows up as refusals,
 * never as unbounded memory. A broken connection is reset before the next job. */
#ifndef STORAGE_DB_H
#define STORAGE_DB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

struct db_pool;

typedef void (*db_work_fn)(PGconn *conn, void *arg);

/* Connects nconns connections (all must succeed). NULL with err on failure. */
struct db_pool *db_pool_new(const char *conninfo, int nconns, size_t queue_max, char *err,
                            size_t errlen);
/* Queue a job. reply may be NULL (no done callback). 0, or -1 if the queue is
 * full or the pool is stopping: then neither work nor done will be called. */
int db_pool_submit(struct db_pool *p, struct loop *reply, db_work_fn work, loop_fn done, void *arg);
/* Refuses new jobs from now on (db_pool_submit returns -1), runs every job
 * already queued, joins the threads and closes the connections. The loops
 * that receive `done` callbacks must still be running. The pool stays
 * allocated, so late submitters (an HTTP request racing shutdown) get a
 * clean refusal. Idempotent. */
void db_pool_stop(struct db_pool *p);
/* db_pool_stop() if needed, then frees. Nothing may use the pool after. */
void db_pool_free(struct db_pool *p);

/* Jobs queued + running right now; total jobs; cumulative job time (µs). */
void db_pool_stats(struct db_pool *p, size_t *pending, uint64_t *jobs, uint64_t *busy_us);

/* Opens one synchronous connection (CLI commands, the LISTEN connection),
 * with session settings applied (UTC time zone). NULL with err. */
PGconn *db_connect(const char *conninfo, char *err, size_t errlen);

/* Runs a parameterized statement (text params, NULL = SQL NULL). Returns the
 * result when its status is COMMAND_OK or TUPLES_OK; otherwise logs
 * "db: <what>: <message>", clears it and returns NULL. When sqlstate is
 * non-NULL it receives the 5-char SQLSTATE of a failure ("" on success). */
PGresult *db_exec(PGconn *c, const char *what, const char *sql, int nparams,
                  const char *const *params, char sqlstate[6]);

/* Parses an int64 column value; 0 if NULL/invalid. */
int64_t db_get_i64(const PGresult *r, int row, int col);
/* Value or NULL when the column is SQL NULL. */
const char *db_get_str(const PGresult *r, int row, int col);

#endif
