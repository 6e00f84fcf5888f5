#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: validate_p1
short_description: Run a P1 validation script and gate on its pass rate
version_added: 0.1.0
description:
  - Runs the stack's P1 validation script (C(ops/validate_p1.sh) in the runbook), reads the
    per-check results and the summary line it prints, and fails when the pass rate is below
    O(min_pass_rate), naming the failed checks.
  - The runbook's post-rollback health check asks for a pass rate of 89% or more; that is the
    default threshold.
  - The pass rate is computed from the check lines themselves. When the script also prints a
    summary line, the two are compared and any disagreement fails the task with both counts in
    the message. Output with no recognisable result fails too; the module never reports a pass
    rate it did not see.
  - The script runs without a shell, from an argv list, in its own session. On timeout the
    whole process group (the script and everything it started) gets SIGTERM, then SIGKILL
    after O(kill_grace) seconds.
  - The module only reads, so it runs in check mode too and never reports a change.
  - With O(missing=skip), a script that does not exist is not an error - the task is reported as
    skipped (RV(found) is V(false)) - so that a caller that only runs the script when the stack has
    one needs no separate look for it first.
author: TaylorDash operations team (@taylordash)
extends_documentation_fragment:
  - taylordash.rollback.attributes
attributes:
  check_mode:
    support: full
    details:
      - The validation script runs in check mode as well; it is expected to only read.
  diff_mode:
    support: none
    details:
      - Nothing is changed, so there is nothing to diff.
  idempotent:
    support: full
options:
  script:
    description:
      - Path of the validation script. It must be executable and start with a C(#!) line.
      - A relative path is resolved against O(chdir), or against the module's working directory
        when O(chdir) is not set. It is never looked up in E(PATH).
    type: path
    default: ./ops/validate_p1.sh
  missing:
    description:
      - What a O(script) that does not exist means.
      - V(fail), the task fails, naming the path it looked for.
      - V(skip), nothing runs and the task is reported as skipped, with RV(found) V(false) and a
        RV(msg) that names the path. Meant for a default script path that a stack may not have;
        a script the operator named should keep V(fail).
      - Only a path that does not exist at all is skipped; a script that exists but is a directory,
        is not executable or cannot start still fails. The other options are checked first either way.
    type: str
    choices: [fail, skip]
    default: fail
  args:
    description:
      - Arguments passed to the script, one list item per argument, without a shell.
      - Arguments appear in the returned RV(cmd); pass secrets through O(env) instead.
    type: list
    elements: str
    default: []
  chdir:
    description:
      - Directory the script runs in. Usually the stack's project directory.
      - When not set, the script runs in the module's working directory.
    type: path
  env:
    description:
      - Extra environment variables for the script, on top of the module's environment.
      - The module sets E(LC_ALL=C) and E(LANG=C) so that output is parsed in a fixed locale;
        O(env) is applied after that and may override them.
      - Meant for secrets, such as an API key. Values are never returned, and every occurrence of a
        value of 4 characters or more is masked in the results.
      - A value shorter than 4 characters is too short to be a secret. It is not masked, so that a
        value such as V(1) cannot garble the pass rate, and the module warns about it.
      - Values are text. A number is converted to text (V(1) becomes C(1)), V(true)/V(false) become
        C(True)/C(False), and a null value becomes the empty string; a list or a dictionary as a
        value, a name that is empty or contains C(=), and a NUL character anywhere fail the task
        before the script runs.
      - Set variables that are not secret with the task keyword C(environment) instead; the script
        inherits the module's environment.
    type: dict
  timeout:
    description:
      - Seconds the script may run. When the time is up its process group is stopped, and the
        task fails with the checks seen so far.
      - A number more than V(0), at most V(86400) (one day).
    type: float
    default: 120
  kill_grace:
    description:
      - Seconds between SIGTERM and SIGKILL when the script's process group is stopped after
        O(timeout).
      - From V(0) to V(86400).
    type: float
    default: 5
  min_pass_rate:
    description:
      - Lowest acceptable pass rate in percent, from V(0) to V(100). The unrounded rate is compared.
      - The pass rate is passed checks (including warnings) divided by passed plus failed checks;
        skipped checks are left out.
    type: float
    default: 89
  fail_on_rc:
    description:
      - When V(true), a non-zero exit status of the script fails the task even if the pass rate
        meets O(min_pass_rate).
      - When V(false), the exit status is returned in RV(rc) and a warning is shown, but the
        decision rests on the parsed results. Many validation scripts exit non-zero on any failed
        check, including the runbook's, which exits 1 below 89%.
      - Either way, a script killed by a signal fails the task, because its results are incomplete.
    type: bool
    default: false
  check_pattern:
    description:
      - Python regular expression that recognises one check result line. It must define the
        named groups C(status) and C(name), and may define C(detail). It is searched in each
        line (use C(^) to anchor it) after terminal colour codes have been removed.
      - "When neither O(check_pattern) nor O(summary_pattern) is set, the module recognises the
        output's format by itself (see RV(format)) among
        V(brackets), the default, where C(STATUS) is a word in brackets and the name matches
        C([A-Za-z0-9_.:/-]+), for example C([PASS] backend_health - HTTP 200 version=v1),
        C([FAIL] api_projects - HTTP 500) and C([PASS] frontend);
        V(colon), C(PASS: name) / C(FAIL: name) (also C(OK), C(ERROR), C(SKIP), C(WARN));
        V(emoji), C(✅ name) / C(❌ name) (also C(⚠️) for a warning, C(⏭️) for a skip);
        V(tap), the Test Anything Protocol, C(ok 1 - name) / C(not ok 2 - name), C(# SKIP) and
        C(# TODO) counting as skipped, with the plan line C(1..9);
        V(dots), C(name ... ok) / C(name ... FAILED) (also C(ERROR), C(skipped)), as Python's
        unittest prints."
      - Output with result lines of more than one of these formats fails, naming them.
      - O(pass_values), O(fail_values), O(skip_values) and O(warn_values) apply to the V(brackets)
        format and to O(check_pattern); the other formats have their own status words.
      - A line that matches but whose status is in none of O(pass_values), O(fail_values),
        O(skip_values) and O(warn_values) fails the task, so that a status such as C([ERROR])
        cannot drop out of the count unnoticed.
    type: str
  summary_pattern:
    description:
      - Python regular expression that recognises the summary line. It must define the named
        groups C(passed) and C(total), and may define C(rate) (a percentage without the C(%) sign).
      - 'When not set, C(Summary: 8/9 checks passed) is recognised, optionally followed by the rate
        in parentheses, such as C(88.9%).'
      - 'When neither pattern is set, these summary lines are recognised as well:
        C(Summary: 7/9), C(Pass rate: 78%) (a rate alone is compared with the check lines'' rate),
        C(Pass rate: 66.7% (2/3)), C(7 of 9 checks passed) and, in TAP, the plan C(1..9) (the number
        of test lines).'
      - A line that matches the summary pattern is never read as a check line.
    type: str
  pass_values:
    description:
      - Status strings that mean a check passed. Compared case-insensitively, ignoring emoji
        variation selectors, so V(✅) also matches C(✅︎).
    type: list
    elements: str
    default: [PASS]
  fail_values:
    description:
      - Status strings that mean a check failed.
    type: list
    elements: str
    default: [FAIL]
  skip_values:
    description:
      - Status strings that mean a check was skipped. Skipped checks are not counted.
    type: list
    elements: str
    default: [SKIP]
  warn_values:
    description:
      - Status strings that mean a check passed with a warning. Warnings count as passed and are
        listed in RV(warning_checks).
    type: list
    elements: str
    default: [WARN]
notes:
  - Result lines are read from both stdout and stderr, in the order they arrived. Lines that
    match neither pattern (banners, blank lines, log noise) are ignored.
  - Terminal escape codes, CRLF line endings and carriage-return progress output are handled
    before the patterns are applied.
  - A check name printed twice is counted twice, as the script's own summary would count it,
    and a warning names it.
  - If the script prints several summary lines, the last one is used; summary lines that disagree
    with each other fail the task.
'''

EXAMPLES = r'''
- name: Validate the stack after the rollback (89% or better)
  taylordash.rollback.validate_p1:
    chdir: /opt/taylordash
  register: validation

- name: Show the failed checks
  ansible.builtin.debug:
    var: validation.failed_checks

- name: Run a quicker check set, with the API key from Vault, and require every check to pass
  taylordash.rollback.validate_p1:
    script: ops/validate_p1.sh
    chdir: /opt/taylordash
    args:
      - --quick
    env:
      TAYLORDASH_API_KEY: "{{ vault_taylordash_api_key }}"
    min_pass_rate: 100
    timeout: 60

# The script prints, for example:
#   ✅ Backend health
#   ❌ Frontend - HTTP 502
#   ⚠️ Auth response time - 0.7s
#   ⏭️ Plugins - disabled
#   📊 Pass rate: 66.7% (2/3)
- name: Validate with a script that prints emoji
  taylordash.rollback.validate_p1:
    script: /opt/taylordash/scripts/validate_p1.sh
    check_pattern: '^\s*(?P<status>✅|❌|⚠️?|⏭️?)\s*(?P<name>.+?)(?:\s+-\s+(?P<detail>.*))?\s*$'
    pass_values: ['✅']
    fail_values: ['❌']
    warn_values: ['⚠️']
    skip_values: ['⏭️']
    summary_pattern: 'Pass rate:\s*(?P<rate>[\d.]+)%\s*\((?P<passed>\d+)/(?P<total>\d+)\)'

# The script prints, for example:
#   PASS: backend_health (0.004s)
#   FAIL: frontend HTTP 502
#   1 of 2 checks passed
- name: Validate with a script that prints PASS/FAIL and a colon
  taylordash.rollback.validate_p1:
    chdir: /opt/taylordash
    check_pattern: '^(?P<status>PASS|FAIL|SKIP|WARN):\s+(?P<name>\S+)(?:\s+(?P<detail>.*))?$'
    summary_pattern: '(?P<passed>\d+) of (?P<total>\d+) checks passed'
    min_pass_rate: 80

- name: Run the stack's validation script when it has one, else report the task as skipped
  taylordash.rollback.validate_p1:
    chdir: /opt/taylordash
    missing: skip
  register: validation

- name: Fail on the script's exit status as well as on its results
  taylordash.rollback.validate_p1:
    chdir: /opt/taylordash
    fail_on_rc: true
'''

RETURN = r'''
msg:
  description: One line saying what was found, or what is wrong and what to do.
  returned: always
  type: str
  sample: "8/9 checks passed (88.9%), minimum 80%"
passed:
  description: Checks that passed, including those with a warning.
  returned: when the script ran
  type: int
  sample: 8
failed_count:
  description:
    - Checks that failed. (Named C(failed_count) because C(failed) is reserved in Ansible results.)
  returned: when the script ran
  type: int
  sample: 1
skipped_count:
  description:
    - Checks that were skipped; they do not count towards RV(total).
    - Named C(skipped_count) because C(skipped) is reserved in Ansible results.
  returned: when the script ran
  type: int
  sample: 0
warning_count:
  description:
    - Checks that passed with a warning; they are included in RV(passed).
    - Named C(warning_count) because C(warnings) is reserved in Ansible results.
  returned: when the script ran
  type: int
  sample: 0
total:
  description: Checks counted in the pass rate, RV(passed) plus RV(failed_count).
  returned: when the script ran
  type: int
  sample: 9
pass_rate:
  description:
    - Percentage of passed checks, rounded to one decimal.
    - V(null) when no check counted (nothing ran, or every check was skipped); the task fails then.
  returned: when the script ran
  type: float
  sample: 88.9
min_pass_rate:
  description: The threshold that was applied, from O(min_pass_rate); V(null) when it was not a finite number.
  returned: always
  type: float
  sample: 89.0
failed_checks:
  description: Names of the failed checks, in output order.
  returned: when the script ran
  type: list
  elements: str
  sample: [api_projects]
warning_checks:
  description: Names of the checks that passed with a warning.
  returned: when the script ran
  type: list
  elements: str
  sample: []
skipped_checks:
  description: Names of the skipped checks.
  returned: when the script ran
  type: list
  elements: str
  sample: []
checks:
  description: Every recognised check line, in output order.
  returned: when the script ran
  type: list
  elements: dict
  contains:
    name:
      description: Check name from the C(name) group.
      type: str
      sample: backend_health
    status:
      description: V(PASS), V(FAIL), V(SKIP) or V(WARN), translated from the status string the script printed.
      type: str
      sample: PASS
    detail:
      description: Text from the C(detail) group, or V(null).
      type: str
      sample: HTTP 200 version=v1 (0.004s)
  sample:
    - {name: backend_health, status: PASS, detail: "HTTP 200 version=v1 (0.004s)"}
    - {name: api_projects, status: FAIL, detail: "HTTP 500 (0.003s)"}
format:
  description:
    - The result format the output was read in - V(brackets), V(colon), V(emoji), V(tap) or
      V(dots) - or V(custom) when O(check_pattern) or O(summary_pattern) is set.
    - V(null) when the output mixed formats (the task fails then).
  returned: when the script ran
  type: str
  sample: brackets
summary:
  description:
    - The summary line the script printed, parsed; V(null) when it printed none.
    - Its RV(summary.passed) and RV(summary.total) are V(null) when the line gives a rate alone.
  returned: when the script ran
  type: dict
  contains:
    passed:
      description: Passed checks according to the script.
      type: int
      sample: 8
    total:
      description: Total checks according to the script.
      type: int
      sample: 9
    rate:
      description: Pass rate according to the script, or V(null) when it printed none.
      type: float
      sample: 88.9
    line:
      description: The summary line as printed, without colour codes.
      type: str
      sample: "Summary: 8/9 checks passed (88.9%)"
rc:
  description:
    - Exit status of the script. Negative when it was ended by a signal (for example V(-15)
      after a timeout).
  returned: when the script ran
  type: int
  sample: 1
timed_out:
  description: Whether the script was stopped because O(timeout) passed.
  returned: when the script ran
  type: bool
  sample: false
duration:
  description: Seconds the script ran, including the time to stop it after a timeout.
  returned: when the script ran
  type: float
  sample: 0.412
stdout_lines:
  description: What the script printed on stdout, one item per line, terminal escape codes removed.
  returned: when the script ran
  type: list
  elements: str
  sample: ["[PASS] backend_health - HTTP 200 version=v1 (0.004s)", "Summary: 8/9 checks passed (88.9%)"]
stderr_lines:
  description: What the script printed on stderr, one item per line, terminal escape codes removed.
  returned: when the script ran
  type: list
  elements: str
  sample: []
found:
  description:
    - Whether the script exists. V(false) only with O(missing=skip), when nothing ran and the task
      is reported as skipped; a missing script with O(missing=fail) fails the task instead.
  returned: when the script was looked for (the other options were valid)
  type: bool
  sample: true
script:
  description: Absolute path of the script, after resolving O(script) against O(chdir).
  returned: always
  type: str
  sample: /opt/taylordash/ops/validate_p1.sh
cmd:
  description: The argv list that was (or would have been) run.
  returned: always
  type: list
  elements: str
  sample: [/opt/taylordash/ops/validate_p1.sh]
timing:
  description: When the module started and ended (ISO 8601, UTC) and how many seconds it ran.
  returned: always
  type: dict
  sample: {start: "2025-06-01T12:00:00.000000+00:00", end: "2025-06-01T12:00:00.412000+00:00", seconds: 0.412}
'''

import errno
import os

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.taylordash.rollback.plugins.module_utils._masking import (
    MIN_SECRET_LENGTH,
    mask_secrets_only,
    masked_invocation,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._safe_module import build_module
from ansible_collections.taylordash.rollback.plugins.module_utils._process import run_process
from ansible_collections.taylordash.rollback.plugins.module_utils._validate_output import (
    PatternError,
    build_patterns,
    clean_line,
    describe_checks,
    detect_and_parse,
    first_lines,
    parse_lines,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._seconds import finite_or_none, seconds_problem


def _fmt_number(value):
    return '%g' % value


def _unusable_text(value):
    """Why ``value`` cannot be passed to a process (argv, environment, path), or None."""
    if '\x00' in value:
        return 'contains a NUL character'
    try:
        os.fsencode(value)
    except UnicodeError:
        return 'contains characters that cannot be encoded (%s)' % repr(value)[:60]
    return None


def env_problems(env):
    """What keeps ``env`` from being passed to the script, as texts; values are never quoted."""
    problems = []
    for key, value in sorted((env or {}).items(), key=lambda item: to_native(item[0])):
        name = to_native(key)
        if not name or '=' in name or _unusable_text(name):
            problems.append('env: %r is not a valid environment variable name' % name)
            continue
        if isinstance(value, (dict, list, tuple, set)):
            problems.append('env: the value of %s is a %s; give a string (numbers are converted to text)'
                            % (name, 'dictionary' if isinstance(value, dict) else 'list'))
        elif value is not None and _unusable_text(to_native(value)):
            problems.append('env: the value of %s %s' % (name, _unusable_text(to_native(value))))
    return problems


def _fmt_rate(value):
    return ('%.1f' % value).rstrip('0').rstrip('.')


def resolve_script(script, chdir, cwd):
    """Absolute path of the script: relative paths are taken from chdir (or cwd).

    ``~`` and variables are already expanded: the option has type path.
    """
    if not os.path.isabs(script):
        script = os.path.join(chdir or cwd, script)
    return os.path.normpath(script)


def build_env(base, extra):
    env = dict(base)
    env['LC_ALL'] = 'C'
    env['LANG'] = 'C'
    for key, value in (extra or {}).items():
        env[to_native(key)] = '' if value is None else to_native(value)
    return env


def run_script(argv, cwd, env, timeout, kill_grace):
    """Run the script in its own session; on timeout its whole process group is stopped.

    The runner lives in module_utils/_process.py: run_command has no timeout and cannot stop a
    process group, so a hanging script would hang the task and leave its children running.
    """
    return run_process(argv, cwd=cwd, env=env, timeout=timeout, kill_grace=kill_grace)


class ValidateP1(object):
    def __init__(self, module, spec):
        self.module = module
        self.params = module.params
        self.script = resolve_script(self.params['script'], self.params['chdir'], os.getcwd())
        self.cmd = [self.script] + list(self.params['args'] or [])
        self.result = {
            'changed': False,
            'script': self.script,
            'cmd': self.cmd,
            'min_pass_rate': finite_or_none(self.params['min_pass_rate']),
            # env values never come back, short ones included (they are not masked).
            'invocation': masked_invocation(spec, self.params),
        }

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def preflight(self):
        params = self.params
        if not 0 <= params['min_pass_rate'] <= 100:
            self.fail('min_pass_rate must be between 0 and 100, got %s' % _fmt_number(params['min_pass_rate']))
        if params['timeout'] <= 0:
            self.fail('timeout must be a positive number of seconds, got %s' % _fmt_number(params['timeout']))
        for problem in (seconds_problem('timeout', params['timeout']),
                        seconds_problem('kill_grace', params['kill_grace'], allow_zero=True)):
            if problem:
                self.fail(problem)
        for name in ('script', 'chdir'):
            problem = params[name] is not None and _unusable_text(params[name])
            if problem:
                self.fail('%s %s; give the path of the validation script%s'
                          % (name, problem, '' if name == 'script' else "'s directory"))
        for index, arg in enumerate(params['args'] or []):
            problem = _unusable_text(arg)
            if problem:
                self.fail('args: argument %d %s' % (index + 1, problem))
        problems = env_problems(params['env'])
        if problems:
            self.fail('; '.join(problems))
        try:
            self.patterns = build_patterns(
                check_pattern=params['check_pattern'], summary_pattern=params['summary_pattern'],
                pass_values=params['pass_values'], fail_values=params['fail_values'],
                skip_values=params['skip_values'], warn_values=params['warn_values'])
        except PatternError as exc:
            self.fail(to_native(exc))
        for key, value in sorted((params['env'] or {}).items()):
            if value is not None and not isinstance(value, bool) and len(to_native(value)) < MIN_SECRET_LENGTH:
                self.module.warn(
                    'env: the value of %s is shorter than %d characters, too short to be a secret, so it is not '
                    'masked in the results. Set variables that are not secret with the task keyword environment '
                    'instead.' % (key, MIN_SECRET_LENGTH))
        if params['missing'] == 'skip' and not os.path.lexists(self.script):
            self.result['found'] = False
            self.module.exit_json(msg='no validation script at %s; skipped (missing=skip). Put the script there, or '
                                      'set script to where it is' % self.script, skipped=True, **self.result)
        chdir = params['chdir']
        if chdir is not None and not os.path.isdir(chdir):
            self.fail('chdir %s does not exist or is not a directory; set chdir to the stack project directory'
                      % chdir)
        where = ''
        if not os.path.isabs(params['script']):
            where = " (script '%s' resolved against %s)" % (params['script'], chdir or os.getcwd())
        if not os.path.exists(self.script):
            self.fail('validation script not found: %s%s; set script (and chdir) to where the script is'
                      % (self.script, where), found=False)
        self.result['found'] = True
        if os.path.isdir(self.script):
            self.fail('validation script %s is a directory, not a file%s' % (self.script, where))
        if not os.access(self.script, os.X_OK):
            self.fail('validation script %s is not executable; make it executable with chmod +x %s'
                      % (self.script, self.script))

    def execute(self):
        env = build_env(os.environ, self.params['env'])
        cwd = os.path.abspath(self.params['chdir']) if self.params['chdir'] else None
        try:
            return run_script(self.cmd, cwd, env, self.params['timeout'], self.params['kill_grace'])
        except ValueError as exc:  # what the checks above missed: refused by the system, not a traceback
            self.fail('could not start %s: %s' % (self.script, to_native(exc)))
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                hint = 'it is not a program the system can run; start it with a #! line such as #!/bin/bash'
            elif exc.errno == errno.ENOENT:
                hint = 'the interpreter named in its #! line was not found'
            elif exc.errno == errno.EACCES:
                hint = 'permission denied (is it executable, and is its file system mounted noexec?)'
            else:
                hint = 'the system refused to run it'
            self.fail('could not start %s: %s (%s)' % (self.script, hint, to_native(exc.strerror or exc)))

    def evaluate(self, run, parsed):
        module = self.module
        params = self.params
        self.result.update({
            'rc': run.rc,
            'timed_out': run.timed_out,
            'duration': round(run.duration, 3),
            'stdout_lines': [clean_line(line) for line in run.stdout_lines],
            'stderr_lines': [clean_line(line) for line in run.stderr_lines],
            'passed': parsed.passed,
            'failed_count': parsed.failed,
            'skipped_count': parsed.skipped,
            'warning_count': parsed.warnings,
            'total': parsed.total,
            'pass_rate': None if parsed.pass_rate is None else round(parsed.pass_rate, 1),
            'failed_checks': parsed.failed_checks,
            'warning_checks': parsed.warning_checks,
            'skipped_checks': parsed.skipped_checks,
            'checks': [check.as_dict() for check in parsed.checks],
            'summary': None if parsed.summary is None else dict(
                (key, parsed.summary[key]) for key in ('passed', 'total', 'rate', 'line')),
        })
        output_head = first_lines(run.lines)
        head_text = (' First lines of output: %s' % ' | '.join(output_head)) if output_head \
            else ' The script printed nothing.'

        if run.timed_out:
            seen = ('checks seen so far: %s' % describe_checks(parsed.checks)) if parsed.checks \
                else 'no check result was printed before that'
            why = ''
            if run.exited:
                why = ' The script itself had exited; processes it started kept its output open.'
            stopped = (' and its process group was stopped with %s' % run.stop_signal) if run.stop_signal else ''
            self.fail('%s timed out after %s s%s; %s.%s Raise timeout or find the check that hangs.'
                      % (self.script, _fmt_number(params['timeout']), stopped, seen, why))

        if parsed.unrecognized:
            shown = ', '.join("'%s' (line %d)" % (item['line'], item['line_no']) for item in parsed.unrecognized[:5])
            more = ' and %d more' % (len(parsed.unrecognized) - 5) if len(parsed.unrecognized) > 5 else ''
            self.fail('%d result line(s) have a status that is in none of pass_values, fail_values, skip_values '
                      'and warn_values: %s%s. Add the status to the list it belongs to, or narrow check_pattern '
                      'so that these lines do not match.' % (len(parsed.unrecognized), shown, more))

        if parsed.problems:
            msg = ('the output of %s contradicts itself: %s. Fix the counting in the script, or check_pattern / '
                   'summary_pattern if they do not fit its output.' % (self.script, '; '.join(parsed.problems)))
            if not parsed.checks:
                msg += head_text
            self.fail(msg)

        if not parsed.has_results:
            if parsed.skipped:
                self.fail('all %d checks were skipped (%s); nothing was validated'
                          % (parsed.skipped, ', '.join(parsed.skipped_checks)))
            if parsed.summary is not None:
                self.fail("%s reported 0 checks ('%s'); nothing was validated" % (self.script, parsed.summary['line']))
            self.fail('no check results found in the output of %s (rc=%s): no line matched check_pattern. '
                      'Check that this is the validation script, or set check_pattern/summary_pattern for its '
                      'format.%s' % (self.script, run.rc, head_text))

        if run.rc is not None and run.rc < 0:
            self.fail('%s was killed by signal %d before it finished; its results are incomplete (%s)'
                      % (self.script, -run.rc, describe_checks(parsed.checks)))

        counted = '%d/%d checks passed (%s%%)' % (parsed.passed, parsed.total, _fmt_rate(parsed.pass_rate))
        minimum = '%s%%' % _fmt_rate(params['min_pass_rate'])
        if parsed.pass_rate < params['min_pass_rate']:
            self.fail('pass rate below the minimum %s: %s; failed: %s'
                      % (minimum, counted, ', '.join(parsed.failed_checks)))

        if run.rc != 0 and params['fail_on_rc']:
            self.fail('%s exited with rc %d and fail_on_rc is true, although %s (minimum %s)'
                      % (self.script, run.rc, counted, minimum))

        if run.rc != 0:
            module.warn('%s exited with rc %d although %s (minimum %s); set fail_on_rc to fail on the exit status'
                        % (self.script, run.rc, counted, minimum))
        if parsed.warning_checks:
            module.warn('checks passed with a warning: %s' % ', '.join(parsed.warning_checks))
        if parsed.duplicates:
            module.warn('check names printed more than once (each line was counted): %s'
                        % ', '.join(parsed.duplicates))
        msg = '%s, minimum %s' % (counted, minimum)
        if parsed.failed_checks:
            msg += '; failed: %s' % ', '.join(parsed.failed_checks)
        # failed=False explicitly: Ansible marks a result with a non-zero rc and no "failed" key as failed.
        module.exit_json(msg=msg, failed=False, **self.result)

    def parse(self, run):
        """The check results in the output: in the user's format when a pattern is set, else in the
        one recognised format (a mix of formats fails)."""
        if self.params['check_pattern'] or self.params['summary_pattern']:
            self.result['format'] = 'custom'
            return parse_lines(run.lines, self.patterns)
        detection = detect_and_parse(run.lines, self.patterns)
        self.result['format'] = detection.name
        if detection.mixed:
            self.result.update(rc=run.rc, timed_out=run.timed_out, duration=round(run.duration, 3),
                               stdout_lines=[clean_line(line) for line in run.stdout_lines],
                               stderr_lines=[clean_line(line) for line in run.stderr_lines])
            self.fail('the output of %s mixes result formats: %s. Print one format, or set check_pattern '
                      '(and summary_pattern) to the one to count.' % (self.script, detection.describe_mixed()))
        return detection.result

    def run(self):
        self.preflight()
        run = self.execute()
        parsed = self.parse(run)
        self.evaluate(run, parsed)


def argument_spec():
    return dict(
        script=dict(type='path', default='./ops/validate_p1.sh'),
        missing=dict(type='str', choices=['fail', 'skip'], default='fail'),
        args=dict(type='list', elements='str', default=[]),
        chdir=dict(type='path'),
        env=dict(type='dict', no_log=True),
        timeout=dict(type='float', default=120),
        kill_grace=dict(type='float', default=5),
        min_pass_rate=dict(type='float', default=89, no_log=False),
        fail_on_rc=dict(type='bool', default=False),
        check_pattern=dict(type='str'),
        summary_pattern=dict(type='str'),
        pass_values=dict(type='list', elements='str', default=['PASS'], no_log=False),
        fail_values=dict(type='list', elements='str', default=['FAIL']),
        skip_values=dict(type='list', elements='str', default=['SKIP']),
        warn_values=dict(type='list', elements='str', default=['WARN']),
    )


def main():
    spec = argument_spec()
    module = build_module(spec, supports_check_mode=True)
    # A short env value (say 1) is no secret: masking it would garble the pass rate.
    mask_secrets_only(module)
    ValidateP1(module, spec).run()


if __name__ == '__main__':
    main()
