#!/bin/bash
# backend=journal: $OUT/j.text (lines, CRLF ones, empty ones, a long one) to
# vport0p1, then a last line without its newline; a line to hvc0.
# $OUT/g.done once written; the guest stays until $OUT/h.done.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_host.sh"
load_vc
wait_hvc
wait_port vport0p1
exec 3>/dev/vport0p1 || fail "open vport0p1"
cat "$OUT/j.text" >&3 || fail "write j.text"
printf 'login: ' >&3
exec 3>&-
echo "hvc0 says hello" > /dev/hvc0 || fail "write hvc0"
: > "$OUT/g.done"
wait_host h.done       # until the daemon took it all (the ring holds more)
exit 0
