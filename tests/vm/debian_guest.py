"""debian_guest: a Debian server in QEMU (scripts/vm/debian-vm.sh), for
the Python tests and the demo: boot, run shell scripts over SSH, copy
files in, pause and resume, stop with the kernel-log check.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VM = os.path.join(ROOT, 'scripts', 'vm', 'debian-vm.sh')
sys.path.insert(0, HERE)
import agent_stack  # noqa: E402


class Guest:
    def __init__(self, directory):
        self.dir = directory

    def start(self, *opts, out=None):
        """debian-vm.sh start DIR OPTS...: True once SSH answers."""
        r = subprocess.run([VM, 'start', self.dir] + list(opts),
                           stdout=out or subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        self.start_log = r.stdout or ''
        return r.returncode == 0

    def sh(self, script, timeout=900, live=False):
        """SCRIPT run by bash in the guest -> (exit status, output); with
        LIVE, the output goes to this process's stdout instead."""
        r = subprocess.run([VM, 'ssh', self.dir, 'bash -s'], input=script,
                           stdout=None if live else subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout or ''

    def copy(self, dest, *files):
        r = subprocess.run([VM, 'copy', self.dir] + list(files) + [dest],
                           capture_output=True, text=True)
        return r.returncode == 0

    def qmp(self, cmd, args=None):
        return agent_stack.qmp(cmd, args or {},
                               sock=os.path.join(self.dir, 'qmp.sock'))

    def disk(self, n):
        """The host file of the guest's disk N (0: the root overlay)."""
        if n == 0:
            return os.path.join(self.dir, 'root.qcow2')
        return os.path.join(self.dir, 'disk%d.img' % n)

    def stop(self):
        """Power off; (True, '') or (False, the kernel-log splat)."""
        r = subprocess.run([VM, 'stop', self.dir], capture_output=True,
                           text=True)
        return r.returncode == 0, r.stderr.strip()
