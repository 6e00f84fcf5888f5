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
import subprocess
import tarfile
import uuid

import pytest

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
