"""t_endpoint: install.sh's one signed call, against a real ferry-control
on loopback (and a real tinyproxy).

The installer key is accepted, signed by curl (--aws-sigv4) and by the
installer's own SigV4 (older curls); a wrong secret, an unknown key, a
wrong region, a replicator's key, an agent's temporary key (with its
session token), no CA bundle, a closed port and an unresolvable host are
each refused with their own message and fix, exit 1, nothing written; the
secret appears in no output and no log; ferry-control registered nothing.
With --proxy-address (or https_proxy) the call goes through tinyproxy:
its log shows the CONNECT; no_proxy is honoured; a proxy that is down is
named.
"""
import os

from installctl import Env, REGION, check, control_args, done, key_args
import agentctl


def main():
    with agentctl.Setup() as s, Env() as e:
        ctl = s.ctl
        inst = ctl.installer
        ok_line = 'ok      %s reachable; key %s****%s accepted for region ' \
            '%s, and it may register agents' % (
                ctl.url, inst['AccessKeyId'][:4], inst['AccessKeyId'][-4:],
                REGION)

        for signer in ('curl', 'shell'):
            env = e.env(FERRY_INSTALL_SIGNER=signer)
            r = e.run('--no-prompt', '--check-only', *control_args(ctl),
                      env=env)
            check('the installer key, signed by %s: accepted, every check '
                  'passes (exit 0)' % signer,
                  r.rc == 0 and ok_line in r.out
                  and 'All checks passed; nothing was changed' in r.out, r)

        # Two installations in the same second with the same key must
        # not send the same signature (ferry-control refuses a replay).
        r1 = e.run('--no-prompt', '--check-only', *control_args(ctl))
        r2 = e.run('--no-prompt', '--check-only', *control_args(ctl))
        check('two calls in a row with the same key: both accepted',
              r1.rc == 0 and r2.rc == 0, '%s\n%s' % (r1, r2))

        def refused(name, args, line, fix, env=None, signer_too=True):
            for signer in (('curl', 'shell') if signer_too else ('curl',)):
                rr = e.run('--no-prompt', *args,
                           env=env or e.env(FERRY_INSTALL_SIGNER=signer))
                block = rr.line(line)
                check('%s (%s): FAILED "%s", fix "%s"; exit 1, nothing '
                      'written' % (name, signer, line, fix),
                      rr.rc == 1 and block and fix in block
                      and len(rr.failed_lines()) == 1
                      and not os.path.exists(e.conf), rr)
                secret = [a for i, a in enumerate(args)
                          if i and args[i - 1] == '--aws-secret-access-key']
                check('%s (%s): the secret is in no output and not in the '
                      'log' % (name, signer),
                      secret and secret[0] not in rr.all
                      and secret[0] not in e.log_text()
                      and 'Checking' in e.log_text(), rr)

        # Another first character (one secret in 62 starts with x).
        sec = inst['SecretAccessKey']
        wrong = dict(inst, SecretAccessKey=('y' if sec[0] == 'x' else 'x') +
                     sec[1:])
        refused('a wrong secret', control_args(ctl, wrong),
                'FAILED  ferry-control refused the signature: the secret '
                'access key is wrong', '--aws-secret-access-key')
        unknown = dict(inst, AccessKeyId='AKIA0000000000000000')
        refused('an unknown access key ID', control_args(ctl, unknown),
                'FAILED  ferry-control does not know the access key ID '
                'AKIA\\*\\*\\*\\*0000',
                'ferry-control keys create --role installer')
        args = key_args(inst, region='eu-west-1') + [
            '--endpoint', ctl.url, '--ca-bundle', ctl.ca]
        refused('the wrong region', args,
                'FAILED  ferry-control refused the region eu-west-1',
                "pass --region with ferry-control's region")
        refused('a replicator\'s key', control_args(ctl, ctl.replicator),
                'FAILED  the key .* may not register agents: User: replicator '
                '\\(role replicator\\)',
                'use an installer key: ferry-control keys create --role '
                'installer')
        # An agent's temporary key: the session token is sent (and
        # signed); ferry-control knows the key and refuses its role.
        _, agent_creds = ctl.register_agent('probe-host')
        tok = ['--aws-session-token', agent_creds['SessionToken']]
        refused('an agent\'s temporary key with its session token',
                control_args(ctl, agent_creds) + tok,
                'FAILED  the key ASIA.* may not register agents',
                'use an installer key')
        refused('a temporary key without its session token',
                control_args(ctl, agent_creds),
                'FAILED  ferry-control does not know the access key ID',
                'ferry-control keys create')
        env = e.env(AWS_ACCESS_KEY_ID=agent_creds['AccessKeyId'],
                    AWS_SECRET_ACCESS_KEY=agent_creds['SecretAccessKey'],
                    AWS_SESSION_TOKEN=agent_creds['SessionToken'],
                    AWS_REGION=REGION, FERRY_ENDPOINT=ctl.url)
        r = e.run('--no-prompt', '--ca-bundle', ctl.ca, env=env)
        check('AWS_SESSION_TOKEN goes with AWS_ACCESS_KEY_ID from the '
              'environment (the temporary key is known, its role refused)',
              r.rc == 1 and 'may not register agents' in r.out, r)

        args = key_args(inst) + ['--endpoint', ctl.url,
                                 '--aws-secret-access-key',
                                 inst['SecretAccessKey']]
        refused('no CA bundle for ferry-control\'s own CA', args,
                'FAILED  TLS with %s failed' % ctl.url,
                'give ferry-control\'s CA certificate with --ca-bundle FILE')
        port = agentctl.free_port()
        args = key_args(inst) + ['--endpoint', 'https://127.0.0.1:%d' % port,
                                 '--ca-bundle', ctl.ca]
        refused('an unreachable endpoint (a closed port)', args,
                'FAILED  cannot connect to https://127.0.0.1:%d' % port,
                'is ferry-control running there? Open TCP %d' % port,
                signer_too=False)
        args = key_args(inst) + ['--endpoint', 'ferry.invalid:8443',
                                 '--ca-bundle', ctl.ca]
        refused('an endpoint whose name does not resolve (no scheme: '
                'https:// added)', args,
                "FAILED  cannot resolve the endpoint's host in "
                'https://ferry.invalid:8443',
                'check --endpoint and this machine\'s DNS', signer_too=False)

        servers = [x['sourceServerID'] for x in s.servers()]
        check('after all these calls ferry-control registered nothing '
              '(only the test\'s own probe-host)', len(servers) == 1,
              servers)

        # -- a proxy ---------------------------------------------------------
        proxy = s.proxy()
        r = e.run('--no-prompt', '--check-only', *control_args(ctl),
                  '--proxy-address', proxy.url + '/')
        check('--proxy-address http://127.0.0.1:PORT/: accepted through the '
              'proxy', r.rc == 0 and 'reachable through the proxy %s/'
              % proxy.url in r.out, r)
        check('tinyproxy logged the CONNECT to ferry-control',
              proxy.connects(ctl.port) == 1, proxy.log()[-1000:])
        for var in ('https_proxy', 'HTTPS_PROXY'):
            n = proxy.connects(ctl.port)
            r = e.run('--no-prompt', '--check-only', *control_args(ctl),
                      env=e.env(**{var: proxy.url}))
            check('%s from the environment: used' % var,
                  r.rc == 0 and proxy.connects(ctl.port) == n + 1, r)
        n = proxy.connects(ctl.port)
        r = e.run('--no-prompt', '--check-only', *control_args(ctl))
        check('without a proxy: a direct call, none through tinyproxy',
              r.rc == 0 and proxy.connects(ctl.port) == n, r)
        n = proxy.connects(ctl.port)
        r = e.run('--no-prompt', '--check-only', *control_args(ctl),
                  '--proxy-address', proxy.url,
                  env=e.env(no_proxy='127.0.0.1'))
        check('no_proxy naming the endpoint: a direct call, even with '
              '--proxy-address', r.rc == 0 and proxy.connects(ctl.port) == n,
              r)
        proxy.stop()
        r = e.run('--no-prompt', '--check-only', *control_args(ctl),
                  '--proxy-address', proxy.url)
        check('the proxy down: FAILED, the proxy named',
              r.rc == 1 and 'FAILED  cannot connect to %s through the '
              'proxy %s' % (ctl.url, proxy.url) in r.out
              and 'check the proxy' in r.out, r)
    done()


main()
