"""A full staging filesystem: the client gets ERROR NOSPC, what was
acknowledged is on the volume, and once space is freed (a file deleted, or
the filesystem grown) a resumed sync completes.  Needs root (tmpfs)."""
import os
import subprocess

from repltest import (E_NOSPC, MiB, Client, Pki, Replicator, TestDir, check,
                      describe, done, log, make_image, need_binaries,
                      same_file, same_prefix, volume_path)

SRC = 's-0123456789abcdef0'
SIZE = 32 * MiB


def mount_tmpfs(t, name, size_mb):
    d = t.sub(name)
    os.makedirs(d)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%dm' % size_mb,
                    'ferry-test', d], check=True)
    t.mounts.append(d)
    return d


def full_then_freed(t, pki, image, name, size_mb, ballast_mb, free):
    mnt = mount_tmpfs(t, name.replace(' ', '-'), size_mb)
    if ballast_mb:
        with open(os.path.join(mnt, 'ballast'), 'wb') as f:
            f.write(b'\xa5' * (ballast_mb * MiB))
    repl = Replicator(pki, os.path.join(mnt, 'data'),
                      allow=['%s *' % SRC]).start()
    try:
        cl = Client(pki, SRC, [('/dev/vda', image)])
        rc, res, err = cl.run(repl, 'sync', timeout=120)
        e = res and res.get('error')
        check('%s: sync on a full filesystem gets ERROR NOSPC (%s)' %
              (name, e and e.get('message', '')[:100]),
              res and e and e['where'] == 'frame' and e['code'] == E_NOSPC,
              '%s %s' % (describe(res), err.strip()))
        vol = volume_path(repl.data_dir, SRC, '/dev/vda')
        acked = res['disks'][0]['acked_upto'] if res else 0
        check('%s: the %d MiB acknowledged before are on the volume' %
              (name, acked // MiB),
              acked == 0 or (os.path.exists(vol) and same_prefix(vol, image, acked)))
        rc2, hello, _ = cl.run(repl, 'hello-only')
        check('%s: replicator still serving' % name,
              repl.alive() and hello and hello['welcome'],
              describe(hello) + '\n' + repl.log_tail())
        check('%s: the NOSPC is logged' % name,
              repl.logged(lambda l: 'space' in l.lower() or
                          'nospc' in l.lower()), repl.log_tail())
        free(mnt)
        rc, res, err = cl.run(repl, 'sync', '--resume', timeout=120)
        check('%s: after freeing space a resumed sync completes' % name,
              rc == 0 and res and res['ok'], '%s %s' % (describe(res),
                                                       err.strip()))
        check('%s: the volume equals the image' % name,
              os.path.exists(vol) and same_file(vol, image))
        if res and res['ok']:
            log('%s: resumed at %d MiB' % (name, res['disks'][0]['start'] // MiB))
    finally:
        repl.stop()


def main():
    need_binaries()
    if os.geteuid() != 0:
        print('FAIL t_enospc: needs root to mount a small tmpfs')
        done()
    t = TestDir('repl-enospc')
    try:
        pki = Pki(t.path)
        image = t.sub('image')
        make_image(image, SIZE, seed=31)

        def delete_ballast(mnt):
            os.unlink(os.path.join(mnt, 'ballast'))

        def grow(mnt):
            subprocess.run(['mount', '-o', 'remount,size=64m', mnt],
                           check=True)
        full_then_freed(t, pki, image, 'delete a file', 48, 28,
                        delete_ballast)
        full_then_freed(t, pki, image, 'grow the filesystem', 16, 0, grow)
    finally:
        t.cleanup()
    done()


main()
