/* SPDX-License-Identifier: MIT */
/*
 * backend=journal: each line of guest output becomes a journal entry, sent
 * with libsystemd's sd_journal_sendv(), with the fields
 *   MESSAGE=the line (without its newline and a trailing CR)
 *   PRIORITY=journal-priority= (default 6, info)
 *   SYSLOG_IDENTIFIER=the port's name ("console", "port N" if unnamed)
 *   VSERIAL_INSTANCE=--instance, VSERIAL_PORT=the id,
 *   VSERIAL_PORT_NAME=the name (when it has one).
 * Empty lines make no entry (as sd_journal_print()); a line longer than
 * JOURNAL_LINE_MAX is cut into several entries; a line without its newline
 * is sent once no more bytes came for JOURNAL_FLUSH_MS (a prompt).
 *
 * The port writes its output, as any backend's, to an fd: one end of a
 * socket pair, whose other end is read here. So backend.c's buffer and
 * backpressure apply unchanged: while journald does not take an entry the
 * line waits (retried after JOURNAL_RETRY_MIN_MS, backing off to
 * JOURNAL_RETRY_MAX_MS while nothing gets through), this end is not read,
 * and the guest is held back once the port's buffer is full, as with a
 * file on a full disk. Nothing runs while nothing comes.
 *
 * libsystemd sends on one datagram socket per process, made on its first
 * send, blocking, and it has no public call to make it non-blocking: with
 * journald stuck, a send would stop the daemon. The socket is the lowest
 * free fd when that first send is made (the daemon has one thread), so the
 * first send is made here, at the start of the first journal port, with
 * that fd noted just before: it is then checked to be that socket and made
 * non-blocking. A send that journald cannot take at once then fails
 * (EAGAIN, or EPERM where the sandbox refuses libsystemd's memfd fallback)
 * and is retried. That first send is an entry saying the port logs here
 * (one per journal port; see announce()). Only if journald is stuck at
 * that very moment can it stop the daemon, while it starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef VSERIAL_HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "backend.h"

#ifdef VSERIAL_HAVE_LIBSYSTEMD

#define JOURNAL_LINE_MAX 4096u
#define JOURNAL_FLUSH_MS 500u
/* journald drains its queue fast, and the queue may be short (the kernel's
 * net.unix.max_dgram_qlen, 10 unless raised): retry soon, and back off
 * only while retries get nothing through (a stuck journald). */
#define JOURNAL_RETRY_MIN_MS 1u
#define JOURNAL_RETRY_MAX_MS 500u
#define JOURNAL_READS 16
#define JOURNALD_SOCKET "/run/systemd/journal/socket"

/* hp->be */
struct journal_port {
        int rfd;                        /* the port writes the other end */
        bool watching;
        bool retrying;                  /* a line waits for journald */
        size_t len;                     /* bytes in line[] */
        uint64_t entries;               /* sent */
        uint64_t retries;               /* sends journald did not take at once */
        uint64_t entries_at_retry;      /* entries when the retry was armed */
        unsigned retry_ms;              /* the next retry's delay */
        char ident[VS_PORT_NAME_MAX + 32];
        char line[JOURNAL_LINE_MAX];
};

/* ---- libsystemd's socket ------------------------------------------------ */

static bool journal_fd_checked;

/* Is @fd an unbound AF_UNIX datagram socket (libsystemd's)? */
static bool is_journal_socket(int fd)
{
        struct sockaddr_un sa;
        socklen_t salen = sizeof(sa);
        int type = 0, dom = 0;
        socklen_t len = sizeof(int);

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_DGRAM)
                return false;
        len = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0 || dom != AF_UNIX)
                return false;
        return getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 &&
               salen == sizeof(sa.sun_family);
}

/* Make the first send of the process, and libsystemd's socket non-blocking. */
static int first_send(struct hport *hp, struct journal_port *j, const struct iovec *iov,
                      int n)
{
        int probe = fcntl(j->rfd, F_DUPFD_CLOEXEC, 0);
        int r, fl;

        if (probe >= 0)
                close(probe);
        r = sd_journal_sendv(iov, n);
        journal_fd_checked = true;
        if (probe >= 0 && is_journal_socket(probe) && (fl = fcntl(probe, F_GETFL)) >= 0 &&
            fcntl(probe, F_SETFL, fl | O_NONBLOCK) == 0)
                return r;
        log_warn("%s: cannot make libsystemd's journal socket non-blocking: a stuck "
                 "journald would stop the daemon", hp->label);
        return r;
}

/* ---- entries ------------------------------------------------------------ */

/* An entry with the port's fields; @marker: the daemon's own (see announce). */
static int send_entry(struct hport *hp, struct journal_port *j, const char *msg,
                      size_t len, int priority, bool marker)
{
        static const char daemon_ident[] = "SYSLOG_IDENTIFIER=vserial";
        static const char event[] = "VSERIAL_EVENT=start";
        char prio[16], id[32], inst[80], name[VS_PORT_NAME_MAX + 32];
        struct iovec iov[8];
        char *m = malloc(len + 8);
        int n = 0, r;

        if (!m)
                return -ENOMEM;
        memcpy(m, "MESSAGE=", 8);
        memcpy(m + 8, msg, len);
        snprintf(prio, sizeof(prio), "PRIORITY=%d", priority);
        snprintf(id, sizeof(id), "VSERIAL_PORT=%u", hp->id);
        snprintf(inst, sizeof(inst), "VSERIAL_INSTANCE=%s",
                 hp->env->instance ? hp->env->instance : "vserial");
        iov[n++] = (struct iovec){ m, len + 8 };
        iov[n++] = (struct iovec){ prio, strlen(prio) };
        if (marker) {
                iov[n++] = (struct iovec){ (void *)daemon_ident, sizeof(daemon_ident) - 1 };
                iov[n++] = (struct iovec){ (void *)event, sizeof(event) - 1 };
        } else {
                iov[n++] = (struct iovec){ j->ident, strlen(j->ident) };
        }
        iov[n++] = (struct iovec){ inst, strlen(inst) };
        iov[n++] = (struct iovec){ id, strlen(id) };
        if (hp->spec.name[0]) {
                snprintf(name, sizeof(name), "VSERIAL_PORT_NAME=%s", hp->spec.name);
                iov[n++] = (struct iovec){ name, strlen(name) };
        }
        r = journal_fd_checked ? sd_journal_sendv(iov, n) : first_send(hp, j, iov, n);
        free(m);
        return r;
}

/* Send the first @len bytes of the line buffer as an entry (a trailing CR
 * dropped; nothing for an empty line), and drop @consumed bytes. False if
 * journald did not take it: it stays. */
static bool emit(struct hport *hp, struct journal_port *j, size_t len, size_t consumed)
{
        size_t n = len;
        int r;

        if (n && j->line[n - 1] == '\r')
                n--;
        if (n && (r = send_entry(hp, j, j->line, n, hp->spec.journal_priority, false)) < 0) {
                if (!j->retries++)
                        log_debug("%s: the journal did not take an entry: %s; retrying",
                                  hp->label, strerror(-r));
                return false;
        }
        j->entries += n != 0;
        memmove(j->line, j->line + consumed, j->len - consumed);
        j->len -= consumed;
        return true;
}

/* Every whole line (and a full buffer as one); false if journald is busy. */
static bool emit_lines(struct hport *hp, struct journal_port *j)
{
        for (;;) {
                char *nl = memchr(j->line, '\n', j->len);

                if (nl) {
                        if (!emit(hp, j, nl - j->line, nl - j->line + 1))
                                return false;
                } else if (j->len == JOURNAL_LINE_MAX) {
                        if (!emit(hp, j, j->len, j->len))
                                return false;
                } else {
                        return true;
                }
        }
}

static void on_read(void *opaque, int fd, uint32_t events);

static void watch(struct hport *hp, struct journal_port *j, bool on)
{
        int r;

        if (on == j->watching)
                return;
        r = on ? hp->loop_ops->add(hp->loop, j->rfd, EPOLLIN, on_read, hp) :
                 hp->loop_ops->del(hp->loop, j->rfd);
        if (r < 0)
                log_warn("%s: cannot watch the journal pipe: %s", hp->label, strerror(-r));
        else
                j->watching = on;
}

/* journald did not take a line: stop reading, try again later (sooner
 * if the last retry got something through). */
static void retry_later(struct hport *hp, struct journal_port *j)
{
        if (!j->retrying || j->entries != j->entries_at_retry)
                j->retry_ms = JOURNAL_RETRY_MIN_MS;
        else if (j->retry_ms < JOURNAL_RETRY_MAX_MS)
                j->retry_ms = j->retry_ms * 2 < JOURNAL_RETRY_MAX_MS ? j->retry_ms * 2 :
                              JOURNAL_RETRY_MAX_MS;
        j->retrying = true;
        j->entries_at_retry = j->entries;
        watch(hp, j, false);
        hport_timer_arm(hp, j->retry_ms, false);
}

/* Read what fits, send whole lines; retry later if journald is busy. */
static void pump(struct hport *hp)
{
        struct journal_port *j = hp->be;
        ssize_t n = 1;

        for (int i = 0; i < JOURNAL_READS && n > 0; i++) {
                if (!emit_lines(hp, j)) {
                        retry_later(hp, j);
                        return;
                }
                n = read(j->rfd, j->line + j->len, JOURNAL_LINE_MAX - j->len);
                if (n > 0)
                        j->len += n;
        }
        if (!emit_lines(hp, j)) {
                retry_later(hp, j);
                return;
        }
        j->retrying = false;
        watch(hp, j, true);
        /* A prompt without its newline goes out when no more comes. */
        hport_timer_arm(hp, j->len ? JOURNAL_FLUSH_MS : 0, false);
}

static void on_read(void *opaque, int fd, uint32_t events)
{
        (void)fd;
        (void)events;
        pump(opaque);
}

/* Retry a waiting line, or send the partial one that waited long enough. */
static void on_timer(struct hport *hp)
{
        struct journal_port *j = hp->be;

        if (!j->retrying && j->len && !emit(hp, j, j->len, j->len)) {
                retry_later(hp, j);
                return;
        }
        pump(hp);
}

/* ---- the backend -------------------------------------------------------- */

static void set_ident(struct hport *hp, struct journal_port *j)
{
        if (hp->spec.name[0])
                snprintf(j->ident, sizeof(j->ident), "SYSLOG_IDENTIFIER=%s", hp->spec.name);
        else if (hp->spec.console)
                snprintf(j->ident, sizeof(j->ident), "SYSLOG_IDENTIFIER=console");
        else
                snprintf(j->ident, sizeof(j->ident), "SYSLOG_IDENTIFIER=port %u", hp->id);
}

/* The entry that says where the port's output goes (and, the first time,
 * sets up libsystemd's socket: see the top): the daemon's own
 * (SYSLOG_IDENTIFIER=vserial, VSERIAL_EVENT=start), with the port's fields;
 * guest lines never have VSERIAL_EVENT. */
static void announce(struct hport *hp, struct journal_port *j)
{
        char msg[VS_PORT_NAME_MAX + 96];
        struct stat st;
        int n = snprintf(msg, sizeof(msg), "vserial: guest output of %s is logged as %s",
                         hp->label, j->ident + strlen("SYSLOG_IDENTIFIER="));

        if (stat(JOURNALD_SOCKET, &st) < 0)
                log_warn("%s: no journald socket at %s (%s): entries are lost until journald "
                         "runs", hp->label, JOURNALD_SOCKET, strerror(errno));
        if (send_entry(hp, j, msg, n, 6, true) < 0)
                log_info("%s: the journal did not take the first entry at once", hp->label);
}

static int journal_start(struct hport *hp)
{
        struct journal_port *j = calloc(1, sizeof(*j));
        int sv[2], r;

        if (!j)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
                r = -errno;
                free(j);
                return r;
        }
        shutdown(sv[0], SHUT_WR);
        shutdown(sv[1], SHUT_RD);
        j->rfd = sv[0];
        set_ident(hp, j);
        hp->be = j;
        r = hport_timer_new(hp, on_timer);
        if (r < 0) {
                close(sv[0]);
                close(sv[1]);
                hp->be = NULL;
                free(j);
                return r;
        }
        announce(hp, j);
        watch(hp, j, true);
        /* Before the port exists: waits for hport_new, cannot fail. */
        hport_attach(hp, -1, sv[1]);
        return 0;
}

static void journal_stop(struct hport *hp)
{
        struct journal_port *j = hp->be;

        hport_close_peer(hp);
        if (!j)
                return;
        /* What is left is sent once, best effort. */
        if (j->len && !j->retrying)
                emit(hp, j, j->len, j->len);
        watch(hp, j, false);
        close(j->rfd);
        free(j);
        hp->be = NULL;
}

static void journal_peer_gone(struct hport *hp)
{
        /* Our own socket pair does not go away. */
        log_warn("%s: the journal pipe failed", hp->label);
}

const struct backend_ops backend_journal_ops = {
        .name = "journal",
        .start = journal_start,
        .stop = journal_stop,
        .peer_gone = journal_peer_gone,
};

void backend_journal_counters(const struct hport *hp, uint64_t *entries, uint64_t *retries)
{
        const struct journal_port *j = hp->ops == &backend_journal_ops ? hp->be : NULL;

        *entries = j ? j->entries : 0;
        *retries = j ? j->retries : 0;
}

#else /* !VSERIAL_HAVE_LIBSYSTEMD */

static int journal_unavailable(struct hport *hp)
{
        log_error("%s: backend=journal is not available: this vserial was built without "
                  "libsystemd", hp->label);
        return -ENOTSUP;
}

static void journal_nothing(struct hport *hp)
{
        (void)hp;
}

const struct backend_ops backend_journal_ops = {
        .name = "journal",
        .start = journal_unavailable,
        .stop = journal_nothing,
        .peer_gone = journal_nothing,
};

void backend_journal_counters(const struct hport *hp, uint64_t *entries, uint64_t *retries)
{
        (void)hp;
        *entries = *retries = 0;
}

#endif
