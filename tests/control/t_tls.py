"""TLS: an administrator's own certificate and key (--cert/--key) are
served instead of the CA-issued one; --hostname adds names."""
import os
import subprocess
import tempfile

import ferrytest as ft
from ferrytest import check


def served_cert(port):
    r = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % port, '-showcerts'],
                       input='', capture_output=True, text=True, timeout=30)
    pem = r.stdout[r.stdout.find('-----BEGIN CERTIFICATE-----'):]
    pem = pem[:pem.find('-----END CERTIFICATE-----') + 25]
    r = subprocess.run(['openssl', 'x509', '-noout', '-subject', '-ext', 'subjectAltName'],
                       input=pem, capture_output=True, text=True)
    return r.stdout


tmp = tempfile.mkdtemp(prefix='ferry-tls.')
key, crt = os.path.join(tmp, 'own.key'), os.path.join(tmp, 'own.pem')
subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=admin-supplied.test',
                '-addext', 'subjectAltName=DNS:admin-supplied.test,IP:127.0.0.1'],
               check=True, capture_output=True)

with ft.Control(initialize=False, args=['--cert', crt, '--key', key]) as c:
    info = served_cert(c.port)
    check('--cert/--key: the administrator\'s certificate is served', 'admin-supplied.test' in info, info)
    c.ca = crt  # clients trust the administrator's certificate now
    st, _, _ = c.call('InitializeService', {})
    check('requests work over the administrator\'s certificate', st == 204, st)
    r = c.aws('mgn', 'describe-source-servers')
    check('aws CLI with --ca-bundle of the administrator\'s certificate', r == {'items': []}, r)

with ft.Control(initialize=False, args=['--hostname', 'control.ferry.test', '--hostname', '192.0.2.7']) as c:
    info = served_cert(c.port)
    check('--hostname adds DNS names and addresses to the issued certificate',
          'control.ferry.test' in info and '192.0.2.7' in info and '127.0.0.1' in info and
          'localhost' in info, info)

r = subprocess.run([ft.BIN, '--cert', crt, '--data-dir', os.path.join(tmp, 'd')], capture_output=True, text=True)
check('--cert without --key is refused with a reason', r.returncode == 2 and '--key' in r.stderr, r.stderr)
r = subprocess.run([ft.BIN, '--listen', 'nowhere', '--data-dir', os.path.join(tmp, 'd')],
                   capture_output=True, text=True)
check('a bad --listen is refused with a reason', r.returncode == 2 and '--listen' in r.stderr, r.stderr)
with ft.Control(initialize=False) as c:
    r = subprocess.run([ft.BIN, '--listen', '127.0.0.1:%d' % c.port, '--data-dir', os.path.join(tmp, 'd2')],
                       capture_output=True, text=True, timeout=30)
    check('a port in use is refused with a one-line reason', r.returncode == 1 and
          'cannot listen on 127.0.0.1:%d' % c.port in r.stderr, r.stderr)
subprocess.run(['rm', '-rf', tmp])
ft.done()
