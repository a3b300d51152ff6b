#!/usr/bin/env python3
"""Host connections (issues 13 and 15), end to end: the real vserial with
--control, its listening ports' clients, and the fake guest (fakeguest.py).

  waiting_in_order      clients=1: newcomers wait in the backlog, are written
                        nothing, and are served in arrival order; close and
                        reconnect at once, 50 times: never refused
  clients_roles         clients=3: every client gets all output; input from
                        the writer only (the first, then the longest
                        connected, or the one that attaches with "write");
                        read-only attach; past 3 clients, the backlog
  slow_reader_dropped   a read-only client a whole buffer behind is
                        disconnected; the guest is not held back by it
  slow_writer_waits     the writer a buffer behind holds the guest back; no
                        reader is dropped for it
  on_connect            replay gives a new client what the last one left;
                        discard starts it clean, counted and reported
  unplug_plug           the guest loses the port and gets it back (same id
                        and name) while its client, backend and buffered
                        output stay; what the client sends meanwhile waits
  unplug_refused        with the guest's control queue full unplug and plug
                        are refused and change nothing
  bad_requests          bad attach modes, unplug/plug requests and vserialctl
                        usage: an error, nothing changed
  bad_specs             bad clients= / on-connect= values: one line, exit 2
                        (command line) or an error reply (add)

Prints TAP like test_ctl.py (the fixtures of testctl.py):

  tests/ctl/test_conn.py --vserial build/src/daemon/vserial \\
                         --vserialctl build/src/ctl/vserialctl [CASE...]
"""

import os
import random
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testctl as tc  # noqa: E402
from testctl import CaseFailed, check, wait_for, ports_by_id  # noqa: E402

CASES, case = tc.registry()


# ---------------------------------------------------------------- helpers

def uclient(d, name='one.sock'):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(d.path(name))
    return s


def quiet(s, t=0.3):
    """Nothing is written to @s (and it is not closed) within @t seconds."""
    r, _, _ = select.select([s], [], [], t)
    if r:
        try:
            got = s.recv(4096, socket.MSG_DONTWAIT)
        except OSError as e:
            got = repr(e)
        raise CaseFailed('a waiting client was sent %r' % got)


def recv_exact(s, n, timeout=20):
    buf = bytearray()
    end = time.monotonic() + timeout
    while len(buf) < n and time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        d = s.recv(min(n - len(buf), 1 << 20))
        if not d:
            break
        buf += d
    return bytes(buf)


def recv_all(s, timeout=20):
    """Everything until end of file."""
    buf = bytearray()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        try:
            d = s.recv(1 << 20)
        except ConnectionResetError:
            return bytes(buf)
        if not d:
            return bytes(buf)
        buf += d
    raise CaseFailed('no end of file within %d s (%d bytes)' % (timeout, len(buf)))


def port(cl, pid=1):
    return ports_by_id(cl)[pid]


def attach(d, pid, mode=None):
    """A control connection attached to port @pid (raw: its socket)."""
    c = d.client()
    req = {'cmd': 'attach', 'port': pid}
    if mode:
        req['mode'] = mode
    r = c.req(req)
    check(r == {'ok': True}, 'attach %s: %s' % (req, r))
    return c.s


def events_of(ev, pid, names, n, timeout=10):
    """The next @n events of port @pid among @names, as (event, client)."""
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        if time.monotonic() > end:
            raise CaseFailed('events of port %d: only %s' % (pid, out))
        e = ev.event()
        if e.get('port') == pid and e['event'] in names:
            out.append((e['event'], e.get('client', e.get('bytes'))))
    return out


def sender(g, pid, data):
    """The guest writes @data to port @pid in a thread (it blocks while the
    port is throttled); join it to know the guest is done."""
    t = threading.Thread(target=g.send, args=(pid, data), daemon=True)
    t.start()
    return t


def guest_port(d, pid=1):
    g = d.connect_guest()
    g.wait(lambda: pid in g.ports, what='port %d' % pid)
    g.open(pid)
    return g


def fill_control_queue(cl, g, console_sock):
    """test_ctl's fill_control_queue, again and again: the guest takes no
    control messages, the console's host client comes and goes until the
    device refuses a message. Returns the refusal."""
    g.ctrl_rx_hold = True
    host = None
    for i in range(400):
        r = cl.req({'cmd': 'resize', 'port': 0, 'cols': 80 + i % 2, 'rows': 25})
        if not r['ok']:
            if host:
                host.close()
            return r['error']
        if host is None:
            n = port(cl, 0)['counters']['host_connects']
            host = tc.unix_client(console_sock)
            wait_for(lambda: port(cl, 0)['counters']['host_connects'] > n or tc.refused(host),
                     'a console client')
            if tc.refused(host):
                host.close()
                return 'a console client was closed unserved: the control queue is full'
        else:
            host.close()
            host = None
            wait_for(lambda: not port(cl, 0)['host_connected'], 'the console client gone')
    raise CaseFailed('the control queue never filled')


def take_line(g, pid, want):
    g.wait(lambda: bytes(g.ports[pid].rx).endswith(b'\n'), what='a line in the guest')
    got = g.take(pid)
    check(got == want, 'the guest read %r, want %r' % (got, want))


# ---------------------------------------------------------------- cases

@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def waiting_in_order(d):
    """QEMU's socket chardev semantics for the default clients=1."""
    g = guest_port(d)
    cl = d.client()
    ev = d.client()
    ev.ok({'cmd': 'subscribe'})
    c = [uclient(d) for _ in range(4)]
    wait_for(lambda: port(cl)['counters']['host_connects'] == 1, 'the first client')
    # Each sends at once; the waiting ones' bytes stay in their sockets.
    for i, s in enumerate(c):
        s.sendall(b'from %d\n' % i)
    take_line(g, 1, b'from 0\n')
    for s in c[1:]:
        quiet(s)
    check(port(cl)['clients'] == 1, 'clients: %s' % port(cl))
    for i in range(4):
        g.send(1, b'to %d\n' % i)
        got = recv_exact(c[i], 5)
        check(got == b'to %d\n' % i, 'client %d read %r' % (i, got))
        if i < 3:
            c[i].close()
            take_line(g, 1, b'from %d\n' % (i + 1))
            for s in c[i + 2:]:
                quiet(s, 0.05)
    # Close and reconnect at once, again and again: always served, in turn.
    s = c[3]
    for k in range(50):
        s.close()
        s = uclient(d)
        s.sendall(b'again %d\n' % k)
        take_line(g, 1, b'again %d\n' % k)
    g.send(1, b'last\n')
    check(recv_exact(s, 5) == b'last\n', 'the last client')
    s.close()
    p = port(cl)
    check(p['counters']['host_connects'] == 54 and p['counters']['clients_refused'] == 0,
          'counters %s' % p['counters'])
    got = events_of(ev, 1, ('host-connect', 'host-disconnect'), 8)
    check(got == [('host-connect', 1), ('host-disconnect', 1), ('host-connect', 2),
                  ('host-disconnect', 2), ('host-connect', 3), ('host-disconnect', 3),
                  ('host-connect', 4), ('host-disconnect', 4)], 'events %s' % got)
    check('closed unserved' not in d.log() and 'try again later' not in d.log(), 'a refusal')


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock,clients=3'], max_ports=4)
def clients_roles(d):
    g = guest_port(d)
    cl = d.client()
    w = uclient(d)                              # client 1: the writer
    wait_for(lambda: port(cl)['clients'] == 1, 'client 1')
    a = attach(d, 1, 'read-only')               # client 2: read-only
    b = uclient(d)                              # client 3: a reader
    wait_for(lambda: port(cl)['clients'] == 3, 'three clients')
    check(port(cl)['writer'] == 1 and port(cl)['clients_max'] == 3, 'list %s' % port(cl))
    row = d.ctl('list').stdout.splitlines()[1].split()
    check(row[4:7] == ['open', '3', 'clients'], 'vserialctl list: %s' % row)
    data = random.Random(1).randbytes(300 << 10)
    t = sender(g, 1, data)
    for name, s in (('writer', w), ('read-only', a), ('reader', b)):
        got = recv_exact(s, len(data))
        check(got == data, 'the %s got %d bytes, %s' % (name, len(got), 'equal' if got == data
                                                         else 'different'))
    t.join(10)
    # Only the writer's bytes reach the guest; the others' are counted.
    b.sendall(b'j' * 4000)
    a.sendall(b'r' * 200)
    w.sendall(b'from the writer\n')
    take_line(g, 1, b'from the writer\n')
    wait_for(lambda: port(cl)['counters']['input_discarded'] == 4200, 'input_discarded 4200')
    # Past clients=3: a fourth waits, an attach is refused (busy).
    x = uclient(d)                              # client 4, waiting
    quiet(x)
    r = d.client().req({'cmd': 'attach', 'port': 1, 'mode': 'write'})
    check(r.get('ok') is False and r['error'] == 'port 1 is busy: its unix backend has 3 host '
          'clients connected (clients=3)', 'attach while full: %s' % r)
    # The writer leaves: the longest-connected non-read-only client (3)
    # takes over, the waiting one (4) comes in as a reader.
    w.close()
    wait_for(lambda: port(cl)['writer'] == 3 and port(cl)['clients'] == 3, 'writer 3')
    b.sendall(b'from 3\n')
    take_line(g, 1, b'from 3\n')
    x.sendall(b'x' * 10)
    wait_for(lambda: port(cl)['counters']['input_discarded'] == 4210, 'the reader 4 dropped')
    a.close()
    wait_for(lambda: port(cl)['clients'] == 2, 'read-only client gone')
    c = attach(d, 1, 'write')                   # client 5 takes the writer role
    wait_for(lambda: port(cl)['writer'] == 5, 'writer 5')
    c.sendall(b'via control\n')
    take_line(g, 1, b'via control\n')
    b.sendall(b'3 again\n')
    wait_for(lambda: port(cl)['counters']['input_discarded'] == 4218, 'the demoted writer dropped')
    check(g.take(1) == b'', 'the demoted writer reached the guest')
    g.send(1, b'to all\n')
    for s in (b, x, c):
        check(recv_exact(s, 7) == b'to all\n', 'a client missed the output')
    p = port(cl)
    check(p['counters']['clients_dropped'] == 0 and p['counters']['host_connects'] == 5,
          'counters %s' % p['counters'])


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock,clients=2,buffer=64K'], max_ports=4)
def slow_reader_dropped(d):
    g = guest_port(d)
    cl = d.client()
    ev = d.client()
    ev.ok({'cmd': 'subscribe'})
    w = uclient(d)
    wait_for(lambda: port(cl)['clients'] == 1, 'the writer')
    r = uclient(d)                              # reads nothing
    wait_for(lambda: port(cl)['clients'] == 2, 'the reader')
    data = random.Random(2).randbytes(4 << 20)
    t = sender(g, 1, data)
    got = recv_exact(w, len(data), 60)
    t.join(20)
    check(not t.is_alive(), 'the guest was held back by the stalled reader')
    check(got == data, 'the writer got %d of %d bytes, %s' % (len(got), len(data),
                                                            'equal' if got == data else 'different'))
    p = port(cl)
    check(p['counters']['clients_dropped'] == 1 and p['clients'] == 1, 'list %s' % p)
    check(events_of(ev, 1, ('client-dropped',), 1) == [('client-dropped', 2)], 'no event')
    rgot = recv_all(r)
    check(data.startswith(rgot) and len(rgot) < len(data),
          'the dropped reader got %d bytes, not a prefix of the output' % len(rgot))
    check('disconnected: it is a whole buffer (65536 bytes) behind' in d.log(),
          'the drop is not logged')


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock,clients=2,buffer=64K'], max_ports=4)
def slow_writer_waits(d):
    g = guest_port(d)
    cl = d.client()
    w = uclient(d)                              # the writer reads nothing
    wait_for(lambda: port(cl)['clients'] == 1, 'the writer')
    r = uclient(d)
    wait_for(lambda: port(cl)['clients'] == 2, 'the reader')
    data = random.Random(3).randbytes(1 << 20)
    t = sender(g, 1, data)
    rgot = bytearray()

    def stalled():
        r.setblocking(False)
        try:
            while True:
                rgot.extend(r.recv(1 << 20))
        except BlockingIOError:
            pass
        a = port(cl)['from_guest']
        time.sleep(0.3)
        return port(cl)['from_guest'] == a and port(cl)['throttled']
    wait_for(stalled, 'the guest to be held back by the writer', 20)
    p = port(cl)
    check(p['from_guest'] < len(data) and p['clients'] == 2 and
          p['counters']['clients_dropped'] == 0, 'list %s' % p)
    # Now both read, the writer never getting ahead of the reader (a
    # reader a buffer behind the writer would be dropped, as it should).
    r.setblocking(True)
    wgot = bytearray()
    end = time.monotonic() + 60
    while (len(rgot) < len(data) or len(wgot) < len(data)) and time.monotonic() < end:
        while select.select([r], [], [], 0.2)[0]:
            d_ = r.recv(1 << 20)
            if not d_:
                break
            rgot += d_
        wgot += recv_exact(w, len(rgot) - len(wgot))
    t.join(20)
    check(wgot == data and bytes(rgot) == data, 'writer %d, reader %d of %d bytes'
          % (len(wgot), len(rgot), len(data)))


@case(ports=['id=1,name=org.rep,backend=unix,path=@rep.sock,buffer=64K',
             'id=2,name=org.dis,backend=unix,path=@dis.sock,buffer=64K,on-connect=discard'],
      max_ports=4)
def on_connect(d):
    g = d.connect_guest()
    g.wait(lambda: 1 in g.ports and 2 in g.ports, what='ports')
    g.open(1)
    g.open(2)
    cl = d.client()
    ev = d.client()
    ev.ok({'cmd': 'subscribe'})
    data = random.Random(4).randbytes(600 << 10)
    for pid, sock in ((1, 'rep.sock'), (2, 'dis.sock')):
        c = uclient(d, sock)
        wait_for(lambda: port(cl, pid)['host_connected'], 'client')
        t = sender(g, pid, data)
        wait_for(lambda: port(cl, pid)['buffered'] == 64 << 10 and port(cl, pid)['throttled'],
                 'port %d full' % pid)
        c.close()                               # leaves with output unread
        wait_for(lambda: not port(cl, pid)['host_connected'], 'client gone')
        if pid == 2:
            t.join(20)                          # nobody connected: dropped at once
            check(not t.is_alive(), 'discard: the guest waited for an absent client')
        c = uclient(d, sock)
        if pid == 1:
            got = bytearray()
            end = time.monotonic() + 30
            while not got.endswith(data[-64:]) and time.monotonic() < end:
                got += recv_exact(c, 1, 1)
                got += c.recv(1 << 20, socket.MSG_DONTWAIT) if select.select([c], [], [], 0)[0] else b''
            got = bytes(got)
            t.join(20)
            check(len(got) >= 64 << 10 and data.endswith(got) and not t.is_alive(),
                  'replay: the new client got %d bytes, not what the last one left and the rest'
                  % len(got))
        else:
            quiet(c)
            g.send(2, b'fresh\n')
            check(recv_exact(c, 6) == b'fresh\n', 'discard: the new client did not start clean')
            e = events_of(ev, 2, ('output-discarded',), 1)
            n = port(cl, 2)['counters']['output_discarded']
            check(e == [('output-discarded', n)] and n >= 64 << 10,
                  'discard: event %s, counter %d' % (e, n))
        c.close()
    check(port(cl, 1)['counters']['output_discarded'] == 0, 'replay dropped output')
    check(port(cl, 1)['on_connect'] == 'replay' and port(cl, 2)['on_connect'] == 'discard',
          'list on_connect')


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock,buffer=256K',
             'id=2,name=org.two,backend=null'], max_ports=4)
def unplug_plug(d):
    g = guest_port(d)
    g.wait(lambda: 2 in g.ports, what='port 2')
    cl = d.client()
    ev = d.client()
    ev.ok({'cmd': 'subscribe'})
    c = uclient(d)
    g.wait(lambda: g.ports[1].host_open, what='host open')
    data = random.Random(5).randbytes(800 << 10)
    t = sender(g, 1, data)                      # the client reads nothing yet
    wait_for(lambda: port(cl)['buffered'] > 0 and port(cl)['throttled'], 'output held')
    t.join(0.1)
    check(cl.req({'cmd': 'unplug', 'port': 'org.one'}) == {'ok': True}, 'unplug')
    g.wait(lambda: 1 not in g.ports, what='PORT_REMOVE')
    t.join(10)
    p = port(cl)
    check(p['plugged'] is False and p['guest_open'] is False and p['host_connected'] is True and
          p['clients'] == 1 and p['name'] == 'org.one', 'list after unplug: %s' % p)
    check(port(cl, 2)['plugged'] is True, 'port 2 unplugged too')
    row = d.ctl('list').stdout.splitlines()[1].split()
    check(row[:6] == ['1', 'org.one', 'port', 'unix', 'unplugged', 'connected'],
          'vserialctl list: %s' % row)
    c.sendall(b'while unplugged\n')
    quiet_to_guest = port(cl)['to_guest']
    # Everything the port took before the unplug is delivered.
    took = port(cl)['from_guest']
    got = recv_exact(c, took, 30)
    check(got == data[:took], 'the client got %d of the %d bytes the port took' % (len(got), took))
    check(port(cl)['to_guest'] == quiet_to_guest, 'input went somewhere while unplugged')
    # What cannot be done to an unplugged port, and its id, name and path.
    for req, want in (({'cmd': 'unplug', 'port': 1}, 'port 1 (org.one) is unplugged already'),
                      ({'cmd': 'add', 'spec': 'id=1,backend=null'}, 'port id 1 is already in use'),
                      ({'cmd': 'add', 'spec': 'name=org.one,backend=null'},
                       "name 'org.one' is already used by port 1"),
                      ({'cmd': 'add', 'spec': 'backend=unix,path=%s' % d.path('one.sock')},
                       'is already used by port 1'),
                      ({'cmd': 'plug', 'port': 2}, 'port 2 (org.two) is plugged already')):
        r = cl.req(req)
        check(r.get('ok') is False and want in r['error'], '%s: %s' % (req, r))
    r = cl.ok({'cmd': 'add', 'spec': 'name=org.three,backend=null'})
    check(r['port']['id'] == 3, 'a new port took id %s, not the first free one (3)' % r['port']['id'])
    check(cl.req({'cmd': 'plug', 'port': 1}) == {'ok': True}, 'plug')
    g.wait(lambda: 1 in g.ports and g.ports[1].name == 'org.one' and g.ports[1].host_open,
           what='PORT_ADD, PORT_NAME and PORT_OPEN 1 again')
    g.open(1)
    take_line(g, 1, b'while unplugged\n')
    g.send(1, b'after\n')
    check(recv_exact(c, 6) == b'after\n', 'output after the plug')
    p = port(cl)
    check(p['plugged'] and p['counters']['host_connects'] == 1 and
          p['from_guest'] == took + 6 and p['to_guest'] == 16, 'list after plug: %s' % p)
    got = events_of(ev, 1, ('port-unplugged', 'port-plugged', 'host-disconnect'), 2)
    check(got == [('port-unplugged', None), ('port-plugged', None)], 'events %s' % got)
    # remove takes an unplugged port whole: host side and all.
    cl.ok({'cmd': 'unplug', 'port': 1})
    cl.ok({'cmd': 'remove', 'port': 1})
    check(recv_all(c) == b'', 'the client of a removed port was not closed')
    check(1 not in ports_by_id(cl), 'port 1 still listed')
    cl.ok({'cmd': 'add', 'spec': 'id=1,name=org.one,backend=unix,path=%s' % d.path('one.sock')})
    g.wait(lambda: 1 in g.ports, what='port 1 added again')


@case(ports=['id=0,console,backend=unix,path=@con.sock',
             'id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def unplug_refused(d):
    g = d.connect_guest()
    g.wait(lambda: 0 in g.ports and 1 in g.ports, what='ports')
    cl = d.client()
    why = fill_control_queue(cl, g, d.path('con.sock'))
    check('control queue is full' in why, 'refused with %r' % why)
    before = ports_by_id(cl)
    r = cl.req({'cmd': 'unplug', 'port': 1})
    check(not r['ok'] and r['error'] == 'cannot unplug port 1 (org.one): ' + tc_queue_full(),
          'unplug: %s' % r)
    check(ports_by_id(cl)[1] == before[1], 'a refused unplug changed port 1')
    g.ctrl_rx_resume()
    wait_for(lambda: cl.req({'cmd': 'unplug', 'port': 1})['ok'], 'unplug once the guest reads')
    g.wait(lambda: 1 not in g.ports, what='PORT_REMOVE')
    why = fill_control_queue(cl, g, d.path('con.sock'))
    r = cl.req({'cmd': 'plug', 'port': 1})
    check(not r['ok'] and 'control queue is full' in r['error'], 'plug: %s' % r)
    check(ports_by_id(cl)[1]['plugged'] is False, 'a refused plug plugged it')
    g.ctrl_rx_resume()
    wait_for(lambda: cl.req({'cmd': 'plug', 'port': 1})['ok'], 'plug once the guest reads')
    g.wait(lambda: 1 in g.ports, what='PORT_ADD')


def tc_queue_full():
    return ("the guest's control queue is full (the guest takes no control messages now); "
            "nothing changed, try again later")


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock',
             'id=2,name=org.null,backend=null'], max_ports=4)
def bad_requests(d):
    cl = d.client()
    before = ports_by_id(cl)
    for req, want in (
            ({'cmd': 'attach', 'port': 1, 'mode': 'both'},
             '"mode" must be "read-only" or "write", not \'both\''),
            ({'cmd': 'attach', 'port': 1, 'mode': 7}, '"mode" must be a string'),
            ({'cmd': 'attach', 'port': 2, 'mode': 'read-only'},
             'port 2 (org.null): read-only attach is for backend=unix and tcp ports (its backend '
             'is null)'),
            ({'cmd': 'unplug'}, 'missing "port"'),
            ({'cmd': 'unplug', 'port': 3}, 'no port 3'),
            ({'cmd': 'plug', 'port': 'org.none'}, "no port named 'org.none'"),
            ({'cmd': 'plug', 'port': 1, 'now': True}, 'unknown key "now" for plug'),
            ({'cmd': 'plug', 'port': 1}, 'port 1 (org.one) is plugged already')):
        r = cl.req(req)
        check(r.get('ok') is False and want in r.get('error', ''), '%s: %s' % (req, r))
    check(ports_by_id(cl) == before, 'a refused request changed something')
    for args, want in ((['unplug'], 'unplug: missing ID|NAME'),
                       (['plug', '1', '2'], 'plug: unexpected argument'),
                       (['--read-only', 'list'], '--read-only is for attach only'),
                       (['--write', '--read-only', 'attach', '1'],
                        'give one of --read-only and --write')):
        r = d.ctl(*args)
        line = tc.one_error_line(r, ' '.join(args))
        check(r.returncode == 2 and want in line, 'vserialctl %s: %d %r' % (args, r.returncode, line))
    r = d.ctl('unplug', 'org.none')
    check(r.returncode == 1 and "no port named 'org.none'" in tc.one_error_line(r, 'unplug'),
          'vserialctl unplug of an unknown port: %d %r' % (r.returncode, r.stderr))
    check(d.ctl('unplug', 'org.one').returncode == 0 and d.ctl('plug', '1').returncode == 0,
          'vserialctl unplug and plug')


@case(ports=['id=1,name=org.one,backend=unix,path=@one.sock'], max_ports=4)
def bad_specs(d):
    for spec, want in (('clients=0', "clients '0' is not a number in 1..64"),
                       ('clients=65', "clients '65' is not a number in 1..64"),
                       ('on-connect=later', "on-connect 'later': expected replay or discard")):
        full = 'name=x,backend=unix,path=%s,%s' % (d.path('x.sock'), spec)
        p = tc.run_refused([tc.OPTS.vserial, '--socket', d.path('v2.sock'), '--port', full])
        lines = p.stderr.splitlines()
        check(p.returncode == 2 and len(lines) == 1 and want in lines[0],
              '%s: exit %s, %r' % (spec, p.returncode, p.stderr))
    for spec, want in (('backend=null,clients=2', 'clients= is only for backend=unix and backend=tcp'),
                       ('backend=null,on-connect=discard', 'on-connect= is only for backend=unix, '
                        'tcp and unix-connect')):
        p = tc.run_refused([tc.OPTS.vserial, '--socket', d.path('v2.sock'), '--port', spec])
        lines = p.stderr.splitlines()
        check(p.returncode == 2 and len(lines) == 1 and want in lines[0],
              '%s: exit %s, %r' % (spec, p.returncode, p.stderr))
        cl = d.client()
        before = ports_by_id(cl)
        r = cl.req({'cmd': 'add', 'spec': spec})
        check(r.get('ok') is False and want in r['error'], 'add %s: %s' % (spec, r))
        r = cl.req({'cmd': 'add', 'port': {'backend': 'unix', 'path': d.path('y.sock'),
                                           'clients': 0}})
        check(r.get('ok') is False and "clients '0'" in r['error'], 'add object: %s' % r)
        check(ports_by_id(cl) == before and not os.path.exists(d.path('y.sock')),
              'a refused add changed something')


# ---------------------------------------------------------------- runner

if __name__ == '__main__':
    sys.exit(tc.tap_main(__doc__, CASES, tc.run_case, tail=25))
