"""installctl: the harness of scripts/install.sh's tests (tests/install/).

Runs the real scripts/install.sh as a subprocess, on this machine, as root,
with the overrides docs/install.md lists, so that nothing here touches the
machine's own /etc/ferry or /var/log:

  --config-out DIR/agent.conf       the configuration
  FERRY_INSTALL_LOG                 the log
  FERRY_INSTALL_MODULES_DIR/KERNEL  a kernel headers tree made here
  FERRY_INSTALL_OS_RELEASE          a fake /etc/os-release
  FERRY_INSTALL_TMP                 the directory checked as /tmp
  FERRY_INSTALL_DKMS_FRAMEWORK      DKMS's framework.conf (the MOK key)
  FERRY_INSTALL_SYSTEMD_DIR         /run/systemd/system (a directory made
                                    here: this machine runs no systemd)
  PATH                              a fake mokutil first (Secure Boot off
                                    unless a test says otherwise), or a
                                    PATH without some commands

Against a real ferry-control on loopback (tests/control/ferrytest.py) and a
real tinyproxy (tests/agent/agentctl.py).  Run with /usr/bin/python3.
"""
import os
import pty
import re
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'agent'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'control'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lib'))
import agentctl  # noqa: E402
import ferrytest  # noqa: E402
from checks import check, done  # noqa: E402,F401  (re-exported)

INSTALL = os.path.join(ROOT, 'scripts', 'install.sh')
KVER = '6.1.0-ferrytest-amd64'
REGION = ferrytest.REGION
PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin',
             '/sbin', '/bin']

OS_RELEASES = {
    'debian': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
              'VERSION_ID="12"\n',
    'ubuntu': 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nID_LIKE=debian\n'
              'VERSION_ID="22.04"\n',
    'rhel9': 'PRETTY_NAME="Red Hat Enterprise Linux 9.3 (Plow)"\nID="rhel"\n'
             'ID_LIKE="fedora"\nVERSION_ID="9.3"\n',
    'rocky8': 'PRETTY_NAME="Rocky Linux 8.9 (Green Obsidian)"\nID="rocky"\n'
              'ID_LIKE="rhel centos fedora"\nVERSION_ID="8.9"\n',
    'centos7': 'PRETTY_NAME="CentOS Linux 7 (Core)"\nID="centos"\n'
               'ID_LIKE="rhel fedora"\nVERSION_ID="7"\n',
    'amzn2': 'PRETTY_NAME="Amazon Linux 2"\nID="amzn"\nID_LIKE="centos rhel '
             'fedora"\nVERSION_ID="2"\n',
    'fedora': 'PRETTY_NAME="Fedora Linux 39"\nID=fedora\nVERSION_ID=39\n',
    'sles15': 'PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"\nID="sles"\n'
              'ID_LIKE="suse"\nVERSION_ID="15.5"\n',
    'leap': 'PRETTY_NAME="openSUSE Leap 15.5"\nID="opensuse-leap"\n'
            'ID_LIKE="suse opensuse"\nVERSION_ID="15.5"\n',
    'gentoo': 'PRETTY_NAME="Gentoo Linux"\nID=gentoo\n',
}

log = agentctl.log
wait_for = agentctl.wait_for
clean_env = agentctl.clean_env


def write(path, text, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def make_headers(modules, kver=KVER, uts=None, cc='gcc (Debian 12.2.0-14) 12.2.0'):
    """A kernel headers tree MODULES/KVER/build as install.sh looks at it:
    Makefile, .config (the compiler) and utsrelease.h (UTS, default KVER)."""
    b = os.path.join(modules, kver, 'build')
    write(os.path.join(b, 'Makefile'), '# fake kernel headers\n')
    write(os.path.join(b, '.config'),
          'CONFIG_CC_VERSION_TEXT="%s"\nCONFIG_CC_IS_GCC=y\n' % cc)
    write(os.path.join(b, 'include', 'generated', 'utsrelease.h'),
          '#define UTS_RELEASE "%s"\n' % (uts or kver))
    return b


class Env:
    """A work directory with the fakes install.sh is pointed at."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='ferry-install-test.')
        os.chmod(self.tmp, 0o755)  # readable by the non-root test
        self.modules = os.path.join(self.tmp, 'modules')
        make_headers(self.modules)
        self.fakebin = os.path.join(self.tmp, 'fakebin')
        self.mokutil('disabled')
        self.conf = os.path.join(self.tmp, 'etc', 'ferry', 'agent.conf')
        self.log_path = os.path.join(self.tmp, 'ferry-install.log')
        self.os_release = write(os.path.join(self.tmp, 'os-release'),
                                OS_RELEASES['debian'])
        self.framework = write(os.path.join(self.tmp, 'framework.conf'),
                               '# no mok_certificate\n')
        self.tmpdir = os.path.join(self.tmp, 'tmp')
        os.makedirs(self.tmpdir)
        os.chmod(self.tmpdir, 0o1777)
        self.systemd_dir = os.path.join(self.tmp, 'run-systemd-system')
        os.makedirs(self.systemd_dir)
        self.mounts = []
        self.cleanups = []

    def close(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep cleaning
                log('cleanup: %s' % e)
        for m in reversed(self.mounts):
            subprocess.run(['umount', m], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- fakes -------------------------------------------------------------
    def mokutil(self, sb, enrolled=None):
        """A mokutil that says Secure Boot is SB ('enabled', 'disabled')
        and answers --test-key with ENROLLED ('yes', 'no', 'pending')."""
        test = {'yes': 'echo "$2 is already enrolled"; exit 1',
                'no': 'echo "$2 is not enrolled"; exit 0',
                'pending': 'echo "$2 is already in the enrollment request"; exit 1',
                None: 'echo "unexpected --test-key" >&2; exit 2'}[enrolled]
        write(os.path.join(self.fakebin, 'mokutil'),
              '#!/bin/sh\ncase $1 in\n'
              '--sb-state) echo "SecureBoot %s" ;;\n'
              '--test-key) %s ;;\n'
              '*) echo "fake mokutil: $*" >&2; exit 2 ;;\nesac\n'
              % (sb, test), 0o755)

    def path_without(self, *names):
        """A PATH holding every command of the usual PATH but NAMES (and
        the fake mokutil)."""
        d = os.path.join(self.tmp, 'path-without-' + '-'.join(names))
        if os.path.isdir(d):
            return d + ':' + self.fakebin
        os.makedirs(d)
        for p in PATH_DIRS:
            if not os.path.isdir(p):
                continue
            for n in os.listdir(p):
                if n in names or os.path.lexists(os.path.join(d, n)):
                    continue
                full = os.path.join(p, n)
                if os.path.isfile(full) and os.access(full, os.X_OK):
                    os.symlink(full, os.path.join(d, n))
        return self.fakebin + ':' + d

    def os(self, name):
        write(self.os_release, OS_RELEASES[name])

    def tmpfs(self, name, opts):
        """A tmpfs mounted with OPTS (e.g. 'noexec', 'size=1m')."""
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', opts, 'ferry-test', d],
                       check=True, capture_output=True)
        self.mounts.append(d)
        return d

    # -- running install.sh ------------------------------------------------
    def env(self, **extra):
        e = clean_env()
        e.update({
            'PATH': self.fakebin + ':' + ':'.join(PATH_DIRS),
            'FERRY_INSTALL_LOG': self.log_path,
            'FERRY_INSTALL_MODULES_DIR': self.modules,
            'FERRY_INSTALL_KERNEL': KVER,
            'FERRY_INSTALL_OS_RELEASE': self.os_release,
            'FERRY_INSTALL_TMP': self.tmpdir,
            'FERRY_INSTALL_DKMS_FRAMEWORK': self.framework,
            'FERRY_INSTALL_SYSTEMD_DIR': self.systemd_dir,
        })
        for k, v in extra.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    def run(self, *args, env=None, conf=True, argv0=None, timeout=120):
        """install.sh ARGS (--config-out this env's conf unless CONF is
        False) -> Result."""
        argv = ['bash', argv0 or INSTALL] + list(args)
        if conf:
            argv += ['--config-out', self.conf if conf is True else conf]
        r = subprocess.run(argv, capture_output=True, text=True,
                           env=env or self.env(), timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return Result(r.returncode, r.stdout, r.stderr)

    def run_pty(self, args, answers, env=None, timeout=60):
        """install.sh on a terminal: ANSWERS is a list of (regex, reply);
        each reply is typed when its prompt shows.  -> Result (all the
        terminal's output in .out)."""
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve('/bin/bash', ['bash', INSTALL] + list(args),
                          env or self.env())
            finally:
                os._exit(127)
        out = b''
        pending = list(answers)
        pos = 0  # answered prompts are before this offset of the output
        end = time.time() + timeout
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child has gone
                    break
                if not chunk:
                    break
                out += chunk
            text = out.decode('utf-8', 'replace')
            if pending:
                m = re.search(pending[0][0], text[pos:])
                if m:
                    pos += m.end()
                    os.write(fd, (pending.pop(0)[1] + '\n').encode())
        else:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        rc = os.waitstatus_to_exitcode(status)
        return Result(rc, out.decode('utf-8', 'replace'), '', unanswered=pending)

    # -- what it left --------------------------------------------------------
    def conf_keys(self, path=None):
        """The configuration written: {key: value} (quotes removed)."""
        keys = {}
        for ln in open(path or self.conf):
            ln = ln.strip()
            if not ln or ln.startswith('#'):
                continue
            k, _, v = ln.partition('=')
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            keys[k.strip()] = v
        return keys

    def log_text(self):
        try:
            return open(self.log_path).read()
        except OSError:
            return ''


class Result:
    def __init__(self, rc, out, err, unanswered=()):
        self.rc = rc
        self.out = out
        self.err = err
        self.all = out + err
        self.unanswered = list(unanswered)

    def failed_lines(self):
        return [ln for ln in self.all.splitlines() if 'FAILED' in ln]

    def line(self, pattern):
        """The first line matching PATTERN and the lines of its fix."""
        lines = self.all.splitlines()
        for i, ln in enumerate(lines):
            if re.search(pattern, ln):
                block = [ln]
                for nxt in lines[i + 1:]:
                    if nxt.startswith('          ') and not nxt.startswith('  ok'):
                        block.append(nxt)
                    else:
                        break
                return '\n'.join(block)
        return ''

    def __str__(self):
        return 'exit %d\n%s' % (self.rc, self.all[-2500:])


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def key_args(k, region=REGION):
    """--region, --aws-access-key-id, --aws-secret-access-key of K."""
    return ['--region', region, '--aws-access-key-id', k['AccessKeyId'],
            '--aws-secret-access-key', k['SecretAccessKey']]


def control_args(ctl, creds=None):
    """The flags that reach CTL with CREDS (its installer key)."""
    return key_args(creds or ctl.installer) + ['--endpoint', ctl.url,
                                               '--ca-bundle', ctl.ca]
