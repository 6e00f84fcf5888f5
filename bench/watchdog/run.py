#!/usr/bin/env python3
"""bench/watchdog: how fast the automatic rollback detects a bad deploy and gets the stack back.

For each fault of the reference stack's v2 (unhealthy, errors at 30 %, crash), per round:

  1. the stack is put back on the good v1 (`stackctl deploy v1 --wait`, the watchdog's state
     file and any lock removed);
  2. the bad v2 is deployed the way the pipeline does (`stackctl deploy v2 --fault F`);
     t0 = when the fault is observable: the bad build's first answer (unhealthy, errors), or the
     end of the deploy (crash: the build never answers);
  3. the sampler runs continuously from t0, as the Event-Driven Ansible source does
     (plugins/module_utils/_trigger.sample + decide, windows of --window seconds): **trigger** =
     seconds from t0 to the verdict rollback=true;
  4. `ansible-playbook watchdog.yml -e watchdog_verdict=<the verdict>` from examples/project runs
     at once (what the EDA rule does): **answers** = seconds from t0 until /health/ready answers
     200 naming v1 (a 50 ms poller), **verified** = seconds from t0 until the stack is verified
     healthy: the rollback's health and image ID checks passed and its validation (P1 script,
     checklist, response times) ended with every check passed - the end of the validation as the
     run's report records it (validation.started_at + duration); **done** = seconds from t0 until
     the playbook exits 0 (after it also released the lock, recorded the cooldown and wrote the
     report).

With --oneshot, step 3-4 are replaced by one `ansible-playbook watchdog.yml` started at t0 that
samples by itself (an AWX schedule or a timer firing right then): answers and verified as above.

Then the false-positive and slow cases:

  * good deploy: v1 deployed again (`--wait`, as the pipeline waits for health), a baseline
    recorded, then continuous sampling for --fp-seconds (60 by default; 300 for the issue's five
    minutes): every window that fires is a false positive;
  * slow: a baseline of v1 (B: the smallest p95 of the backend targets; a 3 s warm-up before each
    sampling, a new build answers its first requests slower), then v2 with `--fault slow --delay D`
    where D = B (twice the baseline p95) must fire p95_degradation, and D = 0.2 B (1.2x) must not.

    .venv/bin/python bench/watchdog/run.py [--rounds 3] [--fp-seconds 60] [--oneshot]

Targets (issue 15): trigger <= 5 s and verified recovery <= 15 s for unhealthy, crash, errors; no
trigger on a good deploy; slow at 2x the baseline triggers, 1.2x does not.
Not a timed test and not part of `make test`; other load on the machine shows up directly.
"""
import argparse
import datetime
import importlib.util
import json
import os
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

_spec = importlib.util.spec_from_file_location("_trigger", _stack.REPO / "plugins" / "module_utils" / "_trigger.py")
trigger = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trigger)


def status_of(url):
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except Exception:  # noqa: BLE001 - an unreadable body still is an answer
            return exc.code, {}
    except Exception:  # noqa: BLE001 - no answer
        return None, {}


def wait_for(predicate, limit=120.0, step=0.05):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return time.monotonic()
        time.sleep(step)
    return None


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.work = Path(tempfile.mkdtemp(prefix="td-bench-watchdog-"))
        self.dir = self.work / "stack"
        self.name = "tdbenchwdg"
        env = _stack.init_stack(self.dir, self.name)
        self.env = env
        self.backend = _stack.backend_url(env)
        self.health, frontend = _stack.health_urls(env)
        self.targets = [
            {"name": "backend_health", "url": self.health, "kind": "health"},
            {"name": "frontend_health", "url": frontend, "kind": "health"},
            {"name": "auth_login", "url": self.backend + "/api/v1/auth/login", "method": "POST",
             "headers": {"Content-Type": "application/json"},
             "body": json.dumps({"username": env["TD_ADMIN_USERNAME"], "password": env["TD_ADMIN_PASSWORD"]})},
            {"name": "api_projects", "url": self.backend + "/api/v1/projects", "headers": {"X-API-Key": env["TD_API_KEY"]}},
            {"name": "frontend", "url": frontend},
        ]
        extra = dict(_stack.stack_vars(self.dir, self.name, env), report_dir=str(self.work / "reports"),
                     # the validation's own latency targets are not what this bench measures
                     validate_perf_samples=3, validate_perf_warmup=0, validate_perf_api_target=10,
                     validate_perf_auth_target=10, validate_perf_frontend_target=10)
        (self.work / "vars.json").write_text(json.dumps(extra))
        self.secrets = _stack.write_secrets(self.work / "secrets.json", env)
        self.ansible_env = _stack.collections_env()

    def playbook(self, *extra):
        return _stack.playbook_argv("watchdog.yml", self.work / "vars.json", self.secrets) + list(extra)

    def good(self):
        _stack.ctl("deploy", "--dir", str(self.dir), "v1", "--no-backup", "--wait", "120")
        (self.dir / ".watchdog_state.json").unlink(missing_ok=True)
        (self.dir / ".rollback.lock").unlink(missing_ok=True)

    def sample_until_fired(self, limit=60.0, baseline=None):
        start = time.monotonic()
        while time.monotonic() - start < limit:
            fig = trigger.sample(self.targets, self.opts.window)
            verdict = trigger.decide(fig, baseline=baseline)
            if verdict["rollback"]:
                return time.monotonic(), verdict
        return None, None

    def validated_at(self, t0):
        """Seconds from t0 to the end of the validation of the newest report (None: no report, or
        the validation did not pass)."""
        reports = sorted((self.work / "reports").glob("rollbacks/*/rollback_report_*.json"), key=lambda p: p.stat().st_mtime)
        if not reports:
            return None
        validation = json.loads(reports[-1].read_text()).get("validation") or {}
        if validation.get("passed") is not True or not validation.get("started_at") or validation.get("duration") is None:
            return None
        ended = datetime.datetime.fromisoformat(validation["started_at"]).timestamp() + float(validation["duration"])
        wall_t0 = time.time() - (time.monotonic() - t0)
        return ended - wall_t0

    def run_playbook(self, argv, t0, limit=300):
        answered = {}
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                code, body = status_of(self.health)
                if code == 200 and body.get("version") == "v1":
                    answered["t"] = time.monotonic() - t0
                    return
                time.sleep(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        proc = subprocess.run(argv, cwd=str(_stack.EXAMPLES_PROJECT), env=self.ansible_env,
                              capture_output=True, text=True, timeout=limit, check=False)
        exited = time.monotonic() - t0
        poller.join(timeout=30)
        stop.set()
        if self.opts.log:
            with open(self.opts.log, "a") as out:
                out.write("$ %s\n%s%s\n" % (" ".join(argv), proc.stdout, proc.stderr))
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-2000:])
        return answered.get("t"), self.validated_at(t0), exited, proc.returncode

    def fault_round(self, fault):
        self.good()
        extra = ["--error-rate", "0.3"] if fault == "errors" else []
        _stack.ctl("deploy", "--dir", str(self.dir), "v2", "--fault", fault, "--no-backup", *extra)
        deployed = time.monotonic()
        if fault == "crash":
            t0 = deployed
        else:
            t0 = wait_for(lambda: status_of(self.backend + "/health/live")[0] is not None, limit=120)
        startup = t0 - deployed
        if self.opts.oneshot:
            answer, verified, done, rc = self.run_playbook(self.playbook(), t0)
            fired, reasons = None, "(one-shot playbook)"
        else:
            fired_at, verdict = self.sample_until_fired()
            fired = fired_at - t0 if fired_at else None
            if verdict is None:
                return dict(fault=fault, startup=round(startup, 2), trigger=None, answers=None, verified=None,
                            done=None, rc=-1, reasons="never fired")
            reasons = "; ".join(r["detail"] for r in verdict["reasons"])
            verdict_arg = json.dumps({"watchdog_verdict": {"rollback": True, "reasons": verdict["reasons"],
                                                           "figures": {"sampled_s": verdict["figures"]["sampled_s"],
                                                                       "overall": verdict["figures"]["overall"]}}})
            answer, verified, done, rc = self.run_playbook(self.playbook("-e", verdict_arg), t0)
        return dict(fault=fault, startup=round(startup, 2), trigger=fired and round(fired, 2),
                    answers=answer and round(answer, 2), verified=verified and round(verified, 2), done=round(done, 2),
                    rc=rc, reasons=reasons)

    def baseline(self):
        fig = trigger.sample(self.targets, self.opts.baseline_window, stop_early=False)
        return trigger.make_baseline(fig)

    def false_positives(self):
        self.good()
        base = self.baseline()
        start = time.monotonic()
        windows = fired = 0
        details = []
        while time.monotonic() - start < self.opts.fp_seconds:
            fig = trigger.sample(self.targets, self.opts.window)
            verdict = trigger.decide(fig, baseline=base)
            windows += 1
            if verdict["rollback"]:
                fired += 1
                details.append("; ".join(r["detail"] for r in verdict["reasons"]))
        return dict(seconds=round(time.monotonic() - start, 1), windows=windows, fired=fired, details=details,
                    baseline={k: v["p95_ms"] for k, v in base["targets"].items()})

    def warm(self):
        # A build just started answers its first requests slower (a cold process): not its speed.
        trigger.sample(self.targets, 3.0, stop_early=False)

    def slow(self):
        self.good()
        self.warm()
        base = self.baseline()
        # the fastest backend target: 2x is at least 2x for it, 1.2x at most 1.2x for every target
        api_p95 = min(v["p95_ms"] for k, v in base["targets"].items() if k != "frontend" and v["p95_ms"])
        out = {}
        for label, factor in (("2x", 1.0), ("1.2x", 0.2)):
            delay = round(api_p95 * factor / 1000.0, 3)
            _stack.ctl("deploy", "--dir", str(self.dir), "v2", "--fault", "slow", "--delay", str(delay), "--no-backup")
            wait_for(lambda: status_of(self.backend + "/health/live")[0] is not None, limit=120)
            self.warm()
            fig = trigger.sample(self.targets, self.opts.slow_window, stop_early=False)
            verdict = trigger.decide(fig, baseline=base)
            out[label] = dict(delay_s=delay, fired=[r["trigger"] + ":" + r["target"] for r in verdict["reasons"]],
                              p95_ms={k: v["p95_ms"] for k, v in fig["targets"].items() if v["kind"] == "request"},
                              baseline_p95_ms={k: v["p95_ms"] for k, v in base["targets"].items()},
                              p50_ms={k: v["p50_ms"] for k, v in fig["targets"].items() if v["kind"] == "request"},
                              baseline_p50_ms={k: v["p50_ms"] for k, v in base["targets"].items()}, load=os.getloadavg()[0])
        self.good()
        return out

    def close(self):
        _stack.ctl("down", "--dir", str(self.dir))
        shutil.rmtree(self.work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--faults", default="unhealthy,errors,crash")
    parser.add_argument("--window", type=float, default=5.0, help="seconds per sampling window")
    parser.add_argument("--baseline-window", type=float, default=10.0)
    parser.add_argument("--slow-window", type=float, default=10.0)
    parser.add_argument("--fp-seconds", type=float, default=60.0, help="false-positive sampling on a good deploy (300: 5 min)")
    parser.add_argument("--oneshot", action="store_true", help="one watchdog playbook that samples by itself, instead of sampler + verdict")
    parser.add_argument("--log", help="append the output of every playbook run to this file (with "
                        "ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks: where the seconds go)")
    parser.add_argument("--skip", default="", help="comma list of: faults,fp,slow")
    opts = parser.parse_args()
    skip = set(filter(None, opts.skip.split(",")))
    bench = Bench(opts)
    results = {"faults": [], "fp": None, "slow": None, "load": os.getloadavg()}
    try:
        _stack.ctl("up", "--dir", str(bench.dir), "--version", "v1")
        if "faults" not in skip:
            for round_no in range(opts.rounds):
                for fault in opts.faults.split(","):
                    row = bench.fault_round(fault)
                    results["faults"].append(row)
                    print("round %d %-9s startup %5.2f s  trigger %6s s  answers %6s s  verified %6s s  done %6s s  rc=%d  (%s)" % (
                        round_no + 1, fault, row["startup"], row["trigger"], row["answers"], row["verified"], row["done"],
                        row["rc"], row["reasons"][:160]), flush=True)
        if "fp" not in skip:
            results["fp"] = bench.false_positives()
            print("good deploy: %(fired)d of %(windows)d windows fired over %(seconds)s s; baseline p95 %(baseline)s" % results["fp"],
                  flush=True)
            for line in results["fp"]["details"]:
                print("  false positive:", line)
        if "slow" not in skip:
            results["slow"] = bench.slow()
            for label, row in results["slow"].items():
                print("slow %-4s delay %.3f s: fired %s; p95 %s vs baseline %s; p50 %s vs baseline %s; load %.1f" % (
                    label, row["delay_s"], row["fired"] or "nothing", row["p95_ms"], row["baseline_p95_ms"],
                    row["p50_ms"], row["baseline_p50_ms"], row["load"]), flush=True)
    finally:
        bench.close()
    if results["faults"]:
        print("\nmedian per fault (seconds from t0)")
        for fault in opts.faults.split(","):
            rows = [r for r in results["faults"] if r["fault"] == fault]

            def med(key, rows=rows):
                values = [r[key] for r in rows if r[key] is not None]
                return statistics.median(values) if values else float("nan")
            print("%-9s trigger %6.2f  answers %6.2f  verified %6.2f  done %6.2f   targets trigger <= 5: %s, verified <= 15: %s" % (
                fault, med("trigger"), med("answers"), med("verified"), med("done"),
                "met" if med("trigger") <= 5 else ("n/a" if opts.oneshot else "NOT met"), "met" if med("verified") <= 15 else "NOT met"))
    print("load average (1, 5, 15 min) at the start: %.1f %.1f %.1f" % results["load"])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
