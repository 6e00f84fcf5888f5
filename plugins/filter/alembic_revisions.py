# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: alembic_revisions
short_description: The revisions that C(alembic current) printed
version_added: 0.2.0
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

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

# "0004 (head)", "0003", "ae1027a6acf (effective head)"
REVISION_RE = re.compile(r'^([0-9A-Za-z_]+)( \(.*\))?\s*$')
# "-- Running downgrade 0004 -> 0003"; nothing after the arrow when the step goes to base.
STEP_RE = re.compile(r'^-- Running downgrade (\S+) -> ?(\S*)\s*$')


def _lines(output, name):
    if output is None:
        return []
    if isinstance(output, (list, tuple)):
        return [to_text(line) for line in output]
    if isinstance(output, str):
        return output.splitlines()
    raise AnsibleFilterError('%s expects the output lines of alembic, got %r' % (name, type(output).__name__))


def alembic_revisions(output):
    revisions = []
    for line in _lines(output, 'alembic_revisions'):
        match = REVISION_RE.match(line)
        if match:
            revisions.append(match.group(1))
    return revisions


def alembic_downgrade_plan(output, start=None):
    """The steps of ``alembic downgrade --sql`` and the revision it ends at.

    Returns {'steps': [{'from': .., 'to': ..}], 'ends_at': revision}; 'to' and 'ends_at' are
    'base' for the step below the first revision; with no step 'ends_at' is ``start``."""
    steps = []
    for line in _lines(output, 'alembic_downgrade_plan'):
        match = STEP_RE.match(line)
        if match:
            steps.append({'from': match.group(1), 'to': match.group(2) or 'base'})
    return {'steps': steps, 'ends_at': steps[-1]['to'] if steps else start}


class FilterModule(object):
    def filters(self):
        return {'alembic_revisions': alembic_revisions, 'alembic_downgrade_plan': alembic_downgrade_plan}
