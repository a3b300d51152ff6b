/* SPDX-License-Identifier: MIT */
/*
 * The backend driven the way QEMU >= 10.2 drives it (qemu-frontend.md):
 * protocol negotiation before SET_OWNER, ring addresses as QEMU virtual
 * addresses, call fds replaced twice per start, stop = ENABLE 0 +
 * GET_VRING_BASE, cont = start from the returned bases without
 * DEVICE_READY, reset = a full new probe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_env.h"

/* Port 0 console, port 1 named and open on both sides, port 2 unnamed. */
static struct fake_driver *env_up(struct fake_env *e,
                                  const struct fake_driver_cfg *cfg)
{
        static const struct fake_env_spec dev3 = {
                .dev = { .max_ports = 4 },
                .drv = { .style = FAKE_STYLE_QEMU },
                .ports = { { 0, NULL, true, false, false },
                           { 1, "org.test.port1", false, true, true },
                           { 2, NULL, false, false, false } },
                .boot = true,
        };

        return fake_env_up_drv(e, &dev3, cfg);
}

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(i * 13 + seed + i / 253);
}

/* One round trip on port 1; @tag keeps the bytes of each call distinct. */
static void ping(struct fake_env *e, const char *tag)
{
        size_t n = strlen(tag), had_in = e->p[1]->in_len,
               had_out = e->d->port[1].len;

        assert_int_equal(fake_guest_write(e->d, 1, tag, n), (ssize_t)n);
        FAKE_OK(e->d, fake_port_send(e->p[1], tag, n));
        FAKE_OK(e->d, fake_service(e->d));
        assert_int_equal(e->p[1]->in_len, had_in + n);
        assert_memory_equal(e->p[1]->in + had_in, tag, n);
        assert_int_equal(e->d->port[1].len, had_out + n);
        assert_memory_equal(e->d->port[1].data + had_out, tag, n);
}

static void test_qemu_sequence(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;

        d = env_up(e, NULL);
        assert_true(d->features & (1ull << VS_F_VERSION_1));
        assert_true(d->features & (1ull << VS_CONSOLE_F_MULTIPORT));
        assert_int_equal(d->qsize, 64);
        /* ring addresses were QEMU's, distinct from the gpa */
        assert_true(fake_gpa_to_uva(d, d->vq[0].desc_gpa) != d->vq[0].desc_gpa);
        assert_true(fake_log_find(d, 0, 1, FAKE_C_PORT_NAME, false) >= 0);
        assert_string_equal(d->port[1].name, "org.test.port1");
        assert_false(d->port[2].named);
        assert_true(d->port[1].host_open);
        ping(e, "hello qemu");
        assert_string_equal(fake_error(d), "");
}

/* GET_QUEUE_NUM answers the queue count when MQ is offered. */
static void test_qemu_queue_num(void **state)
{
        struct fake_env *e = *state;

        env_up(e, NULL);
        if (e->d->pf & (1ull << FAKE_PF_MQ))
                assert_int_equal(e->d->queue_num, 10);
        else
                assert_int_equal(e->d->queue_num, 0);
}

/* The device signals only the newest call fd of each ring. */
static void test_qemu_double_call(void **state)
{
        struct fake_env *e = *state;
        unsigned q = fake_port_vq(1, true);
        struct fake_driver *d;

        d = env_up(e, NULL);
        /* realize's fd, start's fd: both replaced */
        assert_true(d->vq[q].call_old[0] >= 0);
        assert_true(d->vq[q].call_old[1] >= 0);
        d->vq[q].calls = 0;
        FAKE_OK(d, fake_port_send(e->p[1], "new fd", 6));
        FAKE_OK(d, fake_service(d));
        assert_true(d->vq[q].calls > 0);
        assert_int_equal(d->port[1].len, 6);
        /* fake_vq_drain_calls() fails on any signal to an old fd */
        assert_string_equal(fake_error(d), "");
}

/* num_vqs larger than the guest uses: extra rings enabled, never used. */
static void test_qemu_extra_rings(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_QEMU, .num_vqs = 12 };
        struct fake_driver *d;

        /* QEMU's num_vqs=12 for a device whose config says 4 ports (10
         * rings): observed to work with QEMU, so rings 10 and 11 must be
         * accepted, enabled, and left alone */
        d = env_up(e, &c);
        assert_int_equal(d->nvqs, 10);
        assert_int_equal(d->num_vqs, 12);
        ping(e, "extra");
        FAKE_OK(d, fake_qemu_stop(d));
        assert_int_equal(d->base[10], 0);
        assert_int_equal(d->base[11], 0);
        FAKE_OK(d, fake_qemu_cont(d));
        ping(e, "extra again");
        assert_int_equal(e->h->closed_calls, 0);
}

/* stop/cont while idle: bases resume, no DEVICE_READY, state kept. */
static void test_qemu_stop_cont_idle(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        unsigned log0;

        d = env_up(e, NULL);
        ping(e, "before");
        FAKE_OK(d, fake_qemu_stop(d));
        for (unsigned q = 0; q < d->nvqs; q++) {
                /* nothing held: the base is where the used ring is */
                if (!(q & 1) || q == 3 || q == fake_port_vq(1, false))
                        assert_int_equal(d->base[q], d->vq[q].used->idx);
        }
        assert_int_equal(d->base[2], d->vq[2].used->idx);
        log0 = d->nlog;
        FAKE_OK(d, fake_qemu_cont(d));
        assert_int_equal(fake_log_find(d, log0, 1, FAKE_C_PORT_ADD, false), -1);
        assert_int_equal(d->nlog, log0);
        assert_true(vs_port_guest_connected(e->p[1]->port));
        assert_int_equal(e->p[1]->guest_close_calls, 0);
        ping(e, "after");
        /* many more, to wrap the 64-entry rings across the resume point */
        for (int i = 0; i < 80; i++)
                ping(e, "wrap");
}

/* While stopped the device touches no ring, whatever the host does. */
static void test_qemu_stopped_untouched(void **state)
{
        struct fake_env *e = *state;
        uint16_t idx[10];
        uint64_t one = 1;
        struct fake_driver *d;
        ssize_t w;

        d = env_up(e, NULL);
        FAKE_OK(d, fake_qemu_stop(d));
        for (unsigned q = 0; q < 10; q++)
                idx[q] = d->vq[q].used->idx;
        w = vs_port_write(e->p[1]->port, "held", 4);
        assert_true(w <= 0);
        /* the guest queued data before the pause; a stale kick arrives */
        assert_true(fake_vq_post_data(d, fake_port_vq(1, false), "x", 1) >= 0);
        assert_int_equal(write(d->vq[fake_port_vq(1, false)].kick, &one, 8), 8);
        assert_true(fake_host_pump(e->h) >= 0);
        for (unsigned q = 0; q < 10; q++)
                assert_int_equal(d->vq[q].used->idx, idx[q]);
        assert_int_equal(e->p[1]->in_len, 0);
        /* after cont the queued byte and the host data go through */
        FAKE_OK(d, fake_qemu_cont(d));
        FAKE_OK(d, fake_vq_kick(d, fake_port_vq(1, false)));
        FAKE_OK(d, fake_port_send(e->p[1], "late", 4));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->in_len, 1);
        assert_int_equal(d->port[1].len, 4);
}

/*
 * stop/cont in the middle of a guest->host transfer the host is taking
 * slowly (the device holds a partly consumed tx buffer) and of a
 * host->guest one the guest has no room for: after cont both streams go on
 * byte-exact, no duplicate, no loss, every tx buffer returned once.
 */
static void test_qemu_stop_cont_mid_transfer(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_QEMU, .rx_fill = 2 };
        static uint8_t up[70000], down[30000];
        unsigned tx = fake_port_vq(1, false);
        struct fake_driver *d;

        d = env_up(e, &c);
        pattern(up, sizeof(up), 1);
        pattern(down, sizeof(down), 2);
        e->p[1]->take_limit = 5000;
        assert_int_equal(fake_guest_write(d, 1, up, sizeof(up)), sizeof(up));
        FAKE_OK(d, fake_port_send(e->p[1], down, sizeof(down)));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->in_len, 5000);
        FAKE_OK(d, fake_qemu_stop(d));
        /* the resume point is a sane index: not past what was posted */
        assert_true((uint16_t)(d->base[tx] - d->vq[tx].used->idx) <=
                    (uint16_t)(d->vq[tx].avail_idx - d->vq[tx].used->idx));
        FAKE_OK(d, fake_qemu_cont(d));
        for (int i = 0; i < 100 && e->p[1]->in_len < sizeof(up); i++) {
                fake_port_unthrottle(e->p[1], 9000);
                FAKE_OK(d, fake_service(d));
                if (i == 3) {   /* and once more mid-way */
                        FAKE_OK(d, fake_qemu_stop(d));
                        FAKE_OK(d, fake_qemu_cont(d));
                }
        }
        assert_int_equal(e->p[1]->in_len, sizeof(up));
        assert_memory_equal(e->p[1]->in, up, sizeof(up));
        assert_int_equal(d->port[1].len, sizeof(down));
        assert_memory_equal(d->port[1].data, down, sizeof(down));
        assert_int_equal(d->vq[tx].last_used, d->vq[tx].avail_idx);
        ping(e, "still fine");
}

/* system_reset: a full probe from base 0 with a new DEVICE_READY. */
static void test_qemu_reset(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        unsigned log0;

        d = env_up(e, NULL);
        ping(e, "first life");
        log0 = d->nlog;
        FAKE_OK(d, fake_qemu_reset(d));
        assert_true(fake_log_find(d, log0, FAKE_BAD_ID, FAKE_C_DEVICE_READY, true) >= 0);
        for (uint32_t id = 0; id < 3; id++)
                assert_true(fake_log_find(d, log0, id, FAKE_C_PORT_ADD, false) >= 0);
        assert_true(d->port[1].host_open);
        assert_string_equal(d->port[1].name, "org.test.port1");
        /* the guest's port state was reset with the driver */
        assert_false(vs_port_guest_connected(e->p[1]->port));
        FAKE_OK(d, fake_port_send(e->p[1], "wait", 4));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[1].len, 0);
        FAKE_OK(d, fake_guest_open(d, 1, true));
        assert_int_equal(d->port[1].len, 4);
        assert_memory_equal(d->port[1].data, "wait", 4);
        e->p[1]->in_len = 0;
        ping(e, "second life");
}

/* Two regions, rings and buffers in the upper one, uva below the other. */
static void test_qemu_uva_two_regions(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = {
                .style = FAKE_STYLE_QEMU, .nregions = 2, .alloc_region = 1,
                .regions = {
                        { 0, 64 << 20, 0x7f0000000000ull, 0 },
                        { 0x100000000ull, 64 << 20, 0x7e0000000000ull, 64 << 20 },
                },
        };

        env_up(e, &c);
        assert_true(e->d->vq[0].desc_gpa >= 0x100000000ull);
        ping(e, "high memory");
}

#define T(f) FAKE_ENV_TEST(f)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_qemu_sequence), T(test_qemu_queue_num),
                T(test_qemu_double_call), T(test_qemu_extra_rings),
                T(test_qemu_stop_cont_idle), T(test_qemu_stopped_untouched),
                T(test_qemu_stop_cont_mid_transfer), T(test_qemu_reset),
                T(test_qemu_uva_two_regions),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
