#!/usr/bin/python3
"""Replication configuration templates and per-server replication
configurations, through Debian's aws CLI, boto3 and raw signed calls."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

check = ft.check
code_of = ft.error_code

SUBNET = 'subnet-0123456789abcdef0'
SG = 'sg-0a1b2c3d4e5f60718'
RCT_RE = re.compile(r'^rct-[0-9a-f]{17}$')
MISSING_RCT = 'rct-0123456789abcdef0'
MISSING_SS = 's-0123456789abcdef0'
# Members of Debian's model: answers hold nothing else.
TPL_MEMBERS = {'arn', 'associateDefaultSecurityGroup', 'bandwidthThrottling',
               'createPublicIP', 'dataPlaneRouting',
               'defaultLargeStagingDiskType', 'ebsEncryption',
               'ebsEncryptionKeyArn', 'replicationConfigurationTemplateID',
               'replicationServerInstanceType',
               'replicationServersSecurityGroupsIDs', 'stagingAreaSubnetId',
               'stagingAreaTags', 'tags', 'useDedicatedReplicationServer'}
CFG_MEMBERS = (TPL_MEMBERS - {'arn', 'replicationConfigurationTemplateID',
                              'tags'}) | {'name', 'replicatedDisks',
                                          'sourceServerID'}
FULL = {
    'stagingAreaSubnetId': SUBNET,
    'associateDefaultSecurityGroup': True,
    'replicationServersSecurityGroupsIDs': [SG],
    'replicationServerInstanceType': 'm5.large',
    'useDedicatedReplicationServer': False,
    'defaultLargeStagingDiskType': 'ST1',
    'ebsEncryption': 'DEFAULT',
    'bandwidthThrottling': 100,
    'dataPlaneRouting': 'PUBLIC_IP',
    'createPublicIP': True,
    'stagingAreaTags': {'team': 'blue'},
}


def cli_create(c, **over):
    args = ['mgn', 'create-replication-configuration-template',
            '--staging-area-subnet-id', SUBNET,
            '--associate-default-security-group',
            '--replication-servers-security-groups-ids', SG,
            '--replication-server-instance-type', 'm5.large',
            '--no-use-dedicated-replication-server',
            '--default-large-staging-disk-type', 'ST1',
            '--ebs-encryption', 'DEFAULT',
            '--bandwidth-throttling', str(over.get('bw', 100)),
            '--data-plane-routing', 'PUBLIC_IP',
            '--create-public-ip',
            '--staging-area-tags', 'team=blue']
    args += over.get('extra', [])
    return c.aws(*args)


def boto(c):
    """c.boto() with a signed nonce per request (see ferrytest.unique)."""
    return ft.unique(c.boto())


def raw_error(c, op, body):
    st, hdrs, r = c.call(op, body)
    return st, hdrs.get('x-amzn-errortype', ''), r or {}


def test_templates(c):
    b = boto(c)

    # The default template made by InitializeService, with MGN's defaults.
    items = c.aws('mgn', 'describe-replication-configuration-templates')['items']
    check('default template after InitializeService', len(items) == 1, items)
    if items:
        d = items[0]
        check('default template values',
              RCT_RE.match(d['replicationConfigurationTemplateID']) and
              d['bandwidthThrottling'] == 0 and
              d['dataPlaneRouting'] == 'PRIVATE_IP' and
              d['defaultLargeStagingDiskType'] == 'GP3' and
              d['replicationServerInstanceType'] == 't3.small' and
              d['useDedicatedReplicationServer'] is False and
              d['ebsEncryption'] == 'DEFAULT' and
              d['createPublicIP'] is False and
              d['arn'].endswith(':replication-configuration-template/' +
                                d['replicationConfigurationTemplateID']), d)
        check('default template: only model members', set(d) <= TPL_MEMBERS,
              set(d) - TPL_MEMBERS)
    default_id = items[0]['replicationConfigurationTemplateID'] if items else None

    # Create: CLI, boto3, raw (status 201).
    t1 = cli_create(c)
    check('cli create template', RCT_RE.match(t1['replicationConfigurationTemplateID'])
          and t1['bandwidthThrottling'] == 100 and t1['stagingAreaSubnetId'] == SUBNET
          and t1['replicationServersSecurityGroupsIDs'] == [SG]
          and t1['stagingAreaTags'] == {'team': 'blue'}
          and t1['createPublicIP'] is True and t1['tags'] == {}
          and 'ebsEncryptionKeyArn' not in t1, t1)
    check('cli create: arn', t1['arn'] == 'arn:aws:mgn:us-east-1:%s:replication-configuration-template/%s'
          % (t1['arn'].split(':')[4], t1['replicationConfigurationTemplateID'])
          and re.match(r'^\d{12}$', t1['arn'].split(':')[4]), t1['arn'])
    t2 = b.create_replication_configuration_template(
        tags={'owner': 'ops'}, ebsEncryption='CUSTOM',
        ebsEncryptionKeyArn='arn:aws:kms:us-east-1:123456789012:key/abcd',
        **{k: v for k, v in FULL.items() if k != 'ebsEncryption'})
    check('boto3 create template: status 201',
          t2['ResponseMetadata']['HTTPStatusCode'] == 201, t2['ResponseMetadata'])
    check('boto3 create template: tags and key',
          t2['tags'] == {'owner': 'ops'} and t2['ebsEncryption'] == 'CUSTOM'
          and t2['ebsEncryptionKeyArn'].startswith('arn:aws:kms:'), t2)
    st, _, r3 = c.call('CreateReplicationConfigurationTemplate', FULL)
    check('raw create template: 201', st == 201 and RCT_RE.match(
        r3.get('replicationConfigurationTemplateID', '')), (st, r3))
    t3 = r3
    ids = [t1['replicationConfigurationTemplateID'],
           t2['replicationConfigurationTemplateID'],
           t3['replicationConfigurationTemplateID']]
    check('template IDs distinct', len(set(ids)) == 3, ids)

    # Describe with a filter, both clients.
    r = c.aws('mgn', 'describe-replication-configuration-templates',
              '--replication-configuration-template-ids', ids[1], MISSING_RCT)
    check('cli describe filtered', [t['replicationConfigurationTemplateID']
                                    for t in r['items']] == [ids[1]]
          and r['items'][0]['tags'] == {'owner': 'ops'}, r)
    r = b.describe_replication_configuration_templates(
        replicationConfigurationTemplateIDs=[ids[0], ids[2]])
    check('boto3 describe filtered', sorted(t['replicationConfigurationTemplateID']
                                            for t in r['items']) == sorted([ids[0], ids[2]]), r['items'])

    # Pagination: server pages of 1 (CLI), manual tokens (boto3).
    all_ids = ([default_id] if default_id else []) + ids
    r = c.aws('mgn', 'describe-replication-configuration-templates', '--page-size', '1')
    check('cli paginates with page size 1',
          [t['replicationConfigurationTemplateID'] for t in r['items']] == all_ids,
          r['items'])
    r = c.aws('mgn', 'describe-replication-configuration-templates', '--no-paginate',
              '--max-results', '2')
    check('cli one page of 2 with nextToken', len(r['items']) == 2 and r.get('nextToken'), r)
    seen, token, pages = [], None, 0
    while True:
        kw = {'maxResults': 2}
        if token:
            kw['nextToken'] = token
        r = b.describe_replication_configuration_templates(**kw)
        pages += 1
        seen += [t['replicationConfigurationTemplateID'] for t in r['items']]
        token = r.get('nextToken')
        if not token or pages > 10:
            break
    check('boto3 pages of 2 cover all once', seen == all_ids and pages == 2, (seen, pages))
    p = b.get_paginator('describe_replication_configuration_templates')
    seen = [t['replicationConfigurationTemplateID']
            for page in p.paginate(PaginationConfig={'PageSize': 1}) for t in page['items']]
    check('boto3 paginator', seen == all_ids, seen)
    r = b.describe_replication_configuration_templates(
        replicationConfigurationTemplateIDs=ids, maxResults=1)
    r2 = b.describe_replication_configuration_templates(
        replicationConfigurationTemplateIDs=ids, maxResults=5, nextToken=r['nextToken'])
    check('filtered pages', [t['replicationConfigurationTemplateID'] for t in r['items'] + r2['items']]
          == ids and 'nextToken' not in r2, (r, r2))
    check('bad nextToken', code_of(c.aws, 'mgn', 'describe-replication-configuration-templates',
                                   '--no-paginate', '--next-token', 'bm90IGEgdG9rZW4=')
          == 'ValidationException')
    st, et, e = raw_error(c, 'DescribeReplicationConfigurationTemplates', {'maxResults': 0})
    check('maxResults 0 refused', st == 400 and et.startswith('ValidationException'), (st, e))
    st, et, e = raw_error(c, 'DescribeReplicationConfigurationTemplates',
                          {'replicationConfigurationTemplateIDs': ['rct-bad']})
    check('bad template ID in filter refused', st == 400 and
          e.get('fieldList', [{}])[0].get('name') == 'replicationConfigurationTemplateIDs', e)

    # Update: only the given members change.
    u = c.aws('mgn', 'update-replication-configuration-template',
              '--replication-configuration-template-id', ids[0],
              '--bandwidth-throttling', '0', '--use-dedicated-replication-server')
    want = dict(t1, bandwidthThrottling=0, useDedicatedReplicationServer=True)
    check('cli update template: only given members', u == want, (u, want))
    u = b.update_replication_configuration_template(
        replicationConfigurationTemplateID=ids[1], ebsEncryption='DEFAULT',
        stagingAreaTags={}, replicationServersSecurityGroupsIDs=[])
    check('boto3 update template', u['ebsEncryption'] == 'DEFAULT' and
          'ebsEncryptionKeyArn' not in u and u['stagingAreaTags'] == {} and
          u['replicationServersSecurityGroupsIDs'] == [] and
          u['tags'] == {'owner': 'ops'} and u['bandwidthThrottling'] == 100, u)
    r = b.describe_replication_configuration_templates(replicationConfigurationTemplateIDs=[ids[0]])
    check('update persisted', r['items'][0]['useDedicatedReplicationServer'] is True, r['items'])
    check('update with own arn', b.update_replication_configuration_template(
        replicationConfigurationTemplateID=ids[0], arn=t1['arn'],
        replicationServerInstanceType='c5.xlarge')['replicationServerInstanceType'] == 'c5.xlarge')
    check('update with another arn', code_of(
        b.update_replication_configuration_template,
        replicationConfigurationTemplateID=ids[0], arn=t2['arn']) == 'ValidationException')
    check('cli update unknown template', code_of(
        c.aws, 'mgn', 'update-replication-configuration-template',
        '--replication-configuration-template-id', MISSING_RCT,
        '--bandwidth-throttling', '1') == 'ResourceNotFoundException')
    check('boto3 update unknown template', code_of(
        b.update_replication_configuration_template,
        replicationConfigurationTemplateID=MISSING_RCT, bandwidthThrottling=1)
        == 'ResourceNotFoundException')
    st, _, e = raw_error(c, 'UpdateReplicationConfigurationTemplate',
                         {'replicationConfigurationTemplateID': MISSING_RCT})
    check('not found body', st == 404 and e.get('resourceId') == MISSING_RCT, e)

    # Validation: what the model constrains, checked by the server (raw
    # requests where botocore would refuse before sending).
    bad = [
        ('negative throttling', dict(FULL, bandwidthThrottling=-1), 'bandwidthThrottling'),
        ('throttling not a number', dict(FULL, bandwidthThrottling='10'), 'bandwidthThrottling'),
        ('bad subnet', dict(FULL, stagingAreaSubnetId='subnet-12'), 'stagingAreaSubnetId'),
        ('bad security group', dict(FULL, replicationServersSecurityGroupsIDs=['sg-xyz12345']),
         'replicationServersSecurityGroupsIDs'),
        ('33 security groups', dict(FULL, replicationServersSecurityGroupsIDs=[SG] * 33),
         'replicationServersSecurityGroupsIDs'),
        ('bad routing enum', dict(FULL, dataPlaneRouting='PRIVATE'), 'dataPlaneRouting'),
        ('bad disk type enum', dict(FULL, defaultLargeStagingDiskType='IO1'),
         'defaultLargeStagingDiskType'),
        ('instance type too long', dict(FULL, replicationServerInstanceType='x' * 256),
         'replicationServerInstanceType'),
        ('missing required', {k: v for k, v in FULL.items() if k != 'createPublicIP'},
         'createPublicIP'),
        ('CUSTOM without key', dict(FULL, ebsEncryption='CUSTOM'), 'ebsEncryptionKeyArn'),
        ('key with DEFAULT', dict(FULL, ebsEncryptionKeyArn='arn:aws:kms:us-east-1:1:key/x'),
         'ebsEncryptionKeyArn'),
        ('short key ARN', dict(FULL, ebsEncryption='CUSTOM', ebsEncryptionKeyArn='arn:short'),
         'ebsEncryptionKeyArn'),
        ('boolean as string', dict(FULL, createPublicIP='true'), 'createPublicIP'),
        ('reserved tag', dict(FULL, tags={'aws:x': 'y'}), 'tags'),
        ('pitPolicy with a bad unit (ferry extension, t_replication_pit.py)',
         dict(FULL, pitPolicy=[{'ruleID': 1, 'units': 'WEEK', 'interval': 1,
                                'retentionDuration': 4}]), 'pitPolicy[0].units'),
    ]
    before = len(b.describe_replication_configuration_templates()['items'])
    for name, body, field in bad:
        st, et, e = raw_error(c, 'CreateReplicationConfigurationTemplate', body)
        check('create refuses ' + name,
              st == 400 and et.startswith('ValidationException') and
              e.get('reason') == 'fieldValidationFailed' and
              [f['name'] for f in e.get('fieldList', [])] == [field], (st, et, e))
    check('refused creates made nothing',
          len(b.describe_replication_configuration_templates()['items']) == before)
    check('cli create bad subnet', code_of(
        c.aws, 'mgn', 'create-replication-configuration-template',
        '--staging-area-subnet-id', 'subnet-nothex!', '--associate-default-security-group',
        '--replication-servers-security-groups-ids', SG,
        '--replication-server-instance-type', 't3.small',
        '--no-use-dedicated-replication-server', '--default-large-staging-disk-type', 'GP3',
        '--ebs-encryption', 'DEFAULT', '--bandwidth-throttling', '0',
        '--data-plane-routing', 'PRIVATE_IP', '--no-create-public-ip',
        '--staging-area-tags', 'a=b') == 'ValidationException')
    try:
        b.update_replication_configuration_template(
            replicationConfigurationTemplateID=ids[0], dataPlaneRouting='NOPE')
        check('boto3 update bad enum', False, 'accepted')
    except Exception as e:
        check('boto3 update bad enum', getattr(e, 'response', {}).get('Error', {}).get('Code')
              == 'ValidationException', e)
    st, et, e = raw_error(c, 'UpdateReplicationConfigurationTemplate',
                          {'replicationConfigurationTemplateID': ids[0], 'bandwidthThrottling': -5})
    check('update refuses negative throttling', st == 400 and
          e.get('fieldList', [{}])[0].get('name') == 'bandwidthThrottling', e)
    st, et, e = raw_error(c, 'UpdateReplicationConfigurationTemplate',
                          {'replicationConfigurationTemplateID': 'rct-short'})
    check('update refuses a malformed ID', st == 400 and et.startswith('ValidationException'), e)
    r = b.describe_replication_configuration_templates(replicationConfigurationTemplateIDs=[ids[0]])
    check('refused updates changed nothing', r['items'][0]['bandwidthThrottling'] == 0 and
          r['items'][0]['dataPlaneRouting'] == 'PUBLIC_IP', r['items'])

    # Delete: 204 and empty body; unknown -> 404; the last one -> 409.
    st, hdrs, body = c.call('DeleteReplicationConfigurationTemplate',
                            {'replicationConfigurationTemplateID': ids[2]})
    check('raw delete: 204 empty', st == 204 and body is None, (st, body))
    out = c.aws('mgn', 'delete-replication-configuration-template',
                '--replication-configuration-template-id', ids[1])
    check('cli delete', out is None)
    r = b.describe_replication_configuration_templates()
    left = [t['replicationConfigurationTemplateID'] for t in r['items']]
    check('deleted templates gone', ids[1] not in left and ids[2] not in left and ids[0] in left, left)
    # The same request again: let the clock pass a second, or the service
    # would take the identical signature for a replay.
    time.sleep(1.05 - time.time() % 1)
    code = code_of(c.aws, 'mgn', 'delete-replication-configuration-template',
                   '--replication-configuration-template-id', ids[1])
    check('cli delete again: not found', code == 'ResourceNotFoundException', code)
    check('boto3 delete unknown', code_of(
        b.delete_replication_configuration_template,
        replicationConfigurationTemplateID=MISSING_RCT) == 'ResourceNotFoundException')
    try:
        lt = b.list_tags_for_resource(resourceArn=t2['arn'])['tags']
    except Exception as e:
        lt = getattr(e, 'response', {}).get('Error', {}).get('Code', repr(e))
    check('deleted template lost its tags', lt in ({}, 'ResourceNotFoundException'), lt)
    for t in left[1:]:
        b.delete_replication_configuration_template(replicationConfigurationTemplateID=t)
    check('boto3 delete last template: conflict', code_of(
        b.delete_replication_configuration_template,
        replicationConfigurationTemplateID=left[0]) == 'ConflictException')
    check('last template kept',
          len(b.describe_replication_configuration_templates()['items']) == 1)
    return left[0]


def test_configuration(c, tpl_id):
    b = boto(c)
    # New servers start from the oldest template, as it is now.
    b.update_replication_configuration_template(
        replicationConfigurationTemplateID=tpl_id, bandwidthThrottling=42,
        stagingAreaTags={'from': 'template'})
    sid, agent = c.register_agent('repl-host-1')
    g = c.aws('mgn', 'get-replication-configuration', '--source-server-id', sid)
    check('cli get configuration', g['sourceServerID'] == sid and
          g['bandwidthThrottling'] == 42 and g['stagingAreaTags'] == {'from': 'template'} and
          g['name'] == 'repl-host-1', g)
    check('configuration: only model members', set(g) <= CFG_MEMBERS, set(g) - CFG_MEMBERS)
    disks = {d['deviceName']: d for d in g.get('replicatedDisks', [])}
    check('replicated disks from registration', sorted(disks) == ['/dev/vda', '/dev/vdb'] and
          disks['/dev/vda']['isBootDisk'] is True and disks['/dev/vdb']['isBootDisk'] is False
          and disks['/dev/vda']['stagingDiskType'] == 'AUTO', g.get('replicatedDisks'))
    g2 = b.get_replication_configuration(sourceServerID=sid)
    g2.pop('ResponseMetadata')
    check('boto3 get configuration', g2 == g, (g2, g))

    # Template changes do not touch existing configurations.
    b.update_replication_configuration_template(
        replicationConfigurationTemplateID=tpl_id, bandwidthThrottling=7)
    check('template update leaves configurations',
          b.get_replication_configuration(sourceServerID=sid)['bandwidthThrottling'] == 42)

    # Update: only given members; disks merged by name.
    u = c.aws('mgn', 'update-replication-configuration', '--source-server-id', sid,
              '--bandwidth-throttling', '50', '--use-dedicated-replication-server',
              '--replicated-disks',
              'deviceName=/dev/vdb,stagingDiskType=GP3,iops=3000,throughput=125')
    ud = {d['deviceName']: d for d in u['replicatedDisks']}
    check('cli update configuration', u['bandwidthThrottling'] == 50 and
          u['useDedicatedReplicationServer'] is True and
          u['stagingAreaTags'] == {'from': 'template'} and
          ud['/dev/vdb'] == {'deviceName': '/dev/vdb', 'isBootDisk': False,
                             'stagingDiskType': 'GP3', 'iops': 3000, 'throughput': 125} and
          ud['/dev/vda'] == disks['/dev/vda'], u)
    u = b.update_replication_configuration(sourceServerID=sid, name='renamed',
                                           stagingAreaSubnetId=SUBNET,
                                           replicationServersSecurityGroupsIDs=[SG])
    check('boto3 update configuration', u['name'] == 'renamed' and
          u['stagingAreaSubnetId'] == SUBNET and u['bandwidthThrottling'] == 50 and
          u['replicationServersSecurityGroupsIDs'] == [SG], u)
    u = b.update_replication_configuration(sourceServerID=sid, replicatedDisks=[
        {'deviceName': '/dev/vda', 'isBootDisk': False},
        {'deviceName': '/dev/vdb', 'isBootDisk': True}])
    ud = {d['deviceName']: d for d in u['replicatedDisks']}
    check('boot disk moved', ud['/dev/vdb']['isBootDisk'] and not ud['/dev/vda']['isBootDisk'], ud)

    # Refusals leave the configuration as it was.
    before = b.get_replication_configuration(sourceServerID=sid)
    before.pop('ResponseMetadata')
    check('cli unknown disk', code_of(
        c.aws, 'mgn', 'update-replication-configuration', '--source-server-id', sid,
        '--bandwidth-throttling', '1',
        '--replicated-disks', 'deviceName=/dev/sdz') == 'ValidationException')
    try:
        b.update_replication_configuration(sourceServerID=sid, replicatedDisks=[
            {'deviceName': '/dev/nvme9n1'}])
        check('boto3 unknown disk', False, 'accepted')
    except Exception as e:
        er = getattr(e, 'response', {})
        check('boto3 unknown disk', er.get('Error', {}).get('Code') == 'ValidationException'
              and [f['name'] for f in er.get('fieldList', [])] ==
              ['replicatedDisks[0].deviceName'], er)
    bad = [
        ('negative throttling', {'bandwidthThrottling': -1}, 'bandwidthThrottling'),
        ('two boot disks', {'replicatedDisks': [{'deviceName': '/dev/vda', 'isBootDisk': True}]},
         'replicatedDisks'),
        ('disk twice', {'replicatedDisks': [{'deviceName': '/dev/vda'}, {'deviceName': '/dev/vda'}]},
         'replicatedDisks[1].deviceName'),
        ('disk without name', {'replicatedDisks': [{'iops': 100}]}, 'replicatedDisks[0].deviceName'),
        ('bad staging disk type', {'replicatedDisks': [{'deviceName': '/dev/vda',
                                                        'stagingDiskType': 'SSD'}]},
         'replicatedDisks[0].stagingDiskType'),
        ('negative iops', {'replicatedDisks': [{'deviceName': '/dev/vda', 'iops': -1}]},
         'replicatedDisks[0].iops'),
        ('unknown disk member', {'replicatedDisks': [{'deviceName': '/dev/vda', 'size': 1}]},
         'replicatedDisks[0].size'),
        ('61 disks', {'replicatedDisks': [{'deviceName': '/dev/vda'}] * 61}, 'replicatedDisks'),
        ('name too long', {'name': 'n' * 129}, 'name'),
        ('pitPolicy without an enabled rule (ferry extension)',
         {'pitPolicy': [{'ruleID': 1, 'units': 'MINUTE', 'interval': 10,
                         'retentionDuration': 60, 'enabled': False}]}, 'pitPolicy'),
        ('pitPolicy keeping more than 4000 snapshots (a minute for a week)',
         {'pitPolicy': [{'ruleID': 1, 'units': 'MINUTE', 'interval': 1,
                         'retentionDuration': 10080}]}, 'pitPolicy'),
        ('bad subnet', {'stagingAreaSubnetId': 'vpc-12345678'}, 'stagingAreaSubnetId'),
    ]
    for name, body, field in bad:
        st, et, e = raw_error(c, 'UpdateReplicationConfiguration', dict(body, sourceServerID=sid))
        check('update configuration refuses ' + name,
              st == 400 and et.startswith('ValidationException') and
              [f['name'] for f in e.get('fieldList', [])] == [field], (st, et, e))
    after = b.get_replication_configuration(sourceServerID=sid)
    after.pop('ResponseMetadata')
    check('refused updates changed nothing', after == before, (before, after))

    # Unknown and malformed server IDs.
    check('cli get unknown server', code_of(
        c.aws, 'mgn', 'get-replication-configuration', '--source-server-id', MISSING_SS)
        == 'ResourceNotFoundException')
    check('boto3 get unknown server', code_of(
        b.get_replication_configuration, sourceServerID=MISSING_SS) == 'ResourceNotFoundException')
    check('cli update unknown server', code_of(
        c.aws, 'mgn', 'update-replication-configuration', '--source-server-id', MISSING_SS,
        '--bandwidth-throttling', '1') == 'ResourceNotFoundException')
    check('boto3 update unknown server', code_of(
        b.update_replication_configuration, sourceServerID=MISSING_SS, bandwidthThrottling=1)
        == 'ResourceNotFoundException')
    st, et, e = raw_error(c, 'GetReplicationConfiguration', {'sourceServerID': 's-123'})
    check('get malformed server ID', st == 400 and et.startswith('ValidationException'), e)
    st, et, e = raw_error(c, 'GetReplicationConfiguration', {})
    check('get without server ID', st == 400 and
          e.get('fieldList', [{}])[0].get('name') == 'sourceServerID', e)

    # Only administrators.
    st, hdrs, e = c.call('GetReplicationConfiguration', {'sourceServerID': sid}, creds=agent)
    check('agent may not call the public API', st == 403, (st, e))
    st, hdrs, e = c.call('CreateReplicationConfigurationTemplate', FULL, creds=c.installer)
    check('installer may not create templates', st == 403, (st, e))

    # Re-registration keeps the settings of the disks still there.
    sid2, _ = c.register_agent('repl-host-1', disks=[
        {'deviceName': '/dev/vdb', 'bytes': 1 << 30}, {'deviceName': '/dev/vdc', 'bytes': 1 << 30}])
    g = b.get_replication_configuration(sourceServerID=sid)
    gd = {d['deviceName']: d for d in g['replicatedDisks']}
    check('re-registration: same server, disks follow', sid2 == sid and
          sorted(gd) == ['/dev/vdb', '/dev/vdc'] and gd['/dev/vdb']['stagingDiskType'] == 'GP3'
          and g['name'] == 'renamed' and g['bandwidthThrottling'] == 50, g)

    # Survives a crash.
    c.kill9()
    c.start()
    g2 = boto(c).get_replication_configuration(sourceServerID=sid)
    g2.pop('ResponseMetadata')
    g.pop('ResponseMetadata')
    check('configuration survives kill -9', g2 == g, (g, g2))
    b = boto(c)

    # A server that left the service cannot be changed.
    st, _, r = c.call('DisconnectFromService', {'sourceServerID': sid})
    check('disconnect for the conflict test', st == 200, (st, r))
    check('cli update disconnected server: conflict', code_of(
        c.aws, 'mgn', 'update-replication-configuration', '--source-server-id', sid,
        '--bandwidth-throttling', '1') == 'ConflictException')
    st, _, r = c.call('MarkAsArchived', {'sourceServerID': sid})
    check('archive for the conflict test', st == 200, (st, r))
    check('boto3 update archived server: conflict', code_of(
        b.update_replication_configuration, sourceServerID=sid, bandwidthThrottling=1)
        == 'ConflictException')
    check('get still works when archived',
          b.get_replication_configuration(sourceServerID=sid)['bandwidthThrottling'] == 50)

    # Deleting the server deletes its configuration.
    st, _, r = c.call('DeleteSourceServer', {'sourceServerID': sid})
    check('delete server', st in (200, 204), (st, r))
    check('configuration gone with its server', code_of(
        b.get_replication_configuration, sourceServerID=sid) == 'ResourceNotFoundException')


def test_uninitialized():
    with ft.Control(initialize=False) as c:
        check('uninitialized: describe templates', ft.error_code(
            c.aws, 'mgn', 'describe-replication-configuration-templates')
            == 'UninitializedAccountException')
        st, et, _ = raw_error(c, 'CreateReplicationConfigurationTemplate', FULL)
        check('uninitialized: create template', st == 400 and
              et.startswith('UninitializedAccountException'), (st, et))


def main():
    with ft.Control() as c:
        tpl = test_templates(c)
        test_configuration(c, tpl)
    test_uninitialized()
    ft.done()


if __name__ == '__main__':
    main()
