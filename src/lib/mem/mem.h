/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: a table of regions and the translation of guest addresses.
 *
 * Security model: every region comes from an untrusted frontend and every
 * address translated here comes from an untrusted guest. A translation never
 * returns a pointer outside a mapped region, and the length it returns is
 * clamped to what is contiguous in that region, so a buffer that spans
 * regions becomes several iovecs. All arithmetic is overflow-checked.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VS_MEM_MAX_REGIONS 8

struct vs_mem_region {
        uint64_t gpa;      /* guest-physical start */
        uint64_t size;     /* bytes, > 0 */
        uint64_t uva;      /* frontend's virtual address of the start */
        uint8_t *host;     /* our pointer to the start */
        void *map_base;    /* mmap()ed base we own, or NULL if not owned */
        size_t map_len;
};

struct vs_mem {
        unsigned n;
        struct vs_mem_region r[VS_MEM_MAX_REGIONS];
};

/* An empty table. */
void vs_mem_init(struct vs_mem *mem);

/*
 * Map @size bytes of @fd starting at file offset @mmap_offset and add them as
 * a region at @gpa (frontend address @uva). The table owns the mapping.
 * Errors: -EINVAL (zero size, overflow, overlap with a region already in the
 * table, either in gpa or uva space), -ENOSPC (table full), -errno of mmap.
 */
int vs_mem_add_fd(struct vs_mem *mem, int fd, uint64_t gpa, uint64_t size,
                  uint64_t uva, uint64_t mmap_offset);

/*
 * Add memory the caller already mapped (an in-process VMM, tests). The table
 * does not own it. Same checks and errors as vs_mem_add_fd().
 */
int vs_mem_add_host(struct vs_mem *mem, void *host, uint64_t gpa,
                    uint64_t size, uint64_t uva);

/* Unmap owned regions and empty the table. Accepts NULL. */
void vs_mem_clear(struct vs_mem *mem);

/* Move @src into @dst (clearing @dst first); @src is left empty. */
void vs_mem_replace(struct vs_mem *dst, struct vs_mem *src);

/*
 * Translate the guest-physical range [@gpa, @gpa + *@len). Returns the host
 * pointer of @gpa and sets *@len to the number of bytes contiguous from there
 * (<= the input). NULL if @gpa is in no region (or *@len is 0).
 */
void *vs_mem_gpa(const struct vs_mem *mem, uint64_t gpa, uint64_t *len);

/* The same for a frontend virtual address (QEMU's ring addresses). */
void *vs_mem_uva(const struct vs_mem *mem, uint64_t uva, uint64_t *len);

/*
 * A pointer to exactly @len contiguous bytes at @gpa (or @uva when @is_uva),
 * or NULL if they are not all in one region. Used for ring structures.
 */
void *vs_mem_range(const struct vs_mem *mem, uint64_t addr, uint64_t len,
                   bool is_uva);

/*
 * Append the iovecs covering guest range [@gpa, @gpa + @len) to @iov, which
 * has @*n entries in use and room for @max. Errors: -EFAULT (a byte of the
 * range is unmapped, or gpa + len wraps), -E2BIG (more than @max iovecs).
 * On error *@n is unchanged.
 */
int vs_mem_iov(const struct vs_mem *mem, uint64_t gpa, uint64_t len,
               struct iovec *iov, unsigned max, unsigned *n);
