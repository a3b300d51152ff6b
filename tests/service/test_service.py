#!/usr/bin/env python3
"""vserial under a service manager, without one running: what systemd (or
another supervisor) hands the daemon and what it expects back, played by
this script.

 - NOTIFY_SOCKET: a datagram socket this script binds; READY=1 must come
   only once the VMM socket accepts connections, STOPPING=1 on SIGTERM.
 - socket activation: a listening socket at fd 3 with LISTEN_FDS=1 and
   LISTEN_PID set to the daemon's pid (a shell sets it before exec, as
   systemd does); --socket-fd N for other supervisors; bad sockets refused
   with one line.
 - SIGHUP: a file backend's file, moved away as logrotate does, is opened
   again; output goes on in the new file, nothing lost.
 - --version: the project version (meson.build), with git describe in a
   development build.

A fake VMM and guest (tests/ctl/fakeguest.py) moves data where a case needs
it. Prints TAP, one line per case.

  tests/service/test_service.py --vserial build/src/daemon/vserial \\
      --vserialctl build/src/ctl/vserialctl --version 0.1.0 [CASE...]
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'ctl'))
import fakeguest  # noqa: E402
import testctl as tc  # noqa: E402
from testctl import OPTS, CaseFailed, check, read  # noqa: E402


def wait_for(cond, what, timeout=15):
    tc.wait_for(cond, what, timeout)


def listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    return s


def high_fd(s, at=9):
    """A duplicate of socket @s at fd @at or above: clear of 3, which a
    passed socket moves to (9: the highest a dash redirection takes)."""
    fd = os.dup(s.fileno())
    if fd < at:
        os.dup2(fd, at)
        os.close(fd)
        fd = at
    return fd


class Notify:
    """The service manager's end of NOTIFY_SOCKET."""

    def __init__(self, d, abstract=False):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.addr = '@vserial-test-' + uuid.uuid4().hex
            self.s.bind('\0' + self.addr[1:])
        else:
            self.addr = os.path.join(d, 'notify')
            self.s.bind(self.addr)

    def recv(self, timeout=15):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(4096).decode()
        except socket.timeout:
            raise CaseFailed('no notification within %d s' % timeout) from None


class Daemon:
    """vserial in its own directory. @fd_at: a socket to hand over, as fd 3
    with LISTEN_FDS (activation=True) or at its own number (--socket-fd)."""

    def __init__(self, d, args, env=None, fd_at=None, listen_pid=None):
        self.dir = d
        self.logpath = os.path.join(d, 'daemon.log')
        self.logf = open(self.logpath, 'wb')
        e = dict(os.environ)
        for k in ('NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'):
            e.pop(k, None)
        e.update(env or {})
        # Few ports: the fake guest's memory holds every ring.
        argv = [OPTS.vserial, '--log-level', 'debug', '--max-ports', '4'] + list(args)
        pass_fds = ()
        if fd_at is not None:
            pass_fds = tuple(fd_at) if isinstance(fd_at, (list, tuple)) else (fd_at,)
        if listen_pid is not None:
            # systemd sets LISTEN_PID to the pid it execs; a shell that
            # execs keeps its pid. "self": the daemon's own, else a number.
            # Several fds (a list): 3, 4, ... in that order.
            pid = '$$' if listen_pid == 'self' else str(listen_pid)
            redirect = ' '.join('%d<&%d %d<&-' % (3 + i, f, f) for i, f in enumerate(pass_fds))
            argv = ['sh', '-c', 'LISTEN_PID=%s; export LISTEN_PID; exec "$@" %s' % (pid, redirect),
                    'sh'] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, cwd=d, env=e, pass_fds=pass_fds)
        self.stopped = False

    def log(self):
        with open(self.logpath, errors='replace') as f:
            return f.read()

    def exited(self, timeout=15):
        """The exit status of a daemon that must stop by itself."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise CaseFailed('daemon still running after %d s' % timeout) from None

    def term(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.exited()
        self.stopped = True
        check(rc == 0, 'exit status %s after SIGTERM' % rc)

    def finish(self):
        errs = []
        if not self.stopped and self.proc.poll() is None:
            errs += tc.sigterm_errors(self.proc)
        self.logf.close()
        return errs + tc.sanitizer_errors(self.log())


def refused(d, args, want, env=None, fd_at=None, listen_pid=None):
    """The daemon must exit non-zero by itself with one line naming @want."""
    dm = Daemon(d, args, env=env, fd_at=fd_at, listen_pid=listen_pid)
    rc = dm.exited()
    dm.stopped = True
    log = dm.log()
    errs = [ln for ln in log.splitlines() if want in ln]
    check(rc != 0, 'exit status 0; log: %r' % log)
    check(errs, 'no line mentioning %r; log: %r' % (want, log))
    return dm


def guest_roundtrip(vhost_path, port_file=None):
    """A fake VMM connects and boots; port 1 carries a line to its host side."""
    g = fakeguest.FakeGuest(vhost_path)
    try:
        g.wait(lambda: 1 in g.ports, what='port 1 added')
        g.open(1)
        g.send(1, b'hello from the guest\n')
        if port_file:
            wait_for(lambda: read(port_file) == b'hello from the guest\n', 'guest data in the file')
        check(g.error is None, 'fake guest: %s' % g.error)
    finally:
        g.shutdown()


CASES, case = tc.registry()


# ---------------------------------------------------------------- notify

@case
def ready_once_listening(d, dms):
    """READY=1 arrives when the VMM socket already takes connections; then
    STOPPING=1 on SIGTERM."""
    n = Notify(d)
    vhost = os.path.join(d, 'vhost.sock')
    out = os.path.join(d, 'out.log')
    dm = Daemon(d, ['--socket', vhost, '--port', 'id=1,name=x,backend=file,path=' + out],
                env={'NOTIFY_SOCKET': n.addr})
    dms.append(dm)
    msg = n.recv()
    check(msg == 'READY=1', 'first notification %r, want READY=1' % msg)
    # No waiting or retrying: ready means connectable.
    guest_roundtrip(vhost, out)
    dm.term()
    msg = n.recv(5)
    check(msg == 'STOPPING=1', 'on SIGTERM %r, want STOPPING=1' % msg)


@case
def ready_abstract_socket(d, dms):
    n = Notify(d, abstract=True)
    dm = Daemon(d, ['--socket', os.path.join(d, 'vhost.sock')], env={'NOTIFY_SOCKET': n.addr})
    dms.append(dm)
    msg = n.recv()
    check(msg == 'READY=1', 'notification %r, want READY=1' % msg)


@case
def notify_socket_bad(d, dms):
    """A NOTIFY_SOCKET that cannot be used: one line, non-zero exit."""
    vhost = os.path.join(d, 'vhost.sock')
    dms.append(refused(d, ['--socket', vhost], 'NOTIFY_SOCKET=relative/path',
                       env={'NOTIFY_SOCKET': 'relative/path'}))
    dms.append(refused(d, ['--socket', vhost], 'NOTIFY_SOCKET=',
                       env={'NOTIFY_SOCKET': os.path.join(d, 'nobody-listens')}))


# ---------------------------------------------------------------- sockets

@case
def socket_activation(d, dms):
    """LISTEN_FDS=1: the daemon serves the socket it was given (and does not
    create --socket), notifies, and leaves the path to its owner."""
    path = os.path.join(d, 'activated.sock')
    ls = listener(path)
    n = Notify(d)
    other = os.path.join(d, 'not-created.sock')
    out = os.path.join(d, 'out.log')
    fd = high_fd(ls)
    dm = Daemon(d, ['--socket', other, '--port', 'id=1,name=x,backend=file,path=' + out],
                env={'NOTIFY_SOCKET': n.addr, 'LISTEN_FDS': '1'},
                fd_at=fd, listen_pid='self')
    dms.append(dm)
    os.close(fd)
    ls.close()      # only the daemon holds it now
    check(n.recv() == 'READY=1', 'no READY=1')
    guest_roundtrip(path, out)
    check(not os.path.exists(other), '--socket %s was created although a socket was passed'
          % other)
    check('passed as fd 3' in dm.log(), 'log does not say which socket it serves')
    dm.term()
    check(os.path.exists(path), 'the passed socket\'s path was removed at exit')


@case
def socket_fd(d, dms):
    """--socket-fd N: a listening socket a supervisor passed at fd N."""
    path = os.path.join(d, 'passed.sock')
    ls = listener(path)
    fd = high_fd(ls, 20)
    out = os.path.join(d, 'out.log')
    dm = Daemon(d, ['--socket-fd', str(fd), '--port', 'id=1,name=x,backend=file,path=' + out],
                fd_at=fd)
    dms.append(dm)
    os.close(fd)
    ls.close()
    wait_for(lambda: 'listening for the VMM' in dm.log(), 'the daemon to listen')
    guest_roundtrip(path, out)
    dm.term()
    check(os.path.exists(path), 'the passed socket\'s path was removed at exit')


@case
def activation_not_for_us(d, dms):
    """LISTEN_PID of another process: the variables are ignored."""
    vhost = os.path.join(d, 'vhost.sock')
    n = Notify(d)
    dm = Daemon(d, ['--socket', vhost], env={'LISTEN_FDS': '1', 'NOTIFY_SOCKET': n.addr},
                listen_pid=1)
    dms.append(dm)
    check(n.recv() == 'READY=1', 'no READY=1')
    check(os.path.exists(vhost), '--socket was not created')
    dm.term()
    dms.append(refused(d, [], 'LISTEN_PID', env={'LISTEN_FDS': '1'}, listen_pid=1))


@case
def activation_two_sockets(d, dms):
    ls = listener(os.path.join(d, 'a.sock'))
    fd = high_fd(ls)
    dms.append(refused(d, [], '2 sockets', env={'LISTEN_FDS': '2'},
                       fd_at=fd, listen_pid='self'))
    os.close(fd)
    ls.close()


@case
def socket_fd_refused(d, dms):
    """Each unusable --socket-fd: one line naming the problem, non-zero exit,
    nothing created."""
    r, w = os.pipe()
    dms.append(refused(d, ['--socket-fd', str(r)], 'not a socket', fd_at=r))
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(os.path.join(d, 'bound.sock'))
    dms.append(refused(d, ['--socket-fd', str(bound.fileno())], 'not listening',
                       fd_at=bound.fileno()))
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(os.path.join(d, 'dgram.sock'))
    dms.append(refused(d, ['--socket-fd', str(dgram.fileno())], 'not a unix stream socket',
                       fd_at=dgram.fileno()))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(('127.0.0.1', 0))
    tcp.listen(1)
    dms.append(refused(d, ['--socket-fd', str(tcp.fileno())], 'not a unix stream socket',
                       fd_at=tcp.fileno()))
    dms.append(refused(d, ['--socket-fd', '1000'], '--socket-fd 1000'))
    dms.append(refused(d, ['--socket-fd', 'x'], "--socket-fd 'x'"))
    dms.append(refused(d, ['--socket-fd', '10', '--socket', os.path.join(d, 'v.sock')],
                       'give one'))
    dms.append(refused(d, [], '--socket PATH is required'))
    for s in (bound, dgram, tcp):
        s.close()
    os.close(r)
    os.close(w)
    check(sorted(os.listdir(d)) == ['bound.sock', 'daemon.log', 'dgram.sock'],
          'files left: %s' % sorted(os.listdir(d)))


# ---------------------------------------------------------------- backend=fd

def at_fd(s, fd):
    """A duplicate of socket @s at exactly @fd (a single digit: dash's
    redirections take no more)."""
    os.dup2(s.fileno(), fd)
    return fd


@case
def activation_named_port(d, dms):
    """Socket activation with two sockets, LISTEN_FDNAMES=vhost:org.act: the
    one named like a backend=fd port is that port's (served like
    backend=unix: a client that connects is its host side), the other is
    the VMM's; neither path is removed at exit."""
    vpath, ppath = os.path.join(d, 'vm.sock'), os.path.join(d, 'port.sock')
    vl, pl = listener(vpath), listener(ppath)
    fds = [at_fd(vl, 7), at_fd(pl, 8)]
    n = Notify(d)
    dm = Daemon(d, ['--port', 'id=1,name=org.act,backend=fd'],
                env={'NOTIFY_SOCKET': n.addr, 'LISTEN_FDS': '2',
                     'LISTEN_FDNAMES': 'vserial@x.socket:org.act'},
                fd_at=fds, listen_pid='self')
    dms.append(dm)
    for f in fds:
        os.close(f)
    vl.close()
    pl.close()
    check(n.recv() == 'READY=1', 'no READY=1')
    g = fakeguest.FakeGuest(vpath)
    try:
        g.wait(lambda: 1 in g.ports, what='port 1 added')
        g.open(1)
        c = tc.unix_client(ppath, timeout=10)
        g.wait(lambda: g.ports[1].host_open, what='the client connected')
        g.send(1, b'to the activated port\n')
        check(c.recv(100) == b'to the activated port\n', 'the client got the guest data')
        c.sendall(b'back\n')
        g.wait(lambda: g.ports[1].rx == b'back\n', what='data to the guest')
        c.close()
        check(g.error is None, 'fake guest: %s' % g.error)
    finally:
        g.shutdown()
    check('accepting on the listening socket passed as fd 4' in dm.log(), 'log: %r' % dm.log())
    dm.term()
    check(os.path.exists(vpath) and os.path.exists(ppath), 'a passed socket\'s path was removed')


@case
def activation_named_refused(d, dms):
    """Named sockets that do not fit: one line each, non-zero exit."""
    ls = [listener(os.path.join(d, 'l%d.sock' % i)) for i in range(2)]
    fds = [at_fd(ls[0], 7), at_fd(ls[1], 8)]
    dms.append(refused(d, ['--port', 'id=1,name=org.none,backend=fd'],
                       'systemd passed no socket named org.none',
                       env={'LISTEN_FDS': '2', 'LISTEN_FDNAMES': 'vhost:org.other'},
                       fd_at=fds, listen_pid='self'))
    dms.append(refused(d, [], '2 sockets that no backend=fd port names',
                       env={'LISTEN_FDS': '2', 'LISTEN_FDNAMES': 'a:b'},
                       fd_at=fds, listen_pid='self'))
    dms.append(refused(d, [], 'does not name the 2 sockets',
                       env={'LISTEN_FDS': '2', 'LISTEN_FDNAMES': 'a'},
                       fd_at=fds, listen_pid='self'))
    dms.append(refused(d, ['--port', 'id=1,name=x,backend=fd,fd=4'], 'one of the sockets systemd passed',
                       env={'LISTEN_FDS': '2', 'LISTEN_FDNAMES': 'a:b'},
                       fd_at=fds, listen_pid='self'))
    for f in fds:
        os.close(f)
    for s in ls:
        s.close()


# ---------------------------------------------------------------- SIGHUP

@contextlib.contextmanager
def file_port(d, dms, out):
    """A daemon whose port 1 writes to the file out, and a fake guest that
    opened the port: (daemon, guest). The guest must end without an error;
    it is shut down either way."""
    vhost = os.path.join(d, 'vhost.sock')
    dm = Daemon(d, ['--socket', vhost, '--port', 'id=1,name=log,backend=file,path=' + out])
    dms.append(dm)
    wait_for(lambda: os.path.exists(vhost), 'the VMM socket')
    g = fakeguest.FakeGuest(vhost)
    try:
        g.wait(lambda: 1 in g.ports, what='port 1 added')
        g.open(1)
        yield dm, g
        check(g.error is None, 'fake guest: %s' % g.error)
    finally:
        g.shutdown()


@case
def sighup_reopens_file(d, dms):
    """logrotate: move the file, SIGHUP, the next output is in a new file;
    the daemon keeps running and serving (sandbox on)."""
    out = os.path.join(d, 'port.log')
    with file_port(d, dms, out) as (dm, g):
        g.send(1, b'before rotation\n')
        wait_for(lambda: read(out) == b'before rotation\n', 'first line in the file')
        tc.rotate(dm.proc, out, out + '.1', timeout=15)
        g.send(1, b'after rotation\n')
        wait_for(lambda: read(out) == b'after rotation\n', 'second line in the new file')
        check(read(out + '.1') == b'before rotation\n',
              'rotated file holds %r' % read(out + '.1'))
        # Twice: the second SIGHUP reopens the file the first one made.
        dm.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: dm.log().count('reopened') == 2, 'a second reopen')
        g.send(1, b'third\n')
        wait_for(lambda: read(out) == b'after rotation\nthird\n', 'third line appended')
    check(dm.proc.poll() is None, 'the daemon exited on SIGHUP')


@case
def sighup_reopen_fails_keeps_writing(d, dms):
    """If the file cannot be opened again, output goes on to the old one."""
    sub = os.path.join(d, 'logs')
    os.mkdir(sub)
    out = os.path.join(sub, 'port.log')
    with file_port(d, dms, out) as (dm, g):
        g.send(1, b'one\n')
        wait_for(lambda: read(out) == b'one\n', 'first line')
        os.rename(sub, sub + '.old')        # the directory is gone: open fails
        dm.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: 'cannot open ' + out in dm.log(), 'the failed reopen logged')
        g.send(1, b'two\n')
        old = os.path.join(sub + '.old', 'port.log')
        wait_for(lambda: read(old) == b'one\ntwo\n', 'output kept in the old file')


# ---------------------------------------------------------------- version

@case
def version(d, dms):
    want = re.compile(r'^%%s %s( \(git [0-9A-Za-z.+-]+\))?$' % re.escape(OPTS.version))
    for prog, exe in (('vserial', OPTS.vserial), ('vserialctl', OPTS.vserialctl)):
        p = subprocess.run([exe, '--version'], capture_output=True, text=True, timeout=10)
        out = p.stdout.strip()
        check(p.returncode == 0, '%s --version: exit %d' % (prog, p.returncode))
        check(re.match(want.pattern % prog, out),
              '%s --version printed %r; want "%s %s" or "%s %s (git DESCRIBE)"'
              % (prog, out, prog, OPTS.version, prog, OPTS.version))


# ---------------------------------------------------------------- main

def run_case(fn):
    d = tempfile.mkdtemp(prefix='vssvc-', dir='/tmp')
    dms = []
    errs, _ = tc.guarded(fn, d, dms)
    logs = ''
    for dm in dms:
        errs += dm.finish()
        logs = dm.log()
    if not errs:
        shutil.rmtree(d, ignore_errors=True)
    return errs, None, logs, d


if __name__ == '__main__':
    sys.exit(tc.tap_main(__doc__, CASES, run_case, tail=15, dir_label='directory',
                         args=[(('--version',), dict(required=True,
                                                     help='the project version (meson.build)'))]))
