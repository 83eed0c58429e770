/* health.c — /healthz: a db round trip on the pool plus a write probe in
 * data_dir, both done on a db thread (file I/O stays off the http loop). */
#include "api/health.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/http_server.h"
#include "storage/db.h"

struct health_job {
    struct api_request *r;
    char db_error[256];
    char disk_error[256];
    long long db_us;
};

static void health_work(PGconn *c, void *arg)
{
    struct health_job *j = arg;
    long long t0 = loop_now_us();
    PGresult *res = db_exec(c, "healthz", "SELECT 1", 0, NULL, NULL);
    if (!res)
        snprintf(j->db_error, sizeof j->db_error, "%s", PQstatus(c) == CONNECTION_OK ? "query failed" : "unreachable");
    PQclear(res);
    j->db_us = loop_now_us() - t0;

    char path[CONFIG_STR_MAX + 64];
    snprintf(path, sizeof path, "%s/.healthz.%d.tmp", j->r->ctx->cfg->data_dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "ok", 2) != 2)
        snprintf(j->disk_error, sizeof j->disk_error, "data_dir not writable: %s", strerror(errno));
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
}

static void health_done(void *arg)
{
    struct health_job *j = arg;
    bool ok = !j->db_error[0] && !j->disk_error[0];
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(ok ? "ok" : "error"));
    json_object_set_new(o, "database", json_string(j->db_error[0] ? j->db_error : "ok"));
    json_object_set_new(o, "databaseLatencyUs", json_integer(j->db_us));
    json_object_set_new(o, "dataDir", json_string(j->disk_error[0] ? j->disk_error : "ok"));
    json_object_set_new(o, "node", json_string(j->r->ctx->cfg->node_id));
    api_reply_json(j->r, ok ? 200 : 503, o);
    free(j);
}

void health_handle(void *request, const struct route_params *params)
{
    (void)params;
    struct api_request *r = request;
    struct health_job *j = calloc(1, sizeof *j);
    if (!j) {
        api_reply_error(r, 503, "UNAVAILABLE", "out of memory");
        return;
    }
    j->r = r;
    if (db_pool_submit(r->ctx->db, r->ctx->http_loop, health_work, health_done, j) != 0) {
        free(j);
        api_reply_error(r, 503, "UNAVAILABLE", "database queue full");
    }
}
