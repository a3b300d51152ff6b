// SPDX-License-Identifier: MIT
/*
 * Pacing: asking less of the guest when it streams.
 *
 * Every kick and every interrupt crosses processes (a vhost-user backend
 * wakes for each kick; the VMM wakes for each call and injects an
 * interrupt), and a guest that is slower than the device makes one of
 * each per buffer. Two places where Linux's virtio_console asks for more
 * than it needs, both paced by one timer the transport gives us
 * (vs_device_set_timer()):
 *
 * Receive kicks. When host data waits and the guest has no receive buffer
 * left, the device asks for a kick. Linux re-posts each buffer as soon as
 * it has read it, with a kick check per buffer, so the device wakes per
 * buffer. Here it asks for the kick only after a batch: at most 16, and a
 * quarter of the most buffers it ever saw posted at once. That cannot
 * stall a reader of Linux's kind: when the device runs out, every buffer
 * the guest has is full of unread data, and a reader that wants more
 * re-posts all but the one it is reading. The timer ends a batch that is
 * not complete within a period, so no posted buffer waits longer than
 * that. Then the device waits for single buffers until the guest kicks (a
 * reader that paused), and from the second timeout in a row on the bound
 * halves (a driver that posts fewer buffers than it did, or posts them a
 * few at a time): batches shrink to what the guest completes.
 *
 * Transmit interrupts. Linux asks for an interrupt after each transmit
 * buffer (used_event = its last reaped index) but reaps on its own each
 * time it adds a buffer: it needs the interrupt only when it runs out of
 * descriptors. So after a notification, later ones on that queue wait for
 * the timer (one period at most; the spec only says a notification is
 * due, not when), unless the driver may be about to wait for room: half
 * its ring unreaped, or the host side held its data back (throttled)
 * since the last notification, so it may have filled the ring with
 * chains of many descriptors. Then it goes at once. A port that was quiet
 * for a period gets its first notification at once (a single write, a
 * round trip: no delay).
 *
 * Bounded: one timer per device, armed only while a port waits for a
 * batch or had a notification in the current period, so an idle device
 * costs no wake-up; one timer run scans the device's ports.
 */
#include "serial.h"

static void pace_arm(struct vs_device *dev, uint64_t usec)
{
        struct vs_pace *p = &dev->pace;

        p->st.timer_arms++;
        if (p->arm(p->opaque, usec) == 0) {
                p->armed = usec != 0;
                return;
        }
        /* No timer: send what waited for it, and stop pacing. */
        p->arm = NULL;
        vs__pace_timer(dev);
        vs__pace_clear(dev);
}

/* Arm the timer while anything waits for it, cancel it when nothing does. */
static void pace_update(struct vs_device *dev)
{
        struct vs_pace *p = &dev->pace;

        if (!p->arm)
                return;
        if (p->users && !p->armed)
                pace_arm(dev, VS_PACE_USEC);
        else if (!p->users && p->armed)
                pace_arm(dev, 0);
}

static void set_flag(struct vs_device *dev, bool *flag, bool on)
{
        if (*flag == on)
                return;
        *flag = on;
        if (on)
                dev->pace.users++;
        else
                dev->pace.users--;
}

static bool pacing(const struct vs_device *dev, const struct vs_vq *vq)
{
        return dev->pace.arm && vq->event_idx;
}

/* ---- receive kicks ------------------------------------------------------ */

unsigned vs__pace_rx_batch(struct vs_port *port, struct vs_vq *vq)
{
        struct vs_device *dev = port->dev;
        unsigned n = port->rx_posted / VS_RX_KICK_SHARE;

        if (!pacing(dev, vq) || n <= 1)
                return 1;
        if (port->rx_skip)
                return 1;
        if (n > VS_RX_KICK_BATCH)
                n = VS_RX_KICK_BATCH;
        if (!port->rx_batched) {
                dev->pace.st.kick_batches++;
                set_flag(dev, &port->rx_batched, true);
                pace_update(dev);
        }
        /* The timer could not be armed: pacing stopped, no batch. */
        return dev->pace.arm ? n : 1;
}

/* No batch any more: a kick at the first buffer (only a batch with the
 * timer armed may ask for more). */
static void rx_unbatch(struct vs_port *port)
{
        struct vs_device *dev = port->dev;

        set_flag(dev, &port->rx_batched, false);
        vs_vq_set_kick_batch(&dev->vqs[vs__port_rxq(port->id)], 1);
}

void vs__pace_rx_seen(struct vs_port *port, struct vs_vq *vq)
{
        unsigned n = vs_vq_avail_count(vq);

        if (n > port->rx_posted)
                port->rx_posted = (uint16_t)n;
        if (!port->rx_in_timeout)
                port->rx_skip = false;          /* a kick came */
        if (port->rx_batched) {
                /* the guest completed the batch in time */
                port->rx_timeouts = 0;
                rx_unbatch(port);
                pace_update(port->dev);
        }
}

/* The period ended with the batch incomplete: kick per buffer again, and
 * take what the guest did post. */
static void rx_timeout(struct vs_port *port)
{
        struct vs_device *dev = port->dev;
        struct vs_vq *vq = &dev->vqs[vs__port_rxq(port->id)];

        rx_unbatch(port);
        dev->pace.st.batch_timeouts++;
        /*
         * A reader that paused (once in a while), or a driver that posts
         * fewer buffers than it did (every time): waits are for one buffer
         * until the guest kicks, and from the second timeout in a row on
         * the bound halves, so that batches stop for a driver that cannot
         * complete them.
         */
        port->rx_skip = true;
        if (port->rx_timeouts < UINT8_MAX && ++port->rx_timeouts >= 2)
                port->rx_posted /= 2;
        if (port->want_guest_ready && vs__can_send(port) && vs_vq_has_avail(vq)) {
                port->rx_in_timeout = true;
                vs__port_guest_ready(port);
                port->rx_in_timeout = false;
        }
}

/* ---- transmit interrupts ------------------------------------------------ */

/* With EVENT_IDX, Linux's used_event is where it last reaped: half the
 * ring posted since then means it may soon wait for room. */
static bool driver_short(struct vs_vq *vq)
{
        return vs_vq_unreaped(vq) >= vq->num / 2u;
}

void vs__pace_tx_done(struct vs_port *port, struct vs_vq *vq, unsigned q)
{
        struct vs_device *dev = port->dev;

        if (pacing(dev, vq) && port->tx_window && !port->tx_backlog && !driver_short(vq)) {
                port->tx_held = true;
                dev->pace.st.notifies_held++;
                return;
        }
        port->tx_held = false;
        port->tx_backlog = false;
        if (vs__notify(dev, vq, q) && pacing(dev, vq)) {
                set_flag(dev, &port->tx_window, true);
                pace_update(dev);
        }
}

/* Send the transmit notification that waited, if one did; true if sent. */
bool vs__pace_send_held(struct vs_port *port)
{
        struct vs_device *dev = port->dev;
        unsigned q = vs__port_txq(port->id);

        if (!port->tx_held)
                return false;
        port->tx_held = false;
        return vs__notify(dev, &dev->vqs[q], q);
}

/* The period ended: send what waited (the window stays open for the next
 * period), or close the window of a port that had nothing more. */
static void tx_period_end(struct vs_port *port)
{
        if (!vs__pace_send_held(port))
                set_flag(port->dev, &port->tx_window, false);
}

/* ---- life cycle --------------------------------------------------------- */

/* The port is going or the guest closed it: send what waited. */
void vs__pace_port_gone(struct vs_port *port)
{
        struct vs_device *dev = port->dev;

        vs__pace_send_held(port);
        set_flag(dev, &port->tx_window, false);
        rx_unbatch(port);
        port->rx_posted = 0;
        port->rx_skip = false;
        port->rx_timeouts = 0;
        pace_update(dev);
}

/* The transport or its timer went: forget everything (nothing to send to). */
void vs__pace_clear(struct vs_device *dev)
{
        for (struct vs_port *p = vs_port_next(dev, NULL); p; p = vs_port_next(dev, p)) {
                p->tx_held = false;
                p->tx_window = false;
                p->rx_batched = false;
                vs_vq_set_kick_batch(&dev->vqs[vs__port_rxq(p->id)], 1);
        }
        dev->pace.users = 0;
        dev->pace.armed = false;
}

int vs_device_set_timer(struct vs_device *dev, int (*arm)(void *opaque, uint64_t usec),
                        void *opaque)
{
        vs__pace_clear(dev);
        dev->pace.arm = arm;
        dev->pace.opaque = opaque;
        return 0;
}

void vs__pace_timer(struct vs_device *dev)
{
        dev->pace.armed = false;
        dev->pace.st.timer_runs++;
        for (struct vs_port *p = vs_port_next(dev, NULL); p; p = vs_port_next(dev, p)) {
                if (p->rx_batched)
                        rx_timeout(p);
                if (p->tx_window)
                        tx_period_end(p);
        }
        pace_update(dev);
}

void vs_device_get_pace_stats(const struct vs_device *dev, struct vs_pace_stats *ret)
{
        *ret = dev->pace.st;
}
