#!/bin/bash
# Host clients come and go while the guest writes: the guest writes
# $OUT/up.src (host-made) into /dev/vport0p1 the whole time and reads DOWN
# bytes (what the host's clients sent, one after another) into
# $OUT/down.bin. While no client is there reads return end of file and the
# writer waits; read_n retries.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
stage_up_src
( dd if="$OUT/gtmp/up" bs=32k >&3 2>"$OUT/dd.err"; echo $? > "$OUT/up.rc" ) &
up=$!
read_n 3 "$DOWN" "$OUT/gtmp/down" 120 || fail "read $DOWN bytes: got $(stat -c %s "$OUT/gtmp/down")"
cp "$OUT/gtmp/down" "$OUT/down.bin" || fail "cp down"
: > "$OUT/g.read"
wait $up
[ "$(cat "$OUT/up.rc")" = 0 ] || fail "dd: $(cat "$OUT/dd.err")"
exec 3<&-
: > "$OUT/g.done"
exit 0
