#!/bin/bash
# The log tee. vport0p2 (logfile with timestamps) gets lines written in
# pieces: a line split over two writes, several lines in one, an empty one
# and a last one without its newline ($OUT/g.lines once written). Then
# $OUT/up.src goes to vport0p1 (logfile, a unix client that stalls a while:
# more than the guest's transmit ring holds, so the writer waits), and the
# host answers "ACK <sha256 of what it got>".
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
wait_port vport0p1
wait_port vport0p2
exec 4>/dev/vport0p2 || fail "open vport0p2"
printf 'first line\n' >&4
printf 'second ' >&4
sleep 0.3
printf 'line\nthird line\n\nfourth\n' >&4
sleep 0.3
printf 'no newline at the end' >&4
exec 4>&-
: > "$OUT/g.lines"
want=$(sha "$OUT/up.src")
exec 3<>/dev/vport0p1 || fail "open vport0p1"
dd if="$OUT/up.src" bs=32k >&3 2>"$OUT/dd.err" || fail "dd: $(cat "$OUT/dd.err")"
read_line 3 line 60 || fail "no ACK from the host"
[ "$line" = "ACK $want" ] || fail "host said '$line', want 'ACK $want'"
exec 3<&-
log "wrote $(stat -c %s "$OUT/up.src") bytes to vport0p1, the host got them all"
: > "$OUT/g.done"
exit 0
