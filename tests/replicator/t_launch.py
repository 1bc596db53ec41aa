"""A launch end to end: a real ferry-control and ferry-replicator on
loopback, a source server replicated to it by the test client until its
first snapshot (READY_FOR_TEST), then `aws mgn start-test`: the replicator
exports the snapshot's disks to DATA_DIR/launch/<job>/<server>/, the job
completes with a launched instance ID, the images equal `snapshot export`
of that snapshot; a second start-test replaces the first test instance
(its images removed); READY_FOR_CUTOVER and terminate-target-instances
(the images removed from disk and from `launch list`); a start-test while
the replicator is killed fails after --replicator-timeout, and the
replicator back does not run it; then start-cutover and finalize-cutover,
after which the replicator no longer serves the server.

ferry-control runs with a replicator timeout of LIVE_TIMEOUT while the
replicator is meant to be reporting (a short one would count it lost
whenever its 1 s report comes a few seconds late on a starved machine),
and is restarted with the short TIMEOUT only for the case about that
timeout."""
# ferry-timeout: 900
import calendar
import json
import os
import re
import subprocess
import sys
import time

from repltest import (MiB, REPLICATOR, Client, TestDir, check,
                      control_config, describe, done, make_image,
                      need_binaries, parse_json, same_file, sha256)
from t_control import Repl, issue_client, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'control'))
import ferrytest  # noqa: E402

RID = 'stage-launch'
TIMEOUT = 4     # ferry-control's --replicator-timeout, replicator killed
LIVE_TIMEOUT = 60   # the same while the replicator runs
# How long past TIMEOUT the lost launch may take to fail: only a failure
# that never comes (or comes far beyond normal) is an error, not a
# starved machine.  That it does not come before TIMEOUT is checked on
# ferry-control's own clock.
LOST_SLACK = 60
# How long a wait for the daemons' work (a report, an export, a removal,
# a snapshot) may take: no check is about how soon it comes, so only one
# that never comes is an error, not a starved machine.
WAIT = 120
DISKS = [('/dev/vda', 4 * MiB), ('/dev/vdb', 1 * MiB)]
EVENTS_OK = ['JOB_START', 'SNAPSHOT_START', 'SNAPSHOT_END', 'LAUNCH_START',
             'JOB_END']


def server(ctl, sid):
    r = ctl.aws('mgn', 'describe-source-servers', '--filters',
                'sourceServerIDs=%s' % sid)
    return r['items'][0]


def job(ctl, job_id):
    r = ctl.aws('mgn', 'describe-jobs', '--filters', 'jobIDs=%s' % job_id)
    return r['items'][0] if r['items'] else None


def completed(ctl, job_id):
    j = job(ctl, job_id)
    return j if j and j['status'] == 'COMPLETED' else None


def events(ctl, job_id):
    r = ctl.aws('mgn', 'describe-job-log-items', '--job-id', job_id)
    return [i['event'] for i in r['items']], r['items']


def launch_list(data):
    r = subprocess.run([REPLICATOR, 'launch', 'list', '--data-dir', data],
                       capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout) if r.returncode == 0 else None


def newest_snapshot(data, sid):
    r = subprocess.run([REPLICATOR, 'snapshot', 'list', '--data-dir', data,
                        '--source-id', sid], capture_output=True, text=True,
                       timeout=60)
    js = parse_json(r.stdout.replace('\n', ' '))
    snaps = js['source_servers'][0]['snapshots'] if js else []
    return snaps[-1]['id'] if snaps else None


def images_of(data, job_id):
    """(directory exists, items of `launch list`) of JOB_ID's images."""
    ll = launch_list(data) or {}
    return (os.path.exists(os.path.join(data, 'launch', job_id)),
            [i for i in ll.get('launches', []) if i['jobID'] == job_id])


def epoch(iso):
    """Seconds since the epoch of ferry-control's YYYY-MM-DDTHH:MM:SSZ."""
    return calendar.timegm(time.strptime(iso, '%Y-%m-%dT%H:%M:%SZ'))


def restart_control(ctl, timeout):
    """ferry-control again, on its port and data directory, with
    --replicator-timeout TIMEOUT."""
    ctl.stop()
    ctl.args = ['--replicator-timeout', str(timeout)]
    ctl.start()


def removals(ctl):
    st, _, r = ctl.call('GetReplicatorAssignmentsForMgn',
                        {'replicatorID': RID})
    return r.get('removeLaunches') if st == 200 else None


def as_raw(t, path, fmt):
    """PATH itself (raw) or a raw copy of it made by qemu-img."""
    if fmt == 'raw':
        return path
    out = path + '.check.raw'
    subprocess.run(['qemu-img', 'convert', '-f', fmt, '-O', 'raw', path,
                    out], check=False, capture_output=True, timeout=120)
    return out


def launched_ok(ctl, t, data, sid, job_id, imgs, what, fmt='raw'):
    """The checks of a completed launch job JOB_ID of SID, its images in
    FMT."""
    j = wait_for(lambda: completed(ctl, job_id), timeout=WAIT)
    check('%s: job COMPLETED' % what, j, job(ctl, job_id))
    ps = (j or {}).get('participatingServers', [{}])[0]
    iid = ps.get('launchedEc2InstanceID', '')
    check('%s: participating server LAUNCHED with an instance ID' % what,
          ps.get('launchStatus') == 'LAUNCHED' and
          re.fullmatch(r'i-[0-9a-f]{17}', iid), ps)
    li = server(ctl, sid).get('launchedInstance')
    check('%s: source server launchedInstance' % what,
          li == {'ec2InstanceID': iid, 'jobID': job_id,
                 'firstBoot': 'WAITING'}, li)
    ev, items = events(ctl, job_id)
    check('%s: job log items in order' % what, ev == EVENTS_OK, items)
    launch = [i for i in items if i['event'] == 'LAUNCH_START']
    check('%s: LAUNCH_START names the server and instance' % what,
          launch and launch[0].get('eventData') ==
          {'sourceServerID': sid, 'targetInstanceID': iid}, launch)

    snap = newest_snapshot(data, sid)
    base = os.path.join(data, 'launch', job_id, sid)
    ext = 'img' if fmt == 'raw' else fmt

    def image(name):
        return os.path.join(base, '%s.%s' % (name.lstrip('/').replace(
            '/', '_'), ext))
    for name, _ in DISKS:
        f = image(name)
        out = t.sub('export-%s-%s.raw' % (job_id, name[-3:]))
        r = subprocess.run([REPLICATOR, 'snapshot', 'export', '--data-dir',
                            data, '--id', snap, '--disk', name, '--format',
                            'raw', '--out', out], capture_output=True,
                           text=True, timeout=120)
        raw = as_raw(t, f, fmt) if os.path.exists(f) else f
        check('%s: %s %s image exists and equals `snapshot export` of %s' %
              (what, fmt, name, snap),
              os.path.exists(raw) and r.returncode == 0 and
              same_file(raw, out), (f, r.stderr))
        check('%s: %s image equals the source disk' % (what, name),
              os.path.exists(raw) and sha256(raw) == sha256(imgs[name]), f)
    ll = launch_list(data) or {}
    mine = sorted((i['deviceName'], i['path'], i['format'], i['bytes'],
                   fmt != 'raw' or i['fileBytes'] == i['bytes'])
                  for i in ll.get('launches', []) if i['jobID'] == job_id)
    want = sorted((n, image(n), fmt, sz, True) for n, sz in DISKS)
    check('%s: `launch list` shows the images' % what, mine == want,
          (mine, want))
    return iid


def main():
    need_binaries()
    t = TestDir('repl-launch')
    repl = None
    ctl = ferrytest.Control(args=['--replicator-timeout',
                                  str(LIVE_TIMEOUT)])
    try:
        sid, agent = ctl.register_agent(
            'launch1', disks=[{'deviceName': n, 'bytes': sz,
                               'isBootDisk': n == '/dev/vda'}
                              for n, sz in DISKS])
        # Snapshots a second apart (the cutover wants a newer one): no
        # pitPolicy is set at ferry-control (MGN's units are minutes), so
        # the replicator's pit_policy applies.
        data = t.sub('data')
        _, conf = control_config(ctl, t, RID, 'launch_format = raw\n'
                                 'pit_policy = 1s:1h\n')
        repl = Repl(data, conf).start()

        def assigned():
            st, _, r = ctl.call('GetReplicatorAssignmentsForMgn',
                                {'replicatorID': RID})
            return st == 200 and any(s['sourceServerID'] == sid
                                     for s in r['sourceServers'])
        check('setup: server assigned to the replicator',
              wait_for(assigned, timeout=WAIT), repl.log_tail())
        wait_for(lambda: repl.count('assigns 1 source servers'), timeout=WAIT)

        e = ferrytest.error_code(ctl.aws, 'mgn', 'start-test',
                                 '--source-server-ids', sid)
        check('start-test before the first snapshot (NOT_READY): '
              'ConflictException', e == 'ConflictException', e)

        imgs = {}
        for i, (name, sz) in enumerate(DISKS):
            imgs[name] = t.sub('src-%d.img' % i)
            make_image(imgs[name], sz, seed=40 + i)
        certs = t.sub('certs')
        os.makedirs(certs)
        cl = Client(None, sid, [(n, imgs[n]) for n, _ in DISKS],
                    cert=issue_client(ctl, certs, sid), ca=ctl.ca)
        rc, res, err = cl.run(repl, 'sync')
        check('setup: both disks synced', rc == 0 and res and res['ok'],
              '%s %s\n%s' % (describe(res), err.strip(), repl.log_tail()))
        s = wait_for(lambda: server(ctl, sid)['lifeCycle']['state'] ==
                     'READY_FOR_TEST' and server(ctl, sid), timeout=WAIT)
        check('setup: first snapshot reported: READY_FOR_TEST', s,
              repl.log_tail())

        r = ctl.aws('mgn', 'start-test', '--source-server-ids', sid)
        j = r.get('job', {})
        check('aws mgn start-test: a PENDING LAUNCH job, initiated by '
              'START_TEST',
              j.get('type') == 'LAUNCH' and
              j.get('initiatedBy') == 'START_TEST' and
              j.get('status') == 'PENDING' and
              j.get('participatingServers') ==
              [{'sourceServerID': sid, 'launchStatus': 'PENDING'}], r)
        test_job = j.get('jobID', '')
        lc = server(ctl, sid)['lifeCycle']
        check('start-test: lifecycle TESTING, lastTest.initiated',
              lc['state'] == 'TESTING' and
              lc.get('lastTest', {}).get('initiated', {}).get('jobID') ==
              test_job and
              'apiCallDateTime' in lc['lastTest']['initiated'], lc)
        launched_ok(ctl, t, data, sid, test_job, imgs, 'test launch')
        check('test launch: lifecycle stays TESTING',
              server(ctl, sid)['lifeCycle']['state'] == 'TESTING')

        # MGN: a new test first terminates the previous test instance.
        r = ctl.aws('mgn', 'start-test', '--source-server-ids', sid)
        test2 = r.get('job', {}).get('jobID', '')
        launched_ok(ctl, t, data, sid, test2, imgs, 'second test launch')
        gone = wait_for(lambda: images_of(data, test_job) == (False, []),
                        timeout=WAIT)
        check('second test launch: the first test instance\'s images are '
              'removed from disk and from `launch list`', gone,
              (images_of(data, test_job), repl.log_tail()))
        check('second test launch: the removal was reported',
              wait_for(lambda: removals(ctl) == [], timeout=WAIT),
              removals(ctl))
        test_job = test2

        e = ferrytest.error_code(ctl.aws, 'mgn', 'start-cutover',
                                 '--source-server-ids', sid)
        check('start-cutover while TESTING: ConflictException',
              e == 'ConflictException', e)
        e = ferrytest.error_code(ctl.aws, 'mgn', 'finalize-cutover',
                                 '--source-server-id', sid)
        check('finalize-cutover while TESTING: ConflictException',
              e == 'ConflictException', e)

        # ChangeServerLifeCycleState wants a launchable server: the
        # agent reports its lag.
        st, _, _ = ctl.call('UpdateAgentReplicationInfoForMgn',
                            {'dataReplicationState': 'CONTINUOUS',
                             'lagSeconds': 0}, creds=agent)
        r = ctl.aws('mgn', 'change-server-life-cycle-state',
                    '--source-server-id', sid, '--life-cycle',
                    'state=READY_FOR_CUTOVER')
        check('change-server-life-cycle-state READY_FOR_CUTOVER',
              st == 200 and r['lifeCycle']['state'] == 'READY_FOR_CUTOVER',
              r['lifeCycle'])

        check('setup: the test images are on disk',
              images_of(data, test_job)[0] and images_of(data, test_job)[1],
              images_of(data, test_job))
        r = ctl.aws('mgn', 'terminate-target-instances',
                    '--source-server-ids', sid)
        check('aws mgn terminate-target-instances: TERMINATED',
              r['job']['participatingServers'][0]['launchStatus'] ==
              'TERMINATED', r)
        gone = wait_for(lambda: images_of(data, test_job) == (False, []),
                        timeout=WAIT)
        check('terminate: the images are removed from disk and from '
              '`launch list`', gone,
              (images_of(data, test_job), repl.log_tail()))
        check('terminate: the replicator reported the removal',
              wait_for(lambda: removals(ctl) == [], timeout=WAIT) and
              repl.count('images removed'), (removals(ctl), repl.log_tail()))

        # New data before the cutover: the cutover launches the newest
        # snapshot, not the test's.
        make_image(imgs['/dev/vda'], DISKS[0][1], seed=77)
        old_snap = newest_snapshot(data, sid)
        rc, res, err = cl.run(repl, 'rescan')
        newer = wait_for(lambda: newest_snapshot(data, sid) != old_snap,
                         timeout=WAIT)
        check('setup: changed disk replicated, a newer snapshot',
              rc == 0 and res and res['ok'] and newer,
              '%s %s' % (describe(res), err.strip()))

        # The replicator killed: a launch it never picks up fails after
        # ferry-control's replicator timeout, here the short TIMEOUT.  The
        # replicator's last report is made older than TIMEOUT first: a
        # timeout counted from that report alone, not from the launch,
        # would fail the launch at once, and show below.
        repl.proc.kill()
        repl.stop()
        killed = time.time()
        restart_control(ctl, TIMEOUT)
        time.sleep(max(0.0, killed + TIMEOUT + 1.5 - time.time()))
        t0 = time.time()
        r = ctl.aws('mgn', 'start-test', '--source-server-ids', sid)
        lost_job = r.get('job', {}).get('jobID', '')
        j = wait_for(lambda: completed(ctl, lost_job),
                     timeout=TIMEOUT + LOST_SLACK)
        took = time.time() - t0
        ps = (j or {}).get('participatingServers', [{}])[0]
        check('replicator killed: start-test job COMPLETED with the server '
              'FAILED (%.1f s after start-test, timeout %d s)' %
              (took, TIMEOUT), j and ps.get('launchStatus') == 'FAILED',
              (took, j))
        ev, items = events(ctl, lost_job)
        failed = ([i for i in items if i['event'] == 'LAUNCH_FAILED'] or
                  [{}])[0]
        raw = failed.get('eventData', {}).get('rawError', '')
        check('replicator killed: log LAUNCH_FAILED naming the replicator '
              'and the remedy', ev == ['JOB_START', 'LAUNCH_FAILED',
                                       'JOB_END'] and RID in raw and
              'restart ferry-replicator' in raw, items)
        # On ferry-control's own clock (whole seconds): the replicator was
        # silent for more than TIMEOUT when the launch was made, and the
        # launch was given up no sooner than TIMEOUT after that.
        since = re.search(r'has not reported since (\S+Z)', raw)
        try:
            created = epoch(j['creationDateTime'])
            stale = created - epoch(since.group(1))
            waited = epoch(failed['logDateTime']) - created
        except (KeyError, TypeError, AttributeError, ValueError):
            stale = waited = None
        check('replicator killed: given up no sooner than the timeout after '
              'the launch (%s s after it, the replicator silent %s s '
              'before it, timeout %d s)' % (waited, stale, TIMEOUT),
              waited is not None and stale > TIMEOUT and waited >= TIMEOUT,
              (failed, (j or {}).get('creationDateTime')))
        s = server(ctl, sid)
        check('replicator killed: TESTING, no launched instance',
              s['lifeCycle']['state'] == 'TESTING' and
              'launchedInstance' not in s, s['lifeCycle'])
        r = ctl.aws('mgn', 'change-server-life-cycle-state',
                    '--source-server-id', sid, '--life-cycle',
                    'state=READY_FOR_CUTOVER')

        # The replicator back, with QCOW2 images for launches, and
        # ferry-control with the long timeout again.
        restart_control(ctl, LIVE_TIMEOUT)
        bad = t.sub('bad.conf')
        with open(bad, 'w') as f:
            f.write('launch_format = vmdk\n')
        r = subprocess.run([REPLICATOR, '--data-dir', data, '--config', bad],
                           capture_output=True, text=True, timeout=30)
        check('launch_format vmdk refused', r.returncode == 2 and
              'launch-format' in r.stderr, r.stderr)
        with open(conf) as f:
            text = f.read()
        with open(conf, 'w') as f:
            f.write(text.replace('launch_format = raw',
                                 'launch_format = qcow2'))
        repl = Repl(data, conf).start()
        check('the replicator back: reports again, nothing left to remove',
              wait_for(lambda: repl.count(': reachable;') and
                       removals(ctl) == [], timeout=WAIT),
              (removals(ctl), repl.log_tail()))
        check('the replicator back: the failed launch is not carried out',
              images_of(data, lost_job) == (False, []) and
              not repl.count('launch %s: exporting' % lost_job) and
              job(ctl, lost_job)['participatingServers'][0]
              ['launchStatus'] == 'FAILED', images_of(data, lost_job))
        r = ctl.aws('mgn', 'start-cutover', '--source-server-ids', sid)
        cut_job = r.get('job', {}).get('jobID', '')
        lc = server(ctl, sid)['lifeCycle']
        check('aws mgn start-cutover: START_CUTOVER job, CUTTING_OVER, '
              'lastCutover.initiated',
              r['job'].get('initiatedBy') == 'START_CUTOVER' and
              lc['state'] == 'CUTTING_OVER' and
              lc['lastCutover']['initiated']['jobID'] == cut_job, (r, lc))
        launched_ok(ctl, t, data, sid, cut_job, imgs, 'cutover launch',
                    fmt='qcow2')

        r = ctl.aws('mgn', 'finalize-cutover', '--source-server-id', sid)
        dri = r['dataReplicationInfo']
        check('aws mgn finalize-cutover: CUTOVER, lastCutover.finalized, '
              'replication DISCONNECTED',
              r['lifeCycle']['state'] == 'CUTOVER' and
              'apiCallDateTime' in r['lifeCycle']['lastCutover']['finalized']
              and dri['dataReplicationState'] == 'DISCONNECTED' and
              all(d['totalStorageBytes'] == 0
                  for d in dri['replicatedDisks']), r)
        check('finalize-cutover: the launched instance stays',
              r.get('launchedInstance', {}).get('jobID') == cut_job, r)
        st, _, cmds = ctl.call('GetAgentCommandForMgn', {}, creds=agent)
        check('finalize-cutover: the agent is told to uninstall',
              st == 200 and 'uninstall' in
              [c['command'] for c in cmds['commands']], cmds)
        st, _, _ = ctl.call('UpdateAgentReplicationInfoForMgn',
                            {'dataReplicationState': 'CONTINUOUS'},
                            creds=agent)
        check('finalize-cutover: the agent\'s heartbeat is refused',
              st == 403 and server(ctl, sid)['dataReplicationInfo']
              ['dataReplicationState'] == 'DISCONNECTED', st)
        check('finalize-cutover: the replicator is no longer assigned the '
              'server', wait_for(lambda: not assigned(), timeout=WAIT))
        check('the replicator stops cleanly', repl.stop() == 0,
              repl.log_tail())
    finally:
        if repl:
            repl.stop()
        ctl.__exit__(None, None, None)
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
