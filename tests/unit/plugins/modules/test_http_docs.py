"""The shared HTTP options are documented once (doc_fragments/http_options.py) and specified once
(module_utils/_http_options.py): every module's documentation, fragments merged, matches its
argument spec, and http_latency's per-endpoint request keys match the request fragment."""
from __future__ import annotations

import pytest

from merged_doc import fragment, merged_documentation

from ansible_collections.taylordash.rollback.plugins.module_utils import _http_options as http
from ansible_collections.taylordash.rollback.plugins.modules import health_poll, http_latency, validate_p1


def _same(doc, spec, where):
    assert set(doc) == set(spec), where
    for name, entry in spec.items():
        documented = doc[name]
        assert documented["type"] == entry.get("type", "str"), (where, name)
        assert documented.get("default") == entry.get("default"), (where, name)
        assert documented.get("choices") == entry.get("choices"), (where, name)
        assert documented.get("elements") == entry.get("elements"), (where, name)
        assert documented.get("required", False) == entry.get("required", False), (where, name)
        assert documented["description"], (where, name)


def test_fragments_match_the_shared_specs():
    _same(fragment("taylordash.rollback.http_options")["options"], http.client_argument_spec(), "client")
    _same(fragment("taylordash.rollback.http_options.request")["options"], http.request_argument_spec(), "request")


@pytest.mark.parametrize("module", [health_poll, http_latency, validate_p1])
def test_documentation_matches_the_argument_spec(module):
    doc = merged_documentation(module)
    spec = module.argument_spec()
    _same(doc["options"], spec, module.__name__)
    if "endpoints" in spec:
        _same(doc["options"]["endpoints"]["suboptions"], spec["endpoints"]["options"], "endpoints")


@pytest.mark.parametrize("module", [health_poll, http_latency, validate_p1])
def test_attributes_and_timing_documented(module):
    doc = merged_documentation(module)
    assert "taylordash.rollback.attributes" in doc["extends_documentation_fragment"]
    assert doc["attributes"]["action_group"]["membership"] == ["taylordash.rollback.rollback"]
    assert set(doc["attributes"]) == {"check_mode", "diff_mode", "idempotent", "action_group"}
    for attribute in doc["attributes"].values():
        assert attribute["description"] and attribute["support"]
    import yaml
    timing = yaml.safe_load(module.RETURN)["timing"]
    assert timing["returned"] == "always" and timing["type"] == "dict"


def test_http_latency_endpoint_keys_are_the_shared_request_options():
    request = fragment("taylordash.rollback.http_options.request")["options"]
    endpoint = merged_documentation(http_latency)["options"]["endpoints"]["suboptions"]
    for name, entry in request.items():
        for key in ("type", "default", "choices", "elements", "required"):
            assert endpoint[name].get(key) == entry.get(key), (name, key)
