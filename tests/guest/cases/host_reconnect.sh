#!/bin/bash
# The host side of a port comes and goes while the guest keeps it open:
# client A sends "message-1" and disconnects (the guest reader sees the data,
# then end of file); client B connects, sends "message-2" and disconnects.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
exec 3</dev/vport0p1 || fail "open /dev/vport0p1"
timeout 20 cat <&3 > "$OUT/got.1" || fail "round 1: no end of file after the host left (rc $?)"
log "round 1: $(cat "$OUT/got.1")"
: > "$OUT/g.eof1"       # the host's next client waits for this
# Until B connects, reads return end of file at once: retry.
i=0
until [ -s "$OUT/got.2" ]; do
    i=$((i + 1)); [ $i -le 200 ] || fail "round 2: nothing from the second client"
    timeout 20 cat <&3 >> "$OUT/got.2" || fail "round 2: no end of file after the host left (rc $?)"
    [ -s "$OUT/got.2" ] || sleep 0.1
done
log "round 2: $(cat "$OUT/got.2")"
exec 3<&-
[ "$(cat "$OUT/got.1")" = message-1 ] || fail "round 1 data"
[ "$(cat "$OUT/got.2")" = message-2 ] || fail "round 2 data"
exit 0
