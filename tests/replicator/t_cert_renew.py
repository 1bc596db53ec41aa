"""t_cert_renew: ferry-replicator renews, while serving, the certificate
ferry-control issued, once it ends within cert-renew-days (default 30).

ferry-control issues it at every start for 365 days; a replicator that
serves longer would be refused by every agent once it expired.  Set-up
for each case: a data directory holding a saved certificate of 10 days
(control-cert.pem and control-key.pem, as a registration leaves them),
ferry-control down when the replicator starts (so it serves with the
saved one), then ferry-control up on the same port:

  cert-renew-days 5     the 10-day certificate is kept: nothing renewed
                        after several reports
  default (30)          renewed once: the log says so with both dates;
                        new TLS connections get the new certificate (365
                        days, still naming the replicator's ID, the one
                        now in control-cert.pem); no second renewal
  the renewed one cannot  logged once with the end date and the next try
  be stored               (an hour later); the old certificate served
"""
import datetime
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

from repltest import CONTROL, TestDir, check, control_config, done, \
    need_binaries
from t_control import Repl, issue_client, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'control'))
import ferrytest  # noqa: E402

RID = 'stage-renew'
RENEWED = 'server certificate renewed'
REPORTS_S = 4


def served_cert(repl, client):
    """The DER certificate REPL's TLS shows a new connection, or None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(*client)
    try:
        with socket.create_connection(('127.0.0.1', repl.port), 10) as s:
            with ctx.wrap_socket(s) as t:
                return t.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def cert_text(der):
    return subprocess.run(['openssl', 'x509', '-inform', 'DER', '-noout',
                           '-enddate', '-ext', 'subjectAltName'],
                          input=der, capture_output=True).stdout.decode()


def days_left(der):
    line = [l for l in cert_text(der).splitlines()
            if l.startswith('notAfter=')][0]
    end = datetime.datetime.strptime(line.split('=', 1)[1],
                                     '%b %d %H:%M:%S %Y %Z')
    return (end - datetime.datetime.utcnow()).total_seconds() / 86400


def reports(repl):
    """Times REPL found ferry-control reachable after it was not."""
    return repl.count(r'ferry-control \S+: reachable')


def case(ctl, t, name, extra, block_write=False):
    """A replicator on a saved 10-day certificate, ferry-control down at
    its start and up once it serves.  -> (repl, saved DER, the DER it
    served before ferry-control was up, client certificate).
    BLOCK_WRITE: a directory where the renewed certificate's temporary
    file would go, so that storing it fails."""
    data = t.sub(name, 'data')
    os.makedirs(data)
    certs = t.sub(name, 'certs')
    os.makedirs(certs)
    subprocess.run([CONTROL, 'certs', 'issue', '--data-dir', ctl.data_dir,
                    '--kind', 'replicator', '--id', RID, '--name',
                    '127.0.0.1', '--days', '10', '--out-dir', certs],
                   check=True, capture_output=True)
    shutil.copy(os.path.join(certs, RID + '.pem'),
                os.path.join(data, 'control-cert.pem'))
    shutil.copy(os.path.join(certs, RID + '-key.pem'),
                os.path.join(data, 'control-key.pem'))
    os.chmod(os.path.join(data, 'control-key.pem'), 0o600)
    if block_write:
        os.makedirs(os.path.join(data, 'control-cert.pem.tmp'))
    client = issue_client(ctl, certs, 's-00000000000000001')
    _, conf = control_config(ctl, t, RID, extra)
    ctl.stop()
    repl = Repl(data, conf).start()
    der = pem_to_der(os.path.join(data, 'control-cert.pem'))
    first = served_cert(repl, client)
    ctl.start()
    return repl, der, first, client


def main():
    need_binaries()
    t = TestDir('repl-cert-renew')
    ctl = ferrytest.Control()
    repl = None
    try:
        # Not within 5 days: kept.
        repl, saved, first, client = case(ctl, t, 'kept',
                                          'cert_renew_days = 5\n')
        check('setup: the replicator serves with the saved 10-day '
              'certificate while ferry-control is down',
              first == saved and
              9 < days_left(saved) < 11, repl.log_tail())
        check('setup: ferry-control reachable again',
              wait_for(lambda: reports(repl) >= 1, timeout=120),
              repl.log_tail())
        # A few reports (report_interval 1); fewer on a starved machine
        # only make the check weaker.
        time.sleep(REPORTS_S)
        check('cert-renew-days 5: a 10-day certificate is not renewed',
              repl.count(RENEWED) == 0 and
              served_cert(repl, client) == saved, repl.log_tail())
        repl.stop()
        repl = None

        # Within the default 30 days: renewed once.
        repl, saved, first, client = case(ctl, t, 'renewed', '')
        check('setup: the saved 10-day certificate is served first',
              first == saved, repl.log_tail())
        check('the certificate is renewed once ferry-control answers',
              wait_for(lambda: repl.count(RENEWED) >= 1, timeout=120),
              repl.log_tail())
        line = next((l for l in repl.lines if RENEWED in l), '')
        check('the log line gives both dates and the setting',
              line.count(' UTC') == 2 and 'cert-renew-days 30' in line,
              line)
        new = served_cert(repl, client)
        data = t.sub('renewed', 'data')
        check('a new connection gets the new certificate, the one stored',
              new and new != saved and
              new == pem_to_der(os.path.join(data, 'control-cert.pem')),
              repl.log_tail())
        check('the new certificate lasts 365 days and names the '
              'replicator', new and 364 < days_left(new) < 366 and
              'urn:ferry:replicator:' + RID in cert_text(new),
              cert_text(new) if new else None)
        time.sleep(REPORTS_S)
        check('renewed once: not again at the reports after it',
              repl.count(RENEWED) == 1 and
              served_cert(repl, client) == new, repl.log_tail())
        check('no renewal error logged',
              repl.count('cannot renew the server certificate, which '
                         'ends') == 0, repl.log_tail())
        repl.stop()
        repl = None

        # A renewal that fails (the new certificate cannot be stored):
        # said once, with the end date; the old one still served.
        repl, saved, first, client = case(ctl, t, 'failed', '',
                                          block_write=True)
        failed = 'cannot renew the server certificate, which ends'
        check('a failed renewal is logged',
              wait_for(lambda: repl.count(failed) >= 1, timeout=120),
              repl.log_tail())
        line = next((l for l in repl.lines if failed in l), '')
        check('the line gives the end date, the reason and the next try',
              ' UTC' in line and 'control-cert.pem' in line and
              'trying again in 60 minutes' in line, line)
        time.sleep(REPORTS_S)
        check('not tried again at every report; the old certificate '
              'still served', repl.alive() and repl.count(failed) == 1 and
              repl.count(RENEWED) == 0 and
              served_cert(repl, client) == saved == first, repl.log_tail())
    finally:
        if repl:
            repl.stop()
        ctl.stop()
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
