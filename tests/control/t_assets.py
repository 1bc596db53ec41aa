#!/usr/bin/python3
"""The installation assets: GetAgentInstallationAssetsForMgn (signed with
the installer's key) lists ferry-dkms and ferry-agent with their SHA-512,
and GET /assets/latest/linux/FORMAT/NAME[.sha512] serves them unsigned;
nothing outside the listed packages can be read (traversal, encodings,
unlisted files), and a package replaced on disk gets its new digest."""
import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

check = ft.check
DEB = ['ferry-agent_0.1.0-1_amd64.deb', 'ferry-dkms_0.1.0-1_all.deb',
       'ferry-replicator_0.1.0-1_amd64.deb']
RPM = ['ferry-dkms-0.1.0-1.noarch.rpm', 'ferry-agent-0.1.0-1.x86_64.rpm']


def make_dir(root, fmt, names):
    """Package files (opaque bytes to ferry-control) and their
    SHA512SUMS, as make deb / make rpm leave them."""
    d = os.path.join(root, fmt)
    os.makedirs(d)
    lines = []
    for i, n in enumerate(names):
        data = os.urandom(70000 + i * 1000)
        with open(os.path.join(d, n), 'wb') as f:
            f.write(data)
        lines.append('%s  %s\n' % (hashlib.sha512(data).hexdigest(), n))
    with open(os.path.join(d, 'SHA512SUMS'), 'w') as f:
        f.writelines(lines)
    with open(os.path.join(d, 'notes.txt'), 'w') as f:
        f.write('not an asset\n')


def sha(path):
    return hashlib.sha512(open(path, 'rb').read()).hexdigest()


def assets(c, fmt, creds=None, arch='x86_64', extra=None):
    body = {'packageFormat': fmt, 'architecture': arch}
    body.update(extra or {})
    return c.call('GetAgentInstallationAssetsForMgn', body,
                  creds=creds or c.installer)


def get(c, path):
    st, h, r = c.raw('GET', path)
    return st, (r or {}).get('_raw') if isinstance(r, dict) else r


tmp = tempfile.mkdtemp(prefix='ferry-assets.')
make_dir(tmp, 'deb', DEB)
with ft.Control(args=['--assets-dir', tmp]) as c:
    st, _, r = assets(c, 'deb')
    names = [a['name'] for a in (r or {}).get('assets', [])]
    check('deb: 200, ferry-dkms then ferry-agent, the version',
          st == 200 and names == [DEB[1], DEB[0]] and
          r.get('agentVersion') == '0.1.0-1', (st, r))
    good = st == 200 and all(
        a['sha512'] == sha(os.path.join(tmp, 'deb', a['name'])) and
        a['size'] == os.path.getsize(os.path.join(tmp, 'deb', a['name']))
        for a in r['assets'])
    check('deb: each SHA-512 and size is the file\'s', good, r)
    check('deb: the URLs are ferry-control\'s own, on the host called',
          st == 200 and all(a['url'] == 'https://127.0.0.1:%d/assets/'
                            'latest/linux/deb/%s' % (c.port, a['name'])
                            for a in r['assets']), r)
    for a in (r or {}).get('assets', []):
        path = '/assets/latest/linux/deb/' + a['name']
        s1, h1, _ = c.raw('GET', path)
        conn_ok = s1 == 200
        import http.client
        cx = http.client.HTTPSConnection('127.0.0.1', c.port,
                                         context=c._ssl(), timeout=30)
        cx.request('GET', path)
        resp = cx.getresponse()
        body = resp.read()
        cx.close()
        check('GET %s, unsigned: the file\'s bytes' % a['name'],
              conn_ok and body == open(os.path.join(tmp, 'deb', a['name']),
                                       'rb').read(), s1)
        st2, txt = get(c, path + '.sha512')
        check('GET %s.sha512: "HEX  NAME"' % a['name'],
              st2 == 200 and txt == '%s  %s\n' % (a['sha512'], a['name']),
              (st2, txt))
    st, _, r = assets(c, 'deb', creds=c.admin)
    check('an administrator\'s key may list them too', st == 200, st)
    st, h, _ = assets(c, 'deb', creds=c.replicator)
    check('a replicator\'s key: AccessDeniedException',
          st == 403 and h.get('x-amzn-errortype') == 'AccessDeniedException',
          (st, h.get('x-amzn-errortype')))
    sid, agent = c.register_agent('assets-host')
    st, h, _ = assets(c, 'deb', creds=agent)
    check('an agent\'s key: AccessDeniedException',
          st == 403 and h.get('x-amzn-errortype') == 'AccessDeniedException',
          (st, h.get('x-amzn-errortype')))
    st, h, _ = c.raw('POST', '/GetAgentInstallationAssetsForMgn',
                     {'Content-Type': 'application/json'},
                     b'{"packageFormat":"deb","architecture":"x86_64"}')
    check('unsigned: MissingAuthenticationTokenException',
          st == 403 and h.get('x-amzn-errortype') ==
          'MissingAuthenticationTokenException', st)
    for what, args in (('packageFormat zip', {'fmt': 'zip'}),
                       ('architecture s390x', {'arch': 's390x'}),
                       ('an unknown member', {'extra': {'x': 1}})):
        st, h, _ = assets(c, args.get('fmt', 'deb'),
                          arch=args.get('arch', 'x86_64'),
                          extra=args.get('extra'))
        check('%s: ValidationException' % what,
              st == 400 and h.get('x-amzn-errortype') ==
              'ValidationException', (st, h.get('x-amzn-errortype')))
    st, h, r = assets(c, 'rpm')
    check('rpm with no rpm directory: ResourceNotFoundException naming it',
          st == 404 and h.get('x-amzn-errortype') ==
          'ResourceNotFoundException' and os.path.join(tmp, 'rpm') in
          (r or {}).get('message', ''), (st, r))
    make_dir(tmp, 'rpm', RPM)
    st, _, r = assets(c, 'rpm')
    check('rpm: once there, listed in install order with the version',
          st == 200 and [a['name'] for a in r['assets']] ==
          [RPM[0], RPM[1]] and r['agentVersion'] == '0.1.0-1', (st, r))

    # A package replaced in place: the new digest, never the old one.
    p = os.path.join(tmp, 'deb', DEB[0])
    with open(p, 'wb') as f:
        f.write(os.urandom(12345))
    st, _, r = assets(c, 'deb')
    a = [x for x in (r or {}).get('assets', []) if x['name'] == DEB[0]]
    check('a package replaced on disk: its new SHA-512 and size',
          a and a[0]['sha512'] == sha(p) and a[0]['size'] == 12345, a)

    # Nothing else can be read.
    for path in ('/assets/latest/linux/deb/SHA512SUMS',
                 '/assets/latest/linux/deb/notes.txt',
                 '/assets/latest/linux/deb/../../../ca-key.pem',
                 '/assets/latest/linux/deb/%2e%2e/%2e%2e/ca-key.pem',
                 '/assets/latest/linux/deb/..%2fca-key.pem',
                 '/assets/latest/linux/deb/%66erry-dkms_0.1.0-1_all.deb',
                 '/assets/latest/linux/../../control.db',
                 '/assets/latest/linux/deb//etc/passwd',
                 '/assets/latest/linux/deb/.SHA512SUMS',
                 '/assets/latest/linux/zip/' + DEB[1],
                 '/assets/latest/linux/deb/' + DEB[1] + '?x=1',
                 '/assets/latest/linux/deb/ferry-replicator_0.1.0-1'
                 '_amd64.deb/..',
                 '/assets/ca-key.pem', '/assets/'):
        st, txt = get(c, path)
        check('GET %s: 404' % path, st == 404 and 'BEGIN' not in str(txt),
              (st, str(txt)[:80]))
    st, _ = get(c, '/assets/latest/linux/deb/' + DEB[2])
    check('a listed package that install.sh does not ask for is still '
          'served (the directory is what make deb made)', st == 200, st)
ft.done()
