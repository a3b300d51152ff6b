/* SPDX-License-Identifier: MIT */
/*
 * vhost-user backend connection.
 *
 * Security model: the frontend is an untrusted process. Nothing it sends is
 * used before dispatch() has checked it against msg_table: the request is
 * known, the payload size is in range, the number of fds is right, and a
 * vring index is below the number of queues. Handlers then validate values
 * (memory regions in vs_mem, ring sizes and addresses in virtq). Any failure
 * closes the connection; nothing the frontend sends can stop the daemon.
 * Replies go out at once: the UML frontend freezes the whole guest while it
 * waits for one.
 *
 * Every fd watched here makes progress or goes: a kick fd is edge-triggered
 * (one callback per frontend write, whatever it holds) and dropped at end
 * of file, hang-up, error or a failed read; the backend channel is closed
 * the same way; the frontend socket ends the connection. Call and err fds
 * must be eventfds or sockets, and rings past the device's keep no fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhost-user/proto.h"
#include "vhost-user/vhost_user.h"
#include "mem/mem.h"

struct vu_vring {
        struct vs_vu *vu;
        unsigned q;
        int kick_fd;
        int call_fd;
        int err_fd;
        bool kick_anon;         /* the kick fd is an anonymous inode */
        bool kick_read;         /* drain it on each kick (not an eventfd) */
        bool call_sock, err_sock;       /* sockets (UML), else eventfds */
        bool scheduled;
        bool reported;          /* its breakage was reported once */
};

struct vs_vu {
        struct vs_device *dev;
        struct vs_vu_config cfg;
        int fd;
        int backend_fd;         /* SET_BACKEND_REQ_FD, or -1 */
        int sched_fd;           /* eventfd: queues to run again */
        int timer_fd;           /* timerfd: the device's pacing timer */
        unsigned sched_next;    /* where the next scheduled pass starts */
        bool closed;
        uint64_t messages;      /* handled, for vs_vu_get_stats() */
        uint64_t features;
        uint64_t protocol_features;
        unsigned nrings;        /* rings the frontend may name */
        unsigned nvqs;          /* rings the device uses: the first nvqs */
        unsigned named;         /* 1 + the highest ring index named */
        bool short_told;        /* rings_short() was called */
        struct vu_vring *vrings;
        struct vs_mem mem;

        /* The message being received: bytes and fds may come in pieces. */
        union {
                uint8_t buf[VU_HDR_LEN + VU_MAX_PAYLOAD];
                struct vu_hdr hdr;
        } in;
        size_t in_len;
        int in_fds[VU_MAX_FDS];
        unsigned in_nfds;
};

struct vu_msg {
        const struct vu_hdr *hdr;
        const uint8_t *payload;
        int *fds;
        unsigned nfds;
        unsigned vring;         /* valid when the table says it names one */
};

enum vu_fds {
        FDS_NONE,
        FDS_ONE,
        FDS_VRING,              /* one, unless the u64 payload has VU_VRING_NOFD */
        FDS_MEM,                /* one per region */
};

enum vu_vring_at {
        VRING_NONE,
        VRING_U32,              /* first u32 of the payload */
        VRING_U64,              /* low byte of a u64 payload */
};

enum vu_reply {
        REPLY_NONE,             /* an ack, if the frontend asked for one */
        REPLY_U64,              /* the u64 the handler put in *reply */
        REPLY_OWN,              /* the handler sends its reply */
};

/*
 * A message handler. It runs after dispatch() has checked the message
 * against msg_table (size, fd count, ring index), and returns 0 or a
 * negative errno that closes the connection; a handler that can say more
 * than its errno does so with vu_fail(), which returns the errno it got.
 * *@reply (0 on entry) is the u64 sent back: the value a REPLY_U64 request
 * asks for, or, when the frontend asked for an ack, the status of a
 * REPLY_NONE request, where ACK_FAILED refuses the request and keeps the
 * connection. REPLY_OWN handlers send their reply themselves (a payload
 * other than a u64).
 */
#define ACK_FAILED 1u   /* REPLY_ACK: any non-zero u64 means failure */
typedef int vu_handler(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply);

struct vu_msg_info {
        const char *name;
        struct {
                uint32_t min, max;
        } size;                 /* payload bytes */
        enum vu_fds fds;
        enum vu_vring_at vring;
        enum vu_reply reply;
        vu_handler *handle;
};

static int vu_fail(struct vs_vu *vu, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* ---- small helpers ------------------------------------------------------ */

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static uint64_t payload_u64(const struct vu_msg *m)
{
        uint64_t v;

        memcpy(&v, m->payload, sizeof(v));
        return le64toh(v);
}

/* The ring index that leads struct vu_vring_state and vu_vring_addr. */
static uint32_t payload_index(const struct vu_msg *m)
{
        uint32_t index;

        memcpy(&index, m->payload + offsetof(struct vu_vring_state, index), sizeof(index));
        return le32toh(index);
}

static int send_reply(struct vs_vu *vu, uint32_t request, const void *payload,
                      uint32_t size)
{
        uint8_t buf[VU_HDR_LEN + VU_MAX_PAYLOAD];
        struct vu_hdr hdr = {
                .request = htole32(request),
                .flags = htole32(VU_VERSION | VU_FLAG_REPLY),
                .size = htole32(size),
        };
        ssize_t n;

        memcpy(buf, &hdr, VU_HDR_LEN);
        memcpy(buf + VU_HDR_LEN, payload, size);
        n = send(vu->fd, buf, VU_HDR_LEN + size, MSG_NOSIGNAL);
        if (n < 0)
                return -errno;
        return (size_t)n == VU_HDR_LEN + size ? 0 : -EIO;
}

static int reply_u64(struct vs_vu *vu, uint32_t request, uint64_t value)
{
        uint64_t le = htole64(value);

        return send_reply(vu, request, &le, sizeof(le));
}

/* What a ring fd is: an eventfd-like anonymous inode, a socket, or else. */
enum fd_kind { FD_OTHER, FD_EVENT, FD_SOCKET };

static enum fd_kind fd_kind(int fd)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return FD_OTHER;
        if (S_ISSOCK(st.st_mode))
                return FD_SOCKET;
        return (st.st_mode & S_IFMT) == 0 ? FD_EVENT : FD_OTHER;
}

static void fd_nonblock(int fd)
{
        int fl = fcntl(fd, F_GETFL);

        if (fl >= 0)
                fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void unwatch(struct vs_vu *vu, int fd)
{
        if (fd >= 0)
                vu->cfg.loop_ops->del(vu->cfg.loop, fd);
}

/* ---- transport for the device -------------------------------------------- */

/*
 * Signal an eventfd-like fd: add 1. UML's call fds are sockets, where a
 * gone peer must not raise SIGPIPE in an embedder that did not ignore it,
 * and a full one means the guest has unread notifications already. The
 * kind was found when the fd came (set_signal_fd()), so an eventfd costs
 * one write(), not a send() that fails first: a syscall per interrupt.
 */
static int signal_fd(int fd, bool sock)
{
        uint64_t one = 1;
        ssize_t n = sock ? send(fd, &one, sizeof(one), MSG_NOSIGNAL | MSG_DONTWAIT)
                         : write(fd, &one, sizeof(one));

        return n < 0 && errno != EAGAIN ? -errno : 0;
}

static int tr_notify(void *opaque, unsigned q)
{
        struct vs_vu *vu = opaque;

        if (q >= vu->nvqs || vu->vrings[q].call_fd < 0)
                return -ENOENT;
        return signal_fd(vu->vrings[q].call_fd, vu->vrings[q].call_sock);
}

static int tr_config_changed(void *opaque)
{
        struct vs_vu *vu = opaque;
        struct vu_hdr hdr = {
                .request = htole32(VU_BACKEND_CONFIG_CHANGE_MSG),
                .flags = htole32(VU_VERSION),
                .size = 0,
        };

        if (vu->backend_fd < 0)
                return -ENOTCONN;
        if (send(vu->backend_fd, &hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                return -errno;
        return 0;
}

static int tr_schedule(void *opaque, unsigned q)
{
        struct vs_vu *vu = opaque;
        uint64_t one = 1;

        if (q >= vu->nvqs)
                return -ERANGE;
        vu->vrings[q].scheduled = true;
        if (write(vu->sched_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                return -errno;
        return 0;
}

/* The device's one-shot pacing timer (vs_device_set_timer()). */
static int tr_arm(void *opaque, uint64_t usec)
{
        struct vs_vu *vu = opaque;
        struct itimerspec its = {
                .it_value = { .tv_sec = (time_t)(usec / 1000000),
                              .tv_nsec = (long)(usec % 1000000) * 1000 },
        };

        return timerfd_settime(vu->timer_fd, 0, &its, NULL) < 0 ? -errno : 0;
}

static const struct vs_transport_ops vu_transport = {
        .notify = tr_notify,
        .config_changed = tr_config_changed,
        .schedule = tr_schedule,
};

/* ---- queue events ------------------------------------------------------- */

/* A broken queue is reported once: on its err fd and to the embedder. */
static void check_queue(struct vs_vu *vu, unsigned q)
{
        int err = vs_device_queue_error(vu->dev, q);

        if (err == 0 || vu->vrings[q].reported)
                return;
        vu->vrings[q].reported = true;
        /* Best effort: QEMU only logs it, and only in debug builds. */
        if (vu->vrings[q].err_fd >= 0)
                signal_fd(vu->vrings[q].err_fd, vu->vrings[q].err_sock);
        if (vu->cfg.queue_broken)
                vu->cfg.queue_broken(vu->cfg.opaque, q, err);
}

/* A SIGBUS replaced some of our guest memory: the frontend shrank it. */
static void check_memory(struct vs_vu *vu)
{
        if (vs_mem_lost(&vu->mem))
                vu_fail(vu, -EFAULT, "guest memory shrank under the device "
                        "(the frontend truncated its memory file)");
}

static void run_queue(struct vs_vu *vu, unsigned q)
{
        vs_device_queue_kick(vu->dev, q);
        check_queue(vu, q);
        check_memory(vu);
}

/* The ring gets no more kicks until the frontend sends a new kick fd. */
static void drop_kick(struct vu_vring *vr)
{
        unwatch(vr->vu, vr->kick_fd);
        close_fd(&vr->kick_fd);
}

/*
 * A kick. The fd is watched edge-triggered, so a kick fd that stays
 * readable (a semaphore eventfd, a pipe with bytes left) costs one call per
 * frontend write. One read takes an eventfd's whole count, or up to 64
 * bytes of another fd. An eventfd reports every write as an edge whatever
 * its count, so once a read has shown the fd is one (an anonymous inode
 * that gave 8 bytes) it is not read again: a syscall per kick saved (its
 * count cannot overflow before 2^64 kicks, and then only the frontend's
 * own writes fail). The ring runs either way (bounded work); an fd at end
 * of file, hung up, in error or not readable can never kick again and is
 * dropped.
 */
static void on_kick(void *opaque, int fd, uint32_t events)
{
        struct vu_vring *vr = opaque;
        uint64_t buf[8];
        ssize_t n = vr->kick_read ? read(fd, buf, sizeof(buf)) : 1;
        bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
                    (events & (EPOLLHUP | EPOLLERR));

        if (n == sizeof(uint64_t) && vr->kick_anon)
                vr->kick_read = false;
        run_queue(vr->vu, vr->q);
        if (gone)
                drop_kick(vr);
}

/*
 * Run the queues the device asked to run again: at most VU_SCHED_PER_WAKE
 * per callback, round robin from where the last pass stopped, and the
 * eventfd signalled again for the rest. So one callback reads at most
 * VU_SCHED_PER_WAKE * VS_VQ_CALL_DESCS descriptors however many rings are
 * busy, and what else the loop has ready runs in between.
 */
static void on_schedule(void *opaque, int fd, uint32_t events)
{
        struct vs_vu *vu = opaque;
        uint64_t count, one = 1;
        unsigned ran = 0;

        (void)events;
        if (read(fd, &count, sizeof(count)) < 0)
                return;
        for (unsigned i = 0; i < vu->nvqs && !vu->closed; i++) {
                unsigned q = (vu->sched_next + i) % vu->nvqs;

                if (!vu->vrings[q].scheduled)
                        continue;
                if (ran == VU_SCHED_PER_WAKE) {
                        vu->sched_next = q;
                        if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                                vu_fail(vu, -errno, "scheduling eventfd: %s", strerror(errno));
                        return;
                }
                vu->vrings[q].scheduled = false;
                run_queue(vu, q);
                ran++;
        }
}

/* The pacing timer expired: the device sends what it held. */
static void on_timer(void *opaque, int fd, uint32_t events)
{
        struct vs_vu *vu = opaque;
        uint64_t count;

        (void)events;
        if (read(fd, &count, sizeof(count)) < 0)
                return;         /* re-armed or cancelled meanwhile */
        vs_device_timer(vu->dev);
        for (unsigned q = 0; q < vu->nvqs; q++)
                check_queue(vu, q);
        check_memory(vu);
}

/* Replies to our backend-channel messages carry nothing we need. */
static void on_backend(void *opaque, int fd, uint32_t events)
{
        struct vs_vu *vu = opaque;
        uint8_t buf[256];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

        (void)events;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                unwatch(vu, vu->backend_fd);
                close_fd(&vu->backend_fd);
        }
}

/* ---- handlers (the contract is at vu_handler) ------------------------- */

static int h_get_features(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        (void)m;
        *reply = vs_device_features(vu->dev) | (1ull << VU_F_PROTOCOL_FEATURES);
        return 0;
}

static int h_set_features(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        uint64_t f = payload_u64(m);
        int r = vs_device_set_features(vu->dev, f & ~(1ull << VU_F_PROTOCOL_FEATURES));

        (void)reply;
        if (r < 0)
                return vu_fail(vu, r, "SET_FEATURES 0x%llx: bits not offered",
                               (unsigned long long)f);
        vu->features = f;
        return 0;
}

static uint64_t offered_protocol_features(void)
{
        return (1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) |
               (1ull << VU_PF_BACKEND_REQ) | (1ull << VU_PF_CONFIG);
}

static int h_get_protocol_features(struct vs_vu *vu, struct vu_msg *m,
                                   uint64_t *reply)
{
        (void)vu;
        (void)m;
        *reply = offered_protocol_features();
        return 0;
}

static int h_set_protocol_features(struct vs_vu *vu, struct vu_msg *m,
                                   uint64_t *reply)
{
        (void)reply;
        vu->protocol_features = payload_u64(m) & offered_protocol_features();
        return 0;
}

static int h_nop(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        (void)vu;
        (void)m;
        (void)reply;
        return 0;
}

static void vrings_close(struct vs_vu *vu)
{
        for (unsigned q = 0; q < vu->nrings; q++) {
                unwatch(vu, vu->vrings[q].kick_fd);
                close_fd(&vu->vrings[q].kick_fd);
                close_fd(&vu->vrings[q].call_fd);
                close_fd(&vu->vrings[q].err_fd);
                vu->vrings[q].scheduled = false;
                vu->vrings[q].reported = false;
        }
}

/* Forget the guest: rings, fds, memory. Ports and host state stay. */
static void vu_reset(struct vs_vu *vu)
{
        vs_device_reset(vu->dev);
        vs_device_set_memory(vu->dev, NULL, 0);
        vrings_close(vu);
        vs_mem_clear(&vu->mem);
        vu->features = 0;
}

static int h_reset_owner(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        (void)m;
        (void)reply;
        vu_reset(vu);
        return 0;
}

/* The device's view of our mappings. */
static int publish_memory(struct vs_vu *vu)
{
        struct vs_mem_map map[VS_MEM_MAX_REGIONS];

        for (unsigned i = 0; i < vu->mem.n; i++) {
                map[i].gpa = vu->mem.r[i].gpa;
                map[i].size = vu->mem.r[i].size;
                map[i].uva = vu->mem.r[i].uva;
                map[i].host = vu->mem.r[i].host;
        }
        return vs_device_set_memory(vu->dev, map, vu->mem.n);
}

/* SET_MEM_TABLE's payload for @n regions. */
#define MEM_TABLE_SIZE(n) \
        (offsetof(struct vu_mem_table, regions) + (n) * sizeof(struct vu_mem_region))

/* Map the regions of a checked SET_MEM_TABLE into @next. */
static int map_regions(const struct vu_msg *m, uint32_t n, struct vs_mem *next)
{
        int r = 0;

        vs_mem_init(next);
        for (unsigned i = 0; i < n && r == 0; i++) {
                struct vu_mem_region reg;

                memcpy(&reg, m->payload + MEM_TABLE_SIZE(i), sizeof(reg));
                r = vs_mem_add_fd(next, m->fds[i], le64toh(reg.gpa),
                                  le64toh(reg.size), le64toh(reg.uva),
                                  le64toh(reg.mmap_offset));
        }
        if (r < 0)
                vs_mem_clear(next);
        return r;
}

static int h_set_mem_table(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_mem_table tbl;
        struct vs_mem next, old;
        int r;

        (void)reply;
        memcpy(&tbl, m->payload, sizeof(tbl));
        tbl.nregions = le32toh(tbl.nregions);
        /* UML always sends room for two regions: allow slack after them. */
        if (tbl.nregions == 0 || tbl.nregions > VS_MEM_MAX_REGIONS ||
            m->hdr->size < MEM_TABLE_SIZE(tbl.nregions) || m->nfds != tbl.nregions)
                return vu_fail(vu, -EINVAL, "SET_MEM_TABLE: %u regions, %u bytes, %u fds",
                               tbl.nregions, m->hdr->size, m->nfds);
        r = map_regions(m, tbl.nregions, &next);
        if (r < 0)
                return vu_fail(vu, r, "SET_MEM_TABLE: region rejected (%s)", strerror(-r));
        /* Map the new table, switch the device to it, then drop the old. */
        old = vu->mem;
        vu->mem = next;
        r = publish_memory(vu);
        if (r < 0) {
                vu->mem = old;
                vs_mem_clear(&next);
                return vu_fail(vu, r, "SET_MEM_TABLE: %s", strerror(-r));
        }
        vs_mem_clear(&old);
        return 0;
}

static struct vu_vring_state vring_state(const struct vu_msg *m)
{
        struct vu_vring_state s;

        memcpy(&s, m->payload, sizeof(s));
        s.index = le32toh(s.index);
        s.num = le32toh(s.num);
        return s;
}

/* A ring past the device's: accepted and never used. */
static bool inert(const struct vs_vu *vu, const struct vu_msg *m)
{
        return m->vring >= vu->nvqs;
}

static int h_set_vring_num(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_vring_state s = vring_state(m);
        int r = inert(vu, m) ? 0 : vs_device_queue_set_num(vu->dev, s.index, s.num);

        (void)reply;
        if (r < 0)
                return vu_fail(vu, r, "SET_VRING_NUM: queue %u size %u", s.index, s.num);
        return 0;
}

static int h_set_vring_addr(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_vring_addr a;
        int r;

        (void)reply;
        memcpy(&a, m->payload, sizeof(a));
        if (inert(vu, m))
                return 0;
        /* vhost-user ring addresses are the frontend's virtual addresses. */
        r = vs_device_queue_set_addr(vu->dev, m->vring, le64toh(a.desc),
                                     le64toh(a.avail), le64toh(a.used), true);
        if (r < 0)
                return vu_fail(vu, r, "SET_VRING_ADDR: queue %u rings not in memory",
                               m->vring);
        return 0;
}

static int h_set_vring_base(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_vring_state s = vring_state(m);

        (void)reply;
        if (s.num > UINT16_MAX)
                return vu_fail(vu, -EINVAL, "SET_VRING_BASE: queue %u base %u",
                               s.index, s.num);
        vu->vrings[s.index].reported = false;
        return inert(vu, m) ? 0 : vs_device_queue_set_base(vu->dev, s.index, s.num);
}

static int h_get_vring_base(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_vring_state s = vring_state(m);
        struct vu_vring *vr = &vu->vrings[s.index];
        int base = inert(vu, m) ? 0 : vs_device_queue_get_base(vu->dev, s.index);

        (void)reply;
        /* The ring is stopped until the frontend sets it up again. */
        drop_kick(vr);
        s.index = htole32(s.index);
        s.num = htole32(base < 0 ? 0 : base);
        return send_reply(vu, VU_GET_VRING_BASE, &s, sizeof(s));
}

/* Take the fd of a SET_VRING_KICK/CALL/ERR into *@slot. */
static void take_vring_fd(struct vu_msg *m, int *slot)
{
        close_fd(slot);
        if (m->nfds == 1) {
                *slot = m->fds[0];
                m->fds[0] = -1;
        }
}

static int h_set_vring_kick(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_vring *vr = &vu->vrings[m->vring];
        int r;

        (void)reply;
        drop_kick(vr);
        if (inert(vu, m))
                return 0;       /* its fd, if any, is closed with the message */
        take_vring_fd(m, &vr->kick_fd);
        if (vr->kick_fd < 0)
                return 0;
        vr->kick_anon = fd_kind(vr->kick_fd) == FD_EVENT;
        vr->kick_read = true;
        /* UML's kick eventfd is blocking; a spurious wake must not hang us. */
        fd_nonblock(vr->kick_fd);
        r = vu->cfg.loop_ops->add(vu->cfg.loop, vr->kick_fd, EPOLLIN | EPOLLET,
                                  on_kick, vr);
        if (r < 0)
                return vu_fail(vu, r, "SET_VRING_KICK: cannot watch fd");
        /* Without PROTOCOL_FEATURES a ring starts when it gets its kick fd. */
        if (!(vu->features & (1ull << VU_F_PROTOCOL_FEATURES)))
                vs_device_queue_enable(vu->dev, m->vring, true);
        /* Buffers may have been posted before we watched the fd. */
        run_queue(vu, m->vring);
        return 0;
}

/*
 * Call and err fds are only written: an eventfd (an anonymous inode), or a
 * socket as UML's call fds. A pipe would raise SIGPIPE in us once its
 * reader is gone (in an embedder that does not ignore it), a regular file
 * would grow by 8 bytes per interrupt: anything else is refused.
 */
static bool signal_fd_ok(int fd)
{
        enum fd_kind k = fd_kind(fd);

        return k == FD_EVENT || k == FD_SOCKET;
}

/*
 * SET_VRING_CALL/ERR: a ring past the device's keeps no fd (QEMU sends
 * them for every ring up to its num_vqs; a frontend could otherwise pin
 * three fds for each of 256 rings). A frontend that never reads the fd
 * must not block us. *@sock: how signal_fd() writes it.
 */
static int set_signal_fd(struct vs_vu *vu, struct vu_msg *m, int *slot, bool *sock,
                         const char *what)
{
        if (m->nfds == 1 && !signal_fd_ok(m->fds[0]))
                return vu_fail(vu, -EBADF, "%s: ring %u: not an eventfd or a socket",
                               what, m->vring);
        if (inert(vu, m)) {
                close_fd(slot);
                return 0;
        }
        take_vring_fd(m, slot);
        *sock = *slot >= 0 && fd_kind(*slot) == FD_SOCKET;
        if (*slot >= 0)
                fd_nonblock(*slot);
        return 0;
}

static int h_set_vring_call(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_vring *vr = &vu->vrings[m->vring];

        (void)reply;
        return set_signal_fd(vu, m, &vr->call_fd, &vr->call_sock, "SET_VRING_CALL");
}

static int h_set_vring_err(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_vring *vr = &vu->vrings[m->vring];

        (void)reply;
        return set_signal_fd(vu, m, &vr->err_fd, &vr->err_sock, "SET_VRING_ERR");
}

static int h_get_queue_num(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        (void)m;
        *reply = vu->nvqs;
        return 0;
}

static int h_set_vring_enable(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_vring_state s = vring_state(m);

        (void)reply;
        if (inert(vu, m))
                return 0;
        vs_device_queue_enable(vu->dev, s.index, s.num != 0);
        /* A ring that cannot be mapped is broken, not the connection. */
        check_queue(vu, s.index);
        return 0;
}

static int h_set_backend_req_fd(struct vs_vu *vu, struct vu_msg *m,
                                uint64_t *reply)
{
        int r;

        (void)reply;
        unwatch(vu, vu->backend_fd);
        close_fd(&vu->backend_fd);
        vu->backend_fd = m->fds[0];
        m->fds[0] = -1;
        r = vu->cfg.loop_ops->add(vu->cfg.loop, vu->backend_fd, EPOLLIN,
                                  on_backend, vu);
        if (r < 0)
                return vu_fail(vu, r, "SET_BACKEND_REQ_FD: cannot watch fd");
        return 0;
}

/* GET_CONFIG/SET_CONFIG: the payload must hold exactly the size it names. */
static int config_hdr(struct vs_vu *vu, struct vu_msg *m, struct vu_config *c)
{
        memcpy(c, m->payload, sizeof(*c));
        c->offset = le32toh(c->offset);
        c->size = le32toh(c->size);
        if (c->size > VU_MAX_CONFIG || m->hdr->size != sizeof(*c) + c->size)
                return vu_fail(vu, -EINVAL, "config message: size %u in a %u-byte payload",
                               c->size, m->hdr->size);
        return 0;
}

/*
 * A driver reads the config to learn how many rings to set up. If the
 * frontend named its rings already (QEMU does, at start) and they are too
 * few, the guest's probe is about to fail with nothing else sent to us:
 * say so now.
 */
static void check_ring_count(struct vs_vu *vu)
{
        unsigned need = vs_device_num_queues(vu->dev);

        if (vu->named == 0 || vu->named >= need || vu->short_told)
                return;
        vu->short_told = true;
        if (vu->cfg.rings_short)
                vu->cfg.rings_short(vu->cfg.opaque, vu->named, need);
}

static int h_get_config(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        uint8_t out[sizeof(struct vu_config) + VU_MAX_CONFIG] = { 0 };
        struct vu_config c;
        uint32_t have;
        int r = config_hdr(vu, m, &c);

        (void)reply;
        if (r < 0)
                return r;
        check_ring_count(vu);
        memcpy(out, m->payload, sizeof(c));
        /* Bytes past our 12-byte struct read as zero. */
        have = c.offset < VS_CONFIG_SIZE ? VS_CONFIG_SIZE - c.offset : 0;
        if (have > c.size)
                have = c.size;
        if (have)
                vs_device_config_read(vu->dev, c.offset, out + sizeof(c), have);
        return send_reply(vu, VU_GET_CONFIG, out, sizeof(c) + c.size);
}

/* A write the device refuses is acked as failed; the connection stays. */
static int h_set_config(struct vs_vu *vu, struct vu_msg *m, uint64_t *reply)
{
        struct vu_config c;
        int r = config_hdr(vu, m, &c);

        if (r < 0)
                return r;
        if (vs_device_config_write(vu->dev, c.offset, m->payload + sizeof(c),
                                   c.size) < 0)
                *reply = ACK_FAILED;
        return 0;
}

/*
 * What dispatch() checks before a handler runs, per request. Adding a
 * request is one row here plus its handler. A zero field is the common
 * case: no payload, no fds, no ring, no reply but an ack if asked for.
 */
#define EXACTLY(n) { (n), (n) }
#define U64 sizeof(uint64_t)
/* The payloads the spec calls a u64, a vring state (index, num) and a
 * vring address (index first), and the u64 of SET_VRING_KICK/CALL/ERR: a
 * ring index, with an fd unless VU_VRING_NOFD is set. */
#define P_U64 .size = EXACTLY(U64)
#define P_STATE .size = EXACTLY(sizeof(struct vu_vring_state)), .vring = VRING_U32
#define P_ADDR .size = EXACTLY(sizeof(struct vu_vring_addr)), .vring = VRING_U32
#define P_VRING_FD .size = EXACTLY(U64), .vring = VRING_U64, .fds = FDS_VRING
#define P_CONFIG .size = { sizeof(struct vu_config), sizeof(struct vu_config) + VU_MAX_CONFIG }

static const struct vu_msg_info msg_table[VU_REQUEST_MAX] = {
        [VU_GET_FEATURES] = { .name = "GET_FEATURES", .reply = REPLY_U64, .handle = h_get_features },
        [VU_SET_FEATURES] = { .name = "SET_FEATURES", P_U64, .handle = h_set_features },
        [VU_SET_OWNER] = { .name = "SET_OWNER", .handle = h_nop },
        [VU_RESET_OWNER] = { .name = "RESET_OWNER", .size = { 0, U64 }, .handle = h_reset_owner },
        [VU_SET_MEM_TABLE] = { .name = "SET_MEM_TABLE", .fds = FDS_MEM, .handle = h_set_mem_table,
                               .size = { MEM_TABLE_SIZE(1), MEM_TABLE_SIZE(VS_MEM_MAX_REGIONS) } },
        [VU_SET_VRING_NUM] = { .name = "SET_VRING_NUM", P_STATE, .handle = h_set_vring_num },
        [VU_SET_VRING_ADDR] = { .name = "SET_VRING_ADDR", P_ADDR, .handle = h_set_vring_addr },
        [VU_SET_VRING_BASE] = { .name = "SET_VRING_BASE", P_STATE, .handle = h_set_vring_base },
        [VU_GET_VRING_BASE] = { .name = "GET_VRING_BASE", P_STATE, .reply = REPLY_OWN,
                                .handle = h_get_vring_base },
        [VU_SET_VRING_KICK] = { .name = "SET_VRING_KICK", P_VRING_FD, .handle = h_set_vring_kick },
        [VU_SET_VRING_CALL] = { .name = "SET_VRING_CALL", P_VRING_FD, .handle = h_set_vring_call },
        [VU_SET_VRING_ERR] = { .name = "SET_VRING_ERR", P_VRING_FD, .handle = h_set_vring_err },
        [VU_GET_PROTOCOL_FEATURES] = { .name = "GET_PROTOCOL_FEATURES", .reply = REPLY_U64,
                                       .handle = h_get_protocol_features },
        [VU_SET_PROTOCOL_FEATURES] = { .name = "SET_PROTOCOL_FEATURES", P_U64,
                                       .handle = h_set_protocol_features },
        [VU_GET_QUEUE_NUM] = { .name = "GET_QUEUE_NUM", .reply = REPLY_U64, .handle = h_get_queue_num },
        [VU_SET_VRING_ENABLE] = { .name = "SET_VRING_ENABLE", P_STATE, .handle = h_set_vring_enable },
        [VU_SET_BACKEND_REQ_FD] = { .name = "SET_BACKEND_REQ_FD", .fds = FDS_ONE,
                                    .handle = h_set_backend_req_fd },
        [VU_GET_CONFIG] = { .name = "GET_CONFIG", P_CONFIG, .reply = REPLY_OWN, .handle = h_get_config },
        [VU_SET_CONFIG] = { .name = "SET_CONFIG", P_CONFIG, .handle = h_set_config },
};

/* ---- receiving and dispatch -------------------------------------------- */

static void drop_fds(struct vs_vu *vu)
{
        for (unsigned i = 0; i < vu->in_nfds; i++)
                close_fd(&vu->in_fds[i]);
        vu->in_nfds = 0;
        vu->in_len = 0;
}

/* The ring a VRING_U64 message names, and whether it carries an fd. */
static int vring_u64(struct vs_vu *vu, const struct vu_msg_info *info,
                     struct vu_msg *m, unsigned *ret_want_fds)
{
        uint64_t v = payload_u64(m);

        if (v & ~(uint64_t)(VU_VRING_IDX_MASK | VU_VRING_NOFD))
                return vu_fail(vu, -EINVAL, "%s: unknown bits in 0x%llx", info->name,
                               (unsigned long long)v);
        m->vring = v & VU_VRING_IDX_MASK;
        *ret_want_fds = (v & VU_VRING_NOFD) ? 0 : 1;
        return 0;
}

/* The checks every message gets before its handler runs. */
static int check_msg(struct vs_vu *vu, const struct vu_msg_info *info,
                     struct vu_msg *m)
{
        unsigned want_fds = info->fds == FDS_ONE ? 1 : 0;
        int r;

        if (m->hdr->size < info->size.min || m->hdr->size > info->size.max)
                return vu_fail(vu, -EBADMSG, "%s: payload of %u bytes", info->name,
                               m->hdr->size);
        if (info->vring == VRING_U32)
                m->vring = payload_index(m);
        if (info->vring == VRING_U64) {
                r = vring_u64(vu, info, m, &want_fds);
                if (r < 0)
                        return r;
        }
        if (info->vring != VRING_NONE && m->vring >= vu->nrings)
                return vu_fail(vu, -ERANGE, "%s: vring %u of %u", info->name, m->vring,
                               vu->nrings);
        if (info->vring != VRING_NONE && m->vring >= vu->named)
                vu->named = m->vring + 1;
        if (info->fds == FDS_MEM ? m->nfds == 0 : m->nfds != want_fds)
                return vu_fail(vu, -EBADF, "%s: %u fds", info->name, m->nfds);
        return 0;
}

/* The reply a handled message gets, if any. */
static int send_result(struct vs_vu *vu, const struct vu_msg_info *info,
                       const struct vu_msg *m, uint64_t reply)
{
        bool ack = m->hdr->flags & VU_FLAG_NEED_REPLY;

        if (info->reply == REPLY_U64 || (info->reply == REPLY_NONE && ack))
                return reply_u64(vu, m->hdr->request, reply);
        return 0;
}

static void dispatch(struct vs_vu *vu)
{
        struct vu_msg m = {
                .hdr = &vu->in.hdr,
                .payload = vu->in.buf + VU_HDR_LEN,
                .fds = vu->in_fds,
                .nfds = vu->in_nfds,
        };
        uint32_t req = m.hdr->request;
        const struct vu_msg_info *info = req < VU_REQUEST_MAX ? &msg_table[req] : NULL;
        uint64_t reply = 0;
        int r;

        if (!info || !info->handle) {
                vu_fail(vu, -EPROTO, "unknown request %u", req);
                return;
        }
        vu->messages++;
        if (check_msg(vu, info, &m) < 0)
                return;
        r = info->handle(vu, &m, &reply);
        if (vu->closed)
                return;
        if (r < 0) {
                vu_fail(vu, r, "%s failed: %s", info->name, strerror(-r));
                return;
        }
        r = send_result(vu, info, &m, reply);
        if (r < 0)
                vu_fail(vu, r, "%s: reply not sent: %s", info->name, strerror(-r));
}

static void take_cmsg_fds(struct vs_vu *vu, struct msghdr *mh)
{
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                unsigned n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *fds = (int *)CMSG_DATA(c);

                for (unsigned i = 0; i < n; i++) {
                        int fd;

                        memcpy(&fd, &fds[i], sizeof(fd));
                        if (vu->in_nfds < VU_MAX_FDS)
                                vu->in_fds[vu->in_nfds++] = fd;
                        else
                                close(fd);      /* more than a message may carry */
                }
        }
}

/* Read up to the end of the current header or payload. <0: error, 0: EOF. */
static ssize_t recv_some(struct vs_vu *vu, size_t want)
{
        union {
                char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
                struct cmsghdr align;
        } ctl;
        struct iovec iov = { vu->in.buf + vu->in_len, want };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = ctl.buf,
                .msg_controllen = sizeof(ctl.buf),
        };
        ssize_t n = recvmsg(vu->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

        if (n < 0)
                return -errno;
        take_cmsg_fds(vu, &mh);
        if (mh.msg_flags & MSG_CTRUNC)
                return -EMSGSIZE;
        vu->in_len += n;
        return n;
}

/*
 * Receive until the current message is whole. Returns 1 when it is, 0 when
 * the socket has nothing more now, -1 when the connection was failed.
 */
static int recv_msg(struct vs_vu *vu)
{
        for (;;) {
                size_t need = VU_HDR_LEN;
                ssize_t n;

                if (vu->in_len >= VU_HDR_LEN) {
                        uint32_t size = le32toh(vu->in.hdr.size);

                        if (size > VU_MAX_PAYLOAD) {
                                vu_fail(vu, -EMSGSIZE, "message %u: payload of %u bytes",
                                        le32toh(vu->in.hdr.request), size);
                                return -1;
                        }
                        need += size;
                }
                if (vu->in_len == need)
                        return 1;
                n = recv_some(vu, need - vu->in_len);
                if (n == -EAGAIN || n == -EINTR)
                        return 0;
                if (n == 0 && vu->in_len > 0) {
                        vu_fail(vu, -EPROTO, "frontend closed the connection mid-message");
                        return -1;
                }
                if (n <= 0) {
                        vu_fail(vu, (int)n, n == 0 ? "frontend closed the connection" :
                                "receive failed: %s", strerror((int)-n));
                        return -1;
                }
        }
}

static void on_socket(void *opaque, int fd, uint32_t events)
{
        struct vs_vu *vu = opaque;

        (void)fd;
        (void)events;
        /* Bounded: a frontend that keeps sending cannot starve the rest;
         * what is left in the socket wakes us again. */
        for (unsigned budget = VU_MSGS_PER_WAKE; budget > 0 && !vu->closed; budget--) {
                if (recv_msg(vu) <= 0)
                        return;
                vu->in.hdr.request = le32toh(vu->in.hdr.request);
                vu->in.hdr.flags = le32toh(vu->in.hdr.flags);
                vu->in.hdr.size = le32toh(vu->in.hdr.size);
                if ((vu->in.hdr.flags & VU_FLAG_VERSION_MASK) != VU_VERSION) {
                        vu_fail(vu, -EPROTO, "message %u: version flags 0x%x",
                                vu->in.hdr.request, vu->in.hdr.flags);
                        return;
                }
                dispatch(vu);
                drop_fds(vu);
                check_memory(vu);
        }
}

/* ---- life cycle --------------------------------------------------------- */

/* Stop watching everything: nothing of this connection runs again. */
static void vu_shutdown(struct vs_vu *vu)
{
        if (vu->closed)
                return;
        vu->closed = true;
        vrings_close(vu);
        unwatch(vu, vu->fd);
        unwatch(vu, vu->backend_fd);
        unwatch(vu, vu->sched_fd);
        unwatch(vu, vu->timer_fd);
}

/* End the connection, telling the embedder why; the first cause wins.
 * Returns @err, for handlers to return. */
static int vu_fail(struct vs_vu *vu, int err, const char *fmt, ...)
{
        char why[160];
        va_list ap;

        if (vu->closed)
                return err;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        vu_shutdown(vu);
        if (vu->cfg.closed)
                vu->cfg.closed(vu->cfg.opaque, err, why);
        return err;
}

/* The rings a frontend may name, none with an fd yet. */
static int vrings_new(struct vs_vu *vu)
{
        vu->nrings = VU_MAX_RINGS;
        vu->vrings = calloc(vu->nrings, sizeof(*vu->vrings));
        if (!vu->vrings)
                return -ENOMEM;
        for (unsigned q = 0; q < vu->nrings; q++)
                vu->vrings[q] = (struct vu_vring){ .vu = vu, .q = q, .kick_fd = -1,
                                                   .call_fd = -1, .err_fd = -1 };
        return 0;
}

int vs_vu_new(struct vs_device *dev, int fd, const struct vs_vu_config *cfg,
              struct vs_vu **ret)
{
        struct vs_vu *vu = calloc(1, sizeof(*vu));
        int r;

        if (!vu) {
                close(fd);
                return -ENOMEM;
        }
        vu->dev = dev;
        vu->cfg = *cfg;
        vu->fd = fd;
        vu->backend_fd = -1;
        vu->nvqs = vs_device_num_queues(dev);
        if (cfg->max_queues && cfg->max_queues < vu->nvqs)
                vu->nvqs = cfg->max_queues;
        vs_mem_init(&vu->mem);
        vu->sched_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        vu->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        r = vu->sched_fd < 0 || vu->timer_fd < 0 ? -errno : vrings_new(vu);
        if (r < 0)
                goto fail;
        fd_nonblock(fd);
        r = cfg->loop_ops->add(cfg->loop, fd, EPOLLIN, on_socket, vu);
        if (r == 0)
                r = cfg->loop_ops->add(cfg->loop, vu->sched_fd, EPOLLIN, on_schedule, vu);
        if (r == 0)
                r = cfg->loop_ops->add(cfg->loop, vu->timer_fd, EPOLLIN, on_timer, vu);
        if (r < 0)
                goto fail;
        vs_device_set_transport(dev, &vu_transport, vu);
        vs_device_set_timer(dev, tr_arm, vu);
        *ret = vu;
        return 0;
fail:
        unwatch(vu, fd);
        unwatch(vu, vu->sched_fd);
        close_fd(&vu->sched_fd);
        close_fd(&vu->timer_fd);
        close(fd);
        free(vu->vrings);
        free(vu);
        return r;
}

void vs_vu_free(struct vs_vu *vu)
{
        if (!vu)
                return;
        vu_shutdown(vu);
        vu_reset(vu);
        vs_device_set_timer(vu->dev, NULL, NULL);
        vs_device_set_transport(vu->dev, NULL, NULL);
        drop_fds(vu);
        close_fd(&vu->backend_fd);
        close_fd(&vu->sched_fd);
        close_fd(&vu->timer_fd);
        close_fd(&vu->fd);
        free(vu->vrings);
        free(vu);
}

bool vs_vu_is_closed(const struct vs_vu *vu)
{
        return vu->closed;
}

static unsigned held(int fd)
{
        return fd >= 0;
}

void vs_vu_get_stats(const struct vs_vu *vu, struct vs_vu_stats *ret)
{
        unsigned fds = held(vu->fd) + held(vu->sched_fd) + held(vu->timer_fd) +
                       held(vu->backend_fd) +
                       vu->in_nfds;

        for (unsigned q = 0; q < vu->nrings; q++)
                fds += held(vu->vrings[q].kick_fd) + held(vu->vrings[q].call_fd) +
                       held(vu->vrings[q].err_fd);
        *ret = (struct vs_vu_stats){
                .messages = vu->messages,
                .fds = fds,
                .regions = vu->mem.n,
                .rings = vu->named,
        };
}

bool vs_vu_memory_lost(const struct vs_vu *vu)
{
        return vs_mem_lost(&vu->mem);
}
