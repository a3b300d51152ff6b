/* SPDX-License-Identifier: MIT */
/*
 * backend=file: guest output appended to path, and optionally input= sent to
 * the guest once. backend=null: output discarded, no input. Neither path is
 * followed if it is a symbolic link (O_NOFOLLOW): the daemon may run as
 * root, and a link planted where the output goes would have it create or
 * append to any file, or send any file to the guest as input.
 * A failed write (a full disk) keeps the bytes in the port's buffer and is
 * retried every second; when the buffer is full the guest's writes wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

#define RETRY_MS 1000

/* hp->be */
struct file_state {
        bool created;           /* start() created the output file */
};

static struct file_state *fs(const struct hport *hp)
{
        return hp->be;
}

static void file_output_error(struct hport *hp, int err)
{
        log_warn("%s: writing %s: %s; keeping %zu bytes and retrying", hp->label,
                 hp->spec.path, strerror(-err), hport_buffered(hp));
        if (hp->timer_fd < 0 && hport_timer_new(hp, hport_flush) < 0)
                return;
        hport_timer_arm(hp, RETRY_MS, false);
}

static int open_or_log(struct hport *hp, const char *path, int flags)
{
        int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0644);
        int err = errno;

        if (fd < 0)
                log_error("%s: cannot open %s: %s", hp->label, path,
                          err == ELOOP ? "it is a symbolic link (not followed)" : strerror(err));
        return fd < 0 ? -err : fd;
}

/* Append to the output file; remember whether we created it, so that a
 * refused add can remove it again. */
static int open_output(struct hport *hp)
{
        int fd;

        if (hp->spec.backend == BACKEND_NULL)
                return open_or_log(hp, "/dev/null", O_WRONLY);
        fd = open(hp->spec.path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  0644);
        if (fd >= 0) {
                fs(hp)->created = true;
                return fd;
        }
        if (errno != EEXIST)
                return log_errno(-errno, "%s: cannot open %s", hp->label, hp->spec.path);
        return open_or_log(hp, hp->spec.path, O_WRONLY | O_APPEND);
}

/* The output file, and input= if given; on failure neither is open. */
static int open_files(struct hport *hp, int *ret_in, int *ret_out)
{
        int out = open_output(hp), in = -1;

        if (out < 0)
                return out;
        if (hp->spec.input[0] && (in = open_or_log(hp, hp->spec.input, O_RDONLY)) < 0) {
                close(out);
                if (fs(hp)->created)
                        unlink(hp->spec.path);
                return in;
        }
        *ret_in = in;
        *ret_out = out;
        return 0;
}

static int file_start(struct hport *hp)
{
        int in, out, r;

        hp->be = calloc(1, sizeof(struct file_state));
        if (!hp->be)
                return -ENOMEM;
        r = open_files(hp, &in, &out);
        if (r < 0) {
                free(hp->be);
                hp->be = NULL;
                return r;
        }
        /* Before the port exists: waits for hport_new, cannot fail. */
        hport_attach(hp, in, out);
        return 0;
}

/*
 * SIGHUP: output goes on in a new file at path (logrotate renamed the old
 * one). The old file is closed only once the new one is open: if opening
 * fails, output keeps going to the old file. Only a regular file is
 * reopened: a FIFO or a device at path has no rotation to follow.
 */
static int file_reopen(struct hport *hp)
{
        int fd, old = hp->out_fd;

        if (hp->spec.backend != BACKEND_FILE || old < 0 || !hp->out_unpollable)
                return 0;
        fd = open_or_log(hp, hp->spec.path, O_WRONLY | O_APPEND | O_CREAT);
        if (fd < 0)
                return fd;
        hp->out_fd = fd;
        close(old);
        log_info("%s: reopened %s", hp->label, hp->spec.path);
        hport_flush(hp);
        return 0;
}

static void file_input_end(struct hport *hp)
{
        int fd = hp->in_fd;

        log_info("%s: all of %s sent", hp->label, hp->spec.input);
        hport_drop_input(hp);
        close(fd);
}

static void file_stop(struct hport *hp)
{
        hport_close_peer(hp);
        if (hp->rolling_back && fs(hp)->created)
                unlink(hp->spec.path);
        free(hp->be);
        hp->be = NULL;
}

const struct backend_ops backend_file_ops = {
        .name = "file",
        .start = file_start,
        .stop = file_stop,
        .peer_gone = file_input_end,
        .input_end = file_input_end,
        .output_error = file_output_error,
        .reopen = file_reopen,
};
