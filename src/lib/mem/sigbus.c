/* SPDX-License-Identifier: MIT */
/*
 * SIGBUS guard for guest memory files: see mem.h for the decision, and
 * sigbus.h for the structure.
 *
 * The handler finds the guarded mapping holding the faulting address and
 * maps private anonymous memory over all of it (MAP_FIXED): the faulting
 * access then completes on zero pages, and the connection that mapped it
 * sees the slot lost and fails. mmap() is a plain system call on Linux, so
 * calling it from the handler is safe in practice, though POSIX does not
 * list it. A fault outside guarded memory goes to the handler installed
 * before ours, or gets the default action, as it would have without us.
 */
#include "mem/sigbus.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vserial/vserial.h"

#define SLOTS_PER_CHUNK 64

struct vs__guard_slot {
        unsigned gen;           /* seqlock: odd while base/len change */
        bool used;              /* claimed by a mapping */
        uintptr_t base;
        size_t len;
        bool lost;
};

struct chunk {
        struct vs__guard_slot slot[SLOTS_PER_CHUNK];
        struct chunk *next;
};

static struct chunk first;
static bool installed;
static struct sigaction previous;
static unsigned long events;

bool vs__guard_installed(void)
{
        return __atomic_load_n(&installed, __ATOMIC_ACQUIRE);
}

unsigned long vs__guard_events(void)
{
        return __atomic_load_n(&events, __ATOMIC_ACQUIRE);
}

/* Publish (base, len) under the slot's seqlock. */
static void slot_set(struct vs__guard_slot *s, uintptr_t base, size_t len)
{
        __atomic_add_fetch(&s->gen, 1, __ATOMIC_ACQ_REL);
        __atomic_store_n(&s->base, base, __ATOMIC_RELAXED);
        __atomic_store_n(&s->len, len, __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
}

/* A consistent (base, len), or false while another thread changes it. */
static bool slot_get(const struct vs__guard_slot *s, uintptr_t *base, size_t *len)
{
        unsigned gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);

        if (gen & 1)
                return false;
        *base = __atomic_load_n(&s->base, __ATOMIC_RELAXED);
        *len = __atomic_load_n(&s->len, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        return __atomic_load_n(&s->gen, __ATOMIC_RELAXED) == gen && *base;
}

static struct vs__guard_slot *claim(struct chunk *c)
{
        for (int i = 0; i < SLOTS_PER_CHUNK; i++) {
                bool free_slot = false;

                if (__atomic_compare_exchange_n(&c->slot[i].used, &free_slot, true, false,
                                                __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                        return &c->slot[i];
        }
        return NULL;
}

struct vs__guard_slot *vs__guard_add(void *base, size_t len)
{
        struct chunk *c = &first;

        for (;;) {
                struct vs__guard_slot *s = claim(c);
                struct chunk *next, *fresh;

                if (s) {
                        __atomic_store_n(&s->lost, false, __ATOMIC_RELAXED);
                        slot_set(s, (uintptr_t)base, len);
                        return s;
                }
                next = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE);
                if (!next) {
                        fresh = calloc(1, sizeof(*fresh));
                        if (!fresh)
                                return NULL;
                        /* Another thread may have appended one first. */
                        if (!__atomic_compare_exchange_n(&c->next, &next, fresh, false,
                                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                                free(fresh);
                        else
                                next = fresh;
                }
                c = next;
        }
}

void vs__guard_del(struct vs__guard_slot *s)
{
        if (!s)
                return;
        slot_set(s, 0, 0);
        __atomic_store_n(&s->used, false, __ATOMIC_RELEASE);
}

bool vs__guard_lost(const struct vs__guard_slot *s)
{
        return s && __atomic_load_n(&s->lost, __ATOMIC_ACQUIRE);
}

/* Replace the guarded mapping holding @addr; false if there is none. */
static bool replace(uintptr_t addr)
{
        for (struct chunk *c = &first; c; c = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE)) {
                for (int i = 0; i < SLOTS_PER_CHUNK; i++) {
                        struct vs__guard_slot *s = &c->slot[i];
                        uintptr_t base;
                        size_t len;
                        void *p;

                        if (!slot_get(s, &base, &len) || addr - base >= len)
                                continue;
                        p = mmap((void *)base, len, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
                        if (p == MAP_FAILED)
                                return false;
                        __atomic_store_n(&s->lost, true, __ATOMIC_RELEASE);
                        __atomic_add_fetch(&events, 1, __ATOMIC_RELEASE);
                        return true;
                }
        }
        return false;
}

/* What would have happened without us. */
static void pass_on(int sig, siginfo_t *si, void *uc)
{
        struct sigaction dfl;

        if (previous.sa_flags & SA_SIGINFO) {
                previous.sa_sigaction(sig, si, uc);
                return;
        }
        if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
                previous.sa_handler(sig);
                return;
        }
        /* Default action: the faulting access runs again and kills us; a
         * SIGBUS sent by kill() is raised again, delivered on return. */
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGBUS, &dfl, NULL);
        if (si->si_code <= 0)
                raise(SIGBUS);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
        int saved = errno;

        /* si_code > 0: raised by the kernel for a fault at si_addr. */
        if (si->si_code <= 0 || !replace((uintptr_t)si->si_addr))
                pass_on(sig, si, uc);
        errno = saved;
}

/* Is @sa our handler? */
static bool is_ours(const struct sigaction *sa)
{
        return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_sigbus;
}

int vs_sigbus_guard_install(void)
{
        struct sigaction sa, cur;

        /* Installed and still in place: nothing to do. Recording our own
         * handler as the previous one would pass faults to itself. */
        if (sigaction(SIGBUS, NULL, &cur) < 0)
                return -errno;
        if (is_ours(&cur))
                return 0;
        previous = cur;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, NULL) < 0)
                return -errno;
        __atomic_store_n(&installed, true, __ATOMIC_RELEASE);
        return 0;
}
