# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The safety dump verified while it is written (backup_restore ``state=dumped``, ``verify_rows``).

A psql session opens a REPEATABLE READ, READ ONLY transaction, exports its snapshot
(``pg_export_snapshot()``) and counts every table's rows exactly in that snapshot; ``pg_dump
--snapshot=<id>`` then dumps the very same state while the session stays open. The dump's
stream goes to the file and, block by block, through :class:`PlainScan`, which counts the data
rows of every COPY block and checks that the script is complete. :func:`rows_problems` compares
the two: every table, every row.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import threading

from ansible_collections.taylordash.rollback.plugins.module_utils._process import Producer

SNAPSHOT_MARKER = 'taylordash.rollback.backup_restore:snapshot-counts'

# The tables pg_dump writes COPY data for: ordinary tables and leaf partitions (pg_dump dumps
# partitions one by one) outside the system schemas and not owned by an extension. Names are
# quoted as pg_dump quotes them (quote_ident follows the same rules as pg_dump's fmtId).
SNAPSHOT_ROWS_QUERY = (
    "SELECT coalesce(pg_catalog.json_object_agg(t.name, t.n), '{}')::text FROM ("
    "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS name, "
    "(pg_catalog.xpath('/row/c/text()', pg_catalog.query_to_xml(pg_catalog.format("
    "'SELECT pg_catalog.count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS n "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp' "
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
    "AND d.objid = c.oid AND d.deptype = 'e')) t"
)


def snapshot_session_sql():
    """What the session runs first: the transaction, the snapshot it exports, the counts, a marker."""
    return ('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n'
            'SELECT pg_catalog.pg_export_snapshot();\n'
            + SNAPSHOT_ROWS_QUERY + ';\n'
            "SELECT '" + SNAPSHOT_MARKER + "';\n").encode('ascii')


def parse_session_output(text):
    """(snapshot id, {table: rows}) from the session's output, or raise ValueError."""
    lines = [line for line in text.splitlines() if line.strip()]
    if SNAPSHOT_MARKER not in lines or lines.index(SNAPSHOT_MARKER) < 2:
        raise ValueError('no snapshot and row counts before the marker')
    end = lines.index(SNAPSHOT_MARKER)
    snapshot, counts = lines[end - 2].strip(), json.loads(lines[end - 1])
    if not snapshot or not isinstance(counts, dict):
        raise ValueError('unexpected snapshot %r or counts %r' % (snapshot, counts))
    return snapshot, dict((str(k), int(v)) for k, v in counts.items())


def rows_problems(live, dumped):
    """Differences between the live counts (taken in the dump's snapshot) and the data rows the
    dump holds, one text per table, sorted; [] when every table has exactly its rows. A table
    without rows needs no COPY block; a COPY block of a table that is not counted live (an
    extension's configuration table, say) is not a difference."""
    problems = []
    for name in sorted(live):
        if name not in dumped:
            if live[name]:
                problems.append('%s has %d rows in the database and no data in the dump' % (name, live[name]))
        elif dumped[name] != live[name]:
            problems.append('%s has %d rows in the database and %d in the dump' % (name, live[name], dumped[name]))
    return problems


class SnapshotSession(object):
    """A psql session that holds the exported snapshot open until :meth:`close`.

    ``argv`` runs psql reading its script from stdin (``-f -``, unaligned, tuples only).
    :meth:`open` returns ``(snapshot, counts)`` or raises ValueError with psql's words."""

    def __init__(self, argv, env_update=None, cwd=None):
        self.argv = argv
        self.snapshot = None
        self.live = None
        self._done = threading.Event()
        self._producer = Producer(argv, env_update=env_update, cwd=cwd, feed=self._feed())

    def _feed(self):
        yield snapshot_session_sql()
        # The transaction (and with it the snapshot) lives until the dump is done.
        self._done.wait()
        yield b'COMMIT;\n'

    def open(self):
        seen = b''
        marker = SNAPSHOT_MARKER.encode('ascii') + b'\n'
        for chunk in self._producer.chunks():
            seen += chunk
            if marker in seen:
                return parse_session_output(seen.decode('utf-8', 'replace'))
        # psql ended before the marker: it failed.
        self._done.set()
        rc, stderr, feed_error = self._producer.finish()
        raise ValueError((stderr or feed_error or 'psql exited with %s' % rc).strip())

    def close(self):
        """End the transaction and the session; returns (rc, stderr)."""
        self._done.set()
        for dummy in self._producer.chunks():
            pass
        rc, stderr, dummy = self._producer.finish()
        self._producer.close()
        return rc, stderr

    def abort(self):
        self._done.set()
        self._producer.close()
