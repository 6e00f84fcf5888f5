# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: validation_lines
short_description: A post-rollback validation's results as lines for the operator
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - The verdict and duration, the P1 script's message (when it ran), each checklist item and
    each endpoint's response times, one line each.
options:
  _input:
    description: C(validate_results) of the validate role.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the validation results
  ansible.builtin.debug:
    msg: "{{ validate_results | taylordash.rollback.validation_lines }}"
"""

RETURN = r"""
_value:
  description: The lines.
  type: list
  elements: str
  sample:
    - Validation PASSED in 3.412 s
    - "validate_p1: 9/9 checks passed (100.0%)"
    - "checklist database: ok - accepting connections"
"""

from ansible.module_utils.common.text.converters import to_text


def validation_lines(results):
    r = results if isinstance(results, dict) else {}
    lines = ['Validation %s in %s s' % ('PASSED' if r.get('passed') else 'FAILED', to_text(r.get('duration')))]
    script = r.get('script') or {}
    if script.get('enabled'):
        lines.append('validate_p1: %s' % script.get('msg'))
    for item in r.get('checklist') or []:
        lines.append('checklist %s: %s - %s' % (item.get('name'), 'ok' if item.get('passed') else 'FAILED',
                                                item.get('detail')))
    for item in r.get('performance') or []:
        lines.append('performance %s%s' % ('ok ' if item.get('passed') else 'FAILED ', item.get('summary')))
    return lines


class FilterModule(object):
    def filters(self):
        return {'validation_lines': validation_lines}
