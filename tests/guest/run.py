#!/usr/bin/env python3
"""Real-guest tests for vserial: the daemon serves a virtio-console device
over vhost-user to a User-Mode Linux guest that runs the real Linux
virtio_console driver.

For each case: start vserial with the case's ports, wait for its vhost-user
socket, boot linux.uml with virtio_uml.device=SOCK:3 and the case's guest
script (tests/guest/cases/*.sh) while host-side actions run in a thread
(talking to the ports' unix sockets), then decide the verdict from the
guest's result file, the host-side checks, the daemon's exit status and its
stderr (sanitizer reports fail a case).

Prints one line per case, "PASS <tag>/<case>" or "FAIL <tag>/<case>",
followed (indented) by details. Exit status 1 if any case failed.

  tests/guest/run.py --vserial build/src/daemon/vserial [--tag guest]
                     [--out out/guest] [--jobs 2] [--timeout 120] [CASE...]
  tests/guest/run.py --list
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'qemu'))

import conn_cases  # noqa: E402
import ctl_cases  # noqa: E402
import data_cases  # noqa: E402
import device_cases  # noqa: E402
import fault_cases  # noqa: E402
import host_cases  # noqa: E402
import qemu_cases  # noqa: E402
from helpers import LIVE, kill_group, read_file, tail, wait_listening  # noqa: E402

TOP = os.path.dirname(os.path.dirname(HERE))
CASES_DIR = os.path.join(HERE, 'cases')
INIT = os.path.join(HERE, 'init.sh')
SANITIZER_RE = re.compile(r'ERROR: (Address|Leak|Memory|Thread)Sanitizer|'
                          r'runtime error:|SUMMARY: \w+Sanitizer')


class Ctx:
    """Everything one case run needs: paths, the daemon, results."""

    def __init__(self, case, out, opts):
        self.case = case
        self.out = out
        self.opts = opts
        self.errors = []
        self.info = []
        self.stop = threading.Event()      # set once UML has exited
        self.daemon = None
        self.daemon_killed = False
        self.daemon_refused = None          # its exit status, if it refused to start
        self.data = {}
        self.vmm = opts.vmm
        self.vm = None                      # QEMU: the running VM (tests/guest/qemu/vm.py)
        self.vm_started = threading.Event()  # set while a QEMU runs
        self.max_ports = 31                 # the daemon's --max-ports
        self.t_start = time.monotonic()
        # sun_path is 108 bytes: keep sockets short.
        if len(out) + 16 > 100:
            self.sockdir = tempfile.mkdtemp(prefix='vsg-')
        else:
            self.sockdir = out

    def path(self, *p):
        return os.path.join(self.out, *p)

    def sock(self, name):
        return os.path.join(self.sockdir, name)

    def check(self, cond, msg):
        if not cond:
            self.errors.append(msg)
        return cond

    def grace_expired(self, grace=3.0):
        """True once UML has been gone for `grace` seconds."""
        if not self.stop.is_set():
            return False
        if 'stop_at' not in self.data:
            self.data['stop_at'] = time.monotonic()
        return time.monotonic() - self.data['stop_at'] > grace


# The cases, in the order --list prints them.
CASES = (device_cases.CASES +   # the device itself: bulk data, consoles, a driver reload
         ctl_cases.CASES +      # the control socket (vserialctl)
         data_cases.CASES +     # backends, reconnects, a VMM restart, 31 ports, consoles
         fault_cases.CASES +    # disk full, stalled/reset peers, a VMM cut mid-message
         host_cases.CASES +     # history, logfile, tcp-connect, fd, journal, metrics
         conn_cases.CASES +     # host clients: reconnects, waiting, clients=N, unplug/plug
         qemu_cases.CASES)      # QEMU's own cases
qemu_cases.share(CASES)         # which of the others run under QEMU too


def on_signal(signum, _frame):
    for p in list(LIVE):
        if p.poll() is None:
            kill_group(p.pid)
    sys.stderr.write('run.py: stopped by signal %d\n' % signum)
    os._exit(128 + signum)


def boot_uml(ctx, boot, sfx, genv, deadline):
    """One linux.uml run of the case's script; its exit status, or None
    when it was killed at the deadline."""
    opts, case, out = ctx.opts, ctx.case, ctx.out
    uml = shutil.which(opts.uml)
    if not uml:
        raise AssertionError('%s not found (apt-get install user-mode-linux)' % opts.uml)
    tmp = ctx.path('tmp')
    os.makedirs(tmp, exist_ok=True)
    uargv = [uml, 'mem=128M', 'root=/dev/root', 'rootfstype=hostfs', 'rootflags=/', 'rw',
             'con=null', 'con0=fd:0,fd:1', 'uml_dir=' + ctx.path('umldir'),
             'init=' + INIT, 'virtio_uml.device=%s:3' % ctx.sock('vhost.sock'),
             'UMLTEST=' + os.path.join(CASES_DIR, case.script),
             'UMLRESULT=' + ctx.path('result' + sfx), 'OUT=' + out]
    uargv += ['%s=%s' % kv for kv in genv.items()]
    if getattr(case, 'boots', 1) > 1:
        uargv.append('BOOT=%d' % boot)
    uenv = dict(os.environ, TMPDIR=tmp, TMP=tmp, TEMP=tmp)
    with open(ctx.path('uml%s.cmd' % sfx), 'w') as f:
        f.write(' '.join(uargv) + '\n')
    with open(ctx.path('uml%s.log' % sfx), 'wb') as ul:
        up = subprocess.Popen(uargv, stdin=subprocess.DEVNULL, stdout=ul,
                              stderr=subprocess.STDOUT, env=uenv, cwd=out,
                              start_new_session=True)
        LIVE.add(up)
    rc = None
    try:
        rc = up.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        # SIGTERM first: UML halts cleanly if it still can, flushing its log.
        kill_group(up.pid, signal.SIGTERM)
        try:
            up.wait(timeout=3)
        except subprocess.TimeoutExpired:
            kill_group(up.pid)
            up.wait()
        ctx.errors.append('guest timed out after %.0f s (UML killed)' % (time.monotonic() - ctx.t_start))
    finally:
        kill_group(up.pid)  # UML helpers, if any are left
        LIVE.discard(up)
    return rc


def guest_env_file(ctx, boot, sfx, genv):
    """$OUT/.guest.env, read by the QEMU guest's init (tests/guest/qemu/init.sh):
    what the UML guest gets on its kernel command line. The case scripts are
    copied to $OUT/.cases (the guest sees only $OUT)."""
    cdir = ctx.path('.cases')
    if not os.path.isdir(cdir):
        shutil.copytree(CASES_DIR, cdir)
    env = {'UMLTEST': os.path.join(cdir, ctx.case.script), 'UMLRESULT': ctx.path('result' + sfx),
           'OUT': ctx.out, 'VMM': 'qemu'}
    env.update(genv)
    if getattr(ctx.case, 'boots', 1) > 1:
        env['BOOT'] = boot
    with open(ctx.path('.guest.env'), 'w') as f:
        for k, v in env.items():
            f.write('export %s=%s\n' % (k, shlex.quote(str(v))))


def boot_qemu(ctx, boot, sfx, genv, deadline):
    """One QEMU run of the case's script (ctx.vm while it runs); QEMU's exit
    status, or None when it was killed at the deadline. The case may change
    the QEMU (Case.qemu_args) or end it itself (Case.qemu_end)."""
    import vm as qvm    # tests/guest/qemu
    qemu = qvm.find_qemu()      # raises NoQemu: the runner reports it
    gdir = ctx.opts.guest_dir
    guest_env_file(ctx, boot, sfx, genv)
    for f in ('.gboot',):
        try:
            os.unlink(ctx.path(f))
        except FileNotFoundError:
            pass
    kw = dict(vs_sock=ctx.sock('vhost.sock'), max_ports=ctx.max_ports)
    kw.update(ctx.case.qemu_args(ctx, boot))
    v = qvm.VM(qemu, gdir, ctx.out, ctx.sockdir, ctx.path('qemu%s.log' % sfx), tag='q%d' % boot, **kw)
    v.live = LIVE
    ctx.vm = v
    try:
        v.start()
        ctx.vm_started.set()
        rc = v.wait(deadline - time.monotonic())
        if rc is None:
            ctx.errors.append('guest timed out after %.0f s (QEMU killed)' % (time.monotonic() - ctx.t_start))
        return rc
    finally:
        v.stop()
        ctx.vm_started.clear()
        for p in (v.proc, v.fsd):
            LIVE.discard(p)


class DaemonRefused(Exception):
    """The daemon exited at start, as the case expected (expect_daemon =
    'refuse'): there is nothing to boot."""


def start_daemon(ctx):
    opts, case = ctx.opts, ctx.case
    vserial = os.path.abspath(opts.vserial) if opts.vserial else ''
    if not (vserial and os.access(vserial, os.X_OK)):
        raise AssertionError('vserial binary not found: %r' % opts.vserial)
    vsock = ctx.sock('vhost.sock')
    argv = case.daemon_argv(ctx, vserial)
    if argv is None:
        argv = [vserial, '--socket', vsock, '--log-level', opts.log_level]
        for spec in case.ports(ctx):
            argv += ['--port', spec]
        argv += case.daemon_args(ctx)
    else:
        vsock = argv[argv.index('--socket') + 1]
    if '--max-ports' in argv:
        ctx.max_ports = int(argv[argv.index('--max-ports') + 1])
    with open(ctx.path('daemon.cmd'), 'w') as f:
        f.write(' '.join(argv) + '\n')
    denv = dict(os.environ)
    denv.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=0:halt_on_error=1')
    denv.setdefault('UBSAN_OPTIONS', 'halt_on_error=1:print_stacktrace=1')
    with open(ctx.path('daemon.stdout'), 'wb') as so, \
            open(ctx.path('daemon.log'), 'wb') as se:
        stdin = subprocess.PIPE if case.daemon_stdin else subprocess.DEVNULL
        ctx.daemon = subprocess.Popen(argv, stdin=stdin, stdout=so,
                                      stderr=se, env=denv, cwd=ctx.out,
                                      start_new_session=True,
                                      pass_fds=case.daemon_pass_fds(ctx))
        LIVE.add(ctx.daemon)
    if not wait_listening(ctx, vsock, 20):
        if case.expect_daemon == 'refuse' and ctx.daemon.poll() is not None:
            ctx.daemon_refused = ctx.daemon.returncode
            raise DaemonRefused()
        raise AssertionError('vhost-user socket %s not listening (daemon exit status %s)'
                             % (vsock, ctx.daemon.poll()))


def stop_daemon(ctx):
    """The daemon: still running (unless killed on purpose), SIGTERM -> exit 0."""
    d = ctx.daemon
    if d is None:
        return
    if (ctx.case.expect_daemon == 'killed' and ctx.daemon_killed) or ctx.daemon_refused is not None:
        d.wait()
    elif d.poll() is not None:
        # Exiting once the VMM has gone is fine, if it is a clean exit.
        ctx.check(d.returncode == 0, 'daemon died with status %s during the test' % d.returncode)
    else:
        # To its process group, so that a wrapper (strace -f, a sandbox)
        # passes it on.
        kill_group(d.pid, signal.SIGTERM)
        try:
            rc = d.wait(timeout=15)
            ctx.check(rc == 0, 'daemon exit status %s after SIGTERM, want 0' % rc)
        except subprocess.TimeoutExpired:
            kill_group(d.pid)
            d.wait()
            ctx.errors.append('daemon did not exit within 15 s of SIGTERM')
    kill_group(d.pid)       # anything the daemon (or a wrapper) left behind
    LIVE.discard(d)
    if d.stdin:
        try:
            d.stdin.close()
        except OSError:
            pass
    log = read_file(ctx.path('daemon.log'))
    m = SANITIZER_RE.search(log)
    ctx.check(not m, 'sanitizer report in the daemon log: %r' % (m.group(0) if m else ''))


def check_boot(ctx, boot, sfx, rc, pre):
    """The verdict of one guest run: a clean exit, the script's status 0, no
    "guest: FAIL" line in the guest's log."""
    vlog = ctx.path('%s%s.log' % (ctx.opts.vmm, sfx))
    end = ctx.case.qemu_end(ctx, boot) if ctx.opts.vmm == 'qemu' else 'poweroff'
    if ctx.opts.vmm == 'uml':
        # Seen once in some 40 runs here: the UML host process gets SIGABRT after
        # the guest has halted, whatever the device did. The guest finished
        # and powered off; that is what this check is about.
        if rc == -signal.SIGABRT and 'reboot: System halted' in read_file(vlog):
            ctx.info.append(pre + 'linux.uml aborted after the guest halted (UML itself; accepted)')
            return
        ctx.check(rc == 0, pre + 'linux.uml exit status %s, want 0 (clean poweroff)' % rc)
    else:
        ctx.check(rc == 0, pre + 'QEMU exit status %s, want 0' % rc)
    gfail = [pre + ln for ln in read_file(vlog).splitlines() if 'guest: FAIL' in ln]
    ctx.errors += gfail
    if end != 'poweroff':
        return              # the case ended this QEMU before the script did
    res = read_file(ctx.path('result' + sfx), None)
    if res is None:
        ctx.errors.append(pre + 'guest wrote no result (crashed or hung)')
    else:
        ctx.check(res.strip() == '0', pre + 'guest script exit status %s' % res.strip())


def run_case(case, opts):
    name = '%s/%s' % (opts.tag, case.name)
    out = os.path.abspath(os.path.join(opts.out, case.name))
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    ctx = Ctx(case, out, opts)
    ctx.t_start = t_start = time.monotonic()
    deadline = t_start + opts.timeout * (case.qemu_timeout_factor if opts.vmm == 'qemu'
                                         else case.uml_timeout_factor)
    hthread = None
    # A case may boot the guest more than once against the same daemon
    # (Case.boots, default 1): boot 1 writes result, uml.log and uml.cmd,
    # boot k > 1 result.k, uml.k.log and uml.k.cmd, and gets BOOT=k
    # (qemu.log ... under QEMU).
    nboots = getattr(case, 'boots', 1)
    booted = []     # (boot, file suffix, the VMM's exit status)
    try:
        if opts.vmm == 'qemu' and opts.no_qemu:
            raise AssertionError(opts.no_qemu)
        case.prepare(ctx)
        genv = case.env(ctx)
        start_daemon(ctx)

        def host_body():
            try:
                case.host(ctx)
            except Exception as e:   # noqa: BLE001 - reported as a failure
                ctx.errors.append('host side: %s: %s' % (type(e).__name__, e))
                with open(ctx.path('host.err'), 'w') as f:
                    traceback.print_exc(file=f)
        hthread = threading.Thread(target=host_body, daemon=True)
        hthread.start()

        vsock = ctx.sock('vhost.sock')
        for boot in range(1, nboots + 1):
            sfx = '' if boot == 1 else '.%d' % boot
            ctx.data['boot'] = boot
            if boot > 1 and not wait_listening(ctx, vsock, 20):
                raise AssertionError('vhost-user socket %s not listening for boot %d (daemon exit status %s)'
                                     % (vsock, boot, ctx.daemon.poll()))
            boot_fn = boot_qemu if opts.vmm == 'qemu' else boot_uml
            rc = boot_fn(ctx, boot, sfx, genv, deadline)
            if rc is None:
                break
            booted.append((boot, sfx, rc))
    except DaemonRefused:
        nboots = 0
    except AssertionError as e:
        ctx.errors.append(str(e))
    except Exception as e:      # noqa: BLE001
        ctx.errors.append('harness: %s: %s' % (type(e).__name__, e))
        ctx.errors.append(traceback.format_exc())
    finally:
        ctx.stop.set()
        if hthread is not None:
            hthread.join(timeout=15)
            if hthread.is_alive():
                ctx.errors.append('host side still running 15 s after the guest ended')

    stop_daemon(ctx)
    for boot, sfx, rc in booted:
        check_boot(ctx, boot, sfx, rc, 'boot %d: ' % boot if nboots > 1 else '')
    if len(booted) == nboots and (booted or ctx.daemon_refused is not None):
        try:
            case.verify(ctx)
        except Exception as e:  # noqa: BLE001
            ctx.errors.append('verify: %s: %s' % (type(e).__name__, e))

    if ctx.sockdir != out:
        shutil.rmtree(ctx.sockdir, ignore_errors=True)
    shutil.rmtree(ctx.path('umldir'), ignore_errors=True)
    shutil.rmtree(ctx.path('tmp'), ignore_errors=True)

    ok = not ctx.errors
    secs = time.monotonic() - t_start
    lines = ['%s %s' % ('PASS' if ok else 'FAIL', name)]
    lines += ['    %s' % i for i in ctx.info]
    lines.append('    (%.1f s, output in %s)' % (secs, out))
    if not ok:
        for e in ctx.errors:
            lines += ['    error: ' + ln for ln in str(e).rstrip().splitlines()]
        lines.append('    --- daemon.log (last 30 lines) ---')
        lines += ['    | ' + ln for ln in tail(ctx.path('daemon.log'), 30)]
        for boot in range(1, nboots + 1):
            sfx = '' if boot == 1 else '.%d' % boot
            for f in ('%s%s.log' % (opts.vmm, sfx), 'qemu%s.log.stderr' % sfx):
                if (boot == 1 and f.endswith('.log')) or os.path.exists(ctx.path(f)):
                    lines.append('    --- %s (last 40 lines) ---' % f)
                    lines += ['    | ' + ln for ln in tail(ctx.path(f), 40)]
    with open(ctx.path('verdict'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return ok, lines


def qemu_setup(opts):
    """--vmm qemu: find QEMU and build (or find) the guest. Returns None, or
    why the QEMU cases cannot run."""
    import vm as qvm    # tests/guest/qemu
    try:
        opts.qemu = qvm.find_qemu()
    except qvm.NoQemu as e:
        return str(e)
    try:
        opts.guest_dir = qvm.guest()
    except SystemExit:
        return 'the QEMU guest could not be built (tests/guest/qemu/build_guest.py, output above)'
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--vserial', default=os.path.join(TOP, 'build/src/daemon/vserial'),
                    help='the daemon binary (default build/src/daemon/vserial)')
    ap.add_argument('--vmm', choices=('uml', 'qemu'), default='uml',
                    help='the guest runs under User-Mode Linux (default) or QEMU (TCG)')
    ap.add_argument('--uml', default='linux.uml')
    ap.add_argument('--out', default=None, help='output dir (default out/<tag>)')
    ap.add_argument('--tag', default=None, help='prefix of the case names (default guest, or qemu)')
    ap.add_argument('--jobs', '-j', type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120,
                    help='seconds per case (times Case.qemu_timeout_factor under QEMU)')
    ap.add_argument('--log-level', default='info')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('cases', nargs='*')
    opts = ap.parse_args()
    if opts.tag is None:
        opts.tag = 'guest' if opts.vmm == 'uml' else 'qemu'
    opts.no_qemu = None

    mine = [c for c in CASES if opts.vmm in c.vmms]
    if opts.list:
        for c in mine:
            print(c.name)
        return 0
    cases = mine
    if opts.cases:
        known = {c.name: c for c in mine}
        bad = [n for n in opts.cases if n not in known]
        if bad:
            ap.error('unknown %s case(s): %s (see --list)' % (opts.vmm, ' '.join(bad)))
        cases = [known[n] for n in opts.cases]
    if opts.out is None:
        opts.out = os.path.join(TOP, 'out', opts.tag)
    os.makedirs(opts.out, exist_ok=True)

    if opts.vmm == 'qemu':
        opts.no_qemu = qemu_setup(opts)
        if opts.no_qemu and os.environ.get('CI') != 'true':
            # Reported, not counted: without CI a missing QEMU is a skip.
            print('SKIP %s: %d QEMU cases not run: %s' % (opts.tag, len(cases), opts.no_qemu), flush=True)
            return 0
        # The longest first: two at a time finish together.
        cases = sorted(cases, key=lambda c: -getattr(c, 'qemu_cost', 1))

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as ex:
        futs = [ex.submit(run_case, c, opts) for c in cases]
        for fu in as_completed(futs):
            ok, lines = fu.result()
            failed += not ok
            print('\n'.join(lines), flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
