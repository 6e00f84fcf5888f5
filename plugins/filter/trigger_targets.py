# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: trigger_targets
short_description: The targets of taylordash.rollback.rollback_trigger, from the stack model
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - From the stack's services (C(stack_services)) and API settings, builds the O(_input) of
    M(taylordash.rollback.rollback_trigger)'s C(targets) - one health target per service with a
    C(health_url), and the request targets of the validate role's response-time check - login
    (C(auth_login), when O(admin_password) is set), the projects API (C(api_projects), when
    O(api_key_set)) and the frontend (C(frontend), the service named O(frontend_service) with a
    C(health_url)).
  - Returns C(targets) and C(skipped), one line per request target the stack lacks, with the
    variable that turns it on.
  - Used by the roles C(taylordash.rollback.baseline) and C(taylordash.rollback.watchdog).
options:
  _input:
    description: The stack's services (C(stack_services)), each with C(name) and an optional C(health_url).
    type: list
    elements: dict
    required: true
  api_url:
    description: The API's base URL (C(stack_api_url)).
    type: str
  login_path:
    description: The login path under O(api_url).
    type: str
    default: /api/v1/auth/login
  projects_path:
    description: The projects API path under O(api_url).
    type: str
    default: /api/v1/projects
  admin_username:
    description: The login's user name.
    type: str
    default: admin
  admin_password:
    description: The login's password; it goes into the login target's body only.
    type: str
  api_key_set:
    description: Whether an API key is set (the projects target sends it with C(use_api_key)).
    type: bool
    default: false
  frontend_service:
    description: The service whose C(health_url) is the frontend.
    type: str
    default: frontend
  health:
    description: Add the health targets.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Sample the stack
  taylordash.rollback.rollback_trigger:
    targets: "{{ (stack_services | taylordash.rollback.trigger_targets(api_url=stack_api_url, admin_password=stack_admin_password,
                  api_key_set=stack_api_key | length > 0)).targets }}"
    api_key: "{{ stack_api_key }}"
"""

RETURN = r"""
_value:
  description: C(targets) (a list for rollback_trigger) and C(skipped) (a list of lines).
  type: dict
"""

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.taylordash.rollback.plugins.module_utils._trigger import make_baseline


def trigger_targets(services, api_url=None, login_path='/api/v1/auth/login', projects_path='/api/v1/projects',
                    admin_username='admin', admin_password=None, api_key_set=False, frontend_service='frontend',
                    health=True):
    if not isinstance(services, list):
        raise AnsibleFilterError('trigger_targets expects the list of stack_services')
    targets = []
    skipped = []
    frontend = None
    for service in services:
        if not isinstance(service, dict) or not service.get('name'):
            raise AnsibleFilterError('trigger_targets: every service of stack_services needs a name')
        url = service.get('health_url')
        if url and health:
            targets.append(dict(name='%s_health' % service['name'], url=url, kind='health'))
        if service['name'] == frontend_service and url:
            frontend = url
    base = (api_url or '').rstrip('/')
    if not base:
        skipped.append('auth_login, api_projects: no stack_api_url')
    else:
        if admin_password:
            targets.append(dict(name='auth_login', url=base + login_path, kind='request', method='POST',
                                headers={'Content-Type': 'application/json'},
                                body=json.dumps({'username': admin_username, 'password': admin_password})))
        else:
            skipped.append('auth_login: no stack_admin_password set')
        if api_key_set:
            targets.append(dict(name='api_projects', url=base + projects_path, kind='request', use_api_key=True))
        else:
            skipped.append('api_projects: no stack_api_key set')
    if frontend:
        targets.append(dict(name='frontend', url=frontend, kind='request'))
    else:
        skipped.append('frontend: no service named %s with a health_url in stack_services' % frontend_service)
    return dict(targets=targets, skipped=skipped)


def trigger_baseline(figures, images=None, stack=None, skipped=None):
    """The baseline document of one sampling (rollback_trigger's figures): see _trigger.make_baseline."""
    if not isinstance(figures, dict):
        raise AnsibleFilterError('trigger_baseline expects the figures of rollback_trigger')
    doc = make_baseline(figures, images=dict(images or {}), stack=stack)
    doc['skipped'] = list(skipped or [])
    return doc


class FilterModule(object):
    def filters(self):
        return {'trigger_targets': trigger_targets, 'trigger_baseline': trigger_baseline}
