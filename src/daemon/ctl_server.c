/* SPDX-License-Identifier: MIT */
/*
 * The control socket: see ctl_server.h for the protocol and the security
 * model.
 *
 * A client is freed only from its own watch callback (or with the server),
 * so code that walks the client list never sees one vanish: anything else
 * that ends a client marks it dead and shuts its socket down, and the hang-up
 * that follows runs the callback. Requests are read up to their newline and
 * no further (MSG_PEEK first), so bytes after an "attach" line stay in the
 * socket for the port.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "clients.h"
#include "ctl_server.h"
#include "history.h"
#include "log.h"
#include "metrics.h"
#include "tap.h"

/* Stop reading requests while this much output waits for a client. */
#define OUT_PAUSE (256u * 1024)
/* Lines handled per wake-up, so one client cannot starve the loop. */
#define LINE_BUDGET 32
#define PEEK_CHUNK 4096u
#define ACCEPT_BUDGET 16
/* What a refused client may have sent that is read before the close. */
#define REFUSE_DRAIN_MAX (64u * 1024)
/* Events a port's start may report before "port-added" is sent. */
#define HELD_MAX 8
#define ERR_MAX 512

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
/* Why the device refuses host-side changes for now. */
#define QUEUE_FULL "the guest's control queue is full (the guest takes no control " \
                   "messages now); nothing changed, try again later"

struct obuf {
        char *data;
        size_t head, len, cap;
};

struct client {
        struct ctl_server *cs;
        struct client *prev, *next;
        int fd;
        uint32_t watched;
        unsigned id;
        uint64_t callbacks;     /* run for this client ("stats") */
        bool subscribed;
        bool eof;               /* the peer shut its sending side */
        bool dead;              /* freed by its own callback */
        bool handed_off;        /* the fd belongs to a port now */
        bool discarding;        /* skipping the rest of an over-long line */
        char *in;               /* CTL_LINE_MAX + 2 bytes */
        size_t in_len;
        struct obuf out;
};

struct held_event {
        struct hport *hp;
        enum hport_event ev;
        struct hport_event_info info;
};

struct ctl_server {
        char *path;
        int fd;
        struct listener *listener;
        struct vs_device *dev;
        struct hport_env *env;
        const struct stats_src *stats;
        const char *sandbox_hint;
        uint64_t requests;      /* lines handled */
        uint64_t refused;       /* clients not admitted */
        uint64_t drained;       /* bytes read from refused clients */
        struct client *clients;
        unsigned nclients;
        unsigned next_id;
        uint64_t seq;           /* of the last event */
        bool holding;           /* a port is being added */
        struct held_event held[HELD_MAX];
        unsigned nheld;
};

static const struct vs_loop_ops *lops(const struct ctl_server *cs)
{
        return cs->env->loop_ops;
}

/* Reject a request: the text of its error reply goes into @err; -EINVAL. */
static int reject(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int reject(char *err, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, ERR_MAX, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* ---- output ------------------------------------------------------------- */

static int obuf_put(struct obuf *b, const char *s, size_t n)
{
        if (b->head + b->len + n > b->cap && b->head > 0) {
                memmove(b->data, b->data + b->head, b->len);
                b->head = 0;
        }
        if (b->len + n > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                char *p;

                while (cap < b->len + n)
                        cap *= 2;
                p = realloc(b->data, cap);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->cap = cap;
        }
        memcpy(b->data + b->head + b->len, s, n);
        b->len += n;
        return 0;
}

static void obuf_take(struct obuf *b, size_t n)
{
        b->head += n;
        b->len -= n;
        if (b->len == 0) {
                /* Idle clients hold little memory. */
                if (b->cap > 64 * 1024) {
                        free(b->data);
                        b->data = NULL;
                        b->cap = 0;
                }
                b->head = 0;
        }
}

static void client_kill(struct client *c, const char *why)
{
        if (c->dead)
                return;
        if (why)
                log_warn("control: client %u: %s; disconnected", c->id, why);
        else
                log_debug("control: client %u gone", c->id);
        c->dead = true;
        c->subscribed = false;
        /* The hang-up wakes the client's own callback, which frees it. */
        if (c->fd >= 0)
                shutdown(c->fd, SHUT_RDWR);
}

static void client_watch(struct client *c)
{
        uint32_t want = 0;

        if (c->dead || c->fd < 0)
                return;
        if (!c->eof && c->out.len < OUT_PAUSE)
                want |= EPOLLIN;
        if (c->out.len)
                want |= EPOLLOUT;
        if (want == c->watched)
                return;
        if (lops(c->cs)->mod(c->cs->env->loop, c->fd, want) < 0) {
                client_kill(c, "cannot watch its socket");
                return;
        }
        c->watched = want;
}

static void client_flush(struct client *c)
{
        while (c->out.len && !c->dead) {
                ssize_t n = send(c->fd, c->out.data + c->out.head, c->out.len,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n > 0) {
                        obuf_take(&c->out, n);
                } else if (n < 0 && errno == EINTR) {
                        continue;
                } else if (n < 0 && errno == EAGAIN) {
                        break;
                } else {
                        client_kill(c, NULL);
                        return;
                }
        }
        client_watch(c);
}

/* Queue one line (@s has no newline) and send what the socket takes. */
static void client_send_line(struct client *c, const char *s, size_t n)
{
        if (c->dead || c->fd < 0)
                return;
        if (c->out.len + n + 1 > CTL_BACKLOG_MAX) {
                char why[128];

                snprintf(why, sizeof(why), "does not read: %zu bytes are waiting for it (limit %u)",
                         c->out.len, CTL_BACKLOG_MAX);
                client_kill(c, why);
                return;
        }
        if (obuf_put(&c->out, s, n) < 0 || obuf_put(&c->out, "\n", 1) < 0) {
                client_kill(c, "out of memory for its output");
                return;
        }
        client_flush(c);
}

static void client_send_json(struct client *c, json_object *o)
{
        size_t n;
        const char *s = o ? json_object_to_json_string_length(o, JSON_FLAGS, &n) : NULL;

        if (!s) {
                client_kill(c, "out of memory for a reply");
                return;
        }
        client_send_line(c, s, n);
}

static void client_send_error(struct client *c, const char *err)
{
        json_object *o = json_object_new_object();

        json_object_object_add(o, "ok", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string(err));
        client_send_json(c, o);
        json_object_put(o);
}

/* ---- events ------------------------------------------------------------- */

static void publish_info(struct ctl_server *cs, const char *event, bool has_port,
                         uint32_t id, const char *name, const struct hport_event_info *info)
{
        json_object *o = json_object_new_object();
        const char *s;
        size_t n;

        cs->seq++;
        json_object_object_add(o, "seq", json_object_new_uint64(cs->seq));
        json_object_object_add(o, "event", json_object_new_string(event));
        if (has_port) {
                json_object_object_add(o, "port", json_object_new_int64(id));
                json_object_object_add(o, "name", json_object_new_string(name));
        }
        /* Host connections: which client, how many bytes. */
        if (info && info->client)
                json_object_object_add(o, "client", json_object_new_uint64(info->client));
        if (info && info->bytes)
                json_object_object_add(o, "bytes", json_object_new_uint64(info->bytes));
        s = json_object_to_json_string_length(o, JSON_FLAGS, &n);
        for (struct client *c = cs->clients; c; c = c->next) {
                if (!c->subscribed || c->dead)
                        continue;
                if (s)
                        client_send_line(c, s, n);
                else
                        client_kill(c, "out of memory for an event");
        }
        json_object_put(o);
}

static void publish(struct ctl_server *cs, const char *event, bool has_port,
                    uint32_t id, const char *name)
{
        publish_info(cs, event, has_port, id, name, NULL);
}

/* By the host port's own id and name: the device may have forgotten it. */
static void publish_port(struct ctl_server *cs, const char *event,
                         const struct hport *hp)
{
        publish_info(cs, event, true, hp->id, hp->spec.name, &hp->ev);
}

static const char *hport_event_name(enum hport_event ev)
{
        switch (ev) {
        case HPORT_GUEST_OPEN: return "guest-open";
        case HPORT_GUEST_CLOSE: return "guest-close";
        case HPORT_HOST_CONNECT: return "host-connect";
        case HPORT_HOST_DISCONNECT: return "host-disconnect";
        case HPORT_CLIENT_REFUSED: return "client-refused";
        case HPORT_CLIENT_DROPPED: return "client-dropped";
        case HPORT_OUTPUT_DISCARDED: return "output-discarded";
        case HPORT_UNPLUGGED: return "port-unplugged";
        case HPORT_PLUGGED: return "port-plugged";
        }
        return "port-event";
}

void ctl_server_hport_event(void *opaque, struct hport *hp, enum hport_event ev)
{
        struct ctl_server *cs = opaque;

        if (!cs)
                return;
        /* A port's start may connect a peer: that follows "port-added". */
        if (cs->holding && cs->nheld < HELD_MAX) {
                cs->held[cs->nheld++] = (struct held_event){ hp, ev, hp->ev };
                return;
        }
        publish_port(cs, hport_event_name(ev), hp);
}

void ctl_server_device_event(void *opaque, enum vs_device_event ev)
{
        struct ctl_server *cs = opaque;

        /* VS_EVENT_RESET comes with the VMM's disconnect (or its
         * RESET_OWNER); a (re)started driver is what resets the guest. */
        if (cs && ev == VS_EVENT_DRIVER_READY)
                publish(cs, "guest-reset", false, 0, NULL);
}

void ctl_server_vmm_event(struct ctl_server *cs, bool connected)
{
        if (cs)
                publish(cs, connected ? "vmm-connect" : "vmm-disconnect", false, 0, NULL);
}

/* ---- request helpers ---------------------------------------------------- */

/* A string member without NUL bytes; NULL (and @err) if absent or not one. */
static const char *get_string(json_object *req, const char *key, bool required,
                              char *err)
{
        json_object *v;
        const char *s;

        if (!json_object_object_get_ex(req, key, &v)) {
                if (required)
                        reject(err, "missing \"%s\"", key);
                return NULL;
        }
        if (!json_object_is_type(v, json_type_string)) {
                reject(err, "\"%s\" must be a string", key);
                return NULL;
        }
        s = json_object_get_string(v);
        if (strlen(s) != (size_t)json_object_get_string_len(v)) {
                reject(err, "\"%s\" contains a NUL character", key);
                return NULL;
        }
        return s;
}

static int get_uint(json_object *req, const char *key, int64_t max,
                    int64_t *ret, char *err)
{
        json_object *v;
        int64_t x;

        if (!json_object_object_get_ex(req, key, &v))
                return reject(err, "missing \"%s\"", key);
        if (!json_object_is_type(v, json_type_int))
                return reject(err, "\"%s\" must be an integer", key);
        x = json_object_get_int64(v);
        if (x < 0 || x > max)
                return reject(err, "\"%s\" must be in 0..%lld", key, (long long)max);
        *ret = x;
        return 0;
}

/* The port a request names with "port": an id or a name (plugged into the
 * device or not). */
static struct hport *find_port(struct ctl_server *cs, json_object *req, char *err)
{
        uint32_t max = vs_device_max_ports(cs->dev);
        struct hport *port = NULL;
        json_object *v;

        if (!json_object_object_get_ex(req, "port", &v)) {
                reject(err, "missing \"port\" (a port id or name)");
                return NULL;
        }
        if (json_object_is_type(v, json_type_int)) {
                int64_t id = json_object_get_int64(v);

                if (id < 0 || id >= max) {
                        reject(err, "bad port id %lld (ports are 0..%u)", (long long)id, max - 1);
                        return NULL;
                }
                port = hport_find_id(cs->env, id);
                if (!port)
                        reject(err, "no port %lld", (long long)id);
        } else if (json_object_is_type(v, json_type_string)) {
                const char *name = get_string(req, "port", true, err);

                if (!name)
                        return NULL;
                port = *name ? hport_find_name(cs->env, name) : NULL;
                if (!port)
                        reject(err, "no port named '%s'", name);
        } else {
                reject(err, "\"port\" must be a port id (integer) or name (string)");
        }
        return port;
}

/* Host connections: clients, and whether the guest has the port. */
static void conn_state(const struct hport *hp, json_object *o)
{
        json_object_object_add(o, "plugged", json_object_new_boolean(hport_plugged(hp)));
        if (hp->clients) {
                json_object_object_add(o, "clients",
                                       json_object_new_int(clients_count(hp->clients)));
                json_object_object_add(o, "clients_max",
                                       json_object_new_int(clients_max(hp->clients)));
                json_object_object_add(o, "writer",
                                       json_object_new_int(clients_writer(hp->clients)));
        }
        if (hp->spec.backend == BACKEND_UNIX || hp->spec.backend == BACKEND_TCP ||
            hp->spec.backend == BACKEND_UNIX_CONNECT)
                json_object_object_add(o, "on_connect", json_object_new_string(
                        hp->spec.on_connect == ON_CONNECT_DISCARD ? "discard" : "replay"));
}

static json_object *port_state(const struct hport *hp)
{
        const struct vs_port *port = hp->port;
        json_object *o = json_object_new_object(), *counters = json_object_new_object();
        struct vs_port_stats st;

        hport_get_stats(hp, &st);
        json_object_object_add(o, "id", json_object_new_int64(hp->id));
        json_object_object_add(o, "name", json_object_new_string(hp->spec.name));
        json_object_object_add(o, "console", json_object_new_boolean(hp->spec.console));
        json_object_object_add(o, "backend",
                               json_object_new_string(backend_name(hp->spec.backend)));
        if (hport_path(hp))
                json_object_object_add(o, "path", json_object_new_string(hport_path(hp)));
        if (hp->spec.tcp_port) {
                json_object_object_add(o, "host", json_object_new_string(hp->spec.host));
                json_object_object_add(o, "tcp_port", json_object_new_int(hp->spec.tcp_port));
        }
        json_object_object_add(o, "guest_open",
                               json_object_new_boolean(port && vs_port_guest_connected(port)));
        json_object_object_add(o, "host_connected", json_object_new_boolean(
                port ? vs_port_host_connected(port) : hport_connected(hp)));
        json_object_object_add(o, "throttled",
                               json_object_new_boolean(port && vs_port_throttled(port)));
        conn_state(hp, o);
        json_object_object_add(o, "to_guest", json_object_new_uint64(st.to_guest));
        json_object_object_add(o, "from_guest", json_object_new_uint64(st.from_guest));
        json_object_object_add(o, "buffered", json_object_new_uint64(hport_buffered(hp)));
        json_object_object_add(o, "counters", counters);
        stats_port(hp, counters);
        if (hp->spec.console && (port || hp->cols)) {
                uint16_t cols = hp->cols, rows = hp->rows;

                if (port)
                        vs_port_get_size(port, &cols, &rows);
                json_object_object_add(o, "cols", json_object_new_int(cols));
                json_object_object_add(o, "rows", json_object_new_int(rows));
        }
        return o;
}

/* ---- commands ----------------------------------------------------------- */

/* {"id":3,"name":"x","console":true,...} -> "id=3,name=x,console,..." */
static int object_to_spec(json_object *obj, char *spec, size_t len, char *err)
{
        size_t used = 0;

        spec[0] = '\0';
        json_object_object_foreach(obj, key, val) {
                char item[1100];

                if (!*key || strpbrk(key, ",="))
                        return reject(err, "\"port\": bad key '%s'", key);
                switch (json_object_get_type(val)) {
                case json_type_boolean:
                        if (!json_object_get_boolean(val))
                                continue;
                        snprintf(item, sizeof(item), "%s", key);
                        break;
                case json_type_int:
                        snprintf(item, sizeof(item), "%s=%lld", key,
                                 (long long)json_object_get_int64(val));
                        break;
                case json_type_string: {
                        const char *s = json_object_get_string(val);

                        if (strlen(s) != (size_t)json_object_get_string_len(val))
                                return reject(err, "\"port\": '%s' contains a NUL character", key);
                        if (strchr(s, ','))
                                return reject(err, "\"port\": '%s' cannot contain ','", key);
                        if (strlen(s) > 1024)
                                return reject(err, "\"port\": '%s' is too long", key);
                        snprintf(item, sizeof(item), "%s=%s", key, s);
                        break;
                }
                default:
                        return reject(err,
                                      "\"port\": '%s' must be a string, an integer or a boolean",
                                      key);
                }
                if (used + !!used + strlen(item) + 1 > len)
                        return reject(err, "\"port\": too long");
                used += snprintf(spec + used, len - used, "%s%s", used ? "," : "", item);
        }
        return 0;
}

static int check_new_port_host(struct ctl_server *cs, const struct port_spec *spec,
                               char *err);

/* What the device or another port would refuse, said in a useful way. */
static int check_new_port(struct ctl_server *cs, const struct port_spec *spec,
                          char *err)
{
        uint32_t max = vs_device_max_ports(cs->dev);
        struct vs_port *p;

        if (spec->id >= 0 && (uint32_t)spec->id >= max)
                return reject(err, "id %d is not below the device's max ports %u", spec->id, max);
        if (spec->id >= 0 && (vs_port_find(cs->dev, spec->id) ||
                              hport_find_id(cs->env, spec->id)))
                return reject(err, "port id %d is already in use", spec->id);
        if (spec->name[0] && (p = vs_port_find_name(cs->dev, spec->name)))
                return reject(err, "name '%s' is already used by port %u", spec->name,
                              vs_port_id(p));
        /* Unplugged ports keep their id, name and endpoint. */
        for (struct hport *hp = hport_next(cs->env, NULL); hp; hp = hport_next(cs->env, hp)) {
                if (spec->name[0] && strcmp(spec->name, hp->spec.name) == 0)
                        return reject(err, "name '%s' is already used by port %u", spec->name,
                                      hp->id);
                if (spec->path[0] && strcmp(spec->path, hp->spec.path) == 0)
                        return reject(err, "path %s is already used by port %u", spec->path,
                                      hp->id);
                if (spec->backend == BACKEND_TCP && hp->spec.backend == BACKEND_TCP &&
                    spec->tcp_port == hp->spec.tcp_port && strcmp(spec->host, hp->spec.host) == 0)
                        return reject(err, "%s port %u is already used by port %u", spec->host,
                                      spec->tcp_port, hp->id);
                if (spec->backend == BACKEND_STDIO && hp->spec.backend == BACKEND_STDIO)
                        return reject(err, "only one port can use backend=stdio (port %u does)",
                                      hp->id);
        }
        return check_new_port_host(cs, spec, err);
}

static int cmd_add(struct client *c, json_object *req, json_object *reply, char *err)
{
        struct ctl_server *cs = c->cs;
        char specbuf[1024], why[256];
        const char *text = NULL;
        struct port_spec spec;
        json_object *obj = NULL;
        struct hport *hp;
        int r;

        if (json_object_object_get_ex(req, "spec", NULL) ==
            json_object_object_get_ex(req, "port", &obj))
                return reject(err,
                              "add needs either \"spec\" (a SPEC string) or \"port\" (an object)");
        if (obj) {
                if (!json_object_is_type(obj, json_type_object))
                        return reject(err, "\"port\" must be an object of SPEC keys");
                if (object_to_spec(obj, specbuf, sizeof(specbuf), err) < 0)
                        return -EINVAL;
                text = specbuf;
        } else if (!(text = get_string(req, "spec", true, err))) {
                return -EINVAL;
        }
        if (spec_parse(text, &spec, why, sizeof(why)) < 0)
                return reject(err, "bad spec '%s': %s", text, why);
        if (check_new_port(cs, &spec, err) < 0)
                return -EINVAL;
        cs->holding = true;
        cs->nheld = 0;
        r = hport_new(cs->dev, &spec, cs->env, &hp);
        cs->holding = false;
        if (r == -ENOSPC)
                return reject(err,
                              "no free port id (the device has %u)", vs_device_max_ports(cs->dev));
        if (r == -EAGAIN)
                return reject(err, "cannot add port '%s': %s", text, QUEUE_FULL);
        if (r == -ELOOP)
                return reject(err, "cannot add port '%s': its path is a symbolic link, which is "
                              "not followed", text);
        if ((r == -EACCES || r == -EPERM) && cs->sandbox_hint && cs->sandbox_hint[0])
                return reject(err, "cannot add port '%s': %s (%s)", text, strerror(-r),
                              cs->sandbox_hint);
        if (r < 0)
                return reject(err, "cannot add port '%s': %s (see the daemon's log)", text,
                              strerror(-r));
        log_info("control: added %s (%s)", hport_label(hp), text);
        publish_port(cs, "port-added", hp);
        for (unsigned i = 0; i < cs->nheld; i++)
                publish_info(cs, hport_event_name(cs->held[i].ev), true, cs->held[i].hp->id,
                             cs->held[i].hp->spec.name, &cs->held[i].info);
        cs->nheld = 0;
        json_object_object_add(reply, "port", port_state(hp));
        return 0;
}

/* Refused by the device: nothing changed, the port keeps working. */
static int cmd_remove(struct client *c, json_object *req, json_object *reply, char *err)
{
        struct ctl_server *cs = c->cs;
        struct hport *hp = find_port(cs, req, err);
        char name[VS_PORT_NAME_MAX + 1], label[sizeof(hp->label)];
        uint32_t id;
        int r;

        (void)reply;
        if (!hp)
                return -EINVAL;
        id = hp->id;
        strcpy(name, hp->spec.name);
        strcpy(label, hport_label(hp));
        r = hport_remove(hp);
        if (r == -ENOSPC)
                return reject(err, "cannot remove %s: %s", label, QUEUE_FULL);
        if (r < 0)
                return reject(err, "cannot remove %s: %s", label, strerror(-r));
        log_info("control: removed %s", label);
        publish(cs, "port-removed", true, id, name);
        return 0;
}

static int cmd_list(struct client *c, json_object *req, json_object *reply, char *err)
{
        struct ctl_server *cs = c->cs;
        json_object *ports = json_object_new_array();

        (void)req;
        (void)err;
        for (struct hport *hp = hport_next(cs->env, NULL); hp; hp = hport_next(cs->env, hp))
                json_object_array_add(ports, port_state(hp));
        json_object_object_add(reply, "ports", ports);
        return 0;
}

static int cmd_resize(struct client *c, json_object *req, json_object *reply, char *err)
{
        struct hport *hp = find_port(c->cs, req, err);
        int64_t cols, rows;
        int r;

        (void)reply;
        if (!hp)
                return -EINVAL;
        if (get_uint(req, "cols", UINT16_MAX, &cols, err) < 0 ||
            get_uint(req, "rows", UINT16_MAX, &rows, err) < 0)
                return -EINVAL;
        if (!hp->spec.console)
                return reject(err, "%s is not a console", hport_label(hp));
        if (!hport_plugged(hp)) {
                /* The guest gets it with the port at the next plug. */
                hp->cols = cols;
                hp->rows = rows;
                return 0;
        }
        r = vs_port_resize(hp->port, cols, rows);
        if (r == -ENOSPC)
                return reject(err, "cannot resize %s: %s", hport_label(hp), QUEUE_FULL);
        if (r < 0)
                return reject(err, "%s: resize failed: %s", hport_label(hp), strerror(-r));
        log_debug("control: %s resized to %lldx%lld", hport_label(hp), (long long)cols,
                  (long long)rows);
        return 0;
}

static json_object *control_section(const struct ctl_server *cs)
{
        json_object *o = json_object_new_object();

        json_object_object_add(o, "clients", json_object_new_uint64(cs->nclients));
        json_object_object_add(o, "requests", json_object_new_uint64(cs->requests));
        json_object_object_add(o, "refused", json_object_new_uint64(cs->refused));
        json_object_object_add(o, "drained", json_object_new_uint64(cs->drained));
        return o;
}

/* ---- issue 13: history, reopen, Prometheus --------------------------------- */

/* The "stats" object as Prometheus text (metrics.h); consumes @st. */
static int stats_prometheus(struct ctl_server *cs, json_object *st, json_object *reply,
                            char *err)
{
        const char *inst = cs->stats && cs->stats->instance ? cs->stats->instance : "";
        char *text = metrics_prometheus(st, inst);

        json_object_put(st);
        if (!text)
                return reject(err, "out of memory for the metrics");
        json_object_object_add(reply, "prometheus", json_object_new_string(text));
        free(text);
        return 0;
}

/* An optional boolean member; -EINVAL if it is not one. */
static int get_bool(json_object *req, const char *key, bool *ret, char *err)
{
        json_object *v;

        *ret = false;
        if (!json_object_object_get_ex(req, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return reject(err, "\"%s\" must be true or false", key);
        *ret = json_object_get_boolean(v);
        return 0;
}

/* The connection is no control client any more: its fd is @hp's now. */
static int hand_off(struct client *c)
{
        int fd = c->fd;

        lops(c->cs)->del(c->cs->env->loop, c->fd);
        c->fd = -1;
        c->watched = 0;
        c->handed_off = true;
        c->subscribed = false;
        return fd;
}

/*
 * {"cmd":"history","port":P[,"bytes":N][,"follow":true]}: replies itself,
 * {"ok":true,"bytes":K,"follow":F}, then the connection carries K raw
 * bytes (the last K held, K <= N) and, with follow, the port's new output
 * until the client closes (history.h). Refused, with the connection still a
 * control connection: an unknown port, history=0, too many readers, replies
 * not yet read.
 */
static int cmd_history(struct client *c, json_object *req, json_object *reply, char *err)
{
        struct hport *hp = find_port(c->cs, req, err);
        struct history *h;
        char ok[96];
        int64_t bytes = SPEC_HISTORY_MAX;
        bool follow;
        size_t k;
        ssize_t n;
        int len;

        (void)reply;
        if (!hp)
                return -EINVAL;
        if (json_object_object_get_ex(req, "bytes", NULL) &&
            get_uint(req, "bytes", SPEC_HISTORY_MAX, &bytes, err) < 0)
                return -EINVAL;
        if (get_bool(req, "follow", &follow, err) < 0)
                return -EINVAL;
        h = tap_history(hp->tap);
        if (!h)
                return reject(err, "%s keeps no history (history=0; add it with history=SIZE)",
                              hport_label(hp));
        if (history_readers(h) >= HISTORY_READERS_MAX)
                return reject(err, "%s has %u history readers already", hport_label(hp),
                              HISTORY_READERS_MAX);
        client_flush(c);
        if (c->dead)
                return 1;
        if (c->out.len)
                return reject(err, "read the earlier replies before asking for history");
        k = (size_t)bytes < history_len(h) ? (size_t)bytes : history_len(h);
        len = snprintf(ok, sizeof(ok), "{\"ok\":true,\"bytes\":%zu,\"follow\":%s}\n", k,
                       follow ? "true" : "false");
        n = send(c->fd, ok, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == EAGAIN))
                return reject(err, "read the earlier replies before asking for history");
        if (n != len) {
                client_kill(c, n < 0 ? NULL : "history: the reply did not fit in its socket");
                return 1;
        }
        if (history_serve(h, hand_off(c), k, follow) < 0)
                log_warn("control: client %u: history of %s failed after it was accepted",
                         c->id, hport_label(hp));
        else
                log_debug("control: client %u reads the history of %s%s", c->id,
                          hport_label(hp), follow ? " and follows it" : "");
        return 1;
}

/* {"cmd":"reopen"}: every file ports write by name opened again (logrotate),
 * as SIGHUP does -> {"ok":true,"failed":F} (F could not be: see the log). */
static int cmd_reopen(struct client *c, json_object *req, json_object *reply, char *err)
{
        struct ctl_server *cs = c->cs;
        int failed = 0;

        (void)req;
        (void)err;
        for (struct vs_port *p = vs_port_next(cs->dev, NULL); p; p = vs_port_next(cs->dev, p))
                failed += hport_reopen(vs_port_opaque(p));
        log_info("control: reopened the ports' files (%d failed)", failed);
        json_object_object_add(reply, "failed", json_object_new_int(failed));
        return 0;
}

/* What an added port may not do that the command line may. */
static int check_new_port_host(struct ctl_server *cs, const struct port_spec *spec, char *err)
{
        if (spec->backend == BACKEND_FD)
                return reject(err, "backend=fd is for the command line only (an fd the daemon "
                              "was started with)");
        for (struct vs_port *p = vs_port_next(cs->dev, NULL); p; p = vs_port_next(cs->dev, p)) {
                const struct hport *hp = vs_port_opaque(p);
                const char *f = spec->logfile;

                if (f[0] && (strcmp(f, hp->spec.logfile) == 0 ||
                             (hp->spec.backend == BACKEND_FILE && strcmp(f, hp->spec.path) == 0)))
                        return reject(err, "logfile %s is already written by port %u", f, hp->id);
                if (hp->spec.logfile[0] && spec->backend == BACKEND_FILE &&
                    strcmp(spec->path, hp->spec.logfile) == 0)
                        return reject(err,
                                      "path %s is already port %u's logfile", spec->path, hp->id);
        }
        return 0;
}

/* ---- end of issue 13's commands --------------------------------------------- */

/* Counted while this request is served: see stats.h for how to read them. */
static int cmd_stats(struct client *c, json_object *req, json_object *reply, char *err)
{
        struct ctl_server *cs = c->cs;
        json_object *st, *me, *ports;
        const char *format = NULL;
        bool prom;

        if (json_object_object_get_ex(req, "format", NULL) &&
            !(format = get_string(req, "format", true, err)))
                return -EINVAL;
        prom = format && strcmp(format, "prometheus") == 0;
        if (format && !prom && strcmp(format, "json") != 0)
                return reject(err,
                              "unknown stats format '%s' (expected json or prometheus)", format);
        st = json_object_new_object();
        me = json_object_new_object();
        ports = json_object_new_array();
        if (cs->stats)
                stats_fill(cs->stats, st);
        json_object_object_add(st, "control", control_section(cs));
        json_object_object_add(me, "id", json_object_new_uint64(c->id));
        json_object_object_add(me, "callbacks", json_object_new_uint64(c->callbacks));
        json_object_object_add(st, "client", me);
        for (struct hport *hp = hport_next(cs->env, NULL); hp; hp = hport_next(cs->env, hp)) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "id", json_object_new_int64(hp->id));
                json_object_object_add(o, "name", json_object_new_string(hp->spec.name));
                stats_port(hp, o);
                json_object_array_add(ports, o);
        }
        json_object_object_add(st, "ports", ports);
        if (!prom) {
                json_object_object_add(reply, "stats", st);
                return 0;
        }
        return stats_prometheus(cs, st, reply, err);
}

static int cmd_subscribe(struct client *c, json_object *req, json_object *reply, char *err)
{
        (void)req;
        (void)err;
        c->subscribed = true;
        json_object_object_add(reply, "seq", json_object_new_uint64(c->cs->seq));
        return 0;
}

/*
 * Replies itself: "ok" must be on the wire before the port's first byte.
 * The guest is told first, since that is what may be refused; if "ok"
 * then cannot be sent the guest is told the host side is gone again.
 */
/* "mode": "read-only" or "write" (a listening port's client role). */
static int attach_mode(const struct hport *hp, json_object *req, enum client_mode *ret,
                       char *err)
{
        const char *m;

        *ret = CLIENT_DEFAULT;
        if (!json_object_object_get_ex(req, "mode", NULL))
                return 0;
        if (!(m = get_string(req, "mode", true, err)))
                return -EINVAL;
        if (strcmp(m, "read-only") == 0)
                *ret = CLIENT_READ_ONLY;
        else if (strcmp(m, "write") == 0)
                *ret = CLIENT_WRITE;
        else
                return reject(err, "\"mode\" must be \"read-only\" or \"write\", not '%s'", m);
        if (*ret == CLIENT_READ_ONLY && !hp->clients)
                return reject(err, "%s: read-only attach is for backend=unix and tcp ports (its "
                              "backend is %s)", hport_label(hp), backend_name(hp->spec.backend));
        return 0;
}

/* All the port's host sides are taken. */
static bool attach_busy(const struct hport *hp)
{
        return hp->clients ? clients_full(hp->clients) : hport_connected(hp);
}

/* A port whose host side is full takes no attach: -EINVAL, why in @err. */
static int attach_refused(struct hport *hp, char *err)
{
        if (attach_busy(hp) && hp->clients)
                return reject(err, "port %u is busy: its %s backend has %u host client%s "
                              "connected (clients=%u)", hp->id, backend_name(hp->spec.backend),
                              clients_count(hp->clients), clients_count(hp->clients) == 1 ? "" : "s",
                              clients_max(hp->clients));
        if (attach_busy(hp))
                return reject(err, "port %u is busy: its %s backend has a host peer connected",
                              hp->id, backend_name(hp->spec.backend));
        return 0;
}

/* The client's fd is the port's from here on: no event or reply goes to it. */
static void attach_hand_off(struct client *c, struct hport *hp, enum client_mode mode)
{
        int fd = hand_off(c);

        if (hport_attach_client(hp, fd, mode) < 0) {
                /* Announced and not connected: cannot happen. */
                log_error("control: client %u: attach failed after it was accepted", c->id);
                close(fd);
                return;
        }
        log_info("control: client %u is now the host peer of %s", c->id, hport_label(hp));
}

static int cmd_attach(struct client *c, json_object *req, json_object *reply, char *err)
{
        static const char ok[] = "{\"ok\":true}\n";
        struct hport *hp = find_port(c->cs, req, err);
        enum client_mode mode;
        bool first;
        ssize_t n;

        (void)reply;
        if (!hp)
                return -EINVAL;
        if (attach_mode(hp, req, &mode, err) < 0 || attach_refused(hp, err) < 0)
                return -EINVAL;
        client_flush(c);
        if (c->dead)
                return 0;
        if (c->out.len)
                return reject(err, "read the earlier replies before attaching");
        /* Only a first client changes what the guest is told. */
        first = !hport_connected(hp);
        if (first && hport_announce(hp, true) < 0)
                return reject(err, "cannot attach to %s: %s", hport_label(hp), QUEUE_FULL);
        n = send(c->fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n != (ssize_t)sizeof(ok) - 1 && first)
                hport_announce(hp, false);
        if (n == 0 || (n < 0 && errno == EAGAIN))
                return reject(err, "read the earlier replies before attaching");
        if (n != (ssize_t)sizeof(ok) - 1) {
                client_kill(c, n < 0 ? NULL : "attach: the reply did not fit in its socket");
                return 1;
        }
        attach_hand_off(c, hp, mode);
        return 1;
}

/* ---- unplug, plug -------------------------------------------------------- */

/* unplug and plug: one request, either way. */
static int plug_request(struct client *c, json_object *req, char *err, bool plug)
{
        struct hport *hp = find_port(c->cs, req, err);
        const char *verb = plug ? "plug" : "unplug";
        int r;

        if (!hp)
                return -EINVAL;
        r = plug ? hport_plug(hp) : hport_unplug(hp);
        if (r == -EALREADY)
                return reject(err, "%s is %sged already", hport_label(hp), verb);
        if (r == -ENOSPC)
                return reject(err, "cannot %s %s: %s", verb, hport_label(hp), QUEUE_FULL);
        if (r < 0)
                return reject(err, "cannot %s %s: %s", verb, hport_label(hp), strerror(-r));
        log_info("control: %sged %s%s", verb, hport_label(hp),
                 plug ? "" : " (its host side stays)");
        return 0;
}

static int cmd_unplug(struct client *c, json_object *req, json_object *reply, char *err)
{
        (void)reply;
        return plug_request(c, req, err, false);
}

static int cmd_plug(struct client *c, json_object *req, json_object *reply, char *err)
{
        (void)reply;
        return plug_request(c, req, err, true);
}

struct command {
        const char *name;
        /* 0: reply {"ok":true,...reply}; 1: replied itself; <0: error in err */
        int (*fn)(struct client *c, json_object *req, json_object *reply, char *err);
        const char *keys[4];    /* besides "cmd" */
};

static const struct command commands[] = {
        { "add", cmd_add, { "spec", "port" } },
        { "remove", cmd_remove, { "port" } },
        { "list", cmd_list, { NULL } },
        { "resize", cmd_resize, { "port", "cols", "rows" } },
        { "subscribe", cmd_subscribe, { NULL } },
        { "attach", cmd_attach, { "port", "mode" } },
        { "stats", cmd_stats, { "format" } },
        { "history", cmd_history, { "port", "bytes", "follow" } },
        { "reopen", cmd_reopen, { NULL } },
        { "unplug", cmd_unplug, { "port" } },
        { "plug", cmd_plug, { "port" } },
};

static int check_keys(const struct command *cmd, json_object *req, char *err)
{
        json_object_object_foreach(req, key, val) {
                bool known = strcmp(key, "cmd") == 0;

                (void)val;
                for (unsigned i = 0; !known && i < 4 && cmd->keys[i]; i++)
                        known = strcmp(key, cmd->keys[i]) == 0;
                if (!known)
                        return reject(err, "unknown key \"%s\" for %s", key, cmd->name);
        }
        return 0;
}

static int dispatch(struct client *c, json_object *req, json_object *reply, char *err)
{
        const char *name;

        if (!json_object_is_type(req, json_type_object))
                return reject(err, "a request must be a JSON object");
        if (!(name = get_string(req, "cmd", true, err)))
                return -EINVAL;
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(name, commands[i].name) != 0)
                        continue;
                if (check_keys(&commands[i], req, err) < 0)
                        return -EINVAL;
                return commands[i].fn(c, req, reply, err);
        }
        return reject(err, "unknown command '%s' (expected add, remove, list, resize, subscribe, "
                      "attach, stats, history, reopen, unplug or plug)", name);
}

static void handle_line(struct client *c, char *line, size_t len)
{
        struct json_tokener *tok;
        json_object *req = NULL, *reply;
        char err[ERR_MAX] = "";
        int r;

        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
                len--;
        if (len == 0)
                return;         /* a blank line is not a request */
        c->cs->requests++;
        tok = json_tokener_new();
        if (!tok) {
                client_kill(c, "out of memory for a request");
                return;
        }
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        req = json_tokener_parse_ex(tok, line, (int)len);
        if (!req) {
                enum json_tokener_error je = json_tokener_get_error(tok);

                reject(err, "malformed JSON: %s", je == json_tokener_continue ?
                       "the line ends inside a value" : json_tokener_error_desc(je));
        } else if (json_tokener_get_parse_end(tok) < len) {
                reject(err, "malformed JSON: characters after the request");
        }
        json_tokener_free(tok);
        reply = json_object_new_object();
        json_object_object_add(reply, "ok", json_object_new_boolean(1));
        log_trusted(true);
        r = err[0] ? -EINVAL : dispatch(c, req, reply, err);
        log_trusted(false);
        if (r < 0)
                client_send_error(c, err[0] ? err : "failed");
        else if (r == 0)
                client_send_json(c, reply);
        json_object_put(reply);
        json_object_put(req);
}

/* ---- clients ------------------------------------------------------------ */

static void client_free(struct client *c)
{
        struct ctl_server *cs = c->cs;

        if (c->fd >= 0) {
                lops(cs)->del(cs->env->loop, c->fd);
                close(c->fd);
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                cs->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        cs->nclients--;
        free(c->out.data);
        free(c->in);
        free(c);
}

/* Read and handle whole lines, never past the last newline handled. */
static void client_read(struct client *c)
{
        int lines = 0;

        for (int reads = 0; reads < 2 * LINE_BUDGET && lines < LINE_BUDGET; reads++) {
                size_t room = CTL_LINE_MAX + 1 - c->in_len;
                char *at = c->in + c->in_len;
                ssize_t n;
                char *nl;

                if (c->dead || c->eof || c->handed_off || c->out.len >= OUT_PAUSE)
                        break;
                n = recv(c->fd, at, room < PEEK_CHUNK ? room : PEEK_CHUNK, MSG_PEEK);
                if (n == 0) {
                        c->eof = true;
                        break;
                }
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                client_kill(c, NULL);
                        break;
                }
                nl = memchr(at, '\n', n);
                n = recv(c->fd, at, nl ? (size_t)(nl - at) + 1 : (size_t)n, 0);
                if (n <= 0)
                        break;
                nl = memchr(at, '\n', n);
                c->in_len += n;
                if (nl) {
                        lines++;
                        if (!c->discarding) {
                                *nl = '\0';
                                handle_line(c, c->in, nl - c->in);
                        }
                        c->discarding = false;
                        c->in_len = 0;
                } else if (c->in_len > CTL_LINE_MAX) {
                        if (!c->discarding) {
                                char err[ERR_MAX];

                                reject(err, "request line longer than %u bytes", CTL_LINE_MAX);
                                client_send_error(c, err);
                        }
                        c->discarding = true;
                        c->in_len = 0;
                }
        }
        client_watch(c);
}

static void on_client(void *opaque, int fd, uint32_t events)
{
        struct client *c = opaque;

        (void)fd;
        c->callbacks++;
        if (!c->dead && (events & EPOLLOUT))
                client_flush(c);
        if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                client_read(c);
        if (!c->dead && !c->handed_off &&
            ((events & EPOLLERR) || ((events & EPOLLHUP) && (c->eof || !(c->watched & EPOLLIN)))))
                client_kill(c, NULL);
        /* A client that is done sending and is not subscribed is done. */
        if (!c->dead && c->eof && !c->subscribed && c->out.len == 0)
                client_kill(c, NULL);
        if (c->dead || c->handed_off)
                client_free(c);
}

/* Tell a client why it is not served, and close. */
static void refuse(struct ctl_server *cs, int fd, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void refuse(struct ctl_server *cs, int fd, const char *fmt, ...)
{
        char err[ERR_MAX], junk[4096];
        json_object *o = json_object_new_object();
        const char *s;
        size_t n;
        va_list ap;

        cs->refused++;
        va_start(ap, fmt);
        vsnprintf(err, sizeof(err), fmt, ap);
        va_end(ap);
        json_object_object_add(o, "ok", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string(err));
        s = json_object_to_json_string_length(o, JSON_FLAGS, &n);
        if (s) {
                char line[ERR_MAX + 64];

                n = n < sizeof(line) - 1 ? n : sizeof(line) - 2;
                memcpy(line, s, n);
                line[n++] = '\n';
                if (send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                        log_debug("control: refusal not sent: %s", strerror(errno));
        }
        json_object_put(o);
        /* Unread input would turn the client's EOF into ECONNRESET: what a
         * well-behaved client sent is read first. A client that sent more
         * (it may have queued a lot before the accept) gets the reset. */
        shutdown(fd, SHUT_WR);
        for (size_t total = 0; total < REFUSE_DRAIN_MAX;) {
                ssize_t n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);

                if (n <= 0)
                        break;
                total += n;
                cs->drained += n;
        }
        close(fd);
}

static void admit(struct ctl_server *cs, int fd)
{
        struct ucred cr;
        socklen_t len = sizeof(cr);
        struct client *c;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
                log_warn("control: cannot read a client's credentials: %s", strerror(errno));
                refuse(cs, fd, "cannot check your credentials");
                return;
        }
        if (cr.uid != 0 && cr.uid != geteuid()) {
                log_warn("control: refused pid %d: uid %u is neither root nor the daemon's",
                         (int)cr.pid, (unsigned)cr.uid);
                refuse(cs, fd, "permission denied: uid %u may not use this control socket",
                       (unsigned)cr.uid);
                return;
        }
        if (cs->nclients >= CTL_CLIENTS_MAX) {
                log_warn("control: refused pid %d: %u clients already", (int)cr.pid,
                         cs->nclients);
                refuse(cs, fd, "too many control connections (%u)", CTL_CLIENTS_MAX);
                return;
        }
        c = calloc(1, sizeof(*c));
        if (c)
                c->in = malloc(CTL_LINE_MAX + 2);
        if (!c || !c->in) {
                if (c)
                        free(c);
                refuse(cs, fd, "out of memory");
                return;
        }
        c->cs = cs;
        c->fd = fd;
        c->id = ++cs->next_id;
        if (lops(cs)->add(cs->env->loop, fd, EPOLLIN, on_client, c) < 0) {
                free(c->in);
                free(c);
                refuse(cs, fd, "cannot watch the connection");
                return;
        }
        c->watched = EPOLLIN;
        c->next = cs->clients;
        if (cs->clients)
                cs->clients->prev = c;
        cs->clients = c;
        cs->nclients++;
        log_debug("control: client %u connected (pid %d, uid %u)", c->id, (int)cr.pid,
                  (unsigned)cr.uid);
}

static void on_accept(void *opaque, int fd)
{
        admit(opaque, fd);
}

/* ---- life cycle --------------------------------------------------------- */

/*
 * The umask made the socket 0600 as bind() created it; nothing is done to
 * the path afterwards (a chmod() would follow a symbolic link someone put
 * there meanwhile). Checked without following: the socket we bound, ours,
 * 0600. Anything else means the directory is not ours alone.
 */
static int check_socket_file(const char *path)
{
        struct stat st;

        if (lstat(path, &st) < 0)
                return log_errno(-errno, "--control %s", path);
        if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0777) != 0600) {
                log_error("--control %s: not the socket this daemon bound (mode %o, owner %u): "
                          "someone else can write in its directory", path,
                          (unsigned)st.st_mode, (unsigned)st.st_uid);
                return -EPERM;
        }
        return 0;
}

int ctl_server_new(const struct ctl_server_config *cfg, struct ctl_server **ret)
{
        struct ctl_server *cs;
        mode_t old;
        int r;

        cs = calloc(1, sizeof(*cs));
        if (!cs || (cfg->path && !(cs->path = strdup(cfg->path)))) {
                free(cs);
                return -ENOMEM;
        }
        cs->dev = cfg->dev;
        cs->env = cfg->env;
        cs->stats = cfg->stats;
        cs->sandbox_hint = cfg->sandbox_hint;
        cs->fd = -1;
        if (!cfg->path) {
                *ret = cs;
                return 0;
        }
        /* Never reachable by others, not even for a moment. */
        old = umask(0177);
        cs->fd = backend_listen_unix(cfg->path, CTL_CLIENTS_MAX);
        umask(old);
        if (cs->fd < 0) {
                /* EADDRINUSE: a live daemon listens there; it keeps it. */
                r = cs->fd;
                log_error("--control %s: cannot listen: %s", cfg->path,
                          r == -EADDRINUSE ? "another process is listening there" : strerror(-r));
                goto fail;
        }
        r = check_socket_file(cfg->path);
        if (r < 0)
                goto fail_unlink;
        r = listener_new(cs->env->listeners, cs->fd, ACCEPT_BUDGET, on_accept, cs,
                         &cs->listener);
        if (r < 0)
                goto fail_unlink;
        log_info("control socket on %s", cfg->path);
        *ret = cs;
        return 0;
fail_unlink:
        unlink(cfg->path);
        close(cs->fd);
fail:
        free(cs->path);
        free(cs);
        return r;
}

void ctl_server_adopt(struct ctl_server *cs, int fd)
{
        admit(cs, fd);
}

void ctl_server_free(struct ctl_server *cs)
{
        if (!cs)
                return;
        while (cs->clients)
                client_free(cs->clients);
        if (cs->path) {
                listener_free(cs->listener);
                close(cs->fd);
                unlink(cs->path);
        }
        free(cs->path);
        free(cs);
}
