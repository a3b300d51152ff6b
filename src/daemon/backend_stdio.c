/* SPDX-License-Identifier: MIT */
/*
 * backend=stdio: guest output to the daemon's stdout, its stdin to the guest.
 * A console follows the size of the terminal on stdin/stdout (SIGWINCH).
 * Each side ends on its own: stdin at its end (the console keeps printing),
 * stdout when its reader left (EPIPE, or any other write error: nothing
 * will read it again, so guest output is dropped from then on, counted,
 * and stdin keeps working).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backend.h"

static int saved_fl[2] = { -1, -1 };

static void set_nonblock(int fd)
{
        saved_fl[fd] = fcntl(fd, F_GETFL);
        if (saved_fl[fd] >= 0)
                fcntl(fd, F_SETFL, saved_fl[fd] | O_NONBLOCK);
}

static void stdio_winch(struct hport *hp)
{
        struct winsize ws;

        if (!hp->spec.console)
                return;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 &&
            ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
                return;         /* not a terminal */
        if (!ws.ws_col || !ws.ws_row)
                return;
        hport_set_size(hp, ws.ws_col, ws.ws_row);
}

static int stdio_start(struct hport *hp)
{
        bool in_ok = fcntl(STDIN_FILENO, F_GETFL) >= 0;

        if (in_ok)
                set_nonblock(STDIN_FILENO);
        set_nonblock(STDOUT_FILENO);
        stdio_winch(hp);
        /* Before the port exists: waits for hport_new, cannot fail. */
        hport_attach(hp, in_ok ? STDIN_FILENO : -1, STDOUT_FILENO);
        return 0;
}

static void stdio_input_end(struct hport *hp)
{
        /* End of stdin ends input only; the console keeps printing. */
        hport_drop_input(hp);
}

static void stdio_output_error(struct hport *hp, int err)
{
        log_warn("%s: writing to stdout: %s; guest output is dropped from now on", hp->label,
                 strerror(-err));
        hport_drop_output(hp);
}

static void stdio_stop(struct hport *hp)
{
        hport_detach(hp);
        for (int fd = 0; fd < 2; fd++)
                if (saved_fl[fd] >= 0)
                        fcntl(fd, F_SETFL, saved_fl[fd]);
}

const struct backend_ops backend_stdio_ops = {
        .name = "stdio",
        .start = stdio_start,
        .stop = stdio_stop,
        .peer_gone = stdio_input_end,
        .input_end = stdio_input_end,
        .output_error = stdio_output_error,
        .winch = stdio_winch,
};
