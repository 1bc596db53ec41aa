"""t_control_noreplication: `no-replication = yes` registers the server
but holds replication (a `stop` for the replication thread) until
ferry-control sends `start`; the start is remembered across restarts.
"""
from agentctl import Setup, check, done, wait_for


def main():
    with Setup() as s:
        conf = s.write_conf('n', no_replication='yes', devices=None)
        h = s.harness(conf)
        sid = h.wait_ready()
        check('no-replication: registered', sid, h.log()[-600:])
        if not sid:
            return
        check('no-replication: replication held (stop queued at start)',
              wait_for('stop', lambda: h.commands() == ['stop'], limit=20),
              h.commands())
        s.ctl.aws('mgn', 'stop-replication', '--source-server-id', sid)
        s.ctl.aws('mgn', 'start-replication', '--source-server-id', sid)
        got = wait_for('start', lambda: 'start' in h.commands())
        check('start-replication: "start" reaches the agent', got,
              h.commands())
        check('the start is recorded', wait_for(
            'replicationStarted', lambda: h.registration().get(
                'replicationStarted') is True, limit=20), h.registration())
        h.quit()
        h2 = s.harness(conf)
        ready = h2.wait_ready() == sid
        wait_for('a runtime line', lambda: h2.runtimes(), limit=20)
        check('restart after the start: replication no longer held',
              ready and h2.runtimes() and 'stop' not in h2.commands(),
              h2.out())
        h2.quit()


main()
done()
