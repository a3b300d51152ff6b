/* SPDX-License-Identifier: MIT */
/*
 * The daemon's sandbox: drop to an unprivileged user, then a seccomp
 * allow-list.
 *
 * Threat model: the daemon parses everything a VMM and its guest send, so a
 * bug there hands an attacker this process. Confined, such an attacker can
 * still do what the daemon legitimately does (move bytes between the
 * guest's memory and the ports' host sides, open unix sockets) but cannot
 * start a program, create a process, trace one, open files, or make
 * network connections. Spawning is the line not to cross, so those calls
 * kill the process at once; anything else unexpected fails with EPERM,
 * which the daemon already handles as an error, so a call we missed
 * degrades a feature instead of taking the guest's console down.
 *
 * The allow-list is what `strace -f` shows the daemon making after set-up
 * through full UML sessions (tests/guest: handshake, data both ways, 16 MiB
 * bulk, rmmod/insmod, VMM and client disconnects), plus what backends do
 * at run time (unix sockets created, connected and removed; timers), and
 * what glibc may do underneath (malloc's brk/mmap/madvise/mremap, futex,
 * abort's self-signal).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

/*
 * Sanitizer runtimes do things of their own while the daemon runs: at exit
 * LeakSanitizer stops the world from a clone()d tracer using ptrace, and a
 * report reads /proc and may exec a symbolizer. Those builds are for
 * testing; they get those calls allowed, and the deny list answers EPERM
 * instead of killing, so a report is never cut short.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZED 1
#endif
#endif
#ifndef SANDBOX_SANITIZED
#define SANDBOX_SANITIZED 0
#endif

/* Allowed whatever their arguments. */
static const int allow_any[] = {
        /* moving data: vhost-user socket, kick/call fds, port backends */
        SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
        SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
        /* the event loop and the fds it watches */
        SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
        SCMP_SYS(eventfd2), SCMP_SYS(signalfd4), SCMP_SYS(timerfd_create),
        SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime), SCMP_SYS(close),
        SCMP_SYS(fcntl), SCMP_SYS(poll), SCMP_SYS(ppoll),
        /* unix sockets made, served and removed at run time */
        SCMP_SYS(accept4), SCMP_SYS(accept), SCMP_SYS(bind), SCMP_SYS(listen),
        SCMP_SYS(connect), SCMP_SYS(shutdown), SCMP_SYS(getsockopt),
        SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
        SCMP_SYS(unlink), SCMP_SYS(unlinkat),
        SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lstat), SCMP_SYS(stat),
        SCMP_SYS(statx), SCMP_SYS(lseek),
        /* "stats" counts /proc/self/fd through a directory fd opened at set-up */
        SCMP_SYS(getdents64),
        /* file and pty ports added at run time open files: what they may
         * open is bounded by the user the daemon runs as (--user) */
        SCMP_SYS(openat), SCMP_SYS(fchmod),
        /* guest memory (SET_MEM_TABLE) and the heap */
        SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk),
        /* time, signals, exit */
        SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday),
        SCMP_SYS(time), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
        SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall),
        SCMP_SYS(exit), SCMP_SYS(exit_group),
        /* glibc internals */
        SCMP_SYS(futex), SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getuid),
        SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
        SCMP_SYS(getrandom), SCMP_SYS(sched_yield),
};

/* Allowed in sanitizer builds only (see SANDBOX_SANITIZED). */
static const int allow_sanitizer[] = {
        SCMP_SYS(clone), SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(waitid),
        SCMP_SYS(prctl), SCMP_SYS(getppid), SCMP_SYS(openat), SCMP_SYS(open),
        SCMP_SYS(getdents), SCMP_SYS(getdents64), SCMP_SYS(readlink),
        SCMP_SYS(readlinkat),
        SCMP_SYS(pipe2), SCMP_SYS(dup2), SCMP_SYS(rt_sigaction),
        SCMP_SYS(sigaltstack), SCMP_SYS(kill), SCMP_SYS(tgkill), SCMP_SYS(mprotect),
        SCMP_SYS(mmap), SCMP_SYS(sched_getaffinity),
};

/* Starting programs or processes, or reaching into another one. */
static const int deny_kill[] = {
        SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork), SCMP_SYS(vfork),
        SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
};

/*
 * ioctl: terminal sizes (consoles), what posix_openpt()/grantpt()/ptsname()
 * and cfmakeraw() need for ports added at run time with backend=pty, and
 * FIONREAD (a peer that hung up with data still to deliver).
 */
static const unsigned long allow_ioctls[] = {
        TIOCGWINSZ, TIOCSWINSZ, FIONREAD, TIOCGPTN, TIOCSPTLCK, TCGETS, TCSETS,
};

static int rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n,
                const struct scmp_arg_cmp *cmp)
{
        return seccomp_rule_add_array(ctx, action, nr, n, cmp);
}

static int add_list(scmp_filter_ctx ctx, uint32_t action, const int *nrs, size_t n)
{
        int r = 0;

        for (size_t i = 0; i < n && r == 0; i++)
                r = rule(ctx, action, nrs[i], 0, NULL);
        return r;
}

/* Mappings may be written or executed, never both: no injected code. */
static int add_memory_rules(scmp_filter_ctx ctx)
{
        struct scmp_arg_cmp no_exec = SCMP_A2_64(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
        int r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, &no_exec);

        return r ? r : rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, &no_exec);
}

/*
 * Sockets: unix, and IPv4/IPv6 for backend=tcp ports (also added at run
 * time). No raw or netlink sockets.
 */
static int add_socket_rules(scmp_filter_ctx ctx)
{
        static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
        struct scmp_arg_cmp unix_only = SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX);
        int r = 0;

        for (size_t i = 0; i < sizeof(families) / sizeof(families[0]) && r == 0; i++) {
                struct scmp_arg_cmp fam = SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)families[i]);

                r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &fam);
        }
        return r ? r : rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, &unix_only);
}

/* abort() and raise() signal this process; no other one. */
static int add_signal_rules(scmp_filter_ctx ctx)
{
        struct scmp_arg_cmp self = SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)getpid());
        int r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, &self);

        return r ? r : rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, &self);
}

static int add_ioctl_rules(scmp_filter_ctx ctx)
{
        int r = 0;

        for (size_t i = 0; i < sizeof(allow_ioctls) / sizeof(allow_ioctls[0]) && r == 0; i++) {
                struct scmp_arg_cmp req = SCMP_A1_64(SCMP_CMP_EQ, allow_ioctls[i]);

                r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &req);
        }
        return r;
}

/*
 * Threads may be made (glibc makes none for us today), processes may not:
 * clone without CLONE_THREAD kills. clone3 passes its flags in memory a
 * filter cannot read, so it is refused with ENOSYS, which makes glibc fall
 * back to clone.
 */
static int add_clone_rules(scmp_filter_ctx ctx, uint32_t deny)
{
        struct scmp_arg_cmp thread = SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
        struct scmp_arg_cmp process = SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0);
        int r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, &thread);

        if (r == 0)
                r = rule(ctx, deny, SCMP_SYS(clone), 1, &process);
        return r ? r : rule(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL);
}

static uint32_t kill_action(void)
{
        /* KILL_PROCESS needs Linux 4.14; before, KILL ends the thread. */
        return seccomp_api_get() >= 3 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_KILL;
}

static int build_filter(scmp_filter_ctx ctx)
{
        uint32_t deny = SANDBOX_SANITIZED ? SCMP_ACT_ERRNO(EPERM) : kill_action();
        int r = add_list(ctx, SCMP_ACT_ALLOW, allow_any,
                         sizeof(allow_any) / sizeof(allow_any[0]));

        if (r == 0 && SANDBOX_SANITIZED)
                r = add_list(ctx, SCMP_ACT_ALLOW, allow_sanitizer,
                             sizeof(allow_sanitizer) / sizeof(allow_sanitizer[0]));
        if (r == 0 && !SANDBOX_SANITIZED)
                r = add_list(ctx, deny, deny_kill, sizeof(deny_kill) / sizeof(deny_kill[0]));
        if (r == 0 && !SANDBOX_SANITIZED)
                r = add_memory_rules(ctx);
        if (r == 0 && !SANDBOX_SANITIZED)
                r = add_signal_rules(ctx);
        if (r == 0 && !SANDBOX_SANITIZED)
                r = add_clone_rules(ctx, deny);
        if (r == 0)
                r = add_socket_rules(ctx);
        if (r == 0)
                r = add_ioctl_rules(ctx);
        return r;
}

static int install_filter(void)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        int r;

        if (!ctx) {
                log_error("sandbox: seccomp_init failed");
                return -ENOMEM;
        }
        r = build_filter(ctx);
        if (r < 0)
                log_error("sandbox: cannot build the seccomp filter: %s", strerror(-r));
        /* Loading sets no_new_privs first (libseccomp's default). */
        if (r == 0 && (r = seccomp_load(ctx)) < 0)
                log_error("sandbox: cannot load the seccomp filter: %s", strerror(-r));
        seccomp_release(ctx);
        return r;
}

/* Supplementary groups, then the group, then the user: the reverse fails. */
static int drop_user(const char *user)
{
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(user);
        if (!pw) {
                int err = errno ? errno : ENOENT;

                log_error("--user %s: %s", user, errno ? strerror(errno) : "no such user");
                return -err;
        }
        /* Started as that user already (not as root): nothing to switch. */
        if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid && pw->pw_uid != 0 &&
            getgid() == pw->pw_gid && getegid() == pw->pw_gid)
                return 0;
        if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
            setuid(pw->pw_uid) < 0) {
                int err = errno;

                log_error("--user %s: cannot switch to uid %u gid %u: %s%s", user,
                          (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, strerror(err),
                          err == EPERM ? " (--user needs the daemon started as root)" : "");
                return -err;
        }
        /* A process that can become root again has dropped nothing. */
        if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
                log_error("--user %s: root could be regained after the switch", user);
                return -EPERM;
        }
        return 0;
}

int sandbox_apply(const char *user)
{
        int r = user ? drop_user(user) : 0;

        return r < 0 ? r : install_filter();
}
