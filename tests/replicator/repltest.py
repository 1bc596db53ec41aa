"""repltest: the harness of ferry-replicator's integration tests.

Makes a CA and certificates with `ferry-control certs issue`, starts a real
ferry-replicator (build/bin/ferry-replicator) on loopback with a fresh
data directory, and drives it with ferry-wire-client, the test client on
the agent's codec (build/tests/replicator/ferry-wire-client).  Run the
test files with /usr/bin/python3.

Each check prints "PASS name" or "FAIL name: why"; done() exits non-zero
if any failed.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('BUILD', 'build')
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
REPLICATOR = os.environ.get('FERRY_REPLICATOR_BIN',
                            os.path.join(BUILD, 'bin', 'ferry-replicator'))
CONTROL = os.environ.get('FERRY_CONTROL_BIN',
                         os.path.join(BUILD, 'bin', 'ferry-control'))
CLIENT = os.environ.get('FERRY_WIRE_CLIENT',
                        os.path.join(BUILD, 'tests', 'replicator', 'ferry-wire-client'))

MiB = 1 << 20

# include/ferry/wire.h
F_HELLO, F_WELCOME, F_DATA, F_ZERO, F_HASH_REQ, F_HASH_RESP = 1, 2, 3, 4, 5, 6
F_SYNC_MARK, F_CP, F_ACK, F_PING, F_PONG, F_ERROR, F_BYE = 7, 8, 9, 10, 11, 12, 13
E_PROTOCOL, E_VERSION, E_DENIED, E_UNKNOWN_DISK, E_RANGE = 1, 2, 3, 4, 5
E_NOSPC, E_IO, E_CORRUPT, E_BUSY, E_INTERNAL = 6, 7, 8, 9, 10
MAX_DATA = 1 << 20
MAX_PAYLOAD = MAX_DATA + 8192

sys.path.insert(0, os.path.join(ROOT, 'tests', 'lib'))
from checks import check, done  # noqa: E402,F401  (re-exported)


def log(msg):
    print('    %s' % msg, flush=True)


# ---- frames, for the bad-input tests --------------------------------

def frame(ftype, seq, payload, flags=0, length=None, reserved=0):
    """One frame: the 16-byte header and PAYLOAD (LENGTH overrides the
    header's length field)."""
    n = len(payload) if length is None else length
    return struct.pack('>IBBHQ', n, ftype, flags, reserved, seq) + payload


def data_frame(seq, disk, offset, data, xxh3, codec=0, raw_len=None):
    """DATA: u32 disk, u8 codec, u8[3], u32 raw_len, u32 reserved,
    u64 offset, u64 xxh3, then the (encoded) bytes."""
    n = len(data) if raw_len is None else raw_len
    body = struct.pack('>IB3xIIQQ', disk, codec, n, 0, offset, xxh3)
    return frame(F_DATA, seq, body + data)


def zero_frame(seq, disk, offset, length, reserved=0):
    return frame(F_ZERO, seq, struct.pack('>IIQQ', disk, reserved, offset, length))


def xxh3(path):
    """XXH3-64 of a file, from the client (the codec's own hash)."""
    out = subprocess.run([CLIENT, 'xxh3', path], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip(), 16)


# ---- files ----------------------------------------------------------

def make_image(path, size, seed=1, zero_regions=(), text_regions=()):
    """A disk image of SIZE bytes: random data, with ZERO_REGIONS
    (offset, length) left as holes and TEXT_REGIONS filled with
    compressible text."""
    rnd = random.Random(seed)
    with open(path, 'wb') as f:
        f.truncate(size)
        zero = sorted(zero_regions)
        off = 0
        step = 4 * MiB
        while off < size:
            n = min(step, size - off)
            f.seek(off)
            f.write(rnd.randbytes(n))
            off += n
        for o, n in text_regions:
            line = b'ferry test image: the quick brown fox %d\n'
            buf = b''.join(line % i for i in range(n // 40 + 1))[:n]
            f.seek(o)
            f.write(buf)
        for o, n in zero:
            f.seek(o)
            f.write(bytes(n))
    # Punch the zero regions so the image itself is sparse too.
    for o, n in zero_regions:
        subprocess.run(['fallocate', '--punch-hole', '--offset', str(o),
                        '--length', str(n), path], check=False)


def sha256(path, length=None):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        left = length
        while True:
            want = 4 * MiB if left is None else min(4 * MiB, left)
            if want == 0:
                break
            b = f.read(want)
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def same_file(a, b):
    """cmp A B: byte for byte, same size."""
    return subprocess.run(['cmp', '-s', a, b]).returncode == 0


def same_prefix(a, b, length):
    return sha256(a, length) == sha256(b, length)


def allocated(path):
    return os.stat(path).st_blocks * 512


def volume_path(data_dir, source_id, disk_name):
    """Staging volume of DISK_NAME ("/dev/vda" -> dev_vda.img)."""
    return os.path.join(data_dir, source_id,
                        disk_name.lstrip('/').replace('/', '_') + '.img')


# ---- certificates ----------------------------------------------------

class Pki:
    """A CA (ferry-control's) and certificates it issued."""

    def __init__(self, base, name='ca'):
        self.ca_dir = os.path.join(base, name)
        self.out = os.path.join(base, name + '-certs')
        os.makedirs(self.out, exist_ok=True)
        self.server = self.issue('replicator', 'repl1', ['127.0.0.1'])

    def issue(self, kind, ident, names=()):
        cmd = [CONTROL, 'certs', 'issue', '--data-dir', self.ca_dir,
               '--kind', kind, '--id', ident, '--out-dir', self.out]
        for n in names:
            cmd += ['--name', n]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError('certs issue %s %s: %s' % (kind, ident, r.stderr))
        return (os.path.join(self.out, ident + '.pem'),
                os.path.join(self.out, ident + '-key.pem'))

    @property
    def ca(self):
        return os.path.join(self.out, 'ca.pem')

    def client(self, source_id):
        cert = os.path.join(self.out, source_id + '.pem')
        if not os.path.exists(cert):
            self.issue('client', source_id)
        return cert, os.path.join(self.out, source_id + '-key.pem')


# ---- the replicator ----------------------------------------------------

class Replicator:
    """A ferry-replicator serving DATA_DIR on an ephemeral loopback port."""

    def __init__(self, pki, data_dir, allow=(), extra_config='', port=0):
        self.pki = pki
        self.data_dir = data_dir
        self.allow = list(allow)
        self.extra_config = extra_config
        self.port = port
        self.proc = None
        self.addr = None
        self.lines = []
        self.config = os.path.join(os.path.dirname(data_dir.rstrip('/')),
                                   os.path.basename(data_dir.rstrip('/')) + '.conf')

    def write_config(self):
        with open(self.config, 'w') as f:
            f.write('# written by tests/replicator/repltest.py\n')
            for a in self.allow:
                f.write('allow = %s\n' % a)
            f.write(self.extra_config)

    def start(self, timeout=20):
        os.makedirs(self.data_dir, exist_ok=True)
        self.write_config()
        cert, key = self.pki.server
        cmd = [REPLICATOR, 'serve', '--listen', '127.0.0.1:%d' % self.port,
               '--data-dir', self.data_dir, '--cert', cert, '--key', key,
               '--ca', self.pki.ca, '--config', self.config]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def reader(proc):
            for line in proc.stderr:
                self.lines.append(line.rstrip('\n'))
                if 'ready on ' in line and not ready.is_set():
                    self.addr = line.split('ready on ', 1)[1].strip()
                    ready.set()
            ready.set()
        self.reader = threading.Thread(target=reader, args=(self.proc,),
                                       daemon=True)
        self.reader.start()
        ready.wait(timeout)
        if not self.addr:
            self.stop()
            raise RuntimeError('ferry-replicator did not get ready:\n  %s' %
                               '\n  '.join(self.lines[-20:]))
        self.port = int(self.addr.rsplit(':', 1)[1])
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, 'reader', None):
            self.reader.join(5)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def log_tail(self, n=15):
        return '\n'.join('      | ' + l for l in self.lines[-n:])

    def logged(self, pred, limit=20):
        """Whether a log line satisfies PRED, waiting up to LIMIT s for
        it: the log is read by a thread of this process, which a loaded
        machine may run late."""
        end = time.time() + limit
        while True:
            if any(pred(l) for l in list(self.lines)):
                return True
            if time.time() >= end:
                return False
            time.sleep(0.1)


# ---- with ferry-control ------------------------------------------------

def control_config(ctl, t, rid, extra=''):
    """Files for a replicator RID of ferry-control CTL (tests/control/
    ferrytest.py) in TestDir T: the replicator key in a credentials file
    (0600) and a configuration using it, polling and reporting every
    second, with EXTRA lines.  -> (credentials file, configuration)."""
    creds = t.sub('replicator.key')
    with open(creds, 'w') as f:
        f.write('# replicator key\naccess_key_id = %s\n'
                'secret_access_key = %s\n' %
                (ctl.replicator['AccessKeyId'],
                 ctl.replicator['SecretAccessKey']))
    os.chmod(creds, 0o600)
    conf = t.sub('repl.conf')
    with open(conf, 'w') as f:
        f.write('id = %s\ncontrol_url = %s\ncontrol_ca = %s\n'
                'credentials_file = %s\nreport_interval = 1\n%s' %
                (rid, ctl.url, ctl.ca, creds, extra))
    return creds, conf


def control_pit_policy(ctl, rules, sid=None):
    """Make RULES (a pitPolicy: a list of {"ruleID", "units", "interval",
    "retentionDuration", "enabled"}; None: no policy, the replicator's
    pit_policy applies) the point-in-time policy of source server SID at
    ferry-control CTL, or with SID None that of its replication
    configuration templates (which servers registered later copy) and
    of every server that can still be changed.  Through the API, as an
    administrator would (docs/api.md, *Point-in-time policy*)."""
    sys.path.insert(0, os.path.join(os.path.dirname(
        os.path.abspath(__file__)), '..', 'control'))
    import ferrytest

    def update(op, body):
        st, _, r = ferrytest.call(ctl, op, dict(body, pitPolicy=rules))
        if st != 200:
            raise RuntimeError('control_pit_policy: %s answered %d: %s' %
                               (op, st, r))

    if sid is not None:
        update('UpdateReplicationConfiguration', {'sourceServerID': sid})
        return
    _, _, r = ferrytest.call(ctl, 'DescribeReplicationConfigurationTemplates',
                             {})
    for t in r['items']:
        update('UpdateReplicationConfigurationTemplate',
               {'replicationConfigurationTemplateID':
                t['replicationConfigurationTemplateID']})
    _, _, r = ferrytest.call(ctl, 'DescribeSourceServers', {})
    for s in r['items']:
        # Archived and disconnected servers cannot be changed.
        if s.get('isArchived') or 'DISCONNECTED' in (
                s.get('lifeCycle', {}).get('state'),
                s.get('dataReplicationInfo', {}).get(
                    'dataReplicationState')):
            continue
        update('UpdateReplicationConfiguration',
               {'sourceServerID': s['sourceServerID']})


class Client:
    """ferry-wire-client for one source server and its disks."""

    def __init__(self, pki, source_id, disks, cert=None, ca=None,
                 no_cert=False):
        self.pki = pki
        self.source_id = source_id
        self.disks = list(disks)  # (name, image path)
        if no_cert:
            self.cert = None
        else:
            self.cert = cert or pki.client(source_id)
        self.ca = ca or pki.ca

    def argv(self, repl, command, *opts, hello_source=None):
        a = [CLIENT, '--connect', '127.0.0.1:%d' % repl.port, '--ca', self.ca,
             '--source-id', hello_source or self.source_id]
        if self.cert:
            a += ['--cert', self.cert[0], '--key', self.cert[1]]
        for name, path in self.disks:
            a += ['--disk', '%s=%s' % (name, path)]
        return a + [command] + [str(o) for o in opts]

    def run(self, repl, command, *opts, hello_source=None, timeout=300):
        """Run a command; (exit code, parsed JSON or None, stderr)."""
        r = subprocess.run(self.argv(repl, command, *opts,
                                     hello_source=hello_source),
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, parse_json(r.stdout), r.stderr

    def popen(self, repl, command, *opts, stdin=None):
        """Start a command (STDIN subprocess.PIPE for --hold-after)."""
        return subprocess.Popen(self.argv(repl, command, *opts),
                                stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def hold(self, repl, command, *opts, after=0):
        """Start COMMAND with --hold-after AFTER and wait until it holds:
        its disks claimed, AFTER frames acknowledged.  -> (process, True
        if it held; False if it ended first).  Let it go on with
        process.communicate(input='\\n')."""
        p = self.popen(repl, command, *opts, '--hold-after', after,
                       stdin=subprocess.PIPE)
        # Nothing follows "held" on stdout until the client is let go,
        # so this line read leaves nothing buffered for communicate().
        return p, p.stdout.readline().startswith('held ')


def parse_json(out):
    for line in reversed(out.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def describe(res):
    """Short text of a client result for FAIL lines."""
    if res is None:
        return 'no JSON from the client'
    e = res.get('error')
    s = 'ok=%s' % res.get('ok')
    if e:
        s += ' error=%s %s: %s' % (e.get('where'), e.get('name') or e.get('code'),
                                   e.get('message'))
    return s


class TestDir:
    """A temporary directory, removed at exit (after unmounting)."""

    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix='ferry-%s.' % prefix)
        self.mounts = []

    def sub(self, *names):
        p = os.path.join(self.path, *names)
        return p

    def cleanup(self):
        for m in reversed(self.mounts):
            subprocess.run(['umount', '-l', m], check=False,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(self.path, ignore_errors=True)


def need_binaries():
    missing = [p for p in (REPLICATOR, CONTROL, CLIENT) if not os.access(p, os.X_OK)]
    if missing:
        print('FAIL %s: not built: %s (run make)' %
              (os.path.basename(sys.argv[0]), ', '.join(missing)))
        sys.exit(1)
