/* SPDX-License-Identifier: MIT */
/* vserial's command line and the --port SPEC language. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vserial/vserial.h"

enum backend_kind {
        BACKEND_NONE,
        BACKEND_UNIX,           /* listen on a unix socket, one client */
        BACKEND_STDIO,          /* the daemon's stdin/stdout */
};

struct port_spec {
        int32_t id;             /* -1 = pick */
        char name[VS_PORT_NAME_MAX + 1];
        bool console;
        enum backend_kind backend;
        char path[108];         /* sun_path */
};

#define OPT_MAX_PORTS_SPECS VS_MAX_PORTS

struct options {
        const char *socket_path;
        const char *control_path;
        uint32_t max_ports;
        int log_level;
        size_t nports;
        struct port_spec ports[OPT_MAX_PORTS_SPECS];
};

/*
 * Parse one SPEC ("id=1,name=org.x,backend=unix,path=/p"). On error returns
 * -EINVAL and writes a one-line reason (no newline) into @err.
 */
int spec_parse(const char *spec, struct port_spec *ret, char *err, size_t errlen);

/*
 * Parse argv. Returns 0, 1 when --help or --version was handled (exit 0),
 * or -EINVAL with a one-line reason in @err (exit 2).
 */
int options_parse(int argc, char **argv, struct options *ret, char *err,
                  size_t errlen);

void options_usage(FILE *out);
