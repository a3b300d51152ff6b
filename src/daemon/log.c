/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int max_level = LOG_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };

void log_set_level(int level)
{
        max_level = level;
}

int log_level_parse(const char *name)
{
        for (int i = 0; i < 4; i++)
                if (strcmp(name, names[i]) == 0)
                        return i;
        return -1;
}

void log_msg(int level, const char *fmt, ...)
{
        char line[512];
        va_list ap;

        if (level > max_level)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        /* One write per line so lines from a crash stay whole. */
        fprintf(stderr, "vserial: %s: %s\n", names[level], line);
}

bool log_ratelimit_ok(struct log_ratelimit *rl)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (ts.tv_sec != rl->window) {
                if (rl->suppressed)
                        log_warn("%u similar messages suppressed", rl->suppressed);
                rl->window = ts.tv_sec;
                rl->count = 0;
                rl->suppressed = 0;
        }
        if (rl->count < 10) {
                rl->count++;
                return true;
        }
        rl->suppressed++;
        return false;
}
