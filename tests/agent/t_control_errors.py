"""t_control_errors: what ferry-agent says when it cannot register, and
that it then leaves nothing behind.

Wrong installer secret, unknown key, a key of the wrong role, no key at
all, a secret in a world-readable agent.conf, an endpoint that does not
answer, a CA bundle that does not hold ferry-control's CA, and a
registration made with another endpoint: each gives one line on stderr
naming what failed (operation, endpoint, HTTP status, ferry-control's
error type and message, or the TLS/connection reason and what to do),
exit status 1 (2 for a bad configuration, standalone included),
agent.conf unchanged and no state written.  No secret appears in any
message.
"""
import os

from agentctl import Setup, check, done, free_port


def one_line(r):
    return r.stderr.count('\n') == 1 and r.stderr.startswith('ferry-agent: ')


def nothing_written(conf, before):
    state = os.path.join(os.path.dirname(conf), 'state')
    return open(conf).read() == before and (
        not os.path.exists(state) or not os.listdir(state))


def main():
    with Setup() as s:
        disk = s.loop('disk')
        inst = s.ctl.installer
        secrets = [inst['SecretAccessKey'], s.ctl.admin['SecretAccessKey'],
                   s.ctl.replicator['SecretAccessKey'], 'WRONGsecretWRONG']

        def attempt(name, conf, want_rc, parts):
            before = open(conf).read()
            r = s.run_agent(conf)
            msg = r.stderr.strip()
            check('%s: exit %d' % (name, want_rc), r.returncode == want_rc,
                  'exit %d: %s' % (r.returncode, msg))
            check('%s: one line naming the cause' % name,
                  one_line(r) and all(p in msg for p in parts),
                  '%r lacks %r' % (msg, parts))
            check('%s: agent.conf unchanged, no state' % name,
                  nothing_written(conf, before),
                  os.listdir(os.path.dirname(conf)))
            check('%s: no secret in the message' % name,
                  not any(x in r.stderr + r.stdout for x in secrets))
            return msg

        wrong = dict(inst, SecretAccessKey='WRONGsecretWRONG')
        conf = s.write_conf('wrong', keys=wrong, devices=disk.dev)
        attempt('wrong secret', conf, 1,
                ['RegisterAgentForMgn at %s' % s.ctl.url, 'HTTP 403',
                 'InvalidSignatureException'])

        unknown = {'AccessKeyId': 'AKIAFERRYUNKNOWN0000',
                   'SecretAccessKey': 'WRONGsecretWRONG'}
        conf = s.write_conf('unknown', keys=unknown, devices=disk.dev)
        attempt('unknown access key', conf, 1,
                ['RegisterAgentForMgn at %s' % s.ctl.url, 'HTTP 403',
                 'UnrecognizedClientException'])

        conf = s.write_conf('role', keys=s.ctl.replicator, devices=disk.dev)
        attempt('a replicator key', conf, 1,
                ['RegisterAgentForMgn', 'HTTP 403', 'AccessDeniedException'])

        conf = s.write_conf('nokey', installer=False, devices=disk.dev)
        attempt('no key, not registered', conf, 1,
                ['not registered with ferry-control', 'access-key-id',
                 'secret-access-key', conf])

        conf = s.write_conf('mode', devices=disk.dev, mode_=0o644)
        attempt('secret in a world-readable agent.conf', conf, 2,
                ['readable by group or others (mode 644)', 'chmod 600'])

        dead = 'https://127.0.0.1:%d' % free_port()
        conf = s.write_conf('dead', devices=disk.dev, endpoint=dead)
        attempt('endpoint not answering', conf, 1,
                ['RegisterAgentForMgn at %s' % dead, 'connect',
                 'check endpoint'])

        conf = s.write_conf('noca', devices=disk.dev, ca_bundle=None)
        attempt('ferry-control\'s CA not trusted', conf, 1,
                ['RegisterAgentForMgn at %s' % s.ctl.url, 'certificate',
                 'set ca-bundle'])

        conf = s.write_conf('bad', devices=disk.dev, queue_depth='4')
        attempt('a value out of range', conf, 2,
                ['%s:' % conf, 'queue-depth: 4 is out of range'])

        conf = s.write_conf('nodisk', devices='/dev/ferry-no-such-disk')
        attempt('a device that does not exist', conf, 2,
                ['/dev/ferry-no-such-disk'])

        # Standalone (no ferry-control): the disks and the replicator's
        # address come from the file, and are configuration too.
        alone = dict(installer=False, standalone='yes',
                     source_server_id='s-0123456789abcdef0',
                     cert='/nonexistent/cert.pem', key='/nonexistent/key',
                     ca=s.ctl.ca)
        conf = s.write_conf('alone-nodisk', replicator='127.0.0.1:1500',
                            **alone)
        attempt('standalone without devices', conf, 2,
                ['standalone mode needs the disks', 'devices ='])
        conf = s.write_conf('alone-addr', replicator='replicator.example',
                            devices=disk.dev, **alone)
        attempt('standalone, replicator without a port', conf, 2,
                ['replicator replicator.example: want HOST:PORT'])

        # Registered with one endpoint, configured for another.
        conf = s.write_conf('moved', devices=disk.dev)
        a = s.agent(conf)
        sid = a.wait_registered()
        a.term()
        other = 'https://localhost:%d' % s.ctl.port
        conf2 = s.write_conf('moved', installer=False, devices=disk.dev,
                             endpoint=other)
        before = open(conf2).read()
        r = s.run_agent(conf2)
        check('registered elsewhere: refused with both endpoints named',
              r.returncode == 1 and one_line(r) and s.ctl.url in r.stderr
              and other in r.stderr and 'installer key' in r.stderr,
              r.stderr)
        check('registered elsewhere: registration kept',
              a.registration()['sourceServerID'] == sid and
              open(conf2).read() == before)


main()
done()
