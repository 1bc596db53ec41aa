"""t_repl_faults: ferry-agent's copy through faults, for real.

The replicator killed with SIGKILL in the middle of a copy and restarted;
the network cut (a forwarding proxy that drops every connection and
refuses new ones for a while); the staging filesystem full, then grown.
After each, the agent must reconnect on its own, resume from what the
replicator acknowledged (not from the start) and leave a staging volume
equal to the disk.  Also: the bandwidth limit (token bucket accounting),
and the refusals that need a person (a certificate from another CA, a
replicator whose certificate our CA did not sign, a server not assigned
to the replicator), which must end --once at once with a clear reason.
"""
import os
import socket
import subprocess
import threading
import time

import agentctl
import repl
from repl import MiB, R, check, done, log


def control_cert_refused(s, c):
    """The agent against a TLS server showing a certificate of the same
    CA for the right address, with serverAuth as ferry-control's own has
    (ca.c), not the replicator's key purpose (peer_id.h): refused.
    (check's ok, detail)."""
    d = s.dir.sub('https')
    os.makedirs(d, exist_ok=True)
    key, csr, crt, ext = (os.path.join(d, n) for n in
                          ('k.pem', 'r.csr', 'c.pem', 'ext'))
    with open(ext, 'w') as f:
        f.write('extendedKeyUsage = serverAuth\n'
                'subjectAltName = IP:127.0.0.1\n')
    ca_dir = s.pki.ca_dir
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec',
                    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                    '-keyout', key, '-out', csr, '-subj', '/CN=control'],
                   check=True, capture_output=True)
    subprocess.run(['openssl', 'x509', '-req', '-in', csr, '-out', crt,
                    '-CA', os.path.join(ca_dir, 'ca.pem'), '-CAkey',
                    os.path.join(ca_dir, 'ca-key.pem'), '-CAcreateserial',
                    '-days', '2', '-extfile', ext],
                   check=True, capture_output=True)
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    port = ls.getsockname()[1]
    ls.close()
    srv = subprocess.Popen(['openssl', 's_server', '-quiet', '-accept',
                            '127.0.0.1:%d' % port, '-cert', crt, '-key',
                            key], stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        # Listening, however late it was scheduled.
        agentctl.wait_for('s_server on %d' % port, lambda: (
            srv.poll() is not None or repl.listening(port)), limit=30)
        argv = s.argv([c])
        argv[argv.index('--replicator') + 1] = '127.0.0.1:%d' % port
        try:
            pr = subprocess.run(argv, capture_output=True, text=True,
                                timeout=30)
        except subprocess.TimeoutExpired as e:
            return False, 'the agent took it for a replicator and ' \
                'waited: %s' % (e.stderr or b'')[-400:]
    finally:
        srv.kill()
        srv.wait()
    return (pr.returncode != 0 and 'is not a replicator' in pr.stderr,
            pr.stderr[-400:])


class CutProxy:
    """TCP forwarding 127.0.0.1:port -> the replicator, with cut().
    HOLD_AT: the first connection's agent -> replicator bytes stop there
    (held set) until release(), so that a fault lands in the middle of a
    copy however late this process is scheduled (a watcher of the
    volume's size once saw the whole copy pass)."""

    def __init__(self, target_port, hold_at=None):
        self.target = target_port
        self.hold_at = hold_at
        self.held = threading.Event()
        self.released = threading.Event()
        self.answered = threading.Event()   # replicator bytes after held
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        self.down_until = 0
        self.accepted = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            if time.time() < self.down_until:
                c.close()
                continue
            try:
                u = socket.create_connection(('127.0.0.1', self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
                self.accepted += 1
                hold = self.hold_at if self.accepted == 1 else None
            threading.Thread(target=self.pump, args=(c, u, hold),
                             daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c, None, True),
                             daemon=True).start()

    def pump(self, a, b, hold=None, answers=False):
        sent = 0
        try:
            while True:
                d = a.recv(65536 if hold is None else
                           max(1, min(65536, hold - sent)))
                if not d:
                    break
                if answers and self.held.is_set():
                    self.answered.set()
                sent += len(d)
                # Held is set before the last bytes go, so that an
                # answer to them cannot come before it.
                if hold is not None and sent >= hold:
                    self.held.set()
                b.sendall(d)
                if hold is not None and sent >= hold:
                    self.released.wait()
                    hold = None
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self):
        self.released.set()

    def cut(self, seconds):
        """Drop every connection; refuse new ones for SECONDS."""
        self.down_until = time.time() + seconds
        self.release()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b'\x01\x00\x00\x00\x00\x00\x00\x00')
                c.close()
            except OSError:
                pass

    def close(self):
        self.ls.close()
        self.cut(0)


def volume_bytes(s, disk):
    """Bytes of the staging volume on its filesystem (what arrived)."""
    try:
        return os.stat(s.volume(disk)).st_blocks * 512
    except OSError:
        return 0


def finish(proc, timeout=300):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return repl.Run(proc.returncode, out, err)


s = repl.Setup('agent-repl-faults')
try:
    size = 96 * MiB
    a = s.disk('a', size, seed=3)
    # Uncompressed: the bytes through the proxy are the disk's.
    plain = ('--compression', 'none')

    # ---- the replicator killed with SIGKILL, restarted ----
    # Through a proxy that holds the copy at 24 MiB until the kill.
    proxy = CutProxy(s.repl.port, hold_at=24 * MiB)
    real_port = s.repl.port
    s.repl.port = proxy.port
    p = s.popen([a], *plain)
    s.repl.port = real_port
    # Killed once it acknowledged what it had (an ACK after the hold):
    # the agent must resume from there, not from 0.
    hit = proxy.held.wait(120) and proxy.answered.wait(30)
    s.repl.kill9()
    proxy.release()
    at = volume_bytes(s, a)
    time.sleep(1.5)
    s.repl.lines = []
    s.repl.start()
    r = finish(p)
    da = r.disk(0)
    proxy.close()
    check('replicator kill -9: hit in the middle of the copy',
          hit and at < size, 'volume had %d bytes' % at)
    check('replicator kill -9: the agent came back and finished',
          r.rc == 0 and s.same(a), r.why())
    check('replicator kill -9: resumed, not restarted from 0',
          'initial copy resumes at 0 ' not in r.err and
          da.get('data_raw_bytes', 0) < 2 * size and
          da.get('resent_bytes', 0) <= 64 * MiB, r.why())

    # ---- a network cut ----
    b = s.disk('b', size, seed=4)
    proxy = CutProxy(s.repl.port, hold_at=24 * MiB)
    real_port = s.repl.port
    s.repl.port = proxy.port     # the agent connects through the proxy
    p = s.popen([b], *plain)
    s.repl.port = real_port
    hit = proxy.held.wait(120) and p.poll() is None
    proxy.cut(3)
    r = finish(p)
    db = r.disk(0)
    proxy.close()
    check('network cut: hit in the middle of the copy', hit and
          proxy.accepted >= 1)
    check('network cut: reconnected after the cut and finished',
          r.rc == 0 and s.same(b) and proxy.accepted >= 2 and
          'connection to the replicator lost' in r.err, r.why())
    check('network cut: only unacknowledged frames went again',
          db.get('data_raw_bytes', 0) < 2 * size and
          db.get('resent_bytes', 0) <= 64 * MiB, r.why())

    # ---- the bandwidth limit ----
    c = s.disk('c', 16 * MiB, seed=5)
    r = s.once([c], '--bandwidth-mbps', '80', '--compression', 'none')
    t = r.summary.get('throttle', {})
    check('throttle: the limit is the configured 80 Mbit/s',
          r.rc == 0 and s.same(c) and t.get('rate') == 10 * 1000 * 1000,
          r.why())
    check('throttle: the sender waited, and was granted at most '
          'burst + rate * time',
          t.get('waits', 0) > 0 and t.get('granted', 0) >= c.size and
          t['granted'] * 1e9 <= t['burst'] * 1e9 + t['rate'] *
          t['elapsed_ns'], r.why())

    # ---- refusals: --once ends at once, with the reason ----
    other = R.Pki(s.dir.path, name='other-ca')
    r = s.once([c], cert=other.client(repl.SID), timeout=60)
    check('certificate from another CA: refused, clear reason',
          r.rc != 0 and 'refused the TLS session' in r.err, r.why())
    argv = s.argv([c])
    argv[argv.index('--ca') + 1] = other.ca
    pr = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    check('replicator not signed by our CA: refused, clear reason',
          pr.returncode != 0 and 'certificate is not accepted' in
          pr.stderr, pr.stderr[-400:])
    check('ferry-control\'s own HTTPS certificate cannot pass for a '
          'replicator\'s', *control_cert_refused(s, c))
    r = s.once([c], sid='s-00000000000000bad', timeout=60)
    check('server not assigned to this replicator: DENIED, clear reason',
          r.rc != 0 and 'not assigned' in r.err and not os.path.exists(
              s.volume(c, 's-00000000000000bad')), r.why())

    # ---- the staging filesystem full, then grown ----
    s.repl.stop()
    small = s.dir.sub('small')
    os.makedirs(small)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=40m', 'tmpfs',
                    small], check=True)
    s.dir.mounts.append(small)
    s.data = s.repl.data_dir = os.path.join(small, 'data')
    s.repl.start()
    d = s.disk('d', 64 * MiB, seed=6)
    p = s.popen([d], '--compression', 'none')
    end = time.time() + 120
    full = False
    while time.time() < end and p.poll() is None and not full:
        full = any('NOSPC' in l or 'No space' in l for l in s.repl.lines)
        time.sleep(0.1)
    subprocess.run(['mount', '-o', 'remount,size=200m', small], check=True)
    r = finish(p)
    check('staging full: the replicator said so',
          full, '\n'.join(s.repl.lines[-5:]))
    check('staging full: the agent waited, then finished once grown',
          r.rc == 0 and s.same(d) and
          ('NOSPC' in r.err or 'full' in r.err), r.why())
    s.repl.stop()
finally:
    s.close()
done()
