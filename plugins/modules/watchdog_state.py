#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: watchdog_state
short_description: Read or write the watchdog's record of its last automatic rollback
description:
  - The watchdog (role C(taylordash.rollback.watchdog)) rolls a stack back automatically at most once
    per cooldown. This module keeps the record the cooldown counts from, a small JSON file in the
    project directory, and reads it together with the rollback lock the watchdog must respect.
  - O(state=read) changes nothing. It returns the record (RV(record), V(null) when there is none
    or the file is not a JSON object) and, with O(lock_path), whether the rollback lock is held and
    by whom (RV(lock)). One module run for both reads, on the way to a rollback.
  - O(state=present) writes O(record) to O(path) with mode O(mode), through a temporary file
    renamed over the old one, so a reader never sees half a record. Writing the same record
    again changes nothing.
  - The record holds no secrets (when, why, which stack), but it is written with mode V(0600) by
    default like every state file of the collection.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
extends_documentation_fragment:
  - taylordash.rollback.attributes
attributes:
  check_mode:
    support: full
    details:
      - O(state=read) reads in check mode too; O(state=present) writes nothing and says whether it would.
  diff_mode:
    support: full
    details:
      - O(state=present) shows the record before and after.
  idempotent:
    support: full
options:
  path:
    description:
      - The watchdog's state file, normally C(<project dir>/.watchdog_state.json).
      - Its directory must exist.
    type: path
    required: true
  state:
    description:
      - V(read) returns the record and the lock; V(present) writes O(record).
    type: str
    choices: [read, present]
    default: read
  record:
    description:
      - The record to write with O(state=present), for example C(last_rollback_at),
        C(last_rollback_epoch), C(reasons) and C(outcome). Required with O(state=present).
    type: dict
  lock_path:
    description:
      - With O(state=read), the rollback lock file (the one
        O(taylordash.rollback.rollback_lock#module:path) takes) to look at. A file that cannot be
        read, or is not a lock, counts as held, and RV(lock) says why.
    type: path
  mode:
    description: Mode of the state file written with O(state=present).
    type: raw
    default: '0600'
seealso:
  - module: taylordash.rollback.rollback_lock
    description: Takes and releases the lock whose holder this module reads.
  - module: taylordash.rollback.rollback_trigger
    description: The decision matrix whose verdict the watchdog acts on.
"""

EXAMPLES = r"""
- name: Read the last automatic rollback and who holds the rollback lock
  taylordash.rollback.watchdog_state:
    path: /opt/taylordash/.watchdog_state.json
    lock_path: /opt/taylordash/.rollback.lock
  register: watchdog_gate

- name: Record the automatic rollback (the cooldown starts)
  taylordash.rollback.watchdog_state:
    path: /opt/taylordash/.watchdog_state.json
    state: present
    record:
      last_rollback_at: "2026-11-25T14:18:01+00:00"
      last_rollback_epoch: 1795616281.0
      outcome: started
"""

RETURN = r"""
record:
  description:
    - The record in O(path) before this run (O(state=read)) or the record written (O(state=present)).
    - V(null) when the file does not exist or does not hold a JSON object.
  returned: always
  type: dict
  sample: {last_rollback_at: "2026-11-25T14:18:01+00:00", last_rollback_epoch: 1795616281.0, outcome: succeeded}
record_problem:
  description: Why an existing O(path) was not taken as a record (not JSON, not an object); V(null) otherwise.
  returned: always
  type: str
  sample: not a JSON object
since_last_s:
  description: Seconds since C(last_rollback_epoch) of the record read; V(null) without one.
  returned: always
  type: float
  sample: 42.5
lock:
  description:
    - With O(state=read) and O(lock_path), the lock. V(null) otherwise.
    - C(held) is V(true) when the file exists (an unreadable or invalid one counts as held;
      C(problem) says why). C(holder), C(reason) and C(started_at) come from the lock file; the
      token is never returned.
  returned: always
  type: dict
  sample: {held: true, holder: alice via AWX job 42, reason: manual rollback, started_at: "2026-11-25T14:18:01+00:00", problem: null}
"""

import errno
import json
import math
import os
import tempfile
import time

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule

# The lock fields worth showing; the token is the holder's handle to release it and stays private.
LOCK_FIELDS = ('holder', 'reason', 'started_at')
MAX_BYTES = 1024 * 1024


def parse_record(raw):
    """(record, problem) of a state file's bytes: a JSON object, or None and why not."""
    try:
        value = json.loads(to_text(raw, errors='surrogate_or_strict'))
    except ValueError as exc:
        return None, 'not JSON (%s)' % exc
    if not isinstance(value, dict):
        return None, 'not a JSON object'
    return value, None


def since_last(record, now):
    """Seconds since the record's last_rollback_epoch, or None when it has none usable."""
    try:
        epoch = float((record or {}).get('last_rollback_epoch'))
    except (TypeError, ValueError):
        return None
    if not math.isfinite(epoch):
        return None
    return round(now - epoch, 3)


def describe_lock(raw, read_problem):
    """The lock as the watchdog sees it, from the file's bytes (None: no file)."""
    if read_problem:
        return dict(held=True, holder=None, reason=None, started_at=None, problem=read_problem)
    if raw is None:
        return dict(held=False, holder=None, reason=None, started_at=None, problem=None)
    lock, problem = parse_record(raw)
    shown = dict(held=True, problem=None if lock is not None else 'not a lock: %s' % problem)
    for field in LOCK_FIELDS:
        value = (lock or {}).get(field)
        shown[field] = to_text(value) if value is not None else None
    return shown


def read_file(path):
    """(bytes or None when missing, problem or None)."""
    try:
        with open(path, 'rb') as handle:
            return handle.read(MAX_BYTES), None
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        return None, to_text(exc.strerror or exc)


def serialise(record):
    return json.dumps(record, indent=4, sort_keys=True, ensure_ascii=False) + '\n'


def main():
    module = RollbackModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['read', 'present'], default='read'),
            record=dict(type='dict'),
            lock_path=dict(type='path'),
            mode=dict(type='raw', default='0600'),
        ),
        required_if=[('state', 'present', ('record',))],
        supports_check_mode=True,
    )
    p = module.params
    path = p['path']
    result = dict(changed=False, record=None, record_problem=None, since_last_s=None, lock=None)
    for name in ('path', 'lock_path'):
        value = p[name]
        if value is not None and (not value.strip() or '\x00' in value):
            module.fail_json(msg='%s must be a file path, not %r. Nothing was changed.' % (name, value), **result)
    if p['state'] == 'present' and p['lock_path']:
        module.fail_json(msg='lock_path is read only with state=read; leave it out to write the record. '
                             'Nothing was changed.', **result)
    if os.path.isdir(path):
        module.fail_json(msg='%s is a directory; give the path of the watchdog state file (for example '
                             '<project dir>/.watchdog_state.json). Nothing was changed.' % path, **result)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        module.fail_json(msg='Directory %s of the watchdog state file does not exist; it is normally the '
                             'project directory (stack_project_dir). Nothing was changed.' % directory, **result)

    raw, problem = read_file(path)
    if problem:
        module.fail_json(msg='Cannot read the watchdog state file %s: %s. Nothing was changed.' % (path, problem),
                         **result)
    before, record_problem = (None, None) if raw is None else parse_record(raw)

    if p['state'] == 'read':
        result.update(record=before, record_problem=record_problem, since_last_s=since_last(before, time.time()))
        if p['lock_path']:
            result['lock'] = describe_lock(*read_file(p['lock_path']))
        module.exit_json(**result)

    try:
        mode = int(p['mode'], 8) if isinstance(p['mode'], str) else int(p['mode'])
    except (TypeError, ValueError):
        module.fail_json(msg='mode must be an octal mode such as 0600, not %r. Nothing was changed.' % (p['mode'],),
                         **result)
    try:
        content = serialise(p['record'])
    except (TypeError, ValueError) as exc:
        module.fail_json(msg='record cannot be written as JSON (%s). Nothing was changed.' % exc, **result)
    current_mode = os.stat(path).st_mode & 0o7777 if raw is not None else None
    changed = raw is None or to_text(raw, errors='surrogate_or_replace') != content or current_mode != mode
    result.update(changed=changed, record=p['record'], since_last_s=since_last(p['record'], time.time()))
    if module._diff:
        result['diff'] = dict(before=serialise(before) if before is not None else '', after=content,
                              before_header=path, after_header=path)
    if changed and not module.check_mode:
        fd, tmp = tempfile.mkstemp(prefix='.watchdog_state.', dir=directory)
        try:
            with os.fdopen(fd, 'wb') as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(to_bytes(content))
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, path)
        except (IOError, OSError) as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            module.fail_json(msg='Cannot write the watchdog state file %s: %s. The previous record, if any, '
                                 'is unchanged.' % (path, exc), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
