/* SPDX-License-Identifier: MIT */
/*
 * Every backend a port can have, one line each: its kind, its name in a
 * SPEC (backend=NAME) and its ops (backend.h). The kinds (options.h), the
 * SPEC parser's names (options.c) and the ops a port gets (backend.c) are
 * all made from this list, so none of them can miss a backend.
 *
 * A new backend is a file, backend_NAME.c, that defines its const struct
 * backend_ops, plus a line here (and the file in src/daemon/meson.build's
 * list). Keys of its own in a SPEC are parsed in options.c. Several kinds
 * may share ops (unix and tcp both listen): the ops look at hp->spec.
 *
 * The order is the order of "expected unix, unix-connect, ..." in the
 * parser's error lines.
 */
#pragma once

#define BACKENDS(X)                                                  \
        X(BACKEND_UNIX, "unix", backend_listen_ops)                  \
        X(BACKEND_UNIX_CONNECT, "unix-connect", backend_connect_ops) \
        X(BACKEND_TCP, "tcp", backend_listen_ops)                    \
        X(BACKEND_TCP_CONNECT, "tcp-connect", backend_connect_ops)   \
        X(BACKEND_PTY, "pty", backend_pty_ops)                       \
        X(BACKEND_FILE, "file", backend_file_ops)                    \
        X(BACKEND_STDIO, "stdio", backend_stdio_ops)                 \
        X(BACKEND_NULL, "null", backend_file_ops)                    \
        X(BACKEND_FD, "fd", backend_fd_ops)                          \
        X(BACKEND_JOURNAL, "journal", backend_journal_ops)
