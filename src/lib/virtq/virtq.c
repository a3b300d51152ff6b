/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues, device side. See virtq.h for the security model.
 *
 * Every access to guest-shared ring memory goes through the small helpers
 * below: they load or store each field exactly once, so a value that was
 * validated is the value that is used, whatever the guest does meanwhile.
 */
#include "virtq/virtq.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#define DESC_SIZE ((uint64_t)sizeof(struct vs_vring_desc))
/* Alignment of each ring part (VIRTIO 1.2, 2.7). */
#define DESC_ALIGN 16u
#define AVAIL_ALIGN 2u
#define USED_ALIGN 4u

static uint16_t load16(const uint16_t *p)
{
        return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static void store16(uint16_t *p, uint16_t v)
{
        __atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static void store32(uint32_t *p, uint32_t v)
{
        __atomic_store_n(p, htole32(v), __ATOMIC_RELAXED);
}

/* Pairs with the driver's release of avail->idx after writing the ring. */
static uint16_t load_avail_idx(const struct vs_vq *vq)
{
        return le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
}

/* Bytes of the avail and used rings of @num entries, the event field after
 * the entries included. */
static uint64_t avail_size(uint64_t num)
{
        return offsetof(struct vs_vring_avail, ring) + sizeof(uint16_t) * (num + 1);
}

static uint64_t used_size(uint64_t num)
{
        return offsetof(struct vs_vring_used, ring) +
               sizeof(struct vs_vring_used_elem) * num + sizeof(uint16_t);
}

static uint16_t *used_event(const struct vs_vq *vq)
{
        return &vq->avail->ring[vq->num];
}

static uint16_t *avail_event(const struct vs_vq *vq)
{
        return (uint16_t *)&vq->used->ring[vq->num];
}

/*
 * Snapshot one descriptor. Indirect tables need not be 8-byte aligned, so
 * copy bytes; the compiler barrier stops the compiler from re-reading guest
 * memory in place of the local copy.
 */
static void read_desc(const struct vs_vring_desc *src,
                      struct vs_vring_desc *d)
{
        memcpy(d, src, sizeof(*d));
        __asm__ __volatile__("" ::: "memory");
        d->addr = le64toh(d->addr);
        d->len = le32toh(d->len);
        d->flags = le16toh(d->flags);
        d->next = le16toh(d->next);
}

void vs_vq_init(struct vs_vq *vq)
{
        memset(vq, 0, sizeof(*vq));
}

/* A new size invalidates ring pointers checked against the old one. */
int vs_vq_set_num(struct vs_vq *vq, unsigned num)
{
        if (num == 0 || num > VS_VQ_MAX_SIZE || (num & (num - 1)))
                return -EINVAL;
        vs_vq_unmap(vq);
        vq->num = (uint16_t)num;
        return 0;
}

void vs_vq_set_addr(struct vs_vq *vq, uint64_t desc, uint64_t avail,
                    uint64_t used, bool is_uva)
{
        vs_vq_unmap(vq);
        vq->desc_addr = desc;
        vq->avail_addr = avail;
        vq->used_addr = used;
        vq->addr_is_uva = is_uva;
        vq->addr_set = true;
}

void vs_vq_set_base(struct vs_vq *vq, uint16_t base)
{
        vq->last_avail = base;
        vq->used_idx = base;
        vq->signalled_used_valid = false;
        vq->no_notify = false;
        vq->kick_batch = 0;
        vq->error = 0;
}

uint16_t vs_vq_get_base(const struct vs_vq *vq)
{
        return vq->last_avail;
}

/*
 * One ring part: mapped in a single region, and aligned both as a guest
 * address (the spec) and as a host pointer (our atomic accesses; a frontend
 * picks mmap_offset, so the two can differ).
 */
static void *map_part(const struct vs_vq *vq, const struct vs_mem *mem,
                      uint64_t addr, uint64_t len, uint64_t align, int *err)
{
        void *p;

        if (addr & (align - 1)) {
                *err = -EINVAL;
                return NULL;
        }
        p = vs_mem_range(mem, addr, len, vq->addr_is_uva);
        if (!p) {
                *err = -EFAULT;
                return NULL;
        }
        if ((uintptr_t)p & (align - 1)) {
                *err = -EINVAL;
                return NULL;
        }
        return p;
}

int vs_vq_map(struct vs_vq *vq, const struct vs_mem *mem)
{
        uint64_t num = vq->num;
        void *desc, *avail, *used;
        int err = 0;

        vs_vq_unmap(vq);
        if (!num || !vq->addr_set)
                return -EINVAL;
        desc = map_part(vq, mem, vq->desc_addr, DESC_SIZE * num, DESC_ALIGN, &err);
        if (!desc)
                return err;
        /* Both event fields are mapped even without EVENT_IDX: simpler. */
        avail = map_part(vq, mem, vq->avail_addr, avail_size(num), AVAIL_ALIGN, &err);
        if (!avail)
                return err;
        used = map_part(vq, mem, vq->used_addr, used_size(num), USED_ALIGN, &err);
        if (!used)
                return err;
        vq->desc = desc;
        vq->avail = avail;
        vq->used = used;
        return 0;
}

void vs_vq_unmap(struct vs_vq *vq)
{
        vq->desc = NULL;
        vq->avail = NULL;
        vq->used = NULL;
}

bool vs_vq_ready(const struct vs_vq *vq)
{
        return vq->num && vq->desc && vq->avail && vq->used && vq->enabled &&
               !vq->error;
}

void vs_vq_fail(struct vs_vq *vq, int err)
{
        if (!vq->error)
                vq->error = err;
}

static int fail(struct vs_vq *vq, int err)
{
        vs_vq_fail(vq, err);
        return vq->error;
}

/* State of one chain walk: the element being built and ordering. */
struct walk {
        const struct vs_mem *mem;
        struct vs_vq_elem *elem;
        bool indirect_ok;       /* feature negotiated */
        bool seen_write;        /* a writable descriptor came already */
        unsigned descs;         /* descriptors read so far */
};

static int add_buffer(struct walk *w, const struct vs_vring_desc *d)
{
        struct vs_vq_elem *e = w->elem;
        bool writable = d->flags & VS_VRING_DESC_F_WRITE;
        unsigned n = e->out_num + e->in_num;
        int ret;

        /* The order check applies to empty descriptors too. */
        if (!writable && w->seen_write)
                return -EBADMSG;
        if (writable)
                w->seen_write = true;
        if (d->len == 0)
                return 0;
        /* Both totals are at most 2^32 here, so the sum cannot wrap. */
        if (e->out_len + e->in_len + d->len > VS_VQ_MAX_CHAIN_BYTES)
                return -EMSGSIZE;
        ret = vs_mem_iov(w->mem, d->addr, d->len, e->iov, VS_VQ_MAX_IOV, &n);
        if (ret < 0)
                return ret;
        if (writable) {
                e->in_num = n - e->out_num;
                e->in_len += d->len;
        } else {
                e->out_num = n;
                e->out_len += d->len;
        }
        return 0;
}

static int walk_table(struct walk *w, const struct vs_vring_desc *table,
                      uint32_t size, uint32_t i, bool nested);

/*
 * Descend into an indirect table. Its entry count bounds the indices and
 * the walk (ttl), and it must be contiguous in one region. An indirect
 * descriptor with NEXT is refused (the spec forbids drivers to set both):
 * following it would let one chain name a table again and again.
 */
static int walk_indirect(struct walk *w, const struct vs_vring_desc *d,
                         bool nested)
{
        const struct vs_vring_desc *table;

        if (nested || !w->indirect_ok || (d->flags & VS_VRING_DESC_F_NEXT))
                return -EPROTO;
        if (d->len == 0 || d->len % DESC_SIZE)
                return -EINVAL;
        table = vs_mem_range(w->mem, d->addr, d->len, false);
        if (!table)
                return -EFAULT;
        return walk_table(w, table, d->len / DESC_SIZE, 0, true);
}

/*
 * Follow a chain through @table (@size entries) from entry @i. At most @size
 * descriptors of the table may be read (one more means a loop: -ELOOP),
 * and at most VS_VQ_MAX_CHAIN in the whole chain (-E2BIG). An indirect
 * descriptor stands for its whole table and ends the chain (with NEXT it
 * is refused); it may come after direct ones. The count is a local, kept
 * in a register across read_desc()'s barrier, and added to w->descs on
 * the way out (and before the table, which counts on from there).
 */
static int walk_table(struct walk *w, const struct vs_vring_desc *table,
                      uint32_t size, uint32_t i, bool nested)
{
        uint32_t left = VS_VQ_MAX_CHAIN - w->descs;
        uint32_t limit = size < left ? size : left;
        uint32_t n = 0;
        struct vs_vring_desc d;
        int ret;

        for (;;) {
                if (n == limit) {
                        ret = size <= left ? -ELOOP : -E2BIG;
                        break;
                }
                n++;
                read_desc(&table[i], &d);
                if (d.flags & VS_VRING_DESC_F_INDIRECT) {
                        w->descs += n;
                        n = 0;
                        ret = walk_indirect(w, &d, nested);
                        break;
                }
                ret = add_buffer(w, &d);
                if (ret < 0 || !(d.flags & VS_VRING_DESC_F_NEXT))
                        break;
                if (d.next >= size) {
                        ret = -ERANGE;
                        break;
                }
                i = d.next;
        }
        w->descs += n;
        return ret;
}

static void elem_reset(struct vs_vq_elem *elem, uint16_t head)
{
        elem->head = head;
        elem->out_num = 0;
        elem->in_num = 0;
        elem->out_len = 0;
        elem->in_len = 0;
}

/*
 * The avail_event to publish: the guest kicks when its avail->idx moves
 * past it (vring_need_event()), so last_avail asks for a kick at the next
 * add and last_avail + n - 1 at the n-th.
 */
static uint16_t kick_at(const struct vs_vq *vq)
{
        return (uint16_t)(vq->last_avail + (vq->kick_batch ? vq->kick_batch - 1 : 0));
}

int vs_vq_pop(struct vs_vq *vq, const struct vs_mem *mem,
              struct vs_vq_elem *elem)
{
        struct walk w = { .mem = mem, .elem = elem,
                          .indirect_ok = vq->indirect };
        uint16_t avail_idx, head;
        int ret;

        elem->ndesc = 0;
        if (!vs_vq_ready(vq))
                return vq->error ? vq->error : -ENODEV;
        avail_idx = load_avail_idx(vq);
        if (avail_idx == vq->last_avail && vq->event_idx && !vq->no_notify) {
                /*
                 * Empty with EVENT_IDX: ask for a kick at the next add, then
                 * look once more, since the guest may have added meanwhile.
                 */
                store16(avail_event(vq), kick_at(vq));
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                avail_idx = load_avail_idx(vq);
        }
        if ((uint16_t)(avail_idx - vq->last_avail) > vq->num)
                return fail(vq, -EOVERFLOW);
        if (avail_idx == vq->last_avail)
                return 0;
        head = load16(&vq->avail->ring[vq->last_avail & (vq->num - 1)]);
        if (head >= vq->num)
                return fail(vq, -ERANGE);
        elem_reset(elem, head);
        ret = walk_table(&w, vq->desc, vq->num, head, false);
        elem->ndesc = w.descs;
        if (ret < 0)
                return fail(vq, ret);
        vq->last_avail++;
        return 1;
}

void vs_vq_unpop(struct vs_vq *vq, unsigned n)
{
        vq->last_avail -= (uint16_t)n;
}

void vs_vq_push(struct vs_vq *vq, uint16_t head, uint32_t len)
{
        struct vs_vring_used_elem *e;

        if (!vs_vq_ready(vq))
                return;
        e = &vq->used->ring[vq->used_idx & (vq->num - 1)];
        store32(&e->id, head);
        store32(&e->len, len);
        vq->used_idx++;
        /* The entry must be visible before the index that publishes it. */
        __atomic_store_n(&vq->used->idx, htole16(vq->used_idx),
                         __ATOMIC_RELEASE);
}

/* Standard vring_need_event(): did used move past used_event? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
        return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vs_vq_need_notify(struct vs_vq *vq)
{
        uint16_t old, new_idx;
        bool valid;

        if (!vs_vq_ready(vq))
                return false;
        /*
         * Order the used->idx store before reading the guest's suppression
         * fields; otherwise we could read a stale flag or event while the
         * guest reads a stale used->idx, and both sides would sleep.
         */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!vq->event_idx)
                return !(load16(&vq->avail->flags) &
                         VS_VRING_AVAIL_F_NO_INTERRUPT);
        old = vq->signalled_used;
        valid = vq->signalled_used_valid;
        new_idx = vq->used_idx;
        vq->signalled_used = new_idx;
        vq->signalled_used_valid = true;
        return !valid || need_event(load16(used_event(vq)), new_idx, old);
}

void vs_vq_set_notify(struct vs_vq *vq, bool on)
{
        if (!vs_vq_ready(vq))
                return;
        vq->no_notify = !on;
        if (!vq->event_idx)
                store16(&vq->used->flags, on ? 0 : VS_VRING_USED_F_NO_NOTIFY);
        else if (on)
                store16(avail_event(vq), kick_at(vq));
        /*
         * The request must be visible before the caller re-reads avail->idx,
         * or a buffer added meanwhile would get neither a kick nor a look.
         */
        if (on)
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool vs_vq_has_avail(struct vs_vq *vq)
{
        if (!vs_vq_ready(vq))
                return false;
        return load_avail_idx(vq) != vq->last_avail;
}

unsigned vs_vq_avail_count(struct vs_vq *vq)
{
        uint16_t n;

        if (!vs_vq_ready(vq))
                return 0;
        n = (uint16_t)(load_avail_idx(vq) - vq->last_avail);
        return n > vq->num ? 0 : n;
}

unsigned vs_vq_unreaped(struct vs_vq *vq)
{
        uint16_t n;

        if (!vs_vq_ready(vq) || !vq->event_idx)
                return 0;
        n = (uint16_t)(load_avail_idx(vq) - load16(used_event(vq)));
        return n > vq->num ? vq->num : n;
}

void vs_vq_set_kick_batch(struct vs_vq *vq, unsigned n)
{
        if (n < 1)
                n = 1;
        if (vq->num && n > vq->num)
                n = vq->num;
        vq->kick_batch = (uint16_t)n;
        if (vs_vq_ready(vq) && vq->event_idx && !vq->no_notify) {
                store16(avail_event(vq), kick_at(vq));
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
        }
}
