# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: report_validation
short_description: The report's "Validation Results", from the validate role's results
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Turns C(validate_results) of the validate role into the runbook's four boxes (health check,
    performance, authentication, user acceptance) and the figures behind them.
  - When the validation did not run (an empty dict), every box is unticked and says so.
  - User acceptance is never automated; its box stays unticked for the service owner.
options:
  _input:
    description: C(validate_results) of the validate role, or an empty dict.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the validation boxes
  ansible.builtin.debug:
    msg: "{{ validate_results | default({}) | taylordash.rollback.report_validation }}"
"""

RETURN = r"""
_value:
  description:
    - C(ran), C(passed), C(pass_rate), C(min_pass_rate), C(checks_passed), C(checks_total),
      C(failed_checks), C(health_check_passed) and C(health_check_detail),
      C(performance_restored) and C(performance_detail), C(authentication_functional) and
      C(authentication_detail), C(user_acceptance_verified) and C(user_acceptance_detail),
      C(checklist), C(performance), C(failures), C(started_at) and C(duration) (when the validation
      started, ISO 8601 UTC, and how many seconds it took).
  type: dict
"""

_UAT = 'not automated - to be confirmed by the service owner'
_NOT_RUN = 'validation did not run'


def _not_run():
    return dict(ran=False, passed=None, pass_rate=None, min_pass_rate=None, checks_passed=None,
                checks_total=None, failed_checks=[],
                health_check_passed=None, health_check_detail=_NOT_RUN,
                performance_restored=None, performance_detail=_NOT_RUN,
                authentication_functional=None, authentication_detail=_NOT_RUN,
                user_acceptance_verified=False, user_acceptance_detail=_UAT,
                checklist=[], performance=[], failures=[], started_at=None, duration=None)


def report_validation(results):
    v = results if isinstance(results, dict) else {}
    if 'passed' not in v:
        return _not_run()
    perf = v.get('performance', []) or []
    checklist = v.get('checklist', []) or []
    login = [item for item in checklist if item.get('name') == 'auth_login']
    return dict(
        ran=True, passed=v['passed'],
        pass_rate=v.get('pass_rate'), min_pass_rate=v.get('min_pass_rate'),
        checks_passed=v.get('checks_passed'), checks_total=v.get('checks_total'),
        failed_checks=v.get('failed_checks', []),
        health_check_passed=v.get('health_passed'),
        health_check_detail=(v.get('script') or {}).get('msg', 'not run'),
        performance_restored=v.get('performance_passed'),
        performance_detail='; '.join(str(p.get('summary')) for p in perf) or 'not measured',
        authentication_functional=v.get('auth_passed'),
        authentication_detail=login[0].get('detail') if login else 'not checked',
        user_acceptance_verified=False, user_acceptance_detail=_UAT,
        checklist=checklist, performance=perf,
        failures=v.get('failures', []), started_at=v.get('started_at'),
        duration=v.get('duration'))


class FilterModule(object):
    def filters(self):
        return {'report_validation': report_validation}
