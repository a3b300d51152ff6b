/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: a table of regions and the translation of guest addresses.
 *
 * Security model: every region comes from an untrusted frontend and every
 * address translated here comes from an untrusted guest. A translation never
 * returns a pointer outside a mapped region, and the length it returns is
 * clamped to what is contiguous in that region, so a buffer that spans
 * regions becomes several iovecs. All arithmetic is overflow-checked.
 *
 * Guest memory that changes size. A frontend maps its guest memory from a
 * file it shares with us; if it truncates the file after SET_MEM_TABLE,
 * touching the pages past the new end raises SIGBUS, which kills the whole
 * process (every port's buffered data with it). What we do:
 *  - A memfd sealed with F_SEAL_SHRINK cannot shrink: nothing to guard.
 *    QEMU's memory-backend-memfd seals by default (seal=on). A memfd that
 *    allows sealing but lacks the seal is sealed here (F_ADD_SEALS): a
 *    frontend has no business shrinking memory it shares, and the seal
 *    makes the region safe without any signal handling. The size check
 *    comes after the seal, so it cannot be raced.
 *  - Anything else (UML's physmem file on tmpfs or disk, QEMU's
 *    memory-backend-file, a memfd created without sealing) cannot be
 *    sealed. Checking its size before each access would be a system call
 *    per access and still racy, and refusing it would refuse UML. So a
 *    process-wide SIGBUS handler, installed by the embedder through
 *    vs_sigbus_guard_install() (the daemon does; a library must not take
 *    over signals on its own), guards these mappings: a fault in one maps
 *    private zero pages over the whole mapping and marks it lost, the
 *    faulting access completes (reading zeros: no worse than what a VMM
 *    that owns guest memory can make the guest "write" anyway), and the
 *    connection that mapped it sees vs_mem_lost() at its next event and
 *    fails with -EFAULT. Only that connection goes; copies the embedder
 *    makes from guest iovecs (have_data) are covered too, which a
 *    sigsetjmp() around the library's own copies would not be, and the
 *    fast path costs nothing: no syscall, no jump buffer per access.
 *  - Without the guard installed, such files are mapped as before, at the
 *    frontend's mercy; an embedder that trusts its VMM may choose that.
 * The kernel's own copies (readv()/writev() on guest iovecs) return
 * EFAULT on lost pages rather than raising a signal.
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
        struct vs__guard_slot *guard;   /* an owned mapping that may shrink */
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
 * A memfd that allows sealing is sealed against shrinking; an fd that
 * cannot be sealed is guarded if vs_sigbus_guard_install() was called (see
 * above). Errors: -EINVAL (zero size, overflow, overlap with a region
 * already in the table, either in gpa or uva space, file too short),
 * -ENOSPC (table full), -ENOMEM, -errno of mmap.
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

/* Was a region of @mem lost to a shrunk file (see above)? Cheap: one
 * atomic load unless some mapping in the process was ever lost. */
bool vs_mem_lost(const struct vs_mem *mem);

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
