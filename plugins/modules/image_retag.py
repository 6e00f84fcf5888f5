#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: image_retag
short_description: Point a Docker tag back at an earlier image, keeping the image it replaces
description:
  - Moves the tag O(to_tag) of a local Docker repository to the image that O(from_tag) names, which
    is how an immediate rollback makes the next C(docker compose up) run the previous build.
  - Before the tag moves, the image it pointed at is kept under the tag O(keep_as), so the bad
    build stays available for inspection or a roll-forward. The runbook's plain
    C(docker tag :previous :latest) loses it.
  - Image IDs are compared first; when O(to_tag) already points at the target image nothing is
    done and nothing is kept.
  - Every input is checked before anything is tagged. When a check fails, the module fails with a
    message saying what is wrong, and no tag has changed.
  - Works with the local engine through the C(docker) command line client; no registry is
    contacted.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
requirements:
  - The C(docker) command line client on the target host, allowed to talk to the engine.
extends_documentation_fragment:
  - taylordash.rollback.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows which image ID O(to_tag) and the kept tag point at, before and after.
  idempotent:
    support: full
options:
  repository:
    description:
      - The local image repository, without a tag, for example V(taylordash_backend).
      - At least one image of it must exist locally.
      - One of O(repository) and O(repositories) is required.
    type: str
  repositories:
    description:
      - Several repositories in one module run, each moved as O(repository) would be, with the same
        O(from_tag), O(to_tag) and O(keep_as) (one run instead of one per service saves the start of a
        module run per service).
      - Every repository is read and planned before any tag moves, so a missing repository or
        O(from_tag) fails with nothing changed. Then the tags of the repositories move side by side
        (the reads too, so the module waits for the slowest repository, not the sum); a failure names the
        repositories whose tags moved, in RV(results).
      - Mutually exclusive with O(repository); each name at most once.
    type: list
    elements: str
    version_added: 0.1.0
  from_tag:
    description:
      - What to go back to. Either a tag of O(repository), for example V(previous) or V(v1.4.2),
        or an image ID, full (V(sha256:d558df4412bf...)) or shortened to at least 12 hex digits
        (V(d558df4412bf)), for example an image that lost all its tags.
      - A tag of that name wins over an image ID of that spelling.
    type: str
    default: previous
  to_tag:
    description:
      - The tag of O(repository) to move, normally the tag the service runs.
      - If it does not exist yet it is created, and nothing is kept.
    type: str
    default: latest
  keep_as:
    description:
      - Tag of O(repository) under which the image O(to_tag) points at before the move is kept.
      - Default is a UTC timestamp tag C(rollback-YYYYmmddTHHMMSSZ); when that tag already exists
        for another image, C(-2), C(-3) and so on are appended.
      - An explicit tag that already exists is moved, like C(docker image tag) does.
      - Use V(from_tag)'s value to swap the two tags, for example O(from_tag=previous) and
        O(keep_as=previous) make C(previous) the bad build, ready for a roll-forward.
      - Empty string means do not keep; the replaced image may then be left without any tag.
    type: str
  recreate:
    description:
      - After the tags moved, recreate these compose services on them in the same module run, with
        C(docker compose up -d --no-deps --pull never --timeout <stop_timeout> <services>). This is the
        runbook's C(docker tag :previous :latest; docker-compose up -d backend) as one step, one module
        start less before the previous build answers.
      - Compose recreates a service whose image changed and leaves the others as they are. It runs
        also when no tag had to move (a service may still run the image the tag no longer names).
      - Not run when a tag could not be moved, and not in check mode (the tags have not moved, so
        compose cannot tell what would change); RV(recreate) says why.
      - The project directory, the compose files and the service names are checked with the other
        options, before any tag moves.
    type: dict
    version_added: 0.1.0
    suboptions:
      project_dir:
        description: The compose project directory.
        type: path
        required: true
      project_name:
        description: The compose project name; default is what compose derives from O(recreate.project_dir).
        type: str
      compose_files:
        description: Compose files, relative to O(recreate.project_dir) or absolute; default is compose's own choice.
        type: list
        elements: str
        default: []
      services:
        description: The services to recreate; dependencies are not touched (C(--no-deps)).
        type: list
        elements: str
        required: true
      stop_timeout:
        description: Seconds compose gives a container to stop before it is killed.
        type: int
        default: 10
  docker_cli:
    description:
      - Path to the C(docker) command line client. Default is C(docker) found on E(PATH).
      - When set, it must be an executable file; checked before anything else.
    type: path
notes:
  - Tags are moved by image ID, resolved before anything changes, so O(keep_as) and O(from_tag)
    may name the same tag.
  - The image is tagged first under O(keep_as), then O(to_tag) moves. If the second step fails the
    message says so; the kept tag then points at the image O(to_tag) still points at, which is
    harmless.
  - Containers keep running the image they were created from; recreate them (O(recreate), or for
    example M(community.docker.docker_compose_v2)) to run the rolled-back image.
seealso:
  - module: community.docker.docker_image_tag
  - module: community.docker.docker_compose_v2
  - module: taylordash.rollback.health_poll
  - module: taylordash.rollback.rollback_lock
"""

EXAMPLES = r"""
- name: Point :latest of every service back at :previous in one module run
  taylordash.rollback.image_retag:
    repositories: [taylordash_backend, taylordash_frontend]
    from_tag: previous
    to_tag: latest
  register: retag

- name: Point the tags back and recreate the services on them, in one module run
  taylordash.rollback.image_retag:
    repositories: [taylordash_backend, taylordash_frontend]
    recreate:
      project_dir: /opt/taylordash
      services: [backend, frontend]
  register: rollback

- name: Roll the backend back to the image tagged previous, keeping the bad one
  taylordash.rollback.image_retag:
    repository: taylordash_backend
  register: backend_retag

- name: Show where the bad build went
  ansible.builtin.debug:
    msg: "Bad build kept as taylordash_backend:{{ backend_retag.kept_tag }}"
  when: backend_retag.kept_tag is not none

- name: Go back to a release tag
  taylordash.rollback.image_retag:
    repository: taylordash_backend
    from_tag: v1.4.2

- name: Go back to an image that has no tag any more, by its ID
  taylordash.rollback.image_retag:
    repository: taylordash_frontend
    from_tag: d558df4412bf

- name: Swap latest and previous, so previous holds the bad build for a roll-forward
  taylordash.rollback.image_retag:
    repository: taylordash_backend
    from_tag: previous
    to_tag: latest
    keep_as: previous

- name: Move the tag without keeping the replaced image
  taylordash.rollback.image_retag:
    repository: taylordash_backend
    keep_as: ""
"""

RETURN = r"""
repository:
  description: The repository whose tag was moved.
  returned: always
  type: str
  sample: taylordash_backend
source:
  description:
    - The resolved O(from_tag), C(repository:tag) when it named a tag, otherwise the full image ID.
  returned: success
  type: str
  sample: taylordash_backend:previous
image_id_before:
  description: Image ID O(to_tag) pointed at before the module ran; V(null) when the tag did not exist.
  returned: success
  type: str
  sample: sha256:783dd181189a31a3e770ac0d3f78e4276b5206de3da15bdb7483dbd956098b72
image_id_after:
  description: Image ID O(to_tag) points at now (in check mode, would point at).
  returned: success
  type: str
  sample: sha256:d558df4412bf35fd25c346a28efef5abfc0d3b723e72bfe34820e4f89b22048c
kept_tag:
  description:
    - Tag of O(repository) that now holds the replaced image (in check mode, would hold it).
    - V(null) when nothing was kept, because nothing changed, O(to_tag) did not exist, or
      O(keep_as) was empty.
  returned: success
  type: str
  sample: rollback-20240518T101500Z
msg:
  description: What was done, or what is wrong and what to do about it.
  returned: always
  type: str
  sample: >-
    Moved taylordash_backend:latest from 783dd181189a to d558df4412bf (taylordash_backend:previous);
    kept 783dd181189a as taylordash_backend:rollback-20240518T101500Z.
available_tags:
  description: Tags of O(repository) found locally, sorted; helps when O(from_tag) was not found.
  returned: always, when the repository was listed
  type: list
  elements: str
  sample: [latest, previous, v1.4.2]
cmd:
  description: The docker command that failed.
  returned: when a docker command failed
  type: str
  sample: /usr/bin/docker image tag sha256:d558df4412bf... taylordash_backend:latest
rc:
  description: Exit status of the docker command that failed.
  returned: when a docker command failed
  type: int
  sample: 1
stdout:
  description: Standard output of the docker command that failed.
  returned: when a docker command failed
  type: str
  sample: ''
stderr:
  description: Standard error of the docker command that failed.
  returned: when a docker command failed
  type: str
  sample: 'Error response from daemon: No such image: taylordash_backend:nope'
repositories:
  description: The repositories of O(repositories), in the order given.
  returned: with O(repositories)
  type: list
  elements: str
  sample: [taylordash_backend, taylordash_frontend]
  version_added: 0.1.0
results:
  description:
    - With O(repositories), one result per repository in the order given, each with the keys a run with
      O(repository) returns (RV(repository), RV(source), RV(image_id_before), RV(image_id_after),
      RV(kept_tag), RV(msg), RV(available_tags), C(changed)); the one that failed also has C(failed).
  returned: with O(repositories)
  type: list
  elements: dict
  sample: [{repository: taylordash_backend, changed: true, kept_tag: rollback-20240518T101500Z}]
  version_added: 0.1.0
recreate:
  description:
    - What O(recreate) did. C(ran) says whether C(docker compose up) ran; when it did not, C(msg) says
      why (check mode, or a tag could not be moved).
    - C(cmd) (the argv), C(rc), C(stdout), C(stderr) of C(docker compose up), C(failed) when its C(rc) is not 0; C(changed) is true when
      compose recreated, created or started a container (its progress lines on standard error say so);
      C(timing) is when it started and ended and how many seconds it took.
  returned: with O(recreate)
  type: dict
  sample: {ran: true, changed: true, rc: 0, cmd: [docker, compose, --project-directory, /opt/taylordash, up, -d],
           stderr: " Container taylordash-backend-1  Recreated", timing: {seconds: 0.61}}
  version_added: 0.1.0
timing:
  description: When the module started and ended (ISO 8601 UTC) and how many seconds it took.
  returned: always
  type: dict
  sample: {start: "2026-11-25T14:18:01.120000+00:00", end: "2026-11-25T14:18:01.650000+00:00", seconds: 0.53}
"""

import datetime
import os
import re
import time

from ansible_collections.taylordash.rollback.plugins.module_utils._compose import compose_args
from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import (
    docker_cli_problem,
    DockerCLI,
    DockerCLIError,
    is_valid_repository,
    is_valid_tag,
    looks_like_image_id,
    normalize_image_id,
    short_id,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._file_snapshot import project_path
from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule, timing
from ansible_collections.taylordash.rollback.plugins.module_utils._side_by_side import first_failure, side_by_side

KEEP_PREFIX = 'rollback-'
# A compose service name (compose-spec: [a-zA-Z0-9._-], not starting with a separator).
SERVICE_NAME = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9._-]*$')
# Compose's progress lines on standard error when it acts on a container.
COMPOSE_ACTED = re.compile(r'\b(Recreated|Created|Started)\b')


def default_keep_tag(now=None):
    """``rollback-YYYYmmddTHHMMSSZ`` in UTC."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return KEEP_PREFIX + now.strftime('%Y%m%dT%H%M%SZ')


def unique_keep_tag(base, tags, image_id):
    """``base``, or ``base-2``, ``base-3``... the first that is free or already names
    ``image_id`` (so two runs in the same second never take each other's kept image)."""
    candidate = base
    n = 1
    while candidate in tags and tags[candidate] != image_id:
        n += 1
        candidate = '%s-%d' % (base, n)
    return candidate


def validate_params(params):
    """Return a list of problems with the options; empty when they are fine. Pure."""
    problems = []
    repositories = [params['repository']] if params.get('repositories') is None else params['repositories']
    if params.get('repositories') is not None and params.get('repository') is not None:
        problems.append('repository and repositories are mutually exclusive: name one repository, or a list')
    if not repositories:
        problems.append('repositories is empty: name at least one repository')
    if len(set(repositories)) != len(repositories):
        problems.append('repositories names a repository more than once')
    for repository in repositories:
        if not is_valid_repository(repository):
            problems.append(
                "repository '%s' is not a valid Docker repository name: lower-case letters, digits and "
                "separators (. _ __ -), path components separated by '/', no tag" % repository)
    for option in ('to_tag',):
        if not is_valid_tag(params[option]):
            problems.append(
                "%s '%s' is not a valid Docker tag: it must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
                % (option, params[option]))
    from_tag = params['from_tag']
    if not (is_valid_tag(from_tag) or looks_like_image_id(from_tag)):
        problems.append(
            "from_tag '%s' is neither a valid Docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) nor an "
            "image ID (sha256:<hex> or at least 12 hex digits)" % from_tag)
    problem = docker_cli_problem(params.get('docker_cli'))
    if problem:
        problems.append(problem)
    keep_as = params['keep_as']
    if keep_as:
        if not is_valid_tag(keep_as):
            problems.append(
                "keep_as '%s' is not a valid Docker tag: it must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
                % keep_as)
        elif keep_as == params['to_tag']:
            problems.append(
                "keep_as and to_tag are both '%s': the kept image would be overwritten by the move; "
                "choose another keep_as, or an empty string to keep nothing" % keep_as)
    if from_tag == params['to_tag']:
        problems.append(
            "from_tag and to_tag are both '%s': nothing to roll back to; set from_tag to the tag or "
            "image ID to go back to" % from_tag)
    if params.get('recreate') is not None:
        problems.extend(recreate_problems(params['recreate']))
    return problems


def recreate_problems(recreate):
    """The problems of the ``recreate`` option, checked before any tag moves. Reads the file system."""
    problems = []
    services = recreate['services']
    if not services:
        problems.append('recreate.services is empty: name the compose services to recreate')
    bad = [name for name in services if not SERVICE_NAME.match(name or '')]
    if bad:
        problems.append('recreate.services %s: not compose service names ([a-zA-Z0-9][a-zA-Z0-9._-]*)'
                        % ', '.join(repr(name) for name in bad))
    if len(set(services)) != len(services):
        problems.append('recreate.services names a service more than once')
    if recreate['stop_timeout'] < 0:
        problems.append('recreate.stop_timeout=%s: must be 0 or more seconds' % recreate['stop_timeout'])
    project_dir = recreate['project_dir']
    if not project_dir or not os.path.isdir(project_dir):
        problems.append('recreate.project_dir %s is not a directory: set it to the directory of the compose project'
                        % project_dir)
    else:
        for name in recreate['compose_files']:
            path = project_path(project_dir, name)
            if not os.path.isfile(path):
                problems.append('recreate.compose_files: %s does not exist' % path)
    return problems


def recreate_argv(recreate):
    """``docker`` arguments of the recreate: compose up of the services, no pull, no dependencies. Pure."""
    return (compose_args(recreate['project_dir'], recreate['project_name'], recreate['compose_files'])
            + ['up', '-d', '--no-deps', '--pull', 'never', '--timeout', str(recreate['stop_timeout'])]
            + list(recreate['services']))


def recreate_services(cli, recreate):
    """Run the recreate; its result (``ran``, ``cmd``, ``rc``, ``stdout``, ``stderr``, ``changed``,
    ``timing``), whether it succeeded or not."""
    args = recreate_argv(recreate)
    started_epoch, started = time.time(), time.monotonic()
    try:
        rc, stdout, stderr = cli.run(args, check_rc=False)
    except DockerCLIError as exc:
        rc, stdout, stderr = exc.rc, exc.stdout or '', exc.stderr or exc.msg
    return dict(ran=True, cmd=[cli.binary] + args, rc=rc, stdout=stdout, stderr=stderr, failed=rc != 0,
                changed=rc == 0 and bool(COMPOSE_ACTED.search(stderr)),
                timing=timing(started_epoch, time.monotonic() - started))


def run_recreate(module, cli, result):
    """After the tags moved (or had nothing to do): recreate the services, or say why not."""
    recreate = module.params['recreate']
    if module.check_mode:
        result['recreate'] = dict(ran=False, changed=False, cmd=[cli.binary] + recreate_argv(recreate),
                                  msg='Check mode: the tags have not moved, so docker compose up was not run.')
        return result
    outcome = recreate_services(cli, recreate)
    result['recreate'] = outcome
    if outcome['rc'] != 0:
        moved = result['changed']
        retagged = result.pop('msg', '')
        module.fail_json(
            msg='docker compose up of %s failed (rc=%s): %s. %s' % (
                ', '.join(recreate['services']), outcome['rc'],
                (outcome['stderr'].strip() or outcome['stdout'].strip() or 'no output')[-2000:],
                'The tags were moved (%s): the services may still run the build being rolled back; fix the cause and '
                'run again (the tags are already where they belong), or roll forward with the kept tag.' % retagged.rstrip('.')
                if moved else 'No tag had to move.'),
            **result)
    result['changed'] = result['changed'] or outcome['changed']
    result['msg'] = '%s Recreated %s on them (docker compose up: %s).' % (
        result['msg'], ', '.join(recreate['services']),
        'containers recreated or started' if outcome['changed'] else 'nothing to recreate')
    return result


def plan(repository, from_tag, to_tag, keep_as, tags, resolved_id=None, now=None):
    """Decide what to do from the tags of the repository (``{tag: image_id}``). Pure.

    ``resolved_id`` is the image ID ``from_tag`` resolved to when it is not a tag of the
    repository. Returns a dict: source, target_id, before_id, keep (tag or None), changed.
    """
    if from_tag in tags:
        source = '%s:%s' % (repository, from_tag)
        target_id = tags[from_tag]
    else:
        source = resolved_id
        target_id = resolved_id
    before_id = tags.get(to_tag)
    changed = before_id != target_id
    keep = None
    if changed and before_id is not None and keep_as != '':
        if keep_as is None:
            keep = unique_keep_tag(default_keep_tag(now), tags, before_id)
        else:
            keep = keep_as
    return dict(source=source, target_id=target_id, before_id=before_id, keep=keep,
                changed=changed)


def build_diff(repository, to_tag, tags, step):
    before = {'%s:%s' % (repository, to_tag): step['before_id']}
    after = {'%s:%s' % (repository, to_tag): step['target_id']}
    if step['keep']:
        ref = '%s:%s' % (repository, step['keep'])
        before[ref] = tags.get(step['keep'])
        after[ref] = step['before_id']
    return dict(before=before, after=after)


def describe(repository, to_tag, step, done=False):
    """One sentence (without the final period) for what ``step`` does or did."""
    to_ref = '%s:%s' % (repository, to_tag)
    if step['before_id'] is None:
        text = '%s %s at %s (%s)' % (
            'created' if done else 'create', to_ref, short_id(step['target_id']), step['source'])
    else:
        text = '%s %s from %s to %s (%s)' % (
            'moved' if done else 'move', to_ref, short_id(step['before_id']),
            short_id(step['target_id']), step['source'])
    if step['keep']:
        text += '; %s %s as %s:%s' % (
            'kept' if done else 'keep', short_id(step['before_id']), repository, step['keep'])
    elif step['before_id'] is not None:
        text += '; keep_as is empty, so %s is not kept under a new tag' % short_id(step['before_id'])
    return text[0].upper() + text[1:] if done else text


class RetagFailed(Exception):
    """A failure of one repository of a list (``repositories``): the caller names it."""

    def __init__(self, msg, error, result):
        super(RetagFailed, self).__init__(msg)
        self.msg = msg
        self.error = error
        self.result = result


class ImageRetagger(object):
    def __init__(self, module, cli, repository=None, raise_on_fail=False):
        self.module = module
        self.cli = cli
        self.raise_on_fail = raise_on_fail
        self.step = None
        params = module.params
        self.repository = repository or params['repository']
        self.from_tag = params['from_tag']
        self.to_tag = params['to_tag']
        self.keep_as = params['keep_as']
        self.result = dict(changed=False, repository=self.repository)

    def fail(self, msg, error=None, **extra):
        self.result.update(extra)
        if self.raise_on_fail:
            self.result['failed'] = True
            self.result['msg'] = msg
            raise RetagFailed(msg, error, self.result)
        self.cli.fail(msg, error=error, **self.result)

    def ref(self, tag):
        return '%s:%s' % (self.repository, tag)

    def resolve_image_id(self, tags):
        """Image ID for a from_tag that is not a tag of the repository, or fail."""
        available = ', '.join(sorted(tags)) or '(none)'
        if looks_like_image_id(self.from_tag):
            image_id = self.cli.image_id(normalize_image_id(self.from_tag))
            if image_id:
                return image_id
            self.fail(
                "%s not found locally, and no local image has the ID %s; available tags: %s. "
                "Use one of these tags or an existing image ID (docker image ls --no-trunc)."
                % (self.ref(self.from_tag), self.from_tag, available))
        self.fail(
            "%s not found locally; available tags: %s. Use one of these tags, or an image ID."
            % (self.ref(self.from_tag), available))

    def run(self):
        if self.prepare():
            self.apply()
        return self.result

    def prepare(self):
        """Read and plan, change nothing; True when apply() must move the tag."""
        try:
            rows = self.cli.list_tags(self.repository)
        except DockerCLIError as exc:
            self.fail('Cannot list the images of %s: %s' % (self.repository, exc.msg), error=exc)
        tags = dict((row['tag'], row['id']) for row in rows)
        self.result['available_tags'] = sorted(tags)
        if not tags:
            self.fail(
                "repository '%s' not found locally: no image is tagged %s:<tag>. Check the name "
                "(docker image ls); nothing was changed." % (self.repository, self.repository))

        resolved_id = None
        if self.from_tag not in tags:
            try:
                resolved_id = self.resolve_image_id(tags)
            except DockerCLIError as exc:
                self.fail('Cannot inspect image %s: %s' % (self.from_tag, exc.msg), error=exc)

        step = plan(self.repository, self.from_tag, self.to_tag, self.keep_as, tags, resolved_id)
        self.result.update(
            source=step['source'],
            image_id_before=step['before_id'],
            image_id_after=step['target_id'] if step['changed'] else step['before_id'],
            kept_tag=step['keep'],
            changed=step['changed'],
        )
        if self.module._diff:
            self.result['diff'] = build_diff(self.repository, self.to_tag, tags, step)

        to_ref = self.ref(self.to_tag)
        if not step['changed']:
            self.result['msg'] = '%s already points at %s (%s); nothing to do.' % (
                to_ref, short_id(step['target_id']), step['source'])
            return False

        what = describe(self.repository, self.to_tag, step)

        if self.module.check_mode:
            self.result['msg'] = 'Would %s.' % what
            return False
        self.step = step
        # Until apply() moved the tag, nothing changed.
        self.result['changed'] = False
        return True

    def apply(self):
        step = self.step
        to_ref = self.ref(self.to_tag)
        if step['keep']:
            try:
                self.cli.tag(step['before_id'], self.ref(step['keep']))
            except DockerCLIError as exc:
                self.fail('Could not keep %s as %s, so %s was not moved; nothing changed: %s'
                          % (short_id(step['before_id']), self.ref(step['keep']), to_ref, exc.msg),
                          error=exc, changed=False)
        try:
            self.cli.tag(step['target_id'], to_ref)
        except DockerCLIError as exc:
            if step['keep']:
                msg = ('Kept %s as %s, but moving %s to %s failed, so %s still points at %s; fix the '
                       'cause and run again (the kept tag is reused): %s'
                       % (short_id(step['before_id']), self.ref(step['keep']), to_ref,
                          short_id(step['target_id']), to_ref, short_id(step['before_id']), exc.msg))
            else:
                msg = 'Moving %s to %s failed; nothing changed: %s' % (
                    to_ref, short_id(step['target_id']), exc.msg)
            self.fail(msg, error=exc, changed=bool(step['keep']))

        try:
            after_id = self.cli.image_id(to_ref)
        except DockerCLIError as exc:
            self.fail('Moved %s, but cannot inspect it afterwards to confirm: %s' % (to_ref, exc.msg),
                      error=exc, changed=True)
        if after_id != step['target_id']:
            self.fail('docker reported success, but %s points at %s instead of %s; check the engine '
                      'and run again.' % (to_ref, short_id(after_id), short_id(step['target_id'])),
                      image_id_after=after_id, changed=True)
        self.result['msg'] = describe(self.repository, self.to_tag, step, done=True) + '.'
        self.result['changed'] = True
        return self.result


def run_many(module, cli):
    """``repositories``: every repository is read and planned before any tag moves, then the tags
    move, repositories side by side. One result per repository, in the order given."""
    workers = [ImageRetagger(module, cli, repository, raise_on_fail=True) for repository in module.params['repositories']]
    result = dict(changed=False, repositories=list(module.params['repositories']), results=[w.result for w in workers])
    # Each repository is read, and its tag moved, side by side with the others (module_utils._side_by_side);
    # the answers are judged in the order given, as one by one.
    planned = side_by_side(dict((n, (w.prepare,)) for n, w in enumerate(workers)))
    pending = []
    for n, worker in enumerate(workers):
        try:
            if first_failure(planned, [n])[0]:
                pending.append(worker)
        except RetagFailed as exc:
            cli.fail('%s: %s Nothing was changed (no tag of the %d repositories moved).'
                     % (worker.repository, exc.msg.rstrip('.') + '.', len(workers)), error=exc.error, **result)
    applied = side_by_side(dict((n, (w.apply,)) for n, w in enumerate(pending)))
    for n, worker in enumerate(pending):
        try:
            first_failure(applied, [n])
        except RetagFailed as exc:
            moved = [w.repository for w in pending if w.result.get('changed') and w is not worker]
            result['changed'] = bool(moved) or bool(worker.result.get('changed'))
            cli.fail('%s: %s %s' % (worker.repository, exc.msg,
                                    ('The tags of %s were moved beside this failure (see results).' % ', '.join(moved))
                                    if moved else 'No other tag was moved.'), error=exc.error, **result)
    result['changed'] = any(w.result['changed'] for w in workers)
    result['msg'] = ' '.join(w.result['msg'] for w in workers)
    if module._diff:
        result['diff'] = dict(before={}, after={})
        for worker in workers:
            for side in ('before', 'after'):
                result['diff'][side].update(worker.result.get('diff', {}).get(side, {}))
    return result


def main():
    module = RollbackModule(
        argument_spec=dict(
            repository=dict(type='str'),
            repositories=dict(type='list', elements='str'),
            from_tag=dict(type='str', default='previous'),
            to_tag=dict(type='str', default='latest'),
            keep_as=dict(type='str'),
            recreate=dict(type='dict', options=dict(
                project_dir=dict(type='path', required=True),
                project_name=dict(type='str'),
                compose_files=dict(type='list', elements='str', default=[]),
                services=dict(type='list', elements='str', required=True),
                stop_timeout=dict(type='int', default=10),
            )),
            docker_cli=dict(type='path'),
        ),
        supports_check_mode=True,
        required_one_of=[('repository', 'repositories')],
    )
    problems = validate_params(module.params)
    if problems:
        module.fail_json(msg='; '.join(problems) + '. Nothing was changed.',
                         repository=module.params['repository'], changed=False)
    cli = DockerCLI(module, docker_cli=module.params['docker_cli'])
    try:
        if module.params['repositories'] is not None:
            result = run_many(module, cli)
        else:
            result = ImageRetagger(module, cli).run()
    except DockerCLIError as exc:
        cli.fail('Unexpected docker failure: %s' % exc.msg, error=exc,
                 repository=module.params['repository'])
    if module.params['recreate'] is not None:
        result = run_recreate(module, cli, result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
