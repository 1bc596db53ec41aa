"""`ferry-control keys`: create, list, delete; the secret shown once."""
import json

import ferrytest as ft
from ferrytest import check

with ft.Control() as c:
    k = c.keys_create('ops-team', 'admin')
    check('keys create prints an AccessKey like aws iam create-access-key',
          k['AccessKeyId'].startswith('AKIA') and len(k['AccessKeyId']) == 20 and
          len(k['SecretAccessKey']) == 40 and k['Status'] == 'Active' and k['UserName'] == 'ops-team', k)
    r = c.aws('mgn', 'describe-source-servers', creds=k)
    check('the new key works at once (daemon running)', r is not None, r)
    lst = json.loads(c.cli('keys', 'list', '--data-dir', c.data_dir).stdout)
    ids = [m['AccessKeyId'] for m in lst['AccessKeyMetadata']]
    check('keys list shows every key', k['AccessKeyId'] in ids and c.installer['AccessKeyId'] in ids, lst)
    check('keys list never shows a secret', 'Secret' not in json.dumps(lst) and
          k['SecretAccessKey'] not in json.dumps(lst), lst)
    roles = {m['AccessKeyId']: m['Role'] for m in lst['AccessKeyMetadata']}
    check('keys list shows roles', roles.get(c.installer['AccessKeyId']) == 'installer' and
          roles.get(c.replicator['AccessKeyId']) == 'replicator', roles)
    r = c.cli('keys', 'create', '--data-dir', c.data_dir, '--name', 'x', '--role', 'root', check_rc=False)
    check('an unknown role is refused with a reason', r.returncode != 0 and 'role' in r.stderr, r.stderr)
    r = c.cli('keys', 'create', '--data-dir', c.data_dir, check_rc=False)
    check('create without --name is refused', r.returncode != 0 and '--name' in r.stderr, r.stderr)
    r = c.cli('keys', 'delete', '--data-dir', c.data_dir, '--access-key-id', 'AKIANOSUCHKEY0000000', check_rc=False)
    check('deleting an unknown key fails', r.returncode != 0 and 'AKIANOSUCHKEY0000000' in r.stderr, r.stderr)
    c.cli('keys', 'delete', '--data-dir', c.data_dir, '--access-key-id', k['AccessKeyId'])
    lst = json.loads(c.cli('keys', 'list', '--data-dir', c.data_dir).stdout)
    check('a deleted key is gone from the list',
          k['AccessKeyId'] not in [m['AccessKeyId'] for m in lst['AccessKeyMetadata']], lst)
    with open(c.log_path) as f:
        log = f.read()
    check('no secret ever reaches the log', all(s not in log for s in
          (k['SecretAccessKey'], c.admin['SecretAccessKey'], c.installer['SecretAccessKey'])), log[-500:])
ft.done()
