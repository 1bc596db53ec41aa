#!/usr/bin/python3
"""DescribeSourceServers (filters, pagination) and the operations that
change a source server's replication and lifecycle state, through
Debian's aws CLI, boto3 and raw signed calls."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import call, unique  # noqa: E402

check = ft.check
code_of = ft.error_code
MISSING_SS = 's-0123456789abcdef0'
BAD_ID = 'x-0123456789abcdef0'  # 19 characters: passes botocore's checks


def etype(h):
    return h.get('x-amzn-errortype', '').split(':')[0]


def state(item):
    return (item.get('dataReplicationInfo', {}).get('dataReplicationState'),
            item.get('lifeCycle', {}).get('state'))


def commands(c, creds, ack=None):
    body = {'ackCommandIDs': ack} if ack else {}
    st, _, r = call(c, 'GetAgentCommandForMgn', body, creds=creds)
    return r.get('commands', []) if st == 200 else r


def describe_one(b, sid):
    return b.describe_source_servers(
        filters={'sourceServerIDs': [sid]})['items'][0]


with ft.Control() as c:
    b = unique(c.boto())
    ids, agents = [], {}
    for i in range(7):
        sid, creds = c.register_agent('host%d' % i)
        ids.append(sid)
        agents[sid] = creds

    # -- DescribeSourceServers: shapes and pagination ----------------
    r = c.aws('mgn', 'describe-source-servers')
    got = [s['sourceServerID'] for s in r['items']]
    check('cli describe-source-servers: all, in registration order',
          got == ids, got)
    item = r['items'][0]
    check('items are SourceServer shapes',
          item['arn'].endswith(':source-server/' + ids[0]) and
          item['tags'] == {} and 'ferry' not in item and
          item['lifeCycle']['state'] == 'NOT_READY' and
          item['replicationType'] == 'AGENT_BASED' and
          item['isArchived'] is False, item)
    check('no nextToken on the last page', 'nextToken' not in r, r)

    r = c.aws('mgn', 'describe-source-servers', '--page-size', '2')
    got = [s['sourceServerID'] for s in r['items']]
    check('cli --page-size 2: auto-pagination returns all', got == ids, got)

    # botocore resumes a --starting-token with the same page size only.
    r = c.aws('mgn', 'describe-source-servers', '--max-items', '3',
              '--page-size', '2')
    got = [s['sourceServerID'] for s in r['items']]
    check('cli --max-items 3: the first three and a NextToken',
          got == ids[:3] and r.get('NextToken'), r)
    r2 = c.aws('mgn', 'describe-source-servers', '--max-items', '3',
               '--page-size', '2', '--starting-token', r['NextToken'])
    got2 = [s['sourceServerID'] for s in r2['items']]
    check('cli --starting-token continues', got2 == ids[3:6], got2)

    pages = list(b.get_paginator('describe_source_servers').paginate(
        PaginationConfig={'PageSize': 2}))
    got = [s['sourceServerID'] for p in pages for s in p['items']]
    check('boto paginator, PageSize 2: 4 pages, all servers',
          len(pages) == 4 and got == ids, (len(pages), got))

    st, _, p1 = call(c, 'DescribeSourceServers', {'maxResults': 3})
    st2, _, p2 = call(c, 'DescribeSourceServers', {'maxResults': 3,
                                                  'nextToken': p1['nextToken']})
    st3, _, p3 = call(c, 'DescribeSourceServers', {'maxResults': 3,
                                                  'nextToken': p2['nextToken']})
    got = [s['sourceServerID'] for p in (p1, p2, p3) for s in p['items']]
    check('raw maxResults/nextToken: 3+3+1, last without token',
          got == ids and 'nextToken' not in p3, (got, p3))

    for name, body in [('nextToken garbage', {'nextToken': 'garbage!'}),
                       ('nextToken of another listing',
                        {'nextToken': 'ZmVycnkxOmpvYnM6NQ=='}),
                       ('maxResults 0', {'maxResults': 0}),
                       ('maxResults 1001', {'maxResults': 1001}),
                       ('maxResults a string', {'maxResults': '5'}),
                       ('unknown member', {'bogus': 1}),
                       ('unknown filter', {'filters': {'bogus': []}}),
                       ('bad lifeCycleStates value',
                        {'filters': {'lifeCycleStates': ['SLEEPING']}}),
                       ('bad sourceServerIDs value',
                        {'filters': {'sourceServerIDs': [BAD_ID]}}),
                       ('bad applicationIDs value',
                        {'filters': {'applicationIDs': ['app-1']}}),
                       ('isArchived not a boolean',
                        {'filters': {'isArchived': 'yes'}})]:
        st, h, r = call(c, 'DescribeSourceServers', body)
        check('describe: %s -> ValidationException' % name,
              st == 400 and etype(h) == 'ValidationException', (st, r))
    code = code_of(c.aws, 'mgn', 'describe-source-servers',
                   '--starting-token', 'bm90LWEtdG9rZW4=')
    check('cli: a bad --starting-token is refused', code is not None, code)

    # -- filters ------------------------------------------------------
    r = c.aws('mgn', 'describe-source-servers', '--filters',
              'sourceServerIDs=%s,%s' % (ids[4], ids[1]))
    got = [s['sourceServerID'] for s in r['items']]
    check('cli filter sourceServerIDs', got == [ids[1], ids[4]], got)
    r = b.describe_source_servers(filters={'sourceServerIDs': [MISSING_SS]})
    check('boto filter on an unknown ID: empty', r['items'] == [], r)
    r = b.describe_source_servers(filters={'lifeCycleStates': ['NOT_READY'],
                                           'replicationTypes':
                                           ['AGENT_BASED']})
    check('boto filter lifeCycleStates+replicationTypes',
          len(r['items']) == 7, len(r['items']))
    r = b.describe_source_servers(filters={'replicationTypes':
                                           ['SNAPSHOT_SHIPPING']})
    check('boto filter replicationTypes SNAPSHOT_SHIPPING: none',
          r['items'] == [], r)
    r = b.describe_source_servers(filters={'isArchived': False,
                                           'sourceServerIDs': []})
    check('boto isArchived false (empty ID list does not filter)',
          len(r['items']) == 7, len(r['items']))
    r = c.aws('mgn', 'describe-source-servers', '--filters',
              'applicationIDs=app-0123456789abcdef0')
    check('cli filter applicationIDs: none', r['items'] == [], r)

    # -- Pause / Resume / Stop / Start ---------------------------------
    s0 = ids[0]
    r = c.aws('mgn', 'pause-replication', '--source-server-id', s0)
    check('cli pause-replication -> PAUSED', state(r)[0] == 'PAUSED',
          state(r))
    code = code_of(b.pause_replication, sourceServerID=s0)
    check('pause again -> ConflictException', code == 'ConflictException',
          code)
    st, h, body = call(c, 'PauseReplication', {'sourceServerID': s0})
    check('conflict body names the server and the state',
          st == 409 and body.get('resourceId') == s0 and
          'PAUSED' in body.get('message', ''), (st, body))
    r = b.resume_replication(sourceServerID=s0)
    check('boto resume_replication -> INITIATING',
          state(r)[0] == 'INITIATING', state(r))
    code = code_of(c.aws, 'mgn', 'resume-replication', '--source-server-id',
                   s0)
    check('resume when not paused -> ConflictException',
          code == 'ConflictException', code)
    code = code_of(c.aws, 'mgn', 'start-replication', '--source-server-id',
                   s0)
    check('start when replicating -> ConflictException',
          code == 'ConflictException', code)
    r = b.stop_replication(sourceServerID=s0)
    check('boto stop_replication -> STOPPED/STOPPED',
          state(r) == ('STOPPED', 'STOPPED'), state(r))
    code = code_of(c.aws, 'mgn', 'stop-replication', '--source-server-id',
                   s0)
    check('stop again -> ConflictException', code == 'ConflictException',
          code)
    code = code_of(b.pause_replication, sourceServerID=s0)
    check('pause when stopped -> ConflictException',
          code == 'ConflictException', code)
    r = c.aws('mgn', 'start-replication', '--source-server-id', s0)
    check('cli start-replication -> INITIATING, lifecycle as before',
          state(r) == ('INITIATING', 'NOT_READY'), state(r))
    r = b.describe_source_servers(filters={'lifeCycleStates': ['STOPPED']})
    check('describe filter STOPPED after start: none', r['items'] == [], r)

    cmds = commands(c, agents[s0])
    check('the agent got pause, resume, stop, start in order',
          [x['command'] for x in cmds] == ['pause', 'resume', 'stop',
                                           'start'], cmds)
    commands(c, agents[s0], ack=[x['commandID'] for x in cmds])

    # The agent's heartbeat cannot undo a pause.
    b.pause_replication(sourceServerID=s0)
    call(c, 'UpdateAgentReplicationInfoForMgn',
           {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 1},
           creds=agents[s0])
    check('heartbeat after pause keeps PAUSED',
          state(describe_one(b, s0))[0] == 'PAUSED',
          state(describe_one(b, s0)))
    b.resume_replication(sourceServerID=s0)

    # -- RetryDataReplication -----------------------------------------
    s1 = ids[1]
    code = code_of(c.aws, 'mgn', 'retry-data-replication',
                   '--source-server-id', s1)
    check('retry when not stalled -> ValidationException (no Conflict in '
          'the model)', code == 'ValidationException', code)
    st, _, r = call(c, 'UpdateAgentReplicationInfoForMgn',
                      {'dataReplicationState': 'STALLED',
                       'dataReplicationError': {
                           'error': 'UNSTABLE_NETWORK'}},
                      creds=agents[s1])
    check('agent reports STALLED', st == 200, r)
    r = b.retry_data_replication(sourceServerID=s1)
    check('boto retry_data_replication: INITIATING, error cleared',
          state(r)[0] == 'INITIATING' and
          'dataReplicationError' not in r['dataReplicationInfo'],
          r.get('dataReplicationInfo'))
    check('the agent got retry',
          [x['command'] for x in commands(c, agents[s1])] == ['retry'],
          commands(c, agents[s1]))

    # -- ChangeServerLifeCycleState -----------------------------------
    code = code_of(c.aws, 'mgn', 'change-server-life-cycle-state',
                   '--source-server-id', s1, '--life-cycle',
                   'state=READY_FOR_CUTOVER')
    check('change lifecycle of a NOT_READY server -> ConflictException',
          code == 'ConflictException', code)
    code = code_of(b.change_server_life_cycle_state, sourceServerID=s1,
                   lifeCycle={'state': 'TESTING'})
    check('change lifecycle to TESTING -> ValidationException',
          code == 'ValidationException', code)
    st, h, r = call(c, 'ChangeServerLifeCycleState',
                      {'sourceServerID': s1})
    check('change lifecycle without lifeCycle -> ValidationException',
          etype(h) == 'ValidationException', (st, r))

    # -- Disconnect / archive / delete --------------------------------
    s2 = ids[2]
    code = code_of(c.aws, 'mgn', 'mark-as-archived', '--source-server-id',
                   s2)
    check('archive a connected server -> ConflictException',
          code == 'ConflictException', code)
    code = code_of(b.delete_source_server, sourceServerID=s2)
    check('delete a connected server -> ConflictException',
          code == 'ConflictException', code)
    call(c, 'UpdateAgentReplicationInfoForMgn',
           {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 2,
            'etaSeconds': 60,
            'replicatedDisks': [{'deviceName': '/dev/vda',
                                 'replicatedStorageBytes': 1 << 30}]},
           creds=agents[s2])
    r = c.aws('mgn', 'disconnect-from-service', '--source-server-id', s2)
    dri = r['dataReplicationInfo']
    check('cli disconnect-from-service: DISCONNECTED/DISCONNECTED',
          state(r) == ('DISCONNECTED', 'DISCONNECTED'), state(r))
    check('disconnect: no lag or ETA, disks total 0',
          'lagDuration' not in dri and 'etaDateTime' not in dri and
          all(d.get('totalStorageBytes') == 0
              for d in dri.get('replicatedDisks', [])) and
          dri.get('replicatedDisks'), dri)
    cmds = commands(c, agents[s2])
    check('the disconnected agent can still fetch its uninstall command',
          [x['command'] for x in cmds] == ['uninstall'], cmds)
    for name, fn in [('disconnect again',
                      lambda: b.disconnect_from_service(sourceServerID=s2)),
                     ('pause a disconnected server',
                      lambda: b.pause_replication(sourceServerID=s2)),
                     ('start a disconnected server',
                      lambda: c.aws('mgn', 'start-replication',
                                    '--source-server-id', s2))]:
        code = code_of(fn)
        check(name + ' -> ConflictException', code == 'ConflictException',
              code)
    r = b.mark_as_archived(sourceServerID=s2)
    check('boto mark_as_archived a disconnected server',
          r['isArchived'] is True, r.get('isArchived'))
    r = c.aws('mgn', 'describe-source-servers', '--filters',
              'isArchived=true')
    check('describe isArchived=true: only it',
          [s['sourceServerID'] for s in r['items']] == [s2], r)
    r = b.describe_source_servers(filters={'isArchived': False})
    check('describe isArchived=false: the others',
          s2 not in [s['sourceServerID'] for s in r['items']] and
          len(r['items']) == 6, len(r['items']))
    out = c.aws('mgn', 'delete-source-server', '--source-server-id', s2)
    check('cli delete-source-server: no output (204)', out is None, out)
    r = b.describe_source_servers()
    check('deleted server is gone',
          s2 not in [s['sourceServerID'] for s in r['items']], r)
    st, _, r = call(c, 'GetAgentCommandForMgn', {}, creds=agents[s2])
    check('deleted server: its agent credentials are revoked',
          st == 403, (st, r))

    s3 = ids[3]
    b.disconnect_from_service(sourceServerID=s3)
    st, _, r = call(c, 'DeleteSourceServer', {'sourceServerID': s3})
    check('raw DeleteSourceServer of a disconnected, unarchived server: 204',
          st == 204 and r is None, (st, r))

    # -- errors common to the operations ------------------------------
    for op, cli in [('StartReplication', 'start-replication'),
                    ('StopReplication', 'stop-replication'),
                    ('PauseReplication', 'pause-replication'),
                    ('ResumeReplication', 'resume-replication'),
                    ('RetryDataReplication', 'retry-data-replication'),
                    ('DisconnectFromService', 'disconnect-from-service'),
                    ('MarkAsArchived', 'mark-as-archived'),
                    ('DeleteSourceServer', 'delete-source-server')]:
        code = code_of(c.aws, 'mgn', cli, '--source-server-id', MISSING_SS)
        check('cli %s unknown server -> ResourceNotFoundException' % cli,
              code == 'ResourceNotFoundException', code)
        snake = ''.join('_' + ch.lower() if ch.isupper() else ch
                        for ch in op).lstrip('_')
        code = code_of(getattr(b, snake), sourceServerID=BAD_ID)
        check('boto %s bad ID -> ValidationException' % snake,
              code == 'ValidationException', code)
        st, h, r = call(c, op, {'sourceServerID': 's-1'})
        check('raw %s short ID -> ValidationException' % op,
              etype(h) == 'ValidationException', (st, r))
        # An agent may disconnect its own server (uninstall.sh), no
        # other; the rest is the administrators'.
        target = ids[3] if op == 'DisconnectFromService' else ids[4]
        code = code_of(getattr(unique(c.boto(agents[ids[4]])), snake),
                       sourceServerID=target)
        check('agent key: %s%s -> AccessDeniedException' %
              (op, ' of another server' if target != ids[4] else ''),
              code == 'AccessDeniedException', code)
    code = code_of(b.change_server_life_cycle_state, sourceServerID=MISSING_SS,
                   lifeCycle={'state': 'READY_FOR_TEST'})
    check('change lifecycle, unknown server -> ResourceNotFoundException',
          code == 'ResourceNotFoundException', code)
    code = code_of(c.aws, 'mgn', 'describe-source-servers',
                   creds=agents[ids[4]])
    check('agent key: cli describe-source-servers -> AccessDeniedException',
          code == 'AccessDeniedException', code)
    code = code_of(unique(c.boto(c.installer)).describe_source_servers)
    check('installer key: describe_source_servers -> AccessDeniedException',
          code == 'AccessDeniedException', code)
    # Nothing changed by the refused calls.
    check('refused calls changed nothing',
          state(describe_one(b, ids[4])) == ('INITIATING', 'NOT_READY') or
          state(describe_one(b, ids[4]))[1] == 'NOT_READY',
          state(describe_one(b, ids[4])))

    # -- durability ---------------------------------------------------
    b.stop_replication(sourceServerID=ids[5])
    c.kill9()
    c.start()
    r = unique(c.boto()).describe_source_servers()
    got = {s['sourceServerID']: state(s) for s in r['items']}
    check('after kill -9: servers and states kept',
          sorted(got) == sorted([ids[0], ids[1], ids[4], ids[5], ids[6]]) and
          got[ids[5]] == ('STOPPED', 'STOPPED'), got)

# ChangeServerLifeCycleState on a launchable server: a replicator reports
# the first consistent snapshot (READY_FOR_TEST) and the agent a lag.
with ft.Control() as c:
    b = unique(c.boto())
    st, _, r = call(c, 'RegisterReplicatorForMgn',
                    {'replicatorID': 'rep-1', 'address': '127.0.0.1',
                     'port': 1500, 'capacityBytes': 1 << 40,
                     'freeBytes': 1 << 40}, creds=c.replicator)
    check('replicator registered', st == 200, (st, r))
    sid, agent = c.register_agent('launchable')
    st, _, r = call(c, 'UpdateAgentReplicationInfoForMgn',
                    {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 3},
                    creds=agent)
    check('agent heartbeat with a lag', st == 200, (st, r))
    code = code_of(b.change_server_life_cycle_state, sourceServerID=sid,
                   lifeCycle={'state': 'READY_FOR_CUTOVER'})
    check('lag but no snapshot yet (NOT_READY) -> ConflictException',
          code == 'ConflictException', code)
    snap = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() - 5))
    st, _, r = call(c, 'UpdateReplicatorInfoForMgn',
                    {'replicatorID': 'rep-1', 'freeBytes': 1 << 39,
                     'sourceServers': [{'sourceServerID': sid,
                                        'lastSnapshotDateTime': snap}]},
                    creds=c.replicator)
    check('replicator reports a snapshot', st == 200, (st, r))
    check('server is READY_FOR_TEST',
          state(describe_one(b, sid))[1] == 'READY_FOR_TEST',
          state(describe_one(b, sid)))
    code = code_of(c.aws, 'mgn', 'mark-as-archived', '--source-server-id',
                   sid)
    refused_at = time.time()
    check('archive a READY_FOR_TEST server -> ConflictException',
          code == 'ConflictException', code)
    r = c.aws('mgn', 'change-server-life-cycle-state', '--source-server-id',
              sid, '--life-cycle', 'state=READY_FOR_CUTOVER')
    check('cli change-server-life-cycle-state READY_FOR_CUTOVER',
          state(r) == ('CONTINUOUS', 'READY_FOR_CUTOVER'), state(r))
    r = b.change_server_life_cycle_state(sourceServerID=sid,
                                         lifeCycle={'state': 'CUTOVER'})
    check('boto change_server_life_cycle_state CUTOVER',
          state(r)[1] == 'CUTOVER', state(r))
    r = b.describe_source_servers(filters={'lifeCycleStates': ['CUTOVER']})
    check('describe filter lifeCycleStates CUTOVER',
          [x['sourceServerID'] for x in r['items']] == [sid], r)
    # The same request as the refused one: signed in the same second it
    # would carry the same signature, which ferry-control refuses as a
    # replay (docs/control.md); on a fast machine the calls between do
    # not always take a second.
    time.sleep(max(0, int(refused_at) + 1 - time.time()))
    r = c.aws('mgn', 'mark-as-archived', '--source-server-id', sid)
    check('cli mark-as-archived a CUTOVER server', r['isArchived'] is True,
          r)
    code = code_of(b.change_server_life_cycle_state, sourceServerID=sid,
                   lifeCycle={'state': 'READY_FOR_TEST'})
    check('archived server: lifecycle change -> ConflictException',
          code == 'ConflictException', code)
    code = code_of(b.delete_source_server, sourceServerID=sid)
    check('archived but still replicating: delete -> ConflictException',
          code == 'ConflictException', code)
    b.disconnect_from_service(sourceServerID=sid)
    b.delete_source_server(sourceServerID=sid)
    check('archived, then disconnected: deleted',
          b.describe_source_servers()['items'] == [], 'still listed')

ft.done()
