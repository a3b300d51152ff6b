/* SPDX-License-Identifier: MIT */
/* vserial's command line and the --port SPEC language. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backends.h"
#include "vserial/vhost_user.h"
#include "vserial/vserial.h"

/* A port's backend= (backends.h lists them; BACKEND_NONE: not given). */
enum backend_kind {
        BACKEND_NONE,
#define X(kind, name, ops) kind,
        BACKENDS(X)
#undef X
        BACKEND_COUNT
};

/* How a new host client starts (on-connect=). */
enum on_connect {
        ON_CONNECT_REPLAY,      /* with the guest output no client has had yet */
        ON_CONNECT_DISCARD,     /* clean: that output is dropped, counted */
};

#define SPEC_PATH_MAX 512
#define SPEC_CLIENTS_MAX 64u
#define SPEC_BUFFER_MIN 4096u
#define SPEC_BUFFER_MAX (1u << 30)
/* history=: what a console keeps unless told, and the most any port may. */
#define SPEC_HISTORY_CONSOLE (64u << 10)
#define SPEC_HISTORY_MAX (64u << 20)
#define SPEC_JOURNAL_PRIORITY 6         /* syslog's LOG_INFO */

struct port_spec {
        int32_t id;             /* -1 = pick */
        char name[VS_PORT_NAME_MAX + 1];
        bool console;
        enum backend_kind backend;
        char path[SPEC_PATH_MAX];       /* unix, unix-connect, file */
        char input[SPEC_PATH_MAX];      /* file: sent to the guest */
        char host[64];                  /* tcp: numeric address */
        uint16_t tcp_port;
        size_t buffer;                  /* bound on buffered guest output */
        /* ---- history, log tee, fd and journal backends (issue 13) ---- */
        size_t history;                 /* guest output kept in memory; 0: none */
        bool history_set;               /* history= given (else the default) */
        char logfile[SPEC_PATH_MAX];    /* every guest byte also appended here */
        bool logfile_timestamps;        /* ... with a time at each line start */
        int fd;                         /* backend=fd: fd=N, or -1: the one
                                         * systemd passed named like the port */
        int journal_priority;           /* backend=journal: PRIORITY= 0..7 */
        /* ---- end of issue 13's keys ---- */
        /* Host connections (issues 13 and 15): */
        unsigned clients;               /* unix, tcp: clients at once, 1.. */
        enum on_connect on_connect;
        bool on_connect_set;            /* given in the SPEC */
};

/* "unix", "tcp", ... */
const char *backend_name(enum backend_kind kind);
/* Is backend=journal built in (libsystemd)? */
bool backend_journal_available(void);

/* The daemon speaks vhost-user only: its ring index is 8 bits wide. */
#define OPT_MAX_PORTS VS_VHOST_USER_MAX_PORTS
#define OPT_MAX_PORTS_SPECS OPT_MAX_PORTS
#define OPT_MAX_ALLOW_PATHS 16

#define OPT_INSTANCE_MAX 64

struct options {
        const char *config_path;
        const char *socket_path;
        int socket_fd;          /* --socket-fd: a listening socket, or -1 */
        const char *control_path;
        const char *user;       /* --user: run as this user after set-up */
        bool no_sandbox;        /* --no-sandbox */
        /* What the sandbox lets ports added at run time use (sandbox.h). */
        const char *allow_paths[OPT_MAX_ALLOW_PATHS];   /* --allow-path */
        size_t nallow_paths;
        bool allow_tcp;         /* --allow-tcp */
        bool allow_connect;     /* --allow-connect */
        /* --instance: VSERIAL_INSTANCE= of journal entries and the instance
         * label of metrics (default: see options_parse). */
        const char *instance;
        uint32_t max_ports;
        int log_level;
        size_t nports;
        struct port_spec ports[OPT_MAX_PORTS_SPECS];
        char *config_text;      /* the --config file */
        char **config_args;     /* its lines as "--key=value" */
        int config_nargs;
        char instance_buf[OPT_INSTANCE_MAX + 1];        /* a derived --instance */
};

/*
 * Parse one SPEC ("id=1,name=org.x,backend=unix,path=/p"). On error returns
 * -EINVAL and writes a one-line reason (no newline) into @err.
 */
int spec_parse(const char *spec, struct port_spec *ret, char *err, size_t errlen);

/*
 * Parse argv (and the --config FILE it names: one option per line, as on
 * the command line without the leading dashes; '#' starts a comment).
 * Returns 0, 1 when --help or --version was handled (exit 0), or -EINVAL
 * with a one-line reason in @err (exit 2). Strings point into argv or into
 * storage owned by @ret (freed with options_free).
 */
int options_parse(int argc, char **argv, struct options *ret, char *err,
                  size_t errlen);

void options_usage(FILE *out);
void options_free(struct options *o);
