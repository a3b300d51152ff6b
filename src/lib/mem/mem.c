/* SPDX-License-Identifier: MIT */
/*
 * Guest memory regions. The table is small (VS_MEM_MAX_REGIONS), so lookups
 * are a linear scan; regions never overlap, so at most one matches.
 */
#include "mem/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "mem/sigbus.h"

void vs_mem_init(struct vs_mem *mem)
{
        memset(mem, 0, sizeof(*mem));
}

/* Both ranges are known not to wrap, so the ends are representable. */
static bool ranges_overlap(uint64_t a, uint64_t a_size, uint64_t b,
                           uint64_t b_size)
{
        return a < b + b_size && b < a + a_size;
}

/*
 * Validate a new region against itself and the table. An end of exactly
 * 2^64 counts as overflow: it keeps every "start + size" below representable.
 */
static int check_region(const struct vs_mem *mem, uint64_t gpa, uint64_t size,
                        uint64_t uva)
{
        uint64_t end;

        if (size == 0 || size > SIZE_MAX)
                return -EINVAL;
        if (__builtin_add_overflow(gpa, size, &end) ||
            __builtin_add_overflow(uva, size, &end))
                return -EINVAL;
        for (unsigned i = 0; i < mem->n; i++) {
                const struct vs_mem_region *r = &mem->r[i];

                if (ranges_overlap(gpa, size, r->gpa, r->size) ||
                    ranges_overlap(uva, size, r->uva, r->size))
                        return -EINVAL;
        }
        if (mem->n >= VS_MEM_MAX_REGIONS)
                return -ENOSPC;
        return 0;
}

static void append_region(struct vs_mem *mem, uint8_t *host, uint64_t gpa,
                          uint64_t size, uint64_t uva, void *map_base,
                          size_t map_len, struct vs__guard_slot *guard)
{
        mem->r[mem->n++] = (struct vs_mem_region){
                .gpa = gpa,
                .size = size,
                .uva = uva,
                .host = host,
                .map_base = map_base,
                .map_len = map_len,
                .guard = guard,
        };
}

/*
 * Can the file shrink under us? Not if it is sealed against it; a memfd
 * that allows sealing gets the seal now (see mem.h). Files that know no
 * seals (F_GET_SEALS fails) or forbid more (F_SEAL_SEAL) can.
 */
static bool may_shrink(int fd)
{
        int seals = fcntl(fd, F_GET_SEALS);

        if (seals < 0)
                return true;
        if (seals & F_SEAL_SHRINK)
                return false;
        if (seals & F_SEAL_SEAL)
                return true;
        return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0;
}

/*
 * Mapping past the end of a file succeeds but touching those pages raises
 * SIGBUS, which a frontend could aim at us; refuse a file that is too short.
 * Only regular files (memfd, hugetlbfs, tmpfs) have a meaningful size.
 */
static int check_fd_size(int fd, uint64_t map_len)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < map_len)
                return -EINVAL;
        return 0;
}

int vs_mem_add_fd(struct vs_mem *mem, int fd, uint64_t gpa, uint64_t size,
                  uint64_t uva, uint64_t mmap_offset)
{
        struct vs__guard_slot *guard = NULL;
        uint64_t map_len;
        bool shrinks;
        void *base;
        int ret;

        ret = check_region(mem, gpa, size, uva);
        if (ret < 0)
                return ret;
        if (__builtin_add_overflow(mmap_offset, size, &map_len) ||
            map_len > SIZE_MAX)
                return -EINVAL;
        /* Seal first: a size checked after the seal stays true. */
        shrinks = may_shrink(fd);
        ret = check_fd_size(fd, map_len);
        if (ret < 0)
                return ret;
        /*
         * Frontends (QEMU, UML) pass mmap_offset as the position of the
         * region in a mapping that starts at file offset 0, so map from 0
         * and skip the offset rather than using it as the mmap offset
         * (which would also have to be page aligned).
         */
        base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED)
                return -errno;
        if (shrinks && vs__guard_installed()) {
                guard = vs__guard_add(base, map_len);
                if (!guard) {
                        munmap(base, map_len);
                        return -ENOMEM;
                }
        }
        append_region(mem, (uint8_t *)base + mmap_offset, gpa, size, uva,
                      base, map_len, guard);
        return 0;
}

int vs_mem_add_host(struct vs_mem *mem, void *host, uint64_t gpa,
                    uint64_t size, uint64_t uva)
{
        uintptr_t end;
        int ret;

        if (!host)
                return -EINVAL;
        ret = check_region(mem, gpa, size, uva);
        if (ret < 0)
                return ret;
        if (__builtin_add_overflow((uintptr_t)host, size, &end))
                return -EINVAL;
        append_region(mem, host, gpa, size, uva, NULL, 0, NULL);
        return 0;
}

void vs_mem_clear(struct vs_mem *mem)
{
        if (!mem)
                return;
        for (unsigned i = 0; i < mem->n; i++) {
                /* Unguard before unmapping: the address may be reused. */
                vs__guard_del(mem->r[i].guard);
                if (mem->r[i].map_base)
                        munmap(mem->r[i].map_base, mem->r[i].map_len);
        }
        vs_mem_init(mem);
}

bool vs_mem_lost(const struct vs_mem *mem)
{
        if (!vs__guard_events())
                return false;
        for (unsigned i = 0; i < mem->n; i++)
                if (vs__guard_lost(mem->r[i].guard))
                        return true;
        return false;
}

void vs_mem_replace(struct vs_mem *dst, struct vs_mem *src)
{
        if (dst == src)
                return;
        vs_mem_clear(dst);
        *dst = *src;
        vs_mem_init(src);
}

/*
 * The region holding @addr, with @addr's offset into it, looking at either
 * address space. Offsets are computed only after the bounds check, so they
 * cannot underflow.
 */
static const struct vs_mem_region *find(const struct vs_mem *mem,
                                        uint64_t addr, bool is_uva,
                                        uint64_t *off)
{
        for (unsigned i = 0; i < mem->n; i++) {
                const struct vs_mem_region *r = &mem->r[i];
                uint64_t start = is_uva ? r->uva : r->gpa;

                if (addr >= start && addr - start < r->size) {
                        *off = addr - start;
                        return r;
                }
        }
        return NULL;
}

static void *translate(const struct vs_mem *mem, uint64_t addr, uint64_t *len,
                       bool is_uva)
{
        const struct vs_mem_region *r;
        uint64_t off;

        if (*len == 0)
                return NULL;
        r = find(mem, addr, is_uva, &off);
        if (!r)
                return NULL;
        if (*len > r->size - off)
                *len = r->size - off;
        return r->host + off;
}

void *vs_mem_gpa(const struct vs_mem *mem, uint64_t gpa, uint64_t *len)
{
        return translate(mem, gpa, len, false);
}

void *vs_mem_uva(const struct vs_mem *mem, uint64_t uva, uint64_t *len)
{
        return translate(mem, uva, len, true);
}

void *vs_mem_range(const struct vs_mem *mem, uint64_t addr, uint64_t len,
                   bool is_uva)
{
        uint64_t got = len;
        void *p = translate(mem, addr, &got, is_uva);

        return p && got == len ? p : NULL;
}

int vs_mem_iov(const struct vs_mem *mem, uint64_t gpa, uint64_t len,
               struct iovec *iov, unsigned max, unsigned *n)
{
        unsigned k = *n;
        uint64_t end;

        if (__builtin_add_overflow(gpa, len, &end))
                return -EFAULT;
        while (len > 0) {
                uint64_t chunk = len;
                void *p = vs_mem_gpa(mem, gpa, &chunk);

                if (!p)
                        return -EFAULT;
                if (k >= max)
                        return -E2BIG;
                iov[k].iov_base = p;
                iov[k].iov_len = chunk;
                k++;
                gpa += chunk;
                len -= chunk;
        }
        *n = k;
        return 0;
}
