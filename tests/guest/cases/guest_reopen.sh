#!/bin/bash
# The guest reopens its port right after the host client left, as tp-qemu's
# interrupted_transfer[port_disconnect] does, CYCLES times: it opens the
# port (up to 50 tries, 0.1 s apart, as that test does), says "open-K", and
# leaves a writer of BLOCKS*4096 zero bytes behind on the port while it
# closes its own descriptor. The host client reads a little and leaves at
# once, a new one comes at once. The driver keeps the port open (a second
# open() gets EBUSY) until that writer's write() returns; write() waits
# while the host side is away (virtio_console.c: will_write_block()), so
# the reopen works only if the new host client is served.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
for k in $(seq "$CYCLES"); do
    tries=0
    until exec 3<>/dev/vport0p1 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || fail "cycle $k: the port did not open in 50 tries (5 s)"
        sleep 0.1
    done
    echo "$k $tries" >> "$OUT/reopen"
    printf 'open-%d\n' "$k" >&3 || fail "cycle $k: write"
    dd if=/dev/zero bs=4096 count="$BLOCKS" >&3 2>/dev/null &
    exec 3>&-
done
wait
: > "$OUT/g.done"
exit 0
