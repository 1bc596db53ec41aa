"""ferrytest: the harness of ferry-control's integration tests.

Starts a real ferry-control (build/bin/ferry-control) on loopback with a
fresh data directory and drives it with real clients: Debian's AWS command
line (/usr/bin/aws), boto3, and raw requests signed by botocore's SigV4
signer.  Run test files with /usr/bin/python3 (Debian's, which has boto3).

Each check prints "PASS name" or "FAIL name: why"; done() exits non-zero
if any failed.
"""
import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get('FERRY_CONTROL_BIN', os.path.join(ROOT, 'build', 'bin', 'ferry-control'))
AWS = '/usr/bin/aws'
REGION = 'us-east-1'
MODEL_DIRS = ['/usr/lib/python3/dist-packages/awscli/botocore/data/mgn/2020-02-26',
              '/usr/lib/python3/dist-packages/botocore/data/mgn/2020-02-26']

sys.path.insert(0, os.path.join(ROOT, 'tests', 'lib'))
from checks import check, done  # noqa: E402,F401  (re-exported)


class AwsError(Exception):
    def __init__(self, code, message, stderr=''):
        super().__init__('%s: %s' % (code, message))
        self.code = code
        self.message = message
        self.stderr = stderr


# The operations MGN added after the model Debian ships (awscli 2.9.19):
# StopReplication, PauseReplication and ResumeReplication, all
# {sourceServerID} -> SourceServer as in MGN's API reference.  Added to a
# copy of Debian's model, loaded through AWS_DATA_PATH.
_EXTRA_OPS = ['StopReplication', 'PauseReplication', 'ResumeReplication']


def _write_model(dest):
    src = None
    for d in MODEL_DIRS:
        if os.path.exists(os.path.join(d, 'service-2.json')):
            src = d
            break
    if src is None:
        raise RuntimeError('no MGN model: install awscli and python3-boto3 (scripts/deps.sh control)')
    model = json.load(open(os.path.join(src, 'service-2.json')))
    for op in _EXTRA_OPS:
        if op in model['operations']:
            continue
        model['operations'][op] = {
            'name': op,
            'http': {'method': 'POST', 'requestUri': '/' + op, 'responseCode': 200},
            'input': {'shape': op + 'Request'},
            'output': {'shape': 'SourceServer'},
            'errors': [{'shape': s} for s in ['UninitializedAccountException',
                                               'ResourceNotFoundException',
                                               'ValidationException',
                                               'ServiceQuotaExceededException',
                                               'ConflictException']],
        }
        model['shapes'][op + 'Request'] = {
            'type': 'structure', 'required': ['sourceServerID'],
            'members': {'sourceServerID': {'shape': 'SourceServerID'}},
        }
    out = os.path.join(dest, 'mgn', '2020-02-26')
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'service-2.json'), 'w') as f:
        json.dump(model, f)
    for extra in ['paginators-1.json', 'endpoint-rule-set-1.json']:
        p = os.path.join(src, extra)
        if os.path.exists(p):
            shutil.copy(p, out)


class Control:
    """One ferry-control daemon on 127.0.0.1 with its own data dir."""

    def __init__(self, initialize=True, args=None, data_dir=None):
        self.tmp = tempfile.mkdtemp(prefix='ferry-control-test.')
        self.data_dir = data_dir or os.path.join(self.tmp, 'data')
        self.args = list(args or [])
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.tmp, 'control.log')
        self.models = os.path.join(self.tmp, 'models')
        _write_model(self.models)
        self.admin = self.keys_create('admin', 'admin')
        self.installer = self.keys_create('installer', 'installer')
        self.replicator = self.keys_create('replicator', 'replicator')
        self.start()
        if initialize:
            self.call('InitializeService', {}, expect=204)

    # -- process ---------------------------------------------------------
    def cli(self, *args, check_rc=True):
        r = subprocess.run([BIN] + list(args), capture_output=True, text=True)
        if check_rc and r.returncode != 0:
            raise RuntimeError('ferry-control %s: exit %d: %s' % (' '.join(args), r.returncode, r.stderr.strip()))
        return r

    def keys_create(self, name, role):
        r = self.cli('keys', 'create', '--data-dir', self.data_dir, '--name', name, '--role', role)
        return json.loads(r.stdout)['AccessKey']

    def start(self, port=None):
        port = port or self.port or 0
        log = open(self.log_path, 'a')
        self.proc = subprocess.Popen([BIN, 'serve', '--data-dir', self.data_dir,
                                      '--listen', '127.0.0.1:%d' % port, '--region', REGION] + self.args,
                                     stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('ferry-control exited with %d:\n%s' % (self.proc.returncode, self.log()))
            m = re.findall(r'ready on https://127\.0\.0\.1:(\d+)', self.log())
            if len(m) > getattr(self, '_starts', 0):
                self._starts = len(m)
                self.port = int(m[-1])
                self.url = 'https://127.0.0.1:%d' % self.port
                self.ca = os.path.join(self.data_dir, 'ca.pem')
                return
            time.sleep(0.05)
        raise RuntimeError('ferry-control did not start in 30 s:\n' + self.log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError('ferry-control did not stop on SIGTERM within 10 s')
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log(self):
        try:
            return open(self.log_path).read()
        except OSError:
            return ''

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            if exc[0] is not None:
                sys.stderr.write('--- ferry-control log ---\n' + self.log()[-4000:])
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- clients ---------------------------------------------------------
    def env(self, creds=None):
        creds = creds or self.admin
        e = dict(os.environ)
        for k in list(e):
            if k.startswith('AWS_'):
                del e[k]
        e.update({
            'AWS_ACCESS_KEY_ID': creds['AccessKeyId'],
            'AWS_SECRET_ACCESS_KEY': creds['SecretAccessKey'],
            'AWS_DEFAULT_REGION': REGION,
            'AWS_CONFIG_FILE': os.path.join(self.tmp, 'no-config'),
            'AWS_SHARED_CREDENTIALS_FILE': os.path.join(self.tmp, 'no-credentials'),
            'AWS_DATA_PATH': self.models,
            'AWS_PAGER': '',
            'AWS_EC2_METADATA_DISABLED': 'true',
        })
        if creds.get('SessionToken'):
            e['AWS_SESSION_TOKEN'] = creds['SessionToken']
        return e

    def aws(self, *args, creds=None):
        """Run Debian's aws CLI against this ferry-control."""
        cmd = [AWS] + list(args) + ['--endpoint-url', self.url, '--ca-bundle', self.ca,
                                    '--output', 'json', '--region', REGION]
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env(creds))
        if r.returncode != 0:
            m = re.search(r'An error occurred \(([^)]+)\)[^:]*: (.*)', r.stderr)
            if m:
                raise AwsError(m.group(1), m.group(2).strip(), r.stderr)
            raise AwsError('CliError', r.stderr.strip(), r.stderr)
        out = r.stdout.strip()
        return json.loads(out) if out else None

    def boto(self, creds=None):
        """A boto3 'mgn' client for this ferry-control."""
        import boto3
        import botocore.config
        creds = creds or self.admin
        os.environ['AWS_DATA_PATH'] = self.models
        s = boto3.session.Session(aws_access_key_id=creds['AccessKeyId'],
                                  aws_secret_access_key=creds['SecretAccessKey'],
                                  aws_session_token=creds.get('SessionToken'),
                                  region_name=REGION)
        return s.client('mgn', endpoint_url=self.url, verify=self.ca,
                        config=botocore.config.Config(retries={'max_attempts': 1}))

    def _ssl(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx

    def raw(self, method, path, headers=None, body=b''):
        """Send bytes as given (no signing) -> (status, headers, json)."""
        conn = http.client.HTTPSConnection('127.0.0.1', self.port, context=self._ssl(), timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = {'_raw': data.decode('latin-1')}
        return r.status, hdrs, parsed

    def sign(self, method, path, body=b'', creds=None, headers=None, when=None):
        """Headers of a request signed by botocore's SigV4Auth."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        import datetime
        from unittest import mock
        creds = creds or self.admin
        c = Credentials(creds['AccessKeyId'], creds['SecretAccessKey'], creds.get('SessionToken'))
        h = {'Content-Type': 'application/json'}
        h.update(headers or {})
        req = AWSRequest(method=method, url=self.url + path, data=body, headers=h)
        signer = SigV4Auth(c, 'mgn', REGION)
        if when is not None:
            with mock.patch('botocore.auth.datetime') as dt:
                dt.datetime.utcnow.return_value = when
                dt.datetime.now.return_value = when
                signer.add_auth(req)
        else:
            signer.add_auth(req)
        return dict(req.headers.items())

    def call(self, op, body=None, creds=None, method='POST', path=None, headers=None, expect=None):
        """A request signed with botocore's signer -> (status, headers, json).
        With expect=STATUS, raise if the status differs.  Each request
        carries a signed nonce header, so that two identical ones in the
        same second (or one identical to an aws CLI call: both sign the
        same headers) are not refused as a replay; replay tests sign with
        sign() and send with raw()."""
        path = path or '/' + op
        data = b'' if body is None and method != 'POST' else json.dumps(body if body is not None else {}).encode()
        headers = dict(headers or {})
        headers.setdefault('x-ferry-test-nonce', _next_nonce())
        h = self.sign(method, path, data, creds, headers)
        st, hdrs, parsed = self.raw(method, path, h, data)
        if expect is not None and st != expect:
            raise AwsError(hdrs.get('x-amzn-errortype', 'HTTP%d' % st),
                           '%s answered %d, expected %d: %s' % (op, st, expect, parsed))
        return st, hdrs, parsed

    # -- conveniences ----------------------------------------------------
    def register_agent(self, hostname='h1', machine_id=None, **facts):
        body = {
            'hostname': hostname,
            'fqdn': hostname + '.example.test',
            'machineId': machine_id or ('%032x' % (abs(hash(hostname)) % (1 << 128))),
            'agentVersion': '0.1.0',
            'cpus': [{'cores': 2, 'modelName': 'QEMU Virtual CPU'}],
            'ramBytes': 2 << 30,
            'os': {'fullString': 'Debian GNU/Linux 12 (bookworm)'},
            'networkInterfaces': [{'macAddress': '52:54:00:12:34:56', 'ips': ['10.0.2.15'], 'isPrimary': True}],
            'disks': [{'deviceName': '/dev/vda', 'bytes': 8 << 30}, {'deviceName': '/dev/vdb', 'bytes': 1 << 30}],
        }
        body.update(facts)
        st, _, r = self.call('RegisterAgentForMgn', body, creds=self.installer)
        if st != 200:
            raise AwsError('HTTP%d' % st, 'RegisterAgentForMgn: %s' % r)
        cr = r['credentials']
        return r['sourceServerID'], {'AccessKeyId': cr['accessKeyId'],
                                     'SecretAccessKey': cr['secretAccessKey'],
                                     'SessionToken': cr['sessionToken']}


def error_code(fn, *args, **kw):
    """Run fn; return the AWS error code it raised (or None)."""
    try:
        fn(*args, **kw)
    except AwsError as e:
        return e.code
    except Exception as e:  # botocore ClientError
        resp = getattr(e, 'response', None)
        if resp:
            return resp.get('Error', {}).get('Code')
        raise
    return None


# ferry-control's replay cache refuses a change request whose signature it
# has seen, and two identical requests signed in the same second carry the
# same one.  Tests that repeat requests keep them apart with a signed
# header that differs per request (as an SDK's invocation ID would, were
# it signed), or wait for the next second.
_nonce = [0]


def _next_nonce():
    _nonce[0] += 1
    return '%d-%d' % (os.getpid(), _nonce[0])


def next_second():
    """Wait until a repeated request gets a new signature."""
    time.sleep(1.05)


def unique(client):
    """CLIENT (boto3) with a per-request signed nonce header."""
    def add(request, **kw):
        request.headers['x-ferry-test-nonce'] = _next_nonce()
    client.meta.events.register('before-sign.mgn.*', add)
    return client


def call(c, op, body=None, **kw):
    """c.call() with a per-request signed nonce header."""
    kw.setdefault('headers', {})['x-ferry-test-nonce'] = _next_nonce()
    return c.call(op, body, **kw)
