/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the split-ring chain walker (src/lib/virtq) as a hostile guest.
 *
 * Guest memory is 1..8 regions, each its own exact-size malloc() (some only
 * a few bytes), so ASan flags any byte the device touches outside them. The
 * input picks the layout, the ring size and placement, EVENT_IDX and
 * INDIRECT, then runs a small program of guest writes (raw bytes, whole
 * descriptors, avail entries, event fields) and device calls (pop until
 * empty or error, push, unpop, need_notify, set_notify, set_base).
 *
 * Input:
 *   u8 cfg      bits 0-2 regions - 1, bit 3 EVENT_IDX, bit 4 INDIRECT,
 *               bit 5 ring addresses are uvas
 *   u8 lognum   queue size 1 << (lognum % 11)
 *   per region: u16 size (bit 15: tiny, 1..16 bytes; else 1..16384),
 *               u16 gap after the previous region's end (0 = adjacent)
 *   desc, avail, used: u8 region, u16 offset (clamped and aligned)
 *   u16 base
 *   then ops until the input ends (see run_op()).
 *
 * Besides memory safety, each popped chain is checked against what the
 * API promises: iovecs inside one region each, counts and totals that add
 * up, and a broken queue that stays broken until set_base. Resource
 * oracles: every pop reads at most VS_VQ_MAX_CHAIN descriptors whatever it
 * returns (the input's total is at most that times its pops), a chain
 * taken names at most VS_VQ_MAX_CHAIN_BYTES, and no call loops (each pop
 * loop is bounded by the queue size).
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "virtq/virtq.h"

#define MAX_NUM_LOG 10
#define MAX_HEADS 4096
#define UVA_BASE 0x7f0000000000ull


struct region {
        uint8_t *buf;
        uint64_t size, gpa, uva;
};

struct fx {
        struct region r[VS_MEM_MAX_REGIONS];
        unsigned nr;
        struct vs_mem mem;
        struct vs_vq vq;
        bool is_uva;
        uint16_t avail_idx;             /* the guest's next avail index */
        uint16_t heads[MAX_HEADS];      /* popped, not yet pushed or unpopped */
        unsigned nheads;
        struct vs_vq_elem elem;
        uint8_t sink[256];
        uint64_t pops, descs;           /* the input's cost */
};

static uint64_t region_size(uint16_t raw)
{
        if (raw & 0x8000)
                return (raw & 0xf) + 1;
        return (raw & 0x3fff) + 1;
}

/* Regions in gpa order with input-chosen gaps; uvas in a different order. */
static int setup_regions(struct fx *f, struct fz *in, unsigned n)
{
        uint64_t gpa = 0x100000;

        for (unsigned i = 0; i < n; i++) {
                struct region *r = &f->r[i];

                r->size = region_size(fz_u16(in));
                r->gpa = gpa + fz_u16(in);
                r->uva = UVA_BASE + (uint64_t)(n - 1 - i) * 0x100000;
                r->buf = calloc(1, r->size);
                if (!r->buf)
                        return -ENOMEM;
                f->nr++;
                gpa = r->gpa + r->size;
                if (vs_mem_add_host(&f->mem, r->buf, r->gpa, r->size, r->uva) < 0)
                        abort();        /* the layout never overlaps */
        }
        return 0;
}

/* An address in region (u8) at offset (u16), clamped and aligned down. */
static uint64_t ring_addr(struct fx *f, struct fz *in, uint64_t align)
{
        struct region *r = &f->r[fz_u8(in) % f->nr];
        uint64_t off = fz_u16(in) % r->size;

        off &= ~(align - 1);
        return (f->is_uva ? r->uva : r->gpa) + off;
}

/* Guest pointer for a ring address (whichever space it is in). */
static uint8_t *guest_ptr(struct fx *f, uint64_t addr, uint64_t len)
{
        return vs_mem_range(&f->mem, addr, len, f->is_uva);
}

static void setup_queue(struct fx *f, struct fz *in, uint8_t cfg, uint8_t lognum)
{
        uint64_t desc, avail, used;

        if (vs_vq_set_num(&f->vq, 1u << (lognum % (MAX_NUM_LOG + 1))) < 0)
                abort();
        desc = ring_addr(f, in, 16);
        avail = ring_addr(f, in, 2);
        used = ring_addr(f, in, 4);
        vs_vq_set_addr(&f->vq, desc, avail, used, f->is_uva);
        f->vq.event_idx = cfg & 0x08;
        f->vq.indirect = cfg & 0x10;
        f->vq.enabled = true;
        vs_vq_set_base(&f->vq, fz_u16(in));
        f->avail_idx = f->vq.last_avail;
        vs_vq_map(&f->vq, &f->mem);
}

/* ---- checks on what the device returned ---------------------------------- */

static bool in_region(const struct fx *f, const struct iovec *iov)
{
        uintptr_t p = (uintptr_t)iov->iov_base;

        for (unsigned i = 0; i < f->nr; i++) {
                uintptr_t b = (uintptr_t)f->r[i].buf;

                if (p >= b && iov->iov_len <= f->r[i].size &&
                    p - b <= f->r[i].size - iov->iov_len)
                        return true;
        }
        return false;
}

/* Every iovec lies in one region; totals add up; then touch every byte. */
static void check_elem(struct fx *f, const struct vs_vq_elem *e)
{
        uint64_t out = 0, in = 0;

        FZ_CHECK(e->head < f->vq.num);
        FZ_CHECK(e->out_num + e->in_num <= VS_VQ_MAX_IOV);
        for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
                const struct iovec *v = &e->iov[i];

                FZ_CHECK(v->iov_len > 0);
                FZ_CHECK(in_region(f, v));
                if (i < e->out_num) {
                        out += v->iov_len;
                        for (size_t o = 0; o < v->iov_len; o += sizeof(f->sink))
                                memcpy(f->sink, (uint8_t *)v->iov_base + o,
                                       v->iov_len - o < sizeof(f->sink) ?
                                       v->iov_len - o : sizeof(f->sink));
                } else {
                        in += v->iov_len;
                        memset(v->iov_base, 0xa5, v->iov_len);
                }
        }
        FZ_CHECK(out == e->out_len);
        FZ_CHECK(in == e->in_len);
        FZ_CHECK(e->out_len + e->in_len <= VS_VQ_MAX_CHAIN_BYTES);
        FZ_CHECK(e->ndesc >= 1);
}

/* What a pop cost, whatever it returned. */
static void count_pop(struct fx *f)
{
        FZ_CHECK(f->elem.ndesc <= VS_VQ_MAX_CHAIN);
        f->pops++;
        f->descs += f->elem.ndesc;
}

static bool known_error(int r)
{
        switch (r) {
        case -EOVERFLOW: case -ERANGE: case -ELOOP: case -EPROTO:
        case -EINVAL: case -EFAULT: case -EBADMSG: case -E2BIG: case -EMSGSIZE:
        case -ENODEV:
                return true;
        }
        return false;
}

/* Pop until empty or broken, at most a queue's worth plus one. */
static void pop_all(struct fx *f)
{
        for (unsigned i = 0; i <= f->vq.num; i++) {
                int r = vs_vq_pop(&f->vq, &f->mem, &f->elem);

                count_pop(f);
                if (fz_verbose())
                        fprintf(stderr, "pop: %d head %u out %u/%llu in %u/%llu\n", r,
                                f->elem.head, f->elem.out_num,
                                (unsigned long long)f->elem.out_len, f->elem.in_num,
                                (unsigned long long)f->elem.in_len);
                if (r == 0)
                        return;
                if (r < 0) {
                        FZ_CHECK(known_error(r));
                        /* Broken stays broken: the same error, no progress. */
                        if (r != -ENODEV) {
                                FZ_CHECK(vs_vq_pop(&f->vq, &f->mem, &f->elem) == r);
                                FZ_CHECK(!vs_vq_ready(&f->vq));
                        }
                        return;
                }
                FZ_CHECK(r == 1);
                check_elem(f, &f->elem);
                if (f->nheads < MAX_HEADS)
                        f->heads[f->nheads++] = f->elem.head;
        }
        /* Still more: the buffers alias the avail ring, and filling them
         * moved its index. Legal for a guest; stop here. */
}

static void push_all(struct fx *f, uint32_t len)
{
        for (unsigned i = 0; i < f->nheads; i++) {
                uint16_t before = f->vq.used_idx;

                vs_vq_push(&f->vq, f->heads[i], len);
                if (vs_vq_ready(&f->vq)) {
                        FZ_CHECK(f->vq.used_idx == (uint16_t)(before + 1));
                        FZ_CHECK(le16toh(f->vq.used->idx) == f->vq.used_idx);
                }
        }
        f->nheads = 0;
}

/* ---- guest writes ------------------------------------------------------- */

static void guest_write(struct fx *f, uint64_t addr, const void *src, size_t len)
{
        uint8_t *p = guest_ptr(f, addr, len);

        if (p)
                memcpy(p, src, len);
}

static void put_desc(struct fx *f, uint64_t table, unsigned i, struct fz *in)
{
        struct region *r = &f->r[fz_u8(in) % f->nr];
        struct vs_vring_desc d;

        d.addr = htole64(r->gpa + fz_u16(in));
        d.len = htole32(fz_u16(in));
        d.flags = htole16(fz_u8(in) & 7);
        d.next = htole16(fz_u16(in));
        guest_write(f, table + 16ull * i, &d, sizeof(d));
}

/* Make @head available, as a driver does: ring entry, then the index. */
static void put_avail(struct fx *f, uint16_t head)
{
        uint64_t a = f->vq.avail_addr;
        uint16_t le = htole16(head);

        guest_write(f, a + 4 + 2ull * (f->avail_idx & (f->vq.num - 1)), &le, 2);
        f->avail_idx++;
        le = htole16(f->avail_idx);
        guest_write(f, a + 2, &le, 2);
}

static void write_raw(struct fx *f, struct fz *in)
{
        struct region *r = &f->r[fz_u8(in) % f->nr];
        uint64_t off = fz_u16(in) % r->size;
        size_t len = fz_u8(in);
        const uint8_t *src = fz_take(in, &len);

        if (len > r->size - off)
                len = r->size - off;
        memcpy(r->buf + off, src, len);
}

static void write_u16_at(struct fx *f, uint64_t addr, uint16_t v)
{
        uint16_t le = htole16(v);

        guest_write(f, addr, &le, 2);
}

/* ---- the program ---------------------------------------------------------- */

enum {
        OP_POP,
        OP_PUSH,        /* u16 len */
        OP_UNPOP,       /* u8 n */
        OP_NOTIFY,
        OP_SET_NOTIFY,  /* u8 on */
        OP_HAS_AVAIL,
        OP_DESC,        /* u16 i, u8 region, u16 off, u16 len, u8 flags, u16 next */
        OP_IDESC,       /* u8 region, u16 table off, u8 i, then as OP_DESC */
        OP_AVAIL,       /* u16 head */
        OP_AVAIL_IDX,   /* u16 idx: the guest moves the index anywhere */
        OP_RAW,         /* u8 region, u16 off, u8 len, bytes */
        OP_FLAGS,       /* u16 avail->flags */
        OP_USED_EVENT,  /* u16 */
        OP_SET_BASE,    /* u16 */
        OP_REMAP,
        OP_COUNT
};

static void run_op(struct fx *f, struct fz *in)
{
        uint8_t op = fz_u8(in) % OP_COUNT;
        unsigned n;

        switch (op) {
        case OP_POP:
                pop_all(f);
                break;
        case OP_PUSH:
                push_all(f, fz_u16(in));
                break;
        case OP_UNPOP:
                n = fz_u8(in);
                n = n < f->nheads ? n : f->nheads;
                vs_vq_unpop(&f->vq, n);
                f->nheads -= n;
                break;
        case OP_NOTIFY:
                vs_vq_need_notify(&f->vq);
                break;
        case OP_SET_NOTIFY:
                vs_vq_set_notify(&f->vq, fz_u8(in) & 1);
                break;
        case OP_HAS_AVAIL:
                if (vs_vq_has_avail(&f->vq))
                        FZ_CHECK(vs_vq_ready(&f->vq));
                break;
        case OP_DESC:
                n = fz_u16(in) % f->vq.num;
                put_desc(f, f->vq.desc_addr, n, in);
                break;
        case OP_IDESC: {
                struct region *r = &f->r[fz_u8(in) % f->nr];
                uint64_t table = (f->is_uva ? r->uva : r->gpa) + fz_u16(in);

                n = fz_u8(in);
                put_desc(f, table, n, in);
                break;
        }
        case OP_AVAIL:
                put_avail(f, fz_u16(in));
                break;
        case OP_AVAIL_IDX:
                f->avail_idx = fz_u16(in);
                write_u16_at(f, f->vq.avail_addr + 2, f->avail_idx);
                break;
        case OP_RAW:
                write_raw(f, in);
                break;
        case OP_FLAGS:
                write_u16_at(f, f->vq.avail_addr, fz_u16(in));
                break;
        case OP_USED_EVENT:
                write_u16_at(f, f->vq.avail_addr + 4 + 2ull * f->vq.num, fz_u16(in));
                break;
        case OP_SET_BASE:
                vs_vq_set_base(&f->vq, fz_u16(in));
                f->nheads = 0;
                FZ_CHECK(f->vq.error == 0);
                break;
        case OP_REMAP:
                vs_vq_map(&f->vq, &f->mem);
                break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fz in = { data, size };
        struct fx *f = calloc(1, sizeof(*f));
        uint8_t cfg = fz_u8(&in), lognum = fz_u8(&in);
        unsigned ops = 0;

        if (!f)
                return 0;
        vs_mem_init(&f->mem);
        vs_vq_init(&f->vq);
        f->is_uva = cfg & 0x20;
        if (setup_regions(f, &in, (cfg & 7) + 1) == 0) {
                setup_queue(f, &in, cfg, lognum);
                /* A ring that maps is what the ops are for; else just pops. */
                while (!fz_done(&in) && ops++ < 4096)
                        run_op(f, &in);
                pop_all(f);
                push_all(f, 0);
                vs_vq_need_notify(&f->vq);
        }
        /* The input's budget: each pop at most one longest chain. */
        FZ_CHECK(f->descs <= f->pops * VS_VQ_MAX_CHAIN);
        vs_mem_clear(&f->mem);
        for (unsigned i = 0; i < f->nr; i++)
                free(f->r[i].buf);
        free(f);
        return 0;
}
