#!/bin/bash
# Run once per boot (BOOT=1, then BOOT=2) against the same vserial process.
# Each boot: the ports and their names are there (written to
# $OUT/names.$BOOT), the guest sends $OUT/up.$BOOT on vport0p1 and the host
# answers "ACK-$BOOT <sha256>" there, then ($OUT/g.ready.$BOOT) the host sends
# SIZE bytes on vport0p2 (sha256 EXPECT$BOOT), and a line goes to hvc0.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
wait_hvc
boot_ports "$OUT/names.$BOOT" vport0p1 vport0p2
log "boot $BOOT ports: $(echo $(cat "$OUT/names.$BOOT"))"
want=$(sha "$OUT/up.$BOOT")
exec 3<>/dev/vport0p1 || fail "open vport0p1"
dd if="$OUT/up.$BOOT" bs=32k >&3 2>"$OUT/dd.$BOOT.err" || fail "dd: $(cat "$OUT/dd.$BOOT.err")"
read_line 3 line 30 || fail "boot $BOOT: no ACK on vport0p1"
[ "$line" = "ACK-$BOOT $want" ] || fail "boot $BOOT: host said '$line', want 'ACK-$BOOT $want'"
exec 3<&-
exec 4</dev/vport0p2 || fail "open vport0p2"
: > "$OUT/g.ready.$BOOT"
mount_tmp 8m
read_n 4 "$SIZE" "$OUT/gtmp/down" 30 || fail "boot $BOOT: read $SIZE bytes from vport0p2: got $(stat -c %s "$OUT/gtmp/down")"
exec 4<&-
boot_done "$BOOT" vport0p2
exit 0
