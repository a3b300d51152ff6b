/* SPDX-License-Identifier: MIT */
/*
 * The "stats" counters in the Prometheus text exposition format (version
 * 0.0.4), as node-exporter's textfile collector reads them:
 *
 *   # HELP vserial_port_from_guest_bytes_total Bytes of guest output ...
 *   # TYPE vserial_port_from_guest_bytes_total counter
 *   vserial_port_from_guest_bytes_total{instance="vm1",port="1",name="org.x"} 1234
 *
 * Every metric is named vserial_..., counters end in _total, sizes are in
 * bytes and times in seconds; the daemon's have the label instance, a
 * port's instance, port (its id) and name (its name, "" if none). The
 * text is made from the same JSON object "stats" replies with, so the two
 * always agree; what each metric is: the table in metrics.c and
 * vserial(8).
 */
#pragma once

#include <json-c/json.h>

/* The text for the stats object @st (stats_fill() and "ports"), labelled
 * with @instance; malloc()ed, or NULL out of memory. */
char *metrics_prometheus(json_object *st, const char *instance);
