/* SPDX-License-Identifier: MIT */
/*
 * Device model internals shared by serial.c (ports, data path, transport
 * entry points) and control.c (the control queue protocol).
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "mem/mem.h"
#include "virtq/virtq.h"
#include "vserial/vserial.h"

/* Control events (VIRTIO 1.2, 5.3.6.2) */
enum {
        VS_CTRL_DEVICE_READY = 0,
        VS_CTRL_PORT_ADD = 1,
        VS_CTRL_PORT_REMOVE = 2,
        VS_CTRL_PORT_READY = 3,
        VS_CTRL_CONSOLE_PORT = 4,
        VS_CTRL_RESIZE = 5,
        VS_CTRL_PORT_OPEN = 6,
        VS_CTRL_PORT_NAME = 7,
};

/*
 * The header of a control message (VIRTIO 1.2, 5.3.6.2, struct
 * virtio_console_control): the wire layout, held in host byte order. On the
 * wire the fields are little-endian, and a PORT_NAME's name or a RESIZE's
 * size follows. control.c encodes and decodes it.
 */
struct vs_ctrl_hdr {
        uint32_t id;
        uint16_t event;
        uint16_t value;
};

#define VS_CTRL_HDR_LEN 8u
_Static_assert(sizeof(struct vs_ctrl_hdr) == VS_CTRL_HDR_LEN, "no padding: it is the wire layout");
/* The longest payload after the header: a port name. */
#define VS_CTRL_EXTRA_MAX VS_PORT_NAME_MAX
#define VS_CTRL_RXQ 2u
#define VS_CTRL_TXQ 3u
/* Host->guest receive buffers gathered into one readv(). */
#define VS_RX_BATCH 64u
#define VS_RX_IOV_MAX 1024u
/* Times one call looks again at a ring that just read as empty after
 * asking for kicks, before it leaves the rest to a scheduled run. */
#define VS_EMPTY_RECHECKS 2u

/* A control message waiting for a control-rx buffer. */
struct vs_ctrl_msg {
        struct vs_ctrl_msg *next;
        struct vs_ctrl_hdr hdr;
        uint32_t extra_len;
        uint8_t extra[];        /* the payload after the header, as sent */
};

struct vs_port {
        struct vs_device *dev;
        uint32_t id;
        bool console;
        uint16_t cols, rows;    /* console size, 0 = unknown */
        char name[VS_PORT_NAME_MAX + 1];
        const struct vs_port_ops *ops;
        void *opaque;

        bool guest_ready;       /* the guest acked PORT_ADD with PORT_READY 1 */
        bool guest_connected;   /* the guest has the port open */
        bool host_connected;
        bool throttled;
        bool want_guest_ready;  /* a write came back short: tell when to retry */

        /* A guest->host chain the host side took part of: it went back to
         * the ring, and the offset applies when that head is popped again
         * (no chain is held between calls, so ring stops and memory
         * changes need no care). */
        bool resume_valid;
        uint16_t resume_head;
        uint64_t resume_off;

        /* Pacing (pace.c). */
        uint16_t rx_posted;     /* most receive buffers seen posted at once */
        bool rx_batched;        /* waiting for a batch of receive buffers */
        bool rx_skip;           /* waits are for one buffer until a kick */
        bool rx_in_timeout;     /* rx_timeout() is filling what was posted */
        uint8_t rx_timeouts;    /* batches the timer ended in a row */
        bool tx_window;         /* a transmit notification went out this
                                 * timer period: later ones wait */
        bool tx_held;           /* one waits for the timer */
        bool tx_backlog;        /* throttled since the last notification:
                                 * the guest may be waiting for room */

        struct vs_port_stats stats;
};

/* Guest->host chains gathered for one have_data call (one writev()). */
#define VS_TX_BATCH 64u
#define VS_TX_BYTES (256u * 1024)
#define VS_TX_IOV_MAX 1024u

_Static_assert(VS_RX_IOV_MAX >= VS_VQ_MAX_IOV, "a whole chain fits an rx batch");
_Static_assert(VS_VQ_CALL_DESCS >= VS_VQ_MAX_CHAIN, "a call can take a chain");

struct vs_tx {
        bool busy;              /* a have_data op is running on it */
        unsigned chains, iovcnt;
        uint64_t bytes;
        uint16_t head[VS_TX_BATCH];
        uint64_t off[VS_TX_BATCH];      /* where each chain's offer starts */
        uint64_t len[VS_TX_BATCH];      /* bytes offered from each chain */
        struct iovec iov[VS_TX_IOV_MAX];
        struct vs_vq_elem elem;         /* pop scratch */
};
_Static_assert(VS_TX_IOV_MAX >= VS_VQ_MAX_IOV, "a whole chain fits a tx batch");

/*
 * Work accounting. A round is one call into the device from outside (a
 * kick or schedule from the transport, any vs_port_*() or vs_device_*()
 * call from the embedder), with whatever nested calls its callbacks make;
 * see virtq.h for the budget it has.
 */
struct vs_round {
        unsigned depth;         /* nesting of calls into the device */
        uint64_t id;            /* number of the current outermost call, from 1 */
        uint32_t descs;         /* descriptors read in it, all queues */
        uint64_t bytes;         /* bytes of the chains popped in it */
};

/* Pacing state (pace.c). */
struct vs_pace {
        int (*arm)(void *opaque, uint64_t usec);
        void *opaque;
        bool armed;
        unsigned users;         /* rx_batched + tx_window flags set, all ports */
        struct vs_pace_stats st;
};

/* The pacing timer's period: how long a held transmit notification or an
 * unfinished receive batch waits at most. */
#define VS_PACE_USEC 500u
/* Receive buffers per kick at most (16 of Linux's 4 KiB buffers: one
 * 64 KiB read), and the share of the most buffers seen posted at once (a
 * quarter: the guest keeps the rest). */
#define VS_RX_KICK_BATCH 16u
#define VS_RX_KICK_SHARE 4u

/* Counters of one queue, kept across resets for the device's life. */
struct vs_qwork {
        struct vs_queue_stats st;
        uint64_t sched_round;   /* the round that last asked to run it again */
};

struct vs_device {
        uint32_t max_ports;
        uint16_t cols, rows;    /* default console size */
        enum vs_resize_order resize_order;
        uint64_t features;      /* negotiated */
        bool driver_ready;      /* DEVICE_READY 1 seen since the last reset */
        /* Where GET_VRING_BASE stopped the control-rx ring: a SET_VRING_BASE
         * elsewhere means a new driver (a reset), not a resume (stop/cont). */
        bool ctrl_stop_valid;
        uint16_t ctrl_stop_base;

        struct vs_port **ports; /* max_ports slots */
        unsigned nvqs;
        struct vs_vq *vqs;
        struct vs_qwork *work;  /* nvqs entries */
        struct vs_round round;
        uint32_t max_round_descs;
        struct vs_pace pace;
        struct vs_mem mem;

        const struct vs_transport_ops *tops;
        void *topaque;
        void (*event_fn)(void *opaque, enum vs_device_event ev);
        void *event_opaque;

        /* Control messages waiting for control-rx buffers (bounded). */
        struct vs_ctrl_msg *ctrl_head, *ctrl_tail;
        unsigned ctrl_len;
        unsigned ctrl_max;

        /*
         * Scratch for popping, so that no path puts a 16 KiB element
         * (VS_VQ_MAX_IOV iovecs) on the stack. The rule for reusing it: it
         * holds the chain of the last vs__pop() only, so whoever pops into
         * it takes what it needs (head, lengths, iovecs) before the next
         * pop, and keeps no pointer into it past its own function. Safe
         * because nothing between a pop and that use runs a port op or
         * anything else that could pop. A path that keeps chains across
         * calls has its own element (struct vs_tx's).
         */
        struct vs_vq_elem scratch;
        uint16_t rx_heads[VS_RX_BATCH];
        uint32_t rx_room[VS_RX_BATCH];
        struct iovec rx_iov[VS_RX_IOV_MAX];
        struct vs_tx tx;
};

/* Queue numbers of a port (VIRTIO 1.2, 5.3.2). */
static inline unsigned vs__port_rxq(uint32_t id) { return id == 0 ? 0 : 2 * id + 2; }
static inline unsigned vs__port_txq(uint32_t id) { return id == 0 ? 1 : 2 * id + 3; }

bool vs__multiport(const struct vs_device *dev);
bool vs__notify(struct vs_device *dev, struct vs_vq *vq, unsigned q);
void vs__schedule(struct vs_device *dev, unsigned q);
void vs__count_pop(struct vs_device *dev, unsigned q,
                   const struct vs_vq_elem *e, int r, bool was_broken);

/*
 * Every pop of the device goes through here: the counters see it all, and
 * a chain is taken only while the call's budget can pay for the longest
 * one (virtq.h). Out of budget: -EAGAIN, the queue is scheduled to run
 * again (a queue that is not ready then answers as it would have now),
 * and the caller stops as if the ring were empty (an rx caller also marks
 * its port as waiting, so the scheduled run calls guest_ready). Inline,
 * with the common case (a chain taken) counted here: it runs per chain.
 */
static inline int vs__pop(struct vs_device *dev, unsigned q,
                          struct vs_vq_elem *e)
{
        struct vs_vq *vq = &dev->vqs[q];
        bool was_broken = vq->error != 0;
        struct vs_queue_stats *st;
        int r;

        if (dev->round.descs > VS_VQ_CALL_DESCS - VS_VQ_MAX_CHAIN ||
            dev->round.bytes >= VS_VQ_CALL_BYTES) {
                vs__schedule(dev, q);
                return -EAGAIN;
        }
        r = vs_vq_pop(vq, &dev->mem, e);
        if (r <= 0) {
                /* empty or stopped rings read nothing: nothing to count */
                if (r < 0 || e->ndesc)
                        vs__count_pop(dev, q, e, r, was_broken);
                return r;
        }
        st = &dev->work[q].st;
        st->chains++;
        st->descs += e->ndesc;
        st->bytes += e->out_len + e->in_len;
        if (e->ndesc > st->max_chain_descs)
                st->max_chain_descs = e->ndesc;
        dev->round.descs += e->ndesc;
        dev->round.bytes += e->out_len + e->in_len;
        if (dev->round.descs > dev->max_round_descs)
                dev->max_round_descs = dev->round.descs;
        return r;
}
/* Copy up to @len bytes from @buf into @iov, or from @iov into @buf;
 * both return the bytes copied. */
size_t vs__iov_fill(const struct iovec *iov, unsigned cnt, const void *buf,
                    size_t len);
size_t vs__iov_to_buf(const struct iovec *iov, unsigned cnt, void *buf,
                      size_t len);
void vs__event(struct vs_device *dev, enum vs_device_event ev);

/* control.c */
int vs__ctrl_send(struct vs_device *dev, uint32_t id, uint16_t event,
                  uint16_t value, const void *extra, uint32_t extra_len);
void vs__ctrl_flush(struct vs_device *dev);
void vs__ctrl_handle_tx(struct vs_device *dev);
void vs__ctrl_clear(struct vs_device *dev);
int vs__ctrl_resize(struct vs_device *dev, struct vs_port *port);
bool vs__ctrl_room(const struct vs_device *dev);
void vs__driver_gone(struct vs_device *dev);

/* pace.c */
unsigned vs__pace_rx_batch(struct vs_port *port, struct vs_vq *vq);
void vs__pace_rx_seen(struct vs_port *port, struct vs_vq *vq);
void vs__pace_tx_done(struct vs_port *port, struct vs_vq *vq, unsigned q);
bool vs__pace_send_held(struct vs_port *port);
void vs__pace_port_gone(struct vs_port *port);
void vs__pace_clear(struct vs_device *dev);
void vs__pace_timer(struct vs_device *dev);

/* serial.c, used by control.c and pace.c */
bool vs__can_send(struct vs_port *port);
void vs__port_guest_ready(struct vs_port *port);
void vs__port_set_guest_connected(struct vs_port *port, bool connected);
