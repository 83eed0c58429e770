/* loop.h — event loop threads and cross-thread queues (ARCHITECTURE §1).
 *
 * A `struct loop` is one libevent event_base run by one thread, plus an inbox:
 * any thread may loop_post() a function to run on that loop's thread. This is
 * the only way threads talk to a loop: objects owned by a loop (RTMP sessions,
 * packagers, parked HTTP requests) are touched only from that loop's thread.
 *
 * The inbox has a ceiling (`inbox_cap`); loop_post() on a full inbox fails
 * rather than growing without bound. */
#ifndef CORE_LOOP_H
#define CORE_LOOP_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct loop;

typedef void (*loop_fn)(void *arg);

/* Must be called once, before any loop is created (enables libevent's
 * pthread locking). */
int loop_global_init(void);

/* Creates a loop (not yet running). name is for logs/thread names. */
struct loop *loop_new(const char *name, size_t inbox_cap);
/* Starts the loop's thread. 0 or -1. */
int loop_start(struct loop *l);
/* Runs the loop on the calling thread until loop_stop() (used by main). */
int loop_run_here(struct loop *l);
struct event_base *loop_base(struct loop *l);
const char *loop_name(const struct loop *l);
/* True when called from the thread running this loop. */
bool loop_is_current(const struct loop *l);

/* Queue fn(arg) to run on the loop's thread, in FIFO order. Thread-safe.
 * Returns 0, or -1 if the inbox is full or the loop is stopping (fn is then
 * NOT called and arg stays the caller's). */
int loop_post(struct loop *l, loop_fn fn, void *arg);

/* Asks the loop to exit after the callbacks already queued, and joins its
 * thread (if it has one). Safe to call from any other thread, idempotent. */
void loop_stop(struct loop *l);
/* Frees a stopped loop. Callbacks still queued are dropped (not run). */
void loop_free(struct loop *l);

/* Monotonic clock in ms / µs, and wall clock in µs since the epoch. */
long long loop_now_ms(void);
long long loop_now_us(void);
long long wall_now_us(void);

#endif
