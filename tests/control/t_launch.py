#!/usr/bin/python3
"""The launch operations of ferry-control, with the replicator's side
played by signed requests: StartTest / StartCutover / FinalizeCutover /
TerminateTargetInstances state rules and errors, the launch tasks a
replicator is given and reports (IN_PROGRESS, LAUNCHED, FAILED), the job
and its log items (DescribeJobLogItems, paged), and who may call what.
tests/replicator/t_launch.py runs the same with a real replicator."""
import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from t_agent import describe, err_type, no_replays  # noqa: E402

check = ft.check
TIB = 1 << 40
# How long past --replicator-timeout a lost launch may take to fail: far
# beyond normal (about a second), so that only a failure that never comes
# is an error, not a starved machine.
LOST_SLACK = 60
# The replicator timeout while no check is about it.
LIVE_TIMEOUT = 60


def now_iso(delta=0):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() + delta))


def error(fn, *args):
    """(code, message) of the aws CLI error FN raises, or (None, None)."""
    try:
        fn(*args)
    except ft.AwsError as e:
        return e.code, e.message
    return None, None


def launches(c, rep):
    st, _, r = c.call('GetReplicatorAssignmentsForMgn', {}, creds=rep)
    return r.get('launches') if st == 200 else None


def report(c, rep, items, sid=None):
    body = {'freeBytes': TIB, 'launches': items}
    if sid:
        body['sourceServers'] = [{'sourceServerID': sid}]
    return c.call('UpdateReplicatorInfoForMgn', body, creds=rep)


def job(c, job_id):
    return c.aws('mgn', 'describe-jobs', '--filters',
                 'jobIDs=%s' % job_id)['items'][0]


def log_events(c, job_id):
    r = c.aws('mgn', 'describe-job-log-items', '--job-id', job_id)
    return [i['event'] for i in r['items']], r['items']


def ready_server(c, rep, name):
    """A registered server on replicator r1 with a snapshot reported."""
    sid, cr = c.register_agent(name, machine_id='m-' + name)
    st, _, r = c.call('UpdateReplicatorInfoForMgn', {
        'freeBytes': TIB, 'sourceServers': [
            {'sourceServerID': sid, 'lastSnapshotDateTime': now_iso(-5)}]},
        creds=rep)
    if st != 200:
        raise ft.AwsError('HTTP%d' % st, str(r))
    return sid, cr


def removals(c, rep):
    st, _, r = c.call('GetReplicatorAssignmentsForMgn', {}, creds=rep)
    return r.get('removeLaunches') if st == 200 else None


def job_raw(c, jid):
    """The job by a signed request: faster than the aws CLI, for
    timing."""
    st, _, r = c.call('DescribeJobs', {'filters': {'jobIDs': [jid]}})
    return r['items'][0] if st == 200 and r['items'] else {}


def wait_job(c, jid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = job_raw(c, jid)
        if j.get('status') == 'COMPLETED':
            return j
        time.sleep(0.2)
    return job_raw(c, jid)


def server_raw(c, sid):
    st, _, r = c.call('DescribeSourceServers',
                      {'filters': {'sourceServerIDs': [sid]}})
    return r['items'][0] if st == 200 and r['items'] else {}


def heartbeat(c, rep):
    st, _, _ = c.call('UpdateReplicatorInfoForMgn', {'freeBytes': TIB},
                      creds=rep)
    return st == 200


def epoch(iso):
    """Seconds since the epoch of ferry-control's YYYY-MM-DDTHH:MM:SSZ."""
    return calendar.timegm(time.strptime(iso, '%Y-%m-%dT%H:%M:%SZ'))


def given_up_after(c, jid):
    """On ferry-control's own clock (whole seconds): from the later of job
    JID's creation and its replicator's last report (as LAUNCH_FAILED's
    rawError names it) to that LAUNCH_FAILED, or None."""
    st, _, r = c.call('DescribeJobLogItems', {'jobID': jid})
    failed = [i for i in (r.get('items', []) if st == 200 else [])
              if i.get('event') == 'LAUNCH_FAILED']
    try:
        since = re.search(r'has not reported since (\S+Z)',
                          failed[0]['eventData']['rawError']).group(1)
        return epoch(failed[0]['logDateTime']) - max(
            epoch(job_raw(c, jid)['creationDateTime']), epoch(since))
    except (IndexError, KeyError, AttributeError, ValueError):
        return None


def lost_replicator():
    """Launch tasks of a replicator that stopped reporting fail after
    --replicator-timeout; a newer launch supersedes a test instance.
    No check depends on how fast this machine is: a launch must not fail
    before the timeout (checked on ferry-control's clock), and must fail
    within LOST_SLACK seconds after it (far beyond normal).  The set-up
    runs with a replicator timeout of LIVE_TIMEOUT (the aws CLI between
    two reports can take longer than a short one on a starved machine,
    and fail the first launch); ferry-control is restarted with the short
    timeout for the rest, but for the mid-task case's launch and report."""
    timeout = 8
    with ft.Control(args=['--replicator-timeout', str(LIVE_TIMEOUT)]) as c:
        rep = c.replicator
        c.call('RegisterReplicatorForMgn', {
            'replicatorID': 'r1', 'address': '127.0.0.1', 'port': 1501,
            'capacityBytes': TIB, 'freeBytes': TIB}, creds=rep)
        s, _ = ready_server(c, rep, 'lost')

        # A launched test instance, then a relaunch: MGN terminates the
        # old test instance first.
        j1 = c.aws('mgn', 'start-test', '--source-server-ids', s)['job']
        st, _, _ = report(c, rep, [{'jobID': j1['jobID'],
                                    'sourceServerID': s,
                                    'launchStatus': 'LAUNCHED'}])
        check('lost: setup: first test LAUNCHED',
              st == 200 and 'launchedInstance' in describe(c, s))
        check('lost: nothing to remove yet', removals(c, rep) == [],
              removals(c, rep))
        # The short timeout from here on: ferry-control again on the same
        # port and data.  Signed requests, not the aws CLI, until the
        # PENDING check: the CLI can take longer than the timeout to start
        # on a busy machine (the calls above took more than 8 s in a CI
        # run beside the guests: the replicator counted as lost).
        c.stop()
        c.args = ['--replicator-timeout', str(timeout)]
        c.start()
        heartbeat(c, rep)
        st, _, r = c.call('StartTest', {'sourceServerIDs': [s]})
        if not check('relaunch: StartTest accepted',
                     isinstance(r, dict) and 'job' in r, (st, r)):
            return
        jid = r['job']['jobID']
        heartbeat(c, rep)
        check('relaunch: the previous test instance is terminated',
              'launchedInstance' not in server_raw(c, s), server_raw(c, s))
        check('relaunch: its images are to be removed by the replicator '
              'that wrote them', removals(c, rep) ==
              [{'jobID': j1['jobID'], 'sourceServerID': s}],
              removals(c, rep))
        st, _, _ = c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': TIB, 'removedLaunches': [
                {'jobID': j1['jobID'], 'sourceServerID': s}]}, creds=rep)
        check('removedLaunches: the removal is forgotten',
              st == 200 and removals(c, rep) == [], removals(c, rep))
        st, hdrs, _ = c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': TIB, 'removedLaunches': [{'jobID': 'x'}]},
            creds=rep)
        check('removedLaunches malformed: ValidationException',
              st == 400 and err_type(hdrs) == 'ValidationException', st)

        # The replicator says nothing more: the task fails once the
        # timeout passed since the later of the task and its last word.
        # Right after a report the job is PENDING: unless this process
        # was starved for longer than the timeout between the two
        # requests (then the window shows it, and given_up_after below
        # still catches a task failed too early).
        t1 = time.time()
        heartbeat(c, rep)
        j = job_raw(c, jid)
        window = time.time() - t1
        check('lost: job still PENDING right after a report (%.1f s '
              'between them, timeout %d s)' % (window, timeout),
              j.get('status') == 'PENDING' or window >= timeout - 1,
              (window, j))
        j = wait_job(c, jid, timeout + LOST_SLACK)
        took = time.time() - t1
        ps = j['participatingServers'][0]
        check('lost replicator: job COMPLETED, server FAILED (%.1f s after '
              'the last report, timeout %d s)' % (took, timeout),
              j['status'] == 'COMPLETED' and 'endDateTime' in j and
              ps['launchStatus'] == 'FAILED' and
              'launchedEc2InstanceID' not in ps, (took, j))
        after = given_up_after(c, jid)
        check('lost replicator: given up no sooner than the timeout after '
              'the replicator\'s last report, on ferry-control\'s clock '
              '(%s s)' % after, after is not None and after >= timeout,
              after)
        ev, items = log_events(c, jid)
        raw = (items[1].get('eventData', {}).get('rawError', '')
               if len(items) > 1 else '')
        check('lost replicator: log JOB_START, LAUNCH_FAILED, JOB_END',
              ev == ['JOB_START', 'LAUNCH_FAILED', 'JOB_END'] and
              items[1]['eventData']['sourceServerID'] == s, items)
        check('lost replicator: rawError names the replicator, when it was '
              'last heard and what to do',
              'r1' in raw and '127.0.0.1' in raw and s in raw and
              re.search(r'since \d{4}-\d\d-\d\dT', raw) and
              'restart ferry-replicator' in raw and 'launch again' in raw,
              raw)
        d = describe(c, s)
        check('lost replicator: lifecycle stays TESTING (relaunchable), no '
              'launched instance', d['lifeCycle']['state'] == 'TESTING' and
              'launchedInstance' not in d, d['lifeCycle'])
        check('lost replicator: the task is no longer given',
              launches(c, rep) == [], launches(c, rep))
        check('lost replicator: whatever it made is to be removed',
              removals(c, rep) == [{'jobID': jid, 'sourceServerID': s}],
              removals(c, rep))
        st, _, _ = report(c, rep, [{'jobID': jid, 'sourceServerID': s,
                                    'launchStatus': 'LAUNCHED'}])
        j = job(c, jid)
        check('the replicator back: its LAUNCHED report of the failed task '
              'is ignored', st == 200 and
              j['participatingServers'][0]['launchStatus'] == 'FAILED' and
              'launchedInstance' not in describe(c, s), j)

        # Died mid-task: IN_PROGRESS, then silence.  The launch and its
        # IN_PROGRESS report under LIVE_TIMEOUT (under the short one a
        # starved machine can put them more than 8 s apart, and the task
        # fails before it started), the silence under the short one.
        c.stop()
        c.args = ['--replicator-timeout', str(LIVE_TIMEOUT)]
        c.start()
        st, _, r = c.call('StartTest', {'sourceServerIDs': [s]})
        if not check('mid-task: StartTest accepted',
                     isinstance(r, dict) and 'job' in r, (st, r)):
            return
        jid3 = r['job']['jobID']
        report(c, rep, [{'jobID': jid3, 'sourceServerID': s,
                         'launchStatus': 'IN_PROGRESS'}])
        c.stop()
        c.args = ['--replicator-timeout', str(timeout)]
        c.start()
        j = wait_job(c, jid3, timeout + LOST_SLACK)
        ev, _ = log_events(c, jid3)
        after = given_up_after(c, jid3)
        check('replicator lost mid-task: FAILED, log with SNAPSHOT_START, '
              'no sooner than the timeout (%s s)' % after,
              j['status'] == 'COMPLETED' and
              j['participatingServers'][0]['launchStatus'] == 'FAILED' and
              ev == ['JOB_START', 'SNAPSHOT_START', 'LAUNCH_FAILED',
                     'JOB_END'] and after is not None and after >= timeout,
              (j, ev, after))
        lc = describe(c, s)['lifeCycle']['state']
        r = c.aws('mgn', 'start-test', '--source-server-ids', s)
        check('a relaunch after the failure is accepted',
              lc == 'TESTING' and r['job']['status'] == 'PENDING', lc)


def main():
    lost_replicator()
    with ft.Control() as c:
        no_replays(c)
        rep = c.replicator
        rep2 = c.keys_create('rep2', 'replicator')
        c.call('RegisterReplicatorForMgn', {
            'replicatorID': 'r1', 'address': '127.0.0.1', 'port': 1501,
            'capacityBytes': TIB, 'freeBytes': TIB}, creds=rep)

        # NOT_READY: refused, naming the server and its state.
        a, cra = c.register_agent('a', machine_id='m-a')
        code, msg = error(c.aws, 'mgn', 'start-test',
                          '--source-server-ids', a)
        check('start-test NOT_READY: ConflictException naming the server '
              'and its state', code == 'ConflictException' and a in msg and
              'NOT_READY' in msg, (code, msg))
        code, _ = error(c.aws, 'mgn', 'start-test', '--source-server-ids',
                        's-0123456789abcdef0')
        check('start-test unknown server: ResourceNotFoundException',
              code == 'ResourceNotFoundException', code)
        st, hdrs, r = c.call('StartTest', {'sourceServerIDs': ['s-nope']})
        check('start-test malformed ID: ValidationException',
              st == 400 and err_type(hdrs) == 'ValidationException', r)
        st, hdrs, r = c.call('StartTest', {'sourceServerIDs': []})
        check('start-test no IDs: ValidationException',
              st == 400 and err_type(hdrs) == 'ValidationException', r)
        st, hdrs, r = c.call('StartTest', {'sourceServerIDs': [a],
                                           'colour': 'red'})
        check('start-test unknown member: ValidationException',
              st == 400 and err_type(hdrs) == 'ValidationException', r)
        for who, creds in [('agent', cra), ('replicator', rep),
                           ('installer', c.installer)]:
            for op in ['StartTest', 'StartCutover', 'FinalizeCutover',
                       'TerminateTargetInstances', 'DescribeJobLogItems']:
                st, hdrs, _ = c.call(op, {'sourceServerIDs': [a]},
                                     creds=creds)
                check('%s key refused: %s' % (who, op),
                      st == 403 and err_type(hdrs) == 'AccessDeniedException',
                      (st, err_type(hdrs)))

        # READY_FOR_TEST: a test launch.
        b, crb = ready_server(c, rep, 'b')
        check('setup: snapshot reported, READY_FOR_TEST',
              describe(c, b)['lifeCycle']['state'] == 'READY_FOR_TEST')
        c.call('RegisterReplicatorForMgn', {
            'replicatorID': 'r2', 'address': '127.0.0.1', 'port': 1502,
            'capacityBytes': TIB, 'freeBytes': TIB}, creds=rep2)
        st, hdrs, r = c.call('StartTest', {'sourceServerIDs': [b, b],
                                           'tags': {'wave': '1'}})
        j = (r or {}).get('job', {})
        jid = j.get('jobID', '')
        check('StartTest: 202 with a PENDING LAUNCH job (START_TEST), the '
              'server once, its tags',
              st == 202 and re.fullmatch(r'mgnjob-[0-9a-f]{17}', jid) and
              j['type'] == 'LAUNCH' and j['initiatedBy'] == 'START_TEST' and
              j['status'] == 'PENDING' and j['tags'] == {'wave': '1'} and
              j['participatingServers'] ==
              [{'sourceServerID': b, 'launchStatus': 'PENDING'}], (st, r))
        lc = describe(c, b)['lifeCycle']
        check('StartTest: TESTING, lastTest.initiated {jobID, '
              'apiCallDateTime}', lc['state'] == 'TESTING' and
              lc['lastTest']['initiated']['jobID'] == jid, lc)
        code, msg = error(c.aws, 'mgn', 'start-test', '--source-server-ids',
                          b)
        check('start-test while its launch runs: ConflictException naming '
              'the job', code == 'ConflictException' and jid in msg,
              (code, msg))
        check('the replicator is given the task',
              launches(c, rep) == [{'jobID': jid, 'sourceServerID': b,
                                    'initiatedBy': 'START_TEST'}],
              launches(c, rep))
        check('another replicator is not', launches(c, rep2) == [])
        st, hdrs, _ = report(c, rep2, [{'jobID': jid, 'sourceServerID': b,
                                        'launchStatus': 'IN_PROGRESS'}])
        check('report by another replicator: AccessDeniedException',
              st == 403 and err_type(hdrs) == 'AccessDeniedException', st)
        for why, item in [
                ('bad status', {'launchStatus': 'DONE'}),
                ('FAILED without error', {'launchStatus': 'FAILED'}),
                ('unknown member', {'launchStatus': 'LAUNCHED',
                                    'colour': 'red'}),
                ('time in the future', {'launchStatus': 'IN_PROGRESS',
                                        'startDateTime': now_iso(3600)}),
                ('image without path', {'launchStatus': 'LAUNCHED',
                                        'images': [{'deviceName': '/dev/vda',
                                                    'format': 'raw',
                                                    'bytes': 1}]})]:
            it = {'jobID': jid, 'sourceServerID': b}
            it.update(item)
            st, hdrs, _ = report(c, rep, [it])
            check('report refused: %s' % why,
                  st == 400 and err_type(hdrs) == 'ValidationException',
                  (st, err_type(hdrs)))
        check('refused reports changed nothing',
              job(c, jid)['status'] == 'PENDING')
        st, _, _ = report(c, rep, [{'jobID': jid, 'sourceServerID': b,
                                    'launchStatus': 'IN_PROGRESS',
                                    'startDateTime': now_iso(-2)}])
        j = job(c, jid)
        check('IN_PROGRESS: job STARTED, server IN_PROGRESS',
              st == 200 and j['status'] == 'STARTED' and
              j['participatingServers'][0]['launchStatus'] == 'IN_PROGRESS',
              j)
        st, _, r = report(c, rep, [{
            'jobID': jid, 'sourceServerID': b, 'launchStatus': 'FAILED',
            'endDateTime': now_iso(), 'error': 'no snapshot of ' + b}])
        j = job(c, jid)
        check('FAILED: job COMPLETED with an end time, server FAILED',
              st == 200 and j['status'] == 'COMPLETED' and
              'endDateTime' in j and
              j['participatingServers'][0]['launchStatus'] == 'FAILED', j)
        ev, items = log_events(c, jid)
        check('FAILED: log JOB_START, SNAPSHOT_START, LAUNCH_FAILED with '
              'the reason, JOB_END',
              ev == ['JOB_START', 'SNAPSHOT_START', 'LAUNCH_FAILED',
                     'JOB_END'] and items[2]['eventData'] ==
              {'sourceServerID': b, 'rawError': 'no snapshot of ' + b},
              items)
        check('FAILED: no launched instance',
              'launchedInstance' not in describe(c, b))
        check('finished task no longer given', launches(c, rep) == [])
        st, _, _ = report(c, rep, [{'jobID': jid, 'sourceServerID': b,
                                    'launchStatus': 'LAUNCHED'}])
        check('a repeated report of a finished task is ignored',
              st == 200 and job(c, jid)['participatingServers'][0]
              ['launchStatus'] == 'FAILED')

        # Relaunch from TESTING, this time a success.
        r = c.aws('mgn', 'start-test', '--source-server-ids', b)
        jid2 = r['job']['jobID']
        imgs = [{'deviceName': '/dev/vda', 'format': 'raw',
                 'bytes': 8 << 30,
                 'path': '/var/lib/ferry-replicator/launch/%s/%s/dev_vda.img'
                 % (jid2, b)}]
        st, _, _ = report(c, rep, [{'jobID': jid2, 'sourceServerID': b,
                                    'launchStatus': 'LAUNCHED',
                                    'snapshotDateTime': now_iso(-5),
                                    'images': imgs}], sid=b)
        j = job(c, jid2)
        ps = j['participatingServers'][0]
        iid = ps.get('launchedEc2InstanceID', '')
        check('relaunch from TESTING, LAUNCHED at once: job COMPLETED, an '
              'instance ID', st == 200 and j['status'] == 'COMPLETED' and
              ps['launchStatus'] == 'LAUNCHED' and
              re.fullmatch(r'i-[0-9a-f]{17}', iid), j)
        check('private launch details are not in the public job',
              'ferry' not in j and 'images' not in str(j), j)
        s = describe(c, b)
        check('launchedInstance {ec2InstanceID, jobID, firstBoot WAITING}',
              s.get('launchedInstance') == {'ec2InstanceID': iid,
                                            'jobID': jid2,
                                            'firstBoot': 'WAITING'}, s)
        ev, _ = log_events(c, jid2)
        check('LAUNCHED: log items', ev == [
            'JOB_START', 'SNAPSHOT_START', 'SNAPSHOT_END', 'LAUNCH_START',
            'JOB_END'], ev)
        r = c.aws('mgn', 'describe-job-log-items', '--job-id', jid2,
                  '--max-items', '2')
        r2 = c.aws('mgn', 'describe-job-log-items', '--job-id', jid2,
                   '--starting-token', r.get('NextToken', ''))
        check('describe-job-log-items pages',
              [i['event'] for i in r['items'] + r2['items']] == ev,
              (r, r2))
        code, _ = error(c.aws, 'mgn', 'describe-job-log-items', '--job-id',
                        'mgnjob-0123456789abcdef0')
        check('describe-job-log-items unknown job: '
              'ResourceNotFoundException',
              code == 'ResourceNotFoundException', code)
        st, hdrs, _ = c.call('DescribeJobLogItems', {'jobID': 'job-1'})
        check('describe-job-log-items malformed ID: ValidationException',
              st == 400 and err_type(hdrs) == 'ValidationException', st)

        # Wrong states for the others.
        code, msg = error(c.aws, 'mgn', 'terminate-target-instances',
                          '--source-server-ids', b)
        check('terminate-target-instances while TESTING: ConflictException',
              code == 'ConflictException' and 'TESTING' in msg, msg)
        code, msg = error(c.aws, 'mgn', 'start-cutover',
                          '--source-server-ids', b)
        check('start-cutover while TESTING: ConflictException naming the '
              'state', code == 'ConflictException' and 'TESTING' in msg and
              b in msg, msg)
        code, msg = error(c.aws, 'mgn', 'finalize-cutover',
                          '--source-server-id', b)
        check('finalize-cutover while TESTING: ConflictException',
              code == 'ConflictException' and 'CUTTING_OVER' in msg, msg)
        code, _ = error(c.aws, 'mgn', 'finalize-cutover',
                        '--source-server-id', 's-0123456789abcdef0')
        check('finalize-cutover unknown server: ResourceNotFoundException',
              code == 'ResourceNotFoundException', code)

        c.call('UpdateAgentReplicationInfoForMgn',
               {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 1},
               creds=crb)
        c.aws('mgn', 'change-server-life-cycle-state', '--source-server-id',
              b, '--life-cycle', 'state=READY_FOR_CUTOVER')
        r = c.aws('mgn', 'terminate-target-instances',
                  '--source-server-ids', b)
        tj = r['job']
        check('terminate-target-instances (READY_FOR_CUTOVER): a COMPLETED '
              'TERMINATE job naming the instance',
              tj['type'] == 'TERMINATE' and tj['status'] == 'COMPLETED' and
              tj['participatingServers'] ==
              [{'sourceServerID': b, 'launchStatus': 'TERMINATED',
                'launchedEc2InstanceID': iid}], tj)
        check('terminate: launchedInstance gone',
              'launchedInstance' not in describe(c, b))
        check('terminate: the replicator that wrote the images is told to '
              'remove them', removals(c, rep) ==
              [{'jobID': jid2, 'sourceServerID': b}], removals(c, rep))
        check('terminate: no other replicator is', removals(c, rep2) == [])
        st, _, _ = c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': TIB, 'removedLaunches': [
                {'jobID': jid2, 'sourceServerID': b}]}, creds=rep2)
        check('removedLaunches from another replicator changes nothing',
              st == 200 and removals(c, rep) ==
              [{'jobID': jid2, 'sourceServerID': b}], removals(c, rep))
        st, _, _ = c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': TIB, 'removedLaunches': [
                {'jobID': jid2, 'sourceServerID': b}]}, creds=rep)
        check('terminate: removal reported, no longer asked',
              st == 200 and removals(c, rep) == [], removals(c, rep))
        code, _ = error(c.aws, 'mgn', 'terminate-target-instances',
                        '--source-server-ids', b)
        check('terminate with nothing launched: ConflictException',
              code == 'ConflictException', code)

        r = c.aws('mgn', 'start-cutover', '--source-server-ids', b)
        cj = r['job']['jobID']
        lc = describe(c, b)['lifeCycle']
        check('start-cutover: CUTTING_OVER, lastCutover.initiated',
              r['job']['initiatedBy'] == 'START_CUTOVER' and
              lc['state'] == 'CUTTING_OVER' and
              lc['lastCutover']['initiated']['jobID'] == cj, lc)
        code, msg = error(c.aws, 'mgn', 'finalize-cutover',
                          '--source-server-id', b)
        check('finalize-cutover while the cutover launch runs: '
              'ConflictException', code == 'ConflictException' and cj in msg,
              msg)
        code, _ = error(c.aws, 'mgn', 'disconnect-from-service',
                        '--source-server-id', b)
        check('disconnect-from-service while CUTTING_OVER: '
              'ConflictException', code == 'ConflictException', code)
        report(c, rep, [{'jobID': cj, 'sourceServerID': b,
                         'launchStatus': 'FAILED', 'error': 'disk gone'}])
        code, msg = error(c.aws, 'mgn', 'finalize-cutover',
                          '--source-server-id', b)
        check('finalize-cutover after a failed cutover launch: '
              'ConflictException', code == 'ConflictException' and
              cj in msg and 'launched no instance' in msg, msg)
        r = c.aws('mgn', 'start-cutover', '--source-server-ids', b)
        cj = r['job']['jobID']
        check('start-cutover again from CUTTING_OVER',
              describe(c, b)['lifeCycle']['lastCutover']['initiated']
              ['jobID'] == cj)
        report(c, rep, [{'jobID': cj, 'sourceServerID': b,
                         'launchStatus': 'LAUNCHED'}])
        r = c.aws('mgn', 'finalize-cutover', '--source-server-id', b)
        check('finalize-cutover: CUTOVER, DISCONNECTED, finalized',
              r['lifeCycle']['state'] == 'CUTOVER' and
              r['dataReplicationInfo']['dataReplicationState'] ==
              'DISCONNECTED' and
              'finalized' in r['lifeCycle']['lastCutover'], r)
        st, _, r = c.call('GetReplicatorAssignmentsForMgn', {}, creds=rep)
        check('finalized: no longer assigned to the replicator',
              b not in [s['sourceServerID'] for s in r['sourceServers']], r)
        st, hdrs, _ = c.call('GetAgentRuntimeConfigurationForMgn', {},
                             creds=crb)
        st2, _, cmds = c.call('GetAgentCommandForMgn', {}, creds=crb)
        check('finalized: agent refused its runtime configuration but '
              'fetches uninstall', st == 403 and st2 == 200 and
              [x['command'] for x in cmds['commands']][-1:] ==
              ['uninstall'], (st, cmds))
        code, msg = error(c.aws, 'mgn', 'start-test', '--source-server-ids',
                          b)
        check('start-test after cutover: ConflictException (CUTOVER)',
              code == 'ConflictException' and 'CUTOVER' in msg, msg)
        r = c.aws('mgn', 'describe-source-servers', '--filters',
                  'lifeCycleStates=CUTOVER')
        check('describe-source-servers filters CUTOVER',
              [s['sourceServerID'] for s in r['items']] == [b], r)

        # All or nothing: one server in the wrong state refuses the
        # request for all.
        d, _ = ready_server(c, rep2, 'd')
        n_jobs = len(c.aws('mgn', 'describe-jobs')['items'])
        st, hdrs, r = c.call('StartTest', {'sourceServerIDs': [d, a]})
        check('start-test with one server in the wrong state: '
              'ConflictException, nothing changed',
              st == 409 and a in r['message'] and
              describe(c, d)['lifeCycle']['state'] == 'READY_FOR_TEST' and
              len(c.aws('mgn', 'describe-jobs')['items']) == n_jobs,
              (st, r))
    ft.done()


if __name__ == '__main__':
    main()
