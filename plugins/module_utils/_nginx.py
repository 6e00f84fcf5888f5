# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Switch a running nginx to another site file, safely: the logic of the nginx_switch module.

The runbook's ``cp nginx.blue.conf /etc/nginx/sites-available/taylordash; nginx -t; systemctl
reload nginx`` leaves the broken file in place when ``nginx -t`` fails, and never checks that the
reload happened. :class:`Switch` keeps a verified copy of the live file, replaces it atomically,
runs ``nginx -t``, puts the old file back when the test fails, reloads gracefully (a signal to the
master, ``systemctl reload`` or ``nginx -s reload`` in the compose service, never a restart), then
waits with a deadline until a new generation of workers runs and, when asked, until N answers in a
row through nginx carry a marker of the new config. When the reload does not take effect, the old
file goes back and nginx is reloaded again, so the old config is what is served.

Where nginx lives is one of three :class:`Nginx` back ends (``host``, ``systemd``, ``compose``):
each tests the config, reloads, and lists the master's worker processes. The pure functions at the
top parse ``/proc``, ``systemctl show`` and ``docker top`` output, so unit tests feed them text.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import difflib
import os
import shlex
import signal
import stat
import tempfile
import time

from ansible_collections.taylordash.rollback.plugins.module_utils._files import sha256_bytes, sha256_file
from ansible_collections.taylordash.rollback.plugins.module_utils._process import run_streaming

WORKER_TITLE = 'nginx: worker process'
SHUTTING_DOWN = 'is shutting down'
MASTER_TITLE = 'nginx: master process'
POLL_INTERVAL = 0.05
MAX_DIFF_BYTES = 256 * 1024


class SwitchError(Exception):
    """The switch failed. ``details`` go into the module's result (cmd, rc, stdout, stderr...)."""

    def __init__(self, msg, **details):
        super(SwitchError, self).__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------

def parse_stat_ppid(stat_text):
    """The parent PID from the text of ``/proc/PID/stat`` (the name in parentheses may hold
    anything: fields follow the last ``)``)."""
    fields = stat_text.rsplit(')', 1)[-1].split()
    return int(fields[1])


def workers_of(processes, master):
    """PIDs of the current-generation workers of ``master`` from ``[(pid, ppid, title)]``: the
    children titled ``nginx: worker process`` (old workers say ``... is shutting down``)."""
    return sorted(pid for pid, ppid, title in processes
                  if ppid == master and title.strip().startswith(WORKER_TITLE) and SHUTTING_DOWN not in title)


def old_workers_of(processes, master):
    """PIDs of workers of ``master`` still finishing requests after a reload."""
    return sorted(pid for pid, ppid, title in processes
                  if ppid == master and title.strip().startswith(WORKER_TITLE) and SHUTTING_DOWN in title)


def find_master(processes, candidates=None):
    """The PID of the process titled ``nginx: master process`` (among ``candidates`` if given), or None."""
    for pid, dummy, title in processes:
        if title.strip().startswith(MASTER_TITLE) and (candidates is None or pid in candidates):
            return pid
    return None


def descendants(processes, root):
    """``root`` and every process below it."""
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid, dummy in processes:
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def parse_docker_top(stdout):
    """``docker top CID -eo pid,ppid,args`` -> ``[(pid, ppid, args)]`` (host PIDs)."""
    rows = []
    for line in stdout.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            rows.append((int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else ''))
    return rows


def parse_main_pid(stdout):
    """``systemctl show -p MainPID --value UNIT`` (or ``MainPID=N``) -> int (0: not running)."""
    text = stdout.strip()
    if text.startswith('MainPID='):
        text = text.split('=', 1)[1]
    return int(text) if text.isdigit() else 0


def unified_diff(before, after, path):
    """A unified diff of two texts, for messages; the module's ``diff`` carries the full texts."""
    return ''.join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        fromfile=path + ' (live)', tofile=path + ' (candidate)'))


def nginx_message(stderr, stdout=''):
    """What nginx -t said, without its boilerplate: the lines with ``[emerg]``/``[crit]``/
    ``[alert]`` if any, else everything it printed."""
    text = (stderr or '') + ('\n' + stdout if stdout else '')
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    important = [line for line in lines if any(tag in line for tag in ('[emerg]', '[crit]', '[alert]', '[error]'))]
    return '; '.join(important or lines) or '(no output)'


def backup_name(path, now=None):
    """``<path>.<YYYYmmddTHHMMSSZ>.bak``: beside the live file, not matched by nginx's
    ``include .../*.conf`` globs."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return '%s.%s.bak' % (path, now.strftime('%Y%m%dT%H%M%S%fZ'))


# ---------------------------------------------------------------------------------------------
# Processes on this host
# ---------------------------------------------------------------------------------------------

def proc_table(proc_root='/proc'):
    """``[(pid, ppid, title)]`` of every process visible in /proc; the title is the command line
    with NULs as spaces (nginx sets ``nginx: worker process`` there)."""
    rows = []
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return rows
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, entry, 'stat'), 'rb') as handle:
                ppid = parse_stat_ppid(handle.read().decode('utf-8', 'replace'))
            with open(os.path.join(proc_root, entry, 'cmdline'), 'rb') as handle:
                title = handle.read().replace(b'\x00', b' ').decode('utf-8', 'replace').strip()
        except (IOError, OSError, ValueError, IndexError):
            continue
        rows.append((int(entry), ppid, title))
    return rows


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------
# Where nginx lives
# ---------------------------------------------------------------------------------------------

class Nginx(object):
    """Tests the config, reloads, and lists workers of one nginx. ``runner`` is the process
    gateway's run_streaming (a stand-in in unit tests); ``timeout`` bounds every command."""

    kind = None

    def __init__(self, runner=None, timeout=30.0, processes=proc_table):
        self.runner = runner or run_streaming
        self.timeout = timeout
        self.processes = processes

    def _run(self, argv, what):
        cmd = ' '.join(shlex.quote(a) for a in argv)
        try:
            res = self.runner(argv, timeout=self.timeout)
        except OSError as exc:
            raise SwitchError('Cannot run %s (%s): %s' % (argv[0], what, exc.strerror or exc), cmd=cmd)
        details = dict(cmd=cmd, rc=res.rc, stdout=res.stdout_text, stderr=res.stderr_text)
        if getattr(res, 'timed_out', False):
            raise SwitchError('%s (%s) did not finish within %s s and was stopped' % (cmd, what, self.timeout), **details)
        return res, details

    def nginx_args(self):
        return []

    def test(self):
        """``nginx -t``: returns the details; raises SwitchError with nginx's message on failure."""
        raise NotImplementedError

    def reload(self):
        raise NotImplementedError

    def master(self):
        """The master PID; raises SwitchError saying nginx is not running."""
        raise NotImplementedError

    def table(self):
        return self.processes()

    def workers(self):
        master = self.master()
        table = self.table()
        return master, workers_of(table, master), old_workers_of(table, master)


class HostNginx(Nginx):
    """nginx started on this host (its own prefix, config and PID file): reload by SIGHUP."""

    kind = 'host'

    def __init__(self, binary, pid_file, conf=None, prefix=None, **kwargs):
        super(HostNginx, self).__init__(**kwargs)
        self.binary = binary
        self.pid_file = pid_file
        self.conf = conf
        self.prefix = prefix

    def nginx_args(self):
        args = []
        if self.prefix:
            args += ['-p', self.prefix]
        if self.conf:
            args += ['-c', self.conf]
        return args

    def test(self):
        res, details = self._run([self.binary] + self.nginx_args() + ['-t'], 'nginx -t')
        if res.rc != 0:
            raise SwitchError('nginx -t failed: %s' % nginx_message(res.stderr_text, res.stdout_text), **details)
        return details

    def master(self):
        try:
            with open(self.pid_file) as handle:
                text = handle.read().strip()
        except (IOError, OSError) as exc:
            raise SwitchError('nginx is not running: cannot read its PID file %s (%s). Start nginx, or set pid_file '
                              'to the file its "pid" directive names.' % (self.pid_file, exc.strerror or exc))
        if not text.isdigit() or not pid_alive(int(text)):
            raise SwitchError('nginx is not running: its PID file %s names %s, which is not a running process. Start '
                              'nginx first.' % (self.pid_file, text or '(nothing)'))
        pid = int(text)
        title = dict((p, t) for p, dummy, t in self.table()).get(pid)
        if title is not None and not title.startswith(MASTER_TITLE):
            raise SwitchError('nginx is not running: PID %d from %s is "%s", not an nginx master process. Start nginx, '
                              'or set pid_file to the file its "pid" directive names.' % (pid, self.pid_file, title))
        return pid

    def reload(self):
        pid = self.master()
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise SwitchError('Cannot send SIGHUP (reload) to the nginx master %d: %s' % (pid, exc.strerror or exc))
        return dict(cmd='kill -HUP %d' % pid)


class SystemdNginx(Nginx):
    """nginx under systemd: ``systemctl reload UNIT`` (ExecReload sends SIGHUP)."""

    kind = 'systemd'

    def __init__(self, binary, unit, systemctl='systemctl', conf=None, prefix=None, **kwargs):
        super(SystemdNginx, self).__init__(**kwargs)
        self.binary = binary
        self.unit = unit
        self.systemctl = systemctl
        self.conf = conf
        self.prefix = prefix

    nginx_args = HostNginx.nginx_args
    test = HostNginx.test

    def master(self):
        res, details = self._run([self.systemctl, 'show', '-p', 'MainPID', '--value', self.unit],
                                 'systemctl show')
        pid = parse_main_pid(res.stdout_text) if res.rc == 0 else 0
        if not pid:
            raise SwitchError('nginx is not running: systemd unit %s has no main process. Start it '
                              '(systemctl start %s), or set systemd_unit.' % (self.unit, self.unit), **details)
        return pid

    def reload(self):
        res, details = self._run([self.systemctl, 'reload', self.unit], 'systemctl reload')
        if res.rc != 0:
            raise SwitchError('systemctl reload %s failed: %s' % (self.unit, nginx_message(res.stderr_text, res.stdout_text)),
                              **details)
        return details


class ComposeNginx(Nginx):
    """nginx in a compose service: ``nginx -t`` and ``nginx -s reload`` through
    ``docker compose exec``; workers read with ``docker top`` (host PIDs)."""

    kind = 'compose'

    def __init__(self, docker, project_dir, service, project=None, files=None, conf=None, prefix=None, **kwargs):
        super(ComposeNginx, self).__init__(**kwargs)
        self.docker = docker
        self.project_dir = project_dir
        self.service = service
        self.project = project
        self.files = files or []
        self.conf = conf
        self.prefix = prefix
        self._container = None

    nginx_args = HostNginx.nginx_args

    def compose(self):
        args = [self.docker, 'compose', '--project-directory', self.project_dir]
        if self.project:
            args += ['--project-name', self.project]
        for name in self.files:
            args += ['--file', name if os.path.isabs(name) else os.path.join(self.project_dir, name)]
        return args

    def container(self):
        if self._container is None:
            res, details = self._run(self.compose() + ['ps', '-q', '--status', 'running', self.service],
                                     'docker compose ps')
            ids = res.stdout_text.split()
            if res.rc != 0 or not ids:
                raise SwitchError('nginx is not running: compose service %s of %s has no running container%s. '
                                  'Start it (docker compose up -d %s).'
                                  % (self.service, self.project or self.project_dir,
                                     (' (%s)' % res.stderr_text.strip()) if res.rc != 0 else '', self.service),
                                  **details)
            self._container = ids[0]
        return self._container

    def exec_nginx(self, args, what):
        return self._run(self.compose() + ['exec', '-T', self.service, 'nginx'] + self.nginx_args() + args, what)

    def test(self):
        self.container()
        res, details = self.exec_nginx(['-t'], 'nginx -t in the container')
        if res.rc != 0:
            raise SwitchError('nginx -t failed: %s' % nginx_message(res.stderr_text, res.stdout_text), **details)
        return details

    def reload(self):
        self.container()
        res, details = self.exec_nginx(['-s', 'reload'], 'nginx -s reload in the container')
        if res.rc != 0:
            raise SwitchError('nginx -s reload failed: %s' % nginx_message(res.stderr_text, res.stdout_text), **details)
        return details

    def table(self):
        res, details = self._run([self.docker, 'top', self.container(), '-eo', 'pid,ppid,args'], 'docker top')
        if res.rc != 0:
            raise SwitchError('Cannot list the processes of the nginx container: %s' % res.stderr_text.strip(), **details)
        return parse_docker_top(res.stdout_text)

    def master(self):
        table = self.table()
        pid = find_master(table)
        if pid is None:
            raise SwitchError('nginx is not running in compose service %s: no "nginx: master process" in its '
                              'container.' % self.service)
        return pid

    def workers(self):
        table = self.table()
        master = find_master(table)
        if master is None:
            raise SwitchError('nginx is not running in compose service %s: no "nginx: master process" in its '
                              'container.' % self.service)
        return master, workers_of(table, master), old_workers_of(table, master)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def read_bytes(path):
    with open(path, 'rb') as handle:
        return handle.read()


def atomic_write(path, data, like=None):
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename, with
    the mode (and owner, when allowed) of ``like`` or of the file replaced."""
    directory = os.path.dirname(path) or '.'
    ref = like if like and os.path.exists(like) else (path if os.path.exists(path) else None)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if ref is not None:
            info = os.stat(ref)
            os.chmod(tmp, stat.S_IMODE(info.st_mode))
            try:
                os.chown(tmp, info.st_uid, info.st_gid)
            except OSError:
                pass
        else:
            os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def keep_copy(path, backup):
    """Copy the live file to ``backup`` and prove the copy (sha256). Returns the checksum."""
    data = read_bytes(path)
    atomic_write(backup, data, like=path)
    digest = sha256_bytes(data)
    if sha256_file(backup) != digest:
        raise SwitchError('The copy of %s at %s does not match it; nothing was changed.' % (path, backup))
    return digest


# ---------------------------------------------------------------------------------------------
# The switch
# ---------------------------------------------------------------------------------------------

class Switch(object):
    """One switch of ``path`` to the content of ``src`` on ``nginx``.

    ``verify`` is None or a callable ``verify(deadline) -> (ok, report)`` that sends requests
    through nginx until N answers in a row carry the new config's marker or the deadline passes.
    ``clock``/``sleep`` are injectable for unit tests.
    """

    def __init__(self, nginx, path, src, reload_timeout=30.0, verify=None, verify_timeout=30.0,
                 backup=True, clock=time.monotonic, sleep=time.sleep):
        self.nginx = nginx
        self.path = os.path.realpath(path)
        self.shown_path = path
        self.src = src
        self.reload_timeout = reload_timeout
        self.verify = verify
        self.verify_timeout = verify_timeout
        self.backup = backup
        self.clock = clock
        self.sleep = sleep
        self.result = dict(changed=False, path=path, src=src, backup_file=None, reverted=False,
                           nginx_kind=nginx.kind)

    # -- pieces ---------------------------------------------------------------------------------

    def read_inputs(self):
        try:
            candidate = read_bytes(self.src)
        except (IOError, OSError) as exc:
            raise SwitchError('Cannot read the candidate config %s (%s); nothing was changed. Give the path of '
                              'the site file to switch to in src.' % (self.src, exc.strerror or exc))
        if not os.path.isdir(os.path.dirname(self.path) or '.'):
            raise SwitchError('The directory of the live site file %s does not exist; nothing was changed. Set '
                              'path to the site file nginx includes.' % self.shown_path)
        if os.path.isdir(self.path):
            raise SwitchError('The live site file %s is a directory; nothing was changed. Set path to the site '
                              'file nginx includes.' % self.shown_path)
        try:
            current = read_bytes(self.path) if os.path.exists(self.path) else None
        except (IOError, OSError) as exc:
            raise SwitchError('Cannot read the live site file %s (%s); nothing was changed.'
                              % (self.shown_path, exc.strerror or exc))
        return candidate, current

    def wait_generation(self, old_workers, deadline):
        """Wait until the master runs a worker that is not among ``old_workers`` and none of
        ``old_workers`` still accepts connections (each has exited or says it is shutting down:
        between the two, an old worker still takes new connections with the old config)."""
        last = None
        while True:
            master, workers, shutting = self.nginx.workers()
            last = dict(master_pid=master, workers=workers, old_workers=shutting)
            if [w for w in workers if w not in old_workers] and not [w for w in workers if w in old_workers]:
                return True, last
            if self.clock() >= deadline:
                return False, last
            self.sleep(POLL_INTERVAL)

    def reload_and_wait(self):
        master, before, dummy = self.nginx.workers()
        started = self.clock()
        self.nginx.reload()
        took, state = self.wait_generation(set(before), started + self.reload_timeout)
        seconds = round(self.clock() - started, 3)
        state.update(workers_before=before, reload_seconds=seconds)
        if state['master_pid'] != master:
            raise SwitchError('The nginx master changed from PID %s to %s during the reload: nginx was restarted by '
                              'someone else.' % (master, state['master_pid']))
        return took, state

    def restore(self, current, backup):
        """Put the old file back (or remove the new one if there was none)."""
        if current is None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        else:
            atomic_write(self.path, current, like=backup if backup and os.path.exists(backup) else None)

    # -- the whole switch -------------------------------------------------------------------------

    def run(self, check_mode=False, want_diff=False):
        r = self.result
        candidate, current = self.read_inputs()
        master, workers, shutting = self.nginx.workers()  # fails when nginx is not running
        r.update(master_pid=master, workers_before=workers)
        before_text = current.decode('utf-8', 'replace') if current is not None else ''
        after_text = candidate.decode('utf-8', 'replace')
        if want_diff:
            r['diff'] = dict(before=before_text[:MAX_DIFF_BYTES], after=after_text[:MAX_DIFF_BYTES],
                             before_header=self.shown_path, after_header=self.src)
        r['checksum_before'] = sha256_bytes(current) if current is not None else None
        r['checksum'] = sha256_bytes(candidate)

        if current == candidate:
            if self.verify is None or check_mode:
                r['msg'] = '%s already has the content of %s; nothing to do.' % (self.shown_path, self.src)
                if want_diff:
                    r.pop('diff')
                return r
            ok, report = self.verify(self.clock() + self.verify_timeout)
            r['verify'] = report
            if ok:
                r['msg'] = '%s already has the content of %s and nginx serves it; nothing to do.' % (
                    self.shown_path, self.src)
                if want_diff:
                    r.pop('diff')
                return r
            # The file is in place but not served (copied without a reload): reload it.
        if check_mode:
            r['changed'] = True
            r['msg'] = 'Would switch %s to %s, test it with nginx -t and reload %s nginx.' % (
                self.shown_path, self.src, self.nginx.kind)
            return r

        backup = None
        if current is not None and current != candidate and self.backup:
            backup = backup_name(self.path)
            keep_copy(self.path, backup)
            r['backup_file'] = backup
        r['changed'] = True
        try:
            atomic_write(self.path, candidate)
        except (IOError, OSError) as exc:
            self._drop(backup)
            r['changed'] = False
            raise SwitchError('Cannot write %s (%s); nothing was changed.' % (self.shown_path, exc.strerror or exc))
        try:
            r['nginx_test'] = self.nginx.test()
        except SwitchError as exc:
            self.restore(current, backup)
            self._drop(backup)
            r['changed'] = False
            r['backup_file'] = None
            exc.msg = ('%s; %s was put back as it was, nginx was not reloaded and still serves the old config. '
                       'Fix %s and run again.' % (exc.msg, self.shown_path, self.src))
            raise
        failure = None
        try:
            took, state = self.reload_and_wait()
            r.update(state)
            if not took:
                failure = ('the reload did not take effect within %s s (no new generation of nginx workers; the '
                           'master %s still runs %s)' % (self.reload_timeout, state['master_pid'], state['workers']))
            elif self.verify is not None:
                ok, report = self.verify(self.clock() + self.verify_timeout)
                r['verify'] = report
                if not ok:
                    failure = 'the new config was not served within %s s: %s' % (self.verify_timeout, report['problem'])
        except SwitchError as exc:
            failure = exc.msg
            r.update(exc.details)
        if failure is None:
            r['msg'] = 'Switched %s to %s; nginx reloaded in %.2f s (workers %s -> %s)%s.' % (
                self.shown_path, self.src, r['reload_seconds'], r['workers_before'], r['workers'],
                (', %d answers in a row carried the new config' % r['verify']['successes']) if r.get('verify') else '')
            return r
        self.revert(current, backup, failure)

    def revert(self, current, backup, failure):
        """Put the old file back, reload again, and fail with the reason."""
        r = self.result
        revert_problem = None
        try:
            self.restore(current, backup)
            took, state = self.reload_and_wait()
            r['revert'] = state
            if not took:
                revert_problem = 'the reload of the old config did not take effect within %s s either' % self.reload_timeout
        except (SwitchError, IOError, OSError) as exc:
            revert_problem = getattr(exc, 'msg', None) or str(exc)
        r['reverted'] = revert_problem is None
        if revert_problem is None:
            raise SwitchError('Switch of %s to %s reverted: %s. The old config was put back and reloaded; it is what '
                              'nginx serves.' % (self.shown_path, self.src, failure))
        raise SwitchError('Switch of %s to %s failed: %s; putting the old config back failed too: %s. Check nginx '
                          'now (the old file is kept at %s).' % (self.shown_path, self.src, failure, revert_problem,
                                                                 backup or '(none)'))

    def _drop(self, backup):
        if backup:
            try:
                os.unlink(backup)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# Verification through nginx
# ---------------------------------------------------------------------------------------------

def fetch(opener, url, headers, timeout):
    """One GET: ``(status, response headers as a lower-case dict, error)``; never raises."""
    import urllib.error as urllib_error
    import urllib.request as urllib_request
    try:
        request = urllib_request.Request(url, method='GET')
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        response = opener.open(request, timeout=timeout)
        try:
            response.read(65536)
            return response.getcode(), dict((k.lower(), v) for k, v in response.headers.items()), None
        finally:
            response.close()
    except urllib_error.HTTPError as exc:
        try:
            found = dict((k.lower(), v) for k, v in exc.headers.items())
        finally:
            exc.close()
        return exc.code, found, None
    except Exception as exc:  # any network failure is an outcome of the check
        from ansible_collections.taylordash.rollback.plugins.module_utils._http_probe import describe_error
        return None, {}, describe_error(exc)


class Marker(object):
    """N answers in a row from ``url`` with a status in ``status_codes`` and, when ``header`` is
    set, that response header equal to ``value``."""

    def __init__(self, send, successes, status_codes, header=None, value=None, request_timeout=2.0,
                 interval=0.05, clock=time.monotonic, sleep=time.sleep):
        self.send = send
        self.successes = successes
        self.status_codes = status_codes
        self.header = header.lower() if header else None
        self.value = value
        self.request_timeout = request_timeout
        self.interval = interval
        self.clock = clock
        self.sleep = sleep

    def judge(self, status, headers, error):
        if status is None:
            return error or 'no answer'
        if status not in self.status_codes:
            return 'status %s' % status
        if self.header and headers.get(self.header) != self.value:
            return '%s: %s (want %s)' % (self.header, headers.get(self.header, '(missing)'), self.value)
        return None

    def __call__(self, deadline):
        started = self.clock()
        attempts = 0
        row = 0
        problem = None
        last_status = None
        while True:
            budget = max(min(self.request_timeout, deadline - self.clock()), 0.05)
            status, headers, error = self.send(budget)
            attempts += 1
            last_status = status
            problem = self.judge(status, headers, error)
            if problem is None:
                row += 1
                if row >= self.successes:
                    break
                continue
            row = 0
            if self.clock() >= deadline:
                break
            self.sleep(self.interval)
        return row >= self.successes, dict(attempts=attempts, successes=row, wanted=self.successes,
                                           last_status=last_status, problem=problem,
                                           seconds=round(self.clock() - started, 3))
