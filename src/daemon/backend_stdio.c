/* SPDX-License-Identifier: MIT */
/*
 * backend=stdio: guest output to the daemon's stdout, its stdin to the guest.
 * epoll cannot watch regular files or /dev/null: such a stdout is written
 * synchronously (it never blocks for long), such a stdin is not read.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "backend.h"

static int saved_fl[2] = { -1, -1 };

static void probe_fn(void *opaque, int fd, uint32_t events)
{
        (void)opaque;
        (void)fd;
        (void)events;
}

static bool pollable(struct hport *hp, int fd)
{
        if (hp->loop_ops->add(hp->loop, fd, 0, probe_fn, NULL) < 0)
                return false;
        hp->loop_ops->del(hp->loop, fd);
        return true;
}

static void set_nonblock(int fd)
{
        saved_fl[fd] = fcntl(fd, F_GETFL);
        if (saved_fl[fd] >= 0)
                fcntl(fd, F_SETFL, saved_fl[fd] | O_NONBLOCK);
}

static int stdio_start(struct hport *hp)
{
        bool in_ok = pollable(hp, STDIN_FILENO);

        hp->out_unpollable = !pollable(hp, STDOUT_FILENO);
        if (in_ok)
                set_nonblock(STDIN_FILENO);
        if (!hp->out_unpollable)
                set_nonblock(STDOUT_FILENO);
        hport_attach(hp, in_ok ? STDIN_FILENO : -1, STDOUT_FILENO);
        return 0;
}

static void stdio_peer_gone(struct hport *hp)
{
        /* End of stdin ends input only; the console keeps printing. */
        hport_drop_input(hp);
}

static void stdio_stop(struct hport *hp)
{
        hport_detach(hp);
        for (int fd = 0; fd < 2; fd++)
                if (saved_fl[fd] >= 0)
                        fcntl(fd, F_SETFL, saved_fl[fd]);
}

const struct backend_ops backend_stdio_ops = {
        .name = "stdio",
        .start = stdio_start,
        .stop = stdio_stop,
        .peer_gone = stdio_peer_gone,
};
