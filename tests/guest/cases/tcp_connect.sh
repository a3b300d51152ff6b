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
    want=$(sha "$OUT/up.$r")
    cat "$OUT/up.$r" >&3 &
    w=$!
    read_n 3 "$DOWN" "$OUT/gtmp/down.$r" 60 || fail "round $r: read $DOWN bytes"
    wait $w || fail "round $r: write"
    eval "expect=\$EXPECT$r"
    [ "$(sha "$OUT/gtmp/down.$r")" = "$expect" ] || fail "round $r: host->guest sha256 mismatch"
    read_line 3 line 60 || fail "round $r: no ACK"
    [ "$line" = "ACK-$r $want" ] || fail "round $r: host said '$line', want 'ACK-$r $want'"
    log "round $r: both ways byte-exact"
    : > "$OUT/g.round.$r"
done
exec 3<&-
exit 0
