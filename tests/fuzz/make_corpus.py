#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""
Write the seed corpus of tests/fuzz/fuzz_request.c into
tests/fuzz/corpus/request/ (run from the repository root).  Each file is:
mode byte, date-offset byte, "METHOD URI\\n", header lines, "\\n", body;
see the comment at the top of fuzz_request.c for the mode bits and the
@A/@B/@P/@K/@T/@D placeholders.  Files of other names in the directory
(bug reproducers kept as regression tests, e.g. ubsan-disk-bytes-sum, and
max-bytes-*: values at the model's limits) are left alone.
"""
import json
import os

OUT = 'tests/fuzz/corpus/request'
ADMIN, INSTALLER, AGENT_A, AGENT_B, REPLICATOR = 0, 1, 2, 3, 4
WRONG_SECRET, AGENT_NO_TOKEN, UNKNOWN = 5, 6, 7
RAW, CSHA, PERIODIC, LATER, DATE = 0x08, 0x10, 0x20, 0x40, 0x80
ARN_A = 'arn:aws:mgn:us-east-1:123456789012:source-server/@A'
ARN_A_ENC = ARN_A.replace(':', '%3A').replace('/', '%2F')
JSON = 'Content-Type: application/json\n'
CSR = ('-----BEGIN CERTIFICATE REQUEST-----\n'
       'MIHJMHECAQAwDzENMAsGA1UEAwwEZnV6ejBZMBMGByqGSM49AgEGCCqGSM49AwEH\n'
       'A0IABFGBKHH9GgSvih3MjNbj8b48PO5qLhTaBB3XnjGSSdU0roa258FRhDUMver1\n'
       '7kBtik8ez4fRxo8G6FOnho5/rzWgADAKBggqhkjOPQQDAgNIADBFAiEAicZO0QWX\n'
       '5zJJzDnCCHFs31Aqbsbb/g+axRPIW+3NE8UCIC7l/lT0byy9ZIwSUh1wMPVrJ9eE\n'
       'bdNpLPGU2qKui0MT\n'
       '-----END CERTIFICATE REQUEST-----\n')


def seed(name, mode, line, body=b'', headers=JSON, offset=0):
    if not isinstance(body, bytes):
        body = json.dumps(body, separators=(',', ':')).encode()
    data = bytes([mode, offset & 0xff]) + (line + '\n' + headers +
                                           '\n').encode() + body
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    seed('describe-source-servers', ADMIN, 'POST /DescribeSourceServers',
         {'filters': {'isArchived': False, 'sourceServerIDs': ['@A']},
          'maxResults': 10})
    seed('describe-page', ADMIN, 'POST /DescribeSourceServers',
         {'filters': {}, 'maxResults': 1, 'nextToken': 'x'})
    seed('register-agent', INSTALLER, 'POST /RegisterAgentForMgn', {
        'hostname': 'h1', 'fqdn': 'h1.example.test',
        'machineId': '00112233445566778899aabbccddeeff',
        'agentVersion': '0.1.0',
        'cpus': [{'cores': 2, 'modelName': 'QEMU Virtual CPU'}],
        'ramBytes': 2 << 30, 'os': {'fullString': 'Debian GNU/Linux 12'},
        'networkInterfaces': [{'macAddress': '52:54:00:12:34:57',
                               'ips': ['10.0.2.16', 'fe80::1'],
                               'isPrimary': True}],
        'disks': [{'deviceName': '/dev/vda', 'bytes': 8 << 30}],
        'tags': {'Name': 'h1'}, 'userProvidedID': 'u-1'})
    seed('tag-resource', ADMIN, 'POST /tags/' + ARN_A_ENC + '?dryRun=1&a',
         {'tags': {'Name': 'web 1', 'k\u00e9y': 'v&a=l'}})
    seed('list-tags', ADMIN, 'GET /tags/' + ARN_A_ENC)
    seed('untag-resource', ADMIN, 'DELETE /tags/' + ARN_A_ENC +
         '?tagKeys=env&tagKeys=a%20b&tagKeys=Name')
    hb = {'dataReplicationState': 'CONTINUOUS', 'lagSeconds': 3723,
          'etaSeconds': 600, 'backlogBytes': 4096,
          'replicatedDisks': [{'deviceName': '/dev/vda',
                               'totalStorageBytes': 8 << 30,
                               'replicatedStorageBytes': 8 << 30,
                               'rescannedStorageBytes': 0,
                               'backloggedStorageBytes': 4096}],
          'dataReplicationError': {'error': 'UNSTABLE_NETWORK',
                                   'rawError': 'reset'}}
    seed('heartbeat', AGENT_A, 'POST /UpdateAgentReplicationInfoForMgn', hb)
    seed('heartbeat-csha', AGENT_B | CSHA,
         'POST /UpdateAgentReplicationInfoForMgn',
         {'dataReplicationState': 'INITIAL_SYNC', 'lagSeconds': 1})
    seed('heartbeat-expired', AGENT_A | LATER | PERIODIC,
         'POST /UpdateAgentReplicationInfoForMgn', hb)
    seed('heartbeat-no-token', AGENT_NO_TOKEN,
         'POST /UpdateAgentReplicationInfoForMgn', hb)
    seed('agent-command', AGENT_A, 'POST /GetAgentCommandForMgn',
         {'sourceServerID': '@A', 'ackCommandIDs': [1]})
    seed('agent-runtime', AGENT_B, 'POST /GetAgentRuntimeConfigurationForMgn',
         {})
    seed('agent-properties', AGENT_A,
         'POST /UpdateAgentSourcePropertiesForMgn',
         {'ramBytes': 4 << 30, 'disks': [{'deviceName': '/dev/vda',
                                          'bytes': 16 << 30}]})
    seed('agent-certificate', AGENT_A, 'POST /IssueClientCertificateForMgn',
         {'csr': CSR})
    seed('agent-refresh', AGENT_A, 'POST /RefreshAgentCredentialsForMgn', {})
    seed('replicator-info', REPLICATOR, 'POST /UpdateReplicatorInfoForMgn', {
        'freeBytes': 1 << 39, 'sourceServers': [
            {'sourceServerID': '@A',
             'lastSnapshotDateTime': '2026-11-22T06:29:00Z'}]})
    seed('replicator-assignments', REPLICATOR,
         'POST /GetReplicatorAssignmentsForMgn', {'replicatorID': 'r1'})
    seed('start-replication', ADMIN, 'POST /StartReplication',
         {'sourceServerID': '@B'})
    seed('pause-replication', ADMIN, 'POST /PauseReplication',
         {'sourceServerID': '@A'})
    seed('lifecycle', ADMIN, 'POST /ChangeServerLifeCycleState',
         {'sourceServerID': '@A',
          'lifeCycle': {'state': 'READY_FOR_CUTOVER'}})
    seed('get-replication-configuration', ADMIN,
         'POST /GetReplicationConfiguration', {'sourceServerID': '@A'})
    seed('update-replication-configuration', ADMIN,
         'POST /UpdateReplicationConfiguration',
         {'sourceServerID': '@A', 'bandwidthThrottling': 100,
          'replicatedDisks': [{'deviceName': '/dev/vda', 'iops': 3000,
                               'stagingDiskType': 'GP3'}],
          'stagingAreaTags': {'a': 'b'}})
    seed('describe-templates', ADMIN,
         'POST /DescribeReplicationConfigurationTemplates',
         {'replicationConfigurationTemplateIDs': [], 'maxResults': 5})
    seed('describe-jobs', ADMIN, 'POST /DescribeJobs',
         {'filters': {'fromDate': '2026-01-01T00:00:00Z'}})
    seed('disconnect', ADMIN, 'POST /DisconnectFromService',
         {'sourceServerID': '@B'})
    for op in ('StopReplication', 'ResumeReplication', 'RetryDataReplication',
               'MarkAsArchived', 'DeleteSourceServer'):
        seed(op.lower(), ADMIN, 'POST /' + op, {'sourceServerID': '@A'})
    seed('create-template', ADMIN,
         'POST /CreateReplicationConfigurationTemplate', {
             'associateDefaultSecurityGroup': False,
             'bandwidthThrottling': 10, 'createPublicIP': True,
             'dataPlaneRouting': 'PUBLIC_IP',
             'defaultLargeStagingDiskType': 'ST1', 'ebsEncryption': 'CUSTOM',
             'ebsEncryptionKeyArn': 'arn:aws:kms:us-east-1:123456789012:key/k',
             'replicationServerInstanceType': 'm5.large',
             'replicationServersSecurityGroupsIDs': ['sg-0123456789abcdef0'],
             'stagingAreaSubnetId': 'subnet-0123456789abcdef0',
             'stagingAreaTags': {'k': 'v'}, 'tags': {'t': 'u'},
             'useDedicatedReplicationServer': True})
    seed('update-template', ADMIN,
         'POST /UpdateReplicationConfigurationTemplate',
         {'replicationConfigurationTemplateID': '@P',
          'bandwidthThrottling': 5, 'stagingAreaTags': {}})
    seed('delete-template', ADMIN,
         'POST /DeleteReplicationConfigurationTemplate',
         {'replicationConfigurationTemplateID': '@P'})
    seed('describe-template-by-id', ADMIN,
         'POST /DescribeReplicationConfigurationTemplates',
         {'replicationConfigurationTemplateIDs': ['@P']})
    seed('initialize-service', ADMIN, 'POST /InitializeService')
    seed('register-replicator', REPLICATOR, 'POST /RegisterReplicatorForMgn',
         {'replicatorID': 'r1', 'address': '::1', 'port': 1501,
          'capacityBytes': 1 << 40, 'freeBytes': 1 << 39})
    seed('date-header', ADMIN | DATE, 'POST /DescribeSourceServers', {})
    seed('skew-late', ADMIN, 'POST /DescribeSourceServers', {}, offset=120)
    seed('skew-early', ADMIN, 'POST /DescribeSourceServers', {},
         offset=-120)
    seed('wrong-secret', WRONG_SECRET, 'POST /DescribeSourceServers', {})
    seed('unknown-key', UNKNOWN, 'POST /DescribeSourceServers', {})
    seed('installer-denied', INSTALLER, 'POST /DescribeSourceServers', {})
    seed('unknown-op', ADMIN, 'POST /NoSuchOperation', {})
    seed('bad-json', ADMIN, 'POST /StartReplication',
         b'{"sourceServerID": "@A", "x": [1, 2, {"y": null}')
    seed('raw-authorization', RAW, 'POST /DescribeSourceServers', {},
         headers=JSON + 'Host: control.fuzz.test\nX-Amz-Date: @D\n'
         'Authorization: AWS4-HMAC-SHA256 '
         'Credential=@K/20261122/us-east-1/mgn/aws4_request, '
         'SignedHeaders=content-type;host;x-amz-date, Signature='
         + '0123456789abcdef' * 4 + '\n')
    seed('raw-token', RAW | AGENT_A, 'POST /GetAgentCommandForMgn', {},
         headers='Host: h\nX-Amz-Security-Token: @T\n'
         'Date: Sun, 22 Nov 2026 06:30:00 GMT\n'
         'Authorization: AWS4-HMAC-SHA256 Credential=@K/20261122/us-east-1/'
         'mgn/aws4_request,SignedHeaders=date;host;x-amz-security-token,'
         'Signature=' + 'f' * 64 + '\n')
    seed('raw-missing', RAW, 'POST /DescribeSourceServers', b'{}',
         headers='Authorization: AWS4-HMAC-SHA256 Credential=a/b\n')
    with open(os.path.join(OUT, 'garbage'), 'wb') as f:
        f.write(bytes([0x5a, 0x93]) + bytes(range(256)) +
                b'\n\n\n\xff\xfe{\x00}')


if __name__ == '__main__':
    main()
