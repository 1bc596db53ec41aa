"""t_control_proxy: ferry-agent reaches ferry-control through a real HTTPS
proxy (tinyproxy on loopback) and with a custom CA bundle.

With `proxy` set, registration, the certificate, heartbeats and commands
go through tinyproxy: its log shows the CONNECT tunnels to ferry-control's
port, the agent's sockets (ss) lead to the proxy only, and stopping it
cuts the agent off, with a status error naming the proxy, until it is
back; `https_proxy` in the
environment works the same; `no_proxy` is honoured.  A CA bundle holding
the system's CAs and ferry-control's works; one without ferry-control's
CA is refused with a hint.
"""
import os
import ssl
import subprocess

from agentctl import Setup, check, clean_env, done, log, wait_for


def peers_of(pid):
    """Remote ADDR:PORT of PID's established TCP connections."""
    out = subprocess.run(['ss', '-tnpH', 'state', 'established'],
                         capture_output=True, text=True).stdout
    return [ln.split()[3] for ln in out.splitlines()
            if 'pid=%d,' % pid in ln]


def main():
    with Setup() as s:
        disk = s.loop('disk')
        proxy = s.proxy()
        port = s.ctl.port

        # A bundle: the system's CAs and ferry-control's.
        system = ssl.get_default_verify_paths().cafile or \
            '/etc/ssl/certs/ca-certificates.crt'
        bundle = os.path.join(s.tmp, 'bundle.pem')
        with open(bundle, 'w') as f:
            f.write(open(system).read() + '\n' + open(s.ctl.ca).read())

        conf = s.write_conf('p', devices=disk.dev, proxy=proxy.url,
                            ca_bundle=bundle)
        a = s.agent(conf)
        sid = a.wait_registered()
        check('through the proxy, with a CA bundle: registered', sid,
              a.log()[-600:])
        tunnels = proxy.connects(port)
        check('tinyproxy logged CONNECT tunnels to ferry-control',
              tunnels >= 1, proxy.log()[-1500:])
        hb = wait_for('heartbeats', lambda: a.status() and
                      a.status()['control']['lastHeartbeatDateTime'])
        check('through the proxy: heartbeats accepted', hb, a.log()[-600:])
        if sid:
            s.ctl.aws('mgn', 'pause-replication', '--source-server-id', sid)
            ok = wait_for('the pause', lambda: 'command pause' in a.log()
                          and a.status()['paused'])
            check('through the proxy: a command arrives, the runtime '
                  'configuration follows', ok, a.log()[-600:])
            s.ctl.aws('mgn', 'resume-replication', '--source-server-id',
                      sid)
            wait_for('the resume', lambda: not a.status()['paused'])
        peers = wait_for('an open connection', lambda: peers_of(
            a.proc.pid), limit=20) or []
        check('through the proxy: the agent\'s connections go to the '
              'proxy, none to ferry-control', peers and
              all(p == '127.0.0.1:%d' % proxy.port for p in peers), peers)

        # Proxy gone: the agent is cut off and says why.
        proxy.stop()
        err = wait_for('a control error', lambda: a.status() and
                       a.status()['control'].get('error'), limit=60)
        check('proxy stopped: the status names the proxy and the failure',
              err and 'through proxy %s' % proxy.url in err, err)
        check('proxy stopped: the agent keeps running', a.alive())
        proxy.start()
        back = wait_for('recovery', lambda: 'answers again' in a.log() and
                        not a.status()['control'].get('error'), limit=90)
        check('proxy back: calls go through again', back and
              proxy.connects(port) > 0, a.log()[-600:])
        a.term()

        # https_proxy from the environment, no proxy setting.
        proxy.stop()
        proxy.start()
        conf2 = s.write_conf('e', devices=disk.dev)
        b = s.agent(conf2, env=clean_env(https_proxy=proxy.url))
        sid2 = b.wait_registered()
        check('https_proxy in the environment: registered through it',
              sid2 and proxy.connects(port) >= 1,
              b.log()[-600:] + proxy.log()[-800:])
        b.term()

        # no_proxy names ferry-control: the proxy is not used.
        proxy.stop()
        proxy.start()
        conf3 = s.write_conf('n', devices=disk.dev)
        c = s.agent(conf3, env=clean_env(https_proxy=proxy.url,
                                         no_proxy='127.0.0.1'))
        sid3 = c.wait_registered()
        hb = wait_for('heartbeats', lambda: c.status() and
                      c.status()['control']['lastHeartbeatDateTime'])
        check('no_proxy: ferry-control reached directly', sid3 and hb and
              proxy.connects(port) == 0,
              '%s %s: %s' % (sid3, hb, c.log()[-800:] + proxy.log()[-800:]))
        c.term()

        # A bundle without ferry-control's CA.
        conf4 = s.write_conf('w', devices=disk.dev, ca_bundle=system)
        before = open(conf4).read()
        r = s.run_agent(conf4)
        log(r.stderr.strip())
        check('a CA bundle without ferry-control\'s CA: refused with a hint',
              r.returncode == 1 and 'certificate' in r.stderr and
              'set ca-bundle' in r.stderr and open(conf4).read() == before,
              r.stderr)


main()
done()
