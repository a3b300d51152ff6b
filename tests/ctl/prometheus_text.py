"""A strict reader of the Prometheus text exposition format (0.0.4), for the
tests of `vserialctl stats --prometheus`: what node-exporter's textfile
collector would refuse is refused here, with the line and the reason.

  families = parse(text)   # {name: Family(type, help, samples)}
  families['vserial_port_from_guest_bytes_total'].samples
      -> [({'instance': 'vm1', 'port': '1', 'name': 'org.x'}, 1234.0), ...]

Checked: every line is a comment (# HELP / # TYPE) or a sample; names and
label names are valid; label values are quoted with only \\\\, \\" and \\n
escaped; a value is a float (or +Inf, -Inf, NaN); HELP and TYPE come at
most once per family and before its samples; a family's samples are
contiguous; no series (name and labels) appears twice; counters end in
_total and are not negative; the text ends with a newline.
"""

import math
import re

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*\Z')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*\Z')
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')


class ParseError(Exception):
    pass


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []


def _labels(s, where):
    """'{a="x",b="y"}' (without braces) -> dict; the rest of the line after
    the closing brace is returned too."""
    out = {}
    i = 0
    while True:
        if s[i] == '}':
            return out, s[i + 1:]
        m = re.match(r'([a-zA-Z_][a-zA-Z0-9_]*)="', s[i:])
        if not m:
            raise ParseError('%s: bad label at %r' % (where, s[i:i + 20]))
        key = m.group(1)
        i += m.end()
        val = []
        while True:
            if i >= len(s):
                raise ParseError('%s: unterminated label value' % where)
            c = s[i]
            if c == '\\':
                nxt = s[i + 1:i + 2]
                if nxt not in ('\\', '"', 'n'):
                    raise ParseError('%s: bad escape \\%s in a label value' % (where, nxt))
                val.append('\n' if nxt == 'n' else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == '\n':
                raise ParseError('%s: newline in a label value' % where)
            else:
                val.append(c)
                i += 1
        if key in out:
            raise ParseError('%s: label %s twice' % (where, key))
        out[key] = ''.join(val)
        if s[i:i + 1] == ',':
            i += 1
        elif s[i:i + 1] != '}':
            raise ParseError('%s: expected , or } after a label' % where)


def _value(s, where):
    s = s.strip()
    parts = s.split()
    if len(parts) not in (1, 2):
        raise ParseError('%s: expected a value (and a timestamp): %r' % (where, s))
    v = parts[0]
    if v in ('+Inf', 'Inf'):
        return math.inf
    if v == '-Inf':
        return -math.inf
    if v == 'NaN':
        return math.nan
    try:
        return float(v)
    except ValueError:
        raise ParseError('%s: %r is not a number' % (where, v)) from None


def parse(text):
    if text and not text.endswith('\n'):
        raise ParseError('the text does not end with a newline')
    fams = {}
    done = set()            # families whose samples ended
    current = None
    series = set()
    for n, line in enumerate(text.split('\n')[:-1], 1):
        where = 'line %d' % n
        if line.startswith('#'):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
                name = parts[2]
                if not NAME.match(name):
                    raise ParseError('%s: bad metric name %r' % (where, name))
                f = fams.setdefault(name, Family(name))
                if f.samples:
                    raise ParseError('%s: %s of %s after its samples' % (where, parts[1], name))
                if parts[1] == 'HELP':
                    if f.help is not None:
                        raise ParseError('%s: second HELP of %s' % (where, name))
                    f.help = parts[3] if len(parts) > 3 else ''
                else:
                    if f.type is not None:
                        raise ParseError('%s: second TYPE of %s' % (where, name))
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ParseError('%s: bad TYPE line %r' % (where, line))
                    f.type = parts[3]
            continue
        if not line.strip():
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)', line)
        if not m:
            raise ParseError('%s: not a sample: %r' % (where, line))
        name, rest = m.group(1), line[m.end():]
        labels = {}
        if rest.startswith('{'):
            labels, rest = _labels(rest[1:], where)
        if not rest.startswith(' '):
            raise ParseError('%s: no space before the value' % where)
        value = _value(rest, where)
        if current != name:
            if name in done:
                raise ParseError('%s: samples of %s are not together' % (where, name))
            if current is not None:
                done.add(current)
            current = name
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ParseError('%s: series %s%s twice' % (where, name, labels))
        series.add(key)
        f = fams.setdefault(name, Family(name))
        if f.type == 'counter':
            if not name.endswith('_total'):
                raise ParseError('%s: counter %s does not end in _total' % (where, name))
            if value < 0:
                raise ParseError('%s: counter %s is negative' % (where, name))
        f.samples.append((labels, value))
    return fams
