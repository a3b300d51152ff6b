"""Real-guest cases for the control socket (vserial --control, vserialctl).

Loaded by run.py, which runs CASES. The daemon of these cases also gets
"--control <sockdir>/ctl.sock" (Case.daemon_args); the host side drives it
with the vserialctl next to the daemon binary (build/src/ctl/vserialctl for
build/src/daemon/vserial), or $VSERIALCTL.

  ctl_hotplug   vserialctl add / remove while the guest runs: the port
                appears in sysfs with its name, then goes away, and a guest
                reader blocked on it ends instead of hanging
  ctl_resize    vserialctl resize of the console shows in "stty size"
  ctl_events    vserialctl events reports the guest's opens and closes
  ctl_attach    vserialctl attach on a pseudo-terminal: typed bytes reach
                the guest, its answer appears, Ctrl-] detaches (exit 0)
"""

import fcntl
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time

from helpers import (CtlCase, connect, ctl, read_file, recv_some, send_all, vserialctl,
                     wait_guest_file, wait_listening, write_out)


class Subscriber:
    """A raw control connection subscribed to events, read in a thread."""

    def __init__(self, ctx):
        if not wait_listening(ctx, ctx.sock('ctl.sock'), 20):
            raise AssertionError('control socket not listening')
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(ctx.sock('ctl.sock'))
        self.s.sendall(b'{"cmd":"subscribe"}\n')
        self.f = self.s.makefile('rb')
        r = json.loads(self.f.readline())
        if r.get('ok') is not True:
            raise AssertionError('subscribe: %s' % r)
        self.first = r['seq']
        self.events = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for ln in self.f:
            self.events.append(json.loads(ln))

    def wait(self, ctx, pred, what, timeout=30):
        end = time.monotonic() + timeout
        while not any(pred(e) for e in list(self.events)):
            if time.monotonic() > end or ctx.grace_expired():
                raise AssertionError('no %s event' % what)
            time.sleep(0.02)

    def close(self):
        self.s.shutdown(socket.SHUT_RDWR)
        self.t.join(5)
        self.s.close()


def port_events(evs, pid):
    return [e['event'] for e in evs if e.get('port') == pid]


def in_order(seq, want):
    it = iter(seq)
    return all(w in it for w in want)


class CtlHotplug(CtlCase):
    name = 'ctl_hotplug'
    script = 'ctl_hotplug.sh'

    def ports(self, ctx):
        return ['id=1,name=org.vserial.base,backend=unix,path=' + ctx.sock('p1.sock')]

    def host(self, ctx):
        sub = Subscriber(ctx)
        try:
            wait_guest_file(ctx, 'g.ready1', 60)
            r = ctl(ctx, 'add', 'id=2,name=org.vserial.hot,backend=unix,path=' + ctx.sock('hot.sock'))
            ctx.data['add_out'] = r
            s = connect(ctx, ctx.sock('hot.sock'))
            send_all(ctx, s, b'hello\n')
            wait_guest_file(ctx, 'g.ready2', 60)
            time.sleep(0.5)         # the guest's reader is blocked by now
            ctx.data['list_before'] = ctl(ctx, 'list')
            ctl(ctx, 'remove', 'org.vserial.hot')
            ctx.data['list_after'] = ctl(ctx, 'list')
            rest = b''
            while True:
                d = recv_some(ctx, s, 4096)
                if not d:
                    ctx.data['host_eof'] = d == b''
                    break
                rest += d
            s.close()
            sub.wait(ctx, lambda e: e['event'] == 'port-removed', 'port-removed')
        finally:
            sub.close()
            ctx.data['events'] = sub.events

    def verify(self, ctx):
        ctx.check(ctx.data.get('add_out') == 'added port 2 (org.vserial.hot)\n',
                  'vserialctl add said %r' % ctx.data.get('add_out'))
        name = read_file(ctx.path('hot.name')).strip()
        ctx.check(name == 'org.vserial.hot', 'the guest saw vport0p2 named %r' % name)
        ctx.check(read_file(ctx.path('hot.rc'), None) is not None,
                  'the blocked reader never ended')
        ctx.check(ctx.data.get('host_eof'), 'the host client of the removed port was not closed')
        after = read_file(ctx.path('ports.after')).split()
        ctx.check(after == ['vport0p1'], 'guest ports after the remove: %s' % after)
        ctx.check('org.vserial.hot' in ctx.data.get('list_before', '') and
                  'org.vserial.hot' not in ctx.data.get('list_after', 'org.vserial.hot'),
                  'vserialctl list before/after the remove:\n%s\n%s'
                  % (ctx.data.get('list_before'), ctx.data.get('list_after')))
        ev = port_events(ctx.data.get('events', []), 2)
        # The guest opens the port when it sees it, the host client
        # connects after "vserialctl add" returns: either comes first.
        ctx.check(ev[:1] == ['port-added'] and ev[-1:] == ['port-removed'] and 'guest-open' in ev
                  and in_order(ev, ['host-connect', 'host-disconnect']),
                  'events of port 2: %s' % ev)
        seqs = [e['seq'] for e in ctx.data.get('events', [])]
        ctx.check(seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False,
                  'event seqs not consecutive: %s' % seqs)


class CtlResize(CtlCase):
    name = 'ctl_resize'
    script = 'ctl_resize.sh'

    def ports(self, ctx):
        return ['id=0,console,backend=unix,path=' + ctx.sock('con.sock')]

    def host(self, ctx):
        wait_guest_file(ctx, 'g.ready', 60)
        ctl(ctx, 'resize', '0', '132', '43')
        ctx.data['list'] = ctl(ctx, 'list', '--json')

    def verify(self, ctx):
        s1 = read_file(ctx.path('size1')).strip()
        s2 = read_file(ctx.path('size2')).strip()
        ctx.check(s1 == '25 80', 'stty size before: %r, want "25 80" (the default 80x25)' % s1)
        ctx.check(s2 == '43 132', 'stty size after resize 132x43: %r, want "43 132"' % s2)
        try:
            con = json.loads(ctx.data.get('list', ''))[0]
            ctx.check((con['cols'], con['rows']) == (132, 43), 'list: %s' % con)
        except ValueError:
            ctx.errors.append('list --json: %r' % ctx.data.get('list'))


class CtlEvents(CtlCase):
    """vserialctl events while the guest opens and closes a port twice
    (the open_close guest script)."""
    name = 'ctl_events'
    script = 'open_close.sh'
    PORT = 'org.vserial.ev'

    def ports(self, ctx):
        return ['id=1,name=%s,backend=unix,path=%s' % (self.PORT, ctx.sock('p1.sock'))]

    def host(self, ctx):
        if not wait_listening(ctx, ctx.sock('ctl.sock'), 20):
            raise AssertionError('control socket not listening')
        procs = {}
        for mode in ('text', 'json'):
            out = open(ctx.path('events.%s' % mode), 'w')
            args = ['--json'] if mode == 'json' else []
            procs[mode] = (subprocess.Popen([vserialctl(ctx), '-c', ctx.sock('ctl.sock'),
                                             'events'] + args,
                                            stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.PIPE, text=True), out)
        try:
            # While the guest has the port open: the table, for the record.
            while 'port 1 (%s): guest opened' % self.PORT not in read_file(ctx.path('daemon.log')):
                if ctx.stop.is_set():
                    raise AssertionError('the guest never opened the port')
                time.sleep(0.02)
            ctx.data['list'] = ctl(ctx, 'list')
            with open(ctx.path('list.txt'), 'w') as f:
                f.write(ctx.data['list'])
            # Until the VMM is gone (UML powered off).
            while 'vmm-disconnect' not in read_file(ctx.path('events.text')):
                if ctx.grace_expired(5):
                    break
                time.sleep(0.05)
        finally:
            for mode, (p, out) in procs.items():
                p.send_signal(signal.SIGINT)
                try:
                    rc = p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    rc = p.wait()
                out.close()
                ctx.data['rc_' + mode] = (rc, p.stderr.read())

    def verify(self, ctx):
        for mode in ('text', 'json'):
            rc, err = ctx.data.get('rc_' + mode, (None, ''))
            ctx.check(rc == 0 and err == '', 'vserialctl events (%s): exit %s %r' % (mode, rc, err))
        lines = read_file(ctx.path('events.text')).splitlines()
        evs = [ln.split() for ln in lines]
        p1 = [e[1] for e in evs if len(e) >= 4 and e[2:4] == ['port', '1']]
        ctx.check(p1 == ['guest-open', 'guest-close', 'guest-open', 'guest-close'],
                  'vserialctl events for port 1: %s' % p1)
        ctx.check(all(e[4:] == ['(%s)' % self.PORT] for e in evs if e[2:4] == ['port', '1']),
                  'port name missing in %s' % lines)
        names = [e[1] for e in evs]
        ctx.check(in_order(names, ['vmm-connect', 'guest-reset', 'guest-open', 'guest-close',
                                   'vmm-disconnect']), 'event stream: %s' % names)
        seqs = [int(e[0]) for e in evs]
        ctx.check(seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))),
                  'seqs not consecutive: %s' % seqs)
        js = [json.loads(ln) for ln in read_file(ctx.path('events.json')).splitlines()]
        ctx.check([(e['seq'], e['event']) for e in js] == [(int(e[0]), e[1]) for e in evs],
                  'events --json and events differ')
        row = [ln.split() for ln in ctx.data.get('list', '').splitlines()[1:]]
        ctx.check(row and row[0][:5] == ['1', self.PORT, 'port', 'unix', 'open'],
                  'vserialctl list while open: %r' % ctx.data.get('list'))


class CtlAttach(CtlCase):
    name = 'ctl_attach'
    script = 'ctl_attach.sh'

    def ports(self, ctx):
        return ['id=1,name=org.vserial.tty,backend=unix,path=' + ctx.sock('p1.sock')]

    def host(self, ctx):
        if not wait_listening(ctx, ctx.sock('ctl.sock'), 20):
            raise AssertionError('control socket not listening')
        while 'port 1 (org.vserial.tty): guest opened' not in read_file(ctx.path('daemon.log')):
            if ctx.stop.is_set():
                raise AssertionError('the guest never opened the port')
            time.sleep(0.02)
        master, slave = os.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))
        before = termios.tcgetattr(slave)

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        p = subprocess.Popen([vserialctl(ctx), '-c', ctx.sock('ctl.sock'), 'attach',
                              'org.vserial.tty'], stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True, preexec_fn=ctty)
        seen = bytearray()

        def until(pat, timeout=30):
            end = time.monotonic() + timeout
            while pat not in seen:
                if time.monotonic() > end or ctx.stop.is_set():
                    raise AssertionError('the terminal never showed %r (it has %r)'
                                         % (pat, bytes(seen[-200:])))
                r, _, _ = select.select([master], [], [], 0.1)
                if r:
                    seen.extend(os.read(master, 4096))
        try:
            until(b'Ctrl-] detaches')
            word = 'ping-%08x' % random.getrandbits(32)
            ctx.data['word'] = word
            os.write(master, word.encode() + b'\n')
            until(('pong %s\n' % word).encode())
            ctx.data['list'] = ctl(ctx, 'list')
            with open(ctx.path('list.txt'), 'w') as f:
                f.write(ctx.data['list'])
            os.write(master, b'\x1d')
            try:
                ctx.data['rc'] = p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError('vserialctl attach did not exit after Ctrl-]')
            ctx.data['restored'] = termios.tcgetattr(slave) == before
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            write_out(ctx, 'terminal.out', bytes(seen))
            os.close(master)
            os.close(slave)

    def verify(self, ctx):
        ctx.check(ctx.data.get('rc') == 0, 'vserialctl attach exit %s after Ctrl-]' % ctx.data.get('rc'))
        ctx.check(ctx.data.get('restored'), 'the terminal was not restored')
        ctx.check(os.path.exists(ctx.path('g.detached')), 'the guest did not see the detach')
        row = [ln.split() for ln in ctx.data.get('list', '').splitlines()[1:]]
        ctx.check(row and row[0][:6] == ['1', 'org.vserial.tty', 'port', 'unix', 'open', 'connected'],
                  'vserialctl list while attached: %r' % ctx.data.get('list'))


CASES = [CtlHotplug(), CtlResize(), CtlEvents(), CtlAttach()]
