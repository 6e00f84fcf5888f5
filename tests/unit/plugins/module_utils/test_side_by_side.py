# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""module_utils._side_by_side: independent calls at once, judged in the caller's order."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import threading
import time

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._side_by_side import (
    SIDE_BY_SIDE, first_failure, side_by_side)


def test_values_come_back_under_their_keys():
    results = side_by_side({'a': (lambda x: x * 2, 2), ('b', 1): (str.upper, 'x')})
    assert results == {'a': (4, None), ('b', 1): ('X', None)}
    assert first_failure(results, ['a', ('b', 1)]) == [4, 'X']


def test_nothing_to_do_starts_no_thread():
    assert side_by_side({}) == {}


def test_calls_overlap_so_the_slowest_sets_the_time():
    # Four calls that each wait until all four have started: one by one this would never end.
    started = threading.Barrier(4, timeout=5)

    def wait_for_the_others(n):
        started.wait()
        return n

    t0 = time.monotonic()
    results = side_by_side(dict((n, (wait_for_the_others, n)) for n in range(4)))
    assert first_failure(results, range(4)) == [0, 1, 2, 3]
    assert time.monotonic() - t0 < 5


def test_a_failure_is_returned_and_the_first_in_the_callers_order_is_raised():
    def boom(msg):
        raise ValueError(msg)

    results = side_by_side({'engine': (boom, 'engine down'), 'config': (boom, 'bad config'), 'ok': (int, '1')})
    assert isinstance(results['engine'][1], ValueError)
    assert results['ok'] == (1, None)
    # The caller asks in its own order: the engine before the config, whatever finished first.
    with pytest.raises(ValueError, match='engine down'):
        first_failure(results, ['ok', 'engine', 'config'])
    with pytest.raises(ValueError, match='bad config'):
        first_failure(results, ['config', 'engine'])


def test_the_pool_is_bounded():
    running, peak, lock = [0], [0], threading.Lock()

    def count():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1

    side_by_side(dict((n, (count,)) for n in range(3 * SIDE_BY_SIDE)))
    assert 1 <= peak[0] <= SIDE_BY_SIDE
