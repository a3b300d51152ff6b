/* SPDX-License-Identifier: MIT */
/*
 * backend=unix and backend=tcp: listen, and serve up to clients=N host
 * clients at once (clients.c). While N are connected the listener is on
 * hold: further connections wait in the kernel's backlog, in arrival order,
 * and the next is taken once one has left (its end handled first), as a
 * QEMU socket chardev does. Nothing is ever written to a waiting client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"
#include "clients.h"

/* Connections waiting to be served: the kernel keeps them, in order. */
#define LISTEN_BACKLOG 16

/* hp->be */
struct listen_state {
        int fd;                         /* the listening socket */
        struct listener *listener;      /* accepting on it */
};

static struct listen_state *ls(const struct hport *hp)
{
        return hp->be;
}

/* The clients' peer ends are their own (clients.c): nothing to do here. */
static void listen_peer_gone(struct hport *hp)
{
        (void)hp;
}

/* Accept only while a client may be served; the rest wait in the backlog. */
static void on_room(struct hport *hp)
{
        if (ls(hp)->listener)
                listener_hold(ls(hp)->listener, clients_full(hp->clients));
}

static void on_accept(void *opaque, int client)
{
        struct hport *hp = opaque;
        int one = 1;

        /* Small writes (a console) should not wait for Nagle. */
        if (hp->spec.backend == BACKEND_TCP)
                setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* Refused (the guest could not be told of it; logged and counted
         * there) or out of memory: closed unserved, without a word. */
        if (clients_add(hp->clients, client, CLIENT_DEFAULT, false) < 0)
                close(client);
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
                return bind_listen(fd, (struct sockaddr *)&a6, sizeof(a6), LISTEN_BACKLOG);
        return bind_listen(fd, (struct sockaddr *)&a4, sizeof(a4), LISTEN_BACKLOG);
}

static int listen_start(struct hport *hp)
{
        bool tcp = hp->spec.backend == BACKEND_TCP;
        char where[SPEC_PATH_MAX + 16];
        int fd, r;

        if (tcp)
                snprintf(where, sizeof(where), "%s port %u", hp->spec.host, hp->spec.tcp_port);
        else
                snprintf(where, sizeof(where), "%s", hp->spec.path);
        r = tcp ? listen_tcp(hp->spec.host, hp->spec.tcp_port) :
                  backend_listen_unix(hp->spec.path, LISTEN_BACKLOG);
        if (r < 0)
                return log_errno(r, "%s: cannot listen on %s", hp->label, where);
        fd = r;
        r = backend_listen_adopt(hp, fd);
        if (r < 0) {
                close(fd);
                return r;
        }
        log_info("%s: listening on %s (%u client%s at once)", hp->label, where,
                 clients_max(hp->clients), clients_max(hp->clients) == 1 ? "" : "s");
        return 0;
}

int backend_listen_adopt(struct hport *hp, int fd)
{
        struct listen_state *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->fd = fd;
        hp->be = s;
        r = clients_new(hp, on_room, &hp->clients);
        /* A few per wake-up; on hold as soon as clients= are served. */
        if (r == 0)
                r = listener_new(hp->env->listeners, fd, 4, on_accept, hp, &s->listener);
        if (r < 0) {
                clients_free(hp->clients);
                hp->clients = NULL;
                hp->be = NULL;
                free(s);
                return r;
        }
        hp->ops = &backend_listen_ops;
        return 0;
}

static void listen_stop(struct hport *hp)
{
        struct listen_state *s = ls(hp);

        clients_free(hp->clients);
        hp->clients = NULL;
        if (!s)
                return;
        listener_free(s->listener);
        close(s->fd);
        if (hp->spec.backend == BACKEND_UNIX)
                unlink(hp->spec.path);
        free(s);
        hp->be = NULL;
}

const struct backend_ops backend_listen_ops = {
        .name = "listen",
        .start = listen_start,
        .stop = listen_stop,
        .peer_gone = listen_peer_gone,
};
