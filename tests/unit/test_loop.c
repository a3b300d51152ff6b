/* SPDX-License-Identifier: MIT */
/* The epoll loop: watches, dispatch, and deletion from inside callbacks. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop/loop.h"

struct fx {
        struct vs_epoll *ep;
        int a[2];       /* pipe a: [0] read end, [1] write end */
        int b[2];
};

/* What one callback saw, and what it should do to the loop. */
struct hit {
        struct fx *f;
        int calls;
        int fd;
        uint32_t events;
        int del_fd[2];          /* fds to delete when called, -1 = none */
        int del_ret[2];
        int readd_fd;           /* fd to add again after deleting, or -1 */
};

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(vs_epoll_new(&f->ep), 0);
        assert_int_equal(pipe2(f->a, O_CLOEXEC | O_NONBLOCK), 0);
        assert_int_equal(pipe2(f->b, O_CLOEXEC | O_NONBLOCK), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        vs_epoll_free(f->ep);
        for (int i = 0; i < 2; i++) {
                close(f->a[i]);
                close(f->b[i]);
        }
        free(f);
        return 0;
}

static void hit_init(struct hit *h, struct fx *f)
{
        *h = (struct hit){ .f = f, .fd = -1, .del_fd = { -1, -1 },
                           .readd_fd = -1 };
}

static void on_event(void *opaque, int fd, uint32_t events)
{
        struct hit *h = opaque;

        h->calls++;
        h->fd = fd;
        h->events = events;
        for (int i = 0; i < 2; i++) {
                if (h->del_fd[i] >= 0)
                        h->del_ret[i] = vs_epoll_ops.del(h->f->ep,
                                                         h->del_fd[i]);
        }
        if (h->readd_fd >= 0)
                assert_int_equal(vs_epoll_ops.add(h->f->ep, h->readd_fd,
                                                  EPOLLIN, on_event, h), 0);
}

static void make_readable(int wfd)
{
        assert_int_equal(write(wfd, "x", 1), 1);
}

/* @h counts the events of a[0] (the read end of pipe a), watched for input. */
static void watch_a0(struct fx *f, struct hit *h)
{
        hit_init(h, f);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN, on_event, h), 0);
}

static void test_new_free(void **state)
{
        struct vs_epoll *ep = NULL;

        (void)state;
        assert_int_equal(vs_epoll_new(&ep), 0);
        assert_non_null(ep);
        assert_int_equal(vs_epoll_run_once(ep, 0), 0);
        vs_epoll_free(ep);
        vs_epoll_free(NULL);
}

static void test_add_dispatch(void **state)
{
        struct fx *f = *state;
        struct hit h;

        watch_a0(f, &h);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 10), 0);
        assert_int_equal(h.calls, 0);

        make_readable(f->a[1]);
        assert_int_equal(vs_epoll_run_once(f->ep, 1000), 1);
        assert_int_equal(h.calls, 1);
        assert_int_equal(h.fd, f->a[0]);
        assert_true(h.events & EPOLLIN);

        /* Level triggered: still readable. */
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_int_equal(h.calls, 2);
}

static void test_add_errors(void **state)
{
        struct fx *f = *state;
        struct hit h;
        int file;

        watch_a0(f, &h);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLOUT, on_event,
                                          &h), -EEXIST);
        assert_int_equal(vs_epoll_ops.add(f->ep, -1, EPOLLIN, on_event, &h),
                         -EBADF);
        assert_int_equal(vs_epoll_ops.mod(f->ep, f->b[0], EPOLLIN), -ENOENT);
        assert_int_equal(vs_epoll_ops.del(f->ep, f->b[0]), -ENOENT);
        assert_int_equal(vs_epoll_ops.mod(f->ep, -1, EPOLLIN), -ENOENT);
        assert_int_equal(vs_epoll_ops.del(f->ep, 100000), -ENOENT);

        /* epoll refuses regular files; the failure leaves no watch. */
        file = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
        assert_true(file >= 0);
        assert_int_equal(vs_epoll_ops.add(f->ep, file, EPOLLIN, on_event, &h),
                         -EPERM);
        assert_int_equal(vs_epoll_ops.del(f->ep, file), -ENOENT);
        close(file);
}

static void test_mod(void **state)
{
        struct fx *f = *state;
        struct hit h;

        hit_init(&h, f);
        /* The write end of an empty pipe is writable, never readable. */
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[1], EPOLLOUT, on_event,
                                          &h), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_true(h.events & EPOLLOUT);
        assert_int_equal(vs_epoll_ops.mod(f->ep, f->a[1], EPOLLIN), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 0);
        assert_int_equal(vs_epoll_ops.mod(f->ep, f->a[1], EPOLLOUT), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_int_equal(h.calls, 2);
}

static void test_del_readd(void **state)
{
        struct fx *f = *state;
        struct hit h;

        hit_init(&h, f);
        make_readable(f->a[1]);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN, on_event,
                                          &h), 0);
        assert_int_equal(vs_epoll_ops.del(f->ep, f->a[0]), 0);
        assert_int_equal(vs_epoll_ops.del(f->ep, f->a[0]), -ENOENT);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 0);
        assert_int_equal(h.calls, 0);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN, on_event,
                                          &h), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_int_equal(h.calls, 1);
}

static void test_del_closed_fd(void **state)
{
        struct fx *f = *state;
        struct hit h;
        int fd = dup(f->a[0]);

        hit_init(&h, f);
        assert_true(fd >= 0);
        assert_int_equal(vs_epoll_ops.add(f->ep, fd, EPOLLIN, on_event, &h),
                         0);
        close(fd);
        /* The kernel forgot it already; the watch still goes. */
        assert_int_equal(vs_epoll_ops.del(f->ep, fd), 0);
        assert_int_equal(vs_epoll_ops.del(f->ep, fd), -ENOENT);
}

static void test_del_self_in_callback(void **state)
{
        struct fx *f = *state;
        struct hit h;

        hit_init(&h, f);
        h.del_fd[0] = f->a[0];
        make_readable(f->a[1]);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN, on_event,
                                          &h), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_int_equal(h.del_ret[0], 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 0);
        assert_int_equal(h.calls, 1);
        assert_int_equal(vs_epoll_ops.del(f->ep, f->a[0]), -ENOENT);
}

static void test_del_other_in_callback(void **state)
{
        struct fx *f = *state;
        struct hit ha, hb;

        /*
         * Both are ready in the same pass; whichever runs first deletes
         * both, so the other's pending event must be skipped.
         */
        hit_init(&ha, f);
        hit_init(&hb, f);
        ha.del_fd[0] = hb.del_fd[0] = f->a[0];
        ha.del_fd[1] = hb.del_fd[1] = f->b[0];
        make_readable(f->a[1]);
        make_readable(f->b[1]);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN, on_event,
                                          &ha), 0);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->b[0], EPOLLIN, on_event,
                                          &hb), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_int_equal(ha.calls + hb.calls, 1);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 0);
}

static void test_del_and_readd_in_callback(void **state)
{
        struct fx *f = *state;
        struct hit h;

        hit_init(&h, f);
        h.del_fd[0] = f->a[0];
        h.readd_fd = f->a[0];
        make_readable(f->a[1]);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN, on_event,
                                          &h), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_int_equal(h.calls, 2);
}

static void on_add_other(void *opaque, int fd, uint32_t events)
{
        struct hit *h = opaque;

        (void)fd;
        (void)events;
        h->calls++;
        if (h->calls == 1)
                assert_int_equal(vs_epoll_ops.add(h->f->ep, h->f->b[0],
                                                  EPOLLIN, on_event, h), 0);
}

static void test_add_in_callback(void **state)
{
        struct fx *f = *state;
        struct hit h;

        hit_init(&h, f);
        make_readable(f->a[1]);
        make_readable(f->b[1]);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN,
                                          on_add_other, &h), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 2);
        assert_int_equal(h.fd, f->b[0]);
}

static void test_hangup(void **state)
{
        struct fx *f = *state;
        struct hit h;

        watch_a0(f, &h);
        close(f->a[1]);
        f->a[1] = -1;
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        assert_true(h.events & EPOLLHUP);
}

static void test_high_fd_and_free_with_watches(void **state)
{
        struct fx *f = *state;
        struct hit h;
        int high = fcntl(f->a[0], F_DUPFD_CLOEXEC, 700);

        hit_init(&h, f);
        assert_true(high >= 700);
        make_readable(f->a[1]);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN, on_event,
                                          &h), 0);
        assert_int_equal(vs_epoll_ops.add(f->ep, high, EPOLLIN, on_event, &h),
                         0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 2);
        assert_int_equal(vs_epoll_ops.mod(f->ep, high, EPOLLOUT), 0);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 1);
        /* teardown frees the loop with both watches still in it. */
        close(high);
}

/* The counters the hostile-input tests use as their oracle. */
static void test_stats(void **state)
{
        struct fx *f = *state;
        struct vs_epoll_stats st;
        struct hit h;

        hit_init(&h, f);
        vs_epoll_get_stats(f->ep, &st);
        assert_int_equal(st.wakeups, 0);
        assert_int_equal(st.dispatched, 0);
        assert_int_equal(st.watches, 0);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->a[0], EPOLLIN, on_event,
                                          &h), 0);
        assert_int_equal(vs_epoll_ops.add(f->ep, f->b[0], EPOLLIN, on_event,
                                          &h), 0);
        /* Nothing ready: no wake-up, no callback. */
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 0);
        vs_epoll_get_stats(f->ep, &st);
        assert_int_equal(st.wakeups, 0);
        assert_int_equal(st.dispatched, 0);
        assert_int_equal(st.watches, 2);
        make_readable(f->a[1]);
        make_readable(f->b[1]);
        assert_int_equal(vs_epoll_run_once(f->ep, 0), 2);
        assert_int_equal(vs_epoll_ops.del(f->ep, f->b[0]), 0);
        vs_epoll_get_stats(f->ep, &st);
        assert_int_equal(st.wakeups, 1);
        assert_int_equal(st.dispatched, 2);
        assert_int_equal(st.watches, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_free),
                T(test_add_dispatch),
                T(test_add_errors),
                T(test_mod),
                T(test_del_readd),
                T(test_del_closed_fd),
                T(test_del_self_in_callback),
                T(test_del_other_in_callback),
                T(test_del_and_readd_in_callback),
                T(test_add_in_callback),
                T(test_hangup),
                T(test_high_fd_and_free_with_watches),
                T(test_stats),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
