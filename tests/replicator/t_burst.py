"""A burst of frames sent without waiting for an ACK, as an agent at full
speed sends them: 1 MiB DATA (each fills the read buffer), 4 KiB DATA and
ZEROs over the same blocks.  They must land in seq order: the volume
equals the frames applied one after the other.  A HASH_REQ in the burst
answers for the volume as of the frames before it.  A bad frame deep in
the burst is refused at its own seq; what came before it is acknowledged
and on the volume, and nothing after it (docs/replicator.md, invariant 3:
the ACK is cumulative and exact).
"""
import hashlib
import os
import random
import struct
import subprocess

from repltest import (CLIENT, E_CORRUPT, F_BYE, F_HASH_REQ, MiB, Client, Pki,
                      Replicator, TestDir, check, data_frame, describe, done,
                      frame, need_binaries, sha256, volume_path, xxh3,
                      zero_frame)

SRC = 's-0123456789abcdef0'
SIZE = 16 * MiB
SPAN = 8 * MiB      # where the burst writes


def plan(rnd):
    """3 rounds of 8 x 1 MiB over SPAN, each followed by a 4 KiB write,
    every third by a 64 KiB ZERO, at random places in SPAN: [(kind,
    offset, data or length)]."""
    ops = []
    for r in range(3):
        for i in range(8):
            ops.append(('data', i * MiB, rnd.randbytes(MiB)))
            ops.append(('data', rnd.randrange(SPAN // 4096) * 4096,
                        rnd.randbytes(4096)))
            if i % 3 == r:
                ops.append(('zero', rnd.randrange(SPAN // 65536) * 65536,
                            65536))
    return ops


def encode(t, ops, bad_at=None, hash_req_at=None):
    """OPS as frames from seq 2 (HELLO is 1), a HASH_REQ of SPAN in 1 MiB
    chunks taking seq HASH_REQ_AT, and BYE unless BAD_AT (that frame's
    xxh3 is wrong).  -> (bytes, {seq: op}, the last seq)."""
    out, by_seq, seq = [], {}, 2
    blob = t.sub('blob')
    for kind, off, x in ops:
        if seq == hash_req_at:
            out.append(frame(F_HASH_REQ, seq,
                             struct.pack('>IIQQ', 0, MiB, 0, SPAN)))
            seq += 1
        if kind == 'data':
            with open(blob, 'wb') as f:
                f.write(x)
            h = xxh3(blob) ^ (1 if seq == bad_at else 0)
            out.append(data_frame(seq, 0, off, x, h))
        else:
            out.append(zero_frame(seq, 0, off, x))
        by_seq[seq] = (kind, off, x)
        seq += 1
    if bad_at is None:
        out.append(frame(F_BYE, seq, b''))
    else:
        seq -= 1
    return b''.join(out), by_seq, seq


def apply_to(img, by_seq, below):
    """IMG (a bytearray) after the frames with seq < BELOW, in order."""
    for seq in sorted(by_seq):
        if seq >= below:
            break
        kind, off, x = by_seq[seq]
        if kind == 'data':
            img[off:off + len(x)] = x
        else:
            img[off:off + x] = bytes(x)
    return img


def xxh128(t, data):
    path = t.sub('blob')
    with open(path, 'wb') as f:
        f.write(data)
    r = subprocess.run([CLIENT, 'xxh128', path], capture_output=True,
                       text=True, check=True)
    return r.stdout.strip()


def acks(res):
    return [r['seq'] for r in (res or {}).get('replies', [])
            if r['type'] == 'ACK']


def errors(res):
    return [r for r in (res or {}).get('replies', []) if r['type'] == 'ERROR']


def run_raw(t, client, repl, raw):
    path = t.sub('frames')
    with open(path, 'wb') as f:
        f.write(raw)
    return client.run(repl, 'raw', '--frame-file', path, '--timeout', 30,
                      timeout=120)


def closing_line(repl, nth):
    """The NTH (from 1) 'closed:' line of the log."""
    lines = [l for l in list(repl.lines) if ' closed: ' in l]
    return lines[nth - 1] if len(lines) >= nth else ''


def main():
    need_binaries()
    t = TestDir('repl-burst')
    repl = None
    try:
        pki = Pki(t.path)
        repl = Replicator(pki, t.sub('data'),
                          allow=['%s /dev/vda %d' % (SRC, SIZE)]).start()
        image = t.sub('image')
        with open(image, 'wb') as f:
            f.truncate(SIZE)
        client = Client(pki, SRC, [('/dev/vda', image)])
        vol = volume_path(repl.data_dir, SRC, '/dev/vda')
        rnd = random.Random(11)

        # -- a whole burst with a HASH_REQ in it, then BYE: everything
        # lands, in order.
        raw, by_seq, last = encode(t, plan(rnd), hash_req_at=12)
        rc, res, err = run_raw(t, client, repl, raw)
        img = apply_to(bytearray(SIZE), by_seq, last + 1)
        check('burst of %d frames then BYE: acknowledged to the BYE' %
              (last - 1), res and res['welcome'] and not errors(res) and
              acks(res) and max(acks(res)) == last,
              '%s %s' % (describe(res), err.strip()))
        check('the volume is every frame applied in order',
              os.path.exists(vol) and
              sha256(vol) == hashlib.sha256(img).hexdigest(),
              repl.log_tail())
        at_req = apply_to(bytearray(SIZE), by_seq, 12)
        want = [xxh128(t, bytes(at_req[i:i + MiB]))
                for i in range(0, SPAN, MiB)]
        got = [r for r in (res or {}).get('replies', [])
               if r['type'] == 'HASH_RESP']
        check('the HASH_REQ at seq 12 hashes the volume as of seq 11',
              got and got[0]['seq'] == 12 and got[0]['hashes'] == want,
              '%s\nwant %s' % (got, want))
        written = sum(len(x) for k, _, x in by_seq.values() if k == 'data')
        check('the closing line counts %d bytes written' % written,
              repl.logged(lambda l: ' closed: agent said BYE' in l and
                          ' %d written,' % written in l, 10),
              closing_line(repl, 1))

        # -- again, with a bad frame deep in the burst.
        before = sha256(vol)
        raw, by_seq, last = encode(t, plan(rnd), bad_at=40)
        rc, res, err = run_raw(t, client, repl, raw)
        errs = errors(res)
        bad_off = by_seq[40][1]
        check('a bad xxh3 at seq 40 of %d: CORRUPT at seq 40' % last,
              errs and errs[0]['code'] == E_CORRUPT and
              errs[0]['seq'] == 40 and errs[0]['fatal'] and
              'offset %d' % bad_off in errs[0]['message'],
              '%s %s' % (describe(res), err.strip()))
        check('acknowledged to seq 39, not beyond',
              acks(res) and max(acks(res)) == 39, describe(res))
        img = apply_to(img, by_seq, 40)
        check('the volume holds the frames before it and none after',
              sha256(vol) == hashlib.sha256(img).hexdigest() and
              sha256(vol) != before, repl.log_tail())
        rc, res, _ = client.run(repl, 'hello-only', timeout=30)
        check('the replicator still serves', repl.alive() and rc == 0 and
              res and res['welcome'], describe(res))
    finally:
        if repl:
            repl.stop()
        t.cleanup()
    done()


main()
