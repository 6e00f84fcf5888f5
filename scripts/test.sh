#!/usr/bin/env bash
# Every test and linter of the collection, stage by stage; a table of results at the end.
#
#   scripts/test.sh                 all stages
#   scripts/test.sh unit lint ...   only the named stages
#
# Stages: unit, integration, faults, molecule, lint, sanity, docs, build. Exit status is non-zero when
# any stage fails. Assumes scripts/setup.sh has run (`make test` does both). integration, faults and
# molecule asked for together run as one pytest session (run_pool): the table gives each its own
# result and the session's time once. TD_TEST_WORKERS sets the session's xdist workers (default 2).
# lint, sanity, docs and build asked for together run two at a time (run_checks), each into a log
# printed whole when it ends: each is one process busy on one core.
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
    # Two workers: the unit tests share nothing (no engine, no ports), and the property tests are CPU.
    pytest tests/unit -q -p no:randomly -n 2
}

# integration, faults and molecule all run tests against containers. Asked for together (the default),
# they run as ONE pytest session: one pool of xdist workers, so no worker idles at the end of a stage
# while the longest file of that stage finishes, and no stage waits for the one before. Asked for alone,
# each runs on its own. tests/conftest.py orders the files longest first and hands a worker its next
# file when its current one is nearly done; every Molecule drill is a unit of its own.
# --dist loadfile: the tests of a module share one reference stack (module_stack_factory), each worker
# has its own fault-matrix stack (tests/faults/conftest.py); every stack has its own project name,
# ports and directory, and every drill its own fixed ports, so all of them run side by side.
# TD_TEST_WORKERS workers (default 2): the suite is CPU-bound (every module task is a Python start),
# and more workers on 2 cores make the timing-bound checks (health deadlines, response-time targets)
# fail under the load they add.
pool_stages=(integration faults molecule)
pool_ran=""
pool_seconds=0
declare -A pool_result
pool_failures=()

pool_paths() {
    # $@: the pooled stages asked for -> pytest paths
    local want=" $* " paths=()
    if [[ $want == *" integration "* ]]; then
        paths+=(tests/integration)
        # The Molecule drills are their own stage: not twice.
        [[ $want == *" molecule "* ]] || paths+=(--ignore=tests/integration/test_molecule.py)
    elif [[ $want == *" molecule "* ]]; then
        # Each scenario of extensions/molecule is one pytest item (pytest-ansible's molecule_scenario
        # fixture runs `molecule test -s NAME`); none installs the collection (prerun: false).
        paths+=(tests/integration/test_molecule.py)
    fi
    # The fault matrix of the rollback paths; `python tests/faults/table.py` prints it.
    [[ $want == *" faults "* ]] && paths+=(tests/faults)
    printf '%s\n' "${paths[@]}"
}

run_pool() {
    # $@: the pooled stages asked for. Sets pool_result[<stage>] to "passed|FAILED<TAB>detail".
    # The tests marked `latency` (a response-time comparison: 2x slower must fire, 1.2x must not) run
    # after the pool, alone: beside the pool's workers the CPU they measure with is shared, and the
    # shift they see is the machine's, not the build's.
    local xml="$root/.cache/test-pool.xml" xml_latency="$root/.cache/test-latency.xml" paths rc rc_latency
    local start=$SECONDS
    mapfile -t paths < <(pool_paths "$@")
    mkdir -p "$root/.cache"
    rm -f "$xml" "$xml_latency"
    echo "(one pytest session for: $*; ${TD_TEST_WORKERS:-2} workers; then the latency tests alone)"
    pytest "${paths[@]}" -q -p no:randomly -n "${TD_TEST_WORKERS:-2}" --dist loadfile --durations=15 \
        -m "not latency" --junitxml="$xml" -o junit_family=xunit2
    rc=$?
    pytest "${paths[@]}" -q -p no:randomly -m latency --junitxml="$xml_latency" -o junit_family=xunit2
    rc_latency=$?
    # 5: no test was selected (a stage without latency tests)
    [ "$rc_latency" -eq 5 ] && rc_latency=0
    [ "$rc" -eq 0 ] && rc=$rc_latency
    pool_seconds=$((SECONDS - start))
    local line stage
    while IFS=$'\t' read -r stage line; do
        if [ "$stage" = "-" ]; then pool_failures+=("$line"); else pool_result[$stage]=$line; fi
    done < <(python - "$xml" "$xml_latency" "$rc" "$@" <<'PY'
# Per stage: the tests of its files in the sessions' JUnit XML (passed, failed, time in its tests).
import sys
import xml.etree.ElementTree as ET

paths, rc, stages = sys.argv[1:3], int(sys.argv[3]), sys.argv[4:]


def stage_of(classname):
    if classname.startswith("tests.faults."):
        return "faults"
    if classname.startswith("tests.integration.test_molecule"):
        return "molecule"
    if classname.startswith("tests.integration."):
        return "integration"
    return None


counts = {stage: {"passed": 0, "failed": 0, "skipped": 0, "seconds": 0.0} for stage in stages}
cases, failures = [], []
for path in paths:
    try:
        cases.extend(ET.parse(path).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        pass
for case in cases:
    stage = stage_of(case.get("classname", ""))
    if stage not in counts:
        continue
    tally = counts[stage]
    tally["seconds"] += float(case.get("time") or 0)
    problem = case.find("failure")
    if problem is None:
        problem = case.find("error")
    if problem is not None:
        tally["failed"] += 1
        # Named in the results, with the first line of why: the CI log's tail must say which test.
        why = (problem.get("message") or "").strip().splitlines()
        failures.append("%s::%s - %s" % (case.get("classname", ""), case.get("name", ""), why[0][:160] if why else "?"))
    elif case.find("skipped") is not None:
        tally["skipped"] += 1
    else:
        tally["passed"] += 1
any_failed = any(tally["failed"] for tally in counts.values())
for stage, tally in counts.items():
    ran = tally["passed"] + tally["failed"] + tally["skipped"]
    # A session that failed with no failed test (collection error, crash) fails every stage of it;
    # a stage that ran no test did not pass.
    ok = ran and not tally["failed"] and (rc == 0 or any_failed)
    detail = "%d passed, %d failed, %d skipped; %.0f s in its tests" % (
        tally["passed"], tally["failed"], tally["skipped"], tally["seconds"])
    if not ran:
        detail = "no test ran (pytest exit status %d)" % rc
    print("%s\t%s\t%s" % (stage, "passed" if ok else "FAILED", detail))
for failure in failures[:20]:
    print("-\t" + failure.replace("\t", " "))
PY
    )
    [ "$rc" -eq 0 ]
}

stage_pooled() {
    # $1: one of pool_stages. The first one asked for runs the session for all of them.
    if [ -z "$pool_ran" ]; then
        local asked=() s
        for s in "${stages[@]}"; do
            [[ " ${pool_stages[*]} " == *" $s "* ]] && asked+=("$s")
        done
        run_pool "${asked[@]}"
        pool_ran="${asked[*]}"
    fi
    [[ ${pool_result[$1]:-FAILED} == passed* ]]
}

stage_integration() { stage_pooled integration; }
stage_faults() { stage_pooled faults; }
stage_molecule() { stage_pooled molecule; }

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

# lint, sanity, docs and build: static checks of the tree, no engine. Asked for together they run in two
# lanes, the longest first (sanity; lint; then build and docs in whichever lane frees first). Each
# writes to .cache/stage-<name>.log, printed whole under its heading when it ends, so the CI log reads
# stage by stage. They read the tree and write only their own places (lint clears the Molecule copy
# in ~/.ansible/collections, sanity copies the tree to $TMPDIR, build writes .cache/build).
check_stages=(lint sanity docs build)
checks_ran=""

run_checks() {
    # Started longest first (sanity, lint, then build and docs in whichever lane frees first); the
    # table keeps the order the stages were asked in.
    local asked=() s
    for s in sanity lint build docs; do
        [[ " ${stages[*]} " == *" $s "* ]] && asked+=("$s")
    done
    checks_ran="${asked[*]}"
    mkdir -p "$root/.cache"
    declare -A pid_of
    local running=() next=0
    while [ "$next" -lt "${#asked[@]}" ] || [ "${#running[@]}" -gt 0 ]; do
        while [ "${#running[@]}" -lt 2 ] && [ "$next" -lt "${#asked[@]}" ]; do
            s=${asked[$next]}
            next=$((next + 1))
            (
                begun=$SECONDS
                if "stage_$s" >"$root/.cache/stage-$s.log" 2>&1; then rc=0; else rc=1; fi
                echo "$rc $((SECONDS - begun))" >"$root/.cache/stage-$s.status"
            ) &
            pid_of[$s]=$!
            running+=("$s")
        done
        wait -n 2>/dev/null || true
        local still=()
        for s in "${running[@]}"; do
            if kill -0 "${pid_of[$s]}" 2>/dev/null; then
                still+=("$s")
            else
                wait "${pid_of[$s]}" 2>/dev/null || true
                echo "=== $s ==="
                cat "$root/.cache/stage-$s.log"
                local rc secs
                read -r rc secs <"$root/.cache/stage-$s.status" || { rc=1; secs=0; }
                if [ "$rc" -eq 0 ]; then status[$s]=passed; else status[$s]=FAILED; fi
                seconds[$s]=$secs
            fi
        done
        running=("${still[@]}")
    done
}

all_stages=(unit integration faults molecule lint sanity docs build)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=("${all_stages[@]}")

for stage in "${stages[@]}"; do
    if ! declare -F "stage_$stage" >/dev/null || [ "$stage" = pooled ]; then
        echo "unknown stage: $stage (known: ${all_stages[*]})" >&2
        exit 2
    fi
done

declare -A status seconds
failed=0
for stage in "${stages[@]}"; do
    if [[ " ${check_stages[*]} " == *" $stage "* ]]; then
        # The first check stage asked for runs all of them (run_checks), two at a time.
        [ -n "$checks_ran" ] || run_checks
        [ "${status[$stage]}" = passed ] || failed=$((failed + 1))
        continue
    fi
    if [[ -n $pool_ran && " $pool_ran " == *" $stage "* ]]; then
        # Ran in the pooled session already (see run_pool).
        if stage_pooled "$stage"; then status[$stage]=passed; else status[$stage]=FAILED; failed=$((failed + 1)); fi
        seconds[$stage]=$pool_seconds
        continue
    fi
    echo "=== $stage ==="
    start=$SECONDS
    if "stage_$stage"; then status[$stage]=passed; else status[$stage]=FAILED; failed=$((failed + 1)); fi
    seconds[$stage]=$((SECONDS - start))
done

echo
echo "=== results ==="
for stage in "${stages[@]}"; do
    if [[ -n $pool_ran && " $pool_ran " == *" $stage "* ]]; then
        mark=" "
        [[ $pool_ran == *" "* ]] && mark="*"
        printf '%-12s %-7s %4ss%s %s\n' "$stage" "${status[$stage]}" "${seconds[$stage]}" "$mark" "${pool_result[$stage]#*$'\t'}"
    else
        mark=" "
        [[ $checks_ran == *" "* && " $checks_ran " == *" $stage "* ]] && mark="+"
        printf '%-12s %-7s %4ss%s\n' "$stage" "${status[$stage]}" "${seconds[$stage]}" "$mark"
    fi
done
if [[ $pool_ran == *" "* ]]; then
    echo "* one pytest session for ${pool_ran// /, } (${TD_TEST_WORKERS:-2} workers), then the latency tests alone: ${pool_seconds}s for all of them"
fi
if [[ $checks_ran == *" "* ]]; then
    echo "+ ${checks_ran// /, } ran two at a time: each its own time"
fi
for failure in "${pool_failures[@]}"; do
    echo "failed: $failure"
done
echo "stages: $(( ${#stages[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
