# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The verification worker of backup_verify: choose the backup, check the file (size, age,
format, integrity scan or ``pg_restore -l``), restore it into a scratch database, count its
rows, drop the scratch database whatever happens.

The module's options and documentation are in ``plugins/modules/backup_verify.py``.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import glob
import itertools
import os
import stat
import threading
import time
import uuid

from ansible_collections.taylordash.rollback.plugins.module_utils._dump_reader import file_chunks, gunzip_chunks
from ansible_collections.taylordash.rollback.plugins.module_utils._files import sha256_file
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_connection import (
    pg_restore_args, psql_query_args, psql_restore_args)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_dump_format import (
    FORMAT_CUSTOM, FORMAT_GZIP, FORMAT_PLAIN, BackupError, sniff_format)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_dump_scan import scan_plain_file
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_output import (
    archive_summary, check_expectations, parse_pg_restore_list, parse_row_counts, parse_server_version)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_sql import (
    COUNT_MARKER, COUNT_TRAILER, ROW_COUNT_QUERY, SERVER_VERSION_QUERY, create_database_sql, database_taken_sql,
    drop_database_sql, new_scratch_name, parse_tagged_lines, swap_problems_sql)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_task import PgTask

RESTORE_STDOUT_LIMIT = 64 * 1024
# classify_error kinds that blame the archive rather than the way to the server
ARCHIVE_ERROR_KINDS = ('archive_corrupt', 'archive_version', 'unknown')
CONTAINER_TMP_PREFIX = '/tmp/rollback_verify_'


class _NotCreated(object):
    """Stands for the result of a drop that was not needed: rc 0."""
    rc = 0


NOT_CREATED = _NotCreated()


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


class BackupVerifier(PgTask):
    """The verification, step by step (:meth:`main`)."""

    def __init__(self, module, conn, locale):
        super(BackupVerifier, self).__init__(module, conn, locale)
        self.scratch = None
        self.server_version_num = None
        self.session_counts = None
        # keep_as: the verified copy is kept under this name (not in check mode, and only when
        # keep_for, if given, could be swapped for it); created: this run created self.scratch.
        self.keep_as = None if module.check_mode else module.params.get('keep_as')
        self.keep = False
        self.created = False

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
            res = self.run(self.conn.pg_restore_argv(['-l']), feed=file_chunks(path))
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
        args = ['-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', SERVER_VERSION_QUERY]
        keep_for = self.params.get('keep_for')
        if keep_for:
            args += ['-c', swap_problems_sql(keep_for)]
        keep_as = self.params.get('keep_as')
        if keep_as:
            # Also in check mode: a name already taken is reported before the real run.
            args += ['-c', database_taken_sql(keep_as)]
        args += ['-c', create_database_sql(self.scratch)]
        res = self.run(self.conn.psql_argv(self.params['login_db'], args))
        self.created = res.rc == 0
        problem = None
        try:
            self.result['server_version'], self.server_version_num = parse_server_version(res.stdout_text)
        except ValueError as exc:
            problem = exc
        tags = parse_tagged_lines(res.stdout_text)
        if keep_for and 'swap' in tags:
            self.result['keep_problem'] = tags['swap'] or None
        if keep_as and tags.get('taken') == 'yes':
            # Never dropped: it is not ours. Fails before the backup is restored anywhere (in
            # check mode the random scratch database was created: drop it).
            if self.created and not self.keep_as:
                self.drop()
            self.created = False
            if integrity is not None:
                integrity.wait()
            self.fail('Cannot keep the verified copy as %s: a database of that name already exists (left as it is). '
                      'Drop or rename it, or choose another keep_as; nothing was changed.' % keep_as)
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
            source = gunzip_chunks(file_chunks(path)) if fmt == FORMAT_GZIP else file_chunks(path)
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
                           feed=file_chunks(path), stdout_limit=limit)
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
                           feed=file_chunks(path))
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
        self.scratch = self.keep_as or new_scratch_name(uuid.uuid4().hex[:12])
        res = self.connect_and_create(integrity)
        self.keep = bool(self.keep_as) and self.created and not self.result.get('keep_problem')
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
            if failure is None and tables is not None and self.keep:
                problems = check_expectations(tables, self.params['expect_tables'], self.min_rows())
                if problems:
                    # Not a copy worth keeping: main() fails on the same problems.
                    self.keep = False
        finally:
            # Runs on failures, on exceptions and on SIGTERM alike; IF EXISTS makes it safe
            # when CREATE DATABASE itself failed. A database named by keep_as is only dropped
            # when this run created it; a verified one is kept.
            kept = self.keep and failure is None
            if kept:
                drop_res = None
            elif self.keep_as and not self.created:
                # Not created by this run (CREATE failed): nothing of ours to drop, and a database
                # of that name, if any, is not ours.
                drop_res = NOT_CREATED
                self.result['scratch_dropped'] = True
            else:
                drop_res = self.drop()
        if kept:
            self.result['tables'] = tables
            self.result['total_rows'] = sum(t['rows'] for t in tables)
            self.result['kept_db'] = self.scratch
            self.result['changed'] = True
            return tables
        if drop_res is NOT_CREATED:
            drop_note = 'no database was created'
        elif drop_res.rc == 0:
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
        problems = check_expectations(tables, self.params['expect_tables'], self.min_rows())
        self.result['problems'] = problems
        found = ', '.join('%s (%d)' % (t['name'], t['rows']) for t in tables) or 'none'
        if problems:
            self.fail('Backup %s (%s) restores, but does not hold what is expected: %s. Tables found: %s.'
                      % (path, fmt, '; '.join(problems), found))
        self.finish()
        if self.result.get('kept_db'):
            ending = 'kept as database %s, ready to be swapped in' % self.result['kept_db']
        elif self.params.get('keep_as') and self.module.check_mode:
            ending = 'scratch database dropped (check mode: it would be kept as %s)' % self.params['keep_as']
        elif self.result.get('keep_problem'):
            ending = 'scratch database dropped, not kept: %s' % self.result['keep_problem']
        else:
            ending = 'scratch database dropped'
        self.result['kept_db'] = self.result.get('kept_db')
        self.result['msg'] = ('Backup %s (%s) verified: %d tables, %d rows restored in %.1f s; %s.'
                              % (path, fmt, len(tables), self.result['total_rows'], self.result['duration'], ending))
        return self.result

    def min_rows(self):
        return dict((k, int(v)) for k, v in (self.params['min_rows'] or {}).items())
