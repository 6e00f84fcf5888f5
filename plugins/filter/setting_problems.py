# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: setting_problems
short_description: The settings of a role that break their rule, each named with its value
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - The roles of this collection check every setting before their first change. Argument specs
    check types and choices; this filter checks what they cannot - finite numbers, positive
    timeouts, ranges, formats, a value among a list known only at run time.
  - Takes a mapping of variable name to a two-item list C([value, rule]) and returns one message
    per variable whose value breaks its rule, in the order given; an empty list when all are good.
  - "A rule is a name: V(seconds) (a finite number above 0), V(seconds or zero) (finite, 0 or more),
    V(optional seconds) (null, or a finite number above 0), V(count) (a whole number, 1 or more),
    V(count or zero) (a whole number, 0 or more), V(port) (a whole number from 1 to 65535),
    V(text) (a non-empty string), V(tag) (a Docker image tag: letters, digits, C(_ . -), at most
    128 characters, not starting with C(.) or C(-)), V(optional tag) (null, empty or a tag),
    V(list) (a non-empty list)."
  - "Or a rule is a dict, for a range or a format: C(type) (V(float) or V(int): a finite number, or
    a whole number), C(min) and C(max) (inclusive bounds), C(above) (an exclusive lower bound),
    C(nonempty) (true: not an empty string or list), C(pattern) (a regular expression the whole
    string must match; an empty string or null is allowed) with C(hint) (what it allows, in words),
    C(choices) (the allowed values), C(null_ok) (true: null is allowed), and C(each) (the value is a
    list of dicts and the rule applies to the key C(each) of every item, named C(<variable>[<index>].<key>))."
  - Never give it a secret; the value is part of the message.
options:
  _input:
    description: Variable name to C([value, rule]).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check every setting before anything changes
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "Bad settings, nothing was changed: {{ __problems | join('; ') }}"
    quiet: true
  vars:
    __problems: >-
      {{ {'immediate_health_timeout': [immediate_health_timeout, 'seconds'],
          'immediate_health_successes': [immediate_health_successes, 'count'],
          'validate_min_pass_rate': [validate_min_pass_rate, {'type': 'float', 'min': 0, 'max': 100}]}
         | taylordash.rollback.setting_problems }}
"""

RETURN = r"""
_value:
  description:
    - One message per broken rule, such as C(immediate_health_timeout=-1.0 - must be a finite number of
      seconds above 0) or C(validate_min_pass_rate=150 - must be a finite number from 0 to 100).
  type: list
  elements: str
"""

import math
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types

TAG_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')


def _number(value):
    """The value as a float, or None when it is not a number (bool is not a number here)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return float('inf') if value > 0 else float('-inf')
    if isinstance(value, string_types):
        try:
            return float(value.strip())
        except (ValueError, OverflowError):
            return None
    return None


def _whole(value):
    number = _number(value)
    if number is None or not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def _seconds(value, zero_ok):
    number = _number(value)
    return number is not None and math.isfinite(number) and (number >= 0 if zero_ok else number > 0)


RULES = {
    'seconds': ('must be a finite number of seconds above 0', lambda v: _seconds(v, False)),
    'seconds or zero': ('must be a finite number of seconds, 0 or more', lambda v: _seconds(v, True)),
    'optional seconds': ('must be null or a finite number of seconds above 0',
                         lambda v: v is None or _seconds(v, False)),
    'count': ('must be a whole number, 1 or more', lambda v: _whole(v) is not None and _whole(v) >= 1),
    'count or zero': ('must be a whole number, 0 or more', lambda v: _whole(v) is not None and _whole(v) >= 0),
    'port': ('must be a port number from 1 to 65535', lambda v: _whole(v) is not None and 1 <= _whole(v) <= 65535),
    'text': ('must be a non-empty string', lambda v: isinstance(v, string_types) and bool(v.strip())),
    'tag': ('must be a Docker tag (letters, digits, _ . -, at most 128, not starting with . or -)',
            lambda v: isinstance(v, string_types) and bool(TAG_RE.match(v))),
    'optional tag': ('must be null, empty or a Docker tag (letters, digits, _ . -, at most 128, not starting with . or -)',
                     lambda v: v is None or v == '' or (isinstance(v, string_types) and bool(TAG_RE.match(v)))),
    'list': ('must be a non-empty list', lambda v: isinstance(v, (list, tuple)) and len(v) > 0),
}


def _shown(value):
    text = to_text(value if isinstance(value, string_types) else repr(value), errors='surrogate_or_replace')
    return text if len(text) <= 80 else text[:77] + '...'


def _range_words(rule):
    if 'min' in rule and 'max' in rule:
        return 'from %s to %s' % (rule['min'], rule['max'])
    parts = []
    if 'above' in rule:
        parts.append('more than %s' % rule['above'])
    if 'min' in rule:
        parts.append('at least %s' % rule['min'])
    if 'max' in rule:
        parts.append('at most %s' % rule['max'])
    return ' and '.join(parts)


def _number_problem(value, rule):
    """The message of a broken number rule (type float or int with bounds), or None."""
    number = _whole(value) if rule['type'] == 'int' else _number(value)
    words = ' '.join(w for w in ('a whole number' if rule['type'] == 'int' else 'a finite number',
                                 _range_words(rule)) if w)
    if (number is None or not math.isfinite(number) or ('above' in rule and not number > rule['above'])
            or ('min' in rule and number < rule['min']) or ('max' in rule and number > rule['max'])):
        return 'must be ' + words
    return None


def _dict_problem(value, rule):
    if value is None and rule.get('null_ok'):
        return None
    if rule.get('type') in ('float', 'int'):
        return _number_problem(value, rule)
    if rule.get('type') is not None:
        raise AnsibleFilterError('setting_problems: unknown type %r (known: float, int)' % (rule['type'],))
    if rule.get('nonempty') and (value is None or (hasattr(value, '__len__') and len(value) == 0)):
        return 'must not be empty'
    if 'choices' in rule and value not in rule['choices']:
        return 'must be one of %s' % (', '.join(to_text(c) for c in rule['choices']) or 'nothing (none is defined)')
    if 'pattern' in rule and value not in (None, ''):
        if not isinstance(value, string_types) or not re.match('(?:%s)\\Z' % rule['pattern'], value):
            return 'must be %s' % rule.get('hint', 'like %s' % rule['pattern'])
    return None


def _problems(name, value, rule):
    if isinstance(rule, dict):
        if 'each' in rule:
            key = rule['each']
            item_rule = dict((k, v) for k, v in rule.items() if k != 'each')
            out = []
            for index, item in enumerate(value if isinstance(value, (list, tuple)) else []):
                out.extend(_problems('%s[%d].%s' % (name, index, key), item.get(key) if isinstance(item, dict) else None,
                                     item_rule))
            return out
        message = _dict_problem(value, rule)
        return ['%s=%s - %s' % (name, _shown(value), message)] if message else []
    if rule not in RULES:
        raise AnsibleFilterError('setting_problems: unknown rule %r for %s (known: %s)'
                                 % (rule, name, ', '.join(sorted(RULES))))
    message, good = RULES[rule]
    return [] if good(value) else ['%s=%s - %s' % (name, _shown(value), message)]


def setting_problems(settings):
    if not isinstance(settings, dict):
        raise AnsibleFilterError('setting_problems expects a mapping of variable name to [value, rule]')
    problems = []
    for name, pair in settings.items():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise AnsibleFilterError('setting_problems: %s must map to [value, rule], got %r' % (name, pair))
        problems.extend(_problems(name, pair[0], pair[1]))
    return problems


class FilterModule(object):
    def filters(self):
        return {'setting_problems': setting_problems}
