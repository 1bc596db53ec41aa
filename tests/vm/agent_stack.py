"""agent_stack: the staging side for an agent running in a QEMU guest.

Run on the host by a guest test's .host hook (scripts/vm/run.sh --host):

    python3 tests/vm/agent_stack.py --base PORT

It starts, on 127.0.0.1 (the guest's 10.0.2.2):
  * ferry-control on PORT (https), with keys for an installer;
  * ferry-replicator on PORT+1, registered with ferry-control under the
    address 10.0.2.2, so the agent in the guest is sent to it;
  * a small plain-HTTP service on PORT+2 through which the guest test
    asks for what it cannot see from inside:
      GET /setup             agent.conf lines: endpoint, region, keys
      GET /ca.pem            ferry-control's CA
      GET /state             "STATE LIFECYCLE" of the one source server
      GET /compare?disk=N&name=/dev/vdb
                             sha256 of the guest's Nth disk image (as QEMU
                             sees it) against the staging volume of that
                             disk: "EQUAL HASH" or "DIFFER SRC STAGED"
      GET /cut?ms=N          take the guest's network down for N ms (QMP
                             set_link), answering first
      GET /log               the tails of both daemons' logs
      GET /snapcheck?cps=A,B&name=/dev/vda
                             the newest snapshot at one of those CPs,
                             exported and checked with e2fsck -fn
      GET /describe          `aws mgn describe-source-servers` against
                             ferry-control, as a few lines for people
      GET /kill-replicator?ms=N
                             kill -9 ferry-replicator, start it again N ms
                             later (answering first)
      GET /fill, GET /free   fill the staging filesystem (a tmpfs of
                             --staging-size) to the last byte with a
                             file of its own; remove that file
      GET /export?after=N&name=/dev/vdb&out=FILE[&id=SNAPSHOT]
                             the newest snapshot with a CP id >= N (or
                             the one named)
                             exported raw to $FERRY_DEMO_OUT/FILE
                             ("EXPORTED ID" or "NONE ...")
It runs until it is terminated (run.sh stops it when the guest is done).
"""
import argparse
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'control'))
sys.path.insert(0, os.path.join(HERE, '..', 'replicator'))
import ferrytest  # noqa: E402
import repltest  # noqa: E402

GUEST_HOST = '10.0.2.2'


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def qmp(cmd, args, sock=None):
    """One QMP command on the guest's monitor socket (SOCK, or run.sh's
    $FERRY_QMP)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock or os.environ['FERRY_QMP'])
    f = s.makefile('rw')
    f.readline()
    for c in ({'execute': 'qmp_capabilities'},
              {'execute': cmd, 'arguments': args}):
        f.write(json.dumps(c) + '\n')
        f.flush()
        while True:
            r = json.loads(f.readline())
            if 'return' in r or 'error' in r:
                break
    s.close()
    return r


class Stack:
    def __init__(self, base, assets_dir=None, staging_size=None,
                 pit_policy="5s:1h"):
        self.base = base
        args = ['--hostname', GUEST_HOST, '--agent-timeout', '60']
        if assets_dir:
            # The packages install.sh downloads (make deb / make rpm).
            args += ['--assets-dir', assets_dir]
        self.ctl = ferrytest.Control(args=args)
        # ferry-control listens where Control chose; the guest needs a
        # fixed port: restart it there.
        self.ctl.stop()
        self.ctl.start(port=base)
        # ferry-control sets no pitPolicy for the servers to come: the
        # replicator's pit_policy (5 s, below) applies to them.
        self.data = os.path.join(self.ctl.tmp, 'staging')
        self.mounted = False
        if staging_size:
            # A filesystem of its own, so that a test can fill it up.
            os.makedirs(self.data)
            subprocess.run(['mount', '-t', 'tmpfs', '-o',
                            'size=%s,mode=0700' % staging_size, 'ferry-staging',
                            self.data], check=True)
            self.mounted = True
        creds = os.path.join(self.ctl.tmp, 'replicator.key')
        with os.fdopen(os.open(creds, os.O_WRONLY | os.O_CREAT, 0o600),
                       'w') as f:
            f.write('access_key_id = %s\nsecret_access_key = %s\n' %
                    (self.ctl.replicator['AccessKeyId'],
                     self.ctl.replicator['SecretAccessKey']))
        conf = os.path.join(self.ctl.tmp, 'replicator.conf')
        with open(conf, 'w') as f:
            f.write('id = stage-vm\ncontrol_url = %s\ncontrol_ca = %s\n'
                    'credentials_file = %s\nreport_interval = 2\n'
                    'advertise = %s:%d\n'
                    # A snapshot at every consistency point 5 s apart,
                    # so that the test sees those made under load.
                    'pit_policy = %s\n' %
                    (self.ctl.url, self.ctl.ca, creds, GUEST_HOST, base + 1,
                     pit_policy))
        self.repl_conf = conf
        self.repl_log = open(os.path.join(self.ctl.tmp, 'replicator.log'),
                             'w')
        self.start_replicator()

    def start_replicator(self):
        self.repl = subprocess.Popen(
            [repltest.REPLICATOR, 'serve', '--listen',
             '127.0.0.1:%d' % (self.base + 1), '--data-dir', self.data,
             '--config', self.repl_conf], stdin=subprocess.DEVNULL,
            stdout=self.repl_log, stderr=self.repl_log)

    def kill_replicator(self, ms):
        """kill -9 the replicator now; start it again MS ms later."""
        self.repl.kill()
        self.repl.wait()

        def restart():
            time.sleep(ms / 1000)
            self.start_replicator()
        threading.Thread(target=restart, daemon=True).start()

    def fill_path(self):
        return os.path.join(self.data, 'fill')

    def fill(self):
        """Take every free byte of the staging filesystem."""
        if not self.mounted:
            return ('ERROR the staging directory is not a filesystem of '
                    'its own (--staging-size)\n')
        # The replicator writes meanwhile: take what is free, again and
        # in smaller pieces, until nothing is.
        size, chunk = 0, None
        fd = os.open(self.fill_path(), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                st = os.statvfs(self.data)
                free = st.f_bavail * st.f_frsize
                chunk = free if chunk is None else min(chunk, free)
                if chunk < st.f_frsize:
                    break
                try:
                    os.posix_fallocate(fd, size, chunk)
                    size += chunk
                except OSError:
                    chunk //= 2
        finally:
            os.close(fd)
        return 'FILLED %d\n' % size

    def free(self):
        try:
            size = os.path.getsize(self.fill_path())
            os.unlink(self.fill_path())
        except FileNotFoundError:
            size = 0
        return 'FREED %d\n' % size

    def source_server(self):
        r = self.ctl.aws('mgn', 'describe-source-servers', '--filters', '{}')
        items = r.get('items', [])
        return items[0] if items else None

    def snapcheck(self, cps, disk):
        """The newest snapshot taken at one of the consistency points
        CPS, exported raw and
        checked with e2fsck -fn (no change, no journal replay): "CLEAN
        id", "DIRTY id output", or "NONE"."""
        s = self.source_server()
        if not s:
            return 'NONE no source server\n'
        out = subprocess.run(
            [repltest.REPLICATOR, 'snapshot', 'list', '--data-dir',
             self.data, '--source-id', s['sourceServerID']],
            capture_output=True, text=True)
        snaps = [x for src in json.loads(out.stdout or '{}').get(
            'source_servers', []) for x in src.get('snapshots', [])
            if x.get('cp_id') in cps]
        if not snaps:
            return 'NONE no snapshot at CPs %s\n' % cps
        snap = max(snaps, key=lambda x: x['cp_id'])
        img = os.path.join(self.ctl.tmp, 'snapcheck.img')
        r = subprocess.run(
            [repltest.REPLICATOR, 'snapshot', 'export', '--data-dir',
             self.data, '--id', snap['id'], '--disk', disk, '--format',
             'raw', '--out', img], capture_output=True, text=True)
        if r.returncode:
            return 'DIRTY %s export: %s\n' % (snap['id'], r.stderr[-300:])
        r = subprocess.run(['e2fsck', '-fn', img], capture_output=True,
                           text=True)
        os.unlink(img)
        if r.returncode:
            return 'DIRTY %s e2fsck %d: %s\n' % (
                snap['id'], r.returncode,
                ' '.join((r.stdout + r.stderr).split())[-400:])
        return 'CLEAN %s cp_id=%d\n' % (snap['id'], snap['cp_id'])

    def describe(self):
        """What `aws mgn describe-source-servers` says, for people."""
        s = self.source_server()
        if not s:
            return 'no source server yet\n'
        d = s.get('dataReplicationInfo', {})
        disks = d.get('replicatedDisks', [])
        done = sum(x.get('replicatedStorageBytes', 0) for x in disks)
        total = sum(x.get('totalStorageBytes', 0) for x in disks)
        return ('$ aws mgn describe-source-servers --endpoint-url %s\n'
                '  %s (%s): dataReplicationState %s, lifeCycle %s,\n'
                '  replicated %d of %d bytes, lag %s, backlog %s bytes\n' %
                (self.ctl.url, s['sourceServerID'],
                 s.get('sourceProperties', {}).get(
                     'identificationHints', {}).get('hostname', '?'),
                 d.get('dataReplicationState'),
                 s.get('lifeCycle', {}).get('state'), done, total,
                 d.get('lagDuration', '-'),
                 sum(x.get('backloggedStorageBytes', 0) for x in disks)))

    def export(self, after, disk, out, ident=None):
        """The newest snapshot with cp_id >= AFTER (or the one named
        IDENT), raw, into $FERRY_DEMO_OUT/OUT."""
        dest = os.environ.get('FERRY_DEMO_OUT')
        s = self.source_server()
        if not dest or not s or '/' in out:
            return 'NONE no FERRY_DEMO_OUT or no source server\n'
        lst = subprocess.run(
            [repltest.REPLICATOR, 'snapshot', 'list', '--data-dir',
             self.data, '--source-id', s['sourceServerID']],
            capture_output=True, text=True)
        snaps = [x for src in json.loads(lst.stdout or '{}').get(
            'source_servers', []) for x in src.get('snapshots', [])
            if x.get('cp_id', 0) >= after and (not ident or
                                               x['id'] == ident)]
        if not snaps:
            return 'NONE no snapshot at CP %d or later yet\n' % after
        snap = max(snaps, key=lambda x: x['cp_id'])
        r = subprocess.run(
            [repltest.REPLICATOR, 'snapshot', 'export', '--data-dir',
             self.data, '--id', snap['id'], '--disk', disk, '--format',
             'raw', '--out', os.path.join(dest, out)],
            capture_output=True, text=True)
        if r.returncode:
            return 'NONE export failed: %s\n' % r.stderr[-300:]
        return 'EXPORTED %s %s\n' % (snap['id'], snap.get('time', ''))

    def stop(self):
        if self.repl.poll() is None:
            self.repl.terminate()
            try:
                self.repl.wait(20)
            except subprocess.TimeoutExpired:
                self.repl.kill()
        self.ctl.stop()
        if self.mounted:
            subprocess.run(['umount', self.data])
            self.mounted = False


def make_handler(stack):
    disks = os.environ.get('FERRY_VM_DISKS', '').split()

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, code, body):
            b = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header('Content-Length', str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            q = dict(urllib.parse.parse_qsl(u.query))
            try:
                self.route(u.path, q)
            except Exception as e:  # reported to the guest test
                self.reply(500, 'ERROR %s\n' % e)

        def route(self, path, q):
            if path == '/setup':
                k = stack.ctl.installer
                self.reply(200, 'endpoint = https://%s:%d\nregion = %s\n'
                           'access-key-id = %s\nsecret-access-key = %s\n' %
                           (GUEST_HOST, stack.base, ferrytest.REGION,
                            k['AccessKeyId'], k['SecretAccessKey']))
            elif path == '/ca.pem':
                with open(stack.ctl.ca) as f:
                    self.reply(200, f.read())
            elif path == '/state':
                s = stack.source_server()
                if not s:
                    self.reply(200, 'NONE NONE\n')
                    return
                self.reply(200, '%s %s\n' % (
                    s['dataReplicationInfo'].get('dataReplicationState'),
                    s['lifeCycle'].get('state')))
            elif path == '/compare':
                s = stack.source_server()
                img = disks[int(q['disk'])]
                vol = repltest.volume_path(stack.data, s['sourceServerID'],
                                           q['name'])
                a = sha256(img)
                b = sha256(vol) if os.path.exists(vol) else 'missing'
                self.reply(200, ('EQUAL %s\n' % a) if a == b else
                           ('DIFFER %s %s\n' % (a, b)))
            elif path == '/cut':
                ms = int(q.get('ms', '3000'))

                def cut():
                    qmp('set_link', {'name': 'net0', 'up': False})
                    time.sleep(ms / 1000)
                    qmp('set_link', {'name': 'net0', 'up': True})
                threading.Thread(target=cut, daemon=True).start()
                self.reply(200, 'OK\n')
            elif path == '/kill-replicator':
                stack.kill_replicator(int(q.get('ms', '3000')))
                self.reply(200, 'OK\n')
            elif path == '/fill':
                self.reply(200, stack.fill())
            elif path == '/free':
                self.reply(200, stack.free())
            elif path == '/snapcheck':
                cps = [int(c) for c in q.get('cps', '').split(',') if c]
                self.reply(200, stack.snapcheck(cps,
                                                q.get('name', '/dev/vda')))
            elif path == '/describe':
                self.reply(200, stack.describe())
            elif path == '/export':
                self.reply(200, stack.export(int(q.get('after', '0')),
                                             q['name'], q['out'],
                                             q.get('id')))
            elif path == '/log':
                stack.repl_log.flush()
                with open(stack.repl_log.name) as f:
                    rl = f.read()[-3000:]
                self.reply(200, '--- replicator\n%s\n--- control\n%s\n' %
                           (rl, stack.ctl.log()[-3000:]))
            else:
                self.reply(404, 'no such thing\n')

        def log_message(self, fmt, *args):
            sys.stderr.write('agent_stack: ' + fmt % args + '\n')

    return Handler


def repl_summary(path):
    """What the replicator did that the guest's checks do not see: the
    snapshots it deleted to make room (docs/replicator.md, "A full
    staging filesystem") and its last errors (a kill -9 or a cut logs
    some by design), for the .host log."""
    try:
        with open(path, errors='replace') as f:
            lines = f.readlines()
    except OSError as e:
        return 'agent_stack: replicator log unreadable: %s\n' % e
    yields = [x for x in lines if 'deleted the oldest snapshot' in x]
    errors = [x for x in lines if x.startswith('ferry-replicator: error: ')]
    return ('agent_stack: replicator: %d log lines, %d oldest snapshots '
            'deleted for space, %d errors%s\n%s' %
            (len(lines), len(yields), len(errors),
             ' (the last ones below)' if errors else '',
             ''.join(yields[-3:] + errors[-10:])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--base', type=int, required=True)
    ap.add_argument('--pit-policy', default='5s:1h',
                    help="the replicator's pit_policy (default 5s:1h); "
                    'with --staging-size, a retention its snapshots fit in')
    ap.add_argument('--staging-size',
                    help='staging directory on a tmpfs of this size '
                    '(e.g. 1G), so that /fill can fill it')
    a = ap.parse_args()
    stack = Stack(a.base, staging_size=a.staging_size,
                  pit_policy=a.pit_policy)
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', a.base + 2),
                                          make_handler(stack))

    def on_term(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    print('agent_stack: ready: control %d, replicator %d, service %d' %
          (a.base, a.base + 1, a.base + 2), flush=True)
    try:
        srv.serve_forever()
    finally:
        stack.stop()
        stack.repl_log.flush()
        sys.stdout.write(repl_summary(stack.repl_log.name))
        sys.stdout.write(stack.ctl.log()[-2000:])
        shutil.rmtree(stack.ctl.tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
