"""t_lint: scripts/install.sh parses (bash -n) and is shellcheck-clean
(when shellcheck is installed: apt-get install shellcheck)."""
import shutil
import subprocess

from installctl import INSTALL, check, done

r = subprocess.run(['bash', '-n', INSTALL], capture_output=True, text=True)
check('bash -n scripts/install.sh', r.returncode == 0, r.stderr)
if shutil.which('shellcheck'):
    r = subprocess.run(['shellcheck', INSTALL], capture_output=True,
                       text=True)
    check('shellcheck scripts/install.sh: clean', r.returncode == 0,
          r.stdout[-3000:])
else:
    print('    shellcheck is not installed: skipped')
done()
