# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Docker Engine API over the engine's local unix socket, for the image and container
reads and the tag moves that sit on a rollback's critical path.

A call over the socket takes about a millisecond; the same call as a ``docker`` process takes
10-150 ms (the Go CLI starting, on a loaded host more). The retag of an immediate rollback makes
four such calls per repository before ``docker compose up`` can start, the snapshot several per
service. :class:`~._docker_cli.DockerCLI` asks this module first and runs the CLI when it says no:

* :func:`engine_socket` names the socket only when the docker CLI would talk to that same socket:
  ``DOCKER_HOST`` unset or ``unix://``, no ``DOCKER_CONTEXT`` and no current context in the CLI's
  ``config.json`` other than ``default``, and the path is a socket. Anything else (TCP, SSH,
  a context, a config it cannot read) leaves every call to the CLI, which knows how to reach it.
* A call that cannot reach the engine (refused, no permission, not HTTP) raises
  :class:`EngineUnreachable`; the caller then uses the CLI, for this call and the rest of the run.
* The engine's own errors are returned as the CLI would print them (``Error response from daemon:
  <message>``, rc 1), so messages read the same whichever way a call went.

``TAYLORDASH_DOCKER_API=0`` in the module's environment sends every call to the CLI (a bench
compares both ways with it).

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import socket
import stat
import time

from http.client import HTTPConnection, HTTPException
from urllib.parse import quote, urlencode

# Where the docker CLI looks when nothing says otherwise (its built-in default host).
DEFAULT_SOCKET = '/var/run/docker.sock'
SWITCH = 'TAYLORDASH_DOCKER_API'


class EngineUnreachable(Exception):
    """The engine did not answer over its socket: use the CLI."""


class EngineError(Exception):
    """The engine answered with an error. ``status`` is the HTTP status, ``message`` its text."""

    def __init__(self, status, message):
        super(EngineError, self).__init__(message)
        self.status = status
        self.message = message


def _cli_config_context(environ):
    """The CLI's current context from its config.json; '' when there is none; None when the file
    exists but cannot be read or parsed (the CLI then decides)."""
    config_dir = environ.get('DOCKER_CONFIG') or os.path.join(os.path.expanduser('~'), '.docker')
    path = os.path.join(config_dir, 'config.json')
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8') or '{}')
    except (IOError, OSError):
        return '' if not os.path.exists(path) else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return data.get('currentContext') or ''


def engine_socket(environ=None):
    """Path of the unix socket the docker CLI would use, or None when it would use something else
    or this module is switched off (see the module docstring). Reads the environment, the CLI's
    config.json and the socket's mode; changes nothing."""
    environ = os.environ if environ is None else environ
    if environ.get(SWITCH, '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return None
    if environ.get('DOCKER_CONTEXT', 'default') not in ('', 'default'):
        return None
    host = environ.get('DOCKER_HOST', '')
    if host:
        if not host.startswith('unix://'):
            return None
        path = host[len('unix://'):]
    else:
        # Without DOCKER_HOST the CLI follows its current context.
        if _cli_config_context(environ) not in ('', 'default'):
            return None
        path = DEFAULT_SOCKET
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return None
    except OSError:
        return None
    return path


class _UnixHTTPConnection(HTTPConnection):
    def __init__(self, path, timeout):
        HTTPConnection.__init__(self, 'localhost', timeout=timeout)
        self._socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


def split_reference(reference):
    """``repo[:tag]`` -> ``(repo, tag)``; the tag is what follows the last ``:`` after the last
    ``/`` (a registry port is not a tag). Pure."""
    slash = reference.rfind('/')
    colon = reference.rfind(':')
    if colon > slash:
        return reference[:colon], reference[colon + 1:]
    return reference, None


def cli_created_at(created):
    """``Created`` of /images/json (Unix seconds) as ``docker image ls`` prints CreatedAt. Pure."""
    try:
        return time.strftime('%Y-%m-%d %H:%M:%S +0000 UTC', time.gmtime(int(created)))
    except (TypeError, ValueError):
        return None


def image_rows(images, repository):
    """Rows of /images/json (filtered by reference) as :func:`~._docker_cli.parse_image_ls` gives
    them for ``docker image ls --no-trunc REPOSITORY``: one per tag of exactly that repository,
    untagged images left out. Pure."""
    rows = []
    for image in images or []:
        for reference in image.get('RepoTags') or []:
            repo, tag = split_reference(reference)
            if repo != repository or not tag or tag == '<none>':
                continue
            rows.append(dict(repository=repo, tag=tag, id=image.get('Id'),
                             created_at=cli_created_at(image.get('Created'))))
    return rows


class Engine(object):
    """Calls of the Engine API over ``path`` (a unix socket), each bounded by ``timeout``."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout

    def request(self, method, path, query=None):
        """``(status, parsed JSON or None)``; raises EngineUnreachable when there is no HTTP
        answer, EngineError for a status of 400 or more."""
        url = quote(path, safe='/:@') + ('?' + urlencode(query) if query else '')
        connection = _UnixHTTPConnection(self.path, self.timeout)
        try:
            connection.request(method, url, headers={'Content-Type': 'application/json'} if method == 'POST' else {})
            response = connection.getresponse()
            body = response.read()
        except (OSError, HTTPException) as exc:
            raise EngineUnreachable('%s %s over %s: %s' % (method, path, self.path, exc))
        finally:
            connection.close()
        data = None
        if body:
            try:
                data = json.loads(body.decode('utf-8'))
            except ValueError:
                if response.status < 400:
                    raise EngineUnreachable('%s %s over %s: the answer is not JSON' % (method, path, self.path))
                data = {'message': body.decode('utf-8', 'replace').strip()}
        if response.status >= 400:
            message = data.get('message') if isinstance(data, dict) else None
            raise EngineError(response.status, message or 'HTTP %d' % response.status)
        return response.status, data

    def inspect(self, kind, ref):
        """``docker (image|container) inspect REF`` as the engine answers it, or None (404)."""
        try:
            return self.request('GET', '/%ss/%s/json' % (kind, ref))[1]
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise

    def tag(self, source, target):
        repo, tag = split_reference(target)
        self.request('POST', '/images/%s/tag' % source, dict(repo=repo, tag=tag or 'latest'))

    def list_tags(self, repository):
        images = self.request('GET', '/images/json',
                              dict(filters=json.dumps({'reference': [repository]})))[1]
        return image_rows(images, repository)
