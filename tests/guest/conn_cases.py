"""Real-guest cases for host connections (issues 13 and 15): clients that
come and go, wait their turn, share a port, and a port unplugged and plugged
under its client.

Loaded by run.py, which runs CASES.

  reconnect_100      100 host clients, each connecting the moment the last
                     closed, each sending a chunk and closing at once, while
                     the guest writes all the time: the guest gets every
                     chunk, in order; what each client read is the guest's
                     output, in order; nothing refused
  clients_in_order   three clients connect at once to a clients=1 port:
                     served one after another in arrival order, each gets
                     only its own answer
  guest_reopen       the guest reopens its port right after the host client
                     left, with a writer still on the port, 20 times
                     (tp-qemu's interrupted_transfer[port_disconnect]); also
                     under QEMU
  unplug_plug_60     60 vserialctl unplug/plug cycles while one host client
                     stays and data flows both ways: everything that arrived
                     is checked record by record; the only bytes missing
                     are those the guest driver drops at an unplug; also
                     under QEMU
  clients_fanout     clients=4: a writer, two raw readers and a vserialctl
                     attach --read-only get the same guest output (sha256);
                     only the writer's input reaches the guest
  slow_reader_rule   clients=2: a reader that never reads is dropped when a
                     whole buffer behind; the guest's writes and the writer
                     go on; the reader got a prefix and end of file
  on_connect_modes   on-connect=replay vs discard after a client left with
                     output held: what the next client gets, exactly
"""

import json
import os
import random
import re
import select
import socket
import subprocess
import threading
import time

from helpers import (KIB, LIVE, MIB, Case, CtlCase, connect, ctl, det_bytes, drop_if_passed,
                     read_file, read_until, recv_exact, recv_some, send_all, sha256, vserialctl,
                     wait_guest_file, wait_listening, wait_log, wait_until, write_out)

HERE = os.path.dirname(os.path.abspath(__file__))
VSG_SRC = os.path.join(HERE, 'qemu', 'vsg.c')
REC = 16


def record(magic, pos):
    """vsg.c's record(): 16 bytes naming their stream position."""
    check = ((pos * 2654435761) & 0xffffffff) ^ 0x5a5a5a5a
    return magic + pos.to_bytes(8, 'little') + check.to_bytes(4, 'little')


def stream(magic, start, n):
    """Bytes [start, start + n) of a record stream (start % 16 == 0 not
    needed)."""
    first = start - start % REC
    out = bytearray()
    p = first
    while p < start + n:
        out += record(magic, p)
        p += REC
    return bytes(out[start - first:start - first + n])


def parse_record(b, magic):
    """The position of a valid record in @b (16 bytes), or None."""
    if len(b) < REC or b[:4] != magic:
        return None
    pos = int.from_bytes(b[4:12], 'little')
    return pos if pos % REC == 0 and record(magic, pos) == b[:REC] else None


def port_state(ctx, pid=1):
    for p in json.loads(ctl(ctx, 'list', '--json')):
        if p['id'] == pid:
            return p
    raise AssertionError('port %d is not listed' % pid)


def drain(s):
    """What @s has for us right now."""
    got = bytearray()
    s.setblocking(False)
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += d
    except (BlockingIOError, ConnectionResetError):
        pass
    return bytes(got)


def refusals(ctx):
    log = read_file(ctx.path('daemon.log'))
    return log.count('closed unserved') + log.count('try again later')


def connects(ctx):
    return len(re.findall(r'host client \d+ connected', read_file(ctx.path('daemon.log'))))


class Reconnect100(CtlCase):
    """Issue 15's first finding, a hundredfold: each client connects the
    moment the one before closed (no pause), sends its chunk and closes
    without waiting for anything, while the guest writes all the time.
    Clients that find the port busy wait in the backlog; the daemon
    handles each one's end before it takes the next, so every chunk
    reaches the guest, in order, and each client reads nothing but the
    guest's output (the old daemon refused some of them, writing its
    message into their sockets)."""
    name = 'reconnect_100'
    script = 'reconnect_100.sh'
    CLIENTS = 100
    UP = 8 * MIB
    SEED = 150

    def ports(self, ctx):
        return ['id=1,name=org.vserial.rc100,backend=unix,path=' + ctx.sock('p1.sock')]

    def prepare(self, ctx):
        rnd = random.Random(self.SEED)
        ctx.data['up'] = det_bytes(self.SEED, self.UP)
        ctx.data['chunks'] = [det_bytes(self.SEED + 1 + k, rnd.randint(1, 64 * KIB))
                              for k in range(self.CLIENTS)]
        write_out(ctx, 'up.src', ctx.data['up'])

    def env(self, ctx):
        return {'DOWN': sum(len(c) for c in ctx.data['chunks'])}

    def host(self, ctx):
        path = ctx.sock('p1.sock')
        if not wait_listening(ctx, path, 20):
            raise AssertionError('port socket not listening')
        wait_log(ctx, 'port 1 (org.vserial.rc100): guest opened')
        pieces = []
        for k, chunk in enumerate(ctx.data['chunks']):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)         # blocking: waits while the backlog is full
            s.settimeout(30)
            s.sendall(chunk)
            # What the guest wrote, if it comes within 0.1 s; then away.
            select.select([s], [], [], 0.1)
            pieces.append(drain(s))
            s.close()
        s = connect(ctx, path)
        tail = ctx.data['up'][-64:]
        pieces.append(read_until(ctx, s, lambda b: b.endswith(tail)))
        wait_guest_file(ctx, 'g.done')
        ctx.data['counters'] = port_state(ctx)['counters']
        s.close()
        ctx.data['pieces'] = pieces

    def verify(self, ctx):
        up, chunks = ctx.data['up'], ctx.data['chunks']
        down = open(ctx.path('down.bin'), 'rb').read() if os.path.exists(ctx.path('down.bin')) else b''
        want = b''.join(chunks)
        ctx.check(down == want, 'the guest got %d bytes (sha256 %s), want the %d clients\' %d '
                  '(sha256 %s)' % (len(down), sha256(down), len(chunks), len(want), sha256(want)))
        at, bad = 0, None
        pieces = ctx.data.get('pieces', [])
        for k, p in enumerate(pieces):
            if not p:
                continue
            i = up.find(p, at)
            if i < 0:
                bad = (k, p[:80])
                break
            at = i + len(p)
        ctx.check(bad is None, 'client %s read bytes the guest did not write there: %r' % bad
                  if bad else '')
        # The clients before it may have had (and lost, closing) the rest.
        ctx.check(len(pieces) == len(chunks) + 1 and up.endswith(pieces[-1]),
                  'the last client did not get the end of the guest\'s output')
        cnt = ctx.data.get('counters', {})
        ctx.check(refusals(ctx) == 0 and cnt.get('clients_refused') == 0,
                  'the daemon refused clients: %s' % cnt)
        ctx.check(cnt.get('host_connects') == len(chunks) + 1, 'host connections: %s, want %d'
                  % (cnt, len(chunks) + 1))
        got = sum(len(p) for p in pieces[:-1])
        ctx.info.append('%d clients sent %d KiB, all delivered in order; they read %d KiB of guest '
                        'output on the way (%d with some), the last one %d KiB'
                        % (len(chunks), len(want) // KIB, got // KIB,
                           sum(1 for p in pieces[:-1] if p), len(pieces[-1]) // KIB if pieces else 0))
        drop_if_passed(ctx, 'up.src')


class ClientsInOrder(Case):
    """Three clients connect at once to a port that serves one: the
    first is served, the other two wait in the backlog with their lines
    sent; each is served once the one before closed, in the order they
    connected, and reads exactly its own answer."""
    name = 'clients_in_order'
    script = 'clients_in_order.sh'
    N = 3

    def ports(self, ctx):
        return ['id=1,name=org.vserial.order,backend=unix,path=' + ctx.sock('p1.sock')]

    def env(self, ctx):
        return {'N': self.N}

    def host(self, ctx):
        path = ctx.sock('p1.sock')
        if not wait_listening(ctx, path, 20):
            raise AssertionError('port socket not listening')
        wait_log(ctx, 'guest opened')
        cs = []
        for k in range(self.N):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.settimeout(60)
            cs.append(s)
        for k, s in enumerate(cs):
            s.sendall(b'client-%d\n' % (k + 1))
        got = []
        for s in cs:
            b = bytearray()
            while not b.endswith(b'\n'):
                d = s.recv(4096)
                if not d:
                    break
                b += d
            got.append(bytes(b))
            s.close()
        ctx.data['got'] = got

    def verify(self, ctx):
        order = read_file(ctx.path('order')).split()
        want = ['client-%d' % (k + 1) for k in range(self.N)]
        ctx.check(order == want, 'the guest served %s, want %s' % (order, want))
        got = ctx.data.get('got', [])
        ctx.check(got == [b'ack client-%d\n' % (k + 1) for k in range(self.N)],
                  'the clients read %s' % got)
        ctx.check(refusals(ctx) == 0, 'the daemon refused %d clients' % refusals(ctx))
        log = read_file(ctx.path('daemon.log'))
        seq = re.findall(r'host client (\d+) (connected|disconnected)', log)
        ctx.check(seq == [(str(k + 1), w) for k in range(self.N)
                          for w in ('connected', 'disconnected')],
                  'one at a time: %s' % seq)


class GuestReopen(Case):
    """The guest's reopen of its port right after the host client left
    (tp-qemu's interrupted_transfer[micro,port_disconnect] failed it in
    50 tries). Linux's virtio_console allows one open of a port: a
    second open() gets EBUSY until the file is released, and a write()
    in another thread or process keeps it from being released while it
    waits; port_fops_write() waits while the host side is away
    (will_write_block() is true while !host_connected). So the reopen
    succeeds once a new host client is served and the writer finishes;
    with the old daemon the client that came back at once could be
    refused, and nothing ever released the port. Each cycle: the guest
    opens (up to 50 tries, 0.1 s apart), says open-K, leaves a 2 MiB
    writer on the port and closes its own descriptor; the host client
    reads a little and closes, the next connects at once."""
    name = 'guest_reopen'
    script = 'guest_reopen.sh'
    vmms = ('uml', 'qemu')
    CYCLES = 20
    BLOCKS = 512

    def ports(self, ctx):
        return ['id=1,name=org.vserial.reopen,backend=unix,buffer=64K,path=' + ctx.sock('p1.sock')]

    def env(self, ctx):
        return {'CYCLES': self.CYCLES, 'BLOCKS': self.BLOCKS}

    def host(self, ctx):
        path = ctx.sock('p1.sock')
        ctx.data['bad'] = []
        s = connect(ctx, path)
        for k in range(1, self.CYCLES + 1):
            mark = b'open-%d\n' % k
            got = read_until(ctx, s, lambda b: mark in b)
            if mark not in got:
                raise AssertionError('cycle %d: no %r from the guest (the client read %d bytes)'
                                     % (k, mark, len(got)))
            got += read_until(ctx, s, lambda b: len(b) >= 16 * KIB)
            # Only zeros and the guest's open-N lines, ever.
            rest = re.sub(rb'open-\d+\n', b'', got)
            if rest.strip(b'\0'):
                ctx.data['bad'].append((k, rest.strip(b'\0')[:100]))
            s.close()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)         # at once
            s.setblocking(False)
        # The last writer: read until the guest is done.
        while not os.path.exists(ctx.path('g.done')) and not ctx.stop.is_set():
            d = recv_some(ctx, s, MIB, grace=1.0)
            if d and d.strip(b'\0'):
                ctx.data['bad'].append(('last', d.strip(b'\0')[:100]))
        s.close()

    def verify(self, ctx):
        ctx.check(not ctx.data.get('bad'), 'host clients read what the guest did not write: %s'
                  % ctx.data.get('bad'))
        tries = [int(ln.split()[1]) for ln in read_file(ctx.path('reopen')).splitlines()]
        ctx.check(len(tries) == self.CYCLES, 'the guest opened the port %d times, want %d'
                  % (len(tries), self.CYCLES))
        ctx.check(refusals(ctx) == 0, 'the daemon refused %d clients' % refusals(ctx))
        if tries:
            ctx.info.append('reopens took %d..%d failed tries (EBUSY while the last writer ran; '
                            '50 is the limit)' % (min(tries), max(tries)))


class UnplugPlug60(CtlCase):
    """60 vserialctl unplug / plug cycles of a port while its one host
    client stays connected and data flows both ways (tp-qemu's replug
    tests do 60 device_del/device_add on one chardev). Each epoch (the
    port plugged) the guest (vsg replug) writes 256 KiB of records that
    go on where its last writes ended and reads all it gets; the host
    sends 256 KiB of its own records per epoch and reads all. The host
    waits for 64 KiB each way in an epoch, then unplugs (data in flight
    both ways). Checked: the client is never disconnected; what the
    host received is the guest's stream in order with gaps only at the
    end of an epoch, and exactly what the daemon took from the guest
    (list's from_guest: what it took before an unplug is delivered);
    each epoch's guest input is a contiguous piece of the host's stream,
    later than the last; the last epoch loses nothing. The guest driver
    may lose at an unplug: guest->host, what its write()s queued in the
    transmit ring that the device had not taken (the device gives those
    buffers back unread with PORT_REMOVE, as QEMU does); host->guest,
    what the device had put in the port's receive buffers that the
    guest had not read (virtio_console.c unplug_port() ->
    remove_port_data() discards them)."""
    name = 'unplug_plug_60'
    script = 'unplug_plug.sh'
    vmms = ('uml', 'qemu')
    uml_timeout_factor = 3
    CYCLES = 60
    PER_EPOCH = 256 * KIB
    STEP = 64 * KIB
    NAME = 'org.vserial.replug'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.NAME, ctx.sock('p1.sock'))]

    def prepare(self, ctx):
        if ctx.vmm == 'uml':
            vsg = ctx.path('vsg')
            subprocess.run(['cc', '-std=gnu11', '-O2', '-o', vsg, VSG_SRC], check=True)
            ctx.data['vsg'] = vsg

    def env(self, ctx):
        e = {'NAME': self.NAME, 'PER_EPOCH': self.PER_EPOCH}
        if 'vsg' in ctx.data:
            e['VSG'] = ctx.data['vsg']
        return e

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        s.setblocking(False)
        recv = bytearray()
        st = {'allow': 0, 'sent': 0, 'eof': False}
        stop = threading.Event()

        def pump():
            while not stop.is_set():
                want_w = st['sent'] < st['allow']
                r, w, _ = select.select([s], [s] if want_w else [], [], 0.05)
                if r:
                    try:
                        d = s.recv(1 << 20)
                    except BlockingIOError:
                        d = None
                    if d == b'':
                        st['eof'] = True
                        return
                    if d:
                        recv.extend(d)
                if w:
                    n = min(st['allow'] - st['sent'], 64 * KIB)
                    try:
                        st['sent'] += s.send(stream(b'VSH2', st['sent'], n))
                    except BlockingIOError:
                        pass
        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            wait_listening(ctx, ctx.sock('ctl.sock'), 20)
            p0 = port_state(ctx)    # before the guest writes anything
            wait_log(ctx, 'port 1 (%s): guest opened' % self.NAME)
            cycles = 0
            for k in range(self.CYCLES + 1):
                st['allow'] += self.PER_EPOCH

                def moved():
                    p = port_state(ctx)
                    # from_guest: taken from this plug's port, so this
                    # epoch's (delivered later if not yet)
                    return (p['from_guest'] >= p0['from_guest'] + self.STEP and
                            p['to_guest'] >= p0['to_guest'] + self.STEP)
                wait_until(ctx, moved, 'epoch %d: %d KiB each way' % (k, self.STEP // KIB))
                if k == self.CYCLES:
                    break
                if st['eof']:
                    raise AssertionError('the host client was disconnected (epoch %d)' % k)
                ctl(ctx, 'unplug', self.NAME)
                # What moved before the plug is not the next epoch's.
                p0 = port_state(ctx)
                time.sleep(random.uniform(0, 0.05))
                ctl(ctx, 'plug', '1')
                cycles += 1
            ctx.data['cycles'] = cycles
            # The end: nothing more to send; everything delivered both
            # ways, then the guest stops.
            st['allow'] = st['sent']
            wait_until(ctx, lambda: port_state(ctx)['to_guest'] == st['sent'],
                       'the last host bytes in the guest')

            def guest_done_writing():
                a = port_state(ctx)['from_guest']
                time.sleep(0.3)
                return port_state(ctx)['from_guest'] == a == len(recv)
            wait_until(ctx, guest_done_writing, 'the guest\'s last records at the host')
            p = port_state(ctx)
            ctx.data['final'] = p
            open(ctx.path('stop'), 'w').close()
            wait_until(ctx, lambda: ctx.stop.is_set(), 'the guest to end', 120)
        finally:
            stop.set()
            t.join(5)
            ctx.data['recv'] = bytes(recv)
            ctx.data['sent'] = st['sent']
            ctx.data['eof'] = st['eof']
            s.close()

    def epochs(self, ctx):
        out = []
        for ln in read_file(ctx.path('replug.log')).splitlines():
            e, ws, we, got = map(int, ln.split())
            out.append((ws, we, got))
        return out

    def check_g2h(self, ctx, ep):
        """The host's bytes against the guest's epochs: a run of each
        epoch's stream from its start, ending anywhere in it (a loss)
        only if an unplug followed. Returns the bytes lost."""
        r = ctx.data.get('recv', b'')
        i, lost = 0, 0
        for k, (ws, we, _) in enumerate(ep):
            nxt = r.find(record(b'VSG2', ep[k + 1][0]), i) if k + 1 < len(ep) else -1
            end = nxt if nxt >= 0 else len(r)
            if k + 1 < len(ep) and nxt < 0:
                return ctx.check(False, 'guest->host: nothing of epoch %d arrived' % (k + 1))
            n = end - i
            if n > we - ws or r[i:end] != stream(b'VSG2', ws, n):
                return ctx.check(False, 'guest->host: epoch %d: the %d bytes at %d are not the '
                                 'guest\'s stream from %d' % (k, n, i, ws))
            if k == len(ep) - 1 and n != we - ws:
                return ctx.check(False, 'guest->host: the last epoch lost %d bytes' % (we - ws - n))
            lost += we - ws - n
            i = end
        return lost

    def check_h2g(self, ctx, ep):
        """Each epoch's input: one piece of the host's stream, later
        than the last. Returns (bytes lost, bytes received)."""
        at, got, lost = 0, 0, 0
        for k in range(len(ep)):
            try:
                b = open(ctx.path('h2g.%d' % k), 'rb').read()
            except OSError:
                b = b''
            if not b:
                continue
            start = None
            for o in range(min(len(b) - REC + 1, 2 * REC)):
                pos = parse_record(b[o:o + REC], b'VSH2')
                if pos is not None:
                    start = pos - o
                    break
            if start is None or start < at or b != stream(b'VSH2', start, len(b)):
                ctx.check(False, 'host->guest: epoch %d: %d bytes, not the host\'s stream after '
                          'position %d' % (k, len(b), at))
                return None
            lost += start - at
            at = start + len(b)
            got += len(b)
        ctx.check(at == ctx.data.get('sent'), 'host->guest: the guest got the host\'s stream up to '
                  '%d, the host sent %d' % (at, ctx.data.get('sent', 0)))
        return lost, got

    def verify(self, ctx):
        ep = self.epochs(ctx)
        ctx.check(len(ep) == self.CYCLES + 1 and ctx.data.get('cycles') == self.CYCLES,
                  '%d epochs in the guest, %s cycles done, want %d' % (len(ep), ctx.data.get('cycles'),
                                                                       self.CYCLES))
        ctx.check(not ctx.data.get('eof'), 'the host client was disconnected')
        ctx.check(connects(ctx) == 1, '%d host connections, want 1' % connects(ctx))
        final = ctx.data.get('final', {})
        r = ctx.data.get('recv', b'')
        ctx.check(final.get('from_guest') == len(r),
                  'the daemon took %s bytes from the guest, the host got %d'
                  % (final.get('from_guest'), len(r)))
        if not ep:
            return
        gl = self.check_g2h(ctx, ep)
        hl = self.check_h2g(ctx, ep)
        if isinstance(gl, int) and hl:
            ctx.info.append('%d unplug/plug cycles: guest->host %d KiB delivered, %d KiB the guest '
                            'wrote lost at unplugs; host->guest %d KiB delivered, %d KiB lost at '
                            'unplugs' % (len(ep) - 1, len(r) // KIB, gl // KIB, hl[1] // KIB,
                                         hl[0] // KIB))


class ClientsFanout(CtlCase):
    """clients=4: a writer (the first raw client), two raw readers and a
    vserialctl attach --read-only all connected before the guest writes:
    each gets the same 8 MiB (sha256); one reader sends bytes the guest
    must never see; the guest gets the writer's 1 MiB exactly."""
    name = 'clients_fanout'
    script = 'clients_fanout.sh'
    UP = 8 * MIB
    DOWN = 1 * MIB
    JUNK = 4000
    SEED = 160

    def ports(self, ctx):
        return ['id=1,name=org.vserial.fan,backend=unix,clients=4,buffer=16M,path='
                + ctx.sock('p1.sock')]

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(self.SEED, self.UP)
        ctx.data['down'] = det_bytes(self.SEED + 1, self.DOWN)
        write_out(ctx, 'up.src', ctx.data['up'])

    def env(self, ctx):
        return {'DOWN': self.DOWN}

    def host(self, ctx):
        path = ctx.sock('p1.sock')
        w = connect(ctx, path)
        wait_log(ctx, 'host client 1 connected')
        r1, r2 = connect(ctx, path), connect(ctx, path)
        wait_log(ctx, 'host client 3 connected')
        out = open(ctx.path('attach.out'), 'wb')
        p = subprocess.Popen([vserialctl(ctx), '-c', ctx.sock('ctl.sock'), 'attach', '--read-only',
                              'org.vserial.fan'], stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.PIPE)
        LIVE.add(p)
        got = {}
        try:
            wait_until(ctx, lambda: port_state(ctx)['clients'] == 4, 'four clients')
            send_all(ctx, r1, b'j' * self.JUNK)
            wait_until(ctx, lambda: port_state(ctx)['counters']['input_discarded'] == self.JUNK,
                       'the reader\'s bytes dropped')
            send_all(ctx, w, b'go\n' + ctx.data['down'])

            def take(name, s):
                got[name] = recv_exact(ctx, s, self.UP)[0]
            ts = [threading.Thread(target=take, args=a, daemon=True)
                  for a in (('writer', w), ('reader 1', r1), ('reader 2', r2))]
            for x in ts:
                x.start()
            for x in ts:
                x.join(120)
            send_all(ctx, w, ('ACK %s\n' % sha256(got.get('writer', b''))).encode())
            wait_until(ctx, lambda: os.path.getsize(ctx.path('attach.out')) >= self.UP or
                       os.path.exists(ctx.path('g.done')), 'the attach\'s output')
            wait_guest_file(ctx, 'g.done')
            ctx.data['state'] = port_state(ctx)
        finally:
            p.terminate()
            try:
                ctx.data['attach_rc'] = p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            LIVE.discard(p)
            out.close()
            ctx.data['attach_err'] = p.stderr.read().decode(errors='replace')
            for s in (w, r1, r2):
                s.close()
        got['read-only attach'] = open(ctx.path('attach.out'), 'rb').read()
        ctx.data['got'] = got

    def verify(self, ctx):
        want = sha256(ctx.data['up'])
        for name, b in sorted(ctx.data.get('got', {}).items()):
            ctx.check(sha256(b) == want, 'the %s got %d bytes, sha256 %s; want %d, %s'
                      % (name, len(b), sha256(b), self.UP, want))
        ctx.check(len(ctx.data.get('got', {})) == 4, 'four clients\' output: %s'
                  % sorted(ctx.data.get('got', {})))
        line = read_file(ctx.path('down.sha256')).split()
        ctx.check(line == [str(self.DOWN), sha256(ctx.data['down'])],
                  'the guest got %s, want the writer\'s %d bytes' % (line, self.DOWN))
        st = ctx.data.get('state', {})
        ctx.check(st.get('counters', {}).get('clients_dropped') == 0 and st.get('writer') == 1,
                  'list: %s' % st)
        ctx.check(ctx.data.get('attach_rc') == 0, 'vserialctl attach --read-only exit %s: %s'
                  % (ctx.data.get('attach_rc'), ctx.data.get('attach_err')))
        drop_if_passed(ctx, 'up.src', 'attach.out')


class SlowReaderRule(Case):
    """clients=2, buffer=256K: a reader that reads nothing while the
    guest writes 16 MiB to the writer, which reads fast. The reader is
    disconnected once a whole buffer behind (logged); the guest's
    writes are not held back by it and the writer gets everything; the
    reader got the start of the output and then end of file."""
    name = 'slow_reader_rule'
    script = 'g2h_bulk.sh'
    UP = 16 * MIB
    SEED = 170

    def ports(self, ctx):
        return ['id=1,name=org.vserial.slowr,backend=unix,clients=2,buffer=256K,path='
                + ctx.sock('p1.sock')]

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(self.SEED, self.UP)
        write_out(ctx, 'src', ctx.data['up'])

    def host(self, ctx):
        path = ctx.sock('p1.sock')
        w = connect(ctx, path)
        wait_log(ctx, 'host client 1 connected')
        r = connect(ctx, path)
        wait_log(ctx, 'host client 2 connected')
        got = recv_exact(ctx, w, self.UP)[0]
        ctx.data['got'] = got
        send_all(ctx, w, ('ACK %s\n' % sha256(got)).encode())
        # The reader reads only now (the guest has written all).
        ctx.data['rgot'] = read_until(ctx, r, lambda b: False, grace=1.0)
        ctx.data['reof'] = not select.select([r], [], [], 0)[0] or r.recv(1) == b''
        w.close()
        r.close()

    def verify(self, ctx):
        up = ctx.data['up']
        ctx.check(ctx.data.get('got') == up, 'the writer got %d bytes, not the guest\'s %d'
                  % (len(ctx.data.get('got', b'')), self.UP))
        rgot = ctx.data.get('rgot', b'')
        ctx.check(up.startswith(rgot) and len(rgot) < len(up),
                  'the stalled reader got %d bytes, not a start of the output' % len(rgot))
        log = read_file(ctx.path('daemon.log'))
        ctx.check('host client 2 disconnected: it is a whole buffer (262144 bytes) behind' in log,
                  'no drop in the log')
        ctx.info.append('the stalled reader got %d KiB before it was dropped' % (len(rgot) // KIB))
        drop_if_passed(ctx, 'src')


class OnConnectModes(CtlCase):
    """Port 1 on-connect=replay, port 2 discard, buffer=64K each. The
    first client reads nothing until the daemon holds a full buffer and
    the guest waits, then leaves cleanly (shutdown, reads what it was
    sent, end of file). The next client gets, with replay, exactly the
    rest of the guest's output; with discard, the rest after what was
    dropped (list's output_discarded: at least the 64K held, and what
    the guest had queued, dropped while no client was there), then the
    guest's "fresh", written once the next client is there."""
    name = 'on_connect_modes'
    script = 'on_connect.sh'
    UP = 1 * MIB
    SEED = 180

    def ports(self, ctx):
        return ['id=1,name=org.vserial.replay,backend=unix,buffer=64K,path=' + ctx.sock('p1.sock'),
                'id=2,name=org.vserial.discard,backend=unix,buffer=64K,on-connect=discard,path='
                + ctx.sock('p2.sock')]

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(self.SEED, self.UP)
        write_out(ctx, 'up.src', ctx.data['up'])

    def one(self, ctx, pid):
        path = ctx.sock('p%d.sock' % pid)
        a = connect(ctx, path)
        wait_until(ctx, lambda: port_state(ctx, pid)['throttled'] and
                   port_state(ctx, pid)['buffered'] == 64 * KIB, 'port %d full' % pid)
        a.shutdown(socket.SHUT_WR)
        first = read_until(ctx, a, lambda b: False, grace=0.5)
        a.close()
        wait_until(ctx, lambda: not port_state(ctx, pid)['host_connected'], 'the first client gone')
        b = connect(ctx, path)
        wait_until(ctx, lambda: port_state(ctx, pid)['host_connected'], 'the next client')
        open(ctx.path('h.next%d' % pid), 'w').close()
        second = read_until(ctx, b, lambda x: x.endswith(b'fresh\n'))
        ctx.data['p%d' % pid] = (first, second, port_state(ctx, pid))
        return b

    def host(self, ctx):
        keep = [self.one(ctx, 1), self.one(ctx, 2)]
        wait_guest_file(ctx, 'g.done')
        for s in keep:
            s.close()

    def verify(self, ctx):
        up = ctx.data['up']
        first, second, st = ctx.data.get('p1', (b'', b'', {}))
        ctx.check(up.startswith(first) and second == up[len(first):] + b'fresh\n',
                  'replay: the first client got %d bytes, the next %d: not the rest of the output'
                  % (len(first), len(second)))
        ctx.check(st.get('counters', {}).get('output_discarded') == 0, 'replay dropped output')
        first, second, st = ctx.data.get('p2', (b'', b'', {}))
        d = st.get('counters', {}).get('output_discarded', -1)
        ctx.check(d >= 64 * KIB and up.startswith(first) and
                  second == up[len(first) + d:] + b'fresh\n',
                  'discard: the first client got %d bytes, %d were dropped, the next got %d: not '
                  'the rest after those' % (len(first), d, len(second)))
        log = read_file(ctx.path('daemon.log'))
        ctx.check('port 2 (org.vserial.discard): %d bytes of guest output discarded' % d in log,
                  'the discard is not in the log')
        ctx.info.append('discard dropped %d KiB (64 KiB held, the rest in flight); replay gave the '
                        'next client %d KiB' % (d // KIB, len(ctx.data['p1'][1]) // KIB))
        drop_if_passed(ctx, 'up.src')


CASES = [Reconnect100(), ClientsInOrder(), GuestReopen(), UnplugPlug60(), ClientsFanout(),
         SlowReaderRule(), OnConnectModes()]
