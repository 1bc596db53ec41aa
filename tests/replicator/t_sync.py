"""Initial sync (raw, zstd, lz4), cut and resume, rescan by hashes."""
import os
import random

from repltest import (E_BUSY, MiB, Client, Pki, Replicator, TestDir,
                      allocated, check, describe, done, log, make_image,
                      need_binaries, parse_json, same_file, volume_path)

SRC = 's-0123456789abcdef0'
SIZE = 64 * MiB
# Zero regions: 16 MiB aligned to the 1 MiB chunks, and 3 MiB that start
# mid-chunk (two whole zero chunks, two partly zero DATA chunks).
ZEROS = [(8 * MiB, 16 * MiB), (40 * MiB + 512 * 1024, 3 * MiB)]
ZERO_WHOLE = 18 * MiB
TEXT = [(30 * MiB, 4 * MiB)]


def initial_sync(t, pki, repl, codec, disk, image):
    cl = Client(pki, SRC, [(disk, image)])
    rc, res, err = cl.run(repl, 'sync', '--codec', codec)
    vol = volume_path(repl.data_dir, SRC, disk)
    if not check('sync %s: completes' % codec, rc == 0 and res and res['ok'],
                 '%s rc=%d %s' % (describe(res), rc, err.strip())):
        log(repl.log_tail())
        return None
    check('sync %s: all acknowledged' % codec,
          res['acked_seq'] == res['last_seq'] - 1 or
          res['acked_seq'] == res['last_seq'],
          'acked %d, last %d' % (res['acked_seq'], res['last_seq']))
    check('sync %s: staging volume equals the image (cmp)' % codec,
          os.path.exists(vol) and same_file(vol, image),
          '%s differs from %s' % (vol, image))
    check('sync %s: volume has the disk size' % codec,
          os.path.exists(vol) and os.path.getsize(vol) == SIZE,
          'size %s' % (os.path.getsize(vol) if os.path.exists(vol) else None))
    # Whole zero chunks went as ZERO frames and must be holes.
    a = allocated(vol) if os.path.exists(vol) else None
    check('sync %s: zero regions are holes (%s MiB allocated of %d)' %
          (codec, a and a // MiB, SIZE // MiB),
          a is not None and a <= SIZE - ZERO_WHOLE + MiB,
          'allocated %s bytes, expected <= %d' % (a, SIZE - ZERO_WHOLE + MiB))
    check('sync %s: sent ZERO frames for the zero chunks' % codec,
          res['zero_bytes'] >= ZERO_WHOLE and res['zero_frames'] >= 2,
          'zero_bytes %d in %d frames' % (res['zero_bytes'], res['zero_frames']))
    if codec != 'raw':
        check('sync %s: compressed (%d bytes on the wire for %d data bytes)' %
              (codec, res['bytes'], res['data_raw_bytes']),
              res['bytes'] < res['data_raw_bytes'],
              'text region did not compress')
    log('sync %s: %d frames, %.1f MiB in %.2f s' %
        (codec, res['frames'], res['bytes'] / MiB, res['seconds']))
    return res


def main():
    need_binaries()
    t = TestDir('repl-sync')
    repl = None
    try:
        pki = Pki(t.path)
        repl = Replicator(pki, t.sub('data'), allow=['%s *' % SRC]).start()
        image = t.sub('image')
        make_image(image, SIZE, seed=7, zero_regions=ZEROS, text_regions=TEXT)

        # 1. initial syncs, one disk per codec
        for codec, disk in (('raw', '/dev/vda'), ('zstd', '/dev/vdb'),
                            ('lz4', '/dev/nvme0n1')):
            res = initial_sync(t, pki, repl, codec, disk, image)
            if codec == 'raw' and res:
                w = res['welcome']
                check('welcome: window allows pipelining (window %d, '
                      '%d bytes)' % (w['window'], w['window_bytes']),
                      w['window'] >= 2 and w['window_bytes'] >= 2 * MiB)
                check('sync: client kept several frames in flight (max %d)' %
                      res['max_inflight'], res['max_inflight'] >= 2)

        cl = Client(pki, SRC, [('/dev/vda', image)])
        rc, res, _ = cl.run(repl, 'hello-only')
        d = res and res['welcome'] and res['welcome']['disks'][0]
        check('welcome after sync: sync_mark = size, a CP recorded',
              d and d['sync_mark'] == SIZE and d['last_cp'] >= 1,
              '%s %s' % (describe(res), d))

        # 2. ZERO over data punches holes: all-random image first, then
        #    the image with zero regions over it.
        full = t.sub('full')
        make_image(full, SIZE, seed=8)
        cl = Client(pki, SRC, [('/dev/vdd', full)])
        rc, res, err = cl.run(repl, 'sync')
        vol = volume_path(repl.data_dir, SRC, '/dev/vdd')
        before = allocated(vol) if os.path.exists(vol) else 0
        cl = Client(pki, SRC, [('/dev/vdd', image)])
        rc, res, err = cl.run(repl, 'sync')
        check('resync with zeros over data: equal and holes punched '
              '(%d -> %d MiB)' % (before // MiB,
                                  (allocated(vol) if os.path.exists(vol) else 0) // MiB),
              rc == 0 and same_file(vol, image) and
              allocated(vol) <= SIZE - ZERO_WHOLE + MiB,
              describe(res))

        # 3. cut then resume
        rnd = t.sub('random')
        make_image(rnd, SIZE, seed=9)
        cl = Client(pki, SRC, [('/dev/vde', rnd)])
        # Slowed down so that the server keeps up: the frames lost with
        # the reset are few, and the resume must skip what was durable.
        rc, cut, err = cl.run(repl, 'sync', '--cut-after', 60,
                              '--mark-every', 4, '--throttle-ms', 5)
        ok = check('cut: the client dropped the connection after 60 frames',
                   cut and cut.get('cut') and cut['frames'] == 60,
                   '%s rc=%d %s' % (describe(cut), rc, err.strip()))
        rc, hello, _ = cl.run(repl, 'hello-only')
        mark = hello and hello['welcome'] and hello['welcome']['disks'][0]['sync_mark']
        if ok and mark is not None:
            acked_mark = cut['disks'][0]['mark_acked']
            check('cut: WELCOME sync_mark %d MiB >= the acknowledged mark '
                  '%d MiB' % (mark // MiB, acked_mark // MiB),
                  mark >= acked_mark and mark > 0 and
                  mark <= cut['disks'][0]['sent_upto'],
                  'sync_mark %d, acked mark %d, sent %d' %
                  (mark, acked_mark, cut['disks'][0]['sent_upto']))
        rc, res, err = cl.run(repl, 'sync', '--resume')
        vol = volume_path(repl.data_dir, SRC, '/dev/vde')
        if check('resume: completes and the volume equals the image',
                 rc == 0 and res and res['ok'] and same_file(vol, rnd),
                 '%s %s' % (describe(res), err.strip())):
            check('resume: started at WELCOME\'s sync_mark (%d MiB)' %
                  (res['disks'][0]['start'] // MiB),
                  res['disks'][0]['start'] ==
                  res['welcome']['disks'][0]['sync_mark'] and
                  res['disks'][0]['start'] > 0)
            check('resume: sent %.1f MiB, far less than a full resend '
                  '(%d MiB)' % (res['bytes'] / MiB, SIZE // MiB),
                  res['bytes'] < 0.45 * SIZE,
                  'sent %d bytes' % res['bytes'])

        # 4. rescan after changing 1 % of the image
        cl = Client(pki, SRC, [('/dev/vda', image)])
        rng = random.Random(11)
        chunk = 64 * 1024
        n_chunks = SIZE // chunk
        # Chunks with data (outside the zero regions) to change.
        cand = [k for k in range(n_chunks)
                if not any(o <= k * chunk < o + n for o, n in ZEROS)]
        picked = rng.sample(cand, 11)
        with open(image, 'r+b') as f:
            for k in picked[:10]:
                f.seek(k * chunk + 4096)
                f.write(rng.randbytes(chunk // 2))
            # one chunk becomes zero: goes as ZERO
            f.seek(picked[10] * chunk)
            f.write(bytes(chunk))
        rc, res, err = cl.run(repl, 'rescan', '--chunk', chunk)
        vol = volume_path(repl.data_dir, SRC, '/dev/vda')
        if check('rescan: completes', rc == 0 and res and res['ok'],
                 '%s %s' % (describe(res), err.strip())):
            check('rescan: exactly the 11 changed chunks differ (%d)' %
                  res['chunks_differing'], res['chunks_differing'] == 11)
            check('rescan: sent %d KiB, < 2 %% of the image' %
                  (res['bytes'] // 1024), res['bytes'] < 0.02 * SIZE)
            check('rescan: volume equals the image afterwards',
                  same_file(vol, image))
        rc, res, err = cl.run(repl, 'rescan', '--chunk', 1 * MiB)
        check('rescan of an equal volume sends no data',
              rc == 0 and res and res['chunks_differing'] == 0 and
              res['data_frames'] == 0 and res['zero_frames'] == 0,
              '%s %s' % (describe(res), res and res.get('chunks_differing')))

        # 5. two disks on one connection, one of an odd size (the last
        #    hash chunk is short), then a rescan after changing both
        odd = t.sub('odd')
        make_image(odd, 5 * MiB + 3 * 512, seed=12,
                   zero_regions=[(MiB, 2 * MiB)])
        two = Client(pki, SRC, [('/dev/sdb', rnd), ('/dev/sdc', odd)])
        rc, res, err = two.run(repl, 'sync', '--codec', 'lz4')
        check('two disks on one connection: both volumes equal their images',
              rc == 0 and res and res['ok'] and
              same_file(volume_path(repl.data_dir, SRC, '/dev/sdb'), rnd) and
              same_file(volume_path(repl.data_dir, SRC, '/dev/sdc'), odd),
              '%s %s' % (describe(res), err.strip()))
        with open(odd, 'r+b') as f:
            f.seek(5 * MiB + 1024)
            f.write(b'\x5a' * 512)   # in the short last chunk
        with open(rnd, 'r+b') as f:
            f.seek(33 * MiB)
            f.write(b'\x5a' * 4096)
        rc, res, err = two.run(repl, 'rescan', '--chunk', 65536)
        check('rescan of two disks, one with a short last chunk: 2 chunks '
              'differ, volumes equal',
              rc == 0 and res and res['chunks_differing'] == 2 and
              same_file(volume_path(repl.data_dir, SRC, '/dev/sdb'), rnd) and
              same_file(volume_path(repl.data_dir, SRC, '/dev/sdc'), odd),
              '%s differing=%s' % (describe(res),
                                   res and res.get('chunks_differing')))

        # 6. one disk, two connections: the second is told BUSY (after
        #    the server waited CLAIM_WAIT_SECS, 2 s, for the disk: the
        #    first connection must outlast that).  The first holds after
        #    WELCOME until the second is done: a sleep and a throttle
        #    could not promise either order on a loaded machine.
        slow = Client(pki, SRC, [('/dev/vdh', odd)])
        p, held = slow.hold(repl, 'sync', '--chunk', 65536)
        rc, res, err = slow.run(repl, 'hello-only')
        e = res and res.get('error')
        check('a second connection to a disk in use gets BUSY (%s)' %
              (e and e.get('message', '')[:80]),
              held and res and e and e['where'] == 'frame' and
              e['code'] == E_BUSY,
              describe(res) if held else
              'the first connection ended before it held the disk')
        out, _ = p.communicate(input='\n', timeout=120)
        r1 = parse_json(out)
        check('the first connection completes meanwhile',
              p.returncode == 0 and r1 and r1['ok'] and
              same_file(volume_path(repl.data_dir, SRC, '/dev/vdh'), odd),
              describe(r1))
        rc, res, err = slow.run(repl, 'hello-only')
        check('the disk is free again once the first connection is gone',
              rc == 0 and res and res['ok'], describe(res))

        check('replicator still running', repl.alive(), repl.log_tail())
    finally:
        if repl:
            repl.stop()
        t.cleanup()
    done()


main()
