"""t_repl_copy: ferry-agent's initial copy and its rescan, for real.

The agent (--once, standalone) copies loop devices to a real
ferry-replicator over TLS: the staging volumes must equal the disks byte
for byte, holes must go as ZERO frames, every codec must give the same
bytes, and a second run must find by hash exchange that nothing differs
(and send nothing), then send only what changed after a write.
"""
import os

import repl
from repl import MiB, check, done, log

s = repl.Setup('agent-repl-copy')
try:
    # 64 MiB: random data, a 16 MiB hole, 4 MiB of text.  Plus a disk
    # whose size is not a multiple of the agent's read size.
    a = s.disk('a', 64 * MiB, seed=1, zero_regions=[(8 * MiB, 16 * MiB)],
               text_regions=[(30 * MiB, 4 * MiB)])
    b = s.disk('b', 24 * MiB + 12 * 1024, seed=2,
               zero_regions=[(MiB, 3 * MiB)])

    r = s.once([a, b])
    check('copy: exit 0 with a summary', r.rc == 0 and r.summary.get('ok'),
          r.why())
    check('copy: disk a equals its staging volume', s.same(a), r.why())
    check('copy: disk b (odd size) equals its staging volume', s.same(b),
          r.why())
    da, db = r.disk(0), r.disk(1)
    check('copy: every byte of both disks replicated',
          da.get('replicated_bytes') == a.size and
          db.get('replicated_bytes') == b.size, r.why())
    check('copy: the hole went as ZERO frames, not data',
          da.get('zero_bytes', 0) >= 16 * MiB and
          da.get('data_raw_bytes', 0) <= a.size - 16 * MiB, r.why())
    check('copy: text was compressed (default codec lz4)',
          0 < da.get('data_wire_bytes', 0) < da.get('data_raw_bytes', 0),
          r.why())
    check('copy: a consistency point was made and acknowledged',
          r.summary.get('cp_id', 0) >= 1 and
          s.repl.logged(lambda l: 'snapshot' in l), r.why())
    check('copy: nothing was sent twice',
          da.get('resent_bytes') == 0 and da.get('lost_bytes') == 0,
          r.why())

    # Again: the agent has no record of the replica, so it compares
    # by hash.  Nothing differs: no data frame at all.
    r = s.once([a, b])
    da = r.disk(0)
    check('rescan: exit 0', r.rc == 0, r.why())
    check('rescan: whole disk compared, nothing differs, no data sent',
          da.get('rescanned_bytes') == a.size and
          da.get('rescan_differed_bytes') == 0 and
          da.get('data_frames') == 0, r.why())
    check('rescan: under 1 % of the disk on the wire',
          da.get('payload_bytes', a.size) < a.size // 100, r.why())

    # Change 1 MiB and one 4 KiB block; only those ranges (rounded to
    # the hash chunk, 64 KiB at most) go again.
    a.write(40 * MiB, repl.rand_bytes(MiB, 7))
    a.write(5 * MiB + 8192, repl.rand_bytes(4096, 8))
    check('rescan: the disk changed', not s.same(a))
    r = s.once([a, b])
    da = r.disk(0)
    changed = MiB + 4096
    check('rescan after writes: exit 0 and the volume equals the disk',
          r.rc == 0 and s.same(a) and s.same(b), r.why())
    check('rescan after writes: only what changed was sent',
          changed <= da.get('rescan_differed_bytes', 0) <= changed +
          2 * 64 * 1024 and da.get('data_raw_bytes', 0) ==
          da.get('rescan_differed_bytes'), r.why())

    # Each codec gives the same replica (another source server each,
    # so each is a fresh copy).
    for codec, n in (('none', 1), ('zstd', 2), ('lz4', 3)):
        sid = 's-00000000000000c0%d' % n
        s.repl.allow.append('%s *' % sid)
        s.repl.stop()
        s.repl.start()
        r = s.once([a], '--compression', codec, sid=sid)
        da = r.disk(0)
        ok = r.rc == 0 and s.same(a, sid)
        if codec == 'none':
            ok = ok and da.get('data_wire_bytes') == \
                da.get('data_raw_bytes')
        else:
            ok = ok and da.get('data_wire_bytes', 0) < \
                da.get('data_raw_bytes', 0)
        check('codec %s: the volume equals the disk' % codec, ok, r.why())
finally:
    s.close()
done()
