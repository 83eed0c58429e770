/* webhooks.c — the webhook worker thread and its tiny HTTP/1.1 client.
 * See webhooks.h for the delivery contract. */
#include "broadcast/webhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/secure.h"
#include "storage/db.h"

#define BATCH 16
#define CONNECT_TIMEOUT_MS 3000
#define IO_TIMEOUT_MS 5000
#define LEASE_SEC 60
#define RESCAN_WINDOW_MS 30000 /* events re-examined this long (late commits) */
#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- pure helpers --------------------------------------------------------- */

int webhooks_parse_url(const char *url, struct webhook_url *out)
{
    memset(out, 0, sizeof *out);
    const char *p = url;
    if (strncasecmp(p, "http://", 7) != 0) {
        const char *colon = strstr(p, "://");
        return colon && colon != p ? -2 : -1;
    }
    p += 7;
    const char *host_end;
    const char *h = p;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (!host_end)
            return -1;
        h = p + 1;
        p = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/?#");
        p = host_end;
    }
    size_t hl = (size_t)(host_end - h);
    if (hl == 0 || hl >= sizeof out->host)
        return -1;
    memcpy(out->host, h, hl);
    out->host[hl] = 0;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)out->host[i] <= ' ' || out->host[i] == '@')
            return -1;
    out->port = 80;
    if (*p == ':') {
        p++;
        char *end;
        long port = strtol(p, &end, 10);
        if (end == p || port < 1 || port > 65535)
            return -1;
        out->port = (int)port;
        p = end;
    }
    if (*p && *p != '/' && *p != '?')
        return -1;
    const char *frag = strchr(p, '#');
    size_t pl = frag ? (size_t)(frag - p) : strlen(p);
    if (pl + 2 >= sizeof out->path)
        return -1;
    size_t o = 0;
    if (*p != '/')
        out->path[o++] = '/';
    memcpy(out->path + o, p, pl);
    out->path[o + pl] = 0;
    for (const char *c = out->path; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return -1;
    return 0;
}

void webhooks_signature(const char *secret, const void *body, size_t len, char out[72])
{
    uint8_t mac[32];
    secure_hmac_sha256(secret, strlen(secret), body, len, mac);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[71] = 0;
}

int webhooks_backoff_sec(int attempts)
{
    if (attempts < 1)
        attempts = 1;
    if (attempts > 13)
        return WEBHOOKS_BACKOFF_CAP_SEC;
    int s = 1 << (attempts - 1);
    return s > WEBHOOKS_BACKOFF_CAP_SEC ? WEBHOOKS_BACKOFF_CAP_SEC : s;
}

/* ---- worker ------------------------------------------------------------------ */

static struct {
    pthread_t thread;
    bool running;
    atomic_bool stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool kicked;
    char conninfo[CONFIG_STR_MAX + 128];
    char node_id[128];
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Waits for fd to be ready for `events` until deadline_ms, in short slices
 * so a stop request is noticed. 1 ready, 0 timeout/stop, -1 error. */
static int wait_fd(int fd, short events, long long deadline_ms)
{
    for (;;) {
        if (atomic_load(&W.stopping))
            return 0;
        long long left = deadline_ms - loop_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {fd, events, 0};
        int n = poll(&pfd, 1, left > 200 ? 200 : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n > 0)
            return (pfd.revents & (POLLERR | POLLNVAL)) && !(pfd.revents & (POLLIN | POLLOUT)) ? -1 : 1;
    }
}

static int connect_to(const struct webhook_url *u, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%d", u->port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(u->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "resolve %.64s: %s", u->host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "connect %.64s:%d: no address", u->host, u->port);
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS &&
            wait_fd(fd, POLLOUT, loop_now_ms() + CONNECT_TIMEOUT_MS) == 1) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            if (soerr == 0)
                break;
            snprintf(err, errlen, "connect %.64s:%d: %s", u->host, u->port, strerror(soerr));
        } else {
            snprintf(err, errlen, "connect %.64s:%d: %s", u->host, u->port,
                     errno == EINPROGRESS ? "timed out" : strerror(errno));
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int send_all(int fd, const char *buf, size_t len, long long deadline_ms)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline_ms) != 1)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* POSTs body; returns the HTTP status, or -1 with err. */
static int http_post(const char *url, const char *body, size_t len, const char *signature,
                     const char *event_type, long long delivery_id, char *err, size_t errlen)
{
    struct webhook_url u;
    int pr = webhooks_parse_url(url, &u);
    if (pr != 0) {
        snprintf(err, errlen, pr == -2 ? "only http:// webhook URLs are supported (use a proxy for https)"
                                       : "malformed webhook URL");
        return -1;
    }
    int fd = connect_to(&u, err, errlen);
    if (fd < 0)
        return -1;
    char head[2048];
    bool v6 = strchr(u.host, ':') != NULL;
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: castgate-webhook/1\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                      "X-Castgate-Event: %s\r\nX-Castgate-Delivery: %lld\r\n%s%s%s"
                      "Connection: close\r\n\r\n",
                      u.path, v6 ? "[" : "", u.host, v6 ? "]" : "", u.port, len, event_type,
                      delivery_id, signature ? "X-Castgate-Signature: " : "",
                      signature ? signature : "", signature ? "\r\n" : "");
    int status = -1;
    long long deadline = loop_now_ms() + IO_TIMEOUT_MS;
    if (hl <= 0 || (size_t)hl >= sizeof head) {
        snprintf(err, errlen, "request head too long");
        goto out;
    }
    if (send_all(fd, head, (size_t)hl, deadline) != 0 || send_all(fd, body, len, deadline) != 0) {
        snprintf(err, errlen, "send: %s", atomic_load(&W.stopping) ? "stopping" : "failed or timed out");
        goto out;
    }
    char resp[512];
    size_t got = 0;
    while (got < sizeof resp - 1 && !memchr(resp, '\n', got)) {
        ssize_t n = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLIN, deadline) != 1)
                break;
            continue;
        }
        break;
    }
    resp[got] = 0;
    int code = 0;
    if (sscanf(resp, "HTTP/%*d.%*d %d", &code) == 1 && code >= 100 && code <= 599) {
        status = code;
        if (code < 200 || code > 299)
            snprintf(err, errlen, "receiver answered %d", code);
    } else {
        snprintf(err, errlen, got ? "malformed response" : "no response (timed out)");
    }
out:
    close(fd);
    return status;
}

struct scan_state {
    long long floor;        /* events above this are examined */
    long long next_floor;   /* becomes floor after RESCAN_WINDOW_MS */
    long long next_at_ms;
};

static void enqueue(PGconn *c, struct scan_state *s)
{
    char floor[24];
    snprintf(floor, sizeof floor, "%lld", s->floor);
    const char *params[1] = {floor};
    PGresult *res = db_exec(c, "webhooks enqueue",
                            "INSERT INTO webhook_deliveries (app_id, event_id)"
                            " SELECT e.app_id, e.id FROM events e JOIN apps a ON a.id = e.app_id"
                            " WHERE e.id > $1 AND a.webhook_url IS NOT NULL AND a.state = 'ACTIVE'"
                            " AND e.created_at >= coalesce(a.webhook_since, a.created_at)"
                            " AND e.created_at > now() - interval '1 day'"
                            " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id)"
                            " ORDER BY e.id LIMIT 1000"
                            " ON CONFLICT (event_id) DO NOTHING",
                            1, params, NULL);
    PQclear(res);
    long long now = loop_now_ms();
    if (now >= s->next_at_ms) {
        /* Slide the window: what was the newest id RESCAN_WINDOW_MS ago becomes the floor. */
        PGresult *mx = db_exec(c, "webhooks max", "SELECT coalesce(max(id), 0) FROM events", 0, NULL, NULL);
        if (mx) {
            if (s->next_floor > s->floor)
                s->floor = s->next_floor;
            s->next_floor = db_get_i64(mx, 0, 0);
            s->next_at_ms = now + RESCAN_WINDOW_MS;
        }
        PQclear(mx);
    }
}

/* Claims and sends due deliveries. Returns how many were attempted. */
static int deliver_due(PGconn *c)
{
    char max_attempts[16];
    snprintf(max_attempts, sizeof max_attempts, "%d", WEBHOOKS_MAX_ATTEMPTS);
    const char *params[1] = {max_attempts};
    PGresult *res = db_exec(c, "webhooks claim",
                            "UPDATE webhook_deliveries d SET attempts = d.attempts + 1,"
                            "  next_try_at = now() + interval '" STR(LEASE_SEC) " seconds'"
                            " FROM events e, apps a"
                            " WHERE d.id IN (SELECT id FROM webhook_deliveries"
                            "   WHERE delivered_at IS NULL AND next_try_at <= now() AND attempts < $1"
                            "   ORDER BY next_try_at, id LIMIT " STR(BATCH) " FOR UPDATE SKIP LOCKED)"
                            " AND e.id = d.event_id AND a.id = d.app_id"
                            " RETURNING d.id, d.attempts, a.webhook_url, a.webhook_secret, e.type, "
                            WEBHOOKS_EVENT_JSON_SQL("e"),
                            1, params, NULL);
    if (!res)
        return 0;
    int n = PQntuples(res);
    for (int i = 0; i < n && !atomic_load(&W.stopping); i++) {
        long long id = (long long)db_get_i64(res, i, 0);
        int attempts = (int)db_get_i64(res, i, 1);
        const char *url = db_get_str(res, i, 2);
        const char *secret = db_get_str(res, i, 3);
        const char *type = db_get_str(res, i, 4);
        const char *body = db_get_str(res, i, 5);
        char err[256] = "";
        int status = -1;
        if (!url) {
            snprintf(err, sizeof err, "webhook URL removed");
            attempts = WEBHOOKS_MAX_ATTEMPTS;
        } else {
            char sig[72];
            if (secret)
                webhooks_signature(secret, body, strlen(body), sig);
            status = http_post(url, body, strlen(body), secret ? sig : NULL, type ? type : "event",
                               id, err, sizeof err);
        }
        char idtxt[24], delay[16];
        snprintf(idtxt, sizeof idtxt, "%lld", id);
        PGresult *up;
        if (status >= 200 && status <= 299) {
            const char *p[1] = {idtxt};
            up = db_exec(c, "webhooks delivered",
                         "UPDATE webhook_deliveries SET delivered_at = now(), last_error = NULL WHERE id = $1",
                         1, p, NULL);
            metrics_add(METRIC_WEBHOOKS_SENT_TOTAL, 1);
            log_debug("webhooks: delivered id=%lld type=%s", id, type ? type : "-");
        } else {
            snprintf(delay, sizeof delay, "%d", webhooks_backoff_sec(attempts));
            const char *p[3] = {idtxt, err, delay};
            up = db_exec(c, "webhooks failed",
                         "UPDATE webhook_deliveries SET last_error = $2,"
                         " next_try_at = now() + make_interval(secs => $3::int)"
                         " WHERE id = $1",
                         3, p, NULL);
            if (attempts >= WEBHOOKS_MAX_ATTEMPTS)
                log_warn("webhooks: giving up id=%lld after %d attempts: %s", id, attempts, err);
            else
                log_info("webhooks: attempt %d failed id=%lld retry_in=%ss: %s", attempts, id, delay,
                         err);
        }
        PQclear(up);
    }
    PQclear(res);
    return n;
}

static void *worker_main(void *arg)
{
    (void)arg;
    PGconn *c = NULL;
    struct scan_state scan = {0, 0, 0};
    bool have_floor = false;
    while (!atomic_load(&W.stopping)) {
        int worked = 0;
        if (!c || PQstatus(c) != CONNECTION_OK) {
            if (c) {
                PQfinish(c);
                c = NULL;
            }
            char err[256];
            c = db_connect(W.conninfo, err, sizeof err);
            if (!c)
                log_warn("webhooks: %s (retrying)", err);
        }
        if (c && !have_floor) {
            /* Resume after the newest delivery ever enqueued; with none, skip history. */
            PGresult *f = db_exec(c, "webhooks floor",
                                  "SELECT coalesce((SELECT max(event_id) FROM webhook_deliveries),"
                                  " (SELECT max(id) FROM events), 0)",
                                  0, NULL, NULL);
            if (f) {
                scan.floor = db_get_i64(f, 0, 0);
                scan.next_floor = scan.floor;
                scan.next_at_ms = loop_now_ms() + RESCAN_WINDOW_MS;
                have_floor = true;
            }
            PQclear(f);
        }
        if (c && have_floor) {
            enqueue(c, &scan);
            worked = deliver_due(c);
        }
        if (worked >= BATCH)
            continue; /* more may be due */
        pthread_mutex_lock(&W.mu);
        if (!W.kicked && !atomic_load(&W.stopping)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += c ? 1 : 2;
            pthread_cond_timedwait(&W.cv, &W.mu, &ts);
        }
        W.kicked = false;
        pthread_mutex_unlock(&W.mu);
    }
    if (c)
        PQfinish(c);
    return NULL;
}

int webhooks_start(const struct config *cfg, const char *conninfo, char *err, size_t errlen)
{
    if (W.running) {
        snprintf(err, errlen, "webhooks: already started");
        return -1;
    }
    if (strlen(conninfo) >= sizeof W.conninfo) {
        snprintf(err, errlen, "webhooks: database_url too long");
        return -1;
    }
    snprintf(W.conninfo, sizeof W.conninfo, "%s", conninfo);
    snprintf(W.node_id, sizeof W.node_id, "%s", cfg->node_id);
    atomic_store(&W.stopping, false);
    W.kicked = false;
    if (pthread_create(&W.thread, NULL, worker_main, NULL) != 0) {
        snprintf(err, errlen, "webhooks: cannot start the worker thread");
        return -1;
    }
    W.running = true;
    return 0;
}

void webhooks_kick(void)
{
    pthread_mutex_lock(&W.mu);
    W.kicked = true;
    pthread_cond_signal(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

void webhooks_stop(void)
{
    if (!W.running)
        return;
    atomic_store(&W.stopping, true);
    webhooks_kick();
    pthread_join(W.thread, NULL);
    W.running = false;
}
