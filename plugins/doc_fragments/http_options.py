# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):
    """The HTTP options every HTTP module of this collection shares, with one default each.

    ``taylordash.rollback.http_options``: how requests are sent (deadlines, TLS, proxy, redirects, body
    size). ``taylordash.rollback.http_options.request``: what one request is and what a good answer is,
    for a module that sends one kind of request (a module with several, such as http_latency,
    takes the same keys per endpoint). The argument specs are
    plugins/module_utils/_http_options.py ``client_argument_spec()`` and
    ``request_argument_spec()``; a unit test keeps the two in step.
    """

    DOCUMENTATION = r"""
options:
  timeout:
    description:
      - Seconds all requests of the task may take together, from the first one. No request starts
        after this deadline and none runs past it.
      - A number more than V(0), at most V(86400) (one day); checked before the first request.
    type: float
    default: 60
  request_timeout:
    description:
      - Seconds one request may take; a slower answer counts as a failed one (timed out).
      - Never more than what is left until the O(timeout) deadline.
      - A number more than V(0), at most V(86400).
    type: float
    default: 5
  validate_certs:
    description: Verify the certificate and host name of HTTPS URLs.
    type: bool
    default: true
  ca_path:
    description: PEM file of CA certificates to verify HTTPS servers with, for a private CA.
    type: path
  follow_redirects:
    description:
      - Follow 3xx redirects. Off by default, so a redirect (for example HTTP to HTTPS) shows as its
        own status code, as with C(curl) without C(-L).
    type: bool
    default: false
  use_proxy:
    description: Use the proxy given by the C(http_proxy)/C(https_proxy) environment variables, if any.
    type: bool
    default: true
  max_body_bytes:
    description:
      - How many bytes of each answer body are read for the checks (a body regular expression,
        JSON checks); the rest is not read. From V(0) to V(67108864) (64 MiB).
    type: int
    default: 1048576
notes:
  - Numbers that mean time are checked before the first request; NaN, infinity and values out of
    their range fail with a message.
  - Credentials in a URL (C(http://user:password@host/)) are sent as HTTP Basic authentication
    (unless an C(Authorization) header is given) and masked (C(********)) in every message and
    returned value.
  - A URL is checked before the first request; an invalid one (bad IPv6 brackets, no host, a port
    outside 1-65535, white space) fails with a message and no request is sent.
  - Values of the C(headers) and C(body) options shorter than 4 characters are too short to be secrets and are
    not masked in the results, so that a value such as V(1) cannot garble numbers; they never
    appear in the returned invocation.
"""

    REQUEST = r"""
options:
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
      - Request body, sent as given (set a C(Content-Type) in O(headers) if the server needs one).
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
"""
