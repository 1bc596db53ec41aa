"""kill -9 of the replicator during a sync loses nothing acknowledged:
after a restart, every range the client saw acknowledged is on the volume,
WELCOME's sync_mark is not below an acknowledged SYNC_MARK, and a resumed
sync completes."""
import os
import time

from repltest import (MiB, Client, Pki, Replicator, TestDir, check, describe,
                      done, log, make_image, need_binaries, same_file,
                      same_prefix, volume_path)

SRC = 's-0123456789abcdef0'
SIZE = 64 * MiB


def acked_from_log(path):
    """Bytes of disk 0 acknowledged so far, from the client's --ack-log."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        parts = line.split()
        if len(parts) >= 3 and parts[0] == 'ack':
            return int(parts[2])
    return 0


def one_kill(t, pki, repl, disk, image, opts, kill_at, kill_delay=None):
    """Sync DISK, kill -9 the replicator once KILL_AT bytes are
    acknowledged (or after KILL_DELAY s), restart it, check.  Returns the
    restarted replicator."""
    name = 'kill -9 (%s)' % disk
    ack_log = t.sub('acks-' + disk.replace('/', '_'))
    cl = Client(pki, SRC, [(disk, image)])
    proc = cl.popen(repl, 'sync', '--ack-log', ack_log, '--mark-every', 2,
                    *opts)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < 60:
        if kill_delay is not None:
            if time.time() - t0 >= kill_delay:
                break
        elif acked_from_log(ack_log) >= kill_at:
            break
        time.sleep(0.005)
    finished_before = proc.poll() is not None
    repl.kill9()
    out, err = proc.communicate(timeout=120)
    from repltest import parse_json
    res = parse_json(out)
    if not check('%s: client ran and reported what was acknowledged' % name,
                 res is not None, 'rc=%s %s' % (proc.returncode, err.strip())):
        return repl.start()
    acked = res['disks'][0]['acked_upto']
    mark = res['disks'][0]['mark_acked']
    log('%s: killed after %.2f s, %d MiB acknowledged, mark %d MiB, '
        'client %s' % (name, time.time() - t0, acked // MiB, mark // MiB,
                       'had finished' if finished_before else 'was sending'))
    check('%s: the kill fell in the middle of the sync' % name,
          not res['ok'] and acked < SIZE,
          'acked %d of %d (sync finished before the kill)' % (acked, SIZE))
    # Restart on the same data directory.
    new = Replicator(pki, repl.data_dir, allow=repl.allow)
    try:
        new.start()
    except RuntimeError as e:
        check('%s: replicator restarts on the same data dir' % name, False,
              str(e))
        raise
    vol = volume_path(repl.data_dir, SRC, disk)
    check('%s: the %d MiB acknowledged are on the volume after restart' %
          (name, acked // MiB),
          os.path.exists(vol) and os.path.getsize(vol) >= acked and
          same_prefix(vol, image, acked),
          'volume %s differs from the image below %d' % (vol, acked))
    rc, hello, _ = cl.run(new, 'hello-only')
    sm = hello and hello['welcome'] and hello['welcome']['disks'][0]['sync_mark']
    check('%s: WELCOME sync_mark %s >= acknowledged SYNC_MARK %d' %
          (name, sm, mark), sm is not None and sm >= mark, describe(hello))
    rc, res, err = cl.run(new, 'sync', '--resume')
    check('%s: resumed sync completes, volume equals the image' % name,
          rc == 0 and res and res['ok'] and same_file(vol, image),
          '%s %s' % (describe(res), err.strip()))
    return new


def main():
    need_binaries()
    t = TestDir('repl-crash')
    repl = None
    try:
        pki = Pki(t.path)
        repl = Replicator(pki, t.sub('data'), allow=['%s *' % SRC]).start()
        image = t.sub('image')
        make_image(image, SIZE, seed=21)
        # Slow client: the kill lands between frames.
        repl = one_kill(t, pki, repl, '/dev/vda', image,
                        ['--throttle-ms', 10], 16 * MiB)
        # Full speed: the kill lands while the server is busy.
        repl = one_kill(t, pki, repl, '/dev/vdb', image, [], 8 * MiB)
        repl = one_kill(t, pki, repl, '/dev/vdc', image, ['--codec', 'zstd'],
                        24 * MiB)
        check('replicator serving after three kills', repl.alive(),
              repl.log_tail())
    finally:
        if repl:
            repl.stop()
        t.cleanup()
    done()


main()
