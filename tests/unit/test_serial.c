/* SPDX-License-Identifier: MIT */
/*
 * The whole virtio-serial device, driven through the driver-side fake as
 * Linux virtio_console drives it: hot-plug, the control queue and its
 * bound, console size (RESIZE and single-port config space), emergency
 * write, single-port mode, flow control both ways, 511 ports over the
 * in-process transport, and resets in the middle of a transfer.
 *
 * Every control message the device sends is also checked against the
 * port life cycle the guest sees (check_ctrl_log): no PORT_ADD for a port
 * the guest already has, no PORT_REMOVE or other event for one it does not.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_env.h"

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(i * 31 + seed + i / 241);
}

static void host_new(struct fake_env *e, uint32_t max_ports, uint16_t cols,
                     uint16_t rows, enum vs_resize_order order)
{
        struct vs_device_config dc = { .max_ports = max_ports, .cols = cols,
                                       .rows = rows, .resize_order = order };

        fake_env_host(e, &dc);
}

/* A 48 MiB guest, UML-like (gpa == uva == file offset): small enough to
 * snapshot whole. */
static void small_mem(struct fake_driver_cfg *c)
{
        c->nregions = 1;
        c->alloc_region = 0;
        c->regions[0] = (struct fake_vu_region){ 0x100000, 48ull << 20,
                                                 0x100000, 0 };
}

/* The driver on the ports added so far: UML booted and probed, or the
 * in-process transport probed (@inproc). */
static void driver_up(struct fake_env *e, const struct fake_driver_cfg *cfg,
                      bool inproc)
{
        struct fake_driver_cfg def = { .style = FAKE_STYLE_UML };

        fake_env_driver(e, cfg ? cfg : &def, inproc);
        fake_env_boot(e);
}

/* Port 0 a console, as every device here has. */
#define CON0 { 0, NULL, true, false, false }

/* Device->guest messages of @ev for @id from log index @from on. */
static unsigned count_dev(const struct fake_driver *d, unsigned from,
                          uint32_t id, uint16_t ev)
{
        unsigned n = 0;

        for (unsigned i = from; i < d->nlog; i++)
                n += !d->log[i].from_guest && d->log[i].id == id &&
                     d->log[i].event == ev;
        return n;
}

/* The next device->guest message about @id after log index @at, or -1. */
static int next_dev_for(const struct fake_driver *d, int at, uint32_t id)
{
        for (unsigned i = (unsigned)at + 1; i < d->nlog; i++)
                if (!d->log[i].from_guest && d->log[i].id == id)
                        return (int)i;
        return -1;
}

/* Replay the control log: the guest's port table must stay consistent. */
static void check_ctrl_log(const struct fake_driver *d)
{
        bool *added = calloc(d->port_cap, sizeof(*added));
        char why[160] = "";

        assert_non_null(added);
        assert_true(d->nlog < d->log_cap);      /* nothing fell off */
        for (unsigned i = 0; i < d->nlog && !why[0]; i++) {
                const struct fake_ctrl *c = &d->log[i];

                if (c->from_guest) {
                        if (c->event == FAKE_C_DEVICE_READY)
                                memset(added, 0, d->port_cap * sizeof(*added));
                        continue;
                }
                if (c->id >= d->port_cap)
                        snprintf(why, sizeof(why), "log %u: event %u for port %u >= max",
                                 i, c->event, c->id);
                else if (c->event == FAKE_C_PORT_ADD && added[c->id])
                        snprintf(why, sizeof(why), "log %u: PORT_ADD for port %u, which the guest already has",
                                 i, c->id);
                else if (c->event == FAKE_C_PORT_ADD)
                        added[c->id] = true;
                else if (!added[c->id])
                        snprintf(why, sizeof(why), "log %u: event %u for port %u, which the guest does not have",
                                 i, c->event, c->id);
                else if (c->event == FAKE_C_PORT_REMOVE)
                        added[c->id] = false;
        }
        free(added);
        if (why[0])
                fail_msg("%s", why);
}

/* The end of every case: the control log consistent, no fake error. */
static void all_well(const struct fake_driver *d)
{
        check_ctrl_log(d);
        assert_string_equal(fake_error(d), "");
}

/* A copy of guest memory, kept in e->own (freed with the env). */
static void snap_take(struct fake_env *e)
{
        free(e->own);
        e->own = malloc(e->d->mem_size);
        assert_non_null(e->own);
        memcpy(e->own, e->d->mem, e->d->mem_size);
}

/* The device wrote nothing into guest memory since snap_take(). */
static void snap_check(struct fake_env *e)
{
        const uint8_t *snap = e->own;

        for (size_t i = 0; i < e->d->mem_size; i++)
                if (e->d->mem[i] != snap[i])
                        fail_msg("guest memory changed at file offset %#zx (%#x -> %#x) while the rings were down",
                                 i, snap[i], e->d->mem[i]);
}

/* A notification the guest did not have to send (always allowed). */
static void force_kick(struct fake_driver *d, unsigned q)
{
        uint64_t one = 1;

        assert_true(d->vq[q].kick >= 0);
        assert_int_equal(write(d->vq[q].kick, &one, sizeof(one)), sizeof(one));
}

static uint16_t le16at(const uint8_t *b)
{
        return (uint16_t)(b[0] | b[1] << 8);
}

/* ---- 1. hot-plug -------------------------------------------------------- */

/* PORT_ADD after DEVICE_READY; name/console/open after PORT_READY; remove. */
static void test_hotplug_add_remove(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        struct fake_port *p3, *p4;
        unsigned log0;
        int padd, ready, name, open, cons;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 8 },
                .ports = { CON0, { 1, "org.test.one", false, false, false } },
                .boot = true });
        log0 = d->nlog;
        /* a named port with its host side connected before the guest knows it */
        p3 = fake_env_add(e, 3, "org.test.hot3", false);
        assert_int_equal(vs_port_set_host_connected(p3->port, true), 0);
        /* and a hot-plugged console */
        p4 = fake_env_add(e, 4, "org.test.con4", true);
        FAKE_OK(d, fake_service(d));

        padd = fake_log_find(d, log0, 3, FAKE_C_PORT_ADD, false);
        ready = fake_log_find(d, log0, 3, FAKE_C_PORT_READY, true);
        name = fake_log_find(d, log0, 3, FAKE_C_PORT_NAME, false);
        open = fake_log_find(d, log0, 3, FAKE_C_PORT_OPEN, false);
        assert_true(padd >= 0);
        assert_true(ready > padd);
        assert_true(name > ready);
        assert_true(open > ready);
        assert_int_equal(d->log[open].value, 1);
        assert_string_equal(d->port[3].name, "org.test.hot3");
        assert_true(d->port[3].host_open);
        assert_false(d->port[3].console);
        assert_int_equal(count_dev(d, log0, 3, FAKE_C_CONSOLE_PORT), 0);

        ready = fake_log_find(d, log0, 4, FAKE_C_PORT_READY, true);
        cons = fake_log_find(d, log0, 4, FAKE_C_CONSOLE_PORT, false);
        assert_true(ready >= 0);
        assert_true(cons > ready);
        assert_true(d->port[4].console);
        assert_string_equal(d->port[4].name, "org.test.con4");
        /* the fake opens a console when it binds hvc */
        assert_int_equal(p4->guest_open_calls, 1);
        /* nothing for port 2, which does not exist */
        assert_int_equal(fake_log_find(d, 0, 2, FAKE_C_PORT_ADD, false), -1);

        /* the hot-plugged port carries data */
        FAKE_OK(d, fake_guest_open(d, 3, true));
        assert_int_equal(fake_guest_write(d, 3, "ping", 4), 4);
        FAKE_OK(d, fake_port_send(p3, "pong", 4));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p3->in_len, 4);
        assert_memory_equal(p3->in, "ping", 4);
        assert_int_equal(d->port[3].len, 4);
        assert_memory_equal(d->port[3].data, "pong", 4);

        /* id -1 takes the lowest free non-console id: 2 */
        log0 = d->nlog;
        {
                struct fake_port *p2 = fake_env_add(e, -1, "org.test.auto", false);

                assert_int_equal(p2->id, 2);
        }
        FAKE_OK(d, fake_service(d));
        assert_true(fake_log_find(d, log0, 2, FAKE_C_PORT_ADD, false) >= 0);
        assert_string_equal(d->port[2].name, "org.test.auto");

        /* remove: PORT_REMOVE, the exit op, and the guest drops the port */
        log0 = d->nlog;
        vs_port_remove(p3->port);
        assert_null(p3->port);
        assert_null(vs_port_find(e->h->dev, 3));
        FAKE_OK(d, fake_service(d));
        assert_true(fake_log_find(d, log0, 3, FAKE_C_PORT_REMOVE, false) >= 0);
        assert_true(d->port[3].removed);
        assert_false(d->port[3].added);
        /* the id is free again and comes back as a new port */
        p3 = fake_env_add(e, 3, "org.test.hot3b", false);
        FAKE_OK(d, fake_service(d));
        assert_true(d->port[3].added);
        assert_string_equal(d->port[3].name, "org.test.hot3b");
        all_well(d);
}

/* fake_host_add_port() refuses this port with @want, adding nothing. */
static void add_refused(struct fake_env *e, int32_t id, const char *name,
                        bool console, int want)
{
        int err = 0;

        assert_null(fake_host_add_port(e->h, id, name, console, &err));
        assert_int_equal(err, want);
}

/* Ids and names are unique; bad ids and names are refused, silently. */
static void test_hotplug_errors(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        struct fake_port *p;
        unsigned log0;
        char longname[VS_PORT_NAME_MAX + 2];

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4 },
                .ports = { CON0, { 1, "org.test.one", false, false, false } },
                .boot = true });
        log0 = d->nlog;

        add_refused(e, 1, "org.test.other", false, -EEXIST);
        add_refused(e, 2, "org.test.one", false, -EEXIST);
        add_refused(e, 0, NULL, true, -EEXIST);
        add_refused(e, 4, "org.test.four", false, -EINVAL);
        add_refused(e, 1000, NULL, false, -EINVAL);
        /* port 0 is the console's */
        vs_port_remove(e->p[0]->port);
        add_refused(e, 0, "org.test.zero", false, -EINVAL);
        /* names: printable, no spaces, at most 255 */
        add_refused(e, 2, "bad name", false, -EINVAL);
        memset(longname, 'n', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = 0;
        add_refused(e, 2, longname, false, -EINVAL);
        longname[VS_PORT_NAME_MAX] = 0;
        p = fake_env_add(e, 2, longname, false);
        assert_int_equal(p->id, 2);
        /* no free id left for a non-console */
        fake_env_add(e, 3, NULL, false);
        add_refused(e, -1, NULL, false, -ENOSPC);
        /* but a console still finds 0 */
        p = fake_env_add(e, -1, NULL, true);
        assert_int_equal(p->id, 0);
        FAKE_OK(d, fake_service(d));

        /* the failures left no trace on the control queue */
        for (unsigned i = log0; i < d->nlog; i++) {
                const struct fake_ctrl *c = &d->log[i];

                if (c->from_guest)
                        continue;
                if (c->event == FAKE_C_PORT_ADD)
                        assert_true(c->id == 2 || c->id == 3 || c->id == 0);
                if (c->event == FAKE_C_PORT_REMOVE)
                        assert_int_equal(c->id, 0);
        }
        assert_int_equal(count_dev(d, log0, 0, FAKE_C_PORT_REMOVE), 1);
        assert_int_equal(count_dev(d, log0, 0, FAKE_C_PORT_ADD), 1);
        assert_int_equal(count_dev(d, log0, 1, FAKE_C_PORT_ADD), 0);
        assert_int_equal(count_dev(d, log0, 2, FAKE_C_PORT_ADD), 1);
        assert_int_equal(count_dev(d, log0, 3, FAKE_C_PORT_ADD), 1);
        assert_string_equal(d->port[2].name, longname);
        assert_false(d->port[3].named);
        assert_true(d->port[0].console);
        assert_string_equal(vs_port_name(e->h->ports[1]->port), "org.test.one");
        all_well(d);
}

/* Ports come and go while port 1 streams both ways: its bytes stay exact. */
static void test_hotplug_during_data(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML, .rx_fill = 4 };
        enum { TOTAL = 300000 };
        static uint8_t g2h[TOTAL], h2g[TOTAL];
        struct fake_port *hot[8] = { 0 };
        struct fake_driver *d;
        struct fake_port *p1;
        size_t goff = 0, hoff = 0;
        unsigned adds = 0, removes = 0;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 8 },
                .drv = c,
                .ports = { CON0, { 1, "org.test.stream", false, true, true } },
                .boot = true });
        p1 = e->p[1];
        pattern(g2h, TOTAL, 1);
        pattern(h2g, TOTAL, 2);

        for (unsigned r = 0; r < 60; r++) {
                uint32_t id = 2 + r % 6;
                size_t n = 10007 < TOTAL - goff ? 10007 : TOTAL - goff;
                size_t m = 9001 < TOTAL - hoff ? 9001 : TOTAL - hoff;
                ssize_t w = fake_guest_write(d, 1, g2h + goff, n);

                assert_true(w >= 0);
                goff += (size_t)w;
                FAKE_OK(d, fake_port_send(p1, h2g + hoff, m));
                hoff += m;
                /* the host is slow every third round */
                if (r % 3 == 0)
                        p1->take_limit = 777;
                else
                        fake_port_unthrottle(p1, SIZE_MAX);
                if (hot[id] && hot[id]->port) {
                        if (r % 2)
                                vs_port_set_host_connected(hot[id]->port, true);
                        vs_port_remove(hot[id]->port);
                        hot[id] = NULL;
                        removes++;
                } else {
                        char name[64];

                        snprintf(name, sizeof(name), "org.test.hot.%u", r);
                        hot[id] = fake_host_add_port(e->h, (int32_t)id, name,
                                                     r % 4 == 1, NULL);
                        assert_non_null(hot[id]);
                        adds++;
                }
                FAKE_OK(d, fake_service(d));
        }
        fake_port_unthrottle(p1, SIZE_MAX);
        FAKE_OK(d, fake_service(d));
        assert_true(adds > 20 && removes > 20);
        assert_int_equal(p1->in_len, goff);
        assert_memory_equal(p1->in, g2h, goff);
        assert_int_equal(d->port[1].len, hoff);
        assert_memory_equal(d->port[1].data, h2g, hoff);
        assert_true(goff > TOTAL / 2);
        /* the guest's port table matches the host's */
        for (uint32_t id = 2; id < 8; id++)
                assert_int_equal(d->port[id].added,
                                 vs_port_find(e->h->dev, id) != NULL);
        all_well(d);
}

/* Removing a port whose tx chain is half consumed returns the chain. */
static void test_hotplug_remove_half_consumed(void **state)
{
        struct fake_env *e = *state;
        static uint8_t buf[4096];
        struct fake_driver *d;
        struct fake_port *p2;
        unsigned tx = fake_port_vq(2, false);
        unsigned log0;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4 },
                .ports = { CON0, { 1, "org.test.one", false, false, false }, { 2, "org.test.two", false, false, true } },
                .boot = true });
        p2 = e->p[2];
        pattern(buf, sizeof(buf), 7);
        p2->take_limit = 100;
        assert_int_equal(fake_guest_write(d, 2, buf, sizeof(buf)), sizeof(buf));
        assert_int_equal(fake_guest_write(d, 2, buf, 1000), 1000);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p2->in_len, 100);
        assert_memory_equal(p2->in, buf, 100);
        assert_int_equal(d->vq[tx].last_used, 0);

        log0 = d->nlog;
        vs_port_remove(p2->port);
        assert_null(p2->port);
        FAKE_OK(d, fake_service(d));
        assert_true(fake_log_find(d, log0, 2, FAKE_C_PORT_REMOVE, false) >= 0);
        /* the half-consumed chain came back used */
        assert_true(d->vq[tx].last_used >= 1);
        assert_int_equal(p2->in_len, 100);
        /* port 1 is not disturbed */
        FAKE_OK(d, fake_guest_open(d, 1, true));
        assert_int_equal(fake_guest_write(d, 1, "still", 5), 5);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[1]->in_len, 5);
        assert_memory_equal(e->p[1]->in, "still", 5);
        all_well(d);
}

/*
 * A port removed while its host side was throttled, then added again with
 * the same id (the daemon's unplug and plug): the guest's writes to the new
 * port still kick the device. The throttled port had turned the queue's
 * kicks off; the queue goes on for the next port on it.
 */
static void test_hotplug_readd_after_throttle(void **state)
{
        struct fake_env *e = *state;
        static uint8_t buf[4096];
        struct fake_driver *d;
        struct fake_port *p2;
        unsigned log0;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4 },
                .ports = { CON0, { 2, "org.test.two", false, false, true } },
                .boot = true });
        p2 = e->p[2];
        pattern(buf, sizeof(buf), 8);
        p2->take_limit = 100;
        assert_int_equal(fake_guest_write(d, 2, buf, sizeof(buf)), sizeof(buf));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p2->in_len, 100);
        vs_port_remove(p2->port);
        FAKE_OK(d, fake_service(d));
        log0 = d->nlog;
        p2 = fake_env_add(e, 2, "org.test.two", false);
        FAKE_OK(d, fake_service(d));
        assert_true(fake_log_find(d, log0, 2, FAKE_C_PORT_ADD, false) >= 0);
        FAKE_OK(d, fake_guest_open(d, 2, true));
        assert_int_equal(fake_guest_write(d, 2, "again", 5), 5);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p2->in_len, 5);
        assert_memory_equal(p2->in, "again", 5);
        all_well(d);
}

/* ---- 2. PORT_READY 0, two consoles ---------------------------------------- */

/* A port the guest failed to add gets no name, no open, no data. */
static void test_port_ready_zero(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        unsigned log0;
        int ready;

        /* port 3 is a console too, but the guest fails it as well */
        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
                .drv = { .style = FAKE_STYLE_UML, .fail_ports = 1u << 2 | 1u << 3 },
                .ports = { CON0, { 1, "org.test.one", false, false, false },
                           { 2, "org.test.two", false, true, false },
                           { 3, "org.test.three", true, true, false } },
                .boot = true });
        ready = fake_log_find(d, 0, 2, FAKE_C_PORT_READY, true);
        assert_true(ready >= 0);
        assert_int_equal(d->log[ready].value, 0);
        assert_false(d->port[2].added);
        for (uint32_t id = 2; id <= 3; id++) {
                assert_int_equal(count_dev(d, 0, id, FAKE_C_PORT_NAME), 0);
                assert_int_equal(count_dev(d, 0, id, FAKE_C_PORT_OPEN), 0);
                assert_int_equal(count_dev(d, 0, id, FAKE_C_CONSOLE_PORT), 0);
                assert_int_equal(count_dev(d, 0, id, FAKE_C_RESIZE), 0);
        }
        /* the other ports are fine */
        assert_string_equal(d->port[1].name, "org.test.one");
        assert_true(d->port[0].console);
        /* later host events for the failed ports stay quiet too */
        log0 = d->nlog;
        assert_int_equal(vs_port_set_host_connected(e->p[2]->port, false), 0);
        assert_int_equal(vs_port_set_host_connected(e->p[2]->port, true), 0);
        assert_int_equal(vs_port_resize(e->p[3]->port, 100, 50), 0);
        assert_int_equal(vs_port_write(e->p[2]->port, "x", 1), 0);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(count_dev(d, log0, 2, FAKE_C_PORT_OPEN), 0);
        assert_int_equal(count_dev(d, log0, 3, FAKE_C_RESIZE), 0);
        assert_false(vs_port_guest_connected(e->p[2]->port));
        assert_string_equal(fake_error(d), "");
}

/* A second console (port 3): CONSOLE_PORT and RESIZE reach it too. */
static void test_two_consoles(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        unsigned log0;
        int cons;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 8 },
                .ports = { CON0, { 1, "org.test.one", false, false, false }, { 3, "org.test.con3", true, false, false } },
                .boot = true });
        cons = fake_log_find(d, 0, 3, FAKE_C_CONSOLE_PORT, false);
        assert_true(cons > fake_log_find(d, 0, 3, FAKE_C_PORT_READY, true));
        assert_int_equal(d->log[cons].value, 1);
        assert_true(fake_log_find(d, 0, 0, FAKE_C_CONSOLE_PORT, false) >= 0);
        assert_true(d->port[0].console);
        assert_true(d->port[3].console);
        assert_false(d->port[1].console);
        assert_true(vs_port_guest_connected(e->p[3]->port));
        assert_true(vs_port_is_console(e->p[3]->port));
        log0 = d->nlog;
        assert_int_equal(vs_port_resize(e->p[3]->port, 120, 40), 0);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(count_dev(d, log0, 3, FAKE_C_RESIZE), 1);
        assert_int_equal(count_dev(d, log0, 0, FAKE_C_RESIZE), 0);
        assert_int_equal(d->port[3].cols, 120);
        assert_int_equal(d->port[3].rows, 40);
        /* both consoles carry data */
        FAKE_OK(d, fake_port_send(e->p[0], "c0", 2));
        FAKE_OK(d, fake_port_send(e->p[3], "c3", 2));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[0].len, 2);
        assert_int_equal(d->port[3].len, 2);
        assert_memory_equal(d->port[3].data, "c3", 2);
        all_well(d);
}

/* ---- 3. control queue: empty, refilled, bounded ---------------------------- */

/* No control buffers: messages wait, none lost, delivered in order. */
static void test_ctrl_queue_refill(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML,
                                     .ctrl_rx_fill = FAKE_RX_NONE };
        struct fake_driver *d;
        uint32_t order[16];
        unsigned n = 0;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 8 },
                .drv = c,
                .ports = { CON0, { 1, "org.test.one", false, false, false } },
                .boot = true });
        /* DEVICE_READY was taken, nothing could be answered yet */
        assert_int_equal(d->nlog, 1);
        for (uint32_t id = 2; id <= 6; id++) {
                char name[32];

                snprintf(name, sizeof(name), "org.test.q%u", id);
                fake_env_add(e, (int32_t)id, name, false);
                if (id % 2)
                        assert_int_equal(vs_port_set_host_connected(e->p[id]->port, true), 0);
        }
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->nlog, 1);
        /* two buffers at a time is enough: the fake reposts each */
        FAKE_OK(d, fake_rx_fill(d, 2, 2));
        FAKE_OK(d, fake_service(d));
        for (unsigned i = 0; i < d->nlog; i++)
                if (!d->log[i].from_guest && d->log[i].event == FAKE_C_PORT_ADD &&
                    n < 16)
                        order[n++] = d->log[i].id;
        assert_int_equal(n, 7);
        for (uint32_t id = 0; id <= 6; id++) {
                assert_int_equal(order[id], id);
                assert_true(d->port[id].added);
        }
        for (uint32_t id = 2; id <= 6; id++) {
                char name[32];

                snprintf(name, sizeof(name), "org.test.q%u", id);
                assert_string_equal(d->port[id].name, name);
                assert_int_equal(d->port[id].host_open, id % 2);
        }
        assert_true(d->port[0].console);
        all_well(d);
}

/*
 * Step @i of a host side that keeps the console's control messages apart:
 * resized, then connected or gone, in turn. A port's latest size or open
 * state replaces a queued one only with nothing about the port after it,
 * so each of these is a message of its own. Returns what the device said.
 */
static int host_step(struct fake_env *e, unsigned i)
{
        struct vs_port *con = e->p[0]->port;

        if (i % 2 == 0)
                return vs_port_resize(con, 81 - (i / 2) % 2, 25);
        return vs_port_set_host_connected(con, !vs_port_host_connected(con));
}

/*
 * Fill the control queue while the guest reads no control rx (a guest
 * repeating PORT_READY cannot: see test_ctrl_port_ready_repeats). Returns
 * how many host messages were accepted before the queue was full.
 */
static void ctrl_fill(struct fake_env *e, unsigned *accepted)
{
        /* The bound is 8 * (max_ports + 1) + 64 = 104 here. */
        for (*accepted = 0; *accepted < 150; (*accepted)++)
                if (host_step(e, *accepted) == -ENOSPC)
                        break;
        /* Full now: a new message is refused, and the host is told. */
        if (vs_port_resize(e->p[0]->port, 1, 1) != -ENOSPC)
                fail_msg("the control queue never filled after %u host messages", *accepted);
}

/*
 * Let the guest read everything, with an extra kick on control rx after
 * each round. A notification the driver did not need to send is always
 * allowed; here it keeps these tests apart from the lost-kick stall that
 * test_ctrl_backlog_no_stall covers.
 */
static void ctrl_drain(struct fake_env *e)
{
        struct fake_driver *d = e->d;

        for (unsigned i = 0; i < 100; i++) {
                unsigned before = d->nlog;

                FAKE_OK(d, fake_service(d));
                force_kick(d, 2);
                FAKE_OK(d, fake_service(d));
                if (d->nlog == before)
                        return;
        }
        fail_msg("control queue never drained");
}

/* Console 0, ports 1 and 2, control rings of 8 buffers; the driver. */
static struct fake_driver *ctrl_full_env(struct fake_env *e)
{
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML, .queue_size = 8 };

        fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
                .drv = c,
                .ports = { CON0, { 1, "org.test.one", false, false, false }, { 2, "org.test.two", false, false, false } },
                .boot = true });
        return e->d;
}

/* A refused PORT_OPEN must not be half done: a retry gets it through. */
static void test_ctrl_full_host_connected(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = ctrl_full_env(e);
        unsigned accepted;
        bool want;

        ctrl_fill(e, &accepted);
        want = !vs_port_host_connected(e->p[2]->port);
        assert_int_equal(vs_port_set_host_connected(e->p[2]->port, want), -ENOSPC);
        assert_int_equal(vs_port_host_connected(e->p[2]->port), !want);
        /* the guest catches up */
        ctrl_drain(e);
        /* the caller retries what was refused */
        assert_int_equal(vs_port_set_host_connected(e->p[2]->port, want), 0);
        ctrl_drain(e);
        if (d->port[2].host_open != want)
                fail_msg("guest sees host_connected=%d, host has %d: the refused PORT_OPEN %d was lost, and the retry sent nothing",
                         d->port[2].host_open,
                         vs_port_host_connected(e->p[2]->port), want);
        all_well(d);
}

/*
 * More control messages than the ring has buffers, while the guest is busy
 * elsewhere (well under the bound): the guest catches up by reposting, as
 * Linux does, and must get every one of them, with no extra kicks. The
 * messages are distinct (host_step), so none replaces another in the queue.
 */
static void test_ctrl_backlog_no_stall(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = ctrl_full_env(e);
        unsigned log0, got;

        log0 = d->nlog;
        for (unsigned i = 0; i < 30; i++)
                assert_int_equal(host_step(e, i), 0);
        FAKE_OK(d, fake_service(d));
        got = count_dev(d, log0, 0, FAKE_C_RESIZE) + count_dev(d, log0, 0, FAKE_C_PORT_OPEN);
        if (got < 30)
                fail_msg("%u of 30 messages reached the guest; the rest wait in the device with no kick to come",
                         got);
        all_well(d);
}

/*
 * A guest that reads no control rx and repeats PORT_READY for a named port
 * asks each time for what is already queued: it gets one PORT_NAME per
 * buffer it had posted and one more, not one per repeat, so it cannot fill
 * the queue and make the device refuse the host (the audit's finding 1).
 */
static void test_ctrl_port_ready_repeats(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = ctrl_full_env(e);
        unsigned log0, names;

        log0 = d->nlog;
        for (unsigned i = 0; i < 150; i++)
                FAKE_OK(d, fake_ctrl_send(d, 1, FAKE_C_PORT_READY, 1));
        assert_int_equal(vs_port_resize(e->p[0]->port, 100, 40), 0);
        assert_int_equal(vs_port_remove(e->p[2]->port), 0);
        ctrl_drain(e);
        names = count_dev(d, log0, 1, FAKE_C_PORT_NAME);
        /* ctrl_full_env's control ring holds 8 buffers */
        if (names > 8 + 1)
                fail_msg("150 PORT_READY got %u PORT_NAME messages", names);
        assert_false(d->port[2].added);
        all_well(d);
}

/* PORT_ADD on a full queue: refused (-ENOSPC), or delivered later. */
static void test_ctrl_full_port_add(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = ctrl_full_env(e);
        struct fake_port *p3;
        unsigned accepted;
        int err = 0;

        ctrl_fill(e, &accepted);
        p3 = fake_host_add_port(e->h, 3, "org.test.late", false, &err);
        ctrl_drain(e);
        if (!p3) {
                assert_int_equal(err, -ENOSPC);
                assert_null(vs_port_find(e->h->dev, 3));
                assert_false(d->port[3].added);
        } else if (!d->port[3].added) {
                fail_msg("vs_port_add returned 0 on a full control queue and the guest never got PORT_ADD 3: dropped silently (serial.c vs_port_add ignores vs__ctrl_send's -ENOSPC)");
        }
        all_well(d);
}

/* PORT_REMOVE on a full queue is refused (the port stays), a retry works. */
static void test_ctrl_full_port_remove(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = ctrl_full_env(e);
        unsigned accepted;

        ctrl_fill(e, &accepted);
        assert_int_equal(vs_port_remove(e->p[2]->port), -ENOSPC);
        assert_non_null(vs_port_find(e->h->dev, 2));
        ctrl_drain(e);
        assert_true(d->port[2].added);
        assert_int_equal(vs_port_remove(e->p[2]->port), 0);
        ctrl_drain(e);
        if (d->port[2].added)
                fail_msg("port 2 removed on the host while the control queue was full; the guest still has it: PORT_REMOVE dropped silently (serial.c vs_port_remove ignores vs__ctrl_send's -ENOSPC)");
        all_well(d);
}

/* RESIZE on a full queue is refused (-ENOSPC, as documented); a retry works. */
static void test_ctrl_full_resize(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = ctrl_full_env(e);
        unsigned accepted;

        ctrl_fill(e, &accepted);
        assert_int_equal(vs_port_resize(e->p[0]->port, 99, 33), -ENOSPC);
        ctrl_drain(e);
        assert_int_equal(vs_port_resize(e->p[0]->port, 99, 33), 0);
        ctrl_drain(e);
        assert_int_equal(d->port[0].cols, 99);
        assert_int_equal(d->port[0].rows, 33);
        all_well(d);
}

/* ---- 4. console size ------------------------------------------------------- */

/* The device message about @id right after its CONSOLE_PORT is RESIZE. */
static int resize_after_console(const struct fake_driver *d, unsigned from,
                                uint32_t id)
{
        int cons = fake_log_find(d, from, id, FAKE_C_CONSOLE_PORT, false);
        int next;

        assert_true(cons >= 0);
        next = next_dev_for(d, cons, id);
        if (next < 0 || d->log[next].event != FAKE_C_RESIZE)
                fail_msg("port %u: after CONSOLE_PORT came event %d, want RESIZE", id,
                         next < 0 ? -1 : d->log[next].event);
        return next;
}

static void resize_order_case(struct fake_env *e, enum vs_resize_order order)
{
        struct fake_driver *d;
        const uint8_t *raw;
        uint16_t cols, rows;
        unsigned log0;

        host_new(e, 4, 80, 25, order);
        fake_env_add(e, 0, NULL, true);
        fake_env_add(e, 1, "org.test.one", false);
        fake_env_add(e, 2, "org.test.con2", true);
        /* set before the guest readied the port */
        assert_int_equal(vs_port_resize(e->p[0]->port, 100, 40), 0);
        vs_port_get_size(e->p[0]->port, &cols, &rows);
        assert_int_equal(cols, 100);
        assert_int_equal(rows, 40);
        /* the configured default for a console nobody resized */
        vs_port_get_size(e->p[2]->port, &cols, &rows);
        assert_int_equal(cols, 80);
        assert_int_equal(rows, 25);
        driver_up(e, NULL, false);
        d = e->d;
        resize_after_console(d, 0, 0);
        resize_after_console(d, 0, 2);
        assert_int_equal(d->port[0].resizes, 1);
        assert_int_equal(d->port[2].resizes, 1);
        raw = d->port[0].resize_raw;
        if (order == VS_RESIZE_COLS_ROWS) {
                assert_int_equal(le16at(raw), 100);
                assert_int_equal(le16at(raw + 2), 40);
                assert_int_equal(le16at(d->port[2].resize_raw), 80);
                assert_int_equal(le16at(d->port[2].resize_raw + 2), 25);
        } else {
                assert_int_equal(le16at(raw), 40);
                assert_int_equal(le16at(raw + 2), 100);
                assert_int_equal(le16at(d->port[2].resize_raw), 25);
                assert_int_equal(le16at(d->port[2].resize_raw + 2), 80);
        }
        /* a resize of a readied console goes out now */
        log0 = d->nlog;
        assert_int_equal(vs_port_resize(e->p[0]->port, 132, 50), 0);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(count_dev(d, log0, 0, FAKE_C_RESIZE), 1);
        assert_int_equal(d->log[fake_log_find(d, log0, 0, FAKE_C_RESIZE, false)].value, 0);
        raw = d->port[0].resize_raw;
        assert_int_equal(le16at(raw), order == VS_RESIZE_COLS_ROWS ? 132 : 50);
        assert_int_equal(le16at(raw + 2), order == VS_RESIZE_COLS_ROWS ? 50 : 132);
        /* not a console */
        log0 = d->nlog;
        assert_int_equal(vs_port_resize(e->p[1]->port, 10, 10), -EINVAL);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->nlog, log0);
        all_well(d);
}

static void test_resize_cols_rows(void **state)
{
        resize_order_case(*state, VS_RESIZE_COLS_ROWS);
}

static void test_resize_rows_cols(void **state)
{
        resize_order_case(*state, VS_RESIZE_ROWS_COLS);
}

static uint16_t cfg16(struct fake_driver *d, uint32_t offset)
{
        uint8_t b[2] = { 0 };

        FAKE_OK(d, fake_vu_get_config_at(d, offset, 2, b));
        return le16at(b);
}

/* No MULTIPORT: the size is in config space, with a config-change message. */
static void test_resize_single_port(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML,
                                     .single_port = true };
        struct fake_driver *d;
        unsigned msgs;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
                .drv = c,
                .ports = { CON0, { 1, "org.test.one", false, false, false } },
                .boot = true });
        assert_false(d->features & (1ull << VS_CONSOLE_F_MULTIPORT));
        assert_true(d->pf & (1ull << FAKE_PF_BACKEND_REQ));
        assert_int_equal(cfg16(d, 0), 80);
        assert_int_equal(cfg16(d, 2), 25);
        msgs = d->backend_msgs;
        assert_int_equal(vs_port_resize(e->p[0]->port, 100, 30), 0);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->backend_msgs, msgs + 1);
        assert_int_equal(d->last_backend_req, 2);      /* CONFIG_CHANGE_MSG */
        assert_int_equal(cfg16(d, 0), 100);
        assert_int_equal(cfg16(d, 2), 30);
        /* and the whole struct at once */
        {
                uint8_t b[12];

                FAKE_OK(d, fake_vu_get_config(d, 12, b));
                assert_int_equal(le16at(b), 100);
                assert_int_equal(le16at(b + 2), 30);
        }
        /* no control message, ever */
        assert_int_equal(d->nlog, 0);
        assert_int_equal(vs_port_resize(e->p[1]->port, 1, 1), -EINVAL);
        assert_string_equal(fake_error(d), "");
}

/* ---- 5. emergency write ---------------------------------------------------- */

static void emerg(struct fake_driver *d, uint32_t v)
{
        uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                         (uint8_t)(v >> 24) };

        FAKE_OK(d, fake_vu_set_config(d, 8, b, 4));
}

static void test_emerg_write(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d;
        struct fake_port *p0;
        struct vs_port_stats st;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4 },
                .ports = { CON0, { 1, "org.test.one", false, false, false } } });
        p0 = e->p[0];
        FAKE_OK(d, fake_uml_boot(d));
        /* no features, no memory, no rings, no DEVICE_READY */
        emerg(d, 'E');
        assert_int_equal(p0->in_len, 1);
        assert_memory_equal(p0->in, "E", 1);
        assert_int_equal(e->p[1]->in_len, 0);
        FAKE_OK(d, fake_uml_probe(d));
        /* only the low byte of the 32-bit write */
        emerg(d, 0x41424344);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p0->in_len, 2);
        assert_memory_equal(p0->in, "ED", 2);
        /* and it mixes with the ring data in order */
        assert_int_equal(fake_guest_write(d, 0, "ring", 4), 4);
        FAKE_OK(d, fake_service(d));
        emerg(d, '!');
        assert_int_equal(p0->in_len, 7);
        assert_memory_equal(p0->in, "EDring!", 7);
        vs_port_get_stats(p0->port, &st);
        assert_int_equal(st.from_guest, 7);
        assert_int_equal(e->p[1]->in_len, 0);
        assert_string_equal(fake_error(d), "");
}

/* ---- 6. single-port mode ----------------------------------------------------- */

static void test_single_port_data(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML,
                                     .single_port = true };
        static uint8_t big[10000], in[70000];
        struct fake_driver *d;
        struct fake_port *p0;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
                .drv = c,
                .ports = { CON0, { 1, "org.test.one", false, false, false } },
                .boot = true });
        p0 = e->p[0];
        assert_false(d->features & (1ull << VS_CONSOLE_F_MULTIPORT));
        assert_int_equal(d->nvqs, 2);
        /* the console is connected while its rings run */
        assert_true(vs_port_guest_connected(p0->port));
        /* guest -> host on queue 1 */
        pattern(in, sizeof(in), 4);
        assert_int_equal(fake_guest_write(d, 0, in, sizeof(in)), sizeof(in));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p0->in_len, sizeof(in));
        assert_memory_equal(p0->in, in, sizeof(in));
        /* host -> guest into queue 0 */
        pattern(big, sizeof(big), 5);
        assert_int_equal(vs_port_write(p0->port, big, sizeof(big)), sizeof(big));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[0].len, sizeof(big));
        assert_memory_equal(d->port[0].data, big, sizeof(big));
        assert_true(d->vq[0].calls > 0);
        /* things that are control messages in multiport mode stay silent */
        assert_int_equal(vs_port_set_host_connected(p0->port, true), 0);
        assert_int_equal(vs_port_set_host_connected(e->p[1]->port, true), 0);
        assert_int_equal(vs_port_resize(p0->port, 90, 30), 0);
        fake_env_add(e, 2, "org.test.two", false);
        vs_port_remove(e->p[2]->port);
        assert_int_equal(vs_port_write(e->p[1]->port, "x", 1), 0);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->nlog, 0);
        /* still carries data */
        assert_int_equal(vs_port_write(p0->port, "end", 3), 3);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[0].len, sizeof(big) + 3);
        assert_string_equal(fake_error(d), "");
}

/*
 * The same over the in-process transport, with control rings set up as a
 * trap: without MULTIPORT the device must never write to them, and the size
 * change is a config_changed() call.
 */
static void test_single_port_inproc(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_QEMU,
                                     .single_port = true, .queue_size = 16 };
        struct fake_driver *d;
        struct fake_port *p0;
        struct vs_device *dev;
        uint16_t used2, used3;
        uint8_t msg[8] = { 0 };

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4 },
                .drv = c, .inproc = true,
                .ports = { CON0, { 1, "org.test.one", false, false, false } },
                .boot = true });
        p0 = e->p[0];
        dev = e->h->dev;
        assert_int_equal(d->nvqs, 2);
        /* trap: control rings, with buffers and a DEVICE_READY in them */
        assert_int_equal(fake_vq_alloc(d, 2, 16, true, FAKE_RX_BUF), 0);
        assert_int_equal(fake_vq_alloc(d, 3, 16, false, 8), 0);
        for (unsigned q = 2; q < 4; q++) {
                assert_int_equal(vs_device_queue_set_num(dev, q, 16), 0);
                assert_int_equal(vs_device_queue_set_addr(dev, q, d->vq[q].desc_gpa,
                                                          d->vq[q].avail_gpa,
                                                          d->vq[q].used_gpa, false), 0);
                d->vq[q].live = true;
                assert_int_equal(vs_device_queue_enable(dev, q, true), 0);
        }
        for (unsigned i = 0; i < 4; i++)
                assert_true(fake_vq_post_data(d, 2, NULL, FAKE_RX_BUF) >= 0);
        msg[0] = 0xff; msg[1] = 0xff; msg[2] = 0xff; msg[3] = 0xff;
        msg[6] = 1;
        assert_true(fake_vq_post_data(d, 3, msg, 8) >= 0);
        vs_device_queue_kick(dev, 2);
        vs_device_queue_kick(dev, 3);
        assert_int_equal(vs_port_set_host_connected(e->p[1]->port, true), 0);
        assert_int_equal(vs_port_resize(p0->port, 70, 20), 0);
        assert_int_equal(d->config_changes, 1);
        fake_env_add(e, 2, "org.test.two", false);
        FAKE_OK(d, fake_service(d));
        used2 = d->vq[2].used->idx;
        used3 = d->vq[3].used->idx;
        assert_int_equal(used2, 0);
        assert_int_equal(used3, 0);
        assert_int_equal(d->vq[2].calls, 0);
        /* data as usual */
        assert_int_equal(fake_guest_write(d, 0, "abc", 3), 3);
        assert_int_equal(vs_port_write(p0->port, "xyz", 3), 3);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p0->in_len, 3);
        assert_memory_equal(p0->in, "abc", 3);
        assert_int_equal(d->port[0].len, 3);
        assert_memory_equal(d->port[0].data, "xyz", 3);
        {
                uint8_t b[4];

                assert_int_equal(vs_device_config_read(dev, 0, b, 4), 0);
                assert_int_equal(le16at(b), 70);
                assert_int_equal(le16at(b + 2), 20);
        }
        assert_string_equal(fake_error(d), "");
}

/* ---- 7. flow control ----------------------------------------------------------- */

/* A partial take throttles one port; the rest of the device keeps going. */
static void test_flow_throttle(void **state)
{
        struct fake_env *e = *state;
        static uint8_t a[4096], b[3000], c5[5000], all[4096 + 3000 + 5000];
        struct fake_driver *d;
        struct fake_port *p1, *p2;
        unsigned tx1 = fake_port_vq(1, false);
        unsigned calls, log0;
        struct vs_port_stats st;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
                .ports = { CON0, { 1, "org.test.one", false, true, true }, { 2, "org.test.two", false, true, true } },
                .boot = true });
        p1 = e->p[1];
        p2 = e->p[2];
        pattern(a, sizeof(a), 10);
        pattern(b, sizeof(b), 11);
        pattern(c5, sizeof(c5), 12);
        memcpy(all, a, sizeof(a));
        memcpy(all + sizeof(a), b, sizeof(b));
        memcpy(all + sizeof(a) + sizeof(b), c5, sizeof(c5));

        p1->take_limit = 100;
        assert_int_equal(fake_guest_write(d, 1, a, sizeof(a)), sizeof(a));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p1->in_len, 100);
        assert_int_equal(p1->have_data_calls, 1);
        calls = p1->have_data_calls;
        /* more chains and kicks: nothing more is taken from port 1 */
        assert_int_equal(fake_guest_write(d, 1, b, sizeof(b)), sizeof(b));
        assert_int_equal(fake_guest_write(d, 1, c5, sizeof(c5)), sizeof(c5));
        force_kick(d, tx1);
        FAKE_OK(d, fake_service(d));
        force_kick(d, tx1);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p1->have_data_calls, calls);
        assert_int_equal(p1->in_len, 100);
        assert_int_equal(d->vq[tx1].last_used, 0);

        /* port 2 both ways, and the control queue, meanwhile */
        assert_int_equal(fake_guest_write(d, 2, "two", 3), 3);
        FAKE_OK(d, fake_port_send(p2, "owt", 3));
        log0 = d->nlog;
        assert_int_equal(vs_port_set_host_connected(p2->port, false), 0);
        assert_int_equal(vs_port_resize(e->p[0]->port, 111, 22), 0);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p2->in_len, 3);
        assert_memory_equal(p2->in, "two", 3);
        assert_int_equal(d->port[2].len, 3);
        assert_memory_equal(d->port[2].data, "owt", 3);
        assert_false(d->port[2].host_open);
        assert_int_equal(count_dev(d, log0, 0, FAKE_C_RESIZE), 1);
        FAKE_OK(d, fake_guest_open(d, 2, false));
        assert_int_equal(p2->guest_close_calls, 1);
        assert_int_equal(p1->have_data_calls, calls);

        /* resume at the exact byte */
        fake_port_unthrottle(p1, SIZE_MAX);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p1->in_len, sizeof(all));
        assert_memory_equal(p1->in, all, sizeof(all));
        assert_int_equal(d->vq[tx1].last_used, d->vq[tx1].avail_idx);
        vs_port_get_stats(p1->port, &st);
        assert_int_equal(st.from_guest, sizeof(all));
        all_well(d);
}

/* Takes of odd sizes (and of nothing) across chain boundaries stay exact. */
static void test_flow_odd_takes(void **state)
{
        struct fake_env *e = *state;
        static const size_t takes[] = { 1, 0, 7, 4095, 0, 1, 32767, 2, 12345,
                                        3, 65536 };
        static uint8_t buf[150000];
        struct fake_driver *d;
        struct fake_port *p1;
        size_t posted = 0, i = 0;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4 },
                .ports = { CON0, { 1, "org.test.one", false, false, true } },
                .boot = true });
        p1 = e->p[1];
        pattern(buf, sizeof(buf), 13);
        p1->take_limit = 0;
        /* chains of uneven sizes */
        while (posted < sizeof(buf)) {
                size_t n = 1 + (posted * 7 + 333) % 20000;

                if (n > sizeof(buf) - posted)
                        n = sizeof(buf) - posted;
                assert_int_equal(fake_guest_write(d, 1, buf + posted, n), n);
                posted += n;
        }
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p1->in_len, 0);
        for (unsigned round = 0; round < 200 && p1->in_len < sizeof(buf); round++) {
                size_t before = p1->in_len;
                size_t t = takes[i++ % (sizeof(takes) / sizeof(takes[0]))];

                fake_port_unthrottle(p1, t);
                FAKE_OK(d, fake_service(d));
                if (p1->in_len != sizeof(buf))
                        assert_int_equal(p1->in_len, before + t);
        }
        assert_int_equal(p1->in_len, sizeof(buf));
        assert_memory_equal(p1->in, buf, sizeof(buf));
        assert_string_equal(fake_error(d), "");
}

/* Host -> guest with no buffers: 0 / -ENOBUFS, then guest_ready on a kick. */
static void test_flow_guest_no_buffers(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML,
                                     .rx_fill = FAKE_RX_NONE };
        static uint8_t data[5000];
        struct fake_driver *d;
        struct fake_port *p1;
        unsigned rx = fake_port_vq(1, true);
        unsigned ready0;
        int pfd[2];
        ssize_t n;

        d = fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4 },
                .drv = c,
                .ports = { CON0, { 1, "org.test.one", false, false, true } },
                .boot = true });
        p1 = e->p[1];
        assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
        pattern(data, sizeof(data), 14);
        assert_int_equal(write(pfd[1], data, sizeof(data)), sizeof(data));
        ready0 = p1->guest_ready_calls;

        assert_int_equal(vs_port_write(p1->port, "abc", 3), 0);
        assert_int_equal(vs_port_recv_fd(p1->port, pfd[0], 65536), -ENOBUFS);
        assert_int_equal(vs_port_guest_room(p1->port), 0);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p1->guest_ready_calls, ready0);
        assert_int_equal(d->port[1].len, 0);

        /* the guest posts three buffers and kicks */
        FAKE_OK(d, fake_rx_fill(d, rx, 3));
        FAKE_OK(d, fake_service(d));
        assert_true(p1->guest_ready_calls > ready0);
        assert_int_equal(vs_port_guest_room(p1->port), 3 * FAKE_RX_BUF);
        n = vs_port_recv_fd(p1->port, pfd[0], 65536);
        assert_int_equal(n, sizeof(data));
        assert_int_equal(vs_port_recv_fd(p1->port, pfd[0], 65536), -EAGAIN);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[1].len, sizeof(data));
        assert_memory_equal(d->port[1].data, data, sizeof(data));
        /* the fake reposted what it read: room again */
        assert_int_equal(vs_port_write(p1->port, "abc", 3), 3);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[1].len, sizeof(data) + 3);
        close(pfd[0]);
        close(pfd[1]);
        assert_string_equal(fake_error(d), "");
}

/* ---- 8. 511 ports, in process ------------------------------------------------ */

static void ports_511_case(struct fake_env *e, uint16_t queue_size)
{
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML,
                                     .max_ports = VS_MAX_PORTS,
                                     .queue_size = queue_size, .rx_fill = 2 };
        struct fake_port **p;
        struct fake_driver *d;
        char buf[64];

        host_new(e, VS_MAX_PORTS, 0, 0, VS_RESIZE_COLS_ROWS);
        assert_int_equal(vs_device_num_queues(e->h->dev), 1024);
        p = e->h->ports;
        fake_env_add(e, 0, NULL, true);
        for (uint32_t id = 1; id < VS_MAX_PORTS; id++) {
                snprintf(buf, sizeof(buf), "org.test.p%03u", id);
                fake_env_add(e, (int32_t)id, buf, false);
                assert_int_equal(vs_port_set_host_connected(p[id]->port, true), 0);
        }
        driver_up(e, &c, true);
        d = e->d;
        assert_true(d->features & (1ull << VS_CONSOLE_F_MULTIPORT));
        assert_int_equal(d->max_nr_ports, VS_MAX_PORTS);
        assert_int_equal(d->nvqs, 1024);
        for (uint32_t id = 0; id < VS_MAX_PORTS; id++) {
                if (!d->port[id].added)
                        fail_msg("port %u never added", id);
                if (!d->port[id].host_open && id != 0)
                        fail_msg("port %u: no PORT_OPEN (named %d, %u PORT_OPEN sent, nlog %u)", id,
                                 d->port[id].named, count_dev(d, 0, id, FAKE_C_PORT_OPEN), d->nlog);
                if (id) {
                        snprintf(buf, sizeof(buf), "org.test.p%03u", id);
                        assert_string_equal(d->port[id].name, buf);
                }
        }
        assert_true(d->port[0].console);
        for (uint32_t id = 1; id < VS_MAX_PORTS; id++)
                FAKE_OK(d, fake_guest_open(d, id, true));
        for (uint32_t id = 0; id < VS_MAX_PORTS; id++) {
                assert_true(vs_port_guest_connected(p[id]->port));
                snprintf(buf, sizeof(buf), "g2h:%u", id);
                assert_int_equal(fake_guest_write(d, id, buf, strlen(buf)),
                                 strlen(buf));
                snprintf(buf, sizeof(buf), "h2g:%u", id);
                FAKE_OK(d, fake_port_send(p[id], buf, strlen(buf)));
        }
        FAKE_OK(d, fake_service(d));
        for (uint32_t id = 0; id < VS_MAX_PORTS; id++) {
                unsigned rxq = fake_port_vq(id, true);

                snprintf(buf, sizeof(buf), "g2h:%u", id);
                assert_int_equal(p[id]->in_len, strlen(buf));
                assert_memory_equal(p[id]->in, buf, strlen(buf));
                snprintf(buf, sizeof(buf), "h2g:%u", id);
                assert_int_equal(d->port[id].len, strlen(buf));
                assert_memory_equal(d->port[id].data, buf, strlen(buf));
                assert_true(d->vq[rxq].calls >= 1);
                assert_int_equal(vs_device_queue_error(e->h->dev, rxq), 0);
        }
        /* the last port again, and a hot remove at the top id */
        vs_port_remove(p[VS_MAX_PORTS - 1]->port);
        FAKE_OK(d, fake_service(d));
        assert_false(d->port[VS_MAX_PORTS - 1].added);
        all_well(d);
}

/* Rings of 1024: the control ring holds every announcement at once. */
static void test_inproc_511_ports(void **state)
{
        ports_511_case(*state, 1024);
}

/* Rings of 32, QEMU's virtio-serial control queue size: a backlog. */
static void test_inproc_511_ports_small_rings(void **state)
{
        ports_511_case(*state, 32);
}

/* ---- 9. reset in the middle of a transfer ------------------------------------ */

/* Port 1 open both ways, 4096 bytes posted by the guest, 100 taken. */
static void half_consumed(struct fake_env *e, uint8_t *a, size_t alen)
{
        struct fake_driver *d = e->d;
        struct fake_port *p1 = e->p[1];

        FAKE_OK(d, fake_guest_open(d, 1, true));
        FAKE_OK(d, fake_port_send(p1, "before", 6));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[1].len, 6);
        p1->take_limit = 100;
        assert_int_equal(fake_guest_write(d, 1, a, alen), (ssize_t)alen);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(p1->in_len, 100);
        assert_memory_equal(p1->in, a, 100);
}

/*
 * With the rings down the host side pokes at the data path: nothing moves.
 * With @ctrl it also changes what the next driver must be told: a console
 * size, a host connection, a new port 3.
 */
static void host_pokes_while_down(struct fake_env *e, bool ctrl)
{
        struct fake_port *p1 = e->p[1];
        unsigned calls = p1->have_data_calls;

        assert_true(vs_port_write(p1->port, "zzz", 3) <= 0);
        assert_true(vs_port_recv_fd(p1->port, -1, 10) < 0);
        assert_int_equal(vs_port_guest_room(p1->port), 0);
        fake_port_unthrottle(p1, SIZE_MAX);
        if (ctrl) {
                assert_true(vs_port_resize(e->p[0]->port, 77, 7) >= 0);
                assert_true(vs_port_set_host_connected(e->p[2]->port, true) >= 0);
                fake_env_add(e, 3, "org.test.late", false);
        }
        assert_true(fake_host_pump(e->h) >= 0);
        assert_int_equal(p1->have_data_calls, calls);
        assert_int_equal(p1->in_len, 100);
}

/* After the new probe: ports back, PORT_OPEN re-sent, data both ways. */
static void check_back(struct fake_env *e, unsigned log0, bool ctrl)
{
        struct fake_driver *d = e->d;
        struct fake_port *p1 = e->p[1];

        if (ctrl && count_dev(d, log0, 3, FAKE_C_PORT_ADD) != 1)
                fail_msg("the new driver got PORT_ADD 3 %u times: messages queued for the old driver were flushed into the new one's control rx ring when it was enabled, before its DEVICE_READY (serial.c queue_started -> vs__ctrl_flush; driver_ready and per-port guest_ready survive ring disable)",
                         count_dev(d, log0, 3, FAKE_C_PORT_ADD));
        for (uint32_t id = 0; id < 3; id++)
                assert_int_equal(count_dev(d, log0, id, FAKE_C_PORT_ADD), 1);
        assert_true(vs_port_host_connected(p1->port));
        assert_true(fake_log_find(d, log0, 1, FAKE_C_PORT_OPEN, false) >= 0);
        assert_true(d->port[1].host_open);
        assert_string_equal(d->port[1].name, "org.test.one");
        assert_int_equal(d->port[2].host_open, ctrl);
        assert_int_equal(d->port[0].cols, ctrl ? 77 : 80);
        assert_int_equal(d->port[0].rows, ctrl ? 7 : 25);
        resize_after_console(d, log0, 0);
        assert_int_equal(count_dev(d, log0, 3, FAKE_C_PORT_ADD), ctrl);
        if (ctrl)
                assert_string_equal(d->port[3].name, "org.test.late");
        /* the guest had port 1 open: the device saw it go */
        assert_true(p1->guest_close_calls >= 1);
        assert_false(vs_port_guest_connected(p1->port));
        FAKE_OK(d, fake_guest_open(d, 1, true));
        assert_true(vs_port_guest_connected(p1->port));
        assert_int_equal(fake_guest_write(d, 1, "after", 5), 5);
        FAKE_OK(d, fake_port_send(p1, "again", 5));
        FAKE_OK(d, fake_service(d));
        /* the old driver's chain is gone with it: only the new bytes follow */
        assert_int_equal(p1->in_len, 105);
        assert_memory_equal(p1->in + 100, "after", 5);
        assert_int_equal(d->port[1].len, 5);
        assert_memory_equal(d->port[1].data, "again", 5);
        all_well(d);
}

/*
 * The reset cases' device (console 0, ports 1 and 2, port 1's host side
 * open) in a small guest, UML-style or in process (@inproc), and a
 * transfer on port 1 the host took only half of (pattern @seed).
 */
static struct fake_driver *reset_up(struct fake_env *e,
                                    struct fake_driver_cfg c, bool inproc,
                                    unsigned seed)
{
        static uint8_t a[4096];

        small_mem(&c);
        fake_env_up(e, &(struct fake_env_spec){
                .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
                .drv = c, .inproc = inproc,
                .ports = { CON0, { 1, "org.test.one", false, true, false },
                           { 2, "org.test.two", false, false, false } },
                .boot = true });
        pattern(a, sizeof(a), seed);
        half_consumed(e, a, sizeof(a));
        return e->d;
}

/*
 * UML rmmod (ENABLE 0 everywhere) mid-transfer, then a full new probe.
 * With @ctrl the host changed things while no driver was there: the new
 * driver must hear of them after its DEVICE_READY, in the usual order, and
 * nothing meant for the old driver.
 */
static void uml_teardown_case(struct fake_env *e, bool ctrl)
{
        /* events for unknown ports dropped, as Linux does: check_back()
         * judges what the new driver was sent */
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML,
                                     .lenient_ctrl = ctrl };
        struct fake_driver *d = reset_up(e, c, false, 20);
        unsigned log0;

        FAKE_OK(d, fake_uml_remove(d));
        snap_take(e);
        host_pokes_while_down(e, ctrl);
        snap_check(e);
        assert_int_equal(e->h->closed_calls, 0);
        log0 = d->nlog;
        FAKE_OK(d, fake_uml_probe(d));
        check_back(e, log0, ctrl);
}

static void test_reset_uml_teardown(void **state)
{
        uml_teardown_case(*state, false);
}

static void test_reset_uml_teardown_host_events(void **state)
{
        uml_teardown_case(*state, true);
}

/* vs_device_reset() mid-transfer (a VMM's status write of 0), in process. */
static void test_reset_device_inproc(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_QEMU };
        struct fake_driver *d = reset_up(e, c, true, 21);
        uint64_t calls[10];
        unsigned log0;

        for (unsigned q = 0; q < 10; q++)
                calls[q] = d->vq[q].calls;
        vs_device_reset(e->h->dev);
        /* the guest side is gone, the host side is not */
        assert_false(vs_port_guest_connected(e->p[1]->port));
        assert_int_equal(e->p[1]->guest_close_calls, 1);
        assert_true(vs_port_host_connected(e->p[1]->port));
        assert_non_null(vs_port_find(e->h->dev, 2));
        for (unsigned q = 0; q < 10; q++)
                assert_int_equal(vs_device_queue_error(e->h->dev, q), 0);
        snap_take(e);
        host_pokes_while_down(e, true);
        /* the guest kicks stale rings: nothing either */
        for (unsigned q = 0; q < 10; q++)
                vs_device_queue_kick(e->h->dev, q);
        snap_check(e);
        for (unsigned q = 0; q < 10; q++)
                assert_int_equal(d->vq[q].calls, calls[q]);
        FAKE_OK(d, fake_inproc_remove(d, true));
        log0 = d->nlog;
        FAKE_OK(d, fake_inproc_probe(d));
        check_back(e, log0, true);
}

/* ---- 10. RESET_OWNER ----------------------------------------------------------- */

static void test_reset_owner(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML };
        struct fake_driver *d = reset_up(e, c, false, 22);
        unsigned log0;

        snap_take(e);
        FAKE_OK(d, fake_vu_msg(d, FAKE_VU_RESET_OWNER, FAKE_VU_VERSION, NULL,
                               0, NULL, 0));
        assert_int_equal(e->h->closed_calls, 0);
        /* clean: no guest side, no broken queue; host ports as they were */
        for (uint32_t id = 0; id < 3; id++) {
                assert_non_null(vs_port_find(e->h->dev, id));
                assert_false(vs_port_guest_connected(e->p[id]->port));
        }
        assert_int_equal(e->p[1]->guest_close_calls, 1);
        assert_true(vs_port_host_connected(e->p[1]->port));
        assert_string_equal(vs_port_name(e->p[1]->port), "org.test.one");
        for (unsigned q = 0; q < vs_device_num_queues(e->h->dev); q++)
                assert_int_equal(vs_device_queue_error(e->h->dev, q), 0);
        host_pokes_while_down(e, true);
        snap_check(e);
        /* the frontend starts over: owner, features, memory, rings */
        for (unsigned q = 0; q < d->nvqs; q++)
                fake_vq_release(d, q);
        fake_console_forget(d);
        if (d->req >= 0)
                close(d->req);
        d->req = -1;
        log0 = d->nlog;
        FAKE_OK(d, fake_uml_boot(d));
        FAKE_OK(d, fake_uml_probe(d));
        check_back(e, log0, true);
}

#define T(f) FAKE_ENV_TEST(f)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_hotplug_add_remove), T(test_hotplug_errors),
                T(test_hotplug_during_data), T(test_hotplug_readd_after_throttle),
                T(test_hotplug_remove_half_consumed), T(test_port_ready_zero),
                T(test_two_consoles), T(test_ctrl_queue_refill),
                T(test_ctrl_backlog_no_stall), T(test_ctrl_port_ready_repeats),
                T(test_ctrl_full_host_connected), T(test_ctrl_full_port_add),
                T(test_ctrl_full_port_remove), T(test_ctrl_full_resize),
                T(test_resize_cols_rows), T(test_resize_rows_cols),
                T(test_resize_single_port), T(test_emerg_write),
                T(test_single_port_data), T(test_single_port_inproc),
                T(test_flow_throttle), T(test_flow_odd_takes),
                T(test_flow_guest_no_buffers), T(test_inproc_511_ports),
                T(test_inproc_511_ports_small_rings), T(test_reset_uml_teardown),
                T(test_reset_uml_teardown_host_events), T(test_reset_device_inproc),
                T(test_reset_owner),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
