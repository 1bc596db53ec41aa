#!/usr/bin/python3
"""Agent operations of ferry-control: registration, credentials, the
heartbeat as `aws mgn describe-source-servers` shows it, commands,
source properties, the data-plane certificate and AGENT_NOT_SEEN."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

check = ft.check


def err_type(hdrs):
    return (hdrs.get('x-amzn-errortype') or '').split(':')[0]


def call_err(c, op, body, creds):
    """The AWS error type an operation answers ('' on success)."""
    st, hdrs, _ = c.call(op, body, creds=creds)
    return '' if st == 200 else err_type(hdrs)


def no_replays(c):
    """Space out identical calls: SigV4 signs to the second, so the same
    request with the same key twice in one second has the same signature,
    which ferry-control refuses as a replay for operations that change
    state (as an agent polling faster than once a second would see)."""
    orig, last = c.call, {}

    def call(op, body=None, creds=None, **kw):
        key = (op, json.dumps(body, sort_keys=True),
               (creds or c.admin)['AccessKeyId'])
        wait = last.get(key, 0) + 1.1 - time.time()
        if wait > 0:
            time.sleep(wait)
        last[key] = time.time()
        return orig(op, body, creds=creds, **kw)
    c.call = call
    return c


def describe(c, sid):
    r = c.aws('mgn', 'describe-source-servers', '--filters',
              'sourceServerIDs=%s' % sid)
    return r['items'][0] if r and r.get('items') else None


def count_servers(c):
    r = c.aws('mgn', 'describe-source-servers')
    return len(r['items'])


BASE = {
    'hostname': 'v1', 'machineId': 'machine-v1',
    'disks': [{'deviceName': '/dev/vda', 'bytes': 1 << 30}],
}


def with_(**kw):
    b = json.loads(json.dumps(BASE))
    b.update(kw)
    return b


def test_registration(c):
    sid, cr = c.register_agent('web1', machine_id='m-web1',
                               tags={'team': 'blue'},
                               userProvidedID='asset-17')
    check('register: ID is s- and 17 hex digits',
          re.fullmatch(r's-[0-9a-f]{17}', sid), sid)
    check('register: session credentials',
          cr['AccessKeyId'].startswith('ASIA') and len(cr['SessionToken']) > 20,
          cr['AccessKeyId'])
    d = describe(c, sid)
    check('register: visible in aws mgn describe-source-servers', d is not None)
    if d is None:
        return sid, cr, None
    check('register: lifeCycle NOT_READY with addedToServiceDateTime',
          d['lifeCycle']['state'] == 'NOT_READY' and
          d['lifeCycle'].get('addedToServiceDateTime'), d['lifeCycle'])
    dri = d['dataReplicationInfo']
    steps = dri.get('dataReplicationInitiation', {}).get('steps', [])
    check('register: INITIATING with MGN initiation steps, WAIT in progress',
          dri['dataReplicationState'] == 'INITIATING' and len(steps) == 11 and
          steps[0] == {'name': 'WAIT', 'status': 'IN_PROGRESS'} and
          steps[-1]['name'] == 'START_DATA_TRANSFER', dri)
    check('register: AGENT_BASED', d['replicationType'] == 'AGENT_BASED')
    sp = d['sourceProperties']
    check('register: facts in sourceProperties',
          sp['identificationHints'] == {'hostname': 'web1',
                                        'fqdn': 'web1.example.test'} and
          sp['ramBytes'] == 2 << 30 and
          sp['os']['fullString'].startswith('Debian') and
          sp['cpus'] == [{'cores': 2, 'modelName': 'QEMU Virtual CPU'}] and
          sp['networkInterfaces'][0]['macAddress'] == '52:54:00:12:34:56' and
          [x['deviceName'] for x in sp['disks']] == ['/dev/vda', '/dev/vdb'],
          sp)
    check('register: recommendedInstanceType fits 2 vCPUs / 2 GiB',
          sp.get('recommendedInstanceType') == 't3.small', sp)
    check('register: tags set', d.get('tags') == {'team': 'blue'}, d.get('tags'))
    check('register: replicatedDisks follow the disks',
          [(x['deviceName'], x['totalStorageBytes'])
           for x in dri.get('replicatedDisks', [])] ==
          [('/dev/vda', 8 << 30), ('/dev/vdb', 1 << 30)], dri)
    cfg = c.aws('mgn', 'get-replication-configuration',
                '--source-server-id', sid)
    check('register: replication configuration made',
          cfg['sourceServerID'] == sid and len(cfg['replicatedDisks']) == 2,
          cfg)

    # Re-registration: same machine, same ID, new facts, new credentials.
    sid2, cr2 = c.register_agent('web1', machine_id='m-web1',
                                 ramBytes=16 << 30)
    check('re-register: same sourceServerID', sid2 == sid, (sid, sid2))
    d = describe(c, sid)
    check('re-register: facts updated',
          d['sourceProperties']['ramBytes'] == 16 << 30 and
          d['sourceProperties']['recommendedInstanceType'] == 'r5.large',
          d['sourceProperties'])
    check('re-register: one server, not two', count_servers(c) == 1)
    # A new installation: the earlier one's credentials end.
    st, hdrs, _ = c.call('RefreshAgentCredentialsForMgn', {}, creds=cr)
    check('re-register: earlier credentials revoked',
          st == 403 and err_type(hdrs) == 'UnrecognizedClientException',
          (st, hdrs.get('x-amzn-errortype')))
    st, _, _ = c.call('RefreshAgentCredentialsForMgn', {}, creds=cr2)
    check('re-register: new credentials valid', st == 200, st)
    sid3, _ = c.register_agent('web2', machine_id='m-web2')
    check('register: another machine gets another ID', sid3 != sid)
    check('register: installer key stays usable', count_servers(c) == 2)
    return sid, cr2, sid3


def test_validation(c):
    n = count_servers(c)
    cases = [
        ('missing machineId', {'hostname': 'x', 'disks': []}),
        ('missing hostname', {'machineId': 'x', 'disks': []}),
        ('unknown member', with_(colour='red')),
        ('bad MAC', with_(networkInterfaces=[{'macAddress': '52:54:00:12:34'}])),
        ('bad IP', with_(networkInterfaces=[{'macAddress': '52:54:00:12:34:56',
                                             'ips': ['10.0.2.300']}])),
        ('two primary NICs', with_(networkInterfaces=[
            {'macAddress': '52:54:00:00:00:01', 'isPrimary': True},
            {'macAddress': '52:54:00:00:00:02', 'isPrimary': True}])),
        ('33 NICs', with_(networkInterfaces=[
            {'macAddress': '52:54:00:00:00:%02x' % i} for i in range(33)])),
        ('repeated disk', with_(disks=[{'deviceName': '/dev/vda', 'bytes': 1},
                                       {'deviceName': '/dev/vda', 'bytes': 2}])),
        ('negative disk size', with_(disks=[{'deviceName': '/dev/vda',
                                             'bytes': -1}])),
        ('disk size not a number', with_(disks=[{'deviceName': '/dev/vda',
                                                 'bytes': '1G'}])),
        ('1001 disks', with_(disks=[{'deviceName': 'd%d' % i, 'bytes': 1}
                                    for i in range(1001)])),
        ('0 cores', with_(cpus=[{'cores': 0}])),
        ('hostname too long', with_(hostname='h' * 257)),
        ('control character', with_(hostname='a\nb')),
        ('reserved tag', with_(tags={'aws:x': 'y'})),
    ]
    for name, body in cases:
        st, hdrs, r = c.call('RegisterAgentForMgn', body, creds=c.installer)
        check('register refuses %s' % name,
              st == 400 and err_type(hdrs) == 'ValidationException' and
              r.get('fieldList'), (st, hdrs.get('x-amzn-errortype'), r))
    check('refused registrations create nothing', count_servers(c) == n)
    st, hdrs, _ = c.call('RegisterAgentForMgn', with_(), creds=c.replicator)
    check('replicator key cannot register agents',
          st == 403 and err_type(hdrs) == 'AccessDeniedException', st)


def test_scope(c, sid_a, cr_a, sid_b):
    check('agent key cannot call the admin API',
          ft.error_code(c.aws, 'mgn', 'describe-source-servers', creds=cr_a)
          == 'AccessDeniedException')
    before = describe(c, sid_b)
    e = call_err(c, 'UpdateAgentReplicationInfoForMgn',
                 {'sourceServerID': sid_b, 'dataReplicationState': 'CONTINUOUS',
                  'lagSeconds': 1}, cr_a)
    check('agent A cannot heartbeat for B', e == 'AccessDeniedException', e)
    check('B unchanged by A', describe(c, sid_b) == before)
    e = call_err(c, 'GetAgentCommandForMgn', {'sourceServerID': sid_b}, cr_a)
    check('agent A cannot read B\'s commands', e == 'AccessDeniedException', e)
    e = call_err(c, 'UpdateAgentReplicationInfoForMgn',
                 {'dataReplicationState': 'CONTINUOUS'}, c.installer)
    check('installer key cannot heartbeat', e == 'AccessDeniedException', e)
    bad = dict(cr_a, SessionToken=cr_a['SessionToken'][:-4] + 'AAAA')
    st, _, _ = c.call('UpdateAgentReplicationInfoForMgn',
                      {'dataReplicationState': 'CONTINUOUS'}, creds=bad)
    check('agent credentials need their session token', st == 403, st)


def test_heartbeat(c, sid, cr):
    body = {'dataReplicationState': 'INITIAL_SYNC', 'lagSeconds': 3723,
            'etaSeconds': 600, 'backlogBytes': 4096,
            'replicatedDisks': [
                {'deviceName': '/dev/vda', 'totalStorageBytes': 8 << 30,
                 'replicatedStorageBytes': 3 << 30,
                 'rescannedStorageBytes': 0,
                 'backloggedStorageBytes': 4096}]}
    st, _, r = c.call('UpdateAgentReplicationInfoForMgn', body, creds=cr)
    check('heartbeat accepted', st == 200 and
          r.get('dataReplicationState') == 'INITIAL_SYNC', (st, r))
    d = describe(c, sid)
    dri, lc = d['dataReplicationInfo'], d['lifeCycle']
    check('heartbeat: lagDuration ISO-8601', dri.get('lagDuration') == 'PT1H2M3S',
          dri.get('lagDuration'))
    check('heartbeat: state shown', dri['dataReplicationState'] == 'INITIAL_SYNC')
    rd = {x['deviceName']: x for x in dri['replicatedDisks']}
    check('heartbeat: replicatedDisks updated',
          rd['/dev/vda']['replicatedStorageBytes'] == 3 << 30 and
          rd['/dev/vda']['backloggedStorageBytes'] == 4096 and
          rd['/dev/vdb']['replicatedStorageBytes'] == 0, rd)
    seen = lc.get('lastSeenByServiceDateTime', '')
    check('heartbeat: lastSeenByServiceDateTime is now',
          seen and abs(time.mktime(time.strptime(seen, '%Y-%m-%dT%H:%M:%SZ'))
                       - time.mktime(time.gmtime())) < 30, seen)
    check('heartbeat: firstByteDateTime and elapsedReplicationDuration',
          lc.get('firstByteDateTime') and
          lc.get('elapsedReplicationDuration', '').startswith('P'), lc)
    eta = dri.get('etaDateTime', '')
    check('heartbeat: etaDateTime about 10 minutes ahead',
          eta and 500 < time.mktime(time.strptime(eta, '%Y-%m-%dT%H:%M:%SZ'))
          - time.mktime(time.gmtime()) < 700, eta)
    st, _, _ = c.call('UpdateAgentReplicationInfoForMgn', dict(
        body, etaSeconds=1 << 62), creds=cr)
    eta = describe(c, sid)['dataReplicationInfo'].get('etaDateTime')
    check('heartbeat: an ETA beyond year 9999 shows as its last second',
          st == 200 and eta == '9999-12-31T23:59:59Z', (st, eta))
    steps = dri['dataReplicationInitiation']['steps']
    check('heartbeat: initiation steps done once data flows',
          all(s['status'] in ('SUCCEEDED', 'SKIPPED') for s in steps), steps)
    bad = [
        ('unknown state', {'dataReplicationState': 'SLEEPING'}),
        ('service-only state', {'dataReplicationState': 'DISCONNECTED'}),
        ('unknown disk', {'dataReplicationState': 'CONTINUOUS',
                          'replicatedDisks': [{'deviceName': '/dev/sdz',
                                               'replicatedStorageBytes': 1}]}),
        ('more replicated than total', {
            'dataReplicationState': 'CONTINUOUS',
            'replicatedDisks': [{'deviceName': '/dev/vdb',
                                 'totalStorageBytes': 10,
                                 'replicatedStorageBytes': 11}]}),
        ('negative lag', {'dataReplicationState': 'CONTINUOUS',
                          'lagSeconds': -1}),
        ('AGENT_NOT_SEEN from the agent', {
            'dataReplicationState': 'STALLED',
            'dataReplicationError': {'error': 'AGENT_NOT_SEEN'}}),
    ]
    before = describe(c, sid)
    for name, b in bad:
        e = call_err(c, 'UpdateAgentReplicationInfoForMgn', b, cr)
        check('heartbeat refuses %s' % name, e == 'ValidationException', e)
    after = describe(c, sid)
    check('refused heartbeats change nothing',
          before['dataReplicationInfo'] == after['dataReplicationInfo'])
    st, _, _ = c.call('UpdateAgentReplicationInfoForMgn', {
        'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 0,
        'dataReplicationError': {'error': 'UNSTABLE_NETWORK',
                                 'rawError': 'connection reset'}}, creds=cr)
    d = describe(c, sid)['dataReplicationInfo']
    check('heartbeat: agent error shown',
          st == 200 and d.get('dataReplicationError') ==
          {'error': 'UNSTABLE_NETWORK', 'rawError': 'connection reset'} and
          d['lagDuration'] == 'PT0S' and 'etaDateTime' not in d, d)
    c.call('UpdateAgentReplicationInfoForMgn',
           {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 1}, creds=cr)
    d = describe(c, sid)['dataReplicationInfo']
    check('heartbeat: error cleared when no longer reported',
          'dataReplicationError' not in d, d)


def test_runtime_and_commands(c, sid, cr):
    st, _, r = c.call('GetAgentRuntimeConfigurationForMgn', {}, creds=cr)
    check('runtime: answered', st == 200, (st, r))
    check('runtime: no replicator yet, defaults',
          r['replicator'] is None and r['bandwidthThrottling'] == 0 and
          r['compression'] == 'lz4' and r['pitPolicy'] is None and
          r['heartbeatIntervalSeconds'] > 0 and
          r['dataReplicationPaused'] is False and
          r['replicatedDisks'] == ['/dev/vda', '/dev/vdb'], r)
    c.aws('mgn', 'update-replication-configuration', '--source-server-id', sid,
          '--bandwidth-throttling', '100')
    _, _, r = c.call('GetAgentRuntimeConfigurationForMgn', {}, creds=cr)
    check('runtime: throttling from the replication configuration',
          r['bandwidthThrottling'] == 100 and r['compression'] == 'zstd', r)

    _, _, r = c.call('GetAgentCommandForMgn', {}, creds=cr)
    check('commands: none at first', r['commands'] == [], r)
    c.aws('mgn', 'pause-replication', '--source-server-id', sid)
    _, _, r = c.call('GetAgentCommandForMgn', {}, creds=cr)
    cmds = r['commands']
    check('commands: pause delivered after aws mgn pause-replication',
          [x['command'] for x in cmds] == ['pause'] and
          isinstance(cmds[0]['commandID'], int), r)
    _, _, r2 = c.call('GetAgentCommandForMgn', {}, creds=cr)
    check('commands: repeated until acknowledged', r2.get('commands') == cmds, r2)
    _, _, r = c.call('GetAgentRuntimeConfigurationForMgn', {}, creds=cr)
    check('runtime: dataReplicationPaused', r['dataReplicationPaused'] is True, r)
    # The agent has not acted yet: its CONTINUOUS does not undo the pause.
    _, _, r = c.call('UpdateAgentReplicationInfoForMgn',
                     {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 2},
                     creds=cr)
    d = describe(c, sid)['dataReplicationInfo']
    check('heartbeat: PAUSED stands until ResumeReplication',
          r['dataReplicationState'] == 'PAUSED' and
          d['dataReplicationState'] == 'PAUSED' and d['lagDuration'] == 'PT2S',
          (r, d))
    _, _, r = c.call('GetAgentCommandForMgn',
                     {'ackCommandIDs': [cmds[0]['commandID']]}, creds=cr)
    check('commands: acknowledged ones are gone', r['commands'] == [], r)
    e = call_err(c, 'GetAgentCommandForMgn', {'ackCommandIDs': ['x']}, cr)
    check('commands: bad ack IDs refused', e == 'ValidationException', e)
    c.aws('mgn', 'resume-replication', '--source-server-id', sid)
    _, _, r = c.call('GetAgentCommandForMgn', {}, creds=cr)
    check('commands: resume delivered',
          [x['command'] for x in r['commands']] == ['resume'], r)
    c.call('GetAgentCommandForMgn',
           {'ackCommandIDs': [x['commandID'] for x in r['commands']]}, creds=cr)
    c.call('UpdateAgentReplicationInfoForMgn',
           {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 4}, creds=cr)
    d = describe(c, sid)['dataReplicationInfo']
    check('heartbeat: state follows the agent after resume',
          d['dataReplicationState'] == 'CONTINUOUS', d)


def test_properties(c, sid, cr):
    st, _, r = c.call('UpdateAgentSourcePropertiesForMgn', {
        'ramBytes': 64 << 30, 'cpus': [{'cores': 8}],
        'disks': [{'deviceName': '/dev/vda', 'bytes': 8 << 30},
                  {'deviceName': '/dev/vdb', 'bytes': 1 << 30},
                  {'deviceName': '/dev/vdc', 'bytes': 2 << 30}]}, creds=cr)
    check('properties: accepted', st == 200, (st, r))
    d = describe(c, sid)
    sp, dri = d['sourceProperties'], d['dataReplicationInfo']
    check('properties: new disk and RAM shown',
          len(sp['disks']) == 3 and sp['ramBytes'] == 64 << 30 and
          sp['recommendedInstanceType'] == 'r5.2xlarge', sp)
    rd = {x['deviceName']: x for x in dri['replicatedDisks']}
    check('properties: replicatedDisks gain the disk, keep counters',
          rd.get('/dev/vdc', {}).get('totalStorageBytes') == 2 << 30 and
          rd['/dev/vda']['replicatedStorageBytes'] == 3 << 30, rd)
    cfg = c.aws('mgn', 'get-replication-configuration',
                '--source-server-id', sid)
    check('properties: replication configuration follows the disks',
          len(cfg['replicatedDisks']) == 3, cfg['replicatedDisks'])
    e = call_err(c, 'UpdateAgentSourcePropertiesForMgn',
                 {'networkInterfaces': [{'macAddress': 'zz:54:00:12:34:56'}]}, cr)
    check('properties: same validation as registration',
          e == 'ValidationException', e)
    e = call_err(c, 'UpdateAgentSourcePropertiesForMgn', {'machineId': 'y'}, cr)
    check('properties: machineId cannot change', e == 'ValidationException', e)


def test_certificate(c, sid, cr):
    tmp = tempfile.mkdtemp(prefix='ferry-cert.')
    key, csr, crt = (os.path.join(tmp, n) for n in ('k.pem', 'r.csr', 'c.pem'))
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
                    '-out', csr, '-subj', '/CN=not-trusted'],
                   check=True, capture_output=True)
    st, _, r = c.call('IssueClientCertificateForMgn',
                      {'csr': open(csr).read()}, creds=cr)
    check('certificate: issued', st == 200 and 'BEGIN CERTIFICATE' in
          r.get('certificate', '') and r.get('caCertificate') ==
          open(os.path.join(c.data_dir, 'ca.pem')).read(), (st, r))
    if st != 200:
        return
    open(crt, 'w').write(r['certificate'])
    v = subprocess.run(['openssl', 'verify', '-CAfile',
                        os.path.join(c.data_dir, 'ca.pem'), crt],
                       capture_output=True, text=True)
    check('certificate: openssl verify against DATA_DIR/ca.pem',
          v.returncode == 0 and ': OK' in v.stdout, v.stdout + v.stderr)
    t = subprocess.run(['openssl', 'x509', '-in', crt, '-noout', '-text'],
                       capture_output=True, text=True).stdout
    check('certificate: carries the source server ID',
          ('CN = %s' % sid) in t and
          ('URI:urn:ferry:source-server:%s' % sid) in t and
          'not-trusted' not in t, t[:2000])
    e = call_err(c, 'IssueClientCertificateForMgn',
                 {'csr': '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n'
                         '-----END CERTIFICATE REQUEST-----\n'}, cr)
    check('certificate: garbage CSR refused', e == 'ValidationException', e)


def test_disconnect(c, sid, cr):
    c.aws('mgn', 'disconnect-from-service', '--source-server-id', sid)
    _, _, r = c.call('GetAgentCommandForMgn', {}, creds=cr)
    cmds = [x for x in r.get('commands', []) if x['command'] == 'uninstall']
    check('disconnect: uninstall command reaches the agent', cmds, r)
    e = call_err(c, 'UpdateAgentReplicationInfoForMgn',
                 {'dataReplicationState': 'CONTINUOUS'}, cr)
    check('disconnect: heartbeats refused', e == 'AccessDeniedException', e)
    c.call('GetAgentCommandForMgn',
           {'ackCommandIDs': [x['commandID'] for x in r['commands']]}, creds=cr)
    st, hdrs, _ = c.call('GetAgentCommandForMgn', {}, creds=cr)
    check('disconnect: credentials revoked once uninstall is acknowledged',
          st == 403 and err_type(hdrs) in ('UnrecognizedClientException',
                                            'InvalidClientTokenId',
                                            'ExpiredTokenException'),
          (st, hdrs.get('x-amzn-errortype')))
    sid2, cr2 = c.register_agent('web1', machine_id='m-web1')
    d = describe(c, sid)
    check('disconnected server re-registers: same ID, NOT_READY, INITIATING',
          sid2 == sid and d['lifeCycle']['state'] == 'NOT_READY' and
          d['dataReplicationInfo']['dataReplicationState'] == 'INITIATING' and
          d['isArchived'] is False, d)
    _, _, r = c.call('GetAgentCommandForMgn', {}, creds=cr2)
    check('re-registered agent does not get the old uninstall',
          r['commands'] == [], r)

    # Disconnected again, and registered again before the old agent
    # acknowledged its uninstall (the command is dropped, so it never
    # will): the old credentials must not come back with the server.
    c.aws('mgn', 'disconnect-from-service', '--source-server-id', sid)
    sid3, cr3 = c.register_agent('web1', machine_id='m-web1')
    for op, body in (('RefreshAgentCredentialsForMgn', {}),
                     ('UpdateAgentReplicationInfoForMgn',
                      {'dataReplicationState': 'CONTINUOUS'})):
        st, hdrs, _ = c.call(op, body, creds=cr2)
        check('re-registered before the uninstall was acknowledged: old '
              'credentials refused (%s)' % op,
              st == 403 and err_type(hdrs) == 'UnrecognizedClientException',
              (st, hdrs.get('x-amzn-errortype')))
    st, _, _ = c.call('RefreshAgentCredentialsForMgn', {}, creds=cr3)
    check('re-registered before the uninstall was acknowledged: new '
          'credentials valid', sid3 == sid and st == 200, (sid3, st))


def beat_and_read(c, sid, creds, body, timeout, pause=0, tries=30):
    """Send a heartbeat for a server, wait PAUSE seconds, then read the
    server with a signed request; its dataReplicationInfo.  Only a read
    answered less than TIMEOUT - 1 s after the heartbeat was sent tells
    whether a heartbeat keeps AGENT_NOT_SEEN away (ferry-control counts
    whole seconds): a slower pair (a starved test) is tried again, up to
    TRIES times.  None if no pair was fast enough."""
    for _ in range(tries):
        t0 = time.time()
        c.call('UpdateAgentReplicationInfoForMgn', body, creds=creds)
        time.sleep(pause)
        _, _, r = c.call('DescribeSourceServers',
                         {'filters': {'sourceServerIDs': [sid]}})
        if time.time() - t0 < timeout - 1:
            return r['items'][0]['dataReplicationInfo']
    return None


def wait_not_seen(c, sid, limit=120):
    """Read the server with signed requests until it shows AGENT_NOT_SEEN
    or LIMIT seconds pass (only reached when it never comes); its last
    dataReplicationInfo."""
    deadline = time.time() + limit
    while True:
        _, _, r = c.call('DescribeSourceServers',
                         {'filters': {'sourceServerIDs': [sid]}})
        d = r['items'][0]['dataReplicationInfo']
        if d.get('dataReplicationError') or time.time() > deadline:
            return d
        time.sleep(0.5)


def test_not_seen():
    timeout = 5
    with ft.Control(args=['--agent-timeout', str(timeout)]) as c:
        no_replays(c)
        sid, cr = c.register_agent('quiet', machine_id='m-quiet')
        c.call('UpdateAgentReplicationInfoForMgn',
               {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 1},
               creds=cr)
        sid2, cr2 = c.register_agent('busy', machine_id='m-busy')
        # Until the quiet one is flagged, as the aws CLI shows it; the
        # deadline only matters when it never is.
        deadline = time.time() + 120
        d = None
        while time.time() < deadline:
            c.call('UpdateAgentReplicationInfoForMgn',
                   {'dataReplicationState': 'CONTINUOUS'}, creds=cr2)
            d = describe(c, sid)['dataReplicationInfo']
            if d.get('dataReplicationError'):
                break
            time.sleep(1)
        check('AGENT_NOT_SEEN after --agent-timeout',
              d.get('dataReplicationError', {}).get('error') == 'AGENT_NOT_SEEN'
              and d['dataReplicationState'] == 'STALLED', d)
        # Its heartbeat 2 s before (ferry-control sweeps every second: a
        # timeout counted too short shows), and the answer read with a
        # signed request (the aws CLI alone takes seconds to start on a
        # loaded machine), within the timeout of the heartbeat.
        b = beat_and_read(c, sid2, cr2, {'dataReplicationState': 'CONTINUOUS'},
                          timeout, pause=2)
        check('a heartbeating agent is not flagged',
              b is not None and 'dataReplicationError' not in b and
              b['dataReplicationState'] == 'CONTINUOUS',
              b or 'no heartbeat and read within %d s' % (timeout - 1))
        d = beat_and_read(c, sid, cr, {'dataReplicationState': 'CONTINUOUS',
                                       'lagSeconds': 1}, timeout)
        check('recovers on the next heartbeat',
              d is not None and 'dataReplicationError' not in d and
              d['dataReplicationState'] == 'CONTINUOUS',
              d or 'no heartbeat and read within %d s' % (timeout - 1))
        c.kill9()
        c.start()
        d = wait_not_seen(c, sid)
        check('AGENT_NOT_SEEN after a restart too',
              d.get('dataReplicationError', {}).get('error') == 'AGENT_NOT_SEEN',
              d)


def main():
    with ft.Control() as c:
        no_replays(c)
        sid, cr, sid_b = test_registration(c)
        test_validation(c)
        test_scope(c, sid, cr, sid_b)
        test_heartbeat(c, sid, cr)
        test_runtime_and_commands(c, sid, cr)
        test_properties(c, sid, cr)
        test_certificate(c, sid, cr)
        test_disconnect(c, sid, cr)
    test_not_seen()
    ft.done()


if __name__ == '__main__':
    main()
