/* SPDX-License-Identifier: MIT */
/*
 * What a port does with guest output besides its backend: the history ring
 * and its readers (history.c), the log tee (tee.c) and the Prometheus text
 * (metrics.c, over a stats object built here).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "history.h"
#include "log.h"
#include "loop/loop.h"
#include "tee.h"

static struct vs_epoll *ep;

static int setup(void **state)
{
        (void)state;
        return vs_epoll_new(&ep);
}

static int teardown(void **state)
{
        (void)state;
        vs_epoll_free(ep);
        return 0;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
        uint8_t *p = malloc(n);

        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)(i * 7 + seed + i / 251);
        return p;
}

/* Put @n bytes of @data in pieces of @piece, split over two iovecs. */
static void put_pieces(struct history *h, const uint8_t *data, size_t n, size_t piece)
{
        for (size_t at = 0; at < n; at += piece) {
                size_t len = n - at < piece ? n - at : piece;
                struct iovec iov[2] = { { (void *)(data + at), len / 2 },
                                        { (void *)(data + at + len / 2), len - len / 2 } };

                history_put(h, iov, 2, len);
        }
}

/* Everything a reader sends until it closes, running the loop. */
static size_t drain(int fd, uint8_t *out, size_t cap)
{
        size_t got = 0;

        for (int idle = 0; idle < 200;) {
                ssize_t n = recv(fd, out + got, cap - got, MSG_DONTWAIT);

                if (n == 0)
                        return got;
                if (n > 0) {
                        got += n;
                        idle = 0;
                        continue;
                }
                vs_epoll_run_once(ep, 5);
                idle++;
        }
        return got;
}

static void test_history_ring(void **state)
{
        struct history *h;
        uint8_t *data = pattern(100000, 1), out[8192];
        int sv[2];

        (void)state;
        assert_int_equal(history_new(4096, &vs_epoll_ops, ep, "test", &h), 0);
        assert_int_equal(history_len(h), 0);
        put_pieces(h, data, 1000, 333);
        assert_int_equal(history_len(h), 1000);
        /* Wraps many times, in pieces that straddle the end. */
        put_pieces(h, data + 1000, 99000, 777);
        assert_int_equal(history_len(h), 4096);
        assert_int_equal(history_size(h), 4096);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal(history_serve(h, sv[0], 100000, false), 0);
        assert_int_equal(drain(sv[1], out, sizeof(out)), 4096);
        assert_memory_equal(out, data + 100000 - 4096, 4096);
        close(sv[1]);
        /* One put larger than the ring keeps its last bytes. */
        put_pieces(h, data, 10000, 10000);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal(history_serve(h, sv[0], 100, false), 0);
        assert_int_equal(drain(sv[1], out, sizeof(out)), 100);
        assert_memory_equal(out, data + 10000 - 100, 100);
        close(sv[1]);
        assert_int_equal(history_readers(h), 0);
        history_free(h);
        free(data);
}

/* A follower gets the tail it asked for, then every new byte, also a burst
 * many times the ring's size, when it keeps up. */
static void test_history_follow(void **state)
{
        struct history *h;
        size_t big = 256 * 1024, got = 0;
        uint8_t *data = pattern(big, 2), *out = malloc(big + 100);
        int sv[2], buf = 1 << 20;

        (void)state;
        assert_int_equal(history_new(4096, &vs_epoll_ops, ep, "test", &h), 0);
        put_pieces(h, data, 3000, 3000);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
        assert_int_equal(history_serve(h, sv[0], 10, true), 0);
        assert_int_equal(history_readers(h), 1);
        put_pieces(h, data + 3000, big - 3000, 64 * 1024);
        while (got < big - 3000 + 10) {
                ssize_t n = recv(sv[1], out + got, big + 100 - got, MSG_DONTWAIT);

                if (n <= 0) {
                        assert_true(n < 0 && errno == EAGAIN);
                        vs_epoll_run_once(ep, 10);
                        continue;
                }
                got += n;
        }
        assert_memory_equal(out, data + 2990, big - 2990);
        assert_int_equal(history_readers(h), 1);
        /* The reader leaves: gone from the port at its hang-up. */
        close(sv[1]);
        vs_epoll_run_once(ep, 100);
        assert_int_equal(history_readers(h), 0);
        history_free(h);
        free(data);
        free(out);
}

/* A follower that does not read falls behind more than the ring holds: it
 * is disconnected, never sent a stream with a hole. */
static void test_history_overrun(void **state)
{
        struct history *h;
        uint8_t *data = pattern(1 << 20, 3), out[4096];
        int sv[2], small = 4096;
        size_t got = 0;

        (void)state;
        assert_int_equal(history_new(4096, &vs_epoll_ops, ep, "test", &h), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        assert_int_equal(history_serve(h, sv[0], 0, true), 0);
        put_pieces(h, data, 1 << 20, 4096);
        assert_int_equal(history_readers(h), 0);
        /* What it got is a prefix of the output, then the end. */
        for (;;) {
                ssize_t n = recv(sv[1], out, sizeof(out), 0);

                if (n <= 0)
                        break;
                assert_memory_equal(out, data + got, n);
                got += n;
        }
        assert_true(got < (1 << 20));
        close(sv[1]);
        history_free(h);
        free(data);
}

static void test_history_readers_max(void **state)
{
        struct history *h;
        int fds[HISTORY_READERS_MAX + 1][2];

        (void)state;
        assert_int_equal(history_new(4096, &vs_epoll_ops, ep, "test", &h), 0);
        for (unsigned i = 0; i <= HISTORY_READERS_MAX; i++) {
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
                assert_int_equal(history_serve(h, fds[i][0], 0, true),
                                 i < HISTORY_READERS_MAX ? 0 : -EMFILE);
        }
        assert_int_equal(history_readers(h), HISTORY_READERS_MAX);
        history_free(h);
        for (unsigned i = 0; i <= HISTORY_READERS_MAX; i++) {
                char c;

                /* Closed by the history (the last one at once). */
                assert_int_equal(read(fds[i][1], &c, 1), 0);
                close(fds[i][1]);
        }
}

/* ---- tee ------------------------------------------------------------------ */

static char *read_all(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        char *buf = malloc(1 << 20);

        *len = fread(buf, 1, 1 << 20, f);
        fclose(f);
        buf[*len] = '\0';
        return buf;
}

static void tee_put(struct tee *t, const char *s)
{
        struct iovec iov = { (void *)s, strlen(s) };

        tee_write(t, &iov, 1, strlen(s));
}

static void test_tee_bytes(void **state)
{
        char path[] = "/tmp/vstee-XXXXXX";
        uint8_t *data = pattern(300000, 4);
        struct tee *t;
        size_t len;
        char *got;
        int fd = mkstemp(path);

        (void)state;
        assert_true(write(fd, "old\n", 4) == 4);
        close(fd);
        assert_int_equal(tee_open(path, false, "test", &t), 0);
        for (size_t at = 0; at < 300000; at += 1000) {
                struct iovec iov[3] = { { data + at, 100 }, { data + at + 100, 0 },
                                        { data + at + 100, 2000 } };

                /* Of the offered 2100, the first 1000 were taken. */
                tee_write(t, iov, 3, 1000);
        }
        assert_int_equal(tee_written(t), 300000);
        assert_int_equal(tee_lost(t), 0);
        tee_close(t);
        got = read_all(path, &len);
        assert_int_equal(len, 300004);
        assert_memory_equal(got, "old\n", 4);
        assert_memory_equal(got + 4, data, 300000);
        free(got);
        free(data);
        unlink(path);
}

/* Every line starts with a timestamp, also lines split across writes and
 * many lines in one write; without the stamps it is the output. */
static void test_tee_timestamps(void **state)
{
        char path[] = "/tmp/vstee-XXXXXX", stamp[TEE_STAMP_LEN + 1];
        const char *parts[] = { "first line\nsec", "ond line\n", "\n", "a\nb\nc\n", "no newline" };
        const char *want = "first line\nsecond line\n\na\nb\nc\nno newline";
        char many[3000];
        struct tee *t;
        size_t len, wl = strlen(want);
        char *got, *p;
        int fd = mkstemp(path), lines = 0;

        (void)state;
        close(fd);
        tee_format_stamp(1738326896123456789ull, stamp);
        assert_string_equal(stamp, "2025-01-31T12:34:56.123456Z ");
        assert_int_equal(tee_open(path, true, "test", &t), 0);
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
                tee_put(t, parts[i]);
        assert_int_equal(tee_written(t), wl);
        /* More lines in one write than one writev() carries. */
        for (int i = 0; i < 1500; i++)
                memcpy(many + 2 * i, "x\n", 2);
        tee_put(t, "\n");
        {
                struct iovec iov = { many, 3000 };

                tee_write(t, &iov, 1, 3000);
        }
        tee_close(t);
        got = read_all(path, &len);
        /* Strip the stamps: each one at a line start, all alike in shape. */
        for (size_t at = 0; at < len;) {
                p = got + at;
                assert_true(len - at >= TEE_STAMP_LEN);
                assert_true(p[4] == '-' && p[10] == 'T' && p[19] == '.' && p[26] == 'Z' &&
                            p[27] == ' ');
                memmove(p, p + TEE_STAMP_LEN, len - at - TEE_STAMP_LEN + 1);
                len -= TEE_STAMP_LEN;
                lines++;
                p = memchr(got + at, '\n', len - at);
                if (!p)
                        break;
                at = (size_t)(p - got) + 1;
        }
        assert_memory_equal(got, want, wl);
        assert_memory_equal(got + wl, "\n", 1);
        assert_memory_equal(got + wl + 1, many, 3000);
        assert_int_equal(lines, 7 + 1500);
        free(got);
        unlink(path);
}

/* A file that takes nothing (/dev/full): nothing blocks, all is counted
 * lost, and the log says so once for a burst. */
static void test_tee_full(void **state)
{
        struct log_stats a, b;
        struct tee *t;
        char buf[1000];

        (void)state;
        memset(buf, 'x', sizeof(buf));
        assert_int_equal(tee_open("/dev/full", false, "test", &t), 0);
        log_get_stats(&a);
        for (int i = 0; i < 500; i++) {
                struct iovec iov = { buf, sizeof(buf) };

                tee_write(t, &iov, 1, sizeof(buf));
        }
        log_get_stats(&b);
        assert_int_equal(tee_lost(t), 500000);
        assert_int_equal(tee_written(t), 0);
        assert_int_equal(b.written - a.written, 1);
        tee_close(t);
}

static void test_tee_symlink(void **state)
{
        char dir[] = "/tmp/vstee-XXXXXX", link[64], target[64];
        struct tee *t;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(link, sizeof(link), "%s/l", dir);
        snprintf(target, sizeof(target), "%s/t", dir);
        assert_int_equal(symlink(target, link), 0);
        assert_int_equal(tee_open(link, false, "test", &t), -ELOOP);
        assert_int_equal(access(target, F_OK), -1);
        unlink(link);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_history_ring),
                cmocka_unit_test(test_history_follow),
                cmocka_unit_test(test_history_overrun),
                cmocka_unit_test(test_history_readers_max),
                cmocka_unit_test(test_tee_bytes),
                cmocka_unit_test(test_tee_timestamps),
                cmocka_unit_test(test_tee_full),
                cmocka_unit_test(test_tee_symlink),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
