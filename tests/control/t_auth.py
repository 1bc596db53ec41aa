"""Authentication: every refusal AWS gives for SigV4, with the stock aws
CLI, boto3 and hand-made requests; roles; session tokens."""
import datetime
import json
import time

import ferrytest as ft
from ferrytest import check, error_code

BOGUS = {'AccessKeyId': 'AKIAAAAAAAAAAAAAAAAA', 'SecretAccessKey': 'x' * 40}


def err(c, st, hdrs, body):
    return (st, hdrs.get('x-amzn-errortype', ''), (body or {}).get('message', ''))


# Session credentials live 12 hours here (the default): the checks made
# with them must not depend on how fast a loaded machine runs them.  Their
# expiry is checked at the end, on a ferry-control of its own.
with ft.Control() as c:
    # Sanity: the admin key works through both real clients.
    r = c.aws('mgn', 'describe-source-servers')
    check('aws CLI with an admin key', r is not None and r.get('items') == [], r)
    r = c.boto().describe_source_servers()
    check('boto3 with an admin key', r['ResponseMetadata']['HTTPStatusCode'] == 200, r)

    # Unknown key.
    code = error_code(c.aws, 'mgn', 'describe-source-servers', creds=BOGUS)
    check('aws: unknown key -> UnrecognizedClientException', code == 'UnrecognizedClientException', code)
    code = error_code(c.boto(BOGUS).describe_source_servers)
    check('boto3: unknown key -> UnrecognizedClientException', code == 'UnrecognizedClientException', code)
    st, h, b = c.call('DescribeSourceServers', {}, creds=BOGUS)
    check('unknown key is HTTP 403 with x-amzn-ErrorType and a message',
          st == 403 and h.get('x-amzn-errortype') == 'UnrecognizedClientException' and
          b.get('message') == 'The security token included in the request is invalid.', err(c, st, h, b))

    # Wrong secret: the signature does not match.
    wrong = dict(c.admin, SecretAccessKey='A' * 40)
    code = error_code(c.aws, 'mgn', 'describe-source-servers', creds=wrong)
    check('aws: wrong secret -> InvalidSignatureException', code == 'InvalidSignatureException', code)
    code = error_code(c.boto(wrong).describe_source_servers)
    check('boto3: wrong secret -> InvalidSignatureException', code == 'InvalidSignatureException', code)
    st, h, b = c.call('DescribeSourceServers', {}, creds=wrong)
    check('wrong secret is HTTP 403 with AWS message',
          st == 403 and 'does not match' in b.get('message', ''), err(c, st, h, b))

    # A body altered after signing.
    body = json.dumps({'maxResults': 5}).encode()
    hdrs = c.sign('POST', '/DescribeSourceServers', body)
    st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, json.dumps({'maxResults': 6}).encode())
    check('body changed after signing -> InvalidSignatureException',
          st == 403 and h.get('x-amzn-errortype') == 'InvalidSignatureException', err(c, st, h, b))

    # A header listed in SignedHeaders but missing from the request.
    hdrs = c.sign('POST', '/DescribeSourceServers', b'{}', headers={'X-Ferry-Test': 'v'})
    del hdrs['X-Ferry-Test']
    st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, b'{}')
    check('signed header missing from the request -> 403 InvalidSignatureException',
          st == 403 and h.get('x-amzn-errortype') == 'InvalidSignatureException', err(c, st, h, b))

    # Host not signed at all.
    hdrs = c.sign('POST', '/DescribeSourceServers', b'{}')
    a = hdrs['Authorization']
    hdrs['Authorization'] = a.replace('SignedHeaders=content-type;host;x-amz-date',
                                      'SignedHeaders=content-type;x-amz-date')
    st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, b'{}')
    check('host missing from SignedHeaders is refused',
          st in (400, 403) and h.get('x-amzn-errortype') in
          ('InvalidSignatureException', 'IncompleteSignatureException'), err(c, st, h, b))

    # No Authorization header.
    st, h, b = c.raw('POST', '/DescribeSourceServers', {'Content-Type': 'application/json'}, b'{}')
    check('unsigned request -> 403 MissingAuthenticationTokenException',
          st == 403 and h.get('x-amzn-errortype') == 'MissingAuthenticationTokenException', err(c, st, h, b))

    # Incomplete Authorization header.
    hdrs = c.sign('POST', '/DescribeSourceServers', b'{}')
    hdrs['Authorization'] = hdrs['Authorization'].split(', Signature=')[0]
    st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, b'{}')
    check('Authorization without Signature -> 400 IncompleteSignatureException',
          st == 400 and h.get('x-amzn-errortype') == 'IncompleteSignatureException', err(c, st, h, b))

    # Timestamps 20 minutes off, both ways.
    now = datetime.datetime.utcnow()
    for label, delta in (('past', -20), ('future', 20)):
        when = now + datetime.timedelta(minutes=delta)
        hdrs = c.sign('POST', '/DescribeSourceServers', b'{}', when=when)
        st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, b'{}')
        want = 'Signature expired' if delta < 0 else 'Signature not yet current'
        check('timestamp 20 min in the %s -> 403 InvalidSignatureException "%s"' % (label, want),
              st == 403 and h.get('x-amzn-errortype') == 'InvalidSignatureException' and
              want in b.get('message', ''), err(c, st, h, b))
    # 10 minutes off is within AWS's 15-minute window.
    hdrs = c.sign('POST', '/DescribeSourceServers', b'{}', when=now - datetime.timedelta(minutes=10))
    st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, b'{}')
    check('timestamp 10 min in the past is accepted', st == 200, err(c, st, h, b))

    # Replay: the same signed request that changes state, twice.
    hdrs = c.sign('POST', '/InitializeService', b'{}')
    st1, _, _ = c.raw('POST', '/InitializeService', hdrs, b'{}')
    st, h, b = c.raw('POST', '/InitializeService', hdrs, b'{}')
    check('replayed request -> 403 InvalidSignatureException, saying a '
          'retry\'s first attempt was accepted',
          st1 == 204 and st == 403 and h.get('x-amzn-errortype') == 'InvalidSignatureException' and
          'the first attempt was accepted' in b.get('message', ''),
          (st1,) + err(c, st, h, b))
    # ... but one that failed changed nothing: the SDKs' retry of it,
    # with the same signature in the same second (botocore does not sign
    # its retry headers), is answered by the operation, not refused.
    body = b'{"sourceServerID": "s-0000000000000dead"}'
    hdrs = c.sign('POST', '/StartReplication', body)
    st1, h1, b1 = c.raw('POST', '/StartReplication', hdrs, body)
    st, h, b = c.raw('POST', '/StartReplication', hdrs, body)
    check('a failed request sent again with the same signature gets the '
          'operation\'s answer again (%s), not "already used"' %
          h1.get('x-amzn-errortype'),
          st1 == 404 and st == st1 and
          h.get('x-amzn-errortype') == h1.get('x-amzn-errortype') ==
          'ResourceNotFoundException', (st1, b1) + err(c, st, h, b))
    # Reads are exempt: the same read twice in one second is normal.
    hdrs = c.sign('POST', '/DescribeSourceServers', b'{}')
    st1, _, _ = c.raw('POST', '/DescribeSourceServers', hdrs, b'{}')
    st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, b'{}')
    check('the same read sent twice is answered twice', st1 == 200 and st == 200, (st1,) + err(c, st, h, b))

    # Credential scoped to another region or service.
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    for label, region, service in (('region', 'eu-west-3', 'mgn'), ('service', 'us-east-1', 'drs')):
        req = botocore.awsrequest.AWSRequest(method='POST', url=c.url + '/DescribeSourceServers', data=b'{}',
                                             headers={'Content-Type': 'application/json'})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(c.admin['AccessKeyId'],
                                                                 c.admin['SecretAccessKey']),
                                service, region).add_auth(req)
        st, h, b = c.raw('POST', '/DescribeSourceServers', dict(req.headers.items()), b'{}')
        check('credential scoped to another %s -> 403 InvalidSignatureException' % label,
              st == 403 and h.get('x-amzn-errortype') == 'InvalidSignatureException', err(c, st, h, b))

    # Roles: the installer key may register agents, not administer.
    code = error_code(c.aws, 'mgn', 'describe-source-servers', creds=c.installer)
    check('aws: installer key on an admin operation -> AccessDeniedException', code == 'AccessDeniedException', code)
    code = error_code(c.boto(c.replicator).describe_source_servers)
    check('boto3: replicator key on an admin operation -> AccessDeniedException', code == 'AccessDeniedException', code)

    # Session tokens: credentials issued to an agent.
    try:
        sid, agent = c.register_agent('auth-host')
    except Exception as e:  # registration is another module's; report, go on
        sid, agent = None, None
        check('register an agent for the session-token checks', False, e)
    if agent:
        st, h, b = c.call('GetAgentCommandForMgn', {}, creds=agent)
        check('agent credentials with their session token work', st == 200, err(c, st, h, b))
        no_tok = dict(agent)
        del no_tok['SessionToken']
        st, h, b = c.call('GetAgentCommandForMgn', {}, creds=no_tok)
        check('temporary key without its session token -> UnrecognizedClientException',
              st == 403 and h.get('x-amzn-errortype') == 'UnrecognizedClientException', err(c, st, h, b))
        bad_tok = dict(agent, SessionToken=agent['SessionToken'][:-4] + 'AAAA')
        st, h, b = c.call('GetAgentCommandForMgn', {}, creds=bad_tok)
        check('wrong session token -> UnrecognizedClientException',
              st == 403 and h.get('x-amzn-errortype') == 'UnrecognizedClientException', err(c, st, h, b))
        code = error_code(c.boto(agent).describe_source_servers)
        check('boto3: agent credentials on an admin operation -> AccessDeniedException',
              code == 'AccessDeniedException', code)
        with_tok = dict(c.admin, SessionToken='bogus')
        st, h, b = c.call('DescribeSourceServers', {}, creds=with_tok)
        check('long-term key with a session token -> UnrecognizedClientException',
              st == 403 and h.get('x-amzn-errortype') == 'UnrecognizedClientException', err(c, st, h, b))

    # A deleted key stops working at once.
    k = c.keys_create('temp', 'admin')
    c.aws('mgn', 'describe-source-servers', creds=k)
    c.cli('keys', 'delete', '--data-dir', c.data_dir, '--access-key-id', k['AccessKeyId'])
    code = error_code(c.aws, 'mgn', 'describe-source-servers', creds=k)
    check('deleted key -> UnrecognizedClientException', code == 'UnrecognizedClientException', code)
    check('the daemon is still running', c.proc.poll() is None, c.log()[-2000:])

# Expiry, on credentials that live 5 s (the least --session-ttl takes).
# They must work while fresh: a use answered less than TTL - 1 s after
# the registration was sent is conclusive (ferry-control counts whole
# seconds); a slower one (a starved test) registers again.  Then, TTL +
# 1 s after the registration's answer (the credentials were stamped
# before it), they must have expired whatever the delays.
TTL = 5
with ft.Control(args=['--session-ttl', str(TTL)]) as c:
    fresh, agent, issued = None, None, 0
    try:
        for i in range(20):
            t0 = time.time()
            sid, agent = c.register_agent('expiry-host-%d' % i)
            issued = time.time()
            st, h, b = c.call('GetAgentCommandForMgn', {}, creds=agent)
            if time.time() - t0 < TTL - 1:
                fresh = (st, h, b)
                break
    except Exception as e:  # registration is another module's; report
        agent = None
        check('register an agent for the expiry checks', False, e)
    if agent:
        check('session credentials work before they expire (--session-ttl %d)' % TTL,
              fresh is not None and fresh[0] == 200,
              err(c, *fresh) if fresh else 'no use within %d s of a registration' % (TTL - 1))
        time.sleep(max(0, issued + TTL + 1 - time.time()))
        st, h, b = c.call('GetAgentCommandForMgn', {}, creds=agent)
        check('expired session credentials -> 403 ExpiredTokenException',
              st == 403 and h.get('x-amzn-errortype') == 'ExpiredTokenException', err(c, st, h, b))
ft.done()
