"""A blue/green pair of reference stacks behind the lb nginx (stackctl lb), for the blue-green
tests, the fault matrix and the benchmark.

``BlueGreen`` holds the two stacks (ReferenceStack), the lb directory and port, and knows the
variables the playbook taylordash.rollback.rollback_blue_green needs to switch to a color.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import REPO, STACKCTL, run_playbook, write_inventory

PLAYBOOK = REPO / "playbooks" / "rollback_blue_green.yml"


def http_get(url: str, host: str | None = "taylordash.local", timeout: float = 3.0):
    """(status, headers (lower-case), body) or (None, {}, error)."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read().decode()
    except OSError as exc:
        return None, {}, str(exc)


class BlueGreen:
    def __init__(self, blue, green, lb_dir: Path, work: Path, compose: bool = False, active: str = "green"):
        self.stacks = {"blue": blue, "green": green}
        self.lb = Path(lb_dir)
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.compose_mode = compose
        self.inventory = write_inventory(self.work)
        argv = [sys.executable, str(STACKCTL), "lb", "up", "--dir", str(self.lb), "--blue", str(blue.dir),
                "--green", str(green.dir), "--active", active]
        if compose:
            argv.append("--compose")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"stackctl lb up failed:\n{proc.stderr}")
        self.info = json.loads(proc.stdout)
        self.port = self.info["port"]

    def down(self) -> None:
        subprocess.run([sys.executable, str(STACKCTL), "lb", "down", "--dir", str(self.lb)], capture_output=True,
                       timeout=60, check=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health/ready"

    @property
    def site(self) -> Path:
        return self.lb / "sites-available" / "taylordash"

    def served(self, n: int = 5) -> list:
        """The color header of n requests through the lb (None for a failed request)."""
        out = []
        for _request in range(n):
            status, headers, _body = http_get(self.url)
            out.append(headers.get("x-taylordash-env") if status == 200 else None)
        return out

    def set_active(self, color: str) -> None:
        """Put the lb on ``color`` the way the runbook does (for test set-up)."""
        proc = subprocess.run([sys.executable, str(STACKCTL), "lb", "switch", "--dir", str(self.lb), color],
                              capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise AssertionError(proc.stderr)
        deadline = time.monotonic() + 10
        while self.served(3) != [color] * 3:
            if time.monotonic() > deadline:
                raise AssertionError(f"the lb does not serve {color}")
            time.sleep(0.05)

    def nginx_args(self) -> dict:
        """nginx_switch options for this lb."""
        if self.compose_mode:
            return {"nginx": "compose", "project_dir": str(self.lb), "service": "nginx",
                    "nginx_prefix": str(self.lb), "nginx_conf": str(self.lb / "nginx.conf")}
        return {"nginx": "host", "nginx_prefix": str(self.lb), "nginx_conf": str(self.lb / "nginx.conf"),
                "pid_file": str(self.lb / "nginx.pid")}

    def role_vars(self, target: str, **overrides) -> dict:
        """stack_* of the target color and blue_green_* of the switch (secrets excluded)."""
        old = "green" if target == "blue" else "blue"
        stack = self.stacks[target]
        args = self.nginx_args()
        values = stack.stack_vars()
        values.update({
            "blue_green_target": target,
            "blue_green_old_project_dir": str(self.stacks[old].dir),
            "blue_green_old_compose_project": self.stacks[old].name,
            "blue_green_old_ports": [int(self.stacks[old].env["TD_BACKEND_PORT"])],
            "blue_green_site_file": str(self.site),
            "blue_green_candidate": str(self.lb / f"nginx.{target}.conf"),
            "blue_green_nginx": args["nginx"],
            "blue_green_nginx_prefix": str(self.lb),
            "blue_green_nginx_conf": str(self.lb / "nginx.conf"),
            "blue_green_url": self.url,
            "blue_green_lock_path": str(self.lb / ".rollback.lock"),
            "blue_green_verify_timeout": 30,
            "blue_green_health_timeout": 5,
        })
        if self.compose_mode:
            values.update(blue_green_nginx_project_dir=str(self.lb), blue_green_nginx_service="nginx")
        else:
            values["blue_green_nginx_pid_file"] = str(self.lb / "nginx.pid")
        values.update(overrides)
        return values

    def run(self, target: str, check: bool = False, json_output: bool = False, timeout: float = 300,
            **overrides) -> subprocess.CompletedProcess:
        stack = self.stacks[target]
        env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"} if json_output else None
        return run_playbook(PLAYBOOK, extra_vars=self.role_vars(target, **overrides), check=check,
                            inventory=self.inventory, vars_files=[stack.secrets_file(self.work)], env=env,
                            timeout=timeout)

    def running(self, color: str) -> dict:
        """{service: status} of a color's containers."""
        return {service: status for service, (_cid, _img, status) in self.stacks[color].containers().items()}
