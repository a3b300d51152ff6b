#!/usr/bin/env python3
"""Seed inputs for fuzz/fuzz_ctl.c, written to fuzz/corpus/fuzz_ctl/seed-*.

Each seed is a short script in the target's action encoding (see the enum
in fuzz_ctl.c): the scenarios of the audit's daemon findings and the
host-side operations around them, so the fuzzer starts from inputs that
reach deep into the state machine.

  fuzz/gen_corpus_ctl.py [OUTDIR]
"""

import os
import struct
import sys

A_CTRL, A_READY, A_POST_CTRL, A_POST_RX, A_TX, A_REQUEST, A_CLIENT, A_READ, A_PEER, \
    A_HOST_WRITE, A_RESET = range(11)
R_ADD, R_REMOVE, R_RESIZE, R_ATTACH, R_SUBSCRIBE, R_LIST, R_STATS, R_RAW = range(8)
# fuzz_ctl.c's specs[] indices
S_NULL, S_NULL_A, S_NULL_CON_B, S_NULL_CON_4K, S_UNIX, S_UNIX_C, S_UNIX_CON, S_FILE, \
    S_FILE_D, S_CONNECT, S_PTY, S_CLASH = range(12)
# control events
DEVICE_READY, PORT_ADD, PORT_REMOVE, PORT_READY, CONSOLE_PORT, RESIZE, PORT_OPEN, \
    PORT_NAME = range(8)


def port_id(i):
    return bytes([(i << 1) | 1])


def port_name(k):
    return bytes([k << 1])


def ctrl(pid, ev, val):
    return bytes([A_CTRL]) + struct.pack('<I', pid) + bytes([ev, val])


def req(client, cmd, *args):
    return bytes([A_REQUEST, client, cmd]) + b''.join(args)


def add(client, spec, pid=None):
    return req(client, R_ADD, bytes([spec, 8 | pid << 4 if pid is not None else 0]))


def tx(port, data):
    return bytes([A_TX, port, len(data) - 1]) + data


def host_write(who, data):
    return bytes([A_HOST_WRITE, who, len(data) // 16]) + data


SEEDS = {
    # Finding 1: PORT_READY storms with no control buffers, then remove,
    # a guest write to the port and list.
    'finding1-ready-storm':
        add(0, S_NULL_A, 1) + bytes([A_READ, 0]) +
        ctrl(1, PORT_READY, 1) + bytes([A_READY, 1]) * 20 +
        req(0, R_REMOVE, port_name(0)) + tx(1, b'after remove') + req(0, R_LIST) +
        bytes([A_POST_CTRL, 16, A_READ, 0]),
    # The queue filled by host messages: resize and a peer in turn.
    'full-queue-host-ops':
        add(0, S_UNIX_CON, 0) + add(0, S_UNIX, 1) + ctrl(0, PORT_READY, 1) +
        ctrl(1, PORT_READY, 1) +
        (req(0, R_RESIZE, port_id(0), struct.pack('<HH', 81, 25)) + bytes([A_PEER, 2]) +
         req(0, R_RESIZE, port_id(0), struct.pack('<HH', 80, 25)) + bytes([A_PEER, 2])) * 30 +
        req(0, R_REMOVE, port_id(1)) + add(0, S_NULL, 2) + req(1, R_ATTACH, port_id(1)) +
        bytes([A_PEER, 0]) + tx(1, b'guest data') + req(0, R_LIST) +
        bytes([A_POST_CTRL, 16]) + req(0, R_REMOVE, port_id(1)) + bytes([A_READ, 0]),
    # Finding 8: attach on a subscribed connection, events while attached.
    'attach-subscribed':
        bytes([A_CLIENT, 1]) + req(1, R_SUBSCRIBE) + add(0, S_UNIX_C, 2) +
        ctrl(2, PORT_READY, 1) + ctrl(2, PORT_OPEN, 1) + req(1, R_ATTACH, port_name(2)) +
        bytes([A_POST_RX, 2, 8]) + host_write(3, b'h' * 32) + tx(2, b'to the host') +
        ctrl(2, PORT_OPEN, 0) + ctrl(2, PORT_OPEN, 1) + bytes([A_READ, 1, A_CLIENT, 1]) +
        req(0, R_STATS) + bytes([A_READ, 0]),
    # Host peers: a client, a refused second one, data both ways, a reset.
    'peers-and-reset':
        add(0, S_UNIX, 1) + add(0, S_UNIX_C, 2) + ctrl(1, PORT_READY, 1) +
        ctrl(2, PORT_READY, 1) + bytes([A_PEER, 0, A_PEER, 1]) +
        bytes([A_POST_RX, 1, 16]) + host_write(0, b'p' * 64) + tx(1, b'x' * 200) +
        bytes([A_RESET]) + bytes([A_POST_CTRL, 8]) + ctrl(0xffffffff, DEVICE_READY, 1) +
        bytes([A_PEER, 0]) + req(0, R_LIST) + bytes([A_READ, 0]),
    # Adds that fail at each step, and the ones that work.
    'adds':
        b''.join(add(0, s, i % 5) for i, s in enumerate(range(12))) +
        b''.join(add(0, s) for s in range(12)) + req(0, R_LIST) +
        b''.join(req(0, R_REMOVE, port_id(i)) for i in range(5)) + bytes([A_READ, 0]),
    # Malformed and unknown requests, guest messages for unknown ports.
    'malformed':
        req(0, R_RAW, bytes([20]), b'{"cmd":"list"\n{}\n[]\n') +
        req(0, R_RAW, bytes([12]), b'{"cmd":"x"}\n') + ctrl(77, PORT_READY, 1) +
        ctrl(2, 200, 1) + ctrl(1, PORT_OPEN, 2) + req(0, R_RESIZE, port_id(1),
                                                      struct.pack('<HH', 0, 0)) +
        bytes([A_READ, 0]),
    # A slow subscriber: events it never reads.
    'slow-subscriber':
        bytes([A_CLIENT, 2]) + req(2, R_SUBSCRIBE) + add(0, S_NULL_A, 1) +
        ctrl(1, PORT_READY, 1) + (ctrl(1, PORT_OPEN, 1) + ctrl(1, PORT_OPEN, 0)) * 60 +
        bytes([A_READ, 0]),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'corpus', 'fuzz_ctl')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, 'seed-' + name), 'wb') as f:
            f.write(data)
    print('%d seeds in %s' % (len(SEEDS), out))


if __name__ == '__main__':
    main()
