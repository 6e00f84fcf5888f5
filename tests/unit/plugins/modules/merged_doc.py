"""A module's DOCUMENTATION with its doc fragments merged in, the way ansible-doc merges them
(plugins/doc_fragments/<name>.py, variable DOCUMENTATION or the upper-cased suffix of
``taylordash.rollback.<name>.<variable>``), so tests compare the argument spec with what a
reader of ansible-doc sees."""
from __future__ import annotations

import importlib

import yaml

PREFIX = "taylordash.rollback."


def _merge(target, source):
    # ansible.utils.plugin_docs.merge_fragment: the module's own entries win.
    for key, value in source.items():
        if key in target:
            if isinstance(target[key], dict):
                value = dict(value, **target[key])
            elif isinstance(target[key], list):
                value = sorted(frozenset(value + target[key]), key=str)
        target[key] = value


def fragment(name):
    """The parsed fragment ``taylordash.rollback.<file>[.<variable>]``."""
    assert name.startswith(PREFIX), name
    parts = name[len(PREFIX):].split(".")
    module = importlib.import_module("ansible_collections.taylordash.rollback.plugins.doc_fragments." + parts[0])
    variable = parts[1].upper() if len(parts) > 1 else "DOCUMENTATION"
    return yaml.safe_load(getattr(module.ModuleDocFragment, variable))


def merged_documentation(module):
    doc = yaml.safe_load(module.DOCUMENTATION)
    for name in doc.get("extends_documentation_fragment", []):
        frag = fragment(name)
        for key in ("options", "attributes"):
            if key in frag:
                merged = dict(frag.pop(key))
                for option, entry in doc.get(key, {}).items():
                    merged[option] = dict(merged.get(option, {}), **entry)
                doc[key] = merged
        _merge(doc, frag)
    return doc
