/* SPDX-License-Identifier: MIT */
/*
 * Hostile peers, both of them.
 *
 * The frontend (a VMM process) sends memory tables that overlap, are empty,
 * huge, wrap around or cannot be mapped; puts rings outside memory, across
 * two regions or on top of each other; names rings it may not; sends the
 * wrong number of fds; stops mid-message; kicks thousands of times; moves
 * the avail index further than the ring is long. Each must end in a clean
 * rejection: the connection closed with a negative errno (closed()), or the
 * one queue marked broken (vs_device_queue_error) while the rest works.
 * Nothing may crash, hang, leak an fd or a mapping, or touch memory it does
 * not own (the ASan build proves the last).
 *
 * The guest (through the device) sends control messages about ports that do
 * not exist or are gone, unknown events, 64 KiB control buffers, and posts
 * read-only receive buffers, write-only transmit buffers, zero-length and
 * one-byte descriptors, loops and indirect tables. The device must ignore
 * what it cannot use, never write into a buffer it may only read, and keep
 * every other port and the control queue going.
 *
 * The table-driven bad inputs (memory tables, ring sizes, vring indices,
 * fd counts, messages cut short) are each one table here, with the rows
 * that test_vhost_user.c once had on its own; each row is a cmocka case of
 * its own name.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_env.h"
#include "vhost-user/proto.h"

#define V FAKE_VU_VERSION
#define NR (FAKE_VU_VERSION | FAKE_VU_NEED_REPLY)
#define NQ 10u          /* 4 ports: 2 * (4 + 1) queues */
#define KIB 1024u

static int fds0;         /* open fds once the connection was up */

static void check_costs(struct fake_env *e);

/* After every case: the cost oracles (check_costs), then clean up. */
static int teardown(void **state)
{
        struct fake_env *e = *state;

        if (e->h)
                check_costs(e);
        return fake_env_teardown(state);
}

/* ---- accounting: fds and mappings ---------------------------------------- */

static int count_fds(void)
{
        DIR *dir = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        assert_non_null(dir);
        while ((de = readdir(dir)))
                n += de->d_name[0] != '.';
        closedir(dir);
        return n - 1;   /* the directory's own */
}

/* Lines of /proc/self/maps that name @what (a memfd's name). */
static int count_maps(const char *what)
{
        FILE *f = fopen("/proc/self/maps", "r");
        char line[512];
        int n = 0;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                n += strstr(line, what) != NULL;
        fclose(f);
        return n;
}

/* A memfd of @size bytes named hostile-mem (see count_maps). */
static int mem_fd(uint64_t size)
{
        int fd = memfd_create("hostile-mem", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

/* ---- the frontend side ------------------------------------------------------ */

/* A QEMU-style raw frontend on a 4-port device with port 1. */
static void fe_up(struct fake_env *e)
{
        static const struct fake_env_spec spec = {
                .dev = { .max_ports = 4, .cols = 80, .rows = 25 },
                .drv = { .style = FAKE_STYLE_QEMU },
                .ports = { { 1, "p1", false, false, false } },
                .efd = true,
        };

        fake_env_up(e, &spec);
        fds0 = count_fds();
}

/*
 * After a rejection: free the connection as the daemon does and check that
 * every fd the frontend handed over was closed (the vs_vu's own socket, its
 * scheduling eventfd and its pacing timerfd go too) and no guest memory
 * stays mapped.
 */
static void expect_released(struct fake_env *e)
{
        vs_vu_free(e->h->vu);
        e->h->vu = NULL;
        assert_int_equal(count_fds(), fds0 - 3);
        assert_int_equal(count_maps("memfd:hostile-mem"), 0);
}

/* A SET_MEM_TABLE of @n regions (the count as sent) with these fds. */
static void mem_table(struct fake_env *e, uint32_t n, const struct fake_vu_region *r,
                      unsigned nr, const int *fds, unsigned nfds)
{
        uint8_t p[8 + 32 * 8] = { 0 };

        assert_true(nr <= 8);
        memcpy(p, &n, 4);
        for (unsigned i = 0; i < nr; i++)
                memcpy(p + 8 + 32 * i, &r[i], 32);
        fake_env_send(e, FAKE_VU_SET_MEM_TABLE, V, 8 + 32 * nr, p, 8 + 32 * nr,
                 fds, nfds);
}

#define UVA 0x7f0000000000ull
/* the fake's default QEMU region: gpa 0, 128 MiB at this uva */
#define QUVA 0x7f3a40000000ull
#define MIB (1ull << 20)

/* ---- 1. memory tables ------------------------------------------------------- */

/*
 * Memory tables the backend must refuse, each closing the connection with
 * every fd closed and nothing mapped: @count regions as sent, the first @nr
 * of @r in the payload, a fresh memfd of @file bytes handed over @nfds times.
 * (test_vhost_user.c's overlap, zero-size, wrap and zero-region rows are
 * here too.)
 */
struct bad_mem {
        const char *name;
        uint32_t count;
        unsigned nr;
        struct fake_vu_region r[3];
        uint64_t file;
        unsigned nfds;
};

#define R1(gpa, size, uva, off) 1, 1, { { gpa, size, uva, off } }

static const struct bad_mem bad_mems[] = {
        /* overlaps: the second's gpa inside the first; the same twice; the
         * third of three sharing one byte with the first; gpa or uva */
        { "test_mem_region_inside_another", 2, 2,
          { { 0, 4 * MIB, UVA, 0 }, { MIB, MIB, UVA + 16 * MIB, 0 } }, 4 * MIB, 2 },
        { "test_mem_regions_identical", 2, 2,
          { { 0, MIB, UVA, 0 }, { 0, MIB, UVA, 0 } }, MIB, 2 },
        { "test_mem_overlap_late", 3, 3,
          { { 0, MIB, UVA, 0 }, { 2 * MIB, MIB, UVA + 2 * MIB, 0 },
            { MIB - 1, 2, UVA + 8 * MIB, 0 } }, 4 * MIB, 3 },
        { "test_bad_mem_overlap", 2, 2,
          { { 0, MIB, UVA, 0 }, { 4096, MIB, UVA + (1ull << 36), 0 } }, MIB, 2 },
        { "test_bad_mem_overlap_uva", 2, 2,
          { { 0, MIB, UVA, 0 }, { 1ull << 30, MIB, UVA + 4096, 0 } }, MIB, 2 },
        /* a zero-sized region, alone or after a good one */
        { "test_bad_mem_zero_size", R1(0, 0, UVA, 0), MIB, 1 },
        { "test_mem_zero_size_second", 2, 2,
          { { 0, MIB, UVA, 0 }, { 2 * MIB, 0, UVA + 2 * MIB, 0 } }, MIB, 2 },
        /* size 2^64 - 1 from gpa 0: no wrap, but no file is that long */
        { "test_mem_size_max", R1(0, ~0ull, 0, 0), MIB, 1 },
        /* size 2^63 from the middle: gpa + size is exactly 2^64 */
        { "test_mem_size_end_2_64", R1(1ull << 63, 1ull << 63, 0, 0), MIB, 1 },
        /* a 1 TiB region in a 1 MiB file */
        { "test_mem_size_huge", R1(0, 1ull << 40, UVA, 0), MIB, 1 },
        /* gpa, uva or offset + size past 2^64 */
        { "test_bad_mem_wrap", R1(~0ull - 4095, 8192, UVA, 0), MIB, 1 },
        { "test_mem_uva_wrap", R1(0, 8192, ~0ull - 4095, 0), MIB, 1 },
        { "test_mem_gpa_wrap_by_one", R1(~0ull, 1, UVA, 0), MIB, 1 },
        { "test_mem_offset_wrap", R1(0, 8192, UVA, ~0ull - 4095), MIB, 1 },
        /* the file shorter than offset + size: mapping it would SIGBUS later;
         * an empty file (a frontend that forgot to size its memfd) */
        { "test_mem_file_too_short", R1(0, MIB, UVA, 0), 64 * KIB, 1 },
        { "test_mem_offset_past_file", R1(0, 4096, UVA, 2 * MIB), MIB, 1 },
        { "test_mem_file_empty", R1(0, 4096, UVA, 0), 0, 1 },
        /* a region count that disagrees with the fds or with the payload;
         * 0xffffffff: its product with the region size must not wrap */
        { "test_mem_two_regions_one_fd", 2, 2,
          { { 0, MIB, UVA, 0 }, { MIB, MIB, UVA + MIB, MIB } }, 2 * MIB, 1 },
        { "test_mem_one_region_two_fds", R1(0, MIB, UVA, 0), MIB, 2 },
        { "test_mem_count_past_payload", 3, 2,
          { { 0, MIB, UVA, 0 }, { MIB, MIB, UVA + MIB, MIB } }, 2 * MIB, 3 },
        { "test_mem_count_huge", 0xffffffffu, 1, { { 0, MIB, UVA, 0 } }, MIB, 1 },
        { "test_bad_mem_zero_regions", 0, 0, { { 0, 0, 0, 0 } }, MIB, 0 },
        /* more fds than regions, past the 8 a message may carry */
        { "test_fds_mem_table_sixteen", R1(0, MIB, UVA, 0), MIB, 16 },
};

static void test_bad_mem(void **state)
{
        struct fake_env *e = *state;
        const struct bad_mem *m = e->arg;
        int fd, fds[16];

        fe_up(e);
        fd = mem_fd(m->file);
        for (unsigned i = 0; i < m->nfds; i++)
                fds[i] = fd;
        mem_table(e, m->count, m->r, m->nr, fds, m->nfds);
        close(fd);
        fake_env_expect_closed(e);
        expect_released(e);
}

/* Touching regions are fine: the sanity check for the ones above. */
static void test_mem_adjacent_ok(void **state)
{
        struct fake_env *e = *state;
        struct fake_vu_region r[2] = {
                { 0, MIB, UVA, 0 },
                { MIB, MIB, UVA + MIB, MIB },
        };
        int fd;

        fe_up(e);
        fake_env_ack_on(e);
        fd = mem_fd(2 * MIB);
        {
                uint8_t p[8 + 64] = { 0 };
                uint32_t n = 2;

                memcpy(p, &n, 4);
                memcpy(p + 8, r, 64);
                FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_MEM_TABLE, NR, p,
                                          sizeof(p), (int[]){ fd, fd }, 2));
        }
        close(fd);
        assert_int_equal(count_maps("memfd:hostile-mem"), 2);
        fake_env_assert_open(e);
        vs_vu_free(e->h->vu);
        e->h->vu = NULL;
        assert_int_equal(count_maps("memfd:hostile-mem"), 0);
}

/* fds that cannot be mapped: a pipe and a socket. Each is closed again. */
static void unmappable(struct fake_env *e, int fd, int peer)
{
        struct fake_vu_region r = { 0, MIB, UVA, 0 };
        struct pollfd p = { .fd = peer, .events = POLLIN };

        mem_table(e, 1, &r, 1, &fd, 1);
        close(fd);
        fake_env_expect_closed(e);
        expect_released(e);
        /* our end hears the hang-up only once the backend's copy is gone too */
        assert_int_equal(poll(&p, 1, 0), 1);
        assert_true(p.revents & POLLHUP);
        close(peer);
}

static void test_mem_pipe(void **state)
{
        struct fake_env *e = *state;
        int pfd[2];

        fe_up(e);
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        fds0++;      /* our end stays open until the check */
        unmappable(e, pfd[1], pfd[0]);
}

static void test_mem_socket(void **state)
{
        struct fake_env *e = *state;
        int sv[2];

        fe_up(e);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        fds0++;
        unmappable(e, sv[1], sv[0]);
}

/* /dev/null is a character device that cannot be mapped. */
static void test_mem_dev_null(void **state)
{
        struct fake_env *e = *state;
        struct fake_vu_region r = { 0, MIB, UVA, 0 };
        int fd;

        fe_up(e);
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        mem_table(e, 1, &r, 1, &fd, 1);
        close(fd);
        fake_env_expect_closed(e);
        expect_released(e);
}

/* A rejected table leaves the one before it in force: the ring set up in
 * it keeps working. (The connection is closed all the same.) */
static void test_mem_bad_replacement_keeps_nothing_mapped(void **state)
{
        struct fake_env *e = *state;
        struct fake_vu_region good = { 0, MIB, UVA, 0 };
        struct fake_vu_region bad[2] = { { 0, MIB, UVA, 0 }, { 4096, 4096, UVA + 8 * MIB, 0 } };
        int fd;

        fe_up(e);
        fake_env_ack_on(e);
        fd = mem_fd(MIB);
        {
                uint8_t p[8 + 32] = { 0 };
                uint32_t n = 1;

                memcpy(p, &n, 4);
                memcpy(p + 8, &good, 32);
                FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_MEM_TABLE, NR, p,
                                          sizeof(p), &fd, 1));
        }
        assert_int_equal(count_maps("memfd:hostile-mem"), 1);
        mem_table(e, 2, bad, 2, (int[]){ fd, fd }, 2);
        close(fd);
        fake_env_expect_closed(e);
        expect_released(e);
}

/* ---- 2. rings ---------------------------------------------------------------- */

/* A 2-region QEMU-style guest whose regions touch in gpa and uva but not in
 * the file: [0, 1 MiB) at file offset 0, [1 MiB, 2 MiB) at file offset 4 MiB. */
static void fe_up_split(struct fake_env *e)
{
        struct fake_env_spec spec = {
                .dev = { .max_ports = 4 },
                .drv = { .style = FAKE_STYLE_QEMU, .nregions = 2 },
                .ports = { { 1, "p1", false, false, false } },
                .efd = true,
        };

        spec.drv.regions[0] = (struct fake_vu_region){ 0, MIB, UVA, 0 };
        spec.drv.regions[1] = (struct fake_vu_region){ MIB, MIB, UVA + MIB, 4 * MIB };
        fake_env_up(e, &spec);
        fds0 = count_fds();
}

/* Up (the split guest, or the default one), REPLY_ACK, the memory table. */
static void mem_up(struct fake_env *e, bool split)
{
        if (split)
                fe_up_split(e);
        else
                fe_up(e);
        fake_env_ack_on(e);
        FAKE_OK(e->d, fake_vu_set_mem_table(e->d, NR));
}

/* NUM, ADDR (uva), KICK and ENABLE for ring @q; the ring may be broken. */
static void ring_at(struct fake_env *e, unsigned q, unsigned num, uint64_t desc,
                    uint64_t avail, uint64_t used)
{
        struct fake_vu_vring_addr a = { .index = q, .desc = desc,
                                        .avail = avail, .used = used };

        FAKE_OK(e->d, fake_vu_state(e->d, FAKE_VU_SET_VRING_NUM, NR, q, num));
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_VRING_ADDR, NR, &a, sizeof(a), NULL, 0));
        FAKE_OK(e->d, fake_vu_fd(e->d, FAKE_VU_SET_VRING_KICK, NR, q, e->efd));
        FAKE_OK(e->d, fake_vu_state(e->d, FAKE_VU_SET_VRING_ENABLE, NR, q, 1));
}

static void kick_efd(struct fake_env *e, unsigned times)
{
        uint64_t one = 1;

        for (unsigned i = 0; i < times; i++) {
                assert_int_equal(write(e->efd, &one, 8), 8);
                assert_true(fake_host_pump(e->h) >= 0);
        }
}

/* The descriptor table runs from the end of region 0 into region 1. */
static void test_ring_straddles_regions(void **state)
{
        struct fake_env *e = *state;

        mem_up(e, true);
        ring_at(e, 3, 64, UVA + MIB - 512, UVA + 8192, UVA + 16384);
        kick_efd(e, 3);
        assert_int_equal(vs_device_queue_error(e->h->dev, 3), -EFAULT);
        /* the used ring this time */
        ring_at(e, 5, 64, UVA + 8 * KIB, UVA + 12 * KIB, UVA + MIB - 256);
        kick_efd(e, 3);
        assert_int_equal(vs_device_queue_error(e->h->dev, 5), -EFAULT);
        fake_env_assert_open(e);
}

/* The same ring entirely in region 1, and straddling nothing: fine. */
static void test_ring_in_second_region_ok(void **state)
{
        struct fake_env *e = *state;

        mem_up(e, true);
        ring_at(e, 3, 64, UVA + MIB, UVA + MIB + 1024, UVA + MIB + 4096);
        kick_efd(e, 3);
        assert_int_equal(vs_device_queue_error(e->h->dev, 3), 0);
        fake_env_assert_open(e);
}

/* Parts past the end of memory by one entry, and misaligned ones. */
static void test_ring_edges(void **state)
{
        struct fake_env *e = *state;
        uint64_t end = UVA + 2 * MIB;

        mem_up(e, true);
        /* avail needs 6 + 2 * 64 bytes: one short */
        ring_at(e, 3, 64, UVA, end - 6 - 2 * 64 + 2, UVA + 4096);
        assert_int_equal(vs_device_queue_error(e->h->dev, 3), -EFAULT);
        /* exactly at the end: fine */
        ring_at(e, 5, 64, UVA, end - 6 - 2 * 64, UVA + 4096);
        assert_int_equal(vs_device_queue_error(e->h->dev, 5), 0);
        /* desc not 16-aligned, avail odd, used not 4-aligned */
        ring_at(e, 7, 64, UVA + 8, UVA + 4096, UVA + 8192);
        assert_int_equal(vs_device_queue_error(e->h->dev, 7), -EINVAL);
        ring_at(e, 9, 64, UVA, UVA + 4097, UVA + 8192);
        assert_int_equal(vs_device_queue_error(e->h->dev, 9), -EINVAL);
        ring_at(e, 4, 64, UVA, UVA + 4096, UVA + 8194);
        assert_int_equal(vs_device_queue_error(e->h->dev, 4), -EINVAL);
        /* addresses at the top of the address space: no wrap into region 0 */
        ring_at(e, 6, 64, ~0ull & ~15ull, UVA + 4096, UVA + 8192);
        assert_int_equal(vs_device_queue_error(e->h->dev, 6), -EFAULT);
        kick_efd(e, 4);
        fake_env_assert_open(e);
}

/* Ring sizes: 32768 is the largest, anything else not a power of two or
 * larger closes the connection. */
static void test_ring_size_32768_ok(void **state)
{
        struct fake_env *e = *state;

        mem_up(e, false);
        ring_at(e, 3, 32768, QUVA + MIB, QUVA + 2 * MIB, QUVA + 3 * MIB);
        kick_efd(e, 2);
        assert_int_equal(vs_device_queue_error(e->h->dev, 3), 0);
        fake_env_assert_open(e);
}

/*
 * Ring sizes: 32768 is the largest (test_ring_size_32768_ok); anything not
 * a power of two or larger closes the connection, on ring 0 or 3.
 */
struct bad_size {
        const char *name;
        uint32_t index, num;
};

static const struct bad_size bad_sizes[] = {
        { "test_ring_size_32769", 3, 32769 },
        { "test_ring_size_3", 3, 3 },
        { "test_ring_size_2_31", 3, 0x80000000u },
        { "test_ring_size_max", 3, 0xffffffffu },
        { "test_bad_num_not_pow2", 0, 100 },
        { "test_bad_num_too_big", 0, 65536 },
        { "test_bad_num_zero", 0, 0 },
};

static void test_bad_size(void **state)
{
        struct fake_env *e = *state;
        const struct bad_size *b = e->arg;
        uint32_t s[2] = { b->index, b->num };

        fe_up(e);
        fake_env_send(e, FAKE_VU_SET_VRING_NUM, V, 8, s, 8, NULL, 0);
        fake_env_expect_closed(e);
        expect_released(e);
}

/* A running ring made smaller: the device never looks past the new size. */
static void test_ring_shrunk_while_running(void **state)
{
        struct fake_env *e = *state;

        mem_up(e, false);
        ring_at(e, 5, 256, QUVA + MIB, QUVA + MIB + 4096, QUVA + MIB + 8192);
        /* avail idx 200 (fine for 256), then the ring shrinks to 8 */
        *(uint16_t *)fake_gpa(e->d, MIB + 4096 + 2, 2) = 200;
        FAKE_OK(e->d, fake_vu_state(e->d, FAKE_VU_SET_VRING_NUM, NR, 5, 8));
        FAKE_OK(e->d, fake_vu_state(e->d, FAKE_VU_SET_VRING_ENABLE, NR, 5, 1));
        kick_efd(e, 2);
        assert_int_equal(vs_device_queue_error(e->h->dev, 5), -EOVERFLOW);
        fake_env_assert_open(e);
}

/* ---- 3. vring indices --------------------------------------------------------- */

/*
 * Ring indices in vring messages (test_vhost_user.c's rows are the ones
 * with num 1). A u32 index names at most 1024 rings and a u64 one means
 * bits 0-8 (and the no-fd bit 8): anything else closes the connection. A
 * ring past the device's last (QEMU's num_vqs may exceed what the device
 * uses) is accepted and inert: the connection stays, a kick does nothing,
 * GET_VRING_BASE answers base 0.
 */
struct vring_row {
        const char *name;
        uint32_t req;
        uint64_t index;
        uint32_t num;           /* a vring state's second word */
        bool closes;
};

#define CLOSES(name, req, index, num) { "test_" name, req, index, num, true }
#define INERT(name, req, index, num) { "test_" name, req, index, num, false }

static const struct vring_row vring_rows[] = {
        CLOSES("bad_vring_num", FAKE_VU_SET_VRING_NUM, 1024, 1),
        CLOSES("bad_vring_addr", FAKE_VU_SET_VRING_ADDR, 1024, 1),
        CLOSES("bad_vring_base", FAKE_VU_SET_VRING_BASE, 1024, 1),
        CLOSES("bad_vring_get_base", FAKE_VU_GET_VRING_BASE, 1024, 1),
        CLOSES("bad_vring_kick", FAKE_VU_SET_VRING_KICK, 0x200 | NQ, 1),
        CLOSES("bad_vring_call", FAKE_VU_SET_VRING_CALL, 0x200 | NQ, 1),
        CLOSES("bad_vring_err", FAKE_VU_SET_VRING_ERR, 0x200 | NQ, 1),
        CLOSES("bad_vring_enable", FAKE_VU_SET_VRING_ENABLE, 1024, 1),
        CLOSES("bad_vring_num_huge", FAKE_VU_SET_VRING_NUM, 0x80000000u, 1),
        CLOSES("vring_num_u32_max", FAKE_VU_SET_VRING_NUM, 0xffffffffu, 64),
        CLOSES("vring_addr_u32_max", FAKE_VU_SET_VRING_ADDR, 0xffffffffu, 64),
        CLOSES("vring_base_u32_max", FAKE_VU_SET_VRING_BASE, 0xffffffffu, 64),
        CLOSES("vring_get_base_u32_max", FAKE_VU_GET_VRING_BASE, 0xffffffffu, 64),
        CLOSES("vring_enable_u32_max", FAKE_VU_SET_VRING_ENABLE, 0xffffffffu, 64),
        CLOSES("vring_kick_high_bits", FAKE_VU_SET_VRING_KICK, 1ull << 40, 64),
        CLOSES("vring_call_bit_9", FAKE_VU_SET_VRING_CALL, 0x200, 64),
        CLOSES("vring_err_u64_max", FAKE_VU_SET_VRING_ERR, ~0ull, 64),
        INERT("inert_vring_num", FAKE_VU_SET_VRING_NUM, NQ, 1),
        INERT("inert_vring_addr", FAKE_VU_SET_VRING_ADDR, NQ, 1),
        INERT("inert_vring_base", FAKE_VU_SET_VRING_BASE, NQ, 1),
        INERT("inert_vring_get_base", FAKE_VU_GET_VRING_BASE, NQ, 1),
        INERT("inert_vring_kick", FAKE_VU_SET_VRING_KICK, NQ, 1),
        INERT("inert_vring_call", FAKE_VU_SET_VRING_CALL, NQ, 1),
        INERT("inert_vring_err", FAKE_VU_SET_VRING_ERR, NQ, 1),
        INERT("inert_vring_enable", FAKE_VU_SET_VRING_ENABLE, NQ, 1),
        INERT("inert_vring_num_255", FAKE_VU_SET_VRING_NUM, 255, 1),
        INERT("inert_vring_call_255", FAKE_VU_SET_VRING_CALL, 255, 1),
        INERT("vring_num_1023", FAKE_VU_SET_VRING_NUM, 1023, 64),
        INERT("vring_addr_1023", FAKE_VU_SET_VRING_ADDR, 1023, 64),
        INERT("vring_base_1023", FAKE_VU_SET_VRING_BASE, 1023, 64),
        INERT("vring_get_base_1023", FAKE_VU_GET_VRING_BASE, 1023, 64),
        INERT("vring_enable_1023", FAKE_VU_SET_VRING_ENABLE, 1023, 64),
        INERT("vring_kick_255", FAKE_VU_SET_VRING_KICK, 255, 64),
        INERT("vring_err_255", FAKE_VU_SET_VRING_ERR, 255, 64),
};

static void test_vring_row(void **state)
{
        struct fake_env *e = *state;
        const struct vring_row *v = e->arg;

        fe_up(e);
        fake_env_send_vring(e, v->req, v->index, v->num, e->efd);
        if (v->closes) {
                fake_env_expect_closed(e);
                expect_released(e);
                return;
        }
        if (v->req == FAKE_VU_GET_VRING_BASE) {
                uint32_t reply[2];

                FAKE_OK(e->d, fake_vu_reply(e->d, v->req, reply, sizeof(reply)));
                assert_int_equal(reply[0], (uint32_t)v->index);
                assert_int_equal(reply[1], 0);
        }
        fake_env_assert_open(e);
        kick_efd(e, 3);
        fake_env_assert_open(e);
        assert_int_equal(vs_device_queue_error(e->h->dev, 0), 0);
}

/* The "no fd" bit on an inert ring, no fd sent: accepted. */
static void test_vring_nofd_inert(void **state)
{
        struct fake_env *e = *state;

        fe_up(e);
        fake_env_send_vring(e, FAKE_VU_SET_VRING_KICK, 0x100 | 200, 64, -1);
        fake_env_send_vring(e, FAKE_VU_SET_VRING_CALL, 0x100 | 255, 64, -1);
        fake_env_send_vring(e, FAKE_VU_SET_VRING_ERR, 0x100 | NQ, 64, -1);
        fake_env_assert_open(e);
}

/* Ring sizes past the device's queues are not checked (inert), inside
 * they are: the same bad size closes on ring 3, not on ring NQ. */
static void test_vring_bad_size_inert_ring(void **state)
{
        struct fake_env *e = *state;

        fe_up(e);
        FAKE_OK(e->d, fake_vu_state(e->d, FAKE_VU_SET_VRING_NUM, V, NQ, 100));
        fake_env_assert_open(e);
        fake_env_send(e, FAKE_VU_SET_VRING_NUM, V, 8, (uint32_t[2]){ 3, 100 }, 8, NULL, 0);
        fake_env_expect_closed(e);
        expect_released(e);
}

/* ---- 4. fd counts --------------------------------------------------------------- */

/*
 * fd counts that disagree with the message, each closing the connection
 * with every fd closed: @req with u64 @u64 (none for messages without a
 * payload) and @nfds copies of the spare eventfd. Past the 8 a message may
 * carry the kernel truncates; nothing leaks. (The first five rows were
 * test_vhost_user.c's.)
 */
struct bad_fds {
        const char *name;
        uint32_t req;
        uint64_t u64;
        unsigned nfds;
};

static const struct bad_fds bad_fds[] = {
        { "test_bad_fd_where_none", FAKE_VU_SET_OWNER, 0, 1 },
        { "test_bad_fd_on_vring_num", FAKE_VU_SET_VRING_NUM, 64ull << 32, 1 },
        { "test_bad_missing_kick_fd", FAKE_VU_SET_VRING_KICK, 0, 0 },
        { "test_bad_two_call_fds", FAKE_VU_SET_VRING_CALL, 0, 2 },
        { "test_bad_backend_req_no_fd", FAKE_VU_SET_BACKEND_REQ_FD, 0, 0 },
        { "test_fds_kick_two", FAKE_VU_SET_VRING_KICK, 3, 2 },
        { "test_fds_call_none", FAKE_VU_SET_VRING_CALL, 3, 0 },
        { "test_fds_err_none", FAKE_VU_SET_VRING_ERR, 3, 0 },
        { "test_fds_err_two", FAKE_VU_SET_VRING_ERR, 3, 2 },
        { "test_fds_kick_nofd_with_fd", FAKE_VU_SET_VRING_KICK, 0x100 | 3, 1 },
        { "test_fds_call_nofd_with_fd", FAKE_VU_SET_VRING_CALL, 0x100 | 3, 1 },
        { "test_fds_err_nofd_with_fd", FAKE_VU_SET_VRING_ERR, 0x100 | 3, 1 },
        { "test_fds_backend_req_two", FAKE_VU_SET_BACKEND_REQ_FD, 0, 2 },
        { "test_fds_get_features_one", FAKE_VU_GET_FEATURES, 0, 1 },
        { "test_fds_set_features_one", FAKE_VU_SET_FEATURES, 0, 1 },
        { "test_fds_kick_eight", FAKE_VU_SET_VRING_KICK, 3, 8 },
        { "test_fds_owner_nine", FAKE_VU_SET_OWNER, 0, 9 },
        { "test_fds_kick_sixteen", FAKE_VU_SET_VRING_KICK, 3, 16 },
};

static void test_bad_fds(void **state)
{
        struct fake_env *e = *state;
        const struct bad_fds *b = e->arg;
        uint32_t size;
        int fds[16];

        fe_up(e);
        for (unsigned i = 0; i < b->nfds; i++)
                fds[i] = e->efd;
        size = b->req == FAKE_VU_SET_OWNER || b->req == FAKE_VU_GET_FEATURES ||
               b->req == FAKE_VU_SET_BACKEND_REQ_FD ? 0 : 8;
        fake_env_send(e, b->req, V, size, &b->u64, size, fds, b->nfds);
        fake_env_expect_closed(e);
        expect_released(e);
}

/* fds split over two pieces of one message: they count together. */
static void test_fds_in_second_piece(void **state)
{
        struct fake_env *e = *state;
        uint8_t b[20];
        uint32_t h[3] = { FAKE_VU_SET_VRING_CALL, NR, 8 };
        uint64_t idx = 3;

        fe_up(e);
        fake_env_ack_on(e);
        memcpy(b, h, 12);
        memcpy(b + 12, &idx, 8);
        fake_env_send_raw(e, b, 7, NULL, 0);
        assert_true(fake_host_pump(e->h) >= 0);
        fake_env_send_raw(e, b + 7, 13, &e->efd, 1);
        FAKE_OK(e->d, fake_vu_ack(e->d, FAKE_VU_SET_VRING_CALL));
        fake_env_assert_open(e);
}

/* ---- 5. messages cut short -------------------------------------------------------- */

/* @n bytes of @msg, then the frontend goes away. */
static void cut(struct fake_env *e, const void *msg, size_t n, const int *fds, unsigned nfds)
{
        fake_env_send_raw(e, msg, n, fds, nfds);
        shutdown(e->d->sock, SHUT_WR);
        fake_env_expect_closed(e);
        expect_released(e);
}

/*
 * The first @n bytes of a message, with the spare eventfd if @fd, then the
 * frontend goes away: a clean rejection, every fd closed. (The 6-byte
 * header was test_vhost_user.c's.)
 */
struct cut_row {
        const char *name;
        uint32_t b[5];          /* header, then an 8-byte payload */
        size_t n;
        bool fd;
};

static const struct cut_row cut_rows[] = {
        { "test_bad_short_header", { 1, 1 }, 6, false },
        { "test_cut_header_11", { FAKE_VU_GET_FEATURES, V, 0 }, 11, false },
        { "test_cut_header_1", { FAKE_VU_SET_OWNER }, 1, false },
        { "test_cut_payload_none", { FAKE_VU_SET_FEATURES, V, 8 }, 12, false },
        { "test_cut_payload_half", { FAKE_VU_SET_FEATURES, V, 8 }, 16, false },
        /* a vring fd message cut after its fd arrived */
        { "test_cut_kick_with_fd", { FAKE_VU_SET_VRING_KICK, V, 8 }, 14, true },
};

static void test_cut(void **state)
{
        struct fake_env *e = *state;
        const struct cut_row *c = e->arg;

        fe_up(e);
        cut(e, c->b, c->n, &e->efd, c->fd);
}

/* A memory table cut in its regions, its fd already sent: the fd is
 * closed and nothing is mapped. */
static void test_cut_mem_table_with_fd(void **state)
{
        struct fake_env *e = *state;
        uint8_t b[12 + 40] = { 0 };
        uint32_t h[3] = { FAKE_VU_SET_MEM_TABLE, V, 40 };
        struct fake_vu_region r = { 0, MIB, UVA, 0 };
        uint32_t one = 1;
        int fd;

        fe_up(e);
        fd = mem_fd(MIB);
        memcpy(b, h, 12);
        memcpy(b + 12, &one, 4);
        memcpy(b + 20, &r, 32);
        fake_env_send_raw(e, b, 30, &fd, 1);
        close(fd);
        shutdown(e->d->sock, SHUT_WR);
        fake_env_expect_closed(e);
        expect_released(e);
}

/* One whole message answered, then a cut one. */
static void test_cut_after_good(void **state)
{
        struct fake_env *e = *state;
        uint32_t h[6] = { FAKE_VU_GET_FEATURES, V, 0, FAKE_VU_GET_QUEUE_NUM, V, 0 };
        uint64_t f;

        fe_up(e);
        fake_env_send_raw(e, h, 12 + 5, NULL, 0);
        FAKE_OK(e->d, fake_vu_reply(e->d, FAKE_VU_GET_FEATURES, &f, 8));
        shutdown(e->d->sock, SHUT_WR);
        fake_env_expect_closed(e);
        expect_released(e);
}

/* A frontend that stalls mid-message is waited for (no busy loop, no
 * reply), and the message is whole once the rest comes. */
static void test_stall_mid_message(void **state)
{
        struct fake_env *e = *state;
        uint8_t b[12 + 72] = { 0 };
        uint32_t h[3] = { FAKE_VU_SET_MEM_TABLE, NR, 72 };
        struct fake_vu_region r = { 0x2000000, MIB, 0x2000000, 0 };
        uint32_t one = 1;
        int fd;

        fe_up(e);
        fake_env_ack_on(e);
        fd = mem_fd(MIB);
        memcpy(b, h, 12);
        memcpy(b + 12, &one, 4);
        memcpy(b + 20, &r, 32);
        /* one byte at a time, the fd with the first */
        for (size_t i = 0; i < sizeof(b); i++) {
                fake_env_send_raw(e, b + i, 1, &fd, i == 0);
                assert_true(fake_host_pump(e->h) >= 0);
                if (i + 1 < sizeof(b)) {
                        struct pollfd p = { .fd = e->d->sock, .events = POLLIN };

                        assert_int_equal(poll(&p, 1, 0), 0);
                }
        }
        close(fd);
        FAKE_OK(e->d, fake_vu_ack(e->d, FAKE_VU_SET_MEM_TABLE));
        assert_int_equal(count_maps("memfd:hostile-mem"), 1);
        fake_env_assert_open(e);
}

/* Many messages in one write: all answered, in order. */
static void test_burst_of_messages(void **state)
{
        struct fake_env *e = *state;
        uint32_t h[3 * 200];
        uint64_t v;

        fe_up(e);
        for (unsigned i = 0; i < 200; i++) {
                h[3 * i] = i % 2 ? FAKE_VU_GET_FEATURES : FAKE_VU_GET_QUEUE_NUM;
                h[3 * i + 1] = V;
                h[3 * i + 2] = 0;
        }
        fake_env_send_raw(e, h, sizeof(h), NULL, 0);
        for (unsigned i = 0; i < 200; i++) {
                FAKE_OK(e->d, fake_vu_reply(e->d, i % 2 ? FAKE_VU_GET_FEATURES
                                                        : FAKE_VU_GET_QUEUE_NUM, &v, 8));
                if (i % 2 == 0)
                        assert_int_equal(v, NQ);
        }
        fake_env_assert_open(e);
}

/* ---- the guest side ------------------------------------------------------------- */

#define RX1 4u          /* port 1: rx, tx */
#define TX1 5u
#define RX2 6u
#define TX2 7u
#define CTX 3u          /* control tx */
#define W VS_VRING_DESC_F_WRITE

/* UML-style guest on a 4-port device: ports 1 and 2 open, no receive
 * buffers posted (each test posts its own). */
static void guest_up(struct fake_env *e)
{
        static const struct fake_env_spec spec = {
                .dev = { .max_ports = 4 },
                .drv = { .style = FAKE_STYLE_UML, .rx_fill = FAKE_RX_NONE },
                .ports = { { 1, "org.hostile.one", false, false, true },
                           { 2, "org.hostile.two", false, false, true } },
                .boot = true,
        };

        fake_env_up(e, &spec);
        assert_true(e->p[1]->guest_connected && e->p[2]->guest_connected);
}

static uint64_t galloc(struct fake_env *e, uint64_t size)
{
        uint64_t gpa = fake_alloc(e->d, size, 64);

        assert_true(gpa != 0);
        return gpa;
}

static uint8_t *gptr(struct fake_env *e, uint64_t gpa, uint64_t len)
{
        uint8_t *p = fake_gpa(e->d, gpa, len);

        assert_non_null(p);
        return p;
}

/* A guest buffer of @len bytes filled with a recognizable pattern. */
static uint64_t gbuf_pattern(struct fake_env *e, uint32_t len, uint8_t seed)
{
        uint64_t gpa = galloc(e, len ? len : 1);
        uint8_t *p = gptr(e, gpa, len ? len : 1);

        for (uint32_t i = 0; i < len; i++)
                p[i] = (uint8_t)(seed + i * 7);
        return gpa;
}

static bool pattern_intact(struct fake_env *e, uint64_t gpa, uint32_t len, uint8_t seed)
{
        uint8_t *p = gptr(e, gpa, len ? len : 1);

        for (uint32_t i = 0; i < len; i++)
                if (p[i] != (uint8_t)(seed + i * 7))
                        return false;
        return true;
}

static uint64_t gbuf_bytes(struct fake_env *e, const void *data, uint32_t len)
{
        uint64_t gpa = galloc(e, len ? len : 1);

        memcpy(gptr(e, gpa, len ? len : 1), data, len);
        return gpa;
}

struct seg {
        uint64_t gpa;
        uint32_t len;
        uint16_t flags;
};

/* A free descriptor from the top of the table (the fake takes the lowest). */
static unsigned desc_take(struct fake_vq *vq)
{
        for (unsigned i = vq->num; i-- > 0;)
                if (!vq->d[i].busy) {
                        vq->d[i].busy = true;
                        return i;
                }
        fail_msg("descriptor table full");
        return 0;
}

/* Make @head available (after the descriptors are written). */
static void avail_publish(struct fake_vq *vq, unsigned head)
{
        vq->avail->ring[vq->avail_idx % vq->num] = (uint16_t)head;
        __atomic_store_n(&vq->avail->idx, ++vq->avail_idx, __ATOMIC_RELEASE);
}

/* Post a chain of @n segments on ring @q; its head. The chain's
 * descriptors stay reserved (the fake frees only heads). */
static unsigned post_chain(struct fake_env *e, unsigned q, const struct seg *s, unsigned n)
{
        struct fake_vq *vq = &e->d->vq[q];
        unsigned idx[256];
        uint32_t wlen = 0;

        assert_true(n >= 1 && n <= 256);
        for (unsigned i = 0; i < n; i++)
                idx[i] = desc_take(vq);
        for (unsigned i = 0; i < n; i++) {
                struct vs_vring_desc *dd = &vq->desc[idx[i]];

                dd->addr = s[i].gpa;
                dd->len = s[i].len;
                dd->flags = s[i].flags | (i + 1 < n ? VS_VRING_DESC_F_NEXT : 0);
                dd->next = i + 1 < n ? (uint16_t)idx[i + 1] : 0;
                if (s[i].flags & W)
                        wlen += s[i].len;
        }
        vq->d[idx[0]].gpa = s[0].gpa;
        vq->d[idx[0]].len = wlen;
        avail_publish(vq, idx[0]);
        return idx[0];
}

static unsigned post1(struct fake_env *e, unsigned q, uint64_t gpa, uint32_t len, uint16_t flags)
{
        struct seg s = { gpa, len, flags };

        return post_chain(e, q, &s, 1);
}

/* An indirect table of @n segments in guest memory; its gpa. */
static uint64_t indirect_table(struct fake_env *e, const struct seg *s, unsigned n)
{
        uint64_t gpa = galloc(e, 16ull * n);
        struct vs_vring_desc *t = (void *)gptr(e, gpa, 16ull * n);

        for (unsigned i = 0; i < n; i++)
                t[i] = (struct vs_vring_desc){ s[i].gpa, s[i].len,
                        (uint16_t)(s[i].flags | (i + 1 < n ? VS_VRING_DESC_F_NEXT : 0)),
                        (uint16_t)(i + 1 < n ? i + 1 : 0) };
        return gpa;
}

/* A kick the guest did not have to send, and the backend runs. */
static void kick(struct fake_env *e, unsigned q)
{
        uint64_t one = 1;

        assert_true(e->d->vq[q].kick >= 0);
        assert_int_equal(write(e->d->vq[q].kick, &one, 8), 8);
        assert_true(fake_host_pump(e->h) >= 0);
}

/* The next used entry of @q: it must be @head; returns its length. */
static uint32_t used_next(struct fake_env *e, unsigned q, unsigned head)
{
        uint16_t h;
        uint32_t len;

        assert_true(fake_host_pump(e->h) >= 0);
        if (fake_vq_get_used(e->d, q, &h, &len) != 1)
                fail_msg("ring %u: chain %u not used [%s]", q, head, fake_error(e->d));
        assert_int_equal(h, head);
        return len;
}

static void no_used(struct fake_env *e, unsigned q)
{
        uint16_t h;
        uint32_t len;

        assert_true(fake_host_pump(e->h) >= 0);
        assert_int_equal(fake_vq_get_used(e->d, q, &h, &len), 0);
}

/* What the host side of port @id received so far equals @s. */
static void host_got(struct fake_env *e, unsigned id, const void *s, size_t n)
{
        struct fake_port *p = e->p[id];

        if (p->in_len != n || (n && memcmp(p->in, s, n)))
                fail_msg("port %u: host got %zu bytes, want %zu", id, p->in_len, n);
}

/*
 * Port 2, the control queue and the connection still work: data both ways
 * on port 2, and a close/open round trip.
 */
static void others_work(struct fake_env *e)
{
        struct fake_driver *d = e->d;
        size_t in0 = e->p[2]->in_len, out0 = d->port[2].len;
        unsigned closes = e->p[2]->guest_close_calls;

        assert_int_equal(e->h->closed_calls, 0);
        assert_int_equal(fake_guest_write(d, 2, "ping", 4), 4);
        FAKE_OK(d, fake_service(d));
        assert_int_equal(e->p[2]->in_len, in0 + 4);
        assert_memory_equal(e->p[2]->in + in0, "ping", 4);
        FAKE_OK(d, fake_rx_fill(d, RX2, 2));
        FAKE_OK(d, fake_port_send(e->p[2], "pong", 4));
        FAKE_OK(d, fake_service(d));
        assert_int_equal(d->port[2].len, out0 + 4);
        assert_memory_equal(d->port[2].data + out0, "pong", 4);
        FAKE_OK(d, fake_guest_open(d, 2, false));
        FAKE_OK(d, fake_guest_open(d, 2, true));
        assert_int_equal(e->p[2]->guest_close_calls, closes + 1);
        assert_true(e->p[2]->guest_connected);
        for (unsigned q = 0; q < 4; q++)
                assert_int_equal(vs_device_queue_error(e->h->dev, q), 0);
        assert_int_equal(vs_device_queue_error(e->h->dev, RX2), 0);
        assert_int_equal(vs_device_queue_error(e->h->dev, TX2), 0);
        assert_string_equal(fake_error(d), "");
}

/* Device->guest control messages logged from @from on. */
static unsigned dev_msgs(const struct fake_driver *d, unsigned from)
{
        unsigned n = 0;

        for (unsigned i = from; i < d->nlog; i++)
                n += !d->log[i].from_guest;
        return n;
}

/* ---- 6. control messages --------------------------------------------------------- */

/* PORT_READY / PORT_OPEN for ports never added (a free id, ids past
 * max_ports, the "no port" id): ignored, nothing sent back. */
static void test_ctrl_ports_never_added(void **state)
{
        struct fake_env *e = *state;
        const uint32_t ids[] = { 3, 4, 511, 512, 0x7fffffffu, 0xffffffffu };
        unsigned log0;

        guest_up(e);
        log0 = e->d->nlog;
        for (unsigned i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                FAKE_OK(e->d, fake_ctrl_send(e->d, ids[i], FAKE_C_PORT_READY, 1));
                FAKE_OK(e->d, fake_ctrl_send(e->d, ids[i], FAKE_C_PORT_OPEN, 1));
                FAKE_OK(e->d, fake_ctrl_send(e->d, ids[i], FAKE_C_PORT_READY, 0));
                FAKE_OK(e->d, fake_ctrl_send(e->d, ids[i], FAKE_C_PORT_OPEN, 0));
        }
        FAKE_OK(e->d, fake_service(e->d));
        assert_int_equal(dev_msgs(e->d, log0), 0);
        assert_null(vs_port_find(e->h->dev, 3));
        /* a port added now is announced and readied as usual */
        assert_non_null(e->p[3] = fake_host_add_port(e->h, 3, "org.hostile.three", false, NULL));
        FAKE_OK(e->d, fake_service(e->d));
        assert_true(e->d->port[3].added && e->d->port[3].named);
        assert_false(e->p[3]->guest_connected);
        others_work(e);
}

/* Events the guest may not send, or that do not exist, for a live port. */
static void test_ctrl_unknown_events(void **state)
{
        struct fake_env *e = *state;
        const uint16_t evs[] = { FAKE_C_DEVICE_READY, FAKE_C_PORT_ADD, FAKE_C_PORT_REMOVE,
                                 FAKE_C_CONSOLE_PORT, FAKE_C_RESIZE, FAKE_C_PORT_NAME,
                                 8, 99, 0x7fff, 0xffff };
        const uint16_t vals[] = { 0, 1, 2, 0xffff };
        unsigned log0, opens, closes;

        guest_up(e);
        log0 = e->d->nlog;
        opens = e->p[1]->guest_open_calls;
        closes = e->p[1]->guest_close_calls;
        for (unsigned i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
                for (unsigned k = 0; k < 4; k++) {
                        if (evs[i] == FAKE_C_DEVICE_READY && vals[k] == 1)
                                continue;       /* that one is a driver restart */
                        FAKE_OK(e->d, fake_ctrl_send(e->d, 1, evs[i], vals[k]));
                        FAKE_OK(e->d, fake_ctrl_send(e->d, 0xffffffffu, evs[i], vals[k]));
                }
        FAKE_OK(e->d, fake_service(e->d));
        assert_int_equal(dev_msgs(e->d, log0), 0);
        assert_int_equal(e->p[1]->guest_open_calls, opens);
        assert_int_equal(e->p[1]->guest_close_calls, closes);
        assert_true(vs_port_guest_connected(e->p[1]->port));
        assert_non_null(vs_port_find(e->h->dev, 1));
        others_work(e);
}

/* PORT_OPEN and PORT_READY for a port the host removed: ignored. */
static void test_ctrl_open_removed_port(void **state)
{
        struct fake_env *e = *state;
        unsigned log0;

        guest_up(e);
        assert_int_equal(vs_port_remove(e->p[1]->port), 0);
        FAKE_OK(e->d, fake_service(e->d));
        assert_true(e->d->port[1].removed);
        log0 = e->d->nlog;
        e->d->cfg.lenient_ctrl = true;
        for (unsigned v = 0; v < 3; v++) {
                FAKE_OK(e->d, fake_ctrl_send(e->d, 1, FAKE_C_PORT_OPEN, v & 1));
                FAKE_OK(e->d, fake_ctrl_send(e->d, 1, FAKE_C_PORT_READY, v & 1));
        }
        /* and data on its queues: returned unread */
        assert_int_equal(fake_guest_write(e->d, 1, "gone", 4), 4);
        FAKE_OK(e->d, fake_service(e->d));
        assert_int_equal(dev_msgs(e->d, log0), 0);
        assert_null(vs_port_find(e->h->dev, 1));
        assert_int_equal(e->p[1]->in_len, 0);
        others_work(e);
}

/* A 64 KiB control buffer (a PORT_NAME-sized lie and then some): only its
 * 8-byte header is read, the buffer comes back unwritten. */
static void test_ctrl_64k_buffer(void **state)
{
        struct fake_env *e = *state;
        const uint32_t big = 64 * KIB;
        uint64_t gpa;
        uint8_t *p;
        unsigned head;

        guest_up(e);
        gpa = gbuf_pattern(e, big, 3);
        p = gptr(e, gpa, big);
        /* {port 1, PORT_OPEN, 0}: the guest closes port 1 */
        memcpy(p, (uint32_t[]){ 1 }, 4);
        memcpy(p + 4, (uint16_t[]){ FAKE_C_PORT_OPEN, 0 }, 4);
        memcpy(p + 8, "PORT_NAME", 9);
        {
                uint8_t *keep = malloc(big);

                assert_non_null(keep);
                memcpy(keep, p, big);
                head = post1(e, CTX, gpa, big, 0);
                kick(e, CTX);
                assert_int_equal(used_next(e, CTX, head), 0);
                assert_memory_equal(keep, p, big);
                free(keep);
        }
        assert_false(e->p[1]->guest_connected);
        others_work(e);
}

/* The header spread over eight 1-byte descriptors, and over a 3 + 5 split
 * in an indirect table: still one message. */
static void test_ctrl_header_in_pieces(void **state)
{
        struct fake_env *e = *state;
        uint8_t msg[8];
        struct seg s[8];
        unsigned head;

        guest_up(e);
        memcpy(msg, (uint32_t[]){ 1 }, 4);
        memcpy(msg + 4, (uint16_t[]){ FAKE_C_PORT_OPEN, 0 }, 4);
        for (unsigned i = 0; i < 8; i++)
                s[i] = (struct seg){ gbuf_bytes(e, msg + i, 1), 1, 0 };
        head = post_chain(e, CTX, s, 8);
        kick(e, CTX);
        assert_int_equal(used_next(e, CTX, head), 0);
        assert_false(e->p[1]->guest_connected);
        msg[6] = 1;
        s[0] = (struct seg){ gbuf_bytes(e, msg, 3), 3, 0 };
        s[1] = (struct seg){ gbuf_bytes(e, msg + 3, 5), 5, 0 };
        head = post1(e, CTX, indirect_table(e, s, 2), 32, VS_VRING_DESC_F_INDIRECT);
        kick(e, CTX);
        assert_int_equal(used_next(e, CTX, head), 0);
        assert_true(e->p[1]->guest_connected);
        others_work(e);
}

/* Control buffers with fewer than 8 readable bytes, and write-only ones
 * holding a valid-looking message: ignored, never written. */
static void test_ctrl_short_and_write_only(void **state)
{
        struct fake_env *e = *state;
        uint8_t msg[8];
        uint64_t a, b, c;
        unsigned ha, hb, hc, hd;
        struct seg s[2];

        guest_up(e);
        memcpy(msg, (uint32_t[]){ 1 }, 4);
        memcpy(msg + 4, (uint16_t[]){ FAKE_C_PORT_OPEN, 0 }, 4);
        a = gbuf_bytes(e, msg, 8);
        b = gbuf_bytes(e, msg, 8);
        c = gbuf_bytes(e, msg, 8);
        ha = post1(e, CTX, a, 7, 0);                    /* 7 bytes */
        hb = post1(e, CTX, b, 8, W);                    /* device-writable */
        s[0] = (struct seg){ c, 4, 0 };                 /* 4 readable + 4 writable */
        s[1] = (struct seg){ c + 4, 4, W };
        hc = post_chain(e, CTX, s, 2);
        hd = post1(e, CTX, 0, 0, 0);                    /* nothing at all */
        kick(e, CTX);
        assert_int_equal(used_next(e, CTX, ha), 0);
        assert_int_equal(used_next(e, CTX, hb), 0);
        assert_int_equal(used_next(e, CTX, hc), 0);
        assert_int_equal(used_next(e, CTX, hd), 0);
        assert_memory_equal(gptr(e, b, 8), msg, 8);
        assert_memory_equal(gptr(e, c, 8), msg, 8);
        assert_true(e->p[1]->guest_connected);
        others_work(e);
}

/* ---- 7. receive buffers --------------------------------------------------------- */

/* Read-only receive buffers: returned with length 0, never written; data
 * goes to the next writable buffer. */
static void test_rx_read_only(void **state)
{
        struct fake_env *e = *state;
        uint64_t ro1, ro2, w;
        unsigned h1, h2, hw;

        guest_up(e);
        ro1 = gbuf_pattern(e, 64, 1);
        ro2 = gbuf_pattern(e, 4096, 2);
        h1 = post1(e, RX1, ro1, 64, 0);
        h2 = post1(e, RX1, ro2, 4096, 0);
        kick(e, RX1);
        assert_int_equal(vs_port_guest_room(e->p[1]->port), 0);
        assert_int_equal(vs_port_write(e->p[1]->port, "hello", 5), 0);
        assert_int_equal(used_next(e, RX1, h1), 0);
        assert_int_equal(used_next(e, RX1, h2), 0);
        assert_true(pattern_intact(e, ro1, 64, 1));
        assert_true(pattern_intact(e, ro2, 4096, 2));
        /* a writable one after them takes the data */
        w = gbuf_pattern(e, 64, 3);
        hw = post1(e, RX1, w, 64, W);
        kick(e, RX1);
        assert_int_equal(vs_port_write(e->p[1]->port, "hello", 5), 5);
        assert_int_equal(used_next(e, RX1, hw), 5);
        assert_memory_equal(gptr(e, w, 5), "hello", 5);
        assert_int_equal(vs_device_queue_error(e->h->dev, RX1), 0);
        others_work(e);
}

/* Readable bytes before the writable ones in a receive chain: skipped. */
static void test_rx_readable_then_writable(void **state)
{
        struct fake_env *e = *state;
        uint64_t ro, w;
        struct seg s[2];
        unsigned h;
        uint8_t data[40];

        guest_up(e);
        for (unsigned i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)('A' + i);
        ro = gbuf_pattern(e, 16, 4);
        w = gbuf_pattern(e, 32, 5);
        s[0] = (struct seg){ ro, 16, 0 };
        s[1] = (struct seg){ w, 32, W };
        h = post_chain(e, RX1, s, 2);
        kick(e, RX1);
        assert_int_equal(vs_port_write(e->p[1]->port, data, sizeof(data)), 32);
        assert_int_equal(used_next(e, RX1, h), 32);
        assert_true(pattern_intact(e, ro, 16, 4));
        assert_memory_equal(gptr(e, w, 32), data, 32);
        others_work(e);
}

/*
 * vs_port_recv_fd() with only read-only buffers posted: the guest cannot
 * take data, so -ENOBUFS, never 0 (which means end of file and makes the
 * daemon drop its host client); the bytes stay in the fd.
 */
static void test_rx_read_only_recv_fd(void **state)
{
        struct fake_env *e = *state;
        uint64_t ro;
        unsigned h;
        int pfd[2];
        ssize_t n;
        char buf[8];

        guest_up(e);
        assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
        assert_int_equal(write(pfd[1], "data", 4), 4);
        ro = gbuf_pattern(e, 256, 6);
        h = post1(e, RX1, ro, 256, 0);
        kick(e, RX1);
        n = vs_port_recv_fd(e->p[1]->port, pfd[0], 65536);
        /* the read-only chain may come back (length 0) or wait */
        if (n != -ENOBUFS) {
                close(pfd[0]);
                close(pfd[1]);
                fail_msg("vs_port_recv_fd with only a read-only buffer posted returned %zd, want -ENOBUFS "
                         "(0 reads as end of file)", n);
        }
        assert_true(pattern_intact(e, ro, 256, 6));
        assert_int_equal(read(pfd[0], buf, sizeof(buf)), 4);
        close(pfd[0]);
        close(pfd[1]);
        (void)h;
}

/* Writable then readable in a receive chain: the queue breaks (EBADMSG). */
static void test_rx_writable_then_readable(void **state)
{
        struct fake_env *e = *state;
        struct seg s[2];
        uint64_t w, ro;

        guest_up(e);
        w = gbuf_pattern(e, 32, 7);
        ro = gbuf_pattern(e, 32, 8);
        s[0] = (struct seg){ w, 32, W };
        s[1] = (struct seg){ ro, 32, 0 };
        post_chain(e, RX1, s, 2);
        kick(e, RX1);
        assert_true(vs_port_write(e->p[1]->port, "x", 1) < 0);
        assert_int_equal(vs_device_queue_error(e->h->dev, RX1), -EBADMSG);
        no_used(e, RX1);
        assert_true(pattern_intact(e, w, 32, 7));
        assert_true(pattern_intact(e, ro, 32, 8));
        /* the host keeps trying: nothing more happens */
        assert_true(vs_port_write(e->p[1]->port, "x", 1) <= 0);
        others_work(e);
}

/* Zero-length descriptors (one at an address outside memory) around a
 * real one, and a chain of nothing but zero lengths. */
static void test_rx_zero_length(void **state)
{
        struct fake_env *e = *state;
        struct seg s[3];
        uint64_t w;
        unsigned h0, h1;

        guest_up(e);
        w = gbuf_pattern(e, 8, 9);
        h0 = post1(e, RX1, 0xdead00000000ull, 0, W);
        s[0] = (struct seg){ 0xdead00000000ull, 0, W };
        s[1] = (struct seg){ w, 8, W };
        s[2] = (struct seg){ w + 4, 0, W };
        h1 = post_chain(e, RX1, s, 3);
        kick(e, RX1);
        assert_int_equal(vs_port_write(e->p[1]->port, "0123456789", 10), 8);
        assert_int_equal(used_next(e, RX1, h0), 0);
        assert_int_equal(used_next(e, RX1, h1), 8);
        assert_memory_equal(gptr(e, w, 8), "01234567", 8);
        assert_int_equal(vs_device_queue_error(e->h->dev, RX1), 0);
        others_work(e);
}

/* 64 one-byte writable descriptors, then a normal buffer: in order. */
static void test_rx_one_byte_chain(void **state)
{
        struct fake_env *e = *state;
        struct seg s[64];
        uint8_t data[100], got[64];
        uint64_t base, w;
        unsigned h1, h2;

        guest_up(e);
        for (unsigned i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 13 + 1);
        base = galloc(e, 64 * 64);
        for (unsigned i = 0; i < 64; i++)       /* scattered, 64 bytes apart */
                s[i] = (struct seg){ base + 64 * (63 - i), 1, W };
        h1 = post_chain(e, RX1, s, 64);
        w = gbuf_pattern(e, 64, 10);
        h2 = post1(e, RX1, w, 64, W);
        kick(e, RX1);
        assert_int_equal(vs_port_write(e->p[1]->port, data, sizeof(data)), 100);
        assert_int_equal(used_next(e, RX1, h1), 64);
        assert_int_equal(used_next(e, RX1, h2), 36);
        for (unsigned i = 0; i < 64; i++)
                got[i] = *gptr(e, s[i].gpa, 1);
        assert_memory_equal(got, data, 64);
        assert_memory_equal(gptr(e, w, 36), data + 64, 36);
        others_work(e);
}

/* Receive through an indirect table: two writable halves. */
static void test_rx_indirect(void **state)
{
        struct fake_env *e = *state;
        struct seg s[3];
        uint64_t a, b, ro;
        unsigned h;

        guest_up(e);
        ro = gbuf_pattern(e, 8, 11);
        a = gbuf_pattern(e, 4, 12);
        b = gbuf_pattern(e, 4, 13);
        s[0] = (struct seg){ ro, 8, 0 };
        s[1] = (struct seg){ a, 4, W };
        s[2] = (struct seg){ b, 4, W };
        h = post1(e, RX1, indirect_table(e, s, 3), 48, VS_VRING_DESC_F_INDIRECT);
        e->d->vq[RX1].d[h].len = 8;     /* writable bytes, for the fake's check */
        kick(e, RX1);
        assert_int_equal(vs_port_write(e->p[1]->port, "abcdefghij", 10), 8);
        assert_int_equal(used_next(e, RX1, h), 8);
        assert_memory_equal(gptr(e, a, 4), "abcd", 4);
        assert_memory_equal(gptr(e, b, 4), "efgh", 4);
        assert_true(pattern_intact(e, ro, 8, 11));
        others_work(e);
}

/* A receive chain that loops: ELOOP, nothing written. */
static void test_rx_loop(void **state)
{
        struct fake_env *e = *state;
        struct fake_vq *vq;
        uint64_t w;
        unsigned a, b;

        guest_up(e);
        vq = &e->d->vq[RX1];
        w = gbuf_pattern(e, 16, 14);
        a = desc_take(vq);
        b = desc_take(vq);
        vq->desc[a] = (struct vs_vring_desc){ w, 8, W | VS_VRING_DESC_F_NEXT, (uint16_t)b };
        vq->desc[b] = (struct vs_vring_desc){ w + 8, 8, W | VS_VRING_DESC_F_NEXT, (uint16_t)a };
        avail_publish(vq, a);
        kick(e, RX1);
        assert_true(vs_port_write(e->p[1]->port, "abc", 3) < 0);
        /* the iovec cap may be hit before the chain is known to loop */
        assert_true(vs_device_queue_error(e->h->dev, RX1) == -ELOOP ||
                    vs_device_queue_error(e->h->dev, RX1) == -E2BIG);
        assert_true(pattern_intact(e, w, 16, 14));
        no_used(e, RX1);
        others_work(e);
}

/* ---- 8. transmit buffers -------------------------------------------------------- */

/* Write-only transmit buffers carry nothing and are never written; the
 * readable part of a mixed chain is delivered. */
static void test_tx_write_only(void **state)
{
        struct fake_env *e = *state;
        struct seg s[2];
        uint64_t w1, w2, r;
        unsigned h1, h2;

        guest_up(e);
        w1 = gbuf_pattern(e, 64, 20);
        h1 = post1(e, TX1, w1, 64, W);
        r = gbuf_bytes(e, "abc", 3);
        w2 = gbuf_pattern(e, 64, 21);
        s[0] = (struct seg){ r, 3, 0 };
        s[1] = (struct seg){ w2, 64, W };
        h2 = post_chain(e, TX1, s, 2);
        kick(e, TX1);
        assert_int_equal(used_next(e, TX1, h1), 0);
        assert_int_equal(used_next(e, TX1, h2), 0);
        host_got(e, 1, "abc", 3);
        assert_true(pattern_intact(e, w1, 64, 20));
        assert_true(pattern_intact(e, w2, 64, 21));
        others_work(e);
}

static void test_tx_zero_length(void **state)
{
        struct fake_env *e = *state;
        struct seg s[4];
        unsigned h0, h1;

        guest_up(e);
        h0 = post1(e, TX1, 0xdead00000000ull, 0, 0);
        s[0] = (struct seg){ 0xdead00000000ull, 0, 0 };
        s[1] = (struct seg){ gbuf_bytes(e, "ab", 2), 2, 0 };
        s[2] = (struct seg){ 0, 0, 0 };
        s[3] = (struct seg){ gbuf_bytes(e, "c", 1), 1, 0 };
        h1 = post_chain(e, TX1, s, 4);
        kick(e, TX1);
        assert_int_equal(used_next(e, TX1, h0), 0);
        assert_int_equal(used_next(e, TX1, h1), 0);
        host_got(e, 1, "abc", 3);
        others_work(e);
}

/* A chain of 128 one-byte descriptors arrives whole and in order. */
static void test_tx_one_byte_chain(void **state)
{
        struct fake_env *e = *state;
        struct seg s[128];
        uint8_t data[128];
        unsigned h;

        guest_up(e);
        for (unsigned i = 0; i < 128; i++) {
                data[i] = (uint8_t)(i * 3 + 5);
                s[i] = (struct seg){ gbuf_bytes(e, &data[i], 1), 1, 0 };
        }
        h = post_chain(e, TX1, s, 128);
        kick(e, TX1);
        assert_int_equal(used_next(e, TX1, h), 0);
        host_got(e, 1, data, 128);
        others_work(e);
}

/*
 * Long chains through an indirect table, one byte per descriptor: 1023
 * entries (with the indirect descriptor, VS_VQ_MAX_CHAIN) arrive whole and
 * in order, one writev() of 1023 iovecs; 1024 entries are one descriptor
 * too many: the queue breaks with E2BIG, nothing is delivered.
 */
static void test_tx_one_byte_chain_too_long(void **state)
{
        struct fake_env *e = *state;
        const unsigned n = VS_VQ_MAX_CHAIN - 1;
        struct seg *s = calloc(n + 1, sizeof(*s));
        uint8_t data[VS_VQ_MAX_CHAIN];
        unsigned h;

        assert_non_null(s);
        guest_up(e);
        for (unsigned i = 0; i <= n; i++) {
                data[i] = (uint8_t)(i * 7 + 1);
                s[i] = (struct seg){ gbuf_bytes(e, &data[i], 1), 1, 0 };
        }
        h = post1(e, TX1, indirect_table(e, s, n), n * 16, VS_VRING_DESC_F_INDIRECT);
        kick(e, TX1);
        assert_int_equal(used_next(e, TX1, h), 0);
        host_got(e, 1, data, n);
        assert_int_equal(e->p[1]->have_data_calls, 1);
        post1(e, TX1, indirect_table(e, s, n + 1), (n + 1) * 16, VS_VRING_DESC_F_INDIRECT);
        kick(e, TX1);
        free(s);
        assert_int_equal(vs_device_queue_error(e->h->dev, TX1), -E2BIG);
        no_used(e, TX1);
        host_got(e, 1, data, n);
        others_work(e);
}

/*
 * A descriptor whose next is itself; a loop of three. With @blen 0 the walk
 * maps nothing and only the loop bound (the ring size) can stop it: ELOOP;
 * with data the iovec cap may come first: E2BIG.
 */
static void tx_loop(struct fake_env *e, unsigned len, uint32_t blen)
{
        struct fake_vq *vq;
        uint64_t r;
        unsigned idx[3];
        int err;

        guest_up(e);
        vq = &e->d->vq[TX1];
        r = gbuf_bytes(e, "loop", 4);
        for (unsigned i = 0; i < len; i++)
                idx[i] = desc_take(vq);
        for (unsigned i = 0; i < len; i++)
                vq->desc[idx[i]] = (struct vs_vring_desc){ r, blen, VS_VRING_DESC_F_NEXT,
                                                           (uint16_t)idx[(i + 1) % len] };
        avail_publish(vq, idx[0]);
        kick(e, TX1);
        err = vs_device_queue_error(e->h->dev, TX1);
        if (blen)
                assert_true(err == -ELOOP || err == -E2BIG);
        else
                assert_int_equal(err, -ELOOP);
        no_used(e, TX1);
        host_got(e, 1, NULL, 0);
        assert_int_equal(e->p[1]->have_data_calls, 0);
        others_work(e);
}

static void test_tx_self_loop(void **s) { tx_loop(*s, 1, 0); }
static void test_tx_self_loop_data(void **s) { tx_loop(*s, 1, 4); }
static void test_tx_loop_of_three(void **s) { tx_loop(*s, 3, 0); }
static void test_tx_loop_of_three_data(void **s) { tx_loop(*s, 3, 4); }

/* Transmit through indirect tables: fine; and every way one can be wrong. */
static void test_tx_indirect(void **state)
{
        struct fake_env *e = *state;
        struct seg s[3];
        unsigned h;

        guest_up(e);
        s[0] = (struct seg){ gbuf_bytes(e, "ab", 2), 2, 0 };
        s[1] = (struct seg){ gbuf_bytes(e, "cd", 2), 2, 0 };
        s[2] = (struct seg){ gbuf_bytes(e, "ef", 2), 2, 0 };
        h = post1(e, TX1, indirect_table(e, s, 3), 48, VS_VRING_DESC_F_INDIRECT);
        kick(e, TX1);
        assert_int_equal(used_next(e, TX1, h), 0);
        host_got(e, 1, "abcdef", 6);
        others_work(e);
}

enum bad_indirect { IND_NESTED, IND_LEN_ODD, IND_LEN_ZERO, IND_OUTSIDE, IND_LOOP,
                    IND_NEXT_RANGE, IND_ACROSS_END };

static void tx_bad_indirect(void **state, enum bad_indirect how, int err)
{
        struct fake_env *e = *state;
        struct seg s[2];
        uint64_t t, len;

        guest_up(e);
        s[0] = (struct seg){ gbuf_bytes(e, "ab", 2), 2, 0 };
        s[1] = (struct seg){ gbuf_bytes(e, "cd", 2), 2, 0 };
        t = indirect_table(e, s, 2);
        len = 32;
        switch (how) {
        case IND_NESTED: {
                struct seg in = { t, 32, VS_VRING_DESC_F_INDIRECT };

                t = indirect_table(e, &in, 1);
                len = 16;
                break;
        }
        case IND_LEN_ODD:
                len = 24;
                break;
        case IND_LEN_ZERO:
                len = 0;
                break;
        case IND_OUTSIDE:
                t = 0xdead00000000ull;
                break;
        case IND_LOOP:
                ((struct vs_vring_desc *)gptr(e, t, 32))[1].flags = VS_VRING_DESC_F_NEXT;
                ((struct vs_vring_desc *)gptr(e, t, 32))[1].next = 0;
                break;
        case IND_NEXT_RANGE:
                ((struct vs_vring_desc *)gptr(e, t, 32))[1].flags = VS_VRING_DESC_F_NEXT;
                ((struct vs_vring_desc *)gptr(e, t, 32))[1].next = 2;
                break;
        case IND_ACROSS_END:
                /* the table claims to go past the end of guest memory */
                t = e->d->cfg.regions[0].gpa + e->d->cfg.regions[0].size - 16;
                break;
        }
        post1(e, TX1, t, (uint32_t)len, VS_VRING_DESC_F_INDIRECT);
        kick(e, TX1);
        assert_int_equal(vs_device_queue_error(e->h->dev, TX1), err);
        no_used(e, TX1);
        host_got(e, 1, NULL, 0);
        others_work(e);
}

static void test_tx_indirect_nested(void **s) { tx_bad_indirect(s, IND_NESTED, -EPROTO); }
static void test_tx_indirect_len_odd(void **s) { tx_bad_indirect(s, IND_LEN_ODD, -EINVAL); }
static void test_tx_indirect_len_zero(void **s) { tx_bad_indirect(s, IND_LEN_ZERO, -EINVAL); }
static void test_tx_indirect_outside(void **s) { tx_bad_indirect(s, IND_OUTSIDE, -EFAULT); }
static void test_tx_indirect_loop(void **s) { tx_bad_indirect(s, IND_LOOP, -ELOOP); }
static void test_tx_indirect_next_range(void **s) { tx_bad_indirect(s, IND_NEXT_RANGE, -ERANGE); }
static void test_tx_indirect_across_end(void **s) { tx_bad_indirect(s, IND_ACROSS_END, -EFAULT); }

/* ---- 9. kick storms ----------------------------------------------------------------- */

#define STORM 5000u

/* @n eventfd writes on ring @q, the backend running after each; returns
 * the callbacks it dispatched in all (bounded work: a few per kick). */
static unsigned storm(struct fake_env *e, unsigned q, unsigned n)
{
        uint64_t one = 1;
        unsigned total = 0;

        for (unsigned i = 0; i < n; i++) {
                int k;

                assert_int_equal(write(e->d->vq[q].kick, &one, 8), 8);
                k = fake_host_pump(e->h);
                assert_true(k >= 0);
                total += (unsigned)k;
        }
        assert_true(total <= 4 * n);
        return total;
}

/* Kicks on empty rings, every one of them, and a kick counter at its
 * maximum: nothing moves, nothing loops. */
static void test_kick_storm_empty(void **state)
{
        struct fake_env *e = *state;
        uint64_t big = 0xfffffffffffffffeull, drain;

        guest_up(e);
        storm(e, TX1, STORM);
        storm(e, RX1, STORM);
        storm(e, CTX, STORM);
        for (unsigned round = 0; round < 200; round++)
                for (unsigned q = 0; q < e->d->nvqs; q++) {
                        uint64_t one = 1;

                        assert_int_equal(write(e->d->vq[q].kick, &one, 8), 8);
                }
        assert_true(fake_host_pump(e->h) >= 0);
        /* The device reads an eventfd kick fd only until it knows it is
         * one: empty the count here so that the maximum fits. */
        assert_int_equal(read(e->d->vq[TX1].kick, &drain, 8), 8);
        assert_int_equal(write(e->d->vq[TX1].kick, &big, 8), 8);
        assert_true(fake_host_pump(e->h) >= 0);
        assert_int_equal(e->p[1]->have_data_calls, 0);
        assert_int_equal(e->p[1]->in_len, 0);
        others_work(e);
}

/* Ten buffers and thousands of kicks: each buffer delivered once. */
static void test_kick_storm_with_buffers(void **state)
{
        struct fake_env *e = *state;
        char want[10 * 8 + 1] = "";
        unsigned heads[10];

        guest_up(e);
        for (unsigned i = 0; i < 10; i++) {
                char c[9];

                snprintf(c, sizeof(c), "chunk%03u", i);
                strcat(want, c);
                heads[i] = post1(e, TX1, gbuf_bytes(e, c, 8), 8, 0);
        }
        storm(e, TX1, STORM);
        for (unsigned i = 0; i < 10; i++)
                assert_int_equal(used_next(e, TX1, heads[i]), 0);
        no_used(e, TX1);
        host_got(e, 1, want, 80);
        others_work(e);
}

/* The host side takes nothing (throttled): kicks do not call it again
 * and again; once it takes, everything arrives once. */
static void test_kick_storm_throttled(void **state)
{
        struct fake_env *e = *state;
        char want[10 * 8 + 1] = "";

        guest_up(e);
        e->p[1]->take_limit = 0;
        for (unsigned i = 0; i < 10; i++) {
                char c[9];

                snprintf(c, sizeof(c), "chunk%03u", i);
                strcat(want, c);
                post1(e, TX1, gbuf_bytes(e, c, 8), 8, 0);
        }
        storm(e, TX1, STORM);
        assert_true(vs_port_throttled(e->p[1]->port));
        assert_true(e->p[1]->have_data_calls <= 2);
        fake_port_unthrottle(e->p[1], SIZE_MAX);
        assert_true(fake_host_pump(e->h) >= 0);
        host_got(e, 1, want, 80);
        others_work(e);
}

/* Kicks on a receive ring while the host waits for room, on a broken ring,
 * and on the control queue with one real message among them. */
static void test_kick_storm_rx_and_broken(void **state)
{
        struct fake_env *e = *state;
        unsigned ready0;

        guest_up(e);
        assert_int_equal(vs_port_write(e->p[1]->port, "x", 1), 0);   /* no room: wait */
        ready0 = e->p[1]->guest_ready_calls;
        storm(e, RX1, STORM);
        assert_true(e->p[1]->guest_ready_calls <= ready0 + 1);
        /* break tx 1 (avail idx far ahead), then storm it */
        e->d->vq[TX1].avail->idx = (uint16_t)(e->d->vq[TX1].avail_idx + 1000);
        storm(e, TX1, STORM);
        assert_int_equal(vs_device_queue_error(e->h->dev, TX1), -EOVERFLOW);
        assert_int_equal(e->p[1]->have_data_calls, 0);
        storm(e, CTX, STORM / 2);
        FAKE_OK(e->d, fake_ctrl_send(e->d, 1, FAKE_C_PORT_OPEN, 0));
        storm(e, CTX, STORM / 2);
        assert_false(e->p[1]->guest_connected);
        others_work(e);
}

/* ---- 10. the avail index jumps ------------------------------------------------------- */

/* avail idx moved num + 1 past what the device used: the queue is broken,
 * reported once, and the others go on. */
static void avail_jump(struct fake_env *e, unsigned q)
{
        struct fake_vq *vq = &e->d->vq[q];

        __atomic_store_n(&vq->avail->idx, (uint16_t)(vq->avail_idx + vq->num + 1),
                         __ATOMIC_RELEASE);
        kick(e, q);
        if (q == RX1)
                assert_true(vs_port_write(e->p[1]->port, "x", 1) <= 0);
        assert_int_equal(vs_device_queue_error(e->h->dev, q), -EOVERFLOW);
        no_used(e, q);
        kick(e, q);
        assert_int_equal(vs_device_queue_error(e->h->dev, q), -EOVERFLOW);
        assert_int_equal(e->h->closed_calls, 0);
}

static void test_avail_jump_tx(void **state)
{
        struct fake_env *e = *state;

        guest_up(e);
        post1(e, TX1, gbuf_bytes(e, "abc", 3), 3, 0);
        avail_jump(e, TX1);
        host_got(e, 1, NULL, 0);
        others_work(e);
}

static void test_avail_jump_rx(void **state)
{
        struct fake_env *e = *state;

        guest_up(e);
        avail_jump(e, RX1);
        others_work(e);
}

/* Exactly num ahead is a full ring, not a jump: all of it is used. */
static void test_avail_full_ring_ok(void **state)
{
        struct fake_env *e = *state;
        struct fake_vq *vq;
        uint64_t r;

        guest_up(e);
        vq = &e->d->vq[TX1];
        r = gbuf_bytes(e, "z", 1);
        for (unsigned i = 0; i < vq->num; i++) {
                vq->desc[i] = (struct vs_vring_desc){ r, 1, 0, 0 };
                vq->d[i].busy = true;
                vq->avail->ring[(vq->avail_idx + i) % vq->num] = (uint16_t)i;
        }
        vq->avail_idx = (uint16_t)(vq->avail_idx + vq->num);
        __atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
        kick(e, TX1);
        assert_true(fake_host_pump(e->h) >= 0);
        assert_int_equal(vs_device_queue_error(e->h->dev, TX1), 0);
        assert_int_equal(e->p[1]->in_len, vq->num);
        for (unsigned i = 0; i < vq->num; i++)
                used_next(e, TX1, i);
        others_work(e);
}

/* The control transmit queue: broken; the data ports keep going (their
 * open state no longer changes, as the guest cannot say anything). */
static void test_avail_jump_ctrl_tx(void **state)
{
        struct fake_env *e = *state;
        struct fake_vq *vq;

        guest_up(e);
        vq = &e->d->vq[CTX];
        __atomic_store_n(&vq->avail->idx, (uint16_t)(vq->avail_idx + vq->num + 1),
                         __ATOMIC_RELEASE);
        kick(e, CTX);
        assert_int_equal(vs_device_queue_error(e->h->dev, CTX), -EOVERFLOW);
        assert_int_equal(e->h->closed_calls, 0);
        assert_int_equal(fake_guest_write(e->d, 2, "ping", 4), 4);
        FAKE_OK(e->d, fake_service(e->d));
        host_got(e, 2, "ping", 4);
        assert_true(e->p[1]->guest_connected && e->p[2]->guest_connected);
}

/* ---- 11. rings on top of each other, memory pulled away --------------------------------- */

static uint64_t rnd_next(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/*
 * Port 1's receive and transmit rings share one 4 KiB block: descriptor
 * table, avail and used ring of both, all at the same address. The block
 * is refilled with structured garbage 300 times while both rings are
 * kicked and the host writes: the device may use or break the rings (a
 * broken ring is restarted with SET_VRING_BASE), but never touches memory
 * outside the guest's, never stalls, and the connection, port 2 and the
 * control queue live on.
 */
static void test_rings_overlap_garbage(void **state)
{
        struct fake_env *e = *state;
        uint64_t seed = 0x9e3779b97f4a7c15ull, blk, area;
        uint8_t data[3000];
        unsigned broken = 0, delivered = 0;

        guest_up(e);
        blk = fake_alloc(e->d, 4096, 4096);
        area = galloc(e, 64 * KIB + 8192);
        assert_true(blk != 0);
        memset(data, 'g', sizeof(data));
        for (unsigned q = RX1; q <= TX1; q++) {
                struct fake_vu_vring_addr a = { .index = q, .desc = blk, .avail = blk,
                                                .used = blk, .log = ~0ull };

                FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_VRING_ADDR,
                                          fake_ack_flags(e->d, true), &a, sizeof(a), NULL, 0));
        }
        for (unsigned it = 0; it < 300; it++) {
                struct vs_vring_desc *t = (void *)gptr(e, blk, 4096);
                uint16_t base = (uint16_t)rnd_next(&seed);
                ssize_t n;

                /* both rings restart at one base; avail (= used) idx a little past it */
                for (unsigned q = RX1; q <= TX1; q++)
                        FAKE_OK(e->d, fake_vu_state(e->d, FAKE_VU_SET_VRING_BASE,
                                                    fake_ack_flags(e->d, true), q, base));
                for (unsigned i = 0; i < 256; i++) {
                        uint64_t r = rnd_next(&seed);

                        t[i].addr = (r & 7) ? area + (rnd_next(&seed) % (64 * KIB))
                                            : rnd_next(&seed);
                        t[i].len = (uint32_t)(rnd_next(&seed) % 5000);
                        t[i].flags = (uint16_t)((r >> 8 & 3) | ((r >> 12 & 15) == 0 ? 4 : 0));
                        t[i].next = (uint16_t)((r >> 16) % 300);
                }
                if (it % 3)
                        *(uint16_t *)gptr(e, blk + 2, 2) =
                                (uint16_t)(base + 1 + rnd_next(&seed) % 3);
                kick(e, TX1);
                kick(e, RX1);
                n = vs_port_write(e->p[1]->port, data, sizeof(data));
                delivered += n > 0;
                assert_true(fake_host_pump(e->h) >= 0);
                for (unsigned q = RX1; q <= TX1; q++)
                        broken += vs_device_queue_error(e->h->dev, q) != 0;
                assert_int_equal(e->h->closed_calls, 0);
        }
        print_message("# overlapping rings: %u breakages, %u writes delivered something, "
                      "host got %zu bytes\n", broken, delivered, e->p[1]->in_len);
        assert_true(broken > 0);
        others_work(e);
}

/* Two different rings (port 1 rx and port 2 tx) given the same memory. */
static void test_rings_shared_between_queues(void **state)
{
        struct fake_env *e = *state;
        struct fake_vu_vring_addr a = { .index = TX1 };
        struct fake_vq *rx;

        guest_up(e);
        rx = &e->d->vq[RX1];
        /* port 1's tx ring is port 1's rx ring */
        a.desc = rx->desc_gpa;
        a.avail = rx->avail_gpa;
        a.used = rx->used_gpa;
        a.log = ~0ull;
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_VRING_ADDR, fake_ack_flags(e->d, true),
                                  &a, sizeof(a), NULL, 0));
        /* the guest posts receive buffers; the device sees them as transmit
         * chains too (writable only: nothing to send) */
        FAKE_OK(e->d, fake_rx_fill(e->d, RX1, 8));
        kick(e, TX1);
        kick(e, RX1);
        assert_true(vs_port_write(e->p[1]->port, "abc", 3) >= 0);
        assert_true(fake_host_pump(e->h) >= 0);
        assert_int_equal(e->p[1]->in_len, 0);
        assert_int_equal(e->h->closed_calls, 0);
        /* port 2 never shared anything */
        {
                struct fake_driver *d = e->d;
                size_t in0 = e->p[2]->in_len;

                assert_int_equal(fake_guest_write(d, 2, "ping", 4), 4);
                kick(e, TX2);
                assert_int_equal(e->p[2]->in_len, in0 + 4);
        }
}

/* A new memory table that no longer holds the rings: they stop (no access
 * through stale pointers), kicks and host writes do nothing; the old table
 * again, and they resume where they were. */
static void test_mem_pulled_from_under_rings(void **state)
{
        struct fake_env *e = *state;
        struct fake_vu_region r = { 0x40000000, MIB, 0x40000000, 0 };
        uint8_t p[72] = { 0 };
        uint32_t one = 1;
        int fd;

        guest_up(e);
        fd = mem_fd(MIB);
        memcpy(p, &one, 4);
        memcpy(p + 8, &r, 32);
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_MEM_TABLE, fake_ack_flags(e->d, true),
                                  p, sizeof(p), &fd, 1));
        close(fd);
        /* guest posts and kicks as if nothing happened */
        assert_int_equal(fake_guest_write(e->d, 1, "early", 5), 5);
        FAKE_OK(e->d, fake_rx_fill(e->d, RX2, 2));
        for (unsigned q = 0; q < e->d->nvqs; q++)
                kick(e, q);
        assert_int_equal(vs_port_write(e->p[2]->port, "late", 4), 0);
        assert_int_equal(e->p[1]->in_len, 0);
        for (unsigned q = 0; q < e->d->nvqs; q++)
                assert_int_equal(vs_device_queue_error(e->h->dev, q), 0);
        assert_int_equal(e->h->closed_calls, 0);
        /* the real memory back */
        FAKE_OK(e->d, fake_vu_set_mem_table(e->d, fake_ack_flags(e->d, true)));
        assert_int_equal(count_maps("memfd:hostile-mem"), 0);
        kick(e, TX1);
        host_got(e, 1, "early", 5);
        others_work(e);
}

/* ---- 12. cost counters ----------------------------------------------------------------- */

/* The counters count what they say: chains, every descriptor read (the
 * indirect one and empty ones too), bytes, kicks; and the fds a connection
 * holds are the ones its release closes. */
static void test_cost_counters(void **state)
{
        struct fake_env *e = *state;
        struct vs_queue_stats q0, q1, all;
        struct vs_vu_stats vs;
        struct seg s[3];
        int fds;

        guest_up(e);
        assert_int_equal(vs_device_get_queue_stats(e->h->dev, TX1, &q0), 0);
        post1(e, TX1, gbuf_bytes(e, "ab", 2), 2, 0);
        s[0] = (struct seg){ gbuf_bytes(e, "cd", 2), 2, 0 };
        s[1] = (struct seg){ 0, 0, 0 };
        post_chain(e, TX1, s, 2);
        s[0] = (struct seg){ gbuf_bytes(e, "ef", 2), 2, 0 };
        s[1] = (struct seg){ 0, 0, 0 };
        s[2] = (struct seg){ gbuf_bytes(e, "gh", 2), 2, 0 };
        post1(e, TX1, indirect_table(e, s, 3), 48, VS_VRING_DESC_F_INDIRECT);
        kick(e, TX1);
        host_got(e, 1, "abcdefgh", 8);
        assert_int_equal(vs_device_get_queue_stats(e->h->dev, TX1, &q1), 0);
        assert_int_equal(q1.kicks - q0.kicks, 1);
        assert_int_equal(q1.chains - q0.chains, 3);
        assert_int_equal(q1.descs - q0.descs, 1 + 2 + 4);
        assert_int_equal(q1.bytes - q0.bytes, 8);
        assert_int_equal(q1.max_chain_descs, 4);
        assert_int_equal(q1.max_call_descs, 0);
        assert_int_equal(q1.errors, 0);
        assert_int_equal(vs_device_get_queue_stats(e->h->dev, 1u << 20, &q1), -ERANGE);
        /* the port's view: its receive and transmit queues */
        vs_port_get_queue_stats(e->p[1]->port, &all, &q0);
        assert_memory_equal(&q0, &q1, sizeof(q1));
        assert_int_equal(vs_device_get_queue_stats(e->h->dev, TX1 - 1, &q1), 0);
        assert_memory_equal(&all, &q1, sizeof(q1));
        vs_device_get_stats(e->h->dev, &all);
        assert_true(all.chains >= q1.chains && all.descs >= q1.descs);
        assert_true(all.max_call_descs >= 7);
        assert_int_equal(all.max_chain_descs, 4);
        /* a broken queue counts once */
        post1(e, TX1, 0xdead00000000ull, 4, 0);
        kick(e, TX1);
        kick(e, TX1);
        assert_int_equal(vs_device_get_queue_stats(e->h->dev, TX1, &q1), 0);
        assert_int_equal(q1.errors, 1);
        vs_vu_get_stats(e->h->vu, &vs);
        assert_true(vs.messages > 20);
        assert_int_equal(vs.regions, 1);
        fds = count_fds();
        vs_vu_free(e->h->vu);
        e->h->vu = NULL;
        assert_int_equal(fds - count_fds(), vs.fds);
}

/* ---- 13. the cost of one kick ---------------------------------------------------------- */

/* Every slot of @q's avail ring names @head (a guest may do that). */
static void avail_repeat(struct fake_env *e, unsigned q, unsigned head)
{
        struct fake_vq *vq = &e->d->vq[q];

        for (unsigned i = 0; i < vq->num; i++)
                vq->avail->ring[(uint16_t)(vq->avail_idx + i) % vq->num] = (uint16_t)head;
        vq->avail_idx = (uint16_t)(vq->avail_idx + vq->num);
        __atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
}

/* Take @q's used entries without the fake's checks (a head used more than
 * once would upset them); returns how many there were. */
static unsigned used_drain_raw(struct fake_env *e, unsigned q)
{
        struct fake_vq *vq = &e->d->vq[q];
        uint16_t idx = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
        unsigned n = (uint16_t)(idx - vq->last_used);

        vq->last_used = idx;
        if (e->d->event_idx)
                __atomic_store_n(&vq->avail->ring[vq->num], idx, __ATOMIC_RELEASE);
        fake_vq_drain_calls(e->d, q);
        return n;
}

/* A table of @n descriptors chained in order, all empty but the first,
 * which holds @len bytes at @first (if @len); @flags on every entry. */
static uint64_t table_of(struct fake_env *e, unsigned n, uint64_t first, uint32_t len,
                         uint16_t flags)
{
        uint64_t gpa = galloc(e, 16ull * n);
        struct vs_vring_desc *t = (void *)gptr(e, gpa, 16ull * n);

        for (unsigned i = 0; i < n; i++)
                t[i] = (struct vs_vring_desc){ i == 0 ? first : 0, i == 0 ? len : 0,
                        (uint16_t)(flags | (i + 1 < n ? VS_VRING_DESC_F_NEXT : 0)),
                        (uint16_t)(i + 1 < n ? i + 1 : 0) };
        return gpa;
}

/* The most descriptors one call into the device read so far. */
static uint32_t max_descs(struct fake_env *e)
{
        struct vs_queue_stats st;

        vs_device_get_stats(e->h->dev, &st);
        return st.max_call_descs;
}

static void assert_call_bound(struct fake_env *e)
{
        uint32_t m = max_descs(e);

        if (m > VS_VQ_CALL_DESCS)
                fail_msg("one call into the device read %u descriptors (bound %u)",
                         m, VS_VQ_CALL_DESCS);
}

/*
 * The audit's kick: a direct chain of INDIRECT|NEXT descriptors, each
 * naming the same table of 4096 empty entries, and that head in all 256
 * avail slots (8 million descriptor reads for one kick before). INDIRECT
 * with NEXT is refused at the first descriptor.
 */
static void test_kick_cost_indirect_next(void **state)
{
        struct fake_env *e = *state;
        struct fake_vq *vq;
        unsigned idx[8];
        uint64_t t;

        guest_up(e);
        vq = &e->d->vq[TX1];
        t = table_of(e, 4096, 0, 0, 0);
        for (unsigned i = 0; i < 8; i++)
                idx[i] = desc_take(vq);
        for (unsigned i = 0; i < 8; i++)
                vq->desc[idx[i]] = (struct vs_vring_desc){ t, 4096 * 16,
                        (uint16_t)(VS_VRING_DESC_F_INDIRECT | (i < 7 ? VS_VRING_DESC_F_NEXT : 0)),
                        (uint16_t)(i < 7 ? idx[i + 1] : 0) };
        avail_repeat(e, TX1, idx[0]);
        kick(e, TX1);
        assert_call_bound(e);
        assert_int_equal(vs_device_queue_error(e->h->dev, TX1), -EPROTO);
        no_used(e, TX1);
        others_work(e);
}

/* One indirect table of 65536 empty entries, in every avail slot: each
 * costs at most VS_VQ_MAX_CHAIN reads, then the queue is broken. */
static void test_kick_cost_huge_empty_table(void **state)
{
        struct fake_env *e = *state;
        unsigned h;

        guest_up(e);
        h = post1(e, TX1, table_of(e, 65536, 0, 0, 0), 65536 * 16, VS_VRING_DESC_F_INDIRECT);
        e->d->vq[TX1].avail_idx--;
        avail_repeat(e, TX1, h);
        kick(e, TX1);
        assert_call_bound(e);
        assert_int_equal(vs_device_queue_error(e->h->dev, TX1), -E2BIG);
        others_work(e);
}

/*
 * A legal chain as long as a chain may be (one indirect descriptor and
 * 1023 entries, one byte of data in the first) in every one of the 256
 * avail slots. One kick's callback takes 4 of them (4096 reads), the rest
 * comes through the transport's schedule op, one bounded call at a time,
 * and all 256 arrive.
 */
static void test_kick_cost_same_head_everywhere(void **state)
{
        struct fake_env *e = *state;
        struct vs_queue_stats st;
        uint64_t one = 1;
        char want[256];
        unsigned h;

        guest_up(e);
        h = post1(e, TX1, table_of(e, VS_VQ_MAX_CHAIN - 1, gbuf_bytes(e, "x", 1), 1, 0),
                  (VS_VQ_MAX_CHAIN - 1) * 16, VS_VRING_DESC_F_INDIRECT);
        e->d->vq[TX1].avail_idx--;
        avail_repeat(e, TX1, h);
        assert_int_equal(write(e->d->vq[TX1].kick, &one, 8), 8);
        assert_true(vs_epoll_run_once(e->h->ep, 0) >= 1);
        assert_call_bound(e);
        assert_int_equal(vs_device_get_queue_stats(e->h->dev, TX1, &st), 0);
        assert_true(st.chains <= VS_VQ_CALL_DESCS / VS_VQ_MAX_CHAIN);
        assert_true(st.schedules >= 1);
        assert_true(fake_host_pump(e->h) >= 0);
        assert_call_bound(e);
        assert_int_equal(used_drain_raw(e, TX1), 256);
        memset(want, 'x', sizeof(want));
        host_got(e, 1, want, sizeof(want));
        assert_int_equal(vs_device_queue_error(e->h->dev, TX1), 0);
        others_work(e);
}

/*
 * Receive buffers with no room (1024 empty writable descriptors each, the
 * same head in every slot) while the host has data: each call reads within
 * the bound, the empty chains go back used, and the data waits for a real
 * buffer, then arrives.
 */
static void test_rx_cost_same_head_no_room(void **state)
{
        struct fake_env *e = *state;
        uint64_t w;
        unsigned h;

        guest_up(e);
        h = post1(e, RX1, table_of(e, VS_VQ_MAX_CHAIN - 1, 0, 0, W),
                  (VS_VQ_MAX_CHAIN - 1) * 16, VS_VRING_DESC_F_INDIRECT);
        e->d->vq[RX1].avail_idx--;
        avail_repeat(e, RX1, h);
        kick(e, RX1);
        FAKE_OK(e->d, fake_port_send(e->p[1], "hello", 5));
        assert_call_bound(e);
        assert_true(fake_host_pump(e->h) >= 0);
        assert_call_bound(e);
        assert_int_equal(used_drain_raw(e, RX1), 256);
        assert_int_equal(e->p[1]->out_len, 5);
        w = gbuf_pattern(e, 64, 1);
        h = post1(e, RX1, w, 64, W);
        kick(e, RX1);
        assert_int_equal(used_next(e, RX1, h), 5);
        assert_memory_equal(gptr(e, w, 5), "hello", 5);
        assert_int_equal(e->p[1]->out_len, 0);
        others_work(e);
}

/* Control messages the same way: one PORT_OPEN 0 in a 1024-descriptor
 * chain, in every slot of the control transmit ring. */
static void test_ctrl_cost_same_head(void **state)
{
        struct fake_env *e = *state;
        uint8_t msg[8];
        unsigned h;

        guest_up(e);
        memcpy(msg, (uint32_t[]){ 1 }, 4);
        memcpy(msg + 4, (uint16_t[]){ FAKE_C_PORT_OPEN, 0 }, 4);
        h = post1(e, CTX, table_of(e, VS_VQ_MAX_CHAIN - 1, gbuf_bytes(e, msg, 8), 8, 0),
                  (VS_VQ_MAX_CHAIN - 1) * 16, VS_VRING_DESC_F_INDIRECT);
        e->d->vq[CTX].avail_idx--;
        avail_repeat(e, CTX, h);
        kick(e, CTX);
        assert_call_bound(e);
        assert_int_equal(used_drain_raw(e, CTX), 256);
        assert_false(e->p[1]->guest_connected);
        assert_int_equal(e->p[1]->guest_close_calls, 1);
        others_work(e);
}

/*
 * Ten ports whose transmit rings hold the longest legal chain in every
 * slot, all kicked at once: each kick takes 4 chains and schedules the
 * rest, and one wake-up of the scheduling eventfd runs at most
 * VU_SCHED_PER_WAKE rings, so no loop callback reads more than
 * VU_SCHED_PER_WAKE x VS_VQ_CALL_DESCS descriptors, whatever the number of
 * busy rings; all 2560 chains arrive.
 */
static void test_schedule_many_rings(void **state)
{
        struct fake_env *e = *state;
        struct vs_device_config dc = { .max_ports = 12 };
        struct fake_driver_cfg c = { .style = FAKE_STYLE_UML, .rx_fill = FAKE_RX_NONE };
        struct fake_port *fp[11];
        char want[256];
        uint64_t one = 1, x;
        unsigned passes = 0;

        assert_int_equal(fake_host_new(&dc, &e->h), 0);
        for (unsigned id = 1; id <= 10; id++) {
                char name[32];

                snprintf(name, sizeof(name), "org.many.%u", id);
                assert_non_null(fp[id] = fake_host_add_port(e->h, (int32_t)id, name, false, NULL));
        }
        assert_int_equal(fake_driver_new(e->h, &c, &e->d), 0);
        FAKE_OK(e->d, fake_uml_boot(e->d));
        FAKE_OK(e->d, fake_uml_probe(e->d));
        for (unsigned id = 1; id <= 10; id++)
                FAKE_OK(e->d, fake_guest_open(e->d, id, true));
        x = gbuf_bytes(e, "x", 1);
        for (unsigned id = 1; id <= 10; id++) {
                unsigned q = fake_port_vq(id, false);
                unsigned h = post1(e, q, table_of(e, VS_VQ_MAX_CHAIN - 1, x, 1, 0),
                                   (VS_VQ_MAX_CHAIN - 1) * 16, VS_VRING_DESC_F_INDIRECT);

                e->d->vq[q].avail_idx--;
                avail_repeat(e, q, h);
                assert_int_equal(write(e->d->vq[q].kick, &one, 8), 8);
        }
        for (;;) {
                struct vs_queue_stats a, b;
                int n;

                vs_device_get_stats(e->h->dev, &a);
                n = vs_epoll_run_once(e->h->ep, 0);
                assert_true(n >= 0);
                if (n == 0)
                        break;
                vs_device_get_stats(e->h->dev, &b);
                if (b.descs - a.descs > (uint64_t)n * VU_SCHED_PER_WAKE * VS_VQ_CALL_DESCS)
                        fail_msg("%d callbacks read %llu descriptors", n,
                                 (unsigned long long)(b.descs - a.descs));
                assert_true(++passes < 10000);
        }
        memset(want, 'x', sizeof(want));
        for (unsigned id = 1; id <= 10; id++) {
                assert_int_equal(used_drain_raw(e, fake_port_vq(id, false)), 256);
                if (fp[id]->in_len != 256 || memcmp(fp[id]->in, want, 256))
                        fail_msg("port %u: host got %zu bytes", id, fp[id]->in_len);
        }
}

/* ---- 14. watched fds at end of file, fds that are kept ---------------------------------- */

/* Pump until the backend settles: a watch that fires without progress
 * keeps it busy and fails here. */
static void settle(struct fake_env *e)
{
        int n = fake_host_pump(e->h);

        if (n < 0)
                fail_msg("the backend never settled (%d): a watch fires without progress", n);
}

/*
 * After traffic the pacing timer (vs_device_set_timer()) may run: it sends
 * a held notification and closes the period, at most two runs. Then
 * nothing is armed.
 */
static void pacing_done(struct fake_env *e)
{
        struct vs_pace_stats a, b;

        vs_device_get_pace_stats(e->h->dev, &a);
        for (int i = 0; i < 4; i++)
                assert_true(vs_epoll_run_once(e->h->ep, 2) >= 0);
        vs_device_get_pace_stats(e->h->dev, &b);
        if (b.timer_runs - a.timer_runs > 2)
                fail_msg("the pacing timer ran %llu times after the traffic",
                         (unsigned long long)(b.timer_runs - a.timer_runs));
}

/* After settling, an idle backend dispatches nothing: a few loop passes
 * (three polls and one 10 ms wait) run no callback. */
static void assert_idle(struct fake_env *e)
{
        struct vs_epoll_stats a, b;

        settle(e);
        pacing_done(e);
        settle(e);
        vs_epoll_get_stats(e->h->ep, &a);
        for (int i = 0; i < 3; i++)
                assert_true(vs_epoll_run_once(e->h->ep, 0) >= 0);
        assert_true(vs_epoll_run_once(e->h->ep, 10) >= 0);
        vs_epoll_get_stats(e->h->ep, &b);
        if (b.dispatched != a.dispatched)
                fail_msg("an idle backend ran %llu callbacks",
                         (unsigned long long)(b.dispatched - a.dispatched));
}

static unsigned vu_fds(struct fake_env *e)
{
        struct vs_vu_stats st;

        vs_vu_get_stats(e->h->vu, &st);
        return st.fds;
}

/* Ring @q's kick fd becomes @fd (ours is closed by the caller). */
static void set_kick(struct fake_env *e, unsigned q, int fd)
{
        FAKE_OK(e->d, fake_vu_fd(e->d, FAKE_VU_SET_VRING_KICK, fake_ack_flags(e->d, true),
                                 q, fd));
}

/* Finding 3: a pipe's read end as a kick fd, its writer closed. The watch
 * goes with the fd; the connection and the other rings stay. */
static void test_kick_fd_pipe_eof(void **state)
{
        struct fake_env *e = *state;
        unsigned fds;
        int p[2];

        guest_up(e);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        set_kick(e, TX1, p[0]);
        close(p[0]);
        fds = vu_fds(e);
        close(p[1]);
        assert_idle(e);
        assert_int_equal(vu_fds(e), fds - 1);
        assert_int_equal(e->h->closed_calls, 0);
        others_work(e);
}

/* A last kick and then the writer leaves: the kick is served first. */
static void test_kick_fd_pipe_data_then_eof(void **state)
{
        struct fake_env *e = *state;
        uint64_t one = 1;
        int p[2];

        guest_up(e);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        set_kick(e, TX1, p[0]);
        close(p[0]);
        post1(e, TX1, gbuf_bytes(e, "late", 4), 4, 0);
        assert_int_equal(write(p[1], &one, 8), 8);
        close(p[1]);
        assert_idle(e);
        host_got(e, 1, "late", 4);
        others_work(e);
}

/* A semaphore eventfd reads 1 at a time: with a huge count it is readable
 * after every read. One wake-up per frontend write, not per unit. */
static void test_kick_fd_semaphore(void **state)
{
        struct fake_env *e = *state;
        uint64_t big = 0xfffffffffffffffeull, one = 1;
        struct vs_queue_stats a, b;
        int fd;

        guest_up(e);
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
        assert_true(fd >= 0);
        set_kick(e, TX1, fd);
        assert_int_equal(vs_device_get_queue_stats(e->h->dev, TX1, &a), 0);
        assert_int_equal(write(fd, &big, 8), 8);
        assert_idle(e);
        /* still a kick fd: a write is a kick */
        post1(e, TX1, gbuf_bytes(e, "sem", 3), 3, 0);
        assert_int_equal(write(fd, &one, 8), 8);
        assert_idle(e);
        host_got(e, 1, "sem", 3);
        assert_int_equal(vs_device_get_queue_stats(e->h->dev, TX1, &b), 0);
        assert_true(b.kicks - a.kicks <= 4);
        close(fd);
        others_work(e);
}

/* An eventfd kick fd is read once, to learn that it is one; later kicks
 * cost no read (a syscall each) and still each run the ring. */
static void test_kick_eventfd_read_once(void **state)
{
        struct fake_env *e = *state;
        uint64_t one = 1, left = 0;
        char want[10];
        int fd;

        guest_up(e);
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(fd >= 0);
        set_kick(e, TX1, fd);
        for (unsigned i = 0; i < sizeof(want); i++) {
                want[i] = (char)('a' + i);
                post1(e, TX1, gbuf_bytes(e, &want[i], 1), 1, 0);
                assert_int_equal(write(fd, &one, 8), 8);
                assert_idle(e);
                host_got(e, 1, want, i + 1);
        }
        /* the first kick was read, the nine after it were not */
        assert_int_equal(read(fd, &left, 8), 8);
        assert_int_equal(left, sizeof(want) - 1);
        close(fd);
        others_work(e);
}

/* An fd that is always readable but cannot be read (an epoll fd with a
 * ready fd in it: read() fails with EINVAL): dropped, not spun on. */
static void test_kick_fd_unreadable(void **state)
{
        struct fake_env *e = *state;
        struct epoll_event ev = { .events = EPOLLIN };
        unsigned fds;
        int ep, efd;

        guest_up(e);
        ep = epoll_create1(EPOLL_CLOEXEC);
        efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(ep >= 0 && efd >= 0);
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev), 0);
        fds = vu_fds(e);
        set_kick(e, TX1, ep);
        assert_idle(e);
        assert_int_equal(vu_fds(e), fds - 1);
        close(ep);
        close(efd);
        others_work(e);
}

/* The backend channel's other end goes away: the channel is dropped. */
static void test_backend_channel_eof(void **state)
{
        struct fake_env *e = *state;
        unsigned fds;

        guest_up(e);
        assert_true(e->d->req >= 0);
        fds = vu_fds(e);
        close(e->d->req);
        e->d->req = -1;
        assert_idle(e);
        assert_int_equal(vu_fds(e), fds - 1);
        others_work(e);
}

/* A pipe at end of file as the backend channel: dropped too. */
static void test_backend_channel_pipe(void **state)
{
        struct fake_env *e = *state;
        int p[2];

        fe_up(e);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fake_env_send(e, FAKE_VU_SET_BACKEND_REQ_FD, V, 0, NULL, 0, &p[0], 1);
        close(p[0]);
        close(p[1]);
        assert_idle(e);
        fake_env_assert_open(e);
        assert_int_equal(vu_fds(e), 3);         /* the socket, our eventfd and timerfd */
}

/*
 * Call (and err) fds are written, never read: an eventfd, or a socket as
 * UML's. A pipe whose reader left would raise SIGPIPE in an embedder that
 * does not ignore it; a regular file would grow by 8 bytes per interrupt.
 * Both are refused: the connection closes and nothing is written.
 */
static void call_fd_refused(struct fake_env *e, uint32_t req, int fd)
{
        uint64_t q = TX1;

        FAKE_OK(e->d, fake_vu_send(e->d, req, V, &q, 8, &fd, 1));
        post1(e, TX1, gbuf_bytes(e, "x", 1), 1, 0);
        kick(e, TX1);
        fake_env_expect_closed(e);
}

static void test_call_fd_pipe_refused(void **state)
{
        struct fake_env *e = *state;
        void (*old)(int) = signal(SIGPIPE, SIG_DFL);
        int p[2];

        guest_up(e);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        close(p[0]);
        call_fd_refused(e, FAKE_VU_SET_VRING_CALL, p[1]);
        close(p[1]);
        signal(SIGPIPE, old);
}

static void test_call_fd_file_refused(void **state)
{
        struct fake_env *e = *state;
        struct stat st;
        int fd;

        guest_up(e);
        fd = mem_fd(0);
        call_fd_refused(e, FAKE_VU_SET_VRING_CALL, fd);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_size, 0);
        close(fd);
}

static void test_err_fd_file_refused(void **state)
{
        struct fake_env *e = *state;
        int fd;

        guest_up(e);
        fd = mem_fd(0);
        call_fd_refused(e, FAKE_VU_SET_VRING_ERR, fd);
        close(fd);
}

/*
 * Rings the device does not have keep no fd: QEMU sends CALL and ERR for
 * every ring up to its num_vqs (accepted, closed at once); a frontend that
 * names all 256 rings with KICK, CALL and ERR pins nothing.
 */
static void test_extra_rings_keep_no_fds(void **state)
{
        struct fake_env *e = *state;
        const uint32_t reqs[] = { FAKE_VU_SET_VRING_KICK, FAKE_VU_SET_VRING_CALL,
                                  FAKE_VU_SET_VRING_ERR };
        unsigned fds;

        fe_up(e);
        fds = vu_fds(e);
        for (unsigned q = NQ; q < 256; q++)
                for (unsigned r = 0; r < 3; r++) {
                        fake_env_send_vring(e, reqs[r], q, 64, e->efd);
                        assert_true(fake_host_pump(e->h) >= 0);
                }
        fake_env_assert_open(e);
        assert_int_equal(vu_fds(e), fds);
        assert_int_equal(count_fds(), fds0);
        /* the device's own rings still keep theirs */
        fake_env_send_vring(e, FAKE_VU_SET_VRING_CALL, NQ - 1, 64, e->efd);
        fake_env_assert_open(e);
        assert_int_equal(vu_fds(e), fds + 1);
}

/* ---- 15. guest memory shrunk under the device ----------------------------------------- */

/*
 * Finding 4: the frontend truncates its memory file (a memfd created
 * without sealing, as UML's file cannot be sealed) after SET_MEM_TABLE,
 * then kicks. With the guard installed (the daemon does; cmocka puts its
 * own SIGBUS handler around each test, so the test installs it again),
 * the process lives, the connection fails with -EFAULT and lets go of
 * everything; the fake must not touch its own mapping of the file after.
 */
static void test_mem_truncated_then_kick(void **state)
{
        struct fake_env *e = *state;

        assert_int_equal(vs_sigbus_guard_install(), 0);
        guest_up(e);
        post1(e, TX1, gbuf_bytes(e, "doomed", 6), 6, 0);
        assert_int_equal(ftruncate(e->d->memfd, 0), 0);
        kick(e, TX1);
        fake_env_expect_closed(e);
        assert_int_equal(e->h->closed_err, -EFAULT);
        vs_vu_free(e->h->vu);
        e->h->vu = NULL;
        assert_int_equal(count_maps("memfd:fake-guest"), 1);   /* the fake's own */
}

/* The same hit by a host write (the device copies into the guest): the
 * write survives, and the connection fails at its next event. */
static void test_mem_truncated_then_host_write(void **state)
{
        struct fake_env *e = *state;

        assert_int_equal(vs_sigbus_guard_install(), 0);
        guest_up(e);
        post1(e, RX1, gbuf_pattern(e, 64, 1), 64, W);
        kick(e, RX1);
        assert_int_equal(ftruncate(e->d->memfd, 4096), 0);
        assert_false(vs_vu_memory_lost(e->h->vu));
        assert_true(vs_port_write(e->p[1]->port, "lost", 4) >= 0);
        assert_int_equal(e->h->closed_calls, 0);
        /* what an embedder copies from guest iovecs now is not guest data */
        assert_true(vs_vu_memory_lost(e->h->vu));
        kick(e, TX1);
        fake_env_expect_closed(e);
        assert_int_equal(e->h->closed_err, -EFAULT);
}

/* A memfd that allows sealing is sealed by SET_MEM_TABLE: the frontend
 * cannot shrink it afterwards. */
static void test_mem_sealable_gets_sealed(void **state)
{
        struct fake_env *e = *state;
        struct fake_vu_region r = { 0, MIB, UVA, 0 };
        uint8_t p[8 + 32] = { 0 };
        uint32_t one = 1;
        int fd;

        fe_up(e);
        fake_env_ack_on(e);
        fd = memfd_create("hostile-mem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, MIB), 0);
        memcpy(p, &one, 4);
        memcpy(p + 8, &r, 32);
        FAKE_OK(e->d, fake_vu_msg(e->d, FAKE_VU_SET_MEM_TABLE, NR, p, sizeof(p), &fd, 1));
        assert_true(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK);
        assert_int_equal(ftruncate(fd, 0), -1);
        assert_int_equal(errno, EPERM);
        close(fd);
        fake_env_assert_open(e);
}

/* ---- the cost oracles, after every case ------------------------------------------------ */

static uint32_t worst_call;     /* most descriptors one call read, any case */
static unsigned cases_checked;

/*
 * Whatever the case did: no call into the device read more descriptors
 * than the stated bound (virtq.h), and the backend, once settled, is idle:
 * no callback in a few loop passes.
 */
static void check_costs(struct fake_env *e)
{
        uint32_t m = max_descs(e);

        if (m > worst_call)
                worst_call = m;
        assert_call_bound(e);
        assert_idle(e);
        cases_checked++;
}

#define T(f) cmocka_unit_test_setup_teardown(f, fake_env_setup, teardown)

int main(void)
{
        static const struct CMUnitTest cases[] = {
                /* memory tables */
                T(test_mem_adjacent_ok), T(test_mem_pipe), T(test_mem_socket),
                T(test_mem_dev_null), T(test_mem_bad_replacement_keeps_nothing_mapped),
                /* rings */
                T(test_ring_straddles_regions), T(test_ring_in_second_region_ok),
                T(test_ring_edges), T(test_ring_size_32768_ok),
                T(test_ring_shrunk_while_running),
                /* vring indices */
                T(test_vring_nofd_inert), T(test_vring_bad_size_inert_ring),
                /* fd counts */
                T(test_fds_in_second_piece),
                /* cut short */
                T(test_cut_mem_table_with_fd), T(test_cut_after_good),
                T(test_stall_mid_message), T(test_burst_of_messages),
                /* control messages */
                T(test_ctrl_ports_never_added), T(test_ctrl_unknown_events),
                T(test_ctrl_open_removed_port), T(test_ctrl_64k_buffer),
                T(test_ctrl_header_in_pieces), T(test_ctrl_short_and_write_only),
                /* receive buffers */
                T(test_rx_read_only), T(test_rx_readable_then_writable),
                T(test_rx_read_only_recv_fd), T(test_rx_writable_then_readable),
                T(test_rx_zero_length), T(test_rx_one_byte_chain),
                T(test_rx_indirect), T(test_rx_loop),
                /* transmit buffers */
                T(test_tx_write_only), T(test_tx_zero_length),
                T(test_tx_one_byte_chain), T(test_tx_one_byte_chain_too_long),
                T(test_tx_self_loop), T(test_tx_self_loop_data),
                T(test_tx_loop_of_three), T(test_tx_loop_of_three_data),
                T(test_tx_indirect),
                T(test_tx_indirect_nested), T(test_tx_indirect_len_odd),
                T(test_tx_indirect_len_zero), T(test_tx_indirect_outside),
                T(test_tx_indirect_loop), T(test_tx_indirect_next_range),
                T(test_tx_indirect_across_end),
                /* kick storms */
                T(test_kick_storm_empty), T(test_kick_storm_with_buffers),
                T(test_kick_storm_throttled), T(test_kick_storm_rx_and_broken),
                /* avail index */
                T(test_avail_jump_tx), T(test_avail_jump_rx),
                T(test_avail_full_ring_ok), T(test_avail_jump_ctrl_tx),
                /* overlap, memory pulled */
                T(test_rings_overlap_garbage), T(test_rings_shared_between_queues),
                T(test_mem_pulled_from_under_rings),
                /* counters */
                T(test_cost_counters),
                /* the cost of one kick */
                T(test_kick_cost_indirect_next), T(test_kick_cost_huge_empty_table),
                T(test_kick_cost_same_head_everywhere), T(test_rx_cost_same_head_no_room),
                T(test_ctrl_cost_same_head), T(test_schedule_many_rings),
                /* watched fds, kept fds */
                T(test_kick_fd_pipe_eof), T(test_kick_fd_pipe_data_then_eof),
                T(test_kick_fd_semaphore), T(test_kick_eventfd_read_once),
                T(test_kick_fd_unreadable),
                T(test_backend_channel_eof), T(test_backend_channel_pipe),
                T(test_call_fd_pipe_refused), T(test_call_fd_file_refused),
                T(test_err_fd_file_refused), T(test_extra_rings_keep_no_fds),
                /* memory shrunk */
                T(test_mem_truncated_then_kick), T(test_mem_truncated_then_host_write),
                T(test_mem_sealable_gets_sealed),
        };

        struct CMUnitTest tests[FAKE_ENV_ARRAY_SIZE(cases) + FAKE_ENV_ARRAY_SIZE(bad_mems) +
                                FAKE_ENV_ARRAY_SIZE(bad_sizes) + FAKE_ENV_ARRAY_SIZE(vring_rows) +
                                FAKE_ENV_ARRAY_SIZE(bad_fds) + FAKE_ENV_ARRAY_SIZE(cut_rows)];
        unsigned n = FAKE_ENV_ARRAY_SIZE(cases);

        memcpy(tests, cases, sizeof(cases));
        n = FAKE_ENV_ROWS(tests, n, test_bad_mem, bad_mems, NULL, teardown);
        n = FAKE_ENV_ROWS(tests, n, test_bad_size, bad_sizes, NULL, teardown);
        n = FAKE_ENV_ROWS(tests, n, test_vring_row, vring_rows, NULL, teardown);
        n = FAKE_ENV_ROWS(tests, n, test_bad_fds, bad_fds, NULL, teardown);
        FAKE_ENV_ROWS(tests, n, test_cut, cut_rows, NULL, teardown);
        int failed = cmocka_run_group_tests_name("tests", tests, NULL, NULL);

        printf("# cost oracles: %u cases; at most %u descriptors read in one call "
               "(bound %u); 0 callbacks while idle after each\n",
               cases_checked, worst_call, VS_VQ_CALL_DESCS);
        return failed;
}
