#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
module: rollback_lock
short_description: Take or release the rollback lock of a host, so two rollbacks never run at once
description:
  - O(state=present) creates the lock file O(path) atomically (C(O_CREAT|O_EXCL)) with who holds
    it, why, since when, from which host and process, and a token. The token is returned; only
    the one who holds it can release the lock without O(force).
  - When another holder has the lock, waits up to O(wait_timeout) seconds for it to go away, then
    fails with a message naming the holder, the reason and the age of the lock.
  - A lock is stale when it is older than O(ttl) seconds, or at once when its holder is provably
    gone - its O(owner_pid) process on this host has ended, its PID now belongs to another process
    (the start time differs), or the host has rebooted since the lock was taken (the boot ID
    differs). A lock whose holder cannot be checked (taken on another host, or without
    O(owner_pid)) is stale only by age. A stale lock is reported (RV(stale), RV(stale_reason))
    and taken over only with O(break_stale=true).
  - O(state=absent) removes the lock if O(token) matches, or regardless with O(force=true).
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
extends_documentation_fragment:
  - taylordash.rollback.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the lock (and waits for it like a real run would) but writes nothing. The token
        reported for a new lock in check mode is not the one a real run creates, unless O(token)
        is given.
  diff_mode:
    support: full
    details:
      - The diff shows the lock content before and after; tokens are left out.
  idempotent:
    support: partial
    details:
      - Acquiring again with the O(token) of the lock you hold reports no change; without O(token)
        a second acquire waits for, and fails on, the lock the first one took.
      - Releasing a lock that is not there reports no change.
options:
  path:
    description:
      - The lock file, for example V(/opt/taylordash/.rollback.lock). Its directory must exist.
    type: path
    required: true
  state:
    description:
      - V(present) acquires the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  holder:
    description:
      - Who takes the lock, shown to anyone who finds it taken, for example V(alice via AWX job 42).
      - Required with O(state=present).
    type: str
  reason:
    description: Why, for example V(immediate rollback of backend after failed deploy).
    type: str
    default: ''
  wait_timeout:
    description:
      - Seconds to wait for a lock held by someone else to be released before failing.
      - V(0) fails at once. From V(0) to V(86400) (one day); checked before the lock is read.
    type: float
    default: 0
  ttl:
    description:
      - Age in seconds after which a lock counts as stale. V(0) means never stale by age.
      - From V(0) to V(31536000) (365 days).
    type: int
    default: 3600
  owner_pid:
    description:
      - PID of a process on this host whose end makes the lock stale, for example the
        C(ansible-playbook) process of the rollback. It must be running when the lock is taken.
      - Its start time and the host's boot ID are recorded too, so a PID reused by another
        process, or a lock left behind by a reboot, is not mistaken for a live owner.
      - From V(1) to V(4194304) (the largest PID Linux hands out).
    type: int
  break_stale:
    description:
      - Take over a stale lock. Without it a stale lock fails the task, with RV(stale=true) and the
        reason.
    type: bool
    default: false
  token:
    description:
      - With O(state=absent), the token returned when the lock was acquired; the lock is only
        removed if it matches (unless O(force=true)).
      - With O(state=present), the token of the new lock instead of a random one; acquiring a lock
        that already has this token is a no-op, which makes re-runs idempotent.
      - Not a secret, a handle; it is returned and stored in the lock file.
    type: str
  force:
    description:
      - With O(state=absent), remove the lock whoever holds it. For a lock left behind by a dead
        run, after checking nobody is still rolling back.
    type: bool
    default: false
  snapshot:
    description:
      - With O(state=present), once the lock is held, take the snapshot M(taylordash.rollback.stack_info)
        takes, with the same options, in the same module run, and return it as RV(snapshot). A
        rollback needs both before it acts, and each module run costs a Python start, so one run instead
        of two lets the good version answer sooner.
      - When the snapshot fails (the engine does not answer, a service or a target image is missing...),
        the lock this run took is released again before the module fails, so nothing is left behind.
        A lock held with the same O(token) before the run is left held.
      - The options are checked before the lock is taken; a bad one fails with nothing changed.
    type: dict
    suboptions:
      project_dir:
        description: Directory holding the compose files and C(.env) of the stack.
        type: path
        required: true
      project_name:
        description: Compose project name. Default is what compose derives (C(COMPOSE_PROJECT_NAME) in C(.env), or the directory name).
        type: str
      compose_files:
        description: Compose files, relative to O(snapshot.project_dir) unless absolute.
        type: list
        elements: str
        default: [docker-compose.yml]
      services:
        description: The application services and the image repository whose O(snapshot.current_tag) each runs.
        type: list
        elements: dict
        required: true
        suboptions:
          name:
            description: Compose service name.
            type: str
            required: true
          image:
            description: Image repository without tag, for example V(taylordash_backend).
            type: str
            required: true
      current_tag:
        description: The tag the services run; a Docker tag.
        type: str
        default: latest
      target_tag:
        description:
          - The tag (or image ID) the rollback goes back to. When set, its image must exist locally for
            every service of O(snapshot.target_services).
        type: str
      target_services:
        description: Services the rollback will touch. Default is every service of O(snapshot.services).
        type: list
        elements: str
      files:
        description:
          - Files of the project directory whose SHA-256 checksums are recorded. Default is C(.env) and
            the compose files.
        type: list
        elements: str
      certificate:
        description: A PEM certificate whose fingerprint, subject and expiry are recorded.
        type: path
      migration_service:
        description: Compose service in which O(snapshot.migration_command) prints the current migration revision.
        type: str
      migration_command:
        description: Command (argv) run with C(docker compose exec -T) to print the revision.
        type: list
        elements: str
        default: [alembic, current]
      docker_cli:
        description: Path to the C(docker) command line client. Default is C(docker) found on E(PATH).
        type: path
notes:
  - Acquire, break and release are safe against concurrent runs on the same host; breaking and
    releasing are serialized with C(flock) on the lock's directory, and only the one that creates
    the file with C(O_EXCL) holds the lock.
  - An empty or unreadable lock file counts as stale only when it is older than a few seconds, so
    a lock being written at that moment is not taken for a broken one.
seealso:
  - module: taylordash.rollback.stack_info
  - module: taylordash.rollback.image_retag
  - module: taylordash.rollback.health_poll
"""

EXAMPLES = r"""
- name: Take the rollback lock, waiting up to 30 s for another rollback to finish
  taylordash.rollback.rollback_lock:
    path: /opt/taylordash/.rollback.lock
    holder: "{{ awx_user_name | default(lookup('env', 'USER')) }} via {{ tower_job_id | default('CLI') }}"
    reason: immediate rollback of backend
    wait_timeout: 30
    ttl: 3600
  register: rollback_lock

- name: Take the rollback lock, then snapshot the stack under it (one module run)
  taylordash.rollback.rollback_lock:
    path: /opt/taylordash/.rollback.lock
    holder: alice via CLI
    reason: immediate rollback
    snapshot:
      project_dir: /opt/taylordash
      services:
        - name: backend
          image: taylordash_backend
      target_tag: previous
  register: rollback_lock

- name: Release the rollback lock
  taylordash.rollback.rollback_lock:
    path: /opt/taylordash/.rollback.lock
    state: absent
    token: "{{ rollback_lock.lock.token }}"

- name: Take over a lock left by a run that died
  taylordash.rollback.rollback_lock:
    path: /opt/taylordash/.rollback.lock
    holder: bob via CLI
    reason: rollback retry after controller crash
    break_stale: true

- name: Remove the lock whoever holds it
  taylordash.rollback.rollback_lock:
    path: /opt/taylordash/.rollback.lock
    state: absent
    force: true
"""

RETURN = r"""
acquired:
  description: Whether the lock is held by this caller after the task (in check mode, would be).
  returned: always
  type: bool
  sample: true
released:
  description: Whether a lock was removed (in check mode, would be).
  returned: always
  type: bool
  sample: false
lock:
  description:
    - Content of the lock. After an acquire, the lock now held, with its token. After a release,
      the lock removed. When the lock is held by someone else, theirs, without the token.
    - V(null) when there is no lock.
  returned: always
  type: dict
  contains:
    holder:
      description: Who holds the lock.
      type: str
      sample: alice via AWX job 42
    reason:
      description: Why.
      type: str
      sample: immediate rollback of backend
    started_at:
      description: When the lock was taken, ISO 8601 UTC.
      type: str
      sample: '2024-05-18T10:15:00Z'
    started_epoch:
      description: When the lock was taken, seconds since the epoch.
      type: float
      sample: 1716027300.12
    host:
      description: Host name of the machine that took the lock.
      type: str
      sample: web-1
    owner_pid:
      description: The O(owner_pid), or V(null).
      type: int
      sample: 4242
    owner_pid_starttime:
      description: Start time of O(owner_pid) in clock ticks since boot (from C(/proc)), or V(null).
      type: int
      sample: 123456
    boot_id:
      description:
        - Boot ID of the host that took the lock (C(/proc/sys/kernel/random/boot_id)); absent when
          the host has none. A lock from another boot of this host cannot have a live owner.
      type: str
      sample: 5d7c0b7e-8f1e-4a43-9a51-2f8f6d0c1e2a
    token:
      description: Handle needed to release the lock; only returned to its holder.
      type: str
      sample: 3f0c2a6e9b1d4c27a8e5f6d7c8b9a0e1
    age:
      description: Seconds since the lock was taken, at the time of the task.
      type: float
      sample: 12.5
    invalid:
      description: Only for a lock file that is not a valid lock, what is wrong with it (the other keys are then absent).
      type: str
      sample: lock file content is not JSON (Expecting value line 1 column 1 (char 0))
stale:
  description: Whether the lock found at O(path) was stale.
  returned: always
  type: bool
  sample: false
stale_reason:
  description: Why the lock was stale; V(null) when it was not.
  returned: always
  type: str
  sample: owner process 4242 on web-1 has ended
replaced_lock:
  description: The stale lock taken over with O(break_stale=true) (without its token); V(null) otherwise.
  returned: always
  type: dict
  sample: {holder: alice via AWX job 42, reason: immediate rollback, started_at: '2024-05-18T10:15:00Z'}
waited:
  description: Seconds spent waiting for another holder.
  returned: always
  type: float
  sample: 0.0
snapshot:
  description:
    - With O(snapshot), what M(taylordash.rollback.stack_info) returns (RV(snapshot.docker), RV(snapshot.compose),
      RV(snapshot.services), RV(snapshot.files), RV(snapshot.certificate), RV(snapshot.migration)), taken while the
      lock is held.
    - V(null) without O(snapshot), with O(state=absent), or when the snapshot failed.
  returned: always
  type: dict
  contains:
    docker:
      description: Versions of the Docker client and engine.
      type: dict
    compose:
      description: The compose project as C(docker compose config) resolved it (C(project), C(services)).
      type: dict
    services:
      description: One entry per service, as M(taylordash.rollback.stack_info) returns them.
      type: list
      elements: dict
    files:
      description: Checksums of the files, keyed by the path as given.
      type: dict
    certificate:
      description: The certificate's fingerprint, subject and expiry, or null.
      type: dict
    migration:
      description: The migration revision, or null.
      type: dict
msg:
  description: What happened, or what is wrong and what to do.
  returned: always
  type: str
  sample: Acquired /opt/taylordash/.rollback.lock for alice via AWX job 42.
timing:
  description: When the module started and ended (ISO 8601 UTC) and how many seconds it took.
  returned: always
  type: dict
  sample: {start: "2026-11-25T14:18:01.120000+00:00", end: "2026-11-25T14:18:01.150000+00:00", seconds: 0.03}
"""

import contextlib
import datetime
import errno
import fcntl
import json
import math
import os
import socket
import time
import uuid

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.taylordash.rollback.plugins.module_utils._docker_cli import DockerCLIError
from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule
from ansible_collections.taylordash.rollback.plugins.module_utils._stack_snapshot import (
    SNAPSHOT_ARGUMENT_SPEC, StackSnapshot, params_problems)

POLL_INTERVAL = 0.1
# An unparsable lock younger than this may be a lock being written right now.
INVALID_GRACE = 5.0
PUBLIC_FIELDS = ('holder', 'reason', 'started_at', 'started_epoch', 'host', 'owner_pid',
                 'owner_pid_starttime', 'boot_id')
# Documented ranges. A wait of NaN or inf would never end, and a PID beyond the kernel's limit
# overflows os.kill(); both are refused before the lock is even read.
WAIT_TIMEOUT_MAX = 86400.0
TTL_MAX = 365 * 86400
PID_MAX = 4194304  # PID_MAX_LIMIT of Linux: /proc/sys/kernel/pid_max cannot go higher
BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id'


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------

def iso_utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def make_lock(holder, reason, host, owner_pid, owner_pid_starttime, token, now, boot_id=None):
    lock = dict(
        holder=holder,
        reason=reason,
        started_at=iso_utc(now),
        started_epoch=round(now, 3),
        host=host,
        owner_pid=owner_pid,
        owner_pid_starttime=owner_pid_starttime,
        token=token,
    )
    # Only where the host has one (Linux); a lock without it is judged as before boot IDs.
    if boot_id:
        lock['boot_id'] = boot_id
    return lock


def validate_params(params):
    """Problems with the options, checked before the lock is read or written. Pure."""
    problems = []
    if '\0' in params['path']:
        problems.append('path must not contain a NUL byte')
    wait = params['wait_timeout']
    if not (math.isfinite(wait) and 0 <= wait <= WAIT_TIMEOUT_MAX):
        problems.append('wait_timeout must be a number of seconds from 0 to %d, got %s'
                        % (WAIT_TIMEOUT_MAX, wait))
    if not 0 <= params['ttl'] <= TTL_MAX:
        problems.append('ttl must be a number of seconds from 0 (never stale by age) to %d, got %s'
                        % (TTL_MAX, params['ttl']))
    pid = params['owner_pid']
    if pid is not None and not 1 <= pid <= PID_MAX:
        problems.append('owner_pid must be a positive PID, at most %d, got %s' % (PID_MAX, pid))
    return problems


def parse_lock(raw):
    """Lock dict from the file's bytes; raises ValueError when it is not a lock."""
    try:
        data = json.loads(to_text(raw, errors='surrogate_or_strict'))
    except (ValueError, UnicodeError) as exc:
        raise ValueError('lock file content is not JSON (%s)' % exc)
    if not isinstance(data, dict) or 'holder' not in data or 'started_epoch' not in data:
        raise ValueError('lock file content is not a lock (no holder/started_epoch)')
    return data


def parse_proc_starttime(stat_text):
    """Field 22 (starttime) of /proc/<pid>/stat. The command name in field 2 may contain
    spaces and parentheses, so fields are counted after its last ')'."""
    after_comm = stat_text[stat_text.rindex(')') + 2:].split()
    return int(after_comm[19])


def parse_proc_state(stat_text):
    return stat_text[stat_text.rindex(')') + 2:].split()[0]


def lock_age(lock, now):
    try:
        return max(now - float(lock.get('started_epoch')), 0.0)
    except (TypeError, ValueError):
        return None


def public_lock(lock, now=None):
    """The lock as shown to anyone: no token."""
    if lock is None:
        return None
    result = dict((k, lock.get(k)) for k in PUBLIC_FIELDS)
    if now is not None:
        age = lock_age(lock, now)
        result['age'] = round(age, 3) if age is not None else None
    return result


def own_lock(lock, now=None):
    """The lock as shown to its holder: with the token."""
    result = public_lock(lock, now)
    result['token'] = lock.get('token')
    return result


def stale_reason(lock, now, ttl, this_host, process_alive, this_boot=None):
    """Why ``lock`` is stale, or None. ``process_alive(pid, starttime)`` -> (alive, why). Pure
    apart from that callback.

    The owner is checked only where that proves something: on the host that took the lock. A
    lock taken in an earlier boot of this host (boot IDs differ) cannot have a live owner, and
    its PID and start time mean nothing now. Anything else falls back to ``ttl``."""
    age = lock_age(lock, now)
    if ttl and age is not None and age > ttl:
        return 'lock is %d s old, older than ttl %d s' % (age, ttl)
    pid = lock.get('owner_pid')
    if pid and lock.get('host') == this_host:
        boot = lock.get('boot_id')
        if boot and this_boot and boot != this_boot:
            return ('owner process %s on %s has ended: the host has rebooted since the lock was '
                    'taken (boot id %s, now %s)' % (pid, this_host, boot, this_boot))
        alive, why = process_alive(pid, lock.get('owner_pid_starttime'))
        if not alive:
            return why
    return None


def describe(lock, now):
    """'alice via AWX job 42' (reason: ..., since ..., 12 s ago, on host h, owner pid p)."""
    age = lock_age(lock, now)
    parts = ['reason: %s' % (lock.get('reason') or '(none given)'),
             'since %s' % lock.get('started_at')]
    if age is not None:
        parts.append('%d s ago' % age)
    parts.append('on host %s' % lock.get('host'))
    if lock.get('owner_pid'):
        parts.append('owner pid %s' % lock.get('owner_pid'))
    return "'%s' (%s)" % (lock.get('holder'), ', '.join(parts))


# ---------------------------------------------------------------------------------------------
# Host access
# ---------------------------------------------------------------------------------------------

def read_boot_id(path=BOOT_ID_PATH):
    """This boot's ID, or None where the host has none (not Linux, /proc not mounted)."""
    try:
        with open(path, 'r') as f:
            return f.read().strip() or None
    except (IOError, OSError):
        return None


def read_proc_stat(pid):
    try:
        with open('/proc/%d/stat' % pid, 'r') as f:
            return f.read()
    except (IOError, OSError):
        return None


def proc_starttime(pid):
    text = read_proc_stat(pid)
    if text is None:
        return None
    try:
        return parse_proc_starttime(text)
    except (ValueError, IndexError):
        return None


def process_alive(pid, starttime=None):
    """(alive, why-not). A zombie has ended; a PID whose start time changed is another process."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False, 'owner process %s on %s has ended' % (pid, socket.gethostname())
        if exc.errno != errno.EPERM:  # EPERM: it exists, it is just not ours to signal
            raise
    text = read_proc_stat(pid)
    if text is not None:
        try:
            if parse_proc_state(text) in ('Z', 'X'):
                return False, 'owner process %s on %s has ended (zombie)' % (pid, socket.gethostname())
            if starttime is not None and parse_proc_starttime(text) != starttime:
                return False, ('owner process %s on %s has ended; the PID now belongs to another '
                               'process' % (pid, socket.gethostname()))
        except (ValueError, IndexError):
            pass
    return True, None


@contextlib.contextmanager
def directory_flock(directory):
    """Exclusive flock on the lock's directory: serializes break and release, which check the
    lock's content and then remove it. Released by the kernel if the process dies."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class LockFile(object):
    def __init__(self, path):
        self.path = path
        self.directory = os.path.dirname(path) or '.'

    def read(self):
        """(raw bytes, lock dict or None, problem or None, mtime); raw None when absent."""
        try:
            with open(self.path, 'rb') as f:
                raw = f.read()
                mtime = os.fstat(f.fileno()).st_mtime
        except (IOError, OSError) as exc:
            if exc.errno == errno.ENOENT:
                return None, None, None, None
            raise
        try:
            return raw, parse_lock(raw), None, mtime
        except ValueError as exc:
            return raw, None, str(exc), mtime

    def create(self, lock):
        """Create the file with O_EXCL; False if it exists already."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
        try:
            os.write(fd, to_bytes(json.dumps(lock, sort_keys=True, indent=2) + '\n'))
            os.fsync(fd)
        except Exception:
            os.close(fd)
            os.unlink(self.path)
            raise
        os.close(fd)
        return True

    def remove_if_unchanged(self, raw):
        """Remove the file if it still holds ``raw``; False if it changed or vanished."""
        with directory_flock(self.directory):
            current, dummy, dummy, dummy = self.read()
            if current is None or current != raw:
                return False
            os.unlink(self.path)
            return True


# ---------------------------------------------------------------------------------------------
# The module's logic
# ---------------------------------------------------------------------------------------------

class RollbackLock(object):
    def __init__(self, module, clock=time.monotonic, wall=time.time, sleep=time.sleep):
        self.module = module
        self.p = module.params
        self.file = LockFile(self.p['path'])
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.host = socket.gethostname()
        self.boot_id = read_boot_id()
        self.result = dict(changed=False, acquired=False, released=False, lock=None, stale=False,
                           stale_reason=None, replaced_lock=None, waited=0.0, snapshot=None)

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def read(self):
        try:
            return self.file.read()
        except (IOError, OSError) as exc:
            self.fail('Cannot read lock file %s: %s' % (self.p['path'], exc))

    def judge(self, lock, problem, mtime, now):
        """Stale reason for what was read, or None."""
        if lock is None:
            age = max(now - mtime, 0.0)
            if age >= INVALID_GRACE:
                return '%s, and the file is %d s old' % (problem, age)
            return None
        try:
            return stale_reason(lock, now, self.p['ttl'], self.host, process_alive, self.boot_id)
        except OSError as exc:
            self.fail('Cannot check owner process %s: %s' % (lock.get('owner_pid'), exc))

    def set_diff(self, before, after):
        def shown(lock):
            if not lock:
                return {}
            return public_lock(lock) if 'holder' in lock else dict(lock)
        if self.module._diff:
            self.result['diff'] = dict(before=shown(before), after=shown(after))

    def check_preconditions(self):
        directory = self.file.directory
        if not os.path.isdir(directory):
            self.fail('Directory %s of the lock file does not exist; create it first (it is normally '
                      'the project directory).' % directory)
        if os.path.isdir(self.p['path']):
            self.fail('%s is a directory; give the path of a lock file.' % self.p['path'])

    def acquire(self):
        p = self.p
        self.check_preconditions()
        if not p['holder']:
            self.fail('holder is required to acquire the lock: say who takes it, for example '
                      '"alice via AWX job 42".')
        starttime = None
        if p['owner_pid'] is not None:
            alive, why = process_alive(p['owner_pid'])
            if not alive:
                self.fail('owner_pid %s is not running on this host (%s); give the PID of the process '
                          'running the rollback, or leave owner_pid unset.' % (p['owner_pid'], why))
            starttime = proc_starttime(p['owner_pid'])

        token = p['token'] or uuid.uuid4().hex
        start = self.clock()
        deadline = start + p['wait_timeout']
        while True:
            raw, lock, problem, mtime = self.read()
            now = self.wall()
            self.result['waited'] = round(self.clock() - start, 3)

            if raw is None:
                new = make_lock(p['holder'], p['reason'], self.host, p['owner_pid'], starttime,
                                token, now, self.boot_id)
                if not self.module.check_mode:
                    try:
                        created = self.file.create(new)
                    except (IOError, OSError) as exc:
                        self.fail('Cannot create lock file %s: %s' % (p['path'], exc))
                    if not created:
                        continue  # someone was faster; look at their lock
                self.set_diff(self.result['replaced_lock'], new)
                verb = 'Would acquire' if self.module.check_mode else 'Acquired'
                if self.result['stale']:
                    verb += ' (taking over a stale lock)' if self.module.check_mode else ' (took over a stale lock)'
                self.result.update(changed=True, acquired=True, lock=own_lock(new, now),
                                   msg='%s %s for %s.' % (verb, p['path'], p['holder']))
                return self.result

            if lock is not None and p['token'] and lock.get('token') == p['token']:
                self.set_diff(lock, lock)
                self.result.update(acquired=True, lock=own_lock(lock, now),
                                   msg='%s is already held with this token by %s; nothing to do.'
                                   % (p['path'], describe(lock, now)))
                return self.result

            why = self.judge(lock, problem, mtime, now)
            shown = public_lock(lock, now) if lock is not None else dict(invalid=problem)
            if why:
                self.result.update(stale=True, stale_reason=why, lock=shown)
                holder = describe(lock, now) if lock is not None else 'an unreadable lock'
                if not p['break_stale']:
                    self.fail('%s is held by %s, but the lock is stale: %s. Set break_stale: true '
                              'to take it over, or release it with state: absent and force: true.'
                              % (p['path'], holder, why))
                self.result['replaced_lock'] = shown
                if self.module.check_mode:
                    new = make_lock(p['holder'], p['reason'], self.host, p['owner_pid'], starttime,
                                    token, now, self.boot_id)
                    self.set_diff(lock, new)
                    self.result.update(changed=True, acquired=True, lock=own_lock(new, now),
                                       msg='Would acquire %s for %s, taking over the stale lock of %s.'
                                       % (p['path'], p['holder'], holder))
                    return self.result
                try:
                    self.file.remove_if_unchanged(raw)
                except (IOError, OSError) as exc:
                    self.fail('Cannot remove stale lock file %s: %s' % (p['path'], exc))
                continue  # create it (or find that someone else just did)

            if self.clock() >= deadline:
                self.result['waited'] = round(self.clock() - start, 3)
                holder = describe(lock, now) if lock is not None else 'an unreadable lock being written'
                self.fail('%s is held by %s; waited %.1f s (wait_timeout %s). Another rollback is '
                          'running: wait for it, or if its holder is gone, release it with '
                          'state: absent and force: true.'
                          % (p['path'], holder, self.result['waited'], p['wait_timeout']),
                          lock=shown)
            self.sleep(max(min(POLL_INTERVAL, deadline - self.clock()), 0.001))

    def take_snapshot(self, snapshot):
        """The snapshot under the lock just acquired; on its failure the lock this run created is
        removed again (only that one: a lock already held with this token stays), then the module fails."""
        created = self.result['changed'] and not self.module.check_mode

        def failed(result):
            msg = 'snapshot: %s' % result.pop('msg', 'failed')
            if created:
                if self.remove_own():
                    self.result.update(changed=False, acquired=False, lock=None)
                    msg += ' The lock this run took at %s was released again.' % self.p['path']
                else:
                    msg += (' The lock this run took at %s could not be released: release it with state: absent '
                            'and its token.' % self.p['path'])
            for key, value in self.result.items():
                if key != 'msg':
                    result.setdefault(key, value)
            self.module.fail_json(msg=msg, **result)

        snapshot.on_fail = failed
        try:
            taken = snapshot.run()
        except DockerCLIError as exc:
            failed(dict(msg=to_text(exc), **exc.as_dict()))
        taken.pop('changed', None)
        self.result['snapshot'] = taken
        self.result['msg'] += ' Snapshot of %s taken under it.' % snapshot.project_dir
        return self.result

    def remove_own(self):
        """Remove the lock file if it still holds this run's token; True when removed."""
        token = (self.result.get('lock') or {}).get('token')
        try:
            raw, lock, dummy, dummy2 = self.file.read()
            if raw is None or lock is None or not token or lock.get('token') != token:
                return False
            return bool(self.file.remove_if_unchanged(raw))
        except (IOError, OSError):
            return False

    def release(self):
        p = self.p
        self.check_preconditions()
        raw, lock, problem, dummy = self.read()
        now = self.wall()
        if raw is None:
            self.set_diff(None, None)
            self.result['msg'] = 'No lock at %s; nothing to release.' % p['path']
            return self.result
        shown = public_lock(lock, now) if lock is not None else dict(invalid=problem)
        self.result['lock'] = shown
        if not p['force']:
            if lock is None:
                self.fail('%s is not a valid lock (%s); remove it with force: true.' % (p['path'], problem))
            if not p['token']:
                self.fail('%s is held by %s; give the token returned when it was acquired, or '
                          'force: true to release it anyway.' % (p['path'], describe(lock, now)))
            if lock.get('token') != p['token']:
                self.fail('%s is held by %s with another token; not releasing. Give the token '
                          'returned when it was acquired, or force: true to release it anyway.'
                          % (p['path'], describe(lock, now)))
        if lock is not None and p['token'] and lock.get('token') == p['token']:
            self.result['lock'] = own_lock(lock, now)
        self.set_diff(lock, None)
        holder = describe(lock, now) if lock is not None else 'an invalid lock'
        if self.module.check_mode:
            self.result.update(changed=True, released=True,
                               msg='Would release %s held by %s.' % (p['path'], holder))
            return self.result
        try:
            removed = self.file.remove_if_unchanged(raw)
        except (IOError, OSError) as exc:
            self.fail('Cannot remove lock file %s: %s' % (p['path'], exc))
        if not removed:
            self.fail('%s changed while it was being released (another run took or released it); '
                      'nothing removed. Run again to see who holds it now.' % p['path'])
        self.result.update(changed=True, released=True,
                           msg='Released %s held by %s.' % (p['path'], holder))
        return self.result


def main():
    module = RollbackModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            holder=dict(type='str'),
            reason=dict(type='str', default=''),
            wait_timeout=dict(type='float', default=0),
            ttl=dict(type='int', default=3600),
            owner_pid=dict(type='int'),
            break_stale=dict(type='bool', default=False),
            # A handle to release the lock, shown to its holder; hiding it would defeat its purpose.
            token=dict(type='str', no_log=False),
            force=dict(type='bool', default=False),
            snapshot=dict(type='dict', options=SNAPSHOT_ARGUMENT_SPEC),
        ),
        required_if=[('state', 'present', ('holder',))],
        supports_check_mode=True,
    )
    nothing = dict(changed=False, acquired=False, released=False, lock=None, stale=False, stale_reason=None,
                   replaced_lock=None, waited=0.0, snapshot=None)
    problems = validate_params(module.params)
    snapshot_params = module.params['snapshot']
    if snapshot_params is not None:
        if module.params['state'] != 'present':
            problems.append('snapshot is taken only with state=present (after the lock is acquired); '
                            'leave it out to release the lock')
        else:
            problem = params_problems(snapshot_params)
            if problem:
                problems.append('snapshot: ' + problem.replace(' Nothing was read.', '').rstrip('.'))
    if problems:
        module.fail_json(msg='; '.join(problems) + '. Nothing was changed.', **nothing)
    # Built before the lock is taken: a docker client that cannot run fails with nothing changed.
    snapshot = StackSnapshot(module, snapshot_params) if snapshot_params is not None else None
    lock = RollbackLock(module)
    if module.params['state'] == 'present':
        result = lock.acquire()
        if snapshot is not None:
            result = lock.take_snapshot(snapshot)
    else:
        result = lock.release()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
