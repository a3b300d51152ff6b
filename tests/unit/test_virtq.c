/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, device side. The test plays the driver: it writes
 * descriptors and the avail ring in real guest memory registered with
 * vs_mem_add_host() and checks what the device pops and pushes.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <cmocka.h>

#include "virtq/virtq.h"

#define RAM_GPA 0x100000ull
#define RAM_UVA 0x7f0000100000ull
#define RAM_SIZE 0x40000ull
/* Ring layout for queues of up to 256 entries. */
#define DESC_GPA RAM_GPA
#define AVAIL_GPA (RAM_GPA + 0x1000)
#define USED_GPA (RAM_GPA + 0x2000)
#define INDIRECT_GPA (RAM_GPA + 0x3000)
#define BUF_GPA (RAM_GPA + 0x8000)
/* Tiny regions right after the RAM, for buffers that span regions. */
#define TINY_GPA (RAM_GPA + RAM_SIZE)
#define TINY_UVA 0x7f1000000000ull
#define TINY_N (VS_MEM_MAX_REGIONS - 1)

struct fx {
        uint8_t *ram;
        uint8_t tiny[2 * TINY_N];
        struct vs_mem mem;
        struct vs_vq vq;
        struct vs_vring_desc *desc;
        struct vs_vring_avail *avail;
        struct vs_vring_used *used;
        uint16_t avail_idx;
        struct vs_vq_elem elem;
};

static void *host(struct fx *f, uint64_t gpa)
{
        return f->ram + (gpa - RAM_GPA);
}

static uint64_t buf(unsigned k)
{
        return BUF_GPA + 0x100ull * k;
}

/* Configure and map a queue of @num entries at the standard layout. */
static void fx_queue(struct fx *f, unsigned num, bool event_idx,
                     bool indirect)
{
        memset(f->ram, 0, 0x8000);
        vs_vq_init(&f->vq);
        assert_int_equal(vs_vq_set_num(&f->vq, num), 0);
        vs_vq_set_addr(&f->vq, DESC_GPA, AVAIL_GPA, USED_GPA, false);
        vs_vq_set_base(&f->vq, 0);
        f->vq.event_idx = event_idx;
        f->vq.indirect = indirect;
        f->vq.enabled = true;
        assert_int_equal(vs_vq_map(&f->vq, &f->mem), 0);
        f->avail_idx = 0;
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->ram = aligned_alloc(4096, RAM_SIZE);
        assert_non_null(f->ram);
        memset(f->ram, 0, RAM_SIZE);
        f->desc = host(f, DESC_GPA);
        f->avail = host(f, AVAIL_GPA);
        f->used = host(f, USED_GPA);
        vs_mem_init(&f->mem);
        assert_int_equal(vs_mem_add_host(&f->mem, f->ram, RAM_GPA, RAM_SIZE,
                                         RAM_UVA), 0);
        fx_queue(f, 16, false, true);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        vs_mem_clear(&f->mem);
        free(f->ram);
        free(f);
        return 0;
}

/* Add TINY_N adjacent one-byte regions at TINY_GPA, apart on the host. */
static void add_tiny_regions(struct fx *f)
{
        for (unsigned i = 0; i < TINY_N; i++)
                assert_int_equal(vs_mem_add_host(&f->mem, &f->tiny[2 * i],
                                                 TINY_GPA + i, 1,
                                                 TINY_UVA + i), 0);
}

static void set_desc(struct vs_vring_desc *t, unsigned i, uint64_t addr,
                     uint32_t len, uint16_t flags, uint16_t next)
{
        t[i].addr = htole64(addr);
        t[i].len = htole32(len);
        t[i].flags = htole16(flags);
        t[i].next = htole16(next);
}

/* Make chain @head available, as a driver would. */
static void avail_add(struct fx *f, uint16_t head)
{
        uint16_t num = f->vq.num;

        f->avail->ring[f->avail_idx & (num - 1)] = htole16(head);
        f->avail_idx++;
        __atomic_store_n(&f->avail->idx, htole16(f->avail_idx),
                         __ATOMIC_RELEASE);
}

static void set_avail_idx(struct fx *f, uint16_t idx)
{
        f->avail_idx = idx;
        f->avail->idx = htole16(idx);
}

static uint16_t *used_event(struct fx *f)
{
        return &f->avail->ring[f->vq.num];
}

static uint16_t avail_event(struct fx *f)
{
        return le16toh(*(uint16_t *)&f->used->ring[f->vq.num]);
}

static int pop(struct fx *f)
{
        return vs_vq_pop(&f->vq, &f->mem, &f->elem);
}

#define ANY UINT32_MAX   /* expect_chain: not checked */

/* The next chain is @head, @out_num readable descriptors of @out_len bytes
 * and @in_num writable ones of @in_len (ANY: whatever it is). */
static void expect_chain(struct fx *f, uint32_t head, uint32_t out_num,
                         uint32_t out_len, uint32_t in_num, uint32_t in_len)
{
        const struct vs_vq_elem *e = &f->elem;

        assert_int_equal(pop(f), 1);
        if (head != ANY)
                assert_int_equal(e->head, head);
        if (out_num != ANY)
                assert_int_equal(e->out_num, out_num);
        if (out_len != ANY)
                assert_int_equal(e->out_len, out_len);
        if (in_num != ANY)
                assert_int_equal(e->in_num, in_num);
        if (in_len != ANY)
                assert_int_equal(e->in_len, in_len);
}

/* The queue is broken with @err and stays so. */
static void assert_broken(struct fx *f, int err)
{
        assert_int_equal(f->vq.error, err);
        assert_false(vs_vq_ready(&f->vq));
        assert_false(vs_vq_has_avail(&f->vq));
        assert_int_equal(pop(f), err);
}

/* ---- basic chains ----------------------------------------------------- */

/* Chain @head made available breaks the queue with @err. */
static void expect_broken(struct fx *f, uint16_t head, int err)
{
        avail_add(f, head);
        assert_int_equal(pop(f), err);
        assert_broken(f, err);
}

static void test_empty(void **state)
{
        struct fx *f = *state;

        assert_true(vs_vq_ready(&f->vq));
        assert_false(vs_vq_has_avail(&f->vq));
        assert_int_equal(pop(f), 0);
        assert_int_equal(vs_vq_get_base(&f->vq), 0);
}

static void test_single(void **state)
{
        struct fx *f = *state;

        set_desc(f->desc, 3, buf(0), 100, 0, 0);
        avail_add(f, 3);
        assert_true(vs_vq_has_avail(&f->vq));
        expect_chain(f, 3, 1, 100, 0, 0);
        assert_ptr_equal(f->elem.iov[0].iov_base, host(f, buf(0)));
        assert_int_equal(f->elem.iov[0].iov_len, 100);
        assert_int_equal(pop(f), 0);
        assert_int_equal(vs_vq_get_base(&f->vq), 1);
}

static void test_direct_chain_push(void **state)
{
        struct fx *f = *state;
        struct vs_vq_elem *e = &f->elem;

        /* 2 readable then 2 writable, linked out of order. */
        set_desc(f->desc, 5, buf(0), 10, VS_VRING_DESC_F_NEXT, 2);
        set_desc(f->desc, 2, buf(1), 20, VS_VRING_DESC_F_NEXT, 9);
        set_desc(f->desc, 9, buf(2), 30,
                 VS_VRING_DESC_F_NEXT | VS_VRING_DESC_F_WRITE, 0);
        set_desc(f->desc, 0, buf(3), 40, VS_VRING_DESC_F_WRITE, 7);
        avail_add(f, 5);
        expect_chain(f, 5, 2, 30, 2, 70);
        assert_ptr_equal(e->iov[0].iov_base, host(f, buf(0)));
        assert_ptr_equal(e->iov[1].iov_base, host(f, buf(1)));
        assert_ptr_equal(e->iov[2].iov_base, host(f, buf(2)));
        assert_ptr_equal(e->iov[3].iov_base, host(f, buf(3)));
        assert_int_equal(e->iov[3].iov_len, 40);

        vs_vq_push(&f->vq, 5, 55);
        assert_int_equal(le16toh(f->used->idx), 1);
        assert_int_equal(le32toh(f->used->ring[0].id), 5);
        assert_int_equal(le32toh(f->used->ring[0].len), 55);
        assert_int_equal(f->vq.used_idx, 1);
}

static void test_writable_only_and_zero_len(void **state)
{
        struct fx *f = *state;
        struct vs_vq_elem *e = &f->elem;

        /* Zero-length descriptors give no iovec, even at a bad address. */
        set_desc(f->desc, 0, buf(0), 8, VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, 0xdead0000, 0, VS_VRING_DESC_F_NEXT, 2);
        set_desc(f->desc, 2, buf(1), 8,
                 VS_VRING_DESC_F_WRITE | VS_VRING_DESC_F_NEXT, 3);
        set_desc(f->desc, 3, 0, 0, VS_VRING_DESC_F_WRITE, 0);
        avail_add(f, 0);
        expect_chain(f, ANY, 1, ANY, 1, ANY);

        set_desc(f->desc, 4, buf(2), 64, VS_VRING_DESC_F_WRITE, 0);
        avail_add(f, 4);
        expect_chain(f, 4, 0, ANY, 1, 64);
        assert_ptr_equal(e->iov[0].iov_base, host(f, buf(2)));
}

static void test_chain_of_queue_size(void **state)
{
        struct fx *f = *state;

        /* Exactly num descriptors is the longest legal chain. */
        for (unsigned i = 0; i < 16; i++)
                set_desc(f->desc, i, buf(i), 1,
                         i < 15 ? VS_VRING_DESC_F_NEXT : 0,
                         (uint16_t)(i + 1));
        avail_add(f, 0);
        expect_chain(f, ANY, 16, 16, ANY, ANY);
}

/* ---- indirect ----------------------------------------------------------- */

static void test_indirect(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);
        struct vs_vq_elem *e = &f->elem;

        set_desc(it, 0, buf(0), 10, VS_VRING_DESC_F_NEXT, 2);
        set_desc(it, 2, buf(1), 20, VS_VRING_DESC_F_NEXT, 1);
        set_desc(it, 1, buf(2), 30, VS_VRING_DESC_F_WRITE, 0);
        /* The WRITE flag of the table descriptor itself is ignored. */
        set_desc(f->desc, 7, INDIRECT_GPA, 3 * 16,
                 VS_VRING_DESC_F_INDIRECT | VS_VRING_DESC_F_WRITE, 0);
        avail_add(f, 7);
        expect_chain(f, 7, 2, 30, 1, 30);
        assert_ptr_equal(e->iov[2].iov_base, host(f, buf(2)));
}

static void test_indirect_after_direct(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);

        /* Direct readable descriptors followed by an indirect table. */
        set_desc(it, 0, buf(1), 16, VS_VRING_DESC_F_WRITE, 0);
        set_desc(f->desc, 0, buf(0), 8, VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, INDIRECT_GPA, 16, VS_VRING_DESC_F_INDIRECT, 0);
        avail_add(f, 0);
        expect_chain(f, ANY, 1, ANY, 1, ANY);
        assert_ptr_equal(f->elem.iov[1].iov_base, host(f, buf(1)));
}

static void test_indirect_unaligned_table(void **state)
{
        struct fx *f = *state;
        uint64_t gpa = INDIRECT_GPA + 4;
        struct vs_vring_desc d[2];

        /* The spec does not require alignment: build it byte-wise. */
        set_desc(d, 0, buf(0), 5, VS_VRING_DESC_F_NEXT, 1);
        set_desc(d, 1, buf(1), 6, VS_VRING_DESC_F_WRITE, 0);
        memcpy(host(f, gpa), d, sizeof(d));
        set_desc(f->desc, 0, gpa, sizeof(d), VS_VRING_DESC_F_INDIRECT, 0);
        avail_add(f, 0);
        expect_chain(f, ANY, ANY, 5, ANY, 6);
}

static void test_indirect_without_feature(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);

        fx_queue(f, 16, false, false);
        set_desc(it, 0, buf(0), 10, 0, 0);
        set_desc(f->desc, 0, INDIRECT_GPA, 16, VS_VRING_DESC_F_INDIRECT, 0);
        expect_broken(f, 0, -EPROTO);
}

static void test_indirect_nested(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);

        set_desc(it, 0, buf(0), 10, VS_VRING_DESC_F_NEXT, 1);
        set_desc(it, 1, INDIRECT_GPA + 0x100, 16, VS_VRING_DESC_F_INDIRECT, 0);
        set_desc(f->desc, 0, INDIRECT_GPA, 32, VS_VRING_DESC_F_INDIRECT, 0);
        expect_broken(f, 0, -EPROTO);
}

static void test_indirect_bad_len(void **state)
{
        struct fx *f = *state;
        static const uint32_t lens[] = { 0, 8, 24, 17 };

        for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                fx_queue(f, 16, false, true);
                set_desc(f->desc, 0, INDIRECT_GPA, lens[i],
                         VS_VRING_DESC_F_INDIRECT, 0);
                expect_broken(f, 0, -EINVAL);
        }
}

static void test_indirect_fault(void **state)
{
        struct fx *f = *state;

        /* Table runs off the end of guest memory. */
        set_desc(f->desc, 0, RAM_GPA + RAM_SIZE - 16, 32,
                 VS_VRING_DESC_F_INDIRECT, 0);
        expect_broken(f, 0, -EFAULT);

        /* Table wraps the address space. */
        fx_queue(f, 16, false, true);
        set_desc(f->desc, 0, UINT64_MAX - 15, 32, VS_VRING_DESC_F_INDIRECT, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), -EFAULT);
}

static void test_indirect_table_across_regions(void **state)
{
        struct fx *f = *state;
        uint64_t gpa = TINY_GPA - (16 - TINY_N);

        /* Every byte is mapped, but not in one region. */
        add_tiny_regions(f);
        memset(host(f, gpa), 0, 16 - TINY_N);
        set_desc(f->desc, 0, gpa, 16, VS_VRING_DESC_F_INDIRECT, 0);
        expect_broken(f, 0, -EFAULT);
}

static void test_indirect_range_and_loop(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);

        /* next must be below the table's entry count, not the queue's. */
        set_desc(it, 0, buf(0), 10, VS_VRING_DESC_F_NEXT, 1);
        set_desc(it, 1, buf(1), 10, VS_VRING_DESC_F_NEXT, 2);
        set_desc(f->desc, 0, INDIRECT_GPA, 32, VS_VRING_DESC_F_INDIRECT, 0);
        expect_broken(f, 0, -ERANGE);

        /* A loop inside the table: 0 -> 1 -> 0. */
        fx_queue(f, 16, false, true);
        set_desc(it, 0, buf(0), 10, VS_VRING_DESC_F_NEXT, 1);
        set_desc(it, 1, buf(1), 10, VS_VRING_DESC_F_NEXT, 0);
        set_desc(f->desc, 0, INDIRECT_GPA, 32, VS_VRING_DESC_F_INDIRECT, 0);
        expect_broken(f, 0, -ELOOP);
}

/* ---- chain errors --------------------------------------------------------- */

static void test_loop(void **state)
{
        struct fx *f = *state;

        set_desc(f->desc, 0, buf(0), 1, VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, buf(1), 1, VS_VRING_DESC_F_NEXT, 2);
        set_desc(f->desc, 2, buf(2), 1, VS_VRING_DESC_F_NEXT, 0);
        expect_broken(f, 0, -ELOOP);

        /* A zero-length self loop makes no iovecs and must still stop. */
        fx_queue(f, 16, false, true);
        set_desc(f->desc, 4, 0, 0, VS_VRING_DESC_F_NEXT, 4);
        avail_add(f, 4);
        assert_int_equal(pop(f), -ELOOP);
}

static void test_next_out_of_range(void **state)
{
        struct fx *f = *state;

        set_desc(f->desc, 0, buf(0), 1, VS_VRING_DESC_F_NEXT, 16);
        expect_broken(f, 0, -ERANGE);
}

static void test_head_out_of_range(void **state)
{
        struct fx *f = *state;

        expect_broken(f, 16, -ERANGE);
        /* Nothing was consumed. */
        assert_int_equal(vs_vq_get_base(&f->vq), 0);
}

static void test_buffer_fault(void **state)
{
        struct fx *f = *state;

        /* Unmapped. */
        set_desc(f->desc, 0, 0x1000, 16, 0, 0);
        expect_broken(f, 0, -EFAULT);

        /* Runs past the end of guest memory. */
        fx_queue(f, 16, false, true);
        set_desc(f->desc, 0, RAM_GPA + RAM_SIZE - 8, 9, 0, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), -EFAULT);

        /* addr + len wraps around to mapped memory. */
        fx_queue(f, 16, false, true);
        set_desc(f->desc, 0, UINT64_MAX - 7, 0x100010, 0, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), -EFAULT);

        /* A good first descriptor does not save a bad second one. */
        fx_queue(f, 16, false, true);
        set_desc(f->desc, 0, buf(0), 8, VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, RAM_GPA + RAM_SIZE, 8, VS_VRING_DESC_F_WRITE, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), -EFAULT);
}

static void test_readable_after_writable(void **state)
{
        struct fx *f = *state;

        set_desc(f->desc, 0, buf(0), 8,
                 VS_VRING_DESC_F_WRITE | VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, buf(1), 8, 0, 0);
        expect_broken(f, 0, -EBADMSG);

        /* Even when both are empty. */
        fx_queue(f, 16, false, true);
        set_desc(f->desc, 0, 0, 0,
                 VS_VRING_DESC_F_WRITE | VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, 0, 0, 0, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), -EBADMSG);
}

static void test_readable_after_writable_indirect(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);

        /* The order spans the direct part and the table. */
        set_desc(it, 0, buf(1), 8, 0, 0);
        set_desc(f->desc, 0, buf(0), 8,
                 VS_VRING_DESC_F_WRITE | VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, INDIRECT_GPA, 16, VS_VRING_DESC_F_INDIRECT, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), -EBADMSG);
}

static void test_avail_jump(void **state)
{
        struct fx *f = *state;

        /* A full ring is fine... */
        for (unsigned i = 0; i < 16; i++) {
                set_desc(f->desc, i, buf(i), 4, 0, 0);
                avail_add(f, (uint16_t)i);
        }
        assert_int_equal(pop(f), 1);
        assert_int_equal(pop(f), 1);
        /* ...more than num ahead is not. */
        set_avail_idx(f, (uint16_t)(f->vq.last_avail + 17));
        assert_int_equal(pop(f), -EOVERFLOW);
        assert_broken(f, -EOVERFLOW);

        /* Going backwards is the same as far ahead. */
        fx_queue(f, 16, false, true);
        set_avail_idx(f, 0xffff);
        assert_true(vs_vq_has_avail(&f->vq));
        assert_int_equal(pop(f), -EOVERFLOW);
}

/* ---- regions and the iovec cap ------------------------------------------ */

static void test_split_one_byte_regions(void **state)
{
        struct fx *f = *state;
        struct vs_vq_elem *e = &f->elem;

        /* 3 bytes at the end of RAM, then one per tiny region. */
        add_tiny_regions(f);
        set_desc(f->desc, 0, TINY_GPA - 3, 3 + TINY_N, VS_VRING_DESC_F_WRITE,
                 0);
        avail_add(f, 0);
        expect_chain(f, ANY, ANY, ANY, 1 + TINY_N, 3 + TINY_N);
        assert_ptr_equal(e->iov[0].iov_base, host(f, TINY_GPA - 3));
        assert_int_equal(e->iov[0].iov_len, 3);
        for (unsigned i = 0; i < TINY_N; i++) {
                assert_ptr_equal(e->iov[1 + i].iov_base, &f->tiny[2 * i]);
                assert_int_equal(e->iov[1 + i].iov_len, 1);
        }

        /* One byte past the last region. */
        set_desc(f->desc, 1, TINY_GPA, TINY_N + 1, 0, 0);
        avail_add(f, 1);
        assert_int_equal(pop(f), -EFAULT);
}

/* A chain of @n descriptors of TINY_N iovecs each, plus @extra 1-iovec ones. */
static void chain_of_tiny(struct fx *f, unsigned n, unsigned extra)
{
        unsigned total = n + extra;

        for (unsigned i = 0; i < total; i++) {
                uint16_t flags = i + 1 < total ? VS_VRING_DESC_F_NEXT : 0;

                if (i < n)
                        set_desc(f->desc, i, TINY_GPA, TINY_N, flags,
                                 (uint16_t)(i + 1));
                else
                        set_desc(f->desc, i, buf(i), 4, flags,
                                 (uint16_t)(i + 1));
        }
        avail_add(f, 0);
}

static void test_iov_cap(void **state)
{
        struct fx *f = *state;
        unsigned n = VS_VQ_MAX_IOV / TINY_N;
        unsigned rest = VS_VQ_MAX_IOV % TINY_N;

        add_tiny_regions(f);
        fx_queue(f, 256, false, true);
        /* Exactly VS_VQ_MAX_IOV iovecs. */
        chain_of_tiny(f, n, rest);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.out_num, VS_VQ_MAX_IOV);

        /* One more. */
        fx_queue(f, 256, false, true);
        chain_of_tiny(f, n, rest + 1);
        assert_int_equal(pop(f), -E2BIG);
        assert_broken(f, -E2BIG);

        /* The cap also holds when the last descriptor straddles it. */
        fx_queue(f, 256, false, true);
        chain_of_tiny(f, n + 1, 0);
        assert_int_equal(pop(f), -E2BIG);
}

/* ---- the cost of a chain -------------------------------------------------- */

/* A queue of @num entries whose parts sit in the upper RAM (room for 2048). */
static struct vs_vring_desc *fx_big_queue(struct fx *f, unsigned num)
{
        const uint64_t desc = RAM_GPA + 0x10000, avail = RAM_GPA + 0x18000,
                       used = RAM_GPA + 0x1a000;

        memset(host(f, desc), 0, 0x10000);
        vs_vq_init(&f->vq);
        assert_int_equal(vs_vq_set_num(&f->vq, num), 0);
        vs_vq_set_addr(&f->vq, desc, avail, used, false);
        vs_vq_set_base(&f->vq, 0);
        f->vq.indirect = true;
        f->vq.enabled = true;
        assert_int_equal(vs_vq_map(&f->vq, &f->mem), 0);
        f->avail = host(f, avail);
        f->avail_idx = 0;
        return host(f, desc);
}

/* Entries 0 .. n-1 of @t chained in order, all empty. */
static void empty_chain(struct vs_vring_desc *t, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                set_desc(t, i, 0, 0, i + 1 < n ? VS_VRING_DESC_F_NEXT : 0,
                         (uint16_t)(i + 1));
}

/*
 * Empty descriptors cost a read each: a direct chain of VS_VQ_MAX_CHAIN
 * of them on a ring that could hold twice as many is taken (and counted),
 * one more breaks the queue with -E2BIG after reading exactly the cap.
 */
static void test_chain_cap_direct(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *t = fx_big_queue(f, 2048);

        empty_chain(t, VS_VQ_MAX_CHAIN);
        avail_add(f, 0);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.ndesc, VS_VQ_MAX_CHAIN);
        assert_int_equal(f->elem.out_num + f->elem.in_num, 0);

        t = fx_big_queue(f, 2048);
        empty_chain(t, VS_VQ_MAX_CHAIN + 1);
        avail_add(f, 0);
        assert_int_equal(pop(f), -E2BIG);
        assert_int_equal(f->elem.ndesc, VS_VQ_MAX_CHAIN);
        f->avail = host(f, AVAIL_GPA);
}

/* The same cap counts the direct part, the indirect descriptor and its
 * table together. */
static void test_chain_cap_indirect(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);
        const unsigned direct = 3, table = VS_VQ_MAX_CHAIN - direct - 1;

        empty_chain(f->desc, direct);
        f->desc[direct - 1].flags = htole16(VS_VRING_DESC_F_NEXT);
        set_desc(f->desc, direct, INDIRECT_GPA, table * 16, VS_VRING_DESC_F_INDIRECT, 0);
        empty_chain(it, table);
        avail_add(f, 0);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.ndesc, VS_VQ_MAX_CHAIN);

        /* one entry more in the table */
        fx_queue(f, 16, false, true);
        empty_chain(f->desc, direct);
        f->desc[direct - 1].flags = htole16(VS_VRING_DESC_F_NEXT);
        set_desc(f->desc, direct, INDIRECT_GPA, (table + 1) * 16,
                 VS_VRING_DESC_F_INDIRECT, 0);
        empty_chain(it, table + 1);
        avail_add(f, 0);
        assert_int_equal(pop(f), -E2BIG);
        assert_int_equal(f->elem.ndesc, VS_VQ_MAX_CHAIN);
        assert_broken(f, -E2BIG);
}

/*
 * An indirect table of 65536 empty entries chained in order: under its
 * own ttl (the table size) it is no loop, but it is 64 times the cap.
 */
static void test_chain_cap_huge_table(void **state)
{
        struct fx *f = *state;
        const unsigned n = 65536;
        struct vs_vring_desc *it = calloc(n, sizeof(*it));

        assert_non_null(it);
        empty_chain(it, n);
        assert_int_equal(vs_mem_add_host(&f->mem, it, 0x40000000, n * 16ull,
                                         0x7f2000000000ull), 0);
        set_desc(f->desc, 0, 0x40000000, n * 16, VS_VRING_DESC_F_INDIRECT, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), -E2BIG);
        assert_true(f->elem.ndesc <= VS_VQ_MAX_CHAIN);
        vs_mem_clear(&f->mem);
        assert_int_equal(vs_mem_add_host(&f->mem, f->ram, RAM_GPA, RAM_SIZE,
                                         RAM_UVA), 0);
        free(it);
}

/* INDIRECT with NEXT: the spec forbids it (a driver MUST NOT set both);
 * following it is what let one chain walk a table again and again. */
static void test_indirect_with_next(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);

        set_desc(it, 0, buf(1), 8, 0, 0);
        set_desc(f->desc, 0, INDIRECT_GPA, 16,
                 VS_VRING_DESC_F_INDIRECT | VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, buf(2), 8, 0, 0);
        expect_broken(f, 0, -EPROTO);
}

/*
 * Through an indirect table a chain may be longer than the ring: Linux
 * builds one for splice() from a pipe of 256 pages into a port (QEMU and
 * vhost take it). 256 buffers on a 16-entry ring: one chain, in order.
 */
static void test_indirect_longer_than_ring(void **state)
{
        struct fx *f = *state;
        struct vs_vring_desc *it = host(f, INDIRECT_GPA);
        const unsigned n = 256;

        for (unsigned i = 0; i < n; i++)
                set_desc(it, i, buf(i % 64) + i % 4, 4,
                         i + 1 < n ? VS_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
        set_desc(f->desc, 0, INDIRECT_GPA, n * 16, VS_VRING_DESC_F_INDIRECT, 0);
        avail_add(f, 0);
        expect_chain(f, ANY, n, 4 * n, ANY, ANY);
        assert_int_equal(f->elem.ndesc, n + 1);
        for (unsigned i = 0; i < f->elem.out_num; i++)
                assert_ptr_equal(f->elem.iov[i].iov_base, host(f, buf(i % 64) + i % 4));
}

/*
 * A chain's total length may be 2^32 bytes, not more (the spec's limit
 * on drivers). Nothing of the 4 GiB is touched: the region is reserved
 * address space only.
 */
static void test_chain_bytes_cap(void **state)
{
        struct fx *f = *state;
        const uint64_t gpa = 1ull << 32, size = (1ull << 32) + 4096;
        void *big = mmap(NULL, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

        assert_true(big != MAP_FAILED);
        assert_int_equal(vs_mem_add_host(&f->mem, big, gpa, size, 0x7e0000000000ull), 0);
        set_desc(f->desc, 0, gpa, 0xffffffffu, VS_VRING_DESC_F_NEXT, 1);
        set_desc(f->desc, 1, gpa + 0xffffffffu, 1, 0, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.out_len, 1ull << 32);
        set_desc(f->desc, 1, gpa + 0xffffffffu, 2, 0, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), -EMSGSIZE);
        vs_mem_clear(&f->mem);
        assert_int_equal(vs_mem_add_host(&f->mem, f->ram, RAM_GPA, RAM_SIZE,
                                         RAM_UVA), 0);
        munmap(big, size);
}

/* ---- notifications -------------------------------------------------------- */

static void push_one(struct fx *f)
{
        set_desc(f->desc, 0, buf(0), 4, 0, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), 1);
        vs_vq_push(&f->vq, f->elem.head, 0);
}

static void test_notify_flags(void **state)
{
        struct fx *f = *state;

        push_one(f);
        assert_true(vs_vq_need_notify(&f->vq));
        f->avail->flags = htole16(VS_VRING_AVAIL_F_NO_INTERRUPT);
        push_one(f);
        assert_false(vs_vq_need_notify(&f->vq));
        /* used_event is ignored without EVENT_IDX. */
        *used_event(f) = htole16(1);
        f->avail->flags = 0;
        assert_true(vs_vq_need_notify(&f->vq));
}

static void test_notify_event_idx(void **state)
{
        struct fx *f = *state;

        fx_queue(f, 16, true, true);
        /* NO_INTERRUPT means nothing with EVENT_IDX. */
        f->avail->flags = htole16(VS_VRING_AVAIL_F_NO_INTERRUPT);
        *used_event(f) = htole16(0);
        push_one(f);                    /* used 0 -> 1 */
        assert_true(vs_vq_need_notify(&f->vq));
        /* Nothing new since the last signal. */
        assert_false(vs_vq_need_notify(&f->vq));

        /* Guest wants a signal once entry 2 is used. */
        *used_event(f) = htole16(2);
        push_one(f);                    /* 1 -> 2 */
        assert_false(vs_vq_need_notify(&f->vq));
        push_one(f);                    /* 2 -> 3: passes 2 */
        assert_true(vs_vq_need_notify(&f->vq));

        /* Several pushes between checks, crossing the event. */
        *used_event(f) = htole16(4);
        push_one(f);
        push_one(f);
        push_one(f);                    /* 3 -> 6 */
        assert_true(vs_vq_need_notify(&f->vq));

        /* Event far ahead. */
        *used_event(f) = htole16(100);
        push_one(f);
        assert_false(vs_vq_need_notify(&f->vq));
}

static void test_notify_event_idx_wrap(void **state)
{
        struct fx *f = *state;

        fx_queue(f, 16, true, true);
        vs_vq_set_base(&f->vq, 65534);
        set_avail_idx(f, 65534);
        *used_event(f) = htole16(65533);
        push_one(f);                    /* first one always signals */
        assert_true(vs_vq_need_notify(&f->vq));
        *used_event(f) = htole16(0);
        push_one(f);                    /* 65535 -> 0 */
        assert_false(vs_vq_need_notify(&f->vq));
        push_one(f);                    /* 0 -> 1: passes 0 */
        assert_true(vs_vq_need_notify(&f->vq));
        assert_int_equal(le16toh(f->used->idx), 1);
}

static void test_set_base_resets_signal(void **state)
{
        struct fx *f = *state;

        fx_queue(f, 16, true, true);
        *used_event(f) = htole16(100);
        push_one(f);
        assert_true(vs_vq_need_notify(&f->vq));
        push_one(f);
        assert_false(vs_vq_need_notify(&f->vq));
        /* After a reset there is no valid last signal: signal. */
        vs_vq_set_base(&f->vq, f->vq.last_avail);
        push_one(f);
        assert_true(vs_vq_need_notify(&f->vq));
}

static void test_set_notify(void **state)
{
        struct fx *f = *state;

        vs_vq_set_notify(&f->vq, false);
        assert_int_equal(le16toh(f->used->flags), VS_VRING_USED_F_NO_NOTIFY);
        vs_vq_set_notify(&f->vq, true);
        assert_int_equal(le16toh(f->used->flags), 0);
        assert_int_equal(avail_event(f), 0);
}

static void test_set_notify_event_idx(void **state)
{
        struct fx *f = *state;

        fx_queue(f, 16, true, true);
        push_one(f);
        push_one(f);
        vs_vq_set_notify(&f->vq, true);
        assert_int_equal(avail_event(f), 2);
        assert_int_equal(le16toh(f->used->flags), 0);
        push_one(f);
        vs_vq_set_notify(&f->vq, false);
        assert_int_equal(avail_event(f), 2);
        assert_int_equal(le16toh(f->used->flags), 0);
        /* Enable, then re-check: a buffer that raced in is seen. */
        set_desc(f->desc, 1, buf(1), 4, 0, 0);
        avail_add(f, 1);
        vs_vq_set_notify(&f->vq, true);
        assert_int_equal(avail_event(f), 3);
        assert_true(vs_vq_has_avail(&f->vq));
}

/* ---- indices ------------------------------------------------------------- */

static void test_unpop(void **state)
{
        struct fx *f = *state;

        set_desc(f->desc, 1, buf(0), 4, 0, 0);
        set_desc(f->desc, 2, buf(1), 4, 0, 0);
        avail_add(f, 1);
        avail_add(f, 2);
        assert_int_equal(pop(f), 1);
        assert_int_equal(pop(f), 1);
        assert_int_equal(vs_vq_get_base(&f->vq), 2);
        vs_vq_unpop(&f->vq, 2);
        assert_int_equal(vs_vq_get_base(&f->vq), 0);
        assert_true(vs_vq_has_avail(&f->vq));
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.head, 1);
        vs_vq_unpop(&f->vq, 1);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.head, 1);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.head, 2);
        assert_int_equal(pop(f), 0);
}

static void test_wrap_around(void **state)
{
        struct fx *f = *state;

        vs_vq_set_base(&f->vq, 65530);
        set_avail_idx(f, 65530);
        for (unsigned i = 0; i < 40; i++) {
                uint16_t head = (uint16_t)(i % 16);
                uint16_t expect = (uint16_t)(65530 + i + 1);

                set_desc(f->desc, head, buf(head), 1 + i, 0, 0);
                avail_add(f, head);
                expect_chain(f, head, ANY, 1 + i, ANY, ANY);
                vs_vq_push(&f->vq, head, i);
                assert_int_equal(le16toh(f->used->idx), expect);
                assert_int_equal(
                        le32toh(f->used->ring[(expect - 1) & 15].id), head);
                assert_int_equal(vs_vq_get_base(&f->vq), expect);
        }

        /* A full ring across the wrap. */
        vs_vq_set_base(&f->vq, 65530);
        set_avail_idx(f, 65530);
        for (unsigned i = 0; i < 16; i++) {
                set_desc(f->desc, i, buf(i), 4, 0, 0);
                avail_add(f, (uint16_t)i);
        }
        for (unsigned i = 0; i < 16; i++) {
                assert_int_equal(pop(f), 1);
                assert_int_equal(f->elem.head, i);
        }
        assert_int_equal(pop(f), 0);
}

/* ---- setup and mapping ------------------------------------------------------ */

static void test_set_num(void **state)
{
        struct fx *f = *state;

        assert_int_equal(vs_vq_set_num(&f->vq, 0), -EINVAL);
        assert_int_equal(vs_vq_set_num(&f->vq, 3), -EINVAL);
        assert_int_equal(vs_vq_set_num(&f->vq, 65536), -EINVAL);
        assert_int_equal(vs_vq_set_num(&f->vq, VS_VQ_MAX_SIZE * 2), -EINVAL);
        assert_true(vs_vq_ready(&f->vq));
        /* A new size drops the mapping checked for the old one. */
        assert_int_equal(vs_vq_set_num(&f->vq, 1), 0);
        assert_false(vs_vq_ready(&f->vq));
        assert_int_equal(vs_vq_set_num(&f->vq, VS_VQ_MAX_SIZE), 0);
        assert_int_equal(f->vq.num, VS_VQ_MAX_SIZE);
}

static void test_not_ready(void **state)
{
        struct fx *f = *state;
        struct vs_vq vq;

        vs_vq_init(&vq);
        assert_false(vs_vq_ready(&vq));
        assert_int_equal(vs_vq_pop(&vq, &f->mem, &f->elem), -ENODEV);
        assert_false(vs_vq_has_avail(&vq));
        assert_false(vs_vq_need_notify(&vq));
        vs_vq_set_notify(&vq, true);
        vs_vq_push(&vq, 0, 0);
        /* No size, then no address. */
        assert_int_equal(vs_vq_map(&vq, &f->mem), -EINVAL);
        assert_int_equal(vs_vq_set_num(&vq, 16), 0);
        assert_int_equal(vs_vq_map(&vq, &f->mem), -EINVAL);

        /* Disabled. */
        f->vq.enabled = false;
        set_desc(f->desc, 0, buf(0), 4, 0, 0);
        avail_add(f, 0);
        assert_false(vs_vq_has_avail(&f->vq));
        assert_int_equal(pop(f), -ENODEV);
        f->vq.enabled = true;
        assert_int_equal(pop(f), 1);

        /* Unmapped. */
        vs_vq_unmap(&f->vq);
        assert_int_equal(pop(f), -ENODEV);
        vs_vq_push(&f->vq, 0, 0);
        assert_int_equal(le16toh(f->used->idx), 0);
}

static int map_at(struct fx *f, uint64_t d, uint64_t a, uint64_t u, bool uva)
{
        vs_vq_set_addr(&f->vq, d, a, u, uva);
        return vs_vq_map(&f->vq, &f->mem);
}

static void test_map_errors(void **state)
{
        struct fx *f = *state;

        /* Misaligned parts. */
        assert_int_equal(map_at(f, DESC_GPA + 8, AVAIL_GPA, USED_GPA, false),
                         -EINVAL);
        assert_false(vs_vq_ready(&f->vq));
        assert_int_equal(map_at(f, DESC_GPA, AVAIL_GPA + 1, USED_GPA, false),
                         -EINVAL);
        assert_int_equal(map_at(f, DESC_GPA, AVAIL_GPA, USED_GPA + 2, false),
                         -EINVAL);
        /* Minimal alignment is enough. */
        assert_int_equal(map_at(f, DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4,
                                false), 0);
        /* Unmapped, or running off the end of memory. */
        assert_int_equal(map_at(f, 0x1000, AVAIL_GPA, USED_GPA, false),
                         -EFAULT);
        assert_int_equal(map_at(f, DESC_GPA, RAM_GPA + RAM_SIZE - 2 * 16 - 4,
                                USED_GPA, false), -EFAULT);
        assert_int_equal(map_at(f, DESC_GPA, AVAIL_GPA,
                                RAM_GPA + RAM_SIZE - 8 * 16, false), -EFAULT);
        assert_int_equal(map_at(f, RAM_GPA + RAM_SIZE - 16 * 15, AVAIL_GPA,
                                USED_GPA, false), -EFAULT);
        assert_int_equal(map_at(f, UINT64_MAX - 15, AVAIL_GPA, USED_GPA,
                                false), -EFAULT);
        assert_false(vs_vq_ready(&f->vq));
        /* Exactly at the end is fine. */
        assert_int_equal(map_at(f, DESC_GPA, RAM_GPA + RAM_SIZE - 2 * 16 - 6,
                                USED_GPA, false), 0);
}

static void test_map_uva(void **state)
{
        struct fx *f = *state;
        uint64_t delta = RAM_UVA - RAM_GPA;

        /* Ring addresses in uva space; buffers stay gpa. */
        assert_int_equal(map_at(f, DESC_GPA, AVAIL_GPA, USED_GPA, true),
                         -EFAULT);
        assert_int_equal(map_at(f, DESC_GPA + delta, AVAIL_GPA + delta,
                                USED_GPA + delta, true), 0);
        assert_ptr_equal(f->vq.desc, f->desc);
        set_desc(f->desc, 0, buf(0), 4, 0, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), 1);
        assert_ptr_equal(f->elem.iov[0].iov_base, host(f, buf(0)));

        /* A uva buffer address is not a gpa. */
        set_desc(f->desc, 1, buf(0) + delta, 4, 0, 0);
        avail_add(f, 1);
        assert_int_equal(pop(f), -EFAULT);
}

static void test_map_host_misaligned(void **state)
{
        struct fx *f = *state;
        struct vs_mem mem;

        /* Aligned in gpa, but the frontend's offset skews the host side. */
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_host(&mem, f->ram + 1, RAM_GPA,
                                         RAM_SIZE - 1, RAM_UVA), 0);
        vs_vq_set_addr(&f->vq, DESC_GPA, AVAIL_GPA, USED_GPA, false);
        assert_int_equal(vs_vq_map(&f->vq, &mem), -EINVAL);
        vs_mem_clear(&mem);
}

static void test_set_base_recovers(void **state)
{
        struct fx *f = *state;

        avail_add(f, 99);
        assert_int_equal(pop(f), -ERANGE);
        vs_vq_fail(&f->vq, -EIO);
        assert_int_equal(f->vq.error, -ERANGE);
        /* Pushing to a broken queue does nothing. */
        vs_vq_push(&f->vq, 0, 0);
        assert_int_equal(le16toh(f->used->idx), 0);
        assert_false(vs_vq_need_notify(&f->vq));

        vs_vq_set_base(&f->vq, 1);
        assert_int_equal(f->vq.error, 0);
        assert_true(vs_vq_ready(&f->vq));
        assert_int_equal(pop(f), 0);
        set_desc(f->desc, 0, buf(0), 4, 0, 0);
        avail_add(f, 0);
        assert_int_equal(pop(f), 1);
        vs_vq_push(&f->vq, 0, 0);
        assert_int_equal(le16toh(f->used->idx), 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_empty),
                T(test_single),
                T(test_direct_chain_push),
                T(test_writable_only_and_zero_len),
                T(test_chain_of_queue_size),
                T(test_indirect),
                T(test_indirect_after_direct),
                T(test_indirect_unaligned_table),
                T(test_indirect_without_feature),
                T(test_indirect_nested),
                T(test_indirect_bad_len),
                T(test_indirect_fault),
                T(test_indirect_table_across_regions),
                T(test_indirect_range_and_loop),
                T(test_loop),
                T(test_next_out_of_range),
                T(test_head_out_of_range),
                T(test_buffer_fault),
                T(test_readable_after_writable),
                T(test_readable_after_writable_indirect),
                T(test_avail_jump),
                T(test_split_one_byte_regions),
                T(test_iov_cap),
                T(test_chain_cap_direct),
                T(test_chain_cap_indirect),
                T(test_chain_cap_huge_table),
                T(test_indirect_with_next),
                T(test_indirect_longer_than_ring),
                T(test_chain_bytes_cap),
                T(test_notify_flags),
                T(test_notify_event_idx),
                T(test_notify_event_idx_wrap),
                T(test_set_base_resets_signal),
                T(test_set_notify),
                T(test_set_notify_event_idx),
                T(test_unpop),
                T(test_wrap_around),
                T(test_set_num),
                T(test_not_ready),
                T(test_map_errors),
                T(test_map_uva),
                T(test_map_host_misaligned),
                T(test_set_base_recovers),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
