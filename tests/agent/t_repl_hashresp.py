"""t_repl_hashresp: a HASH_RESP that does not answer its HASH_REQ.

The agent checks that each HASH_RESP answers a HASH_REQ still waiting
for it (its seq), of the disk it names, with the offset, chunk and count
it asked for (agent/rescan.c, rescan_on_hash_resp()); one that does not
must take the link down, and the rescan go on from what it had
compared, on a new connection.  (Before, the agent asked again from the
offset of the segment answered wrongly: the reads of the segment before
it that were not queued yet were skipped, never compared, and the
staging volume could stay different from the disk.  And it ignored a
HASH_RESP naming a disk it does not have, or a seq no segment waits
for: the segment waiting for it never got its hashes, and the rescan
hung for good, PING/PONG keeping the link up.)

The real agent and the real replicator, with a TLS man in the middle
(tlsproxy.py) that rewrites one HASH_RESP on its first connection,
re-encoded so that only its meaning is wrong, not its framing; later
connections pass unchanged.  The staging volume holds an older copy of
the disk (a first --once run, then writes scattered over the disk); a
second --once run rescans it through the proxy, with --read-chunk 4096:
hash chunks of 4 KiB, 16 MiB per HASH_REQ, three of them for the 48 MiB
disk, two in flight at a time.  (--queue-depth 256: with the default 32
such a rescan took 14-39 s here, most of it the replication loop's
100 ms poll timeout after each queue of reads that sent nothing.)
Four times:

  count   the first HASH_RESP, one hash short (count - 1);
  offset  the second HASH_RESP, one chunk further on, held back with
          the first until it comes, so that the agent takes both before
          it reads any of the first segment (the case that skipped it);
  disk    the first HASH_RESP, naming disk 1 of this one-disk
          connection;
  seq     the first HASH_RESP, with a seq the agent never used.

With the old "ask again" count and offset fail the link-down and
reconnect checks, and offset also leaves the volume different: the
writes in the first 16 MiB were never compared (32-33 MiB of 48
rescanned).  Before disk and seq were checked, those two runs hung: each
run is killed after LIMIT s, which fails its checks instead of hanging
the suite (it takes about a second).
"""
import re
import struct
import subprocess
import time

import repl
import tlsproxy
from repl import MiB, check, done, log

HASH_RESP = 6
RESP = struct.Struct('>IIQII')      # disk, chunk, offset, count, reserved
KiB = 1024
LIMIT = 60                          # s, for one --once run


class BadHashResp(tlsproxy.Pass):
    """On the proxy's first connection, HASH_RESP number NTH from the
    replicator goes to the agent as CHANGE(seq, disk, chunk, offset,
    count, hashes) -> (seq, disk, chunk, offset, count, hashes) makes
    it.  With NTH > 1 everything from the first HASH_RESP on is held
    back and goes with the rewritten one (or, after HOLD_LIMIT s without
    it, as it came)."""

    def __init__(self, nth, change, hold_limit=10.0):
        self.nth = nth
        self.change = change
        self.hold_limit = hold_limit
        self.count = 0
        self.held = []
        self.held_since = None
        # (seq, disk, chunk, offset, count): as it came, as it went
        self.asked = self.sent = None
        self.timed_out = False

    def from_replicator(self, conn, f):
        if conn.n != 1 or self.sent or self.timed_out:
            conn.to_agent(f)
            return
        if f.type == HASH_RESP:
            self.count += 1
        if self.count == 0:
            conn.to_agent(f)
            return
        if f.type != HASH_RESP or self.count < self.nth:
            self.held.append(f)
            self.held_since = self.held_since or time.time()
            return
        disk, chunk, off, count, res = RESP.unpack_from(f.payload)
        hashes = f.payload[RESP.size:]
        s2, d2, c2, o2, n2, h2 = self.change(f.seq, disk, chunk, off,
                                             count, hashes)
        self.asked = (f.seq, disk, chunk, off, count)
        self.sent = (s2, d2, c2, o2, n2)
        f.seq = s2
        f.payload = RESP.pack(d2, c2, o2, n2, res) + h2
        for h in self.held + [f]:
            conn.to_agent(h)
        self.held = []

    def tick(self, conn):
        if conn.n == 1 and self.held and time.time() - self.held_since > self.hold_limit:
            self.timed_out = True
            for h in self.held:
                conn.to_agent(h)
            self.held = []


def answers(dev, port, asked, sent):
    """What the agent's log says of a HASH_RESP that answers something
    else than asked (rescan.c's messages): a regular expression."""
    _, _, c1, o1, n1 = asked
    s2, _, c2, o2, n2 = sent
    return re.escape('%s: HASH_RESP %d answers offset %d chunk %d count %d, '
                     'asked %d %d %d' % (dev, s2, o2, c2, n2, o1, c1, n1))


def wrong_disk(dev, port, asked, sent):
    return re.escape('%s: HASH_RESP %d answers disk %d, asked %d' %
                     (dev, sent[0], sent[1], asked[1]))


def no_request(dev, port, asked, sent):
    """The seq asked is among those still waiting."""
    return re.escape('replicator 127.0.0.1:%d: HASH_RESP %d (disk %d, offset '
                     '%d) answers no outstanding HASH_REQ; outstanding: ' %
                     (port, sent[0], sent[1], sent[3])) + \
        r'(\d+ )*%d( \d+)*' % asked[0]


# name, which HASH_RESP, the change, the message expected
CASES = (
    ('count', 1, lambda s, d, c, o, n, h: (s, d, c, o, n - 1, h[:-16]),
     answers),
    ('offset', 2, lambda s, d, c, o, n, h: (s, d, c, o + c, n, h), answers),
    ('disk', 1, lambda s, d, c, o, n, h: (s, 1, c, o, n, h), wrong_disk),
    ('seq', 1, lambda s, d, c, o, n, h: ((1 << 40) + s, d, c, o, n, h),
     no_request),
)

# Scattered writes, in each 16 MiB segment: near its start, in its
# middle and in its last chunks (the last 4 KiB of the disk too).
REGIONS = ((12 * KiB, 4 * KiB), (5 * MiB + 64 * KiB, 256 * KiB),
           (15 * MiB + 512 * KiB, 64 * KiB), (16 * MiB - 8 * KiB, 4 * KiB),
           (17 * MiB, 8 * KiB), (24 * MiB, MiB), (32 * MiB - 4 * KiB, 4 * KiB),
           (40 * MiB + 4 * KiB, 128 * KiB), (48 * MiB - 4 * KiB, 4 * KiB))
CHANGED = sum(n for _, n in REGIONS)


def once_bounded(s, disks, *extra, **kw):
    """s.once(), but a run still going after LIMIT s is killed and
    comes back with rc None and its log so far, so that a hang fails
    the checks instead of hanging the suite."""
    p = s.popen(disks, *extra, **kw)
    try:
        out, err = p.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return repl.Run(None, out, err + '\n(killed after %d s)' % LIMIT)
    return repl.Run(p.returncode, out, err)


def differing(s, disk, block=4 * KiB):
    """Where the staging volume differs from the disk: 'OFF+LEN' in
    KiB, for a FAIL line."""
    runs = []
    try:
        with open(disk.img, 'rb') as f, open(s.volume(disk), 'rb') as g:
            for off in range(0, disk.size, block):
                if f.read(block) != g.read(block):
                    if runs and runs[-1][1] == off:
                        runs[-1][1] = off + block
                    else:
                        runs.append([off, off + block])
    except OSError as e:
        return str(e)
    return 'volume differs at %s' % ', '.join(
        '%d+%d KiB' % (o // KiB, (e - o) // KiB) for o, e in runs[:12])


s = repl.Setup('agent-repl-hashresp')
try:
    a = s.disk('a', 48 * MiB, seed=11, zero_regions=[(20 * MiB, 2 * MiB)])
    r = s.once([a])
    check('first copy: the staging volume equals the disk',
          r.rc == 0 and s.same(a), r.why())

    for k, (name, nth, change, expect) in enumerate(CASES):
        for i, (off, n) in enumerate(REGIONS):
            a.write(off, repl.rand_bytes(n, 1000 * (k + 1) + i))
        changed = not s.same(a)
        hook = BadHashResp(nth, change)
        proxy = tlsproxy.FrameProxy(s.pki, s.repl.port,
                                    s.pki.client(repl.SID), hook)
        t0 = time.time()
        r = once_bounded(s, [a], '--read-chunk', 4096, '--queue-depth',
                         256, port=proxy.port)
        took = time.time() - t0
        proxy.close()
        da = r.disk(0)
        conns = '; '.join('connection %d: %s from the agent, %s from the '
                          'replicator%s' % (
                              c.n, dict(c.seen['agent']),
                              dict(c.seen['replicator']),
                              ', ' + c.error if c.error else '')
                          for c in proxy.conns)
        log('%s: rescan through the proxy took %.1f s; %s' %
            (name, took, conns))
        check('%s: the disk changed since the first copy' % name, changed)
        check('%s: the proxy rewrote HASH_RESP number %d of its first '
              'connection' % (name, nth),
              hook.sent is not None and not hook.timed_out,
              'HASH_RESPs seen %d, held back too long: %s; %s' %
              (hook.count, hook.timed_out, conns))
        check('%s: the agent finished within %d s' % (name, LIMIT),
              r.rc is not None, 'it took %.1f s: killed\n%s' %
              (took, r.why()))
        if hook.sent:
            why = expect(a.dev, proxy.port, hook.asked, hook.sent)
        else:
            why = re.escape('HASH_RESP (none rewritten)')
        msg = re.escape('connection to the replicator lost: ') + why + ';'
        line = [ln for ln in r.err.splitlines() if re.search(msg, ln)]
        if line:
            log('%s: %s' % (name, line[0]))
        check('%s: the agent took the link down for it (rescan.c\'s '
              'message in its log)' % name, line,
              'no line matching "%s"\n%s' % (msg, r.why()))
        check('%s: the agent reconnected, and the second connection '
              'passed unchanged' % name,
              proxy.accepted >= 2 and
              proxy.conns[1].seen['replicator']['HASH_RESP'] >= 1 and
              proxy.conns[1].seen['replicator']['WELCOME'] == 1,
              conns + '\n' + r.why())
        same = s.same(a)
        check('%s: rc 0, and the staging volume equals the disk' % name,
              r.rc == 0 and same,
              (differing(s, a) + '\n' if not same else '') + r.why())
        check('%s: the whole disk compared, only about what changed sent'
              % name,
              da.get('rescanned_bytes', 0) >= a.size and
              da.get('rescan_differed_bytes', 0) >= CHANGED and
              da.get('data_raw_bytes', 0) + da.get('zero_bytes', 0) <=
              4 * CHANGED, r.why())
finally:
    s.close()
done()
