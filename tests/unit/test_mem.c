/* SPDX-License-Identifier: MIT */
/* Guest memory table: region checks, translation, iovecs, fd mappings,
 * and files that shrink under us (seals, the SIGBUS guard). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "mem/mem.h"
#include "vserial/vserial.h"

static uint8_t ram_a[4096];
static uint8_t ram_b[4096];

/* ram_a at gpa 0x1000 (uva 0x9000), ram_b right after it in gpa (0x2000,
 * uva 0xa000): adjacent in both, two regions all the same. */
static void two_regions(struct vs_mem *mem)
{
        vs_mem_init(mem);
        assert_int_equal(vs_mem_add_host(mem, ram_a, 0x1000, 4096, 0x9000), 0);
        assert_int_equal(vs_mem_add_host(mem, ram_b, 0x2000, 4096, 0xa000), 0);
}

static void test_empty(void **state)
{
        struct vs_mem mem;
        uint64_t len = 1;
        struct iovec iov[1];
        unsigned n = 0;

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(mem.n, 0);
        assert_null(vs_mem_gpa(&mem, 0, &len));
        assert_null(vs_mem_uva(&mem, 0, &len));
        assert_null(vs_mem_range(&mem, 0, 1, false));
        assert_int_equal(vs_mem_iov(&mem, 0, 1, iov, 1, &n), -EFAULT);
        assert_int_equal(n, 0);
        vs_mem_clear(&mem);
        vs_mem_clear(NULL);
}

static void test_add_host_translate(void **state)
{
        struct vs_mem mem;
        uint64_t len;

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_host(&mem, ram_a, 0x1000, 4096, 0x7000),
                         0);
        assert_int_equal(mem.n, 1);

        len = 16;
        assert_ptr_equal(vs_mem_gpa(&mem, 0x1000, &len), ram_a);
        assert_int_equal(len, 16);

        /* Clamped at the region end. */
        len = 100;
        assert_ptr_equal(vs_mem_gpa(&mem, 0x1ff0, &len), ram_a + 0xff0);
        assert_int_equal(len, 16);
        len = UINT64_MAX;
        assert_ptr_equal(vs_mem_gpa(&mem, 0x1fff, &len), ram_a + 0xfff);
        assert_int_equal(len, 1);

        /* Just outside on either side, and zero length. */
        len = 1;
        assert_null(vs_mem_gpa(&mem, 0x2000, &len));
        len = 1;
        assert_null(vs_mem_gpa(&mem, 0xfff, &len));
        len = 0;
        assert_null(vs_mem_gpa(&mem, 0x1000, &len));
        len = 1;
        assert_null(vs_mem_gpa(&mem, UINT64_MAX, &len));
        vs_mem_clear(&mem);
}

static void test_gpa_vs_uva(void **state)
{
        struct vs_mem mem;
        uint64_t len;

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_host(&mem, ram_a, 0x1000, 4096, 0x5000),
                         0);
        assert_int_equal(vs_mem_add_host(&mem, ram_b, 0x5000, 4096, 0x1000),
                         0);

        len = 8;
        assert_ptr_equal(vs_mem_gpa(&mem, 0x1004, &len), ram_a + 4);
        len = 8;
        assert_ptr_equal(vs_mem_uva(&mem, 0x1004, &len), ram_b + 4);
        len = 8;
        assert_ptr_equal(vs_mem_gpa(&mem, 0x5004, &len), ram_b + 4);
        len = 8;
        assert_ptr_equal(vs_mem_uva(&mem, 0x5004, &len), ram_a + 4);

        len = 4096;
        assert_ptr_equal(vs_mem_uva(&mem, 0x5010, &len), ram_a + 0x10);
        assert_int_equal(len, 4096 - 0x10);
        len = 1;
        assert_null(vs_mem_uva(&mem, 0x3000, &len));

        assert_ptr_equal(vs_mem_range(&mem, 0x5000, 4096, true), ram_a);
        assert_ptr_equal(vs_mem_range(&mem, 0x5000, 4096, false), ram_b);
        vs_mem_clear(&mem);
}

static void test_zero_size_and_null(void **state)
{
        struct vs_mem mem;

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_host(&mem, ram_a, 0x1000, 0, 0x1000),
                         -EINVAL);
        assert_int_equal(vs_mem_add_host(&mem, NULL, 0x1000, 16, 0x1000),
                         -EINVAL);
        assert_int_equal(vs_mem_add_fd(&mem, -1, 0x1000, 0, 0x1000, 0),
                         -EINVAL);
        assert_int_equal(mem.n, 0);
}

static void test_overflow(void **state)
{
        struct vs_mem mem;

        (void)state;
        vs_mem_init(&mem);
        /* gpa + size wraps, or ends exactly at 2^64. */
        assert_int_equal(vs_mem_add_host(&mem, ram_a, UINT64_MAX - 15, 32, 0),
                         -EINVAL);
        assert_int_equal(vs_mem_add_host(&mem, ram_a, UINT64_MAX - 15, 16, 0),
                         -EINVAL);
        assert_int_equal(vs_mem_add_host(&mem, ram_a, 0, UINT64_MAX, 1),
                         -EINVAL);
        /* uva + size wraps. */
        assert_int_equal(vs_mem_add_host(&mem, ram_a, 0, 32, UINT64_MAX - 8),
                         -EINVAL);
        /* host + size wraps the address space. */
        assert_int_equal(vs_mem_add_host(&mem, (void *)(UINTPTR_MAX - 8), 0,
                                         32, 0), -EINVAL);
        /* mmap_offset + size wraps. */
        assert_int_equal(vs_mem_add_fd(&mem, -1, 0, 4096, 0,
                                       UINT64_MAX - 100), -EINVAL);
        assert_int_equal(mem.n, 0);

        /* The highest representable region is fine. */
        assert_int_equal(vs_mem_add_host(&mem, ram_a, UINT64_MAX - 16, 16,
                                         0x1000), 0);
        vs_mem_clear(&mem);
}

/*
 * Regions added in turn next to one of ram_a at gpa 0x10000 (4 KiB, uva
 * 0x100000), each from ram_b + @off: the result each must have, and the
 * regions there are after it.
 */
struct add_row {
        uint64_t off, gpa, size, uva;
        int want;
        unsigned n;
};

static void add_after_one(const struct add_row *r, size_t rows)
{
        struct vs_mem mem;

        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_host(&mem, ram_a, 0x10000, 0x1000,
                                         0x100000), 0);
        for (size_t i = 0; i < rows; i++) {
                assert_int_equal(vs_mem_add_host(&mem, ram_b + r[i].off, r[i].gpa,
                                                 r[i].size, r[i].uva), r[i].want);
                assert_int_equal(mem.n, r[i].n);
        }
        vs_mem_clear(&mem);
}

static void test_overlap_gpa(void **state)
{
        static const struct add_row rows[] = {
                /* identical, inside, containing, straddling either end */
                { 0, 0x10000, 0x1000, 0x200000, -EINVAL, 1 },
                { 0, 0x10800, 0x10, 0x200000, -EINVAL, 1 },
                { 0, 0xf000, 0x3000, 0x200000, -EINVAL, 1 },
                { 0, 0xf800, 0x801, 0x200000, -EINVAL, 1 },
                { 0, 0x10fff, 0x1000, 0x200000, -EINVAL, 1 },
                /* adjacent on both sides is fine */
                { 0, 0x11000, 0x800, 0x200000, 0, 2 },
                { 0x800, 0xf800, 0x800, 0x300000, 0, 3 },
        };

        (void)state;
        add_after_one(rows, sizeof(rows) / sizeof(rows[0]));
}

/* Disjoint in gpa, overlapping in uva. */
static void test_overlap_uva(void **state)
{
        static const struct add_row rows[] = {
                { 0, 0x20000, 0x1000, 0x100fff, -EINVAL, 1 },
                { 0, 0x20000, 0x1000, 0xff001, -EINVAL, 1 },
                { 0, 0x20000, 0x1000, 0x101000, 0, 2 },
        };

        (void)state;
        add_after_one(rows, sizeof(rows) / sizeof(rows[0]));
}

static void test_full(void **state)
{
        static uint8_t bytes[VS_MEM_MAX_REGIONS + 1];
        struct vs_mem mem;

        (void)state;
        vs_mem_init(&mem);
        for (unsigned i = 0; i < VS_MEM_MAX_REGIONS; i++)
                assert_int_equal(vs_mem_add_host(&mem, &bytes[i], i, 1,
                                                 0x1000 + i), 0);
        assert_int_equal(vs_mem_add_host(&mem, &bytes[VS_MEM_MAX_REGIONS],
                                         VS_MEM_MAX_REGIONS, 1, 0x2000),
                         -ENOSPC);
        assert_int_equal(mem.n, VS_MEM_MAX_REGIONS);
        vs_mem_clear(&mem);
        assert_int_equal(mem.n, 0);
}

static void test_range(void **state)
{
        struct vs_mem mem;

        (void)state;
        two_regions(&mem);
        assert_ptr_equal(vs_mem_range(&mem, 0x1000, 4096, false), ram_a);
        assert_ptr_equal(vs_mem_range(&mem, 0x1ff0, 16, false),
                         ram_a + 0xff0);
        /* Adjacent in gpa but not one region. */
        assert_null(vs_mem_range(&mem, 0x1ff0, 17, false));
        assert_null(vs_mem_range(&mem, 0x1000, 0, false));
        assert_null(vs_mem_range(&mem, 0x3000, 1, false));
        assert_ptr_equal(vs_mem_range(&mem, 0xa000, 16, true), ram_b);
        assert_null(vs_mem_range(&mem, 0x2000, 16, true));
        vs_mem_clear(&mem);
}

static void test_iov_split(void **state)
{
        struct vs_mem mem;
        struct iovec iov[4];
        unsigned n = 1;

        (void)state;
        two_regions(&mem);
        /* Appends after the entries in use. */
        iov[0].iov_base = NULL;
        iov[0].iov_len = 7;
        assert_int_equal(vs_mem_iov(&mem, 0x1f00, 0x200, iov, 4, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(iov[0].iov_len, 7);
        assert_ptr_equal(iov[1].iov_base, ram_a + 0xf00);
        assert_int_equal(iov[1].iov_len, 0x100);
        assert_ptr_equal(iov[2].iov_base, ram_b);
        assert_int_equal(iov[2].iov_len, 0x100);

        /* Zero length adds nothing. */
        assert_int_equal(vs_mem_iov(&mem, 0x1000, 0, iov, 4, &n), 0);
        assert_int_equal(n, 3);
        /* Runs off the end of the second region. */
        assert_int_equal(vs_mem_iov(&mem, 0x2f00, 0x101, iov, 4, &n), -EFAULT);
        assert_int_equal(n, 3);
        /* Starts in a hole. */
        assert_int_equal(vs_mem_iov(&mem, 0x800, 1, iov, 4, &n), -EFAULT);
        /* Wraps. */
        assert_int_equal(vs_mem_iov(&mem, 0x1000, UINT64_MAX, iov, 4, &n),
                         -EFAULT);
        assert_int_equal(vs_mem_iov(&mem, UINT64_MAX, 2, iov, 4, &n), -EFAULT);
        /* Needs two entries, one left. */
        assert_int_equal(vs_mem_iov(&mem, 0x1f00, 0x200, iov, 4, &n), -E2BIG);
        assert_int_equal(n, 3);
        assert_int_equal(vs_mem_iov(&mem, 0x1f00, 0x100, iov, 4, &n), 0);
        assert_int_equal(n, 4);
        vs_mem_clear(&mem);
}

static void test_iov_one_byte_regions(void **state)
{
        /* Every other byte, so no two regions are contiguous on the host. */
        static uint8_t bytes[2 * VS_MEM_MAX_REGIONS];
        struct iovec iov[VS_MEM_MAX_REGIONS];
        struct vs_mem mem;
        unsigned n = 0;

        (void)state;
        vs_mem_init(&mem);
        for (unsigned i = 0; i < VS_MEM_MAX_REGIONS; i++)
                assert_int_equal(vs_mem_add_host(&mem, &bytes[2 * i],
                                                 0x100 + i, 1, 0x500 + i), 0);
        assert_int_equal(vs_mem_iov(&mem, 0x100, VS_MEM_MAX_REGIONS, iov,
                                    VS_MEM_MAX_REGIONS, &n), 0);
        assert_int_equal(n, VS_MEM_MAX_REGIONS);
        for (unsigned i = 0; i < n; i++) {
                assert_ptr_equal(iov[i].iov_base, &bytes[2 * i]);
                assert_int_equal(iov[i].iov_len, 1);
        }
        n = 0;
        assert_int_equal(vs_mem_iov(&mem, 0x100, VS_MEM_MAX_REGIONS, iov,
                                    VS_MEM_MAX_REGIONS - 1, &n), -E2BIG);
        assert_int_equal(n, 0);
        assert_int_equal(vs_mem_iov(&mem, 0x100, VS_MEM_MAX_REGIONS + 1, iov,
                                    VS_MEM_MAX_REGIONS, &n), -EFAULT);
        vs_mem_clear(&mem);
}

static int make_memfd(size_t size)
{
        int fd = memfd_create("test_mem", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

static void test_add_fd_offset(void **state)
{
        const uint64_t off = 0x3000, size = 0x2000;
        struct vs_mem mem;
        uint64_t len = 64;
        uint8_t *p, c = 0;
        int fd = make_memfd(off + size);

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0x40000, size, 0x7f00000,
                                       off), 0);
        assert_int_equal(mem.n, 1);
        assert_non_null(mem.r[0].map_base);
        assert_int_equal(mem.r[0].map_len, off + size);
        assert_ptr_equal(mem.r[0].host, (uint8_t *)mem.r[0].map_base + off);

        /* gpa 0x40010 is file offset off + 0x10. */
        p = vs_mem_gpa(&mem, 0x40010, &len);
        assert_non_null(p);
        assert_int_equal(len, 64);
        *p = 0xa5;
        assert_int_equal(pread(fd, &c, 1, (off_t)(off + 0x10)), 1);
        assert_int_equal(c, 0xa5);

        c = 0x5a;
        assert_int_equal(pwrite(fd, &c, 1, (off_t)(off + size - 1)), 1);
        len = 10;
        p = vs_mem_uva(&mem, 0x7f00000 + size - 1, &len);
        assert_non_null(p);
        assert_int_equal(len, 1);
        assert_int_equal(*p, 0x5a);

        vs_mem_clear(&mem);
        assert_int_equal(mem.n, 0);
        close(fd);
}

static void test_add_fd_errors(void **state)
{
        struct vs_mem mem;
        int fd = make_memfd(0x2000);

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_fd(&mem, -1, 0, 4096, 0, 0), -EBADF);
        /* The file is shorter than mmap_offset + size. */
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0, 0x2000, 0, 1), -EINVAL);
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0, 0x3000, 0, 0), -EINVAL);
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0, 0x1000, 0, 0x1000), 0);
        /* Overlap is checked before mapping. */
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0x800, 0x1000, 0x10000, 0),
                         -EINVAL);
        assert_int_equal(mem.n, 1);
        vs_mem_clear(&mem);
        close(fd);
}

static bool is_mapped(void *addr)
{
        unsigned char vec;

        return mincore(addr, 1, &vec) == 0;
}

static void test_clear_unmaps(void **state)
{
        struct vs_mem mem;
        void *base;
        int fd = make_memfd(0x1000);

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0, 0x1000, 0, 0), 0);
        assert_int_equal(vs_mem_add_host(&mem, ram_a, 0x1000, 16, 0x1000), 0);
        base = mem.r[0].map_base;
        assert_true(is_mapped(base));
        vs_mem_clear(&mem);
        assert_false(is_mapped(base));
        assert_int_equal(mem.n, 0);
        /* Memory we did not map is left alone. */
        ram_a[0] = 1;
        close(fd);
}

static void test_replace(void **state)
{
        struct vs_mem dst, src;
        uint64_t len = 1;
        void *old_base;
        int fd = make_memfd(0x1000);

        (void)state;
        vs_mem_init(&dst);
        vs_mem_init(&src);
        assert_int_equal(vs_mem_add_fd(&dst, fd, 0, 0x1000, 0, 0), 0);
        old_base = dst.r[0].map_base;
        assert_int_equal(vs_mem_add_fd(&src, fd, 0x10000, 0x1000, 0x10000,
                                       0), 0);
        assert_int_equal(vs_mem_add_host(&src, ram_a, 0x20000, 16, 0x20000),
                         0);

        vs_mem_replace(&dst, &src);
        assert_false(is_mapped(old_base));
        assert_int_equal(src.n, 0);
        assert_int_equal(dst.n, 2);
        assert_null(vs_mem_gpa(&dst, 0, &len));
        len = 1;
        assert_non_null(vs_mem_gpa(&dst, 0x10000, &len));
        assert_true(is_mapped(dst.r[0].map_base));

        /* Replacing with itself keeps the table. */
        vs_mem_replace(&dst, &dst);
        assert_int_equal(dst.n, 2);
        /* Replacing with an empty table clears. */
        vs_mem_replace(&dst, &src);
        assert_int_equal(dst.n, 0);
        close(fd);
}

/* ---- files that shrink (mem.h) ---------------------------------------- */

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed, bus_seen, bus_read;

/* The handler installed before the guard: faults outside guest memory
 * must still reach it. */
static void prior_bus_handler(int sig)
{
        (void)sig;
        bus_seen++;
        if (bus_armed) {
                bus_armed = 0;
                siglongjmp(bus_jmp, 1);
        }
        signal(SIGBUS, SIG_DFL);
}

static int sealable_memfd(size_t size, int seals)
{
        int fd = memfd_create("test_mem", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        if (seals)
                assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
        return fd;
}

/* Before the guard is installed, a file that cannot be sealed is mapped
 * as it always was: unguarded. */
static void test_shrink_unguarded_before_install(void **state)
{
        struct vs_mem mem;
        int fd = make_memfd(0x1000);

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0, 0x1000, 0, 0), 0);
        assert_null(mem.r[0].guard);
        assert_false(vs_mem_lost(&mem));
        vs_mem_clear(&mem);
        close(fd);
}

/* A memfd that allows sealing is sealed against shrinking: the frontend
 * can no longer truncate it, nothing needs guarding. QEMU's seals (grow,
 * shrink, seal) are fine as they are. */
static void test_shrink_sealed(void **state)
{
        struct vs_mem mem;
        int fd = sealable_memfd(0x2000, 0);
        int qemu = sealable_memfd(0x1000, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);

        (void)state;
        vs_mem_init(&mem);
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0, 0x2000, 0, 0), 0);
        assert_true(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK);
        assert_int_equal(ftruncate(fd, 0), -1);
        assert_int_equal(errno, EPERM);
        assert_null(mem.r[0].guard);
        assert_int_equal(vs_mem_add_fd(&mem, qemu, 0x10000, 0x1000, 0x10000, 0), 0);
        assert_null(mem.r[1].guard);
        vs_mem_clear(&mem);
        close(fd);
        close(qemu);
}

/*
 * With the guard: a file truncated under a mapping reads as zeros there
 * instead of killing us, the table that mapped it knows it is lost (and no
 * other table), and it unmaps cleanly.
 */
static void test_shrink_guarded(void **state)
{
        struct vs_mem mem, other;
        volatile uint8_t *p;
        uint64_t len = 16;
        int fd = make_memfd(0x2000), fd2 = make_memfd(0x1000);

        (void)state;
        assert_int_equal(vs_sigbus_guard_install(), 0);
        assert_int_equal(vs_sigbus_guard_install(), 0);
        vs_mem_init(&mem);
        vs_mem_init(&other);
        assert_int_equal(vs_mem_add_fd(&mem, fd, 0, 0x2000, 0, 0), 0);
        assert_int_equal(vs_mem_add_fd(&other, fd2, 0, 0x1000, 0, 0), 0);
        assert_non_null(mem.r[0].guard);
        p = vs_mem_gpa(&mem, 0x1000, &len);
        p[0] = 42;
        assert_int_equal(p[0], 42);
        assert_false(vs_mem_lost(&mem));
        assert_int_equal(ftruncate(fd, 0x1000), 0);
        assert_int_equal(p[0], 0);
        p[1] = 7;
        assert_int_equal(p[1], 7);
        assert_true(vs_mem_lost(&mem));
        assert_false(vs_mem_lost(&other));
        /* the part of the file still there is no longer shared either */
        assert_int_equal(*(volatile uint8_t *)mem.r[0].host, 0);
        vs_mem_clear(&mem);
        assert_false(vs_mem_lost(&mem));
        vs_mem_clear(&other);
        close(fd);
        close(fd2);
}

/* A SIGBUS outside guest memory reaches the handler installed before.
 * (cmocka installs its own around each test: ours goes on top of it.) */
static void test_shrink_other_fault_passed_on(void **state)
{
        struct sigaction sa = { .sa_handler = prior_bus_handler };
        int fd = make_memfd(0x1000);
        volatile uint8_t *p = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        (void)state;
        sigemptyset(&sa.sa_mask);
        assert_int_equal(sigaction(SIGBUS, &sa, NULL), 0);
        assert_int_equal(vs_sigbus_guard_install(), 0);
        assert_true(p != MAP_FAILED);
        assert_int_equal(ftruncate(fd, 0), 0);
        bus_seen = 0;
        bus_armed = 1;
        if (sigsetjmp(bus_jmp, 1) == 0) {
                /* used, or valgrind's JIT drops the load as dead */
                bus_read = p[0];
                fail_msg("no SIGBUS (read %d)", bus_read);
        }
        assert_int_equal(bus_seen, 1);
        munmap((void *)p, 0x1000);
        close(fd);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_add_host_translate),
                cmocka_unit_test(test_gpa_vs_uva),
                cmocka_unit_test(test_zero_size_and_null),
                cmocka_unit_test(test_overflow),
                cmocka_unit_test(test_overlap_gpa),
                cmocka_unit_test(test_overlap_uva),
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_range),
                cmocka_unit_test(test_iov_split),
                cmocka_unit_test(test_iov_one_byte_regions),
                cmocka_unit_test(test_add_fd_offset),
                cmocka_unit_test(test_add_fd_errors),
                cmocka_unit_test(test_clear_unmaps),
                cmocka_unit_test(test_replace),
                /* in this order: the first runs before any install */
                cmocka_unit_test(test_shrink_unguarded_before_install),
                cmocka_unit_test(test_shrink_sealed),
                cmocka_unit_test(test_shrink_guarded),
                cmocka_unit_test(test_shrink_other_fault_passed_on),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
