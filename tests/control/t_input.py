"""Bad input: oversize bodies, unknown operations, bad JSON, plain HTTP.
Each gets its AWS error and the daemon keeps serving."""
import json
import os
import socket
import ssl
import stat
import subprocess
import time

import ferrytest as ft
from ferrytest import check

def proc_value(pid, name, key):
    """The number after KEY: in /proc/PID/NAME (status, io), or 0."""
    with open('/proc/%d/%s' % (pid, name)) as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    return proc_value(pid, 'status', 'VmRSS')


def open_body(c, headers, sent, chunked=False,
              request='POST /DescribeSourceServers'):
    """A TLS connection with a REQUEST (a POST by default) whose 1 MiB
    body is SENT bytes in (one chunk of them when CHUNKED)."""
    ctx = ssl.create_default_context(cafile=c.ca)
    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', c.port),
                                                 timeout=30),
                        server_hostname='127.0.0.1')
    head = '%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n' % (request, c.port)
    for k, v in headers.items():
        if k.lower() not in ('host', 'content-length'):
            head += '%s: %s\r\n' % (k, v)
    if chunked:
        head += 'Transfer-Encoding: chunked\r\n\r\n%x\r\n' % sent
        s.sendall(head.encode() + b' ' * sent + b'\r\n')
    else:
        head += 'Content-Length: %d\r\n\r\n' % (1 << 20)
        s.sendall(head.encode() + b' ' * sent)
    return s


def finish(s, sent, chunked=False):
    """Send the rest of the body; the status line and the error type."""
    rest = (1 << 20) - sent
    if chunked:
        s.sendall(b'%x\r\n' % rest + b' ' * rest + b'\r\n0\r\n\r\n')
    else:
        s.sendall(b' ' * rest)
    data = b''
    while b'\r\n\r\n' not in data:
        more = s.recv(65536)
        if not more:
            break
        data += more
    s.close()
    head = data.split(b'\r\n\r\n')[0].decode('latin-1').lower()
    etype = [l.split(':', 1)[1].strip() for l in head.split('\r\n')
             if l.startswith('x-amzn-errortype:')]
    return head.split(' ')[1] if ' ' in head else '', etype[0] if etype \
        else ''


def read_bytes(pid):
    """Bytes process PID has read by system calls (its sockets too)."""
    return proc_value(pid, 'io', 'rchar')


def wait_read(pid, since, nbytes, limit=60):
    """Wait until ferry-control has read NBYTES more than SINCE: what the
    test sent, so that RSS and throttling are judged once it has all
    arrived (a fixed sleep could end before a starved daemon read it)."""
    end = time.time() + limit
    while time.time() < end and read_bytes(pid) - since < nbytes:
        time.sleep(0.1)
    time.sleep(0.2)     # the last read's bytes into the buffers


def held_bodies(c):
    """Bodies are kept only for requests whose headers authenticate (a
    stranger could make ferry-control hold a MiB per connection, 10 000
    connections allowed), and only up to 256 MiB at once in all."""
    sent = 1000000
    before = rss_kib(c.proc.pid)
    read0 = read_bytes(c.proc.pid)
    socks = [open_body(c, {'Content-Type': 'application/json'}, sent)
             for _ in range(150)]
    wait_read(c.proc.pid, read0, 150 * sent)
    grown = rss_kib(c.proc.pid) - before
    check('150 unauthenticated 1 MiB bodies in flight are not held '
          '(RSS grew %d KiB)' % grown, grown < 40 << 10, grown)
    st, etype = finish(socks.pop(), sent)
    check('... each is answered 403 MissingAuthenticationTokenException '
          'once sent', st == '403' and
          etype == 'missingauthenticationtokenexception', (st, etype))
    for s in socks:
        s.close()
    # Asset downloads need no signature: their bodies are dropped too.
    before = rss_kib(c.proc.pid)
    read0 = read_bytes(c.proc.pid)
    get = 'GET /assets/latest/linux/deb/SHA512SUMS'
    socks = [open_body(c, {}, sent, request=get) for _ in range(150)]
    wait_read(c.proc.pid, read0, 150 * sent)
    grown = rss_kib(c.proc.pid) - before
    check('150 asset GETs with 1 MiB bodies in flight are not held '
          '(RSS grew %d KiB)' % grown, grown < 40 << 10, grown)
    st, _ = finish(socks.pop(), sent)
    check('... each is answered once sent (%s)' % st, st in ('200', '404'),
          st)
    for s in socks:
        s.close()
    stranger = {'AccessKeyId': 'AKIAFERRYNOSUCHKEY00', 'SecretAccessKey':
                'x' * 40}
    body = b' ' * (1 << 20)
    s = open_body(c, c.sign('POST', '/DescribeSourceServers', body,
                            creds=stranger), sent)
    st, etype = finish(s, sent)
    check('an unknown key\'s body is dropped and answered 403 '
          'UnrecognizedClientException', st == '403' and
          etype == 'unrecognizedclientexception', (st, etype))
    # Signed by a real key: held, up to 256 MiB in all.
    hdrs = c.sign('POST', '/DescribeSourceServers', body)
    read0 = read_bytes(c.proc.pid)
    socks = [open_body(c, hdrs, sent) for _ in range(280)]
    wait_read(c.proc.pid, read0, 280 * sent)
    answers = [finish(s, sent) for s in socks]
    throttled = sum(1 for a in answers if a == ('429', 'throttlingexception'))
    check('authenticated bodies beyond 256 MiB at once get 429 '
          'ThrottlingException (%d of 280), the others their answer' %
          throttled, 10 <= throttled <= 40 and all(
              a[0] in ('429', '400', '403') for a in answers),
          answers[:3] + answers[-3:])
    # The same in chunks (no Content-Length to refuse at once).
    read0 = read_bytes(c.proc.pid)
    socks = [open_body(c, hdrs, sent, chunked=True) for _ in range(280)]
    wait_read(c.proc.pid, read0, 280 * sent)
    answers = [finish(s, sent, chunked=True) for s in socks]
    throttled = sum(1 for a in answers if a == ('429', 'throttlingexception'))
    check('... chunked bodies too (%d of 280 throttled)' % throttled,
          10 <= throttled <= 40 and all(
              a[0] in ('429', '400', '403') for a in answers),
          answers[:3] + answers[-3:])


with ft.Control() as c:
    big = b'{"x":"' + b'a' * (1 << 20) + b'"}'
    hdrs = c.sign('POST', '/DescribeSourceServers', big)
    st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, big)
    check('a body over 1 MiB -> 413 RequestEntityTooLargeException',
          st == 413 and h.get('x-amzn-errortype') == 'RequestEntityTooLargeException', (st, h, b))

    # The same without Content-Length (chunked), so the limit is enforced
    # while reading, not only from the header.
    import http.client
    conn = http.client.HTTPSConnection('127.0.0.1', c.port, context=ssl.create_default_context(cafile=c.ca))
    hdrs = c.sign('POST', '/DescribeSourceServers', big)
    hdrs.pop('Content-Length', None)
    conn.request('POST', '/DescribeSourceServers', body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                 headers=hdrs, encode_chunked=True)
    r = conn.getresponse()
    r.read()
    check('a chunked body over 1 MiB -> 413', r.status == 413, r.status)
    conn.close()

    held_bodies(c)

    st, h, b = c.call('NoSuchOperation', {})
    check('unknown operation -> 404 UnknownOperationException',
          st == 404 and h.get('x-amzn-errortype') == 'UnknownOperationException', (st, h, b))
    st, h, b = c.call('DescribeSourceServers', {}, method='PUT')
    check('known path with the wrong method -> UnknownOperationException',
          st == 404 and h.get('x-amzn-errortype') == 'UnknownOperationException', (st, h, b))

    for label, body in (('truncated JSON', b'{"maxResults": 1'), ('a JSON array', b'[1,2]'),
                        ('a JSON string', b'"x"'), ('invalid UTF-8', b'{"a":"\xff"}'),
                        ('duplicate keys', b'{"maxResults":1,"maxResults":2}'),
                        ('NUL byte', b'{"a":"\x00"}')):
        hdrs = c.sign('POST', '/DescribeSourceServers', body)
        st, h, b = c.raw('POST', '/DescribeSourceServers', hdrs, body)
        check('%s -> 400 ValidationException' % label,
              st == 400 and h.get('x-amzn-errortype') == 'ValidationException' and b.get('message'), (st, h, b))

    st, h, b = c.call('DescribeSourceServers', {'maxResults': 'many'})
    check('a member of the wrong type -> ValidationException with fieldList',
          st == 400 and h.get('x-amzn-errortype') == 'ValidationException' and
          b.get('fieldList', [{}])[0].get('name') == 'maxResults', (st, h, b))
    st, h, b = c.call('DescribeSourceServers', {'noSuchMember': 1})
    check('an unknown member -> ValidationException', st == 400 and
          h.get('x-amzn-errortype') == 'ValidationException', (st, h, b))
    st, h, b = c.call('DescribeSourceServers', {})
    check('every answer has x-amzn-RequestId', st == 200 and len(h.get('x-amzn-requestid', '')) == 36, h)

    # Bad percent-encoding in a path parameter.
    st, h, b = c.call('ListTagsForResource', None, method='GET', path='/tags/arn%zz')
    check('malformed percent-encoding -> 400 ValidationException',
          st == 400 and h.get('x-amzn-errortype') == 'ValidationException', (st, h, b))

    # Plain HTTP on the HTTPS port: no answer in the clear.
    s = socket.create_connection(('127.0.0.1', c.port), timeout=10)
    s.sendall(b'POST /DescribeSourceServers HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}')
    try:
        data = s.recv(100)
    except (ConnectionResetError, socket.timeout):
        data = b''
    s.close()
    check('plain HTTP gets no HTTP answer (HTTPS only)', not data.startswith(b'HTTP/'), data)

    # TLS older than 1.2 is refused.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(c.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(('127.0.0.1', c.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname='127.0.0.1') as tls:
            v = tls.version()
    check('TLS 1.3 is offered', v == 'TLSv1.3', v)
    r = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % c.port, '-tls1_1'],
                       input='', capture_output=True, text=True, timeout=30)
    check('TLS 1.1 is refused', r.returncode != 0, r.stdout[-300:])

    # The server certificate verifies for localhost and 127.0.0.1.
    for host in ('localhost', '127.0.0.1'):
        r = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % c.port,
                            '-CAfile', c.ca, '-verify_return_error', '-verify_hostname' if host == 'localhost'
                            else '-verify_ip', host], input='', capture_output=True, text=True, timeout=30)
        check('server certificate verifies for %s against DATA_DIR/ca.pem' % host,
              r.returncode == 0 and 'Verify return code: 0 (ok)' in r.stdout, r.stdout[-400:] + r.stderr[-400:])

    for f in ('control.db', 'ca-key.pem', 'server-key.pem'):
        mode = stat.S_IMODE(os.stat(os.path.join(c.data_dir, f)).st_mode)
        check('%s is mode 0600' % f, mode == 0o600, oct(mode))
    check('the daemon survived all of it', c.proc.poll() is None, c.log()[-2000:])
    st, _, _ = c.call('DescribeSourceServers', {})
    check('and still answers', st == 200, st)
ft.done()
