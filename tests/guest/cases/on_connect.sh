#!/bin/bash
# on-connect=replay (vport0p1) and discard (vport0p2): the guest writes
# $OUT/up.src to both, then "fresh" once the host says its next client is
# there ($OUT/h.nextP); the host makes its first client leave with the
# daemon holding output.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
wait_port vport0p2
mount_tmp 24m
cp "$OUT/up.src" "$OUT/gtmp/up" || fail "cp up.src"
for p in 1 2; do
    ( exec 3<>/dev/vport0p$p
      dd if="$OUT/gtmp/up" bs=32k >&3 2>"$OUT/dd.$p.err" || exit 1
      # dd is done once its data is queued: "fresh" waits for the host's
      # next client (else discard could drop it with the rest)
      until [ -e "$OUT/h.next$p" ]; do sleep 0.05; done
      printf 'fresh\n' >&3 ) &
    pid[$p]=$!
done
for p in 1 2; do wait "${pid[$p]}" || fail "port $p: $(cat "$OUT/dd.$p.err")"; done
: > "$OUT/g.done"
exit 0
