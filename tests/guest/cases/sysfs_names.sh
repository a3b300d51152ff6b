#!/bin/bash
# The guest sees the configured port names in /sys/class/virtio-ports/*/name.
. "${0%/*}/lib.sh"
load_vc
for i in $(seq 1 "$NPORTS"); do wait_port vport0p$i; wait_name vport0p$i; done
for d in /sys/class/virtio-ports/*; do
    [ -e "$d/name" ] && echo "${d##*/} $(cat "$d/name")"
done > "$OUT/names"
cat "$OUT/names"
ls -l /dev/vport* | sed 's/^/guest: /'
exit 0
