#!/usr/bin/python3
"""DescribeJobs (filters, latest first, pagination) and tags of jobs,
through Debian's aws CLI, boto3 and raw signed calls.

Jobs are made by job_create() (control/jobs.h) for the launch operations,
which ferry-control does not answer yet; until it does, this test writes
jobs into the store of a stopped ferry-control, in the jobs table's
format, and reads them back through the API of a restarted one.
"""
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import call, unique  # noqa: E402

check = ft.check
code_of = ft.error_code


def etype(h):
    return h.get('x-amzn-errortype', '').split(':')[0]


def seed_jobs(c, arn_base, servers):
    """Five jobs, one a day from 2026-01-01, as job_create() stores them;
    returns their IDs, oldest first."""
    c.stop()
    db = sqlite3.connect(os.path.join(c.data_dir, 'control.db'))
    ids = []
    for i in range(5):
        jid = 'mgnjob-%017x' % (0xabc00 + i)
        created = 1767225600 + i * 86400  # 2026-01-01T00:00:00Z + i days
        doc = {'jobID': jid, 'arn': arn_base + 'job/' + jid,
               'creationDateTime': '2026-01-0%dT00:00:00Z' % (i + 1),
               'type': 'LAUNCH' if i % 2 == 0 else 'TERMINATE',
               'initiatedBy': 'START_TEST' if i % 2 == 0 else 'TERMINATE',
               'status': 'PENDING',
               'participatingServers': [{'sourceServerID': s,
                                         'launchStatus': 'PENDING'}
                                        for s in servers]}
        db.execute('INSERT INTO jobs(id, created, doc) VALUES(?, ?, ?)',
                   (jid, created, json.dumps(doc)))
        ids.append(jid)
    db.commit()
    db.close()
    c.start()
    return ids


with ft.Control() as c:
    b = unique(c.boto())
    r = c.aws('mgn', 'describe-jobs')
    check('cli describe-jobs with no jobs: empty list', r == {'items': []}, r)
    r = b.describe_jobs(filters={'jobIDs': []})
    check('boto describe_jobs with no jobs', r['items'] == [], r)

    tpl = b.describe_replication_configuration_templates()['items'][0]
    arn_base = tpl['arn'].split('replication-configuration-template/')[0]
    servers = ['s-0123456789abcdef0', 's-0123456789abcdef1']
    ids = seed_jobs(c, arn_base, servers)
    b = unique(c.boto())
    latest = list(reversed(ids))

    r = c.aws('mgn', 'describe-jobs')
    got = [j['jobID'] for j in r['items']]
    check('cli describe-jobs: latest first', got == latest, got)
    j = r['items'][0]
    check('items are Job shapes',
          j['arn'] == arn_base + 'job/' + ids[4] and j['tags'] == {} and
          j['status'] == 'PENDING' and j['type'] == 'LAUNCH' and
          j['initiatedBy'] == 'START_TEST' and
          j['creationDateTime'] == '2026-01-05T00:00:00Z' and
          [p['sourceServerID'] for p in j['participatingServers']] ==
          servers, j)

    r = c.aws('mgn', 'describe-jobs', '--page-size', '2')
    got = [j['jobID'] for j in r['items']]
    check('cli --page-size 2: auto-pagination returns all', got == latest,
          got)
    r = c.aws('mgn', 'describe-jobs', '--page-size', '2', '--max-items', '3')
    got = [j['jobID'] for j in r['items']]
    check('cli --max-items 3', got == latest[:3] and r.get('NextToken'), r)
    r = c.aws('mgn', 'describe-jobs', '--page-size', '2', '--max-items', '3',
              '--starting-token', r['NextToken'])
    got = [j['jobID'] for j in r['items']]
    check('cli --starting-token continues', got == latest[3:], got)
    pages = list(b.get_paginator('describe_jobs').paginate(
        PaginationConfig={'PageSize': 2}))
    got = [j['jobID'] for p in pages for j in p['items']]
    check('boto paginator, PageSize 2: 3 pages, all jobs',
          len(pages) == 3 and got == latest, (len(pages), got))

    r = c.aws('mgn', 'describe-jobs', '--filters',
              'jobIDs=%s,%s' % (ids[0], ids[3]))
    got = [j['jobID'] for j in r['items']]
    check('cli filter jobIDs', got == [ids[3], ids[0]], got)
    r = b.describe_jobs(filters={'fromDate': '2026-01-02T00:00:00Z',
                                 'toDate': '2026-01-04T00:00:00Z'})
    got = [j['jobID'] for j in r['items']]
    check('boto fromDate/toDate (inclusive)', got == [ids[3], ids[2], ids[1]],
          got)
    r = c.aws('mgn', 'describe-jobs', '--filters',
              'fromDate=2026-01-04T12:00:00Z')
    got = [j['jobID'] for j in r['items']]
    check('cli fromDate only', got == [ids[4]], got)
    r = b.describe_jobs(filters={'toDate': '2025-12-31T23:59:59Z'})
    check('boto toDate before every job: none', r['items'] == [], r)
    flt = {'jobIDs': [ids[1], ids[2], ids[3]],
           'fromDate': '2026-01-03T00:00:00Z'}
    r = b.describe_jobs(filters=flt, maxResults=1)
    check('filters combine, and paginate',
          [j['jobID'] for j in r['items']] == [ids[3]] and
          'nextToken' in r, r)
    r2 = b.describe_jobs(filters=flt, maxResults=1, nextToken=r['nextToken'])
    check('the last page of a filtered listing has no nextToken',
          [j['jobID'] for j in r2['items']] == [ids[2]] and
          'nextToken' not in r2, r2)

    # Tags of jobs.
    arn = arn_base + 'job/' + ids[2]
    b.tag_resource(resourceArn=arn, tags={'wave': '1'})
    r = b.describe_jobs(filters={'jobIDs': [ids[2]]})
    check('a job\'s tags appear in describe-jobs',
          r['items'][0]['tags'] == {'wave': '1'}, r)
    r = c.aws('mgn', 'list-tags-for-resource', '--resource-arn', arn)
    check('cli list-tags-for-resource on a job', r == {'tags': {'wave': '1'}},
          r)

    for name, body in [
            ('bad job ID', {'filters': {'jobIDs': ['job-1']}}),
            ('job ID with a bad character',
             {'filters': {'jobIDs': ['mgnjob-0123456789abcdef_']}}),
            ('fromDate not a date', {'filters': {'fromDate': 'yesterday'}}),
            ('toDate without a time', {'filters': {'toDate': '2026-01-01'}}),
            ('unknown filter', {'filters': {'status': 'PENDING'}}),
            ('maxResults 0', {'maxResults': 0}),
            ('nextToken garbage', {'nextToken': '@@@'}),
            ('nextToken of the source server listing',
             {'nextToken': 'ZmVycnkxOnNzOjM='})]:
        st, h, r = call(c, 'DescribeJobs', body)
        check('describe-jobs: %s -> ValidationException' % name,
              st == 400 and etype(h) == 'ValidationException', (st, r))
    code = code_of(b.describe_jobs, filters={'fromDate': '2026-13-01T00:00:00Z'})
    check('boto bad month -> ValidationException',
          code == 'ValidationException', code)

    _, agent = c.register_agent('jobs-host')
    code = code_of(c.aws, 'mgn', 'describe-jobs', creds=agent)
    check('agent key: cli describe-jobs -> AccessDeniedException',
          code == 'AccessDeniedException', code)
    code = code_of(unique(c.boto(c.installer)).describe_jobs)
    check('installer key: boto describe_jobs -> AccessDeniedException',
          code == 'AccessDeniedException', code)

ft.done()
