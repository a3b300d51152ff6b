#!/bin/bash
# A host client that stops reading. The guest writes $OUT/up.src (16 MiB) to
# vport0p1 in the background while port 1's client reads nothing: the
# writer must get stuck (the daemon's buffer, the socket and the guest's
# transmit ring fill up; nothing is dropped). While it is stuck, port 2
# carries data both ways ($OUT/p2.src up, answered "ACK <sha256>", then
# DOWN2 bytes down with sha256 EXPECT2). Then $OUT/g.mid: the host reads
# port 1 again, the writer finishes.
. "${0%/*}/lib.sh"
. "${0%/*}/lib_xfer.sh"
load_vc
wait_port vport0p1
wait_port vport0p2
mount_tmp 24m
cp "$OUT/up.src" "$OUT/gtmp/up" || fail "cp up.src"
mkfifo "$OUT/never" && exec 9<>"$OUT/never" || fail "mkfifo"
nap() { read -r -t "$1" -u 9 _; }
dd if="$OUT/gtmp/up" of=/dev/vport0p1 bs=32k 2>"$OUT/dd.err" &
pid=$!
count() {
    local l n
    kill -USR1 "$pid" 2>/dev/null || { echo -1; return; }
    nap 0.1
    mapfile -t l < "$OUT/dd.err"
    n=${l[-1]%% bytes*}
    echo "${n:--1}"
}
prev=x
for i in $(seq 60); do
    nap 0.5
    cur=$(count)
    [ "$cur" = "$prev" ] && [ "$cur" -gt 0 ] && break
    prev=$cur
done
[ "$cur" = "$prev" ] || fail "the writer to vport0p1 did not get stuck within 30 s: $cur"
[ "$cur" -lt "$(stat -c %s "$OUT/gtmp/up")" ] || fail "the writer finished: the host client read after all?"
echo "$cur" > "$OUT/stuck"
log "writer to vport0p1 stuck after $cur bytes"
# port 2 works meanwhile, both ways
want2=$(sha "$OUT/p2.src")
exec 4<>/dev/vport0p2 || fail "open vport0p2"
cat "$OUT/p2.src" >&4 || fail "write vport0p2"
read_line 4 line 30 || fail "no ACK on vport0p2"
[ "$line" = "ACK $want2" ] || fail "vport0p2: host said '$line', want 'ACK $want2'"
read_n 4 "$DOWN2" "$OUT/gtmp/down2" 30 || fail "read $DOWN2 bytes from vport0p2"
[ "$(sha "$OUT/gtmp/down2")" = "$EXPECT2" ] || fail "vport0p2: host->guest sha256 mismatch"
exec 4<&-
[ "$(count)" = "$cur" ] || fail "port 1's writer moved while the host did not read"
log "port 2 carried data both ways while port 1 was stuck"
: > "$OUT/g.mid"
wait $pid || fail "dd to vport0p1: $(cat "$OUT/dd.err")"
log "the writer to vport0p1 finished"
: > "$OUT/g.done"
exit 0
