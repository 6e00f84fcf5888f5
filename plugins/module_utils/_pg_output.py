# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Parsers of what the PostgreSQL clients print (row counts, server version, ``pg_restore -l``)
and the comparison of restored tables with what is expected. Pure functions, unit-tested on
output captured from the real tools.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re


def parse_row_counts(stdout):
    """Parse ``psql -A -t -z -0`` output of ROW_COUNT_QUERY (NUL-separated fields and records,
    so any table name survives) into ``[{'name': 'schema.table', 'rows': N}]``."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode('utf-8', 'replace')
    fields = stdout.split('\x00')
    if fields and fields[-1].strip() == '':
        fields = fields[:-1]
    if len(fields) % 3 != 0:
        raise ValueError('unexpected row-count output: %d fields' % len(fields))
    tables = []
    for i in range(0, len(fields), 3):
        schema, table, rows = fields[i], fields[i + 1], fields[i + 2].strip()
        tables.append({'name': '%s.%s' % (schema, table), 'rows': int(rows)})
    return tables


def parse_server_version(stdout):
    """Parse SERVER_VERSION_QUERY output: returns (version text, version number)."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode('utf-8', 'replace')
    line = stdout.strip().splitlines()[0] if stdout.strip() else ''
    num, dummy, text = line.partition(' ')
    if not num.isdigit():
        raise ValueError('unexpected server version output: %r' % stdout[:200])
    return text.strip(), int(num)


# Multi-word object types printed by pg_restore -l, longest first.
_TOC_TYPES = sorted((
    'TABLE DATA', 'SEQUENCE SET', 'SEQUENCE OWNED BY', 'FK CONSTRAINT', 'DEFAULT ACL',
    'MATERIALIZED VIEW', 'MATERIALIZED VIEW DATA', 'TABLE ATTACH', 'INDEX ATTACH',
    'BLOB METADATA', 'BLOBS', 'LARGE OBJECT', 'FOREIGN TABLE', 'FOREIGN DATA WRAPPER',
    'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH DICTIONARY', 'TEXT SEARCH PARSER',
    'TEXT SEARCH TEMPLATE', 'USER MAPPING', 'OPERATOR CLASS', 'OPERATOR FAMILY',
    'EVENT TRIGGER', 'PUBLICATION TABLE', 'PUBLICATION TABLES IN SCHEMA', 'ROW SECURITY',
    'DATABASE PROPERTIES', 'SHELL TYPE', 'ACCESS METHOD', 'SERVER', 'STATISTICS',
), key=len, reverse=True)
_TOC_LINE_RE = re.compile(r'^(\d+);\s+(\d+)\s+(\d+)\s+(.*)$')
_TOC_HEADER_RE = re.compile(r'^;\s+([A-Za-z][A-Za-z_ ]*?):\s*(.*)$')


def parse_pg_restore_list(text):
    """Parse ``pg_restore -l`` output: header fields and TOC entries.

    Entry lines are ``ID; TABLEOID OID TYPE SCHEMA NAME OWNER``; TYPE may hold spaces (matched
    against the known multi-word types), OWNER is the last word, NAME what is between.
    """
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    header = {}
    entries = []
    for line in text.splitlines():
        if line.startswith(';'):
            match = _TOC_HEADER_RE.match(line)
            if match:
                header[match.group(1).strip().lower()] = match.group(2).strip()
            continue
        match = _TOC_LINE_RE.match(line)
        if not match:
            continue
        rest = match.group(4)
        etype = None
        for candidate in _TOC_TYPES:
            if rest.startswith(candidate + ' '):
                etype = candidate
                break
        if etype is None:
            etype, dummy, rest = rest.partition(' ')
        else:
            rest = rest[len(etype) + 1:]
        schema, dummy, rest = rest.partition(' ')
        name, dummy, owner = rest.rpartition(' ')
        if not name:
            name, owner = owner, ''
        entries.append({'id': int(match.group(1)), 'type': etype, 'schema': schema, 'name': name,
                        'owner': owner})
    toc = header.get('toc entries', '')
    return {
        'format': header.get('format', '').lower(),
        'dbname': header.get('dbname'),
        'toc_entries': int(toc) if toc.isdigit() else len(entries),
        'compression': header.get('compression'),
        'dump_version': header.get('dump version'),
        'dumped_from': header.get('dumped from database version'),
        'dumped_by': header.get('dumped by pg_dump version'),
        'entries': entries,
    }


def archive_summary(listing):
    """The part of a parsed ``pg_restore -l`` returned to the user."""
    return {
        'format': listing['format'],
        'dbname': listing['dbname'],
        'toc_entries': listing['toc_entries'],
        'table_data_entries': sum(1 for e in listing['entries'] if e['type'] == 'TABLE DATA'),
        'dumped_from': listing['dumped_from'],
        'dumped_by': listing['dumped_by'],
    }


def qualify(name):
    """``users`` means ``public.users``; ``audit.events`` stays as it is."""
    return name if '.' in name else 'public.' + name


def check_expectations(tables, expect_tables=None, min_rows=None):
    """Compare restored tables with expectations; returns a list of problems ([] = fine)."""
    counts = dict((t['name'], t['rows']) for t in tables)
    problems = []
    missing = [qualify(n) for n in (expect_tables or []) if qualify(n) not in counts]
    if missing:
        problems.append('expected tables missing from the restored backup: %s' % ', '.join(missing))
    for name in sorted(min_rows or {}):
        want = min_rows[name]
        qname = qualify(name)
        if qname not in counts:
            if qname not in missing:
                problems.append('table %s (min_rows %d) is missing from the restored backup' % (qname, want))
        elif counts[qname] < want:
            problems.append('table %s has %d rows, fewer than min_rows %d' % (qname, counts[qname], want))
    return problems
