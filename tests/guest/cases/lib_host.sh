# Sourced by the host-side feature scripts (history, logfile, tcp-connect,
# fd, journal) after lib.sh.

# wait_host FILE [seconds]: until the host made $OUT/FILE.
wait_host() {
    local f=$OUT/$1 n=$(( ${2:-60} * 20 )) i=0
    until [ -e "$f" ]; do
        i=$((i + 1)); [ $i -le $n ] || fail "the host never made $1"
        sleep 0.05
    done
}
