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


@pytest.mark.parametrize("blob,fragment", [
    (gzip.compress(b"abc" * 1000)[:-12], "ends inside a member"),
    (gzip.compress(b"abc")[:-8] + b"\x00\x00\x00\x00" + gzip.compress(b"abc")[-4:], "CRC check failed"),
    (gzip.compress(b"abc") + b"trailing garbage", "not valid gzip data"),
    (b"plain text", "not valid gzip data"),
])
def test_bad_streams_raise(blob, fragment):
    with pytest.raises(GzipStreamError, match=fragment):
        b"".join(gunzip_chunks([blob]))
    assert issubclass(GzipStreamError, EOFError)
