# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Independent docker calls of one module run, side by side.

Each docker CLI call is mostly a process start and an engine round trip (10-100 ms), so a module
that needs several independent answers - a snapshot's engine version, compose config, containers
and image IDs; the tags of several repositories - waits for the slowest of them instead of their
sum (stack_info on the reference stack: 0.52 s -> 0.15 s of docker calls). The callers judge the
answers afterwards in the order a one-by-one run would have asked, so a failure is worded and
chosen as before.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor

# Bounded: the engine serves them all.
SIDE_BY_SIDE = 8


def side_by_side(calls):
    """Run independent read-only queries at once: ``{key: (function, args...)}`` ->
    ``{key: (value, exception)}``. Exceptions are returned, not raised, so that the caller judges
    the results in its own order and words each failure as it would have one by one."""
    if not calls:
        return {}
    with ThreadPoolExecutor(max_workers=min(SIDE_BY_SIDE, len(calls))) as pool:
        futures = dict((key, pool.submit(call[0], *call[1:])) for key, call in calls.items())
        results = {}
        for key, future in futures.items():
            exc = future.exception()
            results[key] = (None, exc) if exc is not None else (future.result(), None)
        return results


def first_failure(results, keys):
    """Raise the exception of the first of ``keys`` whose query failed; else the values, in order."""
    values = []
    for key in keys:
        value, exc = results[key]
        if exc is not None:
            raise exc
        values.append(value)
    return values
