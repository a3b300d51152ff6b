#!/bin/bash
# Console output with no host client connected to the console's unix
# backend must not freeze the guest (hvc writes busy-wait in the kernel
# until the device returns the buffer).
. "${0%/*}/lib.sh"
load_vc
wait_hvc
for i in $(seq 1 200); do
    echo "console line $i: the quick brown fox jumps over the lazy dog" > /dev/hvc0 \
        || fail "write $i to /dev/hvc0"
done
log "wrote 200 lines to hvc0 without a client"
echo alive > "$OUT/alive"
exit 0
