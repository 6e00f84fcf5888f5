# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One timed HTTP(S) request, standard library only.

:func:`probe` never raises for network or HTTP errors: it returns a :class:`ProbeResult` with
the status (any status, 4xx/5xx included), the elapsed wall time, a bounded body and an error
text. Header values are never logged nor put into results or error texts: callers may pass
secrets (API keys, bearer tokens) in them.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import http.client as http_client
import socket
import ssl
import time
import urllib.error as urllib_error
import urllib.request as urllib_request

from ansible.module_utils.common.text.converters import to_bytes, to_text

DEFAULT_MAX_BODY = 65536


class ProbeResult(object):
    """Outcome of one request. ``status`` is None when no HTTP answer came back."""

    __slots__ = ('status', 'elapsed', 'body', 'truncated', 'error')

    def __init__(self, status=None, elapsed=0.0, body='', truncated=False, error=None):
        self.status = status
        self.elapsed = elapsed
        self.body = body
        self.truncated = truncated
        self.error = error

    def as_dict(self):
        return dict(status=self.status, elapsed=self.elapsed, body=self.body,
                    truncated=self.truncated, error=self.error)


class _NoRedirect(urllib_request.HTTPRedirectHandler):
    """Report a 3xx as it is, the way ``curl`` without ``-L`` does."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _ssl_context(validate_certs, ca_path):
    if not validate_certs:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_path)


def build_opener(validate_certs=True, ca_path=None, follow_redirects=False, use_proxy=True):
    handlers = [urllib_request.HTTPSHandler(context=_ssl_context(validate_certs, ca_path))]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    if not use_proxy:
        handlers.append(urllib_request.ProxyHandler({}))
    return urllib_request.build_opener(*handlers)


def describe_error(exc):
    """A short, secret-free text for a failed request."""
    if isinstance(exc, urllib_error.URLError) and not isinstance(exc, urllib_error.HTTPError):
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return 'timed out'
        if isinstance(reason, ssl.SSLError):
            return 'TLS error: %s' % to_text(reason)
        if isinstance(reason, OSError) and getattr(reason, 'strerror', None):
            return 'connection failed: %s' % reason.strerror
        return 'connection failed: %s' % to_text(reason)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return 'timed out'
    if isinstance(exc, http_client.HTTPException):
        return 'bad HTTP answer: %s%s' % (type(exc).__name__, (': %s' % exc) if str(exc) else '')
    if isinstance(exc, OSError) and getattr(exc, 'strerror', None):
        return 'connection failed: %s' % exc.strerror
    return '%s: %s' % (type(exc).__name__, to_text(exc))


def _read_bounded(response, max_body):
    data = response.read(max_body + 1)
    truncated = len(data) > max_body
    return to_text(data[:max_body], errors='surrogate_or_replace'), truncated


def probe(url, method='GET', headers=None, body=None, timeout=5.0, validate_certs=True,
          ca_path=None, follow_redirects=False, use_proxy=True, max_body=DEFAULT_MAX_BODY,
          opener=None, clock=time.monotonic):
    """Send one request and time it, from before connecting to the end of reading the body."""
    if opener is None:
        opener = build_opener(validate_certs=validate_certs, ca_path=ca_path,
                              follow_redirects=follow_redirects, use_proxy=use_proxy)
    started = clock()
    try:
        # Inside the try: a URL or header the modules' checks let through is a failed request,
        # never a traceback.
        data = to_bytes(body) if body is not None else None
        request = urllib_request.Request(url, data=data, method=method.upper())
        for name, value in (headers or {}).items():
            request.add_header(to_text(name), to_text(value))
        response = opener.open(request, timeout=timeout)
        try:
            text, truncated = _read_bounded(response, max_body)
            return ProbeResult(status=response.getcode(), elapsed=clock() - started,
                               body=text, truncated=truncated)
        finally:
            response.close()
    except urllib_error.HTTPError as exc:
        # 4xx/5xx (and 3xx when not following): an answer, not an error of the probe.
        try:
            text, truncated = _read_bounded(exc, max_body)
        except Exception:  # the body of an error answer is best effort
            text, truncated = '', False
        finally:
            exc.close()
        return ProbeResult(status=exc.code, elapsed=clock() - started, body=text,
                           truncated=truncated)
    except Exception as exc:  # any network, TLS or protocol failure is a probe outcome
        return ProbeResult(status=None, elapsed=clock() - started, error=describe_error(exc))
