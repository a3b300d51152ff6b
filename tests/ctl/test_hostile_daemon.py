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

The library's findings have rows of their own (descriptor_storm,
kick_fd_at_eof, guest_memory_shrunk, rings_past_the_device): the input
comes from a fake VMM and guest (fakeguest.py) that writes rings, sends
vhost-user messages and truncates its memory as a hostile one would.

Each row fails on main before issue 9 (e87e622), which has no "stats"
request: the Meter then judges from /proc (CPU ticks for callbacks, log
file lines, /proc/PID/fd), so the same rows can be run against that
daemon to show it (--vserial of a build of e87e622).

Adding a case is one @row function: set up with the fixtures in
test_ctl.py and fakeguest.py, apply the input, return; the harness does
the judging. Row options: ports, max_ports, extra (daemon arguments),
log_max (log lines the input may cost), fd_delta, daemon_kw (Popen),
stdio (the daemon's stdin and stdout are pipes; the row gets x.ends =
(stdin's write end, stdout's read end)).
"""

import os
import re
import select
import shutil
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeguest  # noqa: E402,F401  (rows use its constants)
import testctl as tc  # noqa: E402
from testctl import CaseFailed, check, wait_for  # noqa: E402,F401

PAUSE = 1.0             # quiet seconds judged
SETTLE_TIMEOUT = 20     # seconds a daemon may take to become idle


# ---------------------------------------------------------------- the meter

PROC_IDLE_TICKS = 2     # /proc meter: CPU ticks (10 ms) an idle daemon may show


class Meter:
    """The daemon's counters, read on a connection of their own.

    A daemon without the "stats" request (main before issue 9, e87e622:
    to show that a row fails there) is judged from /proc instead: the CPU
    time it used (utime + stime, in clock ticks) stands for callbacks run,
    its log file's lines for lines written, /proc/PID/fd for its fds. Each
    read also sends "list", so the control socket must keep answering. Rows
    check what only "stats" can show when self.proc is False."""

    def __init__(self, d):
        self.d = d
        self.cl = d.client()
        r = self.cl.req({'cmd': 'stats'})
        self.proc = not r.get('ok')

    def read(self):
        if not self.proc:
            return self.cl.ok({'cmd': 'stats'})['stats']
        self.cl.ok({'cmd': 'list'})
        pid = self.d.proc.pid
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        with open(self.d.path('daemon.log'), 'rb') as f:
            lines = f.read().count(b'\n')
        return {'_proc': True,
                'loop': {'dispatched': int(fields[11]) + int(fields[12]), 'watches': 0},
                'client': {'callbacks': 0},
                'log': {'written': lines, 'suppressed': 0},
                'process': {'fds': len(os.listdir('/proc/%d/fd' % pid))}}


def busy(a, b):
    """Callbacks between two reads that were not the reads' own (with the
    /proc meter: CPU ticks beyond PROC_IDLE_TICKS)."""
    if a.get('_proc'):
        ticks = b['loop']['dispatched'] - a['loop']['dispatched']
        return 0 if ticks <= PROC_IDLE_TICKS else ticks
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

ROWS, row = tc.registry()


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


# ------------------------------------------- the library's findings, live

HERE = os.path.dirname(os.path.abspath(__file__))


def virtq_limits():
    """The per-call and per-chain descriptor bounds virtq.h states."""
    with open(os.path.join(HERE, '..', '..', 'src', 'lib', 'virtq', 'virtq.h')) as f:
        defs = dict(re.findall(r'#define (VS_VQ_\w+) (.+)', f.read()))

    def val(name):
        e = re.sub(r'\b(VS_VQ_\w+)\b', lambda m: str(val(m.group(1))), defs[name])
        return int(eval(re.sub(r'(\d+)(ull|ul|u)\b', r'\1', e)))  # noqa: S307
    return val('VS_VQ_CALL_DESCS'), val('VS_VQ_MAX_CHAIN')


def new_guest(x, **kw):
    """A fake guest (VMM) of the row's own; the harness shuts down the
    last one made."""
    g = fakeguest.FakeGuest(x.d.vhost, **kw)
    x.d.guest = g
    return g


def vmm_sync(g):
    """Every message sent so far has been handled: one with a reply."""
    with g.lock:
        g._u64(fakeguest.GET_FEATURES)


def recv_exact(sock, n, what):
    got = bytearray()
    sock.settimeout(20)
    while len(got) < n:
        d = sock.recv(n - len(got))
        check(d, '%s: end of stream after %d of %d bytes' % (what, len(got), n))
        got += d
    return bytes(got)


def nothing_more(sock, what):
    sock.setblocking(False)
    try:
        d = sock.recv(65536)
    except BlockingIOError:
        d = None
    finally:
        sock.setblocking(True)
    if d is not None:
        raise CaseFailed('%s: %s' % (what, 'end of stream' if d == b'' else
                                     '%d more bytes (%r...)' % (len(d), d[:16])))


def port_stats(st, pid):
    return [p for p in st['ports'] if p['id'] == pid][0]


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock',
            'id=2,name=org.two,backend=unix,path=@two.sock',
            'id=3,name=org.three,backend=unix,path=@three.sock'], max_ports=4)
def descriptor_storm(x):
    """Finding 2, the audit's one-kick storm on 256-entry rings, one kick
    each on three ports: port 1's direct chain is 256 INDIRECT|NEXT
    entries (the last without NEXT), each naming a table of 65536 empty
    descriptors; port 2 names
    that table once (INDIRECT); port 3 holds the longest legal chain (an
    indirect table of 1023 descriptors, empty and one-byte ones in turn).
    Every avail slot holds head 0; the guest acked INDIRECT_DESC. Before
    issue 9 that was ~4e9 descriptor reads in one callback. Now: no call
    into the device reads more than virtq.h's bound, ports 1 (INDIRECT|NEXT)
    and 2 (chain cap) are broken, port 3's 256 chains arrive through
    scheduled runs, and the control socket answers throughout."""
    call_bound, chain_max = virtq_limits()
    g = new_guest(x, qsize=256, mem=32 << 20, features=1 << fakeguest.F_INDIRECT_DESC)
    g.wait(lambda: all(i in g.ports for i in (1, 2, 3)), what='ports 1-3')
    c3 = tc.unix_client(x.d.path('three.sock'))
    g.wait(lambda: g.ports[3].host_open, what='host client on port 3')
    x.setup_done()
    base = x.m.read()
    n, D = g.qsize, fakeguest
    legal_n = chain_max - 1             # + the indirect descriptor = the cap
    with g.lock:
        big = g.alloc(16 * 65536, 4096)
        g.write(big, b''.join(struct.pack('<QIHH', 0, 0, D.DESC_F_NEXT, i + 1)
                              for i in range(65535)) + bytes(16))
        byte = g.alloc(1, 1)
        g.write(byte, b's')
        legal = g.alloc(16 * legal_n, 16)
        g.write(legal, b''.join(struct.pack('<QIHH', byte if i % 2 else 0, i % 2,
                                            D.DESC_F_NEXT if i < legal_n - 1 else 0, i + 1)
                                for i in range(legal_n)))
        q1, q2, q3 = (g.vqs[fakeguest.txq(p)] for p in (1, 2, 3))
        for i in range(n):
            last = i == n - 1
            q1.put_desc(i, big, 16 * 65536, D.DESC_F_INDIRECT | (0 if last else D.DESC_F_NEXT),
                        0 if last else i + 1)
        q2.put_desc(0, big, 16 * 65536, D.DESC_F_INDIRECT)
        q3.put_desc(0, legal, 16 * legal_n, D.DESC_F_INDIRECT)
        for q in (q1, q2, q3):
            q.put_avail([0] * n)
            q.notify()
    try:
        x.m.cl.ok({'cmd': 'list'})
    except socket.timeout:
        raise CaseFailed('the control socket did not answer "list" within 10 s of the kicks')
    now = settle(x.m, 'after the storm')
    if x.m.proc:
        ticks = now['loop']['dispatched'] - base['loop']['dispatched']
        x.note('%d CPU ticks for the storm' % ticks)
        check(ticks <= 100, 'the storm cost %d CPU ticks (bound 100)' % ticks)
    want = n * (legal_n // 2)
    check(recv_exact(c3, want, 'port 3') == b's' * want, 'port 3: the legal chains\' bytes')
    if x.m.proc:
        return
    now = x.m.read()
    dev = now['device']
    p1, p2, p3 = (port_stats(now, i)['tx'] for i in (1, 2, 3))
    x.note('max %d descriptors per call (bound %d), %d per chain; port 3: %d chains, %d '
           'descriptors, %d schedules' % (dev['max_call_descs'], call_bound,
                                          dev['max_chain_descs'], p3['chains'], p3['descs'],
                                          p3['schedules']))
    check(dev['max_call_descs'] <= call_bound, 'a call read %d descriptors (bound %d)'
          % (dev['max_call_descs'], call_bound))
    check(dev['max_chain_descs'] <= chain_max, 'a chain of %d descriptors' % dev['max_chain_descs'])
    check(p1['errors'] == 1 and p2['errors'] == 1, 'ports 1, 2 not broken: %s %s' % (p1, p2))
    # A chain that a batch cannot fit goes back and is read again: counted.
    check(p3['errors'] == 0 and p3['chains'] >= n and p3['descs'] >= n * chain_max,
          'port 3: %s' % p3)
    check(p3['schedules'] >= n * chain_max // call_bound - 1, 'port 3 never scheduled: %s' % p3)
    check(port_stats(now, 3)['from_guest'] == want, 'port 3 from_guest')
    x.keep = c3


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def kick_fd_at_eof(x):
    """Finding 3: SET_VRING_KICK with a pipe's read end whose writer closed
    (readable for ever, at end of file). Before issue 9 the level-triggered
    watch ran on every loop pass: 100% CPU. Now the fd is dropped at EOF;
    the port still takes host data, and a new kick fd makes the ring work
    again."""
    g = guest_with_ports(x, 1)
    g.open(1)
    c = tc.unix_client(x.d.path('one.sock'))
    g.wait(lambda: g.ports[1].host_open, what='host client')
    x.setup_done()
    v0 = None if x.m.proc else x.m.read()['vmm']
    r, w = os.pipe()
    os.close(w)
    g.message(fakeguest.SET_VRING_KICK, struct.pack('<Q', fakeguest.txq(1)), [r])
    os.close(r)
    vmm_sync(g)
    settle(x.m, 'after the kick fd at EOF')
    if v0:
        v1 = x.m.read()['vmm']
        check(v1['fds'] == v0['fds'] - 1, 'the VMM connection holds %d fds, %d before '
              '(its kick eventfd was replaced by the pipe, and the pipe dropped)'
              % (v1['fds'], v0['fds']))
    c.sendall(b'h' * 3000)
    g.wait(lambda: len(g.ports[1].rx) >= 3000, what='host data to the guest')
    # The guest's own kick eventfd again: the ring is kicked again.
    g.message(fakeguest.SET_VRING_KICK, struct.pack('<Q', fakeguest.txq(1)),
              [g.vqs[fakeguest.txq(1)].kick])
    g.send(1, b'after' * 100)
    check(recv_exact(c, 500, 'port 1') == b'after' * 100, 'guest data after a new kick fd')
    x.keep = c


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4, log_max=60)
def guest_memory_shrunk(x):
    """Finding 4: the VMM shares guest memory in a memfd it made without
    sealing (so vserial cannot seal it) and ftruncate()s it after
    SET_MEM_TABLE, then kicks. Before issue 9, SIGBUS killed the daemon.
    Now only that VMM connection fails, and nothing read from the lost
    pages passes for guest data: (1) with the host client not reading, the
    daemon's copy into its buffer faults (the guard gives zeros): dropped,
    the client gets exactly what the guest wrote before; (2) with the
    client reading, writev() from the lost pages fails with EFAULT: the
    connection is closed, nothing written; (3) host data for receive
    buffers in lost pages (readv() EFAULT) stays in the kernel, the host
    client stays connected; (4) the next VMM gets it, and works."""
    def shrink_guest(**kw):
        g = new_guest(x, mem=24 << 20, **kw)
        g.wait(lambda: 1 in g.ports, what='port 1')
        return g

    def lost_area(g, n):
        """@n pages at the end of what @g uses, the part to cut off."""
        with g.lock:
            return g.alloc(4096 * n, 4096)

    def truncate_and_kick(g, area, q):
        os.ftruncate(g.memfd, area - fakeguest.GPA)
        g.vqs[q].notify()

    def vmm_gone(lost):
        def closed():
            check(x.d.alive(), 'the daemon died (status %s)' % x.d.proc.poll())
            if x.m.proc:
                return len(re.findall(r'VMM (disconnected|connection closed)', x.d.log())) >= lost
            return not x.m.read()['vmm']['connected']
        wait_for(closed, 'the VMM connection closed')
        if not x.m.proc:
            check(x.m.read()['vmm']['memory_lost'] == lost, 'memory_lost %s, expected %d'
                  % (x.m.read()['vmm'], lost))

    tx, rx = fakeguest.txq(1), fakeguest.rxq(1)
    g = shrink_guest()
    c = tc.unix_client(x.d.path('one.sock'))
    g.wait(lambda: g.ports[1].host_open, what='host client')
    x.setup_done()

    # (1) the client does not read: guest output is buffered, then the
    # truncated pages are copied into the buffer
    sent = b''
    for i in range(64):
        chunk = bytes([65 + i % 26]) * 65536
        g.send(1, chunk)
        sent += chunk
        wait_for(lambda: ports_by_id(x)[1]['from_guest'] == len(sent), 'guest output taken')
        if ports_by_id(x)[1]['buffered'] > 0:
            break
    check(ports_by_id(x)[1]['buffered'] > 0, 'nothing buffered after %d bytes' % len(sent))
    area = lost_area(g, 4)
    with g.lock:
        q = g.vqs[tx]
        heads = q.free[:4]
        for i, h in enumerate(heads):
            g.write(area + 4096 * i, b'B' * 4096)
            q.put_desc(h, area + 4096 * i, 4096)
        q.put_avail(heads)
    truncate_and_kick(g, area, tx)
    vmm_gone(1)
    got = recv_exact(c, len(sent), 'host client after (1)')
    check(got == sent, 'host client after (1): not what the guest wrote (%d zero bytes)'
          % got.count(0))
    settle(x.m, 'after (1)')
    nothing_more(c, 'host client after (1)')
    g.shutdown()

    # (2) the client reads: writev() from the lost pages
    g = shrink_guest()
    g.wait(lambda: g.ports[1].host_open, what='host client, second VMM')
    area = lost_area(g, 4)
    with g.lock:
        q = g.vqs[tx]
        heads = q.free[:4]
        for i, h in enumerate(heads):
            q.put_desc(h, area + 4096 * i, 4096)
        q.put_avail(heads)
    truncate_and_kick(g, area, tx)
    vmm_gone(2)
    settle(x.m, 'after (2)')
    nothing_more(c, 'host client after (2)')
    g.shutdown()

    # (3) host data for receive buffers in lost pages
    g = shrink_guest(rx_fill=0)
    g.open(1)
    area = lost_area(g, 4)
    with g.lock:
        q = g.vqs[rx]
        heads = q.free[:4]
        for i, h in enumerate(heads):
            q.put_desc(h, area + 4096 * i, 4096, fakeguest.DESC_F_WRITE)
        q.put_avail(heads)
    g.wait(lambda: g.ports[1].host_open, what='host client, third VMM')
    os.ftruncate(g.memfd, area - fakeguest.GPA)
    c.sendall(b'H' * 1000)
    vmm_gone(3)
    check(ports_by_id(x)[1]['host_connected'], 'the host client was dropped in (3)')
    g.shutdown()

    # (4) a VMM that does nothing wrong gets the host data, and works
    g = shrink_guest()
    g.open(1)
    g.wait(lambda: bytes(g.ports[1].rx) == b'H' * 1000, what='the host data kept for the guest')
    g.send(1, b'C' * 5000)
    check(recv_exact(c, 5000, 'host client after (4)') == b'C' * 5000, 'guest data, fourth VMM')
    x.keep = c

    def after(base, now):
        nothing_more(c, 'host client at the end')
    x.check = after


@row(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def rings_past_the_device(x):
    """Finding 5: a VMM sends SET_VRING_KICK, CALL and ERR with an eventfd
    for each of rings 10..255 of a 4-port device (10 rings). Before issue
    9 the daemon kept all 738 fds. Now rings the device does not have keep
    none: the daemon's fds and the connection's stay as they were, and the
    ports keep working."""
    g = guest_with_ports(x, 1)
    c = tc.unix_client(x.d.path('one.sock'))
    g.wait(lambda: g.ports[1].host_open, what='host client')
    x.setup_done()
    before = x.m.read()
    for q in range(10, 256):
        for req in (fakeguest.SET_VRING_KICK, fakeguest.SET_VRING_CALL, fakeguest.SET_VRING_ERR):
            e = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            g.message(req, struct.pack('<Q', q), [e])
            os.close(e)
    vmm_sync(g)
    now = x.m.read()
    x.note('fds %d -> %d after 738 ring fds' % (before['process']['fds'], now['process']['fds']))
    check(now['process']['fds'] == before['process']['fds'], 'the daemon holds %d fds, %d before'
          % (now['process']['fds'], before['process']['fds']))
    if not x.m.proc:
        check(now['vmm']['fds'] == before['vmm']['fds'] and now['vmm']['rings'] == 256,
              'the VMM connection: %s, before %s' % (now['vmm'], before['vmm']))
    g.send(1, b'd' * 5000)
    check(recv_exact(c, 5000, 'port 1') == b'd' * 5000, 'guest data after the ring fds')
    x.keep = c


# A TCP port for the tcp-connect port of the next row (its spec is fixed
# before the row runs).
TCP_PORT = tc.free_tcp_port()


@row(ports=['id=0,console,backend=unix,path=@con.sock,logfile=@con.log,logfile-timestamps=on',
            'id=1,name=org.j,backend=journal',
            'id=2,name=org.t,backend=tcp-connect,port=%d' % TCP_PORT,
            'id=3,name=org.h,backend=null,history=4K,logfile=@h.log'], max_ports=4, log_max=10)
def idle_with_host_features(x):
    """Issue 13's parts cost nothing while idle: a history follower
    connected, logfile= tees, a journal port (no journald here: its entries
    go nowhere) and a connected tcp-connect port, after output went through
    all of them."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', TCP_PORT))
    ls.listen(1)
    ls.settimeout(15)
    peer, _ = ls.accept()
    g = guest_with_ports(x, 0, 1, 2, 3)
    for p in (1, 2, 3):
        g.open(p)
    wait_for(lambda: ports_by_id(x)[2]['host_connected'], 'tcp-connect connected')
    fol = tc.Client(x.d.control)
    fol.send(b'{"cmd":"history","port":3,"follow":true}\n')
    check(fol.obj() == {'ok': True, 'bytes': 0, 'follow': True}, 'history reply')
    x.setup_done()
    g.send(0, b'console line\n')
    g.send(1, b'journal line\npartial')
    g.send(2, b'to the tcp peer\n')
    g.send(3, b'h' * 10000)
    check(peer.recv(100) == b'to the tcp peer\n', 'tcp peer data')
    got = b''
    while len(got) < 10000:
        got += fol.s.recv(65536)
    check(got == b'h' * 10000, 'the follower got %d bytes' % len(got))
    wait_for(lambda: ports_by_id(x)[1]['counters']['journal_entries'] == 2, 'journal entries')
    wait_for(lambda: os.path.getsize(x.d.path('h.log')) == 10000, 'the tee')
    x.keep = (ls, peer, fol)


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
    state = {}

    def body():
        m = Meter(d)
        x = state['x'] = Ctx(d, m)
        x.ends = ends

        def setup_done():
            state['base'] = settle(m, 'after set-up')
        x.setup_done = setup_done
        fn(x)
        if 'base' not in state:         # a row without a separate set-up
            setup_done()
        hostile = settle(m, 'after the input')
        a = m.read()
        time.sleep(PAUSE)
        state['b'] = b = m.read()
        judge(x, o, state['base'], hostile, a, b)
    errs, _ = tc.guarded(body)
    e2, log = d.stop()
    errs += e2
    # Suppressed lines are summed up on the next line written (at the
    # latest the one of the SIGTERM).
    b = state.get('b')
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
    x = state.get('x')
    return errs, '; '.join(x.notes) if x else '', log, d.dir


if __name__ == '__main__':
    sys.exit(tc.tap_main(__doc__, ROWS, run_row))
