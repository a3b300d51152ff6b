/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "bytes.h"

int parse_bytes(const char *s, uint64_t max, uint64_t *ret)
{
        unsigned long long v;
        unsigned shift = 0;
        char *end;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -EINVAL;
        if (*end == 'K' || *end == 'k')
                shift = 10, end++;
        else if (*end == 'M' || *end == 'm')
                shift = 20, end++;
        else if (*end == 'G' || *end == 'g')
                shift = 30, end++;
        /* Compared before the shift, which would wrap (2^34 + 1 G = 1 G). */
        if (*end || v > (max >> shift))
                return -EINVAL;
        *ret = (uint64_t)v << shift;
        return 0;
}
