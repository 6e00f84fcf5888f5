# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The two ways to reach PostgreSQL, and the argv of its client programs on each: directly
(psql/pg_restore on the module host) or in the compose project's database service
(``docker compose exec -T`` / ``docker exec -i``). Also the module options that choose
between them (documented once, in the doc fragment taylordash.rollback.postgres_connection)
and the lookup of the client programs.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import glob
import os
import re

from ansible.module_utils.common.process import get_bin_path

from ansible_collections.taylordash.rollback.plugins.module_utils._compose import compose_args
from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import DockerCLIError, find_docker
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_dump_format import FORMAT_CUSTOM


def client_bin_dirs():
    """Where PostgreSQL client programs live besides PATH, newest major version first
    (a newer pg_restore reads archives of older pg_dump versions, not the other way round)."""
    def major(path):
        digits = re.findall(r'(\d+)', path)
        return int(digits[-1]) if digits else 0
    dirs = glob.glob('/usr/lib/postgresql/*/bin') + glob.glob('/usr/pgsql-*/bin')
    dirs.sort(key=major, reverse=True)
    return dirs + ['/usr/local/pgsql/bin']


class DirectConnection(object):
    """psql/pg_restore on the module host, connecting over TCP or a unix socket directory."""

    mode = 'direct'
    user_option = 'login_user'

    def __init__(self, psql, pg_restore, host, port, user, password=None, connect_timeout=10):
        self.psql = psql
        self.pg_restore = pg_restore
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.connect_timeout = connect_timeout

    @property
    def where(self):
        if self.host and not self.host.startswith('/'):
            return 'the PostgreSQL server at %s:%s' % (self.host, self.port)
        return 'the PostgreSQL server on the local socket %s (port %s)' % (self.host or 'default', self.port)

    def _conn(self, dbname):
        argv = []
        if self.host:
            argv += ['-h', self.host]
        argv += ['-p', str(self.port), '-U', self.user, '-d', dbname, '-w']
        return argv

    def psql_argv(self, dbname, args):
        return [self.psql, '-X'] + self._conn(dbname) + list(args)

    def pg_restore_argv(self, args, dbname=None):
        argv = [self.pg_restore]
        if dbname is not None:
            argv += self._conn(dbname)
        return argv + list(args)

    def program_argv(self, program, dbname, args, locale='C'):
        """Any client program (pg_dump) connecting to ``dbname``."""
        return [program] + self._conn(dbname) + list(args)

    def env(self, locale='C'):
        """Environment additions for the child; the password travels only here, never in argv."""
        env = {'LC_ALL': locale, 'LANG': locale, 'PGCONNECT_TIMEOUT': str(self.connect_timeout),
               'PGCLIENTENCODING': 'UTF8', 'PGAPPNAME': 'taylordash.rollback.backup_verify'}
        if self.password:
            env['PGPASSWORD'] = self.password
        return env

    cwd = None


class ComposeConnection(object):
    """psql/pg_restore inside the database service, through ``docker compose exec -T``.

    The backup stays on the module host and is streamed through stdin. The password (when the
    server in the container wants one) is handed over by name only (``-e PGPASSWORD``): docker
    compose copies the value from its own environment, so it never appears in an argv.
    """

    mode = 'compose'
    user_option = 'db_user'

    def __init__(self, docker, project_dir, service, user, compose_files=None, project_name=None,
                 password=None, connect_timeout=10):
        self.docker = docker
        self.project_dir = project_dir
        self.service = service
        self.user = user
        self.compose_files = list(compose_files or [])
        self.project_name = project_name
        self.password = password
        self.connect_timeout = connect_timeout
        self.psql = 'psql'
        self.pg_restore = 'pg_restore'
        # The service's running container, once pin_container() found exactly one.
        self.container = None

    @property
    def where(self):
        return 'the compose service %s (project directory %s)' % (self.service, self.project_dir)

    @property
    def cwd(self):
        return self.project_dir

    def compose_argv(self, args):
        return [self.docker] + compose_args(self.project_dir, self.project_name, self.compose_files) + list(args)

    def pin_container(self, run):
        """Resolve the service's running container once (``docker compose ps -q``), so that the
        following calls run ``docker exec -i <container>``: 0.09 s a call instead of 0.15-0.20 s
        for ``docker compose exec`` on the benchmark machine. ``run(argv)`` returns a result with
        ``rc`` and ``stdout_text``. When there is not exactly one running container (stopped,
        no such service, compose errors), nothing is pinned and every call goes through compose,
        whose own messages then say what is wrong. Returns the pinned container ID or None."""
        res = run(self.compose_argv(['ps', '-q', '--status', 'running', self.service]))
        ids = res.stdout_text.split() if res.rc == 0 else []
        self.container = ids[0] if len(ids) == 1 and re.match(r'^[0-9a-f]{12,64}$', ids[0]) else None
        return self.container

    def exec_argv(self, command, locale='C'):
        env_args = ['-e', 'LC_ALL=%s' % locale, '-e', 'PGCONNECT_TIMEOUT=%s' % self.connect_timeout,
                    '-e', 'PGCLIENTENCODING=UTF8']
        if self.password:
            env_args += ['-e', 'PGPASSWORD']
        if self.container:
            # -i: stdin attached (the dump streams through it), no TTY, like compose exec -T.
            return [self.docker, 'exec', '-i'] + env_args + [self.container] + list(command)
        return self.compose_argv(['exec', '-T'] + env_args + [self.service] + list(command))

    def _conn(self, dbname):
        return ['-U', self.user, '-d', dbname, '-w']

    def psql_argv(self, dbname, args):
        return self.exec_argv([self.psql, '-X'] + self._conn(dbname) + list(args))

    def pg_restore_argv(self, args, dbname=None):
        argv = [self.pg_restore]
        if dbname is not None:
            argv += self._conn(dbname)
        return self.exec_argv(argv + list(args))

    def program_argv(self, program, dbname, args, locale='C'):
        """Any client program (pg_dump) in the container, connecting to ``dbname``."""
        return self.exec_argv([program] + self._conn(dbname) + list(args), locale)

    def env(self, locale='C'):
        env = {'LC_ALL': locale, 'LANG': locale}
        if self.password:
            env['PGPASSWORD'] = self.password
        return env


def psql_query_args(sql, nul_separated=False):
    """psql options for one statement with machine-readable output."""
    args = ['-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1']
    if nul_separated:
        args += ['-z', '-0']
    return args + ['-c', sql]


def psql_restore_args():
    """Restore a plain SQL script from stdin: stop at the first error, all or nothing.
    ``-f -`` (not a bare stdin) so psql applies --single-transaction and names the failing line."""
    return ['-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-f', '-']


def pg_restore_args(fmt, jobs, source=None):
    """pg_restore options for the scratch database. --no-owner/--no-privileges let a dump taken
    by another role restore; -j only for custom archives read from a file (pg_restore cannot
    run parallel jobs from stdin or a tar archive, nor with --single-transaction)."""
    args = ['--exit-on-error', '--no-owner', '--no-privileges', '--no-tablespaces',
            '--no-publications', '--no-subscriptions']
    if fmt == FORMAT_CUSTOM and source is not None and jobs > 1:
        args += ['-j', str(jobs)]
    if source is not None:
        args.append(source)
    return args


def connection_argument_spec():
    """Options shared by backup_verify and backup_restore (community.postgresql's login_* names)."""
    return dict(
        connect_timeout=dict(type='int', default=10),
        project_dir=dict(type='path'),
        compose_files=dict(type='list', elements='str'),
        project_name=dict(type='str'),
        db_service=dict(type='str', default='postgres'),
        db_user=dict(type='str', default='taylordash'),
        docker_cli=dict(type='path'),
        login_host=dict(type='str'),
        login_port=dict(type='int', default=5432),
        login_user=dict(type='str', default='postgres'),
        login_password=dict(type='str', no_log=True),
    )


CONNECTION_MUTUALLY_EXCLUSIVE = [
    ('project_dir', 'login_host'),
    ('project_dir', 'login_port'),
    ('project_dir', 'login_user'),
]
CONNECTION_REQUIRED_BY = {'compose_files': 'project_dir', 'project_name': 'project_dir'}


def find_client(name):
    """Path of a PostgreSQL client program on the module host (PATH, then the Debian dirs), or None."""
    try:
        return get_bin_path(name, opt_dirs=client_bin_dirs())
    except ValueError:
        return None


def build_connection(module):
    """ComposeConnection (project_dir set) or DirectConnection from the module's options; fails
    the module with a message saying what to install or set when a program is missing."""
    params = module.params
    if params['project_dir']:
        try:
            docker = find_docker(params['docker_cli'])
        except DockerCLIError as exc:
            module.fail_json(msg='%s%s.' % (exc.msg[0].upper(), exc.msg[1:].rstrip('.')), changed=False)
        if not os.path.isdir(params['project_dir']):
            module.fail_json(msg='project_dir %s does not exist or is not a directory.' % params['project_dir'],
                             changed=False)
        return ComposeConnection(docker, params['project_dir'], params['db_service'], params['db_user'],
                                 compose_files=params['compose_files'], project_name=params['project_name'],
                                 password=params['login_password'], connect_timeout=params['connect_timeout'])
    psql = find_client('psql')
    if psql is None:
        module.fail_json(msg='Cannot find psql on the module host (PATH, /usr/lib/postgresql/*/bin); install '
                             'the PostgreSQL client (postgresql-client), or use compose mode (project_dir).',
                         changed=False)
    return DirectConnection(psql, find_client('pg_restore'), params['login_host'], params['login_port'],
                            params['login_user'], password=params['login_password'],
                            connect_timeout=params['connect_timeout'])
