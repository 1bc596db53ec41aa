#!/usr/bin/python3
"""InitializeService and the UninitializedAccountException that every
other public operation answers before it, through Debian's aws CLI, boto3
and raw signed calls."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import call, next_second, unique  # noqa: E402

check = ft.check
code_of = ft.error_code
MISSING_SS = 's-0123456789abcdef0'


def templates(c):
    return unique(c.boto()).describe_replication_configuration_templates()['items']


with ft.Control(initialize=False) as c:
    b = unique(c.boto())
    # Before InitializeService: every public operation whose model lists
    # UninitializedAccountException answers it, with either client.
    for name, fn in [
            ('cli describe-source-servers',
             lambda: c.aws('mgn', 'describe-source-servers')),
            ('cli describe-jobs', lambda: c.aws('mgn', 'describe-jobs')),
            ('cli start-replication',
             lambda: c.aws('mgn', 'start-replication', '--source-server-id',
                           MISSING_SS)),
            ('cli pause-replication',
             lambda: c.aws('mgn', 'pause-replication', '--source-server-id',
                           MISSING_SS)),
            ('cli mark-as-archived',
             lambda: c.aws('mgn', 'mark-as-archived', '--source-server-id',
                           MISSING_SS)),
            ('cli change-server-life-cycle-state',
             lambda: c.aws('mgn', 'change-server-life-cycle-state',
                           '--source-server-id', MISSING_SS,
                           '--life-cycle', 'state=READY_FOR_TEST')),
            ('boto describe_source_servers',
             lambda: b.describe_source_servers()),
            ('boto describe_jobs', lambda: b.describe_jobs()),
            ('boto disconnect_from_service',
             lambda: b.disconnect_from_service(sourceServerID=MISSING_SS)),
            ('boto delete_source_server',
             lambda: b.delete_source_server(sourceServerID=MISSING_SS)),
            ('boto retry_data_replication',
             lambda: b.retry_data_replication(sourceServerID=MISSING_SS)),
            ('boto stop_replication',
             lambda: b.stop_replication(sourceServerID=MISSING_SS)),
            ('boto resume_replication',
             lambda: b.resume_replication(sourceServerID=MISSING_SS))]:
        code = code_of(fn)
        check('uninitialized: ' + name, code == 'UninitializedAccountException',
              code)

    st, h, body = call(c, 'DescribeSourceServers', {})
    check('uninitialized: status 400 and error type header',
          st == 400 and h.get('x-amzn-errortype', '').startswith(
              'UninitializedAccountException'), (st, h, body))
    check('uninitialized: message says what to do',
          body and 'InitializeService' in body.get('message', ''), body)

    # The initialisation check comes before the request's validation.
    st, h, body = call(c, 'DescribeSourceServers', {'maxResults': 0})
    check('uninitialized: before validation',
          h.get('x-amzn-errortype', '').startswith(
              'UninitializedAccountException'), (st, body))

    # Only administrators initialise.
    code = code_of(c.aws, 'mgn', 'initialize-service', creds=c.installer)
    check('installer key: initialize-service denied',
          code == 'AccessDeniedException', code)
    code = code_of(unique(c.boto(c.replicator)).initialize_service)
    check('replicator key: initialize_service denied',
          code == 'AccessDeniedException', code)
    next_second()
    code = code_of(c.aws, 'mgn', 'describe-source-servers')
    check('denied initialisation changed nothing',
          code == 'UninitializedAccountException', code)

    st, h, body = call(c, 'InitializeService', {'unexpected': 1})
    check('initialize-service: unknown member refused',
          st == 400 and h.get('x-amzn-errortype', '').startswith(
              'ValidationException'), (st, body))

    # The CLI prints nothing for a 204.
    try:
        out = c.aws('mgn', 'initialize-service')
        check('cli initialize-service: 204, no output', out is None, out)
    except ft.AwsError as e:
        check('cli initialize-service: 204, no output', False, e)
    st, _, body = call(c, 'InitializeService', {})
    check('raw InitializeService answers 204', st == 204, (st, body))

    try:
        r = c.aws('mgn', 'describe-source-servers')
        check('after initialize: cli describe-source-servers works',
              r == {'items': []}, r)
    except ft.AwsError as e:
        check('after initialize: cli describe-source-servers works', False, e)
    try:
        r = b.describe_jobs()
        check('after initialize: boto describe_jobs works',
              r['items'] == [], r)
    except Exception as e:
        check('after initialize: boto describe_jobs works', False, e)

    # InitializeService makes MGN's default replication template, once.
    tpl = templates(c)
    check('initialize made one default template', len(tpl) == 1, tpl)
    try:
        r = b.initialize_service()
        check('boto initialize_service again: idempotent',
              r['ResponseMetadata']['HTTPStatusCode'] == 204, r)
    except Exception as e:
        check('boto initialize_service again: idempotent', False, e)
    tpl2 = templates(c)
    check('second initialize made no second template',
          [t['replicationConfigurationTemplateID'] for t in tpl2] ==
          [t['replicationConfigurationTemplateID'] for t in tpl], tpl2)

    # The initialisation is durable across a crash.
    c.kill9()
    c.start()
    next_second()
    code = code_of(c.aws, 'mgn', 'describe-source-servers')
    check('initialisation survives kill -9', code is None, code)

with ft.Control() as c:
    # The harness initialises by default; the other groups' operations
    # that are not in the model's list still work before it (tags).
    code = code_of(c.aws, 'mgn', 'describe-jobs')
    check('default harness: initialised', code is None, code)

ft.done()
