/* SPDX-License-Identifier: MIT */
/*
 * vserial: the virtio-serial vhost-user backend daemon.
 *
 * One device, one VMM connection at a time. Ports, their host clients and
 * buffered data live as long as the daemon: when the VMM goes away the
 * device forgets the guest and waits for the next connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "ctl_server.h"
#include "log.h"
#include "options.h"
#include "sandbox.h"
#include "service.h"
#include "stats.h"
#include "vhost-user/vhost_user.h"

/*
 * Everything the daemon has, in one place. There is one, and main() keeps
 * it static rather than on its stack for its size: about 240 KiB, nearly
 * all of it the options' room for every --port spec (OPT_MAX_PORTS_SPECS),
 * more than a stack frame should hold.
 */
struct daemon {
        struct options opt;
        struct vs_epoll *ep;
        struct vs_device *dev;
        struct hport_env env;
        size_t nhports;         /* --port ones */
        struct ctl_server *ctl;
        struct listen_pool *listeners;
        int listen_fd;
        bool own_socket;        /* we created listen_fd's path: remove it */
        struct listener *vmm_listener;
        int sig_fd;
        int notify_fd;          /* NOTIFY_SOCKET, or -1 */
        struct vs_vu *vu;
        bool vu_closed;         /* freed after the loop iteration */
        bool vu_mem_lost;       /* its guest memory was truncated */
        bool quit;
        struct daemon_counters counters;
        struct stats_src stats;
        struct sandbox_policy policy;
        char *dirs[3 * SANDBOX_MAX_DIRS];       /* the policy's strings */
        size_t ndirs;
        char sandbox_hint[512]; /* why a run-time add may be refused */
        struct service_fds sfds;        /* what socket activation passed */
        bool listen_foreign;    /* LISTEN_FDS was for another process */
};

static void on_vu_closed(void *opaque, int err, const char *why)
{
        struct daemon *d = opaque;

        d->vu_mem_lost |= vs_vu_memory_lost(d->vu);
        if (err == 0)
                log_info("VMM disconnected: %s", why);
        else
                log_warn("VMM connection closed: %s (%s)", why, strerror(-err));
        d->vu_closed = true;
}

static void on_queue_broken(void *opaque, unsigned q, int err)
{
        struct daemon *d = opaque;

        d->counters.queue_errors++;
        log_warn("guest broke queue %u (%s): it is not used until reset", q, strerror(-err));
}

/*
 * The VMM gave the guest fewer rings than --max-ports needs: the guest's
 * probe fails and the VMM sends nothing more, so this is the one line that
 * says why.
 */
static void on_rings_short(void *opaque, unsigned have, unsigned need)
{
        struct daemon *d = opaque;
        unsigned fit = have / 2 > 1 ? have / 2 - 1 : 0;

        d->counters.vmm_rings_short++;
        if (fit)
                log_error("the VMM has %u rings (QEMU: num_vqs=%u) but --max-ports %u needs "
                          "%u rings, 2 x (%u + 1): the guest cannot start the device; give "
                          "the VMM num_vqs=%u, or run vserial with --max-ports %u",
                          have, have, d->opt.max_ports, need, d->opt.max_ports, need, fit);
        else
                log_error("the VMM has %u rings (QEMU: num_vqs=%u) but --max-ports %u needs "
                          "%u rings, 2 x (%u + 1): the guest cannot start the device; give "
                          "the VMM num_vqs=%u", have, have, d->opt.max_ports, need,
                          d->opt.max_ports, need);
}

/*
 * Guest memory the VMM truncated (src/lib/mem/mem.h). The library's SIGBUS
 * guard turns such pages into zeros and the connection fails at its next
 * event; a kernel copy (writev/readv on guest iovecs) fails with EFAULT
 * instead, which the guard never sees (@fault): then the connection is
 * ended here. Either way the port's host side drops what it read from
 * guest memory in that call rather than pass zeros on as guest output,
 * and leaves host input in the kernel for the next VMM (backend.c).
 */
static bool guest_memory_lost(void *opaque, bool fault)
{
        struct daemon *d = opaque;

        if (!d->vu)
                return false;
        if (fault && !d->vu_mem_lost) {
                log_warn("VMM connection closed: a copy from or to guest memory failed (%s): "
                         "the VMM truncated its memory file", strerror(EFAULT));
                d->vu_mem_lost = true;
                d->vu_closed = true;
        }
        d->vu_mem_lost |= vs_vu_memory_lost(d->vu);
        return d->vu_mem_lost;
}

static void on_vmm(void *opaque, int c)
{
        struct daemon *d = opaque;
        struct vs_vu_config cfg = {
                .loop_ops = &vs_epoll_ops,
                .loop = d->ep,
                .closed = on_vu_closed,
                .queue_broken = on_queue_broken,
                .rings_short = on_rings_short,
                .opaque = d,
        };
        int r;

        if (d->vu) {
                d->counters.vmm_refused++;
                log_warn("refused a second VMM connection: one is being served");
                close(c);
                return;
        }
        r = vs_vu_new(d->dev, c, &cfg, &d->vu);
        if (r < 0) {
                log_error("cannot serve the VMM connection: %s", strerror(-r));
                return;
        }
        d->counters.vmm_accepted++;
        d->vu_mem_lost = false;
        log_info("VMM connected");
        ctl_server_vmm_event(d->ctl, true);
}

static void on_signal(void *opaque, int fd, uint32_t events)
{
        struct daemon *d = opaque;
        struct signalfd_siginfo si;

        (void)events;
        if (read(fd, &si, sizeof(si)) != sizeof(si))
                return;
        if (si.ssi_signo == SIGWINCH) {
                /* Consoles on the terminal follow its size. */
                for (struct hport *hp = hport_next(&d->env, NULL); hp; hp = hport_next(&d->env, hp))
                        hport_winch(hp);
                return;
        }
        if (si.ssi_signo == SIGHUP) {
                /* logrotate moved the files: write to new ones. */
                log_info("SIGHUP: reopening the ports' files");
                for (struct hport *hp = hport_next(&d->env, NULL); hp; hp = hport_next(&d->env, hp))
                        hport_reopen(hp);
                return;
        }
        log_info("signal %u: shutting down", si.ssi_signo);
        d->quit = true;
}

static int setup_signals(struct daemon *d)
{
        sigset_t set;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGWINCH);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return -errno;
        d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (d->sig_fd < 0)
                return -errno;
        return vs_epoll_ops.add(d->ep, d->sig_fd, EPOLLIN, on_signal, d);
}

static int setup_ports(struct daemon *d)
{
        for (size_t i = 0; i < d->opt.nports; i++) {
                struct hport *hp;
                int r = hport_new(d->dev, &d->opt.ports[i], &d->env, &hp);

                if (r < 0) {
                        log_error("--port %s: %s", d->opt.ports[i].name[0] ?
                                  d->opt.ports[i].name : "(unnamed)", strerror(-r));
                        return r;
                }
                d->nhports++;
        }
        return 0;
}

/* The counters of the "stats" request (stats.h). */
static int setup_stats(struct daemon *d)
{
        int r;

        d->stats = (struct stats_src){ .ep = d->ep, .dev = d->dev, .vu = &d->vu,
                                       .counters = &d->counters, .env = &d->env,
                                       .instance = d->opt.instance };
        r = stats_open(&d->stats);
        /* Only the fd count is lost: say so, and serve anyway. */
        if (r < 0)
                log_warn("cannot open /proc/self/fd (%s): stats report no fd count",
                         strerror(-r));
        return 0;
}

/* Device events: counted, and reported on the control socket. */
static void on_device_event(void *opaque, enum vs_device_event ev)
{
        struct daemon *d = opaque;

        if (ev == VS_EVENT_DRIVER_READY)
                d->counters.guest_resets++;
        ctl_server_device_event(d->ctl, ev);
}

/* --control: run-time ports and the event stream. */
static int setup_control(struct daemon *d)
{
        struct ctl_server_config cc = { .path = d->opt.control_path, .dev = d->dev,
                                        .env = &d->env, .stats = &d->stats,
                                        .sandbox_hint = d->sandbox_hint };
        int r = ctl_server_new(&cc, &d->ctl);

        if (r < 0)
                return r;
        d->env.event = ctl_server_hport_event;
        d->env.opaque = d->ctl;
        return 0;
}

static int listen_path(struct daemon *d)
{
        int fd = backend_listen_unix(d->opt.socket_path, 1);

        if (fd < 0)
                return log_errno(fd, "cannot listen on %s", d->opt.socket_path);
        d->own_socket = true;
        return fd;
}

/* The VMM socket: --socket-fd, else systemd's (LISTEN_FDS), else --socket. */
static int vmm_socket(struct daemon *d)
{
        char what[32];
        int fd, r;

        if (d->opt.socket_fd >= 0) {
                if (d->sfds.n)
                        log_warn("--socket-fd %d is the VMM socket: socket activation's other "
                                 "sockets are not used", d->opt.socket_fd);
                snprintf(what, sizeof(what), "--socket-fd %d", d->opt.socket_fd);
                r = service_take_listener(d->opt.socket_fd, what);
                return r < 0 ? r : d->opt.socket_fd;
        }
        fd = service_vmm_fd(&d->sfds);
        if (fd > 0 && d->opt.socket_path)
                log_info("serving the socket passed by systemd; --socket %s is not created",
                         d->opt.socket_path);
        if (fd != 0)
                return fd;
        if (d->opt.socket_path)
                return listen_path(d);
        if (d->listen_foreign)
                log_error("no VMM socket: LISTEN_FDS is set but LISTEN_PID is not this process; "
                          "give --socket PATH or --socket-fd N");
        else
                log_error("no VMM socket: every socket systemd passed is a backend=fd port's; "
                          "give --socket PATH or --socket-fd N");
        return -EINVAL;
}

static int setup_vmm_socket(struct daemon *d)
{
        int fd = vmm_socket(d);

        if (fd < 0)
                return fd;
        d->listen_fd = fd;
        if (d->own_socket)
                log_info("listening for the VMM on %s (%u ports max, %zu configured)",
                         d->opt.socket_path, d->opt.max_ports, d->nhports);
        else
                log_info("listening for the VMM on the socket passed as fd %d "
                         "(%u ports max, %zu configured)", fd, d->opt.max_ports, d->nhports);
        return 0;
}

/*
 * The fds the daemon was started with, before it opens any of its own (a
 * number it opened would pass for one it was given): backend=fd ports'
 * fd=N must be open, and those named like a socket systemd passed get it.
 */
static int take_passed_fds(struct daemon *d)
{
        int r = service_listen_fds(&d->sfds, &d->listen_foreign);

        for (size_t i = 0; i < d->opt.nports && r == 0; i++) {
                struct port_spec *p = &d->opt.ports[i];

                if (p->backend != BACKEND_FD)
                        continue;
                if (p->fd < 0) {
                        p->fd = service_fds_take(&d->sfds, p->name);
                        if (p->fd < 0) {
                                log_error("--port name=%s,backend=fd: systemd passed no socket "
                                          "named %s (LISTEN_FDNAMES)", p->name, p->name);
                                r = -EBADF;
                        }
                } else if (p->fd >= 3 && p->fd < 3 + d->sfds.n) {
                        log_error("--port fd=%d: that is one of the sockets systemd passed; "
                                  "name the port like it instead", p->fd);
                        r = -EINVAL;
                } else if (fcntl(p->fd, F_GETFD) < 0) {
                        log_error("--port fd=%d: not open (the daemon was not started with it)",
                                  p->fd);
                        r = -EBADF;
                }
        }
        return r;
}

static int setup(struct daemon *d)
{
        struct vs_device_config dc = { .max_ports = d->opt.max_ports,
                                       .cols = 80, .rows = 25 };
        int r;

        /* Before confinement (sigaction is not allowed after): guest memory
         * the VMM truncates then fails only its connection (mem.h). */
        r = vs_sigbus_guard_install();
        if (r < 0)
                return log_errno(r, "cannot install the SIGBUS guard for guest memory");
        r = take_passed_fds(d);
        if (r == 0)
                r = vs_epoll_new(&d->ep);
        if (r == 0)
                r = vs_device_new(&dc, &d->dev);
        if (r == 0)
                vs_device_set_event_cb(d->dev, on_device_event, d);
        if (r == 0)
                r = listen_pool_new(&vs_epoll_ops, d->ep, &d->listeners);
        d->env.loop_ops = &vs_epoll_ops;
        d->env.loop = d->ep;
        d->env.listeners = d->listeners;
        d->env.guest_memory_lost = guest_memory_lost;
        d->env.mem_opaque = d;
        d->env.instance = d->opt.instance;
        if (r == 0)
                r = setup_stats(d);
        if (r == 0)
                r = setup_signals(d);
        if (r == 0)
                r = setup_ports(d);
        if (r == 0 && d->opt.control_path)
                r = setup_control(d);
        if (r == 0)
                r = setup_vmm_socket(d);
        if (r < 0)
                return r;
        /* Now, while nothing is confined yet (service.c). */
        r = service_notify_open(&d->notify_fd);
        if (r < 0)
                return r;
        return listener_new(d->listeners, d->listen_fd, 4, on_vmm, d, &d->vmm_listener);
}

/* @list gets the directory of @path, once. -E2BIG past SANDBOX_MAX_DIRS. */
static int add_dir(struct daemon *d, const char **list, size_t *n, const char *path,
                   bool of_file)
{
        char *copy = strdup(path), *dir;

        if (!copy)
                return -ENOMEM;
        dir = of_file ? dirname(copy) : copy;
        for (size_t i = 0; i < *n; i++) {
                if (strcmp(list[i], dir) == 0) {
                        free(copy);
                        return 0;
                }
        }
        if (*n == SANDBOX_MAX_DIRS || d->ndirs == 3 * SANDBOX_MAX_DIRS) {
                free(copy);
                log_error("sandbox: more than %d directories", SANDBOX_MAX_DIRS);
                return -E2BIG;
        }
        /* dirname() returns a pointer into @copy or to a static ".". */
        if (dir != copy) {
                char *s = strdup(dir);

                free(copy);
                if (!s)
                        return -ENOMEM;
                copy = dir = s;
        }
        d->dirs[d->ndirs++] = copy;
        list[(*n)++] = dir;
        return 0;
}

/*
 * Issue 13's part of the policy: logfile= files are reopened (SIGHUP) in
 * their directories; tcp-connect ports connect over IPv4/IPv6, to their
 * destination ports only (Landlock), or to any with --allow-tcp and
 * --allow-connect (tcp-connect ports added at run time).
 */
static int make_policy_host(struct daemon *d)
{
        struct sandbox_policy *p = &d->policy;
        const struct options *o = &d->opt;
        int r = 0;

        p->tcp_connect_any = o->allow_tcp && o->allow_connect;
        p->inet_connect = p->tcp_connect_any;
        for (size_t i = 0; i < o->nports && r == 0; i++) {
                const struct port_spec *s = &o->ports[i];

                if (s->logfile[0])
                        r = add_dir(d, p->reopen_dirs, &p->nreopen_dirs, s->logfile, true);
                if (s->backend != BACKEND_TCP_CONNECT)
                        continue;
                p->inet_connect = p->connect = true;
                if (p->ntcp_connect_ports == SANDBOX_MAX_DIRS) {
                        log_error("sandbox: more than %d tcp-connect ports", SANDBOX_MAX_DIRS);
                        return -E2BIG;
                }
                p->tcp_connect_ports[p->ntcp_connect_ports++] = s->tcp_port;
        }
        return r;
}

/*
 * What the confined daemon may do, from the options: ports added at run
 * time live in the control socket's directory and --allow-path ones; the
 * daemon removes its own sockets in theirs; connect() for unix-connect
 * ports, IPv4/IPv6 for tcp ones added at run time.
 */
static int make_policy(struct daemon *d)
{
        struct sandbox_policy *p = &d->policy;
        const struct options *o = &d->opt;
        bool runtime = o->control_path != NULL;
        int r = 0;

        p->user = o->user;
        p->inet = o->allow_tcp;
        p->connect = o->allow_connect;
        p->devices = runtime;
        if (runtime)
                r = add_dir(d, p->port_dirs, &p->nport_dirs, o->control_path, true);
        for (size_t i = 0; i < o->nallow_paths && r == 0; i++)
                r = add_dir(d, p->port_dirs, &p->nport_dirs, o->allow_paths[i], false);
        /* A socket passed by systemd or --socket-fd is not ours to remove. */
        if (r == 0 && d->own_socket)
                r = add_dir(d, p->remove_dirs, &p->nremove_dirs, o->socket_path, true);
        if (r == 0 && runtime)
                r = add_dir(d, p->remove_dirs, &p->nremove_dirs, o->control_path, true);
        for (size_t i = 0; i < o->nports && r == 0; i++) {
                p->connect |= o->ports[i].backend == BACKEND_UNIX_CONNECT;
                if (o->ports[i].backend == BACKEND_UNIX)
                        r = add_dir(d, p->remove_dirs, &p->nremove_dirs, o->ports[i].path, true);
                else if (o->ports[i].backend == BACKEND_FILE)
                        r = add_dir(d, p->reopen_dirs, &p->nreopen_dirs, o->ports[i].path, true);
        }
        return r == 0 ? make_policy_host(d) : r;
}

/* Confine the process; from here on a refused add says why it may be. */
static int confine(struct daemon *d)
{
        char summary[1024];
        int r = make_policy(d);

        if (r == 0)
                r = sandbox_apply(&d->policy, summary, sizeof(summary));
        if (r < 0)
                return r;
        log_info("sandbox: %s", summary);
        snprintf(d->sandbox_hint, sizeof(d->sandbox_hint),
                 "the sandbox lets ports added at run time use paths under the control "
                 "socket's directory and --allow-path ones only, backend=tcp with "
                 "--allow-tcp, backend=unix-connect with --allow-connect and "
                 "backend=tcp-connect with both: see vserial(8)");
        return 0;
}

static int run(struct daemon *d)
{
        while (!d->quit) {
                int r = vs_epoll_run_once(d->ep, -1);

                if (r < 0)
                        return log_errno(r, "event loop");
                if (d->vu_closed) {
                        d->counters.vmm_memory_lost += d->vu_mem_lost;
                        vs_vu_free(d->vu);
                        d->vu = NULL;
                        d->vu_closed = false;
                        ctl_server_vmm_event(d->ctl, false);
                }
        }
        return 0;
}

static void teardown(struct daemon *d)
{
        struct hport *hp;

        vs_vu_free(d->vu);
        /* Every port's host side, the control socket's too (their events
         * still go out), unplugged ones as well; the device and its ports
         * go next. */
        while ((hp = hport_next(&d->env, NULL)))
                hport_free(hp);
        ctl_server_free(d->ctl);
        vs_device_free(d->dev);
        listener_free(d->vmm_listener);
        if (d->listen_fd >= 0) {
                close(d->listen_fd);
                /* A passed socket's path belongs to whoever made it. */
                if (d->own_socket)
                        unlink(d->opt.socket_path);
        }
        listen_pool_free(d->listeners);
        if (d->sig_fd >= 0)
                close(d->sig_fd);
        if (d->notify_fd >= 0)
                close(d->notify_fd);
        for (size_t i = 0; i < d->ndirs; i++)
                free(d->dirs[i]);
        stats_close(&d->stats);
        service_fds_free(&d->sfds);
        vs_epoll_free(d->ep);
}

int main(int argc, char **argv)
{
        static struct daemon d = { .listen_fd = -1, .sig_fd = -1, .notify_fd = -1 };
        char err[512];
        int r = options_parse(argc, argv, &d.opt, err, sizeof(err));

        if (r == 1)
                return 0;
        if (r < 0) {
                fprintf(stderr, "vserial: %s\n", err);
                return 2;
        }
        log_set_level(d.opt.log_level);
        r = setup(&d);
        /* Everything the command line asked for exists: confine the rest. */
        if (r == 0 && !d.opt.no_sandbox)
                r = confine(&d);
        else if (r == 0 && d.opt.user)
                log_warn("--user %s is ignored with --no-sandbox", d.opt.user);
        /* From here on a guest, a VMM or a peer can make lines at will. */
        log_limit_start();
        if (r == 0) {
                service_notify(d.notify_fd, "READY=1");
                r = run(&d);
                service_notify(d.notify_fd, "STOPPING=1");
        }
        log_limit_stop();
        teardown(&d);
        options_free(&d.opt);
        return r < 0 ? 1 : 0;
}
