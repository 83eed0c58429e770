/* notify.c — the LISTEN thread: poll() on PQsocket plus a self-pipe to stop. */
#include "storage/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "storage/db.h"

struct notify_listener {
    char *conninfo;
    char channel[64];
    struct notify_handler h;
    PGconn *conn;
    pthread_t thread;
    int stop_pipe[2];
};

static int listen_on(PGconn *c, const char *channel)
{
    char *ident = PQescapeIdentifier(c, channel, strlen(channel));
    if (!ident)
        return -1;
    char sql[128];
    snprintf(sql, sizeof sql, "LISTEN %s", ident);
    PQfreemem(ident);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : -1;
}

/* Waits up to ms for the stop pipe; true if asked to stop. */
static bool wait_stop(struct notify_listener *n, int ms)
{
    struct pollfd p = {.fd = n->stop_pipe[0], .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static void *notify_main(void *arg)
{
    struct notify_listener *n = arg;
    pthread_setname_np(pthread_self(), "notify");
    int backoff_ms = 200;
    for (;;) {
        if (!n->conn || PQstatus(n->conn) != CONNECTION_OK) {
            if (n->conn)
                PQfinish(n->conn);
            char err[512];
            n->conn = db_connect(n->conninfo, err, sizeof err);
            if (!n->conn || listen_on(n->conn, n->channel) != 0) {
                log_warn("notify: reconnect failed, retry_ms=%d", backoff_ms);
                if (wait_stop(n, backoff_ms))
                    break;
                backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
                continue;
            }
            backoff_ms = 200;
            log_info("notify: listening channel=%s", n->channel);
            if (n->h.on_reconnect)
                n->h.on_reconnect(n->h.ctx);
        }
        struct pollfd p[2] = {{.fd = PQsocket(n->conn), .events = POLLIN},
                              {.fd = n->stop_pipe[0], .events = POLLIN}};
        int rc = poll(p, 2, 30000);
        if (rc < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (rc == 0) {
            /* idle: a cheap round trip detects a dead connection */
            PGresult *r = PQexec(n->conn, "SELECT 1");
            PQclear(r);
        }
        if (!PQconsumeInput(n->conn)) {
            log_warn("notify: connection lost: %s", PQerrorMessage(n->conn));
            PQfinish(n->conn);
            n->conn = NULL;
            continue;
        }
        PGnotify *note;
        while ((note = PQnotifies(n->conn)) != NULL) {
            n->h.on_notify(n->h.ctx, note->relname, note->extra);
            PQfreemem(note);
        }
    }
    return NULL;
}

struct notify_listener *notify_listener_start(const char *conninfo, const char *channel,
                                              const struct notify_handler *h, char *err,
                                              size_t errlen)
{
    struct notify_listener *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->stop_pipe[0] = n->stop_pipe[1] = -1;
    n->conninfo = strdup(conninfo);
    snprintf(n->channel, sizeof n->channel, "%s", channel);
    n->h = *h;
    if (pipe2(n->stop_pipe, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "notify: pipe: %s", strerror(errno));
        goto fail;
    }
    n->conn = db_connect(conninfo, err, errlen);
    if (!n->conn)
        goto fail;
    if (listen_on(n->conn, channel) != 0) {
        snprintf(err, errlen, "notify: LISTEN %s failed", channel);
        goto fail;
    }
    if (pthread_create(&n->thread, NULL, notify_main, n) != 0) {
        snprintf(err, errlen, "notify: cannot start thread");
        goto fail;
    }
    return n;
fail:
    if (n->conn)
        PQfinish(n->conn);
    if (n->stop_pipe[0] >= 0) {
        close(n->stop_pipe[0]);
        close(n->stop_pipe[1]);
    }
    free(n->conninfo);
    free(n);
    return NULL;
}

void notify_listener_stop(struct notify_listener *n)
{
    if (!n)
        return;
    ssize_t w = write(n->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(n->thread, NULL);
    if (n->conn)
        PQfinish(n->conn);
    close(n->stop_pipe[0]);
    close(n->stop_pipe[1]);
    free(n->conninfo);
    free(n);
}
