/* SPDX-License-Identifier: MIT */
/*
 * The host clients of a listening port: see clients.h.
 *
 * A client is freed only where nothing uses it afterwards: in its own
 * callback as the last step, or by code that then stops looking at it (the
 * slow-reader drop rescans the list after each drop). Unthrottling the port
 * can make the device offer more output at once (have_data, which may drop
 * a slow reader), so it is the last thing a callback does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clients.h"

/* iovecs of one direct write (the device offers at most this many). */
#define WRITE_IOV_MAX 1024u

struct hclient {
        struct hclients *cs;
        struct hclient *next;           /* in arrival order */
        int fd;
        unsigned id;                    /* its number on the port, from 1 */
        uint64_t pos;                   /* the stream offset of its next byte */
        uint32_t watched;
        bool read_only;                 /* joined read-only: never the writer */
        bool eof;                       /* shut its sending side: gets no more */
        bool hup_seen;                  /* the writer left with input unread */
        bool broken;                    /* cannot be watched: to be ended */
        bool control;                   /* came through the control socket */
};

struct hclients {
        struct hport *hp;
        void (*room)(struct hport *hp);
        unsigned max, n, next_id;
        bool full;                      /* as last told to room() */
        struct hclient *first;
        struct hclient *writer;
        /*
         * Guest output not yet written to every client: stream offsets
         * [tail, head), byte o at data[(o - base) % cap]. base moves to head
         * whenever the ring is empty, so a short backlog touches the first
         * pages only.
         */
        uint8_t *data;
        size_t cap;
        uint64_t base, tail, head;
        bool in_paused;                 /* the guest cannot take input now */
        size_t in_want;
};

static struct iovec scratch[WRITE_IOV_MAX];

unsigned clients_count(const struct hclients *cs)
{
        return cs->n;
}

unsigned clients_max(const struct hclients *cs)
{
        return cs->max;
}

bool clients_full(const struct hclients *cs)
{
        return cs->n >= cs->max;
}

unsigned clients_writer(const struct hclients *cs)
{
        return cs->writer ? cs->writer->id : 0;
}

size_t clients_buffered(const struct hclients *cs)
{
        return cs->head - cs->tail;
}

/* ---- the ring ------------------------------------------------------------ */

static size_t ring_room(const struct hclients *cs)
{
        return cs->cap - (cs->head - cs->tail);
}

/* Empty: start over at the first byte. */
static void ring_trim(struct hclients *cs)
{
        if (cs->tail == cs->head)
                cs->base = cs->head;
}

/* With no client and nothing held, hold no memory (idle ports are many). */
static void ring_release(struct hclients *cs)
{
        if (cs->n == 0 && cs->tail == cs->head) {
                free(cs->data);
                cs->data = NULL;
        }
}

static bool ring_alloc(struct hclients *cs)
{
        if (!cs->data)
                cs->data = malloc(cs->cap);
        return cs->data != NULL;
}

/* The iovecs of bytes [skip, skip + len) of @iov, in @out; their count. */
static unsigned iov_slice(const struct iovec *iov, unsigned cnt, size_t skip, size_t len,
                          struct iovec *out, unsigned max)
{
        unsigned k = 0;

        for (unsigned i = 0; i < cnt && len > 0 && k < max; i++) {
                size_t n = iov[i].iov_len;

                if (skip >= n) {
                        skip -= n;
                        continue;
                }
                n -= skip;
                if (n > len)
                        n = len;
                out[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
                out[k++].iov_len = n;
                len -= n;
                skip = 0;
        }
        return k;
}

/* Append bytes [skip, skip + len) of @iov at head (room and memory are there). */
/* False (and nothing kept) if the copy read guest memory the VMM
 * truncated: zeros, which are no guest output. */
static bool ring_put(struct hclients *cs, const struct iovec *iov, unsigned cnt,
                     size_t skip, size_t len)
{
        unsigned k = iov_slice(iov, cnt, skip, len, scratch, WRITE_IOV_MAX);
        uint64_t head = cs->head;

        for (unsigned i = 0; i < k; i++) {
                const uint8_t *src = scratch[i].iov_base;
                size_t n = scratch[i].iov_len;

                while (n > 0) {
                        size_t at = (cs->head - cs->base) % cs->cap;
                        size_t chunk = cs->cap - at < n ? cs->cap - at : n;

                        memcpy(cs->data + at, src, chunk);
                        cs->head += chunk;
                        src += chunk;
                        n -= chunk;
                }
        }
        if (k && hport_memory_lost(cs->hp, false)) {
                cs->head = head;
                return false;
        }
        return true;
}

/* The oldest byte a client still needs is the tail. */
static void update_tail(struct hclients *cs)
{
        uint64_t min = cs->head;

        /* With no client, what the last one left waits (replay). */
        if (cs->n > 0) {
                for (struct hclient *c = cs->first; c; c = c->next)
                        if (c->pos < min)
                                min = c->pos;
                cs->tail = min;
        }
        ring_trim(cs);
}

/* on-connect=discard: nobody is connected, so nobody gets what is held. */
static void discard_held(struct hclients *cs)
{
        struct hport *hp = cs->hp;
        uint64_t n = cs->head - cs->tail;

        hp->cnt.output_discarded += n;
        hp->discard_pending += n;
        cs->tail = cs->head;
        ring_trim(cs);
}

/* A full ring may be made room in by dropping a reader a buffer behind:
 * one other than the writer is at the tail. */
static bool may_drop(const struct hclients *cs)
{
        return cs->n > 1 && !(cs->writer && cs->writer->pos == cs->tail);
}

/*
 * Let the device offer output again if the ring has room, or can be made
 * room in (have_data() then drops the reader behind): the last step of a
 * callback (see the top of this file).
 */
static void settle(struct hclients *cs)
{
        update_tail(cs);
        if (cs->hp->port && (ring_room(cs) > 0 || may_drop(cs)))
                vs_port_throttle(cs->hp->port, false);
}

/* ---- one client ---------------------------------------------------------- */

static void on_client(void *opaque, int fd, uint32_t events);

static uint32_t client_want(const struct hclient *c)
{
        const struct hclients *cs = c->cs;
        uint32_t w = 0;

        if (c != cs->writer)
                w = EPOLLIN | EPOLLRDHUP;       /* read and dropped */
        else if (!cs->in_paused)
                w = EPOLLIN | EPOLLRDHUP;
        else if (!c->hup_seen)
                w = EPOLLRDHUP;                 /* a hang-up is still noticed */
        if (c->pos < cs->head && !c->eof)
                w |= EPOLLOUT;
        return w;
}

/* Watch what @c needs; a watch that fails ends nothing here (the caller
 * sees c->broken). */
static void client_watch(struct hclient *c)
{
        struct hport *hp = c->cs->hp;
        uint32_t want = client_want(c);
        int r = 0;

        if (want == c->watched)
                return;
        if (c->watched == 0)
                r = hp->loop_ops->add(hp->loop, c->fd, want, on_client, c);
        else if (want == 0)
                r = hp->loop_ops->del(hp->loop, c->fd);
        else
                r = hp->loop_ops->mod(hp->loop, c->fd, want);
        if (r < 0) {
                log_warn("%s: cannot watch host client %u: %s", hp->label, c->id, strerror(-r));
                c->broken = true;
                return;
        }
        c->watched = want;
}

static void tell_room(struct hclients *cs)
{
        if (cs->full == clients_full(cs))
                return;
        cs->full = clients_full(cs);
        cs->room(cs->hp);
}

/* The longest-connected client that did not join read-only. */
static void pick_writer(struct hclients *cs)
{
        struct hclient *c;

        for (c = cs->first; c && c->read_only; c = c->next)
                ;
        cs->writer = c;
        if (!c)
                return;
        c->hup_seen = false;
        log_info("%s: host client %u is the writer now", cs->hp->label, c->id);
        client_watch(c);
}

/* Close @c and forget it; callers do not touch it afterwards. */
static void client_end(struct hclient *c, const char *why)
{
        struct hclients *cs = c->cs;
        struct hport *hp = cs->hp;
        struct hclient **link;

        for (link = &cs->first; *link != c; link = &(*link)->next)
                ;
        *link = c->next;
        cs->n--;
        if (c->watched)
                hp->loop_ops->del(hp->loop, c->fd);
        close(c->fd);
        log_info("%s: host client %u disconnected (%s)", hp->label, c->id, why);
        if (cs->writer == c)
                pick_writer(cs);
        if (cs->n == 0) {
                /* What it did not get waits for the next client (replay). */
                cs->tail = c->pos < cs->tail ? cs->tail : c->pos;
                if (hp->spec.on_connect == ON_CONNECT_DISCARD)
                        discard_held(cs);
                if (hport_announce(hp, false) < 0)
                        log_debug("%s: the guest cannot be told the host side left: its "
                                  "control queue is full", hp->label);
        }
        update_tail(cs);
        ring_release(cs);
        hp->ev.client = c->id;
        free(c);
        hport_emit(hp, HPORT_HOST_DISCONNECT);
        tell_room(cs);
}

/*
 * Its reading side is gone (EPIPE, a reset): nothing more goes to it, but
 * what it sent before it closed is still read (a client may send and close
 * before it is even served), and its end of file ends it.
 */
static void client_write_failed(struct hclient *c, int err)
{
        log_debug("%s: host client %u: write: %s", c->cs->hp->label, c->id, strerror(err));
        c->eof = true;
}

/* Write what @c has not had. */
static void client_flush(struct hclient *c)
{
        struct hclients *cs = c->cs;

        while (c->pos < cs->head && !c->eof) {
                size_t at = (c->pos - cs->base) % cs->cap, len = cs->head - c->pos;
                size_t first = cs->cap - at < len ? cs->cap - at : len;
                struct iovec iov[2] = { { cs->data + at, first }, { cs->data, len - first } };
                ssize_t n = writev(c->fd, iov, iov[1].iov_len ? 2 : 1);

                if (n > 0)
                        c->pos += n;
                else if (n < 0 && errno == EINTR)
                        continue;
                else if (n < 0 && errno == EAGAIN)
                        break;
                else
                        client_write_failed(c, n < 0 ? errno : EIO);
        }
}

/* The writer's input into the guest, as backend.c's pump_in(). False if it
 * ended. */
static bool writer_pump(struct hclient *c)
{
        struct hclients *cs = c->cs;
        struct hport *hp = cs->hp;

        for (int i = 0; i < HPORT_IN_BUDGET && !cs->in_paused; i++) {
                enum hport_recv r;
                int err = 0;

                if (!hp->port || hport_memory_lost(hp, false)) {
                        /* Unplugged, or guest memory lost: it waits in the
                         * socket for the next plug or guest. */
                        cs->in_paused = true;
                        break;
                }
                r = hport_recv(hp, c->fd, &cs->in_want, &err);
                if (r == HPORT_RECV_MORE)
                        continue;
                if (r == HPORT_RECV_DRAINED)
                        break;
                if (r == HPORT_RECV_FULL) {
                        cs->in_paused = true;   /* guest_ready() resumes */
                        break;
                }
                client_end(c, err == 0 ? "end of input" : strerror(err));
                return false;
        }
        return true;
}

/* The paused writer hung up: it stays until its last bytes reach the
 * guest, if it left any. False if it ended. */
static bool writer_hangup(struct hclient *c)
{
        int pending = 0;

        if (ioctl(c->fd, FIONREAD, &pending) == 0 && pending > 0) {
                c->hup_seen = true;
                return true;
        }
        client_end(c, "closed while the guest was not reading");
        return false;
}

/* What a reader sends is read and dropped. False if it ended. */
static bool reader_drain(struct hclient *c)
{
        static uint8_t junk[64 * 1024];
        struct hport *hp = c->cs->hp;

        for (int i = 0; i < HPORT_IN_BUDGET; i++) {
                ssize_t n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT);

                if (n > 0) {
                        hp->cnt.input_discarded += n;
                        continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                /* A reader that is done sending is done. */
                client_end(c, n == 0 ? "end of input" : strerror(errno));
                return false;
        }
        return true;
}

static void on_client(void *opaque, int fd, uint32_t events)
{
        struct hclient *c = opaque;
        struct hclients *cs = c->cs;
        uint32_t hup = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

        (void)fd;
        /* Shut its sending side: nothing more goes to it; what it sent is
         * still taken, then it is closed. */
        if (events & hup)
                c->eof = true;
        if (events & (EPOLLOUT | EPOLLERR))
                client_flush(c);
        if (c != cs->writer) {
                if ((events & (EPOLLIN | hup)) && !reader_drain(c)) {
                        settle(cs);
                        return;
                }
        } else if (!cs->in_paused) {
                if ((events & (EPOLLIN | hup)) && !writer_pump(c)) {
                        settle(cs);
                        return;
                }
        } else if ((events & hup) && !writer_hangup(c)) {
                settle(cs);
                return;
        }
        client_watch(c);
        if (c->broken)
                client_end(c, "cannot watch it");
        settle(cs);
}

/* ---- the set ------------------------------------------------------------- */

int clients_new(struct hport *hp, void (*room)(struct hport *hp), struct hclients **ret)
{
        struct hclients *cs = calloc(1, sizeof(*cs));

        if (!cs)
                return -ENOMEM;
        cs->hp = hp;
        cs->room = room;
        cs->max = hp->spec.clients ? hp->spec.clients : 1;
        cs->cap = hp->spec.buffer ? hp->spec.buffer : HPORT_BUFFER_DEFAULT;
        cs->in_want = HPORT_IN_MIN;
        *ret = cs;
        return 0;
}

void clients_free(struct hclients *cs)
{
        struct hport *hp;

        if (!cs)
                return;
        hp = cs->hp;
        while (cs->first) {
                struct hclient *c = cs->first;

                cs->first = c->next;
                if (c->watched)
                        hp->loop_ops->del(hp->loop, c->fd);
                close(c->fd);
                hp->ev.client = c->id;
                free(c);
                hport_emit(hp, HPORT_HOST_DISCONNECT);
        }
        free(cs->data);
        free(cs);
}

/* on-connect=discard, for a first client: say what it did not get. */
static void report_discard(struct hclients *cs)
{
        struct hport *hp = cs->hp;

        if (hp->spec.on_connect != ON_CONNECT_DISCARD)
                return;
        discard_held(cs);
        hport_report_discard(hp);
}

/* The writer role, as @mode asks. */
static void take_role(struct hclients *cs, struct hclient *c, enum client_mode mode)
{
        struct hclient *old = cs->writer;

        c->read_only = mode == CLIENT_READ_ONLY;
        if (mode == CLIENT_WRITE && old) {
                /* What the old writer sends from now on is dropped. */
                log_info("%s: host client %u takes the writer role from client %u",
                         cs->hp->label, c->id, old->id);
                cs->writer = c;
                old->hup_seen = false;
                client_watch(old);
        } else if (mode != CLIENT_READ_ONLY && !old) {
                cs->writer = c;
        }
}

static const char *role_name(const struct hclients *cs, const struct hclient *c)
{
        if (c == cs->writer)
                return "the writer";
        return c->read_only ? "read-only" : "a reader";
}

int clients_add(struct hclients *cs, int fd, enum client_mode mode, bool control)
{
        struct hport *hp = cs->hp;
        struct hclient *c, **link;

        if (clients_full(cs))
                return -EBUSY;
        if (cs->n == 0 && hport_announce(hp, true) < 0) {
                hp->cnt.clients_refused++;
                log_warn("%s: a host client was closed unserved: the guest cannot be told of "
                         "it (its control queue is full)", hp->label);
                hport_emit(hp, HPORT_CLIENT_REFUSED);
                return -ENOSPC;
        }
        c = calloc(1, sizeof(*c));
        if (!c || !ring_alloc(cs)) {
                free(c);
                ring_release(cs);
                if (cs->n == 0)
                        hport_announce(hp, false);
                return -ENOMEM;
        }
        c->cs = cs;
        c->fd = fd;
        c->id = ++cs->next_id;
        c->control = control;
        if (cs->n == 0) {
                report_discard(cs);
                c->pos = cs->tail;      /* replay: what no client has had */
                cs->in_want = HPORT_IN_MIN;
        } else {
                c->pos = cs->head;      /* from its connect on */
        }
        for (link = &cs->first; *link; link = &(*link)->next)
                ;
        *link = c;
        cs->n++;
        hp->cnt.host_connects++;
        take_role(cs, c, mode);
        log_info("%s: host client %u connected%s, %s (%u of %u)", hp->label, c->id,
                 control ? " through the control socket" : "", role_name(cs, c), cs->n, cs->max);
        hp->ev.client = c->id;
        hport_emit(hp, HPORT_HOST_CONNECT);
        tell_room(cs);
        client_watch(c);
        client_flush(c);
        client_watch(c);
        if (c->broken)
                client_end(c, "cannot watch it");
        settle(cs);
        return 0;
}

void clients_guest_ready(struct hclients *cs)
{
        struct hclient *w = cs->writer;

        if (!cs->in_paused)
                return;
        cs->in_paused = false;
        if (!w)
                return;
        w->hup_seen = false;
        client_watch(w);
        if (w->broken)
                client_end(w, "cannot watch it");
        else if (writer_pump(w))
                client_watch(w);
}

/* ---- guest output -------------------------------------------------------- */

/*
 * The ring is full: disconnect the readers (any client but the writer) a
 * whole buffer behind, never the writer or the last client.
 */
static void drop_behind(struct hclients *cs)
{
        struct hport *hp = cs->hp;

        while (ring_room(cs) == 0 && may_drop(cs)) {
                struct hclient *c;

                /* Not the writer: it is not (among) the furthest behind. */
                for (c = cs->first; c && c->pos != cs->tail; c = c->next)
                        ;
                if (!c)
                        return;
                hp->cnt.clients_dropped++;
                log_warn("%s: host client %u disconnected: it is a whole buffer (%zu bytes) "
                         "behind the guest's output", hp->label, c->id, cs->cap);
                hp->ev.client = c->id;
                hport_emit(hp, HPORT_CLIENT_DROPPED);
                client_end(c, "too slow a reader");
        }
}

/* Write bytes [skip, skip + len) of @iov to @c, which has everything before
 * them. Bytes written. */
static size_t write_direct(struct hclient *c, const struct iovec *iov, unsigned cnt,
                           size_t skip, size_t len)
{
        unsigned k = iov_slice(iov, cnt, skip, len, scratch, WRITE_IOV_MAX);
        ssize_t n;

        do {
                n = writev(c->fd, scratch, k);
        } while (n < 0 && errno == EINTR);
        if (n >= 0)
                return n;
        /* Guest memory gone: the VMM connection goes, not the client. */
        if (errno == EFAULT && hport_memory_lost(c->cs->hp, true))
                return 0;
        if (errno != EAGAIN)
                client_write_failed(c, errno);
        return 0;
}

/*
 * Bytes [skip, skip + len) of @iov, which the ring has room for: written to
 * every client that has all the output so far, straight from guest memory;
 * the ring keeps what the one that took least did not take (all of it
 * while some client is behind).
 */
static bool take_chunk(struct hclients *cs, const struct iovec *iov, unsigned cnt,
                       size_t skip, size_t len)
{
        size_t least = len;

        for (struct hclient *c = cs->first; c; c = c->next) {
                size_t n;

                if (c->eof || c->broken || c->pos < cs->head) {
                        least = 0;
                        continue;
                }
                n = write_direct(c, iov, cnt, skip, len);
                c->pos = cs->head + n;
                least = n < least ? n : least;
        }
        /* Every client has the first @least bytes: the ring was empty. */
        if (least) {
                cs->head += least;
                cs->tail = cs->base = cs->head;
        }
        return ring_put(cs, iov, cnt, skip + least, len - least);
}

/*
 * Guest output is taken as far as the ring can keep what some client has
 * not had, so no client ever gets a byte twice: the device offers again
 * what was not taken. Taking less throttles the port; the ring then holds
 * output for a client behind, whose progress unthrottles it (settle()).
 */
size_t clients_have_data(struct hclients *cs, const struct iovec *iov, unsigned cnt,
                         size_t total)
{
        struct hport *hp = cs->hp;
        size_t done = 0;
        struct hclient *c;

        if (cs->n == 0) {
                if (hp->spec.on_connect == ON_CONNECT_DISCARD) {
                        hp->cnt.output_discarded += total;
                        hp->discard_pending += total;
                        return total;
                }
                done = ring_room(cs) < total ? ring_room(cs) : total;
                if (done && !ring_alloc(cs))
                        return 0;
                if (!ring_put(cs, iov, cnt, 0, done)) {
                        hp->cnt.output_discarded += total;
                        return total;
                }
                return done;
        }
        while (done < total) {
                size_t len;

                /* Full: a reader a whole buffer behind goes, if one is. */
                if (ring_room(cs) == 0)
                        drop_behind(cs);
                if (ring_room(cs) == 0)
                        break;
                len = ring_room(cs) < total - done ? ring_room(cs) : total - done;

                if (!take_chunk(cs, iov, cnt, done, len)) {
                        /* Truncated guest memory: the rest is dropped,
                         * never passed on. */
                        hp->cnt.output_discarded += total - done;
                        done = total;
                        break;
                }
                done += len;
        }
        for (c = cs->first; c;) {
                client_watch(c);
                if (c->broken) {
                        client_end(c, "cannot watch it");
                        c = cs->first;  /* the list changed: again */
                        continue;
                }
                c = c->next;
        }
        update_tail(cs);
        return done;
}
