# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic of the config_restore module: backup names and their timestamps, backup sets,
``.env`` parsing and key diffs, what kind of file a name is, certificate and key checks, and
the atomic replace with its undo.

Nothing here runs a process; the module does that through _docker_cli and _process.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import difflib
import fnmatch
import glob
import json
import os
import re
import tempfile

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:  # reported by the module, only when a certificate or key is validated
    x509 = None
    serialization = None

# A timestamp in a backup's name: 20261125_101010, 20261125T101010Z, 20261125-101010,
# 2026-11-25_10-10-10, 20261125101010, or a date alone (20261125). The last one in the name counts.
TIMESTAMP_RE = re.compile(
    r'(?<![0-9])(\d{4})-?(\d{2})-?(\d{2})(?:[_T.-]?(\d{2})[:-]?(\d{2})[:-]?(\d{2})Z?)?(?![0-9])')

# What this module names a kept copy: <dest>.rollback-YYYYmmddTHHMMSSZ, optionally -2, -3...
KEPT_RE = re.compile(r'\.rollback-\d{8}T\d{6}Z(?:-\d+)?$')

ENV_KEY_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]*$')

# Names whose values are secrets whatever their length.
SECRET_KEY_RE = re.compile(r'PASS|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH|JWT|SESSION|SALT|DSN', re.IGNORECASE)

# Largest backup read: configuration files are small; a path naming a dump is refused, not read.
MAX_FILE_BYTES = 16 * 1024 * 1024

VALIDATORS = ('auto', 'compose', 'env', 'nginx', 'certificate', 'key', 'json', 'none')
DIFF_MODES = ('auto', 'env', 'text', 'none')

COMPOSE_NAMES = ('compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml')


class RestoreError(Exception):
    """A problem that stops the restore; ``msg`` says what and what to do."""

    def __init__(self, msg):
        super(RestoreError, self).__init__(msg)
        self.msg = msg


# --------------------------------------------------------------------------- names and times

def utc_stamp(now=None):
    """``YYYYmmddTHHMMSSZ`` in UTC."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y%m%dT%H%M%SZ')


def name_timestamp(name):
    """``(key, text)`` of the last timestamp in a file name, or None. ``key`` is
    ``YYYYmmddHHMMSS`` (comparable across spellings; a date alone counts as midnight), ``text``
    the spelling found in the name."""
    found = None
    for match in TIMESTAMP_RE.finditer(name):
        year, month, day, hour, minute, second = match.groups()
        hour, minute, second = hour or '00', minute or '00', second or '00'
        try:
            datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
        except ValueError:
            continue
        found = (year + month + day + hour + minute + second, match.group(0))
    return found


def kind_of(name):
    """The validation ``auto`` picks for a destination file name."""
    base = os.path.basename(name).lower()
    if base == '.env' or base.startswith('.env.') or base.endswith('.env'):
        return 'env'
    if fnmatch.fnmatch(base, '*compose*.y*ml'):
        return 'compose'
    if base.endswith(('.crt', '.pem', '.cer')):
        return 'certificate'
    if base.endswith('.key'):
        return 'key'
    if base.endswith('.conf') and ('nginx' in name.lower()):
        return 'nginx'
    if base.endswith('.json'):
        return 'json'
    return 'none'


def diff_kind(validate, diff_mode):
    """How an item's change is shown: env (keys only), text, cert (certificate details), none."""
    if diff_mode != 'auto':
        return diff_mode
    if validate == 'env':
        return 'env'
    if validate == 'certificate':
        return 'cert'
    if validate == 'key':
        return 'none'
    return 'text'


def resolve_pattern(dest, pattern):
    """The absolute glob of a pattern: relative patterns resolve in dest's directory."""
    if os.path.isabs(pattern):
        return pattern
    return os.path.join(os.path.dirname(dest), pattern)


def candidates(dest, pattern, lister=glob.glob):
    """``[(key, text, path)]`` of the regular files the pattern matches, newest timestamp first;
    files without a timestamp in their name have key None and come last. The destination itself
    and kept copies of earlier restores are never candidates."""
    out = []
    real_dest = os.path.realpath(dest)
    for path in lister(resolve_pattern(dest, pattern)):
        if not os.path.isfile(path) or os.path.realpath(path) == real_dest or KEPT_RE.search(path):
            continue
        stamp = name_timestamp(os.path.basename(path))
        out.append((stamp[0] if stamp else None, stamp[1] if stamp else None, path))
    out.sort(key=lambda row: (row[0] is not None, row[0] or '', row[2]), reverse=True)
    return out


def pick_newest(dest, pattern, rows):
    """The path a pattern item restores from ``rows`` (see :func:`candidates`). Raises RestoreError."""
    stamped = [row for row in rows if row[0] is not None]
    if stamped:
        return stamped[0]
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise RestoreError('no backup matches the pattern %s for %s; check the pattern (relative patterns '
                           'are looked up in the directory of dest) or give src'
                           % (resolve_pattern(dest, pattern), dest))
    raise RestoreError('%d files match the pattern %s for %s but none has a timestamp in its name '
                       '(such as .env.backup.20261125_101010), so none is the newest; give src instead'
                       % (len(rows), resolve_pattern(dest, pattern), dest))


def common_set(per_item):
    """The newest timestamp key common to every item of a backup set. ``per_item`` is
    ``[(dest, rows)]``. Returns the key; raises RestoreError naming each item's timestamps."""
    common = None
    for _dest, rows in per_item:
        keys = set(row[0] for row in rows if row[0] is not None)
        common = keys if common is None else common & keys
    if common:
        return max(common)
    lines = []
    for dest, rows in per_item:
        stamps = [row[1] for row in rows if row[0] is not None][:5]
        lines.append('%s: %s' % (dest, ', '.join(stamps) if stamps else 'no timestamped backup'))
    raise RestoreError('the backup set has no timestamp common to all of its items (newest first: %s); '
                       'restore the items separately (backup_set: false) or give src for each'
                       % '; '.join(lines))


def unique_kept(dest, suffix, exists=os.path.lexists, taken=()):
    """``dest + suffix``, or with ``-2``, ``-3``... appended: the first name no file has."""
    candidate = dest + suffix
    n = 1
    while exists(candidate) or candidate in taken:
        n += 1
        candidate = '%s%s-%d' % (dest, suffix, n)
    return candidate


# --------------------------------------------------------------------------- .env files

def parse_env(text):
    """``(values, problems)`` of a ``.env`` file as docker compose reads it: ``KEY=VALUE`` or
    ``export KEY=VALUE`` lines, blank lines and ``#`` comments. Values are kept as written (the
    comparison is of the text); a later line wins. ``problems`` name line numbers only, never
    the content (a broken line may hold a secret)."""
    values = {}
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        if stripped.startswith('export '):
            stripped = stripped[len('export '):].lstrip()
        if '=' not in stripped:
            problems.append('line %d is not KEY=VALUE' % number)
            continue
        key, value = stripped.split('=', 1)
        key = key.strip()
        if not ENV_KEY_RE.match(key):
            problems.append('line %d has an invalid variable name' % number)
            continue
        values[key] = value.strip()
    return values, problems


def env_key_changes(before, after):
    """``(added, removed, changed)`` key names, sorted."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(key for key in set(before) & set(after) if before[key] != after[key])
    return added, removed, changed


def env_diff_text(values, changed=(), mark=False):
    """The text an env diff shows: one ``KEY=<hidden>`` line per key, values never shown; in the
    after text a changed key is marked so the diff shows it."""
    lines = []
    for key in sorted(values):
        suffix = ' (changed)' if mark and key in changed else ''
        lines.append('%s=<hidden>%s' % (key, suffix))
    return '\n'.join(lines) + ('\n' if lines else '')


def secret_values(env_values, min_length=4):
    """Values of an env file to mask in anything shown: the values of secret-looking keys
    (``*PASSWORD*``, ``*KEY*``, ``*TOKEN*``...), as written and unquoted. Other values (ports,
    names) stay readable: masking a project name would garble every path in a message."""
    out = set()
    for key, value in env_values.items():
        if not SECRET_KEY_RE.search(key):
            continue
        for variant in (value, value.strip().strip('"').strip("'")):
            if len(variant) >= min_length:
                out.add(variant)
    return out


def mask(text, secrets, placeholder='********'):
    """``text`` with every secret replaced, longest first (one may contain another)."""
    if not text:
        return text
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, placeholder)
    return text


def text_diff(before, after):
    """A unified diff, for messages (the module returns before/after for Ansible's own diff)."""
    return ''.join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), 'live', 'backup'))


# --------------------------------------------------------------------------- other validations

def check_json(data):
    """A problem with a JSON file, or None."""
    try:
        json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        return 'not valid JSON (%s)' % (str(exc).split(':')[0] if isinstance(exc, ValueError) else 'not UTF-8')
    return None


def _utc(moment):
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _cert_times(cert):
    before = getattr(cert, 'not_valid_before_utc', None) or _utc(cert.not_valid_before)
    after = getattr(cert, 'not_valid_after_utc', None) or _utc(cert.not_valid_after)
    return before, after


def load_certificate(data):
    """The first certificate of PEM ``data``. Raises RestoreError."""
    if x509 is None:
        raise RestoreError('the Python library cryptography is needed to check certificates; install it '
                           'on the target host (pip install cryptography)')
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise RestoreError('not a PEM certificate (%s)' % exc)


def load_key(data):
    """The private key of PEM ``data``. Raises RestoreError (never showing the content)."""
    if serialization is None:
        raise RestoreError('the Python library cryptography is needed to check keys; install it on the '
                           'target host (pip install cryptography)')
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise RestoreError('the private key is encrypted; nginx would need its passphrase at every start. '
                           'Restore an unencrypted key')
    except (ValueError, Exception):  # cryptography raises several types for a bad key
        raise RestoreError('not a PEM private key')


def public_bytes(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_certificate(cert, now=None):
    """A problem with the certificate's validity period, or None."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = _cert_times(cert)
    if now < not_before:
        return 'the certificate is not valid yet (not before %s)' % not_before.strftime('%Y-%m-%d %H:%M:%S UTC')
    if now > not_after:
        return 'the certificate expired on %s' % not_after.strftime('%Y-%m-%d %H:%M:%S UTC')
    return None


def check_pair(cert, key):
    """A problem when the certificate and the private key do not belong together, or None."""
    if public_bytes(cert.public_key()) != public_bytes(key.public_key()):
        return 'the certificate and the private key do not belong together (their public keys differ)'
    return None


def check_ca(cert, ca_data):
    """A problem when ``cert`` is not issued by a certificate of the PEM bundle ``ca_data``, or None."""
    try:
        cas = x509.load_pem_x509_certificates(ca_data)
    except ValueError as exc:
        return 'the CA file holds no PEM certificate (%s)' % exc
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            return None
        except (ValueError, TypeError, Exception):  # InvalidSignature and friends
            continue
    return 'the certificate does not verify against the CA file (issuer %s)' % cert.issuer.rfc4514_string()


def cert_summary(data):
    """Lines describing a certificate for a diff: fingerprint, subject, validity."""
    try:
        cert = load_certificate(data)
    except RestoreError as exc:
        return '%s\n' % exc.msg
    from cryptography.hazmat.primitives import hashes
    not_before, not_after = _cert_times(cert)
    return ('sha256_fingerprint: %s\nsubject: %s\nnot_before: %s\nnot_after: %s\n' % (
        ':'.join('%02X' % b for b in bytearray(cert.fingerprint(hashes.SHA256()))),
        cert.subject.rfc4514_string(), not_before.isoformat(), not_after.isoformat()))


# --------------------------------------------------------------------------- writing files

def write_atomic(dest, data, mode, uid=None, gid=None):
    """Replace ``dest`` with ``data``: a temporary file in the same directory, mode and owner set
    on it, flushed to disk, then renamed over ``dest`` (readers see the old or the new file,
    never a half-written one)."""
    directory = os.path.dirname(dest) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(dest), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if uid is not None and gid is not None:
                try:
                    os.fchown(handle.fileno(), uid, gid)
                except OSError:
                    if os.geteuid() == 0:
                        raise
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_new(path, data, mode, uid=None, gid=None):
    """Create ``path`` (which must not exist: a kept copy is never overwritten) with ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
        handle.flush()
        os.fchmod(handle.fileno(), mode)
        if uid is not None and gid is not None:
            try:
                os.fchown(handle.fileno(), uid, gid)
            except OSError:
                if os.geteuid() == 0:
                    raise
        os.fsync(handle.fileno())


def read_limited(path, limit=MAX_FILE_BYTES):
    """The bytes of a regular file, at most ``limit``. Raises RestoreError."""
    if not os.path.exists(path):
        raise RestoreError('%s does not exist' % path)
    if not os.path.isfile(path):
        raise RestoreError('%s is not a regular file' % path)
    try:
        with open(path, 'rb') as handle:
            data = handle.read(limit + 1)
    except (IOError, OSError) as exc:
        raise RestoreError('cannot read %s: %s' % (path, exc.strerror or exc))
    if len(data) > limit:
        raise RestoreError('%s is larger than %d bytes; not a configuration file' % (path, limit))
    return data
