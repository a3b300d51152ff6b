/* SPDX-License-Identifier: MIT */
/*
 * vsg: what the QEMU guest's busybox lacks for the real-guest cases. Built
 * with gcc -static by tests/guest/qemu/build_guest.py into the initramfs.
 *
 *   vsg head N
 *       Copy exactly N bytes (fewer at end of file) from stdin to stdout.
 *       busybox "head -c" reads its input through stdio, so it takes a
 *       whole buffer from a port and drops what follows the N bytes.
 *   vsg ports FIRST LAST SIZE SECONDS
 *       On /dev/vport0pFIRST .. /dev/vport0pLAST at once (port 0 is the
 *       console: /dev/hvc0, in raw mode): write SIZE
 *       bytes (xorshift, seeded by the port number) and read SIZE bytes,
 *       all ports in one poll() loop. One line per port on stdout:
 *       "PORT SENT CRC32-SENT GOT CRC32-GOT" (zlib's CRC-32, hex).
 *       Exit 0 when every port moved SIZE bytes both ways within SECONDS.
 *   vsg replug NAME PER_EPOCH DIR
 *       The port named NAME is unplugged and plugged by the host again and
 *       again: each time it is there (an epoch), open it and write
 *       PER_EPOCH bytes of a record stream that goes on from where the
 *       last epoch's writes ended, while reading everything into DIR/h2g.E
 *       (E the epoch), until the port goes away (ENODEV). Records are 16
 *       bytes, "VSG2", the stream position (le64) and a check word (le32,
 *       see record()); writes are whole records. Once DIR/stop exists:
 *       read until 0.3 s pass without data, and end. One line per epoch in
 *       DIR/replug.log: "E WSTART WEND READ" (written positions, bytes
 *       read). Waits up to 60 s for the port to come back each time.
 *   Both are also built for the UML guest (a host program there).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define MAX_PORTS 512

static uint32_t crc_table[256];

static void crc_init(void)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;

                for (int k = 0; k < 8; k++)
                        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
                crc_table[i] = c;
        }
}

/* zlib's crc32(): pass 0 first, then the previous value. */
static uint32_t crc32(uint32_t crc, const uint8_t *p, size_t n)
{
        crc = ~crc;
        while (n--)
                crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

static int parse_u64(const char *s, uint64_t *v)
{
        char *end;

        errno = 0;
        *v = strtoull(s, &end, 10);
        return errno || end == s || *end ? -1 : 0;
}

static int cmd_head(uint64_t n)
{
        static uint8_t buf[CHUNK];

        while (n) {
                ssize_t r = read(0, buf, n < CHUNK ? n : CHUNK);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        perror("vsg head: read");
                        return 1;
                }
                if (r == 0)
                        return 0;
                for (ssize_t off = 0; off < r;) {
                        ssize_t w = write(1, buf + off, r - off);

                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0) {
                                perror("vsg head: write");
                                return 1;
                        }
                        off += w;
                }
                n -= r;
        }
        return 0;
}

struct port {
        int fd;
        uint64_t sent, got, rng;
        uint32_t crc_sent, crc_got;
        double eof_at;          /* read end of file: no host client (yet) */
        uint8_t out[CHUNK];
        size_t out_len, out_off;
};

static uint64_t xorshift(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* The next piece of this port's stream, once the last one is written. */
static void refill(struct port *p, uint64_t size)
{
        uint64_t left = size - p->sent;
        size_t n = left < CHUNK ? left : CHUNK;

        for (size_t i = 0; i < n; i += 8) {
                uint64_t v = xorshift(&p->rng);

                memcpy(p->out + i, &v, n - i < 8 ? n - i : 8);
        }
        p->out_len = n;
        p->out_off = 0;
}

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int port_write(struct port *p, uint64_t size)
{
        ssize_t w;

        if (p->out_off == p->out_len)
                refill(p, size);
        w = write(p->fd, p->out + p->out_off, p->out_len - p->out_off);
        if (w < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        p->crc_sent = crc32(p->crc_sent, p->out + p->out_off, w);
        p->out_off += w;
        p->sent += w;
        return 0;
}

static int port_read(struct port *p, uint64_t size)
{
        static uint8_t buf[CHUNK];
        uint64_t left = size - p->got;
        ssize_t r = read(p->fd, buf, left < CHUNK ? left : CHUNK);

        /* 0: no host client yet (the port reads as closed); try later. */
        if (r == 0)
                p->eof_at = now();
        if (r < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        p->crc_got = crc32(p->crc_got, buf, r);
        p->got += r;
        return 0;
}

/* The console as a byte pipe: no echo, no line editing, no translation. */
static int raw_tty(int fd)
{
        struct termios t;

        if (tcgetattr(fd, &t) < 0)
                return -1;
        cfmakeraw(&t);
        return tcsetattr(fd, TCSANOW, &t);
}

static int open_ports(struct port *ports, unsigned first, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                char path[64];

                if (first + i == 0)
                        snprintf(path, sizeof(path), "/dev/hvc0");
                else
                        snprintf(path, sizeof(path), "/dev/vport0p%u", first + i);
                ports[i].fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                if (ports[i].fd < 0 || (first + i == 0 && raw_tty(ports[i].fd) < 0)) {
                        fprintf(stderr, "vsg ports: %s: %s\n", path, strerror(errno));
                        return -1;
                }
                ports[i].rng = 0x9e3779b97f4a7c15ull * (first + i) + 1;
        }
        return 0;
}

/* One round of poll(): 1 while some port is not done, 0 when all are. */
static int pump(struct port *ports, struct pollfd *pfd, unsigned n, uint64_t size)
{
        unsigned busy = 0;
        double t = now();

        for (unsigned i = 0; i < n; i++) {
                struct port *p = &ports[i];
                bool rd = p->got < size;

                pfd[i].fd = p->fd;
                pfd[i].events = (p->sent < size ? POLLOUT : 0) |
                                (rd && t - p->eof_at > 0.05 ? POLLIN : 0);
                busy += p->sent < size || rd;
        }
        if (!busy)
                return 0;
        if (poll(pfd, n, 50) < 0 && errno != EINTR)
                return -errno;
        for (unsigned i = 0; i < n; i++) {
                int r = 0;

                if (pfd[i].revents & POLLOUT)
                        r = port_write(&ports[i], size);
                if (!r && (pfd[i].revents & (POLLIN | POLLHUP)))
                        r = port_read(&ports[i], size);
                if (r < 0) {
                        fprintf(stderr, "vsg ports: port %u: %s\n", i, strerror(-r));
                        return r;
                }
        }
        return 1;
}

static int cmd_ports(unsigned first, unsigned last, uint64_t size, double secs)
{
        static struct port ports[MAX_PORTS];
        static struct pollfd pfd[MAX_PORTS];
        unsigned n = last - first + 1;
        double end = now() + secs;
        int r, bad = 0;

        if (open_ports(ports, first, n) < 0)
                return 1;
        while ((r = pump(ports, pfd, n, size)) > 0 && now() < end)
                ;
        for (unsigned i = 0; i < n; i++) {
                struct port *p = &ports[i];

                printf("%u %llu %08x %llu %08x\n", first + i, (unsigned long long)p->sent,
                       p->crc_sent, (unsigned long long)p->got, p->crc_got);
                bad += p->sent != size || p->got != size;
        }
        if (r > 0)
                fprintf(stderr, "vsg ports: %d ports unfinished after %.0f s\n", bad, secs);
        return r != 0 || bad ? 1 : 0;
}

/* ---- replug ------------------------------------------------------------- */

#define REC 16u

/* The record at stream position @pos (a multiple of REC). */
static void record(uint8_t *out, const char *magic, uint64_t pos)
{
        uint32_t check = (uint32_t)(pos * 2654435761u) ^ 0x5a5a5a5au;

        memcpy(out, magic, 4);
        for (int i = 0; i < 8; i++)
                out[4 + i] = (uint8_t)(pos >> (8 * i));
        for (int i = 0; i < 4; i++)
                out[12 + i] = (uint8_t)(check >> (8 * i));
}

/* /dev/vportNpM of the port named @name, if it is there now. */
static bool find_named(const char *name, char *dev, size_t len)
{
        char path[300], got[256];
        bool found = false;

        for (unsigned n = 0; n < 4 && !found; n++) {
                for (unsigned p = 0; p < 128 && !found; p++) {
                        FILE *f;

                        snprintf(path, sizeof(path), "/sys/class/virtio-ports/vport%up%u/name", n, p);
                        f = fopen(path, "re");
                        if (!f)
                                continue;
                        if (fgets(got, sizeof(got), f)) {
                                got[strcspn(got, "\n")] = '\0';
                                if (!strcmp(got, name)) {
                                        snprintf(dev, len, "/dev/vport%up%u", n, p);
                                        found = true;
                                }
                        }
                        fclose(f);
                }
        }
        return found;
}

/* Open the port once it is (back) there; -1 after 60 s. */
static int open_named(const char *name)
{
        double end = now() + 60;
        char dev[64];

        while (now() < end) {
                if (find_named(name, dev, sizeof(dev))) {
                        int fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

                        if (fd >= 0)
                                return fd;
                }
                usleep(10000);
        }
        return -1;
}

struct epoch {
        uint64_t wpos, wend;    /* written so far, this epoch's limit */
        uint64_t got;
        int out;                /* DIR/h2g.E */
        bool stopping;
        double quiet_since;
};

static bool exists(const char *dir, const char *name)
{
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return access(path, F_OK) == 0;
}

/* Write the next piece of the record stream. -1 once the port is gone. */
static int epoch_write(int fd, struct epoch *e)
{
        static uint8_t buf[4096];
        uint64_t n = e->wend - e->wpos < sizeof(buf) ? e->wend - e->wpos : sizeof(buf);
        ssize_t w;

        for (uint64_t i = 0; i < n; i += REC)
                record(buf + i, "VSG2", e->wpos + i);
        w = write(fd, buf, n);
        if (w < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
        /* A port write takes all of a buffer this size or nothing. */
        e->wpos += (uint64_t)w;
        return 0;
}

/* Read what is there into the epoch's file. -1 once the port is gone. */
static int epoch_read(int fd, struct epoch *e)
{
        static uint8_t buf[CHUNK];
        ssize_t r = read(fd, buf, sizeof(buf));

        if (r < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (r == 0) {
                usleep(10000);  /* no host client: the host keeps one */
                return 0;
        }
        e->got += r;
        e->quiet_since = now();
        return write(e->out, buf, r) == r ? 0 : -1;
}

/* One epoch on an open port: until it is unplugged (0) or the end (1). */
static int epoch_run(int fd, struct epoch *e, const char *dir)
{
        e->quiet_since = now();
        for (;;) {
                struct pollfd pf = { .fd = fd, .events = POLLIN };

                if (!e->stopping && exists(dir, "stop"))
                        e->stopping = true;
                if (e->stopping && now() - e->quiet_since > 0.3)
                        return 1;
                if (!e->stopping && e->wpos < e->wend)
                        pf.events |= POLLOUT;
                if (poll(&pf, 1, 50) < 0 && errno != EINTR)
                        return -1;
                if ((pf.revents & POLLOUT) && epoch_write(fd, e) < 0)
                        return 0;
                if ((pf.revents & (POLLIN | POLLHUP | POLLERR)) && epoch_read(fd, e) < 0)
                        return 0;
        }
}

static int cmd_replug(const char *name, uint64_t per_epoch, const char *dir)
{
        char path[512];
        uint64_t wpos = 0;
        FILE *log;
        int r = 0;

        snprintf(path, sizeof(path), "%s/replug.log", dir);
        log = fopen(path, "we");
        if (!log || per_epoch % REC) {
                fprintf(stderr, "vsg replug: %s: %s\n", path, log ? "PER_EPOCH % 16" : strerror(errno));
                return 1;
        }
        for (unsigned n = 0; r == 0; n++) {
                struct epoch e = { .wpos = wpos, .wend = wpos + per_epoch };
                uint64_t start = wpos;
                int fd = open_named(name);

                if (fd < 0) {
                        fprintf(stderr, "vsg replug: port %s did not come back (epoch %u)\n", name, n);
                        return 1;
                }
                snprintf(path, sizeof(path), "%s/h2g.%u", dir, n);
                e.out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (e.out < 0) {
                        fprintf(stderr, "vsg replug: %s: %s\n", path, strerror(errno));
                        return 1;
                }
                r = epoch_run(fd, &e, dir);
                close(fd);
                close(e.out);
                wpos = e.wpos;
                fprintf(log, "%u %llu %llu %llu\n", n, (unsigned long long)start,
                        (unsigned long long)wpos, (unsigned long long)e.got);
                fflush(log);
        }
        fclose(log);
        return r == 1 ? 0 : 1;
}

static int usage(void)
{
        fprintf(stderr, "usage: vsg head N | vsg ports FIRST LAST SIZE SECONDS | "
                "vsg replug NAME PER_EPOCH DIR\n");
        return 2;
}

int main(int argc, char **argv)
{
        uint64_t a, b, c, d;

        crc_init();
        if (argc == 3 && !strcmp(argv[1], "head") && !parse_u64(argv[2], &a))
                return cmd_head(a);
        if (argc == 6 && !strcmp(argv[1], "ports") && !parse_u64(argv[2], &a) &&
            !parse_u64(argv[3], &b) && !parse_u64(argv[4], &c) && !parse_u64(argv[5], &d) &&
            b >= a && b - a < MAX_PORTS)
                return cmd_ports((unsigned)a, (unsigned)b, c, (double)d);
        if (argc == 5 && !strcmp(argv[1], "replug") && !parse_u64(argv[3], &a))
                return cmd_replug(argv[2], a, argv[4]);
        return usage();
}
