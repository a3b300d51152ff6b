/* SPDX-License-Identifier: MIT */
/*
 * The VMM and the guest driver for a spawned daemon.
 *
 * Set-up is the fake driver's (tests/harness) in its remote mode: QEMU's
 * vhost-user sequence (eventfd kicks and calls, REPLY_ACK, 256-entry rings,
 * guest memory in a memfd) and Linux virtio_console's side of the control
 * protocol. The data path is the bench's own, on the same rings: a free
 * list of heads with one buffer each, one descriptor per buffer, a kick
 * decision after every buffer, used_event updated on every reap; that is
 * what Linux does for a writer (virtio_console __send_to_port) and a reader
 * (add_inbuf after each consumed buffer), without the guest's own copy.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define QSIZE 256u
#define GUEST_MEM (2048ull * MIB)

/* ---- rings -------------------------------------------------------------- */

int bring_post(struct bring *r, uint16_t head, uint32_t len)
{
        struct fake_vq *vq = r->vq;
        struct vs_vring_desc *dd = &vq->desc[head];

        if (head >= vq->num || vq->d[head].busy)
                return -EINVAL;
        dd->addr = r->gpa[head];
        dd->len = len;
        dd->flags = r->rx ? VS_VRING_DESC_F_WRITE : 0;
        dd->next = 0;
        vq->d[head].gpa = r->gpa[head];
        vq->d[head].len = len;
        vq->d[head].busy = true;
        vq->avail->ring[vq->avail_idx & (vq->num - 1)] = head;
        /* descriptor and ring entry before the index that publishes them */
        __atomic_store_n(&vq->avail->idx, ++vq->avail_idx, __ATOMIC_RELEASE);
        return 0;
}

/* virtio spec 2.7.10: kick if new_idx passed avail_event since the last kick */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
        return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

int bring_kick(struct bring *r)
{
        struct fake_vq *vq = r->vq;
        uint64_t one = 1;
        bool kick;

        /* the new avail idx before reading what the device asked for */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (r->d->event_idx) {
                uint16_t ev = __atomic_load_n((uint16_t *)&vq->used->ring[vq->num],
                                              __ATOMIC_RELAXED);

                kick = need_event(ev, vq->avail_idx, vq->kicked_idx);
        } else {
                kick = !(__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED) &
                         VS_VRING_USED_F_NO_NOTIFY);
        }
        vq->kicked_idx = vq->avail_idx;
        if (!kick)
                return 0;
        r->kicks++;
        return write(vq->kick, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

int bring_used(struct bring *r, uint16_t *head, uint32_t *len)
{
        struct fake_vq *vq = r->vq;
        struct vs_vring_used_elem e;
        uint16_t idx = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);

        if (idx == vq->last_used)
                return 0;
        if ((uint16_t)(idx - vq->last_used) > vq->num)
                return -EOVERFLOW;
        e = vq->used->ring[vq->last_used & (vq->num - 1)];
        if (e.id >= vq->num || !vq->d[e.id].busy ||
            (r->rx && e.len > vq->d[e.id].len))
                return -EPROTO;
        vq->d[e.id].busy = false;
        vq->last_used++;
        /* Linux: with callbacks on, ask for an interrupt at the next entry.
         * (Callers fence before they sleep: virtio_store_mb's barrier.) */
        if (r->d->event_idx)
                __atomic_store_n(&vq->avail->ring[vq->num], vq->last_used,
                                 __ATOMIC_RELEASE);
        *head = (uint16_t)e.id;
        *len = e.len;
        r->bufs++;
        r->bytes += r->rx ? e.len : vq->d[e.id].len;
        return 1;
}

uint64_t bring_calls(struct bring *r)
{
        uint64_t v;

        if (read(r->vq->call, &v, sizeof(v)) != sizeof(v))
                return 0;
        r->calls += v;
        return v;
}

int bring_call_fd(const struct bring *r)
{
        return r->vq->call;
}

unsigned bring_inflight(const struct bring *r)
{
        return r->vq->num - r->nfree;
}

struct bring *vmm_ring(struct vmm *v, unsigned q, uint32_t buf_len)
{
        struct bring *r = &v->rings[q];
        struct fake_vq *vq = &v->d->vq[q];

        if (q >= v->d->nvqs || !vq->live || vq->num != QSIZE)
                return NULL;
        if (r->gpa && r->buf_len >= buf_len)
                return r;
        /* a new buffer size: only when nothing is in flight */
        if (r->gpa && bring_inflight(r))
                return NULL;
        free(r->gpa);
        free(r->free);
        memset(r, 0, sizeof(*r));
        r->d = v->d;
        r->vq = vq;
        r->q = q;
        r->rx = vq->writable;
        r->buf_len = buf_len;
        r->gpa = calloc(vq->num, sizeof(*r->gpa));
        r->free = calloc(vq->num, sizeof(*r->free));
        if (!r->gpa || !r->free)
                return NULL;
        for (unsigned i = 0; i < vq->num; i++) {
                uint8_t *p;

                r->gpa[i] = fake_alloc(v->d, buf_len, 64);
                p = r->gpa[i] ? fake_gpa(v->d, r->gpa[i], buf_len) : NULL;
                if (!p)
                        return NULL;
                if (!r->rx)
                        memset(p, 'a' + (int)(i % 26), buf_len);
                /* head 0 on top: the first posts go out in order */
                r->free[vq->num - 1 - i] = (uint16_t)i;
        }
        r->nfree = vq->num;
        return r;
}

/* ---- start / stop ------------------------------------------------------- */

static bool ports_ready(const struct fake_driver *d, unsigned nports)
{
        for (unsigned id = 1; id <= nports; id++)
                if (!d->port[id].added || !d->port[id].named)
                        return false;
        return true;
}

/* Service the guest side until @cond holds (bounded by @secs). */
static int service_until(struct vmm *v, bool (*cond)(struct vmm *, uint32_t),
                         uint32_t arg, double secs)
{
        double end = now_s() + secs;

        while (!cond(v, arg)) {
                int r = fake_service(v->d);

                if (r < 0)
                        return r;
                if (now_s() > end)
                        return -ETIMEDOUT;
        }
        return 0;
}

static bool all_ready(struct vmm *v, uint32_t nports)
{
        return ports_ready(v->d, nports);
}

int vmm_start(struct vmm *v, const char *tag, unsigned nports, bool event_idx)
{
        struct vs_device_config dc = { .max_ports = BENCH_VU_PORTS };
        struct fake_driver_cfg cfg = {
                .style = FAKE_STYLE_QEMU,
                .nregions = 1,
                .regions = { { .gpa = 0, .size = GUEST_MEM,
                               .uva = 0x7f3a00000000ull, .mmap_offset = 0 } },
                .num_vqs = 2 * (BENCH_VU_PORTS + 1),
                .queue_size = QSIZE,
                .rx_fill = FAKE_RX_NONE,
                .max_ports = BENCH_VU_PORTS,
                .no_event_idx = !event_idx,
        };
        struct port_req *pr = calloc(nports, sizeof(*pr));
        uint64_t t0;
        int r;

        memset(v, 0, sizeof(*v));
        v->started = true;
        v->dm.pid = -1;
        v->dm.vmm_fd = -1;
        v->max_ports = BENCH_VU_PORTS;
        v->event_idx = event_idx;
        if (!pr || nports >= BENCH_VU_PORTS) {
                free(pr);
                return -EINVAL;
        }
        for (unsigned i = 0; i < nports; i++)
                pr[i].id = i + 1;
        r = daemon_start(&v->dm, tag, BENCH_VU_PORTS, pr, nports);
        free(pr);
        if (r < 0) {
                fprintf(stderr, "vsbench: cannot start %s: %s (log: %s)\n",
                        opt.vserial, strerror(-r), v->dm.log);
                return r;
        }
        v->rings = calloc(2 * (BENCH_VU_PORTS + 1), sizeof(*v->rings));
        v->host_fd = malloc(BENCH_VU_PORTS * sizeof(*v->host_fd));
        if (!v->rings || !v->host_fd)
                return -ENOMEM;
        for (unsigned i = 0; i < BENCH_VU_PORTS; i++)
                v->host_fd[i] = -1;
        r = fake_host_new(&dc, &v->h);
        if (r == 0) {
                r = fake_driver_new_remote(v->h, &cfg, v->dm.vmm_fd, 5000, &v->d);
                v->dm.vmm_fd = -1;      /* the fake's now */
        }
        /* a quiet device for this long is idle (the fake's default, 20 ms,
         * would dominate the probe time) */
        if (r == 0)
                v->d->remote_idle_ms = 2;
        t0 = now_ns();
        if (r == 0)
                r = fake_qemu_realize(v->d);
        if (r == 0)
                r = fake_qemu_start(v->d);
        if (r == 0)
                r = service_until(v, all_ready, nports, 20);
        v->probe_ms = (double)(now_ns() - t0) / 1e6;
        if (r < 0)
                fprintf(stderr, "vsbench: guest set-up failed: %s [%s] (daemon log: %s)\n",
                        strerror(-r), v->d ? fake_error(v->d) : "", v->dm.log);
        else if (v->d->event_idx != event_idx)
                r = -ENOTSUP;
        return r;
}

void vmm_stop(struct vmm *v)
{
        if (!v->started)
                return;
        if (v->host_fd)
                for (unsigned i = 0; i < v->max_ports; i++)
                        if (v->host_fd[i] >= 0)
                                close(v->host_fd[i]);
        if (v->rings) {
                for (unsigned q = 0; q < 2 * (BENCH_VU_PORTS + 1); q++) {
                        free(v->rings[q].gpa);
                        free(v->rings[q].free);
                }
        }
        daemon_stop(&v->dm);
        fake_driver_free(v->d);
        fake_host_free(v->h);
        free(v->rings);
        free(v->host_fd);
        memset(v, 0, sizeof(*v));
}

static bool host_seen(struct vmm *v, uint32_t id)
{
        return v->d->port[id].host_open;
}

int vmm_open_port(struct vmm *v, uint32_t id)
{
        int r;

        if (id == 0 || id >= v->max_ports || !v->d->port[id].added)
                return -EINVAL;
        if (v->host_fd[id] < 0) {
                v->host_fd[id] = daemon_port_connect(&v->dm, id);
                if (v->host_fd[id] < 0)
                        return v->host_fd[id];
        }
        r = service_until(v, host_seen, id, 10);
        if (r == 0 && !v->d->port[id].guest_open)
                r = fake_guest_open(v->d, id, true);
        if (r < 0)
                fprintf(stderr, "vsbench: opening port %u: %s [%s]\n", id,
                        strerror(-r), fake_error(v->d));
        return r;
}
