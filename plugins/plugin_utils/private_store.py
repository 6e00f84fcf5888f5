# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A private directory of things ansible-playbook built in one run and reuses in the next (module
payloads, compiled templates), kept under a fingerprint of what they were built from.

What is kept there is code Python loads (pickle, marshal), so the directory must be the user's own:
``private_problem`` says why a path may not be trusted. Shared by the payload_cache and
template_cache callbacks."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import re
import shutil
import stat
import tempfile

# Fingerprints are 24 hex digits; up to this many are kept side by side (one per ansible-core,
# Python or collection version in use), the oldest removed first.
FINGERPRINT = re.compile(r'^[0-9a-f]{24}$')
KEEP_FINGERPRINTS = 5


def private_problem(path, want_dir):
    """Why ``path`` may not be trusted (pickle and marshal data is code), or None: it must be a real
    directory or file (no symlink) owned by this user and not writable by group or others."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return 'cannot read it: %s' % exc.strerror
    if want_dir and not stat.S_ISDIR(info.st_mode):
        return 'not a directory'
    if not want_dir and not stat.S_ISREG(info.st_mode):
        return 'not a regular file'
    if info.st_uid != os.getuid():
        return 'owned by uid %d, not by this user (%d)' % (info.st_uid, os.getuid())
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return 'writable by group or others (mode %04o)' % stat.S_IMODE(info.st_mode)
    return None


def make_private_dirs(*folders):
    """Create each folder (mode 0700) that does not exist; OSError naming the first one that exists
    but may not be trusted."""
    for folder in folders:
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
        problem = private_problem(folder, True)
        if problem:
            raise OSError('%s: %s' % (folder, problem))


def copy_file(source, target_dir, name, mode=0o600, data=None):
    """Copy ``source`` (or write ``data``) to ``target_dir/name`` atomically (a temporary file,
    then a rename): a reader never sees half a file, and two writers of the same name both win."""
    handle, temporary = tempfile.mkstemp(prefix='.' + name + '.', dir=target_dir)
    try:
        with os.fdopen(handle, 'wb') as out:
            if data is None:
                with open(source, 'rb') as original:
                    shutil.copyfileobj(original, out)
            else:
                out.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, os.path.join(target_dir, name))
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def prune(base, keep, limit=KEEP_FINGERPRINTS):
    """Remove the oldest fingerprints beyond ``limit`` (never ``keep``)."""
    folders = []
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if FINGERPRINT.match(name) and os.path.isdir(path) and not os.path.islink(path):
            folders.append((os.stat(path).st_mtime, name))
    for dummy, name in sorted(folders, reverse=True)[limit:]:
        if name != keep:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
