"""checks: the PASS/FAIL lines of the Python integration tests.

check() prints "PASS name" or "FAIL name: why" for one check and
remembers failures; done() exits non-zero if any failed or none ran.
tests/lib/run-py-tests.sh counts these lines.
"""
import os
import sys

_failures = []
_count = 0


def check(name, cond, detail=''):
    """Print PASS/FAIL for one check; remember failures."""
    global _count
    _count += 1
    if cond:
        print('PASS %s' % name, flush=True)
    else:
        print('FAIL %s: %s' % (name, detail), flush=True)
        _failures.append(name)
    return bool(cond)


def done():
    """Exit with the result of the checks made."""
    if _count == 0:
        print('FAIL %s: no check ran' % os.path.basename(sys.argv[0]))
        sys.exit(1)
    sys.exit(1 if _failures else 0)
