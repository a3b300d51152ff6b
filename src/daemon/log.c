/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static const char *const names[] = { "error", "warn", "info", "debug" };

/* The log is the process's stderr: one state for the process. */
static struct {
        int max_level;
        bool limiting;
        unsigned trusted;       /* nesting of log_trusted(true) */
        uint64_t tokens;        /* thousandths of a line */
        uint64_t last_ms;       /* when tokens were last refilled */
        uint64_t pending;       /* suppressed since the last line written */
        struct log_stats stats;
} lg = { .max_level = LOG_LEVEL_INFO };

void log_set_level(int level)
{
        lg.max_level = level;
}

int log_level_parse(const char *name)
{
        for (int i = 0; i < 4; i++)
                if (strcmp(name, names[i]) == 0)
                        return i;
        return -1;
}

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_line(const char *level, const char *line)
{
        /* One write per line so lines from a crash stay whole. */
        fprintf(stderr, "vserial: %s: %s\n", level, line);
        lg.stats.written++;
}

static void put_suppressed(void)
{
        char line[64];

        if (!lg.pending)
                return;
        snprintf(line, sizeof(line), "%llu messages suppressed (rate limit)",
                 (unsigned long long)lg.pending);
        lg.pending = 0;
        put_line(names[LOG_LEVEL_WARN], line);
}

/* May a line be written now? Token bucket: LOG_BURST, LOG_RATE a second. */
static bool take_token(void)
{
        uint64_t t = now_ms();

        lg.tokens += (t - lg.last_ms) * LOG_RATE;
        if (lg.tokens > LOG_BURST * 1000ull)
                lg.tokens = LOG_BURST * 1000ull;
        lg.last_ms = t;
        if (lg.tokens < 1000)
                return false;
        lg.tokens -= 1000;
        return true;
}

void log_msg(int level, const char *fmt, ...)
{
        char line[512];
        va_list ap;

        if (level > lg.max_level || level < 0)
                return;
        if (lg.limiting && !lg.trusted && !take_token()) {
                lg.pending++;
                lg.stats.suppressed++;
                return;
        }
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        put_suppressed();
        put_line(names[level], line);
}

int log_errno(int err, const char *fmt, ...)
{
        char what[400];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        log_msg(LOG_LEVEL_ERROR, "%s: %s", what, strerror(-err));
        return err;
}

void log_limit_start(void)
{
        lg.limiting = true;
        lg.tokens = LOG_BURST * 1000ull;
        lg.last_ms = now_ms();
}

void log_limit_stop(void)
{
        put_suppressed();
        lg.limiting = false;
}

void log_trusted(bool on)
{
        if (on)
                lg.trusted++;
        else if (lg.trusted)
                lg.trusted--;
}

void log_get_stats(struct log_stats *ret)
{
        *ret = lg.stats;
}

