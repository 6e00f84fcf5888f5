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
    restore takes first; with O(verify_rows=true) it is verified while it is written (every table's rows
    against the database's in the dump's own snapshot), else verify it with
    M(taylordash.rollback.backup_verify) before restoring."
  - "O(state=swapped): the live database O(db) is replaced by a verified copy kept by
    M(taylordash.rollback.backup_verify) (its O(taylordash.rollback.backup_verify#module:keep_as)) without replaying
    anything: in one transaction the sessions of both databases are ended, O(db) is renamed to
    O(previous_as) (kept, nothing is dropped), O(swap_from) is renamed to O(db) and given the owner O(db)
    had. Any failure rolls the transaction back, so O(db) is either the old or the new database, never
    neither. Then the rows of the new O(db) are counted; when they differ from O(expect_rows), the swap is
    undone the same way (O(db) is the old database again) and the module fails. With O(keep_previous), only
    once they matched, the older previous databases beyond O(keep_previous) are dropped (never O(previous_as))."
  - "Before the swap, one query checks that it can work and gives the same database as an in-place restore
    would: O(swap_from) exists, O(previous_as) does not, the login role may create databases and owns O(db)
    (or is a superuser), and O(db) has nothing of its own that a copy created from C(template0) lacks
    (privileges or settings, a connection limit, another tablespace, encoding or locale). Otherwise the
    module fails and changes nothing."
  - "O(state=pruned): the databases C(<db>_before_<YYYYmmdd_HHMMSS>) (the names the role
    C(taylordash.rollback.database) gives O(previous_as)) but the newest O(keep_previous) are dropped. Only names
    of exactly that form are touched. Take (and verify) a dump of a previous database first when its data may
    still be needed: the role does, before it drops the one of the rollback it just did."
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
    support: full
    details:
      - O(state=restored) reports what it would restore and the current row counts (a read-only query);
        nothing is restored.
      - O(state=dumped) reports where it would write the dump; pg_dump does not run.
      - O(state=swapped) runs its checks (a read-only query), counts the rows of O(db) (RV(rows_before)) and reports the
        renames it would do.
      - O(state=pruned) lists the previous databases and reports those it would drop (RV(would_drop)); so does
        O(state=swapped) with O(keep_previous).
  diff_mode:
    support: full
    details:
      - The row count of every table before and after the restore (in check mode, after is O(expect_rows)
        when given).
  idempotent:
    support: none
    details:
      - A restore replaces the data every time it runs, and a dump writes a file every time (it refuses to
        overwrite an existing one unless O(force=true)); both always report a change.
extends_documentation_fragment:
  - taylordash.rollback.attributes
  - taylordash.rollback.postgres_connection
options:
  state:
    description:
      - V(restored) restores O(path) into O(db); V(dumped) writes a dump of O(db) to O(path); V(swapped) puts
        the database O(swap_from) in the place of O(db), which is kept as O(previous_as); V(pruned) drops the
        previous databases of O(db) but the newest O(keep_previous).
    type: str
    choices: [restored, dumped, swapped, pruned]
    default: restored
  swap_from:
    description:
      - With O(state=swapped), the verified copy to put in the place of O(db) (the O(taylordash.rollback.backup_verify#module:keep_as)
        of M(taylordash.rollback.backup_verify)). Required with O(state=swapped).
    type: str
  previous_as:
    description:
      - With O(state=swapped), the new name of the database O(db) was before the swap; it must not exist. Required with
        O(state=swapped).
    type: str
  swap_from_may_be_missing:
    description:
      - With O(state=swapped) in check mode, accept that O(swap_from) does not exist (M(taylordash.rollback.backup_verify)
        keeps no copy in check mode, so a dry run of both cannot have one). Ignored outside check mode.
    type: bool
    default: false
  keep_previous:
    description:
      - With O(state=pruned), how many of the newest C(<db>_before_<YYYYmmdd_HHMMSS>) databases to keep, from V(0) to
        V(1000); unset means V(1).
      - "With O(state=swapped), unset: nothing is dropped. From V(1) to V(1000): after the swap committed and the rows
        of the new O(db) matched O(expect_rows), the older C(<db>_before_<YYYYmmdd_HHMMSS>) databases are dropped but
        the newest O(keep_previous); O(previous_as), the database this swap keeps, is always kept and counts as one
        (V(1) keeps only it). A drop that fails does not undo the swap: it is reported in RV(drop_problem) and as a
        warning, and the databases not dropped are left as they are. V(0) is refused: the previous database of the
        swap itself is dropped only with O(state=pruned), once its dump is verified."
      - The older databases are listed in the same server call as the swap's checks (no extra call); each drop is
        one call.
    type: int
  login_db:
    description:
      - With O(state=swapped) and O(state=pruned), the maintenance database to connect to for the renames (never O(db)).
    type: str
    default: postgres
  path:
    description:
      - With O(state=restored), the dump to restore; its format is detected from its content - plain
        SQL, gzip-compressed plain SQL, pg_dump custom (C(-Fc)) or tar (C(-Ft)) archive.
      - With O(state=dumped), the file to write.
      - Required with O(state=restored) and O(state=dumped); not used with O(state=swapped).
    type: path
  db:
    description:
      - The database to restore into, to dump, or to replace by O(swap_from).
    type: str
    required: true
  clean_schemas:
    description:
      - Schemas dropped (C(DROP SCHEMA IF EXISTS ... CASCADE)) and created again, empty, before the dump
        is replayed, in the same transaction. The runbook drops V(public).
      - Each name must be a non-empty schema name without NUL characters, at most 63 bytes (PostgreSQL's
        limit), listed once; checked in check mode too.
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
      - With O(state=swapped), the row counts the new O(db) must have after the swap; every table of the database
        must be listed with exactly that many rows, else the swap is undone.
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
        before the restore fails, instead of waiting for ever. From V(1) to V(86400) (a day).
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
  verify_rows:
    description:
      - "With O(state=dumped) and O(dump_format=plain), verify the dump while it is written, in the same
        pass: a psql session opens a C(REPEATABLE READ, READ ONLY) transaction, exports its snapshot
        (C(pg_export_snapshot())) and counts every table's rows exactly in it; C(pg_dump --snapshot) then
        dumps that very state while the session stays open, and its stream goes to the file and, block by
        block, through the same integrity scan as M(taylordash.rollback.backup_verify) (a pg_dump script,
        not cut short inside COPY data, ending with pg_dump's closing line, no pg_dumpall output or psql
        meta-commands), which also counts the data rows of every table's COPY block. The dump is kept only
        when the scan finds nothing and every table has exactly its live row count; otherwise nothing is
        written to O(path) and the module fails naming the tables that differ."
      - "Why this is as strong a check of the safety dump as restoring it in a scratch database (what the
        role did before): that restore proved the file complete and replayable and reported its row counts,
        but compared them with nothing, so a dump that lost rows or a table's data on the way (a stream
        cut at a line boundary, a broken pipe, a full disk absorbed by a buffer) passed. The scan proves the
        same completeness and the counts prove, table by table, that every row of the database is in the
        file - measured against the database itself in the very snapshot pg_dump read, so writers still
        running cannot make a false alarm or hide a loss. What the scratch restore proved beyond it is that
        the schema statements replay: here they are written by the server's own pg_dump from the catalog it
        is dumping, into the same server; who wants that proof too sets O(verify_rows=false) and runs
        M(taylordash.rollback.backup_verify) on the dump (the role C(taylordash.rollback.database) does
        with C(database_safety_verify=restore)). Cost: one C(count(*)) per table and a scan at memory
        speed, instead of a second full restore."
      - Only for plain dumps (the data of a custom archive is compressed); V(true) with
        O(dump_format=custom) is refused.
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
- name: Swap a verified copy (backup_verify keep_as) in for the live database; the old one is kept
  taylordash.rollback.backup_restore:
    state: swapped
    db: taylordash
    swap_from: taylordash_rollback_20240518_101500
    previous_as: taylordash_before_20240518_101500
    expect_rows: "{{ verified_copy.tables | items2dict(key_name='name', value_name='rows') }}"
    # Then drop the older taylordash_before_* databases: keep only this swap's previous one.
    keep_previous: 1
    project_dir: /opt/taylordash

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

- name: Or take the safety dump verified while it is written (rows counted in its own snapshot)
  taylordash.rollback.backup_restore:
    state: dumped
    verify_rows: true
    path: "/opt/taylordash/safety_{{ now(fmt='%Y%m%d_%H%M%S') }}.sql"
    db: taylordash
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
  description: Whether the restore (or swap) transaction committed. V(false) on every failure, after a swap was undone, and in check mode.
  returned: O(state=restored) and O(state=swapped)
  type: bool
  sample: true
rows_before:
  description: Tables of the database with their exact row counts before the restore.
  returned: O(state=restored), when the database answered; O(state=swapped) in check mode
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
    - With O(state=swapped), the rows of the new O(db), counted right after the swap.
  returned: O(state=restored) or O(state=swapped), when the restore ran and the database answered
  type: list
  elements: dict
  sample: [{name: public.projects, rows: 5000}, {name: public.users, rows: 3000}]
total_rows_before:
  description: Sum of RV(rows_before).
  returned: O(state=restored), when the database answered; O(state=swapped) in check mode
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
      description: pg_dump writing the dump (O(state=dumped)), with O(verify_rows) the scan and the counts of its stream too.
      type: float
    snapshot:
      description: With O(verify_rows), opening the snapshot and counting every table's rows in it.
      type: float
  sample: {count_before: 0.05, restore: 1.1, count_after: 0.04}
timing:
  description:
    - When the module started and ended (ISO 8601, UTC) and how many seconds it took; every module of
      the collection returns it, for the C(taylordash.rollback.step_timeline) filter.
  returned: always
  type: dict
  contains:
    start:
      description: Start time.
      type: str
    end:
      description: End time.
      type: str
    seconds:
      description: Duration in seconds.
      type: float
  sample: {start: "2024-05-18T10:15:00.000000+00:00", end: "2024-05-18T10:15:01.840000+00:00", seconds: 1.84}
swap_from:
  description: With O(state=swapped), the database that was put in the place of O(db).
  returned: O(state=swapped)
  type: str
  sample: taylordash_rollback_20240518_101500
previous_db:
  description: With O(state=swapped), where the data of O(db) from before the swap is (O(previous_as)).
  returned: O(state=swapped)
  type: str
  sample: taylordash_before_20240518_101500
sessions_ended:
  description: With O(state=swapped), how many sessions of the two databases the swap ended.
  returned: O(state=swapped), when the swap committed
  type: int
  sample: 0
previous_dbs:
  description:
    - With O(state=pruned), the previous databases kept, newest first.
    - With O(state=swapped) and O(keep_previous), those kept after the swap (would be, in check mode); O(previous_as) first.
  returned: O(state=pruned), when they were listed; O(state=swapped) with O(keep_previous), in check mode or when the swap stood
  type: list
  elements: str
  sample: [taylordash_before_20240518_101500]
dropped:
  description: With O(state=pruned), or O(state=swapped) with O(keep_previous), the previous databases dropped.
  returned: O(state=pruned), when they were listed; O(state=swapped) with O(keep_previous), when the checks passed
  type: list
  elements: str
  sample: [taylordash_before_20240401_090000]
would_drop:
  description:
    - With O(state=pruned), in check mode or when there is nothing to drop, the databases that would be dropped.
    - With O(state=swapped) and O(keep_previous), in check mode, the older previous databases the swap would drop.
  returned: O(state=pruned), in check mode or when nothing was dropped; O(state=swapped) with O(keep_previous), in check mode
  type: list
  elements: str
  sample: []
drop_problem:
  description:
    - With O(state=swapped) and O(keep_previous), why dropping an older previous database failed after the swap committed
      (the swap stands; the databases not dropped are left as they are).
  returned: O(state=swapped), when a drop failed
  type: str
  sample: 'Dropping the older previous database taylordash_before_20240401_090000 failed: ...'
swapped_back:
  description: With O(state=swapped), V(true) when the swap was undone because the row counts differed.
  returned: O(state=swapped), when the swap was undone
  type: bool
  sample: true
rows:
  description:
    - With O(state=dumped) and O(verify_rows), every table with its exact row count in the dump's snapshot,
      which the dump was checked to hold.
  returned: O(state=dumped) with O(verify_rows), when the rows were counted
  type: list
  elements: dict
  sample: [{name: public.projects, rows: 5000}, {name: public.users, rows: 3000}]
total_rows:
  description: Sum of RV(rows).
  returned: O(state=dumped) with O(verify_rows), when the rows were counted
  type: int
  sample: 8000
verified:
  description: With O(verify_rows), whether the dump was complete and held every table's rows.
  returned: O(state=dumped) with O(verify_rows), when the stream was checked
  type: bool
  sample: true
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

import re

from ansible_collections.taylordash.rollback.plugins.module_utils._pg_connection import find_client
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_restore import BackupRestore
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_task import (
    MAX_SECONDS, database_name_problems, number_problem, start_module, whole_number_problems)

_SHA256_RE = re.compile(r'^[0-9a-fA-F]{64}$')
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes: a longer schema name would not be
# the schema the operator named.
MAX_IDENTIFIER_BYTES = 63


def schema_problems(schemas):
    problems = []
    for schema in schemas or []:
        if not schema or not schema.strip():
            problems.append('clean_schemas holds an empty schema name; name each schema to drop and re-create')
        elif '\x00' in schema:
            problems.append('clean_schemas[%r] holds a NUL character, which no schema name can' % schema)
        elif len(schema.encode('utf-8')) > MAX_IDENTIFIER_BYTES:
            problems.append('clean_schemas[%s...] is longer than %d bytes, PostgreSQL\'s limit for a name'
                            % (schema[:20], MAX_IDENTIFIER_BYTES))
    if len(set(schemas or [])) != len(schemas or []):
        problems.append('clean_schemas names a schema more than once')
    return problems


def validate_params(params):
    """Problems with the options (pure); empty when they are fine."""
    problems = [problem for problem in (
        number_problem(params, 'lock_timeout', 1, MAX_SECONDS),
        number_problem(params, 'connect_timeout', 1, MAX_SECONDS),
    ) if problem]
    if params['keep_previous'] is not None:
        problems += [problem for problem in [number_problem(params, 'keep_previous', 0, 1000, unit='')] if problem]
        if params['state'] == 'swapped' and params['keep_previous'] == 0:
            problems.append('keep_previous=0 with state=swapped would drop the database the swap keeps (previous_as); '
                            'keep 1 or more here, and drop it with state=pruned once its dump is verified')
    if params['sha256'] is not None and not _SHA256_RE.match(params['sha256']):
        problems.append('sha256 must be 64 hexadecimal digits')
    if params['state'] == 'restored' and not params['clean_schemas']:
        problems.append('clean_schemas must name at least one schema (the runbook drops public)')
    problems += schema_problems(params['clean_schemas'])
    problems += whole_number_problems('expect_rows', params['expect_rows'])
    for option in ('swap_from', 'previous_as'):
        problems += database_name_problems(option, params.get(option))
    if params['state'] in ('restored', 'dumped') and not params.get('path'):
        problems.append('path is required with state=%s' % params['state'])
    if params['state'] == 'swapped':
        problems += ['%s is required with state=swapped' % option for option in ('swap_from', 'previous_as')
                     if not params.get(option)]
        names = [params['db'], params.get('swap_from'), params.get('previous_as'), params.get('login_db')]
        if None not in names and len(set(names)) != len(names):
            problems.append('db, swap_from, previous_as and login_db must name four different databases')
    if params.get('verify_rows') and params['state'] == 'dumped' and params['dump_format'] != 'plain':
        problems.append('verify_rows=true counts the rows in the SQL of a plain dump; set dump_format=plain, or '
                        'verify_rows=false and verify the archive with taylordash.rollback.backup_verify')
    return problems


def main():
    module, conn, locale = start_module(
        dict(
            state=dict(type='str', default='restored', choices=['restored', 'dumped', 'swapped', 'pruned']),
            path=dict(type='path'),
            swap_from=dict(type='str'),
            previous_as=dict(type='str'),
            login_db=dict(type='str', default='postgres'),
            keep_previous=dict(type='int'),
            swap_from_may_be_missing=dict(type='bool', default=False),
            db=dict(type='str', required=True),
            clean_schemas=dict(type='list', elements='str', default=['public']),
            expect_rows=dict(type='dict'),
            sha256=dict(type='str'),
            lock_timeout=dict(type='int', default=30),
            dump_format=dict(type='str', default='plain', choices=['plain', 'custom']),
            force=dict(type='bool', default=False),
            verify_rows=dict(type='bool', default=False),
        ),
        validate_params, failure_note=' Nothing was changed.',
        required_if=[('state', 'restored', ['path']), ('state', 'dumped', ['path']),
                     ('state', 'swapped', ['swap_from', 'previous_as'])])
    # pg_dump for the safety dump of state=dumped in direct mode (compose mode runs the container's).
    pg_dump = None if module.params['project_dir'] else find_client('pg_dump')
    worker = BackupRestore(module, conn, locale, pg_dump)
    if module.params['state'] == 'dumped':
        result = worker.dump()
    elif module.params['state'] == 'swapped':
        result = worker.swap()
    elif module.params['state'] == 'pruned':
        result = worker.prune()
    else:
        result = worker.restore()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
