# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight and snapshot of a compose stack, for two modules: ``stack_info`` (the snapshot on
its own) and ``rollback_lock`` (the lock, then the snapshot under it, in one module run: one module
start less before a rollback can act).

``SNAPSHOT_ARGUMENT_SPEC`` is the options of both; ``StackSnapshot(module, params, on_fail).run()``
returns the result, and every failure goes through ``on_fail(result)`` (default: the module's
``fail_json``), so that the lock module can release the lock it took before it fails.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.taylordash.rollback.plugins.module_utils import _certificate
from ansible_collections.taylordash.rollback.plugins.module_utils._alembic import current_revision
from ansible_collections.taylordash.rollback.plugins.module_utils._compose import compose_args
from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import (
    docker_cli_problem,
    DockerCLI, DockerCLIError, is_valid_repository, is_valid_tag, looks_like_image_id)
from ansible_collections.taylordash.rollback.plugins.module_utils._file_snapshot import (
    file_snapshot, outside_project, project_path)
from ansible_collections.taylordash.rollback.plugins.module_utils._side_by_side import first_failure, side_by_side
from ansible_collections.taylordash.rollback.plugins.module_utils._stack_state import (
    available_tags, compose_config, containers_by_service, engine_versions, resolve_image)

# Output of the migration command kept in the result: the end, where the revision is.
MIGRATION_OUTPUT_TAIL = 2000

# The options of a snapshot (stack_info's, and rollback_lock's snapshot); documented in both modules.
SNAPSHOT_ARGUMENT_SPEC = dict(
    project_dir=dict(type='path', required=True),
    project_name=dict(type='str'),
    compose_files=dict(type='list', elements='str', default=['docker-compose.yml']),
    services=dict(type='list', elements='dict', required=True, options=dict(
        name=dict(type='str', required=True),
        image=dict(type='str', required=True),
    )),
    current_tag=dict(type='str', default='latest'),
    target_tag=dict(type='str'),
    target_services=dict(type='list', elements='str'),
    files=dict(type='list', elements='str'),
    certificate=dict(type='path'),
    migration_service=dict(type='str'),
    migration_command=dict(type='list', elements='str', default=['alembic', 'current']),
    docker_cli=dict(type='path'),
)


def snapshot_files(params):
    """The files whose checksums the snapshot records: O(files), or .env and the compose files."""
    files = params['files']
    if files is None:
        files = ['.env'] + list(params['compose_files'])
    return files


def validate_params(params):
    """Problems with the options, before docker is asked anything. Pure apart from resolving
    the paths of O(files) (symlinks) inside the project directory."""
    problems = []
    tag = params['current_tag']
    if not is_valid_tag(tag):
        problems.append("current_tag '%s' is not a valid Docker tag: it must match "
                        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}" % tag)
    tag = params['target_tag']
    if tag is not None and not (is_valid_tag(tag) or looks_like_image_id(tag)):
        problems.append("target_tag '%s' is neither a valid Docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) "
                        "nor an image ID (sha256:<hex> or at least 12 hex digits)" % tag)
    for svc in params['services'] or []:
        if not is_valid_repository(svc['image']):
            problems.append("services: image '%s' of service '%s' is not a valid Docker repository name "
                            "(lower-case, no tag)" % (svc['image'], svc['name']))
    problem = docker_cli_problem(params['docker_cli'])
    if problem:
        problems.append(problem)
    # No file or argument can hold a NUL byte; the OS calls would raise ValueError on it.
    values = [params['project_dir'], params['project_name'], params['migration_service'], params['certificate']]
    values += list(params['compose_files']) + list(params['migration_command'])
    values += list(params['target_services'] or []) + list(params['files'] or [])
    if any(value is not None and '\0' in value for value in values):
        problems.append('project_dir, project_name, compose_files, files, certificate, target_services, '
                        'migration_service and migration_command must not contain a NUL byte')
        return problems
    for name in snapshot_files(params):
        why = outside_project(params['project_dir'], name, allowed=params['compose_files'])
        if why:
            problems.append("files: '%s' is not read: %s; list files of the project directory only"
                            % (name, why))
    return problems


def params_problems(params):
    """Every problem of the options as one message, or None: empty services, then validate_params."""
    if not params['services']:
        return 'services is empty: name at least one service and its image repository.'
    problems = validate_params(params)
    return '; '.join(problems) + '. Nothing was read.' if problems else None


class StackSnapshot(object):

    def __init__(self, module, params=None, on_fail=None):
        self.module = module
        self.params = module.params if params is None else params
        self.on_fail = on_fail or (lambda result: module.fail_json(**result))
        self.docker = DockerCLI(module, self.params['docker_cli'])
        self.project_dir = self.params['project_dir']
        self.compose = compose_args(self.project_dir, self.params['project_name'],
                                    self.params['compose_files'])

    def fail_json(self, **result):
        self.on_fail(result)
        raise AssertionError('on_fail returned: it must end the module run')  # never reached

    def fail(self, msg, error=None, **result):
        if error is not None:
            for key, value in error.as_dict().items():
                result.setdefault(key, value)
        self.fail_json(msg=msg, **result)

    def check_engine(self, answer):
        value, exc = answer
        rc, err, versions = value if exc is None else (None, str(exc), {'server_version': None})
        if rc != 0 or not versions['server_version']:
            self.fail_json(
                msg='The Docker engine does not answer (%s). Start dockerd, or check DOCKER_HOST '
                    'and that this user may use the docker socket.' % (err.strip() or 'no server version'),
                rc=rc, stderr=err)
        return versions

    def files_problem(self):
        if not os.path.isdir(self.project_dir):
            return ('Project directory %s does not exist; set the stack project directory (stack_project_dir) '
                    'to where the compose files are.' % self.project_dir)
        for name in self.params['compose_files']:
            path = project_path(self.project_dir, name)
            if not os.path.isfile(path):
                return 'Compose file %s does not exist.' % path
        return None

    def compose_config(self, answer):
        try:
            return first_failure({'config': answer}, ['config'])[0]
        except DockerCLIError as exc:
            self.fail('docker compose rejects the project in %s: %s' % (
                self.project_dir, (exc.stderr or exc.stdout or str(exc)).strip()), exc)
        except ValueError as exc:
            self.fail('Cannot read docker compose config output: %s' % exc)

    def containers(self, answer):
        try:
            return first_failure({'ps': answer}, ['ps'])[0]
        except (DockerCLIError, ValueError) as exc:
            self.fail('Cannot list the containers of the compose project: %s' % exc,
                      exc if isinstance(exc, DockerCLIError) else None)

    def queries(self, files_ok):
        """Every read the snapshot needs, asked side by side (module_utils._side_by_side); judged
        afterwards in the order a one-by-one run would fail."""
        calls = {'engine': (engine_versions, self.docker)}
        if files_ok:
            calls['config'] = (compose_config, self.docker, self.compose)
            calls['ps'] = (containers_by_service, self.docker, self.compose)
        for svc in self.params['services']:
            calls[('current', svc['name'])] = (self.docker.image_id, '%s:%s' % (svc['image'], self.params['current_tag']))
            if self.params['target_tag']:
                calls[('target', svc['name'])] = (resolve_image, self.docker, svc['image'], self.params['target_tag'])
        return side_by_side(calls)

    def file_info(self, name):
        try:
            return file_snapshot(self.project_dir, name)
        except (IOError, OSError) as exc:
            return {'path': project_path(self.project_dir, name), 'exists': True,
                    'error': 'cannot read it: %s' % exc}

    def certificate(self, path):
        if not _certificate.HAS_CRYPTOGRAPHY:
            self.fail_json(msg=missing_required_lib('cryptography', reason='to read certificate'),
                           exception=_certificate.CRYPTOGRAPHY_IMPORT_ERROR)
        return _certificate.certificate_file(path)

    def migration(self, service, containers):
        if not any(c['running'] for c in containers.get(service, [])):
            return {'service': service, 'revision': None, 'output': 'no running container'}
        rc, out, err = self.docker.run(
            self.compose + ['exec', '-T', service] + self.params['migration_command'], check_rc=False)
        return {'service': service, 'revision': current_revision(out) if rc == 0 else None,
                'output': (out.strip() or err.strip())[-MIGRATION_OUTPUT_TAIL:], 'rc': rc}

    def run(self):
        result = {'changed': False}
        problem = self.files_problem()
        answers = self.queries(files_ok=problem is None)
        result['docker'] = self.check_engine(answers['engine'])
        if problem:
            self.fail_json(msg=problem)
        config = self.compose_config(answers['config'])
        defined = sorted(config['services'])
        result['compose'] = {'project': config.get('name'), 'services': defined}

        wanted = [s['name'] for s in self.params['services']]
        unknown = [name for name in wanted if name not in defined]
        targets = self.params['target_services'] or wanted
        unknown += [name for name in targets if name not in wanted and name not in unknown]
        if unknown:
            self.fail_json(msg='Service(s) %s not defined in the compose project %s (defined: %s).'
                               % (', '.join(unknown), config.get('name'), ', '.join(defined)))

        containers = self.containers(answers['ps'])
        services, missing = [], []
        target_tag = self.params['target_tag']
        for svc in self.params['services']:
            current_ref = '%s:%s' % (svc['image'], self.params['current_tag'])
            entry = {'name': svc['name'], 'image': svc['image'], 'current_ref': current_ref,
                     'current_image_id': first_failure(answers, [('current', svc['name'])])[0],
                     'target_ref': None, 'target_image_id': None,
                     'containers': containers.get(svc['name'], []),
                     'in_target': svc['name'] in targets}
            entry['running_image_ids'] = sorted(set(c['image_id'] for c in entry['containers'] if c['running']))
            if target_tag:
                entry['target_ref'], entry['target_image_id'] = first_failure(answers, [('target', svc['name'])])[0]
                if entry['in_target'] and not entry['target_image_id']:
                    missing.append('%s (available tags of %s: %s)' % (
                        entry['target_ref'], svc['image'],
                        ', '.join(available_tags(self.docker, svc['image'])) or 'none'))
            entry['runs_target'] = bool(entry['target_image_id']) and bool(entry['running_image_ids']) and \
                entry['running_image_ids'] == [entry['target_image_id']]
            services.append(entry)
        if missing:
            self.fail_json(msg='Rollback target image(s) not found locally: %s. Nothing was changed; '
                               'choose another tag or image ID.' % '; '.join(missing),
                           services=services)
        result['services'] = services

        result['files'] = dict((name, self.file_info(name)) for name in snapshot_files(self.params))
        result['certificate'] = self.certificate(self.params['certificate']) if self.params['certificate'] else None
        result['migration'] = self.migration(self.params['migration_service'], containers) \
            if self.params['migration_service'] else None
        return result
