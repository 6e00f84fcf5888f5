#!/usr/bin/env python3
"""bench/warm_workers: the CPU one rollback costs, with and without the warm_workers callback.

ansible-playbook forks a worker process for every task; each worker compiles the templates of its
task, loads the filters they call, and forgets both when it exits. The warm_workers callback keeps
the compiled templates (in a private directory, reused by the next worker and the next run), loads
this collection's filters once before the workers are forked, and freezes the garbage collector
before each task. This bench runs `ansible-playbook rollback-immediate.yml` from examples/project/
on one reference stack, put back on the bad v2 (unhealthy) before every run, in two ways:

  cold  - examples/project's callbacks without warm_workers (the payload cache stays on)
  warm  - examples/project's callbacks as they are (warm_workers on, its templates kept by a
          warm-up run)

in alternating order, and takes the CPU time (user + system) of ansible-playbook and everything
it starts with getrusage(RUSAGE_CHILDREN), and the wall time. The Docker engine's CPU is not
counted: it is the same in both. The response-time sampling of the validation is off
(validate_perf_enabled): it measures the load.

    .venv/bin/python bench/warm_workers/run.py [--rounds 4]
"""
import argparse
import configparser
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, Python puts this file's folder on sys.path, not bench/ where _stack (the stack
# set-up the benchmarks share) is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stack  # noqa: E402 - needs the sys.path entry above

WARM_WORKERS = "taylordash.rollback.warm_workers"


def project_callbacks():
    """The callbacks examples/project/ansible.cfg enables, in its order."""
    config = configparser.ConfigParser()
    config.read(_stack.EXAMPLES_PROJECT / "ansible.cfg")
    return [name.strip() for name in config.get("defaults", "callbacks_enabled").split(",") if name.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    opts = parser.parse_args()

    callbacks = project_callbacks()
    if WARM_WORKERS not in callbacks:
        raise SystemExit("examples/project/ansible.cfg does not enable %s: nothing to compare" % WARM_WORKERS)
    work, stack_dir, dummy, variables, secrets = _stack.bench_stack(
        "td-bench-warm-", "tdbenchwarm", validate_perf_enabled=False)
    # Its own template directory, so that "warm" starts from what its warm-up run kept, not from
    # whatever earlier runs of other code left in the user's.
    templates = work / "templates"
    envs = {
        "cold": _stack.collections_env({"ANSIBLE_CALLBACKS_ENABLED": ",".join(
            name for name in callbacks if name != WARM_WORKERS)}),
        "warm": _stack.collections_env({"TAYLORDASH_TEMPLATE_CACHE": str(templates)}),
    }
    argv = _stack.playbook_argv("rollback-immediate.yml", variables, secrets)

    def run(way):
        _stack.ctl("deploy", "--dir", str(stack_dir), "v2", "--fault", "unhealthy", "--no-backup")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=str(_stack.EXAMPLES_PROJECT), env=envs[way], capture_output=True,
                              text=True, timeout=300)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit("rollback failed (%s):\n%s\n%s" % (way, proc.stdout[-3000:], proc.stderr[-3000:]))
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall

    results = {way: {"cpu": [], "wall": []} for way in envs}
    started = time.monotonic()
    try:
        _stack.ctl("up", "--dir", str(stack_dir), "--version", "v1")
        run("warm")  # warm-up: keeps the compiled templates (and the payloads of both ways)
        order = list(envs)
        for round_no in range(opts.rounds):
            for way in order[round_no % 2:] + order[:round_no % 2]:
                cpu, wall = run(way)
                results[way]["cpu"].append(cpu)
                results[way]["wall"].append(wall)
                print("round %d %-5s cpu %6.2f s  wall %6.2f s" % (round_no + 1, way, cpu, wall), flush=True)
    finally:
        _stack.ctl("down", "--dir", str(stack_dir))
        shutil.rmtree(work, ignore_errors=True)

    med = {way: {key: statistics.median(values) for key, values in r.items()} for way, r in results.items()}
    print("\none rollback-immediate run, median over %d rounds (%.0f s in all; load %s)" % (
        opts.rounds, time.monotonic() - started, " ".join("%.2f" % x for x in os.getloadavg())))
    for way in envs:
        print("%-5s cpu %6.2f s  wall %6.2f s" % (way, med[way]["cpu"], med[way]["wall"]))
    print("warm_workers: cpu %+.1f %%, wall %+.1f %%" % (
        100 * (med["warm"]["cpu"] / med["cold"]["cpu"] - 1), 100 * (med["warm"]["wall"] / med["cold"]["wall"] - 1)))
    print(json.dumps({"median": med, "runs": results}))


if __name__ == "__main__":
    main()
