/* SPDX-License-Identifier: MIT */
/*
 * backend=unix-connect: connect to a unix socket the host side listens on.
 * When the connection fails or ends, try again after a delay that doubles
 * from 100 ms up to 5 s, and starts over once a connection succeeds.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void arm_retry(struct hport *hp)
{
        hport_timer_arm(hp, hp->backoff_ms, false);
        hp->backoff_ms = hp->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
                         hp->backoff_ms * 2;
}

/* Refused for good: by the sandbox (vserial --allow-connect) or the
 * socket's permissions. Anything else may change: retry. */
static bool forbidden(int err)
{
        return err == EPERM || err == EACCES;
}

/* Connect now, else arm the retry. -errno if connecting is forbidden. */
static int try_connect(struct hport *hp)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        strcpy(sa.sun_path, hp->spec.path);     /* length checked by spec_parse */
        /* A unix connect() completes or fails at once (or EAGAIN: backlog full). */
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int err = errno;

                if (fd >= 0)
                        close(fd);
                if (forbidden(err)) {
                        log_error("%s: connect to %s: %s", hp->label, hp->spec.path,
                                  strerror(err));
                        return -err;
                }
                log_debug("%s: connect to %s: %s; retrying in %d ms", hp->label,
                          hp->spec.path, strerror(err), hp->backoff_ms);
                arm_retry(hp);
                return 0;
        }
        if (hport_attach(hp, fd, fd) < 0) {
                log_debug("%s: connected to %s, but the guest is not taking control messages; "
                          "retrying in %d ms", hp->label, hp->spec.path, hp->backoff_ms);
                close(fd);
                arm_retry(hp);
                return 0;
        }
        log_info("%s: connected to %s", hp->label, hp->spec.path);
        hp->backoff_ms = BACKOFF_MIN_MS;
        return 0;
}

static void retry_due(struct hport *hp)
{
        /* Allowed at the start, so allowed now: the result is only logged. */
        if (!hport_connected(hp))
                try_connect(hp);
}

static void connect_peer_gone(struct hport *hp)
{
        int fd = hp->in_fd;

        hport_detach(hp);
        if (fd >= 0)
                close(fd);
        if (!hp->stopping)
                arm_retry(hp);
}

static int connect_start(struct hport *hp)
{
        int r = hport_timer_new(hp, retry_due);

        if (r < 0)
                return r;
        hp->backoff_ms = BACKOFF_MIN_MS;
        return try_connect(hp);
}

static void connect_stop(struct hport *hp)
{
        hport_timer_arm(hp, 0, false);  /* disarm: no retry from here on */
        hp->stopping = true;
        connect_peer_gone(hp);
}

const struct backend_ops backend_connect_ops = {
        .name = "unix-connect",
        .start = connect_start,
        .stop = connect_stop,
        .peer_gone = connect_peer_gone,
};
