#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_verify
short_description: Prove that a PostgreSQL backup restores, in a scratch database
description:
  - Verifies a PostgreSQL dump before a rollback relies on it, the way the runbook's
    "Backup Validation Before Rollback" does by hand, but safely and with a verdict.
  - Picks the backup (O(path), or the newest file by modification time matching O(pattern) in
    O(backup_dir)) and runs the checks cheapest first, stopping at the first failure.
  - "File checks: it exists, is not empty, is not older than O(max_age). Its format is detected
    from its content (magic bytes), not from its name: plain SQL, gzip-compressed plain SQL
    (C(\\x1f\\x8b)), pg_dump custom archive (C(PGDMP)) or pg_dump tar archive (C(ustar))."
  - "Integrity, without a server: the sha256 of the file, and for plain SQL one streaming pass
    that fully decompresses gzip (CRC and length checked) and scans the SQL. A pg_dump script
    must end with pg_dump's closing comment line and must not end inside COPY data; psql would
    otherwise commit a truncated dump without any error. pg_dumpall output and psql
    meta-commands that act outside the scratch database (C(\\connect), C(\\!), C(\\o),
    C(\\i) and the like) are refused. Custom and tar archives must list with C(pg_restore -l)."
  - "For plain SQL this pass runs while the scratch database is being created (it reads the file,
    the creation waits on the server), and its verdict is awaited before a byte of the dump is
    restored: a bad file is reported as a bad file, whatever the server said, and the scratch
    database, if created, is dropped."
  - "Restore: a scratch database C(rollback_verify_<random>) is created (from C(template0)) and
    the backup restored into it. Plain SQL goes through
    C(psql -X -v ON_ERROR_STOP=1 --single-transaction -f -), streamed from the file (and
    decompressed on the fly for gzip) with bounded memory and no temporary copy; the first SQL
    error fails the verification. Archives go through
    C(pg_restore --exit-on-error --no-owner --no-privileges --no-tablespaces) with
    C(-j) set to O(jobs) for custom archives."
  - "Count: every table of the scratch database (partitions through their parent) with its exact
    row count (a C(SELECT count) per table, not the planner's estimate), then O(expect_tables) and
    O(min_rows) are checked."
  - The scratch database is dropped in every case, also when the restore or a check fails, and
    when the module is stopped with SIGTERM. The real database is never connected to; only the
    maintenance database O(login_db) is, to create and drop the scratch database.
  - "Two ways to reach PostgreSQL: with O(project_dir), C(docker compose exec -T) into the
    database service runs psql/pg_restore inside the container, as the runbook does, and the
    backup on the module host is streamed to them through stdin. The service's running container
    is looked up once (C(docker compose ps -q)) and then reached with C(docker exec -i), which
    starts faster; when it cannot be pinned down, every call goes through C(docker compose exec). Without it, psql/pg_restore on
    the module host connect to O(login_host):O(login_port) (option names as in
    community.postgresql)."
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
requirements:
  - Direct mode, on the module host, C(psql) and (for archives) C(pg_restore), found on E(PATH) or
    in C(/usr/lib/postgresql/<version>/bin) (newest first) or C(/usr/pgsql-<version>/bin).
    C(pg_restore) must be at least as new as the C(pg_dump) that wrote an archive.
  - Compose mode, C(docker) with the compose v2 plugin on the module host; C(psql), C(pg_restore),
    C(mktemp), C(dd) and C(rm) in the database service's container.
  - A role allowed to create databases (CREATEDB or superuser).
attributes:
  check_mode:
    support: full
    details:
      - The verification is read-only for the real database, so it runs fully in check mode; the
        scratch database is still created and dropped.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is no diff.
  idempotent:
    support: full
extends_documentation_fragment:
  - taylordash.rollback.attributes
  - taylordash.rollback.postgres_connection
options:
  path:
    description:
      - The backup file to verify.
      - Mutually exclusive with O(backup_dir); one of the two is required.
    type: path
  backup_dir:
    description:
      - Directory holding the backups; the newest regular file (by modification time) whose name
        matches O(pattern) is verified.
    type: path
  pattern:
    description:
      - Shell-style pattern (glob) of backup file names in O(backup_dir).
    type: str
    default: backup_*.sql*
  max_age:
    description:
      - Fail when the backup's modification time is more than this many seconds ago. The runbook
        wants one from the last hour, V(3600).
      - V(null) means no limit. Otherwise from V(0) to V(316224000) (ten years).
    type: int
  expect_tables:
    description:
      - Tables that must exist in the restored backup. A name without a schema means the
        C(public) schema (V(users) is V(public.users)).
    type: list
    elements: str
    default: []
  min_rows:
    description:
      - "Minimum row count per table, for example C({users: 1, public.projects: 10}). Names as in
        O(expect_tables). A table named here must exist."
    type: dict
    default: {}
  jobs:
    description:
      - Parallel jobs for restoring a custom archive (C(pg_restore -j)), from V(1) to V(64). V(1) restores serially.
      - Not used for plain SQL and tar archives. In compose mode a value above V(1) streams the archive to a
        private temporary directory in the container first (removed afterwards), since
        C(pg_restore) cannot run parallel jobs when it reads from stdin.
    type: int
    default: 2
  login_db:
    description:
      - The maintenance database to connect to for C(CREATE DATABASE) and C(DROP DATABASE) of the
        scratch database.
    type: str
    default: postgres
  keep_as:
    description:
      - Restore into a database of this name instead of a random C(rollback_verify_*) one, and keep it
        when the verification passes (every check, O(expect_tables) and O(min_rows) included), so that
        M(taylordash.rollback.backup_restore) with O(taylordash.rollback.backup_restore#module:state=swapped) can swap
        it in for the live database by a rename. It is dropped like any scratch database when a check fails,
        and when O(keep_for) is given and cannot be swapped (RV(keep_problem)).
      - A database of that name that already exists is left as it is and the module fails before restoring
        anything (also in check mode).
      - In check mode the copy is restored into a random scratch database and dropped, as without O(keep_as).
      - At most 63 bytes, no NUL character.
    type: str
  keep_for:
    description:
      - The live database the kept copy is meant to replace. Checked in the same call that creates the scratch
        database - the login role may create databases and owns O(keep_for) (or is a superuser), O(keep_for) is not
        O(login_db), and O(keep_for) has nothing a copy created from C(template0) would lack (privileges or
        settings of its own, a connection limit, another tablespace, encoding or locale). When a check fails,
        RV(keep_problem) says why and the copy is not kept; the verification itself still runs and passes.
    type: str
notes:
  - "Formats: plain SQL (also with any file name), gzip-compressed plain SQL, pg_dump custom
    (C(-Fc)) and tar (C(-Ft)) archives. Directory-format dumps (C(-Fd)), gzip-compressed
    archives and other compressions (bzip2, xz, zstd, lz4) are refused with a message saying
    what to do."
  - "Plain SQL runs as written, with the privileges of the login role: C(ALTER ... OWNER TO x)
    or C(GRANT ... TO x) for a role that does not exist on the server is a real error
    (C(ON_ERROR_STOP)) and fails the verification; on the server the backup came from these
    roles exist. Dump with C(--no-owner --no-privileges), or use a custom archive, where
    C(pg_restore --no-owner --no-privileges) leaves them out."
  - "Backups are trusted input: the scratch database isolates the data, not the privileges.
    A plain SQL file is executed by psql as the login role (meta-commands that leave the
    database or PostgreSQL are refused beforehand, see above)."
  - "pg_dump 15.14/16.10/17.6 and later frame plain dumps with C(\\restrict); an older psql
    (in compose mode, the container's) fails on them with a message saying so."
  - "Compose mode with a custom archive and O(jobs) above V(1): the archive is streamed with C(dd) into a
    private C(mktemp -d) directory in the container and removed afterwards (C(docker compose cp)
    is not used: it leaves the file owned by root or by the host user, which the container's
    postgres user may not be able to read). With O(jobs=1) and for tar archives pg_restore reads
    stdin."
  - A module killed with SIGKILL cannot drop its scratch database; left-overs are named
    C(rollback_verify_*) (or O(keep_as)) and can be dropped by hand.
seealso:
  - module: community.postgresql.postgresql_db
  - module: community.postgresql.postgresql_query
  - module: taylordash.rollback.rollback_lock
"""

EXAMPLES = r"""
- name: Verify the newest backup from the last hour, through the compose database service
  taylordash.rollback.backup_verify:
    backup_dir: /opt/taylordash
    pattern: "backup_*.sql*"
    max_age: 3600
    project_dir: /opt/taylordash
    db_service: postgres
    db_user: taylordash
    expect_tables: [users, projects]
    min_rows:
      users: 1
  register: backup_check

- name: Show what the backup holds
  ansible.builtin.debug:
    msg: "{{ backup_check.path }}: {{ backup_check.total_rows }} rows in {{ backup_check.tables | length }} tables"

- name: Verify a custom archive on a server reached over TCP, with 4 restore jobs
  taylordash.rollback.backup_verify:
    path: /var/backups/taylordash/taylordash.dump
    login_host: 127.0.0.1
    login_port: 5432
    login_user: rollback
    login_password: "{{ vault_rollback_db_password }}"
    jobs: 4

- name: Verify the backup and keep the verified copy, to swap it in for the live database later
  taylordash.rollback.backup_verify:
    path: /opt/taylordash/backup_20240518_10.sql
    project_dir: /opt/taylordash
    expect_tables: [users, projects]
    keep_as: taylordash_rollback_20240518_101500
    keep_for: taylordash
  register: verified_copy

- name: Verify before restoring, and stop the rollback when it does not hold
  block:
    - name: Verify the chosen backup
      taylordash.rollback.backup_verify:
        path: "{{ rollback_backup_file }}"
        project_dir: /opt/taylordash
        expect_tables: [public.users, public.projects, public.alembic_version]
  rescue:
    - name: Explain why the rollback stops
      ansible.builtin.fail:
        msg: "The backup did not verify: {{ ansible_failed_result.msg }}"
"""

RETURN = r"""
msg:
  description: The verdict, or what is wrong and what to do about it.
  returned: always
  type: str
  sample: "Backup /opt/taylordash/backup_20240518_10.sql.gz (gzip) verified: 3 tables, 8002 rows restored in 1.2 s; scratch database dropped."
connection:
  description: How PostgreSQL was reached, V(direct) or V(compose).
  returned: always
  type: str
  sample: compose
path:
  description:
    - The backup file verified (the newest match when O(backup_dir) was used), with symbolic links
      resolved.
    - Ansible adds the file's attributes to a result with a C(path), see RV(owner), RV(group),
      RV(uid), RV(gid), RV(mode) and RV(state).
  returned: when a backup file was found
  type: str
  sample: /opt/taylordash/backup_20240518_10.sql.gz
owner:
  description: Owner of the backup file (added by Ansible for results with a path). A dump holds all the data; check it is not readable by everyone.
  returned: when a backup file was found
  type: str
  sample: root
group:
  description: Group of the backup file (added by Ansible).
  returned: when a backup file was found
  type: str
  sample: root
uid:
  description: Numeric owner of the backup file (added by Ansible).
  returned: when a backup file was found
  type: int
  sample: 0
gid:
  description: Numeric group of the backup file (added by Ansible).
  returned: when a backup file was found
  type: int
  sample: 0
mode:
  description: Permissions of the backup file, octal (added by Ansible).
  returned: when a backup file was found
  type: str
  sample: '0600'
state:
  description: Kind of the path (added by Ansible); V(file) for a backup, V(hard) when it has more than one hard link.
  returned: when a backup file was found
  type: str
  sample: file
secontext:
  description: SELinux context of the backup file (added by Ansible).
  returned: when a backup file was found and SELinux is enabled
  type: str
  sample: unconfined_u:object_r:user_home_t:s0
size:
  description: Size of the file in bytes.
  returned: when a backup file was found
  type: int
  sample: 50656
mtime:
  description: Modification time of the file, seconds since the epoch.
  returned: when a backup file was found
  type: float
  sample: 1716026400.0
age:
  description: Seconds between the file's modification time and now.
  returned: when a backup file was found
  type: float
  sample: 742.3
format:
  description: Format detected from the content, V(plain), V(gzip), V(custom) or V(tar).
  returned: when the format was recognized
  type: str
  sample: gzip
sha256:
  description: SHA-256 of the file as stored (computed while streaming).
  returned: when the integrity checks ran
  type: str
  sample: d53b296d6c0d3a58ba2d6c9b8f1ce7bbd65c0b3b83a0a1b1dbb8b5e2b0f4c6a1
archive:
  description: What C(pg_restore -l) says about a custom or tar archive; V(null) for plain SQL.
  returned: when the integrity checks ran
  type: dict
  contains:
    format:
      description: Archive format as pg_restore reports it.
      type: str
      sample: custom
    dbname:
      description: Database the archive was dumped from.
      type: str
      sample: taylordash
    toc_entries:
      description: Number of entries in the archive's table of contents.
      type: int
      sample: 29
    table_data_entries:
      description: Number of TABLE DATA entries.
      type: int
      sample: 3
    dumped_from:
      description: Server version the archive was dumped from.
      type: str
      sample: 15.20 (Debian 15.20-0+deb12u1)
    dumped_by:
      description: Version of the pg_dump that wrote the archive.
      type: str
      sample: 15.20 (Debian 15.20-0+deb12u1)
server_version:
  description: Version of the PostgreSQL server the scratch restore ran on.
  returned: when the server answered
  type: str
  sample: 15.20 (Debian 15.20-0+deb12u1)
scratch_db:
  description: Name of the scratch database used (and dropped).
  returned: when the server answered
  type: str
  sample: rollback_verify_3f9c2a1b7d4e
scratch_dropped:
  description:
    - Whether the scratch database is gone again. V(false) when dropping it failed (the message then says how to
      drop it) and when it was kept (RV(kept_db)).
  returned: when the server answered
  type: bool
  sample: true
kept_db:
  description: The database the verified copy was kept as (O(keep_as)); V(null) when it was not kept.
  returned: when the verification passed
  type: str
  sample: taylordash_rollback_20240518_101500
keep_problem:
  description: Why the copy could not be swapped for O(keep_for), and so was not kept; V(null) when it could.
  returned: with O(keep_for), when the server answered
  type: str
  sample: role rollback does not own database taylordash
tables:
  description: Tables of the restored backup, schema-qualified, with their exact row counts.
  returned: when the restore succeeded
  type: list
  elements: dict
  contains:
    name:
      description: C(schema.table).
      type: str
      sample: public.users
    rows:
      description: Exact row count of the table.
      type: int
      sample: 3000
  sample: [{name: public.projects, rows: 5000}, {name: public.users, rows: 3000}]
total_rows:
  description: Sum of the row counts.
  returned: when the restore succeeded
  type: int
  sample: 8000
problems:
  description: Unmet O(expect_tables) and O(min_rows) expectations.
  returned: when the restore succeeded
  type: list
  elements: str
  sample: ["table public.users has 0 rows, fewer than min_rows 1"]
duration:
  description: Seconds the whole verification took.
  returned: always
  type: float
  sample: 1.84
phases:
  description: Seconds per phase; phases that did not run are absent.
  returned: always
  type: dict
  contains:
    integrity:
      description: File checks, sha256, decompression and scan, C(pg_restore -l).
      type: float
    restore:
      description: Connecting, creating the scratch database and restoring into it.
      type: float
    count:
      description:
        - Counting the rows of every table. For plain SQL the count runs at the end of the restore session
          (inside its transaction, so it is part of RV(phases.restore)) and only reading its output is timed here.
      type: float
    drop:
      description: Dropping the scratch database.
      type: float
  sample: {integrity: 0.05, restore: 1.2, count: 0.04, drop: 0.1}
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
cmd:
  description: The command that failed, as a list (never holds the password).
  returned: when a command failed
  type: list
  elements: str
  sample: [psql, -X, -h, 127.0.0.1, -p, '5432', -U, rollback, -d, rollback_verify_3f9c2a1b7d4e, -w, -q, -v, ON_ERROR_STOP=1, --single-transaction, -f, '-']
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
  sample: 'psql:<stdin>:8262: ERROR:  relation "no_such_table" does not exist'
"""

from ansible_collections.taylordash.rollback.plugins.module_utils._pg_task import (
    MAX_SECONDS, Terminated, database_name_problems, number_problem, on_sigterm, raise_terminated, start_module,
    whole_number_problems)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_verify import BackupVerifier

# max_age: up to ten years; a bigger age is a typo for "no limit" (null).
MAX_AGE = 10 * 366 * 86400
MAX_JOBS = 64


def validate_params(params):
    """Problems with the options (pure); empty when they are fine."""
    problems = [problem for problem in (
        number_problem(params, 'jobs', 1, MAX_JOBS, unit=''),
        number_problem(params, 'max_age', 0, MAX_AGE, unset=True),
        number_problem(params, 'connect_timeout', 1, MAX_SECONDS),
    ) if problem]
    problems += whole_number_problems('min_rows', params['min_rows'])
    for option in ('keep_as', 'keep_for'):
        problems += database_name_problems(option, params.get(option))
    if params.get('keep_as') is not None and params.get('keep_as') in (params.get('keep_for'), params.get('login_db')):
        problems.append('keep_as must name a new database, not keep_for or login_db (%s)' % params['keep_as'])
    return problems


def main():
    module, conn, locale = start_module(
        dict(
            path=dict(type='path'),
            backup_dir=dict(type='path'),
            pattern=dict(type='str', default='backup_*.sql*'),
            max_age=dict(type='int'),
            expect_tables=dict(type='list', elements='str', default=[]),
            min_rows=dict(type='dict', default={}),
            jobs=dict(type='int', default=2),
            login_db=dict(type='str', default='postgres'),
            keep_as=dict(type='str'),
            keep_for=dict(type='str'),
        ),
        validate_params,
        mutually_exclusive=[('path', 'backup_dir')],
        required_one_of=[('path', 'backup_dir')],
    )
    verifier = BackupVerifier(module, conn, locale)
    try:
        with on_sigterm(raise_terminated):
            result = verifier.main()
    except Terminated:
        if verifier.scratch is None:
            verifier.fail('Interrupted by SIGTERM before a scratch database was created; nothing to clean up.')
        if verifier.result.get('scratch_dropped'):
            verifier.fail('Interrupted by SIGTERM; the scratch database %s was dropped.' % verifier.scratch)
        verifier.fail('Interrupted by SIGTERM; the scratch database %s may be left over: drop it by hand '
                      '(DROP DATABASE "%s").' % (verifier.scratch, verifier.scratch))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
