/* SPDX-License-Identifier: MIT */
/*
 * A port's history (history=SIZE): the last SIZE bytes of guest output, in
 * a ring, whatever the backend does with them, and the connections that
 * read it (vserialctl history [--follow]).
 *
 * Positions are absolute: byte p of the port's output (counted from the
 * daemon's start) lives at data[p % size] while p >= total - size. A
 * reader is a position and an end (the total when it asked, or none with
 * --follow); it is sent what lies between straight from the ring, so
 * readers cost no memory of their own. A reader that is not caught up when
 * the ring overwrites its next byte has lost output: it is disconnected
 * (and the log says so) rather than be sent a stream with a hole in it.
 * A caught-up reader is sent new output straight from the guest's buffers,
 * so a burst larger than the ring reaches a reader that keeps up.
 *
 * Bounded: the ring (allocated on the first output), HISTORY_READERS_MAX
 * readers per port, one send per reader per output or writable event.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "loop/loop.h"

#define HISTORY_READERS_MAX 16u

struct history;

/* @size > 0; @label names the port in log lines (kept by pointer). */
int history_new(size_t size, const struct vs_loop_ops *ops, void *loop, const char *label,
                struct history **ret);
/* Frees the ring and closes every reader. Accepts NULL. */
void history_free(struct history *h);

/* The first @n bytes of @iov are new output. */
void history_put(struct history *h, const struct iovec *iov, unsigned cnt, size_t n);

size_t history_size(const struct history *h);          /* the bound */
size_t history_len(const struct history *h);           /* bytes held */
unsigned history_readers(const struct history *h);

/*
 * Send @fd (a connected stream socket, made non-blocking here; owned by the
 * history from now on, also on error) the last @bytes bytes held (at most
 * history_len()), then, with @follow, all new output until it closes. Without
 * @follow the connection is closed once they are sent. -EMFILE: the port
 * has HISTORY_READERS_MAX readers (@fd is closed); -ENOMEM.
 */
int history_serve(struct history *h, int fd, size_t bytes, bool follow);
