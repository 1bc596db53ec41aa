"""t_proxy: a proxy with a user and a password (tinyproxy's BasicAuth),
against a real ferry-control on loopback.

The password is the proxy's own secret: it must not be where other users
of the server can read it.  install.sh gives it to curl on its standard
input (`curl -K -`) for the signed calls and for the package downloads,
never on a command line (every user sees those in ps): a curl first on
PATH records each command line and standard input, then runs the real
curl.  It is shown and logged masked (http://ferryuser:***@...), in the
checks' lines, in the failures, in malformed-value errors and in the
install log; agent.conf (0600) keeps it whole, since the service needs
it.  The downloads are reached by a run without --config-out that stops
after them (FERRY_INSTALL_FAIL_AFTER=fetch) with the packages served by
ferry-control as its installation assets: it changes nothing on this
machine, and its PATH has no package manager, systemctl or modprobe in
case it went further.  The real ferry-agent masks the password in its
messages too, and registers through the proxy with it.
"""
import glob
import os
import shutil
import stat

from installctl import Env, ROOT, check, control_args, done, write
import agentctl

USER = 'ferryuser'
PASSWORD = 'pr0xy-Pa55word'
RECORDER = r'''#!/bin/bash
# curl, recorded: its arguments (one a line) and, with -K -, its standard
# input (the config), each call in a directory of its own.
d=$(mktemp -d "%(rec)s/call.XXXXXX")
printf '%%s\n' "$@" >"$d/argv"
for a; do
	if [ "$a" = -K ]; then
		cat >"$d/stdin"
		exec %(curl)s "$@" <"$d/stdin"
	fi
done
exec %(curl)s "$@"
'''


def calls(rec):
    """[(argv text, stdin text)] of the recorded curl calls."""
    out = []
    for d in sorted(glob.glob(os.path.join(rec, 'call.*'))):
        argv = open(os.path.join(d, 'argv')).read()
        try:
            stdin = open(os.path.join(d, 'stdin')).read()
        except OSError:
            stdin = ''
        out.append((argv, stdin))
    return out


def main():
    assets = os.path.join(agentctl.BUILD, 'pkg')
    with agentctl.Setup(control_args=['--assets-dir', assets]) as s, \
            Env() as e:
        ctl = s.ctl
        proxy = s.proxy(auth=(USER, PASSWORD))
        shown = 'http://%s:***@127.0.0.1:%d/' % (USER, proxy.port)
        url = proxy.url_auth + '/'

        # -- the checks: the signed call through the proxy ---------------
        for signer in ('curl', 'shell'):
            n = proxy.connects(ctl.port)
            r = e.run('--no-prompt', '--check-only', *control_args(ctl),
                      '--proxy-address', url,
                      env=e.env(FERRY_INSTALL_SIGNER=signer))
            check('a proxy with user and password (%s signer): the call '
                  'goes through it, the line shows %s' % (signer, shown),
                  r.rc == 0 and proxy.connects(ctl.port) == n + 1
                  and 'reachable through the proxy %s;' % shown in r.out, r)
            check('... the password is in no output (%s signer)' % signer,
                  PASSWORD not in r.all, r)
        r = e.run('--no-prompt', *control_args(ctl), '--proxy-address', url)
        check('with --config-out: agent.conf keeps the proxy whole (the '
              'service needs it), 0600',
              r.rc == 0 and e.conf_keys().get('proxy') == url
              and stat.S_IMODE(os.stat(e.conf).st_mode) == 0o600, r)
        lg = e.log_text()
        check('... the install log shows it masked, never the password',
              'through the proxy %s' % shown in lg and PASSWORD not in lg
              and PASSWORD not in r.all, lg[-1500:])
        shutil.rmtree(os.path.dirname(e.conf))
        os.unlink(e.log_path)
        env = e.env(https_proxy=proxy.url_auth)
        r = e.run('--no-prompt', *control_args(ctl), env=env)
        check('https_proxy with a password: used, masked in the output '
              'and the log', r.rc == 0 and
              'through the proxy http://%s:***@' % USER in r.out
              and PASSWORD not in r.all and PASSWORD not in e.log_text(), r)
        shutil.rmtree(os.path.dirname(e.conf))
        os.unlink(e.log_path)

        wrong = 'http://%s:not-%s@127.0.0.1:%d/' % (USER, PASSWORD,
                                                    proxy.port)
        r = e.run('--no-prompt', *control_args(ctl), '--proxy-address', wrong)
        check('a wrong proxy password: FAILED, the proxy named masked',
              r.rc == 1 and 'FAILED  the proxy %s failed or refused the '
              'connection' % shown in r.out, r)
        check('... neither password in the output nor in the log',
              PASSWORD not in r.all and PASSWORD not in e.log_text(),
              r.all + e.log_text())
        os.unlink(e.log_path)
        r = e.run('--no-prompt', *control_args(ctl), '--proxy-address',
                  'ftp://%s:%s@127.0.0.1:%d/' % (USER, PASSWORD, proxy.port))
        check('a malformed proxy URL with a password: refused (exit 2), '
              'shown masked', r.rc == 2 and "--proxy-address 'ftp://%s:***@"
              % USER in r.err and PASSWORD not in r.all, r)

        # -- the downloads -------------------------------------------------
        # A copy of install.sh away from build/pkg, so that it asks
        # ferry-control for the packages and downloads them.
        here = os.path.join(e.tmp, 'download')
        script = os.path.join(here, 'install.sh')
        os.makedirs(here)
        shutil.copy(os.path.join(ROOT, 'scripts', 'install.sh'), script)
        rec = os.path.join(e.tmp, 'curl-calls')
        os.makedirs(rec)
        wrap = os.path.join(e.tmp, 'curl-wrapper')
        write(os.path.join(wrap, 'curl'), RECORDER % {
            'rec': rec, 'curl': shutil.which('curl')}, 0o755)
        safe = e.path_without('apt-get', 'dpkg', 'dnf', 'yum', 'zypper',
                              'rpm', 'systemctl', 'modprobe', 'dkms')
        had_conf = os.path.exists('/etc/ferry')
        check('this machine has no ferry agent (the run below checks it)',
              not had_conf and not os.path.exists('/var/lib/ferry-agent'))
        n = proxy.connects(ctl.port)
        env = e.env(PATH=wrap + ':' + safe, FERRY_INSTALL_FAIL_AFTER='fetch')
        # dkms and systemctl are checked before anything: the safe PATH
        # lacks them, so the checks get a dkms and a systemctl that do
        # nothing.
        write(os.path.join(wrap, 'dkms'), '#!/bin/sh\necho "dkms-3.0.10"\n',
              0o755)
        write(os.path.join(wrap, 'systemctl'), '#!/bin/sh\nexit 1\n', 0o755)
        r = e.run('--no-prompt', *control_args(ctl), '--proxy-address', url,
                  conf=False, argv0=script, env=env)
        lg = e.log_text()
        check('install.sh with a proxy, without --config-out, stopped '
              'after the downloads: exit 3, the packages came from '
              'ferry-control through the proxy, their SHA-512 checked',
              r.rc == 3 and "after step 'fetch'" in r.out
              and 'downloading ferry-dkms_' in r.out
              and 'sha512 ok: ferry-dkms_' in lg
              and 'sha512 ok: ferry-agent_' in lg
              and proxy.connects(ctl.port) == n + 4, r)
        check('... and changed nothing on this machine',
              not os.path.exists('/etc/ferry') or had_conf, r)
        cs = calls(rec)
        downloads = [c for c in cs if '-o' in c[0].split('\n')
                     and 'POST' not in c[0].split('\n')]
        check('... curl ran for the probe, the assets and 2 downloads',
              len(cs) >= 4 and len(downloads) == 2,
              [c[0].replace('\n', ' ') for c in cs])
        leaks = [c[0].replace('\n', ' ') for c in cs
                 if PASSWORD in c[0] or USER in c[0]]
        check('... no curl command line holds the proxy (user or password)',
              not leaks, leaks)
        check('... each download got the proxy on its standard input',
              downloads and all('proxy = "%s"' % url in c[1]
                                for c in downloads),
              [c[1] for c in downloads])
        check('... the password is in no output and not in the log',
              PASSWORD not in r.all and PASSWORD not in lg, r)

        # -- the agent -------------------------------------------------------
        conf = s.write_conf('agent-wrong', proxy=wrong)
        a = s.run_agent(conf)
        out = a.stdout + a.stderr
        check('ferry-agent with a wrong proxy password: fails, the proxy '
              'named masked', a.returncode != 0
              and 'through proxy %s' % shown in out, out[-1500:])
        check('... the password is not in its messages', PASSWORD not in out,
              out[-1500:])
        n = proxy.connects(ctl.port)
        conf = s.write_conf('agent-right', proxy=url)
        ag = s.agent(conf)
        sid = ag.wait_registered()
        check('ferry-agent with the right password: registers through the '
              'proxy', sid and proxy.connects(ctl.port) > n,
              ag.log()[-1500:])
        ag.term()
        check('... and logs no password', PASSWORD not in ag.log()
              and PASSWORD not in ag.out(), ag.log()[-1500:])
    done()


main()
