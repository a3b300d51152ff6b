/* SPDX-License-Identifier: MIT */
/*
 * The daemon's control socket (--control PATH): run-time port management and
 * an event stream, newline-delimited JSON over a unix stream socket.
 *
 * One request per line, one reply per line, in order:
 *   {"cmd":"list"}                       -> {"ok":true,"ports":[{...},...]}
 *   {"cmd":"add","spec":"SPEC"}          -> {"ok":true,"port":{...}}
 *   {"cmd":"add","port":{"name":"x",...}} (the SPEC keys as an object)
 *   {"cmd":"remove","port":ID|"NAME"}    -> {"ok":true}
 *   {"cmd":"resize","port":ID|"NAME","cols":C,"rows":R} -> {"ok":true}
 *   {"cmd":"subscribe"}                  -> {"ok":true,"seq":LAST}, then one
 *       {"seq":N,"event":"...","port":ID,"name":"..."} line per event; seq
 *       counts every event of the daemon from 1, so a subscriber sees
 *       LAST+1, LAST+2, ... with no gap. Events: port-added, port-removed,
 *       guest-open, guest-close, host-connect, host-disconnect (with port
 *       and name; a listening port's also with "client":N, its client's
 *       number), client-refused (a client closed unserved: the guest could
 *       not be told), client-dropped ("client": a reader a whole buffer
 *       behind), output-discarded ("bytes": on-connect=discard dropped them
 *       for a new client), port-unplugged, port-plugged, guest-reset (the
 *       driver (re)started: DEVICE_READY), vmm-connect, vmm-disconnect
 *       (without a port). Requests still work on a
 *       subscribed connection: the events a request causes come before its
 *       reply (replies have "ok", events "event").
 *   {"cmd":"stats"}                      -> {"ok":true,"stats":{...}}: the
 *       cost counters, see stats.h; "list" has each port's as "counters".
 *   {"cmd":"attach","port":ID|"NAME"[,"mode":"read-only"|"write"]}
 *                                        -> {"ok":true}, then the connection
 *       is the port's host peer (hport_attach_client): raw bytes both ways
 *       until either side closes; bytes sent right behind the request line
 *       are port data. On a listening port it is one of its clients=
 *       (clients.h): "read-only" joins as a reader, "write" takes the
 *       writer role. Refused while the port has a peer (all its clients)
 *       ("port N is busy") and while the guest takes no control messages
 *       (it could not be told). On a subscribed connection the events end
 *       with the reply: any before it are lines before it, none come after.
 *   {"cmd":"stats","format":"prometheus"} -> {"ok":true,"prometheus":"TEXT"}
 *       (metrics.h); "format":"json" is the default.
 *   {"cmd":"history","port":ID|"NAME"[,"bytes":N][,"follow":true]}
 *       -> {"ok":true,"bytes":K,"follow":F}, then the connection carries K
 *       raw bytes, the last K of the port's history (K <= N), and with
 *       follow every new byte of its output until the client closes; it is
 *       no control connection any more (history.h). Refused, the connection
 *       staying usable: a port with history=0, HISTORY_READERS_MAX readers,
 *       replies not yet read.
 *   {"cmd":"reopen"}                     -> {"ok":true,"failed":F}: the
 *       files ports write by name opened again, as SIGHUP does; F could not
 *       be (the log says why; their old files are still written).
 *   {"cmd":"unplug","port":ID|"NAME"}    -> {"ok":true}: the guest loses the
 *       port (PORT_REMOVE), its host side stays (hport_unplug)
 *   {"cmd":"plug","port":ID|"NAME"}      -> {"ok":true}: and gets it back
 *       with the same id and name. Both refused while the guest takes no
 *       control messages. "list" shows unplugged ports ("plugged":false).
 * Errors: {"ok":false,"error":"one line"}; the connection stays usable.
 *
 * Security model: the socket is mode 0600 and SO_PEERCRED admits only root
 * and the daemon's own uid. Admitted clients are trusted to manage ports but
 * not to be well-formed or fast: every request is parsed as hostile input,
 * a request line is at most CTL_LINE_MAX bytes, at most CTL_CLIENTS_MAX
 * clients are served, and a client that does not read its replies or events
 * is disconnected (with a log line) once CTL_BACKLOG_MAX bytes wait for it.
 * Nothing a client does blocks the daemon.
 */
#pragma once

#include <stdbool.h>

#include "backend.h"
#include "stats.h"
#include "vserial/vserial.h"

#define CTL_LINE_MAX (64u * 1024)
#define CTL_CLIENTS_MAX 64u
#define CTL_BACKLOG_MAX (4u * 1024 * 1024)

struct ctl_server;

struct ctl_server_config {
        const char *path;
        struct vs_device *dev;
        /* Ports added at run time get this env; its loop serves the socket. */
        struct hport_env *env;
        /* The daemon-wide counters of "stats"; may be NULL. */
        const struct stats_src *stats;
        /* Added to an add refused with EACCES or EPERM, once set (the
         * sandbox may be why); may be NULL. */
        const char *sandbox_hint;
};

/* Listen on cfg->path (mode 0600). Errors are logged; negative errno.
 * With a NULL path nothing listens: clients come from ctl_server_adopt(). */
int ctl_server_new(const struct ctl_server_config *cfg, struct ctl_server **ret);
/* Serve @fd (a connected, non-blocking unix stream socket; the server owns
 * it) as a client, as if it had connected (the fuzzer's way in). */
void ctl_server_adopt(struct ctl_server *cs, int fd);
/* Close every client and the socket, unlink the path. Accepts NULL. Free it
 * after the ports (their teardown still reports events). */
void ctl_server_free(struct ctl_server *cs);

/* For hport_env.event (opaque: the ctl_server). */
void ctl_server_hport_event(void *opaque, struct hport *hp, enum hport_event ev);
/* For vs_device_set_event_cb (opaque: the ctl_server). */
void ctl_server_device_event(void *opaque, enum vs_device_event ev);
/* The VMM connected or its connection is gone (after vs_vu_free). Accepts a
 * NULL server. */
void ctl_server_vmm_event(struct ctl_server *cs, bool connected);
