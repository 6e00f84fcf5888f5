# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure parser for the output of a P1 validation script (``ops/validate_p1.sh``).

Nothing here runs a command: the module feeds it the lines the script printed, and the unit
tests feed it captured output. The parser never guesses a result. It reports what it
recognised, what it could not classify and where the output contradicts itself, and leaves
the decision to the caller.

Default format (what the reference stack's ``ops/validate_p1.sh`` prints)::

    [PASS] backend_health - HTTP 200 version=v1 (0.004s)
    [FAIL] api_projects - HTTP 500 (0.003s)
    [SKIP] plugins - disabled
    [WARN] frontend_time - 0.8s (target < 0.5s)
    Summary: 8/9 checks passed (88.9%)

Skipped checks are not counted; warnings count as passed but are reported.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

PASS = 'PASS'
FAIL = 'FAIL'
SKIP = 'SKIP'
WARN = 'WARN'
STATUSES = (PASS, FAIL, SKIP, WARN)

# A status word in brackets, a check name, then an optional " - detail".
DEFAULT_CHECK_PATTERN = (
    r'^\s*\[(?P<status>[A-Za-z]+)\]\s+(?P<name>[A-Za-z0-9_.:/-]+)'
    r'(?:\s+-\s*(?P<detail>.*?))?\s*$'
)
DEFAULT_SUMMARY_PATTERN = (
    r'(?i)^\s*Summary:\s*(?P<passed>\d+)\s*/\s*(?P<total>\d+)\s+checks?\s+passed'
    r'(?:\s*\(\s*(?P<rate>\d+(?:\.\d+)?)\s*%\s*\))?'
)
DEFAULT_VALUES = {PASS: ['PASS'], FAIL: ['FAIL'], SKIP: ['SKIP'], WARN: ['WARN']}

# CSI sequences (colours, cursor movement), OSC sequences (titles, hyperlinks), character set
# designations (``tput sgr0`` prints ESC ( B), then the remaining two-byte escapes. Colour codes
# often sit between the bracket and the status word.
_ANSI_RE = re.compile(
    r'\x1b\[[0-?]*[ -/]*[@-~]'
    r'|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)'
    r'|\x1b[ -/]+[0-~]'
    r'|\x1b[@-Z\\-_]'
)
_CONTROL_RE = re.compile(r'[\x00-\x08\x0b-\x1f\x7f]')
# Emoji presentation selectors: "⚠️" and "⚠" must compare equal.
_VARIATION_SELECTORS = ('\ufe0f', '\ufe0e')


class PatternError(ValueError):
    """A user-supplied pattern or status list cannot be used."""


def strip_ansi(text):
    """Remove terminal escape sequences and stray control characters (tabs are kept)."""
    return _CONTROL_RE.sub('', _ANSI_RE.sub('', text))


def clean_line(line):
    """Normalise one output line the way a terminal would show it.

    CRLF endings lose their CR; a line rewritten with bare CRs (progress spinners) keeps only
    its last segment; escape codes go; a byte-order mark at the start goes.
    """
    line = line.rstrip('\r\n')
    if '\r' in line:
        line = line.rsplit('\r', 1)[-1]
    return strip_ansi(line).lstrip('\ufeff')


def split_output(text):
    """Split captured output into lines; accepts LF, CRLF and a missing final newline."""
    if not text:
        return []
    return text.split('\n') if not text.endswith('\n') else text[:-1].split('\n')


def _normalise_status(value):
    value = value or ''
    for selector in _VARIATION_SELECTORS:
        value = value.replace(selector, '')
    return value.strip().casefold()


def _compile(pattern, option, required, optional):
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise PatternError('%s is not a valid regular expression: %s (pattern: %r)' % (option, exc, pattern))
    groups = set(compiled.groupindex)
    missing = [g for g in required if g not in groups]
    if missing:
        raise PatternError(
            '%s must define the named group(s) %s, e.g. (?P<%s>...); it defines %s (pattern: %r)'
            % (option, ', '.join(missing), missing[0],
               ', '.join(sorted(groups)) if groups else 'no named group', pattern))
    unknown = sorted(groups - set(required) - set(optional))
    if unknown:
        raise PatternError('%s defines unsupported named group(s) %s; allowed: %s (pattern: %r)'
                           % (option, ', '.join(unknown), ', '.join(list(required) + list(optional)), pattern))
    return compiled


class Patterns(object):
    """Compiled patterns and status vocabulary. Build with :func:`build_patterns` (one format, the
    default or the user's) or :func:`format_patterns` (one of the formats recognised without any
    pattern set). ``summaries`` are tried in order; the first is ``summary``."""

    def __init__(self, check, summary, values, extra_summaries=(), name='custom'):
        self.check = check
        self.summary = summary
        self.summaries = [summary] + list(extra_summaries)
        self.name = name
        self.values = values  # {PASS: [...], ...} as given
        self._lookup = {}
        for status in STATUSES:
            for value in values[status]:
                self._lookup[_normalise_status(value)] = status

    def classify(self, raw_status):
        """Return PASS/FAIL/SKIP/WARN for a status string, or None when it is none of them."""
        return self._lookup.get(_normalise_status(raw_status))


def build_patterns(check_pattern=None, summary_pattern=None, pass_values=None, fail_values=None,
                   skip_values=None, warn_values=None):
    """Compile and validate patterns; raise PatternError with a message fit for an operator."""
    check = _compile(check_pattern or DEFAULT_CHECK_PATTERN, 'check_pattern',
                     ('status', 'name'), ('detail',))
    summary = _compile(summary_pattern or DEFAULT_SUMMARY_PATTERN, 'summary_pattern',
                       ('passed', 'total'), ('rate',))
    given = {PASS: pass_values, FAIL: fail_values, SKIP: skip_values, WARN: warn_values}
    values = {}
    seen = {}
    for status in STATUSES:
        listed = DEFAULT_VALUES[status] if given[status] is None else list(given[status])
        option = '%s_values' % status.lower()
        for value in listed:
            key = _normalise_status(value)
            if not key:
                raise PatternError('%s contains an empty status string' % option)
            if key in seen and seen[key] != option:
                raise PatternError('status %r is listed in both %s and %s; a status must mean one thing'
                                   % (value, seen[key], option))
            seen[key] = option
        values[status] = listed
    if not values[PASS] or not values[FAIL]:
        raise PatternError('pass_values and fail_values must each list at least one status')
    return Patterns(check, summary, values)


class Check(object):
    __slots__ = ('name', 'status', 'detail', 'raw_status', 'line_no')

    def __init__(self, name, status, detail, raw_status, line_no):
        self.name = name
        self.status = status
        self.detail = detail
        self.raw_status = raw_status
        self.line_no = line_no

    def as_dict(self):
        return {'name': self.name, 'status': self.status, 'detail': self.detail}

    def __repr__(self):
        return 'Check(%r, %r, %r)' % (self.name, self.status, self.detail)


def _plural(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


def _rate_str(value):
    return ('%.1f' % value).rstrip('0').rstrip('.') if value is not None else 'n/a'


def compute_pass_rate(passed, total):
    """Percentage of passed checks, unrounded; None when nothing was counted (never 0 or 100)."""
    if not total:
        return None
    return passed * 100.0 / total


def _rate_tolerance(rate_text):
    # A printed rate is either rounded or truncated (bash integer arithmetic) to the digits it
    # shows: allow one unit of its last digit.
    decimals = len(rate_text.split('.', 1)[1]) if '.' in rate_text else 0
    return 10 ** -decimals + 1e-9


class ParseResult(object):
    """What the output says. ``problems`` lists contradictions; the caller decides what to do."""

    def __init__(self, checks, summary, summaries, unrecognized, lines_seen, plans=()):
        self.checks = checks
        self.summary = summary
        self.summaries = summaries
        self.plans = list(plans)
        self.unrecognized = unrecognized
        self.lines_seen = lines_seen
        self.passed = sum(1 for c in checks if c.status in (PASS, WARN))
        self.failed = sum(1 for c in checks if c.status == FAIL)
        self.skipped = sum(1 for c in checks if c.status == SKIP)
        self.warnings = sum(1 for c in checks if c.status == WARN)
        self.total = self.passed + self.failed
        self.pass_rate = compute_pass_rate(self.passed, self.total)
        self.problems = self._cross_check()

    def _names(self, status):
        return [c.name for c in self.checks if c.status == status]

    @property
    def failed_checks(self):
        return self._names(FAIL)

    @property
    def skipped_checks(self):
        return self._names(SKIP)

    @property
    def warning_checks(self):
        return self._names(WARN)

    @property
    def duplicates(self):
        seen, dups = set(), []
        for check in self.checks:
            if check.name in seen and check.name not in dups:
                dups.append(check.name)
            seen.add(check.name)
        return dups

    @property
    def has_results(self):
        """True when at least one check counted towards the pass rate."""
        return self.total > 0

    def _cross_check(self):
        problems = []
        distinct = []
        counted = [summary for summary in self.summaries if summary['passed'] is not None]
        for summary in counted:
            key = (summary['passed'], summary['total'])
            if key not in distinct:
                distinct.append(key)
        if len(distinct) > 1:
            problems.append('the output has %d summary lines that disagree: %s'
                            % (len(counted), ', '.join('%d/%d' % k for k in distinct)))
        for plan in self.plans:
            if plan['plan'] != len(self.checks):
                seen = len(self.checks)
                problems.append("the TAP plan '%s' announces %s but %d test line%s seen"
                                % (plan['line'], _plural(plan['plan'], 'test'), seen,
                                   ' was' if seen == 1 else 's were'))
        for summary in self.summaries:
            if summary['passed'] is not None or summary['rate'] is None:
                continue
            # A rate alone ("Pass rate: 78%") is compared with the check lines.
            actual = 0.0 if self.pass_rate is None else self.pass_rate
            if abs(actual - summary['rate']) > _rate_tolerance(summary['rate_text']):
                problems.append("summary says a pass rate of %s%% ('%s') but the check lines show %d/%d (%s%%)"
                                % (summary['rate_text'], summary['line'], self.passed, self.total,
                                   _rate_str(actual)))
        summary = self.summary
        if summary is None or summary['passed'] is None:
            return problems
        said = '%d/%d' % (summary['passed'], summary['total'])
        if summary['passed'] > summary['total']:
            problems.append('summary says %s: more checks passed than ran' % said)
        elif summary['rate'] is not None:
            expected = compute_pass_rate(summary['passed'], summary['total'])
            expected = 0.0 if expected is None else expected
            if abs(expected - summary['rate']) > _rate_tolerance(summary['rate_text']):
                problems.append('summary says %s checks passed but gives a rate of %s%% (expected %s%%)'
                                % (said, summary['rate_text'], _rate_str(expected)))
        if (summary['passed'], summary['total']) != (self.passed, self.total):
            msg = 'summary says %s but the check lines show %d/%d' % (said, self.passed, self.total)
            if self.failed:
                msg += '; %s printed FAIL: %s' % (_plural(self.failed, 'check'), ', '.join(self.failed_checks))
            elif not self.checks:
                msg += ' (no check line was recognised; check_pattern may not match this output)'
            else:
                msg += ' (no check printed FAIL)'
            problems.append(msg)
        return problems

    def as_dict(self):
        return {
            'passed': self.passed,
            'failed': self.failed,
            'skipped': self.skipped,
            'warnings': self.warnings,
            'total': self.total,
            'pass_rate': None if self.pass_rate is None else round(self.pass_rate, 1),
            'failed_checks': self.failed_checks,
            'skipped_checks': self.skipped_checks,
            'warning_checks': self.warning_checks,
            'duplicates': self.duplicates,
            'checks': [c.as_dict() for c in self.checks],
            'summary': None if self.summary is None else dict(
                (k, self.summary[k]) for k in ('passed', 'total', 'rate', 'line')),
            'unrecognized': list(self.unrecognized),
            'problems': list(self.problems),
        }


def parse_lines(lines, patterns=None):
    """Parse output lines (str, with or without line endings) into a :class:`ParseResult`.

    A line matching the summary pattern is a summary; otherwise a line matching the check
    pattern is a check, provided its status is in one of the four value lists. A line that
    matches the check pattern with any other status goes to ``unrecognized`` so that, say,
    ``[ERROR] database`` cannot silently vanish from the count. Every other line is ignored.
    """
    if patterns is None:
        patterns = build_patterns()
    checks, summaries, unrecognized, plans = [], [], [], []
    seen = 0
    for line_no, raw in enumerate(lines, 1):
        line = clean_line(raw)
        if not line.strip():
            continue
        seen += 1
        summary = _summary(patterns, line, line_no)
        if summary is not None:
            (plans if 'plan' in summary else summaries).append(summary)
            continue
        match = patterns.check.search(line)
        if not match:
            continue
        groups = match.groupdict()
        raw_status = (match.group('status') or '').strip()
        if groups.get('directive'):  # TAP: "ok 3 - name # SKIP reason"
            raw_status = groups['directive']
        name = (match.group('name') or '').strip()
        if not name and groups.get('number'):  # TAP: "ok 3" names no test
            name = 'test %s' % groups['number']
        detail = groups.get('detail')
        detail = detail.strip() if detail and detail.strip() else None
        status = patterns.classify(raw_status)
        if status is None or not name:
            unrecognized.append({'line_no': line_no, 'status': raw_status, 'name': name, 'line': line.strip()})
            continue
        checks.append(Check(name, status, detail, raw_status, line_no))
    counted = [item for item in summaries if item['passed'] is not None]
    summary = counted[-1] if counted else (summaries[-1] if summaries else None)
    return ParseResult(checks, summary, summaries, unrecognized, seen, plans)


def _summary(patterns, line, line_no):
    """The summary a line states (``passed``/``total`` None for a rate alone; a ``plan`` for TAP's
    ``1..N``), or None."""
    for pattern in patterns.summaries:
        match = pattern.search(line)
        if not match:
            continue
        groups = match.groupdict()
        if groups.get('plan') is not None:
            return {'plan': int(groups['plan']), 'line': line.strip(), 'line_no': line_no}
        rate_text = groups.get('rate')
        passed, total = groups.get('passed'), groups.get('total')
        if (passed is None or total is None) and rate_text is None:
            continue
        return {
            'passed': int(passed) if passed is not None and total is not None else None,
            'total': int(total) if passed is not None and total is not None else None,
            'rate': float(rate_text) if rate_text else None,
            'rate_text': rate_text,
            'line': line.strip(),
            'line_no': line_no,
        }
    return None


def parse_output(text, patterns=None):
    """Convenience: parse one captured block of text."""
    return parse_lines(split_output(text), patterns)


def first_lines(lines, count=10, width=200):
    """The first non-blank cleaned lines, shortened, for error messages."""
    out = []
    for raw in lines:
        line = clean_line(raw).strip()
        if not line:
            continue
        out.append(line if len(line) <= width else line[:width - 3] + '...')
        if len(out) >= count:
            break
    return out


def describe_checks(checks, limit=20):
    """``name STATUS, ...`` for messages; shortened past ``limit`` entries."""
    parts = ['%s %s' % (c.name, c.status) for c in checks[:limit]]
    if len(checks) > limit:
        parts.append('and %d more' % (len(checks) - limit))
    return ', '.join(parts)


# ---------------------------------------------------------------------------------------------
# Formats recognised without any pattern set. Each has its own status words; the bracket format
# (the reference stack's, and the default) takes the user's pass_values/fail_values/... .

# Summary lines any format may print; tried after the format's own.
_SUMMARIES = (
    # "Summary: 7/9", "Summary: 7/9 checks passed (77.8%)", "📊 Summary: 7/9 tests"
    r'(?i)^\s*(?:\S+\s+)?Summary:\s*(?P<passed>\d+)\s*/\s*(?P<total>\d+)'
    r'(?:\s+(?:checks?|tests?)(?:\s+passed)?)?(?:\s*\(\s*(?P<rate>\d+(?:\.\d+)?)\s*%\s*\))?\s*$',
    # "Pass rate: 78%", "📊 Pass rate: 66.7% (2/3)"
    r'(?i)^\s*(?:\S+\s+)?Pass\s+rate:\s*(?P<rate>\d+(?:\.\d+)?)\s*%'
    r'(?:\s*\(\s*(?P<passed>\d+)\s*/\s*(?P<total>\d+)\s*\))?',
    # "7 of 9 checks passed", "7 out of 9 tests passed"
    r'(?i)^\s*(?:\S+\s+)?(?P<passed>\d+)\s+(?:of|out\s+of)\s+(?P<total>\d+)\s+(?:checks?|tests?)\s+passed',
)

_FORMATS = (
    # name, check pattern, extra summary patterns, values
    ('brackets', DEFAULT_CHECK_PATTERN, (), None),
    ('colon',
     r'^\s*(?P<status>PASS(?:ED)?|FAIL(?:ED)?|OK|ERROR|SKIP(?:PED)?|WARN(?:ING)?)\s*:\s+(?P<name>\S+)'
     r'(?:\s+(?:-\s+)?(?P<detail>.*?))?\s*$',
     (), {PASS: ['PASS', 'PASSED', 'OK'], FAIL: ['FAIL', 'FAILED', 'ERROR'], SKIP: ['SKIP', 'SKIPPED'],
          WARN: ['WARN', 'WARNING']}),
    ('emoji',
     '^\\s*(?P<status>\u2705|\u274c|\u26a0\ufe0f?|\u23ed\ufe0f?)\\s*(?P<name>.+?)(?:\\s+-\\s+(?P<detail>.*))?\\s*$',
     (), {PASS: ['\u2705'], FAIL: ['\u274c'], SKIP: ['\u23ed\ufe0f'], WARN: ['\u26a0\ufe0f']}),
    ('tap',
     r'^\s*(?P<status>not ok|ok)\b(?:\s+(?P<number>\d+))?\s*(?:-\s*)?(?P<name>[^#]*?)\s*'
     r'(?:#\s*(?:(?P<directive>(?i:SKIP|TODO))\S*\s*)?(?P<detail>.*))?$',
     (r'^\s*1\.\.(?P<plan>\d+)\b',), {PASS: ['ok'], FAIL: ['not ok'], SKIP: ['SKIP', 'TODO'], WARN: []}),
    ('dots',
     r'^\s*(?P<name>\S.*?)\s+\.\.\.\s+(?P<status>ok|PASS(?:ED)?|FAIL(?:ED)?|ERROR|skipped|SKIP)\b'
     r'\s*(?P<detail>.*?)\s*$',
     (), {PASS: ['ok', 'PASS', 'PASSED'], FAIL: ['FAIL', 'FAILED', 'ERROR'], SKIP: ['skipped', 'SKIP'], WARN: []}),
)

FORMAT_NAMES = tuple(item[0] for item in _FORMATS)


def format_patterns(name, bracket_patterns=None):
    """The Patterns of one recognised format. ``bracket_patterns`` (from :func:`build_patterns`
    without patterns) carries the user's status lists for the bracket format."""
    for fmt, check, extra, values in _FORMATS:
        if fmt != name:
            continue
        summaries = [re.compile(p) for p in extra + _SUMMARIES]
        if values is None:
            base = bracket_patterns or build_patterns()
            return Patterns(base.check, base.summary, base.values, summaries, name=fmt)
        return Patterns(re.compile(check), summaries[0], values, summaries[1:], name=fmt)
    raise ValueError('unknown format %s' % name)


class Detection(object):
    """Which format the output is in: ``name`` and ``result`` (a ParseResult), or ``mixed``, a list
    of ``(name, lines, example)`` when more than one format has result lines."""

    def __init__(self, name, result, mixed=()):
        self.name = name
        self.result = result
        self.mixed = list(mixed)

    def describe_mixed(self):
        return ', '.join("%s (%s, e.g. '%s')" % (name, _plural(count, 'line'), example)
                         for name, count, example in self.mixed)


def detect_and_parse(lines, bracket_patterns=None):
    """Parse ``lines`` in the one format whose result lines they hold. No format found: the bracket
    format's result (its "no check results" and contradiction problems apply, as before)."""
    lines = list(lines)
    found = []
    for name in FORMAT_NAMES:
        result = parse_lines(lines, format_patterns(name, bracket_patterns))
        result_lines = [c.line_no for c in result.checks] + [u['line_no'] for u in result.unrecognized]
        if result_lines:
            found.append((name, result, sorted(result_lines)))
    if len(found) == 1:
        return Detection(found[0][0], found[0][1])
    if not found:
        return Detection('brackets', parse_lines(lines, format_patterns('brackets', bracket_patterns)))
    mixed = []
    for name, result, result_lines in found:
        example = clean_line(lines[result_lines[0] - 1]).strip()
        mixed.append((name, len(result_lines), example if len(example) <= 80 else example[:77] + '...'))
    return Detection(None, None, mixed)
