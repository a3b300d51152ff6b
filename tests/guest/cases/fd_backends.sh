#!/bin/bash
# backend=fd: for vport0p1 and vport0p2 in turn, write $OUT/up.N while
# reading DOWN bytes (sha256 EXPECTN), then read "ACK <sha256 of what the
# host got>". $OUT/g.done at the end.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
mount_tmp 8m
for n in 1 2; do
    wait_port "vport0p$n"
    exec 3<>"/dev/vport0p$n" || fail "open vport0p$n"
    both_ways 3 "$n" ACK "vport0p$n"
    exec 3<&-
done
: > "$OUT/g.done"
exit 0
