"""t_control_credentials: the agent's temporary credentials are refreshed
before they expire, and an agent whose credentials expired while it was
stopped says so.

ferry-control runs with --session-ttl 6: the control thread (through
ferry-control-test) must call RefreshAgentCredentialsForMgn at two thirds
of each credential's life, store the new ones atomically (0600), and go
on heartbeating after the first credentials have expired, which
ferry-control then refuses.
"""
import os
import time

from agentctl import Setup, check, done, log, mode, wait_for
import agentctl

TTL = 6


def main():
    with Setup(control_args=['--session-ttl', str(TTL)]) as s:
        conf = s.write_conf('c')
        h = s.harness(conf)
        sid = h.wait_ready()
        check('registered', sid, h.log()[-600:])
        if not sid:
            return
        first = h.registration()['credentials']
        expired0 = first['expiration']
        seen = [first['accessKeyId']]

        def new_key():
            k = (h.registration() or {}).get('credentials', {}).get(
                'accessKeyId')
            if k and k not in seen:
                seen.append(k)
            # The log line follows the stored credentials: wait for both.
            return len(seen) >= 3 and \
                h.log().count('credentials refreshed') >= 2

        ok = wait_for('two refreshes', new_key, limit=60)
        check('credentials refreshed before they expire, again and again',
              ok and h.log().count('credentials refreshed') >= 2,
              '%s; %s' % (seen, h.log()[-600:]))
        check('refreshed credentials stored 0600',
              mode(os.path.join(h.state, 'registration.json')) == 0o600)

        def beat_after_expiry():
            srv = s.server(sid)
            st = h.status()
            return (srv['lifeCycle']['lastSeenByServiceDateTime'] >
                    expired0 and st and not st['control'].get('error'))
        ok = wait_for('a heartbeat after the first expiry',
                      beat_after_expiry, limit=60)
        check('heartbeats go on after the first credentials expired', ok,
              h.log()[-600:])
        old = {'AccessKeyId': first['accessKeyId'],
               'SecretAccessKey': first['secretAccessKey'],
               'SessionToken': first['sessionToken']}
        st, hdrs, _ = s.ctl.call('GetAgentRuntimeConfigurationForMgn', {},
                                 creds=old)
        check('the first credentials are refused by now (the agent is not '
              'using them)', st in (400, 403), (st, hdrs))
        leaked = [c for c in ('secretAccessKey', 'sessionToken')
                  if first[c] in h.log()]
        check('no credential in the log', not leaked, leaked)

        # Stopped past the expiry: the stored credentials are dead.
        h.quit()
        last = h.registration()['credentials']['expiration']
        agentctl.wait_for('the stored credentials to expire', lambda:
                          time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                        time.gmtime(time.time() - 1)) >
                          last, limit=TTL * 3)
        h2 = s.harness(conf)
        ended = wait_for('the harness to end', lambda: not h2.alive())
        msg = h2.log()
        log(msg.strip()[-300:])
        check('expired credentials at start: exit 1, say so and how',
              ended and h2.proc.returncode == 1 and 'expired at' in msg and
              'cannot be refreshed' in msg, msg[-600:])


main()
done()
