/* SPDX-License-Identifier: MIT */
/*
 * The driver-side fake: everything a guest and its VMM do to a vhost-user
 * virtio-console backend, in one process and one thread.
 *
 *  - struct fake_host is the device side as the daemon would build it: an
 *    epoll loop, a vs_device with ports whose host side records what it is
 *    given, and a vs_vu serving one end of a socketpair.
 *  - struct fake_driver is the other end: guest memory in a memfd (one or
 *    more regions, gpa and frontend uva independent), real split rings laid
 *    out in it, the vhost-user frontend (UML's or QEMU's message sequence,
 *    fake_frontend.c), and the guest side of the console control protocol
 *    as Linux virtio_console implements it.
 *
 * Determinism: nothing runs in another thread. Whenever the fake waits for
 * the backend it pumps the backend's loop with vs_epoll_run_once(ep, 0), a
 * bounded number of times; a backend that never answers makes the call fail
 * with -ETIMEDOUT instead of hanging the test.
 *
 * The fake is strict where a real guest is: a reply whose flags are not
 * exactly 0x5 or whose size is wrong, bytes the backend sends when no reply
 * is due, a used ring that moved without an interrupt, a signal on a call fd
 * that was already replaced, or data for a port the guest has not opened
 * are all recorded as the fake's first error (fake_error()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop/loop.h"
#include "mem/mem.h"
#include "vhost-user/vhost_user.h"
#include "virtq/virtq.h"
#include "vserial/vserial.h"

/* ---- vhost-user wire format (from the spec, not from the backend) ---- */

enum fake_vu_req {
        FAKE_VU_GET_FEATURES = 1,
        FAKE_VU_SET_FEATURES = 2,
        FAKE_VU_SET_OWNER = 3,
        FAKE_VU_RESET_OWNER = 4,
        FAKE_VU_SET_MEM_TABLE = 5,
        FAKE_VU_SET_LOG_BASE = 6,
        FAKE_VU_SET_LOG_FD = 7,
        FAKE_VU_SET_VRING_NUM = 8,
        FAKE_VU_SET_VRING_ADDR = 9,
        FAKE_VU_SET_VRING_BASE = 10,
        FAKE_VU_GET_VRING_BASE = 11,
        FAKE_VU_SET_VRING_KICK = 12,
        FAKE_VU_SET_VRING_CALL = 13,
        FAKE_VU_SET_VRING_ERR = 14,
        FAKE_VU_GET_PROTOCOL_FEATURES = 15,
        FAKE_VU_SET_PROTOCOL_FEATURES = 16,
        FAKE_VU_GET_QUEUE_NUM = 17,
        FAKE_VU_SET_VRING_ENABLE = 18,
        FAKE_VU_SEND_RARP = 19,
        FAKE_VU_SET_BACKEND_REQ_FD = 21,
        FAKE_VU_GET_CONFIG = 24,
        FAKE_VU_SET_CONFIG = 25,
        FAKE_VU_GET_MAX_MEM_SLOTS = 36,
        FAKE_VU_ADD_MEM_REG = 37,
        FAKE_VU_REM_MEM_REG = 38,
        FAKE_VU_SET_STATUS = 39,
        FAKE_VU_GET_STATUS = 40,
};

#define FAKE_VU_VERSION 0x1u
#define FAKE_VU_REPLY 0x4u
#define FAKE_VU_NEED_REPLY 0x8u
#define FAKE_VU_HDR 12u
#define FAKE_VU_MAX_FDS 8u
/* Largest payload the fake ever builds (SET_MEM_TABLE with 8 regions). */
#define FAKE_VU_MAX_PAYLOAD 4096u
#define FAKE_VU_NOFD_MASK 0x100u

/* Feature bits */
#define FAKE_F_PROTOCOL_FEATURES 30
#define FAKE_F_ACCESS_PLATFORM 33
#define FAKE_F_RING_PACKED 34

/* Protocol feature bits */
#define FAKE_PF_MQ 0
#define FAKE_PF_REPLY_ACK 3
#define FAKE_PF_BACKEND_REQ 5
#define FAKE_PF_CONFIG 9
#define FAKE_PF_INBAND 14
#define FAKE_PF_MEM_SLOTS 15
#define FAKE_PF_STATUS 16
/* What UML's virtio_uml.c keeps of the offer. */
#define FAKE_UML_PF_MASK 0x4228ull
/* QEMU keeps every offered bit from 0 to 19. */
#define FAKE_QEMU_PF_MASK 0xfffffull

struct fake_vu_region {
        uint64_t gpa, size, uva, mmap_offset;
};

struct fake_vu_vring_addr {
        uint32_t index, flags;
        uint64_t desc, used, avail, log;
};

/* ---- console control protocol (virtio spec 5.3.6.2) ------------------ */

enum {
        FAKE_C_DEVICE_READY = 0,
        FAKE_C_PORT_ADD = 1,
        FAKE_C_PORT_REMOVE = 2,
        FAKE_C_PORT_READY = 3,
        FAKE_C_CONSOLE_PORT = 4,
        FAKE_C_RESIZE = 5,
        FAKE_C_PORT_OPEN = 6,
        FAKE_C_PORT_NAME = 7,
};
#define FAKE_BAD_ID 0xffffffffu

/* Linux virtio_console buffer sizes. */
#define FAKE_RX_BUF 4096u
#define FAKE_TX_MAX 32768u

#define FAKE_RX_NONE 0xffffffffu
#define FAKE_MAX_PORTS 32u
#define FAKE_MAX_VQS 72u
#define FAKE_LOG_MAX 512u

/* ---- device side ------------------------------------------------------ */

struct fake_host;

/* The host side of one port: records what the device hands it. */
struct fake_port {
        struct fake_host *host;
        struct vs_port *port;           /* NULL once removed */
        uint32_t id;
        /* guest -> host */
        uint8_t *in;
        size_t in_len, in_cap;
        /* have_data takes at most this many more bytes (SIZE_MAX: all). */
        size_t take_limit;
        unsigned have_data_calls;
        /* host -> guest bytes queued by fake_port_send(), not taken yet */
        uint8_t *out;
        size_t out_len, out_cap;
        bool want_flush;                /* guest_ready fired since last flush */
        /* callbacks seen */
        unsigned guest_open_calls, guest_close_calls, guest_ready_calls;
        bool guest_connected;
        struct fake_port *dead_next;    /* on fake_host.dead once replaced */
};

struct fake_host {
        struct vs_epoll *ep;
        struct vs_device *dev;
        struct vs_vu *vu;
        unsigned closed_calls;
        int closed_err;
        char closed_why[160];
        /* rings_short() calls of the vs_vu, and the last one's numbers */
        unsigned rings_short_calls, rings_have, rings_need;
        /* max(FAKE_MAX_PORTS, the device's max_ports) slots, by id */
        struct fake_port **ports;
        unsigned nports;
        /* Run by fake_host_pump() each round (the in-process transport's
         * kicks); returns the work it dispatched. NULL = none. */
        int (*pump_hook)(void *opaque);
        void *pump_opaque;
        /* ports whose id was added again: kept (tests may hold them) and
         * freed with the host */
        struct fake_port *dead;
};

/* @cfg may be NULL (defaults). */
int fake_host_new(const struct vs_device_config *cfg, struct fake_host **ret);
void fake_host_free(struct fake_host *h);
/* Add a port; NULL on failure (the error is in *@err if @err is not NULL). */
struct fake_port *fake_host_add_port(struct fake_host *h, int32_t id,
                                     const char *name, bool console,
                                     int *err);
/*
 * Run the backend's loop until it has nothing to do, then write queued host
 * data of ports whose guest_ready fired. Returns the callbacks dispatched,
 * -ELOOP if it never went idle, or the loop's error.
 */
int fake_host_pump(struct fake_host *h);
/* Queue @len bytes to the guest and offer them at once (vs_port_write). */
int fake_port_send(struct fake_port *p, const void *buf, size_t len);
/* Accept guest data again (and offer the kept buffer: vs_port_throttle). */
void fake_port_unthrottle(struct fake_port *p, size_t take_limit);

/* ---- driver side ------------------------------------------------------ */

enum fake_style {
        FAKE_STYLE_UML,
        FAKE_STYLE_QEMU,
};

struct fake_driver_cfg {
        enum fake_style style;
        /* 0: one default region for the style. mmap_offset is the region's
         * offset in the memfd; regions must not share file bytes. */
        unsigned nregions;
        struct fake_vu_region regions[VS_MEM_MAX_REGIONS];
        unsigned alloc_region;          /* rings and buffers are placed here */
        /* QEMU's num_vqs property: rings the frontend sets up; 0 = what the
         * guest uses. Extra rings get CALL/ERR/ENABLE but no address. */
        unsigned num_vqs;
        uint16_t queue_size;            /* 0: 256 (UML) or 64 (QEMU) */
        /* rx buffers posted per port at PORT_ADD; 0: the queue size (as
         * Linux), FAKE_RX_NONE: none (the test posts its own) */
        unsigned rx_fill;
        uint64_t pf_mask;               /* 0: the style's mask */
        bool no_console_open;           /* don't auto PORT_OPEN on CONSOLE_PORT */
        /* Ports (and 2 * (n + 1) rings) the fake can track; 0: FAKE_MAX_PORTS
         * (and FAKE_MAX_VQS rings). */
        unsigned max_ports;
        /* The guest does not negotiate MULTIPORT: queues 0/1 are the console
         * port 0, there is no control queue (Linux without the feature). */
        bool single_port;
        /* control rx buffers posted before DEVICE_READY; 0: the queue size,
         * FAKE_RX_NONE: none (the test posts them: fake_rx_fill(d, 2, n)) */
        unsigned ctrl_rx_fill;
        /* bit id: the guest fails to add port id (Linux add_port() error):
         * it answers PORT_ADD with PORT_READY 0 and never knows the port */
        uint64_t fail_ports;
        /* As Linux: a control event for a port the guest does not have is
         * dropped, not a fake error (the test checks the log instead). */
        bool lenient_ctrl;
        /* The guest does not ack VIRTIO_RING_F_EVENT_IDX even if offered:
         * notifications are suppressed with the ring flags only. */
        bool no_event_idx;
};

struct fake_desc {
        uint64_t pool_gpa;              /* this descriptor's own buffer, 0 = none yet */
        uint32_t pool_len;
        uint64_t gpa;                   /* what is posted now */
        uint32_t len;
        bool busy;
};

struct fake_vq {
        uint16_t num;
        uint64_t desc_gpa, avail_gpa, used_gpa;
        struct vs_vring_desc *desc;
        struct vs_vring_avail *avail;
        struct vs_vring_used *used;
        uint16_t avail_idx;             /* next avail slot we fill */
        uint16_t last_used;             /* next used entry we consume */
        uint16_t kicked_idx;            /* avail idx at the last kick decision */
        struct fake_desc *d;
        uint32_t buf_size;
        bool writable;                  /* an rx queue */
        bool live;                      /* addresses known to the device */
        int kick;                       /* eventfd we write, -1 = none */
        int call;                       /* our end of the current call fd */
        int call_old[4];                /* replaced call fds, must stay silent */
        uint64_t calls;                 /* notifications received */
        bool pending_call;              /* signalled, used ring not yet read */
};

struct fake_ctrl {
        uint32_t id;
        uint16_t event, value;
        bool from_guest;
};

struct fake_dport {
        bool added, console, host_open, guest_open, named, removed;
        char name[VS_PORT_NAME_MAX + 1];
        uint8_t *data;                  /* received, in order */
        size_t len, cap;
        size_t discarded;               /* arrived while the guest had it closed */
        uint16_t cols, rows;
        unsigned rx_buffers;            /* rx buffers consumed */
        uint8_t resize_raw[4];          /* payload of the last RESIZE */
        unsigned resizes;               /* RESIZE messages seen */
};

struct fake_driver {
        struct fake_driver_cfg cfg;
        struct fake_host *host;
        int sock;                       /* frontend end of the vhost-user socket */
        int req;                        /* our end of the backend request channel */
        int memfd;
        uint8_t *mem;
        size_t mem_size;
        uint64_t alloc_next, alloc_end; /* bump allocator, gpa */
        uint64_t dev_features, features;
        uint64_t offered_pf, pf;
        uint32_t max_nr_ports;
        unsigned nvqs;                  /* rings the guest driver uses */
        unsigned num_vqs;               /* rings the frontend configures */
        uint16_t qsize;
        bool event_idx;
        bool running;                   /* the device may use the rings */
        uint64_t queue_num;             /* GET_QUEUE_NUM answer */
        unsigned vq_cap, port_cap;      /* entries in vq/base and port */
        struct fake_vq *vq;             /* [vq_cap] */
        uint16_t *base;                 /* [vq_cap], from GET_VRING_BASE */
        struct fake_dport *port;        /* [port_cap] */
        struct fake_ctrl *log;          /* [log_cap] */
        unsigned nlog, log_cap;
        unsigned backend_msgs;          /* backend-channel requests seen */
        uint32_t last_backend_req;
        /* In-process transport (fake_driver_new_inproc): no vhost-user, the
         * fake calls the vs_device_* entry points itself. */
        bool inproc;
        bool *ip_pending;               /* [vq_cap]: queued for a kick */
        unsigned *ip_fifo;              /* [vq_cap]: kick order */
        unsigned ip_head, ip_len;
        uint64_t *ip_kicks;             /* [vq_cap]: kicks delivered */
        uint64_t *ip_scheduled;         /* [vq_cap]: schedule() calls */
        uint64_t config_changes;        /* config_changed() calls */
        int err;                        /* first error the fake saw */
        char errmsg[256];
        /* Remote backend (fake_driver_new_remote): it runs in another
         * process, so waits block in poll() (up to remote_ms) instead of
         * pumping; 0 = the backend is d->host, in this thread. */
        unsigned remote_ms;
        /* Remote: how long fake_service() waits for one more notification
         * before it calls the device idle. */
        unsigned remote_idle_ms;
};

int fake_driver_new(struct fake_host *h, const struct fake_driver_cfg *cfg,
                    struct fake_driver **ret);
void fake_driver_free(struct fake_driver *d);
/* The first problem the fake saw, "" if none. */
const char *fake_error(const struct fake_driver *d);
int fake_fail(struct fake_driver *d, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Guest memory. NULL unless [gpa, gpa+len) is inside one region. */
void *fake_gpa(struct fake_driver *d, uint64_t gpa, uint64_t len);
uint64_t fake_gpa_to_uva(const struct fake_driver *d, uint64_t gpa);
/* Copy across region boundaries. -EFAULT if a byte is unmapped. */
int fake_mem_write(struct fake_driver *d, uint64_t gpa, const void *buf,
                   size_t len);
int fake_mem_read(struct fake_driver *d, uint64_t gpa, void *buf, size_t len);
/* Bump-allocate guest memory in the alloc region (0 on exhaustion). */
uint64_t fake_alloc(struct fake_driver *d, uint64_t size, uint64_t align);

/* ---- raw vhost-user ---------------------------------------------------- */

/* Send one message: header + @size payload bytes, @nfds fds. */
int fake_vu_send(struct fake_driver *d, uint32_t req, uint32_t flags,
                 const void *payload, uint32_t size, const int *fds,
                 unsigned nfds);
/* One sendmsg() of @len bytes with @nfds fds (SCM_RIGHTS, up to
 * FAKE_SEND_MAX_FDS: past the 8 a message may carry, as a hostile peer
 * would); what it sent or -errno. */
#define FAKE_SEND_MAX_FDS 16u
ssize_t fake_sendmsg(int sock, const void *buf, size_t len, const int *fds,
                     unsigned nfds, int flags);
/* Send exactly these bytes (a crafted or short message). */
int fake_vu_send_bytes(struct fake_driver *d, const void *buf, size_t len,
                       const int *fds, unsigned nfds);
/*
 * Wait for a reply to @req carrying exactly @size bytes (flags must be 0x5).
 * -ETIMEDOUT if none came, -ECONNRESET at EOF, -EPROTO if it is wrong.
 */
int fake_vu_reply(struct fake_driver *d, uint32_t req, void *payload,
                  uint32_t size);
/* Wait for a REPLY_ACK: u64 0 (-EIO if non-zero). */
int fake_vu_ack(struct fake_driver *d, uint32_t req);
/* Pump the backend and check that it sent nothing unasked. */
int fake_vu_settle(struct fake_driver *d);
/* A message without a natural reply; waits for the ack if @flags asks. */
int fake_vu_msg(struct fake_driver *d, uint32_t req, uint32_t flags,
                const void *payload, uint32_t size, const int *fds,
                unsigned nfds);
int fake_vu_get_u64(struct fake_driver *d, uint32_t req, uint64_t *ret);
int fake_vu_u64(struct fake_driver *d, uint32_t req, uint32_t flags,
                uint64_t v);
int fake_vu_state(struct fake_driver *d, uint32_t req, uint32_t flags,
                  uint32_t index, uint32_t num);
int fake_vu_fd(struct fake_driver *d, uint32_t req, uint32_t flags,
               uint64_t v, int fd);
int fake_vu_get_vring_base(struct fake_driver *d, uint32_t index,
                           uint16_t *ret);
/* GET_CONFIG {0, @size, 0}: reply checked to repeat both sizes. */
int fake_vu_get_config(struct fake_driver *d, uint32_t size, void *ret);
/* GET_CONFIG {@offset, @size, 0}: reply checked to repeat offset and size. */
int fake_vu_get_config_at(struct fake_driver *d, uint32_t offset,
                          uint32_t size, void *ret);
/* SET_CONFIG {@offset, @size, 0} + @buf, acked if REPLY_ACK was agreed. */
int fake_vu_set_config(struct fake_driver *d, uint32_t offset,
                       const void *buf, uint32_t size);
/* SET_MEM_TABLE of the configured regions (header size per style). */
int fake_vu_set_mem_table(struct fake_driver *d, uint32_t flags);
/*
 * Pump until the backend reported the connection closed; returns its error
 * (negative errno, or 0 for a clean close) or -ETIMEDOUT if it never did.
 */
int fake_vu_wait_closed(struct fake_driver *d);
/* Flags for a message with no natural reply, as the style sends it. */
uint32_t fake_ack_flags(const struct fake_driver *d, bool style_acks);

/* ---- rings ------------------------------------------------------------- */

/* Allocate and zero ring @q (style alignment) and its descriptor table. */
int fake_vq_alloc(struct fake_driver *d, unsigned q, uint16_t num,
                  bool writable, uint32_t buf_size);
void fake_vq_release(struct fake_driver *d, unsigned q);
/* Post one buffer at @gpa (single descriptor); returns its head or -errno. */
int fake_vq_post(struct fake_driver *d, unsigned q, uint64_t gpa,
                 uint32_t len);
/* Post this descriptor's own buffer, filled with @data if readable. */
int fake_vq_post_data(struct fake_driver *d, unsigned q, const void *data,
                      uint32_t len);
/* Kick unless the device asked not to (NO_NOTIFY / avail_event). */
int fake_vq_kick(struct fake_driver *d, unsigned q);
/* Take the next used entry: 1 and head/len, 0 if none, -errno if bogus. */
int fake_vq_get_used(struct fake_driver *d, unsigned q, uint16_t *head,
                     uint32_t *len);
/* Read the call fd(s) of @q: notifications since last time. */
uint64_t fake_vq_drain_calls(struct fake_driver *d, unsigned q);
/* Post @count receive buffers of FAKE_RX_BUF on @q (fewer if the ring
 * fills) and kick, as Linux fill_queue(). */
int fake_rx_fill(struct fake_driver *d, unsigned q, unsigned count);

/* ---- guest console driver --------------------------------------------- */

/* Driver vq of port @id: rx (true) or tx. */
unsigned fake_port_vq(uint32_t id, bool rx);
/* Post control rx buffers and send DEVICE_READY, then settle. */
int fake_console_start(struct fake_driver *d);
/* Send a control message on vq 3 and wait until the device used it. */
int fake_ctrl_send(struct fake_driver *d, uint32_t id, uint16_t event,
                   uint16_t value);
/* The guest opens (true) or closes a port: PORT_OPEN. */
int fake_guest_open(struct fake_driver *d, uint32_t id, bool open);
/* Queue @len bytes on port @id's tx ring (<= 32 KiB per buffer). Returns
 * bytes posted (less if the ring is full) or -errno. */
ssize_t fake_guest_write(struct fake_driver *d, uint32_t id, const void *buf,
                         size_t len);
/*
 * Pump the backend and handle every interrupt until nothing moves.
 * -ELOOP if it never settles, or the fake's first error.
 */
int fake_service(struct fake_driver *d);
/* Forget guest-side state (a driver reset / rmmod). */
void fake_console_forget(struct fake_driver *d);
/* Index of the first control log entry matching, from @from; -1 if none. */
int fake_log_find(const struct fake_driver *d, unsigned from, uint32_t id,
                  uint16_t event, bool from_guest);

/* ---- frontends (fake_frontend.c) ---------------------------------------- */

int fake_uml_boot(struct fake_driver *d);
/* Driver probe: features, config, memory, rings, DEVICE_READY exchange. */
int fake_uml_probe(struct fake_driver *d);
/* rmmod: ENABLE 0 for N-1..0, GET_FEATURES barrier, guest forgets all. */
int fake_uml_remove(struct fake_driver *d);

int fake_qemu_realize(struct fake_driver *d);
/* DRIVER_OK: full start with base 0 and the console handshake. */
int fake_qemu_start(struct fake_driver *d);
/* ENABLE 0 then GET_VRING_BASE for every ring; bases kept in d->base. */
int fake_qemu_stop(struct fake_driver *d);
/* cont: start again with the returned bases, same rings, no DEVICE_READY. */
int fake_qemu_cont(struct fake_driver *d);
/* system_reset: stop, then a fresh start (new rings, base 0). */
int fake_qemu_reset(struct fake_driver *d);

/*
 * In-process transport: for a VMM that links the library, and for rings
 * vhost-user cannot address (more than 256 with fds). The fake binds itself
 * as the device's struct vs_transport_ops: notify() counts in vq[q].calls
 * and marks the ring for the guest, schedule() and guest kicks queue
 * vs_device_queue_kick() calls that fake_host_pump() delivers, in order.
 * Guest memory is handed over with vs_device_set_memory(), ring addresses
 * as gpas. A notification for a ring the guest has not set up, or a second
 * fake on the same host, is a fake error.
 */
int fake_driver_new_inproc(struct fake_host *h,
                           const struct fake_driver_cfg *cfg,
                           struct fake_driver **ret);
/* Probe: features, config, memory, every ring, then the console start. */
int fake_inproc_probe(struct fake_driver *d);
/* Driver remove: disable every ring (last first) unless @device_gone (the
 * device was reset under it), then forget the guest side and the rings. */
int fake_inproc_remove(struct fake_driver *d, bool device_gone);

/*
 * Remote backend: the device runs in another process (a vserial daemon) and
 * @sock is a connected vhost-user socket to it; the fake owns it from here
 * on. @h is only a placeholder: create it with the remote device's
 * max_ports (its device's queue count is QEMU's default num_vqs) and never
 * give it a backend. Every wait is bounded by @timeout_ms of wall time
 * instead of pump rounds; the frontends (fake_uml_*, fake_qemu_*) and the
 * console driver functions work unchanged.
 */
int fake_driver_new_remote(struct fake_host *h,
                           const struct fake_driver_cfg *cfg, int sock,
                           unsigned timeout_ms, struct fake_driver **ret);

/* For tests: fail with the fake's error text. */
#define FAKE_OK(d, expr)                                                   \
        do {                                                               \
                int fake_rc_ = (int)(expr);                                \
                if (fake_rc_ < 0)                                          \
                        fail_msg("%s = %d (%s) [%s]", #expr, fake_rc_,     \
                                 strerror(-fake_rc_), fake_error(d));      \
        } while (0)
