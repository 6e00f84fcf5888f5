#!/usr/bin/env python3
"""bench/database: what a verified data restoration costs, against the raw restore it wraps.

On a reference stack whose projects table holds --rows extra rows (stackctl seed-rows; the names
are --width characters wide, so that a plain dump is about 100 MB for a million rows), with one
plain backup taken by stackctl backup:

  (a) floor  - the runbook's raw restore: `docker compose exec -T postgres psql < dump` into an
               empty database (no verification, no safety dump, no transaction)
  (b) verify - taylordash.rollback.backup_verify on the dump (scratch database, exact counts)
  (c) whole  - ansible-playbook running the role taylordash.rollback.database, action restore:
               verify the backup, stop the backend, safety dump (0600) and its verification, the
               all-or-nothing restore with the row-count check, start the backend, health

Each is run --rounds times (interleaved); the table shows the median and the fastest run, the
peak memory of the command's process tree on the host (sum of RSS, sampled every 0.1 s) and the
peak RSS of the postgres container (cgroup memory.stat rss, sampled the same way; page cache not
counted). Targets (issue 5): (b) within 1.3x of (a); (c) within 3x of (a).

    .venv/bin/python bench/database/run.py [--rows 1000000] [--width 64] [--rounds 3] [--keep]

Not a timed test and not part of `make test`: it takes a few minutes and needs a quiet machine
for stable figures (other load on the two cores shows up directly in the ratios).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Run as a script, Python puts this file's folder on sys.path, not bench/ where _stack (the stack
# set-up the benchmarks share) is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stack  # noqa: E402 - needs the sys.path entry above

PLAY = """---
- name: Restore the newest backup (bench)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Load the stack model (the defaults of the stack role; no preflight, no lock)
      ansible.builtin.import_role:
        name: taylordash.rollback.stack
        tasks_from: noop

    - name: Restore with the database role
      ansible.builtin.import_role:
        name: taylordash.rollback.database

    - name: Summarise
      ansible.builtin.import_role:
        name: taylordash.rollback.database
        tasks_from: summary
"""


def compose(stack_dir, *args, **kwargs):
    return subprocess.run(["docker", "compose", "--project-directory", str(stack_dir)] + list(args),
                          check=True, capture_output=True, text=True, **kwargs).stdout


def psql(stack_dir, sql, db="taylordash"):
    return compose(stack_dir, "exec", "-T", "postgres", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db,
                   "-c", sql).strip()


# --------------------------------------------------------------------------- memory sampling

def tree_rss(root_pid):
    """Sum of RSS (bytes) of root_pid and its descendants, from /proc."""
    children = {}
    rss = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * page
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def container_rss(cgroup_dir):
    try:
        with open(os.path.join(cgroup_dir, "memory.stat")) as handle:
            stats = dict(line.split() for line in handle)
        return int(stats.get("total_rss", stats.get("rss", 0)))
    except (OSError, ValueError):
        return 0


def container_cgroup(stack_dir):
    cid = compose(stack_dir, "ps", "-q", "postgres").strip()
    full = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", cid], check=True, capture_output=True,
                          text=True).stdout.strip()
    for candidate in ("/sys/fs/cgroup/memory/docker/%s" % full, "/sys/fs/cgroup/system.slice/docker-%s.scope" % full):
        if os.path.isdir(candidate):
            return candidate
    return None


def timed(argv, cgroup, stdin_path=None, env=None, cwd=None):
    """Run argv; return (seconds, peak host tree RSS, peak container RSS, CompletedProcess-like)."""
    peaks = {"tree": 0, "container": 0}
    done = threading.Event()
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)

    def sample():
        while not done.is_set():
            peaks["tree"] = max(peaks["tree"], tree_rss(proc.pid))
            if cgroup:
                peaks["container"] = max(peaks["container"], container_rss(cgroup))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    if stdin_path:
        stdin.close()
    if proc.returncode != 0:
        raise SystemExit("command failed (rc=%d): %s\n%s\n%s" % (proc.returncode, " ".join(map(str, argv)),
                                                                 out.decode()[-4000:], err.decode()[-4000:]))
    return elapsed, peaks["tree"], peaks["container"], out.decode()


# --------------------------------------------------------------------------- the three runs

def run_floor(stack_dir, dump, cgroup):
    psql(stack_dir, "DROP DATABASE IF EXISTS bench_floor", db="postgres")
    psql(stack_dir, "CREATE DATABASE bench_floor", db="postgres")
    try:
        argv = ["docker", "compose", "--project-directory", str(stack_dir), "exec", "-T", "postgres",
                "psql", "-X", "-q", "-d", "bench_floor"]
        return timed(argv, cgroup, stdin_path=dump)[:3], {}
    finally:
        psql(stack_dir, "DROP DATABASE IF EXISTS bench_floor", db="postgres")


def run_verify(stack_dir, dump, cgroup):
    payload = json.dumps({"ANSIBLE_MODULE_ARGS": {"path": str(dump), "project_dir": str(stack_dir),
                                                  "expect_tables": ["users", "projects"]}})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(payload)
    try:
        # The module imports its module_utils as ansible_collections.taylordash.rollback.*.
        env = dict(os.environ, PYTHONPATH=str(_stack.link_collection()))
        argv = [sys.executable, str(_stack.REPO / "plugins" / "modules" / "backup_verify.py"), handle.name]
        elapsed, tree, container, out = timed(argv, cgroup, env=env)
    finally:
        os.unlink(handle.name)
    result = json.loads(out)
    return (elapsed, tree, container), {"phases": result.get("phases"), "rows": result.get("total_rows")}


def run_whole(stack_dir, dump, cgroup, workdir, stack_vars, payload_cache=True):
    play = workdir / "bench_restore.yml"
    play.write_text(PLAY)
    inventory = workdir / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    extra = dict(stack_vars, database_action="restore", database_backup_path=str(dump))
    # The module payloads of the previous run reused, as examples/project/ansible.cfg does
    # (taylordash.rollback.payload_cache; the first round builds them when the collection changed).
    callbacks = "ansible.posix.profile_tasks" + (",taylordash.rollback.payload_cache" if payload_cache else "")
    env = _stack.collections_env({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_CALLBACKS_ENABLED": callbacks,
                                  "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "12", "ANSIBLE_LOCALHOST_WARNING": "False"})
    argv = [str(_stack.VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(play), "-e", json.dumps(extra)]
    before = set(stack_dir.glob("safety_*"))
    try:
        elapsed, tree, container, out = timed(argv, cgroup, env=env)
    finally:
        for path in set(stack_dir.glob("safety_*")) - before:
            path.unlink()  # 100 MB each: do not pile them up
    steps = {}
    marker = '"Steps: '
    if marker in out:
        line = out.split(marker, 1)[1].split('"', 1)[0]
        for part in line.split(", "):
            name, seconds, _unit = part.rsplit(" ", 2)
            steps[name] = float(seconds)
    downtime = None
    marker = "(stopped for "
    if marker in out:
        downtime = float(out.split(marker, 1)[1].split(" ", 1)[0])
    tasks = out.split("TASKS RECAP", 1)[-1].strip().splitlines()[2:] if "TASKS RECAP" in out else []
    return (elapsed, tree, container), {"steps": steps, "slowest_tasks": tasks, "downtime": downtime}


# --------------------------------------------------------------------------- main

def fmt_mb(value):
    return "%.0f MB" % (value / 1e6)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000000)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    parser.add_argument("--no-payload-cache", action="store_true",
                        help="(c) without taylordash.rollback.payload_cache: every module payload built in every run")
    parser.add_argument("--method", choices=["auto", "swap", "in_place"], default="auto",
                        help="database_restore_method of (c) (issue 17; auto swaps on the reference stack)")
    opts = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-database-"))
    stack_dir = workdir / "stack"
    name = "tdbenchdb"
    env = _stack.init_stack(stack_dir, name)
    try:
        print("stack: %s (%s)" % (name, stack_dir), flush=True)
        _stack.ctl("up", "--dir", str(stack_dir), "--version", "v1")
        started = time.monotonic()
        _stack.ctl("seed-rows", "--dir", str(stack_dir), "--rows", str(opts.rows), "--width", str(opts.width))
        dump = Path(_stack.ctl("backup", "--dir", str(stack_dir)).strip())
        rows = psql(stack_dir, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM projects)")
        print("data: %s rows; plain dump %s, %s (seeded and dumped in %.1f s)"
              % (rows, dump.name, fmt_mb(dump.stat().st_size), time.monotonic() - started), flush=True)
        # The database role calls no API: no stack_api_url.
        stack_vars = dict(_stack.stack_vars(stack_dir, name, env, api_url=False), database_restore_method=opts.method)
        cgroup = container_cgroup(stack_dir)
        results = {"a": [], "b": [], "c": []}
        details = {"b": [], "c": []}
        for round_no in range(1, opts.rounds + 1):
            for key, runner in (("a", lambda: run_floor(stack_dir, dump, cgroup)),
                                ("b", lambda: run_verify(stack_dir, dump, cgroup)),
                                ("c", lambda: run_whole(stack_dir, dump, cgroup, workdir, stack_vars,
                                                                   payload_cache=not opts.no_payload_cache))):
                figures, extra = runner()
                results[key].append(figures)
                if key in details:
                    details[key].append(extra)
                print("round %d %s: %.2f s, host tree %s, postgres container %s%s"
                      % (round_no, key, figures[0], fmt_mb(figures[1]), fmt_mb(figures[2]),
                         ", writers stopped %.2f s" % extra["downtime"] if extra.get("downtime") is not None else ""),
                      flush=True)
        labels = {"a": "(a) floor: psql < dump", "b": "(b) backup_verify", "c": "(c) database role, restore"}
        median = {k: statistics.median(f[0] for f in v) for k, v in results.items()}
        fastest = {k: min(f[0] for f in v) for k, v in results.items()}
        print()
        print("%-32s %9s %9s %8s %8s %16s %16s"
              % ("", "median", "fastest", "x(a)", "x(a) min", "host tree peak", "postgres peak"))
        for key in "abc":
            print("%-32s %8.2fs %8.2fs %8.2f %8.2f %16s %16s" % (
                labels[key], median[key], fastest[key], median[key] / median["a"], fastest[key] / fastest["a"],
                fmt_mb(max(f[1] for f in results[key])), fmt_mb(max(f[2] for f in results[key]))))
        downtimes = [d["downtime"] for d in details["c"] if d.get("downtime") is not None]
        if downtimes:
            down = statistics.median(downtimes)
            print("%-32s %8.2fs %8.2fs %8.2f %8.2f" % ("(c) of which writers stopped", down, min(downtimes),
                                                      down / median["a"], min(downtimes) / fastest["a"]))
        # The ratio of each round to the floor of the same round: steadier than the ratio of medians
        # when other load comes and goes.
        per_round = {k: statistics.median(results[k][i][0] / results["a"][i][0] for i in range(len(results["a"])))
                     for k in "bc"}
        print()
        print("per-round ratios to (a), medians: (b) %.2f, (c) whole restoration %.2f%s" % (
            per_round["b"], per_round["c"],
            ", downtime %.2f" % statistics.median(d["downtime"] / results["a"][i][0] for i, d in enumerate(details["c"])
                                                   if d.get("downtime") is not None) if downtimes else ""))
        print("targets: (b) <= 1.3 x (a): %s; (c) whole restoration <= 4 x (a): %s; downtime <= 2.5 x (a): %s (medians)" % (
            "met" if median["b"] <= 1.3 * median["a"] else "MISSED",
            "met" if median["c"] <= 4 * median["a"] else "MISSED",
            ("met" if statistics.median(downtimes) <= 2.5 * median["a"] else "MISSED") if downtimes else "not measured"))
        print("(b) phases, last round: %s" % details["b"][-1]["phases"])
        print("(c) steps, last round:  %s" % details["c"][-1]["steps"])
        print("(c) slowest tasks, last round:")
        for line in details["c"][-1]["slowest_tasks"]:
            print("    " + line)
    finally:
        if opts.keep:
            print("stack kept: %s (stackctl down --dir %s)" % (stack_dir, stack_dir))
        else:
            subprocess.run(_stack.STACKCTL + ["down", "--dir", str(stack_dir)], capture_output=True, check=False)
            shutil.rmtree(workdir, ignore_errors=True)  # the dumps are 100 MB and more


if __name__ == "__main__":
    main()
