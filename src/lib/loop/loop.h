/* SPDX-License-Identifier: MIT */
/* The loop interface is public: see <vserial/loop.h>. */
#pragma once
#include "vserial/loop.h"
