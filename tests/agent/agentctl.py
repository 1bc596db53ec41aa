"""agentctl: the harness of the agent's control-plane tests
(tests/agent/t_control_*.py).

A real ferry-control on loopback (tests/control/ferrytest.py), and the
agent's control side run either as the product, build/bin/ferry-agent, or
as build/tests/agent/ferry-control-test, which runs the same control code
with the test in the replication thread's place (it takes status lines on
stdin and prints the commands it is given).  Also a real tinyproxy on
loopback, and loop devices.

ferry-agent here always gets a tracker-ctl that does not exist and loop
devices for disks: its replication thread must never attach to this
machine's own disks.  Run with /usr/bin/python3.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'control'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lib'))
import ferrytest  # noqa: E402
from checks import check, done  # noqa: E402,F401  (re-exported)

BUILD = os.environ.get('BUILD', os.path.join(ROOT, 'build'))
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
AGENT = os.path.join(BUILD, 'bin', 'ferry-agent')
FERRYCTL = os.path.join(BUILD, 'bin', 'ferryctl')
HARNESS = os.environ.get('FERRY_CONTROL_TEST_BIN', os.path.join(
    BUILD, 'tests', 'agent', 'ferry-control-test'))
NO_TRACKER = '/nonexistent/ferry-ctl'


def log(msg):
    print('    %s' % msg, flush=True)


def wait_for(what, fn, limit=60, step=0.25):
    """Poll FN until it returns a true value (returned) or LIMIT seconds
    pass (None).  A deadline only bounds a hang: no assertion is about
    how fast anything is."""
    end = time.time() + limit
    while True:
        v = fn()
        if v:
            return v
        if time.time() > end:
            log('gave up waiting for %s after %d s' % (what, limit))
            return None
        time.sleep(step)


def clean_env(**extra):
    """The environment without proxies or AWS settings, plus EXTRA."""
    e = {k: v for k, v in os.environ.items()
         if k.lower() not in ('https_proxy', 'http_proxy', 'all_proxy',
                              'no_proxy') and not k.startswith('AWS_')}
    e.update(extra)
    return e


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mode(path):
    return os.stat(path).st_mode & 0o7777


class Loop:
    """A loop device over a sparse file; PARTS: partitions to make."""

    def __init__(self, tmp, name, size=64 << 20, parts=0):
        self.img = os.path.join(tmp, name + '.img')
        with open(self.img, 'wb') as f:
            f.truncate(size)
        self.dev = subprocess.run(
            ['losetup', '--find', '--show', '--partscan', self.img],
            check=True, capture_output=True, text=True).stdout.strip()
        self.size = size
        if parts:
            step = (size // 512 - 2048) // parts
            table = ''.join('%d,%d,L\n' % (2048 + i * step, step)
                            for i in range(parts))
            subprocess.run(['sfdisk', '-q', self.dev], input=table,
                           text=True, check=True, capture_output=True)
            subprocess.run(['partx', '-u', self.dev], capture_output=True)
            wait_for('partitions of ' + self.dev,
                     lambda: all(os.path.exists('%sp%d' % (self.dev, i + 1))
                                 for i in range(parts)), limit=10)

    def close(self):
        subprocess.run(['losetup', '-d', self.dev], capture_output=True)


class Proxy:
    """tinyproxy on 127.0.0.1, logging every connection; with AUTH
    (user, password), it wants them (BasicAuth), and url_auth has them."""

    def __init__(self, tmp, auth=None):
        self.port = free_port()
        self.log_path = os.path.join(tmp, 'tinyproxy-%d.log' % self.port)
        self.conf = os.path.join(tmp, 'tinyproxy-%d.conf' % self.port)
        with open(self.conf, 'w') as f:
            f.write('Port %d\nListen 127.0.0.1\nTimeout 120\n'
                    'LogFile "%s"\nLogLevel Info\nMaxClients 50\n'
                    'Allow 127.0.0.1\n' % (self.port, self.log_path))
            if auth:
                f.write('BasicAuth %s %s\n' % auth)
        self.url = 'http://127.0.0.1:%d' % self.port
        self.url_auth = ('http://%s:%s@127.0.0.1:%d' % (auth + (self.port,))
                         if auth else self.url)
        self.proc = None
        self.start()

    def start(self):
        """Start (again) with an empty log."""
        open(self.log_path, 'w').close()
        self.proc = subprocess.Popen(['tinyproxy', '-d', '-c', self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        ok = wait_for('tinyproxy', lambda: 'Accepting connections' in
                      self.log(), limit=20)
        if not ok:
            raise RuntimeError('tinyproxy did not start: ' + self.log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def log(self):
        try:
            return open(self.log_path).read()
        except OSError:
            return ''

    def connects(self, port):
        """CONNECT requests through the proxy to 127.0.0.1:PORT."""
        return len(re.findall(r'CONNECT 127\.0\.0\.1:%d ' % port,
                              self.log()))


class Setup:
    """One ferry-control, a work directory, and agents against it."""

    def __init__(self, control_args=None):
        self.ctl = ferrytest.Control(args=['--agent-timeout', '4'] +
                                     list(control_args or []))
        self.tmp = tempfile.mkdtemp(prefix='ferry-agent-test.')
        self.cleanups = []

    def close(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep cleaning
                log('cleanup: %s' % e)
        self.ctl.stop()
        shutil.rmtree(self.ctl.tmp, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write('--- ferry-control log ---\n' +
                             self.ctl.log()[-3000:])
        self.close()

    def loop(self, name, size=64 << 20, parts=0):
        lp = Loop(self.tmp, name, size, parts)
        self.cleanups.append(lp.close)
        return lp

    def proxy(self, auth=None):
        p = Proxy(self.tmp, auth)
        self.cleanups.append(p.stop)
        return p

    def write_conf(self, name, keys=None, installer=True, mode_=0o600,
                   **settings):
        """An agent.conf in a directory of its own: endpoint, CA bundle,
        state-dir DIR/state, the installer key (or KEYS), SETTINGS."""
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, 'agent.conf')
        lines = ['# ferry-agent test configuration',
                 'endpoint = %s' % self.ctl.url,
                 'region = %s' % ferrytest.REGION,
                 'ca-bundle = %s' % self.ctl.ca,
                 'state-dir = %s' % os.path.join(d, 'state')]
        k = keys if keys is not None else (self.ctl.installer if installer
                                           else None)
        if k:
            lines += ['access-key-id = %s' % k['AccessKeyId'],
                      'secret-access-key = %s' % k['SecretAccessKey']]
        for key, v in settings.items():
            key = key.replace('_', '-')
            if v is None:
                lines = [ln for ln in lines
                         if not ln.startswith(key + ' =')]
            else:
                lines = [ln for ln in lines
                         if not ln.startswith(key + ' =')]
                lines.append('%s = %s' % (key, v))
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        os.chmod(path, mode_)
        return path

    def agent(self, conf, *args, env=None):
        a = Agent(self, [AGENT, '--config', conf,
                         '--tracker-ctl', NO_TRACKER] + list(args), conf,
                  env)
        self.cleanups.append(a.kill)
        return a

    def harness(self, conf, *args, env=None):
        h = Harness(self, [HARNESS, '--config', conf] + list(args), conf,
                    env)
        self.cleanups.append(h.kill)
        return h

    def run_agent(self, conf, *args, env=None, timeout=60):
        """ferry-agent expected to exit (an error): the CompletedProcess."""
        return subprocess.run([AGENT, '--config', conf, '--tracker-ctl',
                               NO_TRACKER] + list(args),
                              capture_output=True, text=True,
                              env=env or clean_env(), timeout=timeout)

    # -- ferry-control's view ------------------------------------------
    def servers(self):
        return self.ctl.aws('mgn', 'describe-source-servers', '--filters',
                            '{}').get('items', [])

    def server(self, sid):
        for s in self.servers():
            if s['sourceServerID'] == sid:
                return s
        return None


class Process:
    def __init__(self, setup, argv, conf, env, stdin=None):
        self.setup = setup
        self.conf = conf
        self.dir = os.path.dirname(conf)
        self.state = os.path.join(self.dir, 'state')
        self.log_path = os.path.join(self.dir, 'agent-%d.log' % id(self))
        self.out_path = self.log_path + '.out'
        self.proc = subprocess.Popen(argv, stdin=stdin,
                                     stdout=open(self.out_path, 'w'),
                                     stderr=open(self.log_path, 'w'),
                                     env=env or clean_env())

    def log(self):
        try:
            return open(self.log_path).read()
        except OSError:
            return ''

    def out(self):
        try:
            return open(self.out_path).read()
        except OSError:
            return ''

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def term(self, limit=30):
        """SIGTERM; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(limit)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def registration(self):
        try:
            return json.load(open(os.path.join(self.state,
                                               'registration.json')))
        except (OSError, ValueError):
            return None

    def status(self):
        try:
            return json.load(open(os.path.join(self.state, 'status.json')))
        except (OSError, ValueError):
            return None

    def creds(self):
        c = self.registration()['credentials']
        return {'AccessKeyId': c['accessKeyId'],
                'SecretAccessKey': c['secretAccessKey'],
                'SessionToken': c['sessionToken']}

    def wait_registered(self, limit=60):
        """The source server ID once registration.json exists."""
        r = wait_for('registration', lambda: self.registration() or
                     not self.alive(), limit)
        reg = self.registration()
        return reg['sourceServerID'] if reg else None


class Agent(Process):
    def __init__(self, setup, argv, conf, env):
        super().__init__(setup, argv, conf, env, stdin=subprocess.DEVNULL)


class Harness(Process):
    def __init__(self, setup, argv, conf, env):
        super().__init__(setup, argv, conf, env, stdin=subprocess.PIPE)
        self.sid = None

    def wait_ready(self, limit=60):
        m = wait_for('ready', lambda: re.search(r'^ready (\S+)$', self.out(),
                                                re.M) or not self.alive(),
                     limit)
        if m and m is not True and hasattr(m, 'group'):
            self.sid = m.group(1)
        return self.sid

    def send(self, line):
        n = self.out().count('ok status')
        self.proc.stdin.write((line + '\n').encode())
        self.proc.stdin.flush()
        return wait_for('status taken', lambda: self.out().count(
            'ok status') > n, limit=10)

    def set_status(self, state, disks=(), lag_ms=0, eta=-1, error='',
                   raw=''):
        return self.send(json.dumps({
            'state': state, 'lagMs': lag_ms, 'etaSeconds': eta,
            'error': error, 'rawError': raw, 'disks': list(disks)}))

    def quit(self, limit=30):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'quit\n')
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(limit)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def commands(self):
        return re.findall(r'^cmd (\S+)$', self.out(), re.M)

    def runtimes(self):
        return re.findall(r'^runtime (.*)$', self.out(), re.M)
