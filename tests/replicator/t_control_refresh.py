"""A source server assigned between two polls of ferry-control: its agent
learns the replicator at once and connects before the replicator's next
poll (an hour away here).  The replicator, meeting a server not in its
assignments, fetches them now and serves it: no DENIED.  A stranger
still gets DENIED, in a few seconds at most, and a crowd of strangers
cannot make the replicator fetch more than about once a second.

How long a stranger waits is read from the replicator's log, not timed
(the test's processes may be starved of CPU): a stranger waits for one
fetch of the assignments, started after it asked and shared with the
strangers asking meanwhile, and is answered when that fetch is done, not
when its wait for it runs out (5 s, which the replicator logs)."""
import os
import re
import sys
import threading
import time

from repltest import (E_DENIED, MiB, Client, TestDir, check, control_config,
                      describe, done, make_image, need_binaries, sha256,
                      volume_path)
from t_control import Repl, issue_client, refused, runtime, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'control'))
import ferrytest  # noqa: E402

RID = 'stage-refresh'
STRANGER = 's-0000000000000dead'
FETCHING = 'is not in the assignments: fetching them'
GAVE_UP = 'the assignments were not fetched within'
NOT_FETCHED = 'cannot fetch the assignments for source server'
TRIES = 3   # the first connection's tries while its waits run out


def stranger_waits(lines):
    """{address: fetches} of each connection of STRANGER in the
    replicator's log LINES that was DENIED: how many fetches of the
    assignments for STRANGER were logged between its "connected" and its
    DENIED line."""
    waiting, waits = {}, {}
    for line in lines:
        m = re.search(r': (\S+) id=%s: connected' % STRANGER, line)
        if m:
            waiting[m.group(1)] = 0
        elif 'source server %s %s' % (STRANGER, FETCHING) in line:
            for a in waiting:
                waiting[a] += 1
        else:
            m = re.search(r'error: (\S+) id=%s: DENIED' % STRANGER, line)
            if m and m.group(1) in waiting:
                waits[m.group(1)] = waiting.pop(m.group(1))
    return waits


def denied_logged(repl, n):
    """The replicator logged N DENIED connections of STRANGER (its log
    is read by a thread: wait for it)."""
    return wait_for(lambda: repl.count(r'error: \S+ id=%s: DENIED' %
                                       STRANGER) >= n, timeout=60)


def fetch_over(lines, sid, start):
    """Index of the first line from START in LINES that ends a fetch of
    the assignments for SID (saved, or failed), or None."""
    for i in range(start, len(lines)):
        if (re.search(r'ferry-control assigns \d+ source servers',
                      lines[i]) or '%s %s' % (NOT_FETCHED, sid) in lines[i]):
            return i
    return None


def ran_out(repl, sid, n):
    """Whether the replicator put its Nth refusal of SID down to its wait
    running out before the fetch of the assignments it waited for was
    over (by the order of its log lines), once that fetch is over."""
    if not wait_for(lambda: repl.count(r'error: \S+ id=%s: DENIED' % sid)
                    >= n, timeout=60):
        return False
    lines = list(repl.lines)
    gave_up = [i for i, line in enumerate(lines)
               if 'source server %s: %s' % (sid, GAVE_UP) in line]
    if len(gave_up) < n:
        return False
    g = gave_up[n - 1]
    fetching = [i for i, line in enumerate(lines[:g])
                if 'source server %s %s' % (sid, FETCHING) in line]
    over = fetch_over(lines, sid, fetching[-1]) if fetching else None
    if over is not None and over < g:
        return False
    return wait_for(lambda: fetch_over(list(repl.lines), sid, g) is not None,
                    timeout=120)


def main():
    need_binaries()
    t = TestDir('repl-control-refresh')
    repl = None
    ctl = ferrytest.Control()
    try:
        data = t.sub('data')
        _, conf = control_config(ctl, t, RID, 'report_interval = 3600\n')
        repl = Repl(data, conf).start()
        check('setup: the replicator polled ferry-control once',
              wait_for(lambda: repl.count('reachable; reporting every '
                                          '3600 s')), repl.log_tail())

        sid, agent = ctl.register_agent(
            'late1', disks=[{'deviceName': '/dev/vda', 'bytes': 2 * MiB,
                             'isBootDisk': True}])
        rt = (runtime(ctl, agent) or {}).get('replicator')
        check('setup: ferry-control assigns the new server to the '
              'replicator at once', rt and rt['replicatorID'] == RID, rt)
        certs = t.sub('certs')
        os.makedirs(certs)
        img = t.sub('vda.img')
        make_image(img, 2 * MiB, seed=80)
        cl = Client(None, sid, [('/dev/vda', img)],
                    cert=issue_client(ctl, certs, sid), ca=ctl.ca)
        start = time.monotonic()
        rc, res, err = cl.run(repl, 'sync', timeout=60)
        took = time.monotonic() - start
        # On a starved machine the fetch can outlast the replicator's 5 s
        # wait for it (it says so, before the fetch's end): the agent's
        # next try counts, once that fetch is over.  A refusal not put
        # down to that is final.
        tries = 1
        while (tries < TRIES and refused(res, E_DENIED) and
               ran_out(repl, sid, tries)):
            tries += 1
            rc, res, err = cl.run(repl, 'sync', timeout=60)
        # One fetch, and one more for each try after a fetch that failed.
        fetches = 1 + repl.count('%s %s' % (NOT_FETCHED, sid))
        vol = volume_path(data, sid, '/dev/vda')
        check('connecting before the next poll: served, not DENIED '
              '(%.1f s%s)' % (took, '' if tries == 1 else
                              '; try %d, the waits before it ran out' %
                              tries),
              rc == 0 and res and res['ok'] and sha256(vol) == sha256(img),
              '%s %s\n%s' % (describe(res), err.strip(), repl.log_tail()))
        check('the replicator said why it fetched the assignments',
              repl.count('source server %s %s' % (sid, FETCHING)) ==
              fetches, repl.log_tail())
        rc, res, err = cl.run(repl, 'sync', timeout=60)
        check('the next connection finds it without a fetch',
              rc == 0 and res and res['ok'] and
              repl.count(FETCHING) == fetches, repl.log_tail())

        # Strangers: a burst of 8 at once, then 6 one after the other.
        stranger = Client(None, STRANGER, [('/dev/vda', img)],
                          cert=issue_client(ctl, certs, STRANGER),
                          ca=ctl.ca)
        results = []

        def one():
            s = time.monotonic()
            results.append((stranger.run(repl, 'sync', timeout=60)[1],
                            time.monotonic() - s))
        start = time.monotonic()
        burst = [threading.Thread(target=one) for _ in range(8)]
        for th in burst:
            th.start()
        for th in burst:
            th.join()
        denied_logged(repl, 8)
        n_burst = len(repl.lines)
        for _ in range(6):
            one()
        took = time.monotonic() - start
        denied_logged(repl, 14)
        fetches = repl.count('source server %s %s' % (STRANGER, FETCHING))
        slowest = max(s for _, s in results)
        # An answer at all: the client gives up after 60 s.
        check('strangers: all DENIED (slowest %.1f s)' % slowest,
              len(results) == 14 and
              all(refused(r, E_DENIED) for r, _ in results),
              [(describe(r), s) for r, s in results])
        waits = stranger_waits(repl.lines[:n_burst])
        burst_fetches = sum(1 for line in repl.lines[:n_burst]
                            if 'source server %s %s' % (STRANGER, FETCHING)
                            in line)
        check('strangers at once: each DENIED after a fetch started since '
              'it connected, sharing them (%d fetches for 8)' %
              burst_fetches, len(waits) == 8 and
              all(n >= 1 for n in waits.values()) and
              1 <= burst_fetches < 8, (waits, repl.log_tail(40)))
        waits = stranger_waits(repl.lines[n_burst:])
        check('strangers one after the other: each DENIED after exactly '
              'one fetch, its own (%s)' % sorted(waits.values()),
              len(waits) == 6 and all(n == 1 for n in waits.values()),
              (waits, repl.log_tail(40)))
        gave_up = repl.count('source server %s: %s' % (STRANGER, GAVE_UP))
        check('strangers: none waited until its wait ran out: each was '
              'answered when the fetch was done (%d ran out)' % gave_up,
              gave_up == 0, repl.log_tail(40))
        check('strangers: %d fetches in %.1f s, at most one a second' %
              (fetches, took), 1 <= fetches <= took + 1, repl.log_tail())
        check('replicator stops cleanly', repl.stop() == 0, repl.log_tail())
    finally:
        if repl:
            repl.stop()
        ctl.__exit__(None, None, None)
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
