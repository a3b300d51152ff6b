/* SPDX-License-Identifier: MIT */
/* The daemon's log: levelled lines on stderr, and a rate limit for what a
 * guest or a frontend can trigger at will. */
#pragma once

#include <stdbool.h>

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(int level);
/* "error", "warn", "info", "debug" -> level, or -1. */
int log_level_parse(const char *name);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True if another line from this source may be logged now (10 per second). */
struct log_ratelimit {
        long long window;
        unsigned count;
        unsigned suppressed;
};
bool log_ratelimit_ok(struct log_ratelimit *rl);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
