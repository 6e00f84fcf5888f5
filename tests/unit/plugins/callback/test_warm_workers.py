"""warm_workers: compiled templates kept and reused only while Jinja would compile the same code,
filters found once, and everything put back by uninstall(). Real ansible-core templating throughout.
A real ansible-playbook run with the callback: tests/integration/test_warm_workers.py."""
from __future__ import annotations

import os
import time
import types
import warnings

import jinja2
import pytest
from ansible._internal._templating._jinja_bits import AnsibleEnvironment, _TemplateCompileContext
from ansible.errors import AnsibleError
from ansible.plugins.loader import filter_loader, init_plugin_loader
from ansible.template import Templar, trust_as_template

from ansible_collections.taylordash.rollback.plugins.callback import warm_workers


def _init_plugin_loader():
    # ansible-playbook does this at start; pytest-ansible has set up the collection finder already.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "AnsibleCollectionFinder has already been configured")
        init_plugin_loader()


REPORT = "{{ hosts | sort | join(',') }}: {{ failures | taylordash.rollback.failure_chain }}"


@pytest.fixture
def store(tmp_path):
    """The callback's methods installed with a store in tmp_path; always put back afterwards (the
    unit tests share their process)."""
    _init_plugin_loader()
    folder = tmp_path / "templates"
    folder.mkdir(mode=0o700)
    kept = warm_workers.TemplateCodeStore(str(folder))
    warm_workers.install(kept)
    yield kept
    warm_workers.uninstall()


@pytest.fixture
def jinja_compiles(monkeypatch):
    """How often Jinja generated code from a template (what a kept template spares)."""
    calls = []
    generate = jinja2.Environment._generate

    def counting(self, *args, **kwargs):
        calls.append(args[0])
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "_generate", counting)
    return calls


def render(template, **variables):
    # A new Templar (and environment) each time, as in a new task worker.
    return Templar(variables=variables).template(trust_as_template(template))


def test_a_template_is_compiled_once_then_loaded(store, jinja_compiles):
    assert render(REPORT, hosts=["b", "a"], failures=[]) == "a,b: "
    assert len(jinja_compiles) == 1 and len(store.entries()) == 1
    entry = store.entries()[0]
    assert os.stat(entry.path).st_mode & 0o777 == 0o600
    # another environment, other values: the same code, loaded, not compiled
    assert render(REPORT, hosts=["z", "x", "y"], failures=[]) == "x,y,z: "
    assert len(jinja_compiles) == 1 and len(store.entries()) == 1


def test_a_conditional_is_compiled_once_then_loaded(store, jinja_compiles):
    assert Templar(variables={"hosts": [1, 2, 3]}).evaluate_conditional(trust_as_template("hosts | length > 2"))
    assert len(jinja_compiles) == 1 and len(store.entries()) == 1
    assert not Templar(variables={"hosts": [1]}).evaluate_conditional(trust_as_template("hosts | length > 2"))
    assert len(jinja_compiles) == 1 and len(store.entries()) == 1


def test_the_code_follows_the_source_and_the_compile_settings(store):
    render("{{ 1 }}")
    render("{{ 2 }}")
    assert len(store.entries()) == 2
    env = AnsibleEnvironment()
    plain = warm_workers.compile_settings(env)
    with _TemplateCompileContext(escape_backslashes=True):
        escaping = warm_workers.compile_settings(env)
    overlay = warm_workers.compile_settings(env.overlay(trim_blocks=not env.trim_blocks))
    keys = {warm_workers.entry_key(settings, "template", "{{ 1 }}") for settings in (plain, escaping, overlay)}
    assert len(keys) == 3
    assert warm_workers.entry_key(plain, "template", "{{ 1 }}") != warm_workers.entry_key(plain, "expression", "{{ 1 }}")
    assert warm_workers.entry_key(plain, "template", "{{ 1 }}", name="a.j2") != \
        warm_workers.entry_key(plain, "template", "{{ 1 }}", name="b.j2")


def test_template_debugging_compiles_as_usual():
    env = AnsibleEnvironment()
    env._debuggable_template_source = True
    assert warm_workers.compile_settings(env) is None


def test_code_of_a_filter_that_is_now_called_otherwise_is_not_used(store):
    code = compile("x = 1", "<template>", "exec")
    store.keep("a" * 40, code, [["filter", "shout", None]])
    called_plainly = types.SimpleNamespace(filters={"shout": lambda value: value}, tests={})
    assert store.load("a" * 40, called_plainly) is not None
    # Jinja would now pass the context first: the kept code calls it wrongly
    called_with_context = types.SimpleNamespace(filters={"shout": jinja2.pass_context(lambda ctx, value: value)},
                                                tests={})
    assert store.load("a" * 40, called_with_context) is None
    assert store.load("b" * 40, called_plainly) is None  # never kept


@pytest.mark.parametrize("damage", [b"", b"TDTC1", b"not a template", b"TDTC1" + b"\0" * 4 + b"\xff" * 3])
def test_a_damaged_entry_is_compiled_again_and_replaced(store, jinja_compiles, damage):
    render(REPORT, hosts=["a"], failures=[])
    [entry] = store.entries()
    with open(entry.path, "wb") as out:
        out.write(damage)
    assert render(REPORT, hosts=["c", "b"], failures=[]) == "b,c: "
    assert len(jinja_compiles) == 2
    code, deps = warm_workers.decode_entry(open(entry.path, "rb").read())
    assert isinstance(code, types.CodeType)
    assert ["filter", "taylordash.rollback.failure_chain", None] in deps


def test_an_entry_of_another_python_is_not_loaded():
    data = warm_workers.encode_entry(compile("x = 1", "<t>", "exec"), [])
    other = b"TDTC1" + b"\x00\x00\r\n" + data[len(warm_workers.ENTRY_HEADER):]
    with pytest.raises(ValueError, match="not a compiled template of this Python"):
        warm_workers.decode_entry(other)


@pytest.mark.parametrize("template", ["{{ hosts | }}", "{% if %}", "{{ hosts | no_such_filter_anywhere }}"])
def test_a_template_error_is_the_same_with_the_cache(tmp_path, template):
    def error():
        with pytest.raises(AnsibleError) as caught:
            render(template, hosts=[])
        return type(caught.value), str(caught.value)

    _init_plugin_loader()
    without = error()
    folder = tmp_path / "templates"
    folder.mkdir(mode=0o700)
    warm_workers.install(warm_workers.TemplateCodeStore(str(folder)))
    try:
        assert error() == without
    finally:
        warm_workers.uninstall()
    assert os.listdir(folder) == []


@pytest.fixture
def searched(store):
    """The names ansible-core's Jinja2Loader.get_with_context searched for (the store's fixture puts
    the loader back after this one)."""
    names = []
    original = warm_workers._ORIGINAL["get_with_context"]

    def searching(self, name, *args, **kwargs):
        names.append(name)
        return original(self, name, *args, **kwargs)

    warm_workers._ORIGINAL["get_with_context"] = searching
    yield names
    warm_workers._ORIGINAL["get_with_context"] = original


def test_a_filter_is_searched_for_once(searched, tmp_path):
    first = filter_loader.get_with_context("taylordash.rollback.failure_chain")
    assert filter_loader.get_with_context("taylordash.rollback.failure_chain") is first
    assert searched == ["taylordash.rollback.failure_chain"]
    # Jinja's own filters are not ansible-core's: found nowhere, once
    for dummy in range(3):
        assert filter_loader.get_with_context("join").object is None
        assert filter_loader.get_with_context("taylordash.rollback.no_such_filter").object is None
    assert searched.count("join") == 1 and searched.count("taylordash.rollback.no_such_filter") == 1
    # a role that brings a filter_plugins folder may bring the name: searched again (an empty
    # folder: the loader is this process's, the tests after this one use it too)
    filter_loader.add_directory(str(tmp_path))
    assert filter_loader.get_with_context("join").object is None
    assert searched.count("join") == 2


def test_warm_plugins_loads_every_filter_of_the_collection(store):
    folder = os.path.join(warm_workers.COLLECTION_ROOT, "plugins", "filter")
    files = [name for name in os.listdir(folder) if name.endswith(".py")]
    # the roles' filters of other collections, found in their sources
    others = warm_workers.filters_of_other_collections()
    assert others == ["community.crypto.x509_certificate_info", "community.general.keep_keys"]
    assert warm_workers.warm_plugins() == len(files) + len(others) > 10
    found = {name for kind, name, dummy in warm_workers._FOUND}
    assert {"taylordash.rollback.failure_chain", "community.general.keep_keys"} <= found


def test_filters_of_other_collections_are_found_after_a_pipe(tmp_path):
    (tmp_path / "roles" / "one" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "one" / "tasks" / "main.yml").write_text(
        "x: \"{{ a | community.general.keep_keys(target=['b']) | taylordash.rollback.failure_chain }}\"\n"
        "y: \"{{ b |ansible.builtin.to_json }} {{ c | my.own.shout }} community.general.mail\"\n")
    (tmp_path / "roles" / "one" / "README.md").write_text("{{ a | not.a.filter }}")
    assert warm_workers.filters_of_other_collections(str(tmp_path)) == ["community.general.keep_keys", "my.own.shout"]


def test_uninstall_puts_the_original_methods_back(store):
    assert AnsibleEnvironment.compile is warm_workers.cached_compile
    warm_workers.uninstall()
    assert AnsibleEnvironment.compile is jinja2.Environment.compile
    assert "compile" not in vars(AnsibleEnvironment)
    assert AnsibleEnvironment.compile_expression is not warm_workers.cached_compile_expression
    assert warm_workers._FOUND == {}
    warm_workers.install(store)  # the fixture uninstalls again


def test_trim_removes_the_oldest_down_to_three_quarters(tmp_path):
    kept = warm_workers.TemplateCodeStore(str(tmp_path))
    code = compile("x = 1", "<template>", "exec")
    now = time.time()
    for number in range(8):
        key = "%040x" % number
        kept.keep(key, code, [])
        os.utime(tmp_path / key, (now - 100 + number, now - 100 + number))
    (tmp_path / "unrelated").write_text("x")
    assert kept.trim(limit=10) == 0
    assert kept.trim(limit=4) == 5
    assert sorted(entry.name for entry in kept.entries()) == ["%040x" % number for number in (5, 6, 7)]
    assert (tmp_path / "unrelated").exists()


def test_the_fingerprint_follows_ansible_core():
    first = warm_workers.fingerprint()
    assert first == warm_workers.fingerprint() and len(first) == 24
    assert warm_workers.fingerprint(core_version="2.19.99") != first
