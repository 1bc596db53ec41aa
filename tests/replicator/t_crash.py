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


def one_kill(t, pki, repl, disk, image, opts, kill_at):
    """Sync DISK, kill -9 the replicator once KILL_AT bytes are
    acknowledged, restart it, check.  Returns the restarted replicator.
    The client sends the SIGKILL itself, from the ACK that reaches
    KILL_AT: a watcher polling its ACK log from here could be scheduled
    too late on a loaded machine and miss the whole sync."""
    name = 'kill -9 (%s)' % disk
    cl = Client(pki, SRC, [(disk, image)])
    t0 = time.time()
    proc = cl.popen(repl, 'sync', '--mark-every', 2, '--kill-pid',
                    repl.proc.pid, '--kill-at', kill_at, *opts)
    out, err = proc.communicate(timeout=120)
    repl.kill9()
    from repltest import parse_json
    res = parse_json(out)
    if not check('%s: client ran and reported what was acknowledged' % name,
                 res is not None, 'rc=%s %s' % (proc.returncode, err.strip())):
        return repl.start()
    acked = res['disks'][0]['acked_upto']
    mark = res['disks'][0]['mark_acked']
    log('%s: killed after %.2f s, %d MiB acknowledged, mark %d MiB'
        % (name, time.time() - t0, acked // MiB, mark // MiB))
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
