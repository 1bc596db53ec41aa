#!/usr/bin/python3
"""pitPolicy, ferry's extension of the replication configuration and its
templates (AWS DRS's PITPolicyRule list): unset (null) unless an
administrator sets it, so that the replicator's own pit_policy applies;
set and cleared with signed requests as a user sends them (the aws CLI
refuses members outside MGN's model); validated, each fault a
ValidationException naming the field; copied from the template at
registration; and the old implicit default of databases from before it
could be set is unset once at start."""
import json
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

check = ft.check

HOURLY = [{'ruleID': 1, 'units': 'HOUR', 'interval': 1,
           'retentionDuration': 24, 'enabled': True}]
# MGN's default: what every document got before pitPolicy could be set.
OLD_DEFAULT = [
    {'ruleID': 1, 'units': 'MINUTE', 'interval': 10,
     'retentionDuration': 60, 'enabled': True},
    {'ruleID': 2, 'units': 'HOUR', 'interval': 1,
     'retentionDuration': 24, 'enabled': True},
    {'ruleID': 3, 'units': 'DAY', 'interval': 1,
     'retentionDuration': 7, 'enabled': True},
]


def rule(**over):
    r = {'ruleID': 1, 'units': 'MINUTE', 'interval': 10,
         'retentionDuration': 60, 'enabled': True}
    r.update(over)
    return {k: v for k, v in r.items() if v is not ...}


def get_cfg(c, sid):
    st, _, r = ft.call(c, 'GetReplicationConfiguration',
                       {'sourceServerID': sid})
    if st != 200:
        raise ft.AwsError('HTTP%d' % st, 'GetReplicationConfiguration: %s'
                          % r)
    return r


def set_cfg(c, sid, pit):
    return ft.call(c, 'UpdateReplicationConfiguration',
                   {'sourceServerID': sid, 'pitPolicy': pit})


def first_template(c):
    st, _, r = ft.call(c, 'DescribeReplicationConfigurationTemplates', {})
    return r['items'][0]


def runtime_pit(c, creds):
    _, _, r = c.call('GetAgentRuntimeConfigurationForMgn', {}, creds=creds)
    return r.get('pitPolicy', 'absent')


def test_unset_and_set(c):
    sid, agent = c.register_agent('pit-1')
    g = get_cfg(c, sid)
    check('new server: no pitPolicy in GetReplicationConfiguration',
          'pitPolicy' not in g, g)
    check('new server: the agent runtime configuration says null (the '
          'replicator\'s pit_policy applies)', runtime_pit(c, agent) is None)
    tpl = first_template(c)
    check('default template: no pitPolicy', 'pitPolicy' not in tpl, tpl)

    # enabled left out: DRS's default, true; stored with all members.
    st, _, u = set_cfg(c, sid, [{'ruleID': 1, 'units': 'HOUR', 'interval': 1,
                                 'retentionDuration': 24}])
    check('set: answered with the policy, enabled filled in',
          st == 200 and u.get('pitPolicy') == HOURLY, (st, u))
    check('set: GetReplicationConfiguration shows it',
          get_cfg(c, sid).get('pitPolicy') == HOURLY)
    check('set: the agent runtime configuration carries it',
          runtime_pit(c, agent) == HOURLY)
    u = c.aws('mgn', 'update-replication-configuration',
              '--source-server-id', sid, '--bandwidth-throttling', '9')
    check('aws CLI answers without it (not in MGN\'s model)',
          'pitPolicy' not in u and u['bandwidthThrottling'] == 9, u)
    check('an update without pitPolicy keeps it',
          get_cfg(c, sid).get('pitPolicy') == HOURLY)

    # Refusals: each names its field and changes nothing.
    many = [rule(ruleID=i) for i in range(9)]
    bad = [
        ('not a list', 'hourly', 'pitPolicy'),
        ('an object', {'ruleID': 1}, 'pitPolicy'),
        ('a rule that is not an object', [7], 'pitPolicy[0]'),
        ('unknown units', [rule(units='SECOND')], 'pitPolicy[0].units'),
        ('units missing', [rule(units=...)], 'pitPolicy[0].units'),
        ('units lower case', [rule(units='minute')], 'pitPolicy[0].units'),
        ('interval 0', [rule(interval=0)], 'pitPolicy[0].interval'),
        ('interval missing', [rule(interval=...)], 'pitPolicy[0].interval'),
        ('interval a string', [rule(interval='10')], 'pitPolicy[0].interval'),
        ('interval a fraction', [rule(interval=1.5)],
         'pitPolicy[0].interval'),
        ('retentionDuration 0', [rule(retentionDuration=0)],
         'pitPolicy[0].retentionDuration'),
        ('retentionDuration missing', [rule(retentionDuration=...)],
         'pitPolicy[0].retentionDuration'),
        ('retention shorter than interval',
         [rule(interval=60, retentionDuration=10)],
         'pitPolicy[0].retentionDuration'),
        ('beyond a century', [rule(units='DAY', interval=1,
                                   retentionDuration=40000)],
         'pitPolicy[0].retentionDuration'),
        ('ruleID missing', [rule(ruleID=...)], 'pitPolicy[0].ruleID'),
        ('ruleID negative', [rule(ruleID=-1)], 'pitPolicy[0].ruleID'),
        ('ruleID twice', [rule(ruleID=4), rule(ruleID=4, units='HOUR',
                                                interval=1,
                                                retentionDuration=24)],
         'pitPolicy[1].ruleID'),
        ('enabled a string', [rule(enabled='yes')], 'pitPolicy[0].enabled'),
        ('no enabled rule', [rule(enabled=False)], 'pitPolicy'),
        ('an unknown member', [rule(frequency=1)], 'pitPolicy[0].frequency'),
        ('9 rules', many, 'pitPolicy'),
    ]
    for name, pit, field in bad:
        st, hdrs, e = set_cfg(c, sid, pit)
        e = e or {}
        check('refused, %s: ValidationException naming %s' % (name, field),
              st == 400 and hdrs.get('x-amzn-errortype', '').startswith(
                  'ValidationException') and
              [f['name'] for f in e.get('fieldList', [])] == [field] and
              field in e.get('message', ''), (st, e))
    check('refused policies changed nothing',
          get_cfg(c, sid).get('pitPolicy') == HOURLY)
    st, _, u = set_cfg(c, sid, many[:8])
    check('8 rules, a disabled one among them with the others: accepted',
          st == 200 and len(u.get('pitPolicy', [])) == 8, (st, u))

    # null and [] unset it.
    for name, pit in (('null', None), ('[]', [])):
        set_cfg(c, sid, HOURLY)
        st, _, u = set_cfg(c, sid, pit)
        check('%s unsets it: answer and Get without pitPolicy' % name,
              st == 200 and 'pitPolicy' not in u and
              'pitPolicy' not in get_cfg(c, sid), (st, u))
        check('%s unsets it: the runtime configuration says null' % name,
              runtime_pit(c, agent) is None)
    # The old default, set on purpose, is a policy like any other.
    st, _, u = set_cfg(c, sid, OLD_DEFAULT)
    check('MGN\'s default set explicitly is kept as set',
          st == 200 and get_cfg(c, sid).get('pitPolicy') == OLD_DEFAULT,
          (st, u))
    return sid


def test_templates(c):
    tpl = first_template(c)
    tid = tpl['replicationConfigurationTemplateID']
    before, _ = c.register_agent('pit-before')
    st, _, u = ft.call(c, 'UpdateReplicationConfigurationTemplate',
                       {'replicationConfigurationTemplateID': tid,
                        'pitPolicy': HOURLY})
    check('template: pitPolicy set', st == 200 and
          u.get('pitPolicy') == HOURLY, (st, u))
    check('template: DescribeReplicationConfigurationTemplates shows it',
          first_template(c).get('pitPolicy') == HOURLY)
    after, agent = c.register_agent('pit-after')
    check('a server registered since has the template\'s policy',
          get_cfg(c, after).get('pitPolicy') == HOURLY)
    check('... and its agent is told',
          runtime_pit(c, agent) == HOURLY)
    check('a server made before keeps none (templates do not change '
          'existing configurations)', 'pitPolicy' not in get_cfg(c, before))
    st, _, e = ft.call(c, 'UpdateReplicationConfigurationTemplate',
                       {'replicationConfigurationTemplateID': tid,
                        'pitPolicy': [rule(interval=-5)]})
    check('template: an invalid policy refused, field named',
          st == 400 and [f['name'] for f in e.get('fieldList', [])] ==
          ['pitPolicy[0].interval'], (st, e))
    check('template: unchanged by the refusal',
          first_template(c).get('pitPolicy') == HOURLY)
    st, _, u = ft.call(c, 'UpdateReplicationConfigurationTemplate',
                       {'replicationConfigurationTemplateID': tid,
                        'pitPolicy': None})
    check('template: null unsets it', st == 200 and 'pitPolicy' not in u and
          'pitPolicy' not in first_template(c), (st, u))
    later, _ = c.register_agent('pit-later')
    check('a server registered after that has none',
          'pitPolicy' not in get_cfg(c, later))
    check('the server that copied it keeps its own',
          get_cfg(c, after).get('pitPolicy') == HOURLY)

    body = {
        'stagingAreaSubnetId': 'subnet-0123456789abcdef0',
        'associateDefaultSecurityGroup': True,
        'replicationServersSecurityGroupsIDs': [],
        'replicationServerInstanceType': 't3.small',
        'useDedicatedReplicationServer': False,
        'defaultLargeStagingDiskType': 'GP3', 'ebsEncryption': 'DEFAULT',
        'bandwidthThrottling': 0, 'dataPlaneRouting': 'PRIVATE_IP',
        'createPublicIP': False, 'stagingAreaTags': {},
    }
    st, _, u = ft.call(c, 'CreateReplicationConfigurationTemplate',
                       dict(body, pitPolicy=HOURLY))
    check('create template with pitPolicy', st == 201 and
          u.get('pitPolicy') == HOURLY, (st, u))
    st, _, u = ft.call(c, 'CreateReplicationConfigurationTemplate', body)
    check('create template without: none', st == 201 and
          'pitPolicy' not in u, (st, u))
    st, _, e = ft.call(c, 'CreateReplicationConfigurationTemplate',
                       dict(body, pitPolicy=[rule(units='YEAR')]))
    check('create template with an invalid policy: refused',
          st == 400 and [f['name'] for f in e.get('fieldList', [])] ==
          ['pitPolicy[0].units'], (st, e))


def test_curl(c):
    """The command docs/api.md gives: curl signing with SigV4."""
    sid, _ = c.register_agent('pit-curl')
    key = c.admin
    body = json.dumps({'sourceServerID': sid, 'pitPolicy': HOURLY})
    r = subprocess.run(
        ['curl', '-sS', '--aws-sigv4', 'aws:amz:%s:mgn' % ft.REGION,
         '--user', '%s:%s' % (key['AccessKeyId'], key['SecretAccessKey']),
         '--cacert', c.ca, '-H', 'Content-Type: application/json',
         c.url + '/UpdateReplicationConfiguration', '--data', body],
        capture_output=True, text=True, timeout=60)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = {}
    check('curl --aws-sigv4 sets pitPolicy (docs/api.md)',
          r.returncode == 0 and out.get('pitPolicy') == HOURLY and
          get_cfg(c, sid).get('pitPolicy') == HOURLY,
          (r.returncode, r.stdout[-300:], r.stderr[-300:]))


def test_migration(c, explicit_sid):
    """A database from before pitPolicy could be set: every document has
    the old default in its private member, which now counts as unset;
    other policies (written by hand then) stay."""
    plain, _ = c.register_agent('pit-old-plain')
    custom, _ = c.register_agent('pit-old-custom')
    c.stop()
    db = sqlite3.connect(os.path.join(c.data_dir, 'control.db'))
    with db:
        def put(table, key, ident, pit):
            doc = json.loads(db.execute('SELECT doc FROM %s WHERE %s = ?' %
                                        (table, key), (ident,))
                             .fetchone()[0])
            doc.setdefault('ferry', {})['pitPolicy'] = pit
            db.execute('UPDATE %s SET doc = ? WHERE %s = ?' % (table, key),
                       (json.dumps(doc), ident))
        put('repl_configs', 'source_server_id', plain, OLD_DEFAULT)
        put('repl_configs', 'source_server_id', custom, HOURLY)
        for (tid,) in db.execute('SELECT id FROM repl_templates').fetchall():
            put('repl_templates', 'id', tid, OLD_DEFAULT)
        db.execute("DELETE FROM meta WHERE key = 'repl_pit_policy_explicit'")
    db.close()
    c.start()
    check('migration: the old implicit default is unset',
          'pitPolicy' not in get_cfg(c, plain))
    check('migration: ... in templates too',
          'pitPolicy' not in first_template(c))
    check('migration: another policy is kept',
          get_cfg(c, custom).get('pitPolicy') == HOURLY)
    check('migration: logged',
          'old default pitPolicy of' in c.log(), c.log()[-2000:])
    # explicit_sid's default was set through the API before the forged
    # "old" database above, so the migration took it as implicit too;
    # set it again: from now on it stays.
    set_cfg(c, explicit_sid, OLD_DEFAULT)
    c.stop()
    c.start()
    check('after the migration, an explicit default survives a restart',
          get_cfg(c, explicit_sid).get('pitPolicy') == OLD_DEFAULT)
    check('... the migration runs once',
          c.log().count('old default pitPolicy of') == 1)


def main():
    with ft.Control() as c:
        sid = test_unset_and_set(c)
        test_templates(c)
        test_curl(c)
        test_migration(c, sid)
    ft.done()


if __name__ == '__main__':
    main()
