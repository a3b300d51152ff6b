"""Real-guest cases for the host side of issue 13: history, the log tee,
backend=tcp-connect, backend=fd (and socket activation's named sockets),
backend=journal and the Prometheus text of `vserialctl stats`.

Loaded by run.py, which runs CASES. Guest scripts are tests/guest/cases/*.sh;
history_clients and tee_stalled also run under QEMU (qemu_cases.SHARED).

  history_clients   history=16K: the history is the last 16K the guest wrote
                    after 3 host clients came and went, and after a second
                    boot (a VMM reconnect) wrote more; --bytes N the last N
  tee_stalled       logfile=: the file equals the guest's output byte for
                    byte while the unix client got it too, also while that
                    client stalled (the file then holds exactly what the
                    device consumed); logfile-timestamps=on stamps every
                    line start, also of lines written in pieces
  tcp_connect       backend=tcp-connect: the listener starts late, the
                    daemon retries and connects; 1 MiB each way; the
                    listener restarts, the daemon connects again, 1 MiB
                    each way again
  fd_backends       backend=fd: a socketpair end passed as fd=N, and a
                    listening socket passed by socket activation named
                    like its port (LISTEN_FDNAMES, with the VMM's socket
                    passed the same way): 256 KiB each way on each
  journal_entries   backend=journal, to a systemd-journald of the case's
                    own (tests/ctl/journald_ns.sh): one entry per line with
                    the VSERIAL_* fields, read back with journalctl
  stats_prometheus  vserialctl stats --prometheus while ports move data and
                    one is held back: it parses (a strict parser), and the
                    counters are what the guest did; the text is kept as
                    stats.prom
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

from helpers import (KIB, MIB, Case, CtlCase, both_ways, connect, ctl, det_bytes, drop_if_passed,
                     free_tcp_port, read_file, recv_exact, send_all, sha256, touch,
                     wait_guest_file, wait_until, write_out, write_rounds)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'ctl'))
import prometheus_text  # noqa: E402

JOURNALD_NS = os.path.join(os.path.dirname(HERE), 'ctl', 'journald_ns.sh')
STAMP = re.compile(rb'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ')


def port_stats(ctx, pid):
    st = json.loads(ctl(ctx, 'stats', '--json'))
    return [p for p in st['ports'] if p['id'] == pid][0]


def prometheus(ctx, name):
    """stats --prometheus, kept as NAME, parsed strictly."""
    text = ctl(ctx, 'stats', '--prometheus')
    with open(ctx.path(name), 'w') as f:
        f.write(text)
    try:
        return prometheus_text.parse(text)
    except prometheus_text.ParseError as e:
        raise AssertionError('stats --prometheus does not parse: %s' % e) from None


def sample(fams, name, port=None):
    for labels, v in fams[name].samples:
        if port is None or labels.get('port') == str(port):
            return v
    raise AssertionError('no %s sample for port %s' % (name, port))

# ------------------------------------------------------------ history


class HistoryClients(CtlCase):
    name = 'history_clients'
    script = 'history.sh'
    boots = 2
    HIST = 16 * KIB
    PART = 40 * KIB
    PORT = 'org.vserial.hist'
    qemu_cost = 2

    def ports(self, ctx):
        return ['id=1,name=%s,history=16K,backend=unix,path=%s' % (self.PORT, ctx.sock('p1.sock'))]

    def prepare(self, ctx):
        parts = [det_bytes(300 + k, self.PART) for k in (1, 2, 3)] + [det_bytes(304, 5000)]
        for k, p in enumerate(parts, 1):
            write_out(ctx, 'h.part.%d' % k, p)
        ctx.data['parts'] = parts
        ctx.data['out1'] = b''.join(parts[:3])
        ctx.data['out2'] = b''.join(parts)

    def taken(self, ctx, n):
        wait_until(ctx, lambda: port_stats(ctx, 1)['from_guest'] >= n,
                   'the port to take %d bytes' % n)

    def client(self, ctx, k, part):
        s = connect(ctx, ctx.sock('p1.sock'))
        wait_until(ctx, lambda: port_stats(ctx, 1)['clients'] == 1, 'client %d' % k)
        touch(ctx, 'h.conn.%d' % k)
        got, _, _ = recv_exact(ctx, s, len(part))
        ctx.data['client%d' % k] = got == part
        s.close()
        wait_until(ctx, lambda: port_stats(ctx, 1)['clients'] == 0, 'client %d gone' % k)
        touch(ctx, 'h.left.%d' % k)

    def host(self, ctx):
        for k, part in enumerate(ctx.data['parts'][:3], 1):
            self.client(ctx, k, part)
        wait_guest_file(ctx, 'g.done.1')
        self.taken(ctx, len(ctx.data['out1']))
        ctx.data['hist1'] = ctl(ctx, 'history', self.PORT, binary=True)
        ctx.data['bytes1'] = ctl(ctx, 'history', self.PORT, '--bytes', '1000', binary=True)
        # Boot 2 is another VMM connection: the history is still there
        # when it starts, and goes on.
        wait_until(ctx, lambda: ctx.data.get('boot') == 2, 'the second boot', 120)
        ctx.data['hist1b'] = ctl(ctx, 'history', self.PORT, binary=True)
        self.client(ctx, 4, ctx.data['parts'][3])
        wait_guest_file(ctx, 'g.done.2', 240)
        self.taken(ctx, len(ctx.data['out2']))
        ctx.data['hist2'] = ctl(ctx, 'history', '1', binary=True)
        fams = prometheus(ctx, 'stats.prom')
        ctx.data['vmm_connects'] = sample(fams, 'vserial_vmm_connects_total')
        ctx.data['resets'] = sample(fams, 'vserial_guest_resets_total')
        ctx.data['hist_bytes'] = sample(fams, 'vserial_port_history_bytes', 1)

    def verify(self, ctx):
        for k in (1, 2, 3, 4):
            ctx.check(ctx.data.get('client%d' % k), 'client %d did not get part %d' % (k, k))
        out1, out2 = ctx.data['out1'], ctx.data['out2']
        for key, want, what in (('hist1', out1[-self.HIST:], 'after 3 clients came and went'),
                                ('bytes1', out1[-1000:], '--bytes 1000'),
                                ('hist1b', out1[-self.HIST:], 'when the second VMM came'),
                                ('hist2', out2[-self.HIST:], 'after the VMM reconnect')):
            got = ctx.data.get(key, b'')
            ctx.check(got == want, 'history %s: %d bytes (sha256 %s), want the last %d (sha256 %s)'
                      % (what, len(got), sha256(got), len(want), sha256(want)))
        ctx.check(ctx.data.get('vmm_connects') == 2 and ctx.data.get('resets', 0) >= 2 and
                  ctx.data.get('hist_bytes') == self.HIST,
                  'metrics: %d VMM connects, %s guest resets, history %s bytes'
                  % (ctx.data.get('vmm_connects', -1), ctx.data.get('resets'),
                     ctx.data.get('hist_bytes')))

# ------------------------------------------------------------ tee


class TeeStalled(CtlCase):
    name = 'tee_stalled'
    script = 'tee_stalled.sh'
    SIZE = 12 * MIB         # more than the guest's ring (8 MiB) and the port's buffer
    FIRST = 256 * KIB
    LINES = b'first line\nsecond line\nthird line\n\nfourth\nno newline at the end'

    def ports(self, ctx):
        return ['id=1,name=org.vserial.tee,backend=unix,path=%s,logfile=%s,buffer=64K'
                % (ctx.sock('p1.sock'), ctx.path('tee.log')),
                'id=2,name=org.vserial.ts,backend=null,logfile=%s,logfile-timestamps=on'
                % ctx.path('ts.log')]

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(310, self.SIZE)
        write_out(ctx, 'up.src', ctx.data['up'])
        ctx.data['t0'] = time.time()

    def host(self, ctx):
        s = connect(ctx, ctx.sock('p1.sock'))
        got, _, _ = recv_exact(ctx, s, self.FIRST)
        # Stalled: the port holds the guest back; the log has exactly
        # what the device took, no more, no less.
        wait_until(ctx, lambda: port_stats(ctx, 1)['throttled'], 'port 1 held back')
        time.sleep(1.0)
        st = port_stats(ctx, 1)
        log = read_bytes(ctx.path('tee.log'))
        ctx.data['stalled'] = (st['throttled'], st['from_guest'], len(log),
                               log == ctx.data['up'][:len(log)])
        rest, _, _ = recv_exact(ctx, s, self.SIZE - self.FIRST)
        ctx.data['got'] = got + rest
        send_all(ctx, s, ('ACK %s\n' % sha256(ctx.data['got'])).encode())
        wait_guest_file(ctx, 'g.done')
        wait_until(ctx, lambda: port_stats(ctx, 2)['from_guest'] == len(self.LINES),
                   'port 2 took the lines')
        ctx.data['st1'] = port_stats(ctx, 1)
        s.close()

    def verify(self, ctx):
        up = ctx.data['up']
        got = ctx.data.get('got', b'')
        log = read_bytes(ctx.path('tee.log'))
        ctx.check(got == up, 'the unix client got %d bytes (sha256 %s), want %d (sha256 %s)'
                  % (len(got), sha256(got), len(up), sha256(up)))
        ctx.check(log == up, 'tee.log: %d bytes (sha256 %s), want the guest\'s %d (sha256 %s)'
                  % (len(log), sha256(log), len(up), sha256(up)))
        thr, taken, n, prefix = ctx.data.get('stalled', (False, -1, -2, False))
        ctx.check(thr and n == taken and prefix and n < len(up),
                  'while the client stalled: throttled %s, the device took %d, the log had %d '
                  'bytes (a prefix of the output: %s)' % (thr, taken, n, prefix))
        st = ctx.data.get('st1', {})
        ctx.check(st.get('logfile_written') == len(up) and st.get('logfile_lost') == 0 and
                  st.get('throttled_seconds', 0) > 0.5,
                  'port 1 counters: %s' % st)
        ts = read_bytes(ctx.path('ts.log'))
        plain, stamps = b'', []
        lines = ts.split(b'\n')
        if ts.endswith(b'\n'):
            lines.pop()
        for line in lines:
            m = STAMP.match(line)
            ctx.check(m, 'ts.log line without a timestamp: %r' % line)
            if not m:
                break
            stamps.append(line[:26])
            plain += line[m.end():] + b'\n'
        plain = plain[:-1] if not ts.endswith(b'\n') else plain
        ctx.check(plain == self.LINES, 'ts.log without its stamps: %r, want %r' % (plain, self.LINES))
        ctx.check(stamps == sorted(stamps) and len(stamps) == 6,
                  'timestamps: %s' % [s.decode() for s in stamps])
        drop_if_passed(ctx, 'up.src', 'tee.log')


def read_bytes(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return b''

# ------------------------------------------------------------ tcp-connect


def tcp_listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', port))
    s.listen(1)
    s.settimeout(30)
    return s


class TcpConnect(CtlCase):
    name = 'tcp_connect'
    script = 'tcp_connect.sh'
    SIZE = 1 * MIB

    def prepare(self, ctx):
        ctx.data['port'] = free_tcp_port()
        write_rounds(ctx, 320, self.SIZE, 330, self.SIZE)

    def ports(self, ctx):
        return ['id=1,name=org.vserial.tcpc,backend=tcp-connect,port=%d' % ctx.data['port']]

    def env(self, ctx):
        return {'DOWN': self.SIZE, 'EXPECT1': sha256(ctx.data['down1']),
                'EXPECT2': sha256(ctx.data['down2'])}

    def host(self, ctx):
        wait_until(ctx, lambda: os.path.exists(ctx.sock('ctl.sock')), 'the control socket')
        for r in (1, 2):
            touch(ctx, 'h.round.%d' % r)
            # Round 1: nobody listens for a while (the daemon retries);
            # round 2: the listener restarts.
            time.sleep(1.0)
            ls = tcp_listener(ctx.data['port'])
            s, _ = ls.accept()
            s.setblocking(False)
            got, sent = both_ways(ctx, s, ctx.data['down%d' % r], self.SIZE)
            ctx.data['round%d' % r] = (got == ctx.data['up%d' % r], sent)
            s.setblocking(True)
            s.sendall(('ACK-%d %s\n' % (r, sha256(got))).encode())
            wait_guest_file(ctx, 'g.round.%d' % r)
            s.close()
            ls.close()
            wait_until(ctx, lambda: not port_stats(ctx, 1)['clients'], 'the disconnect %d' % r)
        ctx.data['st'] = port_stats(ctx, 1)

    def verify(self, ctx):
        for r in (1, 2):
            ok, sent = ctx.data.get('round%d' % r, (False, 0))
            ctx.check(ok and sent == self.SIZE, 'round %d: the host got the guest\'s bytes: %s, '
                      'sent %d of %d' % (r, ok, sent, self.SIZE))
        st = ctx.data.get('st', {})
        ctx.check(st.get('host_connects') == 2, 'connects: %s' % st)
        ctx.check('TCP connect to 1 port only' in read_file(ctx.path('daemon.log')),
                  'the sandbox does not confine TCP connect to the port')
        drop_if_passed(ctx, 'up.1', 'up.2')

# ------------------------------------------------------------ fd


class FdBackends(Case):
    name = 'fd_backends'
    script = 'fd_backends.sh'
    SIZE = 256 * KIB

    def prepare(self, ctx):
        import fcntl
        pair = socket.socketpair()
        vs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        vs.bind(ctx.sock('vhost.sock'))
        vs.listen(1)
        ps = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ps.bind(ctx.sock('act.sock'))
        ps.listen(1)
        # Numbers clear of 3 and 4, where the wrapper puts the passed sockets.
        ctx.data['fds'] = [fcntl.fcntl(x.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)
                           for x in (pair[0], vs, ps)]
        ctx.data['peer'] = pair[1]
        for x in (pair[0], vs, ps):
            x.close()
        write_rounds(ctx, 340, self.SIZE, 350, self.SIZE)

    def daemon_pass_fds(self, ctx):
        return tuple(ctx.data['fds'])

    def daemon_argv(self, ctx, vserial):
        fd, vs, ps = ctx.data['fds']
        # As systemd: the sockets at 3 and 4, LISTEN_PID the daemon's.
        return ['bash', '-c', 'export LISTEN_PID=$$ LISTEN_FDS=2 '
                'LISTEN_FDNAMES=vserial@t.socket:org.vserial.act; '
                'exec "$@" 3<&%d 4<&%d %d<&- %d<&-' % (vs, ps, vs, ps),
                'bash', vserial, '--socket', ctx.sock('vhost.sock'), '--log-level',
                ctx.opts.log_level,
                '--port', 'id=1,name=org.vserial.fdn,backend=fd,fd=%d' % fd,
                '--port', 'id=2,name=org.vserial.act,backend=fd']

    def env(self, ctx):
        return {'DOWN': self.SIZE, 'EXPECT1': sha256(ctx.data['down1']),
                'EXPECT2': sha256(ctx.data['down2'])}

    def host(self, ctx):
        b = ctx.data['peer']
        for fd in ctx.data['fds']:
            os.close(fd)    # the daemon has them
        for n in (1, 2):
            if n == 1:
                s = b
            else:
                s = connect(ctx, ctx.sock('act.sock'))
            s.setblocking(False)
            got, sent = both_ways(ctx, s, ctx.data['down%d' % n], self.SIZE)
            ctx.data['port%d' % n] = (got == ctx.data['up%d' % n], sent)
            s.setblocking(True)
            s.sendall(('ACK %s\n' % sha256(got)).encode())
            if n == 2:
                wait_guest_file(ctx, 'g.done')
                s.close()
        b.close()

    def verify(self, ctx):
        for n, what in ((1, 'fd=N (a socketpair)'), (2, 'LISTEN_FDNAMES')):
            ok, sent = ctx.data.get('port%d' % n, (False, 0))
            ctx.check(ok and sent == self.SIZE, 'port %d, %s: the host got the guest\'s bytes: '
                      '%s, sent %d of %d' % (n, what, ok, sent, self.SIZE))
        log = read_file(ctx.path('daemon.log'))
        ctx.check('passed as fd 4' in log and 'serving the socket passed by systemd' in log,
                  'the daemon log does not say it serves the passed sockets')
        drop_if_passed(ctx, 'up.1', 'up.2')

# ------------------------------------------------------------ journal


class JournalEntries(CtlCase):
    name = 'journal_entries'
    script = 'journal.sh'
    NLINES = 1000

    def prepare(self, ctx):
        lines = [b'line %04d of the guest %s' % (i, det_bytes(i, 8).hex().encode())
                 for i in range(self.NLINES)]
        text = bytearray()
        for i, ln in enumerate(lines):
            text += ln + (b'\r\n' if i % 3 == 0 else b'\n')
            if i % 100 == 0:
                text += b'\n'           # empty lines: no entry
        text += b'X' * 6000 + b'\n'     # cut at 4096
        write_out(ctx, 'j.text', text)
        ctx.data['want'] = [ln.decode() for ln in lines] + ['X' * 4096, 'X' * 1904, 'login: ']
        ctx.data['jdir'] = ctx.path('journal')
        os.makedirs(ctx.data['jdir'])

    def ports(self, ctx):
        return ['id=0,console,backend=journal',
                'id=1,name=org.vserial.journal,backend=journal,journal-priority=notice']

    def daemon_argv(self, ctx, vserial):
        argv = [JOURNALD_NS, ctx.data['jdir'], vserial, '--socket', ctx.sock('vhost.sock'),
                '--log-level', ctx.opts.log_level, '--instance', 'vm-journal']
        for p in self.ports(ctx):
            argv += ['--port', p]
        return argv + self.daemon_args(ctx)

    def host(self, ctx):
        wait_guest_file(ctx, 'g.done')
        want = len(ctx.data['want'])
        try:
            wait_until(ctx, lambda: port_stats(ctx, 1)['journal_entries'] == want and
                       port_stats(ctx, 0)['journal_entries'] == 1,
                       '%d journal entries' % want, 30)
        finally:
            ctx.data['st'] = port_stats(ctx, 1)
            touch(ctx, 'h.done')

    def verify(self, ctx):
        jdir = os.path.join(ctx.data['jdir'], 'run-log', 'journal')
        r = subprocess.run(['journalctl', '--directory', jdir, '-o', 'json', '--all',
                            '--no-pager'], capture_output=True, text=True, timeout=60)
        ctx.check(r.returncode == 0, 'journalctl: %s' % r.stderr.strip())
        ents = [json.loads(ln) for ln in r.stdout.splitlines()]
        mine = [e for e in ents if e.get('VSERIAL_INSTANCE') == 'vm-journal' and
                'VSERIAL_EVENT' not in e]
        p1 = [e for e in mine if e.get('VSERIAL_PORT') == '1']
        msgs = [e.get('MESSAGE') for e in p1]
        ctx.check(msgs == ctx.data['want'], 'port 1: %d entries, want %d; first difference: %s'
                  % (len(msgs), len(ctx.data['want']),
                     next(((i, a, b) for i, (a, b) in enumerate(zip(msgs, ctx.data['want']))
                           if a != b), None)))
        bad = [e for e in p1 if (e.get('PRIORITY'), e.get('SYSLOG_IDENTIFIER'),
                                 e.get('VSERIAL_PORT_NAME'), e.get('_TRANSPORT')) !=
               ('5', 'org.vserial.journal', 'org.vserial.journal', 'journal')]
        ctx.check(not bad, 'port 1 entries with other fields: %s' % bad[:2])
        p0 = [e for e in mine if e.get('VSERIAL_PORT') == '0']
        ctx.check([(e.get('MESSAGE'), e.get('SYSLOG_IDENTIFIER'), e.get('PRIORITY')) for e in p0] ==
                  [('hvc0 says hello', 'console', '6')], 'console entries: %s' % p0)
        ctx.info.append('%d journal entries read back with journalctl --directory; %s sends '
                        'journald did not take at once (retried)'
                        % (len(mine), ctx.data.get('st', {}).get('journal_retries')))
        if not ctx.errors:
            shutil.rmtree(ctx.data['jdir'], ignore_errors=True)

# ------------------------------------------------------------ metrics


class StatsPrometheus(CtlCase):
    name = 'stats_prometheus'
    script = 'stats_prometheus.sh'
    SIZE = 2 * MIB

    def ports(self, ctx):
        return ['id=0,console,backend=unix,path=%s,logfile=%s' % (ctx.sock('con.sock'),
                                                                ctx.path('con.log')),
                'id=1,name=org.vserial.m1,backend=unix,path=%s,buffer=64K,history=8K'
                % ctx.sock('p1.sock'),
                'id=2,name=org.vserial.m2,backend=unix,path=%s' % ctx.sock('p2.sock')]

    def prepare(self, ctx):
        ctx.data['up'] = det_bytes(360, self.SIZE)
        write_out(ctx, 'up.src', ctx.data['up'])

    def host(self, ctx):
        p2 = connect(ctx, ctx.sock('p2.sock'))
        send_all(ctx, p2, det_bytes(361, 4096))
        s = connect(ctx, ctx.sock('p1.sock'))
        wait_until(ctx, lambda: port_stats(ctx, 1)['throttled'], 'port 1 held back')
        time.sleep(1.0)
        ctx.data['mid'] = prometheus(ctx, 'stats.mid.prom')
        got, _, _ = recv_exact(ctx, s, self.SIZE)
        ctx.data['got'] = got == ctx.data['up']
        wait_guest_file(ctx, 'g.done')
        wait_until(ctx, lambda: port_stats(ctx, 0)['from_guest'] > 0, 'console output')
        ctx.data['end'] = prometheus(ctx, 'stats.prom')
        touch(ctx, 'h.done')
        s.close()
        p2.close()

    def verify(self, ctx):
        ctx.check(ctx.data.get('got'), 'port 1: the host did not get the guest\'s bytes')
        mid, end = ctx.data.get('mid'), ctx.data.get('end')
        if not (mid and end):
            ctx.errors.append('no metrics')
            return
        ctx.check(sample(mid, 'vserial_port_throttled', 1) == 1 and
                  sample(mid, 'vserial_port_throttled_seconds_total', 1) > 0.5,
                  'while held back: throttled %s, %s s' % (sample(mid, 'vserial_port_throttled', 1),
                                                           sample(mid, 'vserial_port_throttled_seconds_total', 1)))
        con = read_bytes(ctx.path('con.log'))
        for name, port, want in (('vserial_port_from_guest_bytes_total', 1, self.SIZE),
                                 ('vserial_port_to_guest_bytes_total', 2, 4096),
                                 ('vserial_port_history_bytes', 1, 8 * KIB),
                                 ('vserial_port_history_size_bytes', 0, 64 * KIB),
                                 ('vserial_port_logfile_written_bytes_total', 0, len(con)),
                                 ('vserial_port_from_guest_bytes_total', 0, len(con)),
                                 ('vserial_port_throttled', 1, 0),
                                 ('vserial_port_clients', 1, 1),
                                 ('vserial_port_host_connects_total', 2, 1),
                                 ('vserial_vmm_connects_total', None, 1),
                                 ('vserial_vmm_connected', None, 1),
                                 ('vserial_queue_errors_total', None, 0)):
            got = sample(end, name, port)
            ctx.check(got == want, '%s{port="%s"} = %s, want %s' % (name, port, got, want))
        ctx.check(b'console line for the metrics' in con, 'console log: %r' % con[-100:])
        drop_if_passed(ctx, 'up.src')


CASES = [HistoryClients(), TeeStalled(), TcpConnect(), FdBackends(), JournalEntries(),
         StatsPrometheus()]
