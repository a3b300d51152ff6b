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

static uint32_t msg_id(const struct vs_ctrl_msg *m)
{
        uint32_t id;

        memcpy(&id, m->data, 4);
        return le32toh(id);
}

static uint16_t msg_event(const struct vs_ctrl_msg *m)
{
        uint16_t ev;

        memcpy(&ev, m->data + 4, 2);
        return le16toh(ev);
}

/* The queued message for (@id, @event), or NULL. */
static struct vs_ctrl_msg *find_queued(struct vs_device *dev, uint32_t id,
                                       uint16_t event)
{
        struct vs_ctrl_msg *found = NULL;

        for (struct vs_ctrl_msg *m = dev->ctrl_head; m; m = m->next)
                if (msg_id(m) == id && msg_event(m) == event)
                        found = m;      /* the last one */
        return found;
}

/* Unlink and free @from and every later message about the same port. */
static void drop_from(struct vs_device *dev, struct vs_ctrl_msg *from)
{
        uint32_t id = msg_id(from);
        struct vs_ctrl_msg **link = &dev->ctrl_head, *prev = NULL;
        bool past = false;

        while (*link) {
                struct vs_ctrl_msg *m = *link;

                past |= m == from;
                if (past && msg_id(m) == id) {
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

/*
 * Is the last queued (@id, @event) message this very one, with no add or
 * remove of the port after it? Then the guest reads it once anyway: a
 * guest repeating PORT_READY asks for what is already on its way, and must
 * not get a queue's worth of copies (a full queue refuses the host).
 */
static bool queued_already(struct vs_device *dev, uint32_t id, uint16_t event,
                           uint16_t value, const void *extra, uint32_t extra_len)
{
        struct vs_ctrl_msg *m = find_queued(dev, id, event);
        uint16_t le_val = htole16(value);

        if (!m || event == VS_CTRL_PORT_ADD || event == VS_CTRL_PORT_REMOVE)
                return false;
        for (struct vs_ctrl_msg *n = m->next; n; n = n->next)
                if (msg_id(n) == id && (msg_event(n) == VS_CTRL_PORT_ADD ||
                                        msg_event(n) == VS_CTRL_PORT_REMOVE))
                        return false;
        return m->len == VS_CTRL_HDR_LEN + extra_len && memcmp(m->data + 6, &le_val, 2) == 0 &&
               (!extra_len || memcmp(m->data + VS_CTRL_HDR_LEN, extra, extra_len) == 0);
}

/*
 * A message the guest has not taken yet can be brought up to date instead of
 * queueing another: the guest only cares about a console's latest size, and
 * about a port added and removed (or opened and closed) before it looked,
 * not at all. This keeps the queue bounded by a few messages per port.
 */
static bool coalesce(struct vs_device *dev, uint32_t id, uint16_t event,
                     uint16_t value, const void *extra, uint32_t extra_len)
{
        struct vs_ctrl_msg *m;
        uint16_t le_val = htole16(value);

        if (event == VS_CTRL_PORT_REMOVE && (m = find_queued(dev, id, VS_CTRL_PORT_ADD))) {
                drop_from(dev, m);
                return true;
        }
        if (queued_already(dev, id, event, value, extra, extra_len))
                return true;
        if (event != VS_CTRL_PORT_OPEN && event != VS_CTRL_RESIZE)
                return false;
        m = find_queued(dev, id, event);
        /* Only if nothing about the port was queued after it: order holds. */
        for (struct vs_ctrl_msg *n = m ? m->next : NULL; n; n = n->next)
                if (msg_id(n) == id)
                        return false;
        if (!m || m->len != VS_CTRL_HDR_LEN + extra_len)
                return false;
        if (event == VS_CTRL_PORT_OPEN) {
                uint16_t queued;

                memcpy(&queued, m->data + 6, 2);
                /* A close must reach the guest (its reader sees end of
                 * file): never fold close-then-open. Open-then-close the
                 * guest never saw cancels out; a repeat is a no-op. */
                if (le16toh(queued) == value)
                        return true;
                if (value != 0)
                        return false;
                drop_from(dev, m);
                return true;
        }
        memcpy(m->data + 6, &le_val, 2);
        if (extra_len)
                memcpy(m->data + VS_CTRL_HDR_LEN, extra, extra_len);
        return true;
}

bool vs__ctrl_room(const struct vs_device *dev)
{
        return dev->ctrl_len < dev->ctrl_max;
}

int vs__ctrl_send(struct vs_device *dev, uint32_t id, uint16_t event,
                  uint16_t value, const void *extra, uint32_t extra_len)
{
        struct vs_ctrl_msg *m;
        uint32_t le_id = htole32(id);
        uint16_t le_ev = htole16(event), le_val = htole16(value);

        if (coalesce(dev, id, event, value, extra, extra_len))
                return 0;
        if (!vs__ctrl_room(dev))
                return -ENOSPC;
        m = malloc(sizeof(*m) + VS_CTRL_HDR_LEN + extra_len);
        if (!m)
                return -ENOMEM;
        m->next = NULL;
        m->len = VS_CTRL_HDR_LEN + extra_len;
        memcpy(m->data, &le_id, 4);
        memcpy(m->data + 4, &le_ev, 2);
        memcpy(m->data + 6, &le_val, 2);
        if (extra_len)
                memcpy(m->data + VS_CTRL_HDR_LEN, extra, extra_len);
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

                /* An empty ring re-arms the guest's kick (EVENT_IDX). */
                if (vs__pop(dev, VS_CTRL_RXQ, e) <= 0)
                        break;
                pushed = true;
                /* A buffer too small for the message is returned empty;
                 * the message waits for the next one. */
                if (e->in_len < m->len) {
                        vs_vq_push(vq, e->head, 0);
                        continue;
                }
                vs_vq_push(vq, e->head, vs__iov_fill(&e->iov[e->out_num], e->in_num,
                                                  m->data, m->len));
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

static void ctrl_handle(struct vs_device *dev, uint32_t id, uint16_t event,
                        uint16_t value)
{
        struct vs_port *port;

        if (event == VS_CTRL_DEVICE_READY) {
                if (value == 1)
                        device_ready(dev);
                return;
        }
        port = vs_port_find(dev, id);
        if (!port)
                return;         /* a port we never added: ignored */
        if (event == VS_CTRL_PORT_READY && value == 1)
                port_ready(dev, port);
        else if (event == VS_CTRL_PORT_READY)
                port->guest_ready = false;
        else if (event == VS_CTRL_PORT_OPEN)
                vs__port_set_guest_connected(port, value != 0);
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
                uint8_t hdr[VS_CTRL_HDR_LEN];
                size_t got = 0;
                uint32_t id;
                uint16_t event, value;

                if (vs__pop(dev, VS_CTRL_TXQ, e) <= 0)
                        break;
                for (unsigned i = 0; i < e->out_num && got < sizeof(hdr); i++) {
                        size_t n = e->iov[i].iov_len < sizeof(hdr) - got ?
                                   e->iov[i].iov_len : sizeof(hdr) - got;

                        memcpy(hdr + got, e->iov[i].iov_base, n);
                        got += n;
                }
                vs_vq_push(vq, e->head, 0);
                pushed = true;
                if (got < sizeof(hdr))
                        continue;
                memcpy(&id, hdr, 4);
                memcpy(&event, hdr + 4, 2);
                memcpy(&value, hdr + 6, 2);
                ctrl_handle(dev, le32toh(id), le16toh(event), le16toh(value));
        }
        if (pushed)
                vs__notify(dev, vq, VS_CTRL_TXQ);
        if (vs_vq_has_avail(vq))
                vs__schedule(dev, VS_CTRL_TXQ);
}
