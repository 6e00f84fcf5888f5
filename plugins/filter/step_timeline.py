# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: step_timeline
short_description: How long each runbook step took, from the results its tasks registered
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Takes the steps of a rollback in the order they ran, each a name and the result its task
    registered, and returns each step's duration and status.
  - Modules of this collection stamp their results with C(timing) (start, end, seconds); a loop
    registers one stamp per item. A step ends when its last stamp ends. A step whose module does
    not stamp (for example C(community.docker.docker_compose_v2)) ends when the next stamped
    step starts, so Ansible's own time between tasks is counted where it was spent.
  - The first step starts at O(started_at), normally C(stack_started_at) of the stack role.
options:
  _input:
    description: The steps, in order, each a two-item list C([name, registered_result]).
    type: list
    elements: list
    required: true
  started_at:
    description: ISO 8601 time the first step started.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Summarise the steps
  ansible.builtin.debug:
    msg: "{{ [['retag images', immediate_retag], ['poll health', immediate_health]]
             | taylordash.rollback.step_timeline(stack_started_at) }}"
"""

RETURN = r"""
_value:
  description:
    - One item per step, in order, with C(step) (the name), C(seconds) (float, 3 decimals, or
      null when it cannot be known) and C(status).
    - C(status) is V(ok), V(failed), V(skipped) (the task's condition was false), or V(not run)
      (the step never started, for example because an earlier one failed).
  type: list
  elements: dict
"""

import datetime

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native


def _epoch(text):
    if not text:
        return None
    value = to_native(text)
    if value.endswith('Z'):
        value = value[:-1] + '+00:00'
    try:
        stamp = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise AnsibleFilterError('step_timeline: %r is not an ISO 8601 time' % (text,))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def _items(result):
    if not isinstance(result, dict):
        return []
    if isinstance(result.get('results'), list):
        return [item for item in result['results'] if isinstance(item, dict)]
    return [result]


def _status(result):
    if not isinstance(result, dict) or not result:
        return 'not run'
    items = _items(result)
    if result.get('failed') or any(item.get('failed') for item in items):
        return 'failed'
    if result.get('skipped') or (items and all(item.get('skipped') for item in items)):
        return 'skipped'
    return 'ok'


def _bounds(result):
    starts, ends = [], []
    for item in _items(result):
        timing = item.get('timing')
        if isinstance(timing, dict):
            start, end = _epoch(timing.get('start')), _epoch(timing.get('end'))
            if start is not None:
                starts.append(start)
            if end is not None:
                ends.append(end)
    return (min(starts) if starts else None), (max(ends) if ends else None)


def step_timeline(steps, started_at):
    if not isinstance(steps, (list, tuple)):
        raise AnsibleFilterError('step_timeline expects a list of [name, result] pairs')
    pairs = []
    for step in steps:
        if not isinstance(step, (list, tuple)) or len(step) != 2:
            raise AnsibleFilterError('step_timeline: each step must be [name, result], got %r' % (step,))
        pairs.append((to_native(step[0]), step[1]))
    bounds = [_bounds(result) for dummy, result in pairs]
    statuses = [_status(result) for dummy, result in pairs]
    timeline = []
    previous_end = _epoch(started_at)
    for index, (name, dummy) in enumerate(pairs):
        status = statuses[index]
        end = bounds[index][1]
        if end is None and status in ('ok', 'failed'):
            # Unstamped: it ended when the next step that ran began.
            for later in range(index + 1, len(pairs)):
                if bounds[later][0] is not None:
                    end = bounds[later][0]
                    break
        seconds = None
        if status in ('skipped', 'not run'):
            seconds = 0.0 if status == 'skipped' else None
        elif end is not None and previous_end is not None:
            seconds = round(max(0.0, end - previous_end), 3)
        if end is not None:
            previous_end = end
        timeline.append(dict(step=name, seconds=seconds, status=status))
    return timeline


class FilterModule(object):
    def filters(self):
        return {'step_timeline': step_timeline}
