#!/bin/bash
# "stty -F /dev/hvc0 size" (rows cols) shows the size the host set: first
# WANT1 (the daemon's default); with WANT2 set, the host changes the size
# once $OUT/g.ready exists and the guest waits for WANT2. /dev/hvc0 stays
# open on fd 3 meanwhile: each stty -F opens and closes it, and at the last
# close the tty forgets its size (hvc re-applies it, asynchronously, on the
# next first open).
. "${0%/*}/lib.sh"
# Sizes come as ROWSxCOLS (a kernel command line word has no spaces).
want1=${WANT1/x/ }
want2=${WANT2:+${WANT2/x/ }}
load_vc
wait_hvc
exec 3<>/dev/hvc0 || fail "open /dev/hvc0"
size() { stty -F /dev/hvc0 size 2>&1; }
s1=$(size)
for i in $(seq 100); do [ "$s1" = "$want1" ] && break; sleep 0.05; s1=$(size); done
echo "$s1" > "$OUT/size1"
log "size: $s1 (want $want1)"
[ "$s1" = "$want1" ] || fail "stty size '$s1', want '$want1'"
if [ -n "$want2" ]; then
    : > "$OUT/g.ready"
    s2=$(size)
    for i in $(seq 200); do [ "$s2" = "$want2" ] && break; sleep 0.05; s2=$(size); done
    echo "$s2" > "$OUT/size2"
    log "size after the host's change: $s2 (want $want2)"
    [ "$s2" = "$want2" ] || fail "stty size '$s2' 10 s after the host's change, want '$want2'"
fi
exec 3<&-
exit 0
