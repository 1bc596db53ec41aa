"""t_checks: install.sh's checks of the machine, each failure with the
command that fixes it on the machine's distribution family.

Not root; missing and mismatched kernel headers; the compiler the kernel
was built with and make; DKMS; free space on / and in /tmp, memory; /tmp
mounted noexec (a real tmpfs: fine, said so); systemd not running (no
/run/systemd/system) or no systemctl; Secure Boot (a fake mokutil: the DKMS MOK
key missing, not enrolled, pending, enrolled); the disks (a real loop
device); an agent already installed; curl.  The fix hints follow a fake
/etc/os-release: Debian, Ubuntu, RHEL 9, Rocky 8, CentOS 7, Amazon Linux 2,
Fedora, SLES 15, openSUSE Leap, and an unknown distribution.  Every
failure leaves nothing written; --check-only does not even log.

The endpoint here is a closed port: its check fails, and the tests look at
the other checks' lines (tests/install/t_endpoint.py has the call itself).
"""
import os
import shutil
import subprocess

from installctl import (Env, KVER, check, done, make_headers, write)
import agentctl

KEY = 'AKIAFERRYTESTKEY0001'
SECRET = 'sEcReT/ferry+test/0123456789abcdefghijkl'


def base(port):
    return ['--no-prompt', '--region', 'us-east-1', '--aws-access-key-id',
            KEY, '--aws-secret-access-key', SECRET,
            '--endpoint', 'https://127.0.0.1:%d' % port]


def has(r, pattern, *fix):
    """R has a line matching PATTERN whose block holds every FIX text."""
    block = r.line(pattern)
    return bool(block) and all(f in block for f in fix)


def main():
    port = agentctl.free_port()  # nothing listens there
    args = base(port)
    with Env() as e:
        # -- the baseline: everything but the endpoint is fine -------------
        r = e.run(*args)
        fails = r.failed_lines()
        check('the fake machine passes every check but the (closed) '
              'endpoint', r.rc == 1 and len(fails) == 1
              and 'cannot connect to https://127.0.0.1:%d' % port in fails[0],
              r)
        for what in ('ok      running as root',
                     'ok      kernel headers for %s' % KVER,
                     'ok      compiler (gcc) and make', 'ok      DKMS',
                     'MiB free on /', 'MiB free in %s' % e.tmpdir,
                     'MiB of memory available',
                     'ok      %s exists' % e.tmpdir,
                     'ok      systemd runs the services',
                     'ok      Secure Boot: disabled',
                     'ok      no agent installed yet'):
            check('baseline: "%s"' % what.replace('ok      ', ''),
                  what in r.out, r)
        check('a failed check: exit 1, "nothing was changed", no '
              'configuration written',
              r.rc == 1 and '1 check(s) failed: nothing was changed' in r.out
              and not os.path.exists(e.conf), r)
        check('the checks are logged (the log is 0600)',
              'FAILED  cannot connect' in e.log_text()
              and oct(os.stat(e.log_path).st_mode & 0o777) == '0o600',
              e.log_text()[-800:])
        os.unlink(e.log_path)
        r = e.run(*args, '--check-only')
        check('--check-only: the same checks, no log, no configuration',
              r.rc == 1 and 'FAILED  cannot connect' in r.out
              and not os.path.exists(e.log_path)
              and not os.path.exists(e.conf), r)

        # -- root ------------------------------------------------------------
        nobody = subprocess.run(
            ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
             'bash', os.path.join(agentctl.ROOT, 'scripts', 'install.sh')]
            + args + ['--check-only', '--config-out',
                      os.path.join(e.tmp, 'nobody.conf')],
            capture_output=True, text=True, env=e.env(),
            stdin=subprocess.DEVNULL)
        check('not root: FAILED, with how to run it as root',
              nobody.returncode == 1
              and 'FAILED  not running as root (uid 65534)' in nobody.stdout
              and 'sudo bash' in nobody.stdout, nobody.stdout + nobody.stderr)

        # -- kernel headers ----------------------------------------------------
        env = e.env(FERRY_INSTALL_KERNEL='9.9.9-nohdr-amd64')
        r = e.run(*args, env=env)
        check('headers missing: FAILED with the apt command for the '
              'running kernel',
              has(r, 'FAILED  no headers for the running kernel '
                     '9.9.9-nohdr-amd64',
                  'apt-get update && apt-get install -y '
                  'linux-headers-9.9.9-nohdr-amd64'), r)
        make_headers(e.modules, '6.1.0-other-amd64', uts='6.1.0-different')
        r = e.run(*args, env=e.env(FERRY_INSTALL_KERNEL='6.1.0-other-amd64'))
        check('headers of another kernel: FAILED, the two versions named',
              has(r, 'are for kernel 6.1.0-different, not the running '
                     'kernel 6.1.0-other-amd64',
                  'linux-headers-6.1.0-other-amd64', 'reboot into kernel'), r)
        # A Debian release form: the headers that follow kernel upgrades
        # are named (linux-headers-cloud-amd64 is not installed here).
        make_headers(e.modules, '6.1.0-99-cloud-amd64')
        r = e.run(*args, env=e.env(FERRY_INSTALL_KERNEL='6.1.0-99-cloud-amd64'))
        check('headers present, not those of the next kernel: a note '
              'naming linux-headers-cloud-amd64',
              'ok      kernel headers for 6.1.0-99-cloud-amd64' in r.all and
              has(r, r'note    linux-headers-cloud-amd64 is not installed',
                  'apt-get install -y linux-headers-cloud-amd64'), r)
        r = e.run(*args, env=e.env(
            FERRY_INSTALL_KERNEL='6.12.57+deb13-cloud-amd64'))
        check('headers missing, trixie form: the fix installs them and '
              'those that follow upgrades',
              has(r, r'FAILED  no headers for the running kernel '
                     r'6\.12\.57\+deb13-cloud-amd64',
                  'apt-get update && apt-get install -y '
                  'linux-headers-6.12.57+deb13-cloud-amd64 '
                  'linux-headers-cloud-amd64'), r)
        os.unlink(os.path.join(e.modules, '6.1.0-other-amd64', 'build',
                               'include', 'generated', 'utsrelease.h'))
        r = e.run(*args, env=e.env(FERRY_INSTALL_KERNEL='6.1.0-other-amd64'))
        check('incomplete headers: FAILED, reinstall them',
              has(r, 'are incomplete', 'reinstall them'), r)

        # -- the distribution families: headers and DKMS ------------------
        nodkms = e.path_without('dkms')
        cases = [
            ('debian', '9.9.9-test',
             'apt-get update && apt-get install -y linux-headers-9.9.9-test',
             'apt-get update && apt-get install -y dkms'),
            ('ubuntu', '9.9.9-test',
             'apt-get update && apt-get install -y linux-headers-9.9.9-test',
             'apt-get update && apt-get install -y dkms'),
            ('rhel9', '9.9.9-test.el9.x86_64',
             'dnf install -y kernel-devel-9.9.9-test.el9.x86_64',
             'dnf install -y https://dl.fedoraproject.org/pub/epel/'
             'epel-release-latest-9.noarch.rpm && dnf install -y dkms'),
            ('rocky8', '9.9.9-test.el8.x86_64',
             'dnf install -y kernel-devel-9.9.9-test.el8.x86_64',
             'dnf install -y epel-release && dnf install -y dkms'),
            ('centos7', '9.9.9-test.el7.x86_64',
             'yum install -y kernel-devel-9.9.9-test.el7.x86_64',
             'yum install -y epel-release && yum install -y dkms'),
            ('amzn2', '9.9.9-test.amzn2.x86_64',
             'yum install -y kernel-devel-9.9.9-test.amzn2.x86_64',
             'amazon-linux-extras install -y epel && yum install -y dkms'),
            ('fedora', '9.9.9-test.fc39.x86_64',
             'dnf install -y kernel-devel-9.9.9-test.fc39.x86_64',
             'dnf install -y dkms'),
            ('sles15', '5.14.21-150500.55.39-default',
             'zypper install -y kernel-default-devel',
             'SUSEConnect -p PackageHub/15.5/'),
            ('leap', '5.14.21-150500.55.39-azure',
             'zypper install -y kernel-azure-devel',
             'zypper install -y dkms'),
            ('gentoo', '9.9.9-test',
             "install linux-headers-9.9.9-test with this distribution's "
             "package manager (apt: linux-headers-9.9.9-test, dnf/yum: "
             "kernel-devel-9.9.9-test, zypper: kernel-default-devel)",
             "install dkms with this distribution's package manager"),
        ]
        for name, kver, hfix, dfix in cases:
            e.os(name)
            r = e.run(*args, env=e.env(FERRY_INSTALL_KERNEL=kver,
                                        PATH=nodkms))
            check('%s: the headers fix is "%s"' % (name, hfix),
                  has(r, 'FAILED  no headers for the running kernel ' + kver,
                      'fix: ' + hfix), r.line('no headers') or r)
            check('%s: the DKMS fix is "%s"' % (name, dfix),
                  has(r, 'FAILED  DKMS is not installed', 'fix: ' + dfix),
                  r.line('DKMS') or r)
        e.os('debian')

        # -- the compiler the kernel was built with, and make -------------
        make_headers(e.modules, '6.1.0-cc-amd64',
                     cc='gcc-12 (Debian 12.2.0-14) 12.2.0')
        env = e.env(FERRY_INSTALL_KERNEL='6.1.0-cc-amd64',
                    PATH=e.path_without('gcc-12'))
        r = e.run(*args, env=env)
        check('the kernel\'s compiler (gcc-12) missing: FAILED, named, '
              'with apt-get install gcc-12',
              has(r, 'FAILED  missing gcc-12: the module is built on this '
                     'machine \\(the kernel was built with gcc-12',
                  'apt-get update && apt-get install -y gcc-12 make'), r)
        env['PATH'] = e.path_without('gcc-12', 'make')
        e.os('amzn2')
        r = e.run(*args, env=env)
        check('Amazon Linux 2, no compiler and no make: yum, and the '
              'Development Tools group of the seed document',
              has(r, 'FAILED  missing gcc-12, make',
                  'yum install -y gcc make',
                  'yum groupinstall -y "Development Tools"'), r)
        e.os('debian')
        r = e.run(*args, env=e.env(FERRY_INSTALL_KERNEL='6.1.0-cc-amd64'))
        check('the kernel\'s compiler (gcc-12) present: ok',
              'ok      compiler (gcc-12) and make' in r.out
              or not os.path.exists('/usr/bin/gcc-12'), r)

        # -- space, memory, /tmp ----------------------------------------------
        small = e.tmpfs('small', 'size=1m')
        r = e.run(*args, env=e.env(FERRY_INSTALL_TMP=small))
        check('a 1 MiB /tmp: FAILED, the space named',
              has(r, 'FAILED  only [01] MiB free in %s: the installation '
                     'needs 100 MiB' % small, 'fix: free space in'), r)
        r = e.run(*args, env=e.env(FERRY_INSTALL_MIN_ROOT_MB='100000000',
                                   FERRY_INSTALL_MIN_MEM_MB='100000000'))
        check('too little space on /: FAILED with the cleaning command',
              has(r, 'FAILED  only [0-9]+ MiB free on /: the installation '
                     'needs 100000000 MiB', 'apt-get clean'), r)
        check('too little memory: FAILED', has(
            r, 'FAILED  only [0-9]+ MiB of memory available'), r)

        # noexec is no failure (hardened servers): nothing of the
        # installation runs from /tmp (t_guest installs with it so).
        noexec = e.tmpfs('noexec', 'noexec,mode=1777')
        r = e.run(*args, env=e.env(FERRY_INSTALL_TMP=noexec))
        check('/tmp mounted noexec (a real tmpfs): ok, said to be fine; '
              'only the (closed) endpoint fails',
              'ok      %s is mounted noexec (on %s): fine, nothing of the '
              'installation runs from it' % (noexec, noexec) in r.out
              and len(r.failed_lines()) == 1
              and 'cannot connect' in r.failed_lines()[0], r)
        sub = os.path.join(noexec, 'sub', 'dir')
        os.makedirs(sub)
        r = e.run(*args, env=e.env(FERRY_INSTALL_TMP=sub))
        check('a directory below a noexec mount: ok, the mount named',
              'ok      %s is mounted noexec (on %s)' % (sub, noexec)
              in r.out and len(r.failed_lines()) == 1, r)
        execfs = e.tmpfs('exec', 'exec,mode=1777')
        r = e.run(*args, env=e.env(FERRY_INSTALL_TMP=execfs))
        check('a tmpfs mounted exec: ok',
              'ok      %s exists' % execfs in r.out, r)
        r = e.run(*args, env=e.env(
            FERRY_INSTALL_TMP=os.path.join(e.tmp, 'no-such-tmp')))
        check('no /tmp: FAILED, with mkdir -m 1777',
              has(r, 'FAILED  %s does not exist'
                  % os.path.join(e.tmp, 'no-such-tmp'), 'fix: mkdir -m 1777'),
              r)

        # -- systemd ---------------------------------------------------------
        gone = os.path.join(e.tmp, 'no-systemd')
        r = e.run(*args, '--check-only',
                  env=e.env(FERRY_INSTALL_SYSTEMD_DIR=gone))
        check('systemd not running (no /run/systemd/system): FAILED in '
              '--check-only already, PID 1 named, with what to do',
              r.rc == 1 and has(r, 'FAILED  systemd is not running on this '
                                'machine \\(%s is missing; PID 1 is ' % gone,
                                'ferry-agent runs as a systemd service',
                                'booted with systemd'), r)
        r = e.run(*args, env=e.env(PATH=e.path_without('systemctl')))
        check('systemd running but no systemctl: FAILED, install systemd',
              has(r, 'FAILED  systemctl is missing',
                  'apt-get update && apt-get install -y systemd'), r)

        # -- Secure Boot -------------------------------------------------
        cert = os.path.join(e.tmp, 'dkms', 'mok.pub')
        write(e.framework, '# DKMS framework\nmok_signing_key="%s"\n'
              'mok_certificate="%s"\n' % (cert[:-4] + '.key', cert))
        e.mokutil('enabled')
        r = e.run(*args)
        check('Secure Boot on, no DKMS key yet: FAILED, how to make it and '
              'enroll it',
              has(r, 'FAILED  Secure Boot is enabled: the kernel loads only '
                     'signed modules',
                  'openssl req -new -x509', '-out %s' % cert,
                  'mokutil --import %s' % cert, 'Enroll MOK', 'reboot'), r)
        e.os('ubuntu')
        write(e.framework, '# Ubuntu: no mok_certificate\n')
        r = e.run(*args)
        check('Ubuntu, Secure Boot on, no key: update-secureboot-policy '
              'and shim-signed\'s MOK',
              has(r, 'FAILED  Secure Boot is enabled',
                  'update-secureboot-policy --new-key',
                  'mokutil --import /var/lib/shim-signed/mok/MOK.der'), r)
        e.os('debian')
        write(e.framework, 'mok_certificate=%s\n' % cert)
        write(cert, 'not really DER\n')
        e.mokutil('enabled', enrolled='no')
        r = e.run(*args)
        check('Secure Boot on, the key not enrolled: FAILED, mokutil '
              '--import it',
              has(r, 'FAILED  Secure Boot is enabled and DKMS\'s signing key '
                     '%s is not enrolled' % cert,
                  'mokutil --import %s' % cert), r)
        e.mokutil('enabled', enrolled='pending')
        r = e.run(*args)
        check('Secure Boot on, the key waiting for enrollment: FAILED, '
              'reboot', has(r, 'waits for its enrollment', 'reboot'), r)
        e.mokutil('enabled', enrolled='yes')
        r = e.run(*args)
        check('Secure Boot on, the key enrolled: ok',
              'ok      Secure Boot: enabled; DKMS signs the module with %s, '
              'which is enrolled' % cert in r.out, r)
        e.mokutil('disabled')

        # -- the disks ------------------------------------------------------
        lp = agentctl.Loop(e.tmp, 'disk')
        e.cleanups.append(lp.close)
        r = e.run(*args, '--devices', lp.dev)
        check('--devices naming a loop device: FAILED, not a disk, with '
              '--force-volumes as the way',
              has(r, 'FAILED  --devices: not a disk or a partition: %s '
                     '\\(loop\\)' % lp.dev,
                  '--force-volumes --no-prompt --devices %s' % lp.dev), r)
        r = e.run(*args, '--devices', lp.dev, '--force-volumes')
        check('--force-volumes --no-prompt --devices LOOP: ok, exactly',
              'ok      devices (exactly, --force-volumes): %s' % lp.dev
              in r.out, r)
        r = e.run(*args, '--devices', '/dev/nonexistent-disk,' + lp.dev,
                  '--force-volumes')
        check('--devices naming no block device: FAILED, named',
              has(r, 'FAILED  --devices: /dev/nonexistent-disk is not a '
                     'block device'), r)

        # -- an agent installed already ----------------------------------------
        write(e.conf, 'endpoint = https://old.example.test\n', 0o600)
        r = e.run(*args)
        check('an agent installed (its agent.conf): FAILED, '
              '--force-delete-existing named',
              has(r, 'FAILED  an agent is already installed here: %s exists'
                  % e.conf, '--force-delete-existing'), r)
        check('... and its configuration untouched',
              open(e.conf).read() == 'endpoint = https://old.example.test\n')
        r = e.run(*args, '--force-delete-existing')
        check('with --force-delete-existing: ok',
              'ok      an agent is installed (%s exists): '
              '--force-delete-existing replaces it' % e.conf in r.out, r)
        shutil.rmtree(os.path.join(e.tmp, 'etc'))

        # -- curl --------------------------------------------------------------
        r = e.run(*args, env=e.env(PATH=e.path_without('curl')))
        check('no curl: FAILED, apt-get install curl',
              has(r, 'FAILED  curl is missing',
                  'apt-get update && apt-get install -y curl'), r)

        # -- everything at once ------------------------------------------------
        env = e.env(FERRY_INSTALL_KERNEL='9.9.9-none', FERRY_INSTALL_TMP=noexec,
                    PATH=e.path_without('dkms', 'curl'))
        r = e.run(*args, env=env)
        n = len(r.failed_lines())
        check('several failures: each reported (not only the first), '
              'exit 1, nothing written',
              r.rc == 1 and n == 3 and '%d check(s) failed' % n in r.out
              and not os.path.exists(e.conf)
              and not os.path.exists(os.path.dirname(e.conf)), r)
    done()


main()
