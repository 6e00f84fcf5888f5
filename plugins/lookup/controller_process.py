# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: controller_process
short_description: The process ID of the ansible-playbook run on the controller
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
description:
  - Returns, as a one-item list, the process ID of the C(ansible-playbook) (or C(ansible)) process
    that runs the play.
  - Ansible runs lookups in a worker process it forks for the task; the worker's parent is the
    playbook process. When the lookup runs in the playbook process itself (no parent started by
    C(multiprocessing)), that process's own ID is returned.
  - The role C(taylordash.rollback.stack) records it as the owner of the rollback lock when the
    target host is the controller itself, so a lock left by a killed run can be told from one
    held by a run that is still going.
  - The ID means something only on the controller; do not pass it to a module that runs on
    another host.
options: {}
"""

EXAMPLES = r"""
- name: Take the rollback lock as this playbook run
  taylordash.rollback.rollback_lock:
    path: /opt/taylordash/.rollback.lock
    holder: alice
    owner_pid: "{{ lookup('taylordash.rollback.controller_process') }}"
  delegate_to: localhost
"""

RETURN = r"""
_raw:
  description: One item, the process ID of the playbook run.
  type: list
  elements: int
"""

import multiprocessing
import os

from ansible.plugins.lookup import LookupBase


def controller_pid():
    """The PID of the playbook process: the parent of Ansible's worker, or this process."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid:
        return parent.pid
    return os.getpid()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [controller_pid()]
