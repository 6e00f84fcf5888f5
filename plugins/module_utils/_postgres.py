# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PostgreSQL helpers for taylordash.rollback (private: the API may change without notice).

Two halves, kept apart so the first can be unit-tested on output captured from the real tools:

* pure logic: backup format sniffing, the streaming scan of plain SQL dumps, parsing of
  ``pg_restore -l`` and of the row-count query, classification of client error messages,
  and the argv builders for the two ways to reach a server (direct connection, or
  ``docker compose exec`` into the database service);
* ``run_command_streaming``: the one gateway that runs psql/pg_restore/docker, feeding stdin
  from a generator with bounded memory and keeping bounded stdout/stderr.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import glob
import gzip
import hashlib
import io
import os
import re
import subprocess
import threading
import time
import zlib

from ansible.module_utils.common.process import get_bin_path

FORMAT_PLAIN = 'plain'
FORMAT_GZIP = 'gzip'
FORMAT_CUSTOM = 'custom'
FORMAT_TAR = 'tar'

SCRATCH_PREFIX = 'rollback_verify_'
CHUNK_SIZE = 1024 * 1024
# A plain dump line longer than this is scanned in pieces; only its first piece counts as a
# line start, so memory stays bounded even for a file without newlines.
MAX_LINE = 1024 * 1024

_OTHER_COMPRESSIONS = (
    (b'BZh', 'bzip2'),
    (b'\xfd7zXZ\x00', 'xz'),
    (b'\x28\xb5\x2f\xfd', 'zstd'),
    (b'\x04\x22\x4d\x18', 'lz4'),
    (b'PK\x03\x04', 'zip'),
)


class BackupError(Exception):
    """A problem with the backup file itself (found before any server is contacted)."""


# ---------------------------------------------------------------------------------------------
# Format sniffing
# ---------------------------------------------------------------------------------------------

def sniff_format(head):
    """Identify a dump from its first bytes (at least 512 when the file is that long).

    Returns ``(format, None)`` with format one of plain/gzip/custom/tar, or ``(None, reason)``.
    Content decides, never the file name: a ``.sql`` file that holds gzip data is gzip.
    """
    if not head:
        return None, 'the file is empty'
    if head.startswith(b'PGDMP'):
        return FORMAT_CUSTOM, None
    if head.startswith(b'\x1f\x8b'):
        return FORMAT_GZIP, None
    if len(head) >= 262 and head[257:262] == b'ustar':
        return FORMAT_TAR, None
    for magic, name in _OTHER_COMPRESSIONS:
        if head.startswith(magic):
            return None, ('the file is %s-compressed; only gzip-compressed plain SQL is read directly: '
                          'decompress it first (or re-compress it with gzip)' % name)
    if b'\x00' in head:
        return None, ('the file is binary but neither a pg_dump custom archive (PGDMP), a tar archive '
                      'nor gzip data: not a PostgreSQL dump')
    return FORMAT_PLAIN, None


def sniff_gzip_inner(inner_head):
    """What is inside a gzip stream: only plain SQL is supported there."""
    if inner_head.startswith(b'PGDMP'):
        return ('the file is a gzip-compressed pg_dump custom archive; custom archives are compressed '
                'already: gunzip it and verify the .dump file itself')
    if len(inner_head) >= 262 and inner_head[257:262] == b'ustar':
        return ('the file is a gzip-compressed tar archive; gunzip it and verify the .tar file itself')
    if b'\x00' in inner_head:
        return 'the gzip stream holds binary data, not plain SQL: not a PostgreSQL dump'
    return None


# ---------------------------------------------------------------------------------------------
# Plain SQL scan
# ---------------------------------------------------------------------------------------------

PG_DUMP_HEADER = b'-- PostgreSQL database dump'
PG_DUMP_TRAILER = b'-- PostgreSQL database dump complete'
PG_DUMPALL_HEADER = b'-- PostgreSQL database cluster dump'

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
                    self.lines += buf.count(b'\n', pos, stop)
                    pos = stop
                if marker is None:
                    if end - pos < MAX_LINE and buf.startswith(b'\\.'[:end - pos], pos):
                        break  # may still become the end marker: keep it for the next block
                    # A data line that cannot be the end marker: counted, the rest skipped.
                    self.lines += 1
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


class _HashingReader(io.RawIOBase):
    """Raw stream over a file that hashes every byte read through it, so one pass gives both
    the sha256 of the file as stored and its (decompressed) lines."""

    def __init__(self, fileobj, digest):
        super(_HashingReader, self).__init__()
        self._f = fileobj
        self._digest = digest

    def readable(self):
        return True

    def readinto(self, buf):
        data = self._f.read(len(buf))
        self._digest.update(data)
        buf[:len(data)] = data
        return len(data)

    def drain(self):
        """Hash what the reader above left unread (e.g. bytes after the last gzip member)."""
        while True:
            data = self._f.read(CHUNK_SIZE)
            if not data:
                return
            self._digest.update(data)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        while True:
            data = fh.read(CHUNK_SIZE)
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()


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


def _scan_lines(stream, scan):
    while True:
        block = stream.read(CHUNK_SIZE)
        if not block:
            scan.finish()
            return
        scan.feed_block(block)


def scan_plain_file(path, compressed):
    """One streaming pass over a plain (optionally gzip-compressed) dump: sha256 of the file as
    stored, full gzip decompression (CRC and length checked by the gzip module), and the
    PlainScan checks. Raises BackupError for a corrupt gzip stream; returns (sha256, PlainScan)."""
    digest = hashlib.sha256()
    scan = PlainScan()
    with open(path, 'rb') as raw:
        if not compressed:
            # Straight from the file: every block hashed and scanned, no copy in between.
            for block in iter(lambda: raw.read(CHUNK_SIZE), b''):
                digest.update(block)
                scan.feed_block(block)
            scan.finish()
            return digest.hexdigest(), scan
        hashing = _HashingReader(raw, digest)
        try:
            with gzip.GzipFile(fileobj=io.BufferedReader(hashing, CHUNK_SIZE), mode='rb') as gz:
                problem = sniff_gzip_inner(gz.peek(512)[:512])
                if problem:
                    raise BackupError(problem)
                _scan_lines(gz, scan)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise BackupError('the gzip stream is corrupt or truncated (%s); the backup cannot be restored'
                              % (exc or type(exc).__name__))
        hashing.drain()
    return digest.hexdigest(), scan


def iter_file(path, chunk_size=CHUNK_SIZE):
    """The file as stored, in chunks."""
    with open(path, 'rb') as fh:
        while True:
            data = fh.read(chunk_size)
            if not data:
                return
            yield data


def iter_gunzip(path, chunk_size=CHUNK_SIZE):
    """The decompressed content of a gzip file, in chunks (bounded memory)."""
    with gzip.open(path, 'rb') as fh:
        while True:
            data = fh.read(chunk_size)
            if not data:
                return
            yield data


# ---------------------------------------------------------------------------------------------
# Output parsers
# ---------------------------------------------------------------------------------------------

# Tables of the current database with an exact row count each, in one statement: query_to_xml
# runs a generated count(*) per table server-side, so names need no client-side quoting.
# Partitions are counted through their parent only.
ROW_COUNT_QUERY = (
    "SELECT n.nspname, c.relname, "
    "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
    "n.nspname, c.relname), false, true, '')))[1]::text "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' "
    "ORDER BY 1, 2"
)

SERVER_VERSION_QUERY = "SELECT current_setting('server_version_num') || ' ' || current_setting('server_version')"


def parse_row_counts(stdout):
    """Parse ``psql -A -t -z -0`` output of ROW_COUNT_QUERY (NUL-separated fields and records,
    so any table name survives) into ``[{'name': 'schema.table', 'rows': N}]``."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode('utf-8', 'replace')
    fields = stdout.split('\x00')
    if fields and fields[-1].strip() == '':
        fields = fields[:-1]
    if len(fields) % 3 != 0:
        raise ValueError('unexpected row-count output: %d fields' % len(fields))
    tables = []
    for i in range(0, len(fields), 3):
        schema, table, rows = fields[i], fields[i + 1], fields[i + 2].strip()
        tables.append({'name': '%s.%s' % (schema, table), 'rows': int(rows)})
    return tables


def parse_server_version(stdout):
    """Parse SERVER_VERSION_QUERY output: returns (version text, version number)."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode('utf-8', 'replace')
    line = stdout.strip().splitlines()[0] if stdout.strip() else ''
    num, dummy, text = line.partition(' ')
    if not num.isdigit():
        raise ValueError('unexpected server version output: %r' % stdout[:200])
    return text.strip(), int(num)


# Multi-word object types printed by pg_restore -l, longest first.
_TOC_TYPES = sorted((
    'TABLE DATA', 'SEQUENCE SET', 'SEQUENCE OWNED BY', 'FK CONSTRAINT', 'DEFAULT ACL',
    'MATERIALIZED VIEW', 'MATERIALIZED VIEW DATA', 'TABLE ATTACH', 'INDEX ATTACH',
    'BLOB METADATA', 'BLOBS', 'LARGE OBJECT', 'FOREIGN TABLE', 'FOREIGN DATA WRAPPER',
    'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH DICTIONARY', 'TEXT SEARCH PARSER',
    'TEXT SEARCH TEMPLATE', 'USER MAPPING', 'OPERATOR CLASS', 'OPERATOR FAMILY',
    'EVENT TRIGGER', 'PUBLICATION TABLE', 'PUBLICATION TABLES IN SCHEMA', 'ROW SECURITY',
    'DATABASE PROPERTIES', 'SHELL TYPE', 'ACCESS METHOD', 'SERVER', 'STATISTICS',
), key=len, reverse=True)
_TOC_LINE_RE = re.compile(r'^(\d+);\s+(\d+)\s+(\d+)\s+(.*)$')
_TOC_HEADER_RE = re.compile(r'^;\s+([A-Za-z][A-Za-z_ ]*?):\s*(.*)$')


def parse_pg_restore_list(text):
    """Parse ``pg_restore -l`` output: header fields and TOC entries.

    Entry lines are ``ID; TABLEOID OID TYPE SCHEMA NAME OWNER``; TYPE may hold spaces (matched
    against the known multi-word types), OWNER is the last word, NAME what is between.
    """
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    header = {}
    entries = []
    for line in text.splitlines():
        if line.startswith(';'):
            match = _TOC_HEADER_RE.match(line)
            if match:
                header[match.group(1).strip().lower()] = match.group(2).strip()
            continue
        match = _TOC_LINE_RE.match(line)
        if not match:
            continue
        rest = match.group(4)
        etype = None
        for candidate in _TOC_TYPES:
            if rest.startswith(candidate + ' '):
                etype = candidate
                break
        if etype is None:
            etype, dummy, rest = rest.partition(' ')
        else:
            rest = rest[len(etype) + 1:]
        schema, dummy, rest = rest.partition(' ')
        name, dummy, owner = rest.rpartition(' ')
        if not name:
            name, owner = owner, ''
        entries.append({'id': int(match.group(1)), 'type': etype, 'schema': schema, 'name': name,
                        'owner': owner})
    toc = header.get('toc entries', '')
    return {
        'format': header.get('format', '').lower(),
        'dbname': header.get('dbname'),
        'toc_entries': int(toc) if toc.isdigit() else len(entries),
        'compression': header.get('compression'),
        'dump_version': header.get('dump version'),
        'dumped_from': header.get('dumped from database version'),
        'dumped_by': header.get('dumped by pg_dump version'),
        'entries': entries,
    }


def archive_summary(listing):
    """The part of a parsed ``pg_restore -l`` returned to the user."""
    return {
        'format': listing['format'],
        'dbname': listing['dbname'],
        'toc_entries': listing['toc_entries'],
        'table_data_entries': sum(1 for e in listing['entries'] if e['type'] == 'TABLE DATA'),
        'dumped_from': listing['dumped_from'],
        'dumped_by': listing['dumped_by'],
    }


# ---------------------------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------------------------

def qualify(name):
    """``users`` means ``public.users``; ``audit.events`` stays as it is."""
    return name if '.' in name else 'public.' + name


def check_expectations(tables, expect_tables=None, min_rows=None):
    """Compare restored tables with expectations; returns a list of problems ([] = fine)."""
    counts = dict((t['name'], t['rows']) for t in tables)
    problems = []
    missing = [qualify(n) for n in (expect_tables or []) if qualify(n) not in counts]
    if missing:
        problems.append('expected tables missing from the restored backup: %s' % ', '.join(missing))
    for name in sorted(min_rows or {}):
        want = min_rows[name]
        qname = qualify(name)
        if qname not in counts:
            if qname not in missing:
                problems.append('table %s (min_rows %d) is missing from the restored backup' % (qname, want))
        elif counts[qname] < want:
            problems.append('table %s has %d rows, fewer than min_rows %d' % (qname, counts[qname], want))
    return problems


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


# ---------------------------------------------------------------------------------------------
# Error classification
# ---------------------------------------------------------------------------------------------

_SQL_ERROR_RE = re.compile(r'^psql:(?P<src>[^:]*):(?P<line>\d+): (?P<level>ERROR|FATAL):\s+(?P<msg>.*)$', re.M)
_RESTORE_ERROR_RE = re.compile(r'^pg_restore: error: (?P<msg>.*)$', re.M)


def error_excerpt(stderr, max_lines=6):
    """The first error of a psql/pg_restore run with its LINE/DETAIL/HINT/CONTEXT lines."""
    lines = (stderr or '').splitlines()
    for i, line in enumerate(lines):
        if 'ERROR:' in line or 'FATAL:' in line or line.startswith(('pg_restore: error:', 'psql: error:')):
            out = [line.strip()]
            for follow in lines[i + 1:]:
                stripped = follow.strip()
                if not stripped:
                    break
                if stripped.startswith(('LINE ', 'DETAIL:', 'HINT:', 'CONTEXT:', 'Command was:', '^', 'Is the server')):
                    out.append(stripped)
                else:
                    break
                if len(out) >= max_lines:
                    break
            return ' | '.join(out)
    tail = [line.strip() for line in lines if line.strip()]
    return ' | '.join(tail[-max_lines:])


def classify_error(stderr, where, user, user_option='login_user', rc=None):
    """Turn the stderr of psql/pg_restore/docker compose into ``(kind, message)``.

    ``where`` names the server ("the PostgreSQL server at 127.0.0.1:5432" or "the compose
    service postgres"), ``user`` the role used, ``user_option`` the option that sets it.
    Kinds: auth, no_password, role_missing, database_missing, refused, socket, unknown_host,
    timeout, createdb_denied, service_not_running, no_such_service, compose_file, docker,
    client_missing, archive_corrupt, archive_version, newer_dump, missing_role_in_dump,
    owner_not_allowed, sql_error, unknown.
    """
    text = stderr or ''
    excerpt = error_excerpt(text)
    match = re.search(r'password authentication failed for user "([^"]*)"', text)
    if match:
        return 'auth', ('authentication failed for user %s at %s: check %s/login_password (%s)'
                        % (match.group(1), where, user_option, excerpt))
    match = re.search(r'(?:Peer|Ident|SCRAM) authentication failed for user "([^"]*)"', text, re.I)
    if match:
        return 'auth', ('authentication failed for user %s at %s: check %s and the server\'s pg_hba.conf (%s)'
                        % (match.group(1), where, user_option, excerpt))
    if 'no password supplied' in text:
        return 'no_password', ('%s requires a password for user %s and none was given: set login_password (%s)'
                               % (where, user, excerpt))
    connect_failed = 'connection to server' in text and 'failed:' in text
    match = re.search(r'FATAL:\s+role "([^"]*)" does not exist', text)
    if match:
        return 'role_missing', ('role %s does not exist at %s: check %s (%s)' % (match.group(1), where, user_option, excerpt))
    match = re.search(r'FATAL:\s+database "([^"]*)" does not exist', text)
    if match:
        return 'database_missing', ('database %s does not exist at %s: check login_db (%s)' % (match.group(1), where, excerpt))
    if connect_failed and 'Connection refused' in text:
        return 'refused', ('%s is not accepting connections (connection refused): is PostgreSQL running '
                           'there and listening on that address? (%s)' % (where, excerpt))
    if connect_failed and 'on socket' in text and 'No such file or directory' in text:
        return 'socket', ('%s is not accepting connections (no server socket): is PostgreSQL running? (%s)' % (where, excerpt))
    if 'could not translate host name' in text:
        return 'unknown_host', ('cannot resolve the host of %s: check login_host (%s)' % (where, excerpt))
    if 'timeout expired' in text:
        return 'timeout', ('%s did not answer within connect_timeout (%s)' % (where, excerpt))
    if connect_failed:
        return 'connect', ('cannot connect to %s (%s)' % (where, excerpt))
    if 'permission denied to create database' in text:
        return 'createdb_denied', ('user %s may not create databases at %s; the verification restores into '
                                   'a scratch database, so it needs a role with CREATEDB (%s)' % (user, where, excerpt))
    match = re.search(r'service "([^"]*)" is not running', text) or re.search(r'no container found for service "([^"]*)"', text)
    if match:
        return 'service_not_running', ('the compose service %s is not running: start it (docker compose up -d %s) '
                                       'or check project_dir/project_name/compose_files (%s)'
                                       % (match.group(1), match.group(1), excerpt))
    match = re.search(r'No such container: (\S+)', text)
    if match:
        return 'service_not_running', ('the database container %s is gone (recreated or removed while the '
                                       'module ran): check the compose project and run the task again (%s)'
                                       % (match.group(1), excerpt))
    match = re.search(r'no such service: (\S+)', text)
    if match:
        return 'no_such_service', ('the compose project has no service %s: check db_service (%s)' % (match.group(1), excerpt))
    if 'no configuration file provided' in text or re.search(r'open \S+: no such file or directory', text):
        return 'compose_file', ('the compose file was not found: check project_dir and compose_files (%s)' % excerpt)
    if 'Cannot connect to the Docker daemon' in text or 'is not a docker command' in text or "unknown command: docker compose" in text:
        return 'docker', ('docker compose is not usable on this host (%s)' % excerpt)
    if 'executable file not found' in text:
        return 'client_missing', ('%s has no such program (%s)' % (where, excerpt))
    if re.search(r'could not read from input file: end of file|unexpected end of file|could not find block ID|'
                 r'possibly corrupt archive|did not find magic string|does not appear to be a valid archive|'
                 r'corrupt|could not uncompress data|invalid (?:compressed )?data', text, re.I):
        return 'archive_corrupt', ('the archive is truncated or corrupt (%s)' % excerpt)
    match = re.search(r'unsupported version \(([^)]*)\) in file header', text)
    if match:
        return 'archive_version', ('the pg_restore used is older than the pg_dump that wrote the archive '
                                   '(archive version %s); use a newer pg_restore (%s)' % (match.group(1), excerpt))
    match = re.search(r'invalid command \\(restrict|unrestrict)', text)
    if match:
        return 'newer_dump', ('the dump was written by a newer pg_dump (it uses \\%s) than the psql that '
                              'restores it understands; use psql from the same or a newer minor release (%s)'
                              % (match.group(1), excerpt))
    match = re.search(r'ERROR:\s+role "([^"]*)" does not exist', text)
    if match:
        return 'missing_role_in_dump', ('the dump refers to role %s, which does not exist on the server '
                                        '(ALTER ... OWNER TO / GRANT in a plain SQL dump): create the role '
                                        'or dump with --no-owner --no-privileges (%s)' % (match.group(1), excerpt))
    match = re.search(r'ERROR:\s+must be member of role "([^"]*)"', text)
    if match:
        return 'owner_not_allowed', ('the dump gives objects to role %s, which %s may not do (ALTER ... OWNER TO '
                                     'in a plain SQL dump): verify as a superuser or a member of %s, or dump with '
                                     '--no-owner --no-privileges (%s)' % (match.group(1), user, match.group(1), excerpt))
    match = _SQL_ERROR_RE.search(text)
    if match:
        return 'sql_error', ('SQL error at line %s of the dump: %s' % (match.group('line'), excerpt))
    if 'ERROR:' in text or 'FATAL:' in text:
        return 'sql_error', ('SQL error: %s' % excerpt)
    return 'unknown', excerpt or ('command failed with exit code %s and no error output' % rc)


# ---------------------------------------------------------------------------------------------
# Connections: argv builders (pure)
# ---------------------------------------------------------------------------------------------

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
        argv = [self.docker, 'compose', '--project-directory', self.project_dir]
        for name in self.compose_files:
            argv += ['-f', name]
        if self.project_name:
            argv += ['-p', self.project_name]
        return argv + list(args)

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


def new_scratch_name(token):
    return SCRATCH_PREFIX + re.sub(r'[^a-z0-9_]', '', token.lower())


def create_database_sql(name):
    return 'CREATE DATABASE %s TEMPLATE template0' % quote_ident(name)


def drop_database_sql(name, server_version_num):
    # WITH (FORCE) (PostgreSQL 13+) ends sessions a killed restore may have left behind.
    force = ' WITH (FORCE)' if server_version_num and server_version_num >= 130000 else ''
    return 'DROP DATABASE IF EXISTS %s%s' % (quote_ident(name), force)


# ---------------------------------------------------------------------------------------------
# The command gateway (runs processes; not unit-tested, exercised by the integration tests)
# ---------------------------------------------------------------------------------------------

class _Capture(object):
    """Collects a stream with bounded memory: the first ``head`` bytes and the last ``tail``."""

    def __init__(self, head, tail):
        self.head_limit = head
        self.tail_limit = tail
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

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


def _pump(stream, capture):
    while True:
        data = stream.read1(65536) if hasattr(stream, 'read1') else stream.read(65536)
        if not data:
            break
        capture.add(data)
    stream.close()


class CommandResult(object):
    def __init__(self, argv, rc, stdout, stderr, duration, feed_error=None):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.feed_error = feed_error

    @property
    def stderr_text(self):
        return self.stderr.decode('utf-8', 'replace')

    @property
    def stdout_text(self):
        return self.stdout.decode('utf-8', 'replace')


def run_command_streaming(argv, env_update=None, cwd=None, feed=None, stdout_limit=None, stderr_limit=256 * 1024):
    """Run argv (never a shell), optionally writing the chunks of ``feed`` to its stdin.

    stdout and stderr are drained by threads into bounded buffers (``stdout_limit`` None keeps
    all of stdout, for queries; a restore passes a limit). If the child exits early (psql stops
    at the first error), the broken pipe ends the feeding quietly: the exit code tells. An
    exception raised by ``feed`` kills the child and is returned as ``feed_error``.
    """
    env = dict(os.environ)
    env.update(env_update or {})
    started = time.time()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, close_fds=True)
    if stdout_limit is None:
        out = _Capture(1 << 62, None)
    else:
        out = _Capture(stdout_limit // 2, stdout_limit // 2)
    err = _Capture(stderr_limit // 2, stderr_limit // 2)
    threads = [threading.Thread(target=_pump, args=(proc.stdout, out)),
               threading.Thread(target=_pump, args=(proc.stderr, err))]
    for thread in threads:
        thread.daemon = True
        thread.start()
    feed_error = None
    try:
        if feed is not None:
            try:
                for chunk in feed:
                    proc.stdin.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as exc:  # noqa: B902 - any reader error must stop the child
                feed_error = exc
                proc.kill()
            finally:
                try:
                    proc.stdin.close()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
        rc = proc.wait()
    except BaseException:
        # Interrupted (SIGTERM from a task timeout, Ctrl-C): do not leave the child running.
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    for thread in threads:
        thread.join()
    return CommandResult(argv, rc, out.value(), err.value(), time.time() - started, feed_error)


# ---------------------------------------------------------------------------------------------
# The two ways to reach PostgreSQL, as module options (documented once, in the doc fragment
# taylordash.rollback.postgres_connection) and as the connection object built from them.
# ---------------------------------------------------------------------------------------------

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
        docker = params['docker_cli'] or find_docker(module)
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


def find_docker(module):
    try:
        return get_bin_path('docker')
    except ValueError:
        module.fail_json(msg='Cannot find the docker client on PATH; install it or set docker_cli.', changed=False)
