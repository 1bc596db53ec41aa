"""t_control_disconnect: `ferry-agent --disconnect` (what uninstall.sh
runs with the service stopped) disconnects its own source server with the
agent's credentials, which ferry-control revokes at once, and forgets the
registration; an agent's credentials cannot disconnect another server; a
second run, or a server an administrator disconnected first, is not an
error.
"""
from agentctl import Setup, check, done


def lc(s, sid):
    x = s.server(sid) or {}
    return (x.get('lifeCycle', {}).get('state'),
            x.get('dataReplicationInfo', {}).get('dataReplicationState'))


def main():
    with Setup() as s:
        ca = s.write_conf('a', devices=None)
        ha = s.harness(ca)
        a = ha.wait_ready()
        b, _ = s.ctl.register_agent(hostname='other-host')
        check('this agent and another server registered',
              a and b and a != b, (a, b))
        if not (a and b):
            return
        creds_a = ha.creds()
        ha.quit()

        st, hdrs, _ = s.ctl.call('DisconnectFromService',
                                 {'sourceServerID': b}, creds=creds_a)
        check("an agent's credentials cannot disconnect another server",
              st == 403 and hdrs.get('x-amzn-errortype') ==
              'AccessDeniedException' and lc(s, b)[0] != 'DISCONNECTED',
              (st, hdrs.get('x-amzn-errortype'), lc(s, b)))

        r = s.run_agent(ca, '--disconnect')
        check('--disconnect: exit 0, says the server is disconnected',
              r.returncode == 0 and a in r.stdout and
              'disconnected' in r.stdout, (r.returncode, r.stdout,
                                           r.stderr[-500:]))
        check('ferry-control shows it DISCONNECTED',
              lc(s, a) == ('DISCONNECTED', 'DISCONNECTED'), lc(s, a))
        reg = ha.registration() or {}
        check('the registration is forgotten (no credentials kept)',
              reg.get('registered') is not True and
              not reg.get('credentials'), reg)
        st, hdrs, _ = s.ctl.call('GetAgentRuntimeConfigurationForMgn', {},
                                 creds=creds_a)
        check('its credentials are revoked at once',
              st == 403 and hdrs.get('x-amzn-errortype') ==
              'UnrecognizedClientException',
              (st, hdrs.get('x-amzn-errortype')))
        check('the other server is untouched',
              lc(s, b)[0] not in ('DISCONNECTED', None), lc(s, b))

        r = s.run_agent(ca, '--disconnect')
        check('--disconnect again: exit 0, nothing to do',
              r.returncode == 0 and 'nothing to disconnect' in r.stdout,
              (r.returncode, r.stdout, r.stderr[-500:]))

        # Installed again (the same machine, the same server), then an
        # administrator disconnects it once the uninstaller stopped the
        # service (a running agent would obey the uninstall command
        # itself, and --disconnect find nothing to do).
        cb = s.write_conf('a2', devices=None)
        hb = s.harness(cb)
        again = hb.wait_ready()
        hb.quit()
        s.ctl.aws('mgn', 'disconnect-from-service', '--source-server-id',
                  again)
        r = s.run_agent(cb, '--disconnect')
        check('disconnected by an administrator first: --disconnect '
              'says so, exit 0, registration forgotten',
              again == a and r.returncode == 0 and
              'already disconnected' in r.stdout and
              (hb.registration() or {}).get('registered') is not True,
              (again, r.returncode, r.stdout, r.stderr[-500:]))

main()
done()
