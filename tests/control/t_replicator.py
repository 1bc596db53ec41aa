#!/usr/bin/python3
"""Replicator operations of ferry-control: registration, assignment of
source servers (least loaded, dedicated, waiting for a replicator), the
replicator's heartbeat with snapshots (READY_FOR_TEST) and staging errors
(STALLED, apart from the agent's own error), scoping and the replicator's
server certificate."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from t_agent import describe, err_type, no_replays  # noqa: E402

check = ft.check
TIB = 1 << 40


def rep_body(name, port, **kw):
    b = {'replicatorID': name, 'address': '127.0.0.1', 'port': port,
         'capacityBytes': TIB, 'freeBytes': TIB}
    b.update(kw)
    return b


def https_refuses(c, crt, key):
    """A TLS server on 127.0.0.1 showing CRT: a client of ferry-control
    (Python's default context, as the aws CLI's botocore, with ferry's
    ca.pem) must refuse it, or a replicator key could buy a certificate
    that passes for ferry-control.  (ok, detail)."""
    import socket
    import ssl
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    port = ls.getsockname()[1]
    ls.close()
    srv = subprocess.Popen(['openssl', 's_server', '-quiet', '-accept',
                            '127.0.0.1:%d' % port, '-cert', crt, '-key', key],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        ctx = ssl.create_default_context(
            cafile=os.path.join(c.data_dir, 'ca.pem'))
        for _ in range(50):
            try:
                with socket.create_connection(('127.0.0.1', port), 5) as s:
                    with ctx.wrap_socket(s, server_hostname='127.0.0.1'):
                        return False, 'verified'
            except ssl.SSLCertVerificationError as e:
                return 'purpose' in str(e), str(e)
            except ConnectionRefusedError:
                time.sleep(0.1)
        return False, 'openssl s_server did not start'
    finally:
        srv.kill()
        srv.wait()


def runtime(c, cr):
    st, _, r = c.call('GetAgentRuntimeConfigurationForMgn', {}, creds=cr)
    if st != 200:
        raise ft.AwsError('HTTP%d' % st, str(r))
    return r


def assigned(c, creds, name=None):
    body = {'replicatorID': name} if name else {}
    st, _, r = c.call('GetReplicatorAssignmentsForMgn', body, creds=creds)
    if st != 200:
        raise ft.AwsError('HTTP%d' % st, str(r))
    return [x['sourceServerID'] for x in r['sourceServers']], r


def set_dedicated(c, on):
    t = c.aws('mgn', 'describe-replication-configuration-templates')
    tid = t['items'][0]['replicationConfigurationTemplateID']
    c.aws('mgn', 'update-replication-configuration-template',
          '--replication-configuration-template-id', tid,
          '--use-dedicated-replication-server' if on else
          '--no-use-dedicated-replication-server')


def now_iso(delta=0):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() + delta))


def staging_error(c, a, cra, rep1, rep2):
    """A replicator's stagingError (its data directory is full): STALLED
    with MGN's error while it is reported, kept apart from the agent's
    own state and error, which show again once it is cleared."""
    msg = ('staging volume /var/lib/ferry-replicator/%s/dev_vda.img: No '
           'space left on device (4096 bytes free); free space under '
           '--data-dir /var/lib/ferry-replicator' % a)
    full = {'code': 'STAGING_DISK_FULL', 'message': msg}

    def report(se=None, creds=rep1, **extra):
        e = {'sourceServerID': a}
        if se is not None:
            e['stagingError'] = se
        e.update(extra)
        return c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': 4096, 'sourceServers': [e]}, creds=creds)

    def beat(state, error=None):
        body = {'dataReplicationState': state, 'lagSeconds': 0}
        if error:
            body['dataReplicationError'] = error
        st, _, r = c.call('UpdateAgentReplicationInfoForMgn', body,
                          creds=cra)
        beat.shown = (r or {}).get('dataReplicationState')
        return st

    def dri():
        return describe(c, a)['dataReplicationInfo']

    check('staging error: agent reports CONTINUOUS',
          beat('CONTINUOUS') == 200 and
          dri()['dataReplicationState'] == 'CONTINUOUS', dri())
    st, _, r = report(full)
    d = dri()
    check('staging error reported: accepted', st == 200, (st, r))
    check('staging error: describe-source-servers shows STALLED',
          d['dataReplicationState'] == 'STALLED', d)
    check('staging error: dataReplicationError is MGN\'s staging-disk '
          'error with the replicator\'s message',
          d.get('dataReplicationError') ==
          {'error': 'FAILED_TO_CREATE_STAGING_DISKS', 'rawError': msg}, d)
    raw = c.aws('mgn', 'describe-source-servers')
    check('staging error: private members not shown',
          'stagingError' not in json.dumps(raw) and
          all('ferry' not in it for it in raw['items']), raw)
    agent_err = {'error': 'UNSTABLE_NETWORK', 'rawError': 'link flapping'}
    check('staging error: agent heartbeats with its own error accepted; '
          'the answer says STALLED, as shown',
          beat('BACKLOG', agent_err) == 200 and beat.shown == 'STALLED',
          beat.shown)
    d = dri()
    check('staging error: the agent\'s report does not replace it',
          d['dataReplicationState'] == 'STALLED' and
          d['dataReplicationError']['error'] ==
          'FAILED_TO_CREATE_STAGING_DISKS', d)
    check('staging error: still shown after another report',
          report(full)[0] == 200 and
          dri()['dataReplicationError']['rawError'] == msg, dri())
    for why, se in [('unknown member', dict(full, colour='red')),
                    ('lower-case code', dict(full, code='disk_full')),
                    ('no message', {'code': 'STAGING_DISK_FULL'}),
                    ('not an object', 'full')]:
        e = report(se)
        check('stagingError refused: %s' % why,
              e[0] == 400 and err_type(e[1]) == 'ValidationException', e)
    e = report(full, creds=rep2)
    check('stagingError of another replicator\'s server refused',
          e[0] == 403 and err_type(e[1]) == 'AccessDeniedException', e)
    st, _, r = report()
    d = dri()
    check('staging error cleared: the agent\'s state and error are back',
          st == 200 and d['dataReplicationState'] == 'BACKLOG' and
          d.get('dataReplicationError') == agent_err, d)
    beat('CONTINUOUS')
    d = dri()
    check('staging error cleared: agent reports CONTINUOUS, no error',
          d['dataReplicationState'] == 'CONTINUOUS' and
          'dataReplicationError' not in d, d)
    # STALLED as shown may be retried, as MGN allows for STALLED.
    report(full)
    try:
        r = c.aws('mgn', 'retry-data-replication', '--source-server-id', a)
        ok = r['dataReplicationInfo']['dataReplicationState'] == 'STALLED'
    except ft.AwsError as ex:
        ok, r = False, ex
    check('staging error: retry-data-replication accepted (still STALLED '
          'until space is freed)', ok, r)
    report()
    beat('CONTINUOUS')
    check('staging error: cleared at the end',
          dri()['dataReplicationState'] == 'CONTINUOUS', dri())


def main():
    with ft.Control() as c:
        no_replays(c)
        rep1 = c.replicator
        rep2 = c.keys_create('rep2', 'replicator')
        rep3 = c.keys_create('rep3', 'replicator')
        spare = c.keys_create('spare', 'replicator')

        # A server registered before any replicator waits.
        a, cra = c.register_agent('a', machine_id='m-a')
        r = runtime(c, cra)
        check('no replicator yet: runtime replicator is null',
              r['replicator'] is None, r)
        st, hdrs, _ = c.call('UpdateReplicatorInfoForMgn', {'freeBytes': 1},
                             creds=rep1)
        check('unregistered replicator key cannot report',
              st == 403 and err_type(hdrs) == 'AccessDeniedException', st)

        # Registration places it.
        st, _, r = c.call('RegisterReplicatorForMgn', rep_body('r1', 1501),
                          creds=rep1)
        check('register replicator r1', st == 200 and
              r.get('assignedSourceServers') == 1, (st, r))
        ids, full = assigned(c, rep1)
        check('waiting server assigned when r1 registers', ids == [a], full)
        e = full['sourceServers'][0] if ids else {}
        check('assignment lists disks and certificate CN',
              e.get('certificateCN') == a and
              [d['deviceName'] for d in e.get('disks', [])] ==
              ['/dev/vda', '/dev/vdb'] and
              e.get('certificateURI') == 'urn:ferry:source-server:' + a, e)
        r = runtime(c, cra)
        check('agent learns its replicator',
              r['replicator'] == {'replicatorID': 'r1', 'address': '127.0.0.1',
                                  'port': 1501}, r)
        steps = describe(c, a)['dataReplicationInfo'][
            'dataReplicationInitiation']['steps']
        st_of = {s['name']: s['status'] for s in steps}
        check('initiation: replicator steps succeeded, staging disks next',
              st_of['WAIT'] == 'SUCCEEDED' and
              st_of['BOOT_REPLICATION_SERVER'] == 'SUCCEEDED' and
              st_of['CREATE_STAGING_DISKS'] == 'IN_PROGRESS', st_of)

        # Least loaded: a second replicator takes the next server.
        c.call('RegisterReplicatorForMgn', rep_body('r2', 1502), creds=rep2)
        b, crb = c.register_agent('b', machine_id='m-b')
        check('new server goes to the least loaded replicator',
              runtime(c, crb)['replicator']['replicatorID'] == 'r2')

        # Dedicated: no empty replicator, so the server waits for one.
        set_dedicated(c, True)
        cc, crc = c.register_agent('c', machine_id='m-c')
        check('dedicated server waits while no replicator is empty',
              runtime(c, crc)['replicator'] is None)
        st, _, r = c.call('RegisterReplicatorForMgn', rep_body('r3', 1503),
                          creds=rep3)
        check('dedicated server placed on the new empty replicator',
              runtime(c, crc)['replicator']['replicatorID'] == 'r3', r)
        _, full = assigned(c, rep3)
        check('assignment says dedicated',
              full['sourceServers'][0]['dedicated'] is True, full)
        set_dedicated(c, False)
        placed = []
        for i in range(4):
            _, crx = c.register_agent('d%d' % i, machine_id='m-d%d' % i)
            placed.append(runtime(c, crx)['replicator']['replicatorID'])
        check('no other server joins a dedicated replicator',
              'r3' not in placed, placed)
        check('load spreads over r1 and r2',
              sorted(placed) == ['r1', 'r1', 'r2', 'r2'], placed)

        # Scoping.
        e = c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': TIB, 'sourceServers': [
                {'sourceServerID': a, 'lastSnapshotDateTime': now_iso()}]},
            creds=rep2)
        check('replicator cannot report a server of another replicator',
              e[0] == 403 and err_type(e[1]) == 'AccessDeniedException', e)
        check('... which stays NOT_READY',
              describe(c, a)['lifeCycle']['state'] == 'NOT_READY')
        e = c.call('GetReplicatorAssignmentsForMgn', {'replicatorID': 'r1'},
                   creds=rep2)
        check('replicator cannot read another\'s assignments',
              e[0] == 403 and err_type(e[1]) == 'AccessDeniedException', e)
        e = c.call('RegisterReplicatorForMgn', rep_body('r1', 1599),
                   creds=spare)
        check('a name held by another replicator key is refused',
              e[0] == 409 and err_type(e[1]) == 'ConflictException', e)
        e = c.call('RegisterReplicatorForMgn', rep_body('other', 1599),
                   creds=rep1)
        check('a bound key cannot register under another name',
              e[0] == 403 and err_type(e[1]) == 'AccessDeniedException', e)
        e = c.call('RegisterReplicatorForMgn', rep_body('x', 1599), creds=cra)
        check('agent key cannot register a replicator', e[0] == 403, e)
        for name, body in [
                ('bad port', rep_body('y', 70000)),
                ('free above capacity', rep_body('y', 1, freeBytes=TIB + 1)),
                ('bad address', rep_body('y', 1, address='no spaces')),
                ('bad name', rep_body('y/z', 1)),
                ('unknown member', rep_body('y', 1, colour='red'))]:
            e = c.call('RegisterReplicatorForMgn', body, creds=spare)
            check('replicator registration refuses %s' % name,
                  e[0] == 400 and err_type(e[1]) == 'ValidationException', e)
        ids, _ = assigned(c, c.admin, 'r1')
        check('admin reads any replicator\'s assignments', a in ids, ids)

        # Heartbeat with staging volumes, then a snapshot.
        st, _, r = c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': TIB - (9 << 30), 'sourceServers': [
                {'sourceServerID': a, 'replicatedDisks': [
                    {'deviceName': '/dev/vda', 'replicatedStorageBytes': 5}]},
                {'sourceServerID': 's-0123456789abcdef0'}]}, creds=rep1)
        check('replicator heartbeat accepted', st == 200, (st, r))
        check('unknown servers are named back to the replicator',
              r.get('unknownSourceServerIDs') == ['s-0123456789abcdef0'], r)
        st_of = {s['name']: s['status'] for s in describe(c, a)[
            'dataReplicationInfo']['dataReplicationInitiation']['steps']}
        check('initiation: staging disks attached, pairing next',
              st_of['ATTACH_STAGING_DISKS'] == 'SUCCEEDED' and
              st_of['PAIR_REPLICATION_SERVER_WITH_AGENT'] == 'IN_PROGRESS',
              st_of)
        check('no snapshot yet: still NOT_READY',
              describe(c, a)['lifeCycle']['state'] == 'NOT_READY')
        e = c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': TIB, 'sourceServers': [
                {'sourceServerID': a,
                 'lastSnapshotDateTime': now_iso(3600)}]}, creds=rep1)
        check('snapshot time in the future refused',
              e[0] == 400 and err_type(e[1]) == 'ValidationException', e)
        snap = now_iso()
        st, _, r = c.call('UpdateReplicatorInfoForMgn', {
            'freeBytes': TIB, 'sourceServers': [
                {'sourceServerID': a, 'lastSnapshotDateTime': snap}]},
            creds=rep1)
        d = describe(c, a)
        check('first snapshot: READY_FOR_TEST as in MGN',
              st == 200 and d['lifeCycle']['state'] == 'READY_FOR_TEST', d)
        check('first snapshot: lastSnapshotDateTime shown',
              d['dataReplicationInfo'].get('lastSnapshotDateTime') == snap,
              d['dataReplicationInfo'])
        d2 = describe(c, b)
        check('other servers untouched', d2['lifeCycle']['state'] == 'NOT_READY')

        staging_error(c, a, cra, rep1, rep2)

        # A replicator's server certificate.
        tmp = tempfile.mkdtemp(prefix='ferry-rcert.')
        key, csr, crt = (os.path.join(tmp, n) for n in ('k', 'r', 'c'))
        subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
                        '-out', csr, '-subj', '/CN=x'], check=True,
                       capture_output=True)
        st, _, r = c.call('RegisterReplicatorForMgn',
                          rep_body('r1', 1501, csr=open(csr).read()),
                          creds=rep1)
        ok = st == 200 and 'certificate' in r
        if ok:
            open(crt, 'w').write(r['certificate'])
        v = subprocess.run(['openssl', 'verify', '-CAfile',
                            os.path.join(c.data_dir, 'ca.pem'), crt],
                           capture_output=True, text=True) if ok else None
        t = subprocess.run(['openssl', 'x509', '-in', crt, '-noout', '-text'],
                           capture_output=True, text=True).stdout if ok else ''
        check('replicator certificate verifies and names its address',
              ok and v.returncode == 0 and 'IP Address:127.0.0.1' in t and
              'CN = r1' in t, (st, r, v and v.stdout, t[:1500]))
        check('re-registration keeps the assignments',
              r.get('assignedSourceServers') == 3, r)
        check('the replicator certificate has ferry\'s key purpose, not '
              'serverAuth', ok and '2.25.6212956333890462987379649050251'
              '6882673' in t and 'TLS Web Server' not in t, t[:1500])
        ok, why = https_refuses(c, crt, key)
        check('a TLS client of ferry-control refuses a replicator '
              'certificate for its address', ok, why)

        # Capacity: a replicator too small for any server gets none.
        c.kill9()
        c.start()
        ids, _ = assigned(c, rep1)
        check('assignments survive kill -9', a in ids and len(ids) == 3, ids)

    with ft.Control(args=['--agent-timeout', '5']) as c:
        no_replays(c)
        c.call('RegisterReplicatorForMgn',
               rep_body('tiny', 1600, capacityBytes=1 << 30, freeBytes=1 << 30))
        a, cra = c.register_agent('big', machine_id='m-big')
        check('a server larger than the capacity is not placed',
              runtime(c, cra)['replicator'] is None)
        c.call('RegisterReplicatorForMgn', rep_body('late', 1601))
        check('admin-registered replicator takes the waiting server',
              runtime(c, cra)['replicator']['replicatorID'] == 'late')
        thief = c.keys_create('thief', 'replicator')
        e = c.call('RegisterReplicatorForMgn',
                   rep_body('late', 1666, address='203.0.113.66'),
                   creds=thief)
        check('a replicator key cannot take over a name an admin '
              'registered', e[0] == 409 and
              err_type(e[1]) == 'ConflictException' and
              runtime(c, cra)['replicator']['address'] == '127.0.0.1', e)
        time.sleep(6)
        b, crb = c.register_agent('next', machine_id='m-next')
        check('replicators not heard from within the timeout get no server',
              runtime(c, crb)['replicator'] is None)
        c.call('UpdateReplicatorInfoForMgn',
               {'replicatorID': 'late', 'freeBytes': 1 << 39})
        check('a replicator heartbeat places waiting servers',
              runtime(c, crb)['replicator']['replicatorID'] == 'late')
    ft.done()


if __name__ == '__main__':
    main()
