#!/usr/bin/python3
"""TagResource, UntagResource and ListTagsForResource on source servers
and replication configuration templates, through Debian's aws CLI, boto3
and raw signed calls."""
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import call, unique  # noqa: E402

check = ft.check
code_of = ft.error_code


def tags_path(arn):
    return '/tags/' + urllib.parse.quote(arn, safe='')


def cli_list(c, arn, creds=None):
    return c.aws('mgn', 'list-tags-for-resource', '--resource-arn', arn,
                 creds=creds)['tags']


with ft.Control() as c:
    b = unique(c.boto())
    sid, agent = c.register_agent('tagged-host')
    ss_arn = b.describe_source_servers(
        filters={'sourceServerIDs': [sid]})['items'][0]['arn']
    tpl = b.describe_replication_configuration_templates()['items'][0]
    tpl_arn = tpl['arn']
    region, account = ss_arn.split(':')[3:5]

    # Source server: CLI tag, boto list, CLI untag.
    out = c.aws('mgn', 'tag-resource', '--resource-arn', ss_arn, '--tags',
                'env=prod,team=blue')
    check('cli tag-resource on a source server', out is None, out)
    r = b.list_tags_for_resource(resourceArn=ss_arn)['tags']
    check('boto list_tags_for_resource sees them',
          r == {'env': 'prod', 'team': 'blue'}, r)
    item = b.describe_source_servers(
        filters={'sourceServerIDs': [sid]})['items'][0]
    check('describe-source-servers answers the tags',
          item.get('tags') == {'env': 'prod', 'team': 'blue'}, item)

    b.tag_resource(resourceArn=ss_arn, tags={'env': 'test', 'owner': ''})
    r = cli_list(c, ss_arn)
    check('boto tag_resource overwrites and adds (empty value allowed)',
          r == {'env': 'test', 'team': 'blue', 'owner': ''}, r)

    out = c.aws('mgn', 'untag-resource', '--resource-arn', ss_arn,
                '--tag-keys', 'team', 'owner', 'no-such-key')
    check('cli untag-resource (unknown keys ignored)', out is None, out)
    r = b.list_tags_for_resource(resourceArn=ss_arn)['tags']
    check('untag removed exactly those keys', r == {'env': 'test'}, r)
    b.untag_resource(resourceArn=ss_arn, tagKeys=['env'])
    r = cli_list(c, ss_arn)
    check('boto untag_resource removes the last tag', r == {}, r)

    # Replication configuration template.
    b.tag_resource(resourceArn=tpl_arn, tags={'k': 'v'})
    r = cli_list(c, tpl_arn)
    check('tags on a replication configuration template', r == {'k': 'v'},
          r)
    r = b.describe_replication_configuration_templates()['items'][0]
    check('template describe answers the tags', r.get('tags') == {'k': 'v'},
          r)

    # Raw: status codes and the path parameter.
    st, _, body = call(c, 'TagResource', {'tags': {'a': 'b'}},
                         path=tags_path(ss_arn))
    check('raw TagResource answers 200', st == 200, (st, body))
    st, _, body = call(c, 'ListTagsForResource', method='GET',
                         path=tags_path(ss_arn))
    check('raw ListTagsForResource', st == 200 and body == {'tags': {'a': 'b'}},
          (st, body))
    st, _, body = call(c, 'UntagResource', method='DELETE',
                         path=tags_path(ss_arn) + '?tagKeys=a&tagKeys=zz')
    check('raw UntagResource with repeated tagKeys', st == 200, (st, body))
    st, _, body = call(c, 'ListTagsForResource', method='GET',
                         path=tags_path(ss_arn))
    check('raw untag took effect', body == {'tags': {}}, body)

    # Errors.
    missing = 'arn:aws:mgn:%s:%s:source-server/s-0123456789abcdef0' % (
        region, account)
    for name, fn in [
            ('cli list, unknown source server',
             lambda: cli_list(c, missing)),
            ('boto tag, unknown source server',
             lambda: b.tag_resource(resourceArn=missing, tags={'a': 'b'})),
            ('cli untag, unknown template',
             lambda: c.aws('mgn', 'untag-resource', '--resource-arn',
                           tpl_arn[:-17] + '0123456789abcdef0',
                           '--tag-keys', 'k')),
            ('boto list, unknown job',
             lambda: b.list_tags_for_resource(
                 resourceArn='arn:aws:mgn:%s:%s:job/mgnjob-0123456789abcdef0'
                 % (region, account))),
            ('boto list, another account',
             lambda: b.list_tags_for_resource(
                 resourceArn=ss_arn.replace(account, '000000000000'))),
            ('boto list, another region',
             lambda: b.list_tags_for_resource(
                 resourceArn=ss_arn.replace(region, 'eu-west-3'))),
            ('boto list, resource type we do not keep',
             lambda: b.list_tags_for_resource(
                 resourceArn='arn:aws:mgn:%s:%s:wave/wave-0123456789abcdef0'
                 % (region, account)))]:
        code = code_of(fn)
        check(name + ' -> ResourceNotFoundException',
              code == 'ResourceNotFoundException', code)

    for name, fn in [
            ('cli list, not an ARN',
             lambda: cli_list(c, 'this-is-not-an-arn-at-all')),
            ('boto tag, not an mgn ARN',
             lambda: b.tag_resource(
                 resourceArn='arn:aws:ec2:us-east-1:123456789012:instance/i-1',
                 tags={'a': 'b'})),
            ('boto tag, reserved aws: prefix',
             lambda: b.tag_resource(resourceArn=ss_arn,
                                    tags={'aws:x': 'y'})),
            ('cli tag, value over 256 characters',
             lambda: c.aws('mgn', 'tag-resource', '--resource-arn', ss_arn,
                           '--tags', 'k=' + 'v' * 257)),
            ('boto tag, 51 tags',
             lambda: b.tag_resource(resourceArn=ss_arn, tags={
                 'k%d' % i: 'v' for i in range(51)}))]:
        code = code_of(fn)
        check(name + ' -> ValidationException',
              code == 'ValidationException', code)
    st, h, body = call(c, 'UntagResource', method='DELETE',
                         path=tags_path(ss_arn))
    check('raw untag without tagKeys -> ValidationException',
          st == 400 and h.get('x-amzn-errortype', '').startswith(
              'ValidationException'), (st, body))
    st, h, body = call(c, 'TagResource', {}, path=tags_path(ss_arn))
    check('raw tag without tags -> ValidationException',
          st == 400 and h.get('x-amzn-errortype', '').startswith(
              'ValidationException'), (st, body))

    # 50 tags at most, counted after the merge; a refused call changes
    # nothing.
    b.tag_resource(resourceArn=ss_arn, tags={'k%d' % i: 'v'
                                             for i in range(50)})
    code = code_of(b.tag_resource, resourceArn=ss_arn, tags={'k50': 'v',
                                                             'k0': 'w'})
    check('a 51st tag -> ValidationException', code == 'ValidationException',
          code)
    r = b.list_tags_for_resource(resourceArn=ss_arn)['tags']
    check('the refused call changed nothing',
          len(r) == 50 and r['k0'] == 'v', len(r))
    b.tag_resource(resourceArn=ss_arn, tags={'k0': 'w'})
    r = b.list_tags_for_resource(resourceArn=ss_arn)['tags']
    check('overwriting at 50 tags is allowed', r['k0'] == 'w', r.get('k0'))

    # Only administrators.
    for who, creds in [('agent', agent), ('installer', c.installer)]:
        code = code_of(cli_list, c, ss_arn, creds=creds)
        check(who + ' key: list-tags-for-resource denied',
              code == 'AccessDeniedException', code)
        code = code_of(unique(c.boto(creds)).tag_resource, resourceArn=ss_arn,
                       tags={'x': 'y'})
        check(who + ' key: tag_resource denied',
              code == 'AccessDeniedException', code)

    # A deleted source server's tags go with it.
    b.disconnect_from_service(sourceServerID=sid)
    b.delete_source_server(sourceServerID=sid)
    code = code_of(b.list_tags_for_resource, resourceArn=ss_arn)
    check('deleted source server: tags gone with it',
          code == 'ResourceNotFoundException', code)
    sid2, _ = c.register_agent('tagged-host')
    arn2 = b.describe_source_servers(
        filters={'sourceServerIDs': [sid2]})['items'][0]['arn']
    r = b.list_tags_for_resource(resourceArn=arn2)['tags']
    check('a server registered again starts without the old tags',
          sid2 != sid and r == {}, (sid, sid2, r))

ft.done()
