# ferry-timeout: 2400 (tests/lib/run-py-tests.sh)
"""t_guest: install.sh and uninstall.sh on a real Debian bookworm server.

A QEMU guest of Debian's bookworm image (scripts/vm/debian-image.sh:
systemd, apt, DKMS, the headers of its kernel) with a data disk, driven
over SSH; on the host, ferry-control and ferry-replicator on loopback
(tests/vm/agent_stack.py), which the guest reaches at 10.0.2.2.

  * the failures an administrator meets first each fail with their
    message and change nothing: --no-prompt without keys, a wrong
    secret, an unreachable endpoint, the kernel headers missing, an
    --s3-endpoint that does not have the packages;
  * install.sh alone (as downloaded) with --no-prompt and the keys as
    flags, /tmp mounted noexec (as on hardened servers): the packages
    come from ferry-control's installation assets, checked against their
    SHA-512; DKMS builds and loads ferry.ko; the ferry-agent service runs;
    the CA bundle is copied to /etc/ferry/ca.pem; the agent registers
    (`aws mgn describe-source-servers` on the host lists it) and
    replication of the guest's disks starts;
  * `apt-get install --reinstall ./ferry-agent_*.deb` restarts the agent
    (a new process, active);
  * --force-delete-existing with a ferry-dkms whose module does not
    compile stops at the trial build, before anything changes: the agent
    still runs, the same process;
  * --force-delete-existing failing after the old agent was removed
    (injected after the configuration step; --ca-bundle /etc/ferry/ca.pem,
    which the removal deletes) says that the agent was removed and that
    the server is still registered, with what to do;
  * install.sh again, the agent's first start failing once (a drop-in:
    systemd restarts it 5 s later): the installer waits, the agent
    registers as the same source server;
  * a failure injected at the last step (FERRY_INSTALL_FAIL_AFTER) rolls
    back every step: packages, module, service, configuration;
  * uninstall.sh disconnects the server (ferry-control shows it
    DISCONNECTED), and afterwards nothing of ferry is left: the guest's
    file list and package list are those of before the install (the
    system's own churn aside: logs, apt's and systemd's state);
  * the guest's kernel log has no splat.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'vm'))
from installctl import check, done, log, wait_for  # noqa: E402
import agent_stack  # noqa: E402
from debian_guest import Guest  # noqa: E402

BUILD = os.environ.get('BUILD', os.path.join(ROOT, 'build'))
DEBS = os.path.join(BUILD, 'pkg', 'deb')
# ferry-control, the replicator, agent_stack's service; FERRY_TEST_GUEST_PORT
# moves them (two checkouts testing on one machine).
BASE = int(os.environ.get('FERRY_TEST_GUEST_PORT', '18900'))
HOST = agent_stack.GUEST_HOST

# The file list of the guest: everything on its root filesystem but what
# the system changes by itself while it runs (logs, caches, apt's and
# systemd's state, the daily copies dpkg-db-backup.timer rotates in
# /var/backups; the packages are compared through dpkg-query), and
# DKMS's own signing key, which DKMS makes at its first build for every
# module to come and which is not ferry's to remove.
LIST = r'''find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run \
 -o -path /tmp -o -path /var/tmp -o -path /var/log -o -path /var/cache \
 -o -path /var/backups \
 -o -path /var/lib/apt -o -path /var/lib/systemd -o -path /var/lib/dhcp \
 -o -path /var/lib/private -o -path /root/install -o -path /root/before \
 -o -path /data -o -path /lost+found -o -path '/var/lib/dkms/mok.*' \) \
 -prune -o -print | sort
dpkg-query -W -f '${Package} ${Version} ${Status}\n' | sed 's/^/PKG /' | sort'''


def install_cmd(stack, secret=None, endpoint=None, extra='',
                ca='/root/install/ca.pem'):
    inst = stack.ctl.installer
    return ('cd /root/install && bash install.sh --no-prompt '
            '--region %s --aws-access-key-id %s --aws-secret-access-key %s '
            '--endpoint %s --ca-bundle %s %s'
            % (agent_stack.ferrytest.REGION, inst['AccessKeyId'],
               secret or inst['SecretAccessKey'],
               endpoint or 'https://%s:%d' % (HOST, BASE), ca, extra))


def broken_dkms(tmp):
    """A directory of packages (with SHA512SUMS) whose ferry-dkms holds a
    module that does not compile: an #error at the end of ferry_main.c,
    reached once the feature probes have run."""
    out = os.path.join(tmp, 'broken')
    tree = os.path.join(tmp, 'broken-tree')
    os.makedirs(out)
    dkms = glob.glob(os.path.join(DEBS, 'ferry-dkms_*.deb'))[0]
    agent = glob.glob(os.path.join(DEBS, 'ferry-agent_*.deb'))[0]
    subprocess.run(['dpkg-deb', '-R', dkms, tree], check=True)
    main_c = glob.glob(os.path.join(tree, 'usr', 'src', 'ferry-*',
                                    'ferry_main.c'))[0]
    with open(main_c, 'a') as f:
        f.write('\n#error ferry-trial-test-error\n')
    subprocess.run(['dpkg-deb', '-b', tree,
                    os.path.join(out, os.path.basename(dkms))],
                   check=True, capture_output=True)
    shutil.copy(agent, out)
    sums = subprocess.run(['sha512sum', os.path.basename(dkms),
                           os.path.basename(agent)], cwd=out, check=True,
                          capture_output=True, text=True).stdout
    with open(os.path.join(out, 'SHA512SUMS'), 'w') as f:
        f.write(sums)
    return out


def indent(text):
    """TEXT logged as a block: no line of it starts like a result line."""
    return '\n'.join('      ' + ln for ln in text.splitlines())


def service(g):
    """(ActiveState, MainPID) of ferry-agent in the guest."""
    _, out = g.sh('systemctl show -p ActiveState -p MainPID ferry-agent')
    kv = dict(ln.split('=', 1) for ln in out.split() if '=' in ln)
    return kv.get('ActiveState'), kv.get('MainPID')


# A drop-in for the agent's unit: its first start exits 1 after 2 s, as an
# agent whose registration failed; systemd starts it again 5 s later.
FLAKY = r"""cat >/root/install/flaky.sh <<'END'
if [ ! -e /run/ferry-flaky-done ]; then
	touch /run/ferry-flaky-done
	echo "t_guest: a transient failure" >&2
	sleep 2
	exit 1
fi
exec /usr/bin/ferry-agent --config /etc/ferry/agent.conf
END
mkdir -p /etc/systemd/system/ferry-agent.service.d
cat >/etc/systemd/system/ferry-agent.service.d/flaky.conf <<'END'
[Service]
ExecStart=
ExecStart=/bin/sh /root/install/flaky.sh
END
rm -f /run/ferry-flaky-done"""


def diff_lists(before, after):
    b, a = set(before.splitlines()), set(after.splitlines())
    return sorted(a - b), sorted(b - a)


def main():
    global DEBS
    # A copy of its own: tests/packaging/run.sh rebuilds build/pkg while
    # this file runs beside the other suites; tests/run-all.sh gives the
    # copy it made before starting them in FERRY_TEST_DEBS.
    src = os.environ.get('FERRY_TEST_DEBS', DEBS)
    if not os.path.isfile(os.path.join(src, 'SHA512SUMS')):
        check('the deb packages are built (make deb)', False, src)
        return
    tmp = tempfile.mkdtemp(prefix='ferry-install-guest.')
    assets = os.path.join(tmp, 'pkg')
    shutil.copytree(src, os.path.join(assets, 'deb'))
    DEBS = os.path.join(assets, 'deb')
    stack = agent_stack.Stack(BASE, assets_dir=assets)
    g = Guest(os.path.join(tmp, 'guest'))
    try:
        run(stack, g)
    finally:
        ok, why = g.stop()
        check("the guest's kernel log has no BUG, WARNING, Oops or lockdep "
              "report", ok, why)
        stack.stop()
        if not os.environ.get('FERRY_KEEP'):
            shutil.rmtree(tmp, ignore_errors=True)
            # ferry-control's data and the staging volumes (1 GB).
            shutil.rmtree(stack.ctl.tmp, ignore_errors=True)


def run(stack, g):
    up = g.start('--disk', '512M', '--timeout', '400')
    check('a Debian bookworm guest boots and answers SSH', up, g.start_log)
    if not up:
        return
    rc, out = g.sh('mkfs.ext4 -q -E lazy_itable_init=0 -L data /dev/vdb && '
                   'mkdir -p /data && '
                   'mount /dev/vdb /data && cp -r /etc /data/etc-copy && '
                   'mkdir -p /root/install')
    check('the data disk (vdb) carries ext4 with files', rc == 0, out)
    with open(os.path.join(g.dir, 'ca.pem'), 'w') as f:
        f.write(open(stack.ctl.ca).read())
    check('install.sh (alone, as downloaded) and the CA copied in',
          g.copy('/root/install', os.path.join(ROOT, 'scripts',
                                               'install.sh'),
                 os.path.join(g.dir, 'ca.pem')))
    rc, before = g.sh(LIST)
    check('the file and package lists before', rc == 0 and
          'PKG dkms' in before, before[-300:])

    # -- failures that change nothing -------------------------------------
    rc, out = g.sh('cd /root/install && bash install.sh --no-prompt')
    check('--no-prompt without keys: exit 2, every missing flag named',
          rc == 2 and all(f in out for f in ('--region',
                                             '--aws-access-key-id',
                                             '--aws-secret-access-key',
                                             '--endpoint')), out)
    rc, out = g.sh(install_cmd(stack, secret='x' * 40))
    check('a wrong secret: exit 1, the signature refused',
          rc == 1 and 'secret access key is wrong' in out, out[-800:])
    rc, out = g.sh(install_cmd(stack, endpoint='https://%s:%d'
                               % (HOST, BASE + 9)))
    check('an unreachable endpoint: exit 1, cannot connect, with the port',
          rc == 1 and 'cannot connect' in out and str(BASE + 9) in out,
          out[-800:])
    rc, out = g.sh('b=/lib/modules/$(uname -r)/build; mv $b $b.away; '
                   + install_cmd(stack) + '; rc=$?; mv $b.away $b; exit $rc')
    check('the kernel headers missing: exit 1, with the apt-get command',
          rc == 1 and 'no headers for the running kernel' in out and
          'apt-get update && apt-get install -y linux-headers-' in out,
          out[-800:])
    rc, out = g.sh(install_cmd(stack, extra='--s3-endpoint https://%s:%d'
                               '/nothing' % (HOST, BASE)) + ' 2>&1')
    check('an --s3-endpoint without the packages: exit 3, the download '
          'named, before any change', rc == 3 and 'cannot download https://'
          '%s:%d/nothing/latest/linux/deb/ferry-dkms_' % (HOST, BASE) in out
          and 'Writing /etc/ferry' not in out, out[-800:])
    rc, now = g.sh(LIST)
    added, gone = diff_lists(before, now)
    check('... and those runs changed nothing', rc == 0 and not added and
          not gone, (added[:20], gone[:20]))

    # -- a failure at the last step: everything rolled back -----------------
    rc, out = g.sh('export FERRY_INSTALL_FAIL_AFTER=register; ' +
                   install_cmd(stack) + ' 2>&1')
    check('a failure injected after the agent registered: exit 3, every '
          'step undone', rc == 3 and 'rolling back what this run did' in out
          and all(w in out for w in ('undone: enabled and started the '
                                     'ferry-agent service',
                                     'undone: loaded ferry.ko',
                                     'undone: installed the packages',
                                     'undone: wrote /etc/ferry/agent.conf')),
          out[-1500:])
    rc, now = g.sh(LIST + '\nlsmod | grep -c ^ferry || :')
    added, gone = diff_lists(before, now)
    check('... the file and package lists are those of before, the module '
          'unloaded', rc == 0 and added == ['0'] and not gone,
          (added[:20], gone[:20]))

    # -- the install ---------------------------------------------------------
    # /tmp noexec, as hardened servers have it (the checks used to refuse
    # it): the rest of the test runs so.
    rc, out = g.sh('mount -t tmpfs -o noexec,nosuid,nodev,mode=1777 '
                   'ferry-noexec /tmp && findmnt -no OPTIONS /tmp')
    check('/tmp mounted noexec in the guest', rc == 0 and 'noexec' in out,
          out)
    t0 = time.time()
    rc, out = g.sh(install_cmd(stack) + ' 2>&1')
    took = time.time() - t0
    log('install.sh took %.0f s:\n%s' % (took, out))
    sid = ''
    for line in out.splitlines():
        if 'source server ID' in line:
            sid = line.split()[-1]
    check('install.sh --no-prompt with the keys: exit 0, the source server '
          'ID printed (%.0f s)' % took, rc == 0 and sid.startswith('s-'),
          out[-1500:])
    check('... the packages came from ferry-control, their SHA-512 checked',
          "ferry-control's assets" in out and 'downloading ferry-dkms_' in
          out, out[-1500:])
    check('... /tmp noexec passed its check, said to be fine',
          'ok      /tmp is mounted noexec (on /tmp): fine' in out,
          out[:1500])
    rc, out = g.sh('dkms status ferry; lsmod | grep -w ^ferry; '
                   'test -c /dev/ferry-ctl && echo CTL; '
                   'systemctl is-enabled ferry-agent; '
                   'systemctl is-active ferry-agent; '
                   'stat -c %a /etc/ferry/agent.conf; '
                   'grep -c secret-access-key /etc/ferry/agent.conf')
    lines = out.splitlines()
    check('DKMS built ferry.ko for the running kernel and it is loaded',
          'installed' in out and any(ln.startswith('ferry ')
                                     for ln in lines) and 'CTL' in lines,
          out)
    check('the ferry-agent service is enabled and running',
          'enabled' in lines and 'active' in lines, out)
    check("agent.conf is 0600 and the installer's secret is gone",
          '600' in lines and lines[-1:] == ['0'], out)
    rc, out = g.sh('stat -c %a /etc/ferry/ca.pem && '
                   'cmp /etc/ferry/ca.pem /root/install/ca.pem && '
                   'grep "^ca-bundle" /etc/ferry/agent.conf')
    check('the CA bundle copied to /etc/ferry/ca.pem (0644), which '
          'agent.conf names', rc == 0 and out.splitlines()[:1] == ['644']
          and 'ca-bundle = "/etc/ferry/ca.pem"' in out, out)
    srv = wait_for('the server in describe-source-servers',
                   lambda: stack.source_server(), limit=30)
    srv = stack.source_server()
    check('aws mgn describe-source-servers on the host lists it',
          srv and srv.get('sourceServerID') == sid and
          srv['sourceProperties']['identificationHints'].get('hostname')
          == 'ferry-guest', srv and srv.get('sourceServerID'))

    def replicating():
        s = stack.source_server() or {}
        d = s.get('dataReplicationInfo', {})
        done_bytes = sum(x.get('replicatedStorageBytes', 0)
                         for x in d.get('replicatedDisks', []))
        return (d.get('dataReplicationState') in
                ('INITIAL_SYNC', 'CONTINUOUS', 'BACKLOG') and
                done_bytes > 0, d.get('dataReplicationState'), done_bytes,
                sorted(x['deviceName'] for x in d.get('replicatedDisks',
                                                        [])))
    wait_for('replication', lambda: replicating()[0], limit=300)
    st = replicating()
    check('replication of both disks starts (%s, %d bytes replicated)'
          % (st[1], st[2]), st[0] and st[3] == ['/dev/vda', '/dev/vdb'],
          st)

    # -- a reinstall of the agent's package -------------------------------
    debs = glob.glob(os.path.join(DEBS, 'ferry-agent_*.deb'))
    check('the ferry-agent package copied in',
          g.copy('/root/install/debs', *debs), debs)
    st0 = service(g)
    rc, out = g.sh('DEBIAN_FRONTEND=noninteractive apt-get install -y -q '
                   '--reinstall /root/install/debs/ferry-agent_*.deb 2>&1')
    st1 = service(g)
    check('apt-get install --reinstall ferry-agent: the agent restarted '
          '(active, a new process)', rc == 0 and st0[0] == 'active'
          and st1[0] == 'active' and st1[1] not in (st0[1], '0'),
          (st0, st1, out[-800:]))

    # -- --force-delete-existing: the new module does not build ------------
    broken = broken_dkms(os.path.dirname(g.dir))
    check('a ferry-dkms whose module does not compile, copied in',
          g.copy('/root/install/broken', *[os.path.join(broken, n)
                                           for n in os.listdir(broken)]),
          broken)
    rc, out = g.sh('export FERRY_INSTALL_PACKAGES=/root/install/broken; '
                   + install_cmd(stack, extra='--force-delete-existing')
                   + ' 2>&1')
    log('install.sh --force-delete-existing, broken ferry-dkms (exit %d):\n%s'
        % (rc, indent(out)))
    check('--force-delete-existing, a ferry-dkms that does not compile: '
          'exit 3 at the trial build, the compiler\'s error named, nothing '
          'changed', rc == 3 and 'before removing the installed agent' in out
          and 'does not build for kernel' in out
          and 'ferry-trial-test-error' in out and 'Nothing was changed' in out
          and 'Removing the agent' not in out, out[-1500:])
    st2 = service(g)
    if st2 != st1:
        log(indent(g.sh('journalctl -u ferry-agent -n 30 --no-pager')[1]))
    rc, out = g.sh('cat /var/lib/ferry-agent/registration.json; '
                   'test -f /etc/ferry/agent.conf && echo CONF; '
                   'dkms status ferry')
    check('... the agent still runs, the same process, registered, its '
          'configuration and module in place', st2 == st1
          and sid in out and 'CONF' in out and ': installed' in out,
          (st1, st2, out[-800:]))

    # -- --force-delete-existing: a failure after the removal --------------
    rc, out = g.sh('export FERRY_INSTALL_FAIL_AFTER=config; '
                   + install_cmd(stack, extra='--force-delete-existing',
                                 ca='/etc/ferry/ca.pem') + ' 2>&1')
    log('install.sh --force-delete-existing, failing after the removal '
        '(exit %d):\n%s' % (rc, indent(out)))
    check('--force-delete-existing, --ca-bundle /etc/ferry/ca.pem (the '
          'removal deletes it): the configuration step passes (the bundle '
          'was kept aside); no trial build (the same packages)',
          "after step 'config'" in out and 'Copying the CA bundle' in out
          and 'Building ferry.ko' not in out, out[-2000:])
    check('... a failure after the removal: exit 3, says the old agent was '
          'removed, that the server is still registered as %s, and what '
          'to do' % sid, rc == 3 and 'NOTE: the agent that was installed '
          'here was removed' in out and 'registered as source server %s'
          % sid in out and 'run install.sh again' in out
          and 'disconnect-from-service --source-server-id %s' % sid in out,
          out[-2000:])
    rc, out = g.sh('systemctl cat ferry-agent >/dev/null 2>&1 && echo UNIT; '
                   'test -e /etc/ferry && echo ETC; '
                   'dpkg-query -W -f "${Status}\n" ferry-agent 2>&1')
    check('... and indeed no agent is left', 'UNIT' not in out
          and 'ETC' not in out and 'ok installed' not in out, out)

    # -- install.sh again; the agent's first start fails --------------------
    g.sh(FLAKY)
    t0 = time.time()
    rc, out = g.sh(install_cmd(stack) + ' 2>&1')
    took = time.time() - t0
    log('install.sh again took %.0f s:\n%s' % (took, indent(out)))
    sid2 = ''
    for line in out.splitlines():
        if 'source server ID' in line:
            sid2 = line.split()[-1]
    _, flaky = g.sh('test -e /run/ferry-flaky-done && echo FLAKED; '
                    'rm -rf /etc/systemd/system/ferry-agent.service.d '
                    '/run/ferry-flaky-done; systemctl daemon-reload')
    check('install.sh again, the agent\'s first start failing: it waits '
          'for systemd\'s restart, exit 0 (%.0f s)' % took,
          rc == 0 and 'FLAKED' in flaky
          and 'systemd starts it again' in out, out[-1500:])
    check('... the agent registered as the same source server (%s)' % sid,
          sid2 == sid and service(g)[0] == 'active', (sid, sid2))

    g.copy('/root/install', os.path.join(ROOT, 'scripts', 'uninstall.sh'))

    # -- uninstall -----------------------------------------------------------
    rc, out = g.sh('bash /root/install/uninstall.sh 2>&1')
    check('uninstall.sh: exit 0, the server disconnected',
          rc == 0 and 'disconnected' in out and 'nothing of it is left'
          in out, out)
    srv = stack.source_server() or {}
    check('ferry-control shows the server DISCONNECTED',
          srv.get('lifeCycle', {}).get('state') == 'DISCONNECTED' and
          srv.get('dataReplicationInfo', {}).get('dataReplicationState')
          == 'DISCONNECTED', srv.get('lifeCycle'))
    rc, out = g.sh('lsmod | grep -c ^ferry; dkms status ferry | wc -l; '
                   'systemctl cat ferry-agent >/dev/null 2>&1 && echo UNIT; '
                   'find / -xdev -name "*ferry*" -not -path "/root/*" '
                   '-not -path "/proc/*" | head')
    check('no module, no DKMS tree, no unit, no file named ferry left',
          out.split() == ['0', '0'], out)
    rc, after = g.sh(LIST)
    added, gone = diff_lists(before, after)
    check('the file and package lists are those of before the install',
          rc == 0 and not added and not gone, (added[:30], gone[:30]))


main()
done()
