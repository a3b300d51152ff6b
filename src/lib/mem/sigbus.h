/* SPDX-License-Identifier: MIT */
/*
 * The SIGBUS guard behind vs_sigbus_guard_install() (see mem.h for why).
 *
 * Process-wide by nature: a signal handler and the table of guarded
 * mappings it searches. The table is a list of fixed chunks of slots that
 * only grows; each slot is a seqlock around (base, len), so the handler,
 * which may run in any thread, never takes a lock and never acts on a slot
 * another thread is changing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct vs__guard_slot;

/* Has the embedder installed the guard? */
bool vs__guard_installed(void);

/*
 * Guard the mapping [@base, @base + @len): a SIGBUS inside it replaces the
 * whole mapping with private anonymous memory and marks the slot lost.
 * NULL on -ENOMEM.
 */
struct vs__guard_slot *vs__guard_add(void *base, size_t len);

/* Stop guarding (before the mapping is unmapped). Accepts NULL. */
void vs__guard_del(struct vs__guard_slot *slot);

/* Did a SIGBUS replace this mapping? */
bool vs__guard_lost(const struct vs__guard_slot *slot);

/* Mappings replaced since the process started: 0 means none lost. */
unsigned long vs__guard_events(void);
