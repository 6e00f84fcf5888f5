#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: rollback_trigger
short_description: Sample a stack and decide whether it must be rolled back (the runbook's decision matrix)
description:
  - Samples the stack for at most O(window) seconds and applies the runbook's "Rollback Decision
    Matrix" to what it saw. It returns RV(rollback) with one reason per trigger that fired, and the
    figures the decision was made on.
  - Health targets (O(targets[].kind=health)) are checked every O(interval) seconds; O(failures)
    failed checks in a row mean the service is unavailable. Request targets are sent requests at a
    steady O(rate) per second, round robin, with at most O(concurrency) in flight.
  - "Triggers: C(unavailable) (O(failures) consecutive failed health checks, or a request target that
    refused every connection for O(failures) x O(interval) seconds), C(error_rate) (more than
    O(error_rate_max) percent of the requests the service took failed: an HTTP error answer or a
    timeout), C(p95_degradation) (p95 more than O(p95_degradation_max) percent above the O(baseline)),
    C(p95_absolute) (p95 above O(p95_absolute_max_ms), the runbook's 1 s API threshold)."
  - With O(stop_early) the sampling ends as soon as the verdict cannot change any more (the health
    checks failed O(failures) times in a row, or the error rate is above the limit with 95 %
    confidence), so a broken deploy is detected in a few seconds.
  - Read-only; it never changes anything and samples in check mode too.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
extends_documentation_fragment:
  - taylordash.rollback.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it samples in check mode exactly as in a normal run.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  targets:
    description:
      - What to sample. Names are unique; they key the per-target figures of RV(figures) and the baseline.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The target's name, for example V(backend_health), V(api_projects).
        type: str
        required: true
      url:
        description: An http:// or https:// URL. User info, query and fragment are never returned.
        type: str
        required: true
      kind:
        description:
          - V(health) is checked every O(interval) seconds; V(request) is sampled at O(rate).
        type: str
        choices: [health, request]
        default: request
      method:
        description: The HTTP method. V(POST) when O(targets[].body) is given and this is not.
        type: str
        choices: [GET, POST, HEAD]
      headers:
        description: Request headers. Their values are never returned.
        type: dict
      body:
        description: The request body (for example a login's JSON). Never returned.
        type: str
      use_api_key:
        description: Send O(api_key) in the O(api_key_header) header.
        type: bool
        default: false
      status_codes:
        description: The status codes of a good answer. Default any 2xx or 3xx.
        type: list
        elements: int
  api_key:
    description: The API key sent to the targets with O(targets[].use_api_key). Never returned.
    type: str
  api_key_header:
    description: The header that carries O(api_key).
    type: str
    default: X-API-Key
  baseline:
    description:
      - A baseline file written by C(playbooks/baseline.yml) (the C(taylordash.rollback.baseline)
        role). Without it the C(p95_degradation) trigger is not checked (RV(skipped) says so).
      - When given, the file must exist and be a valid baseline; the module fails before sampling
        otherwise.
    type: path
  window:
    description: The longest the sampling lasts, in seconds (more than V(0), at most V(3600)).
    type: float
    default: 10
  interval:
    description: Seconds between two health checks of a health target (more than V(0)).
    type: float
    default: 1
  failures:
    description: Consecutive failed health checks that mean the service is unavailable (at least V(1)).
    type: int
    default: 3
  rate:
    description: Requests per second sent to the request targets together (more than V(0), at most V(1000)).
    type: float
    default: 10
  concurrency:
    description: Requests in flight at most; a tick without a free slot is skipped and counted.
    type: int
    default: 4
  request_timeout:
    description: Seconds one request or health check may take; a slower one is a failure.
    type: float
    default: 2
  ca_path:
    description: PEM file of CA certificates for HTTPS targets with a private CA.
    type: path
  stop_early:
    description: End the sampling as soon as the verdict cannot change any more.
    type: bool
    default: true
  error_rate_max:
    description: The largest acceptable error rate, in percent (runbook - 5 %).
    type: float
    default: 5
  p95_degradation_max:
    description: The largest acceptable p95 increase over the baseline, in percent (runbook - 50 %).
    type: float
    default: 50
  p95_min_increase_ms:
    description:
      - The smallest p95 increase, in milliseconds, that counts as a degradation - a small absolute
        floor, as a baseline of a few milliseconds doubles on scheduling noise alone.
      - The noise guard scales with the baseline - the p50 must have risen by at least
        O(p95_degradation_max) percent of the baseline p95 (half of it at 50 %), and by at least half
        of this floor, so one slow request among a few (the p95 of a short sampling is close to its
        slowest request) does not fire while a build answering twice as slow does, however fast the stack.
    type: float
    default: 10
  p95_absolute_max_ms:
    description:
      - The largest acceptable p95 of a request target, in milliseconds (runbook - 1 s). V(0) turns the check off.
      - The p50 must be above half of it too, so a few slow requests on a busy host do not fire.
    type: float
    default: 1000
notes:
  - The p95 triggers judge a target only over at least 20 good answers (below that the nearest-rank
    p95 is the slowest answer); give O(window) x O(rate) enough requests per request target.
  - A request that gets no connection at all (refused, reset) is unavailability, not an error; the
    error rate is over the requests the service took. A deploy whose service takes longer to start
    than O(failures) x O(interval) seconds looks unavailable while it starts; sample after the
    deploy has waited for health, or raise O(failures).
seealso:
  - module: taylordash.rollback.http_latency
  - module: taylordash.rollback.health_poll
"""

EXAMPLES = r"""
- name: Should the stack be rolled back?
  taylordash.rollback.rollback_trigger:
    targets:
      - {name: backend_health, url: "http://localhost:3000/health/ready", kind: health}
      - {name: api_projects, url: "http://localhost:3000/api/v1/projects", use_api_key: true}
      - {name: frontend, url: "http://localhost:5174/"}
    api_key: "{{ stack_api_key }}"
    baseline: /opt/taylordash/.rollback/baseline.json
    window: 10
  register: trigger

- name: Say why
  ansible.builtin.debug:
    msg: "{{ trigger.reasons | map(attribute='detail') | list }}"
  when: trigger.rollback
"""

RETURN = r"""
rollback:
  description: Whether a trigger fired.
  returned: success
  type: bool
  sample: true
reasons:
  description: One per trigger that fired, in the order of the targets.
  returned: success
  type: list
  elements: dict
  contains:
    trigger:
      description: C(unavailable), C(error_rate), C(p95_degradation) or C(p95_absolute).
      type: str
    target:
      description: The target's name, or C(overall) for the error rate of all request targets.
      type: str
    value:
      description: The figure that crossed the threshold (failures, percent, milliseconds or seconds).
      type: float
    threshold:
      description: The threshold it crossed.
      type: float
    detail:
      description: One sentence for a human.
      type: str
  sample:
    - trigger: unavailable
      target: backend_health
      value: 3
      threshold: 3
      detail: "backend_health failed 3 consecutive health checks (HTTP 503); unavailable for 2.0 s"
figures:
  description:
    - What was measured, per target (C(targets)) and over all request targets (C(overall)) -
      requests, errors, refused, error_rate (percent), p50_ms, p95_ms, consecutive_failures,
      unavailable_s, longest_down_s, sampled_s - and C(sampled_s), C(stopped_early), C(stop_reason),
      C(settings).
  returned: success
  type: dict
decided_after_s:
  description: Seconds from the start of the sampling to the decision.
  returned: success
  type: float
  sample: 2.01
baseline:
  description: The baseline used (path, recorded_at, images), or V(null).
  returned: success
  type: dict
skipped:
  description: The triggers that were not checked, each with why.
  returned: success
  type: list
  elements: str
msg:
  description: One line - what fired, or that nothing did.
  returned: always
  type: str
timing:
  description: When the module started and ended (ISO 8601, UTC) and how many seconds it ran.
  returned: always
  type: dict
"""

import math
import time

from ansible_collections.taylordash.rollback.plugins.module_utils._http_options import (
    UrlError,
    headers_problems,
    parse_url,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._masking import (
    mask_secrets_only,
    masked_invocation,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._safe_module import build_module
from ansible_collections.taylordash.rollback.plugins.module_utils import _trigger

TARGET_OPTIONS = dict(
    name=dict(type='str', required=True),
    url=dict(type='str', required=True),
    kind=dict(type='str', choices=['health', 'request'], default='request'),
    method=dict(type='str', choices=['GET', 'POST', 'HEAD']),
    headers=dict(type='dict', no_log=True),
    body=dict(type='str', no_log=True),
    use_api_key=dict(type='bool', default=False),
    status_codes=dict(type='list', elements='int'),
)

# name: (minimum, inclusive?, maximum)
NUMBERS = dict(
    window=(0, False, 3600), interval=(0, False, 3600), rate=(0, False, 1000),
    request_timeout=(0, False, 3600), error_rate_max=(0, True, 100),
    p95_degradation_max=(0, True, 100000), p95_min_increase_ms=(0, True, 3600000),
    p95_absolute_max_ms=(0, True, 3600000),
)


def argument_spec():
    return dict(
        targets=dict(type='list', elements='dict', required=True, options=TARGET_OPTIONS),
        api_key=dict(type='str', no_log=True),
        api_key_header=dict(type='str', default='X-API-Key', no_log=False),
        baseline=dict(type='path'),
        window=dict(type='float', default=10.0),
        interval=dict(type='float', default=1.0),
        failures=dict(type='int', default=3),
        rate=dict(type='float', default=10.0),
        concurrency=dict(type='int', default=4),
        request_timeout=dict(type='float', default=2.0),
        ca_path=dict(type='path'),
        stop_early=dict(type='bool', default=True),
        error_rate_max=dict(type='float', default=5.0),
        p95_degradation_max=dict(type='float', default=50.0),
        p95_min_increase_ms=dict(type='float', default=10.0),
        p95_absolute_max_ms=dict(type='float', default=1000.0),
    )


def number_problems(p):
    problems = []
    for name, (low, inclusive, high) in sorted(NUMBERS.items()):
        value = p[name]
        if value is None or not math.isfinite(value) or value > high or value < low or (value == low and not inclusive):
            problems.append('%s must be a number %s %s and at most %s, got %s'
                            % (name, 'from' if inclusive else 'above', low, high, value))
    for name, low, high in (('failures', 1, 1000), ('concurrency', 1, 64)):
        if p[name] is None or not low <= p[name] <= high:
            problems.append('%s must be a whole number from %d to %d, got %s' % (name, low, high, p[name]))
    return problems


def build_targets(p):
    """The sampler's targets, and the problems with the given ones (never quoting a secret)."""
    problems = []
    targets = []
    names = set()
    for index, item in enumerate(p['targets'] or []):
        where = 'targets[%d]' % index
        name = item.get('name')
        if not name or not name.strip():
            problems.append('%s: name must not be empty' % where)
            continue
        if name in names:
            problems.append('%s: name %s is used twice; give each target its own name' % (where, name))
        names.add(name)
        try:
            url = parse_url(item.get('url')).url
        except UrlError as exc:
            problems.append('%s (%s): %s' % (where, name, exc))
            continue
        headers = dict((k, '' if v is None else '%s' % (v,)) for k, v in (item.get('headers') or {}).items())
        if item.get('use_api_key'):
            if not p['api_key']:
                problems.append('%s (%s): use_api_key is set but api_key is empty; set api_key' % (where, name))
            headers[p['api_key_header']] = p['api_key'] or ''
        problems.extend('%s (%s): %s' % (where, name, text) for text in headers_problems(headers))
        codes = item.get('status_codes')
        if codes is not None and (not codes or any(not 100 <= code <= 599 for code in codes)):
            problems.append('%s (%s): status_codes must list HTTP status codes from 100 to 599' % (where, name))
        targets.append(dict(name=name, url=url, kind=item.get('kind') or 'request', method=item.get('method'),
                            headers=headers, body=item.get('body'), status_codes=codes))
    if not p['targets']:
        problems.append('targets is empty; give at least one health or request target')
    return problems, targets


def main():
    spec = argument_spec()
    module = build_module(spec, supports_check_mode=True)
    mask_secrets_only(module)
    p = module.params
    base = dict(changed=False, invocation=masked_invocation(spec, p))
    problems = number_problems(p)
    header = p['api_key_header']
    if not header or headers_problems({header: 'x'}):
        problems.append('api_key_header %r is not a valid header name' % (header,))
    target_problems, targets = build_targets(p)
    problems.extend(target_problems)
    if problems:
        module.fail_json(msg='Cannot sample: ' + '; '.join(problems), rollback=False, **base)
    baseline = None
    skipped = []
    if p['baseline']:
        try:
            baseline = _trigger.load_baseline(p['baseline'])
        except _trigger.TriggerError as exc:
            module.fail_json(msg='%s' % exc, rollback=False, **base)
    else:
        skipped.append('p95_degradation: no baseline given (record one with playbooks/baseline.yml and set baseline)')
    if p['p95_absolute_max_ms'] == 0:
        skipped.append('p95_absolute: p95_absolute_max_ms is 0 (off)')
    if not any(t['kind'] == 'request' for t in targets):
        skipped.append('error_rate, p95: no request targets, only health checks')
    started = time.monotonic()
    try:
        figures = _trigger.sample(
            targets, p['window'], interval=p['interval'], failures=p['failures'], rate=p['rate'],
            concurrency=p['concurrency'], timeout=p['request_timeout'], ca_file=p['ca_path'],
            stop_early=p['stop_early'], error_rate_max=p['error_rate_max'])
    except (_trigger.TriggerError, IOError, OSError, ValueError) as exc:
        module.fail_json(msg='Cannot sample: %s' % exc, rollback=False, **base)
    decided = time.monotonic() - started
    verdict = _trigger.decide(
        figures, baseline=baseline, error_rate_max=p['error_rate_max'],
        p95_degradation_max=p['p95_degradation_max'],
        p95_absolute_max_ms=p['p95_absolute_max_ms'] or None, failures=p['failures'],
        p95_min_increase_ms=p['p95_min_increase_ms'])
    shown_baseline = None
    if baseline is not None:
        shown_baseline = dict(path=p['baseline'], recorded_at=baseline.get('recorded_at'), images=baseline.get('images') or {})
    module.exit_json(
        msg=_trigger.summary(verdict), rollback=verdict['rollback'], reasons=verdict['reasons'],
        figures=verdict['figures'], decided_after_s=round(decided, 3), baseline=shown_baseline,
        skipped=skipped, **base)


if __name__ == '__main__':
    main()
