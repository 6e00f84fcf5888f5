# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""File checksums, the one way this collection computes them.

Snapshots (stack_info), dumps (backup_verify, backup_restore) and reports (report_archive) all
record sha256 checksums; they must agree on how a file is read, so the code exists once.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib

# 1 MiB: large enough that a multi-GB dump is hashed at disk speed, small enough to stay in cache.
CHUNK_SIZE = 1024 * 1024


def sha256_bytes(data):
    """Hex sha256 of a bytes object."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, chunk_size=CHUNK_SIZE):
    """Hex sha256 of a file's content, read in chunks (bounded memory). Raises OSError."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        while True:
            data = handle.read(chunk_size)
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()
