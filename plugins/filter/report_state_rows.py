# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: report_state_rows
short_description: The report's "State before and after" table, from two stack snapshots
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Compares the snapshot taken before a rollback with the one taken after it (both results of
    M(taylordash.rollback.stack_info)) and returns one row per compared item.
  - One row per service (the image IDs its containers run), per file checksum, for the
    certificate fingerprint, and for the migration revision when the before-snapshot has one.
  - An item missing from one snapshot is V(null) on that side (not recorded), and its C(changed)
    is V(null) too.
options:
  _input:
    description: The snapshot before the rollback; an empty dict when none was taken.
    type: dict
    required: true
  after:
    description: The snapshot after the rollback; an empty dict when none could be taken.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Compare the stack before and after
  ansible.builtin.debug:
    msg: "{{ stack_snapshot | taylordash.rollback.report_state_rows(immediate_after) }}"
"""

RETURN = r"""
_value:
  description:
    - One row per item, in the order services, files, certificate, migration.
    - Each row has C(kind) (V(image), V(file), V(certificate) or V(migration)), C(name), C(item)
      (as printed in the report), C(before), C(after) and C(changed) (V(null) when a side is not recorded).
    - A service row holds the running image IDs joined with C(, ); a file row the SHA-256 or
      V(missing).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AnsibleFilterError('report_state_rows: the %s snapshot must be a dict, got %s' % (what, type(value).__name__))
    return value


def _row(kind, name, item, before, after):
    changed = (before != after) if (before is not None and after is not None) else None
    return dict(kind=kind, name=name, item=item, before=before, after=after, changed=changed)


def _unique(names):
    seen = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return seen


def _services(snapshot):
    return [svc for svc in snapshot.get('services') or [] if isinstance(svc, dict)]


def _image_rows(before, after):
    rows = []
    by_name = ({svc.get('name'): svc for svc in reversed(_services(before))},
               {svc.get('name'): svc for svc in reversed(_services(after))})
    names = _unique(svc.get('name') for svc in _services(before) + _services(after))
    for name in names:
        sides = []
        for side in by_name:
            svc = side.get(name)
            sides.append(None if svc is None else ', '.join(str(i) for i in svc.get('running_image_ids') or []))
        rows.append(_row('image', name, '%s runs image' % name, sides[0], sides[1]))
    return rows


def _file_value(entry):
    if entry is None:
        return None
    if isinstance(entry, dict) and entry.get('exists'):
        return entry.get('sha256', 'missing')
    return 'missing'


def _file_rows(before, after):
    files_b, files_a = before.get('files') or {}, after.get('files') or {}
    return [_row('file', name, '%s sha256' % name, _file_value(files_b.get(name)), _file_value(files_a.get(name)))
            for name in _unique(list(files_b) + list(files_a))]


def _certificate_value(cert):
    if not cert:
        return None
    return cert.get('sha256_fingerprint', cert.get('error', 'missing'))


def _certificate_rows(before, after):
    cert_b, cert_a = before.get('certificate'), after.get('certificate')
    if not (cert_b or cert_a):
        return []
    name = (cert_b or cert_a).get('path', 'certificate')
    return [_row('certificate', name, 'certificate sha256 fingerprint',
                 _certificate_value(cert_b), _certificate_value(cert_a))]


def _migration_rows(before, after):
    # Only a before-snapshot that read the revision makes the comparison meaningful.
    mig_b = before.get('migration')
    if not mig_b:
        return []
    after_revision = (after.get('migration') or {}).get('revision') if after else None
    return [_row('migration', mig_b.get('service', 'migration'), 'migration revision',
                 mig_b.get('revision'), after_revision)]


def report_state_rows(before, after):
    before, after = _mapping(before, 'before'), _mapping(after, 'after')
    return (_image_rows(before, after) + _file_rows(before, after)
            + _certificate_rows(before, after) + _migration_rows(before, after))


class FilterModule(object):
    def filters(self):
        return {'report_state_rows': report_state_rows}
