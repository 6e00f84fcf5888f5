#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: nginx_switch
short_description: Switch a running nginx to another site config, test it, reload gracefully, prove it, or put the old one back
description:
  - The runbook's blue-green switch (C(cp nginx.blue.conf /etc/nginx/sites-available/taylordash; nginx -t;
    systemctl reload nginx)) done safely.
  - Keeps a verified copy of the live site file O(path), replaces it atomically with the content of
    O(src), and runs C(nginx -t). When the test fails, the old file is put back, nginx is not
    reloaded, and the task fails with nginx's message.
  - Reloads gracefully only (a C(SIGHUP) to the master, C(systemctl reload), or C(nginx -s reload) in
    the compose service) - workers finish the requests they have; nginx is never restarted.
  - Then waits, with a deadline (O(reload_timeout)), until the master runs a new generation of worker
    processes, and, when O(verify_url) is set, until O(verify_successes) answers in a row through nginx
    carry the marker of the new config (O(verify_header) equal to O(verify_value)) within
    O(verify_timeout).
  - When the reload does not take effect or the new config is not served in time, the old file is put
    back and nginx reloaded again, and the task fails with the reason (RV(reverted) says whether the old
    config is back).
  - Fails before changing anything when nginx is not running or the candidate cannot be read.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
extends_documentation_fragment:
  - taylordash.rollback.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads both files and checks that nginx runs; reports whether the file would change. Does not run C(nginx -t)
        (the candidate is not in place).
  diff_mode:
    support: full
    details:
      - The live site file before and after.
  idempotent:
    support: full
    details:
      - When O(path) already has the content of O(src) (and, with O(verify_url), nginx serves it), nothing is done.
options:
  path:
    description:
      - The live site file nginx includes. A symbolic link is followed; the file it points to is replaced.
    type: path
    default: /etc/nginx/sites-available/taylordash
  src:
    description:
      - The candidate site file on the target host (for example C(nginx.blue.conf)).
    type: path
    required: true
  backup:
    description:
      - Keep the replaced file as C(<path>.<UTC timestamp>.bak) beside it (RV(backup_file)). The copy is
        checked against the live file before the live file is touched.
      - Without it, the old content is still kept in memory to put it back when the switch fails.
    type: bool
    default: true
  nginx:
    description:
      - Where nginx runs. V(host) - started on this host with its own PID file (reload by C(SIGHUP) to the master);
        V(systemd) - a systemd unit (C(systemctl reload)); V(compose) - a docker compose service (C(nginx -t) and
        C(nginx -s reload) through C(docker compose exec)).
    type: str
    choices: [host, systemd, compose]
    default: host
  nginx_binary:
    description:
      - The nginx binary for V(host) and V(systemd) (C(nginx -t)). Unset, C(nginx) is looked up on PATH and in
        C(/usr/sbin).
    type: path
  nginx_conf:
    description:
      - The main config file, passed as C(-c) to every nginx command (also in the container for V(compose)).
    type: path
  nginx_prefix:
    description:
      - The prefix path, passed as C(-p) to every nginx command.
    type: path
  pid_file:
    description:
      - For V(host) - the PID file of the nginx master (the C(pid) directive of its config).
    type: path
    default: /run/nginx.pid
  systemd_unit:
    description:
      - For V(systemd) - the unit name.
    type: str
    default: nginx
  project_dir:
    description:
      - For V(compose) - the compose project directory.
    type: path
  project_name:
    description:
      - For V(compose) - the compose project name (default, compose's own rule - the directory name or
        C(COMPOSE_PROJECT_NAME) in its C(.env)).
    type: str
  files:
    description:
      - For V(compose) - compose files, relative to O(project_dir) (default, compose's own).
    type: list
    elements: str
    default: []
  service:
    description:
      - For V(compose) - the service that runs nginx.
    type: str
    default: nginx
  docker_cli:
    description:
      - For V(compose) - path of the docker CLI (unset, C(docker) on PATH).
    type: path
  command_timeout:
    description:
      - Seconds each command (C(nginx -t), C(systemctl), C(docker compose exec)) may take before it is stopped.
      - More than V(0), at most V(3600).
    type: float
    default: 30
  reload_timeout:
    description:
      - Seconds to wait after the reload for a new generation of nginx workers. More than V(0), at most V(3600).
    type: float
    default: 30
  verify_url:
    description:
      - A URL served by the new config (through nginx). When set, after the reload the module needs
        O(verify_successes) answers in a row from it with a status in O(verify_status_codes) and, when
        O(verify_header) is set, that response header equal to O(verify_value).
    type: str
  verify_headers:
    description:
      - Request headers for O(verify_url), for example C(Host) naming the site.
    type: dict
    default: {}
  verify_header:
    description:
      - The response header that marks the new config (for example C(X-TaylorDash-Env)).
    type: str
  verify_value:
    description:
      - The value O(verify_header) must have (for example V(blue)). Required with O(verify_header).
    type: str
  verify_successes:
    description:
      - Answers in a row needed. A failed answer resets the count. From V(1) to V(100000).
    type: int
    default: 10
  verify_status_codes:
    description:
      - Statuses that count as good answers.
    type: list
    elements: int
    default: [200]
  verify_timeout:
    description:
      - Seconds, from the end of the reload, within which the answers must come. More than V(0), at most V(3600).
    type: float
    default: 30
  verify_request_timeout:
    description:
      - Seconds one verification request may take. More than V(0), at most V(600).
    type: float
    default: 2
  validate_certs:
    description:
      - Verify the TLS certificate of an C(https) O(verify_url).
    type: bool
    default: true
notes:
  - The reload is judged by worker processes read from C(/proc) (host, systemd) or C(docker top) (compose), so the
    module must run on the host where nginx (or the Docker engine) runs.
  - A rollback playbook - taylordash.rollback.rollback_blue_green - uses this module to move traffic between the
    blue and green stacks.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.template
  - module: taylordash.rollback.health_poll
"""

EXAMPLES = r"""
- name: Switch traffic to the blue stack (host nginx under systemd) and prove it is served
  taylordash.rollback.nginx_switch:
    src: /opt/taylordash/nginx.blue.conf
    nginx: systemd
    verify_url: http://127.0.0.1/health/ready
    verify_headers:
      Host: taylordash.local
    verify_header: X-TaylorDash-Env
    verify_value: blue
    verify_successes: 20

- name: Switch an nginx started with its own prefix and PID file
  taylordash.rollback.nginx_switch:
    path: /srv/lb/sites-available/taylordash
    src: /srv/lb/nginx.green.conf
    nginx: host
    nginx_prefix: /srv/lb
    nginx_conf: /srv/lb/nginx.conf
    pid_file: /srv/lb/nginx.pid

- name: Switch nginx running in the compose service "nginx"
  taylordash.rollback.nginx_switch:
    path: /opt/taylordash/nginx/sites/taylordash.conf
    src: /opt/taylordash/nginx.blue.conf
    nginx: compose
    project_dir: /opt/taylordash
    service: nginx
  register: switch

- name: Show where the replaced config is kept
  ansible.builtin.debug:
    msg: "Old config kept at {{ switch.backup_file }}"
"""

RETURN = r"""
path:
  description: The live site file, as given.
  returned: always
  type: str
  sample: /etc/nginx/sites-available/taylordash
src:
  description: The candidate, as given.
  returned: always
  type: str
  sample: /opt/taylordash/nginx.blue.conf
backup_file:
  description: Where the replaced file is kept; V(null) when nothing was replaced (or O(backup=false)).
  returned: always
  type: str
  sample: /etc/nginx/sites-available/taylordash.20250601T120000123456Z.bak
reverted:
  description: Whether a switch that failed after the reload was undone (old file back, nginx reloaded with it).
  returned: always
  type: bool
  sample: false
nginx_kind:
  description: Where nginx runs (O(nginx)).
  returned: always
  type: str
  sample: host
checksum:
  description: sha256 of the candidate.
  returned: when the candidate was read
  type: str
  sample: 3b1f...
checksum_before:
  description: sha256 of the live file before; V(null) when there was none.
  returned: when the files were read
  type: str
  sample: 9a0c...
master_pid:
  description: PID of the nginx master (host PID).
  returned: when nginx was found running
  type: int
  sample: 4242
workers_before:
  description: PIDs of the master's workers before the reload.
  returned: when nginx was found running
  type: list
  elements: int
  sample: [4243]
workers:
  description: PIDs of the master's current workers after the reload.
  returned: when nginx was reloaded
  type: list
  elements: int
  sample: [4301]
old_workers:
  description: PIDs of workers of the old generation still finishing their requests when the new one was seen.
  returned: when nginx was reloaded
  type: list
  elements: int
  sample: [4243]
reload_seconds:
  description: Seconds from the reload until the new generation of workers ran.
  returned: when nginx was reloaded
  type: float
  sample: 0.061
nginx_test:
  description: The C(nginx -t) command and what it printed.
  returned: when nginx -t ran and passed
  type: dict
  sample: {cmd: "nginx -t", rc: 0, stdout: "", stderr: "nginx: configuration file /etc/nginx/nginx.conf test is successful"}
verify:
  description: The answers through nginx (O(verify_url)).
  returned: when O(verify_url) was checked
  type: dict
  contains:
    attempts:
      description: Requests sent.
      type: int
    successes:
      description: Good answers in a row at the end.
      type: int
    wanted:
      description: O(verify_successes).
      type: int
    last_status:
      description: Status of the last answer (V(null) without an answer).
      type: int
    problem:
      description: Why the last failed answer did not count; V(null) when it succeeded.
      type: str
    seconds:
      description: How long the verification took.
      type: float
revert:
  description: The reload of the old config after a failed switch (same keys as the top level workers figures).
  returned: when a switch was reverted
  type: dict
cmd:
  description: The command that failed.
  returned: on failure of a command
  type: str
rc:
  description: Its exit status.
  returned: on failure of a command
  type: int
stdout:
  description: Its standard output.
  returned: on failure of a command
  type: str
stderr:
  description: Its standard error (nginx's message).
  returned: on failure of a command
  type: str
msg:
  description: What was done, or what is wrong and what to do.
  returned: always
  type: str
  sample: Switched /etc/nginx/sites-available/taylordash to nginx.blue.conf; nginx reloaded in 0.06 s (workers [4243] -> [4301]).
timing:
  description: When the module started and ended (ISO 8601, UTC) and how many seconds it ran.
  returned: always
  type: dict
  sample: {start: "2025-06-01T12:00:00.000000+00:00", end: "2025-06-01T12:00:00.743000+00:00", seconds: 0.743}
"""

import os

from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import docker_cli_problem, find_docker
from ansible_collections.taylordash.rollback.plugins.module_utils._http_probe import build_opener
from ansible_collections.taylordash.rollback.plugins.module_utils._nginx import (
    ComposeNginx,
    HostNginx,
    Marker,
    Switch,
    SwitchError,
    SystemdNginx,
    fetch,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._safe_module import build_module
from ansible_collections.taylordash.rollback.plugins.module_utils._seconds import seconds_problem


def argument_spec():
    return dict(
        path=dict(type='path', default='/etc/nginx/sites-available/taylordash'),
        src=dict(type='path', required=True),
        backup=dict(type='bool', default=True),
        nginx=dict(type='str', default='host', choices=['host', 'systemd', 'compose']),
        nginx_binary=dict(type='path'),
        nginx_conf=dict(type='path'),
        nginx_prefix=dict(type='path'),
        pid_file=dict(type='path', default='/run/nginx.pid'),
        systemd_unit=dict(type='str', default='nginx'),
        project_dir=dict(type='path'),
        project_name=dict(type='str'),
        files=dict(type='list', elements='str', default=[]),
        service=dict(type='str', default='nginx'),
        docker_cli=dict(type='path'),
        command_timeout=dict(type='float', default=30),
        reload_timeout=dict(type='float', default=30),
        verify_url=dict(type='str'),
        verify_headers=dict(type='dict', default={}),
        verify_header=dict(type='str'),
        verify_value=dict(type='str'),
        verify_successes=dict(type='int', default=10),
        verify_status_codes=dict(type='list', elements='int', default=[200]),
        verify_timeout=dict(type='float', default=30),
        verify_request_timeout=dict(type='float', default=2),
        validate_certs=dict(type='bool', default=True),
    )


def find_nginx(binary):
    if binary:
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            return None, 'nginx_binary %s is not an executable file; give the path of nginx' % binary
        return binary, None
    for directory in os.environ.get('PATH', '').split(os.pathsep) + ['/usr/sbin', '/usr/local/sbin']:
        candidate = os.path.join(directory or '.', 'nginx')
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate, None
    return None, 'nginx is not on PATH nor in /usr/sbin; install it or set nginx_binary'


def check_params(p):
    """Texts of what is wrong with the arguments, before anything runs."""
    problems = []
    for name, maximum in (('command_timeout', 3600), ('reload_timeout', 3600), ('verify_timeout', 3600),
                          ('verify_request_timeout', 600)):
        problem = seconds_problem(name, p[name], maximum=maximum)
        if problem:
            problems.append(problem)
    for name in ('path', 'src'):
        if not p[name] or '\x00' in p[name]:
            problems.append('%s must be a file path, got %r' % (name, p[name]))
    if not 1 <= p['verify_successes'] <= 100000:
        problems.append('verify_successes must be from 1 to 100000, got %s' % p['verify_successes'])
    if p['verify_url'] is not None and not p['verify_url'].startswith(('http://', 'https://')):
        problems.append('verify_url must be an http:// or https:// URL, got %r' % p['verify_url'])
    if p['verify_header'] and p['verify_value'] is None:
        problems.append('verify_header is set but verify_value is not: give the value that marks the new config')
    if (p['verify_header'] or p['verify_value'] is not None) and not p['verify_url']:
        problems.append('verify_header/verify_value need verify_url')
    if any(not 100 <= code <= 599 for code in p['verify_status_codes']) or not p['verify_status_codes']:
        problems.append('verify_status_codes must be HTTP statuses (100-599), got %s' % p['verify_status_codes'])
    for name, value in (p['verify_headers'] or {}).items():
        if any(c in '%s%s' % (name, value) for c in '\r\n\x00') or not name:
            problems.append('verify_headers has a name or value with a line break or NUL')
            break
    if p['nginx'] == 'compose':
        if not p['project_dir']:
            problems.append('nginx=compose needs project_dir (the compose project directory)')
        elif not os.path.isdir(p['project_dir']):
            problems.append('project_dir %s is not a directory' % p['project_dir'])
        if not p['service'] or '\x00' in p['service']:
            problems.append('service must name the compose service that runs nginx')
        problem = docker_cli_problem(p['docker_cli'])
        if problem:
            problems.append(problem)
    elif p['nginx'] == 'systemd' and (not p['systemd_unit'] or '\x00' in p['systemd_unit']):
        problems.append('systemd_unit must name the nginx unit')
    for name in ('nginx_conf', 'nginx_prefix', 'pid_file', 'project_name', 'service', 'systemd_unit'):
        if p[name] is not None and '\x00' in p[name]:
            problems.append('%s must not contain NUL' % name)
    return problems


def make_nginx(p):
    timeout = p['command_timeout']
    if p['nginx'] == 'compose':
        return ComposeNginx(find_docker(p['docker_cli']), p['project_dir'], p['service'], project=p['project_name'],
                            files=p['files'], conf=p['nginx_conf'], prefix=p['nginx_prefix'], timeout=timeout)
    binary, problem = find_nginx(p['nginx_binary'])
    if problem:
        raise SwitchError(problem[0].upper() + problem[1:] + '; nothing was changed.')
    if p['nginx'] == 'systemd':
        return SystemdNginx(binary, p['systemd_unit'], conf=p['nginx_conf'], prefix=p['nginx_prefix'], timeout=timeout)
    return HostNginx(binary, p['pid_file'], conf=p['nginx_conf'], prefix=p['nginx_prefix'], timeout=timeout)


def make_verify(p):
    if not p['verify_url']:
        return None
    opener = build_opener(validate_certs=p['validate_certs'], use_proxy=False)
    headers = dict((str(k), str(v)) for k, v in (p['verify_headers'] or {}).items())
    return Marker(lambda budget: fetch(opener, p['verify_url'], headers, budget), p['verify_successes'],
                  p['verify_status_codes'], header=p['verify_header'], value=p['verify_value'],
                  request_timeout=p['verify_request_timeout'])


def main():
    module = build_module(argument_spec(), supports_check_mode=True)
    p = module.params
    problems = check_params(p)
    base = dict(changed=False, path=p['path'], src=p['src'], backup_file=None, reverted=False, nginx_kind=p['nginx'])
    if problems:
        module.fail_json(msg='Bad arguments (nothing was changed): %s.' % '; '.join(problems), **base)
    switch = None
    try:
        switch = Switch(make_nginx(p), p['path'], p['src'], reload_timeout=p['reload_timeout'],
                        verify=make_verify(p), verify_timeout=p['verify_timeout'], backup=p['backup'])
        result = switch.run(check_mode=module.check_mode, want_diff=module._diff)
    except SwitchError as exc:
        result = dict(base)
        if switch is not None:
            result.update(switch.result)
        for key, value in exc.details.items():
            result.setdefault(key, value)
        if not result.get('changed'):
            result.pop('diff', None)
        module.fail_json(msg=exc.msg, **result)
    except Exception as exc:  # docker CLI lookup and friends: a message, never a traceback
        result = dict(base)
        if switch is not None:
            result.update(switch.result)
        module.fail_json(msg='nginx_switch failed: %s' % (getattr(exc, 'msg', None) or exc), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
