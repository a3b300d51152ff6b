#!/bin/bash
# A write to /dev/hvc0 reaches the console port's host backend.
. "${0%/*}/lib.sh"
load_vc
wait_hvc
echo "$MARKER" > /dev/hvc0 || fail "write to /dev/hvc0"
log "wrote $MARKER to hvc0"
exit 0
