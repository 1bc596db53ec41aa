"""t_lint: scripts/install.sh and scripts/uninstall.sh parse (bash -n) and
are shellcheck-clean (when shellcheck is installed: apt-get install
shellcheck)."""
import os
import shutil
import subprocess

from installctl import INSTALL, check, done

UNINSTALL = os.path.join(os.path.dirname(INSTALL), 'uninstall.sh')

for path in (INSTALL, UNINSTALL):
    name = 'scripts/' + os.path.basename(path)
    r = subprocess.run(['bash', '-n', path], capture_output=True, text=True)
    check('bash -n %s' % name, r.returncode == 0, r.stderr)
    if shutil.which('shellcheck'):
        r = subprocess.run(['shellcheck', path], capture_output=True,
                           text=True)
        check('shellcheck %s: clean' % name, r.returncode == 0,
              r.stdout[-3000:])
    else:
        print('    shellcheck is not installed: skipped')
done()
