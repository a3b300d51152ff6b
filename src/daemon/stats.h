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
 *   "vmm":{"connected":B,"accepted":A,"refused":R,"rings_short":S,
 *          "memory_lost":M,"messages":N,"fds":F,"regions":G,"rings":K},
 *   "listeners":{"backoffs":B,"paused":P},
 *   "device":{"queues":Q,QUEUE,"max_call_descs":C,
 *             "control_rx":{QUEUE},"control_tx":{QUEUE},
 *             "pacing":{"notifies":N,"notifies_held":H,"kick_batches":K,
 *                       "batch_timeouts":T,"timer_arms":A,"timer_runs":R},
 *             "guest_resets":G,"queue_errors":E},
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
 * itself). COUNTERS: see stats_port() in stats.c; they include the port's
 * queues, "rx":{QUEUE} (host->guest) and "tx":{QUEUE}.
 * vmm: the counters since start-up, then the connection being served (0
 * without one, see vs_vu_get_stats()): frontend messages handled, fds it
 * holds, guest memory regions mapped, rings it named. rings_short: VMMs
 * that gave the guest fewer rings than --max-ports needs (logged);
 * memory_lost: connections ended because the VMM truncated guest memory.
 * device: the guest's work (vs_device_get_stats()), all queues together;
 * QUEUE is "kicks","chains","descs","bytes","schedules","errors",
 * "max_chain_descs" (see struct vs_queue_stats). max_call_descs, the most
 * descriptors one call into the device read, is the oracle of "bounded
 * work per kick" (VS_VQ_CALL_DESCS in src/lib/virtq/virtq.h).
 * device.pacing: what pacing did (vs_device_get_pace_stats(), see
 * src/lib/serial/pace.c): notifications sent and held for the timer,
 * receive kick batches asked for and ended by the timer, the timer's arms
 * (cancels included) and runs.
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
        uint64_t vmm_rings_short;       /* VMMs with fewer rings than needed */
        uint64_t vmm_memory_lost;       /* VMM connections ended because the
                                         * VMM truncated guest memory */
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
