/* loop.c — libevent loop threads with a bounded cross-thread inbox.
 *
 * The inbox is a singly linked FIFO guarded by a mutex; a persistent "wake"
 * event is made active (event_active is thread-safe once libevent's pthread
 * locking is on) so the loop thread drains the inbox in one callback. */
#include "core/loop.h"

#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

struct loop_job {
    loop_fn fn;
    void *arg;
    struct loop_job *next;
};

struct loop {
    char name[32];
    struct event_base *base;
    struct event *wake;
    pthread_t thread;
    bool has_thread;
    pthread_t running_thread; /* whichever thread runs the loop */
    bool running;

    pthread_mutex_t mu;
    struct loop_job *head, *tail;
    size_t queued, cap;
    bool stopping;
};

int loop_global_init(void)
{
    /* Media buffers (LL-HLS parts of 100-300 KiB) are allocated and freed
     * continuously. Above glibc's default mmap threshold each one was a fresh
     * mmap (page faults on every byte copied in) and a munmap; heap memory
     * freed at the top was trimmed and faulted back. Keep them on the heaps:
     * at 300 streams the part copy fell from 35% to 18% of the process. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    return evthread_use_pthreads();
}

static void loop_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop *l = arg;
    pthread_mutex_lock(&l->mu);
    struct loop_job *job = l->head;
    l->head = l->tail = NULL;
    l->queued = 0;
    bool stopping = l->stopping;
    pthread_mutex_unlock(&l->mu);
    while (job) {
        struct loop_job *next = job->next;
        job->fn(job->arg);
        free(job);
        job = next;
    }
    if (stopping)
        event_base_loopexit(l->base, NULL);
}

struct loop *loop_new(const char *name, size_t inbox_cap)
{
    struct loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->cap = inbox_cap ? inbox_cap : 65536;
    pthread_mutex_init(&l->mu, NULL);
    /* The epoll changelist folds the enable/disable pairs of one loop pass
     * into one epoll_ctl per fd (evhttp re-arms read and write around every
     * request: up to four epoll_ctl calls per keep-alive request without
     * it). We never dup() sockets, the case libevent warns about. */
    struct event_config *ec = event_config_new();
    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        l->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (!l->base)
        l->base = event_base_new();
    if (!l->base)
        goto fail;
    l->wake = event_new(l->base, -1, EV_PERSIST, loop_drain, l);
    if (!l->wake)
        goto fail;
    return l;
fail:
    if (l->base)
        event_base_free(l->base);
    pthread_mutex_destroy(&l->mu);
    free(l);
    return NULL;
}

static void *loop_thread_main(void *arg)
{
    struct loop *l = arg;
    char tname[16]; /* the kernel's limit for thread names */
    memcpy(tname, l->name, sizeof tname - 1);
    tname[sizeof tname - 1] = 0;
    pthread_setname_np(pthread_self(), tname);
    l->running_thread = pthread_self();
    l->running = true;
    /* EVLOOP_NO_EXIT_ON_EMPTY: a loop with no events yet still waits for posts. */
    event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    l->running = false;
    return NULL;
}

int loop_start(struct loop *l)
{
    if (pthread_create(&l->thread, NULL, loop_thread_main, l) != 0) {
        log_error("loop: start name=%s: %s", l->name, strerror(errno));
        return -1;
    }
    l->has_thread = true;
    return 0;
}

int loop_run_here(struct loop *l)
{
    l->running_thread = pthread_self();
    l->running = true;
    int rc = event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    l->running = false;
    return rc < 0 ? -1 : 0;
}

struct event_base *loop_base(struct loop *l) { return l->base; }
const char *loop_name(const struct loop *l) { return l->name; }

bool loop_is_current(const struct loop *l)
{
    return l->running && pthread_equal(l->running_thread, pthread_self());
}

int loop_post(struct loop *l, loop_fn fn, void *arg)
{
    struct loop_job *job = malloc(sizeof *job);
    if (!job)
        return -1;
    job->fn = fn;
    job->arg = arg;
    job->next = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->stopping || l->queued >= l->cap) {
        pthread_mutex_unlock(&l->mu);
        free(job);
        return -1;
    }
    if (l->tail)
        l->tail->next = job;
    else
        l->head = job;
    l->tail = job;
    l->queued++;
    pthread_mutex_unlock(&l->mu);
    event_active(l->wake, EV_READ, 0);
    return 0;
}

void loop_stop(struct loop *l)
{
    pthread_mutex_lock(&l->mu);
    bool already = l->stopping;
    l->stopping = true;
    pthread_mutex_unlock(&l->mu);
    if (!already)
        event_active(l->wake, EV_READ, 0);
    if (l->has_thread && !pthread_equal(l->thread, pthread_self())) {
        pthread_join(l->thread, NULL);
        l->has_thread = false;
    }
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    struct loop_job *job = l->head;
    while (job) {
        struct loop_job *next = job->next;
        free(job);
        job = next;
    }
    event_free(l->wake);
    event_base_free(l->base);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

long long loop_now_ms(void) { return loop_now_us() / 1000; }

long long loop_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

long long wall_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}
