#!/usr/bin/env python3
"""bench/config: how long a configuration rollback of the reference stack takes, and its steps.

Before every round the stack is put on a bad configuration the way a deploy would: the good
.env and compose file are backed up as .env.backup.<ts> / docker-compose.backup.<ts>, then .env
gets TD_FAULT=slow and the backend is recreated on it; a new certificate and key are saved as
certs/taylordash.{crt,key}.backup.<ts>. Then:

  (a) floor   - the same file work as raw commands: cp the backups over the live files,
                docker compose up -d (recreates what changed), nginx -s reload
  (c) ansible - ansible-playbook rollback-config.yml from examples/project/ (validation, kept
                copies, only the changed services recreated, the served certificate checked,
                P1 validation, report)

For each: the time until the command exits successfully; for (c) also the seconds of each step
of the config role (its "Steps:" line) and of the whole play. Medians over --rounds runs.

    .venv/bin/python bench/config/run.py [--rounds 3]
"""
import argparse
import datetime
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Run as a script, Python puts this file's folder on sys.path, not bench/ where _stack (the stack
# set-up the benchmarks share) is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stack  # noqa: E402 - needs the sys.path entry above

STEPS_RE = re.compile(r'"Steps: (.*)"')


def compose(stack_dir, *args):
    subprocess.run(["docker", "compose", "--project-directory", str(stack_dir)] + list(args), check=True,
                   capture_output=True, text=True, timeout=300)


def new_certificate(certs, stamp):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "taylordash.local")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    (certs / ("taylordash.crt.backup." + stamp)).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = certs / ("taylordash.key.backup." + stamp)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)


def bad_configuration(stack_dir, round_no):
    """Back the good files up (a new set per round), then deploy a bad .env."""
    for pattern in (".env.backup.*", "docker-compose.backup.*", "*.rollback-*", "certs/*.backup.*", "certs/*.rollback-*"):
        for path in stack_dir.glob(pattern):
            path.unlink()
    stamp = "20261125_1010%02d" % round_no
    env = (stack_dir / ".env").read_text()
    (stack_dir / (".env.backup." + stamp)).write_text(env)
    shutil.copy(stack_dir / "docker-compose.yml", stack_dir / ("docker-compose.backup." + stamp))
    new_certificate(stack_dir / "certs", stamp)
    (stack_dir / ".env").write_text(re.sub(r"^TD_FAULT=.*$", "TD_FAULT=slow", env, flags=re.M))
    compose(stack_dir, "up", "-d", "--wait")
    return stamp


def run(argv, cwd=None, env=None):
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        log = Path(tempfile.gettempdir()) / "td-bench-config-failed.log"
        log.write_text(proc.stdout + proc.stderr)
        raise SystemExit("command failed (rc=%d): %s (whole output in %s)\n%s\n%s" % (
            proc.returncode, " ".join(argv), log, proc.stdout[-4000:], proc.stderr[-3000:]))
    return elapsed, proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="td-bench-config-"))
    stack_dir = work / "stack"
    name = "tdbenchcfg"
    env_file = _stack.init_stack(stack_dir, name)
    extra = dict(_stack.stack_vars(stack_dir, name, env_file),
                 config_actions=["env", "compose", "certificate"],
                 # Timed here is the configuration rollback; the latency gate of the validation is
                 # benchmarked in bench/immediate and would fail on a loaded machine.
                 validate_perf_auth_target=10, validate_perf_api_target=10, validate_perf_frontend_target=10)
    (work / "vars.json").write_text(json.dumps(extra))
    secrets = _stack.write_secrets(work / "secrets.json", env_file)
    ansible_env = _stack.collections_env()
    results = {"a_floor": [], "c_ansible": []}
    steps = {}
    try:
        _stack.ctl("up", "--dir", str(stack_dir), "--version", "v1")
        for round_no in range(opts.rounds):
            stamp = bad_configuration(stack_dir, round_no)
            floor = ("set -e; cd %s; cp .env.backup.%s .env; cp docker-compose.backup.%s docker-compose.yml; "
                     "cp certs/taylordash.crt.backup.%s certs/taylordash.crt; cp certs/taylordash.key.backup.%s "
                     "certs/taylordash.key; docker compose up -d --wait; docker compose exec -T nginx nginx -s reload"
                     % ((stack_dir,) + (stamp,) * 4))
            elapsed, _ = run(["sh", "-c", floor])
            results["a_floor"].append(elapsed)
            print("round %d a_floor    exited %6.2f s" % (round_no + 1, elapsed), flush=True)

            bad_configuration(stack_dir, round_no)
            elapsed, out = run(_stack.playbook_argv("rollback-config.yml", work / "vars.json", secrets),
                               cwd=str(_stack.EXAMPLES_PROJECT), env=ansible_env)
            results["c_ansible"].append(elapsed)
            match = STEPS_RE.search(out)
            for part in (match.group(1).split(", ") if match else []):
                step, seconds = part.rsplit(" ", 2)[0], float(part.rsplit(" ", 2)[1])
                steps.setdefault(step, []).append(seconds)
            print("round %d c_ansible  exited %6.2f s  steps: %s" % (
                round_no + 1, elapsed, match.group(1) if match else "?"), flush=True)
    finally:
        _stack.ctl("down", "--dir", str(stack_dir))
        # The stack directory holds the secrets file and the stack's .env: remove it with the stack.
        shutil.rmtree(work, ignore_errors=True)

    med = {m: statistics.median(v) for m, v in results.items()}
    print("\nmedian over %d rounds (seconds)" % opts.rounds)
    print("%-26s %8.2f" % ("(a) floor: cp + up + reload", med["a_floor"]))
    print("%-26s %8.2f" % ("(c) ansible-playbook", med["c_ansible"]))
    for step, values in steps.items():
        print("    %-22s %8.2f" % (step, statistics.median(values)))
    print(json.dumps({"median": med, "steps": {k: statistics.median(v) for k, v in steps.items()}, "runs": results}))


if __name__ == "__main__":
    main()
