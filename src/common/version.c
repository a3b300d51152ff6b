/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "version.h"
#include "version_git.h"        /* generated at build time: VSERIAL_GIT */

const char *vserial_version(void)
{
        static char text[160];

        /* At the release tag the describe adds nothing; without git it is "". */
        if (!VSERIAL_GIT[0] || strcmp(VSERIAL_GIT, "v" VSERIAL_VERSION) == 0)
                return VSERIAL_VERSION;
        snprintf(text, sizeof(text), "%s (git %s)", VSERIAL_VERSION, VSERIAL_GIT);
        return text;
}
