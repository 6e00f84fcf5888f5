"""Property-based checks of a module's argument handling (issue: no traceback or hang on any input).

How a test uses it::

    from .module_fuzz import ModuleFuzz

    FUZZ = ModuleFuzz(health_poll, base_args={"url": "http://127.0.0.1:9/"})

    @FUZZ.given_options()            # every option, one at a time, with values of its type
    def test_health_poll_any_option(option_and_value, tmp_path):
        FUZZ.check(option_and_value, cwd=tmp_path)

``ModuleFuzz`` reads the module's argument spec by calling its ``main()`` with a stand-in
``AnsibleModule`` that records the spec and stops. Values are generated per option type
(``str``, ``path``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``raw``) and include what
operators get wrong: NaN, +-inf, huge and negative numbers, empty and very long strings, NUL
bytes, unicode, ``../``, URLs with credentials, bad hosts and ports. ``check`` runs ``main()``
in this process under a deadline and asserts that it ended in ``exit_json`` or in ``fail_json``
with a non-empty ``msg``: never an exception escaping, never a run past the deadline.

Options a test must not let loose (a path the module would write to, a command it would run)
are given their own strategy through ``strategies={name: strategy}``, or left out with
``skip=(...)``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal

from hypothesis import strategies as st

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

# Values that have broken modules before, per type; the generated ones come on top.
HOSTILE_TEXT = [
    "", " ", "\x00", "a\x00b", "../x", "../../etc/shadow", "/", "~", "$HOME", "x" * 5000,
    "é ü 漢字 🙂", "\n", "-rf", "--help", "http://[::1/", "http://admin:secret@127.0.0.1:99999/",
    "http://127.0.0.1:0/", "http://:80/", "ftp://127.0.0.1/", "nan", "inf", "-1", "1e308",
]
HOSTILE_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, -1.0, 0.0, 5e-324, 1e-9]
HOSTILE_INTS = [0, -1, -(2 ** 63), 2 ** 63, 10 ** 20, 100000000000000000000]


class _Stop(BaseException):
    """Raised by the stand-in AnsibleModule and the patched exit/fail (BaseException, so a
    module's ``except Exception`` cannot swallow it)."""

    def __init__(self, kind, result):
        super().__init__(kind)
        self.kind = kind
        self.result = result


class _Deadline(BaseException):
    pass


def text_values():
    return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=64))


def strategy_for(spec):
    """A Hypothesis strategy for one option of an argument spec."""
    kind = spec.get("type", "str")
    if spec.get("choices"):
        # Mostly outside the choices: inside them is the module's normal path.
        return st.one_of(st.sampled_from(list(spec["choices"])), text_values())
    if kind in ("str", "path", "raw"):
        base = text_values()
    elif kind == "int":
        base = st.one_of(st.sampled_from(HOSTILE_INTS), st.integers(), text_values())
    elif kind == "float":
        base = st.one_of(st.sampled_from(HOSTILE_FLOATS), st.floats(allow_nan=True, allow_infinity=True),
                         st.sampled_from(["nan", "inf", "-inf", "1e308", "x"]))
    elif kind == "bool":
        base = st.one_of(st.booleans(), st.sampled_from(["yes", "no", "maybe", "", 2]))
    elif kind == "list":
        element = strategy_for(dict(type=spec.get("elements", "str"), options=spec.get("options")))
        base = st.one_of(st.lists(element, max_size=4), text_values())
    elif kind == "dict":
        if spec.get("options"):
            base = st.fixed_dictionaries({}, optional={k: strategy_for(v) for k, v in spec["options"].items()})
        else:
            base = st.dictionaries(st.text(max_size=12), text_values(), max_size=3)
    else:
        base = text_values()
    return st.one_of(base, st.none())


class ModuleFuzz:
    """Runs one module's ``main()`` with generated option values."""

    def __init__(self, module, base_args=None, strategies=None, skip=(), deadline=10.0):
        self.module = module
        self.base_args = dict(base_args or {})
        self.deadline = deadline
        self.spec = self._argument_spec()
        overrides = dict(strategies or {})
        self.options = sorted(name for name in self.spec if name not in skip)
        self.strategies = {name: overrides[name] if name in overrides else strategy_for(self.spec[name]) for name in self.options}

    def _argument_spec(self):
        recorded = {}

        def recorder(_self, *args, **kwargs):
            recorded.update(kwargs.get("argument_spec") or (args[0] if args else {}))
            raise _Stop("spec", None)

        # Patched on the base class, so modules built on a subclass (RollbackModule) are read too.
        original = basic.AnsibleModule.__init__
        basic.AnsibleModule.__init__ = recorder
        try:
            self.module.main()
        except _Stop:
            pass
        finally:
            basic.AnsibleModule.__init__ = original
        if not recorded:
            raise AssertionError("%s.main() created no AnsibleModule" % self.module.__name__)
        return recorded

    def option_values(self):
        """(option, value) pairs: one option at a time, every option of the spec."""
        return st.sampled_from(self.options).flatmap(lambda name: st.tuples(st.just(name), self.strategies[name]))

    def given_options(self, max_examples=60):
        """Decorator: the test receives ``option_and_value`` for each generated pair."""
        from hypothesis import given, settings, HealthCheck

        def wrap(test):
            wrapped = given(option_and_value=self.option_values())(test)
            return settings(max_examples=max_examples, deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture])(wrapped)
        return wrap

    def run(self, args, check_mode=False, cwd=None):
        """``main()`` with ``args`` (the base args updated); returns ``(kind, result)`` where kind
        is ``'exit'`` or ``'fail'``. Raises AssertionError on an escaping exception or a hang."""
        payload = dict(self.base_args)
        payload.update(args)
        payload["_ansible_check_mode"] = check_mode
        # AnsibleModule wants a remote tmp it may create; keep it in the test's directory.
        if cwd is not None:
            payload.setdefault("_ansible_remote_tmp", str(cwd))
            payload.setdefault("_ansible_tmpdir", str(cwd))

        def _exit(_self, **kwargs):
            raise _Stop("exit", kwargs)

        def _fail(_self, msg=None, **kwargs):
            kwargs["msg"] = msg
            raise _Stop("fail", kwargs)

        def _alarm(signum, frame):
            raise _Deadline()

        old_handler = signal.signal(signal.SIGALRM, _alarm)
        old_exit, old_fail = basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json
        basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json = _exit, _fail
        here = os.getcwd()
        try:
            if cwd is not None:
                os.chdir(cwd)
            signal.setitimer(signal.ITIMER_REAL, self.deadline)
            with patch_module_args(payload):
                self.module.main()
            raise AssertionError("%s.main() returned without exit_json or fail_json" % self.module.__name__)
        except _Stop as stop:
            return stop.kind, stop.result
        except _Deadline:
            raise AssertionError("%s ran past %.0f s with %s" % (self.module.__name__, self.deadline, _show(args)))
        except SystemExit as exc:
            raise AssertionError("%s exited (%s) without exit_json/fail_json with %s" % (
                self.module.__name__, exc.code, _show(args)))
        except Exception as exc:  # the property under test: nothing escapes
            raise AssertionError("%s raised %s: %s with %s" % (
                self.module.__name__, type(exc).__name__, exc, _show(args))) from exc
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
            basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json = old_exit, old_fail
            os.chdir(here)

    def check(self, option_and_value, cwd=None, check_mode=True):
        """The property: one generated option value ends in a clean result."""
        name, value = option_and_value
        kind, result = self.run({name: value}, check_mode=check_mode, cwd=cwd)
        if kind == "fail":
            assert isinstance(result.get("msg"), str) and result["msg"].strip(), (
                "fail_json without a msg for %s=%s" % (name, _show(value)))
        assert_finite_numbers(result, name, value)
        return kind, result


def assert_finite_numbers(result, name, value):
    """A result never carries NaN or infinity (JSON cannot represent them)."""
    def walk(item):
        if isinstance(item, float):
            assert math.isfinite(item), "result has %r after %s=%s" % (item, name, _show(value))
        elif isinstance(item, dict):
            for sub in item.values():
                walk(sub)
        elif isinstance(item, (list, tuple)):
            for sub in item:
                walk(sub)
    walk(result)


def _show(value):
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) < 300 else text[:300] + "..."


@contextlib.contextmanager
def no_docker_on_path(tmp_path):
    """PATH without a docker binary, so generated values never reach a real engine."""
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = str(tmp_path)
    try:
        yield
    finally:
        os.environ["PATH"] = old
