#!/usr/bin/env python3
"""The control socket and vserialctl, end to end: the real vserial daemon
with --control, driven through raw JSON lines and through vserialctl, with
no VMM or with a fake one (fakeguest.py: a Python vhost-user frontend that
plays the Linux virtio_console driver).

Prints TAP, one case per line ("ok N - name"), so that scripts/test counts
every case. Each case gets its own daemon in its own directory; a daemon
that does not exit 0 on SIGTERM or writes a sanitizer report fails the case.

  tests/ctl/test_ctl.py --vserial build/src/daemon/vserial \\
                        --vserialctl build/src/ctl/vserialctl [CASE...]
"""

import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeguest  # noqa: E402

from testctl import (OPTS, SANITIZER_RE, CaseFailed, Client, another_daemon, check,
                     fill_control_queue, free_tcp_port, listening, one_error_line, ports_by_id,
                     read_to_eof, registry, run_refused, tap_main, unix_client, wait_for)  # noqa: E402
import testctl  # noqa: E402

CASES, case = registry()


# ---------------------------------------------------------------- no VMM

def woke_for_request_only(st, st2):
    """Between two stats replies (@st, @st2) of one connection, with an
    idle second between them, the loop woke for the second request only."""
    mine = st2['client']['callbacks'] - st['client']['callbacks']
    woke = st2['loop']['wakeups'] - st['loop']['wakeups']
    ran = st2['loop']['dispatched'] - st['loop']['dispatched']
    check(ran == mine and woke <= mine,
          'idle second: %d wake-ups, %d callbacks, of which %d for the request' %
          (woke, ran, mine))


@case
def control_socket_swapped(d):
    """The control socket is never chmod()ed by path: an attacker who can
    write in its directory and swaps the socket for a symlink right after
    bind() (bindhook.c) must not get the link's target chmod()ed to 0600.
    The daemon notices the swap and refuses to start."""
    if not OPTS.bindhook:
        return 'SKIP no --bindhook'
    victim = d.path('victim')
    with open(victim, 'w') as f:
        f.write('not the daemon\'s\n')
    os.chmod(victim, 0o644)
    ctl = d.path('ctl2.sock')
    env = dict(os.environ, LD_PRELOAD=OPTS.bindhook, VSHOOK_PATH=ctl, VSHOOK_TARGET=victim,
               ASAN_OPTIONS=os.environ.get('ASAN_OPTIONS', '') + ':verify_asan_link_order=0')
    argv = [OPTS.vserial, '--socket', d.path('v2.sock'), '--control', ctl]
    started = None
    try:
        p = run_refused(argv, env)
    except CaseFailed as e:
        started = e
    mode = stat.S_IMODE(os.stat(victim).st_mode)
    check(mode == 0o644, 'the symlink target was chmod()ed to %o' % mode)
    if started:
        raise started
    check(p.returncode == 1 and 'ctl2.sock' in p.stderr and 'not the socket' in p.stderr,
          'daemon: exit %s, %r' % (p.returncode, p.stderr[-500:]))


@case
def file_port_symlink(d):
    """backend=file opens its path without following a symlink (O_NOFOLLOW):
    a link planted at the path does not make the daemon create or append to
    its target."""
    cl = d.client()
    target = d.path('through-the-link')
    os.symlink(target, d.path('out.txt'))
    r = cl.req({'cmd': 'add', 'spec': 'id=2,backend=file,path=%s' % d.path('out.txt')})
    check(r.get('ok') is False and 'symbolic link' in r.get('error', ''), 'add: %s' % r)
    check(not os.path.exists(target), 'the daemon created the symlink\'s target')
    check(2 not in ports_by_id(cl), 'port 2 was added')


@case
def refused_client_drain_bounded(d):
    """A refused client's input is drained a bounded amount before the close
    (to let it read the reason), not all of it: here the 65th client queued
    32 MiB before it was even accepted (the daemon stopped meanwhile;
    SO_SNDBUFFORCE), and the daemon reads at most 64 KiB of it (stats
    control.drained), then closes: the client reads the reason, then a
    reset (the rest was never read)."""
    if os.geteuid() != 0:
        return 'SKIP SO_SNDBUFFORCE needs root'
    keep = [d.client() for _ in range(64)]
    for c in keep:
        c.ok({'cmd': 'list'})
    d.proc.send_signal(signal.SIGSTOP)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, 32, 64 << 20)      # SO_SNDBUFFORCE
        s.connect(d.control)
        s.setblocking(False)
        sent = 0
        try:
            while sent < 32 << 20:
                sent += s.send(b'x' * 65536)
        except BlockingIOError:
            pass
    finally:
        d.proc.send_signal(signal.SIGCONT)
    check(sent >= 32 << 20, 'only %d bytes queued' % sent)
    wait_for(lambda: keep[0].ok({'cmd': 'stats'})['stats']['control']['refused'] == 1,
             'the refusal')
    ctl = keep[0].ok({'cmd': 'stats'})['stats']['control']
    check(0 <= ctl.get('drained', -1) <= 64 << 10, 'drained from the refused client: %s' % ctl)
    s.setblocking(True)
    s.settimeout(10)
    got = b''
    try:
        while b'\n' not in got:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except ConnectionResetError:
        pass
    check(b'too many control connections' in got, 'the refused client read %r' % got)
    s.close()


@case
def buffer_size_overflow(d):
    """buffer=17179869185G is 2^34 + 1 GiB: far over the 1G bound, not 1 GiB
    after the multiplication wrapped."""
    p = run_refused([OPTS.vserial, '--socket', d.path('v2.sock'), '--port',
                     'id=1,backend=null,buffer=17179869185G'])
    lines = p.stderr.splitlines()
    check(p.returncode == 2 and len(lines) == 1 and 'buffer' in lines[0],
          'vserial: exit %s, %r' % (p.returncode, p.stderr))
    for bad in ('17179869185G', '18014398509481985K', '17592186044417M', '99999999999999999999'):
        r = d.client().req({'cmd': 'add', 'spec': 'id=2,backend=null,buffer=' + bad})
        check(r.get('ok') is False and 'buffer' in r.get('error', ''), 'buffer=%s: %s' % (bad, r))
    r = d.client().req({'cmd': 'add', 'spec': 'id=2,backend=null,buffer=1G'})
    check(r.get('ok') is True, 'buffer=1G: %s' % r)


def proc_status(pid):
    """/proc/PID/status as {key: first number}."""
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            k, _, v = line.partition(':')
            if v.split() and v.split()[0].isdigit():
                out[k] = int(v.split()[0])
    return out


def sanitized(pid):
    """A sanitizer runtime is mapped: its shadow memory makes RSS meaningless."""
    with open('/proc/%d/maps' % pid) as f:
        return any('libasan' in line or 'libubsan' in line or 'libtsan' in line for line in f)


def switches(pid):
    st = proc_status(pid)
    return st['voluntary_ctxt_switches'] + st['nonvoluntary_ctxt_switches']


@case(ports=(['id=0,console,backend=unix,path=@con.sock'] +
             ['id=%d,name=org.p%d,backend=unix,path=@p%d.sock' % (i, i, i)
              for i in range(1, 127)]), max_ports=127)
def idle_127_ports(d):
    """127 idle ports (no VMM): not one wake-up in a second (the loop's
    own count, and the kernel's context switches), and under 1 MiB of
    private anonymous memory, also after a stats reply for 127 ports."""
    pid = d.proc.pid
    cl = d.client()
    st = cl.ok({'cmd': 'stats'})['stats']     # served: set-up is over
    time.sleep(0.2)
    a = switches(pid)
    time.sleep(1)
    b = switches(pid)
    # Taken while the daemon sleeps (a == b): what serving the first
    # request used is given back by then.
    anon = proc_status(pid)['RssAnon']
    st2 = cl.ok({'cmd': 'stats'})['stats']
    check(a == b, '%d context switches in a second of idleness' % (b - a))
    # Between the two requests the loop woke for the second one only.
    woke_for_request_only(st, st2)
    if sanitized(pid):
        return
    check(anon < 1024, 'RssAnon %d KiB with 127 idle ports (bound 1024)' % anon)


# ---------------------------------------------------------------- the sandbox

def other_dir():
    """A directory outside the daemon's: the sandbox does not allow it."""
    return tempfile.mkdtemp(prefix='vsctl-out-', dir='/tmp')


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'])
def sandbox_forbidden_open(d):
    """Finding 9: after set-up the confined daemon opens files and makes
    unix sockets only in the control socket's directory and --allow-path
    ones (Landlock); elsewhere the kernel refuses the open and the bind,
    the add says so, and nothing is created."""
    out = other_dir()
    try:
        cl = d.client()
        for spec, made in (('id=2,backend=file,path=%s/out.txt', 'out.txt'),
                           ('id=2,backend=unix,path=%s/s.sock', 's.sock'),
                           ('id=2,backend=file,path=%s/x,input=/etc/hostname', 'x')):
            r = cl.req({'cmd': 'add', 'spec': spec % out})
            check(r.get('ok') is False and 'ermission denied' in r['error'] and
                  'allow-path' in r['error'], 'add %s: %s' % (spec % out, r))
            check(not os.path.exists(os.path.join(out, made)), '%s created' % made)
        check(sorted(ports_by_id(cl)) == [1], 'ports %s' % sorted(ports_by_id(cl)))
        # In the control socket's directory: allowed.
        cl.ok({'cmd': 'add', 'spec': 'id=2,backend=file,path=%s' % d.path('ok.txt')})
        cl.ok({'cmd': 'add', 'spec': 'id=3,backend=unix,path=%s' % d.path('ok.sock')})
        check(os.path.exists(d.path('ok.txt')) and os.path.exists(d.path('ok.sock')),
              'allowed ports not created')
        cl.ok({'cmd': 'remove', 'port': 3})
        check(not os.path.exists(d.path('ok.sock')), 'socket of a removed port left')
    finally:
        shutil.rmtree(out, ignore_errors=True)


@case
def sandbox_allow_path(d):
    """--allow-path DIR: run-time ports may live there too."""
    out = other_dir()

    def run(d2):
        cl = d2.client()
        for spec in ('id=2,backend=file,path=%s/out.txt', 'id=3,backend=unix,path=%s/s.sock'):
            cl.ok({'cmd': 'add', 'spec': spec % out})
        check(os.path.exists(os.path.join(out, 's.sock')), 'no socket in --allow-path')
        cl.ok({'cmd': 'remove', 'port': 3})
        check(not os.path.exists(os.path.join(out, 's.sock')), 'socket of a removed port left')
    try:
        another_daemon(d, run, extra=['--allow-path', out])
    finally:
        shutil.rmtree(out, ignore_errors=True)


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'])
def sandbox_forbidden_connect(d):
    """Finding 9: connect() is refused (seccomp) unless a unix-connect port
    is configured or --allow-connect is given: a run-time unix-connect port
    fails to add, and its peer never sees a connection."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(d.path('peer.sock'))
    srv.listen(4)
    cl = d.client()
    r = cl.req({'cmd': 'add', 'spec': 'id=2,backend=unix-connect,path=%s' % d.path('peer.sock')})
    check(r.get('ok') is False and 'not permitted' in r['error'] and
          'allow-connect' in r['error'], 'add: %s' % r)
    ready, _, _ = select.select([srv], [], [], 0.2)
    check(not ready, 'the confined daemon connected to the peer')
    check(sorted(ports_by_id(cl)) == [1], 'ports %s' % sorted(ports_by_id(cl)))
    # Not a tcp socket either: socket(AF_INET) is refused without --allow-tcp.
    r = cl.req({'cmd': 'add', 'spec': 'id=3,backend=tcp,port=%d' % free_tcp_port()})
    check(r.get('ok') is False and 'not permitted' in r['error'] and
          'allow-tcp' in r['error'], 'tcp add: %s' % r)
    srv.close()


@case(extra=['--allow-connect', '--allow-tcp'])
def sandbox_allow_connect_tcp(d):
    """--allow-connect and --allow-tcp: run-time unix-connect and tcp ports
    work in the confined daemon."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(d.path('peer.sock'))
    srv.listen(4)
    srv.settimeout(10)
    cl = d.client()
    cl.ok({'cmd': 'add', 'spec': 'id=2,backend=unix-connect,path=%s' % d.path('peer.sock')})
    peer, _ = srv.accept()
    port = free_tcp_port()
    cl.ok({'cmd': 'add', 'spec': 'id=3,backend=tcp,port=%d' % port})
    t = socket.create_connection(('127.0.0.1', port), timeout=10)
    wait_for(lambda: ports_by_id(cl)[3]['host_connected'], 'tcp client connected')
    t.close()
    peer.close()
    srv.close()


@case
def sandbox_configured_backends(d):
    """Ports of the command line keep working confined: a unix-connect port
    reconnects (connect is allowed because it exists), a tcp port accepts."""
    port = free_tcp_port()

    def run(d2):
        cl = d2.client()
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(d2.path('peer.sock'))
        srv.listen(4)
        srv.settimeout(15)
        peer, _ = srv.accept()
        peer.close()
        peer, _ = srv.accept()          # the reconnect after the peer left
        wait_for(lambda: ports_by_id(cl)[1]['host_connected'], 'unix-connect reconnected')
        t = socket.create_connection(('127.0.0.1', port), timeout=10)
        wait_for(lambda: ports_by_id(cl)[2]['host_connected'], 'tcp client')
        t.close()
        peer.close()
        srv.close()
    another_daemon(d, run, ports=['id=1,backend=unix-connect,path=@peer.sock',
                                  'id=2,backend=tcp,port=%d' % port])


@case
def sandbox_user(d):
    """--user: the confined daemon runs as that user and still serves: the
    control socket, run-time ports in a directory the user may write, and
    a clean exit that removes its sockets."""
    import pwd
    if os.geteuid() != 0:
        return 'SKIP --user needs root'
    nobody = pwd.getpwnam('nobody')

    def uids(pid):
        with open('/proc/%d/status' % pid) as f:
            return [ln.split()[1:] for ln in f if ln.startswith('Uid:')][0]

    def run(d2):
        # The switch follows the listening sockets.
        wait_for(lambda: uids(d2.proc.pid) == [str(nobody.pw_uid)] * 4,
                 'the daemon running as nobody (uids %s)' % uids(d2.proc.pid))
        cl = d2.client()
        cl.ok({'cmd': 'add', 'spec': 'id=2,backend=unix,path=%s' % d2.path('hot.sock')})
        check(os.stat(d2.path('hot.sock')).st_uid == nobody.pw_uid, 'hot.sock owner')
        cl.ok({'cmd': 'remove', 'port': 2})
        check(cl.ok({'cmd': 'stats'})['stats']['process']['fds'] > 0, 'stats as nobody')
        cl.close()
    # nobody removes the sockets at exit and adds ports: its directory
    another_daemon(d, run, ports=['id=1,name=org.one,backend=unix,path=@one.sock'],
                   extra=['--user', 'nobody'], chmod=0o777)


@case(ports=['id=0,console,backend=unix,path=@con.sock',
             'id=1,console,backend=pty'], max_ports=4)
def pty_resize_while_full(d):
    """A pty console's new terminal size that the device refuses (the
    guest's control queue is full) is tried again at the next poll, and
    reaches the guest once it takes control messages again."""
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports and g.ports[1].console and g.ports[1].resizes,
           what='pty console 1')
    cl = d.client()
    fill_control_queue(cl, g, d.path('con.sock'))
    pty = os.open(ports_by_id(cl)[1]['path'], os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.ioctl(pty, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 100, 0, 0))
        time.sleep(1.2)         # two polls, both refused
        check(ports_by_id(cl)[1]['cols'] != 100, 'size taken while the queue was full')
        g.ctrl_rx_resume()
        g.wait(lambda: g.ports[1].resizes[-1] == (100, 40), timeout=15,
               what='the new size in the guest (got %s)' % g.ports[1].resizes[-3:])
    finally:
        os.close(pty)


@case
def socket_mode_0600(d):
    st = os.lstat(d.control)
    check(stat.S_ISSOCK(st.st_mode), 'control path is not a socket')
    check(stat.S_IMODE(st.st_mode) == 0o600, 'mode %o, want 600' % stat.S_IMODE(st.st_mode))
    check(st.st_uid == os.geteuid(), 'owner %d' % st.st_uid)


@case(ports=['id=0,console,backend=unix,path=@con.sock',
             'id=1,name=org.one,backend=unix,path=@one.sock'])
def list_fields(d):
    cl = d.client()
    r = cl.ok({'cmd': 'list'})
    ports = r['ports']
    check([p['id'] for p in ports] == [0, 1], 'ids %s' % [p['id'] for p in ports])
    con, p1 = ports
    for p in ports:
        for k, t in (('id', int), ('name', str), ('console', bool), ('backend', str),
                     ('guest_open', bool), ('host_connected', bool), ('throttled', bool),
                     ('to_guest', int), ('from_guest', int), ('buffered', int)):
            check(isinstance(p.get(k), t), 'port %s: %r is %r' % (p.get('id'), k, p.get(k)))
    check(con['console'] and con['cols'] == 80 and con['rows'] == 25, 'console %s' % con)
    check(p1 == dict(p1, name='org.one', console=False, backend='unix',
                     path=d.path('one.sock'), guest_open=False, host_connected=False,
                     throttled=False, to_guest=0, from_guest=0, buffered=0), 'port 1 %s' % p1)
    check('cols' not in p1, 'a non-console port has a size')
    # vserialctl list: an aligned table with the documented columns
    r = d.ctl('list')
    check(r.returncode == 0 and r.stderr == '', 'list: %s %r' % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    head = lines[0].split()
    check(head == ['ID', 'NAME', 'KIND', 'BACKEND', 'GUEST', 'HOST', 'THROTTLED', 'TO-GUEST',
                   'FROM-GUEST', 'BUFFERED'], 'header %s' % head)
    check(len(lines) == 3, 'table %r' % r.stdout)
    check(lines[1].split() == ['0', '-', 'console', 'unix', 'closed', '-', 'no', '0', '0', '0'],
          'row %r' % lines[1])
    check(lines[2].split() == ['1', 'org.one', 'port', 'unix', 'closed', '-', 'no', '0', '0', '0'],
          'row %r' % lines[2])
    # Aligned: text columns start where their heading starts, numbers end
    # where their heading ends.
    heads = [(m.start(), m.end()) for m in re.finditer(r'\S+', lines[0])]
    numeric = {0, 7, 8, 9}
    for ln in lines[1:]:
        cells = [(m.start(), m.end()) for m in re.finditer(r'\S+', ln)]
        for k, ((hs, he), (cs, ce)) in enumerate(zip(heads, cells)):
            check(ce == he if k in numeric else cs == hs,
                  'column %s unaligned in %r' % (lines[0].split()[k], ln))
    r = d.ctl('list', '--json')
    check(r.returncode == 0 and json.loads(r.stdout) == cl.ok({'cmd': 'list'})['ports'],
          'list --json %r' % r.stdout)


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'])
def stats_fields(d):
    """The "stats" reply (src/daemon/stats.h), vserialctl stats and the
    per-port counters of list."""
    cl = d.client()
    st = cl.ok({'cmd': 'stats'})['stats']
    want = {'loop': ('wakeups', 'dispatched', 'watches'), 'log': ('written', 'suppressed'),
            'process': ('fds',), 'vmm': ('accepted', 'refused'),
            'control': ('clients', 'requests', 'refused'), 'client': ('id', 'callbacks')}
    for sec, keys in want.items():
        for k in keys:
            check(isinstance(st.get(sec, {}).get(k), int) and st[sec][k] >= 0,
                  'stats %s.%s: %r' % (sec, k, st.get(sec)))
    check(st['vmm']['connected'] is False, 'vmm.connected %r' % st['vmm'])
    check(st['process']['fds'] == len(os.listdir('/proc/%d/fd' % d.proc.pid)),
          'fds %d, /proc says %d' % (st['process']['fds'],
                                     len(os.listdir('/proc/%d/fd' % d.proc.pid))))
    check([(p['id'], p['name']) for p in st['ports']] == [(1, 'org.one')], 'ports %s' % st['ports'])
    for k in ('to_guest', 'from_guest', 'buffered', 'host_connects', 'clients_refused'):
        check(st['ports'][0][k] == 0, 'port counter %s: %s' % (k, st['ports'][0]))
    # Idle but for this client: the loop ran this client's callbacks only
    # (one callback may serve several requests).
    st2 = cl.ok({'cmd': 'stats'})['stats']
    check(st2['client']['callbacks'] - st['client']['callbacks'] ==
          st2['loop']['dispatched'] - st['loop']['dispatched'],
          'client callbacks %s -> %s, loop %s -> %s' % (st['client'], st2['client'],
                                                        st['loop'], st2['loop']))
    check(st2['control']['requests'] == st['control']['requests'] + 1, 'requests')
    host = unix_client(d.path('one.sock'))
    wait_for(lambda: ports_by_id(cl)[1]['counters']['host_connects'] == 1, 'host_connects')
    host.close()
    r = d.ctl('stats')
    check(r.returncode == 0 and r.stderr == '', 'vserialctl stats: %s %r' % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    for sec in ('loop', 'log', 'process', 'vmm', 'control', 'client'):
        check(any(ln.startswith(sec + ': ') for ln in lines), 'no %s line in %r' % (sec, r.stdout))
    check(any(ln.startswith('ports: ') and 'id=1' in ln and 'host_connects=1' in ln
              for ln in lines), 'port line in %r' % r.stdout)
    r = d.ctl('stats', '--json')
    check(r.returncode == 0 and set(json.loads(r.stdout)) >= set(want) | {'ports'},
          'stats --json %r' % r.stdout)


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def stats_library_counters(d):
    """The library's cost counters in "stats", "list" and vserialctl: the
    device's work (max descriptors per call included), each port's queues,
    the VMM connection's messages, fds, regions and rings."""
    cl = d.client()
    st = cl.ok({'cmd': 'stats'})['stats']
    qkeys = ('kicks', 'chains', 'descs', 'bytes', 'schedules', 'errors', 'max_chain_descs')
    check(st['device']['queues'] == 10 and st['device']['max_call_descs'] == 0 and
          all(st['device'][k] == 0 for k in qkeys), 'device before a guest: %s' % st['device'])
    check(st['vmm']['messages'] == 0 and st['vmm']['fds'] == 0, 'vmm without one: %s' % st['vmm'])
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports, what='port 1')
    host = unix_client(d.path('one.sock'))
    g.wait(lambda: g.ports[1].host_open, what='host open')
    g.send(1, b'x' * 10000)
    # MSG_WAITALL on a socket with a timeout returns what is there: loop.
    got = b''
    host.settimeout(20)
    while len(got) < 10000:
        b = host.recv(10000 - len(got))
        check(b, 'end of file after %d bytes of guest data' % len(got))
        got += b
    check(got == b'x' * 10000, 'guest data')
    st = cl.ok({'cmd': 'stats'})['stats']
    vmm, dev = st['vmm'], st['device']
    # 10 rings: a kick and a call eventfd each; the socket, the scheduler's
    # eventfd and the pacing timerfd
    check(vmm['connected'] and vmm['messages'] > 40 and vmm['regions'] == 1 and
          vmm['rings'] == 10 and vmm['fds'] == 3 + 2 * 10, 'vmm: %s' % vmm)
    tx = [p for p in st['ports'] if p['id'] == 1][0]['tx']
    check(set(tx) == set(qkeys), 'port tx keys %s' % sorted(tx))
    check(tx['chains'] == 3 and tx['descs'] == 3 and tx['bytes'] == 10000 and tx['errors'] == 0,
          'port 1 tx %s' % tx)
    check(dev['chains'] >= tx['chains'] and 0 < dev['max_call_descs'] <= 4096 and
          dev['control_tx']['chains'] >= 2, 'device %s' % dev)
    pace = dev['pacing']
    check(set(pace) == {'notifies', 'notifies_held', 'kick_batches', 'batch_timeouts',
                        'timer_arms', 'timer_runs'} and pace['notifies'] >= 1,
          'device pacing %s' % pace)
    counters = ports_by_id(cl)[1]['counters']
    check(counters['tx'] == tx and 'rx' in counters, 'list counters %s' % counters)
    r = d.ctl('list', '--json')
    listed = [p for p in json.loads(r.stdout) if p['id'] == 1][0]['counters']
    check(listed['tx'] == tx and set(listed['rx']) == set(qkeys), 'list --json counters %s' % listed)
    r = d.ctl('stats')
    check(any(ln.startswith('device: ') and 'max_call_descs=' in ln and 'control_tx.chains=' in ln
              for ln in r.stdout.splitlines()), 'vserialctl stats %r' % r.stdout)
    check(any(ln.startswith('ports: ') and 'tx.bytes=10000' in ln for ln in r.stdout.splitlines()),
          'vserialctl stats port line %r' % r.stdout)
    host.close()


@case
def add_remove_roundtrip(d):
    cl = d.client()
    r = cl.ok({'cmd': 'add', 'spec': 'name=org.a,backend=unix,path=%s' % d.path('a.sock')})
    p = r['port']
    check(p['id'] == 1 and p['name'] == 'org.a' and p['backend'] == 'unix' and
          p['path'] == d.path('a.sock') and not p['console'], 'add reply %s' % p)
    check(listening(d.path('a.sock')), 'the new port does not listen')
    r = d.ctl('add', 'id=5,name=org.b,backend=unix,path=%s' % d.path('b.sock'))
    check(r.returncode == 0 and r.stdout == 'added port 5 (org.b)\n', 'vserialctl add: %r %r'
          % (r.stdout, r.stderr))
    r = d.ctl('add', '--json', 'backend=unix,path=%s' % d.path('c.sock'))
    check(r.returncode == 0 and json.loads(r.stdout)['id'] == 2, 'add --json: %r' % r.stdout)
    check(sorted(ports_by_id(cl)) == [1, 2, 5], 'list after adds')
    cl.ok({'cmd': 'remove', 'port': 1})
    check(not os.path.exists(d.path('a.sock')), 'removed port left its socket')
    r = d.ctl('remove', 'org.b')
    check(r.returncode == 0 and r.stdout == '' and r.stderr == '', 'vserialctl remove: %r' % r.stderr)
    r = d.ctl('remove', '2')
    check(r.returncode == 0, 'vserialctl remove 2: %r' % r.stderr)
    check(ports_by_id(cl) == {}, 'ports left: %s' % ports_by_id(cl))
    # The same id, name and path can be used again.
    cl.ok({'cmd': 'add', 'spec': 'id=1,name=org.a,backend=unix,path=%s' % d.path('a.sock')})
    check(listening(d.path('a.sock')), 're-added port does not listen')


@case
def add_object_form(d):
    cl = d.client()
    r = cl.ok({'cmd': 'add', 'port': {'name': 'org.con', 'console': True, 'backend': 'unix',
                                      'path': d.path('con.sock')}})
    p = r['port']
    check(p['id'] == 0 and p['console'] and p['cols'] == 80 and p['rows'] == 25,
          'console by object: %s' % p)
    r = cl.ok({'cmd': 'add', 'port': {'id': 7, 'name': 'org.seven', 'console': False,
                                      'backend': 'unix', 'path': d.path('s.sock')}})
    check(r['port']['id'] == 7 and not r['port']['console'], 'id 7 by object: %s' % r['port'])
    for port, want in (({'id': 3.5, 'backend': 'unix', 'path': '/x'}, "'id' must be"),
                       ({'name': 'a,b', 'backend': 'unix', 'path': '/x'}, "cannot contain ','"),
                       ({'backend': 'unix'}, 'needs path='),
                       ({'bogus': 1, 'backend': 'unix', 'path': '/x'}, "unknown key 'bogus'"),
                       ({'name': ['x'], 'backend': 'unix', 'path': '/x'}, "'name' must be"),
                       ('id=1', '"port" must be an object')):
        r = cl.req({'cmd': 'add', 'port': port})
        check(r == {'ok': False, 'error': r.get('error')} and want in r['error'],
              'add %s: %s (want %r)' % (port, r, want))
    check(sorted(ports_by_id(cl)) == [0, 7], 'ports %s' % sorted(ports_by_id(cl)))


@case(ports=['id=0,name=org.con,console,backend=unix,path=@con.sock',
             'id=1,name=org.one,backend=unix,path=@one.sock'])
def resize_roundtrip(d):
    cl = d.client()
    cl.ok({'cmd': 'resize', 'port': 0, 'cols': 132, 'rows': 43})
    p = ports_by_id(cl)[0]
    check((p['cols'], p['rows']) == (132, 43), 'size after resize: %s' % p)
    r = d.ctl('resize', 'org.con', '100', '30')
    check(r.returncode == 0 and r.stdout == '' and r.stderr == '', 'vserialctl resize: %r' % r.stderr)
    p = ports_by_id(cl)[0]
    check((p['cols'], p['rows']) == (100, 30), 'size after vserialctl resize: %s' % p)
    for req, want in (({'port': 1, 'cols': 1, 'rows': 1}, 'is not a console'),
                      ({'port': 0, 'cols': 70000, 'rows': 1}, '"cols" must be in 0..65535'),
                      ({'port': 0, 'cols': -1, 'rows': 1}, '"cols" must be in 0..65535'),
                      ({'port': 0, 'cols': '80', 'rows': 1}, '"cols" must be an integer'),
                      ({'port': 0, 'rows': 1}, 'missing "cols"'),
                      ({'cols': 1, 'rows': 1}, 'missing "port"')):
        r = cl.req(dict(req, cmd='resize'))
        check(r.get('ok') is False and want in r.get('error', ''), 'resize %s: %s' % (req, r))
    r = d.ctl('resize', '1', '80', '24')
    check(r.returncode == 1 and 'is not a console' in one_error_line(r, 'resize port 1'),
          'vserialctl resize of a non-console: %s %r' % (r.returncode, r.stderr))


class EventsProc:
    """vserialctl events in the background, its stdout collected."""

    def __init__(self, d, *args):
        self.p = subprocess.Popen([OPTS.vserialctl, '-c', d.control, 'events'] + list(args),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for ln in self.p.stdout:
            self.lines.append(ln.rstrip('\n'))

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        rc = self.p.wait(10)
        self.t.join(5)
        err = self.p.stderr.read()
        return rc, err


@case
def events_scripted_sequence(d):
    raw = d.client()
    first = raw.ok({'cmd': 'subscribe'})['seq']
    evj = EventsProc(d, '--json')
    evh = EventsProc(d)
    time.sleep(0.5)     # both subscribed (nothing happens before)
    cl = d.client()
    want = []
    for i in (1, 2, 3):
        cl.ok({'cmd': 'add', 'spec': 'id=%d,name=org.p%d,backend=unix,path=%s'
               % (i, i, d.path('p%d.sock' % i))})
        want.append(('port-added', i))
    socks = {}
    for i in (1, 2, 3):
        socks[i] = unix_client(d.path('p%d.sock' % i))
        want.append(('host-connect', i))
        # the next event must not race this one
        wait_for(lambda: ports_by_id(cl)[i]['host_connected'], 'host %d connected' % i)
    for i in (2, 1, 3):
        socks[i].close()
        cl.ok({'cmd': 'remove', 'port': 'org.p%d' % i})
        want += [('host-disconnect', i), ('port-removed', i)]
    got = [raw.event() for _ in want]
    check([(e['event'], e['port']) for e in got] == want,
          'raw subscriber: %s\nwant %s' % ([(e['event'], e['port']) for e in got], want))
    check([e['seq'] for e in got] == list(range(first + 1, first + 1 + len(want))),
          'seqs %s after %d' % ([e['seq'] for e in got], first))
    check(all(e['name'] == 'org.p%d' % e['port'] for e in got), 'names %s' % got)
    wait_for(lambda: len(evj.lines) >= len(want) and len(evh.lines) >= len(want),
             'vserialctl events output')
    rc, err = evj.stop()
    check(rc == 0 and err == '', 'events --json exit %s %r' % (rc, err))
    check([json.loads(x) for x in evj.lines] == got,
          'events --json differs from the raw subscriber:\n%s' % '\n'.join(evj.lines))
    rc, err = evh.stop()
    check(rc == 0 and err == '', 'events exit %s %r' % (rc, err))
    for ln, e in zip(evh.lines, got):
        w = '%d %s port %d (%s)' % (e['seq'], e['event'], e['port'], e['name'])
        if 'client' in e:       # a listening port's client, by number
            w += ' client %d' % e['client']
        check(' '.join(ln.split()) == w, 'events line %r, want %r' % (ln, w))
    check(all(e.get('client') == 1 for e in got if e['event'].startswith('host-')),
          'host events without the client number: %s' % got)


@case
def events_daemon_gone(d):
    ev = EventsProc(d)
    raw = d.client()
    raw.ok({'cmd': 'subscribe'})
    time.sleep(0.3)
    d.client().ok({'cmd': 'add', 'spec': 'id=1,backend=unix,path=%s' % d.path('p.sock')})
    wait_for(lambda: ev.lines, 'the port-added line')
    d.terminate()
    try:
        rc = ev.p.wait(10)
    except subprocess.TimeoutExpired:
        ev.p.kill()
        raise CaseFailed('vserialctl events still runs after the daemon exited')
    err = ev.p.stderr.read()
    check(rc == 1 and err == 'vserialctl: the daemon closed the connection\n',
          'events after the daemon exited: %s %r' % (rc, err))
    # the daemon's own teardown still reported the port going
    evs = []
    try:
        while True:
            evs.append(raw.event()['event'])
    except EOFError:
        pass
    check(evs == ['port-added'], 'raw subscriber saw %s' % evs)


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'])
def errors_keep_serving(d):
    cl = d.client()
    bad = [
        (b'{"cmd":"list"', 'malformed JSON'),
        (b'{cmd: list}', 'malformed JSON'),
        (b'not json at all', 'malformed JSON'),
        (b'{"cmd":"list"} trailing', 'malformed JSON'),
        (b'\xff\xfe{"cmd":"list"}', 'malformed JSON'),
        (b'[1,2,3]', 'must be a JSON object'),
        (b'{}', 'missing "cmd"'),
        (b'{"cmd":7}', '"cmd" must be a string'),
        (b'{"cmd":"frobnicate"}', "unknown command 'frobnicate'"),
        (b'{"cmd":"list","extra":1}', 'unknown key "extra"'),
        (b'{"cmd":"remove","port":99}', 'bad port id 99'),
        (b'{"cmd":"remove","port":-1}', 'bad port id -1'),
        (b'{"cmd":"remove","port":2}', 'no port 2'),
        (b'{"cmd":"remove","port":"org.nope"}', "no port named 'org.nope'"),
        (b'{"cmd":"remove","port":true}', '"port" must be a port id'),
        (b'{"cmd":"remove"}', 'missing "port"'),
        (b'{"cmd":"attach","port":"org.nope"}', "no port named 'org.nope'"),
        (b'{"cmd":"add"}', 'either "spec"'),
        (b'{"cmd":"add","spec":"x","port":{}}', 'either "spec"'),
        (b'{"cmd":"add","spec":5}', '"spec" must be a string'),
        (b'{"cmd":"add","spec":"name=org.one,backend=unix,path=/tmp/x.sock"}',
         "name 'org.one' is already used by port 1"),
        (b'{"cmd":"add","spec":"id=1,backend=unix,path=/tmp/x.sock"}', 'port id 1 is already in use'),
        (b'{"cmd":"add","spec":"id=40,backend=unix,path=/tmp/x.sock"}', 'not below'),
        (b'{"cmd":"add","spec":"name=x,backend=unix,path=' + d.path('one.sock').encode() + b'"}',
         'is already used by port 1'),
        (b'{"cmd":"add","spec":"name=x,backend=carrier-pigeon"}',
         "bad spec 'name=x,backend=carrier-pigeon': unknown backend"),
        (b'{"cmd":"add","spec":"id=0,backend=unix,path=/tmp/y.sock"}', 'id 0 is reserved'),
        (b'{"cmd":"add","spec":"name=has space,backend=unix,path=/tmp/y.sock"}', 'bad spec'),
        (b'{"cmd":"add","spec":"a\\u0000b"}', 'NUL'),
    ]
    for line, want in bad:
        cl.send(line + b'\n')
        r = cl.obj()
        check(set(r) == {'ok', 'error'} and r['ok'] is False and want in r['error'] and
              '\n' not in r['error'], '%r -> %s (want %r)' % (line, r, want))
        # the same connection still works
        check(sorted(ports_by_id(cl)) == [1], 'list after %r' % line)
    cl.send(b'\n   \r\n')      # blank lines are not requests
    check(cl.ok({'cmd': 'list'})['ok'], 'list after blank lines')
    check(d.alive(), 'daemon died')


@case
def overlong_line(d):
    cl = d.client()
    cl.send(b'{"cmd":"list","pad":"' + b'x' * (1 << 20))
    cl.send(b'"}\n')
    r = cl.obj()
    check(r.get('ok') is False and 'longer than 65536' in r.get('error', ''), 'reply %s' % r)
    check(cl.ok({'cmd': 'list'})['ports'] == [], 'list after the long line')
    # A line of exactly the limit is served (and refused for its content).
    pad = 65536 - len(b'{"cmd":"list","p":""}')
    cl.send(b'{"cmd":"list","p":"' + b'y' * pad + b'"}\n')
    r = cl.obj()
    check(r.get('ok') is False and 'unknown key "p"' in r.get('error', ''), 'max line: %s' % r)
    check(d.alive(), 'daemon died')


@case(ports=['id=0,console,backend=unix,path=@con.sock'])
def pipelined_requests(d):
    cl = d.client()
    n = 300
    reqs = []
    for i in range(n):
        if i % 3 == 0:
            reqs.append({'cmd': 'list'})
        elif i % 3 == 1:
            reqs.append({'cmd': 'resize', 'port': 0, 'cols': i, 'rows': i + 1})
        else:
            reqs.append({'cmd': 'remove', 'port': 1000 + i})
    cl.send(b''.join(json.dumps(r).encode() + b'\n' for r in reqs))
    for i in range(n):
        r = cl.obj()
        if i % 3 == 2:
            check(r.get('ok') is False and 'bad port id %d' % (1000 + i) in r['error'],
                  'reply %d: %s' % (i, r))
        else:
            check(r.get('ok') is True, 'reply %d: %s' % (i, r))
        if i % 3 == 0 and i > 0:
            p = r['ports'][0]
            check((p['cols'], p['rows']) == (i - 2, i - 1), 'reply %d: size %s' % (i, p))


@case
def peer_credentials(d):
    if os.geteuid() != 0:
        return 'SKIP not root: cannot run a client as another uid'
    os.chmod(d.dir, 0o755)
    os.chmod(d.control, 0o666)      # only SO_PEERCRED stands in the way now
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:        # a client as nobody
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(d.control)
            try:
                s.sendall(b'{"cmd":"list"}\n')
            except OSError:
                pass    # refused before the request went out: the reply waits
            os.write(wfd, read_to_eof(lambda: s.recv(4096)))
        except BaseException as e:     # noqa: BLE001
            os.write(wfd, ('child: %r' % e).encode())
        os._exit(0)
    os.close(wfd)
    got = read_to_eof(lambda: os.read(rfd, 4096))
    os.close(rfd)
    os.waitpid(pid, 0)
    lines = got.decode(errors='replace').splitlines()
    check(len(lines) == 1 and lines[0].startswith('{'), 'replies to nobody: %r' % got)
    o = json.loads(lines[0])
    check(o.get('ok') is False and 'permission denied: uid 65534' in o.get('error', ''),
          'reply to nobody: %s' % o)
    check(re.search(r'control: refused pid \d+: uid 65534', d.log()), 'no log line for the refusal')
    # vserialctl as nobody (if nobody may run it from here): one line, exit 1
    try:
        r = subprocess.run([OPTS.vserialctl, '-c', d.control, 'list'], user=65534,
                           capture_output=True, text=True, timeout=10)
    except PermissionError:
        r = None
    if r is not None:
        check(r.returncode == 1 and 'permission denied' in one_error_line(r, 'list as nobody'),
              'vserialctl as nobody: %s %r' % (r.returncode, r.stderr))
    check(d.client().ok({'cmd': 'list'}), 'root is still served')


@case
def client_limit(d):
    clients = [d.client() for _ in range(64)]
    for c in clients:
        c.ok({'cmd': 'list'})
    extra = d.client()
    o = extra.obj()
    check(o.get('ok') is False and 'too many control connections (64)' in o.get('error', ''),
          '65th client: %s' % o)
    try:
        more = extra.s.recv(10)
    except ConnectionResetError:
        more = b''
    check(more == b'', '65th client not closed')
    clients.pop().close()
    wait_for(lambda: d.client().req({'cmd': 'list'}).get('ok'), 'a slot after a close')
    check(all(c.ok({'cmd': 'list'}) for c in clients), 'old clients still served')


@case
def slow_subscriber_disconnected(d):
    slow = d.client()
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    first = slow.ok({'cmd': 'subscribe'})['seq']
    fast = d.client()
    fast.ok({'cmd': 'subscribe'})
    got = []

    def drain():
        try:
            while True:
                got.append(fast.event())
        except (EOFError, OSError):
            pass
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    # Big events: 255-byte names. About 6 MiB of events in all.
    name = 'n' * 240
    cl = d.client()
    batch = []
    for i in range(11000):
        batch.append({'cmd': 'add', 'spec': 'id=1,name=%s%05d,backend=unix,path=%s'
                      % (name, i, d.path('p.sock'))})
        batch.append({'cmd': 'remove', 'port': 1})
    n_events = len(batch)
    chunk = 200
    for i in range(0, len(batch), chunk):
        part = batch[i:i + chunk]
        cl.send(b''.join(json.dumps(r).encode() + b'\n' for r in part))
        for _ in part:
            check(cl.reply()['ok'], 'add/remove failed')
    check(d.alive(), 'daemon died')
    wait_for(lambda: 'does not read' in d.log(), 'the log line about the slow subscriber')
    check(re.search(r'control: client \d+: does not read: \d+ bytes are waiting for it '
                    r'\(limit 4194304\); disconnected', d.log()), 'log line: %s'
          % [ln for ln in d.log().splitlines() if 'does not read' in ln])
    # The slow one gets a gap-free prefix, then EOF: nothing silently dropped.
    seqs = []
    slow.s.settimeout(10)
    try:
        while True:
            seqs.append(slow.event()['seq'])
    except (EOFError, ConnectionResetError):
        pass
    check(seqs and seqs == list(range(first + 1, first + 1 + len(seqs))),
          'slow subscriber: %d events, not a consecutive prefix' % len(seqs))
    check(len(seqs) < n_events, 'slow subscriber got everything (%d)' % len(seqs))
    wait_for(lambda: len(got) >= n_events, 'the reading subscriber (%d of %d)' % (len(got), n_events),
             timeout=30)
    check([e['seq'] for e in got] == list(range(first + 1, first + 1 + n_events)),
          'the reading subscriber missed events')
    check(cl.ok({'cmd': 'list'})['ports'] == [], 'daemon serves after')


@case
def second_daemon_same_control(d):
    r = subprocess.run([OPTS.vserial, '--socket', d.path('other.sock'), '--control', d.control],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    check(r.returncode == 1, 'second daemon exit %s' % r.returncode)
    check('another process is listening there' in r.stderr, 'second daemon said %r' % r.stderr)
    check(d.client().ok({'cmd': 'list'}), 'first daemon lost its socket')


@case
def stale_control_socket_replaced(d):
    # A socket file nobody listens on (a crashed daemon's) is replaced.
    path = d.path('stale.sock')
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    p = subprocess.Popen([OPTS.vserial, '--socket', d.path('o.sock'), '--control', path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: listening(path), 'the second daemon')
        check(stat.S_IMODE(os.lstat(path).st_mode) == 0o600, 'mode of the replaced socket')
        check(Client(path).ok({'cmd': 'list'}), 'second daemon serves')
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(10)
        err = p.stderr.read()
    check(rc == 0 and not SANITIZER_RE.search(err), 'second daemon: %s %s' % (rc, err[-500:]))
    check(not os.path.exists(path), 'second daemon left its socket')


@case
def vserialctl_usage(d):
    for args, want in (([], 'no command given'),
                       (['frob'], "unknown command 'frob'"),
                       (['list', 'x'], 'unexpected argument'),
                       (['add'], 'missing SPEC'),
                       (['add', 'a', 'b'], 'unexpected argument'),
                       (['remove'], 'missing ID|NAME'),
                       (['resize', '0', '80'], 'missing ID|NAME COLS ROWS'),
                       (['resize', '0', 'wide', '24'], "COLS 'wide' is not a number"),
                       (['resize', '0', '80', '1e3'], "ROWS '1e3' is not a number"),
                       (['resize', '0', '80', '-1'], "unknown option '-1'"),
                       (['resize', '0', '80', '99999'], "ROWS '99999' is not a number"),
                       (['attach'], 'missing ID|NAME'),
                       (['events', 'now'], 'unexpected argument'),
                       (['--bogus', 'list'], "unknown option '--bogus'"),
                       (['-c'], '-c needs an argument'),
                       (['remove', '--json', '1'], '--json is for'),
                       (['remove', '99999999999'], 'out of range')):
        r = d.ctl(*args)
        ln = one_error_line(r, 'vserialctl %s' % ' '.join(args))
        check(r.returncode == 2 and want in ln and ln.endswith('(see vserialctl --help)'),
              'vserialctl %s: exit %s, %r (want %r)' % (' '.join(args), r.returncode, ln, want))
        check(r.stdout == '', 'vserialctl %s printed %r' % (' '.join(args), r.stdout))
    r = d.ctl('--help')
    check(r.returncode == 0 and 'Usage: vserialctl' in r.stdout, '--help')
    r = d.ctl('--version')
    check(r.returncode == 0 and r.stdout.startswith('vserialctl '), '--version')
    # daemon errors: exit 1, one line
    r = d.ctl('remove', 'org.none')
    check(r.returncode == 1 and one_error_line(r, 'remove') == "vserialctl: no port named 'org.none'",
          'remove unknown: %s %r' % (r.returncode, r.stderr))
    r = d.ctl('add', 'backend=nope')
    check(r.returncode == 1 and "bad spec 'backend=nope'" in one_error_line(r, 'add'),
          'bad add: %r' % r.stderr)
    # unreachable: exit 1, one line
    for path in (d.path('none.sock'), d.path('daemon.log')):
        r = subprocess.run([OPTS.vserialctl, '-c', path, 'list'], capture_output=True, text=True,
                           timeout=10)
        check(r.returncode == 1 and 'cannot connect to %s' % path in one_error_line(r, 'list'),
              'unreachable %s: %s %r' % (path, r.returncode, r.stderr))
    # $VSERIAL_CONTROL is the default -c
    r = subprocess.run([OPTS.vserialctl, 'list', '--json'], capture_output=True, text=True,
                       timeout=10, env=dict(os.environ, VSERIAL_CONTROL=d.control))
    check(r.returncode == 0 and json.loads(r.stdout) == [], '$VSERIAL_CONTROL: %r' % r.stderr)
    r = subprocess.run([OPTS.vserialctl, 'list'], capture_output=True, text=True, timeout=10,
                       env={k: v for k, v in os.environ.items() if k != 'VSERIAL_CONTROL'})
    check(r.returncode == 1 and '/run/vserial/control.sock' in r.stderr, 'default path: %r' % r.stderr)


# ---------------------------------------------------------------- with a fake guest

@case(ports=['id=0,console,backend=unix,path=@con.sock',
             'id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def guest_events(d):
    ev = d.client()
    first = ev.ok({'cmd': 'subscribe'})['seq']
    g = d.connect_guest()
    g.wait(lambda: 0 in g.ports and g.ports[0].guest_open and 1 in g.ports, what='ports')
    g.open(1)
    g.close(1)
    g.open(1)
    cl = d.client()
    wait_for(lambda: ports_by_id(cl)[1]['guest_open'], 'guest_open in list')
    g.shutdown()
    d.guest = None
    want = [('vmm-connect', None), ('guest-reset', None), ('guest-open', 0), ('guest-open', 1),
            ('guest-close', 1), ('guest-open', 1), ('guest-close', 0), ('guest-close', 1),
            ('vmm-disconnect', None)]
    got = [ev.event() for _ in want]
    check([(e['event'], e.get('port')) for e in got] == want,
          'events %s' % [(e['event'], e.get('port')) for e in got])
    check([e['seq'] for e in got] == list(range(first + 1, first + 1 + len(want))), 'seq')
    check(all(set(e) == {'seq', 'event'} for e in got if e.get('port') is None),
          'device events carry port fields: %s' % got)
    p = ports_by_id(cl)
    check(not p[0]['guest_open'] and not p[1]['guest_open'], 'guest_open after the VMM left')


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def hot_add_remove_guest(d):
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports, what='port 1')
    r = d.ctl('add', 'id=3,name=org.hot,backend=unix,path=%s' % d.path('hot.sock'))
    check(r.returncode == 0, 'add: %r' % r.stderr)
    g.wait(lambda: 3 in g.ports and g.ports[3].name == 'org.hot', what='port 3 with its name')
    host = unix_client(d.path('hot.sock'))
    g.wait(lambda: g.ports[3].host_open, what='host open of port 3')
    g.open(3)
    host.sendall(b'to the new port\n')
    g.wait(lambda: b'\n' in g.ports[3].rx, what='data on port 3')
    check(g.take(3) == b'to the new port\n', 'data on port 3')
    r = d.ctl('remove', 'org.hot')
    check(r.returncode == 0, 'remove: %r' % r.stderr)
    g.wait(lambda: 3 not in g.ports, what='PORT_REMOVE of port 3')
    check((fakeguest.PORT_REMOVE, 3, 1) in g.ctrl_log, 'no PORT_REMOVE')
    check(host.recv(10) == b'', 'host client of a removed port not closed')
    check(1 in g.ports, 'port 1 went too')


@case(ports=['id=0,console,backend=unix,path=@con.sock'], max_ports=4)
def resize_reaches_guest(d):
    g = d.connect_guest()
    g.wait(lambda: 0 in g.ports and g.ports[0].resizes, what='console and its first size')
    check(g.ports[0].resizes == [(80, 25)], 'first size %s' % g.ports[0].resizes)
    r = d.ctl('resize', '0', '132', '43')
    check(r.returncode == 0, 'resize: %r' % r.stderr)
    g.wait(lambda: len(g.ports[0].resizes) == 2, what='RESIZE')
    check(g.ports[0].resizes[1] == (132, 43), 'RESIZE payload %s (cols, rows)' % g.ports[0].resizes)


@case(ports=['id=0,console,backend=unix,path=@con.sock',
             'id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def idle_with_guest(d):
    """A guest that opened its ports and stopped: the daemon sleeps (no
    context switch in two seconds; the loop's wakeups counter: none in a
    second but for the stats request itself)."""
    g = d.connect_guest()
    g.wait(lambda: 0 in g.ports and g.ports[0].guest_open and 1 in g.ports, what='ports')
    g.open(1)
    c = unix_client(d.path('one.sock'))
    cl = d.client()
    wait_for(lambda: ports_by_id(cl)[1]['guest_open'] and ports_by_id(cl)[1]['host_connected'],
             'port 1 open on both sides')
    pid = d.proc.pid
    b = switches(pid)
    for _ in range(20):     # what the opens set going runs out
        time.sleep(1)
        a, b = b, switches(pid)
        if a == b:
            break
    time.sleep(2)
    a = switches(pid)
    check(a == b, '%d context switches in two seconds of idleness' % (a - b))
    # The loop's own count over an idle second: between two stats
    # requests on one connection it woke for the second one only.
    st = cl.ok({'cmd': 'stats'})['stats']
    time.sleep(1)
    st2 = cl.ok({'cmd': 'stats'})['stats']
    woke_for_request_only(st, st2)
    c.close()


class PtyAttach:
    """vserialctl attach on a pseudo-terminal (its controlling terminal)."""

    def __init__(self, d, port, cols=100, rows=30):
        self.master, self.slave = os.openpty()
        self.setsize(cols, rows)
        self.before = termios.tcgetattr(self.slave)

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.p = subprocess.Popen([OPTS.vserialctl, '-c', d.control, 'attach', port],
                                  stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                  start_new_session=True, preexec_fn=ctty)
        self.out = b''

    def setsize(self, cols, rows):
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))

    def read_until(self, pat, timeout=10):
        end = time.monotonic() + timeout
        while pat not in self.out:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    break
            if time.monotonic() > end:
                break
        check(pat in self.out, 'terminal never showed %r; it has %r' % (pat, self.out[-300:]))

    def type(self, b):
        os.write(self.master, b)

    def wait(self, timeout=10):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise CaseFailed('vserialctl attach did not exit')

    def close(self):
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def attach_pty(d):
    ev = d.client()
    ev.ok({'cmd': 'subscribe'})
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports, what='port 1')
    g.open(1)
    g.send(1, b'buffered before attach\n')     # kept by the daemon: no host peer yet
    cl = d.client()
    wait_for(lambda: ports_by_id(cl)[1]['buffered'] == 23, 'buffered output')
    a = PtyAttach(d, 'org.one')
    try:
        a.read_until(b'Ctrl-] detaches')
        a.read_until(b'buffered before attach\n')
        check(ports_by_id(cl)[1]['host_connected'], 'host_connected while attached')
        g.wait(lambda: g.ports[1].host_open, what='PORT_OPEN 1 to the guest')
        a.type(b'typed \x03 bytes\r')
        g.wait(lambda: b'\r' in g.ports[1].rx, what='typed bytes in the guest')
        check(g.take(1) == b'typed \x03 bytes\r', 'raw bytes, no line discipline')
        g.send(1, b'guest says hi\n')
        a.read_until(b'guest says hi\n')
        check(b'guest says hi\r\n' not in a.out, 'output was post-processed (terminal not raw)')
        # busy while attached: a second attach is refused, a unix client
        # waits in the backlog (nothing is written to it) and is served next
        r = d.ctl('attach', '1')
        check(r.returncode == 1 and 'port 1 is busy' in one_error_line(r, 'second attach'),
              'second attach: %s %r' % (r.returncode, r.stderr))
        u = unix_client(d.path('one.sock'))
        r, _, _ = select.select([u], [], [], 0.3)
        check(not r, 'a waiting unix client was written to or closed: %r' % (r and u.recv(4096)))
        check(ports_by_id(cl)[1]['counters']['host_connects'] == 1, 'the waiting client was taken')
        a.type(b'last\x1dignored')
        rc = a.wait()
        check(rc == 0, 'exit status %s after Ctrl-]' % rc)
        g.wait(lambda: b'last' in g.ports[1].rx, what='bytes before Ctrl-]')
        check(g.take(1) == b'last', 'bytes after Ctrl-] were sent')
        after = termios.tcgetattr(a.slave)
        check(after == a.before, 'terminal not restored: %s vs %s' % (after, a.before))
        # the waiting client is taken once the attach ended
        wait_for(lambda: ports_by_id(cl)[1]['counters']['host_connects'] == 2,
                 'the waiting unix client served after detach')
        check(ports_by_id(cl)[1]['host_connected'], 'host side after detach')
        g.send(1, b'to the next client\n')
        u.settimeout(10)
        check(u.recv(4096) == b'to the next client\n', 'the waiting client reads the guest')
        u.close()
        wait_for(lambda: not ports_by_id(cl)[1]['host_connected'], 'host side free at the end')
        g.wait(lambda: not g.ports[1].host_open, what='PORT_OPEN 0 at the end')
    finally:
        a.close()
    check('closed unserved' not in d.log(), 'a refusal in the log')
    names = []
    while len(names) < 4:
        e = ev.event()
        if e.get('port') == 1 and e['event'].startswith('host-'):
            names.append((e['event'], e.get('client')))
    check(names == [('host-connect', 1), ('host-disconnect', 1), ('host-connect', 2),
                    ('host-disconnect', 2)], 'host events %s' % names)


@case(ports=['id=0,console,backend=unix,path=@con.sock'], max_ports=4)
def attach_console_window_size(d):
    g = d.connect_guest()
    g.wait(lambda: 0 in g.ports and g.ports[0].resizes, what='console')
    a = PtyAttach(d, '0', cols=100, rows=30)
    try:
        a.read_until(b'Ctrl-] detaches')
        g.wait(lambda: (100, 30) in g.ports[0].resizes, what='the initial window size')
        a.setsize(120, 40)          # the kernel sends SIGWINCH
        g.wait(lambda: (120, 40) in g.ports[0].resizes, what='the size after SIGWINCH')
        check(g.ports[0].resizes[-1] == (120, 40), 'sizes %s' % g.ports[0].resizes)
        cl = d.client()
        p = ports_by_id(cl)[0]
        check((p['cols'], p['rows']) == (120, 40), 'list size %s' % p)
        a.type(b'\x1d')
        check(a.wait() == 0, 'exit status after Ctrl-]')
    finally:
        a.close()


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def attach_stdin_pipe(d):
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports, what='port 1')
    g.open(1)
    data = bytes(range(256)) * 64 + b'\x1d end'     # Ctrl-] is data without a tty
    r = subprocess.run([OPTS.vserialctl, '-c', d.control, 'attach', '1'], input=data,
                       capture_output=True, timeout=20)
    check(r.returncode == 0 and r.stderr == b'', 'attach with a pipe: %s %r' % (r.returncode, r.stderr))
    g.wait(lambda: len(g.ports[1].rx) >= len(data), what='all of stdin in the guest')
    check(g.take(1) == data, 'the guest got different bytes')
    cl = d.client()
    wait_for(lambda: not ports_by_id(cl)[1]['host_connected'], 'host side free after EOF')


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def attach_raw_pipelined(d):
    """Bytes right behind the attach line, in the same write, are port data."""
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports, what='port 1')
    g.open(1)
    c = d.client()
    c.send(b'{"cmd":"attach","port":1}\n{"cmd":"list"}\nmore\n')
    check(c.line() == b'{"ok":true}', 'attach reply')
    g.wait(lambda: g.ports[1].rx.count(b'\n') >= 2, what='raw bytes in the guest')
    check(g.take(1) == b'{"cmd":"list"}\nmore\n', 'guest got %r' % g.ports[1].rx)
    g.send(1, b'back\n')
    check(c.line() == b'back', 'guest output on the attached connection')
    # busy for another attach
    r = d.client().req({'cmd': 'attach', 'port': 1})
    check(r.get('ok') is False and r['error'].startswith('port 1 is busy: '), 'attach: %s' % r)
    c.close()
    cl = d.client()
    wait_for(lambda: not ports_by_id(cl)[1]['host_connected'], 'host side free after close')
    u = unix_client(d.path('one.sock'))
    wait_for(lambda: ports_by_id(cl)[1]['host_connected'], 'unix client after the attach ended')
    r = cl.req({'cmd': 'attach', 'port': 'org.one'})
    check(r.get('ok') is False and 'port 1 is busy: its unix backend has 1 host client connected '
          '(clients=1)' == r['error'], 'attach while a unix client is connected: %s' % r)
    u.close()


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def attach_subscribed(d):
    """Finding 8: attach on a connection that subscribed to events. It works
    cleanly: events before the "ok" are lines before it, after it the
    connection carries the port's bytes only (the host-connect event goes
    to the other subscribers, not into the port's stream)."""
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports, what='port 1')
    g.open(1)
    other = d.client()
    seq = other.ok({'cmd': 'subscribe'})['seq']
    c = d.client()
    c.ok({'cmd': 'subscribe'})
    c.send(b'{"cmd":"attach","port":1}\n')
    check(c.reply() == {'ok': True}, 'attach reply')
    ev = other.event()
    check((ev['event'], ev['port'], ev['seq']) == ('host-connect', 1, seq + 1), 'event %s' % ev)
    g.wait(lambda: g.ports[1].host_open, what='host open in the guest')
    g.send(1, b'guest says hi\n')
    check(c.line() == b'guest says hi', 'port data after the attach (event JSON in the stream?)')
    c.send(b'typed\n')
    g.wait(lambda: b'typed\n' in g.ports[1].rx, what='typed bytes in the guest')
    check(g.take(1) == b'typed\n', 'guest got %r' % g.ports[1].rx)
    c.close()
    ev = other.event()
    check((ev['event'], ev['port']) == ('host-disconnect', 1), 'event %s' % ev)
    check(not ports_by_id(other)[1]['host_connected'], 'host side still connected')


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def attach_port_removed(d):
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports, what='port 1')
    rfd, wfd = os.pipe()        # stdin stays open: only the removal ends it
    p = subprocess.Popen([OPTS.vserialctl, '-c', d.control, 'attach', '1'],
                         stdin=rfd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(rfd)
    try:
        cl = d.client()
        wait_for(lambda: ports_by_id(cl)[1]['host_connected'], 'attached')
        cl.ok({'cmd': 'remove', 'port': 1})
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise CaseFailed('vserialctl attach hangs after its port was removed')
    finally:
        os.close(wfd)
    lines = err.decode().splitlines()
    check(p.returncode == 1 and len(lines) == 1 and 'connection closed' in lines[0],
          'attach after remove: %s %r' % (p.returncode, err))
    g.wait(lambda: 1 not in g.ports, what='PORT_REMOVE')


@case(ports=['id=1,name=org.out,backend=unix-connect,path=@peer.sock'], max_ports=4)
def attach_unix_connect(d):
    """unix-connect with nobody listening has a free peer slot: an attached
    client takes it, and once the client leaves the backend retries again."""
    g = d.connect_guest()       # without a reader the daemon would not see the EOF
    g.wait(lambda: 1 in g.ports, what='port 1')
    g.open(1)
    cl = d.client()
    check(not ports_by_id(cl)[1]['host_connected'], 'connected to nobody?')
    c = d.client()
    c.send(b'{"cmd":"attach","port":1}\n')
    check(c.line() == b'{"ok":true}', 'attach to unix-connect')
    check(ports_by_id(cl)[1]['host_connected'], 'not connected while attached')
    time.sleep(0.3)     # the backend's retry timer fires meanwhile: it must keep off
    c.close()
    wait_for(lambda: not ports_by_id(cl)[1]['host_connected'], 'detach')
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(d.path('peer.sock'))
    srv.listen(1)
    srv.settimeout(15)
    try:
        peer, _ = srv.accept()
    except socket.timeout:
        raise CaseFailed('unix-connect did not retry after the attached client left')
    wait_for(lambda: ports_by_id(cl)[1]['host_connected'], 'the backend connected again')
    peer.close()
    srv.close()


@case(ports=['id=1,backend=null', 'id=2,backend=file,path=@out.txt',
             'id=3,backend=pty'])
def attach_busy_backends(d):
    cl = d.client()
    for pid, kind in ((1, 'null'), (2, 'file'), (3, 'pty')):
        r = cl.req({'cmd': 'attach', 'port': pid})
        check(r == {'ok': False, 'error': 'port %d is busy: its %s backend has a host peer connected'
                    % (pid, kind)}, 'attach to %s: %s' % (kind, r))
    ports = ports_by_id(cl)
    check(sorted(ports) == [1, 2, 3], 'ports after refused attaches')
    check('path' not in ports[1] and ports[2]['path'] == d.path('out.txt') and
          ports[3]['path'].startswith('/dev/pts/'), 'paths in the list: %s' % ports)
    check(os.path.exists(ports[3]['path']), 'the pty path %s does not exist' % ports[3]['path'])


# ---------------------------------------------------------------- runner

def main():
    return tap_main(__doc__, CASES, testctl.run_case,
                    args=[(('--bindhook',), dict(help='tests/ctl/bindhook.c built (control_socket_swapped)'))])


if __name__ == '__main__':
    sys.exit(main())
