/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the device model (src/lib/serial): the control protocol and the
 * port data path, driven by a hostile guest through real rings.
 *
 * The harness is the driver side of a MULTIPORT device with a few ports:
 * guest memory is one malloc()ed region (ASan bounds it), every queue is
 * set up at a fixed layout, and the input is a list of driver and host
 * actions: control-tx chains whose bytes come from the input (split over
 * 1..4 descriptors, direct or through an indirect table), port tx chains,
 * receive buffers posted on control-rx and port rx queues, kicks, host
 * writes (held back and retried on guest_ready, as the daemon does), reads
 * from a pipe, port hot-plug, throttling and misbehaving host sides, config
 * access, resets, rings stopped and restarted (QEMU's stop/cont) and guest
 * memory replaced while chains are held.
 *
 * Besides memory safety it checks what the guest can check: the device
 * never claims to have written more into a receive buffer than the buffer
 * holds, and never returns a head the driver did not make available.
 * Resource oracles (the device's counters): no call into the device reads
 * more than VS_VQ_CALL_DESCS descriptors, the input's total is at most
 * that times the calls the harness made, and what the device leaves to
 * its schedule op converges: the scheduled runs stop within a bound.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "rings.h"
#include "virtq/virtq.h"
#include "vserial/vserial.h"

#define RAM_SIZE 0x20000ull
#define ITABLE(q, s) (0x10000ull + 0x1000 * (q) + 0x100 * (s))
#define ALL_FEATURES ((1ull << VS_CONSOLE_F_SIZE) | (1ull << VS_CONSOLE_F_MULTIPORT) | \
                      (1ull << VS_F_EVENT_IDX) | (1ull << VS_F_INDIRECT_DESC) |        \
                      (1ull << VS_F_VERSION_1))


struct dq {
        uint16_t avail_idx;             /* driver's next avail index */
        uint16_t used_seen;             /* used entries already checked */
        unsigned next_slot;
        uint32_t posted[QSIZE];         /* writable bytes posted per head */
        bool outstanding[QSIZE];
};

#define PENDING_MAX 4096u

struct fx {
        uint8_t *ram;
        struct vs_mem_map map;
        struct vs_device *dev;
        struct vs_port *ports[MAX_PORTS];
        /* have_data: 0 all, 1 none, 2 half, 3 an error, 4 more than offered */
        uint8_t mode[MAX_PORTS];
        bool throttled[MAX_PORTS];
        uint8_t pending[MAX_PORTS][PENDING_MAX];    /* host data waiting for room */
        size_t npending[MAX_PORTS];
        unsigned events;
        uint64_t features;
        struct dq q[NVQS];
        struct fz_sched sched;
        uint64_t calls;                 /* calls into the device, for the budget */
        bool timer_armed;               /* the pacing timer (vs_device_set_timer) */
        uint8_t timer_fail;             /* arm() fails when this many more are asked: 0 never */
};

static uint8_t *ram(struct fx *f, uint64_t off)
{
        return f->ram + off;
}

/* ---- transport and ports ---------------------------------------------- */

static ssize_t have_data(struct vs_port *port, const struct iovec *iov,
                         unsigned iovcnt)
{
        struct fx *f = vs_port_opaque(port);
        static uint8_t sink[SLOT * 16];
        size_t total = 0;

        for (unsigned i = 0; i < iovcnt; i++) {
                FZ_CHECK(iov[i].iov_len <= sizeof(sink));
                memcpy(sink, iov[i].iov_base, iov[i].iov_len);
                total += iov[i].iov_len;
        }
        if (fz_verbose())
                fprintf(stderr, "port %u: guest wrote %zu bytes\n", vs_port_id(port), total);
        switch (f->mode[vs_port_id(port)]) {
        case 1: return 0;
        case 2: return total / 2;
        case 3: return -EIO;
        case 4: return total + 100;     /* a confused host side */
        default: return total;
        }
}

/* Host data to the guest, as the daemon's backends send it: what does not
 * fit now is kept and offered again when the guest is ready. */
static void flush_pending(struct fx *f, struct vs_port *port)
{
        unsigned id = vs_port_id(port);
        ssize_t n;

        if (f->npending[id] == 0)
                return;
        f->calls++;
        n = vs_port_write(port, f->pending[id], f->npending[id]);
        if (n <= 0)
                return;
        FZ_CHECK((size_t)n <= f->npending[id]);
        memmove(f->pending[id], f->pending[id] + n, f->npending[id] - n);
        f->npending[id] -= n;
}

static void guest_ready(struct vs_port *port)
{
        flush_pending(vs_port_opaque(port), port);
}

static void set_guest_connected(struct vs_port *port, bool connected)
{
        FZ_CHECK(vs_port_guest_connected(port) == connected);
}

static void on_event(void *opaque, enum vs_device_event ev)
{
        struct fx *f = opaque;

        (void)ev;
        f->events++;
}

static const struct vs_port_ops port_ops = {
        .have_data = have_data,
        .guest_ready = guest_ready,
        .set_guest_connected = set_guest_connected,
};

/* @id -1: the device picks (a console gets 0 if free). */
static void add_port(struct fx *f, int id, bool console)
{
        static const char *const names[] = { "", "org.fuzz.one", "", "org.fuzz.three" };
        struct vs_port_config pc = { .id = id, .name = id > 0 ? names[id] : "",
                                     .console = console };
        struct vs_port *port;

        f->calls++;
        if (vs_port_add(f->dev, &pc, &port_ops, f, &port) < 0)
                return;
        FZ_CHECK(vs_port_id(port) < MAX_PORTS && !f->ports[vs_port_id(port)]);
        f->ports[vs_port_id(port)] = port;
        f->npending[vs_port_id(port)] = 0;
}

/* ---- the driver side --------------------------------------------------- */

/* Every queue configured at the fixed layout, as a driver probe does. */
static void setup_queues(struct fx *f)
{
        memset(f->q, 0, sizeof(f->q));
        fz_rings_setup(f->dev, f->ram);
}

static void put_desc(struct fx *f, uint64_t at, uint64_t gpa, uint32_t len,
                     uint16_t flags, uint16_t next)
{
        struct vs_vring_desc d = {
                .addr = htole64(gpa), .len = htole32(len),
                .flags = htole16(flags), .next = htole16(next),
        };

        memcpy(ram(f, at), &d, sizeof(d));
}

static void publish(struct fx *f, unsigned q, uint16_t head)
{
        struct dq *d = &f->q[q];
        uint16_t le = htole16(head);

        memcpy(ram(f, RING(q) + 0x100 + 4 + 2 * (d->avail_idx % QSIZE)), &le, 2);
        d->avail_idx++;
        le = htole16(d->avail_idx);
        __atomic_store_n((uint16_t *)ram(f, RING(q) + 0x100 + 2), le, __ATOMIC_RELEASE);
}

/* What the guest checks in the used ring: known heads, lengths in range. */
static void check_used(struct fx *f, unsigned q)
{
        struct dq *d = &f->q[q];
        uint16_t idx = fz_used_idx(f->ram, q);

        for (unsigned n = 0; d->used_seen != idx && n < QSIZE; n++, d->used_seen++) {
                uint32_t id, len;

                fz_used_entry(f->ram, q, d->used_seen, &id, &len);
                FZ_CHECK(id < QSIZE);
                FZ_CHECK(len <= d->posted[id]);
                if (fz_verbose() && q == 2 && len >= 8) {
                        uint8_t *m = ram(f, BUF(q, id));

                        fprintf(stderr, "guest got control: id %u event %u value %u (%u bytes)\n",
                                m[0] | m[1] << 8 | m[2] << 16 | (unsigned)m[3] << 24,
                                m[4] | m[5] << 8, m[6] | m[7] << 8, len);
                } else if (fz_verbose() && len) {
                        fprintf(stderr, "guest got %u bytes on queue %u\n", len, q);
                }
                d->outstanding[id] = false;
        }
}

/*
 * One chain with @len bytes split over @nseg descriptors, all readable
 * (@write false) or all writable, in the head's buffer slot; through an
 * indirect table when @indirect. Returns the head, or -1 if the ring is
 * full.
 */
static int build_chain(struct fx *f, unsigned q, const uint8_t *data,
                       size_t len, unsigned nseg, bool write, bool indirect)
{
        struct dq *d = &f->q[q];
        uint16_t used = le16toh(*(uint16_t *)ram(f, RING(q) + 0x200 + 2));
        uint16_t flags = write ? VS_VRING_DESC_F_WRITE : 0;
        uint16_t head;
        uint64_t buf, table;
        size_t off = 0;

        /* Judge what came back before its head is reused and its size forgotten. */
        check_used(f, q);
        /* A driver never has more chains out than the ring holds. */
        if ((uint16_t)(d->avail_idx - used) >= QSIZE)
                return -1;
        head = d->next_slot++ % QSIZE;
        buf = BUF(q, head);
        table = ITABLE(q, head);
        if (data)
                memcpy(ram(f, buf), data, len);
        if (nseg > len)
                nseg = len ? len : 1;
        for (unsigned i = 0; i < nseg; i++) {
                size_t n = i + 1 == nseg ? len - off : len / nseg;
                uint16_t fl = flags | (i + 1 < nseg ? VS_VRING_DESC_F_NEXT : 0);

                if (indirect)
                        put_desc(f, table + 16 * i, RAM_GPA + buf + off, n, fl, i + 1);
                else    /* a chain inside the ring: heads i, i+1, ... (mod size) */
                        put_desc(f, RING(q) + 16 * ((head + i) % QSIZE),
                                 RAM_GPA + buf + off, n, fl, (head + i + 1) % QSIZE);
                off += n;
        }
        if (indirect)
                put_desc(f, RING(q) + 16 * head, RAM_GPA + table, 16 * nseg,
                         VS_VRING_DESC_F_INDIRECT, 0);
        /* Direct chains used nseg ring slots: skip the borrowed ones. */
        if (!indirect)
                d->next_slot += nseg - 1;
        d->posted[head] = write ? len : 0;
        d->outstanding[head] = true;
        publish(f, q, head);
        return head;
}

/* Run what the device asked to run again, up to @rounds passes; true if
 * nothing is left. */
static bool run_scheduled(struct fx *f, unsigned rounds)
{
        for (unsigned round = 0; round < rounds; round++) {
                bool any = false;

                for (unsigned i = 0; i < NVQS; i++) {
                        if (!f->sched.scheduled[i])
                                continue;
                        f->sched.scheduled[i] = false;
                        any = true;
                        f->calls++;
                        vs_device_queue_kick(f->dev, i);
                }
                if (!any)
                        return true;
        }
        for (unsigned i = 0; i < NVQS; i++)
                if (f->sched.scheduled[i])
                        return false;
        return true;
}

/* The pacing timer: armed and cancelled at the device's word, and
 * failing once if the input says so (the device then stops pacing). */
static int timer_arm(void *opaque, uint64_t usec)
{
        struct fx *f = opaque;

        FZ_CHECK(usec <= 1000000);
        if (f->timer_fail && --f->timer_fail == 0)
                return -EIO;
        f->timer_armed = usec != 0;
        return 0;
}

/* The period ended: the timer runs if it was armed (a bounded round). */
static void timer_expires(struct fx *f)
{
        if (!f->timer_armed)
                return;
        f->timer_armed = false;
        f->calls++;
        vs_device_timer(f->dev);
        run_scheduled(f, 4);
        for (unsigned i = 0; i < NVQS; i++)
                check_used(f, i);
}

static void kick(struct fx *f, unsigned q)
{
        f->calls++;
        vs_device_queue_kick(f->dev, q);
        /* The device asked to be run again: do it, a bounded number of times. */
        run_scheduled(f, 4);
        for (unsigned i = 0; i < NVQS; i++)
                check_used(f, i);
}

/* The resource oracles, after every action. */
static void check_costs(struct fx *f)
{
        struct vs_queue_stats st;

        vs_device_get_stats(f->dev, &st);
        FZ_CHECK(st.max_call_descs <= VS_VQ_CALL_DESCS);
        FZ_CHECK(st.max_chain_descs <= VS_VQ_MAX_CHAIN);
        FZ_CHECK(st.descs <= f->calls * VS_VQ_CALL_DESCS);
}

/* ---- actions -------------------------------------------------------------- */

enum {
        A_CTRL_TX,      /* u8 shape, u8 len, bytes */
        A_PORT_TX,      /* u8 port, u8 shape, u16 len, bytes */
        A_POST_RX,      /* u8 queue, u8 count, u8 size */
        A_HOST_WRITE,   /* u8 port, u16 len, bytes */
        A_HOST,         /* u8 what, u8 port, ... */
        A_KICK,         /* u8 queue */
        A_RESET,        /* u8 features */
        A_CONFIG,       /* u8 offset, u8 len, u8 write */
        A_CTRL_MSG,     /* u32 id, u16 event, u16 value: one well-formed message */
        A_STOP_START,   /* u8 queue: GET_VRING_BASE, then set up again (QEMU stop/cont) */
        A_REMAP,        /* the same memory again (SET_MEM_TABLE): chains are parked */
        A_COUNT
        /* and every 8th action, the pacing timer expires (if armed): no
         * input byte of its own, so the corpus keeps its meaning */
};

/* shape: bits 0-1 descriptors - 1, bit 2 indirect (if negotiated). */
static void tx_chain(struct fx *f, unsigned q, uint8_t shape, const uint8_t *p,
                     size_t len)
{
        bool indirect = (shape & 4) && (f->features & (1ull << VS_F_INDIRECT_DESC));

        if (len > 4 * SLOT - 1)
                len = 4 * SLOT - 1;
        build_chain(f, q, p, len, (shape & 3) + 1, false, indirect);
        kick(f, q);
}

static void act_ctrl_tx(struct fx *f, struct fz *in)
{
        uint8_t shape = fz_u8(in);
        size_t len = fz_u8(in);
        const uint8_t *p = fz_take(in, &len);

        tx_chain(f, 3, shape, p, len);
}

static void act_ctrl_msg(struct fx *f, struct fz *in)
{
        uint8_t msg[8];
        uint32_t id = htole32(fz_u32(in));
        uint16_t ev = htole16(fz_u16(in)), val = htole16(fz_u16(in));

        memcpy(msg, &id, 4);
        memcpy(msg + 4, &ev, 2);
        memcpy(msg + 6, &val, 2);
        tx_chain(f, 3, 0, msg, sizeof(msg));
}

static unsigned port_txq(unsigned id) { return id == 0 ? 1 : 2 * id + 3; }

static void act_port_tx(struct fx *f, struct fz *in)
{
        unsigned id = fz_u8(in) % MAX_PORTS;
        uint8_t shape = fz_u8(in);
        size_t len = fz_u16(in);
        const uint8_t *p = fz_take(in, &len);

        tx_chain(f, port_txq(id), shape, p, len);
}

static void act_post_rx(struct fx *f, struct fz *in)
{
        static const unsigned rxqs[] = { 0, 2, 4, 6, 8 };
        unsigned q = rxqs[fz_u8(in) % 5];
        unsigned count = fz_u8(in) % (QSIZE + 1);
        size_t size = fz_u8(in) % SLOT + 1;

        for (unsigned i = 0; i < count; i++)
                build_chain(f, q, NULL, size, 1, true, false);
        kick(f, q);
}

static void act_host_write(struct fx *f, struct fz *in)
{
        unsigned id = fz_u8(in) % MAX_PORTS;
        size_t len = fz_u16(in);
        const uint8_t *p = fz_take(in, &len);

        if (f->ports[id]) {
                if (len > PENDING_MAX - f->npending[id])
                        len = PENDING_MAX - f->npending[id];
                memcpy(f->pending[id] + f->npending[id], p, len);
                f->npending[id] += len;
                flush_pending(f, f->ports[id]);
        }
        for (unsigned i = 0; i < NVQS; i++)
                check_used(f, i);
}

static void act_host(struct fx *f, struct fz *in)
{
        uint8_t what = fz_u8(in);
        unsigned id = fz_u8(in) % MAX_PORTS;
        struct vs_port *port = f->ports[id];

        if (!port) {
                add_port(f, what & 1 ? -1 : (int)id, id == 0 || (what & 2));
                return;
        }
        f->calls++;
        switch (what % 7) {
        case 0:
                vs_port_set_host_connected(port, !vs_port_host_connected(port));
                break;
        case 1:
                f->throttled[id] = !f->throttled[id];
                vs_port_throttle(port, f->throttled[id]);
                break;
        case 2:
                vs_port_remove(port);
                f->ports[id] = NULL;
                break;
        case 3:
                f->mode[id] = fz_u8(in) % 5;
                break;
        case 4: {
                uint16_t cols = fz_u16(in);

                vs_port_resize(port, cols, fz_u16(in));
                break;
        }
        case 5:
                vs_port_guest_room(port);
                break;
        case 6:
                fz_recv_pipe(port, in);
                break;
        }
        for (unsigned i = 0; i < NVQS; i++)
                check_used(f, i);
}

/* Features from the input (sometimes bits the device refuses). */
static void act_reset(struct fx *f, uint8_t bits)
{
        uint64_t want = 0;

        if (bits & 1) want |= 1ull << VS_CONSOLE_F_SIZE;
        if (!(bits & 2)) want |= 1ull << VS_CONSOLE_F_MULTIPORT;
        if (bits & 4) want |= 1ull << VS_F_EVENT_IDX;
        if (bits & 8) want |= 1ull << VS_F_INDIRECT_DESC;
        if (!(bits & 16)) want |= 1ull << VS_F_VERSION_1;
        if (bits & 32) want |= 1ull << 40;      /* never offered */
        f->calls += 1 + NVQS;           /* the reset, every ring's start */
        vs_device_reset(f->dev);
        if (vs_device_set_features(f->dev, want) == 0)
                f->features = want;
        else
                f->features = 0;
        setup_queues(f);
}

static void act_config(struct fx *f, struct fz *in)
{
        uint8_t buf[32] = { 0 };
        uint32_t off = fz_u8(in) % 16, len = fz_u8(in) % 16;

        f->calls++;
        if (fz_u8(in) & 1)
                vs_device_config_write(f->dev, off, buf, len);
        else
                vs_device_config_read(f->dev, off, buf, len);
}

/* What QEMU does on stop and cont: the ring restarts where it stopped. */
static void act_stop_start(struct fx *f, unsigned q)
{
        int base;

        check_used(f, q);
        f->calls += 2;                  /* set_base, enable */
        base = vs_device_queue_get_base(f->dev, q);
        FZ_CHECK(base >= 0 && base <= UINT16_MAX);
        vs_device_queue_set_base(f->dev, q, base);
        vs_device_queue_enable(f->dev, q, true);
        /* The used index restarts at the base too. */
        f->q[q].used_seen = le16toh(*(uint16_t *)ram(f, RING(q) + 0x200 + 2));
        kick(f, q);
}

static void run_action(struct fx *f, struct fz *in)
{
        switch (fz_u8(in) % A_COUNT) {
        case A_CTRL_TX: act_ctrl_tx(f, in); break;
        case A_PORT_TX: act_port_tx(f, in); break;
        case A_POST_RX: act_post_rx(f, in); break;
        case A_HOST_WRITE: act_host_write(f, in); break;
        case A_HOST: act_host(f, in); break;
        case A_KICK: kick(f, fz_u8(in) % NVQS); break;
        case A_RESET: act_reset(f, fz_u8(in)); break;
        case A_CONFIG: act_config(f, in); break;
        case A_CTRL_MSG: act_ctrl_msg(f, in); break;
        case A_STOP_START: act_stop_start(f, fz_u8(in) % NVQS); break;
        case A_REMAP: vs_device_set_memory(f->dev, &f->map, 1); break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct vs_device_config dc = { .max_ports = MAX_PORTS, .cols = 80, .rows = 25 };
        struct fz in = { data, size };
        struct fx *f = calloc(1, sizeof(*f));
        unsigned n = 0;
        uint8_t first;

        if (!f)
                return 0;
        f->ram = calloc(1, RAM_SIZE);
        first = fz_u8(&in);
        dc.resize_order = first & 1;
        if (!f->ram || vs_device_new(&dc, &f->dev) < 0)
                goto out;
        f->map = (struct vs_mem_map){ .gpa = RAM_GPA, .size = RAM_SIZE, .uva = RAM_GPA,
                                      .host = f->ram };
        vs_device_set_transport(f->dev, &fz_transport, &f->sched);
        f->timer_fail = (first >> 1) % 8;
        vs_device_set_timer(f->dev, timer_arm, f);
        vs_device_set_event_cb(f->dev, on_event, f);
        vs_device_set_memory(f->dev, &f->map, 1);
        for (unsigned id = 0; id < MAX_PORTS; id++)
                if (id != 2)    /* a hole in the port table */
                        add_port(f, id, id == 0);
        act_reset(f, fz_u8(&in));
        while (!fz_done(&in) && n++ < 4096) {
                run_action(f, &in);
                if (n % 8 == 0)
                        timer_expires(f);
                check_costs(f);
        }
        /* Nothing loops: what is left to scheduled runs is done within a
         * bound (a ring of 16 longest chains takes 4 runs). */
        FZ_CHECK(run_scheduled(f, 4096));
        /* With the guest and host quiet, pacing stops within three periods
         * (an unfinished batch, the fill it allows, a held notification). */
        for (int i = 0; i < 3; i++)
                timer_expires(f);
        FZ_CHECK(!f->timer_armed);
        check_costs(f);
out:
        vs_device_free(f->dev);
        free(f->ram);
        free(f);
        return 0;
}
