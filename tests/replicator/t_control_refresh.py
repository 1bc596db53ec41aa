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


def parse_log(lines):
    """The replicator's log LINES, in order -> (fetches, conns, gave_up,
    connected): [start, end] line indexes of each fetch of the
    assignments a connection asked for (end None while no line shows it
    over: a fetch that finds them unchanged logs no end); [connected,
    DENIED] indexes of each connection of STRANGER (DENIED None: not
    yet); the indexes of STRANGER's "not fetched within" lines and of
    every "connected" line."""
    fetches, conns, gave_up, connected, open_ = [], [], [], [], {}
    for i, line in enumerate(lines):
        m = re.search(r': (\S+) id=(\S+): connected', line)
        if m:
            connected.append(i)
            if m.group(2) == STRANGER:
                open_[m.group(1)] = len(conns)
                conns.append([i, None])
        elif FETCHING in line:
            fetches.append([i, None])
        elif (re.search(r'ferry-control assigns \d+ source servers', line)
              or NOT_FETCHED in line):
            if fetches and fetches[-1][1] is None:
                fetches[-1][1] = i
        elif 'source server %s: %s' % (STRANGER, GAVE_UP) in line:
            gave_up.append(i)
        else:
            m = re.search(r'error: (\S+) id=%s: DENIED' % STRANGER, line)
            if m and m.group(1) in open_:
                conns[open_.pop(m.group(1))][1] = i
    return fetches, conns, gave_up, connected


def over_by(fetches, k, i):
    """Whether the log shows fetch K over before line I: its end, or the
    next fetch's start (one thread fetches, one fetch at a time)."""
    end = fetches[k][1]
    return ((end is not None and end < i) or
            (k + 1 < len(fetches) and fetches[k + 1][0] < i))


def pending_at(fetches, connected, g):
    """Whether at line G a fetch some waiting connection may have asked
    for was not over: one under way (started, not shown over), or the
    next one about to start (it starts before any connection after G
    could have asked for it)."""
    if any(start < g and not over_by(fetches, k, g)
           for k, (start, _) in enumerate(fetches)):
        return True
    later = [start for start, _ in fetches if start > g]
    return bool(later) and not any(g < c < later[0] for c in connected)


def unexcused(lines):
    """STRANGER's "not fetched within" lines in LINES taken while no
    fetch was pending (pending_at())."""
    fetches, _, gave_up, connected = parse_log(lines)
    return [g for g in gave_up if not pending_at(fetches, connected, g)]


def waits_ran_out(conns, gave_up, fetches, connected):
    """The connections in CONNS answered although no fetch started since
    they connected, each matched to a "not fetched within" line of its
    own between its connection and its answer, taken while a fetch was
    pending (the lines name no connection: any one-to-one match will
    do).  -> (matched connections, unmatched connections)."""
    free = [g for g in gave_up if pending_at(fetches, connected, g)]
    matched, unmatched = [], []
    for c, d in sorted(conns, key=lambda cd: cd[1]):
        if fetches_between(fetches, c, d):
            continue
        g = next((g for g in free if c < g < d), None)
        if g is None:
            unmatched.append((c, d))
        else:
            free.remove(g)
            matched.append((c, d))
    return matched, unmatched


def fetches_between(fetches, c, d):
    """How many fetches started between lines C and D."""
    return sum(1 for start, _ in fetches if c < start < d)


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
        extra = []

        def assign_another():
            # A fetch that finds the assignments unchanged logs no end:
            # one more server assigned makes the next one log it.
            _, creds = ctl.register_agent(
                'late%d' % (len(extra) + 2),
                disks=[{'deviceName': '/dev/vda', 'bytes': MiB,
                        'isBootDisk': True}])
            extra.append(runtime(ctl, creds))

        def one():
            s = time.monotonic()
            results.append((stranger.run(repl, 'sync', timeout=60)[1],
                            time.monotonic() - s))
        assign_another()
        start = time.monotonic()
        burst = [threading.Thread(target=one) for _ in range(8)]
        for th in burst:
            th.start()
        for th in burst:
            th.join()
        denied_logged(repl, 8)
        n_burst = len(repl.lines)
        for _ in range(6):
            assign_another()
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
        # Judged by the order of the replicator's log lines, not by how
        # fast ferry-control answers: on a starved machine a fetch can
        # outlast a connection's 5 s wait for it.  A wait that ran out
        # counts against the replicator only when no fetch was pending
        # then; the start of the one it was about to begin may still be
        # on its way into the log.
        wait_for(lambda: not unexcused(repl.lines), timeout=30)
        lines = list(repl.lines)
        all_fetches, conns, gave_up, connected = parse_log(lines)
        idle = unexcused(lines)
        burst_conns, seq_conns = conns[:8], conns[8:]
        waits = [fetches_between(all_fetches, c, d) for c, d in burst_conns]
        _, unmatched = waits_ran_out(burst_conns, gave_up, all_fetches,
                                     connected)
        burst_fetches = sum(1 for line in lines[:n_burst]
                            if 'source server %s %s' % (STRANGER, FETCHING)
                            in line)
        # Shared: one it asked for, or the next when the one it found
        # started had been asked for already; a third may start before
        # its answer is logged.  More is a fetch per connection.
        check('strangers at once: each DENIED after a fetch started since '
              'it connected (or its wait ran out with one pending), '
              'sharing them (%d fetches for 8; started while each waited: '
              '%s, at most 3)' %
              (burst_fetches, waits), len(burst_conns) == 8 and
              all(d is not None for _, d in burst_conns) and
              not unmatched and 1 <= burst_fetches < 8 and
              max(waits or [0]) <= 3,
              (burst_conns, unmatched, repl.log_tail(40)))
        # Its own fetch: the first that started since it connected; the
        # one before it too when a fetch was under way as it connected
        # (an earlier stranger's, whose wait ran out before it started).
        waits = [fetches_between(all_fetches, c, d) for c, d in seq_conns]
        _, unmatched = waits_ran_out(seq_conns, gave_up, all_fetches,
                                     connected)
        under_way = [any(s < c and not over_by(all_fetches, k, c)
                         for k, (s, _) in enumerate(all_fetches))
                     for c, _ in seq_conns]
        check('strangers one after the other: each DENIED after exactly '
              'one fetch, its own (%s)' % waits,
              len(seq_conns) == 6 and
              all(d is not None for _, d in seq_conns) and
              not unmatched and
              all(n == 1 or n == 0 or (n == 2 and u)
                  for n, u in zip(waits, under_way)),
              (seq_conns, waits, under_way, repl.log_tail(40)))
        check('strangers: none waited until its wait ran out with the '
              'fetch done or none coming: each was answered when the '
              'fetch was done (%d ran out, %d of them with no fetch '
              'pending)' % (len(gave_up), len(idle)),
              not idle, repl.log_tail(40))
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
