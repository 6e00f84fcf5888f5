# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a command in its own session with a deadline, and stop its whole process group.

``AnsibleModule.run_command`` has no timeout and cannot stop a process group: a hanging
validation script would hang the task, and killing only the script would leave its children
(curl, psql, sleep) running and holding its output pipe open. :func:`run_process` starts argv
(a list, never a shell string) as the leader of a new session, reads stdout and stderr as they
come (keeping the order in which lines arrived), and when the deadline passes sends SIGTERM to
the group, then SIGKILL to whatever is left after a grace period.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import selectors
import signal
import subprocess
import time

# How long to keep reading output after the process group was stopped: a dying process may
# still print (trap handlers), but a process that escaped the group must not hold us.
DRAIN_SECONDS = 1.0
POLL_INTERVAL = 0.05


def group_alive(pgid):
    """True while a process of the group is still running (zombies do not count).

    A zombie answers kill(pid, 0), and the children of a killed process are reparented to
    whatever reaps orphans here, which may take its time; so read /proc where there is one.
    """
    if not os.path.isdir('/proc/self'):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as handle:
                stat = handle.read()
        except (IOError, OSError):
            continue
        # The command name is in parentheses and may contain anything; fields follow the last ")".
        fields = stat.rsplit(b')', 1)[-1].split()
        if len(fields) > 2 and fields[0] not in (b'Z', b'X') and int(fields[2]) == pgid:
            return True
    return False


def kill_process_group(proc, grace):
    """SIGTERM the process group led by ``proc``, SIGKILL whatever is left after ``grace`` seconds.

    Returns the last signal name sent, or None when the group was already gone.
    """
    pgid = proc.pid  # start_new_session made the process the leader of its own group
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    except OSError:
        pass
    deadline = time.monotonic() + grace
    while True:
        proc.poll()  # reap the leader, so that it stops counting as alive
        if not group_alive(pgid):
            return 'SIGTERM'
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    return 'SIGKILL'


class _OutputCollector(object):
    """Reads stdout and stderr as they come, keeping whole lines and their arrival order."""

    def __init__(self, proc):
        self._selector = selectors.DefaultSelector()
        self._partial = {'stdout': b'', 'stderr': b''}
        self.lines = {'stdout': [], 'stderr': []}
        self.merged = []
        self._files = [proc.stdout, proc.stderr]
        self._selector.register(proc.stdout, selectors.EVENT_READ, 'stdout')
        self._selector.register(proc.stderr, selectors.EVENT_READ, 'stderr')

    def read_until(self, deadline):
        """Read until both streams are closed (True) or the deadline passes (False)."""
        while self._selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for key, dummy in self._selector.select(remaining):
                data = os.read(key.fd, 65536)
                if not data:
                    self._selector.unregister(key.fileobj)
                    self._flush(key.data)
                    continue
                pieces = (self._partial[key.data] + data).split(b'\n')
                self._partial[key.data] = pieces.pop()
                for piece in pieces:
                    self._add(key.data, piece)
        return True

    def _add(self, stream, raw):
        text = raw.decode('utf-8', 'replace')
        self.lines[stream].append(text)
        self.merged.append(text)

    def _flush(self, stream):
        if self._partial[stream]:
            self._add(stream, self._partial[stream])
            self._partial[stream] = b''

    def close(self):
        for stream in ('stdout', 'stderr'):
            self._flush(stream)
        self._selector.close()
        for handle in self._files:
            handle.close()


class RunOutput(object):
    """What :func:`run_process` saw.

    ``rc`` is negative when the process was ended by a signal. ``lines`` holds stdout and stderr
    lines in arrival order. ``exited`` says the process itself had exited when the deadline hit
    (processes it started kept its output open). ``stop_signal`` is the last signal sent to the
    group after the deadline (``'SIGTERM'``, ``'SIGKILL'``) or None.
    """

    def __init__(self, rc, stdout_lines, stderr_lines, lines, duration, timed_out, exited, stop_signal):
        self.rc = rc
        self.stdout_lines = stdout_lines
        self.stderr_lines = stderr_lines
        self.lines = lines
        self.duration = duration
        self.timed_out = timed_out
        self.exited = exited
        self.stop_signal = stop_signal


def run_process(argv, cwd=None, env=None, timeout=120.0, kill_grace=5.0, drain=DRAIN_SECONDS):
    """Run argv in a new session, collect its output, stop its group when ``timeout`` passes.

    ``argv`` is a list; no shell is involved. Raises OSError when the program cannot be started
    (the caller explains errno). Returns a :class:`RunOutput`. The process group never outlives
    this call, whether it returns or raises.
    """
    start = time.monotonic()
    deadline = start + timeout
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    collector = _OutputCollector(proc)
    stop_signal = None
    exited = False
    try:
        timed_out = not collector.read_until(deadline)
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True  # it closed its output but kept running
        if timed_out:
            exited = proc.poll() is not None
            stop_signal = kill_process_group(proc, kill_grace)
            collector.read_until(time.monotonic() + drain)
    except BaseException:
        kill_process_group(proc, 0)  # never leave the process running behind an error
        raise
    finally:
        collector.close()
        if proc.poll() is None:
            try:
                proc.wait(timeout=kill_grace + drain)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return RunOutput(proc.returncode, collector.lines['stdout'], collector.lines['stderr'], collector.merged,
                     time.monotonic() - start, timed_out, exited, stop_signal)


def spawn(argv, **kwargs):
    """Start ``argv`` (a list, never a shell string) and return the ``subprocess.Popen``.

    For the streaming pipelines of the PostgreSQL modules (``pg_restore -f - | psql``,
    ``pg_dump > file``): ``module.run_command`` buffers whole outputs and cannot connect one
    process to another, and a dump of several GB must flow through with bounded memory.
    """
    if isinstance(argv, (str, bytes)) or kwargs.get('shell'):
        raise ValueError('spawn takes an argv list and never runs a shell')
    return subprocess.Popen(argv, **kwargs)  # pylint: disable=consider-using-with
