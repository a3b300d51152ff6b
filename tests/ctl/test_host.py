#!/usr/bin/env python3
"""The host side of issue 13, end to end with the real daemon and a fake
VMM and guest (fakeguest.py): history=, logfile=, backend=tcp-connect,
backend=fd, backend=journal, `vserialctl stats --prometheus`, and the
SPEC values and control requests they bring, refused as they should be.

backend=journal runs against a systemd-journald of the test's own in a
private mount namespace (journald_ns.sh; needs root or user namespaces),
and its journal is read back with `journalctl --directory`. The disk-full
case mounts a small tmpfs (root).

Prints TAP, one case per line; each case gets its own daemon.

  tests/ctl/test_host.py --vserial build/src/daemon/vserial \\
                         --vserialctl build/src/ctl/vserialctl [CASE...]
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prometheus_text  # noqa: E402
import testctl as tc  # noqa: E402
from testctl import CaseFailed, another_daemon, check, ports_by_id, read, wait_for  # noqa: E402

JOURNALD_NS = os.path.join(HERE, 'journald_ns.sh')
CASES, case = tc.registry()


def det(seed, n):
    return random.Random(seed).randbytes(n)


def history(d, port, *args):
    """`vserialctl history PORT ARGS`: (exit status, stdout bytes, stderr)."""
    r = subprocess.run([tc.OPTS.vserialctl, '-c', d.control, 'history', str(port)] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    return r.returncode, r.stdout, r.stderr.decode(errors='replace')


def port_stats(cl, pid):
    return [p for p in cl.ok({'cmd': 'stats'})['stats']['ports'] if p['id'] == pid][0]


def guest(d, *ids):
    g = d.connect_guest()
    g.wait(lambda: all(i in g.ports for i in ids), what='ports %s' % (ids,))
    for i in ids:
        if not g.ports[i].guest_open:
            g.open(i)
    return g


# ---------------------------------------------------------------- refusals

@case()
def bad_spec_values(d):
    """Each bad value of the new keys: one line naming it, exit 2, and no
    daemon (nothing listens, nothing is created)."""
    sock = d.path('never.sock')
    bad = [('name=x,backend=pty,history=100', "history '100'"),
           ('name=x,backend=pty,history=1G', "history '1G'"),
           ('name=x,backend=pty,logfile-timestamps=on', 'needs logfile='),
           ('name=x,backend=pty,logfile=/tmp/l,logfile-timestamps=1', 'expected on or off'),
           ('name=x,backend=file,path=/tmp/l,logfile=/tmp/l', 'same file'),
           ('name=x,backend=tcp-connect', 'needs port='),
           ('name=x,backend=tcp-connect,port=70000', "port '70000'"),
           ('name=x,backend=tcp-connect,port=1,host=localhost', 'numeric'),
           ('name=x,backend=fd,fd=1', "fd '1'"),
           ('backend=fd', 'needs fd=N, or name='),
           ('name=x,backend=pty,fd=5', 'only for backend=fd'),
           ('name=x,backend=journal,journal-priority=loud', "journal-priority 'loud'"),
           ('name=x,backend=pty,journal-priority=1', 'only for backend=journal')]
    for spec, want in bad:
        r = tc.run_refused([tc.OPTS.vserial, '--socket', sock, '--port', spec])
        lines = r.stderr.splitlines()
        check(r.returncode == 2 and len(lines) == 1 and want in lines[0] and
              lines[0].startswith("vserial: --port '%s': " % spec),
              '--port %s: exit %s, %r (want one line with %r)' % (spec, r.returncode, r.stderr, want))
    for args, want in ((['--instance', 'a b'], '--instance'),
                       (['--port', 'name=a,backend=null,logfile=/tmp/l',
                         '--port', 'name=b,backend=null,logfile=/tmp/l'], 'logfile=/tmp/l')):
        r = tc.run_refused([tc.OPTS.vserial, '--socket', sock] + args)
        lines = r.stderr.splitlines()
        check(r.returncode == 2 and len(lines) == 1 and want in lines[0],
              '%s: exit %s, %r' % (args, r.returncode, r.stderr))
    check(not os.path.exists(sock), 'a refused daemon made its socket')


@case(ports=['id=1,name=org.h,history=4K,backend=null,logfile=@h.log',
             'id=2,name=org.none,backend=null'], max_ports=4)
def bad_requests(d):
    """Bad history, reopen and stats requests and adds: an error reply, the
    connection still usable, nothing changed (ports, history, log)."""
    g = guest(d, 1, 2)
    g.send(1, b'kept\n' * 100)
    cl = d.client()
    wait_for(lambda: port_stats(cl, 1)['history_bytes'] == 500, 'history filled')
    before = ports_by_id(cl)
    hist0 = history(d, 1)[1]
    bad = [({'cmd': 'history'}, 'missing "port"'),
           ({'cmd': 'history', 'port': 2}, 'keeps no history'),
           ({'cmd': 'history', 'port': 3}, 'no port 3'),
           ({'cmd': 'history', 'port': 'org.nope'}, "no port named 'org.nope'"),
           ({'cmd': 'history', 'port': 1, 'bytes': -1}, '"bytes" must be in 0..'),
           ({'cmd': 'history', 'port': 1, 'bytes': 'x'}, '"bytes" must be an integer'),
           ({'cmd': 'history', 'port': 1, 'follow': 1}, '"follow" must be true or false'),
           ({'cmd': 'history', 'port': 1, 'tail': 1}, 'unknown key "tail" for history'),
           ({'cmd': 'reopen', 'port': 1}, 'unknown key "port" for reopen'),
           ({'cmd': 'stats', 'format': 'xml'}, "unknown stats format 'xml'"),
           ({'cmd': 'stats', 'format': 5}, '"format" must be a string'),
           ({'cmd': 'add', 'spec': 'id=3,name=x,backend=fd,fd=7'}, 'command line only'),
           ({'cmd': 'add', 'spec': 'id=3,name=x,backend=null,logfile=%s' % d.path('h.log')},
            'already written by port 1'),
           ({'cmd': 'add', 'spec': 'id=3,name=x,backend=file,path=%s' % d.path('h.log')},
            "already port 1's logfile"),
           ({'cmd': 'add', 'spec': 'id=3,name=x,backend=null,history=3K'}, "history '3K'")]
    for req, want in bad:
        r = cl.req(req)
        check(r.get('ok') is False and want in r.get('error', ''),
              '%s -> %s (want %r)' % (req, r, want))
        check(ports_by_id(cl) == before or sorted(ports_by_id(cl)) == [1, 2],
              'ports changed after %s' % req)
    after = ports_by_id(cl)
    for pid in (1, 2):
        a = {k: v for k, v in after[pid].items() if k != 'counters'}
        b = {k: v for k, v in before[pid].items() if k != 'counters'}
        check(a == b, 'port %d changed: %s -> %s' % (pid, b, a))
    check(history(d, 1)[1] == hist0, 'the history changed')
    check(read(d.path('h.log')) == b'kept\n' * 100, 'the log changed')
    check(not os.path.exists(d.path('x')), 'a refused add made a file')
    # vserialctl: usage errors exit 2, the daemon's refusals 1, one line each.
    for args, rc, want in ((['history'], 2, 'missing ID|NAME'),
                           (['history', '1', '2'], 2, 'unexpected argument'),
                           (['list', '--follow'], 2, '--follow and --bytes are for history'),
                           (['history', '1', '--bytes', 'lots'], 2, "--bytes 'lots'"),
                           (['stats', '--json', '--prometheus'], 2, 'not both'),
                           (['list', '--prometheus'], 2, '--prometheus is for stats'),
                           (['reopen', 'x'], 2, 'unexpected argument'),
                           (['history', '2'], 1, 'keeps no history'),
                           (['history', 'org.nope'], 1, "no port named 'org.nope'")):
        r = d.ctl(*args)
        ln = tc.one_error_line(r, 'vserialctl %s' % ' '.join(args))
        check(r.returncode == rc and want in ln, 'vserialctl %s: exit %s %r (want %d, %r)'
              % (' '.join(args), r.returncode, ln, rc, want))
    check(g.error is None, 'fake guest: %s' % g.error)


# ---------------------------------------------------------------- history

@case(ports=['id=1,name=org.h,history=8K,backend=unix,path=@h.sock'], max_ports=4)
def history_clients_and_vmm(d):
    """The history is the last 8K the guest wrote, whoever read it: after
    host clients came and went, after a VMM reconnect, --bytes N the last N;
    a follower gets new output without being the host peer."""
    g = guest(d, 1)
    cl = d.client()
    out = bytearray()
    for k in range(3):
        c = tc.unix_client(d.path('h.sock'))
        wait_for(lambda: ports_by_id(cl)[1]['host_connected'], 'client %d' % k)
        chunk = det(k, 5000)
        g.send(1, chunk)
        out += chunk
        got = b''
        while len(got) < len(chunk):
            got += c.recv(65536)
        check(got == chunk, 'client %d got other bytes' % k)
        c.close()
        wait_for(lambda: not ports_by_id(cl)[1]['host_connected'], 'client %d gone' % k)
    rc, h, err = history(d, 1)
    check(rc == 0 and h == bytes(out[-8192:]), 'history after 3 clients: %d bytes, rc %d %s'
          % (len(h), rc, err))
    # A client that shuts its sending side after the request (socat, a
    # script) is still sent all of it.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(d.control)
    s.sendall(b'{"cmd":"history","port":1,"bytes":3000}\n')
    s.shutdown(socket.SHUT_WR)
    got = tc.read_to_eof(lambda: s.recv(65536))
    s.close()
    check(got == b'{"ok":true,"bytes":3000,"follow":false}\n' + bytes(out[-3000:]),
          'history to a half-closed client: %r...' % got[:80])
    # The VMM goes and a new one comes: the history stays, then grows.
    g.shutdown()
    d.guest = None
    wait_for(lambda: not cl.ok({'cmd': 'stats'})['stats']['vmm']['connected'], 'VMM gone')
    check(history(d, 1)[1] == bytes(out[-8192:]), 'history lost with the VMM')
    g = guest(d, 1)
    # Buffered (no client): consumed, so in the history.
    g.send(1, b'after the reconnect\n')
    out += b'after the reconnect\n'
    wait_for(lambda: port_stats(cl, 1)['from_guest'] == len(out), 'output taken')
    check(history(d, 1)[1] == bytes(out[-8192:]), 'history after the VMM reconnect')
    check(history(d, 1, '--bytes', '100')[1] == bytes(out[-100:]), '--bytes 100')
    check(history(d, 1, '-n', '0')[1] == b'', '--bytes 0')
    # A follower: the last 5 bytes, then what comes; the port's host peer
    # is someone else.
    p = subprocess.Popen([tc.OPTS.vserialctl, '-c', d.control, 'history', '1', '--follow',
                          '--bytes', '5'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: port_stats(cl, 1)['history_readers'] == 1, 'the follower')
    check(not ports_by_id(cl)[1]['host_connected'], 'the follower is the host peer')
    c = tc.unix_client(d.path('h.sock'))
    wait_for(lambda: ports_by_id(cl)[1]['host_connected'], 'a client beside the follower')
    g.send(1, b'seen by both\n')
    got = b''
    while len(got) < len(b'after the reconnect\n') + len(b'seen by both\n'):
        got += c.recv(65536)
    c.close()
    g.send(1, b'only the follower\n')
    wait_for(lambda: port_stats(cl, 1)['from_guest'] == len(out) + 31, 'output taken')
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    fo, fe = p.communicate(10)
    check(p.returncode == 0 and fo == b'nect\n' + b'seen by both\n' + b'only the follower\n',
          'follower: rc %s, %r %r' % (p.returncode, fo, fe))
    wait_for(lambda: port_stats(cl, 1)['history_readers'] == 0, 'the follower gone')
    # A port removed under a follower ends it (exit 1, one line).
    p = subprocess.Popen([tc.OPTS.vserialctl, '-c', d.control, 'history', '1', '-f'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: port_stats(cl, 1)['history_readers'] == 1, 'the second follower')
    cl.ok({'cmd': 'remove', 'port': 1})
    _, fe = p.communicate(10)
    check(p.returncode == 1 and len(fe.splitlines()) == 1 and b'ended the stream' in fe,
          'follower of a removed port: %s %r' % (p.returncode, fe))
    check(g.error is None, 'fake guest: %s' % g.error)


@case(ports=['id=1,name=org.h,history=4K,backend=null'], max_ports=4)
def history_reader_behind(d):
    """A follower that does not read falls behind more than the history
    holds: it is disconnected (a line in the log), the guest never waited,
    and the port goes on."""
    g = guest(d, 1)
    cl = d.client()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(d.control)
    s.sendall(b'{"cmd":"history","port":1,"follow":true}\n')
    f = s.makefile('rb')
    check(json.loads(f.readline()) == {'ok': True, 'bytes': 0, 'follow': True}, 'history reply')
    wait_for(lambda: port_stats(cl, 1)['history_readers'] == 1, 'the follower')
    data = det(7, 1 << 20)
    g.send(1, data)
    wait_for(lambda: port_stats(cl, 1)['from_guest'] == len(data), 'all output taken')
    wait_for(lambda: port_stats(cl, 1)['history_readers'] == 0, 'the follower dropped')
    got = f.read()
    check(data.startswith(got) and len(got) < len(data), 'what it got: %d bytes, a prefix: %s'
          % (len(got), data.startswith(got)))
    check('fell' in d.log() and 'behind the history=4096' in d.log(), 'no log line')
    check(history(d, 1)[1] == data[-4096:], 'history after the drop')
    s.close()


# ---------------------------------------------------------------- logfile

@case(max_ports=4)
def logfile_reopen(d):
    """logfile= in a directory of its own (not the control socket's):
    vserialctl reopen and SIGHUP open it again (logrotate), confined; if the
    directory is gone, reopen says so (exit 1) and the old file goes on."""
    logdir = tempfile.mkdtemp(prefix='vslog-', dir='/tmp')
    log = os.path.join(logdir, 'con.log')

    def run(d2):
        g = guest(d2, 1)
        cl = d2.client()
        g.send(1, b'one\n')
        wait_for(lambda: read(log) == b'one\n', 'first line')
        os.rename(log, log + '.1')
        r = d2.ctl('reopen')
        check(r.returncode == 0 and r.stdout == '' and r.stderr == '', 'reopen: %r' % r)
        g.send(1, b'two\n')
        wait_for(lambda: read(log) == b'two\n', 'second line in the new file')
        tc.rotate(d2.proc, log, log + '.2')
        g.send(1, b'three\n')
        wait_for(lambda: read(log) == b'three\n', 'third line')
        check(read(log + '.1') == b'one\n' and read(log + '.2') == b'two\n', 'rotated files')
        os.rename(logdir, logdir + '.old')
        r = d2.ctl('reopen')
        check(r.returncode == 1 and 'could not be opened again' in tc.one_error_line(r, 'reopen'),
              'reopen of a vanished directory: %r' % r)
        g.send(1, b'four\n')
        wait_for(lambda: read(os.path.join(logdir + '.old', 'con.log')) == b'three\nfour\n',
                 'the old file kept')
        st = port_stats(cl, 1)
        check(st['logfile_written'] == 19 and st['logfile_lost'] == 0, 'counters %s' % st)
        check(g.error is None, 'fake guest: %s' % g.error)
    try:
        another_daemon(d, run, ports=['id=1,name=org.l,backend=null,logfile=' + log],
                       max_ports=4)
    finally:
        for p in (logdir, logdir + '.old'):
            shutil.rmtree(p, ignore_errors=True)


@case(max_ports=4)
def logfile_runtime_sandbox(d):
    """A port added at run time may log only where ports added at run time
    may write: elsewhere the add is refused (the sandbox said why) and
    nothing is made; a refused add removes the log file it made; an added
    port logs and keeps history."""
    out = tempfile.mkdtemp(prefix='vsctl-out-', dir='/tmp')
    try:
        cl = d.client()
        r = cl.req({'cmd': 'add', 'spec': 'id=2,name=x,backend=null,logfile=%s/x.log' % out})
        check(r['ok'] is False and 'ermission denied' in r['error'] and 'vserial(8)' in r['error'],
              'add with a logfile outside: %s' % r)
        check(os.listdir(out) == [], 'made %s' % os.listdir(out))
        # The log opens, the backend does not: the log file goes too.
        r = cl.req({'cmd': 'add', 'spec': 'id=2,name=x,backend=unix,path=%s/s.sock,logfile=%s'
                    % (out, d.path('y.log'))})
        check(r['ok'] is False and not os.path.exists(d.path('y.log')),
              'a refused add left its log: %s' % r)
        cl.ok({'cmd': 'add', 'spec': 'id=2,name=x,backend=null,logfile=%s,history=4K'
               % d.path('x.log')})
        g = guest(d, 2)
        g.send(2, b'logged\n')
        wait_for(lambda: read(d.path('x.log')) == b'logged\n', 'the run-time port logs')
        check(history(d, 2)[1] == b'logged\n', 'the run-time port keeps history')
    finally:
        shutil.rmtree(out, ignore_errors=True)


MOUNTS = []


@case(max_ports=4)
def logfile_disk_full(d):
    """The log's disk is full: the guest is not held back (a backend=null
    port takes all), what the log could not take is counted, the log says
    so a few times, not per write; once there is room it writes again."""
    mnt = tempfile.mkdtemp(prefix='vsfull-', dir='/tmp')
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'vsfull', mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(mnt, ignore_errors=True)
        raise CaseFailed('cannot mount a tmpfs (the case needs root): %s' % r.stderr.strip())
    try:
        with open(os.path.join(mnt, 'filler'), 'wb') as f:
            f.write(b'\xff' * (60 * 1024))

        def run(d2):
            g = guest(d2, 1)
            cl = d2.client()
            data = det(9, 1 << 20)
            g.send(1, data)
            wait_for(lambda: port_stats(cl, 1)['from_guest'] == len(data), 'all output taken')
            st = port_stats(cl, 1)
            check(not st['throttled'] and st['buffered'] == 0, 'held back: %s' % st)
            check(st['logfile_written'] + st['logfile_lost'] == len(data) and
                  st['logfile_lost'] > len(data) // 2, 'counters %s' % st)
            lines = d2.log().count('No space left on device')
            check(1 <= lines <= 2, '%d lines about the full disk for one burst' % lines)
            os.unlink(os.path.join(mnt, 'filler'))
            g.send(1, b'room again\n')
            wait_for(lambda: (read(os.path.join(mnt, 'l.log')) or b'').endswith(b'room again\n'),
                     'the log writes again')
            check('writing again; %d bytes of guest output were lost' % st['logfile_lost']
                  in d2.log(), 'no "writing again" line')
        another_daemon(d, run, ports=['id=1,name=org.f,backend=null,logfile=%s/l.log' % mnt],
                       max_ports=4)
    finally:
        subprocess.run(['umount', '-l', mnt], capture_output=True)
        shutil.rmtree(mnt, ignore_errors=True)


# ---------------------------------------------------------------- tcp-connect

def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', port))
    s.listen(1)
    s.settimeout(20)
    return s


def exchange(g, pid, peer, tag):
    """A line each way between the guest's port @pid and @peer."""
    g.send(pid, b'from the guest %s\n' % tag)
    got = b''
    while not got.endswith(b'\n'):
        d = peer.recv(4096)
        check(d, 'the peer was closed (%s)' % tag)
        got += d
    check(got == b'from the guest %s\n' % tag, '%s: the peer got %r' % (tag, got))
    peer.sendall(b'from the host %s\n' % tag)
    g.wait(lambda: g.ports[pid].rx.endswith(b'from the host %s\n' % tag),
           what='host data %s' % tag)


@case(max_ports=4)
def tcp_connect_reconnects(d):
    """backend=tcp-connect (confined): the listener starts late, the daemon
    keeps trying and connects; data both ways; the listener restarts, the
    daemon connects again; the sandbox lets it connect to that port only."""
    port = tc.free_tcp_port()

    def run(d2):
        g = guest(d2, 1)
        cl = d2.client()
        time.sleep(0.5)         # nobody listens yet: it retries
        check(not ports_by_id(cl)[1]['host_connected'], 'connected to nobody?')
        for k in range(2):
            ls = listener(port)
            peer, _ = ls.accept()
            wait_for(lambda: ports_by_id(cl)[1]['host_connected'], 'connected %d' % k)
            exchange(g, 1, peer, b'round %d' % k)
            g.wait(lambda: g.ports[1].host_open, what='PORT_OPEN 1')
            peer.close()
            ls.close()
            wait_for(lambda: not ports_by_id(cl)[1]['host_connected'], 'the peer gone %d' % k)
        check(port_stats(cl, 1)['host_connects'] == 2, 'connects %s' % port_stats(cl, 1))
        check('TCP connect to 1 port only' in d2.log(), 'the sandbox summary: %s'
              % [ln for ln in d2.log().splitlines() if 'sandbox' in ln])
        # A run-time tcp-connect port needs --allow-tcp and --allow-connect.
        r = cl.req({'cmd': 'add', 'spec': 'id=2,name=y,backend=tcp-connect,port=%d'
                    % tc.free_tcp_port()})
        check(r['ok'] is False and 'tcp-connect with both' in r['error'], 'run-time add: %s' % r)
        check(g.error is None, 'fake guest: %s' % g.error)
    another_daemon(d, run, ports=['id=1,name=org.t,backend=tcp-connect,port=%d' % port],
                   max_ports=4)


@case(max_ports=4, extra=['--allow-tcp', '--allow-connect'])
def tcp_connect_runtime(d):
    """With --allow-tcp and --allow-connect a tcp-connect port added at run
    time connects (IPv6 too when the host has it)."""
    cl = d.client()
    g = d.connect_guest()
    port = tc.free_tcp_port()
    ls = listener(port)
    cl.ok({'cmd': 'add', 'spec': 'id=1,name=t,backend=tcp-connect,port=%d' % port})
    peer, _ = ls.accept()
    g.wait(lambda: 1 in g.ports, what='port 1')
    g.open(1)
    exchange(g, 1, peer, b'added')
    peer.close()
    ls.close()


# ---------------------------------------------------------------- fd

@case(max_ports=6)
def fd_backends(d):
    """backend=fd with fds the daemon was started with: a connected socket
    (both ways), a pipe's read end (input; output dropped, counted), a
    pipe's write end (output), a listening socket (served like unix); an fd
    that is not open is refused with one line."""
    a, b = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lpath = tempfile.mktemp(prefix='vsfd-', dir='/tmp')
    ls.bind(lpath)
    ls.listen(2)
    fds = {20: a.fileno(), 21: in_r, 22: out_w, 23: ls.fileno()}
    for want, have in fds.items():
        os.dup2(have, want)
    for f in (a, ls):
        f.close()
    for f in (in_r, out_w):
        os.close(f)
    ports = ['id=1,name=sock,backend=fd,fd=20', 'id=2,name=pin,backend=fd,fd=21',
             'id=3,name=pout,backend=fd,fd=22', 'id=4,name=listen,backend=fd,fd=23']
    d.terminate()
    try:
        d2 = tc.Daemon(ports=ports, max_ports=6, pass_fds=tuple(fds))
    finally:
        for f in fds:
            os.close(f)     # only the daemon holds them now
    try:
        g = guest(d2, 1, 2, 3, 4)
        cl = d2.client()
        exchange(g, 1, b, b'socketpair')
        os.write(in_w, b'through the pipe\n')
        g.wait(lambda: g.ports[2].rx == b'through the pipe\n', what='pipe input')
        g.send(2, b'x' * 5000)
        wait_for(lambda: port_stats(cl, 2)['output_discarded'] == 5000, 'output dropped, counted')
        g.send(3, b'out the pipe\n')
        check(os.read(out_r, 100) == b'out the pipe\n', 'pipe output')
        c = tc.unix_client(lpath)
        exchange(g, 4, c, b'listening')
        c.close()
        # The end of a pipe's input: input ends, the port stays.
        os.close(in_w)
        in_w = None
        wait_for(lambda: 'fd 21 closed' in d2.log(), 'the pipe closed')
        check(g.error is None, 'fake guest: %s' % g.error)
    finally:
        errs, log = d2.stop()
        b.close()
        os.close(out_r)
        if in_w is not None:
            os.close(in_w)
        kept = os.path.exists(lpath)
        os.unlink(lpath)
    check(not errs, '; '.join(errs) + '\n' + log[-1500:])
    check(kept, 'the daemon removed the passed socket\'s path')
    r = tc.run_refused([tc.OPTS.vserial, '--socket', d.path('v.sock'),
                        '--port', 'name=x,backend=fd,fd=57'])
    lines = [ln for ln in r.stderr.splitlines() if 'fd=57' in ln]
    check(r.returncode != 0 and lines and 'not open' in lines[0],
          'fd=57 not open: %s %r' % (r.returncode, r.stderr))
    shutil.rmtree(d2.dir, ignore_errors=True)


# ---------------------------------------------------------------- journal

def journal_entries(jdir):
    """The entries journald wrote to jdir, as dicts (journalctl -o json)."""
    r = subprocess.run(['journalctl', '--directory', os.path.join(jdir, 'run-log', 'journal'),
                        '-o', 'json', '--all', '--no-pager'], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0, 'journalctl: %s' % r.stderr)
    out = []
    for ln in r.stdout.splitlines():
        e = json.loads(ln)
        if isinstance(e.get('MESSAGE'), list):        # bytes that are not UTF-8
            e['MESSAGE'] = bytes(e['MESSAGE']).decode('latin-1')
        out.append(e)
    return out


def journal_daemon(ports, instance):
    """A daemon under journald_ns.sh: (daemon, journal dir)."""
    jdir = tempfile.mkdtemp(prefix='vsjournal-', dir='/tmp')
    wrap = os.path.join(jdir, 'vserial')
    with open(wrap, 'w') as f:
        f.write('#!/bin/sh\nexec %s %s %s "$@"\n' % (JOURNALD_NS, jdir, tc.OPTS.vserial))
    os.chmod(wrap, 0o755)
    real, tc.OPTS.vserial = tc.OPTS.vserial, wrap
    try:
        d = tc.Daemon(ports=ports, max_ports=4, extra=['--instance', instance])
    except AssertionError as e:
        raise CaseFailed('the daemon under journald_ns.sh did not start (%s); journald: %s'
                         % (e, read(os.path.join(jdir, 'journald.log')))) from None
    finally:
        tc.OPTS.vserial = real
    return d, jdir


def journald_stop(jdir):
    try:
        pid = int(read(os.path.join(jdir, 'journald.pid')))
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not os.path.exists('/proc/%d' % pid) or
                 open('/proc/%d/stat' % pid).read().split()[2] == 'Z', 'journald to exit')
    except (TypeError, ValueError, ProcessLookupError):
        pass


@case()
def journal_fields(d):
    """backend=journal against a real systemd-journald: one entry per line
    (CR dropped, empty lines none, a long line cut at 4096, a line without
    its newline sent after a pause), with MESSAGE, PRIORITY,
    SYSLOG_IDENTIFIER, VSERIAL_INSTANCE, VSERIAL_PORT, VSERIAL_PORT_NAME;
    the console's without a name."""
    d.terminate()
    d2, jdir = journal_daemon(['id=0,console,backend=journal',
                               'id=1,name=org.j,backend=journal,journal-priority=warning'],
                              'vmj')
    try:
        g = guest(d2, 0, 1)
        cl = d2.client()
        long = b'L' * 5000
        # More at once than journald's socket queues: some sends are retried.
        burst = b''.join(b'burst %d\n' % i for i in range(3000))
        g.send(1, b'first line\r\nsecond\n\n\n' + long + b'\n' + burst + b'prompt> ')
        g.send(0, b'console says hi\n')
        wait_for(lambda: port_stats(cl, 1)['journal_entries'] == 3005, 'entries sent (%s)'
                 % port_stats(cl, 1), timeout=30)
        retries = port_stats(cl, 1)['journal_retries']
        wait_for(lambda: port_stats(cl, 0)['journal_entries'] == 1, 'console entry')
        check(g.error is None, 'fake guest: %s' % g.error)
    finally:
        errs, log = d2.stop()
        journald_stop(jdir)
    check(not errs, '; '.join(errs) + '\n' + log[-1500:])
    check('non-blocking' not in log, 'libsystemd\'s socket not made non-blocking: %s' % log)
    # The journal backend's own log lines are written (its syslog.h's
    # LOG_DEBUG once silenced them).
    check(not retries or 'the journal did not take an entry' in log,
          '%d retried sends and no line about it: %s' % (retries, log))
    ents = journal_entries(jdir)
    guest_ents = [e for e in ents if e.get('VSERIAL_INSTANCE') == 'vmj' and
                  'VSERIAL_EVENT' not in e]
    p1 = [e for e in guest_ents if e.get('VSERIAL_PORT') == '1']
    want = ['first line', 'second', 'L' * 4096, 'L' * 904] + \
        ['burst %d' % i for i in range(3000)] + ['prompt> ']
    got = [e['MESSAGE'] for e in p1]
    check(got == want, 'port 1: %d messages, want %d; first difference %s (%d retried sends)'
          % (len(got), len(want), next(((i, a[:40], b[:40]) for i, (a, b) in enumerate(zip(got, want))
                                        if a != b), None), retries))
    print('# %d sends retried' % retries)
    for e in p1:
        check(e.get('PRIORITY') == '4' and e.get('SYSLOG_IDENTIFIER') == 'org.j' and
              e.get('VSERIAL_PORT_NAME') == 'org.j' and e.get('_TRANSPORT') == 'journal',
              'port 1 entry %s' % {k: v for k, v in e.items() if not k.startswith('_')})
    p0 = [e for e in guest_ents if e.get('VSERIAL_PORT') == '0']
    check(len(p0) == 1 and p0[0]['MESSAGE'] == 'console says hi' and p0[0]['PRIORITY'] == '6' and
          p0[0]['SYSLOG_IDENTIFIER'] == 'console' and 'VSERIAL_PORT_NAME' not in p0[0],
          'console entries %s' % p0)
    marks = [e for e in ents if e.get('VSERIAL_EVENT') == 'start']
    check(len(marks) == 2 and all(e['SYSLOG_IDENTIFIER'] == 'vserial' for e in marks),
          'start entries %s' % marks)
    shutil.rmtree(jdir, ignore_errors=True)


# ---------------------------------------------------------------- metrics

@case(ports=['id=0,console,backend=unix,path=@con.sock,logfile=@con.log',
             'id=1,name=org.a"quoted"\\back,backend=null,history=4K',
             'id=2,name=org.slow,backend=unix,path=@slow.sock,buffer=4K'], max_ports=4)
def prometheus_parses(d):
    """vserialctl stats --prometheus is valid Prometheus text (a strict
    parser), has the families the issue names, with labels instance, port,
    name, and agrees with --json."""
    g = guest(d, 0, 1, 2)
    cl = d.client()
    g.send(0, b'console\n')
    g.send(1, b'x' * 10000)
    slow = tc.unix_client(d.path('slow.sock'))
    wait_for(lambda: ports_by_id(cl)[2]['host_connected'], 'slow client')
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sender = threading_send(g, 2, b'y' * 300000)
    wait_for(lambda: port_stats(cl, 2)['throttled'], 'port 2 held back')
    time.sleep(0.3)
    r = d.ctl('stats', '--prometheus')
    check(r.returncode == 0 and r.stderr == '', 'stats --prometheus: %r' % r)
    try:
        fams = prometheus_text.parse(r.stdout)
    except prometheus_text.ParseError as e:
        raise CaseFailed('the text does not parse: %s\n%s' % (e, r.stdout[:3000])) from None
    inst = cl.ok({'cmd': 'stats'})['stats']['instance']
    for name in ('vserial_port_from_guest_bytes_total', 'vserial_port_to_guest_bytes_total',
                 'vserial_port_buffered_bytes', 'vserial_port_discarded_bytes_total',
                 'vserial_port_logfile_lost_bytes_total', 'vserial_port_history_bytes',
                 'vserial_port_clients', 'vserial_port_host_connects_total',
                 'vserial_port_throttled_seconds_total', 'vserial_vmm_connects_total',
                 'vserial_guest_resets_total', 'vserial_queue_errors_total',
                 'vserial_port_clients_dropped_total', 'vserial_port_input_discarded_bytes_total'):
        f = fams.get(name)
        check(f and f.type and f.help and f.samples, 'family %s: %s' % (name, f and vars(f)))
        check(f.type == ('counter' if name.endswith('_total') else 'gauge'), '%s: %s' % (name, f.type))
        for labels, _ in f.samples:
            want = {'instance'} | ({'port', 'name'} if name.startswith('vserial_port_') else set())
            check(set(labels) == want and labels['instance'] == inst, '%s labels %s' % (name, labels))
    by = {s[0]['port']: s for s in fams['vserial_port_from_guest_bytes_total'].samples}
    check(by['1'][0]['name'] == 'org.a"quoted"\\back' and by['1'][1] == 10000,
          'port 1 sample %s' % (by['1'],))
    check(fams['vserial_port_history_bytes'].samples[1][1] == 4096, 'history bytes')
    thr = {s[0]['port']: s[1] for s in fams['vserial_port_throttled_seconds_total'].samples}
    check(thr['2'] > 0 and thr['0'] == 0, 'throttled seconds %s' % thr)
    check(fams['vserial_guest_resets_total'].samples[0][1] == 1, 'guest resets')
    # Read it all, so that the guest's write ends.
    got = 0
    while got < 300000:
        got += len(slow.recv(65536))
    sender.join(10)
    slow.close()


def threading_send(g, pid, data):
    """g.send() in a thread (it waits while the port holds the guest back)."""
    import threading
    t = threading.Thread(target=lambda: g.send(pid, data), daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------- runner

if __name__ == '__main__':
    sys.exit(tc.tap_main(__doc__, CASES, tc.run_case))
