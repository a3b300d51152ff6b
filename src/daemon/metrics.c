/* SPDX-License-Identifier: MIT */
/* Prometheus text from the stats object: see metrics.h. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

enum kind { COUNTER, GAUGE };

struct metric {
        const char *name;
        enum kind kind;
        const char *section;    /* daemon-wide: the stats section; NULL: per port */
        const char *key;
        const char *help;
};

static const struct metric daemon_metrics[] = {
        { "vserial_vmm_connected", GAUGE, "vmm", "connected",
          "1 while a VMM is connected" },
        { "vserial_vmm_connects_total", COUNTER, "vmm", "accepted",
          "VMM connections served" },
        { "vserial_vmm_refused_total", COUNTER, "vmm", "refused",
          "VMM connections refused while one was served" },
        { "vserial_guest_resets_total", COUNTER, "device", "guest_resets",
          "Times the guest's driver started (DEVICE_READY)" },
        { "vserial_queue_errors_total", COUNTER, "device", "queue_errors",
          "Virtqueues the guest broke (not used until a reset)" },
        { "vserial_log_lines_total", COUNTER, "log", "written",
          "Lines the daemon logged" },
        { "vserial_log_suppressed_total", COUNTER, "log", "suppressed",
          "Log lines the daemon's rate limit dropped" },
        { "vserial_open_fds", GAUGE, "process", "fds",
          "File descriptors the daemon holds" },
        { "vserial_control_clients", GAUGE, "control", "clients",
          "Connections to the control socket" },
};

static const struct metric port_metrics[] = {
        { "vserial_port_from_guest_bytes_total", COUNTER, NULL, "from_guest",
          "Bytes of guest output the port took" },
        { "vserial_port_to_guest_bytes_total", COUNTER, NULL, "to_guest",
          "Bytes delivered to the guest" },
        { "vserial_port_buffered_bytes", GAUGE, NULL, "buffered",
          "Guest output waiting for the host side" },
        { "vserial_port_discarded_bytes_total", COUNTER, NULL, "output_discarded",
          "Guest output dropped because its host side can never take it again" },
        { "vserial_port_guest_open", GAUGE, NULL, "guest_open",
          "1 while the guest has the port open" },
        { "vserial_port_throttled", GAUGE, NULL, "throttled",
          "1 while the port holds the guest's output back" },
        { "vserial_port_throttled_seconds_total", COUNTER, NULL, "throttled_seconds",
          "Time the port held the guest's output back" },
        { "vserial_port_clients", GAUGE, NULL, "clients",
          "Host clients connected" },
        { "vserial_port_host_connects_total", COUNTER, NULL, "host_connects",
          "Host peers that became the port's host side" },
        { "vserial_port_clients_refused_total", COUNTER, NULL, "clients_refused",
          "Host clients closed unserved (the guest could not be told)" },
        { "vserial_port_clients_dropped_total", COUNTER, NULL, "clients_dropped",
          "Reading clients disconnected for being a whole buffer behind" },
        { "vserial_port_input_discarded_bytes_total", COUNTER, NULL, "input_discarded",
          "Bytes read-only clients sent, read and dropped" },
        { "vserial_port_history_size_bytes", GAUGE, NULL, "history_size",
          "The port's history bound (history=)" },
        { "vserial_port_history_bytes", GAUGE, NULL, "history_bytes",
          "Guest output held in the port's history" },
        { "vserial_port_history_readers", GAUGE, NULL, "history_readers",
          "Connections reading the port's history" },
        { "vserial_port_logfile_written_bytes_total", COUNTER, NULL, "logfile_written",
          "Guest output appended to logfile=" },
        { "vserial_port_logfile_lost_bytes_total", COUNTER, NULL, "logfile_lost",
          "Guest output logfile= could not take (a full disk)" },
        { "vserial_port_journal_entries_total", COUNTER, NULL, "journal_entries",
          "Journal entries sent (backend=journal)" },
        { "vserial_port_journal_retries_total", COUNTER, NULL, "journal_retries",
          "Journal sends journald did not take at once (backend=journal)" },
};

/* A label value: backslash, double quote and newline escaped. */
static void put_label(FILE *f, const char *key, const char *v)
{
        fprintf(f, "%s=\"", key);
        for (; *v; v++) {
                if (*v == '\\' || *v == '"')
                        fprintf(f, "\\%c", *v);
                else if (*v == '\n')
                        fputs("\\n", f);
                else
                        fputc(*v, f);
        }
        fputc('"', f);
}

static bool is_number(json_object *v)
{
        return json_object_is_type(v, json_type_boolean) || json_object_is_type(v, json_type_int) ||
               json_object_is_type(v, json_type_double);
}

/* A sample's value (is_number(@v)) and the line's end. */
static void put_value(FILE *f, json_object *v)
{
        if (json_object_is_type(v, json_type_boolean))
                fprintf(f, " %d\n", json_object_get_boolean(v) ? 1 : 0);
        else if (json_object_is_type(v, json_type_int))
                fprintf(f, " %llu\n", (unsigned long long)json_object_get_uint64(v));
        else
                fprintf(f, " %.9g\n", json_object_get_double(v));
}

static void put_head(FILE *f, const struct metric *m)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                m->kind == COUNTER ? "counter" : "gauge");
}

static void put_daemon(FILE *f, json_object *st, const char *instance)
{
        for (size_t i = 0; i < sizeof(daemon_metrics) / sizeof(daemon_metrics[0]); i++) {
                const struct metric *m = &daemon_metrics[i];
                json_object *sec, *v;

                if (!json_object_object_get_ex(st, m->section, &sec) ||
                    !json_object_object_get_ex(sec, m->key, &v) || !is_number(v))
                        continue;
                put_head(f, m);
                fprintf(f, "%s{", m->name);
                put_label(f, "instance", instance);
                fputc('}', f);
                put_value(f, v);
        }
}

/* One family: all its samples together, as the format wants. */
static void put_port_family(FILE *f, const struct metric *m, json_object *ports,
                            const char *instance)
{
        bool head = false;

        for (size_t i = 0; i < json_object_array_length(ports); i++) {
                json_object *p = json_object_array_get_idx(ports, i), *v, *id, *name;
                char num[24];

                if (!json_object_object_get_ex(p, m->key, &v) || !is_number(v) ||
                    !json_object_object_get_ex(p, "id", &id) ||
                    !json_object_object_get_ex(p, "name", &name))
                        continue;
                if (!head)
                        put_head(f, m);
                head = true;
                snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(id));
                fprintf(f, "%s{", m->name);
                put_label(f, "instance", instance);
                fputc(',', f);
                put_label(f, "port", num);
                fputc(',', f);
                put_label(f, "name", json_object_get_string(name));
                fputc('}', f);
                put_value(f, v);
        }
}

char *metrics_prometheus(json_object *st, const char *instance)
{
        json_object *ports = NULL;
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                return NULL;
        put_daemon(f, st, instance);
        if (json_object_object_get_ex(st, "ports", &ports) &&
            json_object_is_type(ports, json_type_array))
                for (size_t i = 0; i < sizeof(port_metrics) / sizeof(port_metrics[0]); i++)
                        put_port_family(f, &port_metrics[i], ports, instance);
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        return text;
}
