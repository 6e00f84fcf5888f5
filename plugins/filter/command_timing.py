# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: command_timing
short_description: Stamp the result of a command task with the C(timing) the modules of this collection return
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - C(ansible.builtin.command) returns C(start) and C(end) as local times of the managed host
    (V(2026-11-25 10:00:01.123456)). This filter returns a copy of the result with C(timing)
    (C(start), C(end) in ISO 8601 with the UTC offset, and C(seconds)), the form the modules of
    this collection return, so C(taylordash.rollback.step_timeline) can time the step.
  - The local times are read in the controller's time zone; the roles of this collection run
    their commands on the host they roll back, which is the controller or shares its clock.
  - A loop's C(results) are stamped item by item; results without C(start)/C(end) (skipped, not
    run) are returned as they are.
options:
  _input:
    description: A registered result of C(ansible.builtin.command) (or of a loop of it).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Time a command step
  ansible.builtin.debug:
    msg: "{{ [['stop writers', stop_result | taylordash.rollback.command_timing]]
             | taylordash.rollback.step_timeline(stack_started_at) }}"
"""

RETURN = r"""
_value:
  description: The result, with C(timing) added when it has C(start) and C(end).
  type: dict
"""

import datetime

from ansible.module_utils.common.text.converters import to_native

FORMAT = '%Y-%m-%d %H:%M:%S.%f'


def _stamp(result):
    if not isinstance(result, dict) or 'timing' in result:
        return result
    try:
        start = datetime.datetime.strptime(to_native(result['start']), FORMAT).astimezone()
        end = datetime.datetime.strptime(to_native(result['end']), FORMAT).astimezone()
    except (KeyError, TypeError, ValueError):
        return result
    stamped = dict(result)
    stamped['timing'] = dict(start=start.isoformat(), end=end.isoformat(),
                             seconds=round((end - start).total_seconds(), 3))
    return stamped


def command_timing(result):
    if isinstance(result, dict) and isinstance(result.get('results'), list):
        stamped = dict(result)
        stamped['results'] = [_stamp(item) for item in result['results']]
        return stamped
    return _stamp(result)


class FilterModule(object):
    def filters(self):
        return {'command_timing': command_timing}
