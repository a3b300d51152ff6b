/* SPDX-License-Identifier: MIT */
/*
 * The two frontends' vhost-user message sequences, replayed exactly as
 * /work/shared/docs/guest-harness.md (UML, virtio_uml.c 6.1.176) and
 * qemu-frontend.md (QEMU 10.2) record them: order, flags (NEED_REPLY only
 * where that frontend sets it), payload sizes and the kind of fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_driver.h"

#define BIT(n) (1ull << (n))

/* What Linux acks: the console bits it knows, the ring bits, bit 30. */
static int negotiate(struct fake_driver *d)
{
        uint64_t want = BIT(VS_CONSOLE_F_SIZE) | BIT(VS_CONSOLE_F_MULTIPORT) |
                        BIT(VS_F_INDIRECT_DESC) | BIT(VS_F_EVENT_IDX) |
                        BIT(VS_F_VERSION_1) | BIT(FAKE_F_ACCESS_PLATFORM) |
                        BIT(FAKE_F_RING_PACKED) | BIT(36) |
                        BIT(FAKE_F_PROTOCOL_FEATURES);

        if (d->cfg.single_port)
                want &= ~BIT(VS_CONSOLE_F_MULTIPORT);
        if (d->cfg.no_event_idx)
                want &= ~BIT(VS_F_EVENT_IDX);
        d->features = d->dev_features & want;
        if (d->features & (BIT(FAKE_F_ACCESS_PLATFORM) | BIT(FAKE_F_RING_PACKED)))
                return fake_fail(d, -ENOTSUP,
                                 "device offers %#llx: a guest would use packed rings/IOMMU",
                                 (unsigned long long)d->features);
        d->event_idx = d->features & BIT(VS_F_EVENT_IDX);
        return 0;
}

/* Without MULTIPORT Linux reads no max_nr_ports: one port, two queues. */
static void single_port_queues(struct fake_driver *d)
{
        d->max_nr_ports = 1;
        d->nvqs = 2;
}

/* max_nr_ports from @cfg, checked as virtio_console's probe does. */
static int check_max_ports(struct fake_driver *d, const uint8_t *cfg)
{
        memcpy(&d->max_nr_ports, cfg + 4, 4);
        if (!d->max_nr_ports || d->max_nr_ports > 0x8000)
                return fake_fail(d, -EINVAL, "Invalidate max_nr_ports %u",
                                 d->max_nr_ports);
        if (d->max_nr_ports > d->port_cap)
                return fake_fail(d, -ERANGE, "max_nr_ports %u > fake limit",
                                 d->max_nr_ports);
        d->nvqs = 2 * (d->max_nr_ports + 1);
        if (d->cfg.single_port)
                single_port_queues(d);
        return 0;
}

/* max_nr_ports from config, checked as virtio_console's probe does. */
static int read_max_ports(struct fake_driver *d, uint32_t size)
{
        uint8_t cfg[12];
        int r = fake_vu_get_config(d, size, cfg);

        return r < 0 ? r : check_max_ports(d, cfg);
}

static int alloc_rings(struct fake_driver *d)
{
        for (unsigned q = 0; q < d->nvqs; q++) {
                bool rx = !(q & 1);
                int r = fake_vq_alloc(d, q, d->qsize, rx,
                                      rx ? FAKE_RX_BUF
                                         : q == 3 ? 8 : FAKE_TX_MAX);

                if (r < 0)
                        return r;
        }
        /* control tx has no callback: Linux sets NO_INTERRUPT on it */
        if (d->nvqs > 3)
                d->vq[3].avail->flags = VS_VRING_AVAIL_F_NO_INTERRUPT;
        return 0;
}

/* Replace the current call fd; the old one must stay silent from now on. */
static void retire_call(struct fake_driver *d, unsigned q)
{
        struct fake_vq *vq = &d->vq[q];

        fake_vq_drain_calls(d, q);
        if (vq->call < 0)
                return;
        if (vq->call_old[3] >= 0)
                close(vq->call_old[3]);
        memmove(&vq->call_old[1], &vq->call_old[0], 3 * sizeof(int));
        vq->call_old[0] = vq->call;
        vq->call = -1;
}

static int set_addr(struct fake_driver *d, unsigned q, bool uva)
{
        struct fake_vq *vq = &d->vq[q];
        struct fake_vu_vring_addr a = {
                .index = q,
                .desc = uva ? fake_gpa_to_uva(d, vq->desc_gpa) : vq->desc_gpa,
                .used = uva ? fake_gpa_to_uva(d, vq->used_gpa) : vq->used_gpa,
                .avail = uva ? fake_gpa_to_uva(d, vq->avail_gpa) : vq->avail_gpa,
                /* UML: ~0; QEMU: the gpa of the used ring */
                .log = uva ? vq->used_gpa : ~0ull,
        };

        return fake_vu_msg(d, FAKE_VU_SET_VRING_ADDR, FAKE_VU_VERSION |
                           (uva ? 0 : fake_ack_flags(d, true)), &a,
                           sizeof(a), NULL, 0);
}

/* ---- UML ---------------------------------------------------------------- */

/* The backend channel: a socketpair, its other end handed over. */
static int backend_req(struct fake_driver *d)
{
        int sv[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        d->req = sv[0];
        /* no payload, just the fd */
        r = fake_vu_msg(d, FAKE_VU_SET_BACKEND_REQ_FD, fake_ack_flags(d, true),
                        NULL, 0, &sv[1], 1);
        close(sv[1]);
        return r;
}

int fake_uml_boot(struct fake_driver *d)
{
        int r = fake_vu_msg(d, FAKE_VU_SET_OWNER, FAKE_VU_VERSION, NULL, 0,
                            NULL, 0);

        if (r == 0)
                r = fake_vu_get_u64(d, FAKE_VU_GET_FEATURES, &d->dev_features);
        if (r < 0 || !(d->dev_features & BIT(FAKE_F_PROTOCOL_FEATURES)))
                return r;
        r = fake_vu_get_u64(d, FAKE_VU_GET_PROTOCOL_FEATURES, &d->offered_pf);
        if (r < 0)
                return r;
        /* UML sets its copy before sending, so this one already asks for
         * an ack when REPLY_ACK is in the offer */
        d->pf = d->offered_pf & (d->cfg.pf_mask ? d->cfg.pf_mask
                                                : FAKE_UML_PF_MASK);
        r = fake_vu_u64(d, FAKE_VU_SET_PROTOCOL_FEATURES,
                        fake_ack_flags(d, true), d->pf);
        if (r == 0 && (d->pf & BIT(FAKE_PF_BACKEND_REQ)))
                r = backend_req(d);
        return r;
}

static int uml_setup_vq(struct fake_driver *d, unsigned q)
{
        uint32_t ack = fake_ack_flags(d, true);
        int sv[2], r;

        /* the call fd is a socketpair end, not an eventfd */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        d->vq[q].call = sv[0];
        r = fake_vu_fd(d, FAKE_VU_SET_VRING_CALL, ack, q, sv[1]);
        close(sv[1]);
        if (r == 0)
                r = fake_vu_state(d, FAKE_VU_SET_VRING_NUM, ack, q, d->qsize);
        if (r == 0)
                r = fake_vu_state(d, FAKE_VU_SET_VRING_BASE, ack, q, 0);
        return r < 0 ? r : set_addr(d, q, false);
}

static int uml_start_vq(struct fake_driver *d, unsigned q)
{
        uint32_t ack = fake_ack_flags(d, true);
        int r;

        /* UML's kick fd is a blocking eventfd */
        d->vq[q].kick = eventfd(0, EFD_CLOEXEC);
        if (d->vq[q].kick < 0)
                return -errno;
        r = fake_vu_fd(d, FAKE_VU_SET_VRING_KICK, ack, q, d->vq[q].kick);
        if (r == 0)
                r = fake_vu_state(d, FAKE_VU_SET_VRING_ENABLE, ack, q, 1);
        d->vq[q].live = r == 0;
        return r;
}

int fake_uml_probe(struct fake_driver *d)
{
        uint32_t ack;
        int r = negotiate(d);

        ack = fake_ack_flags(d, true);
        if (r == 0)
                r = fake_vu_u64(d, FAKE_VU_SET_FEATURES, ack, d->features);
        /* one request per field read: max_nr_ports ends at byte 8 (not
         * read at all without MULTIPORT) */
        if (r == 0 && d->cfg.single_port)
                single_port_queues(d);
        else if (r == 0)
                r = read_max_ports(d, 8);
        if (r == 0 && d->nvqs > 64)
                r = fake_fail(d, -EINVAL, "UML supports at most 64 vqs");
        d->num_vqs = d->nvqs;
        if (r == 0)
                r = fake_vu_set_mem_table(d, ack);
        if (r == 0)
                r = alloc_rings(d);
        for (unsigned q = 0; r == 0 && q < d->nvqs; q++)
                r = uml_setup_vq(d, q);
        for (unsigned q = 0; r == 0 && q < d->nvqs; q++)
                r = uml_start_vq(d, q);
        return r < 0 ? r : fake_console_start(d);
}

int fake_uml_remove(struct fake_driver *d)
{
        uint64_t features;
        int r = 0;

        /* reverse order, then GET_FEATURES as a barrier */
        for (unsigned q = d->nvqs; r == 0 && q-- > 0;) {
                r = fake_vu_state(d, FAKE_VU_SET_VRING_ENABLE,
                                  fake_ack_flags(d, true), q, 0);
                d->vq[q].live = false;
        }
        if (r == 0)
                r = fake_vu_get_u64(d, FAKE_VU_GET_FEATURES, &features);
        fake_console_forget(d);
        for (unsigned q = 0; q < d->nvqs; q++)
                fake_vq_release(d, q);
        return r;
}

/* ---- QEMU --------------------------------------------------------------- */

static int qemu_eventfd(void)
{
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        return fd < 0 ? -errno : fd;
}

static int qemu_call(struct fake_driver *d, unsigned q)
{
        int fd = qemu_eventfd();

        if (fd < 0)
                return fd;
        retire_call(d, q);
        d->vq[q].call = fd;
        return fake_vu_fd(d, FAKE_VU_SET_VRING_CALL, fake_ack_flags(d, true),
                          q, fd);
}

static int qemu_err(struct fake_driver *d, unsigned q)
{
        int fd = qemu_eventfd();
        int r;

        if (fd < 0)
                return fd;
        r = fake_vu_fd(d, FAKE_VU_SET_VRING_ERR, fake_ack_flags(d, true), q,
                       fd);
        close(fd);      /* QEMU only reads it in debug builds */
        return r;
}

static int qemu_negotiate_protocol(struct fake_driver *d)
{
        int r = fake_vu_get_u64(d, FAKE_VU_GET_PROTOCOL_FEATURES,
                                &d->offered_pf);
        uint64_t v;

        if (r < 0)
                return r;
        d->pf = d->offered_pf & (d->cfg.pf_mask ? d->cfg.pf_mask
                                                : FAKE_QEMU_PF_MASK);
        if (!(d->pf & BIT(FAKE_PF_CONFIG)))
                return fake_fail(d, -ENOTSUP, "QEMU needs PF_CONFIG");
        r = fake_vu_u64(d, FAKE_VU_SET_PROTOCOL_FEATURES, FAKE_VU_VERSION,
                        d->pf);
        if (r == 0 && (d->pf & BIT(FAKE_PF_MQ)))
                r = fake_vu_get_u64(d, FAKE_VU_GET_QUEUE_NUM, &d->queue_num);
        if (r == 0 && (d->pf & BIT(FAKE_PF_MEM_SLOTS)))
                r = fake_vu_get_u64(d, FAKE_VU_GET_MAX_MEM_SLOTS, &v);
        return r;
}

/* QEMU sets the channel up only if the backend offered it. */
static int qemu_backend_req(struct fake_driver *d)
{
        if (!(d->pf & BIT(FAKE_PF_BACKEND_REQ)))
                return 0;
        return backend_req(d);
}

int fake_qemu_realize(struct fake_driver *d)
{
        uint64_t f;
        int r = fake_vu_get_u64(d, FAKE_VU_GET_FEATURES, &d->dev_features);

        if (r < 0)
                return r;
        if (!(d->dev_features & BIT(FAKE_F_PROTOCOL_FEATURES)) ||
            !(d->dev_features & BIT(VS_F_VERSION_1)))
                return fake_fail(d, -ENOTSUP, "QEMU needs bit 30 and VERSION_1");
        r = qemu_negotiate_protocol(d);
        if (r == 0)
                r = qemu_backend_req(d);
        if (r == 0)
                r = fake_vu_msg(d, FAKE_VU_SET_OWNER, FAKE_VU_VERSION, NULL,
                                0, NULL, 0);
        if (r == 0)
                r = fake_vu_get_u64(d, FAKE_VU_GET_FEATURES, &f);
        d->num_vqs = d->cfg.num_vqs ? d->cfg.num_vqs
                                    : vs_device_num_queues(d->host->dev);
        if (d->num_vqs > d->vq_cap)
                return fake_fail(d, -ERANGE, "num_vqs %u > fake limit", d->num_vqs);
        for (unsigned q = 0; r == 0 && q < d->num_vqs; q++) {
                r = qemu_call(d, q);
                if (r == 0)
                        r = qemu_err(d, q);
        }
        return r;
}

static int qemu_mem(struct fake_driver *d)
{
        uint32_t ack = fake_ack_flags(d, true);

        if (!(d->pf & BIT(FAKE_PF_MEM_SLOTS)))
                return fake_vu_set_mem_table(d, ack);
        /* CONFIGURE_MEM_SLOTS: one ADD_MEM_REG {u64 pad, region} each */
        for (unsigned i = 0; i < d->cfg.nregions; i++) {
                uint8_t p[40] = { 0 };
                int r;

                memcpy(p + 8, &d->cfg.regions[i], 32);
                r = fake_vu_msg(d, FAKE_VU_ADD_MEM_REG, ack, p, sizeof(p),
                                &d->memfd, 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int qemu_features(struct fake_driver *d)
{
        uint64_t st;
        int r = fake_vu_u64(d, FAKE_VU_SET_FEATURES, FAKE_VU_VERSION,
                            d->features);

        if (r == 0 && (d->pf & BIT(FAKE_PF_STATUS))) {
                r = fake_vu_get_u64(d, FAKE_VU_GET_STATUS, &st);
                if (r == 0)
                        r = fake_vu_u64(d, FAKE_VU_SET_STATUS,
                                        FAKE_VU_VERSION, 0x8);
        }
        return r < 0 ? r : qemu_mem(d);
}

static int qemu_ring(struct fake_driver *d, unsigned q, uint16_t base)
{
        struct fake_vq *vq = &d->vq[q];
        int r = fake_vu_state(d, FAKE_VU_SET_VRING_NUM, FAKE_VU_VERSION, q,
                              d->qsize);

        if (r == 0)
                r = fake_vu_state(d, FAKE_VU_SET_VRING_BASE, FAKE_VU_VERSION,
                                  q, base);
        if (r == 0)
                r = set_addr(d, q, true);
        if (r < 0)
                return r;
        if (vq->kick >= 0)
                close(vq->kick);
        vq->kick = qemu_eventfd();
        if (vq->kick < 0)
                return vq->kick;
        r = fake_vu_fd(d, FAKE_VU_SET_VRING_KICK, fake_ack_flags(d, true), q,
                       vq->kick);
        return r < 0 ? r : qemu_call(d, q);
}

/* The part of a start after config and features: rings on, new calls. */
static int qemu_rings(struct fake_driver *d, bool resume)
{
        int r = 0;

        for (unsigned q = 0; r == 0 && q < d->nvqs; q++)
                r = qemu_ring(d, q, resume ? d->base[q] : 0);
        /* every ring is enabled, also the extra ones without an address */
        for (unsigned q = 0; r == 0 && q < d->num_vqs; q++)
                r = fake_vu_state(d, FAKE_VU_SET_VRING_ENABLE,
                                  fake_ack_flags(d, true), q, 1);
        /* and QEMU sends a second, new call fd for every ring */
        for (unsigned q = 0; r == 0 && q < d->num_vqs; q++)
                r = qemu_call(d, q);
        for (unsigned q = 0; q < d->nvqs; q++)
                d->vq[q].live = r == 0;
        return r;
}

int fake_qemu_start(struct fake_driver *d)
{
        /* GET_CONFIG comes first, at probe time, covering the struct */
        int r = read_max_ports(d, 12);

        if (r == 0 && d->nvqs > d->num_vqs)
                r = fake_fail(d, -EINVAL, "Error -22 initializing vqs");
        if (r == 0)
                r = negotiate(d);
        if (r == 0)
                r = alloc_rings(d);
        if (r == 0)
                r = qemu_features(d);
        if (r == 0)
                r = qemu_rings(d, false);
        return r < 0 ? r : fake_console_start(d);
}

int fake_qemu_stop(struct fake_driver *d)
{
        int r = 0;

        /* the guest is paused from here on: it touches nothing */
        r = fake_service(d);
        d->running = false;
        for (unsigned q = 0; r == 0 && q < d->num_vqs; q++) {
                r = fake_vu_state(d, FAKE_VU_SET_VRING_ENABLE,
                                  fake_ack_flags(d, true), q, 0);
                d->vq[q].live = false;
        }
        for (unsigned q = 0; r == 0 && q < d->num_vqs; q++)
                r = fake_vu_get_vring_base(d, q, &d->base[q]);
        return r;
}

int fake_qemu_cont(struct fake_driver *d)
{
        int r = qemu_features(d);

        if (r == 0)
                r = qemu_rings(d, true);
        d->running = r == 0;
        return r < 0 ? r : fake_service(d);
}

int fake_qemu_reset(struct fake_driver *d)
{
        int r = fake_qemu_stop(d);

        fake_console_forget(d);
        return r < 0 ? r : fake_qemu_start(d);
}

/* ---- in-process ---------------------------------------------------------- */

int fake_inproc_probe(struct fake_driver *d)
{
        struct vs_device *dev = d->host->dev;
        struct vs_mem_map map[VS_MEM_MAX_REGIONS];
        uint8_t cfg[12];
        int r;

        if (!d->inproc)
                return -EINVAL;
        d->dev_features = vs_device_features(dev);
        r = negotiate(d);
        if (r == 0 && (r = vs_device_set_features(dev, d->features)) < 0)
                fake_fail(d, r, "set_features %#llx: %d",
                          (unsigned long long)d->features, r);
        if (r == 0 && d->cfg.single_port) {
                single_port_queues(d);
        } else if (r == 0) {
                r = vs_device_config_read(dev, 0, cfg, sizeof(cfg));
                if (r < 0)
                        fake_fail(d, r, "config read: %d", r);
                else
                        r = check_max_ports(d, cfg);
        }
        if (r < 0)
                return r;
        if (d->nvqs > d->vq_cap)
                return fake_fail(d, -ERANGE, "%u vqs > fake limit", d->nvqs);
        d->num_vqs = d->nvqs;
        for (unsigned i = 0; i < d->cfg.nregions; i++) {
                const struct fake_vu_region *g = &d->cfg.regions[i];

                map[i] = (struct vs_mem_map){ .gpa = g->gpa, .size = g->size,
                                              .uva = g->uva,
                                              .host = d->mem + g->mmap_offset };
        }
        r = vs_device_set_memory(dev, map, d->cfg.nregions);
        if (r < 0)
                return fake_fail(d, r, "set_memory: %d", r);
        r = alloc_rings(d);
        for (unsigned q = 0; r == 0 && q < d->nvqs; q++) {
                struct fake_vq *vq = &d->vq[q];

                r = vs_device_queue_set_num(dev, q, vq->num);
                if (r == 0)
                        r = vs_device_queue_set_addr(dev, q, vq->desc_gpa,
                                                     vq->avail_gpa,
                                                     vq->used_gpa, false);
                if (r == 0)
                        r = vs_device_queue_set_base(dev, q, 0);
                vq->live = r == 0;
                if (r == 0)
                        r = vs_device_queue_enable(dev, q, true);
                if (r < 0)
                        return fake_fail(d, r, "ring %u set-up: %d", q, r);
        }
        return r < 0 ? r : fake_console_start(d);
}

int fake_inproc_remove(struct fake_driver *d, bool device_gone)
{
        int r = 0;

        for (unsigned q = d->nvqs; !device_gone && q-- > 0;) {
                int e = vs_device_queue_enable(d->host->dev, q, false);

                if (e < 0 && r == 0)
                        r = fake_fail(d, e, "disable ring %u: %d", q, e);
        }
        for (unsigned q = 0; q < d->nvqs; q++) {
                d->vq[q].live = false;
                fake_vq_release(d, q);
        }
        /* kicks not delivered yet die with the rings */
        for (unsigned q = 0; q < d->vq_cap; q++)
                d->ip_pending[q] = false;
        d->ip_len = 0;
        fake_console_forget(d);
        return r;
}
