#!/bin/bash
# The guest streams into /dev/vport0p1 until the write fails: the host
# SIGKILLs vserial mid-stream. The guest must survive: the writer gets an
# error, the port goes away, and the guest carries on and powers off.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
dd if=/dev/zero of=/dev/vport0p1 bs=32k 2>"$OUT/dd.err" &
pid=$!
i=0
while kill -0 $pid 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 600 ]; then
        kill $pid
        fail "dd still running 60 s later: the write never failed"
    fi
    sleep 0.1
done
wait $pid
rc=$?
echo $rc > "$OUT/dd.rc"
log "dd exited $rc: $(tr '\n' ' ' < "$OUT/dd.err")"
[ $rc -ne 0 ] || fail "dd of an endless stream exited 0"
i=0
while [ -e /dev/vport0p1 ]; do
    i=$((i + 1)); [ $i -le 100 ] || fail "/dev/vport0p1 still there 10 s after the daemon died"
    sleep 0.1
done
log "port gone; guest still alive"
echo alive > "$OUT/alive"
exit 0
