/* SPDX-License-Identifier: MIT */
/*
 * Forced into every library source first (-include, src/lib/meson.build).
 * The library is compiled with -fvisibility=hidden; the declarations of
 * the public headers are made here with default visibility, and the
 * definitions inherit it. So a function is exported exactly when a header
 * of include/vserial/ declares it: the ABI is the public headers, with no
 * marker to forget and no list to keep (docs/abi.md). A new public header
 * is added here; scripts/check-abi fails on one that is not.
 */
#pragma once

#pragma GCC visibility push(default)
#include "vserial/loop.h"
#include "vserial/vhost_user.h"
#include "vserial/vserial.h"
#pragma GCC visibility pop
