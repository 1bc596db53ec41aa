"""t_control_credentials: the agent's temporary credentials are refreshed
before they expire, and an agent whose credentials expired while it was
stopped says so.

ferry-control runs with --session-ttl 30: the control thread (through
ferry-control-test) must call RefreshAgentCredentialsForMgn at two thirds
of each credential's life, store the new ones atomically (0600), and go
on heartbeating after the first credentials have expired, which
ferry-control then refuses.
"""
import calendar
import os
import time

from agentctl import Setup, check, done, log, mode, wait_for
import agentctl

# A refresh is signed with the credentials it replaces, so it must reach
# ferry-control in the last third of their life; one that comes later
# fails for good (no installer key).  With two QEMU guests beside the
# native suites this process and ferry-control are at times starved for
# 1-5 s: at 6 s (a 2 s window) one stall failed the test.  30 s gives
# each of the two refreshes the test waits for a 10 s window (it stops
# the agent at about 40 s, before a third; a stall over 10 s would still
# fail it), for about 75 s in all instead of 17.  Where the agent refreshes is
# checked from ferry-control's own clock instead of the test's: it sets
# each expiration to its time of issue + TTL, so two expirations' gap is
# how far into the first credentials' life the agent asked for the next
# ones (a stall can only make that later, never earlier).
TTL = 30


def epoch(stamp):
    return calendar.timegm(time.strptime(stamp, '%Y-%m-%dT%H:%M:%SZ'))


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
        seen = [(first['accessKeyId'], epoch(expired0))]

        def new_key():
            c = (h.registration() or {}).get('credentials', {})
            k = c.get('accessKeyId')
            if k and k not in [x[0] for x in seen]:
                seen.append((k, epoch(c['expiration'])))
            # The log line follows the stored credentials: wait for both.
            return len(seen) >= 3 and \
                h.log().count('credentials refreshed') >= 2

        ok = wait_for('two refreshes', new_key, limit=TTL * 3)
        check('credentials refreshed before they expire, again and again',
              ok and h.log().count('credentials refreshed') >= 2,
              '%s; %s' % (seen, h.log()[-600:]))
        # Seconds into each credentials' life at which ferry-control
        # issued the next: from two thirds (not earlier) to the end (it
        # refuses expired credentials).
        into = [b[1] - a[1] for a, b in zip(seen, seen[1:])]
        log('refreshed at %s s of %d' % (into, TTL))
        check('each refresh at two thirds of the life or later, before '
              'the end', len(into) >= 2 and
              all(TTL * 2 // 3 <= d < TTL for d in into), into)
        check('refreshed credentials stored 0600',
              mode(os.path.join(h.state, 'registration.json')) == 0o600)

        def beat_after_expiry():
            srv = s.server(sid)
            st = h.status()
            return (srv['lifeCycle']['lastSeenByServiceDateTime'] >
                    expired0 and st and not st['control'].get('error'))
        ok = wait_for('a heartbeat after the first expiry',
                      beat_after_expiry, limit=TTL * 2)
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
