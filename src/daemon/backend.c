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
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "tap.h"
#include "clients.h"


const char *hport_label(const struct hport *hp)
{
        return hp->label;
}

const char *hport_path(const struct hport *hp)
{
        if (hp->spec.path[0])
                return hp->spec.path;
        return hp->ops->path ? hp->ops->path(hp) : NULL;
}

size_t hport_buffered(const struct hport *hp)
{
        if (hp->clients)
                return clients_buffered(hp->clients);
        return hp->buf.len;
}

bool hport_connected(const struct hport *hp)
{
        if (hp->clients)
                return clients_count(hp->clients) > 0;
        return hp->out_fd >= 0 || hp->in_fd >= 0;
}

void hport_emit(struct hport *hp, enum hport_event ev)
{
        if (hp->env->event)
                hp->env->event(hp->env->opaque, hp, ev);
        hp->ev = (struct hport_event_info){ 0 };
}

static void emit(struct hport *hp, enum hport_event ev)
{
        hport_emit(hp, ev);
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

/* Forget bytes appended since the buffer held @len. */
static void outbuf_trim(struct outbuf *b, size_t len)
{
        b->len = len;
        if (b->len == 0) {
                free(b->data);
                b->data = NULL;
                b->head = 0;
        }
}

/*
 * Guest memory the VMM truncated (see hport_env.guest_memory_lost): what a
 * copy read from it is zeros, not guest output, and host input read into
 * it reaches no guest. True when the bytes of this call must not be used.
 */
bool hport_memory_lost(struct hport *hp, bool fault)
{
        return hp->env->guest_memory_lost &&
               hp->env->guest_memory_lost(hp->env->mem_opaque, fault);
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
/*
 * What to watch on the input: data when reading, else only the peer's
 * hang-up, so a client that leaves while the guest cannot take its data is
 * still noticed (once: a hang-up with data left is acted on when reading
 * resumes and meets the end).
 */
static uint32_t in_events(const struct hport *hp)
{
        if (hp->in_fd < 0 || hp->in_unpollable)
                return 0;
        if (!hp->in_paused)
                return EPOLLIN | EPOLLRDHUP;
        return hp->hup_seen ? 0 : EPOLLRDHUP;
}

static void update_watches(struct hport *hp)
{
        uint32_t in = in_events(hp);
        uint32_t out = hp->out_fd >= 0 && hp->buf.len && !hp->out_unpollable &&
                       !hp->peer_eof ? EPOLLOUT : 0;

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

/*
 * A control client attached as the peer (hport_attach_client) ends with the
 * first end of input, output error or hang-up: its fd is closed and the
 * backend is as it was before.
 */
static void end_client(struct hport *hp)
{
        hport_detach(hp);
        close(hp->client_fd);
        hp->client_fd = -1;
}

/* The backend then hears that its peer is gone (after a control client:
 * with no fds, so unix-connect resumes retrying). */
static void peer_gone(struct hport *hp, const char *why)
{
        log_info("%s: host side disconnected (%s)", hp->label, why);
        if (hp->client_fd >= 0)
                end_client(hp);
        hp->ops->peer_gone(hp);
}

static void on_poke(void *opaque, int fd, uint32_t events);
static void unpoke(struct hport *hp);

enum hport_recv hport_recv(struct hport *hp, int fd, size_t *want, int *ret_err)
{
        ssize_t n = vs_port_recv_fd(hp->port, fd, *want);

        /*
         * Ask next for what this read suggests: the device takes (and
         * gives back) receive buffers for all of it, which is most of the
         * cost of a small message. A short read means the fd is drained
         * for now; epoll reports the rest.
         */
        if (n > 0 && (size_t)n == *want) {
                *want = *want * 2 > HPORT_IN_CHUNK ? HPORT_IN_CHUNK : *want * 2;
                return HPORT_RECV_MORE;
        }
        if (n > 0) {
                *want = (size_t)n > HPORT_IN_MIN ? (size_t)n : HPORT_IN_MIN;
                return HPORT_RECV_DRAINED;
        }
        if (n == -EAGAIN || n == -EINTR)
                return HPORT_RECV_DRAINED;
        /* Guest memory gone: the VMM goes, the input waits in the kernel
         * for the next guest (its PORT_READY resumes it). */
        if (n == -EFAULT)
                hport_memory_lost(hp, true);
        if (n == -ENOBUFS || n == -EFAULT)
                return HPORT_RECV_FULL;
        *ret_err = (int)-n;
        return HPORT_RECV_END;
}

/* Input epoll cannot watch was left unread for fairness: come back soon. */
static void poke_later(struct hport *hp)
{
        uint64_t one = 1;

        if (hp->poke_fd < 0) {
                hp->poke_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                if (hp->poke_fd < 0 ||
                    hp->loop_ops->add(hp->loop, hp->poke_fd, EPOLLIN, on_poke, hp) < 0) {
                        log_warn("%s: cannot schedule reading: %s", hp->label, strerror(errno));
                        return;
                }
        }
        if (write(hp->poke_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                log_debug("%s: poke: %s", hp->label, strerror(errno));
}

static void pump_in(struct hport *hp)
{
        if (!hp->port || (hp->in_fd >= 0 && !hp->in_paused && hport_memory_lost(hp, false))) {
                /* Unplugged, or guest memory lost: the input waits where it
                 * is for the next plug or guest (guest_ready() resumes). */
                hp->in_paused = true;
                update_watches(hp);
                unpoke(hp);
                return;
        }
        if (hp->in_fd >= 0 && hp->in_unpollable && !hp->in_paused)
                poke_later(hp);         /* undone below unless the budget runs out */
        for (int i = 0; i < HPORT_IN_BUDGET && hp->in_fd >= 0; i++) {
                int err = 0;
                enum hport_recv r = hport_recv(hp, hp->in_fd, &hp->in_want, &err);

                if (r == HPORT_RECV_MORE)
                        continue;
                if (r == HPORT_RECV_DRAINED)
                        break;
                if (r == HPORT_RECV_FULL) {
                        /* Leave the data in the kernel. */
                        hp->in_paused = true;
                        update_watches(hp);
                        return;
                }
                if (err == 0 && hp->ops->input_end && hp->client_fd < 0)
                        hp->ops->input_end(hp);
                else
                        peer_gone(hp, err == 0 ? "end of input" : strerror(err));
                break;
        }
        if (hp->in_fd < 0 || hp->in_paused)
                unpoke(hp);
}

static void unpoke(struct hport *hp)
{
        uint64_t count;

        if (hp->poke_fd >= 0 && read(hp->poke_fd, &count, sizeof(count)) < 0 &&
            errno != EAGAIN)
                log_debug("%s: unpoke: %s", hp->label, strerror(errno));
}

static void on_poke(void *opaque, int fd, uint32_t events)
{
        struct hport *hp = opaque;
        uint64_t count;

        (void)events;
        if (read(fd, &count, sizeof(count)) < 0)
                return;
        if (hp->in_fd >= 0 && !hp->in_paused)
                pump_in(hp);
}

/* ---- guest -> host ------------------------------------------------------ */

static void flush_out(struct hport *hp)
{
        ssize_t n = 0;

        while (hp->out_fd >= 0 && !hp->peer_eof && hp->buf.len && n >= 0)
                n = outbuf_flush(&hp->buf, hp->out_fd);
        if (n < 0 && n != -EAGAIN && n != -EINTR) {
                if (hp->ops->output_error && hp->client_fd < 0)
                        hp->ops->output_error(hp, (int)n);
                else
                        peer_gone(hp, strerror((int)-n));
                return;
        }
        update_watches(hp);
        if (outbuf_room(&hp->buf) > 0 && hp->port)
                vs_port_throttle(hp->port, false);
}

void hport_flush(struct hport *hp)
{
        flush_out(hp);
}

void hport_winch(struct hport *hp)
{
        if (hp->ops->winch)
                hp->ops->winch(hp);
}

int hport_reopen(struct hport *hp)
{
        int failed = 0;

        if (hp->ops->reopen)
                failed += hp->ops->reopen(hp) < 0;
        failed += tap_reopen(hp->tap) < 0;
        return failed;
}

static void on_timer(void *opaque, int fd, uint32_t events)
{
        struct hport *hp = opaque;
        uint64_t expirations;

        (void)events;
        if (read(fd, &expirations, sizeof(expirations)) >= 0)
                hp->timer_fn(hp);
}

int hport_timer_new(struct hport *hp, void (*fn)(struct hport *hp))
{
        int r;

        hp->timer_fn = fn;
        hp->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (hp->timer_fd < 0)
                return -errno;
        r = hp->loop_ops->add(hp->loop, hp->timer_fd, EPOLLIN, on_timer, hp);
        if (r < 0) {
                close(hp->timer_fd);
                hp->timer_fd = -1;
        }
        return r;
}

void hport_timer_arm(struct hport *hp, unsigned ms, bool repeat)
{
        struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
        struct itimerspec its = { .it_value = t };

        if (repeat)
                its.it_interval = t;
        if (hp->timer_fd >= 0 && timerfd_settime(hp->timer_fd, 0, &its, NULL) < 0)
                log_warn("%s: cannot arm a timer: %s", hp->label, strerror(errno));
}

static void timer_free(struct hport *hp)
{
        if (hp->timer_fd < 0)
                return;
        hp->loop_ops->del(hp->loop, hp->timer_fd);
        close(hp->timer_fd);
        hp->timer_fd = -1;
}

static void on_out(void *opaque, int fd, uint32_t events)
{
        (void)fd;
        (void)events;
        flush_out(opaque);
}

/* The peer hung up while we were not reading: gone now, unless its last
 * bytes still wait for the guest. */
static void paused_hangup(struct hport *hp)
{
        int pending = 0;

        if (ioctl(hp->in_fd, FIONREAD, &pending) == 0 && pending > 0) {
                hp->hup_seen = true;
                update_watches(hp);
                return;
        }
        peer_gone(hp, "closed while the guest was not reading");
}

static void on_in(void *opaque, int fd, uint32_t events)
{
        struct hport *hp = opaque;
        uint32_t hup = EPOLLHUP | EPOLLRDHUP | EPOLLERR;

        (void)fd;
        /* A client that shut down its sending side is done: nothing more
         * goes to it; what it sent is still read, then it is closed. */
        if ((events & (EPOLLRDHUP | EPOLLHUP)) && hp->in_fd == hp->out_fd)
                hp->peer_eof = true;
        if ((events & EPOLLOUT) || ((events & (EPOLLERR | EPOLLHUP)) && hp->buf.len))
                flush_out(hp);
        if (hp->in_fd < 0)
                return;
        if (!hp->in_paused && (events & (EPOLLIN | hup)))
                pump_in(hp);
        else if (hp->in_paused && (events & hup))
                paused_hangup(hp);
}

/* Guest output for the one peer (or none) of hp->in_fd/out_fd. */
static size_t peer_have_data(struct hport *hp, const struct iovec *iov, unsigned cnt,
                             size_t total)
{
        size_t sent = 0, done, kept = hp->buf.len;

        if (hp->out_gone || hport_memory_lost(hp, false)) {
                hp->cnt.output_discarded += total;
                return total;
        }
        /* on-connect=discard: the next peer starts clean, nobody waits. */
        if (hp->out_fd < 0 && hp->spec.on_connect == ON_CONNECT_DISCARD) {
                hp->cnt.output_discarded += total;
                hp->discard_pending += total;
                return total;
        }
        /* Straight from guest memory when nothing is queued before it. */
        if (hp->out_fd >= 0 && !hp->peer_eof && hp->buf.len == 0) {
                ssize_t n = writev(hp->out_fd, iov, cnt);

                if (n > 0) {
                        sent = n;
                } else if (n < 0 && errno == EFAULT && hport_memory_lost(hp, true)) {
                        hp->cnt.output_discarded += total;
                        return total;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        log_debug("%s: write: %s", hp->label, strerror(errno));
                }
        }
        done = sent;
        if (done < total)
                done += outbuf_put(&hp->buf, iov, cnt, done);
        /*
         * The copy met pages the VMM truncated: the guard made them zeros,
         * so what this call buffered is no guest output. What writev()
         * sent before that is.
         */
        if (done > sent && hport_memory_lost(hp, false)) {
                outbuf_trim(&hp->buf, kept);
                hp->cnt.output_discarded += total - sent;
                return total;
        }
        /* A file is never polled for room: what it refused is written again
         * now, and an error arms the backend's retry (a full disk). */
        if (hp->out_unpollable && hp->buf.len && !hp->peer_eof)
                flush_out(hp);
        else
                update_watches(hp);
        return done;
}

static ssize_t have_data(struct vs_port *port, const struct iovec *iov,
                         unsigned cnt)
{
        struct hport *hp = vs_port_opaque(port);
        size_t total = 0, done;

        for (unsigned i = 0; i < cnt; i++)
                total += iov[i].iov_len;
        /* A listening port's clients each get all of it (clients.c). */
        if (hp->clients && !hport_memory_lost(hp, false))
                done = clients_have_data(hp->clients, iov, cnt, total);
        else
                done = peer_have_data(hp, iov, cnt, total);
        /* What the device consumed, whatever the backend did with it:
         * history, logfile= (tap.h); not what truncated memory read as. */
        if (!hport_memory_lost(hp, false))
                tap_output(hp, iov, cnt, done, total);
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

        if (hp->clients) {
                clients_guest_ready(hp->clients);
                return;
        }
        if (hp->in_fd < 0 || !hp->in_paused)
                return;
        hp->in_paused = false;
        update_watches(hp);
        pump_in(hp);
}

const struct vs_port_ops hport_port_ops = {
        .set_guest_connected = set_guest_connected,
        .guest_ready = guest_ready,
        .have_data = have_data,
};

/* ---- attach / detach ---------------------------------------------------- */

static void probe_fn(void *opaque, int fd, uint32_t events)
{
        (void)opaque;
        (void)fd;
        (void)events;
}

/* epoll refuses regular files and /dev/null: those are used without it. */
static bool pollable(struct hport *hp, int fd)
{
        if (fd < 0 || hp->loop_ops->add(hp->loop, fd, 0, probe_fn, NULL) < 0)
                return false;
        hp->loop_ops->del(hp->loop, fd);
        return true;
}

int hport_announce(struct hport *hp, bool connected)
{
        return hp->port ? vs_port_set_host_connected(hp->port, connected) : 0;
}

/* The peer's fds are in place and the device has the port: go. */
static void attach_start(struct hport *hp)
{
        hp->announced = true;
        hp->cnt.host_connects++;
        emit(hp, HPORT_HOST_CONNECT);
        update_watches(hp);
        flush_out(hp);
        if (hp->in_unpollable)
                pump_in(hp);
}

/* Buffered guest output is dropped, counted; the guest may write again. */
static void drop_buffered(struct hport *hp)
{
        hp->cnt.output_discarded += hp->buf.len;
        free(hp->buf.data);
        hp->buf.data = NULL;
        hp->buf.head = hp->buf.len = 0;
        if (hp->port)
                vs_port_throttle(hp->port, false);
}

/* on-connect=discard: what the last peer left, and what came while none
 * was there, is gone; the new peer hears of none of it. */
static void discard_for_new_peer(struct hport *hp)
{
        if (hp->spec.on_connect != ON_CONNECT_DISCARD)
                return;
        hp->discard_pending += hp->buf.len;
        drop_buffered(hp);
        hport_report_discard(hp);
}

void hport_report_discard(struct hport *hp)
{
        if (!hp->discard_pending)
                return;
        log_info("%s: %llu bytes of guest output discarded for the new host client "
                 "(on-connect=discard)", hp->label, (unsigned long long)hp->discard_pending);
        hp->ev.bytes = hp->discard_pending;
        hp->discard_pending = 0;
        emit(hp, HPORT_OUTPUT_DISCARDED);
}

int hport_attach(struct hport *hp, int in_fd, int out_fd)
{
        /* Before the port is added (start()) this waits for hport_new. */
        int r = hport_announce(hp, true);

        if (r < 0)
                return r;
        discard_for_new_peer(hp);
        hp->in_fd = in_fd;
        hp->out_fd = out_fd;
        hp->in_events = hp->out_events = 0;
        hp->in_paused = false;
        hp->hup_seen = false;
        hp->peer_eof = false;
        hp->in_want = HPORT_IN_MIN;
        hp->in_unpollable = in_fd >= 0 && !pollable(hp, in_fd);
        hp->out_unpollable = out_fd >= 0 && out_fd != in_fd && !pollable(hp, out_fd);
        if (hp->port)
                attach_start(hp);
        return 0;
}

void hport_detach(struct hport *hp)
{
        if (!hport_connected(hp))
                return;
        unwatch_all(hp);
        hp->in_fd = hp->out_fd = -1;
        hp->in_events = hp->out_events = 0;
        /* Refused only while the guest takes no control messages: it then
         * believes the host side is still there until the next peer. */
        if (hport_announce(hp, false) < 0)
                log_debug("%s: the guest cannot be told the host side left: its control "
                          "queue is full", hp->label);
        if (hp->announced)
                emit(hp, HPORT_HOST_DISCONNECT);
        hp->announced = false;
}

void hport_close_peer(struct hport *hp)
{
        int in = hp->in_fd, out = hp->out_fd;

        hport_detach(hp);
        if (in >= 0)
                close(in);
        if (out >= 0 && out != in)
                close(out);
}

void hport_set_size(struct hport *hp, uint16_t cols, uint16_t rows)
{
        /* Refused (a full control queue): not remembered, so the next look
         * at the terminal tries again. */
        if (hp->port && vs_port_resize(hp->port, cols, rows) < 0)
                return;
        hp->cols = cols;
        hp->rows = rows;
}

/* Made from backends.h, as the kinds are: every kind has its ops. */
static const struct backend_ops *const backend_table[BACKEND_COUNT] = {
#define X(kind, name, ops) [kind] = &ops,
        BACKENDS(X)
#undef X
};

/* The id the device will give: the spec's, else the lowest free one (a
 * console's is 0 if free), as vs_port_add() picks; an unplugged port keeps
 * its id. */
static int pick_id(struct vs_device *dev, struct hport_env *env,
                   const struct port_spec *spec, uint32_t *ret)
{
        if (spec->id >= 0) {
                *ret = spec->id;
                return 0;
        }
        for (uint32_t id = spec->console ? 0 : 1; id < vs_device_max_ports(dev); id++) {
                if (!vs_port_find(dev, id) && !hport_find_id(env, id)) {
                        *ret = id;
                        return 0;
                }
        }
        return -ENOSPC;
}

/* What backend.c itself holds; after the backend's stop(). */
static void hport_release_own(struct hport *hp)
{
        /* A refused add leaves no log file it created behind. */
        if (hp->rolling_back)
                tap_discard(hp->tap);
        else
                tap_free(hp->tap);
        timer_free(hp);
        if (hp->poke_fd >= 0) {
                hp->loop_ops->del(hp->loop, hp->poke_fd);
                close(hp->poke_fd);
        }
        free(hp->buf.data);
        free(hp);
}

static void hport_release(struct hport *hp)
{
        if (hp->client_fd >= 0)
                end_client(hp);
        hp->ops->stop(hp);
        hport_release_own(hp);
}

/*
 * The backend starts first, with no port in the device (a peer it connects
 * waits in hport_attach), so that the device's refusal, the one failure
 * that cannot be checked beforehand, is the last step and undoes cleanly.
 */
/* A host port for @spec with its id, its backend not started yet. */
static int hport_alloc(struct vs_device *dev, const struct port_spec *spec,
                       struct hport_env *env, struct hport **ret)
{
        struct hport *hp;
        int r;

        if (spec->backend <= BACKEND_NONE || spec->backend >= BACKEND_COUNT)
                return -EINVAL;         /* spec_parse() gives every port one */
        hp = calloc(1, sizeof(*hp));
        if (!hp)
                return -ENOMEM;
        r = pick_id(dev, env, spec, &hp->id);
        if (r < 0) {
                free(hp);
                return r;
        }
        hp->spec = *spec;
        hp->ops = backend_table[spec->backend];
        hp->env = env;
        hp->dev = dev;
        hp->loop_ops = env->loop_ops;
        hp->loop = env->loop;
        hp->in_fd = hp->out_fd = hp->poke_fd = hp->timer_fd = hp->client_fd = -1;
        hp->buf.cap = spec->buffer ? spec->buffer : HPORT_BUFFER_DEFAULT;
        snprintf(hp->label, sizeof(hp->label), "port %u (%s)", hp->id,
                 spec->name[0] ? spec->name : spec->console ? "console" : "unnamed");
        *ret = hp;
        return 0;
}

/* The device has the port now: it hears what the backend found (a
 * terminal's size, a peer), and the port is one of the env's. */
static void hport_added(struct hport *hp)
{
        /* A new port is not the guest's yet: nothing here is refused. */
        if (hp->spec.console && hp->cols && hp->rows)
                vs_port_resize(hp->port, hp->cols, hp->rows);
        if (hport_connected(hp)) {
                vs_port_set_host_connected(hp->port, true);
                attach_start(hp);
        }
        hp->env->nports++;
        hp->env->by_id[hp->id] = hp;
}

int hport_new(struct vs_device *dev, const struct port_spec *spec,
              struct hport_env *env, struct hport **ret)
{
        struct vs_port_config pc = { .name = spec->name, .console = spec->console };
        struct hport *hp;
        int r = hport_alloc(dev, spec, env, &hp);

        if (r < 0)
                return r;
        r = tap_new(hp, &hp->tap);
        if (r == 0)
                r = hp->ops->start(hp);
        if (r < 0) {
                /* start() undid its own part; a timer it made is ours. */
                hp->rolling_back = true;
                hport_release_own(hp);
                return r;
        }
        pc.id = hp->id;
        r = vs_port_add(dev, &pc, &hport_port_ops, hp, &hp->port);
        if (r < 0) {
                hp->port = NULL;
                hp->rolling_back = true;
                hport_release(hp);
                return r == -ENOSPC ? -EAGAIN : r;
        }
        hport_added(hp);
        *ret = hp;
        return 0;
}

/* An unplugged port is not in the device: only its host side goes. */
int hport_remove(struct hport *hp)
{
        int r = vs_port_remove(hp->port);

        if (r < 0)
                return r;
        hport_free(hp);
        return 0;
}

void hport_free(struct hport *hp)
{
        if (!hp)
                return;
        hp->port = NULL;
        hp->env->nports--;
        hp->env->by_id[hp->id] = NULL;
        hport_release(hp);
}

struct hport *hport_find_id(struct hport_env *env, uint32_t id)
{
        return id < VS_MAX_PORTS ? env->by_id[id] : NULL;
}

struct hport *hport_next(struct hport_env *env, struct hport *prev)
{
        for (uint32_t id = prev ? prev->id + 1 : 0; id < VS_MAX_PORTS; id++)
                if (env->by_id[id])
                        return env->by_id[id];
        return NULL;
}

struct hport *hport_find_name(struct hport_env *env, const char *name)
{
        for (struct hport *hp = hport_next(env, NULL); hp; hp = hport_next(env, hp))
                if (*name && strcmp(hp->spec.name, name) == 0)
                        return hp;
        return NULL;
}

bool hport_plugged(const struct hport *hp)
{
        return hp->port != NULL;
}

void hport_get_stats(const struct hport *hp, struct vs_port_stats *ret)
{
        struct vs_port_stats now = { 0 };

        if (hp->port)
                vs_port_get_stats(hp->port, &now);
        ret->to_guest = hp->stats_base.to_guest + now.to_guest;
        ret->from_guest = hp->stats_base.from_guest + now.from_guest;
}

void hport_drop_output(struct hport *hp)
{
        if (hp->out_fd < 0 || hp->out_fd == hp->in_fd)
                return;         /* a socket: its error ends the peer instead */
        watch_fd(hp, hp->out_fd, &hp->out_events, 0, on_out);
        hp->out_fd = -1;
        hp->out_gone = true;
        drop_buffered(hp);
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

/* ---- a peer handed over by the control socket --------------------------- */

int hport_attach_client(struct hport *hp, int fd, enum client_mode mode)
{
        int r;

        if (hp->clients)
                return clients_add(hp->clients, fd, mode, true);
        if (hport_connected(hp))
                return -EBUSY;
        r = hport_attach(hp, fd, fd);
        if (r == 0)
                hp->client_fd = fd;
        return r;
}
