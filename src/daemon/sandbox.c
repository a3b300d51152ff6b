/* SPDX-License-Identifier: MIT */
/*
 * The daemon's sandbox: drop to an unprivileged user, confine file system
 * access with Landlock, then a seccomp allow-list.
 *
 * Threat model: the daemon parses everything a VMM and its guest send, so a
 * bug there hands an attacker this process. Confined, such an attacker can
 * still do what the daemon legitimately does after set-up (move bytes
 * between the guest's memory and the ports' host sides, accept on the
 * sockets it listens on, make what a port added at run time needs) and no
 * more:
 *
 *  - Files and unix sockets (Landlock, where the kernel has it: Linux 5.13+
 *    with landlock among the LSMs, as Debian 12's 6.1 has): created,
 *    opened and removed only beneath the directories ports added at run
 *    time may use (the control socket's directory and --allow-path ones:
 *    read, write, create files and sockets, remove files), removed only in
 *    the directories of the daemon's own sockets (the vhost-user and
 *    control sockets and the unix ports of the command line, removed at
 *    exit or with their port), plus /dev/ptmx and /dev/pts for pty ports
 *    and /dev/null (written) for null ports added at run time. Everything else the command line named was opened
 *    before confinement and is used through its fd. Without a control
 *    socket nothing can be added, so nothing can be opened at all.
 *    Landlock cannot stop connect() to a unix socket (Linux 6.1 has no
 *    rule for it), so:
 *  - connect() (seccomp) only if a port of the command line is
 *    backend=unix-connect (it reconnects) or --allow-connect lets ports
 *    added at run time be; else EPERM. Where the kernel can (Landlock ABI
 *    6), connecting to abstract unix sockets outside the sandbox and
 *    signalling other processes are refused as well.
 *  - IPv4/IPv6 sockets (seccomp) only with --allow-tcp (tcp ports added at
 *    run time) or tcp-connect ports on the command line (they reconnect);
 *    the tcp ports of the command line listen before confinement and only
 *    accept after it. Where the kernel can (Landlock ABI 4) TCP connect()
 *    is refused except to the destination ports of the command line's
 *    tcp-connect ports (to any port with --allow-tcp and --allow-connect:
 *    tcp-connect ports may be added at run time), and without --allow-tcp
 *    TCP bind() too.
 *  - Starting a program, creating a process, tracing one (seccomp): killed
 *    at once. Anything else outside the list fails with EPERM, which the
 *    daemon handles as an error, so a call we missed degrades a feature
 *    instead of taking the guest's console down.
 *
 * The seccomp list is what `strace -f` shows the daemon making after
 * set-up through full UML sessions (tests/guest: handshake, data both
 * ways, 16 MiB bulk, rmmod/insmod, VMM and client disconnects), plus what
 * backends do at run time (sockets created, connected and removed;
 * timers), and what glibc may do underneath (malloc's brk/mmap/madvise/
 * mremap, futex, abort's self-signal).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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
        /* sockets made, served and removed at run time (where: Landlock) */
        SCMP_SYS(accept4), SCMP_SYS(accept), SCMP_SYS(bind), SCMP_SYS(listen),
        SCMP_SYS(shutdown), SCMP_SYS(getsockopt),
        SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
        SCMP_SYS(unlink), SCMP_SYS(unlinkat),
        SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lstat), SCMP_SYS(stat),
        SCMP_SYS(statx), SCMP_SYS(lseek),
        /* "stats" counts /proc/self/fd through a directory fd opened at set-up */
        SCMP_SYS(getdents64),
        /* file and pty ports added at run time open files: where is up to
         * Landlock (and the user the daemon runs as, --user) */
        SCMP_SYS(openat),
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

/*
 * Comparisons are written with both data fields (SCMP_CMP_EQ ignores the
 * second, datum_b = 0) so that every field of struct scmp_arg_cmp is
 * initialised: clang's -Wmissing-field-initializers.
 */
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
 * Sockets: unix; IPv4/IPv6 only if tcp ports may be added at run time (the
 * command line's listen before confinement). No raw or netlink sockets.
 * connect() only if unix-connect ports exist or may be added.
 */
static int add_socket_rules(scmp_filter_ctx ctx, const struct sandbox_policy *p)
{
        static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
        struct scmp_arg_cmp unix_only = SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX, 0);
        size_t n = p->inet || p->inet_connect ? 3 : 1;
        int r = 0;

        for (size_t i = 0; i < n && r == 0; i++) {
                struct scmp_arg_cmp fam = SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)families[i], 0);

                r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &fam);
        }
        if (r == 0 && p->connect)
                r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(connect), 0, NULL);
        return r ? r : rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, &unix_only);
}

/*
 * prctl(PR_GET_NAME): libsystemd's sd_journal_sendv() (backend=journal)
 * names a memfd after the process when journald cannot take an entry at
 * once, and aborts if it cannot read the name. The memfd itself is refused
 * (EPERM), so the send fails and the line is retried.
 */
static int add_prctl_rules(scmp_filter_ctx ctx)
{
        struct scmp_arg_cmp get_name = SCMP_A0_32(SCMP_CMP_EQ, PR_GET_NAME, 0);

        return rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, &get_name);
}

/*
 * abort() and raise() signal this process; no other one. The SIGBUS guard
 * for guest memory (installed before confinement) restores SIGBUS's
 * default action for a fault outside guest memory, so that it kills as it
 * would have: without that the fault would repeat forever.
 */
static int add_signal_rules(scmp_filter_ctx ctx)
{
        struct scmp_arg_cmp self = SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)getpid(), 0);
        struct scmp_arg_cmp bus = SCMP_A0_32(SCMP_CMP_EQ, SIGBUS, 0);
        int r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, &self);

        if (r == 0)
                r = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1, &bus);
        return r ? r : rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, &self);
}

static int add_ioctl_rules(scmp_filter_ctx ctx)
{
        int r = 0;

        for (size_t i = 0; i < sizeof(allow_ioctls) / sizeof(allow_ioctls[0]) && r == 0; i++) {
                struct scmp_arg_cmp req = SCMP_A1_64(SCMP_CMP_EQ, allow_ioctls[i], 0);

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

static int build_filter(scmp_filter_ctx ctx, const struct sandbox_policy *p)
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
                r = add_socket_rules(ctx, p);
        if (r == 0)
                r = add_ioctl_rules(ctx);
        if (r == 0 && !SANDBOX_SANITIZED)
                r = add_prctl_rules(ctx);
        return r;
}

static int install_filter(const struct sandbox_policy *p)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        int r;

        if (!ctx) {
                log_error("sandbox: seccomp_init failed");
                return -ENOMEM;
        }
        r = build_filter(ctx, p);
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

/* ---- Landlock --------------------------------------------------------- */

/* Newer than Debian 12's headers (Linux 6.1): the values of the ABI. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#define LL_NET_BIND_TCP (1ULL << 0)             /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_RULE_NET_PORT 2

/* struct landlock_net_port_attr (ABI 4) */
struct ll_net_port {
        uint64_t allowed_access;
        uint64_t port;
};
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)      /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; older kernels get a prefix. */
struct ll_attr {
        uint64_t fs;
        uint64_t net;
        uint64_t scoped;
};

#define LL_PORT_DIR (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
                     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |    \
                     LANDLOCK_ACCESS_FS_REMOVE_FILE)
#define LL_RW (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE)
#define LL_REOPEN (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG)
#define LL_READ_EXEC (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | \
                      LANDLOCK_ACCESS_FS_EXECUTE)

struct ll_rule {
        const char *path;
        uint64_t access;
        int fd;                 /* O_PATH, opened before the user switch */
};

#define LL_RULES_MAX (3 * SANDBOX_MAX_DIRS + 4)

struct ll_plan {
        int abi;                /* 0: no Landlock */
        struct ll_rule rules[LL_RULES_MAX];
        size_t n;
};

static int ll_abi(void)
{
        long r = syscall(SYS_landlock_create_ruleset, NULL, 0,
                         LANDLOCK_CREATE_RULESET_VERSION);

        return r < 0 ? -errno : (int)r;
}

/* What the kernel can restrict; ioctl is left to the seccomp list. */
static uint64_t ll_handled_fs(int abi)
{
        uint64_t fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;

        if (abi >= 2)
                fs |= LANDLOCK_ACCESS_FS_REFER;
        if (abi >= 3)
                fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
        return fs;
}

static int ll_add_path(struct ll_plan *pl, const char *path, uint64_t access)
{
        struct ll_rule *r;

        if (pl->n == LL_RULES_MAX)
                return -E2BIG;
        r = &pl->rules[pl->n];
        r->path = path;
        r->access = access;
        r->fd = open(path, O_PATH | O_CLOEXEC);
        if (r->fd < 0)
                return log_errno(-errno, "sandbox: cannot open %s", path);
        pl->n++;
        return 0;
}

static void ll_close(struct ll_plan *pl)
{
        for (size_t i = 0; i < pl->n; i++)
                close(pl->rules[i].fd);
        pl->n = 0;
}

/* Open every path the rules name while the process may still (as root). */
static int ll_prepare(struct ll_plan *pl, const struct sandbox_policy *p)
{
        int r = 0;

        pl->abi = ll_abi();
        if (pl->abi <= 0) {
                log_warn("sandbox: Landlock is not available (%s): ports added at run time "
                         "may open any path the daemon's user can", strerror(-pl->abi));
                pl->abi = 0;
                return 0;
        }
        for (size_t i = 0; i < p->nport_dirs && r == 0; i++)
                r = ll_add_path(pl, p->port_dirs[i], LL_PORT_DIR);
        for (size_t i = 0; i < p->nremove_dirs && r == 0; i++)
                r = ll_add_path(pl, p->remove_dirs[i], LANDLOCK_ACCESS_FS_REMOVE_FILE);
        for (size_t i = 0; i < p->nreopen_dirs && r == 0; i++)
                r = ll_add_path(pl, p->reopen_dirs[i], LL_REOPEN);
        if (r == 0 && p->devices)
                r = ll_add_path(pl, "/dev/ptmx", LL_RW);
        if (r == 0 && p->devices)
                r = ll_add_path(pl, "/dev/pts", LL_RW);
        if (r == 0 && p->devices)
                r = ll_add_path(pl, "/dev/null", LANDLOCK_ACCESS_FS_WRITE_FILE);
        /* Sanitizer reports read /proc and may run a symbolizer. */
        if (r == 0 && SANDBOX_SANITIZED)
                r = ll_add_path(pl, "/", LL_READ_EXEC);
        if (r < 0)
                ll_close(pl);
        return r;
}

static int ll_ruleset(const struct ll_plan *pl, const struct sandbox_policy *p)
{
        struct ll_attr attr = { .fs = ll_handled_fs(pl->abi) };
        size_t size = sizeof(attr.fs);

        if (pl->abi >= 4) {
                /* TCP connect only to tcp-connect ports' destinations (rules
                 * below), or anywhere for ones added at run time; bind only
                 * for tcp ports added at run time. */
                attr.net = (p->tcp_connect_any ? 0 : LL_NET_CONNECT_TCP) |
                           (p->inet ? 0 : LL_NET_BIND_TCP);
                size = offsetof(struct ll_attr, scoped);
        }
        if (pl->abi >= 6) {
                attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
                size = sizeof(attr);
        }
        return (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
}

/* TCP connect() to the tcp-connect ports' destination ports. */
static int ll_net_rules(int rfd, const struct ll_plan *pl, const struct sandbox_policy *p)
{
        if (pl->abi < 4 || p->tcp_connect_any)
                return 0;
        for (size_t i = 0; i < p->ntcp_connect_ports; i++) {
                struct ll_net_port np = { .allowed_access = LL_NET_CONNECT_TCP,
                                          .port = p->tcp_connect_ports[i] };

                if (syscall(SYS_landlock_add_rule, rfd, LL_RULE_NET_PORT, &np, 0) < 0) {
                        int r = -errno;

                        log_error("sandbox: Landlock rule for TCP port %u: %s",
                                  p->tcp_connect_ports[i], strerror(-r));
                        return r;
                }
        }
        return 0;
}

static int ll_restrict(struct ll_plan *pl, const struct sandbox_policy *p)
{
        uint64_t handled = ll_handled_fs(pl->abi);
        int rfd, r = 0;

        if (!pl->abi)
                return 0;
        rfd = ll_ruleset(pl, p);
        if (rfd < 0)
                return log_errno(-errno, "sandbox: cannot create a Landlock ruleset");
        for (size_t i = 0; i < pl->n && r == 0; i++) {
                struct landlock_path_beneath_attr pb = {
                        .allowed_access = pl->rules[i].access & handled,
                        .parent_fd = pl->rules[i].fd,
                };

                if (syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
                        r = -errno;
                        log_error("sandbox: Landlock rule for %s: %s", pl->rules[i].path,
                                  strerror(-r));
                }
        }
        if (r == 0)
                r = ll_net_rules(rfd, pl, p);
        if (r == 0 && syscall(SYS_landlock_restrict_self, rfd, 0) < 0) {
                r = -errno;
                log_error("sandbox: cannot apply the Landlock ruleset: %s", strerror(-r));
        }
        close(rfd);
        return r;
}

/* ---- together ----------------------------------------------------------- */

static void summarize(const struct ll_plan *pl, const struct sandbox_policy *p, char *out,
                      size_t len)
{
        size_t used;

        if (!out || !len)
                return;
        used = snprintf(out, len, "confined%s%s: ", p->user ? " as " : "", p->user ? p->user : "");
        if (pl->abi)
                used += snprintf(out + used, used < len ? len - used : 0,
                                 "Landlock ABI %d, ports added at run time under", pl->abi);
        else
                used += snprintf(out + used, used < len ? len - used : 0,
                                 "no Landlock, ports added at run time under");
        for (size_t i = 0; i < p->nport_dirs; i++)
                used += snprintf(out + used, used < len ? len - used : 0, " %s",
                                 p->port_dirs[i]);
        if (!p->nport_dirs)
                used += snprintf(out + used, used < len ? len - used : 0, " (none)");
        used += snprintf(out + used, used < len ? len - used : 0, "; tcp sockets %s; connect() %s",
                         p->inet || p->inet_connect ? "allowed" : "refused",
                         p->connect ? "allowed" : "refused");
        if (p->tcp_connect_any)
                snprintf(out + used, used < len ? len - used : 0, "; TCP connect to any port");
        else if (p->ntcp_connect_ports)
                snprintf(out + used, used < len ? len - used : 0, "; TCP connect to %zu port%s only",
                         p->ntcp_connect_ports, p->ntcp_connect_ports == 1 ? "" : "s");
}

int sandbox_apply(const struct sandbox_policy *p, char *ret_summary, size_t len)
{
        struct ll_plan pl = { 0 };
        int r = ll_prepare(&pl, p);

        if (r == 0 && p->user)
                r = drop_user(p->user);
        /* Landlock needs it (seccomp_load would set it anyway). */
        if (r == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                r = -errno;
        if (r == 0)
                r = ll_restrict(&pl, p);
        if (r == 0)
                r = install_filter(p);
        if (r == 0)
                summarize(&pl, p, ret_summary, len);
        ll_close(&pl);
        return r;
}
