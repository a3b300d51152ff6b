#!/usr/bin/env python3
"""Hostile input against the real vserial daemon, judged by what it costs.

Every row of the table below starts its own daemon (test_ctl.Daemon), sets
the scene (a fake guest, host clients), takes a baseline of the daemon's
"stats" counters, applies one hostile input (from a guest, a VMM, a host
peer or the process's limits), lets the daemon settle, and then judges:

  - no callback without progress: over PAUSE seconds of quiet the loop
    dispatched nothing but the two stats requests' own callbacks
    (loop.dispatched grows exactly as client.callbacks does, see
    src/daemon/stats.h);
  - no log line over the quiet PAUSE, and at most the row's bound for the
    whole input;
  - fds back at the baseline (or the row's stated difference);
  - the row's own checks (the daemon still serves, nothing changed that a
    refused request named, ...).

Prints TAP, one case per row, with the measured numbers as a comment:

  tests/ctl/test_hostile_daemon.py --vserial build/src/daemon/vserial \\
                                   --vserialctl build/src/ctl/vserialctl [ROW...]

Adding a case (e.g. for a library finding: a kick fd at EOF, a memfd that
shrinks, a descriptor storm) is one @row function: set up with the fixtures
in test_ctl.py and fakeguest.py, apply the input, return; the harness does
the judging. Row options: ports, max_ports, extra (daemon arguments),
log_max (log lines the input may cost), fd_delta, daemon_kw (Popen),
stdio (the daemon's stdin and stdout are pipes; the row gets x.ends =
(stdin's write end, stdout's read end)).
"""

import argparse
import os
import re
import select
import shutil
import socket
import struct
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeguest  # noqa: E402,F401  (rows use its constants)
import test_ctl as tc  # noqa: E402
from test_ctl import CaseFailed, check, wait_for  # noqa: E402,F401

PAUSE = 1.0             # quiet seconds judged
SETTLE_TIMEOUT = 20     # seconds a daemon may take to become idle


# ---------------------------------------------------------------- the meter

class Meter:
    """The daemon's counters, read on a connection of their own."""

    def __init__(self, d):
        self.cl = d.client()

    def read(self):
        return self.cl.ok({'cmd': 'stats'})['stats']


def busy(a, b):
    """Callbacks between two reads that were not the reads' own."""
    return ((b['loop']['dispatched'] - a['loop']['dispatched']) -
            (b['client']['callbacks'] - a['client']['callbacks']))


def settle(m, what):
    """Wait until 0.2 s pass without a callback; the last read."""
    end = time.monotonic() + SETTLE_TIMEOUT
    a = m.read()
    while True:
        time.sleep(0.2)
        b = m.read()
        if busy(a, b) == 0:
            return b
        if time.monotonic() > end:
            raise CaseFailed('%s: the daemon never became idle: %d callbacks in the last 0.2 s, '
                             'loop %s' % (what, busy(a, b), b['loop']))
        a = b


# ---------------------------------------------------------------- rows

ROWS = []


def row(**opts):
    def reg(fn):
        fn.opts = opts
        ROWS.append(fn)
        return fn
    return reg


class Ctx:
    """What a row gets: the daemon, the meter, and room for its own state."""

    def __init__(self, d, m):
        self.d, self.m = d, m
        self.notes = []

    def note(self, s):
        self.notes.append(s)


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4, log_max=0)
def idle_after_setup(x):
    """The harness itself: a guest and a host client connected, no input."""
    g = x.d.connect_guest()
    g.wait(lambda: 1 in g.ports, what='port 1')
    x.client = tc.unix_client(x.d.path('one.sock'))
    g.wait(lambda: g.ports[1].host_open, what='host open')
    x.setup_done()


def guest_with_ports(x, *ids):
    g = x.d.connect_guest()
    g.wait(lambda: all(i in g.ports for i in ids), what='ports %s' % (ids,))
    return g


def ports_by_id(x):
    return {p['id']: p for p in x.m.cl.ok({'cmd': 'list'})['ports']}


@row(ports=['id=1,name=org.victim,backend=unix,path=@v.sock'], max_ports=4, fd_delta=-1)
def port_ready_repeated(x):
    """Finding 1 as the audit found it: a guest that takes no control
    messages sends PORT_READY 1 for a named port again and again; then the
    host removes the port, the guest writes to it and list runs. A repeat
    asks for what is already queued (one PORT_NAME, not one per repeat), so
    the remove goes through; the port is gone for good."""
    g = guest_with_ports(x, 1)
    g.wait(lambda: g.ports[1].name == 'org.victim', what='the name')
    x.setup_done()
    names0 = g.ctrl_count(fakeguest.PORT_NAME, 1)
    with g.lock:
        g.ctrl_rx_hold = True
        posted = fakeguest.QSIZE - len(g.vqs[2].free)
    for _ in range(300):
        g.ctrl(1, fakeguest.PORT_READY, 1)
    r = x.m.cl.req({'cmd': 'remove', 'port': 'org.victim'})
    check(r == {'ok': True}, 'remove after 300 PORT_READY: %s' % r)
    g.send(1, b'written after the remove' * 10)
    check(1 not in ports_by_id(x), 'port 1 still listed after its remove')
    g.ctrl_rx_resume()
    g.wait(lambda: 1 not in g.ports, what='PORT_REMOVE')
    names = g.ctrl_count(fakeguest.PORT_NAME, 1) - names0
    x.note('%d PORT_NAME for 300 PORT_READY (%d control buffers were posted)' % (names, posted))
    # Each repeat finding a posted buffer gets its copy at once; what the
    # device keeps for the guest is one.
    check(names <= posted + 1, '300 PORT_READY with %d buffers posted: %d PORT_NAME messages'
          % (posted, names))


def fill_control_queue(x, g, console_sock):
    return tc.fill_control_queue(x.m.cl, g, console_sock)


@row(ports=['id=0,console,backend=unix,path=@con.sock',
            'id=1,name=org.victim,backend=unix,path=@v.sock'], max_ports=4, fd_delta=-1,
     log_max=400)
def host_ops_with_full_control_queue(x):
    """Finding 1, the class: host-side operations are transactional. While
    the guest takes no control messages and the device's queue is full,
    remove, add, attach and a new host client are refused with the reason
    and change nothing; the guest's writes to the port still arrive, list
    still works; once the guest takes messages again the remove goes
    through."""
    g = guest_with_ports(x, 0, 1)
    x.setup_done()
    why = fill_control_queue(x, g, x.d.path('con.sock'))
    check('control queue is full' in why, 'resize refused with %r' % why)
    before = ports_by_id(x)
    r = x.m.cl.req({'cmd': 'remove', 'port': 'org.victim'})
    check(not r['ok'] and 'control queue is full' in r['error'], 'remove: %s' % r)
    g.send(1, b'g' * 5000)
    wait_for(lambda: ports_by_id(x)[1]['counters']['from_guest'] == 5000, 'guest data on port 1')
    r = x.m.cl.req({'cmd': 'add', 'spec': 'id=3,name=org.new,backend=unix,path=%s'
                    % x.d.path('new.sock')})
    check(not r['ok'] and 'control queue is full' in r['error'], 'add: %s' % r)
    check(not os.path.exists(x.d.path('new.sock')), 'a refused add left its socket file')
    c = x.d.client()
    r = c.req({'cmd': 'attach', 'port': 1})
    check(not r['ok'] and 'control queue is full' in r['error'], 'attach: %s' % r)
    check(c.ok({'cmd': 'list'}), 'the refused attach connection is still a control connection')
    c.close()
    # A first host client the guest cannot be told of is closed unserved,
    # without a byte (issue 15: nothing the daemon says goes into a port).
    host = tc.unix_client(x.d.path('v.sock'))
    msg = host.recv(200)
    check(msg == b'', 'a host client while the queue is full was sent %r' % msg)
    host.close()
    check(ports_by_id(x)[1]['counters']['clients_refused'] == 1, 'the refusal is not counted')
    after = ports_by_id(x)
    check(sorted(after) == [0, 1], 'ports %s' % sorted(after))
    check({k: v for k, v in after[1].items() if k not in ('from_guest', 'counters', 'buffered')} ==
          {k: v for k, v in before[1].items() if k not in ('from_guest', 'counters', 'buffered')},
          'port 1 changed: %s -> %s' % (before[1], after[1]))
    g.ctrl_rx_resume()
    # Refused removes change nothing, so retrying until the queue drained is
    # safe.
    wait_for(lambda: x.m.cl.req({'cmd': 'remove', 'port': 'org.victim'})['ok'],
             'remove once the guest takes messages again')
    g.wait(lambda: 1 not in g.ports, what='PORT_REMOVE')


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4, log_max=60)
def out_of_fds(x):
    """Finding 5: out of fds is survivable. With the daemon's fd limit just
    above what it holds, connections wait in the backlogs of all three
    kinds of listener (control, a port, the VMM's); the listeners back off
    instead of spinning on the pending connection, and serve them once fds
    are free again."""
    import resource
    g = guest_with_ports(x, 1)
    x.setup_done()
    pid = x.d.proc.pid
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    held = x.m.read()['process']['fds']
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (held + 2, old[1]))
    socks = [x.d.client() for _ in range(2)]
    for c in socks:
        c.ok({'cmd': 'list'})
    late_ctl = tc.Client(x.d.control)
    late_port = tc.unix_client(x.d.path('one.sock'))
    late_vmm = tc.unix_client(x.d.vhost)
    time.sleep(0.3)
    a = x.m.read()
    time.sleep(PAUSE)
    b = x.m.read()
    spent = busy(a, b)
    x.note('%d callbacks in %.1f s out of fds, %d back-offs' % (
        spent, PAUSE, b['listeners']['backoffs'] if 'listeners' in b else -1))
    check(spent <= 40, 'out of fds with 3 connections pending: %d callbacks in %.1f s' %
          (spent, PAUSE))
    for c in socks:
        c.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
    # Served now: the control client, the port's client; the second VMM is
    # told no and closed.
    check(late_ctl.ok({'cmd': 'list'}), 'the waiting control client')
    wait_for(lambda: ports_by_id(x)[1]['host_connected'], 'the waiting port client')
    late_vmm.settimeout(10)
    check(late_vmm.recv(10) == b'', 'the waiting second VMM was not closed')
    check(g.error is None, 'fake guest: %s' % g.error)
    for s_ in (late_ctl, late_port, late_vmm):
        s_.close()
    wait_for(lambda: not ports_by_id(x)[1]['host_connected'], 'port client gone')


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def subscribed_attach(x):
    """Finding 8: attach on a subscribed connection, while the guest opens
    and closes the port: only port bytes reach the attached connection; the
    events go to the other subscriber; nothing is left behind."""
    g = guest_with_ports(x, 1)
    g.open(1)
    other = x.d.client()
    other.ok({'cmd': 'subscribe'})
    x.setup_done()
    c = x.d.client()
    c.ok({'cmd': 'subscribe'})
    c.send(b'{"cmd":"attach","port":1}\n')
    check(c.reply() == {'ok': True}, 'attach reply')
    for _ in range(20):
        g.close(1)
        g.open(1)
    g.send(1, b'data\n')
    check(c.line() == b'data', 'the attached connection got more than the port\'s bytes')
    c.close()
    want = ['host-connect'] + ['guest-close', 'guest-open'] * 20 + ['host-disconnect']
    got = [other.event()['event'] for _ in want]
    check(got == want, 'events %s' % got)
    x.keep = other


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4, log_max=200)
def sandbox_refusals(x):
    """Finding 9: the confined daemon refused what its sandbox forbids (a
    file and a socket outside its directories, a connect, a tcp socket),
    100 times over: every refusal is an error reply, nothing is created,
    nothing is held afterwards."""
    import tempfile
    out = tempfile.mkdtemp(prefix='vsctl-out-', dir='/tmp')
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(x.d.path('peer.sock'))
    srv.listen(4)
    x.keep = srv
    x.setup_done()
    specs = ['id=2,backend=file,path=%s/f' % out, 'id=2,backend=unix,path=%s/s.sock' % out,
             'id=2,backend=unix-connect,path=%s' % x.d.path('peer.sock'),
             'id=2,backend=tcp,port=1']
    try:
        for i in range(100):
            r = x.m.cl.req({'cmd': 'add', 'spec': specs[i % 4]})
            check(r['ok'] is False and 'vserial(8)' in r['error'], 'add %s: %s' % (specs[i % 4], r))
        check(os.listdir(out) == [], 'created: %s' % os.listdir(out))
        check(not select.select([srv], [], [], 0)[0], 'the daemon connected')
    finally:
        shutil.rmtree(out, ignore_errors=True)


def stdio_pipes():
    """Pipes for a daemon's stdin and stdout: (Popen kwargs, test's ends)."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    return {'stdin': in_r, 'stdout': out_w}, (in_w, out_r)


@row(ports=['id=0,console,backend=stdio'], max_ports=4, stdio=True)
def stdout_reader_gone(x):
    """Finding 6: the reader of the daemon's stdout left (EPIPE). The output
    side stops: no watch, no log flood, guest output is counted and dropped
    (nobody can ever read it, and a console the guest cannot write to would
    stall it); input from stdin keeps working."""
    in_w, out_r = x.ends
    g = guest_with_ports(x, 0)
    g.wait(lambda: g.ports[0].guest_open, what='console open')
    g.send(0, b'before\n')
    check(os.read(out_r, 100) == b'before\n', 'console output on stdout')
    x.setup_done()
    os.close(out_r)
    g.send(0, b'x' * 3000)
    wait_for(lambda: ports_by_id(x)[0]['counters'].get('output_discarded', 0) >= 3000 or
             ports_by_id(x)[0]['counters']['buffered'] >= 3000, 'the write after EPIPE')
    # More than the port's buffer: taken and dropped, never throttled.
    g.send(0, b'y' * (1 << 20) + b'z' * 8192)
    wait_for(lambda: ports_by_id(x)[0]['from_guest'] >= 3000 + (1 << 20) + 8192,
             'guest output after EPIPE taken (%s)' % ports_by_id(x)[0])
    os.write(in_w, b'typed\n')
    g.wait(lambda: b'typed\n' in g.ports[0].rx, what='stdin still reaches the guest')

    def after(base, now):
        p = [q for q in now['ports'] if q['id'] == 0][0]
        check(p['output_discarded'] == 3000 + (1 << 20) + 8192, 'discarded %s' % p)
        check(p['buffered'] == 0, 'buffered %s' % p)
    x.check = after


def log_limits():
    """LOG_BURST and LOG_RATE of src/daemon/log.h."""
    h = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'src', 'daemon',
                     'log.h')
    with open(h) as f:
        text = f.read()
    return tuple(int(re.search(r'#define %s (\d+)u' % k, text).group(1))
                 for k in ('LOG_BURST', 'LOG_RATE'))


def rate_limited(x, wanted):
    """The input wanted at least @wanted log lines: the daemon wrote no more
    than its budget allows for the time it took (an upper bound that only
    grows on a slow machine), and counted the rest."""
    burst, rate = log_limits()
    t0 = time.monotonic()

    def after(base, now):
        secs = int(time.monotonic() - t0) + 2
        written = now['log']['written'] - base['log']['written']
        supp = now['log']['suppressed'] - base['log']['suppressed']
        # +1 a line: each written line may carry the "suppressed" summary
        check(written <= 2 * (burst + rate * secs), '%d lines written in %d s (budget %d + %d/s)'
              % (written, secs, burst, rate))
        check(written + supp >= wanted, 'only %d + %d lines for an input that wants %d'
              % (written, supp, wanted))
        x.note('%d lines wanted, %d written, %d suppressed' % (wanted, written, supp))
    x.check = after
    x.log_max = 10 ** 9         # judged by after()


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def port_open_toggles(x):
    """Finding 7: a guest opens and closes a port 2000 times; each is worth
    a log line, the daemon writes what its rate limit allows."""
    g = guest_with_ports(x, 1)
    x.setup_done()
    rate_limited(x, 2000)
    for i in range(2000):
        g.ctrl(1, fakeguest.PORT_OPEN, (i + 1) % 2)
    wait_for(lambda: x.m.read()['log']['written'] + x.m.read()['log']['suppressed'] >= 2000,
             'the toggles handled')


@row(max_ports=4)
def vmm_reconnect_flood(x):
    """Finding 7: a VMM that connects, sends a message the daemon does not
    know and is cut off, 300 times: each connection is worth a line or two
    (connected, closed: why; or refused while the last one is not gone)."""
    x.setup_done()
    rate_limited(x, 300)
    for _ in range(300):
        s_ = tc.unix_client(x.d.vhost)
        s_.settimeout(10)
        try:
            s_.sendall(struct.pack('<III', 9999, 1, 0))
            check(s_.recv(10) == b'', 'the VMM was not cut off')
        except (ConnectionResetError, BrokenPipeError):
            pass                # closed before or with our message unread
        s_.close()
    wait_for(lambda: not x.m.read()['vmm']['connected'], 'the last VMM gone')


@row(max_ports=4)
def vmm_never_reads(x):
    """A VMM that sends requests and never reads the replies: once its
    socket is full the daemon drops the connection (vs_vu makes the fd
    non-blocking) rather than block in send() with every port and the
    control socket waiting behind it. A guard: this held before issue 9."""
    x.setup_done()
    vmm = tc.unix_client(x.d.vhost)
    vmm.setblocking(False)
    msg = struct.pack('<III', fakeguest.GET_FEATURES, 1, 0) * 1024
    sent = 0
    for _ in range(4000):
        try:
            sent += vmm.send(msg)
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
        if not x.m.read()['vmm']['connected'] and sent:
            break
    wait_for(lambda: not x.m.read()['vmm']['connected'], 'the VMM dropped')
    x.note('%d request bytes sent before the drop' % sent)
    vmm.close()


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4, log_max=0)
def host_client_flood(x):
    """Finding 7, then issue 15: a host peer keeps connecting to a port that
    has its one client (any local user can, on a tcp port). The newcomers
    wait in the listen backlog, in the kernel: no accept, no callback, no
    log line, no fd, nothing written to them; once the backlog is full a
    connect fails at once (EAGAIN) and the daemon does nothing at all."""
    path = x.d.path('one.sock')
    keep = tc.unix_client(path)
    wait_for(lambda: ports_by_id(x)[1]['host_connected'], 'the first client')
    x.setup_done()
    waiting, full = [], 0
    for i in range(300):
        s_ = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s_.setblocking(False)
        try:
            s_.connect(path)
        except BlockingIOError:
            s_.close()
            full += 1
            continue
        s_.send(b'waiting %d\n' % i)
        waiting.append(s_)
    x.note('%d connections waiting in the backlog, %d connects found it full' % (len(waiting), full))
    check(len(waiting) >= 2 and full > 0, 'backlog: %d waiting, %d full' % (len(waiting), full))
    p = ports_by_id(x)[1]['counters']
    check(p['host_connects'] == 1 and p['clients_refused'] == 0, 'counters %s' % p)
    r, _, _ = select.select(waiting, [], [], 0)
    check(not r, 'a waiting connection was written to or closed')
    x.keep = (keep, waiting)


# ---------------------------------------------------------------- runner

def judge(x, o, base, hostile, a, b):
    """The checks every row gets; numbers for the report go to x.notes."""
    cb = busy(a, b)
    logged = b['log']['written'] - base['log']['written']
    supp = b['log']['suppressed'] - base['log']['suppressed']
    fds, fds0 = b['process']['fds'], base['process']['fds']
    x.notes.insert(0, 'idle callbacks %d in %.1f s; input cost %d log lines (+%d suppressed); '
                   'fds %d (baseline %d)' % (cb, PAUSE, logged, supp, fds, fds0))
    check(cb == 0, 'callbacks while idle: %d in %.1f s (loop %s -> %s)'
          % (cb, PAUSE, a['loop'], b['loop']))
    check(b['log']['written'] == a['log']['written'],
          'log lines while idle: %d' % (b['log']['written'] - a['log']['written']))
    if hasattr(x, 'check'):
        x.check(base, b)
    log_max = getattr(x, 'log_max', o.get('log_max', 40))
    check(logged <= log_max, 'the input cost %d log lines (bound %d)' % (logged, log_max))
    check(fds == fds0 + o.get('fd_delta', 0), 'fds %d, baseline %d%s'
          % (fds, fds0, ' + %d' % o['fd_delta'] if o.get('fd_delta') else ''))
    check(hostile['loop']['watches'] == b['loop']['watches'], 'watches changed while idle')


def run_row(fn):
    o = fn.opts
    kw, ends = stdio_pipes() if o.get('stdio') else ({}, ())
    kw.update(o.get('daemon_kw', {}))
    d = tc.Daemon(ports=o.get('ports', ()), max_ports=o.get('max_ports'),
                  extra=o.get('extra', ()), **kw)
    for fd in (kw.get('stdin'), kw.get('stdout')):
        if isinstance(fd, int):
            os.close(fd)        # the daemon's ends
    errs, x, b = [], None, None
    try:
        m = Meter(d)
        x = Ctx(d, m)
        x.ends = ends
        state = {}

        def setup_done():
            state['base'] = settle(m, 'after set-up')
        x.setup_done = setup_done
        fn(x)
        if 'base' not in state:         # a row without a separate set-up
            setup_done()
        hostile = settle(m, 'after the input')
        a = m.read()
        time.sleep(PAUSE)
        b = m.read()
        judge(x, o, state['base'], hostile, a, b)
    except CaseFailed as e:
        errs.append(str(e))
    except Exception as e:      # noqa: BLE001
        errs.append('%s: %s' % (type(e).__name__, e))
        errs += traceback.format_exc().splitlines()
    e2, log = d.stop()
    errs += e2
    # Suppressed lines are summed up on the next line written (at the
    # latest the one of the SIGTERM).
    if b and b['log']['suppressed'] and 'messages suppressed (rate limit)' not in log:
        errs.append('%d lines suppressed, and no "suppressed" line in the log'
                    % b['log']['suppressed'])
    for fd in ends:
        try:
            os.close(fd)
        except OSError:
            pass
    if not errs:
        shutil.rmtree(d.dir, ignore_errors=True)
    return errs, '; '.join(x.notes) if x else '', log, d.dir


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--vserial', required=True)
    ap.add_argument('--vserialctl', required=True)
    ap.add_argument('--list', action='store_true')
    ap.add_argument('rows', nargs='*')
    opts = ap.parse_args()
    opts.vserial = os.path.abspath(opts.vserial)
    opts.vserialctl = os.path.abspath(opts.vserialctl)
    tc.OPTS = opts
    if opts.list:
        print('\n'.join(r.__name__ for r in ROWS))
        return 0
    rows = ROWS
    if opts.rows:
        known = {r.__name__: r for r in ROWS}
        bad = [n for n in opts.rows if n not in known]
        if bad:
            ap.error('unknown row(s): %s' % ' '.join(bad))
        rows = [known[n] for n in opts.rows]
    print('1..%d' % len(rows), flush=True)
    failed = 0
    for i, fn in enumerate(rows, 1):
        errs, info, log, ddir = run_row(fn)
        if errs:
            failed += 1
            print('not ok %d - %s' % (i, fn.__name__))
            for e in errs:
                for ln in str(e).splitlines():
                    print('#   %s' % ln)
            if info:
                print('#   %s' % info)
            print('#   daemon: %s' % ddir)
            for ln in log.splitlines()[-20:]:
                print('#   | %s' % ln)
        else:
            print('ok %d - %s # %s' % (i, fn.__name__, info))
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
