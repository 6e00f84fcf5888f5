# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One gateway to the docker CLI for the modules of taylordash.rollback.

The image and container reads and the tag moves (:meth:`DockerCLI.image_inspect`,
:meth:`DockerCLI.container_inspect`, :meth:`DockerCLI.tag`, :meth:`DockerCLI.list_tags`) ask the
engine over its local socket first when the CLI would use that socket (``_docker_engine``: a
millisecond instead of a process start), with the same answers and messages; everything else, and
those too when the socket is not the CLI's or does not answer, runs the CLI.

Everything that runs ``docker`` goes through :meth:`DockerCLI.run`, which runs it through the
collection's process gateway (``_process.run_streaming``): the binary is found once
(:func:`find_docker`), commands are argv lists (never a shell string), output is read under
``LC_ALL=C``, every call has a deadline, and every failure carries ``cmd``, ``rc``, ``stdout``
and ``stderr``.

The parsing functions at the top take the text the CLI printed and nothing else, so unit tests
feed them output captured from a real engine.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import re
import shlex

from ansible.module_utils.common.process import get_bin_path
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.taylordash.rollback.plugins.module_utils._docker_engine import (
    Engine, EngineError, EngineUnreachable, engine_socket)
from ansible_collections.taylordash.rollback.plugins.module_utils._process import (
    LOCALE_ENV, ProcessError, run_streaming)

# Docker's tag grammar (distribution/reference): a word character first, then up to 127 more.
TAG_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')

# Repository grammar (distribution/reference), simplified to what a local engine accepts:
# an optional registry host[:port], then lower-case path components.
_PATH_COMPONENT = r'[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
_DOMAIN_COMPONENT = r'(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])'
_DOMAIN = _DOMAIN_COMPONENT + r'(?:\.' + _DOMAIN_COMPONENT + r')*(?::[0-9]+)?'
REPOSITORY_RE = re.compile(
    r'^(?:' + _DOMAIN + r'/)?' + _PATH_COMPONENT + r'(?:/' + _PATH_COMPONENT + r')*$')

# An image ID as an operator types it: the full ``sha256:<64 hex>``, or a prefix of at least
# 12 hex digits (what ``docker image ls`` shows), with or without ``sha256:``. Docker itself
# resolves any unique prefix, even one character; 12 keeps a typo from matching by chance.
IMAGE_ID_RE = re.compile(r'^(?:sha256:)?[0-9a-f]{12,64}$')

# "The CLI has to run this call": what DockerCLI._by_engine returns when the engine was not asked.
_USE_CLI = object()

# The engine's answer when the object does not exist (API error text, not localized).
_NOT_FOUND_RE = re.compile(r'no such (?:image|container|object)', re.IGNORECASE)


class DockerCLIError(ProcessError):
    """A docker command failed. ``as_dict()`` gives what every failure must carry."""


# ---------------------------------------------------------------------------------------------
# Pure functions: validation and parsing of CLI output.
# ---------------------------------------------------------------------------------------------

def is_valid_tag(tag):
    return isinstance(tag, str) and bool(TAG_RE.match(tag))


def is_valid_repository(name):
    return isinstance(name, str) and len(name) <= 255 and bool(REPOSITORY_RE.match(name))


def looks_like_image_id(value):
    return isinstance(value, str) and bool(IMAGE_ID_RE.match(value))


def normalize_image_id(value):
    """``d558df4412bf`` -> ``sha256:d558df4412bf``; full IDs are left alone."""
    return value if value.startswith('sha256:') else 'sha256:' + value


def short_id(image_id):
    """The 12-digit form ``docker image ls`` prints."""
    if not image_id:
        return image_id
    return image_id.split(':', 1)[-1][:12]


def is_not_found(stderr):
    return bool(_NOT_FOUND_RE.search(stderr or ''))


def parse_json_lines(stdout):
    """Parse the output of ``--format '{{json .}}'``: one JSON object per line."""
    result = []
    for line in (stdout or '').splitlines():
        line = line.strip()
        if not line:
            continue
        result.append(json.loads(line))
    return result


def parse_inspect(stdout):
    """Parse the JSON array ``docker (image|container) inspect`` prints; ``[]`` when missing."""
    text = (stdout or '').strip()
    if not text:
        return []
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError('expected a JSON array from docker inspect, got %s' % type(data).__name__)
    return data


def parse_image_ls(stdout, repository=None):
    """Rows of ``docker image ls --no-trunc --format '{{json .}}' [REPO]`` as
    ``[{'repository', 'tag', 'id', 'created_at'}]``.

    ``docker image ls REPO`` filters by reference, which also accepts glob patterns; when
    ``repository`` is given only rows of exactly that repository are kept. Untagged rows
    (``<none>``) are dropped: they are not tags.
    """
    rows = []
    for item in parse_json_lines(stdout):
        repo = item.get('Repository')
        tag = item.get('Tag')
        if repository is not None and repo != repository:
            continue
        if not tag or tag == '<none>' or not repo or repo == '<none>':
            continue
        rows.append(dict(repository=repo, tag=tag, id=item.get('ID'),
                         created_at=item.get('CreatedAt')))
    return rows


def tags_by_image(rows):
    """``{image_id: [tag, ...]}`` from :func:`parse_image_ls` rows, tags sorted."""
    result = {}
    for row in rows:
        result.setdefault(row['id'], []).append(row['tag'])
    for tags in result.values():
        tags.sort()
    return result


# ---------------------------------------------------------------------------------------------
# The gateway.
# ---------------------------------------------------------------------------------------------

def cannot_run_message(binary, reason):
    """Why the docker CLI at ``binary`` cannot be run, and what to do about it."""
    return ('the docker CLI at %s cannot be run (%s): install docker there, or set docker_cli to the path '
            'of the docker binary (unset, docker is looked up on PATH)' % (binary, reason))


def docker_cli_problem(docker_cli):
    """Why an explicit ``docker_cli`` path cannot be run, or None. Modules call it while they
    check their options, before anything runs; :func:`find_docker` raises with the same words."""
    if not docker_cli:
        return None
    if not os.path.exists(docker_cli):
        return cannot_run_message(docker_cli, 'no such file')
    if os.path.isdir(docker_cli) or not os.access(docker_cli, os.X_OK):
        return cannot_run_message(docker_cli, 'not an executable file')
    return None


def find_docker(docker_cli=None):
    """The docker binary to run: ``docker_cli`` when given (it must be an executable file),
    else ``docker`` on PATH. The one place this collection looks docker up. Raises
    DockerCLIError with a message saying what to do."""
    if not docker_cli:
        try:
            return get_bin_path('docker')
        except ValueError:
            raise DockerCLIError('Cannot find the docker CLI on PATH of the target host; install it or '
                                 'give its path in the docker_cli option.')
    problem = docker_cli_problem(docker_cli)
    if problem:
        raise DockerCLIError(problem)
    return docker_cli


class DockerCLI(object):
    """Runs docker through the process gateway (module_utils/_process.py).

    ``docker_cli`` is an explicit path to the binary; otherwise it is looked up on PATH once
    (:func:`find_docker`); a binary that cannot be run fails the module before any command.
    ``runner`` stands in for :func:`run_streaming` in unit tests (the binary is then not
    checked: nothing is run, and the engine is never asked). ``timeout`` bounds every docker call,
    in seconds.
    """

    LOCALE_ENV = LOCALE_ENV
    TIMEOUT = 300.0

    def __init__(self, module, docker_cli=None, runner=None, timeout=TIMEOUT):
        self.module = module
        self.timeout = timeout
        self._runner = runner or run_streaming
        self._engine = None
        if runner is not None:
            self.binary = docker_cli or 'docker'
            return
        try:
            self.binary = find_docker(docker_cli)
        except DockerCLIError as exc:
            msg = exc.msg[0].upper() + exc.msg[1:]
            module.fail_json(msg=msg if msg.endswith('.') else msg + '. Nothing was changed.')
        # An explicit docker_cli may be a wrapper that means to see every call: only the CLI then.
        socket_path = None if docker_cli else engine_socket()
        self._engine = Engine(socket_path, timeout) if socket_path else None

    @property
    def via_engine(self):
        """True while the reads and tag moves go to the engine's socket (see the module docstring)."""
        return self._engine is not None

    def _by_engine(self, args, call):
        """``call(engine)`` for the CLI command ``docker ARGS``, or _USE_CLI when the CLI must run it:
        no engine socket, or it did not answer (then the rest of the run uses the CLI too). The
        engine's errors are raised as the CLI's would be (rc 1, "Error response from daemon: ...")."""
        engine = self._engine
        if engine is None:
            return _USE_CLI
        try:
            return call(engine)
        except EngineUnreachable:
            self._engine = None
            return _USE_CLI
        except EngineError as exc:
            stderr = 'Error response from daemon: %s' % exc.message
            raise DockerCLIError('%s failed (rc=1): %s' % (self.cmd_string(args), stderr),
                                 cmd=self.cmd_string(args), rc=1, stdout='', stderr=stderr)

    def cmd_string(self, args):
        return ' '.join(shlex.quote(a) for a in [self.binary] + list(args))

    def run(self, args, check_rc=True, data=None):
        """Run ``docker ARGS``; return ``(rc, stdout, stderr)``.

        With ``check_rc`` a non-zero exit raises :class:`DockerCLIError`, and so does a binary
        that cannot be started or a call that outlives ``timeout``.
        """
        args = [to_text(a) for a in args]
        argv = [self.binary] + args
        try:
            res = self._runner(argv, env_update=self.LOCALE_ENV, feed=None if data is None else [to_bytes(data)],
                               timeout=self.timeout)
        except OSError as exc:
            raise DockerCLIError(cannot_run_message(self.binary, exc.strerror or exc),
                                 cmd=self.cmd_string(args), rc=None, stdout='', stderr=to_text(exc))
        rc = res.rc
        stdout = res.stdout_text
        stderr = res.stderr_text
        if getattr(res, 'timed_out', False):
            raise DockerCLIError('%s did not finish within %d s and was stopped' % (self.cmd_string(args), self.timeout),
                                 cmd=self.cmd_string(args), rc=rc, stdout=stdout, stderr=stderr)
        if check_rc and rc != 0:
            raise DockerCLIError(
                '%s failed (rc=%s): %s' % (self.cmd_string(args), rc, stderr.strip() or stdout.strip()),
                cmd=self.cmd_string(args), rc=rc, stdout=stdout, stderr=stderr)
        return rc, stdout, stderr

    def fail(self, msg, error=None, **result):
        """``fail_json`` with the command details of ``error`` (a DockerCLIError) if given."""
        if error is not None:
            for key, value in error.as_dict().items():
                result.setdefault(key, value)
        self.module.fail_json(msg=msg, **result)

    def _parse(self, parser, args, rc, stdout, stderr):
        try:
            return parser(stdout)
        except ValueError as exc:
            raise DockerCLIError(
                'Cannot parse the output of %s: %s' % (self.cmd_string(args), exc),
                cmd=self.cmd_string(args), rc=rc, stdout=stdout, stderr=stderr)

    def _inspect(self, kind, ref):
        args = [kind, 'inspect', '--', ref]
        answer = self._by_engine(args, lambda engine: engine.inspect(kind, ref))
        if answer is not _USE_CLI:
            return answer
        rc, stdout, stderr = self.run(args, check_rc=False)
        if rc != 0:
            if is_not_found(stderr):
                return None
            raise DockerCLIError(
                'docker %s inspect %s failed (rc=%s): %s' % (kind, ref, rc, stderr.strip()),
                cmd=self.cmd_string(args), rc=rc, stdout=stdout, stderr=stderr)
        data = self._parse(parse_inspect, args, rc, stdout, stderr)
        return data[0] if data else None

    def image_inspect(self, ref):
        """Inspection result of an image (``repo:tag`` or ID), or None if it does not exist."""
        return self._inspect('image', ref)

    def image_id(self, ref):
        """Full ID (``sha256:...``) of an image, or None if it does not exist."""
        image = self.image_inspect(ref)
        return image.get('Id') if image else None

    def container_inspect(self, name):
        """Inspection result of a container, or None if it does not exist."""
        return self._inspect('container', name)

    def tag(self, source, target):
        """``docker image tag SOURCE TARGET`` (moves TARGET if it exists)."""
        args = ['image', 'tag', source, target]
        if self._by_engine(args, lambda engine: engine.tag(source, target)) is _USE_CLI:
            self.run(args)

    def list_tags(self, repository):
        """Tags of one repository: ``[{'repository', 'tag', 'id', 'created_at'}]``."""
        args = ['image', 'ls', '--no-trunc', '--format', '{{json .}}', repository]
        rows = self._by_engine(args, lambda engine: engine.list_tags(repository))
        if rows is not _USE_CLI:
            return rows
        rc, stdout, stderr = self.run(args)
        return self._parse(lambda out: parse_image_ls(out, repository), args, rc, stdout, stderr)
