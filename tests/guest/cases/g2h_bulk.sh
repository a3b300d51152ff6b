#!/bin/bash
# Guest -> host bulk transfer through /dev/vport0p1. The source was made by
# the host ($OUT/src); the host reads exactly SIZE bytes from the port's
# unix socket and answers "ACK <sha256>" on the same port.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
mount_tmp
cp "$OUT/src" "$OUT/gtmp/src" || fail "cp src"
want=$(sha "$OUT/gtmp/src")
exec 3<>/dev/vport0p1 || fail "open /dev/vport0p1"
t0=$(now)
dd if="$OUT/gtmp/src" bs=32k >&3 2>"$OUT/dd.err" || fail "dd: $(cat "$OUT/dd.err")"
t1=$(now)
cat "$OUT/dd.err"
echo "$t0 $t1" > "$OUT/guest.times"
read -t 60 -r ack got <&3 || fail "no ACK from the host"
exec 3<&-
log "host said: $ack $got"
[ "$ack" = ACK ] || fail "bad ACK line: $ack $got"
[ "$got" = "$want" ] || fail "sha256 mismatch: guest $want host $got"
exit 0
