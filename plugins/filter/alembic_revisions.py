# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: alembic_revisions
short_description: The revisions that C(alembic current) printed
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Reads the lines of C(alembic current) (V(0004 (head\)), V(0003), V(ae1027a6acf (effective head\))) and returns
    the revision IDs, one per head the database is at; log lines and other noise are ignored.
  - The same file holds C(alembic_downgrade_plan), which reads the SQL of C(alembic downgrade --sql).
options:
  _input:
    description: The output lines of C(alembic current).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: The revision the database is at
  ansible.builtin.set_fact:
    revisions: "{{ alembic_current.stdout_lines | taylordash.rollback.alembic_revisions }}"
"""

RETURN = r"""
_value:
  description: Revision IDs, in the order printed; empty when the database has none.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

# The one parser of alembic's output, shared with the stack_info module.
from ansible_collections.taylordash.rollback.plugins.module_utils._alembic import (
    current_revisions,
    downgrade_steps,
)


def _text(output, name):
    if output is None:
        return ''
    if isinstance(output, (list, tuple)):
        return '\n'.join(to_text(line) for line in output)
    if isinstance(output, str):
        return output
    raise AnsibleFilterError('%s expects the output lines of alembic, got %r' % (name, type(output).__name__))


def alembic_revisions(output):
    return current_revisions(_text(output, 'alembic_revisions'))


def alembic_downgrade_plan(output, start=None):
    """The steps of ``alembic downgrade --sql`` and the revision it ends at.

    Returns {'steps': [{'from': .., 'to': ..}], 'ends_at': revision}; 'to' and 'ends_at' are
    'base' for the step below the first revision; with no step 'ends_at' is ``start``."""
    steps = [{'from': old, 'to': new} for old, new in downgrade_steps(_text(output, 'alembic_downgrade_plan'))]
    return {'steps': steps, 'ends_at': steps[-1]['to'] if steps else start}


class FilterModule(object):
    def filters(self):
        return {'alembic_revisions': alembic_revisions, 'alembic_downgrade_plan': alembic_downgrade_plan}
