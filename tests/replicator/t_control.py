"""ferry-replicator with ferry-control: a real ferry-control (see
tests/control/ferrytest.py) and a replicator with a replicator key and no
certificate of its own.  It registers (ferry-control issues its server
certificate), takes its assignments (a registered agent's source server
may sync, others are refused), reports its staging volumes, and keeps
serving the last known assignments while ferry-control is down, also
across its own restart."""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

from repltest import (CONTROL, E_DENIED, E_RANGE, E_UNKNOWN_DISK, MiB,
                      REPLICATOR, Client, TestDir, check, control_config,
                      describe, done, log, make_image, need_binaries, sha256,
                      volume_path)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'control'))
import ferrytest  # noqa: E402

RID = 'stage-1'
STRANGER = 's-00000000000000bad'   # a certificate from the CA, not assigned
ALLOWED = 's-000000000000a11ed'    # an allow line, unknown to ferry-control


class Repl:
    """ferry-replicator started with --config only (no --cert/--key)."""

    def __init__(self, data_dir, config):
        self.data_dir = data_dir
        self.config = config
        self.lines = []
        self.proc = None

    def start(self, timeout=30):
        self.lines = []
        self.proc = subprocess.Popen(
            [REPLICATOR, 'serve', '--listen', '127.0.0.1:0', '--data-dir',
             self.data_dir, '--config', self.config],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def reader(proc):
            for line in proc.stderr:
                self.lines.append(line.rstrip('\n'))
                if 'ready on ' in line:
                    self.port = int(line.rsplit(':', 1)[1])
                    ready.set()
            ready.set()
        self.reader = threading.Thread(target=reader, args=(self.proc,),
                                       daemon=True)
        self.reader.start()
        ready.wait(timeout)
        if self.proc.poll() is not None or not ready.is_set():
            raise RuntimeError('ferry-replicator did not start:\n' +
                               self.log_tail(30))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        if self.proc:
            self.reader.join(5)
        return self.proc.returncode if self.proc else None

    def count(self, pattern):
        return sum(1 for l in self.lines if re.search(pattern, l))

    def log_tail(self, n=15):
        return '\n'.join('      | ' + l for l in self.lines[-n:])


def wait_for(fn, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = fn()
        if r:
            return r
        time.sleep(0.2)
    return fn()


def unreachable_then_retries(repl, ctl):
    """Wait for REPL's first "ferry-control unreachable", then for two
    more attempts to reach the stopped CTL (count_attempts()), so that a
    line per attempt would show; how many attempts came."""
    wait_for(lambda: repl.count('ferry-control unreachable'), timeout=60)
    return count_attempts(ctl.port, 2)


def count_attempts(port, want, timeout=60):
    """Listen on PORT (a stopped ferry-control's) and reset each
    connection at once, refused as a ferry-control that is down refuses
    it, until WANT have come or TIMEOUT passes; how many came."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', port))
    s.listen(16)
    s.settimeout(0.2)
    n, deadline = 0, time.time() + timeout
    try:
        while n < want and time.time() < deadline:
            try:
                conn, _ = s.accept()
            except socket.timeout:
                continue
            # An RST: nothing left in TIME_WAIT on ferry-control's port.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack('ii', 1, 0))
            conn.close()
            n += 1
    finally:
        s.close()
    return n


def issue_client(ctl, out_dir, ident):
    subprocess.run([CONTROL, 'certs', 'issue', '--data-dir', ctl.data_dir,
                    '--kind', 'client', '--id', ident, '--out-dir', out_dir],
                   check=True, capture_output=True)
    return (os.path.join(out_dir, ident + '.pem'),
            os.path.join(out_dir, ident + '-key.pem'))


def old_cert(ctl, keyf, cert, t):
    """Replace CERT by one for the same key from ferry-control's CA with
    serverAuth, not ferry's replicator key purpose."""
    csr, ext = t.sub('old.csr'), t.sub('old.ext')
    with open(ext, 'w') as f:
        f.write('extendedKeyUsage = serverAuth\n'
                'subjectAltName = IP:127.0.0.1, URI:urn:ferry:replicator:%s\n'
                % RID)
    subprocess.run(['openssl', 'req', '-new', '-key', keyf, '-subj',
                    '/CN=%s' % RID, '-out', csr], check=True,
                   capture_output=True)
    subprocess.run(['openssl', 'x509', '-req', '-in', csr, '-out', cert,
                    '-CA', ctl.ca, '-CAkey',
                    os.path.join(ctl.data_dir, 'ca-key.pem'),
                    '-CAcreateserial', '-days', '2', '-extfile', ext],
                   check=True, capture_output=True)


def runtime(ctl, creds):
    st, _, r = ctl.call('GetAgentRuntimeConfigurationForMgn', {},
                        creds=creds)
    return r if st == 200 else None


def staged(ctl, sid):
    st, _, r = ctl.call('GetReplicatorAssignmentsForMgn',
                        {'replicatorID': RID})
    if st != 200:
        return None
    for s in r['sourceServers']:
        if s['sourceServerID'] == sid:
            return s.get('staged')
    return None


def refused(res, code):
    e = res and res.get('error')
    return (res is not None and res.get('welcome') is None and e and
            e.get('where') == 'frame' and e.get('code') == code)


def main():
    need_binaries()
    t = TestDir('repl-control')
    repl = None
    ctl = ferrytest.Control()
    try:
        sid, agent = ctl.register_agent(
            'web1', disks=[{'deviceName': '/dev/vda', 'bytes': 4 * MiB,
                            'isBootDisk': True},
                           {'deviceName': '/dev/vdb', 'bytes': 1 * MiB}])
        check('setup: agent registered, waiting for a replicator',
              runtime(ctl, agent)['replicator'] is None)

        key = ctl.replicator
        creds, conf = control_config(ctl, t, RID, 'allow = %s *\n' % ALLOWED)
        data = t.sub('data')

        # Settings that cannot work are refused before starting.
        def refused_conf(extra, why):
            bad = t.sub('bad.conf')
            with open(bad, 'w') as f:
                f.write(extra)
            r = subprocess.run([REPLICATOR, '--data-dir', data, '--config',
                                bad], capture_output=True, text=True,
                               timeout=30)
            check('configuration refused: %s' % why,
                  r.returncode == 2 and why in r.stderr, r.stderr)
        base = 'control_url = %s\ncredentials_file = %s\n' % (ctl.url, creds)
        refused_conf(base + 'id = %s\nlisten = 127.0.0.1:0\n' % RID,
                     'control-ca')
        refused_conf(base + 'id = %s\ncontrol_ca = %s\n' % ('r' * 32, ctl.ca),
                     '1-31 characters')
        refused_conf(base + 'id = %s\ncontrol_ca = %s\n' % (RID, ctl.ca),
                     'advertise')

        # A credentials file others can read is refused.
        os.chmod(creds, 0o644)
        r = subprocess.run([REPLICATOR, '--listen', '127.0.0.1:0',
                            '--data-dir', data, '--config', conf],
                           capture_output=True, text=True, timeout=30)
        check('credentials file readable by others: refused',
              r.returncode != 0 and 'chmod 600' in r.stderr, r.stderr)
        os.chmod(creds, 0o600)

        repl = Repl(data, conf).start()
        cert = os.path.join(data, 'control-cert.pem')
        keyf = os.path.join(data, 'control-key.pem')
        check('registered: server certificate issued by ferry-control',
              os.path.exists(cert) and os.path.exists(keyf) and
              os.stat(keyf).st_mode & 0o777 == 0o600, repl.log_tail())
        v = subprocess.run(['openssl', 'verify', '-CAfile', ctl.ca, cert],
                           capture_output=True, text=True)
        check('server certificate chains to ferry-control\'s CA',
              v.returncode == 0, v.stdout + v.stderr)
        rt = wait_for(lambda: (runtime(ctl, agent) or {}).get('replicator'))
        check('the agent is assigned this replicator',
              rt == {'replicatorID': RID, 'address': '127.0.0.1',
                     'port': repl.port}, rt)
        afile = os.path.join(data, 'control-assignments.json')

        def assigned():
            try:
                doc = json.load(open(afile))
            except (OSError, ValueError):
                return False
            return any(s['sourceServerID'] == sid
                       for s in doc['sourceServers'])
        check('assignments fetched and saved', wait_for(assigned),
              repl.log_tail())

        certs = t.sub('certs')
        os.makedirs(certs)
        img = t.sub('vda.img')
        make_image(img, 4 * MiB, seed=7)
        good = Client(None, sid, [('/dev/vda', img)],
                      cert=issue_client(ctl, certs, sid), ca=ctl.ca)
        rc, res, err = good.run(repl, 'sync')
        vol = volume_path(data, sid, '/dev/vda')
        check('assigned source server syncs its disk',
              rc == 0 and res and res['ok'] and os.path.exists(vol) and
              sha256(vol) == sha256(img),
              '%s %s\n%s' % (describe(res), err.strip(), repl.log_tail()))

        stranger = Client(None, STRANGER, [('/dev/vda', img)],
                          cert=issue_client(ctl, certs, STRANGER), ca=ctl.ca)
        rc, res, _ = stranger.run(repl, 'sync', timeout=60)
        check('source server not assigned: refused (DENIED)',
              refused(res, E_DENIED), describe(res))

        other = Client(None, sid, [('/dev/vdc', img)],
                       cert=good.cert, ca=ctl.ca)
        rc, res, _ = other.run(repl, 'sync', timeout=60)
        check('disk not assigned: refused (UNKNOWN_DISK)',
              refused(res, E_UNKNOWN_DISK), describe(res))

        big = t.sub('big.img')
        make_image(big, 2 * MiB, seed=8)
        grown = Client(None, sid, [('/dev/vdb', big)],
                       cert=good.cert, ca=ctl.ca)
        rc, res, _ = grown.run(repl, 'sync', timeout=60)
        check('disk larger than ferry-control says: refused (RANGE)',
              refused(res, E_RANGE), describe(res))

        aimg = t.sub('allowed.img')
        make_image(aimg, 1 * MiB, seed=9)
        allowed = Client(None, ALLOWED, [('/dev/sda', aimg)],
                         cert=issue_client(ctl, certs, ALLOWED), ca=ctl.ca)
        rc, res, err = allowed.run(repl, 'sync')
        check('allow lines still apply next to ferry-control',
              rc == 0 and res and res['ok'], describe(res) + err)

        want = [{'deviceName': '/dev/vda',
                 'replicatedStorageBytes': 4 * MiB}]
        got = wait_for(lambda: staged(ctl, sid) == want and want)
        check('replicated bytes reported to ferry-control',
              got == want, staged(ctl, sid))
        srv = ctl.aws('mgn', 'describe-source-servers', '--filters',
                      'sourceServerIDs=%s' % sid)['items'][0]
        steps = {s['name']: s['status'] for s in
                 srv['dataReplicationInfo']['dataReplicationInitiation']
                 ['steps']}
        check('describe-source-servers: staging disks created',
              steps.get('CREATE_STAGING_DISKS') == 'SUCCEEDED' and
              steps.get('ATTACH_STAGING_DISKS') == 'SUCCEEDED', steps)
        if any('snapshot ' in l for l in repl.lines):
            def snap_shown():
                it = ctl.aws('mgn', 'describe-source-servers', '--filters',
                             'sourceServerIDs=%s' % sid)['items'][0]
                return (it['dataReplicationInfo'].get(
                    'lastSnapshotDateTime') and
                    it['lifeCycle']['state'] == 'READY_FOR_TEST') and it
            it = wait_for(snap_shown, timeout=10)
            check('snapshot time reported: describe-source-servers shows '
                  'it, READY_FOR_TEST', it, repl.log_tail())
        else:
            log('no snapshot taken by this build: snapshot time not '
                'checked')
        check('the secret key is not in the log',
              not any(key['SecretAccessKey'] in l for l in repl.lines))

        # ferry-control down: the assignments stay.
        ctl.stop()
        # The replicator's report cycle retries with a backoff (1 s,
        # 2 s, 4 s...): its first failure logged, then two more attempts,
        # seen as connections to ferry-control's port (reset at once),
        # before "logged once" is judged below.
        check('ferry-control stopped: unreachable logged',
              wait_for(lambda: repl.count('ferry-control unreachable'),
                       timeout=60), repl.log_tail())
        n = count_attempts(ctl.port, 2)
        check('ferry-control stopped: the replicator tries again (%d '
              'attempts seen)' % n, n == 2, repl.log_tail())
        make_image(img, 4 * MiB, seed=11)
        rc, res, err = good.run(repl, 'sync')
        check('ferry-control stopped: assigned server still syncs',
              rc == 0 and res and res['ok'] and sha256(vol) == sha256(img),
              describe(res) + err)
        rc, res, _ = stranger.run(repl, 'sync', timeout=60)
        check('ferry-control stopped: others still refused',
              refused(res, E_DENIED), describe(res))
        check('unreachable ferry-control logged once, not per attempt',
              repl.count('ferry-control unreachable') == 1,
              repl.log_tail())

        # ... and across the replicator's own restart.
        check('replicator stops cleanly', repl.stop() == 0, repl.log_tail(40))
        repl = Repl(data, conf).start()
        check('restarted without ferry-control: says so once (after two '
              'more attempts: %d seen)' % unreachable_then_retries(repl, ctl),
              repl.count('ferry-control unreachable') == 1,
              repl.log_tail())
        rc, res, err = good.run(repl, 'sync')
        check('restarted without ferry-control: assigned server syncs',
              rc == 0 and res and res['ok'],
              '%s %s\n%s' % (describe(res), err, repl.log_tail()))
        rc, res, _ = stranger.run(repl, 'sync', timeout=60)
        check('restarted without ferry-control: others refused',
              refused(res, E_DENIED), describe(res))

        # ... but not on a saved certificate agents would refuse: one of
        # the same CA and key with serverAuth (as issued before ferry's
        # key purpose existed).
        check('replicator stops cleanly', repl.stop() == 0, repl.log_tail())
        shutil.copy(cert, cert + '.good')
        old_cert(ctl, keyf, cert, t)
        try:
            r = subprocess.run([REPLICATOR, 'serve', '--listen',
                                '127.0.0.1:0', '--data-dir', data,
                                '--config', conf],
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=30)
            rc, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = 'still serving after 30 s', (e.stderr or b'').decode()
        check('restarted without ferry-control, the saved certificate '
              'without the replicator key purpose: exit 1, says why and '
              'what to do', rc == 1 and "lacks ferry's replicator "
              'key purpose' in err and 'once ferry-control answers'
              in err, (rc, err[-600:]))
        os.replace(cert + '.good', cert)
        repl = Repl(data, conf).start()
        check('... with the good one back: starts, ferry-control still '
              'unreachable, said once (after two more attempts: %d seen)' %
              unreachable_then_retries(repl, ctl),
              repl.count('ferry-control unreachable') == 1,
              repl.log_tail())

        # ferry-control back: reports resume.
        ctl.start()
        check('ferry-control back: reachable again',
              wait_for(lambda: repl.count('reachable; reporting') == 1,
                       timeout=90), repl.log_tail())
        check('one log line per state change',
              repl.count('ferry-control unreachable') == 1, repl.log_tail())
        check('replicator stops cleanly with ferry-control up',
              repl.stop() == 0, repl.log_tail())
    finally:
        if repl:
            repl.stop()
        ctl.__exit__(None, None, None)
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
