# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: validation_plan
short_description: Which post-rollback checks fit the stack, which are skipped and why
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - The validate role's checks are the TaylorDash runbook's - a P1 script, a login, a projects API,
    a frontend, a PostgreSQL service, and the response times of the three endpoints. A stack that is
    not TaylorDash lacks some of them.
  - Each check runs when what it needs is there. Otherwise it is skipped, with one line that says
    why and which variable turns it on.
  - A check the operator asked for explicitly (its variable set, not left at null) that cannot run
    is a problem instead, naming the variable to set.
options:
  _input:
    description:
      - What the role knows - C(script_enabled), C(script) (the explicit script or null),
        C(script_default), C(script_exists); C(checklist_enabled), C(perf_enabled);
        C(login_path), C(projects_path) (explicit or null); C(admin_password_set), C(api_key_set);
        C(frontend_service) (explicit or null), C(services) (C(stack_services));
        C(database_check) (true, false or null), C(db_service), C(compose_services) (the services
        of the compose project, or null when unknown).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Plan the validation
  ansible.builtin.set_fact:
    plan: "{{ {'script_enabled': true, 'script': none, 'script_default': '/srv/ops/validate_p1.sh',
               'script_exists': false, 'services': stack_services} | taylordash.rollback.validation_plan }}"
"""

RETURN = r"""
_value:
  description:
    - C(script) (the path to run, or null), C(login_path), C(projects_path) (null when skipped),
      C(frontend_service) and C(frontend_url) (null when skipped), C(database) (bool),
      C(checklist_endpoints) and C(perf_endpoints) (names among C(auth_login), C(api_projects),
      C(frontend)), C(skipped) (one line per skipped check) and C(problems) (one line per explicit
      setting that cannot be honoured).
  type: dict
  sample:
    script: null
    skipped:
      - "P1 script: skipped, no /srv/shop/ops/validate_p1.sh; set validate_script to run one"
      - "frontend: skipped, no service named frontend in stack_services; set validate_frontend_service"
"""

DEFAULT_LOGIN_PATH = '/api/v1/auth/login'
DEFAULT_PROJECTS_PATH = '/api/v1/projects'
DEFAULT_FRONTEND = 'frontend'


def _given(value):
    return value is not None and value != ''


def _script(s, out):
    if not s.get('script_enabled', True):
        out['skipped'].append('P1 script: skipped, validate_script_enabled is false')
        return
    explicit = _given(s.get('script'))
    path = s.get('script') if explicit else s.get('script_default')
    if s.get('script_exists'):
        out['script'] = path
    elif explicit:
        out['problems'].append('validate_script=%s - no such file on the target host; set validate_script to the '
                               'validation script, or validate_script_enabled to false' % path)
    else:
        out['skipped'].append('P1 script: skipped, no %s; set validate_script to run a validation script' % path)


def _api(s, out, key, name, label, default_path, secret):
    path = s.get(key)
    explicit = _given(path)
    if s.get(secret + '_set'):
        out[key] = path if explicit else default_path
        out['checklist_endpoints'].append(name)
    elif explicit:
        out['problems'].append('validate_%s=%s - stack_%s is empty; set stack_%s (from Vault or an AWX credential) '
                               'to check the %s' % (key, path, secret, secret, label))
    else:
        out['skipped'].append('%s: skipped, stack_%s is not set; set it (and validate_%s) to check the %s'
                              % (label, secret, key, label))


def _frontend(s, out):
    explicit = _given(s.get('frontend_service'))
    name = s.get('frontend_service') if explicit else DEFAULT_FRONTEND
    services = [svc for svc in s.get('services') or [] if isinstance(svc, dict)]
    names = [svc.get('name') for svc in services]
    match = [svc for svc in services if svc.get('name') == name]
    url = (match[0].get('health_url') or None) if match else None
    if url:
        out['frontend_service'], out['frontend_url'] = name, url
        out['checklist_endpoints'].append('frontend')
    elif explicit:
        why = ('service %s has no health_url; give it one in stack_services, or set validate_frontend_service '
               'to another service' % name) if match else \
            ('no service named %s in stack_services (%s); set validate_frontend_service to one of them'
             % (name, ', '.join(str(n) for n in names) or 'none'))
        out['problems'].append('validate_frontend_service=%s - %s' % (name, why))
    elif match:
        out['skipped'].append('frontend: skipped, service %s has no health_url; give it one, or set '
                              'validate_frontend_service' % name)
    else:
        out['skipped'].append('frontend: skipped, no service named %s in stack_services; set '
                              'validate_frontend_service' % name)


def _database(s, out):
    check = s.get('database_check')
    db = s.get('db_service')
    known = s.get('compose_services')
    if check is False:
        out['skipped'].append('database: skipped, validate_database_check is false')
        return
    if known is None or db in known:
        # Unknown services: pg_isready runs and its answer says what is wrong.
        out['database'] = True
    elif check:
        out['problems'].append('validate_database_check=true - stack_db_service=%s is not a service of the compose '
                               'project (%s); set stack_db_service, or validate_database_check to false'
                               % (db, ', '.join(known) or 'none'))
    else:
        out['skipped'].append('database: skipped, no service named %s in the compose project; set stack_db_service'
                              % db)


def validation_plan(settings):
    s = settings if isinstance(settings, dict) else {}
    out = dict(script=None, login_path=None, projects_path=None, frontend_service=None, frontend_url=None,
               database=False, checklist_endpoints=[], perf_endpoints=[], skipped=[], problems=[])
    _script(s, out)
    if s.get('checklist_enabled', True) or s.get('perf_enabled', True):
        _api(s, out, 'login_path', 'auth_login', 'login', DEFAULT_LOGIN_PATH, 'admin_password')
        _api(s, out, 'projects_path', 'api_projects', 'projects API', DEFAULT_PROJECTS_PATH, 'api_key')
        _frontend(s, out)
    endpoints = out['checklist_endpoints']
    if s.get('perf_enabled', True):
        out['perf_endpoints'] = list(endpoints)
        if not endpoints:
            out['skipped'].append('performance: skipped, none of login, projects API, frontend is checked')
    else:
        out['skipped'].append('performance: skipped, validate_perf_enabled is false')
    if s.get('checklist_enabled', True):
        _database(s, out)
    else:
        out['checklist_endpoints'] = []
        out['skipped'].append('checklist: skipped, validate_checklist_enabled is false')
    return out


class FilterModule(object):
    def filters(self):
        return {'validation_plan': validation_plan}
