"""Point-in-time policies with ferry-control: a source server's own
pitPolicy (MGN's rules, sent with its assignment) decides when its
snapshots are taken, not the replicator's pit_policy; an invalid one is
logged with the server's ID and the replicator's pit_policy applies; no
policy at all (null) also leaves the server to pit_policy; the policy is
kept with the saved assignments across a restart without ferry-control.

The replicator's pit_policy is 1s:1h (a snapshot at each CP a second
after the last); the server's own is one a minute, so that over a few
seconds of CPs the first takes several snapshots and the second one.

Policies are set through ferry-control's API (UpdateReplicationConfiguration,
as an administrator would), except the invalid one: the API refuses it, so
it is written into ferry-control's database, as one edited by hand or
written by another version might hold it."""
import json
import os
import sqlite3
import subprocess
import sys
import time

from repltest import (MiB, REPLICATOR, Client, TestDir, check,
                      control_config, control_pit_policy, describe, done,
                      make_image, need_binaries, parse_json)
from t_control import Repl, issue_client, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'control'))
import ferrytest  # noqa: E402

RID = 'stage-pit'
MINUTELY = [{'ruleID': 1, 'units': 'MINUTE', 'interval': 1,
             'retentionDuration': 60, 'enabled': True},
            {'ruleID': 2, 'units': 'DAY', 'interval': 1,
             'retentionDuration': 7, 'enabled': False}]
INVALID = [{'ruleID': 9, 'units': 'SECOND', 'interval': 1,
            'retentionDuration': 60, 'enabled': True}]


def snapshots(data, sid):
    r = subprocess.run([REPLICATOR, 'snapshot', 'list', '--data-dir', data,
                        '--source-id', sid], capture_output=True, text=True,
                       timeout=60)
    js = parse_json(r.stdout.replace('\n', ' ')) if r.returncode == 0 \
        else None
    if not js or not js['source_servers']:
        return []
    return js['source_servers'][0]['snapshots']


def write_pit_policy(ctl, sid, rules):
    """Store RULES as SID's policy in CTL's database, bypassing the API's
    checks (which would refuse them); ferry-control reads it at each
    request."""
    db = sqlite3.connect(os.path.join(ctl.data_dir, 'control.db'),
                         timeout=30)
    try:
        with db:
            text, = db.execute('SELECT doc FROM repl_configs WHERE '
                               'source_server_id = ?', (sid,)).fetchone()
            doc = json.loads(text)
            doc.setdefault('ferry', {})['pitPolicy'] = rules
            db.execute('UPDATE repl_configs SET doc = ? WHERE '
                       'source_server_id = ?', (json.dumps(doc), sid))
    finally:
        db.close()


def saved_policy(data, sid):
    """SID's pitPolicy in the saved assignments ('absent' if SID is not
    there)."""
    try:
        with open(os.path.join(data, 'control-assignments.json')) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return 'absent'
    for s in doc['sourceServers']:
        if s['sourceServerID'] == sid:
            return s.get('pitPolicy')
    return 'absent'


def main():
    need_binaries()
    t = TestDir('repl-control-pit')
    repl = None
    ctl = ferrytest.Control()
    try:
        sids, clients, imgs = {}, {}, {}
        for name in ('own', 'bad'):
            sids[name], _ = ctl.register_agent(
                'pit-' + name, disks=[{'deviceName': '/dev/vda',
                                       'bytes': 1 * MiB,
                                       'isBootDisk': True}])
        control_pit_policy(ctl, MINUTELY, sids['own'])
        write_pit_policy(ctl, sids['bad'], INVALID)
        data = t.sub('data')
        _, conf = control_config(ctl, t, RID, 'pit_policy = 1s:1h\n')
        repl = Repl(data, conf).start()
        check('setup: both servers assigned, their policies saved',
              wait_for(lambda: saved_policy(data, sids['own']) == MINUTELY
                       and saved_policy(data, sids['bad']) == INVALID),
              repl.log_tail())

        certs = t.sub('certs')
        os.makedirs(certs)
        for name, sid in sids.items():
            imgs[name] = t.sub('%s.img' % name)
            make_image(imgs[name], 1 * MiB, seed=60)
            clients[name] = Client(None, sid, [('/dev/vda', imgs[name])],
                                   cert=issue_client(ctl, certs, sid),
                                   ca=ctl.ca)

        def push(name, cmd, seed):
            make_image(imgs[name], 1 * MiB, seed=seed)
            rc, res, err = clients[name].run(repl, cmd, timeout=120)
            return rc == 0 and res and res['ok'], \
                '%s %s\n%s' % (describe(res), err.strip(), repl.log_tail())

        # A sync and three rescans a second apart: a CP each.
        for name in sids:
            ok, why = push(name, 'sync', 61)
            check('%s: initial sync' % name, ok, why)
        for i in range(3):
            time.sleep(1.1)
            for name in sids:
                ok, why = push(name, 'rescan', 62 + i)
                check('%s: rescan %d' % (name, i + 1), ok, why)
        own = len(snapshots(data, sids['own']))
        check('the server\'s own policy (one a minute) decides: 1 '
              'snapshot, not the pit_policy\'s 4 (%d)' % own, own == 1,
              snapshots(data, sids['own']))
        bad = len(wait_for(lambda: len(snapshots(data, sids['bad'])) >= 4
                           and snapshots(data, sids['bad']), timeout=5)
                  or [])
        check('an invalid policy: the pit_policy 1s:1h applies, 4 '
              'snapshots (%d)' % bad, bad == 4, repl.log_tail())
        said = [line for line in repl.lines
                if 'source server %s:' % sids['bad'] in line]
        check('the invalid policy is logged with the server ID, the fault '
              'and the policy used instead: %s' % (said[:1],),
              len(said) == 1 and
              'pitPolicy rule 9: units SECOND is not MINUTE, HOUR or DAY'
              in said[0] and 'pit_policy (1s:1h)' in said[0],
              repl.log_tail())
        time.sleep(2.5)
        check('... once, not at every poll',
              repl.count('source server %s:' % sids['bad']) == 1,
              repl.log_tail())

        # The policy is kept with the saved assignments.
        ctl.stop()
        check('replicator stops', repl.stop() == 0, repl.log_tail())
        repl = Repl(data, conf).start()
        time.sleep(1.1)
        ok, why = push('own', 'rescan', 70)
        own = snapshots(data, sids['own'])
        check('restarted without ferry-control: the saved policy still '
              'decides (1 snapshot, %d)' % len(own), ok and len(own) == 1,
              '%s %s' % (why, own))

        # No policy at ferry-control: the replicator's pit_policy.
        ctl.start()
        control_pit_policy(ctl, None, sids['own'])
        check('ferry-control back, the server without a policy',
              wait_for(lambda: saved_policy(data, sids['own']) is None,
                       timeout=90), repl.log_tail())
        ok, why = push('own', 'rescan', 71)
        own = wait_for(lambda: len(snapshots(data, sids['own'])) == 2 and
                       snapshots(data, sids['own']), timeout=5)
        check('no policy at ferry-control: the pit_policy applies (a '
              'second snapshot)', ok and own, why)
        check('replicator stops cleanly', repl.stop() == 0, repl.log_tail())
    finally:
        if repl:
            repl.stop()
        ctl.__exit__(None, None, None)
        t.cleanup()
    done()


if __name__ == '__main__':
    main()
