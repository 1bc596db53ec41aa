"""t_cert_id: ferry-replicator starts only with a certificate agents
would take for its id.

Agents check the replicator ID in the replicator's certificate (its URI
SAN urn:ferry:replicator:ID) before HELLO: against the replicatorID
ferry-control assigned them, or standalone against their replicator-id
(agent/link.c check_replicator_id()).  So the replicator checks at start
that the certificate it serves with names its own id:

  standalone, id = the certificate's ID, or no id      serves
  standalone, a certificate naming another replicator  exit 1, one line
  standalone, a certificate naming none                serves, a warning
                                                       (only agents with
                                                       replicator-id check)
  a certificate without ferry's replicator key purpose,  exit 1, one line,
  expired or not valid yet, with or without id          (agents refuse it)
  control-url, cert/key naming another or none         exit 1, one line,
                                                       nothing registered
  control-url, cert/key for its id                     serves
  control-url, no cert: the one ferry-control issues   names its id
  ferry-control unreachable, the saved certificate     exit 1 (another id
  from a registration under another id                 in the same data
                                                       directory)
  something at control-url issuing a certificate for   not stored, exit 1
  another ID
"""
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time

from repltest import (CONTROL, REPLICATOR, Pki, TestDir, check,
                      control_config, done, need_binaries)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'control'))
import ferrytest  # noqa: E402

RID = 'stage-1'
EKU = '2.25.62129563338904629873796490502516882673'   # lib/peer_id.h


def start(args, timeout=30):
    """Run ferry-replicator serve ARGS until it is ready (then stop it)
    or exits.  -> ('ready' or its exit code, its stderr lines)."""
    p = subprocess.Popen([REPLICATOR, 'serve', '--listen', '127.0.0.1:0'] +
                         args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    lines, ready = [], threading.Event()

    def reader():
        for line in p.stderr:
            lines.append(line.rstrip('\n'))
            if 'ready on ' in line:
                ready.set()
        ready.set()
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    ready.wait(timeout)
    serving = any('ready on ' in l for l in lines)
    if p.poll() is None:
        p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    th.join(5)
    return ('ready' if serving else p.returncode), lines


def errors(lines):
    return [l for l in lines if l.startswith('ferry-replicator: error: ')]


def show(res):
    return '%s\n      | %s' % (res[0], '\n      | '.join(res[1][-8:]))


def ca_cert(ca_dir, ca_pem, out, name, eku=EKU, uri=None, dates=None):
    """A certificate of the CA in CA_DIR for 127.0.0.1 with key purpose
    EKU (ferry's replicator one by default) and URI SAN URI, if any; valid
    for 2 days from now, or over DATES = (start, end), openssl ca's
    YYYYMMDDHHMMSSZ.  -> (cert, key)."""
    key, csr, crt, ext = (os.path.join(out, name + n) for n in
                          ('-key.pem', '.csr', '.pem', '.ext'))
    with open(ext, 'w') as f:
        f.write('extendedKeyUsage = %s\nsubjectAltName = IP:127.0.0.1%s\n'
                % (eku, ', URI:' + uri if uri else ''))
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec',
                    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                    '-keyout', key, '-out', csr, '-subj', '/CN=%s' % RID],
                   check=True, capture_output=True)
    ca_key = os.path.join(ca_dir, 'ca-key.pem')
    if not dates:
        subprocess.run(['openssl', 'x509', '-req', '-in', csr, '-out', crt,
                        '-CA', ca_pem, '-CAkey', ca_key, '-CAcreateserial',
                        '-days', '2', '-extfile', ext],
                       check=True, capture_output=True)
        return crt, key
    # openssl x509 cannot date a certificate in the past: openssl ca can.
    db = os.path.join(out, name + '.db')
    os.makedirs(db)
    open(os.path.join(db, 'index.txt'), 'w').close()
    conf = os.path.join(db, 'ca.conf')
    with open(conf, 'w') as f:
        f.write('[ca]\ndefault_ca = d\n[d]\ndir = %s\n'
                'database = $dir/index.txt\nnew_certs_dir = $dir\n'
                'serial = $dir/serial\ndefault_md = sha256\n'
                'policy = p\nunique_subject = no\n[p]\n'
                'commonName = supplied\n' % db)
    with open(os.path.join(db, 'serial'), 'w') as f:
        f.write('%016x\n' % int.from_bytes(os.urandom(8), 'big'))
    subprocess.run(['openssl', 'ca', '-batch', '-notext', '-config', conf,
                    '-cert', ca_pem, '-keyfile', ca_key, '-in', csr,
                    '-out', crt, '-startdate', dates[0], '-enddate',
                    dates[1], '-extfile', ext],
                   check=True, capture_output=True)
    return crt, key


def no_id_cert(ca_dir, ca_pem, out, name='noid'):
    """One with ferry's replicator key purpose and no replicator ID (not
    one ferry-control issues)."""
    return ca_cert(ca_dir, ca_pem, out, name)


def issue(data_dir, out, ident):
    subprocess.run([CONTROL, 'certs', 'issue', '--data-dir', data_dir,
                    '--kind', 'replicator', '--id', ident, '--name',
                    '127.0.0.1', '--out-dir', out],
                   check=True, capture_output=True)
    return os.path.join(out, ident + '.pem'), os.path.join(out,
                                                          ident + '-key.pem')


def uri_sans(path):
    r = subprocess.run(['openssl', 'x509', '-in', path, '-noout', '-ext',
                        'subjectAltName'], capture_output=True, text=True)
    return [w.strip().rstrip(',')[4:] for w in r.stdout.split()
            if w.startswith('URI:')]


def standalone(t):
    pki = Pki(t.sub('pki'))          # its server certificate: repl1
    cert, key = pki.server
    data = t.sub('data')
    base = ['--data-dir', data, '--cert', cert, '--key', key, '--ca',
            pki.ca]

    res = start(base + ['--id', 'repl1'])
    check('standalone, id = the certificate\'s ID: serves, no warning',
          res[0] == 'ready' and
          not any('replicator ID' in l for l in res[1]), show(res))
    res = start(base)
    check('standalone without id: serves as before', res[0] == 'ready',
          show(res))

    res = start(base + ['--id', RID])
    err = errors(res[1])
    line = err[0] if err else ''
    check('standalone, a certificate naming another replicator: exit 1 '
          'with one line naming the file, its ID, the one expected and '
          'what to do', res[0] == 1 and len(err) == 1 and
          not any('ready on' in l for l in res[1]) and
          'certificate %s names replicator repl1 ' % cert in line and
          'not %s, this replicator\'s id' % RID in line and
          'would refuse it' in line and
          '--kind replicator --id %s' % RID in line and
          'set id = repl1' in line, show(res))

    # The id in the configuration file is the same id.
    conf = t.sub('id.conf')
    with open(conf, 'w') as f:
        f.write('id = %s\n' % RID)
    res = start(base + ['--config', conf])
    check('standalone, id from the configuration file: checked the same',
          res[0] == 1 and 'names replicator repl1' in ''.join(res[1]),
          show(res))

    # Agents refuse, whatever their replicator-id, a certificate without
    # ferry's replicator key purpose or not valid now (lib/tls.c).
    uri = 'urn:ferry:replicator:%s' % RID
    for name, args, want in [
            ('serverauth', {'eku': 'serverAuth'},
             "lacks ferry's replicator key purpose"),
            ('expired', {'dates': ('20200101000000Z', '20200102000000Z')},
             'expired on 2020-01-02 00:00:00 UTC'),
            ('future', {'dates': ('20990101000000Z', '20990102000000Z')},
             'is not valid before 2099-01-01 00:00:00 UTC')]:
        bcert, bkey = ca_cert(pki.ca_dir, pki.ca, t.sub('pki'), name,
                              uri=uri, **args)
        for ident in ([RID], []):
            res = start(['--data-dir', data, '--cert', bcert, '--key', bkey,
                         '--ca', pki.ca] + (['--id'] + ident if ident
                                            else []))
            line = (errors(res[1]) or [''])[0]
            check('standalone, %s certificate naming its id, %s: exit 1 '
                  'with one line naming the file, why agents refuse it and '
                  'what to do' % (name, 'id %s' % RID if ident else
                                  'no id'),
                  res[0] == 1 and len(errors(res[1])) == 1 and
                  'certificate %s %s' % (bcert, want) in line and
                  'agents refuse it' in line and
                  '--kind replicator --id %s' % (RID if ident else 'ID')
                  in line, show(res))

    ncert, nkey = no_id_cert(pki.ca_dir, pki.ca, t.sub('pki'))
    res = start(['--data-dir', data, '--cert', ncert, '--key', nkey,
                 '--ca', pki.ca, '--id', RID])
    warn = [l for l in res[1] if 'warning: certificate %s names no '
            'replicator ID' % ncert in l]
    check('standalone, a certificate naming no replicator: serves (agents '
          'without replicator-id take it), with one warning saying who '
          'refuses it and what to do', res[0] == 'ready' and
          len(warn) == 1 and 'cannot be %s' % RID in warn[0] and
          'replicator-id' in warn[0] and
          '--kind replicator --id %s' % RID in warn[0], show(res))


class FakeControl:
    """An HTTPS server at ferry-control's address and certificate that
    answers RegisterReplicatorForMgn with a certificate of ferry-control's
    CA for the request's key naming replicator OTHER."""

    def __init__(self, ctl, other):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get('Content-Length', 0))
                body = json.loads(self.rfile.read(n) or b'{}')
                fake.calls.append(self.path)
                if self.path == '/RegisterReplicatorForMgn' and \
                        body.get('csr'):
                    r = subprocess.run(
                        [CONTROL, 'certs', 'sign-csr', '--data-dir',
                         ctl.data_dir, '--kind', 'replicator', '--id',
                         other, '--name', '127.0.0.1', '--csr', '-'],
                        input=body['csr'], capture_output=True, text=True)
                    out = {'replicatorID': body.get('replicatorID'),
                           'assignedSourceServers': 0,
                           'certificate': r.stdout}
                    code = 200
                else:
                    out = {'message': 'not here'}
                    code = 500
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.calls = []
        self.srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(os.path.join(ctl.data_dir, 'server.pem'),
                            os.path.join(ctl.data_dir, 'server-key.pem'))
        self.srv.socket = tls.wrap_socket(self.srv.socket, server_side=True)
        self.url = 'https://127.0.0.1:%d' % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def registered(ctl, rid):
    st, _, _ = ctl.call('GetReplicatorAssignmentsForMgn',
                        {'replicatorID': rid})
    return st == 200


def with_control(t):
    ctl = ferrytest.Control()
    try:
        creds, conf = control_config(ctl, t, RID)
        certs = t.sub('certs')
        os.makedirs(certs)
        data = t.sub('cdata')
        base = ['--data-dir', data, '--config', conf]

        other, okey = issue(ctl.data_dir, certs, 'stage-9')
        res = start(base + ['--cert', other, '--key', okey])
        line = (errors(res[1]) or [''])[0]
        check('control-url, cert naming another replicator: exit 1 with '
              'one line naming the file, both IDs and what to do',
              res[0] == 1 and len(errors(res[1])) == 1 and
              'certificate %s names replicator stage-9 ' % other in line and
              'not %s' % RID in line and
              'agents that ferry-control assigns to %s' % RID in line and
              'leave out cert and key' in line, show(res))
        ncert, nkey = no_id_cert(ctl.data_dir, ctl.ca, certs)
        res = start(base + ['--cert', ncert, '--key', nkey])
        line = (errors(res[1]) or [''])[0]
        check('control-url, cert naming no replicator: exit 1, says so',
              res[0] == 1 and 'certificate %s names no replicator ID' %
              ncert in line and 'cannot be %s' % RID in line and
              '--kind replicator --id %s' % RID in line, show(res))
        check('... and neither registered with ferry-control',
              not registered(ctl, RID))

        own, key = issue(ctl.data_dir, certs, RID)
        res = start(base + ['--cert', own, '--key', key])
        check('control-url, cert for its id: serves', res[0] == 'ready',
              show(res))

        res = start(base)
        cert = os.path.join(data, 'control-cert.pem')
        check('control-url without cert: the certificate ferry-control '
              'issues names this replicator',
              res[0] == 'ready' and os.path.exists(cert) and
              uri_sans(cert) == ['urn:ferry:replicator:%s' % RID],
              '%s %s' % (show(res), os.path.exists(cert) and
                         uri_sans(cert)))

        # The data directory's saved certificate is the fallback while
        # ferry-control is unreachable: not when it names another id.
        ctl.stop()
        conf2 = t.sub('repl2.conf')
        with open(conf, 'r') as f, open(conf2, 'w') as g:
            g.write(f.read().replace('id = %s\n' % RID, 'id = stage-2\n'))
        res = start(['--data-dir', data, '--config', conf2])
        line = (errors(res[1]) or [''])[0]
        check('ferry-control unreachable, the saved certificate names '
              'another id: exit 1 with one line naming the file, both IDs '
              'and what to do', res[0] == 1 and len(errors(res[1])) == 1 and
              'cannot renew the server certificate' in line and
              '%s names replicator %s ' % (cert, RID) in line and
              'not stage-2' in line and 'once ferry-control answers' in line,
              show(res))
        with open(cert) as f:
            saved = f.read()
        with open(cert, 'w') as f:
            f.write(saved.replace('CERTIFICATE', 'GARBAGE'))
        res = start(base)
        line = (errors(res[1]) or [''])[0]
        check('ferry-control unreachable, the saved certificate is not PEM: '
              'exit 1, says which file and what to do',
              res[0] == 1 and '%s is not a PEM certificate' % cert in line
              and 'once ferry-control answers' in line, show(res))
        with open(cert, 'w') as f:
            f.write(saved)
        res = start(base)
        check('... with its own id: serves with the saved certificate',
              res[0] == 'ready' and
              any('from an earlier registration' in l for l in res[1]),
              show(res))

        # Something at control-url signing for another ID.
        fake = FakeControl(ctl, 'stage-9')
        try:
            conf3 = t.sub('repl3.conf')
            with open(conf, 'r') as f, open(conf3, 'w') as g:
                g.write(f.read().replace(ctl.url, fake.url))
            data3 = t.sub('cdata3')
            res = start(['--data-dir', data3, '--config', conf3])
            line = (errors(res[1]) or [''])[0]
            check('a certificate issued for another replicator: not '
                  'stored, exit 1, says which and what was expected',
                  fake.calls[:1] == ['/RegisterReplicatorForMgn'] and
                  res[0] == 1 and 'the certificate ferry-control issued '
                  'names replicator stage-9 ' in line and
                  'not %s' % RID in line and 'not stored' in line and
                  not os.path.exists(os.path.join(data3,
                                                  'control-cert.pem')),
                  '%s %s' % (fake.calls, show(res)))
        finally:
            fake.close()
    finally:
        ctl.__exit__(None, None, None)


def main():
    need_binaries()
    t = TestDir('repl-cert-id')
    try:
        standalone(t)
        with_control(t)
    finally:
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
