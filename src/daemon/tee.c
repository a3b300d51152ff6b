/* SPDX-License-Identifier: MIT */
/* A port's guest output appended to a file: see tee.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tee.h"

/* iovecs per writev(): data pieces and the timestamps between them */
#define TEE_IOV 64

struct tee {
        int fd;
        bool timestamps;
        bool at_line_start;     /* the next byte starts a line */
        bool failing;           /* the last write lost bytes */
        bool created;           /* tee_open() made the file */
        const char *label;
        char *path;
        uint64_t written;
        uint64_t lost;
        uint64_t report_ns;     /* when that was */
};

static uint64_t clock_ns(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

void tee_format_stamp(uint64_t ns, char out[TEE_STAMP_LEN + 1])
{
        time_t s = (time_t)(ns / 1000000000u);
        struct tm tm;

        size_t n;

        /* gmtime_r needs no time zone file: the sandbox reads none. */
        gmtime_r(&s, &tm);
        n = strftime(out, TEE_STAMP_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out + n, TEE_STAMP_LEN + 1 - n, ".%06uZ ",
                 (unsigned)(ns % 1000000000u / 1000u) % 1000000u);
}

/* Append to @path, never through a link; created 0640 (*@created). */
static int open_log(const char *path, const char *label, bool *created)
{
        int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW;
        int fd = open(path, flags | O_CREAT | O_EXCL, 0640);
        int err;

        *created = fd >= 0;
        if (fd < 0 && errno == EEXIST)
                fd = open(path, flags);
        if (fd >= 0)
                return fd;
        err = errno;
        log_error("%s: cannot open logfile %s: %s", label, path,
                  err == ELOOP ? "it is a symbolic link (not followed)" : strerror(err));
        return -err;
}

int tee_open(const char *path, bool timestamps, const char *label, struct tee **ret)
{
        struct tee *t = calloc(1, sizeof(*t));
        int fd;

        if (!t || !(t->path = strdup(path))) {
                free(t);
                return -ENOMEM;
        }
        fd = open_log(path, label, &t->created);
        if (fd < 0) {
                free(t->path);
                free(t);
                return fd;
        }
        t->fd = fd;
        t->timestamps = timestamps;
        t->at_line_start = true;
        t->label = label;
        *ret = t;
        return 0;
}

void tee_close(struct tee *t)
{
        if (!t)
                return;
        close(t->fd);
        free(t->path);
        free(t);
}

uint64_t tee_written(const struct tee *t)
{
        return t->written;
}

uint64_t tee_lost(const struct tee *t)
{
        return t->lost;
}

/* Say that bytes are being lost: when it starts, then every TEE_REPORT_S. */
static void report_loss(struct tee *t, int err)
{
        uint64_t now = clock_ns(CLOCK_MONOTONIC);

        if (!t->failing) {
                log_warn("%s: logfile %s: %s: guest output is not being logged "
                         "(the guest is not held back); counting what is lost", t->label,
                         t->path, strerror(err));
        } else if (now - t->report_ns >= TEE_REPORT_S * 1000000000ull) {
                log_warn("%s: logfile %s: %s: %llu bytes lost so far", t->label, t->path,
                         strerror(err), (unsigned long long)t->lost);
        } else {
                return;
        }
        t->failing = true;
        t->report_ns = now;
}

static void report_recovery(struct tee *t)
{
        if (!t->failing)
                return;
        log_info("%s: logfile %s: writing again; %llu bytes of guest output were lost",
                 t->label, t->path, (unsigned long long)t->lost);
        t->failing = false;
}

/* Of the first @w bytes of @iov, how many are guest bytes (not @stamp)? */
static size_t data_in(const struct iovec *iov, unsigned k, size_t w, const char *stamp)
{
        size_t data = 0;

        for (unsigned i = 0; i < k && w; i++) {
                size_t len = iov[i].iov_len < w ? iov[i].iov_len : w;

                if (iov[i].iov_base != stamp)
                        data += len;
                w -= len;
        }
        return data;
}

/* One writev() of @data guest bytes in @iov (and the stamps between). */
static void flush_iov(struct tee *t, const struct iovec *iov, unsigned k, size_t data,
                      const char *stamp)
{
        ssize_t w = writev(t->fd, iov, k);
        /* A regular file takes less only when it cannot grow. */
        int err = w < 0 ? errno : ENOSPC;
        size_t took = w > 0 ? data_in(iov, k, (size_t)w, stamp) : 0;

        t->written += took;
        if (took == data) {
                report_recovery(t);
                return;
        }
        t->lost += data - took;
        report_loss(t, err);
}

void tee_write(struct tee *t, const struct iovec *iov, unsigned cnt, size_t n)
{
        struct iovec out[TEE_IOV];
        char stamp[TEE_STAMP_LEN + 1];
        size_t data = 0;
        unsigned k = 0;

        if (t->timestamps)
                tee_format_stamp(clock_ns(CLOCK_REALTIME), stamp);
        for (unsigned i = 0; i < cnt && n; i++) {
                const char *p = iov[i].iov_base;
                size_t left = iov[i].iov_len < n ? iov[i].iov_len : n;

                n -= left;
                while (left) {
                        const char *nl = t->timestamps ? memchr(p, '\n', left) : NULL;
                        size_t len = nl ? (size_t)(nl - p) + 1 : left;

                        if (k + 2 > TEE_IOV) {
                                flush_iov(t, out, k, data, stamp);
                                k = 0;
                                data = 0;
                        }
                        if (t->timestamps && t->at_line_start)
                                out[k++] = (struct iovec){ stamp, TEE_STAMP_LEN };
                        out[k++] = (struct iovec){ (void *)p, len };
                        data += len;
                        t->at_line_start = nl != NULL;
                        p += len;
                        left -= len;
                }
        }
        if (k)
                flush_iov(t, out, k, data, stamp);
}

void tee_unlink_created(struct tee *t)
{
        if (t->created)
                unlink(t->path);
}

int tee_reopen(struct tee *t)
{
        bool created;
        int fd = open_log(t->path, t->label, &created);

        if (fd < 0)
                return fd;
        close(t->fd);
        t->fd = fd;
        log_info("%s: reopened logfile %s", t->label, t->path);
        return 0;
}
