/* SPDX-License-Identifier: MIT */
/* backend=unix: listen on a unix socket; one host client at a time. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"

static void unix_peer_gone(struct hport *hp)
{
        int fd = hp->in_fd >= 0 ? hp->in_fd : hp->out_fd;

        hport_detach(hp);
        if (fd >= 0)
                close(fd);
}

static void on_accept(void *opaque, int fd, uint32_t events)
{
        struct hport *hp = opaque;
        int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        (void)events;
        if (client < 0)
                return;
        if (hp->out_fd >= 0) {
                log_warn("%s: refused a second host client on %s (one at a time)",
                         hp->label, hp->spec.path);
                close(client);
                return;
        }
        log_info("%s: host client connected", hp->label);
        hport_attach(hp, client, client);
}

/* A stale socket file from an earlier run is replaced; anything else stays. */
static int unlink_stale(const char *path)
{
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        return unlink(path) < 0 ? -errno : 0;
}

int backend_listen_unix(const char *path, int backlog)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        r = unlink_stale(path);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static int unix_start(struct hport *hp)
{
        int r = backend_listen_unix(hp->spec.path, 4);

        if (r < 0) {
                log_error("%s: cannot listen on %s: %s", hp->label, hp->spec.path,
                          strerror(-r));
                return r;
        }
        hp->listen_fd = r;
        r = hp->loop_ops->add(hp->loop, hp->listen_fd, EPOLLIN, on_accept, hp);
        if (r < 0) {
                close(hp->listen_fd);
                hp->listen_fd = -1;
                return r;
        }
        log_info("%s: listening on %s", hp->label, hp->spec.path);
        return 0;
}

static void unix_stop(struct hport *hp)
{
        unix_peer_gone(hp);
        if (hp->listen_fd >= 0) {
                hp->loop_ops->del(hp->loop, hp->listen_fd);
                close(hp->listen_fd);
                unlink(hp->spec.path);
                hp->listen_fd = -1;
        }
}

const struct backend_ops backend_unix_ops = {
        .name = "unix",
        .start = unix_start,
        .stop = unix_stop,
        .peer_gone = unix_peer_gone,
};
