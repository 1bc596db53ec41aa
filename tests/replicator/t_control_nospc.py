"""A full staging filesystem with ferry-control: the agent gets ERROR
NOSPC, and ferry-control shows the server STALLED with the replicator's
staging error (`aws mgn describe-source-servers`) until space is freed and
a resumed sync makes writes durable again; then the agent's own state is
shown again.  Needs root (a small tmpfs holds --data-dir)."""
import json
import os
import subprocess
import sys

from repltest import (E_NOSPC, MiB, Client, TestDir, check, control_config,
                      describe, done, make_image, need_binaries, same_file,
                      volume_path)
from t_control import Repl, issue_client, runtime, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'control'))
import ferrytest  # noqa: E402

RID = 'stage-full'
SIZE = 32 * MiB


def staged(ctl, sid):
    """The replicator's last report of SID's volumes, as ferry-control
    keeps it."""
    st, _, r = ctl.call('GetReplicatorAssignmentsForMgn',
                        {'replicatorID': RID})
    for s in (r or {}).get('sourceServers', []) if st == 200 else []:
        if s['sourceServerID'] == sid:
            return s.get('staged')
    return None


def shown(ctl, sid):
    """dataReplicationInfo as `aws mgn describe-source-servers` shows it."""
    r = ctl.aws('mgn', 'describe-source-servers', '--filters',
                'sourceServerIDs=%s' % sid)
    return r['items'][0]['dataReplicationInfo']


def main():
    need_binaries()
    if os.geteuid() != 0:
        print('FAIL t_control_nospc: needs root to mount a small tmpfs')
        done()
    t = TestDir('repl-control-nospc')
    ctl = ferrytest.Control()
    repl = None
    try:
        sid, agent = ctl.register_agent(
            'full1', disks=[{'deviceName': '/dev/vda', 'bytes': SIZE,
                             'isBootDisk': True}])
        _, conf = control_config(ctl, t, RID)
        # A 48 MiB filesystem, big enough for ferry-control to assign a
        # 32 MiB disk to it (capacityBytes), but with 28 MiB taken.
        mnt = t.sub('staging')
        os.makedirs(mnt)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=48m',
                        'ferry-test', mnt], check=True)
        t.mounts.append(mnt)
        ballast = os.path.join(mnt, 'ballast')
        with open(ballast, 'wb') as f:
            f.write(b'\xa5' * (28 * MiB))
        data = os.path.join(mnt, 'data')
        repl = Repl(data, conf).start()
        rt = wait_for(lambda: (runtime(ctl, agent) or {}).get('replicator'))
        check('setup: the source server is assigned to the replicator',
              rt and rt['replicatorID'] == RID, rt)
        certs = t.sub('certs')
        os.makedirs(certs)
        img = t.sub('vda.img')
        make_image(img, SIZE, seed=41)
        cl = Client(None, sid, [('/dev/vda', img)],
                    cert=issue_client(ctl, certs, sid), ca=ctl.ca)

        def assigned():
            try:
                with open(os.path.join(data,
                                       'control-assignments.json')) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                return False
            return any(s['sourceServerID'] == sid
                       for s in doc['sourceServers'])
        check('setup: the replicator has its assignment',
              wait_for(assigned), repl.log_tail())

        # The agent says it is copying; the replicator has no error yet.
        st, _, r = ctl.call('UpdateAgentReplicationInfoForMgn',
                            {'dataReplicationState': 'INITIAL_SYNC'},
                            creds=agent)
        d = shown(ctl, sid)
        check('before: the agent\'s INITIAL_SYNC is shown, no error',
              st == 200 and d['dataReplicationState'] == 'INITIAL_SYNC' and
              'dataReplicationError' not in d, (st, r, d))

        rc, res, err = cl.run(repl, 'sync', timeout=120)
        e = res and res.get('error')
        check('full data directory: the agent gets ERROR NOSPC (%s)' %
              (e and e.get('message', '')[:100]),
              e and e.get('where') == 'frame' and e.get('code') == E_NOSPC,
              '%s %s\n%s' % (describe(res), err.strip(), repl.log_tail()))

        def stalled():
            d = shown(ctl, sid)
            return d if d['dataReplicationState'] == 'STALLED' else None
        d = wait_for(stalled) or shown(ctl, sid)
        raw = (d.get('dataReplicationError') or {}).get('rawError', '')
        vol = volume_path(data, sid, '/dev/vda')
        check('describe-source-servers: STALLED', d['dataReplicationState'] ==
              'STALLED', '%s\n%s' % (d, repl.log_tail()))
        check('describe-source-servers: dataReplicationError '
              'FAILED_TO_CREATE_STAGING_DISKS',
              (d.get('dataReplicationError') or {}).get('error') ==
              'FAILED_TO_CREATE_STAGING_DISKS', d)
        check('rawError names the volume, the cause, the free space and '
              'the fix: %s' % raw,
              raw.startswith('staging volume %s: No space left on device ('
                             % vol) and
              ' bytes free); free space under --data-dir %s' % data in raw,
              raw)

        # An agent heartbeat meanwhile does not hide it.
        st, _, _ = ctl.call('UpdateAgentReplicationInfoForMgn',
                            {'dataReplicationState': 'BACKLOG',
                             'backlogBytes': 1},
                            creds=agent)
        d = shown(ctl, sid)
        check('an agent heartbeat meanwhile: still STALLED with the '
              'staging error', st == 200 and
              d['dataReplicationState'] == 'STALLED' and
              d['dataReplicationError']['rawError'] == raw, d)

        # Free space; the agent resumes.
        os.unlink(ballast)
        rc, res, err = cl.run(repl, 'sync', '--resume', timeout=120)
        check('space freed: the resumed sync completes',
              rc == 0 and res and res['ok'],
              '%s %s\n%s' % (describe(res), err.strip(), repl.log_tail()))
        check('space freed: the volume equals the disk',
              os.path.exists(vol) and same_file(vol, img))

        def resumed():
            d = shown(ctl, sid)
            return d if d['dataReplicationState'] != 'STALLED' else None
        d = wait_for(resumed) or shown(ctl, sid)
        check('space freed: the error is cleared, the agent\'s BACKLOG '
              'is shown again', d['dataReplicationState'] == 'BACKLOG' and
              'dataReplicationError' not in d,
              '%s\n%s' % (d, repl.log_tail()))
        want = [{'deviceName': '/dev/vda', 'replicatedStorageBytes': SIZE}]
        got = wait_for(lambda: staged(ctl, sid) == want and want)
        check('space freed: the whole disk is reported replicated',
              got == want, staged(ctl, sid))
        check('the replicator logged the NOSPC and the clearing',
              repl.count('NOSPC') >= 1 and
              repl.count('staging error is cleared') == 1, repl.log_tail())
        check('replicator stops cleanly', repl.stop() == 0,
              repl.log_tail(30))
    finally:
        if repl:
            repl.stop()
        ctl.__exit__(None, None, None)
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
