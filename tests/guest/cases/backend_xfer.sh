#!/bin/bash
# One port, both directions at once. The guest writes $OUT/up.src (host-made)
# into /dev/$DEV while it reads DOWN bytes from the same open file (they must
# hash to EXPECT). Then, with ACK=1, it reads the host's "ACK <sha256>" line
# (the hash of what the host received); with QUIET=1 nothing at all may come
# back within a second (backend=null). $OUT/xfer.times: "up T0 T1" and
# "down T0 T1" (guest clock = host clock under UML).
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
wait_port "$DEV"
[ -n "${NAME:-}" ] && wait_name "$DEV"
mount_tmp 24m
cp "$OUT/up.src" "$OUT/gtmp/up" || fail "cp up.src"
want=$(sha "$OUT/gtmp/up")
up_n=$(stat -c %s "$OUT/gtmp/up")
exec 3<>"/dev/$DEV" || fail "open /dev/$DEV"
t0=$EPOCHREALTIME
( dd if="$OUT/gtmp/up" bs=32k >&3 2>"$OUT/dd.err"; rc=$?; echo "$rc $EPOCHREALTIME" > "$OUT/up.done" ) &
up=$!
d0=$EPOCHREALTIME
read_n 3 "$DOWN" "$OUT/gtmp/down" 60 || fail "read $DOWN bytes from $DEV: got $(stat -c %s "$OUT/gtmp/down")"
d1=$EPOCHREALTIME
wait $up
read -r rc t1 < "$OUT/up.done"
[ "$rc" = 0 ] || fail "dd of $up_n bytes into $DEV: rc $rc: $(cat "$OUT/dd.err")"
echo "up $t0 $t1" > "$OUT/xfer.times"
echo "down $d0 $d1" >> "$OUT/xfer.times"
got=$(sha "$OUT/gtmp/down")
echo "$(stat -c %s "$OUT/gtmp/down") $got" > "$OUT/down.sha256"
log "wrote $up_n bytes, read $DOWN bytes (sha256 $got)"
if [ "$DOWN" -gt 0 ] && [ "$got" != "$EXPECT" ]; then
    cp "$OUT/gtmp/down" "$OUT/down.bin"
    fail "host->guest sha256 $got, want $EXPECT"
fi
if [ "${ACK:-0}" = 1 ]; then
    read_line 3 line 30 || fail "no ACK line from the host"
    log "host said: $line"
    [ "$line" = "ACK $want" ] || fail "host said '$line', want 'ACK $want'"
fi
if [ "${QUIET:-0}" = 1 ]; then
    timeout 1 head -c 1 <&3 > "$OUT/quiet"
    n=$(stat -c %s "$OUT/quiet")
    log "read $n bytes back within 1 s (want 0)"
    [ "$n" = 0 ] || fail "read $n bytes from $DEV, want none"
fi
exec 3<&-
: > "$OUT/g.done"
exit 0
