/* SPDX-License-Identifier: MIT */
/*
 * Socket handover and readiness notification (see service.h).
 *
 * Why READY=1 is sent only after the sandbox is on: a service manager
 * starts the VMM once vserial is ready, and "ready" should mean serving in
 * its final, confined state. The notify socket is connected before the
 * sandbox though, so the filter (and any file-system confinement) only has
 * to let a send() through.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "service.h"

/* sd_listen_fds(3): passed fds start at 3. */
#define LISTEN_FDS_START 3

static int sock_int_opt(int fd, int opt)
{
        int v = 0;
        socklen_t len = sizeof(v);

        return getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0 ? -errno : v;
}

int service_take_listener(int fd, const char *what)
{
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        struct stat st;
        int fl;

        if (fstat(fd, &st) < 0) {
                log_error("%s: %s", what, strerror(errno));
                return -EBADF;
        }
        if (!S_ISSOCK(st.st_mode)) {
                log_error("%s: not a socket", what);
                return -ENOTSOCK;
        }
        if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.ss_family != AF_UNIX ||
            sock_int_opt(fd, SO_TYPE) != SOCK_STREAM) {
                log_error("%s: not a unix stream socket (vhost-user runs over AF_UNIX, SOCK_STREAM)",
                          what);
                return -EPROTOTYPE;
        }
        if (sock_int_opt(fd, SO_ACCEPTCONN) != 1) {
                log_error("%s: the socket is not listening (call listen() before passing it)",
                          what);
                return -EINVAL;
        }
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
                log_error("%s: %s", what, strerror(errno));
                return -errno;
        }
        return 0;
}

/* A decimal that fits an int, nothing else. */
static int env_uint(const char *name, long max)
{
        const char *s = getenv(name);
        char *end;
        long v;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtol(s, &end, 10);
        return errno || *end || v > max ? -EINVAL : (int)v;
}

/* LISTEN_FDNAMES: one name per fd, colon-separated. */
static int split_names(struct service_fds *f, const char *names)
{
        char *p;
        int n = 0;

        if (!names)
                return 0;
        f->names = strdup(names);
        if (!f->names)
                return -ENOMEM;
        for (p = f->names; n < f->n; n++) {
                f->name[n] = p;
                p = strchr(p, ':');
                if (!p)
                        break;
                *p++ = '\0';
        }
        if (n + 1 != f->n || p) {
                log_error("socket activation: LISTEN_FDNAMES=%s does not name the %d sockets "
                          "of LISTEN_FDS", names, f->n);
                return -EINVAL;
        }
        return 0;
}

int service_listen_fds(struct service_fds *ret, bool *ret_foreign)
{
        int pid = env_uint("LISTEN_PID", 0x7fffffff);
        int n = env_uint("LISTEN_FDS", 0x7fffffff);
        int r = 0;

        memset(ret, 0, sizeof(*ret));
        *ret_foreign = getenv("LISTEN_FDS") && pid != getpid();
        /* Not for us (a parent's, leaked through the environment): ignore. */
        if (pid == getpid() && n > SERVICE_FDS_MAX) {
                log_error("socket activation passed %d sockets; vserial takes at most %d", n,
                          SERVICE_FDS_MAX);
                r = -EINVAL;
        } else if (pid == getpid() && n > 0) {
                ret->n = n;
                for (int i = 0; i < n; i++)
                        ret->fd[i] = LISTEN_FDS_START + i;
                r = split_names(ret, getenv("LISTEN_FDNAMES"));
        }
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        return r;
}

void service_fds_free(struct service_fds *f)
{
        free(f->names);
        f->names = NULL;
}

int service_fds_take(struct service_fds *f, const char *name)
{
        for (int i = 0; i < f->n; i++) {
                if (!f->taken[i] && f->name[i] && strcmp(f->name[i], name) == 0) {
                        f->taken[i] = true;
                        return f->fd[i];
                }
        }
        return -1;
}

int service_vmm_fd(struct service_fds *f)
{
        int left = 0, fd = 0, r;

        for (int i = 0; i < f->n; i++) {
                if (!f->taken[i]) {
                        left++;
                        fd = f->fd[i];
                }
        }
        if (left > 1) {
                log_error("socket activation passed %d sockets that no backend=fd port names; "
                          "vserial takes one for the VMM (name the others like their ports, "
                          "FileDescriptorName=)", left);
                return -EINVAL;
        }
        if (left == 0)
                return 0;
        r = service_take_listener(fd, "socket activation (LISTEN_FDS)");
        return r < 0 ? r : fd;
}

int service_notify_open(int *ret_fd)
{
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t len;
        size_t n;
        int fd;

        *ret_fd = -1;
        if (!path || !*path)
                return 0;
        n = strlen(path);
        if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
                log_error("NOTIFY_SOCKET=%s: expected an absolute path or @name under %zu bytes",
                          path, sizeof(sa.sun_path));
                return -EINVAL;
        }
        memcpy(sa.sun_path, path, n);
        if (path[0] == '@')
                sa.sun_path[0] = '\0';  /* abstract namespace: no trailing NUL */
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) < 0) {
                int err = errno;

                log_error("NOTIFY_SOCKET=%s: %s", path, strerror(err));
                if (fd >= 0)
                        close(fd);
                return -err;
        }
        *ret_fd = fd;
        return 0;
}

void service_notify(int fd, const char *state)
{
        if (fd < 0)
                return;
        /* A lost notification makes the manager time out: worth a line. */
        if (send(fd, state, strlen(state), MSG_NOSIGNAL) < 0)
                log_warn("cannot notify the service manager (%s): %s", state, strerror(errno));
}
