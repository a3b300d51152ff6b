#!/bin/bash
# Traffic for vserialctl stats --prometheus: a line to hvc0, $OUT/up.src to
# vport0p1 (its host client stalls a while), 4 KiB read from vport0p2.
# $OUT/g.done at the end; the guest stays until $OUT/h.done.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
. "${0%/*}/lib_host.sh"
load_vc
wait_hvc
wait_port vport0p1
wait_port vport0p2
echo "console line for the metrics" > /dev/hvc0 || fail "write hvc0"
exec 4<>/dev/vport0p2 || fail "open vport0p2"
read_n 4 4096 "$OUT/p2.in" 60 || fail "read 4 KiB from vport0p2"
exec 4<&-
dd if="$OUT/up.src" of=/dev/vport0p1 bs=32k 2>"$OUT/dd.err" || fail "dd: $(cat "$OUT/dd.err")"
: > "$OUT/g.done"
wait_host h.done       # the VMM is still there when the host reads the counters
exit 0
