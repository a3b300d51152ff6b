/* SPDX-License-Identifier: MIT */
/* The daemon's cost counters as JSON: see stats.h. */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "stats.h"

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

        json_object_object_add(o, "connected",
                               json_object_new_boolean(src->vu && *src->vu));
        json_object_object_add(o, "accepted", u64(src->counters->vmm_accepted));
        json_object_object_add(o, "refused", u64(src->counters->vmm_refused));
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
        { "listeners", sec_listeners },
};

void stats_fill(const struct stats_src *src, json_object *out)
{
        for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
                json_object_object_add(out, sections[i].name, sections[i].fn(src));
}

void stats_port(const struct hport *hp, json_object *o)
{
        struct vs_port_stats st;

        hport_get_stats(hp, &st);     /* over all its plugs */
        json_object_object_add(o, "to_guest", u64(st.to_guest));
        json_object_object_add(o, "from_guest", u64(st.from_guest));
        json_object_object_add(o, "buffered", u64(hport_buffered(hp)));
        json_object_object_add(o, "host_connects", u64(hp->cnt.host_connects));
        json_object_object_add(o, "clients_refused", u64(hp->cnt.clients_refused));
        json_object_object_add(o, "output_discarded", u64(hp->cnt.output_discarded));
        /* Host connections (clients.c) */
        json_object_object_add(o, "clients_dropped", u64(hp->cnt.clients_dropped));
        json_object_object_add(o, "input_discarded", u64(hp->cnt.input_discarded));
}
