"""controller_process: the PID of the playbook process, from the worker Ansible forks."""
from __future__ import annotations

import multiprocessing
import os

from ansible_collections.taylordash.rollback.plugins.lookup.controller_process import LookupModule, controller_pid


def test_without_a_parent_process_it_is_this_process():
    assert controller_pid() == os.getpid()
    assert LookupModule().run([], {}) == [os.getpid()]


def _child(queue):
    queue.put(controller_pid())


def test_in_a_worker_it_is_the_parent():
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    worker = ctx.Process(target=_child, args=(queue,))
    worker.start()
    worker.join(30)
    assert queue.get(timeout=5) == os.getpid()
