#!/bin/bash
# A second console port appears as /dev/hvc1. In raw mode, no echo (one
# open file for stty and the data: the tty forgets its settings and input
# at its last close), the guest writes $OUT/up.src to hvc1 and then reads
# DOWN bytes the host sends once $OUT/g.ready exists (sha256 EXPECT). A
# marker line goes to hvc0, which must reach port 0 only.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
wait_hvc
i=0
until [ -e /dev/hvc1 ]; do
    i=$((i + 1)); [ $i -le 200 ] || fail "/dev/hvc1 did not appear"
    sleep 0.05
done
ls /sys/class/virtio-ports > "$OUT/ports"
log "ports: $(echo $(cat "$OUT/ports")); $(ls /dev/hvc* | tr '\n' ' ')"
mount_tmp 8m
exec 3<>/dev/hvc1 || fail "open /dev/hvc1"
stty raw -echo -iexten <&3 || fail "stty raw on hvc1"
: > "$OUT/g.ready"
cat "$OUT/up.src" >&3 || fail "write to hvc1"
log "wrote $(stat -c %s "$OUT/up.src") bytes to hvc1"
read_n 3 "$DOWN" "$OUT/gtmp/down" 30 || fail "read $DOWN bytes from hvc1: got $(stat -c %s "$OUT/gtmp/down")"
got=$(sha "$OUT/gtmp/down")
echo "$(stat -c %s "$OUT/gtmp/down") $got" > "$OUT/down.sha256"
[ "$got" = "$EXPECT" ] || { cp "$OUT/gtmp/down" "$OUT/down.bin"; fail "hvc1 input sha256 $got, want $EXPECT"; }
echo "$MARKER0" > /dev/hvc0 || fail "write hvc0"
# Let the last output leave before the tty closes.
sleep 0.2
exec 3<&-
log "hvc1 both ways byte-exact"
exit 0
