# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: incident_id
short_description: A rollback's incident ID, unique per run and readable
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Builds C(ROLL-<YYYYmmdd>-<HHMMSS>-<xxxx>) from a UTC clock reading, for example
    C(ROLL-20261125-221503-3f9a).
  - The runbook's C(ROLL-$(date +%Y%m%d-%H%M)) gives every rollback of one minute the same ID;
    the seconds and four random hexadecimal digits (65536 values) tell apart the runs of one
    second too, for example several hosts of one play.
  - The filter returns a new suffix each time it is evaluated; set it once with
    C(ansible.builtin.set_fact) and use that fact.
options:
  _input:
    description: The clock reading, C(YYYYmmddHHMMSS) in UTC, as C(now(utc=true, fmt='%Y%m%d%H%M%S')) gives it.
    type: str
    required: true
  suffix:
    description:
      - The last part, instead of a random one (for tests, or a host's short name).
      - Letters, digits and C(-) only, at most 16 characters.
    type: str
"""

EXAMPLES = r"""
- name: Choose the incident ID of this run
  ansible.builtin.set_fact:
    report_incident_id: "{{ now(utc=true, fmt='%Y%m%d%H%M%S') | taylordash.rollback.incident_id }}"
"""

RETURN = r"""
_value:
  description: The incident ID.
  type: str
  sample: ROLL-20261125-221503-3f9a
"""

import binascii
import os
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

_CLOCK = re.compile(r'^(\d{8})(\d{6})$')
_SUFFIX = re.compile(r'^[A-Za-z0-9-]{1,16}$')


def incident_id(clock, suffix=None):
    match = _CLOCK.match(to_native(clock))
    if not match:
        raise AnsibleFilterError('incident_id: %r is not a clock reading YYYYmmddHHMMSS' % (clock,))
    if suffix is None:
        suffix = to_native(binascii.hexlify(os.urandom(2)))
    elif not _SUFFIX.match(to_native(suffix)):
        raise AnsibleFilterError('incident_id: suffix %r must be 1-16 letters, digits or -' % (suffix,))
    return 'ROLL-%s-%s-%s' % (match.group(1), match.group(2), to_native(suffix))


class FilterModule(object):
    def filters(self):
        return {'incident_id': incident_id}
