"""Bad input: wrong or missing certificates, other source servers, disks
not allowed, bad frames.  Each is refused with the expected error, nothing
is written to the volume, and the replicator keeps serving."""
import os
import random
import socket
import struct

from repltest import (E_CORRUPT, E_DENIED, E_PROTOCOL, E_RANGE,
                      E_UNKNOWN_DISK, F_DATA, F_ZERO, MAX_PAYLOAD, MiB,
                      Client, Pki, Replicator, TestDir, check, data_frame,
                      describe, done, frame, log, make_image, need_binaries,
                      sha256, volume_path, xxh3, zero_frame)

SRC = 's-0123456789abcdef0'
OTHER = 's-0fedcba987654321f'   # allowed, but not SRC's certificate
STRANGER = 's-00000000000000bad'  # has a certificate, no allow line
SIZE = 4 * MiB


def main():
    need_binaries()
    t = TestDir('repl-refuse')
    repl = None
    try:
        pki = Pki(t.path)
        repl = Replicator(pki, t.sub('data'),
                          allow=['%s /dev/vda %d' % (SRC, SIZE),
                                 '%s *' % OTHER]).start()
        image = t.sub('image')
        make_image(image, SIZE, seed=3)
        good = Client(pki, SRC, [('/dev/vda', image)])
        rc, res, err = good.run(repl, 'sync')
        vol = volume_path(repl.data_dir, SRC, '/dev/vda')
        if not check('setup: initial sync of the allowed disk',
                     rc == 0 and res and res['ok'] and os.path.exists(vol),
                     '%s %s' % (describe(res), err.strip())):
            log(repl.log_tail())
            return
        h0 = sha256(vol)

        def after(name):
            """The volume is unchanged and the replicator still serves."""
            check('%s: volume unchanged' % name,
                  os.path.exists(vol) and sha256(vol) == h0)
            rc2, r2, _ = good.run(repl, 'hello-only', timeout=30)
            check('%s: replicator still serving' % name,
                  repl.alive() and rc2 == 0 and r2 and r2['welcome'],
                  '%s alive=%s\n%s' % (describe(r2), repl.alive(),
                                       repl.log_tail()))

        def refused_handshake(name, res, codes=None):
            """No WELCOME; an ERROR with one of CODES, or (CODES None) a
            TLS-level refusal."""
            e = res and res.get('error')
            if codes is None:
                ok = (res and res['welcome'] is None and e and
                      e['where'] in ('tls', 'io'))
            elif codes == 'any':
                ok = (res and res['welcome'] is None and e and
                      (e['where'] in ('tls', 'io') or
                       (e['where'] == 'frame' and e['code'] == E_DENIED)))
            else:
                ok = (res and res['welcome'] is None and e and
                      e['where'] == 'frame' and e['code'] in codes and
                      e['message'])
            check('%s: refused (%s)' % (name, e and ('%s %s' % (e.get('name') or e['where'], e['message']))[:120]),
                  ok, describe(res))

        # -- handshake refusals
        nocert = Client(pki, SRC, [('/dev/vda', image)], no_cert=True)
        rc, res, _ = nocert.run(repl, 'sync', timeout=60)
        refused_handshake('no client certificate', res)
        after('no client certificate')

        pki2 = Pki(t.path, 'ca2')
        foreign = Client(pki, SRC, [('/dev/vda', image)],
                         cert=pki2.client(SRC))
        rc, res, _ = foreign.run(repl, 'sync', timeout=60)
        refused_handshake('client certificate of another CA', res)
        after('client certificate of another CA')

        repl_cert = Client(pki, 'repl1', [('/dev/vda', image)],
                           cert=pki.server)
        rc, res, _ = repl_cert.run(repl, 'sync', timeout=60)
        refused_handshake('a replicator certificate as client', res, 'any')
        after('a replicator certificate as client')

        rc, res, _ = good.run(repl, 'sync', hello_source=OTHER, timeout=60)
        refused_handshake('HELLO names another source server than the '
                          'certificate', res, (E_DENIED,))
        after('HELLO names another source server')

        other_img = t.sub('other')
        make_image(other_img, SIZE, seed=4)
        rc, res, _ = Client(pki, SRC, [('/dev/vdb', other_img)]).run(
            repl, 'sync', timeout=60)
        refused_handshake('disk not allowed', res, (E_DENIED, E_UNKNOWN_DISK))
        check('disk not allowed: no volume made',
              not os.path.exists(volume_path(repl.data_dir, SRC, '/dev/vdb')))
        after('disk not allowed')

        rc, res, _ = Client(pki, STRANGER, [('/dev/vda', other_img)]).run(
            repl, 'sync', timeout=60)
        refused_handshake('source server with no allow line', res,
                          (E_DENIED, E_UNKNOWN_DISK))
        after('source server with no allow line')

        # The other source server's own volume is not SRC's.
        rc, res, _ = Client(pki, OTHER, [('/dev/vda', other_img)]).run(
            repl, 'sync', timeout=60)
        check('another source server syncs its own volume, not ours',
              rc == 0 and res['ok'] and
              sha256(volume_path(repl.data_dir, OTHER, '/dev/vda')) ==
              sha256(other_img), describe(res))
        after('another source server')

        # -- bad frames after a good handshake (seq 2 follows HELLO)
        rnd = random.Random(5)
        blob = rnd.randbytes(65536)
        blob_path = t.sub('blob')
        with open(blob_path, 'wb') as f:
            f.write(blob)
        h_blob = xxh3(blob_path)
        bad = [
            ('DATA at the end of the volume', E_RANGE,
             data_frame(2, 0, SIZE, blob, h_blob)),
            ('DATA across the end of the volume', E_RANGE,
             data_frame(2, 0, SIZE - 4096, blob, h_blob)),
            ('DATA far beyond the volume', E_RANGE,
             data_frame(2, 0, 1 << 50, blob, h_blob)),
            ('ZERO beyond the volume', E_RANGE,
             zero_frame(2, 0, SIZE - 512, 4096)),
            ('DATA whose xxh3 does not match', E_CORRUPT,
             data_frame(2, 0, 0, blob, h_blob ^ 1)),
            ('zstd DATA that does not decode', E_CORRUPT,
             data_frame(2, 0, 0, b'\x28\xb5\x2f\xfd' + blob[:4000], h_blob,
                        codec=1, raw_len=len(blob))),
            ('lz4 DATA that does not decode', E_CORRUPT,
             data_frame(2, 0, 0, b'\xff' * 64, h_blob, codec=2,
                        raw_len=len(blob))),
            ('DATA for a disk index not in HELLO', E_UNKNOWN_DISK,
             data_frame(2, 7, 0, blob, h_blob)),
            ('unknown frame type', E_PROTOCOL, frame(99, 2, b'')),
            ('frame out of sequence (seq 5 after HELLO)', E_PROTOCOL,
             zero_frame(5, 0, 0, 4096)),
            ('a second HELLO', E_PROTOCOL,
             frame(1, 2, b'FERRYWP1' + bytes(8))),
            ('a server frame (ACK) from the client', E_PROTOCOL,
             frame(9, 2, b'')),
            ('header reserved field set', E_PROTOCOL,
             frame(F_ZERO, 2, struct.pack('>IIQQ', 0, 0, 0, 4096),
                   reserved=1)),
            ('ZERO with a reserved field set', E_PROTOCOL,
             zero_frame(2, 0, 0, 4096, reserved=9)),
            ('DATA length not a sector multiple', E_PROTOCOL,
             data_frame(2, 0, 0, blob[:1000], 0)),
            ('DATA offset not sector aligned', E_PROTOCOL,
             data_frame(2, 0, 100, blob, h_blob)),
            ('ZERO of length 0', E_PROTOCOL, zero_frame(2, 0, 0, 0)),
            ('frame shorter than its type needs', E_PROTOCOL,
             frame(F_ZERO, 2, b'\0' * 8)),
            ('oversized length', E_PROTOCOL,
             frame(F_DATA, 2, b'', length=MAX_PAYLOAD + 1)),
            ('length 4 GiB - 1', E_PROTOCOL,
             frame(F_DATA, 2, b'', length=0xffffffff)),
        ]
        # Every ERROR about a client frame is fatal: the server closes
        # (docs/protocol.md), and the client returns then.  --timeout
        # only ends a wait for a close that does not come, which fails.
        for name, code, raw in bad:
            path = t.sub('frame')
            with open(path, 'wb') as f:
                f.write(raw)
            rc, res, err = good.run(repl, 'raw', '--frame-file', path,
                                    '--timeout', 20, timeout=60)
            errs = [r for r in (res or {}).get('replies', [])
                    if r['type'] == 'ERROR']
            check('%s: ERROR %s, closed' % (name, errs[0]['name'] if errs
                                              else None),
                  res and res['welcome'] and errs and errs[0]['code'] == code
                  and errs[0]['message'] and res.get('closed'),
                  'expected code %d and a close; got %s closed=%s %s' %
                  (code, errs or describe(res), (res or {}).get('closed'),
                   err.strip()))
            after(name)

        # Peers that are not TLS clients, or stall in the handshake,
        # hold no one up.
        idle = []
        for _ in range(5):
            sk = socket.create_connection(('127.0.0.1', repl.port))
            idle.append(sk)
        junk = socket.create_connection(('127.0.0.1', repl.port))
        junk.sendall(b'GET / HTTP/1.0\r\n\r\n' + bytes(200))
        after('stalled and non-TLS connections open')
        junk.settimeout(10)
        try:
            junk.recv(4096)  # an alert, EOF or a reset: dropped
            closed = True
        except socket.timeout:
            closed = False
        except OSError:
            closed = True
        check('a non-TLS peer is dropped', closed,
              'connection still open after 10 s')
        for sk in idle + [junk]:
            sk.close()

        # A truncated frame then a close: nothing written.
        path = t.sub('frame')
        with open(path, 'wb') as f:
            f.write(data_frame(2, 0, 0, blob, h_blob)[:3000])
        rc, res, err = good.run(repl, 'raw', '--frame-file', path,
                                '--timeout', 1, timeout=60)
        check('truncated frame: handshake went through',
              res and res['welcome'], describe(res))
        after('truncated frame then close')

        check('replicator logs name the peer of refused connections',
              repl.logged(lambda l: (SRC in l or '127.0.0.1' in l) and (
                  'refus' in l.lower() or 'error' in l.lower() or
                  'denied' in l.lower())), repl.log_tail(30))
    finally:
        if repl:
            repl.stop()
        t.cleanup()
    done()


main()
