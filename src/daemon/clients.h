/* SPDX-License-Identifier: MIT */
/*
 * The host clients of a listening port (backend=unix, backend=tcp) and of
 * control-socket attaches to it: up to clients=N sockets at once.
 *
 * Output: every client gets all guest output from its connect on. It is
 * kept once, in a ring of buffer= bytes that holds what the slowest client
 * has not had; each client has its own position in it. A client that has
 * everything is written to straight from guest memory (writev), as a lone
 * client always was; only what some client did not take is copied.
 *
 * Input: from one client at a time, the writer: the first client that did
 * not join read-only, or the one that asked (CLIENT_WRITE, which makes the
 * writer before it a reader). What readers send is read and dropped,
 * counted (input_discarded). When the writer leaves, the longest-connected
 * client that did not join read-only takes over.
 *
 * A slow client: the guest's output waits for the writer (or for a lone
 * client) as it always did: when the ring is full the port is throttled.
 * A read-only reader never holds the guest back beyond its buffer: when
 * the ring cannot take the guest's next output because that reader is a
 * whole buffer behind, the reader is disconnected (logged, counted as
 * clients_dropped, reported as an event).
 *
 * The guest sees the port's host side open (PORT_OPEN 1) while at least one
 * client is connected. A client's end (its EOF or an error) is handled in
 * its own callback; the listener (backend_listen.c) is told when the
 * number of clients reaches or leaves the maximum, and stops accepting
 * while it is reached, so further clients wait in the kernel's backlog and
 * are taken in arrival order once one has gone. Nothing the daemon says is
 * ever written to a client: a client that cannot be served (the guest's
 * control queue is full, so it could not be told) is closed unserved,
 * logged, counted (clients_refused) and reported.
 *
 * on-connect=replay (default): the first client to connect while none is
 * gets what no client has had yet (what the last one did not take, and
 * what the guest wrote meanwhile, up to buffer= bytes; then the guest
 * waits). on-connect=discard: that output is dropped and counted, and the
 * client starts clean; while no client is connected the guest's output is
 * dropped at once, so an absent client never holds the guest back.
 *
 * Security model: clients are trusted to be what the listening socket's
 * permissions admit, not to be well-behaved: every read and write is
 * non-blocking and budgeted per wake-up, memory is the ring (bounded by
 * buffer=) plus a small record per client (at most clients=).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backend.h"

#define CLIENTS_MAX SPEC_CLIENTS_MAX

struct hclients;

/*
 * The clients of @hp (its spec gives clients= and buffer=). @room is called
 * whenever clients_full() changes. -ENOMEM.
 */
int clients_new(struct hport *hp, void (*room)(struct hport *hp), struct hclients **ret);
/* Close every client (each reported as a host disconnect) and free.
 * Accepts NULL. */
void clients_free(struct hclients *cs);

/*
 * Serve @fd (a connected non-blocking stream socket) as a client; the set
 * owns it on success. Errors (@fd stays the caller's, who closes it):
 * -EBUSY, all clients= are connected; -ENOSPC, it would be the first and
 * the guest cannot be told (its control queue is full): logged, counted
 * and reported as refused; -ENOMEM. @control: it came through the control
 * socket (for the log).
 */
int clients_add(struct hclients *cs, int fd, enum client_mode mode, bool control);
bool clients_full(const struct hclients *cs);
unsigned clients_count(const struct hclients *cs);
unsigned clients_max(const struct hclients *cs);
/* The writer's number on the port (0: none). */
unsigned clients_writer(const struct hclients *cs);
/* Guest output not yet written to the client furthest behind. */
size_t clients_buffered(const struct hclients *cs);

/* backend.c's have_data() and guest_ready() for such a port. */
size_t clients_have_data(struct hclients *cs, const struct iovec *iov, unsigned cnt,
                         size_t total);
void clients_guest_ready(struct hclients *cs);
