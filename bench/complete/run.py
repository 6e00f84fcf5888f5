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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, Python puts this file's folder on sys.path, not bench/ where _stack (the stack
# set-up the benchmarks share) is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stack  # noqa: E402 - needs the sys.path entry above

BAD_LINE = '      TD_NEW_FEATURE: "on"\n'
ANCHOR = "      TD_PLUGINS_CONFIG: /srv/project/plugins_config.json\n"


def project(work, stack_dir, name):
    """vars and secrets files for the examples project, and an environment that finds the collection."""
    env = _stack.read_env(stack_dir)
    extra = dict(_stack.stack_vars(stack_dir, name, env),
                 # response times are measured by bench/immediate and the validate role; not here
                 validate_perf_enabled=False)
    (work / "vars.json").write_text(json.dumps(extra))
    secrets = _stack.write_secrets(work / "secrets.json", env)
    return _stack.collections_env(), secrets


def run_playbook(playbook, work, secrets, env, *extra):
    argv = _stack.playbook_argv(playbook, work / "vars.json", secrets) + list(extra)
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=str(_stack.EXAMPLES_PROJECT), env=env, capture_output=True, text=True)
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
    _stack.init_stack(stack_dir, name)
    env, secrets = project(work, stack_dir, name)
    variants = [("images and files", [])]
    if opts.database:
        variants.append(("images, files and database", ["-e", "complete_database_restore=true"]))
    results = {label: ([], []) for label, _ in variants}
    try:
        _stack.ctl("up", "--dir", str(stack_dir), "--version", "v1")
        _stack.ctl("backup", "--dir", str(stack_dir))
        for round_no in range(opts.rounds):
            for label, extra in variants:
                _stack.ctl("deploy", "--dir", str(stack_dir), "v2", "--fault", "errors", "--error-rate", "0.5")
                compose = stack_dir / "docker-compose.yml"
                compose.write_text(compose.read_text().replace(ANCHOR, ANCHOR + BAD_LINE))
                elapsed = run_playbook("rollback-complete.yml", work, secrets, env, *extra)
                results[label][0].append(elapsed)
                results[label][1].append(newest_report_steps(stack_dir))
                print("round %d %-28s %6.2f s" % (round_no + 1, label, elapsed), flush=True)
    finally:
        _stack.ctl("down", "--dir", str(stack_dir))
        shutil.rmtree(work, ignore_errors=True)
    for label, (totals, steps) in results.items():
        print_medians("rollback-complete.yml (%s)" % label, totals, steps)


if __name__ == "__main__":
    main()
