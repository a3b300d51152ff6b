/* SPDX-License-Identifier: MIT */
/*
 * The host side of a port. Common code (backend.c) moves bytes between a
 * vs_port and a pair of host fds (in: host->guest, out: guest->host), keeps
 * guest output in a bounded buffer while the host side is slow or absent,
 * and pauses reading while the guest has no room. A backend kind (unix,
 * stdio, ...) only decides where the fds come from: a filled, const
 * struct backend_ops.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "listener.h"
#include "loop/loop.h"
#include "log.h"
#include "options.h"
#include "vserial/vserial.h"

#define HPORT_BUFFER_DEFAULT (1u << 20)

struct hport;
struct tap;

enum hport_event {
        HPORT_GUEST_OPEN,
        HPORT_GUEST_CLOSE,
        HPORT_HOST_CONNECT,
        HPORT_HOST_DISCONNECT,
        /* Host connections (clients.c, plug.c); hp->ev says more. */
        HPORT_CLIENT_REFUSED,   /* closed unserved: the guest could not be told */
        HPORT_CLIENT_DROPPED,   /* a read-only client fell a buffer behind */
        HPORT_OUTPUT_DISCARDED, /* on-connect=discard: ev.bytes dropped */
        HPORT_UNPLUGGED,        /* the guest lost the port, the host side stays */
        HPORT_PLUGGED,          /* ... and has it again */
};

/* What an event is about, beyond its port (valid during the callback). */
struct hport_event_info {
        unsigned client;        /* the client's number on its port, 0 if none */
        uint64_t bytes;         /* HPORT_OUTPUT_DISCARDED */
};

/* What host ports share: the loop, and where their events go. */
struct hport_env {
        const struct vs_loop_ops *loop_ops;
        void *loop;
        /* Listening sockets accept through it (back-off when out of fds). */
        struct listen_pool *listeners;
        unsigned nports;        /* host ports alive (hport_new, not yet freed) */
        /* Every one of them by id, plugged into the device or not. */
        struct hport *by_id[VS_MAX_PORTS];
        /* Every event, in order; may be NULL. */
        void (*event)(void *opaque, struct hport *hp, enum hport_event ev);
        void *opaque;
        /*
         * Is the guest memory behind the device's iovecs lost (the VMM
         * truncated its memory file)? @fault: a copy from or to it just
         * failed with EFAULT, which the library's SIGBUS guard does not
         * see: the owner ends the VMM connection. May be NULL (never lost).
         */
        bool (*guest_memory_lost)(void *mem_opaque, bool fault);
        void *mem_opaque;
        const char *instance;   /* --instance (journal entries); may be NULL */
};

/*
 * A backend. Its own state (a listening socket, a pty's slave fd, ...) is
 * a struct of its own, which start() allocates into hp->be and stop()
 * frees; backend.c never looks inside.
 */
struct backend_ops {
        const char *name;
        /* Set up (listen, take stdio). Negative errno on failure, with
         * whatever it made undone (hp->be freed). */
        int (*start)(struct hport *hp);
        /* Release everything start() and later events took. */
        void (*stop)(struct hport *hp);
        /* The connected peer went away (EOF, error): drop it. */
        void (*peer_gone)(struct hport *hp);
        /* The input reached its end (EOF); NULL = the peer is gone. */
        void (*input_end)(struct hport *hp);
        /* Writing guest output failed (not EAGAIN); NULL = the peer is gone. */
        void (*output_error)(struct hport *hp, int err);
        /* The host terminal may have changed size (SIGWINCH). May be NULL. */
        void (*winch)(struct hport *hp);
        /* Open again the files written by name (SIGHUP): 0, or -errno if
         * one could not be opened (the old one is kept). May be NULL. */
        int (*reopen)(struct hport *hp);
        /* Where a host program opens the port when its SPEC has no path=
         * (pty: the slave made for it), for list. May be NULL. */
        const char *(*path)(const struct hport *hp);
};

/* What a port's host side has done (stats_port()). */
struct hport_counters {
        uint64_t host_connects;         /* peers that became the host side */
        uint64_t clients_refused;       /* clients closed unserved */
        uint64_t output_discarded;      /* guest bytes dropped: output gone for good */
        uint64_t clients_dropped;       /* read-only clients that fell behind */
        uint64_t input_discarded;       /* bytes read-only clients sent */
};

/* Guest output not yet written to the host side: a ring of bytes. */
struct outbuf {
        uint8_t *data;          /* allocated while non-empty */
        size_t cap;             /* the bound */
        size_t head;
        size_t len;
};

struct hclients;

struct hport {
        struct port_spec spec;
        const struct backend_ops *ops;
        /* NULL while the backend starts (before the device has the port)
         * and once the device forgot it (removed, or being freed). */
        struct vs_port *port;
        uint32_t id;
        struct hport_env *env;
        const struct vs_loop_ops *loop_ops;     /* env's, for brevity */
        void *loop;
        void *be;               /* the backend's own state (struct backend_ops) */

        int client_fd;          /* a control client that is the peer, or -1
                                 * (hport_attach_client; not with clients) */
        int in_fd;              /* host->guest source, or -1 */
        int out_fd;             /* guest->host sink, or -1 */
        uint32_t in_events;     /* what is being watched on in_fd */
        uint32_t out_events;    /* ... and on out_fd when it differs */
        bool out_unpollable;    /* a regular file: always writable */
        bool in_unpollable;     /* a regular file: always readable */
        int poke_fd;            /* eventfd: read unpollable input again */
        int timer_fd;           /* backend's timer (reconnect, retry), or -1 */
        void (*timer_fn)(struct hport *hp);
        bool rolling_back;      /* a failed add: undo what start() made */
        bool announced;         /* host-connect reported for this peer */
        uint16_t cols, rows;    /* host terminal size last sent */
        bool in_paused;         /* the guest has no room */
        bool hup_seen;          /* the peer hung up with data still unread */
        bool peer_eof;          /* the peer shut down its sending side */
        bool out_gone;          /* output failed for good: guest output is dropped */
        size_t in_want;         /* bytes to ask for in the next read */
        struct outbuf buf;
        struct hport_counters cnt;
        char label[VS_PORT_NAME_MAX + 32];
        /* ---- issue 13: taps on guest output, tcp-connect, journal ---- */
        struct tap *tap;        /* history, logfile=, throttled time (tap.h) */
        /* ---- end of issue 13's fields ---- */
        /* Host connections (issues 13 and 15): */
        struct vs_device *dev;          /* where the port is (un)plugged */
        struct hclients *clients;       /* unix, tcp: the clients (clients.c) */
        struct hport_event_info ev;     /* of the event being reported */
        struct vs_port_stats stats_base;        /* of the ports unplugged before */
        uint64_t discard_pending;       /* on-connect=discard: dropped, not reported */
};

/*
 * Create the host port for @spec on @dev: start the backend, then add the
 * vs_port. Both happen or neither: if the device refuses, what start()
 * made is undone (a socket or a file it created is removed). Errors are
 * logged with the port's name; -ENOSPC: no free port id; -EAGAIN: the
 * guest's control queue is full (it takes no control messages now).
 */
int hport_new(struct vs_device *dev, const struct port_spec *spec,
              struct hport_env *env, struct hport **ret);
/*
 * Remove the port from the device, then stop and free the host side. If
 * the device refuses (-ENOSPC: the guest's control queue is full) nothing
 * changes and the port keeps working.
 */
int hport_remove(struct hport *hp);
/* Stop and free the host side, leaving the device alone: for the daemon's
 * exit, when the device is freed next. Accepts NULL. */
void hport_free(struct hport *hp);
/* Is the guest memory behind the device's iovecs lost (the VMM truncated
 * it)? Then what a copy just read from it is zeros, not guest output.
 * @fault: a copy failed with EFAULT (the owner ends the VMM connection). */
bool hport_memory_lost(struct hport *hp, bool fault);

/*
 * For backends: a peer is now connected on these fds (may be equal).
 * -ENOSPC if the guest cannot be told (its control queue is full): the fds
 * are not taken, the caller refuses the peer.
 */
int hport_attach(struct hport *hp, int in_fd, int out_fd);
/*
 * Tell the guest the host side is (not) connected before a peer is
 * attached (the control socket's attach replies in between). -ENOSPC: the
 * guest's control queue is full, nothing changed.
 */
int hport_announce(struct hport *hp, bool connected);
/* For backends: a console's host terminal has this size (hp->cols and
 * hp->rows keep it once the device took it). */
void hport_set_size(struct hport *hp, uint16_t cols, uint16_t rows);
/* For backends: forget the fds (the backend closes them). */
void hport_detach(struct hport *hp);
/* For backends: forget the fds and close them (an fd used both ways once):
 * the stop() of a backend whose peer is its own. */
void hport_close_peer(struct hport *hp);
/* For backends: stop reading input (its end was reached); output goes on. */
void hport_drop_input(struct hport *hp);
/*
 * For backends: the output can never be written again (stdout's reader
 * left): stop watching it, and from now on take guest output and drop it,
 * counted (output_discarded), rather than buffer and throttle a guest
 * that nobody will ever read. Input goes on.
 */
void hport_drop_output(struct hport *hp);
/* Host input goes to the guest in reads whose size adapts (HPORT_IN_MIN
 * up to HPORT_IN_CHUNK), at most HPORT_IN_BUDGET of them a wake-up so that
 * one busy port cannot starve the others. */
#define HPORT_IN_BUDGET 16
#define HPORT_IN_CHUNK (256u * 1024)
#define HPORT_IN_MIN 4096u

enum hport_recv {
        HPORT_RECV_MORE,        /* it took all it asked for: read again */
        HPORT_RECV_DRAINED,     /* nothing more now: wait for the fd */
        HPORT_RECV_FULL,        /* the guest has no room (or lost its memory):
                                 * wait for guest_ready() */
        HPORT_RECV_END,         /* end of input (*ret_err 0) or an error */
};
/* One read from @fd into the guest of *@want bytes, and what comes next;
 * *@want becomes what the next read should ask for (backend.c's own peer,
 * clients.c's writer). */
enum hport_recv hport_recv(struct hport *hp, int fd, size_t *want, int *ret_err);

/* For backends: try writing buffered guest output again. */
void hport_flush(struct hport *hp);
/* The host terminal may have changed size: consoles follow it. */
void hport_winch(struct hport *hp);
/*
 * SIGHUP (logrotate moved the files away): every file the port writes by
 * name is opened again, so new output goes to a new file. What the port
 * writes to files is all reopened here, whoever writes it (the backend's
 * file, logfile=). Returns how many could not be opened (their old files
 * are kept, and the log says why).
 */
int hport_reopen(struct hport *hp);
/* For backends: a timerfd on the loop; @fn runs when it expires. -errno. */
int hport_timer_new(struct hport *hp, void (*fn)(struct hport *hp));
void hport_timer_arm(struct hport *hp, unsigned ms, bool repeat);
/* Bytes of guest output waiting for the host side. */
size_t hport_buffered(const struct hport *hp);
/* Is a host peer connected? */
bool hport_connected(const struct hport *hp);
/* How a host client joins a port with clients (clients.h). */
enum client_mode {
        CLIENT_DEFAULT,         /* the writer if there is none, else a reader */
        CLIENT_READ_ONLY,       /* a reader, never the writer */
        CLIENT_WRITE,           /* the writer from now on */
};

/*
 * Make @fd (a non-blocking stream socket) the peer, whatever the backend:
 * the port's host side until EOF or an error, then the fd is closed and the
 * backend is as before. A listening port takes it as one of its clients
 * (@mode; other backends take CLIENT_DEFAULT and CLIENT_WRITE alike).
 * -EBUSY if a peer is connected (all clients= are), -ENOSPC as for
 * hport_attach() (the caller keeps @fd).
 */
int hport_attach_client(struct hport *hp, int fd, enum client_mode mode);
/* "port 1 (org.x)" for log lines. */
const char *hport_label(const struct hport *hp);
/* Where a host program opens the port (path=, or the backend's: a pty's
 * slave), or NULL. */
const char *hport_path(const struct hport *hp);

/* ---- host connections (issues 13 and 15) -------------------------------- */

/* The device's callbacks of every host port. */
extern const struct vs_port_ops hport_port_ops;
/* Report @ev through the env's event hook, with hp->ev as filled. */
void hport_emit(struct hport *hp, enum hport_event ev);
/* on-connect=discard: log and report (HPORT_OUTPUT_DISCARDED) the guest
 * output dropped for the new host client (hp->discard_pending), if any. */
void hport_report_discard(struct hport *hp);
/* Every host port in id order, plugged into the device or not: start with
 * NULL. */
struct hport *hport_next(struct hport_env *env, struct hport *prev);
struct hport *hport_find_id(struct hport_env *env, uint32_t id);
struct hport *hport_find_name(struct hport_env *env, const char *name);
/* Stats of the port, with those of its earlier plugs added. */
void hport_get_stats(const struct hport *hp, struct vs_port_stats *ret);
/* The guest has the port now (it is in the device). */
bool hport_plugged(const struct hport *hp);

/*
 * Unplug (plug.c): the guest loses the port (PORT_REMOVE), the host side
 * stays: its backend, clients and buffered output. What the guest wrote and
 * the port took is still delivered; what host clients send waits in their
 * sockets (not read) until the next plug. -ENOSPC: the guest's control
 * queue is full, nothing changed; -EALREADY: not plugged.
 */
int hport_unplug(struct hport *hp);
/*
 * Plug: the guest gets the port again (PORT_ADD), same id, name and kind,
 * and hears whether a host client is connected. -ENOSPC: the control queue
 * is full, still unplugged; -EALREADY: plugged.
 */
int hport_plug(struct hport *hp);

/* A listening unix socket at @path (a stale socket file is replaced). */
int backend_listen_unix(const char *path, int backlog);

/* Each backend's ops, defined in its file (backends.h lists them). */
#define X(kind, name, ops) extern const struct backend_ops ops;
BACKENDS(X)
#undef X

/* backend=journal: entries sent, and sends journald did not take at once. */
void backend_journal_counters(const struct hport *hp, uint64_t *entries, uint64_t *retries);

/* For backend=fd: serve @fd, a listening socket someone else made, as
 * backend=unix serves its own (hp->ops become the listening backend's).
 * -errno, and @fd is left open, if it cannot. */
int backend_listen_adopt(struct hport *hp, int fd);
