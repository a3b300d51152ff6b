"""Real-guest cases under QEMU (run.py --vmm qemu; QEMU 10.2+, TCG).

Loaded by run.py: share(all_cases) marks the UML cases that also run under
QEMU (the same case classes and guest scripts, SHARED below); CASES are the
cases only QEMU has, most of them driven through QMP:

  stopcont_g2h     QMP stop/cont three times during a 16 MiB guest->host
                   stream (g2h_bulk.sh): byte-exact, and nothing arrives
                   while the guest is stopped
  stopcont_h2g     the same during a 16 MiB host->guest stream (h2g_bulk.sh)
  system_reset     QMP system_reset after a first exchange: the port is
                   offered again with its name, data both ways again, the
                   host client kept (reset_reboot.sh)
  guest_reboot     the same with "reboot -f" in the guest
  qemu_restart     QMP quit, then a new QEMU against the same daemon: the
                   same ports, host clients kept through it, and what the
                   guest wrote before the quit (its client not reading,
                   the daemon holding it) delivered byte-exact after it
  hotplug_device   the whole device added with device_add into a
                   pcie-root-port and removed with device_del, twice,
                   data both ways each time, the daemon running throughout
  ports_127        --max-ports 127 (num_vqs=256, all vhost-user can name):
                   the console and 126 named ports carry CRC-checked data
                   both ways at the same time (ports_127.sh, vsg ports)
  readme_qemu      the README's QEMU command lines, taken from README.md
                   as written (paths moved to the case's directory, the
                   guest's kernel and TCG added in place of its "...")
  max_ports_rings  --max-ports 127 against QEMU's num_vqs=10: the guest
                   cannot probe the device, the daemon says why in one
                   error line naming the rings needed and offered
  max_ports_128    --max-ports 128 (258 rings; vhost-user names 256): the
                   daemon refuses it with one line and exit 2

Cases of the other files that run under QEMU by their own vmms: guest_reopen
and unplug_plug_60 (conn_cases.py: the guest driver's side of a reconnect
and of 60 port unplug/plug cycles).

Not run under QEMU: daemon_killed (QEMU never tells the guest that its
backend died: the guest's next control message spins forever, see
../shared/docs/qemu-frontend.md), vmm_restart (UML's; qemu_restart is
QEMU's), and the cases about the host side only (faults, buffer_option,
hvc0 on stdio, ctl_attach, ctl_events, stty_*, ports_31, multiport_duplex,
host_reconnect, client_killed): UML runs them, and they would only repeat
what the device cases above show about the frontend.
"""

import json
import os
import re
import select
import shlex
import socket
import time
import zlib

from device_cases import G2HBulk, H2GBulk
from helpers import (BULK, KIB, MIB, Case, all_ways, both_ways, connect, det_bytes, drop_if_passed,
                     guest_times, mbps, named_ports, read_file, recv_exact, recv_rest, recv_some,
                     send_all, sha256, wait_guest_file, wait_until, write_out, write_rounds)

# UML cases about the device that run under QEMU unchanged.
SHARED = ['sysfs_names', 'g2h_16mib', 'h2g_16mib', 'hvc0_unix', 'open_close', 'rmmod_insmod',
          'ctl_hotplug', 'ctl_resize', 'hvc1_console', 'slow_reader', 'reconnect_20',
          'backend_unix_connect', 'backend_tcp', 'backend_pty', 'backend_file', 'backend_stdio',
          'backend_null', 'history_clients', 'tee_stalled']


def share(all_cases):
    """Mark the UML cases named in SHARED to run under QEMU too."""
    for c in all_cases:
        if c.name in SHARED:
            c.vmms = ('uml', 'qemu')


HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'README.md')


def ctl_request(ctx, cmd, **args):
    """One request on the daemon's control socket; the reply object."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    try:
        s.connect(ctx.sock('ctl.sock'))
        s.sendall(json.dumps(dict(cmd=cmd, **args)).encode() + b'\n')
        return json.loads(s.makefile('rb').readline())
    finally:
        s.close()


def qmp(ctx, cmd, **args):
    wait_until(ctx, ctx.vm_started.is_set, 'QEMU to start')
    return ctx.vm.qmp(cmd, **args)


def status(ctx):
    return qmp(ctx, 'query-status')['status']


class QemuCase(Case):
    vmms = ('qemu',)

# ---------------------------------------------------------- stop/cont


class StopContG2H(G2HBulk):
    """QMP stop and cont at 4, 8 and 12 MiB of a 16 MiB guest->host
    stream. While stopped (after what was already in flight has
    drained) no byte may arrive; after cont the stream goes on, and all
    16 MiB arrive byte-exact (the host's sha256 ACK, checked by the
    guest, and the G2HBulk checks)."""
    qemu_cost = 2
    name = 'stopcont_g2h'
    vmms = ('qemu',)
    STOPS = (4 * MIB, 8 * MIB, 12 * MIB)
    DRAIN, QUIET = 1.0, 1.0

    def read_for(self, ctx, s, secs):
        """What arrives on s within secs."""
        out = bytearray()
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if select.select([s], [], [], 0.1)[0]:
                out += recv_some(ctx, s, MIB, grace=0) or b''
        return out

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        got = bytearray()
        quiet = []
        t0 = None
        for mark in self.STOPS + (BULK,):
            while len(got) < mark:
                d = recv_some(ctx, s, min(mark - len(got), MIB))
                if not d:
                    break
                t0 = t0 or time.monotonic()
                got += d
            if mark == BULK or len(got) < mark:
                break
            qmp(ctx, 'stop')
            st = status(ctx)
            ctx.check(st == 'paused', 'after stop at %d bytes QEMU is %r' % (len(got), st))
            got += self.read_for(ctx, s, self.DRAIN)
            late = self.read_for(ctx, s, self.QUIET)
            got += late
            quiet.append(len(late))
            qmp(ctx, 'cont')
        ctx.data['quiet'] = quiet
        ctx.data['n'] = len(got)
        ctx.data['got'] = sha256(bytes(got))
        if len(got) == BULK:
            ctx.data['host_s'] = time.monotonic() - t0
            send_all(ctx, s, ('ACK %s\n' % ctx.data['got']).encode())
        ctx.data['extra'] = len(recv_rest(ctx, s))
        s.close()

    def verify(self, ctx):
        super().verify(ctx)
        q = ctx.data.get('quiet', [])
        ctx.check(len(q) == len(self.STOPS), 'stopped %d times, want %d' % (len(q), len(self.STOPS)))
        ctx.check(not any(q), 'bytes that arrived while QEMU was stopped (after %.1f s of draining): %s'
                  % (self.DRAIN, q))
        ctx.info.append('stopped at 4, 8, 12 MiB; bytes during each stop after draining: %s' % q)


class StopContH2G(H2GBulk):
    """QMP stop and cont after 4, 8 and 12 MiB of a 16 MiB host->guest
    stream have been sent: the guest reads all of it, sha256-exact."""
    qemu_cost = 2
    name = 'stopcont_h2g'
    vmms = ('qemu',)
    STOPS = (4 * MIB, 8 * MIB, 12 * MIB)
    PAUSE = 1.5

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        src = ctx.data['src']
        sent = 0
        t0 = time.monotonic()
        for mark in self.STOPS + (BULK,):
            sent += send_all(ctx, s, src[sent:mark])
            if sent < mark or mark == BULK:
                break
            qmp(ctx, 'stop')
            st = status(ctx)
            ctx.check(st == 'paused', 'after stop at %d bytes QEMU is %r' % (sent, st))
            time.sleep(self.PAUSE)
            qmp(ctx, 'cont')
            ctx.data['stops'] = ctx.data.get('stops', 0) + 1
        ctx.data['sent'] = sent
        ctx.data['host_s'] = time.monotonic() - t0
        while recv_some(ctx, s, 65536, grace=0.5):
            pass
        s.close()

    def verify(self, ctx):
        super().verify(ctx)
        # The guest's clock stands still while QEMU is stopped: no rate.
        ctx.info = [i for i in ctx.info if 'MB/s' not in i]
        ctx.check(ctx.data.get('stops') == len(self.STOPS), 'stopped %s times, want %d'
                  % (ctx.data.get('stops'), len(self.STOPS)))
        ctx.info.append('stopped %s times for %.1f s, after 4, 8, 12 MiB sent' % (ctx.data.get('stops'),
                                                                                  self.PAUSE))

# ------------------------------------------------------ reset, reboot


class ResetCase(QemuCase):
    """Two kernel starts in one QEMU (reset_reboot.sh); the host client of
    port 1 stays connected through the reset."""
    qemu_cost = 2
    script = 'reset_reboot.sh'
    MODE = None
    UP = 256 * KIB
    SIZE = 256 * KIB
    NAME = 'org.vserial.reset'

    def ports(self, ctx):
        return ['id=0,console,backend=stdio',
                'id=1,name=%s,backend=unix,path=%s' % (self.NAME, ctx.sock('p1.sock'))]

    def prepare(self, ctx):
        write_rounds(ctx, 300, self.UP, 310, self.SIZE, digest=True)

    def env(self, ctx):
        return {'MODE': self.MODE, 'SIZE': self.SIZE,
                'EXPECT1': sha256(ctx.data['down1']), 'EXPECT2': sha256(ctx.data['down2'])}

    def qemu_args(self, ctx, boot):
        return {'reboot': True}

    def reset(self, ctx):
        pass

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        for k in (1, 2):
            got, _, _ = recv_exact(ctx, s, self.UP, grace=5)
            ctx.data['got%d' % k] = sha256(got)
            if len(got) != self.UP:
                raise AssertionError('guest start %d: the host got %d of %d bytes' % (k, len(got), self.UP))
            send_all(ctx, s, ('ACK-%d %s\n' % (k, sha256(got))).encode())
            send_all(ctx, s, ctx.data['down%d' % k])
            if k == 1:
                wait_guest_file(ctx, 'g.done.1')
                self.reset(ctx)
        wait_until(ctx, lambda: os.path.exists(ctx.path('g.done.2')), 'guest start 2 to finish')
        s.close()

    def verify(self, ctx):
        for k in (1, 2):
            ctx.check(ctx.data.get('got%d' % k) == ctx.data['up%d' % k],
                      'guest start %d: port 1 did not deliver the guest\'s data' % k)
            names = read_file(ctx.path('names.%d' % k)).strip()
            ctx.check(names == 'vport0p1 ' + self.NAME, 'guest start %d: the port is %r' % (k, names))
            ctx.check('console line from boot %d' % k in read_file(ctx.path('daemon.stdout')),
                      'guest start %d: its console line is not on the daemon\'s stdout' % k)
        ctx.check(read_file(ctx.path('.gboot')).strip() == '2',
                  'the guest started %r times in this QEMU, want 2' % read_file(ctx.path('.gboot')).strip())
        log = read_file(ctx.path('daemon.log'))
        n = log.count('port 1 (%s): guest opened' % self.NAME)
        ctx.check(n == 2, 'the daemon logged "guest opened" %d times for port 1, want 2' % n)
        ctx.check(log.count('VMM connected') == 1, 'QEMU connected %d times, want once'
                  % log.count('VMM connected'))
        # One host connection carried both exchanges (host() used one socket).
        n = len(re.findall(r'host client \d+ connected', log))
        ctx.check(n == 1, 'port 1 had %d host connections, want 1' % n)


class SystemReset(ResetCase):
    name = 'system_reset'
    MODE = 'reset'

    def reset(self, ctx):
        qmp(ctx, 'system_reset')


class GuestReboot(ResetCase):
    name = 'guest_reboot'
    MODE = 'reboot'

# ------------------------------------------------------- QEMU restart


class QemuRestart(QemuCase):
    """Two QEMUs, one after the other, against one daemon; the first is
    quit with QMP while the guest still runs."""
    qemu_cost = 2
    name = 'qemu_restart'
    script = 'qemu_restart.sh'
    boots = 2
    UP = (512 * KIB, 128 * KIB)
    NAMES = {1: 'org.vserial.keep', 2: 'org.vserial.live'}

    def ports(self, ctx):
        return named_ports(ctx, self.NAMES)

    def daemon_args(self, ctx):
        return ['--control', ctx.sock('ctl.sock')]

    def prepare(self, ctx):
        both = b''
        for k in (1, 2):
            up = det_bytes(400 + k, self.UP[k - 1])
            both += up
            write_out(ctx, 'up.%d' % k, up)
        ctx.data['both'] = sha256(both)

    def qemu_end(self, ctx, boot):
        return 'host' if boot == 1 else 'poweroff'

    def from_guest(self, ctx, pid):
        for p in ctl_request(ctx, 'list').get('ports', []):
            if p['id'] == pid:
                return p['from_guest']
        return None

    def pong(self, ctx, b, k):
        line = bytearray()
        while not line.endswith(b'\n'):
            d = recv_some(ctx, b, 1, grace=5)
            if not d:
                raise AssertionError('QEMU %d: port 2 ended before its ping' % k)
            line += d
        ctx.data['ping%d' % k] = line.decode(errors='replace').strip()
        send_all(ctx, b, b'pong-%d\n' % k)

    def host(self, ctx):
        # Both clients are kept through both QEMUs; a reads nothing
        # until the second one runs.
        a = connect(ctx, ctx.sock('p1.sock'))
        b = connect(ctx, ctx.sock('p2.sock'))
        self.pong(ctx, b, 1)
        wait_guest_file(ctx, 'g.written.1')
        # Every byte the guest wrote is in the daemon before QEMU goes
        # (what is still in the ring when QEMU quits goes with the guest).
        wait_until(ctx, lambda: self.from_guest(ctx, 1) == self.UP[0],
                   'the daemon to take all %d bytes of port 1' % self.UP[0])
        ctx.data['list1'] = ctl_request(ctx, 'list')
        qmp(ctx, 'quit')
        wait_until(ctx, lambda: ctx.data.get('boot') == 2 and ctx.vm_started.is_set(),
                   'the second QEMU', 120)
        self.pong(ctx, b, 2)
        got, _, _ = recv_exact(ctx, a, sum(self.UP), grace=5)
        ctx.data['got'] = sha256(got)
        ctx.data['n'] = len(got)
        send_all(ctx, a, ('ACK %s\n' % sha256(got)).encode())
        wait_until(ctx, lambda: os.path.exists(ctx.path('result.2')), 'the guest to finish', 120)
        a.close()
        b.close()

    def verify(self, ctx):
        ctx.check(ctx.data.get('n') == sum(self.UP) and ctx.data.get('got') == ctx.data['both'],
                  'port 1: the host got %s bytes (sha256 %s), want %d (%s): the output kept from '
                  'the first QEMU and the second\'s' % (ctx.data.get('n'), ctx.data.get('got'),
                                                       sum(self.UP), ctx.data['both']))
        for k in (1, 2):
            ctx.check(ctx.data.get('ping%d' % k) == 'ping-%d' % k, 'QEMU %d: port 2 got %r'
                      % (k, ctx.data.get('ping%d' % k)))
            ctx.check('console line from QEMU %d' % k in read_file(ctx.path('daemon.stdout')),
                      'QEMU %d: its console line is not on the daemon\'s stdout' % k)
        names = [read_file(ctx.path('names.%d' % k)).splitlines() for k in (1, 2)]
        want = ['vport0p%d %s' % kv for kv in self.NAMES.items()]
        ctx.check(all(w in names[0] for w in want) and names[0] == names[1],
                  'ports seen by the two QEMUs: %s and %s, want %s in both' % (names[0], names[1], want))
        log = read_file(ctx.path('daemon.log'))
        ctx.check(log.count('VMM connected') == 2, 'the daemon logged "VMM connected" %d times, want 2'
                  % log.count('VMM connected'))
        for i, n in self.NAMES.items():
            c = len(re.findall(r'port %d \(%s\): host client \d+ connected' % (i, re.escape(n)), log))
            ctx.check(c == 1, 'port %d had %d host connections, want 1 (kept through the quit)' % (i, c))
        p1 = [p for p in ctx.data.get('list1', {}).get('ports', []) if p['id'] == 1]
        held = p1[0]['buffered'] if p1 else 0
        ctx.check(held > 0, 'before the quit the daemon held nothing of port 1\'s output (%s): '
                  'this case did not test its buffer' % p1)
        ctx.info.append('at the quit the daemon held %d of the %d bytes port 1\'s idle client had '
                        'not read' % (held, self.UP[0]))

# -------------------------------------------------- device hot-plug


class HotplugDevice(QemuCase):
    name = 'hotplug_device'
    script = 'hotplug_device.sh'
    NAME = 'org.vserial.hot'
    UP = 256 * KIB
    SIZE = 256 * KIB

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.NAME, ctx.sock('p1.sock'))]

    def daemon_args(self, ctx):
        return ['--control', ctx.sock('ctl.sock')]

    def prepare(self, ctx):
        up = det_bytes(500, self.UP)
        ctx.data['up'] = sha256(up)
        write_out(ctx, 'up.src', up)
        ctx.data['down'] = det_bytes(501, self.SIZE)

    def env(self, ctx):
        return {'NAME': self.NAME, 'SIZE': self.SIZE, 'EXPECT': sha256(ctx.data['down'])}

    def qemu_args(self, ctx, boot):
        # No device at start; its chardev connects to the daemon at once.
        return {'device': None,
                'extra': ['-device', 'pcie-root-port,id=rp1,bus=pcie.0,addr=0x4,chassis=1',
                          '-chardev', 'socket,id=vs,path=%s' % ctx.sock('vhost.sock')]}

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        for k in (1, 2):
            wait_guest_file(ctx, 'g.up.%d' % k)
            dev = ctx.vm.device_arg(id='vs%d' % k, bus='rp1').split(',')
            args = {a: int(v) if v.isdigit() else v for a, v in (kv.split('=', 1) for kv in dev[1:])}
            qmp(ctx, 'device_add', driver=dev[0], **args)
            got, _, _ = recv_exact(ctx, s, self.UP, grace=5)
            ctx.data['got%d' % k] = sha256(got)
            if len(got) != self.UP:
                raise AssertionError('round %d: the host got %d of %d bytes' % (k, len(got), self.UP))
            send_all(ctx, s, ('ACK-%d %s\n' % (k, sha256(got))).encode())
            send_all(ctx, s, ctx.data['down'])
            wait_guest_file(ctx, 'g.unplug.%d' % k)
            qmp(ctx, 'device_del', id='vs%d' % k)
            ctx.vm.qmp_conn.wait_event('DEVICE_DELETED', 60,
                                       lambda e: e['data'].get('device') == 'vs%d' % k)
            st = ctl_request(ctx, 'list')
            ctx.check(st.get('ok') is True, 'round %d: the daemon answered %s after device_del' % (k, st))
            ctx.data['removed'] = k
        s.close()

    def verify(self, ctx):
        for k in (1, 2):
            ctx.check(ctx.data.get('got%d' % k) == ctx.data['up'], 'round %d: guest->host data' % k)
            ctx.check(read_file(ctx.path('dev.%d' % k)).strip().startswith('vport'),
                      'round %d: the guest did not find the port' % k)
        ctx.check(ctx.data.get('removed') == 2, 'device_del completed %s times, want 2'
                  % ctx.data.get('removed', 0))
        ctx.info.append('the port was %s, then %s' % tuple(read_file(ctx.path('dev.%d' % k)).strip()
                                                         for k in (1, 2)))
        drop_if_passed(ctx, 'up.src')

# ---------------------------------------------------------- 127 ports


class Ports127(QemuCase):
    name = 'ports_127'
    script = 'ports_127.sh'
    N = 126
    SIZE = 128 * KIB
    qemu_cost = 3

    def name_of(self, i):
        return 'org.vserial.p%03d' % i

    def daemon_args(self, ctx):
        return ['--max-ports', '127']

    def ports(self, ctx):
        return ['id=0,console,backend=unix,path=' + ctx.sock('p0.sock')] + \
            ['id=%d,name=%s,backend=unix,path=%s' % (i, self.name_of(i), ctx.sock('p%d.sock' % i))
             for i in range(1, self.N + 1)]

    def env(self, ctx):
        return {'NPORTS': self.N, 'SIZE': self.SIZE}

    def qemu_args(self, ctx, boot):
        # Linux fills each port's receive ring with 4 KiB buffers: 1 MiB a port.
        return {'mem': '512M'}

    def host(self, ctx):
        socks = {i: connect(ctx, ctx.sock('p%d.sock' % i)) for i in range(0, self.N + 1)}
        down = {i: det_bytes(600 + i, self.SIZE) for i in socks}
        ctx.data['down'] = {i: zlib.crc32(d) for i, d in down.items()}
        crc = {i: 0 for i in socks}
        got = {i: 0 for i in socks}

        def take(i, d):
            crc[i] = zlib.crc32(d, crc[i])
            got[i] += len(d)
        all_ways(ctx, socks, down, self.SIZE, 300, take)
        ctx.data['got'] = {i: (got[i], crc[i]) for i in socks}
        wait_until(ctx, lambda: os.path.exists(ctx.path('result')), 'the guest to finish', 300)
        for s in socks.values():
            s.close()

    def verify(self, ctx):
        rows = {}
        for ln in read_file(ctx.path('ports.crc')).splitlines():
            f = ln.split()
            if len(f) == 5:
                rows[int(f[0])] = (int(f[1]), int(f[2], 16), int(f[3]), int(f[4], 16))
        bad = []
        for i in range(0, self.N + 1):
            r = rows.get(i)
            g = ctx.data.get('got', {}).get(i)
            if not r:
                bad.append('port %d: no guest report' % i)
                continue
            if g != (r[0], r[1]) or r[0] != self.SIZE:
                bad.append('port %d: guest sent %d bytes crc %08x, host got %s' % (i, r[0], r[1], g))
            if (r[2], r[3]) != (self.SIZE, ctx.data['down'][i]):
                bad.append('port %d: guest got %d bytes crc %08x, host sent %d crc %08x'
                           % (i, r[2], r[3], self.SIZE, ctx.data['down'][i]))
        ctx.check(not bad, '%d problems: %s' % (len(bad), '; '.join(bad[:6])))
        names = read_file(ctx.path('names')).splitlines()
        want = ['vport0p%d %s' % (i, self.name_of(i)) for i in range(1, self.N + 1)]
        ctx.check(names == want, 'sysfs names: %s' % [n for n in names if n not in want][:5])
        gs = guest_times(ctx)
        if gs:
            total = 2 * (self.N + 1) * self.SIZE
            ctx.info.append('127 ports, %d KiB each way each: %.1f MB/s in all (guest side, %.1f s)'
                            % (self.SIZE // KIB, mbps(total, gs), gs))

# ------------------------------------------------------------ README


def readme_qemu_block():
    """The shell block under README.md's "QEMU 10.2 or later", joined
    (backslash continuations) into command lines."""
    text = read_file(README)
    m = re.search(r'\*\*QEMU 10\.2 or later\*\*.*?```sh\n(.*?)```', text, re.S)
    if not m:
        raise AssertionError('README.md: no ```sh block after "**QEMU 10.2 or later**"')
    return [ln.strip() for ln in m.group(1).replace('\\\n', ' ').splitlines() if ln.strip()]


class ReadmeQemu(QemuCase):
    """The README's command lines as written: vserial's (with its ports)
    and QEMU's, /run/vserial/ moved to the case's directory. QEMU's
    "..." becomes what our guest needs (TCG, its kernel and initramfs,
    the shared output directory, a serial log), nothing else changes.
    The guest finds the documented port by name and moves data both
    ways through it (backend_xfer.sh); the console is a pty."""
    name = 'readme_qemu'
    script = 'backend_xfer.sh'
    PORT = 'org.qemu.guest_agent.0'
    UP = DOWN = 256 * KIB

    def lines(self, ctx):
        lines = readme_qemu_block()
        vs = [ln for ln in lines if ln.startswith('vserial ')]
        qm = [ln for ln in lines if ln.startswith('qemu-system-x86_64 ')]
        if len(vs) != 1 or len(qm) != 1:
            raise AssertionError('README.md QEMU block: want one vserial and one qemu-system-x86_64 '
                                 'line, got %s' % lines)
        sub = lambda ln: ln.replace('/run/vserial/', ctx.sockdir + '/')  # noqa: E731
        return shlex.split(sub(vs[0])), shlex.split(sub(qm[0]))

    def prepare(self, ctx):
        ctx.data['vs'], ctx.data['qm'] = self.lines(ctx)
        ctx.data['up'] = det_bytes(700, self.UP)
        ctx.data['down'] = det_bytes(701, self.DOWN)
        write_out(ctx, 'up.src', ctx.data['up'])

    def daemon_argv(self, ctx, vserial):
        argv = ctx.data['vs']
        if argv[-1] == '&':
            argv = argv[:-1]
        sock = argv[argv.index('--socket') + 1]
        if not os.path.dirname(sock) == ctx.sockdir:
            raise AssertionError('README vserial line: socket %s not under /run/vserial/' % sock)
        ctx.data['vsock'] = sock
        return [vserial] + argv[1:]

    def env(self, ctx):
        return {'DEV': 'vport0p1', 'NAME': self.PORT, 'DOWN': self.DOWN, 'ACK': 1, 'QUIET': 0,
                'EXPECT': sha256(ctx.data['down'])}

    def qemu_args(self, ctx, boot):
        def argv(vm):
            qm = ctx.data['qm']
            if qm[-1] != '...':
                raise AssertionError('README qemu line does not end in "...": %s' % qm)
            a = vm.argv(device_args=False, memory=False)
            # README's own options first, then ours in place of "..."
            return [vm.qemu] + qm[1:-1] + a[1:]
        return {'argv_fn': argv, 'vs_sock': ctx.data['vsock']}

    def host(self, ctx):
        s = connect(ctx, ctx.sock('qga.sock'))
        s.setblocking(False)
        got, _ = both_ways(ctx, s, ctx.data['down'], self.UP, timeout=float('inf'))
        ctx.data['got'] = got
        send_all(ctx, s, ('ACK %s\n' % sha256(got)).encode())
        wait_until(ctx, lambda: os.path.exists(ctx.path('g.done')), 'the guest to finish', 120)
        s.close()

    def verify(self, ctx):
        ctx.check(ctx.data.get('got') == ctx.data['up'], 'guest->host through %s: %s bytes'
                  % (self.PORT, len(ctx.data.get('got') or b'')))
        ctx.check(read_file(ctx.path('down.sha256')).split() == [str(self.DOWN), sha256(ctx.data['down'])],
                  'host->guest through %s: the guest got %s' % (self.PORT, read_file(ctx.path('down.sha256'))))
        m = re.search(r'port 0 \(console\): pty (/dev/pts/\d+)', read_file(ctx.path('daemon.log')))
        ctx.check(m is not None, 'the console (backend=pty) logged no pty path')
        ctx.info.append('README: %s' % ' '.join(ctx.data['qm'][:6]) + ' ...')

# ------------------------------------------- --max-ports vs the rings


class MaxPortsRings(QemuCase):
    """--max-ports 127 needs 256 rings; QEMU gives the device num_vqs=10
    (the README's line, made for --max-ports 4). The guest cannot probe
    the device ("Error -22 initializing vqs" in its log); the daemon
    must say why, in one line naming the ring count it needs."""
    name = 'max_ports_rings'
    script = 'sysfs_names.sh'

    def daemon_args(self, ctx):
        return ['--max-ports', '127']

    def env(self, ctx):
        return {'NPORTS': 0}

    def qemu_args(self, ctx, boot):
        return {'device': {'num_vqs': 10}}

    def verify(self, ctx):
        dmesg = read_file(ctx.path('result.dmesg'))
        ctx.check('initializing vqs' in dmesg, 'the guest did not fail to probe: %r' % dmesg[-300:])
        log = read_file(ctx.path('daemon.log'))
        said = [ln for ln in log.splitlines()
                if re.search(r'(?i)(rings|queues|num_vqs).*256|256.*(rings|queues|num_vqs)', ln)]
        ctx.check(said, 'no daemon log line says the VMM has too few rings for --max-ports 127 '
                  '(256 needed): %r' % log[-400:])
        # once, naming what QEMU offers and what would fit
        ctx.check(len(said) == 1 and re.search(r'\b10 rings\b', said[0]) and 'error' in said[0] and
                  '--max-ports 4' in said[0], 'the daemon\'s lines about the rings: %r' % said)
        if said:
            ctx.info.append('daemon: %s' % said[0])


class MaxPorts128(QemuCase):
    """--max-ports 128 needs 258 rings, but vhost-user names a ring with
    8 bits in SET_VRING_KICK/CALL: QEMU (num_vqs=258) sends rings 256
    and 257 as 0 and 1, so the console's kick and call eventfds are
    replaced and the guest's first console write spins forever. The
    daemon must refuse such a --max-ports at start (exit 2, one line)
    instead of a warning."""
    name = 'max_ports_128'
    script = 'hvc0_write.sh'
    expect_daemon = 'refuse'
    qemu_timeout_factor = 1

    def ports(self, ctx):
        return ['id=0,console,backend=unix,path=' + ctx.sock('con.sock')]

    def daemon_args(self, ctx):
        return ['--max-ports', '128']

    def verify(self, ctx):
        log = read_file(ctx.path('daemon.log'))
        if ctx.daemon_refused is None:
            ctx.errors.append('vserial --max-ports 128 started instead of refusing (%s); the guest\'s '
                              'console write then %s' % (log.splitlines()[:1],
                                                         'finished' if os.path.exists(ctx.path('result'))
                                                         else 'never finished'))
            return
        lines = log.splitlines()
        ctx.check(ctx.daemon_refused == 2 and len(lines) == 1 and '127' in log,
                  'vserial --max-ports 128: exit %s, %r; want exit 2 and one line naming the limit 127'
                  % (ctx.daemon_refused, log))

    def env(self, ctx):
        return {'MARKER': 'vserial-128'}

    def host(self, ctx):
        # Reached only when the daemon did not refuse.
        ctx.errors.append('vserial --max-ports 128 started instead of refusing (%s); with num_vqs=258 '
                          'rings 256 and 257 reach it as 0 and 1, the console\'s'
                          % read_file(ctx.path('daemon.log')).strip().splitlines()[:1])

    def qemu_args(self, ctx, boot):
        return {'device': {'num_vqs': 258}}


CASES = [StopContG2H(), StopContH2G(), SystemReset(), GuestReboot(), QemuRestart(),
         HotplugDevice(), Ports127(), ReadmeQemu(), MaxPortsRings(), MaxPorts128()]
