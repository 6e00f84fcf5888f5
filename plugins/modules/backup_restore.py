#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_restore
short_description: Restore a PostgreSQL dump all or nothing, or write the safety dump taken before
description:
  - The runbook's "Data Restoration Rollback" (C(DROP SCHEMA public CASCADE; CREATE SCHEMA public;)
    then C(psql < backup)) done so that a failure anywhere leaves the database exactly as it was.
  - "O(state=restored): one C(psql -X -v ON_ERROR_STOP=1 --single-transaction -f -) session is fed,
    through its standard input, with the preparation statements (C(DROP SCHEMA ... CASCADE) and
    C(CREATE SCHEMA) for each of O(clean_schemas)), then the dump, then the integrity check. Plain SQL
    is streamed from the file; gzip-compressed SQL is decompressed on the fly; custom and tar archives
    are converted to SQL on the fly by C(pg_restore -f -). Nothing is written to a temporary file and
    memory stays bounded whatever the size of the dump."
  - "All or nothing: the first SQL error stops psql (C(ON_ERROR_STOP)) and the transaction is rolled
    back. A commit guard (a deferred constraint trigger on a temporary table, created first in the same
    transaction) makes the final C(COMMIT) fail unless the whole stream arrived, so a dump that is
    cut short, a corrupt gzip stream, a failing C(pg_restore), a file whose sha256 is not O(sha256), a
    pg_dump script without its closing line, the module being stopped (SIGTERM) or killed, all end in a
    rollback - psql's C(--single-transaction) alone would commit whatever it read before end of input."
  - "Integrity inside the transaction: with O(expect_rows), the row count of every table of
    O(clean_schemas) and of every table named in O(expect_rows) is compared with it before the commit;
    any difference rolls back and is named in the message. Pass the counts
    M(taylordash.rollback.backup_verify) measured in its scratch restore of the same file."
  - "O(state=dumped): C(pg_dump) of O(db) is streamed into a temporary file beside O(path) (mode
    C(0600) from its creation), checked (exit status, pg_dump's closing line for plain SQL, the
    C(PGDMP) header for a custom archive), then atomically renamed to O(path). This is the safety dump a
    restore takes first; verify it with M(taylordash.rollback.backup_verify) before restoring."
  - "Two ways to reach PostgreSQL, as M(taylordash.rollback.backup_verify): with O(project_dir),
    C(docker compose exec -T) into O(db_service) runs psql/pg_restore/pg_dump inside the container
    and the files on the module host are streamed through stdin and stdout (for a restore, the
    running container is pinned once and reached with C(docker exec -i)); without it, the client
    programs on the module host connect to O(login_host):O(login_port)."
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
requirements:
  - Direct mode, on the module host, C(psql), C(pg_restore) (for archives) and C(pg_dump) (for
    O(state=dumped)), found on E(PATH) or in C(/usr/lib/postgresql/<version>/bin) (newest first).
  - Compose mode, C(docker) with the compose v2 plugin on the module host; C(psql), C(pg_restore)
    and C(pg_dump) in the database service's container.
  - A role that owns (or may drop) the schemas of O(clean_schemas) and may create them again.
  - PostgreSQL 9.5 or later (the commit guard and the row check use C(jsonb) and PL/pgSQL).
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - O(state=restored) reports what it would restore and the current row counts (a read-only query);
        nothing is restored.
      - O(state=dumped) reports where it would write the dump; pg_dump does not run.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff_mode mode).
    support: full
    details:
      - The row count of every table before and after the restore (in check mode, after is O(expect_rows)
        when given).
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: none
    details:
      - A restore replaces the data every time it runs, and a dump writes a file every time (it refuses to
        overwrite an existing one unless O(force=true)); both always report a change.
  action_group:
    description: Use C(group/taylordash.rollback.rollback) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - taylordash.rollback.rollback
extends_documentation_fragment:
  - taylordash.rollback.postgres_connection
options:
  state:
    description:
      - V(restored) restores O(path) into O(db); V(dumped) writes a dump of O(db) to O(path).
    type: str
    choices: [restored, dumped]
    default: restored
  path:
    description:
      - With O(state=restored), the dump to restore; its format is detected from its content - plain
        SQL, gzip-compressed plain SQL, pg_dump custom (C(-Fc)) or tar (C(-Ft)) archive.
      - With O(state=dumped), the file to write.
    type: path
    required: true
  db:
    description:
      - The database to restore into, or to dump.
    type: str
    required: true
  clean_schemas:
    description:
      - Schemas dropped (C(DROP SCHEMA IF EXISTS ... CASCADE)) and created again, empty, before the dump
        is replayed, in the same transaction. The runbook drops V(public).
      - Objects of other schemas are left as they are; a dump that creates them again fails (and rolls
        back) unless their schema is listed here.
    type: list
    elements: str
    default: [public]
  expect_rows:
    description:
      - "Row count per table that the restored database must have before the transaction commits, for
        example C({public.users: 1, public.projects: 3}); a name without a schema means C(public)."
      - Every table of O(clean_schemas) must be listed, and every listed table must exist with exactly that
        many rows; otherwise the restore is rolled back and the message names the tables that differ.
      - Not checked when unset.
    type: dict
  sha256:
    description:
      - The SHA-256 the file must have (for example the one M(taylordash.rollback.backup_verify) reported),
        computed while the file streams; when it differs the restore is rolled back. Proves that the file
        restored is the file verified.
    type: str
  lock_timeout:
    description:
      - Seconds C(DROP SCHEMA) waits for locks held by other sessions (a writer that was not stopped)
        before the restore fails, instead of waiting for ever.
    type: int
    default: 30
  dump_format:
    description:
      - With O(state=dumped), V(plain) SQL (C(pg_dump) default) or a V(custom) archive (C(pg_dump -Fc)).
    type: str
    choices: [plain, custom]
    default: plain
  force:
    description:
      - With O(state=dumped), overwrite O(path) when it exists. By default an existing file is never
        replaced.
    type: bool
    default: false
notes:
  - "Plain SQL runs as written, with the privileges of the login role (owners and grants included);
    archives are converted with C(pg_restore --no-owner --no-privileges --no-tablespaces), the same
    options M(taylordash.rollback.backup_verify) restores them with, so the restore replays what was
    verified."
  - "Backups are trusted input: verify them with M(taylordash.rollback.backup_verify) first (it refuses
    pg_dumpall output and psql meta-commands such as C(\\connect) that would act outside the
    transaction). This module only checks that a pg_dump script ends with pg_dump's closing line."
  - "Stop the applications that write to the database first (the role C(taylordash.rollback.database)
    does): the restore replaces their data, and O(lock_timeout) bounds how long it waits for their locks."
  - "psql's line numbers in a failure message count the stream, not the file: the message converts them
    to the line of the dump (of the SQL that C(pg_restore -f -) produced, for archives)."
seealso:
  - module: taylordash.rollback.backup_verify
  - module: community.postgresql.postgresql_db
"""

EXAMPLES = r"""
- name: Verify the newest backup
  taylordash.rollback.backup_verify:
    backup_dir: /opt/taylordash
    pattern: "backup_*.sql*"
    project_dir: /opt/taylordash
    expect_tables: [users, projects]
  register: backup_check

- name: Take a safety dump of the current database
  taylordash.rollback.backup_restore:
    state: dumped
    path: "/opt/taylordash/safety_{{ now(fmt='%Y%m%d_%H%M%S') }}.sql"
    db: taylordash
    project_dir: /opt/taylordash
  register: safety

- name: Verify the safety dump too
  taylordash.rollback.backup_verify:
    path: "{{ safety.path }}"
    project_dir: /opt/taylordash

- name: Restore the verified backup in one transaction, checking the row counts before the commit
  taylordash.rollback.backup_restore:
    path: "{{ backup_check.path }}"
    sha256: "{{ backup_check.sha256 }}"
    expect_rows: "{{ backup_check.tables | items2dict(key_name='name', value_name='rows') }}"
    db: taylordash
    project_dir: /opt/taylordash
    db_service: postgres
    db_user: taylordash
  register: restored

- name: Restore a custom archive on a server reached over TCP
  taylordash.rollback.backup_restore:
    path: /var/backups/taylordash/taylordash.dump
    db: taylordash
    login_host: 127.0.0.1
    login_user: taylordash
    login_password: "{{ vault_taylordash_db_password }}"
    clean_schemas: [public, audit]
"""

RETURN = r"""
msg:
  description: What was done, or what is wrong and what to do about it.
  returned: always
  type: str
  sample: >-
    Restored /opt/taylordash/backup_20240518_1000.sql (plain, 50656 bytes) into taylordash in 1.2 s in one transaction:
    3 tables, 8002 rows (before 3 tables, 9120 rows).
connection:
  description: How PostgreSQL was reached, V(direct) or V(compose).
  returned: always
  type: str
  sample: compose
path:
  description:
    - The dump restored or written, with symbolic links resolved.
    - Ansible adds the file's attributes to a result with a C(path), see RV(owner), RV(group), RV(uid),
      RV(gid), RV(mode), RV(state) and RV(size).
  returned: always
  type: str
  sample: /opt/taylordash/backup_20240518_1000.sql
owner:
  description: Owner of the file (added by Ansible for results with a path).
  returned: when the file exists
  type: str
  sample: root
group:
  description: Group of the file (added by Ansible).
  returned: when the file exists
  type: str
  sample: root
uid:
  description: Numeric owner of the file (added by Ansible).
  returned: when the file exists
  type: int
  sample: 0
gid:
  description: Numeric group of the file (added by Ansible).
  returned: when the file exists
  type: int
  sample: 0
mode:
  description: Permissions of the file, octal (added by Ansible). A safety dump is written C(0600).
  returned: when the file exists
  type: str
  sample: '0600'
state:
  description: Kind of the path (added by Ansible); V(file) for a dump.
  returned: when the file exists
  type: str
  sample: file
secontext:
  description: SELinux context of the file (added by Ansible).
  returned: when the file exists and SELinux is enabled
  type: str
  sample: unconfined_u:object_r:user_home_t:s0
size:
  description: Size of the file in bytes.
  returned: when the file exists
  type: int
  sample: 50656
db:
  description: The database restored into or dumped.
  returned: always
  type: str
  sample: taylordash
format:
  description: Format of the dump, V(plain), V(gzip), V(custom) or V(tar).
  returned: when known
  type: str
  sample: plain
sha256:
  description: SHA-256 of the file as stored, computed while it streamed.
  returned: O(state=restored), when the file was streamed
  type: str
  sample: d53b296d6c0d3a58ba2d6c9b8f1ce7bbd65c0b3b83a0a1b1dbb8b5e2b0f4c6a1
clean_schemas:
  description: The schemas dropped and created again.
  returned: O(state=restored)
  type: list
  elements: str
  sample: [public]
committed:
  description: Whether the restore transaction committed. V(false) on every failure and in check mode.
  returned: O(state=restored)
  type: bool
  sample: true
rows_before:
  description: Tables of the database with their exact row counts before the restore.
  returned: O(state=restored), when the database answered
  type: list
  elements: dict
  contains:
    name:
      description: C(schema.table).
      type: str
    rows:
      description: Exact row count.
      type: int
  sample: [{name: public.projects, rows: 5120}, {name: public.users, rows: 4000}]
rows_after:
  description:
    - Tables of the database with their exact row counts after the restore, counted right after the commit
      (before any writer is started again). After a failed restore they show the database as it is, which
      is as it was.
  returned: O(state=restored), when the restore ran and the database answered
  type: list
  elements: dict
  sample: [{name: public.projects, rows: 5000}, {name: public.users, rows: 3000}]
total_rows_before:
  description: Sum of RV(rows_before).
  returned: O(state=restored), when the database answered
  type: int
  sample: 9120
total_rows_after:
  description: Sum of RV(rows_after).
  returned: O(state=restored), when the restore ran and the database answered
  type: int
  sample: 8000
sql_lines:
  description: Lines of SQL streamed from the dump (after decompression or conversion).
  returned: O(state=restored), when the restore ran
  type: int
  sample: 8262
duration:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 1.84
phases:
  description: Seconds per phase; phases that did not run are absent.
  returned: always
  type: dict
  contains:
    count_before:
      description: Counting the rows before the restore.
      type: float
    restore:
      description: The restore transaction, from the first byte streamed to the commit.
      type: float
    count_after:
      description: Counting the rows after the restore.
      type: float
    dump:
      description: pg_dump writing the dump (O(state=dumped)).
      type: float
  sample: {count_before: 0.05, restore: 1.1, count_after: 0.04}
cmd:
  description: The command that failed, as a list (never holds the password).
  returned: when a command failed
  type: list
  elements: str
  sample: [docker, compose, --project-directory, /opt/taylordash, exec, -T, postgres, psql, -X, -U, taylordash, -d, taylordash]
rc:
  description: Exit status of the command that failed.
  returned: when a command failed
  type: int
  sample: 3
stdout:
  description: Standard output of the command that failed (bounded).
  returned: when a command failed
  type: str
  sample: ''
stderr:
  description: Standard error of the command that failed (bounded).
  returned: when a command failed
  type: str
  sample: 'psql:<stdin>:8270: ERROR:  relation "no_such_table" does not exist'
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import zlib

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.locale import get_best_parsable_locale

from ansible_collections.taylordash.rollback.plugins.module_utils._process import spawn
from ansible_collections.taylordash.rollback.plugins.module_utils._postgres import (
    CHUNK_SIZE,
    FORMAT_CUSTOM,
    FORMAT_GZIP,
    FORMAT_PLAIN,
    FORMAT_TAR,
    PG_DUMP_HEADER,
    PG_DUMP_TRAILER,
    ROW_COUNT_QUERY,
    CONNECTION_MUTUALLY_EXCLUSIVE,
    CONNECTION_REQUIRED_BY,
    classify_error,
    find_client,
    build_connection,
    connection_argument_spec,
    iter_file,
    parse_row_counts,
    psql_query_args,
    psql_restore_args,
    qualify,
    quote_ident,
    run_command_streaming,
    sha256_file,
    sniff_format,
)

RESTORE_STDOUT_LIMIT = 64 * 1024
TAIL_KEEP = 64 * 1024
GUARD_TABLE = 'pg_temp.taylordash_restore_guard'
GUARD_MESSAGE = 'taylordash.rollback: the restore stream ended before its end marker; nothing is committed'
CHECK_MESSAGE = 'taylordash.rollback: row counts differ from the verified backup'
_STREAM_LINE_RE = re.compile(r'^psql:<stdin>:(\d+): ', re.M)
_SHA256_RE = re.compile(r'^[0-9a-fA-F]{64}$')


class Terminated(Exception):
    """SIGTERM while dumping: remove the partial file, then fail."""


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested)
# ---------------------------------------------------------------------------------------------

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


def pg_dump_tail_problem(head, tail):
    """For a plain SQL stream: None when it is not a pg_dump script (no header) or when it ends
    with pg_dump's closing line (followed only by blank lines, comments and \\unrestrict);
    otherwise why it looks cut short."""
    if PG_DUMP_HEADER not in head[:512]:
        return None
    for line in reversed(tail.split(b'\n')):
        line = line.strip(b'\r \t')
        if not line or line.startswith(b'\\unrestrict'):
            continue
        if line.startswith(PG_DUMP_TRAILER):
            return None
        if line.startswith(b'--'):
            continue
        return ("the dump does not end with pg_dump's closing line '%s': it is truncated, or something was "
                "appended to it" % PG_DUMP_TRAILER.decode())
    return "the dump does not end with pg_dump's closing line '%s': it is truncated" % PG_DUMP_TRAILER.decode()


def dump_file_problem(fmt, head, tail, size):
    """Checks of a freshly written dump (pg_dump can exit 0 without a usable dump)."""
    if size == 0:
        return 'pg_dump wrote nothing'
    if fmt == FORMAT_CUSTOM:
        return None if head.startswith(b'PGDMP') else 'the file does not start with the custom archive header PGDMP'
    if PG_DUMP_HEADER not in head[:512]:
        return "the file does not start with pg_dump's header line"
    return pg_dump_tail_problem(head, tail)


def stream_line_to_dump_line(stream_line, prelude_lines, dump_lines):
    """Where a psql error at line N of the stream is: ('prelude', n), ('dump', n) or ('check', n)."""
    if stream_line <= prelude_lines:
        return 'prelude', stream_line
    if dump_lines is None or stream_line <= prelude_lines + dump_lines:
        return 'dump', stream_line - prelude_lines
    return 'check', stream_line - prelude_lines - dump_lines


def counts_text(tables):
    return ''.join('%s: %d\n' % (t['name'], t['rows']) for t in tables or [])


def validate_params(params):
    problems = []
    if params['lock_timeout'] < 1:
        problems.append('lock_timeout must be 1 or more seconds, got %d' % params['lock_timeout'])
    if params['connect_timeout'] < 1:
        problems.append('connect_timeout must be 1 or more seconds, got %d' % params['connect_timeout'])
    if params['sha256'] is not None and not _SHA256_RE.match(params['sha256']):
        problems.append('sha256 must be 64 hexadecimal digits')
    if params['state'] == 'restored' and not params['clean_schemas']:
        problems.append('clean_schemas must name at least one schema (the runbook drops public)')
    for name, value in sorted((params['expect_rows'] or {}).items()):
        try:
            number = int(value)
        except (TypeError, ValueError):
            problems.append('expect_rows[%s] must be a whole number, got %r' % (name, value))
            continue
        if number < 0 or str(number) != str(value).strip():
            problems.append('expect_rows[%s] must be a whole number of 0 or more, got %r' % (name, value))
    return problems


# ---------------------------------------------------------------------------------------------
# The restore stream
# ---------------------------------------------------------------------------------------------

class _Drain(object):
    """Reads a stream in a thread into a bounded buffer (stderr of pg_restore)."""

    def __init__(self, stream, limit=64 * 1024):
        self.data = bytearray()
        self.limit = limit
        self.thread = threading.Thread(target=self._run, args=(stream,))
        self.thread.daemon = True
        self.thread.start()

    def _run(self, stream):
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            self.data += chunk
            if len(self.data) > self.limit:
                del self.data[:len(self.data) - self.limit]
        stream.close()

    def text(self):
        self.thread.join()
        return self.data.decode('utf-8', 'replace')


class RestoreStream(object):
    """The bytes psql reads: prelude, dump (as SQL), epilogue. Never raises: any problem with the
    source (or a stop request) ends the stream early without the epilogue, which makes the
    commit guard roll the transaction back."""

    def __init__(self, prelude, epilogue, expect_sha256=None):
        self.prelude = prelude
        self.epilogue = epilogue
        self.expect_sha256 = expect_sha256.lower() if expect_sha256 else None
        self.sha256 = None
        self.failure = None
        self.failure_result = None
        self.complete = False
        self.stop_requested = False
        self.dump_lines = 0
        self.head = b''
        self.tail = bytearray()

    def _note(self, chunk):
        if len(self.head) < 512:
            self.head += chunk[:512 - len(self.head)]
        self.tail += chunk
        if len(self.tail) > TAIL_KEEP:
            del self.tail[:len(self.tail) - TAIL_KEEP]
        self.dump_lines += chunk.count(b'\n')

    def generate(self, source, fmt, finish=None):
        """source yields SQL chunks; finish() returns None or (message, result) once the
        source is exhausted (pg_restore's exit status)."""
        yield self.prelude
        try:
            for chunk in source:
                if self.stop_requested:
                    self.failure = 'the module was stopped (SIGTERM) while the dump was streaming'
                    return
                if chunk:
                    self._note(chunk)
                    yield chunk
            if finish is not None:
                problem = finish()
                if problem is not None:
                    self.failure, self.failure_result = problem
                    return
        except (IOError, OSError, EOFError, zlib.error) as exc:
            self.failure = 'reading the dump failed: %s' % exc
            return
        if fmt in (FORMAT_PLAIN, FORMAT_GZIP):
            problem = pg_dump_tail_problem(self.head, bytes(self.tail))
            if problem:
                self.failure = problem
                return
        if self.expect_sha256 and self.sha256 and self.sha256 != self.expect_sha256:
            self.failure = ('the file changed since it was verified: its sha256 is %s, expected %s'
                            % (self.sha256, self.expect_sha256))
            return
        if self.stop_requested:
            self.failure = 'the module was stopped (SIGTERM) while the dump was streaming'
            return
        self.complete = True
        yield self.epilogue

    # -- sources ---------------------------------------------------------------------------
    def plain_source(self, path):
        digest = hashlib.sha256()
        for chunk in iter_file(path):
            digest.update(chunk)
            yield chunk
        self.sha256 = digest.hexdigest()

    def gzip_source(self, path):
        """Raw bytes hashed, then inflated member by member (concatenated gzip members are
        legal); a stream that ends inside a member is corrupt."""
        digest = hashlib.sha256()
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        for raw in iter_file(path):
            digest.update(raw)
            data = raw
            while data:
                if inflater is None:
                    if not data.strip(b'\x00'):
                        break  # zero padding after the last member, as gzip(1) tolerates
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out = inflater.decompress(data)
                if out:
                    yield out
                if inflater.eof:
                    data = inflater.unused_data
                    inflater = None
                else:
                    data = b''
        if inflater is not None:
            raise EOFError('the gzip stream ends inside a member: the file is truncated')
        self.sha256 = digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------

class BackupRestore(object):

    def __init__(self, module, conn, locale, pg_dump=None):
        self.module = module
        self.conn = conn
        self.locale = locale
        self.pg_dump = pg_dump
        self.params = module.params
        self.result = dict(changed=False, connection=conn.mode, db=self.params['db'], phases={})
        self.started = time.time()
        self._phase = None
        self.stream = None

    # -- plumbing ---------------------------------------------------------------------------
    def env(self):
        env = self.conn.env(self.locale)
        env['PGAPPNAME'] = 'taylordash.rollback.backup_restore'
        return env

    def run(self, argv, feed=None, stdout_limit=None):
        return run_command_streaming(argv, env_update=self.env(), cwd=self.conn.cwd, feed=feed,
                                     stdout_limit=stdout_limit)

    def begin_phase(self, name):
        self.end_phase()
        self._phase = (name, time.time())

    def end_phase(self):
        if self._phase is not None:
            name, since = self._phase
            self._phase = None
            self.result['phases'][name] = round(self.result['phases'].get(name, 0) + time.time() - since, 3)

    def fail(self, msg, cmd_result=None, argv=None, rc=None, stderr=None):
        if cmd_result is not None:
            self.result.update(cmd=cmd_result.argv, rc=cmd_result.rc, stdout=cmd_result.stdout_text,
                               stderr=cmd_result.stderr_text)
        elif argv is not None:
            self.result.update(cmd=argv, rc=rc, stdout='', stderr=stderr or '')
        self.end_phase()
        self.result['duration'] = round(time.time() - self.started, 3)
        self.module.fail_json(msg=msg, **self.result)

    def classify(self, stderr, rc):
        msg = classify_error(stderr, self.conn.where, self.conn.user, self.conn.user_option, rc)[1]
        return msg.replace('check login_db', 'check db')

    def count_rows(self):
        res = self.run(self.conn.psql_argv(self.params['db'], psql_query_args(ROW_COUNT_QUERY, True)))
        if res.rc != 0:
            return None, res
        try:
            return parse_row_counts(res.stdout), None
        except ValueError:
            return None, res

    # -- state=restored ----------------------------------------------------------------------
    def restore(self):
        path = os.path.realpath(self.params['path'])
        self.result['path'] = path
        self.result['clean_schemas'] = list(self.params['clean_schemas'])
        self.result['committed'] = False
        if os.path.isdir(path):
            self.fail('%s is a directory: directory-format dumps (pg_dump -Fd) cannot be restored; use a plain '
                      'SQL dump or a custom archive.' % path)
        try:
            with open(path, 'rb') as handle:
                head = handle.read(512)
        except (IOError, OSError) as exc:
            self.fail('Cannot read the dump %s: %s. Nothing was changed.' % (path, exc))
        fmt, problem = sniff_format(head)
        if fmt is None:
            self.fail('Cannot restore %s: %s. Nothing was changed.' % (path, problem))
        self.result['format'] = fmt
        db = self.params['db']
        if fmt in (FORMAT_CUSTOM, FORMAT_TAR) and self.conn.pg_restore is None:
            self.fail('%s is a %s archive, which needs pg_restore, and there is no pg_restore on the module host; '
                      'install the PostgreSQL client or use compose mode (project_dir). Nothing was changed.' % (path, fmt))

        if self.conn.mode == 'compose':
            # Three or more calls into the database container follow: docker exec, not compose exec.
            self.conn.pin_container(self.run)
        self.begin_phase('count_before')
        before, res = self.count_rows()
        self.end_phase()
        if before is None:
            self.fail('Cannot restore into %s: counting its rows failed: %s. Nothing was changed.'
                      % (db, self.classify(res.stderr_text, res.rc)), cmd_result=res)
        self.result['rows_before'] = before
        self.result['total_rows_before'] = sum(t['rows'] for t in before)
        expect = self.params['expect_rows']
        if self.module._diff:
            after_text = counts_text(sorted(({'name': qualify(k), 'rows': int(v)} for k, v in expect.items()),
                                            key=lambda t: t['name'])) if expect is not None else '(counted after the restore)\n'
            self.result['diff'] = {'before_header': '%s row counts' % db, 'before': counts_text(before),
                                   'after_header': '%s row counts' % db, 'after': after_text}
        what = '%s (%s, %d bytes)' % (path, fmt, os.path.getsize(path))
        if self.module.check_mode:
            self.result['changed'] = True
            self.result['msg'] = ('Would restore %s into %s in one transaction, dropping and re-creating schema(s) %s '
                                  '(now %d tables, %d rows)%s; nothing was changed (check mode).'
                                  % (what, db, ', '.join(self.params['clean_schemas']), len(before),
                                     self.result['total_rows_before'],
                                     ', and check the row counts of %d tables before committing' % len(expect)
                                     if expect is not None else ''))
            return self.finish()

        self.begin_phase('restore')
        res = self.stream_restore(path, fmt)
        self.end_phase()
        stream = self.stream
        self.result['sql_lines'] = stream.dump_lines
        if stream.sha256:
            self.result['sha256'] = stream.sha256
        committed = res.rc == 0 and stream.complete
        self.result['committed'] = committed
        self.result['changed'] = committed

        self.begin_phase('count_after')
        after, count_res = self.count_rows()
        self.end_phase()
        if after is not None:
            self.result['rows_after'] = after
            self.result['total_rows_after'] = sum(t['rows'] for t in after)
            if 'diff' in self.result:
                self.result['diff']['after'] = counts_text(after)

        if not committed:
            state = self.state_after_failure(before, after)
            reason = self.failure_reason(stream, res)
            if stream.failure_result is not None:
                res = stream.failure_result
            self.fail('Restoring %s into %s failed: %s. The transaction was rolled back: %s'
                      % (what, db, reason, state), cmd_result=res)
        if after is None:
            self.fail('Restored %s into %s (committed), but counting the rows afterwards failed: %s'
                      % (what, db, self.classify(count_res.stderr_text, count_res.rc)), cmd_result=count_res)
        self.result['msg'] = ('Restored %s into %s in %.1f s in one transaction: %d tables, %d rows (before %d tables, '
                              '%d rows)%s.' % (what, db, self.result['phases']['restore'], len(after),
                                               self.result['total_rows_after'], len(before),
                                               self.result['total_rows_before'],
                                               '; row counts checked before the commit' if expect is not None else ''))
        return self.finish()

    def state_after_failure(self, before, after):
        if after is None:
            return 'the database could not be counted afterwards; check it.'
        if after == before:
            return 'the database is as it was (%d tables, %d rows, the same counts as before).' % (
                len(after), sum(t['rows'] for t in after))
        return ('the row counts now differ from before (%d -> %d rows): another session changed the data '
                'meanwhile; check the writers are stopped.' % (sum(t['rows'] for t in before), sum(t['rows'] for t in after)))

    def failure_reason(self, stream, res):
        """psql's own error first (the statement that failed), then what ended the stream early;
        the commit guard's error only says that the stream ended early."""
        reasons = []
        stderr = res.stderr_text
        if CHECK_MESSAGE in stderr:
            match = re.search(re.escape(CHECK_MESSAGE) + r': (.*)', stderr)
            reasons.append('the restored row counts differ from the verified backup (%s)' % (
                match.group(1).strip() if match else 'see stderr'))
        elif 'canceling statement due to lock timeout' in stderr:
            reasons.append('another session holds a lock on the schema (waited %d s, lock_timeout): stop the '
                           'writers and retry' % self.params['lock_timeout'])
        elif res.rc != 0 and GUARD_MESSAGE not in stderr:
            reasons.append(self.sql_error(stream, stderr, res.rc))
        if stream.failure is not None:
            reasons.append(stream.failure)
        if not reasons:
            reasons.append('psql ended without committing (rc=%s): %s' % (res.rc, self.classify(stderr, res.rc)))
        return '; '.join(reasons)

    def sql_error(self, stream, stderr, rc):
        """psql numbers the lines of its input, the prelude included: name the line of the dump."""
        match = _STREAM_LINE_RE.search(stderr)
        if not match:
            return self.classify(stderr, rc)
        where, line = stream_line_to_dump_line(int(match.group(1)), sql_lines(stream.prelude), stream.dump_lines)
        if where == 'dump':
            translated = _STREAM_LINE_RE.sub(lambda m: 'psql:<stdin>:%d: ' % stream_line_to_dump_line(
                int(m.group(1)), sql_lines(stream.prelude), stream.dump_lines)[1], stderr)
            reason = self.classify(translated, rc)
            if self.result.get('format') in (FORMAT_CUSTOM, FORMAT_TAR):
                reason += ' (the line counts the SQL that pg_restore -f - made of the archive)'
            return reason
        reason = self.classify(stderr, rc)
        if where == 'prelude':
            return reason + ' (in the statements that drop and re-create the schemas, before the dump)'
        return reason + ' (in the integrity check after the dump)'

    def stream_restore(self, path, fmt):
        prelude = restore_prelude(self.params['clean_schemas'], self.params['lock_timeout'])
        epilogue = restore_epilogue(self.params['expect_rows'], self.params['clean_schemas'])
        stream = RestoreStream(prelude, epilogue, self.params['sha256'])
        self.stream = stream
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        psql_argv = self.conn.psql_argv(self.params['db'], psql_restore_args())
        try:
            if fmt == FORMAT_PLAIN:
                feed = stream.generate(stream.plain_source(path), fmt)
                return self.run(psql_argv, feed=feed, stdout_limit=RESTORE_STDOUT_LIMIT)
            if fmt == FORMAT_GZIP:
                feed = stream.generate(stream.gzip_source(path), fmt)
                return self.run(psql_argv, feed=feed, stdout_limit=RESTORE_STDOUT_LIMIT)
            return self.restore_archive(path, fmt, stream, psql_argv)
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _on_sigterm(self, signum, frame):
        # Never raise here: stopping the stream without its end marker is what rolls back.
        if self.stream is not None:
            self.stream.stop_requested = True

    def restore_archive(self, path, fmt, stream, psql_argv):
        """pg_restore -f - turns the archive into SQL on the fly; its output is psql's input."""
        args = ['-f', '-', '--exit-on-error', '--no-owner', '--no-privileges', '--no-tablespaces',
                '--no-publications', '--no-subscriptions']
        if self.conn.mode == 'direct':
            stream.sha256 = sha256_file(path)
            argv = self.conn.pg_restore_argv(args + [path])
            stdin = subprocess.DEVNULL
        else:
            argv = self.conn.pg_restore_argv(args)
            stdin = subprocess.PIPE
        env = dict(os.environ)
        env.update(self.env())
        proc = spawn(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     env=env, cwd=self.conn.cwd, close_fds=True)
        errors = _Drain(proc.stderr)
        feeder = None
        feed_error = []
        if stdin is subprocess.PIPE:
            feeder = threading.Thread(target=self._feed_archive, args=(path, proc, stream, feed_error))
            feeder.daemon = True
            feeder.start()

        def source():
            while True:
                chunk = proc.stdout.read1(CHUNK_SIZE)
                if not chunk:
                    return
                yield chunk

        def finish():
            rc = proc.wait()
            if feeder is not None:
                feeder.join()
            stderr = errors.text()
            if feed_error:
                return ('reading the archive failed: %s' % feed_error[0],
                        _Result(argv, rc, stderr))
            if rc != 0:
                return ('pg_restore could not convert the archive: %s' % self.classify(stderr, rc),
                        _Result(argv, rc, stderr))
            return None

        try:
            return self.run(psql_argv, feed=stream.generate(source(), fmt, finish), stdout_limit=RESTORE_STDOUT_LIMIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if feeder is not None:
                feeder.join(5)
            proc.stdout.close()

    @staticmethod
    def _feed_archive(path, proc, stream, feed_error):
        digest = hashlib.sha256()
        try:
            for chunk in iter_file(path):
                if stream.stop_requested:
                    break
                digest.update(chunk)
                proc.stdin.write(chunk)
            else:
                stream.sha256 = digest.hexdigest()
        except (BrokenPipeError, ConnectionResetError):
            pass  # pg_restore stopped early; its exit status tells why
        except (IOError, OSError) as exc:
            feed_error.append(exc)
        finally:
            try:
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass

    # -- state=dumped ------------------------------------------------------------------------
    def dump_argv(self, fmt):
        args = ['-w'] + (['-Fc'] if fmt == FORMAT_CUSTOM else [])
        db = self.params['db']
        if self.conn.mode == 'direct':
            argv = [self.pg_dump]
            if self.conn.host:
                argv += ['-h', self.conn.host]
            return argv + ['-p', str(self.conn.port), '-U', self.conn.user, '-d', db] + args
        return self.conn.exec_argv(['pg_dump', '-U', self.conn.user, '-d', db] + args, self.locale)

    def dump(self):
        path = os.path.abspath(self.params['path'])
        fmt = self.params['dump_format']
        self.result['path'] = path
        self.result['format'] = fmt
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            self.fail('Cannot write the dump: directory %s does not exist.' % directory)
        if os.path.exists(path) and not self.params['force']:
            self.fail('%s exists already; a dump never replaces a file unless force=true. Choose another path.' % path)
        if self.conn.mode == 'direct' and self.pg_dump is None:
            self.fail('Cannot find pg_dump on the module host (PATH, /usr/lib/postgresql/*/bin); install the '
                      'PostgreSQL client, or use compose mode (project_dir).')
        if self.module._diff:
            self.result['diff'] = {'before': {'path': path, 'state': 'file' if os.path.exists(path) else 'absent'},
                                   'after': {'path': path, 'state': 'file'}}
        if self.module.check_mode:
            self.result['changed'] = True
            self.result['msg'] = 'Would dump %s (%s) to %s; nothing was changed (check mode).' % (
                self.params['db'], fmt, path)
            return self.finish()

        argv = self.dump_argv(fmt)
        size = 0
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.part', dir=directory)
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        proc = None
        self.begin_phase('dump')
        try:
            env = dict(os.environ)
            env.update(self.env())
            with os.fdopen(fd, 'wb') as handle:
                proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.PIPE,
                             env=env, cwd=self.conn.cwd, close_fds=True)
                dummy, stderr = proc.communicate()
                handle.flush()
                os.fsync(handle.fileno())
            stderr = stderr.decode('utf-8', 'replace')
            self.end_phase()
            if proc.returncode != 0:
                self.fail('pg_dump of %s failed: %s. Nothing was written to %s.'
                          % (self.params['db'], self.classify(stderr, proc.returncode), path),
                          argv=argv, rc=proc.returncode, stderr=stderr[-8192:])
            size = os.path.getsize(tmp)
            with open(tmp, 'rb') as handle:
                head = handle.read(512)
                handle.seek(max(0, size - TAIL_KEEP))
                tail = handle.read()
            problem = dump_file_problem(fmt, head, tail, size)
            if problem:
                self.fail('pg_dump of %s exited 0 but the dump is not usable: %s. Nothing was written to %s.'
                          % (self.params['db'], problem, path), argv=argv, rc=0, stderr=stderr[-8192:])
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
            tmp = None
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except Terminated:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            self.fail('Interrupted by SIGTERM while dumping %s; the partial file was removed and nothing was written '
                      'to %s.' % (self.params['db'], path))
        finally:
            signal.signal(signal.SIGTERM, previous)
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        self.result['changed'] = True
        self.result['size'] = size
        self.result['msg'] = 'Dumped %s (%s, %d bytes) to %s in %.1f s (mode 0600).' % (
            self.params['db'], fmt, size, path, self.result['phases']['dump'])
        return self.finish()

    def finish(self):
        self.end_phase()
        self.result['duration'] = round(time.time() - self.started, 3)
        return self.result


class _Result(object):
    """The shape of a command result for fail() (pg_restore's, which ran outside the gateway)."""

    def __init__(self, argv, rc, stderr):
        self.argv = argv
        self.rc = rc
        self.stdout_text = ''
        self.stderr_text = stderr


def _raise_terminated(signum, frame):
    raise Terminated()


def build_connection_and_dump(module):
    """The connection, and pg_dump for the safety dump of state=dumped in direct mode."""
    conn = build_connection(module)
    return conn, None if module.params['project_dir'] else find_client('pg_dump')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', default='restored', choices=['restored', 'dumped']),
            path=dict(type='path', required=True),
            db=dict(type='str', required=True),
            clean_schemas=dict(type='list', elements='str', default=['public']),
            expect_rows=dict(type='dict'),
            sha256=dict(type='str'),
            lock_timeout=dict(type='int', default=30),
            dump_format=dict(type='str', default='plain', choices=['plain', 'custom']),
            force=dict(type='bool', default=False),
            **connection_argument_spec()
        ),
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
        required_by=CONNECTION_REQUIRED_BY,
        supports_check_mode=True,
    )
    problems = validate_params(module.params)
    if problems:
        module.fail_json(msg='Invalid options: %s.' % '; '.join(problems))
    conn, pg_dump = build_connection_and_dump(module)
    worker = BackupRestore(module, conn, get_best_parsable_locale(module), pg_dump)
    if module.params['state'] == 'dumped':
        result = worker.dump()
    else:
        result = worker.restore()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
