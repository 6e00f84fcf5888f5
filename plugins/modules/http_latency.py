#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: http_latency
short_description: Sample HTTP endpoints a bounded number of times and compare p50/p95 latency with targets
version_added: 0.1.0
description:
  - Sends O(samples) requests to each endpoint of O(endpoints), round by round (one request to
    every endpoint per round, so a passing stall of the server affects all of them alike), and
    reports the latency of the good answers - count, min, median (p50), 95th percentile (p95),
    max and mean.
  - An answer is good when its status is in the endpoint's C(status_codes) and, when asked for, its
    body matches C(body_regex), is a JSON list or object (C(json_type)), or is a JSON object
    with a non-empty C(json_key) (for example a login answer with a C(session_token)). Bodies are
    read, checked and dropped; they never appear in results or messages.
  - Fails when an endpoint gave a bad answer, when its p50 or p95 is over C(max_p50) or C(max_p95),
    or when the O(timeout) for the whole run passed before every sample was taken. The message names
    each failing endpoint with its measured p50 and p95 and the target.
  - This is the runbook's performance validation (API under 0.5 s, login under 0.5 s, frontend
    under 1 s) measured over several requests instead of one C(curl -w %{time_total}), and its
    manual checklist (login returns a session token, the projects API returns a list) with
    O(samples=1).
  - Read-only; it sends the same requests in check mode.
author: TaylorDash operations team (@taylordash)
extends_documentation_fragment:
  - taylordash.rollback.attributes
  - taylordash.rollback.http_options
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
  endpoints:
    description:
      - The endpoints to sample, each with its own request, expectations and targets.
      - The request keys (C(url), C(method), C(headers), C(body), C(status_codes), C(body_regex))
        are the ones every HTTP module of the collection takes, with the same defaults.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the endpoint in results and messages, for example V(api_projects). Unique.
        type: str
        required: true
      url:
        description:
          - HTTP or HTTPS URL. Credentials in it are sent as Basic authentication and never shown.
          - The host is an IP address or a host name (ASCII letters, digits, C(-), C(_) and dots), the
            port from V(1) to V(65535).
        type: str
        required: true
      method:
        description: HTTP method.
        type: str
        default: GET
        choices: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]
      headers:
        description:
          - Request headers, for example an C(X-API-Key) or a C(Content-Type).
          - Secret (C(no_log)); results list the header names only.
        type: dict
        default: {}
      body:
        description:
          - Request body, sent as given (set a C(Content-Type) in O(endpoints[].headers) if the
            server needs one).
          - Secret (C(no_log)), since a login body carries a password.
        type: str
      status_codes:
        description: HTTP status codes of a good answer, each from V(100) to V(599).
        type: list
        elements: int
        default: [200]
      body_regex:
        description:
          - Python regular expression that must be found (C(re.search)) in the body of a good answer.
          - Only the first O(max_body_bytes) bytes of the body are searched.
        type: str
      json_type:
        description: The body of a good answer must be a JSON value of this type.
        type: str
        choices: [list, object]
      json_key:
        description:
          - The body of a good answer must be a JSON object whose key C(json_key) holds a non-empty
            value. The value itself is never returned.
        type: str
      max_p50:
        description:
          - Highest acceptable median latency in seconds, more than V(0) and at most V(86400). No
            limit when unset.
        type: float
      max_p95:
        description:
          - Highest acceptable 95th percentile latency in seconds, more than V(0) and at most
            V(86400). No limit when unset.
        type: float
  samples:
    description:
      - Requests per endpoint whose latency counts.
      - Percentiles are by nearest rank, so they are latencies that were measured; with 10 samples,
        p95 is the slowest one.
    type: int
    default: 10
  warmup:
    description: Requests per endpoint sent first and not counted (connection set-up, cold caches).
    type: int
    default: 0
  interval:
    description: Seconds to pause after each round of requests, from V(0) to V(86400).
    type: float
    default: 0
notes:
  - Latency is wall time from before connecting to the end of reading the body (like
    C(curl -w %{time_total})), on a monotonic clock. Each request uses a new connection.
  - Only good answers count in the latency figures; bad answers are counted in RV(endpoints[].errors).
  - O(timeout) is the deadline of the whole run; an endpoint that did not get all its samples by
    then fails.
seealso:
  - module: taylordash.rollback.health_poll
  - module: taylordash.rollback.validate_p1
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: Check the response times the runbook expects after a rollback
  taylordash.rollback.http_latency:
    samples: 10
    warmup: 1
    timeout: 60
    endpoints:
      - name: api_projects
        url: http://localhost:3000/api/v1/projects
        headers:
          X-API-Key: "{{ stack_api_key }}"
        json_type: list
        max_p50: 0.5
        max_p95: 0.5
      - name: auth_login
        url: http://localhost:3000/api/v1/auth/login
        method: POST
        headers:
          Content-Type: application/json
        body: "{{ {'username': stack_admin_username, 'password': stack_admin_password} | to_json }}"
        json_key: session_token
        max_p50: 0.5
        max_p95: 0.5
      - name: frontend
        url: http://localhost:5174/
        max_p50: 1.0
        max_p95: 1.0
  no_log: true
  register: latency

- name: Show the measured figures (no secret in them)
  ansible.builtin.debug:
    msg: "{{ latency.endpoints | map(attribute='summary') | list }}"

- name: One login that must return a session token (a checklist item, not a benchmark)
  taylordash.rollback.http_latency:
    samples: 1
    endpoints:
      - name: auth_login
        url: http://localhost:3000/api/v1/auth/login
        method: POST
        headers:
          Content-Type: application/json
        body: "{{ {'username': 'admin', 'password': vault_admin_password} | to_json }}"
        json_key: session_token
  no_log: true
"""

RETURN = r"""
msg:
  description: Summary; on failure names each failing endpoint with its measured p50 and p95, the target and the problem.
  returned: always
  type: str
  sample: "1 of 3 endpoints failed: api_projects: p50 0.712 s, p95 0.745 s over 10 samples (target 0.5 s): p50 and p95 over the target"
passed:
  description: Whether every endpoint passed.
  returned: always
  type: bool
  sample: true
failed_endpoints:
  description: Names of the endpoints that failed, in the order of O(endpoints).
  returned: always
  type: list
  elements: str
  sample: [api_projects]
timing:
  description: When the module started and ended (ISO 8601, UTC) and how many seconds it ran.
  returned: always
  type: dict
  sample: {start: "2025-06-01T12:00:00.000000+00:00", end: "2025-06-01T12:00:00.213000+00:00", seconds: 0.213}
deadline_reached:
  description: Whether O(timeout) passed before every sample was taken.
  returned: success or when sampling ran
  type: bool
  sample: false
duration:
  description: Seconds the sampling took.
  returned: success or when sampling ran
  type: float
  sample: 0.213
endpoints:
  description: One entry per endpoint of O(endpoints), in the same order.
  returned: success or when sampling ran
  type: list
  elements: dict
  contains:
    name:
      description: The endpoint's name.
      type: str
      sample: api_projects
    url:
      description: The endpoint's URL, with credentials in it masked.
      type: str
      sample: http://localhost:3000/api/v1/projects
    method:
      description: HTTP method used.
      type: str
      sample: GET
    request_headers:
      description: Names of the request headers sent (values are never returned).
      type: list
      elements: str
      sample: [X-API-Key]
    passed:
      description: Every sample was taken, every answer was good, and p50 and p95 are within the targets.
      type: bool
      sample: true
    samples:
      description: Good answers, whose latency is in RV(endpoints[].latency).
      type: int
      sample: 10
    sampled:
      description: Requests counted (good and bad), warm-up requests excluded.
      type: int
      sample: 10
    errors:
      description: Bad answers (unexpected status, failed check, timeout, no connection).
      type: int
      sample: 0
    statuses:
      description: How many answers had each HTTP status (key V(none) for requests that got no answer).
      type: dict
      sample: {"200": 10}
    last_error:
      description: Why the last bad answer was bad, or V(null).
      type: str
      sample: null
    json_length:
      description: Number of items of the JSON list or object of the last good answer, when a JSON check was asked for.
      type: int
      sample: 3
    latency:
      description: Latency figures of the good answers in seconds; V(null) figures when there was none.
      type: dict
      contains:
        count:
          description: Number of good answers measured.
          type: int
        min:
          description: Fastest.
          type: float
        p50:
          description: Median, nearest rank.
          type: float
        p95:
          description: 95th percentile, nearest rank.
          type: float
        max:
          description: Slowest.
          type: float
        mean:
          description: Arithmetic mean.
          type: float
      sample: {count: 10, min: 0.0031, p50: 0.0042, p95: 0.0071, max: 0.0071, mean: 0.0045}
    max_p50:
      description: The p50 target, or V(null).
      type: float
      sample: 0.5
    max_p95:
      description: The p95 target, or V(null).
      type: float
      sample: 0.5
    within_target:
      description: p50 and p95 are within the targets (false when no answer was good).
      type: bool
      sample: true
    problems:
      description: What made the endpoint fail; empty when it passed.
      type: list
      elements: str
      sample: []
    summary:
      description: One line with the name, figures, target and problems.
      type: str
      sample: "api_projects: p50 0.004 s, p95 0.007 s over 10 samples (target 0.5 s)"
"""

import time

from ansible_collections.taylordash.rollback.plugins.module_utils._http_options import (
    client_argument_spec,
    client_problems,
    display_url,
    request_argument_spec,
    request_headers,
    request_problems,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._http_probe import build_opener, probe
from ansible_collections.taylordash.rollback.plugins.module_utils._latency import EndpointVerdict, judge_answer
from ansible_collections.taylordash.rollback.plugins.module_utils._masking import (
    mask_secrets_only,
    masked_invocation,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._safe_module import build_module
from ansible_collections.taylordash.rollback.plugins.module_utils._seconds import seconds_problem

# A request is not started with less time than this left before the deadline.
MIN_REQUEST_BUDGET = 0.05


class Sampler(object):
    """Round-robin sampling under one deadline. ``send(endpoint, timeout)`` does one request and
    returns a ProbeResult; ``clock`` and ``sleep`` are injectable so unit tests need no server."""

    def __init__(self, endpoints, samples, warmup, timeout, request_timeout, interval, send,
                 clock=time.monotonic, sleep=time.sleep):
        self.endpoints = endpoints
        self.samples = samples
        self.warmup = warmup
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.interval = interval
        self.send = send
        self.clock = clock
        self.sleep = sleep

    def run(self):
        start = self.clock()
        deadline = start + self.timeout
        state = dict((ep['name'], dict(latencies=[], errors=[], statuses={}, last_error=None, json_length=None))
                     for ep in self.endpoints)
        deadline_reached = False
        for round_no in range(self.warmup + self.samples):
            counted = round_no >= self.warmup
            for ep in self.endpoints:
                left = deadline - self.clock()
                if left < MIN_REQUEST_BUDGET:
                    deadline_reached = True
                    break
                budget = min(self.request_timeout, left)
                result = self.send(ep, budget)
                problem, json_length = judge_answer(
                    result.status, result.body, result.truncated, result.error, ep['status_codes'],
                    ep.get('json_type'), ep.get('json_key'), ep.get('_pattern'))
                if problem is not None and result.status is None and budget < self.request_timeout \
                        and self.clock() >= deadline - MIN_REQUEST_BUDGET:
                    # Cut short by the run's deadline, not slow by itself: not a sample.
                    deadline_reached = True
                    break
                if not counted:
                    continue
                entry = state[ep['name']]
                key = 'none' if result.status is None else result.status
                entry['statuses'][key] = entry['statuses'].get(key, 0) + 1
                if problem is None:
                    entry['latencies'].append(result.elapsed)
                    if json_length is not None:
                        entry['json_length'] = json_length
                else:
                    entry['errors'].append(problem)
                    entry['last_error'] = problem
            if deadline_reached:
                break
            if self.interval and round_no + 1 < self.warmup + self.samples:
                pause = min(self.interval, deadline - self.clock())
                if pause > 0:
                    self.sleep(pause)
        verdicts = []
        for ep in self.endpoints:
            entry = state[ep['name']]
            verdicts.append(EndpointVerdict(
                ep['name'], self.samples, entry['latencies'], entry['errors'], entry['statuses'],
                entry['last_error'], entry['json_length'], ep.get('max_p50'), ep.get('max_p95'),
                deadline_reached))
        return verdicts, deadline_reached, self.clock() - start


def check_params(params):
    """Problems with the arguments (texts for one message), and the endpoints with body_regex
    compiled (``_pattern``) and the URL checked (``_target``). module.params is left as it is:
    it goes back as the task's invocation."""
    problems = client_problems(params)
    if params['samples'] < 1:
        problems.append('samples must be at least 1, got %s' % params['samples'])
    if params['warmup'] < 0:
        problems.append('warmup must not be negative, got %s' % params['warmup'])
    problem = seconds_problem('interval', params['interval'], allow_zero=True)
    if problem:
        problems.append(problem)
    endpoints = params['endpoints'] or []
    prepared = []
    if not endpoints:
        problems.append('endpoints is empty: name at least one endpoint to sample')
    seen = set()
    for ep in endpoints:
        name = ep['name']
        if name in seen:
            problems.append('endpoint name %s is used twice; names must be unique' % name)
        seen.add(name)
        found, target, pattern = request_problems(ep, prefix='%s: ' % name)
        problems.extend(found)
        for key in ('max_p50', 'max_p95'):
            problem = seconds_problem(key, ep[key])
            if problem:
                problems.append('%s: %s' % (name, problem))
        prepared.append(dict(ep, _pattern=pattern, _target=target))
    return problems, prepared


def shown_url(ep):
    target = ep.get('_target')
    return target.display if target is not None else display_url(ep['url'])


def summarise(verdicts):
    failed = [v for v in verdicts if not v.passed]
    if failed:
        return '%d of %d endpoint%s failed: %s' % (
            len(failed), len(verdicts), '' if len(verdicts) == 1 else 's', '; '.join(v.describe() for v in failed))
    return '%d endpoint%s passed: %s' % (len(verdicts), '' if len(verdicts) == 1 else 's',
                                         '; '.join(v.describe() for v in verdicts))


def argument_spec():
    endpoint = request_argument_spec()
    endpoint.update(
        name=dict(type='str', required=True),
        json_type=dict(type='str', choices=['list', 'object']),
        json_key=dict(type='str', no_log=False),
        max_p50=dict(type='float'),
        max_p95=dict(type='float'),
    )
    spec = client_argument_spec()
    spec.update(
        endpoints=dict(type='list', elements='dict', required=True, options=endpoint),
        samples=dict(type='int', default=10),
        warmup=dict(type='int', default=0),
        interval=dict(type='float', default=0),
    )
    return spec


def main():
    spec = argument_spec()
    module = build_module(spec, supports_check_mode=True)
    # A short header or body value (say 1) is no secret: masking it would garble the figures.
    mask_secrets_only(module)
    params = module.params
    problems, endpoints = check_params(params)
    invocation = masked_invocation(spec, params)
    for entry, ep in zip(invocation['module_args'].get('endpoints') or [], endpoints):
        entry['url'] = shown_url(ep)
    base = dict(changed=False, passed=False, failed_endpoints=[], invocation=invocation)
    if problems:
        module.fail_json(msg='; '.join(problems), **base)
    try:
        opener = build_opener(validate_certs=params['validate_certs'], ca_path=params['ca_path'],
                              follow_redirects=params['follow_redirects'], use_proxy=params['use_proxy'])
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(msg='Cannot set up TLS (ca_path %s): %s' % (params['ca_path'], exc), **base)
    for ep in endpoints:
        ep['_headers'] = request_headers(ep['headers'], ep['_target'])

    def send(ep, budget):
        return probe(ep['_target'].url, method=ep['method'], headers=ep['_headers'], body=ep['body'],
                     timeout=budget, max_body=params['max_body_bytes'], opener=opener)

    sampler = Sampler(endpoints, params['samples'], params['warmup'], params['timeout'],
                      params['request_timeout'], params['interval'], send)
    verdicts, deadline_reached, duration = sampler.run()
    measured = []
    for ep, verdict in zip(endpoints, verdicts):
        entry = verdict.as_dict()
        entry.update(url=shown_url(ep), method=ep['method'], request_headers=sorted(ep['headers']))
        measured.append(entry)
    result = dict(
        changed=False,
        passed=all(v.passed for v in verdicts),
        failed_endpoints=[v.name for v in verdicts if not v.passed],
        deadline_reached=deadline_reached,
        duration=round(duration, 3),
        endpoints=measured,
        msg=summarise(verdicts),
        invocation=invocation,
    )
    if not result['passed']:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
