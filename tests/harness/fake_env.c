/* SPDX-License-Identifier: MIT */
/* The unit tests' shared environment: see fake_env.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_env.h"

int fake_env_setup(void **state)
{
        struct fake_env *e = calloc(1, sizeof(*e));

        if (!e)
                return -1;
        e->efd = -1;
        e->arg = *state;        /* cmocka's initial state: a row, or NULL */
        *state = e;
        return 0;
}

int fake_env_teardown(void **state)
{
        struct fake_env *e = *state;

        fake_driver_free(e->d);
        fake_host_free(e->h);
        if (e->efd >= 0)
                close(e->efd);
        free(e->own);
        free(e);
        return 0;
}

unsigned fake_env_rows(struct CMUnitTest *t, unsigned at, void (*f)(void **),
                       const void *table, size_t n, size_t size,
                       int (*setup)(void **), int (*teardown)(void **))
{
        for (size_t i = 0; i < n; i++) {
                const void *row = (const char *)table + i * size;

                t[at++] = (struct CMUnitTest){
                        .name = *(const char *const *)row,
                        .test_func = f,
                        .setup_func = setup ? setup : fake_env_setup,
                        .teardown_func = teardown ? teardown : fake_env_teardown,
                        .initial_state = (void *)row,
                };
        }
        return at;
}

void fake_env_host(struct fake_env *e, const struct vs_device_config *dc)
{
        assert_int_equal(fake_host_new(dc, &e->h), 0);
}

struct fake_port *fake_env_add(struct fake_env *e, int32_t id,
                               const char *name, bool console)
{
        int err = 0;
        struct fake_port *p = fake_host_add_port(e->h, id, name, console, &err);

        if (!p)
                fail_msg("add port %d (%s): %d", id, name ? name : "-", err);
        if (p->id < FAKE_ENV_MAXP)
                e->p[p->id] = p;
        return p;
}

void fake_env_driver(struct fake_env *e, const struct fake_driver_cfg *cfg,
                     bool inproc)
{
        if (inproc)
                assert_int_equal(fake_driver_new_inproc(e->h, cfg, &e->d), 0);
        else
                assert_int_equal(fake_driver_new(e->h, cfg, &e->d), 0);
}

void fake_env_boot(struct fake_env *e)
{
        if (e->d->inproc) {
                FAKE_OK(e->d, fake_inproc_probe(e->d));
        } else if (e->d->cfg.style == FAKE_STYLE_QEMU) {
                FAKE_OK(e->d, fake_qemu_realize(e->d));
                FAKE_OK(e->d, fake_qemu_start(e->d));
        } else {
                FAKE_OK(e->d, fake_uml_boot(e->d));
                FAKE_OK(e->d, fake_uml_probe(e->d));
        }
}

static bool port_set(const struct fake_env_port *p)
{
        return p->id || p->name || p->console;
}

struct fake_driver *fake_env_up(struct fake_env *e,
                                const struct fake_env_spec *s)
{
        return fake_env_up_drv(e, s, NULL);
}

struct fake_driver *fake_env_up_drv(struct fake_env *e,
                                    const struct fake_env_spec *s,
                                    const struct fake_driver_cfg *drv)
{
        const struct fake_env_port *p;
        const struct fake_env_port *end = s->ports + FAKE_ENV_SPEC_PORTS;

        fake_env_host(e, &s->dev);
        for (p = s->ports; p < end && port_set(p); p++)
                fake_env_add(e, p->id, p->name, p->console);
        /* host sides open once all ports are there, as the daemon does */
        for (p = s->ports; p < end && port_set(p); p++)
                if (p->host_open)
                        assert_int_equal(vs_port_set_host_connected(
                                                 e->p[p->id]->port, true), 0);
        fake_env_driver(e, drv ? drv : &s->drv, s->inproc);
        if (s->boot) {
                fake_env_boot(e);
                for (p = s->ports; p < end && port_set(p); p++)
                        if (p->guest_open)
                                FAKE_OK(e->d, fake_guest_open(e->d,
                                                              (uint32_t)p->id,
                                                              true));
        }
        if (s->efd) {
                e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                assert_true(e->efd >= 0);
        }
        return e->d;
}

/* ---- raw vhost-user ------------------------------------------------------ */

void fake_env_ack_on(struct fake_env *e)
{
        uint64_t pf;

        FAKE_OK(e->d, fake_vu_get_u64(e->d, FAKE_VU_GET_PROTOCOL_FEATURES, &pf));
        assert_true(pf & (1ull << FAKE_PF_REPLY_ACK));
        FAKE_OK(e->d, fake_vu_u64(e->d, FAKE_VU_SET_PROTOCOL_FEATURES,
                                  FAKE_VU_VERSION, pf));
        e->d->pf = pf;
}

void fake_env_assert_open(struct fake_env *e)
{
        FAKE_OK(e->d, fake_vu_settle(e->d));
        assert_int_equal(e->h->closed_calls, 0);
}

void fake_env_expect_closed(struct fake_env *e)
{
        int err = fake_vu_wait_closed(e->d);

        if (err == -ETIMEDOUT && !e->h->closed_calls)
                fail_msg("the backend kept the connection open");
        assert_int_equal(e->h->closed_calls, 1);
        if (err >= 0)
                fail_msg("closed with %d (%s), want a negative errno", err,
                         e->h->closed_why);
        assert_true(vs_vu_is_closed(e->h->vu));
}

void fake_env_send_raw(struct fake_env *e, const void *buf, size_t len,
                       const int *fds, unsigned nfds)
{
        assert_true(nfds <= FAKE_SEND_MAX_FDS);
        assert_int_equal(fake_sendmsg(e->d->sock, buf, len, fds, nfds,
                                      MSG_NOSIGNAL), (ssize_t)len);
}

void fake_env_send(struct fake_env *e, uint32_t req, uint32_t flags,
                   uint32_t size, const void *p, uint32_t plen,
                   const int *fds, unsigned nfds)
{
        uint8_t buf[FAKE_VU_HDR + 512] = { 0 };
        uint32_t h[3] = { req, flags, size };

        assert_true(plen <= 512);
        memcpy(buf, h, FAKE_VU_HDR);
        if (p)
                memcpy(buf + FAKE_VU_HDR, p, plen);
        fake_env_send_raw(e, buf, FAKE_VU_HDR + plen, fds, nfds);
}

void fake_env_send_vring(struct fake_env *e, uint32_t req, uint64_t index,
                         uint32_t num, int fd)
{
        const uint32_t v = FAKE_VU_VERSION;

        switch (req) {
        case FAKE_VU_SET_VRING_ADDR: {
                struct fake_vu_vring_addr a = { .index = (uint32_t)index };

                fake_env_send(e, req, v, sizeof(a), &a, sizeof(a), NULL, 0);
                break;
        }
        case FAKE_VU_SET_VRING_KICK:
        case FAKE_VU_SET_VRING_CALL:
        case FAKE_VU_SET_VRING_ERR:
                fake_env_send(e, req, v, 8, &index, 8, &fd, fd >= 0);
                break;
        default: {
                uint32_t s[2] = { (uint32_t)index, num };

                fake_env_send(e, req, v, 8, s, 8, NULL, 0);
        }
        }
}
