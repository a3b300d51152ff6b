# Sourced by the guest case scripts (bash). They run inside the User-Mode
# Linux guest as children of init.sh; OUT is the case's output directory on
# the host (visible through hostfs), other variables come from run.py.
set -u
VC_KO=/usr/lib/uml/modules/$(uname -r)/kernel/drivers/char/virtio_console.ko

log() { echo "guest: $*"; }
fail() { echo "guest: FAIL: $*"; exit 1; }
now() { date +%s.%N; }

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
