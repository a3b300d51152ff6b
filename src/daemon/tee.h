/* SPDX-License-Identifier: MIT */
/*
 * The log tee (logfile=PATH[,logfile-timestamps=on]): every byte of a
 * port's guest output also appended to a file, whatever the backend does.
 *
 * The tee never holds the guest back: what the file does not take (a full
 * disk, an I/O error) is dropped and counted, and the log says so when it
 * starts, every TEE_REPORT_S seconds while it lasts (with the count), and
 * when writing works again. With timestamps every line starts with the UTC
 * time its first byte was consumed, "2025-01-31T12:34:56.123456Z ".
 *
 * The file is opened like a file backend's: appended to, created 0640,
 * never through a symbolic link. tee_reopen() opens the path again
 * (logrotate moved the file away); if that fails the old file is kept.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define TEE_REPORT_S 10

struct tee;

/* Opens @path; errors are logged with @label (kept by pointer). -errno. */
int tee_open(const char *path, bool timestamps, const char *label, struct tee **ret);
/* Accepts NULL. */
void tee_close(struct tee *t);
/* Remove the file if tee_open() created it (before tee_close). */
void tee_unlink_created(struct tee *t);

/* Append the first @n bytes of @iov. */
void tee_write(struct tee *t, const struct iovec *iov, unsigned cnt, size_t n);

int tee_reopen(struct tee *t);

uint64_t tee_written(const struct tee *t);
uint64_t tee_lost(const struct tee *t);

/* "2025-01-31T12:34:56.123456Z " for @ns since the epoch (29 chars + NUL). */
#define TEE_STAMP_LEN 28
void tee_format_stamp(uint64_t ns, char out[TEE_STAMP_LEN + 1]);
