"""t_repl_replicator_id: the agent sends its disks only to the replicator
ferry-control assigned to it, not to whichever replicator answers at
that replicator's address.

A real ferry-control (tests/agent/agentctl.py) registers the real agent
and, once an administrator registers replicator stage-a at 127.0.0.1:P,
assigns it to the agent.  At P runs a real ferry-replicator (tests/agent/
repl.py's) that would take the server's disks: first one whose
certificate, from the same CA, for the same address, names replicator
stage-b (stage-a retired and its address given to stage-b, or both
behind one NAT address), then a TLS server whose certificate has the
replicator key purpose but no replicator ID, then stage-a itself.
`ferry-agent --once` must refuse the first two before HELLO, with one
line naming both IDs, the address and what to check, and leave no
staging volume behind; with stage-a it copies the disk.  Standalone, the
optional replicator-id does the same; without it, any replicator of the
CA is taken as before (t_repl_copy.py).
"""
import os
import subprocess
import time
import types

import agentctl
import repl
from repl import MiB, R, check, done, log

EKU = '2.25.62129563338904629873796490502516882673'   # lib/peer_id.h


def issue(ctl, out, kind, ident, names=()):
    """A certificate of ferry-control's own CA (certs issue)."""
    cmd = [R.CONTROL, 'certs', 'issue', '--data-dir', ctl.data_dir,
           '--kind', kind, '--id', ident, '--out-dir', out]
    for n in names:
        cmd += ['--name', n]
    subprocess.run(cmd, check=True, capture_output=True)
    return (os.path.join(out, ident + '.pem'),
            os.path.join(out, ident + '-key.pem'))


def replicator(ctl, out, ident, data, sid, port=0):
    """A standalone ferry-replicator showing a certificate for replicator
    IDENT at 127.0.0.1, that lets SID write any disk, on PORT."""
    pki = types.SimpleNamespace(
        server=issue(ctl, out, 'replicator', ident, ['127.0.0.1']),
        ca=ctl.ca)
    return R.Replicator(pki, data, allow=['%s *' % sid], port=port).start()


def no_id_server(ctl, out, port):
    """openssl s_server on 127.0.0.1:PORT with a certificate of the CA
    for 127.0.0.1 with the replicator key purpose and no replicator ID
    (not one ferry-control issues)."""
    key, csr, crt, ext = (os.path.join(out, n) for n in
                          ('noid-key.pem', 'noid.csr', 'noid.pem', 'ext'))
    with open(ext, 'w') as f:
        f.write('extendedKeyUsage = %s\nsubjectAltName = IP:127.0.0.1\n'
                % EKU)
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec',
                    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                    '-keyout', key, '-out', csr, '-subj', '/CN=stage-a'],
                   check=True, capture_output=True)
    subprocess.run(['openssl', 'x509', '-req', '-in', csr, '-out', crt,
                    '-CA', ctl.ca, '-CAkey',
                    os.path.join(ctl.data_dir, 'ca-key.pem'),
                    '-CAcreateserial', '-days', '2', '-extfile', ext],
                   check=True, capture_output=True)
    srv = subprocess.Popen(['openssl', 's_server', '-quiet', '-accept',
                            '127.0.0.1:%d' % port, '-cert', crt, '-key',
                            key], stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    ok = agentctl.wait_for('s_server on %d' % port, lambda: (
        srv.poll() is not None or repl.listening(port)), limit=20)
    return srv if ok and srv.poll() is None else None


def once(s, conf, timeout):
    """ferry-agent --config CONF --once: (exit code, stderr); None for
    the code if it had to be killed after TIMEOUT seconds (an agent that
    took a stranger for its replicator may wait for it)."""
    try:
        r = s.run_agent(conf, '--once', timeout=timeout)
        return r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        err = e.stderr or b''
        if isinstance(err, bytes):
            err = err.decode(errors='replace')
        return None, err + '\n(killed after %d s)' % timeout


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else ''


def main():
    with agentctl.Setup() as s:
        tmp = s.tmp
        certs = os.path.join(tmp, 'certs')
        os.makedirs(certs)
        disk = repl.Disk(os.path.join(tmp, 'vdb.img'), 16 * MiB, seed=21)
        s.cleanups.append(disk.close)

        # The agent registers (no replicator yet), gets its certificate.
        conf = s.write_conf('a', devices=disk.dev)
        a = s.agent(conf)
        sid = a.wait_registered()
        check('setup: the agent registers', sid, a.log()[-800:])
        if not sid:
            return
        agentctl.wait_for('the data-plane certificate', lambda: all(
            os.path.exists(os.path.join(a.state, f))
            for f in ('agent.pem', 'agent-key.pem', 'ca.pem')))
        check('setup: SIGTERM, exit 0', a.term() == 0, a.log()[-500:])
        creds = a.creds()

        # stage-b listens; ferry-control has stage-a at that address.
        data_b = os.path.join(tmp, 'data-b')
        rb = replicator(s.ctl, certs, 'stage-b', data_b, sid)
        s.cleanups.append(rb.stop)
        port = rb.port
        peer = '127.0.0.1:%d' % port
        s.ctl.call('RegisterReplicatorForMgn', {
            'replicatorID': 'stage-a', 'address': '127.0.0.1',
            'port': port, 'capacityBytes': 1 << 40,
            'freeBytes': 1 << 39}, expect=200)
        st, _, rt = s.ctl.call('GetAgentRuntimeConfigurationForMgn', {},
                               creds=creds)
        check('setup: ferry-control assigns stage-a at %s' % peer,
              st == 200 and rt.get('replicator') == {
                  'replicatorID': 'stage-a', 'address': '127.0.0.1',
                  'port': port}, (st, rt))

        rc, err = once(s, conf, 120)
        line = last_line(err)
        log('agent: %s' % line)
        check('stage-b at stage-a\'s address: refused, exit 1',
              rc == 1, 'exit %s: %s' % (rc, err[-800:]))
        check('stage-b: one line naming both IDs, the address and what to '
              'check',
              line.startswith('ferry-agent: replicator %s is replicator '
                              'stage-b by its certificate, not stage-a, '
                              'which ferry-control assigned to this '
                              'server: refused' % peer) and
              'check which replicator serves %s and the address '
              'ferry-control has for stage-a' % peer in line, line)
        check('stage-b: nothing reached it (no staging volume, no HELLO)',
              not os.path.exists(os.path.join(data_b, sid)) and
              not any('hello from' in ln for ln in rb.lines),
              rb.log_tail())
        rb.stop()

        # A certificate with no replicator ID at all.
        srv = no_id_server(s.ctl, certs, port)
        check('setup: a TLS server without a replicator ID at %s' % peer,
              srv is not None)
        if srv:
            try:
                rc, err = once(s, conf, 60)
            finally:
                srv.kill()
                srv.wait()
            line = last_line(err)
            check('no replicator ID in the certificate: refused',
                  rc == 1 and
                  'ferry-agent: replicator %s: its certificate names no '
                  'replicator ID' % peer in line and 'stage-a' in line,
                  'exit %s: %s' % (rc, line))

        # stage-a back at its address: the copy goes through.
        data_a = os.path.join(tmp, 'data-a')
        ra = None
        for _ in range(50):     # the port may linger a moment
            try:
                ra = replicator(s.ctl, certs, 'stage-a', data_a, sid,
                                port=port)
                break
            except RuntimeError as e:
                log('replicator stage-a on %d: %s' % (port, e))
                time.sleep(0.2)
        check('setup: stage-a listens at %s' % peer, ra is not None)
        if not ra:
            return
        s.cleanups.append(ra.stop)
        rc, err = once(s, conf, 300)
        vol = R.volume_path(data_a, sid, disk.dev)
        check('stage-a, the assigned replicator: the copy completes',
              rc == 0 and os.path.exists(vol) and
              R.same_prefix(disk.img, vol, disk.size),
              'exit %s: %s' % (rc, err[-800:]))

        # Standalone: replicator-id, when given, is checked the same way.
        def standalone(*extra):
            argv = [agentctl.AGENT, '--once', '--standalone', 'yes',
                    '--replicator', peer, '--source-server-id', sid,
                    '--cert', os.path.join(a.state, 'agent.pem'),
                    '--key', os.path.join(a.state, 'agent-key.pem'),
                    '--ca', os.path.join(a.state, 'ca.pem'),
                    '--tracker-ctl', agentctl.NO_TRACKER,
                    '--state-dir', os.path.join(tmp, 'standalone'),
                    '--devices', disk.dev] + list(extra)
            try:
                return subprocess.run(argv, capture_output=True, text=True,
                                      timeout=300)
            except subprocess.TimeoutExpired:
                return types.SimpleNamespace(returncode=None,
                                             stderr='(killed after 300 s)')
        r = standalone('--replicator-id', 'stage-b')
        line = last_line(r.stderr)
        check('standalone, replicator-id stage-b, stage-a answers: '
              'refused, says which key to check',
              r.returncode == 1 and
              line.startswith('ferry-agent: replicator %s is replicator '
                              'stage-a by its certificate, not stage-b, '
                              'which replicator-id in the configuration '
                              'names: refused' % peer) and
              'check replicator and replicator-id' in line,
              'exit %s: %s' % (r.returncode, line))
        r = standalone('--replicator-id', 'stage-a')
        check('standalone, replicator-id stage-a: replicates',
              r.returncode == 0 and R.same_prefix(disk.img, vol, disk.size),
              'exit %s: %s' % (r.returncode, r.stderr[-800:]))
        r = standalone()
        check('standalone without replicator-id: any replicator of the CA '
              'there, as before', r.returncode == 0,
              'exit %s: %s' % (r.returncode, r.stderr[-800:]))
    done()


if __name__ == '__main__':
    main()
