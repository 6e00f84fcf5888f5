# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: validation_checklist
short_description: The runbook's manual checklist, from the requests and pg_isready that checked it
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - One item per endpoint that M(taylordash.rollback.http_latency) checked (login, projects API,
    frontend), then one for C(pg_isready) in the database service.
  - A passed endpoint says its HTTP status, that a session token was issued (login), how many
    projects came back (projects API) and how long the slowest request took; a failed one says
    its last error or its problems.
  - When the HTTP checks did not run at all (the module failed before checking), one item
    C(http_checks) fails with the module's message.
options:
  _input:
    description: The registered result of the M(taylordash.rollback.http_latency) task.
    type: dict
    required: true
  database:
    description: The registered result of the C(pg_isready) task (C(rc), C(stdout), C(stderr)).
    type: dict
    required: true
  descriptions:
    description: The runbook's wording of each item, by name (C(auth_login), C(api_projects), C(frontend), C(database)).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Collect the checklist
  ansible.builtin.set_fact:
    checklist: "{{ http_result | taylordash.rollback.validation_checklist(pg_isready_result, {'database': 'Database responsive'}) }}"
"""

RETURN = r"""
_value:
  description: The items, each with C(name), C(description), C(passed) and C(detail).
  type: list
  elements: dict
"""

import re


def _http_detail(ep):
    if not ep.get('passed'):
        return ep.get('last_error') or '; '.join(str(p) for p in ep.get('problems') or [])
    statuses = list((ep.get('statuses') or {}).keys())
    detail = 'HTTP %s' % (statuses[0] if statuses else '?')
    if ep.get('name') == 'auth_login':
        detail += ', session token issued'
    if ep.get('name') == 'api_projects':
        detail += ', %s projects' % ep.get('json_length')
    return detail + ' (%.3f s)' % float((ep.get('latency') or {}).get('max') or 0)


def _http_items(result, descriptions):
    if not isinstance(result.get('endpoints'), list):
        return [dict(name='http_checks', description='Login, API and frontend checks', passed=False,
                     detail=result.get('msg', 'did not run'))]
    return [dict(name=ep.get('name'), description=descriptions.get(ep.get('name'), ep.get('name')),
                 passed=ep.get('passed'), detail=_http_detail(ep))
            for ep in result['endpoints']]


def _database_item(result, descriptions):
    text = ('%s\n%s' % (result.get('stdout', ''), result.get('stderr', ''))).strip()
    last = text.split('\n')[-1]
    # pg_isready prints "<host>:<port> - accepting connections": keep the verdict.
    detail = re.sub(r'^\S+ - ', '', last, count=1) if last else result.get('msg', 'pg_isready gave no answer')
    return dict(name='database', description=descriptions.get('database', 'database'),
                passed=result.get('rc', -1) == 0, detail=detail)


def validation_checklist(http_result, database, descriptions=None):
    descriptions = descriptions or {}
    return (_http_items(http_result if isinstance(http_result, dict) else {}, descriptions)
            + [_database_item(database if isinstance(database, dict) else {}, descriptions)])


class FilterModule(object):
    def filters(self):
        return {'validation_checklist': validation_checklist}
