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

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import DockerCLIError
from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule
from ansible_collections.taylordash.rollback.plugins.module_utils._stack_snapshot import (
    SNAPSHOT_ARGUMENT_SPEC, StackSnapshot, params_problems)


def main():
    module = RollbackModule(argument_spec=SNAPSHOT_ARGUMENT_SPEC, supports_check_mode=True)
    problem = params_problems(module.params)
    if problem:
        module.fail_json(msg=problem)
    try:
        result = StackSnapshot(module).run()
    except DockerCLIError as exc:
        module.fail_json(msg=to_text(exc), **exc.as_dict())
    result['duration'] = module.timing()['seconds']
    module.exit_json(**result)


if __name__ == '__main__':
    main()
