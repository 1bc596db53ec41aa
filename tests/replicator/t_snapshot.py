"""Point-in-time snapshots: taken at CPs, exported exactly (raw, qcow2),
space in proportion to the change, both stores (copy-on-write deltas on
the default data directory, reflinks on a loop-mounted XFS), retention
pruning, the oldest snapshot deleted when the staging filesystem is full,
kill -9 during copy-on-write writes, a torn delta tail."""
import os
import random
import shutil
import subprocess
import time

from repltest import (MiB, REPLICATOR, Client, Pki, Replicator, TestDir,
                      check, describe, done, log, make_image, need_binaries,
                      parse_json, same_file)

SRC = 's-0aa1bb2cc3dd4ee5f'
DISK = '/dev/vda'
SIZE = 64 * MiB
CHANGE = SIZE // 100        # 1 % of the image, in 10 pieces


def snap(data_dir, *args):
    return subprocess.run([REPLICATOR, 'snapshot'] + list(args) +
                          ['--data-dir', data_dir],
                          capture_output=True, text=True, timeout=300)


def snapshots(data_dir):
    r = snap(data_dir, 'list', '--source-id', SRC)
    js = parse_json(r.stdout.replace('\n', ' ')) if r.returncode == 0 else None
    if not js or not js['source_servers']:
        return []
    return js['source_servers'][0]['snapshots']


def wait_snaps(data_dir, cond, timeout=10):
    """The snapshot list once COND holds of it (the ACK of a CP comes
    before its snapshot is taken), or the last one seen."""
    end = time.monotonic() + timeout
    while True:
        s = snapshots(data_dir)
        if cond(s) or time.monotonic() > end:
            return s
        time.sleep(0.05)


def export(t, data_dir, sid, name, fmt='raw'):
    out = t.sub('%s.%s' % (name, fmt))
    if os.path.exists(out):
        os.unlink(out)
    r = snap(data_dir, 'export', '--id', sid, '--disk', DISK,
             '--format', fmt, '--out', out)
    if r.returncode != 0:
        log('export %s: rc %d: %s' % (sid, r.returncode, r.stderr.strip()))
        return None
    return out


def changed(src, dst, seed, amount=CHANGE, pieces=10):
    """DST: SRC with AMOUNT bytes rewritten at random offsets."""
    shutil.copyfile(src, dst)
    rnd = random.Random(seed)
    with open(dst, 'r+b') as f:
        for _ in range(pieces):
            off = rnd.randrange(0, SIZE - amount // pieces) & ~4095
            f.seek(off)
            f.write(rnd.randbytes(amount // pieces))


def used_bytes(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def push(repl, image, cmd='rescan', *opts):
    rc, res, err = Client(repl.pki, SRC, [(DISK, image)]).run(repl, cmd,
                                                             *opts)
    return rc == 0 and res and res['ok'], '%s rc=%d %s' % (describe(res), rc,
                                                          err.strip()[-300:])


def exact(t, data_dir, sid, image, label, fmt='raw'):
    out = export(t, data_dir, sid, label.replace(' ', '_'), fmt)
    if fmt == 'raw':
        ok = out is not None and same_file(out, image)
    else:
        ok = out is not None and subprocess.run(
            ['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'qcow2', image,
             out]).returncode == 0
    check('%s: export %s (%s) equals the image' % (label, sid, fmt), ok,
          'export differs or failed')
    if out:
        os.unlink(out)
    return ok


def store_case(t, pki, data_dir, label, store):
    """Snapshot 1 after the initial sync, snapshot 2 after a 1 % change."""
    v1, v2, v3 = (t.sub('%s-v%d.img' % (label, i)) for i in (1, 2, 3))
    make_image(v1, SIZE, seed=11, zero_regions=[(8 * MiB, 8 * MiB)])
    changed(v1, v2, 12)
    changed(v2, v3, 13)
    repl = Replicator(pki, data_dir, allow=['%s *' % SRC],
                      extra_config='pit_policy = 1s:1h\n').start()
    try:
        ok, why = push(repl, v1, 'sync')
        check('%s: initial sync' % label, ok, why)
        s = wait_snaps(data_dir, lambda s: len(s) >= 1)
        check('%s: first consistent snapshot at the first CP' % label,
              len(s) == 1 and s[0]['disks'][0]['store'] == store,
              'snapshots: %s' % s)
        time.sleep(1.1)
        before = used_bytes(data_dir)
        ok, why = push(repl, v2)
        check('%s: rescan of the 1 %% change' % label, ok, why)
        s = wait_snaps(data_dir, lambda s: len(s) >= 2)
        if not check('%s: second snapshot at the next CP' % label,
                     len(s) == 2, 'snapshots: %s' % s):
            log(repl.log_tail())
            return
        s1, s2 = s[0]['id'], s[1]['id']
        grew = used_bytes(data_dir) - before
        held = s[0]['bytes_held'] + s[1]['bytes_held']
        if store == 'cow':
            check('%s: snapshots hold about the change (%d KiB for a %d KiB '
                  'change of a %d MiB disk)' % (label, held >> 10,
                                                CHANGE >> 10, SIZE >> 20),
                  CHANGE <= held <= 3 * CHANGE + MiB,
                  'bytes_held %s' % [x['bytes_held'] for x in s])
        else:
            # A filesystem of its own: nothing else changes its usage.
            check('%s: space used grew by about the change (%d KiB for a '
                  '%d KiB change of a %d MiB disk)' % (label, grew >> 10,
                                                      CHANGE >> 10,
                                                      SIZE >> 20),
                  grew <= 3 * CHANGE + 2 * MiB, 'grew %d bytes' % grew)
        exact(t, data_dir, s1, v1, label + ' snapshot 1')
        exact(t, data_dir, s2, v2, label + ' snapshot 2')
        exact(t, data_dir, s1, v1, label + ' snapshot 1', 'qcow2')
        time.sleep(1.1)
        ok, why = push(repl, v3)
        s = wait_snaps(data_dir, lambda s: len(s) >= 3)
        check('%s: third snapshot' % label, ok and len(s) == 3,
              '%s; snapshots %s' % (why, s))
        if len(s) != 3:
            log(repl.log_tail())
            return
        s3 = s[2]['id']
        exact(t, data_dir, s1, v1, label + ' snapshot 1 through 2 deltas')
        r = snap(data_dir, 'delete', '--id', s2)
        check('%s: delete snapshot 2' % label, r.returncode == 0,
              r.stderr.strip())
        s = snapshots(data_dir)
        check('%s: list without snapshot 2' % label,
              [x['id'] for x in s] == [s1, s3], 'snapshots %s' % s)
        exact(t, data_dir, s1, v1, label + ' snapshot 1 after deleting 2')
        exact(t, data_dir, s3, v3, label + ' snapshot 3 after deleting 2')
        time.sleep(1.1)
        ok, why = push(repl, v1, 'sync')
        s = wait_snaps(data_dir, lambda s: len(s) >= 3 and
                       s[-1]['id'] != s3)
        exact(t, data_dir, s3, v3, label + ' snapshot 3 after more writes')
        if len(s) >= 3 and s[-1]['id'] != s3:
            exact(t, data_dir, s[-1]['id'], v1, label + ' snapshot 4')
    finally:
        repl.stop()


def full_staging(t, pki):
    """The staging filesystem fills up with snapshot deltas: the oldest
    snapshot gives way and replication goes on; the others stay exact."""
    mnt = t.sub('full-mnt')
    os.makedirs(mnt)
    # The 64 MiB volume, two 24 MiB deltas and a margin do not fit.
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=100m', 'ferry-test',
                    mnt], check=True)
    t.mounts.append(mnt)
    data_dir = os.path.join(mnt, 'data')
    v1, v2, v3 = (t.sub('full-v%d.img' % i) for i in (1, 2, 3))
    make_image(v1, SIZE, seed=21)
    changed(v1, v2, 22, amount=24 * MiB, pieces=6)
    changed(v2, v3, 23, amount=24 * MiB, pieces=6)
    repl = Replicator(pki, data_dir, allow=['%s *' % SRC],
                      extra_config='pit_policy = 1s:1h\n').start()
    try:
        ok, why = push(repl, v1, 'sync')
        s = wait_snaps(data_dir, lambda s: len(s) >= 1)
        time.sleep(1.1)
        ok2, why2 = push(repl, v2)
        s = wait_snaps(data_dir, lambda s: len(s) >= 2)
        if not check('full staging: two snapshots, the second holding a '
                     '24 MiB change', ok and ok2 and len(s) == 2,
                     '%s; %s; snapshots %s' % (why, why2, s)):
            return
        s1, s2 = s[0]['id'], s[1]['id']
        time.sleep(1.1)
        ok, why = push(repl, v3)
        check('full staging: another 24 MiB change is replicated, no '
              'NOSPC', ok, why + '\n' + repl.log_tail())
        s = wait_snaps(data_dir, lambda s: len(s) >= 2 and
                       s[-1]['id'] != s2)
        check('full staging: the oldest snapshot gave way, the others '
              'stay', [x['id'] for x in s][:1] == [s2] and len(s) == 2 and
              s1 not in [x['id'] for x in s], 'snapshots %s' % s)
        check('full staging: logged',
              repl.logged(lambda l: 'deleted the oldest snapshot' in l),
              repl.log_tail())
        exact(t, data_dir, s2, v2, 'full staging: snapshot 2')
        if len(s) == 2:
            exact(t, data_dir, s[1]['id'], v3, 'full staging: snapshot 3')
    finally:
        repl.stop()


def kept_by_policy(times, interval_ms=1000, retention_ms=3000):
    """The cp_ids that pit_policy INTERVAL:RETENTION keeps of snapshots
    taken at TIMES ({cp_id: time_ms}): policy_keep() of replicator/
    snapshot.c (the newest, and the oldest of each interval within the
    retention) applied at each snapshot with its time as now, as prune()
    does when it is taken."""
    kept = []
    for cp in sorted(times):
        kept.append(cp)
        now, keep, bucket = times[cp], {cp}, None
        for k in kept:
            if times[k] + retention_ms < now:
                continue
            if times[k] // interval_ms != bucket:
                bucket = times[k] // interval_ms
                keep.add(k)
        kept = [k for k in kept if k in keep]
    return kept


def retention(t, pki):
    """pit_policy 1s:3s: what is older than 3 s goes, the rest stays.
    What stays depends on when the snapshots were taken, which a loaded
    machine stretches: the test records each snapshot's time and checks
    the kept ones against the policy at those times."""
    data_dir = t.sub('ret-data')
    repl = Replicator(pki, data_dir, allow=['%s *' % SRC],
                      extra_config='pit_policy = 1s:3s\n').start()
    images = {}
    times = {}      # cp_id: time_ms of every snapshot seen

    def seen(s):
        times.update((x['cp_id'], x['time_ms']) for x in s)
        return s
    try:
        cur = t.sub('ret-0.img')
        make_image(cur, SIZE, seed=21)
        ok, why = push(repl, cur, 'sync')
        check('retention: initial sync', ok, why)
        seen(wait_snaps(data_dir, lambda s: len(s) == 1))
        images[1] = cur
        # Six more, and up to three beyond while the policy would keep
        # only the newest (snapshots more than 3 s apart): the check of
        # keeping more than one needs two close enough.
        for i in range(1, 10):
            if i >= 7 and len(kept_by_policy(times)) > 1:
                break
            nxt = t.sub('ret-%d.img' % i)
            changed(cur, nxt, 100 + i, amount=256 * 1024, pieces=4)
            time.sleep(1.05)
            ok, why = push(repl, nxt)
            s = seen(wait_snaps(data_dir, lambda s, cp=i + 1: s and
                                s[-1]['cp_id'] == cp))
            if not ok or not s:
                check('retention: rescan %d' % i, False, why)
                return
            images[i + 1] = nxt
            cur = nxt
        # Pruning follows the new snapshot's description: wait for it.
        s = seen(wait_snaps(data_dir, lambda s: [
            x['cp_id'] for x in seen(s)] == kept_by_policy(times)))
        want = kept_by_policy(times)
        newest = max(times.values())
        check('retention: pruned (%d kept of %d taken)' %
              (len(s), len(times)), 0 < len(s) < len(times),
              'kept %s' % [x['cp_id'] for x in s])
        check('retention: kept cps %s, what 1s:3s keeps at the times '
              'they were taken' % want, [x['cp_id'] for x in s] == want,
              'kept %s; times from the newest %s' %
              ([x['cp_id'] for x in s],
               {cp: ms - newest for cp, ms in sorted(times.items())}))
        if len(want) < 2:
            log('retention: no two snapshots came within 3 s (a loaded '
                'machine): only the newest was to stay')
        check('retention: kept only what is within 3 s of the newest',
              all(x['time_ms'] + 3000 >= newest for x in s),
              'times %s' % [x['time_ms'] - newest for x in s])
        for x in s:
            if check('retention: kept cp %d is one the test sent' %
                     x['cp_id'], x['cp_id'] in images, str(images)):
                exact(t, data_dir, x['id'], images[x['cp_id']],
                      'retention cp %d' % x['cp_id'])
    finally:
        repl.stop()


def crash(t, pki):
    """kill -9 while copy-on-write writes go on; a torn delta tail."""
    data_dir = t.sub('crash-data')
    v1, v2, v3 = (t.sub('crash-v%d.img' % i) for i in (1, 2, 3))
    make_image(v1, SIZE, seed=31)
    make_image(v2, SIZE, seed=32)
    changed(v1, v3, 33)
    repl = Replicator(pki, data_dir, allow=['%s *' % SRC],
                      extra_config='pit_policy = 1s:1h\n').start()
    try:
        ok, why = push(repl, v1, 'sync')
        check('crash: initial sync', ok, why)
        s1 = wait_snaps(data_dir, lambda s: len(s) == 1)[0]['id']
        # A whole new image, slowly: every block is copied on write.  The
        # client kills the replicator itself once 16 MiB are acknowledged
        # (their old blocks in the delta), as t_crash does: a sleep here
        # could end before the first write or after the last.
        p = Client(pki, SRC, [(DISK, v2)]).popen(
            repl, 'sync', '--throttle-ms', '100', '--kill-pid',
            repl.proc.pid, '--kill-at', 16 * MiB)
        out, err = p.communicate(timeout=120)
        repl.kill9()
        res = parse_json(out)
        acked = res['disks'][0]['acked_upto'] if res else 0
        s = snapshots(data_dir)
        held = s[0]['bytes_held'] if s else 0
        check('crash: killed amid copy-on-write writes (%d MiB acknowledged, '
              '%d KiB kept)' % (acked >> 20, held >> 10),
              res is not None and not res['ok'] and
              16 * MiB <= acked < SIZE and len(s) == 1 and 0 < held < SIZE,
              'client %s rc=%s %s; snapshots %s' %
              (describe(res), p.returncode, err.strip()[-300:], s))
        exact(t, data_dir, s1, v1, 'crash: snapshot 1 after kill -9')
        # A torn record at the end of the delta: cut off at the next open.
        delta = [os.path.join(dp, f) for dp, _, fs in
                 os.walk(os.path.join(data_dir, SRC, 'snapshots'))
                 for f in fs if f.endswith('.delta')]
        with open(delta[0], 'ab') as f:
            f.write(b'FERRYCW1' + os.urandom(5000))
        exact(t, data_dir, s1, v1, 'crash: snapshot 1 with a torn delta')
        # A snapshot cut short before its description: ignored, removed.
        orphan = os.path.join(data_dir, SRC, 'snapshots', '999')
        os.makedirs(orphan)
        with open(os.path.join(orphan, 'dev_vda.delta'), 'wb') as f:
            f.write(b'x' * 4096)
        check('crash: a snapshot without its description is not listed',
              [x['cp_id'] for x in snapshots(data_dir)] == [1],
              'snapshots %s' % snapshots(data_dir))
        repl.start()
        time.sleep(1.1)
        ok, why = push(repl, v3, 'sync')
        check('crash: sync after the restart', ok, why)
        s = wait_snaps(data_dir, lambda s: len(s) == 2)
        exact(t, data_dir, s1, v1, 'crash: snapshot 1 after the restart')
        check('crash: a new snapshot after the restart', len(s) == 2,
              'snapshots %s' % s)
        if len(s) == 2:
            exact(t, data_dir, s[1]['id'], v3, 'crash: snapshot 2')
        check('crash: the cut-short snapshot\'s files are removed',
              not os.path.exists(orphan), orphan)
        if len(s) != 2:
            return
        # The newest snapshot's delta is being appended to while its disk
        # is replicated: not deletable then; afterwards it merges into 1.
        # The client holds after 16 frames are acknowledged (their old
        # blocks in the delta) while the delete is tried, then goes on
        # and drops the connection without a CP (an agent gone) at 32:
        # no sleep has to guess when it is connected.
        p, held = Client(pki, SRC, [(DISK, v1)]).hold(
            repl, 'sync', '--cut-after', 32, after=16)
        r = snap(data_dir, 'delete', '--id', s[1]['id'])
        check('delete: the newest snapshot of a disk being replicated is '
              'refused', held and r.returncode == 1 and
              'being replicated' in r.stderr,
              'rc %d: %s' % (r.returncode, r.stderr.strip()) if held else
              'the client ended before it held the disk')
        p.communicate(input='\n', timeout=120)
        exact(t, data_dir, s[1]['id'], v3, 'delete: snapshot 2 while written')
        # The server lets the disk go once it has seen the connection
        # end, a moment after the client is gone: until then the delete
        # is refused as above.
        end = time.monotonic() + 30
        while True:
            r = snap(data_dir, 'delete', '--id', s[1]['id'])
            if (r.returncode == 0 or 'being replicated' not in r.stderr or
                    time.monotonic() > end):
                break
            time.sleep(0.1)
        check('delete: the newest snapshot once its disk is idle',
              r.returncode == 0, r.stderr.strip())
        exact(t, data_dir, s1, v1, 'delete: snapshot 1 after deleting 2')
        r = snap(data_dir, 'delete', '--id', s[1]['id'])
        check('delete: an unknown snapshot is an error', r.returncode == 1 and
              'no snapshot' in r.stderr, r.stderr.strip())
    finally:
        repl.stop()


def xfs_case(t, pki):
    img, mnt = t.sub('xfs.img'), t.sub('xfs')
    os.makedirs(mnt)
    with open(img, 'wb') as f:
        f.truncate(600 * MiB)
    r = subprocess.run(['mkfs.xfs', '-q', '-m', 'reflink=1', img],
                       capture_output=True, text=True)
    if r.returncode != 0:
        check('xfs: mkfs.xfs -m reflink=1 (xfsprogs: scripts/deps.sh vm)',
              False, r.stderr.strip() or 'mkfs.xfs missing')
        return
    r = subprocess.run(['mount', '-o', 'loop', img, mnt], capture_output=True,
                       text=True)
    if r.returncode != 0:
        check('xfs: loop mount (needs root and loop devices)', False,
              r.stderr.strip())
        return
    t.mounts.append(mnt)
    store_case(t, pki, os.path.join(mnt, 'data'), 'xfs reflink', 'reflink')


def main():
    need_binaries()
    t = TestDir('repl-snapshot')
    try:
        pki = Pki(t.sub('pki'))
        store_case(t, pki, t.sub('cow-data'), 'cow', 'cow')
        retention(t, pki)
        full_staging(t, pki)
        crash(t, pki)
        xfs_case(t, pki)
    finally:
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
