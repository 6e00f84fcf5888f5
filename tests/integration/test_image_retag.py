"""image_retag against the real Docker engine.

Each test imports two tiny throwaway images (one file each, different content, so different IDs)
into a random repository ``tdtest_<random>_backend`` and removes them at teardown. Cases that
change something follow the check -> real -> check -> idempotent rhythm: check mode must predict
the real run and change nothing, and the second real run must change nothing.
"""
from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import tarfile
import threading
import uuid

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils import _docker_cli as dc
from conftest import run_module

pytestmark = pytest.mark.integration

TIMESTAMP_TAG = re.compile(r"^rollback-\d{8}T\d{6}Z(-\d+)?$")


def docker(*args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(["docker", *args], input=data, capture_output=True, check=False,
                          timeout=60, env={**os.environ, "LC_ALL": "C"})
    if proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode()


def import_image(ref: str, content: str) -> str:
    """A one-file image made with ``docker import``; returns its full ID."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        payload = content.encode()
        info = tarfile.TarInfo("build.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return docker("import", "-", ref, data=buf.getvalue()).strip()


def tags_of(repository: str) -> dict[str, str]:
    out = docker("image", "ls", "--no-trunc", "--format", "{{json .}}", repository)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["Tag"]: r["ID"] for r in rows if r["Repository"] == repository}


class Repo:
    def __init__(self):
        self.name = f"tdtest_{uuid.uuid4().hex[:10]}_backend"
        self.image_ids: list[str] = []

    def ref(self, tag: str) -> str:
        return f"{self.name}:{tag}"


@pytest.fixture
def repo():
    """previous and v1.4.2 -> good build; latest and v1.5.0 -> bad build."""
    r = Repo()
    try:
        r.good = import_image(r.ref("v1.4.2"), f"good build {r.name}\n")
        r.image_ids.append(r.good)
        r.bad = import_image(r.ref("v1.5.0"), f"bad build {r.name}\n")
        r.image_ids.append(r.bad)
        docker("image", "tag", r.good, r.ref("previous"))
        docker("image", "tag", r.bad, r.ref("latest"))
        assert r.good != r.bad
        yield r
    finally:
        # -f on the ID drops every tag (kept ones included) and the image itself.
        for image_id in r.image_ids:
            subprocess.run(["docker", "image", "rm", "-f", image_id], capture_output=True, check=False)
        leftovers = tags_of(r.name)
        assert not leftovers, f"images left behind: {leftovers}"


def rhythm(repo: Repo, args: dict) -> dict:
    """check -> real -> check -> real; returns the first real result."""
    before = tags_of(repo.name)

    check = run_module("image_retag", args, check_mode=True, diff=True)
    assert not check["failed"], check["msg"]
    assert check["changed"] is True
    assert tags_of(repo.name) == before, "check mode changed a tag"
    assert check["msg"].startswith("Would ")

    real = run_module("image_retag", args, diff=True)
    assert not real["failed"], real["msg"]
    assert real["changed"] is True
    # check mode predicted the real run
    for key in ("repository", "source", "image_id_before", "image_id_after"):
        assert check[key] == real[key], key
    if args.get("keep_as") is None and real["kept_tag"] is not None:
        # the default name is a timestamp: same shape, maybe another second
        assert TIMESTAMP_TAG.match(check["kept_tag"]) and TIMESTAMP_TAG.match(real["kept_tag"])
    else:
        assert check["kept_tag"] == real["kept_tag"]
    to_ref = repo.ref(args.get("to_tag", "latest"))
    assert check["diff"]["before"][to_ref] == real["diff"]["before"][to_ref] == before.get(args.get("to_tag", "latest"))
    assert check["diff"]["after"][to_ref] == real["diff"]["after"][to_ref] == real["image_id_after"]

    after = tags_of(repo.name)
    again = run_module("image_retag", args, check_mode=True, diff=True)
    assert not again["failed"], again["msg"]
    assert again["changed"] is False
    assert again["kept_tag"] is None
    assert again["diff"]["before"] == again["diff"]["after"]

    idem = run_module("image_retag", args)
    assert not idem["failed"], idem["msg"]
    assert idem["changed"] is False
    assert idem["kept_tag"] is None
    assert "nothing to do" in idem["msg"]
    assert tags_of(repo.name) == after, "the idempotent run changed a tag"
    return real


def test_default_previous_to_latest_keeps_the_bad_image(repo):
    result = rhythm(repo, {"repository": repo.name})
    assert result["source"] == repo.ref("previous")
    assert result["image_id_before"] == repo.bad
    assert result["image_id_after"] == repo.good
    assert TIMESTAMP_TAG.match(result["kept_tag"])
    assert result["diff"] == {
        "before": {repo.ref("latest"): repo.bad, repo.ref(result["kept_tag"]): None},
        "after": {repo.ref("latest"): repo.good, repo.ref(result["kept_tag"]): repo.bad},
    }
    assert tags_of(repo.name) == {
        "latest": repo.good, "previous": repo.good, "v1.4.2": repo.good,
        "v1.5.0": repo.bad, result["kept_tag"]: repo.bad,
    }


def test_from_an_explicit_version_tag_with_explicit_keep_as(repo):
    docker("image", "tag", repo.bad, repo.ref("previous"))  # previous is no help this time
    result = rhythm(repo, {"repository": repo.name, "from_tag": "v1.4.2", "keep_as": "bad-1.5.0"})
    assert result["source"] == repo.ref("v1.4.2")
    assert result["kept_tag"] == "bad-1.5.0"
    assert tags_of(repo.name) == {
        "latest": repo.good, "previous": repo.bad, "v1.4.2": repo.good, "v1.5.0": repo.bad,
        "bad-1.5.0": repo.bad,
    }


@pytest.mark.parametrize("form", ["short", "full"])
def test_from_an_image_id(repo, form):
    image_id = repo.good[len("sha256:"):][:12] if form == "short" else repo.good
    result = rhythm(repo, {"repository": repo.name, "from_tag": image_id})
    assert result["source"] == repo.good
    assert result["image_id_after"] == repo.good
    assert tags_of(repo.name)["latest"] == repo.good


def test_keep_as_empty_keeps_nothing(repo):
    docker("image", "rm", repo.ref("v1.5.0"))  # latest is now the bad build's only tag
    result = rhythm(repo, {"repository": repo.name, "keep_as": ""})
    assert result["kept_tag"] is None
    assert "keep_as is empty" in result["msg"]
    assert tags_of(repo.name) == {"latest": repo.good, "previous": repo.good, "v1.4.2": repo.good}
    # the bad build lost its last tag but still exists, by ID
    assert docker("image", "inspect", "--format", "{{.Id}}", repo.bad).strip() == repo.bad


def test_to_tag_absent_is_created_and_nothing_kept(repo):
    result = rhythm(repo, {"repository": repo.name, "to_tag": "stable"})
    assert result["image_id_before"] is None
    assert result["kept_tag"] is None
    assert result["msg"].startswith("Created %s at " % repo.ref("stable"))
    assert tags_of(repo.name)["stable"] == repo.good


def test_swap_previous_and_latest(repo):
    args = {"repository": repo.name, "keep_as": "previous"}
    result = run_module("image_retag", args)
    assert result["changed"] is True and result["kept_tag"] == "previous"
    tags = tags_of(repo.name)
    assert (tags["latest"], tags["previous"]) == (repo.good, repo.bad)
    # swapping again rolls forward
    result = run_module("image_retag", args)
    tags = tags_of(repo.name)
    assert (tags["latest"], tags["previous"]) == (repo.bad, repo.good)


@pytest.mark.parametrize("case", ["from_tag missing", "unknown repository", "unknown image id",
                                  "invalid tag", "invalid repository", "from equals to",
                                  "docker_cli missing"])
def test_bad_input_fails_clearly_and_changes_nothing(repo, case):
    unknown = f"tdtest_{uuid.uuid4().hex[:10]}_nothere"
    args, expected = {
        "from_tag missing": (
            {"repository": repo.name, "from_tag": "v9.9.9"},
            f"{repo.name}:v9.9.9 not found locally; available tags: latest, previous, v1.4.2, v1.5.0"),
        "unknown repository": (
            {"repository": unknown},
            f"repository '{unknown}' not found locally"),
        "unknown image id": (
            {"repository": repo.name, "from_tag": "sha256:" + "f" * 64},
            "no local image has the ID sha256:" + "f" * 64),
        "invalid tag": (
            {"repository": repo.name, "to_tag": "-latest"},
            "to_tag '-latest' is not a valid Docker tag"),
        "invalid repository": (
            {"repository": repo.name.upper()},
            "is not a valid Docker repository name"),
        "from equals to": (
            {"repository": repo.name, "from_tag": "latest"},
            "from_tag and to_tag are both 'latest'"),
        # issue 10: was "Error executing command." and nothing else
        "docker_cli missing": (
            {"repository": repo.name, "docker_cli": "/nonexistent/docker"},
            "docker CLI at /nonexistent/docker cannot be run (no such file)"),
    }[case]
    everything_before = docker("image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    before = tags_of(repo.name)
    for check_mode in (True, False):
        result = run_module("image_retag", args, check_mode=check_mode)
        assert result["failed"] is True
        assert result["changed"] is False
        assert expected in result["msg"], result["msg"]
    assert tags_of(repo.name) == before
    assert tags_of(unknown) == {}
    everything_after = docker("image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    mine = [line for line in everything_after.splitlines() if repo.name in line or unknown in line]
    assert sorted(mine) == sorted(line for line in everything_before.splitlines()
                                  if repo.name in line or unknown in line)


@pytest.fixture
def second_repo():
    """A second repository laid out like repo (the frontend of the same stack)."""
    r = Repo()
    r.name = r.name.replace("_backend", "_frontend")
    try:
        r.good = import_image(r.ref("v1.4.2"), f"good build {r.name}\n")
        r.bad = import_image(r.ref("v1.5.0"), f"bad build {r.name}\n")
        r.image_ids += [r.good, r.bad]
        docker("image", "tag", r.good, r.ref("previous"))
        docker("image", "tag", r.bad, r.ref("latest"))
        yield r
    finally:
        for image_id in r.image_ids:
            subprocess.run(["docker", "image", "rm", "-f", image_id], capture_output=True, check=False)


def test_repositories_in_one_run(repo, second_repo):
    """repositories: both tags move in one module run (check mode first, then for real, then
    idempotent); one result per repository, in the order given, and one diff for all."""
    args = {"repositories": [repo.name, second_repo.name], "keep_as": "bad-kept"}
    before = (tags_of(repo.name), tags_of(second_repo.name))
    check = run_module("image_retag", args, check_mode=True, diff=True)
    assert check["changed"] and not check["failed"], check["msg"]
    assert (tags_of(repo.name), tags_of(second_repo.name)) == before
    real = run_module("image_retag", args, diff=True)
    assert real["changed"] and not real["failed"], real["msg"]
    assert [r["repository"] for r in real["results"]] == [repo.name, second_repo.name]
    assert [r["kept_tag"] for r in real["results"]] == ["bad-kept", "bad-kept"]
    for r, result in ((repo, real["results"][0]), (second_repo, real["results"][1])):
        assert result["changed"] and result["image_id_after"] == r.good
        assert tags_of(r.name)["latest"] == r.good and tags_of(r.name)["bad-kept"] == r.bad
        assert real["diff"]["after"][r.ref("latest")] == r.good
    assert check["diff"] == real["diff"]
    again = run_module("image_retag", args)
    assert not again["changed"] and all("nothing to do" in r["msg"] for r in again["results"])


def test_repositories_one_missing_changes_nothing(repo, second_repo):
    """A repository of the list that does not exist: every repository is planned before any tag
    moves, so no tag moved (the first one's neither) and the message names the missing one."""
    missing = f"tdtest_{uuid.uuid4().hex[:10]}_nothing"
    before = (tags_of(repo.name), tags_of(second_repo.name))
    result = run_module("image_retag", {"repositories": [repo.name, missing, second_repo.name]})
    assert result["failed"] and not result["changed"]
    assert result["msg"].startswith(missing + ": ") and "Nothing was changed" in result["msg"], result["msg"]
    assert (tags_of(repo.name), tags_of(second_repo.name)) == before


# --- recreate: the retag and `docker compose up` in one module run ----------------------------

@pytest.mark.parametrize("case", ["project_dir missing", "no service", "compose file missing"])
def test_bad_recreate_input_fails_before_any_tag_moves(repo, tmp_path, case):
    recreate, expected = {
        "project_dir missing": ({"project_dir": str(tmp_path / "nothere"), "services": ["web"]},
                                f"recreate.project_dir {tmp_path / 'nothere'} is not a directory"),
        "no service": ({"project_dir": str(tmp_path), "services": []},
                       "recreate.services is empty"),
        "compose file missing": ({"project_dir": str(tmp_path), "services": ["web"], "compose_files": ["nope.yml"]},
                                 f"recreate.compose_files: {tmp_path / 'nope.yml'} does not exist"),
    }[case]
    before = tags_of(repo.name)
    for check_mode in (True, False):
        result = run_module("image_retag", {"repository": repo.name, "recreate": recreate}, check_mode=check_mode)
        assert result["failed"] is True and result["changed"] is False
        assert expected in result["msg"] and "Nothing was changed" in result["msg"], result["msg"]
    assert tags_of(repo.name) == before


def test_a_failing_compose_up_names_the_tags_that_moved(repo, tmp_path):
    """Compose itself refuses (a service the project does not define): the tags have moved, and
    the message says so and how to go on; check mode moves nothing and runs no compose."""
    (tmp_path / "docker-compose.yml").write_text(f"services:\n  web:\n    image: {repo.ref('latest')}\n")
    args = {"repository": repo.name, "keep_as": "bad-build",
            "recreate": {"project_dir": str(tmp_path), "project_name": f"{repo.name}p", "services": ["nosuch"]}}
    check = run_module("image_retag", args, check_mode=True)
    assert not check["failed"], check["msg"]
    assert check["recreate"]["ran"] is False and "Check mode" in check["recreate"]["msg"]
    assert tags_of(repo.name)["latest"] == repo.bad

    result = run_module("image_retag", args)
    assert result["failed"] is True and result["changed"] is True
    assert result["recreate"]["ran"] is True and result["recreate"]["rc"] != 0
    assert "docker compose up of nosuch failed" in result["msg"] and "nosuch" in result["recreate"]["stderr"]
    assert "The tags were moved (Moved " in result["msg"] and "roll forward with the kept tag" in result["msg"]
    tags = tags_of(repo.name)
    assert (tags["latest"], tags["bad-build"]) == (repo.good, repo.bad)


# --- the engine's socket (module_utils/_docker_engine): the same answers as the CLI, image_retag the
# same either way, and a socket that does not answer leaves every call to the CLI ------------------
class Module:
    def fail_json(self, **result):
        raise AssertionError(result)


@pytest.fixture
def both(monkeypatch):
    """(by the engine's socket, by the CLI only) gateways, in this process."""
    engine = dc.DockerCLI(Module())
    monkeypatch.setenv("TAYLORDASH_DOCKER_API", "0")
    cli = dc.DockerCLI(Module())
    monkeypatch.delenv("TAYLORDASH_DOCKER_API")
    assert engine.via_engine, "the test machine's engine socket was not found"
    assert not cli.via_engine
    return engine, cli


def failure(call):
    with pytest.raises(dc.DockerCLIError) as raised:
        call()
    return raised.value


def test_the_socket_answers_what_the_cli_answers(both, repo):
    engine, cli = both
    key = sorted
    assert key(map(repr, engine.list_tags(repo.name))) == key(map(repr, cli.list_tags(repo.name)))
    assert engine.list_tags(repo.name + "x") == cli.list_tags(repo.name + "x") == []
    for ref in (repo.ref("previous"), repo.good, repo.good.split(":")[1][:12], repo.ref("missing")):
        assert engine.image_inspect(ref) == cli.image_inspect(ref), ref
    assert engine.image_id(repo.ref("latest")) == cli.image_id(repo.ref("latest")) == repo.bad

    container = docker("container", "create", "--network", "none", repo.good, "/nothing").strip()
    try:
        assert engine.container_inspect(container) == cli.container_inspect(container)
    finally:
        docker("container", "rm", container)
    assert engine.container_inspect(container) is cli.container_inspect(container) is None

    for gateway, tag in ((engine, "by-engine"), (cli, "by-cli")):
        gateway.tag(repo.good, repo.ref(tag))
    tags = tags_of(repo.name)
    assert tags["by-engine"] == tags["by-cli"] == repo.good

    by_engine = failure(lambda: engine.tag(repo.ref("missing"), repo.ref("x")))
    by_cli = failure(lambda: cli.tag(repo.ref("missing"), repo.ref("x")))
    assert by_engine.rc == by_cli.rc == 1
    assert by_engine.stderr.strip() == by_cli.stderr.strip() == "Error response from daemon: No such image: %s" % repo.ref("missing")
    assert "x" not in tags_of(repo.name)


@pytest.mark.parametrize("api", ["1", "0"])
def test_image_retag_the_same_either_way(repo, api):
    env = {"TAYLORDASH_DOCKER_API": api}
    args = {"repository": repo.name, "from_tag": "previous", "to_tag": "latest", "keep_as": "rollback-x"}
    checked = run_module("image_retag", args, check_mode=True, env=env)
    assert checked["changed"] is True and tags_of(repo.name)["latest"] == repo.bad
    moved = run_module("image_retag", args, env=env)
    assert moved["failed"] is False, moved["msg"]
    assert moved["changed"] is True and moved["image_id_after"] == repo.good and moved["kept_tag"] == "rollback-x"
    assert tags_of(repo.name)["latest"] == repo.good and tags_of(repo.name)["rollback-x"] == repo.bad
    again = run_module("image_retag", args, env=env)
    assert again["changed"] is False, again["msg"]
    missing = run_module("image_retag", dict(args, from_tag="nope"), env=env)
    assert missing["failed"] is True and "not found locally" in missing["msg"]


def test_a_socket_that_does_not_answer_leaves_it_to_the_cli(repo, tmp_path):
    """DOCKER_HOST names a socket that accepts and hangs up: the module's calls go to the CLI, which
    reports the engine unreachable in its own words - the same message as with the socket off."""
    path = str(tmp_path / "hangs-up.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    server.settimeout(0.2)
    args = {"repository": repo.name, "from_tag": "previous", "to_tag": "latest"}
    results = {}
    try:
        for api in ("1", "0"):
            env = {"DOCKER_HOST": "unix://" + path, "TAYLORDASH_DOCKER_API": api}
            results[api] = {}
            runner = threading.Thread(target=lambda env=env, into=results[api]: into.update(
                run_module("image_retag", args, env=env, timeout=60)))
            runner.start()
            # every connection (the module's, then the CLI's) is accepted and hung up at once
            while runner.is_alive():
                try:
                    server.accept()[0].close()
                except OSError:
                    pass
    finally:
        server.close()
    for api, result in results.items():
        assert result["failed"] is True and result["changed"] is False, (api, result)
        assert "Cannot list the images of %s" % repo.name in result["msg"], (api, result["msg"])
        assert result["cmd"].split()[1:3] == ["image", "ls"], (api, result["cmd"])
    assert tags_of(repo.name)["latest"] == repo.bad, "a tag moved"
    assert os.path.exists(path)
