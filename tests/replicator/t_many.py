"""50 agents at once (MGN's parallel limit for vCenter sources): all
complete, all volumes equal their images, and no client starves: each
one's throughput is at least a third of the mean.  A replicator that
served its connections one after another would fail that: the last
ones' rates would be a fifth of the mean.  The other side (one client
well above the mean) is logged, not judged: on a loaded machine (make
test runs the guests meanwhile) the scheduler lets a client run ahead
of the others at 4-6x the mean, which says nothing of the replicator.
The throughputs compared are those of the clients that started
together: a client can also finish its handshake after the common start
and then send alone."""
import os
import time

from repltest import (MiB, Client, Pki, Replicator, TestDir, check, describe,
                      done, log, make_image, need_binaries, parse_json,
                      same_file, volume_path)

N = 50
SIZE = 8 * MiB


def main():
    need_binaries()
    t = TestDir('repl-many')
    repl = None
    procs = []
    try:
        pki = Pki(t.path)
        sources = ['s-%017x' % (0xa000 + i) for i in range(N)]
        for s in sources:
            pki.client(s)
        repl = Replicator(pki, t.sub('data'),
                          allow=['%s *' % s for s in sources]).start()
        images = []
        for i in range(5):
            img = t.sub('image%d' % i)
            make_image(img, SIZE, seed=100 + i)
            images.append(img)
        # All connect and shake hands, then start sending together.
        start_at = time.time() + 8
        for i, s in enumerate(sources):
            cl = Client(pki, s, [('/dev/sda', images[i % len(images)])])
            procs.append((s, images[i % len(images)],
                          cl.popen(repl, 'sync', '--start-at',
                                   '%.3f' % start_at)))
        results = []
        for s, img, p in procs:
            out, err = p.communicate(timeout=600)
            results.append((s, img, p.returncode, parse_json(out), err))
        ok = [r for r in results if r[2] == 0 and r[3] and r[3]['ok']]
        bad = [r for r in results if r not in ok]
        check('%d clients at once: all complete (%d did)' % (N, len(ok)),
              not bad, '; '.join('%s: %s %s' % (s, describe(res), err.strip())
                                 for s, _, _, res, err in bad[:5]))
        unequal = [s for s, img, _, _, _ in ok
                   if not same_file(volume_path(repl.data_dir, s, '/dev/sda'),
                                    img)]
        check('%d clients at once: all volumes equal their images' % N,
              not unequal and not bad, 'differ: %s' % unequal[:5])
        together = [r for r in ok if r[3].get('late', 0) < 0.2]
        check('at least half of the clients started together (%d did)' %
              len(together), 2 * len(together) >= N,
              'late by: %s' % sorted(round(r[3].get('late', 0), 1)
                                     for r in ok if r not in together))
        if together:
            rates = [r[3]['bytes'] / max(r[3]['seconds'], 1e-6)
                     for r in together]
            mean = sum(rates) / len(rates)
            wall = max(r[3]['seconds'] for r in ok)
            log('throughput per client (%d started together): min %.1f, '
                'mean %.1f, max %.1f MiB/s; aggregate %.1f MiB/s over %.2f s'
                % (len(together), min(rates) / MiB, mean / MiB,
                   max(rates) / MiB,
                   sum(r[3]['bytes'] for r in ok) / wall / MiB, wall))
            check('no starvation: every client gets at least a third of '
                  'the mean throughput (min %.2f, max %.2f of the mean)' %
                  (min(rates) / mean, max(rates) / mean),
                  min(rates) >= mean / 3)
        check('replicator still running', repl.alive(), repl.log_tail())
    finally:
        for _, _, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if repl:
            repl.stop()
        t.cleanup()
    done()


main()
