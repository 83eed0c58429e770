/* db.c — the db pool: N threads, each owning one PGconn, sharing a bounded FIFO. */
#include "storage/db.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct db_job {
    struct loop *reply;
    db_work_fn work;
    loop_fn done;
    void *arg;
    struct db_job *next;
};

struct db_worker {
    struct db_pool *pool;
    PGconn *conn;
    pthread_t thread;
};

struct db_pool {
    char *conninfo;
    int n;
    struct db_worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_job *head, *tail;
    size_t queued, running, cap;
    bool stopping;
    bool stopped;           /* threads joined, connections closed */
    uint64_t jobs, busy_us;
};

PGconn *db_connect(const char *conninfo, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(conninfo);
    if (!c) {
        snprintf(err, errlen, "db: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        /* libpq's message never includes the password. */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        snprintf(err, errlen, "db: cannot connect to database_url: %s", msg);
        PQfinish(c);
        return NULL;
    }
    PGresult *r = PQexec(c, "SET TIME ZONE 'UTC'; SET application_name = 'castgate'; SET client_min_messages = warning");
    PQclear(r);
    return c;
}

PGresult *db_exec(PGconn *c, const char *what, const char *sql, int nparams,
                  const char *const *params, char sqlstate[6])
{
    if (sqlstate)
        sqlstate[0] = 0;
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (sqlstate)
        snprintf(sqlstate, 6, "%s", state ? state : "XX000");
    char msg[512];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    /* Unique violations etc. are expected outcomes the caller maps to 409. */
    if (state && strncmp(state, "23", 2) == 0)
        log_debug("db: %s: sqlstate=%s %s", what, state, msg);
    else
        log_error("db: %s: sqlstate=%s %s", what, state ? state : "-", msg);
    PQclear(r);
    return NULL;
}

int64_t db_get_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

const char *db_get_str(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static void *db_worker_main(void *arg)
{
    struct db_worker *w = arg;
    struct db_pool *p = w->pool;
    pthread_setname_np(pthread_self(), "db");
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        struct db_job *job = p->head;
        if (!job) { /* stopping and drained */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->mu);

        if (PQstatus(w->conn) != CONNECTION_OK) {
            log_warn("db: connection lost, resetting");
            PQreset(w->conn);
            if (PQstatus(w->conn) == CONNECTION_OK) {
                PGresult *r = PQexec(w->conn, "SET TIME ZONE 'UTC'");
                PQclear(r);
            }
        }
        long long t0 = loop_now_us();
        job->work(w->conn, job->arg);
        long long dt = loop_now_us() - t0;
        if (job->done && job->reply) {
            if (loop_post(job->reply, job->done, job->arg) != 0)
                log_error("db: reply loop %s refused a result (inbox full or stopping)",
                          loop_name(job->reply));
        }
        free(job);
        pthread_mutex_lock(&p->mu);
        p->running--;
        p->jobs++;
        p->busy_us += (uint64_t)dt;
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

struct db_pool *db_pool_new(const char *conninfo, int nconns, size_t queue_max, char *err,
                            size_t errlen)
{
    struct db_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->conninfo = strdup(conninfo);
    p->n = nconns;
    p->cap = queue_max;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->workers = calloc((size_t)nconns, sizeof *p->workers);
    if (!p->workers || !p->conninfo)
        goto fail;
    for (int i = 0; i < nconns; i++) {
        p->workers[i].pool = p;
        p->workers[i].conn = db_connect(conninfo, err, errlen);
        if (!p->workers[i].conn)
            goto fail;
    }
    for (int i = 0; i < nconns; i++) {
        if (pthread_create(&p->workers[i].thread, NULL, db_worker_main, &p->workers[i]) != 0) {
            snprintf(err, errlen, "db: cannot start worker thread");
            /* join those started */
            pthread_mutex_lock(&p->mu);
            p->stopping = true;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            for (int j = 0; j < i; j++)
                pthread_join(p->workers[j].thread, NULL);
            goto fail;
        }
    }
    return p;
fail:
    if (p->workers)
        for (int i = 0; i < nconns; i++)
            if (p->workers[i].conn)
                PQfinish(p->workers[i].conn);
    free(p->workers);
    free(p->conninfo);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return NULL;
}

int db_pool_submit(struct db_pool *p, struct loop *reply, db_work_fn work, loop_fn done, void *arg)
{
    struct db_job *job = malloc(sizeof *job);
    if (!job)
        return -1;
    *job = (struct db_job){reply, work, done, arg, NULL};
    pthread_mutex_lock(&p->mu);
    if (p->stopping || p->queued >= p->cap) {
        pthread_mutex_unlock(&p->mu);
        free(job);
        log_warn("db: job refused: %s", p->stopping ? "pool stopping" : "queue full");
        return -1;
    }
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void db_pool_stats(struct db_pool *p, size_t *pending, uint64_t *jobs, uint64_t *busy_us)
{
    pthread_mutex_lock(&p->mu);
    if (pending)
        *pending = p->queued + p->running;
    if (jobs)
        *jobs = p->jobs;
    if (busy_us)
        *busy_us = p->busy_us;
    pthread_mutex_unlock(&p->mu);
}

void db_pool_stop(struct db_pool *p)
{
    if (!p || p->stopped)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++)
        pthread_join(p->workers[i].thread, NULL);
    for (int i = 0; i < p->n; i++)
        PQfinish(p->workers[i].conn);
    p->stopped = true;
}

void db_pool_free(struct db_pool *p)
{
    if (!p)
        return;
    db_pool_stop(p);
    free(p->workers);
    free(p->conninfo);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
