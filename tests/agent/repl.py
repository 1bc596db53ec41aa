"""repl: the harness of the agent's replication tests
(tests/agent/t_repl_*.py).

The real ferry-agent (build/bin/ferry-agent) in standalone mode, against
a real ferry-replicator on loopback (tests/replicator/repltest.py makes
its CA, certificates and data directory), copying loop devices.  This
machine's kernel cannot load ferry.ko, so these tests use --once, the
agent's cold copy (or rescan) without the tracker; continuous
replication with the module is tested in the QEMU guests
(tests/kmod/guest/agent_sync.sh).  Run with /usr/bin/python3, as root.
"""
import json
import os
import random
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'replicator'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lib'))
import repltest as R  # noqa: E402
from checks import check, done  # noqa: E402,F401  (re-exported)

AGENT = os.path.join(R.BUILD, 'bin', 'ferry-agent')
MiB = R.MiB
log = R.log
SID = 's-0123456789abcdef0'


def listening(port):
    """Something accepts TCP connections on 127.0.0.1:PORT (a test's
    openssl s_server: a bare connection fails its handshake, and it goes
    on to the next)."""
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return True
    except OSError:
        return False


class Disk:
    """A loop device over an image file of SIZE bytes, made by
    repltest.make_image (random data, zero holes, compressible text)."""

    def __init__(self, path, size, seed=1, zero_regions=(),
                 text_regions=()):
        self.img = path
        self.size = size
        R.make_image(path, size, seed=seed, zero_regions=zero_regions,
                     text_regions=text_regions)
        self.dev = subprocess.run(
            ['losetup', '--find', '--show', '--direct-io=on', path],
            check=True, capture_output=True, text=True).stdout.strip()

    def write(self, offset, data):
        """Write DATA at OFFSET through the device (what a user does)."""
        fd = os.open(self.dev, os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self):
        subprocess.run(['losetup', '-d', self.dev], capture_output=True)


class Run:
    """One ferry-agent --once: its exit code, its summary (JSON on
    stdout) and its log (stderr)."""

    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err
        self.summary = R.parse_json(out) or {}

    def disk(self, i=0):
        d = self.summary.get('disks') or [{}]
        return d[i] if i < len(d) else {}

    def why(self):
        return 'rc=%s summary=%s\n%s' % (
            self.rc, json.dumps(self.summary)[:600],
            '\n'.join('      | ' + l for l in self.err.splitlines()[-12:]))


class Setup:
    """A CA, a replicator allowed to take SID's disks, and disks."""

    def __init__(self, name):
        self.dir = R.TestDir(name)
        self.pki = R.Pki(self.dir.path)
        self.data = self.dir.sub('data')
        self.repl = R.Replicator(self.pki, self.data,
                                 allow=['%s *' % SID]).start()
        self.disks = []

    def disk(self, name, size=64 * MiB, **kw):
        d = Disk(self.dir.sub(name + '.img'), size, **kw)
        self.disks.append(d)
        return d

    def volume(self, disk, sid=SID):
        return R.volume_path(self.data, sid, disk.dev)

    def same(self, disk, sid=SID):
        """The staging volume equals the disk, byte for byte."""
        vol = self.volume(disk, sid)
        return os.path.exists(vol) and R.same_prefix(disk.img, vol,
                                                     disk.size) and \
            os.path.getsize(vol) >= disk.size

    def argv(self, disks, *extra, sid=SID, cert=None, port=None):
        """The agent's command line; PORT: dial that port of 127.0.0.1
        instead of the replicator's (a proxy in between)."""
        cert, key = cert or self.pki.client(sid)
        a = [AGENT, '--once', '--standalone', 'yes',
             '--replicator', '127.0.0.1:%d' % (port or self.repl.port),
             '--source-server-id', sid, '--cert', cert, '--key', key,
             '--ca', self.pki.ca, '--tracker-ctl', '/nonexistent/ferry-ctl',
             '--state-dir', self.dir.sub('state-' + sid),
             '--devices', ','.join(d.dev for d in disks)]
        return a + [str(x) for x in extra]

    def once(self, disks, *extra, timeout=300, **kw):
        r = subprocess.run(self.argv(disks, *extra, **kw),
                           capture_output=True, text=True, timeout=timeout)
        return Run(r.returncode, r.stdout, r.stderr)

    def popen(self, disks, *extra, **kw):
        return subprocess.Popen(self.argv(disks, *extra, **kw),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def close(self):
        self.repl.stop()
        for d in self.disks:
            d.close()
        self.dir.cleanup()


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)
