#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""
Signature V4 test vectors made by botocore (Debian's python3-botocore), an
independent signer, for tests/unit/test_sigv4.c.  Run with /usr/bin/python3.

Prints one JSON object per line:
  {"name", "method", "path", "query", "headers": [[name, value], ...],
   "body": latin-1 text of the bytes, "akid", "secret", "region",
   "service", "now"}
where path and query are exactly what goes on the HTTP request line (still
percent-encoded) and headers are what goes on the wire: the signed ones as
botocore left them plus Host and a few unsigned ones an HTTP client adds.
"now" is the signing time (Unix seconds).

Two sources: requests serialized and signed by a real boto3 'mgn' client
(captured in its before-send hook, never sent), and hand-built AWSRequests
signed with SigV4Auth for shapes the MGN model cannot produce (odd query
strings, header spacing, the Date header).
"""
import datetime
import hashlib
import json
import sys
from urllib.parse import urlsplit

import boto3
import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NOW = datetime.datetime(2026, 11, 22, 6, 30, 0)
AKID = 'AKIAFERRYTEST0000001'
SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
TOKEN = 'FQoGZXIvYXdzEJr//////////wEaDOFERRY+session/token=='
REGION = 'us-east-1'
ENDPOINT = 'https://mgn.example.test:8443'


class _FixedClock(datetime.datetime):
    """botocore reads datetime.datetime.utcnow(); pin it to NOW."""

    @classmethod
    def utcnow(cls):
        return NOW


class _Captured(Exception):
    pass


def _emit(name, method, url, headers, body, secret=SECRET):
    parts = urlsplit(url)
    if isinstance(body, str):
        body = body.encode('utf-8')
    hdrs = [[k, v if isinstance(v, str) else v.decode('latin-1')]
            for k, v in headers.items()]
    names = {k.lower() for k, _ in hdrs}
    # What urllib3 adds on the wire; not signed unless botocore saw them.
    if 'host' not in names:
        hdrs.append(['Host', parts.netloc])
    if 'content-length' not in names:
        hdrs.append(['Content-Length', str(len(body or b''))])
    hdrs.append(['Accept-Encoding', 'identity'])
    print(json.dumps({
        'name': name, 'method': method, 'path': parts.path or '/',
        'query': parts.query, 'headers': hdrs,
        'body': (body or b'').decode('latin-1'), 'akid': AKID,
        'secret': secret, 'region': REGION, 'service': 'mgn',
        'now': int(NOW.replace(tzinfo=datetime.timezone.utc).timestamp()),
    }))


def client_vectors():
    """Requests as the boto3 mgn client serializes and signs them."""
    def run(name, op, token=None, **kw):
        client = boto3.client(
            'mgn', region_name=REGION, endpoint_url=ENDPOINT,
            aws_access_key_id=AKID, aws_secret_access_key=SECRET,
            aws_session_token=token)

        def grab(request, **_):
            _emit(name, request.method, request.url, request.headers,
                  request.body)
            raise _Captured()

        client.meta.events.register('before-send.mgn', grab)
        try:
            getattr(client, op)(**kw)
        except _Captured:
            return
        raise SystemExit(f'{name}: request was not captured')

    arn = 'arn:aws:mgn:us-east-1:123456789012:source-server/s-1234567890abcdef0'
    run('client-describe', 'describe_source_servers',
        filters={'isArchived': False}, maxResults=10)
    run('client-describe-token', 'describe_source_servers',
        token=TOKEN, filters={})
    run('client-list-tags-utf8', 'list_tags_for_resource',
        resourceArn=arn + '/caf\u00e9 \u2603')
    run('client-untag-repeated', 'untag_resource', resourceArn=arn,
        tagKeys=['z key', 'a=b', 'a', 'caf\u00e9', 'a'])
    run('client-tag', 'tag_resource', resourceArn=arn,
        tags={'Name': 'web 1', 'k\u00e9y': 'v&a=l'})


def raw_vectors():
    """Hand-built requests for cases the MGN model does not produce."""
    def run(name, method, url, headers, body=b'', token=None):
        creds = Credentials(AKID, SECRET, token)
        req = AWSRequest(method=method, url=url, headers=headers, data=body)
        SigV4Auth(creds, 'mgn', REGION).add_auth(req)
        _emit(name, method, url, req.headers, body)

    js = {'Content-Type': 'application/x-amz-json-1.1'}
    run('raw-query-repeated-empty', 'GET',
        ENDPOINT + '/Op?b=2&a=3&a=1&c=&d&e=x%20y&f=%2F%3D', dict(js))
    run('raw-spacing', 'POST', ENDPOINT + '/DescribeSourceServers',
        {'Content-Type': '  application/json  ',
         'X-Amz-Meta-Odd': 'a   b \t c\t\td  ',
         'x-amz-meta-tabs': '\tx\t'},
        b'{"filters":{}}')
    run('raw-dot-segments', 'POST', ENDPOINT + '/a/./b/../c//d/', dict(js),
        b'{}')
    run('raw-utf8-path', 'GET', ENDPOINT + '/tags/arn%3Aaws%3Amgn%3A%C3%A9',
        dict(js))
    run('raw-body-binary', 'POST', ENDPOINT + '/UpdateAgentReplicationInfoForMgn',
        dict(js), bytes(range(256)))
    run('raw-session-token', 'POST', ENDPOINT + '/GetAgentCommandForMgn',
        dict(js), b'{"sourceServerID":"s-1"}', token=TOKEN)
    # botocore signs a given X-Amz-Content-SHA256 verbatim.
    body = b'{"sourceServerID":"s-2"}'
    run('raw-content-sha256', 'POST', ENDPOINT + '/GetAgentCommandForMgn',
        {'X-Amz-Content-SHA256': hashlib.sha256(body).hexdigest()}, body)
    # A Date header makes botocore sign it instead of adding X-Amz-Date.
    run('raw-date-header', 'POST', ENDPOINT + '/DescribeSourceServers',
        {'Date': 'x', 'Content-Type': 'application/json'}, b'{}')


def main():
    botocore.auth.datetime.datetime = _FixedClock
    client_vectors()
    raw_vectors()
    sys.stdout.flush()


if __name__ == '__main__':
    main()
