/* SPDX-License-Identifier: MIT */
/* vhost-user wire format (QEMU docs/interop/vhost-user.rst). */
#pragma once

#include <stdint.h>

#define VU_HDR_LEN 12u
#define VU_VERSION 1u
#define VU_FLAG_VERSION_MASK 0x3u
#define VU_FLAG_REPLY 0x4u
#define VU_FLAG_NEED_REPLY 0x8u
#define VU_MAX_FDS 8u
/* Largest payload we accept: a full memory table, or 256 bytes of config. */
#define VU_MAX_PAYLOAD 512u
#define VU_MAX_CONFIG 256u

#define VU_F_PROTOCOL_FEATURES 30

#define VU_PF_MQ 0
#define VU_PF_REPLY_ACK 3
#define VU_PF_BACKEND_REQ 5
#define VU_PF_CONFIG 9

/* Rings a frontend may name. QEMU sets num_vqs freely and sets up every
 * ring up to it, even past what the device uses; those rings stay inert. */
#define VU_MAX_RINGS 1024u
/* Scheduled rings one wake-up of the scheduling eventfd runs, at most. */
#define VU_SCHED_PER_WAKE 8u
/* Messages one wake-up of the frontend socket handles, at most. */
#define VU_MSGS_PER_WAKE 64u
#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD 0x100u

enum vu_request {
        VU_GET_FEATURES = 1,
        VU_SET_FEATURES = 2,
        VU_SET_OWNER = 3,
        VU_RESET_OWNER = 4,
        VU_SET_MEM_TABLE = 5,
        VU_SET_VRING_NUM = 8,
        VU_SET_VRING_ADDR = 9,
        VU_SET_VRING_BASE = 10,
        VU_GET_VRING_BASE = 11,
        VU_SET_VRING_KICK = 12,
        VU_SET_VRING_CALL = 13,
        VU_SET_VRING_ERR = 14,
        VU_GET_PROTOCOL_FEATURES = 15,
        VU_SET_PROTOCOL_FEATURES = 16,
        VU_GET_QUEUE_NUM = 17,
        VU_SET_VRING_ENABLE = 18,
        VU_SET_BACKEND_REQ_FD = 21,
        VU_GET_CONFIG = 24,
        VU_SET_CONFIG = 25,
        VU_REQUEST_MAX = 26,
};

enum vu_backend_request {
        VU_BACKEND_CONFIG_CHANGE_MSG = 2,
};

struct vu_hdr {
        uint32_t request;
        uint32_t flags;
        uint32_t size;
};

struct vu_vring_state {
        uint32_t index;
        uint32_t num;
};

struct vu_vring_addr {
        uint32_t index;
        uint32_t flags;
        uint64_t desc;
        uint64_t used;
        uint64_t avail;
        uint64_t log;
};

struct vu_mem_region {
        uint64_t gpa;
        uint64_t size;
        uint64_t uva;
        uint64_t mmap_offset;
};

struct vu_mem_table {
        uint32_t nregions;
        uint32_t padding;
        struct vu_mem_region regions[];
};

struct vu_config {
        uint32_t offset;
        uint32_t size;
        uint32_t flags;
        uint8_t data[];
};
