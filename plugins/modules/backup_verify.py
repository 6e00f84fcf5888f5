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
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - The verification is read-only for the real database, so it runs fully in check mode; the
        scratch database is still created and dropped.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff_mode mode).
    support: none
    details:
      - Nothing changes, so there is no diff.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
  action_group:
    description: Use C(group/taylordash.rollback.rollback) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - taylordash.rollback.rollback
extends_documentation_fragment:
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
      - V(null) means no limit.
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
      - Parallel jobs for restoring a custom archive (C(pg_restore -j)). V(1) restores serially.
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
    C(rollback_verify_*) and can be dropped by hand.
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
  description: Whether the scratch database is gone again. V(false) only when dropping it failed (the message then says how to drop it).
  returned: when the server answered
  type: bool
  sample: true
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

import glob
import itertools
import os
import signal
import stat
import threading
import time
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.locale import get_best_parsable_locale

from ansible_collections.taylordash.rollback.plugins.module_utils._postgres import (
    FORMAT_CUSTOM,
    FORMAT_GZIP,
    FORMAT_PLAIN,
    ROW_COUNT_QUERY,
    SERVER_VERSION_QUERY,
    BackupError,
    CONNECTION_MUTUALLY_EXCLUSIVE,
    CONNECTION_REQUIRED_BY,
    archive_summary,
    check_expectations,
    classify_error,
    build_connection,
    connection_argument_spec,
    create_database_sql,
    drop_database_sql,
    iter_file,
    iter_gunzip,
    new_scratch_name,
    parse_pg_restore_list,
    parse_row_counts,
    parse_server_version,
    pg_restore_args,
    psql_query_args,
    psql_restore_args,
    run_command_streaming,
    scan_plain_file,
    sha256_file,
    sniff_format,
)

RESTORE_STDOUT_LIMIT = 64 * 1024
COUNT_MARKER = b'taylordash.rollback.backup_verify:row-counts'
# Sent after a plain dump, in the same psql session: a marker row, then the row counts.
COUNT_TRAILER = b"\nSELECT '" + COUNT_MARKER + b"';\n" + ROW_COUNT_QUERY.encode('ascii') + b';\n'
# classify_error kinds that blame the archive rather than the way to the server
ARCHIVE_ERROR_KINDS = ('archive_corrupt', 'archive_version', 'unknown')
CONTAINER_TMP_PREFIX = '/tmp/rollback_verify_'


class Terminated(Exception):
    """SIGTERM arrived (a task timeout, an operator): clean up, then fail."""


def _on_sigterm(signum, frame):
    raise Terminated()


def choose_backup(backup_dir, pattern):
    """The newest regular file (by mtime, then name) matching pattern in backup_dir, or None."""
    best = None
    for candidate in glob.glob(os.path.join(glob.escape(backup_dir), pattern)):
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        key = (st.st_mtime, candidate)
        if best is None or key > best:
            best = key
    return best[1] if best else None


def parse_session_counts(stdout):
    """The row counts that follow COUNT_MARKER in the NUL-separated output of a restore session
    (psql -A -t -z -0), or None when they are not all there (the output is kept bounded): the
    caller then counts in a query of its own."""
    start = stdout.rfind(b'\x00' + COUNT_MARKER + b'\x00')
    if start == -1:
        if not stdout.startswith(COUNT_MARKER + b'\x00'):
            return None
        start = -1
    try:
        return parse_row_counts(stdout[start + len(COUNT_MARKER) + 2:])
    except ValueError:
        return None


def validate_params(params):
    """Problems with the options (pure); empty when they are fine."""
    problems = []
    if params['jobs'] < 1:
        problems.append('jobs must be 1 or more, got %d' % params['jobs'])
    if params['max_age'] is not None and params['max_age'] < 0:
        problems.append('max_age must be 0 or more seconds (or null for no limit), got %d' % params['max_age'])
    if params['connect_timeout'] < 1:
        problems.append('connect_timeout must be 1 or more seconds, got %d' % params['connect_timeout'])
    for name, value in sorted((params['min_rows'] or {}).items()):
        try:
            number = int(value)
        except (TypeError, ValueError):
            problems.append('min_rows[%s] must be a whole number, got %r' % (name, value))
            continue
        if number < 0 or str(number) != str(value).strip():
            problems.append('min_rows[%s] must be a whole number of 0 or more, got %r' % (name, value))
    return problems


class BackgroundScan(threading.Thread):
    """The integrity pass over a plain or gzip dump (sha256, gzip CRC, truncation, forbidden
    meta-commands), run while the scratch database is being created: both wait on different
    things (the file, the server), so the pass costs no wall time of its own. Nothing of the
    dump is executed before wait() has returned None."""

    def __init__(self, path, fmt):
        super(BackgroundScan, self).__init__(name='integrity-scan')
        self.daemon = True
        self.path = path
        self.fmt = fmt
        self.digest = None
        self.problem = None
        self.seconds = None

    def run(self):
        started = time.time()
        try:
            digest, scan = scan_plain_file(self.path, self.fmt == FORMAT_GZIP)
            problems = scan.problems()
            if problems:
                self.problem = 'Backup %s (%s) is not usable: %s.' % (self.path, self.fmt, '; '.join(problems))
            else:
                self.digest = digest
        except BackupError as exc:
            self.problem = 'Backup %s (%s) is not usable: %s.' % (self.path, self.fmt, exc)
        except (IOError, OSError) as exc:
            self.problem = 'Cannot read backup %s: %s' % (self.path, exc)
        except Exception as exc:  # pylint: disable=broad-except
            # Whatever happens in the thread must reach the module, never pass silently.
            self.problem = 'The integrity check of %s failed unexpectedly: %r' % (self.path, exc)
        finally:
            self.seconds = round(time.time() - started, 3)

    def wait(self):
        """None when the dump passed, else the message to fail with."""
        self.join()
        return self.problem


class BackupVerifier(object):
    def __init__(self, module, conn, locale):
        self.module = module
        self.conn = conn
        self.locale = locale
        self.params = module.params
        self.result = dict(changed=False, connection=conn.mode, phases={})
        self.started = time.time()
        self.scratch = None
        self.server_version_num = None
        self.session_counts = None
        self._phase = None

    # -- plumbing ---------------------------------------------------------------------------
    def _finish(self):
        self.result['duration'] = round(time.time() - self.started, 3)

    def fail(self, msg, cmd_result=None, **extra):
        self.result.update(extra)
        if cmd_result is not None:
            self.result.update(cmd=cmd_result.argv, rc=cmd_result.rc,
                               stdout=cmd_result.stdout_text, stderr=cmd_result.stderr_text)
        self.end_phase()
        self._finish()
        self.module.fail_json(msg=msg, **self.result)

    def begin_phase(self, name):
        self.end_phase()
        self._phase = (name, time.time())

    def end_phase(self):
        if self._phase is not None:
            name, since = self._phase
            self._phase = None
            self.result['phases'][name] = round(self.result['phases'].get(name, 0) + time.time() - since, 3)

    def run(self, argv, feed=None, stdout_limit=None):
        return run_command_streaming(argv, env_update=self.conn.env(self.locale), cwd=self.conn.cwd,
                                     feed=feed, stdout_limit=stdout_limit)

    def classify_result(self, res):
        """(kind, message) for a failed command. docker compose exec prints some of its own
        errors (an OCI "executable file not found") on stdout, so stdout is read as well when
        stderr alone says nothing recognizable."""
        args = (self.conn.where, self.conn.user, self.conn.user_option, res.rc)
        kind, msg = classify_error(res.stderr_text, *args)
        if kind == 'unknown' and res.stdout:
            kind2, msg2 = classify_error(res.stderr_text + '\n' + res.stdout_text[-4096:], *args)
            if kind2 != 'unknown':
                return kind2, msg2
        return kind, msg

    def classify(self, res):
        return self.classify_result(res)[1]

    def psql(self, dbname, sql, nul_separated=False):
        return self.run(self.conn.psql_argv(dbname, psql_query_args(sql, nul_separated)))

    # -- 1. which file -----------------------------------------------------------------------
    def locate(self):
        path = self.params['path']
        if path is None:
            backup_dir, pattern = self.params['backup_dir'], self.params['pattern']
            if not os.path.isdir(backup_dir):
                self.fail('backup_dir %s does not exist or is not a directory; set backup_dir to where the '
                          'dumps are' % backup_dir)
            path = choose_backup(backup_dir, pattern)
            if path is None:
                self.fail("No backup found: no regular file matching '%s' in %s. Take a backup first "
                          "(pg_dump) or fix backup_dir/pattern." % (pattern, backup_dir))
        if os.path.isdir(path):
            self.fail('%s is a directory: directory-format dumps (pg_dump -Fd) are not supported; '
                      'verify a custom archive (pg_dump -Fc) or a plain SQL dump instead' % path)
        if not os.path.exists(path):
            self.fail('Backup file %s does not exist.' % path)
        # Resolved, so the file attributes Ansible adds to a result with a path (size, mode,
        # owner) describe the backup and not a symbolic link to it.
        path = os.path.realpath(path)
        self.result['path'] = path
        return path

    # -- 2. file checks and integrity ---------------------------------------------------------
    def check_head(self, path):
        """Size, age and format from the first bytes: cheap, before anything else."""
        try:
            st = os.stat(path)
            with open(path, 'rb') as fh:
                head = fh.read(512)
        except (IOError, OSError) as exc:
            self.fail('Cannot read backup %s: %s' % (path, exc))
        age = time.time() - st.st_mtime
        self.result.update(size=st.st_size, mtime=st.st_mtime, age=round(age, 1))
        if st.st_size == 0:
            self.fail('Backup %s is empty (0 bytes): the dump that wrote it failed; take a new backup.' % path)
        max_age = self.params['max_age']
        if max_age is not None and age > max_age:
            self.fail('Backup %s is too old: %d s since it was written (%s), max_age is %d s. Take a fresh '
                      'backup, or raise max_age if an older one is acceptable.'
                      % (path, age, time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(st.st_mtime)), max_age))
        fmt, problem = sniff_format(head)
        if fmt is None:
            self.fail('Backup %s cannot be verified: %s.' % (path, problem))
        self.result['format'] = fmt
        self.result['archive'] = None
        return fmt

    def check_archive(self, path, fmt):
        """Custom and tar archives: sha256, then pg_restore -l (header and table of contents)."""
        self.begin_phase('integrity')
        self.result['sha256'] = sha256_file(path)
        self.list_archive(path, fmt)
        self.end_phase()

    def list_archive(self, path, fmt):
        """pg_restore -l: reads the archive header and table of contents only."""
        if self.conn.mode == 'direct':
            if self.conn.pg_restore is None:
                self.fail('Backup %s is a %s archive, which needs pg_restore, and there is no pg_restore on the '
                          'module host (PATH, /usr/lib/postgresql/*/bin); install the PostgreSQL client, or use '
                          'compose mode (project_dir).' % (path, fmt))
            res = self.run(self.conn.pg_restore_argv(['-l', path]))
        else:
            res = self.run(self.conn.pg_restore_argv(['-l']), feed=iter_file(path))
        if res.rc != 0:
            kind, msg = self.classify_result(res)
            if kind in ARCHIVE_ERROR_KINDS:
                self.fail('Backup %s (%s) is not usable: pg_restore -l failed: %s' % (path, fmt, msg), cmd_result=res)
            self.fail('Cannot verify backup %s: pg_restore -l failed: %s' % (path, msg), cmd_result=res)
        listing = parse_pg_restore_list(res.stdout_text)
        summary = archive_summary(listing)
        self.result['archive'] = summary
        if summary['format'] and summary['format'] != fmt:
            self.fail('Backup %s: pg_restore reads it as a %s archive, the content looked like %s.'
                      % (path, summary['format'], fmt))
        if not listing['entries']:
            self.fail('Backup %s (%s) has an empty table of contents: nothing to restore.' % (path, fmt))

    # -- 3. restore into a scratch database ---------------------------------------------------
    def connect_and_create(self, integrity=None):
        """The server version, then CREATE DATABASE of the scratch database: one psql call (in
        compose mode one container exec less). Fails, before any database exists, when the
        server does not answer; returns the result, whose rc says whether the CREATE worked.
        With a BackgroundScan, its verdict comes first: a bad file fails as a bad file."""
        args = ['-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', SERVER_VERSION_QUERY,
                '-c', create_database_sql(self.scratch)]
        res = self.run(self.conn.psql_argv(self.params['login_db'], args))
        problem = None
        try:
            self.result['server_version'], self.server_version_num = parse_server_version(res.stdout_text)
        except ValueError as exc:
            problem = exc
        if integrity is not None:
            # A bad file is reported as such, whatever the server said.
            self.integrity_verdict(integrity, created=res.rc == 0 and problem is None)
        if problem is not None:
            self.fail('Cannot verify backup %s: %s' % (self.result['path'], self.classify(res) if res.rc != 0 else problem),
                      cmd_result=res)
        return res

    def restore(self, path, fmt):
        """Returns None, or (message, CommandResult) describing why the restore failed."""
        jobs = self.params['jobs']
        limit = RESTORE_STDOUT_LIMIT
        if fmt in (FORMAT_PLAIN, FORMAT_GZIP):
            # The row counts are queried at the end of the same session (inside its transaction),
            # after a marker, in the machine-readable form of ROW_COUNT_QUERY: no extra psql call.
            source = iter_gunzip(path) if fmt == FORMAT_GZIP else iter_file(path)
            feed = itertools.chain(source, [COUNT_TRAILER])
            args = psql_restore_args() + ['-A', '-t', '-z', '-0']
            res = self.run(self.conn.psql_argv(self.scratch, args), feed=feed, stdout_limit=limit)
            if res.feed_error is None and res.rc == 0:
                self.session_counts = parse_session_counts(res.stdout)
        elif self.conn.mode == 'direct':
            res = self.run(self.conn.pg_restore_argv(pg_restore_args(fmt, jobs, source=path), dbname=self.scratch),
                           stdout_limit=limit)
        elif fmt == FORMAT_CUSTOM and jobs > 1:
            return self.restore_via_container_file(path, fmt, jobs)
        else:
            res = self.run(self.conn.pg_restore_argv(pg_restore_args(fmt, jobs), dbname=self.scratch),
                           feed=iter_file(path), stdout_limit=limit)
        if res.feed_error is not None:
            return ('reading the backup failed while restoring it: %s' % res.feed_error, res)
        if res.rc != 0:
            return (self.classify(res), res)
        return None

    def restore_via_container_file(self, path, fmt, jobs):
        """Compose mode, custom archive, parallel jobs: pg_restore -j needs a seekable file, so
        the archive is streamed into a private temp directory in the container first."""
        res = self.run(self.conn.exec_argv(['mktemp', '-d', CONTAINER_TMP_PREFIX + 'XXXXXXXX']))
        tmpdir = res.stdout_text.strip()
        if res.rc != 0 or not tmpdir.startswith(CONTAINER_TMP_PREFIX) or '/' in tmpdir[len(CONTAINER_TMP_PREFIX):]:
            return ('cannot create a temporary directory in the container: %s' % self.classify(res), res)
        target = tmpdir + '/backup.dump'
        try:
            res = self.run(self.conn.exec_argv(['dd', 'of=' + target, 'bs=1048576']),
                           feed=iter_file(path))
            if res.feed_error is not None or res.rc != 0:
                return ('cannot copy the archive into the container: %s'
                        % (res.feed_error or self.classify(res)), res)
            res = self.run(self.conn.pg_restore_argv(pg_restore_args(fmt, jobs, source=target), dbname=self.scratch),
                           stdout_limit=RESTORE_STDOUT_LIMIT)
            if res.rc != 0:
                return (self.classify(res), res)
            return None
        finally:
            cleanup = self.run(self.conn.exec_argv(['rm', '-rf', '--', tmpdir]))
            if cleanup.rc != 0:
                self.module.warn('Could not remove %s in the container: %s' % (tmpdir, cleanup.stderr_text.strip()))

    def count(self):
        res = self.psql(self.scratch, ROW_COUNT_QUERY, nul_separated=True)
        if res.rc != 0:
            return None, ('counting rows in the scratch database failed: %s' % self.classify(res), res)
        try:
            return parse_row_counts(res.stdout), None
        except ValueError as exc:
            return None, ('cannot read the row counts: %s' % exc, res)

    def drop(self):
        self.begin_phase('drop')
        res = self.psql(self.params['login_db'], drop_database_sql(self.scratch, self.server_version_num))
        self.end_phase()
        self.result['scratch_dropped'] = res.rc == 0
        return res

    def integrity_verdict(self, integrity, created):
        """Wait for the background integrity pass; when it failed, drop the scratch database
        (if the CREATE worked) and fail with its message: the dump is never restored."""
        problem = integrity.wait()
        self.result['phases']['integrity'] = integrity.seconds
        if problem is None:
            self.result['sha256'] = integrity.digest
            return
        note = ''
        if created:
            drop_res = self.drop()
            self.result['scratch_db'] = self.scratch
            if drop_res.rc != 0:
                note = (' Dropping the scratch database %s FAILED (%s); make sure it is gone: DROP DATABASE IF '
                        'EXISTS "%s".' % (self.scratch, self.classify(drop_res), self.scratch))
        self.fail(problem + note)

    def verify(self, path, fmt, integrity=None):
        self.begin_phase('restore')
        self.scratch = new_scratch_name(uuid.uuid4().hex[:12])
        res = self.connect_and_create(integrity)
        self.result['scratch_db'] = self.scratch
        self.result['scratch_dropped'] = True
        failure = None
        tables = None
        try:
            if res.rc != 0:
                failure = ('cannot create the scratch database %s: %s' % (self.scratch, self.classify(res)), res)
            else:
                self.result['scratch_dropped'] = False
                failure = self.restore(path, fmt)
            if failure is None:
                self.begin_phase('count')
                tables = self.session_counts
                if tables is None:
                    tables, failure = self.count()
            self.end_phase()
        finally:
            # Runs on failures, on exceptions and on SIGTERM alike; IF EXISTS makes it safe
            # when CREATE DATABASE itself failed.
            drop_res = self.drop()
        if drop_res.rc == 0:
            drop_note = 'the scratch database %s was dropped' % self.scratch
        else:
            drop_note = ('dropping the scratch database %s FAILED (%s); make sure it is gone: DROP DATABASE IF EXISTS "%s"'
                         % (self.scratch, self.classify(drop_res), self.scratch))
        if failure is not None:
            msg, res = failure
            self.fail('Backup %s (%s) failed to restore into a scratch database: %s. %s; the real database '
                      'was not touched.' % (path, fmt, msg, drop_note[0].upper() + drop_note[1:]), cmd_result=res)
        self.result['tables'] = tables
        self.result['total_rows'] = sum(t['rows'] for t in tables)
        if drop_res.rc != 0:
            self.fail('Backup %s (%s) restored fine, but %s.' % (path, fmt, drop_note), cmd_result=drop_res)
        return tables

    def main(self):
        path = self.locate()
        fmt = self.check_head(path)
        integrity = None
        if fmt in (FORMAT_PLAIN, FORMAT_GZIP):
            integrity = BackgroundScan(path, fmt)
            integrity.start()
        if self.conn.mode == 'compose':
            self.conn.pin_container(self.run)
        if integrity is None:
            self.check_archive(path, fmt)
        tables = self.verify(path, fmt, integrity)
        problems = check_expectations(tables, self.params['expect_tables'],
                                      dict((k, int(v)) for k, v in (self.params['min_rows'] or {}).items()))
        self.result['problems'] = problems
        found = ', '.join('%s (%d)' % (t['name'], t['rows']) for t in tables) or 'none'
        if problems:
            self.fail('Backup %s (%s) restores, but does not hold what is expected: %s. Tables found: %s.'
                      % (path, fmt, '; '.join(problems), found))
        self._finish()
        self.result['msg'] = ('Backup %s (%s) verified: %d tables, %d rows restored in %.1f s; scratch database '
                              'dropped.' % (path, fmt, len(tables), self.result['total_rows'], self.result['duration']))
        return self.result


def main():
    argument_spec = dict(
        path=dict(type='path'),
        backup_dir=dict(type='path'),
        pattern=dict(type='str', default='backup_*.sql*'),
        max_age=dict(type='int'),
        expect_tables=dict(type='list', elements='str', default=[]),
        min_rows=dict(type='dict', default={}),
        jobs=dict(type='int', default=2),
        login_db=dict(type='str', default='postgres'),
    )
    argument_spec.update(connection_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('path', 'backup_dir')] + CONNECTION_MUTUALLY_EXCLUSIVE,
        required_one_of=[('path', 'backup_dir')],
        required_by=CONNECTION_REQUIRED_BY,
        supports_check_mode=True,
    )
    problems = validate_params(module.params)
    if problems:
        module.fail_json(msg='Invalid options: %s.' % '; '.join(problems), changed=False)

    conn = build_connection(module)
    verifier = BackupVerifier(module, conn, get_best_parsable_locale(module))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = verifier.main()
    except Terminated:
        signal.signal(signal.SIGTERM, previous)
        if verifier.scratch is None:
            verifier.fail('Interrupted by SIGTERM before a scratch database was created; nothing to clean up.')
        if verifier.result.get('scratch_dropped'):
            verifier.fail('Interrupted by SIGTERM; the scratch database %s was dropped.' % verifier.scratch)
        verifier.fail('Interrupted by SIGTERM; the scratch database %s may be left over: drop it by hand '
                      '(DROP DATABASE "%s").' % (verifier.scratch, verifier.scratch))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
