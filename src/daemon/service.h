/* SPDX-License-Identifier: MIT */
/*
 * vserial under a service manager: the VMM socket handed over by systemd's
 * socket activation (LISTEN_FDS) or by any supervisor (--socket-fd N), and
 * readiness notification (NOTIFY_SOCKET), and the sockets of backend=fd
 * ports passed the same way, named like their ports (LISTEN_FDNAMES).
 *
 * The wire protocols are the ones sd_listen_fds(3) and sd_notify(3)
 * document as stable interfaces for programs that do not link libsystemd.
 * They are spoken here rather than through libsystemd's sd_notify() and
 * sd_listen_fds_with_names() because libsystemd is optional (only
 * backend=journal needs it) and a daemon built without it must still be a
 * Type=notify, socket-activated service; two ways of doing one thing would
 * be worse than the twenty lines this takes.
 */
#pragma once

#include <stdbool.h>

#define SERVICE_FDS_MAX 64

/* The fds systemd passed (sd_listen_fds(3)): fd[i] = 3 + i, named by
 * LISTEN_FDNAMES (NULL without it). */
struct service_fds {
        int n;
        int fd[SERVICE_FDS_MAX];
        const char *name[SERVICE_FDS_MAX];
        bool taken[SERVICE_FDS_MAX];    /* claimed by a backend=fd port */
        char *names;                    /* storage of name[] */
};

/*
 * The fds systemd passed, if LISTEN_PID names this process; the LISTEN_*
 * variables are removed from the environment either way. 0 (ret->n is 0
 * when none were passed), or a negative errno after logging why (more than
 * SERVICE_FDS_MAX, or LISTEN_FDNAMES does not name LISTEN_FDS fds).
 * *@ret_foreign: LISTEN_FDS was set for another process.
 */
int service_listen_fds(struct service_fds *ret, bool *ret_foreign);
void service_fds_free(struct service_fds *f);
/* The passed fd named @name, not yet taken (and now taken), or -1. */
int service_fds_take(struct service_fds *f, const char *name);
/*
 * The VMM socket among the passed fds: the one no port took. 0 if none is
 * left, the fd, or a negative errno after logging why (more than one left,
 * or not a listening unix stream socket).
 */
int service_vmm_fd(struct service_fds *f);

/*
 * Take @fd as the listening VMM socket: it must be a unix stream socket on
 * which listen() was called. Sets it non-blocking and close-on-exec.
 * @what names it in the one-line error ("--socket-fd 5"). Returns 0 or a
 * negative errno after logging why.
 */
int service_take_listener(int fd, const char *what);

/*
 * A datagram socket connected to $NOTIFY_SOCKET (a path, or "@name" in the
 * abstract namespace), opened before the sandbox so that notifying later
 * needs only send(). *ret_fd is the socket, or -1 if the variable is unset.
 * Returns 0, or a negative errno after logging why.
 */
int service_notify_open(int *ret_fd);

/* Send @state ("READY=1", "STOPPING=1") on @fd; nothing if @fd < 0. */
void service_notify(int fd, const char *state);
