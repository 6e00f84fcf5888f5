# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a failed psql, pg_restore, pg_dump or docker compose call means, in words an operator
can act on: the first error with its context lines, and its kind (authentication, refused
connection, missing service, corrupt archive, SQL error...).

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

_SQL_ERROR_RE = re.compile(r'^psql:(?P<src>[^:]*):(?P<line>\d+): (?P<level>ERROR|FATAL):\s+(?P<msg>.*)$', re.M)
_RESTORE_ERROR_RE = re.compile(r'^pg_restore: error: (?P<msg>.*)$', re.M)


def error_excerpt(stderr, max_lines=6):
    """The first error of a psql/pg_restore run with its LINE/DETAIL/HINT/CONTEXT lines."""
    lines = (stderr or '').splitlines()
    for i, line in enumerate(lines):
        if 'ERROR:' in line or 'FATAL:' in line or line.startswith(('pg_restore: error:', 'psql: error:')):
            out = [line.strip()]
            for follow in lines[i + 1:]:
                stripped = follow.strip()
                if not stripped:
                    break
                if stripped.startswith(('LINE ', 'DETAIL:', 'HINT:', 'CONTEXT:', 'Command was:', '^', 'Is the server')):
                    out.append(stripped)
                else:
                    break
                if len(out) >= max_lines:
                    break
            return ' | '.join(out)
    tail = [line.strip() for line in lines if line.strip()]
    return ' | '.join(tail[-max_lines:])


def classify_error(stderr, where, user, user_option='login_user', rc=None):
    """Turn the stderr of psql/pg_restore/docker compose into ``(kind, message)``.

    ``where`` names the server ("the PostgreSQL server at 127.0.0.1:5432" or "the compose
    service postgres"), ``user`` the role used, ``user_option`` the option that sets it.
    Kinds: auth, no_password, role_missing, database_missing, refused, socket, unknown_host,
    timeout, createdb_denied, service_not_running, no_such_service, compose_file, docker,
    client_missing, archive_corrupt, archive_version, newer_dump, missing_role_in_dump,
    owner_not_allowed, sql_error, unknown.
    """
    text = stderr or ''
    excerpt = error_excerpt(text)
    match = re.search(r'password authentication failed for user "([^"]*)"', text)
    if match:
        return 'auth', ('authentication failed for user %s at %s: check %s/login_password (%s)'
                        % (match.group(1), where, user_option, excerpt))
    match = re.search(r'(?:Peer|Ident|SCRAM) authentication failed for user "([^"]*)"', text, re.I)
    if match:
        return 'auth', ('authentication failed for user %s at %s: check %s and the server\'s pg_hba.conf (%s)'
                        % (match.group(1), where, user_option, excerpt))
    if 'no password supplied' in text:
        return 'no_password', ('%s requires a password for user %s and none was given: set login_password (%s)'
                               % (where, user, excerpt))
    connect_failed = 'connection to server' in text and 'failed:' in text
    match = re.search(r'FATAL:\s+role "([^"]*)" does not exist', text)
    if match:
        return 'role_missing', ('role %s does not exist at %s: check %s (%s)' % (match.group(1), where, user_option, excerpt))
    match = re.search(r'FATAL:\s+database "([^"]*)" does not exist', text)
    if match:
        return 'database_missing', ('database %s does not exist at %s: check login_db (%s)' % (match.group(1), where, excerpt))
    if connect_failed and 'Connection refused' in text:
        return 'refused', ('%s is not accepting connections (connection refused): is PostgreSQL running '
                           'there and listening on that address? (%s)' % (where, excerpt))
    if connect_failed and 'on socket' in text and 'No such file or directory' in text:
        return 'socket', ('%s is not accepting connections (no server socket): is PostgreSQL running? (%s)' % (where, excerpt))
    if 'could not translate host name' in text:
        return 'unknown_host', ('cannot resolve the host of %s: check login_host (%s)' % (where, excerpt))
    if 'timeout expired' in text:
        return 'timeout', ('%s did not answer within connect_timeout (%s)' % (where, excerpt))
    if connect_failed:
        return 'connect', ('cannot connect to %s (%s)' % (where, excerpt))
    if 'permission denied to create database' in text:
        return 'createdb_denied', ('user %s may not create databases at %s; the verification restores into '
                                   'a scratch database, so it needs a role with CREATEDB (%s)' % (user, where, excerpt))
    match = re.search(r'service "([^"]*)" is not running', text) or re.search(r'no container found for service "([^"]*)"', text)
    if match:
        return 'service_not_running', ('the compose service %s is not running: start it (docker compose up -d %s) '
                                       'or check project_dir/project_name/compose_files (%s)'
                                       % (match.group(1), match.group(1), excerpt))
    match = re.search(r'No such container: (\S+)', text)
    if match:
        return 'service_not_running', ('the database container %s is gone (recreated or removed while the '
                                       'module ran): check the compose project and run the task again (%s)'
                                       % (match.group(1), excerpt))
    match = re.search(r'no such service: (\S+)', text)
    if match:
        return 'no_such_service', ('the compose project has no service %s: check db_service (%s)' % (match.group(1), excerpt))
    if 'no configuration file provided' in text or re.search(r'open \S+: no such file or directory', text):
        return 'compose_file', ('the compose file was not found: check project_dir and compose_files (%s)' % excerpt)
    if 'Cannot connect to the Docker daemon' in text or 'is not a docker command' in text or "unknown command: docker compose" in text:
        return 'docker', ('docker compose is not usable on this host (%s)' % excerpt)
    if 'executable file not found' in text:
        return 'client_missing', ('%s has no such program (%s)' % (where, excerpt))
    if re.search(r'could not read from input file: end of file|unexpected end of file|could not find block ID|'
                 r'possibly corrupt archive|did not find magic string|does not appear to be a valid archive|'
                 r'corrupt|could not uncompress data|invalid (?:compressed )?data', text, re.I):
        return 'archive_corrupt', ('the archive is truncated or corrupt (%s)' % excerpt)
    match = re.search(r'unsupported version \(([^)]*)\) in file header', text)
    if match:
        return 'archive_version', ('the pg_restore used is older than the pg_dump that wrote the archive '
                                   '(archive version %s); use a newer pg_restore (%s)' % (match.group(1), excerpt))
    match = re.search(r'invalid command \\(restrict|unrestrict)', text)
    if match:
        return 'newer_dump', ('the dump was written by a newer pg_dump (it uses \\%s) than the psql that '
                              'restores it understands; use psql from the same or a newer minor release (%s)'
                              % (match.group(1), excerpt))
    match = re.search(r'ERROR:\s+role "([^"]*)" does not exist', text)
    if match:
        return 'missing_role_in_dump', ('the dump refers to role %s, which does not exist on the server '
                                        '(ALTER ... OWNER TO / GRANT in a plain SQL dump): create the role '
                                        'or dump with --no-owner --no-privileges (%s)' % (match.group(1), excerpt))
    match = re.search(r'ERROR:\s+must be member of role "([^"]*)"', text)
    if match:
        return 'owner_not_allowed', ('the dump gives objects to role %s, which %s may not do (ALTER ... OWNER TO '
                                     'in a plain SQL dump): verify as a superuser or a member of %s, or dump with '
                                     '--no-owner --no-privileges (%s)' % (match.group(1), user, match.group(1), excerpt))
    match = _SQL_ERROR_RE.search(text)
    if match:
        return 'sql_error', ('SQL error at line %s of the dump: %s' % (match.group('line'), excerpt))
    if 'ERROR:' in text or 'FATAL:' in text:
        return 'sql_error', ('SQL error: %s' % excerpt)
    return 'unknown', excerpt or ('command failed with exit code %s and no error output' % rc)
