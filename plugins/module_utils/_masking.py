# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Mask real secrets only.

Ansible masks every value of a ``no_log`` option as a substring of everything a module returns,
numbers turned into text included: an ``env`` value ``1`` turned the summary ``100%`` into
``********00%``. A value of fewer than :data:`MIN_SECRET_LENGTH` characters is not a secret
anyone can keep, and masking it only garbles the result; so :func:`mask_secrets_only` leaves
such values out of the masking, and :func:`masked_invocation` keeps every ``no_log`` value, short
ones included, out of the invocation the module returns.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import copy
import math

MIN_SECRET_LENGTH = 4
PLACEHOLDER = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def mask_secrets_only(module, min_length=MIN_SECRET_LENGTH):
    """Stop Ansible from masking the short values of no_log options in the module's results."""
    module.no_log_values = set(value for value in module.no_log_values if len(value) >= min_length)


def _mask(spec, params):
    for name, option in spec.items():
        if name not in params or params[name] is None:
            continue
        if option.get('no_log'):
            value = params[name]
            if isinstance(value, dict):
                params[name] = dict((key, PLACEHOLDER) for key in value)
            else:
                params[name] = PLACEHOLDER
        elif option.get('options'):
            value = params[name]
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict):
                    _mask(option['options'], item)


def _json_safe(value):
    # JSON has no NaN or infinity: an argument that was refused for being one is shown as text.
    if isinstance(value, float) and not math.isfinite(value):
        return '%s' % value
    if isinstance(value, dict):
        return dict((key, _json_safe(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def masked_invocation(spec, params, replace=None):
    """``invocation`` for a result: the module's arguments with every no_log value replaced (dict
    options keep their keys), then ``replace`` (a dict of option: shown value) applied."""
    args = copy.deepcopy(dict(params))
    _mask(spec, args)
    args.update(replace or {})
    return {'module_args': _json_safe(args)}
