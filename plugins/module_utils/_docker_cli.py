# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One gateway to the docker CLI for the modules of taylordash.rollback.

Everything that runs ``docker`` goes through :meth:`DockerCLI.run`: the binary is found once,
commands are argv lists (never a shell string), output is read under ``LC_ALL=C``, and every
failure carries ``cmd``, ``rc``, ``stdout`` and ``stderr``.

The parsing functions at the top take the text the CLI printed and nothing else, so unit tests
feed them output captured from a real engine.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import re
import shlex

from ansible.module_utils.common.process import get_bin_path
from ansible.module_utils.common.text.converters import to_text

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

# The engine's answer when the object does not exist (API error text, not localized).
_NOT_FOUND_RE = re.compile(r'no such (?:image|container|object)', re.IGNORECASE)


class DockerCLIError(Exception):
    """A docker command failed. ``as_dict()`` gives what every failure must carry."""

    def __init__(self, msg, cmd=None, rc=None, stdout='', stderr=''):
        super(DockerCLIError, self).__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def as_dict(self):
        return dict(cmd=self.cmd, rc=self.rc, stdout=self.stdout, stderr=self.stderr)


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

class DockerCLI(object):
    """Runs docker through ``module.run_command``.

    ``docker_cli`` is an explicit path to the binary; otherwise it is looked up on PATH once.
    """

    LOCALE_ENV = dict(LC_ALL='C', LANG='C', LC_MESSAGES='C')

    def __init__(self, module, docker_cli=None):
        self.module = module
        if docker_cli:
            self.binary = docker_cli
        else:
            try:
                self.binary = get_bin_path('docker')
            except ValueError:
                module.fail_json(
                    msg='Cannot find the docker CLI on PATH of the target host; install it or '
                        'give its path in the docker_cli option.')

    def cmd_string(self, args):
        return ' '.join(shlex.quote(a) for a in [self.binary] + list(args))

    def run(self, args, check_rc=True, data=None):
        """Run ``docker ARGS``; return ``(rc, stdout, stderr)``.

        With ``check_rc`` a non-zero exit raises :class:`DockerCLIError`.
        """
        argv = [self.binary] + [to_text(a) for a in args]
        # expand_user_and_vars=False: arguments are data, '$' or '~' in them stays as typed.
        rc, stdout, stderr = self.module.run_command(
            argv, data=data, binary_data=data is not None, environ_update=self.LOCALE_ENV,
            expand_user_and_vars=False)
        stdout = to_text(stdout, errors='surrogate_or_replace')
        stderr = to_text(stderr, errors='surrogate_or_replace')
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
        self.run(['image', 'tag', source, target])

    def list_tags(self, repository):
        """Tags of one repository: ``[{'repository', 'tag', 'id', 'created_at'}]``."""
        args = ['image', 'ls', '--no-trunc', '--format', '{{json .}}', repository]
        rc, stdout, stderr = self.run(args)
        return self._parse(lambda out: parse_image_ls(out, repository), args, rc, stdout, stderr)
