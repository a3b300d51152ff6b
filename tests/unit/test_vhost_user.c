/* SPDX-License-Identifier: MIT */
/*
 * vhost-user message level: every supported message round trips with the
 * right reply, and every malformed one ends the connection with a negative
 * errno through the closed() callback, without crashing the backend.
 * Messages are built by hand through the fake's raw send functions.
 * The bad ring indices, sizes, fd counts, memory tables and cut messages
 * are rows of test_hostile.c's tables, with its fd and mapping checks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_env.h"

#define V FAKE_VU_VERSION
#define NR (FAKE_VU_VERSION | FAKE_VU_NEED_REPLY)
#define NQ 10u          /* 4 ports: 2 * (4 + 1) queues */

/* A QEMU-style frontend, connected only, on a 4-port device with port 1. */
static int setup(void **state)
{
        static const struct fake_env_spec spec = {
                .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
                .drv = { .style = FAKE_STYLE_QEMU },
                .ports = { { 1, "p1", false, false, false } },
                .efd = true,
        };
        int r = fake_env_setup(state);

        if (r == 0)
                fake_env_up(*state, &spec);
        return r;
}

/* ---- round trips ------------------------------------------------------- */

static void test_features(void **state)
{
        struct fake_env *e = *state;
        uint64_t f;

        FAKE_OK(e->d, fake_vu_get_u64(e->d, FAKE_VU_GET_FEATURES, &f));
        assert_true(f & (1ull << FAKE_F_PROTOCOL_FEATURES));
        assert_true(f & (1ull << VS_F_VERSION_1));
        assert_true(f & (1ull << VS_CONSOLE_F_MULTIPORT));
        /* never offer what the backend cannot do and a guest would use */
        assert_false(f & (1ull << FAKE_F_RING_PACKED));
        assert_false(f & (1ull << FAKE_F_ACCESS_PLATFORM));
        fake_env_ack_on(e);
        FAKE_OK(e->d, fake_vu_u64(e->d, FAKE_VU_SET_FEATURES, NR, f));
        /* bit 30 belongs to vhost-user, not to the device */
        assert_int_equal(vs_device_features(e->h->dev) | (1ull << FAKE_F_PROTOCOL_FEATURES), f);
        fake_env_assert_open(e);
}

static void test_protocol_features(void **state)
{
        struct fake_env *e = *state;
        uint64_t pf;

        FAKE_OK(e->d, fake_vu_get_u64(e->d, FAKE_VU_GET_PROTOCOL_FEATURES, &pf));
        assert_true(pf & (1ull << FAKE_PF_REPLY_ACK));
        assert_true(pf & (1ull << FAKE_PF_BACKEND_REQ));
        assert_true(pf & (1ull << FAKE_PF_CONFIG));
        /* in-band notifications are acked by QEMU but never used */
        assert_false(pf & (1ull << FAKE_PF_INBAND));
        /* UML's subset, with the ack it asks for */
        e->d->pf = pf & FAKE_UML_PF_MASK;
        FAKE_OK(e->d, fake_vu_u64(e->d, FAKE_VU_SET_PROTOCOL_FEATURES, NR,
                                  e->d->pf));
        fake_env_assert_open(e);
}

/* NEED_REPLY gets u64 0; without it nothing comes back. */
static void test_reply_ack(void **state)
{
        struct fake_env *e = *state;

        fake_env_ack_on(e);
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_OWNER, NR, NULL, 0, NULL, 0));
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_OWNER, V, NULL, 0, NULL, 0));
        FAKE_OK(e->d, fake_vu_state(e->d, FAKE_VU_SET_VRING_NUM, NR, 0, 64));
        FAKE_OK(e->d, fake_vu_state(e->d, FAKE_VU_SET_VRING_NUM, V, 0, 64));
        fake_env_assert_open(e);
}

static void test_owner_reset_owner(void **state)
{
        struct fake_env *e = *state;

        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_OWNER, V, NULL, 0, NULL, 0));
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_RESET_OWNER, V, NULL, 0, NULL, 0));
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_OWNER, V, NULL, 0, NULL, 0));
        fake_env_assert_open(e);
}

/* UML: one region in a 72-byte payload, mmap_offset == gpa == uva. */
static void test_mem_table_uml(void **state)
{
        struct fake_env *e = *state;
        uint8_t p[72] = { 0 };
        struct fake_vu_region r = { 0x2000000, 1 << 20, 0x2000000, 0x2000000 };
        uint32_t one = 1;
        int fd;

        memcpy(p, &one, 4);
        memcpy(p + 8, &r, 32);
        fd = memfd_create("uml", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 0x2000000 + (1 << 20)), 0);
        fake_env_ack_on(e);
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_MEM_TABLE, NR, p, 72, &fd, 1));
        close(fd);
        fake_env_assert_open(e);
}

/* QEMU: 8 + 32n bytes, uva distinct from gpa; sent again on each start. */
static void test_mem_table_qemu(void **state)
{
        struct fake_env *e = *state;

        fake_env_ack_on(e);
        FAKE_OK(e->d, fake_vu_set_mem_table(e->d, NR));
        FAKE_OK(e->d, fake_vu_set_mem_table(e->d, V));
        fake_env_assert_open(e);
}

/* Rings: NUM, ADDR (uva), BASE, then GET_VRING_BASE gives the base back. */
static void test_vring_setup(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = e->d;
        uint16_t base;

        fake_env_ack_on(e);
        FAKE_OK(d, fake_vu_set_mem_table(d, NR));
        assert_int_equal(fake_vq_alloc(d, 2, 64, true, FAKE_RX_BUF), 0);
        FAKE_OK(d, fake_vu_state(d, FAKE_VU_SET_VRING_NUM, NR, 2, 64));
        FAKE_OK(d, fake_vu_state(d, FAKE_VU_SET_VRING_BASE, NR, 2, 7));
        {
                struct fake_vu_vring_addr a = {
                        .index = 2,
                        .desc = fake_gpa_to_uva(d, d->vq[2].desc_gpa),
                        .used = fake_gpa_to_uva(d, d->vq[2].used_gpa),
                        .avail = fake_gpa_to_uva(d, d->vq[2].avail_gpa),
                        .log = d->vq[2].used_gpa,
                };
                FAKE_OK(d, fake_vu_msg(d, FAKE_VU_SET_VRING_ADDR, NR, &a,
                                       sizeof(a), NULL, 0));
        }
        FAKE_OK(d, fake_vu_fd(d, FAKE_VU_SET_VRING_KICK, NR, 2, e->efd));
        FAKE_OK(d, fake_vu_fd(d, FAKE_VU_SET_VRING_CALL, NR, 2, e->efd));
        FAKE_OK(d, fake_vu_fd(d, FAKE_VU_SET_VRING_ERR, NR, 2, e->efd));
        FAKE_OK(d, fake_vu_state(d, FAKE_VU_SET_VRING_ENABLE, NR, 2, 1));
        FAKE_OK(d, fake_vu_state(d, FAKE_VU_SET_VRING_ENABLE, NR, 2, 0));
        FAKE_OK(d, fake_vu_get_vring_base(d, 2, &base));
        assert_int_equal(base, 7);
        FAKE_OK(d, fake_vu_get_vring_base(d, 9, &base));
        fake_env_assert_open(e);
}

/* KICK/CALL/ERR with the "no fd" bit and no fd are accepted. */
static void test_vring_fd_nofd(void **state)
{
        struct fake_env *e = *state;

        fake_env_ack_on(e);
        FAKE_OK(e->d, fake_vu_fd(e->d, FAKE_VU_SET_VRING_CALL, NR, 3 | FAKE_VU_NOFD_MASK, -1));
        FAKE_OK(e->d, fake_vu_fd(e->d, FAKE_VU_SET_VRING_ERR, NR, 3 | FAKE_VU_NOFD_MASK, -1));
        FAKE_OK(e->d, fake_vu_fd(e->d, FAKE_VU_SET_VRING_CALL, NR, 3, e->efd));
        fake_env_assert_open(e);
}

static void test_queue_num(void **state)
{
        struct fake_env *e = *state;
        uint64_t n;

        FAKE_OK(e->d, fake_vu_get_u64(e->d, FAKE_VU_GET_QUEUE_NUM, &n));
        assert_int_equal(n, NQ);
}

/* GET_CONFIG repeats both sizes; UML asks per field, QEMU for all 12. */
static void test_get_config(void **state)
{
        struct fake_env *e = *state;
        uint8_t c[12];
        uint16_t cols, rows;
        uint32_t max;

        FAKE_OK(e->d, fake_vu_get_config(e->d, 8, c));
        memcpy(&max, c + 4, 4);
        assert_int_equal(max, 4);
        FAKE_OK(e->d, fake_vu_get_config(e->d, 12, c));
        memcpy(&cols, c, 2);
        memcpy(&rows, c + 2, 2);
        memcpy(&max, c + 4, 4);
        assert_int_equal(max, 4);
        assert_int_equal(cols, 80);
        assert_int_equal(rows, 25);
        FAKE_OK(e->d, fake_vu_get_config(e->d, 2, c));
        fake_env_assert_open(e);
}

/*
 * A frontend that named fewer rings than the device needs before the guest
 * reads the config (QEMU's num_vqs too small: CALL/ERR for each of its
 * rings at start) is reported once, and nothing else changes. Config read
 * before any ring is named (UML, the fakes) or with all rings named is
 * not a shortage.
 */
static void test_rings_short(void **state)
{
        struct fake_env *e = *state;
        uint8_t c[12];

        FAKE_OK(e->d, fake_vu_get_config(e->d, 12, c));
        assert_int_equal(e->h->rings_short_calls, 0);
        for (unsigned q = 0; q < 6; q++) {
                FAKE_OK(e->d, fake_vu_fd(e->d, FAKE_VU_SET_VRING_CALL, NR, q, e->efd));
                FAKE_OK(e->d, fake_vu_fd(e->d, FAKE_VU_SET_VRING_ERR, NR, q, e->efd));
        }
        assert_int_equal(e->h->rings_short_calls, 0);
        FAKE_OK(e->d, fake_vu_get_config(e->d, 12, c));
        assert_int_equal(e->h->rings_short_calls, 1);
        assert_int_equal(e->h->rings_have, 6);
        assert_int_equal(e->h->rings_need, NQ);
        FAKE_OK(e->d, fake_vu_get_config(e->d, 12, c));
        assert_int_equal(e->h->rings_short_calls, 1);
        fake_env_assert_open(e);
}

static void test_rings_enough(void **state)
{
        struct fake_env *e = *state;
        struct vs_vu_stats st;
        uint8_t c[12];

        for (unsigned q = 0; q < NQ + 2; q++)
                FAKE_OK(e->d, fake_vu_fd(e->d, FAKE_VU_SET_VRING_CALL, NR, q, e->efd));
        FAKE_OK(e->d, fake_vu_get_config(e->d, 12, c));
        assert_int_equal(e->h->rings_short_calls, 0);
        vs_vu_get_stats(e->h->vu, &st);
        assert_int_equal(st.rings, NQ + 2);
        fake_env_assert_open(e);
}

/* SET_CONFIG is acked (a value either way) and keeps the connection. */
static void test_set_config(void **state)
{
        struct fake_env *e = *state;
        uint8_t p[12 + 4] = { 0 };
        uint32_t off = 8, size = 4;
        uint64_t v;

        fake_env_ack_on(e);
        memcpy(p, &off, 4);
        memcpy(p + 4, &size, 4);
        FAKE_OK(e->d, fake_vu_send(e->d, FAKE_VU_SET_CONFIG, NR, p, sizeof(p), NULL, 0));
        FAKE_OK(e->d, fake_vu_reply(e->d, FAKE_VU_SET_CONFIG, &v, sizeof(v)));
        fake_env_assert_open(e);
}

static void test_backend_req_fd(void **state)
{
        struct fake_env *e = *state;
        int sv[2];

        fake_env_ack_on(e);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_BACKEND_REQ_FD, NR, NULL, 0, &sv[1], 1));
        close(sv[0]);
        close(sv[1]);
        fake_env_assert_open(e);
}

/* ---- bad messages ------------------------------------------------------ */

/*
 * Messages malformed in their own right: each closes the connection. (The
 * bad ring indices, ring sizes, fd counts, memory tables and cut messages
 * are test_hostile.c's tables.)
 */
struct bad_msg {
        const char *name;
        uint32_t req, flags, size;      /* the header as sent */
        uint32_t p[10];                 /* payload: the first plen bytes */
        uint32_t plen;
};

static const struct bad_msg bad_msgs[] = {
        { "test_bad_payload_too_big", FAKE_VU_SET_CONFIG, V, 0x100000, { 0 }, 0 },
        /* a vring state is 8 bytes: 12 and 4 are refused */
        { "test_bad_size_too_big_for_msg", FAKE_VU_SET_VRING_NUM, V, 12, { 0, 64, 0 }, 12 },
        { "test_bad_size_too_small", FAKE_VU_SET_VRING_NUM, V, 4, { 0 }, 4 },
        { "test_bad_u64_too_small", FAKE_VU_SET_FEATURES, V, 4, { 0 }, 4 },
        /* GET_CONFIG whose config.size disagrees with the payload */
        { "test_bad_config_size", FAKE_VU_GET_CONFIG, V, 16, { 0, 8, 0, 0 }, 16 },
        /* one region (gpa 0, 4 KiB at uva 0x7f0000000000) and no fd */
        { "test_bad_mem_table_no_fd", FAKE_VU_SET_MEM_TABLE, V, 40,
          { 1, 0, 0, 0, 4096, 0, 0, 0x7f00, 0, 0 }, 40 },
        { "test_bad_unknown_request", 99, V, 0, { 0 }, 0 },
        { "test_bad_request_zero", 0, V, 0, { 0 }, 0 },
        { "test_bad_request_huge", 0xffffffffu, V, 0, { 0 }, 0 },
        { "test_bad_version", FAKE_VU_GET_FEATURES, 0x2, 0, { 0 }, 0 },
};

static void test_bad_msg(void **state)
{
        struct fake_env *e = *state;
        const struct bad_msg *m = e->arg;

        fake_env_send(e, m->req, m->flags, m->size, m->p, m->plen, NULL, 0);
        fake_env_expect_closed(e);
}

/* an eventfd cannot be mmap()ed */
static void test_bad_mem_unmappable(void **state)
{
        struct fake_env *e = *state;
        struct fake_vu_region r = { 0, 1 << 20, 0x7f0000000000ull, 0 };
        uint8_t p[8 + 32] = { 1 };

        memcpy(p + 8, &r, 32);
        assert_int_equal(fake_vu_send(e->d, FAKE_VU_SET_MEM_TABLE, V, p,
                                      sizeof(p), &e->efd, 1), 0);
        fake_env_expect_closed(e);
}

static void test_bad_mem_too_many(void **state)
{
        struct fake_env *e = *state;
        struct fake_vu_region r[8];
        uint8_t p[8 + 32 * 9] = { 0 };
        uint32_t n = 9;

        for (unsigned i = 0; i < 8; i++)
                r[i] = (struct fake_vu_region){ i << 20, 4096,
                                                0x7f0000000000ull + (i << 20), 0 };
        memcpy(p, &n, 4);
        for (unsigned i = 0; i < 9; i++)
                memcpy(p + 8 + 32 * i, &r[i % 8], 32);
        assert_int_equal(fake_vu_send(e->d, FAKE_VU_SET_MEM_TABLE, V, p,
                                      sizeof(p), NULL, 0), 0);
        fake_env_expect_closed(e);
}

/*
 * Ring 2 enabled at addresses it must not use (after a kick if @kick): the
 * connection closed with a negative errno, or just that queue broken.
 */
static void ring2_refused(struct fake_env *e, bool kick)
{
        uint64_t one = 1;

        assert_int_equal(fake_vu_send(e->d, FAKE_VU_SET_VRING_ENABLE, NR,
                                      (uint32_t[2]){ 2, 1 }, 8, NULL, 0), 0);
        if (kick)
                assert_int_equal(write(e->efd, &one, 8), 8);
        assert_true(fake_host_pump(e->h) >= 0);
        if (e->h->closed_calls) {
                assert_true(e->h->closed_err < 0);
                return;
        }
        assert_true(vs_device_queue_error(e->h->dev, 2) < 0);
}

/*
 * Ring addresses outside guest memory: the ring must never be used. The
 * backend may close the connection or break just that queue (its own
 * design comment says "a ring that cannot be mapped is broken, not the
 * connection"); either way nothing crashes and the queue reports an error.
 */
static void test_bad_ring_outside_memory(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = e->d;
        struct fake_vu_vring_addr a = {
                .index = 2, .desc = 0x10000000000ull,
                .used = 0x10000001000ull, .avail = 0x10000002000ull,
        };

        fake_env_ack_on(e);
        FAKE_OK(d, fake_vu_set_mem_table(d, NR));
        FAKE_OK(d, fake_vu_state(d, FAKE_VU_SET_VRING_NUM, NR, 2, 64));
        FAKE_OK(d, fake_vu_msg(d, FAKE_VU_SET_VRING_ADDR, NR, &a, sizeof(a), NULL, 0));
        FAKE_OK(d, fake_vu_fd(d, FAKE_VU_SET_VRING_KICK, NR, 2, e->efd));
        ring2_refused(e, true);
}

/* gpa addresses handed over as if they were uva on a QEMU table */
static void test_bad_ring_gpa_as_uva(void **state)
{
        struct fake_env *e = *state;
        struct fake_driver *d = e->d;
        struct fake_vu_vring_addr a = { .index = 2 };

        fake_env_ack_on(e);
        FAKE_OK(d, fake_vu_set_mem_table(d, NR));
        assert_int_equal(fake_vq_alloc(d, 2, 64, true, FAKE_RX_BUF), 0);
        a.desc = d->vq[2].desc_gpa;
        a.avail = d->vq[2].avail_gpa;
        a.used = d->vq[2].used_gpa;
        FAKE_OK(d, fake_vu_state(d, FAKE_VU_SET_VRING_NUM, NR, 2, 64));
        FAKE_OK(d, fake_vu_msg(d, FAKE_VU_SET_VRING_ADDR, NR, &a, sizeof(a), NULL, 0));
        ring2_refused(e, false);
}

/* A closed connection stays closed: later messages get no reply. */
static void test_bad_then_silence(void **state)
{
        struct fake_env *e = *state;
        uint64_t f;

        fake_env_send(e, 99, V, 0, NULL, 0, NULL, 0);
        fake_env_expect_closed(e);
        fake_vu_send(e->d, FAKE_VU_GET_FEATURES, V, NULL, 0, NULL, 0);
        assert_true(fake_vu_reply(e->d, FAKE_VU_GET_FEATURES, &f, 8) < 0);
        assert_int_equal(e->h->closed_calls, 1);
}

/* The frontend hanging up between messages is a clean close. */
static void test_clean_close(void **state)
{
        struct fake_env *e = *state;

        shutdown(e->d->sock, SHUT_WR);
        assert_int_equal(fake_vu_wait_closed(e->d), 0);
        assert_int_equal(e->h->closed_calls, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, fake_env_teardown)

int main(void)
{
        static const struct CMUnitTest cases[] = {
                T(test_features), T(test_protocol_features), T(test_reply_ack),
                T(test_owner_reset_owner), T(test_mem_table_uml),
                T(test_mem_table_qemu), T(test_vring_setup),
                T(test_vring_fd_nofd), T(test_queue_num), T(test_get_config),
                T(test_rings_short), T(test_rings_enough),
                T(test_set_config), T(test_backend_req_fd),
                T(test_bad_mem_unmappable), T(test_bad_mem_too_many),
                T(test_bad_ring_outside_memory), T(test_bad_ring_gpa_as_uva),
                T(test_bad_then_silence), T(test_clean_close),
        };
        struct CMUnitTest tests[FAKE_ENV_ARRAY_SIZE(cases) +
                                FAKE_ENV_ARRAY_SIZE(bad_msgs)];
        unsigned n = FAKE_ENV_ARRAY_SIZE(cases);

        memcpy(tests, cases, sizeof(cases));
        FAKE_ENV_ROWS(tests, n, test_bad_msg, bad_msgs, setup, NULL);
        return cmocka_run_group_tests_name("tests", tests, NULL, NULL);
}
