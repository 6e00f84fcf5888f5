"""The AWX objects of extensions/awx, checked without an AWX server.

* every playbook of the collection has a job template (a playbook that lands later fails here
  until its entry is added to extensions/awx/awx_objects.yml);
* every survey question feeds a variable of the argument spec of a role its playbook runs, with a
  compatible type, choices and default; secrets are never survey questions;
* the credential types inject variables the roles know, their secret inputs only into variables
  that every task using them hides (no_log) or passes only to no_log module options.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
AWX = REPO / "extensions" / "awx"
PROJECT = REPO / "examples" / "project"
ROLES = REPO / "roles"
BOOL_WORDS = {"true", "false"}


class _Loader(yaml.SafeLoader):
    """YAML as Ansible reads it: ``!unsafe`` is a plain string here."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load(path: Path):
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


OBJECTS = load(AWX / "awx_objects.yml")
TEMPLATES = OBJECTS["taylordash_awx_job_templates"]
CREDENTIAL_TYPES = OBJECTS["taylordash_awx_credential_types"]


def role_spec(role: str) -> dict:
    return load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]["main"].get("options", {})


def roles_of(text: str) -> set:
    return {name for name in re.findall(r"taylordash\.rollback\.(\w+)", text) if (ROLES / name / "meta").is_dir()}


def roles_reached(playbook: Path) -> set:
    """The roles a playbook runs, and the roles those import (tasks and meta dependencies)."""
    todo = roles_of(playbook.read_text())
    seen = set()
    while todo:
        role = todo.pop()
        seen.add(role)
        for path in list((ROLES / role / "tasks").glob("*.yml")) + [ROLES / role / "meta" / "main.yml"]:
            todo |= roles_of(path.read_text()) - seen
    return seen


def survey_of(template: dict) -> list:
    """The survey configure_awx.yml gives the template: its own questions, then the report's."""
    return template["survey"] + (OBJECTS["taylordash_awx_report_questions"] if template["report"] else [])


def injected_secret_vars() -> set:
    """Variables the credential types fill from their secret inputs."""
    out = set()
    for ctype in CREDENTIAL_TYPES:
        secret_ids = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
        for var, template in ctype["injectors"].get("extra_vars", {}).items():
            if set(re.findall(r"{{\s*(\w+)\s*}}", template)) & secret_ids:
                out.add(var)
        for var, template in ctype["injectors"].get("env", {}).items():
            assert not set(re.findall(r"{{\s*(\w+)\s*}}", template)) & secret_ids, f"{var}: secrets go to extra vars"
    return out


def injected_vars() -> set:
    return {var for ctype in CREDENTIAL_TYPES for var in ctype["injectors"].get("extra_vars", {})}


# --------------------------------------------------------------------------- job templates


def test_every_collection_playbook_has_a_job_template():
    covered = {t["collection_playbook"] for t in TEMPLATES if t["collection_playbook"]}
    excused = OBJECTS.get("taylordash_awx_without_template") or {}
    assert all(str(reason or "").strip() for reason in excused.values()), "every playbook without a template needs a reason"
    assert not covered & set(excused), "a playbook both with a template and without one"
    missing = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml") if p.stem not in covered | set(excused))
    assert not missing, (f"playbooks without an AWX job template: {missing} - add an entry each to "
                         "taylordash_awx_job_templates in extensions/awx/awx_objects.yml (or a reason to "
                         "taylordash_awx_without_template)")


def test_schedules_name_templates():
    keys = {t["key"] for t in TEMPLATES}
    for schedule in OBJECTS.get("taylordash_awx_schedules") or []:
        assert schedule["template"] in keys and "RRULE:" in schedule["rrule"], schedule


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["key"])
def test_template_playbook_is_in_the_project(template):
    path = PROJECT / template["playbook"]
    assert path.is_file(), f"{template['key']}: {path} is not in examples/project"
    if template["collection_playbook"]:
        assert f"taylordash.rollback.{template['collection_playbook']}" in path.read_text()
        assert (REPO / "playbooks" / f"{template['collection_playbook']}.yml").is_file()


def test_keys_and_names_are_unique():
    for items in (TEMPLATES, CREDENTIAL_TYPES):
        for field in ("key", "name"):
            values = [i[field] for i in items]
            assert len(values) == len(set(values)), f"duplicate {field}: {values}"


def test_workflow_nodes_are_templates():
    keys = {t["key"] for t in TEMPLATES}
    workflow = OBJECTS["taylordash_awx_workflow"]
    for node in ("rollback", "on_failure", "escalate"):
        assert workflow[node] in keys, f"workflow node {node}: no template {workflow[node]}"


def _check_question(q: dict, spec: dict, secrets: set) -> list:
    """The problems of one survey question against the option it feeds."""
    var, qtype = q["variable"], q["type"]
    problems = []
    if var in secrets or qtype == "password":
        return [f"{var}: a secret is a credential, never a survey question"]
    stype, choices = spec.get("type", "str"), spec.get("choices")
    qchoices = q.get("choices")
    if isinstance(qchoices, str):
        qchoices = qchoices.split("\n")
    default = q.get("default")
    has_default = default is not None

    if qtype == "multiselect":
        if stype != "list" or spec.get("elements", "str") != "str":
            problems.append(f"{var}: multiselect gives a list of strings, the spec says {stype}/{spec.get('elements')}")
        if choices and not set(qchoices) <= set(choices):
            problems.append(f"{var}: choices {qchoices} not in the spec's {choices}")
        if has_default:
            values = default.split("\n") if isinstance(default, str) else default
            if not set(values) <= set(qchoices):
                problems.append(f"{var}: default {default!r} not among the choices")
    elif qtype == "multiplechoice":
        if stype == "bool":
            if set(qchoices) != BOOL_WORDS:
                problems.append(f"{var}: a bool is asked as the choices 'true'/'false', not {qchoices}")
        elif stype in ("str", "raw"):
            if choices is not None and not set(qchoices) <= set(choices):
                problems.append(f"{var}: choices {qchoices} not in the spec's {choices}")
        else:
            problems.append(f"{var}: multiplechoice gives a string, the spec says {stype}")
        if has_default and default not in qchoices:
            problems.append(f"{var}: default {default!r} not among the choices {qchoices}")
    elif qtype in ("text", "textarea"):
        if stype not in ("str", "path", "raw"):
            problems.append(f"{var}: {qtype} gives a string, the spec says {stype}")
        if choices:
            problems.append(f"{var}: the spec has choices {choices}: ask with multiplechoice")
        if has_default:
            if not isinstance(default, str):
                problems.append(f"{var}: default {default!r} is not a string")
            elif default == "" and spec.get("default") != "":
                # AWX may send an empty optional answer; only a role that takes '' may get it.
                problems.append(f"{var}: default '' but the role's default is {spec.get('default')!r}: "
                                "make it required with a real default")
            elif not q.get("min", 0) <= len(default) <= q.get("max", 1 << 20):
                problems.append(f"{var}: default {default!r} outside min/max")
    elif qtype in ("integer", "float"):
        wanted = ("int", "float") if qtype == "integer" else ("float",)
        if stype not in wanted:
            problems.append(f"{var}: {qtype} does not fit the spec's {stype}")
        if has_default:
            if not isinstance(default, (int, float)) or isinstance(default, bool):
                problems.append(f"{var}: default {default!r} is not a number")
            elif not q.get("min", default) <= default <= q.get("max", default):
                problems.append(f"{var}: default {default!r} outside min/max")
            elif spec.get("default") is not None and spec["default"] != default:
                problems.append(f"{var}: default {default!r} differs from the role's {spec['default']!r}")
    else:
        problems.append(f"{var}: unknown survey type {qtype}")
    return problems


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["key"])
def test_survey_feeds_the_argument_specs(template):
    survey = survey_of(template)
    if not template["collection_playbook"]:
        assert not survey, f"{template['key']}: a survey without a collection playbook to check it against"
        return
    roles = roles_reached(REPO / "playbooks" / f"{template['collection_playbook']}.yml")
    assert roles, f"{template['key']}: no role found in its playbook"
    options = {}
    for role in sorted(roles):
        for name, spec in role_spec(role).items():
            options.setdefault(name, (role, spec))
    variables = [q["variable"] for q in survey]
    assert len(variables) == len(set(variables)), f"{template['key']}: a variable asked twice: {variables}"
    problems = []
    for q in survey:
        for key in ("variable", "question_name", "type", "required"):
            if key not in q:
                problems.append(f"{q.get('variable')}: no {key}")
        if q["variable"] not in options:
            problems.append(f"{q['variable']}: in no argument spec of the roles {sorted(roles)} of {template['playbook']}")
            continue
        problems += _check_question(q, options[q["variable"]][1], injected_secret_vars())
    assert not problems, f"{template['key']}: " + "; ".join(problems)


def test_question_checker_rejects_what_it_should():
    spec = {"type": "str", "choices": ["a", "b"]}
    assert _check_question({"variable": "x", "type": "multiplechoice", "choices": ["a", "c"]}, spec, set())
    assert _check_question({"variable": "x", "type": "text", "default": ""}, {"type": "str"}, set())
    assert _check_question({"variable": "x", "type": "multiplechoice", "choices": ["yes", "no"]}, {"type": "bool"}, set())
    assert _check_question({"variable": "x", "type": "multiselect", "choices": ["a"]}, {"type": "str"}, set())
    assert _check_question({"variable": "x", "type": "integer", "default": 3}, {"type": "int", "default": 4}, set())
    assert _check_question({"variable": "s", "type": "text"}, {"type": "str"}, {"s"})
    assert not _check_question({"variable": "x", "type": "multiplechoice", "choices": ["true", "false"],
                                "default": "true"}, {"type": "bool"}, set())


# --------------------------------------------------------------------------- credential types


def test_credential_types_inject_known_variables():
    known = {}
    for role_dir in ROLES.iterdir():
        if (role_dir / "meta" / "argument_specs.yml").is_file():
            known.update(role_spec(role_dir.name))
    for ctype in CREDENTIAL_TYPES:
        ids = {f["id"] for f in ctype["inputs"]["fields"]}
        assert set(ctype["inputs"].get("required", [])) <= ids
        assert set(ctype["injectors"]) <= {"extra_vars", "env", "file"}
        for var, template in ctype["injectors"].get("extra_vars", {}).items():
            assert var in known, f"{ctype['name']}: injects {var}, which no role has"
            assert set(re.findall(r"{{\s*(\w+)\s*}}", template)) <= ids, f"{ctype['name']}: {template}"
    assert injected_secret_vars() == {"stack_api_key", "stack_admin_password", "escalate_mail_password",
                                      "escalate_webhook_token"}


def test_no_survey_asks_an_injected_variable():
    injected = injected_vars()
    for template in TEMPLATES:
        asked = {q["variable"] for q in survey_of(template)} & injected
        assert not asked, f"{template['key']}: {asked} come from credentials"


# --------------------------------------------------------------------------- no_log

# References that never put a secret's value into a result: presence tests and the masking
# filters' secrets= argument.
_SAFE = [
    r"\b{v}(\s*\|\s*[\w.]+(\([^()]*\))?)*?\s*\|\s*(length|bool|count)\b",
    r"\bif\s+(not\s+)?{v}(\s*\|\s*[\w.]+(\([^()]*\))?)*\s+else\b",
    r"\b{v}\s+is\s+(not\s+)?defined\b",
    r"\b{v}\.keys\(\)",
    r"\b{v}\s+is\s+mapping\b",
]
_MASKING = re.compile(r"secrets=(\[[^\]]*\]|\w+)")
# Keys of a task whose templating never reaches its result or the job events.
_NOT_SHOWN = {"vars", "when", "failed_when", "changed_when", "until", "no_log", "register", "tags",
              "block", "rescue", "always", "name"}
_TASK_LISTS = ("block", "rescue", "always")


_JINJA = re.compile(r"{{.*?}}|{%.*?%}", re.S)
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# Keys whose values are bare Jinja expressions (no {{ }}).
_BARE = {"that"}


def _expressions(node, bare: bool = False):
    """The Jinja expressions of a YAML value (dict keys and plain text name no variable), their
    string literals taken out: a variable's name in a message is not its value."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _expressions(value, bare or key in _BARE)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item, bare)
    elif isinstance(node, str):
        for expr in ([node] if bare else _JINJA.findall(node)):
            expr = re.sub(r"\[\s*(['\"])(\w+)\1\s*\]", r".\2", expr)  # x['field'] -> x.field
            yield _LITERAL.sub("''", expr)


def _strip_safe(text: str, names: set) -> str:
    text = _MASKING.sub("secrets=masked", text)
    for name in names:
        for pattern in _SAFE:
            text = re.sub(pattern.format(v=re.escape(name)), "presence", text)
    return text


def _use(name: str) -> str:
    """A regex for a use of a tainted name; ``var.field`` (a field of a filter's result that holds
    the secrets) matches ``var.field``, ``var['field']`` and ``var`` used whole, not ``var.other``."""
    if "." not in name:
        return rf"(?<![\w.]){re.escape(name)}\b"
    base, field = name.split(".", 1)
    return rf"(?<![\w.]){re.escape(base)}(\s*\.\s*{re.escape(field)}\b|(?![\w.\[]))"


def _mentions(value, names: set) -> set:
    text = _strip_safe("\n".join(_expressions(value)), names)
    return {n for n in names if re.search(_use(n), text)}


# Filters given a secret that put it only into these fields of their result (their contract; their
# unit tests cover them): a variable made by one is tainted in those fields only.
FILTER_SECRET_FIELDS = {
    "trigger_targets": ("targets",),
}


def _taint_of(name: str, value) -> set:
    text = "\n".join(_expressions(value))
    for flt, fields in FILTER_SECRET_FIELDS.items():
        if re.search(rf"\|\s*(taylordash\.rollback\.)?{flt}\s*\(", text):
            return {f"{name}.{field}" for field in fields}
    return {name}


def _yaml_files():
    roots = [ROLES.glob("*/tasks/*.yml"), ROLES.glob("*/handlers/*.yml"), ROLES.glob("*/vars/*.yml"),
             ROLES.glob("*/defaults/*.yml"), (REPO / "playbooks").glob("**/*.yml"), PROJECT.glob("*.yml"),
             AWX.glob("*.yml")]
    return sorted({p for root in roots for p in root})


def _tasks(node):
    """Every task (dict with a module or an include) of a tasks file or a playbook, blocks included."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if "hosts" in node or "import_playbook" in node or "ansible.builtin.import_playbook" in node:
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from _tasks(node.get(section) or [])
            return
        if any(k in node for k in _TASK_LISTS):
            yield node
            for k in _TASK_LISTS:
                yield from _tasks(node.get(k) or [])
            return
        yield node


def _definitions():
    """(name, value) of every variable defined in the files: vars/defaults files, play, task and
    set_fact variables."""
    for path in _yaml_files():
        data = load(path)
        if "/vars/" in str(path) or "/defaults/" in str(path) or path.name == "awx_objects.yml":
            for name, value in (data or {}).items():
                yield name, value
            continue
        for play in data if isinstance(data, list) else []:
            if isinstance(play, dict):
                for name, value in (play.get("vars") or {}).items():
                    yield name, value
        for task in _tasks(data):
            for name, value in (task.get("vars") or {}).items():
                yield name, value
            for module in ("ansible.builtin.set_fact", "set_fact"):
                if isinstance(task.get(module), dict):
                    for name, value in task[module].items():
                        yield name, value


def tainted(roots: set) -> set:
    """The secrets and every variable whose value is made from one."""
    defs = list(_definitions())
    names = set(roots)
    while True:
        more = set()
        for name, value in defs:
            if _mentions(value, names):
                more |= _taint_of(name, value) - names
        if not more:
            return names
        names |= more


def _no_log_options(module: str) -> set:
    """Options of a module that are no_log=True, or whose suboptions include one (Ansible masks the
    values of those everywhere in the module's result), read from its source."""
    namespace, collection, name = (module.split(".") + ["", "", ""])[:3]
    if f"{namespace}.{collection}" == "taylordash.rollback":
        path = REPO / "plugins" / "modules" / f"{name}.py"
    else:
        import ansible_collections
        base = Path(list(ansible_collections.__path__)[-1])
        path = base / namespace / collection / "plugins" / "modules" / f"{name}.py"
    if not path.is_file():
        return set()

    tree = ast.parse(path.read_text())
    # Module-level specs (TARGET_OPTIONS = dict(...)) that options= may name.
    named = {node.targets[0].id: node.value for node in tree.body
             if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)}

    def spec_hides(call) -> bool:
        if isinstance(call, ast.Name):
            call = named.get(call.id)
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "dict"):
            return False
        for kw in call.keywords:
            if kw.arg == "no_log" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                return True
            if kw.arg == "options":
                options = named.get(kw.value.id) if isinstance(kw.value, ast.Name) else kw.value
                if isinstance(options, ast.Call) and any(spec_hides(sub.value) for sub in options.keywords):
                    return True
        return False

    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg and spec_hides(node.value):
            out.add(node.arg)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and spec_hides(value):
                    out.add(key.value)
    return out


def _hidden(value, no_log_vars: set) -> bool:
    if value is True:
        return True
    if isinstance(value, str):
        inner = re.fullmatch(r"\s*{{\s*(\w+)(\s*\|\s*bool)?\s*}}\s*", value)
        return value.strip().lower() in ("true", "yes") or bool(inner and inner.group(1) in no_log_vars)
    return False


def test_secret_variables_are_used_only_where_hidden():
    roots = injected_secret_vars() | {"taylordash_awx_credential_inputs"}
    names = tainted(roots)
    # The roles' no_log switches must default to hiding.
    no_log_vars = {"stack_no_log", "escalate_no_log"}
    assert role_spec("stack")["stack_no_log"]["default"] is True
    assert role_spec("escalate")["escalate_no_log"]["default"] is True
    problems, used = [], 0
    for path in _yaml_files():
        if "/vars/" in str(path) or "/defaults/" in str(path) or path.name == "awx_objects.yml":
            continue
        for task in _tasks(load(path)):
            shown = {k: v for k, v in task.items() if k not in _NOT_SHOWN}
            hits = _mentions(shown, names)
            if not hits:
                continue
            used += 1
            if _hidden(task.get("no_log"), no_log_vars):
                continue
            module = next((k for k in shown if "." in k), None)
            args = shown.get(module) if module else None
            if isinstance(args, dict):
                allowed = _no_log_options(module)
                rest = {k: v for k, v in args.items() if k not in allowed}
                others = {k: v for k, v in shown.items() if k != module}
                if not _mentions([rest, others], names):
                    continue
            problems.append(f"{path.relative_to(REPO)}: task {task.get('name')!r} uses {sorted(hits)} without no_log")
    assert used > 0, "the scan found no task using a secret: the scan is broken"
    assert not problems, "\n".join(problems)


def test_scan_flags_a_leaking_task():
    task = {"name": "leak", "ansible.builtin.debug": {"msg": "{{ stack_api_key }}"}}
    assert _mentions({k: v for k, v in task.items() if k not in _NOT_SHOWN}, {"stack_api_key"})
    assert not _mentions("{{ 'stack_api_key is not set' }}", {"stack_api_key"})
    assert not _mentions("{{ stack_api_key | default('', true) | length > 0 }}", {"stack_api_key"})
    assert _mentions("{{ {'password': stack_admin_password} | to_json }}", {"stack_admin_password"})
    assert not _hidden("{{ something_else }}", {"stack_no_log"})
    assert _hidden("{{ escalate_no_log | bool }}", {"escalate_no_log"})
    assert "password" in _no_log_options("community.general.mail")
    plan = {"__plan.targets"}
    assert _mentions("{{ __plan.targets }}", plan) and _mentions("{{ __plan }}", plan)
    assert _mentions("{{ __plan['targets'] }}", plan)
    assert not _mentions("{{ __plan.skipped }}", plan)
    assert not _mentions("{{ __plan.targets | selectattr('kind', 'equalto', 'request') | list | length > 0 }}", plan)
    assert not _mentions("{{ [] if __plan.targets | selectattr('kind', 'equalto', 'request') | list else ['x'] }}", plan)
    assert _taint_of("__plan", "{{ x | taylordash.rollback.trigger_targets(admin_password=p) }}") == plan
