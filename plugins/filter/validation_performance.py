# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: validation_performance
short_description: The response-time figures of each endpoint, from a latency measurement
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - One item per endpoint that M(taylordash.rollback.http_latency) measured, with its p50, p95
    and slowest latency, its target and whether it met it.
  - A measurement that did not run or failed before measuring gives an empty list.
options:
  _input:
    description: The registered result of the M(taylordash.rollback.http_latency) task.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Collect the response times
  ansible.builtin.set_fact:
    performance: "{{ latency_result | taylordash.rollback.validation_performance }}"
"""

RETURN = r"""
_value:
  description:
    - The items, each with C(endpoint), C(url), C(passed), C(samples), C(errors), C(p50), C(p95),
      C(max) (seconds), C(target) (the p95 target, seconds) and C(summary) (one line).
  type: list
  elements: dict
"""


def validation_performance(result):
    if not isinstance(result, dict):
        return []
    out = []
    for ep in result.get('endpoints') or []:
        latency = ep.get('latency') or {}
        out.append(dict(endpoint=ep.get('name'), url=ep.get('url'), passed=ep.get('passed'),
                        samples=ep.get('samples'), errors=ep.get('errors'), p50=latency.get('p50'),
                        p95=latency.get('p95'), max=latency.get('max'), target=ep.get('max_p95'),
                        summary=ep.get('summary')))
    return out


class FilterModule(object):
    def filters(self):
        return {'validation_performance': validation_performance}
