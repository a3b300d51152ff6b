#!/usr/bin/env python3
"""scripts/bench --qemu: vserial against QEMU's own virtio-serial, in the
same QEMU guest (tests/guest/qemu: Debian's kernel, TCG).

Each round boots the guest twice, once per device, in alternating order:
  A  -device virtio-serial-pci,max_ports=4 + virtserialport (in QEMU)
  B  vserial --max-ports 4 on -device vhost-user-test-device-pci
     (num_vqs=10, vq_size=128: QEMU's virtio-serial rings have 128
     entries and no property to change that)
Both: q35, the same memory-backend-memfd (share=on), -smp, the port named
org.vserial.bench with a unix socket on the host side. The guest's half is
bench/qemu_guest.c (vsbench-guest); it asks for each step over the port
and times it with CLOCK_MONOTONIC; this side answers, times guest->host
first byte to last, and takes the CPU time of QEMU and of vserial (every
thread's schedstat) from one request to the next. The guest counts its
interrupts of the device (/proc/interrupts).

Per figure: the median of A, of B, B/A of the medians, and the median of
the paired B/A (A and B of the same round). Results: a table on stdout and
the "qemu" section of bench/results.json (the rest of the file is
vsbench's and kept). --smoke: one round with small sizes, numbers only.

  bench/qemu.py --vserial build-bench/src/daemon/vserial [--rounds 5]
                [--smp 1] [--json bench/results.json] [--smoke]
  bench/qemu.py --merge OLD NEW     (put OLD's qemu section into NEW)
  bench/qemu.py --markdown          (the qemu section as a markdown table)
  bench/qemu.py --markdown-vsbench  (vsbench's results as a markdown table)
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, 'tests', 'guest', 'qemu'))
import vm as qvm  # noqa: E402

MIB = 1024 * 1024
NAME = 'org.vserial.bench'
MAX_PORTS = 4
RING = 128
FULL = dict(g2h=64 * MIB, g2h4k=16 * MIB, h2g=32 * MIB, rtt=5000)
SMOKE = dict(g2h=4 * MIB, g2h4k=1 * MIB, h2g=2 * MIB, rtt=200)


def cpu_ns(pid, vcpu=False):
    """CPU time of every thread of pid so far (ns), 0 once it is gone;
    vcpu: of QEMU's vCPU threads only (named "CPU n/TCG")."""
    total = 0
    try:
        for t in os.listdir('/proc/%d/task' % pid):
            try:
                if vcpu:
                    with open('/proc/%d/task/%s/comm' % (pid, t)) as f:
                        if not f.read().startswith('CPU '):
                            continue
                with open('/proc/%d/task/%s/schedstat' % (pid, t)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return total


class Run:
    """One boot: A or B, the host side of the protocol."""

    def __init__(self, opts, mode, rnd, sizes):
        self.opts, self.mode, self.rnd, self.sizes = opts, mode, rnd, sizes
        self.dir = tempfile.mkdtemp(prefix='vsbq-', dir=opts.tmp)
        self.psock = os.path.join(self.dir, 'p.sock')
        self.daemon = self.vm = self.s = self.ctl = None
        self.res = {'mode': mode, 'round': rnd}

    def start(self):
        append = 'VSBENCH=name=%s,%s' % (NAME, ','.join('%s=%d' % kv for kv in self.sizes.items()))
        # Named threads ("CPU 0/TCG"): the vCPU's CPU time is told apart.
        kw = dict(mem='512M', smp=self.opts.smp, max_ports=MAX_PORTS, vq_size=RING,
                  append=append, tag='b', extra=['-name', 'vsbench,debug-threads=on'])
        if self.mode == 'B':
            vsock = os.path.join(self.dir, 'vs.sock')
            self.ctl_path = os.path.join(self.dir, 'ctl.sock')
            with open(os.path.join(self.dir, 'daemon.log'), 'wb') as log:
                self.daemon = subprocess.Popen(
                    [self.opts.vserial, '--socket', vsock, '--max-ports', str(MAX_PORTS),
                     '--control', self.ctl_path,
                     '--port', 'id=1,name=%s,backend=unix,path=%s' % (NAME, self.psock)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            self.wait_for(lambda: qvm.listening(vsock), 'vserial to listen')
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.wait_for(lambda: qvm.listening(self.psock), 'the port socket')
            self.s.connect(self.psock)
            kw.update(vs_sock=vsock)
        else:
            kw.update(device=None, extra=kw['extra'] + [
                '-device', 'virtio-serial-pci,max_ports=%d,addr=0x3' % MAX_PORTS,
                '-chardev', 'socket,id=p1,path=%s,server=on,wait=off' % self.psock,
                '-device', 'virtserialport,chardev=p1,name=%s,nr=1' % NAME])
        self.vm = qvm.VM(self.opts.qemu, self.opts.guest, None, self.dir,
                         os.path.join(self.dir, 'qemu.log'), **kw)
        self.vm.start()
        if self.mode == 'A':
            self.wait_for(lambda: qvm.listening(self.psock), "QEMU's port socket")
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.connect(self.psock)
        self.s.settimeout(self.opts.timeout)
        self.f = self.s.makefile('rb', buffering=0)

    def wait_for(self, cond, what, timeout=30):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end or (self.vm and not self.vm.running()):
                raise RuntimeError('%s %s: no %s' % (self.mode, self.rnd, what))
            time.sleep(0.02)

    def cpu(self):
        return (cpu_ns(self.vm.proc.pid), cpu_ns(self.daemon.pid) if self.daemon else 0,
                cpu_ns(self.vm.proc.pid, vcpu=True))

    def counters(self):
        """B: vserial's loop wake-ups and the device's queue runs (kicks
        and scheduled runs) so far, from its control socket; A: None."""
        if not self.daemon:
            return None
        if not self.ctl:
            self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.ctl.connect(self.ctl_path)
            self.ctl.settimeout(10)
            self.ctl_f = self.ctl.makefile('rb', buffering=0)
        self.ctl.sendall(b'{"cmd":"stats"}\n')
        st = json.loads(self.ctl_f.readline())['stats']
        pace = st['device']['pacing']
        return (st['loop']['wakeups'], st['device']['kicks'], pace['notifies'], pace['batch_timeouts'])

    def line(self):
        buf = bytearray()
        while not buf.endswith(b'\n'):
            d = self.s.recv(1)
            if not d:
                raise RuntimeError('%s %s: the guest closed the port (see %s)' % (self.mode, self.rnd, self.dir))
            buf += d
        return buf.decode().split()

    def recv_n(self, n):
        buf = bytearray(256 * 1024)
        mv = memoryview(buf)
        got = 0
        t0 = t1 = None
        while got < n:
            k = self.s.recv_into(mv, min(len(buf), n - got))
            if not k:
                raise RuntimeError('%s %s: end of file after %d of %d bytes' % (self.mode, self.rnd, got, n))
            t1 = time.monotonic()
            t0 = t0 or t1
            got += k
        return t1 - t0

    def serve(self):
        """Answer the guest until its RESULT line."""
        step, c0, k0 = None, None, None
        while True:
            words = self.line()
            c, k = self.cpu(), self.counters()
            if step:
                self.res['cpu_%s' % step] = [b - a for a, b in zip(c0, c)]
                if k:
                    self.res['vs_%s' % step] = [b - a for a, b in zip(k0, k)]
            step, c0, k0 = words[0].lower(), c, k
            if words[0] == 'G2H':
                n, w = int(words[1]), int(words[2])
                step = 'g2h' if w > 4096 else 'g2h4k'
                self.s.sendall(b'GO\n')
                self.res['%s_host_s' % step] = self.recv_n(n)
                self.s.sendall(b'DONE\n')
            elif words[0] == 'H2G':
                data = bytes(64 * 1024)
                n = int(words[1])
                for off in range(0, n, len(data)):
                    self.s.sendall(data[:min(len(data), n - off)])
            elif words[0] == 'RTT':
                n, size = int(words[1]), int(words[2])
                self.s.sendall(b'GO\n')
                buf = bytearray(size)
                for _ in range(n):
                    mv, got = memoryview(buf), 0
                    while got < size:
                        k = self.s.recv_into(mv[got:], size - got)
                        if not k:
                            raise RuntimeError('%s %s: end of file in the round trips' % (self.mode, self.rnd))
                        got += k
                    self.s.sendall(buf)
            elif words[0] == 'RESULT':
                for kv in words[1:]:
                    k, v = kv.split('=', 1)
                    self.res[k] = float(v)
                return
            else:
                raise RuntimeError('%s %s: unexpected %r from the guest' % (self.mode, self.rnd, words))

    def stop(self, abort=False):
        """QEMU powers off after the last step; abort: kill it now."""
        if self.s:
            self.s.close()
        if self.ctl:
            self.ctl.close()
        if self.vm:
            if not abort and self.vm.wait(30) is None:
                self.res['error'] = 'QEMU still running 30 s after the last step'
            self.vm.stop()
        if self.daemon:
            qvm.kill_group(self.daemon.pid, signal.SIGTERM)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                qvm.kill_group(self.daemon.pid)
                self.daemon.wait()

    def run(self):
        try:
            self.start()
            self.serve()
        except BaseException:
            self.stop(abort=True)
            raise
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.res


# ------------------------------------------------------------- figures

def figures(res, sizes):
    """{figure: (unit, value)} of one run."""
    f = {}
    mib = {k: sizes[k] / MIB for k in ('g2h', 'g2h4k', 'h2g')}
    for k, what in (('g2h', 'guest->host, 64 KiB writes'), ('g2h4k', 'guest->host, 4 KiB writes')):
        f['%s (guest: first to last write)' % what] = ('MB/s', sizes[k] / 1e6 / res['%s_s' % k])
        f['%s (host: first to last byte)' % what] = ('MB/s', sizes[k] / 1e6 / res['%s_host_s' % k])
    f['host->guest, 64 KiB reads (guest: first to last byte)'] = ('MB/s', sizes['h2g'] / 1e6 / res['h2g_s'])
    f['64 B round trip, p50'] = ('us', res['rtt_p50_us'])
    f['64 B round trip, p99'] = ('us', res['rtt_p99_us'])
    f['64 B round trips'] = ('msgs/s', res['rtt_per_s'])
    for k, what in (('g2h', 'guest->host 64 KiB'), ('g2h4k', 'guest->host 4 KiB'), ('h2g', 'host->guest')):
        q, v, vcpu = res['cpu_%s' % k]
        f['CPU per MiB, %s: QEMU + vserial' % what] = ('us/MiB', (q + v) / 1e3 / mib[k])
        f['CPU per MiB, %s: vserial' % what] = ('us/MiB', v / 1e3 / mib[k] if res['mode'] == 'B' else None)
        f['CPU per MiB, %s: the guest vCPU thread' % what] = ('us/MiB', vcpu / 1e3 / mib[k])
        # The vCPU's CPU time against the transfer's time: near 1, the
        # emulated guest is what sets the rate.
        secs = res['%s_host_s' % k] if k != 'h2g' else res['h2g_s']
        f['guest vCPU busy share, %s' % what] = ('ratio', vcpu / 1e9 / secs if secs else None)
    q, v, _ = res['cpu_rtt']
    f['CPU per round trip: QEMU + vserial'] = ('us', (q + v) / 1e3 / sizes['rtt'])
    f['CPU per round trip: vserial'] = ('us', v / 1e3 / sizes['rtt'] if res['mode'] == 'B' else None)
    for k, what in (('g2h', 'guest->host 64 KiB'), ('g2h4k', 'guest->host 4 KiB'), ('h2g', 'host->guest')):
        f['guest interrupts per MiB, %s' % what] = ('/MiB', res['%s_irq' % k] / mib[k])
    f['guest interrupts per round trip'] = ('/rt', res['rtt_irq'] / sizes['rtt'])
    names = ('vserial wake-ups', 'vserial queue runs (kicks)', 'vserial notifications',
             'vserial receive batches the timer ended')
    for k, what in (('g2h', 'guest->host 64 KiB'), ('g2h4k', 'guest->host 4 KiB'), ('h2g', 'host->guest'),
                    ('rtt', 'round trip')):
        per, unit = (sizes['rtt'], '/rt') if k == 'rtt' else (mib.get(k), '/MiB')
        vals = res.get('vs_%s' % k) or [None] * len(names)
        for name, v in zip(names, vals):
            if name.startswith('vserial receive') and k != 'h2g':
                continue        # only host->guest waits for receive buffers
            f['%s per %s, %s' % (name, unit[1:], what)] = (unit, v / per if v is not None else None)
    return f


def summarize(runs, sizes):
    rows = []
    per = {m: [(r['round'], figures(r, sizes)) for r in runs if r['mode'] == m] for m in 'AB'}
    names = list(per['B'][0][1]) if per['B'] else []
    for name in names:
        unit = per['B'][0][1][name][0]
        a = {rnd: f[name][1] for rnd, f in per['A'] if f[name][1] is not None}
        b = {rnd: f[name][1] for rnd, f in per['B'] if f[name][1] is not None}
        ma = statistics.median(a.values()) if a else None
        mb = statistics.median(b.values()) if b else None
        paired = [b[r] / a[r] for r in b if r in a and a[r]]
        rows.append({'figure': name, 'unit': unit, 'a': ma, 'b': mb,
                     'b_over_a': mb / ma if ma and mb is not None else None,
                     'paired_b_over_a': statistics.median(paired) if paired else None,
                     'a_runs': [a[r] for r in sorted(a)], 'b_runs': [b[r] for r in sorted(b)]})
    return rows


def fmt(v, width):
    if v is None:
        return '-'.rjust(width)
    if abs(v) >= 100:
        return ('%.0f' % v).rjust(width)
    return ('%.3g' % v).rjust(width)


def table(rows):
    out = ['%-60s %-7s %9s %9s %6s %8s' % ('figure', 'unit', 'A', 'B', 'B/A', 'paired')]
    for r in rows:
        out.append('%-60s %-7s %s %s %s %s' % (r['figure'], r['unit'], fmt(r['a'], 9), fmt(r['b'], 9),
                                               fmt(r['b_over_a'], 6), fmt(r['paired_b_over_a'], 8)))
    return '\n'.join(out)


# ---------------------------------------------------------- results.json

def dump(data):
    """vsbench's layout: one top-level key a line, one result a line."""
    out = ['{']
    keys = list(data)
    for i, k in enumerate(keys):
        v = data[k]
        end = ',' if i < len(keys) - 1 else ''
        if isinstance(v, dict) and any(isinstance(x, list) for x in v.values()):
            out.append('  %s: {' % json.dumps(k))
            sub = list(v)
            for j, s in enumerate(sub):
                e2 = ',' if j < len(sub) - 1 else ''
                if isinstance(v[s], list):
                    out.append('    %s: [' % json.dumps(s))
                    out += ['      %s%s' % (json.dumps(x), ',' if n < len(v[s]) - 1 else '')
                            for n, x in enumerate(v[s])]
                    out.append('    ]%s' % e2)
                else:
                    out.append('    %s: %s%s' % (json.dumps(s), json.dumps(v[s]), e2))
            out.append('  }%s' % end)
        elif isinstance(v, list):
            out.append('  %s: [' % json.dumps(k))
            out += ['    %s%s' % (json.dumps(x), ',' if n < len(v) - 1 else '') for n, x in enumerate(v)]
            out.append('  ]%s' % end)
        else:
            out.append('  %s: %s%s' % (json.dumps(k), json.dumps(v), end))
    out.append('}')
    return '\n'.join(out) + '\n'


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_section(path, section):
    data = load(path)
    data['qemu'] = section
    with open(path + '.tmp', 'w') as f:
        f.write(dump(data))
    os.rename(path + '.tmp', path)


def merge(old, new):
    """After vsbench rewrote NEW: OLD's qemu section goes back in."""
    sec = load(old).get('qemu')
    if sec is not None:
        write_section(new, sec)


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def rounded(v):
    """6 significant digits: the file stays readable."""
    if isinstance(v, float):
        return float('%.6g' % v)
    if isinstance(v, list):
        return [rounded(x) for x in v]
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    return v


def md_table(header, rows):
    """A markdown table: the header's cells, then each row's."""
    return '\n'.join(['| %s |' % ' | '.join(header), '|%s' % ('---|' * len(header))] +
                     ['| %s |' % ' | '.join(r) for r in rows])


def ratio(v):
    return '%.2fx' % v if v else '-'


def markdown(path):
    """The qemu section of path as the table of docs/performance.md."""
    sec = load(path).get('qemu')
    if not sec:
        return 'no qemu section in %s' % path
    return md_table(
        ('figure', 'unit', 'A: QEMU virtio-serial', 'B: vserial', 'B/A (medians)', 'B/A (paired, median)'),
        [(r['figure'], r['unit'], fmt(r['a'], 0).strip(), fmt(r['b'], 0).strip(),
          ratio(r['b_over_a']), ratio(r['paired_b_over_a'])) for r in sec['results']])


def vsbench_markdown(path):
    """vsbench's results in path (scripts/bench) as the table of docs/performance.md."""
    res = load(path).get('results')
    if not res:
        return 'no vsbench results in %s' % path
    rows = []
    for r in res:
        base = r.get('baseline') or {}
        bval = '%s: %s %s' % (base['case'], fmt(base['value'], 0).strip(), r['unit']) if base else '-'
        verdict = '' if r.get('target') in (None, '-') else ('met' if r.get('met') else '**missed**')
        rows.append((r['group'], r['case'], '%s %s' % (fmt(r['value'], 0).strip(), r['unit']), bval,
                     ratio(r.get('ratio')), r.get('target') or '-', verdict))
    return md_table(('group', 'case', 'value', 'baseline (same run)', 'ratio', 'target', 'verdict'), rows)


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--vserial', default=os.path.join(TOP, 'build-bench/src/daemon/vserial'))
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--smp', type=int, default=1)
    ap.add_argument('--smoke', action='store_true', help='one round, small sizes')
    ap.add_argument('--json', default=os.path.join(TOP, 'bench', 'results.json'))
    ap.add_argument('--timeout', type=float, default=120, help='seconds per step')
    ap.add_argument('--tmp', default=None)
    ap.add_argument('--merge', nargs=2, metavar=('OLD', 'NEW'))
    ap.add_argument('--markdown-vsbench', action='store_true',
                    help="print --json's vsbench results as a markdown table, run nothing")
    ap.add_argument('--markdown', action='store_true',
                    help="print --json's qemu section as a markdown table, run nothing")
    opts = ap.parse_args()
    if opts.merge:
        merge(*opts.merge)
        return 0
    if opts.markdown:
        print(markdown(opts.json))
        return 0
    if opts.markdown_vsbench:
        print(vsbench_markdown(opts.json))
        return 0
    # Stopped from outside (a timeout): the running Run kills its QEMU and
    # vserial on the way out.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _f: sys.exit(128 + signum))
    try:
        opts.qemu = qvm.find_qemu()
    except qvm.NoQemu as e:
        print('bench --qemu: %s' % e, file=sys.stderr)
        return 1
    opts.guest = qvm.guest()
    opts.vserial = os.path.abspath(opts.vserial)
    sizes = SMOKE if opts.smoke else FULL
    rounds = 1 if opts.smoke else opts.rounds
    t0, load0 = time.time(), loadavg()
    runs = []
    for rnd in range(1, rounds + 1):
        for mode in ('AB' if rnd % 2 else 'BA'):
            r = Run(opts, mode, rnd, sizes).run()
            print('round %d %s: %s' % (rnd, mode, ' '.join(
                '%s=%.4g' % (k, v) for k, v in r.items() if isinstance(v, float))), flush=True)
            runs.append(r)
    rows = summarize(runs, sizes)
    ver = subprocess.run([opts.qemu, '--version'], capture_output=True, text=True).stdout.split('\n')[0]
    head = ('%s, TCG, q35, -smp %d, 512 MiB memfd, rings of %d, %d round%s; A = virtio-serial-pci + '
            'virtserialport, B = vserial; load %s -> %s'
            % (ver, opts.smp, RING, rounds, 's' if rounds > 1 else '', load0, loadavg()))
    print(head)
    print(table(rows))
    section = {
        'machine': {'cpu': cpu_model(), 'cpus': os.cpu_count(),
                    'kernel': platform.release(), 'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t0)),
                    'loadavg_start': load0, 'loadavg_end': loadavg()},
        'mode': 'smoke' if opts.smoke else 'full',
        'params': {'qemu': ver, 'smp': opts.smp, 'ring': RING, 'max_ports': MAX_PORTS,
                   'rounds': rounds, 'sizes': sizes, 'wall_s': round(time.time() - t0, 1)},
        'results': rounded(rows),
    }
    write_section(opts.json, section)
    print('wrote the qemu section of %s' % opts.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
