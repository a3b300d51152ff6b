#!/bin/bash
# Host clients that connected at once to a port with clients=1 are served
# one after another: the guest reads one line from each ("client-K") and
# answers it ("ack client-K") to whoever is connected, N times. Between
# clients reads return end of file: read_line retries.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
wait_port vport0p1
exec 3<>/dev/vport0p1 || fail "open /dev/vport0p1"
for k in $(seq "$N"); do
    read_line 3 line 60 || fail "no line $k"
    echo "$line" >> "$OUT/order"
    printf 'ack %s\n' "$line" >&3 || fail "answer $k"
done
exec 3<&-
exit 0
