/* SPDX-License-Identifier: MIT */
/*
 * vserialctl: talk to a running vserial daemon over its control socket.
 *
 *   vserialctl [-c PATH] list [--json]
 *   vserialctl [-c PATH] add SPEC [--json]
 *   vserialctl [-c PATH] remove ID|NAME
 *   vserialctl [-c PATH] resize ID|NAME COLS ROWS
 *   vserialctl [-c PATH] events [--json]
 *   vserialctl [-c PATH] attach [--read-only|--write] ID|NAME
 *   vserialctl [-c PATH] stats [--json|--prometheus]
 *   vserialctl [-c PATH] history ID|NAME [--follow] [--bytes N]
 *   vserialctl [-c PATH] reopen
 *   vserialctl [-c PATH] unplug ID|NAME
 *   vserialctl [-c PATH] plug ID|NAME
 *
 * Exit status: 0 done, 1 the daemon refused or cannot be reached, 2 bad
 * usage. Every failure is one line on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bytes.h"
#include "version.h"

#define DEFAULT_CONTROL "/run/vserial/control.sock"
#define ESCAPE_CHAR 0x1d        /* Ctrl-] */
#define IO_CHUNK (64u * 1024)
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *control_path;
static bool opt_json;
static bool opt_prometheus;     /* stats */
static bool opt_follow;         /* history */
static long long opt_bytes = -1;        /* history: -1 = all it holds */
static const char *opt_mode;    /* attach: "read-only" or "write" */

static void usage(FILE *out)
{
        fprintf(out,
                "Usage: vserialctl [-c PATH] COMMAND [ARGS]\n"
                "Control a running vserial daemon through its control socket.\n"
                "\n"
                "Commands:\n"
                "  list [--json]              the ports and their state\n"
                "  add SPEC [--json]          add a port (SPEC as for vserial --port)\n"
                "  remove ID|NAME             remove a port\n"
                "  resize ID|NAME COLS ROWS   set a console port's size\n"
                "  events [--json]            print events until interrupted\n"
                "  attach ID|NAME             be the port's host side on this terminal\n"
                "                             (Ctrl-] detaches; without a terminal, stdin\n"
                "                             is sent until its end)\n"
                "      --read-only            ... as a reader only (clients= ports): output\n"
                "                             only, nothing typed is sent\n"
                "      --write                ... as the port's writer (its input), taking\n"
                "                             over from the client that had it\n"
                "  stats [--json|--prometheus]  the daemon's counters (--prometheus: the\n"
                "                             text format of node-exporter's textfile collector)\n"
                "  history ID|NAME [--follow] [--bytes N]\n"
                "                             the port's recent output (history=); --follow\n"
                "                             then prints new output until interrupted\n"
                "  reopen                     open the ports' files again (after logrotate)\n"
                "  unplug ID|NAME             the guest loses the port; its host side stays\n"
                "  plug ID|NAME               the guest gets an unplugged port back\n"
                "\n"
                "Options:\n"
                "  -c, --control PATH  the daemon's control socket (default: $VSERIAL_CONTROL,\n"
                "                      else " DEFAULT_CONTROL ")\n"
                "  -j, --json          print the daemon's JSON (list, add, events, stats)\n"
                "  -P, --prometheus    stats in the Prometheus text format\n"
                "  -f, --follow        history: go on printing new output\n"
                "  -n, --bytes N       history: at most the last N bytes\n"
                "  -h, --help          this text\n"
                "  -V, --version       print the version\n"
                "\n"
                "A port is named by its id (digits) or its name.\n"
                "Exit status: 0 done, 1 the daemon refused or is unreachable, 2 bad usage.\n");
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
        va_list ap;

        fputs("vserialctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (see vserialctl --help)\n", stderr);
        exit(2);
}

/* Set while the terminal is raw, so that every exit restores it. */
static bool term_raw;
static struct termios term_saved;

static void term_restore(void)
{
        if (term_raw) {
                tcsetattr(STDIN_FILENO, TCSANOW, &term_saved);
                term_raw = false;
        }
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
        va_list ap;

        term_restore();
        fflush(stdout);
        fputs("vserialctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

/* ---- the connection ----------------------------------------------------- */

struct conn {
        int fd;
        char *buf;              /* received, not yet consumed */
        size_t len, cap;
        bool eof;
};

static void conn_open(struct conn *c)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        memset(c, 0, sizeof(*c));
        if (strlen(control_path) >= sizeof(sa.sun_path))
                die("control socket path too long: %s", control_path);
        strcpy(sa.sun_path, control_path);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                die("socket: %s", strerror(errno));
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("cannot connect to %s: %s%s", control_path, strerror(errno),
                    errno == ENOENT ? " (is vserial running with --control?)" : "");
}

/* The next line (without its newline), or NULL at EOF. Blocking; when
 * @sigfd (a signalfd, or -1) becomes readable first, NULL and *@signalled. */
static char *conn_line(struct conn *c, int sigfd, bool *signalled)
{
        for (;;) {
                char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
                ssize_t n;

                if (nl) {
                        size_t l = nl - c->buf;
                        char *line = malloc(l + 1);

                        if (!line)
                                die("out of memory");
                        memcpy(line, c->buf, l);
                        line[l] = '\0';
                        c->len -= l + 1;
                        memmove(c->buf, nl + 1, c->len);
                        return line;
                }
                if (c->eof)
                        return NULL;
                if (c->cap - c->len < IO_CHUNK) {
                        c->cap = c->cap ? c->cap * 2 : 2 * IO_CHUNK;
                        c->buf = realloc(c->buf, c->cap);
                        if (!c->buf)
                                die("out of memory");
                }
                if (sigfd >= 0) {
                        struct pollfd pf[2] = { { .fd = c->fd, .events = POLLIN },
                                                { .fd = sigfd, .events = POLLIN } };

                        if (poll(pf, 2, -1) < 0 && errno != EINTR)
                                die("poll: %s", strerror(errno));
                        if (pf[1].revents) {
                                *signalled = true;
                                return NULL;
                        }
                        if (!pf[0].revents)
                                continue;
                }
                n = read(c->fd, c->buf + c->len, c->cap - c->len);
                if (n > 0) {
                        c->len += n;
                } else if (n == 0 || errno == ECONNRESET) {
                        c->eof = true;
                } else if (errno != EINTR) {
                        die("reading from %s: %s", control_path, strerror(errno));
                }
        }
}

/* A line from the daemon as an object; frees @line. */
static json_object *parse(char *line)
{
        json_object *o = json_tokener_parse(line);
        char head[81];

        if (!o || !json_object_is_type(o, json_type_object)) {
                snprintf(head, sizeof(head), "%s", line);
                free(line);
                json_object_put(o);
                die("the daemon sent something that is not a JSON object: %s", head);
        }
        free(line);
        return o;
}

/* Send @req (consumed); wait for the reply; exit 1 with its error if not ok. */
static json_object *request(struct conn *c, json_object *req)
{
        const char *s = json_object_to_json_string_ext(req, JSON_FLAGS);
        size_t len = strlen(s), done = 0;
        bool broken = false;
        json_object *reply, *v;
        char *line;

        while (done < len + 1 && !broken) {
                const char *p = done < len ? s + done : "\n";
                ssize_t n = send(c->fd, p, done < len ? len - done : 1, MSG_NOSIGNAL);

                if (n > 0)
                        done += n;
                else if (errno != EINTR)
                        broken = true;  /* a refusal may be waiting: read it */
        }
        json_object_put(req);
        /* Events of a subscribed connection may come first. */
        do {
                line = conn_line(c, -1, NULL);
                if (!line)
                        die("the daemon closed the connection without replying");
                reply = parse(line);
                if (json_object_object_get_ex(reply, "ok", &v))
                        break;
                json_object_put(reply);
        } while (1);
        if (!json_object_get_boolean(v)) {
                static char err[1024];

                snprintf(err, sizeof(err), "%s", json_object_object_get_ex(reply, "error", &v) ?
                         json_object_get_string(v) : "request refused");
                json_object_put(reply);
                die("%s", err);
        }
        return reply;
}

static json_object *cmd_req(const char *cmd)
{
        json_object *o = json_object_new_object();

        json_object_object_add(o, "cmd", json_object_new_string(cmd));
        return o;
}

/* "3" -> 3, anything else -> "name". */
static json_object *port_ref(const char *arg)
{
        char *end;
        long v;

        if (!*arg)
                die_usage("empty port id or name");
        if (strspn(arg, "0123456789") == strlen(arg)) {
                errno = 0;
                v = strtol(arg, &end, 10);
                if (errno || v > 1000000)
                        die_usage("port id '%s' is out of range", arg);
                return json_object_new_int64(v);
        }
        return json_object_new_string(arg);
}

static const char *str_of(json_object *o, const char *key)
{
        json_object *v;

        return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static long long int_of(json_object *o, const char *key)
{
        json_object *v;

        return json_object_object_get_ex(o, key, &v) ? (long long)json_object_get_int64(v) : 0;
}

static bool bool_of(json_object *o, const char *key)
{
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static void print_json(json_object *o, int flags)
{
        puts(json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---- list, add, remove, resize ------------------------------------------ */

#define NCOLS 10

/* GUEST: open, closed, or unplugged (the daemon keeps its host side). */
static const char *guest_cell(json_object *p)
{
        json_object *v;

        if (json_object_object_get_ex(p, "plugged", &v) && !json_object_get_boolean(v))
                return "unplugged";
        return bool_of(p, "guest_open") ? "open" : "closed";
}

/* HOST: "connected", or how many clients when several are (clients=). */
static char *host_cell(json_object *p)
{
        char *s = NULL;
        long long n = int_of(p, "clients");

        if (n > 1 && asprintf(&s, "%lld clients", n) < 0)
                return NULL;
        return s ? s : strdup(bool_of(p, "host_connected") ? "connected" : "-");
}

static void print_table(json_object *ports)
{
        static const char *const head[NCOLS] = {
                "ID", "NAME", "KIND", "BACKEND", "GUEST", "HOST", "THROTTLED",
                "TO-GUEST", "FROM-GUEST", "BUFFERED",
        };
        static const bool right[NCOLS] = { true, false, false, false, false, false, false,
                                           true, true, true };
        size_t n = json_object_array_length(ports);
        char *(*cell)[NCOLS] = calloc(n + 1, sizeof(*cell));
        size_t width[NCOLS] = { 0 };

        if (!cell)
                die("out of memory");
        for (int k = 0; k < NCOLS; k++)
                cell[0][k] = strdup(head[k]);
        for (size_t i = 0; i < n; i++) {
                json_object *p = json_object_array_get_idx(ports, i);
                char **r = cell[i + 1];
                const char *name = str_of(p, "name");

                if (asprintf(&r[0], "%lld", int_of(p, "id")) < 0 ||
                    !(r[1] = strdup(*name ? name : "-")) ||
                    !(r[2] = strdup(bool_of(p, "console") ? "console" : "port")) ||
                    !(r[3] = strdup(str_of(p, "backend"))) ||
                    !(r[4] = strdup(guest_cell(p))) ||
                    !(r[5] = host_cell(p)) ||
                    !(r[6] = strdup(bool_of(p, "throttled") ? "yes" : "no")) ||
                    asprintf(&r[7], "%lld", int_of(p, "to_guest")) < 0 ||
                    asprintf(&r[8], "%lld", int_of(p, "from_guest")) < 0 ||
                    asprintf(&r[9], "%lld", int_of(p, "buffered")) < 0)
                        die("out of memory");
        }
        for (size_t i = 0; i <= n; i++)
                for (int k = 0; k < NCOLS; k++)
                        if (strlen(cell[i][k]) > width[k])
                                width[k] = strlen(cell[i][k]);
        for (size_t i = 0; i <= n; i++) {
                for (int k = 0; k < NCOLS; k++) {
                        int w = (int)width[k];

                        if (k == NCOLS - 1 && !right[k])
                                printf("%s", cell[i][k]);
                        else if (k == NCOLS - 1)
                                printf("%*s", w, cell[i][k]);
                        else if (right[k])
                                printf("%*s  ", w, cell[i][k]);
                        else
                                printf("%-*s  ", w, cell[i][k]);
                        free(cell[i][k]);
                }
                putchar('\n');
        }
        free(cell);
}

/* Connections live in static storage: what they hold stays reachable. */
static struct conn conn;

static int do_list(const char *cmd, char **args)
{
        json_object *reply, *ports;

        (void)args;
        conn_open(&conn);
        reply = request(&conn, cmd_req(cmd));
        if (!json_object_object_get_ex(reply, "ports", &ports) ||
            !json_object_is_type(ports, json_type_array)) {
                json_object_put(reply);
                die("the daemon's list reply has no \"ports\" array");
        }
        if (opt_json)
                print_json(ports, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
        else
                print_table(ports);
        json_object_put(reply);
        return 0;
}

static int do_add(const char *cmd, char **args)
{
        json_object *req = cmd_req(cmd), *reply, *port;

        json_object_object_add(req, "spec", json_object_new_string(args[0]));
        conn_open(&conn);
        reply = request(&conn, req);
        if (!json_object_object_get_ex(reply, "port", &port)) {
                json_object_put(reply);
                die("the daemon's add reply has no \"port\"");
        }
        if (opt_json)
                print_json(port, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
        else if (*str_of(port, "name"))
                printf("added port %lld (%s)\n", int_of(port, "id"), str_of(port, "name"));
        else
                printf("added port %lld\n", int_of(port, "id"));
        json_object_put(reply);
        return 0;
}

/* remove, unplug, plug: a port, and an empty reply. */
static int do_port_cmd(const char *cmd, char **args)
{
        json_object *req = cmd_req(cmd);

        json_object_object_add(req, "port", port_ref(args[0]));
        conn_open(&conn);
        json_object_put(request(&conn, req));
        return 0;
}

/* "key=value key=value" of an object's scalar members; those of an object
 * member as "key.sub=value". */
static void print_scalars(json_object *o, const char *prefix, const char **sep)
{
        json_object_object_foreach(o, key, val) {
                if (json_object_is_type(val, json_type_object)) {
                        char sub[64];

                        snprintf(sub, sizeof(sub), "%s%s.", prefix, key);
                        print_scalars(val, sub, sep);
                        continue;
                }
                if (json_object_is_type(val, json_type_array))
                        continue;
                printf("%s%s%s=%s", *sep, prefix, key, json_object_get_string(val));
                *sep = " ";
        }
}

static void print_members(json_object *o)
{
        const char *sep = "";

        print_scalars(o, "", &sep);
        putchar('\n');
}

/* The Prometheus text, as the daemon made it. */
static int do_stats_prometheus(void)
{
        json_object *req = cmd_req("stats"), *reply, *text;

        json_object_object_add(req, "format", json_object_new_string("prometheus"));
        conn_open(&conn);
        reply = request(&conn, req);
        if (!json_object_object_get_ex(reply, "prometheus", &text) ||
            !json_object_is_type(text, json_type_string)) {
                json_object_put(reply);
                die("the daemon's stats reply has no \"prometheus\" text");
        }
        fputs(json_object_get_string(text), stdout);
        json_object_put(reply);
        return 0;
}

/* One line per section; arrays (the ports) one line per element. */
static int do_stats(const char *cmd, char **args)
{
        json_object *reply, *st;

        (void)args;
        if (opt_prometheus)
                return do_stats_prometheus();
        conn_open(&conn);
        reply = request(&conn, cmd_req(cmd));
        if (!json_object_object_get_ex(reply, "stats", &st) ||
            !json_object_is_type(st, json_type_object)) {
                json_object_put(reply);
                die("the daemon's stats reply has no \"stats\" object");
        }
        if (opt_json) {
                print_json(st, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
                json_object_put(reply);
                return 0;
        }
        json_object_object_foreach(st, key, val) {
                if (json_object_is_type(val, json_type_object)) {
                        printf("%s: ", key);
                        print_members(val);
                } else if (json_object_is_type(val, json_type_array)) {
                        for (size_t i = 0; i < json_object_array_length(val); i++) {
                                printf("%s: ", key);
                                print_members(json_object_array_get_idx(val, i));
                        }
                }
        }
        json_object_put(reply);
        return 0;
}

static long parse_dim(const char *what, const char *s)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (!*s || *end || errno || v < 0 || v > 65535 || *s == '-' || *s == '+')
                die_usage("%s '%s' is not a number in 0..65535", what, s);
        return v;
}

static json_object *resize_req(json_object *port, long cols, long rows)
{
        json_object *req = cmd_req("resize");

        json_object_object_add(req, "port", port);
        json_object_object_add(req, "cols", json_object_new_int64(cols));
        json_object_object_add(req, "rows", json_object_new_int64(rows));
        return req;
}

static int do_resize(const char *cmd, char **args)
{
        long c = parse_dim("COLS", args[1]), r = parse_dim("ROWS", args[2]);
        json_object *ref = port_ref(args[0]);

        (void)cmd;      /* resize_req() names it */
        conn_open(&conn);
        json_object_put(request(&conn, resize_req(ref, c, r)));
        return 0;
}

/* ---- events ------------------------------------------------------------- */

/* SIGINT, SIGTERM and SIGHUP, blocked, as a signalfd. */
static int signals_fd(bool winch)
{
        sigset_t set;
        int fd;

        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        if (winch)
                sigaddset(&set, SIGWINCH);
        sigprocmask(SIG_BLOCK, &set, NULL);
        fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (fd < 0)
                die("signalfd: %s", strerror(errno));
        return fd;
}

static int do_events(const char *cmd, char **args)
{
        int sigfd = signals_fd(false);
        bool signalled = false;
        char *line;

        (void)cmd;      /* the request is "subscribe" */
        (void)args;
        setvbuf(stdout, NULL, _IOLBF, 0);
        conn_open(&conn);
        json_object_put(request(&conn, cmd_req("subscribe")));
        while ((line = conn_line(&conn, sigfd, &signalled))) {
                json_object *ev;

                if (opt_json)
                        puts(line);
                ev = parse(line);
                if (!opt_json && json_object_object_get_ex(ev, "port", NULL)) {
                        printf("%-6lld %-16s port %lld", int_of(ev, "seq"), str_of(ev, "event"),
                               int_of(ev, "port"));
                        if (*str_of(ev, "name"))
                                printf(" (%s)", str_of(ev, "name"));
                        /* Host connections: which client, how many bytes. */
                        if (int_of(ev, "client"))
                                printf(" client %lld", int_of(ev, "client"));
                        if (int_of(ev, "bytes"))
                                printf(" %lld bytes", int_of(ev, "bytes"));
                        putchar('\n');
                } else if (!opt_json) {
                        printf("%-6lld %s\n", int_of(ev, "seq"), str_of(ev, "event"));
                }
                json_object_put(ev);
        }
        close(sigfd);
        if (signalled)
                return 0;
        die("the daemon closed the connection");
}

/* ---- attach ------------------------------------------------------------- */

struct attach {
        struct conn ctl;        /* becomes the port's byte stream */
        struct conn rsz;        /* resize requests, for a console on a tty */
        bool tty, console;
        long long id;
        char name[256];
        char label[300];        /* "port 3 (org.x)" */
        int sigfd;
        char out[IO_CHUNK];     /* stdin bytes not yet sent */
        size_t out_len;
        bool in_eof, shut;
        bool read_only;         /* nothing is sent to the port */
};

static void write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);

                if (w > 0) {
                        p += w;
                        n -= w;
                } else if (w < 0 && errno == EINTR) {
                        continue;
                } else if (w < 0 && errno == EAGAIN) {
                        struct pollfd pf = { .fd = fd, .events = POLLOUT };

                        poll(&pf, 1, -1);
                } else {
                        die("write: %s", strerror(errno));
                }
        }
}

static void send_size(struct attach *a)
{
        struct winsize ws;
        const char *s;
        json_object *req;

        if (!a->tty || !a->console || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
                return;
        req = resize_req(json_object_new_int64(a->id), ws.ws_col, ws.ws_row);
        s = json_object_to_json_string_ext(req, JSON_FLAGS);
        if (send(a->rsz.fd, s, strlen(s), MSG_NOSIGNAL) < 0 ||
            send(a->rsz.fd, "\n", 1, MSG_NOSIGNAL) < 0) {
                fprintf(stderr, "vserialctl: resize: %s\r\n", strerror(errno));
                a->console = false;     /* no more resizes */
        }
        json_object_put(req);
}

/* Replies to resize requests: only errors are worth a word. */
static void read_resize_replies(struct attach *a)
{
        char buf[4096];
        ssize_t n = read(a->rsz.fd, buf, sizeof(buf));
        char *nl;

        if (n <= 0) {
                a->console = false;     /* no more resizes */
                return;
        }
        if (a->rsz.cap - a->rsz.len < (size_t)n) {
                a->rsz.cap = a->rsz.len + n + 4096;
                if (!(a->rsz.buf = realloc(a->rsz.buf, a->rsz.cap)))
                        die("out of memory");
        }
        memcpy(a->rsz.buf + a->rsz.len, buf, n);
        a->rsz.len += n;
        while ((nl = memchr(a->rsz.buf, '\n', a->rsz.len))) {
                json_object *r, *v;

                *nl = '\0';
                r = json_tokener_parse(a->rsz.buf);
                if (r && json_object_object_get_ex(r, "ok", &v) && !json_object_get_boolean(v))
                        fprintf(stderr, "vserialctl: resize: %s\r\n", str_of(r, "error"));
                json_object_put(r);
                a->rsz.len -= nl + 1 - a->rsz.buf;
                memmove(a->rsz.buf, nl + 1, a->rsz.len);
        }
}

static void flush_out(struct attach *a)
{
        while (a->out_len) {
                ssize_t n = send(a->ctl.fd, a->out, a->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n > 0) {
                        memmove(a->out, a->out + n, a->out_len - n);
                        a->out_len -= n;
                } else if (n < 0 && errno == EINTR) {
                        continue;
                } else if (n < 0 && errno == EAGAIN) {
                        return;
                } else {
                        /* The port went away; its EOF tells the rest. */
                        a->out_len = 0;
                        a->in_eof = true;
                        return;
                }
        }
        /* A reader's end would end it: the daemon closes a reader that is
         * done sending. */
        if (a->in_eof && !a->shut && !a->read_only) {
                shutdown(a->ctl.fd, SHUT_WR);
                a->shut = true;
        }
}

static void detach(struct attach *a)
{
        flush_out(a);
        term_restore();
        fprintf(stderr, "\nvserialctl: detached from %s\n", a->label);
        exit(0);
}

/* Typed bytes to the port; Ctrl-] on a terminal detaches. A read-only
 * attach only looks for Ctrl-]. */
static void read_stdin(struct attach *a)
{
        ssize_t n = read(STDIN_FILENO, a->out + a->out_len, sizeof(a->out) - a->out_len);
        char *esc;

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n <= 0) {
                a->in_eof = true;
                return;
        }
        esc = a->tty ? memchr(a->out + a->out_len, ESCAPE_CHAR, n) : NULL;
        if (esc) {
                a->out_len = a->read_only ? 0 : esc - a->out;
                detach(a);
        }
        if (!a->read_only)
                a->out_len += n;
}

static void read_port(struct attach *a)
{
        char buf[IO_CHUNK];
        ssize_t n = read(a->ctl.fd, buf, sizeof(buf));

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n > 0) {
                write_all(STDOUT_FILENO, buf, n);
                return;
        }
        term_restore();
        if (a->shut)
                exit(0);        /* our input ended, and then the port's output */
        die("%s: connection closed by the daemon (port removed, daemon stopped, or a "
            "read-only attach a whole buffer behind)", a->label);
}

static void on_sig(struct attach *a)
{
        struct signalfd_siginfo si;

        if (read(a->sigfd, &si, sizeof(si)) != sizeof(si))
                return;
        if (si.ssi_signo == SIGWINCH) {
                send_size(a);
                return;
        }
        term_restore();
        fprintf(stderr, "\nvserialctl: signal %u: detached from %s\n", si.ssi_signo, a->label);
        exit(0);
}

/* Find the port's id and kind (resizes name it by id). False if unknown. */
static bool find_port(struct conn *c, const char *arg, struct attach *a)
{
        json_object *ref = port_ref(arg), *ports = NULL, *list;
        bool by_id = json_object_is_type(ref, json_type_int), found = false;

        list = request(c, cmd_req("list"));
        json_object_object_get_ex(list, "ports", &ports);
        for (size_t i = 0; ports && i < json_object_array_length(ports) && !found; i++) {
                json_object *p = json_object_array_get_idx(ports, i);

                if (by_id ? int_of(p, "id") == json_object_get_int64(ref) :
                            strcmp(str_of(p, "name"), arg) == 0) {
                        found = true;
                        a->id = int_of(p, "id");
                        a->console = bool_of(p, "console");
                        snprintf(a->name, sizeof(a->name), "%s", str_of(p, "name"));
                }
        }
        json_object_put(ref);
        json_object_put(list);
        return found;
}

/* "port 3 (org.x)", or as given if the list did not know it. */
static void attach_label(struct attach *a, bool known, const char *port)
{
        if (known)
                snprintf(a->label, sizeof(a->label), "port %lld%s%s%s", a->id,
                         a->name[0] ? " (" : "", a->name, a->name[0] ? ")" : "");
        else
                snprintf(a->label, sizeof(a->label), "port %s", port);
}

/* Ask for the port: from the reply on, a->ctl is the port's byte stream. */
static void attach_request(struct attach *a, const char *port)
{
        json_object *req = cmd_req("attach");
        bool known;

        conn_open(&a->ctl);
        known = find_port(&a->ctl, port, a);
        /* The daemon has the last word on unknown ports. */
        json_object_object_add(req, "port", port_ref(port));
        if (opt_mode)
                json_object_object_add(req, "mode", json_object_new_string(opt_mode));
        json_object_put(request(&a->ctl, req));
        attach_label(a, known, port);
        /* Sizes go to a console the list knew (not one added since), from
         * a terminal. */
        a->console = a->console && known && a->tty;
        if (a->console)
                conn_open(&a->rsz);
        fcntl(a->ctl.fd, F_SETFL, fcntl(a->ctl.fd, F_GETFL) | O_NONBLOCK);
}

/* The terminal passes every key to the port (term_restore() undoes it). */
static void term_make_raw(const struct attach *a)
{
        struct termios raw;

        fprintf(stderr, "vserialctl: attached to %s%s; Ctrl-] detaches\n", a->label,
                a->read_only ? " read-only" : "");
        if (tcgetattr(STDIN_FILENO, &term_saved) < 0)
                die("tcgetattr: %s", strerror(errno));
        raw = term_saved;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
                die("tcsetattr: %s", strerror(errno));
        term_raw = true;
        atexit(term_restore);
}

/* Bytes both ways until the port, a signal or Ctrl-] ends it (exit). */
static void attach_loop(struct attach *a) __attribute__((noreturn));

static void attach_loop(struct attach *a)
{
        for (;;) {
                struct pollfd pf[4] = {
                        { .fd = a->ctl.fd, .events = POLLIN | (a->out_len ? POLLOUT : 0) },
                        { .fd = a->sigfd, .events = POLLIN },
                        { .fd = !a->in_eof && a->out_len < sizeof(a->out) ? STDIN_FILENO : -1,
                          .events = POLLIN },
                        { .fd = a->console ? a->rsz.fd : -1, .events = POLLIN },
                };

                if (poll(pf, 4, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("poll: %s", strerror(errno));
                }
                if (pf[1].revents)
                        on_sig(a);
                if (pf[2].revents)
                        read_stdin(a);
                if (pf[3].revents)
                        read_resize_replies(a);
                flush_out(a);
                if (pf[0].revents & (POLLIN | POLLHUP | POLLERR))
                        read_port(a);
        }
}

static int do_attach(const char *cmd, char **args)
{
        static struct attach a;

        (void)cmd;
        /* A write error must restore the terminal, not kill us. */
        signal(SIGPIPE, SIG_IGN);
        a.tty = isatty(STDIN_FILENO);
        a.read_only = opt_mode && strcmp(opt_mode, "read-only") == 0;
        /* A reader sends nothing, not even an end: only a terminal's
         * Ctrl-] is looked for. */
        a.in_eof = a.read_only && !a.tty;
        attach_request(&a, args[0]);
        a.sigfd = signals_fd(true);
        if (a.tty)
                term_make_raw(&a);
        send_size(&a);
        /* The port's first bytes may have come with the reply. */
        if (a.ctl.len) {
                write_all(STDOUT_FILENO, a.ctl.buf, a.ctl.len);
                a.ctl.len = 0;
        }
        if (a.ctl.eof)
                read_port(&a);
        attach_loop(&a);
}

/* ---- history, reopen ----------------------------------------------------- */

/* Bytes of the port's stream: what came with the reply, then the socket. */
static void copy_stream(struct conn *c, long long want, bool follow, int sigfd, const char *port)
{
        long long got = 0;
        char buf[IO_CHUNK];

        if (c->len) {
                write_all(STDOUT_FILENO, c->buf, c->len);
                got = c->len;
                c->len = 0;
        }
        for (;;) {
                struct pollfd pf[2] = { { .fd = c->fd, .events = POLLIN },
                                        { .fd = sigfd, .events = POLLIN } };
                ssize_t n;

                if (!follow && got >= want)
                        exit(0);
                if (poll(pf, 2, -1) < 0 && errno != EINTR)
                        die("poll: %s", strerror(errno));
                if (pf[1].revents)
                        exit(0);        /* interrupted: done */
                if (!pf[0].revents)
                        continue;
                n = read(c->fd, buf, sizeof(buf));
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n > 0) {
                        write_all(STDOUT_FILENO, buf, n);
                        got += n;
                        continue;
                }
                if (got < want)
                        die("port %s: the history was cut short after %lld of %lld bytes: the "
                            "port's output overran it while it was sent", port, got, want);
                die("port %s: the daemon ended the stream (port removed, daemon stopped, or "
                    "this reader fell further behind than the port's history holds)", port);
        }
}

static int do_history(const char *cmd, char **args)
{
        const char *port = args[0];
        json_object *req = cmd_req(cmd), *reply;
        int sigfd = signals_fd(false);
        long long n;

        /* A reader that left (head, a closed pipe) ends us quietly. */
        signal(SIGPIPE, SIG_DFL);
        json_object_object_add(req, "port", port_ref(port));
        if (opt_bytes >= 0)
                json_object_object_add(req, "bytes", json_object_new_int64(opt_bytes));
        if (opt_follow)
                json_object_object_add(req, "follow", json_object_new_boolean(1));
        conn_open(&conn);
        reply = request(&conn, req);
        n = int_of(reply, "bytes");
        json_object_put(reply);
        copy_stream(&conn, n, opt_follow, sigfd, port);
        return 0;
}

static int do_reopen(const char *cmd, char **args)
{
        json_object *reply;
        long long failed;

        (void)args;
        conn_open(&conn);
        reply = request(&conn, cmd_req(cmd));
        failed = int_of(reply, "failed");
        json_object_put(reply);
        if (failed)
                die("%lld file%s could not be opened again; the old ones are still written "
                    "(see the daemon's log)", failed, failed == 1 ? "" : "s");
        return 0;
}

/* ---- main --------------------------------------------------------------- */

/* --bytes N: a count, with an optional K, M or G. */
static long long bytes_option(const char *s)
{
        uint64_t v;

        if (parse_bytes(s, 1ull << 40, &v) < 0)
                die_usage("--bytes '%s' is not a byte count (e.g. 4096, 64K)", s);
        return (long long)v;
}

static void want_args(const char *cmd, int have, int want, const char *what)
{
        if (have < want)
                die_usage("%s: missing %s", cmd, what);
        if (have > want)
                die_usage("%s: unexpected argument (expected %s)", cmd, what);
}

static void take_option(int c, char **argv)
{
        switch (c) {
        case 'c':
                if (!*optarg)
                        die_usage("-c needs a path");
                control_path = optarg;
                break;
        case 'j':
                opt_json = true;
                break;
        case 'P':
                opt_prometheus = true;
                break;
        case 'f':
                opt_follow = true;
                break;
        case 'n':
                opt_bytes = bytes_option(optarg);
                break;
        case 'r':
        case 'w':
                if (opt_mode)
                        die_usage("give one of --read-only and --write");
                opt_mode = c == 'r' ? "read-only" : "write";
                break;
        case 'h':
                usage(stdout);
                exit(0);
        case 'V':
                printf("vserialctl %s\n", vserial_version());
                exit(0);
        case ':':
                die_usage("%s needs an argument", argv[optind - 1]);
        default:
                die_usage("unknown option '%s'", argv[optind - 1]);
        }
}

/* The options before and between the words; exits on --help, --version
 * and bad ones. Returns the index of the command word. */
static int parse_options(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "control", required_argument, NULL, 'c' },
                { "json", no_argument, NULL, 'j' },
                { "prometheus", no_argument, NULL, 'P' },
                { "follow", no_argument, NULL, 'f' },
                { "bytes", required_argument, NULL, 'n' },
                { "read-only", no_argument, NULL, 'r' },
                { "write", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        int c;

        opterr = 0;
        /* --read-only and --write have no short form: "r" and "w" are not
         * in the short option string, getopt_long() returns them. */
        while ((c = getopt_long(argc, argv, ":c:jPfn:hV", longopts, NULL)) != -1)
                take_option(c, argv);
        return optind;
}

/* Options that only some commands take. */
static void check_options(const char *cmd)
{
        if (opt_json && strcmp(cmd, "list") && strcmp(cmd, "add") && strcmp(cmd, "events") &&
            strcmp(cmd, "stats"))
                die_usage("--json is for list, add, events and stats only");
        if (opt_prometheus && strcmp(cmd, "stats"))
                die_usage("--prometheus is for stats only");
        if (opt_prometheus && opt_json)
                die_usage("stats: give --json or --prometheus, not both");
        if ((opt_follow || opt_bytes >= 0) && strcmp(cmd, "history"))
                die_usage("--follow and --bytes are for history only");
        if (opt_mode && strcmp(cmd, "attach"))
                die_usage("--%s is for attach only", opt_mode);
}

/* A command: its arguments (how many, and named for usage errors) and the
 * function that runs it with them. */
struct command {
        const char *name;
        int nargs;
        const char *args;
        int (*run)(const char *cmd, char **args);
};

static const struct command commands[] = {
        { "list", 0, "no arguments", do_list },
        { "add", 1, "SPEC", do_add },
        { "remove", 1, "ID|NAME", do_port_cmd },
        { "unplug", 1, "ID|NAME", do_port_cmd },
        { "plug", 1, "ID|NAME", do_port_cmd },
        { "resize", 3, "ID|NAME COLS ROWS", do_resize },
        { "events", 0, "no arguments", do_events },
        { "attach", 1, "ID|NAME", do_attach },
        { "stats", 0, "no arguments", do_stats },
        { "history", 1, "ID|NAME", do_history },
        { "reopen", 0, "no arguments", do_reopen },
};

int main(int argc, char **argv)
{
        const char *cmd;
        int first;

        control_path = getenv("VSERIAL_CONTROL");
        if (!control_path || !*control_path)
                control_path = DEFAULT_CONTROL;
        first = parse_options(argc, argv);
        if (first >= argc)
                die_usage("no command given");
        cmd = argv[first];
        check_options(cmd);
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(commands[i].name, cmd) == 0) {
                        want_args(cmd, argc - first - 1, commands[i].nargs, commands[i].args);
                        return commands[i].run(cmd, argv + first + 1);
                }
        }
        die_usage("unknown command '%s'", cmd);
}
