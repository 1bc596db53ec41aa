"""bench-baseline: ferry's initial sync against what a sysadmin would do
without ferry (make bench-baseline, part of make bench).

The same source disk, a loop device (direct I/O) over a file in
$BUILD/bench holding a mix of random data, compressible text and zeros
(by default 3/8 zeros, 1/4 text, 3/8 random, in 64 MiB groups), copied
to a file on the same filesystem as $BUILD, in one run:
  - baseline: dd if=DEV bs=1M iflag=direct | openssl s_client (TLS 1.3,
    a throwaway self-signed certificate) into openssl s_server | dd
    of=FILE bs=1M oflag=direct conv=fsync; timed from dd's start to the
    receiving dd's exit (everything on disk), then compared with the
    source;
  - ferry: ferry-agent --once (defaults: lz4, zero ranges not sent) to a
    ferry-replicator whose staging directory is on that filesystem too,
    as tests/agent/bench.py runs it; timed from the agent's start to its
    exit (after the last ACK: durable), then compared with the source.
Both in ABBA order over FERRY_BENCH_BASELINE_ROUNDS (2) rounds, page cache
dropped before each copy; the rates are means over the rounds.  Goal:
ferry's rate >= 1.0 x the baseline's.  ferry sends no zero blocks and
compresses the rest, so the bytes each one put on the wire are reported
too (the baseline's: the disk through TLS; ferry's: its frames, headers
included, from the agent's summary).

Prints one line per figure, writes $BUILD/bench/baseline.md and the
figures as BENCH lines (tests/lib/benchfig.py) in
$BUILD/bench/baseline.figures.  Environment: FERRY_BENCH_BASELINE_MB
(1024), FERRY_BENCH_BASELINE_ROUNDS (2), FERRY_BENCH_BASELINE_PORT
(19443, the openssl pair's), FERRY_BENCH_STRICT=1 (exit 1 when the goal
is missed).  Run as root with /usr/bin/python3.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import repl
from repl import MiB, R
from bench import drop_caches
from benchfig import Figures

SIZE = int(os.environ.get('FERRY_BENCH_BASELINE_MB', '1024')) * MiB
ROUNDS = int(os.environ.get('FERRY_BENCH_BASELINE_ROUNDS', '2'))
PORT = int(os.environ.get('FERRY_BENCH_BASELINE_PORT', '19443'))
STRICT = os.environ.get('FERRY_BENCH_STRICT') == '1'
GOAL = 1.0
GROUP = 64 * MiB


def say(msg):
    print('bench-baseline: ' + msg, file=sys.stderr, flush=True)


def regions(size):
    """(zero, text) regions: in each 64 MiB, 24 MiB random data, then
    16 MiB text, then 24 MiB zeros (a half-used filesystem, roughly)."""
    zero, text = [], []
    for g in range(0, size, GROUP):
        n = min(GROUP, size - g)
        t0, z0 = g + n * 3 // 8, g + n * 5 // 8
        text.append((t0, z0 - t0))
        zero.append((z0, g + n - z0))
    return zero, text


def make_cert(d):
    """A throwaway self-signed certificate for 127.0.0.1."""
    key, cert = os.path.join(d, 'key.pem'), os.path.join(d, 'cert.pem')
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
         'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
         '-days', '1', '-subj', '/CN=127.0.0.1', '-addext',
         'subjectAltName=IP:127.0.0.1'],
        check=True, capture_output=True)
    return cert, key


def listening(port):
    out = subprocess.run(['ss', '-Hltn', 'sport = :%d' % port],
                         capture_output=True, text=True).stdout
    return bool(out.strip())


def dd_openssl(dev, dst, cert, key, work):
    """The sysadmin's copy: seconds from dd's start to the receiving
    dd's exit."""
    if listening(PORT):
        raise RuntimeError('port %d is in use (FERRY_BENCH_BASELINE_PORT)'
                           % PORT)
    # s_server ends the session at EOF on its stdin: give it a FIFO that
    # this process holds open and never writes.
    fifo = os.path.join(work, 'hold')
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    hold = os.open(fifo, os.O_RDWR)
    serr = open(os.path.join(work, 's_server.err'), 'w')
    cerr = open(os.path.join(work, 's_client.err'), 'w')
    procs = []
    try:
        srv = subprocess.Popen(
            ['openssl', 's_server', '-quiet', '-tls1_3', '-naccept', '1',
             '-accept', '127.0.0.1:%d' % PORT, '-cert', cert, '-key', key],
            stdin=hold, stdout=subprocess.PIPE, stderr=serr)
        procs.append(srv)
        # iflag=fullblock: a pipe hands out partial blocks, which
        # O_DIRECT cannot write.
        rcv = subprocess.Popen(
            ['dd', 'of=' + dst, 'bs=1M', 'iflag=fullblock', 'oflag=direct',
             'conv=fsync', 'status=none'], stdin=srv.stdout)
        procs.append(rcv)
        srv.stdout.close()
        for _ in range(200):
            if listening(PORT) or srv.poll() is not None:
                break
            time.sleep(0.05)
        if not listening(PORT):
            raise RuntimeError('openssl s_server is not listening')
        t0 = time.monotonic()
        snd = subprocess.Popen(['dd', 'if=' + dev, 'bs=1M', 'iflag=direct',
                                'status=none'], stdout=subprocess.PIPE)
        procs.append(snd)
        # -no_ign_eof: close at the end of the input (-quiet would not);
        # -nocommands: a 'Q' or 'R' at the start of a read is data.
        cli = subprocess.Popen(
            ['openssl', 's_client', '-quiet', '-no_ign_eof', '-nocommands',
             '-tls1_3', '-verify_return_error', '-CAfile', cert,
             '-connect', '127.0.0.1:%d' % PORT],
            stdin=snd.stdout, stdout=subprocess.DEVNULL, stderr=cerr)
        procs.append(cli)
        snd.stdout.close()
        rcs = [p.wait(timeout=3600) for p in (snd, cli, rcv)]
        secs = time.monotonic() - t0
        srv.wait(timeout=60)
        if any(rcs):
            raise RuntimeError('dd | openssl failed (exit codes %s): %s' % (
                rcs, open(cerr.name).read()[-500:]))
        return secs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        os.close(hold)
        serr.close()
        cerr.close()


def ferry(s, disk, sid):
    """ferry-agent --once: (seconds, bytes on the wire, summary)."""
    s.repl.allow.append('%s *' % sid)
    s.repl.stop()
    s.repl.start()
    drop_caches()
    t0 = time.monotonic()
    r = s.once([disk], sid=sid, timeout=3600)
    secs = time.monotonic() - t0
    if r.rc != 0 or not s.same(disk, sid):
        raise RuntimeError('the agent failed or the copy differs: ' +
                           r.why())
    shutil.rmtree(os.path.join(s.data, sid), ignore_errors=True)
    return secs, r.disk().get('payload_bytes', 0), r.summary


def main():
    bench = os.path.join(R.BUILD, 'bench')
    os.makedirs(bench, exist_ok=True)
    fig = Figures('baseline')
    work = tempfile.mkdtemp(prefix='baseline.', dir=bench)
    s = None
    try:
        s = repl.Setup('bench-baseline')
        # Staging on the filesystem the baseline writes to.
        s.repl.stop()
        s.data = s.repl.data_dir = os.path.join(work, 'data')
        zero, text = regions(SIZE)
        say('a %d MiB device (3/8 zeros, 1/4 text, 3/8 random) in %s' %
            (SIZE // MiB, work))
        disk = repl.Disk(os.path.join(work, 'disk.img'), SIZE, seed=7,
                         zero_regions=zero, text_regions=text)
        s.disks.append(disk)
        s.repl.start()
        cert, key = make_cert(work)
        dst = os.path.join(work, 'copy.img')

        dd_s, ferry_s, wire, summary = [], [], 0, {}
        # ABBA: the machine's load drifts; adjacent runs see the same.
        order = ''.join('ab' if r % 2 == 0 else 'ba' for r in range(ROUNDS))
        for i, which in enumerate(order):
            if which == 'a':
                say('dd | openssl s_client -> s_server | dd (%d/%d)' %
                    (len(dd_s) + 1, ROUNDS))
                drop_caches()
                dd_s.append(dd_openssl(disk.dev, dst, cert, key, work))
                if subprocess.run(['cmp', '-s', disk.img, dst]).returncode:
                    raise RuntimeError('the dd | openssl copy differs')
                os.unlink(dst)
            else:
                say('ferry-agent --once (%d/%d)' % (len(ferry_s) + 1,
                                                    ROUNDS))
                secs, wire, summary = ferry(s, disk,
                                            's-00000000base%04d' % i)
                ferry_s.append(secs)

        dd_mbs = SIZE / 1e6 / (sum(dd_s) / len(dd_s))
        ferry_mbs = SIZE / 1e6 / (sum(ferry_s) / len(ferry_s))
        ratio = ferry_mbs / dd_mbs
        met = ratio >= GOAL
        d = (summary.get('disks') or [{}])[0]
        zeros = d.get('zero_bytes', 0)
        fig.add('baseline', 'sync.rate', ferry_mbs, 'MB/s', dd_mbs, ratio,
                'ratio >= %.1f' % GOAL, 'yes' if met else 'no',
                'initial sync of a %d MiB disk, 3/8 zeros (baseline: dd | '
                'openssl s_client -> s_server | dd)' % (SIZE // MiB))
        fig.add('baseline', 'wire', wire / MiB, 'MiB', SIZE / MiB,
                wire / SIZE, label='bytes sent (ferry: frames, lz4, zeros '
                'as ranges; baseline: the whole disk through TLS)')
        print('bench-baseline: ferry %.1f MB/s, dd | openssl %.1f MB/s: '
              'ratio %.3f (goal >= %.1f %s); %d rounds' % (
                  ferry_mbs, dd_mbs, ratio, GOAL,
                  'met' if met else 'MISSED', ROUNDS))
        print('bench-baseline: bytes sent: ferry %.1f MiB, dd | openssl '
              '%.1f MiB (%.1f MiB of zeros not sent by ferry)' % (
                  wire / MiB, SIZE / MiB, zeros / MiB))
        md = ['# ferry initial sync against dd | openssl (%s)' %
              time.strftime('%Y-%m-%d', time.gmtime()), '',
              'Source: a %d MiB loop device (direct I/O) over %s: in each '
              '64 MiB, 24 MiB random, 16 MiB text, 24 MiB zeros.' % (
                  SIZE // MiB, os.path.dirname(work)),
              'Destination: a file (baseline) or a staging volume (ferry) '
              'on the same filesystem, flushed before the copy counts as '
              'done. %d CPUs, TLS 1.3 on loopback, %d rounds in ABBA '
              'order, page cache dropped before each copy.' % (
                  os.cpu_count(), ROUNDS),
              '',
              '| copy | seconds (each round) | MB/s (mean) | bytes sent |',
              '|---|---|---:|---:|',
              '| `dd bs=1M iflag=direct \\| openssl s_client` -> '
              '`openssl s_server \\| dd bs=1M oflag=direct conv=fsync` '
              '| %s | %.1f | %d |' % (', '.join('%.2f' % x for x in dd_s),
                                      dd_mbs, SIZE),
              '| ferry-agent --once -> ferry-replicator | %s | %.1f | %d |' %
              (', '.join('%.2f' % x for x in ferry_s), ferry_mbs, wire),
              '',
              'ferry / baseline: %.3f (goal >= %.1f: %s). ferry did not '
              'send the %d bytes of zeros (zero-range frames) and '
              'compressed the rest with lz4.' % (
                  ratio, GOAL, 'met' if met else 'missed', zeros)]
        with open(os.path.join(bench, 'baseline.md'), 'w') as f:
            f.write('\n'.join(md) + '\n')
        return 1 if STRICT and not met else 0
    finally:
        if s:
            s.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
