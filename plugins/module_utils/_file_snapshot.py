# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a snapshot records about a file of a project directory (checksum, size, mode, mtime),
and the rule that a snapshot only reads files inside the project directory.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

from ansible_collections.taylordash.rollback.plugins.module_utils._files import sha256_file


def project_path(project_dir, name):
    """``name`` relative to ``project_dir`` unless absolute."""
    return name if os.path.isabs(name) else os.path.join(project_dir, name)


def outside_project(project_dir, name, allowed=()):
    """Why ``name`` may not be read as a file of ``project_dir``, or None when it may.

    The path is resolved with symlinks (``realpath``), so ``../x``, an absolute path elsewhere
    and a link pointing out of the project are all refused. Paths in ``allowed`` (resolved the
    same way; the compose files, which compose reads wherever they are) are accepted as they are.
    """
    if '\0' in name:
        return 'the name contains a NUL byte'
    root = os.path.realpath(project_dir)
    real = os.path.realpath(project_path(project_dir, name))
    if real in set(os.path.realpath(project_path(project_dir, item)) for item in allowed):
        return None
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        return 'it resolves to %s, outside the project directory %s' % (real, root)
    return None


def file_snapshot(project_dir, name):
    """``{'path', 'exists'}`` plus ``sha256``, ``size``, ``mode`` (octal text) and ``mtime``
    of an existing regular file. Raises OSError when it exists but cannot be read."""
    path = project_path(project_dir, name)
    if not os.path.isfile(path):
        return {'path': path, 'exists': False}
    st = os.stat(path)
    return {'path': path, 'exists': True, 'sha256': sha256_file(path), 'size': st.st_size,
            'mode': '%04o' % (st.st_mode & 0o7777), 'mtime': st.st_mtime}
