/* SPDX-License-Identifier: MIT */
/*
 * The daemon's sandbox: after set-up, optionally become an unprivileged user
 * and confine the process to the system calls serving a guest needs.
 */
#pragma once

/*
 * If @user is not NULL, switch to that user (its uid, primary gid and no
 * supplementary groups); this needs root. Then install a seccomp filter:
 * the calls the daemon makes while running are allowed, starting a program
 * or another process (execve, fork, ptrace, ...) kills the process, and
 * every other call fails with EPERM. Irreversible; call it once, after all
 * listening sockets, files and ports of the command line are set up.
 * Returns 0, or a negative errno after logging why (the caller should exit:
 * running unconfined when confinement was asked for is worse).
 */
int sandbox_apply(const char *user);
