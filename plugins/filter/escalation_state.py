# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: escalation_state
short_description: The incidents an escalation state file remembers, read safely
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Reads the state file of the role C(taylordash.rollback.escalate) (which incident keys were paged
    on which channel, and when) from the registered result of C(ansible.builtin.slurp), or from its text.
  - A missing, empty, unreadable or corrupt file, and any entry of the wrong shape, count as no
    incident, so that a broken state file never stops a page.
options:
  _input:
    description: The result of C(ansible.builtin.slurp) of the state file (C(content) in base64), or the file's text.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Read the incidents paged recently
  ansible.builtin.slurp:
    src: /opt/taylordash/.escalate_state.json
  register: state_raw
  failed_when: false

- name: Know them
  ansible.builtin.set_fact:
    incidents: "{{ (state_raw | taylordash.rollback.escalation_state).incidents }}"
"""

RETURN = r"""
_value:
  description:
    - C(format) and C(incidents), a mapping of incident key to C(incident_id) and C(channels) (channel
      name to the time it was paged, seconds since the epoch).
  type: dict
  sample: {"format": "taylordash.rollback.escalate-state/1",
           "incidents": {"3f2a...": {"incident_id": "ROLL-20261126-004753-798d", "channels": {"mail": 1795654079.2}}}}
"""

import base64
import binascii
import json
import math

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types

FORMAT = 'taylordash.rollback.escalate-state/1'


def _text(value):
    if isinstance(value, dict):
        content = value.get('content')
        if not content or value.get('failed'):
            return ''
        try:
            return to_text(base64.b64decode(content), errors='surrogate_or_replace')
        except (binascii.Error, TypeError, ValueError):
            return ''
    if isinstance(value, string_types):
        return to_text(value)
    return ''


def _time(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def escalation_state(value):
    incidents = {}
    try:
        data = json.loads(_text(value) or '{}')
    except ValueError:
        data = {}
    raw = data.get('incidents') if isinstance(data, dict) else None
    for key, entry in (raw.items() if isinstance(raw, dict) else []):
        if not isinstance(entry, dict) or not isinstance(entry.get('channels'), dict):
            continue
        channels = dict((to_text(name), _time(when)) for name, when in entry['channels'].items())
        channels = dict((name, when) for name, when in channels.items() if when is not None)
        if channels:
            incident = entry.get('incident_id')
            incidents[to_text(key)] = {'incident_id': to_text(incident) if isinstance(incident, string_types) else None,
                                       'channels': channels}
    return {'format': FORMAT, 'incidents': incidents}


class FilterModule(object):
    def filters(self):
        return {'escalation_state': escalation_state}
