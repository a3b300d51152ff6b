#!/bin/bash
# The guest half of scripts/soak. Ports 1..NPORTS carry random traffic both
# ways (tests/guest/soak_traffic.py) in epochs of 15..30 s; between epochs
# the driver is reloaded (rmmod/insmod virtio_console). The last epoch ends
# at END (wall clock). Meanwhile a watcher greets every hot-added port
# (ids >= HOT_MIN) once: "HELLO <its name>". Epoch summaries go to
# $OUT/epochs/, one line per reload to $OUT/reloads.
. "${0%/*}/lib.sh"
TRAFFIC=${0%/*}/../soak_traffic.py
mkdir -p "$OUT/epochs"
mount_tmp 4m
load_vc

wait_all() {
    local n
    for n in $(seq 1 "$NPORTS"); do wait_port "vport0p$n" 30; done
}

hot_watch() {
    local d n name
    while [ ! -e "$OUT/gtmp/watch.stop" ]; do
        for d in /sys/class/virtio-ports/vport0p*; do
            n=${d##*vport0p}
            [ "$n" -ge "$HOT_MIN" ] 2>/dev/null || continue
            name=$(cat "$d/name" 2>/dev/null) || continue
            [ -n "$name" ] && [ ! -e "$OUT/gtmp/greeted.$name" ] || continue
            if timeout 5 sh -c "echo 'HELLO $name' > /dev/vport0p$n" 2>/dev/null; then
                : > "$OUT/gtmp/greeted.$name"
            fi
        done
        sleep 0.2
    done
}

watch_start() { rm -f "$OUT/gtmp/watch.stop"; hot_watch & watcher=$!; }
# The watcher ends itself (a greeting in progress takes at most 5 s): no
# open port may be left when the driver is unloaded.
watch_stop() { : > "$OUT/gtmp/watch.stop"; wait "$watcher" 2>/dev/null; true; }

wait_all
watch_start
epoch=0
while :; do
    now=$(date +%s)
    left=$((END - now))
    if [ "$left" -lt 40 ]; then
        stop=$END; last=1
    else
        stop=$((now + 15 + RANDOM % 16)); last=0
    fi
    log "epoch $epoch: traffic on $NPORTS ports until $stop (last=$last)"
    python3 "$TRAFFIC" "$epoch" "$stop" "$OUT/epochs/$epoch.json" $((last * 3)) $(seq 1 "$NPORTS") \
        2> "$OUT/epochs/$epoch.err" || fail "epoch $epoch: traffic failed: $(tail -3 "$OUT/epochs/$epoch.err")"
    [ "$last" = 1 ] && break
    watch_stop
    rmmod virtio_console || fail "rmmod virtio_console (epoch $epoch)"
    log "epoch $epoch done; driver unloaded"
    echo "$epoch $(date +%s.%N)" >> "$OUT/reloads"
    sleep 0.3
    load_vc
    wait_all
    watch_start
    epoch=$((epoch + 1))
done
watch_stop
log "soak done after $((epoch + 1)) epochs"
exit 0
