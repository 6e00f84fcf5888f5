# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: setting_problems
short_description: The broken rules of a role's settings, each with the variable and its value
version_added: 0.2.0
author: TaylorDash operations team (@taylordash)
description:
  - Checks settings against rules that role argument specs cannot express (ranges, finite
    numbers, patterns, a value among a list known only at run time) and returns one message per
    broken rule. A role's preflight fails with them before its first change.
  - Numbers are finite (no NaN, no infinity) wherever a range is given.
options:
  _input:
    description: The settings, variable name to value.
    type: dict
    required: true
  rules:
    description:
      - Variable name to its rule, a dict of
        C(type) (V(float) or V(int), when the value must be a number),
        C(min) and C(max) (inclusive bounds),
        C(above) (an exclusive lower bound, for example V(0) for a timeout),
        C(nonempty) (true when an empty string or list is not allowed),
        C(pattern) (a regular expression the whole string must match, with C(hint) saying in words what it allows),
        C(choices) (the allowed values),
        C(each) (the value is a list of dicts; the rule applies to the key C(each) of every item, whose
        value may be V(null) when C(null_ok) is true).
      - A setting without a rule is not checked; a rule whose setting is missing is skipped.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check the validation settings before anything runs
  ansible.builtin.fail:
    msg: "Invalid validation settings: {{ __problems | join('; ') }}"
  vars:
    __problems: >-
      {{ {'validate_min_pass_rate': validate_min_pass_rate, 'validate_perf_samples': validate_perf_samples}
         | taylordash.rollback.setting_problems({'validate_min_pass_rate': {'type': 'float', 'min': 0, 'max': 100},
                                                 'validate_perf_samples': {'type': 'int', 'min': 1}}) }}
  when: __problems | length > 0
"""

RETURN = r"""
_value:
  description: One message per broken rule, in the order of the settings; empty when all hold.
  type: list
  elements: str
  sample:
    - "validate_min_pass_rate must be a finite number from 0 to 100 (is 150.0)"
"""

import math
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types

_NUMBER_WORD = {'float': 'a finite number', 'int': 'a whole number'}


def _shown(value):
    text = repr(value) if isinstance(value, string_types) else to_text(value)
    return text if len(text) <= 80 else text[:77] + '...'


def _number(value, kind):
    if isinstance(value, bool):
        return None
    try:
        if kind == 'int':
            if isinstance(value, float):
                return int(value) if value.is_integer() else None
            return int(to_text(value).strip())
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _range_words(rule):
    parts = []
    if 'above' in rule:
        parts.append('more than %s' % rule['above'])
    if 'min' in rule and 'max' in rule:
        return 'from %s to %s' % (rule['min'], rule['max'])
    if 'min' in rule:
        parts.append('at least %s' % rule['min'])
    if 'max' in rule:
        parts.append('at most %s' % rule['max'])
    return ' and '.join(parts)


def _check_number(name, value, rule):
    kind = rule['type']
    number = _number(value, kind)
    words = ' '.join(w for w in (_NUMBER_WORD.get(kind, 'a finite number'), _range_words(rule)) if w)
    if number is None or (('above' in rule and not number > rule['above']) or ('min' in rule and number < rule['min'])
            or ('max' in rule and number > rule['max'])):
        return '%s must be %s (is %s)' % (name, words, _shown(value))
    return None


def _check_one(name, value, rule):
    if value is None and rule.get('null_ok'):
        return None
    if rule.get('type') in ('float', 'int'):
        return _check_number(name, value, rule)
    if rule.get('nonempty') and (value is None or (hasattr(value, '__len__') and len(value) == 0)):
        return '%s must not be empty (is %s)' % (name, _shown(value))
    if 'choices' in rule and value not in rule['choices']:
        return '%s must be one of %s (is %s)' % (name, ', '.join(to_text(c) for c in rule['choices']) or 'nothing',
                                                _shown(value))
    if 'pattern' in rule and value not in (None, ''):
        if not isinstance(value, string_types) or not re.match('(?:%s)\\Z' % rule['pattern'], value):
            return '%s must be %s (is %s)' % (name, rule.get('hint', 'like %s' % rule['pattern']), _shown(value))
    return None


def setting_problems(settings, rules):
    if not isinstance(settings, dict) or not isinstance(rules, dict):
        raise AnsibleFilterError('setting_problems expects a dict of settings and a dict of rules')
    problems = []
    for name, value in settings.items():
        rule = rules.get(name)
        if not rule:
            continue
        if 'each' in rule:
            key = rule['each']
            for index, item in enumerate(value or []):
                item_value = item.get(key) if isinstance(item, dict) else None
                problem = _check_one('%s[%d].%s' % (name, index, key), item_value, rule)
                if problem:
                    problems.append(problem)
            continue
        problem = _check_one(name, value, rule)
        if problem:
            problems.append(problem)
    return problems


class FilterModule(object):
    def filters(self):
        return {'setting_problems': setting_problems}
