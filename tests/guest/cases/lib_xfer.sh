# Sourced by the data-transfer case scripts after lib.sh (bash, in the guest).

# read_n FD N FILE [seconds]: read exactly N bytes from fd FD into FILE.
# While the port's host side is away a read returns end of file at once
# (the daemon sent PORT_OPEN 0), so retry until N bytes are there.
read_n() {
    local fd=$1 n=$2 f=$3 t=${4:-60} have=0 end
    : > "$f" || return 1
    end=$(( EPOCHSECONDS + t ))
    while :; do
        have=$(stat -c %s "$f")
        [ "$have" -ge "$n" ] && return 0
        [ "$EPOCHSECONDS" -lt "$end" ] || return 1
        head_c $((n - have)) <&"$fd" >> "$f"
        [ "$(stat -c %s "$f")" -gt "$have" ] || sleep 0.05
    done
}

# read_line FD VAR [seconds]: one line from fd FD into VAR, retrying while
# reads return end of file (no host client yet).
read_line() {
    local fd=$1 var=$2 t=${3:-60} end l
    end=$(( EPOCHSECONDS + t ))
    while [ "$EPOCHSECONDS" -lt "$end" ]; do
        if IFS= read -t 5 -r l <&"$fd"; then
            printf -v "$var" '%s' "$l"
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# both_ways FD K ACK WHAT: write $OUT/up.K to FD while reading DOWN bytes
# from it into $OUT/gtmp/down.K (sha256 EXPECTK), then read the host's
# "ACK <sha256 of up.K>" line (ACK is the word the host uses). WHAT names
# the round in the messages.
both_ways() {
    local fd=$1 k=$2 ack=$3 what=$4 want expect line w
    want=$(sha "$OUT/up.$k")
    cat "$OUT/up.$k" >&"$fd" &
    w=$!
    read_n "$fd" "$DOWN" "$OUT/gtmp/down.$k" 60 || fail "$what: read $DOWN bytes"
    wait $w || fail "$what: write"
    eval "expect=\$EXPECT$k"
    [ "$(sha "$OUT/gtmp/down.$k")" = "$expect" ] || fail "$what: host->guest sha256 mismatch"
    read_line "$fd" line 60 || fail "$what: no ACK"
    [ "$line" = "$ack $want" ] || fail "$what: host said '$line', want '$ack $want'"
    log "$what: both ways byte-exact"
}

# boot_done B PORT: what the host sent on PORT ($OUT/gtmp/down) hashes to
# EXPECT$B; then a line to hvc0 and $OUT/g.done.B for the host.
boot_done() {
    local b=$1 port=$2 got expect
    got=$(sha "$OUT/gtmp/down")
    eval "expect=\$EXPECT$b"
    [ "$got" = "$expect" ] || fail "boot $b: $port sha256 $got, want $expect"
    echo "console line from boot $b" > /dev/hvc0 || fail "write hvc0"
    log "boot $b: both directions byte-exact"
    : > "$OUT/g.done.$b"
}

# stage_up_src: port 1 there, $OUT/up.src copied to the guest's tmpfs
# ($OUT/gtmp/up: hostfs does not pace the writer) and port 1 open on
# descriptor 3.
stage_up_src() {
    wait_port vport0p1
    mount_tmp 40m
    cp "$OUT/up.src" "$OUT/gtmp/up" || fail "cp up.src"
    exec 3<>/dev/vport0p1 || fail "open /dev/vport0p1"
}
