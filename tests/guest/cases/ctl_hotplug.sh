#!/bin/bash
# Hot-add and hot-remove through the control socket while the guest runs.
# The host adds port 2 with "vserialctl add" once the guest is up
# (g.ready1); the guest sees it appear with its name, opens it, reads the
# host's "hello", then leaves a reader blocked on it (g.ready2). The host
# removes the port with "vserialctl remove": the blocked reader must end
# (end of file or an error, not a hang) and the port must leave sysfs.
. "${0%/*}/lib.sh"
load_vc
wait_port vport0p1
: > "$OUT/g.ready1"
wait_port vport0p2 20
wait_name vport0p2
cat /sys/class/virtio-ports/vport0p2/name > "$OUT/hot.name"
log "hot-added: vport0p2 is $(cat "$OUT/hot.name")"
exec 3</dev/vport0p2 || fail "open /dev/vport0p2"
# End of file at once until the host side connects: retry.
got=
for i in $(seq 300); do
    read -t 2 -r got <&3 && [ "$got" = hello ] && break
    sleep 0.05
done
[ "$got" = hello ] || fail "no hello on vport0p2 (got '$got')"
log "read '$got' from vport0p2"
( cat <&3 > "$OUT/hot.cat" 2> "$OUT/hot.err"; echo "$?" > "$OUT/hot.rc" ) &
exec 3<&-
sleep 0.3
: > "$OUT/g.ready2"
# The host removes the port now.
for i in $(seq 300); do [ -e "$OUT/hot.rc" ] && break; sleep 0.05; done
[ -e "$OUT/hot.rc" ] || fail "a reader of vport0p2 still blocks 15 s after the remove"
log "the blocked reader ended: cat exit $(cat "$OUT/hot.rc") $(cat "$OUT/hot.err")"
for i in $(seq 200); do [ -e /sys/class/virtio-ports/vport0p2 ] || break; sleep 0.05; done
[ -e /sys/class/virtio-ports/vport0p2 ] && fail "vport0p2 still in sysfs after the remove"
[ -e /dev/vport0p2 ] && fail "/dev/vport0p2 still there after the remove"
[ -e /sys/class/virtio-ports/vport0p1 ] || fail "vport0p1 went away too"
ls /sys/class/virtio-ports > "$OUT/ports.after"
log "ports after the remove: $(echo $(cat "$OUT/ports.after"))"
exit 0
