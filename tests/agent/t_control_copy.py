"""t_control_copy: a registered agent runs only on the machine that
registered.

A test or cutover instance boots from a copy of its source server's disks:
the agent's state directory, credentials and service come with it.  Here
the copy is made the other way round: this machine is given a state
directory whose recorded machine ID is another's (the registration made
on the source, seen from the copy).  The agent must exit with status 78
(which the systemd unit does not restart) and a reason that says what to
do, without a heartbeat, a credential refresh or a change to the state;
ferry-agent --accept-new-host records the machine as the source server,
and the agent then runs; a registration from before machine IDs were recorded is taken as this
machine's.
"""
import hashlib
import hmac
import json
import os
import re

from agentctl import Setup, check, done, wait_for

APP_ID = b'ferry-agent:7c0e2b1a5d3f4e6a9b8c1d2e3f405162'


def this_machine():
    """hostinfo_machine_id(), computed here from machine-id(5) and the
    firmware's UUID as docs/agent.md describes it."""
    mid = open('/etc/machine-id').read().strip()
    msg = APP_ID
    try:
        uuid = open('/sys/class/dmi/id/product_uuid').read().strip().lower()
    except OSError:
        uuid = ''
    digits = uuid.replace('-', '')
    if (len(digits) == 32 and len(set(digits)) > 1 and
            uuid != '03000200-0400-0500-0006-000700080009'):
        msg += b'\n' + uuid.encode()
    return hmac.new(mid.encode(), msg, hashlib.sha256).hexdigest()


def rewrite(path, **changes):
    reg = json.load(open(path))
    for k, v in changes.items():
        if v is None:
            reg.pop(k, None)
        else:
            reg[k] = v
    with open(path, 'w') as f:
        json.dump(reg, f)
    os.chmod(path, 0o600)


def main():
    with Setup() as s:
        disk = s.loop('disk', 64 << 20)
        conf = s.write_conf('a', devices=disk.dev)
        a = s.agent(conf)
        sid = a.wait_registered()
        check('registers', sid, a.log()[-800:])
        if not sid:
            return
        regfile = os.path.join(a.state, 'registration.json')
        reg = a.registration()
        check('registration.json records the machine that registered',
              reg.get('machineId') == this_machine(),
              (reg.get('machineId'), this_machine()))
        wait_for('a heartbeat', lambda: a.status() and
                 a.status()['control']['lastHeartbeatDateTime'])
        check('SIGTERM: exit 0', a.term() == 0, a.log()[-500:])

        # The same state on another machine.
        other = hmac.new(b'0123456789abcdef0123456789abcdef',
                         APP_ID + b'\n4c4c4544-0042-3510-8052-b4c04f4e3232',
                         hashlib.sha256).hexdigest()
        rewrite(regfile, machineId=other)
        before = open(regfile).read()
        seen = s.server(sid)['lifeCycle']['lastSeenByServiceDateTime']
        r = s.run_agent(conf)
        line = r.stderr.strip()
        check('a copy: ferry-agent exits 78 (not restarted by systemd)',
              r.returncode == 78, 'exit %d: %s' % (r.returncode, line))
        check('a copy: one line that names the server and what to do',
              line.count('\n') == 0 and sid in line and
              'launched from' in line and '--accept-new-host' in line and
              'installer' in line, line)
        check('a copy: the registration is left as it was',
              open(regfile).read() == before)
        check('a copy: no heartbeat reached ferry-control',
              s.server(sid)['lifeCycle']['lastSeenByServiceDateTime'] ==
              seen, s.server(sid)['lifeCycle'])
        unit = os.path.join(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))), 'packaging',
            'systemd', 'ferry-agent.service')
        check('the systemd unit does not restart on status 78',
              re.search(r'^RestartPreventExitStatus=.*\b78\b',
                        open(unit).read(), re.M), unit)

        # The administrator says this is the source server.
        r = s.run_agent(conf, '--accept-new-host')
        check('--accept-new-host: exit 0 and says what it did',
              r.returncode == 0 and
              'this machine is source server %s from now on' % sid
              in r.stdout, 'exit %d: %s%s' % (r.returncode, r.stdout,
                                              r.stderr))
        check('--accept-new-host: this machine recorded, same server, '
              'same credentials',
              a.registration().get('machineId') == this_machine() and
              a.registration()['sourceServerID'] == sid and
              a.registration()['credentials'] == reg['credentials'],
              a.registration())
        # (The status file goes first: the last run's heartbeat is in it.)
        status = os.path.join(a.state, 'status.json')
        os.unlink(status)
        b = s.agent(conf)
        ok = wait_for('a heartbeat after --accept-new-host', lambda: (
            not b.alive() or (b.status() and b.status()['control']
                              ['lastHeartbeatDateTime'])))
        check('then the agent runs and heartbeats', ok and b.alive(),
              b.log()[-800:])
        check('SIGTERM: exit 0', b.term() == 0, b.log()[-500:])

        # A registration without a machine ID (an older agent's).
        rewrite(regfile, machineId=None)
        os.unlink(status)
        c = s.agent(conf)
        ok = wait_for('a heartbeat', lambda: (
            not c.alive() or (c.status() and c.status()['control']
                              ['lastHeartbeatDateTime'])))
        check('no machine ID recorded yet: runs, and records this one',
              ok and c.alive() and
              c.registration().get('machineId') == this_machine(),
              c.log()[-800:])
        c.term()
    done()


if __name__ == '__main__':
    main()
