#!/bin/bash
# backend=tcp-connect, two rounds on vport0p1: round r starts once the host
# says so ($OUT/h.round.r: its listener is up, or about to be), writes
# $OUT/up.r while it reads DOWN bytes (sha256 EXPECTr), then reads the
# host's "ACK-r <sha256 of what it got>" and says $OUT/g.round.r.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
. "${0%/*}/lib_host.sh"
load_vc
wait_port vport0p1
mount_tmp 8m
exec 3<>/dev/vport0p1 || fail "open vport0p1"
for r in 1 2; do
    wait_host "h.round.$r"
    both_ways 3 "$r" "ACK-$r" "round $r"
    : > "$OUT/g.round.$r"
done
exec 3<&-
exit 0
