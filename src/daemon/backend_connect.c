/* SPDX-License-Identifier: MIT */
/*
 * backend=unix-connect: connect to a unix socket the host side listens on;
 * backend=tcp-connect: to host:port. When the connection fails or ends, try
 * again after a delay that doubles from 100 ms up to 5 s, and starts over
 * once a connection succeeds.
 *
 * A unix connect() completes or fails at once. A TCP one may take a round
 * trip (or a SYN timeout): it is made non-blocking, its fd watched for
 * writability, and its result read with SO_ERROR, so the loop never waits
 * for a remote host. While connected nothing here runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* hp->be */
struct connect_state {
        int pending_fd;         /* tcp: a connect() in progress, or -1 */
        uint32_t pending_events;        /* ... watched on it */
        int backoff_ms;         /* the next retry's delay */
        bool stopping;          /* being freed: no more retries */
};

static struct connect_state *cs(const struct hport *hp)
{
        return hp->be;
}

static void arm_retry(struct hport *hp)
{
        struct connect_state *s = cs(hp);

        hport_timer_arm(hp, s->backoff_ms, false);
        s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* Refused for good: by the sandbox (vserial --allow-connect, --allow-tcp)
 * or the socket's permissions. Anything else may change: retry. */
static bool forbidden(int err)
{
        return err == EPERM || err == EACCES;
}

static bool is_tcp(const struct hport *hp)
{
        return hp->spec.backend == BACKEND_TCP_CONNECT;
}

/* "path" or "host port N", for log lines. */
static const char *where(const struct hport *hp, char *buf, size_t len)
{
        if (!is_tcp(hp))
                return hp->spec.path;
        snprintf(buf, len, "%s port %u", hp->spec.host, hp->spec.tcp_port);
        return buf;
}

/* The peer is there: it is the host side now (or the guest cannot be told). */
static void connected(struct hport *hp, int fd)
{
        char w[SPEC_PATH_MAX + 16];
        int one = 1;

        if (is_tcp(hp))
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (hport_attach(hp, fd, fd) < 0) {
                log_debug("%s: connected to %s, but the guest is not taking control messages; "
                          "retrying in %d ms", hp->label, where(hp, w, sizeof(w)),
                          cs(hp)->backoff_ms);
                close(fd);
                arm_retry(hp);
                return;
        }
        log_info("%s: connected to %s", hp->label, where(hp, w, sizeof(w)));
        cs(hp)->backoff_ms = BACKOFF_MIN_MS;
}

/* A failed attempt: -err if it may never succeed, else retry later. */
static int connect_failed(struct hport *hp, int err)
{
        char w[SPEC_PATH_MAX + 16];

        if (forbidden(err)) {
                log_error("%s: connect to %s: %s", hp->label, where(hp, w, sizeof(w)),
                          strerror(err));
                return -err;
        }
        log_debug("%s: connect to %s: %s; retrying in %d ms", hp->label,
                  where(hp, w, sizeof(w)), strerror(err), cs(hp)->backoff_ms);
        arm_retry(hp);
        return 0;
}

static void pending_end(struct hport *hp)
{
        struct connect_state *s = cs(hp);

        if (s->pending_fd < 0)
                return;
        if (s->pending_events)
                hp->loop_ops->del(hp->loop, s->pending_fd);
        s->pending_events = 0;
        close(s->pending_fd);
        s->pending_fd = -1;
}

/* The TCP handshake ended: SO_ERROR says how. */
static void on_connect_done(void *opaque, int fd, uint32_t events)
{
        struct hport *hp = opaque;
        socklen_t len = sizeof(int);
        int err = 0;

        (void)events;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        hp->loop_ops->del(hp->loop, fd);
        cs(hp)->pending_events = 0;
        cs(hp)->pending_fd = -1;
        if (err) {
                close(fd);
                connect_failed(hp, err);
                return;
        }
        connected(hp, fd);
}

/* socket() and connect() to the spec's address; the fd, or -errno. */
static int start_connect(struct hport *hp, bool *in_progress)
{
        struct sockaddr_storage ss = { 0 };
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        socklen_t len = sizeof(*un);
        int fd, err;

        if (!is_tcp(hp)) {
                un->sun_family = AF_UNIX;
                strcpy(un->sun_path, hp->spec.path);    /* length checked by spec_parse */
        } else if (inet_pton(AF_INET6, hp->spec.host, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons(hp->spec.tcp_port);
                len = sizeof(*a6);
        } else {
                inet_pton(AF_INET, hp->spec.host, &a4->sin_addr);  /* checked by spec_parse */
                a4->sin_family = AF_INET;
                a4->sin_port = htons(hp->spec.tcp_port);
                len = sizeof(*a4);
        }
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&ss, len) == 0)
                return fd;
        err = errno;
        *in_progress = err == EINPROGRESS;
        if (*in_progress)
                return fd;
        close(fd);
        return -err;
}

/* Connect now, else arm the retry. -errno if connecting is forbidden. */
static int try_connect(struct hport *hp)
{
        bool in_progress = false;
        int fd = start_connect(hp, &in_progress);
        int r;

        if (fd < 0)
                return connect_failed(hp, -fd);
        if (!in_progress) {
                connected(hp, fd);
                return 0;
        }
        r = hp->loop_ops->add(hp->loop, fd, EPOLLOUT, on_connect_done, hp);
        if (r < 0) {
                close(fd);
                return connect_failed(hp, -r);
        }
        cs(hp)->pending_fd = fd;
        cs(hp)->pending_events = EPOLLOUT;
        return 0;
}

static void retry_due(struct hport *hp)
{
        /* Allowed at the start, so allowed now: the result is only logged. */
        if (!hport_connected(hp) && cs(hp)->pending_fd < 0)
                try_connect(hp);
}

static void connect_peer_gone(struct hport *hp)
{
        hport_close_peer(hp);
        if (!cs(hp)->stopping)
                arm_retry(hp);
}

static int connect_start(struct hport *hp)
{
        struct connect_state *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->pending_fd = -1;
        s->backoff_ms = BACKOFF_MIN_MS;
        hp->be = s;
        r = hport_timer_new(hp, retry_due);
        if (r == 0)
                r = try_connect(hp);
        if (r < 0) {
                hp->be = NULL;
                free(s);
        }
        return r;
}

static void connect_stop(struct hport *hp)
{
        hport_timer_arm(hp, 0, false);  /* disarm: no retry from here on */
        cs(hp)->stopping = true;
        pending_end(hp);
        connect_peer_gone(hp);
        free(hp->be);
        hp->be = NULL;
}

const struct backend_ops backend_connect_ops = {
        .name = "connect",
        .start = connect_start,
        .stop = connect_stop,
        .peer_gone = connect_peer_gone,
};
