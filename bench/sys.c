/* SPDX-License-Identifier: MIT */
/* Time, statistics, /proc, and spawning the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ---- time and statistics ------------------------------------------------- */

uint64_t now_ns(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

double now_s(void)
{
        return (double)now_ns() / 1e9;
}

void sleep_s(double s)
{
        struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

        while (nanosleep(&t, &t) < 0 && errno == EINTR)
                ;
}

int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

double median(double *v, unsigned n)
{
        if (!n)
                return 0;
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nearest-rank percentile of an ascending array. */
double percentile(double *sorted, unsigned n, double p)
{
        unsigned k;

        if (!n)
                return 0;
        k = (unsigned)(p / 100.0 * n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return sorted[k - 1];
}

void raise_nofile(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* ---- /proc ----------------------------------------------------------------- */

static long status_field(const char *buf, const char *key)
{
        const char *p = strstr(buf, key);

        return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

ssize_t read_text(const char *path, char *buf, size_t size)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -1;
        n = read(fd, buf, size - 1);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = 0;
        return n;
}

long proc_rss_kib(pid_t pid, long *anon, long *file, long *shmem)
{
        char path[64], buf[4096];

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        if (read_text(path, buf, sizeof(buf)) < 0)
                return -1;
        if (anon)
                *anon = status_field(buf, "RssAnon:");
        if (file)
                *file = status_field(buf, "RssFile:");
        if (shmem)
                *shmem = status_field(buf, "RssShmem:");
        return status_field(buf, "VmRSS:");
}

uint64_t proc_cpu_ns(pid_t pid)
{
        char path[64], buf[128];

        snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
        if (read_text(path, buf, sizeof(buf)) < 0)
                return 0;
        return strtoull(buf, NULL, 10);
}

uint64_t self_cpu_ns(void)
{
        struct timespec t;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

void loadavg(char *buf, size_t len)
{
        int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

        if (fd >= 0)
                close(fd);
        if (n <= 0)
                n = 0;
        buf[n] = 0;
        /* the three averages only */
        for (int i = 0, sp = 0; buf[i]; i++)
                if (buf[i] == ' ' && ++sp == 3)
                        buf[i] = 0;
}

void cpu_model(char *buf, size_t len)
{
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[256];

        snprintf(buf, len, "unknown");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                char *c = strchr(line, ':');

                if (strncmp(line, "model name", 10) || !c)
                        continue;
                c++;
                while (*c == ' ' || *c == '\t')
                        c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, len, "%s", c);
                break;
        }
        fclose(f);
}

/* ---- the daemon ------------------------------------------------------------ */

void daemon_port_path(const struct daemon *dm, uint32_t id, char *buf,
                      size_t len)
{
        snprintf(buf, len, "%.*s.p%u", (int)(strlen(dm->sock) - 5), dm->sock, id);
}

static int unix_connect(const char *path)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                int err = -errno;

                close(fd);
                return err;
        }
        return fd;
}

int daemon_port_connect(const struct daemon *dm, uint32_t id)
{
        char path[128];

        daemon_port_path(dm, id, path, sizeof(path));
        return unix_connect(path);
}

int daemon_start(struct daemon *dm, const char *tag, unsigned max_ports,
                 const struct port_req *ports, unsigned nports)
{
        return daemon_start_in(dm, opt.dir, tag, max_ports, ports, nports);
}

int daemon_start_in(struct daemon *dm, const char *dir, const char *tag,
                    unsigned max_ports, const struct port_req *ports,
                    unsigned nports)
{
        char **argv = calloc(2 * nports + 16, sizeof(*argv));
        char maxp[16];
        unsigned a = 0;
        uint64_t t0;
        int r = 0;

        memset(dm, 0, sizeof(*dm));
        dm->vmm_fd = -1;
        dm->pid = -1;
        if (!argv)
                return -ENOMEM;
        snprintf(dm->sock, sizeof(dm->sock), "%.60s/%.30s.sock", dir, tag);
        snprintf(dm->log, sizeof(dm->log), "%.60s/%.30s.log", opt.dir, tag);
        snprintf(maxp, sizeof(maxp), "%u", max_ports);
        argv[a++] = (char *)opt.vserial;
        argv[a++] = "--socket";
        argv[a++] = dm->sock;
        argv[a++] = "--max-ports";
        argv[a++] = maxp;
        argv[a++] = "--log-level";
        argv[a++] = "warn";
        for (unsigned i = 0; i < nports && r == 0; i++) {
                char path[128];

                daemon_port_path(dm, ports[i].id, path, sizeof(path));
                unlink(path);
                argv[a++] = "--port";
                if (asprintf(&argv[a], "id=%u,name=bench.%u,%sbackend=unix,path=%s",
                             ports[i].id, ports[i].id,
                             ports[i].console ? "console," : "", path) < 0) {
                        argv[a] = NULL;
                        r = -ENOMEM;
                }
                a++;
        }
        unlink(dm->sock);
        t0 = now_ns();
        if (r == 0) {
                dm->pid = fork();
                if (dm->pid < 0)
                        r = -errno;
        }
        if (r == 0 && dm->pid == 0) {
                int fd = open(dm->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                if (nul >= 0)
                        dup2(nul, 0);
                execv(opt.vserial, argv);
                _exit(127);
        }
        /* Ready when it accepts on the VMM socket: the ports came first. */
        while (r == 0) {
                int status, fd = unix_connect(dm->sock);

                if (fd >= 0) {
                        dm->vmm_fd = fd;
                        dm->ready_ms = (double)(now_ns() - t0) / 1e6;
                        break;
                }
                if (waitpid(dm->pid, &status, WNOHANG) == dm->pid) {
                        dm->pid = -1;
                        r = -ECHILD;
                        break;
                }
                if (now_ns() - t0 > 10000000000ull) {
                        r = -ETIMEDOUT;
                        break;
                }
                sleep_s(50e-6);
        }
        for (unsigned i = 8; i < a; i += 2)      /* the asprintf()ed specs */
                free(argv[i]);
        free(argv);
        if (r < 0)
                daemon_stop(dm);
        return r;
}

void daemon_stop(struct daemon *dm)
{
        if (dm->vmm_fd >= 0)
                close(dm->vmm_fd);
        dm->vmm_fd = -1;
        if (dm->pid > 0) {
                int status;
                uint64_t t0 = now_ns();

                kill(dm->pid, SIGTERM);
                while (waitpid(dm->pid, &status, WNOHANG) == 0) {
                        if (now_ns() - t0 > 3000000000ull) {
                                kill(dm->pid, SIGKILL);
                                waitpid(dm->pid, &status, 0);
                                break;
                        }
                        sleep_s(1e-3);
                }
        }
        dm->pid = -1;
}
