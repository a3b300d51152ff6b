#!/bin/bash
# QEMU only, once per QEMU (BOOT=1, then 2) against the same vserial. The
# host clients of ports 1 and 2 stay connected across both QEMUs. Port 2:
# "ping-$BOOT" is answered "pong-$BOOT". Port 1's client reads nothing
# while the first QEMU runs: what the guest writes there ($OUT/up.1) waits
# in the daemon. After boot 1 ($OUT/g.written.1) the host quits QEMU (QMP
# quit) and starts a new one. In boot 2 the guest writes $OUT/up.2 to port
# 1, whose client now gets up.1 then up.2 and answers "ACK <sha256 of
# both>". (Linux blocks writes to a port with no host client at all.)
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
wait_hvc
boot_ports "$OUT/names.$BOOT" vport0p1 vport0p2
exec 4<>/dev/vport0p2 || fail "open vport0p2"
echo "ping-$BOOT" >&4
read_line 4 line 60 || fail "boot $BOOT: no pong on vport0p2"
[ "$line" = "pong-$BOOT" ] || fail "boot $BOOT: vport0p2 said '$line', want 'pong-$BOOT'"
log "QEMU $BOOT: ping answered on vport0p2"
echo "console line from QEMU $BOOT" > /dev/hvc0 || fail "write hvc0"
exec 3<>/dev/vport0p1 || fail "open vport0p1"
dd if="$OUT/up.$BOOT" bs=32k >&3 2>"$OUT/dd.$BOOT.err" || fail "dd: $(cat "$OUT/dd.$BOOT.err")"
log "QEMU $BOOT: wrote $(stat -c %s "$OUT/up.$BOOT") bytes to vport0p1"
if [ "$BOOT" = 1 ]; then
    : > "$OUT/g.written.1"
    sleep 120
    fail "QEMU was not quit within 120 s"
fi
cat "$OUT/up.1" "$OUT/up.2" > /tmp/both
want=$(sha /tmp/both)
read_line 3 line 60 || fail "no ACK on vport0p1"
[ "$line" = "ACK $want" ] || fail "vport0p1: host said '$line', want 'ACK $want'"
exec 3<&- 4<&-
log "QEMU 2: output of both QEMUs delivered byte-exact"
exit 0
