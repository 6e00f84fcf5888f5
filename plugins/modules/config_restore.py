#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: config_restore
short_description: Restore a set of configuration files from their backups, validated, all or none
description:
  - Puts configuration files (C(.env), compose files, nginx configs, TLS certificates and keys,
    JSON settings) back from their backups as one unit, the way the runbook's configuration,
    compose and certificate rollbacks do with C(cp), but safely.
  - Each item names the live file (O(items[].dest)) and either its backup (O(items[].src)) or a
    glob (O(items[].pattern)) whose newest match is restored. Newest means the latest timestamp
    in the file name (C(.env.backup.20261125_101010)), never the modification time, which a copy
    changes.
  - Items a deploy backed up together can be tied to one backup set (O(backup_set)) - the newest
    timestamp that exists for every pattern item is chosen, and returned.
  - Before anything is replaced every backup must be readable and non-empty, and the candidate
    files are validated (see O(items[].validate)). A failing validation changes nothing and says
    why, with secrets masked.
  - All or none. Each file is replaced atomically (a temporary file in the same directory, then a
    rename), keeping the owner, group and mode of the live file. The replaced file is kept as
    C(<dest><keep_suffix>), never overwritten. If an item fails, the items already replaced are
    put back from their kept copies.
  - A live file equal to its backup is left alone and nothing is kept for it.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
requirements:
  - The Python library C(cryptography) on the target host, to check certificates and keys.
  - The C(docker) command line client with the compose plugin, to validate compose files and C(.env).
  - C(nginx) on the target host, or a Docker image that has it (O(nginx_image)), to validate nginx configs.
extends_documentation_fragment:
  - taylordash.rollback.attributes
attributes:
  check_mode:
    support: full
    details:
      - Backups are chosen, read and validated as in a real run; nothing is written.
  diff_mode:
    support: full
    details:
      - For C(.env)-style files the diff lists keys only (C(KEY=<hidden>)), marking added, removed
        and changed keys; a value is never shown.
      - Certificates show fingerprint, subject and validity; private keys show nothing.
  idempotent:
    support: full
options:
  items:
    description:
      - The files to restore, in order. Replaced in this order, put back in reverse order when a
        later one fails.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description:
          - The live file. Its directory must exist. When the file does not exist it is created
            with the mode of the backup, and nothing is kept.
        type: path
        required: true
      src:
        description:
          - The backup to restore. Mutually exclusive with O(items[].pattern).
        type: path
      pattern:
        description:
          - A glob of backups, for example V(.env.backup.*). A relative pattern is looked up in the
            directory of O(items[].dest).
          - The match with the latest timestamp in its name is restored. Recognised spellings
            are C(20261125_101010), C(20261125T101010Z), C(20261125-101010), C(2026-11-25_10-10-10),
            C(20261125101010) and a date alone, C(20261125); the last one in the name counts.
          - A pattern that matches one file without a timestamp restores that file; several
            without a timestamp are refused (none is the newest).
          - The live file itself and kept copies of earlier restores are never matched.
        type: str
      backup_set:
        description:
          - With O(backup_set=true), whether this O(items[].pattern) item is tied to the set.
            V(false) restores its own newest backup (a certificate restored in the same run as a
            deploy's C(.env) and compose file, backed up at another time).
        type: bool
        default: true
      optional:
        description:
          - When no backup matches O(items[].pattern), skip this item (returned with
            RV(items[].skipped) saying why) instead of failing. A skipped item takes no part in the
            backup set. Roles use it for what a stack may lack, such as a key with no backup.
        type: bool
        default: false
      validate:
        description:
          - How the candidate is checked before anything is replaced.
          - V(auto) chooses by the name of O(items[].dest) - V(env) for C(.env), C(.env.*) and
            C(*.env); V(compose) for C(*compose*.yml)/C(.yaml); V(certificate) for C(.crt),
            C(.pem), C(.cer); V(key) for C(.key); V(nginx) for C(.conf) files with C(nginx) in
            their path; V(json) for C(.json); otherwise V(none).
          - V(env) - C(KEY=VALUE) lines; when a compose project is found (O(project_dir), or a
            compose file beside the C(.env)), also C(docker compose config) with the candidate as
            the project's C(.env). Variables the compose files use that the candidate leaves unset
            are returned in RV(items[].unset_variables) and warned about.
          - V(compose) - C(docker compose config) of the project with the candidate in place of
            the live file.
          - V(nginx) - C(nginx -t) of the candidate (see O(nginx_binary), O(nginx_image),
            O(nginx_validate_command)).
          - V(certificate) - a PEM certificate within its validity period, belonging to the
            private key restored with it (or, when no key is restored, to the live key of the same
            name with C(.key)), and issued by O(ca_file) when given.
          - V(key) - an unencrypted PEM private key, belonging to the certificate restored with it
            (or to the live certificate of the same name with C(.crt)).
          - V(json) - parses as JSON.
          - V(none) - only readable and non-empty.
        type: str
        choices: [auto, compose, env, nginx, certificate, key, json, none]
        default: auto
      diff_mode:
        description:
          - How the change shows in the diff. V(auto) - by the validation (keys only for V(env),
            details for V(certificate), nothing for V(key), text otherwise).
          - V(env) - keys only; V(text) - the content; V(none) - nothing.
        type: str
        choices: [auto, env, text, none]
        default: auto
  backup_set:
    description:
      - Tie the O(items[].pattern) items to one backup set - the newest timestamp that exists in
        the names of backups of every one of them (C(.env.backup.20261125_101010) and
        C(docker-compose.backup.20261125_101010) written by one deploy).
      - Items with O(items[].src) are restored as given.
    type: bool
    default: false
  project_dir:
    description:
      - The compose project directory, for the C(docker compose config) validation. Relative
        paths in the compose files resolve here, as they do live.
      - Default is the directory of the first compose item, else of the first C(.env) item.
    type: path
  compose_files:
    description:
      - The compose files of the project, relative to O(project_dir) or absolute. An item whose
        O(items[].dest) is one of them is validated in its place.
      - Default is the compose items, else the first of C(compose.yaml), C(compose.yml),
        C(docker-compose.yml), C(docker-compose.yaml) in O(project_dir).
    type: list
    elements: path
  docker_cli:
    description:
      - Path to the C(docker) command line client. Default is C(docker) found on E(PATH).
      - When set, it must be an executable file; checked before anything else.
    type: path
  nginx_binary:
    description:
      - The C(nginx) binary that runs C(nginx -t -c CANDIDATE). Default is C(nginx) on E(PATH).
      - Not used when O(nginx_image) or O(nginx_validate_command) is set.
    type: path
  nginx_image:
    description:
      - Validate nginx configs in this Docker image instead of with a local binary -
        C(docker run --rm --network host --entrypoint nginx -v TMPDIR:TMPDIR:ro IMAGE -t -c CANDIDATE),
        where TMPDIR is a temporary directory holding the candidate. Use the image the stack's
        nginx runs (for the reference stack V(tdref_nginx:latest)), so that the modules and paths
        of the config exist.
    type: str
  nginx_validate_command:
    description:
      - The command that validates an nginx config, as an argv list; V(%s) in an element is
        replaced with the path of the candidate, written to a temporary file. Exit status 0 means
        valid. Takes precedence over O(nginx_image) and O(nginx_binary).
    type: list
    elements: str
  ca_file:
    description:
      - A PEM file of CA certificates; a V(certificate) item must be issued by one of them.
    type: path
  keep_suffix:
    description:
      - Appended to O(items[].dest) to name the kept copy of a replaced file. Default
        C(.rollback-YYYYmmddTHHMMSSZ) (UTC, the time of the run).
      - A name that exists already gets C(-2), C(-3) and so on; a kept copy is never overwritten.
    type: str
  timeout:
    description:
      - Seconds each validation command (docker compose, nginx) may run.
    type: int
    default: 120
notes:
  - Restoring files does not restart anything. Recreate the services whose configuration changed
    (RV(services_changed)) and reload nginx afterwards; the C(taylordash.rollback.config) role does.
  - A O(items[].dest) that is a symbolic link stays one; the file it points at is replaced.
  - The C(docker compose config) validation writes the candidates to a temporary directory and
    passes them with C(--file) and C(--env-file), with the real project directory, so relative
    paths resolve as they do live and the live files are never touched.
seealso:
  - module: ansible.builtin.copy
  - module: taylordash.rollback.stack_info
"""

EXAMPLES = r"""
- name: Restore .env and the compose file from the newest backup set of one deploy
  taylordash.rollback.config_restore:
    project_dir: /srv/taylordash
    backup_set: true
    items:
      - dest: /srv/taylordash/.env
        pattern: .env.backup.*
      - dest: /srv/taylordash/docker-compose.yml
        pattern: docker-compose.backup.*
  register: config_restored

- name: Show which services must be recreated
  ansible.builtin.debug:
    msg: "Recreate {{ config_restored.services_changed }}; kept {{ config_restored.kept }}"

- name: Restore the TLS certificate and key, checked against the CA
  taylordash.rollback.config_restore:
    ca_file: /srv/taylordash/certs/ca.crt
    items:
      - dest: /srv/taylordash/certs/taylordash.crt
        src: /srv/backups/certs/taylordash.crt
      - dest: /srv/taylordash/certs/taylordash.key
        src: /srv/backups/certs/taylordash.key

- name: Restore an nginx site, validated in the nginx image of the stack
  taylordash.rollback.config_restore:
    nginx_image: tdref_nginx:latest
    items:
      - dest: /etc/nginx/sites-available/taylordash
        src: /etc/nginx/nginx.blue.conf
        validate: nginx

- name: Restore the plugins configuration
  taylordash.rollback.config_restore:
    items:
      - dest: /srv/taylordash/plugins_config.json
        src: /srv/taylordash/plugins_config.backup.json
"""

RETURN = r"""
changed:
  description: Whether a file was replaced (in check mode, would be).
  returned: always
  type: bool
items:
  description: One entry per item, in order.
  returned: success, and on a failure after the backups were chosen
  type: list
  elements: dict
  contains:
    dest:
      description: The live file.
      type: str
      sample: /srv/taylordash/.env
    src:
      description: The backup restored (chosen by the pattern, or given).
      type: str
      sample: /srv/taylordash/.env.backup.20261125_101010
    changed:
      description: Whether this file was replaced (would be, in check mode).
      type: bool
    kept:
      description: Where the replaced file was kept (would be, in check mode); V(null) when nothing was kept.
      type: str
      sample: /srv/taylordash/.env.rollback-20261126T010203Z
    validated_by:
      description: The checks the candidate passed.
      type: list
      elements: str
      sample: [env syntax, docker compose config]
    validate:
      description: The validation used (V(auto) resolved).
      type: str
      sample: env
    keys_added:
      description: Keys the backup has and the live file lacks (env items only).
      type: list
      elements: str
      sample: [TD_FEATURE_X]
    keys_removed:
      description: Keys the live file has and the backup lacks (env items only).
      type: list
      elements: str
    keys_changed:
      description: Keys whose value differs (env items only). The values are never returned.
      type: list
      elements: str
      sample: [TD_API_KEY]
    unset_variables:
      description: Variables the compose files use that the candidate C(.env) leaves unset (env items validated with compose).
      type: list
      elements: str
    sha256_before:
      description: Checksum of the live file before; V(null) when it did not exist.
      type: str
    sha256_after:
      description: Checksum of the file restored.
      type: str
    mode:
      description: Mode of the file after the restore, octal text.
      type: str
      sample: '0600'
    skipped:
      description: Why an O(items[].optional) item was skipped; V(null) when it was not.
      type: str
      sample: no backup matches /srv/taylordash/certs/taylordash.key.backup.*
kept:
  description: Every kept copy, in item order.
  returned: always
  type: list
  elements: str
  sample: [/srv/taylordash/.env.rollback-20261126T010203Z]
backup_set:
  description: The timestamp of the backup set chosen, as spelled in the names; V(null) without O(backup_set).
  returned: always
  type: str
  sample: 20261125_101010
services_changed:
  description:
    - Compose services whose resolved configuration (C(docker compose config)) differs between
      the live files and the restored ones - the services to recreate. V(null) when no compose
      validation ran.
  returned: always
  type: list
  elements: str
  sample: [backend]
restored_back:
  description: Files put back from their kept copies after a later item failed.
  returned: on failure after a file was replaced
  type: list
  elements: str
diff:
  description: Before and after per changed item (keys only for env files).
  returned: in diff mode, when something changed
  type: list
  elements: dict
msg:
  description: What was done, or what is wrong and what to do.
  returned: always
  type: str
  sample: Restored 2 files from backup set 20261125_101010; kept /srv/taylordash/.env.rollback-20261126T010203Z.
cmd:
  description: The validation command that failed (secrets masked).
  returned: when a validation command failed
  type: str
rc:
  description: Exit status of the validation command that failed.
  returned: when a validation command failed
  type: int
stderr:
  description: Standard error of the validation command that failed (secrets masked).
  returned: when a validation command failed
  type: str
timing:
  description: When the module started and ended (ISO 8601 UTC) and how many seconds it took.
  returned: always
  type: dict
  sample: {start: "2026-11-25T14:18:01.120000+00:00", end: "2026-11-25T14:18:01.650000+00:00", seconds: 0.53}
"""

import os
import re
import shlex
import shutil
import tempfile

from ansible.module_utils.common.process import get_bin_path
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.taylordash.rollback.plugins.module_utils import _config_restore as cr
from ansible_collections.taylordash.rollback.plugins.module_utils._compose import compose_args, parse_config
from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import (
    DockerCLI,
    DockerCLIError,
    docker_cli_problem,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._files import sha256_bytes
from ansible_collections.taylordash.rollback.plugins.module_utils._process import run_streaming
from ansible_collections.taylordash.rollback.plugins.module_utils._safe_module import build_module

# compose's warning, logged with the quotes escaped: msg="The \"TD_X\" variable is not set. ..."
UNSET_RE = re.compile(r'The \\?"([A-Za-z_][A-Za-z0-9_]*)\\?" variable is not set')


def argument_spec():
    return dict(
        items=dict(type='list', elements='dict', required=True, options=dict(
            dest=dict(type='path', required=True),
            src=dict(type='path'),
            pattern=dict(type='str'),
            backup_set=dict(type='bool', default=True),
            optional=dict(type='bool', default=False),
            validate=dict(type='str', default='auto', choices=list(cr.VALIDATORS)),
            diff_mode=dict(type='str', default='auto', choices=list(cr.DIFF_MODES)),
        )),
        backup_set=dict(type='bool', default=False),
        project_dir=dict(type='path'),
        compose_files=dict(type='list', elements='path'),
        docker_cli=dict(type='path'),
        nginx_binary=dict(type='path'),
        nginx_image=dict(type='str'),
        nginx_validate_command=dict(type='list', elements='str'),
        ca_file=dict(type='path'),
        keep_suffix=dict(type='str'),
        timeout=dict(type='int', default=120),
    )


def check_params(params):
    """Problems with the options, before any file is read. Pure apart from stat calls."""
    problems = []
    items = params['items'] or []
    if not items:
        problems.append('items is empty: give at least one file to restore')
    seen = set()
    for index, item in enumerate(items):
        dest = item['dest']
        label = 'items[%d] (%s)' % (index, dest)
        if '\0' in dest or (item.get('src') and '\0' in item['src']) or (item.get('pattern') and '\0' in item['pattern']):
            problems.append('%s: a path contains a NUL byte' % label)
            continue
        if not os.path.isabs(dest):
            problems.append('%s: dest must be an absolute path' % label)
            continue
        if bool(item.get('src')) == bool(item.get('pattern')):
            problems.append('%s: give exactly one of src (the backup) or pattern (a glob of backups)' % label)
        real = os.path.realpath(dest)
        if real in seen:
            problems.append('%s: the same file is named twice' % label)
        seen.add(real)
        if not os.path.isdir(os.path.dirname(dest)):
            problems.append('%s: the destination directory %s does not exist; restore into an existing '
                            'directory (check the path)' % (label, os.path.dirname(dest)))
        elif os.path.isdir(dest):
            problems.append('%s: dest is a directory; name the file' % label)
    suffix = params.get('keep_suffix')
    if suffix is not None and (not suffix or '/' in suffix or '\0' in suffix or suffix in ('.', '..')):
        problems.append("keep_suffix '%s' must be a non-empty file name suffix without '/' (the kept copy "
                        "is how a failed restore is put back)" % suffix)
    timeout = params.get('timeout')
    if timeout is None or timeout < 1 or timeout > 86400:
        problems.append('timeout %s must be between 1 and 86400 seconds' % timeout)
    problem = docker_cli_problem(params.get('docker_cli'))
    if problem:
        problems.append(problem)
    project_dir = params.get('project_dir')
    if project_dir and ('\0' in project_dir or not os.path.isdir(project_dir)):
        problems.append('project_dir %s is not a directory; give the compose project directory' % project_dir)
    ca_file = params.get('ca_file')
    if ca_file and ('\0' in ca_file or not os.path.isfile(ca_file)):
        problems.append('ca_file %s is not a file; give a PEM file of CA certificates' % ca_file)
    command = params.get('nginx_validate_command')
    if command is not None and (not command or not any('%s' in part for part in command)):
        problems.append("nginx_validate_command must be an argv list with '%s' where the candidate's path goes, "
                        "for example ['nginx', '-t', '-c', '%s']")
    return problems


class Restorer(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = dict(changed=False, items=[], kept=[], backup_set=None, services_changed=None)
        self.secrets = set()
        self.tmpdir = None
        self._cli = None
        self.restored_back = []
        self.skipped = []

    # ----------------------------------------------------------------------- helpers
    def fail(self, msg, **extra):
        self.result.update(extra)
        for key in ('cmd', 'stderr', 'stdout'):
            if key in self.result:
                self.result[key] = cr.mask(self.result[key], self.secrets)
        self.cleanup()
        self.module.fail_json(msg=cr.mask(msg, self.secrets), **self.result)

    def cleanup(self):
        if self.tmpdir and os.path.isdir(self.tmpdir):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.tmpdir = None

    def temp(self, name, data):
        if self.tmpdir is None:
            self.tmpdir = tempfile.mkdtemp(prefix='config_restore.')
            os.chmod(self.tmpdir, 0o700)
        directory = tempfile.mkdtemp(dir=self.tmpdir)
        path = os.path.join(directory, name)
        with open(path, 'wb') as handle:
            handle.write(data)
        os.chmod(path, 0o600)
        return path

    @property
    def cli(self):
        if self._cli is None:
            self._cli = DockerCLI(self.module, docker_cli=self.params.get('docker_cli'),
                                  timeout=float(self.params['timeout']))
        return self._cli

    # ----------------------------------------------------------------------- choose backups
    def choose(self):
        items = []
        sets = []
        for raw in self.params['items']:
            item = dict(dest=raw['dest'], src=raw.get('src'), pattern=raw.get('pattern'),
                        validate=raw['validate'], diff_mode=raw['diff_mode'])
            if item['validate'] == 'auto':
                item['validate'] = cr.kind_of(item['dest'])
            if item['pattern']:
                item['rows'] = cr.candidates(item['dest'], item['pattern'])
                if not item['rows'] and raw.get('optional'):
                    self.skipped.append(dict(dest=item['dest'], src=None, changed=False, kept=None,
                                             validate=item['validate'], validated_by=[],
                                             skipped='no backup matches %s' % cr.resolve_pattern(item['dest'], item['pattern'])))
                    continue
                if not item['rows']:
                    raise cr.RestoreError('no backup matches the pattern %s for %s; check the pattern (relative '
                                          'patterns are looked up in the directory of dest) or give src'
                                          % (cr.resolve_pattern(item['dest'], item['pattern']), item['dest']))
                if self.params['backup_set'] and raw.get('backup_set', True):
                    sets.append(item)
            items.append(item)
        if sets:
            key = cr.common_set([(item['dest'], item['rows']) for item in sets])
            for item in sets:
                row = [r for r in item['rows'] if r[0] == key][0]
                item['src'] = row[2]
                if self.result['backup_set'] is None:
                    self.result['backup_set'] = row[1]
        for item in items:
            if item['pattern'] and not item['src']:
                item['src'] = cr.pick_newest(item['dest'], item['pattern'], item['rows'])[2]
            item.pop('rows', None)
        return items

    def read(self, items):
        for item in items:
            item['data'] = cr.read_limited(item['src'])
            if not item['data']:
                raise cr.RestoreError('the backup %s for %s is empty; choose another backup' % (item['src'], item['dest']))
            # A dest that is a symlink keeps being one: the file it points at is replaced.
            item['target'] = os.path.realpath(item['dest']) if os.path.islink(item['dest']) else item['dest']
            item['exists'] = os.path.isfile(item['dest'])
            item['live'] = cr.read_limited(item['dest']) if item['exists'] else None
            if item['exists']:
                st = os.stat(item['dest'])
            else:
                st = os.stat(item['src'])
            item['mode'] = st.st_mode & 0o7777
            item['uid'], item['gid'] = (st.st_uid, st.st_gid) if item['exists'] else (None, None)
            item['changed'] = item['live'] != item['data']
            if item['validate'] == 'env':
                for data in (item['data'], item['live']):
                    if data is not None:
                        self.secrets |= cr.secret_values(cr.parse_env(to_text(data, errors='surrogate_or_replace'))[0])

    # ----------------------------------------------------------------------- validation
    def validate(self, items):
        by_kind = {}
        for item in items:
            item['validated_by'] = ['readable, not empty']
            by_kind.setdefault(item['validate'], []).append(item)
        for item in by_kind.get('env', []):
            values, problems = cr.parse_env(to_text(item['data'], errors='surrogate_or_replace'))
            if problems:
                raise cr.RestoreError('the backup %s is not a valid .env file: %s; nothing was changed'
                                      % (item['src'], '; '.join(problems[:5])))
            item['env'] = values
            item['validated_by'].append('env syntax')
        for item in by_kind.get('json', []):
            problem = cr.check_json(item['data'])
            if problem:
                raise cr.RestoreError('the backup %s is %s; nothing was changed' % (item['src'], problem))
            item['validated_by'].append('json')
        self.validate_certificates(by_kind.get('certificate', []), by_kind.get('key', []))
        for item in by_kind.get('nginx', []):
            self.validate_nginx(item)
        if by_kind.get('compose') or by_kind.get('env'):
            self.validate_compose(items, by_kind.get('compose', []), by_kind.get('env', []))

    def validate_certificates(self, certs, keys):
        loaded_keys = {}
        for item in keys:
            try:
                loaded_keys[item['dest']] = cr.load_key(item['data'])
            except cr.RestoreError as exc:
                raise cr.RestoreError('the backup %s for %s: %s; nothing was changed' % (item['src'], item['dest'], exc.msg))
            item['validated_by'].append('private key')
        paired = set()
        for item in certs:
            try:
                cert = cr.load_certificate(item['data'])
            except cr.RestoreError as exc:
                raise cr.RestoreError('the backup %s for %s: %s; nothing was changed' % (item['src'], item['dest'], exc.msg))
            problem = cr.check_certificate(cert)
            if problem:
                raise cr.RestoreError('the backup %s for %s: %s; restore a certificate that is valid now, nothing '
                                      'was changed' % (item['src'], item['dest'], problem))
            item['validated_by'].append('certificate validity')
            key, key_name = self.key_for(item, keys, loaded_keys)
            if key is not None:
                problem = cr.check_pair(cert, key)
                if problem:
                    raise cr.RestoreError('the backup %s for %s and the key %s: %s; nothing was changed'
                                          % (item['src'], item['dest'], key_name, problem))
                item['validated_by'].append('matches key %s' % key_name)
                paired.add(key_name)
            if self.params.get('ca_file'):
                problem = cr.check_ca(cert, cr.read_limited(self.params['ca_file']))
                if problem:
                    raise cr.RestoreError('the backup %s for %s: %s %s; nothing was changed'
                                          % (item['src'], item['dest'], problem, self.params['ca_file']))
                item['validated_by'].append('issued by ca_file')
        for item in keys:
            if item['dest'] in paired:
                continue
            live_cert = os.path.splitext(item['dest'])[0] + '.crt'
            if not [c for c in certs if c['dest'] == live_cert] and os.path.isfile(live_cert):
                try:
                    cert = cr.load_certificate(cr.read_limited(live_cert))
                except cr.RestoreError:
                    continue
                problem = cr.check_pair(cert, loaded_keys[item['dest']])
                if problem:
                    raise cr.RestoreError('the backup %s for %s and the live certificate %s: %s; restore the '
                                          'certificate with it; nothing was changed'
                                          % (item['src'], item['dest'], live_cert, problem))
                item['validated_by'].append('matches certificate %s' % live_cert)

    def key_for(self, cert_item, keys, loaded_keys):
        """The key a restored certificate must match: the key restored with it (the one of the
        same stem, else the only one), or the live key of the same stem."""
        stem = os.path.splitext(cert_item['dest'])[0]
        for item in keys:
            if os.path.splitext(item['dest'])[0] == stem:
                return loaded_keys[item['dest']], item['dest']
        if len(keys) == 1:
            return loaded_keys[keys[0]['dest']], keys[0]['dest']
        live = stem + '.key'
        if os.path.isfile(live):
            try:
                return cr.load_key(cr.read_limited(live)), live
            except cr.RestoreError:
                return None, None
        return None, None

    def validate_nginx(self, item):
        name = os.path.basename(item['dest']) or 'nginx.conf'
        path = self.temp(name, item['data'])
        command = self.params.get('nginx_validate_command')
        if command:
            argv = [part.replace('%s', path) for part in command]
            how = 'nginx_validate_command'
        elif self.params.get('nginx_image'):
            directory = os.path.dirname(path)
            os.chmod(directory, 0o755)
            os.chmod(path, 0o644)
            argv = [self.cli.binary, 'run', '--rm', '--network', 'host', '--entrypoint', 'nginx',
                    '-v', '%s:%s:ro' % (directory, directory), self.params['nginx_image'], '-t', '-c', path]
            how = 'nginx -t in %s' % self.params['nginx_image']
        else:
            binary = self.params.get('nginx_binary')
            if not binary:
                try:
                    binary = get_bin_path('nginx', opt_dirs=['/usr/sbin', '/usr/local/sbin'])
                except ValueError:
                    raise cr.RestoreError('cannot validate %s: no nginx on PATH; install nginx, or set nginx_image '
                                          '(the stack\'s nginx image) or nginx_validate_command' % item['dest'])
            argv = [binary, '-t', '-c', path]
            how = 'nginx -t'
        self.run_check(argv, 'the backup %s for %s fails nginx -t' % (item['src'], item['dest']))
        item['validated_by'].append(how)

    def run_check(self, argv, what):
        try:
            res = run_streaming(argv, env_update=DockerCLI.LOCALE_ENV, timeout=float(self.params['timeout']))
        except OSError as exc:
            raise cr.RestoreError('%s: cannot run %s (%s)' % (what, argv[0], exc.strerror or exc))
        if res.timed_out or res.rc != 0:
            cmd = ' '.join(shlex.quote(a) for a in argv)
            stderr = cr.mask(res.stderr_text, self.secrets)
            self.result.update(cmd=cmd, rc=res.rc, stderr=stderr)
            reason = ('did not finish within %s s' % self.params['timeout']) if res.timed_out else (
                stderr.strip() or res.stdout_text.strip() or 'exit status %s' % res.rc)
            raise cr.RestoreError('%s: %s; nothing was changed' % (what, reason))
        return res

    def compose_project(self, items, compose_items, env_items):
        project_dir = self.params.get('project_dir')
        if not project_dir:
            first = (compose_items or env_items)[0]
            project_dir = os.path.dirname(first['dest'])
        files = self.params.get('compose_files')
        if files:
            files = [f if os.path.isabs(f) else os.path.join(project_dir, f) for f in files]
        elif compose_items:
            files = [item['dest'] for item in compose_items]
        else:
            files = [os.path.join(project_dir, n) for n in cr.COMPOSE_NAMES if os.path.isfile(os.path.join(project_dir, n))][:1]
        return project_dir, files

    def validate_compose(self, items, compose_items, env_items):
        project_dir, files = self.compose_project(items, compose_items, env_items)
        project_env = os.path.join(project_dir, '.env')
        env_item = [i for i in env_items if os.path.realpath(i['dest']) == os.path.realpath(project_env)]
        if not files:
            if compose_items:
                raise cr.RestoreError('no compose file to validate against in %s; set project_dir' % project_dir)
            return  # a .env with no compose project beside it: syntax only
        if not env_item and not compose_items:
            return
        by_dest = dict((os.path.realpath(i['dest']), i) for i in items)
        candidate_files = []
        for name in files:
            item = by_dest.get(os.path.realpath(name))
            if item is not None:
                candidate_files.append(self.temp(os.path.basename(name), item['data']))
            else:
                candidate_files.append(name)
        env_args = []
        if env_item:
            env_args = ['--env-file', self.temp('.env', env_item[0]['data'])]
        after_args = compose_args(project_dir, files=candidate_files) + env_args + ['config', '--format', 'json']
        try:
            rc, stdout, stderr = self.cli.run(after_args, check_rc=False)
        except DockerCLIError as exc:
            self.result.update(cmd=cr.mask(exc.cmd, self.secrets), rc=exc.rc, stderr=cr.mask(exc.stderr, self.secrets))
            raise cr.RestoreError('cannot run docker compose config: %s' % cr.mask(exc.msg, self.secrets))
        names = ', '.join(i['src'] for i in compose_items + env_item)
        if rc != 0:
            self.result.update(cmd=cr.mask(self.cli.cmd_string(after_args), self.secrets), rc=rc,
                               stderr=cr.mask(stderr, self.secrets))
            raise cr.RestoreError('the compose project %s with %s in place fails docker compose config: %s; '
                                  'nothing was changed' % (project_dir, names,
                                                           cr.mask(stderr.strip() or stdout.strip(), self.secrets)))
        unset = sorted(set(UNSET_RE.findall(stderr)))
        for item in compose_items + env_item:
            item['validated_by'].append('docker compose config')
        if env_item:
            env_item[0]['unset_variables'] = unset
        if unset:
            self.module.warn('With the restored files, docker compose leaves these variables unset (blank): %s'
                             % ', '.join(unset))
        try:
            after = parse_config(stdout)['services']
        except ValueError:
            return
        before = None
        if all(os.path.isfile(f) for f in files):
            before_args = compose_args(project_dir, files=files) + ['config', '--format', 'json']
            try:
                rc, stdout, _stderr = self.cli.run(before_args, check_rc=False)
                before = parse_config(stdout)['services'] if rc == 0 else None
            except (DockerCLIError, ValueError):
                before = None
        before = before or {}
        self.result['services_changed'] = sorted(
            name for name in set(before) | set(after) if before.get(name) != after.get(name))

    # ----------------------------------------------------------------------- diff
    def diff_for(self, item):
        kind = cr.diff_kind(item['validate'], item['diff_mode'])
        header = dict(before_header='%s (live)' % item['dest'], after_header='%s (from %s)' % (item['dest'], item['src']))
        if kind == 'env':
            before = cr.parse_env(to_text(item['live'] or b'', errors='surrogate_or_replace'))[0]
            after = cr.parse_env(to_text(item['data'], errors='surrogate_or_replace'))[0]
            changed = cr.env_key_changes(before, after)[2]
            header.update(before=cr.env_diff_text(before), after=cr.env_diff_text(after, changed, mark=True))
        elif kind == 'cert':
            header.update(before=cr.cert_summary(item['live']) if item['live'] else '',
                          after=cr.cert_summary(item['data']))
        elif kind == 'text':
            try:
                before = (item['live'] or b'').decode('utf-8')
                after = item['data'].decode('utf-8')
            except UnicodeDecodeError:
                before, after = 'sha256 %s\n' % sha256_bytes(item['live'] or b''), 'sha256 %s\n' % sha256_bytes(item['data'])
            header.update(before=cr.mask(before, self.secrets), after=cr.mask(after, self.secrets))
        else:
            header.update(before='sha256 %s\n' % (sha256_bytes(item['live']) if item['live'] else '-'),
                          after='sha256 %s\n' % sha256_bytes(item['data']))
        return header

    # ----------------------------------------------------------------------- act
    def plan_kept(self, items):
        suffix = self.params.get('keep_suffix') or '.rollback-' + cr.utc_stamp()
        taken = []
        for item in items:
            item['kept'] = None
            if item['changed'] and item['exists']:
                item['kept'] = cr.unique_kept(item['dest'], suffix, taken=taken)
                taken.append(item['kept'])

    def replace(self, items):
        done = []
        for item in items:
            if not item['changed']:
                continue
            kept_written = False
            try:
                if item['kept']:
                    cr.write_new(item['kept'], item['live'], item['mode'], item['uid'], item['gid'])
                    kept_written = True
                    self.result['kept'].append(item['kept'])
                cr.write_atomic(item['target'], item['data'], item['mode'], item['uid'], item['gid'])
                done.append(item)
                with open(item['target'], 'rb') as handle:
                    if handle.read() != item['data']:
                        raise OSError('the file read back differs from the backup')
            except (IOError, OSError) as exc:
                if kept_written and item not in done:
                    # The live file was not replaced: its kept copy is a duplicate.
                    try:
                        os.unlink(item['kept'])
                        self.result['kept'].remove(item['kept'])
                    except (OSError, ValueError):
                        pass
                self.put_back(done)
                self.result['restored_back'] = self.restored_back
                self.result['changed'] = False if not self.kept_left() else True
                self.fail('Replacing %s with %s failed (%s); %s'
                          % (item['dest'], item['src'], exc.strerror or exc,
                             ('put back %s from their kept copies, so the files are as before'
                              % ', '.join(self.restored_back)) if self.restored_back else 'no other file had been replaced'))

    def kept_left(self):
        return [path for path in self.result['kept'] if os.path.exists(path)]

    def put_back(self, done):
        for item in reversed(done):
            try:
                if item['exists']:
                    cr.write_atomic(item['target'], item['live'], item['mode'], item['uid'], item['gid'])
                else:
                    os.unlink(item['target'])
                self.restored_back.append(item['dest'])
            except OSError as exc:
                self.module.warn('Could not put %s back (%s); its previous content is in %s'
                                 % (item['dest'], exc, item['kept']))
                continue
        # A kept copy of a file put back duplicates the live file; the ones of this run go.
        for item in done:
            if item['kept'] and item['dest'] in self.restored_back:
                try:
                    os.unlink(item['kept'])
                    self.result['kept'].remove(item['kept'])
                except (OSError, ValueError):
                    pass

    # ----------------------------------------------------------------------- run
    def run(self):
        try:
            items = self.choose()
            self.read(items)
            self.validate(items)
        except cr.RestoreError as exc:
            self.fail(exc.msg[0].upper() + exc.msg[1:] + ('' if 'nothing was changed' in exc.msg else '; nothing was changed'))
        self.plan_kept(items)
        changed = [item for item in items if item['changed']]
        self.result['changed'] = bool(changed)
        by_dest = dict((item['dest'], self.item_result(item)) for item in items)
        by_dest.update((entry['dest'], entry) for entry in self.skipped)
        self.result['items'] = [by_dest[raw['dest']] for raw in self.params['items'] if raw['dest'] in by_dest]
        if self.module._diff and changed:
            self.result['diff'] = [self.diff_for(item) for item in changed]
        if not changed:
            skipped = '; '.join('%s skipped: %s' % (entry['dest'], entry['skipped']) for entry in self.skipped)
            self.result['msg'] = ('All %d file(s) already equal their backups; nothing to do.' % len(items)
                                  if items else 'Nothing to restore.') + ((' ' + skipped + '.') if skipped else '')
            return self.finish()
        what = ', '.join('%s from %s' % (item['dest'], item['src']) for item in changed)
        kept = [item['kept'] for item in changed if item['kept']]
        tail = '%s%s' % ((' (backup set %s)' % self.result['backup_set']) if self.result['backup_set'] else '',
                         ('; keep %s' % ', '.join(kept)) if kept else '')
        if self.module.check_mode:
            self.result['kept'] = kept
            self.result['msg'] = 'Would restore %s%s.' % (what, tail)
            return self.finish()
        self.replace(items)
        for entry, item in zip(self.result['items'], items):
            if item['changed']:
                entry['mode'] = '%04o' % (os.stat(item['dest']).st_mode & 0o7777)
        self.result['msg'] = 'Restored %s%s.' % (what, tail.replace('; keep ', '; kept '))
        return self.finish()

    def finish(self):
        self.cleanup()
        self.result['msg'] = cr.mask(self.result['msg'], self.secrets)
        return self.result

    def item_result(self, item):
        entry = dict(dest=item['dest'], src=item['src'], changed=item['changed'], kept=item['kept'],
                     validate=item['validate'], validated_by=item['validated_by'],
                     sha256_before=sha256_bytes(item['live']) if item['live'] is not None else None,
                     sha256_after=sha256_bytes(item['data']), mode='%04o' % item['mode'], skipped=None)
        if item['validate'] == 'env':
            before = cr.parse_env(to_text(item['live'] or b'', errors='surrogate_or_replace'))[0]
            added, removed, changed = cr.env_key_changes(before, item.get('env') or {})
            entry.update(keys_added=added, keys_removed=removed, keys_changed=changed,
                         unset_variables=item.get('unset_variables'))
        return entry


def main():
    module = build_module(argument_spec(), supports_check_mode=True)
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg='; '.join(problems) + '. Nothing was changed.', changed=False, items=[], kept=[])
    restorer = Restorer(module)
    try:
        result = restorer.run()
    finally:
        restorer.cleanup()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
