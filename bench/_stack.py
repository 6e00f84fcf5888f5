"""bench/_stack: the reference-stack set-up that every bench/<name>/run.py shares.

Each benchmark brings up its own reference stack with stack/stackctl, reads the ports and secrets
stackctl chose from the stack's .env, and hands the collection's playbooks the same stack
variables (project directory, compose project, services with their images and health URLs, API
URL) and a secrets file. The playbooks find this collection through a collections tree whose
taylordash/rollback entry is a link to this work tree, so that they run the code as it is now,
not an installed copy.

Only what the benchmarks have in common is here; what one of them measures and how it breaks the
stack (floor.sh, seed.sh, the lb, database rows, ...) stays in its run.py. The module is not part
of the collection: galaxy.yml builds without bench/.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STACKCTL = [sys.executable, str(REPO / "stack" / "stackctl")]
# The virtualenv the bench runs in: its ansible-playbook and tools are the ones measured.
VENV_BIN = Path(sys.executable).parent
# The benchmarks run the examples project's playbooks, from its directory (its ansible.cfg).
EXAMPLES_PROJECT = REPO / "examples" / "project"
# Outside the work tree's own files (.cache/ is ignored by git) and kept between runs.
COLLECTIONS = REPO / ".cache" / "collections"


def ctl(*args):
    """Run stackctl with ``args``; its standard output (raises if it fails)."""
    return subprocess.run(STACKCTL + list(args), check=True, capture_output=True, text=True).stdout


def read_env(stack_dir):
    """The stack's .env as a dict (comments and blank lines left out)."""
    return dict(line.split("=", 1) for line in (Path(stack_dir) / ".env").read_text().splitlines()
                if "=" in line and not line.startswith("#"))


def init_stack(stack_dir, name, *options):
    """Make a new stack directory for compose project ``name`` (not started); its .env as a dict.

    ``options`` go to `stackctl init` as they are (e.g. "--ports", "random").
    """
    ctl("init", "--dir", str(stack_dir), "--project", name, *options)
    return read_env(stack_dir)


def backend_url(env):
    """The backend's base URL on this host, from the stack's .env."""
    return "http://127.0.0.1:%s" % env["TD_BACKEND_PORT"]


def health_urls(env):
    """(backend readiness URL, frontend URL) of the stack whose .env is ``env``."""
    return backend_url(env) + "/health/ready", "http://127.0.0.1:%s/" % env["TD_FRONTEND_PORT"]


def stack_vars(stack_dir, name, env, image_prefix=None, api_url=True):
    """The stack role's variables for the stack in ``stack_dir`` (compose project ``name``).

    ``image_prefix``: the prefix of the service images when it is not the project name
    (stackctl init --prefix). ``api_url=False`` leaves stack_api_url out, for a play that sets
    its own: given as an extra var, it would win over the play's.
    """
    prefix = image_prefix or name
    backend_health, frontend_health = health_urls(env)
    variables = {
        "stack_project_dir": str(stack_dir), "stack_compose_project": name,
        "stack_services": [{"name": "backend", "image": prefix + "_backend", "health_url": backend_health},
                           {"name": "frontend", "image": prefix + "_frontend", "health_url": frontend_health}],
    }
    if api_url:
        variables["stack_api_url"] = backend_url(env)
    return variables


def secret_vars(env):
    """The stack's API key and admin password as the collection's variables."""
    return {"stack_api_key": env["TD_API_KEY"], "stack_admin_password": env["TD_ADMIN_PASSWORD"]}


def write_secrets(path, env):
    """Write the secret variables to ``path`` (for ``-e @path``), readable by the owner only, as
    any file holding the stack's secrets. Returns ``path``."""
    path = Path(path)
    path.write_text(json.dumps(secret_vars(env)))
    path.chmod(0o600)
    return path


def write_play_files(work, variables, env):
    """The play's variables (vars.json) and the stack's secrets (secrets.json, owner only) in
    ``work``, for ``playbook_argv``; (vars path, secrets path)."""
    variables_path = Path(work) / "vars.json"
    variables_path.write_text(json.dumps(variables))
    return variables_path, write_secrets(Path(work) / "secrets.json", env)


def bench_stack(prefix, name, **variables):
    """A new work directory (``prefix`` for its name) holding a stack directory for compose project
    ``name`` (stackctl init, not started) and the play's files: the stack's variables plus
    ``variables``, and its secrets. (work, stack_dir, the stack's .env, vars path, secrets path);
    the caller removes ``work`` when done."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    stack_dir = work / "stack"
    env = init_stack(stack_dir, name)
    variables_path, secrets_path = write_play_files(work, dict(stack_vars(stack_dir, name, env), **variables), env)
    return work, stack_dir, env, variables_path, secrets_path


def link_collection(collections=COLLECTIONS):
    """Make ``collections``/ansible_collections/taylordash/rollback a link to this work tree (once);
    returns ``collections``, the directory for ANSIBLE_COLLECTIONS_PATH (or PYTHONPATH)."""
    namespace = Path(collections) / "ansible_collections" / "taylordash"
    namespace.mkdir(parents=True, exist_ok=True)
    link = namespace / "rollback"
    if not link.exists():
        link.symlink_to(REPO)
    return Path(collections)


def collections_env(extra=None):
    """The environment for ansible-playbook: this process's, with the collection linked from
    COLLECTIONS and the virtualenv's bin first on PATH, as in an activated virtualenv (whatever
    the run starts by name is the virtualenv's), plus ``extra``."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(link_collection()),
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    env.update(extra or {})
    return env


def playbook_argv(playbook, *var_files):
    """The command running ``playbook`` of the examples project with the virtualenv's
    ansible-playbook, each of ``var_files`` given as extra vars (-e @file)."""
    argv = [str(VENV_BIN / "ansible-playbook"), playbook]
    for path in var_files:
        argv += ["-e", "@%s" % path]
    return argv
