/* SPDX-License-Identifier: MIT */
/*
 * backend=fd: a file descriptor the daemon was started with, fd=N from a
 * supervisor, or a socket systemd passed (LISTEN_FDS) under the port's name
 * (LISTEN_FDNAMES; main.c puts its number in spec.fd before the port is
 * made).
 *
 * What it is decides what it does:
 *  - a listening socket (systemd's ListenStream=, Accept=no): served like
 *    backend=unix, one host client at a time (backend_listen.c);
 *  - anything else (a connected socket, a pipe, a terminal, a file) is the
 *    host side itself, read if it was opened for reading, written if for
 *    writing. When it ends (its peer closed, end of a pipe) it is closed
 *    and the port has no host side any more: a passed fd cannot be opened
 *    again. Output that can never be written again (the reader of a pipe
 *    left) is dropped from then on, counted, as for backend=stdio, so that
 *    the guest is not held back by nobody.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"

static bool listening_socket(int fd)
{
        int v = 0;
        socklen_t len = sizeof(v);

        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v == 1;
}

static int take_fd(struct hport *hp, int fd)
{
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
                int err = errno;

                log_error("%s: fd %d: %s%s", hp->label, fd, strerror(err),
                          err == EBADF ? " (the daemon was not started with it open)" : "");
                return -err;
        }
        return fl;
}

static int fd_start(struct hport *hp)
{
        int fd = hp->spec.fd, fl, acc;

        if (fd < 0) {
                log_error("%s: backend=fd: no socket named '%s' was passed (LISTEN_FDNAMES)",
                          hp->label, hp->spec.name);
                return -EBADF;
        }
        fl = take_fd(hp, fd);
        if (fl < 0)
                return fl;
        if (listening_socket(fd)) {
                fl = backend_listen_adopt(hp, fd);
                if (fl < 0)
                        return fl;
                log_info("%s: accepting on the listening socket passed as fd %d", hp->label, fd);
                return 0;
        }
        acc = fl & O_ACCMODE;
        /* Read-only: no one will ever read the guest's output here. */
        hp->out_gone = acc == O_RDONLY;
        log_info("%s: the host side is fd %d (%s)", hp->label, fd,
                 acc == O_RDWR ? "read and written" :
                 acc == O_RDONLY ? "read; guest output is dropped, counted" : "written");
        /* Before the port exists: waits for hport_new, cannot fail. */
        hport_attach(hp, acc != O_WRONLY ? fd : -1, acc != O_RDONLY ? fd : -1);
        return 0;
}

/* Both sides are done with the fd: close it, for good. */
static void fd_close_if_done(struct hport *hp, int fd)
{
        if (fd >= 0 && hp->in_fd != fd && hp->out_fd != fd) {
                close(fd);
                log_info("%s: fd %d closed: the port has no host side any more", hp->label, fd);
        }
}

static void fd_peer_gone(struct hport *hp)
{
        int fd = hp->in_fd >= 0 ? hp->in_fd : hp->out_fd;

        hport_detach(hp);
        fd_close_if_done(hp, fd);
}

static void fd_input_end(struct hport *hp)
{
        int fd = hp->in_fd;

        if (hp->in_fd == hp->out_fd) {
                fd_peer_gone(hp);
                return;
        }
        hport_drop_input(hp);
        fd_close_if_done(hp, fd);
}

static void fd_output_error(struct hport *hp, int err)
{
        int fd = hp->out_fd;

        if (hp->in_fd == hp->out_fd) {
                fd_peer_gone(hp);
                return;
        }
        log_warn("%s: writing fd %d: %s; guest output is dropped from now on", hp->label, fd,
                 strerror(-err));
        hport_drop_output(hp);
        fd_close_if_done(hp, fd);
}

const struct backend_ops backend_fd_ops = {
        .name = "fd",
        .start = fd_start,
        .stop = hport_close_peer,
        .peer_gone = fd_peer_gone,
        .input_end = fd_input_end,
        .output_error = fd_output_error,
};
