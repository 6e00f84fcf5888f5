"""Unit tests of image_retag's pure logic: option checks, the plan, the diff and the messages.
The real engine is exercised by tests/integration/test_image_retag.py."""
from __future__ import annotations

import datetime
import re

import pytest

from ansible_collections.taylordash.rollback.plugins.modules import image_retag as mod

REPO = "taylordash_backend"
OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64
OTHER = "sha256:" + "c" * 64
NOW = datetime.datetime(2024, 5, 18, 10, 15, 0, tzinfo=datetime.timezone.utc)


def params(**kwargs):
    base = dict(repository=REPO, from_tag="previous", to_tag="latest", keep_as=None, docker_cli=None)
    base.update(kwargs)
    return base


# --- option checks ---------------------------------------------------------------------------

def test_defaults_are_valid():
    assert mod.validate_params(params()) == []


@pytest.mark.parametrize("from_tag", ["v1.4.2", "d558df4412bf", "sha256:" + "d" * 64, "sha256:d558df4412bf"])
def test_from_tag_tag_or_image_id(from_tag):
    assert mod.validate_params(params(from_tag=from_tag)) == []


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(repository="Taylordash_Backend"), "repository 'Taylordash_Backend' is not a valid Docker repository name"),
    (dict(repository="taylordash_backend:latest"), "is not a valid Docker repository name"),
    (dict(to_tag="-latest"), "to_tag '-latest' is not a valid Docker tag"),
    (dict(from_tag="bad tag"), "from_tag 'bad tag' is neither a valid Docker tag"),
    (dict(from_tag="sha256:xyz"), "nor an image ID"),
    (dict(keep_as="no/slash"), "keep_as 'no/slash' is not a valid Docker tag"),
    (dict(keep_as="latest"), "keep_as and to_tag are both 'latest'"),
    (dict(from_tag="latest"), "from_tag and to_tag are both 'latest': nothing to roll back to"),
    (dict(from_tag="x" * 129), "neither a valid Docker tag"),
])
def test_invalid_options(kwargs, fragment):
    problems = mod.validate_params(params(**kwargs))
    assert len(problems) == 1
    assert fragment in problems[0]


def test_empty_keep_as_is_valid():
    assert mod.validate_params(params(keep_as="")) == []


def test_several_problems_are_all_reported():
    problems = mod.validate_params(params(repository="UP", to_tag="-x", from_tag="-x"))
    assert len(problems) == 4  # repository, to_tag, from_tag, from == to


# --- keep tag names --------------------------------------------------------------------------

def test_default_keep_tag_is_utc_timestamp():
    assert mod.default_keep_tag(NOW) == "rollback-20240518T101500Z"
    assert re.match(r"^rollback-\d{8}T\d{6}Z$", mod.default_keep_tag())


def test_unique_keep_tag():
    base = "rollback-20240518T101500Z"
    assert mod.unique_keep_tag(base, {}, OLD) == base
    # already names the image to keep (a re-run after a failed move): reuse it
    assert mod.unique_keep_tag(base, {base: OLD}, OLD) == base
    assert mod.unique_keep_tag(base, {base: OTHER}, OLD) == base + "-2"
    assert mod.unique_keep_tag(base, {base: OTHER, base + "-2": NEW}, OLD) == base + "-3"


# --- the plan --------------------------------------------------------------------------------

def test_plan_previous_to_latest_keeps_old_image():
    tags = {"latest": OLD, "previous": NEW}
    step = mod.plan(REPO, "previous", "latest", None, tags, now=NOW)
    assert step == dict(source=REPO + ":previous", target_id=NEW, before_id=OLD,
                        keep="rollback-20240518T101500Z", changed=True)


def test_plan_already_there_changes_and_keeps_nothing():
    tags = {"latest": NEW, "previous": NEW}
    step = mod.plan(REPO, "previous", "latest", None, tags, now=NOW)
    assert step["changed"] is False
    assert step["keep"] is None


def test_plan_keep_as_empty():
    step = mod.plan(REPO, "previous", "latest", "", {"latest": OLD, "previous": NEW})
    assert step["changed"] is True and step["keep"] is None


def test_plan_explicit_keep_as():
    step = mod.plan(REPO, "v1.4.2", "latest", "bad-1.5.0", {"latest": OLD, "v1.4.2": NEW})
    assert step["keep"] == "bad-1.5.0"
    assert step["source"] == REPO + ":v1.4.2"


def test_plan_to_tag_absent_keeps_nothing():
    step = mod.plan(REPO, "previous", "latest", None, {"previous": NEW}, now=NOW)
    assert step == dict(source=REPO + ":previous", target_id=NEW, before_id=None, keep=None,
                        changed=True)


def test_plan_image_id_source():
    step = mod.plan(REPO, "bbbbbbbbbbbb", "latest", None, {"latest": OLD}, resolved_id=NEW, now=NOW)
    assert step["source"] == NEW
    assert step["target_id"] == NEW
    assert step["keep"] == "rollback-20240518T101500Z"


def test_plan_tag_wins_over_id_spelling():
    # a tag that happens to be hex: the tag is used, not an image ID
    tags = {"latest": OLD, "bbbbbbbbbbbb": OTHER}
    step = mod.plan(REPO, "bbbbbbbbbbbb", "latest", None, tags, resolved_id=NEW, now=NOW)
    assert step["target_id"] == OTHER


def test_plan_swap_with_keep_as_from_tag():
    step = mod.plan(REPO, "previous", "latest", "previous", {"latest": OLD, "previous": NEW})
    assert step["keep"] == "previous"
    assert (step["before_id"], step["target_id"]) == (OLD, NEW)


def test_plan_default_keep_avoids_a_taken_timestamp():
    base = "rollback-20240518T101500Z"
    step = mod.plan(REPO, "previous", "latest", None,
                    {"latest": OLD, "previous": NEW, base: OTHER}, now=NOW)
    assert step["keep"] == base + "-2"


# --- diff and messages -----------------------------------------------------------------------

def test_diff_with_kept_tag():
    tags = {"latest": OLD, "previous": NEW}
    step = mod.plan(REPO, "previous", "latest", None, tags, now=NOW)
    diff = mod.build_diff(REPO, "latest", tags, step)
    assert diff == {
        "before": {REPO + ":latest": OLD, REPO + ":rollback-20240518T101500Z": None},
        "after": {REPO + ":latest": NEW, REPO + ":rollback-20240518T101500Z": OLD},
    }


def test_diff_unchanged_is_equal():
    tags = {"latest": NEW, "previous": NEW}
    step = mod.plan(REPO, "previous", "latest", None, tags)
    diff = mod.build_diff(REPO, "latest", tags, step)
    assert diff["before"] == diff["after"] == {REPO + ":latest": NEW}


def test_describe():
    tags = {"latest": OLD, "previous": NEW}
    step = mod.plan(REPO, "previous", "latest", None, tags, now=NOW)
    assert mod.describe(REPO, "latest", step) == (
        "move taylordash_backend:latest from aaaaaaaaaaaa to bbbbbbbbbbbb (taylordash_backend:previous); "
        "keep aaaaaaaaaaaa as taylordash_backend:rollback-20240518T101500Z")
    assert mod.describe(REPO, "latest", step, done=True).startswith("Moved taylordash_backend:latest")
    assert "; kept aaaaaaaaaaaa as" in mod.describe(REPO, "latest", step, done=True)
    created = mod.plan(REPO, "previous", "latest", None, {"previous": NEW})
    assert mod.describe(REPO, "latest", created, done=True) == (
        "Created taylordash_backend:latest at bbbbbbbbbbbb (taylordash_backend:previous)")
    unkept = mod.plan(REPO, "previous", "latest", "", tags)
    assert "keep_as is empty" in mod.describe(REPO, "latest", unkept)


# --- the order of operations, with a docker stand-in that fails on cue -----------------------

class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, check_mode=False, **kwargs):
        self.params = params(**kwargs)
        self.check_mode = check_mode
        self._diff = True


class FakeCLI:
    """Answers like the gateway; ``fail_on`` is the n-th tag call (from 1) that fails."""

    def __init__(self, tags, fail_on=None):
        self.tags = dict(tags)
        self.fail_on = fail_on
        self.tag_calls = []

    def list_tags(self, repository):
        return [dict(repository=repository, tag=t, id=i, created_at=None) for t, i in self.tags.items()]

    def image_id(self, ref):
        return self.tags.get(ref.split(":", 1)[1])

    def tag(self, source, target):
        self.tag_calls.append((source, target))
        if len(self.tag_calls) == self.fail_on:
            raise mod.DockerCLIError("docker image tag failed (rc=1): disk full", cmd="docker image tag",
                                     rc=1, stdout="", stderr="disk full")
        self.tags[target.split(":", 1)[1]] = source

    def fail(self, msg, error=None, **result):
        if error is not None:
            result.update(error.as_dict())
        raise Failed(dict(msg=msg, **result))


def test_keep_first_then_move():
    cli = FakeCLI({"latest": OLD, "previous": NEW})
    result = mod.ImageRetagger(FakeModule(keep_as="bad"), cli).run()
    assert cli.tag_calls == [(OLD, REPO + ":bad"), (NEW, REPO + ":latest")]
    assert result["changed"] is True and result["kept_tag"] == "bad"
    assert result["msg"].startswith("Moved taylordash_backend:latest")


def test_check_mode_tags_nothing():
    cli = FakeCLI({"latest": OLD, "previous": NEW})
    result = mod.ImageRetagger(FakeModule(check_mode=True, keep_as="bad"), cli).run()
    assert cli.tag_calls == []
    assert result["changed"] is True and result["msg"].startswith("Would move")


def test_keep_failing_changes_nothing():
    cli = FakeCLI({"latest": OLD, "previous": NEW}, fail_on=1)
    with pytest.raises(Failed) as info:
        mod.ImageRetagger(FakeModule(keep_as="bad"), cli).run()
    failure = info.value.args[0]
    assert failure["changed"] is False
    assert "nothing changed" in failure["msg"]
    assert failure["rc"] == 1 and failure["stderr"] == "disk full" and failure["cmd"]
    assert cli.tags == {"latest": OLD, "previous": NEW}


def test_move_failing_after_keep_says_so():
    cli = FakeCLI({"latest": OLD, "previous": NEW}, fail_on=2)
    with pytest.raises(Failed) as info:
        mod.ImageRetagger(FakeModule(keep_as="bad"), cli).run()
    failure = info.value.args[0]
    assert failure["changed"] is True
    assert failure["msg"].startswith(
        "Kept aaaaaaaaaaaa as taylordash_backend:bad, but moving taylordash_backend:latest to "
        "bbbbbbbbbbbb failed, so taylordash_backend:latest still points at aaaaaaaaaaaa")
    assert cli.tags["latest"] == OLD


def test_unknown_from_tag_lists_available_tags():
    cli = FakeCLI({"latest": OLD, "previous": NEW})
    with pytest.raises(Failed) as info:
        mod.ImageRetagger(FakeModule(from_tag="v9"), cli).run()
    assert info.value.args[0]["msg"].startswith(
        "taylordash_backend:v9 not found locally; available tags: latest, previous.")
    assert cli.tag_calls == []


# --- issue 10: no traceback, a clear message, every option fuzzed ---------------------------

import atexit  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_stub import write_stub  # noqa: E402
from module_fuzz import ModuleFuzz, no_docker_on_path  # noqa: E402

STUB_DIR = tempfile.mkdtemp(prefix="image-retag-docker-stub-")
atexit.register(shutil.rmtree, STUB_DIR, True)
STUB = write_stub(STUB_DIR)

# docker_cli never None: that would look docker up, and the real engine holds other tests' stacks.
FUZZ = ModuleFuzz(mod, base_args={"repository": "fuzz_backend", "docker_cli": STUB},
                  strategies={"docker_cli": st.sampled_from(
                      [STUB, "/nonexistent/docker", os.path.join(STUB_DIR, "calls.log"), STUB_DIR, "", "a\x00b"])},
                  deadline=10)


@FUZZ.given_options(max_examples=60)
def test_any_option_value_ends_cleanly(option_and_value, tmp_path):
    with no_docker_on_path(tmp_path):
        FUZZ.check(option_and_value, cwd=tmp_path, check_mode=True)
        FUZZ.check(option_and_value, cwd=tmp_path, check_mode=False)


@pytest.mark.parametrize("value", ["inf", "-Infinity", "nan", float("inf")])
def test_a_sub_option_that_is_not_a_finite_number_fails_cleanly(tmp_path, value):
    """Found by the property test in a CI run: recreate.stop_timeout 'inf' escaped as ansible-core's
    OverflowError; RollbackModule now marks sub-options as it does top-level options."""
    with no_docker_on_path(tmp_path):
        kind, result = FUZZ.run({"recreate": {"project_dir": str(tmp_path), "services": ["backend"],
                                              "stop_timeout": value}}, check_mode=True, cwd=tmp_path)
    assert kind == "fail", result
    assert "stop_timeout" in result["msg"] and "not a finite number" in result["msg"], result["msg"]


# Stable ids: STUB_DIR is random per process, and xdist workers must collect the same test names.
@pytest.mark.parametrize("docker_cli", ["/nonexistent/docker", STUB_DIR], ids=["missing-path", "a-directory"])
def test_a_docker_cli_that_is_not_there_is_named(tmp_path, docker_cli):
    """Before: 'Error executing command.' and nothing else."""
    kind, result = FUZZ.run({"docker_cli": docker_cli}, cwd=tmp_path)
    assert kind == "fail"
    assert "docker CLI at %s cannot be run" % docker_cli in result["msg"]
    assert "Nothing was changed" in result["msg"]


def test_stub_run_reports_timing(tmp_path):
    kind, result = FUZZ.run({}, check_mode=True, cwd=tmp_path)
    assert kind == "exit" and result["changed"] is True, result
    assert result["msg"].startswith("Would move fuzz_backend:latest")
    assert set(result["timing"]) == {"start", "end", "seconds"}


# --- repositories (one module run for several services) --------------------------------------

def test_repositories_are_checked_each():
    assert mod.validate_params(params(repository=None, repositories=[REPO, "taylordash_frontend"])) == []
    problems = mod.validate_params(params(repository=None, repositories=[REPO, "Bad:Name", REPO]))
    assert any("more than once" in p for p in problems)
    assert any("'Bad:Name' is not a valid" in p for p in problems)
    assert any("mutually exclusive" in p for p in mod.validate_params(params(repositories=[REPO])))
    assert any("is empty" in p for p in mod.validate_params(params(repository=None, repositories=[])))


# --- recreate (the retag and `docker compose up` in one module run) ---------------------------

def recreate(tmp_path, **kwargs):
    base = dict(project_dir=str(tmp_path), project_name="tdunit", compose_files=[], services=["backend", "frontend"],
                stop_timeout=10)
    base.update(kwargs)
    return base


def test_recreate_options_are_checked_before_anything(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    assert mod.recreate_problems(recreate(tmp_path, compose_files=["docker-compose.yml"])) == []
    cases = {
        "services is empty": recreate(tmp_path, services=[]),
        "'-rm': not compose service names": recreate(tmp_path, services=["-rm"]),
        "more than once": recreate(tmp_path, services=["backend", "backend"]),
        "stop_timeout=-1": recreate(tmp_path, stop_timeout=-1),
        "is not a directory": recreate(tmp_path, project_dir=str(tmp_path / "missing")),
        "missing.yml does not exist": recreate(tmp_path, compose_files=["missing.yml"]),
    }
    for fragment, options in cases.items():
        problems = mod.recreate_problems(options)
        assert len(problems) == 1 and fragment in problems[0], (fragment, problems)
    # validate_params names them with the other options' problems
    problems = mod.validate_params(params(recreate=recreate(tmp_path, services=[])))
    assert problems == ["recreate.services is empty: name the compose services to recreate"]


def test_recreate_argv_selects_the_project_and_never_pulls(tmp_path):
    argv = mod.recreate_argv(recreate(tmp_path, compose_files=["a.yml", "/abs/b.yml"], stop_timeout=3))
    assert argv == ["compose", "--project-directory", str(tmp_path), "--project-name", "tdunit",
                    "--file", str(tmp_path / "a.yml"), "--file", "/abs/b.yml",
                    "up", "-d", "--no-deps", "--pull", "never", "--timeout", "3", "backend", "frontend"]


# What compose 2.40 printed on stderr when it recreated a container.
COMPOSE_RECREATED = (" Container tdunit-backend-1  Recreate\n Container tdunit-backend-1  Recreated\n"
                     " Container tdunit-backend-1  Starting\n Container tdunit-backend-1  Started\n")


class ComposeCLI(FakeCLI):
    """FakeCLI that also answers `docker compose up` with compose's own stderr."""

    binary = "docker"

    def __init__(self, tags, rc=0, stderr=COMPOSE_RECREATED):
        super().__init__(tags)
        self.rc, self.stderr, self.runs = rc, stderr, []

    def run(self, args, check_rc=True, data=None):
        self.runs.append(args)
        return self.rc, "", self.stderr


class RecreateModule(FakeModule):
    def fail_json(self, msg, **result):
        raise Failed(dict(msg=msg, **result))


def test_recreate_runs_after_the_tags_moved(tmp_path):
    module = RecreateModule(recreate=recreate(tmp_path))
    cli = ComposeCLI({"latest": OLD, "previous": NEW})
    result = mod.run_recreate(module, cli, mod.ImageRetagger(module, cli).run())
    assert cli.tag_calls and cli.runs == [mod.recreate_argv(module.params["recreate"])]
    assert result["changed"] is True
    assert result["recreate"]["ran"] is True and result["recreate"]["changed"] is True and result["recreate"]["rc"] == 0
    assert result["recreate"]["cmd"][:2] == ["docker", "compose"]
    assert set(result["recreate"]["timing"]) == {"start", "end", "seconds"}
    assert result["msg"].endswith("Recreated backend, frontend on them (docker compose up: containers recreated or started).")


def test_recreate_runs_also_when_no_tag_had_to_move(tmp_path):
    """The tag may already name the target while a container still runs the other build."""
    module = RecreateModule(recreate=recreate(tmp_path))
    cli = ComposeCLI({"latest": NEW, "previous": NEW}, stderr=" Container tdunit-backend-1  Running\n")
    result = mod.run_recreate(module, cli, mod.ImageRetagger(module, cli).run())
    assert cli.tag_calls == [] and len(cli.runs) == 1
    assert result["changed"] is False and result["recreate"]["changed"] is False
    assert "nothing to recreate" in result["msg"]


def test_recreate_is_not_run_in_check_mode(tmp_path):
    module = RecreateModule(check_mode=True, recreate=recreate(tmp_path))
    cli = ComposeCLI({"latest": OLD, "previous": NEW})
    result = mod.run_recreate(module, cli, mod.ImageRetagger(module, cli).run())
    assert cli.runs == [] and cli.tag_calls == []
    assert result["recreate"]["ran"] is False and "Check mode" in result["recreate"]["msg"]


def test_a_failed_recreate_says_the_tags_moved(tmp_path):
    module = RecreateModule(recreate=recreate(tmp_path))
    cli = ComposeCLI({"latest": OLD, "previous": NEW}, rc=1,
                     stderr="Error response from daemon: driver failed programming external connectivity\n")
    with pytest.raises(Failed) as info:
        mod.run_recreate(module, cli, mod.ImageRetagger(module, cli).run())
    failure = info.value.args[0]
    assert failure["changed"] is True and failure["recreate"]["failed"] is True
    assert failure["msg"].startswith("docker compose up of backend, frontend failed (rc=1): Error response from daemon")
    assert "The tags were moved" in failure["msg"] and "roll forward with the kept tag" in failure["msg"]
