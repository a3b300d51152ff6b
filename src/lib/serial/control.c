/* SPDX-License-Identifier: MIT */
/*
 * The control queues of a MULTIPORT device (VIRTIO 1.2, 5.3.6.2).
 *
 * Security model: control-tx chains come from an untrusted guest. A message
 * is read into a fixed local buffer (only its 8-byte header matters to us),
 * its id is checked against the port table, and unknown events, unknown
 * ports and short messages are ignored: the device never trusts the guest
 * to name a port that exists. Messages to the guest queue up to a bound
 * while the guest posts no control-rx buffers; they are never dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "serial/serial.h"

/* The header to and from its 8 little-endian wire bytes. */
static void hdr_encode(const struct vs_ctrl_hdr *h, uint8_t wire[VS_CTRL_HDR_LEN])
{
        struct vs_ctrl_hdr le = {
                .id = htole32(h->id),
                .event = htole16(h->event),
                .value = htole16(h->value),
        };

        memcpy(wire, &le, sizeof(le));
}

static struct vs_ctrl_hdr hdr_decode(const uint8_t wire[VS_CTRL_HDR_LEN])
{
        struct vs_ctrl_hdr h;

        memcpy(&h, wire, sizeof(h));
        h.id = le32toh(h.id);
        h.event = le16toh(h.event);
        h.value = le16toh(h.value);
        return h;
}

static bool is_add_or_remove(uint16_t event)
{
        return event == VS_CTRL_PORT_ADD || event == VS_CTRL_PORT_REMOVE;
}

/* The queued message for (@id, @event), or NULL. */
static struct vs_ctrl_msg *find_queued(struct vs_device *dev, uint32_t id,
                                       uint16_t event)
{
        struct vs_ctrl_msg *found = NULL;

        for (struct vs_ctrl_msg *m = dev->ctrl_head; m; m = m->next)
                if (m->hdr.id == id && m->hdr.event == event)
                        found = m;      /* the last one */
        return found;
}

/* Unlink and free @from and every later message about the same port. */
static void drop_from(struct vs_device *dev, struct vs_ctrl_msg *from)
{
        uint32_t id = from->hdr.id;
        struct vs_ctrl_msg **link = &dev->ctrl_head, *prev = NULL;
        bool past = false;

        while (*link) {
                struct vs_ctrl_msg *m = *link;

                past |= m == from;
                if (past && m->hdr.id == id) {
                        *link = m->next;
                        dev->ctrl_len--;
                        free(m);
                        continue;
                }
                prev = m;
                link = &m->next;
        }
        dev->ctrl_tail = prev;
}

static bool same_extra(const struct vs_ctrl_msg *m, const void *extra,
                       uint32_t extra_len)
{
        return m->extra_len == extra_len &&
               (!extra_len || memcmp(m->extra, extra, extra_len) == 0);
}

/*
 * Is the last queued (@h->id, @h->event) message this very one, with no
 * add or remove of the port after it? Then the guest reads it once anyway:
 * a guest repeating PORT_READY asks for what is already on its way, and
 * must not get a queue's worth of copies (a full queue refuses the host).
 */
static bool queued_already(struct vs_device *dev, const struct vs_ctrl_hdr *h,
                           const void *extra, uint32_t extra_len)
{
        struct vs_ctrl_msg *m = find_queued(dev, h->id, h->event);

        if (!m || is_add_or_remove(h->event))
                return false;
        for (struct vs_ctrl_msg *n = m->next; n; n = n->next)
                if (n->hdr.id == h->id && is_add_or_remove(n->hdr.event))
                        return false;
        return m->hdr.value == h->value && same_extra(m, extra, extra_len);
}

/*
 * A message the guest has not taken yet can be brought up to date instead of
 * queueing another: the guest only cares about a console's latest size, and
 * about a port added and removed (or opened and closed) before it looked,
 * not at all. This keeps the queue bounded by a few messages per port.
 */
static bool coalesce(struct vs_device *dev, const struct vs_ctrl_hdr *h,
                     const void *extra, uint32_t extra_len)
{
        struct vs_ctrl_msg *m;

        if (h->event == VS_CTRL_PORT_REMOVE &&
            (m = find_queued(dev, h->id, VS_CTRL_PORT_ADD))) {
                drop_from(dev, m);
                return true;
        }
        if (queued_already(dev, h, extra, extra_len))
                return true;
        if (h->event != VS_CTRL_PORT_OPEN && h->event != VS_CTRL_RESIZE)
                return false;
        m = find_queued(dev, h->id, h->event);
        /* Only if nothing about the port was queued after it: order holds. */
        for (struct vs_ctrl_msg *n = m ? m->next : NULL; n; n = n->next)
                if (n->hdr.id == h->id)
                        return false;
        if (!m || m->extra_len != extra_len)
                return false;
        if (h->event == VS_CTRL_PORT_OPEN) {
                /* A close must reach the guest (its reader sees end of
                 * file): never fold close-then-open. Open-then-close the
                 * guest never saw cancels out; a repeat is a no-op. */
                if (m->hdr.value == h->value)
                        return true;
                if (h->value != 0)
                        return false;
                drop_from(dev, m);
                return true;
        }
        m->hdr.value = h->value;
        if (extra_len)
                memcpy(m->extra, extra, extra_len);
        return true;
}

bool vs__ctrl_room(const struct vs_device *dev)
{
        return dev->ctrl_len < dev->ctrl_max;
}

int vs__ctrl_send(struct vs_device *dev, uint32_t id, uint16_t event,
                  uint16_t value, const void *extra, uint32_t extra_len)
{
        struct vs_ctrl_hdr h = { .id = id, .event = event, .value = value };
        struct vs_ctrl_msg *m;

        if (extra_len > VS_CTRL_EXTRA_MAX)
                return -EINVAL;
        if (coalesce(dev, &h, extra, extra_len))
                return 0;
        if (!vs__ctrl_room(dev))
                return -ENOSPC;
        m = malloc(sizeof(*m) + extra_len);
        if (!m)
                return -ENOMEM;
        m->next = NULL;
        m->hdr = h;
        m->extra_len = extra_len;
        if (extra_len)
                memcpy(m->extra, extra, extra_len);
        if (dev->ctrl_tail)
                dev->ctrl_tail->next = m;
        else
                dev->ctrl_head = m;
        dev->ctrl_tail = m;
        dev->ctrl_len++;
        vs__ctrl_flush(dev);
        return 0;
}

void vs__ctrl_clear(struct vs_device *dev)
{
        while (dev->ctrl_head) {
                struct vs_ctrl_msg *m = dev->ctrl_head;

                dev->ctrl_head = m->next;
                free(m);
        }
        dev->ctrl_tail = NULL;
        dev->ctrl_len = 0;
}

static void ctrl_pop_msg(struct vs_device *dev)
{
        struct vs_ctrl_msg *m = dev->ctrl_head;

        dev->ctrl_head = m->next;
        if (!dev->ctrl_head)
                dev->ctrl_tail = NULL;
        dev->ctrl_len--;
        free(m);
}

/*
 * Deliver queued messages into the guest's control-rx buffers, within the
 * call's budget (vs__pop() schedules the rest: a guest that posts only
 * buffers too small is not waited for with a kick it may never send).
 */
void vs__ctrl_flush(struct vs_device *dev)
{
        struct vs_vq *vq = &dev->vqs[VS_CTRL_RXQ];
        struct vs_vq_elem *e = &dev->scratch;
        bool pushed = false;

        if (!vs__multiport(dev) || !vs_vq_ready(vq))
                return;
        while (dev->ctrl_head) {
                struct vs_ctrl_msg *m = dev->ctrl_head;
                uint8_t wire[VS_CTRL_HDR_LEN + VS_CTRL_EXTRA_MAX];
                uint32_t len = VS_CTRL_HDR_LEN + m->extra_len;

                /* An empty ring re-arms the guest's kick (EVENT_IDX). */
                if (vs__pop(dev, VS_CTRL_RXQ, e) <= 0)
                        break;
                pushed = true;
                /* A buffer too small for the message is returned empty;
                 * the message waits for the next one. */
                if (e->in_len < len) {
                        vs_vq_push(vq, e->head, 0);
                        continue;
                }
                hdr_encode(&m->hdr, wire);
                memcpy(wire + VS_CTRL_HDR_LEN, m->extra, m->extra_len);
                vs_vq_push(vq, e->head, vs__iov_fill(&e->iov[e->out_num], e->in_num,
                                                     wire, len));
                ctrl_pop_msg(dev);
        }
        if (pushed)
                vs__notify(dev, vq, VS_CTRL_RXQ);
}

int vs__ctrl_resize(struct vs_device *dev, struct vs_port *port)
{
        uint16_t first = dev->resize_order == VS_RESIZE_COLS_ROWS ? port->cols : port->rows;
        uint16_t second = dev->resize_order == VS_RESIZE_COLS_ROWS ? port->rows : port->cols;
        uint16_t size[2] = { htole16(first), htole16(second) };

        return vs__ctrl_send(dev, port->id, VS_CTRL_RESIZE, 0, size, sizeof(size));
}

/* Tell the guest what it needs about a port it just acknowledged. */
static void port_ready(struct vs_device *dev, struct vs_port *port)
{
        port->guest_ready = true;
        if (port->console) {
                vs__ctrl_send(dev, port->id, VS_CTRL_CONSOLE_PORT, 1, NULL, 0);
                /* The driver binds hvc on CONSOLE_PORT; a size set before
                 * that follows it. */
                if (port->cols && port->rows)
                        vs__ctrl_resize(dev, port);
        }
        if (port->name[0])
                vs__ctrl_send(dev, port->id, VS_CTRL_PORT_NAME, 1, port->name,
                              strlen(port->name));
        if (port->host_connected)
                vs__ctrl_send(dev, port->id, VS_CTRL_PORT_OPEN, 1, NULL, 0);
        vs__port_guest_ready(port);
}

/* The driver (re)started: everything the guest knew is gone. */
static void device_ready(struct vs_device *dev)
{
        vs__driver_gone(dev);
        dev->driver_ready = true;
        for (struct vs_port *p = vs_port_next(dev, NULL); p; p = vs_port_next(dev, p))
                vs__ctrl_send(dev, p->id, VS_CTRL_PORT_ADD, 1, NULL, 0);
        vs__event(dev, VS_EVENT_DRIVER_READY);
}

static void ctrl_handle(struct vs_device *dev, const struct vs_ctrl_hdr *h)
{
        struct vs_port *port;

        if (h->event == VS_CTRL_DEVICE_READY) {
                if (h->value == 1)
                        device_ready(dev);
                return;
        }
        port = vs_port_find(dev, h->id);
        if (!port)
                return;         /* a port we never added: ignored */
        if (h->event == VS_CTRL_PORT_READY && h->value == 1)
                port_ready(dev, port);
        else if (h->event == VS_CTRL_PORT_READY)
                port->guest_ready = false;
        else if (h->event == VS_CTRL_PORT_OPEN)
                vs__port_set_guest_connected(port, h->value != 0);
}

/*
 * Control messages from the guest. Serviced at once (the driver spins),
 * within the call's budget: vs__pop() schedules the rest.
 */
void vs__ctrl_handle_tx(struct vs_device *dev)
{
        struct vs_vq *vq = &dev->vqs[VS_CTRL_TXQ];
        struct vs_vq_elem *e = &dev->scratch;
        bool pushed = false;

        for (;;) {
                uint8_t wire[VS_CTRL_HDR_LEN];
                struct vs_ctrl_hdr h;
                size_t got;

                if (vs__pop(dev, VS_CTRL_TXQ, e) <= 0)
                        break;
                /* Only the header matters: what follows it is not read. */
                got = vs__iov_to_buf(e->iov, e->out_num, wire, sizeof(wire));
                vs_vq_push(vq, e->head, 0);
                pushed = true;
                if (got < sizeof(wire))
                        continue;       /* too short: ignored */
                h = hdr_decode(wire);
                ctrl_handle(dev, &h);
        }
        if (pushed)
                vs__notify(dev, vq, VS_CTRL_TXQ);
        if (vs_vq_has_avail(vq))
                vs__schedule(dev, VS_CTRL_TXQ);
}
