/* SPDX-License-Identifier: MIT */
/*
 * The unit tests' one environment over the driver-side fake: a host (the
 * device and its ports), a driver (UML- or QEMU-style over vhost-user) and a
 * spare eventfd, with the cmocka set-up and tear-down every case uses; and
 * the raw vhost-user steps the message-level tests share (test_vhost_user.c,
 * test_hostile.c). Every helper asserts, so a test reads as its steps.
 *
 * Table-driven cases: fake_env_rows() turns each row of a table into a
 * cmocka case named by the row; the case finds its row in fake_env.arg.
 */
#ifndef FAKE_ENV_H
#define FAKE_ENV_H

#include <setjmp.h>      /* cmocka.h needs these first */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fake_driver.h"

#define FAKE_ENV_MAXP 16u       /* ports kept by id in fake_env.p */
#define FAKE_ENV_SPEC_PORTS 8u

#define FAKE_ENV_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct fake_env {
        struct fake_host *h;
        struct fake_driver *d;
        struct fake_port *p[FAKE_ENV_MAXP];     /* by id, as added */
        int efd;                /* spare eventfd, -1 unless asked for */
        const void *arg;        /* the table row of a row case, else NULL */
        void *own;              /* a test's own allocation, freed with it */
};

/* One port fake_env_up adds; a zeroed entry ends the list. */
struct fake_env_port {
        int32_t id;
        const char *name;
        bool console;
        bool host_open;         /* host side connected before the driver */
        bool guest_open;        /* the guest opens it once booted */
};

/* What fake_env_up builds: zeroed fields are the fake's defaults. */
struct fake_env_spec {
        struct vs_device_config dev;
        struct fake_driver_cfg drv;
        struct fake_env_port ports[FAKE_ENV_SPEC_PORTS];
        bool inproc;    /* the in-process transport, no vhost-user */
        bool boot;      /* UML: boot and probe; QEMU: realize and start;
                         * in process: probe */
        bool efd;       /* open fake_env.efd (nonblocking eventfd) */
};

/* cmocka set-up/tear-down: a zeroed env; tear-down frees all of it. */
int fake_env_setup(void **state);
int fake_env_teardown(void **state);
#define FAKE_ENV_TEST(f) \
        cmocka_unit_test_setup_teardown(f, fake_env_setup, fake_env_teardown)

/*
 * Cases @f, one per row of @table (@n rows of @size bytes, each starting
 * with its name, a const char *), appended to @t at @at; returns the new
 * count. @setup/@teardown NULL: fake_env's.
 */
unsigned fake_env_rows(struct CMUnitTest *t, unsigned at, void (*f)(void **),
                       const void *table, size_t n, size_t size,
                       int (*setup)(void **), int (*teardown)(void **));
#define FAKE_ENV_ROWS(t, at, f, table, setup, teardown)                 \
        fake_env_rows(t, at, f, table, FAKE_ENV_ARRAY_SIZE(table),      \
                      sizeof((table)[0]), setup, teardown)

/* The host, its ports, the driver, the boot: what @s says, in that order.
 * Returns the driver (e->d). */
struct fake_driver *fake_env_up(struct fake_env *e,
                                const struct fake_env_spec *s);
/* The same with @drv (if not NULL) for s->drv: one device, other drivers. */
struct fake_driver *fake_env_up_drv(struct fake_env *e,
                                    const struct fake_env_spec *s,
                                    const struct fake_driver_cfg *drv);
/* The steps alone, for a test that does something between them. */
void fake_env_host(struct fake_env *e, const struct vs_device_config *dc);
struct fake_port *fake_env_add(struct fake_env *e, int32_t id,
                               const char *name, bool console);
void fake_env_driver(struct fake_env *e, const struct fake_driver_cfg *cfg,
                     bool inproc);
void fake_env_boot(struct fake_env *e);

/* ---- raw vhost-user (a QEMU- or UML-style driver) ---------------------- */

/* Negotiate REPLY_ACK so that NEED_REPLY is answered. */
void fake_env_ack_on(struct fake_env *e);
/* Everything sent so far is handled and the connection is up. */
void fake_env_assert_open(struct fake_env *e);
/* The backend closed the connection, once, with a negative errno. */
void fake_env_expect_closed(struct fake_env *e);
/* Any bytes with any number of fds (up to 16) in one sendmsg. */
void fake_env_send_raw(struct fake_env *e, const void *buf, size_t len,
                       const int *fds, unsigned nfds);
/* A header with @size as given and @plen payload bytes (up to 512). */
void fake_env_send(struct fake_env *e, uint32_t req, uint32_t flags,
                   uint32_t size, const void *p, uint32_t plen,
                   const int *fds, unsigned nfds);
/*
 * One vring message naming ring @index: ADDR all zero, KICK/CALL/ERR with
 * @fd (none if -1), the others a vring state { index, @num }.
 */
void fake_env_send_vring(struct fake_env *e, uint32_t req, uint64_t index,
                         uint32_t num, int fd);

#endif
