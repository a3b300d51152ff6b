#!/bin/bash
# A port with several host clients: the guest waits for the writer's "go",
# reads DOWN bytes (the writer's only: the readers' input is dropped), then
# writes $OUT/up.src (every client must get all of it) and waits for the
# writer's "ACK <sha256>" of what it got.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
stage_up_src
want=$(sha "$OUT/gtmp/up")
read_line 3 go 60 || fail "no go line"
[ "$go" = go ] || fail "the first line was '$go', not 'go'"
read_n 3 "$DOWN" "$OUT/gtmp/down" 60 || fail "read $DOWN bytes"
echo "$(stat -c %s "$OUT/gtmp/down") $(sha "$OUT/gtmp/down")" > "$OUT/down.sha256"
dd if="$OUT/gtmp/up" bs=32k >&3 2>"$OUT/dd.err" || fail "dd: $(cat "$OUT/dd.err")"
: > "$OUT/g.wrote"
read_line 3 ack 60 || fail "no ACK"
[ "$ack" = "ACK $want" ] || fail "the writer said '$ack', want 'ACK $want'"
exec 3<&-
: > "$OUT/g.done"
exit 0
