# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading a dump file as a stream of chunks: as stored (hashed on the way) or gzip-decompressed.

One pass over a multi-GB dump gives its sha256 (of the file as stored), its decompressed
content and the gzip checks (every member, its CRC and length), with bounded memory. The
integrity scan of backup_verify, its restore into a scratch database and the restore stream of
backup_restore all read files through here; the sha256 of a whole file at once is
``_files.sha256_file``.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import zlib

from ansible_collections.taylordash.rollback.plugins.module_utils._files import CHUNK_SIZE

# zlib's words for a gzip trailer that does not match the data, and what they mean.
_ZLIB_MEANING = (
    ('incorrect data check', 'CRC check failed: the data does not match its checksum'),
    ('incorrect length check', 'length check failed: the data does not have its recorded size'),
)


class GzipStreamError(EOFError):
    """The gzip stream is truncated or corrupt."""


def file_chunks(path, digest=None, chunk_size=CHUNK_SIZE):
    """The file as stored, in chunks; each chunk is added to ``digest`` (a hashlib object)
    when given, so the digest is complete once the generator is exhausted. Raises OSError."""
    with open(path, 'rb') as handle:
        while True:
            data = handle.read(chunk_size)
            if not data:
                return
            if digest is not None:
                digest.update(data)
            yield data


def gunzip_chunks(chunks):
    """Inflate gzip data given as chunks of raw bytes, member by member (concatenated members
    are legal, zero padding after the last one is tolerated as gzip(1) does). Yields the
    decompressed data; raises GzipStreamError for a stream that ends inside a member, a CRC or
    length mismatch, or bytes that are not gzip data."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for raw in chunks:
        data = raw
        while data:
            if inflater is None:
                if not data.strip(b'\x00'):
                    break
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = inflater.decompress(data)
            except zlib.error as exc:
                raise GzipStreamError(_explain(exc))
            if out:
                yield out
            if inflater.eof:
                data = inflater.unused_data
                inflater = None
            else:
                data = b''
    if inflater is not None:
        raise GzipStreamError('the gzip stream ends inside a member: the file is truncated')


def _explain(exc):
    text = str(exc)
    for words, meaning in _ZLIB_MEANING:
        if words in text:
            return '%s (%s)' % (meaning, text)
    return 'the data is not valid gzip data (%s)' % text
