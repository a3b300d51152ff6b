/* SPDX-License-Identifier: MIT */
/*
 * vsbench-guest: the guest half of `scripts/bench --qemu` (bench/qemu.py is
 * the host half). Built with gcc -static into the QEMU guest's initramfs
 * (tests/guest/qemu/build_guest.py); tests/guest/qemu/init.sh runs it when
 * the kernel command line has VSBENCH=KEY=VALUE,... :
 *
 *   name=N     the port, by its name in /sys/class/virtio-ports
 *   g2h=B      guest->host bytes with 64 KiB writes (0: skip)
 *   g2h4k=B    guest->host bytes with 4 KiB writes (0: skip)
 *   h2g=B      host->guest bytes, read with 64 KiB reads (0: skip)
 *   rtt=N      64-byte round trips (0: skip)
 *
 * The same port carries a small protocol, one line per step, the guest
 * asking: "G2H bytes wsize" (host: "GO", guest writes, host: "DONE ns"
 * with its first-to-last-byte time), "H2G bytes" (the host writes them),
 * "RTT n size" (host: "GO", then it echoes n messages), and at the end
 * "RESULT key=value ..." with everything the guest measured: times from
 * CLOCK_MONOTONIC, and the device's interrupts from /proc/interrupts
 * (every line naming its virtio device) around each step.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BIG (64 * 1024)
#define MAX_RTT 1000000

struct opts {
        char name[128];
        uint64_t g2h, g2h4k, h2g, rtt;
};

struct port {
        int fd;
        int vdev;               /* N of virtioN: its lines in /proc/interrupts */
};

static char out[4096];          /* the RESULT line */

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
        fprintf(stderr, "vsbench-guest: %s: %s\n", what, strerror(errno));
        exit(1);
}

static void add(const char *fmt, double v)
{
        size_t n = strlen(out);

        snprintf(out + n, sizeof(out) - n, " %s=%.6g", fmt, v);
}

static int parse(struct opts *o, char *spec)
{
        for (char *kv = strtok(spec, ","); kv; kv = strtok(NULL, ",")) {
                char *v = strchr(kv, '=');
                uint64_t *dst = NULL;

                if (!v)
                        return -1;
                *v++ = 0;
                if (!strcmp(kv, "name")) {
                        snprintf(o->name, sizeof(o->name), "%s", v);
                        continue;
                }
                dst = !strcmp(kv, "g2h") ? &o->g2h : !strcmp(kv, "g2h4k") ? &o->g2h4k :
                      !strcmp(kv, "h2g") ? &o->h2g : !strcmp(kv, "rtt") ? &o->rtt : NULL;
                if (!dst)
                        return -1;
                *dst = strtoull(v, NULL, 10);
        }
        return o->name[0] && o->rtt <= MAX_RTT ? 0 : -1;
}

/* /dev/vportNpM of the port called name; N is the virtio device. */
static int find_port(const char *name, struct port *p)
{
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *e;
        char path[512], buf[256];
        unsigned n, m;

        while (d && (e = readdir(d))) {
                FILE *f;

                snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
                f = fopen(path, "r");
                if (!f)
                        continue;
                buf[0] = 0;
                if (fgets(buf, sizeof(buf), f))
                        buf[strcspn(buf, "\n")] = 0;
                fclose(f);
                if (strcmp(buf, name) || sscanf(e->d_name, "vport%up%u", &n, &m) != 2)
                        continue;
                closedir(d);
                snprintf(path, sizeof(path), "/dev/%s", e->d_name);
                p->fd = open(path, O_RDWR | O_CLOEXEC);
                p->vdev = (int)n;
                return p->fd;
        }
        if (d)
                closedir(d);
        errno = ENOENT;
        return -1;
}

/* Interrupts of virtioN so far: every /proc/interrupts line naming it. */
static uint64_t interrupts(int vdev)
{
        FILE *f = fopen("/proc/interrupts", "r");
        char line[1024], want[32];
        uint64_t sum = 0;

        snprintf(want, sizeof(want), "virtio%d", vdev);
        while (f && fgets(line, sizeof(line), f)) {
                char *hit = strstr(line, want);
                char *p = strchr(line, ':');

                if (!hit || !p || (hit[strlen(want)] != '-' && hit[strlen(want)] != '\n' &&
                                   hit[strlen(want)] != ' '))
                        continue;
                for (p++;;) {
                        char *end;
                        unsigned long long v = strtoull(p, &end, 10);

                        if (end == p)
                                break;
                        sum += v;
                        p = end;
                }
        }
        if (f)
                fclose(f);
        return sum;
}

static void write_all(int fd, const void *buf, size_t n)
{
        const char *p = buf;

        while (n) {
                ssize_t w = write(fd, p, n);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        die("write");
                p += w;
                n -= w;
        }
}

static void read_exact(int fd, void *buf, size_t n)
{
        char *p = buf;

        while (n) {
                ssize_t r = read(fd, p, n);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0) {
                        if (r == 0)
                                errno = EPIPE;
                        die("read");
                }
                p += r;
                n -= r;
        }
}

/* One protocol line, byte by byte: nothing after its newline is taken. */
static void read_line(int fd, char *buf, size_t len)
{
        size_t n = 0;

        while (n + 1 < len) {
                read_exact(fd, buf + n, 1);
                if (buf[n++] == '\n')
                        break;
        }
        buf[n] = 0;
}

static void say(int fd, const char *fmt, unsigned long long a, unsigned long long b)
{
        char line[128];
        int n = snprintf(line, sizeof(line), fmt, a, b);

        write_all(fd, line, n);
}

static void g2h(struct port *p, const char *tag, uint64_t bytes, size_t wsize)
{
        static char buf[BIG];
        char line[128];
        uint64_t irq0, left = bytes;
        double t0, t1;

        memset(buf, 0x5a, sizeof(buf));
        irq0 = interrupts(p->vdev);
        say(p->fd, "G2H %llu %llu\n", bytes, wsize);
        read_line(p->fd, line, sizeof(line));
        t0 = now();
        while (left) {
                size_t n = left < wsize ? left : wsize;

                write_all(p->fd, buf, n);
                left -= n;
        }
        t1 = now();
        read_line(p->fd, line, sizeof(line));   /* DONE: the host has it all */
        snprintf(line, sizeof(line), "%s_s", tag);
        add(line, t1 - t0);
        snprintf(line, sizeof(line), "%s_irq", tag);
        add(line, (double)(interrupts(p->vdev) - irq0));
}

static void h2g(struct port *p, uint64_t bytes)
{
        static char buf[BIG];
        uint64_t irq0, got = 0;
        double t0 = 0, t1 = 0;

        irq0 = interrupts(p->vdev);
        say(p->fd, "H2G %llu %llu\n", bytes, 0);
        while (got < bytes) {
                uint64_t want = bytes - got;
                ssize_t r = read(p->fd, buf, want < BIG ? want : BIG);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        die("read h2g");
                if (!got)
                        t0 = now();
                got += r;
                t1 = now();
        }
        add("h2g_s", t1 - t0);
        add("h2g_irq", (double)(interrupts(p->vdev) - irq0));
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static void rtt(struct port *p, uint64_t n)
{
        static double lat[MAX_RTT];
        char msg[64], line[64];
        uint64_t irq0;
        double t0, t1;

        memset(msg, 'r', sizeof(msg));
        irq0 = interrupts(p->vdev);
        say(p->fd, "RTT %llu %llu\n", n, sizeof(msg));
        read_line(p->fd, line, sizeof(line));
        t0 = now();
        for (uint64_t i = 0; i < n; i++) {
                double s = now();

                write_all(p->fd, msg, sizeof(msg));
                read_exact(p->fd, msg, sizeof(msg));
                lat[i] = now() - s;
        }
        t1 = now();
        qsort(lat, n, sizeof(lat[0]), cmp_double);
        add("rtt_p50_us", lat[n / 2] * 1e6);
        add("rtt_p99_us", lat[n * 99 / 100] * 1e6);
        add("rtt_per_s", n / (t1 - t0));
        add("rtt_irq", (double)(interrupts(p->vdev) - irq0));
}

int main(int argc, char **argv)
{
        struct opts o = { 0 };
        struct port p;

        if (argc != 2 || parse(&o, argv[1]) < 0) {
                fprintf(stderr, "usage: vsbench-guest name=N[,g2h=B][,g2h4k=B][,h2g=B][,rtt=N]\n");
                return 2;
        }
        for (int i = 0; find_port(o.name, &p) < 0; i++) {
                if (i == 400)
                        die(o.name);
                usleep(50000);
        }
        snprintf(out, sizeof(out), "RESULT vdev=%d", p.vdev);
        if (o.g2h)
                g2h(&p, "g2h", o.g2h, BIG);
        if (o.g2h4k)
                g2h(&p, "g2h4k", o.g2h4k, 4096);
        if (o.h2g)
                h2g(&p, o.h2g);
        if (o.rtt)
                rtt(&p, o.rtt);
        strcat(out, "\n");
        write_all(p.fd, out, strlen(out));
        fputs(out, stdout);
        close(p.fd);
        return 0;
}
