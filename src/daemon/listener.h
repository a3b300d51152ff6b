/* SPDX-License-Identifier: MIT */
/*
 * Listening sockets on the loop, accepting with back-off.
 *
 * When accept() fails for want of fds or memory (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) the connection stays in the backlog and keeps the socket
 * readable: a level-triggered watch would run the callback again at once,
 * forever (the audit's finding 5). Instead the listener is paused: it stops
 * being watched, and one timer shared by all listeners watches them again
 * after a delay that doubles from LISTEN_DELAY_MIN_MS up to
 * LISTEN_DELAY_MAX_MS while accepting keeps failing, and starts over once
 * an accept succeeds (nginx pauses its accept events the same way). The
 * waiting connection is served when fds are free again. The timer's fd is
 * made at start-up, so backing off needs no fd.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "loop/loop.h"

#define LISTEN_DELAY_MIN_MS 50u
#define LISTEN_DELAY_MAX_MS 1000u

struct listen_pool;
struct listener;

struct listen_pool_stats {
        uint64_t backoffs;      /* times a listener was paused */
        unsigned paused;        /* listeners paused now */
};

/* The shared back-off timer. -errno. */
int listen_pool_new(const struct vs_loop_ops *ops, void *loop, struct listen_pool **ret);
/* After every listener is freed. Accepts NULL. */
void listen_pool_free(struct listen_pool *lp);
void listen_pool_get_stats(const struct listen_pool *lp, struct listen_pool_stats *ret);

/* A new connection (non-blocking, close-on-exec): the callee owns @fd. It
 * must not free the listener it came from. */
typedef void (*listener_fn)(void *opaque, int fd);

/*
 * Accept on @fd (a listening, non-blocking socket the caller keeps and
 * closes) and hand each connection to @fn, at most @budget per wake-up.
 */
int listener_new(struct listen_pool *lp, int fd, unsigned budget, listener_fn fn,
                 void *opaque, struct listener **ret);
/* Stop watching (the fd stays open). Accepts NULL. */
void listener_free(struct listener *l);
/*
 * Hold (true) or release (false) the listener: while held nothing is
 * accepted and the socket is not watched, so connections wait in the
 * kernel's backlog, in arrival order, and the loop does not wake for them.
 * A listener on hold accepts nothing more in the wake-up that put it on
 * hold, so @fn may hold it. Independent of the back-off: a released
 * listener that is backing off is watched again when its delay ends.
 */
void listener_hold(struct listener *l, bool hold);
