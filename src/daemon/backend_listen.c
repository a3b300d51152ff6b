/* SPDX-License-Identifier: MIT */
/*
 * backend=unix and backend=tcp: listen, and serve one host client at a time.
 * A second client is told why and closed; the first keeps the port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"

static void listen_peer_gone(struct hport *hp)
{
        int fd = hp->in_fd >= 0 ? hp->in_fd : hp->out_fd;

        hport_detach(hp);
        if (fd >= 0)
                close(fd);
}

/* Tell a client why it is not served, and close it. */
static void refuse(struct hport *hp, int client, const char *why)
{
        char msg[200];
        int n = snprintf(msg, sizeof(msg), "vserial: %s %s; try again later\n", hp->label, why);

        hp->cnt.clients_refused++;
        log_warn("%s: refused a host client: it %s", hp->label, why);
        /* Best effort: the refused client learns why before the close. */
        if (send(client, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                log_debug("%s: refusal not sent: %s", hp->label, strerror(errno));
        close(client);
}

static void on_accept(void *opaque, int client)
{
        struct hport *hp = opaque;
        int one = 1;

        if (hport_connected(hp)) {
                refuse(hp, client, "already has a host client");
                return;
        }
        /* Small writes (a console) should not wait for Nagle. */
        if (hp->spec.backend == BACKEND_TCP)
                setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (hport_attach(hp, client, client) < 0) {
                /* The guest would not hear of it: no half-connected port. */
                refuse(hp, client, "cannot tell the guest: it is not taking control messages");
                return;
        }
        log_info("%s: host client connected", hp->label);
}

/*
 * Does a process listen at @path? (connect() succeeds or is merely full.)
 * If we may not tell (connect refused by the sandbox, or by the socket's
 * permissions) it counts as live: never remove what may be in use.
 */
static bool socket_live(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        bool live;

        if (fd < 0)
                return false;
        strcpy(sa.sun_path, path);
        live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN ||
               errno == EPERM || errno == EACCES;
        close(fd);
        return live;
}

/*
 * A stale socket file from an earlier run is replaced; a socket someone
 * listens on, or any other file, is left alone.
 */
static int unlink_stale(const char *path)
{
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        if (socket_live(path))
                return -EADDRINUSE;
        return unlink(path) < 0 ? -errno : 0;
}

static int bind_listen(int fd, const struct sockaddr *sa, socklen_t len, int backlog)
{
        int r = 0;

        if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
                r = -errno;
                close(fd);
        }
        return r < 0 ? r : fd;
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
        return bind_listen(fd, (struct sockaddr *)&sa, sizeof(sa), backlog);
}

static int listen_tcp(const char *host, uint16_t port)
{
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
        struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
        bool v6 = inet_pton(AF_INET6, host, &a6.sin6_addr) == 1;
        int one = 1;
        int fd;

        if (!v6 && inet_pton(AF_INET, host, &a4.sin_addr) != 1)
                return -EINVAL;
        fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (v6)
                return bind_listen(fd, (struct sockaddr *)&a6, sizeof(a6), 4);
        return bind_listen(fd, (struct sockaddr *)&a4, sizeof(a4), 4);
}

static int listen_start(struct hport *hp)
{
        bool tcp = hp->spec.backend == BACKEND_TCP;
        char where[SPEC_PATH_MAX + 16];
        int r;

        if (tcp)
                snprintf(where, sizeof(where), "%s port %u", hp->spec.host, hp->spec.tcp_port);
        else
                snprintf(where, sizeof(where), "%s", hp->spec.path);
        r = tcp ? listen_tcp(hp->spec.host, hp->spec.tcp_port) :
                  backend_listen_unix(hp->spec.path, 4);
        if (r < 0) {
                log_error("%s: cannot listen on %s: %s", hp->label, where, strerror(-r));
                return r;
        }
        hp->listen_fd = r;
        r = backend_listen_adopt(hp);
        if (r < 0) {
                close(hp->listen_fd);
                hp->listen_fd = -1;
                return r;
        }
        log_info("%s: listening on %s", hp->label, where);
        return 0;
}

int backend_listen_adopt(struct hport *hp)
{
        /* A few per wake-up: one is served, the rest are told why not. */
        return listener_new(hp->env->listeners, hp->listen_fd, 4, on_accept, hp, &hp->listener);
}

static void listen_stop(struct hport *hp)
{
        listen_peer_gone(hp);
        if (hp->listen_fd < 0)
                return;
        listener_free(hp->listener);
        hp->listener = NULL;
        close(hp->listen_fd);
        if (hp->spec.backend == BACKEND_UNIX)
                unlink(hp->spec.path);
        hp->listen_fd = -1;
}

const struct backend_ops backend_listen_ops = {
        .name = "listen",
        .start = listen_start,
        .stop = listen_stop,
        .peer_gone = listen_peer_gone,
};
