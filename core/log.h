/* log.h — one line per event: `ts level msg key=value ...` (SPEC OPS-5).
 *
 * Usage: log_info("rtmp: publish accepted key_id=%lld peer=%s", id, peer);
 * Messages are formatted by the caller as "area: what key=value ...". Never
 * pass the secret part of a stream key, token or password to a log call.
 * Thread-safe: each line is written with a single write(2). */
#ifndef CORE_LOG_H
#define CORE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Parses "debug|info|warn|error"; returns 0 and sets *out, or -1. */
int log_level_parse(const char *s, enum log_level *out);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Redirect output (default stderr). */
void log_set_fd(int fd);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like log_write, whatever the configured level: for the few lines scripts
 * rely on (`ready rtmp=… http=…`, SPEC §9). */
void log_always(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_get_level() <= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
