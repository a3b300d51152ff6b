#!/bin/sh
# PID 1 of the User-Mode Linux guest (the host's / is the guest's root via
# hostfs). UMLTEST, UMLRESULT and the other KEY=value words of the kernel
# command line arrive as environment variables.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "guest: running $UMLTEST"
"$UMLTEST"
rc=$?
echo "guest: $UMLTEST exited $rc"
dmesg > "$UMLRESULT.dmesg" 2>&1
echo "$rc" > "$UMLRESULT"
sync
poweroff -f
