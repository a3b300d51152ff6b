/* SPDX-License-Identifier: MIT */
/*
 * Unplug and plug: the guest loses or gets a port while its host side
 * (backend, clients, buffered output) stays, as a QEMU virtserialport
 * device_del / device_add keeps its chardev. See backend.h.
 *
 * While unplugged the host port has no vs_port: guest output cannot come
 * (the guest has no port to write to), what the port had taken is still
 * written to its host side, and host input is not read (backend.c and
 * clients.c pause it when they find no port), so it waits in the kernel,
 * bounded by the socket, until the guest opens the port after a plug.
 */
#include <errno.h>

#include "backend.h"

int hport_unplug(struct hport *hp)
{
        struct vs_port_stats st;
        int r;

        if (!hp->port)
                return -EALREADY;
        /* Kept across plugs: "list" counts what the port ever carried. */
        vs_port_get_stats(hp->port, &st);
        r = vs_port_remove(hp->port);
        if (r < 0)
                return r;
        hp->stats_base.to_guest += st.to_guest;
        hp->stats_base.from_guest += st.from_guest;
        hp->port = NULL;
        log_info("%s: unplugged (the guest lost the port; its host side stays)", hp->label);
        hport_emit(hp, HPORT_UNPLUGGED);
        return 0;
}

int hport_plug(struct hport *hp)
{
        struct vs_port_config pc = { .id = hp->id, .name = hp->spec.name,
                                     .console = hp->spec.console };
        int r;

        if (hp->port)
                return -EALREADY;
        r = vs_port_add(hp->dev, &pc, &hport_port_ops, hp, &hp->port);
        if (r < 0) {
                hp->port = NULL;
                return r;
        }
        /* A new port is not the guest's yet: nothing here is refused. */
        if (hp->spec.console && hp->cols && hp->rows)
                vs_port_resize(hp->port, hp->cols, hp->rows);
        if (hport_connected(hp))
                vs_port_set_host_connected(hp->port, true);
        log_info("%s: plugged (the guest has the port again)", hp->label);
        hport_emit(hp, HPORT_PLUGGED);
        return 0;
}
