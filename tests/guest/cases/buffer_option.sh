#!/bin/bash
# buffer=SIZE bounds what the daemon takes from the guest while the host side
# does not read. Ports 1 (buffer=SMALL) and 2 (buffer=BIG) have host clients
# that read nothing until $OUT/g.mid exists. The guest writes TOTAL bytes to
# each; once both writers are stuck it records how much each got written
# ($OUT/stuck: "N1 N2", from dd's SIGUSR1 report). The rest of the way is
# the same for both ports (the guest's transmit ring, the socket), so N2 - N1
# must be BIG - SMALL, give or take the host's socket queues (the host
# measures those). Then the host reads everything.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
wait_port vport0p2
mkfifo "$OUT/never" && exec 9<>"$OUT/never" || fail "mkfifo"
nap() { read -r -t "$1" -u 9 _; }
# count P: bytes dd has written to port P so far (asks it with SIGUSR1)
count() {
    local f=$OUT/dd.$1.err l n
    kill -USR1 "${pid[$1]}" 2>/dev/null || { echo -1; return; }
    nap 0.1
    mapfile -t l < "$f"
    n=${l[-1]%% bytes*}
    echo "${n:--1}"
}
for p in 1 2; do
    dd if=/dev/zero of=/dev/vport0p$p bs=32k count=$((TOTAL / 32768)) 2>"$OUT/dd.$p.err" &
    pid[$p]=$!
done
prev="x"
for i in $(seq 60); do
    nap 0.5
    cur="$(count 1) $(count 2)"
    [ "$cur" = "$prev" ] && [ "${cur% *}" -gt 0 ] && [ "${cur#* }" -gt 0 ] && break
    prev=$cur
done
[ "$cur" = "$prev" ] || fail "the writers did not stop within 30 s: $cur"
echo "$cur" > "$OUT/stuck"
log "writers stuck at $cur bytes (buffer=$SMALL and buffer=$BIG)"
: > "$OUT/g.mid"
for p in 1 2; do wait "${pid[$p]}" || fail "dd to vport0p$p: $(cat "$OUT/dd.$p.err")"; done
log "both writers done"
exit 0
