#!/usr/bin/env bash
# validate_p1.sh — the TaylorDash P1 validation: the seed's post-rollback checks, one line each.
#
# Run it from the stack's project directory (it reads ./.env, or the file named by TD_ENV_FILE).
# Output format (parsed by taylordash.rollback.validate_p1):
#   [PASS] <check_name> - <detail>
#   [FAIL] <check_name> - <detail>
#   Summary: <passed>/<total> checks passed (<rate>%)
# Exit status: 0 when the pass rate is at least TD_VALIDATE_MIN_RATE (default 89), else 1.
# Secrets (API key, admin password) are read from .env and never printed.
set -uo pipefail

env_file=${TD_ENV_FILE:-./.env}
if [ ! -r "$env_file" ]; then
    echo "validate_p1: cannot read $env_file (run from the stack's project directory)" >&2
    exit 2
fi
# Read KEY=VALUE lines without executing the file.
while IFS='=' read -r key value; do
    case "$key" in ''|\#*) continue ;; esac
    [ -n "${!key+x}" ] || printf -v "$key" '%s' "$value"
done <"$env_file"

backend="http://127.0.0.1:${TD_BACKEND_PORT}"
frontend="http://127.0.0.1:${TD_FRONTEND_PORT}"
nginx="https://127.0.0.1:${TD_NGINX_PORT}"
timeout=${TD_VALIDATE_TIMEOUT:-5}
min_rate=${TD_VALIDATE_MIN_RATE:-89}
passed=0
total=0
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
printf 'X-API-Key: %s\n' "${TD_API_KEY:-}" >"$workdir/api_key_header"
printf '{"username": "%s", "password": "%s"}' "${TD_ADMIN_USERNAME:-admin}" "${TD_ADMIN_PASSWORD:-}" >"$workdir/login.json"
printf '{"username": "%s", "password": "wrong-%s"}' "${TD_ADMIN_USERNAME:-admin}" "$RANDOM" >"$workdir/bad_login.json"

result() {  # result NAME OK DETAIL
    total=$((total + 1))
    if [ "$2" = 1 ]; then
        passed=$((passed + 1))
        echo "[PASS] $1 - $3"
    else
        echo "[FAIL] $1 - $3"
    fi
}

# fetch OUT_BODY curl-args... -> prints "status seconds" (status 000 when nothing answered)
fetch() {
    local body=$1
    shift
    curl -s -o "$body" -w '%{http_code} %{time_total}' --max-time "$timeout" "$@" 2>/dev/null || true
}

read -r code t < <(fetch "$workdir/health" "$backend/health/ready")
version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$workdir/health" 2>/dev/null)
result backend_health "$([ "$code" = 200 ] && echo 1)" "HTTP $code version=${version:-?} (${t}s)"

read -r code t < <(fetch "$workdir/login" -X POST -H 'Content-Type: application/json' \
    --data "@$workdir/login.json" "$backend/api/v1/auth/login")
ok=$([ "$code" = 200 ] && grep -q '"session_token": *"[0-9a-f]\{16,\}"' "$workdir/login" && echo 1)
result auth_login "$ok" "HTTP $code session_token $([ "$ok" = 1 ] && echo issued || echo missing) (${t}s)"

read -r code t < <(fetch "$workdir/bad_login" -X POST -H 'Content-Type: application/json' \
    --data "@$workdir/bad_login.json" "$backend/api/v1/auth/login")
result auth_rejects_bad_password "$([ "$code" = 401 ] && echo 1)" "HTTP $code (${t}s)"

read -r code t < <(fetch "$workdir/projects" -H "@$workdir/api_key_header" "$backend/api/v1/projects")
count=$(grep -o '"id":' "$workdir/projects" 2>/dev/null | wc -l)
ok=$([ "$code" = 200 ] && head -c1 "$workdir/projects" | grep -q '\[' && echo 1)
result api_projects "$ok" "HTTP $code projects=$count (${t}s)"

read -r code t < <(fetch "$workdir/nokey" "$backend/api/v1/projects")
result api_key_required "$([ "$code" = 401 ] && echo 1)" "HTTP $code without X-API-Key (${t}s)"

read -r code t < <(fetch "$workdir/plugins" -H "@$workdir/api_key_header" "$backend/api/v1/plugins")
result api_plugins "$([ "$code" = 200 ] && echo 1)" "HTTP $code (${t}s)"

read -r code t < <(fetch "$workdir/frontend" "$frontend/")
result frontend "$([ "$code" = 200 ] && grep -q TaylorDash "$workdir/frontend" && echo 1)" "HTTP $code (${t}s)"

read -r code t < <(fetch "$workdir/tls" -k "$nginx/health/ready")
result nginx_tls "$([ "$code" = 200 ] && echo 1)" "HTTP $code via TLS (${t}s)"

if command -v pg_isready >/dev/null; then
    db_out=$(pg_isready -h 127.0.0.1 -p "${TD_DB_PORT}" -U "${TD_DB_USER:-taylordash}" -d "${TD_DB_NAME:-taylordash}" -t "$timeout" 2>&1)
else
    db_out=$(timeout "$timeout" docker compose exec -T postgres pg_isready -h 127.0.0.1 -p "${TD_DB_PORT}" \
        -U "${TD_DB_USER:-taylordash}" -d "${TD_DB_NAME:-taylordash}" 2>&1)
fi
db_rc=$?
result database "$([ "$db_rc" = 0 ] && echo 1)" "$(echo "$db_out" | tail -n 1 | sed 's/^[^ ]* - //')"

rate=$(awk -v p="$passed" -v t="$total" 'BEGIN { printf "%.1f", (t ? 100 * p / t : 0) }')
echo "Summary: $passed/$total checks passed ($rate%)"
awk -v r="$rate" -v m="$min_rate" 'BEGIN { exit !(r + 0 >= m + 0) }'
