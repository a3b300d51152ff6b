#!/bin/bash
# Once per boot (BOOT=1, then 2) against one daemon. Boot 1 writes
# $OUT/h.part.1..3 to vport0p1, part k once the host's client k is
# connected ($OUT/h.conn.k), then waits until it read it and left
# ($OUT/h.left.k). Boot 2 does the same with $OUT/h.part.4 and client 4.
# (A port's writer waits while no host client is connected: the host side
# is closed.) $OUT/g.done.$BOOT: all of the boot's output was read.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_host.sh"
load_vc
wait_port vport0p1
exec 3>/dev/vport0p1 || fail "open vport0p1"
parts="1 2 3"
[ "$BOOT" = 2 ] && parts=4
for k in $parts; do
    wait_host "h.conn.$k"
    cat "$OUT/h.part.$k" >&3 || fail "write part $k"
    wait_host "h.left.$k"
done
exec 3>&-
log "boot $BOOT: written and read"
: > "$OUT/g.done.$BOOT"
exit 0
