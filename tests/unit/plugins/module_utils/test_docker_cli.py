"""Unit tests of the docker CLI gateway, on output captured from a real engine (docker CLI 28.2,
engine 20.10) under fixtures/. The gateway is driven by a stand-in for AnsibleModule that replays
captured output; docker itself is exercised by tests/integration/test_image_retag.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils import _docker_cli as dc

FIXTURES = Path(__file__).parent / "fixtures"
REPO = "tdcap_13745_backend"
ID_V142 = "sha256:d558df4412bf35fd25c346a28efef5abfc0d3b723e72bfe34820e4f89b22048c"
ID_LATEST = "sha256:783dd181189a31a3e770ac0d3f78e4276b5206de3da15bdb7483dbd956098b72"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- parsing ---------------------------------------------------------------------------------

def test_parse_image_ls_repository():
    rows = dc.parse_image_ls(fixture("image_ls_repo.jsonl"), REPO)
    assert [(r["tag"], r["id"]) for r in rows] == [
        ("previous", ID_V142), ("v1.4.2", ID_V142), ("latest", ID_LATEST)]
    assert all(r["repository"] == REPO for r in rows)
    assert rows[0]["created_at"].endswith("UTC")


def test_parse_image_ls_keeps_only_the_exact_repository():
    assert dc.parse_image_ls(fixture("image_ls_repo.jsonl"), REPO + "x") == []
    assert len(dc.parse_image_ls(fixture("image_ls_repo.jsonl"))) == 3


def test_parse_image_ls_truncated_ids_are_passed_through():
    rows = dc.parse_image_ls(fixture("image_ls_repo_trunc.jsonl"), REPO)
    assert {r["id"] for r in rows} == {"d558df4412bf", "783dd181189a"}


def test_parse_image_ls_drops_untagged_images():
    assert dc.parse_image_ls(fixture("image_ls_dangling.jsonl")) == []
    # ...which the raw JSON lines do contain
    assert dc.parse_json_lines(fixture("image_ls_dangling.jsonl"))[0]["Tag"] == "<none>"


def test_parse_image_ls_empty_output():
    assert fixture("image_ls_empty.jsonl") == ""
    assert dc.parse_image_ls(fixture("image_ls_empty.jsonl"), REPO) == []


def test_parse_json_lines_rejects_garbage():
    with pytest.raises(ValueError):
        dc.parse_json_lines("{not json}\n")


def test_tags_by_image():
    rows = dc.parse_image_ls(fixture("image_ls_repo.jsonl"), REPO)
    assert dc.tags_by_image(rows) == {ID_V142: ["previous", "v1.4.2"], ID_LATEST: ["latest"]}


def test_parse_inspect_image():
    data = dc.parse_inspect(fixture("image_inspect_previous.json"))
    assert len(data) == 1
    assert data[0]["Id"] == ID_V142
    assert sorted(data[0]["RepoTags"]) == [REPO + ":previous", REPO + ":v1.4.2"]


def test_parse_inspect_container():
    data = dc.parse_inspect(fixture("container_inspect_created.json"))
    assert data[0]["State"]["Status"] == "created"
    assert data[0]["Name"] == "/tdcap_13745_c"


@pytest.mark.parametrize("kind", ["image", "container"])
def test_inspect_missing_prints_empty_array_and_not_found(kind):
    assert dc.parse_inspect(fixture(f"{kind}_inspect_missing.stdout")) == []
    assert dc.is_not_found(fixture(f"{kind}_inspect_missing.stderr"))


def test_not_found_on_tag_of_missing_source():
    assert dc.is_not_found(fixture("image_tag_missing_source.stderr"))
    assert not dc.is_not_found("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
    assert not dc.is_not_found("")


def test_parse_inspect_rejects_non_array():
    with pytest.raises(ValueError):
        dc.parse_inspect('{"Id": "x"}')
    assert dc.parse_inspect("  \n") == []


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("tag,ok", [
    ("latest", True), ("previous", True), ("v1.4.2", True), ("_x", True), ("A-b_c.d", True),
    ("rollback-20240518T101500Z", True), ("x" * 128, True), ("x" * 129, False),
    ("-bad", False), (".bad", False), ("", False), ("a:b", False), ("a/b", False),
    ("sha256:" + "a" * 64, False), ("with space", False),
])
def test_is_valid_tag(tag, ok):
    assert dc.is_valid_tag(tag) is ok


@pytest.mark.parametrize("name,ok", [
    ("taylordash_backend", True), ("tdtest_1234_backend", True), ("library/nginx", True),
    ("localhost:5000/team/app", True), ("registry.example.org/a/b-c", True), ("a__b", True),
    ("Taylordash", False), ("repo:tag", False), ("repo@sha256:abc", False), ("", False),
    ("-x", False), ("x_", False), ("a/", False), ("*", False), ("a" * 256, False),
])
def test_is_valid_repository(name, ok):
    assert dc.is_valid_repository(name) is ok


@pytest.mark.parametrize("value,ok", [
    (ID_V142, True), ("d558df4412bf", True), ("sha256:d558df4412bf", True), (ID_V142[7:], True),
    ("d558df4412b", False), ("d", False), ("previous", False), ("D558DF4412BF", False),
    ("sha256:" + "a" * 65, False),
])
def test_looks_like_image_id(value, ok):
    assert dc.looks_like_image_id(value) is ok


def test_normalize_and_short_id():
    assert dc.normalize_image_id("d558df4412bf") == "sha256:d558df4412bf"
    assert dc.normalize_image_id(ID_V142) == ID_V142
    assert dc.short_id(ID_V142) == "d558df4412bf"
    assert dc.short_id("d558df4412bf35fd") == "d558df4412bf"
    assert dc.short_id(None) is None


# --- the gateway, replaying captured output --------------------------------------------------

class ReplayModule:
    """Stands in for AnsibleModule and for the process gateway (run_streaming): records
    argv/env, replays (rc, stdout, stderr)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def run_command(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        rc, stdout, stderr = self.answers.pop(0)
        return SimpleNamespace(rc=rc, stdout_text=stdout, stderr_text=stderr, timed_out=False)

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)


def make_cli(answers):
    module = ReplayModule(answers)
    return dc.DockerCLI(module, docker_cli="/usr/bin/docker", runner=module.run_command), module


def test_list_tags_runs_an_argv_list_under_c_locale():
    cli, module = make_cli([(0, fixture("image_ls_repo.jsonl"), "")])
    rows = cli.list_tags(REPO)
    assert [r["tag"] for r in rows] == ["previous", "v1.4.2", "latest"]
    argv, kwargs = module.calls[0]
    assert argv == ["/usr/bin/docker", "image", "ls", "--no-trunc", "--format", "{{json .}}", REPO]
    assert kwargs["env_update"]["LC_ALL"] == "C"
    assert kwargs["timeout"] > 0  # every docker call has a deadline
    assert "use_unsafe_shell" not in kwargs and "shell" not in kwargs


def test_image_inspect_found_and_missing():
    cli, module = make_cli([
        (0, fixture("image_inspect_previous.json"), ""),
        (1, fixture("image_inspect_missing.stdout"), fixture("image_inspect_missing.stderr")),
    ])
    assert cli.image_id(REPO + ":previous") == ID_V142
    assert cli.image_inspect("nope_tdcap_13745:x") is None
    assert module.calls[1][0] == ["/usr/bin/docker", "image", "inspect", "--", "nope_tdcap_13745:x"]


def test_container_inspect_found_and_missing():
    cli, dummy = make_cli([
        (0, fixture("container_inspect_created.json"), ""),
        (1, fixture("container_inspect_missing.stdout"), fixture("container_inspect_missing.stderr")),
    ])
    assert cli.container_inspect("tdcap_13745_c")["State"]["Status"] == "created"
    assert cli.container_inspect("nope_tdcap_13745") is None


def test_inspect_error_other_than_missing_raises_with_details():
    stderr = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"
    cli, dummy = make_cli([(1, "", stderr)])
    with pytest.raises(dc.DockerCLIError) as info:
        cli.image_inspect("x:y")
    details = info.value.as_dict()
    assert details == {"cmd": "/usr/bin/docker image inspect -- x:y", "rc": 1, "stdout": "", "stderr": stderr}


def test_tag_failure_carries_cmd_rc_stdout_stderr():
    cli, dummy = make_cli([(1, "", fixture("image_tag_missing_source.stderr"))])
    with pytest.raises(dc.DockerCLIError) as info:
        cli.tag(REPO + ":nope", REPO + ":x")
    err = info.value
    assert err.rc == 1
    assert err.cmd == "/usr/bin/docker image tag %s:nope %s:x" % (REPO, REPO)
    assert "No such image" in err.stderr and "No such image" in err.msg


def test_unparsable_output_raises_with_details():
    cli, dummy = make_cli([(0, "this is not json\n", "")])
    with pytest.raises(dc.DockerCLIError) as info:
        cli.list_tags(REPO)
    assert info.value.stdout == "this is not json\n"
    assert "Cannot parse" in info.value.msg


def test_fail_merges_command_details():
    captured = {}

    class Module(ReplayModule):
        def fail_json(self, **kwargs):
            captured.update(kwargs)

    cli = dc.DockerCLI(Module([]), docker_cli="/usr/bin/docker")
    error = dc.DockerCLIError("boom", cmd="docker x", rc=2, stdout="o", stderr="e")
    cli.fail("it broke", error=error, repository="r")
    assert captured == {"msg": "it broke", "cmd": "docker x", "rc": 2, "stdout": "o", "stderr": "e",
                        "repository": "r"}


# --- a docker CLI that cannot be run (issue 10) ----------------------------------------------

class FailingModule:
    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


@pytest.mark.parametrize("setup,reason", [
    (lambda tmp: str(tmp / "nonexistent" / "docker"), "no such file"),
    (str, "not an executable file"),
    (lambda tmp: (tmp / "docker").write_text("#!/bin/sh\n") and str(tmp / "docker"), "not an executable file"),
])
def test_docker_cli_that_cannot_be_run_says_so(tmp_path, setup, reason):
    path = setup(tmp_path)
    module = FailingModule()
    with pytest.raises(SystemExit):
        dc.DockerCLI(module, docker_cli=path)
    msg = module.failed["msg"]
    assert "The docker CLI at %s cannot be run (%s)" % (path, reason) in msg
    assert "set docker_cli to the path of the docker binary" in msg
    assert msg != "Error executing command."


def test_docker_cli_that_fails_to_start_raises_with_details(tmp_path):
    # Executable but not runnable (no interpreter): the error comes from the start itself.
    binary = tmp_path / "docker"
    binary.write_text("#!/nonexistent/interpreter\n")
    binary.chmod(0o755)
    cli = dc.DockerCLI(FailingModule(), docker_cli=str(binary))
    with pytest.raises(dc.DockerCLIError) as info:
        cli.run(["version"])
    assert "the docker CLI at %s cannot be run" % binary in info.value.msg
    assert info.value.cmd == "%s version" % binary


def test_docker_cli_runs_through_the_gateway(tmp_path):
    binary = tmp_path / "docker"
    binary.write_text("#!%s\nimport json, os, sys\nprint(json.dumps([sys.argv[1:], os.environ.get('LC_ALL')]))\n"
                      % sys.executable)
    binary.chmod(0o755)
    cli = dc.DockerCLI(FailingModule(), docker_cli=str(binary))
    rc, stdout, dummy = cli.run(["image", "ls", "$HOME", "*"])
    assert rc == 0 and json.loads(stdout) == [["image", "ls", "$HOME", "*"], "C"]


def test_image_retag_with_a_missing_docker_cli_says_what_to_do(tmp_path):
    from conftest import run_module
    result = run_module("image_retag", {"repository": "tdcap_x", "from_tag": "previous", "to_tag": "latest",
                                        "docker_cli": "/nonexistent/docker"})
    assert result["failed"]
    assert "docker CLI at /nonexistent/docker cannot be run (no such file)" in result["msg"]
