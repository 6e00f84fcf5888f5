"""Shared pytest fixtures and helpers.

Modules are exercised two ways:
* unit tests import them as ``ansible_collections.taylordash.rollback.plugins...``;
* integration tests run them the way Ansible does, one process per call, through
  ``run_module`` (fast) or through ``ansible-playbook`` (``run_playbook``).

Both need the collection under an ``ansible_collections/`` root. pytest-ansible makes that tree
when pytest starts in the collection root (the directory of galaxy.yml): ``collections/`` there,
ignored by git and by the build, put on ``sys.path`` and into the collection finder for the
unit tests; ``ansible_env`` and ``run_module`` hand the same tree to the processes the
integration tests start. One tree for both.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# pytest-ansible's tree (pytest_ansible.units.inject): <root>/collections/ansible_collections/...
COLLECTIONS_ROOT = REPO / "collections"
VENV_BIN = Path(sys.executable).parent


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """pytest-ansible sets the tree up only when pytest starts in the collection root. Started
    from elsewhere (``cd tests/unit && pytest``), or with the plugin disabled, make the same tree
    with pytest-ansible's own function rather than a second way of ours."""
    if str(COLLECTIONS_ROOT) in sys.path:
        return
    from pytest_ansible.units import inject  # the plugin's collection set-up, not its host fixtures
    inject(REPO)
    if str(COLLECTIONS_ROOT) not in sys.path:
        raise pytest.UsageError(f"pytest-ansible did not set up {COLLECTIONS_ROOT}; is galaxy.yml in {REPO}?")


# What examples/project/ansible.cfg enables to make every run cheaper, for every ansible-playbook a
# test starts: the module payloads (plugins/callback/payload_cache.py, 0.15-0.25 s less per module
# and run) and the compiled templates (plugins/callback/warm_workers.py, 12-19 % less CPU per
# run) built by one test's run are reused by the next. A test that sets its own
# ANSIBLE_CALLBACKS_ENABLED adds SPEED_CALLBACKS to it, or builds them as usual.
SPEED_CALLBACKS = "taylordash.rollback.payload_cache,taylordash.rollback.warm_workers"
WARM_START = {
    "ANSIBLE_CALLBACKS_ENABLED": SPEED_CALLBACKS,
    "TAYLORDASH_PAYLOAD_CACHE": str(REPO / ".cache" / "payload_cache"),
    "TAYLORDASH_TEMPLATE_CACHE": str(REPO / ".cache" / "template_cache"),
}


def ansible_env(extra: dict | None = None) -> dict:
    """Environment for ansible-* commands run by tests: our collection first, then the
    community collections of the virtualenv; the virtualenv's python for localhost."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            **WARM_START,
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        }
    )
    if extra:
        env.update(extra)
    return env


def run_module(name: str, args: dict, check_mode: bool = False, diff: bool = False,
               timeout: float = 300, env: dict | None = None) -> dict:
    """Run plugins/modules/<name>.py in its own process, as Ansible would, and return its
    JSON result. ``_ansible_check_mode`` and ``_ansible_diff`` are how Ansible itself passes
    --check and --diff to a module."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    payload["_ansible_diff"] = diff
    module = REPO / "plugins" / "modules" / f"{name}.py"
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = str(COLLECTIONS_ROOT)
    proc = subprocess.run(
        [sys.executable, str(module)],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": payload}),
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"module {name} printed no JSON (rc={proc.returncode})\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}") from exc
    result.setdefault("failed", False)
    return result


def run_playbook(playbook: str | Path, extra_vars: dict | None = None, check: bool = False,
                 diff: bool = False, inventory: str | Path | None = None, cwd: Path | None = None,
                 env: dict | None = None, timeout: float = 600, vars_files: list | None = None,
                 verbosity: int = 0) -> subprocess.CompletedProcess:
    """Run ansible-playbook and return the completed process (stdout+stderr captured).
    ``vars_files`` are passed as ``-e @file`` (how secrets reach a play without the command line)."""
    argv = [str(VENV_BIN / "ansible-playbook"), str(playbook)]
    if inventory is None:
        argv += ["-i", "localhost,", "-c", "local"]
    else:
        argv += ["-i", str(inventory)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    for path in vars_files or []:
        argv += ["-e", f"@{path}"]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    run_env = ansible_env(env)
    # TD_PLAYBOOK_LOG_DIR=<dir>: where the suite's time goes. Every run also prints its per-task
    # timings (profile_tasks) and leaves its output in <dir>/<seconds>s-<playbook>-<random>.txt.
    log_dir = os.environ.get("TD_PLAYBOOK_LOG_DIR")
    if log_dir and run_env.get("ANSIBLE_CALLBACKS_ENABLED") == SPEED_CALLBACKS:
        run_env["ANSIBLE_CALLBACKS_ENABLED"] += ",ansible.posix.profile_tasks"  # not where a test chose its own
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=run_env, check=False)
    if log_dir:
        import secrets as _secrets
        name = "%06.1fs-%s-%s.txt" % (time.monotonic() - started, Path(str(playbook)).stem, _secrets.token_hex(3))
        (Path(log_dir) / name).write_text(proc.stdout + proc.stderr)
    return proc


def write_inventory(directory: Path) -> Path:
    """An inventory with localhost in group taylordash, as the playbooks expect."""
    path = Path(directory) / "inventory.json"
    path.write_text(json.dumps({"taylordash": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    return path


@pytest.fixture(scope="session")
def collection_root() -> Path:
    """The ``collections/`` root pytest-ansible made (holds ansible_collections/taylordash/rollback)."""
    return COLLECTIONS_ROOT


# --------------------------------------------------------------------------- reference stack

STACKCTL = REPO / "stack" / "stackctl"
RUN_DIR = REPO / ".run"


class ReferenceStack:
    """A reference-stack instance of a test: its own project name, image prefix, random ports
    and directory; `down()` removes containers, volumes and the project's image tags."""

    def __init__(self, name: str, directory: Path):
        self.name = name
        self.dir = directory

    def ctl(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, str(STACKCTL), *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"stackctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def init(self) -> "ReferenceStack":
        self.ctl("init", "--dir", str(self.dir), "--project", self.name)
        return self

    def up(self, version: str = "v1") -> "ReferenceStack":
        self.ctl("up", "--dir", str(self.dir), "--version", version)
        return self

    def deploy(self, version: str, fault: str = "none", *extra: str) -> dict:
        proc = self.ctl("deploy", "--dir", str(self.dir), version, "--fault", fault, *extra)
        return json.loads(proc.stdout)

    def down(self) -> None:
        self.ctl("down", "--dir", str(self.dir), check=False)

    @property
    def env(self) -> dict:
        values = {}
        for line in (self.dir / ".env").read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                values[key] = value
        return values

    def url(self, service: str, path: str = "/") -> str:
        env = self.env
        if service == "nginx":
            return f"https://127.0.0.1:{env['TD_NGINX_PORT']}{path}"
        port = env["TD_BACKEND_PORT"] if service == "backend" else env["TD_FRONTEND_PORT"]
        return f"http://127.0.0.1:{port}{path}"

    def wait_answering(self, service: str, path: str = "/", timeout: float = 60.0) -> None:
        """Poll until the service gives any HTTP answer (a bad build answers 503 or 500): a
        deploy without --wait has returned, but its containers may not listen yet."""
        url = self.url(service, path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{url} gave no answer within {timeout} s")

    def compose(self, *args: str, check: bool = True, input_text: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", "compose", "--project-directory", str(self.dir), *args],
                              capture_output=True, text=True, input=input_text, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def stack_vars(self, **overrides) -> dict:
        """The stack model (roles/stack) for this stack, secrets excluded (see secrets_file)."""
        env = self.env
        values = {
            "stack_project_dir": str(self.dir),
            "stack_compose_project": self.name,
            "stack_services": [
                {"name": "backend", "image": f"{env['TD_IMAGE_PREFIX']}_backend",
                 "health_url": self.url("backend", "/health/ready")},
                {"name": "frontend", "image": f"{env['TD_IMAGE_PREFIX']}_frontend",
                 "health_url": self.url("frontend", "/")},
            ],
            "stack_api_url": self.url("backend", "").rstrip("/"),
            "stack_admin_username": env["TD_ADMIN_USERNAME"],
        }
        values.update(overrides)
        return values

    def secrets_file(self, directory: Path) -> Path:
        """A 0600 vars file with the stack's API key and admin password, for `-e @file`."""
        env = self.env
        path = Path(directory) / f"{self.name}-secrets.json"
        path.write_text(json.dumps({"stack_api_key": env["TD_API_KEY"],
                                    "stack_admin_password": env["TD_ADMIN_PASSWORD"]}))
        path.chmod(0o600)
        return path

    def tags(self) -> dict:
        """{repo:tag: image ID} of the stack's own image repositories."""
        prefix = self.env["TD_IMAGE_PREFIX"]
        out = {}
        for service in ("backend", "frontend"):
            proc = subprocess.run(["docker", "image", "ls", "--no-trunc", "--format",
                                   "{{.Repository}}:{{.Tag}} {{.ID}}", f"{prefix}_{service}"],
                                  capture_output=True, text=True, check=True)
            for line in proc.stdout.splitlines():
                ref, image = line.split()
                out[ref] = image
        return out

    def containers(self) -> dict:
        """{service: (container ID, image ID, status)} of the stack's containers."""
        out = {}
        for cid in self.compose("ps", "-a", "-q").stdout.split():
            proc = subprocess.run(["docker", "inspect", "-f",
                                   '{{index .Config.Labels "com.docker.compose.service"}} {{.Image}} {{.State.Status}}',
                                   cid], capture_output=True, text=True, check=True)
            service, image, status = proc.stdout.split()
            out[service] = (cid, image, status)
        return out

    def image_id(self, ref: str) -> str | None:
        proc = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref],
                              capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def container_image_id(self, service: str) -> str | None:
        cid = self.compose("ps", "-q", service).stdout.strip()
        if not cid:
            return None
        proc = subprocess.run(["docker", "inspect", "-f", "{{.Image}}", cid], capture_output=True,
                              text=True, check=False)
        return proc.stdout.strip() or None


def _stack_maker(tmp_path_factory):
    made = []

    def make(tag: str = "t", version: str | None = "v1") -> ReferenceStack:
        import secrets as _secrets
        name = f"tdt{tag}{_secrets.token_hex(3)}"
        stack = ReferenceStack(name, tmp_path_factory.mktemp(name))
        made.append(stack)
        stack.init()
        if version:
            stack.up(version)
        return stack

    return make, made


@pytest.fixture
def stack_factory(tmp_path_factory):
    """Make reference stacks; every stack made is torn down at the end of the test."""
    make, made = _stack_maker(tmp_path_factory)
    yield make
    for stack in made:
        stack.down()


@pytest.fixture(scope="module")
def module_stack_factory(tmp_path_factory):
    """Like stack_factory, for stacks shared by the tests of one module."""
    make, made = _stack_maker(tmp_path_factory)
    yield make
    for stack in made:
        stack.down()


# --------------------------------------------------------------------------- scheduling (xdist)
# scripts/test.sh runs tests/integration, tests/faults and the Molecule drills in ONE pytest session
# (one pool of xdist workers, --dist loadfile), so that no worker idles at the end of a stage while
# the longest file of that stage finishes. Two things make the pool pack well:
# * the longest files start first (longest-processing-time-first): rough seconds of each file, from
#   the CI logs and single runs of 2026-11-26 (only the order matters); a file not listed counts as
#   DEFAULT_SECONDS. Update a figure when a file grows much slower or faster.
# The scheduler subclasses pytest-xdist's LoadFileScheduling and uses two of its internals
# (_split_scope, _reschedule; written against pytest-xdist 3.8).
# * a worker is given its next file only when one test of its current file is left (xdist's own
#   loadfile hands out a second file at once and the next when two tests are left: at the end of
#   the run a worker can sit on a queued file while another has nothing to do), and the tests of
#   the files in ONE_BY_ONE (every Molecule drill, ...) are units of their own.
EXPECTED_SECONDS = {
    "tests/integration/test_fleet.py": 360,
    "tests/integration/test_eda_rollback.py": 250,
    "tests/integration/test_emergency_recovery.py": 210,
    "tests/integration/test_rollback_database.py": 200,
    "tests/integration/test_watchdog_timer.py": 190,
    "tests/integration/test_rollback_config.py": 140,
    "tests/integration/test_rollback_partial.py": 135,
    "tests/faults/test_faults_validation.py": 130,
    "tests/faults/test_faults_database.py": 120,
    "tests/integration/test_rollback_complete.py": 110,
    "tests/faults/test_faults_immediate.py": 95,
    "tests/integration/test_rollback_blue_green.py": 90,
    "tests/integration/test_drill.py": 90,
    "tests/integration/test_rollback_immediate.py": 90,
    "tests/integration/test_watchdog.py": 80,
    "tests/integration/test_backup_verify.py": 70,
    "tests/integration/test_report_role.py": 70,
    "tests/integration/test_reference_stack.py": 70,
    "tests/faults/test_faults_blue_green.py": 70,
    "tests/faults/test_faults_complete.py": 60,
    "tests/faults/test_faults_config.py": 60,
    "tests/faults/test_faults_emergency.py": 60,
    "tests/faults/test_faults_escalate.py": 60,
    "tests/faults/test_faults_drill.py": 60,
    "tests/faults/test_faults_watchdog.py": 60,
    # Files in ONE_BY_ONE: seconds per test (each test is a unit of its own).
    "tests/integration/test_molecule.py": 60,
    "tests/integration/test_killed_run.py": 35,
    "tests/integration/test_escalate.py": 12,
}
DEFAULT_SECONDS = 30
# Files whose tests are scheduled one by one, on any worker: they share nothing (no module-scoped
# fixture, no module-level state, each test its own stack or tmp_path and its own receivers' ports).
# The short ones then fill the gaps at the end of the run.
ONE_BY_ONE = ("tests/integration/test_molecule.py", "tests/integration/test_killed_run.py",
              "tests/integration/test_escalate.py")


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Longest files first; the tests inside a file keep their order (a stable sort)."""
    if not any(_file_of(item.nodeid) in EXPECTED_SECONDS for item in items):
        return
    items.sort(key=lambda item: -EXPECTED_SECONDS.get(_file_of(item.nodeid), DEFAULT_SECONDS))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown when it is not loaded
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile with the two changes described above; any other --dist is xdist's own."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class PackedFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            if _file_of(nodeid) in ONE_BY_ONE:
                return nodeid
            return super()._split_scope(nodeid)

        def _reschedule(self, node):
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            # A worker runs a test only once it knows the next one (for teardown): one test left is
            # the moment to send the next file.
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

    return PackedFileScheduling(config, log)


@pytest.fixture(autouse=True)
def _modules_run_as_on_a_target_host(monkeypatch):
    """Module tests run main() in this process, as on a target host. Importing any controller
    code (a filter plugin, ansible.errors) flips ansible-core's ``is_controller`` switch for the
    whole process, and module warnings then go to the controller's display instead of the
    result; modules never run with it set."""
    from ansible.module_utils import _internal
    monkeypatch.setattr(_internal, "is_controller", False)
