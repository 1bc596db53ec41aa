"""ferry-control's own HTTPS certificate while it serves.

The CA-issued one is renewed 30 days before it ends, without a restart:
new connections get the new certificate, a connection already open keeps
the old one, and there is one renewal, not one per second.  A renewal that
cannot store the new certificate is logged once and the old one is still
served.  SIGHUP reads an administrator's --cert/--key again (a key that is
not the certificate's is refused, the old pair kept), and an
administrator's certificate that ends within 30 days is warned about.

The certificate that becomes due while ferry-control runs is made with
`openssl ca`, whose -enddate takes seconds: it ends 30 days and MARGIN
seconds after ferry-control starts.
"""
import calendar
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import ferrytest as ft
from ferrytest import check

MARGIN = 40   # s from the start to the planted certificate's renewal
WAIT = 120    # s for a log line the timer thread writes within a second

tmp = tempfile.mkdtemp(prefix='ferry-server-cert.')


def sh(*cmd, **kw):
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kw)


def cert_info(pem):
    """(serial, notAfter as time_t, subject) of a PEM certificate."""
    r = sh('openssl', 'x509', '-noout', '-serial', '-enddate', '-subject', input=pem)
    serial = re.search(r'serial=(\w+)', r.stdout).group(1)
    end = re.search(r'notAfter=(.*)', r.stdout).group(1)
    end_t = calendar.timegm(time.strptime(end.replace(' GMT', ''), '%b %d %H:%M:%S %Y'))
    subject = re.search(r'subject=(.*)', r.stdout).group(1)
    return serial, int(end_t), subject


def served(port):
    """The PEM certificate a new connection gets."""
    return ssl.get_server_certificate(('127.0.0.1', port), timeout=30)


def utc(t):
    return time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(t))


def wait_log(c, pattern, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.findall(pattern, c.log())
        if m:
            return m
        time.sleep(0.2)
    return []


def ca_sign(csr, ca_pem, ca_key, start, end, out):
    """Sign CSR (its extensions copied) with CA_PEM/CA_KEY, valid from
    START to END (time_t, to the second: `openssl ca` takes seconds where
    `openssl x509 -days` takes days), into OUT."""
    work = os.path.join(tmp, 'ca-work')
    shutil.rmtree(work, ignore_errors=True)
    os.mkdir(work)
    open(os.path.join(work, 'index.txt'), 'w').close()
    with open(os.path.join(work, 'serial'), 'w') as f:
        f.write('%016x\n' % int(time.time() * 1000))  # an even count of digits
    cnf = os.path.join(work, 'ca.cnf')
    with open(cnf, 'w') as f:
        f.write('[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nnew_certs_dir = %s\n'
                'serial = %s/serial\npolicy = p\ncopy_extensions = copyall\n'
                'unique_subject = no\ndefault_md = sha256\n[p]\ncommonName = supplied\n'
                % (work, work, work))
    fmt = '%Y%m%d%H%M%SZ'
    sh('openssl', 'ca', '-batch', '-notext', '-config', cnf, '-in', csr, '-out', out,
       '-cert', ca_pem, '-keyfile', ca_key,
       '-startdate', time.strftime(fmt, time.gmtime(start)),
       '-enddate', time.strftime(fmt, time.gmtime(end)))


def plant_due_cert(data_dir):
    """Replace DATA_DIR/server.pem by the same certificate (same key,
    names and CA) ending 30 days and MARGIN seconds from now."""
    pem, key = os.path.join(data_dir, 'server.pem'), os.path.join(data_dir, 'server-key.pem')
    csr, out = os.path.join(tmp, 'due.csr'), os.path.join(tmp, 'due.pem')
    sh('openssl', 'x509', '-x509toreq', '-in', pem, '-signkey', key, '-copy_extensions', 'copyall',
       '-out', csr)
    now = int(time.time())
    ca_sign(csr, os.path.join(data_dir, 'ca.pem'), os.path.join(data_dir, 'ca-key.pem'),
            now - 60, now + 30 * 86400 + MARGIN, out)
    shutil.copy(out, pem)
    return open(pem).read()


# ---- the CA-issued certificate is renewed while serving -----------------
data = os.path.join(tmp, 'data')
c = ft.Control(initialize=False, data_dir=data)
try:
    c.stop()
    planted = plant_due_cert(data)
    p_serial, p_end, _ = cert_info(planted)
    c.start()
    first = served(c.port)
    check('start keeps a certificate that ends in 30 days and %d s' % MARGIN,
          cert_info(first)[0] == p_serial, (cert_info(first), p_serial))
    # A connection opened before the renewal, kept alive across it.
    old_conn = http.client.HTTPSConnection('127.0.0.1', c.port, context=c._ssl(), timeout=30)
    old_conn.request('GET', '/')
    old_conn.getresponse().read()
    old_peer = old_conn.sock.getpeercert(binary_form=True)
    check('(set-up) the connection kept open got the certificate due for renewal',
          old_peer == ssl.PEM_cert_to_DER_cert(planted))

    lines = wait_log(c, r'renewed the server certificate (\S+), due to end ([^:]+:\d\d:\d\d UTC): '
                        r'the new one ends ([^,]+), new connections get it')
    check('the certificate is renewed while serving once it is due, and logged', len(lines) >= 1, c.log())
    now = served(c.port)
    n_serial, n_end, _ = cert_info(now)
    check('new connections get the renewed certificate', n_serial != p_serial, (n_serial, p_serial))
    check('the renewed certificate lasts 825 days', abs(n_end - time.time() - 825 * 86400) < 3600,
          utc(n_end))
    if lines:
        path, was, is_ = lines[0]
        check('the log line names the file and both end dates',
              path == os.path.join(data, 'server.pem') and was == utc(p_end) and is_ == utc(n_end),
              (lines[0], utc(p_end), utc(n_end)))
    check('the renewed certificate is the one stored in server.pem',
          cert_info(open(os.path.join(data, 'server.pem')).read())[0] == n_serial)
    try:
        ctx = ssl.create_default_context(cafile=c.ca)
        with ctx.wrap_socket(socket.create_connection(('127.0.0.1', c.port), timeout=30),
                             server_hostname='localhost'):
            why = None
    except (OSError, ssl.SSLError) as e:
        why = str(e)
    check('the renewed certificate verifies against ca.pem for localhost', why is None, why)
    st, _, _ = c.call('InitializeService', {})
    check('signed requests work over the renewed certificate', st == 204, st)
    r = c.aws('mgn', 'describe-source-servers')
    check('the aws CLI works over the renewed certificate', r == {'items': []}, r)
    old_conn.request('GET', '/')
    status = old_conn.getresponse().status
    check('a connection opened before the renewal goes on, with the certificate it had',
          status == 403 and old_conn.sock.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(planted),
          status)
    old_conn.close()
    time.sleep(3)
    check('one renewal, not one per tick',
          len(re.findall(r'renewed the server certificate', c.log())) == 1, c.log())

    # ---- a renewal that fails: logged once, the old certificate served ---
    c.stop()
    planted = plant_due_cert(data)
    p_serial, p_end, _ = cert_info(planted)
    c.start()
    check('(set-up) the due certificate is served', cert_info(served(c.port))[0] == p_serial)
    # The renewed certificate cannot replace server.pem: a directory is there.
    pem_path = os.path.join(data, 'server.pem')
    os.remove(pem_path)
    os.mkdir(pem_path)
    open(os.path.join(pem_path, 'keep'), 'w').close()
    lines = wait_log(c, r'error: the server certificate (\S+) ends ([^:]+:\d\d:\d\d UTC) and could not '
                        r'be renewed: (.*); trying again in an hour')
    check('a failed renewal is logged with the end date, the reason and the next try',
          len(lines) == 1 and lines[0][0] == pem_path and lines[0][1] == utc(p_end) and
          'server.pem' in lines[0][2], lines or c.log())
    check('after a failed renewal the old certificate is still served',
          cert_info(served(c.port))[0] == p_serial)
    time.sleep(3)
    check('a failed renewal is tried again an hour later, not each second',
          len(re.findall(r'could not be renewed', c.log())) == 1, c.log())
    c.stop()
    shutil.rmtree(pem_path)
finally:
    c.__exit__(None, None, None)

# ---- an administrator's certificate: warned about, reloaded on SIGHUP ----
def own(name, days, cn):
    key, crt = os.path.join(tmp, name + '.key'), os.path.join(tmp, name + '.pem')
    sh('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
       '-keyout', key, '-out', crt, '-days', str(days), '-subj', '/CN=' + cn,
       '-addext', 'subjectAltName=DNS:%s,IP:127.0.0.1' % cn)
    return crt, key


short_crt, short_key = own('short', 2, 'short.test')
long_crt, long_key = own('long', 90, 'long.test')
crt, key = os.path.join(tmp, 'own.pem'), os.path.join(tmp, 'own.key')
shutil.copy(short_crt, crt)
shutil.copy(short_key, key)

r = subprocess.run([ft.BIN, '--cert', short_crt, '--key', long_key, '--listen', '127.0.0.1:0',
                    '--data-dir', os.path.join(tmp, 'd-mismatch')], capture_output=True, text=True,
                   timeout=30)
check('a key that is not the certificate\'s is refused at start with a one-line reason',
      r.returncode == 1 and r.stderr.count('\n') == 1 and
      'the private key does not belong to the certificate' in r.stderr and short_crt in r.stderr,
      (r.returncode, r.stderr))

with ft.Control(initialize=False, args=['--cert', crt, '--key', key]) as c:
    s_end = cert_info(open(short_crt).read())[1]
    lines = wait_log(c, r'error: the certificate given with --cert \((\S+)\) ends ([^:]+:\d\d:\d\d UTC): '
                        r'replace it and its key, then send SIGHUP', timeout=30)
    check('an administrator\'s certificate ending within 30 days is warned about, with the fix',
          len(lines) == 1 and lines[0] == (crt, utc(s_end)), lines or c.log())
    check('(set-up) the administrator\'s certificate is served',
          'short.test' in cert_info(served(c.port))[2])
    time.sleep(3)
    check('the warning about the ending certificate is not repeated each second',
          len(re.findall(r'the certificate given with --cert', c.log())) == 1, c.log())

    shutil.copy(long_crt, crt)
    shutil.copy(long_key, key)
    c.proc.send_signal(signal.SIGHUP)
    lines = wait_log(c, r'SIGHUP: serving (\S+), which ends ([^:]+:\d\d:\d\d UTC), to new connections',
                     timeout=30)
    l_end = cert_info(open(long_crt).read())[1]
    check('SIGHUP reads the administrator\'s files again, and logs it',
          lines == [(crt, utc(l_end))], lines or c.log())
    check('after SIGHUP new connections get the new certificate',
          'long.test' in cert_info(served(c.port))[2])
    c.ca = long_crt
    st, _, _ = c.call('InitializeService', {})
    check('requests work over the reloaded certificate', st == 204, st)

    shutil.copy(short_crt, crt)  # the key stays long.test's: not a pair
    c.proc.send_signal(signal.SIGHUP)
    lines = wait_log(c, r'error: SIGHUP: cannot load the server certificate: (.*); still serving the one '
                        r'that ends ([^:]+:\d\d:\d\d UTC)', timeout=30)
    check('SIGHUP with a key that is not the certificate\'s is refused, and logged with the reason',
          len(lines) == 1 and 'does not belong to the certificate' in lines[0][0] and
          lines[0][1] == utc(l_end), lines or c.log())
    check('after a refused SIGHUP the previous certificate is still served and ferry-control runs',
          'long.test' in cert_info(served(c.port))[2] and c.proc.poll() is None)

# ---- a bundle out of order is served as a chain, leaf first ---------------
def pki(name, cn, issuer=None, ca=False, days=30):
    key, pem = os.path.join(tmp, name + '.key'), os.path.join(tmp, name + '.pem')
    ext = os.path.join(tmp, name + '.ext')
    with open(ext, 'w') as f:
        f.write('basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n' if ca else
                'subjectAltName=DNS:%s,IP:127.0.0.1\n' % cn)
    if issuer is None:
        sh('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
           '-keyout', key, '-out', pem, '-days', str(days), '-subj', '/CN=' + cn, '-addext',
           'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
        return pem, key
    csr = os.path.join(tmp, name + '.csr')
    sh('openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
       '-keyout', key, '-out', csr, '-subj', '/CN=' + cn)
    sh('openssl', 'x509', '-req', '-in', csr, '-CA', issuer[0], '-CAkey', issuer[1], '-CAcreateserial',
       '-days', str(days), '-extfile', ext, '-out', pem)
    return pem, key


root = pki('root', 'root.test')
inter = pki('inter', 'inter.test', issuer=root, ca=True)
leaf = pki('leaf', 'leaf.test', issuer=inter, days=60)
bundle = os.path.join(tmp, 'bundle.pem')
with open(bundle, 'w') as f:
    for p in (leaf[0], root[0], inter[0]):
        f.write(open(p).read())
with ft.Control(initialize=False, args=['--cert', bundle, '--key', leaf[1]]) as c:
    r = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % c.port, '-showcerts'],
                       input='', capture_output=True, text=True, timeout=30)
    order = re.findall(r'^ ?\d+ s:.*?CN ?= ?([\w.]+)', r.stdout, re.M)
    check('a bundle given leaf, root, intermediate is served leaf, intermediate, root',
          order == ['leaf.test', 'inter.test', 'root.test'], order or r.stdout)
    c.ca = root[0]
    st, _, _ = c.call('InitializeService', {})
    check('clients that trust only the root verify the chain served', st == 204, st)

# ---- an administrator's certificate that has ended: served, and said so --
exp_key, exp_csr = os.path.join(tmp, 'expired.key'), os.path.join(tmp, 'expired.csr')
exp_pem = os.path.join(tmp, 'expired.pem')
sh('openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
   '-keyout', exp_key, '-out', exp_csr, '-subj', '/CN=expired.test',
   '-addext', 'subjectAltName=DNS:expired.test,IP:127.0.0.1')
now = int(time.time())
ca_sign(exp_csr, root[0], root[1], now - 3 * 86400, now - 86400, exp_pem)
with ft.Control(initialize=False, args=['--cert', exp_pem, '--key', exp_key]) as c:
    lines = wait_log(c, r'error: the certificate given with --cert \((\S+)\) (ends|ended) '
                        r'([^:]+:\d\d:\d\d UTC): replace it', timeout=30)
    check('an administrator\'s certificate that has ended is warned about as ended, with its date',
          lines == [(exp_pem, 'ended', utc(now - 86400))], lines or c.log())

shutil.rmtree(tmp, ignore_errors=True)
ft.done()
