/* SPDX-License-Identifier: MIT */
/*
 * The same transfers through a real guest: User-Mode Linux with the real
 * virtio_console driver against the daemon (see
 * /work/shared/docs/guest-harness.md), dd to and from /dev/vport0pN.
 * Reported as MB/s with no target: UML's vhost-user path (every ring
 * access and notification goes through the UML kernel's host process
 * helpers) is the limit there, not the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

struct uml_host {
        int g2h_fd, h2g_fd;
        uint64_t bytes;         /* each way */
        atomic_bool quit;
        uint64_t got;
        double first, last;     /* g2h arrival times */
        uint64_t put;
        pthread_t rd, wr;
};

static void *uml_reader(void *arg)
{
        struct uml_host *u = arg;
        uint8_t *buf = malloc(BENCH_READ_SIZE);

        while (buf && u->got < u->bytes && !atomic_load(&u->quit)) {
                ssize_t k = read(u->g2h_fd, buf, BENCH_READ_SIZE);

                if (k > 0) {
                        if (!u->got)
                                u->first = now_s();
                        u->got += (uint64_t)k;
                        u->last = now_s();
                } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                        break;
                }
        }
        free(buf);
        return NULL;
}

static void *uml_writer(void *arg)
{
        struct uml_host *u = arg;
        uint8_t *buf = malloc(32 * KIB);

        if (buf)
                memset(buf, 'u', 32 * KIB);
        while (buf && u->put < u->bytes && !atomic_load(&u->quit)) {
                size_t n = u->bytes - u->put < 32 * KIB ? u->bytes - u->put : 32 * KIB;
                ssize_t k = write(u->h2g_fd, buf, n);

                if (k > 0)
                        u->put += (uint64_t)k;
                else if (k < 0 && errno != EAGAIN && errno != EINTR)
                        break;
        }
        /* EOF: the daemon reads what is queued, then PORT_OPEN 0 */
        close(u->h2g_fd);
        u->h2g_fd = -1;
        free(buf);
        return NULL;
}

/* dd's last line: "N bytes (...) copied, S s, R MB/s" -> MB/s from N / S. */
static double dd_mbps(const char *path, uint64_t *bytes, double *secs)
{
        char buf[1024], *p;

        *bytes = 0;
        *secs = 0;
        if (read_text(path, buf, sizeof(buf)) < 0)
                return -1;
        p = strstr(buf, " bytes");
        if (!p)
                return -1;
        while (p > buf && p[-1] >= '0' && p[-1] <= '9')
                p--;
        *bytes = strtoull(p, NULL, 10);
        p = strstr(p, "copied, ");
        if (!p)
                return -1;
        *secs = strtod(p + 8, NULL);
        return *secs > 0 ? (double)*bytes / *secs / 1e6 : -1;
}

static bool find_in_path(const char *name, char *out, size_t len)
{
        const char *path = getenv("PATH");
        char *dup, *save = NULL;
        bool found = false;

        if (strchr(name, '/')) {
                snprintf(out, len, "%s", name);
                return access(out, X_OK) == 0;
        }
        dup = strdup(path ? path : "/usr/bin:/bin");
        for (char *d = strtok_r(dup, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
                snprintf(out, len, "%s/%s", d, name);
                found = access(out, X_OK) == 0;
        }
        free(dup);
        return found;
}

void run_uml(void)
{
        char uml[PATH_MAX], script[PATH_MAX], out[512], umldir[600], arg_out[600],
             arg_dev[300], arg_blocks[64], arg_dir[700], init[PATH_MAX + 8], tmo[16],
             path[700];
        struct uml_host u = { .g2h_fd = -1, .h2g_fd = -1 };
        struct port_req pr[2] = { { .id = 1 }, { .id = 2 } };
        struct daemon dm;
        double raw, t0, wall, mb, secs;
        uint64_t bytes;
        struct row *row;
        pid_t pid;
        int status = 0, r;

        if (!opt.uml) {
                note("uml: skipped (--no-uml)");
                return;
        }
        if (!find_in_path(opt.uml, uml, sizeof(uml))) {
                note("uml: %s not found: skipped", opt.uml);
                return;
        }
        if (!opt.uml_script || !realpath(opt.uml_script, script)) {
                case_failed("uml", "guest", "no guest script (%s)",
                            opt.uml_script ? opt.uml_script : "none");
                return;
        }
        raw = raw_pump(32 * KIB, opt.secs < 0.5 ? opt.secs : 0.5, opt.warm, NULL);
        snprintf(out, sizeof(out), "%s/uml", opt.dir);
        snprintf(umldir, sizeof(umldir), "%s/umldir", out);
        mkdir(out, 0755);
        mkdir(umldir, 0755);
        snprintf(path, sizeof(path), "%s/result", out);
        unlink(path);
        r = daemon_start(&dm, "uml", 3, pr, 2);
        if (r < 0) {
                case_failed("uml", "daemon", "%s", strerror(-r));
                return;
        }
        /* our readiness probe holds the one VMM connection: give it back */
        close(dm.vmm_fd);
        dm.vmm_fd = -1;
        u.bytes = opt.uml_bytes;
        u.g2h_fd = daemon_port_connect(&dm, 1);
        u.h2g_fd = daemon_port_connect(&dm, 2);
        if (u.g2h_fd < 0 || u.h2g_fd < 0) {
                case_failed("uml", "ports", "cannot connect the host clients");
                goto out;
        }
        {
                struct timeval tv = { 0, 100000 };

                setsockopt(u.g2h_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(u.h2g_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        sleep_s(0.2);
        pthread_create(&u.rd, NULL, uml_reader, &u);
        pthread_create(&u.wr, NULL, uml_writer, &u);
        snprintf(arg_dir, sizeof(arg_dir), "uml_dir=%s", umldir);
        snprintf(init, sizeof(init), "init=%s", script);
        snprintf(arg_dev, sizeof(arg_dev), "virtio_uml.device=%s:3", dm.sock);
        snprintf(arg_out, sizeof(arg_out), "BENCHOUT=%s", out);
        snprintf(arg_blocks, sizeof(arg_blocks), "G2H_BLOCKS=%" PRIu64,
                 opt.uml_bytes / (32 * KIB));
        snprintf(tmo, sizeof(tmo), "%d", opt.smoke ? 40 : 180);
        t0 = now_s();
        pid = fork();
        if (pid == 0) {
                char *argv[] = { "timeout", "-k", "5", tmo, uml, "mem=128M",
                                 "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw",
                                 "con=null", "con0=fd:0,fd:1", arg_dir, init, arg_dev,
                                 arg_out, arg_blocks, NULL };
                int nul = open("/dev/null", O_RDONLY);
                int log;

                snprintf(path, sizeof(path), "%s/uml.log", out);
                log = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                dup2(nul, 0);
                dup2(log, 1);
                dup2(log, 2);
                setenv("TMPDIR", out, 1);
                execvp("timeout", argv);
                _exit(127);
        }
        if (pid > 0)
                waitpid(pid, &status, 0);
        wall = now_s() - t0;
        atomic_store(&u.quit, true);
        pthread_join(u.rd, NULL);
        pthread_join(u.wr, NULL);
        snprintf(path, sizeof(path), "%s/g2h.dd", out);
        mb = dd_mbps(path, &bytes, &secs);
        if (mb <= 0 || u.got < u.bytes) {
                case_failed("uml", "guest->host", "dd: %.1f MB/s, host got %" PRIu64 " of %"
                            PRIu64 " bytes (see %s/uml.log, exit %d)", mb, u.got, u.bytes,
                            out, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        } else {
                row = row_add("uml", "UML dd guest->host, bs=32k", mb, "MB/s",
                              "raw pump, 32 KiB writes", raw);
                row_extra(row, "%.0f MiB in %.2f s (guest dd); host saw %.0f MB/s "
                          "first to last byte; whole UML run %.1f s", (double)bytes / MIB,
                          secs, u.last > u.first ? (double)u.got / (u.last - u.first) / 1e6 : 0,
                          wall);
        }
        snprintf(path, sizeof(path), "%s/h2g.dd", out);
        mb = dd_mbps(path, &bytes, &secs);
        if (mb <= 0 || bytes != u.bytes) {
                case_failed("uml", "host->guest", "dd: %.1f MB/s, %" PRIu64 " of %" PRIu64
                            " bytes (see %s/uml.log)", mb, bytes, u.bytes, out);
        } else {
                row = row_add("uml", "UML dd host->guest, bs=64k", mb, "MB/s",
                              "raw pump, 32 KiB writes", raw);
                row_extra(row, "%.0f MiB in %.2f s (guest dd; reads return <= 4 KiB: "
                          "one rx buffer)", (double)bytes / MIB, secs);
        }
out:
        atomic_store(&u.quit, true);
        if (u.g2h_fd >= 0)
                close(u.g2h_fd);
        if (u.h2g_fd >= 0)
                close(u.h2g_fd);
        daemon_stop(&dm);
}
