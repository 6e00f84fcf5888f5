"""Unit tests of the PostgreSQL module_utils (_pg_dump_format, _pg_dump_scan, _pg_output,
_pg_errors, _pg_connection, _pg_sql: format sniffing, the plain dump scan, output parsers, error
classification, argv builders) on output captured from the real tools under fixtures/postgres/
(see its README for how each file was made). The command gateway is tested in test_process.py.
PostgreSQL itself is exercised by tests/integration/test_backup_verify.py."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
from pathlib import Path

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_connection as pg_connection
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_dump_format as dump_format
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_dump_scan as dump_scan
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_errors as pg_errors
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_output as pg_output
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_sql as pg_sql

FIXTURES = Path(__file__).parent / "fixtures" / "postgres"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def data(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def scan_bytes(content: bytes, max_line: int | None = None) -> dump_scan.PlainScan:
    scan = dump_scan.PlainScan()
    if max_line is None:
        for line in content.splitlines(keepends=True):
            scan.feed(line)
    else:
        import io
        stream = io.BytesIO(content)
        while True:
            piece = stream.readline(max_line)
            if not piece:
                break
            scan.feed(piece)
    return scan


# --- format sniffing -------------------------------------------------------------------------

@pytest.mark.parametrize("content,expected", [
    (data("pg_dump_plain_tiny.sql")[:512], "plain"),
    (gzip.compress(data("pg_dump_plain_tiny.sql"))[:512], "gzip"),
    (data("pg_dump_custom_tiny.dump")[:512], "custom"),
    (data("pg_dump_tar_tiny.head")[:512], "tar"),
    (b"SELECT 1;\n", "plain"),
])
def test_sniff_format_from_content(content, expected):
    assert dump_format.sniff_format(content) == (expected, None)


@pytest.mark.parametrize("content,fragment", [
    (b"", "empty"),
    (bz2.compress(b"SELECT 1;"), "bzip2-compressed"),
    (lzma.compress(b"SELECT 1;"), "xz-compressed"),
    (b"\x28\xb5\x2f\xfd\x00\x00", "zstd-compressed"),
    (b"PK\x03\x04rest", "zip-compressed"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "not a PostgreSQL dump"),
])
def test_sniff_format_rejects(content, fragment):
    fmt, reason = dump_format.sniff_format(content)
    assert fmt is None
    assert fragment in reason


def test_sniff_gzip_inner():
    assert dump_format.sniff_gzip_inner(data("pg_dump_plain_tiny.sql")[:512]) is None
    assert "gzip-compressed pg_dump custom archive" in dump_format.sniff_gzip_inner(data("pg_dump_custom_tiny.dump")[:512])
    assert "gzip-compressed tar archive" in dump_format.sniff_gzip_inner(data("pg_dump_tar_tiny.head")[:512])


# --- plain dump scan -------------------------------------------------------------------------

def test_scan_complete_pg_dump_has_no_problems():
    scan = scan_bytes(data("pg_dump_plain_tiny.sql"))
    assert scan.is_pg_dump and not scan.is_cluster_dump
    assert scan.copy_blocks == 2
    assert scan.trailer_line is not None
    assert scan.problems() == []


def test_scan_crlf_line_endings_are_fine():
    assert scan_bytes(data("pg_dump_plain_tiny.sql").replace(b"\n", b"\r\n")).problems() == []


def _cut_inside_copy(content: bytes, table: bytes, rows: int) -> bytes:
    lines = content.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(b"COPY " + table))
    return b"".join(lines[:start + 1 + rows])


@pytest.mark.parametrize("rows", [0, 1, 2])
def test_scan_detects_cut_inside_copy(rows):
    content = _cut_inside_copy(data("pg_dump_plain_tiny.sql"), b"public.users", rows)
    problems = scan_bytes(content).problems()
    assert len(problems) == 1
    assert "ends inside the COPY data of public.users" in problems[0]


def test_scan_detects_cut_in_the_middle_of_a_copy_line():
    content = _cut_inside_copy(data("pg_dump_plain_tiny.sql"), b"public.users", 2)[:-4]
    assert "ends inside the COPY data of public.users" in scan_bytes(content).problems()[0]


def test_scan_detects_cut_after_data_before_trailer():
    content = data("pg_dump_plain_tiny.sql")
    cut = content[:content.index(b"ALTER TABLE ONLY public.projects\n    ADD CONSTRAINT")]
    problems = scan_bytes(cut).problems()
    assert len(problems) == 1
    assert "closing line '-- PostgreSQL database dump complete'" in problems[0]


def test_scan_mid_statement_cut_is_detected():
    content = data("pg_dump_plain_tiny.sql")
    cut = content[:content.index(b"CREATE TABLE public.users") + 30]
    assert "truncated" in scan_bytes(cut).problems()[0]


def test_scan_statement_after_trailer_means_not_the_end():
    content = data("pg_dump_plain_tiny.sql") + b"DROP TABLE public.users;\n"
    assert "closing line" in scan_bytes(content).problems()[0]


def test_scan_refuses_connect_from_create_dump():
    scan = scan_bytes(data("pg_dump_plain_create.sql"))
    assert scan.forbidden == (32, "\\connect")
    assert "line 32 holds the psql meta-command \\connect" in scan.problems()[0]


def test_scan_refuses_pg_dumpall():
    scan = scan_bytes(data("pg_dumpall_roles.sql"))
    assert scan.is_cluster_dump
    assert "pg_dumpall cluster dump" in scan.problems()[0]


@pytest.mark.parametrize("line", [b"\\! rm -rf /tmp/x\n", b"\\o /tmp/out\n", b"\\i other.sql\n", b"\\c otherdb\n",
                                  b"\\copy users to '/tmp/x'\n", b"\\setenv PGHOST x\n"])
def test_scan_refuses_dangerous_meta_commands(line):
    scan = scan_bytes(b"SELECT 1;\n" + line + b"SELECT 2;\n")
    assert scan.forbidden is not None and scan.forbidden[0] == 2


def test_scan_backslash_lines_inside_copy_data_are_data():
    content = b"COPY public.t (a) FROM stdin;\n\\\\connect looks like a command\n\\N\n\\.\nSELECT 1;\n"
    scan = scan_bytes(content)
    assert scan.forbidden is None
    assert scan.problems() == []


def test_scan_plain_sql_without_pg_dump_header_needs_no_trailer():
    assert scan_bytes(b"CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n").problems() == []


def test_scan_comments_only_is_no_dump():
    assert "holds no SQL statements" in scan_bytes(b"--\n-- nothing\n\n").problems()[0]


def test_scan_long_lines_in_pieces_count_once():
    long_line = b"INSERT INTO t VALUES ('" + b"x" * 5000 + b"');\n"
    scan = scan_bytes(b"SELECT 1;\n" + long_line + b"\\connect x\n", max_line=1000)
    assert scan.lines == 3
    assert scan.forbidden == (3, "\\connect")


def test_scan_continuation_piece_is_not_a_line_start():
    # A piece that starts with a backslash in the middle of a long line is not a meta-command.
    scan = scan_bytes(b"SELECT '" + b"y" * 999 + b"\\connect x';\n", max_line=1000)
    assert scan.forbidden is None


# --- scan_plain_file -------------------------------------------------------------------------

def test_scan_plain_file_hashes_and_scans(tmp_path):
    path = tmp_path / "b.sql"
    path.write_bytes(data("pg_dump_plain_tiny.sql"))
    digest, scan = dump_scan.scan_plain_file(str(path), compressed=False)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert scan.problems() == []


def test_scan_plain_file_gzip(tmp_path):
    path = tmp_path / "b.sql.gz"
    path.write_bytes(gzip.compress(data("pg_dump_plain_tiny.sql")))
    digest, scan = dump_scan.scan_plain_file(str(path), compressed=True)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert scan.is_pg_dump and scan.problems() == []


def test_scan_plain_file_gzip_multi_member(tmp_path):
    content = data("pg_dump_plain_tiny.sql")
    path = tmp_path / "b.sql.gz"
    path.write_bytes(gzip.compress(content[:1000]) + gzip.compress(content[1000:]))
    digest, scan = dump_scan.scan_plain_file(str(path), compressed=True)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert scan.problems() == []


def test_scan_plain_file_truncated_gzip(tmp_path):
    blob = gzip.compress(data("pg_dump_plain_tiny.sql"))
    path = tmp_path / "b.sql.gz"
    path.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(dump_format.BackupError, match="corrupt or truncated"):
        dump_scan.scan_plain_file(str(path), compressed=True)


def test_scan_plain_file_gzip_crc_error(tmp_path):
    blob = bytearray(gzip.compress(data("pg_dump_plain_tiny.sql")))
    blob[-8] ^= 0xFF  # the CRC32 in the trailer
    path = tmp_path / "b.sql.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(dump_format.BackupError, match="CRC check failed"):
        dump_scan.scan_plain_file(str(path), compressed=True)


def test_scan_plain_file_gzip_holding_custom_archive(tmp_path):
    path = tmp_path / "b.dump.gz"
    path.write_bytes(gzip.compress(data("pg_dump_custom_tiny.dump")))
    with pytest.raises(dump_format.BackupError, match="gzip-compressed pg_dump custom archive"):
        dump_scan.scan_plain_file(str(path), compressed=True)


# --- output parsers --------------------------------------------------------------------------

def test_parse_row_counts():
    assert pg_output.parse_row_counts(data("psql_row_counts.stdout")) == [
        {"name": "audit.Event Log", "rows": 2},
        {"name": "public.projects", "rows": 5000},
        {"name": "public.users", "rows": 3000},
    ]


def test_parse_row_counts_empty_database():
    assert pg_output.parse_row_counts(data("psql_row_counts_empty.stdout")) == []


def test_parse_row_counts_rejects_garbage():
    with pytest.raises(ValueError):
        pg_output.parse_row_counts(b"public\x00users\x00")


def test_parse_server_version():
    assert pg_output.parse_server_version(text("psql_server_version.stdout")) == ("15.20 (Debian 15.20-0+deb12u1)", 150020)
    with pytest.raises(ValueError):
        pg_output.parse_server_version("")


@pytest.mark.parametrize("name,fmt,compression", [
    ("pg_restore_list_custom.stdout", "custom", "-1"),
    ("pg_restore_list_tar.stdout", "tar", "0"),
])
def test_parse_pg_restore_list_header(name, fmt, compression):
    listing = pg_output.parse_pg_restore_list(text(name))
    assert listing["format"] == fmt
    assert listing["dbname"] == "src"
    assert listing["toc_entries"] == 29
    assert listing["compression"] == compression
    assert listing["dump_version"] == "1.14-0"
    assert listing["dumped_from"] == "15.20 (Debian 15.20-0+deb12u1)"
    assert listing["dumped_by"] == "15.20 (Debian 15.20-0+deb12u1)"


def test_parse_pg_restore_list_entries():
    entries = pg_output.parse_pg_restore_list(text("pg_restore_list_custom.stdout"))["entries"]
    assert len(entries) == 25
    by_type = {}
    for entry in entries:
        by_type.setdefault(entry["type"], []).append(entry)
    assert [(e["schema"], e["name"]) for e in by_type["TABLE DATA"]] == [
        ("audit", "Event Log"), ("public", "projects"), ("public", "users")]
    assert by_type["SCHEMA"][0] == {"id": 6, "type": "SCHEMA", "schema": "-", "name": "audit", "owner": "rbtest_admin"}
    assert by_type["SEQUENCE OWNED BY"][0]["name"] == "Event Log_id_seq"
    assert by_type["FK CONSTRAINT"][0]["name"] == "projects projects_owner_id_fkey"
    assert {e["type"] for e in entries} >= {"TABLE", "SEQUENCE", "VIEW", "DEFAULT", "SEQUENCE SET", "CONSTRAINT"}


def test_archive_summary():
    summary = pg_output.archive_summary(pg_output.parse_pg_restore_list(text("pg_restore_list_tiny.stdout")))
    assert summary["format"] == "custom"
    assert summary["dbname"] == "tiny"
    assert summary["table_data_entries"] == 2
    assert summary["dumped_by"].startswith("15.")


# --- expectations ----------------------------------------------------------------------------

TABLES = [{"name": "audit.Event Log", "rows": 2}, {"name": "public.projects", "rows": 5000},
          {"name": "public.users", "rows": 3000}]


def test_qualify():
    assert pg_output.qualify("users") == "public.users"
    assert pg_output.qualify("audit.Event Log") == "audit.Event Log"


def test_expectations_met():
    assert pg_output.check_expectations(TABLES, ["users", "public.projects", "audit.Event Log"],
                                        {"users": 3000, "audit.Event Log": 1}) == []
    assert pg_output.check_expectations(TABLES) == []


def test_expectations_missing_table_and_too_few_rows():
    problems = pg_output.check_expectations(TABLES, ["users", "sessions"], {"users": 3001, "alembic_version": 1})
    assert problems == [
        "expected tables missing from the restored backup: public.sessions",
        "table public.alembic_version (min_rows 1) is missing from the restored backup",
        "table public.users has 3000 rows, fewer than min_rows 3001",
    ]


def test_expectations_table_missing_once_only():
    problems = pg_output.check_expectations(TABLES, ["sessions"], {"sessions": 1})
    assert problems == ["expected tables missing from the restored backup: public.sessions"]


# --- error classification --------------------------------------------------------------------

WHERE = "the PostgreSQL server at 127.0.0.1:47201"


@pytest.mark.parametrize("name,kind,fragments", [
    ("psql_auth_failed.stderr", "auth", ["authentication failed for user rbtest_admin", "check login_user/login_password"]),
    ("pg_restore_auth_failed.stderr", "auth", ["authentication failed for user rbtest_admin"]),
    ("psql_role_missing.stderr", "auth", ["authentication failed for user nosuchrole"]),
    ("psql_no_password.stderr", "no_password", ["requires a password", "set login_password"]),
    ("psql_database_missing.stderr", "database_missing", ["database nosuchdb does not exist", "login_db"]),
    ("psql_connection_refused.stderr", "refused", ["is not accepting connections (connection refused)"]),
    ("psql_conn_refused_other.stderr", "refused", ["not accepting connections"]),
    ("psql_localhost_refused.stderr", "refused", ["not accepting connections"]),
    ("pg_restore_connection_refused.stderr", "refused", ["not accepting connections"]),
    ("psql_socket_missing.stderr", "socket", ["no server socket"]),
    ("psql_unknown_host.stderr", "unknown_host", ["check login_host"]),
    ("psql_createdb_denied.stderr", "createdb_denied", ["may not create databases", "CREATEDB"]),
    ("compose_service_not_running.stderr", "service_not_running", ["compose service postgres is not running",
                                                                   "docker compose up -d postgres"]),
    ("compose_no_such_service.stderr", "service_not_running", ["compose service nosuch is not running"]),
    ("compose_no_config.stderr", "service_not_running", ["not running"]),
    ("compose_cp_not_running.stderr", "service_not_running", ["not running"]),
    ("compose_missing_file.stderr", "compose_file", ["check project_dir and compose_files"]),
    ("compose_exec_not_found.stdout", "client_missing", ["no such program", "nosuchprog"]),
    ("pg_restore_list_truncated_toc.stderr", "archive_corrupt", ["truncated or corrupt", "end of file"]),
    ("pg_restore_list_truncated_tar.stderr", "archive_corrupt", ["truncated or corrupt"]),
    ("pg_restore_list_garbage.stderr", "archive_corrupt", ["valid archive"]),
    ("pg_restore_truncated.stderr", "archive_corrupt", ["end of file"]),
    ("pg_restore_truncated_j2.stderr", "archive_corrupt", ["end of file"]),
    ("pg_restore_truncated_stdin.stderr", "archive_corrupt", ["end of file"]),
    ("pg_restore_list_bad_version.stderr", "archive_version", ["older than the pg_dump", "99.14"]),
    ("psql_restore_sql_error.stderr", "sql_error", ["SQL error at line 8262 of the dump",
                                                    'relation "no_such_table_xyz" does not exist',
                                                    "LINE 1: SELECT * FROM no_such_table_xyz;"]),
    ("psql_restore_missing_role.stderr", "missing_role_in_dump", ["role ghost_role", "--no-owner --no-privileges"]),
    ("psql_restore_not_member.stderr", "owner_not_allowed", ["role rbtest_admin", "rbtest_admin may not",
                                                             "--no-owner --no-privileges"]),
    ("pg_restore_sql_error.stderr", "sql_error", ['schema "audit" already exists', "Command was: CREATE SCHEMA audit;"]),
    ("pg_restore_truncated_tar.stderr", "sql_error", ['COPY failed for table "projects"', "CONTEXT:"]),
    ("psql_restore_invalid_meta.stderr", "unknown", ["invalid command \\bogus_meta"]),
])
def test_classify_captured_errors(name, kind, fragments):
    got_kind, msg = pg_errors.classify_error(text(name), WHERE, "rbtest_admin")
    assert got_kind == kind, msg
    for fragment in fragments:
        assert fragment in msg


def test_classify_connection_errors_name_the_server():
    assert WHERE in pg_errors.classify_error(text("psql_connection_refused.stderr"), WHERE, "u")[1]
    assert WHERE in pg_errors.classify_error(text("psql_auth_failed.stderr"), WHERE, "u")[1]


def test_classify_compose_auth_points_at_db_user():
    msg = pg_errors.classify_error(text("psql_auth_failed.stderr"), "the compose service postgres", "taylordash",
                                   user_option="db_user")[1]
    assert "check db_user/login_password" in msg


def test_classify_restrict_from_newer_pg_dump():
    # psql before 15.14 prints its usual "invalid command" error for pg_dump's new \restrict line.
    stderr = text("psql_restore_invalid_meta.stderr").replace("\\bogus_meta", "\\restrict")
    kind, msg = pg_errors.classify_error(stderr, WHERE, "u")
    assert kind == "newer_dump"
    assert "newer pg_dump" in msg


def test_classify_empty_stderr():
    assert pg_errors.classify_error("", WHERE, "u", rc=3) == ("unknown", "command failed with exit code 3 and no error output")


def test_error_excerpt_keeps_context_lines():
    excerpt = pg_errors.error_excerpt(text("psql_restore_sql_error.stderr"))
    assert excerpt.startswith("psql:<stdin>:8262: ERROR:")
    assert "LINE 1:" in excerpt


# --- argv builders ---------------------------------------------------------------------------

def test_direct_connection_argv_and_env():
    conn = pg_connection.DirectConnection("/usr/bin/psql", "/usr/bin/pg_restore", "127.0.0.1", 5433, "rollback",
                                          password="s3cret", connect_timeout=7)
    argv = conn.psql_argv("postgres", pg_connection.psql_query_args("SELECT 1"))
    assert argv == ["/usr/bin/psql", "-X", "-h", "127.0.0.1", "-p", "5433", "-U", "rollback", "-d", "postgres",
                    "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1"]
    env = conn.env("C.UTF-8")
    assert env["PGPASSWORD"] == "s3cret"
    assert env["PGCONNECT_TIMEOUT"] == "7"
    assert env["LC_ALL"] == "C.UTF-8"
    assert conn.where == "the PostgreSQL server at 127.0.0.1:5433"
    assert conn.cwd is None
    restore = conn.pg_restore_argv(pg_connection.pg_restore_args("custom", 3, source="/b/x.dump"), dbname="scratch")
    assert restore[:11] == ["/usr/bin/pg_restore", "-h", "127.0.0.1", "-p", "5433", "-U", "rollback", "-d",
                            "scratch", "-w", "--exit-on-error"]
    assert restore[-3:] == ["-j", "3", "/b/x.dump"]
    assert all("s3cret" not in a for a in argv + restore)


def test_direct_connection_unix_socket_and_no_password():
    conn = pg_connection.DirectConnection("psql", "pg_restore", None, 5432, "postgres")
    assert conn.psql_argv("db", [])[:7] == ["psql", "-X", "-p", "5432", "-U", "postgres", "-d"]
    assert "PGPASSWORD" not in conn.env()
    assert "local socket" in conn.where
    assert "/run/pg" in pg_connection.DirectConnection("psql", None, "/run/pg", 5432, "u").where


def test_compose_connection_argv():
    conn = pg_connection.ComposeConnection("/usr/bin/docker", "/opt/taylordash", "postgres", "taylordash",
                                           compose_files=["docker-compose.yml", "docker-compose.prod.yml"],
                                           project_name="taylordash", password="s3cret", connect_timeout=5)
    # The one compose argument builder (_compose.compose_args): project name, then the files,
    # made absolute against the project directory (compose reads -f relative to its cwd).
    base = ["/usr/bin/docker", "compose", "--project-directory", "/opt/taylordash", "--project-name", "taylordash",
            "--file", "/opt/taylordash/docker-compose.yml", "--file", "/opt/taylordash/docker-compose.prod.yml", "exec", "-T", "-e", "LC_ALL=C",
            "-e", "PGCONNECT_TIMEOUT=5", "-e", "PGCLIENTENCODING=UTF8", "-e", "PGPASSWORD", "postgres"]
    assert conn.psql_argv("scratch", pg_connection.psql_restore_args()) == base + [
        "psql", "-X", "-U", "taylordash", "-d", "scratch", "-w",
        "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"]
    # stdin restore: no source, so no -j even when jobs > 1
    assert conn.pg_restore_argv(pg_connection.pg_restore_args("custom", 4), dbname="scratch") == base + [
        "pg_restore", "-U", "taylordash", "-d", "scratch", "-w", "--exit-on-error", "--no-owner",
        "--no-privileges", "--no-tablespaces", "--no-publications", "--no-subscriptions"]
    assert conn.pg_restore_argv(["-l"]) == base + ["pg_restore", "-l"]
    assert conn.exec_argv(["mktemp", "-d", "/tmp/rollback_verify_XXXXXXXX"])[-4:] == [
        "postgres", "mktemp", "-d", "/tmp/rollback_verify_XXXXXXXX"]
    assert conn.env()["PGPASSWORD"] == "s3cret"
    assert conn.cwd == "/opt/taylordash"
    assert conn.where == "the compose service postgres (project directory /opt/taylordash)"
    everything = conn.psql_argv("x", []) + conn.pg_restore_argv([], dbname="x")
    assert all("s3cret" not in a for a in everything)


class _Ran(object):
    def __init__(self, rc, stdout_text):
        self.rc, self.stdout_text = rc, stdout_text


CONTAINER = "ae7640a3b3c156cad6bdf263775e1a6a7d7e29ed1ee97394efe05f11cf11566b"


def test_pinned_container_runs_docker_exec():
    conn = pg_connection.ComposeConnection("docker", "/srv/app", "db", "app", project_name="tdx", password="s3cret")
    asked = []

    def run(argv):
        asked.append(argv)
        return _Ran(0, CONTAINER + "\n")

    assert conn.pin_container(run) == CONTAINER
    assert asked == [["docker", "compose", "--project-directory", "/srv/app", "--project-name", "tdx",
                      "ps", "-q", "--status", "running", "db"]]
    assert conn.psql_argv("postgres", ["-c", "select 1"]) == [
        "docker", "exec", "-i", "-e", "LC_ALL=C", "-e", "PGCONNECT_TIMEOUT=10", "-e", "PGCLIENTENCODING=UTF8",
        "-e", "PGPASSWORD", CONTAINER, "psql", "-X", "-U", "app", "-d", "postgres", "-w", "-c", "select 1"]
    assert all("s3cret" not in a for a in conn.psql_argv("x", []))


@pytest.mark.parametrize("rc, stdout", [
    (0, ""),                                   # the service is not running
    (0, CONTAINER + "\n" + CONTAINER[::-1]),  # scaled: which one would be ambiguous
    (1, ""),                                   # compose failed: no such service, no compose file
    (0, "WARN[0000] something\n"),            # not a container ID
])
def test_nothing_pinned_falls_back_to_compose_exec(rc, stdout):
    conn = pg_connection.ComposeConnection("docker", "/srv/app", "db", "app")
    assert conn.pin_container(lambda argv: _Ran(rc, stdout)) is None
    assert conn.psql_argv("postgres", [])[:6] == ["docker", "compose", "--project-directory", "/srv/app", "exec", "-T"]


def test_gone_container_is_named():
    kind, msg = pg_errors.classify_error("Error response from daemon: No such container: ae7640a3b3c1\n",
                                         "the compose service db", "app", "db_user")
    assert kind == "service_not_running" and "ae7640a3b3c1" in msg and "run the task again" in msg


def test_compose_connection_minimal():
    conn = pg_connection.ComposeConnection("docker", "/srv/app", "db", "app")
    assert conn.psql_argv("postgres", []) == [
        "docker", "compose", "--project-directory", "/srv/app", "exec", "-T", "-e", "LC_ALL=C",
        "-e", "PGCONNECT_TIMEOUT=10", "-e", "PGCLIENTENCODING=UTF8", "db",
        "psql", "-X", "-U", "app", "-d", "postgres", "-w"]
    assert "PGPASSWORD" not in conn.env()


@pytest.mark.parametrize("fmt,jobs,source,tail", [
    ("custom", 2, "/b.dump", ["-j", "2", "/b.dump"]),
    ("custom", 1, "/b.dump", ["--no-subscriptions", "/b.dump"]),
    ("tar", 4, "/b.tar", ["--no-subscriptions", "/b.tar"]),
    ("custom", 4, None, ["--no-publications", "--no-subscriptions"]),
])
def test_pg_restore_args_jobs(fmt, jobs, source, tail):
    args = pg_connection.pg_restore_args(fmt, jobs, source)
    assert args[:4] == ["--exit-on-error", "--no-owner", "--no-privileges", "--no-tablespaces"]
    assert args[-len(tail):] == tail
    assert "--single-transaction" not in args


def test_psql_query_args_nul_separated():
    assert pg_connection.psql_query_args("SELECT 1", nul_separated=True) == [
        "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-z", "-0", "-c", "SELECT 1"]


def test_scratch_names_and_sql():
    name = pg_sql.new_scratch_name("3F9C2A1B-7d4e")
    assert name == "rollback_verify_3f9c2a1b7d4e"
    assert pg_sql.create_database_sql(name) == 'CREATE DATABASE "rollback_verify_3f9c2a1b7d4e" TEMPLATE template0'
    assert pg_sql.drop_database_sql(name, 150020) == 'DROP DATABASE IF EXISTS "rollback_verify_3f9c2a1b7d4e" WITH (FORCE)'
    assert pg_sql.drop_database_sql(name, 120005) == 'DROP DATABASE IF EXISTS "rollback_verify_3f9c2a1b7d4e"'
    assert pg_sql.quote_ident('we"ird') == '"we""ird"'


def test_client_bin_dirs_newest_first(monkeypatch):
    found = {"/usr/lib/postgresql/*/bin": ["/usr/lib/postgresql/9/bin", "/usr/lib/postgresql/15/bin",
                                           "/usr/lib/postgresql/13/bin"],
             "/usr/pgsql-*/bin": ["/usr/pgsql-16/bin"]}
    monkeypatch.setattr(pg_connection.glob, "glob", lambda pattern: list(found.get(pattern, [])))
    assert pg_connection.client_bin_dirs() == ["/usr/pgsql-16/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/13/bin",
                                               "/usr/lib/postgresql/9/bin", "/usr/local/pgsql/bin"]
