/* SPDX-License-Identifier: MIT */
/*
 * vhost-user backend: one frontend connection driving one vs_device.
 *
 * Security model: the frontend (a VMM process) is untrusted. Every message is
 * checked against a table (payload size, fd count, vring index) before its
 * handler runs; a message that fails closes the connection. Memory tables are
 * validated by vs_mem; ring indices by the device.
 */
#pragma once

#include <stdbool.h>

#include "vserial/loop.h"
#include "vserial/vserial.h"

struct vs_vu;

/*
 * SET_VRING_KICK/CALL/ERR carry the ring index in 8 bits, so over vhost-user
 * rings 0..255 can be notified: ports 0..126 (port n uses rings 2n+2, 2n+3).
 */
#define VS_VHOST_USER_MAX_PORTS 127u

struct vs_vu_config {
        const struct vs_loop_ops *loop_ops;
        void *loop;
        /*
         * The connection ended: @err is 0 for a clean close by the frontend,
         * else the negative errno of the protocol violation or I/O error and
         * @why names it. Called once, from inside a loop callback. The
         * handler may not free the vs_vu there; do it after the loop
         * iteration returns.
         */
        void (*closed)(void *opaque, int err, const char *why);
        /*
         * Queue @q was broken by the guest (@err as vs_vq_pop() returns it).
         * Called once per breakage; the queue stays idle until the frontend
         * sets it up again. May be NULL.
         */
        void (*queue_broken)(void *opaque, unsigned q, int err);
        void *opaque;
        /* Max queues the device may expose to the frontend; 0 = no limit. */
        unsigned max_queues;
        /*
         * The frontend has fewer rings than the device needs: a guest driver
         * that reads the config (GET_CONFIG) after the frontend named its
         * rings saw @need rings wanted (2 x (max_ports + 1) with MULTIPORT)
         * where the frontend offers @have (1 + the highest ring index any
         * SET_VRING_* message named; QEMU names each of its num_vqs rings
         * with SET_VRING_CALL/ERR before the guest runs). Linux then fails
         * the probe ("Error -22 initializing vqs") and the frontend sends
         * nothing more, so this is the only place the mismatch shows.
         * Called at most once per connection. May be NULL.
         */
        void (*rings_short)(void *opaque, unsigned have, unsigned need);
};

/*
 * Serve the frontend on connected socket @fd (ownership passes to the vs_vu,
 * also on error). Binds itself as @dev's transport. Errors: -ENOMEM, or the
 * loop's error.
 */
int vs_vu_new(struct vs_device *dev, int fd, const struct vs_vu_config *cfg,
              struct vs_vu **ret);

/*
 * Close the connection: unwatch and close every fd, unmap guest memory, reset
 * the device's guest-side state (ports and host-side state are kept).
 * Accepts NULL.
 */
void vs_vu_free(struct vs_vu *vu);

/* Has the connection ended (closed() was called)? */
bool vs_vu_is_closed(const struct vs_vu *vu);

/* What one connection holds and has done: a frontend's cost to the process. */
struct vs_vu_stats {
        uint64_t messages;      /* frontend messages handled */
        unsigned fds;           /* fds held now: the socket, the scheduling
                                 * eventfd, the backend channel, ring fds, and
                                 * those of a message still being received */
        unsigned regions;       /* guest memory regions mapped now */
        unsigned rings;         /* rings the frontend named: 1 + the highest
                                 * index of any SET_VRING_* message */
};
void vs_vu_get_stats(const struct vs_vu *vu, struct vs_vu_stats *ret);

/*
 * Was this connection's guest memory lost to a file the frontend truncated
 * (see vs_sigbus_guard_install())? From then on its pages read as zeros:
 * bytes an embedder copies from the device's iovecs (have_data) are not
 * guest data and should be dropped. The connection fails with -EFAULT at
 * its next event. Cheap: one atomic load unless some mapping in the
 * process was ever lost.
 */
bool vs_vu_memory_lost(const struct vs_vu *vu);
