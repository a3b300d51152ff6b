/* SPDX-License-Identifier: MIT */
/* Guest output besides the backend: see tap.h. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "backend.h"
#include "history.h"
#include "tap.h"
#include "tee.h"

struct tap {
        struct history *history;        /* history=, or NULL */
        struct tee *tee;                /* logfile=, or NULL */
        uint64_t throttled_since;       /* CLOCK_MONOTONIC ns, 0: not throttled */
        uint64_t throttled_ns;          /* ended periods */
};

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

int tap_new(struct hport *hp, struct tap **ret)
{
        struct tap *t = calloc(1, sizeof(*t));
        int r = 0;

        if (!t)
                return -ENOMEM;
        if (hp->spec.history)
                r = history_new(hp->spec.history, hp->loop_ops, hp->loop, hp->label,
                                &t->history);
        if (r == 0 && hp->spec.logfile[0])
                r = tee_open(hp->spec.logfile, hp->spec.logfile_timestamps, hp->label, &t->tee);
        if (r < 0) {
                tap_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

void tap_free(struct tap *t)
{
        if (!t)
                return;
        history_free(t->history);
        tee_close(t->tee);
        free(t);
}

/*
 * A throttled period starts with a short take (tap_output) and ends once
 * the device offers data again (it does so at once when the port is
 * unthrottled, with the rest of the held buffer), or, seen from the
 * stats, once the port is no longer throttled.
 */
static void throttle_account(const struct hport *hp, struct tap *t)
{
        if (t->throttled_since && !(hp->port && vs_port_throttled(hp->port))) {
                t->throttled_ns += now_ns() - t->throttled_since;
                t->throttled_since = 0;
        }
}

void tap_output(struct hport *hp, const struct iovec *iov, unsigned cnt, size_t done,
                size_t offered)
{
        struct tap *t = hp->tap;

        if (!t)
                return;
        if (t->history)
                history_put(t->history, iov, cnt, done);
        if (t->tee)
                tee_write(t->tee, iov, cnt, done);
        if (t->throttled_since) {
                /* Offered again: the last period is over. */
                t->throttled_ns += now_ns() - t->throttled_since;
                t->throttled_since = 0;
        }
        if (done < offered)
                t->throttled_since = now_ns();
}

void tap_discard(struct tap *t)
{
        if (t && t->tee)
                tee_unlink_created(t->tee);
        tap_free(t);
}

int tap_reopen(struct tap *t)
{
        return t && t->tee ? tee_reopen(t->tee) : 0;
}

struct history *tap_history(const struct tap *t)
{
        return t ? t->history : NULL;
}

void tap_get_stats(const struct hport *hp, struct tap_stats *ret)
{
        struct tap *t = hp->tap;

        *ret = (struct tap_stats){ 0 };
        if (!t)
                return;
        throttle_account(hp, t);
        ret->throttled_ns = t->throttled_ns +
                            (t->throttled_since ? now_ns() - t->throttled_since : 0);
        if (t->history) {
                ret->history_size = history_size(t->history);
                ret->history_bytes = history_len(t->history);
                ret->history_readers = history_readers(t->history);
        }
        if (t->tee) {
                ret->logfile_written = tee_written(t->tee);
                ret->logfile_lost = tee_lost(t->tee);
        }
}
