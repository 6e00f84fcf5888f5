# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: add_failure
short_description: Add a failure to a run's failures, keeping the first one as the cause
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - A run's failures in the order they happened; the first is the cause, later ones (cleanup,
    restart, lock release) are added after it and never replace it.
  - The failure is a message, or a failed task's result (C(ansible_failed_result)) with its
    task (C(ansible_failed_task)); a result becomes its task's name, a colon and its message, and a failed loop names
    what failed in each item instead of Ansible's "One or more items failed".
  - A failure already in the list is not added again - for example a role's rescue that fails
    again with the message of the failure it caught, or a role's first failure the playbook
    added before.
  - Empty messages are ignored.
options:
  _input:
    description: The failures so far (an empty list at first).
    type: list
    elements: str
    required: true
  failure:
    description: A message, or a failed task's result.
    type: raw
    required: true
  task:
    description: The failed task (C(ansible_failed_task)), or its name; names a result's message.
    type: raw
"""

EXAMPLES = r"""
- name: Record why the rollback failed
  ansible.builtin.set_fact:
    rollback_failures: >-
      {{ rollback_failures | default([])
         | taylordash.rollback.add_failure(ansible_failed_result, ansible_failed_task) }}
"""

RETURN = r"""
_value:
  description: The failures, the new one last unless it was empty or already there.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text


def _squash(text):
    return ' '.join(to_text(text).split())


def _result_message(result):
    items = result.get('results')
    if isinstance(items, list):
        msgs = [_squash(item.get('msg', 'failed')) for item in items
                if isinstance(item, dict) and item.get('failed')]
        if msgs:
            return '; '.join(msgs)
    return _squash(result.get('msg') or 'failed')


def _task_name(task):
    if task is None:
        return ''
    if isinstance(task, dict):
        return to_text(task.get('name') or '')
    name = getattr(task, 'name', None)
    return to_text(name if name is not None else task)


def failure_message(failure, task=None):
    """`<task>: <msg>` for a result, the squashed text for a message."""
    if isinstance(failure, dict):
        msg = _result_message(failure)
        return '%s: %s' % (_task_name(task) or 'a task', msg)
    return _squash(failure) if failure is not None else ''


def _already_there(new, failures, bare):
    for old in failures:
        old = _squash(old)
        if new == old or bare == old or old.endswith(': ' + bare) or (bare and bare.endswith(old)):
            return True
    return False


def add_failure(failures, failure, task=None):
    if failures is None:
        failures = []
    if not isinstance(failures, (list, tuple)):
        raise AnsibleFilterError('add_failure expects the failures so far as a list, got %s' % type(failures).__name__)
    new = failure_message(failure, task)
    bare = _result_message(failure) if isinstance(failure, dict) else new
    if not new or _already_there(new, failures, bare):
        return list(failures)
    return list(failures) + [new]


class FilterModule(object):
    def filters(self):
        return {'add_failure': add_failure}
