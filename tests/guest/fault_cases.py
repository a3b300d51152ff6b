"""Real-guest fault cases: what breaks around the daemon must not break it.

Loaded by run.py, which runs CASES. Guest scripts are tests/guest/cases/*.sh.

  fault_disk_full     backend=file on a 256 KiB tmpfs that a filler file
                      fills: the daemon keeps what the disk refused (the
                      port throttles), logs the error rate-limited, retries;
                      once the filler is deleted the file is complete and
                      byte-exact. The tmpfs is mounted by the test (root):
                      if that fails the case fails.
  fault_unix_stall    a unix host client that stops reading: the guest's
                      writer gets stuck, port 2 carries data both ways
                      meanwhile, and once the client reads again all 16 MiB
                      arrive (sha256)
  fault_tcp_reset     a tcp host client that resets the connection (SO_LINGER
                      0) mid-stream: the daemon goes on serving the port, a
                      new client gets the rest of the stream
  fault_sigpipe       a unix host client that closes with data in flight
                      while the daemon writes to it, and a control client
                      that closes with replies pending: no SIGPIPE kills
                      the daemon, a new client gets the rest
  fault_vmm_partial   raw vhost-user clients that send part of a header, or
                      a header and part of its payload, then close: the
                      daemon logs each and accepts the next VMM, and the
                      UML guest that connects after them works (data both
                      ways)
"""

import atexit
import os
import socket
import struct
import subprocess
import time

from helpers import (KIB, MIB, Case, both_ways, check_split_stream, connect, det_bytes,
                     drop_if_passed, finish_split_stream, free_tcp_port, log_has, read_file,
                     recv_some, send_all, sha256, wait_guest_file, wait_listening, wait_until,
                     write_out)


# ------------------------------------------------------------ disk full

MOUNTS = set()


def umount(path):
    if path in MOUNTS:
        subprocess.run(['umount', '-l', path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
        MOUNTS.discard(path)


@atexit.register
def _umount_all():
    for p in list(MOUNTS):
        umount(p)


class FaultDiskFull(Case):
    name = 'fault_disk_full'
    script = 'fault_disk_full.sh'
    FS = 256 * KIB
    FILLER = 200 * KIB
    SIZE = 160 * KIB        # fits once the filler is gone, not before
    PORT = 'org.vserial.full'
    ENOSPC = 'No space left on device'

    def prepare(self, ctx):
        mnt = ctx.path('disk')
        os.makedirs(mnt)
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%d' % self.FS, 'vsfull', mnt],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise AssertionError('cannot mount a %d KiB tmpfs on %s (the case needs root): %s'
                                 % (self.FS // KIB, mnt, (r.stderr or r.stdout).strip()))
        MOUNTS.add(mnt)
        ctx.data['mnt'] = mnt
        with open(os.path.join(mnt, 'filler'), 'wb') as f:
            f.write(b'\xff' * self.FILLER)
        ctx.data['up'] = det_bytes(501, self.SIZE)
        write_out(ctx, 'up.src', ctx.data['up'])

    def ports(self, ctx):
        return ['id=1,name=%s,backend=file,buffer=64K,path=%s'
                % (self.PORT, os.path.join(ctx.data['mnt'], 'out.bin'))]

    def host(self, ctx):
        mnt = ctx.data['mnt']
        out = os.path.join(mnt, 'out.bin')
        try:
            # The daemon says so, and keeps saying so while the disk is full.
            try:
                wait_until(ctx, lambda: log_has(ctx, self.ENOSPC),
                           'the daemon to log "%s"' % self.ENOSPC, 20)
                ctx.data['logged'] = True
            except AssertionError as e:
                ctx.errors.append(str(e))
            t0 = time.monotonic()
            time.sleep(3.0)
            ctx.data['held_s'] = time.monotonic() - t0
            ctx.data['size_full'] = os.path.getsize(out)
            ctx.data['warn_lines'] = read_file(ctx.path('daemon.log')).count(self.ENOSPC)
            ctx.data['alive_full'] = ctx.daemon.poll() is None
            os.unlink(os.path.join(mnt, 'filler'))
            t1 = time.monotonic()
            try:
                wait_until(ctx, lambda: os.path.getsize(out) >= self.SIZE,
                           'the file to grow to %d bytes after space was freed (it has %d)'
                           % (self.SIZE, os.path.getsize(out)), 15)
                ctx.data['after_s'] = time.monotonic() - t1
            except AssertionError as e:
                ctx.errors.append(str(e))
            time.sleep(0.3)
            with open(out, 'rb') as f:
                ctx.data['got'] = f.read()
            with open(ctx.path('h.done'), 'w'):
                pass
            # The guest leaves; the daemon keeps the file open until the end.
            while not ctx.stop.is_set():
                time.sleep(0.05)
        finally:
            # lazy: the daemon still has out.bin open
            umount(mnt)

    def verify(self, ctx):
        up = ctx.data['up']
        got = ctx.data.get('got', b'')
        ctx.check(ctx.data.get('alive_full') is True, 'the daemon was not running while the disk was full')
        ctx.check(ctx.data.get('size_full', self.SIZE) < self.SIZE,
                  'the file had %s bytes while the disk was full' % ctx.data.get('size_full'))
        n = ctx.data.get('warn_lines', 0)
        held = ctx.data.get('held_s', 0)
        # log_ratelimit: at most 10 a second; the retry is once a second
        ctx.check(1 <= n <= 10 * (held + 5), '%d "%s" lines in the daemon log over %.1f s: '
                  'want at least one, rate-limited' % (n, self.ENOSPC, held))
        ctx.check(got == up, 'the file has %d bytes (sha256 %s), want %d (sha256 %s)'
                  % (len(got), sha256(got), len(up), sha256(up)))
        ctx.info.append('disk full: %d of %d bytes on disk, %d error lines in %.1f s; '
                        'complete %.2f s after the filler went'
                        % (ctx.data.get('size_full', -1), self.SIZE, n, held, ctx.data.get('after_s', -1)))

# ------------------------------------------------------- unix stall


class FaultUnixStall(Case):
    name = 'fault_unix_stall'
    script = 'fault_unix_stall.sh'
    SIZE = 16 * MIB
    P2 = 256 * KIB
    BUFFER = '256K'

    def ports(self, ctx):
        return ['id=1,name=org.vserial.stall,buffer=%s,backend=unix,path=%s'
                % (self.BUFFER, ctx.sock('p1.sock')),
                'id=2,name=org.vserial.side,backend=unix,path=' + ctx.sock('p2.sock')]

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(511, self.SIZE)
        write_out(ctx, 'up.src', ctx.data['up'])
        p2 = det_bytes(512, self.P2)
        ctx.data['p2'] = sha256(p2)
        write_out(ctx, 'p2.src', p2)
        ctx.data['down2'] = det_bytes(513, self.P2)

    def env(self, ctx):
        return {'DOWN2': self.P2, 'EXPECT2': sha256(ctx.data['down2'])}

    def host(self, ctx):
        a = connect(ctx, ctx.sock('p1.sock'))       # reads nothing until g.mid
        b = connect(ctx, ctx.sock('p2.sock'))
        got2 = bytearray()
        while len(got2) < self.P2:
            d = recv_some(ctx, b, self.P2 - len(got2))
            if not d:
                raise AssertionError('port 2: %s after %d bytes' % ('end of file' if d == b'' else
                                                                   'nothing more', len(got2)))
            got2 += d
        ctx.data['got2'] = sha256(got2)
        send_all(ctx, b, ('ACK %s\n' % sha256(got2)).encode())
        ctx.data['sent2'] = send_all(ctx, b, ctx.data['down2'])
        ctx.data['p2_done'] = time.monotonic()
        wait_until(ctx, lambda: os.path.exists(ctx.path('g.mid')), 'the guest to finish port 2', 60)
        ctx.data['alive_mid'] = ctx.daemon.poll() is None
        got = bytearray()
        t0 = time.monotonic()
        while len(got) < self.SIZE:
            d = recv_some(ctx, a, min(MIB, self.SIZE - len(got)))
            if not d:
                break
            got += d
        ctx.data['drain_s'] = time.monotonic() - t0
        ctx.data['got'] = bytes(got)
        wait_guest_file(ctx, 'g.done', 60, quiet=True)
        a.close()
        b.close()

    def verify(self, ctx):
        up = ctx.data['up']
        got = ctx.data.get('got', b'')
        ctx.check(ctx.data.get('alive_mid') is True, 'the daemon was not running while port 1 was stuck')
        ctx.check(ctx.data.get('got2') == ctx.data['p2'], 'port 2 guest->host: sha256 %s, want %s'
                  % (ctx.data.get('got2'), ctx.data['p2']))
        ctx.check(ctx.data.get('sent2') == self.P2, 'port 2: the host sent %s bytes' % ctx.data.get('sent2'))
        ctx.check(got == up, 'port 1: the host got %d bytes (sha256 %s), want %d (sha256 %s)'
                  % (len(got), sha256(got), len(up), sha256(up)))
        try:
            stuck = int(read_file(ctx.path('stuck')).strip())
            ctx.info.append('port 1 writer stuck after %d of %d bytes; %d bytes drained in %.2f s '
                            'once the client read again' % (stuck, self.SIZE, len(got),
                                                            ctx.data.get('drain_s', -1)))
        except ValueError:
            pass
        drop_if_passed(ctx, 'up.src')

# -------------------------------------------- peer dies mid-stream


class PeerDies(Case):
    """Base: the guest writes UP bytes to port 1 (backend_xfer.sh, DOWN 0);
    the first host client reads KILL_AT bytes and then dies the way
    kill() says; a new client reads the rest. What the first got must be
    the start of the stream, what the second got its end; what was in
    the dead socket is lost, nothing else. The daemon must be alive
    throughout."""
    script = 'backend_xfer.sh'
    UP = 8 * MIB
    KILL_AT = 1 * MIB
    PORT = None
    SEED = 0

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(self.SEED, self.UP)
        write_out(ctx, 'up.src', ctx.data['up'])

    def env(self, ctx):
        return {'DEV': 'vport0p1', 'NAME': self.PORT, 'DOWN': 0, 'ACK': 1, 'QUIET': 0}

    def open_client(self, ctx):
        raise NotImplementedError

    def kill(self, ctx, s):
        raise NotImplementedError

    def side(self, ctx):
        pass

    def host(self, ctx):
        s = self.open_client(ctx)
        dead = bytearray()
        while len(dead) < self.KILL_AT:
            d = recv_some(ctx, s, 64 * KIB)
            if not d:
                raise AssertionError('the first client got end of file after %d bytes' % len(dead))
            dead += d
        self.kill(ctx, s)
        ctx.data['dead'] = bytes(dead)
        self.side(ctx)
        time.sleep(0.2)
        ctx.data['alive'] = ctx.daemon.poll() is None
        # Served once the daemon has seen the first one die (issue 15:
        # it waits in the backlog until then, nothing is refused).
        finish_split_stream(ctx, self.open_client(ctx))

    def verify(self, ctx):
        lost = check_split_stream(ctx, 'the first client', 'the second client')
        ctx.check(lost >= 0, 'the clients got %d bytes more than the stream' % -lost)
        log = read_file(ctx.path('daemon.log'))
        ctx.check('host client 1 disconnected' in log, 'the daemon never logged the first client leaving')
        ctx.check('closed unserved' not in log, 'a host client was refused')
        ctx.check('signal' not in log.lower() or 'shutting down' in log, 'a signal in the daemon log')
        ctx.info.append('first client %d bytes, second %d, %d lost with the dead socket'
                        % (len(ctx.data['dead']), len(ctx.data['got']), lost))
        drop_if_passed(ctx, 'up.src')


class FaultTcpReset(PeerDies):
    name = 'fault_tcp_reset'
    PORT = 'org.vserial.rst'
    SEED = 521

    def prepare(self, ctx):
        ctx.data['tcp_port'] = free_tcp_port()
        super().prepare(ctx)

    def ports(self, ctx):
        return ['id=1,name=%s,backend=tcp,port=%d' % (self.PORT, ctx.data['tcp_port'])]

    def open_client(self, ctx):
        end = time.monotonic() + 20
        while True:
            try:
                s = socket.create_connection(('127.0.0.1', ctx.data['tcp_port']), timeout=5)
                s.setblocking(False)
                return s
            except OSError as e:
                if time.monotonic() > end or ctx.stop.is_set():
                    raise AssertionError('cannot connect to port %d: %s' % (ctx.data['tcp_port'], e))
                time.sleep(0.05)

    def kill(self, ctx, s):
        # RST instead of FIN: the daemon's next read or write fails
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.close()


class FaultSigpipe(PeerDies):
    name = 'fault_sigpipe'
    PORT = 'org.vserial.pipe'
    SEED = 531

    def daemon_args(self, ctx):
        return ['--control', ctx.sock('ctl.sock')]

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.PORT, ctx.sock('p1.sock'))]

    def open_client(self, ctx):
        return connect(ctx, ctx.sock('p1.sock'))

    def kill(self, ctx, s):
        # close() with unread data: the daemon's writes get EPIPE
        s.close()

    def side(self, ctx):
        # Control clients that leave with replies unread, several times
        if not wait_listening(ctx, ctx.sock('ctl.sock'), 20):
            raise AssertionError('control socket not listening')
        for _ in range(5):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(ctx.sock('ctl.sock'))
            c.sendall(b'{"cmd":"subscribe"}\n' + b'{"cmd":"list"}\n' * 200)
            c.close()
        ctx.data['ctl_alive'] = ctx.daemon.poll() is None

    def verify(self, ctx):
        super().verify(ctx)
        ctx.check(ctx.data.get('ctl_alive') is True,
                  'the daemon died after control clients left with replies pending')

# ------------------------------------------------ VMM dies mid-message


class FaultVmmPartial(Case):
    """Before the guest boots, raw vhost-user clients connect one after
    the other: 6 bytes of a header then close; a whole SET_FEATURES
    header and 3 of its 8 payload bytes then close; GET_FEATURES
    (answered) then 5 bytes then close. The daemon logs each and is
    ready for the next; then the UML guest connects and moves data both
    ways on port 1."""
    name = 'fault_vmm_partial'
    script = 'backend_xfer.sh'
    UP = 512 * KIB
    DOWN = 512 * KIB
    PORT = 'org.vserial.after'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.PORT, ctx.sock('p1.sock'))]

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(541, self.UP)
        ctx.data['down'] = det_bytes(542, self.DOWN)
        write_out(ctx, 'up.src', ctx.data['up'])

    def env(self, ctx):
        return {'DEV': 'vport0p1', 'NAME': self.PORT, 'DOWN': self.DOWN, 'ACK': 1, 'QUIET': 0,
                'EXPECT': sha256(ctx.data['down'])}

    def raw(self, ctx, chunks, want_reply=0):
        """Connect to the VMM socket, send the chunks, read want_reply
        bytes, close. Returns the reply."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(ctx.sock('vhost.sock'))
        reply = b''
        for c in chunks:
            s.sendall(c)
            if want_reply and len(reply) < want_reply:
                while len(reply) < want_reply:
                    d = s.recv(want_reply - len(reply))
                    if not d:
                        break
                    reply += d
        s.close()
        return reply

    def wait_closed(self, ctx, n):
        """Until the daemon logged n closed VMM connections."""
        wait_until(ctx, lambda: read_file(ctx.path('daemon.log')).count('VMM connection closed') >= n,
                   '"VMM connection closed" #%d in the daemon log' % n, 10)

    def host(self, ctx):
        hdr = lambda req, flags, size: struct.pack('<III', req, flags, size)
        t0 = time.monotonic()
        self.raw(ctx, [hdr(1, 1, 0)[:6]])
        self.wait_closed(ctx, 1)
        self.raw(ctx, [hdr(2, 1, 8) + b'\x01\x02\x03'])
        self.wait_closed(ctx, 2)
        rep = self.raw(ctx, [hdr(1, 1, 0), hdr(3, 1, 0)[:5]], want_reply=20)
        ctx.data['reply'] = rep
        self.wait_closed(ctx, 3)
        ctx.data['raw_s'] = time.monotonic() - t0
        # now the guest: data both ways on port 1
        s = connect(ctx, ctx.sock('p1.sock'))
        got, sent = both_ways(ctx, s, ctx.data['down'], self.UP)
        ctx.data['got'] = got
        ctx.data['sent'] = sent
        send_all(ctx, s, ('ACK %s\n' % sha256(got)).encode())
        wait_guest_file(ctx, 'g.done', 60, quiet=True)
        s.close()

    def verify(self, ctx):
        rep = ctx.data.get('reply', b'')
        ctx.check(len(rep) == 20 and struct.unpack('<III', rep[:12])[:2] == (1, 5),
                  'GET_FEATURES on the third raw connection: reply %r' % rep)
        log = read_file(ctx.path('daemon.log'))
        n = log.count('VMM connection closed')
        ctx.check(n >= 3, 'the daemon logged %d closed VMM connections, want 3 (then the guest)' % n)
        ctx.check('mid-message' in log, 'the daemon did not log the connection ending mid-message')
        ctx.check('refused a second VMM' not in log,
                  'the guest connected while a raw client was still there (timing): %s' % 'refused')
        ctx.check(log.count('VMM connected') == 4, 'the daemon logged "VMM connected" %d times, want 4'
                  % log.count('VMM connected'))
        ctx.check(ctx.data.get('got') == ctx.data['up'], 'guest->host: the host got %d of %d bytes (sha256 %s)'
                  % (len(ctx.data.get('got') or b''), self.UP, sha256(ctx.data.get('got') or b'')))
        ctx.check(ctx.data.get('sent') == self.DOWN, 'host->guest: sent %s of %d' % (ctx.data.get('sent'),
                                                                                     self.DOWN))
        line = read_file(ctx.path('down.sha256')).split()
        ctx.check(line == [str(self.DOWN), sha256(ctx.data['down'])], 'host->guest: the guest got %s' % line)
        ctx.info.append('3 broken VMM connections handled in %.3f s before the guest connected'
                        % ctx.data.get('raw_s', -1))
        drop_if_passed(ctx, 'up.src')


CASES = [FaultDiskFull(), FaultUnixStall(), FaultTcpReset(), FaultSigpipe(), FaultVmmPartial()]
