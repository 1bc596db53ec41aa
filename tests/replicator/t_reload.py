"""t_reload: SIGHUP makes ferry-replicator read its certificate, key and
CA bundle again, for new connections, without a restart: an
administrator's renewed certificate is served at once, a connection
already open goes on with the one it had, and a set the replicator would
not start with (a key that is not the certificate's, a certificate
without ferry's replicator key purpose) is refused with the reason while
the one served is kept."""
import os
import re
import shutil
import signal
import ssl
import subprocess

from repltest import (MiB, Client, Pki, Replicator, TestDir, check,
                      describe, done, log, make_image, need_binaries, sha256,
                      volume_path)

SRC = 's-0123456789abcdef0'
SRC2 = 's-0fedcba987654321f'   # the held sync claims SRC's disk
SIZE = 8 * MiB


def serial_of(pem):
    r = subprocess.run(['openssl', 'x509', '-noout', '-serial'], input=pem,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip().split('=', 1)[1]


def served(repl):
    return serial_of(ssl.get_server_certificate(('127.0.0.1', repl.port),
                                                timeout=30))


def main():
    need_binaries()
    t = TestDir('repl-reload')
    repl = None
    try:
        pki = Pki(t.path)
        cert, key = pki.server
        repl = Replicator(pki, t.sub('data'),
                          allow=['%s /dev/vda %d' % (SRC, SIZE),
                                 '%s /dev/vda %d' % (SRC2, SIZE)]).start()
        image = t.sub('image')
        make_image(image, SIZE, seed=5)
        good = Client(pki, SRC, [('/dev/vda', image)])
        other = Client(pki, SRC2, [('/dev/vda', image)])
        first = served(repl)
        check('(set-up) the certificate given is served',
              first == serial_of(open(cert).read()))
        # A connection opened before the reload, held after its WELCOME.
        held, holding = good.hold(repl, 'sync', after=0)
        check('(set-up) a sync is held open across the reloads', holding)

        def hup_logged(pattern, n):
            repl.proc.send_signal(signal.SIGHUP)
            return repl.logged(lambda l: len([x for x in repl.lines
                                              if re.search(pattern, x)]) >= n)

        # The administrator renews the certificate (a new key as well).
        pki.issue('replicator', 'repl1', ['127.0.0.1'])
        renewed = serial_of(open(cert).read())
        ok = hup_logged(r'SIGHUP: serving .* to new connections', 1)
        check('SIGHUP reads the certificate again, and says so', ok,
              repl.log_tail())
        check('new connections get the renewed certificate',
              served(repl) == renewed and renewed != first)
        rc, res, err = other.run(repl, 'hello-only', timeout=60)
        check('an agent is welcome over the renewed certificate',
              rc == 0 and res and res['welcome'], describe(res) + err)

        # A key that is not the certificate's.
        other_cert, other_key = pki.issue('replicator', 'repl2',
                                          ['127.0.0.1'])
        saved_key = open(key).read()
        shutil.copy(other_key, key)
        ok = hup_logged(r'error: SIGHUP: .*; still serving the certificate '
                        r'loaded before', 1)
        check('SIGHUP with a key that is not the certificate\'s is refused '
              'with the reason', ok and repl.alive(), repl.log_tail())
        check('after the refused SIGHUP the certificate served is kept',
              served(repl) == renewed)

        # A certificate agents would not take from a replicator.
        client_cert, client_key = pki.client('s-00000000000000bad')
        shutil.copy(client_cert, cert)
        shutil.copy(client_key, key)
        ok = hup_logged(r'error: SIGHUP: .*; still serving', 2)
        last = [l for l in repl.lines if 'error: SIGHUP' in l][-1:]
        check('SIGHUP with a certificate lacking ferry\'s replicator key '
              'purpose is refused', ok and 'purpose' in ''.join(last),
              last or repl.log_tail())
        rc, res, err = other.run(repl, 'hello-only', timeout=60)
        check('after refused SIGHUPs agents are still welcome',
              served(repl) == renewed and rc == 0 and res and
              res['welcome'], describe(res) + err)

        out, errs = held.communicate(input='\n', timeout=120)
        vol = volume_path(repl.data_dir, SRC, '/dev/vda')
        check('the sync opened before the reloads completes over its '
              'connection', held.returncode == 0 and os.path.exists(vol) and
              sha256(vol) == sha256(image), errs[-500:])
        with open(key, 'w') as f:
            f.write(saved_key)
    finally:
        if repl:
            if not repl.alive():
                log(repl.log_tail())
            repl.stop()
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
