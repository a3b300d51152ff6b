/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues, device side.
 *
 * Security model: the descriptor table, the avail ring and every buffer they
 * name are written by an untrusted guest, concurrently with us. Each field is
 * read once into a local, validated, and only then used. A chain is walked
 * with a ttl equal to the queue size; indices are checked against the queue
 * size before they index anything; addresses go through vs_mem, which never
 * returns memory outside the table. Every descriptor read counts against
 * the chain's cap (below), so a chain costs bounded work whatever it holds.
 * The first violation is recorded in vq->error and the queue is not used
 * again until it is set up anew.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem/mem.h"

#define VS_VQ_MAX_SIZE 32768u

/*
 * Work per chain and per call: every descriptor the guest can make us read
 * counts, whatever its length (empty ones too) and wherever it is (the
 * direct table, an indirect table, the indirect descriptor itself).
 *
 * VS_VQ_MAX_CHAIN: descriptors one chain may have, direct and indirect
 * together; one more breaks the queue (-E2BIG). The spec asks drivers to
 * keep a chain within the queue size; QEMU (VIRTQUEUE_MAX_SIZE) and Linux
 * vhost (UIO_MAXIOV) accept up to 1024 through an indirect table whatever
 * the queue size, and Linux guests build such chains (splice() from a
 * pipe of more than 64 pages into a port on a 64-entry QEMU ring), so the
 * cap is that constant. The direct part is also bounded by the queue size
 * (a longer one is a loop: -ELOOP).
 * VS_VQ_MAX_IOV: iovecs one chain may map to after region splitting (the
 * same 1024: a chain of 1024 descriptors each in one region fits).
 * VS_VQ_MAX_CHAIN_BYTES: the spec's 2^32-byte limit on a chain's total
 * length; a longer one breaks the queue (-EMSGSIZE).
 *
 * VS_VQ_CALL_DESCS, VS_VQ_CALL_BYTES: the budget of one call into the
 * device (a kick or scheduled run from the transport, or any vs_port_*()
 * / vs_device_*() call, with what its callbacks do), over all queues. A
 * chain is taken only while VS_VQ_MAX_CHAIN descriptors and one byte of
 * budget are left; the rest waits for the transport's schedule op, which
 * runs the queue again from the event loop, after what else is ready.
 *
 * Worst case per call, from these constants:
 *   descriptors read:  VS_VQ_CALL_DESCS = 4096 (a chain starts only with
 *                      1024 left, and reads at most 1024)
 *   bytes of chains:   VS_VQ_CALL_BYTES - 1 + VS_VQ_MAX_CHAIN_BYTES
 *                      = 4 MiB - 1 + 4 GiB (one last chain may name up to
 *                      2^32 bytes). Those are iovecs handed on, not bytes
 *                      moved: the device itself copies at most what the
 *                      embedder asked for (vs_port_write()'s len,
 *                      vs_port_recv_fd()'s max, 8 bytes per control-tx
 *                      chain, one control message per control-rx chain),
 *                      and the host side's have_data op takes what it can.
 * Ring reads outside chains are O(1) per chain taken.
 *
 * Per loop callback of the vhost-user transport (vhost_user.c): a kick
 * is one call; a scheduled pass runs at most VU_SCHED_PER_WAKE (8) rings,
 * one call each, and signals itself for the rest; a read of the frontend
 * socket handles at most 64 messages, of which SET_VRING_KICK and
 * SET_VRING_ENABLE may each be one call. So one callback reads at most
 * 8 x 4096 (scheduled) or 64 x 4096 (a burst of set-up messages, which
 * only the VMM sends) descriptors.
 */
#define VS_VQ_MAX_CHAIN 1024u
#define VS_VQ_MAX_IOV 1024u
#define VS_VQ_MAX_CHAIN_BYTES (1ull << 32)
#define VS_VQ_CALL_DESCS (4 * VS_VQ_MAX_CHAIN)
#define VS_VQ_CALL_BYTES (4ull << 20)

#define VS_VRING_DESC_F_NEXT 1u
#define VS_VRING_DESC_F_WRITE 2u
#define VS_VRING_DESC_F_INDIRECT 4u
#define VS_VRING_USED_F_NO_NOTIFY 1u
#define VS_VRING_AVAIL_F_NO_INTERRUPT 1u

/* Feature bits of the ring layer. */
#define VS_F_INDIRECT_DESC 28
#define VS_F_EVENT_IDX 29
#define VS_F_VERSION_1 32

struct vs_vring_desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
};

struct vs_vring_avail {
        uint16_t flags;
        uint16_t idx;
        uint16_t ring[];        /* num entries, then le16 used_event */
};

struct vs_vring_used_elem {
        uint32_t id;
        uint32_t len;
};

struct vs_vring_used {
        uint16_t flags;
        uint16_t idx;
        struct vs_vring_used_elem ring[]; /* num entries, then le16 avail_event */
};

/* One popped descriptor chain: device-readable iovecs first, then writable. */
struct vs_vq_elem {
        uint16_t head;
        unsigned out_num;       /* readable iovecs: iov[0 .. out_num) */
        unsigned in_num;        /* writable iovecs: iov[out_num .. out_num + in_num) */
        uint64_t out_len;       /* total readable bytes */
        uint64_t in_len;        /* total writable bytes */
        /* Descriptors read by the vs_vq_pop() that filled it, whatever it
         * returned: the cost counters' measure of work. */
        unsigned ndesc;
        struct iovec iov[VS_VQ_MAX_IOV];
};

struct vs_vq {
        /* Set by the transport. */
        uint16_t num;           /* 0 = not configured */
        bool addr_set;
        bool addr_is_uva;       /* ring addresses are frontend virtual addresses */
        bool enabled;
        bool event_idx;         /* VIRTIO_RING_F_EVENT_IDX negotiated */
        bool indirect;          /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
        uint64_t desc_addr, avail_addr, used_addr;

        /* Ring pointers, valid after vs_vq_map(). */
        struct vs_vring_desc *desc;
        struct vs_vring_avail *avail;
        struct vs_vring_used *used;

        uint16_t last_avail;    /* next avail index to pop */
        uint16_t used_idx;      /* our copy of used->idx */
        uint16_t signalled_used;
        bool signalled_used_valid;
        bool no_notify;         /* vs_vq_set_notify(false) in force */
        /* With EVENT_IDX: buffers the guest adds before it kicks (0 and 1
         * both mean at the first); vs_vq_set_kick_batch(). */
        uint16_t kick_batch;
        int error;              /* 0, or the -errno of the first violation */
};

/* A blank, unconfigured queue. */
void vs_vq_init(struct vs_vq *vq);

/*
 * Size: a power of two in [1, VS_VQ_MAX_SIZE], else -EINVAL. On success the
 * ring pointers are dropped (they were checked for the old size): call
 * vs_vq_map() again.
 */
int vs_vq_set_num(struct vs_vq *vq, unsigned num);

/*
 * Record ring addresses; they are translated by vs_vq_map(). Drops the
 * current ring pointers until then.
 */
void vs_vq_set_addr(struct vs_vq *vq, uint64_t desc, uint64_t avail,
                    uint64_t used, bool is_uva);

/* Resume point: next avail index to pop and used index. Clears vq->error. */
void vs_vq_set_base(struct vs_vq *vq, uint16_t base);

/* The next avail index that would be popped (GET_VRING_BASE). */
uint16_t vs_vq_get_base(const struct vs_vq *vq);

/*
 * Translate the ring addresses through @mem. Each ring part must lie in one
 * region and be aligned as the spec requires. -EINVAL if the queue has no
 * size or no address, -EFAULT if a part is unmapped, -EINVAL on misalignment.
 */
int vs_vq_map(struct vs_vq *vq, const struct vs_mem *mem);

/* Forget the ring pointers (memory going away or ring disabled). */
void vs_vq_unmap(struct vs_vq *vq);

/* Mapped, enabled and not broken: the device may use it. */
bool vs_vq_ready(const struct vs_vq *vq);

/*
 * Pop the next available chain into @elem.
 * Returns 1 with @elem filled, 0 if the ring is empty, or a negative errno
 * when the guest broke the rules (the queue is then marked broken):
 *   -EOVERFLOW  avail index moved more than the queue size
 *   -ERANGE     head or next index >= queue size
 *   -ELOOP      direct part longer than the queue size, or a walk in an
 *               indirect table longer than the table (a loop)
 *   -EPROTO     nested indirect, indirect without the feature, or
 *               INDIRECT with NEXT (the spec forbids both on one)
 *   -EINVAL     indirect table length 0 or not a multiple of 16
 *   -EFAULT     buffer outside guest memory, or addr + len wraps
 *   -EBADMSG    a readable descriptor after a writable one
 *   -E2BIG      more than VS_VQ_MAX_CHAIN descriptors or VS_VQ_MAX_IOV
 *               iovecs
 *   -EMSGSIZE   more than VS_VQ_MAX_CHAIN_BYTES bytes
 *   -ENODEV     queue not ready
 */
int vs_vq_pop(struct vs_vq *vq, const struct vs_mem *mem,
              struct vs_vq_elem *elem);

/* Give back the last @n popped chains (they will be popped again). */
void vs_vq_unpop(struct vs_vq *vq, unsigned n);

/* Return a chain to the guest with @len bytes written into it. */
void vs_vq_push(struct vs_vq *vq, uint16_t head, uint32_t len);

/*
 * After one or more pushes: must the guest be interrupted? Honours
 * VRING_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX.
 */
bool vs_vq_need_notify(struct vs_vq *vq);

/*
 * Ask the guest to kick (@on) or not to kick (!@on) when it adds buffers.
 * Kicks are on by default; with EVENT_IDX, a pop that finds the ring empty
 * re-arms them (unless turned off here), so a consumer that pops until empty
 * is always kicked for the next buffer.
 * After enabling, the caller must check vs_vq_has_avail() again: buffers
 * may have arrived before the guest saw the request.
 * With EVENT_IDX, enabling asks for one kick after the current last_avail
 * and disabling does nothing (as in Linux vhost): enable again after each
 * drain of the ring, or kicks for later buffers will not come.
 */
void vs_vq_set_notify(struct vs_vq *vq, bool on);

/*
 * With EVENT_IDX, ask for the kick only once the guest has added @n
 * buffers (clamped to [1, ring size]) after the ones already taken,
 * instead of at the first. Takes effect now if kicks are on (the caller
 * then checks vs_vq_has_avail() again) and on every later re-arm. A
 * guest that adds fewer than @n never kicks: the caller must look again
 * by itself (a timer). Without EVENT_IDX the guest kicks at each add.
 */
void vs_vq_set_kick_batch(struct vs_vq *vq, unsigned n);

/* Are buffers waiting? (false on a queue that is not ready) */
bool vs_vq_has_avail(struct vs_vq *vq);

/* How many: 0 on a queue that is not ready or an index past the ring. */
unsigned vs_vq_avail_count(struct vs_vq *vq);

/*
 * With EVENT_IDX: buffers the guest added since the used index it last
 * asked a notification for (used_event, which Linux sets where it last
 * reaped): the ring size if that reads past the ring, 0 without EVENT_IDX
 * or on a queue that is not ready.
 */
unsigned vs_vq_unreaped(struct vs_vq *vq);

/* Mark the queue broken with @err (negative errno) unless already broken. */
void vs_vq_fail(struct vs_vq *vq, int err);
