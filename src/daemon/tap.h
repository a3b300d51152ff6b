/* SPDX-License-Identifier: MIT */
/*
 * What happens to every byte of guest output besides the backend: the
 * port's history (history.h, history=), the log tee (tee.h, logfile=), and
 * the time the port spent throttled (metrics).
 *
 * "Guest output" here is what the device consumed from the guest: the bytes
 * the port's have_data() took (backend.c calls tap_output() with exactly
 * those). While the host side holds the port back (throttled) the guest's
 * bytes stay in its own buffers and are not consumed, so they reach the
 * history and the log only when the backend takes them; they are never
 * skipped and never repeated. Neither the history nor the log ever holds
 * the guest back.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct hport;
struct tap;
struct history;

struct tap_stats {
        size_t history_size;            /* history=: its bound */
        size_t history_bytes;           /* bytes held now */
        unsigned history_readers;       /* vserialctl history connections */
        uint64_t logfile_written;       /* bytes appended to logfile= */
        uint64_t logfile_lost;          /* bytes it could not write (full disk) */
        uint64_t throttled_ns;          /* time the port held the guest back */
};

/*
 * The taps @hp->spec asks for. A logfile= that cannot be opened fails
 * (logged, negative errno); history memory is taken on the first output.
 */
int tap_new(struct hport *hp, struct tap **ret);
/* Closes the log and every history reader. Accepts NULL. */
void tap_free(struct tap *t);
/* tap_free(), and a log file tap_new() created is removed (a refused add). */
void tap_discard(struct tap *t);

/*
 * The device took the first @done bytes of @iov (of @offered: less means
 * the port is now throttled). Bounded: at most a copy into the history,
 * one write per line start to the log, and a send per history reader.
 */
void tap_output(struct hport *hp, const struct iovec *iov, unsigned cnt, size_t done,
                size_t offered);

/* logfile= opened again (SIGHUP, vserialctl reopen). 0 or -errno (the old
 * file is kept). */
int tap_reopen(struct tap *t);

/* The port's history, or NULL with history=0. */
struct history *tap_history(const struct tap *t);

void tap_get_stats(const struct hport *hp, struct tap_stats *ret);
