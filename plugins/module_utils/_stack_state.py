# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the Docker engine says about a compose stack: engine versions, the containers of each
service with the image each runs, and the image a repository and tag (or image ID) name.

Read-only queries through the collection's docker gateway (``DockerCLI``); they raise
``DockerCLIError`` or ``ValueError`` and leave the wording of a failure to the module.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.taylordash.rollback.plugins.module_utils._compose import parse_config, parse_ps
from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import (
    DockerCLIError, looks_like_image_id, parse_json_lines)
from ansible_collections.taylordash.rollback.plugins.module_utils._side_by_side import first_failure, side_by_side


def engine_versions(docker):
    """``(rc, stderr, {'client_version', 'server_version'})``; ``server_version`` is None when
    the engine does not answer."""
    rc, out, err = docker.run(['version', '--format', '{{json .}}'], check_rc=False)
    try:
        data = parse_json_lines(out)[0] if out.strip() else {}
    except (ValueError, IndexError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    server = (data.get('Server') or {}).get('Version')
    return rc, err, {'client_version': (data.get('Client') or {}).get('Version'), 'server_version': server}


def compose_config(docker, compose):
    """The project as ``docker compose config`` resolves it."""
    rc, out, err = docker.run(compose + ['config', '--format', 'json'])
    return parse_config(out)


def containers_by_service(docker, compose):
    """``{service: [{id, name, state, running, restart_count, image_id}]}`` of every container
    of the project, stopped ones included."""
    rc, out, err = docker.run(compose + ['ps', '--all', '--format', 'json'])
    rows = parse_ps(out)
    inspected = side_by_side(dict((n, (docker.container_inspect, row.get('ID') or row.get('Name')))
                                  for n, row in enumerate(rows)))
    infos = first_failure(inspected, range(len(rows)))
    by_service = {}
    for row, info in zip(rows, infos):
        if info is None:  # removed between ps and inspect
            continue
        state = info.get('State') or {}
        by_service.setdefault(row.get('Service'), []).append({
            'id': info.get('Id'),
            'name': (info.get('Name') or '').lstrip('/'),
            'state': state.get('Status'),
            'running': bool(state.get('Running')),
            'restart_count': info.get('RestartCount', 0),
            'image_id': info.get('Image'),
        })
    return by_service


def resolve_image(docker, repository, tag):
    """``(ref, image ID or None)``: ``repository:tag``, or ``tag`` itself when it is an image ID
    and no tag of that spelling exists (a tag wins over an ID)."""
    ref = tag if looks_like_image_id(tag) and not docker.image_id('%s:%s' % (repository, tag)) \
        else '%s:%s' % (repository, tag)
    return ref, docker.image_id(ref)


def available_tags(docker, repository):
    """Sorted tags of ``repository``; ``[]`` when they cannot be listed (only used in messages)."""
    try:
        return sorted(row['tag'] for row in docker.list_tags(repository) if row.get('tag') != '<none>')
    except DockerCLIError:
        return []
