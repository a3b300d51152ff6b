/* SPDX-License-Identifier: MIT */
/*
 * The daemon's cost counters, as the control socket's "stats" reply and the
 * "counters" of each port in "list". They are the oracle of the hostile
 * input tests: after any input a guest, a VMM or a host peer can send, an
 * idle daemon must run no callback, write no log line and hold no more fds
 * than before (tests/ctl/test_hostile_daemon.py).
 *
 * {"cmd":"stats"} -> {"ok":true,"stats":{
 *   "instance":"NAME",
 *   "loop":{"wakeups":W,"dispatched":D,"watches":N},
 *   "log":{"written":L,"suppressed":S},
 *   "process":{"fds":F},
 *   "vmm":{"connected":B,"accepted":A,"refused":R},
 *   "device":{"guest_resets":G,"queue_errors":Q},
 *   "listeners":{"backoffs":B,"paused":P},
 *   "control":{"clients":C,"requests":Q,"refused":R},
 *   "client":{"id":I,"callbacks":K},
 *   "ports":[{"id":N,"name":"...",COUNTERS},...]}}
 *
 * loop: vs_epoll_get_stats(), read while the request is served.
 * client.callbacks: callbacks run for the connection that asked,
 * including the one serving this request. So between two stats requests
 * on one connection (the second sent once the first's reply was read) an
 * idle daemon shows the same growth in loop.dispatched as in
 * client.callbacks: the difference is what ran for anything else.
 * process.fds: the entries of /proc/self/fd, read through a directory fd
 * opened at set-up (so it works out of fds and in the sandbox; it counts
 * itself). COUNTERS: see stats_port() in stats.c.
 *
 * {"cmd":"stats","format":"prometheus"} -> {"ok":true,"prometheus":"TEXT"}:
 * the same counters in the Prometheus text format (metrics.h).
 *
 * Adding counters: write a function that fills a JSON object and add a row
 * to sections[] in stats.c (the daemon-wide ones), or add keys in
 * stats_port() (per port). Keys are only ever added, never renamed.
 */
#pragma once

#include <dirent.h>
#include <stdint.h>

#include <json-c/json.h>

#include "backend.h"
#include "loop/loop.h"
#include "vserial/vhost_user.h"
#include "vserial/vserial.h"

/* Counters main.c keeps. */
struct daemon_counters {
        uint64_t vmm_accepted;
        uint64_t vmm_refused;   /* a second VMM while one is served */
        uint64_t guest_resets;  /* the guest's driver (re)started (DEVICE_READY) */
        uint64_t queue_errors;  /* queues the guest broke */
};

/* Where the daemon-wide sections read from; owned by main.c. */
struct stats_src {
        struct vs_epoll *ep;
        struct vs_device *dev;
        struct vs_vu *const *vu;        /* the VMM connection or NULL */
        const struct daemon_counters *counters;
        const struct hport_env *env;
        DIR *fd_dir;                    /* /proc/self/fd, or NULL */
        const char *instance;           /* --instance */
};

/* Open what stats need while the process may still open files. */
int stats_open(struct stats_src *src);
void stats_close(struct stats_src *src);

/* Add the daemon-wide sections to @out. */
void stats_fill(const struct stats_src *src, json_object *out);
/* Add a port's counters to @o (a port of "stats", "counters" in "list"). */
void stats_port(const struct hport *hp, json_object *o);
/* Open fds of this process, or -1 if they cannot be counted. */
long stats_count_fds(const struct stats_src *src);
