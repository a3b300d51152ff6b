#!/bin/bash
# 30 named ports plus the console (max_nr_ports 31, 64 virtqueues). On every
# port at once the guest writes $OUT/up.N (host-made, SIZE bytes) and reads
# SIZE bytes (the host side is connected from the start and has sent them
# already); $OUT/down.sha256 gets "N bytes sha256" per port, $OUT/names the
# sysfs names. Process creation is slow under User-Mode Linux (ptrace), so
# this script starts few processes: builtins where it can, one cp, one
# sha256sum, two per port ($EPOCHREALTIME instead of date).
. "${0%/*}/lib.sh"
load_vc
wait_hvc
named_ports "$NPORTS" 20
mount_tmp 40m
cp "$OUT"/up.* "$OUT/gtmp/" || fail "cp up.*"
# nap SECONDS: sleep without a process (a read that times out on a FIFO
# nobody writes).
mkfifo "$OUT/gtmp/never" && exec 9<>"$OUT/gtmp/never" || fail "mkfifo"
nap() { read -r -t "$1" -u 9 _; }
echo "30 ports streaming" > /dev/hvc0
# Every port open first (each subshell says ready.N), then all streams start
# together at "go".
for i in $(seq 1 "$NPORTS"); do
    (
        exec 3<>/dev/vport0p$i || exit 10
        : > "$OUT/gtmp/ready.$i"
        until [ -e "$OUT/gtmp/go" ]; do nap 0.01; done
        dd if="$OUT/gtmp/up.$i" bs=32k >&3 2>"$OUT/gtmp/dd.$i" &
        head -c "$SIZE" <&3 > "$OUT/gtmp/down.$i" || exit 11
        wait $! || exit 12
        echo "$i $EPOCHREALTIME" >> "$OUT/port.times"
    ) &
    pids[$i]=$!
done
for i in $(seq 1 "$NPORTS"); do
    n=0
    until [ -e "$OUT/gtmp/ready.$i" ]; do
        n=$((n + 1)); [ $n -le 2000 ] || fail "port $i not open after 20 s"
        nap 0.01
    done
done
t0=$EPOCHREALTIME
: > "$OUT/gtmp/go"
bad=
for i in $(seq 1 "$NPORTS"); do
    wait ${pids[$i]} || bad="$bad $i(rc $?)"
done
t1=$EPOCHREALTIME
echo "$t0 $t1" > "$OUT/guest.times"
files=()
for i in $(seq 1 "$NPORTS"); do files[$i]=$OUT/gtmp/down.$i; done
# (no /dev/fd in the guest: no process substitution)
stat -c %s "${files[@]}" > "$OUT/gtmp/sizes" || fail "stat"
sha256sum "${files[@]}" > "$OUT/gtmp/sums" || fail "sha256sum"
mapfile -t sizes < "$OUT/gtmp/sizes"
mapfile -t sums < "$OUT/gtmp/sums"
for i in $(seq 1 "$NPORTS"); do
    echo "$i ${sizes[$((i - 1))]} ${sums[$((i - 1))]%% *}"
done > "$OUT/down.sha256"
[ -z "$bad" ] || fail "ports failed:$bad"
echo "30 ports done" > /dev/hvc0
log "$NPORTS ports both ways, byte counts and hashes in down.sha256"
exit 0
