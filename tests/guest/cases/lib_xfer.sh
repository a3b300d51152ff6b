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
