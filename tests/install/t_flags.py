"""t_flags: install.sh's command line, without ferry-control.

-h/--help names every flag of MGN's installer that issue 6 lists; a wrong
flag is a usage error (exit 2); with --no-prompt (or without a terminal)
the missing region, keys and endpoint are named in one message, flag and
environment variable, and nothing is written; --force-volumes wants
--no-prompt and --devices, named together; malformed values are refused
before anything is checked, and a secret is never echoed back.  Run by
sh (dash) rather than bash, install.sh and uninstall.sh say to run them
with bash (exit 2) instead of failing on bash's syntax.
"""
import os
import shutil
import subprocess

from installctl import Env, INSTALL, check, done

FLAGS = ['--region', '--aws-access-key-id', '--aws-secret-access-key',
         '--aws-session-token', '--endpoint', '--s3-endpoint', '--no-prompt',
         '--devices', '--force-volumes', '--tags', '--user-provided-id',
         '--no-replication', '--proxy-address', '--ca-bundle',
         '--force-delete-existing', '-h, --help', '--check-only',
         '--config-out']
ENV_VARS = ['AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY',
            'AWS_SESSION_TOKEN', 'https_proxy', 'FERRY_ENDPOINT']
KEY = 'AKIAFERRYTESTKEY0001'
SECRET = 'sEcReT/ferry+test/0123456789abcdefghijkl'


def nothing_written(e):
    return not os.path.exists(e.conf) and not os.path.exists(e.log_path) \
        and not os.path.exists(os.path.dirname(e.conf))


def main():
    with Env() as e:
        # sh install.sh: dash (Debian's sh), and busybox's when present.
        shells = [s for s in ('dash', 'busybox') if shutil.which(s)]
        for sh in shells:
            for script in ('install.sh', 'uninstall.sh'):
                path = os.path.join(os.path.dirname(INSTALL), script)
                argv = [sh, path, '--help'] if sh == 'dash' else \
                    [sh, 'sh', path, '--help']
                r = subprocess.run(argv, capture_output=True, text=True,
                                   env=e.env(), stdin=subprocess.DEVNULL)
                want = '%s: run it with bash (sudo bash %s ...)\n' % (
                    script, script)
                check('%s %s: exit 2, "run it with bash", nothing else'
                      % ('sh (dash)' if sh == 'dash' else 'busybox sh',
                         script),
                      r.returncode == 2 and r.stderr == want
                      and r.stdout == '', r.stdout + r.stderr)
        check('sh install.sh: nothing written', nothing_written(e))

        for h in ('-h', '--help'):
            r = e.run(h, conf=False)
            missing = [f for f in FLAGS if f not in r.out]
            check('%s: exit 0, usage and every flag (%d)' % (h, len(FLAGS)),
                  r.rc == 0 and r.out.startswith('usage: install.sh')
                  and not missing, 'missing %s; %s' % (missing, r))
        r = e.run('--help', conf=False)
        missing = [v for v in ENV_VARS if '$' + v not in r.out]
        check('--help names the environment fallbacks', not missing,
              'missing %s' % missing)

        r = e.run('--frobnicate', conf=False)
        check('an unknown flag: exit 2, named',
              r.rc == 2 and "unknown option '--frobnicate'" in r.err, r)
        r = e.run('--region', conf=False)
        check('a flag without its value: exit 2',
              r.rc == 2 and '--region needs a value' in r.err, r)
        r = e.run('--no-prompt=yes', conf=False)
        check('a switch given a value: exit 2',
              r.rc == 2 and '--no-prompt takes no value' in r.err, r)

        # --no-prompt, nothing given: one message naming all four.
        r = e.run('--no-prompt')
        errs = [ln for ln in r.err.splitlines() if 'missing' in ln]
        want = ['--region (or AWS_REGION)',
                '--aws-access-key-id (or AWS_ACCESS_KEY_ID)',
                '--aws-secret-access-key (or AWS_SECRET_ACCESS_KEY)',
                '--endpoint (or FERRY_ENDPOINT)']
        check('--no-prompt without keys: exit 2 at once, ONE message naming '
              'every missing flag and its variable',
              r.rc == 2 and len(errs) == 1 and all(w in errs[0] for w in want)
              and '--no-prompt' in errs[0] and 'Checking' not in r.out, r)
        check('--no-prompt without keys: nothing written (no configuration, '
              'no directory, no log)', nothing_written(e))

        r = e.run('--no-prompt', '--region', 'us-east-1',
                  '--endpoint', 'https://ferry.example.test')
        errs = [ln for ln in r.err.splitlines() if 'missing' in ln]
        check('--no-prompt, keys missing: the message names just the keys',
              r.rc == 2 and len(errs) == 1 and '--aws-access-key-id' in errs[0]
              and '--aws-secret-access-key' in errs[0]
              and '--region' not in errs[0] and '--endpoint' not in errs[0], r)

        # Without a terminal and without --no-prompt: the same, it cannot ask.
        r = e.run('--region', 'us-east-1')
        check('no terminal: the missing flags named, exit 2',
              r.rc == 2 and 'missing --aws-access-key-id' in r.err
              and 'no terminal to ask on' in r.err, r)

        # The environment fills them: none is missing any more (the checks
        # run; the unreachable endpoint fails later, not the flags).
        env = e.env(AWS_REGION='eu-west-3', AWS_ACCESS_KEY_ID=KEY,
                    AWS_SECRET_ACCESS_KEY=SECRET,
                    FERRY_ENDPOINT='https://127.0.0.1:9')
        r = e.run('--no-prompt', '--check-only', env=env)
        check('AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, '
              'FERRY_ENDPOINT fill the flags',
              'missing' not in r.err and 'Checking this machine' in r.out
              and 'region eu-west-3' not in r.err, r)
        env = e.env(AWS_DEFAULT_REGION='eu-west-3', AWS_ACCESS_KEY_ID=KEY,
                    AWS_SECRET_ACCESS_KEY=SECRET,
                    AWS_ENDPOINT_URL_MGN='https://127.0.0.1:9')
        r = e.run('--no-prompt', '--check-only', env=env)
        check('AWS_DEFAULT_REGION and AWS_ENDPOINT_URL_MGN too',
              'missing' not in r.err and 'Checking this machine' in r.out, r)

        # --force-volumes
        base = ['--region', 'us-east-1', '--aws-access-key-id', KEY,
                '--aws-secret-access-key', SECRET,
                '--endpoint', 'https://127.0.0.1:9']
        r = e.run(*base, '--force-volumes')
        check('--force-volumes alone: exit 2, needs --no-prompt and '
              '--devices, in one message',
              r.rc == 2 and '--force-volumes needs --no-prompt and --devices'
              in r.err, r)
        r = e.run(*base, '--force-volumes', '--no-prompt')
        check('--force-volumes --no-prompt: needs --devices',
              r.rc == 2 and '--force-volumes needs --devices' in r.err, r)
        r = e.run(*base, '--force-volumes', '--devices', '/dev/loop0')
        check('--force-volumes --devices: needs --no-prompt',
              r.rc == 2 and '--force-volumes needs --no-prompt' in r.err, r)

        # Malformed values: refused, all at once, before the checks.
        r = e.run('--no-prompt', '--region', 'us east', '--aws-access-key-id',
                  'short', '--aws-secret-access-key', 'has blank ' + SECRET,
                  '--endpoint', 'http://ferry.example.test',
                  '--tags', 'aws:owner=me', 'novalue',
                  '--proxy-address', 'ftp://proxy:3128/',
                  '--ca-bundle', '/nonexistent/ca.pem',
                  '--user-provided-id', 'x' * 257)
        want = ['--region', '--aws-access-key-id', '--aws-secret-access-key',
                '--endpoint', "'aws:owner'", "'novalue'", '--proxy-address',
                '--ca-bundle', '--user-provided-id']
        missing = [w for w in want if w not in r.err]
        lines = [ln for ln in r.err.splitlines()
                 if ln.startswith('install.sh: --')]
        check('malformed values: exit 2, each named on a line of its own, '
              'nothing checked',
              r.rc == 2 and not missing and len(lines) == len(want)
              and 'Checking' not in r.out,
              'not named: %s; %d lines; %s' % (missing, len(lines), r))
        check('a malformed secret is not echoed back', SECRET not in r.all, r)
        r = e.run(*base, '--user-provided-id', 'a\nendpoint = https://evil',
                  '--no-prompt')
        check('a newline in a value (a forged config line): refused',
              r.rc == 2 and 'control character' in r.err, r)
        check('refused values: nothing written', nothing_written(e))
        r = e.run(*base, '--no-prompt', '--tags', 'a=1', 'b=2,c=3', '--tags',
                  'aws:x=1')
        check('--tags KEY=VALUE ...: several values, commas, repeated flag',
              r.rc == 2 and "'aws:x'" in r.err and "'a'" not in r.err
              and "'b'" not in r.err, r)
    done()


main()
