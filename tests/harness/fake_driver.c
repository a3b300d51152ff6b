/* SPDX-License-Identifier: MIT */
/*
 * The driver-side fake (see fake_driver.h): device-side fixture, guest
 * memory, vhost-user wire I/O, split rings and the guest half of the
 * virtio-console control protocol. The frontends' message sequences are in
 * fake_frontend.c.
 *
 * The fake trusts nothing the backend writes either: every used-ring entry
 * and every reply is checked before it is believed, because the point of
 * the fake is to catch the backend doing something a real guest would
 * choke on.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fake_driver.h"

/* Bounds on every wait: the backend runs in this thread, so these are
 * iteration counts, not time. */
#define PUMP_MAX 10000
#define WAIT_MAX 200
#define SERVICE_MAX 2000

/* ---- errors ------------------------------------------------------------ */

int fake_fail(struct fake_driver *d, int err, const char *fmt, ...)
{
        va_list ap;

        if (d->err)
                return err;
        d->err = err;
        va_start(ap, fmt);
        vsnprintf(d->errmsg, sizeof(d->errmsg), fmt, ap);
        va_end(ap);
        return err;
}

const char *fake_error(const struct fake_driver *d)
{
        return d ? d->errmsg : "";
}

static int grow_append(uint8_t **buf, size_t *len, size_t *cap,
                       const void *src, size_t n)
{
        if (*len + n > *cap) {
                size_t ncap = *cap ? *cap : 4096;
                uint8_t *nb;

                while (ncap < *len + n)
                        ncap *= 2;
                nb = realloc(*buf, ncap);
                if (!nb)
                        return -ENOMEM;
                *buf = nb;
                *cap = ncap;
        }
        memcpy(*buf + *len, src, n);
        *len += n;
        return 0;
}

/* ---- device side --------------------------------------------------------- */

static ssize_t port_have_data(struct vs_port *port, const struct iovec *iov,
                              unsigned iovcnt)
{
        struct fake_port *p = vs_port_opaque(port);
        size_t took = 0;

        p->have_data_calls++;
        for (unsigned i = 0; i < iovcnt && p->take_limit; i++) {
                size_t k = iov[i].iov_len;

                if (k > p->take_limit)
                        k = p->take_limit;
                if (grow_append(&p->in, &p->in_len, &p->in_cap,
                                iov[i].iov_base, k) < 0)
                        return -ENOMEM;
                if (p->take_limit != SIZE_MAX)
                        p->take_limit -= k;
                took += k;
                if (k < iov[i].iov_len)
                        break;
        }
        return (ssize_t)took;
}

static void port_guest_connected(struct vs_port *port, bool connected)
{
        struct fake_port *p = vs_port_opaque(port);

        if (connected)
                p->guest_open_calls++;
        else
                p->guest_close_calls++;
        p->guest_connected = connected;
}

/* Only note it: the host answers from the pump, outside device code, as a
 * daemon's event loop would. */
static void port_guest_ready(struct vs_port *port)
{
        struct fake_port *p = vs_port_opaque(port);

        p->guest_ready_calls++;
        p->want_flush = true;
}

static void port_exit(struct vs_port *port)
{
        struct fake_port *p = vs_port_opaque(port);

        p->port = NULL;
}

static const struct vs_port_ops fake_port_ops = {
        .set_guest_connected = port_guest_connected,
        .guest_ready = port_guest_ready,
        .have_data = port_have_data,
        .exit = port_exit,
};

int fake_host_new(const struct vs_device_config *cfg, struct fake_host **ret)
{
        struct vs_device_config def = { .max_ports = 4 };
        struct fake_host *h = calloc(1, sizeof(*h));
        int r;

        if (!h)
                return -ENOMEM;
        r = vs_epoll_new(&h->ep);
        if (r == 0)
                r = vs_device_new(cfg ? cfg : &def, &h->dev);
        if (r == 0) {
                h->nports = vs_device_max_ports(h->dev);
                if (h->nports < FAKE_MAX_PORTS)
                        h->nports = FAKE_MAX_PORTS;
                h->ports = calloc(h->nports, sizeof(*h->ports));
                if (!h->ports)
                        r = -ENOMEM;
        }
        if (r < 0) {
                fake_host_free(h);
                return r;
        }
        *ret = h;
        return 0;
}

void fake_host_free(struct fake_host *h)
{
        if (!h)
                return;
        vs_vu_free(h->vu);
        vs_device_free(h->dev);
        for (unsigned i = 0; h->ports && i < h->nports; i++) {
                if (!h->ports[i])
                        continue;
                free(h->ports[i]->in);
                free(h->ports[i]->out);
                free(h->ports[i]);
        }
        free(h->ports);
        while (h->dead) {
                struct fake_port *p = h->dead;

                h->dead = p->dead_next;
                free(p->in);
                free(p->out);
                free(p);
        }
        vs_epoll_free(h->ep);
        free(h);
}

struct fake_port *fake_host_add_port(struct fake_host *h, int32_t id,
                                     const char *name, bool console,
                                     int *err)
{
        struct vs_port_config pc = { .id = id, .name = name,
                                     .console = console };
        struct fake_port *p = calloc(1, sizeof(*p));
        int r = p ? 0 : -ENOMEM;

        if (p) {
                p->host = h;
                p->take_limit = SIZE_MAX;
                r = vs_port_add(h->dev, &pc, &fake_port_ops, p, &p->port);
        }
        if (r == 0 && vs_port_id(p->port) >= h->nports) {
                vs_port_remove(p->port);
                r = -ERANGE;
        }
        if (r < 0) {
                free(p);
                if (err)
                        *err = r;
                return NULL;
        }
        p->id = vs_port_id(p->port);
        if (h->ports[p->id]) {
                h->ports[p->id]->dead_next = h->dead;
                h->dead = h->ports[p->id];
        }
        h->ports[p->id] = p;
        return p;
}

/* Offer queued host data; the number of bytes the device took. */
static ssize_t port_flush(struct fake_port *p)
{
        size_t done = 0;

        while (p->port && done < p->out_len) {
                ssize_t n = vs_port_write(p->port, p->out + done,
                                          p->out_len - done);

                if (n < 0)
                        return n;
                if (n == 0)
                        break;
                done += (size_t)n;
        }
        if (done) {
                memmove(p->out, p->out + done, p->out_len - done);
                p->out_len -= done;
        }
        return (ssize_t)done;
}

int fake_port_send(struct fake_port *p, const void *buf, size_t len)
{
        int r = grow_append(&p->out, &p->out_len, &p->out_cap, buf, len);

        if (r < 0)
                return r;
        return (int)(port_flush(p) < 0 ? -EIO : 0);
}

void fake_port_unthrottle(struct fake_port *p, size_t take_limit)
{
        p->take_limit = take_limit;
        if (p->port)
                vs_port_throttle(p->port, false);
}

static int flush_ready_ports(struct fake_host *h)
{
        int moved = 0;

        for (unsigned i = 0; i < h->nports; i++) {
                struct fake_port *p = h->ports[i];
                ssize_t n;

                if (!p || !p->want_flush)
                        continue;
                p->want_flush = false;
                n = port_flush(p);
                if (n < 0)
                        return (int)n;
                moved += n > 0;
        }
        return moved;
}

int fake_host_pump(struct fake_host *h)
{
        int total = 0;

        for (int i = 0; i < PUMP_MAX; i++) {
                int n = vs_epoll_run_once(h->ep, 0);
                int f;

                if (n >= 0 && h->pump_hook) {
                        int k = h->pump_hook(h->pump_opaque);

                        n = k < 0 ? k : n + k;
                }
                if (n < 0)
                        return n;
                f = flush_ready_ports(h);
                if (f < 0)
                        return f;
                if (n == 0 && f == 0)
                        return total;
                total += n + f;
        }
        return -ELOOP;
}

static void host_closed(void *opaque, int err, const char *why)
{
        struct fake_host *h = opaque;

        h->closed_calls++;
        h->closed_err = err;
        snprintf(h->closed_why, sizeof(h->closed_why), "%s",
                 why ? why : "");
}

static void host_rings_short(void *opaque, unsigned have, unsigned need)
{
        struct fake_host *h = opaque;

        h->rings_short_calls++;
        h->rings_have = have;
        h->rings_need = need;
}

/* ---- guest memory -------------------------------------------------------- */

static const struct fake_vu_region *region_of(const struct fake_driver *d,
                                              uint64_t gpa)
{
        for (unsigned i = 0; i < d->cfg.nregions; i++) {
                const struct fake_vu_region *r = &d->cfg.regions[i];

                if (gpa >= r->gpa && gpa - r->gpa < r->size)
                        return r;
        }
        return NULL;
}

void *fake_gpa(struct fake_driver *d, uint64_t gpa, uint64_t len)
{
        const struct fake_vu_region *r = region_of(d, gpa);

        if (!r || len > r->size - (gpa - r->gpa))
                return NULL;
        return d->mem + r->mmap_offset + (gpa - r->gpa);
}

uint64_t fake_gpa_to_uva(const struct fake_driver *d, uint64_t gpa)
{
        const struct fake_vu_region *r = region_of(d, gpa);

        return r ? r->uva + (gpa - r->gpa) : ~0ull;
}

/* Walk [gpa, gpa+len) region by region; @to_guest picks the direction. */
static int mem_copy(struct fake_driver *d, uint64_t gpa, uint8_t *buf,
                    size_t len, bool to_guest)
{
        while (len) {
                const struct fake_vu_region *r = region_of(d, gpa);
                uint64_t n;
                uint8_t *host;

                if (!r)
                        return -EFAULT;
                n = r->size - (gpa - r->gpa);
                if (n > len)
                        n = len;
                host = d->mem + r->mmap_offset + (gpa - r->gpa);
                if (to_guest)
                        memcpy(host, buf, n);
                else
                        memcpy(buf, host, n);
                gpa += n;
                buf += n;
                len -= n;
        }
        return 0;
}

int fake_mem_write(struct fake_driver *d, uint64_t gpa, const void *buf,
                   size_t len)
{
        return mem_copy(d, gpa, (uint8_t *)buf, len, true);
}

int fake_mem_read(struct fake_driver *d, uint64_t gpa, void *buf, size_t len)
{
        return mem_copy(d, gpa, buf, len, false);
}

uint64_t fake_alloc(struct fake_driver *d, uint64_t size, uint64_t align)
{
        uint64_t at = (d->alloc_next + align - 1) & ~(align - 1);

        if (at > d->alloc_end || size > d->alloc_end - at)
                return 0;
        d->alloc_next = at + size;
        return at;
}

static void default_regions(struct fake_driver_cfg *cfg)
{
        struct fake_vu_region *r = &cfg->regions[0];

        cfg->nregions = 1;
        cfg->alloc_region = 0;
        r->size = 128ull << 20;
        if (cfg->style == FAKE_STYLE_UML) {
                /* UML: guest_addr == user_addr == mmap_offset, page aligned */
                r->gpa = r->uva = r->mmap_offset = 0x2000000;
        } else {
                /* QEMU: its own virtual address, distinct from the gpa */
                r->gpa = 0;
                r->uva = 0x7f3a40000000ull;
                r->mmap_offset = 0;
        }
}

static int mem_setup(struct fake_driver *d)
{
        const struct fake_vu_region *a;
        uint64_t end = 0;

        if (!d->cfg.nregions)
                default_regions(&d->cfg);
        if (d->cfg.nregions > VS_MEM_MAX_REGIONS ||
            d->cfg.alloc_region >= d->cfg.nregions)
                return -EINVAL;
        for (unsigned i = 0; i < d->cfg.nregions; i++) {
                const struct fake_vu_region *r = &d->cfg.regions[i];

                if (r->mmap_offset + r->size > end)
                        end = r->mmap_offset + r->size;
        }
        end = (end + 4095) & ~4095ull;
        d->memfd = memfd_create("fake-guest", MFD_CLOEXEC);
        if (d->memfd < 0 || ftruncate(d->memfd, (off_t)end) < 0)
                return -errno;
        d->mem = mmap(NULL, end, PROT_READ | PROT_WRITE, MAP_SHARED,
                      d->memfd, 0);
        if (d->mem == MAP_FAILED) {
                d->mem = NULL;
                return -errno;
        }
        d->mem_size = end;
        a = &d->cfg.regions[d->cfg.alloc_region];
        /* a guard page first, so that gpa 0 is never a valid allocation */
        d->alloc_next = a->gpa + 4096;
        d->alloc_end = a->gpa + a->size;
        return 0;
}

/* ---- driver lifetime ---------------------------------------------------- */

/* The fake's state without a transport: tables, rings, memory. */
static int driver_alloc(struct fake_host *h, const struct fake_driver_cfg *cfg,
                        struct fake_driver **ret)
{
        struct fake_driver *d = calloc(1, sizeof(*d));
        unsigned scale;

        if (!d)
                return -ENOMEM;
        d->cfg = *cfg;
        d->host = h;
        d->sock = d->req = d->memfd = -1;
        d->port_cap = cfg->max_ports > FAKE_MAX_PORTS ? cfg->max_ports
                                                      : FAKE_MAX_PORTS;
        d->vq_cap = 2 * (d->port_cap + 1) > FAKE_MAX_VQS
                  ? 2 * (d->port_cap + 1) : FAKE_MAX_VQS;
        scale = (d->port_cap + FAKE_MAX_PORTS - 1) / FAKE_MAX_PORTS;
        d->log_cap = FAKE_LOG_MAX * scale;
        d->vq = calloc(d->vq_cap, sizeof(*d->vq));
        for (unsigned q = 0; d->vq && q < d->vq_cap; q++) {
                d->vq[q].kick = d->vq[q].call = -1;
                for (unsigned i = 0; i < 4; i++)
                        d->vq[q].call_old[i] = -1;
        }
        d->base = calloc(d->vq_cap, sizeof(*d->base));
        d->port = calloc(d->port_cap, sizeof(*d->port));
        d->log = calloc(d->log_cap, sizeof(*d->log));
        *ret = d;
        if (!d->vq || !d->base || !d->port || !d->log)
                return -ENOMEM;
        d->qsize = cfg->queue_size ? cfg->queue_size
                 : cfg->style == FAKE_STYLE_UML ? 256 : 64;
        return mem_setup(d);
}

int fake_driver_new(struct fake_host *h, const struct fake_driver_cfg *cfg,
                    struct fake_driver **ret)
{
        struct vs_vu_config vc = {
                .loop_ops = &vs_epoll_ops, .loop = h->ep,
                .closed = host_closed, .opaque = h,
                .rings_short = host_rings_short,
        };
        struct fake_driver *d = NULL;
        int sv[2], r;

        r = driver_alloc(h, cfg, &d);
        if (r == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
                                 SOCK_NONBLOCK, 0, sv) < 0)
                r = -errno;
        if (r == 0) {
                d->sock = sv[0];
                r = vs_vu_new(h->dev, sv[1], &vc, &h->vu);
        }
        if (r < 0) {
                fake_driver_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

/* ---- remote backend -------------------------------------------------------- */

static uint64_t mono_ms(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static int poll_one(int fd, short events, unsigned ms)
{
        struct pollfd p = { .fd = fd, .events = events };
        int n;

        do
                n = poll(&p, 1, (int)ms);
        while (n < 0 && errno == EINTR);
        return n;
}

/* Remote: let the other process run a little (as Linux's cpu_relax spin). */
static void remote_nap(void)
{
        struct timespec t = { 0, 20000 };

        nanosleep(&t, NULL);
}

/* Remote: wait up to @ms for a notification or a backend request; 1 if one
 * came, 0 if none. */
static int remote_wait_events(struct fake_driver *d, unsigned ms)
{
        struct pollfd *p = calloc(d->vq_cap + 1, sizeof(*p));
        unsigned n = 0;
        int r;

        if (!p)
                return -ENOMEM;
        for (unsigned q = 0; q < d->num_vqs && q < d->vq_cap; q++)
                if (d->vq[q].call >= 0)
                        p[n++] = (struct pollfd){ .fd = d->vq[q].call, .events = POLLIN };
        if (d->req >= 0)
                p[n++] = (struct pollfd){ .fd = d->req, .events = POLLIN };
        do
                r = poll(p, n, (int)ms);
        while (r < 0 && errno == EINTR);
        free(p);
        return r < 0 ? -errno : r > 0;
}

int fake_driver_new_remote(struct fake_host *h,
                           const struct fake_driver_cfg *cfg, int sock,
                           unsigned timeout_ms, struct fake_driver **ret)
{
        struct fake_driver *d = NULL;
        int r;

        if (sock < 0 || !timeout_ms || h->vu || h->pump_hook) {
                if (sock >= 0)
                        close(sock);
                return -EINVAL;
        }
        r = driver_alloc(h, cfg, &d);
        if (r < 0) {
                fake_driver_free(d);
                close(sock);
                return r;
        }
        d->sock = sock;
        d->remote_ms = timeout_ms;
        d->remote_idle_ms = 20;
        *ret = d;
        return 0;
}

/* ---- in-process transport ------------------------------------------------ */

/* Queue a vs_device_queue_kick(@q) for the next pump (once until then). */
static void fake_inproc_queue(struct fake_driver *d, unsigned q)
{
        if (q >= d->vq_cap || d->ip_pending[q])
                return;
        d->ip_pending[q] = true;
        d->ip_fifo[(d->ip_head + d->ip_len) % d->vq_cap] = q;
        d->ip_len++;
}

static int ip_notify(void *opaque, unsigned q)
{
        struct fake_driver *d = opaque;

        if (q >= d->vq_cap || q >= d->nvqs || !d->vq[q].live)
                return fake_fail(d, -EPROTO, "device notified ring %u, which the guest has not set up",
                                 q);
        d->vq[q].calls++;
        d->vq[q].pending_call = true;
        return 0;
}

static int ip_config_changed(void *opaque)
{
        struct fake_driver *d = opaque;

        d->config_changes++;
        return 0;
}

static int ip_schedule(void *opaque, unsigned q)
{
        struct fake_driver *d = opaque;

        if (q >= d->vq_cap || q >= vs_device_num_queues(d->host->dev))
                return fake_fail(d, -EPROTO, "device scheduled queue %u", q);
        d->ip_scheduled[q]++;
        fake_inproc_queue(d, q);
        return 0;
}

static const struct vs_transport_ops ip_ops = {
        .notify = ip_notify,
        .config_changed = ip_config_changed,
        .schedule = ip_schedule,
};

/* Deliver the kicks queued so far; ones queued meanwhile wait a round. */
static int ip_pump(void *opaque)
{
        struct fake_driver *d = opaque;
        unsigned n = d->ip_len;

        for (unsigned i = 0; i < n; i++) {
                unsigned q = d->ip_fifo[d->ip_head];

                d->ip_head = (d->ip_head + 1) % d->vq_cap;
                d->ip_len--;
                d->ip_pending[q] = false;
                d->ip_kicks[q]++;
                vs_device_queue_kick(d->host->dev, q);
        }
        return (int)n;
}

int fake_driver_new_inproc(struct fake_host *h,
                           const struct fake_driver_cfg *cfg,
                           struct fake_driver **ret)
{
        struct fake_driver *d = NULL;
        int r;

        if (h->vu || h->pump_hook)
                return -EBUSY;
        r = driver_alloc(h, cfg, &d);
        if (r == 0) {
                d->inproc = true;
                d->ip_pending = calloc(d->vq_cap, sizeof(*d->ip_pending));
                d->ip_fifo = calloc(d->vq_cap, sizeof(*d->ip_fifo));
                d->ip_kicks = calloc(d->vq_cap, sizeof(*d->ip_kicks));
                d->ip_scheduled = calloc(d->vq_cap, sizeof(*d->ip_scheduled));
                if (!d->ip_pending || !d->ip_fifo || !d->ip_kicks ||
                    !d->ip_scheduled)
                        r = -ENOMEM;
        }
        if (r < 0) {
                fake_driver_free(d);
                return r;
        }
        h->pump_hook = ip_pump;
        h->pump_opaque = d;
        vs_device_set_transport(h->dev, &ip_ops, d);
        *ret = d;
        return 0;
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void vq_close_fds(struct fake_vq *vq)
{
        close_fd(&vq->kick);
        close_fd(&vq->call);
        for (unsigned i = 0; i < 4; i++)
                close_fd(&vq->call_old[i]);
}

void fake_driver_free(struct fake_driver *d)
{
        if (!d)
                return;
        if (d->inproc && d->host->pump_opaque == d) {
                d->host->pump_hook = NULL;
                d->host->pump_opaque = NULL;
                vs_device_set_transport(d->host->dev, NULL, NULL);
        }
        for (unsigned q = 0; d->vq && q < d->vq_cap; q++) {
                vq_close_fds(&d->vq[q]);
                free(d->vq[q].d);
        }
        for (unsigned i = 0; d->port && i < d->port_cap; i++)
                free(d->port[i].data);
        free(d->vq);
        free(d->base);
        free(d->port);
        free(d->log);
        free(d->ip_pending);
        free(d->ip_fifo);
        free(d->ip_kicks);
        free(d->ip_scheduled);
        close_fd(&d->sock);
        close_fd(&d->req);
        if (d->mem)
                munmap(d->mem, d->mem_size);
        close_fd(&d->memfd);
        free(d);
}

/* ---- vhost-user wire ---------------------------------------------------- */

ssize_t fake_sendmsg(int sock, const void *buf, size_t len, const int *fds,
                     unsigned nfds, int flags)
{
        union {
                char b[CMSG_SPACE(sizeof(int) * FAKE_SEND_MAX_FDS)];
                struct cmsghdr align;
        } cm;
        struct iovec iov = { (void *)buf, len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *c;
        ssize_t n;

        if (nfds > FAKE_SEND_MAX_FDS)
                return -EINVAL;
        if (nfds) {
                memset(&cm, 0, sizeof(cm));
                mh.msg_control = cm.b;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        n = sendmsg(sock, &mh, flags);
        return n < 0 ? -errno : n;
}

int fake_vu_send_bytes(struct fake_driver *d, const void *buf, size_t len,
                       const int *fds, unsigned nfds)
{
        size_t off = 0;

        if (nfds > FAKE_VU_MAX_FDS)
                return -EINVAL;
        for (int tries = 0; off < len && tries < WAIT_MAX; tries++) {
                ssize_t n = fake_sendmsg(d->sock, (const uint8_t *)buf + off,
                                         len - off, fds, nfds,
                                         MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && n != -EAGAIN && n != -EINTR)
                        return (int)n;
                if (n < 0 && d->remote_ms) {
                        /* socket full: the backend reads it in its time */
                        if (poll_one(d->sock, POLLOUT, d->remote_ms) <= 0)
                                return -ETIMEDOUT;
                        continue;
                }
                if (n < 0) {
                        /* socket full: let the backend read */
                        if (fake_host_pump(d->host) < 0)
                                return -EIO;
                        continue;
                }
                off += (size_t)n;
                nfds = 0;       /* fds go with the first byte only */
        }
        return off == len ? 0 : -ETIMEDOUT;
}

int fake_vu_send(struct fake_driver *d, uint32_t req, uint32_t flags,
                 const void *payload, uint32_t size, const int *fds,
                 unsigned nfds)
{
        uint8_t buf[FAKE_VU_HDR + FAKE_VU_MAX_PAYLOAD];
        uint32_t hdr[3] = { req, flags, size };

        if (size > FAKE_VU_MAX_PAYLOAD)
                return -EMSGSIZE;
        memcpy(buf, hdr, sizeof(hdr));
        if (payload)
                memcpy(buf + FAKE_VU_HDR, payload, size);
        else
                memset(buf + FAKE_VU_HDR, 0, size);
        return fake_vu_send_bytes(d, buf, FAKE_VU_HDR + size, fds, nfds);
}

/* Wait until the socket is readable, pumping the backend in between. */
static int wait_readable(struct fake_driver *d)
{
        if (d->remote_ms)
                return poll_one(d->sock, POLLIN, d->remote_ms) > 0 ? 0 : -ETIMEDOUT;
        for (int i = 0; i < WAIT_MAX; i++) {
                struct pollfd p = { .fd = d->sock, .events = POLLIN };
                int n;

                if (poll(&p, 1, 0) > 0)
                        return 0;
                n = fake_host_pump(d->host);
                if (n < 0)
                        return n;
                if (n == 0 && poll(&p, 1, 0) <= 0)
                        return -ETIMEDOUT;
        }
        return -ETIMEDOUT;
}

/* Read exactly @len bytes (the backend may write a reply in pieces). */
static int read_full(struct fake_driver *d, void *buf, size_t len)
{
        size_t got = 0;

        while (got < len) {
                ssize_t n;
                int r = wait_readable(d);

                if (r < 0)
                        return r;
                n = recv(d->sock, (uint8_t *)buf + got, len - got,
                         MSG_DONTWAIT);
                if (n == 0)
                        return -ECONNRESET;
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return -errno;
                if (n > 0)
                        got += (size_t)n;
        }
        return 0;
}

int fake_vu_reply(struct fake_driver *d, uint32_t req, void *payload,
                  uint32_t size)
{
        uint8_t junk[FAKE_VU_MAX_PAYLOAD];
        uint32_t hdr[3];
        int r = read_full(d, hdr, sizeof(hdr));

        if (r < 0 && d->host->closed_calls)
                return fake_fail(d, -ECONNRESET, "no reply to request %u: backend closed (%d: %s)",
                                 req, d->host->closed_err, d->host->closed_why);
        if (r < 0)
                return fake_fail(d, r, "no reply to request %u: %s", req,
                                 strerror(-r));
        if (hdr[0] != req || hdr[1] != (FAKE_VU_VERSION | FAKE_VU_REPLY) ||
            hdr[2] != size) {
                if (hdr[2] <= sizeof(junk))
                        read_full(d, junk, hdr[2]);
                return fake_fail(d, -EPROTO,
                                 "reply to %u: got {req %u flags %#x size %u}, want {%u 0x5 %u}",
                                 req, hdr[0], hdr[1], hdr[2], req, size);
        }
        r = read_full(d, payload, size);
        if (r < 0)
                return fake_fail(d, r, "reply %u payload: %s", req,
                                 strerror(-r));
        return 0;
}

int fake_vu_ack(struct fake_driver *d, uint32_t req)
{
        uint64_t v;
        int r = fake_vu_reply(d, req, &v, sizeof(v));

        if (r < 0)
                return r;
        if (v)
                return fake_fail(d, -EIO, "request %u acked with %llu", req,
                                 (unsigned long long)v);
        return 0;
}

int fake_vu_settle(struct fake_driver *d)
{
        struct pollfd p = { .fd = d->sock, .events = POLLIN };
        uint8_t b;
        int n = fake_host_pump(d->host);

        if (n < 0)
                return fake_fail(d, n, "backend loop: %s", strerror(-n));
        if (d->host->closed_calls)
                return fake_fail(d, -ECONNRESET, "backend closed the connection (%d: %s)",
                                 d->host->closed_err, d->host->closed_why);
        if (poll(&p, 1, 0) <= 0)
                return 0;
        if (recv(d->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
                return fake_fail(d, -ECONNRESET, "backend closed the connection (%s)",
                                 d->host->closed_why);
        return fake_fail(d, -EPROTO, "backend sent bytes nobody asked for");
}

int fake_vu_msg(struct fake_driver *d, uint32_t req, uint32_t flags,
                const void *payload, uint32_t size, const int *fds,
                unsigned nfds)
{
        int r = fake_vu_send(d, req, flags, payload, size, fds, nfds);

        if (r < 0)
                return fake_fail(d, r, "send %u: %s", req, strerror(-r));
        if (flags & FAKE_VU_NEED_REPLY)
                return fake_vu_ack(d, req);
        return fake_vu_settle(d);
}

int fake_vu_get_u64(struct fake_driver *d, uint32_t req, uint64_t *ret)
{
        int r = fake_vu_send(d, req, FAKE_VU_VERSION, NULL, 0, NULL, 0);

        if (r < 0)
                return fake_fail(d, r, "send %u: %s", req, strerror(-r));
        return fake_vu_reply(d, req, ret, sizeof(*ret));
}

int fake_vu_u64(struct fake_driver *d, uint32_t req, uint32_t flags,
                uint64_t v)
{
        return fake_vu_msg(d, req, flags, &v, sizeof(v), NULL, 0);
}

int fake_vu_state(struct fake_driver *d, uint32_t req, uint32_t flags,
                  uint32_t index, uint32_t num)
{
        uint32_t s[2] = { index, num };

        return fake_vu_msg(d, req, flags, s, sizeof(s), NULL, 0);
}

int fake_vu_fd(struct fake_driver *d, uint32_t req, uint32_t flags,
               uint64_t v, int fd)
{
        return fake_vu_msg(d, req, flags, &v, sizeof(v), &fd, fd >= 0);
}

int fake_vu_get_vring_base(struct fake_driver *d, uint32_t index,
                           uint16_t *ret)
{
        uint32_t s[2] = { index, 0 };
        int r = fake_vu_send(d, FAKE_VU_GET_VRING_BASE, FAKE_VU_VERSION, s,
                             sizeof(s), NULL, 0);

        if (r == 0)
                r = fake_vu_reply(d, FAKE_VU_GET_VRING_BASE, s, sizeof(s));
        if (r < 0)
                return r;
        if (s[0] != index || s[1] > 0xffff)
                return fake_fail(d, -EPROTO, "GET_VRING_BASE %u replied {%u, %u}",
                                 index, s[0], s[1]);
        *ret = (uint16_t)s[1];
        return 0;
}

static int get_config(struct fake_driver *d, uint32_t offset, uint32_t size,
                      void *ret, bool check_offset)
{
        uint8_t buf[12 + 256];
        uint32_t *h = (uint32_t *)buf;
        int r;

        if (size > 256)
                return -EINVAL;
        memset(buf, 0, sizeof(buf));
        h[0] = offset;
        h[1] = size;
        r = fake_vu_send(d, FAKE_VU_GET_CONFIG, FAKE_VU_VERSION, buf,
                         12 + size, NULL, 0);
        if (r == 0)
                r = fake_vu_reply(d, FAKE_VU_GET_CONFIG, buf, 12 + size);
        if (r < 0)
                return r;
        if (h[1] != size)
                return fake_fail(d, -EPROTO, "GET_CONFIG reply config size %u, want %u",
                                 h[1], size);
        if (check_offset && h[0] != offset)
                return fake_fail(d, -EPROTO, "GET_CONFIG reply offset %u, want %u",
                                 h[0], offset);
        memcpy(ret, buf + 12, size);
        return 0;
}

int fake_vu_get_config(struct fake_driver *d, uint32_t size, void *ret)
{
        return get_config(d, 0, size, ret, false);
}

int fake_vu_get_config_at(struct fake_driver *d, uint32_t offset,
                          uint32_t size, void *ret)
{
        return get_config(d, offset, size, ret, true);
}

int fake_vu_set_config(struct fake_driver *d, uint32_t offset,
                       const void *buf, uint32_t size)
{
        uint8_t p[12 + 256];
        uint32_t h[3] = { offset, size, 0 };

        if (size > 256)
                return -EINVAL;
        memcpy(p, h, sizeof(h));
        memcpy(p + 12, buf, size);
        return fake_vu_msg(d, FAKE_VU_SET_CONFIG, fake_ack_flags(d, true), p,
                           12 + size, NULL, 0);
}

int fake_vu_set_mem_table(struct fake_driver *d, uint32_t flags)
{
        uint8_t buf[8 + 32 * VS_MEM_MAX_REGIONS];
        int fds[VS_MEM_MAX_REGIONS];
        unsigned n = d->cfg.nregions;
        uint32_t size = 8 + 32 * n;

        memset(buf, 0, sizeof(buf));
        memcpy(buf, &n, 4);
        for (unsigned i = 0; i < n; i++) {
                memcpy(buf + 8 + 32 * i, &d->cfg.regions[i], 32);
                fds[i] = d->memfd;
        }
        /* UML's struct has room for two regions and always sends all 72 */
        if (d->cfg.style == FAKE_STYLE_UML && n <= 2)
                size = 72;
        return fake_vu_msg(d, FAKE_VU_SET_MEM_TABLE, flags, buf, size, fds,
                           n);
}

int fake_vu_wait_closed(struct fake_driver *d)
{
        for (int i = 0; i < WAIT_MAX; i++) {
                if (d->host->closed_calls)
                        return d->host->closed_err;
                if (fake_host_pump(d->host) <= 0 && !d->host->closed_calls)
                        break;
        }
        return d->host->closed_calls ? d->host->closed_err : -ETIMEDOUT;
}

uint32_t fake_ack_flags(const struct fake_driver *d, bool style_acks)
{
        if (style_acks && (d->pf & (1ull << FAKE_PF_REPLY_ACK)))
                return FAKE_VU_VERSION | FAKE_VU_NEED_REPLY;
        return FAKE_VU_VERSION;
}

/* ---- rings ---------------------------------------------------------------- */

int fake_vq_alloc(struct fake_driver *d, unsigned q, uint16_t num,
                  bool writable, uint32_t buf_size)
{
        /* Linux: legacy layout (UML) aligns used to a page, virtio-pci
         * modern to a cache line */
        uint64_t align = d->cfg.style == FAKE_STYLE_UML ? 4096 : 64;
        struct fake_vq *vq = &d->vq[q];
        uint64_t avail_end, total;
        void *p;

        if (q >= d->vq_cap || !num || (num & (num - 1)))
                return -EINVAL;
        avail_end = 16ull * num + 6 + 2ull * num;
        total = ((avail_end + align - 1) & ~(align - 1)) + 6 + 8ull * num;
        free(vq->d);
        memset(&vq->num, 0, offsetof(struct fake_vq, kick));
        vq->d = calloc(num, sizeof(*vq->d));
        vq->desc_gpa = fake_alloc(d, total, 4096);
        p = vq->desc_gpa ? fake_gpa(d, vq->desc_gpa, total) : NULL;
        if (!vq->d || !p)
                return fake_fail(d, -ENOMEM, "no guest memory for ring %u", q);
        memset(p, 0, total);
        vq->num = num;
        vq->avail_gpa = vq->desc_gpa + 16ull * num;
        vq->used_gpa = vq->desc_gpa + ((avail_end + align - 1) & ~(align - 1));
        vq->desc = p;
        vq->avail = fake_gpa(d, vq->avail_gpa, 6 + 2ull * num);
        vq->used = fake_gpa(d, vq->used_gpa, 6 + 8ull * num);
        vq->writable = writable;
        vq->buf_size = buf_size;
        return 0;
}

void fake_vq_release(struct fake_driver *d, unsigned q)
{
        struct fake_vq *vq = &d->vq[q];

        vq_close_fds(vq);
        free(vq->d);
        memset(&vq->num, 0, offsetof(struct fake_vq, kick));
}

static int free_desc(struct fake_vq *vq)
{
        for (unsigned i = 0; i < vq->num; i++)
                if (!vq->d[i].busy)
                        return (int)i;
        return -ENOSPC;
}

static void publish(struct fake_vq *vq, unsigned head, uint64_t gpa,
                    uint32_t len)
{
        struct vs_vring_desc *dd = &vq->desc[head];

        dd->addr = gpa;
        dd->len = len;
        dd->flags = vq->writable ? VS_VRING_DESC_F_WRITE : 0;
        dd->next = 0;
        vq->d[head].gpa = gpa;
        vq->d[head].len = len;
        vq->d[head].busy = true;
        vq->avail->ring[vq->avail_idx % vq->num] = (uint16_t)head;
        /* the descriptor and ring entry must be visible before the index */
        __atomic_store_n(&vq->avail->idx, ++vq->avail_idx, __ATOMIC_RELEASE);
}

int fake_vq_post(struct fake_driver *d, unsigned q, uint64_t gpa,
                 uint32_t len)
{
        struct fake_vq *vq = &d->vq[q];
        int head = vq->num ? free_desc(vq) : -ENODEV;

        if (head < 0)
                return head;
        publish(vq, (unsigned)head, gpa, len);
        return head;
}

int fake_vq_post_data(struct fake_driver *d, unsigned q, const void *data,
                      uint32_t len)
{
        struct fake_vq *vq = &d->vq[q];
        int head = vq->num ? free_desc(vq) : -ENODEV;
        struct fake_desc *fd;
        uint32_t want;

        if (head < 0)
                return head;
        fd = &vq->d[head];
        want = len > vq->buf_size ? len : vq->buf_size;
        if (fd->pool_len < want) {
                fd->pool_gpa = fake_alloc(d, want, 64);
                fd->pool_len = fd->pool_gpa ? want : 0;
                if (!fd->pool_gpa)
                        return fake_fail(d, -ENOMEM, "no guest memory for buffers");
        }
        if (!vq->writable && fake_mem_write(d, fd->pool_gpa, data, len) < 0)
                return -EFAULT;
        publish(vq, (unsigned)head, fd->pool_gpa, vq->writable ? want : len);
        return head;
}

/* virtio spec: kick if new_idx passed avail_event since the last kick */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
        return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

int fake_vq_kick(struct fake_driver *d, unsigned q)
{
        struct fake_vq *vq = &d->vq[q];
        uint64_t one = 1;
        bool kick;

        if ((vq->kick < 0 && !d->inproc) || !vq->num)
                return 0;
        if (d->inproc && !vq->live)
                return 0;       /* no kick path to a ring the device lacks */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (d->event_idx) {
                uint16_t ev = *(volatile uint16_t *)&vq->used->ring[vq->num];

                kick = need_event(ev, vq->avail_idx, vq->kicked_idx);
        } else {
                kick = !(*(volatile uint16_t *)&vq->used->flags &
                         VS_VRING_USED_F_NO_NOTIFY);
        }
        vq->kicked_idx = vq->avail_idx;
        if (kick && d->inproc) {
                fake_inproc_queue(d, q);
                return 0;
        }
        if (kick && write(vq->kick, &one, sizeof(one)) != sizeof(one))
                return fake_fail(d, -errno, "kick %u: %s", q, strerror(errno));
        return 0;
}

int fake_vq_get_used(struct fake_driver *d, unsigned q, uint16_t *head,
                     uint32_t *len)
{
        struct fake_vq *vq = &d->vq[q];
        struct vs_vring_used_elem e;
        uint16_t idx;

        if (!vq->num)
                return 0;
        idx = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
        if (idx == vq->last_used)
                return 0;
        if ((uint16_t)(idx - vq->last_used) > vq->num)
                return fake_fail(d, -EOVERFLOW, "vq %u: used idx %u, we are at %u",
                                 q, idx, vq->last_used);
        e = vq->used->ring[vq->last_used % vq->num];
        if (e.id >= vq->num || !vq->d[e.id].busy)
                return fake_fail(d, -EPROTO, "vq %u: used id %u is not in flight",
                                 q, e.id);
        if (vq->writable && e.len > vq->d[e.id].len)
                return fake_fail(d, -EPROTO, "vq %u: used len %u > buffer %u",
                                 q, e.len, vq->d[e.id].len);
        vq->d[e.id].busy = false;
        vq->last_used++;
        if (d->event_idx)
                __atomic_store_n(&vq->avail->ring[vq->num], vq->last_used,
                                 __ATOMIC_RELEASE);
        *head = (uint16_t)e.id;
        *len = e.len;
        return 1;
}

/* Notifications on one fd: eventfd counter or 8-byte units on a socket. */
static int64_t read_calls(struct fake_driver *d, int fd)
{
        uint8_t buf[4096];
        uint64_t total = 0;

        if (fd < 0)
                return 0;
        if (d->cfg.style == FAKE_STYLE_QEMU) {
                uint64_t v;

                return read(fd, &v, sizeof(v)) == sizeof(v) ? (int64_t)v : 0;
        }
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n <= 0)
                        break;
                total += (uint64_t)n;
        }
        if (total % 8)
                return -EPROTO;
        return (int64_t)(total / 8);
}

uint64_t fake_vq_drain_calls(struct fake_driver *d, unsigned q)
{
        struct fake_vq *vq = &d->vq[q];
        int64_t n;

        for (unsigned i = 0; i < 4; i++)
                if (read_calls(d, vq->call_old[i]) != 0)
                        fake_fail(d, -EPROTO, "vq %u: device signalled a replaced call fd", q);
        n = read_calls(d, vq->call);
        if (n < 0) {
                fake_fail(d, -EPROTO, "vq %u: call fd got a partial 8-byte unit", q);
                return 0;
        }
        vq->calls += (uint64_t)n;
        if (n)
                vq->pending_call = true;
        return (uint64_t)n;
}

/* ---- guest console driver ----------------------------------------------- */

unsigned fake_port_vq(uint32_t id, bool rx)
{
        if (id == 0)
                return rx ? 0 : 1;
        return 2 * id + (rx ? 2 : 3);
}

static bool is_tx(unsigned q)
{
        return q & 1;
}

static void log_ctrl(struct fake_driver *d, uint32_t id, uint16_t ev,
                     uint16_t val, bool from_guest)
{
        if (d->nlog < d->log_cap)
                d->log[d->nlog++] = (struct fake_ctrl){ id, ev, val,
                                                        from_guest };
}

int fake_log_find(const struct fake_driver *d, unsigned from, uint32_t id,
                  uint16_t event, bool from_guest)
{
        for (unsigned i = from; i < d->nlog; i++)
                if (d->log[i].id == id && d->log[i].event == event &&
                    d->log[i].from_guest == from_guest)
                        return (int)i;
        return -1;
}

/* Post @count receive buffers on @q (Linux fill_queue) and kick. */
static int fill_rx(struct fake_driver *d, unsigned q, unsigned count)
{
        for (unsigned i = 0; i < count; i++) {
                int r = fake_vq_post_data(d, q, NULL, FAKE_RX_BUF);

                if (r == -ENOSPC)
                        break;
                if (r < 0)
                        return r;
        }
        return fake_vq_kick(d, q);
}

int fake_rx_fill(struct fake_driver *d, unsigned q, unsigned count)
{
        return fill_rx(d, q, count);
}

static unsigned rx_fill_count(const struct fake_driver *d)
{
        if (d->cfg.rx_fill == FAKE_RX_NONE)
                return 0;
        return d->cfg.rx_fill ? d->cfg.rx_fill : d->qsize;
}

int fake_ctrl_send(struct fake_driver *d, uint32_t id, uint16_t event,
                   uint16_t value)
{
        uint8_t msg[8];
        uint64_t deadline;
        int head, r;

        memcpy(msg, &id, 4);
        memcpy(msg + 4, &event, 2);
        memcpy(msg + 6, &value, 2);
        head = fake_vq_post_data(d, 3, msg, sizeof(msg));
        if (head < 0)
                return fake_fail(d, head, "control tx full");
        log_ctrl(d, id, event, value, true);
        r = fake_vq_kick(d, 3);
        deadline = d->remote_ms ? mono_ms() + d->remote_ms : 0;
        /* Linux spins until the device used the buffer: so do we, bounded */
        for (int i = 0; r == 0 && (d->remote_ms ? mono_ms() < deadline : i < WAIT_MAX); i++) {
                uint16_t h;
                uint32_t len;
                int n;

                while ((n = fake_vq_get_used(d, 3, &h, &len)) > 0)
                        if (h == head)
                                return 0;
                if (n < 0)
                        return n;
                if (d->remote_ms) {
                        remote_nap();
                        continue;
                }
                n = fake_host_pump(d->host);
                if (n < 0)
                        return fake_fail(d, n, "backend loop: %s", strerror(-n));
        }
        return fake_fail(d, -ETIMEDOUT,
                         "control tx {%u, %u, %u} never used: a real guest hangs",
                         id, event, value);
}

int fake_guest_open(struct fake_driver *d, uint32_t id, bool open)
{
        int r;

        d->port[id].guest_open = open;
        r = fake_ctrl_send(d, id, FAKE_C_PORT_OPEN, open);
        return r < 0 ? r : fake_service(d);
}

ssize_t fake_guest_write(struct fake_driver *d, uint32_t id, const void *buf,
                         size_t len)
{
        unsigned q = fake_port_vq(id, false);
        size_t done = 0;

        while (done < len) {
                size_t n = len - done > FAKE_TX_MAX ? FAKE_TX_MAX : len - done;
                int r = fake_vq_post_data(d, q, (const uint8_t *)buf + done,
                                          (uint32_t)n);

                if (r == -ENOSPC)
                        break;
                if (r < 0)
                        return r;
                done += n;
                r = fake_vq_kick(d, q);
                if (r < 0)
                        return r;
        }
        return (ssize_t)done;
}

static int ctrl_port_add(struct fake_driver *d, uint32_t id)
{
        struct fake_dport *p = &d->port[id];
        int r;

        if (p->added)   /* Linux re-sends PORT_READY for a known port */
                return fake_ctrl_send(d, id, FAKE_C_PORT_READY, 1);
        /* Linux add_port() failed: PORT_READY 0, the port does not exist */
        if (id < 64 && (d->cfg.fail_ports >> id & 1))
                return fake_ctrl_send(d, id, FAKE_C_PORT_READY, 0);
        free(p->data);
        memset(p, 0, sizeof(*p));
        p->added = true;
        r = fill_rx(d, fake_port_vq(id, true), rx_fill_count(d));
        if (r < 0)
                return r;
        return fake_ctrl_send(d, id, FAKE_C_PORT_READY, 1);
}

static int ctrl_event(struct fake_driver *d, const uint8_t *m, uint32_t len)
{
        uint32_t id;
        uint16_t ev, val;
        struct fake_dport *p;

        memcpy(&id, m, 4);
        memcpy(&ev, m + 4, 2);
        memcpy(&val, m + 6, 2);
        log_ctrl(d, id, ev, val, false);
        if (id >= d->max_nr_ports || id >= d->port_cap)
                return fake_fail(d, -EPROTO, "control event %u for port %u >= max", ev, id);
        p = &d->port[id];
        if (ev == FAKE_C_PORT_ADD)
                return ctrl_port_add(d, id);
        if (!p->added && d->cfg.lenient_ctrl)
                return 0;
        if (!p->added)
                return fake_fail(d, -EPROTO, "control event %u for port %u before PORT_ADD",
                                 ev, id);
        switch (ev) {
        case FAKE_C_PORT_REMOVE:
                p->added = false;
                p->removed = true;
                return 0;
        case FAKE_C_CONSOLE_PORT:
                if (!val || p->console)
                        return 0;
                /* Linux: hvc bound, the console counts as opened */
                p->console = p->guest_open = true;
                if (d->cfg.no_console_open)
                        return 0;
                return fake_ctrl_send(d, id, FAKE_C_PORT_OPEN, 1);
        case FAKE_C_RESIZE:
                if (len < 12)
                        return fake_fail(d, -EPROTO, "short RESIZE");
                memcpy(&p->cols, m + 8, 2);
                memcpy(&p->rows, m + 10, 2);
                memcpy(p->resize_raw, m + 8, 4);
                p->resizes++;
                return 0;
        case FAKE_C_PORT_OPEN:
                p->host_open = val;
                return 0;
        case FAKE_C_PORT_NAME:
                if (len - 8 > VS_PORT_NAME_MAX)
                        return fake_fail(d, -EPROTO, "PORT_NAME too long");
                memcpy(p->name, m + 8, len - 8);
                p->name[len - 8] = 0;
                p->named = true;
                return 0;
        default:
                return fake_fail(d, -EPROTO, "host sent guest-only event %u", ev);
        }
}

static int handle_used(struct fake_driver *d, unsigned q, uint16_t head,
                       uint32_t len);

static int ctrl_rx(struct fake_driver *d, uint16_t head, uint32_t len)
{
        struct fake_desc *fd = &d->vq[2].d[head];
        uint8_t m[FAKE_RX_BUF];
        int r;

        if (len < 8)
                return fake_fail(d, -EPROTO, "control message of %u bytes", len);
        if (fake_mem_read(d, fd->gpa, m, len) < 0)
                return -EFAULT;
        /* repost first, as Linux does before handling */
        r = fake_vq_post_data(d, 2, NULL, FAKE_RX_BUF);
        if (r < 0)
                return r;
        r = fake_vq_kick(d, 2);
        return r < 0 ? r : ctrl_event(d, m, len);
}

static int port_rx(struct fake_driver *d, unsigned q, uint16_t head,
                   uint32_t len)
{
        uint32_t id = q < 2 ? 0 : (q - 2) / 2;
        struct fake_dport *p = &d->port[id];
        struct fake_desc *fd = &d->vq[q].d[head];
        uint8_t buf[FAKE_RX_BUF];
        int r;

        if (!p->added)
                return fake_fail(d, -EPROTO, "data on port %u before PORT_ADD", id);
        if (len > sizeof(buf) || fake_mem_read(d, fd->gpa, buf, len) < 0)
                return fake_fail(d, -EPROTO, "bad rx len %u", len);
        p->rx_buffers++;
        if (!p->guest_open) {
                /* Linux drops it: a device must not send to a closed port */
                p->discarded += len;
                fake_fail(d, -EPROTO, "%u bytes for port %u, which the guest has not opened",
                          len, id);
        } else if (grow_append(&p->data, &p->len, &p->cap, buf, len) < 0) {
                return -ENOMEM;
        }
        r = fake_vq_post(d, q, fd->gpa, FAKE_RX_BUF);
        return r < 0 ? r : fake_vq_kick(d, q);
}

static int handle_used(struct fake_driver *d, unsigned q, uint16_t head,
                       uint32_t len)
{
        if (q == 2)
                return ctrl_rx(d, head, len);
        if (is_tx(q))
                return 0;       /* Linux ignores the used length of tx */
        return port_rx(d, q, head, len);
}

/* Consume the used ring of @q; the number of entries. */
static int process_used(struct fake_driver *d, unsigned q)
{
        int count = 0;

        for (unsigned i = 0; i < 4 * FAKE_MAX_VQS * 256; i++) {
                uint16_t head;
                uint32_t len;
                int r = fake_vq_get_used(d, q, &head, &len);

                if (r <= 0)
                        return r < 0 ? r : count;
                r = handle_used(d, q, head, len);
                if (r < 0)
                        return r;
                count++;
        }
        return count;
}

static int backend_req_one(struct fake_driver *d)
{
        uint32_t hdr[3];
        uint8_t payload[584];
        ssize_t n = recv(d->req, hdr, sizeof(hdr), MSG_DONTWAIT);

        if (n <= 0)
                return 0;
        if (n != sizeof(hdr) || hdr[2] > sizeof(payload) ||
            (hdr[2] && recv(d->req, payload, hdr[2], MSG_DONTWAIT) !=
                                   (ssize_t)hdr[2]))
                return fake_fail(d, -EPROTO, "bad backend request");
        if ((hdr[1] & ~FAKE_VU_NEED_REPLY) != FAKE_VU_VERSION)
                return fake_fail(d, -EPROTO, "backend request flags %#x", hdr[1]);
        d->backend_msgs++;
        d->last_backend_req = hdr[0];
        if (hdr[1] & FAKE_VU_NEED_REPLY) {
                uint8_t rep[20];
                uint32_t rh[3] = { hdr[0], FAKE_VU_VERSION | FAKE_VU_REPLY, 8 };
                uint64_t v = hdr[0] == 2 || hdr[0] == 4 ? 0 : 1;

                memcpy(rep, rh, 12);
                memcpy(rep + 12, &v, 8);
                if (send(d->req, rep, sizeof(rep), MSG_NOSIGNAL) != sizeof(rep))
                        return fake_fail(d, -EIO, "backend reply send");
        }
        return 1;
}

static int service_once(struct fake_driver *d)
{
        int moved = fake_host_pump(d->host);

        if (moved < 0)
                return fake_fail(d, moved, "backend loop: %s", strerror(-moved));
        while (d->req >= 0 && backend_req_one(d) > 0)
                moved++;
        for (unsigned q = 0; q < d->num_vqs && q < d->vq_cap; q++) {
                fake_vq_drain_calls(d, q);
                if (q >= d->nvqs && d->vq[q].pending_call)
                        fake_fail(d, -EPROTO, "device signalled ring %u, which has no address", q);
        }
        for (unsigned q = 0; d->running && q < d->nvqs; q++) {
                struct fake_vq *vq = &d->vq[q];
                int n;

                /* rx only on an interrupt; tx reclaimed at will, as Linux */
                if (!vq->pending_call && !is_tx(q))
                        continue;
                vq->pending_call = false;
                n = process_used(d, q);
                if (n < 0)
                        return n;
                moved += n;
        }
        return d->err ? d->err : moved;
}

/* At rest, an rx ring with unread used entries lost an interrupt (remote:
 * unless it arrives within remote_ms; then 1, keep servicing). */
static int check_lost_interrupts(struct fake_driver *d)
{
        for (unsigned q = 0; d->running && q < d->nvqs; q++) {
                struct fake_vq *vq = &d->vq[q];

                if (is_tx(q) || !vq->num)
                        continue;
                if (__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) ==
                    vq->last_used)
                        continue;
                /* Remote: the notification may still be on its way. */
                if (d->remote_ms && vq->call >= 0 &&
                    poll_one(vq->call, POLLIN, d->remote_ms) > 0)
                        return 1;
                return fake_fail(d, -EPROTO,
                                 "vq %u: used ring moved without a notification", q);
        }
        return 0;
}

int fake_service(struct fake_driver *d)
{
        for (int i = 0; i < SERVICE_MAX; i++) {
                int n = service_once(d);

                if (n < 0)
                        return n;
                if (n == 0 && d->remote_ms) {
                        /* the backend runs on its own: give it a moment */
                        n = remote_wait_events(d, d->remote_idle_ms);
                        if (n < 0)
                                return n;
                }
                if (n == 0) {
                        n = check_lost_interrupts(d);
                        if (n <= 0)
                                return n;
                }
        }
        return fake_fail(d, -ELOOP, "the device never went idle");
}

/* Linux without MULTIPORT: port 0 is added at probe and is the console,
 * open from the start; there are no control messages. */
static int single_port_start(struct fake_driver *d)
{
        struct fake_dport *p = &d->port[0];
        int r;

        d->running = true;
        free(p->data);
        memset(p, 0, sizeof(*p));
        p->added = p->console = p->guest_open = true;
        r = fill_rx(d, 0, rx_fill_count(d));
        return r < 0 ? r : fake_service(d);
}

int fake_console_start(struct fake_driver *d)
{
        unsigned ctrl = d->cfg.ctrl_rx_fill == FAKE_RX_NONE ? 0
                      : d->cfg.ctrl_rx_fill ? d->cfg.ctrl_rx_fill : d->qsize;
        int r;

        if (d->cfg.single_port)
                return single_port_start(d);
        d->running = true;
        r = fill_rx(d, 2, ctrl);
        if (r == 0)
                r = fake_ctrl_send(d, FAKE_BAD_ID, FAKE_C_DEVICE_READY, 1);
        return r < 0 ? r : fake_service(d);
}

void fake_console_forget(struct fake_driver *d)
{
        for (unsigned i = 0; i < d->port_cap; i++) {
                free(d->port[i].data);
                memset(&d->port[i], 0, sizeof(d->port[i]));
        }
        d->running = false;
}
