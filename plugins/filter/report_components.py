# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: report_components
short_description: The runbook's "Services Affected" checklist, ticked from what changed
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - One entry per component of the runbook's checklist; a component is affected when a changed
    service is one of its services, or a change entry names one of its services or the component
    itself.
  - A changed service that belongs to no component gets an entry of its own, named C(Other:) and the service.
options:
  _input:
    description: The components, each with C(name) and C(services) (compose service names).
    type: list
    elements: dict
    required: true
  services_changed:
    description: What changed (P(taylordash.rollback.report_services_changed#filter)).
    type: list
    elements: str
    default: []
  changes:
    description: The effective changes (P(taylordash.rollback.report_effective_changes#filter)).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Tick the components
  ansible.builtin.debug:
    msg: "{{ report_components | taylordash.rollback.report_components(['backend'], []) }}"
"""

RETURN = r"""
_value:
  description:
    - One entry per component, in order, then the C(Other:) entries.
    - Each has C(name), C(services), C(affected) (bool) and C(changed) (the names that hit it, each once).
  type: list
  elements: dict
"""


def _name(change):
    return change.get('service') or change.get('component') or 'unnamed'


def _unique(names):
    out = []
    for name in names:
        if name not in out:
            out.append(name)
    return out


def report_components(components, services_changed=None, changes=None):
    services_changed, changes = services_changed or [], changes or []
    view, claimed = [], []
    for comp in components or []:
        services = comp.get('services') or []
        hits = [name for name in services_changed if name in services]
        hits += [_name(c) for c in changes
                 if (c.get('service') or '') in services or (c.get('component') or '') == comp.get('name')]
        claimed.extend(hits)
        view.append(dict(name=comp.get('name'), services=services, affected=bool(hits), changed=_unique(hits)))
    for name in services_changed:
        if name not in claimed:
            view.append(dict(name='Other: %s' % name, services=[name], affected=True, changed=[name]))
    return view


class FilterModule(object):
    def filters(self):
        return {'report_components': report_components}
