#!/bin/bash
# "vserialctl attach" on a host terminal is the port's host side: the guest
# reads the line typed there, answers "pong <line>", and then sees end of
# file once the host detaches (Ctrl-]).
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
exec 3<>/dev/vport0p1 || fail "open /dev/vport0p1"
# End of file at once until the host side attaches: retry.
line=
for i in $(seq 400); do
    read -t 2 -r line <&3 && [ -n "$line" ] && break
    sleep 0.05
done
[ -n "$line" ] || fail "nothing typed on the host"
log "read '$line'"
echo "pong $line" >&3
# Detached: reads end at once.
for i in $(seq 40); do
    read -t 1 -r x <&3; rc=$?
    [ $rc -eq 1 ] && break
done
[ $rc -eq 1 ] || fail "no end of file after the host detached"
: > "$OUT/g.detached"
log "host detached"
exit 0
