"""Real-guest cases for moving data: every host backend, host clients that
come, go or die mid-stream, a VMM restart, many ports, consoles.

Loaded by run.py, which runs CASES. Data is host-made (deterministic) and checked
by sha256 on the receiving side; guest scripts are tests/guest/cases/*.sh.

  backend_unix_connect  the host listens, the daemon connects (and retries):
                        2 MiB each way at once, checksummed
  backend_tcp           backend=tcp on 127.0.0.1 (a free port): the same
  backend_pty           backend=pty: the host opens the logged /dev/pts/N
  backend_file          backend=file: output appended to a file, input= sent
  backend_stdio         backend=stdio on a plain port: stdin and stdout
  backend_null          backend=null: 4 MiB of writes complete, nothing back
  reconnect_20          the host client leaves cleanly (shutdown, read to end
                        of file) and comes back 20 times during a 16 MiB
                        guest->host stream: all of it arrives, in order
  client_killed         the host client is SIGKILLed mid-stream: a new one
                        gets the rest, the daemon lives on
  slow_reader           1 byte per ms for 3 s, then fast, while the guest
                        writes 12 MiB: the writer waits, nothing is lost
  vmm_restart           two guest boots against one daemon: same ports and
                        names, data both ways each time (Case.boots = 2)
  ports_31              console + 30 named ports, 256 KiB each way on every
                        port at once
  hvc1_console          a second console port is /dev/hvc1, both ways
  stty_default          "stty size" on hvc0 is the daemon's 80x25
  stty_pty              a pty console follows the size set on the pty
  buffer_option         buffer=64K and buffer=4M bound what the daemon takes
                        while the host does not read (4M - 64K apart)
"""

import fcntl
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import tty

from helpers import (KIB, LIVE, MIB, Case, all_ways, check_split_stream, connect, det_bytes,
                     drop_if_passed, finish_split_stream, free_tcp_port, guest_times, mbps,
                     named_ports, read_file, read_until, recv_exact, recv_rest, recv_some,
                     run_together, send_all, sha256, wait_guest_file, wait_listening, wait_until,
                     write_out, write_rounds)


# The host client of client_killed: a process of its own, to be SIGKILLed.
KILLED_HELPER = r'''
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
with open(sys.argv[2], 'wb', buffering=0) as f:
    while True:
        d = s.recv(65536)
        if not d:
            break
        f.write(d)
        time.sleep(0.005)       # slower than the guest: the daemon has a backlog
'''


def pty_path(ctx, port_id, timeout=20):
    """The pts path the daemon logged for a backend=pty port."""
    pat = re.compile(r'port %d \([^)]*\): pty (/dev/pts/\d+)' % port_id)
    m = []
    wait_until(ctx, lambda: m.append(pat.search(read_file(ctx.path('daemon.log')))) or m[-1],
               'the daemon to log the pty of port %d' % port_id, timeout)
    return m[-1].group(1)


def xfer_fd(ctx, rfd, wfd, down, nup, grace=3.0, timeout=60):
    """On non-blocking fds: write all of down to wfd while reading nup bytes
    from rfd (either may be None). Returns (got, sent, t_first, t_last)."""
    got = bytearray()
    sent = 0
    t_first = t_last = None
    end = time.monotonic() + timeout
    mv = memoryview(down or b'')
    reading = rfd is not None and nup > 0
    while (reading and len(got) < nup) or (wfd is not None and sent < len(mv)):
        rl = [rfd] if reading and len(got) < nup else []
        wl = [wfd] if wfd is not None and sent < len(mv) else []
        r, w, _ = select.select(rl, wl, [], 0.2)
        if r:
            try:
                d = os.read(rfd, min(nup - len(got), 256 * KIB))
            except BlockingIOError:
                d = None
            except OSError:             # EIO from a pty, a reset socket
                d = b''
            if d == b'':
                reading = False
            elif d:
                if t_first is None:
                    t_first = time.monotonic()
                got += d
                t_last = time.monotonic()
        if w:
            try:
                sent += os.write(wfd, mv[sent:sent + 64 * KIB])
            except BlockingIOError:
                pass
            except OSError as e:
                ctx.errors.append('host write: %s' % e)
                break
        if not r and not w and (ctx.grace_expired(grace) or time.monotonic() > end):
            break
    return bytes(got), sent, t_first, t_last


def xfer_rates(ctx, up, down):
    """Guest-side throughput from $OUT/xfer.times ("up T0 T1", "down T0 T1")."""
    out = []
    for line in read_file(ctx.path('xfer.times')).splitlines():
        try:
            what, t0, t1 = line.split()
            n = up if what == 'up' else down
            if n:
                out.append('%s %.1f MB/s (%d KiB in %.3f s, guest side)'
                           % ('guest->host' if what == 'up' else 'host->guest',
                              mbps(n, float(t1) - float(t0)), n // KIB, float(t1) - float(t0)))
        except ValueError:
            pass
    return out


class XferCase(Case):
    """Base: one port (id 1) on some backend; the guest runs backend_xfer.sh:
    it writes UP bytes while it reads DOWN bytes. Subclasses give the port
    spec and open the host side."""
    script = 'backend_xfer.sh'
    UP = 2 * MIB
    DOWN = 2 * MIB
    ACK = True          # the host answers "ACK <sha256 of what it got>"
    QUIET = False
    SEED = 0
    PORT = 'org.vserial.xfer'

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(self.SEED + 1, self.UP)
        ctx.data['down'] = det_bytes(self.SEED + 2, self.DOWN)
        write_out(ctx, 'up.src', ctx.data['up'])

    def env(self, ctx):
        e = {'DEV': 'vport0p1', 'NAME': self.PORT, 'DOWN': self.DOWN,
             'ACK': int(self.ACK), 'QUIET': int(self.QUIET)}
        if self.DOWN:
            e['EXPECT'] = sha256(ctx.data['down'])
        return e

    def open_host(self, ctx):
        """(rfd, wfd, close) of the host side, non-blocking."""
        raise NotImplementedError

    def host(self, ctx):
        rfd, wfd, close = self.open_host(ctx)
        try:
            got, sent, _, _ = xfer_fd(ctx, rfd, wfd, ctx.data['down'], self.UP)
            ctx.data['got'] = got
            ctx.data['sent'] = sent
            if self.ACK:
                line = ('ACK %s\n' % sha256(got)).encode()
                n = 0
                while n < len(line) and not ctx.grace_expired():
                    try:
                        n += os.write(wfd, line[n:])
                    except BlockingIOError:
                        time.sleep(0.01)
            wait_guest_file(ctx, 'g.done', 60, quiet=True)
        finally:
            close()

    def host_got(self, ctx):
        return ctx.data.get('got')

    def verify(self, ctx):
        got = self.host_got(ctx)
        up = ctx.data['up']
        ctx.check(got == up, 'guest->host: the host got %s bytes (sha256 %s), want %d (sha256 %s)'
                  % (None if got is None else len(got), got and sha256(got), len(up), sha256(up)))
        if self.DOWN:
            ctx.check(ctx.data.get('sent', self.DOWN) == self.DOWN,
                      'host->guest: the host sent %s of %d bytes' % (ctx.data.get('sent'), self.DOWN))
            line = read_file(ctx.path('down.sha256')).split()
            ctx.check(line == [str(self.DOWN), sha256(ctx.data['down'])],
                      'host->guest: the guest got %s, want %d bytes sha256 %s'
                      % (line, self.DOWN, sha256(ctx.data['down'])))
        ctx.info += xfer_rates(ctx, self.UP, self.DOWN)
        drop_if_passed(ctx, 'up.src')


def sock_fds(s):
    s.setblocking(False)
    return s.fileno(), s.fileno(), s.close


class BackendUnixConnect(XferCase):
    """backend=unix-connect: the host listens; the daemon connects (it
    starts before the listener exists, so it has to retry)."""
    name = 'backend_unix_connect'
    SEED = 20
    PORT = 'org.vserial.uc'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix-connect,path=%s' % (self.PORT, ctx.sock('host.sock'))]

    def open_host(self, ctx):
        time.sleep(0.3)     # the daemon's first connect() fails: it must retry
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(ctx.sock('host.sock'))
        ls.listen(1)
        ls.settimeout(20)
        try:
            s, _ = ls.accept()
        except socket.timeout:
            raise AssertionError('the daemon did not connect to %s within 20 s' % ctx.sock('host.sock'))
        finally:
            ls.close()
        return sock_fds(s)


class BackendTcp(XferCase):
    name = 'backend_tcp'
    SEED = 30
    PORT = 'org.vserial.tcp'

    def prepare(self, ctx):
        ctx.data['tcp_port'] = free_tcp_port()
        super().prepare(ctx)

    def ports(self, ctx):
        return ['id=1,name=%s,backend=tcp,port=%d' % (self.PORT, ctx.data['tcp_port'])]

    def open_host(self, ctx):
        addr = ('127.0.0.1', ctx.data['tcp_port'])
        end = time.monotonic() + 20
        while True:
            try:
                s = socket.create_connection(addr, timeout=5)
                break
            except OSError as e:
                if time.monotonic() > end or ctx.stop.is_set():
                    raise AssertionError('cannot connect to %s:%d: %s' % (addr + (e,)))
                time.sleep(0.05)
        return sock_fds(s)


class BackendPty(XferCase):
    """backend=pty: the host opens the /dev/pts/N the daemon logged."""
    name = 'backend_pty'
    SEED = 40
    PORT = 'org.vserial.pty'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=pty' % self.PORT]

    def open_host(self, ctx):
        path = pty_path(ctx, 1)
        ctx.data['pty'] = path
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)      # the daemon made it raw already; bytes pass unchanged
        return fd, fd, lambda: os.close(fd)


class BackendFile(XferCase):
    """backend=file: guest output appended to a file that already has a
    line; input= sent to the guest."""
    name = 'backend_file'
    SEED = 50
    ACK = False
    PORT = 'org.vserial.file'
    OLD = b'a line that was in the file before the daemon started\n'

    def prepare(self, ctx):
        super().prepare(ctx)
        write_out(ctx, 'file.out', self.OLD)
        write_out(ctx, 'file.in', ctx.data['down'])

    def ports(self, ctx):
        return ['id=1,name=%s,backend=file,path=%s,input=%s'
                % (self.PORT, ctx.path('file.out'), ctx.path('file.in'))]

    def host(self, ctx):
        pass

    def host_got(self, ctx):
        with open(ctx.path('file.out'), 'rb') as f:
            data = f.read()
        ctx.check(data.startswith(self.OLD), 'file.out does not start with what it held before: '
                  'the daemon truncated it instead of appending')
        return data[len(self.OLD):] if data.startswith(self.OLD) else data

    def verify(self, ctx):
        super().verify(ctx)
        drop_if_passed(ctx, 'file.out', 'file.in')


class BackendStdio(XferCase):
    """backend=stdio on a plain port: the guest's output is the daemon's
    stdout, the daemon's stdin goes to the guest."""
    name = 'backend_stdio'
    SEED = 60
    ACK = False
    daemon_stdin = True
    PORT = 'org.vserial.stdio'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=stdio' % self.PORT]

    def host(self, ctx):
        wfd = ctx.daemon.stdin.fileno()
        os.set_blocking(wfd, False)
        _, sent, _, _ = xfer_fd(ctx, None, wfd, ctx.data['down'], 0)
        ctx.data['sent'] = sent
        wait_guest_file(ctx, 'g.done', 60, quiet=True)
        ctx.daemon.stdin.close()        # end of input; the daemon keeps running

    def host_got(self, ctx):
        with open(ctx.path('daemon.stdout'), 'rb') as f:
            return f.read()


class BackendNull(XferCase):
    """backend=null: the guest's writes complete and vanish; nothing comes
    back (the guest's read times out with no data)."""
    name = 'backend_null'
    SEED = 70
    UP = 4 * MIB
    DOWN = 0
    ACK = False
    QUIET = True
    PORT = 'org.vserial.null'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=null' % self.PORT]

    def host(self, ctx):
        pass

    def verify(self, ctx):
        ctx.check(os.path.exists(ctx.path('g.done')), 'the guest did not finish')
        ctx.check(os.path.getsize(ctx.path('daemon.stdout')) == 0, 'the daemon printed something on stdout')
        ctx.info += xfer_rates(ctx, self.UP, 0)
        drop_if_passed(ctx, 'up.src')


def recv_to_eof(s, timeout):
    """Everything until end of file; None if it does not come in time."""
    buf = bytearray()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        try:
            d = s.recv(MIB)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            return bytes(buf)
        if not d:
            return bytes(buf)
        buf += d
    return None


class Reconnect20(XferCase):
    """A continuous guest->host stream while the host client disconnects
    cleanly (shutdown(SHUT_WR), read to end of file, close) and reconnects
    20 times: what all the clients got, in order, is exactly what the guest
    wrote. Each client reads 16..96 KiB, shuts down its sending side,
    then reads to end of file; the 21st reads the rest. Three clients in
    four pause 20 ms before that last read (the daemon sees the end of
    file while the socket is full); the fourth reads on at once (the
    daemon flushes more before it notices)."""
    name = 'reconnect_20'
    SEED = 80
    UP = 16 * MIB
    DOWN = 0
    ROUNDS = 20
    PORT = 'org.vserial.reconnect'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.PORT, ctx.sock('p1.sock'))]

    def host(self, ctx):
        rnd = random.Random(self.SEED)
        parts = []          # (bytes before the shutdown, bytes after it)
        got = bytearray()
        for k in range(self.ROUNDS):
            s = connect(ctx, ctx.sock('p1.sock'))
            target = rnd.randint(16 * KIB, 96 * KIB)
            n0 = len(got)
            while len(got) - n0 < target:
                d = recv_some(ctx, s, target - (len(got) - n0))
                if not d:
                    raise AssertionError('client %d: %s after %d bytes (%d in all), before it left'
                                         % (k + 1, 'end of file' if d == b'' else 'nothing more',
                                            len(got) - n0, len(got)))
                got += d
            n1 = len(got)
            s.shutdown(socket.SHUT_WR)
            if k % 4 != 3:
                time.sleep(0.02)
            rest = recv_to_eof(s, 10)
            s.close()
            if rest is None:
                raise AssertionError('client %d: no end of file within 10 s of shutdown(SHUT_WR)' % (k + 1))
            got += rest
            parts.append((n1 - n0, len(rest)))
            ctx.data['parts'] = parts
            time.sleep(rnd.uniform(0, 0.03))
        if len(got) >= self.UP:
            raise AssertionError('the whole stream went to the first %d clients: no reconnect '
                                 'happened mid-stream (make UP larger)' % self.ROUNDS)
        s = connect(ctx, ctx.sock('p1.sock'))
        last, _, _ = recv_exact(ctx, s, self.UP - len(got))
        got += last
        ctx.data['got'] = bytes(got)
        ctx.data['last'] = len(last)
        if ctx.data['got'] != ctx.data['up']:
            write_out(ctx, 'got.bin', got)
        send_all(ctx, s, ('ACK %s\n' % sha256(got)).encode())
        wait_guest_file(ctx, 'g.done', 60, quiet=True)
        s.close()

    def verify(self, ctx):
        super().verify(ctx)
        parts = ctx.data.get('parts', [])
        ctx.check(len(parts) == self.ROUNDS, '%d of %d clients came and went' % (len(parts), self.ROUNDS))
        if parts:
            after = [a for _, a in parts]
            ctx.info.append('%d clients got %d KiB in all (%d..%d KiB after their shutdown), '
                            'the last one %d KiB' % (len(parts), sum(b + a for b, a in parts) // KIB,
                                                     min(after) // KIB, max(after) // KIB,
                                                     ctx.data.get('last', 0) // KIB))


class ClientKilled(XferCase):
    """The host client is a helper process, SIGKILLed mid-stream. The daemon
    keeps serving the port: a new client, connecting right after the kill,
    waits until the daemon has seen the death and gets the rest of the
    stream (what was in the dead client's socket is lost, nothing else),
    and the daemon is alive at the end."""
    name = 'client_killed'
    SEED = 90
    UP = 4 * MIB
    DOWN = 0
    KILL_AT = 1 * MIB
    MAX_LOSS = 512 * KIB        # the dead socket's queue and the helper's last read
    PORT = 'org.vserial.killed'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.PORT, ctx.sock('p1.sock'))]

    def host(self, ctx):
        path = ctx.sock('p1.sock')
        if not wait_listening(ctx, path, 20):
            raise AssertionError('port socket %s is not listening' % path)
        dead = ctx.path('killed.bin')
        helper = subprocess.Popen([sys.executable, '-c', KILLED_HELPER, path, dead],
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        LIVE.add(helper)
        try:
            wait_until(ctx, lambda: os.path.exists(dead) and os.path.getsize(dead) >= self.KILL_AT,
                       'the helper client to receive %d bytes' % self.KILL_AT, 30)
            os.kill(helper.pid, signal.SIGKILL)
        finally:
            if helper.poll() is None:
                helper.kill()
            helper.wait()
            LIVE.discard(helper)
        ctx.data['killed_at'] = time.monotonic()
        with open(dead, 'rb') as f:
            ctx.data['dead'] = f.read()
        # At once: if the daemon has not yet noticed the death, this
        # client waits in the backlog until it has (issue 15).
        finish_split_stream(ctx, connect(ctx, path))

    def verify(self, ctx):
        dead = ctx.data.get('dead', b'')
        ctx.check(len(dead) >= self.KILL_AT, 'the killed client got only %d bytes' % len(dead))
        lost = check_split_stream(ctx, 'the killed client', 'the new client')
        ctx.check(0 <= lost <= self.MAX_LOSS,
                  '%d bytes lost between the killed client and the new one (at most %d may be in the '
                  'dead socket)' % (lost, self.MAX_LOSS))
        ctx.check('closed unserved' not in read_file(ctx.path('daemon.log')),
                  'a host client was refused')
        ctx.info.append('killed client got %d bytes, the new one %d, %d lost in the dead socket'
                        % (len(dead), len(ctx.data.get('got', b'')), lost))
        drop_if_passed(ctx, 'up.src', 'killed.bin')


class SlowReader(XferCase):
    """A host reader that takes 1 byte per ms for a few seconds, then reads
    fast, on a port the guest writes 12 MiB to: more than the guest's
    transmit ring (256 buffers of 32 KiB: its write() returns once the
    data is queued there), the port's buffer (1 MiB) and the socket hold,
    so the guest's writer must wait for the reader; nothing may be lost."""
    name = 'slow_reader'
    SEED = 100
    UP = 12 * MIB
    DOWN = 0
    SLOW_S = 3.0
    PORT = 'org.vserial.slow'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.PORT, ctx.sock('p1.sock'))]

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        got = bytearray()
        d = recv_some(ctx, s, 1)
        if not d:
            raise AssertionError('nothing from the guest')
        got += d
        t0 = time.monotonic()
        t_end = t0 + self.SLOW_S
        done = ctx.path('up.done')      # the guest's writer ended (hostfs: seen at once)
        k = 0
        while time.monotonic() < t_end:
            time.sleep(0.001)
            try:
                got += s.recv(1)
            except BlockingIOError:
                pass
            k += 1
            if k % 50 == 0 and 'early' not in ctx.data and os.path.exists(done):
                ctx.data['early'] = time.monotonic() - t0
        if 'early' not in ctx.data and os.path.exists(done):
            ctx.data['early'] = time.monotonic() - t0
        ctx.data['slow_bytes'] = len(got)
        ctx.data['queued'] = struct.unpack('i', fcntl.ioctl(s.fileno(), termios.FIONREAD, b'\0' * 4))[0]
        ctx.data['slow_end'] = time.time()
        rest, _, _ = recv_exact(ctx, s, self.UP - len(got))
        got += rest
        ctx.data['got'] = bytes(got)
        send_all(ctx, s, ('ACK %s\n' % sha256(got)).encode())
        wait_guest_file(ctx, 'g.done', 60, quiet=True)
        s.close()

    def verify(self, ctx):
        super().verify(ctx)
        early = ctx.data.get('early')
        ctx.check(early is None, "the guest's 12 MiB write ended %.2f s into the slow reading (of %.1f s): "
                  'the daemon took more than its bound' % (early or 0, self.SLOW_S))
        if 'slow_bytes' in ctx.data:
            ctx.info.append('slow phase: %d bytes read in %.1f s, %d bytes waiting in the socket at its '
                            'end; the guest writer was still blocked' % (ctx.data['slow_bytes'], self.SLOW_S,
                                                                     ctx.data['queued']))


class VmmRestart(Case):
    """One vserial process, two User-Mode Linux boots one after the other:
    the second sees the same ports with the same names, and data flows both
    ways in each. The host clients stay connected across the restart."""
    name = 'vmm_restart'
    script = 'vmm_restart.sh'
    boots = 2
    SIZE = 512 * KIB
    NAMES = {1: 'org.vserial.restart.up', 2: 'org.vserial.restart.down'}

    def ports(self, ctx):
        return named_ports(ctx, self.NAMES)

    def prepare(self, ctx):
        write_rounds(ctx, 110, self.SIZE, 120, self.SIZE, digest=True)

    def env(self, ctx):
        return {'SIZE': self.SIZE, 'EXPECT1': sha256(ctx.data['down1']),
                'EXPECT2': sha256(ctx.data['down2'])}

    def host(self, ctx):
        a = connect(ctx, ctx.sock('p1.sock'))
        b = connect(ctx, ctx.sock('p2.sock'))
        for k in (1, 2):
            got, _, _ = recv_exact(ctx, a, self.SIZE, grace=1)
            ctx.data['got%d' % k] = (len(got), sha256(got))
            if len(got) != self.SIZE:
                raise AssertionError('boot %d: the host got %d of %d bytes on port 1' % (k, len(got), self.SIZE))
            send_all(ctx, a, ('ACK-%d %s\n' % (k, sha256(got))).encode())
            wait_until(ctx, lambda: os.path.exists(ctx.path('g.ready.%d' % k)),
                       'boot %d to open port 2' % k, 60)
            ctx.data['sent%d' % k] = send_all(ctx, b, ctx.data['down%d' % k])
        wait_guest_file(ctx, 'g.done.2', 60, quiet=True)
        a.close()
        b.close()

    def verify(self, ctx):
        for k in (1, 2):
            ctx.check(ctx.data.get('got%d' % k) == (self.SIZE, ctx.data['up%d' % k]),
                      'boot %d: port 1: the host got %s, want %d bytes sha256 %s'
                      % (k, ctx.data.get('got%d' % k), self.SIZE, ctx.data['up%d' % k]))
            ctx.check(os.path.exists(ctx.path('g.done.%d' % k)), 'boot %d did not finish' % k)
        want = ['vport0p1 ' + self.NAMES[1], 'vport0p2 ' + self.NAMES[2]]
        names = [read_file(ctx.path('names.%d' % k)).splitlines() for k in (1, 2)]
        for k in (1, 2):
            ctx.check(all(w in names[k - 1] for w in want),
                      'boot %d: the guest saw ports %s, want %s among them' % (k, names[k - 1], want))
        ctx.check(names[0] == names[1], 'the ports differ between boots: %s, then %s' % tuple(names))
        log = read_file(ctx.path('daemon.log'))
        n = log.count('VMM connected')
        ctx.check(n == 2, 'the daemon logged "VMM connected" %d times, want 2' % n)
        con = read_file(ctx.path('daemon.stdout'))
        for k in (1, 2):
            ctx.check('console line from boot %d' % k in con, 'boot %d: its console line is not on the '
                      "daemon's stdout" % k)
        drop_if_passed(ctx, 'up.1', 'up.2')


class Ports31(Case):
    """max_nr_ports 31: console 0 and 30 named ports, every one carrying data
    both ways at the same time."""
    name = 'ports_31'
    script = 'ports_31.sh'
    N = 30
    SIZE = 256 * KIB

    def name_of(self, i):
        return 'org.vserial.many.p%02d' % i

    def daemon_args(self, ctx):
        return ['--max-ports', '31']

    def ports(self, ctx):
        return ['id=0,console,backend=stdio'] + \
            ['id=%d,name=%s,backend=unix,path=%s' % (i, self.name_of(i), ctx.sock('p%d.sock' % i))
             for i in range(1, self.N + 1)]

    def prepare(self, ctx):
        ctx.data['up'] = {}
        ctx.data['down'] = {}
        for i in range(1, self.N + 1):
            up = det_bytes(1000 + i, self.SIZE)
            ctx.data['up'][i] = sha256(up)
            write_out(ctx, 'up.%d' % i, up)
            ctx.data['down'][i] = det_bytes(2000 + i, self.SIZE)

    def env(self, ctx):
        return {'NPORTS': self.N, 'SIZE': self.SIZE}

    def host(self, ctx):
        socks = {i: connect(ctx, ctx.sock('p%d.sock' % i)) for i in range(1, self.N + 1)}
        got = {i: bytearray() for i in socks}
        sent = all_ways(ctx, socks, ctx.data['down'], self.SIZE, 60, lambda i, d: got[i].extend(d))
        ctx.data['got'] = {i: (len(g), sha256(g)) for i, g in got.items()}
        ctx.data['sent'] = sent
        while not ctx.stop.is_set() and not os.path.exists(ctx.path('result')):
            time.sleep(0.05)
        for s in socks.values():
            s.close()

    def verify(self, ctx):
        bad = []
        got = ctx.data.get('got', {})
        for i in range(1, self.N + 1):
            if got.get(i) != (self.SIZE, ctx.data['up'][i]):
                bad.append('port %d: host got %s' % (i, got.get(i)))
        ctx.check(not bad, 'guest->host: ' + '; '.join(bad) if bad else '')
        lines = read_file(ctx.path('down.sha256')).splitlines()
        want = ['%d %d %s' % (i, self.SIZE, sha256(ctx.data['down'][i])) for i in range(1, self.N + 1)]
        badd = [ln for ln in lines if ln not in want]
        ctx.check(len(lines) == self.N and not badd,
                  'host->guest: %d port lines, wrong: %s' % (len(lines), badd[:5]))
        names = read_file(ctx.path('names')).splitlines()
        wantn = ['vport0p%d %s' % (i, self.name_of(i)) for i in range(1, self.N + 1)]
        ctx.check(names == wantn, 'sysfs names: %s' % [n for n in names if n not in wantn][:5])
        con = read_file(ctx.path('daemon.stdout'))
        ctx.check('30 ports streaming' in con and '30 ports done' in con,
                  'console lines missing from the daemon stdout: %r' % con[-200:])
        gs = guest_times(ctx)
        if gs:
            total = 2 * self.N * self.SIZE
            ctx.info.append('30 ports, %d KiB each way each: %.1f MB/s in all (%d KiB in %.3f s, guest side)'
                            % (self.SIZE // KIB, mbps(total, gs), total // KIB, gs))
        if not ctx.errors:
            for i in range(1, self.N + 1):
                os.unlink(ctx.path('up.%d' % i))


def text_bytes(seed, n):
    """n bytes of printable lines (a tty in raw mode passes them unchanged)."""
    rnd = random.Random(seed)
    out = bytearray()
    k = 0
    while len(out) < n:
        out += b'%06d %s\n' % (k, rnd.randbytes(36).hex().encode())
        k += 1
    return bytes(out[:n - 1] + b'\n')


class Hvc1Console(Case):
    """A second console port (id 1) is /dev/hvc1: 256 KiB out and 64 KiB in
    through it, byte-exact; hvc0 (port 0) stays separate."""
    name = 'hvc1_console'
    script = 'hvc1_console.sh'
    UP = 256 * KIB
    DOWN = 64 * KIB

    def ports(self, ctx):
        return ['id=0,console,backend=unix,path=' + ctx.sock('con0.sock'),
                'id=1,console,backend=unix,path=' + ctx.sock('con1.sock')]

    def prepare(self, ctx):
        ctx.data['up'] = text_bytes(131, self.UP)
        ctx.data['down'] = text_bytes(132, self.DOWN)
        write_out(ctx, 'up.src', ctx.data['up'])
        ctx.data['marker'] = 'vserial-hvc0-marker-%08x' % random.getrandbits(32)

    def env(self, ctx):
        return {'DOWN': self.DOWN, 'EXPECT': sha256(ctx.data['down']), 'MARKER0': ctx.data['marker']}

    def con0(self, ctx):
        s = connect(ctx, ctx.sock('con0.sock'))
        got = read_until(ctx, s, lambda b: ctx.data['marker'].encode() in b)
        got += recv_rest(ctx, s)       # anything more would be hvc1's
        ctx.data['con0'] = got
        s.close()

    def con1(self, ctx):
        s = connect(ctx, ctx.sock('con1.sock'))
        wait_until(ctx, lambda: os.path.exists(ctx.path('g.ready')), 'the guest to set hvc1 raw', 60)
        got, sent, t0, t1 = xfer_fd(ctx, s.fileno(), s.fileno(), ctx.data['down'], self.UP)
        ctx.data['con1'] = got
        ctx.data['sent'] = sent
        ctx.data['con1'] += recv_rest(ctx, s)
        s.close()

    def host(self, ctx):
        run_together(ctx, self.con0, self.con1)

    def verify(self, ctx):
        up = ctx.data['up']
        c1 = ctx.data.get('con1', b'')
        c0 = ctx.data.get('con0', b'')
        ctx.check(c1 == up, 'hvc1 -> port 1: the host got %d bytes (sha256 %s), want exactly the %d sent '
                  '(sha256 %s)' % (len(c1), sha256(c1), len(up), sha256(up)))
        ctx.check(ctx.data.get('sent') == self.DOWN, 'port 1: the host sent %s of %d bytes'
                  % (ctx.data.get('sent'), self.DOWN))
        line = read_file(ctx.path('down.sha256')).split()
        ctx.check(line == [str(self.DOWN), sha256(ctx.data['down'])], 'port 1 -> hvc1: the guest got %s' % line)
        ctx.check(ctx.data['marker'].encode() in c0, 'hvc0 -> port 0: marker missing; got %r' % c0[-200:])
        ctx.check(up[:20] not in c0, "hvc1's output showed up on port 0")
        ctx.check(ctx.data['marker'].encode() not in c1, "hvc0's output showed up on port 1")
        drop_if_passed(ctx, 'up.src')


class SttyDefault(Case):
    """The console's size in the guest ("stty -F /dev/hvc0 size") is the
    daemon's default, 80x25, when nothing sets another (backend=stdio with
    stdout not a terminal)."""
    name = 'stty_default'
    script = 'stty_size.sh'

    def ports(self, ctx):
        return ['id=0,console,backend=stdio']

    def env(self, ctx):
        return {'WANT1': '25x80'}

    def verify(self, ctx):
        got = read_file(ctx.path('size1')).strip()
        ctx.check(got == '25 80', 'stty size in the guest: %r, want "25 80"' % got)


class SttyPty(Case):
    """A console on backend=pty follows the size the terminal program sets
    on the pty: 80x25 first, then what the host sets (132x43)."""
    name = 'stty_pty'
    script = 'stty_size.sh'

    def ports(self, ctx):
        return ['id=0,console,backend=pty']

    def env(self, ctx):
        return {'WANT1': '25x80', 'WANT2': '43x132'}

    def host(self, ctx):
        fd = os.open(pty_path(ctx, 0), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            wait_until(ctx, lambda: os.path.exists(ctx.path('g.ready')), 'the guest to read the first size', 60)
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 43, 132, 0, 0))
            wait_guest_file(ctx, 'size2', 60, quiet=True)
        finally:
            os.close(fd)

    def verify(self, ctx):
        got = [read_file(ctx.path(f)).strip() for f in ('size1', 'size2')]
        ctx.check(got == ['25 80', '43 132'], 'stty size in the guest: %s, want ["25 80", "43 132"]' % got)


class BufferOption(Case):
    """buffer=SIZE is the bound on guest output the daemon holds while
    the host side does not read: with host clients that read nothing,
    the guest's writers to a buffer=64K port and to a buffer=4M port
    get stuck 4M - 64K apart (the guest's transmit ring and the sockets
    hold the same on both; the socket queues are measured)."""
    name = 'buffer_option'
    script = 'buffer_option.sh'
    SMALL = 64 * KIB
    BIG = 4 * MIB
    TOTAL = 16 * MIB
    SLACK = 64 * KIB        # a guest buffer (32 KiB) the daemon holds part of, twice

    def ports(self, ctx):
        return ['id=1,name=org.vserial.buf.small,buffer=64K,backend=unix,path=' + ctx.sock('p1.sock'),
                'id=2,name=org.vserial.buf.big,buffer=4M,backend=unix,path=' + ctx.sock('p2.sock')]

    def env(self, ctx):
        return {'TOTAL': self.TOTAL, 'SMALL': '64K', 'BIG': '4M'}

    def host(self, ctx):
        socks = [connect(ctx, ctx.sock('p%d.sock' % p)) for p in (1, 2)]
        wait_until(ctx, lambda: os.path.exists(ctx.path('g.mid')), 'the guest writers to get stuck', 60)
        ctx.data['queued'] = [struct.unpack('i', fcntl.ioctl(s.fileno(), termios.FIONREAD, b'\0' * 4))[0]
                              for s in socks]
        ctx.data['got'] = []
        for s in socks:
            ctx.data['got'].append(len(read_until(ctx, s, lambda b: len(b) >= self.TOTAL)))
        for s in socks:
            s.close()

    def verify(self, ctx):
        ctx.check(ctx.data.get('got') == [self.TOTAL] * 2, 'the host got %s bytes, want %d on each port'
                  % (ctx.data.get('got'), self.TOTAL))
        try:
            n1, n2 = map(int, read_file(ctx.path('stuck')).split())
        except ValueError:
            ctx.errors.append('no "stuck" counts from the guest')
            return
        q1, q2 = ctx.data.get('queued', [0, 0])
        want = (self.BIG - self.SMALL) + (q2 - q1)
        ctx.info.append('writers stuck after %d and %d bytes (socket queues %d and %d): %d apart, want %d'
                        % (n1, n2, q1, q2, n2 - n1, want))
        ctx.check(abs((n2 - n1) - want) <= self.SLACK,
                  'buffer=64K vs buffer=4M: the guest got %d and %d bytes written before its writes '
                  'blocked, %d apart; want %d apart (4M - 64K + the socket queue difference %d), '
                  'give or take %d: buffer= is not the bound it should be'
                  % (n1, n2, n2 - n1, want, q2 - q1, self.SLACK))


CASES = [BackendUnixConnect(), BackendTcp(), BackendPty(), BackendFile(), BackendStdio(),
         BackendNull(), Reconnect20(), ClientKilled(), SlowReader(), VmmRestart(), Ports31(),
         Hvc1Console(), SttyDefault(), SttyPty(), BufferOption()]
