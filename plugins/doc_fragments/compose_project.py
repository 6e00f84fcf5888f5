# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):
    """The compose project a read-only module looks at, shared by stack_info and container_health
    (both build their docker compose argv with module_utils/_compose.compose_args)."""

    DOCUMENTATION = r"""
options:
  project_dir:
    description: Directory holding the compose files and C(.env) of the stack.
    type: path
    required: true
  project_name:
    description: Compose project name. Default is what compose derives (C(COMPOSE_PROJECT_NAME) in C(.env), or the directory name).
    type: str
  compose_files:
    description: Compose files, relative to O(project_dir) unless absolute.
    type: list
    elements: str
    default: [docker-compose.yml]
"""
