#!/bin/bash
# The console's size: first the daemon's default (80x25, sent after
# CONSOLE_PORT), then what "vserialctl resize" set (the host does it once
# g.ready exists), as "stty size" (rows cols) on /dev/hvc0.
. "${0%/*}/lib.sh"
load_vc
wait_hvc
size() { stty -F /dev/hvc0 size 2>/dev/null; }
s1=$(size)
for i in $(seq 100); do [ -n "$s1" ] && [ "$s1" != "0 0" ] && break; sleep 0.05; s1=$(size); done
echo "$s1" > "$OUT/size1"
log "size before: $s1"
: > "$OUT/g.ready"
s2=$s1
for i in $(seq 300); do [ "$s2" != "$s1" ] && break; sleep 0.05; s2=$(size); done
echo "$s2" > "$OUT/size2"
log "size after: $s2"
[ "$s2" != "$s1" ] || fail "the size did not change within 15 s"
exit 0
