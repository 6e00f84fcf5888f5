"""container_health without a Docker engine: the verdict on container states (running, HEALTHCHECK),
the deadline-bounded loop on a fake clock, option checks before docker is asked, a run against a stub
docker CLI, and a property test of every option. The real engine: tests/integration/test_other_stack.py."""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import pytest
from hypothesis import strategies as st

from ansible_collections.taylordash.rollback.plugins.modules import container_health as mod

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_stub import write_stub  # noqa: E402
from module_fuzz import ModuleFuzz, no_docker_on_path  # noqa: E402

STUB_DIR = tempfile.mkdtemp(prefix="container-health-docker-stub-")
atexit.register(shutil.rmtree, STUB_DIR, True)
STUB = write_stub(STUB_DIR)


def container(name="p-web-1", status="running", health=None, restarts=0):
    state = {"Status": status, "Running": status == "running"}
    if health is not None:
        state["Health"] = {"Status": health}
    return mod.container_view({"Name": "/" + name, "State": state, "RestartCount": restarts})


@pytest.mark.parametrize("containers,healthy,checked_by,problem", [
    ([container()], True, "running", None),
    ([container(health="healthy")], True, "healthcheck", None),
    ([container(health="starting")], False, "healthcheck", "p-web-1 running (starting)"),
    ([container(health="unhealthy")], False, "healthcheck", "p-web-1 running (unhealthy)"),
    ([container(status="exited")], False, "running", "p-web-1 exited"),
    ([container(status="restarting")], False, "running", "p-web-1 restarting"),
    ([], False, "running", "no container"),
    ([container("p-web-1"), container("p-web-2", status="exited")], False, "running", "p-web-2 exited"),
])
def test_judge_service(containers, healthy, checked_by, problem):
    verdict = mod.judge_service("web", containers)
    assert (verdict["healthy"], verdict["checked_by"], verdict["problem"]) == (healthy, checked_by, problem)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.now += seconds


def reads(*verdicts, cost=0.1, clock=None):
    """A read function that answers the given service lists in turn (the last one forever)."""
    answers = list(verdicts)

    def read(budget):
        assert budget > 0
        clock.now += cost
        return answers.pop(0) if len(answers) > 1 else answers[0]
    return read


def test_healthy_after_the_threshold_of_good_reads():
    clock = FakeClock()
    down = [mod.judge_service("web", [container(status="exited")])]
    up = [mod.judge_service("web", [container()])]
    result = mod.Waiter(reads(down, down, up, clock=clock), 10, 0.5, 2, clock=clock, sleep=clock.sleep).run()
    assert result["healthy"] and result["attempts"] == 4 and result["consecutive_reads"] == 2
    assert result["elapsed"] == pytest.approx(1.6)


def test_a_restart_between_good_reads_starts_the_count_again():
    clock = FakeClock()
    first = [mod.judge_service("web", [container(restarts=0)])]
    restarted = [mod.judge_service("web", [container(restarts=1)])]
    result = mod.Waiter(reads(first, restarted, restarted, clock=clock), 10, 0.5, 2,
                        clock=clock, sleep=clock.sleep).run()
    assert result["healthy"] and result["attempts"] == 3


def test_the_deadline_ends_the_wait():
    clock = FakeClock()
    down = [mod.judge_service("web", [container(health="unhealthy")])]
    result = mod.Waiter(reads(down, clock=clock), 3, 0.5, 2, clock=clock, sleep=clock.sleep).run()
    assert not result["healthy"]
    assert 5 <= result["attempts"] <= 7 and clock.now <= 3.2
    msg = mod.summary(result, 2, 3)
    assert "not running and healthy by the deadline of 3 s" in msg and "web: p-web-1 running (unhealthy)" in msg


def test_summary_says_how_each_service_was_judged():
    result = {"healthy": True, "elapsed": 0.61, "attempts": 2, "services": [
        mod.judge_service("web", [container(health="healthy")]), mod.judge_service("api", [container("p-api-1")])]}
    msg = mod.summary(result, 2, 60)
    assert msg == ("web, api running after 0.61 s (2 reads in a row; web healthy by their image HEALTHCHECK; "
                   "no HEALTHCHECK in the image of api: judged by running containers only).")


FUZZ = ModuleFuzz(
    mod, base_args={"project_dir": "proj", "services": ["backend"], "docker_cli": STUB, "timeout": 2,
                    "interval": 0.1},
    strategies={
        "project_dir": st.sampled_from(["proj", ".", "", "missing", "a\x00b", "/nonexistent/x"]),
        # Never None: that would look docker up on PATH, and PATH holds the real one.
        "docker_cli": st.sampled_from([STUB, "/nonexistent/docker", os.path.join(STUB_DIR, "calls.log")]),
        # Long waits would only make the test slow; their bounds are checked by the unit tests above.
        "timeout": st.one_of(st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, 1e308, 0.5, 2.0, "x"])),
    },
    deadline=20)


def make_project(root):
    project = os.path.join(str(root), "proj")
    os.makedirs(project, exist_ok=True)
    with open(os.path.join(project, "docker-compose.yml"), "w") as f:
        f.write("services: {}\n")
    return project


@FUZZ.given_options(max_examples=30)
def test_any_option_value_ends_cleanly(option_and_value, tmp_path):
    make_project(tmp_path)
    with no_docker_on_path(tmp_path):
        FUZZ.check(option_and_value, cwd=tmp_path)


def run(tmp_path, **overrides):
    args = {"project_dir": make_project(tmp_path), "services": ["backend"], "docker_cli": STUB,
            "timeout": 5, "interval": 0}
    args.update(overrides)
    with no_docker_on_path(tmp_path):
        return FUZZ.run(args, check_mode=True, cwd=tmp_path)


def test_running_containers_from_the_stub(tmp_path):
    kind, result = run(tmp_path)
    assert kind == "exit", result
    assert result["healthy"] and result["changed"] is False
    assert result["services"][0]["checked_by"] == "running"
    assert result["services"][0]["containers"][0]["name"] == "fuzz-backend-1"
    assert "judged by running containers only" in result["msg"]


def test_a_service_without_containers_fails_at_the_deadline(tmp_path):
    kind, result = run(tmp_path, services=["frontend"], timeout=0.5, interval=0.1)
    assert kind == "fail" and not result["healthy"]
    assert "frontend: no container" in result["msg"]


@pytest.mark.parametrize("overrides,fragment", [
    ({"timeout": 0}, "timeout must be more than 0 seconds"),
    ({"timeout": float("nan")}, "timeout must be a finite number of seconds"),
    ({"interval": -1}, "interval must not be negative"),
    ({"success_threshold": 0}, "success_threshold must be from 1 to 1000"),
    ({"services": []}, "services must name at least one compose service"),
    ({"services": [""]}, "services must name at least one compose service"),
])
def test_bad_options_fail_before_docker_is_asked(tmp_path, overrides, fragment):
    open(os.path.join(STUB_DIR, "calls.log"), "w").close()
    kind, result = run(tmp_path, **overrides)
    assert kind == "fail" and fragment in result["msg"], result
    assert "Nothing was read" in result["msg"]
    assert open(os.path.join(STUB_DIR, "calls.log")).read() == ""
