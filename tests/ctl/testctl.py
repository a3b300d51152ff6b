"""What the end-to-end tests of the daemon share: test_ctl.py, test_conn.py,
test_host.py, test_hostile_daemon.py and tests/service/test_service.py.

  OPTS            the command line (tap_main): .vserial, .vserialctl, ...
  Daemon, Client  a vserial with --control in a directory of its own, and a
                  control connection speaking JSON lines
  check, wait_for, CaseFailed
                  a case fails by raising CaseFailed with one reason
  registry()      a case list and its @case decorator
  run_case()      a case against a Daemon made from its options
  tap_main()      the command line and the TAP output: "1..N", then
                  "ok N - name" or "not ok N - name" and "#" detail lines

stdlib only; fakeguest.py is the fake VMM.
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeguest  # noqa: E402

SANITIZER_RE = re.compile(r'ERROR: \w+Sanitizer|runtime error:|SUMMARY: \w+Sanitizer')
# The parsed command line, filled in by tap_main() (one object, so that
# "from testctl import OPTS" sees it).
OPTS = argparse.Namespace(vserial=None, vserialctl=None)


class CaseFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CaseFailed(msg)


def wait_for(cond, what, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    raise CaseFailed('timed out waiting for %s' % what)


def sigterm_errors(proc, timeout=15):
    """SIGTERM to a running daemon: it must exit 0 within timeout seconds
    (killed otherwise). What went wrong, as a list."""
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return ['daemon ignored SIGTERM for %d s' % timeout]
    return [] if rc == 0 else ['daemon exit status %s after SIGTERM' % rc]


def sanitizer_errors(log):
    m = SANITIZER_RE.search(log)
    return ['sanitizer report in the daemon log: %s' % m.group(0)] if m else []


# ---------------------------------------------------------------- fixtures

class Client:
    """One control connection speaking JSON lines."""

    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)            # blocking, as vserialctl does
        self.s.settimeout(timeout)
        self.buf = b''
        self.events = []

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b'\n' not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError('control connection closed')
            self.buf += d
        ln, _, self.buf = self.buf.partition(b'\n')
        return ln

    def obj(self):
        return json.loads(self.line())

    def reply(self):
        """The next reply; event lines on the way are kept in .events."""
        while True:
            o = self.obj()
            if 'ok' in o:
                return o
            self.events.append(o)

    def req(self, obj):
        self.send(json.dumps(obj).encode() + b'\n')
        return self.reply()

    def ok(self, obj):
        r = self.req(obj)
        check(r.get('ok') is True, 'request %s failed: %s' % (obj, r))
        return r

    def event(self):
        if self.events:
            return self.events.pop(0)
        o = self.obj()
        check('event' in o, 'expected an event, got %s' % o)
        return o

    def close(self):
        self.s.close()


class Daemon:
    """vserial in its own directory. @stdin/@stdout: what the daemon gets
    (default /dev/null and its log file), @preexec_fn runs in the child,
    @pass_fds it inherits."""

    def __init__(self, ports=(), max_ports=None, extra=(), stdin=subprocess.DEVNULL,
                 stdout=None, preexec_fn=None, env=None, wait=True, pass_fds=()):
        # sun_path is 108 bytes: keep the directory short.
        self.dir = tempfile.mkdtemp(prefix='vsctl-', dir='/tmp')
        self.control = self.path('ctl.sock')
        self.vhost = self.path('vhost.sock')
        argv = [OPTS.vserial, '--socket', self.vhost, '--control', self.control,
                '--log-level', 'debug']
        if max_ports:
            argv += ['--max-ports', str(max_ports)]
        for p in ports:
            argv += ['--port', p.replace('@', self.dir + '/')]
        argv += list(extra)
        self.argv = argv
        self.logf = open(self.path('daemon.log'), 'wb')
        self.proc = subprocess.Popen(argv, stdin=stdin,
                                     stdout=self.logf if stdout is None else stdout,
                                     stderr=self.logf, cwd=self.dir, preexec_fn=preexec_fn,
                                     env=env, pass_fds=pass_fds)
        self.guest = None
        if not wait:
            return
        end = time.monotonic() + 10
        while not listening(self.control) or not listening(self.vhost):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError('daemon did not start (status %s): %s'
                                     % (self.proc.poll(), self.log()[-2000:]))
            time.sleep(0.01)

    def path(self, name):
        return os.path.join(self.dir, name)

    def client(self):
        return Client(self.control)

    def ctl(self, *args, stdin=subprocess.DEVNULL, timeout=15, env=None):
        e = dict(os.environ)
        e.pop('VSERIAL_CONTROL', None)
        e.update(env or {})
        argv = [OPTS.vserialctl, '-c', self.control] + list(args)
        return subprocess.run(argv, stdin=stdin, capture_output=True, text=True,
                              errors='replace', timeout=timeout, env=e)

    def connect_guest(self):
        self.guest = fakeguest.FakeGuest(self.vhost)
        return self.guest

    def log(self):
        with open(self.path('daemon.log'), errors='replace') as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def terminate(self):
        """SIGTERM now (a case that needs the daemon gone); exit 0 expected."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(15)
        self.terminated = True
        check(rc == 0, 'daemon exit status %s after SIGTERM' % rc)

    def stop(self):
        errs = []
        if self.guest:
            if self.guest.error:
                errs.append('fake guest: %s' % self.guest.error)
            self.guest.shutdown()
        if getattr(self, 'terminated', False):
            pass
        elif self.proc.poll() is None:
            errs += sigterm_errors(self.proc)
        else:
            errs.append('daemon died during the case (status %s)' % self.proc.returncode)
        self.logf.close()
        log = self.log()
        errs += sanitizer_errors(log)
        if os.path.exists(self.control):
            errs.append('control socket not removed at exit')
        return errs, log


def listening(path):
    try:
        with open('/proc/net/unix') as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                    return True
    except OSError:
        pass
    return False


def run_refused(argv, env=None):
    """Run a vserial that must refuse to start; one that starts anyway is
    stopped after 10 s and the case fails."""
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CaseFailed('%s started (killed after 10 s)' % ' '.join(argv))


def one_error_line(r, what):
    lines = r.stderr.splitlines()
    check(len(lines) == 1 and lines[0].startswith('vserialctl: '),
          '%s: want one "vserialctl: ..." line on stderr, got %r' % (what, r.stderr))
    return lines[0]


def ports_by_id(cl):
    return {p['id']: p for p in cl.ok({'cmd': 'list'})['ports']}


def unix_client(path, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def refused(sock):
    """Has the daemon closed @sock (a refused client)?"""
    r, _, _ = select.select([sock], [], [], 0)
    return bool(r)


def fill_control_queue(cl, g, console_sock):
    """Stop taking control messages (fake guest @g) and make the host side
    queue them until the device refuses: console port 0 resized and its
    host client (at @console_sock) connecting and leaving in turn, each a
    message the queue cannot fold into an earlier one. Returns the
    refusal; the refused resize must not have changed the size."""
    g.ctrl_rx_hold = True
    host, connects = None, 0
    for i in range(400):
        r = cl.req({'cmd': 'resize', 'port': 0, 'cols': 80 + i % 2, 'rows': 25})
        if not r['ok']:
            if host:
                host.close()
            cols = ports_by_id(cl)[0]['cols']
            check(cols == 80 + (i - 1) % 2, 'a refused resize changed the size: %d' % cols)
            return r['error']
        if host is None:
            host = unix_client(console_sock)
            connects += 1
            wait_for(lambda: ports_by_id(cl)[0]['counters']['host_connects'] == connects or
                     refused(host), 'host client %d' % connects)
            if refused(host):
                host.close()
                host = None
        else:
            host.close()
            host = None
            wait_for(lambda: not ports_by_id(cl)[0]['host_connected'], 'host client %d gone' % i)
    raise CaseFailed('the control queue never filled')


def free_tcp_port():
    """A TCP port on 127.0.0.1 that nobody had bound a moment ago."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read(path):
    """The bytes of the file path, or None if there is none."""
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_to_eof(read):
    """read() again and again until it returns b'' (end of file); the bytes
    it returned before."""
    got = b''
    while True:
        b = read()
        if not b:
            return got
        got += b


def rotate(proc, path, old, timeout=10):
    """logrotate's move: path renamed to old, then SIGHUP to the daemon
    (proc); returns once the daemon has opened path again (O_CREAT)."""
    os.rename(path, old)
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(path), 'a new file after SIGHUP', timeout)


def another_daemon(d, fn, ports=(), extra=(), max_ports=None, chmod=None):
    """Run @fn(d2) against a daemon of its own configuration (computed at
    run time) instead of the case's @d, which is stopped first."""
    d.terminate()
    d2 = Daemon(ports=ports, extra=extra, max_ports=max_ports)
    try:
        if chmod is not None:
            os.chmod(d2.dir, chmod)
        fn(d2)
    finally:
        errs, log = d2.stop()
    check(not errs, '; '.join(errs) + '\n' + log[-1500:])
    shutil.rmtree(d2.dir, ignore_errors=True)


# ---------------------------------------------------------------- runner

def registry():
    """A new case list and the decorator that adds to it, in file order:
    @case, or @case(key=value, ...) which keeps its options in fn.opts."""
    cases = []

    def case(fn=None, **opts):
        def add(f):
            f.opts = opts
            cases.append(f)
            return f
        return add(fn) if fn is not None else add
    return cases, case


def guarded(fn, *args):
    """fn(*args); what went wrong as a list: a CaseFailed's reason, or an
    exception with its traceback. The result: (errors, fn's return)."""
    try:
        return [], fn(*args)
    except CaseFailed as e:
        return [str(e)], None
    except Exception as e:      # noqa: BLE001 - a failure of the case
        return ['%s: %s' % (type(e).__name__, e)] + traceback.format_exc().splitlines(), None


def run_case(fn):
    """Case fn(d) against a Daemon of its ports, max_ports and extra (its
    @case options, else attributes of fn); it may return 'SKIP why'.
    (errors, the SKIP note, the daemon's log, its directory); the directory
    goes once the case has passed."""
    def opt(k, default):
        return fn.opts.get(k, getattr(fn, k, default))
    made = []

    def body():
        made.append(Daemon(ports=opt('ports', ()), max_ports=opt('max_ports', None),
                           extra=opt('extra', ())))
        return fn(made[0])
    errs, res = guarded(body)
    skip = res if isinstance(res, str) and res.startswith('SKIP') else None
    if not made:
        return errs, skip, '', None
    d = made[0]
    e2, log = d.stop()
    errs += e2
    if not errs:
        shutil.rmtree(d.dir, ignore_errors=True)
    return errs, skip, log, d.dir


def tap_main(doc, cases, run, args=(), tail=20, dir_label='daemon'):
    """The command line (--vserial, --vserialctl, --list, case names, and
    args: (flags, add_argument keywords) pairs) into OPTS, then each case
    through run(fn) -> (errors, note, log, directory), printed as TAP:
    "ok N - name # <note or seconds>" or "not ok N - name" with the
    errors, the note, the directory and the log's last `tail` lines."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--vserial', required=True)
    ap.add_argument('--vserialctl', required=True)
    for flags, kw in args:
        ap.add_argument(*flags, **kw)
    ap.add_argument('--list', action='store_true')
    ap.add_argument('cases', nargs='*')
    vars(OPTS).update(vars(ap.parse_args()))
    OPTS.vserial = os.path.abspath(OPTS.vserial)
    OPTS.vserialctl = os.path.abspath(OPTS.vserialctl)
    if OPTS.list:
        print('\n'.join(c.__name__ for c in cases))
        return 0
    if OPTS.cases:
        known = {c.__name__: c for c in cases}
        bad = [n for n in OPTS.cases if n not in known]
        if bad:
            ap.error('unknown case(s): %s' % ' '.join(bad))
        cases = [known[n] for n in OPTS.cases]
    print('1..%d' % len(cases), flush=True)
    failed = 0
    for i, fn in enumerate(cases, 1):
        t0 = time.monotonic()
        errs, note, log, where = run(fn)
        if errs:
            failed += 1
            print('not ok %d - %s' % (i, fn.__name__))
            for e in errs:
                for ln in str(e).splitlines():
                    print('#   %s' % ln)
            if note:
                print('#   %s' % note)
            print('#   %s: %s' % (dir_label, where))
            for ln in log.splitlines()[-tail:]:
                print('#   | %s' % ln)
        else:
            print('ok %d - %s # %s' % (i, fn.__name__, note or '%.2f s' % (time.monotonic() - t0)))
        sys.stdout.flush()
    return 1 if failed else 0
