#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: report_archive
short_description: Write a rollback's report files into a new archive directory and log the rollback
description:
  - The runbook's C(mkdir rollbacks/$(date); mv report; cp .env) and C(echo ... >> rollback_history.log)
    in one step. It creates the archive directory O(archive_dir), writes every document of
    O(documents) into it, copies the files of O(copies) beside them, and appends O(log_line) to
    O(log_path).
  - Every input is checked before anything is written. The archive directory must not exist yet,
    so two rollbacks never write into the same archive; when it exists the module fails and
    writes nothing.
  - Documents are written to a temporary name and renamed, so a reader never sees half a report.
    The history line is appended in one write while an exclusive lock on the log is held.
  - File contents never appear in the result; a copied C(.env) holds secrets, so give it mode
    V(0600).
  - Used by the role C(taylordash.rollback.report); one module run instead of one per file.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
extends_documentation_fragment:
  - taylordash.rollback.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written; the result says which files would be written.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run records a new rollback. A second run with the same O(archive_dir) fails, because
        that archive exists.
options:
  archive_dir:
    description:
      - The archive directory to create, for example V(/opt/taylordash/rollbacks/20261125_141801).
      - Its parent directories are created when missing. It must not exist yet.
    type: path
    required: true
  dir_mode:
    description: Mode of the archive directory.
    type: raw
    default: '0750'
  documents:
    description: The files to write into O(archive_dir).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: File name, without directories.
        type: str
        required: true
      content:
        description: What to write.
        type: str
        required: true
      mode:
        description: File mode.
        type: raw
        default: '0644'
  copies:
    description: Files of the managed host to copy into O(archive_dir).
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: The file to copy.
        type: path
        required: true
      name:
        description: File name in O(archive_dir).
        type: str
        required: true
      mode:
        description: Mode of the copy. A copy of a file that holds secrets should be V(0600).
        type: raw
        default: '0600'
      missing_ok:
        description: When O(copies[].src) does not exist, skip it (and list it in RV(missing_sources)) instead of failing.
        type: bool
        default: true
  log_path:
    description:
      - The history log to append O(log_line) to. Created (mode V(0644)) when missing, with its parent
        directories.
    type: path
  log_line:
    description: One line, without a line break; required with O(log_path).
    type: str
seealso:
  - module: taylordash.rollback.stack_info
    description: The snapshot whose checksums the report lists.
"""

EXAMPLES = r"""
- name: Write the incident report, archive the post-rollback .env and log the rollback
  taylordash.rollback.report_archive:
    archive_dir: /opt/taylordash/rollbacks/20261125_141801
    documents:
      - name: rollback_report_20261125_141801.md
        content: "{{ lookup('ansible.builtin.template', 'rollback_report.md.j2') }}"
      - name: rollback_report_20261125_141801.json
        content: "{{ report | to_nice_json }}"
    copies:
      - src: /opt/taylordash/.env
        name: env_post_rollback
        mode: '0600'
    log_path: /opt/taylordash/rollback_history.log
    log_line: 2026-11-25T14:18:01Z ROLL-20261125-1418 type=immediate outcome=SUCCEEDED services=backend
"""

RETURN = r"""
archive_dir:
  description: The archive directory.
  returned: always
  type: str
  sample: /opt/taylordash/rollbacks/20261125_141801
files:
  description: The files written (in check mode, that would be written), documents first, then copies.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path of the file.
      type: str
    mode:
      description: Its mode, octal.
      type: str
      sample: '0600'
    size:
      description: Its size in bytes (null in check mode for copies).
      type: int
    sha256:
      description: SHA-256 of its content (null in check mode for copies).
      type: str
missing_sources:
  description: Sources of O(copies) that did not exist and were skipped.
  returned: always
  type: list
  elements: str
archive_exists:
  description:
    - Whether the module failed because O(archive_dir) exists already (another report took the name),
      so the caller can choose another name and try again.
  returned: always
  type: bool
log_path:
  description: The history log appended to, or null.
  returned: always
  type: str
timing:
  description: When the module started and ended (ISO 8601 UTC) and how many seconds it took.
  returned: always
  type: dict
  sample: {start: "2026-11-25T14:18:01.120000+00:00", end: "2026-11-25T14:18:01.160000+00:00", seconds: 0.04}
"""

import errno
import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.taylordash.rollback.plugins.module_utils._files import sha256_bytes, sha256_file
from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule


def parse_mode(value, what):
    """'0644', '644', 0o644 or 420 -> int; None when it is not a file mode."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip()
        try:
            mode = int(text, 8)
        except ValueError:
            return None, "%s: mode %r is not an octal file mode such as '0644'" % (what, value)
    if not 0 <= mode <= 0o7777:
        return None, "%s: mode %r is out of range" % (what, value)
    return mode, None


def check_name(name, what):
    if not name or name in ('.', '..') or '/' in name or '\0' in name:
        return "%s: %r is not a plain file name (no directories, not empty)" % (what, name)
    return None


def nul_paths(params):
    """The path options that hold a NUL byte: no file can have such a name, and the OS calls
    raise ValueError (not OSError) on it."""
    paths = [('archive_dir', params['archive_dir']), ('log_path', params['log_path'])]
    paths += [('copies[%d].src' % idx, copy['src']) for idx, copy in enumerate(params['copies'])]
    return ['%s must not contain a NUL byte' % what for what, path in paths if path and '\0' in path]


def validate(params):
    """Every problem of the input, before anything is written; plus the parsed modes."""
    problems = nul_paths(params)
    if problems:
        return problems, {}
    modes = {}
    mode, err = parse_mode(params['dir_mode'], 'dir_mode')
    problems += [err] if err else []
    modes['dir'] = mode
    names = set()
    for idx, doc in enumerate(params['documents']):
        what = 'documents[%d]' % idx
        err = check_name(doc['name'], what + '.name')
        if err:
            problems.append(err)
        elif doc['name'] in names:
            problems.append('%s.name: %r is written twice' % (what, doc['name']))
        names.add(doc['name'])
        mode, err = parse_mode(doc['mode'], what + '.mode')
        problems += [err] if err else []
        modes[what] = mode
    for idx, copy in enumerate(params['copies']):
        what = 'copies[%d]' % idx
        err = check_name(copy['name'], what + '.name')
        if err:
            problems.append(err)
        elif copy['name'] in names:
            problems.append('%s.name: %r is written twice' % (what, copy['name']))
        names.add(copy['name'])
        mode, err = parse_mode(copy['mode'], what + '.mode')
        problems += [err] if err else []
        modes[what] = mode
        if os.path.exists(copy['src']) and not os.path.isfile(copy['src']):
            problems.append('%s.src: %s is not a regular file' % (what, copy['src']))
        elif not os.path.exists(copy['src']) and not copy['missing_ok']:
            problems.append('%s.src: %s does not exist (missing_ok: true skips it)' % (what, copy['src']))
    if params['log_path'] and params['log_line'] is None:
        problems.append('log_line is required with log_path')
    if params['log_line'] is not None and ('\n' in params['log_line'] or '\r' in params['log_line']):
        problems.append('log_line must be one line, without line breaks')
    if params['log_path'] and os.path.isdir(params['log_path']):
        problems.append('log_path: %s is a directory' % params['log_path'])
    archive = params['archive_dir']
    if os.path.lexists(archive):
        problems.append('archive_dir: %s exists already; every rollback gets an archive of its own, '
                        'so choose a new name' % archive)
    return problems, modes


def write_atomic(path, blocks, mode):
    """Write the byte blocks to a temporary file in the same directory, created with mode before
    any byte is written, and rename it into place; return (size, sha256) of what was written."""
    size = 0
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(handle.fileno(), mode)
            for block in blocks:
                size += len(block)
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        # Hashed before the rename, while the name is still ours alone.
        sha = sha256_file(tmp)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return size, sha


def file_blocks(path):
    with open(path, 'rb') as source:
        yield from iter(lambda: source.read(1 << 20), b'')


def append_line(path, line):
    import fcntl  # POSIX only, like the rest of the collection's targets
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, to_bytes(line + '\n', errors='surrogate_or_strict'))
    finally:
        os.close(fd)


def main():
    module = RollbackModule(
        argument_spec=dict(
            archive_dir=dict(type='path', required=True),
            dir_mode=dict(type='raw', default='0750'),
            documents=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                content=dict(type='str', required=True),
                mode=dict(type='raw', default='0644'),
            )),
            copies=dict(type='list', elements='dict', default=[], options=dict(
                src=dict(type='path', required=True),
                name=dict(type='str', required=True),
                mode=dict(type='raw', default='0600'),
                missing_ok=dict(type='bool', default=True),
            )),
            log_path=dict(type='path'),
            log_line=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    archive = params['archive_dir']
    result = dict(changed=False, archive_dir=archive, archive_exists=False, files=[], missing_sources=[],
                  log_path=params['log_path'])

    problems, modes = validate(params)
    if problems:
        result['archive_exists'] = '\0' not in archive and os.path.lexists(archive)
        module.fail_json(msg='Nothing was written: ' + '; '.join(problems) + '.', **result)

    documents = [(os.path.join(archive, doc['name']), to_bytes(doc['content'], errors='surrogate_or_strict'),
                  modes['documents[%d]' % idx]) for idx, doc in enumerate(params['documents'])]
    copies = []
    for idx, copy in enumerate(params['copies']):
        if os.path.isfile(copy['src']):
            copies.append((copy['src'], os.path.join(archive, copy['name']), modes['copies[%d]' % idx]))
        else:
            result['missing_sources'].append(copy['src'])

    result['changed'] = True
    if module.check_mode:
        result['files'] = [dict(path=path, mode='%04o' % mode, size=len(data), sha256=sha256_bytes(data))
                           for path, data, mode in documents]
        result['files'] += [dict(path=dest, mode='%04o' % mode, size=None, sha256=None) for _src, dest, mode in copies]
        module.exit_json(**result)

    try:
        parent = os.path.dirname(archive)
        if parent:
            # exist_ok: another report may create the same parent at the same moment.
            os.makedirs(parent, exist_ok=True)
        # mkdir fails when the directory appeared since the check: no archive is shared.
        os.mkdir(archive)
        os.chmod(archive, modes['dir'])
    except OSError as exc:
        result['changed'] = False
        result['archive_exists'] = exc.errno == errno.EEXIST and os.path.isdir(archive)
        module.fail_json(msg='Nothing was written: cannot create the archive directory %s: %s. Check that '
                             'its parent is writable by user ID %d and that the name is new.'
                         % (archive, to_native(exc), os.getuid()), **result)

    step = 'writing the documents'
    try:
        for path, data, mode in documents:
            size, sha = write_atomic(path, [data], mode)
            result['files'].append(dict(path=path, mode='%04o' % mode, size=size, sha256=sha))
        step = 'copying files'
        for src, dest, mode in copies:
            size, sha = write_atomic(dest, file_blocks(src), mode)
            result['files'].append(dict(path=dest, mode='%04o' % mode, size=size, sha256=sha))
        if params['log_path']:
            step = 'appending to the history log'
            append_line(params['log_path'], params['log_line'])
    except (IOError, OSError) as exc:
        module.fail_json(msg='Failed while %s in %s: %s. The files written so far are listed in files; '
                             'the archive directory is kept for inspection.' % (step, archive, to_native(exc)),
                         **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
