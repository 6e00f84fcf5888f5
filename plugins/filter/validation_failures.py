# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: validation_failures
short_description: Every failed check of a post-rollback validation, one line each
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - The P1 script's failure first, then each failed checklist item, then each endpoint that
    missed its response-time target.
  - When the response times were to be measured and no endpoint was measured, one line says why.
options:
  _input:
    description: The registered result of the M(taylordash.rollback.validate_p1) task (skipped when the script is off).
    type: dict
    required: true
  checklist:
    description: The checklist items (P(taylordash.rollback.validation_checklist#filter)).
    type: list
    elements: dict
    default: []
  performance:
    description: The response-time items (P(taylordash.rollback.validation_performance#filter)).
    type: list
    elements: dict
    default: []
  performance_result:
    description: The registered result of the measurement, for its message when nothing was measured.
    type: dict
    default: {}
  performance_enabled:
    description: Whether response times were to be measured.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: List what failed
  ansible.builtin.debug:
    msg: "{{ p1_result | taylordash.rollback.validation_failures(checklist, performance, latency_result, true) }}"
"""

RETURN = r"""
_value:
  description: One line per failure; empty when everything passed.
  type: list
  elements: str
  sample:
    - "validate_p1: pass rate below the minimum 89%: 6/9 checks passed (66.7%); failed: backend_health, nginx_tls, database"
    - "checklist database: no response"
"""


def validation_failures(script_result, checklist=None, performance=None, performance_result=None,
                        performance_enabled=True):
    failures = []
    script_result = script_result if isinstance(script_result, dict) else {}
    if script_result.get('failed') and not script_result.get('skipped'):
        failures.append('validate_p1: %s' % script_result.get('msg', 'failed'))
    for item in checklist or []:
        if not item.get('passed'):
            failures.append('checklist %s: %s' % (item.get('name'), item.get('detail')))
    if performance_enabled:
        performance = performance or []
        for item in performance:
            if not item.get('passed'):
                failures.append('performance %s' % item.get('summary'))
        if not performance:
            failures.append('performance: %s' % (performance_result or {}).get('msg', 'not measured'))
    return failures


class FilterModule(object):
    def filters(self):
        return {'validation_failures': validation_failures}
