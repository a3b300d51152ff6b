"""A tiny VMM + guest driver in Python for the control-socket tests.

It connects to vserial's vhost-user socket as a frontend (QEMU-like message
order, PROTOCOL_FEATURES + CONFIG, no REPLY_ACK), shares guest memory in a
memfd, lays out split virtqueues in it, and plays the guest side of the
virtio-console multiport control protocol the way Linux virtio_console does:
DEVICE_READY, PORT_READY for each PORT_ADD, PORT_OPEN on open/close, hvc
opens a console port on CONSOLE_PORT, rx buffers of 4096 bytes.

A background thread services the rings every few milliseconds (a real
guest would take interrupts; polling the used rings is simpler and enough
here). python3 stdlib only; x86-64/aarch64 little-endian hosts.
"""

import mmap
import os
import socket
import struct
import threading
import time

# vhost-user requests
GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE = 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE = 8, 9, 10
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES = 15, 16
SET_VRING_ENABLE = 18
GET_CONFIG = 24

F_MULTIPORT = 1
F_INDIRECT_DESC = 28
F_PROTOCOL_FEATURES = 30
F_VERSION_1 = 32
PF_CONFIG = 9

# console control events
DEVICE_READY, PORT_ADD, PORT_REMOVE, PORT_READY = 0, 1, 2, 3
CONSOLE_PORT, RESIZE, PORT_OPEN, PORT_NAME = 4, 5, 6, 7

DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4
QSIZE = 64
BUF = 4096
GPA = 0x40000000
MEM = 16 << 20


def rxq(pid):
    return 0 if pid == 0 else 2 * pid + 2


def txq(pid):
    return 1 if pid == 0 else 2 * pid + 3


class VQ:
    def __init__(self, g, q, writable):
        self.g, self.q, self.writable = g, q, writable
        self.n = n = g.qsize
        self.desc = g.alloc(16 * n, 4096)
        self.avail = g.alloc(6 + 2 * n, 4096)
        self.used = g.alloc(6 + 8 * n, 4096)
        self.bufs = [g.alloc(BUF, 64) for _ in range(n)]
        self.free = list(range(n))
        self.foreign = set()    # heads put_avail() made available
        self.avail_idx = 0
        self.last_used = 0
        self.kick = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.call = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def post(self, data=None):
        """Post one buffer: a receive buffer, or @data to send. Returns False
        when the ring is full."""
        if not self.free:
            return False
        head = self.free.pop(0)
        gpa = self.bufs[head]
        if data is None:
            ln, flags = BUF, DESC_F_WRITE
        else:
            ln, flags = len(data), 0
            self.g.write(gpa, data)
        self.g.write(self.desc + 16 * head, struct.pack('<QIHH', gpa, ln, flags, 0))
        self.g.write(self.avail + 4 + 2 * (self.avail_idx % self.n), struct.pack('<H', head))
        self.avail_idx = (self.avail_idx + 1) & 0xffff
        self.g.write(self.avail + 2, struct.pack('<H', self.avail_idx))
        return True

    def put_desc(self, i, gpa, ln, flags=0, nxt=0):
        """Write descriptor @i as a hostile guest may: anything goes."""
        self.g.write(self.desc + 16 * i, struct.pack('<QIHH', gpa, ln, flags, nxt))

    def put_avail(self, heads):
        """Make @heads available (no kick), whatever they point at. The
        caller owns these heads: the fake forgets them."""
        for h in heads:
            if h in self.free:
                self.free.remove(h)
            self.foreign.add(h)
            self.g.write(self.avail + 4 + 2 * (self.avail_idx % self.n), struct.pack('<H', h))
            self.avail_idx = (self.avail_idx + 1) & 0xffff
        self.g.write(self.avail + 2, struct.pack('<H', self.avail_idx))

    def notify(self):
        os.eventfd_write(self.kick, 1)

    def take_used(self):
        """[(head, len, bytes-or-None)] that the device returned."""
        out = []
        idx = struct.unpack('<H', self.g.read(self.used + 2, 2))[0]
        while self.last_used != idx:
            head, ln = struct.unpack('<II', self.g.read(self.used + 4 + 8 * (self.last_used % self.n), 8))
            self.last_used = (self.last_used + 1) & 0xffff
            if head >= self.n or head in self.foreign or head in self.free:
                continue        # one of put_avail()'s, or a hostile repeat
            data = self.g.read(self.bufs[head], ln) if self.writable else None
            self.free.append(head)
            out.append((head, ln, data))
        return out


class Port:
    def __init__(self, pid):
        self.id = pid
        self.present = True
        self.console = False
        self.name = ''
        self.host_open = False
        self.guest_open = False
        self.rx = bytearray()
        self.resizes = []       # (cols, rows) in arrival order


class FakeGuest:
    """@qsize: entries of every ring; @rx_fill: receive buffers posted for
    each port the device adds; @mem: bytes of guest memory; @features:
    feature bits to ack besides MULTIPORT and VERSION_1."""

    def __init__(self, sock_path, timeout=10, qsize=QSIZE, rx_fill=16, mem=MEM, features=0):
        self.qsize, self.rx_fill, self.mem_size = qsize, rx_fill, mem
        self.features = features
        self.lock = threading.RLock()
        self.ports = {}
        self.ctrl_log = []      # (event, id, value) from the device
        self.ctrl_rx_hold = False   # True: take control messages, post no new buffers
        self.error = None
        self.sock = self._connect(sock_path, timeout)
        self.memfd = os.memfd_create('fakeguest', os.MFD_CLOEXEC)
        os.ftruncate(self.memfd, mem)
        self.mem = mmap.mmap(self.memfd, mem)
        self.next = 0
        self._boot()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _connect(path, timeout):
        """Callers wait for the socket file, which bind() makes just before
        listen(): until then a connect is refused (seen under load)."""
        end = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(path)
                return s
            except (ConnectionRefusedError, FileNotFoundError):
                s.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.01)

    # ---- memory
    def alloc(self, n, align):
        self.next = (self.next + align - 1) // align * align
        gpa = GPA + self.next
        self.next += n
        assert self.next <= self.mem_size
        return gpa

    def write(self, gpa, b):
        o = gpa - GPA
        self.mem[o:o + len(b)] = b

    def read(self, gpa, n):
        o = gpa - GPA
        return bytes(self.mem[o:o + n])

    # ---- vhost-user
    def _send(self, req, payload=b'', fds=()):
        msg = struct.pack('<III', req, 1, len(payload)) + payload
        if fds:
            socket.send_fds(self.sock, [msg], list(fds))
        else:
            self.sock.sendall(msg)

    def _reply(self, req):
        hdr = self._recv(12)
        r, flags, size = struct.unpack('<III', hdr)
        if r != req or flags != 0x5:
            raise RuntimeError('bad reply to %d: req %d flags %#x' % (req, r, flags))
        return self._recv(size)

    def _recv(self, n):
        b = b''
        while len(b) < n:
            d = self.sock.recv(n - len(b))
            if not d:
                raise RuntimeError('vhost-user socket closed')
            b += d
        return b

    def _u64(self, req):
        self._send(req)
        return struct.unpack('<Q', self._reply(req))[0]

    def _boot(self):
        self._send(SET_OWNER)
        feats = self._u64(GET_FEATURES)
        want = (1 << F_MULTIPORT) | (1 << F_VERSION_1) | (1 << F_PROTOCOL_FEATURES) | self.features
        assert feats & want == want, hex(feats)
        pf = self._u64(GET_PROTOCOL_FEATURES)
        self._send(SET_PROTOCOL_FEATURES, struct.pack('<Q', pf & (1 << PF_CONFIG)))
        self._send(SET_FEATURES, struct.pack('<Q', want))
        self._send(GET_CONFIG, struct.pack('<III', 0, 12, 0) + bytes(12))
        cfg = self._reply(GET_CONFIG)
        self.cols, self.rows, self.max_ports = struct.unpack('<HHI', cfg[12:20])
        self.nvqs = 2 * (self.max_ports + 1)
        self._send(SET_MEM_TABLE, struct.pack('<II', 1, 0) + struct.pack('<QQQQ', GPA, self.mem_size, GPA, 0),
                   [self.memfd])
        self.vqs = [VQ(self, q, q % 2 == 0) for q in range(self.nvqs)]
        for vq in self.vqs:
            q = vq.q
            self._send(SET_VRING_CALL, struct.pack('<Q', q), [vq.call])
            self._send(SET_VRING_NUM, struct.pack('<II', q, self.qsize))
            self._send(SET_VRING_BASE, struct.pack('<II', q, 0))
            self._send(SET_VRING_ADDR, struct.pack('<IIQQQQ', q, 0, vq.desc, vq.used, vq.avail, 0))
        for vq in self.vqs:
            self._send(SET_VRING_KICK, struct.pack('<Q', vq.q), [vq.kick])
            self._send(SET_VRING_ENABLE, struct.pack('<II', vq.q, 1))
        # The driver: control rx buffers, then DEVICE_READY.
        for _ in range(32):
            self.vqs[2].post()
        self.vqs[2].notify()
        self._ctrl(0xffffffff, DEVICE_READY, 1)

    # ---- the driver
    def _ctrl(self, pid, event, value):
        with self.lock:
            while not self.vqs[3].post(struct.pack('<IHH', pid, event, value)):
                self._service()
            self.vqs[3].notify()

    def _service(self):
        # A kick only with new buffers: an idle guest costs the device nothing.
        got = self.vqs[2].take_used()
        for _, _, d in got:
            self._on_ctrl(d)
            if not self.ctrl_rx_hold:
                self.vqs[2].post()
        if got and not self.ctrl_rx_hold:
            self.vqs[2].notify()
        for p in list(self.ports.values()):
            q = self.vqs[rxq(p.id)]
            got = q.take_used()
            for _, _, d in got:
                p.rx += d
                q.post()
            if got:
                q.notify()
        for q in range(1, self.nvqs, 2):
            self.vqs[q].take_used()

    def _on_ctrl(self, d):
        pid, event, value = struct.unpack('<IHH', d[:8])
        self.ctrl_log.append((event, pid, value))
        if event == PORT_ADD:
            p = self.ports[pid] = Port(pid)
            q = self.vqs[rxq(pid)]
            for _ in range(self.rx_fill):
                q.post()
            q.notify()
            self._ctrl(pid, PORT_READY, 1)
            return
        p = self.ports.get(pid)
        if p is None:
            self.error = 'control event %d for unknown port %d' % (event, pid)
            return
        if event == PORT_REMOVE:
            p.present = False
            del self.ports[pid]
        elif event == CONSOLE_PORT:
            p.console = True
            self._ctrl(pid, PORT_OPEN, 1)     # hvc opens it
            p.guest_open = True
        elif event == RESIZE:
            p.resizes.append(struct.unpack('<HH', d[8:12]))
        elif event == PORT_OPEN:
            p.host_open = bool(value)
        elif event == PORT_NAME:
            p.name = d[8:].decode()

    def _run(self):
        while not self.stop.is_set():
            with self.lock:
                try:
                    self._service()
                except Exception as e:      # noqa: BLE001
                    self.error = repr(e)
                    return
            time.sleep(0.002)

    # ---- what a test does
    def message(self, req, payload=b'', fds=()):
        """Send a vhost-user message of our own (no reply is read)."""
        with self.lock:
            self._send(req, payload, fds)

    def ctrl(self, pid, event, value):
        """Send one control message, whatever the protocol says."""
        self._ctrl(pid, event, value)

    def ctrl_rx_resume(self):
        """Post control-rx buffers again after ctrl_rx_hold."""
        with self.lock:
            self.ctrl_rx_hold = False
            while self.vqs[2].post():
                pass
            self.vqs[2].notify()

    def ctrl_count(self, event, pid=None):
        with self.lock:
            return sum(1 for e, p, _ in self.ctrl_log if e == event and (pid is None or p == pid))

    def wait(self, cond, timeout=10, what='condition'):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if cond():
                    return True
            time.sleep(0.005)
        raise AssertionError('fake guest: timed out waiting for %s' % what)

    def port(self, pid):
        with self.lock:
            return self.ports.get(pid)

    def open(self, pid):
        self._ctrl(pid, PORT_OPEN, 1)
        with self.lock:
            self.ports[pid].guest_open = True

    def close(self, pid):
        self._ctrl(pid, PORT_OPEN, 0)
        with self.lock:
            self.ports[pid].guest_open = False

    def send(self, pid, data):
        q = self.vqs[txq(pid)]
        for i in range(0, len(data), BUF):
            with self.lock:
                while not q.post(data[i:i + BUF]):
                    self._service()
                q.notify()

    def take(self, pid):
        with self.lock:
            p = self.ports[pid]
            b = bytes(p.rx)
            p.rx.clear()
            return b

    def shutdown(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        for vq in getattr(self, 'vqs', []):
            os.close(vq.kick)
            os.close(vq.call)
        self.mem.close()
        os.close(self.memfd)
