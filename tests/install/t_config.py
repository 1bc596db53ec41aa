"""t_config: what install.sh writes, against a real ferry-control.

A run with every flag and --config-out writes agent.conf 0600 with exactly
the keys of docs/agent.md, logs each step (0600, no secret, no whole key
ID), installs nothing and says so (exit 0); the real ferry-agent takes that
file and registers with ferry-control, with the tags and the
user-provided ID, and drops the secret from it.  The environment fills the
flags (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, FERRY_ENDPOINT,
https_proxy); a flag beats its variable; AWS_SESSION_TOKEN is not paired
with a key given as a flag.  On a terminal, the missing values are asked
for, the secret without echo.  An existing configuration is kept without
--force-delete-existing and replaced with it; a failure after the
configuration step (injected) rolls it back: the previous file restored
byte for byte, or the created directories removed.  --ca-bundle is copied
next to agent.conf as ca.pem (0644), and agent.conf names the copy: the
agent registers after the file given has been deleted.
"""
import os
import shutil

from installctl import (Env, REGION, check, control_args, done, mode,
                        wait_for, write)
import agentctl

NEXT = 'nothing was installed'
# Exit status of a --config-out run: the configuration only, by request.
NOT_YET = 0


def main():
    with agentctl.Setup() as s, Env() as e:
        ctl = s.ctl
        inst = ctl.installer
        disk = s.loop('disk')

        # -- every flag ------------------------------------------------------
        # The CA bundle from a download directory, removed once the
        # installation is done: the agent must not need it.
        dl = os.path.join(e.tmp, 'download')
        os.makedirs(dl)
        shutil.copy(ctl.ca, os.path.join(dl, 'ferry-ca.pem'))
        ca_copy = os.path.join(os.path.dirname(e.conf), 'ca.pem')
        args = control_args(ctl)
        args[args.index('--ca-bundle') + 1] = os.path.join(dl, 'ferry-ca.pem')
        r = e.run('--no-prompt', *args,
                  '--s3-endpoint', 'assets.example.test/',
                  '--devices', disk.dev, '--force-volumes',
                  '--tags', 'team=blue', 'env=test,app=db',
                  '--user-provided-id', 'cmdb-4711',
                  '--no-replication')
        check('a run with every flag: exit 0, the configuration written, '
              'and nothing installed (--config-out)',
              r.rc == NOT_YET and 'Writing %s (mode 0600)' % e.conf in r.out
              and NEXT in r.out, r)
        want = {
            'endpoint': ctl.url, 'region': REGION,
            'access-key-id': inst['AccessKeyId'],
            'secret-access-key': inst['SecretAccessKey'],
            'ca-bundle': ca_copy, 's3-endpoint': 'https://assets.example.test',
            'devices': disk.dev, 'tags': 'team=blue,env=test,app=db',
            'user-provided-id': 'cmdb-4711', 'no-replication': 'yes',
        }
        got = e.conf_keys() if os.path.exists(e.conf) else {}
        check('agent.conf holds exactly the keys of the flags', got == want,
              'got %s' % got)
        check('agent.conf is 0600, owned by root',
              os.path.exists(e.conf) and mode(e.conf) == 0o600
              and os.stat(e.conf).st_uid == 0)
        check('no temporary or backup file is left next to it (ca.pem aside)',
              sorted(os.listdir(os.path.dirname(e.conf)))
              == ['agent.conf', 'ca.pem'],
              os.listdir(os.path.dirname(e.conf)))
        check('--ca-bundle copied next to it as ca.pem, 0644, owned by '
              'root, the same certificates',
              os.path.exists(ca_copy) and mode(ca_copy) == 0o644
              and os.stat(ca_copy).st_uid == 0
              and open(ca_copy).read() == open(ctl.ca).read(),
              os.path.exists(ca_copy) and oct(mode(ca_copy)))
        lg = e.log_text()
        check('the log names each step and is 0600',
              mode(e.log_path) == 0o600 and 'install.sh started' in lg
              and 'ok      running as root' in lg
              and 'signed call: POST %s/RegisterAgentForMgn' % ctl.url in lg
              and 'wrote %s' % e.conf in lg and 'install.sh done' in lg, lg)
        check('the log holds neither the secret nor the whole key ID',
              inst['SecretAccessKey'] not in lg
              and inst['AccessKeyId'] not in lg
              and inst['SecretAccessKey'] not in r.all
              and inst['AccessKeyId'] not in r.all)

        # The real agent takes the file: it registers with the installer
        # key, with the tags and the ID, and forgets the secret; the
        # download directory with the CA bundle given is gone by then.
        shutil.rmtree(dl)
        state = os.path.join(e.tmp, 'state')
        a = s.agent(e.conf, '--state-dir', state)
        a.state = state
        sid = a.wait_registered()
        check('ferry-agent, given the written agent.conf, registers with '
              'ferry-control (the --ca-bundle file given is deleted: it '
              'uses the copy)', sid, a.log()[-1500:])
        # A raw call: Debian's AWS CLI model predates userProvidedID.
        st, _, out = ctl.call('DescribeSourceServers', {'filters': {}})
        srv = [x for x in (out or {}).get('items', [])
               if x.get('sourceServerID') == sid]
        srv = srv[0] if srv else None
        check('... with the tags and the user-provided ID of the flags',
              srv and srv.get('tags') == {'team': 'blue', 'env': 'test',
                                          'app': 'db'}
              and srv.get('userProvidedID') == 'cmdb-4711', srv)
        gone = wait_for('the secret dropped', lambda: 'secret-access-key'
                        not in open(e.conf).read(), limit=30)
        check('... and drops the installer\'s secret from the file', gone,
              open(e.conf).read())
        a.term()
        d = os.path.dirname(e.conf)
        for n in os.listdir(d):  # the agent's own logs (agentctl's)
            if n.startswith('agent-'):
                os.unlink(os.path.join(d, n))

        # -- an existing configuration ------------------------------------
        before = open(e.conf).read()
        r = e.run('--no-prompt', *control_args(ctl))
        check('again, without --force-delete-existing: refused (exit 1), '
              'the file untouched',
              r.rc == 1 and 'already installed' in r.out
              and open(e.conf).read() == before, r)
        r = e.run('--no-prompt', *control_args(ctl), '--force-delete-existing')
        check('with --force-delete-existing: replaced (exit 0, 0600)',
              r.rc == NOT_YET and e.conf_keys().get('secret-access-key')
              == inst['SecretAccessKey'] and 'tags' not in e.conf_keys()
              and mode(e.conf) == 0o600, r)

        # -- rollback ---------------------------------------------------------
        write(e.conf, '# the previous configuration\nendpoint = "%s"\n'
              % ctl.url, 0o640)
        before = open(e.conf, 'rb').read()
        write(ca_copy, '# the previous CA bundle\n', 0o600)
        env = e.env(FERRY_INSTALL_FAIL_AFTER='config')
        r = e.run('--no-prompt', *control_args(ctl), '--force-delete-existing',
                  '--tags', 'x=1', env=env)
        check('a failure after the configuration step: exit 3, rolled back',
              r.rc == 3 and 'rolling back what this run did' in r.out
              and 'undone: replaced %s' % e.conf in r.out, r)
        check('... the previous file restored byte for byte, its mode too',
              open(e.conf, 'rb').read() == before and mode(e.conf) == 0o640)
        check('... the previous ca.pem too',
              'undone: replaced %s' % ca_copy in r.out
              and open(ca_copy).read() == '# the previous CA bundle\n'
              and mode(ca_copy) == 0o600, r)
        check('... and nothing else left next to them',
              sorted(os.listdir(os.path.dirname(e.conf)))
              == ['agent.conf', 'ca.pem'],
              os.listdir(os.path.dirname(e.conf)))
        check('... the rollback is logged',
              'undone: replaced' in e.log_text()
              and 'exit status 3' in e.log_text(), e.log_text()[-800:])
        # The SSH session dropped (SIGHUP) after the same step.
        r = e.run('--no-prompt', *control_args(ctl), '--force-delete-existing',
                  '--tags', 'x=1', env=e.env(
                      FERRY_INSTALL_SIGNAL_AFTER='config:HUP'))
        check('SIGHUP after the configuration step: exit 129, rolled back',
              r.rc == 129 and 'undone: replaced %s' % e.conf in r.out, r)
        check('... the previous file restored byte for byte',
              open(e.conf, 'rb').read() == before and mode(e.conf) == 0o640)
        fresh = os.path.join(e.tmp, 'new', 'etc', 'ferry', 'agent.conf')
        r = e.run('--no-prompt', *control_args(ctl), conf=fresh, env=env)
        check('a failure with a new directory: the directories the run '
              'created are removed',
              r.rc == 3 and not os.path.exists(os.path.join(e.tmp, 'new')), r)
        os.unlink(e.conf)
        os.unlink(ca_copy)

        # -- the environment ---------------------------------------------------
        proxy = s.proxy()
        env = e.env(AWS_REGION=REGION, AWS_ACCESS_KEY_ID=inst['AccessKeyId'],
                    AWS_SECRET_ACCESS_KEY=inst['SecretAccessKey'],
                    FERRY_ENDPOINT=ctl.url, https_proxy=proxy.url)
        r = e.run('--no-prompt', '--ca-bundle', ctl.ca, env=env)
        k = e.conf_keys() if os.path.exists(e.conf) else {}
        check('the region, the keys, the endpoint and the proxy from the '
              'environment: in agent.conf',
              r.rc == NOT_YET and k.get('region') == REGION
              and k.get('access-key-id') == inst['AccessKeyId']
              and k.get('secret-access-key') == inst['SecretAccessKey']
              and k.get('endpoint') == ctl.url
              and k.get('proxy') == proxy.url, '%s %s' % (k, r))
        check('... the variables\' names logged, not their values',
              'from the environment: AWS_REGION AWS_ACCESS_KEY_ID '
              'AWS_SECRET_ACCESS_KEY FERRY_ENDPOINT https_proxy'
              in e.log_text(), e.log_text()[-1500:])
        os.unlink(e.conf)
        env = e.env(AWS_REGION='eu-west-1', AWS_ACCESS_KEY_ID='AKIAWRONGWRONG0000',
                    AWS_SECRET_ACCESS_KEY='wrong', AWS_SESSION_TOKEN='junk',
                    FERRY_ENDPOINT='https://127.0.0.1:9')
        r = e.run('--no-prompt', *control_args(ctl), env=env)
        k = e.conf_keys() if os.path.exists(e.conf) else {}
        check('flags beat the environment; AWS_SESSION_TOKEN is not paired '
              'with a key given as a flag',
              r.rc == NOT_YET and k.get('region') == REGION
              and k.get('access-key-id') == inst['AccessKeyId']
              and 'session-token' not in k and k.get('endpoint') == ctl.url,
              '%s %s' % (k, r))
        os.unlink(e.conf)

        # -- prompts on a terminal ---------------------------------------------
        secret = inst['SecretAccessKey']
        r = e.run_pty(['--config-out', e.conf, '--ca-bundle', ctl.ca], [
            (r'AWS Region Name[^:]*: $', REGION),
            (r'AWS Access Key ID: $', inst['AccessKeyId']),
            (r'AWS Secret Access Key: $', secret),
            (r'ferry-control endpoint \(https://HOST\[:PORT\]\): $', ctl.url),
            (r'To replicate all disks, press Enter: $', ''),
        ])
        k = e.conf_keys() if os.path.exists(e.conf) else {}
        check('on a terminal: region, key, secret, endpoint and disks '
              'asked for; the answers in agent.conf',
              r.rc == NOT_YET and not r.unanswered and k.get('region') == REGION
              and k.get('access-key-id') == inst['AccessKeyId']
              and k.get('secret-access-key') == secret
              and k.get('endpoint') == ctl.url and 'devices' not in k,
              '%s unanswered %s; %s' % (k, r.unanswered, r))
        check('the secret is typed without echo',
              secret not in r.out and inst['AccessKeyId'] in r.out, r)
        check('the disks prompt lists this machine\'s disks',
              'Your disks are: ' in r.out, r)
        r = e.run_pty(['--config-out', e.conf, '--ca-bundle', ctl.ca,
                       *control_args(ctl)], [
            (r'To replicate all disks, press Enter: $', ''),
            (r'Delete it and install again\? \[y/N\] $', 'n'),
        ])
        check('on a terminal, an existing agent: asked; "n" keeps it '
              '(exit 1, untouched)',
              r.rc == 1 and 'already installed' in r.out
              and e.conf_keys().get('secret-access-key') == secret, r)
        shutil.rmtree(os.path.dirname(e.conf))
        r = e.run_pty(['--no-prompt', '--config-out', e.conf], [])
        check('on a terminal with --no-prompt: nothing asked, the missing '
              'flags named', r.rc == 2 and 'missing --region' in r.out
              and 'AWS Region Name' not in r.out, r)
    done()


main()
