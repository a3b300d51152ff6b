#!/usr/bin/env python3
"""examples/echo, the embedding example, run for real: it serves its port
over vhost-user to the fake guest of tests/ctl/fakeguest.py, which checks
the port's name and that what it writes comes back byte for byte.
Prints TAP, one line per case."""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'ctl'))
import fakeguest  # noqa: E402


def start_echo(exe, sock):
    p = subprocess.Popen([exe, sock, '60'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(400):
        if os.path.exists(sock):
            return p
        time.sleep(0.01)
    p.kill()
    raise AssertionError('echo did not listen on %s' % sock)


def main():
    exe = sys.argv[1]
    results = []
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, 'echo.sock')
        p = start_echo(exe, sock)
        g = None
        try:
            g = fakeguest.FakeGuest(sock)
            g.wait(lambda: g.port(1) is not None and g.port(1).name == 'org.vserial.echo'
                   and g.port(1).host_open, what='port 1 named and open on the host')
            results.append((True, 'port 1 announced as org.vserial.echo, host side open'))
            g.open(1)
            data = os.urandom(100 * 1024)
            g.send(1, data)
            got = bytearray()

            def enough():
                got.extend(g.take(1))
                return len(got) >= len(data)
            g.wait(enough, timeout=20, what='100 KiB echoed')
            results.append((bytes(got) == data, 'echo round trip of 100 KiB is byte-exact'))
        except AssertionError as e:
            results.append((False, str(e)))
        finally:
            if g:
                g.shutdown()
            p.kill()
            p.wait()
    print('1..%d' % len(results))
    for i, (ok, what) in enumerate(results, 1):
        print('%s %d - %s' % ('ok' if ok else 'not ok', i, what))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == '__main__':
    sys.exit(main())
