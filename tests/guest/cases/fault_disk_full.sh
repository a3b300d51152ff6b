#!/bin/bash
# backend=file on a full disk: the guest writes $OUT/up.src to vport0p1 and
# keeps the port open (the daemon holds what the disk refused and retries)
# until the host says the file is complete ($OUT/h.done): powering off
# earlier would take the unsent data with the guest.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
wait_name vport0p1
exec 3>/dev/vport0p1 || fail "open /dev/vport0p1"
n=$(stat -c %s "$OUT/up.src")
dd if="$OUT/up.src" bs=32k >&3 2>"$OUT/dd.err" || fail "dd: $(cat "$OUT/dd.err")"
log "wrote $n bytes to vport0p1"
: > "$OUT/g.written"
i=0
until [ -e "$OUT/h.done" ]; do
    i=$((i + 1)); [ $i -le 1200 ] || fail "the host never saw the whole file (60 s)"
    sleep 0.05
done
exec 3>&-
log "the host has all $n bytes"
exit 0
