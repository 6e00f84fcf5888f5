# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):
    """The two ways to reach PostgreSQL shared by backup_verify and backup_restore; the argument
    spec is plugins/module_utils/_pg_connection.py connection_argument_spec()."""

    DOCUMENTATION = r"""
options:
  connect_timeout:
    description:
      - Seconds to wait for a connection (E(PGCONNECT_TIMEOUT)), from V(1) to V(86400) (a day).
    type: int
    default: 10
  project_dir:
    description:
      - Compose mode. The compose project directory; psql/pg_restore run in O(db_service)
        through C(docker compose exec -T).
      - Mutually exclusive with O(login_host), O(login_port) and O(login_user).
    type: path
  compose_files:
    description:
      - Compose mode. Compose files, relative to O(project_dir); default is compose's own choice
        (C(compose.yaml), C(docker-compose.yml)...).
    type: list
    elements: str
  project_name:
    description:
      - Compose mode. The compose project name; default is compose's own (from O(project_dir) or
        E(COMPOSE_PROJECT_NAME)).
    type: str
  db_service:
    description:
      - Compose mode. The compose service running PostgreSQL.
    type: str
    default: postgres
  db_user:
    description:
      - Compose mode. The role the client programs use inside the container (C(-U)), like the
        runbook's C(psql -U taylordash).
    type: str
    default: taylordash
  docker_cli:
    description:
      - Compose mode. Path to the C(docker) client. Default is C(docker) found on E(PATH). When set, it must be an
        executable file; the module fails before running anything otherwise.
    type: path
  login_host:
    description:
      - Direct mode. Host name or address of the PostgreSQL server, or a directory holding its unix
        socket. Default is the client's default unix socket.
    type: str
  login_port:
    description:
      - Direct mode. Port of the PostgreSQL server.
    type: int
    default: 5432
  login_user:
    description:
      - Direct mode. The role to connect as (M(taylordash.rollback.backup_verify) needs it to have CREATEDB).
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user) (direct mode) or O(db_user) (compose mode).
      - It is handed to the client programs in their environment (E(PGPASSWORD)) only, never on a
        command line; in compose mode C(docker compose exec -e PGPASSWORD) passes it on by name.
    type: str
"""
