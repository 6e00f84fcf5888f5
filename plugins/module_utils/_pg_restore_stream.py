# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The bytes psql reads during a restore: the prelude, the dump as SQL (from a plain file, a gzip
file or pg_restore's output), then the epilogue - the latter only when all of the dump arrived
intact, so that the commit guard rolls back any stream that ends early. Also where a psql error
line falls in that stream.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib

from ansible_collections.taylordash.rollback.plugins.module_utils._dump_reader import file_chunks, gunzip_chunks
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_dump_format import (
    FORMAT_GZIP, FORMAT_PLAIN, pg_dump_tail_problem)

# The end of the dump kept to check pg_dump's closing line.
TAIL_KEEP = 64 * 1024


def stream_line_to_dump_line(stream_line, prelude_lines, dump_lines):
    """Where a psql error at line N of the stream is: ('prelude', n), ('dump', n) or ('check', n)."""
    if stream_line <= prelude_lines:
        return 'prelude', stream_line
    if dump_lines is None or stream_line <= prelude_lines + dump_lines:
        return 'dump', stream_line - prelude_lines
    return 'check', stream_line - prelude_lines - dump_lines


class RestoreStream(object):
    """The bytes psql reads: prelude, dump (as SQL), epilogue. Never raises: any problem with the
    source (or a stop request) ends the stream early without the epilogue, which makes the
    commit guard roll the transaction back."""

    def __init__(self, prelude, epilogue, expect_sha256=None):
        self.prelude = prelude
        self.epilogue = epilogue
        self.expect_sha256 = expect_sha256.lower() if expect_sha256 else None
        self.sha256 = None
        self.failure = None
        self.failure_result = None
        self.complete = False
        self.stop_requested = False
        self.dump_lines = 0
        self.head = b''
        self.tail = bytearray()

    def _note(self, chunk):
        if len(self.head) < 512:
            self.head += chunk[:512 - len(self.head)]
        self.tail += chunk
        if len(self.tail) > TAIL_KEEP:
            del self.tail[:len(self.tail) - TAIL_KEEP]
        self.dump_lines += chunk.count(b'\n')

    def generate(self, source, fmt, finish=None):
        """source yields SQL chunks; finish() returns None or (message, result) once the
        source is exhausted (pg_restore's exit status)."""
        yield self.prelude
        try:
            for chunk in source:
                if self.stop_requested:
                    self.failure = 'the module was stopped (SIGTERM) while the dump was streaming'
                    return
                if chunk:
                    self._note(chunk)
                    yield chunk
            if finish is not None:
                problem = finish()
                if problem is not None:
                    self.failure, self.failure_result = problem
                    return
        except (IOError, OSError, EOFError) as exc:  # GzipStreamError is an EOFError
            self.failure = 'reading the dump failed: %s' % exc
            return
        if fmt in (FORMAT_PLAIN, FORMAT_GZIP):
            problem = pg_dump_tail_problem(self.head, bytes(self.tail))
            if problem:
                self.failure = problem
                return
        if self.expect_sha256 and self.sha256 and self.sha256 != self.expect_sha256:
            self.failure = ('the file changed since it was verified: its sha256 is %s, expected %s'
                            % (self.sha256, self.expect_sha256))
            return
        if self.stop_requested:
            self.failure = 'the module was stopped (SIGTERM) while the dump was streaming'
            return
        self.complete = True
        yield self.epilogue

    # -- sources ---------------------------------------------------------------------------
    def plain_source(self, path):
        digest = hashlib.sha256()
        yield from file_chunks(path, digest)
        self.sha256 = digest.hexdigest()

    def gzip_source(self, path):
        """Raw bytes hashed, then inflated member by member; a stream that ends inside a
        member is corrupt (GzipStreamError, an EOFError)."""
        digest = hashlib.sha256()
        yield from gunzip_chunks(file_chunks(path, digest))
        self.sha256 = digest.hexdigest()
