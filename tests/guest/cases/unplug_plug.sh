#!/bin/bash
# The host unplugs and plugs the port named NAME again and again while its
# host client stays: vsg replug (tests/guest/qemu/vsg.c) opens it each time
# it is there, writes PER_EPOCH bytes of a record stream that goes on where
# the last writes ended, reads everything (one file per epoch), and ends
# once the host says so ($OUT/stop). The host checks both directions.
. "${0%/*}/lib.sh"
load_vc
"${VSG:-vsg}" replug "$NAME" "$PER_EPOCH" "$OUT" || fail "vsg replug failed"
exit 0
