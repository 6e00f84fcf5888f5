# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SQL this collection sends to PostgreSQL, as text: identifier and literal quoting, the
row-count and version queries, the scratch database statements of backup_verify, and the
statements that frame a restore (the commit guard and schema cleaning before the dump, the
row-count check and the completion mark after it).

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import re

from ansible_collections.taylordash.rollback.plugins.module_utils._pg_output import qualify

SCRATCH_PREFIX = 'rollback_verify_'

GUARD_TABLE = 'pg_temp.taylordash_restore_guard'
GUARD_MESSAGE = 'taylordash.rollback: the restore stream ended before its end marker; nothing is committed'
CHECK_MESSAGE = 'taylordash.rollback: row counts differ from the verified backup'

# Tables of the current database with an exact row count each, in one statement: query_to_xml
# runs a generated count(*) per table server-side, so names need no client-side quoting.
# Partitions are counted through their parent only.
ROW_COUNT_QUERY = (
    "SELECT n.nspname, c.relname, "
    "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
    "n.nspname, c.relname), false, true, '')))[1]::text "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' "
    "ORDER BY 1, 2"
)

SERVER_VERSION_QUERY = "SELECT current_setting('server_version_num') || ' ' || current_setting('server_version')"

COUNT_MARKER = b'taylordash.rollback.backup_verify:row-counts'
# Sent after a plain dump, in the same psql session: a marker row, then the row counts.
COUNT_TRAILER = b"\nSELECT '" + COUNT_MARKER + b"';\n" + ROW_COUNT_QUERY.encode('ascii') + b';\n'


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def quote_literal(text):
    """A SQL string literal (standard_conforming_strings on, which pg_dump sets and 9.1+ defaults to)."""
    return "'%s'" % text.replace("'", "''")


def restore_prelude(clean_schemas, lock_timeout):
    """SQL sent before the dump, inside psql's single transaction: the commit guard, then the
    runbook's DROP SCHEMA / CREATE SCHEMA. The guard is a deferred constraint trigger on a
    temporary table: at COMMIT it fails unless the epilogue marked the stream complete, so a
    stream that stops early (psql commits at end of input) rolls back instead of committing."""
    lines = [
        'SET client_min_messages = warning;',
        'CREATE TEMPORARY TABLE taylordash_restore_guard (done boolean NOT NULL);',
        'CREATE FUNCTION pg_temp.taylordash_restore_guard() RETURNS trigger LANGUAGE plpgsql AS $guard$ '
        'BEGIN IF NOT (SELECT bool_and(done) FROM %s) THEN RAISE EXCEPTION %s; END IF; RETURN NULL; END $guard$;'
        % (GUARD_TABLE, quote_literal(GUARD_MESSAGE)),
        'CREATE CONSTRAINT TRIGGER taylordash_restore_guard AFTER INSERT ON %s DEFERRABLE INITIALLY DEFERRED '
        'FOR EACH ROW EXECUTE PROCEDURE pg_temp.taylordash_restore_guard();' % GUARD_TABLE,
        'INSERT INTO %s VALUES (false);' % GUARD_TABLE,
        "SET lock_timeout = '%ds';" % lock_timeout,
    ]
    for schema in clean_schemas:
        lines.append('DROP SCHEMA IF EXISTS %s CASCADE;' % quote_ident(schema))
        lines.append('CREATE SCHEMA %s;' % quote_ident(schema))
    lines.append('RESET lock_timeout;')
    return ('\n'.join(lines) + '\n').encode('utf-8')


def restore_epilogue(expect_rows, clean_schemas):
    """SQL sent after the dump: the row-count check (when expect_rows is given), then the mark
    that lets the commit guard pass. The leading newline ends a last line without one.
    Every name is schema-qualified: a pg_dump script empties search_path."""
    parts = ['\n']
    if expect_rows is not None:
        expected = json.dumps(dict((qualify(k), int(v)) for k, v in expect_rows.items()), sort_keys=True)
        schemas = '{%s}' % ','.join('"%s"' % s.replace('\\', '\\\\').replace('"', '\\"') for s in clean_schemas)
        parts.append(
            'DO $check$\n'
            'DECLARE\n'
            '  expected pg_catalog.jsonb := %s::pg_catalog.jsonb;\n'
            '  cleaned pg_catalog.text[] := %s::pg_catalog.text[];\n'
            '  found pg_catalog.text[] := ARRAY[]::pg_catalog.text[];\n'
            '  differences pg_catalog.text[] := ARRAY[]::pg_catalog.text[];\n'
            '  rel record;\n'
            '  qname pg_catalog.text;\n'
            '  n pg_catalog.int8;\n'
            'BEGIN\n'
            '  FOR rel IN SELECT ns.nspname, c.relname FROM pg_catalog.pg_class c\n'
            '      JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace\n'
            "      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition\n"
            "        AND ns.nspname NOT IN ('pg_catalog', 'information_schema') AND ns.nspname !~ '^pg_(toast|temp)'\n"
            '      ORDER BY 1, 2 LOOP\n'
            "    qname := rel.nspname || '.' || rel.relname;\n"
            '    IF NOT (expected ? qname OR rel.nspname = ANY (cleaned)) THEN CONTINUE; END IF;\n'
            "    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %%I.%%I', rel.nspname, rel.relname) INTO n;\n"
            '    found := found || qname;\n'
            '    IF NOT expected ? qname THEN\n'
            "      differences := differences || pg_catalog.format('%%s has %%s rows but is not in the verified backup', qname, n);\n"
            "    ELSIF (expected ->> qname)::pg_catalog.int8 <> n THEN\n"
            "      differences := differences || pg_catalog.format('%%s has %%s rows, the verified backup %%s', qname, n, expected ->> qname);\n"
            '    END IF;\n'
            '  END LOOP;\n'
            '  FOR qname IN SELECT k FROM pg_catalog.jsonb_object_keys(expected) AS k ORDER BY 1 LOOP\n'
            '    IF NOT qname = ANY (found) THEN\n'
            "      differences := differences || pg_catalog.format('%%s is missing (the verified backup has %%s rows)', qname, expected ->> qname);\n"
            '    END IF;\n'
            '  END LOOP;\n'
            '  IF pg_catalog.cardinality(differences) > 0 THEN\n'
            "    RAISE EXCEPTION '%%: %%', %s, pg_catalog.array_to_string(differences, '; ');\n"
            '  END IF;\n'
            'END $check$;\n' % (quote_literal(expected), quote_literal(schemas), quote_literal(CHECK_MESSAGE)))
    parts.append('UPDATE %s SET done = true;\n' % GUARD_TABLE)
    return ''.join(parts).encode('utf-8')


def sql_lines(data):
    return data.count(b'\n')


def new_scratch_name(token):
    return SCRATCH_PREFIX + re.sub(r'[^a-z0-9_]', '', token.lower())


def create_database_sql(name):
    return 'CREATE DATABASE %s TEMPLATE template0' % quote_ident(name)


def drop_database_sql(name, server_version_num):
    # WITH (FORCE) (PostgreSQL 13+) ends sessions a killed restore may have left behind.
    force = ' WITH (FORCE)' if server_version_num and server_version_num >= 130000 else ''
    return 'DROP DATABASE IF EXISTS %s%s' % (quote_ident(name), force)


def swap_problems_sql(live):
    """One row, one text: why the login role cannot replace database ``live`` by renaming a kept
    copy in its place (empty when it can). Run in the maintenance database. A swap must give the
    same database as an in-place restore would, so a database with anything of its own that a
    copy created from template0 would not carry (privileges, settings, a connection limit, a
    tablespace, another encoding or locale) is refused, as is one the role may not rename."""
    lit = quote_literal(live)
    return (
        "SELECT 'swap:' || concat_ws('; ', "
        "CASE WHEN d.oid IS NULL THEN 'database ' || %(lit)s || ' does not exist' END, "
        "CASE WHEN %(lit)s = current_database() THEN 'database ' || %(lit)s || ' is the maintenance database (login_db) "
        "the swap connects to' END, "
        "CASE WHEN NOT (r.rolsuper OR r.rolcreatedb) THEN 'role ' || r.rolname || ' may not create databases (CREATEDB)' END, "
        "CASE WHEN d.oid IS NOT NULL AND NOT r.rolsuper AND NOT pg_catalog.pg_has_role(d.datdba, 'MEMBER') "
        "THEN 'role ' || r.rolname || ' does not own database ' || %(lit)s END, "
        "CASE WHEN d.datacl IS NOT NULL THEN 'database ' || %(lit)s || ' has privileges of its own (GRANT ... ON DATABASE)' END, "
        "CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s WHERE s.setdatabase = d.oid) "
        "THEN 'database ' || %(lit)s || ' has settings of its own (ALTER DATABASE ... SET)' END, "
        "CASE WHEN d.datconnlimit <> -1 THEN 'database ' || %(lit)s || ' has a connection limit' END, "
        "CASE WHEN d.datistemplate THEN 'database ' || %(lit)s || ' is a template' END, "
        "CASE WHEN d.dattablespace <> t.dattablespace OR d.encoding <> t.encoding OR d.datcollate <> t.datcollate "
        "OR d.datctype <> t.datctype THEN 'database ' || %(lit)s || ' has another tablespace, encoding or locale "
        "than template0' END) "
        "FROM pg_catalog.pg_roles r "
        "CROSS JOIN (SELECT * FROM pg_catalog.pg_database WHERE datname = 'template0') t "
        "LEFT JOIN pg_catalog.pg_database d ON d.datname = %(lit)s "
        "WHERE r.rolname = current_user" % {'lit': lit})


TAGS = ('swap', 'taken', 'kept', 'previous')


def database_taken_sql(name, tag='taken'):
    """One row: C(<tag>:yes) when a database of that name exists, else C(<tag>:no)."""
    return ("SELECT '%s:' || CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s) "
            "THEN 'yes' ELSE 'no' END" % (tag, quote_literal(name)))


def parse_tagged_lines(stdout):
    """The C(tag:value) lines of psql -A -t output (swap_problems_sql, database_taken_sql) as a
    dict; other lines (the server version) are left out. The first line of a tag wins."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode('utf-8', 'replace')
    tags = {}
    for line in stdout.splitlines():
        tag, sep, value = line.partition(':')
        if sep and tag in TAGS and tag not in tags:
            tags[tag] = value.strip()
    return tags


def count_differences(expected, tables):
    """Tables whose rows differ between ``expected`` (name -> rows; a name without a schema means
    public) and ``tables`` (the [{name, rows}] counted), sorted; [] when they are equal."""
    want = dict((qualify(k), int(v)) for k, v in expected.items())
    have = dict((t['name'], t['rows']) for t in tables)
    problems = []
    for name in sorted(set(want) | set(have)):
        if name not in have:
            problems.append('%s is missing (the verified backup has %d rows)' % (name, want[name]))
        elif name not in want:
            problems.append('%s has %d rows but is not in the verified backup' % (name, have[name]))
        elif want[name] != have[name]:
            problems.append('%s has %d rows, the verified backup %d' % (name, have[name], want[name]))
    return problems


def swap_sql(live, kept, previous):
    """One transaction: end the sessions of both databases, rename ``live`` to ``previous`` and
    ``kept`` to ``live``, and give the new ``live`` the owner the old one had. ALTER DATABASE ...
    RENAME runs inside a transaction: any failure (a session that will not go, a name taken)
    rolls both renames back. PostgreSQL waits up to 5 s for terminated sessions to go."""
    return [
        'BEGIN',
        'SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity '
        'WHERE datname IN (%s, %s) AND pid <> pg_catalog.pg_backend_pid()' % (quote_literal(live), quote_literal(kept)),
        'ALTER DATABASE %s RENAME TO %s' % (quote_ident(live), quote_ident(previous)),
        'ALTER DATABASE %s RENAME TO %s' % (quote_ident(kept), quote_ident(live)),
        "DO $owner$ BEGIN EXECUTE pg_catalog.format('ALTER DATABASE %%I OWNER TO %%I', %s, "
        "(SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = %s)); END $owner$"
        % (quote_literal(live), quote_literal(previous)),
        'COMMIT',
    ]


def swap_back_sql(live, kept, previous):
    """The swap undone, in one transaction: ``live`` goes back to ``kept``, ``previous`` to ``live``."""
    return [
        'BEGIN',
        'SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity '
        'WHERE datname IN (%s, %s) AND pid <> pg_catalog.pg_backend_pid()' % (quote_literal(live), quote_literal(previous)),
        'ALTER DATABASE %s RENAME TO %s' % (quote_ident(live), quote_ident(kept)),
        'ALTER DATABASE %s RENAME TO %s' % (quote_ident(previous), quote_ident(live)),
        'COMMIT',
    ]


PREVIOUS_INFIX = '_before_'
# The stamp the role puts after the infix: YYYYmmdd_HHMMSS.
PREVIOUS_STAMP_RE = '^[0-9]{8}_[0-9]{6}$'


def previous_databases_sql(db, tag=None):
    """The databases ``<db>_before_<YYYYmmdd_HHMMSS>`` (what state=swapped keeps, as the role
    names them), newest first, one per line; each prefixed with ``<tag>:`` when ``tag`` is given
    (to share a psql call with other queries, see :func:`tagged_values`)."""
    prefix = db + PREVIOUS_INFIX
    return ("SELECT %sdatname FROM pg_catalog.pg_database WHERE pg_catalog.left(datname, %d) = %s "
            "AND pg_catalog.substr(datname, %d) ~ %s ORDER BY datname DESC"
            % ("'%s:' || " % tag if tag else '', len(prefix), quote_literal(prefix), len(prefix) + 1,
               quote_literal(PREVIOUS_STAMP_RE)))


def tagged_values(stdout, tag):
    """Every value of the C(<tag>:value) lines of psql -A -t output, in order."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode('utf-8', 'replace')
    prefix = tag + ':'
    return [line[len(prefix):].strip() for line in stdout.splitlines() if line.startswith(prefix) and line[len(prefix):].strip()]


def prune_plan(names, keep):
    """(kept, dropped): the newest ``keep`` of ``names`` (sorted newest first) and the rest."""
    ordered = sorted(names, reverse=True)
    return ordered[:keep], ordered[keep:]
