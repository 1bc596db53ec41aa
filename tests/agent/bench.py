"""bench-agent: ferry-agent's initial sync against the device's own read
rate (make bench-agent).

In one run, on a loop device (direct I/O) over a file in $BUILD/bench:
  - baseline: fio, sequential 1 MiB O_DIRECT reads of the whole device
    (io_uring, queue depth 16, as the agent's reads);
  - the agent: ferry-agent --once (standalone, default settings: lz4,
    queue depth 32, 1 MiB reads) copying the same device, full of random
    data, over TLS on loopback to a ferry-replicator whose staging
    directory is in /dev/shm (the staging side is not what is measured);
    timed by the agent itself, from start to its last ACK;
  - the same with the device half empty (zeros): the time against the
    full one (reported: zeros are read like data, only not sent);
  - a rescan of the unchanged device (the agent again, the replicator
    holding the copy: hashes compared, nothing sent) against fio's rate,
    and the same with 4 KiB reads against fio's 4 KiB reads at queue
    depth 32 (reported; a rescan that stalls between reads shows here);
  - the agent's peak RSS (getrusage of the child: ru_maxrss) and its CPU
    time against the wall time of the sync (near 1: the agent is CPU
    bound), and the same of the replicator (/proc/PID/stat): it serves a
    connection on one thread, so near 1 it is the replicator's core that
    sets the rate, and the ratio to fio says more about this machine's
    cores (the agent, the replicator and TLS on both ends share them)
    than about the agent.
Goals: sync rate >= 0.9 of fio's, peak RSS < 64 MiB.  Lag under a steady
write load needs ferry.ko: it is measured in a QEMU guest, not here.

Prints one line per figure and writes $BUILD/bench/agent.md; the same
figures as BENCH lines (tests/lib/benchfig.py) in
$BUILD/bench/agent.figures for make bench's report.
Environment: FERRY_BENCH_SIZE_MB (1024), FERRY_BENCH_STRICT=1 (exit 1
when a goal is missed).
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import repl
from repl import MiB, R
from benchfig import Figures  # tests/lib, on the path through repl

SIZE = int(os.environ.get('FERRY_BENCH_SIZE_MB', '1024')) * MiB
STRICT = os.environ.get('FERRY_BENCH_STRICT') == '1'
GOAL_RATE, GOAL_RSS = 0.9, 64 * MiB


def say(msg):
    print('bench-agent: ' + msg, file=sys.stderr, flush=True)


def drop_caches():
    try:
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('3\n')
    except OSError:
        pass


def fill(path, size, half_empty):
    """SIZE bytes of random data; HALF_EMPTY: every other 8 MiB zero."""
    step = 8 * MiB
    with open(path, 'r+b') as f, open('/dev/urandom', 'rb') as rnd:
        f.truncate(size)
        for off in range(0, size, step):
            f.seek(off)
            if half_empty and (off // step) % 2:
                f.write(bytes(min(step, size - off)))
            else:
                f.write(rnd.read(min(step, size - off)))
        f.flush()
        os.fsync(f.fileno())


def fio_read(dev, bs='1M', depth=16):
    out = subprocess.run(
        ['fio', '--name=read', '--filename=' + dev, '--rw=read',
         '--bs=' + bs, '--direct=1', '--ioengine=io_uring',
         '--iodepth=%d' % depth, '--size=%d' % SIZE,
         '--output-format=json'],
        capture_output=True, text=True, check=True).stdout
    return json.loads(out)['jobs'][0]['read']['bw_bytes']


def proc_cpu(pid):
    """CPU seconds (user + system) of process PID so far."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def agent_rescan(s, disk, sid, *extra):
    """One --once rescan of DISK, unchanged since the copy the replicator
    holds as SID: (bytes per second, seconds)."""
    drop_caches()
    r = s.once([disk], *extra, sid=sid, timeout=3600)
    d = r.disk(0) if r.rc == 0 else {}
    if d.get('rescanned_bytes') != SIZE or d.get('rescan_differed_bytes'):
        raise RuntimeError('the rescan failed or found differences: ' +
                           r.why())
    secs = r.summary['seconds']
    return SIZE / secs, secs


def agent_sync(s, disk, sid, keep=False):
    """One --once copy: (bytes per second, seconds, peak RSS bytes,
    CPU seconds of the agent, CPU seconds of the replicator).  KEEP: the
    replicator keeps the copy (for agent_rescan)."""
    s.repl.allow.append('%s *' % sid)
    s.repl.stop()
    s.repl.start()
    drop_caches()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rcpu0 = proc_cpu(s.repl.proc.pid)
    r = s.once([disk], sid=sid, timeout=3600)
    rcpu = proc_cpu(s.repl.proc.pid) - rcpu0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, rss = ru0.ru_maxrss, ru1.ru_maxrss
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    if r.rc != 0 or not s.same(disk, sid):
        raise RuntimeError('the agent failed or the copy differs: ' +
                           r.why())
    secs = r.summary['seconds']
    if not keep:
        shutil.rmtree(os.path.join(s.data, sid), ignore_errors=True)
    # ru_maxrss of children is the largest of any child so far: the
    # agent is by far the largest child of this process.
    return SIZE / secs, secs, max(rss, before) * 1024, cpu, rcpu


def yn(ok):
    return 'yes' if ok else 'no'


def main():
    bench = os.path.join(R.BUILD, 'bench')
    os.makedirs(bench, exist_ok=True)
    work = tempfile.mkdtemp(prefix='agent.', dir=bench)
    s = None
    shm = None
    try:
        s = repl.Setup('bench-agent')
        # Staging in /dev/shm: the agent is what is measured.
        s.repl.stop()
        shm = tempfile.mkdtemp(prefix='ferry-bench-agent.', dir='/dev/shm')
        s.data = s.repl.data_dir = os.path.join(shm, 'data')
        img = os.path.join(work, 'disk.img')
        open(img, 'wb').close()
        say('a %d MiB device of random data in %s' % (SIZE // MiB, work))
        fill(img, SIZE, False)
        disk = repl.Disk.__new__(repl.Disk)
        disk.img, disk.size = img, SIZE
        disk.dev = subprocess.run(
            ['losetup', '--find', '--show', '--direct-io=on', img],
            check=True, capture_output=True, text=True).stdout.strip()
        s.disks.append(disk)
        s.repl.start()

        drop_caches()
        say('fio: sequential 1 MiB O_DIRECT reads of ' + disk.dev)
        fio_bps = fio_read(disk.dev)
        say('ferry-agent --once: the full device')
        full_bps, full_s, rss1, cpu1, rcpu1 = agent_sync(
            s, disk, 's-0000000000bench01', keep=True)
        say('ferry-agent --once again: a rescan, nothing changed')
        rescan_bps, _ = agent_rescan(s, disk, 's-0000000000bench01')
        # 4 KiB reads, against fio's at the agent's queue depth: every
        # chunk matches, nothing is sent, so the reads alone set the pace
        # (each poll once waited 100 ms for a send that never came).
        drop_caches()
        say('fio: sequential 4 KiB O_DIRECT reads, queue depth 32')
        fio4k_bps = fio_read(disk.dev, '4k', 32)
        say('ferry-agent --once --read-chunk 4096: the same rescan')
        rescan4k_bps, rescan4k_s = agent_rescan(
            s, disk, 's-0000000000bench01', '--read-chunk', '4096')
        shutil.rmtree(os.path.join(s.data, 's-0000000000bench01'),
                      ignore_errors=True)

        say('the same device, half of it zeros')
        fill(img, SIZE, True)
        half_bps, half_s, rss2, _, _ = agent_sync(s, disk,
                                                  's-0000000000bench02')
        rss = max(rss1, rss2)

        fig = Figures('agent')
        rate = full_bps / fio_bps
        half = half_s / full_s
        lines = [
            ('initial sync rate / fio sequential read', rate, '>= %.1f' %
             GOAL_RATE, rate >= GOAL_RATE,
             '%.0f / %.0f MB/s' % (full_bps / 1e6, fio_bps / 1e6)),
            ('half-empty sync time / full', half, 'reported', True,
             '%.2f / %.2f s' % (half_s, full_s)),
            ('rescan rate (unchanged) / fio sequential read',
             rescan_bps / fio_bps, 'reported', True,
             '%.0f / %.0f MB/s' % (rescan_bps / 1e6, fio_bps / 1e6)),
            ('rescan rate, 4 KiB reads / fio 4 KiB reads',
             rescan4k_bps / fio4k_bps, 'reported', True,
             '%.0f / %.0f MB/s, %.2f s' % (rescan4k_bps / 1e6,
                                            fio4k_bps / 1e6, rescan4k_s)),
            ('peak RSS (MiB)', rss / MiB, '< %d' % (GOAL_RSS // MiB),
             rss < GOAL_RSS, '%.1f MiB' % (rss / MiB)),
            ('agent CPU time / sync time', cpu1 / full_s, 'reported', True,
             '%.2f CPU s in %.2f s, %d CPUs' % (cpu1, full_s,
                                               os.cpu_count())),
            ('replicator CPU time / sync time', rcpu1 / full_s, 'reported',
             True, '%.2f CPU s in %.2f s, one thread per connection' %
             (rcpu1, full_s)),
        ]
        md = ['# bench-agent', '',
              'Device: loop (direct I/O) over %s, %d MiB.' % (img,
                                                              SIZE // MiB),
              '', '| figure | value | goal | met | detail |',
              '|---|---|---|---|---|']
        missed = 0
        for name, v, goal, ok, detail in lines:
            met = '' if goal == 'reported' else \
                ('met' if ok else 'MISSED')
            print('bench-agent: %-42s %8.3f  (goal %s) %s  [%s]' %
                  (name, v, goal, met, detail))
            md.append('| %s | %.3f | %s | %s | %s |' %
                      (name, v, goal, met or '-', detail))
            missed += not ok
        fig.add('agent', 'sync.rate', full_bps / 1e6, 'MB/s', fio_bps / 1e6,
                rate, 'ratio >= %.1f' % GOAL_RATE, yn(rate >= GOAL_RATE),
                'initial sync, random data (baseline: fio sequential read)')
        fig.add('agent', 'sync.half_empty', half_s, 's', full_s, half,
                label='initial sync time, half zeros (baseline: all data)')
        fig.add('agent', 'rescan.rate', rescan_bps / 1e6, 'MB/s',
                fio_bps / 1e6, rescan_bps / fio_bps,
                label='rescan of an unchanged device (baseline: fio '
                'sequential read)')
        fig.add('agent', 'rescan.rate_4k', rescan4k_bps / 1e6, 'MB/s',
                fio4k_bps / 1e6, rescan4k_bps / fio4k_bps,
                label='the same, --read-chunk 4096 (baseline: fio 4 KiB '
                'sequential reads, queue depth 32)')
        fig.add('agent', 'rss', rss / MiB, 'MiB', goal='< %d MiB' %
                (GOAL_RSS // MiB), met=yn(rss < GOAL_RSS),
                label='peak RSS of the agent')
        fig.add('agent', 'cpu', cpu1, 's', full_s, cpu1 / full_s,
                label='agent CPU seconds in the full sync (baseline: its '
                'wall seconds)')
        fig.add('agent', 'replicator_cpu', rcpu1, 's', full_s,
                rcpu1 / full_s,
                label='replicator CPU seconds in the full sync (baseline: '
                'the wall seconds; it serves a connection on one thread)')
        md += ['', 'Lag under a steady write load needs ferry.ko: '
               'measured in a QEMU guest, not in this run.']
        with open(os.path.join(bench, 'agent.md'), 'w') as f:
            f.write('\n'.join(md) + '\n')
        return 1 if STRICT and missed else 0
    finally:
        if s:
            s.close()
        shutil.rmtree(work, ignore_errors=True)
        if shm:
            shutil.rmtree(shm, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
