#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: health_poll
short_description: Poll an HTTP endpoint until it is healthy, or fail at a deadline
description:
  - Sends requests to O(url) every O(interval) seconds until O(success_threshold) answers in a row
    are as expected (status in O(status_codes) and, if given, body matching O(body_regex)), or
    until O(timeout) seconds have passed.
  - Reports how long recovery took and the latency of the successful requests, so a rollback can
    say when the service came back instead of sleeping a fixed time and hoping.
  - Read-only; it never changes anything and polls for real in check mode too.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
extends_documentation_fragment:
  - taylordash.rollback.attributes
  - taylordash.rollback.http_options
  - taylordash.rollback.http_options.request
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it polls in check mode exactly as in a normal run.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  url:
    description:
      - HTTP or HTTPS URL. Credentials in it are sent as Basic authentication and never shown.
      - The host is an IP address or a host name (ASCII letters, digits, C(-), C(_) and dots), the
        port from V(1) to V(65535).
      - One of O(url) and O(urls) is required.
    type: str
    required: false
  urls:
    description:
      - Several URLs polled at the same time in one module run, one thread each, every one with the
        same request options, O(timeout) (one deadline for all), O(interval) and O(success_threshold).
        Each is judged as O(url) would be; the module succeeds only when all are healthy.
      - One module run instead of one per service saves the start of a module run per service, and
        the services are waited for side by side instead of one after the other.
      - Each URL is checked as O(url) is, before the first request. Mutually exclusive with O(url).
    type: list
    elements: str
  interval:
    description:
      - Seconds between the starts of two requests. A request that takes longer than this is
        followed at once by the next one.
      - From V(0) to V(86400).
    type: float
    default: 0.25
  success_threshold:
    description:
      - Number of successful answers in a row needed to call the endpoint healthy. A failed answer
        resets the count.
      - Two by default, so a single lucky answer from a flapping service is not enough.
    type: int
    default: 2
notes:
  - The poll loop runs on a monotonic clock and sleeps only for what is left of O(interval), never
    past the deadline.
  - RV(elapsed) counts from the start of the first request to the end of the request that made the
    endpoint healthy.
  - O(timeout) is the deadline of the whole poll.
seealso:
  - module: taylordash.rollback.container_health
    description: The health check of a service without a health URL - its containers run, and are healthy by the image HEALTHCHECK.
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
  - module: taylordash.rollback.image_retag
"""

EXAMPLES = r"""
- name: Wait for every rolled-back service at once (one module run, one thread per URL)
  taylordash.rollback.health_poll:
    urls:
      - http://localhost:8000/health/ready
      - http://localhost:3000/
    timeout: 60
  register: health

- name: Wait until the backend answers ready twice in a row, at most 60 seconds
  taylordash.rollback.health_poll:
    url: http://localhost:3000/health/ready
  register: backend_health

- name: Report the recovery time
  ansible.builtin.debug:
    msg: "Backend healthy after {{ backend_health.elapsed }} s, p95 latency {{ backend_health.latency.p95 }} s"

- name: Check an authenticated API answers with projects
  taylordash.rollback.health_poll:
    url: http://localhost:3000/api/v1/projects
    headers:
      X-API-Key: "{{ stack_api_key }}"
    body_regex: '"projects"'
    success_threshold: 3
    timeout: 30

- name: Probe the TLS front with a private CA
  taylordash.rollback.health_poll:
    url: https://localhost:8443/
    ca_path: /opt/taylordash/ssl/ca.pem
    status_codes: [200, 204]
"""

RETURN = r"""
healthy:
  description: Whether the endpoint reached O(success_threshold) successes in a row before the deadline.
  returned: always
  type: bool
  sample: true
url:
  description: The polled URL, with credentials in it masked.
  returned: with O(url)
  type: str
  sample: http://localhost:3000/health/ready
attempts:
  description: Number of requests sent.
  returned: always
  type: int
  sample: 5
consecutive_successes:
  description: Successful answers in a row at the end of the poll.
  returned: always
  type: int
  sample: 2
elapsed:
  description:
    - Seconds from the start of the first request until the endpoint was healthy, or until the
      poll gave up.
  returned: always
  type: float
  sample: 0.743
first_success_elapsed:
  description: Seconds from the start of the first request to the end of the first successful one; V(null) if none succeeded.
  returned: always
  type: float
  sample: 0.512
latency:
  description: Latency in seconds of the successful requests; the figures are V(null) when none succeeded.
  returned: always
  type: dict
  contains:
    count:
      description: Number of successful requests measured.
      type: int
      sample: 2
    min:
      description: Fastest successful request.
      type: float
      sample: 0.0011
    p50:
      description: Median (nearest rank).
      type: float
      sample: 0.0013
    p95:
      description: 95th percentile (nearest rank).
      type: float
      sample: 0.0016
    max:
      description: Slowest successful request.
      type: float
      sample: 0.0016
last_status:
  description: HTTP status of the last answer; V(null) if the last request got no answer.
  returned: always
  type: int
  sample: 200
last_error:
  description:
    - Why the last request did not count as a success (connection error, timeout, unexpected
      status, body mismatch); V(null) if it succeeded.
  returned: always
  type: str
  sample: 'connection failed: Connection refused'
request_headers:
  description: Names of the request headers sent (values are never returned).
  returned: always
  type: list
  elements: str
  sample: [X-API-Key]
msg:
  description: Summary; on failure names the URL, the deadline and the last status or error.
  returned: always
  type: str
  sample: http://localhost:3000/health/ready healthy after 0.74 s (2 successes in a row, 5 attempts).
urls:
  description: With O(urls), the URLs polled, credentials masked, in the order given.
  returned: with O(urls)
  type: list
  elements: str
  sample: [http://localhost:8000/health/ready, http://localhost:3000/]
results:
  description:
    - With O(urls), one result per URL in the order given, with the keys a run with O(url) returns
      (C(url), C(healthy), C(attempts), C(consecutive_successes), C(elapsed), C(first_success_elapsed),
      C(latency), C(last_status), C(last_error), C(msg)). RV(healthy) is then true when all are, and
      RV(elapsed) is the longest.
  returned: with O(urls)
  type: list
  elements: dict
  sample: [{url: http://localhost:8000/health/ready, healthy: true, elapsed: 0.52, attempts: 3}]
timing:
  description: When the module started and ended (ISO 8601, UTC) and how many seconds it ran.
  returned: always
  type: dict
  sample: {start: "2025-06-01T12:00:00.000000+00:00", end: "2025-06-01T12:00:00.743000+00:00", seconds: 0.743}
"""

import threading
import time

from ansible_collections.taylordash.rollback.plugins.module_utils._http_options import (
    client_problems,
    display_url,
    http_argument_spec,
    request_headers,
    request_problems,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._http_probe import (
    build_opener,
    probe,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._latency import (
    latency_figures as shared_latency_figures,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._masking import (
    mask_secrets_only,
    masked_invocation,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._safe_module import build_module
from ansible_collections.taylordash.rollback.plugins.module_utils._seconds import seconds_problem


def latency_figures(values):
    """count, min, p50, p95, max (nearest rank) of the successful requests' seconds."""
    figures = shared_latency_figures(values)
    figures.pop('mean')
    return figures


def judge(result, status_codes, body_pattern):
    """None when the answer counts as a success, else the reason it does not. Pure."""
    if result.status is None:
        return result.error or 'no answer'
    if result.status not in status_codes:
        return 'status %s not in %s' % (result.status, list(status_codes))
    if body_pattern is not None and not body_pattern.search(result.body or ''):
        return 'body does not match %r (status %s)' % (body_pattern.pattern, result.status)
    return None


class Poller(object):
    """Deadline-bounded poll loop. ``send`` does one request (given its timeout) and returns a
    ProbeResult; ``clock`` and ``sleep`` are injectable so unit tests run without waiting."""

    def __init__(self, send, timeout, interval, request_timeout, success_threshold,
                 status_codes, body_pattern=None, clock=time.monotonic, sleep=time.sleep):
        self.send = send
        self.timeout = timeout
        self.interval = interval
        self.request_timeout = request_timeout
        self.success_threshold = success_threshold
        self.status_codes = status_codes
        self.body_pattern = body_pattern
        self.clock = clock
        self.sleep = sleep

    def run(self):
        start = self.clock()
        deadline = start + self.timeout
        attempts = 0
        consecutive = 0
        latencies = []
        first_success = None
        last = None
        last_error = None
        healthy = False
        while True:
            attempt_start = self.clock()
            # The last request may not run past the deadline by more than a sliver.
            budget = max(min(self.request_timeout, deadline - attempt_start), 0.05)
            last = self.send(budget)
            attempts += 1
            last_error = judge(last, self.status_codes, self.body_pattern)
            now = self.clock()
            if last_error is None:
                consecutive += 1
                latencies.append(last.elapsed)
                if first_success is None:
                    first_success = now - start
                if consecutive >= self.success_threshold:
                    healthy = True
                    break
            else:
                consecutive = 0
            if now >= deadline:
                break
            next_start = attempt_start + self.interval
            if next_start >= deadline:
                # One more request would start at or after the deadline: stop here.
                break
            if next_start > now:
                self.sleep(next_start - now)
        end = self.clock()
        return dict(
            healthy=healthy,
            attempts=attempts,
            consecutive_successes=consecutive,
            elapsed=round(end - start, 6),
            first_success_elapsed=round(first_success, 6) if first_success is not None else None,
            latency=latency_figures(latencies),
            last_status=last.status if last is not None else None,
            last_error=last_error,
        )


def argument_spec():
    spec = http_argument_spec()
    spec['url'] = dict(spec['url'], required=False)
    spec.update(
        urls=dict(type='list', elements='str'),
        interval=dict(type='float', default=0.25),
        success_threshold=dict(type='int', default=2),
    )
    return spec


def check_params(p):
    """Problems with the arguments (texts for one message), the checked URL and the compiled
    body pattern. Every check runs before the first request."""
    if p.get('urls') is not None:
        return check_many(p)
    problems, target, body_pattern = request_problems(p)
    problems.extend(client_problems(p))
    problems.extend(common_problems(p))
    return problems, target, body_pattern


def check_many(p):
    """check_params for ``urls``: the checked targets are a list, one per URL."""
    problems, targets, body_pattern = [], [], None
    if p.get('url') is not None:
        problems.append('url and urls are mutually exclusive: give one URL, or a list')
    if not p['urls']:
        problems.append('urls is empty: give at least one URL')
    for url in p['urls']:
        one = dict(p, url=url)
        url_problems, target, body_pattern = request_problems(one)
        problems.extend(url_problems)
        targets.append(target)
    problems.extend(client_problems(p))
    problems.extend(common_problems(p))
    return problems, targets, body_pattern


def common_problems(p):
    problems = []
    problem = seconds_problem('interval', p['interval'], allow_zero=True)
    if problem:
        problems.append(problem)
    if p['success_threshold'] < 1:
        problems.append('success_threshold must be at least 1, got %s' % p['success_threshold'])
    return problems


def unhealthy_problem(result, threshold):
    last = ('last status %s' % result['last_status']) if result['last_status'] is not None else 'no answer'
    if result['last_error'] is None:
        return last, 'only %d of %d successes in a row' % (result['consecutive_successes'], threshold)
    return last, 'last problem: %s' % result['last_error']


def healthy_msg(url, result):
    return '%s healthy after %.2f s (%d success%s in a row, %d attempt%s).' % (
        url, result['elapsed'], result['consecutive_successes'],
        '' if result['consecutive_successes'] == 1 else 'es',
        result['attempts'], '' if result['attempts'] == 1 else 's')


def poll_many(module, p, targets, body_pattern):
    """``urls``: every URL polled at the same time, one thread each, under the same deadline."""
    results = [None] * len(targets)
    errors = []

    def one(index, target):
        try:
            opener = build_opener(validate_certs=p['validate_certs'], ca_path=p['ca_path'],
                                  follow_redirects=p['follow_redirects'], use_proxy=p['use_proxy'])
            headers = request_headers(p['headers'], target)

            def send(budget):
                return probe(target.url, method=p['method'], headers=headers, body=p['body'],
                             timeout=budget, max_body=p['max_body_bytes'], opener=opener)

            result = Poller(send, timeout=p['timeout'], interval=p['interval'], request_timeout=p['request_timeout'],
                            success_threshold=p['success_threshold'], status_codes=p['status_codes'],
                            body_pattern=body_pattern).run()
        except (IOError, OSError, ValueError) as exc:
            errors.append('Cannot set up TLS for %s (ca_path %s): %s' % (target.display, p['ca_path'], exc))
            result = dict(healthy=False, attempts=0, consecutive_successes=0, elapsed=0.0, first_success_elapsed=None,
                          latency=latency_figures([]), last_status=None, last_error=str(exc))
        result['url'] = target.display
        if result['healthy']:
            result['msg'] = healthy_msg(target.display, result)
        else:
            last, problem = unhealthy_problem(result, p['success_threshold'])
            result['msg'] = '%s not healthy by the deadline of %s s (%d attempts, %s; %s).' % (
                target.display, p['timeout'], result['attempts'], last, problem)
        results[index] = result

    threads = [threading.Thread(target=one, args=(index, target), name='poll-%d' % index)
               for index, target in enumerate(targets)]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join()
    out = dict(changed=False, urls=[t.display for t in targets], request_headers=sorted(p['headers']), results=results,
               healthy=all(r['healthy'] for r in results), elapsed=max(r['elapsed'] for r in results))
    bad = [r for r in results if not r['healthy']]
    if not bad:
        out['msg'] = 'All %d URLs healthy after %.2f s: %s' % (len(results), out['elapsed'], ' '.join(r['msg'] for r in results))
        return out, None
    out['msg'] = ('%d of %d URLs not healthy: %s Check the service logs, or raise timeout if it is only slow to start.'
                  % (len(bad), len(results), ' '.join(r['msg'] for r in bad)))
    if errors:
        out['msg'] = '; '.join(errors) + '. ' + out['msg']
    return out, True


def main():
    spec = argument_spec()
    module = build_module(spec, supports_check_mode=True, required_one_of=[('url', 'urls')])
    # A short header or body value (say 1) is no secret: masking it would garble the figures.
    mask_secrets_only(module)
    p = module.params
    problems, target, body_pattern = check_params(p)
    if p['urls'] is not None:
        shown = [t.display if t is not None else display_url(u) for t, u in zip(target, p['urls'])]
        if problems:
            module.fail_json(msg='; '.join(problems), healthy=False, changed=False, urls=shown,
                             invocation=masked_invocation(spec, p, replace=dict(urls=shown)))
        result, failed = poll_many(module, p, target, body_pattern)
        result['invocation'] = masked_invocation(spec, p, replace=dict(urls=shown))
        if failed:
            module.fail_json(**result)
        module.exit_json(**result)
    shown_url = target.display if target is not None else display_url(p['url'])
    base = dict(changed=False, url=shown_url, request_headers=sorted(p['headers']),
                invocation=masked_invocation(spec, p, replace=dict(url=shown_url)))
    if problems:
        module.fail_json(msg='; '.join(problems), healthy=False, **base)

    try:
        opener = build_opener(validate_certs=p['validate_certs'], ca_path=p['ca_path'],
                              follow_redirects=p['follow_redirects'], use_proxy=p['use_proxy'])
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(msg='Cannot set up TLS for %s (ca_path %s): %s' % (shown_url, p['ca_path'], exc),
                         healthy=False, **base)

    headers = request_headers(p['headers'], target)

    def send(budget):
        return probe(target.url, method=p['method'], headers=headers, body=p['body'],
                     timeout=budget, max_body=p['max_body_bytes'], opener=opener)

    poller = Poller(send, timeout=p['timeout'], interval=p['interval'],
                    request_timeout=p['request_timeout'],
                    success_threshold=p['success_threshold'],
                    status_codes=p['status_codes'], body_pattern=body_pattern)
    result = poller.run()
    result.update(base)
    url = shown_url
    if result['healthy']:
        result['msg'] = healthy_msg(url, result)
        module.exit_json(**result)
    last, problem = unhealthy_problem(result, p['success_threshold'])
    result['msg'] = (
        '%s not healthy by the deadline of %s s (%d attempts, %s; %s). Check the service logs, '
        'or raise timeout if it is only slow to start.'
        % (url, p['timeout'], result['attempts'], last, problem))
    module.fail_json(**result)


if __name__ == '__main__':
    main()
