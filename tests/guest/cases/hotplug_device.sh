#!/bin/bash
# QEMU only: the whole device is plugged in and out while the guest runs.
# QEMU starts without it; the host adds it (QMP device_add into a
# pcie-root-port) once $OUT/g.up.1 exists. The port named NAME appears
# (its node is found by name: virtiofs came first, so it is not vport0);
# data both ways (the guest sends $OUT/up.src, the host answers "ACK-$k
# <sha256>", then sends SIZE bytes, sha256 EXPECT). Then $OUT/g.unplug.$k:
# the host removes the device (device_del), the port must leave. Twice.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
mount_tmp 8m
want=$(sha "$OUT/up.src")
find_port() {
    local d
    for d in /sys/class/virtio-ports/*; do
        [ "$(cat "$d/name" 2>/dev/null)" = "$NAME" ] && { echo "${d##*/}"; return 0; }
    done
    return 1
}
for k in 1 2; do
    : > "$OUT/g.up.$k"
    i=0
    until dev=$(find_port) && [ -e "/dev/$dev" ]; do
        i=$((i + 1)); [ $i -le 600 ] || fail "round $k: no port named $NAME 30 s after g.up.$k"
        sleep 0.05
    done
    echo "$dev" > "$OUT/dev.$k"
    log "round $k: $NAME is $dev"
    exec 3<>"/dev/$dev" || fail "open /dev/$dev"
    dd if="$OUT/up.src" bs=32k >&3 2>"$OUT/dd.err" || fail "dd: $(cat "$OUT/dd.err")"
    read_line 3 line 60 || fail "round $k: no ACK"
    [ "$line" = "ACK-$k $want" ] || fail "round $k: host said '$line', want 'ACK-$k $want'"
    read_n 3 "$SIZE" "$OUT/gtmp/down" 60 || fail "round $k: read $SIZE bytes: got $(stat -c %s "$OUT/gtmp/down")"
    exec 3<&-
    [ "$(sha "$OUT/gtmp/down")" = "$EXPECT" ] || fail "round $k: host->guest sha256 mismatch"
    log "round $k: both directions byte-exact"
    : > "$OUT/g.unplug.$k"
    i=0
    while [ -e "/sys/class/virtio-ports/$dev" ] || [ -e "/dev/$dev" ]; do
        i=$((i + 1)); [ $i -le 600 ] || fail "round $k: $dev still there 30 s after g.unplug.$k"
        sleep 0.05
    done
    log "round $k: $dev gone"
done
exit 0
