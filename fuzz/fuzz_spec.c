/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the daemon's command line: spec_parse() (the --port SPEC language)
 * and options_parse() over an argv built from the input.
 *
 * Input: u8 mode, then
 *   mode 0: the rest is one SPEC (NUL-terminated copy)
 *   mode 1: the rest is argv[1..], split at NUL bytes
 *   mode 2: u16 n, n bytes of --config file text, then argv as in mode 1,
 *           with --config pointing at that text
 * Every argument is its own exact-size heap block, so ASan sees a parser
 * reading past one. A --config in argv always names the harness's memfd:
 * the fuzzer must not make the parser open arbitrary files (/dev/tty would
 * hang it). --help output goes to /dev/null, not into the TAP stream.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "options.h"

#define MAX_ARGS 64

static struct options opts;     /* ~1 MB: not on the stack */

static void check_spec(const struct port_spec *p)
{
        FZ_CHECK(p->id >= -1 && p->id < (int32_t)VS_MAX_PORTS);
        FZ_CHECK(memchr(p->name, '\0', sizeof(p->name)) != NULL);
        FZ_CHECK(memchr(p->path, '\0', sizeof(p->path)) != NULL);
        FZ_CHECK(memchr(p->logfile, '\0', sizeof(p->logfile)) != NULL);
        FZ_CHECK(p->history <= SPEC_HISTORY_MAX && (p->history == 0 || p->history >= 4096));
        FZ_CHECK(p->journal_priority >= 0 && p->journal_priority <= 7);
        FZ_CHECK(p->fd == -1 || (p->fd >= 3 && p->backend == BACKEND_FD));
        FZ_CHECK(!p->logfile_timestamps || p->logfile[0]);
}

static void fuzz_spec(struct fz *in)
{
        size_t len = in->n;
        const uint8_t *src = fz_take(in, &len);
        char *spec = malloc(len + 1);
        struct port_spec p;
        char err[256];

        if (!spec)
                return;
        memcpy(spec, src, len);
        spec[len] = '\0';
        err[0] = '\0';
        if (spec_parse(spec, &p, err, sizeof(err)) == 0)
                check_spec(&p);
        else
                FZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
        free(spec);
}

/* A memfd holding the --config text, named by its /proc path. */
static int config_file(struct fz *in, char *path, size_t pathlen)
{
        size_t len = fz_u16(in);
        const uint8_t *text = fz_take(in, &len);
        int fd = memfd_create("fuzz-config", MFD_CLOEXEC);

        if (fd < 0)
                return -1;
        if (len && write(fd, text, len) != (ssize_t)len) {
                close(fd);
                return -1;
        }
        snprintf(path, pathlen, "/proc/self/fd/%d", fd);
        return fd;
}

static char *dup_str(const char *s)
{
        size_t n = strlen(s) + 1;
        char *p = malloc(n);

        if (p)
                memcpy(p, s, n);
        return p;
}

/* Never let the parser open a file the fuzzer named. */
static char *sanitize(char *arg, const char *prev, const char *cfg)
{
        bool value_of_config = prev && (!strcmp(prev, "--config") || !strcmp(prev, "-f"));
        char buf[96];

        if (value_of_config) {
                free(arg);
                return dup_str(cfg);
        }
        if (!strncmp(arg, "--config=", 9)) {
                snprintf(buf, sizeof(buf), "--config=%s", cfg);
                free(arg);
                return dup_str(buf);
        }
        return arg;
}

/* argv[1..] from NUL-separated input, each argument its own heap block. */
static int build_argv(struct fz *in, char **argv, const char *cfg)
{
        int argc = 0;

        argv[argc++] = dup_str("vserial");
        if (cfg) {
                argv[argc++] = dup_str("--config");
                argv[argc++] = dup_str(cfg);
        }
        while (!fz_done(in) && argc < MAX_ARGS) {
                const uint8_t *nul = memchr(in->p, '\0', in->n);
                size_t len = nul ? (size_t)(nul - in->p) : in->n;
                const uint8_t *s = fz_take(in, &len);
                char *arg = malloc(len + 1);

                fz_u8(in);      /* the separator */
                if (!arg)
                        break;
                memcpy(arg, s, len);
                arg[len] = '\0';
                argv[argc] = sanitize(arg, argv[argc - 1],
                                      cfg ? cfg : "/proc/self/fd/-1");
                argc++;
        }
        argv[argc] = NULL;
        return argc;
}

/* Forget getopt's position in an earlier (freed) argv. */
static void getopt_reset(void)
{
        static char arg0[] = "x";
        char *argv[] = { arg0, NULL };

        optind = 0;
        opterr = 0;
        while (getopt(1, argv, "") != -1)
                ;
}

static void parse_quietly(int argc, char **argv)
{
        char err[512];
        int saved, devnull, r;

        fflush(stdout);
        saved = dup(STDOUT_FILENO);
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull >= 0)
                dup2(devnull, STDOUT_FILENO);
        err[0] = '\0';
        getopt_reset();
        r = options_parse(argc, argv, &opts, err, sizeof(err));
        fflush(stdout);
        if (saved >= 0) {
                dup2(saved, STDOUT_FILENO);
                close(saved);
        }
        if (devnull >= 0)
                close(devnull);
        FZ_CHECK(r == 0 || r == 1 || r < 0);
        if (r < 0)
                FZ_CHECK(err[0] != '\0');
        if (r == 0) {
                /* --socket or --socket-fd (LISTEN_FDS is never set here) */
                FZ_CHECK(opts.socket_path != NULL || opts.socket_fd >= 0);
                FZ_CHECK(opts.instance != NULL);
                FZ_CHECK(opts.nports <= opts.max_ports);
                for (size_t i = 0; i < opts.nports; i++)
                        check_spec(&opts.ports[i]);
        }
        options_free(&opts);
}

static void fuzz_options(struct fz *in, bool with_config)
{
        char *argv[MAX_ARGS + 4];
        char cfg[64];
        int fd = -1, argc;

        if (with_config && (fd = config_file(in, cfg, sizeof(cfg))) < 0)
                return;
        argc = build_argv(in, argv, fd >= 0 ? cfg : NULL);
        parse_quietly(argc, argv);
        for (int i = 0; i < argc; i++)
                free(argv[i]);
        if (fd >= 0)
                close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fz in = { data, size };
        uint8_t mode = fz_u8(&in) % 3;

        if (mode == 0)
                fuzz_spec(&in);
        else
                fuzz_options(&in, mode == 2);
        return 0;
}
