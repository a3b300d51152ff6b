/* SPDX-License-Identifier: MIT */
/*
 * Shared by the fuzz targets: a reader over the fuzzer's input that never
 * fails (past the end it yields zeros, so every input is a valid program),
 * and the libFuzzer entry points.
 */
#pragma once

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vserial/vserial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct fz {
        const uint8_t *p;
        size_t n;
};

static inline uint8_t fz_u8(struct fz *f)
{
        if (f->n == 0)
                return 0;
        f->n--;
        return *f->p++;
}

static inline uint16_t fz_u16(struct fz *f)
{
        uint16_t lo = fz_u8(f);

        return lo | (uint16_t)fz_u8(f) << 8;
}

static inline uint32_t fz_u32(struct fz *f)
{
        uint32_t lo = fz_u16(f);

        return lo | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
        uint64_t lo = fz_u32(f);

        return lo | (uint64_t)fz_u32(f) << 32;
}

/* Up to @len bytes in place; *@len is clamped to what is left. */
static inline const uint8_t *fz_take(struct fz *f, size_t *len)
{
        const uint8_t *p = f->p;

        if (*len > f->n)
                *len = f->n;
        f->p += *len;
        f->n -= *len;
        return p;
}

/*
 * A private heap copy of @len bytes: ASan then flags any read past the end,
 * which reading straight from the fuzzer's buffer would not always do.
 */
static inline uint8_t *fz_dup(struct fz *f, size_t *len)
{
        const uint8_t *src = fz_take(f, len);
        uint8_t *p = malloc(*len ? *len : 1);

        if (p && *len)
                memcpy(p, src, *len);
        return p;
}

/* FUZZ_VERBOSE=1 in the environment: the target prints what it sees (for
 * writing and checking seeds). */
static inline bool fz_verbose(void)
{
        static int verbose = -1;

        if (verbose < 0)
                verbose = getenv("FUZZ_VERBOSE") != NULL;
        return verbose;
}

static inline int fz_done(const struct fz *f)
{
        return f->n == 0;
}

/* A harness invariant broke: crash loudly so the fuzzer keeps the input. */
#define FZ_CHECK(cond)                                                      \
        do {                                                                \
                if (!(cond))                                                \
                        fz_fail(__FILE__, __LINE__, #cond);                 \
        } while (0)

static inline __attribute__((noreturn)) void
fz_fail(const char *file, int line, const char *what)
{
        fprintf(stderr, "%s:%d: harness check failed: %s\n", file, line, what);
        abort();
}

/* Host input through an fd: up to 64 KiB of the input written into a pipe,
 * then one vs_port_recv_fd() straight from it into the guest's buffers. */
static inline void fz_recv_pipe(struct vs_port *port, struct fz *in)
{
        size_t len = fz_u16(in);
        const uint8_t *p = fz_take(in, &len);
        int pp[2];
        ssize_t r;

        if (pipe2(pp, O_CLOEXEC | O_NONBLOCK) < 0)
                return;
        if (len && write(pp[1], p, len) < 0)
                len = 0;
        close(pp[1]);
        r = vs_port_recv_fd(port, pp[0], len + 1);
        FZ_CHECK(r <= (ssize_t)len);
        close(pp[0]);
}
