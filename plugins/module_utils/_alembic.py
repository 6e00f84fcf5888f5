# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What alembic prints, read in one place: the revision of ``alembic current`` and the steps of
``alembic downgrade --sql``.

Pure functions of the text alembic printed (no process is run here), so ``stack_info`` and a
filter plugin for the database role can share them and unit tests feed them captured output.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

# A revision at the start of a line of ``alembic current`` ("0003 (head)", "ae1027a6acf").
_REVISION_START_RE = re.compile(r'^([0-9A-Za-z_]+)(?:\s|$)')
# A whole line of ``alembic current`` naming one current revision: the revision, optionally
# " (head)" / " (branchpoint)" and so on, nothing else.
_REVISION_LINE_RE = re.compile(r'^([0-9A-Za-z_]+)( \(.*\))?\s*$')
# A step of ``alembic downgrade --sql``: "-- Running downgrade 0004 -> 0003" (nothing after the
# arrow when the step goes to base).
_DOWNGRADE_STEP_RE = re.compile(r'^-- Running downgrade (\S+) -> ?(\S*)\s*$')

BASE = 'base'


def current_revision(output):
    """The revision ``alembic current`` printed: the first token of the last line that starts
    with one (log lines go to stderr, but an ``INFO`` line on stdout is skipped), or None."""
    for line in reversed(output.splitlines()):
        match = _REVISION_START_RE.match(line.strip())
        if match and not line.startswith('INFO'):
            return match.group(1)
    return None


def current_revisions(output):
    """Every current revision ``alembic current`` printed, one per head, in order: ``[]`` for
    an unversioned database, more than one when it sits at several branch heads."""
    revisions = []
    for line in output.splitlines():
        match = _REVISION_LINE_RE.match(line)
        if match:
            revisions.append(match.group(1))
    return revisions


def downgrade_steps(sql_output):
    """The steps ``alembic downgrade --sql FROM:TO`` will run, as ``[(from, to)]`` in order;
    ``to`` is ``'base'`` for a step that removes the first revision."""
    steps = []
    for line in sql_output.splitlines():
        match = _DOWNGRADE_STEP_RE.match(line)
        if match:
            steps.append((match.group(1), match.group(2) or BASE))
    return steps
