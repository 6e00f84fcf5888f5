# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: report_effective_changes
short_description: The changes of a rollback that really happened
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Keeps the entries of a rollback's change list (one dict per service or component) that
    describe a change that happened.
  - An entry counts when its C(changed) is true; or, without C(changed), when it was
    C(recreated) or C(retagged) or its C(image_before) differs from its C(image_after); an entry
    with none of these keys always counts.
options:
  _input:
    description: The change entries, for example C(immediate_changes) of the immediate role.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Name the services that changed
  ansible.builtin.debug:
    msg: "{{ immediate_changes | taylordash.rollback.report_effective_changes | map(attribute='service') | list }}"
"""

RETURN = r"""
_value:
  description: The entries that count as a change, unchanged and in their order.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def _flag(value):
    try:
        return boolean(value, strict=False)
    except TypeError:
        return bool(value)


def is_effective(change):
    if 'changed' in change:
        return _flag(change['changed'])
    if 'recreated' in change or 'retagged' in change or ('image_before' in change and 'image_after' in change):
        return (_flag(change.get('recreated', False)) or _flag(change.get('retagged', False))
                or change.get('image_before') != change.get('image_after'))
    return True


def report_effective_changes(changes):
    if changes is None:
        return []
    if not isinstance(changes, (list, tuple)):
        raise AnsibleFilterError('report_effective_changes expects a list of dicts, got %s' % type(changes).__name__)
    return [c for c in changes if isinstance(c, dict) and is_effective(c)]


class FilterModule(object):
    def filters(self):
        return {'report_effective_changes': report_effective_changes}
