"""t_control_agent: the control side inside the real ferry-agent, with its
replication thread.

Commands queued by `aws mgn pause-replication` / `resume-replication`
reach ferry-agent's replication thread (its status turns PAUSED and back)
and are acknowledged; `disconnect-from-service` makes the agent stop by
itself and exit 0, its credentials revoked.  A registered agent restarted
while ferry-control is down starts on its cached runtime configuration
and heartbeats again once ferry-control is back.

ferry-agent gets a loop device and a tracker-ctl that does not exist, so
its replication thread reports the missing tracker and touches no disk.
It then loads ferry.ko itself (modprobe, here a stand-in first in PATH
that says what a kernel without the module's build says), and its error
says what modprobe said and what to do.
"""
import os

from agentctl import Setup, check, clean_env, done, ferrytest, wait_for

NOT_FOUND = ('modprobe: FATAL: Module ferry not found in directory '
             '/lib/modules/9.9.9-test')


def fake_modprobe(s):
    """A modprobe that records its arguments and fails as one does on a
    kernel DKMS built no module for; the environment that runs it."""
    d = os.path.join(s.tmp, 'fakebin')
    os.makedirs(d, exist_ok=True)
    calls = os.path.join(s.tmp, 'modprobe.calls')
    with open(os.path.join(d, 'modprobe'), 'w') as f:
        f.write('#!/bin/sh\necho "$*" >>%s\necho "%s" >&2\nexit 1\n'
                % (calls, NOT_FOUND))
    os.chmod(os.path.join(d, 'modprobe'), 0o755)
    return calls, clean_env(PATH=d + ':' + os.environ.get('PATH', ''))


def main():
    with Setup() as s:
        disk = s.loop('disk')
        conf = s.write_conf('a', devices=disk.dev)
        calls, env = fake_modprobe(s)
        a = s.agent(conf, env=env)
        sid = a.wait_registered()
        check('registered', sid, a.log()[-600:])
        if not sid:
            return
        st = wait_for('a heartbeat', lambda: a.status() and
                      a.status()['control']['lastHeartbeatDateTime'] and
                      a.status())
        x = s.server(sid)['dataReplicationInfo']
        check('the replication thread\'s error reaches ferry-control '
              '(no tracker here)', x.get('dataReplicationError', {}).get(
                  'error') == 'UNSUPPORTED_VM_CONFIGURATION' and
              'ferry-ctl' in x['dataReplicationError'].get('rawError', ''),
              x)
        raw = x.get('dataReplicationError', {}).get('rawError', '')
        check('... after trying modprobe ferry itself, whose reason it '
              'gives with what to do', 'modprobe ferry exited with 1: ' +
              NOT_FOUND in raw and 'dkms autoinstall -k ' in raw, raw)
        check('... modprobe was asked for ferry',
              os.path.exists(calls) and 'ferry' in open(calls).read().split(),
              os.path.exists(calls) and open(calls).read())
        creds = a.creds()

        def pending():
            code, _, r = ferrytest.call(s.ctl, 'GetAgentCommandForMgn', {},
                                        creds=creds)
            return r.get('commands') if code == 200 else ['HTTP %d' % code]

        s.ctl.aws('mgn', 'pause-replication', '--source-server-id', sid)
        ok = wait_for('PAUSED', lambda: a.status()['dataReplicationState']
                      == 'PAUSED' and a.status()['paused'])
        check('pause: the replication thread pauses (status PAUSED)', ok,
              a.status())
        check('pause: logged and acknowledged', 'command pause' in a.log()
              and wait_for('ack', lambda: pending() == [], limit=20),
              a.log()[-500:])
        s.ctl.aws('mgn', 'resume-replication', '--source-server-id', sid)
        ok = wait_for('resumed', lambda: a.status()['dataReplicationState']
                      != 'PAUSED' and not a.status()['paused'])
        check('resume: the replication thread resumes', ok, a.status())
        check('resume: acknowledged', wait_for('ack', lambda: pending() ==
                                               [], limit=20))

        # ferry-control down, the agent restarted: cached runtime.
        a.term()
        port = s.ctl.port
        s.ctl.stop()
        b = s.agent(conf)
        up = wait_for('start-up', lambda: 'last runtime configuration' in
                      b.log() or not b.alive(), limit=90)
        check('ferry-control down: a registered agent starts on its cached '
              'runtime configuration', up and b.alive(), b.log()[-800:])
        err = wait_for('a control error', lambda: b.status() and
                       b.status()['control'].get('error'))
        check('ferry-control down: the status says so', err and
              s.ctl.url in err, b.status())
        s.ctl.start(port=port)
        back = wait_for('ferry-control back', lambda: 'answers again' in
                        b.log() and not b.status()['control'].get('error'),
                        limit=120)
        check('ferry-control back: the agent reports again', back,
              b.log()[-800:])

        # Uninstall.
        s.ctl.aws('mgn', 'disconnect-from-service', '--source-server-id',
                  sid)
        ended = wait_for('the agent to exit', lambda: not b.alive(),
                         limit=120)
        check('uninstall: ferry-agent stops by itself and exits 0',
              ended and b.proc.returncode == 0 and 'uninstall' in b.log(),
              b.log()[-800:])
        reg = b.registration()
        check('uninstall: registration disconnected, credentials gone',
              reg and reg.get('disconnectedDateTime') and
              'credentials' not in reg, reg)
        r = s.run_agent(conf)
        check('uninstall: the next start asks for the installer',
              r.returncode == 1 and 'run the installer again' in r.stderr,
              r.stderr)


main()
done()
