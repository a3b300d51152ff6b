#!/bin/bash
# QEMU only: the guest starts twice in one QEMU (GBOOT=1, then 2). Each
# time the port is offered again with its name ($OUT/names.$GBOOT) and
# carries data both ways: the guest sends $OUT/up.$GBOOT, the host answers
# "ACK-$GBOOT <sha256>" and then sends SIZE bytes (sha256 EXPECT$GBOOT); a
# line goes to hvc0. After boot 1 ($OUT/g.done.1) the host resets the
# machine (QMP system_reset, MODE=reset) or the guest reboots itself
# (reboot -f, MODE=reboot). Boot 2 exits: the guest powers off.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
wait_hvc
wait_port vport0p1
wait_name vport0p1
echo "vport0p1 $(cat /sys/class/virtio-ports/vport0p1/name)" > "$OUT/names.$GBOOT"
want=$(sha "$OUT/up.$GBOOT")
mount_tmp 8m
exec 3<>/dev/vport0p1 || fail "open vport0p1"
dd if="$OUT/up.$GBOOT" bs=32k >&3 2>"$OUT/dd.$GBOOT.err" || fail "dd: $(cat "$OUT/dd.$GBOOT.err")"
read_line 3 line 60 || fail "boot $GBOOT: no ACK on vport0p1"
[ "$line" = "ACK-$GBOOT $want" ] || fail "boot $GBOOT: host said '$line', want 'ACK-$GBOOT $want'"
read_n 3 "$SIZE" "$OUT/gtmp/down" 60 || fail "boot $GBOOT: read $SIZE bytes: got $(stat -c %s "$OUT/gtmp/down")"
exec 3<&-
boot_done "$GBOOT" vport0p1
if [ "$GBOOT" = 1 ]; then
    if [ "$MODE" = reboot ]; then
        log "rebooting"
        umount "$OUT/gtmp"
        sync
        reboot -f
    fi
    sleep 120
    fail "no system_reset within 120 s"
fi
exit 0
