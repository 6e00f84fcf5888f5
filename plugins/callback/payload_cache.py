# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep the module payloads ansible-playbook builds, so that the next run does not build them again."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: payload_cache
type: notification
short_description: Reuse the module payloads of earlier runs (a faster start of every rollback)
description:
  - Before a module runs for the first time in a run, ansible-playbook builds its payload
    (AnsiballZ) - it reads the module and every module_utils file it imports, and zips them. That
    takes 0.15-0.25 s per module, in every run; a rollback uses about ten modules, two of them
    before the previous build can answer (the lock with the snapshot, the retag with the recreate).
  - ansible-playbook keeps the payloads it built in the run's own temporary directory, and removes
    them when the run ends. This callback keeps a copy of the payloads of this collection's
    modules and of ansible-core's own modules in O(path) when the run ends, and puts them back
    before the first task of the next run, so the modules start at once.
  - A payload is reused only when nothing it was built from changed - the copies are kept under a
    fingerprint of ansible-core's version and location, the controller's Python, and the contents
    of this collection's C(plugins/modules) and C(plugins/module_utils). Any change gives a new
    fingerprint, and the payloads are built again. Payloads of other collections are never kept.
  - The payloads hold module code only, never a task's arguments. They are loaded with Python's
    C(pickle), as ansible-core loads its own copies, so O(path) must be private - a directory
    (and files) owned by the user that runs ansible-playbook, not writable by group or others.
    Anything else is ignored and the payloads are built as usual; the directory is created with
    mode 0700 and the files with mode 0600.
  - Each kept payload also carries its Python files compiled to bytecode (C(.pyc) files that
    check their source's hash). Python imports the payload's files from the zip, where it can
    neither find nor keep bytecode, so every module run compiled all of them again - about
    0.15 s of the 0.35 s a module takes to start. A target whose Python is another version than
    the controller's ignores the bytecode and compiles the sources, as before.
  - Needs ansible-core 2.19 (the layout of its payload cache); with another version it does
    nothing.
  - Enable it with C(callbacks_enabled = taylordash.rollback.payload_cache) in C(ansible.cfg);
    C(examples/project/ansible.cfg) does.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
requirements:
  - enabled in C(callbacks_enabled)
options:
  path:
    description:
      - Directory to keep the payloads in. Up to five fingerprints are kept; older ones are removed.
      - Empty keeps nothing (the callback does nothing).
    type: path
    default: ~/.ansible/taylordash_payload_cache
    env:
      - name: TAYLORDASH_PAYLOAD_CACHE
    ini:
      - section: callback_payload_cache
        key: path
"""

import base64
import dataclasses
import hashlib
import importlib.util
import io
import marshal
import os
import pickle
import re
import struct
import sys
import zipfile

import ansible
from ansible import constants as C
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible_collections.taylordash.rollback.plugins.plugin_utils.private_store import (
    copy_file, make_private_dirs, private_problem, prune)

# ansible-core 2.19 names a cached payload <module fqn>-<compression>-<extensions>; "none" when no
# debugger or coverage extension is part of it. Only this collection's modules and ansible-core's
# own (covered by the fingerprint) are kept.
PAYLOAD_NAME = re.compile(
    r'^(ansible_collections\.taylordash\.rollback\.plugins\.modules|ansible\.modules)\.[A-Za-z0-9_]+'
    r'-ZIP_[A-Z]+-none$')
SUPPORTED_CORE = re.compile(r'^2\.19\.')
# Part of the fingerprint: kept payloads of an older layout (before the bytecode) are not reused.
STORE_LAYOUT = 'bytecode-1'
# PEP 552: bytecode checked against its source's hash (flags: hash-based, check source).
HASH_PYC_FLAGS = 0b11
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fingerprint(collection_root=COLLECTION_ROOT, core_version=ansible_version):
    """What a payload was built from: ansible-core, the controller's Python, and every file of this
    collection's modules and module_utils (names and contents)."""
    digest = hashlib.sha256()
    for part in (core_version, os.path.dirname(os.path.abspath(ansible.__file__)), sys.version, collection_root,
                 STORE_LAYOUT):
        digest.update(part.encode('utf-8') + b'\0')
    for sub in ('modules', 'module_utils'):
        top = os.path.join(collection_root, 'plugins', sub)
        for folder, dirs, files in sorted(os.walk(top)):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith('.py'):
                    continue
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, collection_root).encode('utf-8') + b'\0')
                with open(path, 'rb') as source:
                    digest.update(hashlib.sha256(source.read()).digest())
    return digest.hexdigest()[:24]


def hash_pyc(source, filename):
    """``source`` (bytes of a .py file) compiled by this Python, as the bytes of a .pyc file that
    Python uses only while its source's hash matches (PEP 552). A Python of another version sees
    another magic number in the header and compiles the source instead."""
    code = compile(source, filename, 'exec', dont_inherit=True)
    return (importlib.util.MAGIC_NUMBER + struct.pack('<I', HASH_PYC_FLAGS)
            + importlib.util.source_hash(source) + marshal.dumps(code))


def zip_with_bytecode(zip_data):
    """The payload zip ``zip_data`` with a .pyc beside each .py it holds (none replaced)."""
    source = zipfile.ZipFile(io.BytesIO(zip_data))
    names = set(source.namelist())
    output = io.BytesIO()
    with zipfile.ZipFile(output, mode='w', compression=zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data)
            if info.filename.endswith('.py') and info.filename + 'c' not in names:
                compiled = zipfile.ZipInfo(info.filename + 'c', date_time=info.date_time)
                compiled.compress_type = zipfile.ZIP_DEFLATED
                compiled.external_attr = info.external_attr
                # The name the payload's own tracebacks show for this file: its path in the zip.
                target.writestr(compiled, hash_pyc(data, info.filename))
    return output.getvalue()


def payload_with_bytecode(path):
    """The pickled payload at ``path`` (a file of this run's own cache, written by ansible-core)
    with bytecode added to its zip, as the bytes to keep; None if it is not laid out as expected."""
    try:
        with open(path, 'rb') as cached:
            payload = pickle.load(cached)
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, TypeError, ValueError):
        return None
    zip_data = getattr(payload, 'zip_data', None)
    if not dataclasses.is_dataclass(payload) or not isinstance(zip_data, bytes):
        return None
    try:
        compiled = zip_with_bytecode(base64.b64decode(zip_data, validate=True))
    except (ValueError, zipfile.BadZipFile, SyntaxError):
        return None
    return pickle.dumps(dataclasses.replace(payload, zip_data=base64.b64encode(compiled)),
                        protocol=pickle.HIGHEST_PROTOCOL)


def restore(store, run_cache):
    """Put the kept payloads of ``store`` into the run's cache; the number put back."""
    if private_problem(store, True):
        return 0
    os.makedirs(run_cache, exist_ok=True)
    restored = 0
    for name in sorted(os.listdir(store)):
        path = os.path.join(store, name)
        if PAYLOAD_NAME.match(name) and not private_problem(path, False) \
                and not os.path.exists(os.path.join(run_cache, name)):
            copy_file(path, run_cache, name)
            restored += 1
    return restored


def save(run_cache, base, store):
    """Keep the payloads of the run's cache that ``store`` does not have yet; the number kept."""
    if not os.path.isdir(run_cache):
        return 0
    names = [name for name in sorted(os.listdir(run_cache))
             if PAYLOAD_NAME.match(name) and not os.path.exists(os.path.join(store, name))]
    if not names:
        return 0
    make_private_dirs(base, store)
    for name in names:
        path = os.path.join(run_cache, name)
        # Kept as ansible-core wrote it when the bytecode cannot be added.
        copy_file(path, store, name, data=payload_with_bytecode(path))
    prune(base, keep=os.path.basename(store))
    return len(names)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'taylordash.rollback.payload_cache'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._base = None
        self._store = None

    def _run_cache(self):
        # Where ansible-core 2.19 keeps the payloads of this run (executor/module_common.py).
        return os.path.join(C.DEFAULT_LOCAL_TMP, 'ansiballz_cache')

    def v2_playbook_on_start(self, playbook):
        path = self.get_option('path')
        if not path:
            return
        if not SUPPORTED_CORE.match(ansible_version):
            self._display.vvv('payload_cache: ansible-core %s is not 2.19; payloads are built as usual' % ansible_version)
            return
        self._base = os.path.abspath(os.path.expanduser(path))
        try:
            self._store = os.path.join(self._base, fingerprint())
            problem = private_problem(self._base, True) if os.path.lexists(self._base) else None
            if problem:
                self._display.warning('payload_cache: not using %s (%s); module payloads are built as usual'
                                      % (self._base, problem))
                self._base = self._store = None
                return
            count = restore(self._store, self._run_cache()) if os.path.isdir(self._store) else 0
            self._display.vvv('payload_cache: %d payloads reused from %s' % (count, self._store))
        except (IOError, OSError) as exc:
            self._display.warning('payload_cache: cannot reuse the payloads in %s: %s' % (self._base, exc))
            self._base = self._store = None

    def v2_playbook_on_stats(self, stats):
        if not self._store:
            return
        try:
            count = save(self._run_cache(), self._base, self._store)
            self._display.vvv('payload_cache: %d new payloads kept in %s' % (count, self._store))
        except (IOError, OSError) as exc:
            self._display.warning('payload_cache: cannot keep the payloads in %s: %s' % (self._base, exc))
