/* SPDX-License-Identifier: MIT */
/*
 * Moving bytes between a port and its host fds.
 *
 * Guest->host: have_data() writes straight to the host fd with writev() from
 * guest memory; what the fd does not take is copied into a bounded buffer,
 * and once that is full the port is throttled (the guest's write blocks;
 * nothing is dropped). Host->guest: readv() straight into the guest's
 * receive buffers; when the guest has no room, the fd is unwatched until the
 * device says the guest is ready again, so the data waits in the kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"

/* Reads per wake-up, so one busy port cannot starve the others. */
#define IN_BUDGET 16
#define IN_CHUNK (256u * 1024)

const char *hport_label(const struct hport *hp)
{
        return hp->label;
}

size_t hport_buffered(const struct hport *hp)
{
        return hp->buf.len;
}

bool hport_connected(const struct hport *hp)
{
        return hp->out_fd >= 0 || hp->in_fd >= 0;
}

static void emit(struct hport *hp, enum hport_event ev)
{
        if (hp->env->event)
                hp->env->event(hp->env->opaque, hp, ev);
}

/* ---- the bounded output buffer ------------------------------------------ */

static size_t outbuf_room(const struct outbuf *b)
{
        return b->cap - b->len;
}

/* Copy up to the room left from @iov (skipping @skip bytes). */
static size_t outbuf_put(struct outbuf *b, const struct iovec *iov,
                         unsigned cnt, size_t skip)
{
        size_t done = 0;

        if (!b->data && !(b->data = malloc(b->cap)))
                return 0;
        for (unsigned i = 0; i < cnt && outbuf_room(b) > 0; i++) {
                const uint8_t *src = iov[i].iov_base;
                size_t n = iov[i].iov_len;

                if (skip >= n) {
                        skip -= n;
                        continue;
                }
                src += skip;
                n -= skip;
                skip = 0;
                while (n > 0 && outbuf_room(b) > 0) {
                        size_t tail = (b->head + b->len) % b->cap;
                        size_t chunk = b->cap - tail;

                        if (chunk > n)
                                chunk = n;
                        if (chunk > outbuf_room(b))
                                chunk = outbuf_room(b);
                        memcpy(b->data + tail, src, chunk);
                        b->len += chunk;
                        src += chunk;
                        n -= chunk;
                        done += chunk;
                }
        }
        return done;
}

/* Write buffered bytes to @fd. Returns bytes written or -errno. */
static ssize_t outbuf_flush(struct outbuf *b, int fd)
{
        size_t first = b->cap - b->head < b->len ? b->cap - b->head : b->len;
        struct iovec iov[2] = {
                { b->data + b->head, first },
                { b->data, b->len - first },
        };
        ssize_t n;

        if (b->len == 0)
                return 0;
        n = writev(fd, iov, iov[1].iov_len ? 2 : 1);
        if (n < 0)
                return -errno;
        b->head = (b->head + n) % b->cap;
        b->len -= n;
        if (b->len == 0) {
                /* Idle ports hold no buffer memory. */
                free(b->data);
                b->data = NULL;
                b->head = 0;
        }
        return n;
}

/* ---- watches ------------------------------------------------------------ */

static void on_in(void *opaque, int fd, uint32_t events);
static void on_out(void *opaque, int fd, uint32_t events);

static void watch_fd(struct hport *hp, int fd, uint32_t *cur, uint32_t want,
                     vs_watch_fn fn)
{
        int r = 0;

        if (fd < 0 || *cur == want)
                return;
        if (*cur == 0)
                r = hp->loop_ops->add(hp->loop, fd, want, fn, hp);
        else if (want == 0)
                r = hp->loop_ops->del(hp->loop, fd);
        else
                r = hp->loop_ops->mod(hp->loop, fd, want);
        if (r < 0) {
                log_warn("%s: cannot watch fd %d: %s", hp->label, fd, strerror(-r));
                return;
        }
        *cur = want;
}

/* Watch exactly what is needed now: input unless paused, output if pending. */
static void update_watches(struct hport *hp)
{
        uint32_t in = hp->in_fd >= 0 && !hp->in_paused ? EPOLLIN : 0;
        uint32_t out = hp->out_fd >= 0 && hp->buf.len && !hp->out_unpollable ?
                       EPOLLOUT : 0;

        if (hp->in_fd >= 0 && hp->in_fd == hp->out_fd) {
                watch_fd(hp, hp->in_fd, &hp->in_events, in | out, on_in);
                return;
        }
        watch_fd(hp, hp->in_fd, &hp->in_events, in, on_in);
        watch_fd(hp, hp->out_fd, &hp->out_events, out, on_out);
}

static void unwatch_all(struct hport *hp)
{
        hp->in_paused = true;
        if (hp->in_fd >= 0 && hp->in_fd == hp->out_fd) {
                watch_fd(hp, hp->in_fd, &hp->in_events, 0, on_in);
                return;
        }
        watch_fd(hp, hp->in_fd, &hp->in_events, 0, on_in);
        watch_fd(hp, hp->out_fd, &hp->out_events, 0, on_out);
}

/* ---- host -> guest ------------------------------------------------------ */

static void peer_gone(struct hport *hp, const char *why)
{
        log_info("%s: host side disconnected (%s)", hp->label, why);
        hp->ops->peer_gone(hp);
}

static void pump_in(struct hport *hp)
{
        for (int i = 0; i < IN_BUDGET && hp->in_fd >= 0; i++) {
                ssize_t n = vs_port_recv_fd(hp->port, hp->in_fd, IN_CHUNK);

                if (n > 0)
                        continue;
                if (n == -EAGAIN || n == -EINTR)
                        return;
                if (n == -ENOBUFS) {
                        /* The guest is full: leave the data in the kernel. */
                        hp->in_paused = true;
                        update_watches(hp);
                        return;
                }
                peer_gone(hp, n == 0 ? "end of input" : strerror((int)-n));
                return;
        }
}

/* ---- guest -> host ------------------------------------------------------ */

static void flush_out(struct hport *hp)
{
        ssize_t n = 0;

        while (hp->out_fd >= 0 && hp->buf.len && n >= 0)
                n = outbuf_flush(&hp->buf, hp->out_fd);
        if (n < 0 && n != -EAGAIN && n != -EINTR) {
                peer_gone(hp, strerror((int)-n));
                return;
        }
        update_watches(hp);
        if (outbuf_room(&hp->buf) > 0)
                vs_port_throttle(hp->port, false);
}

static void on_out(void *opaque, int fd, uint32_t events)
{
        (void)fd;
        (void)events;
        flush_out(opaque);
}

static void on_in(void *opaque, int fd, uint32_t events)
{
        struct hport *hp = opaque;

        (void)fd;
        if ((events & EPOLLOUT) || ((events & (EPOLLERR | EPOLLHUP)) && hp->buf.len))
                flush_out(hp);
        if (hp->in_fd >= 0 && !hp->in_paused && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                pump_in(hp);
}

static ssize_t have_data(struct vs_port *port, const struct iovec *iov,
                         unsigned cnt)
{
        struct hport *hp = vs_port_opaque(port);
        size_t total = 0, done = 0;

        for (unsigned i = 0; i < cnt; i++)
                total += iov[i].iov_len;
        /* Straight from guest memory when nothing is queued before it. */
        if (hp->out_fd >= 0 && hp->buf.len == 0) {
                ssize_t n = writev(hp->out_fd, iov, cnt);

                if (n > 0)
                        done = n;
                else if (n < 0 && errno != EAGAIN && errno != EINTR)
                        log_debug("%s: write: %s", hp->label, strerror(errno));
        }
        if (done < total)
                done += outbuf_put(&hp->buf, iov, cnt, done);
        update_watches(hp);
        return done;
}

/* ---- device callbacks --------------------------------------------------- */

static void set_guest_connected(struct vs_port *port, bool connected)
{
        struct hport *hp = vs_port_opaque(port);

        log_info("%s: guest %s", hp->label, connected ? "opened" : "closed");
        emit(hp, connected ? HPORT_GUEST_OPEN : HPORT_GUEST_CLOSE);
}

static void guest_ready(struct vs_port *port)
{
        struct hport *hp = vs_port_opaque(port);

        if (hp->in_fd < 0 || !hp->in_paused)
                return;
        hp->in_paused = false;
        update_watches(hp);
        pump_in(hp);
}

static const struct vs_port_ops hport_ops = {
        .set_guest_connected = set_guest_connected,
        .guest_ready = guest_ready,
        .have_data = have_data,
};

/* ---- attach / detach ---------------------------------------------------- */

void hport_attach(struct hport *hp, int in_fd, int out_fd)
{
        hp->in_fd = in_fd;
        hp->out_fd = out_fd;
        hp->in_events = hp->out_events = 0;
        hp->in_paused = false;
        vs_port_set_host_connected(hp->port, true);
        emit(hp, HPORT_HOST_CONNECT);
        update_watches(hp);
        flush_out(hp);
}

void hport_detach(struct hport *hp)
{
        if (!hport_connected(hp))
                return;
        unwatch_all(hp);
        hp->in_fd = hp->out_fd = -1;
        hp->in_events = hp->out_events = 0;
        vs_port_set_host_connected(hp->port, false);
        emit(hp, HPORT_HOST_DISCONNECT);
}

int hport_new(struct vs_device *dev, const struct port_spec *spec,
              const struct hport_env *env, struct hport **ret)
{
        struct vs_port_config pc = { .id = spec->id, .name = spec->name,
                                     .console = spec->console };
        struct hport *hp = calloc(1, sizeof(*hp));
        int r;

        if (!hp)
                return -ENOMEM;
        hp->spec = *spec;
        hp->ops = spec->backend == BACKEND_STDIO ? &backend_stdio_ops : &backend_unix_ops;
        hp->env = env;
        hp->loop_ops = env->loop_ops;
        hp->loop = env->loop;
        hp->listen_fd = hp->in_fd = hp->out_fd = -1;
        hp->buf.cap = HPORT_BUFFER_DEFAULT;
        r = vs_port_add(dev, &pc, &hport_ops, hp, &hp->port);
        if (r < 0) {
                free(hp);
                return r;
        }
        snprintf(hp->label, sizeof(hp->label), "port %u (%s)", vs_port_id(hp->port),
                 spec->name[0] ? spec->name : spec->console ? "console" : "unnamed");
        r = hp->ops->start(hp);
        if (r < 0) {
                vs_port_remove(hp->port);
                free(hp);
                return r;
        }
        *ret = hp;
        return 0;
}

void hport_free(struct hport *hp)
{
        if (!hp)
                return;
        hp->ops->stop(hp);
        vs_port_remove(hp->port);
        free(hp->buf.data);
        free(hp);
}

void hport_drop_input(struct hport *hp)
{
        if (hp->in_fd < 0)
                return;
        if (hp->in_fd == hp->out_fd) {
                hp->in_paused = true;
                update_watches(hp);
        } else {
                watch_fd(hp, hp->in_fd, &hp->in_events, 0, on_in);
        }
        hp->in_fd = -1;
}
