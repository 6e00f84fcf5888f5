"""PlainScan.feed_block (the block scanner that skips COPY data at C speed) must reach exactly the
verdict of feeding the same bytes line by line, in pieces of at most MAX_LINE bytes, whatever the
block boundaries. Checked on captured pg_dump output and on edge cases, with the block size
varied from 1 byte upwards."""
from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_dump_scan as dump_scan

FIXTURES = Path(__file__).parent / "fixtures" / "postgres"
PLAIN = (FIXTURES / "pg_dump_plain_tiny.sql").read_bytes()
CREATE = (FIXTURES / "pg_dump_plain_create.sql").read_bytes()
DUMPALL = (FIXTURES / "pg_dumpall_roles.sql").read_bytes()
COPY_AT = PLAIN.index(b"COPY ")

CASES = {
    "complete": PLAIN,
    "crlf": PLAIN.replace(b"\n", b"\r\n"),
    "cut_in_copy": PLAIN[:PLAIN.index(b"\\.", COPY_AT) - 3],
    "cut_after_copy_marker": PLAIN[:PLAIN.index(b"\\.", COPY_AT) + 3],
    "cut_mid_statement": PLAIN[:COPY_AT - 40],
    "statement_after_trailer": PLAIN + b"SELECT 1;\n",
    "no_final_newline": PLAIN.rstrip(b"\n"),
    "create": CREATE,
    "dumpall": DUMPALL,
    "empty_copy": b"-- PostgreSQL database dump\nCOPY public.t (a) FROM stdin;\n\\.\nSELECT 1;\n"
                  b"-- PostgreSQL database dump complete\n",
    "backslash_data": b"COPY public.t (a) FROM stdin;\n\\.x\n\\\\.\n\\connect y\n\\.\r\n\\connect z\n",
    "marker_with_trailing_text": b"COPY public.t (a) FROM stdin;\n\\. x\n\\.\nSELECT 2;\n",
    "long_lines": b"SELECT 1;\nINSERT INTO t VALUES ('" + b"x" * 300 + b"');\n\\connect x\n"
                  b"COPY public.t (a) FROM stdin;\n" + b"y" * 500 + b"\n\\." + b"\r" * 3 + b"\n\\! ls\n",
    "long_copy_line_starting_with_marker": b"COPY public.t (a) FROM stdin;\n\\." + b"z" * 400 + b"\n\\.\nSELECT 3;\n",
    "comments_only": b"--\n-- nothing\n\n",
    "no_newline_at_all": b"x" * 1000,
}


def by_lines(content: bytes, max_line: int) -> dump_scan.PlainScan:
    scan = dump_scan.PlainScan()
    stream = io.BytesIO(content)
    while True:
        piece = stream.readline(max_line)
        if not piece:
            return scan
        scan.feed(piece)


def by_blocks(content: bytes, sizes) -> dump_scan.PlainScan:
    scan = dump_scan.PlainScan()
    pos = 0
    for size in sizes:
        if pos >= len(content):
            break
        scan.feed_block(content[pos:pos + size])
        pos += size
    if pos < len(content):
        scan.feed_block(content[pos:])
    scan.finish()
    return scan


def verdict(scan: dump_scan.PlainScan) -> tuple:
    return (scan.lines, scan.is_pg_dump, scan.is_cluster_dump, scan.trailer_line, scan.copy_table, scan.copy_line,
            scan.forbidden, scan.copy_blocks, scan.statement_lines, scan.problems(), scan.table_rows)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("max_line", [64, 1024 * 1024])
def test_blocks_give_the_verdict_of_lines(monkeypatch, name, max_line):
    monkeypatch.setattr(dump_scan, "MAX_LINE", max_line)
    content = CASES[name]
    expected = verdict(by_lines(content, max_line))
    rng = random.Random(name)
    for sizes in ([len(content) + 1], [1] * len(content), [7] * len(content), [4096] * 8,
                  [rng.randint(1, 200) for _i in range(len(content))]):
        assert verdict(by_blocks(content, sizes)) == expected, (name, sizes[:3])


def test_copy_data_is_counted_not_parsed():
    rows = b"".join(b"%d\tname %d\n" % (i, i) for i in range(10000))
    content = b"-- PostgreSQL database dump\nCOPY public.t (a, b) FROM stdin;\n" + rows + \
        b"\\.\n\n-- PostgreSQL database dump complete\n"
    scan = by_blocks(content, [65536] * 10)
    assert scan.lines == 10005 and scan.copy_blocks == 1 and scan.problems() == []


def test_carry_stays_bounded_inside_huge_copy_lines(monkeypatch):
    monkeypatch.setattr(dump_scan, "MAX_LINE", 1024)
    scan = dump_scan.PlainScan()
    scan.feed_block(b"COPY public.t (a) FROM stdin;\n")
    for _i in range(100):
        scan.feed_block(b"v" * 10000)  # one 1 MB line, in blocks without a newline
        assert len(scan._carry) <= 1024
    scan.feed_block(b"\n\\.\nSELECT 1;\n")
    scan.finish()
    assert scan.copy_table is None and scan.lines == 4
