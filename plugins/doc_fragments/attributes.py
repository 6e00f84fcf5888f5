# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):
    """The attribute descriptions every module of this collection shares, and its action group.

    A module names ``taylordash.rollback.attributes`` in ``extends_documentation_fragment`` and
    keeps only what is its own under ``attributes``: each attribute's ``support`` and ``details``.
    The fragment is merged into the module's documentation, so the wording exists once.
    """

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff_mode mode).
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
  action_group:
    description: Use C(group/taylordash.rollback.rollback) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - taylordash.rollback.rollback
"""
