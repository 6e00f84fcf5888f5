"""module_utils/_dump_reader: the one decompressing reader (moved here from test_postgres.py with
the code it tests: iter_file/iter_gunzip became file_chunks/gunzip_chunks)."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._dump_reader import (
    GzipStreamError,
    file_chunks,
    gunzip_chunks,
)

FIXTURES = Path(__file__).parent / "fixtures" / "postgres"


def data(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_iter_gunzip_and_iter_file(tmp_path):
    content = data("pg_dump_plain_tiny.sql")
    path = tmp_path / "b.sql.gz"
    path.write_bytes(gzip.compress(content))
    assert b"".join(gunzip_chunks(file_chunks(str(path), chunk_size=100))) == content
    assert b"".join(file_chunks(str(path), chunk_size=7)) == path.read_bytes()


def test_file_chunks_hash_the_file_as_stored(tmp_path):
    path = tmp_path / "b.sql.gz"
    path.write_bytes(gzip.compress(b"x" * 5000))
    digest = hashlib.sha256()
    assert b"".join(gunzip_chunks(file_chunks(str(path), digest, chunk_size=64))) == b"x" * 5000
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_members_and_zero_padding():
    blob = gzip.compress(b"one\n") + gzip.compress(b"two\n") + b"\x00" * 100
    chunks = [blob[i:i + 7] for i in range(0, len(blob), 7)]
    assert b"".join(gunzip_chunks(chunks)) == b"one\ntwo\n"


# mtime=0: gzip.compress stamps the current second into the header, and the
# blobs are part of the test ids, which every xdist worker must collect alike.
@pytest.mark.parametrize("blob,fragment", [
    pytest.param(gzip.compress(b"abc" * 1000, mtime=0)[:-12], "ends inside a member", id="truncated"),
    pytest.param(gzip.compress(b"abc", mtime=0)[:-8] + b"\x00\x00\x00\x00" + gzip.compress(b"abc", mtime=0)[-4:],
                 "CRC check failed", id="bad-crc"),
    pytest.param(gzip.compress(b"abc", mtime=0) + b"trailing garbage", "not valid gzip data", id="trailing-garbage"),
    pytest.param(b"plain text", "not valid gzip data", id="not-gzip"),
])
def test_bad_streams_raise(blob, fragment):
    with pytest.raises(GzipStreamError, match=fragment):
        b"".join(gunzip_chunks([blob]))
    assert issubclass(GzipStreamError, EOFError)
