#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: stack_info
short_description: Preflight and snapshot of a docker compose stack before a rollback
description:
  - Checks in one pass that everything a rollback needs is in place, and records the state it
    will change, so later steps and the incident report can compare against it.
  - Preflight - the Docker engine answers; the project directory and compose files exist;
    C(docker compose config) accepts the project; every service of O(services) is defined in it;
    with O(target_tag), every image the rollback would go back to exists locally.
  - Snapshot - for each service, the image IDs its current and target tags point at and the image
    ID each of its containers really runs; checksums of O(files); the fingerprint and expiry of
    O(certificate); the database migration revision reported by O(migration_service).
  - Read-only; fails before anything is touched when a precondition does not hold.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
requirements:
  - The C(docker) command line client with the compose v2 plugin on the target host.
  - The Python library C(cryptography) on the target host when O(certificate) is set.
extends_documentation_fragment:
  - taylordash.rollback.attributes
  - taylordash.rollback.compose_project
attributes:
  check_mode:
    support: full
    details:
      - It only reads, so it runs fully in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  services:
    description: The application services and the image repository whose O(current_tag) each runs.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Compose service name.
        type: str
        required: true
      image:
        description:
          - Image repository without tag, for example V(taylordash_backend); checked against
            Docker's repository grammar before anything is read.
        type: str
        required: true
  current_tag:
    description: The tag the services run; a Docker tag (C([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})).
    type: str
    default: latest
  target_tag:
    description:
      - The tag (or image ID) a rollback would go back to. When set, its image must exist locally
        for every service of O(target_services).
      - A Docker tag, or an image ID (C(sha256:<hex>) or at least 12 hex digits).
    type: str
  target_services:
    description: Services the rollback will touch. Default is every service of O(services).
    type: list
    elements: str
  files:
    description:
      - Files whose SHA-256 checksums are recorded, relative to O(project_dir) unless absolute.
        Missing files are reported, not an error.
      - Only files of the project directory are read. A path that resolves outside O(project_dir),
        symlinks followed (V(../x), an absolute path elsewhere, a link pointing out), fails the
        module before anything is read; the compose files of O(compose_files) are allowed wherever
        they are.
      - Default is C(.env) and the compose files.
    type: list
    elements: str
  certificate:
    description:
      - A PEM certificate whose SHA-256 fingerprint, subject and expiry are recorded, read with the
        Python library C(cryptography) and spelled as C(openssl x509 -nameopt oneline) prints them.
    type: path
  migration_service:
    description:
      - Compose service in which O(migration_command) prints the current migration revision,
        for example V(backend). Not queried when unset, or when the service has no running container.
    type: str
  migration_command:
    description: Command (argv) run with C(docker compose exec -T) to print the revision.
    type: list
    elements: str
    default: [alembic, current]
  docker_cli:
    description:
      - Path to the C(docker) command line client. Default is C(docker) found on E(PATH).
      - When set, it must be an executable file; checked before anything else.
    type: path
seealso:
  - module: taylordash.rollback.image_retag
  - module: community.docker.docker_compose_v2
"""

EXAMPLES = r"""
- name: Preflight and snapshot before rolling the backend back to previous
  taylordash.rollback.stack_info:
    project_dir: /opt/taylordash
    services:
      - name: backend
        image: taylordash_backend
      - name: frontend
        image: taylordash_frontend
    target_tag: previous
    target_services: [backend]
    certificate: /opt/taylordash/certs/taylordash.crt
    migration_service: backend
  register: stack_before

- name: Show which image each service runs
  ansible.builtin.debug:
    msg: "{{ stack_before.services | items2dict(key_name='name', value_name='running_image_ids') }}"
"""

RETURN = r"""
docker:
  description: Versions of the Docker client and engine.
  returned: success
  type: dict
  sample: {client_version: "28.2.2", server_version: "20.10.24+dfsg1"}
compose:
  description: The compose project as C(docker compose config) resolved it.
  returned: success
  type: dict
  contains:
    project:
      description: Project name.
      type: str
    services:
      description: Names of all services defined in the project.
      type: list
      elements: str
  sample: {project: taylordash, services: [backend, frontend, nginx, postgres]}
services:
  description: One entry per service of O(services).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
    image:
      description: Image repository.
      type: str
    current_ref:
      description: Repository and current tag.
      type: str
    current_image_id:
      description: Image ID the current tag points at, or null.
      type: str
    target_ref:
      description: Repository and target tag (or the image ID given), or null without O(target_tag).
      type: str
    target_image_id:
      description: Image ID the target points at, or null.
      type: str
    containers:
      description: The service's containers with their state and the image ID each was created from.
      type: list
      elements: dict
    running_image_ids:
      description: Image IDs of the service's running containers.
      type: list
      elements: str
    runs_target:
      description: Every running container runs the target image (false without one).
      type: bool
    in_target:
      description: The service is one of O(target_services).
      type: bool
  sample:
    - name: backend
      image: taylordash_backend
      current_ref: taylordash_backend:latest
      current_image_id: sha256:dd2a774681f0...
      target_ref: taylordash_backend:previous
      target_image_id: sha256:49637544b295...
      containers: [{id: 0c1d..., name: taylordash-backend-1, state: running, image_id: sha256:dd2a7746...}]
      running_image_ids: [sha256:dd2a774681f0...]
      runs_target: false
      in_target: true
files:
  description: Checksums of O(files), keyed by the path as given.
  returned: success
  type: dict
  sample: {".env": {path: /opt/taylordash/.env, exists: true, sha256: "9f86d0...", size: 471, mode: "0600"}}
certificate:
  description:
    - The certificate's fingerprint, subject and expiry, or null without O(certificate).
    - With C(error) instead of the details when the file is not a readable PEM certificate.
  returned: success
  type: dict
  sample: {path: /opt/taylordash/certs/taylordash.crt, exists: true, sha256_fingerprint: "AB:CD:...",
           subject: "CN = taylordash.local", not_after: "Feb 27 11:40:11 2029 GMT"}
migration:
  description: The migration revision reported by O(migration_service), or null.
  returned: success
  type: dict
  sample: {service: backend, revision: "0003", output: "0003 (head)"}
duration:
  description: Seconds the module took (the same as C(seconds) in RV(timing)).
  returned: success
  type: float
timing:
  description: When the module started and ended (ISO 8601 UTC) and how many seconds it took.
  returned: always
  type: dict
  sample: {start: "2026-11-25T14:18:01.120000+00:00", end: "2026-11-25T14:18:03.450000+00:00", seconds: 2.33}
"""

import os

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.taylordash.rollback.plugins.module_utils import _certificate
from ansible_collections.taylordash.rollback.plugins.module_utils._alembic import current_revision
from ansible_collections.taylordash.rollback.plugins.module_utils._compose import compose_args
from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import (
    docker_cli_problem,
    DockerCLI, DockerCLIError, is_valid_repository, is_valid_tag, looks_like_image_id)
from ansible_collections.taylordash.rollback.plugins.module_utils._file_snapshot import (
    file_snapshot, outside_project, project_path)
from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule
from ansible_collections.taylordash.rollback.plugins.module_utils._stack_state import (
    available_tags, compose_config, containers_by_service, engine_versions, resolve_image)

# Output of the migration command kept in the result: the end, where the revision is.
MIGRATION_OUTPUT_TAIL = 2000


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


class StackInfo(object):

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.docker = DockerCLI(module, module.params['docker_cli'])
        self.project_dir = module.params['project_dir']
        self.compose = compose_args(self.project_dir, module.params['project_name'],
                                    module.params['compose_files'])

    def fail(self, msg, error=None):
        self.docker.fail(msg, error=error)

    def check_engine(self):
        rc, err, versions = engine_versions(self.docker)
        if rc != 0 or not versions['server_version']:
            self.module.fail_json(
                msg='The Docker engine does not answer (%s). Start dockerd, or check DOCKER_HOST '
                    'and that this user may use the docker socket.' % (err.strip() or 'no server version'),
                rc=rc, stderr=err)
        return versions

    def check_files(self):
        if not os.path.isdir(self.project_dir):
            self.module.fail_json(msg='Project directory %s does not exist; set the stack project '
                                      'directory (stack_project_dir) to where the compose files are.'
                                      % self.project_dir)
        for name in self.params['compose_files']:
            path = project_path(self.project_dir, name)
            if not os.path.isfile(path):
                self.module.fail_json(msg='Compose file %s does not exist.' % path)

    def compose_config(self):
        try:
            return compose_config(self.docker, self.compose)
        except DockerCLIError as exc:
            self.fail('docker compose rejects the project in %s: %s' % (
                self.project_dir, (exc.stderr or exc.stdout or str(exc)).strip()), exc)
        except ValueError as exc:
            self.fail('Cannot read docker compose config output: %s' % exc)

    def containers(self):
        try:
            return containers_by_service(self.docker, self.compose)
        except (DockerCLIError, ValueError) as exc:
            self.fail('Cannot list the containers of the compose project: %s' % exc,
                      exc if isinstance(exc, DockerCLIError) else None)

    def file_info(self, name):
        try:
            return file_snapshot(self.project_dir, name)
        except (IOError, OSError) as exc:
            return {'path': project_path(self.project_dir, name), 'exists': True,
                    'error': 'cannot read it: %s' % exc}

    def certificate(self, path):
        if not _certificate.HAS_CRYPTOGRAPHY:
            self.module.fail_json(msg=missing_required_lib('cryptography', reason='to read certificate'),
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
        result['docker'] = self.check_engine()
        self.check_files()
        config = self.compose_config()
        defined = sorted(config['services'])
        result['compose'] = {'project': config.get('name'), 'services': defined}

        wanted = [s['name'] for s in self.params['services']]
        unknown = [name for name in wanted if name not in defined]
        targets = self.params['target_services'] or wanted
        unknown += [name for name in targets if name not in wanted and name not in unknown]
        if unknown:
            self.module.fail_json(msg='Service(s) %s not defined in the compose project %s (defined: %s).'
                                      % (', '.join(unknown), config.get('name'), ', '.join(defined)))

        containers = self.containers()
        services, missing = [], []
        target_tag = self.params['target_tag']
        for svc in self.params['services']:
            current_ref = '%s:%s' % (svc['image'], self.params['current_tag'])
            entry = {'name': svc['name'], 'image': svc['image'], 'current_ref': current_ref,
                     'current_image_id': self.docker.image_id(current_ref),
                     'target_ref': None, 'target_image_id': None,
                     'containers': containers.get(svc['name'], []),
                     'in_target': svc['name'] in targets}
            entry['running_image_ids'] = sorted(set(c['image_id'] for c in entry['containers'] if c['running']))
            if target_tag:
                entry['target_ref'], entry['target_image_id'] = resolve_image(self.docker, svc['image'], target_tag)
                if entry['in_target'] and not entry['target_image_id']:
                    missing.append('%s (available tags of %s: %s)' % (
                        entry['target_ref'], svc['image'],
                        ', '.join(available_tags(self.docker, svc['image'])) or 'none'))
            entry['runs_target'] = bool(entry['target_image_id']) and bool(entry['running_image_ids']) and \
                entry['running_image_ids'] == [entry['target_image_id']]
            services.append(entry)
        if missing:
            self.module.fail_json(msg='Rollback target image(s) not found locally: %s. Nothing was changed; '
                                      'choose another tag or image ID.' % '; '.join(missing),
                                  services=services)
        result['services'] = services

        result['files'] = dict((name, self.file_info(name)) for name in snapshot_files(self.params))
        result['certificate'] = self.certificate(self.params['certificate']) if self.params['certificate'] else None
        result['migration'] = self.migration(self.params['migration_service'], containers) \
            if self.params['migration_service'] else None
        result['duration'] = self.module.timing()['seconds']
        self.module.exit_json(**result)


def main():
    module = RollbackModule(
        argument_spec=dict(
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
        ),
        supports_check_mode=True,
    )
    if not module.params['services']:
        module.fail_json(msg='services is empty: name at least one service and its image repository.')
    problems = validate_params(module.params)
    if problems:
        module.fail_json(msg='; '.join(problems) + '. Nothing was read.')
    try:
        StackInfo(module).run()
    except DockerCLIError as exc:
        module.fail_json(msg=to_text(exc), **exc.as_dict())


if __name__ == '__main__':
    main()
