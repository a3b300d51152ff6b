# Sourced by the guest case scripts (bash). They run inside the guest as
# children of its init: under User-Mode Linux tests/guest/init.sh, with the
# host's programs (hostfs); under QEMU tests/guest/qemu/init.sh, with bash
# and busybox (VMM=qemu). OUT is the case's output directory on the host
# (hostfs; virtiofs under QEMU), other variables come from run.py.
set -u
VMM=${VMM:-uml}
VC_KO=${VC_KO:-/usr/lib/uml/modules/$(uname -r)/kernel/drivers/char/virtio_console.ko}

log() { echo "guest: $*"; }
fail() { echo "guest: FAIL: $*"; exit 1; }
now() { echo "$EPOCHREALTIME"; }

load_vc() {
    insmod "$VC_KO" || fail "insmod $VC_KO"
}

# wait_port vport0pN [seconds]: until the port's device node exists and,
# for a named port, its sysfs name.
wait_port() {
    local p=$1 n=$(( ${2:-10} * 20 )) i=0
    until [ -e "/sys/class/virtio-ports/$p" ] && [ -e "/dev/$p" ]; do
        i=$((i + 1)); [ $i -le $n ] || fail "port $p did not appear"
        sleep 0.05
    done
}

wait_name() {
    local p=$1 n=$(( ${2:-10} * 20 )) i=0
    until [ -e "/sys/class/virtio-ports/$p/name" ]; do
        i=$((i + 1)); [ $i -le $n ] || fail "port $p has no name"
        sleep 0.05
    done
}

# Until /dev/hvc0 is usable (the console port was announced).
wait_hvc() {
    local n=$(( ${1:-10} * 20 )) i=0
    until [ -e /dev/hvc0 ] && [ -e /sys/class/virtio-ports/vport0p0 ]; do
        i=$((i + 1)); [ $i -le $n ] || fail "hvc0 did not appear"
        sleep 0.05
    done
}

# A guest-private tmpfs (the rest of the file system is the host's, via
# hostfs), so that bulk transfers measure the port and not hostfs.
mount_tmp() {
    mkdir -p "$OUT/gtmp"
    mount -t tmpfs -o size=${1:-40m} gtmp "$OUT/gtmp" || fail "mount tmpfs"
}

sha() { sha256sum "$@" | cut -d' ' -f1; }

# head_c N: exactly N bytes from stdin (fewer at end of file). busybox's
# "head -c" reads through stdio and drops what follows in its buffer, so
# the QEMU guest has its own (tests/guest/qemu/vsg.c).
if [ "$VMM" = qemu ]; then
    head_c() { vsg head "$1"; }
else
    head_c() { head -c "$1"; }
fi

# named_ports N [seconds]: until vport0p1 .. vport0pN and their names are
# there; then "vport0pI NAME" a line per port in $OUT/names.
named_ports() {
    local i name
    for i in $(seq 1 "$1"); do wait_port "vport0p$i" "${2:-10}"; wait_name "vport0p$i"; done
    for i in $(seq 1 "$1"); do
        read -r name < "/sys/class/virtio-ports/vport0p$i/name"
        echo "vport0p$i $name"
    done > "$OUT/names"
}

# boot_ports FILE PORT...: until the PORTs and their names are there; then
# every port the guest has, console included, a line "vport0pN NAME" in
# FILE (what a restarted VMM must offer again).
boot_ports() {
    local f=$1 p d
    shift
    for p in "$@"; do wait_port "$p"; wait_name "$p"; done
    for d in /sys/class/virtio-ports/*; do
        echo "${d##*/} $(cat "$d/name" 2>/dev/null)"
    done > "$f"
}
