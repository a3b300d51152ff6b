/* SPDX-License-Identifier: MIT */
/*
 * The guest side that fuzz_control and fuzz_ctl share: a device of
 * MAX_PORTS ports over the in-process transport, every queue of QSIZE
 * entries at a fixed place in one region of guest RAM, and a transport that
 * notes which queues the device asked to have run (the target runs them).
 */
#pragma once

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "vserial/vserial.h"

#define MAX_PORTS 4u
#define NVQS (2 * (MAX_PORTS + 1))
#define QSIZE 16u
#define RAM_GPA 0x100000ull
#define RING(q) (0x400ull * (q))                /* desc; avail +0x100; used +0x200 */
#define SLOT 0x100u
#define BUF(q, s) (0x4000ull + 0x1000 * (q) + SLOT * (s))

/* What the device asked of the transport: the transport's opaque. */
struct fz_sched {
        bool scheduled[NVQS];           /* run the queue (the target clears it) */
        unsigned notifies, config_changes;
};

static int fz_tr_notify(void *opaque, unsigned q)
{
        struct fz_sched *s = opaque;

        FZ_CHECK(q < NVQS);
        s->notifies++;
        return 0;
}

static int fz_tr_config_changed(void *opaque)
{
        struct fz_sched *s = opaque;

        s->config_changes++;
        return 0;
}

static int fz_tr_schedule(void *opaque, unsigned q)
{
        struct fz_sched *s = opaque;

        FZ_CHECK(q < NVQS);
        s->scheduled[q] = true;
        return 0;
}

static const struct vs_transport_ops fz_transport = {
        .notify = fz_tr_notify,
        .config_changed = fz_tr_config_changed,
        .schedule = fz_tr_schedule,
};

/* Configure every queue at the fixed layout, as a driver probe does. */
static inline void fz_rings_setup(struct vs_device *dev, uint8_t *ram)
{
        for (unsigned q = 0; q < NVQS; q++) {
                uint64_t base = RAM_GPA + RING(q);

                memset(ram + RING(q), 0, 0x400);
                vs_device_queue_set_num(dev, q, QSIZE);
                vs_device_queue_set_addr(dev, q, base, base + 0x100, base + 0x200, false);
                vs_device_queue_set_base(dev, q, 0);
                vs_device_queue_enable(dev, q, true);
        }
}

/* The used ring of queue @q: its index as the device last published it. */
static inline uint16_t fz_used_idx(const uint8_t *ram, unsigned q)
{
        uint16_t le;

        memcpy(&le, ram + RING(q) + 0x200 + 2, 2);
        return le16toh(le);
}

/* Its entry at index @i: the chain's head and the bytes the device wrote. */
static inline void fz_used_entry(const uint8_t *ram, unsigned q, uint16_t i, uint32_t *ret_id,
                                 uint32_t *ret_len)
{
        uint64_t at = RING(q) + 0x200 + 4 + 8 * (i % QSIZE);
        uint32_t id, len;

        memcpy(&id, ram + at, 4);
        memcpy(&len, ram + at + 4, 4);
        *ret_id = le32toh(id);
        *ret_len = le32toh(len);
}
