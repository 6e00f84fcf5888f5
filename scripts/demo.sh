#!/usr/bin/env bash
# The main job on the embedded default: the reference stack up at a good version, a bad deploy,
# then `ansible-playbook rollback-immediate.yml` from examples/project/, and what happened.
#
#   scripts/demo.sh          run the demo (after scripts/setup.sh; `make demo` does both)
#   scripts/demo.sh down     remove the demo stack
#
# Settings (environment): TD_DEMO_DIR (default .run/demo), TD_DEMO_FAULT (unhealthy|errors|slow|
# crash, default errors). The demo stack listens on 127.0.0.1:3000 (backend), :5174 (frontend),
# :5432 (PostgreSQL) and :8443 (nginx, TLS), like the runbook's stack.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
demo_dir=${TD_DEMO_DIR:-$root/.run/demo}
fault=${TD_DEMO_FAULT:-errors}
stackctl=(python3 "$root/stack/stackctl")
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "${1:-}" = down ]; then
    [ -f "$demo_dir/.env" ] && "${stackctl[@]}" down --dir "$demo_dir"
    rm -rf "$demo_dir"
    exit 0
fi

say "1. The reference stack at v1 (good), in $demo_dir"
if [ -f "$demo_dir/.env" ]; then
    "${stackctl[@]}" down --dir "$demo_dir"
fi
"${stackctl[@]}" init --dir "$demo_dir" --project taylordash --prefix taylordash --ports default --force >/dev/null
"${stackctl[@]}" up --dir "$demo_dir" --version v1
(cd "$demo_dir" && ./ops/validate_p1.sh) || true

say "2. A bad deploy: v2, fault '$fault'"
"${stackctl[@]}" deploy --dir "$demo_dir" v2 --fault "$fault" --error-rate 0.5 >/dev/null
# The pipeline does not wait; give the bad build a moment to answer (bounded poll, not a sleep).
for _ in $(seq 1 50); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:3000/health/live" && break
    sleep 0.1
done
(cd "$demo_dir" && ./ops/validate_p1.sh) || echo "-> validate_p1.sh fails on the bad version, as it should"

say "3. ansible-playbook rollback-immediate.yml (examples/project)"
# Secrets go to Ansible through a 0600 vars file, never on the command line.
secrets=$(mktemp)
trap 'rm -f "$secrets"' EXIT
chmod 600 "$secrets"
api_key=$(sed -n 's/^TD_API_KEY=//p' "$demo_dir/.env")
admin_password=$(sed -n 's/^TD_ADMIN_PASSWORD=//p' "$demo_dir/.env")
printf 'vault_stack_api_key: "%s"\nvault_stack_admin_password: "%s"\n' "$api_key" "$admin_password" >"$secrets"
# The collection from pytest-ansible's collections/ tree, the one the tests use too.
python -c 'import pathlib; from pytest_ansible.units import inject; inject(pathlib.Path.cwd())'
collections="$root/collections"
started=$(date +%s.%N)
(cd examples/project && TD_STACK_DIR="$demo_dir" ANSIBLE_COLLECTIONS_PATH="$collections" \
    ansible-playbook rollback-immediate.yml -e "@$secrets")
finished=$(date +%s.%N)

say "4. After the rollback"
(cd "$demo_dir" && ./ops/validate_p1.sh)
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.ID}}' taylordash_backend
report=$(ls -t "$demo_dir"/rollbacks/*/rollback_report_*.md 2>/dev/null | head -n 1)
if [ -n "$report" ]; then
    say "5. The incident report ($report)"
    sed -n '1,40p' "$report"
    echo "..."
    echo "rollback_history.log: $(tail -n 1 "$demo_dir/rollback_history.log")"
fi
printf '\nRollback playbook ran for %.1f s. The stack stays up: `make demo-down` removes it.\n' \
    "$(echo "$finished - $started" | bc -l 2>/dev/null || python3 -c "print($finished - $started)")"
