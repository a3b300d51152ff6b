#!/bin/bash
# Host -> guest bulk transfer: the host client writes SIZE bytes into the
# port's unix socket (before the guest opens the port, so the daemon must
# hold them); the guest reads exactly SIZE bytes from /dev/vport0p1.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
mount_tmp
t0=$(now)
head_c "$SIZE" < /dev/vport0p1 > "$OUT/gtmp/dst" || fail "head failed"
t1=$(now)
echo "$t0 $t1" > "$OUT/guest.times"
n=$(stat -c %s "$OUT/gtmp/dst")
got=$(sha "$OUT/gtmp/dst")
echo "$n $got" > "$OUT/dst.sha256"
log "read $n bytes, sha256 $got"
if [ "$got" != "$EXPECT" ]; then
    cp "$OUT/gtmp/dst" "$OUT/dst"
    fail "sha256 mismatch: want $EXPECT got $got ($n bytes)"
fi
exit 0
