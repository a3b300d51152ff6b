/* SPDX-License-Identifier: MIT */
/*
 * Command line parsing. Every rejection names the offending option and why,
 * in one line, so an operator can fix it without reading the source.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "options.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
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

static int spec_backend(struct port_spec *p, const char *val, char *err,
                        size_t errlen)
{
        if (strcmp(val, "unix") == 0)
                p->backend = BACKEND_UNIX;
        else if (strcmp(val, "stdio") == 0)
                p->backend = BACKEND_STDIO;
        else
                return fail(err, errlen, "unknown backend '%s' (expected unix or stdio)", val);
        return 0;
}

static int spec_key(struct port_spec *p, const char *key, const char *val,
                    char *err, size_t errlen)
{
        unsigned long v;

        if (strcmp(key, "console") == 0) {
                if (val)
                        return fail(err, errlen, "'console' takes no value");
                p->console = true;
                return 0;
        }
        if (!val)
                return fail(err, errlen, "key '%s' needs a value (%s=...)", key, key);
        if (strcmp(key, "id") == 0) {
                if (parse_uint(val, 0, VS_MAX_PORTS - 1, &v) < 0)
                        return fail(err, errlen, "id '%s' is not a number in 0..%u", val,
                                    VS_MAX_PORTS - 1);
                p->id = v;
        } else if (strcmp(key, "name") == 0) {
                if (!*val || strlen(val) > VS_PORT_NAME_MAX)
                        return fail(err, errlen, "name must be 1..%u characters", VS_PORT_NAME_MAX);
                for (const char *c = val; *c; c++)
                        if (*c <= ' ' || *c > '~')
                                return fail(err, errlen, "name '%s' has a space or non-ASCII character", val);
                strcpy(p->name, val);
        } else if (strcmp(key, "backend") == 0) {
                return spec_backend(p, val, err, errlen);
        } else if (strcmp(key, "path") == 0) {
                if (!*val || strlen(val) >= sizeof(p->path))
                        return fail(err, errlen, "path must be 1..%zu bytes", sizeof(p->path) - 1);
                strcpy(p->path, val);
        } else {
                return fail(err, errlen, "unknown key '%s'", key);
        }
        return 0;
}

static int spec_check(const struct port_spec *p, char *err, size_t errlen)
{
        if (p->backend == BACKEND_NONE)
                return fail(err, errlen, "backend= is missing (unix or stdio)");
        if (p->backend == BACKEND_UNIX && !p->path[0])
                return fail(err, errlen, "backend=unix needs path=");
        if (p->backend != BACKEND_UNIX && p->path[0])
                return fail(err, errlen, "path= is only for backend=unix");
        if (p->id == 0 && !p->console)
                return fail(err, errlen, "id 0 is reserved for a console port");
        return 0;
}

int spec_parse(const char *spec, struct port_spec *ret, char *err, size_t errlen)
{
        char buf[1024];
        char *save = NULL;
        int r = 0;

        memset(ret, 0, sizeof(*ret));
        ret->id = -1;
        if (strlen(spec) >= sizeof(buf))
                return fail(err, errlen, "too long");
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

/* Across ports: ids, names and paths unique, one stdio user, ids in range. */
static int ports_check(const struct options *o, char *err, size_t errlen)
{
        unsigned stdio = 0;

        for (size_t i = 0; i < o->nports; i++) {
                const struct port_spec *p = &o->ports[i];

                if (p->id >= 0 && (uint32_t)p->id >= o->max_ports)
                        return fail(err, errlen, "--port id=%d: not below --max-ports %u",
                                    p->id, o->max_ports);
                stdio += p->backend == BACKEND_STDIO;
                for (size_t j = 0; j < i; j++) {
                        const struct port_spec *q = &o->ports[j];

                        if (p->id >= 0 && p->id == q->id)
                                return fail(err, errlen, "--port id=%d is used twice", p->id);
                        if (p->name[0] && strcmp(p->name, q->name) == 0)
                                return fail(err, errlen, "--port name=%s is used twice", p->name);
                        if (p->path[0] && strcmp(p->path, q->path) == 0)
                                return fail(err, errlen, "--port path=%s is used twice", p->path);
                }
        }
        if (stdio > 1)
                return fail(err, errlen, "only one port can use backend=stdio");
        if (o->nports > o->max_ports)
                return fail(err, errlen, "%zu ports do not fit in --max-ports %u",
                            o->nports, o->max_ports);
        return 0;
}

void options_usage(FILE *out)
{
        fprintf(out,
                "Usage: vserial --socket PATH [--max-ports N] [--port SPEC]... [--control PATH]\n"
                "               [--log-level error|warn|info|debug]\n"
                "A virtio-serial (virtio-console) vhost-user backend.\n"
                "\n"
                "  -s, --socket PATH     listen for the VMM's vhost-user connection at PATH\n"
                "  -m, --max-ports N     ports the device offers, 1..%u (default %u)\n"
                "  -p, --port SPEC       add a port; SPEC is a comma-separated key=value list:\n"
                "        id=N                port number (default: next free; a console gets 0)\n"
                "        name=STR            name the guest sees (/sys/class/virtio-ports/*/name)\n"
                "        console             the guest binds the port to hvc\n"
                "        backend=unix,path=P listen on a unix socket, one host client at a time\n"
                "        backend=stdio       the daemon's stdin and stdout\n"
                "  -c, --control PATH    control socket (reserved; not implemented yet)\n"
                "  -l, --log-level L     error, warn, info (default) or debug\n"
                "  -h, --help            this text\n"
                "  -V, --version         print the version\n",
                VS_MAX_PORTS, VS_DEFAULT_MAX_PORTS);
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
        case 'm':
                if (parse_uint(arg, 1, VS_MAX_PORTS, &v) < 0)
                        return fail(err, errlen, "--max-ports '%s': expected a number in 1..%u",
                                    arg, VS_MAX_PORTS);
                o->max_ports = v;
                return 0;
        case 'l':
                o->log_level = log_level_parse(arg);
                if (o->log_level < 0)
                        return fail(err, errlen, "--log-level '%s': expected error, warn, info or debug", arg);
                return 0;
        case 'p':
                if (o->nports == OPT_MAX_PORTS_SPECS)
                        return fail(err, errlen, "--port: more than %u ports", VS_MAX_PORTS);
                if (spec_parse(arg, &o->ports[o->nports], why, sizeof(why)) < 0)
                        return fail(err, errlen, "--port '%s': %s", arg, why);
                o->nports++;
                return 0;
        default:
                return fail(err, errlen, "unknown option (see --help)");
        }
}

int options_parse(int argc, char **argv, struct options *o, char *err,
                  size_t errlen)
{
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' },
                { "max-ports", required_argument, NULL, 'm' },
                { "port", required_argument, NULL, 'p' },
                { "control", required_argument, NULL, 'c' },
                { "log-level", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        int c, r;

        memset(o, 0, sizeof(*o));
        o->max_ports = VS_DEFAULT_MAX_PORTS;
        o->log_level = LOG_INFO;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":s:m:p:c:l:hV", longopts, NULL)) != -1) {
                if (c == 'h' || c == 'V') {
                        if (c == 'h')
                                options_usage(stdout);
                        else
                                printf("vserial %s\n", VSERIAL_VERSION);
                        return 1;
                }
                if (c == ':')
                        return fail(err, errlen, "%s needs an argument", argv[optind - 1]);
                if (c == '?')
                        return fail(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
                r = parse_one(o, c, optarg, err, errlen);
                if (r < 0)
                        return r;
        }
        if (optind < argc)
                return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
        if (!o->socket_path)
                return fail(err, errlen, "--socket PATH is required");
        return ports_check(o, err, errlen);
}
