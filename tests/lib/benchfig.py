"""benchfig: the machine-readable figures of the Python benchmarks (the
same lines as tests/lib/bench.sh writes for the shell ones):

  BENCH component=C name=N value=V unit="U" baseline=B ratio=R goal="G"
        met=M label="L"

printed to stdout and appended to $BUILD/bench/STEP.figures, which
tests/bench/report.py reads.  ratio is value / baseline, both measured
in the same run; met is yes, no or - (no goal); empty fields are "-".
"""
import os
import shlex

BUILD = os.environ.get('BUILD', 'build')
KEYS = ('component', 'name', 'value', 'unit', 'baseline', 'ratio', 'goal',
        'met', 'label')
QUOTED = ('unit', 'goal', 'label')


class Figures:
    def __init__(self, step):
        self.path = os.path.join(BUILD, 'bench', step + '.figures')
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # Afresh: no figure of an earlier run may pass for this one's.
        open(self.path, 'w').close()

    def add(self, component, name, value, unit, baseline=None, ratio=None,
            goal=None, met=None, label=''):
        vals = dict(component=component, name=name, value=num(value),
                    unit=unit, baseline=num(baseline), ratio=num(ratio),
                    goal=goal, met=met, label=label)
        parts = []
        for k in KEYS:
            v = str(vals[k]) if vals[k] not in (None, '') else '-'
            parts.append('%s="%s"' % (k, v) if k in QUOTED else
                         '%s=%s' % (k, v))
        line = 'BENCH ' + ' '.join(parts)
        print(line, flush=True)
        with open(self.path, 'a') as f:
            f.write(line + '\n')


def num(v):
    """Figures as text: floats with 3 significant decimals at most."""
    if isinstance(v, float):
        return ('%.3f' % v).rstrip('0').rstrip('.') if v == v else 'nan'
    return v


def parse(line):
    """The fields of one BENCH line (a dict), or None."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if not words or words[0] != 'BENCH':
        return None
    out = {}
    for w in words[1:]:
        k, sep, v = w.partition('=')
        if sep:
            out[k] = v
    return out if 'name' in out and 'value' in out else None
