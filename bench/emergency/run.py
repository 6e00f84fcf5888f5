#!/usr/bin/env python3
"""bench/emergency: recovering the reference stack after a failed rollback, two ways.

  (b) seed   - the runbook's "Recovery After Failed Rollback" as written (seed.sh): down -v,
               up postgres, sleep 30, DROP/CREATE DATABASE, psql < emergency_backup.sql, cp the
               emergency files, up, sleep 120, validate_p1.sh (the host-wide prunes left out)
  (c) ansible-playbook emergency-recovery.yml from examples/project/ (lock, snapshot, backup
      verified before the stop, down keeping volumes, project-only cleanup, config_restore,
      image_retag to v1, the database role's verified restore, up, health with a deadline,
      validation with a full performance sample, report)

Before every run the stack is broken the way a failed rollback leaves it: the bad v2 (unhealthy)
runs and rows were written after the emergency backup. For each: the time until the backend answers
healthy (an external poller, every 50 ms from the start of the command, any version: the
runbook's procedure leaves the v2 build running, healthy once its .env names no fault) and until
the command exits; for (c) also the recovery's own step timings (its "Steps:" line). Medians over --rounds.

    .venv/bin/python bench/emergency/run.py [--rounds 1] [--seed-sleeps 30,120] [--skip-seed]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

# Run as a script, Python puts this file's folder on sys.path, not bench/ where _stack (the stack
# set-up the benchmarks share) is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stack  # noqa: E402 - needs the sys.path entry above

HERE = Path(__file__).resolve().parent


def answers_healthy(url):
    """A 200 from /health/ready, whatever the version: the runbook's procedure restores the
    configuration (TD_FAULT=none) but not the images, so the v2 build answers healthy after it."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return resp.status == 200
    except Exception:  # noqa: BLE001 - anything else is "not yet"
        return False


def measure(argv, health_url, cwd=None, env=None, limit=600):
    """Start argv and a 50 ms poller together; (seconds to a healthy answer, seconds to exit, output).
    The poller waits until the service has stopped answering first (the recovery stops the stack), so an
    answer counts only once the recovered stack is up."""
    answered = {}
    stop = threading.Event()

    def poll(start):
        seen_down = False
        while not stop.is_set() and time.monotonic() - start < limit:
            ok = answers_healthy(health_url)
            if not ok:
                seen_down = True
            elif seen_down:
                answered["t"] = time.monotonic() - start
                return
            time.sleep(0.05)

    start = time.monotonic()
    poller = threading.Thread(target=poll, args=(start,), daemon=True)
    poller.start()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit)
    exited = time.monotonic() - start
    poller.join(timeout=5)
    stop.set()
    if proc.returncode != 0:
        raise SystemExit("command failed (rc=%d): %s\n%s\n%s" % (proc.returncode, " ".join(argv),
                                                                 proc.stdout[-4000:], proc.stderr[-3000:]))
    return answered.get("t"), exited, proc.stdout


def steps_of(stdout):
    """{step: seconds} from the recovery's summary line 'Steps: name 1.2 s, ...'."""
    match = re.search(r'"Steps: (.*)"', stdout)
    if not match:
        return {}
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(.+?) ([\d.]+) s(?:, |$)", match.group(1))}


def break_stack(stack_dir):
    """The state a failed rollback leaves: the bad v2 runs, rows written after the backup."""
    shutil.copy(stack_dir / ".env.emergency", stack_dir / ".env")
    shutil.copy(stack_dir / "docker-compose.emergency.yml", stack_dir / "docker-compose.yml")
    _stack.ctl("deploy", "--dir", str(stack_dir), "v2", "--fault", "unhealthy", "--no-backup")
    _stack.ctl("seed-rows", "--dir", str(stack_dir), "--rows", "100")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed-sleeps", default="30,120", help="the runbook's two sleeps (30 and 120 s)")
    parser.add_argument("--skip-seed", action="store_true", help="time only (c)")
    opts = parser.parse_args()
    sleep_db, sleep_up = opts.seed_sleeps.split(",")

    work = Path(tempfile.mkdtemp(prefix="td-bench-emergency-"))
    stack_dir = work / "stack"
    name = "tdbenchemr"
    env_file = _stack.init_stack(stack_dir, name)
    backend, _frontend = _stack.health_urls(env_file)
    extra = dict(_stack.stack_vars(stack_dir, name, env_file),
                 emergency_image_tag="v1",
                 # The bench times the recovery; the response-time targets are the validation's business,
                 # and a loaded machine misses them. The full sample (emergency_perf_samples) still runs.
                 validate_perf_api_target=5, validate_perf_auth_target=5, validate_perf_frontend_target=5,
                 validate_perf_timeout=600)
    (work / "vars.json").write_text(json.dumps(extra))
    secrets = _stack.write_secrets(work / "secrets.json", env_file)
    ansible_env = _stack.collections_env()
    seed_env = dict(os.environ, SEED_SLEEP_DB=sleep_db, SEED_SLEEP_UP=sleep_up)
    methods = {
        "c_ansible": (_stack.playbook_argv("emergency-recovery.yml", work / "vars.json", secrets),
                      str(_stack.EXAMPLES_PROJECT), ansible_env),
    }
    if not opts.skip_seed:
        methods["b_seed"] = ([str(HERE / "seed.sh"), str(stack_dir)], None, seed_env)
    results = {m: {"answer": [], "exit": []} for m in methods}
    steps = []
    try:
        _stack.ctl("up", "--dir", str(stack_dir), "--version", "v1")
        backup = _stack.ctl("backup", "--dir", str(stack_dir)).strip().splitlines()[-1]
        shutil.copy(backup, stack_dir / "emergency_backup.sql")
        shutil.copy(stack_dir / ".env", stack_dir / ".env.emergency")
        shutil.copy(stack_dir / "docker-compose.yml", stack_dir / "docker-compose.emergency.yml")
        for round_no in range(opts.rounds):
            for method, (argv, cwd, env) in methods.items():
                break_stack(stack_dir)
                answer, exited, out = measure(argv, backend, cwd=cwd, env=env)
                results[method]["answer"].append(answer)
                results[method]["exit"].append(exited)
                if method == "c_ansible":
                    steps.append(steps_of(out))
                print("round %d %-10s answered %6s s  exited %7.2f s" % (
                    round_no + 1, method, "%.2f" % answer if answer is not None else "never", exited), flush=True)
    finally:
        _stack.ctl("down", "--dir", str(stack_dir))
        # The stack directory holds the secrets file and the stack's .env: remove it with the stack.
        shutil.rmtree(work, ignore_errors=True)

    med = {m: {k: statistics.median([v for v in r[k] if v is not None] or [float("nan")]) for k in r}
           for m, r in results.items()}
    print("\nmedian over %d round(s) (seconds)" % opts.rounds)
    print("%-10s %10s %10s" % ("method", "answers", "exits"))
    for method in methods:
        print("%-10s %10.2f %10.2f" % (method, med[method]["answer"], med[method]["exit"]))
    step_med = {name: statistics.median([s[name] for s in steps if name in s]) for name in (steps[0] if steps else {})}
    print("\n(c) steps (median seconds): " + ", ".join("%s %.2f" % kv for kv in step_med.items()))
    if "b_seed" in med:
        print("(c) answers %.1fx faster than (b); exits %.1fx faster" % (
            med["b_seed"]["answer"] / med["c_ansible"]["answer"], med["b_seed"]["exit"] / med["c_ansible"]["exit"]))
    print(json.dumps({"median": med, "steps": step_med, "runs": results}))


if __name__ == "__main__":
    main()
