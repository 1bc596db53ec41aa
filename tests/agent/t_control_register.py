"""t_control_register: ferry-agent registers with a real ferry-control.

First start with the installer's key: RegisterAgentForMgn creates the
source server with the host's facts (as `aws mgn describe-source-servers`
shows them), the issued credentials and the data-plane certificate land
in the state directory with private modes, and the installer's secret
leaves agent.conf.  A second start reuses the stored ID and credentials
without the installer's key; a third with the key again (a reinstall)
keeps the ID.  Partitions named in `devices` mean their whole disk.
"""
import os
import re
import socket
import subprocess

from agentctl import Setup, check, done, log, mode, wait_for, FERRYCTL


def openssl(*args, **kw):
    return subprocess.run(['openssl'] + list(args), capture_output=True,
                          text=True, **kw)


def main():
    with Setup() as s:
        disk = s.loop('disk', 96 << 20)
        inst = s.ctl.installer
        conf = s.write_conf('a', devices=disk.dev, tags='team=blue,env=test',
                            user_provided_id='web-1')
        before = open(conf).read()
        a = s.agent(conf)
        sid = a.wait_registered()
        check('first start registers and stores a source server ID',
              sid and re.match(r'^s-[0-9a-f]{17}$', sid),
              'no registration; log: %s' % a.log()[-800:])
        if not sid:
            return
        srv = wait_for('the server at ferry-control', lambda: s.server(sid))
        check('describe-source-servers shows the new server', srv,
              [x['sourceServerID'] for x in s.servers()])
        props = srv['sourceProperties'] if srv else {}
        hints = props.get('identificationHints', {})
        check('hostname reported', hints.get('hostname') ==
              socket.gethostname(), hints)
        cores = sum(c['cores'] for c in props.get('cpus', []))
        check('CPUs reported (cores of all sockets = online CPUs)',
              cores == os.cpu_count(), props.get('cpus'))
        mem = int(re.search(r'MemTotal:\s+(\d+)',
                            open('/proc/meminfo').read()).group(1)) * 1024
        check('RAM reported', props.get('ramBytes') == mem,
              '%s vs %d' % (props.get('ramBytes'), mem))
        pretty = re.search(r'^PRETTY_NAME="?([^"\n]*)',
                           open('/etc/os-release').read(), re.M).group(1)
        check('OS reported from /etc/os-release and the kernel',
              pretty in props.get('os', {}).get('fullString', '') and
              os.uname().release in props['os']['fullString'],
              props.get('os'))
        macs = set()
        for ifn in os.listdir('/sys/class/net'):
            if ifn == 'lo':
                continue
            addrs = subprocess.run(['ip', '-o', 'addr', 'show', 'dev', ifn,
                                    'scope', 'global'], capture_output=True,
                                   text=True).stdout
            if addrs.strip() or os.path.exists('/sys/class/net/%s/device'
                                               % ifn):
                macs.add(open('/sys/class/net/%s/address' % ifn)
                         .read().strip())
        got = set(n['macAddress'] for n in props.get('networkInterfaces',
                                                     []))
        check('network interfaces reported with their MACs', got == macs,
              '%s vs %s' % (got, macs))
        prim = [n for n in props.get('networkInterfaces', [])
                if n.get('isPrimary')]
        check('one primary interface, with addresses', len(prim) <= 1 and
              all(n['ips'] for n in prim), prim)
        check('the disks of `devices` reported with their sizes',
              props.get('disks') == [{'deviceName': disk.dev,
                                      'bytes': disk.size}],
              props.get('disks'))
        # Debian's aws CLI model predates userProvidedID: read it raw.
        _, _, raw = s.ctl.call('DescribeSourceServers', {'filters': {}})
        upid = [x.get('userProvidedID') for x in raw['items']
                if x['sourceServerID'] == sid]
        check('tags and userProvidedID sent',
              srv.get('tags') == {'team': 'blue', 'env': 'test'} and
              upid == ['web-1'], (srv.get('tags'), upid))

        # The installer's secret leaves agent.conf, nothing else does.
        after = open(conf).read()
        check("the installer's secret is gone from agent.conf",
              'secret-access-key' not in after and
              inst['SecretAccessKey'] not in after, after)
        check('every other line of agent.conf is kept',
              after == ''.join(ln for ln in before.splitlines(True)
                               if not ln.startswith('secret-access-key')),
              after)
        check('agent.conf keeps its mode 0600', mode(conf) == 0o600,
              oct(mode(conf)))

        # The state directory.
        st = a.state
        check('state directory is 0700', mode(st) == 0o700, oct(mode(st)))
        private = ['registration.json', 'agent-key.pem', 'agent.csr',
                   'runtime.json']
        modes = {f: oct(mode(os.path.join(st, f))) for f in private
                 if os.path.exists(os.path.join(st, f))}
        check('registration, key, CSR, runtime are 0600',
              len(modes) == 4 and all(m == '0o600' for m in modes.values()),
              modes)
        reg = a.registration()
        check('registration.json: ID, endpoint and temporary credentials',
              reg['sourceServerID'] == sid and reg['endpoint'] == s.ctl.url
              and reg['credentials']['accessKeyId'].startswith('ASIA') and
              reg['credentials']['sessionToken'] and
              reg['credentials']['expiration'].endswith('Z'), reg)
        secret_seen = []
        for root, _, files in os.walk(st):
            for f in files:
                if inst['SecretAccessKey'] in open(os.path.join(root, f),
                                                   errors='replace').read():
                    secret_seen.append(f)
        check("the installer's secret is in no state file", not secret_seen,
              secret_seen)

        # The data-plane certificate.
        cert = os.path.join(st, 'agent.pem')
        v = openssl('verify', '-CAfile', s.ctl.ca, cert)
        check("agent.pem verifies against ferry-control's CA",
              v.returncode == 0 and ': OK' in v.stdout, v.stdout + v.stderr)
        text = openssl('x509', '-in', cert, '-noout', '-text').stdout
        check('certificate names the source server (CN and URI SAN)',
              'CN = %s' % sid in text and
              'URI:urn:ferry:source-server:%s' % sid in text, text[:600])
        pub_cert = openssl('x509', '-in', cert, '-noout', '-pubkey').stdout
        pub_key = openssl('pkey', '-in', os.path.join(st, 'agent-key.pem'),
                          '-pubout').stdout
        pub_csr = openssl('req', '-in', os.path.join(st, 'agent.csr'),
                          '-noout', '-pubkey').stdout
        check('certificate, CSR and agent-key.pem: one EC P-256 key',
              pub_cert and pub_cert == pub_key == pub_csr and
              'prime256v1' in openssl('pkey', '-in',
                                      os.path.join(st, 'agent-key.pem'),
                                      '-noout', '-text').stdout,
              (pub_cert, pub_key, pub_csr))
        check('ca.pem is ferry-control\'s CA',
              open(os.path.join(st, 'ca.pem')).read() ==
              open(s.ctl.ca).read())

        # Heartbeats reach ferry-control.
        seen = srv['lifeCycle']['lastSeenByServiceDateTime']
        later = wait_for('a later heartbeat', lambda: (
            s.server(sid)['lifeCycle']['lastSeenByServiceDateTime'] > seen))
        check('heartbeats move lastSeenByServiceDateTime', later)

        # No secret in the log.
        creds = reg['credentials']
        logtext = a.log()
        leaked = [n for n, v in [('installer secret', inst['SecretAccessKey']),
                                 ('issued secret', creds['secretAccessKey']),
                                 ('session token', creds['sessionToken'])]
                  if v in logtext]
        check('no secret in the agent log', not leaked, leaked)

        rc = a.term()
        check('SIGTERM: ferry-agent exits 0', rc == 0,
              'exit %s: %s' % (rc, a.log()[-500:]))

        # Second start: the stored registration, no installer key.
        b = s.agent(conf)
        ok = wait_for('heartbeats after the restart', lambda: (
            b.status() and b.status()['control']['lastHeartbeatDateTime']))
        check('second start without the installer key runs', ok and
              b.alive(), b.log()[-800:])
        check('second start: no new registration',
              'registered with' not in b.log() and len(s.servers()) == 1,
              b.log()[-800:])
        check('second start: the stored ID and credentials',
              b.registration()['sourceServerID'] == sid and
              b.registration()['credentials']['accessKeyId'] ==
              creds['accessKeyId'], b.registration())
        st2 = b.status()
        check('the status file names the server and ferry-control',
              st2 and st2['sourceServerID'] == sid and
              st2['control']['endpoint'] == s.ctl.url, st2)
        out = subprocess.run([FERRYCTL, 'status', '--state-dir', st],
                             capture_output=True, text=True)
        check('ferryctl status shows the server and the last heartbeat',
              out.returncode == 0 and sid in out.stdout and
              'last heartbeat  20' in out.stdout, out.stdout + out.stderr)
        b.term()

        # The installer again (a reinstall): same machine, same ID.
        conf3 = s.write_conf('a', devices=disk.dev)
        c = s.agent(conf3)
        ok = wait_for('re-registration', lambda: 'registered with' in
                      c.log() or not c.alive())
        reg3 = c.registration()
        check('reinstall: registers again, the same source server ID',
              ok and c.alive() and reg3['sourceServerID'] == sid and
              reg3['credentials']['accessKeyId'] != creds['accessKeyId'] and
              len(s.servers()) == 1, c.log()[-800:])
        check("reinstall: the secret leaves agent.conf again",
              'secret-access-key' not in open(conf3).read())
        c.term()

        # A partition means its whole disk; two of them, one disk.
        parted = s.loop('parted', 64 << 20, parts=2)
        conf4 = s.write_conf('b', devices='%sp1,%sp2' % (parted.dev,
                                                         parted.dev))
        d = s.agent(conf4)
        sid4 = d.wait_registered()
        srv4 = s.server(sid4) if sid4 else None
        log('partitioned disk %s: %s' % (parted.dev, srv4 and
                                          srv4['sourceProperties']['disks']))
        # The same machine: the same server, now with the new disk list.
        check('partitions given: their whole disk is registered, once',
              srv4 and srv4['sourceProperties']['disks'] ==
              [{'deviceName': parted.dev, 'bytes': parted.size}],
              d.log()[-600:])
        d.term()


main()
done()
