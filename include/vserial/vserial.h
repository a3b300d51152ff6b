/* SPDX-License-Identifier: MIT */
/*
 * libvserial: the virtio-serial device (virtio-console, device ID 3, with
 * VIRTIO_CONSOLE_F_MULTIPORT) as a library.
 *
 * Three parties meet here:
 *  - the device (struct vs_device): config space, the control protocol, the
 *    port table and the data path over split virtqueues;
 *  - ports (struct vs_port), each with a host side implemented by the
 *    embedding program through struct vs_port_ops;
 *  - a transport (struct vs_transport_ops) that gives the device guest
 *    memory and rings and delivers its interrupts: the vhost-user backend in
 *    this library is one, an in-process VMM can be another.
 *
 * Conventions: functions return 0 or a positive count on success and a
 * negative errno on failure. Nothing here logs, allocates without bound, or
 * owns an event loop. Destructors accept NULL. Not thread-safe: call
 * everything for one device from one thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VS_VIRTIO_ID_CONSOLE 3
/* virtio-console feature bits */
#define VS_CONSOLE_F_SIZE 0
#define VS_CONSOLE_F_MULTIPORT 1
#define VS_CONSOLE_F_EMERG_WRITE 2

/* 1024 virtqueues = 2 * (511 + 1) */
#define VS_MAX_PORTS 511u
#define VS_DEFAULT_MAX_PORTS 31u
#define VS_PORT_NAME_MAX 255u
/* struct virtio_console_config: le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr */
#define VS_CONFIG_SIZE 12u

struct vs_device;
struct vs_port;

/* ---- device ---------------------------------------------------------- */

/*
 * Field order of the VIRTIO_CONSOLE_RESIZE payload. The spec and Linux since
 * commit 5326ab737a47 (also in Debian's 6.1.176) read cols then rows; older
 * kernels read rows then cols.
 */
enum vs_resize_order {
        VS_RESIZE_COLS_ROWS = 0,
        VS_RESIZE_ROWS_COLS = 1,
};

struct vs_device_config {
        uint32_t max_ports;     /* 1 .. VS_MAX_PORTS; 0 = VS_DEFAULT_MAX_PORTS */
        uint16_t cols, rows;    /* initial size of console ports (0 = unknown) */
        enum vs_resize_order resize_order;
};

/*
 * Create a device with no ports and no transport. *@ret is owned by the
 * caller and freed with vs_device_free(). Errors: -EINVAL (bad config),
 * -ENOMEM.
 */
int vs_device_new(const struct vs_device_config *cfg, struct vs_device **ret);

/* Remove every port (calling their exit op) and free. Accepts NULL. */
void vs_device_free(struct vs_device *dev);

/* Number of virtqueues the device uses: 2 * (max_ports + 1). */
unsigned vs_device_num_queues(const struct vs_device *dev);

uint32_t vs_device_max_ports(const struct vs_device *dev);

/* Driver-level events, for an embedder that reports them. */
enum vs_device_event {
        VS_EVENT_DRIVER_READY,  /* the guest driver (re)started: DEVICE_READY */
        VS_EVENT_RESET,         /* the guest side was reset (vs_device_reset) */
};

/* Call @fn for each device event (NULL to stop). */
void vs_device_set_event_cb(struct vs_device *dev,
                            void (*fn)(void *opaque, enum vs_device_event ev),
                            void *opaque);

/* ---- ports ----------------------------------------------------------- */

struct vs_port_ops {
        /* Called once from vs_port_add(); non-zero fails the add. May be NULL. */
        int (*init)(struct vs_port *port);
        /* Called once when the port is removed or the device freed. May be NULL. */
        void (*exit)(struct vs_port *port);
        /* The guest opened (true) or closed (false) the port. May be NULL. */
        void (*set_guest_connected)(struct vs_port *port, bool connected);
        /*
         * The guest can take data again: it opened the port or posted
         * receive buffers after a vs_port_write()/vs_port_recv_fd() that
         * returned short. May be NULL.
         */
        void (*guest_ready)(struct vs_port *port);
        /*
         * The guest wrote @iov. Return how many bytes were consumed. Less
         * than offered throttles the port: the device keeps the buffer and
         * the offset, stops taking data from this port's queue, and offers
         * the rest again after vs_port_throttle(port, false). Returning a
         * negative errno is the same as returning 0. Required.
         */
        ssize_t (*have_data)(struct vs_port *port, const struct iovec *iov,
                             unsigned iovcnt);
};

struct vs_port_config {
        int32_t id;             /* -1 = the lowest free (0 for a console if free) */
        const char *name;       /* NULL or "" = unnamed; copied */
        bool console;           /* the guest binds it to hvc */
};

/*
 * Add a port. The device announces it to the guest (PORT_ADD) if the guest
 * driver is ready. @ops must outlive the port; @opaque is returned by
 * vs_port_opaque(). Errors: -EINVAL (id >= max_ports, id 0 for a
 * non-console, name too long or not printable), -EEXIST (id or name in use),
 * -ENOSPC (no free id, or the control queue is full), -ENOMEM, or the init
 * op's error.
 */
int vs_port_add(struct vs_device *dev, const struct vs_port_config *cfg,
                const struct vs_port_ops *ops, void *opaque,
                struct vs_port **ret);

/*
 * Remove a port (PORT_REMOVE to the guest), call its exit op, free it.
 * Errors: -ENOSPC (the control queue is full: the port stays; retry after
 * the guest has taken control messages).
 */
int vs_port_remove(struct vs_port *port);

struct vs_port *vs_port_find(struct vs_device *dev, uint32_t id);
struct vs_port *vs_port_find_name(struct vs_device *dev, const char *name);
/* Ports in id order: start with NULL. */
struct vs_port *vs_port_next(struct vs_device *dev, struct vs_port *prev);

uint32_t vs_port_id(const struct vs_port *port);
const char *vs_port_name(const struct vs_port *port); /* "" if unnamed */
bool vs_port_is_console(const struct vs_port *port);
void *vs_port_opaque(const struct vs_port *port);
bool vs_port_guest_connected(const struct vs_port *port);
bool vs_port_host_connected(const struct vs_port *port);

/*
 * Set a console port's size. Multiport: a RESIZE message to the guest (now,
 * or when the guest has the port ready). Single-port mode (port 0): the
 * config space cols/rows and a config-change interrupt. Errors: -EINVAL
 * (not a console), -ENOSPC (control queue full).
 */
int vs_port_resize(struct vs_port *port, uint16_t cols, uint16_t rows);
void vs_port_get_size(const struct vs_port *port, uint16_t *ret_cols,
                      uint16_t *ret_rows);

/*
 * The host side connected (true) or went away: PORT_OPEN 1/0 to the guest.
 * Errors: -ENOSPC (control queue full; the state is unchanged, retry).
 */
int vs_port_set_host_connected(struct vs_port *port, bool connected);

/*
 * Copy up to @len bytes to the guest's receive buffers. Returns the bytes
 * taken (0 when the guest has not opened the port or has no buffers; the
 * guest_ready op is called when that changes) or a negative errno.
 */
ssize_t vs_port_write(struct vs_port *port, const void *buf, size_t len);

/*
 * Read from @fd straight into the guest's receive buffers (one readv() over
 * as many buffers as are posted, up to @max bytes). Returns bytes moved, 0 at
 * EOF, -ENOBUFS when the guest cannot take data now (the guest_ready op
 * follows when it can), -EAGAIN when @fd has nothing, or another negative
 * errno from readv().
 */
ssize_t vs_port_recv_fd(struct vs_port *port, int fd, size_t max);

/* Bytes the guest can take right now without waiting. */
size_t vs_port_guest_room(struct vs_port *port);

/*
 * Throttle (true) or unthrottle (false) guest->host data. Unthrottling
 * offers the kept buffer again at once, from the saved offset.
 */
void vs_port_throttle(struct vs_port *port, bool throttled);
/* Is guest->host data held back (by vs_port_throttle or a short have_data)? */
bool vs_port_throttled(const struct vs_port *port);

struct vs_port_stats {
        uint64_t to_guest;      /* bytes delivered to the guest */
        uint64_t from_guest;    /* bytes the host side consumed */
};
void vs_port_get_stats(const struct vs_port *port, struct vs_port_stats *ret);

/* ---- cost counters --------------------------------------------------- */

/*
 * The work the guest made the device do. Every input a guest controls costs
 * bounded, counted work: one call into the device (a kick or a scheduled run
 * from the transport, or any vs_port_*() / vs_device_*() call) reads at most
 * 4096 descriptors over all queues; what is left waits for the transport's
 * schedule op. Tests and embedders check these counters against that bound.
 * Counters start at zero with the device and survive resets.
 */
struct vs_queue_stats {
        uint64_t kicks;         /* vs_device_queue_kick() calls (guest kicks,
                                 * scheduled runs, ring starts) */
        uint64_t chains;        /* descriptor chains taken from the ring */
        uint64_t descs;         /* descriptors read: direct, indirect and
                                 * empty ones alike */
        uint64_t bytes;         /* bytes of the chains taken */
        uint64_t schedules;     /* times the device stopped early and asked
                                 * the transport to run the queue again */
        uint64_t errors;        /* times the guest broke the queue */
        uint32_t max_chain_descs; /* most descriptors one chain took
                                 * (at most 1024) */
        uint32_t max_call_descs; /* most descriptors one call into the
                                 * device read, all queues together (at
                                 * most 4096); device totals only, 0 per
                                 * queue */
};

/* Counters of queue @q. Errors: -ERANGE (@q >= vs_device_num_queues()). */
int vs_device_get_queue_stats(const struct vs_device *dev, unsigned q,
                              struct vs_queue_stats *ret);

/* The same summed over all queues (max_chain_descs: the largest). */
void vs_device_get_stats(const struct vs_device *dev, struct vs_queue_stats *ret);

/* What pacing (vs_device_set_timer()) did, all queues together. */
struct vs_pace_stats {
        uint64_t notifies;      /* used-buffer notifications sent */
        uint64_t notifies_held; /* transmit completions whose notification
                                 * waited for the timer */
        uint64_t kick_batches;  /* times a receive queue asked for one kick
                                 * per batch of buffers */
        uint64_t batch_timeouts; /* batches the timer ended */
        uint64_t timer_arms;    /* arm() calls, cancels included */
        uint64_t timer_runs;    /* vs_device_timer() calls */
};
void vs_device_get_pace_stats(const struct vs_device *dev, struct vs_pace_stats *ret);

/* Counters of @port's receive (host->guest) and transmit queues. */
void vs_port_get_queue_stats(const struct vs_port *port, struct vs_queue_stats *rx,
                             struct vs_queue_stats *tx);

/* ---- transport ------------------------------------------------------- */

/* What a transport does for the device. */
struct vs_transport_ops {
        /* Interrupt the guest for used buffers on queue @q. */
        int (*notify)(void *opaque, unsigned q);
        /* Raise a config-change interrupt. May be NULL. */
        int (*config_changed)(void *opaque);
        /*
         * Ask to have vs_device_queue_kick(@q) called again soon: the device
         * stopped early to stay fair and work remains. Required.
         */
        int (*schedule)(void *opaque, unsigned q);
};

/*
 * Pacing. Give the device a one-shot timer: @arm(@opaque, @usec) asks for
 * one call of vs_device_timer() about @usec microseconds from now,
 * replacing an earlier request, and @usec 0 cancels it; it returns 0 or a
 * negative errno (the device then stops pacing and sends what it held).
 * With a timer, and EVENT_IDX negotiated, the device asks less of the
 * guest (docs/performance.md, "Pacing"):
 *  - a receive queue the guest refills one buffer at a time (Linux) kicks
 *    once per batch of buffers, not once per buffer, while host data
 *    waits; the timer ends a batch the guest does not complete;
 *  - a transmit queue's used-buffer notification goes at once when the
 *    port had none in the last timer period, or when the guest may be
 *    short of buffers (half its ring not reaped); otherwise it waits for
 *    the timer (at most one period), the guest meanwhile reaping on its
 *    own as it adds buffers.
 * Without a timer (the default, and with @arm NULL) every notification
 * goes at once and the guest kicks at every buffer the device waits for.
 */
int vs_device_set_timer(struct vs_device *dev, int (*arm)(void *opaque, uint64_t usec),
                        void *opaque);
/* The timer asked for by @arm expired. */
void vs_device_timer(struct vs_device *dev);

/* Bind the device to a transport (replacing any earlier one). */
void vs_device_set_transport(struct vs_device *dev,
                             const struct vs_transport_ops *ops, void *opaque);

/* Feature bits the device offers / negotiated ones (error: -ENOTSUP). */
uint64_t vs_device_features(const struct vs_device *dev);
int vs_device_set_features(struct vs_device *dev, uint64_t features);

/* Config space access. -EINVAL if the range is outside the config struct. */
int vs_device_config_read(struct vs_device *dev, uint32_t offset, void *buf,
                          uint32_t len);
int vs_device_config_write(struct vs_device *dev, uint32_t offset,
                           const void *buf, uint32_t len);

struct vs_mem_map {
        uint64_t gpa;           /* guest-physical start */
        uint64_t size;
        uint64_t uva;           /* transport's own address of it, if different */
        void *host;             /* where this process sees it */
};

/*
 * Replace guest memory. The caller keeps the mappings alive until the next
 * vs_device_set_memory() or vs_device_free(). Rings are re-translated.
 * Errors: -EINVAL (zero size, overlap, wrap), -ENOSPC (too many regions).
 */
int vs_device_set_memory(struct vs_device *dev, const struct vs_mem_map *map,
                         unsigned n);

/* Ring set-up: @q < vs_device_num_queues(), else -ERANGE. */
int vs_device_queue_set_num(struct vs_device *dev, unsigned q, unsigned num);
int vs_device_queue_set_addr(struct vs_device *dev, unsigned q, uint64_t desc,
                             uint64_t avail, uint64_t used, bool is_uva);
int vs_device_queue_set_base(struct vs_device *dev, unsigned q, uint16_t base);
/* Returns the next avail index (>= 0) and stops the ring. */
int vs_device_queue_get_base(struct vs_device *dev, unsigned q);
int vs_device_queue_enable(struct vs_device *dev, unsigned q, bool enable);
/* The guest kicked queue @q. */
int vs_device_queue_kick(struct vs_device *dev, unsigned q);
/* 0, or the -errno that broke queue @q (a misbehaving guest). */
int vs_device_queue_error(const struct vs_device *dev, unsigned q);
/* Guest driver reset: forget rings and guest-side port state. */
void vs_device_reset(struct vs_device *dev);

/* ---- process-wide: guest memory that shrinks -------------------------- */

/*
 * Survive guest memory files that shrink under the device. A vhost-user
 * frontend shares guest memory as fds; one that truncates a file which is
 * not sealed against shrinking (UML's memory file, QEMU's
 * memory-backend-file) makes the next access to the lost pages raise
 * SIGBUS, which kills the process. Once this is called, a SIGBUS in such a
 * mapping replaces the mapping with zero pages, the access completes, and
 * the connection that mapped it fails at its next event (-EFAULT);
 * SIGBUS anywhere else goes to the handler installed before, or kills the
 * process as before. Memfds sealed with F_SEAL_SHRINK (QEMU's
 * memory-backend-memfd default) need none of this.
 *
 * Process-wide: installs a SIGBUS handler with sigaction(). It is explicit
 * because a library must not take over signals by itself: call it from
 * the main thread before serving connections; the vserial daemon does. A
 * later call does nothing while the handler is in place, and installs it
 * again (passing on to the new one) if something replaced it, as test
 * frameworks do around each test. Errors: -errno of sigaction().
 */
int vs_sigbus_guard_install(void);

#ifdef __cplusplus
}
#endif
