/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the vhost-user backend (src/lib/vhost-user) as a hostile frontend.
 *
 * A vs_device with a few ports and a vs_vu serve one end of a socketpair,
 * driven by vs_epoll exactly as the daemon drives them; the fuzzer is the
 * frontend on the other end and, through the memfds it hands over, the
 * guest too. The input is a list of records, each one action; after every
 * record the loop is pumped until idle, a closed connection is freed (as
 * the daemon does, after the loop iteration) and replies are drained.
 *
 *   op % A_COUNT:
 *   A_SEND      u8 fdspec, u16 len, bytes: one sendmsg() of raw bytes
 *               (message boundaries are the fuzzer's business) with
 *               fdspec & 15 fds of kind fdspec >> 4 (see attach_fds())
 *   A_MEM       u8 memfd, u16 offset, u16 len, bytes: the guest writes
 *               into one of the memfds sent so far
 *   A_KICK      u8 i: signal sent fd i (0xff: all of them)
 *   A_HOST      u8 what, u8 port, ...: host side of a port (see act_host())
 *   A_RECONNECT free the connection and serve a new one on the same
 *               device, as the daemon does for the next VMM
 *   A_SHUTDOWN  the frontend half-closes: the backend sees EOF
 *
 * The first byte picks the device size and the vs_vu queue limit. Every
 * run must end with no fd, mapping or heap block left over: the harness
 * counts open fds and memfd mappings and aborts on a difference.
 *
 * Resource oracles: no call into the device reads more than
 * VS_VQ_CALL_DESCS descriptors; the input's total is at most that times
 * the calls it can have caused (host calls, and per loop callback the
 * messages one socket read handles or the rings one scheduled pass
 * runs); a connection holds at most three fds per ring the device has
 * plus its own few; and nothing loops: after the input the loop goes idle
 * within a bound and then dispatches nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "loop/loop.h"
#include "vhost-user/proto.h"
#include "vhost-user/vhost_user.h"
#include "virtq/virtq.h"
#include "vserial/vserial.h"

#define MEMFD_SIZE (64u * 1024)
#define MAX_MEMS 16u     /* >= SEND_FDS_MAX: a message never evicts its own */
#define MAX_SIG 64u
#define MAX_SOCKS 32u
#define MAX_PORTS 4u
#define PENDING_MAX 4096u
#define SEND_FDS_MAX 12u       /* more than VU_MAX_FDS: the backend must cope */

enum { KIND_AUTO, KIND_EVENTFD, KIND_MEMFD, KIND_SOCKET, KIND_PIPE, KIND_COUNT };
enum { A_SEND, A_MEM, A_KICK, A_HOST, A_RECONNECT, A_SHUTDOWN, A_COUNT };

/* Host-side calls into the device in this input (flush_pending has no fx). */
static uint64_t host_calls;

struct mem {
        int fd;
        uint8_t *map;
};

struct fport {
        struct vs_port *port;
        uint8_t mode;           /* have_data: 0 all, 1 none, 2 half, 3 error */
        bool throttled;
        uint8_t pending[PENDING_MAX];   /* host data the guest had no room for */
        size_t npending;
};

struct fx {
        struct vs_epoll *ep;
        struct vs_device *dev;
        struct vs_vu *vu;
        bool vu_closed;
        bool rings_told;        /* rings_short() called on this connection */
        int peer;                       /* the frontend's end */
        unsigned max_ports, max_queues;
        struct fport ports[MAX_PORTS];
        struct mem mems[MAX_MEMS];      /* memfds sent, mapped here too */
        unsigned nmems;
        int sig[MAX_SIG];               /* write ends of kick-able fds sent */
        unsigned nsig;
        int socks[MAX_SOCKS];           /* our ends of socketpairs sent */
        unsigned nsocks;
        unsigned pumps;
        uint64_t calls;                 /* calls into the device it can have caused */
        uint8_t sink[4096];
};

/* Calls into the device one loop callback can make: a socket read handles
 * up to 64 messages, a scheduled pass VU_SCHED_PER_WAKE rings (virtq.h). */
#define CALLS_PER_CALLBACK 64u
_Static_assert(VU_SCHED_PER_WAKE <= CALLS_PER_CALLBACK, "a scheduled pass fits");
/* Loop passes after the input before it must be idle. */
#define SETTLE_PASSES 4096

/* ---- host side of the ports --------------------------------------------- */

static struct fport *fport_of(struct vs_port *port)
{
        return vs_port_opaque(port);
}

/* Read every byte offered: ASan checks the guest buffers are ours to read. */
static ssize_t have_data(struct vs_port *port, const struct iovec *iov,
                         unsigned iovcnt)
{
        struct fport *fp = fport_of(port);
        static uint8_t sink[4096];
        size_t total = 0;

        for (unsigned i = 0; i < iovcnt; i++) {
                for (size_t o = 0; o < iov[i].iov_len; o += sizeof(sink)) {
                        size_t n = iov[i].iov_len - o;

                        memcpy(sink, (uint8_t *)iov[i].iov_base + o,
                               n < sizeof(sink) ? n : sizeof(sink));
                }
                total += iov[i].iov_len;
        }
        if (fz_verbose())
                fprintf(stderr, "port %u: guest wrote %zu bytes\n", vs_port_id(port), total);
        switch (fp->mode) {
        case 1: return 0;
        case 2: return total / 2;
        case 3: return -EIO;
        default: return total;
        }
}

/* What the daemon's backends do: try the held-back data again. */
static void flush_pending(struct fport *fp)
{
        ssize_t n;

        if (!fp->port || fp->npending == 0)
                return;
        host_calls++;
        n = vs_port_write(fp->port, fp->pending, fp->npending);
        if (fz_verbose())
                fprintf(stderr, "port %u: host wrote %zd of %zu bytes\n",
                        vs_port_id(fp->port), n, fp->npending);
        if (n <= 0)
                return;
        FZ_CHECK((size_t)n <= fp->npending);
        memmove(fp->pending, fp->pending + n, fp->npending - n);
        fp->npending -= n;
}

static void guest_ready(struct vs_port *port)
{
        flush_pending(fport_of(port));
}

static const struct vs_port_ops port_ops = {
        .have_data = have_data,
        .guest_ready = guest_ready,
};

static void add_port(struct fx *f, unsigned id)
{
        char name[32];
        struct vs_port_config pc = { .id = id, .console = id == 0, .name = name };

        host_calls++;
        name[0] = '\0';
        if (id)
                snprintf(name, sizeof(name), "org.fuzz.%u", id);
        f->ports[id].npending = 0;
        f->ports[id].throttled = false;
        if (vs_port_add(f->dev, &pc, &port_ops, &f->ports[id], &f->ports[id].port) < 0)
                f->ports[id].port = NULL;
}

/* ---- the connection ------------------------------------------------------ */

static void on_closed(void *opaque, int err, const char *why)
{
        struct fx *f = opaque;

        if (fz_verbose())
                fprintf(stderr, "connection closed: %s (%d)\n", why, err);
        FZ_CHECK(!f->vu_closed);        /* called once */
        f->vu_closed = true;
}

static void on_queue_broken(void *opaque, unsigned q, int err)
{
        struct fx *f = opaque;

        if (fz_verbose())
                fprintf(stderr, "queue %u broken: %d\n", q, err);
        FZ_CHECK(q < vs_device_num_queues(f->dev));
        FZ_CHECK(err < 0);
}

/* Once per connection, and only for a real shortage. */
static void on_rings_short(void *opaque, unsigned have, unsigned need)
{
        struct fx *f = opaque;

        FZ_CHECK(!f->rings_told);
        f->rings_told = true;
        FZ_CHECK(have > 0 && have < need && need == vs_device_num_queues(f->dev));
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void connect_vu(struct fx *f)
{
        struct vs_vu_config cfg = {
                .loop_ops = &vs_epoll_ops,
                .loop = f->ep,
                .closed = on_closed,
                .queue_broken = on_queue_broken,
                .rings_short = on_rings_short,
                .opaque = f,
                .max_queues = f->max_queues,
        };
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return;
        /* Never block the harness on a backend that stopped reading. */
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        f->peer = sv[0];
        f->vu_closed = false;
        f->rings_told = false;
        if (vs_vu_new(f->dev, sv[1], &cfg, &f->vu) < 0)
                f->vu = NULL;
}

static void disconnect_vu(struct fx *f)
{
        host_calls++;   /* the device is reset */
        vs_vu_free(f->vu);
        f->vu = NULL;
        close_fd(&f->peer);
}

static void drain(int fd, uint8_t *buf, size_t len)
{
        for (int i = 0; i < 64; i++)
                if (recv(fd, buf, len, MSG_DONTWAIT) <= 0)
                        return;
}

/* One loop pass; the calls into the device it can have made count. */
static int pass(struct fx *f)
{
        int n = vs_epoll_run_once(f->ep, 0);

        if (n > 0)
                f->calls += (uint64_t)n * CALLS_PER_CALLBACK;
        return n;
}

/* Run the loop until idle; free a connection that closed, as the daemon. */
static void pump(struct fx *f)
{
        for (int i = 0; i < 16; i++)
                if (pass(f) <= 0)
                        break;
        if (f->vu && f->vu_closed) {
                FZ_CHECK(vs_vu_is_closed(f->vu));
                vs_vu_free(f->vu);
                f->vu = NULL;
        }
        if (f->peer >= 0)
                drain(f->peer, f->sink, sizeof(f->sink));
        /* Interrupts are 8 bytes each: a socket buffer takes thousands, so
         * draining now and then is enough and saves most of the syscalls. */
        if (++f->pumps % 16)
                return;
        for (unsigned i = 0; i < f->nsocks; i++)
                drain(f->socks[i], f->sink, sizeof(f->sink));
}

/* ---- fds the frontend sends ---------------------------------------------- */

/* Bounded lists: the oldest entry makes room. */
static void keep_sig(struct fx *f, int fd)
{
        if (f->nsig == MAX_SIG) {
                close(f->sig[0]);
                memmove(f->sig, f->sig + 1, (MAX_SIG - 1) * sizeof(int));
                f->nsig--;
        }
        f->sig[f->nsig++] = fd;
}

static void keep_sock(struct fx *f, int fd)
{
        if (f->nsocks == MAX_SOCKS) {
                close(f->socks[0]);
                memmove(f->socks, f->socks + 1, (MAX_SOCKS - 1) * sizeof(int));
                f->nsocks--;
        }
        f->socks[f->nsocks++] = fd;
        keep_sig(f, dup(fd));
}

static void mem_release(struct mem *m)
{
        munmap(m->map, MEMFD_SIZE);
        close(m->fd);
}

static int new_memfd(struct fx *f)
{
        struct mem m;

        m.fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
        if (m.fd < 0)
                return -1;
        if (ftruncate(m.fd, MEMFD_SIZE) < 0 ||
            (m.map = mmap(NULL, MEMFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                          m.fd, 0)) == MAP_FAILED) {
                close(m.fd);
                return -1;
        }
        if (f->nmems == MAX_MEMS) {
                mem_release(&f->mems[0]);
                memmove(f->mems, f->mems + 1, (MAX_MEMS - 1) * sizeof(m));
                f->nmems--;
        }
        f->mems[f->nmems++] = m;
        return m.fd;
}

/* One fd to send; the harness keeps what it needs to use its other end. */
static int make_fd(struct fx *f, unsigned kind)
{
        int sv[2], fd;

        switch (kind) {
        case KIND_MEMFD:
                return new_memfd(f);
        case KIND_SOCKET:
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                        return -1;
                fcntl(sv[0], F_SETFL, O_NONBLOCK);
                keep_sock(f, sv[0]);
                return sv[1];
        case KIND_PIPE:
                if (pipe2(sv, O_CLOEXEC | O_NONBLOCK) < 0)
                        return -1;
                keep_sig(f, sv[1]);
                return sv[0];
        default:
                fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (fd >= 0)
                        keep_sig(f, dup(fd));
                return fd;
        }
}

/* Memfds for what starts like SET_MEM_TABLE (request 5), else eventfds. */
static unsigned auto_kind(const uint8_t *msg, size_t len)
{
        return len >= 4 && msg[0] == 5 && !msg[1] && !msg[2] && !msg[3] ?
               KIND_MEMFD : KIND_EVENTFD;
}

static void send_chunk(struct fx *f, const uint8_t *buf, size_t len,
                       uint8_t fdspec)
{
        union {
                char buf[CMSG_SPACE(SEND_FDS_MAX * sizeof(int))];
                struct cmsghdr align;
        } ctl;
        unsigned nfds = (fdspec & 15) % (SEND_FDS_MAX + 1);
        unsigned kind = (fdspec >> 4) % KIND_COUNT;
        struct iovec iov = { (void *)buf, len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        int fds[SEND_FDS_MAX];
        unsigned n = 0;

        if (kind == KIND_AUTO)
                kind = auto_kind(buf, len);
        /* Ancillary data needs at least one byte on a stream socket. */
        for (; len > 0 && n < nfds; n++)
                if ((fds[n] = make_fd(f, kind)) < 0)
                        break;
        if (n > 0) {
                struct cmsghdr *c;

                memset(&ctl, 0, sizeof(ctl));
                mh.msg_control = ctl.buf;
                mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(n * sizeof(int));
                memcpy(CMSG_DATA(c), fds, n * sizeof(int));
        }
        if (f->peer >= 0 && len > 0 &&
            sendmsg(f->peer, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                /* The backend hung up or is full: the frontend's problem. */
        }
        /* The backend has its own copies now; memfd mappings stay ours. */
        for (unsigned i = 0; i < n; i++)
                if (kind != KIND_MEMFD)
                        close(fds[i]);
}

/* ---- actions ------------------------------------------------------------- */

static void act_send(struct fx *f, struct fz *in)
{
        uint8_t fdspec = fz_u8(in);
        size_t len = fz_u16(in);
        const uint8_t *p = fz_take(in, &len);

        send_chunk(f, p, len, fdspec);
}

static void act_mem(struct fx *f, struct fz *in)
{
        uint8_t which = fz_u8(in);
        size_t off = fz_u16(in) % MEMFD_SIZE;
        size_t len = fz_u16(in);
        const uint8_t *p = fz_take(in, &len);

        if (f->nmems == 0)
                return;
        if (len > MEMFD_SIZE - off)
                len = MEMFD_SIZE - off;
        memcpy(f->mems[which % f->nmems].map + off, p, len);
}

static void signal_fd(int fd)
{
        uint64_t one = 1;

        if (write(fd, &one, sizeof(one)) < 0) {
                /* Full (or the other end is gone): the kick is lost. */
        }
}

static void act_kick(struct fx *f, struct fz *in)
{
        uint8_t i = fz_u8(in);

        if (f->nsig == 0)
                return;
        if (i != 0xff) {
                signal_fd(f->sig[i % f->nsig]);
                return;
        }
        for (unsigned k = 0; k < f->nsig; k++)
                signal_fd(f->sig[k]);
}

/* Host data to a port: what does not fit waits for guest_ready. */
static void host_write(struct fport *fp, struct fz *in)
{
        size_t len = fz_u16(in);
        const uint8_t *p = fz_take(in, &len);

        if (len > PENDING_MAX - fp->npending)
                len = PENDING_MAX - fp->npending;
        memcpy(fp->pending + fp->npending, p, len);
        fp->npending += len;
        flush_pending(fp);
}

/* A console resize: RESIZE, or config space plus a backend-channel message. */
static void host_resize(struct fport *fp, struct fz *in)
{
        uint16_t cols = fz_u16(in);

        vs_port_resize(fp->port, cols, fz_u16(in));
}

static void act_host(struct fx *f, struct fz *in)
{
        uint8_t what = fz_u8(in);
        unsigned id = fz_u8(in) % f->max_ports;
        struct fport *fp = &f->ports[id];

        host_calls++;
        if (!fp->port) {
                add_port(f, id);
                return;
        }
        switch (what % 8) {
        case 0: host_write(fp, in); break;
        case 1: fp->mode = fz_u8(in) & 3; break;
        case 2: vs_port_set_host_connected(fp->port, !vs_port_host_connected(fp->port)); break;
        case 3: fp->throttled = !fp->throttled; vs_port_throttle(fp->port, fp->throttled); break;
        case 4: vs_port_remove(fp->port); fp->port = NULL; break;
        case 5: fz_recv_pipe(fp->port, in); break;
        case 6: vs_port_guest_room(fp->port); break;
        case 7: host_resize(fp, in); break;
        }
}

/* The resource oracles, after every action; the fd count (a walk over
 * 1024 rings) after every 32nd and at the end. */
static void check_costs(struct fx *f, bool fds)
{
        struct vs_queue_stats st;
        struct vs_vu_stats vs;

        vs_device_get_stats(f->dev, &st);
        FZ_CHECK(st.max_call_descs <= VS_VQ_CALL_DESCS);
        FZ_CHECK(st.max_chain_descs <= VS_VQ_MAX_CHAIN);
        FZ_CHECK(st.descs <= (f->calls + host_calls) * VS_VQ_CALL_DESCS);
        if (!f->vu || !fds)
                return;
        vs_vu_get_stats(f->vu, &vs);
        FZ_CHECK(vs.fds <= 3 * vs_device_num_queues(f->dev) + 3 + VU_MAX_FDS);
}

/* Nothing loops: the loop goes idle within a bound, then stays idle. */
static void settle(struct fx *f)
{
        struct vs_epoll_stats a, b;
        int n = 1;

        for (int i = 0; i < SETTLE_PASSES && n > 0; i++)
                n = pass(f);
        FZ_CHECK(n == 0);
        vs_epoll_get_stats(f->ep, &a);
        FZ_CHECK(vs_epoll_run_once(f->ep, 0) == 0);
        FZ_CHECK(vs_epoll_run_once(f->ep, 0) == 0);
        vs_epoll_get_stats(f->ep, &b);
        FZ_CHECK(a.dispatched == b.dispatched);
}

static void run_action(struct fx *f, struct fz *in)
{
        switch (fz_u8(in) % A_COUNT) {
        case A_SEND: act_send(f, in); break;
        case A_MEM: act_mem(f, in); break;
        case A_KICK: act_kick(f, in); break;
        case A_HOST: act_host(f, in); break;
        case A_RECONNECT: disconnect_vu(f); connect_vu(f); break;
        case A_SHUTDOWN:
                if (f->peer >= 0)
                        shutdown(f->peer, SHUT_WR);
                break;
        }
        pump(f);
}

/* ---- leak checks ----------------------------------------------------------- */

static unsigned count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        if (!d)
                return 0;
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

/* Mappings of our memfds: the backend must unmap what it mapped. */
static unsigned count_guest_maps(void)
{
        FILE *fp = fopen("/proc/self/maps", "re");
        char line[512];
        unsigned n = 0;

        if (!fp)
                return 0;
        while (fgets(line, sizeof(line), fp))
                n += strstr(line, "/memfd:fuzz-guest") != NULL;
        fclose(fp);
        return n;
}

static void fx_free(struct fx *f)
{
        disconnect_vu(f);
        vs_device_free(f->dev);         /* removes the ports */
        vs_epoll_free(f->ep);
        for (unsigned i = 0; i < f->nmems; i++)
                mem_release(&f->mems[i]);
        for (unsigned i = 0; i < f->nsig; i++)
                close(f->sig[i]);
        for (unsigned i = 0; i < f->nsocks; i++)
                close(f->socks[i]);
        free(f);
}

static struct fx *fx_new(uint8_t cfg)
{
        static const unsigned ports[] = { 1, 2, 4, 4 };
        struct fx *f = calloc(1, sizeof(*f));
        struct vs_device_config dc = { .cols = 80, .rows = 25 };

        if (!f)
                return NULL;
        f->peer = -1;
        f->max_ports = ports[cfg & 3];
        /* Sometimes fewer queues than the device has, as a QEMU num_vqs. */
        f->max_queues = (cfg & 4) ? 2 * f->max_ports : 0;
        dc.max_ports = f->max_ports;
        if (vs_epoll_new(&f->ep) < 0) {
                free(f);
                return NULL;
        }
        if (vs_device_new(&dc, &f->dev) < 0) {
                vs_epoll_free(f->ep);
                free(f);
                return NULL;
        }
        for (unsigned id = 0; id < f->max_ports; id++)
                add_port(f, id);
        connect_vu(f);
        return f;
}

/*
 * As the daemon does: the backend writes to call fds that may be sockets
 * whose other end is gone, and so does the harness when it kicks.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        signal(SIGPIPE, SIG_IGN);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        unsigned fds = count_fds(), maps = count_guest_maps();
        struct fz in = { data, size };
        struct fx *f = fx_new(fz_u8(&in));
        unsigned n = 0;

        if (!f)
                return 0;
        host_calls = 0;
        while (!fz_done(&in) && n++ < 2048) {
                run_action(f, &in);
                check_costs(f, n % 32 == 0);
        }
        settle(f);
        check_costs(f, true);
        fx_free(f);
        FZ_CHECK(count_fds() == fds);
        FZ_CHECK(count_guest_maps() == maps);
        return 0;
}
