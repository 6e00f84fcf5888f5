# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""docker compose v2 helpers: the argv that addresses one compose project, and parsers for
``docker compose config --format json`` and ``docker compose ps --format json``.

The parsers take the text the CLI printed and nothing else, so unit tests feed them output
captured from compose 2.40. Private to this collection: no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os


def compose_args(project_dir, project_name=None, files=None):
    """``compose`` plus the options that select one project, for DockerCLI.run()."""
    args = ['compose', '--project-directory', project_dir]
    if project_name:
        args += ['--project-name', project_name]
    for name in files or []:
        args += ['--file', name if os.path.isabs(name) else os.path.join(project_dir, name)]
    return args


def parse_config(stdout):
    """``docker compose config --format json`` -> {'name': ..., 'services': {name: {...}}}."""
    data = json.loads(stdout)
    if not isinstance(data, dict) or not isinstance(data.get('services'), dict):
        raise ValueError('no "services" mapping in the compose configuration')
    return data


def parse_ps(stdout):
    """``docker compose ps --format json``: compose >= 2.21 prints one JSON object per line,
    older releases a single JSON list. Returns a list of dicts."""
    text = stdout.strip()
    if not text:
        return []
    if text.startswith('['):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    for row in rows:
        if not isinstance(row, dict):
            raise ValueError('unexpected item in compose ps output: %r' % (row,))
    return rows
