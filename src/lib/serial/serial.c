/* SPDX-License-Identifier: MIT */
/*
 * The virtio-serial device: port table, config space, data path, and the
 * entry points a transport calls.
 *
 * Security model: rings and buffers belong to an untrusted guest; virtq.c
 * validates chains, this file bounds work per call (at most one queue's worth
 * of chains per kick, then the transport is asked to schedule us again) and
 * keeps per-port memory bounded (one kept chain per port).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serial/serial.h"

#define DEVICE_FEATURES                                                     \
        ((1ull << VS_CONSOLE_F_SIZE) | (1ull << VS_CONSOLE_F_MULTIPORT) |   \
         (1ull << VS_CONSOLE_F_EMERG_WRITE) | (1ull << VS_F_VERSION_1) |    \
         (1ull << VS_F_EVENT_IDX) | (1ull << VS_F_INDIRECT_DESC))

/* ---- device ---------------------------------------------------------- */

int vs_device_new(const struct vs_device_config *cfg, struct vs_device **ret)
{
        uint32_t max = cfg && cfg->max_ports ? cfg->max_ports : VS_DEFAULT_MAX_PORTS;
        struct vs_device *dev;

        if (max > VS_MAX_PORTS || (cfg && cfg->resize_order > VS_RESIZE_ROWS_COLS))
                return -EINVAL;
        dev = calloc(1, sizeof(*dev));
        if (!dev)
                return -ENOMEM;
        dev->max_ports = max;
        dev->nvqs = 2 * (max + 1);
        dev->cols = cfg ? cfg->cols : 0;
        dev->rows = cfg ? cfg->rows : 0;
        dev->resize_order = cfg ? cfg->resize_order : VS_RESIZE_COLS_ROWS;
        /* Room for every port's announcement plus a little slack. */
        dev->ctrl_max = 8 * (max + 1) + 64;
        dev->ports = calloc(max, sizeof(*dev->ports));
        dev->vqs = calloc(dev->nvqs, sizeof(*dev->vqs));
        dev->work = calloc(dev->nvqs, sizeof(*dev->work));
        if (!dev->ports || !dev->vqs || !dev->work) {
                vs_device_free(dev);
                return -ENOMEM;
        }
        for (unsigned q = 0; q < dev->nvqs; q++)
                vs_vq_init(&dev->vqs[q]);
        vs_mem_init(&dev->mem);
        *ret = dev;
        return 0;
}

static void port_free(struct vs_port *port)
{
        if (port->ops->exit)
                port->ops->exit(port);
        free(port);
}

void vs_device_free(struct vs_device *dev)
{
        if (!dev)
                return;
        for (uint32_t i = 0; dev->ports && i < dev->max_ports; i++)
                if (dev->ports[i])
                        port_free(dev->ports[i]);
        vs__ctrl_clear(dev);
        vs_mem_clear(&dev->mem);
        free(dev->ports);
        free(dev->vqs);
        free(dev->work);
        free(dev);
}

unsigned vs_device_num_queues(const struct vs_device *dev) { return dev->nvqs; }
uint32_t vs_device_max_ports(const struct vs_device *dev) { return dev->max_ports; }

bool vs__multiport(const struct vs_device *dev)
{
        return dev->features & (1ull << VS_CONSOLE_F_MULTIPORT);
}

/* Interrupt the guest for @q's used buffers if it asked; true if sent. */
bool vs__notify(struct vs_device *dev, struct vs_vq *vq, unsigned q)
{
        if (!dev->tops || !vs_vq_need_notify(vq))
                return false;
        dev->pace.st.notifies++;
        dev->tops->notify(dev->topaque, q);
        return true;
}

void vs_device_set_event_cb(struct vs_device *dev,
                            void (*fn)(void *opaque, enum vs_device_event ev),
                            void *opaque)
{
        dev->event_fn = fn;
        dev->event_opaque = opaque;
}

void vs__event(struct vs_device *dev, enum vs_device_event ev)
{
        if (dev->event_fn)
                dev->event_fn(dev->event_opaque, ev);
}

/* Once per round and queue: the transport keeps it pending until it runs. */
void vs__schedule(struct vs_device *dev, unsigned q)
{
        struct vs_qwork *w = &dev->work[q];

        if (w->sched_round == dev->round.id && dev->round.depth)
                return;
        w->sched_round = dev->round.id;
        w->st.schedules++;
        if (dev->tops && dev->tops->schedule)
                dev->tops->schedule(dev->topaque, q);
}

/*
 * Every call into the device from outside is a round (see virtq.h): the
 * outermost one starts the count afresh, nested ones (from callbacks) add
 * to it.
 */
static struct vs_device *round_enter(struct vs_device *dev)
{
        if (dev->round.depth++)
                return dev;
        dev->round.id++;
        dev->round.descs = 0;
        dev->round.bytes = 0;
        return dev;
}

static void round_leave(struct vs_device **dev)
{
        (*dev)->round.depth--;
}

/* The rest of the enclosing block is a round: left however it returns. */
#define IN_ROUND(dev) \
        struct vs_device *round_dev_ __attribute__((cleanup(round_leave), unused)) = \
                round_enter(dev)

/* A pop that took no chain but read descriptors or failed (vs__pop()). */
void vs__count_pop(struct vs_device *dev, unsigned q,
                   const struct vs_vq_elem *e, int r, bool was_broken)
{
        struct vs_queue_stats *st = &dev->work[q].st;

        st->descs += e->ndesc;
        if (e->ndesc > st->max_chain_descs)
                st->max_chain_descs = e->ndesc;
        dev->round.descs += e->ndesc;
        if (dev->round.descs > dev->max_round_descs)
                dev->max_round_descs = dev->round.descs;
        /* The guest broke the queue just now (it was fine before). */
        if (r < 0 && !was_broken && dev->vqs[q].error)
                st->errors++;
}

int vs_device_get_queue_stats(const struct vs_device *dev, unsigned q,
                              struct vs_queue_stats *ret)
{
        if (q >= dev->nvqs)
                return -ERANGE;
        *ret = dev->work[q].st;
        return 0;
}

void vs_device_get_stats(const struct vs_device *dev, struct vs_queue_stats *ret)
{
        memset(ret, 0, sizeof(*ret));
        for (unsigned q = 0; q < dev->nvqs; q++) {
                const struct vs_queue_stats *st = &dev->work[q].st;

                ret->kicks += st->kicks;
                ret->chains += st->chains;
                ret->descs += st->descs;
                ret->bytes += st->bytes;
                ret->schedules += st->schedules;
                ret->errors += st->errors;
                if (st->max_chain_descs > ret->max_chain_descs)
                        ret->max_chain_descs = st->max_chain_descs;
        }
        ret->max_call_descs = dev->max_round_descs;
}

void vs_port_get_queue_stats(const struct vs_port *port, struct vs_queue_stats *rx,
                             struct vs_queue_stats *tx)
{
        *rx = port->dev->work[vs__port_rxq(port->id)].st;
        *tx = port->dev->work[vs__port_txq(port->id)].st;
}

/* ---- ports ----------------------------------------------------------- */

static bool name_ok(const char *name)
{
        size_t len = strlen(name);

        if (len > VS_PORT_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (name[i] <= ' ' || name[i] > '~')
                        return false;
        return true;
}

static int pick_id(struct vs_device *dev, const struct vs_port_config *cfg,
                   uint32_t *ret_id)
{
        if (cfg->id >= 0) {
                if ((uint32_t)cfg->id >= dev->max_ports)
                        return -EINVAL;
                /* Port 0 is the console's, as in QEMU: old guests expect it. */
                if (cfg->id == 0 && !cfg->console)
                        return -EINVAL;
                if (dev->ports[cfg->id])
                        return -EEXIST;
                *ret_id = cfg->id;
                return 0;
        }
        for (uint32_t id = cfg->console ? 0 : 1; id < dev->max_ports; id++) {
                if (!dev->ports[id]) {
                        *ret_id = id;
                        return 0;
                }
        }
        return -ENOSPC;
}

static int port_add(struct vs_device *dev, const struct vs_port_config *cfg,
                const struct vs_port_ops *ops, void *opaque,
                struct vs_port **ret)
{
        const char *name = cfg->name ? cfg->name : "";
        struct vs_port *port;
        uint32_t id;
        int r;

        if (!ops || !ops->have_data || !name_ok(name))
                return -EINVAL;
        if (*name && vs_port_find_name(dev, name))
                return -EEXIST;
        r = pick_id(dev, cfg, &id);
        if (r < 0)
                return r;
        /* Never add a port the guest cannot be told about. */
        if (dev->driver_ready && vs__multiport(dev) && !vs__ctrl_room(dev))
                return -ENOSPC;
        port = calloc(1, sizeof(*port));
        if (!port)
                return -ENOMEM;
        port->dev = dev;
        port->id = id;
        port->console = cfg->console;
        if (port->console) {
                port->cols = dev->cols;
                port->rows = dev->rows;
        }
        strcpy(port->name, name);
        port->ops = ops;
        port->opaque = opaque;
        if (ops->init && (r = ops->init(port)) != 0) {
                free(port);
                return r < 0 ? r : -EIO;
        }
        dev->ports[id] = port;
        if (dev->driver_ready)
                vs__ctrl_send(dev, id, VS_CTRL_PORT_ADD, 1, NULL, 0);
        if (ret)
                *ret = port;
        return 0;
}

static void discard_tx(struct vs_device *dev, unsigned q);

static int port_remove(struct vs_port *port)
{
        struct vs_device *dev;
        int r;

        if (!port)
                return 0;
        dev = port->dev;
        if (dev->driver_ready && vs__multiport(dev)) {
                r = vs__ctrl_send(dev, port->id, VS_CTRL_PORT_REMOVE, 1, NULL, 0);
                if (r < 0)
                        return r;
        }
        vs__pace_port_gone(port);
        /* What the guest wrote and nobody will read goes back used. */
        dev->ports[port->id] = NULL;
        if (vs_vq_ready(&dev->vqs[vs__port_txq(port->id)]))
                discard_tx(dev, vs__port_txq(port->id));
        port_free(port);
        return 0;
}

struct vs_port *vs_port_find(struct vs_device *dev, uint32_t id)
{
        return id < dev->max_ports ? dev->ports[id] : NULL;
}

struct vs_port *vs_port_find_name(struct vs_device *dev, const char *name)
{
        for (uint32_t i = 0; i < dev->max_ports; i++)
                if (dev->ports[i] && strcmp(dev->ports[i]->name, name) == 0)
                        return dev->ports[i];
        return NULL;
}

struct vs_port *vs_port_next(struct vs_device *dev, struct vs_port *prev)
{
        for (uint32_t i = prev ? prev->id + 1 : 0; i < dev->max_ports; i++)
                if (dev->ports[i])
                        return dev->ports[i];
        return NULL;
}

uint32_t vs_port_id(const struct vs_port *port) { return port->id; }
const char *vs_port_name(const struct vs_port *port) { return port->name; }
bool vs_port_is_console(const struct vs_port *port) { return port->console; }
void *vs_port_opaque(const struct vs_port *port) { return port->opaque; }
bool vs_port_guest_connected(const struct vs_port *port) { return port->guest_connected; }
bool vs_port_host_connected(const struct vs_port *port) { return port->host_connected; }
bool vs_port_throttled(const struct vs_port *port) { return port->throttled; }

void vs_port_get_stats(const struct vs_port *port, struct vs_port_stats *ret)
{
        *ret = port->stats;
}

void vs_port_get_size(const struct vs_port *port, uint16_t *ret_cols,
                      uint16_t *ret_rows)
{
        *ret_cols = port->cols;
        *ret_rows = port->rows;
}

static int port_resize(struct vs_port *port, uint16_t cols, uint16_t rows)
{
        struct vs_device *dev = port->dev;
        uint16_t old_cols = port->cols, old_rows = port->rows;
        int r;

        if (!port->console)
                return -EINVAL;
        port->cols = cols;
        port->rows = rows;
        if (!vs__multiport(dev)) {
                /* Single-port mode reads the size from config space. */
                if (port->id == 0 && dev->tops && dev->tops->config_changed)
                        dev->tops->config_changed(dev->topaque);
                return 0;
        }
        if (!dev->driver_ready || !port->guest_ready)
                return 0;       /* sent when the guest readies the port */
        r = vs__ctrl_resize(dev, port);
        if (r < 0) {
                /* Refused (a full queue): the size is as before. */
                port->cols = old_cols;
                port->rows = old_rows;
        }
        return r;
}

static int port_set_host_connected(struct vs_port *port, bool connected)
{
        struct vs_device *dev = port->dev;

        int r = 0;

        if (port->host_connected == connected)
                return 0;
        if (dev->driver_ready && port->guest_ready && vs__multiport(dev))
                r = vs__ctrl_send(dev, port->id, VS_CTRL_PORT_OPEN, connected, NULL, 0);
        if (r == 0)
                port->host_connected = connected;
        return r;
}

/*
 * Kicks on a receive queue only matter while a write is waiting for room:
 * otherwise they are turned off (the guest posts buffers all the time).
 */
static void rx_kicks(struct vs_port *port)
{
        struct vs_vq *vq = &port->dev->vqs[vs__port_rxq(port->id)];

        vs_vq_set_notify(vq, port->want_guest_ready);
}

void vs__port_guest_ready(struct vs_port *port)
{
        vs__pace_rx_seen(port, &port->dev->vqs[vs__port_rxq(port->id)]);
        port->want_guest_ready = false;
        if (port->ops->guest_ready)
                port->ops->guest_ready(port);
        rx_kicks(port);
}

void vs__port_set_guest_connected(struct vs_port *port, bool connected)
{
        if (port->guest_connected == connected)
                return;
        port->guest_connected = connected;
        if (!connected)
                vs__pace_port_gone(port);
        if (port->ops->set_guest_connected)
                port->ops->set_guest_connected(port, connected);
        if (connected)
                vs__port_guest_ready(port);
}

/* ---- guest -> host ----------------------------------------------------- */

/* The readable iovecs of @e from byte @off on, into @out. */
static unsigned iov_tail(const struct vs_vq_elem *e, uint64_t off,
                         struct iovec *out)
{
        unsigned n = 0;

        for (unsigned i = 0; i < e->out_num; i++) {
                if (off >= e->iov[i].iov_len) {
                        off -= e->iov[i].iov_len;
                        continue;
                }
                out[n].iov_base = (uint8_t *)e->iov[i].iov_base + off;
                out[n].iov_len = e->iov[i].iov_len - off;
                off = 0;
                n++;
        }
        return n;
}

/*
 * Pop up to VS_TX_BATCH chains (VS_TX_BYTES, VS_TX_IOV_MAX iovecs) of @port
 * into dev->tx: their readable parts as one iovec list, so the host side
 * takes them in one call (one writev()). A chain the host side took part
 * of before is offered from that offset on (resume_*). Returns the chain
 * count or a negative errno (nothing popped; -EAGAIN: out of budget).
 */
static int tx_gather(struct vs_port *port)
{
        struct vs_device *dev = port->dev;
        unsigned q = vs__port_txq(port->id);
        struct vs_tx *tx = &dev->tx;
        struct vs_vq_elem *e = &tx->elem;

        tx->chains = tx->iovcnt = 0;
        tx->bytes = 0;
        while (tx->chains < VS_TX_BATCH && tx->bytes < VS_TX_BYTES) {
                int r = vs__pop(dev, q, e);
                uint64_t off = 0;

                if (r < 0 && tx->chains == 0)
                        return r;
                if (r <= 0)
                        break;
                /* A long chain that does not fit waits for the next batch;
                 * the first always fits (VS_TX_IOV_MAX >= VS_VQ_MAX_IOV). */
                if (tx->iovcnt + e->out_num > VS_TX_IOV_MAX) {
                        vs_vq_unpop(&dev->vqs[q], 1);
                        break;
                }
                if (port->resume_valid && port->resume_head == e->head &&
                    port->resume_off <= e->out_len)
                        off = port->resume_off;
                port->resume_valid = false;
                tx->head[tx->chains] = e->head;
                tx->off[tx->chains] = off;
                tx->len[tx->chains] = e->out_len - off;
                tx->bytes += e->out_len - off;
                tx->iovcnt += iov_tail(e, off, &tx->iov[tx->iovcnt]);
                tx->chains++;
        }
        return tx->chains;
}

/*
 * The host side took @n bytes of the gathered chains: return the chains it
 * took whole, give the rest back to the ring, and remember how far into the
 * first of those it got. Returns how many chains went back used.
 */
static unsigned tx_complete(struct vs_port *port, struct vs_vq *vq, uint64_t n)
{
        struct vs_tx *tx = &port->dev->tx;
        unsigned i = 0;

        for (; i < tx->chains && n >= tx->len[i]; i++) {
                vs_vq_push(vq, tx->head[i], 0);
                n -= tx->len[i];
        }
        if (i < tx->chains) {
                vs_vq_unpop(vq, tx->chains - i);
                port->resume_valid = true;
                port->resume_head = tx->head[i];
                port->resume_off = tx->off[i] + n;
        }
        return i;
}

/*
 * Offer the gathered chains to the host side. Less taken than offered
 * throttles the port. Returns how many chains went back used.
 */
static unsigned tx_offer(struct vs_port *port, struct vs_vq *vq)
{
        struct vs_tx *tx = &port->dev->tx;
        unsigned used;
        ssize_t n = 0;

        if (tx->bytes)
                n = port->ops->have_data(port, tx->iov, tx->iovcnt);
        if (n < 0)
                n = 0;
        if ((uint64_t)n > tx->bytes)
                n = tx->bytes;  /* a confused host side cannot overrun us */
        port->stats.from_guest += n;
        used = tx_complete(port, vq, n);
        if (used < tx->chains) {
                port->throttled = true;
                port->tx_backlog = true;
        }
        return used;
}

/*
 * Move guest->host data until throttled, empty, or out of the call's
 * budget (vs__pop() then scheduled the queue).
 */
static void port_flush_tx(struct vs_port *port)
{
        struct vs_device *dev = port->dev;
        unsigned q = vs__port_txq(port->id);
        struct vs_vq *vq = &dev->vqs[q];
        unsigned rechecks = 0;
        bool pushed = false;

        if (!vs_vq_ready(vq))
                return;
        /* dev->tx is in use (a have_data op unthrottled a port): later. */
        if (dev->tx.busy) {
                vs__schedule(dev, q);
                return;
        }
        dev->tx.busy = true;
        while (!port->throttled) {
                int chains = tx_gather(port);

                if (chains == -EAGAIN)
                        break;
                if (chains <= 0) {
                        /* Empty: re-arm kicks, then catch a late add. */
                        vs_vq_set_notify(vq, true);
                        if (chains < 0 || !vs_vq_has_avail(vq))
                                break;
                        /* A guest that moves avail->idx back and forth
                         * reads as "more" and then "empty": not forever. */
                        if (++rechecks > VS_EMPTY_RECHECKS) {
                                vs__schedule(dev, q);
                                break;
                        }
                        continue;
                }
                vs_vq_set_notify(vq, false);
                pushed |= tx_offer(port, vq) > 0;
        }
        dev->tx.busy = false;
        if (pushed)
                vs__pace_tx_done(port, vq, q);
}

static void port_throttle(struct vs_port *port, bool throttled)
{
        port->throttled = throttled;
        port->tx_backlog |= throttled;
        if (!throttled)
                port_flush_tx(port);
}

/* Chains on a queue with no port: returned unread, the guest is confused.
 * Bounded by the call's budget like any pop. */
static void discard_tx(struct vs_device *dev, unsigned q)
{
        struct vs_vq *vq = &dev->vqs[q];

        /* dev->scratch: each chain is pushed back before the next pop. */
        while (vs__pop(dev, q, &dev->scratch) > 0)
                vs_vq_push(vq, dev->scratch.head, 0);
        vs__notify(dev, vq, q);
}

/* ---- host -> guest ----------------------------------------------------- */

bool vs__can_send(struct vs_port *port)
{
        struct vs_device *dev = port->dev;

        /* The driver drops data for a port it has not opened. */
        if (vs__multiport(dev) && !port->guest_connected)
                return false;
        return vs_vq_ready(&dev->vqs[vs__port_rxq(port->id)]);
}

/*
 * Pop receive chains until @want bytes of room, VS_RX_BATCH chains or
 * VS_RX_IOV_MAX iovecs, gathering their writable iovecs in dev->rx_iov.
 * Returns the chain count or a negative errno (-EAGAIN: out of budget);
 * *@ret_iovcnt gets the iovec count.
 */
static int rx_gather(struct vs_port *port, size_t want,
                     unsigned *ret_iovcnt)
{
        struct vs_device *dev = port->dev;
        unsigned q = vs__port_rxq(port->id);
        /* dev->scratch: each chain's head, room and iovecs are copied out
         * (rx_heads, rx_room, rx_iov) before the next pop reuses it. */
        struct vs_vq_elem *e = &dev->scratch;
        unsigned chains = 0, iovcnt = 0;
        size_t room = 0;

        while (room < want && chains < VS_RX_BATCH) {
                int r = vs__pop(dev, q, e);

                if (r < 0 && chains == 0)
                        return r;
                if (r <= 0)
                        break;  /* the queue broke: deliver what was gathered */
                /* The first chain always fits (VS_RX_IOV_MAX >= VS_VQ_MAX_IOV). */
                if (iovcnt + e->in_num > VS_RX_IOV_MAX) {
                        vs_vq_unpop(&dev->vqs[q], 1);
                        break;
                }
                dev->rx_heads[chains] = e->head;
                /* Readable parts of a receive chain are skipped. */
                dev->rx_room[chains] = e->in_len > UINT32_MAX ? UINT32_MAX : e->in_len;
                memcpy(&dev->rx_iov[iovcnt], &e->iov[e->out_num],
                       e->in_num * sizeof(struct iovec));
                iovcnt += e->in_num;
                room += dev->rx_room[chains];
                chains++;
        }
        *ret_iovcnt = iovcnt;
        return chains;
}

/* Return the gathered chains holding @len bytes, give back the rest. */
static void rx_complete(struct vs_port *port, struct vs_vq *vq,
                        unsigned chains, size_t len)
{
        struct vs_device *dev = port->dev;
        unsigned used = 0;

        while (used < chains && (len > 0 || dev->rx_room[used] == 0)) {
                uint32_t n = len < dev->rx_room[used] ? len : dev->rx_room[used];

                vs_vq_push(vq, dev->rx_heads[used], n);
                len -= n;
                used++;
        }
        vs_vq_unpop(vq, chains - used);
        if (used)
                vs__notify(dev, vq, vs__port_rxq(port->id));
}

/* Copy up to @len bytes between @buf and @iov, either way. */
static size_t iov_copy(const struct iovec *iov, unsigned cnt, uint8_t *buf,
                       size_t len, bool to_iov)
{
        size_t done = 0;

        for (unsigned i = 0; i < cnt && done < len; i++) {
                size_t n = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

                if (to_iov)
                        memcpy(iov[i].iov_base, buf + done, n);
                else
                        memcpy(buf + done, iov[i].iov_base, n);
                done += n;
        }
        return done;
}

size_t vs__iov_fill(const struct iovec *iov, unsigned cnt, const void *buf,
                    size_t len)
{
        return iov_copy(iov, cnt, (uint8_t *)buf, len, true);
}

size_t vs__iov_to_buf(const struct iovec *iov, unsigned cnt, void *buf,
                      size_t len)
{
        return iov_copy(iov, cnt, buf, len, false);
}

/* No room: ask the guest to kick when it posts buffers, then look again. */
static bool rx_wait(struct vs_port *port, struct vs_vq *vq)
{
        port->want_guest_ready = true;
        vs_vq_set_kick_batch(vq, vs__pace_rx_batch(port, vq));
        vs_vq_set_notify(vq, true);
        return vs_vq_has_avail(vq);
}

/*
 * Nothing more to fill although the guest seems to post buffers (a guest
 * moving avail->idx back and forth, or only chains without room): stop
 * here and come back from the loop; the scheduled run calls guest_ready.
 */
static void rx_later(struct vs_port *port)
{
        port->want_guest_ready = true;
        vs__schedule(port->dev, vs__port_rxq(port->id));
}

static ssize_t port_write(struct vs_port *port, const void *buf, size_t len)
{
        struct vs_vq *vq = &port->dev->vqs[vs__port_rxq(port->id)];
        unsigned rechecks = 0;
        size_t done = 0;
        int err = 0;

        if (!vs__can_send(port)) {
                port->want_guest_ready = true;
                return 0;
        }
        while (done < len) {
                unsigned iovcnt;
                int chains = rx_gather(port, len - done, &iovcnt);
                size_t n;

                if (chains == -EAGAIN) {
                        port->want_guest_ready = true;  /* scheduled */
                        break;
                }
                if (chains < 0) {
                        err = chains;
                        break;
                }
                if (chains == 0) {
                        if (!rx_wait(port, vq))
                                break;
                        if (++rechecks > VS_EMPTY_RECHECKS) {
                                rx_later(port);
                                break;
                        }
                        continue;
                }
                n = vs__iov_fill(port->dev->rx_iov, iovcnt, (const uint8_t *)buf + done,
                             len - done);
                rx_complete(port, vq, chains, n);
                done += n;
        }
        port->stats.to_guest += done;
        return done || !err ? (ssize_t)done : err;
}

/*
 * rx_gather() until the chains have room: a chain with no writable part
 * (a confused guest) goes back used with nothing in it. Bounded; 0 chains
 * after asking for a kick means the guest has nothing posted.
 */
static int rx_gather_room(struct vs_port *port, struct vs_vq *vq, size_t want,
                          unsigned *ret_iovcnt)
{
        for (int tries = 0; tries < 4; tries++) {
                int chains = rx_gather(port, want, ret_iovcnt);

                if (chains == 0 && rx_wait(port, vq))
                        continue;
                if (chains <= 0 || *ret_iovcnt > 0)
                        return chains;
                rx_complete(port, vq, chains, 0);
        }
        rx_later(port);
        return 0;
}

static ssize_t port_recv_fd(struct vs_port *port, int fd, size_t max)
{
        struct vs_vq *vq = &port->dev->vqs[vs__port_rxq(port->id)];
        unsigned iovcnt;
        ssize_t n;
        int chains;

        if (!vs__can_send(port)) {
                port->want_guest_ready = true;
                return -ENOBUFS;
        }
        chains = rx_gather_room(port, vq, max, &iovcnt);
        /* Out of budget: the scheduled run calls guest_ready. */
        if (chains == -EAGAIN)
                port->want_guest_ready = true;
        /* A broken queue takes nothing either; the device reports it. */
        if (chains <= 0)
                return -ENOBUFS;
        /* Never read more than asked: trim the iovec list to @max. */
        for (size_t i = 0, left = 0; i < iovcnt; i++) {
                size_t have = max - left;

                if (port->dev->rx_iov[i].iov_len > have)
                        port->dev->rx_iov[i].iov_len = have;
                left += port->dev->rx_iov[i].iov_len;
        }
        n = readv(fd, port->dev->rx_iov, iovcnt);
        if (n < 0) {
                int err = -errno;

                rx_complete(port, vq, chains, 0);
                return err;
        }
        rx_complete(port, vq, chains, n);
        port->stats.to_guest += n;
        return n;
}

static size_t port_guest_room(struct vs_port *port)
{
        struct vs_vq *vq = &port->dev->vqs[vs__port_rxq(port->id)];
        size_t room = 0;
        unsigned iovcnt;
        int chains;

        if (!vs__can_send(port))
                return 0;
        chains = rx_gather(port, SIZE_MAX, &iovcnt);
        if (chains <= 0)
                return 0;
        for (int i = 0; i < chains; i++)
                room += port->dev->rx_room[i];
        vs_vq_unpop(vq, chains);
        return room;
}

/* ---- transport entry points ------------------------------------------ */

void vs_device_set_transport(struct vs_device *dev,
                             const struct vs_transport_ops *ops, void *opaque)
{
        dev->tops = ops;
        dev->topaque = opaque;
}

uint64_t vs_device_features(const struct vs_device *dev)
{
        (void)dev;
        return DEVICE_FEATURES;
}

int vs_device_set_features(struct vs_device *dev, uint64_t features)
{
        if (features & ~DEVICE_FEATURES)
                return -ENOTSUP;
        dev->features = features;
        for (unsigned q = 0; q < dev->nvqs; q++) {
                dev->vqs[q].event_idx = features & (1ull << VS_F_EVENT_IDX);
                dev->vqs[q].indirect = features & (1ull << VS_F_INDIRECT_DESC);
        }
        return 0;
}

/* Config space (VIRTIO 1.2, 5.3.4): the wire layout, little-endian. */
struct console_config {
        uint16_t cols;
        uint16_t rows;
        uint32_t max_nr_ports;
        uint32_t emerg_wr;
};
_Static_assert(sizeof(struct console_config) == VS_CONFIG_SIZE, "the config layout");

static struct console_config config_get(const struct vs_device *dev)
{
        const struct vs_port *port0 = dev->ports[0];
        bool sized = port0 && port0->console;

        return (struct console_config){
                .cols = htole16(sized ? port0->cols : dev->cols),
                .rows = htole16(sized ? port0->rows : dev->rows),
                .max_nr_ports = htole32(dev->max_ports),
                .emerg_wr = 0,
        };
}

static bool config_range_ok(uint32_t offset, uint32_t len)
{
        return offset <= VS_CONFIG_SIZE && len <= VS_CONFIG_SIZE - offset;
}

int vs_device_config_read(struct vs_device *dev, uint32_t offset, void *buf,
                          uint32_t len)
{
        struct console_config cfg = config_get(dev);

        if (!config_range_ok(offset, len))
                return -EINVAL;
        memcpy(buf, (const uint8_t *)&cfg + offset, len);
        return 0;
}

static int device_config_write(struct vs_device *dev, uint32_t offset,
                           const void *buf, uint32_t len)
{
        struct vs_port *port0 = dev->ports[0];

        if (!config_range_ok(offset, len))
                return -EINVAL;
        /* Only emerg_wr is writable: its low byte goes to port 0's host side. */
        if (offset != offsetof(struct console_config, emerg_wr) || len == 0 || !port0)
                return 0;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = 1 };

        if (port0->ops->have_data(port0, &iov, 1) == 1)
                port0->stats.from_guest++;
        return 0;
}

int vs_device_set_memory(struct vs_device *dev, const struct vs_mem_map *map,
                         unsigned n)
{
        struct vs_mem next;
        int r = 0;

        vs_mem_init(&next);
        for (unsigned i = 0; i < n && r == 0; i++)
                r = vs_mem_add_host(&next, map[i].host, map[i].gpa, map[i].size,
                                    map[i].uva);
        if (r < 0) {
                vs_mem_clear(&next);
                return r;
        }
        /* No chain is held between calls: nothing points into the old memory. */
        vs_mem_replace(&dev->mem, &next);
        for (unsigned q = 0; q < dev->nvqs; q++) {
                struct vs_vq *vq = &dev->vqs[q];

                vs_vq_unmap(vq);
                if (vq->enabled && vq->addr_set && vq->num)
                        vs_vq_map(vq, &dev->mem);
        }
        return 0;
}

static struct vs_vq *queue(struct vs_device *dev, unsigned q)
{
        return q < dev->nvqs ? &dev->vqs[q] : NULL;
}

/* The port whose queue @q is, or NULL (control queues, no port). */
static struct vs_port *queue_port(struct vs_device *dev, unsigned q)
{
        if (q < VS_CTRL_RXQ)
                return dev->ports[0];
        if (q <= VS_CTRL_TXQ)
                return NULL;
        return vs_port_find(dev, (q - 2) / 2);  /* vs__port_rxq/txq inverted */
}

static bool queue_is_tx(unsigned q) { return q == 1 || (q >= 4 && q % 2 == 1); }

int vs_device_queue_set_num(struct vs_device *dev, unsigned q, unsigned num)
{
        struct vs_vq *vq = queue(dev, q);

        if (!vq)
                return -ERANGE;
        vs_vq_unmap(vq);
        return vs_vq_set_num(vq, num);
}

int vs_device_queue_set_addr(struct vs_device *dev, unsigned q, uint64_t desc,
                             uint64_t avail, uint64_t used, bool is_uva)
{
        struct vs_vq *vq = queue(dev, q);

        if (!vq)
                return -ERANGE;
        vs_vq_set_addr(vq, desc, avail, used, is_uva);
        vs_vq_unmap(vq);
        if (vq->enabled && vq->num)
                return vs_vq_map(vq, &dev->mem);
        return 0;
}

static int device_queue_set_base(struct vs_device *dev, unsigned q, uint16_t base)
{
        struct vs_vq *vq = queue(dev, q);

        if (!vq)
                return -ERANGE;
        /* The control ring restarting anywhere but where it stopped is a
         * new driver: what was queued for the old one must not reach it. */
        if (q == VS_CTRL_RXQ && !(dev->ctrl_stop_valid && dev->ctrl_stop_base == base))
                vs__driver_gone(dev);
        if (q == VS_CTRL_RXQ)
                dev->ctrl_stop_valid = false;
        vs_vq_set_base(vq, base);
        return 0;
}

int vs_device_queue_get_base(struct vs_device *dev, unsigned q)
{
        struct vs_vq *vq = queue(dev, q);
        struct vs_port *port;

        if (!vq)
                return -ERANGE;
        port = queue_port(dev, q);
        /* A held notification goes before the ring stops. */
        if (port && queue_is_tx(q))
                vs__pace_send_held(port);
        vq->enabled = false;
        vs_vq_unmap(vq);
        if (q == VS_CTRL_RXQ) {
                dev->ctrl_stop_valid = true;
                dev->ctrl_stop_base = vs_vq_get_base(vq);
        }
        return vs_vq_get_base(vq);
}

/* A queue just became usable: run what may have been waiting for it. */
static void queue_started(struct vs_device *dev, unsigned q)
{
        struct vs_port *port = queue_port(dev, q);

        /* Without MULTIPORT there is no open/close: port 0 is the console
         * the driver binds at probe, connected while its rings run. */
        if (q == 0 && port && !vs__multiport(dev))
                vs__port_set_guest_connected(port, true);
        if (q == VS_CTRL_RXQ || q == VS_CTRL_TXQ || (port && queue_is_tx(q))) {
                vs_device_queue_kick(dev, q);
                return;
        }
        if (port && port->want_guest_ready && vs__can_send(port))
                vs__port_guest_ready(port);
        else if (port)
                rx_kicks(port);
}

static int device_queue_enable(struct vs_device *dev, unsigned q, bool enable)
{
        struct vs_vq *vq = queue(dev, q);
        int r;

        if (!vq)
                return -ERANGE;
        if (!enable) {
                vq->enabled = false;
                vs_vq_unmap(vq);
                return 0;
        }
        vq->enabled = true;
        /* QEMU enables rings it never gave an address: they stay idle. */
        if (!vq->addr_set || !vq->num)
                return 0;
        r = vs_vq_map(vq, &dev->mem);
        if (r < 0) {
                if (!vq->error)
                        dev->work[q].st.errors++;
                vs_vq_fail(vq, r);
                return r;
        }
        queue_started(dev, q);
        return 0;
}

static int device_queue_kick(struct vs_device *dev, unsigned q)
{
        struct vs_vq *vq = queue(dev, q);
        struct vs_port *port;

        if (!vq)
                return -ERANGE;
        dev->work[q].st.kicks++;
        if (!vs_vq_ready(vq))
                return vq->error;
        if (q == VS_CTRL_RXQ && vs__multiport(dev)) {
                vs__ctrl_flush(dev);
        } else if (q == VS_CTRL_TXQ && vs__multiport(dev)) {
                vs__ctrl_handle_tx(dev);
        } else if ((port = queue_port(dev, q)) == NULL) {
                if (queue_is_tx(q))
                        discard_tx(dev, q);
        } else if (queue_is_tx(q)) {
                port_flush_tx(port);
        } else if (port->want_guest_ready && vs__can_send(port)) {
                vs__port_guest_ready(port);
        }
        return vq->error;
}

int vs_device_queue_error(const struct vs_device *dev, unsigned q)
{
        return q < dev->nvqs ? dev->vqs[q].error : -ERANGE;
}

/* Forget what the guest driver knew; host-side port state stays. */
void vs__driver_gone(struct vs_device *dev)
{
        for (struct vs_port *p = vs_port_next(dev, NULL); p; p = vs_port_next(dev, p)) {
                p->resume_valid = false;
                p->guest_ready = false;
                vs__port_set_guest_connected(p, false);
        }
        vs__ctrl_clear(dev);
        dev->driver_ready = false;
        dev->ctrl_stop_valid = false;
}

static void device_reset(struct vs_device *dev)
{
        for (unsigned q = 0; q < dev->nvqs; q++)
                vs_vq_init(&dev->vqs[q]);
        vs__driver_gone(dev);
        dev->features = 0;
        vs__event(dev, VS_EVENT_RESET);
}

/* ---- entry points: each call from outside is one round ---------------- */

int vs_port_add(struct vs_device *dev, const struct vs_port_config *cfg,
                const struct vs_port_ops *ops, void *opaque,
                struct vs_port **ret)
{
        IN_ROUND(dev);
        return port_add(dev, cfg, ops, opaque, ret);
}

int vs_port_remove(struct vs_port *port)
{
        if (!port)
                return 0;
        IN_ROUND(port->dev);
        return port_remove(port);
}

int vs_port_resize(struct vs_port *port, uint16_t cols, uint16_t rows)
{
        IN_ROUND(port->dev);
        return port_resize(port, cols, rows);
}

int vs_port_set_host_connected(struct vs_port *port, bool connected)
{
        IN_ROUND(port->dev);
        return port_set_host_connected(port, connected);
}

ssize_t vs_port_write(struct vs_port *port, const void *buf, size_t len)
{
        IN_ROUND(port->dev);
        return port_write(port, buf, len);
}

ssize_t vs_port_recv_fd(struct vs_port *port, int fd, size_t max)
{
        IN_ROUND(port->dev);
        return port_recv_fd(port, fd, max);
}

size_t vs_port_guest_room(struct vs_port *port)
{
        IN_ROUND(port->dev);
        return port_guest_room(port);
}

void vs_port_throttle(struct vs_port *port, bool throttled)
{
        IN_ROUND(port->dev);
        port_throttle(port, throttled);
}

int vs_device_config_write(struct vs_device *dev, uint32_t offset,
                           const void *buf, uint32_t len)
{
        IN_ROUND(dev);
        return device_config_write(dev, offset, buf, len);
}

int vs_device_queue_set_base(struct vs_device *dev, unsigned q, uint16_t base)
{
        IN_ROUND(dev);
        return device_queue_set_base(dev, q, base);
}

int vs_device_queue_enable(struct vs_device *dev, unsigned q, bool enable)
{
        IN_ROUND(dev);
        return device_queue_enable(dev, q, enable);
}

int vs_device_queue_kick(struct vs_device *dev, unsigned q)
{
        IN_ROUND(dev);
        return device_queue_kick(dev, q);
}

void vs_device_reset(struct vs_device *dev)
{
        IN_ROUND(dev);
        device_reset(dev);
}

void vs_device_timer(struct vs_device *dev)
{
        IN_ROUND(dev);
        vs__pace_timer(dev);
}
