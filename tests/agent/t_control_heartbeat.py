"""t_control_heartbeat: heartbeats, runtime configuration and commands,
between the agent's control thread and a real ferry-control.

Driven through ferry-control-test (the control code of ferry-agent with
the test in the replication thread's place), so that each heartbeat
carries a status the test chose and ferry-control's answer to it
(`aws mgn describe-source-servers`) can be checked exactly: state,
per-disk counters, lag, ETA, backlog, errors.  The runtime configuration
follows what the administrator changes (a replicator registering,
bandwidth throttling, pause); every command queued by `aws mgn` reaches
the queue and is acknowledged; `uninstall` ends the agent and revokes its
credentials.  Disk discovery without `devices` finds this machine's root
disk (the harness never touches disks).
"""
import json
import os
import re
import subprocess

from agentctl import (FERRYCTL, Setup, check, done, log, wait_for,
                      ferrytest)


def root_disk():
    """/dev/NAME of the disk under /, by lsblk (None: no block device)."""
    src = subprocess.run(['findmnt', '-n', '-o', 'SOURCE', '/'],
                         capture_output=True, text=True).stdout.strip()
    if not src.startswith('/dev/'):
        return None
    out = subprocess.run(['lsblk', '-n', '-s', '-o', 'NAME,TYPE', src],
                         capture_output=True, text=True).stdout
    disks = [ln.split()[0].lstrip('`|-') for ln in out.splitlines()
             if ln.split() and ln.split()[-1] == 'disk']
    return '/dev/' + re.sub(r'^[^a-z0-9]+', '', disks[0]) if disks else None


def size_of(dev):
    """Bytes of DEV from sysfs (this machine may not let even root open
    its own disk)."""
    name = os.path.basename(os.path.realpath(dev))
    return int(open('/sys/class/block/%s/size' % name).read()) * 512


def main():
    with Setup() as s:
        conf = s.write_conf('h')
        h = s.harness(conf)
        sid = h.wait_ready()
        check('harness: control_init registers', sid, h.log()[-800:])
        if not sid:
            return
        srv = s.server(sid)
        disks = srv['sourceProperties']['disks']
        root = root_disk()
        log('root disk %s; discovered %s' % (root, disks))
        names = [d['deviceName'] for d in disks]
        check('discovery: the root disk is registered', root is None or
              root in names, names)
        check('discovery: no loop, ram, zram, dm or md device',
              not any(re.match(r'/dev/(loop|ram|zram|dm-|md)', n)
                      for n in names), names)
        check('discovery: sizes are the devices\' sizes',
              all(d['bytes'] == size_of(d['deviceName']) for d in disks),
              disks)
        rt = wait_for('runtime', lambda: h.runtimes())
        check('runtime configuration: the server, the certificate, its '
              'disks, no replicator yet', rt and
              ('server %s replicator - -' % sid) in rt[0] and
              ' cert 1 ' in rt[0] and rt[0].endswith('disks ' +
                                                     ' '.join(names)), rt)
        if not names:
            return
        disk = names[0]
        total = [d['bytes'] for d in disks if d['deviceName'] == disk][0]

        def shown(pred):
            def f():
                x = s.server(sid)['dataReplicationInfo']
                return x if pred(x) else None
            return wait_for('ferry-control to show it', f, limit=30)

        def rd(x):
            return [d for d in x.get('replicatedDisks', [])
                    if d['deviceName'] == disk][0]

        def dstat(state, replicated, **kw):
            d = {'deviceName': disk, 'state': state, 'total': total,
                 'replicated': replicated, 'rescanned': 0, 'backlog': 0,
                 'sent': replicated}
            d.update(kw)
            return d

        # INITIAL_SYNC: a quarter copied, an ETA, no lag yet.
        h.set_status('INITIAL_SYNC', [dstat('INITIAL_SYNC', total // 4)],
                     eta=600)
        x = shown(lambda x: x.get('dataReplicationState') ==
                  'INITIAL_SYNC' and rd(x)['replicatedStorageBytes'] ==
                  total // 4)
        check('heartbeat: INITIAL_SYNC and the copied bytes', x, x)
        check('heartbeat: totalStorageBytes, an ETA, no lag during the '
              'copy', x and rd(x)['totalStorageBytes'] == total and
              'etaDateTime' in x and 'lagDuration' not in x, x)
        st = h.status()
        out = subprocess.run([FERRYCTL, 'status', '--state-dir', h.state],
                             capture_output=True, text=True)
        check('ferryctl status: state, disk, progress bar with percent',
              'INITIAL_SYNC' in out.stdout and disk in out.stdout and
              '[########' in out.stdout and '25.0%' in out.stdout and
              'ETA             10m00s' in out.stdout, out.stdout)
        js = subprocess.run([FERRYCTL, 'status', '--json', '--state-dir',
                             h.state], capture_output=True, text=True)
        try:
            j = json.loads(js.stdout)
        except ValueError:
            j = {}
        check('ferryctl status --json: the same for scripts',
              j.get('running') is True and j['sourceServerID'] == sid and
              j['dataReplicationState'] == 'INITIAL_SYNC' and
              j['disks'][0]['replicatedStorageBytes'] == total // 4 and
              j['disks'][0]['sentBytes'] == total // 4 and
              j['etaSeconds'] == 600, js.stdout[:800])
        log('status.json: %s' % json.dumps(st)[:300])

        # CONTINUOUS with lag and a backlog.
        h.set_status('CONTINUOUS', [dstat('CONTINUOUS', total,
                                          backlog=1 << 20)], lag_ms=3500)
        x = shown(lambda x: x.get('dataReplicationState') == 'CONTINUOUS'
                  and x.get('lagDuration') == 'PT3S')
        check('heartbeat: CONTINUOUS, lag 3.5 s shown as PT3S', x, x)
        check('heartbeat: replicated = total, backlog bytes, no ETA',
              x and rd(x)['replicatedStorageBytes'] == total and
              rd(x)['backloggedStorageBytes'] == 1 << 20 and
              'etaDateTime' not in x, x)

        # Behind, with MGN's NOT_CONVERGING error.
        h.set_status('BACKLOG', [dstat('BACKLOG', total, backlog=5 << 30)],
                     lag_ms=120000, eta=300, error='NOT_CONVERGING',
                     raw='behind for 600 s')
        x = shown(lambda x: x.get('dataReplicationState') == 'BACKLOG')
        check('heartbeat: BACKLOG with NOT_CONVERGING and its detail',
              x and x.get('dataReplicationError') ==
              {'error': 'NOT_CONVERGING', 'rawError': 'behind for 600 s'} and
              x.get('lagDuration') == 'PT2M' and 'etaDateTime' in x, x)
        h.set_status('RESCAN', [dstat('RESCAN', total,
                                      rescanned=total // 2)])
        x = shown(lambda x: x.get('dataReplicationState') == 'RESCAN')
        check('heartbeat: RESCAN with rescanned bytes; the error cleared',
              x and rd(x)['rescannedStorageBytes'] == total // 2 and
              'dataReplicationError' not in x, x)
        h.set_status('DISCONNECTED', [dstat('DISCONNECTED', total)],
                     error='UNSTABLE_NETWORK', raw='replicator gone')
        x = shown(lambda x: x.get('dataReplicationState') == 'STALLED')
        check('heartbeat: a lost replicator is STALLED at the service',
              x and x['dataReplicationError']['error'] ==
              'UNSTABLE_NETWORK', x)
        h.set_status('CONTINUOUS', [dstat('CONTINUOUS', total)])
        shown(lambda x: x.get('dataReplicationState') == 'CONTINUOUS')

        # Runtime configuration follows the administrator.
        st_, _, r = s.ctl.call('RegisterReplicatorForMgn', {
            'replicatorID': 'stage-t', 'address': '127.0.0.1',
            'port': 1500, 'capacityBytes': 1 << 50,
            'freeBytes': 1 << 49}, creds=s.ctl.replicator)
        rt = wait_for('a replicator in the runtime', lambda: [
            ln for ln in h.runtimes() if 'replicator stage-t 127.0.0.1 1500'
            in ln])
        check('runtime: the replicator ferry-control assigns', rt,
              h.runtimes())
        s.ctl.aws('mgn', 'update-replication-configuration',
                  '--source-server-id', sid, '--bandwidth-throttling', '8')
        rt = wait_for('throttling in the runtime', lambda: [
            ln for ln in h.runtimes() if 'bandwidth 1000000 codec 1' in ln])
        check('runtime: 8 Mbps throttling as 1000000 bytes/s, zstd', rt,
              h.runtimes()[-1:])

        # Commands: queued, acknowledged.
        creds = h.creds()

        def pending():
            st_, _, r = ferrytest.call(s.ctl, 'GetAgentCommandForMgn', {},
                                       creds=creds)
            return r.get('commands') if st_ == 200 else ['HTTP %d' % st_]

        for op, cmd, flag in [('pause-replication', 'pause', 'paused 1'),
                              ('resume-replication', 'resume', 'paused 0'),
                              ('stop-replication', 'stop', 'stopped 1'),
                              ('start-replication', 'start', 'stopped 0')]:
            n = h.commands().count(cmd)
            s.ctl.aws('mgn', op, '--source-server-id', sid)
            got = wait_for('command ' + cmd,
                           lambda: h.commands().count(cmd) > n)
            check('aws mgn %s: "%s" reaches the command queue' % (op, cmd),
                  got, h.commands())
            check('"%s" is acknowledged' % cmd,
                  wait_for('ack', lambda: pending() == [], limit=20),
                  pending())
            rt = wait_for('runtime ' + flag, lambda: flag in
                          (h.runtimes() or [''])[-1])
            check('"%s": the runtime configuration follows (%s)' %
                  (cmd, flag), rt, h.runtimes()[-1:])
            h.set_status('CONTINUOUS', [dstat('CONTINUOUS', total)])

        # Uninstall: acknowledged, credentials revoked, the agent ends.
        s.ctl.aws('mgn', 'disconnect-from-service', '--source-server-id',
                  sid)
        ended = wait_for('the harness to end', lambda: not h.alive())
        check('uninstall: queued, then the agent stops by itself',
              ended and 'uninstall' in h.commands() and
              h.proc.returncode == 0, h.out()[-500:] + h.log()[-500:])
        reg = h.registration()
        check('uninstall: registration marked disconnected, credentials '
              'gone', reg and reg.get('disconnectedDateTime') and
              'credentials' not in reg, reg)
        st_, hdrs, _ = s.ctl.call('GetAgentRuntimeConfigurationForMgn', {},
                                  creds=creds)
        check('uninstall: the acknowledgement revoked the credentials',
              st_ in (400, 403) and hdrs.get('x-amzn-errortype') ==
              'UnrecognizedClientException', (st_, hdrs))
        check('uninstall: ferry-control shows DISCONNECTED',
              s.server(sid)['dataReplicationInfo']['dataReplicationState']
              == 'DISCONNECTED')
        r = subprocess.run([h.proc.args[0], '--config', conf],
                           capture_output=True, text=True)
        check('after uninstall: a start without the installer says to '
              'reinstall', r.returncode == 1 and 'disconnected' in r.stderr
              and 'run the installer again' in r.stderr, r.stderr)


main()
done()
