"""The device's own real-guest cases: bulk data both ways, the consoles,
port names in sysfs, opens and closes, a driver reload, a daemon killed
mid-stream, several ports at once, host clients one after another.

  g2h_16mib, h2g_16mib  16 MiB one way, sha256-checked (throughput printed)
  multiport_duplex      two ports streaming opposite ways, console lines between
  daemon_killed         the daemon SIGKILLed mid-stream: the guest carries on
  rmmod_insmod          a driver unload and reload between two transfers
  host_reconnect        two host clients in turn, each one's end of file seen
  sysfs_names           port names in /sys/class/virtio-ports
  open_close            the guest's opens and closes in the daemon log
  hvc0_*                the console on a unix socket, stdio, stdin, no client
"""

import os
import random
import re
import time

from helpers import (BULK, MIB, Case, connect, det_bytes, drop_if_passed, guest_times, kill_group,
                     mbps, read_file, read_until, recv_exact, recv_rest, recv_some, run_together,
                     send_all, sha256, write_out)


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
        write_out(ctx, 'src', data)

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
            write_out(ctx, 'received', got)
        # Nothing may follow the 16 MiB.
        ctx.data['extra'] = len(recv_rest(ctx, s))
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
        drop_if_passed(ctx, 'src')


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
        got = read_until(ctx, s, lambda b: ctx.data['marker'].encode() in b)
        write_out(ctx, 'console.out', got)
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
            write_out(ctx, 'src.%d' % k, data)

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
        n = len(read_until(ctx, s, lambda b: len(b) >= self.KILL_AFTER))
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
        write_out(ctx, 'src1', data)
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
        run_together(ctx, self.up, self.down)

    def verify(self, ctx):
        ctx.check(ctx.data.get('got1') == (self.SIZE, ctx.data['want1']),
                  'port 1: host got %s, want %d bytes sha256 %s' % (ctx.data.get('got1'), self.SIZE, ctx.data['want1']))
        ctx.check(ctx.data.get('sent2') == self.SIZE, 'port 2: host sent %s bytes' % ctx.data.get('sent2'))
        line = read_file(ctx.path('dst2.sha256')).split()
        ctx.check(line == [str(self.SIZE), ctx.data['want2']], 'port 2: guest got %s' % line)
        con = read_file(ctx.path('daemon.stdout'))
        n = len(re.findall(r'console line \d+ while both ports stream', con))
        ctx.check(n == 50, 'console: %d of 50 lines on the daemon stdout' % n)
        drop_if_passed(ctx, 'src1')


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
