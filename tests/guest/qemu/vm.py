"""QEMU for the real-guest tests and the benchmark: find a usable QEMU,
build the guest (build_guest.py), start one QEMU against a vserial socket
with the case's output directory shared into the guest (virtiofsd), talk
QMP, and never leave a process behind.

  find_qemu(top)        (path, version) of the QEMU to use, or raises
                        NoQemu with one line saying why and what to do
  guest()               the guest directory (vmlinux, initrd, virtiofsd)
  VM(...)               one QEMU process (and its virtiofsd); start(),
                        qmp(), wait(), stop()
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
MIN_VERSION = (10, 2)
DEVICE = 'vhost-user-test-device-pci'
HOWTO = ('set VSERIAL_QEMU=/path/to/qemu-system-x86_64 (QEMU >= %d.%d with %s), or put the '
         'QEMU build described in ../shared/qemu/README.md beside the repository'
         % (MIN_VERSION + (DEVICE,)))


class NoQemu(Exception):
    pass


def _check(path):
    """None if path is a usable QEMU, else why not."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return '%s: not an executable file' % path
    try:
        v = subprocess.run([path, '--version'], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        d = subprocess.run([path, '-device', 'help'], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return '%s: cannot run it: %s' % (path, e)
    m = re.search(r'version (\d+)\.(\d+)(?:\.(\d+))?', v.stdout)
    if v.returncode != 0 or not m:
        first = (v.stdout + v.stderr).strip().split('\n')[0][:120]
        return '%s --version says %r (exit %d): not QEMU' % (path, first, v.returncode)
    ver = tuple(int(x or 0) for x in m.groups())
    if ver[:2] < MIN_VERSION:
        return '%s is QEMU %s, older than %d.%d' % (path, '.'.join(map(str, ver)), *MIN_VERSION)
    if '"%s"' % DEVICE not in d.stdout:
        return '%s (QEMU %s) has no %s' % (path, '.'.join(map(str, ver)), DEVICE)
    return None


def _shared_candidates(top):
    """../shared/qemu/bin/qemu-system-x86_64 beside the repository; in a git
    worktree also beside the main checkout; in a clone of a local checkout
    (git clone /work/main /tmp/fresh) also beside that checkout."""
    tops = [top]
    try:
        common = subprocess.run(['git', '-C', top, 'rev-parse', '--path-format=absolute',
                                 '--git-common-dir'], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        if common and os.path.basename(common) == '.git':
            tops.append(os.path.dirname(common))
        origin = subprocess.run(['git', '-C', top, 'remote', 'get-url', 'origin'],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        if origin.startswith('/') and os.path.isdir(origin):
            tops.append(origin)
    except (OSError, subprocess.SubprocessError):
        pass
    out = []
    for t in tops:
        p = os.path.normpath(os.path.join(t, '..', 'shared', 'qemu', 'bin', 'qemu-system-x86_64'))
        if p not in out:
            out.append(p)
    return out


_FOUND = {}


def find_qemu(top=TOP):
    """The QEMU to use: $VSERIAL_QEMU, else ../shared/qemu/bin/qemu-system-x86_64,
    else qemu-system-x86_64 on PATH; the first one that exists decides
    (an unusable $VSERIAL_QEMU is an error, not skipped). Raises NoQemu."""
    if top in _FOUND:
        r = _FOUND[top]
        if isinstance(r, NoQemu):
            raise r
        return r
    why = []
    env = os.environ.get('VSERIAL_QEMU')
    cands = []
    if env:
        cands.append(('$VSERIAL_QEMU', env, True))
    cands += [('../shared', p, False) for p in _shared_candidates(top)]
    onpath = shutil.which('qemu-system-x86_64')
    if onpath:
        cands.append(('PATH', onpath, False))
    res = None
    for src, path, must in cands:
        if not must and not os.path.exists(path):
            continue
        bad = _check(path)
        if bad is None:
            res = os.path.abspath(path)
            break
        why.append('%s %s' % (src, bad))
        if must:
            break
    if res is None:
        if not why:
            why.append('none at $VSERIAL_QEMU, %s or on PATH' % ' or '.join(_shared_candidates(top)))
        err = NoQemu('no usable QEMU (%s); %s' % ('; '.join(why), HOWTO))
        _FOUND[top] = err
        raise err
    _FOUND[top] = res
    return res


def guest():
    """The guest directory, built by build_guest.py if the cache lacks it."""
    import build_guest      # noqa: E402 (same directory)
    return build_guest.ensure(quiet=False)


def kill_group(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def listening(path):
    """A listening AF_UNIX socket at path (without connecting to it)."""
    try:
        with open('/proc/net/unix') as f:
            next(f)
            for line in f:
                fl = line.split()
                if len(fl) >= 8 and fl[7] == path and int(fl[3], 16) & 0x10000:
                    return True
    except OSError:
        try:
            return stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            pass
    return False


class QmpError(Exception):
    pass


class Qmp:
    """A QMP connection: commands in order, events kept."""

    def __init__(self, path, timeout=30):
        end = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > end:
                    raise QmpError('QMP socket %s: no connection within %d s' % (path, timeout))
                time.sleep(0.05)
        self.s.settimeout(timeout)
        self.f = self.s.makefile('rb')
        self.events = []
        self._read()                    # greeting
        self.cmd('qmp_capabilities')

    def _read(self):
        line = self.f.readline()
        if not line:
            raise QmpError('QMP connection closed')
        return json.loads(line)

    def cmd(self, name, timeout=60, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.s.settimeout(timeout)
        self.s.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            r = self._read()
            if 'event' in r:
                self.events.append(r)
                continue
            if 'error' in r:
                raise QmpError('%s: %s' % (name, r['error'].get('desc', r['error'])))
            return r.get('return')

    def wait_event(self, name, timeout=60, pred=None):
        """The first event called name (already seen or coming) for which
        pred(event) holds."""
        end = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e['event'] == name and (pred is None or pred(e)):
                    self.events.remove(e)
                    return e
            left = end - time.monotonic()
            if left <= 0:
                raise QmpError('no %s event within %d s' % (name, timeout))
            self.s.settimeout(left)
            try:
                r = self._read()
            except socket.timeout:
                continue
            if 'event' in r:
                self.events.append(r)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class VM:
    """One QEMU: TCG, q35, a shared memfd as RAM, vserial's socket on a
    vhost-user-test-device-pci (num_vqs for max_ports), the output
    directory `share` (mounted in the guest at the same path by init.sh,
    through virtiofsd; None: no virtiofs), the serial console into `log`,
    QMP at qmp_path.

    device: None (no vserial device: hot-plugged later), or a dict of
    vhost-user-test-device-pci properties added to the defaults.
    extra: more QEMU arguments. reboot: False adds -no-reboot (a guest
    reboot ends QEMU)."""

    def __init__(self, qemu, gdir, share, sockdir, log, vs_sock=None, max_ports=31, mem='256M',
                 smp=1, machine='q35', device=True, extra=(), append='', reboot=False,
                 vq_size=256, tag='q', argv_fn=None):
        self.qemu, self.gdir, self.share, self.sockdir = qemu, gdir, share, sockdir
        self.log, self.vs_sock, self.max_ports = log, vs_sock, max_ports
        self.mem, self.smp, self.machine, self.device = mem, smp, machine, device
        self.extra, self.append, self.reboot, self.vq_size = list(extra), append, reboot, vq_size
        self.argv_fn = argv_fn
        self.qmp_path = os.path.join(sockdir, tag + '.qmp')
        self.fs_sock = os.path.join(sockdir, tag + '.fs')
        self.proc = self.fsd = None
        self.qmp_conn = None
        self.rc = None
        self.live = set()

    def device_arg(self, chardev='vs', **more):
        props = dict(chardev=chardev, id='vserial', **{'virtio-id': 3},
                     num_vqs=2 * (self.max_ports + 1), config_size=12)
        if self.vq_size:
            props['vq_size'] = self.vq_size
        if isinstance(self.device, dict):
            props.update(self.device)
        props.update(more)
        return 'vhost-user-test-device-pci,' + ','.join('%s=%s' % kv for kv in props.items())

    def argv(self, device_args=True, memory=True):
        """QEMU's command line. Without device_args and memory: only what
        the guest needs around a command line that has those (README's)."""
        a = [self.qemu, '-accel', 'tcg', '-cpu', 'max', '-smp', str(self.smp),
             '-nodefaults', '-no-user-config', '-display', 'none']
        if memory:
            a += ['-m', self.mem, '-object', 'memory-backend-memfd,id=mem,size=%s,share=on' % self.mem,
                  '-machine', '%s,memory-backend=mem' % self.machine]
        a += ['-kernel', os.path.join(self.gdir, 'vmlinux'),
             '-initrd', os.path.join(self.gdir, 'initrd'),
             '-append', 'console=ttyS0 quiet panic=-1 %s%s' % (
                 'VSOUT=%s ' % self.share if self.share else '', self.append),
             '-chardev', 'file,id=con,path=%s' % self.log, '-serial', 'chardev:con',
             '-qmp', 'unix:%s,server=on,wait=off' % self.qmp_path]
        if not self.reboot:
            a.append('-no-reboot')
        if self.device and device_args:
            # Slot 3, before virtiofs (slot 16): vserial is virtio0 and its
            # ports /dev/vport0pN, as under UML.
            a += ['-chardev', 'socket,id=vs,path=%s' % self.vs_sock,
                  '-device', self.device_arg(addr='0x3')]
        if self.share:
            a += ['-chardev', 'socket,id=fs,path=%s' % self.fs_sock,
                  '-device', 'vhost-user-fs-pci,chardev=fs,tag=out,addr=0x10']
        return a + self.extra

    def start(self, timeout=20):
        for p in (self.fs_sock, self.qmp_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        if self.share:
            self.start_virtiofsd(timeout)
        argv = self.argv_fn(self) if self.argv_fn else self.argv()
        with open(self.log + '.cmd', 'a') as f:
            f.write(' '.join(argv) + '\n')
        with open(self.log + '.stderr', 'ab') as ef:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=ef, stderr=ef,
                                         start_new_session=True)
        self.live.add(self.proc)
        return self

    def start_virtiofsd(self, timeout):
        fsd = [os.path.join(self.gdir, 'virtiofsd'), '--socket-path=' + self.fs_sock,
               '-o', 'source=' + self.share, '-o', 'cache=none', '-o', 'log_level=warn']
        if os.geteuid() != 0:
            # Its sandbox (namespaces) needs root: be root in a user namespace.
            fsd = ['unshare', '--user', '--map-root-user'] + fsd
        with open(self.log + '.virtiofsd', 'ab') as lf:
            self.fsd = subprocess.Popen(fsd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                                        start_new_session=True)
        self.live.add(self.fsd)
        end = time.monotonic() + timeout
        while not listening(self.fs_sock):
            if self.fsd.poll() is not None or time.monotonic() > end:
                raise AssertionError('virtiofsd did not listen at %s (exit status %s; see %s)'
                                     % (self.fs_sock, self.fsd.poll(), self.log + '.virtiofsd'))
            time.sleep(0.02)

    def qmp(self, name, **args):
        if self.qmp_conn is None:
            self.qmp_conn = Qmp(self.qmp_path)
        return self.qmp_conn.cmd(name, **args)

    def wait(self, timeout):
        """QEMU's exit status, or None (still running) after timeout s."""
        try:
            self.rc = self.proc.wait(timeout=max(0.01, timeout))
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, how='kill'):
        """End QEMU (SIGTERM, then SIGKILL to its process group) and
        virtiofsd. Returns QEMU's exit status."""
        if self.qmp_conn:
            self.qmp_conn.close()
            self.qmp_conn = None
        if self.proc is not None:
            if self.proc.poll() is None and how == 'term':
                kill_group(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                kill_group(self.proc.pid)
            self.rc = self.proc.wait()
            kill_group(self.proc.pid)
        if self.fsd is not None:
            # It leaves on its own once QEMU has gone; if not, it is told to.
            try:
                self.fsd.wait(timeout=3)
            except subprocess.TimeoutExpired:
                kill_group(self.fsd.pid, signal.SIGTERM)
                try:
                    self.fsd.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    kill_group(self.fsd.pid)
                    self.fsd.wait()
            kill_group(self.fsd.pid)
        for p in (self.fs_sock, self.qmp_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        return self.rc


if __name__ == '__main__':
    # tests/guest/qemu/vm.py: print the QEMU the tests would use, or why
    # there is none (exit status 1).
    import sys
    try:
        print(find_qemu())
    except NoQemu as e:
        print(e)
        sys.exit(1)
