/* SPDX-License-Identifier: MIT */
/*
 * vserial under a service manager: the VMM socket handed over by systemd's
 * socket activation (LISTEN_FDS) or by any supervisor (--socket-fd N), and
 * readiness notification (NOTIFY_SOCKET). The wire protocols are the ones
 * sd_listen_fds(3) and sd_notify(3) document; no libsystemd is linked.
 */
#pragma once

/*
 * The socket systemd passed (fd 3), if LISTEN_PID names this process and
 * LISTEN_FDS is 1; the LISTEN_* variables are removed from the environment
 * either way. Returns the fd, 0 if none was passed, or a negative errno
 * after logging why (more than one socket, or not a listening unix stream
 * socket).
 */
int service_listen_fd(void);

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
