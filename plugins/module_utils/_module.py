# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The AnsibleModule every module of this collection is built on.

It adds two things. Every result, success or failure, carries ``timing`` (``start``, ``end`` in
ISO 8601 UTC and ``seconds``). Roles hand their registered results to the
``taylordash.rollback.step_timeline`` filter to learn how long each runbook step took, instead
of recording a timestamp with a ``set_fact`` after every step. And a whole-number option
given ``inf`` or ``nan`` (a sub-option and a list element too) fails with a message instead of
ansible-core's OverflowError.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import decimal
import math
import time

from ansible.module_utils.basic import AnsibleModule


def _not_finite(value):
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        try:
            return not decimal.Decimal(value.strip()).is_finite()
        except decimal.DecimalException:
            return False
    return False


def _mark_not_finite(argument_spec, params):
    """Mark every whole-number value of ``params`` that is ``inf`` or ``nan`` (see
    RollbackModule._load_params), options of sub-options and list elements included."""
    if not isinstance(params, dict):
        return
    for name, spec in argument_spec.items():
        value = params.get(name)
        if spec.get('type') == 'int' and _not_finite(value):
            params[name] = '%s (not a finite number)' % value
        elif spec.get('type') == 'list' and isinstance(value, list):
            if spec.get('elements') == 'int':
                params[name] = ['%s (not a finite number)' % item if _not_finite(item) else item for item in value]
            elif spec.get('elements') == 'dict' and spec.get('options'):
                for item in value:
                    _mark_not_finite(spec['options'], item)
        elif spec.get('type') == 'dict' and spec.get('options'):
            _mark_not_finite(spec['options'], value)


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()


def timing(started_epoch, seconds):
    """``timing`` as every result of this collection carries it: ``start``, ``end`` (ISO 8601 UTC)
    and ``seconds``; also for a step inside a module run."""
    return dict(start=_iso(started_epoch), end=_iso(started_epoch + seconds), seconds=round(seconds, 3))


class RollbackModule(AnsibleModule):
    """``AnsibleModule`` whose ``exit_json`` and ``fail_json`` add ``timing`` to the result."""

    def __init__(self, *args, **kwargs):
        # Before AnsibleModule parses the arguments: a bad argument fails inside __init__.
        self._started_epoch = time.time()
        self._started_clock = time.monotonic()
        super(RollbackModule, self).__init__(*args, **kwargs)

    def _load_params(self):
        # ansible-core's int check lets the OverflowError of int(Decimal('inf')) escape as a
        # traceback. Mark such a value so that the check fails with a message, the way it does
        # for any other value that is not a whole number.
        super(RollbackModule, self)._load_params()
        _mark_not_finite(self.argument_spec, self.params)

    def timing(self):
        seconds = time.monotonic() - self._started_clock
        return timing(self._started_epoch, seconds)

    def exit_json(self, **kwargs):
        kwargs.setdefault('timing', self.timing())
        super(RollbackModule, self).exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.setdefault('timing', self.timing())
        super(RollbackModule, self).fail_json(msg, **kwargs)
