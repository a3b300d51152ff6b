/* SPDX-License-Identifier: MIT */
/* The daemon's cost counters as JSON: see stats.h. */
#include <errno.h>
#include <string.h>

#include "clients.h"
#include "log.h"
#include "stats.h"
#include "tap.h"

static void stats_port_host(const struct hport *hp, json_object *o);

static json_object *u64(uint64_t v)
{
        return json_object_new_uint64(v);
}

int stats_open(struct stats_src *src)
{
        src->fd_dir = opendir("/proc/self/fd");
        return src->fd_dir ? 0 : -errno;
}

void stats_close(struct stats_src *src)
{
        if (src->fd_dir)
                closedir(src->fd_dir);
        src->fd_dir = NULL;
}

long stats_count_fds(const struct stats_src *src)
{
        struct dirent *e;
        long n = 0;

        if (!src->fd_dir)
                return -1;
        /* procfs lists the table as it is now on every pass. */
        rewinddir(src->fd_dir);
        errno = 0;
        while ((e = readdir(src->fd_dir)) != NULL)
                n += e->d_name[0] != '.';
        return errno ? -1 : n;
}

/* ---- sections ------------------------------------------------------------ */

static json_object *sec_loop(const struct stats_src *src)
{
        json_object *o = json_object_new_object();
        struct vs_epoll_stats st;

        vs_epoll_get_stats(src->ep, &st);
        json_object_object_add(o, "wakeups", u64(st.wakeups));
        json_object_object_add(o, "dispatched", u64(st.dispatched));
        json_object_object_add(o, "watches", u64(st.watches));
        return o;
}

static json_object *sec_log(const struct stats_src *src)
{
        json_object *o = json_object_new_object();
        struct log_stats st;

        (void)src;
        log_get_stats(&st);
        json_object_object_add(o, "written", u64(st.written));
        json_object_object_add(o, "suppressed", u64(st.suppressed));
        return o;
}

static json_object *sec_process(const struct stats_src *src)
{
        json_object *o = json_object_new_object();

        json_object_object_add(o, "fds", json_object_new_int64(stats_count_fds(src)));
        return o;
}

static json_object *sec_vmm(const struct stats_src *src)
{
        json_object *o = json_object_new_object();
        struct vs_vu_stats st = { 0 };

        if (src->vu && *src->vu)
                vs_vu_get_stats(*src->vu, &st);
        json_object_object_add(o, "connected",
                               json_object_new_boolean(src->vu && *src->vu));
        json_object_object_add(o, "accepted", u64(src->counters->vmm_accepted));
        json_object_object_add(o, "refused", u64(src->counters->vmm_refused));
        json_object_object_add(o, "rings_short", u64(src->counters->vmm_rings_short));
        json_object_object_add(o, "memory_lost", u64(src->counters->vmm_memory_lost));
        json_object_object_add(o, "messages", u64(st.messages));
        json_object_object_add(o, "fds", u64(st.fds));
        json_object_object_add(o, "regions", u64(st.regions));
        json_object_object_add(o, "rings", u64(st.rings));
        return o;
}

/* One queue's (or the device's) work counters. */
static void add_queue(json_object *o, const struct vs_queue_stats *st, bool device)
{
        json_object_object_add(o, "kicks", u64(st->kicks));
        json_object_object_add(o, "chains", u64(st->chains));
        json_object_object_add(o, "descs", u64(st->descs));
        json_object_object_add(o, "bytes", u64(st->bytes));
        json_object_object_add(o, "schedules", u64(st->schedules));
        json_object_object_add(o, "errors", u64(st->errors));
        json_object_object_add(o, "max_chain_descs", u64(st->max_chain_descs));
        if (device)
                json_object_object_add(o, "max_call_descs", u64(st->max_call_descs));
}

static json_object *queue_obj(const struct vs_device *dev, unsigned q)
{
        json_object *o = json_object_new_object();
        struct vs_queue_stats st = { 0 };

        vs_device_get_queue_stats(dev, q, &st);
        add_queue(o, &st, false);
        return o;
}

/* What pacing saved the guest and the VMM (vserial.h, vs_device_set_timer). */
static json_object *pace_obj(const struct vs_device *dev)
{
        json_object *o = json_object_new_object();
        struct vs_pace_stats st;

        vs_device_get_pace_stats(dev, &st);
        json_object_object_add(o, "notifies", u64(st.notifies));
        json_object_object_add(o, "notifies_held", u64(st.notifies_held));
        json_object_object_add(o, "kick_batches", u64(st.kick_batches));
        json_object_object_add(o, "batch_timeouts", u64(st.batch_timeouts));
        json_object_object_add(o, "timer_arms", u64(st.timer_arms));
        json_object_object_add(o, "timer_runs", u64(st.timer_runs));
        return o;
}

/* The guest's work, all queues together; the control queues (2, 3) on
 * their own, the ports' under each port. */
static json_object *sec_device(const struct stats_src *src)
{
        json_object *o = json_object_new_object();
        struct vs_queue_stats st;

        vs_device_get_stats(src->dev, &st);
        json_object_object_add(o, "queues", u64(vs_device_num_queues(src->dev)));
        add_queue(o, &st, true);
        json_object_object_add(o, "control_rx", queue_obj(src->dev, 2));
        json_object_object_add(o, "control_tx", queue_obj(src->dev, 3));
        json_object_object_add(o, "pacing", pace_obj(src->dev));
        json_object_object_add(o, "guest_resets", u64(src->counters->guest_resets));
        json_object_object_add(o, "queue_errors", u64(src->counters->queue_errors));
        return o;
}

static json_object *sec_listeners(const struct stats_src *src)
{
        json_object *o = json_object_new_object();
        struct listen_pool_stats st = { 0 };

        if (src->env->listeners)
                listen_pool_get_stats(src->env->listeners, &st);
        json_object_object_add(o, "backoffs", u64(st.backoffs));
        json_object_object_add(o, "paused", u64(st.paused));
        return o;
}

static const struct {
        const char *name;
        json_object *(*fn)(const struct stats_src *src);
} sections[] = {
        { "loop", sec_loop },
        { "log", sec_log },
        { "process", sec_process },
        { "vmm", sec_vmm },
        { "device", sec_device },
        { "listeners", sec_listeners },
};

void stats_fill(const struct stats_src *src, json_object *out)
{
        json_object_object_add(out, "instance",
                               json_object_new_string(src->instance ? src->instance : ""));
        for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
                json_object_object_add(out, sections[i].name, sections[i].fn(src));
}

void stats_port(const struct hport *hp, json_object *o)
{
        struct vs_port_stats st;
        struct vs_queue_stats rx = { 0 }, tx = { 0 };
        json_object *q;

        hport_get_stats(hp, &st);     /* over all its plugs */
        if (hp->port)
                vs_port_get_queue_stats(hp->port, &rx, &tx);
        json_object_object_add(o, "to_guest", u64(st.to_guest));
        json_object_object_add(o, "from_guest", u64(st.from_guest));
        json_object_object_add(o, "buffered", u64(hport_buffered(hp)));
        json_object_object_add(o, "host_connects", u64(hp->cnt.host_connects));
        json_object_object_add(o, "clients_refused", u64(hp->cnt.clients_refused));
        json_object_object_add(o, "output_discarded", u64(hp->cnt.output_discarded));
        /* Host connections (clients.c) */
        json_object_object_add(o, "clients_dropped", u64(hp->cnt.clients_dropped));
        json_object_object_add(o, "input_discarded", u64(hp->cnt.input_discarded));
        q = json_object_new_object();
        add_queue(q, &rx, false);
        json_object_object_add(o, "rx", q);
        q = json_object_new_object();
        add_queue(q, &tx, false);
        json_object_object_add(o, "tx", q);
        stats_port_host(hp, o);
}

/* Issue 13's: history, logfile=, clients, throttled time, journal. */
static void stats_port_host(const struct hport *hp, json_object *o)
{
        struct tap_stats t;
        uint64_t entries, retries;

        tap_get_stats(hp, &t);
        json_object_object_add(o, "clients", u64(hp->clients ? clients_count(hp->clients) :
                                                 hport_connected(hp) ? 1 : 0));
        json_object_object_add(o, "guest_open",
                               json_object_new_boolean(hp->port && vs_port_guest_connected(hp->port)));
        json_object_object_add(o, "throttled",
                               json_object_new_boolean(hp->port && vs_port_throttled(hp->port)));
        json_object_object_add(o, "history_size", u64(t.history_size));
        json_object_object_add(o, "history_bytes", u64(t.history_bytes));
        json_object_object_add(o, "history_readers", u64(t.history_readers));
        json_object_object_add(o, "logfile_written", u64(t.logfile_written));
        json_object_object_add(o, "logfile_lost", u64(t.logfile_lost));
        json_object_object_add(o, "throttled_seconds",
                               json_object_new_double(t.throttled_ns / 1e9));
        if (hp->spec.backend == BACKEND_JOURNAL) {
                backend_journal_counters(hp, &entries, &retries);
                json_object_object_add(o, "journal_entries", u64(entries));
                json_object_object_add(o, "journal_retries", u64(retries));
        }
}
