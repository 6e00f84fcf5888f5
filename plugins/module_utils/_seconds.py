# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Numbers that mean time: finite and within a documented range, checked before anything is done.

A float option accepts ``nan``, ``inf`` and ``1e308``: a deadline of NaN is never reached (the
loop never ends), and an infinite one overflows the clock or a C integer deep inside the standard
library. :func:`seconds_problem` says what is wrong with such a value, in words an operator can act
on, so a module refuses it up front.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math

# The default upper bound of an option that means seconds: one day. Anything longer is a typo
# (milliseconds given as seconds, 1e308).
MAX_SECONDS = 86400


def fmt_number(value):
    """A number for messages: ``%g`` for floats (60, 0.25, 1e+308, nan), as given otherwise."""
    return '%g' % value if isinstance(value, float) else '%s' % (value,)


def seconds_problem(name, value, allow_zero=False, maximum=MAX_SECONDS):
    """None when ``value`` is a usable number of seconds (None counts as unset), else the text of
    what is wrong: not finite, negative, zero when zero is not allowed, or over ``maximum``."""
    if value is None:
        return None
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        return '%s must be a finite number of seconds, got %s' % (name, fmt_number(value))
    if value < 0 and allow_zero:
        return '%s must not be negative, got %s' % (name, fmt_number(value))
    if value <= 0 and not allow_zero:
        return '%s must be more than 0 seconds, got %s' % (name, fmt_number(value))
    if value > maximum:
        return '%s must be at most %s seconds, got %s' % (name, fmt_number(maximum), fmt_number(value))
    return None


def finite_or_none(value):
    """``value``, or None when it is a float JSON cannot carry (NaN, infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
