"""A compose stack that is not TaylorDash, for the tests of issue 11 (any compose stack).

Two services, ``api`` and ``web``, of tiny images of their own (``app.py`` on the reference base
image): v1 answers ``/health`` with 200, v2 (the bad deploy) with 503. ``web``'s image has a Docker
HEALTHCHECK, ``api``'s has none. No ``.env``, no validation script, no login API, no frontend, no
database; random ports on 127.0.0.1 with ``network_mode: host``.

The images are built once per content: their tag is a hash of the files here, so a second run
(or a second test session) finds them built, as ``stack/stackctl build`` caches by inputs.
"""
from __future__ import annotations

import hashlib
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_REPO = "tdother_app"
SERVICES = ("api", "web")


def _docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def content_hash() -> str:
    digest = hashlib.sha256()
    for name in ("Dockerfile", "Dockerfile.web", "app.py"):
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_images() -> dict:
    """``{(service, version): image ref}``, built only when the content hash is new."""
    tag = content_hash()
    refs = {}
    for version in ("v1", "v2"):
        api = f"{BUILD_REPO}:{tag}-api-{version}"
        web = f"{BUILD_REPO}:{tag}-web-{version}"
        if _docker("image", "inspect", api, check=False).returncode != 0:
            _docker("build", "-q", "--build-arg", f"APP_VERSION={version}", "-t", api, "-f",
                    str(HERE / "Dockerfile"), str(HERE))
        if _docker("image", "inspect", web, check=False).returncode != 0:
            _docker("build", "-q", "--build-arg", f"BASE={api}", "-t", web, "-f", str(HERE / "Dockerfile.web"),
                    str(HERE))
        refs[("api", version)] = api
        refs[("web", version)] = web
    return refs


def free_ports(count: int) -> list:
    """Different free ports: all bound before any is released, or the kernel may give one twice."""
    sockets = [socket.socket() for dummy in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class OtherStack:
    """One instance of the stack: its own compose project, image repositories and ports."""

    def __init__(self, directory: Path, images: dict):
        self.name = f"tdo{secrets.token_hex(3)}"
        self.dir = Path(directory)
        self.images = images
        self.ports = dict(zip(("api", "web"), free_ports(2)))
        self.repos = {service: f"{self.name}_{service}" for service in SERVICES}
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = ["services:"]
        for service in SERVICES:
            lines += [f"  {service}:",
                      f"    image: {self.repos[service]}:latest",
                      "    network_mode: host",
                      "    init: true",
                      "    environment:",
                      f"      APP_PORT: \"{self.ports[service]}\""]
        (self.dir / "compose.yaml").write_text("\n".join(lines) + "\n")
        for service in SERVICES:
            for version in ("v1", "v2"):
                _docker("image", "tag", images[(service, version)], f"{self.repos[service]}:{version}")

    def url(self, service: str, path: str = "/health") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def stack_vars(self, health_urls=SERVICES) -> dict:
        """The four stack variables, and nothing else."""
        return {
            "stack_project_dir": str(self.dir),
            "stack_compose_project": self.name,
            "stack_compose_files": ["compose.yaml"],
            "stack_services": [dict({"name": s, "image": self.repos[s]},
                                    **({"health_url": self.url(s)} if s in health_urls else {}))
                               for s in SERVICES],
        }

    def compose(self, *args: str) -> subprocess.CompletedProcess:
        return _docker("compose", "--project-directory", str(self.dir), "-p", self.name, *args)

    def deploy(self, version: str) -> None:
        """The deploy pipeline: keep the running build as :previous, point :latest at VERSION, recreate."""
        for service in SERVICES:
            repo = self.repos[service]
            if self.image_id(f"{repo}:latest"):
                _docker("image", "tag", f"{repo}:latest", f"{repo}:previous")
            _docker("image", "tag", f"{repo}:{version}", f"{repo}:latest")
        self.compose("up", "-d", "--no-build", "--pull", "never")
        self.wait_status(200 if version == "v1" else 503)

    def wait_status(self, status: int, deadline: float = 30.0) -> None:
        end = time.monotonic() + deadline
        last = {}
        while time.monotonic() < end:
            for service in SERVICES:
                try:
                    with urllib.request.urlopen(self.url(service), timeout=2) as resp:
                        last[service] = resp.status
                except urllib.error.HTTPError as exc:
                    last[service] = exc.code
                except OSError:
                    last[service] = None
            if all(last.get(s) == status for s in SERVICES):
                return
            time.sleep(0.1)
        raise AssertionError(f"the stack never answered {status}: {last}")

    def image_id(self, ref: str) -> str | None:
        proc = _docker("image", "inspect", "-f", "{{.Id}}", ref, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def running_images(self) -> dict:
        out = {}
        for service in SERVICES:
            cid = self.compose("ps", "-q", service).stdout.strip()
            out[service] = _docker("inspect", "-f", "{{.Image}}", cid).stdout.strip() if cid else None
        return out

    def tags(self) -> dict:
        out = {}
        for service in SERVICES:
            proc = _docker("image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                           self.repos[service])
            for line in proc.stdout.splitlines():
                ref, image = line.split()
                out[ref] = image
        return out

    def down(self) -> None:
        subprocess.run(["docker", "compose", "--project-directory", str(self.dir), "-p", self.name, "down",
                        "--remove-orphans", "-t", "2"], capture_output=True, timeout=120, check=False)
        refs = list(self.tags())
        if refs:
            subprocess.run(["docker", "image", "rm", *refs], capture_output=True, timeout=120, check=False)
