/* SPDX-License-Identifier: MIT */
/*
 * backend=pty: a pseudo-terminal whose slave (/dev/pts/N, logged and listed)
 * a terminal program opens. We keep a slave fd of our own so that the master
 * never reports a hang-up while nobody has it open: guest output then waits
 * in the pty and in the port's buffer, and nothing is lost. A console port
 * follows the size the terminal program sets on the slave (polled: Linux
 * tells a pty master nothing when it changes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "backend.h"

#define WINSIZE_POLL_MS 500

/* hp->be */
struct pty_state {
        int hold_fd;            /* our own slave fd */
        char path[64];          /* the slave's, /dev/pts/N */
};

static struct pty_state *ps(const struct hport *hp)
{
        return hp->be;
}

static int open_pty(struct pty_state *s, int *ret_master)
{
        struct termios tio;
        int master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

        if (master < 0)
                return -errno;
        if (grantpt(master) < 0 || unlockpt(master) < 0 ||
            ptsname_r(master, s->path, sizeof(s->path)) != 0)
                goto fail;
        s->hold_fd = open(s->path, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s->hold_fd < 0)
                goto fail;
        /* Bytes pass unchanged: no echo, no line editing, no CR/LF games. */
        if (tcgetattr(s->hold_fd, &tio) == 0) {
                cfmakeraw(&tio);
                tcsetattr(s->hold_fd, TCSANOW, &tio);
        }
        *ret_master = master;
        return 0;
fail:
        close(master);
        return errno ? -errno : -EIO;
}

static void pty_winch(struct hport *hp)
{
        struct winsize ws;

        if (!hp->spec.console || hp->in_fd < 0 || ioctl(hp->in_fd, TIOCGWINSZ, &ws) < 0)
                return;
        if (!ws.ws_col || !ws.ws_row || (ws.ws_col == hp->cols && ws.ws_row == hp->rows))
                return;
        log_info("%s: terminal size %ux%u", hp->label, ws.ws_col, ws.ws_row);
        hport_set_size(hp, ws.ws_col, ws.ws_row);
}

static int pty_start(struct hport *hp)
{
        struct pty_state *s = calloc(1, sizeof(*s));
        int master = -1, r = s ? open_pty(s, &master) : -ENOMEM;

        if (r < 0) {
                free(s);
                return log_errno(r, "%s: cannot allocate a pty", hp->label);
        }
        hp->be = s;
        if (hp->spec.console && hport_timer_new(hp, pty_winch) == 0)
                hport_timer_arm(hp, WINSIZE_POLL_MS, true);
        log_info("%s: pty %s", hp->label, s->path);
        /* Before the port exists: waits for hport_new, cannot fail. */
        hport_attach(hp, master, master);
        return 0;
}

static void pty_stop(struct hport *hp)
{
        hport_close_peer(hp);       /* the master */
        close(ps(hp)->hold_fd);
        free(hp->be);
        hp->be = NULL;
}

/* With our own slave fd open the master never ends; an error is logged and
 * input stops rather than losing the port. */
static void pty_peer_gone(struct hport *hp)
{
        log_warn("%s: pty input failed; input from %s stops", hp->label, ps(hp)->path);
        hport_drop_input(hp);
}

static const char *pty_path(const struct hport *hp)
{
        return ps(hp)->path;
}

const struct backend_ops backend_pty_ops = {
        .name = "pty",
        .start = pty_start,
        .stop = pty_stop,
        .peer_gone = pty_peer_gone,
        .input_end = pty_peer_gone,
        .winch = pty_winch,
        .path = pty_path,
};
