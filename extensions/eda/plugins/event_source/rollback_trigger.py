# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Event-Driven Ansible event source: the rollback decision matrix, sampled in a loop."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
---
short_description: Sample a stack and emit the rollback decision matrix's verdicts as events
description:
  - An ansible-rulebook event source plugin. Samples the stack for O(window) seconds (health checks every
    O(interval) seconds, requests to the API at a steady O(rate) with at most O(concurrency) in flight), decides
    with the runbook's decision matrix whether the stack must roll back, puts the verdict on the queue, pauses
    O(pause) seconds, and starts again.
  - "Each event is C({rollback_trigger: {stack, rollback, reasons, figures, window, sampled_at}}): C(rollback) true when
    a trigger fired - service unavailable (O(failures) consecutive failed health checks), error rate above
    O(error_rate_max) %, p95 above the baseline by more than O(p95_degradation_max) %, p95 above O(p95_absolute_max_ms) -
    with one reason per trigger and the figures it was decided on."
  - The same sampler and decision matrix as the C(taylordash.rollback.rollback_trigger) module and the
    C(taylordash.rollback.watchdog) playbook (module_utils C(_trigger)), so a verdict of this source can be handed to
    the watchdog playbook as C(watchdog_verdict).
  - The API key is read from the environment variable named by O(api_key_env), never given as a value; no header,
    body or secret is ever put into an event (URLs are shown without user info or query).
  - Wrong settings stop the source at its start with a message naming the argument.
options:
  stack:
    description: Name of the watched stack, put in every event (rules throttle by it).
    type: str
    default: taylordash
  health_urls:
    description:
      - URLs that answer 200 when a service is healthy, checked every O(interval) seconds; a dict of name to URL, or
        a list of URLs (named C(health1), C(health2), ...).
    type: raw
  api_url:
    description: Base URL of the API; requests go to O(api_paths) under it.
    type: str
  api_paths:
    description: Paths under O(api_url) sampled for the error rate and response times.
    type: list
    elements: str
    default: ["/api/v1/projects"]
  api_key_env:
    description:
      - Name of the environment variable holding the API key sent with the API requests. Unset or empty - no key.
      - The source takes the variable out of the rulebook's environment when it starts, so the playbooks the rulebook runs
        (and ansible-runner's files) never see it; a second source in the same rulebook must read another variable.
    type: str
  api_key_header:
    description: The header the API key is sent in.
    type: str
    default: X-API-Key
  targets:
    description:
      - More targets, as the C(rollback_trigger) module takes them - C(name), C(url), C(kind) (V(health) or V(request)),
        C(method), C(body), C(status_codes), and C(api_key) (true - send the API key). Never put a secret in C(headers).
    type: list
    elements: dict
    default: []
  baseline:
    description:
      - Baseline file recorded by the C(taylordash.rollback.baseline) playbook; without it the p95 degradation trigger is off.
      - Read again before every window, so a baseline recorded after a good deploy is used from the next window on; when a
        later read fails, the last good one is kept.
    type: path
  window:
    description: Seconds one sampling lasts at most (it ends early once the verdict cannot change).
    type: float
    default: 10
  pause:
    description:
      - Seconds between two windows. Nothing is sampled meanwhile. A run of failed health checks still going on at the
        end of a window goes on in the next one (until a verdict fires), so O(failures) consecutive failed checks are
        counted across window boundaries; a short pause keeps detection within a few seconds.
    type: float
    default: 1
  interval:
    description: Seconds between two health checks of a health URL.
    type: float
    default: 1
  failures:
    description: Consecutive failed health checks that make a service unavailable.
    type: int
    default: 3
  rate:
    description: API requests per second.
    type: float
    default: 10
  concurrency:
    description: API requests in flight at most.
    type: int
    default: 4
  timeout:
    description: Seconds one request may take.
    type: float
    default: 2
  ca_file:
    description: CA bundle for https URLs.
    type: path
  error_rate_max:
    description: Error rate (percent) above which the stack rolls back.
    type: float
    default: 5
  p95_degradation_max:
    description: How much (percent) the p95 may exceed the baseline's before the stack rolls back.
    type: float
    default: 50
  p95_absolute_max_ms:
    description: p95 (milliseconds) above which the stack rolls back whatever the baseline; the runbook's 1 s.
    type: float
    default: 1000
  emit:
    description: V(all) - every verdict (a heartbeat when nothing fired); V(rollback) - only verdicts that say roll back.
    type: str
    choices: [all, rollback]
    default: all
  max_windows:
    description: Stop after this many windows; 0 - never (the normal case).
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Roll the TaylorDash stack back when the decision matrix says so
  hosts: all
  sources:
    - taylordash.rollback.rollback_trigger:
        stack: taylordash
        health_urls:
          backend: http://localhost:3000/health/ready
          frontend: http://localhost:5174/
        api_url: http://localhost:3000
        api_key_env: TD_API_KEY
        baseline: /opt/taylordash/rollback_baseline.json
        window: 10
        pause: 1
  rules:
    - name: Roll back when the stack must roll back
      condition: event.rollback_trigger.rollback == true
      throttle:
        once_within: 5 minutes
        group_by_attributes:
          - event.rollback_trigger.stack
      action:
        run_playbook:
          name: taylordash.rollback.watchdog
          extra_vars:
            watchdog_verdict: "{{ event.rollback_trigger }}"
"""

import asyncio
import datetime
import logging
import os
import sys

try:
    from ansible_collections.taylordash.rollback.plugins.module_utils import _trigger
except ImportError:
    # ansible-rulebook runs this file with runpy from the collection's directory, which need not be on
    # sys.path (a collection under ~/.ansible/collections): put the root above ansible_collections there.
    _HERE = os.path.abspath(__file__)
    _PARTS = _HERE.split(os.sep)
    if len(_PARTS) > 8 and _PARTS[-8:-5] == ['ansible_collections', 'taylordash', 'rollback']:
        sys.path.insert(0, os.sep.join(_PARTS[:-8]) or os.sep)
        from ansible_collections.taylordash.rollback.plugins.module_utils import _trigger
    else:
        raise ImportError('rollback_trigger: run this source from the installed collection taylordash.rollback '
                          '(ansible_collections/taylordash/rollback/extensions/eda/plugins/event_source/), not from %s' % _HERE)

LOG = logging.getLogger(__name__)

FLOATS = ('window', 'pause', 'interval', 'rate', 'timeout', 'error_rate_max', 'p95_degradation_max', 'p95_absolute_max_ms')
INTS = ('failures', 'concurrency', 'max_windows')
DEFAULTS = dict(stack='taylordash', api_paths=['/api/v1/projects'], api_key_header='X-API-Key', targets=[],
                window=10.0, pause=1.0, interval=1.0, failures=3, rate=10.0, concurrency=4, timeout=2.0,
                error_rate_max=5.0, p95_degradation_max=50.0, p95_absolute_max_ms=1000.0, emit='all', max_windows=0)


class SettingsError(ValueError):
    """A source argument that cannot be used; the text names it (and never a secret)."""


def settings(args):
    """The source's arguments checked and completed, and the targets for the sampler."""
    args = dict(args or {})
    unknown = sorted(set(args) - set(DEFAULTS) - {'health_urls', 'api_url', 'api_key_env', 'baseline', 'ca_file'})
    if unknown:
        raise SettingsError('rollback_trigger: unknown argument(s) %s' % ', '.join(unknown))
    conf = dict(DEFAULTS)
    conf.update(dict((k, v) for k, v in args.items() if v is not None))
    for name in FLOATS:
        try:
            conf[name] = float(conf[name])
        except (TypeError, ValueError):
            raise SettingsError('rollback_trigger: %s=%r must be a number' % (name, conf[name]))
        if not conf[name] >= 0 or conf[name] == float('inf'):
            raise SettingsError('rollback_trigger: %s=%r must be a finite number, 0 or more' % (name, conf[name]))
    for name in INTS:
        value = conf[name]
        if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, str) and value.strip().isdigit()):
            raise SettingsError('rollback_trigger: %s=%r must be a whole number' % (name, value))
        conf[name] = int(value)
    for name in ('window', 'interval', 'rate', 'timeout'):
        if conf[name] <= 0:
            raise SettingsError('rollback_trigger: %s=%r must be above 0' % (name, conf[name]))
    if conf['emit'] not in ('all', 'rollback'):
        raise SettingsError('rollback_trigger: emit=%r must be all or rollback' % (conf['emit'],))
    if not isinstance(conf['stack'], str) or not conf['stack'].strip():
        raise SettingsError('rollback_trigger: stack must be a non-empty name')
    for name in ('api_url', 'api_key_env', 'api_key_header', 'baseline', 'ca_file'):
        if conf.get(name) is not None and not isinstance(conf[name], str):
            raise SettingsError('rollback_trigger: %s must be a string' % name)
    if not conf['api_key_header'].strip():
        raise SettingsError('rollback_trigger: api_key_header must be a header name')

    api_key = None
    key_env = conf.get('api_key_env')
    if key_env:
        # Taken out of the process environment: the playbooks this rulebook runs (ansible-runner keeps
        # its environment in its private data directory) never inherit the key.
        api_key = os.environ.pop(key_env, None) or None

    targets = []
    health = conf.get('health_urls') or {}
    if isinstance(health, str):
        health = [health]
    if isinstance(health, (list, tuple)):
        health = dict(('health%d' % (index + 1), url) for index, url in enumerate(health))
    if not isinstance(health, dict):
        raise SettingsError('rollback_trigger: health_urls must be a dict of name to URL or a list of URLs')
    for name, url in health.items():
        targets.append(dict(name=str(name), url=url, kind='health'))
    if conf.get('api_url'):
        paths = conf['api_paths']
        if not isinstance(paths, (list, tuple)) or not paths:
            raise SettingsError('rollback_trigger: api_paths must be a non-empty list of paths')
        for path in paths:
            if not isinstance(path, str):
                raise SettingsError('rollback_trigger: api_paths must be a list of paths (strings)')
            target = dict(name='api ' + str(path), url=conf['api_url'].rstrip('/') + '/' + str(path).lstrip('/'), kind='request')
            if api_key:
                target['headers'] = {conf['api_key_header']: api_key}
            targets.append(target)
    if not isinstance(conf['targets'], (list, tuple)):
        raise SettingsError('rollback_trigger: targets must be a list of dicts')
    for index, extra in enumerate(conf['targets']):
        if not isinstance(extra, dict):
            raise SettingsError('rollback_trigger: targets[%d] must be a dict' % index)
        target = dict((k, v) for k, v in extra.items() if k != 'api_key')
        if not isinstance(extra.get('headers') or {}, dict):
            raise SettingsError('rollback_trigger: targets[%d].headers must be a dict of names to values' % index)
        if extra.get('api_key') and api_key:
            target['headers'] = dict(target.get('headers') or {}, **{conf['api_key_header']: api_key})
        targets.append(target)
    if not targets:
        raise SettingsError('rollback_trigger: nothing to sample; set health_urls, api_url or targets')
    try:
        _trigger.normalize_targets(targets)
    except _trigger.TriggerError as exc:
        raise SettingsError('rollback_trigger: %s' % exc)
    return conf, targets


def _sample_and_decide(conf, targets, baseline, carry=None):
    figures = _trigger.sample(
        targets, conf['window'], interval=conf['interval'], failures=conf['failures'], rate=conf['rate'],
        concurrency=conf['concurrency'], timeout=conf['timeout'], ca_file=conf.get('ca_file'), stop_early=True,
        error_rate_max=conf['error_rate_max'], carry=carry)
    return _trigger.decide(
        figures, baseline=baseline, error_rate_max=conf['error_rate_max'], p95_degradation_max=conf['p95_degradation_max'],
        p95_absolute_max_ms=conf['p95_absolute_max_ms'], failures=conf['failures'])


def _read_baseline(conf, last):
    path = conf.get('baseline')
    if not path:
        return None
    try:
        return _trigger.load_baseline(path)
    except _trigger.TriggerError as exc:
        if last is None:
            raise SettingsError('rollback_trigger: baseline=%s - %s' % (path, exc))
        LOG.warning('rollback_trigger: %s; keeping the baseline read before', exc)
        return last


async def main(queue, args):
    """Sample, decide, put the verdict on the queue; pause; again (until max_windows, or forever)."""
    conf, targets = settings(args)
    if conf['window'] < conf['failures'] * conf['interval'] and any(t.get('kind') == 'health' for t in targets):
        LOG.warning('rollback_trigger: window %.1f s is shorter than failures x interval (%d x %.1f s): the unavailability '
                    'trigger fires only across windows (the run of failed checks is carried over the pause)',
                    conf['window'], conf['failures'], conf['interval'])
    baseline = _read_baseline(conf, None)
    window = 0
    carry = {}
    while conf['max_windows'] == 0 or window < conf['max_windows']:
        window += 1
        baseline = _read_baseline(conf, baseline)
        # The sampler blocks (threads, urllib): run it off the event loop. A run of failed health checks
        # at the end of the window before goes on in this one (carry): N consecutive failures across windows.
        verdict = await asyncio.to_thread(_sample_and_decide, conf, targets, baseline, carry)
        carry = _trigger.carry_over(verdict)
        LOG.info('rollback_trigger: stack %s window %d: %s', conf['stack'], window, _trigger.summary(verdict))
        if verdict['rollback'] or conf['emit'] == 'all':
            await queue.put({'rollback_trigger': dict(
                stack=conf['stack'], rollback=verdict['rollback'], reasons=verdict['reasons'], figures=verdict['figures'],
                window=window, baseline_used=bool(baseline),
                sampled_at=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat())})
        if conf['max_windows'] == 0 or window < conf['max_windows']:
            await asyncio.sleep(conf['pause'])


if __name__ == '__main__':
    # Print the verdicts instead of queueing them: python rollback_trigger.py URL [URL...]
    class _PrintQueue(object):
        async def put(self, event):
            print(event)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_PrintQueue(), dict(health_urls=sys.argv[1:], window=3, pause=1, max_windows=3)))
