# -*- coding: utf-8 -*-
# Copyright (c) TaylorDash operations team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start every task worker of ansible-playbook warm: templates already compiled, this collection's
filters already loaded, and little of the parent's memory to copy."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: warm_workers
type: notification
short_description: Less CPU in every task - reuse compiled templates and loaded filters in the task workers
description:
  - ansible-playbook runs every task in a worker process it forks for that task. The worker
    compiles each Jinja template and conditional the task uses (its arguments, its C(when), the
    role variables they refer to) to Python code, loads the filter plugins they call, and forgets
    both when it exits. The next task, and the next run, do it all again. In a rollback that is
    about 800 compilations and 300 filter look-ups, a quarter of the CPU of the whole run.
  - This callback does three things, all in ansible-playbook's own process, before the workers
    are forked from it.
  - It keeps the code of each compiled template in O(path). A worker that meets the same template
    again, in this run or a later one, loads the code instead of compiling it.
  - It loads this collection's filter plugins once and remembers where each filter of a collection
    was found, so that no worker searches the collection's filter files for it again.
  - It freezes Python's garbage collector before each task, so that a worker does not walk (and
    so copy) all of the parent's memory when it collects garbage.
  - Code is reused only when it is what Jinja would compile now. It is kept under a fingerprint of
    ansible-core, Jinja2 and the controller's Python (versions and locations), and found by the
    template's source and name and every compile-time setting of the environment (delimiters,
    whitespace handling, extensions, the backslash escaping of ansible-core). Jinja also looks up
    each filter and test a template uses while it compiles it; the kept code records how each one
    asked to be called, and is not used when a filter or test now asks otherwise.
  - What is kept is Python code that ansible-playbook runs, so O(path) must be private - a directory
    owned by the user that runs ansible-playbook, not writable by group or others. Anything else
    is ignored and templates are compiled as usual; the directory is created with mode 0700 and
    the files with mode 0600. A kept file that cannot be read is compiled again.
  - Needs ansible-core 2.19 (its template engine and plugin loader); with another version it does
    nothing. When ansible-core's template debugging is on, templates are compiled as usual.
  - Enable it with C(callbacks_enabled = taylordash.rollback.warm_workers) in C(ansible.cfg);
    C(examples/project/ansible.cfg) does.
version_added: 0.1.0
author: TaylorDash operations team (@taylordash)
requirements:
  - enabled in C(callbacks_enabled)
options:
  path:
    description:
      - Directory to keep the compiled templates in. Up to five fingerprints are kept; older ones
        are removed.
      - Empty keeps no compiled template; the filters are still loaded once and the collector frozen.
    type: path
    default: ~/.ansible/taylordash_template_cache
    env:
      - name: TAYLORDASH_TEMPLATE_CACHE
    ini:
      - section: callback_warm_workers
        key: path
  max_entries:
    description:
      - Compiled templates kept per fingerprint. When a run ends with more, the oldest are removed
        until three quarters are left.
    type: int
    default: 20000
    env:
      - name: TAYLORDASH_TEMPLATE_CACHE_MAX_ENTRIES
    ini:
      - section: callback_warm_workers
        key: max_entries
"""

import gc
import hashlib
import importlib.util
import json
import marshal
import os
import re
import struct
import sys
import threading
import types

import ansible
import jinja2
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible_collections.taylordash.rollback.plugins.plugin_utils.private_store import (
    copy_file, make_private_dirs, prune)

try:
    # ansible-core 2.19's template engine; another layout leaves the callback doing nothing.
    from ansible._internal._templating._jinja_bits import AnsibleEnvironment, _TemplateCompileContext
    from ansible._internal._templating._jinja_common import _TemplateConfig
    from ansible.plugins.loader import Jinja2Loader
except ImportError:  # pragma: no cover - depends on the ansible-core installed
    AnsibleEnvironment = _TemplateCompileContext = _TemplateConfig = Jinja2Loader = None

SUPPORTED_CORE = re.compile(r'^2\.19\.')
# Part of the fingerprint: entries of another layout are not read.
STORE_LAYOUT = 'template-code-1'
# An entry: this header, the length of the JSON list of (kind, name, how it is called) of the filters
# and tests the template uses, that list, then the code object (marshal). Python's magic number in
# the header: code of another Python is never loaded.
ENTRY_HEADER = b'TDTC1' + importlib.util.MAGIC_NUMBER
ENTRY_NAME = re.compile(r'^[0-9a-f]{40}$')
MAX_ENTRIES = 20000
COLLECTION = 'taylordash.rollback'
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The methods install() replaced (AnsibleEnvironment's compile and compile_expression, Jinja2Loader's
# get_with_context), to call and to put back.
_ORIGINAL = {}
# The store the replaced methods use (None: compile as usual), and the tree of the expression being
# compiled by compile_expression in this thread (its code is kept by the expression's key).
_ACTIVE = {'store': None}
_EXPRESSION = threading.local()


def fingerprint(core_version=ansible_version):
    """What compiled code depends on besides the template: ansible-core and Jinja2 (versions and
    locations) and the controller's Python."""
    digest = hashlib.sha256()
    for part in (core_version, os.path.dirname(os.path.abspath(ansible.__file__)), jinja2.__version__,
                 os.path.dirname(os.path.abspath(jinja2.__file__)), sys.version, STORE_LAYOUT):
        digest.update(part.encode('utf-8') + b'\0')
    return digest.hexdigest()[:24]


def pass_arg_name(func):
    """How Jinja calls ``func`` (a filter, test or finalize function): 'context', 'eval_context',
    'environment' or None - the one property of it compiled into a template's code."""
    return getattr(getattr(func, 'jinja_pass_arg', None), 'name', None)


def compile_settings(env):
    """Everything besides the template that decides the code ``env`` compiles it to, as a tuple; None
    when the code may not be kept (template debugging on, or an autoescape function)."""
    if getattr(env, '_debuggable_template_source', False) or callable(env.autoescape):
        return None
    context = _TemplateCompileContext.current(optional=True)
    finalize = env.finalize
    return (
        type(env).__module__, type(env).__qualname__, env.code_generator_class.__qualname__,
        env.block_start_string, env.block_end_string, env.variable_start_string, env.variable_end_string,
        env.comment_start_string, env.comment_end_string, env.line_statement_prefix, env.line_comment_prefix,
        env.trim_blocks, env.lstrip_blocks, env.newline_sequence, env.keep_trailing_newline,
        tuple(sorted(env.extensions)), env.optimized, env.autoescape, env.is_async, env.sandboxed,
        getattr(finalize, '__qualname__', None), pass_arg_name(finalize),
        bool(context and context.escape_backslashes), bool(_TemplateConfig.allow_embedded_templates),
    )


def entry_key(settings, kind, source, name=None, filename=None, defer_init=False):
    """The file name of the code of ``source`` (a template, or an expression when ``kind`` says so)."""
    digest = hashlib.sha256(repr((settings, kind, name, filename, defer_init)).encode('utf-8'))
    digest.update(b'\0' + str(source).encode('utf-8', 'surrogatepass'))
    return digest.hexdigest()[:40]


def called_as(env, kind, name):
    plugins = env.filters if kind == 'filter' else env.tests
    return pass_arg_name(plugins.get(name))


def dependencies(env, tree):
    """The filters and tests the template ``tree`` uses, each with how ``env`` calls it."""
    used = {('filter', node.name) for node in tree.find_all(nodes.Filter)}
    used |= {('test', node.name) for node in tree.find_all(nodes.Test)}
    return [[kind, name, called_as(env, kind, name)] for kind, name in sorted(used)]


def encode_entry(code, deps):
    listed = json.dumps(deps).encode('utf-8')
    return ENTRY_HEADER + struct.pack('<I', len(listed)) + listed + marshal.dumps(code)


def decode_entry(data):
    """(code, dependencies) from an entry's bytes; ValueError when it is not one this Python wrote."""
    start = len(ENTRY_HEADER)
    if data[:start] != ENTRY_HEADER or len(data) < start + 4:
        raise ValueError('not a compiled template of this Python')
    (size,) = struct.unpack('<I', data[start:start + 4])
    try:
        deps = json.loads(data[start + 4:start + 4 + size].decode('utf-8'))
        code = marshal.loads(data[start + 4 + size:])
    except (EOFError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError('damaged: %s' % exc)
    if not isinstance(code, types.CodeType) or not isinstance(deps, list):
        raise ValueError('damaged: not code')
    return code, deps


class TemplateCodeStore:
    """The compiled templates of one fingerprint: a private directory, one file per template."""

    def __init__(self, folder):
        self.folder = folder

    def load(self, key, env):
        """The kept code for ``key`` if it is what ``env`` would compile now, else None."""
        try:
            with open(os.path.join(self.folder, key), 'rb') as entry:
                code, deps = decode_entry(entry.read())
            for kind, name, how in deps:
                if called_as(env, kind, name) != how:
                    return None
        # Missing, damaged, or a filter look-up failing: compiled as usual.
        except Exception:  # pylint: disable=broad-except
            return None
        return code

    def keep(self, key, code, deps):
        try:
            copy_file(None, self.folder, key, data=encode_entry(code, deps))
        except (IOError, OSError, ValueError):
            pass  # a full disk costs the next worker a compile, never the run

    def entries(self):
        try:
            return [entry for entry in os.scandir(self.folder) if ENTRY_NAME.match(entry.name)]
        except OSError:
            return []

    def trim(self, limit):
        """Remove the oldest entries when there are more than ``limit``, down to three quarters of it;
        the number removed."""
        entries = self.entries()
        if len(entries) <= limit:
            return 0
        entries.sort(key=lambda entry: entry.stat().st_mtime)
        doomed = entries[:len(entries) - limit * 3 // 4]
        for entry in doomed:
            try:
                os.unlink(entry.path)
            except OSError:
                pass
        return len(doomed)


def cached_compile(self, source, name=None, filename=None, raw=False, defer_init=False):
    """AnsibleEnvironment.compile, reusing kept code for a template given as source."""
    original = _ORIGINAL['compile']
    capture = getattr(_EXPRESSION, 'capture', None)
    if capture is not None and isinstance(source, nodes.Template):
        # The tree compile_expression built for the expression being compiled (once only).
        _EXPRESSION.capture = None
        code = original(self, source, name, filename, raw, defer_init)
        if not raw:
            capture.update(code=code, deps=dependencies(self, source))
        return code
    store = _ACTIVE['store']
    settings = None if store is None or raw or not isinstance(source, str) else compile_settings(self)
    if settings is None:
        return original(self, source, name, filename, raw, defer_init)
    key = entry_key(settings, 'template', source, name, filename, defer_init)
    code = store.load(key, self)
    if code is not None:
        return code
    try:
        tree = self._parse(source, name, filename)
        code = original(self, tree, name, filename, raw, defer_init)
        deps = dependencies(self, tree)
    except Exception:  # pylint: disable=broad-except
        # Jinja's error then names the template's source: let it compile the source as usual.
        return original(self, source, name, filename, raw, defer_init)
    store.keep(key, code, deps)
    return code


def cached_compile_expression(self, source, undefined_to_none=True):
    """AnsibleEnvironment.compile_expression (conditionals), reusing kept code."""
    original = _ORIGINAL['compile_expression']
    store = _ACTIVE['store']
    settings = None if store is None or not isinstance(source, str) else compile_settings(self)
    if settings is None:
        return original(self, source, undefined_to_none)
    key = entry_key(settings, 'expression', source)
    code = store.load(key, self)
    if code is not None:
        # What Jinja's compile_expression returns, made from the kept code.
        template = self.template_class.from_code(self, code, self.make_globals(None), None)
        return TemplateExpression(template, undefined_to_none)
    capture = {}
    _EXPRESSION.capture = capture
    try:
        result = original(self, source, undefined_to_none)
    finally:
        _EXPRESSION.capture = None
    if 'code' in capture:
        store.keep(key, capture['code'], capture['deps'])
    return result


# What each look-up of a filter or test by name found (or that nothing was found), by (plugin type,
# name, number of plugin folders added by roles): filled in this process before the workers are
# forked, so that each worker finds it at once.
_FOUND = {}


def remembering_get_with_context(self, name, *args, **kwargs):
    """Jinja2Loader.get_with_context, remembering what it found. For a collection's filter or test
    ansible-core imports the collection's plugin files one after the other until one has the name,
    at every look-up; for a name that is Jinja's own (join, length, defined) it searches
    ansible-core's and then gives up, 0.5-0.7 ms each time. Neither changes during a run unless a
    role adds a plugin folder (part of the key); the loader takes no other argument into account."""
    original = _ORIGINAL['get_with_context']
    if args or kwargs or not isinstance(name, str):
        return original(self, name, *args, **kwargs)
    key = (self.type, name, len(getattr(self, '_extra_dirs', ())))
    found = _FOUND.get(key)
    if found is None:
        found = _FOUND[key] = original(self, name)  # not remembered when it raises (a broken plugin)
    return found


# A filter of another collection named after a pipe in a role or playbook: "| community.general.keep_keys".
OTHER_COLLECTIONS_FILTER = re.compile(r'\|\s*([a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+)\b')


def filters_of_other_collections(root=COLLECTION_ROOT, folders=('roles', 'playbooks')):
    """The filters of other collections (not ansible-core's) this collection's roles and playbooks
    use, by their full names."""
    names = set()
    for folder in folders:
        for path, dummy, files in os.walk(os.path.join(root, folder)):
            for name in files:
                if name.endswith(('.yml', '.yaml', '.j2')):
                    with open(os.path.join(path, name), encoding='utf-8', errors='replace') as source:
                        names.update(OTHER_COLLECTIONS_FILTER.findall(source.read()))
    return sorted(name for name in names
                  if not name.startswith(('ansible.builtin.', 'ansible.legacy.', COLLECTION + '.')))


def warm_plugins(collection=COLLECTION, root=COLLECTION_ROOT):
    """Load this collection's filter plugins, the filters of other collections its roles use, and
    ansible-core's own filters and tests, in this process before the task workers are forked from
    it: every worker starts with them (for a collection's filter ansible-core also reads the
    collection's meta/runtime.yml; community.general's is large). The number of filters loaded."""
    from ansible.plugins.loader import filter_loader, test_loader
    folder = os.path.join(root, 'plugins', 'filter')
    files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    # One filter per file, named after it (a file named otherwise is found when a task uses it).
    names = ['%s.%s' % (collection, name[:-3]) for name in files if name.endswith('.py') and not name.startswith('_')]
    names += filters_of_other_collections(root)
    loaded = 0
    for name in names:
        try:
            loaded += filter_loader.get_with_context(name).object is not None
        # Missing or broken: the task that uses it says so.
        except Exception:  # pylint: disable=broad-except
            pass
    for loader, known in ((filter_loader, 'ansible.builtin.default'), (test_loader, 'ansible.builtin.success')):
        try:
            loader.get_with_context(known)
        # A worker will say what is wrong.
        except Exception:  # pylint: disable=broad-except
            pass
    return loaded


def replaced_methods():
    """(class, method name, replacement) of every method install() replaces."""
    return ((AnsibleEnvironment, 'compile', cached_compile),
            (AnsibleEnvironment, 'compile_expression', cached_compile_expression),
            (Jinja2Loader, 'get_with_context', remembering_get_with_context))


def install(store):
    """Make every template environment and filter loader of this process (and of the workers it forks
    from now on) use ``store`` and remember the plugins found; a ``store`` of None compiles as usual."""
    if AnsibleEnvironment is None:
        return
    if not _ORIGINAL:
        for cls, name, replacement in replaced_methods():
            _ORIGINAL[name] = getattr(cls, name)
            # Inherited (compile is Jinja's own): removed again rather than set on the subclass.
            _ORIGINAL['own ' + name] = name in vars(cls)
            setattr(cls, name, replacement)
    _ACTIVE['store'] = store


def uninstall():
    """Put the original methods back, forget the plugins found."""
    if _ORIGINAL:
        for cls, name, dummy in replaced_methods():
            if _ORIGINAL['own ' + name]:
                setattr(cls, name, _ORIGINAL[name])
            else:
                delattr(cls, name)
        _ORIGINAL.clear()
    _ACTIVE['store'] = None
    _FOUND.clear()


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'taylordash.rollback.warm_workers'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._active = False
        self._base = None
        self._store = None
        self._count_at_start = 0

    def v2_playbook_on_start(self, playbook):
        if self._active:
            return
        if not SUPPORTED_CORE.match(ansible_version) or AnsibleEnvironment is None:
            self._display.vvv('warm_workers: ansible-core %s is not 2.19; the workers start as usual' % ansible_version)
            return
        self._store = self._open_store(self.get_option('path'))
        install(self._store)
        self._active = True
        loaded = warm_plugins()
        self._display.vvv('warm_workers: %d filters loaded; %s' % (
            loaded, '%d compiled templates in %s' % (self._count_at_start, self._store.folder)
            if self._store else 'no compiled template kept'))

    def _open_store(self, path):
        if not path:
            return None
        base = os.path.abspath(os.path.expanduser(path))
        folder = os.path.join(base, fingerprint())
        try:
            make_private_dirs(base, folder)
        except (IOError, OSError) as exc:
            self._display.warning('warm_workers: not keeping compiled templates in %s (%s); they are compiled as usual'
                                  % (base, exc))
            return None
        self._base = base
        store = TemplateCodeStore(folder)
        self._count_at_start = len(store.entries())
        return store

    def v2_playbook_on_task_start(self, task, is_conditional):
        # The workers of this task are forked next. Frozen, the objects of this process are left out
        # of the workers' garbage collections: a collection that walked them would write to (and so
        # copy) most of the memory the worker shares with this process. gc.freeze() costs nothing;
        # what it holds back from collection (this process's garbage of the run so far, at most a few
        # MB) is collected after the unfreeze at the end of the run.
        if self._active:
            gc.freeze()

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        if not self._active:
            return
        gc.unfreeze()
        if not self._store:
            return
        count = len(self._store.entries())
        removed = self._store.trim(self.get_option('max_entries') or MAX_ENTRIES)
        prune(self._base, keep=os.path.basename(self._store.folder))
        self._display.vvv('warm_workers: %d new compiled templates kept in %s (%d old ones removed)'
                          % (max(count - self._count_at_start, 0), self._store.folder, removed))
