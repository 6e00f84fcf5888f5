# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What kind of PostgreSQL dump a file holds, judged from its bytes, and whether a pg_dump
script is complete: format sniffing (plain, gzip, custom, tar, and the compressions that are
refused), pg_dump's header and closing line, the checks of a freshly written dump.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class BackupError(Exception):
    """A problem with the backup file itself (found before any server is contacted)."""


FORMAT_PLAIN = 'plain'
FORMAT_GZIP = 'gzip'
FORMAT_CUSTOM = 'custom'
FORMAT_TAR = 'tar'

PG_DUMP_HEADER = b'-- PostgreSQL database dump'
PG_DUMP_TRAILER = b'-- PostgreSQL database dump complete'
PG_DUMPALL_HEADER = b'-- PostgreSQL database cluster dump'

_OTHER_COMPRESSIONS = (
    (b'BZh', 'bzip2'),
    (b'\xfd7zXZ\x00', 'xz'),
    (b'\x28\xb5\x2f\xfd', 'zstd'),
    (b'\x04\x22\x4d\x18', 'lz4'),
    (b'PK\x03\x04', 'zip'),
)


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


def pg_dump_tail_problem(head, tail):
    """For a plain SQL stream: None when it is not a pg_dump script (no header) or when it ends
    with pg_dump's closing line (followed only by blank lines, comments and \\unrestrict);
    otherwise why it looks cut short."""
    if PG_DUMP_HEADER not in head[:512]:
        return None
    for line in reversed(tail.split(b'\n')):
        line = line.strip(b'\r \t')
        if not line or line.startswith(b'\\unrestrict'):
            continue
        if line.startswith(PG_DUMP_TRAILER):
            return None
        if line.startswith(b'--'):
            continue
        return ("the dump does not end with pg_dump's closing line '%s': it is truncated, or something was "
                "appended to it" % PG_DUMP_TRAILER.decode())
    return "the dump does not end with pg_dump's closing line '%s': it is truncated" % PG_DUMP_TRAILER.decode()


def dump_file_problem(fmt, head, tail, size):
    """Checks of a freshly written dump (pg_dump can exit 0 without a usable dump)."""
    if size == 0:
        return 'pg_dump wrote nothing'
    if fmt == FORMAT_CUSTOM:
        return None if head.startswith(b'PGDMP') else 'the file does not start with the custom archive header PGDMP'
    if PG_DUMP_HEADER not in head[:512]:
        return "the file does not start with pg_dump's header line"
    return pg_dump_tail_problem(head, tail)
