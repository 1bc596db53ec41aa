"""t_freeze: the agent's freezer (agent/freeze.c) on real filesystems.

Filesystems on loop devices: ext4 on a partition of loop A, ext4 on the
whole of loop B.  (This machine's kernel has no device-mapper; stacked
devices are covered in the QEMU guests.)  The
freezer must freeze exactly the filesystems on the disks it is given,
thaw them when told, when its deadline passes, and when the agent dies
without thawing.  Needs root.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'lib'))
from checks import check, done  # noqa: E402

BUILD = os.environ.get('BUILD', 'build')
PROG = os.path.join(BUILD, 'tests', 'agent', 'ferry-freeze-test')
cleanups = []


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          **kw).stdout.strip()


def is_frozen(mnt):
    """fsfreeze refuses EBUSY on a frozen filesystem; never writes."""
    r = subprocess.run(['fsfreeze', '--freeze', mnt], capture_output=True,
                       text=True)
    if r.returncode == 0:
        subprocess.run(['fsfreeze', '--unfreeze', mnt], check=True)
        return False
    return 'busy' in r.stderr.lower()


def writable(mnt):
    r = subprocess.run(['timeout', '5', 'touch', os.path.join(mnt, 'w')])
    return r.returncode == 0


def wait_thawed(mnt, limit=30):
    end = time.time() + limit
    while time.time() < end:
        if not is_frozen(mnt):
            return True
        time.sleep(0.2)
    return False


def loopdev(tmp, name, partition=False):
    img = os.path.join(tmp, name + '.img')
    with open(img, 'wb') as f:
        f.truncate(64 << 20)
    dev = sh('losetup', '--find', '--show', '--partscan', img)
    cleanups.append(['losetup', '-d', dev])
    if partition:
        subprocess.run(['sfdisk', '-q', dev], input='2048,,L\n', text=True,
                       check=True, capture_output=True)
        sh('partx', '-u', dev)
        for _ in range(50):
            if os.path.exists(dev + 'p1'):
                break
            time.sleep(0.1)
        return dev, dev + 'p1'
    return dev, dev


def mount(tmp, name, node):
    sh('mkfs.ext4', '-q', '-F', node)
    mnt = os.path.join(tmp, name)
    os.mkdir(mnt)
    sh('mount', node, mnt)
    cleanups.append(['umount', mnt])
    return mnt


def freeze(disk, timeout_ms):
    p = subprocess.Popen([PROG, 'freeze', disk, str(timeout_ms)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    return p, p.stdout.readline().strip()


def thaw(p):
    out, err = p.communicate('thaw\n', timeout=60)
    return out.strip(), err.strip(), p.returncode


def main():
    tmp = tempfile.mkdtemp(prefix='ferry-freeze.')
    try:
        run(tmp)
    finally:
        for c in reversed(cleanups):
            if c[0] == 'umount':
                subprocess.run(['fsfreeze', '--unfreeze', c[1]],
                               capture_output=True)
            subprocess.run(c, capture_output=True)
        subprocess.run(['rm', '-rf', tmp])
    done()


def run(tmp):
    disk_a, part_a = loopdev(tmp, 'a', partition=True)
    mnt_a = mount(tmp, 'ma', part_a)
    disk_b, _ = loopdev(tmp, 'b')
    mnt_b = mount(tmp, 'mb', disk_b)

    p, line = freeze(disk_a, 60000)
    check('freezing disk A freezes the filesystem on its partition',
          line == 'frozen 1' and is_frozen(mnt_a), line + p.stderr.read()
          if p.poll() is not None else line)
    check('the filesystem on disk B is left alone', writable(mnt_b))
    out, err, rc = thaw(p)
    check('thawed when told', out == 'thawed 0' and rc == 0 and
          writable(mnt_a), '%r %r rc %d' % (out, err, rc))

    p, line = freeze(disk_a, 300)
    check('a short deadline freezes', line == 'frozen 1', line)
    check('the deadline thaws without the agent', wait_thawed(mnt_a))
    out, err, rc = thaw(p)
    check('a thaw after the deadline says the freeze ran out',
          out == 'thawed 1' and rc == 0, '%r %r rc %d' % (out, err, rc))

    r = subprocess.run([PROG, 'die', disk_b], capture_output=True,
                       text=True, timeout=60)
    check('an agent that dies frozen', r.stdout.strip() == 'frozen 1',
          r.stdout + r.stderr)
    check('is thawed by the child', wait_thawed(mnt_b) and writable(mnt_b))

    sh('fsfreeze', '--freeze', mnt_b)
    p, line = freeze(disk_b, 60000)
    out, err, rc = thaw(p)
    check('a filesystem frozen by someone else is not ours',
          line == 'frozen 0' and is_frozen(mnt_b), line)
    sh('fsfreeze', '--unfreeze', mnt_b)


main()
