#!/bin/bash
# Traffic, rmmod virtio_console, insmod again, traffic again. Each round the
# guest sends $OUT/src.N (host-made) and the host answers "ACK-N <sha256>".
. "${0%/*}/lib.sh"
round() {
    local k=$1 want ack got
    wait_port vport0p1
    want=$(sha "$OUT/src.$k")
    exec 3<>/dev/vport0p1 || fail "open in round $k"
    dd if="$OUT/src.$k" bs=32k >&3 2>/dev/null || fail "dd in round $k"
    read -t 30 -r ack got <&3 || fail "no ACK in round $k"
    exec 3<&-
    log "round $k: host said $ack $got"
    if [ "$ack" != "ACK-$k" ] || [ "$got" != "$want" ]; then
        fail "round $k: bad ACK: $ack $got (want ACK-$k $want)"
    fi
}
load_vc
round 1
rmmod virtio_console || fail "rmmod virtio_console"
[ -e /dev/vport0p1 ] && fail "/dev/vport0p1 still there after rmmod"
log "rmmod done"
load_vc
round 2
exit 0
