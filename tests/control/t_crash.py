"""Crash safety: kill -9 under load, restart: nothing registered is lost
and the database is intact."""
import subprocess
import threading
import time

import ferrytest as ft
from ferrytest import check

with ft.Control() as c:
    registered = {}
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n):
        i = 0
        while not stop.is_set():
            name = 'crash-%d-%d' % (n, i)
            i += 1
            try:
                sid, creds = c.register_agent(name, machine_id='%032x' % (n << 64 | i))
            except Exception:
                continue  # the daemon died under us: expected
            with lock:
                registered[sid] = name
            try:
                c.call('UpdateAgentReplicationInfoForMgn',
                       {'dataReplicationState': 'INITIAL_SYNC', 'lagSeconds': 0,
                        'replicatedDisks': [{'deviceName': '/dev/vda', 'totalStorageBytes': 8 << 30,
                                             'replicatedStorageBytes': i << 20, 'backloggedStorageBytes': 0,
                                             'rescannedStorageBytes': 0}]}, creds=creds)
            except Exception:
                pass

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    # Kill with the workers still going, once 100 registrations are
    # acknowledged (counted, not timed: a starved test may take long to
    # get there; the deadline only matters when none are) and not before
    # 2 s (about 500 on an idle machine).
    start = time.time()
    while time.time() < start + 120:
        with lock:
            if len(registered) >= 100 and time.time() >= start + 2:
                break
        time.sleep(0.1)
    c.kill9()
    stop.set()
    for t in threads:
        t.join()
    check('registrations acknowledged before the kill', len(registered) > 0, len(registered))
    r = subprocess.run(['sqlite3', c.data_dir + '/control.db', 'PRAGMA integrity_check;'],
                       capture_output=True, text=True)
    check('database integrity_check is ok after kill -9', r.stdout.strip() == 'ok', r.stdout + r.stderr)
    c.start()
    seen = set()
    for page in c.boto().get_paginator('describe_source_servers').paginate(filters={}):
        seen.update(s['sourceServerID'] for s in page['items'])
    lost = set(registered) - seen
    check('every acknowledged registration survived the kill (%d)' % len(registered), not lost, sorted(lost)[:5])
    r = c.aws('mgn', 'describe-source-servers')
    check('the restarted daemon answers the aws CLI', r is not None, r)
ft.done()
