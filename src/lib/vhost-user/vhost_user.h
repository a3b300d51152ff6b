/* SPDX-License-Identifier: MIT */
/* The vhost-user backend is public: see <vserial/vhost_user.h>. */
#pragma once
#include "vserial/vhost_user.h"
