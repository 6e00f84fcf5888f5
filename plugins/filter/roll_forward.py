# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: roll_forward
short_description: The commands that undo an image rollback, from the tags it kept
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - For each change entry that kept the replaced image under a tag (C(kept_tag), for example
    C(rollback-20261125T221503Z)) and whose tag was moved (C(retagged) true, or absent), the
    C(docker tag) command that points the current tag back at the kept image.
  - A failed rollback may have moved some tags only; the commands name exactly those.
  - After the tags, the services must be recreated (C(docker compose up -d <service>)); the
    report says so.
options:
  _input:
    description: The change entries (C(service), C(image), C(kept_tag), C(retagged)).
    type: list
    elements: dict
    required: true
  current_tag:
    description: The tag the services run, C(stack_current_tag) (usually V(latest)).
    type: str
    default: latest
"""

EXAMPLES = r"""
- name: Say how to roll forward
  ansible.builtin.debug:
    msg: "{{ immediate_changes | taylordash.rollback.roll_forward(stack_current_tag) }}"
"""

RETURN = r"""
_value:
  description: One item per kept image, with C(service), C(image), C(kept_tag) and C(command).
  type: list
  elements: dict
  sample:
    - service: backend
      image: taylordash_backend
      kept_tag: rollback-20261125T221503Z
      command: docker tag taylordash_backend:rollback-20261125T221503Z taylordash_backend:latest
"""

from ansible.module_utils.parsing.convert_bool import boolean


def _flag(value):
    try:
        return boolean(value, strict=False)
    except TypeError:
        return bool(value)


def roll_forward(changes, current_tag='latest'):
    out = []
    for change in changes or []:
        if not isinstance(change, dict):
            continue
        kept, image = change.get('kept_tag'), change.get('image')
        if not kept or not image or not _flag(change.get('retagged', True)):
            continue
        out.append(dict(service=change.get('service') or change.get('component') or image, image=image,
                        kept_tag=kept,
                        command='docker tag %s:%s %s:%s' % (image, kept, image, current_tag or 'latest')))
    return out


class FilterModule(object):
    def filters(self):
        return {'roll_forward': roll_forward}
