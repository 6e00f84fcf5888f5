# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: failure_chain
short_description: One line for a run's failures, the cause first
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Joins a run's failures (P(taylordash.rollback.add_failure#filter)) into one message, the
    first (the cause) first and each later one after C(; then:) and a space. A full stop before
    C(; then:) is left out.
options:
  _input:
    description: The failures, in the order they happened.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Fail the play when the rollback failed
  ansible.builtin.fail:
    msg: "Rollback failed: {{ rollback_failures | taylordash.rollback.failure_chain }}"
  when: rollback_failures | default([]) | length > 0
"""

RETURN = r"""
_value:
  description: The message; empty when there was no failure.
  type: str
  sample: "Restore the verified backup: division by zero; then: backend did not answer healthy within 60 s"
"""

from ansible.module_utils.common.text.converters import to_text


def failure_chain(failures):
    failures = [to_text(f).strip() for f in failures or [] if f]
    # "... does not exist; then: ..." reads better than "... does not exist.; then: ...".
    return '; then: '.join([f.rstrip('.') for f in failures[:-1]] + failures[-1:])


class FilterModule(object):
    def filters(self):
        return {'failure_chain': failure_chain}
