# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fingerprint, subject and expiry of a PEM certificate, read with the ``cryptography`` library.

The values are spelled the way ``openssl x509 -fingerprint -sha256 -subject -enddate -nameopt
oneline`` prints them (``AB:CD:...``, ``C = DE, O = "Taylor, Dash", CN = example``,
``Feb 27 11:40:11 2029 GMT``), because snapshots and reports written before compare against
that spelling. Parsing that text is what this replaces: no ``openssl`` binary, no locale.

community.crypto's module_utils would do the reading too, but since its 3.0.0 they are private
to that collection ("must not be used from other collections"), so ``cryptography`` is used
directly, the library they wrap.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import traceback

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
except ImportError:  # reported by the caller, only when a certificate is asked for
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

# Largest file read as a certificate: a PEM chain is a few KiB; a path pointing at something
# else (a dump, a device) is not read whole.
MAX_PEM_BYTES = 1024 * 1024

_MONTHS = ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')

# OpenSSL's short names (crypto/objects/objects.txt) of the attributes a subject carries.
SHORT_NAMES = {
    '2.5.4.3': 'CN', '2.5.4.4': 'SN', '2.5.4.5': 'serialNumber', '2.5.4.6': 'C', '2.5.4.7': 'L',
    '2.5.4.8': 'ST', '2.5.4.9': 'street', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.12': 'title',
    '2.5.4.15': 'businessCategory', '2.5.4.17': 'postalCode', '2.5.4.42': 'GN',
    '2.5.4.43': 'initials', '2.5.4.44': 'generationQualifier', '2.5.4.46': 'dnQualifier',
    '2.5.4.65': 'pseudonym', '2.5.4.97': 'organizationIdentifier',
    '0.9.2342.19200300.100.1.1': 'UID', '0.9.2342.19200300.100.1.25': 'DC',
    '1.2.840.113549.1.9.1': 'emailAddress',
    '1.3.6.1.4.1.311.60.2.1.1': 'jurisdictionL', '1.3.6.1.4.1.311.60.2.1.2': 'jurisdictionST',
    '1.3.6.1.4.1.311.60.2.1.3': 'jurisdictionC',
}

# RFC 2253 characters that make OpenSSL's "oneline" format quote a value.
_SPECIAL = set(',+"\\<>;')


def format_fingerprint(digest):
    """``b'\\x8d\\x15'`` -> ``'8D:15'``."""
    return ':'.join('%02X' % byte for byte in bytearray(digest))


def format_time(moment):
    """A UTC datetime as OpenSSL prints it: ``Feb  7 11:40:11 2029 GMT`` (day padded with a space)."""
    return '%s %2d %02d:%02d:%02d %d GMT' % (
        _MONTHS[moment.month - 1], moment.day, moment.hour, moment.minute, moment.second, moment.year)


def format_value(value):
    """One attribute value in OpenSSL's oneline spelling: UTF-8 bytes above 0x7e and control
    characters as ``\\XX``; quoted when it holds an RFC 2253 special character or starts with a
    space or ``#`` or ends with a space (then only ``"`` and ``\\`` are escaped)."""
    quote = bool(value) and (any(ch in _SPECIAL for ch in value) or value[0] in ' #' or value[-1] == ' ')
    out = []
    for byte in bytearray(value.encode('utf-8', 'surrogatepass')):
        ch = chr(byte)
        if byte < 0x20 or byte > 0x7e:
            out.append('\\%02X' % byte)
        elif ch in _SPECIAL and (ch in '"\\' or not quote):
            out.append('\\' + ch)
        else:
            out.append(ch)
    text = ''.join(out)
    return '"%s"' % text if quote else text


def format_name(name):
    """An ``x509.Name`` in OpenSSL's oneline spelling, in the order the certificate stores it:
    ``C = DE, O = example, CN = example.org``."""
    rdns = []
    for rdn in name.rdns:
        rdns.append(' + '.join('%s = %s' % (SHORT_NAMES.get(attr.oid.dotted_string, attr.oid.dotted_string),
                                            format_value(_text(attr.value)))
                               for attr in rdn))
    return ', '.join(rdns)


def _text(value):
    return value if isinstance(value, str) else value.decode('utf-8', 'replace')


def _not_after(cert):
    # cryptography >= 42 has the timezone-aware property; older ones only the naive UTC one.
    moment = getattr(cert, 'not_valid_after_utc', None)
    return moment if moment is not None else cert.not_valid_after


def certificate_details(pem):
    """``{'sha256_fingerprint', 'subject', 'not_after'}`` of the first certificate in ``pem``
    (bytes). Raises ValueError when it is not a PEM certificate."""
    cert = x509.load_pem_x509_certificate(pem)
    return {
        'sha256_fingerprint': format_fingerprint(cert.fingerprint(hashes.SHA256())),
        'subject': format_name(cert.subject),
        'not_after': format_time(_not_after(cert)),
    }


def certificate_file(path):
    """What a snapshot records for the certificate file ``path``: ``exists``, and the details or
    an ``error`` saying why there are none. Never raises for a bad file."""
    if not os.path.isfile(path):
        return {'path': path, 'exists': False}
    info = {'path': path, 'exists': True}
    try:
        with open(path, 'rb') as handle:
            pem = handle.read(MAX_PEM_BYTES + 1)
    except (IOError, OSError) as exc:
        info['error'] = 'cannot read the certificate: %s' % exc
        return info
    if len(pem) > MAX_PEM_BYTES:
        info['error'] = 'not a PEM certificate (larger than %d bytes)' % MAX_PEM_BYTES
        return info
    try:
        info.update(certificate_details(pem))
    except ValueError as exc:
        info['error'] = 'not a PEM certificate (%s)' % exc
    return info
