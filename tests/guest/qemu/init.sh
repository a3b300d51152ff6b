#!/bin/sh
# PID 1 of the QEMU guest (busybox sh; tests/guest/qemu/build_guest.py puts
# it in the initramfs). It makes the guest look like the UML one to the case
# scripts (tests/guest/init.sh): the case's output directory, shared by the
# host's virtiofsd (tag "out"), is mounted at the host's path, VSOUT from
# the kernel command line; $VSOUT/.guest.env (written by the host) sets
# UMLTEST, UMLRESULT, OUT and the case's variables. Then the case script
# runs, its exit status goes to $UMLRESULT, and the guest powers off.
#
# Every start of the kernel in one QEMU (system_reset, reboot) is counted:
# GBOOT is 1, 2, ... ($VSOUT/.gboot). Cases that reset the guest use it.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
while read -r m; do
    case $m in */virtio_console.ko) continue ;; esac
    insmod "/$m" || echo "guest: FAIL: insmod $m"
done < /etc/guest-modules
export VC_KO="/$(grep virtio_console.ko /etc/guest-modules)"
# scripts/bench --qemu: no shared directory; the benchmark's guest half
# talks to the host over the port it measures.
if [ -n "${VSBENCH:-}" ]; then
    insmod "$VC_KO" || echo "guest: FAIL: insmod $VC_KO"
    vsbench-guest "$VSBENCH"
    echo "guest: vsbench-guest exited $?"
    poweroff -f
fi
if ! { mkdir -p "$VSOUT" && mount -t virtiofs out "$VSOUT"; }; then
    echo "guest: FAIL: cannot mount the host's $VSOUT (virtiofs tag out)"
    poweroff -f
fi
n=$(cat "$VSOUT/.gboot" 2>/dev/null)
export GBOOT=$((${n:-0} + 1))
echo "$GBOOT" > "$VSOUT/.gboot"
. "$VSOUT/.guest.env"
echo "guest: boot $GBOOT: running $UMLTEST"
"$UMLTEST"
rc=$?
echo "guest: $UMLTEST exited $rc"
dmesg > "$UMLRESULT.dmesg" 2>&1
echo "$rc" > "$UMLRESULT"
sync
poweroff -f
