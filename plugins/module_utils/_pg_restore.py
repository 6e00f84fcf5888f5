# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The worker of backup_restore: the all-or-nothing restore into the real database
(``state=restored``) and the safety dump (``state=dumped``).

The stream psql reads is in ``_pg_restore_stream``; the SQL around the dump in ``_pg_sql``; the
way to the server in ``_pg_connection``; the module's options and documentation in
``plugins/modules/backup_restore.py``.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import os
import re
import tempfile

from ansible_collections.taylordash.rollback.plugins.module_utils._dump_reader import file_chunks
from ansible_collections.taylordash.rollback.plugins.module_utils._files import CHUNK_SIZE, sha256_file
from ansible_collections.taylordash.rollback.plugins.module_utils._process import CommandResult, Producer
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_connection import (
    pg_restore_args, psql_query_args, psql_restore_args)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_dump_scan import PlainScan
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_dump_format import (
    FORMAT_CUSTOM, FORMAT_GZIP, FORMAT_PLAIN, FORMAT_TAR, dump_file_problem, sniff_format)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_snapshot_dump import SnapshotSession, rows_problems
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_restore_stream import (
    TAIL_KEEP, RestoreStream, stream_line_to_dump_line)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_output import parse_row_counts, qualify
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_sql import (
    CHECK_MESSAGE, GUARD_MESSAGE, ROW_COUNT_QUERY, count_differences, database_taken_sql, parse_tagged_lines,
    previous_databases_sql, prune_plan, quote_ident, restore_epilogue, restore_prelude, sql_lines, swap_back_sql, swap_problems_sql, swap_sql,
    tagged_values)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_task import (
    PgTask, Terminated, on_sigterm, raise_terminated)

RESTORE_STDOUT_LIMIT = 64 * 1024
_STREAM_LINE_RE = re.compile(r'^psql:<stdin>:(\d+): ', re.M)


def counts_text(tables):
    return ''.join('%s: %d\n' % (t['name'], t['rows']) for t in tables or [])


class BackupRestore(PgTask):
    """``state=restored`` (:meth:`restore`) and ``state=dumped`` (:meth:`dump`)."""

    APP_NAME = 'taylordash.rollback.backup_restore'
    DB_OPTION = 'db'

    def __init__(self, module, conn, locale, pg_dump=None):
        super(BackupRestore, self).__init__(module, conn, locale, db=module.params['db'])
        self.pg_dump = pg_dump
        self.stream = None

    def classify(self, stderr, rc):
        return self.classify_text(stderr, rc)[1]

    def count_rows(self, db=None):
        res = self.run(self.conn.psql_argv(db or self.params['db'], psql_query_args(ROW_COUNT_QUERY, True)))
        if res.rc != 0:
            return None, res
        try:
            return parse_row_counts(res.stdout), None
        except ValueError:
            return None, res

    # -- state=swapped -----------------------------------------------------------------------
    def psql_statements(self, statements):
        args = ['-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1']
        for statement in statements:
            args += ['-c', statement]
        return self.run(self.conn.psql_argv(self.params['login_db'], args))

    def swap(self):
        """Rename db to previous_as and swap_from to db, in one transaction; count the rows of
        the new db and, when they differ from expect_rows, swap back."""
        db, kept, previous = self.params['db'], self.params['swap_from'], self.params['previous_as']
        keep = self.params['keep_previous']
        self.result.update(swap_from=kept, previous_db=previous, committed=False)
        if self.conn.mode == 'compose':
            self.conn.pin_container(self.run)
        self.begin_phase('check')
        statements = [swap_problems_sql(db), database_taken_sql(kept, 'kept'), database_taken_sql(previous, 'previous')]
        if keep is not None:
            # The older previous databases, listed in the same call (previous_as does not exist yet).
            statements.append(previous_databases_sql(db, tag='older'))
        res = self.psql_statements(statements)
        self.end_phase()
        tags = parse_tagged_lines(res.stdout_text)
        if res.rc != 0 or 'previous' not in tags:
            self.fail('Cannot swap %s into %s: the server check failed: %s. Nothing was changed.'
                      % (kept, db, self.classify(res.stderr_text, res.rc)), cmd_result=res)
        problems = [p for p in [tags.get('swap')] if p]
        # In check mode backup_verify keeps no copy: a missing swap_from is what a dry run sees.
        if tags.get('kept') != 'yes' and not (self.module.check_mode and self.params['swap_from_may_be_missing']):
            problems.append('database %s (swap_from) does not exist' % kept)
        if tags.get('previous') == 'yes':
            problems.append('database %s (previous_as) already exists; choose another name' % previous)
        if problems:
            self.fail('Cannot swap %s into %s: %s. Nothing was changed; restore in place (state=restored) '
                      'where a swap cannot work.' % (kept, db, '; '.join(problems)))
        self.result['changed'] = True
        expect = self.params['expect_rows']
        drop = []
        if keep is not None:
            # previous_as is kept whatever its name and counts as one of keep_previous; never dropped.
            others = [name for name in tagged_values(res.stdout_text, 'older') if name not in (db, kept, previous)]
            kept_others, drop = prune_plan(others, keep - 1)
            self.result['dropped'] = []
        if self.module.check_mode:
            if keep is not None:
                self.result.update(would_drop=drop, previous_dbs=[previous] + kept_others)
            # What would change: the rows now, and those of the verified copy (read-only).
            before, count_res = self.count_rows(db)
            if before is None:
                self.fail('Cannot swap %s into %s: counting its rows failed: %s. Nothing was changed.'
                          % (kept, db, self.classify(count_res.stderr_text, count_res.rc)), cmd_result=count_res)
            self.result['rows_before'] = before
            self.result['total_rows_before'] = sum(t['rows'] for t in before)
            if self.module._diff:
                after_text = counts_text(sorted(({'name': qualify(k), 'rows': int(v)} for k, v in expect.items()),
                                                key=lambda t: t['name'])) if expect is not None else '(those of %s)\n' % kept
                self.result['diff'] = {'before_header': '%s row counts' % db, 'before': counts_text(before),
                                       'after_header': '%s row counts' % db, 'after': after_text}
            self.result['msg'] = ('Would rename database %s to %s and %s to %s in one transaction%s; nothing was '
                                  'changed (check mode).' % (db, previous, kept, db, self.drop_text(drop, 'then would drop')))
            return self.finish()
        self.begin_phase('swap')
        res = self.psql_statements(swap_sql(db, kept, previous))
        self.end_phase()
        if res.rc != 0:
            self.result['changed'] = False
            self.fail('Swapping %s into %s failed: %s. The transaction was rolled back: %s is as it was and the '
                      'verified copy is still %s.' % (kept, db, self.classify(res.stderr_text, res.rc), db, kept),
                      cmd_result=res)
        self.result['committed'] = True
        lines = [line for line in res.stdout_text.splitlines() if line.strip().isdigit()]
        self.result['sessions_ended'] = int(lines[0]) if lines else 0
        self.begin_phase('count_after')
        after, count_res = self.count_rows(db)
        self.end_phase()
        if self.module._diff:
            self.result['diff'] = {'before_header': 'databases', 'before': '%s\n%s\n' % (db, kept),
                                   'after_header': 'databases', 'after': '%s (was %s)\n%s (was %s)\n' % (db, kept, previous, db)}
        problems = None
        if after is None:
            problems = ['counting the rows of %s failed: %s' % (db, self.classify(count_res.stderr_text, count_res.rc))]
        else:
            self.result['rows_after'] = after
            self.result['total_rows_after'] = sum(t['rows'] for t in after)
            if expect is not None:
                problems = count_differences(expect, after) or None
        if problems:
            back = self.psql_statements(swap_back_sql(db, kept, previous))
            if back.rc != 0:
                self.fail('Swapped %s into %s, but %s; swapping back FAILED (%s): the data from before is in database %s '
                          '- rename it back by hand (ALTER DATABASE "%s" RENAME TO "%s", after renaming %s away).'
                          % (kept, db, '; '.join(problems), self.classify(back.stderr_text, back.rc), previous,
                             previous, db, db), cmd_result=back)
            self.result['committed'] = False
            self.result['changed'] = False
            self.result['swapped_back'] = True
            self.fail('Swapped %s into %s, but %s; swapped back: %s is as it was and the copy is %s again.'
                      % (kept, db, '; '.join(problems), db, kept))
        self.result['msg'] = ('Swapped database %s into %s in %.2f s (one transaction, %d session(s) ended): %d tables, '
                              '%d rows%s. The data from before is in database %s.'
                              % (kept, db, self.result['phases']['swap'], self.result['sessions_ended'], len(after),
                                 self.result['total_rows_after'],
                                 ', row counts equal to the verified backup' if expect is not None else '', previous))
        if keep is not None:
            # The swap stands: the previous databases kept are this one and those not dropped below.
            self.result['previous_dbs'] = [previous] + kept_others
            self.drop_previous(drop)
        return self.finish()

    @staticmethod
    def drop_text(names, verb):
        return ', %s the older previous database(s) %s' % (verb, ', '.join(names)) if names else ''

    def drop_previous(self, names):
        """After a swap that committed and whose rows matched: drop the older previous databases
        (keep_previous). The swap stands whatever happens here: a failed DROP is reported
        (drop_problem, a warning) and the databases not dropped are left as they are."""
        if not names:
            return
        self.begin_phase('drop')
        for name in names:
            res = self.psql_statements(['DROP DATABASE %s' % quote_ident(name)])
            if res.rc != 0:
                left = names[len(self.result['dropped']):]
                self.result['drop_problem'] = (
                    'Dropping the older previous database %s failed: %s. Left as they are: %s (drop them with '
                    'state=pruned, or by hand: DROP DATABASE "%s").'
                    % (name, self.classify(res.stderr_text, res.rc), ', '.join(left), name))
                self.module.warn(self.result['drop_problem'])
                self.result['previous_dbs'] += left
                break
            self.result['dropped'].append(name)
        self.end_phase()
        if self.result['dropped']:
            self.result['msg'] += ' Dropped the older previous database(s) %s (keep_previous=%d).' % (
                ', '.join(self.result['dropped']), self.params['keep_previous'])
        if self.result.get('drop_problem'):
            self.result['msg'] += ' ' + self.result['drop_problem']
        if self.module._diff:
            self.result['diff']['before'] += ''.join(name + '\n' for name in names)
            self.result['diff']['after'] += ''.join(name + '\n' for name in names if name not in self.result['dropped'])

    # -- state=pruned ------------------------------------------------------------------------
    def prune(self):
        """Drop the <db>_before_<stamp> databases but the newest keep_previous."""
        db = self.params['db']
        keep = 1 if self.params['keep_previous'] is None else self.params['keep_previous']
        if self.conn.mode == 'compose':
            self.conn.pin_container(self.run)
        res = self.psql_statements([previous_databases_sql(db)])
        if res.rc != 0:
            self.fail('Cannot list the previous databases of %s: %s. Nothing was changed.'
                      % (db, self.classify(res.stderr_text, res.rc)), cmd_result=res)
        names = [line.strip() for line in res.stdout_text.splitlines() if line.strip()]
        kept, dropped = prune_plan(names, keep)
        self.result.update(previous_dbs=kept, dropped=[], changed=bool(dropped))
        if self.module._diff:
            self.result['diff'] = {'before': ''.join(n + '\n' for n in sorted(names)),
                                   'after': ''.join(n + '\n' for n in sorted(kept))}
        if self.module.check_mode or not dropped:
            self.result['would_drop'] = dropped
            self.result['msg'] = ('%s %s; keeping %s.' % (
                'Would drop' if dropped else 'Nothing to drop', ', '.join(dropped) or '(keep_previous=%d)' % keep,
                ', '.join(kept) or 'none'))
            return self.finish()
        for name in dropped:
            res = self.psql_statements(['DROP DATABASE %s' % quote_ident(name)])
            if res.rc != 0:
                self.fail('Dropping the previous database %s failed: %s. Dropped so far: %s.'
                          % (name, self.classify(res.stderr_text, res.rc), ', '.join(self.result['dropped']) or 'none'),
                          cmd_result=res)
            self.result['dropped'].append(name)
        self.result['msg'] = 'Dropped %s; keeping %s.' % (', '.join(dropped), ', '.join(kept) or 'none')
        return self.finish()

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
        psql_argv = self.conn.psql_argv(self.params['db'], psql_restore_args())
        with on_sigterm(self._on_sigterm):
            if fmt == FORMAT_PLAIN:
                feed = stream.generate(stream.plain_source(path), fmt)
                return self.run(psql_argv, feed=feed, stdout_limit=RESTORE_STDOUT_LIMIT)
            if fmt == FORMAT_GZIP:
                feed = stream.generate(stream.gzip_source(path), fmt)
                return self.run(psql_argv, feed=feed, stdout_limit=RESTORE_STDOUT_LIMIT)
            return self.restore_archive(path, fmt, stream, psql_argv)

    def _on_sigterm(self, signum, frame):
        # Never raise here: stopping the stream without its end marker is what rolls back.
        if self.stream is not None:
            self.stream.stop_requested = True

    def restore_archive(self, path, fmt, stream, psql_argv):
        """pg_restore -f - turns the archive into SQL on the fly; its output is psql's input."""
        args = ['-f', '-'] + pg_restore_args(fmt, 1)
        if self.conn.mode == 'direct':
            stream.sha256 = sha256_file(path)
            argv = self.conn.pg_restore_argv(args + [path])
            feed = None
        else:
            argv = self.conn.pg_restore_argv(args)
            feed = self._archive_chunks(path, stream)
        try:
            producer = Producer(argv, env_update=self.env(), cwd=self.conn.cwd, feed=feed, chunk_size=CHUNK_SIZE)
        except OSError as exc:
            return self.fail('Cannot run %s: %s.' % (argv[0], exc.strerror or exc), cmd=argv, rc=None,
                             stdout='', stderr=str(exc))

        def finish():
            rc, stderr, feed_error = producer.finish()
            result = CommandResult(argv, rc, b'', stderr.encode('utf-8'), 0)
            if feed_error:
                return ('reading the archive failed: %s' % feed_error, result)
            if rc != 0:
                return ('pg_restore could not convert the archive: %s' % self.classify(stderr, rc), result)
            return None

        try:
            return self.run(psql_argv, feed=stream.generate(producer.chunks(), fmt, finish),
                            stdout_limit=RESTORE_STDOUT_LIMIT)
        finally:
            producer.close()

    @staticmethod
    def _archive_chunks(path, stream):
        """The archive as stored, for pg_restore's stdin; its sha256 once all of it was read."""
        digest = hashlib.sha256()
        for chunk in file_chunks(path, digest):
            if stream.stop_requested:
                return
            yield chunk
        stream.sha256 = digest.hexdigest()

    # -- state=dumped ------------------------------------------------------------------------
    def dump_argv(self, fmt, extra=()):
        args = (['-Fc'] if fmt == FORMAT_CUSTOM else []) + list(extra)
        program = self.pg_dump if self.conn.mode == 'direct' else 'pg_dump'
        return self.conn.program_argv(program, self.params['db'], args, self.locale)

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
        verify = self.params['verify_rows']
        size = 0
        session = None
        if verify:
            if self.conn.mode == 'compose':
                # Two calls into the database container: docker exec, not compose exec.
                self.conn.pin_container(self.run)
            self.begin_phase('snapshot')
            session = self.open_snapshot()
            snapshot, live = session.snapshot, session.live
            argv = self.dump_argv(fmt, ['--snapshot=%s' % snapshot])
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.part', dir=directory)
        with on_sigterm(raise_terminated):
            self.begin_phase('dump')
            try:
                with os.fdopen(fd, 'wb') as handle:
                    if verify:
                        res, scan = self.dump_scanned(argv, handle)
                    else:
                        res = self.run(argv, stdout_file=handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                self.end_phase()
                if session is not None:
                    session.close()
                    session = None
                if res.rc != 0:
                    self.fail('pg_dump of %s failed: %s. Nothing was written to %s.'
                              % (self.params['db'], self.classify(res.stderr_text, res.rc), path), cmd_result=res)
                size = os.path.getsize(tmp)
                with open(tmp, 'rb') as handle:
                    head = handle.read(512)
                    handle.seek(max(0, size - TAIL_KEEP))
                    tail = handle.read()
                problem = dump_file_problem(fmt, head, tail, size)
                if problem:
                    self.fail('pg_dump of %s exited 0 but the dump is not usable: %s. Nothing was written to %s.'
                              % (self.params['db'], problem, path), cmd_result=res)
                if verify:
                    self.check_scanned(scan, live, path)
                os.chmod(tmp, 0o600)
                os.rename(tmp, path)
                tmp = None
                dir_fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except Terminated:
                # The gateway stopped pg_dump's process group before Terminated reached here.
                self.fail('Interrupted by SIGTERM while dumping %s; the partial file was removed and nothing was written '
                          'to %s.' % (self.params['db'], path))
            finally:
                if session is not None:
                    session.abort()
                if tmp is not None and os.path.exists(tmp):
                    os.unlink(tmp)
        self.result['changed'] = True
        self.result['size'] = size
        self.result['msg'] = 'Dumped %s (%s, %d bytes) to %s in %.1f s (mode 0600)%s.' % (
            self.params['db'], fmt, size, path, self.result['phases']['dump'],
            '; verified while written: complete, and the rows of each of its %d tables (%d rows) equal the '
            "database's, counted in the dump's own snapshot" % (len(self.result['rows']), self.result['total_rows'])
            if verify else '')
        return self.finish()

    def open_snapshot(self):
        """The session holding the dump's snapshot open, with the exact row count of every table in it."""
        argv = self.conn.psql_argv(self.params['db'], ['-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-f', '-'])
        try:
            session = SnapshotSession(argv, env_update=self.env(), cwd=self.conn.cwd)
        except OSError as exc:
            return self.fail('Cannot run %s: %s.' % (argv[0], exc.strerror or exc), cmd=argv, rc=None,
                             stdout='', stderr=str(exc))
        try:
            session.snapshot, session.live = session.open()
        except ValueError as exc:
            session.abort()
            self.fail('Cannot count the rows of %s in a snapshot for the safety dump: %s. Nothing was written to %s.'
                      % (self.params['db'], self.classify(str(exc), 1), self.params['path']), cmd=argv)
        return session

    def dump_scanned(self, argv, handle):
        """pg_dump's stream to the file and, block by block, through PlainScan (row counts per table)."""
        scan = PlainScan()
        try:
            producer = Producer(argv, env_update=self.env(), cwd=self.conn.cwd, chunk_size=CHUNK_SIZE)
        except OSError as exc:
            return self.fail('Cannot run %s: %s.' % (argv[0], exc.strerror or exc), cmd=argv, rc=None,
                             stdout='', stderr=str(exc))
        try:
            for chunk in producer.chunks():
                handle.write(chunk)
                scan.feed_block(chunk)
            scan.finish()
            rc, stderr, dummy = producer.finish()
        finally:
            producer.close()
        return CommandResult(argv, rc, b'', stderr.encode('utf-8'), 0), scan

    def check_scanned(self, scan, live, path):
        """Fail unless the stream was a complete pg_dump script holding every table's rows."""
        rows = sorted(({'name': name, 'rows': count} for name, count in live.items()), key=lambda t: t['name'])
        self.result['rows'] = rows
        self.result['total_rows'] = sum(t['rows'] for t in rows)
        problems = scan.problems() + rows_problems(live, scan.table_rows)
        self.result['verified'] = not problems
        if problems:
            self.fail('The safety dump of %s does not match the database it was taken from: %s. Nothing was written '
                      'to %s and nothing was changed; do not restore over this database until a safety dump can be '
                      'taken (check the disk and the connection to the server, then retry).'
                      % (self.params['db'], '; '.join(problems), path))
