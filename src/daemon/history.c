/* SPDX-License-Identifier: MIT */
/* A port's recent output and its readers: see history.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "history.h"
#include "log.h"

#define SEND_IOV_MAX 64

struct reader {
        struct history *h;
        struct reader *next;
        int fd;
        uint64_t pos;           /* the next byte it is sent */
        uint64_t end;           /* it is done there; UINT64_MAX: follows */
        bool added;             /* on the loop */
        uint32_t watched;
};

struct history {
        uint8_t *data;          /* size bytes, allocated on the first output */
        size_t size;
        uint64_t total;         /* bytes of output ever put */
        const struct vs_loop_ops *ops;
        void *loop;
        const char *label;
        struct reader *readers;
        unsigned nreaders;
};

int history_new(size_t size, const struct vs_loop_ops *ops, void *loop, const char *label,
                struct history **ret)
{
        struct history *h;

        if (size == 0)
                return -EINVAL;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->size = size;
        h->ops = ops;
        h->loop = loop;
        h->label = label;
        *ret = h;
        return 0;
}

size_t history_size(const struct history *h)
{
        return h->size;
}

size_t history_len(const struct history *h)
{
        return h->total < h->size ? (size_t)h->total : h->size;
}

unsigned history_readers(const struct history *h)
{
        return h->nreaders;
}

/* The oldest position still held. */
static uint64_t oldest(const struct history *h)
{
        return h->total - history_len(h);
}

/* ---- readers ---------------------------------------------------------- */

static void reader_free(struct reader *r)
{
        struct history *h = r->h;
        struct reader **pp = &h->readers;

        while (*pp != r)
                pp = &(*pp)->next;
        *pp = r->next;
        h->nreaders--;
        if (r->added)
                h->ops->del(h->loop, r->fd);
        close(r->fd);
        free(r);
}

static void on_reader(void *opaque, int fd, uint32_t events);

/*
 * Room is watched while bytes wait for the reader; the hang-up (its close)
 * always is, as epoll reports it whatever is asked for. Nothing else: an
 * idle follower costs no callback, and a client that shuts down only its
 * sending side after the request (socat, a script) is still sent what it
 * asked for.
 */
static int reader_watch(struct reader *r, bool pending)
{
        uint32_t want = pending ? EPOLLOUT : 0;
        struct history *h = r->h;
        int e;

        if (r->added && want == r->watched)
                return 0;
        e = r->added ? h->ops->mod(h->loop, r->fd, want) :
                       h->ops->add(h->loop, r->fd, want, on_reader, r);
        if (e == 0) {
                r->added = true;
                r->watched = want;
        }
        return e;
}

/* Up to two iovecs of the ring from @from to @to (held, to - from <= size). */
static unsigned ring_iov(const struct history *h, uint64_t from, uint64_t to,
                         struct iovec *iov)
{
        size_t at = from % h->size, n = to - from;
        size_t first = h->size - at < n ? h->size - at : n;

        iov[0] = (struct iovec){ h->data + at, first };
        iov[1] = (struct iovec){ h->data, n - first };
        return n - first ? 2 : 1;
}

/*
 * Send what the ring holds for @r. Returns 1 if it is done (freed), 0 if
 * it goes on, after setting its watch.
 */
static int reader_flush(struct reader *r)
{
        struct history *h = r->h;
        uint64_t to = r->end < h->total ? r->end : h->total;
        struct iovec iov[2];
        struct msghdr mh = { .msg_iov = iov };
        ssize_t n;

        if (r->pos < oldest(h)) {
                log_warn("%s: a history reader fell %llu bytes behind the history=%zu it "
                         "reads: disconnected", h->label,
                         (unsigned long long)(h->total - r->pos), h->size);
                reader_free(r);
                return 1;
        }
        while (r->pos < to) {
                mh.msg_iovlen = ring_iov(h, r->pos, to, iov);
                n = sendmsg(r->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        reader_free(r);
                        return 1;
                }
                r->pos += n;
        }
        if (r->pos == r->end) {
                reader_free(r);         /* all it asked for: the end tells it */
                return 1;
        }
        if (reader_watch(r, r->pos < h->total) < 0) {
                reader_free(r);
                return 1;
        }
        return 0;
}

static void on_reader(void *opaque, int fd, uint32_t events)
{
        struct reader *r = opaque;

        (void)fd;
        if (events & (EPOLLHUP | EPOLLERR)) {
                reader_free(r);
                return;
        }
        if (events & EPOLLOUT)
                reader_flush(r);
}

int history_serve(struct history *h, int fd, size_t bytes, bool follow)
{
        struct reader *r;
        int fl = fcntl(fd, F_GETFL);

        if (h->nreaders >= HISTORY_READERS_MAX || fl < 0 ||
            fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || !(r = calloc(1, sizeof(*r)))) {
                int e = h->nreaders >= HISTORY_READERS_MAX ? -EMFILE : fl < 0 ? -errno : -ENOMEM;

                close(fd);
                return e;
        }
        if (bytes > history_len(h))
                bytes = history_len(h);
        r->h = h;
        r->fd = fd;
        r->pos = h->total - bytes;
        r->end = follow ? UINT64_MAX : h->total;
        r->next = h->readers;
        h->readers = r;
        h->nreaders++;
        reader_flush(r);
        return 0;
}

/* ---- output ----------------------------------------------------------- */

/* A caught-up follower gets @n new bytes straight from @iov. */
static void send_direct(struct reader *r, const struct iovec *iov, unsigned cnt, size_t n)
{
        struct iovec v[SEND_IOV_MAX];
        struct msghdr mh = { .msg_iov = v };
        unsigned k = 0;
        size_t left = n;
        ssize_t sent;

        for (unsigned i = 0; i < cnt && k < SEND_IOV_MAX && left; i++) {
                size_t len = iov[i].iov_len < left ? iov[i].iov_len : left;

                if (!len)
                        continue;
                v[k++] = (struct iovec){ iov[i].iov_base, len };
                left -= len;
        }
        mh.msg_iovlen = k;
        do {
                sent = sendmsg(r->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (sent < 0 && errno == EINTR);
        /* An error shows again on the ring's flush, which ends it. */
        if (sent > 0)
                r->pos += sent;
}

/* Copy @len bytes from @src into the ring at its end. */
static void ring_append(struct history *h, const uint8_t *src, size_t len)
{
        while (len) {
                size_t at = h->total % h->size;
                size_t chunk = h->size - at < len ? h->size - at : len;

                memcpy(h->data + at, src, chunk);
                h->total += chunk;
                src += chunk;
                len -= chunk;
        }
}

/* The first @n bytes of @iov into the ring; of more than it holds, only
 * the last ones are copied (the others are counted, never stored). */
static void ring_put(struct history *h, const struct iovec *iov, unsigned cnt, size_t n)
{
        size_t skip = n > h->size ? n - h->size : 0;

        h->total += skip;
        n -= skip;
        for (unsigned i = 0; i < cnt && n; i++) {
                size_t len = iov[i].iov_len;

                if (skip >= len) {
                        skip -= len;
                        continue;
                }
                len -= skip;
                if (len > n)
                        len = n;
                ring_append(h, (const uint8_t *)iov[i].iov_base + skip, len);
                skip = 0;
                n -= len;
        }
}

void history_put(struct history *h, const struct iovec *iov, unsigned cnt, size_t n)
{
        struct reader *r, *next;

        if (n == 0)
                return;
        if (!h->data && !(h->data = malloc(h->size))) {
                /* Nothing kept: a reader would be sent a stream with a hole. */
                log_warn("%s: no memory for history=%zu: output not kept", h->label, h->size);
                while (h->readers)
                        reader_free(h->readers);
                return;
        }
        for (r = h->readers; r; r = r->next)
                if (r->end == UINT64_MAX && r->pos == h->total)
                        send_direct(r, iov, cnt, n);
        ring_put(h, iov, cnt, n);
        for (r = h->readers; r; r = next) {
                next = r->next;
                reader_flush(r);
        }
}

void history_free(struct history *h)
{
        if (!h)
                return;
        while (h->readers)
                reader_free(h->readers);
        free(h->data);
        free(h);
}
