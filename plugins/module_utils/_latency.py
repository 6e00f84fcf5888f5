# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic of latency sampling: judge one answer, percentiles, and the verdict per endpoint.

Nothing here sends a request; ``plugins/modules/http_latency.py`` feeds it the outcomes of
:func:`~._http_probe.probe`, and the unit tests feed it numbers. Nothing here ever puts an answer
body into a result or a message: bodies may carry session tokens.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json

JSON_TYPES = {'list': list, 'object': dict}


def percentile(sorted_values, pct):
    """Nearest-rank percentile of an ascending list; None when empty.

    Nearest rank returns a value that was measured (no interpolation): with 10 samples, p50 is
    the 5th fastest and p95 the slowest.
    """
    if not sorted_values:
        return None
    rank = int(-(-pct * len(sorted_values) // 100))  # ceil without floats drifting
    rank = min(max(rank, 1), len(sorted_values))
    return sorted_values[rank - 1]


def latency_figures(values, digits=6):
    """count, min, p50, p95, max and mean of a list of seconds; figures are None when empty."""
    ordered = sorted(values)
    if not ordered:
        return dict(count=0, min=None, p50=None, p95=None, max=None, mean=None)
    return dict(
        count=len(ordered),
        min=round(ordered[0], digits),
        p50=round(percentile(ordered, 50), digits),
        p95=round(percentile(ordered, 95), digits),
        max=round(ordered[-1], digits),
        mean=round(sum(ordered) / len(ordered), digits),
    )


def _json_kind(value):
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, dict):
        return 'an object'
    if value is None:
        return 'null'
    return 'a %s' % type(value).__name__


def judge_answer(status, body, truncated, error, status_codes, json_type=None, json_key=None,
                 body_pattern=None):
    """Judge one answer. Returns ``(problem, json_length)``; problem is None for a good answer.

    ``json_length`` is the length of the JSON list or object the answer carried (when a JSON
    check was asked for), else None. Problems never quote the body.
    """
    if status is None:
        return (error or 'no answer'), None
    if status not in status_codes:
        return 'HTTP %s (expected %s)' % (status, ', '.join(str(c) for c in status_codes)), None
    if body_pattern is not None and not body_pattern.search(body or ''):
        return 'HTTP %s but the body does not match %r' % (status, body_pattern.pattern), None
    if json_type is None and json_key is None:
        return None, None
    if truncated:
        return 'HTTP %s but the body is larger than max_body_bytes; cannot check its JSON' % status, None
    try:
        data = json.loads(body or '')
    except ValueError:
        return 'HTTP %s but the body is not JSON' % status, None
    if json_type is not None and not isinstance(data, JSON_TYPES[json_type]):
        return 'HTTP %s but the answer is %s, not a JSON %s' % (status, _json_kind(data), json_type), None
    if json_key is not None:
        if not isinstance(data, dict):
            return 'HTTP %s but the answer is %s, not an object with %s' % (status, _json_kind(data), json_key), None
        if data.get(json_key) in (None, '', [], {}):
            return 'HTTP %s but the answer has no %s' % (status, json_key), None
    return None, (len(data) if isinstance(data, (list, dict)) else None)


def fmt_seconds(value):
    """Seconds for messages: 3 decimals, never scientific notation."""
    return 'n/a' if value is None else '%.3f s' % value


def fmt_target(value):
    """A target as the operator wrote it: 0.5 s, not 0.500 s."""
    return '%g s' % value


def target_text(max_p50, max_p95):
    """'target 0.5 s' when both percentiles share one, else each one that is set."""
    if max_p50 is not None and max_p95 is not None and max_p50 == max_p95:
        return 'target %s' % fmt_target(max_p50)
    parts = []
    if max_p50 is not None:
        parts.append('p50 %s' % fmt_target(max_p50))
    if max_p95 is not None:
        parts.append('p95 %s' % fmt_target(max_p95))
    if not parts:
        return 'no target'
    return ('targets ' if len(parts) > 1 else 'target ') + ', '.join(parts)


class EndpointVerdict(object):
    """Everything measured for one endpoint, and whether it passed."""

    def __init__(self, name, wanted_samples, latencies, errors, statuses, last_error, json_length,
                 max_p50=None, max_p95=None, deadline_reached=False):
        self.name = name
        self.wanted_samples = wanted_samples
        self.latency = latency_figures(latencies)
        self.ok = len(latencies)
        self.errors = errors  # list of problem texts, one per bad answer
        self.statuses = statuses
        self.last_error = last_error
        self.json_length = json_length
        self.max_p50 = max_p50
        self.max_p95 = max_p95
        self.sampled = self.ok + len(errors)
        self.problems = []
        if errors:
            self.problems.append('%d of %d answers were bad (last: %s)' % (len(errors), self.sampled, errors[-1]))
        if self.sampled < wanted_samples:
            self.problems.append('only %d of %d samples were taken before the time limit%s'
                                 % (self.sampled, wanted_samples, ' was reached' if deadline_reached else ''))
        over = []
        p50, p95 = self.latency['p50'], self.latency['p95']
        if max_p50 is not None and p50 is not None and p50 > max_p50:
            over.append('p50')
        if max_p95 is not None and p95 is not None and p95 > max_p95:
            over.append('p95')
        self.over_target = over
        if over:
            self.problems.append('%s over the target' % ' and '.join(over))
        self.within_target = not over and self.ok > 0
        self.passed = not self.problems and self.ok > 0

    def figures_text(self):
        return 'p50 %s, p95 %s over %d sample%s' % (
            fmt_seconds(self.latency['p50']), fmt_seconds(self.latency['p95']), self.ok, '' if self.ok == 1 else 's')

    def describe(self):
        """One line for messages: name, measured figures, target, problems."""
        text = '%s: %s' % (self.name, self.figures_text())
        if self.max_p50 is not None or self.max_p95 is not None:
            text += ' (%s)' % target_text(self.max_p50, self.max_p95)
        if self.problems:
            text += ': ' + '; '.join(self.problems)
        return text

    def as_dict(self):
        return dict(
            name=self.name,
            passed=self.passed,
            samples=self.ok,
            sampled=self.sampled,
            errors=len(self.errors),
            statuses=dict((str(k), v) for k, v in sorted(self.statuses.items(), key=lambda kv: str(kv[0]))),
            last_error=self.last_error,
            json_length=self.json_length,
            latency=self.latency,
            max_p50=self.max_p50,
            max_p95=self.max_p95,
            within_target=self.within_target,
            problems=list(self.problems),
            summary=self.describe(),
        )
