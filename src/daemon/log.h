/* SPDX-License-Identifier: MIT */
/*
 * The daemon's log: levelled lines on stderr, one write each.
 *
 * Once the daemon runs (log_limit_start(), after set-up), every line goes
 * through one rate limit: a guest, a VMM or a host-side peer can make the
 * daemon log at will (a port opened and closed 2000 times, a client that
 * reconnects in a loop, a frontend that breaks its queues), so no call site
 * is trusted to be rare. All lines share one budget of LOG_BURST lines,
 * refilled at LOG_RATE lines a second; a line over the budget is counted,
 * not written, and the next line written is preceded by
 * "N messages suppressed (rate limit)". Set-up and exit log freely, and so
 * does a control request while it is served (log_trusted(): its client is
 * root or the daemon's user, and its lines answer what the operator did).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Not LOG_INFO and so on: <syslog.h> (which sd-journal.h includes) defines
 * those as macros with other values. */
enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

#define LOG_BURST 32u
#define LOG_RATE 10u

void log_set_level(int level);
/* "error", "warn", "info", "debug" -> level, or -1. */
int log_level_parse(const char *name);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* From now on lines are rate-limited. */
void log_limit_start(void);
/* Write the pending "suppressed" line, and log freely again (at exit). */
void log_limit_stop(void);
/* While a control client's request is served: lines are not rate-limited
 * (they nest; each true needs its false). */
void log_trusted(bool on);

struct log_stats {
        uint64_t written;       /* lines written */
        uint64_t suppressed;    /* lines the rate limit dropped */
};
void log_get_stats(struct log_stats *ret);

/* Log "...: strerror(-err)" as an error and return @err (a negative errno),
 * for the common "say why, then fail with it":
 *     return log_errno(r, "%s: cannot listen on %s", label, path); */
int log_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
