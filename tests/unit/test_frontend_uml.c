/* SPDX-License-Identifier: MIT */
/*
 * The backend driven the way UML's virtio_uml.c and Linux virtio_console
 * drive it (guest-harness.md sections 4 and 5), through the fake driver:
 * real rings in a memfd, vhost-user over a socketpair, call fds that are
 * socketpair ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_env.h"

/* Port 0 console, ports 1 and 2 named; the host side of port 1 is open. */
static const struct fake_env_spec dev3 = {
        .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
        .drv = { .style = FAKE_STYLE_UML },
        .ports = { { 0, NULL, true, false, false }, { 1, "org.test.port1", false, true, false },
                   { 2, "org.test.port2", false, false, false } },
        .boot = true,
};

/* dev3 with @cfg (NULL: its own), the guest's port 1 open. */
static struct fake_driver *up_open1(struct fake_env *e,
                                    const struct fake_driver_cfg *cfg)
{
        struct fake_driver *d = fake_env_up_drv(e, &dev3, cfg);

        FAKE_OK(d, fake_guest_open(d, 1, true));
        return d;
}

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(i * 7 + seed + i / 251);
}

/* Boot and probe: what was negotiated and the control exchange. */
static void test_uml_handshake(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;

        d = fake_env_up(e, &dev3);
        assert_true(d->dev_features & (1ull << FAKE_F_PROTOCOL_FEATURES));
        assert_true(d->features & (1ull << VS_CONSOLE_F_MULTIPORT));
        assert_true(d->features & (1ull << VS_F_VERSION_1));
        assert_true(d->pf & (1ull << FAKE_PF_CONFIG));
        assert_true(d->pf & (1ull << FAKE_PF_BACKEND_REQ));
        assert_int_equal(d->max_nr_ports, 4);
        assert_int_equal(d->nvqs, 10);
        /* DEVICE_READY first, then PORT_ADD for every port */
        assert_int_equal(fake_log_find(d, 0, FAKE_BAD_ID, FAKE_C_DEVICE_READY, true), 0);
        for (uint32_t id = 0; id < 3; id++) {
                int add = fake_log_find(d, 0, id, FAKE_C_PORT_ADD, false);
                int ready = fake_log_find(d, 0, id, FAKE_C_PORT_READY, true);

                assert_true(add > 0);
                assert_true(ready > add);
                assert_true(d->port[id].added);
        }
        assert_int_equal(fake_log_find(d, 0, 3, FAKE_C_PORT_ADD, false), -1);
        assert_true(d->port[0].console);
        assert_false(d->port[1].console);
        assert_string_equal(d->port[1].name, "org.test.port1");
        assert_string_equal(d->port[2].name, "org.test.port2");
        assert_false(d->port[0].named);
        /* PORT_OPEN only for the host-connected port */
        assert_true(d->port[1].host_open);
        assert_false(d->port[2].host_open);
        /* the console counts as opened by the guest */
        assert_int_equal(e->p[0]->guest_open_calls, 1);
        assert_true(vs_port_guest_connected(e->p[0]->port));
        assert_false(vs_port_guest_connected(e->p[1]->port));
        assert_string_equal(fake_error(d), "");
}

/* The control messages after PORT_READY come after it, per port. */
static void test_uml_port_ready_order(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        int ready, name, open, cons;

        d = fake_env_up(e, &dev3);
        ready = fake_log_find(d, 0, 1, FAKE_C_PORT_READY, true);
        name = fake_log_find(d, 0, 1, FAKE_C_PORT_NAME, false);
        open = fake_log_find(d, 0, 1, FAKE_C_PORT_OPEN, false);
        assert_true(name > ready);
        assert_true(open > ready);
        ready = fake_log_find(d, 0, 0, FAKE_C_PORT_READY, true);
        cons = fake_log_find(d, 0, 0, FAKE_C_CONSOLE_PORT, false);
        assert_true(cons > ready);
        assert_int_equal(d->log[cons].value, 1);
        assert_int_equal(fake_log_find(d, 0, 2, FAKE_C_PORT_OPEN, false), -1);
}

static void test_uml_guest_to_host(void **state)
{
        struct fake_env *e = *state;
        static uint8_t big[100000];
        struct fake_driver *d;

        d = up_open1(e, NULL);
        assert_int_equal(e->p[1]->guest_open_calls, 1);
        assert_true(vs_port_guest_connected(e->p[1]->port));
        assert_int_equal(fake_guest_write(d, 1, "hello\n", 6), 6);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->in_len, 6);
        assert_memory_equal(e->p[1]->in, "hello\n", 6);
        /* more than one 32 KiB tx buffer */
        pattern(big, sizeof(big), 3);
        assert_int_equal(fake_guest_write(d, 1, big, sizeof(big)), sizeof(big));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->in_len, 6 + sizeof(big));
        assert_memory_equal(e->p[1]->in + 6, big, sizeof(big));
        /* every tx buffer came back */
        assert_int_equal(d->vq[fake_port_vq(1, false)].last_used,
                         d->vq[fake_port_vq(1, false)].avail_idx);
}

/* Host data larger than a guest buffer lands in 4096-byte pieces. */
static void test_uml_host_to_guest_split(void **state)
{
        struct fake_env *e = *state;
        static uint8_t buf[10000];
        struct fake_driver *d;

        d = up_open1(e, NULL);
        pattern(buf, sizeof(buf), 9);
        FAKE_OK(d, fake_port_send(e->p[1], buf, sizeof(buf)));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->out_len, 0);
        assert_int_equal(d->port[1].len, sizeof(buf));
        assert_memory_equal(d->port[1].data, buf, sizeof(buf));
        assert_int_equal(d->port[1].rx_buffers, 3);
        /* port 0 (console) and the control queue still work */
        FAKE_OK(d, fake_port_send(e->p[0], "console", 7));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[0].len, 7);
}

/* Host data for a port the guest has not opened waits for PORT_OPEN. */
static void test_uml_unopened_port_kept(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;

        d = fake_env_up(e, &dev3);
        FAKE_OK(d, fake_port_send(e->p[1], "early bird", 10));
        FAKE_OK(d, fake_service(d));
        /* not delivered (the fake fails if it was: Linux discards it) */
        assert_int_equal(d->port[1].len, 0);
        assert_int_equal(d->port[1].discarded, 0);
        FAKE_OK(d, fake_guest_open(d, 1, true));
        assert_int_equal(d->port[1].len, 10);
        assert_memory_equal(d->port[1].data, "early bird", 10);
        assert_true(e->p[1]->guest_ready_calls >= 1);
        /* after a close, data is held again */
        FAKE_OK(d, fake_guest_open(d, 1, false));
        assert_int_equal(e->p[1]->guest_close_calls, 1);
        FAKE_OK(d, fake_port_send(e->p[1], "late", 4));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[1].len, 10);
        FAKE_OK(d, fake_guest_open(d, 1, true));
        assert_int_equal(d->port[1].len, 14);
        assert_memory_equal(d->port[1].data + 10, "late", 4);
}

/* The call fd is a socketpair: whole 8-byte units, one per signal. */
static void test_uml_call_fd_units(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        unsigned q = fake_port_vq(1, true);
        uint64_t before;

        d = up_open1(e, NULL);
        before = d->vq[q].calls;
        FAKE_OK(d, fake_port_send(e->p[1], "x", 1));
        FAKE_OK(d, fake_service(d));
        /* read_calls() fails the fake on a partial unit */
        assert_true(d->vq[q].calls > before);
        assert_int_equal(d->port[1].len, 1);
        assert_true(d->vq[2].calls > 0);
}

/* Host PORT_OPEN follows the host side; PORT_OPEN 0 after data. */
static void test_uml_host_connect(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;

        d = fake_env_up(e, &dev3);
        assert_false(d->port[2].host_open);
        assert_int_equal(vs_port_set_host_connected(e->p[2]->port, true), 0);
        FAKE_OK(d, fake_service(d));
        assert_true(d->port[2].host_open);
        FAKE_OK(d, fake_guest_open(d, 2, true));
        FAKE_OK(d, fake_port_send(e->p[2], "bye", 3));
        assert_int_equal(vs_port_set_host_connected(e->p[2]->port, false), 0);
        FAKE_OK(d, fake_service(d));
        assert_false(d->port[2].host_open);
        assert_int_equal(d->port[2].len, 3);
        /* the data queued before the close still arrived */
        assert_true(fake_log_find(d, 0, 2, FAKE_C_PORT_OPEN, false) >= 0);
}

/* rmmod: ENABLE 0 then nothing touches the rings; re-probe works. */
static void test_uml_teardown_reprobe(void **state)
{
        struct fake_env *e = *state;
        struct vs_vring_used *used[10];
        uint16_t idx[10];
        struct fake_driver *d;
        unsigned log0;

        d = up_open1(e, NULL);
        for (unsigned q = 0; q < 10; q++) {
                used[q] = d->vq[q].used;
                idx[q] = used[q]->idx;
        }
        FAKE_OK(d, fake_uml_remove(d));
        /* the host writes and the guest memory must not change */
        assert_true(vs_port_write(e->p[1]->port, "zzz", 3) <= 0);
        assert_int_equal(fake_host_pump(e->h), 0);
        for (unsigned q = 0; q < 10; q++)
                assert_int_equal(used[q]->idx, idx[q]);
        assert_int_equal(e->h->closed_calls, 0);
        /* probe again: new rings, new SET_MEM_TABLE, data flows */
        log0 = d->nlog;
        FAKE_OK(d, fake_uml_probe(d));
        assert_true(fake_log_find(d, log0, 1, FAKE_C_PORT_ADD, false) >= 0);
        assert_true(d->port[1].host_open);
        assert_string_equal(d->port[1].name, "org.test.port1");
        FAKE_OK(d, fake_guest_open(d, 1, true));
        FAKE_OK(d, fake_port_send(e->p[1], "again", 5));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[1].len, 5);
        assert_memory_equal(d->port[1].data, "again", 5);
        assert_int_equal(fake_guest_write(d, 1, "up", 2), 2);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->in_len, 2);
}

/*
 * Memory as eight regions: the rings in the first, then six 1-byte regions
 * whose file bytes are pages apart, then a tail. Buffers that cross them
 * must be scattered and gathered byte-exact.
 */
static void split_cfg(struct fake_driver_cfg *c, uint64_t *edge)
{
        const uint64_t base = 0x100000, size = 16 << 20;
        uint64_t g = base + size;

        memset(c, 0, sizeof(*c));
        c->style = FAKE_STYLE_UML;
        c->rx_fill = FAKE_RX_NONE;
        c->nregions = 8;
        c->regions[0] = (struct fake_vu_region){ base, size, base, base };
        for (unsigned i = 1; i <= 6; i++)
                c->regions[i] = (struct fake_vu_region){
                        g + i - 1, 1, g + i - 1, 0x2000000 + 4096ull * i };
        c->regions[7] = (struct fake_vu_region){ g + 6, 1 << 20, g + 6,
                                                 0x3000000 };
        *edge = g;
}

static void test_uml_split_regions(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c;
        static uint8_t out[4096], in[6000];
        struct fake_driver *d;
        uint64_t g;
        unsigned rx = fake_port_vq(1, true), tx = fake_port_vq(1, false);

        split_cfg(&c, &g);
        d = up_open1(e, &c);
        /* rx: a buffer from 100 bytes before the edge into the tail */
        assert_true(fake_vq_post(d, rx, g - 100, 4096) >= 0);
        FAKE_OK(d, fake_vq_kick(d, rx));
        pattern(out, sizeof(out), 1);
        FAKE_OK(d, fake_port_send(e->p[1], out, sizeof(out)));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[1].len, sizeof(out));
        assert_memory_equal(d->port[1].data, out, sizeof(out));
        /* tx: the same crossing, written by the guest */
        pattern(in, sizeof(in), 5);
        assert_int_equal(fake_mem_write(d, g - 3000, in, sizeof(in)), 0);
        assert_true(fake_vq_post(d, tx, g - 3000, sizeof(in)) >= 0);
        FAKE_OK(d, fake_vq_kick(d, tx));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->in_len, sizeof(in));
        assert_memory_equal(e->p[1]->in, in, sizeof(in));
}

/* A slow host: have_data takes a little at a time, nothing is lost. */
static void test_uml_slow_host(void **state)
{
        struct fake_env *e = *state;
        static uint8_t buf[50000];
        struct fake_driver *d;

        d = up_open1(e, NULL);
        pattern(buf, sizeof(buf), 11);
        e->p[1]->take_limit = 1000;
        assert_int_equal(fake_guest_write(d, 1, buf, sizeof(buf)), sizeof(buf));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->in_len, 1000);
        for (int i = 0; i < 100 && e->p[1]->in_len < sizeof(buf); i++) {
                fake_port_unthrottle(e->p[1], 7000);
                FAKE_OK(d, fake_service(d));
        }
        assert_int_equal(e->p[1]->in_len, sizeof(buf));
        assert_memory_equal(e->p[1]->in, buf, sizeof(buf));
        assert_int_equal(d->vq[fake_port_vq(1, false)].last_used,
                         d->vq[fake_port_vq(1, false)].avail_idx);
}

/* More data than the guest has buffers: guest_ready resumes the host. */
static void test_uml_guest_ready(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML, .rx_fill = 2 };
        static uint8_t buf[20000];
        struct fake_driver *d;

        d = up_open1(e, &c);
        pattern(buf, sizeof(buf), 2);
        /* 2 buffers of 4096: the rest waits, and the fake reposts each
         * buffer after reading it, which must wake the host */
        FAKE_OK(d, fake_port_send(e->p[1], buf, sizeof(buf)));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[1].len, sizeof(buf));
        assert_memory_equal(d->port[1].data, buf, sizeof(buf));
        assert_true(e->p[1]->guest_ready_calls >= 1);
}

#define T(f) FAKE_ENV_TEST(f)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_uml_handshake), T(test_uml_port_ready_order),
                T(test_uml_guest_to_host), T(test_uml_host_to_guest_split),
                T(test_uml_unopened_port_kept), T(test_uml_call_fd_units),
                T(test_uml_host_connect), T(test_uml_teardown_reprobe),
                T(test_uml_split_regions), T(test_uml_slow_host),
                T(test_uml_guest_ready),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
