#!/usr/bin/env python3
"""Build (or find in the cache) the QEMU guest of the real-guest tests and
of `scripts/bench --qemu`, from Debian packages, without root:

  vmlinux     Debian's kernel (the package linux-image-amd64 points at),
              taken out of its bzImage: QEMU starts it at its PVH entry
  initrd      a cpio archive (uncompressed: TCG decompresses slowly) with
              busybox-static (its applets), bash and the libraries it
              needs, the kernel's virtio_pci, virtio_console and virtiofs
              modules with what they need, our static helper programs
              (PROGRAMS, built with gcc -static) and /init
              (tests/guest/qemu/init.sh)
  virtiofsd   the vhost-user file server of Debian's qemu-system-common

Why this shape: the case scripts (tests/guest/cases/*.sh) are bash and talk
to the host through files in the case's output directory, both ways and
while they run (g.ready, h.done, ...), as the UML guest sees the host's
files through hostfs. Under QEMU, virtiofsd shares that one directory and
init.sh mounts it at the same path, so the same scripts run unchanged; the
userland is busybox plus bash (the scripts use its arrays, mapfile and
EPOCHREALTIME), in an initramfs because nothing else needs a disk. The
guest sees only the case's directory of the host, not all of it.

Packages come with `apt-get download` and are unpacked with `dpkg-deb -x`.
The result goes to CACHE/guest-HASH/, HASH being that of the recipe: this
file, init.sh, the helpers' sources and the exact package versions apt
offers (so a new Debian kernel also makes a new guest). The three most
recently used guests are kept (branches may differ), older ones and their
packages removed. Prints the guest directory on stdout.

  tests/guest/qemu/build_guest.py [--cache DIR] [--force]

CACHE: --cache, else $VSERIAL_QEMU_GUEST_CACHE, else
$XDG_CACHE_HOME/vserial/qemu-guest (~/.cache/...). Builders of the same
cache take turns (flock), so parallel runs build once.
"""

import argparse
import fcntl
import hashlib
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

# What goes into the guest. Changing anything here changes the hash.
PACKAGES = ['busybox-static', 'bash', 'libc6', 'libtinfo6', 'qemu-system-common']
KERNEL_META = 'linux-image-amd64'
# Kernel modules, with what they depend on (modinfo), loaded by init.sh in
# that order; virtio_console is left to the cases.
MODULES = ['virtio_pci', 'virtiofs', 'virtio_console']
# Static programs of ours: (name in /bin, source relative to the repository)
PROGRAMS = [('vsg', 'tests/guest/qemu/vsg.c'), ('vsbench-guest', 'bench/qemu_guest.c')]
INIT = os.path.join(HERE, 'init.sh')
CFLAGS = ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-static']


def die(msg):
    sys.stderr.write('build_guest: %s\n' % msg)
    sys.exit(1)


def run(argv, **kw):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        die('%s: exit %d: %s' % (' '.join(argv), r.returncode, (r.stderr or r.stdout).strip()[-800:]))
    return r.stdout


def policy(pkgs):
    """{package: candidate version or None}, from one apt-cache call (each
    call reads all package lists: seconds where apt keeps no pkgcache)."""
    out = subprocess.run(['apt-cache', 'policy'] + pkgs, capture_output=True, text=True).stdout
    vers, cur = {p: None for p in pkgs}, None
    for line in out.splitlines():
        if line and not line[0].isspace() and line.endswith(':'):
            cur = line[:-1]
        elif line.strip().startswith('Candidate:') and cur in vers:
            v = line.split(None, 1)[1]
            vers[cur] = None if v == '(none)' else v
    return vers


def apt_update():
    argv = ['apt-get', 'update', '-q']
    if os.geteuid() != 0:
        argv = ['sudo', '-n'] + argv
    sys.stderr.write('build_guest: no package lists; running %s\n' % ' '.join(argv))
    run(argv)


def kernel_package():
    out = subprocess.run(['apt-cache', 'depends', KERNEL_META], capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith('Depends:') and line.split()[1].startswith('linux-image-'):
            return line.split()[1]
    return None


LISTS = '/var/lib/apt/lists'


def lists_stamp():
    """Changes whenever apt's package lists do (apt-get update)."""
    h = hashlib.sha256(' '.join(PACKAGES + [KERNEL_META]).encode())
    try:
        for f in sorted(os.listdir(LISTS)):
            if f.endswith('Packages') or f.endswith('Release'):
                st = os.stat(os.path.join(LISTS, f))
                h.update(('%s %d %d\n' % (f, st.st_mtime_ns, st.st_size)).encode())
    except OSError:
        return None
    return h.hexdigest()


def resolve(cache):
    """[(package, version)] of everything the guest is made of; remembered
    in CACHE/resolved.json until apt's lists change."""
    memo = os.path.join(cache, 'resolved.json')
    stamp = lists_stamp()
    try:
        with open(memo) as f:
            m = json.load(f)
        if stamp and m.get('stamp') == stamp:
            return [tuple(pv) for pv in m['vers']]
    except (OSError, ValueError, KeyError):
        pass
    for attempt in (0, 1):
        kpkg = kernel_package()
        pkgs = ([kpkg] if kpkg else []) + PACKAGES
        pol = policy(pkgs)
        vers = [(p, pol[p]) for p in pkgs]
        if kpkg and all(v for _, v in vers):
            with open(memo + '.tmp', 'w') as f:
                json.dump({'stamp': lists_stamp(), 'vers': vers}, f)
            os.rename(memo + '.tmp', memo)
            return vers
        if attempt == 0:
            apt_update()
    die('apt offers no %s' % ', '.join(p for p, v in vers if not v) if kpkg else
        'apt offers no %s (is this Debian 12?)' % KERNEL_META)


def recipe_hash(vers):
    h = hashlib.sha256()
    for path in [os.path.abspath(__file__), INIT] + [os.path.join(TOP, s) for _, s in PROGRAMS]:
        with open(path, 'rb') as f:
            h.update(path.encode().rsplit(b'/', 1)[-1] + b'\0' + f.read() + b'\0')
    for p, v in vers:
        h.update(('%s=%s\n' % (p, v)).encode())
    h.update(' '.join(MODULES + CFLAGS).encode())
    return h.hexdigest()[:16]


def download(debs, vers):
    """The .deb of each (package, version), downloaded once into debs/."""
    os.makedirs(debs, exist_ok=True)
    paths = {}
    for p, v in vers:
        fname = '%s_%s_amd64.deb' % (p, v.replace(':', '%3a'))
        path = os.path.join(debs, fname)
        if not os.path.exists(path):
            tmp = tempfile.mkdtemp(dir=debs)
            os.chmod(tmp, 0o755)        # apt's _apt user may write here
            run(['apt-get', 'download', '-q', '%s=%s' % (p, v)], cwd=tmp)
            got = [f for f in os.listdir(tmp) if f.endswith('.deb')]
            if len(got) != 1:
                die('apt-get download %s=%s gave %s' % (p, v, got))
            os.rename(os.path.join(tmp, got[0]), path)
            shutil.rmtree(tmp)
        paths[p] = path
    return paths


# ------------------------------------------------------------ the cpio archive

class Cpio:
    """An uncompressed "newc" archive written entry by entry: no root needed
    for device nodes or root-owned files."""

    def __init__(self, f):
        self.f = f
        self.ino = 1
        self.seen = set()

    def _entry(self, name, mode, data=b'', rdev=(0, 0)):
        name = name.lstrip('/')
        self.seen.add(name)
        hdr = '070701' + ''.join('%08X' % x for x in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0))
        self.ino += 1
        out = hdr.encode() + name.encode() + b'\0'
        out += b'\0' * (-len(out) % 4)
        out += data + b'\0' * (-len(data) % 4)
        self.f.write(out)

    def dir(self, name):
        parts = name.strip('/').split('/')
        for i in range(1, len(parts) + 1):
            d = '/'.join(parts[:i])
            if d not in self.seen:
                self._entry(d, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self.dir(os.path.dirname(name.strip('/')))
        self._entry(name, stat.S_IFREG | mode, data)

    def copy(self, name, src, mode=None):
        with open(src, 'rb') as f:
            data = f.read()
        self.file(name, data, mode if mode is not None else (os.stat(src).st_mode & 0o777))

    def symlink(self, name, target):
        self.dir(os.path.dirname(name.strip('/')))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor):
        self.dir(os.path.dirname(name.strip('/')))
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def close(self):
        self._entry('TRAILER!!!', 0)
        self.f.write(b'\0' * (-self.f.tell() % 512))


def needed(elf):
    """DT_NEEDED names of an ELF file."""
    out = run(['readelf', '-d', elf])
    return [ln.split('[', 1)[1].split(']', 1)[0] for ln in out.splitlines() if '(NEEDED)' in ln]


def inside(root, path):
    """path (relative to root) with its symbolic links resolved inside root,
    never on the host: Debian's links are often absolute."""
    parts = [p for p in path.split('/') if p]
    done = []
    for _ in range(64):
        if not parts:
            return os.path.join(root, *done)
        p = parts.pop(0)
        full = os.path.join(root, *done, p)
        if os.path.islink(full):
            t = os.readlink(full)
            parts = [x for x in t.split('/') if x] + parts
            if t.startswith('/'):
                done = []
        elif p == '..':
            done = done[:-1]
        elif p != '.':
            done.append(p)
    die('too many links resolving %s' % path)


def find_lib(root, name):
    for d in ('lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'lib'):
        p = inside(root, d + '/' + name)
        if os.path.exists(p):
            return p
    die('library %s not found in the unpacked packages' % name)


def module_order(kdir):
    """Paths (relative to kdir) of MODULES and their dependencies, each
    after what it needs."""
    paths = {}
    for d, _, files in os.walk(kdir):
        for f in files:
            if f.endswith('.ko'):
                paths[f[:-3].replace('-', '_')] = os.path.relpath(os.path.join(d, f), kdir)
    order = []

    def add(name, depth=0):
        if depth > 20:
            die('module dependency loop at %s' % name)
        if name not in paths:
            die('kernel module %s not in the kernel package' % name)
        if paths[name] in order:
            return
        deps = run(['modinfo', '-F', 'depends', os.path.join(kdir, paths[name])]).strip()
        for d in filter(None, deps.split(',')):
            add(d.replace('-', '_'), depth + 1)
        order.append(paths[name])
    for m in MODULES:
        add(m)
    return order


def vmlinux(bzimage, dst):
    """The kernel ELF image inside Debian's bzImage (xz). QEMU starts it
    through its PVH entry point: under TCG that saves the ~4 s the
    bzImage spends decompressing itself."""
    with open(bzimage, 'rb') as f:
        data = f.read()
    at = data.find(b'\xfd7zXZ\x00')
    if at < 0:
        die('%s: no xz stream (is the kernel still xz-compressed?)' % bzimage)
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elf = dec.decompress(data[at:])
    if not dec.eof or elf[:4] != b'\x7fELF':
        die('%s: the xz stream at %d is not a whole ELF image' % (bzimage, at))
    with open(dst, 'wb') as f:
        f.write(elf)
    notes = run(['readelf', '-n', dst])
    if 'Unknown note type: (0x00000012)' not in notes:
        die('%s: no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): QEMU cannot start it' % dst)


def build(gdir, vers, debs):
    work = tempfile.mkdtemp(prefix='build-', dir=os.path.dirname(gdir))
    try:
        root = os.path.join(work, 'pkgs')
        for p, path in debs.items():
            run(['dpkg-deb', '-x', path, root])
        kpkg = vers[0][0]
        kver = kpkg[len('linux-image-'):]
        out = os.path.join(work, 'guest')
        os.makedirs(out)
        vmlinux(os.path.join(root, 'boot', 'vmlinuz-' + kver), os.path.join(out, 'vmlinux'))
        shutil.copy(os.path.join(root, 'usr/lib/qemu/virtiofsd'), os.path.join(out, 'virtiofsd'))
        for name, src in PROGRAMS:
            run(['gcc'] + CFLAGS + ['-o', os.path.join(work, name), os.path.join(TOP, src)])
        with open(os.path.join(out, 'initrd'), 'wb') as f:
            c = Cpio(f)
            for d in ('dev', 'proc', 'sys', 'tmp', 'run', 'root', 'mnt'):
                c.dir(d)
            c.chardev('dev/console', 5, 1)
            c.chardev('dev/null', 1, 3)
            for d in ('sbin', 'usr/bin', 'usr/sbin'):
                c.symlink(d, '/bin' if d == 'sbin' else '../bin')
            c.copy('bin/busybox', os.path.join(root, 'bin/busybox'), 0o755)
            applets = run([os.path.join(root, 'bin/busybox'), '--list']).split()
            for a in applets:
                if a not in ('busybox', 'bash'):
                    c.symlink('bin/' + a, 'busybox')
            bash = os.path.join(root, 'bin/bash')
            c.copy('bin/bash', bash, 0o755)
            todo, libs = needed(bash), {}
            while todo:
                n = todo.pop()
                if n not in libs:
                    libs[n] = find_lib(root, n)
                    todo += needed(libs[n])
            for n, p in sorted(libs.items()):
                c.copy('lib/x86_64-linux-gnu/' + n, p, 0o755)
            c.copy('lib64/ld-linux-x86-64.so.2', inside(root, 'lib64/ld-linux-x86-64.so.2'), 0o755)
            for name, _ in PROGRAMS:
                c.copy('bin/' + name, os.path.join(work, name), 0o755)
            mdir = 'lib/modules/%s/kernel/' % kver
            mods = module_order(os.path.join(root, mdir))
            for m in mods:
                c.copy(mdir + m, os.path.join(root, mdir, m), 0o644)
            c.file('etc/guest-modules', ('\n'.join(mdir + m for m in mods) + '\n').encode())
            c.file('etc/passwd', b'root:x:0:0:root:/root:/bin/sh\n')
            c.file('etc/group', b'root:x:0:\n')
            c.copy('init', INIT, 0o755)
            c.close()
        with open(os.path.join(out, 'manifest'), 'w') as f:
            f.write(''.join('%s=%s\n' % pv for pv in vers))
        os.rename(out, gdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def default_cache():
    c = os.environ.get('VSERIAL_QEMU_GUEST_CACHE')
    if c:
        return c
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'vserial', 'qemu-guest')


def ensure(cache=None, force=False, quiet=False):
    """The guest directory (vmlinuz, initrd, virtiofsd), built if needed."""
    cache = os.path.abspath(cache or default_cache())
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, 'lock'), 'w') as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        vers = resolve(cache)
        gdir = os.path.join(cache, 'guest-' + recipe_hash(vers))
        if force and os.path.isdir(gdir):
            shutil.rmtree(gdir)
        if not os.path.isdir(gdir):
            if not quiet:
                sys.stderr.write('build_guest: building %s (%s)\n'
                                 % (gdir, ', '.join('%s=%s' % pv for pv in vers)))
            debs = download(os.path.join(cache, 'debs'), vers)
            build(gdir, vers, debs)
            prune(cache)
        os.utime(gdir)
        return gdir


KEEP = 3    # guests kept (most recently used): branches with other recipes


def prune(cache):
    """Drop all but the KEEP most recently used guests, and the packages
    none of those was made from."""
    guests = sorted((d for d in os.listdir(cache) if d.startswith('guest-')),
                    key=lambda d: os.stat(os.path.join(cache, d)).st_mtime, reverse=True)
    for d in guests[KEEP:] + [d for d in os.listdir(cache) if d.startswith('build-')]:
        shutil.rmtree(os.path.join(cache, d), ignore_errors=True)
    keep = set()
    for d in guests[:KEEP]:
        try:
            with open(os.path.join(cache, d, 'manifest')) as f:
                keep |= {'%s_%s_amd64.deb' % tuple(ln.strip().replace(':', '%3a').split('=', 1))
                         for ln in f if '=' in ln}
        except OSError:
            pass
    debs = os.path.join(cache, 'debs')
    for f in os.listdir(debs):
        if f not in keep:
            p = os.path.join(debs, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cache', default=None)
    ap.add_argument('--force', action='store_true', help='rebuild even if the cache has it')
    opts = ap.parse_args()
    print(ensure(opts.cache, opts.force))


if __name__ == '__main__':
    main()
