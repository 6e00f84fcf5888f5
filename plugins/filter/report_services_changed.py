# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: report_services_changed
short_description: Names of what a rollback changed
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Every service whose running image differs between the before- and after-snapshot (a
    rollback that failed half-way may not have recorded its changes), then every service or
    component named by a change entry, each once.
  - A change entry is named by its C(service), else its C(component), else V(unnamed).
options:
  _input:
    description: The state rows (P(taylordash.rollback.report_state_rows#filter)).
    type: list
    elements: dict
    required: true
  changes:
    description: The effective changes (P(taylordash.rollback.report_effective_changes#filter)).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Name what changed
  ansible.builtin.debug:
    msg: >-
      {{ stack_snapshot | taylordash.rollback.report_state_rows(immediate_after)
         | taylordash.rollback.report_services_changed(immediate_changes | taylordash.rollback.report_effective_changes) }}
"""

RETURN = r"""
_value:
  description: Service and component names, in order of appearance, each once.
  type: list
  elements: str
"""


def change_name(change):
    return change.get('service') or change.get('component') or 'unnamed'


def report_services_changed(rows, changes=None):
    names = []
    for row in rows or []:
        if row.get('kind') == 'image' and row.get('changed') and row.get('name') not in names:
            names.append(row.get('name'))
    for change in changes or []:
        name = change_name(change)
        if name not in names:
            names.append(name)
    return names


class FilterModule(object):
    def filters(self):
        return {'report_services_changed': report_services_changed}
