# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The automatic-rollback trigger: a sampler and the runbook's decision matrix.

Standard library only (urllib, threads) and self-contained, so the ``rollback_trigger`` module
and the Event-Driven Ansible event source of this collection share it.

* :func:`sample` checks health targets every ``interval`` seconds (consecutive failures, time
  unavailable) and sends requests to request targets at a steady ``rate`` with at most
  ``concurrency`` in flight, for at most ``window`` seconds. With ``stop_early`` it ends as soon
  as the verdict cannot change any more: ``failures`` consecutive failed health checks, or an
  error rate whose 95 % lower confidence bound is above ``error_rate_max``.
* :func:`decide` turns the figures into ``rollback: true/false`` with one reason per trigger
  that fired: ``unavailable``, ``error_rate``, ``p95_degradation`` (against a baseline),
  ``p95_absolute``.
* :func:`load_baseline` / :func:`make_baseline` read and build the baseline JSON file.

Header values and request bodies (API keys, passwords) are never put into figures, reasons or
error texts; URLs are shown without user info, query or fragment.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import json
import math
import socket
import ssl
import threading
import time

try:
    import urllib.error as urllib_error
    import urllib.parse as urllib_parse
    import urllib.request as urllib_request
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    urllib_error = urllib_parse = urllib_request = None

BASELINE_VERSION = 1
TRIGGERS = ('unavailable', 'error_rate', 'p95_degradation', 'p95_absolute')
KINDS = ('health', 'request')
METHODS = ('GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'PATCH')
# Fewest requests before an error rate may stop the sampling early.
MIN_EARLY_REQUESTS = 10
# Fewest good answers of a target before its p95 is judged: below 20, the nearest-rank p95 is the
# slowest answer, and one slow answer on a busy host would fire.
MIN_LATENCY_SAMPLES = 20


class TriggerError(ValueError):
    """A target or setting the sampler cannot use; the text names it and never a secret."""


# --- small helpers -----------------------------------------------------------------------------

def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def display_url(url):
    """The URL without user info, query or fragment (they may carry secrets)."""
    try:
        parts = urllib_parse.urlsplit(url)
    except ValueError:
        return '<invalid URL>'
    host = parts.hostname or ''
    if ':' in host:
        host = '[%s]' % host
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (':%d' % port if port else '')
    return urllib_parse.urlunsplit((parts.scheme, netloc, parts.path, '', ''))


def percentile(sorted_values, pct):
    """Nearest-rank percentile of an ascending list (a value that was measured); None if empty."""
    if not sorted_values:
        return None
    rank = int(-(-pct * len(sorted_values) // 100))
    rank = min(max(rank, 1), len(sorted_values))
    return sorted_values[rank - 1]


def wilson_lower(errors, total, z=1.96):
    """Lower bound (0..1) of the Wilson score interval of an error share; 0.0 with no requests."""
    if total <= 0:
        return 0.0
    phat = errors / total
    denom = 1 + z * z / total
    centre = phat + z * z / (2 * total)
    margin = z * math.sqrt(phat * (1 - phat) / total + z * z / (4 * total * total))
    return max(0.0, (centre - margin) / denom)


def _round(value, digits=3):
    return None if value is None else round(value, digits)


def normalize_targets(targets):
    """Check and complete the targets. Raises TriggerError naming the bad target and field."""
    if not isinstance(targets, (list, tuple)) or not targets:
        raise TriggerError('targets must be a non-empty list of {name, url, kind} dicts')
    result = []
    names = set()
    for index, target in enumerate(targets):
        where = 'targets[%d]' % index
        if not isinstance(target, dict):
            raise TriggerError('%s must be a dict with name, url and kind' % where)
        name = target.get('name')
        if not isinstance(name, str) or not name.strip():
            raise TriggerError('%s.name must be a non-empty string' % where)
        if name in names:
            raise TriggerError('%s.name %r is used twice; target names must be unique' % (where, name))
        names.add(name)
        url = target.get('url')
        if not isinstance(url, str) or not url.strip():
            raise TriggerError('%s (%s): url must be a non-empty http:// or https:// URL' % (where, name))
        try:
            parts = urllib_parse.urlsplit(url)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ('http', 'https') or not parts.hostname:
            raise TriggerError('%s (%s): url %s is not an http:// or https:// URL with a host'
                               % (where, name, display_url(url)))
        kind = target.get('kind', 'request')
        if kind not in KINDS:
            raise TriggerError('%s (%s): kind must be health or request, not %r' % (where, name, kind))
        method = (target.get('method') or ('POST' if target.get('body') is not None else 'GET')).upper()
        if method not in METHODS:
            raise TriggerError('%s (%s): method must be one of %s' % (where, name, ', '.join(METHODS)))
        headers = target.get('headers') or {}
        if not isinstance(headers, dict):
            raise TriggerError('%s (%s): headers must be a dict of names to values' % (where, name))
        body = target.get('body')
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        codes = target.get('status_codes')
        if codes is not None:
            try:
                codes = [int(code) for code in codes]
            except (TypeError, ValueError):
                raise TriggerError('%s (%s): status_codes must be a list of HTTP status codes' % (where, name))
        result.append(dict(name=name, url=url, kind=kind, method=method,
                           headers=dict((str(k), str(v)) for k, v in headers.items()),
                           body=body, status_codes=codes))
    return result


# --- one request -------------------------------------------------------------------------------

class _NoRedirect(urllib_request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener(ca_file):
    if ca_file:
        context = ssl.create_default_context(cafile=ca_file)
    else:
        context = ssl.create_default_context()
    return urllib_request.build_opener(urllib_request.HTTPSHandler(context=context), _NoRedirect(),
                                       urllib_request.ProxyHandler({}))


def _describe(exc):
    reason = getattr(exc, 'reason', exc)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return 'timed out'
    if isinstance(reason, ssl.SSLError):
        return 'TLS error'
    if isinstance(reason, ConnectionRefusedError):
        return 'connection refused'
    if isinstance(reason, OSError) and getattr(reason, 'strerror', None):
        return 'connection failed: %s' % reason.strerror
    return 'request failed: %s' % type(exc).__name__


def request_once(opener, target, timeout, clock=time.monotonic):
    """Send one request. Returns ``(ok, status, elapsed_s, problem)``; never raises."""
    started = clock()
    status = None
    try:
        data = target['body'].encode('utf-8') if target['body'] is not None else None
        req = urllib_request.Request(target['url'], data=data, method=target['method'])
        for name, value in target['headers'].items():
            req.add_header(name, value)
        response = opener.open(req, timeout=timeout)
        try:
            response.read(1048576)
            status = response.getcode()
        finally:
            response.close()
    except urllib_error.HTTPError as exc:
        status = exc.code
        try:
            exc.read(65536)
        except Exception:  # the body of an error answer is best effort
            pass
        finally:
            exc.close()
    except Exception as exc:  # any network, TLS or protocol failure is an outcome
        return False, None, clock() - started, _describe(exc)
    elapsed = clock() - started
    codes = target['status_codes']
    ok = (status in codes) if codes else (200 <= status < 400)
    return ok, status, elapsed, (None if ok else 'HTTP %s' % status)


# --- the sampler ---------------------------------------------------------------------------------

def is_down(status, problem):
    """True for an outcome that says nothing listens (refused, reset): unavailability, not an error."""
    return status is None and bool(problem) and problem.startswith('connection')


class _Tally(object):
    """What one target saw. Updated under the sampler's lock.

    A health check that fails for any reason counts as a failed check. A request that gets no
    connection at all (nothing listens: refused, reset) counts as unavailability, not as an error:
    the error rate is over the requests the service took (an HTTP error answer or a timeout is an
    error), and a run of refused requests is measured like a run of failed health checks.
    """

    def __init__(self, target):
        self.target = target
        self.requests = 0
        self.errors = 0
        self.refused = 0
        self.latencies = []
        self.run = 0          # current run of consecutive failures
        self.max_run = 0
        self.run_started = None
        self.unavailable = 0.0
        self.longest_down = 0.0
        self.last_problem = None
        self.statuses = {}
        self.carried = 0

    def carry(self, count, started):
        """Continue a run of ``count`` failed checks from the window before (see sample())."""
        self.carried = count
        self.run = self.max_run = count
        # Its unavailable time is counted from this window's start (what this window saw).
        self.run_started = started

    def record(self, ok, status, elapsed, problem, started, ended):
        self.requests += 1
        key = str(status) if status is not None else 'none'
        self.statuses[key] = self.statuses.get(key, 0) + 1
        down = is_down(status, problem)
        failed_check = not ok if self.target['kind'] == 'health' else down
        if not ok:
            self.last_problem = problem
            if down and self.target['kind'] == 'request':
                self.refused += 1
            else:
                self.errors += 1
        else:
            self.latencies.append(elapsed)
        if not failed_check:
            if self.run_started is not None:
                self.unavailable += started - self.run_started
                self.longest_down = max(self.longest_down, started - self.run_started)
            self.run = 0
            self.run_started = None
        else:
            if self.run == 0:
                self.run_started = started
            self.run += 1
            self.max_run = max(self.max_run, self.run)

    def answered(self):
        return self.requests - self.refused

    def error_rate(self):
        answered = self.answered()
        return _round(100.0 * self.errors / answered, 2) if answered else None

    def down_for(self, now):
        return (now - self.run_started) if self.run_started is not None else 0.0

    def figures(self, started, ended):
        ordered = sorted(self.latencies)
        unavailable = self.unavailable
        longest = self.longest_down
        if self.run_started is not None:
            unavailable += max(0.0, ended - self.run_started)
            longest = max(longest, ended - self.run_started)
        return dict(
            kind=self.target['kind'],
            url=display_url(self.target['url']),
            method=self.target['method'],
            requests=self.requests,
            errors=self.errors,
            refused=self.refused,
            error_rate=self.error_rate(),
            p50_ms=_round(percentile(ordered, 50) * 1000.0 if ordered else None, 1),
            p95_ms=_round(percentile(ordered, 95) * 1000.0 if ordered else None, 1),
            consecutive_failures=self.max_run,
            failing_now=self.run,
            carried_failures=self.carried,
            unavailable_s=_round(unavailable, 2),
            longest_down_s=_round(longest, 2),
            last_problem=self.last_problem,
            statuses=dict(self.statuses),
            sampled_s=_round(ended - started, 2),
        )


def sample(targets, window, interval=1.0, failures=3, rate=10.0, concurrency=4, timeout=2.0,
           ca_file=None, stop_early=True, error_rate_max=5.0, clock=time.monotonic, carry=None):
    """Sample the targets for at most ``window`` seconds; return the figures (see module doc).

    ``error_rate_max`` (percent) is only used to stop early: the sampling ends once the lower 95 %
    confidence bound of a request target's (or all request targets') error rate is above it, after
    at least MIN_EARLY_REQUESTS requests.

    ``carry`` (health target name -> count) continues runs of failed health checks of the window
    before (its figures' ``failing_now``, see :func:`carry_over`): a run that began at the end of
    that window and goes on at the start of this one counts as one run, so "N consecutive failed
    health checks" holds across window boundaries. The carried checks count in
    ``consecutive_failures`` and are shown as ``carried_failures``.
    """
    targets = normalize_targets(targets)
    window = float(window)
    interval = float(interval)
    rate = float(rate)
    timeout = float(timeout)
    concurrency = int(concurrency)
    failures = int(failures)
    # all(...): a NaN compares False both ways, and must be refused too
    if not all(value > 0 for value in (window, interval, rate, timeout)) or concurrency < 1 or failures < 1:
        raise TriggerError('window, interval, rate and timeout must be above 0; concurrency and failures at least 1')
    opener = _opener(ca_file)
    lock = threading.Lock()
    stop = threading.Event()
    tallies = dict((t['name'], _Tally(t)) for t in targets)
    health = [t for t in targets if t['kind'] == 'health']
    requests = [t for t in targets if t['kind'] == 'request']
    started = clock()
    for name, count in (carry or {}).items():
        tally = tallies.get(name)
        # Only health checks are carried; a bool or a non-number carries nothing.
        if tally is None or tally.target['kind'] != 'health' or isinstance(count, bool) or not isinstance(count, int) or count < 1:
            continue
        tally.carry(count, started)
    deadline = started + window
    state = dict(stop_reason=None, stopped_at=None)

    def finish(reason):
        with lock:
            if state['stop_reason'] is None:
                state['stop_reason'] = reason
                state['stopped_at'] = clock()
        stop.set()

    def check_early(tally):
        # Called under the lock.
        if not stop_early:
            return None
        if tally.target['kind'] == 'health':
            if tally.run >= failures:
                return '%s failed %d consecutive health checks' % (tally.target['name'], tally.run)
            return None
        if tally.run and tally.down_for(clock()) >= failures * interval:
            return '%s refused connections for %.1f s' % (tally.target['name'], tally.down_for(clock()))
        answered = tally.answered()
        if answered >= MIN_EARLY_REQUESTS and 100.0 * wilson_lower(tally.errors, answered) > error_rate_max:
            return '%s: %d of %d requests failed' % (tally.target['name'], tally.errors, answered)
        total = sum(tallies[t['name']].answered() for t in requests)
        errors = sum(tallies[t['name']].errors for t in requests)
        if total >= MIN_EARLY_REQUESTS and 100.0 * wilson_lower(errors, total) > error_rate_max:
            return '%d of %d requests failed' % (errors, total)
        return None

    def one(target):
        t0 = clock()
        ok, status, elapsed, problem = request_once(opener, target, timeout, clock)
        t1 = clock()
        with lock:
            tally = tallies[target['name']]
            tally.record(ok, status, elapsed, problem, t0, t1)
            reason = check_early(tally)
        if reason:
            finish(reason)

    def health_loop(target):
        tick = started
        while not stop.is_set() and clock() < deadline:
            one(target)
            tick += interval
            wait = min(tick, deadline) - clock()
            if wait > 0 and stop.wait(wait):
                break

    slots = threading.BoundedSemaphore(concurrency)
    workers = []

    def request_worker(target):
        try:
            one(target)
        finally:
            slots.release()

    def request_loop():
        tick = started
        index = 0
        skipped = 0
        step = 1.0 / rate
        while not stop.is_set() and clock() < deadline:
            # At most `concurrency` in flight: a tick without a free slot is skipped (counted).
            if slots.acquire(False):
                target = requests[index % len(requests)]
                index += 1
                worker = threading.Thread(target=request_worker, args=(target,))
                worker.daemon = True
                worker.start()
                workers.append(worker)
            else:
                skipped += 1
            tick += step
            wait = min(tick, deadline) - clock()
            if wait > 0 and stop.wait(wait):
                break
        state['skipped'] = skipped

    loops = [threading.Thread(target=health_loop, args=(t,)) for t in health]
    if requests:
        loops.append(threading.Thread(target=request_loop))
    for thread in loops:
        thread.daemon = True
        thread.start()
    for thread in loops:
        thread.join(window + timeout + 5)
    if state['stop_reason'] is None:
        stop.set()
        state['stopped_at'] = clock()
    # Requests already in flight finish (bounded by their timeout) and count.
    for worker in list(workers):
        worker.join(timeout + 1)
    ended = state['stopped_at']
    with lock:
        per_target = dict((name, tally.figures(started, ended)) for name, tally in tallies.items())
        overall = _overall([per_target[t['name']] for t in requests],
                           [per_target[t['name']] for t in health],
                           [tallies[t['name']] for t in requests], started, ended)
    overall['skipped_ticks'] = state.get('skipped', 0)
    return dict(
        started_at=_now_iso(),
        sampled_s=_round(ended - started, 2),
        stopped_early=state['stop_reason'] is not None,
        stop_reason=state['stop_reason'],
        settings=dict(window=window, interval=interval, failures=failures, rate=rate,
                      concurrency=concurrency, timeout=timeout, stop_early=bool(stop_early)),
        targets=per_target,
        overall=overall,
    )


def carry_over(verdict):
    """The ``carry`` for the next window's :func:`sample`: each health target's run of failed checks
    still going on at the end of this window. Nothing once the verdict fired: a new incident is
    proved from its first failed check."""
    if not verdict or verdict.get('rollback'):
        return {}
    targets = (verdict.get('figures') or {}).get('targets') or {}
    return dict((name, fig['failing_now']) for name, fig in targets.items()
                if fig.get('kind') == 'health' and isinstance(fig.get('failing_now'), int) and fig['failing_now'] > 0)


def _overall(request_figures, health_figures, request_tallies, started, ended):
    total = sum(f['requests'] for f in request_figures)
    refused = sum(f['refused'] for f in request_figures)
    errors = sum(f['errors'] for f in request_figures)
    answered = total - refused
    ordered = sorted(v for tally in request_tallies for v in tally.latencies)
    return dict(
        requests=total,
        errors=errors,
        refused=refused,
        error_rate=_round(100.0 * errors / answered, 2) if answered else None,
        p50_ms=_round(percentile(ordered, 50) * 1000.0 if ordered else None, 1),
        p95_ms=_round(percentile(ordered, 95) * 1000.0 if ordered else None, 1),
        consecutive_failures=max([f['consecutive_failures'] for f in health_figures] or [0]),
        unavailable_s=max([f['unavailable_s'] for f in health_figures + request_figures] or [0.0]),
        sampled_s=_round(ended - started, 2),
    )


# --- the decision matrix -----------------------------------------------------------------------

# The default absolute floor of a p95 degradation (ms): a few ms, so that a fast stack (a p95 of
# 20 ms) answering twice as slow fires, and a 2 ms baseline doubling on scheduling noise does not.
P95_MIN_INCREASE_MS = 10.0


def p50_shift_needed(base_p95, p95_degradation_max=50.0, p95_min_increase_ms=P95_MIN_INCREASE_MS):
    """How far (ms) the p50 must have risen above the baseline's p50 for a p95 degradation to count:
    the allowed degradation of the baseline p95 (``p95_degradation_max`` % of it), and at least half
    of the absolute floor. Scales with the baseline: 10 ms for a 20 ms p95, 100 ms for a 200 ms one."""
    return max((p95_degradation_max or 0) / 100.0 * (base_p95 or 0), (p95_min_increase_ms or 0) / 2.0)


def _fmt_ms(value):
    return '%.0f ms' % value if value >= 10 else '%.1f ms' % value


def decide(figures, baseline=None, error_rate_max=5.0, p95_degradation_max=50.0,
           p95_absolute_max_ms=1000.0, failures=3, p95_min_increase_ms=P95_MIN_INCREASE_MS,
           min_latency_samples=MIN_LATENCY_SAMPLES):
    """The runbook's decision matrix over :func:`sample`'s figures.

    ``baseline`` is a dict from :func:`load_baseline` (or None: no degradation check).
    ``p95_absolute_max_ms`` None disables the absolute check (it fires when the p50 is above half
    the limit too: a shift, not a few slow requests on a busy host).

    ``p95_degradation`` fires when the p95 is more than ``p95_degradation_max`` percent above the
    baseline's AND the whole distribution moved (:func:`p50_shift_needed`): the p50 rose by at
    least the allowed degradation of the baseline p95 (``p95_degradation_max`` % of it: half the
    baseline p95 at the default 50 %), so a tail of a few slow answers on a busy host does not fire
    while a build that answers twice as slow does, however fast the stack. ``p95_min_increase_ms``
    is only a small absolute floor (the p95 must rise by at least that many ms, the p50 by half of
    it), so a few-ms baseline does not fire on scheduling noise.
    The p95 of a target is judged only over at least ``min_latency_samples`` good answers.
    """
    reasons = []
    targets = (figures or {}).get('targets') or {}
    base_targets = (baseline or {}).get('targets') or {}
    error_reason_given = False
    interval = float(((figures or {}).get('settings') or {}).get('interval') or 1.0)
    for name, fig in targets.items():
        if fig.get('kind') == 'health':
            run = fig.get('consecutive_failures') or 0
            if run >= failures:
                reasons.append(dict(
                    trigger='unavailable', target=name, value=run, threshold=failures,
                    unavailable_s=fig.get('unavailable_s'),
                    detail='%s failed %d consecutive health checks (%s); unavailable for %.1f s'
                           % (name, run, fig.get('last_problem') or 'failed', fig.get('unavailable_s') or 0.0)))
            continue
        down = fig.get('longest_down_s') or 0.0
        # Figures are rounded to 10 ms: compare with the threshold rounded the same way.
        if down >= round(failures * interval, 2):
            reasons.append(dict(
                trigger='unavailable', target=name, value=round(down, 2), threshold=failures * interval,
                unavailable_s=fig.get('unavailable_s'),
                detail='%s refused every connection for %.1f s (limit %.1f s: %d checks at %.1f s)'
                       % (name, down, failures * interval, failures, interval)))
        requests = (fig.get('requests') or 0) - (fig.get('refused') or 0)
        rate = fig.get('error_rate')
        if requests and rate is not None and error_rate_max is not None and rate > error_rate_max:
            error_reason_given = True
            reasons.append(dict(
                trigger='error_rate', target=name, value=rate, threshold=error_rate_max,
                detail='%s: %d of %d requests failed (%.1f %%, limit %.1f %%; last: %s)'
                       % (name, fig.get('errors') or 0, requests, rate, error_rate_max, fig.get('last_problem') or 'error')))
        p95 = fig.get('p95_ms')
        answered_ok = requests - (fig.get('errors') or 0)
        if p95 is None or answered_ok < min_latency_samples:
            continue
        # A shift, not a tail of a few slow requests: the p50 is above half the limit too.
        p50_now = fig.get('p50_ms')
        if p95_absolute_max_ms is not None and p95 > p95_absolute_max_ms and (p50_now is None or p50_now > p95_absolute_max_ms / 2.0):
            reasons.append(dict(
                trigger='p95_absolute', target=name, value=p95, threshold=p95_absolute_max_ms,
                detail='%s: p95 %s is above the absolute limit of %s' % (name, _fmt_ms(p95), _fmt_ms(p95_absolute_max_ms))))
        base = (base_targets.get(name) or {}).get('p95_ms')
        if base and p95_degradation_max is not None and base > 0:
            degradation = 100.0 * (p95 - base) / base
            # A shift, not one slow request among a few: the p50 rose too (see p50_shift_needed).
            base50 = (base_targets.get(name) or {}).get('p50_ms')
            p50 = fig.get('p50_ms')
            needed = p50_shift_needed(base, p95_degradation_max, p95_min_increase_ms)
            shifted = base50 is None or p50 is None or p50 - base50 >= needed
            if degradation > p95_degradation_max and p95 - base >= (p95_min_increase_ms or 0) and shifted:
                reasons.append(dict(
                    trigger='p95_degradation', target=name, value=round(degradation, 1), threshold=p95_degradation_max,
                    p95_ms=p95, baseline_p95_ms=base, p50_ms=p50, baseline_p50_ms=base50,
                    detail='%s: p95 %s is %.0f %% above the baseline %s (limit %.0f %%); p50 %s (baseline %s)'
                           % (name, _fmt_ms(p95), degradation, _fmt_ms(base), p95_degradation_max,
                              _fmt_ms(p50) if p50 is not None else '?', _fmt_ms(base50) if base50 is not None else '?')))
    overall = (figures or {}).get('overall') or {}
    total = (overall.get('requests') or 0) - (overall.get('refused') or 0)
    rate = overall.get('error_rate')
    if not error_reason_given and total and rate is not None and error_rate_max is not None and rate > error_rate_max:
        reasons.append(dict(
            trigger='error_rate', target='overall', value=rate, threshold=error_rate_max,
            detail='%d of %d requests failed (%.1f %%, limit %.1f %%)'
                   % (overall.get('errors') or 0, total, rate, error_rate_max)))
    return dict(rollback=bool(reasons), reasons=reasons, figures=figures)


def summary(verdict):
    """One line for a verdict: what fired, or that nothing did."""
    if not verdict.get('rollback'):
        fig = verdict.get('figures') or {}
        return 'no trigger fired over %s s of sampling' % (fig.get('sampled_s'),)
    return 'rollback: ' + '; '.join(r['detail'] for r in verdict.get('reasons') or [])


# --- the baseline --------------------------------------------------------------------------------

def make_baseline(figures, images=None, recorded_at=None, stack=None):
    """The baseline document from one sampling: per request target p50/p95/error rate."""
    targets = {}
    for name, fig in ((figures or {}).get('targets') or {}).items():
        if fig.get('kind') != 'request':
            continue
        targets[name] = dict(url=fig.get('url'), method=fig.get('method'), requests=fig.get('requests'),
                             p50_ms=fig.get('p50_ms'), p95_ms=fig.get('p95_ms'), error_rate=fig.get('error_rate'))
    overall = (figures or {}).get('overall') or {}
    return dict(
        version=BASELINE_VERSION,
        recorded_at=recorded_at or _now_iso(),
        stack=stack,
        images=images or {},
        sampled_s=(figures or {}).get('sampled_s'),
        overall=dict(requests=overall.get('requests'), error_rate=overall.get('error_rate'),
                     p50_ms=overall.get('p50_ms'), p95_ms=overall.get('p95_ms')),
        targets=targets,
    )


def baseline_problem(data):
    """None for a usable baseline document, else what is wrong with it."""
    if not isinstance(data, dict):
        return 'the baseline is not a JSON object'
    if data.get('version') != BASELINE_VERSION:
        return 'the baseline has version %r; this collection reads version %d' % (data.get('version'), BASELINE_VERSION)
    targets = data.get('targets')
    if not isinstance(targets, dict):
        return 'the baseline has no "targets" object'
    for name, fig in targets.items():
        p95 = (fig or {}).get('p95_ms') if isinstance(fig, dict) else 'bad'
        if p95 is not None and (isinstance(p95, bool) or not isinstance(p95, (int, float)) or p95 < 0):
            return 'the baseline target %s has no usable p95_ms' % name
    return None


def load_baseline(path):
    """Read a baseline file. Raises TriggerError saying what is wrong and what to do."""
    try:
        with open(path, 'r') as handle:
            data = json.load(handle)
    except (IOError, OSError) as exc:
        raise TriggerError('cannot read the baseline %s: %s; record one with playbooks/baseline.yml'
                           % (path, getattr(exc, 'strerror', None) or exc))
    except ValueError as exc:
        raise TriggerError('the baseline %s is not valid JSON (%s); record it again with playbooks/baseline.yml' % (path, exc))
    problem = baseline_problem(data)
    if problem:
        raise TriggerError('%s (%s); record it again with playbooks/baseline.yml' % (problem, path))
    return data
