/* SPDX-License-Identifier: MIT */
/*
 * The daemon's sandbox: after set-up, optionally become an unprivileged user,
 * then confine the process to what serving a guest and its ports needs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SANDBOX_MAX_DIRS 64

/* What the daemon may still do once confined (main.c derives it from the
 * options: see sandbox.c for why each piece is needed). */
struct sandbox_policy {
        const char *user;               /* --user, or NULL */
        /* Ports added at run time may create and open files and unix
         * sockets beneath these (the control socket's directory and
         * --allow-path ones). */
        const char *port_dirs[SANDBOX_MAX_DIRS];
        size_t nport_dirs;
        /* The daemon removes its own sockets in these (the vhost-user and
         * control sockets, unix ports of the command line) at exit or when
         * a port is removed. */
        const char *remove_dirs[SANDBOX_MAX_DIRS];
        size_t nremove_dirs;
        /* SIGHUP reopens file ports' files here (logrotate moved them):
         * the directories of the command line's backend=file paths. */
        const char *reopen_dirs[SANDBOX_MAX_DIRS];
        size_t nreopen_dirs;
        /* backend=pty and backend=null may be added at run time: /dev/ptmx,
         * /dev/pts and /dev/null */
        bool devices;
        bool inet;                      /* IPv4/IPv6 sockets (--allow-tcp) */
        bool connect;                   /* connect(): unix-connect ports */
        /* tcp-connect ports: IPv4/IPv6 sockets, connect() (above), and TCP
         * connect() to these ports only (Landlock), or to any. */
        bool inet_connect;
        bool tcp_connect_any;
        uint16_t tcp_connect_ports[SANDBOX_MAX_DIRS];
        size_t ntcp_connect_ports;
};

/*
 * Irreversible; call once, after every listening socket, file and port of
 * the command line is set up. If p->user is set, switch to that user (its
 * uid, primary gid and no supplementary groups; needs root). Then, where
 * the kernel has Landlock, allow file system access only as the policy
 * says; then a seccomp filter: the calls serving a guest needs are
 * allowed, starting a program or another process (execve, fork, ptrace,
 * ...) kills the process, every other call fails with EPERM.
 * Returns 0, or a negative errno after logging why (the caller should
 * exit: running unconfined when confinement was asked for is worse).
 * @ret_summary (may be NULL) gets one line saying what is allowed.
 */
int sandbox_apply(const struct sandbox_policy *p, char *ret_summary, size_t len);
