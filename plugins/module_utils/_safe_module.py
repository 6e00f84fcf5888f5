# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Build the module so that no argument value ends in a traceback.

ansible-core's own type check of an ``int`` option raises ``OverflowError`` for infinity
(``max_body_bytes: .inf`` or ``"inf"``): it catches only TypeError and ValueError, so the error
escapes ``AnsibleModule.__init__`` as a traceback. :func:`build_module` catches it and fails with a
message, through a stand-in module whose options take any value (so nothing is converted again)
and whose invocation keeps every no_log value hidden.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.taylordash.rollback.plugins.module_utils._masking import masked_invocation
from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule


def build_module(argument_spec, **kwargs):
    """``RollbackModule(argument_spec=..., **kwargs)``, or a clean fail_json when an argument
    overflows ansible-core's type conversion."""
    try:
        return RollbackModule(argument_spec=argument_spec, **kwargs)
    except OverflowError as exc:
        error = exc
    loose = dict((name, dict(type='raw', no_log=bool(option.get('no_log'))))
                 for name, option in argument_spec.items())
    module = RollbackModule(argument_spec=loose, supports_check_mode=True)
    module.fail_json(
        msg='An argument is out of range: %s. Give finite numbers within the documented ranges.' % error,
        invocation=masked_invocation(argument_spec, module.params))
