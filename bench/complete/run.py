#!/usr/bin/env python3
"""bench/complete: how long `ansible-playbook rollback-complete.yml` (examples/project/) takes on
the reference stack, and each of its steps, after a bad deploy that changed the images, .env and
the compose file - without and with the database restore.

Before every run the stack is put on the bad v2 (5xx on half the requests) the way the pipeline
deploys it (a new .env.backup.<ts> / docker-compose.backup.<ts> set), plus a compose change. The
steps come from the run's own report (rollbacks/<ts>/rollback_report_<ts>.json). Figures are
medians over --rounds runs.

    .venv/bin/python bench/complete/run.py [--rounds 3] [--database]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACKCTL = [sys.executable, str(REPO / "stack" / "stackctl")]
VENV_BIN = Path(sys.executable).parent
BAD_LINE = '      TD_NEW_FEATURE: "on"\n'
ANCHOR = "      TD_PLUGINS_CONFIG: /srv/project/plugins_config.json\n"


def ctl(*args):
    return subprocess.run(STACKCTL + list(args), check=True, capture_output=True, text=True).stdout


def read_env(stack_dir):
    return dict(line.split("=", 1) for line in (stack_dir / ".env").read_text().splitlines()
                if "=" in line and not line.startswith("#"))


def project(work, stack_dir, name):
    """vars and secrets files for the examples project, and an environment that finds the collection."""
    env = read_env(stack_dir)
    backend = "http://127.0.0.1:%s" % env["TD_BACKEND_PORT"]
    extra = {
        "stack_project_dir": str(stack_dir), "stack_compose_project": name,
        "stack_services": [{"name": "backend", "image": name + "_backend", "health_url": backend + "/health/ready"},
                           {"name": "frontend", "image": name + "_frontend",
                            "health_url": "http://127.0.0.1:%s/" % env["TD_FRONTEND_PORT"]}],
        "stack_api_url": backend,
        # response times are measured by bench/immediate and the validate role; not here
        "validate_perf_enabled": False,
    }
    (work / "vars.json").write_text(json.dumps(extra))
    secrets = work / "secrets.json"
    secrets.write_text(json.dumps({"stack_api_key": env["TD_API_KEY"], "stack_admin_password": env["TD_ADMIN_PASSWORD"]}))
    secrets.chmod(0o600)
    collections = REPO / ".cache" / "collections"
    (collections / "ansible_collections" / "taylordash").mkdir(parents=True, exist_ok=True)
    link = collections / "ansible_collections" / "taylordash" / "rollback"
    if not link.exists():
        link.symlink_to(REPO)
    ansible_env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), PATH="%s:%s" % (VENV_BIN, os.environ["PATH"]))
    return ansible_env, secrets


def run_playbook(playbook, work, secrets, env, *extra):
    argv = [str(VENV_BIN / "ansible-playbook"), playbook, "-e", "@%s" % (work / "vars.json"), "-e", "@%s" % secrets, *extra]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=str(REPO / "examples" / "project"), env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (playbook, proc.stdout[-4000:]))
    return elapsed


def newest_report_steps(stack_dir):
    report = sorted(stack_dir.glob("rollbacks/*/rollback_report_*.json"))[-1]
    return {s["step"]: s["seconds"] for s in json.loads(report.read_text())["steps"]}


def print_medians(label, totals, steps):
    print("\n%s: median over %d rounds" % (label, len(totals)))
    print("  %-40s %8.2f s" % ("ansible-playbook, start to exit", statistics.median(totals)))
    names = []
    for run in steps:
        names += [n for n in run if n not in names]
    for name in names:
        values = [run[name] for run in steps if run.get(name) is not None]
        print("  %-40s %8.2f s" % (name, statistics.median(values)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", action="store_true", help="also time runs with complete_database_restore")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="td-bench-complete-"))
    stack_dir = work / "stack"
    name = "tdbenchcmp"
    ctl("init", "--dir", str(stack_dir), "--project", name)
    env, secrets = project(work, stack_dir, name)
    variants = [("images and files", [])]
    if opts.database:
        variants.append(("images, files and database", ["-e", "complete_database_restore=true"]))
    results = {label: ([], []) for label, _ in variants}
    try:
        ctl("up", "--dir", str(stack_dir), "--version", "v1")
        ctl("backup", "--dir", str(stack_dir))
        for round_no in range(opts.rounds):
            for label, extra in variants:
                ctl("deploy", "--dir", str(stack_dir), "v2", "--fault", "errors", "--error-rate", "0.5")
                compose = stack_dir / "docker-compose.yml"
                compose.write_text(compose.read_text().replace(ANCHOR, ANCHOR + BAD_LINE))
                elapsed = run_playbook("rollback-complete.yml", work, secrets, env, *extra)
                results[label][0].append(elapsed)
                results[label][1].append(newest_report_steps(stack_dir))
                print("round %d %-28s %6.2f s" % (round_no + 1, label, elapsed), flush=True)
    finally:
        ctl("down", "--dir", str(stack_dir))
        shutil.rmtree(work, ignore_errors=True)
    for label, (totals, steps) in results.items():
        print_medians("rollback-complete.yml (%s)" % label, totals, steps)


if __name__ == "__main__":
    main()
