# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet summary of a rollback run: which hosts rolled back, failed, were unreachable or never started."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: fleet_summary
type: notification
short_description: Summarise a rollback run across a fleet of hosts
description:
  - Records, for every host a play of the run targets, whether it rolled back, failed (and why),
    was unreachable, or was never started because the run stopped first (C(serial) batches after
    C(max_fail_percentage) was exceeded, or a batch whose hosts all failed).
  - The summary survives a run that ansible-playbook ends early, which no later task or play could
    do; it is printed after the recap, written as JSON to O(path) when set, and published as the
    custom stat C(rollback_fleet) (the same place as C(set_stats) data), so that AWX and
    ansible-runner find it in the run's artifacts.
  - Each host's own incident report is unchanged; the summary names its path
    (C(report_path) set by the C(taylordash.rollback.report) role).
  - Enable it with C(callbacks_enabled = taylordash.rollback.fleet_summary) in C(ansible.cfg).
version_added: 0.1.0
requirements:
  - enabled in C(callbacks_enabled)
options:
  path:
    description:
      - File to write the fleet summary to, as JSON (mode 0600, replaced atomically).
      - A relative path is relative to the directory ansible-playbook runs in.
      - Empty writes no file; the summary is still printed and published.
    type: str
    default: ''
    env:
      - name: TAYLORDASH_FLEET_SUMMARY
    ini:
      - section: callback_fleet_summary
        key: path
"""

import inspect
import json
import os
import tempfile

from ansible import context
from ansible.plugins.callback import CallbackBase

# Outcomes, in the order the summary lists them.
ROLLED_BACK = "rolled_back"
FAILED = "failed"
UNREACHABLE = "unreachable"
NOT_STARTED = "not_started"
# A host that started but whose run ended before its last task (interrupted, or the whole
# run stopped while the host was still in a task). Not expected with the rollback playbooks,
# whose failures are caught and re-raised by their last task.
INCOMPLETE = "incomplete"


def _one_line(text, limit=500):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "taylordash.rollback.fleet_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hosts = {}  # name -> record, in the order the plays target them
        self._plays = []
        self._check_mode = False
        self._stats = None

    # ------------------------------------------------------------------ collecting

    def _record(self, name):
        return self._hosts.setdefault(name, {"outcome": NOT_STARTED, "reason": "", "tasks": 0, "last_task": "",
                                             "changed": False, "report_path": "", "incident_id": ""})

    def _find_stats(self):
        """The run's AggregateStats, held by the TaskQueueManager that calls this callback. The
        stdout callback (ansible-runner's awx_display in AWX) reads the custom stats before any other
        callback sees v2_playbook_on_stats, so the summary is kept there while the run goes on."""
        frame = inspect.currentframe()
        try:
            for _depth in range(8):
                frame = frame.f_back if frame is not None else None
                if frame is None:
                    return None
                owner = frame.f_locals.get("self")
                stats = getattr(owner, "_stats", None)
                if stats is not None and hasattr(stats, "set_custom_stats"):
                    return stats
        finally:
            del frame
        return None

    def v2_playbook_on_play_start(self, play):
        if self._stats is None:
            self._stats = self._find_stats()
        self._check_mode = bool(context.CLIARGS.get("check")) or bool(getattr(play, "check_mode", False)) or self._check_mode
        name = play.get_name()
        if name not in self._plays:
            self._plays.append(name)
        manager = play.get_variable_manager()
        inventory = getattr(manager, "_inventory", None)
        if inventory is None:
            return
        # Every host of the play, not only this serial batch: the batches after a stop are the
        # hosts never started.
        try:
            hosts = inventory.get_hosts(play.hosts, ignore_restrictions=True, order=play.order)
        except Exception:  # pylint: disable=broad-except  # a summary must never break the run
            return
        for host in hosts:
            self._record(host.get_name())
        self._publish()

    def _task_done(self, result, outcome=None, reason=None):
        record = self._record(result._host.get_name())
        record["tasks"] += 1
        record["last_task"] = result._task.get_name()
        data = result._result if isinstance(result._result, dict) else {}
        if data.get("changed"):
            record["changed"] = True
        facts = data.get("ansible_facts") or {}
        for key in ("report_path", "report_incident_id"):
            if facts.get(key):
                record[key.replace("report_incident_id", "incident_id")] = facts[key]
        if outcome is not None:
            record["outcome"] = outcome
            record["reason"] = reason or ""
        elif record["outcome"] in (NOT_STARTED, INCOMPLETE):
            record["outcome"] = INCOMPLETE
        self._publish()

    def v2_runner_on_ok(self, result):
        self._task_done(result)

    def v2_runner_on_skipped(self, result):
        self._task_done(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            self._task_done(result)
            return
        data = result._result if isinstance(result._result, dict) else {}
        reason = data.get("msg") or data.get("stderr") or data.get("reason") or "task failed"
        # A failure caught by a rescue is replaced when the host goes on; the last one stands.
        self._task_done(result, FAILED, "%s: %s" % (result._task.get_name(), _one_line(reason)))

    def v2_runner_on_unreachable(self, result):
        data = result._result if isinstance(result._result, dict) else {}
        self._task_done(result, UNREACHABLE, _one_line(data.get("msg") or "unreachable"))

    # ------------------------------------------------------------------ the summary

    def _summary(self, stats=None):
        hosts = {}
        for name, record in self._hosts.items():
            outcome = record["outcome"]
            if stats is not None and name in stats.processed:
                if stats.dark.get(name):
                    outcome = UNREACHABLE
                elif stats.failures.get(name):
                    outcome = FAILED
                elif outcome in (INCOMPLETE, FAILED):
                    # failed tasks were all rescued, and the host's run reached its end
                    outcome = ROLLED_BACK
            elif stats is not None and outcome == INCOMPLETE:
                outcome = NOT_STARTED if record["tasks"] == 0 else INCOMPLETE
            host = {"outcome": outcome, "changed": record["changed"]}
            if outcome in (FAILED, UNREACHABLE):
                host["reason"] = record["reason"]
            elif outcome == NOT_STARTED:
                host["reason"] = "not started: the run stopped before this host's batch"
            elif outcome == INCOMPLETE:
                host["reason"] = "the run stopped during task %r" % record["last_task"]
            if record["report_path"]:
                host["report_path"] = record["report_path"]
            if record["incident_id"]:
                host["incident_id"] = record["incident_id"]
            hosts[name] = host

        def names(outcome):
            return [name for name, host in hosts.items() if host["outcome"] == outcome]

        return {
            "plays": list(self._plays),
            "check_mode": self._check_mode,
            "complete": all(host["outcome"] == ROLLED_BACK for host in hosts.values()),
            "stopped_early": any(host["outcome"] in (NOT_STARTED, INCOMPLETE) for host in hosts.values()),
            "rolled_back": names(ROLLED_BACK),
            "failed": {name: hosts[name]["reason"] for name in names(FAILED)},
            "unreachable": {name: hosts[name]["reason"] for name in names(UNREACHABLE)},
            "not_started": names(NOT_STARTED),
            "incomplete": names(INCOMPLETE),
            "hosts": hosts,
        }

    def _publish(self, stats=None):
        stats = stats if stats is not None else self._stats
        if stats is None:
            return
        try:
            stats.set_custom_stats("rollback_fleet", self._summary(stats))
        except Exception:  # pylint: disable=broad-except  # a summary must never break the run
            pass

    def _write(self, summary):
        path = self.get_option("path")
        if not path:
            return
        path = os.path.abspath(os.path.expanduser(path))
        directory = os.path.dirname(path) or "."
        tmp = None
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".fleet_summary.", dir=directory)
            with os.fdopen(fd, "w") as handle:
                json.dump(summary, handle, indent=2, sort_keys=False)
                handle.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            self._display.warning("fleet_summary: could not write %s: %s" % (path, exc))
            return
        self._display.display("Fleet summary written to %s" % path)

    def v2_playbook_on_stats(self, stats):
        summary = self._summary(stats)
        self._publish(stats)
        lines = ["FLEET SUMMARY (%d hosts%s)" % (len(summary["hosts"]), ", check mode" if summary["check_mode"] else "")]
        lines.append("  rolled back: %s" % (", ".join(summary["rolled_back"]) or "none"))
        for key, label in ((FAILED, "failed"), (UNREACHABLE, "unreachable")):
            for name, reason in summary[key].items():
                lines.append("  %s %s: %s" % (label, name, reason))
        if summary["not_started"]:
            lines.append("  not started (the run stopped first): %s" % ", ".join(summary["not_started"]))
        if summary["incomplete"]:
            lines.append("  stopped mid-run: %s" % ", ".join(summary["incomplete"]))
        for name, host in summary["hosts"].items():
            if host.get("report_path"):
                lines.append("  report %s: %s" % (name, host["report_path"]))
        self._display.display("\n".join(lines))
        self._write(summary)
