#!/bin/bash
# A line written to the daemon's stdin (console port, backend=stdio) is
# read from /dev/hvc0 in the guest.
. "${0%/*}/lib.sh"
load_vc
wait_hvc
# One open for stty and read: input that reached the tty is dropped at its
# last close.
exec 3<>/dev/hvc0 || fail "open /dev/hvc0"
stty -echo <&3
read -t 20 -r line <&3 || fail "nothing read from /dev/hvc0"
exec 3<&-
echo "$line" > "$OUT/hvc0.in"
log "read from hvc0: $line"
[ "$line" = "$MARKER" ] || fail "read '$line', want '$MARKER'"
exit 0
