/* SPDX-License-Identifier: MIT */
/*
 * The daemon's sandbox (src/daemon/sandbox.c). Each case forks: the child
 * applies the sandbox (irreversible) and reports by exit status what it
 * could and could not do; the parent judges. Children never use cmocka and
 * leave with _exit(), so nothing but the checked calls runs confined.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <linux/landlock.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mem/mem.h"
#include "sandbox.h"
#include "vserial/vserial.h"

/* The same rule as sandbox.c: sanitizer builds refuse with EPERM, not death. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define CHILD_OK 0
#define CHILD_RETURNED 42       /* a call that should have killed came back */

/* Run @fn in a child after sandbox_apply(@p); return its wait status. */
static int in_child_policy(const struct sandbox_policy *p, int (*fn)(void))
{
        int status = -1;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int r = sandbox_apply(p, NULL, 0);

                _exit(r < 0 ? 100 + (-r & 0x3f) : fn());
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

/* The widest policy: tcp and connect allowed, no directories. */
static int in_child(const char *user, int (*fn)(void))
{
        struct sandbox_policy p = { .user = user, .inet = true, .connect = true };

        return in_child_policy(&p, fn);
}

static void assert_exit(int status, int code)
{
        if (WIFSIGNALED(status))
                fail_msg("child killed by signal %d, expected exit %d", WTERMSIG(status), code);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != code)
                fail_msg("child exited %d, expected %d (a failed check number, or 100 + errno "
                         "of sandbox_apply)", WEXITSTATUS(status), code);
}

/* Killed by seccomp in normal builds; refused with EPERM in sanitizer ones. */
static void assert_refused_or_killed(int status)
{
        if (SANITIZED) {
                assert_exit(status, CHILD_OK);
                return;
        }
        if (!WIFSIGNALED(status))
                fail_msg("child %s %d, expected to be killed by SIGSYS",
                         WIFEXITED(status) ? "exited" : "stopped",
                         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* ---- what the daemon does keeps working ---------------------------------- */

static int daemon_calls(void)
{
        int sv[2], efd, fd;
        uint64_t one = 1;
        char buf[8];
        void *p;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 1;
        if (write(sv[0], "ping", 4) != 4 || read(sv[1], buf, sizeof(buf)) != 4)
                return 2;
        if ((efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
                return 3;
        if (write(efd, &one, 8) != 8 || read(efd, &one, 8) != 8)
                return 4;
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
                return 5;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return 6;
        p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return 7;
        memset(p, 1, 65536);
        if (munmap(p, 65536) < 0)
                return 8;
        close(fd);
        close(efd);
        close(sv[0]);
        close(sv[1]);
        return CHILD_OK;
}

static void test_daemon_calls_allowed(void **state)
{
        (void)state;
        assert_exit(in_child(NULL, daemon_calls), CHILD_OK);
}

/* socket(@family, @type) fails with EPERM (in the sandboxed child). */
static bool socket_refused(int family, int type)
{
        int fd;

        errno = 0;
        fd = socket(family, type, 0);
        if (fd >= 0) {
                close(fd);
                return false;
        }
        return errno == EPERM;
}

/* ---- what it must not do fails with EPERM ---------------------------------- */

static int refused_calls(void)
{
        int fd;

        /* Netlink and packet sockets: no backend needs them. */
        if (!socket_refused(AF_NETLINK, SOCK_RAW))
                return 1;
        if (!socket_refused(AF_PACKET, SOCK_RAW))
                return 2;
        /* Calls outside the list. */
        errno = 0;
        if (chroot("/") == 0 || errno != EPERM)
                return 6;
        if (!SANITIZED) {
                errno = 0;
                if (kill(getppid(), 0) == 0 || errno != EPERM)
                        return 4;
                errno = 0;
                if (mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED || errno != EPERM)
                        return 5;
        }
        /* tcp ports, also added at run time, may listen. */
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
                return 7;
        close(fd);
        return CHILD_OK;
}

static void test_other_calls_refused(void **state)
{
        (void)state;
        assert_exit(in_child(NULL, refused_calls), CHILD_OK);
}

/* ---- spawning kills -------------------------------------------------------- */

static int try_execve(void)
{
        char *argv[] = { "true", NULL };
        char *envp[] = { NULL };

        errno = 0;
        execve("/bin/true", argv, envp);
        /* Sanitizer builds: refused, not killed. */
        return SANITIZED && errno == EPERM ? CHILD_OK : CHILD_RETURNED;
}

static void test_execve_kills(void **state)
{
        (void)state;
        assert_refused_or_killed(in_child(NULL, try_execve));
}

static int try_fork(void)
{
        pid_t pid = fork();

        if (pid == 0)
                _exit(0);
        if (pid > 0)
                waitpid(pid, NULL, 0);
        return CHILD_RETURNED;
}

/* Sanitizer builds allow clone, which LeakSanitizer needs: there it works. */
static void test_fork_kills(void **state)
{
        int status;

        (void)state;
        status = in_child(NULL, try_fork);
        if (SANITIZED)
                assert_exit(status, CHILD_RETURNED);
        else
                assert_refused_or_killed(status);
}

/* ---- dropping to a user -------------------------------------------------- */

static uid_t nobody_uid;

static int is_nobody(void)
{
        if (getuid() != nobody_uid || geteuid() != nobody_uid)
                return 1;
        /* Root cannot be regained, with or without the filter's say. */
        if (setuid(0) == 0 || seteuid(0) == 0)
                return 2;
        return CHILD_OK;
}

static void test_user_switch(void **state)
{
        struct passwd *pw = getpwnam("nobody");
        int status;

        (void)state;
        /* Every Debian system has it; a cmocka skip would count as a failure. */
        assert_non_null(pw);
        nobody_uid = pw->pw_uid;
        status = in_child("nobody", is_nobody);
        if (geteuid() == 0 || (geteuid() == nobody_uid && getegid() == pw->pw_gid))
                assert_exit(status, CHILD_OK);
        else    /* another user: the switch fails, clearly, with EPERM */
                assert_exit(status, 100 + EPERM);
}

static int unreachable(void)
{
        return 1;
}

static void test_unknown_user_fails(void **state)
{
        (void)state;
        assert_exit(in_child("no-such-user-vserial", unreachable), 100 + ENOENT);
}

/* ---- what the policy leaves out ------------------------------------------ */

static int no_inet_no_connect(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/nonexistent/x" };
        int fd;

        if (!socket_refused(AF_INET, SOCK_STREAM))
                return 1;
        if (!socket_refused(AF_INET6, SOCK_STREAM))
                return 2;
        if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
                return 3;
        errno = 0;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != EPERM)
                return 4;
        close(fd);
        return CHILD_OK;
}

/* Without tcp ports to add or unix-connect ports: no inet socket, no connect. */
static void test_no_inet_no_connect(void **state)
{
        struct sandbox_policy p = { 0 };

        (void)state;
        assert_exit(in_child_policy(&p, no_inet_no_connect), CHILD_OK);
}

static char port_dir[64], rm_dir[64], other_dir[64];

static int landlock_paths(void)
{
        char path[128];
        int fd;

        snprintf(path, sizeof(path), "%s/new", port_dir);
        if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
                return 1;
        close(fd);
        if (unlink(path) < 0)
                return 2;
        snprintf(path, sizeof(path), "%s/new", other_dir);
        errno = 0;
        if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0 || errno != EACCES)
                return 3;
        /* Sanitizer builds may read everything (their reports do). */
        snprintf(path, sizeof(path), "%s/old", other_dir);
        errno = 0;
        if (!SANITIZED && ((fd = open(path, O_RDONLY)) >= 0 || errno != EACCES))
                return 4;
        if (!SANITIZED && ((fd = open("/etc/passwd", O_RDONLY)) >= 0 || errno != EACCES))
                return 5;
        snprintf(path, sizeof(path), "%s/old", rm_dir);
        errno = 0;
        if ((fd = open(path, O_WRONLY)) >= 0 || errno != EACCES)
                return 6;
        if (unlink(path) < 0)
                return 7;
        snprintf(path, sizeof(path), "%s/old", other_dir);
        errno = 0;
        if (unlink(path) == 0 || errno != EACCES)
                return 8;
        return CHILD_OK;
}

static void make_dir(char *buf, size_t len, const char *file)
{
        char path[128];
        int fd;

        snprintf(buf, len, "/tmp/vs-sandbox-XXXXXX");
        assert_non_null(mkdtemp(buf));
        snprintf(path, sizeof(path), "%s/%s", buf, file);
        fd = open(path, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
}

static void rm_dir_all(const char *dir, const char *file)
{
        char path[128];

        snprintf(path, sizeof(path), "%s/%s", dir, file);
        unlink(path);
        rmdir(dir);
}

/* Landlock (where the kernel has it): files only in the policy's places. */
static void test_landlock_paths(void **state)
{
        struct sandbox_policy p = { .nport_dirs = 1, .nremove_dirs = 1 };

        (void)state;
        make_dir(port_dir, sizeof(port_dir), "x");
        make_dir(rm_dir, sizeof(rm_dir), "old");
        make_dir(other_dir, sizeof(other_dir), "old");
        p.port_dirs[0] = port_dir;
        p.remove_dirs[0] = rm_dir;
        if (syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) < 0)
                fprintf(stderr, "# no Landlock on this kernel: checked with it off\n");
        else
                assert_exit(in_child_policy(&p, landlock_paths), CHILD_OK);
        rm_dir_all(port_dir, "x");
        rm_dir_all(rm_dir, "old");
        rm_dir_all(other_dir, "old");
}
/* ---- the SIGBUS guard, confined ------------------------------------------- */

/*
 * The daemon installs the guard (vs_sigbus_guard_install()) before it is
 * confined. Confined, guest memory the VMM truncated still reads as zeros
 * and marks its table lost; a fault anywhere else still kills the process
 * with SIGBUS (the guard restores the default action: rt_sigaction, which
 * the filter allows for SIGBUS only) instead of faulting again forever.
 */
static int guard_child(void)
{
        struct sandbox_policy p = { .inet = true, .connect = true };
        struct rlimit no_core = { 0, 0 };
        int fd = memfd_create("guarded", MFD_CLOEXEC), fd2 = memfd_create("other", MFD_CLOEXEC);
        volatile uint8_t *g, *other;
        struct vs_mem mem;
        uint64_t len = 1;

        setrlimit(RLIMIT_CORE, &no_core);
        signal(SIGBUS, SIG_DFL);
        if (fd < 0 || fd2 < 0 || ftruncate(fd, 0x1000) < 0 || ftruncate(fd2, 0x1000) < 0)
                return 1;
        if (vs_sigbus_guard_install() < 0)
                return 2;
        vs_mem_init(&mem);
        if (vs_mem_add_fd(&mem, fd, 0, 0x1000, 0, 0) < 0)
                return 3;
        g = vs_mem_gpa(&mem, 0, &len);
        other = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        if (!g || other == MAP_FAILED)
                return 4;
        g[0] = other[0] = 1;
        /* what the VMM would do; the confined daemon cannot truncate */
        if (ftruncate(fd, 0) < 0 || ftruncate(fd2, 0) < 0)
                return 5;
        if (sandbox_apply(&p, NULL, 0) < 0)
                return 6;
        if (g[0] != 0 || !vs_mem_lost(&mem))
                return 7;
        (void)other[0];
        return CHILD_RETURNED;
}

static void test_sigbus_guard_confined(void **state)
{
        int status = 0;
        pid_t pid;

        (void)state;
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(guard_child());
        /* A child that cannot restore the default action faults forever. */
        for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
                usleep(10000);
        if (waitpid(pid, &status, WNOHANG) == 0) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                fail_msg("the confined child kept faulting on SIGBUS outside guest memory");
        }
        if (WIFEXITED(status))
                fail_msg("child exited %d, expected to be killed by SIGBUS", WEXITSTATUS(status));
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGBUS);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_daemon_calls_allowed),
                cmocka_unit_test(test_other_calls_refused),
                cmocka_unit_test(test_execve_kills),
                cmocka_unit_test(test_fork_kills),
                cmocka_unit_test(test_user_switch),
                cmocka_unit_test(test_unknown_user_fails),
                cmocka_unit_test(test_no_inet_no_connect),
                cmocka_unit_test(test_landlock_paths),
                cmocka_unit_test(test_sigbus_guard_confined),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
