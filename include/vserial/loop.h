/* SPDX-License-Identifier: MIT */
/*
 * Event loop interface. Library code never owns a loop: it is handed a
 * struct vs_loop_ops and adds, changes and removes fd watches through it.
 * vs_epoll is the epoll implementation the daemon and the tests use.
 */
#pragma once

#include <stdint.h>

/*
 * @events: EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP, and EPOLLET, as in
 * <sys/epoll.h>. A loop must honour EPOLLET (edge-triggered: one callback
 * per change, not one per pass while the fd stays ready): the library asks
 * for it on guest kick fds, which a frontend can make readable for ever.
 * Every watch the library adds makes progress in its callback or is
 * removed there; an idle library runs no callback.
 */
typedef void (*vs_watch_fn)(void *opaque, int fd, uint32_t events);

struct vs_loop_ops {
        /* Watch @fd for @events; -EEXIST if already watched. */
        int (*add)(void *loop, int fd, uint32_t events, vs_watch_fn fn,
                   void *opaque);
        /* Change the events of a watched fd; -ENOENT if not watched. */
        int (*mod)(void *loop, int fd, uint32_t events);
        /* Stop watching @fd (does not close it). Safe from inside a callback. */
        int (*del)(void *loop, int fd);
};

struct vs_epoll;

extern const struct vs_loop_ops vs_epoll_ops;

/* Errors: -errno of epoll_create1, -ENOMEM. */
int vs_epoll_new(struct vs_epoll **ret);
/* Accepts NULL. Does not close watched fds. */
void vs_epoll_free(struct vs_epoll *ep);
/*
 * Wait up to @timeout_ms (-1 = forever, 0 = poll) and dispatch ready
 * watches. Returns the number dispatched or a negative errno (-EINTR is
 * returned as 0).
 */
int vs_epoll_run_once(struct vs_epoll *ep, int timeout_ms);

/*
 * What the loop has done since vs_epoll_new(): the cost oracle of the tests.
 * A daemon with nothing to do must dispatch nothing; a watch that fires
 * without making progress (an fd at EOF left in the set) shows up here as
 * a count that keeps growing while the peer is idle.
 */
struct vs_epoll_stats {
        uint64_t wakeups;       /* epoll_wait calls that returned events */
        uint64_t dispatched;    /* callbacks run */
        unsigned watches;       /* fds watched now */
};
void vs_epoll_get_stats(const struct vs_epoll *ep, struct vs_epoll_stats *ret);
