#!/usr/bin/env bash
# Every test and linter of the collection, stage by stage; a table of results at the end.
#
#   scripts/test.sh                 all stages
#   scripts/test.sh unit lint ...   only the named stages
#
# Stages: unit, integration, faults, molecule, lint, sanity, docs, build. Exit status is non-zero when
# any stage fails. Assumes scripts/setup.sh has run (`make test` does both).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_PYTHON_INTERPRETER="$root/.venv/bin/python"
# Plain output for CI logs.
export NO_COLOR=1 PY_COLORS=0 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
# Our collection from pytest-ansible's symlink tree (<root>/collections, so edits show at once),
# the community ones from the venv. pytest makes the tree whenever it starts here; made now too for
# the stages that do not run pytest (lint), with pytest-ansible's own function: one tree.
python -c 'import pathlib; from pytest_ansible.units import inject; inject(pathlib.Path.cwd())' \
    || { echo "pytest-ansible could not make the collections/ tree" >&2; exit 2; }
export ANSIBLE_COLLECTIONS_PATH="$root/collections"

stage_unit() {
    pytest tests/unit -q -p no:randomly
}

stage_integration() {
    # The Molecule drills are their own stage (molecule): not twice.
    # Two workers, a test module each at a time (--dist loadfile): the tests of a module share one
    # reference stack; every stack has its own project name, ports and directory, so modules run
    # side by side. Most of a playbook test is waiting on containers, so two workers fit 2 cores.
    pytest tests/integration -q --ignore=tests/integration/test_molecule.py \
        -n "${TD_TEST_WORKERS:-2}" --dist loadfile --durations=15
}

stage_molecule() {
    # Each scenario of extensions/molecule is one pytest item (pytest-ansible's molecule_scenario
    # fixture runs `molecule test -s NAME`). Two drills side by side: each has its own fixed ports,
    # compose project and ephemeral directory, and none installs the collection (prerun: false).
    pytest tests/integration/test_molecule.py -q -p no:randomly -n "${TD_TEST_WORKERS:-2}" --dist load
}

stage_faults() {
    # The fault matrix of the rollback paths (tests/faults); `python tests/faults/table.py` prints it.
    # Two workers, a file each at a time: each worker has its own shared reference stack.
    pytest tests/faults -q -p no:randomly -n "${TD_TEST_WORKERS:-2}" --dist loadfile
}

stage_lint() {
    # Molecule installs a copy of this collection into ~/.ansible/collections; ansible-lint would
    # read that copy (stale as soon as a file changes) before the work tree: it is only a cache.
    rm -rf ~/.ansible/collections/ansible_collections/taylordash
    ansible-lint --offline -q
}

sanity_tree() {
    # ansible-test needs a real copy at .../ansible_collections/taylordash/rollback, with the
    # dependency collections beside it.
    # Outside this work tree: inside it, ansible-test would ask this repository's git which files
    # exist, and skip every untracked one.
    local tree="${TMPDIR:-/tmp}/taylordash-rollback-sanity/ansible_collections"
    rm -rf "$tree/taylordash"
    mkdir -p "$tree/taylordash/rollback"
    git ls-files -z --cached --others --exclude-standard \
        | grep -zv -e '^stack/' -e '^bench/' -e '^\.ci/' \
        | xargs -0 -I{} cp --parents {} "$tree/taylordash/rollback/" 2>/dev/null
    local site
    site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"] + "/ansible_collections")')
    for dep in community ansible; do
        [ -e "$tree/$dep" ] || ln -s "$site/$dep" "$tree/$dep"
    done
    echo "$tree/taylordash/rollback"
}

stage_sanity() {
    # ansible-test bootstraps pip in its own venvs with a script it downloads from a host this
    # machine cannot reach; this stand-in does the same with ensurepip and PyPI.
    # ansible-test also strips PIP_* variables, so the CA bundle this machine's pip is configured
    # with (PIP_CERT or pip's own config) is read now and written into the stand-in.
    local cache=~/.ansible/test/cache/get_pip_24_2.py ca
    ca=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
    mkdir -p "$(dirname "$cache")"
    cat >"$cache.new" <<PY
# Stand-in for get-pip.py, written by taylordash.rollback's scripts/test.sh.
import subprocess
import sys

CA = "$ca"
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cert = ["--cert", CA] if CA else []
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + cert + args)
PY
    mv "$cache.new" "$cache"
    local copy
    copy=$(sanity_tree)
    (cd "$copy" && ansible-test sanity --local --python 3.11 --color no)
}

stage_docs() {
    antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck .
}

stage_build() {
    local out="$root/.cache/build"
    rm -rf "$out"
    mkdir -p "$out"
    ansible-galaxy collection build --output-path "$out" . >/dev/null || return 1
    local tarball
    tarball=$(ls "$out"/taylordash-rollback-*.tar.gz)
    ansible-galaxy collection install --offline --no-deps --force -p "$out/installed" "$tarball" >/dev/null || return 1
    for module in $(ls plugins/modules/*.py 2>/dev/null | xargs -rn1 basename | sed 's/\.py$//'); do
        ANSIBLE_COLLECTIONS_PATH="$out/installed" ansible-doc "taylordash.rollback.$module" 2>/dev/null | grep -q "taylordash.rollback.$module" \
            || { echo "ansible-doc cannot read taylordash.rollback.$module from the built tarball" >&2; return 1; }
    done
    echo "built $(basename "$tarball") ($(du -h "$tarball" | cut -f1)); ansible-doc reads every module from it"
}

all_stages=(unit integration faults molecule lint sanity docs build)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=("${all_stages[@]}")

declare -A status seconds
failed=0
for stage in "${stages[@]}"; do
    if ! declare -F "stage_$stage" >/dev/null; then
        echo "unknown stage: $stage (known: ${all_stages[*]})" >&2
        exit 2
    fi
    echo "=== $stage ==="
    start=$SECONDS
    if "stage_$stage"; then status[$stage]=passed; else status[$stage]=FAILED; failed=$((failed + 1)); fi
    seconds[$stage]=$((SECONDS - start))
done

echo
echo "=== results ==="
for stage in "${stages[@]}"; do
    printf '%-12s %-7s %4ss\n' "$stage" "${status[$stage]}" "${seconds[$stage]}"
done
echo "stages: $(( ${#stages[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
