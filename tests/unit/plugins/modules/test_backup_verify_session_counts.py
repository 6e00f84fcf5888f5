"""backup_verify reads the row counts of a plain-dump verification from the output of the
restore session itself: after the dump it sends a marker row and the row-count query (psql -A -t
-z -0). These tests feed parse_session_counts what such a session prints: the dump's own SELECT
results first (set_config, setval), then the marker and the counts captured from the real query."""
from __future__ import annotations

from pathlib import Path

from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_verify as pg_verify
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_output as pg_output
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_sql as pg_sql

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures" / "postgres"
COUNTS = (FIXTURES / "psql_row_counts.stdout").read_bytes()
DUMP_OUTPUT = b"\x00" + b"3001\x00" + b"5001\x00" + b"2\x00"  # set_config(''), then three setval results
MARKER = pg_sql.COUNT_MARKER + b"\x00"


def test_counts_after_the_dump_output():
    assert pg_verify.parse_session_counts(DUMP_OUTPUT + MARKER + COUNTS) == pg_output.parse_row_counts(COUNTS)


def test_counts_when_the_dump_printed_nothing():
    assert pg_verify.parse_session_counts(MARKER + COUNTS) == pg_output.parse_row_counts(COUNTS)


def test_an_empty_database_has_no_tables():
    assert pg_verify.parse_session_counts(DUMP_OUTPUT + MARKER) == []


def test_the_last_marker_counts():
    # A table name could hold the marker text; the counts follow the last marker row.
    assert pg_verify.parse_session_counts(MARKER + b"public\x00x\x007\x00" + MARKER + COUNTS) == pg_output.parse_row_counts(COUNTS)


def test_output_without_the_marker_or_cut_short_means_count_separately():
    assert pg_verify.parse_session_counts(DUMP_OUTPUT) is None
    assert pg_verify.parse_session_counts(DUMP_OUTPUT + MARKER + COUNTS[:-5]) is None  # a field short
    # what the bounded capture keeps of a long output: the marker was in the part not kept
    assert pg_verify.parse_session_counts(b"x" * 100 + b"\n[... 999 bytes not kept ...]\n" + COUNTS) is None


def test_the_trailer_sends_the_marker_then_the_count_query():
    assert pg_sql.COUNT_TRAILER.startswith(b"\nSELECT '" + pg_sql.COUNT_MARKER + b"';\n")
    assert pg_sql.COUNT_TRAILER.endswith(pg_sql.ROW_COUNT_QUERY.encode() + b";\n")
