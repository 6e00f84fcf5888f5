#!/usr/bin/env python3
"""bench/bytecode: the CPU one rollback costs, with and without compiled Python.

Two things decide whether Python compiles source at every start:
  venv     - the virtualenv's packages (ansible-core, Jinja2, ...) byte-compiled by scripts/setup.sh,
             or not (as pip --no-compile left them where PYTHONDONTWRITEBYTECODE is set)
  payload  - the module payloads kept by the payload_cache callback carrying their bytecode, or not
             (the zip Python imports module_utils from, where it can neither find nor keep any)

Each of the four combinations runs `ansible-playbook rollback-immediate.yml` from examples/project/
on one reference stack put back on the bad v2 (unhealthy) before every run, in rotating order, and
the CPU time (user + system) of ansible-playbook and everything it starts is taken with
getrusage(RUSAGE_CHILDREN). The Docker engine's CPU is not counted: it is the same in all four.
The virtualenv without bytecode is a copy of .venv with every .pyc removed; the payloads without
bytecode are the kept ones with their .pyc entries taken out. A warm-up run per combination builds
its payloads first. The response-time sampling of the validation is off (validate_perf_enabled):
it measures the load.

    .venv/bin/python bench/bytecode/run.py [--rounds 4]
"""
import argparse
import base64
import dataclasses
import glob
import io
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

# Run as a script, Python puts this file's folder on sys.path, not bench/ where _stack (the stack
# set-up the benchmarks share) is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stack  # noqa: E402 - needs the sys.path entry above

VENV = Path(sys.prefix) if sys.prefix != sys.base_prefix else _stack.REPO / ".venv"


def strip_payload_bytecode(store):
    """Take the .pyc entries out of every kept payload in ``store`` (as kept before the bytecode)."""
    for path in glob.glob(os.path.join(store, "*")):
        with open(path, "rb") as kept:
            payload = pickle.load(kept)
        source = zipfile.ZipFile(io.BytesIO(base64.b64decode(payload.zip_data)))
        output = io.BytesIO()
        with zipfile.ZipFile(output, mode="w") as target:
            for info in source.infolist():
                if not info.filename.endswith(".pyc"):
                    target.writestr(info, source.read(info))
        with open(path, "wb") as kept:
            pickle.dump(dataclasses.replace(payload, zip_data=base64.b64encode(output.getvalue())), kept)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    opts = parser.parse_args()

    work, stack_dir, dummy, variables, secrets = _stack.bench_stack(
        "td-bench-bytecode-", "tdbenchbyc", validate_perf_enabled=False)
    # A collections tree of its own, in the work directory (removed with it); not
    # _stack.collections_env(): the PATH of each run is its combination's virtualenv.
    collections = _stack.link_collection(work / "collections")

    # The same virtualenv without any bytecode: a copy, the original is left as it is. The ansible
    # package's collections (never byte-compiled, some 20,000 files) are linked, not copied.
    plain_venv = work / "venv-without-bytecode"
    shutil.copytree(VENV, plain_venv, symlinks=True, ignore=lambda folder, names: (
        ["ansible_collections", "__pycache__"] if folder.endswith("site-packages") else ["__pycache__"]))
    for site in VENV.glob("lib/python*/site-packages"):
        (plain_venv / site.relative_to(VENV) / "ansible_collections").symlink_to(site / "ansible_collections")
    combos = {
        "venv+payload bytecode": (VENV, True),
        "venv bytecode only": (VENV, False),
        "payload bytecode only": (plain_venv, True),
        "neither (before)": (plain_venv, False),
    }

    def run(combo):
        venv, _ = combos[combo]
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections),
                   PATH="%s/bin:%s" % (venv, os.environ["PATH"]),
                   TAYLORDASH_PAYLOAD_CACHE=str(work / "payloads" / combo.replace(" ", "_").replace("+", "_")))
        env.pop("PYTHONPYCACHEPREFIX", None)
        _stack.ctl("deploy", "--dir", str(stack_dir), "v2", "--fault", "unhealthy", "--no-backup")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([str(venv / "bin" / "python"), str(venv / "bin" / "ansible-playbook"), "rollback-immediate.yml",
                               "-e", "@%s" % variables, "-e", "@%s" % secrets],
                              cwd=str(_stack.EXAMPLES_PROJECT), env=env, capture_output=True, text=True, timeout=300)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit("rollback failed (%s):\n%s\n%s" % (combo, proc.stdout[-3000:], proc.stderr[-3000:]))
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    results = {combo: [] for combo in combos}
    started = time.monotonic()
    try:
        _stack.ctl("up", "--dir", str(stack_dir), "--version", "v1")
        for combo, (venv, payload_bytecode) in combos.items():
            run(combo)  # warm-up: builds and keeps this combination's payloads
            if not payload_bytecode:
                [store] = glob.glob(str(work / "payloads" / combo.replace(" ", "_").replace("+", "_") / "*"))
                strip_payload_bytecode(store)
        order = list(combos)
        for round_no in range(opts.rounds):
            for combo in order[round_no % len(order):] + order[:round_no % len(order)]:
                results[combo].append(run(combo))
                print("round %d %-22s cpu %6.2f s" % (round_no + 1, combo, results[combo][-1]), flush=True)
    finally:
        _stack.ctl("down", "--dir", str(stack_dir))
        shutil.rmtree(work, ignore_errors=True)

    before = statistics.median(results["neither (before)"])
    print("\nCPU of one rollback-immediate run, median over %d rounds (%.0f s in all; load %s)" % (
        opts.rounds, time.monotonic() - started, " ".join("%.2f" % x for x in os.getloadavg())))
    for combo in combos:
        med = statistics.median(results[combo])
        print("%-22s %6.2f s  %+5.1f %%   (%s)" % (combo, med, 100 * (med - before) / before,
                                                ", ".join("%.2f" % x for x in results[combo])))
    print(json.dumps({combo: {"median": statistics.median(v), "runs": v} for combo, v in results.items()}))


if __name__ == "__main__":
    main()
