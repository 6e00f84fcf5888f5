#!/usr/bin/env python3
"""bench/immediate: three ways of rolling the reference stack back after a bad deploy.

  (a) floor  - the same steps as raw docker commands, with a tight health poll (floor.sh)
  (b) seed   - the runbook's procedure as written: stop, tag, up, sleep 30, curl, validate_p1.sh
  (c) ansible-playbook rollback-immediate.yml from examples/project/

For each: the time until the good version answers (an external poller hits /health/ready every
50 ms from the moment the command starts and waits for a 200 naming v1), the time until the
command exits successfully, and the CPU time (user + system) of the command and everything it
started and waited for (not the Docker engine's). Before every run the stack is put back on the bad v2 (unhealthy),
the way the pipeline deploys. Figures are medians over --rounds runs.

    .venv/bin/python bench/immediate/run.py [--rounds 3] [--seed-sleep 30]

Targets (issue 3): (c) restores service within 1.5 s of (a); (c) exits verified in under a
tenth of (b)'s time.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
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


def answers_v1(url):
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return resp.status == 200 and json.load(resp).get("version") == "v1"
    except Exception:  # noqa: BLE001 - anything else is "not yet"
        return False


def answers_bad(url):
    try:
        urllib.request.urlopen(url, timeout=0.5)
    except urllib.error.HTTPError as exc:
        return exc.code == 503 and json.load(exc).get("version") == "v2"
    except Exception:  # noqa: BLE001
        return False
    return False


def measure(argv, health_url, cwd=None, env=None, limit=180, log=None):
    """Start argv and a 50 ms poller together; (seconds to v1 answering, seconds to exit, CPU seconds
    of argv and its children)."""
    answered = {}
    stop = threading.Event()

    def poll(start):
        while not stop.is_set() and time.monotonic() - start < limit:
            if answers_v1(health_url):
                answered["t"] = time.monotonic() - start
                return
            time.sleep(0.05)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    poller = threading.Thread(target=poll, args=(start,), daemon=True)
    poller.start()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit)
    exited = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if log:
        with open(log, "a") as out:
            out.write(proc.stdout)
    poller.join(timeout=limit)
    stop.set()
    if proc.returncode != 0:
        raise SystemExit("command failed (rc=%d): %s\n%s\n%s" % (proc.returncode, " ".join(argv),
                                                                 proc.stdout[-3000:], proc.stderr[-3000:]))
    return answered.get("t"), exited, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed-sleep", type=float, default=30, help="the runbook's sleep (30 s)")
    parser.add_argument("--no-perf-validation", action="store_true",
                        help="validate_perf_enabled=false for (c): on a loaded machine the response-time targets of the "
                             "validation fail the run (the time until the good build answers is not affected)")
    parser.add_argument("--skip-runbook", action="store_true",
                        help="leave out (b), the runbook as written (its 30 s sleep): only (a) and (c)")
    parser.add_argument("--log", help="append the output of every run to this file (with "
                                      "ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks: where the time goes)")
    opts = parser.parse_args()

    name = "tdbenchimm"
    work, stack_dir, env_file, variables, secrets = _stack.bench_stack(
        "td-bench-immediate-", name, **({"validate_perf_enabled": False} if opts.no_perf_validation else {}))
    backend, frontend = _stack.health_urls(env_file)
    ansible_env = _stack.collections_env()
    seed_env = dict(os.environ, SEED_SLEEP=str(opts.seed_sleep))
    methods = {
        "a_floor": ([str(HERE / "floor.sh"), str(stack_dir), name, backend, frontend], None, None),
        "b_seed": ([str(HERE / "seed.sh"), str(stack_dir), name, backend], None, seed_env),
        "c_ansible": (_stack.playbook_argv("rollback-immediate.yml", variables, secrets),
                      str(_stack.EXAMPLES_PROJECT), ansible_env),
    }
    if opts.skip_runbook:
        del methods["b_seed"]
    results = {m: {"answer": [], "exit": [], "cpu": []} for m in methods}
    try:
        _stack.ctl("up", "--dir", str(stack_dir), "--version", "v1")
        for round_no in range(opts.rounds):
            for method, (argv, cwd, env) in methods.items():
                _stack.ctl("deploy", "--dir", str(stack_dir), "v2", "--fault", "unhealthy", "--no-backup")
                # The bad build is up and answering (503, naming v2) before the rollback starts.
                deadline = time.monotonic() + 30
                while not answers_bad(backend) and time.monotonic() < deadline:
                    time.sleep(0.05)
                answer, exited, cpu = measure(argv, backend, cwd=cwd, env=env, log=opts.log)
                results[method]["answer"].append(answer)
                results[method]["exit"].append(exited)
                results[method]["cpu"].append(cpu)
                print("round %d %-10s answered %6s s  exited %6.2f s  cpu %6.2f s" % (
                    round_no + 1, method, "%.2f" % answer if answer is not None else "never", exited, cpu),
                    flush=True)
    finally:
        _stack.ctl("down", "--dir", str(stack_dir))
        # The stack directory holds the secrets file and the stack's .env: remove it with the stack.
        shutil.rmtree(work, ignore_errors=True)

    med = {m: {k: statistics.median([v for v in r[k] if v is not None] or [float("nan")]) for k in r}
           for m, r in results.items()}
    print("\nmedian over %d rounds (seconds)" % opts.rounds)
    print("%-10s %10s %10s %10s" % ("method", "answers", "exits", "cpu"))
    for method in methods:
        print("%-10s %10.2f %10.2f %10.2f" % (method, med[method]["answer"], med[method]["exit"], med[method]["cpu"]))
    restore_gap = med["c_ansible"]["answer"] - med["a_floor"]["answer"]
    # The gap of each round (c minus the floor of the same round): steadier when load comes and goes.
    gaps = [c - a for c, a in zip(results["c_ansible"]["answer"], results["a_floor"]["answer"])
            if c is not None and a is not None]
    print("\n(c) restores service %.2f s after (a) (medians); per round %s, median %.2f s"
          "   target (issue 17) <= floor + 2.5 s: %s" % (
              restore_gap, ", ".join("%.2f" % g for g in gaps), statistics.median(gaps) if gaps else float("nan"),
              "met" if gaps and statistics.median(gaps) <= 2.5 else "NOT met"))
    if "b_seed" in med:
        exit_ratio = med["c_ansible"]["exit"] / med["b_seed"]["exit"]
        print("(c) exits verified in %.3f of (b)'s time          target < 0.1: %s" % (
            exit_ratio, "met" if exit_ratio < 0.1 else "NOT met"))
        print("(c) answers %.1fx faster than (b); exits %.1fx faster" % (
            med["b_seed"]["answer"] / med["c_ansible"]["answer"], med["b_seed"]["exit"] / med["c_ansible"]["exit"]))
    print(json.dumps({"median": med, "runs": results}))


if __name__ == "__main__":
    main()
