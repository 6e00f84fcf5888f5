#!/usr/bin/env bash
# Start (or stop) a Docker engine for this project when none answers.
#
#   scripts/dockerd.sh start   start dockerd in the background if `docker info` fails
#   scripts/dockerd.sh stop    stop the dockerd this script started (by its PID file only)
#
# The engine runs with --bridge=none --iptables=false: every container of the project uses
# network_mode: host and binds 127.0.0.1, so no bridge or NAT is wanted.
set -euo pipefail

state_dir=${TD_STATE_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.cache}
pid_file=$state_dir/dockerd.pid
log_file=$state_dir/dockerd.log
deadline_s=${TD_DOCKERD_DEADLINE:-60}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

start() {
    if engine_answers; then
        return 0
    fi
    command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
    mkdir -p "$state_dir"
    # A PID file left by a previous run whose daemon is gone would make dockerd refuse to start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    echo "dockerd.sh: starting dockerd (log: $log_file)" >&2
    nohup dockerd --bridge=none --iptables=false --ip-masq=false \
        --pidfile /var/run/docker.pid >>"$log_file" 2>&1 </dev/null &
    echo $! >"$pid_file"
    local start=$SECONDS
    until engine_answers; do
        if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
            echo "dockerd.sh: dockerd exited during start-up; last lines of $log_file:" >&2
            tail -n 20 "$log_file" >&2
            exit 1
        fi
        if (( SECONDS - start >= deadline_s )); then
            echo "dockerd.sh: dockerd did not answer within ${deadline_s}s; see $log_file" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "dockerd.sh: dockerd ready in $((SECONDS - start))s (pid $(cat "$pid_file"))" >&2
}

stop() {
    [ -f "$pid_file" ] || return 0
    local pid
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$pid_file"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
