/* SPDX-License-Identifier: MIT */
/*
 * The data cases: throughput both ways, round-trip latency, many busy
 * ports, notifications per MiB; and their raw baselines.
 *
 * Throughput is measured where the data arrives (the host reader for
 * guest->host, the guest's used ring for host->guest) over a window that
 * starts after a warm-up; each case runs opt.reps times, interleaved with
 * its baseline, and the median is reported.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define MAX_BUSY 64u
#define POLL_MS 200
/* A case that makes no progress for this long failed. */
#define STALL_S 10.0

/* ---- host side: sinks, sources, echo ------------------------------------ */

static void set_timeouts(int fd)
{
        struct timeval tv = { 0, 100000 };

        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* An epoll instance watching @events on fds[0..n), each tagged with its
 * index (data.u32); -1 if there is none. */
static int epoll_over(const int *fds, unsigned n, uint32_t events)
{
        int ep = epoll_create1(EPOLL_CLOEXEC);

        for (unsigned i = 0; ep >= 0 && i < n; i++) {
                struct epoll_event e = { .events = events, .data.u32 = i };

                epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
        }
        return ep;
}

/* Drains fds with BENCH_READ_SIZE reads until EOF or @target bytes. */
struct sink {
        int fd[MAX_BUSY];
        unsigned n;
        bool epoll;             /* one thread over many fds */
        pthread_t th;
        _Atomic uint64_t bytes;
        _Atomic uint64_t target;
        atomic_bool quit;
};

static bool sink_done(struct sink *s)
{
        return atomic_load(&s->bytes) >= atomic_load(&s->target) ||
               atomic_load(&s->quit);
}

static void *sink_main(void *arg)
{
        struct sink *s = arg;
        uint8_t *buf = malloc(BENCH_READ_SIZE);
        struct epoll_event ev[MAX_BUSY];
        int ep = -1;

        if (!buf)
                return NULL;
        if (s->epoll)
                ep = epoll_over(s->fd, s->n, EPOLLIN);
        while (!sink_done(s)) {
                ssize_t k;

                if (!s->epoll) {
                        k = read(s->fd[0], buf, BENCH_READ_SIZE);
                        if (k > 0)
                                atomic_fetch_add_explicit(&s->bytes, (uint64_t)k,
                                                          memory_order_relaxed);
                        else if (k == 0 || (errno != EAGAIN && errno != EINTR))
                                break;
                        continue;
                }
                int n = epoll_wait(ep, ev, MAX_BUSY, 100);

                for (int i = 0; i < n; i++) {
                        k = recv(s->fd[ev[i].data.u32], buf, BENCH_READ_SIZE,
                                 MSG_DONTWAIT);
                        if (k > 0)
                                atomic_fetch_add_explicit(&s->bytes, (uint64_t)k,
                                                          memory_order_relaxed);
                }
        }
        if (ep >= 0)
                close(ep);
        free(buf);
        return NULL;
}

static int sink_start(struct sink *s)
{
        atomic_store(&s->bytes, 0);
        atomic_store(&s->target, UINT64_MAX);
        atomic_store(&s->quit, false);
        for (unsigned i = 0; i < s->n; i++)
                set_timeouts(s->fd[i]);
        return -pthread_create(&s->th, NULL, sink_main, s);
}

/* Wait until @target bytes arrived (or give up after STALL_S). */
static int sink_finish(struct sink *s, uint64_t target)
{
        double end = now_s() + STALL_S;
        int r = 0;

        atomic_store(&s->target, target);
        while (atomic_load(&s->bytes) < target) {
                if (now_s() > end) {
                        r = -ETIMEDOUT;
                        break;
                }
                sleep_s(1e-3);
        }
        atomic_store(&s->quit, true);
        pthread_join(s->th, NULL);
        return r;
}

/* Writes @chunk-byte writes as fast as the fds take them, until stop. */
struct source {
        int fd[MAX_BUSY];
        unsigned n;
        bool epoll;
        uint32_t chunk;
        pthread_t th;
        _Atomic uint64_t bytes;
        atomic_bool stop, done;
};

static void *source_main(void *arg)
{
        struct source *s = arg;
        uint8_t *buf = malloc(s->chunk);
        struct epoll_event ev[MAX_BUSY];
        int ep = -1;

        if (!buf)
                goto out;
        memset(buf, 'h', s->chunk);
        if (s->epoll)
                ep = epoll_over(s->fd, s->n, EPOLLOUT);
        while (!atomic_load(&s->stop)) {
                ssize_t k;

                if (!s->epoll) {
                        k = write(s->fd[0], buf, s->chunk);
                        if (k > 0)
                                atomic_fetch_add_explicit(&s->bytes, (uint64_t)k,
                                                          memory_order_relaxed);
                        else if (k < 0 && errno != EAGAIN && errno != EINTR)
                                break;
                        continue;
                }
                int n = epoll_wait(ep, ev, MAX_BUSY, 100);

                for (int i = 0; i < n; i++) {
                        k = send(s->fd[ev[i].data.u32], buf, s->chunk,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (k > 0)
                                atomic_fetch_add_explicit(&s->bytes, (uint64_t)k,
                                                          memory_order_relaxed);
                }
        }
        if (ep >= 0)
                close(ep);
        free(buf);
out:
        atomic_store(&s->done, true);
        return NULL;
}

static int source_start(struct source *s)
{
        atomic_store(&s->bytes, 0);
        atomic_store(&s->stop, false);
        atomic_store(&s->done, false);
        for (unsigned i = 0; i < s->n; i++)
                set_timeouts(s->fd[i]);
        return -pthread_create(&s->th, NULL, source_main, s);
}

/* Reads @BENCH_RTT_MSG bytes and writes them back, until stop or EOF. */
struct echo {
        int fd;
        pthread_t th;
        atomic_bool stop;
};

static void *echo_main(void *arg)
{
        struct echo *e = arg;
        uint8_t buf[BENCH_RTT_MSG];

        while (!atomic_load(&e->stop)) {
                size_t got = 0, put = 0;

                while (got < sizeof(buf)) {
                        ssize_t k = read(e->fd, buf + got, sizeof(buf) - got);

                        if (k > 0)
                                got += (size_t)k;
                        else if (k == 0 || (errno != EAGAIN && errno != EINTR) ||
                                 atomic_load(&e->stop))
                                return NULL;
                }
                while (put < sizeof(buf)) {
                        ssize_t k = write(e->fd, buf + put, sizeof(buf) - put);

                        if (k > 0)
                                put += (size_t)k;
                        else if (errno != EAGAIN && errno != EINTR)
                                return NULL;
                }
        }
        return NULL;
}

static int echo_start(struct echo *e)
{
        atomic_store(&e->stop, false);
        set_timeouts(e->fd);
        return -pthread_create(&e->th, NULL, echo_main, e);
}

static void echo_stop(struct echo *e)
{
        atomic_store(&e->stop, true);
        pthread_join(e->th, NULL);
}

/* ---- the measuring window -------------------------------------------------- */

struct window {
        double start, t0, t1;
        uint64_t c0, c1;
        int phase;              /* 0 warming up, 1 measuring, 2 done */
};

static void window_init(struct window *w)
{
        memset(w, 0, sizeof(*w));
        w->start = now_s();
}

/* Feed the current byte count; true once the window is over. */
static bool window_tick(struct window *w, uint64_t count)
{
        double t = now_s();

        if (w->phase == 0 && t >= w->start + opt.warm) {
                w->t0 = t;
                w->c0 = count;
                w->phase = 1;
        } else if (w->phase == 1 && t >= w->t0 + opt.secs) {
                w->t1 = t;
                w->c1 = count;
                w->phase = 2;
        }
        return w->phase == 2;
}

static double window_mbps(const struct window *w)
{
        if (w->phase != 2 || w->t1 <= w->t0)
                return NAN;
        return (double)(w->c1 - w->c0) / (w->t1 - w->t0) / 1e6;
}

/* ---- raw baselines ----------------------------------------------------------- */

double raw_pump(uint32_t chunk, double secs, double warm, double *cpu_per_mib)
{
        uint64_t c0 = self_cpu_ns(), total = 0;
        struct sink s = { .n = 1 };
        struct window w;
        double save_secs = opt.secs, save_warm = opt.warm, mbps;
        uint8_t *buf = malloc(chunk);
        int sv[2];

        if (!buf || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                free(buf);
                return NAN;
        }
        memset(buf, 'r', chunk);
        s.fd[0] = sv[1];
        opt.secs = secs;
        opt.warm = warm;
        if (sink_start(&s) < 0) {
                close(sv[0]);
                close(sv[1]);
                free(buf);
                return NAN;
        }
        window_init(&w);
        for (;;) {
                ssize_t k = write(sv[0], buf, chunk);

                if (k < 0 && errno != EINTR)
                        break;
                if (k > 0)
                        total += (uint64_t)k;
                if (window_tick(&w, atomic_load_explicit(&s.bytes, memory_order_relaxed)))
                        break;
        }
        close(sv[0]);   /* EOF ends the reader */
        atomic_store(&s.target, 0);
        pthread_join(s.th, NULL);
        close(sv[1]);
        free(buf);
        if (cpu_per_mib)
                *cpu_per_mib = total ? (double)(self_cpu_ns() - c0) / 1e3 /
                                       ((double)total / MIB) : NAN;
        mbps = window_mbps(&w);
        opt.secs = save_secs;
        opt.warm = save_warm;
        return mbps;
}

int raw_pingpong(unsigned n, double *us)
{
        unsigned warm = n / 10;
        struct echo e;
        uint8_t buf[BENCH_RTT_MSG];
        int sv[2], r = 0;

        memset(buf, 'p', sizeof(buf));
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        e.fd = sv[1];
        if (echo_start(&e) < 0) {
                close(sv[0]);
                close(sv[1]);
                return -EAGAIN;
        }
        for (unsigned i = 0; i < n + warm && r == 0; i++) {
                uint64_t t0 = now_ns();
                size_t got = 0;

                if (write(sv[0], buf, sizeof(buf)) != sizeof(buf)) {
                        r = -EIO;
                        break;
                }
                while (got < sizeof(buf)) {
                        ssize_t k = read(sv[0], buf + got, sizeof(buf) - got);

                        if (k <= 0) {
                                r = -EIO;
                                break;
                        }
                        got += (size_t)k;
                }
                if (i >= warm)
                        us[i - warm] = (double)(now_ns() - t0) / 1e3;
        }
        close(sv[0]);
        echo_stop(&e);
        close(sv[1]);
        qsort(us, n, sizeof(*us), cmp_double);
        return r;
}

/* ---- guest-side helpers --------------------------------------------------------- */

/* Sleeps of the guest that ended without a notification (POLL_MS each): a
 * lost notification shows up here. */
unsigned long poll_timeouts;

struct xfer {
        double mbps;
        uint64_t bytes, bufs, kicks, calls;
        unsigned long stalls;   /* guest sleeps that timed out */
        double daemon_us, self_us;      /* CPU time, per MiB moved */
        uint64_t dcpu0, scpu0;
};

static bool used_pending(const struct bring *r)
{
        return __atomic_load_n(&r->vq->used->idx, __ATOMIC_ACQUIRE) !=
               r->vq->last_used;
}

/*
 * Nothing to do: sleep until one of @rings is notified (after the barrier
 * that makes our used_event stores visible, and a last look). Returns 0,
 * or -ETIMEDOUT when nothing happened for STALL_S.
 */
static int guest_wait(struct bring **rings, unsigned n, double *idle_since,
                      bool stopping)
{
        struct pollfd p[MAX_BUSY];
        int k;

        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        for (unsigned i = 0; i < n; i++)
                if (used_pending(rings[i]))
                        return 0;
        for (unsigned i = 0; i < n; i++)
                p[i] = (struct pollfd){ .fd = bring_call_fd(rings[i]), .events = POLLIN };
        /* stopping: the host side may be done and nothing more will come */
        k = poll(p, n, stopping ? 2 : POLL_MS);
        if (k == 0 && !stopping)
                poll_timeouts++;
        if (k > 0) {
                for (unsigned i = 0; i < n; i++)
                        if (p[i].revents & POLLIN)
                                bring_calls(rings[i]);
                *idle_since = 0;
                return 0;
        }
        if (*idle_since == 0)
                *idle_since = now_s();
        return now_s() - *idle_since > STALL_S ? -ETIMEDOUT : 0;
}

static void xfer_begin(struct bring **rings, unsigned n, uint64_t *snap,
                       struct xfer *x, pid_t daemon)
{
        x->stalls = poll_timeouts;
        x->dcpu0 = proc_cpu_ns(daemon);
        x->scpu0 = self_cpu_ns();
        for (unsigned i = 0; i < n; i++) {
                snap[4 * i] = rings[i]->bytes;
                snap[4 * i + 1] = rings[i]->bufs;
                snap[4 * i + 2] = rings[i]->kicks;
                snap[4 * i + 3] = rings[i]->calls;
        }
}

static void xfer_end(struct bring **rings, unsigned n, const uint64_t *snap,
                     struct xfer *x, pid_t daemon)
{
        uint64_t dcpu = proc_cpu_ns(daemon) - x->dcpu0, scpu = self_cpu_ns() - x->scpu0;

        x->stalls = poll_timeouts - x->stalls;
        for (unsigned i = 0; i < n; i++) {
                bring_calls(rings[i]);  /* the ones not slept on */
                x->bytes += rings[i]->bytes - snap[4 * i];
                x->bufs += rings[i]->bufs - snap[4 * i + 1];
                x->kicks += rings[i]->kicks - snap[4 * i + 2];
                x->calls += rings[i]->calls - snap[4 * i + 3];
        }
        x->daemon_us = x->bytes ? (double)dcpu / 1e3 / ((double)x->bytes / MIB) : NAN;
        x->self_us = x->bytes ? (double)scpu / 1e3 / ((double)x->bytes / MIB) : NAN;
}

/* ---- guest -> host ------------------------------------------------------------- */

/* Guest writers on @n ports (buffers of @chunk), host reader(s) draining. */
static int g2h_run(struct vmm *v, const uint32_t *ids, unsigned n,
                   uint32_t chunk, bool epoll, struct xfer *x)
{
        struct bring *rings[MAX_BUSY];
        uint64_t snap[4 * MAX_BUSY], posted = 0;
        struct sink *s = calloc(1, sizeof(*s));
        struct window w;
        bool stopping = false;
        double idle = 0;
        int r = 0;

        memset(x, 0, sizeof(*x));
        if (!s)
                return -ENOMEM;
        s->n = n;
        s->epoll = epoll;
        for (unsigned i = 0; i < n; i++) {
                rings[i] = vmm_ring(v, fake_port_vq(ids[i], false), chunk);
                s->fd[i] = v->host_fd[ids[i]];
                if (!rings[i] || s->fd[i] < 0) {
                        free(s);
                        return -EINVAL;
                }
        }
        xfer_begin(rings, n, snap, x, v->dm.pid);
        r = sink_start(s);
        window_init(&w);
        while (r == 0) {
                unsigned progress = 0, inflight = 0;

                for (unsigned i = 0; i < n && r == 0; i++) {
                        struct bring *b = rings[i];
                        uint16_t h;
                        uint32_t len;
                        int k;

                        while ((k = bring_used(b, &h, &len)) > 0) {
                                b->free[b->nfree++] = h;
                                progress++;
                        }
                        if (k < 0)
                                r = k;
                        while (!stopping && b->nfree && r == 0) {
                                h = b->free[--b->nfree];
                                r = bring_post(b, h, chunk);
                                if (r == 0)
                                        r = bring_kick(b);
                                posted += chunk;
                                progress++;
                        }
                        inflight += bring_inflight(b);
                }
                if (r < 0)
                        break;
                if (!stopping && window_tick(&w, atomic_load_explicit(&s->bytes,
                                                                      memory_order_relaxed)))
                        stopping = true;
                if (stopping && inflight == 0)
                        break;
                if (!progress)
                        r = guest_wait(rings, n, &idle, stopping);
        }
        if (r == 0)
                r = sink_finish(s, posted);
        else
                sink_finish(s, 0);
        xfer_end(rings, n, snap, x, v->dm.pid);
        x->mbps = window_mbps(&w);
        free(s);
        return r;
}

/* ---- host -> guest --------------------------------------------------------------- */

/* Host writer(s) of @chunk-byte writes; the guest reads with @rxbuf buffers. */
static int h2g_run(struct vmm *v, const uint32_t *ids, unsigned n,
                   uint32_t chunk, uint32_t rxbuf, bool epoll, struct xfer *x)
{
        struct bring *rings[MAX_BUSY];
        uint64_t snap[4 * MAX_BUSY], got = 0;
        struct source *s = calloc(1, sizeof(*s));
        struct window w;
        bool stopping = false;
        double idle = 0, end;
        int r = 0;

        memset(x, 0, sizeof(*x));
        if (!s)
                return -ENOMEM;
        s->n = n;
        s->epoll = epoll;
        s->chunk = chunk;
        for (unsigned i = 0; i < n && r == 0; i++) {
                struct bring *b = vmm_ring(v, fake_port_vq(ids[i], true), rxbuf);

                rings[i] = b;
                s->fd[i] = v->host_fd[ids[i]];
                if (!b || s->fd[i] < 0 || b->buf_len != rxbuf) {
                        r = -EINVAL;
                        break;
                }
                /* Linux fills the receive ring at port add */
                while (b->nfree && r == 0)
                        r = bring_post(b, b->free[--b->nfree], rxbuf);
                if (r == 0)
                        r = bring_kick(b);
        }
        if (r < 0) {
                free(s);
                return r;
        }
        xfer_begin(rings, n, snap, x, v->dm.pid);
        r = source_start(s);
        window_init(&w);
        while (r == 0) {
                unsigned progress = 0;

                for (unsigned i = 0; i < n && r == 0; i++) {
                        struct bring *b = rings[i];
                        uint16_t h;
                        uint32_t len;
                        int k;

                        while ((k = bring_used(b, &h, &len)) > 0 && r == 0) {
                                got += len;
                                r = bring_post(b, h, rxbuf);
                                if (r == 0)
                                        r = bring_kick(b);
                                progress++;
                        }
                        if (k < 0)
                                r = k;
                }
                if (r < 0)
                        break;
                if (!stopping && window_tick(&w, got)) {
                        stopping = true;
                        atomic_store(&s->stop, true);
                }
                if (stopping && atomic_load(&s->done) && got >= atomic_load(&s->bytes))
                        break;
                if (!progress)
                        r = guest_wait(rings, n, &idle, stopping);
        }
        atomic_store(&s->stop, true);
        end = now_s() + STALL_S;
        while (!atomic_load(&s->done) && now_s() < end)
                sleep_s(1e-3);
        pthread_join(s->th, NULL);
        xfer_end(rings, n, snap, x, v->dm.pid);
        x->mbps = window_mbps(&w);
        free(s);
        return r;
}

/* ---- round trips ------------------------------------------------------------------ */

static int latency_run(struct vmm *v, uint32_t id, unsigned n, double *us)
{
        struct bring *tx = vmm_ring(v, fake_port_vq(id, false), BENCH_RTT_MSG);
        struct bring *rx = vmm_ring(v, fake_port_vq(id, true), FAKE_RX_BUF);
        unsigned warm = n / 10;
        struct echo e = { .fd = v->host_fd[id] };
        double idle = 0;
        int r = 0;

        if (!tx || !rx || e.fd < 0)
                return -EINVAL;
        while (rx->nfree && r == 0)
                r = bring_post(rx, rx->free[--rx->nfree], FAKE_RX_BUF);
        if (r == 0)
                r = bring_kick(rx);
        if (r == 0)
                r = echo_start(&e);
        for (unsigned i = 0; i < n + warm && r == 0; i++) {
                uint64_t t0 = now_ns(), t1 = 0;
                uint32_t got = 0, len;
                uint16_t h;
                int k;

                while ((k = bring_used(tx, &h, &len)) > 0)
                        tx->free[tx->nfree++] = h;
                if (k < 0 || !tx->nfree) {
                        r = k < 0 ? k : -ENOSPC;
                        break;
                }
                r = bring_post(tx, tx->free[--tx->nfree], BENCH_RTT_MSG);
                if (r == 0)
                        r = bring_kick(tx);
                while (r == 0 && got < BENCH_RTT_MSG) {
                        while ((k = bring_used(rx, &h, &len)) > 0 && r == 0) {
                                got += len;
                                if (got >= BENCH_RTT_MSG)
                                        t1 = now_ns();
                                r = bring_post(rx, h, FAKE_RX_BUF);
                                if (r == 0)
                                        r = bring_kick(rx);
                        }
                        if (k < 0)
                                r = k;
                        /* sleep on the reader's interrupt only; tx ones are
                         * counted, as a guest takes them in IRQ context */
                        if (r == 0 && got < BENCH_RTT_MSG)
                                r = guest_wait(&rx, 1, &idle, false);
                }
                if (r == 0 && i >= warm)
                        us[i - warm] = (double)(t1 - t0) / 1e3;
        }
        echo_stop(&e);
        bring_calls(tx);
        qsort(us, n, sizeof(*us), cmp_double);
        return r;
}

/* ---- the groups --------------------------------------------------------------------- */

static void fmt_spread(char *buf, size_t len, const double *v, unsigned n)
{
        double lo = INFINITY, hi = -INFINITY;

        for (unsigned i = 0; i < n; i++) {
                lo = fmin(lo, v[i]);
                hi = fmax(hi, v[i]);
        }
        if (n > 1)
                snprintf(buf, len, "%u runs %.0f..%.0f", n, lo, hi);
        else
                snprintf(buf, len, "1 run");
}

/* The median of v[i] / base[i]: each run against the baseline run next to
 * it, so that slow swings of the machine's load cancel. */
static double paired_ratio(const double *v, const double *base, unsigned n)
{
        double r[64];
        unsigned k = 0;

        for (unsigned i = 0; i < n && k < 64; i++)
                if (isfinite(v[i]) && isfinite(base[i]) && base[i] > 0)
                        r[k++] = v[i] / base[i];
        return k ? median(r, k) : NAN;
}

static double best(const double *v, unsigned n)
{
        double b = NAN;

        for (unsigned i = 0; i < n; i++)
                if (isfinite(v[i]) && !(v[i] <= b))
                        b = v[i];
        return b;
}

static double per_mib(uint64_t count, uint64_t bytes)
{
        return bytes ? (double)count * MIB / (double)bytes : NAN;
}

void run_throughput(struct vmm *v)
{
        enum { NCH = 3, NCASE = 7, MAXR = 32 };
        static const uint32_t chunks[NCH] = { 4 * KIB, 32 * KIB, 64 * KIB };
        /* one port per receive buffer size: posted rx buffers stay posted */
        const uint32_t pg = 100, ph4 = 101, ph64 = 102;
        static const struct {
                const char *id;         /* for --case */
                bool h2g;
                unsigned chunk;         /* index into chunks */
                uint32_t rxbuf;
        } cs[NCASE] = {
                { "g2h4", false, 0, 0 }, { "h2g4", true, 0, 4 * KIB },
                { "g2h32", false, 1, 0 }, { "h2g32", true, 1, 4 * KIB },
                { "g2h64", false, 2, 0 }, { "h2g64", true, 2, 4 * KIB },
                { "h2g64l", true, 2, 64 * KIB },
        };
        bool want[NCASE], any[NCH] = { false };
        double raw[NCH][MAXR], rawcpu[NCH][MAXR];
        double mb[NCASE][MAXR], dcpu[NCASE][MAXR], acpu[NCASE][MAXR];
        struct xfer last[NCASE] = { { 0 } };
        unsigned reps = opt.reps > MAXR ? MAXR : opt.reps;

        if (vmm_open_port(v, pg) < 0 || vmm_open_port(v, ph4) < 0 ||
            vmm_open_port(v, ph64) < 0) {
                case_failed("throughput", "ports", "cannot open the ports");
                return;
        }
        for (unsigned c = 0; c < NCASE; c++) {
                want[c] = case_wanted(cs[c].id);
                any[cs[c].chunk] |= want[c];
        }
        /* baseline and cases interleaved: the machine's noise hits both */
        for (unsigned rep = 0; rep < reps; rep++) {
                for (unsigned ch = 0; ch < NCH; ch++) {
                        if (!any[ch])
                                continue;
                        raw[ch][rep] = raw_pump(chunks[ch], opt.secs, opt.warm,
                                                &rawcpu[ch][rep]);
                        for (unsigned c = 0; c < NCASE; c++) {
                                struct xfer x;
                                uint32_t port = !cs[c].h2g ? pg :
                                                cs[c].rxbuf == 4 * KIB ? ph4 : ph64;
                                int r;

                                if (cs[c].chunk != ch || !want[c])
                                        continue;
                                r = cs[c].h2g ? h2g_run(v, &port, 1, chunks[ch], cs[c].rxbuf,
                                                        false, &x)
                                              : g2h_run(v, &port, 1, chunks[ch], false, &x);
                                if (r < 0)
                                        note("%s %u KiB: %s [%s]", cs[c].h2g ? "h2g" : "g2h",
                                             chunks[ch] / KIB, strerror(-r), fake_error(v->d));
                                mb[c][rep] = r < 0 ? NAN : x.mbps;
                                dcpu[c][rep] = x.daemon_us;
                                acpu[c][rep] = x.daemon_us + x.self_us;
                                last[c] = x;
                        }
                }
        }
        for (unsigned c = 0; c < NCASE; c++) {
                unsigned ch = cs[c].chunk;
                char name[64], base[48], spread[48];
                struct row *row;
                double rc, ac;

                if (!want[c])
                        continue;
                rc = median(rawcpu[ch], reps);
                ac = median(acpu[c], reps);
                snprintf(base, sizeof(base), "raw pump, %u KiB writes", chunks[ch] / KIB);
                if (cs[c].h2g)
                        snprintf(name, sizeof(name), "host->guest, %u KiB writes, %u KiB rx",
                                 chunks[ch] / KIB, cs[c].rxbuf / KIB);
                else
                        snprintf(name, sizeof(name), "guest->host, %u KiB tx buffers",
                                 chunks[ch] / KIB);
                fmt_spread(spread, sizeof(spread), mb[c], reps);
                row = row_add(cs[c].h2g ? "h2g" : "g2h", name, median(mb[c], reps), "MB/s",
                              base, median(raw[ch], reps));
                row->ratio = paired_ratio(mb[c], raw[ch], reps);
                if (chunks[ch] >= 32 * KIB)
                        row_target(row, TGT_RATIO_MIN, 0.9);
                row_extra(row, "%s, best %.0f vs raw best %.0f; CPU us/MiB: daemon %.0f, "
                          "all %.0f, raw %.0f; kicks %.2f, calls %.2f /MiB; stalls %lu; "
                          "last run %.0f MiB", spread, best(mb[c], reps), best(raw[ch], reps),
                          median(dcpu[c], reps), ac, rc,
                          per_mib(last[c].kicks, last[c].bytes),
                          per_mib(last[c].calls, last[c].bytes), last[c].stalls,
                          (double)last[c].bytes / MIB);
                snprintf(name + strlen(name), sizeof(name) - strlen(name), ": CPU");
                row = row_add("cpu", name, ac, "us/MiB", "raw pump: writer + reader", rc);
                row_extra(row, "daemon %.0f us/MiB + bench (guest, host side) %.0f us/MiB",
                          median(dcpu[c], reps), ac - median(dcpu[c], reps));
        }
        for (unsigned ch = 0; ch < NCH; ch++) {
                char name[64], spread[48];
                struct row *row;

                if (!any[ch])
                        continue;
                snprintf(name, sizeof(name), "raw pump, %u KiB writes", chunks[ch] / KIB);
                fmt_spread(spread, sizeof(spread), raw[ch], reps);
                row = row_add("raw", name, median(raw[ch], reps), "MB/s", "", 0);
                row_extra(row, "%s; socketpair, reader takes %u KiB reads; CPU %.0f us/MiB",
                          spread, BENCH_READ_SIZE / KIB, median(rawcpu[ch], reps));
        }
}

void run_latency(struct vmm *v)
{
        const uint32_t pl = 103;
        double *raw = calloc(opt.rtt, sizeof(double));
        double *vs = calloc(opt.rtt, sizeof(double));
        struct row *row;
        int r;

        if (!raw || !vs || vmm_open_port(v, pl) < 0) {
                case_failed("rtt", "round trip", "set-up failed");
                goto out;
        }
        r = raw_pingpong(opt.rtt, raw);
        if (r < 0) {
                case_failed("rtt", "raw ping-pong", "%s", strerror(-r));
                goto out;
        }
        r = latency_run(v, pl, opt.rtt, vs);
        if (r < 0) {
                case_failed("rtt", "round trip", "%s [%s]", strerror(-r), fake_error(v->d));
                goto out;
        }
        row = row_add("rtt", "64 B round trip, p50", percentile(vs, opt.rtt, 50), "us",
                      "raw ping-pong p50", percentile(raw, opt.rtt, 50));
        row_target(row, TGT_RATIO_MAX, 3.0);
        row_extra(row, "%u round trips (+10%% warm-up); guest->host client->guest",
                  opt.rtt);
        row = row_add("rtt", "64 B round trip, p99", percentile(vs, opt.rtt, 99), "us",
                      "raw ping-pong p99", percentile(raw, opt.rtt, 99));
        row_extra(row, "max %.1f us (raw %.1f us)", vs[opt.rtt - 1], raw[opt.rtt - 1]);
out:
        free(raw);
        free(vs);
}

void run_multiport(struct vmm *v)
{
        static const unsigned busy[] = { 1, 8, 64 };
        enum { NB = 3, MAXR = 32 };
        double g[NB][MAXR], h[NB][MAXR], gc[NB][MAXR], hc[NB][MAXR];
        unsigned reps = opt.reps > MAXR ? MAXR : opt.reps;
        uint32_t ids[MAX_BUSY];

        for (unsigned i = 0; i < MAX_BUSY; i++) {
                ids[i] = i + 1;
                if (vmm_open_port(v, ids[i]) < 0) {
                        case_failed("ports", "busy ports", "cannot open port %u", ids[i]);
                        return;
                }
        }
        for (unsigned rep = 0; rep < reps; rep++) {
                for (unsigned b = 0; b < NB; b++) {
                        char id[16];
                        struct xfer x = { 0 };
                        int r = 0;

                        snprintf(id, sizeof(id), "g2hp%u", busy[b]);
                        if (case_wanted(id))
                                r = g2h_run(v, ids, busy[b], 32 * KIB, true, &x);
                        g[b][rep] = r < 0 ? NAN : x.mbps;
                        gc[b][rep] = x.daemon_us;
                        if (r < 0)
                                note("g2h %u ports: %s", busy[b], strerror(-r));
                        snprintf(id, sizeof(id), "h2gp%u", busy[b]);
                        memset(&x, 0, sizeof(x));
                        r = 0;
                        if (case_wanted(id))
                                r = h2g_run(v, ids, busy[b], 32 * KIB, FAKE_RX_BUF, true, &x);
                        h[b][rep] = r < 0 ? NAN : x.mbps;
                        hc[b][rep] = x.daemon_us;
                        if (r < 0)
                                note("h2g %u ports: %s", busy[b], strerror(-r));
                }
        }
        for (unsigned dir = 0; dir < 2; dir++) {
                double (*m)[MAXR] = dir ? h : g;
                double (*mc)[MAXR] = dir ? hc : gc;
                double one = median(m[0], reps);

                for (unsigned b = 0; b < NB; b++) {
                        char name[64], spread[48], id[16];
                        struct row *row;

                        snprintf(id, sizeof(id), "%sp%u", dir ? "h2g" : "g2h", busy[b]);
                        if (!case_wanted(id))
                                continue;
                        snprintf(name, sizeof(name), "%s, %u busy port%s, 32 KiB",
                                 dir ? "host->guest" : "guest->host", busy[b],
                                 busy[b] > 1 ? "s" : "");
                        row = row_add("ports", name, median(m[b], reps), "MB/s",
                                      "1 busy port, same run", one);
                        row->ratio = paired_ratio(m[b], m[0], reps);
                        if (busy[b] == 64)
                                row_target(row, TGT_RATIO_MIN, 0.9);
                        fmt_spread(spread, sizeof(spread), m[b], reps);
                        row_extra(row, "%s; daemon CPU %.0f us/MiB; ports 1..%u "
                                  "(vhost-user reaches only ports < 127: 8-bit ring index)",
                                  spread, median(mc[b], reps), busy[b]);
                }
        }
}

/* Kicks and calls per MiB with EVENT_IDX on (@on) and off (a new daemon). */
void run_notify(struct vmm *on)
{
        struct vmm off;
        struct vmm *vm[2] = { on, &off };
        const uint32_t pg = 104, ph = 105;
        static const char *const what[] = { "g2h 32 KiB", "g2h 4 KiB", "h2g 32 KiB, 4 KiB rx" };
        struct xfer x[2][3];
        int r;

        r = vmm_start(&off, "noevidx", 110, false);
        if (r < 0) {
                case_failed("notify", "EVENT_IDX off", "daemon/guest set-up: %s",
                            strerror(-r));
                vmm_stop(&off);
                return;
        }
        for (unsigned k = 0; k < 2; k++) {
                struct vmm *v = vm[k];

                if (vmm_open_port(v, pg) < 0 || vmm_open_port(v, ph) < 0) {
                        case_failed("notify", "ports", "cannot open");
                        vmm_stop(&off);
                        return;
                }
                r = g2h_run(v, &pg, 1, 32 * KIB, false, &x[k][0]);
                if (r == 0)
                        r = g2h_run(v, &pg, 1, 4 * KIB, false, &x[k][1]);
                if (r == 0)
                        r = h2g_run(v, &ph, 1, 32 * KIB, FAKE_RX_BUF, false, &x[k][2]);
                if (r < 0) {
                        case_failed("notify", k ? "EVENT_IDX off" : "EVENT_IDX on",
                                    "%s [%s]", strerror(-r), fake_error(v->d));
                        vmm_stop(&off);
                        return;
                }
        }
        for (unsigned c = 0; c < 3; c++) {
                for (unsigned k = 0; k < 2; k++) {
                        const struct xfer *t = &x[k][c];
                        double bufs = per_mib(t->bufs, t->bytes);
                        char name[64];
                        struct row *row;

                        snprintf(name, sizeof(name), "%s, EVENT_IDX %s: kicks", what[c],
                                 k ? "off" : "on");
                        row = row_add("notify", name, per_mib(t->kicks, t->bytes), "/MiB",
                                      "buffers/MiB (1 per buffer)", bufs);
                        row_extra(row, "%.0f MB/s; %" PRIu64 " kicks, %" PRIu64
                                  " buffers; %lu stalls of %d ms", t->mbps, t->kicks,
                                  t->bufs, t->stalls, POLL_MS);
                        snprintf(name, sizeof(name), "%s, EVENT_IDX %s: calls", what[c],
                                 k ? "off" : "on");
                        row = row_add("notify", name, per_mib(t->calls, t->bytes), "/MiB",
                                      "buffers/MiB (1 per buffer)", bufs);
                        row_extra(row, "%" PRIu64 " calls over %.1f MiB", t->calls,
                                  (double)t->bytes / MIB);
                }
                {
                        char name[64];
                        struct row *row;

                        snprintf(name, sizeof(name), "%s, EVENT_IDX off: throughput", what[c]);
                        row = row_add("notify", name, x[1][c].mbps, "MB/s",
                                      "EVENT_IDX on, same case", x[0][c].mbps);
                        row_extra(row, "one run each");
                }
        }
        vmm_stop(&off);
}
