/*
 * log.c — leveled logging.  A reopen (SIGHUP) follows log rotation.
 */
#include "util/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static tern_log_level_t current_level = TERN_LOG_INFO;
static FILE *out;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_open(const char *level, const char *file)
{
    tern_log_level_t lvl = TERN_LOG_INFO;
    if (level) {
        int found = 0;
        for (int i = 0; i < 4; i++)
            if (strcmp(level, level_names[i]) == 0) {
                lvl = (tern_log_level_t)i;
                found = 1;
            }
        if (!found)
            return -1;
    }
    FILE *f = NULL;
    if (file && *file) {
        f = fopen(file, "a");
        if (!f)
            return -1;
        setvbuf(f, NULL, _IOLBF, 0);
    }
    log_close();
    out = f;
    current_level = lvl;
    return 0;
}

void log_close(void)
{
    if (out)
        fclose(out);
    out = NULL;
}

int log_enabled(tern_log_level_t level)
{
    return level <= current_level;
}

void log_vmsg(tern_log_level_t level, const char *prefix, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    FILE *f = out ? out : stderr;
    struct timeval tv;
    struct tm tm;
    char when[32];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    char line[2048];
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(f, "%s.%03dZ %-5s %s%s%s\n", when, (int)(tv.tv_usec / 1000), level_names[level],
            prefix ? prefix : "", prefix ? ": " : "", line);
}

void log_msg(tern_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, NULL, fmt, ap);
    va_end(ap);
}
