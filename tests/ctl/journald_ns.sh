#!/bin/sh
# journald_ns.sh DIR PROGRAM [ARG...]: run PROGRAM with a systemd-journald of
# its own, for the tests of backend=journal (no journald runs where the
# tests do, and libsystemd sends only to /run/systemd/journal/socket).
#
# In a private mount namespace (unshare -m as root, else a user namespace
# too, unshare -rm), /run/systemd is an empty tmpfs and /run/log is DIR/run-log,
# so the journald started there listens where libsystemd sends and writes
# its journal to DIR/run-log/journal/MACHINE-ID/, which outlives the
# namespace: `journalctl --directory DIR/run-log/journal` reads it back. Its
# configuration (DIR/journald.conf, bound over /etc/systemd/journald.conf)
# keeps it from reading the kernel's log, forwarding anything or rate
# limiting. Its pid is in DIR/journald.pid; PROGRAM is exec'ed, so it keeps
# the pid the caller started, and journald stays in its process group.
# Exit status 125 if the namespace or journald cannot be set up.
set -u
if [ "${JNS_INSIDE:-}" != 1 ]; then
    export JNS_INSIDE=1
    if [ "$(id -u)" = 0 ]; then
        exec unshare -m --propagation private sh "$0" "$@"
    fi
    exec unshare -rm --propagation private sh "$0" "$@"
fi
dir=$1
shift
fail() { echo "journald_ns.sh: $*" >&2; exit 125; }
journald=/lib/systemd/systemd-journald
[ -x "$journald" ] || journald=/usr/lib/systemd/systemd-journald
[ -x "$journald" ] || fail "no systemd-journald (package systemd)"
mkdir -p "$dir/run-log" || fail "mkdir $dir/run-log"
cat > "$dir/journald.conf" <<EOF
[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitIntervalSec=0
RateLimitBurst=0
EOF
mount -t tmpfs jns /run/systemd || fail "mount a tmpfs on /run/systemd"
mkdir -p /run/systemd/journal || fail "mkdir /run/systemd/journal"
mount --bind "$dir/run-log" /run/log || fail "bind $dir/run-log on /run/log"
if [ -e /etc/systemd/journald.conf ]; then
    mount --bind "$dir/journald.conf" /etc/systemd/journald.conf ||
        fail "bind $dir/journald.conf on /etc/systemd/journald.conf"
fi
"$journald" > "$dir/journald.log" 2>&1 &
echo $! > "$dir/journald.pid"
i=0
until [ -S /run/systemd/journal/socket ]; do
    i=$((i + 1))
    [ $i -le 200 ] || fail "journald did not make its socket (see $dir/journald.log)"
    sleep 0.05
done
exec "$@"
