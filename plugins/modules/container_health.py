#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: container_health
short_description: Wait until the containers of compose services run (and are healthy), or fail at a deadline
description:
  - The health check for a service that has no health URL. Reads the containers of each service of
    O(services) in a compose project every O(interval) seconds until, O(success_threshold) reads in
    a row, every one of them is running and, where its image defines a C(HEALTHCHECK), reports
    C(healthy); or until O(timeout) seconds have passed.
  - Says for each service whether it was judged by the image's C(HEALTHCHECK) or only by its
    containers running, and how long it took.
  - Use M(taylordash.rollback.health_poll) when the service has a URL that answers when it is
    healthy; this module only reads what the Docker engine knows about the containers.
  - Read-only; it never changes anything and reads for real in check mode too.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
requirements:
  - The C(docker) command line client with the compose v2 plugin on the target host.
extends_documentation_fragment:
  - taylordash.rollback.attributes
  - taylordash.rollback.compose_project
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it polls in check mode exactly as in a normal run.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  services:
    description: The compose services whose containers must run. Each needs at least one container.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds the whole wait may take, more than 0 and at most 86400.
    type: float
    default: 60
  interval:
    description: Seconds between the starts of two reads, from 0 to 86400.
    type: float
    default: 0.5
  success_threshold:
    description:
      - Reads in a row in which every container is running (and healthy) needed to call the services
        healthy. A bad read resets the count.
      - Two by default, so a container that starts and crashes at once is not called healthy.
    type: int
    default: 2
  docker_cli:
    description: Path of the C(docker) binary. Default is C(docker) on the PATH of the target host.
    type: path
notes:
  - A container counts as healthy when it is running and, if its image defines a C(HEALTHCHECK),
    Docker reports it C(healthy). A container that restarted between two reads breaks the run of
    good reads.
  - Every docker call is bounded by what is left of O(timeout).
seealso:
  - module: taylordash.rollback.health_poll
  - module: community.docker.docker_compose_v2
"""

EXAMPLES = r"""
- name: Wait until the worker and the queue run, at most 60 seconds
  taylordash.rollback.container_health:
    project_dir: /opt/shop
    project_name: shop
    services: [worker, queue]
  register: containers

- name: Say how it was judged
  ansible.builtin.debug:
    msg: "{{ containers.msg }}"
"""

RETURN = r"""
healthy:
  description: Whether every container of O(services) ran (and was healthy) O(success_threshold) reads in a row before the deadline.
  returned: always
  type: bool
  sample: true
elapsed:
  description: Seconds from the first read until the services were healthy, or until the wait gave up.
  returned: always
  type: float
  sample: 1.02
attempts:
  description: Number of reads.
  returned: always
  type: int
  sample: 3
services:
  description: One entry per service of O(services), as the last read saw it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
    healthy:
      description: Every container of the service runs (and is healthy where a HEALTHCHECK is defined).
      type: bool
    checked_by:
      description: C(healthcheck) when at least one container has a Docker HEALTHCHECK, else C(running).
      type: str
    problem:
      description: Why the service is not healthy; V(null) when it is.
      type: str
    containers:
      description: Name, state, health (V(null) without a HEALTHCHECK) and restart count of each container.
      type: list
      elements: dict
  sample:
    - name: web
      healthy: true
      checked_by: running
      problem: null
      containers: [{name: shop-web-1, state: running, running: true, health: null, restart_count: 0}]
msg:
  description: Summary; on failure names each service that is not healthy and why.
  returned: always
  type: str
  sample: "web, api running after 0.61 s (2 reads in a row; no HEALTHCHECK in their images: judged by running containers only)."
timing:
  description: When the module started and ended (ISO 8601, UTC) and how many seconds it ran.
  returned: always
  type: dict
  sample: {start: "2026-11-26T01:00:00.000000+00:00", end: "2026-11-26T01:00:00.610000+00:00", seconds: 0.61}
"""

import time

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.taylordash.rollback.plugins.module_utils._compose import compose_args, parse_ps
from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import (
    DockerCLI, DockerCLIError, docker_cli_problem)
from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule
from ansible_collections.taylordash.rollback.plugins.module_utils._seconds import seconds_problem


def container_view(info):
    """What one ``docker container inspect`` object says about health. Pure."""
    state = info.get('State') or {}
    health = state.get('Health')
    return dict(name=(info.get('Name') or '').lstrip('/'), state=state.get('Status'),
                running=bool(state.get('Running')),
                health=health.get('Status') if isinstance(health, dict) else None,
                restart_count=info.get('RestartCount', 0))


def judge_service(name, containers):
    """The verdict on one service from its container views. Pure."""
    checked_by = 'healthcheck' if any(c['health'] is not None for c in containers) else 'running'
    if not containers:
        problem = 'no container'
    else:
        bad = [c for c in containers if not c['running'] or c['health'] not in (None, 'healthy')]
        problem = ', '.join('%s %s%s' % (c['name'], c['state'], (' (%s)' % c['health']) if c['health'] else '')
                            for c in bad) or None
    return dict(name=name, healthy=problem is None, checked_by=checked_by, problem=problem,
                containers=containers)


def read_fingerprint(services):
    """Container names and restart counts: a change between two good reads means a restart."""
    return sorted((c['name'], c['restart_count']) for s in services for c in s['containers'])


class Waiter(object):
    """Deadline-bounded read loop. ``read(budget)`` returns the judged services;
    ``clock`` and ``sleep`` are injectable so unit tests run without waiting."""

    def __init__(self, read, timeout, interval, success_threshold, clock=time.monotonic, sleep=time.sleep):
        self.read = read
        self.timeout = timeout
        self.interval = interval
        self.success_threshold = success_threshold
        self.clock = clock
        self.sleep = sleep

    def run(self):
        start = self.clock()
        deadline = start + self.timeout
        attempts = consecutive = 0
        services, previous = [], None
        healthy = False
        while True:
            attempt_start = self.clock()
            services = self.read(max(deadline - attempt_start, 1.0))
            attempts += 1
            fingerprint = read_fingerprint(services)
            if all(s['healthy'] for s in services):
                consecutive = consecutive + 1 if previous == fingerprint or consecutive == 0 else 1
                previous = fingerprint
                if consecutive >= self.success_threshold:
                    healthy = True
                    break
            else:
                consecutive, previous = 0, None
            now = self.clock()
            next_start = attempt_start + self.interval
            if now >= deadline or next_start >= deadline:
                break
            if next_start > now:
                self.sleep(next_start - now)
        return dict(healthy=healthy, attempts=attempts, consecutive_reads=consecutive,
                    elapsed=round(self.clock() - start, 6), services=services)


def summary(result, threshold, timeout):
    names = ', '.join(s['name'] for s in result['services'])
    if result['healthy']:
        by_hc = [s['name'] for s in result['services'] if s['checked_by'] == 'healthcheck']
        by_run = [s['name'] for s in result['services'] if s['checked_by'] == 'running']
        how = []
        if by_hc:
            how.append('%s healthy by their image HEALTHCHECK' % ', '.join(by_hc))
        if by_run:
            how.append('no HEALTHCHECK in the image of %s: judged by running containers only' % ', '.join(by_run))
        return '%s running after %.2f s (%d reads in a row; %s).' % (
            names, result['elapsed'], threshold, '; '.join(how))
    bad = ['%s: %s' % (s['name'], s['problem']) for s in result['services'] if not s['healthy']]
    return ('Containers not running and healthy by the deadline of %s s (%d reads): %s. Check the service logs '
            '(docker compose logs), or raise timeout if they are only slow to start.'
            % (timeout, result['attempts'], '; '.join(bad) or 'they restarted between reads'))


def check_params(p):
    problems = []
    for name, allow_zero in (('timeout', False), ('interval', True)):
        problem = seconds_problem(name, p[name], allow_zero=allow_zero)
        if problem:
            problems.append(problem)
    if p['success_threshold'] < 1 or p['success_threshold'] > 1000:
        problems.append('success_threshold must be from 1 to 1000, got %s' % p['success_threshold'])
    if not p['services'] or any(not isinstance(s, str) or not s.strip() or '\x00' in s for s in p['services']):
        problems.append('services must name at least one compose service, each a non-empty name')
    if not p['project_dir'] or '\x00' in p['project_dir']:
        problems.append('project_dir must be the directory of the compose files')
    if any('\x00' in f for f in p['compose_files'] or []) or '\x00' in (p['project_name'] or ''):
        problems.append('compose_files and project_name must not contain NUL bytes')
    problem = docker_cli_problem(p['docker_cli'])
    if problem:
        problems.append(problem)
    return problems


class ContainerReader(object):
    def __init__(self, docker, compose, services):
        self.docker = docker
        self.compose = compose
        self.services = services

    def read(self, budget):
        self.docker.timeout = budget
        rc, out, err = self.docker.run(self.compose + ['ps', '--all', '--format', 'json'])
        try:
            rows = parse_ps(out)
        except ValueError as exc:
            raise DockerCLIError('Cannot parse the output of docker compose ps: %s' % exc, stdout=out, stderr=err)
        by_service = {}
        for row in rows:
            if row.get('Service') not in self.services:
                continue
            info = self.docker.container_inspect(row.get('ID') or row.get('Name'))
            if info is not None:  # None: removed between ps and inspect
                by_service.setdefault(row.get('Service'), []).append(container_view(info))
        return [judge_service(name, sorted(by_service.get(name, []), key=lambda c: c['name']))
                for name in self.services]


def main():
    module = RollbackModule(
        argument_spec=dict(
            project_dir=dict(type='path', required=True),
            project_name=dict(type='str'),
            compose_files=dict(type='list', elements='str', default=['docker-compose.yml']),
            services=dict(type='list', elements='str', required=True),
            timeout=dict(type='float', default=60),
            interval=dict(type='float', default=0.5),
            success_threshold=dict(type='int', default=2),
            docker_cli=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = check_params(p)
    if problems:
        module.fail_json(msg='; '.join(problems) + '. Nothing was read.', healthy=False, services=[])
    docker = DockerCLI(module, docker_cli=p['docker_cli'])
    reader = ContainerReader(docker, compose_args(p['project_dir'], p['project_name'], p['compose_files']),
                             list(dict.fromkeys(p['services'])))
    try:
        result = Waiter(reader.read, p['timeout'], p['interval'], p['success_threshold']).run()
    except DockerCLIError as exc:
        module.fail_json(msg='Cannot read the containers of %s: %s' % (', '.join(p['services']), to_text(exc)),
                         healthy=False, services=[], **exc.as_dict())
    result['changed'] = False
    result['msg'] = summary(result, p['success_threshold'], p['timeout'])
    if result['healthy']:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == '__main__':
    main()
