"""Unit tests of module_utils/_docker_engine: which socket the docker CLI would use (environment
and config.json), the rows of /images/json (answers captured from a real engine 20.10 under
fixtures/engine/), and the calls over a unix socket, answered here by a stand-in that replays
those captured answers. The real engine is exercised by tests/integration/test_image_retag.py (its last section)."""
from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils import _docker_cli as dc
from ansible_collections.taylordash.rollback.plugins.module_utils import _docker_engine as de

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
ID_LATEST = "sha256:d53be349d9c26e111f6a2e5c2a5e096ea9b20ef2d0551768e8f6013c5ecf4912"
ID_PREVIOUS = "sha256:725e27029cd74b7ad89712d030188ec7ff1e545fe9fc545c3e4b6dc028ea43e2"


def answer(name: str):
    return json.loads((FIXTURES / name).read_text())


# --- which socket ----------------------------------------------------------------------------

@pytest.fixture
def sock_path(tmp_path):
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    yield str(path)
    server.close()


def env(tmp_path, **values):
    """An environment whose CLI config is in tmp_path (no config.json unless written)."""
    return dict({"DOCKER_CONFIG": str(tmp_path / "cfg")}, **values)


def test_docker_host_unix_socket_is_used(tmp_path, sock_path):
    assert de.engine_socket(env(tmp_path, DOCKER_HOST="unix://" + sock_path)) == sock_path


@pytest.mark.parametrize("host", ["tcp://127.0.0.1:2375", "ssh://ops@db1", "npipe:////./pipe/docker_engine"])
def test_docker_host_not_a_unix_socket_leaves_it_to_the_cli(tmp_path, host):
    assert de.engine_socket(env(tmp_path, DOCKER_HOST=host)) is None


def test_a_path_that_is_not_a_socket_leaves_it_to_the_cli(tmp_path):
    plain = tmp_path / "not-a-socket"
    plain.write_text("")
    assert de.engine_socket(env(tmp_path, DOCKER_HOST="unix://" + str(plain))) is None
    assert de.engine_socket(env(tmp_path, DOCKER_HOST="unix://" + str(tmp_path / "missing"))) is None


@pytest.mark.parametrize("context, used", [("", True), ("default", True), ("rootless", False)])
def test_docker_context_variable(tmp_path, sock_path, context, used):
    found = de.engine_socket(env(tmp_path, DOCKER_HOST="unix://" + sock_path, DOCKER_CONTEXT=context))
    assert found == (sock_path if used else None)


@pytest.mark.parametrize("config, used", [
    (None, True),                                   # no config.json: the CLI's default host
    ('{"auths": {}}', True),                        # no current context
    ('{"currentContext": "default"}', True),
    ('{"currentContext": "remote"}', False),        # the CLI goes where the context says
    ("{not json", False),                           # unreadable: the CLI decides
    ("[]", False),
])
def test_current_context_of_the_cli_config(tmp_path, monkeypatch, sock_path, config, used):
    monkeypatch.setattr(de, "DEFAULT_SOCKET", sock_path)
    if config is not None:
        (tmp_path / "cfg").mkdir()
        (tmp_path / "cfg" / "config.json").write_text(config)
    assert de.engine_socket(env(tmp_path)) == (sock_path if used else None)


def test_docker_host_wins_over_the_config_context(tmp_path, sock_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text('{"currentContext": "remote"}')
    assert de.engine_socket(env(tmp_path, DOCKER_HOST="unix://" + sock_path)) == sock_path


@pytest.mark.parametrize("value", ["0", "false", "off", "No"])
def test_switched_off(tmp_path, sock_path, value):
    assert de.engine_socket(env(tmp_path, DOCKER_HOST="unix://" + sock_path, TAYLORDASH_DOCKER_API=value)) is None


# --- answers as rows -------------------------------------------------------------------------

@pytest.mark.parametrize("reference, parts", [
    ("tdkrcap:latest", ("tdkrcap", "latest")),
    ("tdkrcap", ("tdkrcap", None)),
    ("localhost:5000/team/tdkrcap:v1", ("localhost:5000/team/tdkrcap", "v1")),
    ("localhost:5000/team/tdkrcap", ("localhost:5000/team/tdkrcap", None)),
])
def test_split_reference(reference, parts):
    assert de.split_reference(reference) == parts


def test_image_rows_as_docker_image_ls_gives_them():
    rows = de.image_rows(answer("images_json_repo.json"), "tdkrcap")
    assert sorted((r["tag"], r["id"]) for r in rows) == [
        ("latest", ID_LATEST), ("previous", ID_PREVIOUS), ("v1.4.2", ID_PREVIOUS)]
    assert all(r["repository"] == "tdkrcap" for r in rows)
    # CreatedAt as the CLI prints it
    assert {r["created_at"] for r in rows if r["tag"] == "latest"} == {"2026-11-26 01:46:38 +0000 UTC"}


def test_image_rows_keep_only_the_exact_repository():
    assert de.image_rows(answer("images_json_repo.json"), "tdkrcap2") == []
    rows = de.image_rows(answer("images_json_registry.json"), "localhost:5000/team/tdkrcap")
    assert [(r["repository"], r["tag"]) for r in rows] == [("localhost:5000/team/tdkrcap", "v1")]


def test_image_rows_drop_untagged_images():
    untagged = [{"Id": ID_LATEST, "RepoTags": ["<none>:<none>"], "Created": 1}, {"Id": ID_PREVIOUS, "RepoTags": None}]
    assert de.image_rows(untagged, "<none>") == []
    assert de.image_rows(untagged, "tdkrcap") == []


def test_cli_created_at_of_garbage_is_none():
    assert de.cli_created_at(None) is None
    assert de.cli_created_at("soon") is None


# --- calls over a socket ---------------------------------------------------------------------

class Replay:
    """A unix-socket HTTP server that answers each request with ``reply(method, path)`` ->
    (status, body bytes) or None (close without an answer), and records the requests."""

    def __init__(self, path, reply):
        self.path, self.reply, self.requests = path, reply, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn = self.server.accept()[0]
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                method, path = data.split(b" ")[0:2]
                self.requests.append((method.decode(), path.decode()))
                reply = self.reply(method.decode(), path.decode())
                if reply is None:
                    continue
                status, body = reply
                conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (status, len(body), body))

    def close(self):
        self.server.close()


@pytest.fixture
def replay(tmp_path):
    servers = []

    def start(reply):
        server = Replay(str(tmp_path / "engine.sock"), reply)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def captured(method, path):
    if path.startswith("/images/json?"):
        return 200, (FIXTURES / "images_json_repo.json").read_bytes()
    if path == "/images/tdkrcap:nope/json":
        return 404, (FIXTURES / "image_inspect_missing.404.json").read_bytes()
    if path.startswith("/images/tdkrcap:nope/tag"):
        return 404, (FIXTURES / "image_tag_missing_source.404.json").read_bytes()
    if path.startswith("/images/") and "/tag?" in path:
        return 201, b""
    return 500, b'{"message": "unexpected request"}'


class Module:
    def fail_json(self, **result):
        raise AssertionError(result)


def gateway(socket_path):
    """A DockerCLI whose engine is the stand-in; the CLI is the real binary only by name: a call
    that reaches it fails the test (no such binary)."""
    cli = dc.DockerCLI(Module(), runner=lambda *a, **k: pytest.fail("the CLI was run: %r" % (a,)))
    cli._engine = de.Engine(socket_path, 5)
    return cli


def test_list_tags_inspect_and_tag_over_the_socket(replay):
    server = replay(captured)
    cli = gateway(server.path)
    assert sorted(r["tag"] for r in cli.list_tags("tdkrcap")) == ["latest", "previous", "v1.4.2"]
    assert cli.image_inspect("tdkrcap:nope") is None
    cli.tag(ID_PREVIOUS, "localhost:5000/team/tdkrcap:v1")
    assert cli.via_engine
    assert server.requests[0] == ("GET", "/images/json?filters=%7B%22reference%22%3A+%5B%22tdkrcap%22%5D%7D")
    assert server.requests[2] == (
        "POST", "/images/%s/tag?repo=localhost%%3A5000%%2Fteam%%2Ftdkrcap&tag=v1" % ID_PREVIOUS)


def test_an_engine_error_reads_as_the_cli_would_print_it(replay):
    cli = gateway(replay(captured).path)
    with pytest.raises(dc.DockerCLIError) as raised:
        cli.tag("tdkrcap:nope", "tdkrcap:x")
    error = raised.value
    assert error.rc == 1 and error.stderr == "Error response from daemon: No such image: tdkrcap:nope"
    assert error.msg.endswith("image tag tdkrcap:nope tdkrcap:x failed (rc=1): Error response from daemon: "
                              "No such image: tdkrcap:nope")
    assert dc.is_not_found(error.stderr)


def test_no_answer_falls_back_to_the_cli_for_the_rest_of_the_run(replay):
    server = replay(lambda method, path: None)
    ran = []
    cli = dc.DockerCLI(Module(), runner=lambda argv, **kw: ran.append(argv) or type(
        "Res", (), {"rc": 0, "stdout_text": "", "stderr_text": ""})())
    cli._engine = de.Engine(server.path, 5)
    cli.tag(ID_PREVIOUS, "tdkrcap:x")
    assert ran == [["docker", "image", "tag", ID_PREVIOUS, "tdkrcap:x"]]
    assert not cli.via_engine
    cli.tag(ID_PREVIOUS, "tdkrcap:y")
    assert len(server.requests) == 1 and len(ran) == 2


def test_a_socket_nobody_listens_on_falls_back(tmp_path):
    path = tmp_path / "dead.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody accepts: connection refused
    with pytest.raises(de.EngineUnreachable):
        de.Engine(str(path), 5).inspect("image", "tdkrcap:latest")


def test_an_answer_that_is_not_json_is_unreachable(replay):
    server = replay(lambda method, path: (200, b"<html>proxy</html>"))
    with pytest.raises(de.EngineUnreachable):
        de.Engine(server.path, 5).list_tags("tdkrcap")


def test_a_runner_means_no_engine():
    cli = dc.DockerCLI(Module(), runner=lambda *a, **k: None)
    assert not cli.via_engine
