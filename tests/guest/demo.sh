#!/bin/bash
# Guest side of scripts/demo: say hello on the console (hvc0) and exchange
# a line with the host through the named port org.vserial.demo.
. "${0%/*}/cases/lib.sh"
load_vc
wait_hvc
wait_port vport0p1
wait_name vport0p1
log "kernel $(uname -r); ports:"
for d in /sys/class/virtio-ports/*; do
    log "  /dev/${d##*/}  name=$(cat "$d/name" 2>/dev/null || echo '(console)')"
done
echo "Hello from the guest console: $(uname -sr), $(nproc) vCPU" > /dev/hvc0
exec 3<>/dev/vport0p1 || fail "open /dev/vport0p1"
echo "ping from the guest over org.vserial.demo" >&3
log "sent a line to the host through /dev/vport0p1"
read -t 20 -r reply <&3 || fail "no reply from the host"
exec 3<&-
log "the host replied: $reply"
echo "Guest got the host's reply: $reply" > /dev/hvc0
exit 0
