# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one gateway through which this collection runs a program.

Every process the modules start (docker, psql, pg_restore, pg_dump, validation scripts) goes
through :func:`start`: argv is a list (never a shell string), the child leads a new session so
that its whole process group can be stopped, and its locale is C unless the caller says
otherwise, so that output parsed here is not translated. On top of it:

* :func:`run_process` - run to completion under a deadline, output as lines in arrival order
  (validation scripts);
* :func:`run_streaming` - feed stdin from a generator with bounded memory, keep bounded
  stdout/stderr, optional deadline (docker, psql, pg_restore, pg_dump to a file);
* :class:`Producer` - a child whose stdout is read by the caller as a stream of chunks
  (``pg_restore -f -`` feeding psql).

``AnsibleModule.run_command`` has no timeout, cannot stop a process group and buffers whole
outputs; that is why none of the modules use it. Output is drained by :class:`Drain` threads
into :class:`BoundedBuffer` (or line) sinks, so a child never blocks on a full pipe and memory
stays bounded. Failures the callers raise carry ``cmd``, ``rc``, ``stdout`` and ``stderr``
(:class:`ProcessError`).

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math
import os
import selectors
import signal
import subprocess
import threading
import time

# What every child gets unless the caller overrides it: output parsed by the modules must not be
# translated or reformatted by the operator's locale.
LOCALE_ENV = dict(LC_ALL='C', LANG='C', LC_MESSAGES='C')

# How long to keep reading output after the process group was stopped: a dying process may
# still print (trap handlers), but a process that escaped the group must not hold us.
DRAIN_SECONDS = 1.0
POLL_INTERVAL = 0.05
READ_SIZE = 65536
# After the child exited, how long its output may stay open (a grandchild holding the pipe)
# before the group is stopped.
AFTER_EXIT_SECONDS = 5.0
# threading and subprocess refuse waits longer than this; a longer timeout means "no limit".
_MAX_WAIT = min(threading.TIMEOUT_MAX, 10.0 ** 9)


class ProcessError(Exception):
    """A command failed. ``as_dict()`` gives what every failure must carry."""

    def __init__(self, msg, cmd=None, rc=None, stdout='', stderr=''):
        super(ProcessError, self).__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def as_dict(self):
        return dict(cmd=self.cmd, rc=self.rc, stdout=self.stdout, stderr=self.stderr)


def child_env(env=None, env_update=None):
    """The child's environment: ``env`` (default: ours) with the C locale unless it sets one,
    then ``env_update`` on top."""
    result = dict(os.environ) if env is None else dict(env)
    for key, value in LOCALE_ENV.items():
        if env is None:
            result[key] = value
        else:
            result.setdefault(key, value)
    result.update(env_update or {})
    return result


def _check_timeout(timeout):
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or math.isnan(timeout) or timeout <= 0:
        raise ValueError('timeout must be a number of seconds greater than 0, got %r' % (timeout,))
    return min(float(timeout), _MAX_WAIT)


def start(argv, cwd=None, env=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """Start argv as the leader of a new session; return the ``subprocess.Popen``.

    ``env`` is the complete environment (see :func:`child_env`). Raises ValueError for a shell
    string and OSError when the program cannot be started (the caller explains errno).
    """
    if isinstance(argv, (str, bytes)) or not argv:
        raise ValueError('the process gateway takes a non-empty argv list and never runs a shell')
    return subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=stdin, stdout=stdout,  # pylint: disable=consider-using-with
                            stderr=stderr, start_new_session=True, close_fds=True)


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
    pgid = proc.pid  # start() made the process the leader of its own group
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


def _reap(proc, seconds):
    """Wait for the leader; SIGKILL it when it outlives ``seconds``."""
    if proc.poll() is not None:
        return
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------
# Output sinks and the drain thread
# ---------------------------------------------------------------------------------------------

class BoundedBuffer(object):
    """Collects bytes with bounded memory: the first ``head`` bytes and the last ``tail``
    (``tail`` None keeps everything after the head)."""

    def __init__(self, head, tail):
        self.head_limit = head
        self.tail_limit = tail
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    @classmethod
    def of(cls, limit):
        """A buffer keeping ``limit`` bytes (half from the start, half from the end), or all."""
        if limit is None:
            return cls(1 << 62, None)
        return cls(limit // 2, limit - limit // 2)

    def add(self, data):
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        if self.tail_limit is not None and len(self.tail) > self.tail_limit:
            cut = len(self.tail) - self.tail_limit
            self.dropped += cut
            del self.tail[:cut]

    def value(self):
        if self.dropped:
            return bytes(self.head) + b'\n[... %d bytes not kept ...]\n' % self.dropped + bytes(self.tail)
        return bytes(self.head) + bytes(self.tail)


class _Lines(object):
    """Whole lines of stdout and stderr, and both in the order they arrived."""

    def __init__(self):
        self._lock = threading.Lock()
        self._partial = {'stdout': b'', 'stderr': b''}
        self.lines = {'stdout': [], 'stderr': []}
        self.merged = []

    def sink(self, stream):
        return lambda data: self._add(stream, data)

    def _add(self, stream, data):
        with self._lock:
            pieces = (self._partial[stream] + data).split(b'\n')
            self._partial[stream] = pieces.pop()
            for piece in pieces:
                self._line(stream, piece)

    def _line(self, stream, raw):
        text = raw.decode('utf-8', 'replace')
        self.lines[stream].append(text)
        self.merged.append(text)

    def flush(self):
        with self._lock:
            for stream in ('stdout', 'stderr'):
                if self._partial[stream]:
                    self._line(stream, self._partial[stream])
                    self._partial[stream] = b''


class Drain(threading.Thread):
    """Reads pipes until they close, handing each chunk to the sink (a callable) of its pipe.

    ``Drain(pipe, sink, *more)`` with ``more`` further ``(pipe, sink)`` pairs: one thread reads
    them all through one selector, so chunks reach their sinks in the order they arrived (two
    threads, one a pipe, would race and could put a later stderr line before an earlier stdout
    line under load).
    """

    def __init__(self, pipe, sink, *more):
        super(Drain, self).__init__(name='drain')
        self.daemon = True  # a grandchild holding the pipe must not keep the module alive
        self.streams = [(pipe, sink)] + list(more)
        self.start()

    def run(self):
        selector = selectors.DefaultSelector()
        try:
            for pipe, sink in self.streams:
                selector.register(pipe, selectors.EVENT_READ, sink)
            while selector.get_map():
                for key, dummy in selector.select():
                    try:
                        data = os.read(key.fd, READ_SIZE)
                    except (IOError, OSError, ValueError):
                        data = b''  # closed under us after the group was stopped
                    if data:
                        key.data(data)
                    else:
                        selector.unregister(key.fileobj)
        except (IOError, OSError, ValueError):
            pass
        finally:
            selector.close()
            for pipe, dummy in self.streams:
                try:
                    pipe.close()
                except (IOError, OSError, ValueError):
                    pass


def _join_all(drains, deadline):
    """True when every drain finished before the deadline (monotonic)."""
    for drain in drains:
        drain.join(max(0.0, min(deadline - time.monotonic(), _MAX_WAIT)))
    return not any(drain.is_alive() for drain in drains)


def feed_stdin(proc, chunks):
    """Write ``chunks`` to the child's stdin, then close it. A child that stops reading (psql at
    its first error) ends the feeding quietly: its exit status tells. Returns the exception
    ``chunks`` raised (the child's group is then stopped), or None."""
    error = None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
            # A feed may wait for the child's answer before its next chunk (a psql session).
            proc.stdin.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass
    except Exception as exc:  # noqa: B902 - any reader error must stop the child
        error = exc
        kill_process_group(proc, 0)
    finally:
        try:
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
    return error


class _Watchdog(object):
    """Stops the child's group when the deadline passes, wherever the caller is blocked."""

    def __init__(self, proc, timeout, kill_grace):
        self.fired = False
        self.stop_signal = None
        self._timer = None
        if timeout is not None:
            self._proc = proc
            self._grace = kill_grace
            self._timer = threading.Timer(timeout, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self):
        self.fired = True
        self.stop_signal = kill_process_group(self._proc, self._grace)

    def cancel(self):
        if self._timer is not None:
            self._timer.cancel()
            if self.fired:
                self._timer.join()


# ---------------------------------------------------------------------------------------------
# Run to completion, output as lines
# ---------------------------------------------------------------------------------------------

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

    ``env`` is the complete environment (default: ours), with the C locale unless it sets one.
    Raises OSError when the program cannot be started (the caller explains errno), ValueError
    for a timeout that is not a positive number. Returns a :class:`RunOutput`. The process
    group never outlives this call, whether it returns or raises.
    """
    timeout = _check_timeout(timeout)
    started = time.monotonic()
    deadline = started + (timeout if timeout is not None else _MAX_WAIT)
    proc = start(argv, cwd=cwd, env=child_env(env))
    lines = _Lines()
    drains = [Drain(proc.stdout, lines.sink('stdout'), (proc.stderr, lines.sink('stderr')))]
    stop_signal = None
    exited = False
    timed_out = False
    try:
        try:
            proc.wait(timeout=max(0.0, min(deadline - time.monotonic(), _MAX_WAIT)))
            timed_out = not _join_all(drains, deadline)  # its children kept the output open
        except subprocess.TimeoutExpired:
            timed_out = True
        if timed_out:
            exited = proc.poll() is not None
            stop_signal = kill_process_group(proc, kill_grace)
            _join_all(drains, time.monotonic() + drain)
    except BaseException:
        kill_process_group(proc, 0)  # never leave the process running behind an error
        raise
    finally:
        _reap(proc, kill_grace + drain)
    lines.flush()
    return RunOutput(proc.returncode, lines.lines['stdout'], lines.lines['stderr'], lines.merged,
                     time.monotonic() - started, timed_out, exited, stop_signal)


# ---------------------------------------------------------------------------------------------
# Run with stdin fed from a generator, bounded output
# ---------------------------------------------------------------------------------------------

class CommandResult(object):
    """What :func:`run_streaming` saw: bytes, bounded; ``feed_error`` is what the feed raised."""

    def __init__(self, argv, rc, stdout, stderr, duration, feed_error=None, timed_out=False):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.feed_error = feed_error
        self.timed_out = timed_out

    @property
    def stderr_text(self):
        return self.stderr.decode('utf-8', 'replace')

    @property
    def stdout_text(self):
        return self.stdout.decode('utf-8', 'replace')


def run_streaming(argv, env_update=None, cwd=None, feed=None, stdout_limit=None, stderr_limit=256 * 1024,
                  timeout=None, kill_grace=5.0, stdout_file=None):
    """Run argv (never a shell), optionally writing the chunks of ``feed`` to its stdin.

    The environment is ours with the C locale, then ``env_update``. stdout and stderr are kept
    in bounded buffers (``stdout_limit`` None keeps all of stdout, for queries); ``stdout_file``
    (an open file) receives stdout instead. An exception raised by ``feed`` stops the child
    and is returned as ``feed_error``. With ``timeout`` the group is stopped when it passes
    (``timed_out``). Raises OSError when the program cannot be started.
    """
    timeout = _check_timeout(timeout)
    started = time.monotonic()
    proc = start(argv, cwd=cwd, env=child_env(env_update=env_update),
                 stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
                 stdout=stdout_file if stdout_file is not None else subprocess.PIPE)
    out = BoundedBuffer.of(stdout_limit)
    err = BoundedBuffer.of(stderr_limit)
    more = [(proc.stdout, out.add)] if stdout_file is None else []
    drains = [Drain(proc.stderr, err.add, *more)]
    watchdog = _Watchdog(proc, timeout, kill_grace)
    feed_error = None
    try:
        if feed is not None:
            feed_error = feed_stdin(proc, feed)
        proc.wait()
    except BaseException:
        # Interrupted (SIGTERM from a task timeout, Ctrl-C): do not leave the child running.
        kill_process_group(proc, 0)
        _reap(proc, kill_grace)
        raise
    finally:
        watchdog.cancel()
    if not _join_all(drains, time.monotonic() + AFTER_EXIT_SECONDS):
        kill_process_group(proc, 0)
        _join_all(drains, time.monotonic() + DRAIN_SECONDS)
    return CommandResult(argv, proc.returncode, out.value(), err.value(), time.monotonic() - started,
                         feed_error, watchdog.fired)


# ---------------------------------------------------------------------------------------------
# A child whose output is the caller's input
# ---------------------------------------------------------------------------------------------

class Producer(object):
    """A child whose stdout the caller reads as chunks (``chunks()``), stderr drained and
    bounded, stdin fed from ``feed`` in a thread (or none). ``finish()`` waits and returns
    ``(rc, stderr_text, feed_error)``; ``close()`` stops the group if it still runs. Raises
    OSError when the program cannot be started."""

    def __init__(self, argv, env_update=None, cwd=None, feed=None, stderr_limit=64 * 1024, chunk_size=READ_SIZE):
        self.argv = argv
        self.chunk_size = chunk_size
        self.proc = start(argv, cwd=cwd, env=child_env(env_update=env_update),
                          stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL)
        self._err = BoundedBuffer(0, stderr_limit)
        self._drain = Drain(self.proc.stderr, self._err.add)
        self._feed_error = []
        self._feeder = None
        if feed is not None:
            self._feeder = threading.Thread(target=lambda: self._feed_error.append(feed_stdin(self.proc, feed)),
                                            name='feed')
            self._feeder.daemon = True
            self._feeder.start()

    def chunks(self):
        while True:
            chunk = self.proc.stdout.read1(self.chunk_size)
            if not chunk:
                return
            yield chunk

    def finish(self):
        rc = self.proc.wait()
        if self._feeder is not None:
            self._feeder.join()
        self._drain.join()
        feed_error = self._feed_error[0] if self._feed_error else None
        return rc, self._err.value().decode('utf-8', 'replace'), feed_error

    def close(self):
        if self.proc.poll() is None:
            kill_process_group(self.proc, 0)
            _reap(self.proc, DRAIN_SECONDS)
        if self._feeder is not None:
            self._feeder.join(5)
        self.proc.stdout.close()
