# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What backup_verify and backup_restore share around their work: the result with its timed
phases, ``fail()`` with the details of the command that failed, running the PostgreSQL clients
through the process gateway, turning their errors into words, SIGTERM handling and the checks
of numeric options.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import contextlib
import signal
import time

from ansible.module_utils.common.locale import get_best_parsable_locale

from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule
from ansible_collections.taylordash.rollback.plugins.module_utils._process import run_streaming
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_connection import (
    CONNECTION_MUTUALLY_EXCLUSIVE, CONNECTION_REQUIRED_BY, build_connection, connection_argument_spec)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_errors import classify_error

# Upper bound of the options that mean seconds: a day. A bigger value is a typo, and
# time arithmetic must stay finite.
MAX_SECONDS = 86400


class Terminated(Exception):
    """SIGTERM arrived (a task timeout, an operator): clean up, then fail."""


def raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def on_sigterm(handler):
    """Run the block with ``handler`` for SIGTERM, then restore the previous handler."""
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def number_problem(params, name, minimum, maximum, unit='seconds', unset=False):
    """Problem with a whole-number option (from ``minimum`` to ``maximum``), or None.
    ``unset``: None is allowed (no limit)."""
    value = params[name]
    if value is None and unset:
        return None
    if value is None or value < minimum:
        return '%s must be %d or more%s%s, got %s' % (
            name, minimum, ' ' + unit if unit else '', ' (or null for no limit)' if unset else '', value)
    if value > maximum:
        return '%s must be at most %d%s, got %s' % (name, maximum, ' ' + unit if unit else '', value)
    return None


def whole_number_problems(option, mapping):
    """Problems with a dict of table -> row count (``min_rows``, ``expect_rows``)."""
    problems = []
    for name, value in sorted((mapping or {}).items()):
        if not isinstance(name, str) or not name.strip() or '\x00' in name:
            problems.append('%s has a key that is not a table name: %r' % (option, name))
            continue
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            problems.append('%s[%s] must be a whole number, got %r' % (option, name, value))
            continue
        if number < 0 or str(number) != str(value).strip():
            problems.append('%s[%s] must be a whole number of 0 or more, got %r' % (option, name, value))
        elif number >= 2 ** 63:
            problems.append('%s[%s] must be below 2^63 (a PostgreSQL bigint), got %r' % (option, name, value))
    return problems


# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes: a longer name would not be the
# database the operator named.
MAX_IDENTIFIER_BYTES = 63


def database_name_problems(option, name):
    """Problems with an option that names a database (None: unset, no problem)."""
    if name is None:
        return []
    if not name.strip():
        return ['%s must name a database, got an empty name' % option]
    if '\x00' in name:
        return ['%s holds a NUL character, which no database name can' % option]
    if len(name.encode('utf-8')) > MAX_IDENTIFIER_BYTES:
        return ['%s (%s...) is longer than %d bytes, PostgreSQL\'s limit for a name' % (option, name[:20], MAX_IDENTIFIER_BYTES)]
    return []


class PgModule(RollbackModule):
    """The RollbackModule of the two PostgreSQL modules (kept as a name for their shared setup)."""


def nul_problems(spec, params):
    """Text options holding a NUL character: no argv, environment or file name can carry one."""
    problems = []
    for name in sorted(spec):
        kind = spec[name].get('type', 'str')
        values = params.get(name)
        if kind == 'list' and spec[name].get('elements', 'str') in ('str', 'path'):
            values = values or []
        elif kind in ('str', 'path'):
            values = [values]
        else:
            continue
        if any(isinstance(value, str) and '\x00' in value for value in values):
            problems.append('%s holds a NUL character, which no name, path or password can' % name)
    return problems


def start_module(argument_spec, validate, mutually_exclusive=(), failure_note='', **kwargs):
    """The module (a RollbackModule, see PgModule, with the module's options and the connection options), its
    options checked by ``validate(params)`` (a list of problems) before anything else, and the
    way to the server: ``(module, connection, locale)``."""
    spec = dict(argument_spec)
    spec.update(connection_argument_spec())
    module = PgModule(
        argument_spec=spec,
        mutually_exclusive=list(mutually_exclusive) + CONNECTION_MUTUALLY_EXCLUSIVE,
        required_by=CONNECTION_REQUIRED_BY,
        supports_check_mode=True,
        **kwargs
    )
    problems = nul_problems(spec, module.params) or validate(module.params)
    if problems:
        module.fail_json(msg='Invalid options: %s.%s' % ('; '.join(problems), failure_note), changed=False)
    return module, build_connection(module), get_best_parsable_locale(module)


class PgTask(object):
    """A module's work against PostgreSQL: ``result`` (with ``phases``), ``run()`` through the
    connection, ``fail()``, ``classify()``. ``APP_NAME`` overrides the client's application
    name; ``DB_OPTION`` is the module's option that names the database to connect to."""

    APP_NAME = None
    DB_OPTION = 'login_db'

    def __init__(self, module, conn, locale, **result):
        self.module = module
        self.conn = conn
        self.locale = locale
        self.params = module.params
        self.result = dict(changed=False, connection=conn.mode, phases={})
        self.result.update(result)
        self.started = time.time()
        self._phase = None

    # -- timing ------------------------------------------------------------------------------
    def begin_phase(self, name):
        self.end_phase()
        self._phase = (name, time.time())

    def end_phase(self):
        if self._phase is not None:
            name, since = self._phase
            self._phase = None
            self.result['phases'][name] = round(self.result['phases'].get(name, 0) + time.time() - since, 3)

    def finish(self):
        self.end_phase()
        self.result['duration'] = round(time.time() - self.started, 3)
        return self.result

    def fail(self, msg, cmd_result=None, **extra):
        """fail_json with the result so far and the details of ``cmd_result`` (a CommandResult)."""
        self.result.update(extra)
        if cmd_result is not None:
            self.result.update(cmd=cmd_result.argv, rc=cmd_result.rc, stdout=cmd_result.stdout_text,
                               stderr=cmd_result.stderr_text)
        self.finish()
        self.module.fail_json(msg=msg, **self.result)

    # -- running the clients -----------------------------------------------------------------
    def env(self):
        env = self.conn.env(self.locale)
        if self.APP_NAME:
            env['PGAPPNAME'] = self.APP_NAME
        return env

    def run(self, argv, feed=None, stdout_limit=None, stdout_file=None):
        try:
            return run_streaming(argv, env_update=self.env(), cwd=self.conn.cwd, feed=feed,
                                 stdout_limit=stdout_limit, stdout_file=stdout_file)
        except OSError as exc:
            return self.fail('Cannot run %s: %s. Check that it is installed (docker_cli for compose mode).'
                             % (argv[0], exc.strerror or exc), cmd=argv, rc=None, stdout='', stderr=str(exc))

    # -- errors in words ---------------------------------------------------------------------
    def classify_text(self, text, rc):
        kind, msg = classify_error(text, self.conn.where, self.conn.user, self.conn.user_option, rc)
        if self.DB_OPTION != 'login_db':
            msg = msg.replace('check login_db', 'check %s' % self.DB_OPTION)
        return kind, msg

    def classify_result(self, res):
        """(kind, message) for a failed command. docker compose exec prints some of its own
        errors (an OCI "executable file not found") on stdout, so stdout is read as well when
        stderr alone says nothing recognizable."""
        kind, msg = self.classify_text(res.stderr_text, res.rc)
        if kind == 'unknown' and getattr(res, 'stdout', None):
            kind2, msg2 = self.classify_text(res.stderr_text + '\n' + res.stdout_text[-4096:], res.rc)
            if kind2 != 'unknown':
                return kind2, msg2
        return kind, msg
