/* SPDX-License-Identifier: MIT */
/*
 * Command line parsing. Every rejection names the offending option and why,
 * in one line, so an operator can fix it without reading the source.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "log.h"
#include "options.h"
#include "version.h"

/* Write why the input is invalid into @err (one line), return -EINVAL. */
static int invalid(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int invalid(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* A decimal in [min, max], nothing else. */
static int parse_uint(const char *s, unsigned long min, unsigned long max,
                      unsigned long *ret)
{
        char *end;
        unsigned long v;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static const char *const backend_names[BACKEND_COUNT] = {
        [BACKEND_NONE] = "none",
#define X(kind, name, ops) [kind] = name,
        BACKENDS(X)
#undef X
};

const char *backend_name(enum backend_kind kind)
{
        return kind < BACKEND_COUNT ? backend_names[kind] : "?";
}

/* "unix, unix-connect, ... or journal", for error lines. */
static const char *backend_list(void)
{
        static char list[256];
        size_t len = 0;

        if (list[0])
                return list;
        for (int k = BACKEND_NONE + 1; k < BACKEND_COUNT; k++)
                len += snprintf(list + len, sizeof(list) - len, "%s%s",
                                k == BACKEND_NONE + 1 ? "" : k + 1 < BACKEND_COUNT ? ", " : " or ",
                                backend_names[k]);
        return list;
}

bool backend_journal_available(void)
{
#ifdef VSERIAL_HAVE_LIBSYSTEMD
        return true;
#else
        return false;
#endif
}

static int spec_backend(struct port_spec *p, const char *val, char *err,
                        size_t errlen)
{
        for (int k = BACKEND_NONE + 1; k < BACKEND_COUNT; k++) {
                if (strcmp(val, backend_names[k]) != 0)
                        continue;
                if (k == BACKEND_JOURNAL && !backend_journal_available())
                        return invalid(err, errlen,
                                       "backend=journal is not available: this vserial "
                                       "was built without libsystemd");
                p->backend = k;
                return 0;
        }
        return invalid(err, errlen, "unknown backend '%s' (expected %s)", val,
                       backend_list());
}

/* A byte count (bytes.h) in SPEC_BUFFER_MIN..SPEC_BUFFER_MAX. */
static int parse_size(const char *s, size_t *ret)
{
        uint64_t v;

        if (parse_bytes(s, SPEC_BUFFER_MAX, &v) < 0 || v < SPEC_BUFFER_MIN)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int spec_string(char *dst, size_t cap, const char *key, const char *val,
                       char *err, size_t errlen)
{
        if (!*val || strlen(val) >= cap)
                return invalid(err, errlen, "%s must be 1..%zu bytes", key, cap - 1);
        strcpy(dst, val);
        return 0;
}

static int spec_name(struct port_spec *p, const char *val, char *err, size_t errlen)
{
        if (!*val || strlen(val) > VS_PORT_NAME_MAX)
                return invalid(err, errlen, "name must be 1..%u characters", VS_PORT_NAME_MAX);
        for (const char *c = val; *c; c++)
                if (*c <= ' ' || *c > '~')
                        return invalid(err, errlen,
                                       "name '%s' has a space or non-ASCII character", val);
        strcpy(p->name, val);
        return 0;
}

static int spec_number(struct port_spec *p, const char *key, const char *val,
                       char *err, size_t errlen)
{
        unsigned long v;

        if (strcmp(key, "id") == 0) {
                if (parse_uint(val, 0, OPT_MAX_PORTS - 1, &v) < 0)
                        return invalid(err, errlen, "id '%s' is not a number in 0..%u", val,
                                       OPT_MAX_PORTS - 1);
                p->id = v;
        } else if (strcmp(key, "port") == 0) {
                if (parse_uint(val, 1, 65535, &v) < 0)
                        return invalid(err, errlen, "port '%s' is not a TCP port in 1..65535", val);
                p->tcp_port = v;
        } else if (parse_size(val, &p->buffer) < 0) {
                return invalid(err, errlen,
                               "buffer '%s' is not a size in 4K..1G (e.g. 64K, 1M)", val);
        }
        return 0;
}

/* ---- issue 13: history=, logfile=, fd=, journal-priority= ------------ */

/* "0", or a size in 4K..SPEC_HISTORY_MAX. */
static int spec_history(struct port_spec *p, const char *val, char *err, size_t errlen)
{
        size_t v = 0;

        if (strcmp(val, "0") != 0 && (parse_size(val, &v) < 0 || v > SPEC_HISTORY_MAX))
                return invalid(err, errlen, "history '%s' is not 0 or a size in 4K..%uM (e.g. 64K)",
                               val, SPEC_HISTORY_MAX >> 20);
        p->history = v;
        p->history_set = true;
        return 0;
}

static int spec_onoff(bool *dst, const char *key, const char *val, char *err, size_t errlen)
{
        if (strcmp(val, "on") == 0 || strcmp(val, "off") == 0) {
                *dst = val[1] == 'n';
                return 0;
        }
        return invalid(err, errlen, "%s '%s': expected on or off", key, val);
}

static const char *const priority_names[] = {
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

/* 0..7 or a syslog priority name. */
static int spec_priority(struct port_spec *p, const char *val, char *err, size_t errlen)
{
        unsigned long v;

        for (int i = 0; i < 8; i++) {
                if (strcmp(val, priority_names[i]) == 0) {
                        p->journal_priority = i;
                        return 0;
                }
        }
        if (parse_uint(val, 0, 7, &v) < 0)
                return invalid(err, errlen,
                               "journal-priority '%s' is not 0..7 or emerg, alert, crit, "
                               "err, warning, notice, info, debug", val);
        p->journal_priority = (int)v;
        return 0;
}

/* This block's keys; -ENOENT: not one of them. */
static int spec_key_host(struct port_spec *p, const char *key, const char *val,
                         char *err, size_t errlen)
{
        unsigned long v;

        if (strcmp(key, "history") == 0)
                return spec_history(p, val, err, errlen);
        if (strcmp(key, "logfile") == 0)
                return spec_string(p->logfile, sizeof(p->logfile), key, val, err, errlen);
        if (strcmp(key, "logfile-timestamps") == 0)
                return spec_onoff(&p->logfile_timestamps, key, val, err, errlen);
        if (strcmp(key, "journal-priority") == 0)
                return spec_priority(p, val, err, errlen);
        if (strcmp(key, "fd") != 0)
                return -ENOENT;
        /* 0..2 are the daemon's stdio: backend=stdio is for those. */
        if (parse_uint(val, 3, 0x7fffffff, &v) < 0)
                return invalid(err, errlen, "fd '%s' is not a file descriptor number >= 3 "
                               "(0, 1 and 2: backend=stdio)", val);
        p->fd = (int)v;
        return 0;
}

/* What this block's keys need, after all keys are read. */
static int spec_check_host(struct port_spec *p, char *err, size_t errlen)
{
        if (!p->history_set)
                p->history = p->console ? SPEC_HISTORY_CONSOLE : 0;
        if (p->logfile_timestamps && !p->logfile[0])
                return invalid(err, errlen, "logfile-timestamps= needs logfile=");
        if (p->logfile[0] && p->backend == BACKEND_FILE && strcmp(p->logfile, p->path) == 0)
                return invalid(err, errlen, "logfile= and path= name the same file");
        if (p->backend != BACKEND_FD && p->fd >= 0)
                return invalid(err, errlen, "fd= is only for backend=fd");
        if (p->backend == BACKEND_FD && p->fd < 0 && !p->name[0])
                return invalid(err, errlen, "backend=fd needs fd=N, or name= (the name of a socket "
                               "systemd passes, LISTEN_FDNAMES)");
        if (p->backend != BACKEND_JOURNAL && p->journal_priority != SPEC_JOURNAL_PRIORITY)
                return invalid(err, errlen, "journal-priority= is only for backend=journal");
        return 0;
}

/* ---- end of issue 13's keys ------------------------------------------------ */

/* ---- host connections: clients=, on-connect= ---------------------------- */

/* 1 if @key is one of these, 0 if not, -EINVAL (and @err) for a bad value. */
static int spec_conn_key(struct port_spec *p, const char *key, const char *val,
                         char *err, size_t errlen)
{
        unsigned long v;

        if (strcmp(key, "clients") == 0) {
                if (parse_uint(val, 1, SPEC_CLIENTS_MAX, &v) < 0)
                        return invalid(err, errlen, "clients '%s' is not a number in 1..%u", val,
                                       SPEC_CLIENTS_MAX);
                p->clients = v;
                return 1;
        }
        if (strcmp(key, "on-connect") == 0) {
                if (strcmp(val, "replay") == 0)
                        p->on_connect = ON_CONNECT_REPLAY;
                else if (strcmp(val, "discard") == 0)
                        p->on_connect = ON_CONNECT_DISCARD;
                else
                        return invalid(err, errlen,
                                       "on-connect '%s': expected replay or discard", val);
                p->on_connect_set = true;
                return 1;
        }
        return 0;
}

/* Which backends take them: clients= the listening ones, on-connect= any
 * whose host side connects and leaves. */
static int spec_check_conn(struct port_spec *p, char *err, size_t errlen)
{
        bool listens = p->backend == BACKEND_UNIX || p->backend == BACKEND_TCP;

        if (p->clients && !listens)
                return invalid(err, errlen, "clients= is only for backend=unix and backend=tcp "
                               "(listening sockets)");
        if (p->on_connect_set && !listens && p->backend != BACKEND_UNIX_CONNECT)
                return invalid(err, errlen, "on-connect= is only for backend=unix, tcp and "
                               "unix-connect (host sides that connect and leave)");
        if (!p->clients)
                p->clients = 1;
        return 0;
}

/* ---- the other keys ------------------------------------------------------ */

static int spec_key(struct port_spec *p, const char *key, const char *val,
                    char *err, size_t errlen)
{
        int r;

        if (strcmp(key, "console") == 0) {
                if (val)
                        return invalid(err, errlen, "'console' takes no value");
                p->console = true;
                return 0;
        }
        if (!val)
                return invalid(err, errlen, "key '%s' needs a value (%s=...)", key, key);
        r = spec_conn_key(p, key, val, err, errlen);
        if (r != 0)
                return r < 0 ? r : 0;
        if (strcmp(key, "id") == 0 || strcmp(key, "port") == 0 || strcmp(key, "buffer") == 0)
                return spec_number(p, key, val, err, errlen);
        if (strcmp(key, "name") == 0)
                return spec_name(p, val, err, errlen);
        if (strcmp(key, "backend") == 0)
                return spec_backend(p, val, err, errlen);
        if (strcmp(key, "path") == 0)
                return spec_string(p->path, sizeof(p->path), key, val, err, errlen);
        if (strcmp(key, "input") == 0)
                return spec_string(p->input, sizeof(p->input), key, val, err, errlen);
        if (strcmp(key, "host") == 0)
                return spec_string(p->host, sizeof(p->host), key, val, err, errlen);
        r = spec_key_host(p, key, val, err, errlen);
        if (r != -ENOENT)
                return r;
        return invalid(err, errlen, "unknown key '%s'", key);
}

/* Which keys each backend takes. */
static int spec_check_keys(const struct port_spec *p, char *err, size_t errlen)
{
        bool wants_path = p->backend == BACKEND_UNIX || p->backend == BACKEND_UNIX_CONNECT ||
                          p->backend == BACKEND_FILE;
        const char *b = backend_name(p->backend);
        bool tcp = p->backend == BACKEND_TCP || p->backend == BACKEND_TCP_CONNECT;

        if (wants_path && !p->path[0])
                return invalid(err, errlen, "backend=%s needs path=", b);
        if (!wants_path && p->path[0])
                return invalid(err, errlen, "path= is not a key of backend=%s", b);
        if (p->backend != BACKEND_FILE && p->input[0])
                return invalid(err, errlen, "input= is only for backend=file");
        if (tcp && !p->tcp_port)
                return invalid(err, errlen, "backend=%s needs port=", b);
        if (!tcp && (p->tcp_port || p->host[0]))
                return invalid(err, errlen,
                               "host= and port= are only for backend=tcp and tcp-connect");
        if ((p->backend == BACKEND_UNIX || p->backend == BACKEND_UNIX_CONNECT) &&
            strlen(p->path) >= 108)
                return invalid(err, errlen, "a unix socket path must be under 108 bytes");
        return 0;
}

static int spec_check(struct port_spec *p, char *err, size_t errlen)
{
        struct in6_addr a6;
        struct in_addr a4;
        int r;

        if (p->backend == BACKEND_NONE)
                return invalid(err, errlen, "backend= is missing (%s)", backend_list());
        if (p->id == 0 && !p->console)
                return invalid(err, errlen, "id 0 is reserved for a console port");
        r = spec_check_host(p, err, errlen);
        if (r < 0)
                return r;
        if ((p->backend == BACKEND_TCP || p->backend == BACKEND_TCP_CONNECT) && !p->host[0])
                strcpy(p->host, "127.0.0.1");
        if (p->host[0] && inet_pton(AF_INET, p->host, &a4) != 1 &&
            inet_pton(AF_INET6, p->host, &a6) != 1)
                return invalid(err, errlen,
                               "host '%s' is not a numeric IPv4 or IPv6 address", p->host);
        if (!p->buffer)
                p->buffer = 1u << 20;
        if (spec_check_conn(p, err, errlen) < 0)
                return -EINVAL;
        return spec_check_keys(p, err, errlen);
}

/* Room for every key at its longest. */
#define SPEC_TEXT_MAX (5 * SPEC_PATH_MAX)

int spec_parse(const char *spec, struct port_spec *ret, char *err, size_t errlen)
{
        char buf[SPEC_TEXT_MAX];
        char *save = NULL;
        int r = 0;

        memset(ret, 0, sizeof(*ret));
        ret->id = -1;
        ret->fd = -1;
        ret->journal_priority = SPEC_JOURNAL_PRIORITY;
        if (strlen(spec) >= sizeof(buf))
                return invalid(err, errlen, "longer than %d bytes", SPEC_TEXT_MAX - 1);
        strcpy(buf, spec);
        for (char *kv = strtok_r(buf, ",", &save); kv && r == 0;
             kv = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(kv, '=');

                if (eq)
                        *eq = '\0';
                r = spec_key(ret, kv, eq ? eq + 1 : NULL, err, errlen);
        }
        return r < 0 ? r : spec_check(ret, err, errlen);
}

static bool same_endpoint(const struct port_spec *p, const struct port_spec *q)
{
        if (p->path[0] && strcmp(p->path, q->path) == 0)
                return true;
        /* Several ports may connect to one server; only one may listen. */
        if (p->backend != BACKEND_TCP || q->backend != BACKEND_TCP)
                return false;
        return p->tcp_port && p->tcp_port == q->tcp_port && strcmp(p->host, q->host) == 0;
}

/* ---- issue 13: what two ports may not share (logfile=, fd=) ------------- */

/* Does @f, a file one port writes, clash with a file of @q? */
static bool file_clash(const char *f, const struct port_spec *q)
{
        return f[0] && (strcmp(f, q->logfile) == 0 ||
                        (q->backend == BACKEND_FILE && strcmp(f, q->path) == 0));
}

static int ports_check_host(const struct options *o, const struct port_spec *p,
                            const struct port_spec *q, char *err, size_t errlen)
{
        /* Called both ways round: a logfile= against the other's files. */
        if (file_clash(p->logfile, q))
                return invalid(err, errlen, "--port logfile=%s: another port writes that file",
                               p->logfile);
        if (p->backend == BACKEND_FD && q->backend == BACKEND_FD && p->fd >= 0 && p->fd == q->fd)
                return invalid(err, errlen, "--port fd=%d is used twice", p->fd);
        (void)o;
        return 0;
}

static int option_check_host(const struct options *o, char *err, size_t errlen)
{
        for (size_t i = 0; i < o->nports; i++)
                if (o->ports[i].backend == BACKEND_FD && o->ports[i].fd >= 0 &&
                    o->ports[i].fd == o->socket_fd)
                        return invalid(err, errlen,
                                       "--port fd=%d is also --socket-fd", o->socket_fd);
        return 0;
}

/* ---- end of issue 13's cross-port checks ---------------------------------- */

/* Across ports: ids, names and endpoints unique, one stdio user, ids in range. */
static int ports_check(const struct options *o, char *err, size_t errlen)
{
        unsigned stdio = 0;

        for (size_t i = 0; i < o->nports; i++) {
                const struct port_spec *p = &o->ports[i];

                if (p->id >= 0 && (uint32_t)p->id >= o->max_ports)
                        return invalid(err, errlen, "--port id=%d: not below --max-ports %u",
                                       p->id, o->max_ports);
                stdio += p->backend == BACKEND_STDIO;
                for (size_t j = 0; j < i; j++) {
                        const struct port_spec *q = &o->ports[j];

                        if (p->id >= 0 && p->id == q->id)
                                return invalid(err, errlen, "--port id=%d is used twice", p->id);
                        if (p->name[0] && strcmp(p->name, q->name) == 0)
                                return invalid(err, errlen,
                                               "--port name=%s is used twice", p->name);
                        if (same_endpoint(p, q))
                                return invalid(err, errlen, "--port %s%s%s is used twice",
                                               p->path[0] ? "path=" : "port=", p->path,
                                               p->path[0] ? "" : p->host);
                        if (ports_check_host(o, p, q, err, errlen) < 0 ||
                            ports_check_host(o, q, p, err, errlen) < 0)
                                return -EINVAL;
                }
        }
        if (option_check_host(o, err, errlen) < 0)
                return -EINVAL;
        if (stdio > 1)
                return invalid(err, errlen, "only one port can use backend=stdio");
        if (o->nports > o->max_ports)
                return invalid(err, errlen, "%zu ports do not fit in --max-ports %u",
                               o->nports, o->max_ports);
        return 0;
}

void options_usage(FILE *out)
{
        fprintf(out,
                "Usage: vserial --socket PATH|--socket-fd N [--max-ports N] [--port SPEC]...\n"
                "               [--control PATH] [--instance NAME]\n"
                "               [--log-level error|warn|info|debug] [--config FILE]\n"
                "A virtio-serial (virtio-console) vhost-user backend.\n"
                "\n"
                "  -s, --socket PATH     listen for the VMM's vhost-user connection at PATH\n"
                "      --socket-fd N     ... on the listening unix socket N that the caller\n"
                "                        passed (systemd socket activation needs neither)\n"
                "  -m, --max-ports N     ports the device offers, 1..%u (default %u; the\n"
                "                        VMM needs 2*(N+1) rings, vhost-user names 256)\n"
                "  -p, --port SPEC       add a port; SPEC is a comma-separated key=value list:\n"
                "        id=N                  port number (default: next free; a console gets 0)\n"
                "        name=STR              name the guest sees (/sys/class/virtio-ports/*/name)\n"
                "        console               the guest binds the port to hvc\n"
                "        buffer=SIZE           guest output kept while the host side is away\n"
                "                              (default 1M; then the guest's writes wait)\n"
                "        backend=unix,path=P   listen on a unix socket (host clients: clients=)\n"
                "        backend=unix-connect,path=P  connect to a unix socket, reconnect\n"
                "        backend=tcp,port=N[,host=A]  listen on A:N (default 127.0.0.1)\n"
                "        backend=pty           a pseudo-terminal (its path is logged and listed)\n"
                "        backend=file,path=P[,input=F]  append guest output to P, send F\n"
                "        backend=stdio         the daemon's stdin and stdout\n"
                "        backend=null          discard output, no input\n"
                "        backend=tcp-connect,port=N[,host=A]  connect to A:N, reconnect\n"
                "        backend=fd[,fd=N]     fd N from the supervisor, or the socket systemd\n"
                "                              passes named like the port (LISTEN_FDNAMES)\n"
                "        backend=journal[,journal-priority=P]  each output line a journal entry\n"
                "        history=SIZE          last guest output kept for vserialctl history\n"
                "                              (default 64K for consoles, else 0)\n"
                "        logfile=PATH[,logfile-timestamps=on]  all guest output also appended\n"
                "                              to PATH (reopened on SIGHUP)\n"
                "        clients=N             unix, tcp: serve N host clients at once (default\n"
                "                              1); more wait in the listen backlog, in order\n"
                "        on-connect=replay|discard  what a new host client gets first: the\n"
                "                              output no client has had (default) or nothing\n"
                "  -c, --control PATH    control socket for vserialctl\n"
                "  -l, --log-level L     error, warn, info (default) or debug\n"
                "  -i, --instance NAME   the instance in journal entries and metrics (default:\n"
                "                        the --config file's or --socket's name)\n"
                "  -u, --user USER       after set-up, run as USER (needs root)\n"
                "      --allow-path DIR  ports added at run time may also use paths under DIR\n"
                "                        (besides the control socket's directory)\n"
                "      --allow-tcp       ports added at run time may be backend=tcp\n"
                "      --allow-connect   ports added at run time may be backend=unix-connect\n"
                "      --no-sandbox      no confinement after set-up (for debugging)\n"
                "  -f, --config FILE     options from FILE, one per line without the dashes\n"
                "                        (\"port name=x,backend=pty\"); the command line adds to it\n"
                "  -h, --help            this text\n"
                "  -V, --version         print the version\n",
                OPT_MAX_PORTS, VS_DEFAULT_MAX_PORTS);
}

/* getopt values of options with no short form */
#define OPT_NO_SANDBOX 0x100
#define OPT_ALLOW_PATH 0x101
#define OPT_ALLOW_TCP 0x102
#define OPT_ALLOW_CONNECT 0x103
#define OPT_SOCKET_FD 0x110   /* clear of other long-only options */

/* A label value and a journal field: short, printable, no spaces. */
static bool instance_ok(const char *s)
{
        size_t n = strlen(s);

        return n >= 1 && n <= OPT_INSTANCE_MAX &&
               strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@:-") == n;
}

static int parse_instance(struct options *o, const char *arg, char *err, size_t errlen)
{
        if (!instance_ok(arg))
                return invalid(err, errlen, "--instance '%s': 1..%d of A-Z a-z 0-9 _ . @ : -", arg,
                               OPT_INSTANCE_MAX);
        o->instance = arg;
        return 0;
}

/* No --instance: the --config file's name without .conf (vserial@NAME
 * reads /etc/vserial/NAME.conf), else the VMM socket's without .sock. */
static void default_instance(struct options *o)
{
        const char *from = o->config_path ? o->config_path : o->socket_path;
        const char *base, *dot;
        size_t n;

        if (o->instance)
                return;
        o->instance = "vserial";
        if (!from)
                return;
        base = strrchr(from, '/') ? strrchr(from, '/') + 1 : from;
        dot = strrchr(base, '.');
        n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
        if (n == 0 || n > OPT_INSTANCE_MAX)
                return;
        memcpy(o->instance_buf, base, n);
        o->instance_buf[n] = '\0';
        if (instance_ok(o->instance_buf))
                o->instance = o->instance_buf;
}

static int parse_one(struct options *o, int c, const char *arg, char *err,
                     size_t errlen)
{
        unsigned long v;
        char why[256];

        switch (c) {
        case 's':
                o->socket_path = arg;
                return 0;
        case 'c':
                o->control_path = arg;
                return 0;
        case 'f':
                return 0;       /* read before everything else */
        case 'u':
                o->user = arg;
                return 0;
        case 'i':
                return parse_instance(o, arg, err, errlen);
        case OPT_NO_SANDBOX:
                o->no_sandbox = true;
                return 0;
        case OPT_SOCKET_FD:
                if (parse_uint(arg, 0, 0x7fffffff, &v) < 0)
                        return invalid(err, errlen,
                                       "--socket-fd '%s': expected a file descriptor number",
                                       arg);
                o->socket_fd = (int)v;
                return 0;
        case OPT_ALLOW_PATH:
                if (!*arg)
                        return invalid(err, errlen, "--allow-path needs a directory");
                if (o->nallow_paths == OPT_MAX_ALLOW_PATHS)
                        return invalid(err, errlen, "--allow-path: more than %d directories",
                                       OPT_MAX_ALLOW_PATHS);
                o->allow_paths[o->nallow_paths++] = arg;
                return 0;
        case OPT_ALLOW_TCP:
                o->allow_tcp = true;
                return 0;
        case OPT_ALLOW_CONNECT:
                o->allow_connect = true;
                return 0;
        case 'm':
                /* 2 x (N + 1) rings, and SET_VRING_KICK/CALL name one with
                 * 8 bits: rings 256 and up would alias rings 0 and 1. */
                if (parse_uint(arg, 1, OPT_MAX_PORTS, &v) < 0)
                        return invalid(err, errlen, "--max-ports '%s': expected a number in 1..%u "
                                       "(vhost-user names at most 256 rings, 2 x (%u + 1))",
                                       arg, OPT_MAX_PORTS, OPT_MAX_PORTS);
                o->max_ports = v;
                return 0;
        case 'l':
                o->log_level = log_level_parse(arg);
                if (o->log_level < 0)
                        return invalid(err, errlen, "--log-level '%s': expected error, warn, "
                                       "info or debug", arg);
                return 0;
        case 'p':
                if (o->nports == OPT_MAX_PORTS_SPECS)
                        return invalid(err, errlen, "--port: more than %u ports", OPT_MAX_PORTS);
                if (spec_parse(arg, &o->ports[o->nports], why, sizeof(why)) < 0)
                        return invalid(err, errlen, "--port '%s': %s", arg, why);
                o->nports++;
                return 0;
        default:
                return invalid(err, errlen, "unknown option (see --help)");
        }
}

static const struct option longopts[] = {
        { "user", required_argument, NULL, 'u' },
        { "instance", required_argument, NULL, 'i' },
        { "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
        { "allow-path", required_argument, NULL, OPT_ALLOW_PATH },
        { "allow-tcp", no_argument, NULL, OPT_ALLOW_TCP },
        { "allow-connect", no_argument, NULL, OPT_ALLOW_CONNECT },
        { "socket", required_argument, NULL, 's' },
        { "socket-fd", required_argument, NULL, OPT_SOCKET_FD },
        { "max-ports", required_argument, NULL, 'm' },
        { "port", required_argument, NULL, 'p' },
        { "control", required_argument, NULL, 'c' },
        { "log-level", required_argument, NULL, 'l' },
        { "config", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        {}
};

/* One getopt pass over @argv; @where names the source in errors. */
static int parse_args(struct options *o, int argc, char **argv, const char *where,
                      char *err, size_t errlen)
{
        char why[512];
        int c, r;

        /* 0, not 1: glibc then also forgets where it was in an earlier argv */
        int prev = 1;

        optind = 0;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":s:m:p:c:l:f:u:i:hV", longopts, NULL)) != -1) {
                /* A config line is one "--key=value": never take the next. */
                if (*where && optind - prev > 1)
                        return invalid(err, errlen, "%s%s needs a value", where, argv[prev]);
                prev = optind;
                if (c == 'h' || c == 'V') {
                        if (c == 'h')
                                options_usage(stdout);
                        else
                                printf("vserial %s\n", vserial_version());
                        return 1;
                }
                if (c == ':')
                        r = invalid(why, sizeof(why), "%s needs an argument", argv[optind - 1]);
                else if (c == '?')
                        r = invalid(why, sizeof(why), "unknown option '%s' (see --help)",
                                    argv[optind - 1]);
                else
                        r = parse_one(o, c, optarg, why, sizeof(why));
                if (r < 0)
                        return invalid(err, errlen, "%s%s", where, why);
        }
        if (optind < argc)
                return invalid(err, errlen, "%sunexpected argument '%s'", where, argv[optind]);
        return 0;
}

/* The value of --config/-f in argv, or NULL. */
static const char *find_config(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        break;
                if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-f") == 0) &&
                    i + 1 < argc)
                        return argv[i + 1];
                if (strncmp(argv[i], "--config=", 9) == 0)
                        return argv[i] + 9;
        }
        return NULL;
}

#define CONFIG_MAX (1u << 20)
#define CONFIG_MAX_ARGS 4096

static int read_config(struct options *o, const char *path, char *err, size_t errlen)
{
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f)
                return invalid(err, errlen, "--config %s: %s", path, strerror(errno));
        o->config_text = malloc(CONFIG_MAX + 1);
        n = o->config_text ? fread(o->config_text, 1, CONFIG_MAX + 1, f) : 0;
        fclose(f);
        if (!o->config_text || n > CONFIG_MAX)
                return invalid(err, errlen, "--config %s: larger than 1 MiB", path);
        o->config_text[n] = '\0';
        return 0;
}

/* One config line as "--key=value" (or "--key"); NULL for blank/comment. */
static char *config_arg(char *line)
{
        char *key, *val, *arg;

        line += strspn(line, " \t\r");
        if (*line == '#' || *line == '\0')
                return NULL;
        key = line;
        val = key + strcspn(key, " \t=");
        if (*val) {
                *val++ = '\0';
                val += strspn(val, " \t=");
        }
        for (char *e = val + strlen(val); e > val && strchr(" \t\r", e[-1]); e--)
                e[-1] = '\0';
        if (asprintf(&arg, *val ? "--%s=%s" : "--%s", key, val) < 0)
                return NULL;
        return arg;
}

static int parse_config(struct options *o, const char *path, char *err, size_t errlen)
{
        char where[600], *save = NULL;
        int r = read_config(o, path, err, errlen);

        o->config_args = calloc(CONFIG_MAX_ARGS + 1, sizeof(char *));
        if (r == 0 && !o->config_args)
                r = invalid(err, errlen, "--config: out of memory");
        if (r < 0)
                return r;
        o->config_args[o->config_nargs++] = strdup("vserial");
        for (char *l = strtok_r(o->config_text, "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
                char *arg = config_arg(l);

                if (!arg)
                        continue;
                if (o->config_nargs == CONFIG_MAX_ARGS) {
                        free(arg);
                        return invalid(err, errlen, "--config %s: more than %d options", path,
                                       CONFIG_MAX_ARGS - 1);
                }
                o->config_args[o->config_nargs++] = arg;
        }
        snprintf(where, sizeof(where), "%s: ", path);
        return parse_args(o, o->config_nargs, o->config_args, where, err, errlen);
}

void options_free(struct options *o)
{
        for (int i = 0; i < o->config_nargs; i++)
                free(o->config_args[i]);
        free(o->config_args);
        free(o->config_text);
        o->config_args = NULL;
        o->config_nargs = 0;
        o->config_text = NULL;
}

int options_parse(int argc, char **argv, struct options *o, char *err,
                  size_t errlen)
{
        const char *config = find_config(argc, argv);
        int r = 0;

        memset(o, 0, sizeof(*o));
        o->config_path = config;
        o->max_ports = VS_DEFAULT_MAX_PORTS;
        o->log_level = LOG_LEVEL_INFO;
        o->socket_fd = -1;
        if (config)
                r = parse_config(o, config, err, errlen);
        if (r == 0)
                r = parse_args(o, argc, argv, "", err, errlen);
        if (r != 0)
                return r;
        if (o->socket_path && !*o->socket_path)
                return invalid(err, errlen, "--socket needs a path");
        if (o->socket_path && o->socket_fd >= 0)
                return invalid(err, errlen, "--socket and --socket-fd both name the VMM socket: "
                               "give one");
        /* Socket activation is checked in full later (service.c). */
        if (!o->socket_path && o->socket_fd < 0 && !getenv("LISTEN_FDS"))
                return invalid(err, errlen, "--socket PATH is required (or --socket-fd N, "
                               "or systemd socket activation)");
        default_instance(o);
        return ports_check(o, err, errlen);
}
