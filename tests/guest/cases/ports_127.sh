#!/bin/bash
# QEMU only: max_nr_ports 127 (256 virtqueues, all that vhost-user can
# name): the console (/dev/hvc0) and 126 named ports, every one carrying
# SIZE bytes each way at the same time (tests/guest/qemu/vsg.c "ports":
# one poll() loop, CRC-32 per port and direction into $OUT/ports.crc).
# $OUT/names gets the sysfs names.
. "${0%/*}/lib.sh"
load_vc
wait_hvc
named_ports "$NPORTS" 60
log "$NPORTS named ports and hvc0 are there"
t0=$EPOCHREALTIME
vsg ports 0 "$NPORTS" "$SIZE" 240 > "$OUT/ports.crc" 2> "$OUT/vsg.err" || fail "vsg ports: $(cat "$OUT/vsg.err")"
t1=$EPOCHREALTIME
echo "$t0 $t1" > "$OUT/guest.times"
log "$((NPORTS + 1)) ports both ways done"
exit 0
