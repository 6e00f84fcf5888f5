# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The streaming integrity scan of a plain (or gzip-compressed) SQL dump, before it is restored.

:class:`PlainScan` finds what psql itself would not report - a pg_dump file cut short,
pg_dumpall output, psql meta-commands that would act outside the scratch database - with
bounded memory; :func:`scan_plain_file` runs it in one pass that also hashes the file and
checks the gzip stream.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import re

from ansible_collections.taylordash.rollback.plugins.module_utils._dump_reader import GzipStreamError, file_chunks, gunzip_chunks
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_dump_format import (
    PG_DUMP_HEADER, PG_DUMP_TRAILER, PG_DUMPALL_HEADER, BackupError, sniff_gzip_inner)

# A plain dump line longer than this is scanned in pieces; only its first piece counts as a
# line start, so memory stays bounded even for a file without newlines.
MAX_LINE = 1024 * 1024

# psql meta-commands a verification must never run: they would leave the scratch database
# (\connect), run shell commands (\!), read or write files of the host, or pull in other scripts.
FORBIDDEN_META = frozenset((
    'c', 'connect', '!', 'o', 'out', 'w', 'write', 'g', 'gx', 'gexec', 's', 'i', 'include', 'ir',
    'include_relative', 'cd', 'setenv', 'copy', 'lo_export', 'lo_import', 'password', 'getenv',
))
_META_RE = re.compile(br'^\\([A-Za-z_]+|!)')
_COPY_RE = re.compile(br'^COPY\s+(.+?)\s*(?:\(.*\))?\s+FROM\s+stdin\b', re.IGNORECASE)


class PlainScan(object):
    """Streaming checks over the lines of a plain SQL dump (bytes, as read from the file).

    Finds what psql itself would not report: a pg_dump file cut short (psql happily commits
    a COPY that ends at EOF, so a truncated dump restores "successfully" with rows missing),
    pg_dumpall output and meta-commands such as \\connect that would leave the scratch database.
    Memory is bounded: only counters and a few line numbers are kept.
    """

    def __init__(self):
        self.lines = 0
        self.is_pg_dump = False
        self.is_cluster_dump = False
        self.trailer_line = None
        self.copy_table = None
        self.copy_line = None
        self.forbidden = None
        self.copy_blocks = 0
        # Data rows per table, as named by its COPY statement (public.users): what a restore of
        # this dump would load, counted without restoring it.
        self.table_rows = {}
        self.statement_lines = 0
        self._at_line_start = True
        self._in_header = True
        self._carry = b''

    def feed(self, piece):
        """Feed one line (or a piece of a long line; a piece not ending with a newline makes
        the next piece a continuation, not a line start)."""
        at_start = self._at_line_start
        self._at_line_start = piece.endswith(b'\n')
        if not at_start:
            return
        self.lines += 1
        line = piece.rstrip(b'\r\n')
        if self.copy_table is not None:
            if line == b'\\.':
                self.copy_table = None
                self.copy_line = None
            else:
                self.table_rows[self.copy_table] += 1
            return
        if self._in_header:
            if line.startswith(PG_DUMPALL_HEADER):
                self.is_cluster_dump = True
            elif line.startswith(PG_DUMP_HEADER):
                self.is_pg_dump = True
            if self.lines >= 5:
                self._in_header = False
        if line.startswith(b'--') or not line.strip():
            if line.startswith(PG_DUMP_TRAILER):
                self.trailer_line = self.lines
            return
        if line.startswith(b'\\'):
            match = _META_RE.match(line)
            cmd = match.group(1).decode('ascii') if match else ''
            if cmd in FORBIDDEN_META and self.forbidden is None:
                self.forbidden = (self.lines, '\\' + cmd)
            # \restrict / \unrestrict surround a pg_dump script (since 17.6/16.10/15.14/...).
            if cmd != 'unrestrict':
                self.trailer_line = None
            return
        # Anything else after the trailer means the trailer was not the end.
        self.trailer_line = None
        self.statement_lines += 1
        match = _COPY_RE.match(line)
        if match and line.rstrip().endswith(b';'):
            self.copy_table = match.group(1).decode('utf-8', 'replace')
            self.copy_line = self.lines
            self.copy_blocks += 1
            self.table_rows[self.copy_table] = self.table_rows.get(self.copy_table, 0)

    def feed_block(self, block):
        """Feed a block of bytes of any size (lines may span blocks); call finish() after the
        last one. The same result as feeding the lines (pieces of at most MAX_LINE bytes) one
        by one, but COPY data - nearly all of a big dump - is skipped at C speed: only its end
        marker is looked for, and its lines are counted."""
        buf = self._carry + block if self._carry else block
        self._carry = b''
        pos, end = 0, len(buf)
        while pos < end:
            if not self._at_line_start:
                # The rest of a line longer than MAX_LINE: not a line start, nothing to see.
                newline = buf.find(b'\n', pos)
                if newline == -1:
                    return
                pos = newline + 1
                self._at_line_start = True
                continue
            if self.copy_table is not None:
                marker = _find_copy_end(buf, pos)
                stop = marker if marker is not None else buf.rfind(b'\n', pos) + 1
                if stop > pos:
                    rows = buf.count(b'\n', pos, stop)
                    self.lines += rows
                    self.table_rows[self.copy_table] += rows
                    pos = stop
                if marker is None:
                    if end - pos < MAX_LINE and buf.startswith(b'\\.'[:end - pos], pos):
                        break  # may still become the end marker: keep it for the next block
                    # A data line that cannot be the end marker: counted, the rest skipped.
                    self.lines += 1
                    self.table_rows[self.copy_table] += 1
                    self._at_line_start = False
                    return
            newline = buf.find(b'\n', pos, pos + MAX_LINE)
            if newline != -1:
                self.feed(buf[pos:newline + 1])
                pos = newline + 1
            elif end - pos >= MAX_LINE:
                self.feed(buf[pos:pos + MAX_LINE])
                pos += MAX_LINE
            else:
                break
        self._carry = buf[pos:]

    def finish(self):
        """End of input: the last line, when it has no newline."""
        if self._carry:
            carry, self._carry = self._carry, b''
            self.feed(carry)

    def problems(self):
        """Why the scanned file must not be restored, or [] when it looks complete."""
        out = []
        if self.is_cluster_dump:
            out.append('the file is a pg_dumpall cluster dump (it creates roles and databases and '
                       'connects to them); only single-database dumps made by pg_dump can be verified '
                       'in a scratch database')
        if self.forbidden is not None:
            out.append('line %d holds the psql meta-command %s, which would act outside the scratch '
                       'database (or outside PostgreSQL); a pg_dump made with --create or a hand-edited '
                       'script cannot be verified safely' % self.forbidden)
        if self.copy_table is not None:
            out.append('the file ends inside the COPY data of %s that starts at line %d: the dump is '
                       'truncated' % (self.copy_table, self.copy_line))
        elif self.statement_lines == 0:
            out.append('the file holds no SQL statements (%d lines of comments or blanks): nothing to restore'
                       % self.lines)
        elif self.is_pg_dump and self.trailer_line is None:
            out.append("the file ends without pg_dump's closing line '%s' (after %d lines): the dump is "
                       "truncated or was cut short while being written" % (PG_DUMP_TRAILER.decode(), self.lines))
        return out


def _find_copy_end(buf, pos):
    """Offset of the first COPY end marker line (backslash-dot, then only carriage returns) that
    starts at or after the line start pos and is complete in buf, or None."""
    start = pos
    while True:
        if not buf.startswith(b'\\.', start):
            found = buf.find(b'\n\\.', start)
            if found == -1:
                return None
            start = found + 1
        newline = buf.find(b'\n', start)
        if newline == -1:
            return None
        if not buf[start + 2:newline].strip(b'\r'):
            return start
        start = newline + 1


def scan_plain_file(path, compressed):
    """One streaming pass over a plain (optionally gzip-compressed) dump: sha256 of the file as
    stored, full gzip decompression (CRC and length checked), and the PlainScan checks. Raises
    BackupError for a corrupt gzip stream or one that holds no plain SQL; returns (sha256, PlainScan)."""
    digest = hashlib.sha256()
    scan = PlainScan()
    blocks = file_chunks(path, digest)
    if not compressed:
        # Straight from the file: every block hashed and scanned, no copy in between.
        for block in blocks:
            scan.feed_block(block)
        scan.finish()
        return digest.hexdigest(), scan
    head = bytearray()
    pending = []
    try:
        for block in gunzip_chunks(blocks):
            if pending is not None:
                # What the stream holds is judged on its first 512 bytes, before any scanning.
                pending.append(block)
                head += block[:512 - len(head)]
                if len(head) < 512:
                    continue
                _check_inner(bytes(head), pending, scan)
                pending = None
                continue
            scan.feed_block(block)
    except GzipStreamError as exc:
        raise BackupError('the gzip stream is corrupt or truncated (%s); the backup cannot be restored' % exc)
    if pending is not None:
        _check_inner(bytes(head), pending, scan)
    scan.finish()
    return digest.hexdigest(), scan


def _check_inner(head, blocks, scan):
    problem = sniff_gzip_inner(head)
    if problem:
        raise BackupError(problem)
    for block in blocks:
        scan.feed_block(block)
