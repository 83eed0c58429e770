/* metrics.c — renders core/metrics counters, HTTP status counts, db pool
 * figures, and recordings by state (one db job per scrape). */
#include "api/metrics.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "api/http_server.h"
#include "api/viewer_access.h"
#include "broadcast/gateway.h"
#include "core/metrics.h"
#include "storage/db.h"

struct metrics_job {
    struct api_request *r;
    char states[8][16];
    long long counts[8];
    int nstates;
    long long db_us;
    int db_ok;
};

static void metrics_work(PGconn *c, void *arg)
{
    struct metrics_job *j = arg;
    long long t0 = loop_now_us();
    PGresult *res = db_exec(c, "metrics", "SELECT status, count(*) FROM recordings GROUP BY status", 0,
                            NULL, NULL);
    j->db_us = loop_now_us() - t0;
    if (!res)
        return;
    j->db_ok = 1;
    for (int i = 0; i < PQntuples(res) && i < 8; i++) {
        snprintf(j->states[i], sizeof j->states[i], "%s", PQgetvalue(res, i, 0));
        j->counts[i] = db_get_i64(res, i, 1);
        j->nstates++;
    }
    PQclear(res);
}

static void metrics_done(void *arg)
{
    struct metrics_job *j = arg;
    struct evbuffer *b = evbuffer_new();
    for (int i = 0; i < METRIC__COUNT; i++) {
        const char *name, *help, *type;
        metrics_describe((enum metric_id)i, &name, &help, &type);
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name,
                            metrics_get((enum metric_id)i));
    }
    struct http_stats hs;
    http_server_stats(j->r->srv, &hs);
    evbuffer_add_printf(b, "# HELP castgate_http_requests_total HTTP requests by status code\n"
                           "# TYPE castgate_http_requests_total counter\n");
    for (int cls = 1; cls < 6; cls++)
        for (int k = 0; k < 100; k++)
            if (hs.by_code[cls][k])
                evbuffer_add_printf(b, "castgate_http_requests_total{code=\"%d\"} %llu\n",
                                    cls * 100 + k, hs.by_code[cls][k]);
    static const char *const all_states[] = {"RECORDING", "PROCESSING", "READY", "EXPIRED", "FAILED"};
    evbuffer_add_printf(b, "# HELP castgate_recordings Recordings by state\n# TYPE castgate_recordings gauge\n");
    for (size_t s = 0; s < 5; s++) {
        long long v = 0;
        for (int i = 0; i < j->nstates; i++)
            if (strcmp(j->states[i], all_states[s]) == 0)
                v = j->counts[i];
        evbuffer_add_printf(b, "castgate_recordings{state=\"%s\"} %lld\n", all_states[s], v);
    }
    evbuffer_add_printf(b, "# HELP castgate_viewers Viewer sessions active in the last 30 s (PKG-8)\n"
                           "# TYPE castgate_viewers gauge\ncastgate_viewers %d\n", viewer_sessions_total());
    size_t pending = 0;
    uint64_t jobs = 0, busy = 0;
    db_pool_stats(j->r->ctx->db, &pending, &jobs, &busy);
    evbuffer_add_printf(b,
                        "# HELP castgate_db_up PostgreSQL reachable at the last scrape\n# TYPE castgate_db_up gauge\ncastgate_db_up %d\n"
                        "# HELP castgate_db_latency_seconds Round trip of the scrape's query\n# TYPE castgate_db_latency_seconds gauge\ncastgate_db_latency_seconds %.6f\n"
                        "# HELP castgate_db_jobs_total Database jobs run by the pool\n# TYPE castgate_db_jobs_total counter\ncastgate_db_jobs_total %llu\n"
                        "# HELP castgate_db_job_seconds_total Time spent in database jobs\n# TYPE castgate_db_job_seconds_total counter\ncastgate_db_job_seconds_total %.6f\n"
                        "# HELP castgate_db_jobs_pending Database jobs queued or running\n# TYPE castgate_db_jobs_pending gauge\ncastgate_db_jobs_pending %zu\n",
                        j->db_ok, j->db_us / 1e6, (unsigned long long)jobs, busy / 1e6, pending);
    size_t len = evbuffer_get_length(b);
    char *text = malloc(len ? len : 1);
    evbuffer_remove(b, text, len);
    evbuffer_free(b);
    api_reply_bytes(j->r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    free(j);
}

void metrics_handle(void *request, const struct route_params *params)
{
    (void)params;
    struct api_request *r = request;
    struct metrics_job *j = calloc(1, sizeof *j);
    if (!j) {
        api_reply_error(r, 503, "UNAVAILABLE", "out of memory");
        return;
    }
    j->r = r;
    if (db_pool_submit(r->ctx->db, r->ctx->http_loop, metrics_work, metrics_done, j) != 0) {
        j->db_ok = 0;
        metrics_done(j);
    }
}
