/*
 * log.h — leveled logging to stderr or a file (internal).
 *
 * One line per event: time, level, message.  Callers never pass passwords
 * or message bodies.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdarg.h>
#include <tern/module.h>

/* level: "error" | "warn" | "info" | "debug"; file NULL or "" = stderr.  0 / -1. */
int log_open(const char *level, const char *file);
void log_close(void);
int log_enabled(tern_log_level_t level);
void log_msg(tern_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(tern_log_level_t level, const char *prefix, const char *fmt, va_list ap);

#define log_error(...) log_msg(TERN_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(TERN_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(TERN_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(TERN_LOG_DEBUG))                                                           \
            log_msg(TERN_LOG_DEBUG, __VA_ARGS__);                                                  \
    } while (0)

#endif
