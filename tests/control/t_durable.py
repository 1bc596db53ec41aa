"""Commits that must survive a power cut flush the database's WAL.

ferry-control runs SQLite in WAL mode with synchronous=NORMAL: a commit
survives kill -9 (t_crash) but not a power cut.  The answers a caller
cannot do without once given are committed with synchronous=FULL, which
flushes the WAL: RegisterAgentForMgn, RefreshAgentCredentialsForMgn and
RegisterReplicatorForMgn (credentials whose holder forgets the ones it
used), and every `ferry-control keys` change (a secret printed once, a
leaked key deleted).  Heartbeats stay unflushed: they are most of the
load and the next one repeats them.  Seen with strace: the flushes of
control.db-wal while each request ran.
"""
import os
import re
import subprocess
import time

import ferrytest as ft
from ferrytest import check


def wal_flushes(trace):
    """fsync/fdatasync calls on control.db-wal in an `strace -y` log."""
    with open(trace) as f:
        return len(re.findall(r'(fsync|fdatasync)\(\d+<[^>]*control\.db-wal>',
                              f.read()))


def traces_all(pid):
    """Every thread of PID has a tracer."""
    try:
        tasks = os.listdir('/proc/%d/task' % pid)
        for t in tasks:
            with open('/proc/%d/task/%s/status' % (pid, t)) as f:
                if 'TracerPid:\t0\n' in f.read():
                    return False
        return bool(tasks)
    except OSError:
        return False


def traced(c, what, fn):
    """Run FN with strace attached to the daemon; flushes of the WAL."""
    trace = os.path.join(c.tmp, 'strace.%s' % what)
    st = subprocess.Popen(['strace', '-f', '-y', '-qq', '-e',
                           'trace=fsync,fdatasync', '-o', trace,
                           '-p', str(c.proc.pid)],
                          stderr=subprocess.DEVNULL)
    # Run FN only once strace traces every thread of the daemon: a "no
    # flush" seen before that would prove nothing.
    deadline = time.time() + 30
    while not traces_all(c.proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    check('strace is attached to every thread (%s)' % what,
          traces_all(c.proc.pid))
    try:
        fn()
    finally:
        time.sleep(0.3)
        st.terminate()
        st.wait()
    return wal_flushes(trace)


with ft.Control() as c:
    sid, cr = c.register_agent('d1', machine_id='m-durable-1')
    beat = {'dataReplicationState': 'CONTINUOUS'}
    n = traced(c, 'heartbeat', lambda: [
        c.call('UpdateAgentReplicationInfoForMgn', beat, creds=cr)
        for _ in range(5)])
    check('heartbeats do not flush the WAL (%d flushes)' % n, n == 0, n)
    n = traced(c, 'register', lambda: c.register_agent(
        'd2', machine_id='m-durable-2'))
    check('RegisterAgentForMgn flushes the WAL (%d flushes)' % n, n >= 1, n)
    n = traced(c, 'refresh', lambda: c.call(
        'RefreshAgentCredentialsForMgn', {}, creds=cr, expect=200))
    check('RefreshAgentCredentialsForMgn flushes the WAL (%d flushes)' % n,
          n >= 1, n)
    n = traced(c, 'heartbeat-after', lambda: c.call(
        'UpdateAgentReplicationInfoForMgn', beat, creds=cr))
    check('... and heartbeats after it still do not (%d flushes)' % n,
          n == 0, n)
    trace = os.path.join(c.tmp, 'strace.keys')
    subprocess.run(['strace', '-f', '-y', '-qq', '-e',
                    'trace=fsync,fdatasync', '-o', trace, ft.BIN, 'keys',
                    'create', '--data-dir', c.data_dir, '--name', 'ops',
                    '--role', 'admin'], check=True, capture_output=True)
    n = wal_flushes(trace)
    check('ferry-control keys create flushes the WAL (%d flushes)' % n,
          n >= 1, n)
ft.done()
