/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD shim for test_ctl's control_socket_swapped: plays the attacker
 * who can write in the control socket's directory. Right after the daemon
 * binds the unix socket $VSHOOK_PATH, the socket file is moved away and a
 * symbolic link to $VSHOOK_TARGET put in its place, so that anything the
 * daemon does to the path after bind() (chmod) lands on the target.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
        static int (*real)(int, const struct sockaddr *, socklen_t);
        const char *path = getenv("VSHOOK_PATH"), *target = getenv("VSHOOK_TARGET");
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        char moved[sizeof(un->sun_path) + 8];
        int r;

        if (!real)
                real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
        r = real(fd, sa, len);
        if (r == 0 && path && target && sa->sa_family == AF_UNIX &&
            strcmp(un->sun_path, path) == 0) {
                snprintf(moved, sizeof(moved), "%s.moved", path);
                if (rename(path, moved) == 0 && symlink(target, path) < 0)
                        perror("bindhook: symlink");
        }
        return r;
}
