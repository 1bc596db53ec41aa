"""tests/bench/report.py: make bench's report (Python stdlib only).

Reads what tests/bench/run.sh left in $BUILD/bench: `status` (one line
per step: STEP ok|failed|skipped RC SECONDS [why]), `facts` (start time,
load average) and STEP.figures (BENCH lines, tests/lib/bench.sh);
writes $BUILD/bench/report.md (machine facts, the steps, and a table per
component: figure, value, baseline, ratio, goal, met) and prints one line
per figure on stdout.  Exits 1 if a step failed, or ran and gave no
figure; 0 otherwise, goals met or not.
"""
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lib'))
from benchfig import parse  # noqa: E402

BUILD = os.environ.get('BUILD', 'build')
OUT = os.path.join(BUILD, 'bench')
# Report order, and the component of a step that gave no figure.
COMPONENTS = [('tracker', 'ferry.ko change tracker'),
              ('control', 'ferry-control'),
              ('replicator', 'ferry-replicator'),
              ('agent', 'ferry-agent'),
              ('baseline', 'ferry against dd | openssl (a sysadmin\'s copy)')]
STEP_COMPONENT = {'kmod': 'tracker', 'agent-lag': 'agent'}
# The per-step reports with the detail behind the figures.
STEP_MD = {'kmod': 'kmod.md', 'control': 'control.md',
           'replicator': 'replicator.md', 'agent': 'agent.md',
           'agent-lag': 'agent.md', 'baseline': 'baseline.md'}


def read_status():
    steps = []
    try:
        with open(os.path.join(OUT, 'status')) as f:
            for line in f:
                w = line.split()
                if len(w) >= 4:
                    steps.append(dict(step=w[0], status=w[1], rc=w[2],
                                      secs=w[3], why=' '.join(w[4:])))
    except FileNotFoundError:
        pass
    return steps


def read_figures(step):
    path = os.path.join(OUT, step + '.figures')
    try:
        with open(path) as f:
            return [fig for fig in map(parse, f) if fig]
    except FileNotFoundError:
        return []


def last_words(step):
    """The last line of a failed step's log that is not make's own."""
    try:
        with open(os.path.join(OUT, 'logs', step + '.log'),
                  errors='replace') as f:
            said = [line.strip() for line in f if line.strip() and
                    not line.startswith(('make:', 'make['))]
    except FileNotFoundError:
        return ''
    return said[-1][:200] if said else ''


def facts():
    f = {}
    try:
        with open(os.path.join(OUT, 'facts')) as fh:
            for line in fh:
                k, _, v = line.strip().partition(' ')
                f[k] = v
    except FileNotFoundError:
        pass

    def run(*a):
        try:
            return subprocess.run(a, capture_output=True, text=True,
                                  cwd=ROOT).stdout.strip()
        except OSError:
            return ''
    rev = run('git', 'rev-parse', '--short', 'HEAD') or '?'
    # Uncommitted changes to tracked files make the revision a lie.
    if run('git', 'status', '--porcelain', '--untracked-files=no'):
        rev += '+changes'
    start = f.get('git_start')
    if start and start != rev:
        rev = '%s at the start, %s at the end' % (start, rev)
    cpu = '?'
    try:
        with open('/proc/cpuinfo') as fh:
            for line in fh:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem = '?'
    try:
        with open('/proc/meminfo') as fh:
            kib = int(fh.readline().split()[1])
            mem = '%.1f GiB' % (kib / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    uname = platform.uname()
    return [
        ('date', f.get('started', '?') + ' to ' +
         time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())),
        ('git revision (+changes: uncommitted)', '%s (branch %s)' % (
            rev, run('git', 'rev-parse', '--abbrev-ref', 'HEAD') or '?')),
        ('CPUs (nproc)', '%d x %s' % (os.cpu_count() or 0, cpu)),
        ('memory', mem),
        ('kernel', '%s %s (%s)' % (uname.system, uname.release,
                                   uname.version)),
        ('load average at start / end', '%s / %s' % (
            f.get('loadavg_start', '?'), f.get('loadavg_end', '?'))),
    ]


def cell(v):
    return '' if v in (None, '-') else v.replace('|', '\\|')


def main():
    steps = read_status()
    figs = {}         # component -> [figure]
    failed = []
    for s in steps:
        s['figures'] = read_figures(s['step'])
        for fig in s['figures']:
            figs.setdefault(fig.get('component', '?'), []).append(fig)
        if s['status'] == 'ok' and not s['figures']:
            s['status'], s['why'] = 'failed', 'no figures'
        if s['status'] == 'failed':
            failed.append(s['step'])
            s['last'] = last_words(s['step'])

    md = ['# ferry benchmark report', '',
          'Every ratio is value / baseline, both measured in this run on '
          'this machine; a goal applies to the ratio when it says so, '
          'otherwise to the value. A missed goal is reported, not an '
          'error. Produced by `make bench` (tests/bench/run.sh, '
          'tests/bench/report.py).', '',
          '| machine | |', '|---|---|']
    md += ['| %s | %s |' % (k, cell(v)) for k, v in facts()]
    md += ['', '## Benchmarks run', '',
           '| step | status | seconds | figures | details |',
           '|---|---|---:|---:|---|']
    for s in steps:
        status = s['status']
        if status == 'failed':
            status = 'FAILED (%s)' % (s['why'] or 'exit %s' % s['rc'])
        elif status == 'skipped':
            status = 'skipped (%s)' % s['why']
        detail = []
        if s['status'] != 'skipped':
            detail.append('`%s`' % os.path.join(OUT, 'logs',
                                                s['step'] + '.log'))
            mdp = os.path.join(OUT, STEP_MD.get(s['step'], ''))
            if s['figures'] and os.path.isfile(mdp):
                detail.append('`%s`' % mdp)
        md.append('| %s | %s | %s | %d | %s |' % (
            s['step'], status, s['secs'], len(s['figures']),
            ', '.join(detail)))

    lines = []
    known = [c for c, _ in COMPONENTS]
    extra = [(c, c) for c in figs if c not in known]
    for comp, title in COMPONENTS + extra:
        mine = [s for s in steps
                if STEP_COMPONENT.get(s['step'], s['step']) == comp]
        if comp not in figs and not mine:
            continue
        md += ['', '## %s' % title, '']
        for s in mine:
            if s['status'] != 'ok':
                md.append('Step %s: %s%s.' % (
                    s['step'], s['status'].upper() if s['status'] ==
                    'failed' else s['status'],
                    ' (%s)' % s['why'] if s['why'] else
                    ' (exit %s)' % s['rc'] if s['status'] == 'failed'
                    else '') + (' Last words: `%s`' % s['last'].replace(
                        '`', "'") if s.get('last') else ''))
                lines.append('bench %s: step %s %s (%s)%s' % (
                    comp, s['step'], s['status'].upper(),
                    s['why'] or 'exit %s' % s['rc'],
                    ': %s; see %s' % (s.get('last') or '?', os.path.join(
                        OUT, 'logs', s['step'] + '.log'))
                    if s['status'] == 'failed' else ''))
        if comp not in figs:
            continue
        if md[-1] != '':
            md.append('')
        md += ['| figure | value | baseline | ratio | goal | met |',
               '|---|---:|---:|---:|---|---|']
        for fig in figs[comp]:
            unit = cell(fig.get('unit'))
            val = '%s %s' % (fig['value'], unit)
            base = cell(fig.get('baseline'))
            if base:
                base += ' ' + unit
            met = fig.get('met', '-')
            goal = cell(fig.get('goal'))
            md.append('| %s (`%s`) | %s | %s | %s | %s | %s |' % (
                cell(fig.get('label')) or fig['name'], fig['name'], val,
                base, cell(fig.get('ratio')), goal,
                {'yes': 'yes', 'no': '**no**'}.get(met, '')))
            lines.append('bench %s %s: %s%s%s%s' % (
                comp, fig['name'], val,
                ', baseline %s' % base if base else '',
                ', ratio %s' % fig['ratio'] if cell(fig.get('ratio'))
                else '',
                ', goal %s: %s' % (goal, 'met' if met == 'yes' else
                                   'MISSED') if goal else ''))
    if not steps:
        md += ['', 'No benchmark ran (no %s).' % os.path.join(OUT,
                                                              'status')]
        failed.append('(none ran)')

    path = os.path.join(OUT, 'report.md')
    os.makedirs(OUT, exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(md) + '\n')
    for line in lines:
        print(line)
    print('bench: report %s%s' % (path, '; failed: ' + ' '.join(failed)
                                  if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
