"""The safety dump verified while written (backup_restore verify_rows): the data rows of each COPY
block counted by PlainScan, the session's snapshot and live counts parsed, and the comparison."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_dump_scan as dump_scan
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_snapshot_dump as snap

PLAIN = (Path(__file__).parent / "fixtures" / "postgres" / "pg_dump_plain_tiny.sql").read_bytes()


def rows_of(content: bytes, block: int) -> dict:
    scan = dump_scan.PlainScan()
    for pos in range(0, len(content), block):
        scan.feed_block(content[pos:pos + block])
    scan.finish()
    return scan.table_rows


def expected_rows(content: bytes) -> dict:
    """Rows per COPY block, counted naively line by line."""
    rows, table = {}, None
    for line in content.split(b"\n"):
        if table is not None:
            if line == b"\\.":
                table = None
            else:
                rows[table] += 1
        elif line.startswith(b"COPY ") and line.endswith(b"FROM stdin;"):
            table = line.split()[1].decode()
            rows.setdefault(table, 0)
    return rows


@pytest.mark.parametrize("block", [1, 7, 64, 4096, 1 << 20])
def test_rows_per_table_whatever_the_blocks(block):
    expected = expected_rows(PLAIN)
    assert expected and sum(expected.values()) > 0
    assert rows_of(PLAIN, block) == expected


def test_a_dropped_row_is_seen():
    copy_at = PLAIN.index(b"COPY public.projects")
    first_row = PLAIN.index(b"\n", copy_at) + 1
    cut = PLAIN[:first_row] + PLAIN[PLAIN.index(b"\n", first_row) + 1:]
    live = expected_rows(PLAIN)
    problems = snap.rows_problems(live, rows_of(cut, 4096))
    assert problems == ["public.projects has %d rows in the database and %d in the dump"
                        % (live["public.projects"], live["public.projects"] - 1)]


def test_rows_problems():
    assert snap.rows_problems({"public.a": 2, "public.empty": 0}, {"public.a": 2}) == []
    assert snap.rows_problems({"public.a": 2}, {}) == ["public.a has 2 rows in the database and no data in the dump"]
    assert snap.rows_problems({"public.a": 2}, {"public.a": 3, "ext.config": 1}) == [
        "public.a has 2 rows in the database and 3 in the dump"]


def test_session_output():
    text = "00000004-00000029-1\n{\"public.users\" : 1, \"public.projects\" : 3}\n%s\n" % snap.SNAPSHOT_MARKER
    assert snap.parse_session_output(text) == ("00000004-00000029-1", {"public.users": 1, "public.projects": 3})
    with pytest.raises(ValueError):
        snap.parse_session_output("ERROR: permission denied\n")


def test_session_sql_is_one_read_only_repeatable_read_transaction():
    sql = snap.snapshot_session_sql().decode()
    assert sql.startswith("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT pg_catalog.pg_export_snapshot();")
    assert sql.rstrip().endswith("SELECT '%s';" % snap.SNAPSHOT_MARKER)
