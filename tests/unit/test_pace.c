// SPDX-License-Identifier: MIT
/*
 * Pacing (src/lib/serial/pace.c): what the device asks of a guest that
 * streams, counted. The device runs over vhost-user; the guest is the
 * fake, driven step by step as a guest slower than the device is: the
 * backend runs after each buffer the guest posts or reaps. The timer is
 * the test's own, so that no case depends on how fast the machine is (the
 * test ends each period), except one case with the vs_vu's timerfd.
 * Baselines run with pacing off (vs_device_set_timer(NULL)); every paced
 * case ends with the timer cancelled after at most two runs.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fake_env.h"
#include "serial/serial.h"

#define RXQ 4u          /* port 1 */
#define TXQ 5u
#define RING 256u       /* UML's queue size */

/* The timer: off, the test's own (it ends a period by calling
 * vs_device_timer() itself: no case depends on how fast it runs), or the
 * vs_vu's timerfd. */
enum timer { OFF, MANUAL, REAL };

static bool manual_armed;
static bool manual_fails;       /* arm() fails: the device stops pacing */

static int manual_arm(void *opaque, uint64_t usec)
{
        (void)opaque;
        if (manual_fails)
                return -EIO;
        manual_armed = usec != 0;
        return 0;
}

static void up(struct fake_env *e, enum timer t)
{
        static const struct fake_env_spec spec = {
                .dev = { .max_ports = 2 },
                .drv = { .style = FAKE_STYLE_UML },
                .ports = { { 1, "org.pace.one", false, true, true } },
                .boot = true,
        };

        fake_env_up(e, &spec);
        assert_true(e->p[1]->guest_connected);
        manual_armed = false;
        manual_fails = false;
        if (t != REAL)
                vs_device_set_timer(e->h->dev, t == MANUAL ? manual_arm : NULL, NULL);
        assert_true(fake_host_pump(e->h) >= 0);
}

/* The period ends (MANUAL): what the timer does. */
static void period_ends(struct fake_env *e)
{
        assert_true(manual_armed);
        manual_armed = false;
        vs_device_timer(e->h->dev);
        assert_true(fake_host_pump(e->h) >= 0);
}

static struct vs_pace_stats pace(struct fake_env *e)
{
        struct vs_pace_stats st;

        vs_device_get_pace_stats(e->h->dev, &st);
        return st;
}

static uint64_t rx_kicks(struct fake_env *e)
{
        struct vs_queue_stats st;

        assert_int_equal(vs_device_get_queue_stats(e->h->dev, RXQ, &st), 0);
        return st.kicks;
}

/* After the traffic the timer runs at most twice (a held notification,
 * then the end of the period) and is then cancelled. */
static void manual_settles(struct fake_env *e)
{
        for (int i = 0; i < 2 && manual_armed; i++)
                period_ends(e);
        assert_false(manual_armed);
        assert_false(e->h->dev->pace.armed);
}

/* The same with the vs_vu's timerfd, then no callback at all in 10 ms.
 * Bounded wait (2 s) for a loaded machine; the count is what is checked. */
static void real_settles(struct fake_env *e)
{
        uint64_t runs = pace(e).timer_runs;
        struct vs_epoll_stats a, b;

        for (int i = 0; i < 1000 && e->h->dev->pace.armed; i++)
                assert_true(vs_epoll_run_once(e->h->ep, 2) >= 0);
        assert_false(e->h->dev->pace.armed);
        assert_true(pace(e).timer_runs - runs <= 2);
        assert_true(fake_host_pump(e->h) >= 0);
        vs_epoll_get_stats(e->h->ep, &a);
        assert_true(vs_epoll_run_once(e->h->ep, 10) >= 0);
        vs_epoll_get_stats(e->h->ep, &b);
        assert_int_equal(b.dispatched, a.dispatched);
}

/*
 * The guest reads @n used receive buffers one at a time, re-posting each
 * and kicking if the device asked, as Linux does, and the backend runs
 * after each: a reader slower than the device.
 */
static void read_slowly(struct fake_env *e, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                uint16_t head;
                uint32_t len;

                assert_true(fake_host_pump(e->h) >= 0);
                assert_int_equal(fake_vq_get_used(e->d, RXQ, &head, &len), 1);
                assert_int_equal(len, FAKE_RX_BUF);
                assert_true(fake_vq_post(e->d, RXQ, e->d->vq[RXQ].d[head].gpa,
                                         FAKE_RX_BUF) >= 0);
                assert_int_equal(fake_vq_kick(e->d, RXQ), 0);
        }
        assert_true(fake_host_pump(e->h) >= 0);
}

/* 3 MiB waiting on the host side: the guest's 256 buffers (1 MiB) fill. */
static void host_floods(struct fake_env *e)
{
        static uint8_t data[3u << 20];

        memset(data, 'h', sizeof(data));
        assert_int_equal(fake_port_send(e->p[1], data, sizeof(data)), 0);
        assert_true(fake_host_pump(e->h) >= 0);
        assert_int_equal((uint16_t)(e->d->vq[RXQ].used->idx), RING);
}

/* Up with timer @t, the host floods, the guest reads 2 rings' worth
 * slowly: the receive kicks that took. */
static uint64_t kicks_of_slow_reads(struct fake_env *e, enum timer t)
{
        uint64_t k0;

        up(e, t);
        host_floods(e);
        k0 = rx_kicks(e);
        read_slowly(e, 2 * RING);
        return rx_kicks(e) - k0;
}

/* Without pacing, a reader slower than the device kicks per buffer. */
static void test_rx_kicks_unpaced(void **state)
{
        struct fake_env *e = *state;

        assert_true(kicks_of_slow_reads(e, OFF) >= 2 * RING - 2);
        assert_int_equal(pace(e).kick_batches, 0);
}

/* Paced: one kick per batch of 16 buffers (a quarter of 256, at most 16). */
static void test_rx_kicks_paced(void **state)
{
        struct fake_env *e = *state;

        assert_true(kicks_of_slow_reads(e, MANUAL) <= 2 * RING / VS_RX_KICK_BATCH + 1);
        assert_true(pace(e).kick_batches >= 2 * RING / VS_RX_KICK_BATCH - 1);
        assert_int_equal(pace(e).batch_timeouts, 0);
        manual_settles(e);
}

/*
 * A guest that posts fewer buffers than the batch and pauses: no kick, so
 * the timer ends the batch and the device fills what was posted. Until the
 * guest kicks again the device waits for one buffer (taken at once), then
 * batches again.
 */
static void test_rx_batch_timeout(void **state)
{
        struct fake_env *e = *state;
        uint16_t used;
        uint64_t k0;

        up(e, MANUAL);
        host_floods(e);
        read_slowly(e, 2 * VS_RX_KICK_BATCH);   /* batches under way */
        used = e->d->vq[RXQ].used->idx;
        read_slowly(e, 3);                      /* short of a batch */
        assert_int_equal((uint16_t)(e->d->vq[RXQ].used->idx - used), 0);
        period_ends(e);
        assert_int_equal(pace(e).batch_timeouts, 1);
        assert_int_equal((uint16_t)(e->d->vq[RXQ].used->idx - used), 3);
        read_slowly(e, 1);
        assert_int_equal((uint16_t)(e->d->vq[RXQ].used->idx - used), 4);
        /* That kick ends the pause: batches again, as many as before. */
        k0 = rx_kicks(e);
        read_slowly(e, 2 * VS_RX_KICK_BATCH);
        assert_true(rx_kicks(e) - k0 <= 3);
        assert_int_equal(pace(e).batch_timeouts, 1);
        manual_settles(e);
}

/*
 * A guest that re-posts 3 buffers a period and waits: every batch of 16
 * times out. From the second timeout in a row the bound halves, so the
 * batch shrinks to what the guest completes (2 of its 3), and no posted
 * buffer waits more than one period: each period takes all 3.
 */
static void test_rx_batches_shrink_for_a_slow_driver(void **state)
{
        struct fake_env *e = *state;
        struct vs_port *port;
        uint16_t used;

        up(e, MANUAL);
        host_floods(e);
        port = e->h->dev->ports[1];
        for (int i = 0; i < 20; i++) {
                used = e->d->vq[RXQ].used->idx;
                read_slowly(e, 3);
                if (manual_armed)
                        period_ends(e);
                assert_int_equal((uint16_t)(e->d->vq[RXQ].used->idx - used), 3);
        }
        assert_true(port->rx_posted / VS_RX_KICK_SHARE <= 2);
        assert_true(pace(e).batch_timeouts <= 20);
        manual_settles(e);
}

/*
 * The guest writes @n buffers one at a time, reaping what was used before
 * each (Linux's reclaim_consumed_buffers()), the backend running after
 * each; returns the notifications it got.
 */
static uint64_t write_slowly(struct fake_env *e, unsigned n)
{
        uint64_t calls = 0;

        for (unsigned i = 0; i < n; i++) {
                uint16_t head;
                uint32_t len;

                while (fake_vq_get_used(e->d, TXQ, &head, &len) == 1)
                        ;
                assert_int_equal(fake_guest_write(e->d, 1, "0123456789", 10), 10);
                assert_true(fake_host_pump(e->h) >= 0);
                calls += fake_vq_drain_calls(e->d, TXQ);
        }
        return calls;
}

static void test_tx_notifies_unpaced(void **state)
{
        struct fake_env *e = *state;

        up(e, OFF);
        assert_int_equal(write_slowly(e, 64), 64);
        assert_int_equal(pace(e).notifies_held, 0);
}

/*
 * Paced: the first write is notified at once, later ones in the same
 * period wait for the timer, which sends one notification for all of
 * them; every byte reached the host meanwhile.
 */
static void test_tx_notifies_held(void **state)
{
        struct fake_env *e = *state;
        uint64_t calls;

        up(e, MANUAL);
        calls = write_slowly(e, 64);
        assert_true(calls >= 1);
        assert_true(calls + pace(e).notifies_held >= 64);
        assert_int_equal(calls, 1);
        assert_int_equal(pace(e).notifies_held, 63);
        assert_int_equal(e->p[1]->in_len, 640);
        period_ends(e);                 /* the held one goes */
        assert_int_equal(fake_vq_drain_calls(e->d, TXQ), 1);
        assert_false(e->h->dev->ports[1]->tx_held);
        period_ends(e);                 /* nothing more: the period closes */
        assert_int_equal(fake_vq_drain_calls(e->d, TXQ), 0);
        assert_false(manual_armed);
}

/* A write after a quiet period is notified at once (a round trip waits
 * for nothing). */
static void test_tx_quiet_port_notified_at_once(void **state)
{
        struct fake_env *e = *state;

        up(e, MANUAL);
        assert_int_equal(write_slowly(e, 1), 1);
        manual_settles(e);
        assert_int_equal(write_slowly(e, 1), 1);
        manual_settles(e);
}

/*
 * The guest posted half its ring without reaping: it may be about to wait
 * for room, so the notification goes at once, inside a period too.
 */
static void test_tx_short_driver_notified_at_once(void **state)
{
        struct fake_env *e = *state;
        uint64_t held;
        uint16_t head;
        uint32_t len;

        up(e, MANUAL);
        assert_int_equal(write_slowly(e, 1), 1);        /* the period starts */
        assert_int_equal(fake_vq_get_used(e->d, TXQ, &head, &len), 1);
        held = pace(e).notifies_held;
        for (unsigned i = 0; i < RING / 2; i++)
                assert_int_equal(fake_vq_post_data(e->d, TXQ, "x", 1) >= 0, 1);
        assert_int_equal(fake_vq_kick(e->d, TXQ), 0);
        assert_true(fake_host_pump(e->h) >= 0);
        assert_int_equal(fake_vq_drain_calls(e->d, TXQ), 1);
        assert_int_equal(pace(e).notifies_held, held);
        manual_settles(e);
}

/*
 * The host side held the data back (throttled) since the last
 * notification: the guest may have filled its ring and wait for room, so
 * the notification for the chains taken afterwards goes at once.
 */
static void test_tx_after_backpressure_notified_at_once(void **state)
{
        struct fake_env *e = *state;
        uint64_t held;

        up(e, MANUAL);
        assert_int_equal(write_slowly(e, 1), 1);        /* the period starts */
        held = pace(e).notifies_held;
        e->p[1]->take_limit = 0;
        assert_int_equal(write_slowly(e, 1), 0);
        assert_true(vs_port_throttled(e->p[1]->port));
        fake_port_unthrottle(e->p[1], SIZE_MAX);
        assert_true(fake_host_pump(e->h) >= 0);
        assert_int_equal(fake_vq_drain_calls(e->d, TXQ), 1);
        assert_int_equal(pace(e).notifies_held, held);
        assert_int_equal(e->p[1]->in_len, 20);
        manual_settles(e);
}

/*
 * A hostile used_event (past the ring, or moved at random) only decides
 * between now and the timer: the data still flows, and the timer still
 * settles.
 */
static void test_tx_hostile_used_event(void **state)
{
        struct fake_env *e = *state;
        struct fake_vq *vq;

        up(e, MANUAL);
        vq = &e->d->vq[TXQ];
        for (unsigned i = 0; i < 32; i++) {
                vq->avail->ring[vq->num] = (uint16_t)(i * 7919u);
                assert_int_equal(fake_guest_write(e->d, 1, "x", 1), 1);
                assert_true(fake_host_pump(e->h) >= 0);
        }
        assert_int_equal(e->p[1]->in_len, 32);
        manual_settles(e);
}

/* The guest closes the port with a notification held: it is sent. */
static void test_tx_held_sent_on_close(void **state)
{
        struct fake_env *e = *state;
        uint64_t calls;

        up(e, MANUAL);
        write_slowly(e, 4);
        calls = e->d->vq[TXQ].calls;
        assert_true(e->h->dev->ports[1]->tx_held);
        FAKE_OK(e->d, fake_guest_open(e->d, 1, false));
        fake_vq_drain_calls(e->d, TXQ);
        assert_false(e->h->dev->ports[1]->tx_held);
        /* the control message's service counted the call in vq.calls */
        assert_int_equal(e->d->vq[TXQ].calls, calls + 1);
        manual_settles(e);
}

/* A timer that cannot be armed: the device stops pacing, and kicks and
 * notifications go per buffer as without a timer. */
static void test_arm_failure_stops_pacing(void **state)
{
        struct fake_env *e = *state;
        uint64_t k0;

        up(e, MANUAL);
        manual_fails = true;
        host_floods(e);
        k0 = rx_kicks(e);
        read_slowly(e, 2 * RING);
        assert_true(rx_kicks(e) - k0 >= 2 * RING - 2);
        assert_int_equal(write_slowly(e, 8), 8);
        assert_int_equal(pace(e).notifies_held, 0);
        assert_true(e->h->dev->pace.arm == NULL);
        assert_false(manual_armed);
}

/* The vs_vu's own timerfd: held notifications and the end of a batch
 * arrive without the test's help, and the timer then goes quiet. */
static void test_real_timer(void **state)
{
        struct fake_env *e = *state;
        uint64_t calls;

        up(e, REAL);
        host_floods(e);
        read_slowly(e, 3);              /* short of a batch */
        calls = write_slowly(e, 8);
        real_settles(e);
        calls += fake_vq_drain_calls(e->d, TXQ);
        /* ours, and more if a slow build (ASan) took a period per batch */
        assert_true(pace(e).batch_timeouts >= 1);
        assert_false(e->h->dev->ports[1]->tx_held);
        /* the first at once, the held ones by the timer (or more, if a
         * slow machine ended periods between the writes) */
        assert_true(calls >= 2 && calls + pace(e).notifies_held >= 8);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                FAKE_ENV_TEST(test_rx_kicks_unpaced),
                FAKE_ENV_TEST(test_rx_kicks_paced),
                FAKE_ENV_TEST(test_rx_batch_timeout),
                FAKE_ENV_TEST(test_rx_batches_shrink_for_a_slow_driver),
                FAKE_ENV_TEST(test_tx_notifies_unpaced),
                FAKE_ENV_TEST(test_tx_notifies_held),
                FAKE_ENV_TEST(test_tx_quiet_port_notified_at_once),
                FAKE_ENV_TEST(test_tx_short_driver_notified_at_once),
                FAKE_ENV_TEST(test_tx_after_backpressure_notified_at_once),
                FAKE_ENV_TEST(test_tx_hostile_used_event),
                FAKE_ENV_TEST(test_tx_held_sent_on_close),
                FAKE_ENV_TEST(test_arm_failure_stops_pacing),
                FAKE_ENV_TEST(test_real_timer),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
