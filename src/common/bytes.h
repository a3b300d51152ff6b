/* SPDX-License-Identifier: MIT */
/* Byte counts as people write them, shared by vserial and vserialctl. */
#pragma once

#include <stdint.h>

/*
 * "4096", "64K", "1M", "2g": decimal digits and an optional binary suffix
 * K, M or G (either case), nothing else. 0 and the count in *@ret, or
 * -EINVAL if @s is not one or it is above @max.
 */
int parse_bytes(const char *s, uint64_t max, uint64_t *ret);
