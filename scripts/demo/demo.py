"""The migration demo (make demo, scripts/demo.sh), driven from the host.

  1. ferry-control and ferry-replicator on loopback with their embedded
     defaults (tests/vm/agent_stack.py: SQLite, a local data directory),
     an installer access key, the packages as installation assets;
  2. a source server: a Debian bookworm guest (scripts/vm/debian-vm.sh)
     with an ext4 system disk and an ext4 data disk in use;
  3. install.sh --no-prompt in it with the keys as flags: packages from
     ferry-control, ferry.ko through DKMS, the ferry-agent service;
  4. live progress (ferryctl status in the guest, aws mgn
     describe-source-servers on the host) until CONTINUOUS;
  5. a write workload (fio) during continuous replication; once the
     writes pause, both staging volumes equal the source disks;
  6. a snapshot; `aws mgn start-test` (READY_FOR_TEST to TESTING): the
     replicator launches the newest snapshot as image files; the test
     instance, a second guest booted from them, reaches userspace with
     the data written before the snapshot and without what came after;
  7. a summary, and everything stopped.

Run by scripts/demo.sh (as root, after `make` and `make deb`).
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'vm'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'replicator'))
import agent_stack  # noqa: E402
import repltest  # noqa: E402
from debian_guest import Guest  # noqa: E402

BUILD = os.environ.get('BUILD', os.path.join(ROOT, 'build'))
OUT = os.path.join(BUILD, 'demo')
BASE = 18600
HOST = agent_stack.GUEST_HOST
T0 = time.time()
phases = []


def say(msg):
    print('\n\033[1m== %s\033[0m' % msg, flush=True)


def show(cmd, text):
    print('$ %s' % cmd)
    print(text.rstrip(), flush=True)


def die(msg):
    print('\ndemo FAILED: %s' % msg, flush=True)
    sys.exit(1)


class Phase:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t = time.time()

    def __exit__(self, *exc):
        phases.append((self.name, time.time() - self.t))


def status(g):
    rc, out = g.sh('ferryctl status --json')
    try:
        return json.loads(out) if rc == 0 else {}
    except ValueError:
        return {}


def progress(g, stack):
    rc, out = g.sh('ferryctl status')
    show('ferryctl status   (in the source server)', out)
    show('aws mgn describe-source-servers   (on the host)',
         stack.describe().split('\n', 1)[1])


def watch_until(g, stack, pred, limit, every=15):
    """Show progress every EVERY s until PRED() holds; False after LIMIT."""
    end = time.time() + limit
    last = 0
    while time.time() < end:
        if pred():
            return True
        if time.time() - last >= every:
            progress(g, stack)
            last = time.time()
        time.sleep(2)
    return pred()


def staged(stack, sid, name):
    return repltest.volume_path(stack.data, sid, name)


def disks_equal(g, stack, sid):
    """Both disks equal their staging volumes, compared with the guest
    paused once the agent has nothing left to send; a few tries, since a
    live system may still write between two rounds of the agent."""
    for _ in range(10):
        g.sh('sync')
        end = time.time() + 120
        while time.time() < end:
            st = status(g)
            if (st.get('dataReplicationState') == 'CONTINUOUS' and
                    st.get('backlogBytes', 1) == 0):
                break
            time.sleep(1)
        time.sleep(3)
        g.qmp('stop')
        try:
            same = []
            for n, name in ((0, '/dev/vda'), (1, '/dev/vdb')):
                fmt = 'qcow2' if n == 0 else 'raw'
                r = subprocess.run(['qemu-img', 'compare', '-U', '-q',
                                    '-f', fmt, '-F', 'raw', g.disk(n),
                                    staged(stack, sid, name)])
                same.append(r.returncode == 0)
        finally:
            g.qmp('cont')
        if all(same):
            return True
    return False


def snapshots(stack, sid):
    r = subprocess.run([repltest.REPLICATOR, 'snapshot', 'list',
                        '--data-dir', stack.data, '--source-id', sid],
                       capture_output=True, text=True)
    return [x for s in json.loads(r.stdout or '{}').get('source_servers',
                                                         [])
            for x in s.get('snapshots', [])]


def lifecycle(stack, sid):
    """The server's states, as describe-source-servers says them."""
    s = stack.source_server() or {}
    return '%s: lifeCycle %s, dataReplicationState %s\n' % (
        sid, s.get('lifeCycle', {}).get('state'),
        s.get('dataReplicationInfo', {}).get('dataReplicationState'))


def wait_job(stack, job_id, limit=600):
    """The job once it is COMPLETED (dies if it does not get there)."""
    end = time.time() + limit
    while True:
        job = stack.ctl.aws('mgn', 'describe-jobs', '--filters',
                            'jobIDs=%s' % job_id)['items'][0]
        if job['status'] == 'COMPLETED':
            break
        if time.time() > end:
            die('job %s still %s after %d s' % (job_id, job['status'],
                                                 limit))
        time.sleep(3)
    launch = job['participatingServers'][0].get('launchStatus')
    if launch != 'LAUNCHED':
        die('job %s completed with launchStatus %s' % (job_id, launch))
    return job


def launched(stack, job_id, sid):
    """The image files the replicator wrote for the job, by disk."""
    r = subprocess.run([repltest.REPLICATOR, 'launch', 'list',
                        '--data-dir', stack.data], capture_output=True,
                       text=True)
    images = {x['deviceName']: x['path']
              for x in json.loads(r.stdout or '{}').get('launches', [])
              if x['jobID'] == job_id and x['sourceServerID'] == sid}
    if sorted(images) != ['/dev/vda', '/dev/vdb']:
        die('launch list has %s for job %s: %s' % (sorted(images), job_id,
                                                   r.stderr[-300:]))
    return images


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    say('ferry-control and ferry-replicator on this host (loopback)')
    stack = agent_stack.Stack(BASE, assets_dir=os.path.join(BUILD, 'pkg'))
    src = Guest(os.path.join(OUT, 'source'))
    test = Guest(os.path.join(OUT, 'test-instance'))
    try:
        run(stack, src, test)
    finally:
        for g in (src, test):
            if os.path.exists(os.path.join(g.dir, 'pid')):
                ok, why = g.stop()
                if not ok:
                    print('the guest in %s: %s' % (g.dir, why))
        stack.stop()
        # The staging area, its snapshots and the launched images.
        shutil.rmtree(stack.ctl.tmp, ignore_errors=True)


def run(stack, src, test):
    inst = stack.ctl.installer
    print('ferry-control   %s (region %s, data in %s)' %
          (stack.ctl.url, agent_stack.ferrytest.REGION, stack.ctl.tmp))
    print('replicator      127.0.0.1:%d, staging area %s' % (BASE + 1,
                                                             stack.data))
    print('installer key   %s (ferry-control keys create --role installer)'
          % inst['AccessKeyId'])

    say('A source server: Debian bookworm, a system disk and a data disk')
    with Phase('boot the source server'):
        if not src.start('--disk', '512M', '--timeout', '400'):
            die('the source server did not boot: %s' % src.start_log)
    rc, out = src.sh('''set -e
mkfs.ext4 -q -E lazy_itable_init=0 -L data /dev/vdb
mkdir -p /data && mount /dev/vdb /data
dd if=/dev/urandom of=/data/database.bin bs=1M count=96 status=none
for i in $(seq 0 99); do echo "order $i: shipped" >/data/order-$i.txt; done
sync; df -h / /data''')
    show('df -h / /data', out)
    if rc:
        die('preparing the data disk failed')

    say('Install the agent: install.sh --no-prompt, the keys as flags')
    with open(os.path.join(OUT, 'ca.pem'), 'w') as f:
        f.write(open(stack.ctl.ca).read())
    src.copy('/root', os.path.join(ROOT, 'scripts', 'install.sh'),
             os.path.join(OUT, 'ca.pem'))
    cmd = ('bash install.sh --no-prompt --region %s --aws-access-key-id %s '
           '--aws-secret-access-key %s --endpoint https://%s:%d '
           '--ca-bundle /root/ca.pem' % (agent_stack.ferrytest.REGION,
                                         inst['AccessKeyId'], '%s', HOST,
                                         BASE))
    print('$ ' + cmd % '****')
    with Phase('install (packages, DKMS build, service)'):
        rc, _ = src.sh('cd /root && ' + cmd % inst['SecretAccessKey'] +
                       ' 2>&1', live=True)
    if rc:
        die('install.sh failed (exit %d)' % rc)
    sid = (stack.source_server() or {}).get('sourceServerID')
    if not sid:
        die('ferry-control does not list the source server')

    say('Initial sync, with the disks mounted and in use')
    with Phase('initial sync'):
        if not watch_until(src, stack, lambda: status(src).get(
                'dataReplicationState') == 'CONTINUOUS', 900):
            die('no CONTINUOUS after 15 minutes')
    progress(src, stack)

    say('A write workload while the agent replicates continuously')
    with Phase('workload (fio, 30 s) and convergence'):
        rc, out = src.sh(
            'fio --name=app --directory=/data --size=32M --bs=4k '
            '--rw=randwrite --ioengine=psync --direct=1 --rate_iops=300 '
            '--time_based --runtime=30 >/tmp/fio.out 2>&1 &')
        time.sleep(12)
        progress(src, stack)
        # The lag while fio writes (it stops at 30 s): the worst of three.
        lags = [status(src).get('lagMs') or 0]
        for _ in range(2):
            time.sleep(6)
            lags.append(status(src).get('lagMs') or 0)
        lag = max(lags)
        src.sh('while pgrep -x fio >/dev/null; do sleep 1; done')
        print('writes paused; comparing the disks with their staging '
              'volumes (the guest paused for each comparison)')
        if not disks_equal(src, stack, sid):
            die('the staging volumes differ from the source disks')
    print('both staging volumes equal the source disks (qemu-img compare '
          'of the whole devices)')

    say('A snapshot, then StartTest: the test instance is launched from '
        'the newest snapshot')
    with Phase('snapshot and StartTest'):
        base = max([s.get('cp_id', 0) for s in snapshots(stack, sid)] + [0])
        src.sh('echo "written before the snapshot, $(date)" '
               '>/data/before-snapshot.txt; sync')
        snap = None
        end = time.time() + 300
        while time.time() < end and not snap:
            # A consistency point begun after the write: the agent
            # freezes the filesystems for it, so the file is in it.
            later = [s for s in snapshots(stack, sid)
                     if s.get('cp_id', 0) >= base + 2]
            snap = max(later, key=lambda s: s['cp_id']) if later else None
            if not snap:
                time.sleep(3)
        if not snap:
            die('no snapshot after consistency point %d' % (base + 1))
        print('snapshot %s (consistency point %d, %s)' %
              (snap['id'], snap['cp_id'], snap.get('time', '')))
        show('aws mgn describe-source-servers', lifecycle(stack, sid))
        job = stack.ctl.aws('mgn', 'start-test', '--source-server-ids',
                            sid)['job']
        show('aws mgn start-test --source-server-ids %s' % sid,
             'job %s %s\n' % (job['jobID'], job['status']))
        job = wait_job(stack, job['jobID'])
        items = stack.ctl.aws('mgn', 'describe-job-log-items', '--job-id',
                              job['jobID'])['items']
        show('aws mgn describe-job-log-items --job-id %s' % job['jobID'],
             ''.join('%s %s\n' % (x.get('logDateTime', ''), x['event'])
                     for x in items))
        show('aws mgn describe-source-servers', lifecycle(stack, sid))
        if 'TESTING' not in lifecycle(stack, sid):
            die('the source server is not TESTING after StartTest')
        # Written once the launch took its snapshot: not in the instance.
        src.sh('echo "written after the snapshot" >/data/after-snapshot.txt;'
               ' sync')
        images = launched(stack, job['jobID'], sid)
    print('launched %s: %s' % (
        job['participatingServers'][0].get('launchedEc2InstanceID'),
        ', '.join('%s %s' % (d, images[d]) for d in sorted(images))))
    sent = sum(d.get('sentBytes', 0) for d in status(src).get('disks', []))
    total = sum(d.get('totalStorageBytes', 0)
                for d in status(src).get('disks', []))
    ok, why = src.stop()
    if not ok:
        die("the source server's kernel log: %s" % why)

    say('The test instance: a guest booted from the snapshot')
    with Phase('test instance'):
        # The copy carries the agent, its service and the source's
        # registration; booted as another machine (its own system UUID),
        # the agent must refuse to replicate it over its source.
        if not test.start('--root', images['/dev/vda'],
                          '--disk', images['/dev/vdb'],
                          '--timeout', '400'):
            die('the test instance did not boot: %s' % test.start_log)
        rc, out = test.sh('''set -e
echo "\\$ systemctl is-system-running"; systemctl is-system-running || :
for i in $(seq 60); do
	r=$(systemctl show -p Result --value ferry-agent)
	s=$(systemctl show -p ExecMainStatus --value ferry-agent)
	[ "$s" = 0 ] || break
	sleep 1
done
echo "\\$ systemctl status ferry-agent"
echo "ferry-agent: $(systemctl is-active ferry-agent || :), result $r, exit status $s"
journalctl -b -u ferry-agent -o cat | grep -m1 'is not the one that registered' | cut -c1-160
echo "\\$ e2fsck -fn /dev/vdb"; e2fsck -fn /dev/vdb >/tmp/fsck 2>&1 && echo clean
mkdir -p /data && mount -o ro /dev/vdb /data
echo "\\$ ls /data | head -n 4"; ls /data | head -n 4
echo "\\$ cat /data/before-snapshot.txt"; cat /data/before-snapshot.txt
if [ -e /data/after-snapshot.txt ]; then echo "after-snapshot.txt: PRESENT"; exit 1; fi
echo "after-snapshot.txt is absent, as it must be"''')
        print(out.rstrip())
        if rc or 'clean' not in out:
            die('the test instance does not hold the snapshot as taken')
        if 'exit status 78' not in out or 'ferry-agent: active' in out:
            die("the test instance's agent did not refuse to replicate "
                "over its source server")
        ok, why = test.stop()
        if not ok:
            die("the test instance's kernel log: %s" % why)

    say('Summary')
    print('%-42s %d (for %d bytes of disks)' %
          ('bytes sent by the agent', sent, total))
    print('%-42s %s ms' % ('lag during the workload', lag))
    for name, secs in phases:
        print('%-42s %4.0f s' % (name, secs))
    print('%-42s %4.0f s' % ('total', time.time() - T0))


if __name__ == '__main__':
    main()
