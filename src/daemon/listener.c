/* SPDX-License-Identifier: MIT */
/* Accepting with back-off: see listener.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

struct listener {
        struct listen_pool *lp;
        struct listener *prev, *next;   /* in the pool's list */
        int fd;
        bool paused;            /* backing off (the pool's timer) */
        bool held;              /* listener_hold(): its owner takes no more */
        unsigned budget;
        listener_fn fn;
        void *opaque;
};

struct listen_pool {
        const struct vs_loop_ops *ops;
        void *loop;
        int timer_fd;
        bool armed;
        unsigned delay_ms;
        struct listener *all;
        struct listen_pool_stats stats;
};

static void on_ready(void *opaque, int fd, uint32_t events);

static void arm(struct listen_pool *lp)
{
        struct itimerspec its = {
                .it_value = { lp->delay_ms / 1000, (lp->delay_ms % 1000) * 1000000L },
        };

        if (lp->armed)
                return;
        if (timerfd_settime(lp->timer_fd, 0, &its, NULL) < 0) {
                log_error("cannot arm the accept back-off timer: %s", strerror(errno));
                return;
        }
        lp->armed = true;
}

/* The back-off is over: watch every paused listener again. */
static void on_timer(void *opaque, int fd, uint32_t events)
{
        struct listen_pool *lp = opaque;
        uint64_t n;

        (void)events;
        if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                return;
        lp->armed = false;
        for (struct listener *l = lp->all; l; l = l->next) {
                if (!l->paused)
                        continue;
                /* Held: listener_hold() watches it again when released. */
                if (!l->held && lp->ops->add(lp->loop, l->fd, EPOLLIN, on_ready, l) < 0) {
                        arm(lp);        /* try again later */
                        continue;
                }
                l->paused = false;
                lp->stats.paused--;
        }
        /* Still failing after this round? Then wait longer next time. */
        lp->delay_ms = lp->delay_ms * 2 > LISTEN_DELAY_MAX_MS ? LISTEN_DELAY_MAX_MS :
                       lp->delay_ms * 2;
}

static void pause_listener(struct listener *l, int err)
{
        struct listen_pool *lp = l->lp;

        l->lp->ops->del(lp->loop, l->fd);
        l->paused = true;
        lp->stats.paused++;
        lp->stats.backoffs++;
        log_warn("cannot accept a connection: %s; trying again in %u ms", strerror(err),
                 lp->delay_ms);
        arm(lp);
}

static void on_ready(void *opaque, int fd, uint32_t events)
{
        struct listener *l = opaque;

        (void)events;
        for (unsigned i = 0; i < l->budget && !l->held; i++) {
                int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (c >= 0) {
                        l->lp->delay_ms = LISTEN_DELAY_MIN_MS;
                        l->fn(l->opaque, c);
                        continue;
                }
                if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                        continue;       /* that connection is gone; the next */
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                        pause_listener(l, errno);
                else if (errno != EAGAIN)
                        log_warn("accept: %s", strerror(errno));
                return;
        }
}

int listen_pool_new(const struct vs_loop_ops *ops, void *loop, struct listen_pool **ret)
{
        struct listen_pool *lp = calloc(1, sizeof(*lp));
        int r;

        if (!lp)
                return -ENOMEM;
        lp->ops = ops;
        lp->loop = loop;
        lp->delay_ms = LISTEN_DELAY_MIN_MS;
        lp->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (lp->timer_fd < 0) {
                r = -errno;
                free(lp);
                return r;
        }
        r = ops->add(loop, lp->timer_fd, EPOLLIN, on_timer, lp);
        if (r < 0) {
                close(lp->timer_fd);
                free(lp);
                return r;
        }
        *ret = lp;
        return 0;
}

void listen_pool_free(struct listen_pool *lp)
{
        if (!lp)
                return;
        lp->ops->del(lp->loop, lp->timer_fd);
        close(lp->timer_fd);
        free(lp);
}

void listen_pool_get_stats(const struct listen_pool *lp, struct listen_pool_stats *ret)
{
        *ret = lp->stats;
}

int listener_new(struct listen_pool *lp, int fd, unsigned budget, listener_fn fn,
                 void *opaque, struct listener **ret)
{
        struct listener *l = calloc(1, sizeof(*l));
        int r;

        if (!l)
                return -ENOMEM;
        *l = (struct listener){ .lp = lp, .fd = fd, .budget = budget ? budget : 1,
                                .fn = fn, .opaque = opaque };
        r = lp->ops->add(lp->loop, fd, EPOLLIN, on_ready, l);
        if (r < 0) {
                free(l);
                return r;
        }
        l->next = lp->all;
        if (lp->all)
                lp->all->prev = l;
        lp->all = l;
        *ret = l;
        return 0;
}

void listener_free(struct listener *l)
{
        struct listen_pool *lp;

        if (!l)
                return;
        lp = l->lp;
        if (l->paused)
                lp->stats.paused--;
        else if (!l->held)
                lp->ops->del(lp->loop, l->fd);
        if (l->prev)
                l->prev->next = l->next;
        else
                lp->all = l->next;
        if (l->next)
                l->next->prev = l->prev;
        free(l);
}

void listener_hold(struct listener *l, bool hold)
{
        struct listen_pool *lp = l->lp;
        int r;

        if (l->held == hold)
                return;
        l->held = hold;
        if (l->paused)
                return;         /* the back-off timer decides */
        if (hold) {
                lp->ops->del(lp->loop, l->fd);
                return;
        }
        /* Cannot watch it now: try again as after a failed accept. */
        r = lp->ops->add(lp->loop, l->fd, EPOLLIN, on_ready, l);
        if (r < 0) {
                l->paused = true;
                lp->stats.paused++;
                lp->stats.backoffs++;
                log_warn("cannot watch a listening socket: %s; trying again in %u ms",
                         strerror(-r), lp->delay_ms);
                arm(lp);
        }
}
