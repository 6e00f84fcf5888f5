"""Unit tests of nginx_switch's logic (module_utils/_nginx.py): the parsers on text captured from
/proc, systemctl and docker top; the switch against a stand-in nginx (files in tmp_path, a
scripted worker table, no processes); the marker check on a simulated clock; the argument checks;
and a Hypothesis property test of every option (module_fuzz). A real nginx: tests/integration."""
from __future__ import annotations

import os

import pytest
from hypothesis import strategies as st

from module_fuzz import ModuleFuzz, text_values

from ansible_collections.taylordash.rollback.plugins.module_utils import _nginx as ng
from ansible_collections.taylordash.rollback.plugins.modules import nginx_switch

# --- parsers ---------------------------------------------------------------------------------

DOCKER_TOP = """PID                 PPID                COMMAND
26137               26116               nginx: master process nginx -p /tmp/lb -c /tmp/lb/nginx.conf -g daemon off;
26291               26137               nginx: worker process
26200               26137               nginx: worker process is shutting down
"""


def test_parse_docker_top_and_workers():
    rows = ng.parse_docker_top(DOCKER_TOP)
    assert rows[0] == (26137, 26116, "nginx: master process nginx -p /tmp/lb -c /tmp/lb/nginx.conf -g daemon off;")
    assert ng.find_master(rows) == 26137
    assert ng.workers_of(rows, 26137) == [26291]
    assert ng.old_workers_of(rows, 26137) == [26200]
    assert ng.find_master(rows, candidates={1}) is None
    assert ng.descendants(rows, 26116) == {26116, 26137, 26291, 26200}


def test_parse_stat_ppid_with_odd_names():
    assert ng.parse_stat_ppid("4242 (nginx) S 4241 4242 4242 0 -1") == 4241
    assert ng.parse_stat_ppid("77 (a) b) (c) S 9 77 77 0") == 9


@pytest.mark.parametrize("text,pid", [("4242\n", 4242), ("MainPID=17\n", 17), ("0\n", 0), ("", 0), ("[not set]", 0)])
def test_parse_main_pid(text, pid):
    assert ng.parse_main_pid(text) == pid


def test_nginx_message_keeps_the_error_lines():
    stderr = ('nginx: [emerg] unknown directive "proxy_passs" in /etc/nginx/sites-enabled/taylordash:6\n'
              "nginx: configuration file /etc/nginx/nginx.conf test failed\n")
    assert ng.nginx_message(stderr) == 'nginx: [emerg] unknown directive "proxy_passs" in /etc/nginx/sites-enabled/taylordash:6'
    assert ng.nginx_message("", "") == "(no output)"
    assert ng.nginx_message("something odd\n") == "something odd"


def test_backup_name_is_beside_and_not_a_conf():
    import datetime
    name = ng.backup_name("/etc/nginx/sites-available/taylordash",
                          datetime.datetime(2025, 6, 1, 12, 0, 0, 5, tzinfo=datetime.timezone.utc))
    assert name == "/etc/nginx/sites-available/taylordash.20250601T120000000005Z.bak"


def test_proc_table_reads_this_process(tmp_path):
    rows = ng.proc_table()
    assert any(pid == os.getpid() and ppid == os.getppid() for pid, ppid, _t in rows)
    assert ng.proc_table(str(tmp_path / "none")) == []


# --- the switch against a stand-in nginx ---------------------------------------------------

class FakeNginx(ng.Nginx):
    """Workers [10] under master 1; a reload starts worker 11 (and marks 10 shutting down) after
    ``reload_polls`` polls, or never (``takes=False``); ``test_error`` makes nginx -t fail."""

    kind = "host"

    def __init__(self, takes=True, test_error=None, reload_polls=1, running=True):
        super().__init__()
        self.takes = takes
        self.test_error = test_error
        self.reload_polls = reload_polls
        self.running = running
        self.generation = [10]
        self.pending = None
        self.calls = []

    def master(self):
        if not self.running:
            raise ng.SwitchError("nginx is not running: test")
        return 1

    def test(self):
        self.calls.append("test")
        if self.test_error:
            raise ng.SwitchError("nginx -t failed: %s" % self.test_error, cmd="nginx -t", rc=1)
        return dict(cmd="nginx -t", rc=0)

    def reload(self):
        self.calls.append("reload")
        if self.takes:
            self.pending = self.reload_polls
        return {}

    def workers(self):
        self.master()
        if self.pending is not None:
            self.pending -= 1
            if self.pending <= 0:
                self.generation = [max(self.generation) + 1]
                self.pending = None
        return 1, list(self.generation), []


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def files(tmp_path):
    site = tmp_path / "sites-available" / "taylordash"
    site.parent.mkdir()
    site.write_text("green\n")
    cand = tmp_path / "nginx.blue.conf"
    cand.write_text("blue\n")
    return site, cand


def switch(nginx, site, cand, **kwargs):
    clock = Clock()
    kwargs.setdefault("reload_timeout", 1.0)
    return ng.Switch(nginx, str(site), str(cand), clock=clock, sleep=clock.sleep, **kwargs)


def test_switch_keeps_a_copy_and_reloads(files):
    site, cand = files
    nginx = FakeNginx()
    result = switch(nginx, site, cand).run(want_diff=True)
    assert result["changed"] and site.read_text() == "blue\n"
    assert open(result["backup_file"]).read() == "green\n"
    assert nginx.calls == ["test", "reload"]
    assert result["workers_before"] == [10] and result["workers"] == [11]
    assert result["diff"]["before"] == "green\n" and result["diff"]["after"] == "blue\n"


def test_same_content_is_unchanged_and_check_mode_is_inert(files):
    site, cand = files
    nginx = FakeNginx()
    check = switch(nginx, site, cand).run(check_mode=True, want_diff=True)
    assert check["changed"] and site.read_text() == "green\n" and nginx.calls == []
    assert sorted(os.listdir(site.parent)) == ["taylordash"]
    cand.write_text("green\n")
    same = switch(nginx, site, cand).run()
    assert not same["changed"] and nginx.calls == [] and "nothing to do" in same["msg"]


def test_failed_nginx_test_puts_the_old_file_back(files):
    site, cand = files
    nginx = FakeNginx(test_error='[emerg] unknown directive "x"')
    with pytest.raises(ng.SwitchError) as err:
        switch(nginx, site, cand).run()
    assert "unknown directive" in err.value.msg and "put back" in err.value.msg
    assert site.read_text() == "green\n" and nginx.calls == ["test"]
    assert sorted(os.listdir(site.parent)) == ["taylordash"]


def test_reload_without_effect_is_reverted(files):
    site, cand = files
    nginx = FakeNginx(takes=False)
    sw = switch(nginx, site, cand)
    with pytest.raises(ng.SwitchError) as err:
        sw.run()
    assert "did not take effect" in err.value.msg
    assert site.read_text() == "green\n" and nginx.calls == ["test", "reload", "reload"]
    # the revert's reload did not take effect either: it says so
    assert not sw.result["reverted"] and "putting the old config back failed too" in err.value.msg


def test_verification_failure_is_reverted(files):
    site, cand = files
    nginx = FakeNginx()
    sw = switch(nginx, site, cand, verify=lambda deadline: (False, dict(problem="status 500", successes=0)))
    with pytest.raises(ng.SwitchError) as err:
        sw.run()
    assert sw.result["reverted"] and "reverted" in err.value.msg and "status 500" in err.value.msg
    assert site.read_text() == "green\n"


def test_file_in_place_but_not_served_is_reloaded(files):
    site, cand = files
    cand.write_text("green\n")
    answers = iter([(False, dict(problem="old", successes=0)), (True, dict(problem=None, successes=3))])
    nginx = FakeNginx()
    result = switch(nginx, site, cand, verify=lambda deadline: next(answers)).run()
    assert result["changed"] and nginx.calls == ["test", "reload"] and result["backup_file"] is None


def test_nginx_not_running_changes_nothing(files):
    site, cand = files
    with pytest.raises(ng.SwitchError) as err:
        switch(FakeNginx(running=False), site, cand).run()
    assert err.value.msg.startswith("nginx is not running") and site.read_text() == "green\n"


def test_missing_candidate_and_symlinked_site(files, tmp_path):
    site, cand = files
    with pytest.raises(ng.SwitchError) as err:
        switch(FakeNginx(), site, tmp_path / "absent").run()
    assert "Cannot read the candidate" in err.value.msg
    link = tmp_path / "enabled"
    link.symlink_to(site)
    switch(FakeNginx(), link, cand).run()
    assert link.is_symlink() and site.read_text() == "blue\n"


# --- back ends, with a stand-in runner ------------------------------------------------------

class Res:
    def __init__(self, rc=0, out="", err="", timed_out=False):
        self.rc, self.stdout_text, self.stderr_text, self.timed_out = rc, out, err, timed_out


def runner(answers, calls):
    def run(argv, timeout=None):
        calls.append(argv)
        for key, res in answers:
            if key in " ".join(argv):
                return res
        return Res()
    return run


def test_systemd_backend():
    calls = []
    nginx = ng.SystemdNginx("/usr/sbin/nginx", "nginx", runner=runner([("show", Res(out="0\n"))], calls))
    with pytest.raises(ng.SwitchError) as err:
        nginx.master()
    assert "no main process" in err.value.msg
    nginx = ng.SystemdNginx("/usr/sbin/nginx", "nginx", runner=runner(
        [("show", Res(out="4242\n")), ("reload", Res(rc=1, err="Job failed"))], calls))
    assert nginx.master() == 4242
    with pytest.raises(ng.SwitchError) as err:
        nginx.reload()
    assert "systemctl reload nginx failed: Job failed" in err.value.msg
    assert ["systemctl", "reload", "nginx"] in calls


def test_compose_backend_argv_and_table():
    calls = []
    nginx = ng.ComposeNginx("docker", "/srv/lb", "nginx", project="lb", conf="/srv/lb/nginx.conf", runner=runner(
        [(" ps ", Res(out="abc123\n")), (" top ", Res(out=DOCKER_TOP)), (" -t", Res(rc=1, err="nginx: [emerg] bad"))],
        calls))
    assert nginx.workers() == (26137, [26291], [26200])
    with pytest.raises(ng.SwitchError) as err:
        nginx.test()
    assert err.value.msg == "nginx -t failed: nginx: [emerg] bad"
    assert calls[-1] == ["docker", "compose", "--project-directory", "/srv/lb", "--project-name", "lb", "exec", "-T",
                         "nginx", "nginx", "-c", "/srv/lb/nginx.conf", "-t"]
    down = ng.ComposeNginx("docker", "/srv/lb", "nginx", runner=runner([(" ps ", Res(out=""))], []))
    with pytest.raises(ng.SwitchError) as err:
        down.master()
    assert err.value.msg.startswith("nginx is not running")


def test_host_backend_refuses_a_pid_that_is_not_nginx(tmp_path):
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text("%d\n" % os.getpid())
    nginx = ng.HostNginx("nginx", str(pid_file))
    with pytest.raises(ng.SwitchError) as err:
        nginx.master()
    assert "not an nginx master process" in err.value.msg


def test_command_timeout_is_reported():
    nginx = ng.HostNginx("nginx", "/run/nginx.pid", runner=runner([("-t", Res(timed_out=True, rc=-15))], []), timeout=3)
    with pytest.raises(ng.SwitchError) as err:
        nginx.test()
    assert "did not finish within 3 s" in err.value.msg


# --- the marker check ------------------------------------------------------------------------

def test_marker_needs_answers_in_a_row():
    clock = Clock()
    answers = iter([(200, {"x-taylordash-env": "green"}, None), (200, {"x-taylordash-env": "blue"}, None),
                    (500, {"x-taylordash-env": "blue"}, None)] + [(200, {"x-taylordash-env": "blue"}, None)] * 3)

    def send(budget):
        clock.now += 0.01
        return next(answers)

    marker = ng.Marker(send, 3, [200], header="X-TaylorDash-Env", value="blue", clock=clock, sleep=clock.sleep)
    ok, report = marker(clock() + 10)
    assert ok and report["attempts"] == 6 and report["successes"] == 3


def test_marker_gives_up_at_the_deadline():
    clock = Clock()

    def send(budget):
        assert budget > 0
        clock.now += 0.5
        return None, {}, "connection failed: Connection refused"

    ok, report = ng.Marker(send, 2, [200], clock=clock, sleep=clock.sleep)(clock() + 2)
    assert not ok and report["problem"] == "connection failed: Connection refused" and report["attempts"] <= 5


# --- arguments ---------------------------------------------------------------------------------

def base(**extra):
    p = {name: spec.get("default") for name, spec in nginx_switch.argument_spec().items()}
    p.update(src="/x/nginx.blue.conf")
    p.update(extra)
    return p


@pytest.mark.parametrize("extra,words", [
    (dict(reload_timeout=float("nan")), "reload_timeout must be a finite number"),
    (dict(verify_successes=0), "verify_successes must be from 1"),
    (dict(verify_url="ftp://x"), "verify_url must be an http"),
    (dict(verify_url="http://127.0.0.1/", verify_header="X-Env"), "verify_value is not"),
    (dict(verify_value="blue"), "need verify_url"),
    (dict(nginx="compose"), "needs project_dir"),
    (dict(verify_status_codes=[99]), "verify_status_codes"),
    (dict(verify_headers={"Host": "a\r\nb"}), "line break"),
])
def test_check_params(extra, words):
    assert any(words in problem for problem in nginx_switch.check_params(base(**extra)))


def test_check_params_good():
    assert nginx_switch.check_params(base()) == []


FUZZ = ModuleFuzz(
    nginx_switch,
    # Nothing can be written: the live file's directory does not exist, and the candidate is read
    # before anything else (generated paths are only read).
    base_args={"path": "/nonexistent-taylordash-test/sites-available/taylordash",
               "src": "/nonexistent-taylordash-test/nginx.blue.conf"},
    strategies={"path": st.sampled_from(["/nonexistent-taylordash-test/x", "", "/nonexistent-taylordash-test/"]),
                "verify_url": st.one_of(st.none(), st.sampled_from(["http://127.0.0.1:9/", "ftp://x", ""]),
                                        text_values().filter(lambda t: "://" not in t))},
)


@FUZZ.given_options()
def test_nginx_switch_any_option(option_and_value, tmp_path):
    kind, result = FUZZ.check(option_and_value, cwd=tmp_path)
    assert kind == "fail"  # never got past reading the files
    assert not result.get("changed")
