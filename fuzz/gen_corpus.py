#!/usr/bin/env python3
"""Write the seed corpus of the fuzz targets: fuzz/corpus/<target>/seed-*.

  python3 fuzz/gen_corpus.py [OUTDIR]        (default: fuzz/corpus)

Each seed is a meaningful input in the target's own input language (see the
comment at the top of fuzz/<target>.c): a UML-like and a QEMU-like
vhost-user session, valid and broken descriptor chains, the console control
exchange of a Linux guest, valid --port specs and command lines. The files
are checked in; scripts/fuzz merges what the fuzzers find on top of them.
Deterministic: running it again rewrites the same bytes.
"""

import os
import struct
import sys

# ---------------------------------------------------------------- helpers

def u8(v): return struct.pack('<B', v & 0xff)
def u16(v): return struct.pack('<H', v & 0xffff)
def u32(v): return struct.pack('<I', v & 0xffffffff)
def u64(v): return struct.pack('<Q', v & 0xffffffffffffffff)


def desc(addr, length, flags, nxt):
    return u64(addr) + u32(length) + u16(flags) + u16(nxt)


F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4

# ---------------------------------------------------------------- vhost-user

# Actions of fuzz_vhost_user.c
A_SEND, A_MEM, A_KICK, A_HOST, A_RECONNECT, A_SHUTDOWN = range(6)
KIND_AUTO, KIND_EVENTFD, KIND_MEMFD, KIND_SOCKET, KIND_PIPE = range(5)

GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
SET_VRING_ENABLE, SET_BACKEND_REQ_FD, GET_CONFIG, SET_CONFIG = 18, 21, 24, 25

V, ACK = 0x1, 0x9
MEMFD_SIZE = 0x10000
QSIZE = 16

F_SIZE, F_MULTIPORT = 1 << 0, 1 << 1
F_INDIRECT_DESC, F_EVENT_IDX, F_PROTO, F_VERSION_1 = 1 << 28, 1 << 29, 1 << 30, 1 << 32
PF_MQ, PF_REPLY_ACK, PF_BACKEND_REQ, PF_CONFIG = 1 << 0, 1 << 3, 1 << 5, 1 << 9


def vmsg(req, flags, payload=b''):
    return u32(req) + u32(flags) + u32(len(payload)) + payload


class VU:
    """Builds a fuzz_vhost_user input: records after a config byte."""

    def __init__(self, cfg):
        self.out = bytearray(u8(cfg))

    def send(self, data, nfds=0, kind=KIND_AUTO):
        self.out += u8(A_SEND) + u8(nfds | kind << 4) + u16(len(data)) + data

    def msg(self, req, flags, payload=b'', nfds=0, kind=KIND_AUTO):
        self.send(vmsg(req, flags, payload), nfds, kind)

    def state(self, req, flags, q, num):
        self.msg(req, flags, u32(q) + u32(num))

    def u64msg(self, req, flags, v, nfds=0, kind=KIND_AUTO):
        self.msg(req, flags, u64(v), nfds, kind)

    def mem(self, off, data, which=0):
        self.out += u8(A_MEM) + u8(which) + u16(off) + u16(len(data)) + data

    def kick(self, i=0xff):
        self.out += u8(A_KICK) + u8(i)

    def host(self, what, port, extra=b''):
        self.out += u8(A_HOST) + u8(what) + u8(port) + extra

    def raw(self, b):
        self.out += b

    def bytes(self):
        return bytes(self.out)


# Guest layout in the 64 KiB memfd: rings at RING + q*0x400 (desc, avail
# +0x100, used +0x200), buffers at BUFS + q*0x800 + slot*0x80.
RING, BUFS = 0x1000, 0x6000


def ring_addrs(q, base):
    r = base + RING + q * 0x400
    return r, r + 0x100, r + 0x200


class Guest:
    """Writes rings into the memfd through A_MEM, as virtio_console does.
    @fileoff maps a guest address to the memfd offset."""

    def __init__(self, vu, nvqs, gpa_base, file_base, indirect=False):
        self.vu, self.nvqs = vu, nvqs
        self.gpa_base, self.file_base = gpa_base, file_base
        self.avail = [0] * nvqs
        self.slot = [0] * nvqs
        self.indirect = indirect

    def off(self, gpa):
        return gpa - self.gpa_base + self.file_base

    def ring(self, q):
        return ring_addrs(q, self.gpa_base)

    def buf(self, q, s):
        return self.gpa_base + BUFS + q * 0x800 + s * 0x80

    def post(self, q, data, writable):
        d, a, _ = self.ring(q)
        s = self.slot[q] % QSIZE
        self.slot[q] += 1
        b = self.buf(q, s)
        if writable:
            size, flags = len(data) or 0x80, F_WRITE
        else:
            size, flags = len(data), 0
            self.vu.mem(self.off(b), data)
        if self.indirect:
            table = self.gpa_base + 0x3000 + q * 0x100
            self.vu.mem(self.off(table), desc(b, size, flags, 0))
            self.vu.mem(self.off(d + 16 * s), desc(table, 16, F_INDIRECT, 0))
        else:
            self.vu.mem(self.off(d + 16 * s), desc(b, size, flags, 0))
        self.vu.mem(self.off(a + 4 + 2 * (self.avail[q] % QSIZE)), u16(s))
        self.avail[q] += 1
        self.vu.mem(self.off(a + 2), u16(self.avail[q]))

    def rx(self, q, count=4):
        for _ in range(count):
            self.post(q, b'', True)

    def ctrl(self, pid, event, value):
        self.post(3, u32(pid) + u16(event) + u16(value), False)


def uml_handshake(vu, nvqs, features, pf_offer=PF_REPLY_ACK | PF_BACKEND_REQ | PF_CONFIG,
                  region=0x4000):
    """virtio_uml.c's order: owner, features, protocol features, backend
    channel; at probe: features, config, memory, then every ring."""
    pf = pf_offer & 0x4228
    ack = ACK if pf & PF_REPLY_ACK else V
    vu.msg(SET_OWNER, V)
    vu.msg(GET_FEATURES, V)
    vu.msg(GET_PROTOCOL_FEATURES, V)
    vu.u64msg(SET_PROTOCOL_FEATURES, ack, pf)
    if pf & PF_BACKEND_REQ:
        vu.msg(SET_BACKEND_REQ_FD, ack, b'', 1, KIND_SOCKET)
    vu.u64msg(SET_FEATURES, ack, features)
    vu.msg(GET_CONFIG, V, u32(0) + u32(8) + u32(0) + bytes(8))
    # header.size is always 72: room for two regions, one used
    tbl = u32(1) + u32(0) + u64(region) + u64(MEMFD_SIZE - region) + u64(region) + \
        u64(region) + bytes(32)
    vu.msg(SET_MEM_TABLE, ack, tbl, 1, KIND_MEMFD)
    for q in range(nvqs):
        d, a, u = ring_addrs(q, region)
        vu.u64msg(SET_VRING_CALL, ack, q, 1, KIND_SOCKET)
        vu.state(SET_VRING_NUM, ack, q, QSIZE)
        vu.state(SET_VRING_BASE, ack, q, 0)
        vu.msg(SET_VRING_ADDR, ack, u32(q) + u32(0) + u64(d) + u64(u) + u64(a) + u64(~0))
    for q in range(nvqs):
        vu.u64msg(SET_VRING_KICK, ack, q, 1, KIND_EVENTFD)
        vu.state(SET_VRING_ENABLE, ack, q, 1)
    return ack


QEMU_UVA = 0x7f1200000000


def qemu_handshake(vu, nvqs, features, stop=False):
    """QEMU 10.2's vhost-user-test-device order: protocol first, owner
    later, call/err fds at realize; at DRIVER_OK config, features, memory,
    rings with frontend (uva) addresses, enable, and new call fds."""
    pf = PF_MQ | PF_REPLY_ACK | PF_BACKEND_REQ | PF_CONFIG
    vu.msg(GET_FEATURES, V)
    vu.msg(GET_PROTOCOL_FEATURES, V)
    vu.u64msg(SET_PROTOCOL_FEATURES, V, pf)
    vu.msg(GET_QUEUE_NUM, V)
    vu.msg(SET_BACKEND_REQ_FD, ACK, b'', 1, KIND_SOCKET)
    vu.msg(SET_OWNER, V)
    vu.msg(GET_FEATURES, V)
    for q in range(nvqs):
        vu.u64msg(SET_VRING_CALL, ACK, q, 1, KIND_EVENTFD)
        vu.u64msg(SET_VRING_ERR, ACK, q, 1, KIND_EVENTFD)
    vu.msg(GET_CONFIG, V, u32(0) + u32(12) + u32(0) + bytes(12))
    vu.u64msg(SET_FEATURES, V, features)
    tbl = u32(1) + u32(0) + u64(0) + u64(MEMFD_SIZE) + u64(QEMU_UVA) + u64(0)
    vu.msg(SET_MEM_TABLE, ACK, tbl, 1, KIND_MEMFD)
    for q in range(nvqs):
        d, a, u = ring_addrs(q, QEMU_UVA)
        vu.state(SET_VRING_NUM, V, q, QSIZE)
        vu.state(SET_VRING_BASE, V, q, 0)
        vu.msg(SET_VRING_ADDR, V, u32(q) + u32(0) + u64(d) + u64(u) + u64(a) + u64(RING))
        vu.u64msg(SET_VRING_KICK, ACK, q, 1, KIND_EVENTFD)
        vu.u64msg(SET_VRING_CALL, ACK, q, 1, KIND_EVENTFD)
    for q in range(nvqs):
        vu.state(SET_VRING_ENABLE, ACK, q, 1)
    for q in range(nvqs):
        vu.u64msg(SET_VRING_CALL, ACK, q, 1, KIND_EVENTFD)


def console_session(vu, g, ports):
    """The Linux console exchange: DEVICE_READY, PORT_READY for every
    port, opens, data both ways."""
    g.rx(2, 8)
    g.ctrl(0xffffffff, 0, 1)                # DEVICE_READY
    vu.kick()
    for p in ports:
        g.ctrl(p, 3, 1)                     # PORT_READY
    vu.kick()
    g.rx(2, 8)
    g.ctrl(0, 6, 1)                         # PORT_OPEN (hvc0)
    vu.kick()
    if len(ports) > 1:
        g.rx(4, 4)                          # port 1 rx
        g.ctrl(1, 6, 1)
        vu.kick()
        vu.host(2, 1)                       # host connected
        vu.host(0, 1, u16(11) + b'hello guest')
        g.post(5, b'hello host\n', False)   # port 1 tx
        vu.kick()
    g.post(1, b'console line\n', False)     # hvc0 write
    g.rx(0, 2)
    vu.kick()
    vu.host(0, 0, u16(6) + b'login:')


def teardown_uml(vu, nvqs, ack):
    for q in reversed(range(nvqs)):
        vu.state(SET_VRING_ENABLE, ack, q, 0)
    vu.msg(GET_FEATURES, V)
    vu.raw(u8(A_SHUTDOWN))


def stop_qemu(vu, nvqs):
    for q in range(nvqs):
        vu.state(SET_VRING_ENABLE, ACK, q, 0)
    for q in range(nvqs):
        vu.state(GET_VRING_BASE, V, q, 0)


def vhost_user_seeds():
    seeds = {}
    nvqs = 6                                # cfg 1: two ports
    uml_features = F_MULTIPORT | F_VERSION_1 | F_PROTO

    vu = VU(1)
    uml_handshake(vu, nvqs, uml_features)
    seeds['uml-handshake'] = vu.bytes()

    vu = VU(1)
    ack = uml_handshake(vu, nvqs, uml_features)
    console_session(vu, Guest(vu, nvqs, 0x4000, 0x4000), [0, 1])
    teardown_uml(vu, nvqs, ack)
    seeds['uml-session'] = vu.bytes()

    # All ring features, indirect chains, no REPLY_ACK.
    vu = VU(1)
    ack = uml_handshake(vu, nvqs, uml_features | F_EVENT_IDX | F_INDIRECT_DESC | F_SIZE,
                        pf_offer=PF_BACKEND_REQ | PF_CONFIG)
    console_session(vu, Guest(vu, nvqs, 0x4000, 0x4000, indirect=True), [0, 1])
    teardown_uml(vu, nvqs, ack)
    seeds['uml-session-event-idx-indirect'] = vu.bytes()

    # Single-port mode (no MULTIPORT): a resize goes through config space and
    # the backend channel; a burst of console writes outruns one kick's budget.
    vu = VU(0)
    ack = uml_handshake(vu, 4, F_SIZE | F_VERSION_1 | F_PROTO)
    g = Guest(vu, 4, 0x4000, 0x4000)
    vu.host(7, 0, u16(132) + u16(50))
    for i in range(16):
        g.post(1, b'line %02d\n' % i, False)
    vu.kick()
    g.rx(0, 4)
    vu.kick()
    vu.host(0, 0, u16(5) + b'input')
    teardown_uml(vu, 4, ack)
    seeds['uml-single-port-resize-burst'] = vu.bytes()

    vu = VU(1)
    qemu_handshake(vu, nvqs, uml_features)
    seeds['qemu-handshake'] = vu.bytes()

    vu = VU(1)
    qemu_handshake(vu, nvqs, uml_features)
    console_session(vu, Guest(vu, nvqs, 0, 0), [0, 1])      # buffers: gpa
    stop_qemu(vu, nvqs)
    seeds['qemu-session-stop'] = vu.bytes()

    # QEMU with num_vqs below the device's queues (cfg bit 2), 4 ports.
    vu = VU(2 | 4)
    qemu_handshake(vu, 8, uml_features)
    stop_qemu(vu, 8)
    seeds['qemu-4ports-limited'] = vu.bytes()

    # Byte-level framing: a message split across sends, fds with the first
    # byte, two messages in one send, then a reconnect and a new session.
    vu = VU(0)
    m = vmsg(GET_FEATURES, V)
    vu.send(m[:5])
    vu.send(m[5:])
    kick = vmsg(SET_VRING_KICK, V, u64(0))
    vu.send(kick[:1], 1, KIND_EVENTFD)
    vu.send(kick[1:])
    vu.send(vmsg(SET_OWNER, V) + vmsg(GET_QUEUE_NUM, V))
    vu.raw(u8(A_RECONNECT))
    uml_handshake(vu, 4, uml_features)
    seeds['framing-split-reconnect'] = vu.bytes()

    # Two memory regions (two memfds), a config write, reset and redo.
    vu = VU(0)
    vu.msg(SET_OWNER, V)
    vu.u64msg(SET_FEATURES, V, uml_features)
    tbl = u32(2) + u32(0) + \
        u64(0x0) + u64(0x8000) + u64(0x7f0000000000) + u64(0x0) + \
        u64(0x100000) + u64(0x4000) + u64(0x7f0000100000) + u64(0x1000)
    vu.msg(SET_MEM_TABLE, V, tbl, 2, KIND_MEMFD)
    vu.msg(SET_CONFIG, ACK, u32(8) + u32(4) + u32(0) + b'A\0\0\0')
    vu.msg(GET_CONFIG, V, u32(4) + u32(4) + u32(0) + bytes(4))
    vu.msg(RESET_OWNER, V)
    uml_handshake(vu, 4, uml_features)
    seeds['two-regions-config-reset'] = vu.bytes()

    # Protocol errors, one per seed: each closes the connection.
    bad = {
        'bad-unknown-request': vmsg(99, V),
        'bad-version': vmsg(GET_FEATURES, 0x2),
        'bad-size': vmsg(SET_FEATURES, V, u32(1)),
        'bad-vring-index': vmsg(SET_VRING_NUM, V, u32(0x1000) + u32(16)),
        'bad-too-big': u32(SET_MEM_TABLE) + u32(V) + u32(4096),
        'bad-kick-bits': vmsg(SET_VRING_KICK, V, u64(0x200)),
    }
    for name, m in bad.items():
        vu = VU(1)
        vu.msg(SET_OWNER, V)
        vu.send(m)
        seeds[name] = vu.bytes()
    vu = VU(1)
    vu.send(vmsg(SET_VRING_CALL, V, u64(0)), 10, KIND_EVENTFD)    # > 8 fds
    vu.send(vmsg(SET_BACKEND_REQ_FD, V), 1, KIND_PIPE)
    seeds['bad-fds'] = vu.bytes()
    return seeds

# ---------------------------------------------------------------- virtq

OP_POP, OP_PUSH, OP_UNPOP, OP_NOTIFY, OP_SET_NOTIFY, OP_HAS_AVAIL, OP_DESC, \
    OP_IDESC, OP_AVAIL, OP_AVAIL_IDX, OP_RAW, OP_FLAGS, OP_USED_EVENT, \
    OP_SET_BASE, OP_REMAP = range(15)


class VQ:
    """A fuzz_virtq input: header, then ops."""

    def __init__(self, regions, lognum=4, event_idx=False, indirect=False, uva=False,
                 desc=(0, 0), avail=(0, 0x100), used=(0, 0x200), base=0):
        cfg = (len(regions) - 1) | event_idx << 3 | indirect << 4 | uva << 5
        self.out = bytearray(u8(cfg) + u8(lognum))
        for size, gap in regions:
            raw = (0x8000 | (size - 1)) if size <= 16 else size - 1
            self.out += u16(raw) + u16(gap)
        for r, off in (desc, avail, used):
            self.out += u8(r) + u16(off)
        self.out += u16(base)

    def op(self, code, *args):
        self.out += u8(code)
        for a in args:
            self.out += a

    def desc(self, i, r, off, length, flags, nxt):
        self.op(OP_DESC, u16(i), u8(r), u16(off), u16(length), u8(flags), u16(nxt))

    def idesc(self, tr, toff, i, r, off, length, flags, nxt):
        self.op(OP_IDESC, u8(tr), u16(toff), u8(i), u8(r), u16(off), u16(length),
                u8(flags), u16(nxt))

    def avail(self, head):
        self.op(OP_AVAIL, u16(head))

    def pop_push(self, length=0):
        self.op(OP_POP)
        self.op(OP_PUSH, u16(length))
        self.op(OP_NOTIFY)

    def bytes(self):
        return bytes(self.out)


def virtq_seeds():
    seeds = {}
    one = [(8192, 0)]

    v = VQ(one)
    v.desc(0, 0, 0x1000, 64, 0, 0)
    v.avail(0)
    v.pop_push(0)
    seeds['direct-one'] = v.bytes()

    v = VQ(one)
    v.desc(0, 0, 0x1000, 32, F_NEXT, 1)
    v.desc(1, 0, 0x1100, 16, F_NEXT, 2)
    v.desc(2, 0, 0x1200, 128, F_WRITE, 0)
    v.avail(0)
    v.desc(5, 0, 0x1400, 256, F_WRITE, 0)
    v.avail(5)
    v.pop_push(100)
    v.op(OP_HAS_AVAIL)
    seeds['direct-chains'] = v.bytes()

    v = VQ(one, indirect=True)
    v.idesc(0, 0x800, 0, 0, 0x1000, 40, F_NEXT, 1)
    v.idesc(0, 0x800, 1, 0, 0x1100, 8, F_NEXT, 2)
    v.idesc(0, 0x800, 2, 0, 0x1200, 512, F_WRITE, 0)
    v.desc(0, 0, 0x800, 48, F_INDIRECT, 0)
    v.avail(0)
    v.pop_push(512)
    seeds['indirect'] = v.bytes()

    # Indirect table after a direct descriptor (as Linux vhost allows).
    v = VQ(one, indirect=True)
    v.idesc(0, 0x900, 0, 0, 0x1200, 64, F_WRITE, 0)
    v.desc(0, 0, 0x1000, 16, F_NEXT, 1)
    v.desc(1, 0, 0x900, 16, F_INDIRECT, 0)
    v.avail(0)
    v.pop_push(64)
    seeds['direct-then-indirect'] = v.bytes()

    # Region 0 then seven tiny adjacent regions: one buffer spans them all.
    tiny = [(8192, 0)] + [(n, 0) for n in (1, 2, 3, 1, 4, 16, 1)]
    v = VQ(tiny)
    v.desc(0, 0, 8192 - 8, 8 + 28, 0, 0)
    v.avail(0)
    v.desc(1, 1, 0, 27, F_WRITE, 0)
    v.avail(1)
    v.pop_push(10)
    seeds['span-tiny-regions'] = v.bytes()

    # Rings in the tiny regions' neighbour, uva addresses, gaps between regions.
    v = VQ([(4096, 0), (4096, 0x100), (16, 0x1000), (2048, 0)], uva=True,
           desc=(1, 0), avail=(3, 0), used=(0, 0x800))
    v.desc(0, 2, 0, 16, F_NEXT, 1)
    v.desc(1, 0, 0x10, 100, F_WRITE, 0)
    v.avail(0)
    v.pop_push(5)
    seeds['uva-gaps'] = v.bytes()

    v = VQ(one, event_idx=True)
    for i in range(6):
        v.desc(i, 0, 0x1000 + 0x40 * i, 0x40, F_WRITE, 0)
        v.avail(i)
    v.op(OP_USED_EVENT, u16(2))
    v.op(OP_POP)
    v.op(OP_UNPOP, u8(2))
    v.op(OP_POP)
    v.op(OP_PUSH, u16(0x40))
    v.op(OP_NOTIFY)
    v.op(OP_SET_NOTIFY, u8(0))
    v.op(OP_SET_NOTIFY, u8(1))
    v.op(OP_NOTIFY)
    v.op(OP_POP)
    seeds['event-idx'] = v.bytes()

    v = VQ(one, lognum=0)
    v.op(OP_FLAGS, u16(1))
    v.desc(0, 0, 0x1000, 1, 0, 0)
    for _ in range(3):
        v.avail(0)
        v.pop_push(0)
    v.op(OP_SET_BASE, u16(0xfffe))
    v.op(OP_AVAIL_IDX, u16(0xffff))
    v.pop_push(0)
    seeds['size-one-wrap'] = v.bytes()

    v = VQ([(16384, 0), (16384, 0)], lognum=10, desc=(0, 0), avail=(1, 0), used=(1, 0x1000))
    v.desc(1023, 1, 0x3000, 1, F_NEXT, 0)
    v.desc(0, 1, 0x3001, 1, 0, 0)
    v.avail(1023)
    v.pop_push(0)
    seeds['size-1024'] = v.bytes()

    # Each a guest error the walker must reject.
    errs = {}
    v = VQ(one)
    v.desc(0, 0, 0x1000, 8, F_NEXT, 1)
    v.desc(1, 0, 0x1000, 8, F_NEXT, 0)
    errs['loop'] = v
    v = VQ(one)
    v.desc(0, 0, 0x1000, 8, F_NEXT, 99)
    errs['next-range'] = v
    v = VQ(one, indirect=True)
    v.idesc(0, 0x800, 0, 0, 0x900, 16, F_INDIRECT, 0)
    v.desc(0, 0, 0x800, 16, F_INDIRECT, 0)
    errs['nested-indirect'] = v
    v = VQ(one, indirect=True)
    v.desc(0, 0, 0x800, 20, F_INDIRECT, 0)
    errs['indirect-len'] = v
    v = VQ(one, indirect=False)
    v.desc(0, 0, 0x800, 16, F_INDIRECT, 0)
    errs['indirect-unnegotiated'] = v
    v = VQ(one)
    v.desc(0, 0, 0x1000, 8, F_WRITE | F_NEXT, 1)
    v.desc(1, 0, 0x1000, 8, 0, 0)
    errs['read-after-write'] = v
    v = VQ(one)
    v.desc(0, 0, 0xff00, 0x200, 0, 0)
    errs['outside-memory'] = v
    for name, v in errs.items():
        v.avail(0)
        v.pop_push(0)
        v.op(OP_SET_BASE, u16(0))
        v.op(OP_POP)
        seeds['err-' + name] = v.bytes()

    v = VQ(one)
    v.op(OP_AVAIL_IDX, u16(40))
    v.pop_push(0)
    seeds['err-avail-overflow'] = v.bytes()
    v = VQ(one)
    v.avail(300)
    v.pop_push(0)
    seeds['err-head-range'] = v.bytes()

    # More than 128 iovecs: 17 descriptors each spanning 8 regions.
    many = [(4096, 0)] + [(1, 0)] * 7
    v = VQ(many, lognum=5, avail=(0, 0x400), used=(0, 0x600))
    for i in range(20):
        v.desc(i, 0, 4095, 8, F_NEXT, i + 1)
    v.desc(20, 0, 4095, 8, 0, 0)
    v.avail(0)
    v.pop_push(0)
    seeds['err-too-many-iovs'] = v.bytes()
    return seeds

# ---------------------------------------------------------------- control

C_CTRL_TX, C_PORT_TX, C_POST_RX, C_HOST_WRITE, C_HOST, C_KICK, C_RESET, C_CONFIG, \
    C_CTRL_MSG, C_STOP_START, C_REMAP = range(11)
RX_PORT0, RX_CTRL, RX_PORT1, RX_PORT2, RX_PORT3 = range(5)
DEVICE_READY, PORT_ADD, PORT_REMOVE, PORT_READY, CONSOLE_PORT, RESIZE, PORT_OPEN, \
    PORT_NAME = range(8)
# act_reset bits: 1 SIZE, 2 no MULTIPORT, 4 EVENT_IDX, 8 INDIRECT, 16 no VERSION_1
FEAT_LINUX = 0
FEAT_ALL = 1 | 4 | 8


class CT:
    def __init__(self, features=FEAT_LINUX, resize_order=0):
        self.out = bytearray(u8(resize_order) + u8(features))

    def msg(self, pid, ev, val):
        self.out += u8(C_CTRL_MSG) + u32(pid) + u16(ev) + u16(val)

    def ctrl_raw(self, data, shape=0):
        self.out += u8(C_CTRL_TX) + u8(shape) + u8(len(data)) + data

    def rx(self, which, count=16, size=256):
        self.out += u8(C_POST_RX) + u8(which) + u8(count) + u8(size - 1)

    def tx(self, port, data, shape=0):
        self.out += u8(C_PORT_TX) + u8(port) + u8(shape) + u16(len(data)) + data

    def write(self, port, data):
        self.out += u8(C_HOST_WRITE) + u8(port) + u16(len(data)) + data

    def host(self, what, port, extra=b''):
        self.out += u8(C_HOST) + u8(what) + u8(port) + extra

    def raw(self, b):
        self.out += b

    def bytes(self):
        return bytes(self.out)


def probe(c, ports=(0, 1, 3)):
    """What virtio_console does at probe and when ports appear."""
    c.rx(RX_CTRL)
    c.msg(0xffffffff, DEVICE_READY, 1)
    for p in ports:
        c.rx((RX_PORT0, RX_PORT1, RX_PORT2, RX_PORT3)[p], 8, 256)
        c.msg(p, PORT_READY, 1)
    c.rx(RX_CTRL)
    c.msg(0, PORT_OPEN, 1)


def control_seeds():
    seeds = {}
    c = CT()
    probe(c)
    seeds['linux-probe'] = c.bytes()

    c = CT()
    probe(c)
    c.msg(1, PORT_OPEN, 1)
    c.host(0, 1)                            # host connects: PORT_OPEN to guest
    c.write(1, b'hello from the host')
    c.tx(1, b'hello from the guest\n')
    c.tx(0, b'console output\n', shape=2)
    c.host(4, 0, u16(132) + u16(43))        # resize the console
    c.msg(1, PORT_OPEN, 0)
    c.write(1, b'dropped: port closed')
    c.rx(RX_CTRL)
    seeds['session'] = c.bytes()

    c = CT(FEAT_ALL)
    probe(c)
    c.msg(3, PORT_OPEN, 1)
    c.tx(3, b'x' * 700, shape=4 | 3)        # indirect, 4 descriptors
    c.ctrl_raw(u32(3) + u16(PORT_OPEN) + u16(0), shape=4 | 1)
    c.write(3, b'y' * 3000)
    seeds['indirect-event-idx'] = c.bytes()

    c = CT()
    probe(c)
    c.msg(1, PORT_OPEN, 1)
    c.host(3, 1, u8(1))                     # host consumes nothing
    c.tx(1, b'held back')
    c.tx(1, b'queued behind')
    c.host(3, 1, u8(2))                     # half
    c.host(1, 1)                            # throttle
    c.host(1, 1)                            # unthrottle: offered again
    c.host(3, 1, u8(0))
    c.host(1, 1)
    c.host(1, 1)
    seeds['throttle'] = c.bytes()

    c = CT()
    probe(c)
    c.host(2, 3)                            # remove port 3
    c.host(0, 2)                            # add port 2
    c.rx(RX_CTRL)
    c.msg(2, PORT_READY, 1)
    c.msg(3, PORT_READY, 1)                 # a port that is gone
    seeds['hotplug'] = c.bytes()

    c = CT()
    probe(c)
    c.raw(u8(C_RESET) + u8(FEAT_LINUX))
    probe(c)
    c.raw(u8(C_RESET) + u8(2))              # no MULTIPORT: port 0 only
    c.rx(RX_PORT0, 4, 64)
    c.write(0, b'single port')
    c.tx(0, b'back')
    c.raw(u8(C_CONFIG) + u8(8) + u8(4) + u8(1))
    c.raw(u8(C_CONFIG) + u8(0) + u8(12) + u8(0))
    seeds['reset-single-port'] = c.bytes()

    c = CT()
    c.rx(RX_CTRL, 16, 4)                    # too small for any message
    c.msg(0xffffffff, DEVICE_READY, 1)
    c.ctrl_raw(b'\x01\x00\x00')             # short
    c.msg(7, PORT_READY, 1)                 # unknown port
    c.msg(0, 99, 1)                         # unknown event
    c.msg(0xffffffff, DEVICE_READY, 0)
    c.msg(1, PORT_READY, 0)
    c.rx(RX_CTRL, 16, 256)
    c.raw(u8(C_KICK) + u8(2))
    seeds['hostile-ctrl'] = c.bytes()

    # A chain held by a throttled port survives a ring stop/start and a
    # memory table replacement, resuming at its offset.
    c = CT()
    probe(c)
    c.msg(1, PORT_OPEN, 1)
    c.host(3, 1, u8(2))                     # half of each offer
    c.tx(1, b'0123456789abcdef' * 4)
    c.raw(u8(C_STOP_START) + u8(5))         # port 1 tx
    c.host(1, 1)
    c.host(1, 1)
    c.raw(u8(C_REMAP))
    c.host(3, 1, u8(0))
    c.host(1, 1)
    c.host(1, 1)
    c.raw(u8(C_STOP_START) + u8(2))
    c.host(6, 1, u16(300) + b'r' * 300)     # readv from a pipe
    c.host(3, 3, u8(3))                     # host side errors
    c.tx(3, b'error')
    c.host(3, 3, u8(4))                     # host side claims too much
    c.tx(3, b'overrun')
    c.host(2, 1)                            # remove port 1 holding a chain
    c.host(1, 2)                            # add a port, the device picks its id
    seeds['held-chain-stop-remap'] = c.bytes()

    c = CT(resize_order=1)
    c.rx(RX_CTRL, 4)
    c.msg(0xffffffff, DEVICE_READY, 1)      # more messages than buffers
    c.msg(0, PORT_READY, 1)
    c.host(4, 0, u16(80) + u16(24))
    c.raw(u8(C_KICK) + u8(2))
    c.rx(RX_CTRL, 16)
    seeds['ctrl-backlog'] = c.bytes()
    return seeds

# ---------------------------------------------------------------- spec


def spec_seeds():
    specs = [
        'console,backend=stdio',
        'id=5,name=org.qemu.guest_agent.0,backend=unix,path=/tmp/qga.sock',
        'name=org.test.port1,backend=unix-connect,path=/run/x.sock',
        'id=2,backend=tcp,host=::1,port=4555,buffer=64K',
        'backend=tcp,port=1',
        'name=com.example.log,backend=file,path=/var/log/g.log,input=/etc/motd',
        'backend=pty,name=tty.x',
        'id=0,console,backend=null,buffer=1M',
        'id=0,backend=stdio',
        'backend=unix',
        'name=a b,backend=null',
        'id=511,backend=null',
        'buffer=1G,backend=null',
        'console=1,backend=null',
        'path=' + 'p' * 200 + ',backend=unix',
        'backend=tcp,host=999.1.1.1,port=1',
        ',,,=,backend=null,',
        'console,backend=pty,history=1M,logfile=/var/log/c.log,logfile-timestamps=on',
        'name=org.x,backend=tcp-connect,host=::1,port=22',
        'name=org.y,backend=fd,fd=9',
        'name=org.z,backend=fd',
        'name=org.j,backend=journal,journal-priority=warning',
        'backend=null,history=3K,logfile-timestamps=on',
    ]
    seeds = {}
    for i, s in enumerate(specs):
        seeds['spec-%02d' % i] = u8(0) + s.encode()
    argvs = [
        ['--socket', '/tmp/vs.sock'],
        ['-s', '/s', '--max-ports', '4', '--port', 'console,backend=stdio',
         '--port', 'id=1,name=org.x,backend=unix,path=/tmp/p1'],
        ['--socket=/s', '-m', '511', '-p', 'backend=null', '--log-level=debug'],
        ['-s', '/s', '-l', 'warn', '-c', '/ctl', '--port', 'id=3,backend=pty'],
        ['-s', '/s', '-m', '1', '--port', 'id=1,backend=null'],
        ['-s', '/s', '--port', 'name=a,backend=null', '--port', 'name=a,backend=null'],
        ['-s', '/s', '--bogus'],
        ['-s'],
        ['-s', '/s', 'extra'],
        ['--help'],
        ['-V'],
        ['-s', '/s', '--', '-m', '3'],
        ['-s', '/s', '--instance', 'vm1', '--port', 'name=a,backend=null,logfile=/l',
         '--port', 'name=b,backend=null,logfile=/l'],
        ['--socket-fd', '5', '--port', 'name=a,backend=fd,fd=5'],
    ]
    for i, a in enumerate(argvs):
        seeds['argv-%02d' % i] = u8(1) + b'\0'.join(x.encode() for x in a)
    configs = [
        ('socket /tmp/c.sock\nmax-ports 8\n# comment\nport id=1,backend=null\n'
         'port = name=org.y,backend=unix,path=/tmp/y\n', ['--port', 'id=2,backend=null']),
        ('log-level=debug\n\n  port\tconsole,backend=stdio  \r\n', ['-s', '/s']),
        ('config=/dev/tty\nhelp\n', []),
        ('nonsense line\n', ['-s', '/s']),
    ]
    for i, (text, a) in enumerate(configs):
        t = text.encode()
        seeds['config-%02d' % i] = u8(2) + u16(len(t)) + t + \
            b'\0'.join(x.encode() for x in a)
    return seeds


def main():
    top = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(top, 'corpus')
    targets = {
        'fuzz_vhost_user': vhost_user_seeds(),
        'fuzz_virtq': virtq_seeds(),
        'fuzz_control': control_seeds(),
        'fuzz_spec': spec_seeds(),
    }
    for t, seeds in targets.items():
        d = os.path.join(out, t)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, 'seed-' + name), 'wb') as f:
                f.write(data)
        print('%s: %d seeds, %d bytes' % (t, len(seeds), sum(map(len, seeds.values()))))


if __name__ == '__main__':
    main()
