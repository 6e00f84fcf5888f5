# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: compose_argv
short_description: The docker compose command line (argv) that addresses one compose project
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Returns C([docker, compose, --project-directory, DIR, --project-name, NAME, --file, FILE, ...]) followed by
    the given subcommand and its arguments, for C(ansible.builtin.command)'s C(argv) - never a shell string.
  - Compose files are made absolute in the project directory, because compose reads a relative C(--file)
    from its working directory, not from the project directory.
  - The same argv as the modules of this collection build (C(module_utils/_compose.py)).
options:
  _input:
    description: The subcommand and its arguments, for example V([ps, --status, running, --services]).
    type: list
    elements: str
    required: true
  project_dir:
    description: The compose project directory.
    type: path
    required: true
  project_name:
    description: The compose project name. Empty means compose's default.
    type: str
  files:
    description: Compose files, relative to O(project_dir) or absolute.
    type: list
    elements: str
  docker:
    description: The docker client.
    type: str
    default: docker
"""

EXAMPLES = r"""
- name: List the services that run
  ansible.builtin.command:
    argv: "{{ ['ps', '--status', 'running', '--services']
              | taylordash.rollback.compose_argv(stack_project_dir, stack_compose_project, stack_compose_files) }}"
  changed_when: false
"""

RETURN = r"""
_value:
  description: The argv.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types

# The one builder of the compose command line, shared with the modules.
from ansible_collections.taylordash.rollback.plugins.module_utils._compose import compose_args


def compose_argv(subcommand, project_dir, project_name=None, files=None, docker='docker'):
    if isinstance(subcommand, string_types) or not isinstance(subcommand, (list, tuple)):
        raise AnsibleFilterError('compose_argv expects the subcommand as a list of arguments, got %r' % (subcommand,))
    if not isinstance(project_dir, string_types) or not project_dir:
        raise AnsibleFilterError('compose_argv needs the project directory')
    if files is not None and (isinstance(files, string_types) or not isinstance(files, (list, tuple))):
        raise AnsibleFilterError('compose_argv: files must be a list of compose files, got %r' % (files,))
    args = compose_args(to_text(project_dir), to_text(project_name) if project_name else None,
                        [to_text(name) for name in files or []])
    return [to_text(docker)] + args + [to_text(arg) for arg in subcommand]


class FilterModule(object):
    def filters(self):
        return {'compose_argv': compose_argv}
