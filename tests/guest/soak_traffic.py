#!/usr/bin/env python3
"""The guest half of scripts/soak: random traffic both ways on every port,
for one load of the virtio_console driver (one "epoch").

  soak_traffic.py EPOCH STOP_AT SUMMARY LINGER PORT...

Each PORT is a number N (/dev/vport0pN). Until STOP_AT (wall clock, the
host's: UML shares it) the program writes frames to every port and reads
the host's frames and acks:

  guest->host  b'@@F <epoch> <port> <seq> <len> <sha>\\n' + payload + b'\\n'
  host->guest  b'@@H <port> <seq> <len> <sha>\\n' + payload + b'\\n'
               b'@@A <epoch> <seq>\\n'   the host has frames 0..seq of epoch
payload: <len> lowercase hex digits (never '@'); sha: the first 16 hex
digits of sha256(payload). Guest seqs start at 0 every epoch; a port has
at most WINDOW frames unacked. At STOP_AT no new frame is started; the
program waits until every frame written is acked (so a driver unload that
follows loses nothing guest->host), writes SUMMARY (JSON) and exits 0, or
1 if the acks did not come within DRAIN_S. With LINGER > 0 (the last
epoch) it reads on for LINGER seconds after that, for the host's last
frames.

Host->guest checks (per port): every frame's sha matches (else "corrupt"),
seqs increase by exactly one (else "gaps"), except that the first frame
after a driver load may start anywhere and bytes before it are skipped
("skipped": what the unload dropped). Bytes that are not a frame anywhere
else are "garbage".
"""

import hashlib
import json
import os
import random
import select
import sys
import time

WINDOW = 8
MAX_PAYLOAD = 12 * 1024
DRAIN_S = 60


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16].encode()


class Port:
    def __init__(self, n, epoch, rnd):
        self.n = n
        self.epoch = epoch
        self.rnd = rnd
        self.fd = os.open('/dev/vport0p%d' % n, os.O_RDWR | os.O_NONBLOCK)
        self.wbuf = b''
        self.seq = 0            # next frame to write
        self.acked = -1
        self.rbuf = bytearray()
        self.rest_until = 0.0   # read returned 0 (no host client): back off
        self.h = {'frames': 0, 'bytes': 0, 'first': None, 'last': None, 'corrupt': 0,
                  'gaps': 0, 'garbage': 0, 'skipped': 0, 'stale_acks': 0}
        self.wrote_bytes = 0

    def new_frame(self):
        n = self.rnd.choice((1, 16, 100, 1000, 4000, MAX_PAYLOAD, self.rnd.randint(1, MAX_PAYLOAD)))
        payload = self.rnd.randbytes((n + 1) // 2).hex()[:n].encode()
        self.wbuf = b'@@F %d %d %d %d %s\n' % (self.epoch, self.n, self.seq, n, sha(payload)) + payload + b'\n'
        self.seq += 1

    def parse(self):
        b = self.rbuf
        while True:
            at = b.find(b'@@')
            if at < 0:
                # keep a lone trailing '@'
                keep = 1 if b.endswith(b'@') else 0
                self.junk(len(b) - keep)
                del b[:len(b) - keep]
                return
            if at:
                self.junk(at)
                del b[:at]
            nl = b.find(b'\n', 0, 120)
            if nl < 0:
                if len(b) >= 120:
                    self.junk(2)
                    del b[:2]
                    continue
                return
            f = b[:nl].split()
            try:
                if f[0] == b'@@A' and len(f) == 3:
                    e, s = int(f[1]), int(f[2])
                    del b[:nl + 1]
                    if e == self.epoch:
                        self.acked = max(self.acked, s)
                    else:
                        self.h['stale_acks'] += 1
                    continue
                if f[0] == b'@@H' and len(f) == 5:
                    port, s, n, digest = int(f[1]), int(f[2]), int(f[3]), f[4]
                    if len(b) < nl + 1 + n + 1:
                        return
                    payload = bytes(b[nl + 1:nl + 1 + n])
                    ok = port == self.n and sha(payload) == digest and b[nl + 1 + n] == 10
                    del b[:nl + 1 + n + 1]
                    if not ok:
                        self.h['corrupt'] += 1
                        continue
                    if self.h['last'] is None:
                        self.h['first'] = s
                    elif s != self.h['last'] + 1:
                        self.h['gaps'] += 1
                    self.h['last'] = s
                    self.h['frames'] += 1
                    self.h['bytes'] += n
                    continue
            except (ValueError, IndexError):
                pass
            self.junk(2)
            del b[:2]

    def junk(self, n):
        if n <= 0:
            return
        if self.h['frames'] == 0:
            self.h['skipped'] += n      # the tail of what the unload cut
        else:
            self.h['garbage'] += n


def main():
    epoch, stop_at, summary = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    linger = float(sys.argv[4])
    rnd = random.Random(epoch * 7919 + os.getpid())
    ports = [Port(int(n), epoch, rnd) for n in sys.argv[5:]]
    fds = {p.fd: p for p in ports}
    stopping = False
    drain_end = None
    linger_end = None
    while True:
        now = time.time()
        if not stopping and now >= stop_at:
            stopping = True
            drain_end = now + DRAIN_S
        if stopping and all(not p.wbuf and p.acked == p.seq - 1 for p in ports):
            if linger <= 0:
                break
            if linger_end is None:
                linger_end = now + linger
            elif now >= linger_end:
                break
        if stopping and now > drain_end:
            break
        for p in ports:
            if not p.wbuf and not stopping and p.seq - (p.acked + 1) < WINDOW:
                p.new_frame()
        rl = [p.fd for p in ports if p.rest_until <= now]
        wl = [p.fd for p in ports if p.wbuf]
        r, w, _ = select.select(rl, wl, [], 0.1)
        for fd in w:
            p = fds[fd]
            try:
                k = os.write(fd, p.wbuf[:65536])
            except BlockingIOError:
                continue
            p.wbuf = p.wbuf[k:]
            p.wrote_bytes += k
        for fd in r:
            p = fds[fd]
            try:
                d = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not d:
                p.rest_until = now + 0.05       # no host client right now
                continue
            p.rbuf += d
            p.parse()
    ok = all(not p.wbuf and p.acked == p.seq - 1 for p in ports)
    out = {'epoch': epoch, 'drained': ok, 'ports': {
        str(p.n): {'written': p.seq, 'acked': p.acked, 'wrote_bytes': p.wrote_bytes, 'h2g': p.h}
        for p in ports}}
    for p in ports:
        os.close(p.fd)
    tmp = summary + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(out, f)
    os.rename(tmp, summary)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
