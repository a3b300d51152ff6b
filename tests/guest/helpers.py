"""What every real-guest case shares (tests/guest/run.py runs them; the
*_cases.py files hold them): the Case base class, byte helpers on the port
sockets, waiting for the guest or the daemon, and vserialctl.

A case module imports what it needs from here and lists its cases in CASES.
Every wait is bounded and ends early once the guest is gone (ctx.stop), so
that a case that goes wrong fails with a reason instead of hanging.
"""

import hashlib
import os
import random
import select
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'qemu'))
import vm  # noqa: E402 (tests/guest/qemu/vm.py)

MIB = 1024 * 1024
KIB = 1024
BULK = 16 * MIB

LIVE = set()    # child processes to kill if the runner itself is stopped
kill_group = vm.kill_group      # kill_group(pid, sig=SIGKILL): pid's process group


def listening(path):
    """Is there a listening AF_UNIX socket bound to path? (/proc/net/unix,
    flag __SO_ACCEPTCON) Connecting to probe would take the daemon's one
    vhost-user connection."""
    try:
        with open('/proc/net/unix') as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 8 and fields[7] == path and \
                        int(fields[3], 16) & 0x10000:
                    return True
        return False
    except OSError:
        # No /proc/net/unix: settle for the socket file (bind comes just
        # before listen).
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                time.sleep(0.1)
                return True
        except OSError:
            pass
        return False


def wait_listening(ctx, path, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if listening(path):
            return True
        if ctx.daemon is not None and ctx.daemon.poll() is not None:
            return False
        if ctx.stop.is_set():
            return False
        time.sleep(0.02)
    return False


def connect(ctx, path, timeout=20):
    if not wait_listening(ctx, path, timeout):
        raise AssertionError('port socket %s is not listening' % path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    return s


def recv_some(ctx, s, maxlen, grace=3.0):
    """Up to maxlen bytes; b'' on EOF; None when the guest is gone and the
    grace period expired."""
    while True:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            try:
                return s.recv(maxlen)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                return b''
        if ctx.grace_expired(grace):
            return None


def recv_exact(ctx, s, n, grace=3.0):
    """Read exactly n bytes; returns (bytes, t_first, t_last)."""
    buf = bytearray()
    t_first = t_last = None
    while len(buf) < n:
        d = recv_some(ctx, s, min(n - len(buf), MIB), grace)
        if not d:
            break
        if t_first is None:
            t_first = time.monotonic()
        buf += d
        t_last = time.monotonic()
    return bytes(buf), t_first, t_last


def send_all(ctx, s, data, grace=3.0):
    mv = memoryview(data)
    sent = 0
    while sent < len(mv):
        _, w, _ = select.select([], [s], [], 0.2)
        if w:
            try:
                sent += s.send(mv[sent:sent + MIB])
            except BlockingIOError:
                continue
        elif ctx.grace_expired(grace):
            break
    return sent


def read_until(ctx, s, done, grace=3.0):
    """Read s until done(the bytes so far), end of file, or the guest has
    been gone for grace seconds; the bytes."""
    got = bytearray()
    while not done(got):
        d = recv_some(ctx, s, MIB, grace)
        if not d:
            break
        got += d
    return bytes(got)


def recv_rest(ctx, s, grace=0.5):
    """Everything s brings until end of file, or until the guest has been
    gone for grace seconds."""
    return read_until(ctx, s, lambda b: False, grace)


def finish_split_stream(ctx, s):
    """The end of a guest->host stream (ctx.data['up']) that a host client
    cut off mid-way (it got ctx.data['dead']) and the client s after it
    share: read s to the stream's last 64 bytes (ctx.data['got']), tell the
    guest ACK if the two are a start and an end of the stream (else NAK),
    wait for the guest to be done, note whether the daemon still runs
    (ctx.data['alive'] once s has it all, if the case did not look before,
    and ctx.data['alive_end'])."""
    up, dead = ctx.data['up'], ctx.data['dead']
    got = read_until(ctx, s, lambda b: b[-64:] == up[-64:], grace=3.0)
    ctx.data['got'] = got
    ctx.data.setdefault('alive', ctx.daemon.poll() is None)    # unless the case looked earlier
    ok = up.startswith(dead) and up.endswith(got) and len(dead) + len(got) <= len(up)
    send_all(ctx, s, ('ACK %s\n' % sha256(up) if ok else 'NAK: not a prefix + suffix\n').encode())
    wait_guest_file(ctx, 'g.done', 60, quiet=True)
    ctx.data['alive_end'] = ctx.daemon.poll() is None
    s.close()


def check_split_stream(ctx, first, second):
    """What finish_split_stream() saw: the daemon running after the first
    client (`first`) went away and at the end, the first client's bytes the
    start of the stream, the second's (`second`) its end. Returns how many
    bytes neither got."""
    up = ctx.data['up']
    dead = ctx.data.get('dead', b'')
    got = ctx.data.get('got', b'')
    ctx.check(ctx.data.get('alive') is True, 'the daemon was not running after %s went away' % first)
    ctx.check(ctx.data.get('alive_end') is True, 'the daemon was not running at the end')
    ctx.check(up.startswith(dead), 'what %s got (%d bytes) is not the start of the stream'
              % (first, len(dead)))
    ctx.check(len(got) > 0 and up.endswith(got),
              'what %s got (%d bytes) is not the end of the stream' % (second, len(got)))
    return len(up) - len(dead) - len(got)


def both_ways(ctx, s, down, nup, timeout=60):
    """Send all of down on the non-blocking s while reading nup bytes from
    it; (the bytes read, how many were sent). Stops early at end of file,
    after timeout seconds, or once the guest is gone and nothing moves."""
    down = memoryview(down)
    got, sent = bytearray(), 0
    end = time.monotonic() + timeout
    while (len(got) < nup or sent < len(down)) and time.monotonic() < end:
        r, w, _ = select.select([s] if len(got) < nup else [],
                                [s] if sent < len(down) else [], [], 0.2)
        if r:
            try:
                d = s.recv(MIB)
            except BlockingIOError:
                d = None
            except ConnectionResetError:
                d = b''
            if d == b'':
                break
            got += d or b''
        if w:
            try:
                sent += s.send(down[sent:sent + 64 * KIB])
            except BlockingIOError:
                pass
        if not r and not w and ctx.grace_expired():
            break
    return bytes(got), sent


def all_ways(ctx, socks, down, nup, timeout, take):
    """Many ports at once: send down[i] on socks[i] while reading nup bytes
    from each (one select over all), take(i, data) for what arrives. Ends
    when all is done, or when nothing moves and the guest is gone or
    nothing moved for timeout seconds (counted from the last progress, not
    from the start: a guest that boots slowly on a loaded machine has sent
    nothing yet); end of file on one is an AssertionError.
    The bytes sent, by i."""
    got = {i: 0 for i in socks}
    sent = {i: 0 for i in socks}
    fd2i = {s.fileno(): i for i, s in socks.items()}
    end = time.monotonic() + timeout
    while True:
        rl = [socks[i] for i in socks if got[i] < nup]
        wl = [socks[i] for i in socks if sent[i] < len(down[i])]
        if not rl and not wl:
            break
        r, w, _ = select.select(rl, wl, [], 0.2)
        for s in r:
            i = fd2i[s.fileno()]
            try:
                d = s.recv(nup - got[i])
            except BlockingIOError:
                continue
            if not d:
                raise AssertionError('port %d: end of file after %d bytes' % (i, got[i]))
            take(i, d)
            got[i] += len(d)
        for s in w:
            i = fd2i[s.fileno()]
            try:
                sent[i] += s.send(down[i][sent[i]:sent[i] + 64 * KIB])
            except BlockingIOError:
                pass
        if r or w:
            end = time.monotonic() + timeout
        elif ctx.grace_expired() or time.monotonic() > end:
            break
    return sent


def run_together(ctx, *fns):
    """fn(ctx) for each of fns, each in a thread of its own, until all
    have returned; what they raised goes to ctx.errors."""
    errs = []

    def wrap(fn):
        try:
            fn(ctx)
        except Exception as e:  # noqa: BLE001 - reported as a failure
            errs.append('%s: %s' % (type(e).__name__, e))
    ts = [threading.Thread(target=wrap, args=(f,), daemon=True) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ctx.errors += errs


def det_bytes(seed, n):
    return random.Random(seed).randbytes(n)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def write_rounds(ctx, up_seed, nup, down_seed, ndown, digest=False):
    """The data of a case's two rounds k = 1, 2: $OUT/up.k, nup bytes for
    the guest to send (ctx.data['upk']: the bytes, or their sha256 with
    digest), and ctx.data['downk'], ndown bytes for the host to send;
    det_bytes() seeds up_seed + k and down_seed + k."""
    for k in (1, 2):
        up = write_out(ctx, 'up.%d' % k, det_bytes(up_seed + k, nup))
        ctx.data['up%d' % k] = sha256(up) if digest else up
        ctx.data['down%d' % k] = det_bytes(down_seed + k, ndown)


def write_out(ctx, name, data):
    """$OUT/name holding data (bytes); data."""
    with open(ctx.path(name), 'wb') as f:
        f.write(data)
    return data


def drop_if_passed(ctx, *names):
    """Remove the case's large files $OUT/name once it has passed; a failed
    case keeps them to look at."""
    if not ctx.errors:
        for n in names:
            os.unlink(ctx.path(n))


def named_ports(ctx, names):
    """--port specs: the console on stdio, and port i named names[i] on a
    unix socket <sockdir>/p<i>.sock for each i in names."""
    return ['id=0,console,backend=stdio'] + \
        ['id=%d,name=%s,backend=unix,path=%s' % (i, n, ctx.sock('p%d.sock' % i))
         for i, n in names.items()]


def free_tcp_port():
    """A TCP port on 127.0.0.1 that nobody had bound a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def read_file(path, default=''):
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return default


def tail(path, n):
    lines = read_file(path, '(missing)\n').splitlines()
    return lines[-n:]


def guest_times(ctx):
    try:
        t0, t1 = map(float, read_file(ctx.path('guest.times')).split())
        return t1 - t0
    except ValueError:
        return None


def mbps(nbytes, seconds):
    return nbytes / 1e6 / seconds if seconds and seconds > 0 else float('nan')


def wait_until(ctx, cond, what, timeout=60):
    """Poll cond() until it is true; AssertionError naming `what` after
    timeout seconds or once the guest (every boot) is gone."""
    end = time.monotonic() + timeout
    while not cond():
        if ctx.stop.is_set() or time.monotonic() > end:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(0.02)


def wait_guest_file(ctx, name, timeout=120, quiet=False):
    """Until the guest has created $OUT/name (wait_until). quiet: return
    without an error instead, for a host side that goes on either way and
    leaves the verdict to the guest's own result."""
    try:
        wait_until(ctx, lambda: os.path.exists(ctx.path(name)), 'the guest to write %s' % name,
                   timeout)
    except AssertionError:
        if not quiet:
            raise


def touch(ctx, name):
    """$OUT/name, empty: a mark the guest script waits for."""
    with open(ctx.path(name), 'w'):
        pass


def vserialctl(ctx):
    """$VSERIALCTL, else the vserialctl next to the daemon under test
    (build/src/ctl/vserialctl for build/src/daemon/vserial)."""
    p = os.environ.get('VSERIALCTL')
    if not p:
        d = os.path.dirname(os.path.abspath(ctx.opts.vserial))
        p = os.path.join(os.path.dirname(d), 'ctl', 'vserialctl')
    if not os.access(p, os.X_OK):
        raise AssertionError('vserialctl not found at %s (set $VSERIALCTL)' % p)
    return p


def ctl(ctx, *args, check=True, binary=False):
    """vserialctl -c <sockdir>/ctl.sock ARGS; its stdout (bytes if binary).
    Each call goes to $OUT/vserialctl.log; check: AssertionError on a
    non-zero exit, with vserialctl's error line."""
    r = subprocess.run([vserialctl(ctx), '-c', ctx.sock('ctl.sock')] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    with open(ctx.path('vserialctl.log'), 'ab') as f:
        f.write(b'$ vserialctl %s\nexit %d\n' % (' '.join(args).encode(), r.returncode))
        f.write(r.stderr + (b'(%d bytes)\n' % len(r.stdout) if binary else r.stdout))
    if check and r.returncode != 0:
        raise AssertionError('vserialctl %s: exit %d: %s' % (' '.join(args), r.returncode,
                                                             r.stderr.decode().strip()))
    return r.stdout if binary else r.stdout.decode()


def log_has(ctx, text):
    """Has the daemon logged text (its stderr, $OUT/daemon.log)?"""
    return text in read_file(ctx.path('daemon.log'))


def wait_log(ctx, text, timeout=60):
    wait_until(ctx, lambda: log_has(ctx, text), '"%s" in the log' % text, timeout)


# ---------------------------------------------------------------- cases
#
#
# A case: name, guest script, --port specs, guest env, prepare() before the
# daemon starts, host() in a thread while the guest runs, verify() after.


class Case:
    name = None
    script = None
    expect_daemon = 'exit0'       # or 'killed', or 'refuse' (it may exit at start: no boot)
    uml_timeout_factor = 1        # times --timeout under UML (long cases)
    daemon_stdin = False          # True: a pipe (ctx.daemon.stdin), else /dev/null

    def daemon_argv(self, ctx, vserial):
        """The whole daemon command line, or None: vserial --socket
        <sockdir>/vhost.sock with ports() and daemon_args()."""
        return None

    def ports(self, ctx):
        return []

    def daemon_args(self, ctx):
        """More daemon arguments (after the --port ones)."""
        return []

    def daemon_pass_fds(self, ctx):
        """fds the daemon inherits (backend=fd, socket activation)."""
        return ()

    def env(self, ctx):
        return {}

    def prepare(self, ctx):
        pass

    def host(self, ctx):
        pass

    def verify(self, ctx):
        pass

    # Under QEMU (run.py --vmm qemu):
    vmms = ('uml',)                 # the VMMs this case runs under
    qemu_timeout_factor = 3         # TCG is slower than UML

    def qemu_args(self, ctx, boot):
        """More tests/guest/qemu/vm.py VM() arguments for this boot."""
        return {}

    def qemu_end(self, ctx, boot):
        """'poweroff': the guest script ends this QEMU run (its result is
        checked); 'host': the host side ends it (QMP quit, a kill)."""
        return 'poweroff'


class CtlCase(Case):
    """A case whose daemon has a control socket, <sockdir>/ctl.sock (ctl())."""

    def daemon_args(self, ctx):
        return ['--control', ctx.sock('ctl.sock')]
