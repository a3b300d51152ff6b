#!/bin/bash
# The guest opens and closes /dev/vport0p1 twice; the daemon must log
# "guest opened" / "guest closed" in order.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
for round in 1 2; do
    exec 3</dev/vport0p1 || fail "open $round"
    log "opened ($round)"
    sleep 0.2
    exec 3<&-
    log "closed ($round)"
    sleep 0.2
done
exit 0
