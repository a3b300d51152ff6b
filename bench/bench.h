/* SPDX-License-Identifier: MIT */
/*
 * vsbench: vserial against the raw limit.
 *
 * The program plays VMM and guest driver for a real `vserial` daemon it
 * spawns (tests/harness's fake driver, in its remote mode, does the
 * vhost-user set-up and the console control protocol; the data path below
 * posts and reaps buffers on the same rings itself, as Linux's
 * virtio_console does), and plays the host side on the ports' unix
 * sockets. Every figure is reported with a baseline measured in the same
 * run: a raw unix socketpair pump, a raw ping-pong, one busy port, an
 * empty daemon, and so on.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fake_driver.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
/* Reads of the host-side consumers (and the raw pump's reader). */
#define BENCH_READ_SIZE (256u * KIB)
#define BENCH_RTT_MSG 64u
/* vhost-user names rings in 8 bits: ports 0..126 have them all. */
#define BENCH_VU_PORTS 127u

struct bench_opts {
        bool smoke;
        bool tap;
        double secs;            /* measured window of a throughput case */
        double warm;            /* warm-up before the window */
        unsigned reps;          /* repetitions; the median is reported */
        unsigned rtt;           /* round trips per latency case */
        unsigned spawns;        /* daemon spawns per set-up figure */
        uint64_t uml_bytes;     /* per direction through the UML guest */
        const char *vserial;
        const char *uml;        /* linux.uml, or NULL: skip */
        const char *uml_script; /* bench/uml_guest.sh */
        const char *json;
        const char *only;       /* comma-separated groups, NULL = all */
        const char *cases;      /* comma-separated throughput cases, NULL = all */
        char dir[64];           /* scratch: sockets, logs (short: sun_path) */
};

extern struct bench_opts opt;

/* ---- results -------------------------------------------------------------- */

enum target_kind {
        TGT_NONE,
        TGT_RATIO_MIN,          /* ratio >= t */
        TGT_RATIO_MAX,          /* ratio <= t */
        TGT_VALUE_MAX,          /* value <= t (in the row's unit) */
};

struct row {
        char group[24];
        char name[64];
        double value;
        char unit[12];
        char base_name[48];
        double base;            /* the baseline, same unit; 0 = none */
        double ratio;           /* value / base */
        enum target_kind tkind;
        double target;
        char extra[160];        /* free text: spread, counts */
};

struct row *row_add(const char *group, const char *name, double value,
                    const char *unit, const char *base_name, double base);
void row_target(struct row *r, enum target_kind kind, double t);
void row_extra(struct row *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* A case that could not run: recorded so that smoke mode fails. */
void case_failed(const char *group, const char *name, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool group_wanted(const char *group);
bool case_wanted(const char *id);

/* ---- sys.c: time, processes, the daemon -------------------------------- */

double now_s(void);
uint64_t now_ns(void);
void sleep_s(double s);
int cmp_double(const void *a, const void *b);
double median(double *v, unsigned n);
double percentile(double *sorted, unsigned n, double p);
void raise_nofile(void);
/* A small text file, read whole into @buf (up to @size - 1 bytes) and
 * NUL-terminated: its length, or -1 if it cannot be read or is empty. */
ssize_t read_text(const char *path, char *buf, size_t size);
/* VmRSS (and its parts) of @pid in KiB; -1 on error. */
long proc_rss_kib(pid_t pid, long *anon, long *file, long *shmem);
/* CPU time of (the main thread of) @pid, from /proc/PID/schedstat */
uint64_t proc_cpu_ns(pid_t pid);
/* CPU time of this process, all threads */
uint64_t self_cpu_ns(void);
/* "1.20 0.80 0.50" */
void loadavg(char *buf, size_t len);
/* "AMD EPYC 7B13" from /proc/cpuinfo */
void cpu_model(char *buf, size_t len);

struct daemon {
        pid_t pid;
        char sock[108];
        char log[256];
        int vmm_fd;             /* connected vhost-user socket, or -1 */
        double ready_ms;        /* fork to the first accepted connect */
};

struct port_req {
        uint32_t id;
        bool console;
};

/*
 * Spawn `vserial --socket DIR/TAG.sock --max-ports @max_ports` with one
 * unix-backend port per entry of @ports (socket DIR/TAG.pID), and connect
 * to its vhost-user socket (kept in vmm_fd). DIR is opt.dir. -errno on
 * failure.
 */
int daemon_start(struct daemon *dm, const char *tag, unsigned max_ports,
                 const struct port_req *ports, unsigned nports);
/* The same with the sockets in @dir. */
int daemon_start_in(struct daemon *dm, const char *dir, const char *tag,
                    unsigned max_ports, const struct port_req *ports,
                    unsigned nports);
/* The unix socket path of port @id of @dm. */
void daemon_port_path(const struct daemon *dm, uint32_t id, char *buf,
                      size_t len);
/* Connect to port @id's unix socket: a blocking fd, or -errno. */
int daemon_port_connect(const struct daemon *dm, uint32_t id);
void daemon_stop(struct daemon *dm);

/* ---- vmm.c: the VMM + guest driver for a spawned daemon ------------------ */

/* One data ring as the bench drives it: a free list of heads, each with
 * its own buffer in guest memory, and notification counters. */
struct bring {
        struct fake_driver *d;
        struct fake_vq *vq;
        unsigned q;
        bool rx;
        uint32_t buf_len;
        uint64_t *gpa;          /* [num]: buffer of each head */
        uint16_t *free;         /* stack of free heads */
        unsigned nfree;
        uint64_t kicks;         /* kick-fd writes sent */
        uint64_t calls;         /* call-fd writes received */
        uint64_t bufs;          /* buffers completed */
        uint64_t bytes;         /* bytes completed (rx: used len) */
};

struct vmm {
        bool started;           /* vmm_stop() has something to undo */
        struct daemon dm;
        struct fake_host *h;
        struct fake_driver *d;
        unsigned max_ports;
        bool event_idx;
        double probe_ms;        /* vhost-user start + console probe */
        struct bring *rings;    /* [2 * (max_ports + 1)], set up on demand */
        int *host_fd;           /* [max_ports]: host client of each port */
};

/*
 * Spawn a daemon with ports 1..@nports (unix backend), connect as a QEMU-
 * style frontend with a Linux-style console driver, wait until every port
 * is ready and named. The guest acks EVENT_IDX iff @event_idx.
 */
int vmm_start(struct vmm *v, const char *tag, unsigned nports, bool event_idx);
void vmm_stop(struct vmm *v);
/* Connect the host client of port @id and open the port in the guest;
 * waits until both sides see each other. */
int vmm_open_port(struct vmm *v, uint32_t id);
/* Set up the bench's view of ring @q with buffers of @buf_len bytes. */
struct bring *vmm_ring(struct vmm *v, unsigned q, uint32_t buf_len);

int bring_post(struct bring *r, uint16_t head, uint32_t len);
/* Kick unless the device suppressed it; counts kicks. */
int bring_kick(struct bring *r);
/* The next used entry: 1 (head, len), 0 none, -errno bogus. */
int bring_used(struct bring *r, uint16_t *head, uint32_t *len);
/* Read the call fd; the notifications since the last read. */
uint64_t bring_calls(struct bring *r);
int bring_call_fd(const struct bring *r);
unsigned bring_inflight(const struct bring *r);

/* ---- cases.c ---------------------------------------------------------------- */

extern unsigned long poll_timeouts;
void run_throughput(struct vmm *v);
void run_latency(struct vmm *v);
void run_multiport(struct vmm *v);
void run_notify(struct vmm *on);
/* the raw baselines */
/* MB/s over the window; *@cpu_per_mib (if not NULL) gets the CPU time of
 * writer + reader per MiB moved, in microseconds. */
double raw_pump(uint32_t chunk, double secs, double warm, double *cpu_per_mib);
int raw_pingpong(unsigned n, double *sorted_us);

/* ---- setup.c ----------------------------------------------------------------- */

void run_setup(void);

/* ---- uml.c ------------------------------------------------------------------- */

void run_uml(void);
