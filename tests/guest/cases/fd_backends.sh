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
    want=$(sha "$OUT/up.$n")
    exec 3<>"/dev/vport0p$n" || fail "open vport0p$n"
    cat "$OUT/up.$n" >&3 &
    w=$!
    read_n 3 "$DOWN" "$OUT/gtmp/down.$n" 60 || fail "vport0p$n: read $DOWN bytes"
    wait $w || fail "vport0p$n: write"
    eval "expect=\$EXPECT$n"
    [ "$(sha "$OUT/gtmp/down.$n")" = "$expect" ] || fail "vport0p$n: host->guest sha256 mismatch"
    read_line 3 line 60 || fail "vport0p$n: no ACK"
    [ "$line" = "ACK $want" ] || fail "vport0p$n: host said '$line', want 'ACK $want'"
    exec 3<&-
    log "vport0p$n: both ways byte-exact"
done
: > "$OUT/g.done"
exit 0
