/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the daemon's host-side state machine: control-socket requests (add,
 * remove, resize, attach, subscribe, list, stats, history, reopen,
 * unplug, plug, malformed lines) from several clients, host peers connecting to port sockets, interleaved with
 * a hostile guest's control messages (DEVICE_READY, PORT_READY, PORT_OPEN,
 * unknown events and ports), port data both ways and control-rx buffers
 * posted or withheld (a full control queue), all through the daemon's own
 * ctl_server.c, backend*.c, clients.c, plug.c, listener.c and the device, wired as main.c
 * wires them but over an in-process transport instead of vhost-user.
 *
 * Oracles besides ASan/UBSan (a use-after-free like the audit's finding 1
 * shows up here):
 *  - every port in the device has live host state naming it, and every
 *    host port is in the device unless it is unplugged (no host state
 *    without a port or an unplugged id);
 *  - after every action the loop goes idle within SETTLE_ROUNDS passes
 *    (no callback without progress: a watch that fires for ever fails);
 *  - each input ends with the fds it started with.
 *
 * Ports use a private directory made at start-up; the specs come from a
 * fixed table (the fuzzer never chooses a path), and raw request lines
 * from the input are used only when they cannot name a path.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"
#include "ctl_server.h"
#include "fuzz.h"
#include "rings.h"
#include "listener.h"
#include "log.h"
#include "loop/loop.h"
#include "stats.h"
#include "virtq/virtq.h"
#include "vserial/vserial.h"

#define RAM_SIZE 0x10000ull
#define FEATURES ((1ull << VS_CONSOLE_F_MULTIPORT) | (1ull << VS_CONSOLE_F_SIZE) | \
                  (1ull << VS_F_VERSION_1))
#define CLIENTS 3u
#define PEERS 3u
#define SETTLE_ROUNDS 256
#define ACTIONS_MAX 512

static char dir[64];            /* the ports' directory */

struct dq {
        uint16_t avail_idx;
        uint16_t used_seen;
        unsigned next_slot;
        unsigned out;           /* chains the device has not returned */
};

struct fx {
        uint8_t *ram;
        struct vs_mem_map map;
        struct vs_epoll *ep;
        struct listen_pool *lp;
        struct hport_env env;
        struct vs_device *dev;
        struct ctl_server *cs;
        struct dq q[NVQS];
        struct fz_sched sched;
        int client[CLIENTS];    /* our end of a control connection, or -1 */
        int peer[PEERS];        /* a host peer of a unix port, or -1 */
};

/* ---- the guest driver --------------------------------------------------- */

static uint8_t *ram(struct fx *f, uint64_t off)
{
        return f->ram + off;
}

static void setup_queues(struct fx *f)
{
        memset(f->q, 0, sizeof(f->q));
        fz_rings_setup(f->dev, f->ram);
}

/* What the device returned: what the guest checks of it. */
static void take_used(struct fx *f, unsigned q)
{
        struct dq *d = &f->q[q];
        uint16_t idx = fz_used_idx(f->ram, q);

        for (unsigned n = 0; d->used_seen != idx && n < QSIZE; n++, d->used_seen++) {
                uint32_t id, len;

                fz_used_entry(f->ram, q, d->used_seen, &id, &len);
                FZ_CHECK(id < QSIZE);
                FZ_CHECK(len <= SLOT);
                FZ_CHECK(d->out > 0);
                d->out--;
        }
}

/* One chain of one descriptor: @len bytes of @data (readable) or a
 * writable buffer of @len bytes (@data NULL). False if the ring is full. */
static bool post(struct fx *f, unsigned q, const void *data, size_t len)
{
        struct dq *d = &f->q[q];
        uint16_t head, le;
        struct vs_vring_desc desc;

        take_used(f, q);
        if (d->out >= QSIZE)
                return false;
        head = d->next_slot++ % QSIZE;
        if (len > SLOT)
                len = SLOT;
        if (data)
                memcpy(ram(f, BUF(q, head)), data, len);
        desc = (struct vs_vring_desc){
                .addr = htole64(RAM_GPA + BUF(q, head)), .len = htole32(len),
                .flags = htole16(data ? 0 : VS_VRING_DESC_F_WRITE),
        };
        memcpy(ram(f, RING(q) + 16 * head), &desc, sizeof(desc));
        le = htole16(head);
        memcpy(ram(f, RING(q) + 0x100 + 4 + 2 * (d->avail_idx % QSIZE)), &le, 2);
        d->avail_idx++;
        le = htole16(d->avail_idx);
        __atomic_store_n((uint16_t *)ram(f, RING(q) + 0x100 + 2), le, __ATOMIC_RELEASE);
        d->out++;
        return true;
}

static void kick(struct fx *f, unsigned q)
{
        vs_device_queue_kick(f->dev, q);
}

static void ctrl_msg(struct fx *f, uint32_t id, uint16_t event, uint16_t value)
{
        uint8_t m[8];
        uint32_t le_id = htole32(id);
        uint16_t le_ev = htole16(event), le_val = htole16(value);

        memcpy(m, &le_id, 4);
        memcpy(m + 4, &le_ev, 2);
        memcpy(m + 6, &le_val, 2);
        if (post(f, 3, m, sizeof(m)))
                kick(f, 3);
}

static void reset_guest(struct fx *f)
{
        vs_device_reset(f->dev);
        FZ_CHECK(vs_device_set_features(f->dev, FEATURES) == 0);
        setup_queues(f);
}

/* ---- the loop settles ---------------------------------------------------- */

/* Run the loop and the device's scheduled queues until nothing happens:
 * bounded, or a callback keeps firing without progress. */
static void settle(struct fx *f)
{
        for (int round = 0; round < SETTLE_ROUNDS; round++) {
                int n = vs_epoll_run_once(f->ep, 0);
                bool any = false;

                FZ_CHECK(n >= 0);
                for (unsigned q = 0; q < NVQS; q++) {
                        if (!f->sched.scheduled[q])
                                continue;
                        f->sched.scheduled[q] = false;
                        any = true;
                        kick(f, q);
                }
                if (n == 0 && !any)
                        return;
        }
        fz_fail(__FILE__, __LINE__, "the loop never went idle");
}

/* Every device port has its host port and every plugged host port its
 * device port; unplugged ones keep their id free in the device. */
static void check_ports(struct fx *f)
{
        unsigned n = 0;

        for (struct vs_port *p = vs_port_next(f->dev, NULL); p; p = vs_port_next(f->dev, p)) {
                const struct hport *hp = vs_port_opaque(p);

                FZ_CHECK(hp && hp->port == p && hp->id == vs_port_id(p));
                FZ_CHECK(hport_find_id(&f->env, hp->id) == hp);
        }
        for (struct hport *hp = hport_next(&f->env, NULL); hp; hp = hport_next(&f->env, hp)) {
                FZ_CHECK(hp->port ? vs_port_find(f->dev, hp->id) == hp->port :
                                    vs_port_find(f->dev, hp->id) == NULL);
                n++;
        }
        FZ_CHECK(n == f->env.nports);
}

/* ---- the host side -------------------------------------------------------- */

static const char *const specs[] = {
        "backend=null",
        "name=org.fz.a,backend=null",
        "name=org.fz.b,console,backend=null",
        "console,backend=null,buffer=4K",
        "backend=unix,path=%s/a.sock",
        "name=org.fz.c,backend=unix,path=%s/b.sock,buffer=4K",
        "name=org.fz.d,backend=unix,path=%s/d.sock,buffer=4K,clients=3",
        "backend=unix,path=%s/e.sock,on-connect=discard,clients=2",
        "console,backend=unix,path=%s/c.sock",
        "backend=file,path=%s/f1",
        "name=org.fz.d,backend=file,path=%s/f2,buffer=4K",
        "backend=unix-connect,path=%s/peer.sock",
        "name=org.fz.e,backend=pty",
        "name=org.fz.a,backend=unix,path=%s/a.sock",    /* clashes */
        "name=org.fz.h,backend=null,history=4K,logfile=%s/l1",
        "console,backend=unix,path=%s/c.sock,logfile=%s/l2,logfile-timestamps=on",
};

static const char *const names[] = { "org.fz.a", "org.fz.b", "org.fz.c", "org.fz.d",
                                     "org.fz.e", "nope", "" };

static const char *const sockets[PEERS] = { "a.sock", "b.sock", "c.sock" };

static void send_line(struct fx *f, unsigned c, const char *line, size_t len)
{
        if (f->client[c] < 0)
                return;
        /* A full socket is the client's problem: what fits is sent. */
        if (send(f->client[c], line, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                return;
}

/* A "port" member: an id (some out of range) or a name. */
static void port_ref(struct fz *in, char *out, size_t len)
{
        uint8_t b = fz_u8(in);

        if (b & 1)
                snprintf(out, len, "%d", (int)(b >> 1) % (MAX_PORTS + 2) - (b & 0x80 ? 1 : 0));
        else
                snprintf(out, len, "\"%s\"", names[(b >> 1) % (sizeof(names) / sizeof(names[0]))]);
}

static void request(struct fx *f, struct fz *in)
{
        unsigned c = fz_u8(in) % CLIENTS;
        char line[1200], spec[600], port[32];
        int n = 0;

        switch (fz_u8(in) % 11) {
        case 0: {
                uint8_t s = fz_u8(in), id = fz_u8(in);

                snprintf(spec, sizeof(spec), specs[s % (sizeof(specs) / sizeof(specs[0]))], dir,
                         dir);
                if (id & 8)
                        n = snprintf(line, sizeof(line), "{\"cmd\":\"add\",\"spec\":\"id=%u,%s\"}\n",
                                     (id >> 4) % (MAX_PORTS + 1), spec);
                else
                        n = snprintf(line, sizeof(line), "{\"cmd\":\"add\",\"spec\":\"%s\"}\n", spec);
                break;
        }
        case 1:
                port_ref(in, port, sizeof(port));
                n = snprintf(line, sizeof(line), "{\"cmd\":\"remove\",\"port\":%s}\n", port);
                break;
        case 2: {
                uint16_t cols, rows;

                port_ref(in, port, sizeof(port));
                cols = fz_u16(in);
                rows = fz_u16(in);
                n = snprintf(line, sizeof(line),
                             "{\"cmd\":\"resize\",\"port\":%s,\"cols\":%u,\"rows\":%u}\n", port,
                             cols, rows);
                break;
        }
        case 3: {
                static const char *const modes[] = { "", ",\"mode\":\"read-only\"",
                                                     ",\"mode\":\"write\"", ",\"mode\":1" };
                uint8_t m = fz_u8(in);

                port_ref(in, port, sizeof(port));
                n = snprintf(line, sizeof(line), "{\"cmd\":\"attach\",\"port\":%s%s}\n", port,
                             modes[m % 4]);
                break;
        }
        case 4:
                n = snprintf(line, sizeof(line), "{\"cmd\":\"subscribe\"}\n");
                break;
        case 5:
                n = snprintf(line, sizeof(line), "{\"cmd\":\"list\"}\n");
                break;
        case 6:
                n = snprintf(line, sizeof(line), "{\"cmd\":\"stats\"}\n");
                break;
        case 7: {
                /* history (a reader on the port, or an error), reopen, metrics */
                uint8_t how = fz_u8(in);

                port_ref(in, port, sizeof(port));
                if (how % 4 == 0)
                        n = snprintf(line, sizeof(line), "{\"cmd\":\"reopen\"}\n");
                else if (how % 4 == 1)
                        n = snprintf(line, sizeof(line),
                                     "{\"cmd\":\"stats\",\"format\":\"prometheus\"}\n");
                else
                        n = snprintf(line, sizeof(line),
                                     "{\"cmd\":\"history\",\"port\":%s,\"bytes\":%u%s}\n", port,
                                     (how >> 2) * 97u, how % 4 == 3 ? ",\"follow\":true" : "");
                break;
        }
        case 8: {
                uint8_t u = fz_u8(in);

                port_ref(in, port, sizeof(port));
                n = snprintf(line, sizeof(line), "{\"cmd\":\"%s\",\"port\":%s}\n",
                             u & 1 ? "plug" : "unplug", port);
                break;
        }
        default: {
                /* Raw bytes, unless they could be an add (which names paths). */
                size_t len = fz_u8(in);
                const uint8_t *p = fz_take(in, &len);

                if (memchr(p, '\\', len) || memmem(p, len, "add", 3) || memmem(p, len, "spec", 4))
                        return;
                send_line(f, c, (const char *)p, len);
                return;
        }
        }
        send_line(f, c, line, (size_t)n);
}

static void client_toggle(struct fx *f, unsigned c)
{
        int sv[2];

        if (f->client[c] >= 0) {
                close(f->client[c]);
                f->client[c] = -1;
                return;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
                return;
        f->client[c] = sv[0];
        ctl_server_adopt(f->cs, sv[1]);
}

/* Read what a client was sent (replies, events, or an attached port's
 * bytes), or leave it unread (then the server's backlog grows). */
static void client_read(struct fx *f, unsigned c)
{
        char buf[4096];

        for (int i = 0; i < 64 && f->client[c] >= 0; i++) {
                ssize_t n = recv(f->client[c], buf, sizeof(buf), MSG_DONTWAIT);

                if (n <= 0)
                        break;
                if (fz_verbose())
                        fprintf(stderr, "client %u read: %.*s\n", c, (int)n, buf);
        }
}

static void peer_toggle(struct fx *f, unsigned p)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (f->peer[p] >= 0) {
                close(f->peer[p]);
                f->peer[p] = -1;
                return;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, sockets[p]);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return;
        }
        f->peer[p] = fd;
}

/* Host bytes to a peer (a port socket's client or an attached client). */
static void host_write(struct fx *f, struct fz *in)
{
        uint8_t who = fz_u8(in);
        size_t len = fz_u8(in) * 16u;
        const uint8_t *p = fz_take(in, &len);
        int fd = who & 1 ? f->client[(who >> 1) % CLIENTS] : f->peer[(who >> 1) % PEERS];

        if (fd >= 0 && len && send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                return;
        if (fd >= 0 && (who & 0x80)) {
                char buf[4096];

                while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                        ;
        }
}

/* ---- actions -------------------------------------------------------------- */

enum {
        A_CTRL,         /* u32 id, u8 event, u8 value: a guest control message */
        A_READY,        /* u8 port: PORT_READY 1 (the storm of finding 1) */
        A_POST_CTRL,    /* u8 count: control-rx buffers (0: none, the queue fills) */
        A_POST_RX,      /* u8 port, u8 count: receive buffers */
        A_TX,           /* u8 port, u8 len, bytes: the guest writes */
        A_REQUEST,      /* a control request */
        A_CLIENT,       /* u8: open or close a control connection */
        A_READ,         /* u8: read a control connection */
        A_PEER,         /* u8: connect to or leave a port's unix socket */
        A_HOST_WRITE,   /* host bytes */
        A_RESET,        /* the guest driver restarts */
        A_COUNT
};

static unsigned port_of(uint8_t b)
{
        return b % MAX_PORTS;
}

static unsigned rxq(unsigned id) { return id == 0 ? 0 : 2 * id + 2; }
static unsigned txq(unsigned id) { return id == 0 ? 1 : 2 * id + 3; }

static void run_action(struct fx *f, struct fz *in)
{
        switch (fz_u8(in) % A_COUNT) {
        case A_CTRL: {
                uint32_t id = fz_u32(in);
                uint8_t ev = fz_u8(in), val = fz_u8(in);

                ctrl_msg(f, id & 0x80000000u ? id : id % (MAX_PORTS + 1), ev % 9, val % 3);
                break;
        }
        case A_READY: {
                unsigned id = port_of(fz_u8(in));

                for (int i = 0; i < 8; i++)
                        ctrl_msg(f, id, 3, 1);
                break;
        }
        case A_POST_CTRL: {
                unsigned n = fz_u8(in) % (QSIZE + 1);

                for (unsigned i = 0; i < n; i++)
                        post(f, 2, NULL, SLOT);
                kick(f, 2);
                break;
        }
        case A_POST_RX: {
                unsigned q = rxq(port_of(fz_u8(in))), n = fz_u8(in) % (QSIZE + 1);

                for (unsigned i = 0; i < n; i++)
                        post(f, q, NULL, SLOT);
                kick(f, q);
                break;
        }
        case A_TX: {
                unsigned q = txq(port_of(fz_u8(in)));
                size_t len = fz_u8(in) + 1u;
                const uint8_t *p = fz_take(in, &len);

                if (post(f, q, p, len))
                        kick(f, q);
                break;
        }
        case A_REQUEST: request(f, in); break;
        case A_CLIENT: client_toggle(f, fz_u8(in) % CLIENTS); break;
        case A_READ: client_read(f, fz_u8(in) % CLIENTS); break;
        case A_PEER: peer_toggle(f, fz_u8(in) % PEERS); break;
        case A_HOST_WRITE: host_write(f, in); break;
        case A_RESET: reset_guest(f); break;
        }
        for (unsigned q = 0; q < NVQS; q++)
                take_used(f, q);
        settle(f);
        check_ports(f);
}

/* ---- set-up and teardown ---------------------------------------------------- */

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        if (!d)
                return -1;
        while ((e = readdir(d)) != NULL)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

/* Files a file port made stay (as they would); the next input starts clean. */
static void clean_dir(void)
{
        static const char *const files[] = { "f1", "f2", "a.sock", "b.sock", "c.sock",
                                             "l1", "l2" };
        char path[128];

        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                unlink(path);
        }
}

static int fx_new(struct fx *f)
{
        struct vs_device_config dc = { .max_ports = MAX_PORTS, .cols = 80, .rows = 25 };
        struct ctl_server_config cc = { .path = NULL };

        memset(f, 0, sizeof(*f));
        for (unsigned i = 0; i < CLIENTS; i++)
                f->client[i] = -1;
        for (unsigned i = 0; i < PEERS; i++)
                f->peer[i] = -1;
        f->ram = calloc(1, RAM_SIZE);
        if (!f->ram || vs_epoll_new(&f->ep) < 0)
                return -1;
        if (vs_device_new(&dc, &f->dev) < 0 ||
            listen_pool_new(&vs_epoll_ops, f->ep, &f->lp) < 0)
                return -1;
        f->env = (struct hport_env){ .loop_ops = &vs_epoll_ops, .loop = f->ep,
                                     .listeners = f->lp };
        cc.dev = f->dev;
        cc.env = &f->env;
        if (ctl_server_new(&cc, &f->cs) < 0)
                return -1;
        f->env.event = ctl_server_hport_event;
        f->env.opaque = f->cs;
        vs_device_set_event_cb(f->dev, ctl_server_device_event, f->cs);
        f->map = (struct vs_mem_map){ .gpa = RAM_GPA, .size = RAM_SIZE, .uva = RAM_GPA,
                                      .host = f->ram };
        vs_device_set_transport(f->dev, &fz_transport, &f->sched);
        vs_device_set_memory(f->dev, &f->map, 1);
        reset_guest(f);
        return 0;
}

/* As main.c's teardown: host sides, control server, device, loop. */
static void fx_free(struct fx *f)
{
        for (unsigned i = 0; i < CLIENTS; i++)
                if (f->client[i] >= 0)
                        close(f->client[i]);
        for (unsigned i = 0; i < PEERS; i++)
                if (f->peer[i] >= 0)
                        close(f->peer[i]);
        for (struct hport *hp; (hp = hport_next(&f->env, NULL));)
                hport_free(hp);
        FZ_CHECK(f->env.nports == 0);
        ctl_server_free(f->cs);
        vs_device_free(f->dev);
        listen_pool_free(f->lp);
        vs_epoll_free(f->ep);
        free(f->ram);
}

static void remove_dir(void)
{
        clean_dir();
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        /* Quiet: the rate limit and the log are tested elsewhere. */
        log_set_level(fz_verbose() ? LOG_LEVEL_DEBUG : -1);
        /* As the daemon's main() does: a peer that left is an EPIPE to
         * handle, not a signal (the 30-minute run died of one at 7800 execs). */
        signal(SIGPIPE, SIG_IGN);
        snprintf(dir, sizeof(dir), "/tmp/vsfz-XXXXXX");
        if (!mkdtemp(dir))
                abort();
        atexit(remove_dir);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fz in = { data, size };
        static struct fx f;
        int fds = count_fds();
        unsigned n = 0;

        if (fx_new(&f) == 0) {
                /* A driver that has started: control buffers and DEVICE_READY. */
                for (unsigned i = 0; i < 8; i++)
                        post(&f, 2, NULL, SLOT);
                kick(&f, 2);
                ctrl_msg(&f, 0xffffffffu, 0, 1);
                settle(&f);
                client_toggle(&f, 0);
                while (!fz_done(&in) && n++ < ACTIONS_MAX)
                        run_action(&f, &in);
        }
        fx_free(&f);
        clean_dir();
        FZ_CHECK(count_fds() == fds);
        return 0;
}
