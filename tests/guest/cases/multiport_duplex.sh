#!/bin/bash
# Two ports at once, opposite directions, with console output in between:
# /dev/vport0p1 sends $OUT/src1 to the host (which answers "ACK <sha256>"),
# /dev/vport0p2 receives SIZE bytes from the host (sha256 EXPECT2).
. "${0%/*}/lib.sh"
load_vc
wait_hvc
wait_port vport0p1
wait_port vport0p2
mount_tmp
cp "$OUT/src1" "$OUT/gtmp/src1" || fail "cp src1"
want1=$(sha "$OUT/gtmp/src1")
(
    exec 3<>/dev/vport0p1
    dd if="$OUT/gtmp/src1" bs=32k >&3 2>/dev/null || exit 1
    read -t 60 -r ack got <&3 || exit 2
    echo "$ack $got" > "$OUT/ack1"
) &
up=$!
head -c "$SIZE" < /dev/vport0p2 > "$OUT/gtmp/dst2" &
down=$!
for i in $(seq 1 50); do echo "console line $i while both ports stream" > /dev/hvc0; done
wait $up; rc1=$?
wait $down; rc2=$?
[ $rc1 -eq 0 ] || fail "port 1 upload: rc $rc1"
[ $rc2 -eq 0 ] || fail "port 2 download: rc $rc2"
read -r ack got < "$OUT/ack1"
[ "$ack $got" = "ACK $want1" ] || fail "port 1: host said '$ack $got', want ACK $want1"
got2=$(sha "$OUT/gtmp/dst2")
echo "$(stat -c %s "$OUT/gtmp/dst2") $got2" > "$OUT/dst2.sha256"
[ "$got2" = "$EXPECT2" ] || fail "port 2: sha256 $got2, want $EXPECT2"
log "both directions byte-exact"
exit 0
