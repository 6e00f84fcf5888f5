# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Build the module so that no argument value ends in a traceback.

Two of ansible-core's own steps in ``AnsibleModule.__init__`` raise instead of failing:

* the type check of an ``int`` option raises ``OverflowError`` for infinity
  (``max_body_bytes: .inf`` or ``"inf"``): it catches only TypeError and ValueError;
* logging the invocation encodes every string argument as strict UTF-8, so text with a lone
  surrogate (a file name that is not UTF-8, read with surrogateescape) raises ``UnicodeEncodeError``.

:func:`build_module` catches both and fails with a message, through a stand-in module whose
options take any value and are all treated as secret (nothing is converted or encoded again),
returning an invocation that keeps every no_log value hidden.

Private to this collection (leading underscore): no compatibility promise.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.taylordash.rollback.plugins.module_utils._masking import (
    mask_secrets_only,
    masked_invocation,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._module import RollbackModule


def build_module(argument_spec, **kwargs):
    """``RollbackModule(argument_spec=..., **kwargs)``, or a clean fail_json when an argument
    breaks ansible-core's own argument handling."""
    try:
        return RollbackModule(argument_spec=argument_spec, **kwargs)
    except OverflowError as exc:
        problem = 'An argument is out of range: %s. Give finite numbers within the documented ranges.' % exc
        shown = True
    except UnicodeError:
        problem = ('An argument contains text that cannot be encoded as UTF-8 (such as a file name that is '
                   'not UTF-8). Give valid UTF-8 text.')
        shown = False
    loose = dict((name, dict(type='raw', no_log=True)) for name in argument_spec)
    module = RollbackModule(argument_spec=loose, supports_check_mode=True)
    mask_secrets_only(module)
    invocation = masked_invocation(argument_spec, module.params) if shown else {'module_args': {}}
    module.fail_json(msg=problem, invocation=invocation)
