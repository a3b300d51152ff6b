#!/bin/sh
# PID 1 of the User-Mode Linux guest of vsbench (bench/uml.c): load the
# real virtio_console driver, time dd through two ports, power off.
# From the kernel command line (KEY=value words become init's environment):
#   BENCHOUT    host directory (the host's / is the guest's root via hostfs)
#   G2H_BLOCKS  32 KiB blocks to write to /dev/vport0p1 (the host drains it)
# /dev/vport0p2 is read with 64 KiB reads until EOF (the host writes, then
# closes). dd's reports land in $BENCHOUT/{g2h,h2g}.dd, the verdict in
# $BENCHOUT/result.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
rc=1
if insmod "/usr/lib/uml/modules/$(uname -r)/kernel/drivers/char/virtio_console.ko"; then
    i=0
    until [ -e /sys/class/virtio-ports/vport0p1/name ] && [ -e /dev/vport0p1 ] &&
          [ -e /sys/class/virtio-ports/vport0p2/name ] && [ -e /dev/vport0p2 ]; do
        i=$((i + 1))
        [ $i -le 200 ] || break
        sleep 0.05
    done
    dd if=/dev/zero of=/dev/vport0p1 bs=32k count="$G2H_BLOCKS" 2>"$BENCHOUT/g2h.dd" &&
        dd if=/dev/vport0p2 of=/dev/null bs=64k 2>"$BENCHOUT/h2g.dd" && rc=0
fi
dmesg > "$BENCHOUT/dmesg" 2>&1
echo "$rc" > "$BENCHOUT/result"
sync
poweroff -f
