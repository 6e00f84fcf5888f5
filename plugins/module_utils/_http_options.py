# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HTTP options the collection's HTTP modules share, and their checks.

One argument spec per group of options, with one default each; the documentation of the same
options is ``plugins/doc_fragments/http_options.py`` (``taylordash.rollback.http_options`` for the client
options, ``taylordash.rollback.http_options.request`` for what one request is). Every check runs before
the first request, so a bad setting fails with a message instead of a traceback, a hang or a
request to the wrong place:

* numbers that mean time are finite and between their bounds (``_seconds.seconds_problem``);
* a URL is http(s), parses, names a host and a port from 1 to 65535 (:func:`parse_url`), and its
  credentials (``http://user:password@host/``) are sent as Basic authentication, never shown:
  :attr:`HttpTarget.display` is the URL with them masked.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import base64
import re

from urllib.parse import unquote, urlsplit, urlunsplit

from ansible_collections.taylordash.rollback.plugins.module_utils._seconds import seconds_problem

METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

# http.client allocates a buffer of the size asked for before reading: keep it sane.
MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

MASK = '********'

# A DNS name or a compose service name: letters, digits, '-', '_' and dots.
_HOSTNAME_RE = re.compile(r'^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?\.?$')
_IPV4_RE = re.compile(r'^\d{1,3}(?:\.\d{1,3}){3}$')
# Control characters and white space cannot be sent in a request line or a header.
_BAD_URL_CHARS_RE = re.compile(r'[\x00-\x20\x7f]')
_BAD_HEADER_VALUE_RE = re.compile(r'[\x00-\x08\x0a-\x1f\x7f]')
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def client_argument_spec():
    """How requests are sent: deadlines, TLS, proxy, redirects, how much of a body is read."""
    return dict(
        timeout=dict(type='float', default=60),
        request_timeout=dict(type='float', default=5),
        validate_certs=dict(type='bool', default=True),
        ca_path=dict(type='path'),
        follow_redirects=dict(type='bool', default=False),
        use_proxy=dict(type='bool', default=True),
        max_body_bytes=dict(type='int', default=DEFAULT_MAX_BODY_BYTES),
    )


def request_argument_spec():
    """What one request is and what a good answer looks like."""
    return dict(
        url=dict(type='str', required=True),
        method=dict(type='str', default='GET', choices=list(METHODS)),
        headers=dict(type='dict', default={}, no_log=True),
        body=dict(type='str', no_log=True),
        status_codes=dict(type='list', elements='int', default=[200]),
        body_regex=dict(type='str'),
    )


def http_argument_spec():
    """Both groups, for a module that sends one kind of request (health_poll)."""
    spec = client_argument_spec()
    spec.update(request_argument_spec())
    return spec


def max_body_problem(value):
    if not 0 <= value <= MAX_BODY_BYTES:
        return 'max_body_bytes must be from 0 to %d, got %s' % (MAX_BODY_BYTES, value)
    return None


def client_problems(params):
    """Problems with the client options of ``client_argument_spec``, as texts for one message."""
    problems = []
    for name in ('timeout', 'request_timeout'):
        problem = seconds_problem(name, params.get(name))
        if problem:
            problems.append(problem)
    if params.get('max_body_bytes') is not None:
        problem = max_body_problem(params['max_body_bytes'])
        if problem:
            problems.append(problem)
    return problems


class UrlError(ValueError):
    """A URL that cannot be requested. The text never holds the URL's credentials."""


class HttpTarget(object):
    """A checked URL: ``url`` is what is requested (credentials removed), ``display`` what is
    shown (credentials masked), ``authorization`` the Basic header value or None."""

    __slots__ = ('url', 'display', 'authorization')

    def __init__(self, url, display, authorization=None):
        self.url = url
        self.display = display
        self.authorization = authorization


def display_url(url):
    """The URL with any ``user:password@`` masked, for every message and returned value."""
    if not isinstance(url, str):
        return '%r' % (url,)
    # With or without a scheme (or with a broken one): whatever precedes the last '@' of the
    # authority is a credential.
    match = re.match(r'^([A-Za-z][A-Za-z0-9+.-]*:/+)?([^/?#]*)@', url)
    if match:
        url = (match.group(1) or '') + MASK + '@' + url[match.end():]
    return url


def _check_host(host):
    if not host:
        return 'names no host'
    if ':' in host:  # urlsplit only lets one through from inside [ ]: an IPv6 literal
        if not re.match(r'^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?$', host):
            return 'has an invalid IPv6 address %s' % host
        return None
    if _IPV4_RE.match(host):
        if any(int(part) > 255 for part in host.split('.')):
            return 'has an invalid IPv4 address %s' % host
        return None
    if not _HOSTNAME_RE.match(host) or '..' in host:
        return 'has an invalid host name %r (letters, digits, "-", "_" and dots; ASCII only)' % host
    return None


def parse_url(url):
    """Check an http(s) URL before any request; return an :class:`HttpTarget`.

    Raises :class:`UrlError` with a text that names the URL (credentials masked) and the fault.
    """
    shown = display_url(url)
    if not isinstance(url, str) or not url:
        raise UrlError('url is empty; give an http:// or https:// URL')
    if _BAD_URL_CHARS_RE.search(url):
        raise UrlError("url '%s' contains white space or control characters; encode them (%%20)" % shown)
    if not re.match(r'^https?://', url, re.IGNORECASE):
        raise UrlError("url '%s' is not an http:// or https:// URL" % shown)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlError("url '%s' is not a valid URL: %s" % (shown, exc))
    try:
        port = parts.port
    except ValueError as exc:
        raise UrlError("url '%s' has an invalid port (%s); a port is a number from 1 to 65535" % (shown, exc))
    authorization = None
    netloc = parts.netloc
    if '@' in netloc:
        netloc = netloc.rsplit('@', 1)[1]
        credentials = '%s:%s' % (unquote(parts.username or ''), unquote(parts.password or ''))
        authorization = 'Basic %s' % base64.b64encode(credentials.encode('utf-8')).decode('ascii')
    problem = _check_host(parts.hostname)
    if problem:
        raise UrlError("url '%s' %s" % (shown, problem))
    if port is not None and not 1 <= port <= 65535:
        raise UrlError("url '%s' has port %d; a port is from 1 to 65535" % (shown, port))
    # Without credentials the URL is requested exactly as given.
    request_url = url if authorization is None else urlunsplit(
        (parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return HttpTarget(request_url, shown, authorization)


def status_codes_problem(codes):
    if not codes:
        return 'status_codes must list at least one status code'
    bad = [code for code in codes if not 100 <= code <= 599]
    if bad:
        return 'status_codes must be HTTP status codes from 100 to 599, got %s' % ', '.join(str(c) for c in bad)
    return None


def headers_problems(headers):
    """Header names and values http.client would refuse mid-request (never quoting a value)."""
    problems = []
    for name, value in sorted((headers or {}).items(), key=lambda item: str(item[0])):
        if not isinstance(name, str) or not _HEADER_NAME_RE.match(name):
            problems.append('headers: %r is not a valid header name' % (name,))
            continue
        if isinstance(value, (dict, list)):
            problems.append('headers: the value of %s must be a string, not a %s' % (name, type(value).__name__))
        elif value is not None and _BAD_HEADER_VALUE_RE.search('%s' % (value,)):
            problems.append('headers: the value of %s contains a line break or control character' % name)
    return problems


def request_problems(params, prefix=''):
    """Check the options of ``request_argument_spec``. Returns ``(problems, target, pattern)``;
    target and pattern are None when they could not be built."""
    problems = []
    target = None
    try:
        target = parse_url(params['url'])
    except UrlError as exc:
        problems.append(prefix + str(exc))
    problem = status_codes_problem(params.get('status_codes'))
    if problem:
        problems.append(prefix + problem)
    problems.extend(prefix + text for text in headers_problems(params.get('headers')))
    pattern = None
    if params.get('body_regex') is not None:
        try:
            pattern = re.compile(params['body_regex'])
        except (re.error, ValueError, OverflowError, RecursionError) as exc:
            problems.append('%sbody_regex %r is not a valid regular expression: %s' % (prefix, params['body_regex'], exc))
    return problems, target, pattern


def request_headers(headers, target):
    """The headers to send: the given ones, plus Basic authentication from the URL's credentials
    unless an Authorization header was given."""
    out = dict((name, '' if value is None else '%s' % (value,)) for name, value in (headers or {}).items())
    if target is not None and target.authorization and not any(n.lower() == 'authorization' for n in out):
        out['Authorization'] = target.authorization
    return out
