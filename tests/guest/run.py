#!/usr/bin/env python3
"""Real-guest tests for vserial: the daemon serves a virtio-console device
over vhost-user to a User-Mode Linux guest that runs the real Linux
virtio_console driver.

For each case: start vserial with the case's ports, wait for its vhost-user
socket, boot linux.uml with virtio_uml.device=SOCK:3 and the case's guest
script (tests/guest/cases/*.sh) while host-side actions run in a thread
(talking to the ports' unix sockets), then decide the verdict from the
guest's result file, the host-side checks, the daemon's exit status and its
stderr (sanitizer reports fail a case).

Prints one line per case, "PASS <tag>/<case>" or "FAIL <tag>/<case>",
followed (indented) by details. Exit status 1 if any case failed.

  tests/guest/run.py --vserial build/src/daemon/vserial [--tag guest]
                     [--out out/guest] [--jobs 2] [--timeout 60] [CASE...]
  tests/guest/run.py --list
"""

import argparse
import hashlib
import os
import random
import re
import select
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'qemu'))
TOP = os.path.dirname(os.path.dirname(HERE))
CASES_DIR = os.path.join(HERE, 'cases')
INIT = os.path.join(HERE, 'init.sh')
MIB = 1024 * 1024
BULK = 16 * MIB
SANITIZER_RE = re.compile(r'ERROR: (Address|Leak|Memory|Thread)Sanitizer|'
                          r'runtime error:|SUMMARY: \w+Sanitizer')


class Ctx:
    """Everything one case run needs: paths, the daemon, results."""

    def __init__(self, case, out, opts):
        self.case = case
        self.out = out
        self.opts = opts
        self.errors = []
        self.info = []
        self.stop = threading.Event()      # set once UML has exited
        self.daemon = None
        self.daemon_killed = False
        self.daemon_refused = None          # its exit status, if it refused to start
        self.data = {}
        self.vmm = opts.vmm
        self.vm = None                      # QEMU: the running VM (tests/guest/qemu/vm.py)
        self.vm_started = threading.Event()  # set while a QEMU runs
        self.max_ports = 31                 # the daemon's --max-ports
        self.t_start = time.monotonic()
        # sun_path is 108 bytes: keep sockets short.
        if len(out) + 16 > 100:
            self.sockdir = tempfile.mkdtemp(prefix='vsg-')
        else:
            self.sockdir = out

    def path(self, *p):
        return os.path.join(self.out, *p)

    def sock(self, name):
        return os.path.join(self.sockdir, name)

    def check(self, cond, msg):
        if not cond:
            self.errors.append(msg)
        return cond

    def grace_expired(self, grace=3.0):
        """True once UML has been gone for `grace` seconds."""
        if not self.stop.is_set():
            return False
        if 'stop_at' not in self.data:
            self.data['stop_at'] = time.monotonic()
        return time.monotonic() - self.data['stop_at'] > grace


# ---------------------------------------------------------------- helpers

def listening(path):
    """Is there a listening AF_UNIX socket bound to path? (/proc/net/unix,
    flag __SO_ACCEPTCON) Connecting to probe would take the daemon's one
    vhost-user connection."""
    try:
        with open('/proc/net/unix') as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 8 and fields[7] == path and \
                        int(fields[3], 16) & 0x10000:
                    return True
        return False
    except OSError:
        # No /proc/net/unix: settle for the socket file (bind comes just
        # before listen).
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                time.sleep(0.1)
                return True
        except OSError:
            pass
        return False


def wait_listening(ctx, path, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if listening(path):
            return True
        if ctx.daemon is not None and ctx.daemon.poll() is not None:
            return False
        if ctx.stop.is_set():
            return False
        time.sleep(0.02)
    return False


def connect(ctx, path, timeout=20):
    if not wait_listening(ctx, path, timeout):
        raise AssertionError('port socket %s is not listening' % path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    return s


def recv_some(ctx, s, maxlen, grace=3.0):
    """Up to maxlen bytes; b'' on EOF; None when the guest is gone and the
    grace period expired."""
    while True:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            try:
                return s.recv(maxlen)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                return b''
        if ctx.grace_expired(grace):
            return None


def recv_exact(ctx, s, n, grace=3.0):
    """Read exactly n bytes; returns (bytes, t_first, t_last)."""
    buf = bytearray()
    t_first = t_last = None
    while len(buf) < n:
        d = recv_some(ctx, s, min(n - len(buf), MIB), grace)
        if not d:
            break
        if t_first is None:
            t_first = time.monotonic()
        buf += d
        t_last = time.monotonic()
    return bytes(buf), t_first, t_last


def send_all(ctx, s, data, grace=3.0):
    mv = memoryview(data)
    sent = 0
    while sent < len(mv):
        _, w, _ = select.select([], [s], [], 0.2)
        if w:
            try:
                sent += s.send(mv[sent:sent + MIB])
            except BlockingIOError:
                continue
        elif ctx.grace_expired(grace):
            break
    return sent


def det_bytes(seed, n):
    return random.Random(seed).randbytes(n)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def read_file(path, default=''):
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return default


def tail(path, n):
    lines = read_file(path, '(missing)\n').splitlines()
    return lines[-n:]


def guest_times(ctx):
    try:
        t0, t1 = map(float, read_file(ctx.path('guest.times')).split())
        return t1 - t0
    except ValueError:
        return None


def mbps(nbytes, seconds):
    return nbytes / 1e6 / seconds if seconds and seconds > 0 else float('nan')


# ---------------------------------------------------------------- cases
#
# A case: name, guest script, --port specs, guest env, prepare() before the
# daemon starts, host() in a thread while the guest runs, verify() after.

class Case:
    name = None
    script = None
    expect_daemon = 'exit0'       # or 'killed', or 'refuse' (it may exit at start: no boot)
    uml_timeout_factor = 1        # times --timeout under UML (long cases)
    daemon_stdin = False          # True: a pipe (ctx.daemon.stdin), else /dev/null

    def daemon_argv(self, ctx, vserial):
        """The whole daemon command line, or None: vserial --socket
        <sockdir>/vhost.sock with ports() and daemon_args()."""
        return None

    def ports(self, ctx):
        return []

    def daemon_args(self, ctx):
        """More daemon arguments (after the --port ones)."""
        return []

    def daemon_pass_fds(self, ctx):
        """fds the daemon inherits (backend=fd, socket activation)."""
        return ()

    def env(self, ctx):
        return {}

    def prepare(self, ctx):
        pass

    def host(self, ctx):
        pass

    def verify(self, ctx):
        pass

    # Under QEMU (run.py --vmm qemu):
    vmms = ('uml',)                 # the VMMs this case runs under
    qemu_timeout_factor = 3         # TCG is slower than UML

    def qemu_args(self, ctx, boot):
        """More tests/guest/qemu/vm.py VM() arguments for this boot."""
        return {}

    def qemu_end(self, ctx, boot):
        """'poweroff': the guest script ends this QEMU run (its result is
        checked); 'host': the host side ends it (QMP quit, a kill)."""
        return 'poweroff'


class SysfsNames(Case):
    name = 'sysfs_names'
    script = 'sysfs_names.sh'
    NAMES = ['org.vserial.alpha', 'com.example.port-two', 'x']

    def ports(self, ctx):
        return ['id=%d,name=%s,backend=unix,path=%s' % (i + 1, n, ctx.sock('p%d.sock' % (i + 1)))
                for i, n in enumerate(self.NAMES)]

    def env(self, ctx):
        return {'NPORTS': len(self.NAMES)}

    def verify(self, ctx):
        want = sorted('vport0p%d %s' % (i + 1, n) for i, n in enumerate(self.NAMES))
        got = sorted(read_file(ctx.path('names')).splitlines())
        ctx.check(got == want, 'sysfs names: want %s, guest saw %s' % (want, got))


class G2HBulk(Case):
    name = 'g2h_16mib'
    script = 'g2h_bulk.sh'

    def ports(self, ctx):
        return ['id=1,name=org.vserial.bulk,backend=unix,path=' + ctx.sock('p1.sock')]

    def prepare(self, ctx):
        data = det_bytes(1, BULK)
        ctx.data['want'] = sha256(data)
        with open(ctx.path('src'), 'wb') as f:
            f.write(data)

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        got, t0, t1 = recv_exact(ctx, s, BULK)
        ctx.data['n'] = len(got)
        ctx.data['got'] = sha256(got)
        if len(got) == BULK:
            ctx.data['host_s'] = t1 - t0
            ctx.data['t_last_wall'] = time.time() - (time.monotonic() - t1)
            send_all(ctx, s, ('ACK %s\n' % ctx.data['got']).encode())
        else:
            with open(ctx.path('received'), 'wb') as f:
                f.write(got)
        # Nothing may follow the 16 MiB.
        extra = 0
        while True:
            d = recv_some(ctx, s, MIB, grace=0.5)
            if not d:
                break
            extra += len(d)
        ctx.data['extra'] = extra
        s.close()

    def verify(self, ctx):
        n = ctx.data.get('n', 0)
        ctx.check(n == BULK, 'host received %d of %d bytes' % (n, BULK))
        ctx.check(ctx.data.get('got') == ctx.data['want'],
                  'sha256 mismatch: sent %s, host got %s' % (ctx.data['want'], ctx.data.get('got')))
        ctx.check(ctx.data.get('extra', 0) == 0, '%d extra bytes after the 16 MiB' % ctx.data.get('extra', 0))
        if 'host_s' in ctx.data and ctx.vmm == 'uml':
            # End to end: the guest's clock (UML's is the host's) when dd
            # started, to the host's when the last byte arrived.
            try:
                g0 = float(read_file(ctx.path('guest.times')).split()[0])
                e2e = ctx.data['t_last_wall'] - g0
            except (ValueError, IndexError):
                e2e = None
            ctx.info.append('throughput guest->host: %.1f MB/s (16 MiB in %.3f s, guest dd start to last byte at the host; '
                            '%.1f MB/s first to last byte at the host)'
                            % (mbps(BULK, e2e), e2e or 0, mbps(BULK, ctx.data['host_s'])))
        if not ctx.errors:
            os.unlink(ctx.path('src'))


class H2GBulk(Case):
    name = 'h2g_16mib'
    script = 'h2g_bulk.sh'

    def ports(self, ctx):
        return ['id=1,name=org.vserial.bulk,backend=unix,path=' + ctx.sock('p1.sock')]

    def prepare(self, ctx):
        ctx.data['src'] = det_bytes(2, BULK)
        ctx.data['want'] = sha256(ctx.data['src'])

    def env(self, ctx):
        return {'SIZE': BULK, 'EXPECT': ctx.data['want']}

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        t0 = time.monotonic()
        ctx.data['sent'] = send_all(ctx, s, ctx.data['src'])
        ctx.data['host_s'] = time.monotonic() - t0
        # Keep the connection open until the guest is done.
        while recv_some(ctx, s, 65536, grace=0.5):
            pass
        s.close()

    def verify(self, ctx):
        ctx.check(ctx.data.get('sent') == BULK, 'host sent %s of %d bytes' % (ctx.data.get('sent'), BULK))
        line = read_file(ctx.path('dst.sha256')).split()
        ctx.check(line == [str(BULK), ctx.data['want']],
                  'guest received %s, want %d bytes with sha256 %s' % (line, BULK, ctx.data['want']))
        gs = guest_times(ctx)
        if gs:
            ctx.info.append('throughput host->guest: %.1f MB/s (16 MiB in %.3f s, guest open to last byte read)'
                            % (mbps(BULK, gs), gs))


class Hvc0Unix(Case):
    name = 'hvc0_unix'
    script = 'hvc0_write.sh'

    def ports(self, ctx):
        return ['id=0,console,backend=unix,path=' + ctx.sock('con.sock'),
                'id=1,name=org.vserial.data,backend=unix,path=' + ctx.sock('p1.sock')]

    def env(self, ctx):
        ctx.data['marker'] = 'vserial-marker-%08x' % random.getrandbits(32)
        return {'MARKER': ctx.data['marker']}

    def host(self, ctx):
        s = connect(ctx, ctx.sock('con.sock'))
        got = bytearray()
        while ctx.data['marker'].encode() not in got:
            d = recv_some(ctx, s, 65536)
            if not d:
                break
            got += d
        with open(ctx.path('console.out'), 'wb') as f:
            f.write(got)
        s.close()

    def verify(self, ctx):
        got = read_file(ctx.path('console.out'))
        ctx.check(ctx.data['marker'] in got,
                  'console client did not receive %r; got %r' % (ctx.data['marker'], got[-200:]))


class Hvc0Stdio(Case):
    name = 'hvc0_stdio'
    script = 'hvc0_write.sh'

    def ports(self, ctx):
        return ['id=0,console,backend=stdio']

    def env(self, ctx):
        ctx.data['marker'] = 'vserial-marker-%08x' % random.getrandbits(32)
        return {'MARKER': ctx.data['marker']}

    def verify(self, ctx):
        got = read_file(ctx.path('daemon.stdout'))
        ctx.check(ctx.data['marker'] in got,
                  'daemon stdout lacks %r; got %r' % (ctx.data['marker'], got[-200:]))


class Hvc0Stdin(Case):
    name = 'hvc0_stdin'
    script = 'hvc0_read.sh'
    daemon_stdin = True

    def ports(self, ctx):
        return ['id=0,console,backend=stdio']

    def env(self, ctx):
        ctx.data['marker'] = 'vserial-stdin-%08x' % random.getrandbits(32)
        return {'MARKER': ctx.data['marker']}

    def host(self, ctx):
        # Sent before the guest has even booted: the daemon holds it until
        # the guest reads /dev/hvc0.
        ctx.daemon.stdin.write((ctx.data['marker'] + '\n').encode())
        ctx.daemon.stdin.flush()

    def verify(self, ctx):
        got = read_file(ctx.path('hvc0.in'), None)
        ctx.check(got == ctx.data['marker'] + '\n', 'guest read %r from hvc0, want %r' % (got, ctx.data['marker']))


class Hvc0NoClient(Case):
    name = 'hvc0_no_client'
    script = 'hvc0_no_client.sh'

    def ports(self, ctx):
        return ['id=0,console,backend=unix,path=' + ctx.sock('con.sock')]

    def verify(self, ctx):
        ctx.check(read_file(ctx.path('alive')).strip() == 'alive',
                  'guest did not get past its console writes')


class OpenClose(Case):
    name = 'open_close'
    script = 'open_close.sh'
    PORT = 'org.vserial.oc'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.PORT, ctx.sock('p1.sock'))]

    def verify(self, ctx):
        pat = re.compile(r'port 1 \(%s\): guest (opened|closed)' % re.escape(self.PORT))
        ev = [m.group(1) for m in pat.finditer(read_file(ctx.path('daemon.log')))]
        want = ['opened', 'closed', 'opened', 'closed']
        ctx.check(ev == want, 'daemon log events for port 1: %s, want %s' % (ev, want))


class RmmodInsmod(Case):
    name = 'rmmod_insmod'
    script = 'rmmod_insmod.sh'
    SIZE = 256 * 1024

    def ports(self, ctx):
        return ['id=1,name=org.vserial.rr,backend=unix,path=' + ctx.sock('p1.sock')]

    def prepare(self, ctx):
        for k in (1, 2):
            data = det_bytes(10 + k, self.SIZE)
            ctx.data['want%d' % k] = sha256(data)
            with open(ctx.path('src.%d' % k), 'wb') as f:
                f.write(data)

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        for k in (1, 2):
            got, _, _ = recv_exact(ctx, s, self.SIZE)
            ctx.data['got%d' % k] = (len(got), sha256(got))
            if len(got) != self.SIZE:
                break
            send_all(ctx, s, ('ACK-%d %s\n' % (k, sha256(got))).encode())
        s.close()

    def verify(self, ctx):
        opened = len(re.findall(r'port 1 \(org\.vserial\.rr\): guest opened', read_file(ctx.path('daemon.log'))))
        ctx.check(opened == 2, 'daemon logged %d "guest opened" for port 1, want 2 (one per driver load)' % opened)
        for k in (1, 2):
            got = ctx.data.get('got%d' % k)
            ctx.check(got == (self.SIZE, ctx.data['want%d' % k]),
                      'round %d: host got %s, want %d bytes sha256 %s'
                      % (k, got, self.SIZE, ctx.data['want%d' % k]))


class DaemonKilled(Case):
    name = 'daemon_killed'
    script = 'daemon_killed.sh'
    expect_daemon = 'killed'
    KILL_AFTER = 4 * MIB

    def ports(self, ctx):
        return ['id=1,name=org.vserial.kill,backend=unix,path=' + ctx.sock('p1.sock')]

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        n = 0
        while n < self.KILL_AFTER:
            d = recv_some(ctx, s, MIB)
            if not d:
                break
            n += len(d)
        ctx.data['n'] = n
        if n >= self.KILL_AFTER:
            # Mid-stream: the guest's writer is blocked or busy right now.
            kill_group(ctx.daemon.pid)      # the daemon's own session
            ctx.daemon_killed = True
        s.close()

    def verify(self, ctx):
        ctx.check(ctx.daemon_killed, 'stream stopped after %d bytes, before the kill' % ctx.data.get('n', 0))
        ctx.check(read_file(ctx.path('alive')).strip() == 'alive', 'guest script did not finish')


class MultiportDuplex(Case):
    name = 'multiport_duplex'
    script = 'multiport_duplex.sh'
    SIZE = 4 * MIB

    def ports(self, ctx):
        return ['id=0,console,backend=stdio',
                'id=1,name=org.vserial.up,backend=unix,path=' + ctx.sock('p1.sock'),
                'id=2,name=org.vserial.down,backend=unix,path=' + ctx.sock('p2.sock')]

    def prepare(self, ctx):
        data = det_bytes(3, self.SIZE)
        ctx.data['want1'] = sha256(data)
        with open(ctx.path('src1'), 'wb') as f:
            f.write(data)
        ctx.data['src2'] = det_bytes(4, self.SIZE)
        ctx.data['want2'] = sha256(ctx.data['src2'])

    def env(self, ctx):
        return {'SIZE': self.SIZE, 'EXPECT2': ctx.data['want2']}

    def up(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        got, _, _ = recv_exact(ctx, s, self.SIZE)
        ctx.data['got1'] = (len(got), sha256(got))
        if len(got) == self.SIZE:
            send_all(ctx, s, ('ACK %s\n' % sha256(got)).encode())
        while recv_some(ctx, s, 65536, grace=0.5):
            pass
        s.close()

    def down(self, ctx):
        s = connect(ctx, ctx.sock('p2.sock'))
        ctx.data['sent2'] = send_all(ctx, s, ctx.data['src2'])
        while recv_some(ctx, s, 65536, grace=0.5):
            pass
        s.close()

    def host(self, ctx):
        errs = []

        def wrap(fn):
            try:
                fn(ctx)
            except Exception as e:  # noqa: BLE001
                errs.append('%s: %s' % (type(e).__name__, e))
        ts = [threading.Thread(target=wrap, args=(f,), daemon=True) for f in (self.up, self.down)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        ctx.errors += errs

    def verify(self, ctx):
        ctx.check(ctx.data.get('got1') == (self.SIZE, ctx.data['want1']),
                  'port 1: host got %s, want %d bytes sha256 %s' % (ctx.data.get('got1'), self.SIZE, ctx.data['want1']))
        ctx.check(ctx.data.get('sent2') == self.SIZE, 'port 2: host sent %s bytes' % ctx.data.get('sent2'))
        line = read_file(ctx.path('dst2.sha256')).split()
        ctx.check(line == [str(self.SIZE), ctx.data['want2']], 'port 2: guest got %s' % line)
        con = read_file(ctx.path('daemon.stdout'))
        n = len(re.findall(r'console line \d+ while both ports stream', con))
        ctx.check(n == 50, 'console: %d of 50 lines on the daemon stdout' % n)
        if not ctx.errors:
            os.unlink(ctx.path('src1'))


class HostReconnect(Case):
    """Client A sends message-1 and leaves; the guest reads it and then
    end of file; then client B sends message-2 and leaves, and the guest
    reads that and end of file.

    B connects only once the guest has seen A's end of file ($OUT/g.eof1).
    The end of file between two clients is not a mark in the byte stream:
    the guest's read() returns 0 when the port has no data and the host
    side is not connected (virtio_console.c port_fops_read(): the
    PORT_OPEN state at that moment). If B is already connected when the
    reader next looks (the guest's control work and its reader not
    scheduled between PORT_OPEN 0 and 1, as under load), the reader sees
    message-1 and message-2 with no end of file between them. That is
    what made this case flaky (3 runs in 11 under load, with the sleep of
    0.5 s it had here), with the old daemon and the new one alike, and
    with QEMU's own chardevs as well: no backend can make a guest see a
    state it was not scheduled to see. A protocol that needs a boundary
    between host clients has to make one itself."""
    name = 'host_reconnect'
    script = 'host_reconnect.sh'

    def ports(self, ctx):
        return ['id=1,name=org.vserial.rc,backend=unix,path=' + ctx.sock('p1.sock')]

    def host(self, ctx):
        a = connect(ctx, ctx.sock('p1.sock'))
        # Send only once the guest has the port open (the daemon says so).
        while 'port 1 (org.vserial.rc): guest opened' not in read_file(ctx.path('daemon.log')):
            if ctx.stop.is_set():
                raise AssertionError('the guest never opened the port')
            time.sleep(0.05)
        send_all(ctx, a, b'message-1\n')
        a.close()
        # Only once the guest has seen the end of file: see the docstring.
        while not os.path.exists(ctx.path('g.eof1')):
            if ctx.stop.is_set():
                raise AssertionError('the guest never saw the end of file of round 1')
            time.sleep(0.02)
        b = connect(ctx, ctx.sock('p1.sock'))
        send_all(ctx, b, b'message-2\n')
        b.close()

    def verify(self, ctx):
        for k in (1, 2):
            got = read_file(ctx.path('got.%d' % k), None)
            ctx.check(got == 'message-%d\n' % k, 'guest read %r in round %d, want %r' % (got, k, 'message-%d\n' % k))


CASES = [G2HBulk(), H2GBulk(), MultiportDuplex(), DaemonKilled(), RmmodInsmod(),
         HostReconnect(), SysfsNames(), OpenClose(), Hvc0Unix(), Hvc0Stdio(),
         Hvc0Stdin(), Hvc0NoClient()]
# The control socket's cases (vserialctl): tests/guest/ctl_cases.py
import ctl_cases  # noqa: E402
CASES += ctl_cases.cases(sys.modules[__name__])
# Backends, reconnects, a VMM restart, 31 ports, consoles: tests/guest/data_cases.py
import data_cases  # noqa: E402
CASES += data_cases.cases(sys.modules[__name__])
import fault_cases  # noqa: E402  (disk full, stalled/reset peers, a VMM cut mid-message)
CASES += fault_cases.cases(sys.modules[__name__])
import host_cases  # noqa: E402  (history, logfile, tcp-connect, fd, journal, metrics)
CASES += host_cases.cases(sys.modules[__name__])
import conn_cases  # noqa: E402  (host clients: reconnects, waiting, clients=N, unplug/plug)
CASES += conn_cases.cases(sys.modules[__name__])
import qemu_cases  # noqa: E402  (which of these run under QEMU too; QEMU's own cases)
CASES += qemu_cases.cases(sys.modules[__name__], CASES)


# ---------------------------------------------------------------- runner

LIVE = set()    # child processes to kill if the runner itself is stopped


def kill_group(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def on_signal(signum, _frame):
    for p in list(LIVE):
        if p.poll() is None:
            kill_group(p.pid)
    sys.stderr.write('run.py: stopped by signal %d\n' % signum)
    os._exit(128 + signum)


def boot_uml(ctx, boot, sfx, genv, deadline):
    """One linux.uml run of the case's script; its exit status, or None
    when it was killed at the deadline."""
    opts, case, out = ctx.opts, ctx.case, ctx.out
    uml = shutil.which(opts.uml)
    if not uml:
        raise AssertionError('%s not found (apt-get install user-mode-linux)' % opts.uml)
    tmp = ctx.path('tmp')
    os.makedirs(tmp, exist_ok=True)
    uargv = [uml, 'mem=128M', 'root=/dev/root', 'rootfstype=hostfs', 'rootflags=/', 'rw',
             'con=null', 'con0=fd:0,fd:1', 'uml_dir=' + ctx.path('umldir'),
             'init=' + INIT, 'virtio_uml.device=%s:3' % ctx.sock('vhost.sock'),
             'UMLTEST=' + os.path.join(CASES_DIR, case.script),
             'UMLRESULT=' + ctx.path('result' + sfx), 'OUT=' + out]
    uargv += ['%s=%s' % kv for kv in genv.items()]
    if getattr(case, 'boots', 1) > 1:
        uargv.append('BOOT=%d' % boot)
    uenv = dict(os.environ, TMPDIR=tmp, TMP=tmp, TEMP=tmp)
    with open(ctx.path('uml%s.cmd' % sfx), 'w') as f:
        f.write(' '.join(uargv) + '\n')
    with open(ctx.path('uml%s.log' % sfx), 'wb') as ul:
        up = subprocess.Popen(uargv, stdin=subprocess.DEVNULL, stdout=ul,
                              stderr=subprocess.STDOUT, env=uenv, cwd=out,
                              start_new_session=True)
        LIVE.add(up)
    rc = None
    try:
        rc = up.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        # SIGTERM first: UML halts cleanly if it still can, flushing its log.
        kill_group(up.pid, signal.SIGTERM)
        try:
            up.wait(timeout=3)
        except subprocess.TimeoutExpired:
            kill_group(up.pid)
            up.wait()
        ctx.errors.append('guest timed out after %.0f s (UML killed)' % (time.monotonic() - ctx.t_start))
    finally:
        kill_group(up.pid)  # UML helpers, if any are left
        LIVE.discard(up)
    return rc


def guest_env_file(ctx, boot, sfx, genv):
    """$OUT/.guest.env, read by the QEMU guest's init (tests/guest/qemu/init.sh):
    what the UML guest gets on its kernel command line. The case scripts are
    copied to $OUT/.cases (the guest sees only $OUT)."""
    cdir = ctx.path('.cases')
    if not os.path.isdir(cdir):
        shutil.copytree(CASES_DIR, cdir)
    env = {'UMLTEST': os.path.join(cdir, ctx.case.script), 'UMLRESULT': ctx.path('result' + sfx),
           'OUT': ctx.out, 'VMM': 'qemu'}
    env.update(genv)
    if getattr(ctx.case, 'boots', 1) > 1:
        env['BOOT'] = boot
    with open(ctx.path('.guest.env'), 'w') as f:
        for k, v in env.items():
            f.write('export %s=%s\n' % (k, shlex.quote(str(v))))


def boot_qemu(ctx, boot, sfx, genv, deadline):
    """One QEMU run of the case's script (ctx.vm while it runs); QEMU's exit
    status, or None when it was killed at the deadline. The case may change
    the QEMU (Case.qemu_args) or end it itself (Case.qemu_end)."""
    import vm as qvm    # tests/guest/qemu
    qemu = qvm.find_qemu()      # raises NoQemu: the runner reports it
    gdir = ctx.opts.guest_dir
    guest_env_file(ctx, boot, sfx, genv)
    for f in ('.gboot',):
        try:
            os.unlink(ctx.path(f))
        except FileNotFoundError:
            pass
    kw = dict(vs_sock=ctx.sock('vhost.sock'), max_ports=ctx.max_ports)
    kw.update(ctx.case.qemu_args(ctx, boot))
    v = qvm.VM(qemu, gdir, ctx.out, ctx.sockdir, ctx.path('qemu%s.log' % sfx), tag='q%d' % boot, **kw)
    v.live = LIVE
    ctx.vm = v
    try:
        v.start()
        ctx.vm_started.set()
        rc = v.wait(deadline - time.monotonic())
        if rc is None:
            ctx.errors.append('guest timed out after %.0f s (QEMU killed)' % (time.monotonic() - ctx.t_start))
        return rc
    finally:
        v.stop()
        ctx.vm_started.clear()
        for p in (v.proc, v.fsd):
            LIVE.discard(p)


class DaemonRefused(Exception):
    """The daemon exited at start, as the case expected (expect_daemon =
    'refuse'): there is nothing to boot."""


def start_daemon(ctx):
    opts, case = ctx.opts, ctx.case
    vserial = os.path.abspath(opts.vserial) if opts.vserial else ''
    if not (vserial and os.access(vserial, os.X_OK)):
        raise AssertionError('vserial binary not found: %r' % opts.vserial)
    vsock = ctx.sock('vhost.sock')
    argv = case.daemon_argv(ctx, vserial)
    if argv is None:
        argv = [vserial, '--socket', vsock, '--log-level', opts.log_level]
        for spec in case.ports(ctx):
            argv += ['--port', spec]
        argv += case.daemon_args(ctx)
    else:
        vsock = argv[argv.index('--socket') + 1]
    if '--max-ports' in argv:
        ctx.max_ports = int(argv[argv.index('--max-ports') + 1])
    with open(ctx.path('daemon.cmd'), 'w') as f:
        f.write(' '.join(argv) + '\n')
    denv = dict(os.environ)
    denv.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=0:halt_on_error=1')
    denv.setdefault('UBSAN_OPTIONS', 'halt_on_error=1:print_stacktrace=1')
    with open(ctx.path('daemon.stdout'), 'wb') as so, \
            open(ctx.path('daemon.log'), 'wb') as se:
        stdin = subprocess.PIPE if case.daemon_stdin else subprocess.DEVNULL
        ctx.daemon = subprocess.Popen(argv, stdin=stdin, stdout=so,
                                      stderr=se, env=denv, cwd=ctx.out,
                                      start_new_session=True,
                                      pass_fds=case.daemon_pass_fds(ctx))
        LIVE.add(ctx.daemon)
    if not wait_listening(ctx, vsock, 20):
        if case.expect_daemon == 'refuse' and ctx.daemon.poll() is not None:
            ctx.daemon_refused = ctx.daemon.returncode
            raise DaemonRefused()
        raise AssertionError('vhost-user socket %s not listening (daemon exit status %s)'
                             % (vsock, ctx.daemon.poll()))


def stop_daemon(ctx):
    """The daemon: still running (unless killed on purpose), SIGTERM -> exit 0."""
    d = ctx.daemon
    if d is None:
        return
    if (ctx.case.expect_daemon == 'killed' and ctx.daemon_killed) or ctx.daemon_refused is not None:
        d.wait()
    elif d.poll() is not None:
        # Exiting once the VMM has gone is fine, if it is a clean exit.
        ctx.check(d.returncode == 0, 'daemon died with status %s during the test' % d.returncode)
    else:
        # To its process group, so that a wrapper (strace -f, a sandbox)
        # passes it on.
        kill_group(d.pid, signal.SIGTERM)
        try:
            rc = d.wait(timeout=15)
            ctx.check(rc == 0, 'daemon exit status %s after SIGTERM, want 0' % rc)
        except subprocess.TimeoutExpired:
            kill_group(d.pid)
            d.wait()
            ctx.errors.append('daemon did not exit within 15 s of SIGTERM')
    kill_group(d.pid)       # anything the daemon (or a wrapper) left behind
    LIVE.discard(d)
    if d.stdin:
        try:
            d.stdin.close()
        except OSError:
            pass
    log = read_file(ctx.path('daemon.log'))
    m = SANITIZER_RE.search(log)
    ctx.check(not m, 'sanitizer report in the daemon log: %r' % (m.group(0) if m else ''))


def check_boot(ctx, boot, sfx, rc, pre):
    """The verdict of one guest run: a clean exit, the script's status 0, no
    "guest: FAIL" line in the guest's log."""
    vlog = ctx.path('%s%s.log' % (ctx.opts.vmm, sfx))
    end = ctx.case.qemu_end(ctx, boot) if ctx.opts.vmm == 'qemu' else 'poweroff'
    if ctx.opts.vmm == 'uml':
        # Seen once in some 40 runs here: the UML host process gets SIGABRT after
        # the guest has halted, whatever the device did. The guest finished
        # and powered off; that is what this check is about.
        if rc == -signal.SIGABRT and 'reboot: System halted' in read_file(vlog):
            ctx.info.append(pre + 'linux.uml aborted after the guest halted (UML itself; accepted)')
            return
        ctx.check(rc == 0, pre + 'linux.uml exit status %s, want 0 (clean poweroff)' % rc)
    else:
        ctx.check(rc == 0, pre + 'QEMU exit status %s, want 0' % rc)
    gfail = [pre + ln for ln in read_file(vlog).splitlines() if 'guest: FAIL' in ln]
    ctx.errors += gfail
    if end != 'poweroff':
        return              # the case ended this QEMU before the script did
    res = read_file(ctx.path('result' + sfx), None)
    if res is None:
        ctx.errors.append(pre + 'guest wrote no result (crashed or hung)')
    else:
        ctx.check(res.strip() == '0', pre + 'guest script exit status %s' % res.strip())


def run_case(case, opts):
    name = '%s/%s' % (opts.tag, case.name)
    out = os.path.abspath(os.path.join(opts.out, case.name))
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    ctx = Ctx(case, out, opts)
    ctx.t_start = t_start = time.monotonic()
    deadline = t_start + opts.timeout * (case.qemu_timeout_factor if opts.vmm == 'qemu'
                                         else case.uml_timeout_factor)
    hthread = None
    # A case may boot the guest more than once against the same daemon
    # (Case.boots, default 1): boot 1 writes result, uml.log and uml.cmd,
    # boot k > 1 result.k, uml.k.log and uml.k.cmd, and gets BOOT=k
    # (qemu.log ... under QEMU).
    nboots = getattr(case, 'boots', 1)
    booted = []     # (boot, file suffix, the VMM's exit status)
    try:
        if opts.vmm == 'qemu' and opts.no_qemu:
            raise AssertionError(opts.no_qemu)
        case.prepare(ctx)
        genv = case.env(ctx)
        start_daemon(ctx)

        def host_body():
            try:
                case.host(ctx)
            except Exception as e:   # noqa: BLE001 - reported as a failure
                ctx.errors.append('host side: %s: %s' % (type(e).__name__, e))
                with open(ctx.path('host.err'), 'w') as f:
                    traceback.print_exc(file=f)
        hthread = threading.Thread(target=host_body, daemon=True)
        hthread.start()

        vsock = ctx.sock('vhost.sock')
        for boot in range(1, nboots + 1):
            sfx = '' if boot == 1 else '.%d' % boot
            ctx.data['boot'] = boot
            if boot > 1 and not wait_listening(ctx, vsock, 20):
                raise AssertionError('vhost-user socket %s not listening for boot %d (daemon exit status %s)'
                                     % (vsock, boot, ctx.daemon.poll()))
            boot_fn = boot_qemu if opts.vmm == 'qemu' else boot_uml
            rc = boot_fn(ctx, boot, sfx, genv, deadline)
            if rc is None:
                break
            booted.append((boot, sfx, rc))
    except DaemonRefused:
        nboots = 0
    except AssertionError as e:
        ctx.errors.append(str(e))
    except Exception as e:      # noqa: BLE001
        ctx.errors.append('harness: %s: %s' % (type(e).__name__, e))
        ctx.errors.append(traceback.format_exc())
    finally:
        ctx.stop.set()
        if hthread is not None:
            hthread.join(timeout=15)
            if hthread.is_alive():
                ctx.errors.append('host side still running 15 s after the guest ended')

    stop_daemon(ctx)
    for boot, sfx, rc in booted:
        check_boot(ctx, boot, sfx, rc, 'boot %d: ' % boot if nboots > 1 else '')
    if len(booted) == nboots and (booted or ctx.daemon_refused is not None):
        try:
            case.verify(ctx)
        except Exception as e:  # noqa: BLE001
            ctx.errors.append('verify: %s: %s' % (type(e).__name__, e))

    if ctx.sockdir != out:
        shutil.rmtree(ctx.sockdir, ignore_errors=True)
    shutil.rmtree(ctx.path('umldir'), ignore_errors=True)
    shutil.rmtree(ctx.path('tmp'), ignore_errors=True)

    ok = not ctx.errors
    secs = time.monotonic() - t_start
    lines = ['%s %s' % ('PASS' if ok else 'FAIL', name)]
    lines += ['    %s' % i for i in ctx.info]
    lines.append('    (%.1f s, output in %s)' % (secs, out))
    if not ok:
        for e in ctx.errors:
            lines += ['    error: ' + ln for ln in str(e).rstrip().splitlines()]
        lines.append('    --- daemon.log (last 30 lines) ---')
        lines += ['    | ' + ln for ln in tail(ctx.path('daemon.log'), 30)]
        for boot in range(1, nboots + 1):
            sfx = '' if boot == 1 else '.%d' % boot
            for f in ('%s%s.log' % (opts.vmm, sfx), 'qemu%s.log.stderr' % sfx):
                if (boot == 1 and f.endswith('.log')) or os.path.exists(ctx.path(f)):
                    lines.append('    --- %s (last 40 lines) ---' % f)
                    lines += ['    | ' + ln for ln in tail(ctx.path(f), 40)]
    with open(ctx.path('verdict'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return ok, lines


def qemu_setup(opts):
    """--vmm qemu: find QEMU and build (or find) the guest. Returns None, or
    why the QEMU cases cannot run."""
    import vm as qvm    # tests/guest/qemu
    try:
        opts.qemu = qvm.find_qemu()
    except qvm.NoQemu as e:
        return str(e)
    try:
        opts.guest_dir = qvm.guest()
    except SystemExit:
        return 'the QEMU guest could not be built (tests/guest/qemu/build_guest.py, output above)'
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--vserial', default=os.path.join(TOP, 'build/src/daemon/vserial'),
                    help='the daemon binary (default build/src/daemon/vserial)')
    ap.add_argument('--vmm', choices=('uml', 'qemu'), default='uml',
                    help='the guest runs under User-Mode Linux (default) or QEMU (TCG)')
    ap.add_argument('--uml', default='linux.uml')
    ap.add_argument('--out', default=None, help='output dir (default out/<tag>)')
    ap.add_argument('--tag', default=None, help='prefix of the case names (default guest, or qemu)')
    ap.add_argument('--jobs', '-j', type=int, default=2)
    ap.add_argument('--timeout', type=float, default=60,
                    help='seconds per case (times Case.qemu_timeout_factor under QEMU)')
    ap.add_argument('--log-level', default='info')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('cases', nargs='*')
    opts = ap.parse_args()
    if opts.tag is None:
        opts.tag = 'guest' if opts.vmm == 'uml' else 'qemu'
    opts.no_qemu = None

    mine = [c for c in CASES if opts.vmm in c.vmms]
    if opts.list:
        for c in mine:
            print(c.name)
        return 0
    cases = mine
    if opts.cases:
        known = {c.name: c for c in mine}
        bad = [n for n in opts.cases if n not in known]
        if bad:
            ap.error('unknown %s case(s): %s (see --list)' % (opts.vmm, ' '.join(bad)))
        cases = [known[n] for n in opts.cases]
    if opts.out is None:
        opts.out = os.path.join(TOP, 'out', opts.tag)
    os.makedirs(opts.out, exist_ok=True)

    if opts.vmm == 'qemu':
        opts.no_qemu = qemu_setup(opts)
        if opts.no_qemu and os.environ.get('CI') != 'true':
            # Reported, not counted: without CI a missing QEMU is a skip.
            print('SKIP %s: %d QEMU cases not run: %s' % (opts.tag, len(cases), opts.no_qemu), flush=True)
            return 0
        # The longest first: two at a time finish together.
        cases = sorted(cases, key=lambda c: -getattr(c, 'qemu_cost', 1))

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as ex:
        futs = [ex.submit(run_case, c, opts) for c in cases]
        for fu in as_completed(futs):
            ok, lines = fu.result()
            failed += not ok
            print('\n'.join(lines), flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
