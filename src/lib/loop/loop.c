/* SPDX-License-Identifier: MIT */
/*
 * The epoll event loop. Each watched fd has a heap-allocated watch that the
 * kernel hands back as epoll data.ptr. A callback may delete any watch,
 * including ones whose events are still pending in the current batch, so a
 * deleted watch is only marked dead during dispatch and freed after it.
 */
#include "loop/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EVENTS_PER_WAIT 64

struct vs_watch {
        int fd;
        bool dead;
        vs_watch_fn fn;
        void *opaque;
        struct vs_watch *next_dead;
};

struct vs_epoll {
        int epfd;
        unsigned dispatching;           /* nesting depth of run_once */
        struct vs_watch **by_fd;        /* indexed by fd, NULL if unwatched */
        size_t cap;
        struct vs_watch *dead;          /* deleted during dispatch */
        struct vs_epoll_stats stats;
};

int vs_epoll_new(struct vs_epoll **ret)
{
        struct vs_epoll *ep = calloc(1, sizeof(*ep));

        if (!ep)
                return -ENOMEM;
        ep->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (ep->epfd < 0) {
                int err = -errno;

                free(ep);
                return err;
        }
        *ret = ep;
        return 0;
}

static void free_dead(struct vs_epoll *ep)
{
        while (ep->dead) {
                struct vs_watch *w = ep->dead;

                ep->dead = w->next_dead;
                free(w);
        }
}

void vs_epoll_free(struct vs_epoll *ep)
{
        if (!ep)
                return;
        for (size_t i = 0; i < ep->cap; i++)
                free(ep->by_fd[i]);
        free_dead(ep);
        free(ep->by_fd);
        close(ep->epfd);
        free(ep);
}

static struct vs_watch *lookup(const struct vs_epoll *ep, int fd)
{
        if (fd < 0 || (size_t)fd >= ep->cap)
                return NULL;
        return ep->by_fd[fd];
}

/* Make room for index @fd, doubling so repeated adds stay cheap. */
static int grow(struct vs_epoll *ep, int fd)
{
        size_t cap = ep->cap ? ep->cap : 16;
        struct vs_watch **p;

        if ((size_t)fd < ep->cap)
                return 0;
        while (cap <= (size_t)fd)
                cap *= 2;
        p = realloc(ep->by_fd, cap * sizeof(*p));
        if (!p)
                return -ENOMEM;
        memset(p + ep->cap, 0, (cap - ep->cap) * sizeof(*p));
        ep->by_fd = p;
        ep->cap = cap;
        return 0;
}

static int epoll_add(void *loop, int fd, uint32_t events, vs_watch_fn fn,
                     void *opaque)
{
        struct vs_epoll *ep = loop;
        struct epoll_event ev = { .events = events };
        struct vs_watch *w;
        int ret;

        if (fd < 0 || !fn)
                return fd < 0 ? -EBADF : -EINVAL;
        if (lookup(ep, fd))
                return -EEXIST;
        ret = grow(ep, fd);
        if (ret < 0)
                return ret;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct vs_watch){ .fd = fd, .fn = fn, .opaque = opaque };
        ev.data.ptr = w;
        if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                ret = -errno;
                free(w);
                return ret;
        }
        ep->by_fd[fd] = w;
        ep->stats.watches++;
        return 0;
}

static int epoll_mod(void *loop, int fd, uint32_t events)
{
        struct vs_epoll *ep = loop;
        struct vs_watch *w = lookup(ep, fd);
        struct epoll_event ev = { .events = events };

        if (!w)
                return -ENOENT;
        ev.data.ptr = w;
        if (epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
                return -errno;
        return 0;
}

static int epoll_del(void *loop, int fd)
{
        struct vs_epoll *ep = loop;
        struct vs_watch *w = lookup(ep, fd);

        if (!w)
                return -ENOENT;
        /*
         * Fails only if the fd was closed already, which removed it from
         * the epoll set anyway; the watch must go either way.
         */
        epoll_ctl(ep->epfd, EPOLL_CTL_DEL, fd, NULL);
        ep->by_fd[fd] = NULL;
        ep->stats.watches--;
        if (ep->dispatching) {
                w->dead = true;
                w->next_dead = ep->dead;
                ep->dead = w;
        } else {
                free(w);
        }
        return 0;
}

const struct vs_loop_ops vs_epoll_ops = {
        .add = epoll_add,
        .mod = epoll_mod,
        .del = epoll_del,
};

int vs_epoll_run_once(struct vs_epoll *ep, int timeout_ms)
{
        struct epoll_event ev[EVENTS_PER_WAIT];
        int n, done = 0;

        n = epoll_wait(ep->epfd, ev, EVENTS_PER_WAIT, timeout_ms);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        if (n > 0)
                ep->stats.wakeups++;
        ep->dispatching++;
        for (int i = 0; i < n; i++) {
                struct vs_watch *w = ev[i].data.ptr;

                if (w->dead)
                        continue;
                w->fn(w->opaque, w->fd, ev[i].events);
                done++;
        }
        ep->stats.dispatched += (unsigned)done;
        /* Outer passes may still hold pointers to dead watches. */
        if (--ep->dispatching == 0)
                free_dead(ep);
        return done;
}

void vs_epoll_get_stats(const struct vs_epoll *ep, struct vs_epoll_stats *ret)
{
        *ret = ep->stats;
}
