/* SPDX-License-Identifier: MIT */
/*
 * echo: the smallest program that embeds libvserial.
 *
 * It serves one virtio-serial device over vhost-user at SOCKET with one port,
 * "org.vserial.echo", and writes back to the guest whatever the guest writes.
 * The guest sees /dev/vport0p1; `echo hi > /dev/vport0p1; cat /dev/vport0p1`
 * prints "hi".
 *
 *   echo SOCKET [SECONDS]     serve until the VMM disconnects (or SECONDS pass)
 *
 * It shows the three parts an embedder wires: a device with a port whose
 * ops hold the host side (here: a small ring of bytes), an event loop (the
 * library's epoll one), and a transport (the library's vhost-user backend).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vserial/loop.h>
#include <vserial/vhost_user.h>
#include <vserial/vserial.h>

struct echo {
        char buf[65536];        /* bytes the guest wrote, not yet echoed */
        size_t len;
        bool vmm_gone;
};

/* Give the guest as much of the backlog as it can take now. */
static size_t echo_flush(struct vs_port *port, struct echo *e)
{
        ssize_t n = vs_port_write(port, e->buf, e->len);

        if (n <= 0)
                return 0;       /* echo_guest_ready() comes when it can */
        memmove(e->buf, e->buf + n, e->len - n);
        e->len -= n;
        return n;
}

/* Copy from @iov, skipping @skip bytes, into the backlog's free room. */
static size_t echo_take(struct echo *e, const struct iovec *iov,
                        unsigned iovcnt, size_t skip)
{
        size_t took = 0;

        for (unsigned i = 0; i < iovcnt && e->len < sizeof(e->buf); i++) {
                size_t n = iov[i].iov_len;

                if (skip >= n) {
                        skip -= n;
                        continue;
                }
                n -= skip;
                if (n > sizeof(e->buf) - e->len)
                        n = sizeof(e->buf) - e->len;
                memcpy(e->buf + e->len, (char *)iov[i].iov_base + skip, n);
                skip = 0;
                e->len += n;
                took += n;
        }
        return took;
}

static ssize_t echo_have_data(struct vs_port *port, const struct iovec *iov,
                              unsigned iovcnt)
{
        struct echo *e = vs_port_opaque(port);
        size_t took = 0, n;

        /* Stop when the guest takes no more: returning less than offered
         * throttles the port, and nothing is lost. */
        do {
                n = echo_take(e, iov, iovcnt, took);
                took += n;
        } while (echo_flush(port, e) > 0 || n > 0);
        return took;
}
static void echo_guest_ready(struct vs_port *port)
{
        echo_flush(port, vs_port_opaque(port));
        vs_port_throttle(port, false);  /* take what the guest wrote meanwhile */
}

static const struct vs_port_ops echo_ops = {
        .have_data = echo_have_data,
        .guest_ready = echo_guest_ready,
};

static void on_closed(void *opaque, int err, const char *why)
{
        struct echo *e = opaque;

        fprintf(stderr, "echo: VMM connection ended: %s (%d)\n", why, err);
        e->vmm_gone = true;
}

static int listen_at(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
                return -1;
        strcpy(sa.sun_path, path);
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int serve(const char *path, int seconds)
{
        static struct echo e;
        struct vs_device_config dc = { .max_ports = 1 + 1 };
        struct vs_port_config pc = { .id = 1, .name = "org.vserial.echo" };
        struct vs_vu_config vc = { .loop_ops = &vs_epoll_ops, .closed = on_closed,
                                   .opaque = &e };
        struct vs_device *dev = NULL;
        struct vs_epoll *ep = NULL;
        struct vs_vu *vu = NULL;
        struct vs_port *port;
        time_t end = time(NULL) + seconds;
        int lfd, cfd, r;

        /* A VMM that truncates its memory file must not kill us (SIGBUS):
         * the connection fails instead. Process-wide, so the program asks. */
        if ((r = vs_sigbus_guard_install()) < 0 ||
            (r = vs_device_new(&dc, &dev)) < 0 || (r = vs_epoll_new(&ep)) < 0 ||
            (r = vs_port_add(dev, &pc, &echo_ops, &e, &port)) < 0)
                goto out;
        /* The host side is always there: the guest may read at once. */
        vs_port_set_host_connected(port, true);
        lfd = listen_at(path);
        if (lfd < 0) {
                r = -errno;
                goto out;
        }
        printf("echo: waiting for a VMM on %s\n", path);
        fflush(stdout);
        cfd = accept(lfd, NULL, NULL);
        close(lfd);
        vc.loop = ep;
        if (cfd < 0 || (r = vs_vu_new(dev, cfd, &vc, &vu)) < 0) {
                r = cfd < 0 ? -errno : r;
                goto out;
        }
        while (!e.vmm_gone && (seconds <= 0 || time(NULL) < end))
                vs_epoll_run_once(ep, 100);
        r = 0;
out:
        vs_vu_free(vu);
        vs_device_free(dev);
        vs_epoll_free(ep);
        unlink(path);
        return r;
}

int main(int argc, char **argv)
{
        int r;

        if (argc < 2 || argc > 3) {
                fprintf(stderr, "usage: echo SOCKET [SECONDS]\n");
                return 2;
        }
        r = serve(argv[1], argc == 3 ? atoi(argv[2]) : 0);
        if (r < 0)
                fprintf(stderr, "echo: %s\n", strerror(-r));
        return r < 0 ? 1 : 0;
}
