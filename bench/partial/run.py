#!/usr/bin/env python3
"""bench/partial: how long `ansible-playbook rollback-partial.yml` (examples/project/) takes on
the reference stack, and each of its steps, after a bad change of the backend's plugins (a
problematic plugin added) and of its auth configuration (login switched off).

The steps come from the run's own report. Figures are medians over --rounds runs.

    .venv/bin/python bench/partial/run.py [--rounds 3]
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Run as a script, Python puts this file's folder on sys.path, not bench/ where _stack (the stack
# set-up the benchmarks share) is, nor bench/complete/ whose playbook run and step figures this
# bench reuses.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "complete"))
import _stack  # noqa: E402 - needs the sys.path entries above
from run import newest_report_steps, print_medians, project, run_playbook  # noqa: E402


def break_backend(stack_dir):
    config = json.loads((stack_dir / "plugins_config.backup.json").read_text())
    config["plugins"].append({"name": "problematic-plugin", "version": "0.1.0", "enabled": True})
    (stack_dir / "plugins_config.json").write_text(json.dumps(config, indent=2) + "\n")
    subprocess.run(["docker", "compose", "--project-directory", str(stack_dir), "exec", "-T", "backend", "sed", "-i",
                    "s/^LOGIN_ENABLED = True/LOGIN_ENABLED = False/", "/app/auth_config.py"], check=True,
                   capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="td-bench-partial-"))
    stack_dir = work / "stack"
    name = "tdbenchprt"
    _stack.init_stack(stack_dir, name)
    env, secrets = project(work, stack_dir, name)
    totals, steps = [], []
    extra = ["-e", json.dumps({"partial_plugins_disable": ["problematic-plugin"]})]
    try:
        _stack.ctl("up", "--dir", str(stack_dir), "--version", "v1")
        for round_no in range(opts.rounds):
            break_backend(stack_dir)
            elapsed = run_playbook("rollback-partial.yml", work, secrets, env, *extra)
            totals.append(elapsed)
            steps.append(newest_report_steps(stack_dir))
            print("round %d %6.2f s" % (round_no + 1, elapsed), flush=True)
        # a run with nothing to roll back: detection, checks, validation and report only
        elapsed = run_playbook("rollback-partial.yml", work, secrets, env, *extra)
        print("nothing to roll back: %.2f s" % elapsed)
    finally:
        _stack.ctl("down", "--dir", str(stack_dir))
        shutil.rmtree(work, ignore_errors=True)
    print_medians("rollback-partial.yml (plugins and auth)", totals, steps)


if __name__ == "__main__":
    main()
