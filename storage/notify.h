/* notify.h — PostgreSQL LISTEN on one dedicated connection (SPEC OPS-7).
 *
 * A thread owns the connection, waits on its socket and hands each
 * notification payload to `on_notify` on that thread; the callback must not
 * block (it posts to a loop). A lost connection is re-established with
 * backoff; `on_reconnect` then tells the owner it may have missed messages. */
#ifndef STORAGE_NOTIFY_H
#define STORAGE_NOTIFY_H

#include <stddef.h>

struct notify_listener;

struct notify_handler {
    void *ctx;
    void (*on_notify)(void *ctx, const char *channel, const char *payload);
    void (*on_reconnect)(void *ctx);
};

/* Connects, LISTENs on channel and starts the thread. NULL with err. */
struct notify_listener *notify_listener_start(const char *conninfo, const char *channel,
                                              const struct notify_handler *h, char *err,
                                              size_t errlen);
/* Stops the thread and closes the connection. */
void notify_listener_stop(struct notify_listener *n);

#endif
