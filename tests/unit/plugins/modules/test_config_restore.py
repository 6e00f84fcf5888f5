"""Unit tests of config_restore: backup names and timestamps, backup sets, .env parsing and key
diffs, certificate checks, the atomic writes, and the module's file work on temporary files
(no docker: compose validation is covered by tests/integration/test_config_restore.py).
Includes the Hypothesis property test of the argument handling (module_fuzz)."""
from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings, strategies as st

from ansible_collections.taylordash.rollback.plugins.module_utils import _config_restore as cr
from ansible_collections.taylordash.rollback.plugins.modules import config_restore

from module_fuzz import ModuleFuzz, no_docker_on_path

NOW = datetime.datetime(2026, 11, 26, 1, 2, 3, tzinfo=datetime.timezone.utc)


# --- names and timestamps --------------------------------------------------------------------

@pytest.mark.parametrize("name,key,text", [
    (".env.backup.20261125_101010", "20261125101010", "20261125_101010"),
    ("docker-compose.backup.20261125T101010Z", "20261125101010", "20261125T101010Z"),
    ("x-2026-11-25_10-10-10.yml", "20261125101010", "2026-11-25_10-10-10"),
    ("backup_20261125101010.env", "20261125101010", "20261125101010"),
    ("certs-20261125.tar", "20261125000000", "20261125"),
    ("a.20251231_235959.b.20261125_101010", "20261125101010", "20261125_101010"),
])
def test_name_timestamp(name, key, text):
    assert cr.name_timestamp(name) == (key, text)


@pytest.mark.parametrize("name", [".env.backup", ".env.backup.2026", ".env.20261399_101010", "x123456789012345678"])
def test_name_without_timestamp(name):
    assert cr.name_timestamp(name) is None


@pytest.mark.parametrize("name,kind", [
    ("/p/.env", "env"), ("/p/.env.production", "env"), ("/p/backend.env", "env"),
    ("/p/docker-compose.yml", "compose"), ("/p/compose.yaml", "compose"), ("/p/docker-compose.prod.yaml", "compose"),
    ("/p/certs/taylordash.crt", "certificate"), ("/p/certs/chain.pem", "certificate"), ("/p/certs/taylordash.key", "key"),
    ("/etc/nginx/nginx.conf", "nginx"), ("/etc/nginx/conf.d/site.conf", "nginx"), ("/p/plugins_config.json", "json"),
    ("/p/README", "none"), ("/p/other.conf", "none"),
])
def test_kind_of(name, kind):
    assert cr.kind_of(name) == kind


def test_diff_kind():
    assert cr.diff_kind("env", "auto") == "env"
    assert cr.diff_kind("key", "auto") == "none"
    assert cr.diff_kind("certificate", "auto") == "cert"
    assert cr.diff_kind("compose", "auto") == "text"
    assert cr.diff_kind("key", "text") == "text"


def touch(path: Path, text="x=1\n", mtime=None):
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_candidates_newest_by_name_not_mtime(tmp_path):
    dest = tmp_path / ".env"
    touch(dest)
    touch(tmp_path / ".env.backup.20261125_101010", mtime=2_000_000_000)  # newest mtime, older name
    touch(tmp_path / ".env.backup.20261126_090000", mtime=1_000_000_000)
    touch(tmp_path / ".env.backup.notime")
    touch(tmp_path / ".env.rollback-20261126T010203Z")  # a kept copy: never a candidate
    rows = cr.candidates(str(dest), ".env*")
    assert [Path(r[2]).name for r in rows] == [
        ".env.backup.20261126_090000", ".env.backup.20261125_101010", ".env.backup.notime"]
    assert cr.pick_newest(str(dest), ".env*", rows)[2].endswith("20261126_090000")


def test_pick_newest_without_timestamps(tmp_path):
    dest = str(tmp_path / "plugins_config.json")
    one = [(None, None, str(tmp_path / "plugins_config.backup.json"))]
    assert cr.pick_newest(dest, "plugins_config.backup.json", one) == one[0]
    with pytest.raises(cr.RestoreError, match="none has a timestamp"):
        cr.pick_newest(dest, "*.json", one + [(None, None, "other")])
    with pytest.raises(cr.RestoreError, match="no backup matches the pattern"):
        cr.pick_newest(dest, "*.nope", [])


def test_common_set():
    env = [("20261126090000", "20261126_090000", "a"), ("20261125101010", "20261125_101010", "b")]
    compose = [("20261125101010", "20261125_101010", "c"), ("20261120101010", "20261120_101010", "d")]
    assert cr.common_set([("/p/.env", env), ("/p/dc.yml", compose)]) == "20261125101010"
    with pytest.raises(cr.RestoreError) as info:
        cr.common_set([("/p/.env", env[:1]), ("/p/dc.yml", compose)])
    assert "no timestamp common" in info.value.msg
    assert "/p/.env: 20261126_090000" in info.value.msg


def test_unique_kept():
    taken = {"/p/.env.rollback-X", "/p/.env.rollback-X-2"}
    assert cr.unique_kept("/p/.env", ".rollback-X", exists=taken.__contains__) == "/p/.env.rollback-X-3"
    assert cr.unique_kept("/p/.env", ".rollback-Y", exists=taken.__contains__) == "/p/.env.rollback-Y"
    assert cr.utc_stamp(NOW) == "20261126T010203Z"


# --- .env ------------------------------------------------------------------------------------

def test_parse_env_and_key_changes():
    text = "# comment\n\nA=1\nexport B = two\nC=\"quoted=value\"\nA=3\n"
    values, problems = cr.parse_env(text)
    assert problems == []
    assert values == {"A": "3", "B": "two", "C": "\"quoted=value\""}
    added, removed, changed = cr.env_key_changes({"A": "1", "B": "2", "D": "x"}, {"A": "1", "B": "3", "E": "y"})
    assert (added, removed, changed) == (["E"], ["D"], ["B"])


def test_parse_env_problems_never_show_content():
    values, problems = cr.parse_env("GOOD=1\nsupersecretvalue\n1BAD=x\n")
    assert values == {"GOOD": "1"}
    assert problems == ["line 2 is not KEY=VALUE", "line 3 has an invalid variable name"]
    assert "supersecret" not in " ".join(problems)


def test_env_diff_text_hides_values():
    text = cr.env_diff_text({"B": "secret-b", "A": "1"}, changed=["B"], mark=True)
    assert text == "A=<hidden>\nB=<hidden> (changed)\n"


def test_secret_values_and_mask():
    values = {"TD_DB_PASSWORD": "pw-123456", "TD_API_KEY": "'k3y-value'", "TD_DB_PORT": "5432",
              "COMPOSE_PROJECT_NAME": "tdproject", "TD_JWT": "ab"}
    secrets = cr.secret_values(values)
    assert {"pw-123456", "k3y-value", "'k3y-value'"} <= secrets
    assert "5432" not in secrets and "tdproject" not in secrets and "ab" not in secrets
    assert cr.mask("pw-123456 in /srv/tdproject", secrets) == "******** in /srv/tdproject"


# --- certificates ----------------------------------------------------------------------------

def make_cert(key, days=30, start=-1, issuer_key=None, issuer_name="test-ca", cn="taylordash.local"):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]) if issuer_key else subject
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=start))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(issuer_key or key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
CA = ec.generate_private_key(ec.SECP256R1())


def test_certificate_checks():
    good = cr.load_certificate(make_cert(KEY))
    assert cr.check_certificate(good) is None
    assert "expired" in cr.check_certificate(cr.load_certificate(make_cert(KEY, days=-1, start=-10)))
    assert "not valid yet" in cr.check_certificate(cr.load_certificate(make_cert(KEY, days=20, start=10)))
    assert cr.check_pair(good, cr.load_key(key_pem(KEY))) is None
    assert "do not belong together" in cr.check_pair(good, cr.load_key(key_pem(OTHER)))
    issued = cr.load_certificate(make_cert(KEY, issuer_key=CA))
    ca_pem = make_cert(CA, cn="test-ca")
    assert cr.check_ca(issued, ca_pem) is None
    assert "does not verify" in cr.check_ca(good, ca_pem)
    assert "sha256_fingerprint" in cr.cert_summary(make_cert(KEY))


def test_bad_pem():
    with pytest.raises(cr.RestoreError, match="not a PEM certificate"):
        cr.load_certificate(b"garbage")
    with pytest.raises(cr.RestoreError, match="not a PEM private key"):
        cr.load_key(b"garbage")
    encrypted = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"passphrase"))
    with pytest.raises(cr.RestoreError, match="encrypted"):
        cr.load_key(encrypted)


def test_check_json():
    assert cr.check_json(b'{"a": 1}') is None
    assert "not valid JSON" in cr.check_json(b"{")


# --- writing ---------------------------------------------------------------------------------

def test_write_atomic_keeps_mode_and_leaves_no_temp(tmp_path):
    dest = tmp_path / ".env"
    dest.write_text("old\n")
    cr.write_atomic(str(dest), b"new\n", 0o600)
    assert dest.read_text() == "new\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_write_new_never_overwrites(tmp_path):
    kept = tmp_path / "kept"
    cr.write_new(str(kept), b"a", 0o640)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    with pytest.raises(FileExistsError):
        cr.write_new(str(kept), b"b", 0o640)
    assert kept.read_bytes() == b"a"


# --- the module on files (no docker needed) -------------------------------------------------

def run(tmp_path, check_mode=False, **args):
    fuzz = ModuleFuzz(config_restore, deadline=30)
    with no_docker_on_path(tmp_path):
        return fuzz.run(dict(args, _ansible_diff=True), check_mode=check_mode, cwd=tmp_path)


def test_module_json_check_real_idempotent(tmp_path):
    live = tmp_path / "plugins_config.json"
    live.write_text('{"enabled": ["a", "b"]}')
    live.chmod(0o640)
    backup = tmp_path / "plugins_config.backup.json"
    backup.write_text('{"enabled": ["a"]}')
    items = [{"dest": str(live), "pattern": "plugins_config.backup.json"}]
    kind, check = run(tmp_path, check_mode=True, items=items, keep_suffix=".kept")
    assert kind == "exit" and check["changed"] and check["kept"] == [str(live) + ".kept"]
    assert live.read_text() == '{"enabled": ["a", "b"]}' and not (tmp_path / "plugins_config.json.kept").exists()
    kind, real = run(tmp_path, items=items, keep_suffix=".kept")
    assert kind == "exit" and real["changed"]
    assert live.read_text() == '{"enabled": ["a"]}'
    assert stat.S_IMODE(live.stat().st_mode) == 0o640
    assert (tmp_path / "plugins_config.json.kept").read_text() == '{"enabled": ["a", "b"]}'
    assert real["items"][0]["validated_by"] == ["readable, not empty", "json"]
    kind, again = run(tmp_path, items=items, keep_suffix=".kept")
    assert kind == "exit" and not again["changed"] and again["kept"] == []


def test_module_bad_inputs_change_nothing(tmp_path):
    live = tmp_path / "plugins_config.json"
    live.write_text("{}")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "bad.json").write_text("{")
    cases = [
        ([{"dest": str(live), "pattern": "*.backup.*"}], "no backup matches"),
        ([{"dest": str(live), "src": str(tmp_path / "empty.json")}], "is empty"),
        ([{"dest": str(live), "src": str(tmp_path / "missing.json")}], "does not exist"),
        ([{"dest": str(live), "src": str(tmp_path / "bad.json")}], "not valid JSON"),
        ([{"dest": str(tmp_path / "nodir" / "x.json"), "src": str(tmp_path / "bad.json")}], "directory"),
        ([{"dest": str(live)}], "exactly one of src"),
        ([{"dest": "relative.json", "src": "bad.json"}], "absolute"),
    ]
    for items, fragment in cases:
        kind, result = run(tmp_path, items=items)
        assert kind == "fail", items
        assert fragment.lower() in result["msg"].lower(), result["msg"]
        assert live.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "empty.json", "plugins_config.json"]


def test_module_all_or_none_puts_earlier_items_back(tmp_path, monkeypatch):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.write_text('{"v": 1}')
    two.write_text('{"v": 1}')
    (tmp_path / "one.backup.json").write_text('{"v": 0}')
    (tmp_path / "two.backup.json").write_text('{"v": 0}')
    real_write = cr.write_atomic

    def failing(dest, data, *args, **kwargs):
        if dest.endswith("two.json"):
            raise OSError(28, "No space left on device")
        return real_write(dest, data, *args, **kwargs)

    monkeypatch.setattr(cr, "write_atomic", failing)
    kind, result = run(tmp_path, items=[{"dest": str(one), "src": str(tmp_path / "one.backup.json")},
                                        {"dest": str(two), "src": str(tmp_path / "two.backup.json")}])
    assert kind == "fail"
    assert "No space left" in result["msg"] and "put back" in result["msg"]
    assert result["restored_back"] == [str(one)]
    assert one.read_text() == '{"v": 1}' and two.read_text() == '{"v": 1}'
    assert not list(tmp_path.glob("*.rollback-*")), "kept copies of files put back are removed"


def test_module_certificate_pair_and_expiry(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "site.crt").write_bytes(make_cert(KEY))
    (certs / "site.key").write_bytes(key_pem(KEY))
    (tmp_path / "new.crt").write_bytes(make_cert(OTHER))
    (tmp_path / "new.key").write_bytes(key_pem(OTHER))
    (tmp_path / "expired.crt").write_bytes(make_cert(OTHER, days=-1, start=-30))
    pair = [{"dest": str(certs / "site.crt"), "src": str(tmp_path / "new.crt")},
            {"dest": str(certs / "site.key"), "src": str(tmp_path / "new.key")}]
    kind, result = run(tmp_path, check_mode=True, items=pair)
    assert kind == "exit" and result["changed"]
    assert "matches key %s" % (certs / "site.key") in result["items"][0]["validated_by"]
    assert "PRIVATE" not in str(result)
    # the certificate alone: it must match the live key, which it does not
    kind, result = run(tmp_path, items=pair[:1])
    assert kind == "fail" and "do not belong together" in result["msg"]
    kind, result = run(tmp_path, items=[{"dest": str(certs / "site.crt"), "src": str(tmp_path / "expired.crt")},
                                        pair[1]])
    assert kind == "fail" and "expired" in result["msg"]
    assert not list(certs.glob("*.rollback-*"))


def test_module_env_diff_never_shows_values(tmp_path):
    live = tmp_path / "app.env"
    live.write_text("TD_DB_PASSWORD=old-secret-1\nTD_PORT=1\n")
    live.chmod(0o600)
    (tmp_path / "app.env.backup.20261125_101010").write_text("TD_DB_PASSWORD=new-secret-2\nTD_NEW=1\n")
    kind, result = run(tmp_path, items=[{"dest": str(live), "pattern": "app.env.backup.*"}])
    assert kind == "exit" and result["changed"]
    item = result["items"][0]
    assert (item["keys_added"], item["keys_removed"], item["keys_changed"]) == (["TD_NEW"], ["TD_PORT"], ["TD_DB_PASSWORD"])
    assert "secret" not in str(result)
    assert stat.S_IMODE(live.stat().st_mode) == 0o600
    assert item["mode"] == "0600"


# --- property test: any single option value ends cleanly ------------------------------------

NAMES = st.one_of(st.sampled_from(["live.json", "backup.json", "empty", "", ".", "..", "x" * 300, "a\x00b",
                                   "*", "[", "sub/../live.json"]),
                  st.text(st.characters(blacklist_characters="/~$\\", blacklist_categories=("Cs",)), max_size=20))


def fuzz_items(tmp):
    return st.lists(st.fixed_dictionaries(
        {"dest": NAMES.map(lambda n: os.path.join(tmp, "area", n) if n else n)},
        optional={"src": NAMES.map(lambda n: os.path.join(tmp, "area", n)), "pattern": NAMES,
                  "validate": st.sampled_from(list(cr.VALIDATORS) + ["bogus"]),
                  "diff_mode": st.sampled_from(list(cr.DIFF_MODES) + ["x"])}), max_size=3)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_config_restore_any_option(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    area = tmp / "area"
    area.mkdir()
    (area / "live.json").write_text("{}")
    (area / "backup.json").write_text('{"a": 1}')
    (area / "empty").write_text("")
    base_items = [{"dest": str(area / "live.json"), "src": str(area / "backup.json")}]
    fuzz = ModuleFuzz(config_restore, base_args={"items": base_items},
                      strategies={"items": fuzz_items(str(tmp)),
                                  "docker_cli": NAMES, "nginx_binary": NAMES, "project_dir": NAMES,
                                  "ca_file": NAMES, "compose_files": st.lists(NAMES, max_size=2)},
                      skip=("nginx_validate_command", "nginx_image"), deadline=20)
    option_and_value = data.draw(fuzz.option_values())
    with no_docker_on_path(tmp):
        kind, result = fuzz.check(option_and_value, cwd=tmp, check_mode=True)
    assert (area / "live.json").read_text() == "{}", "check mode changed a file"
    assert not [p for p in area.iterdir() if p.name not in ("live.json", "backup.json", "empty")]


def test_module_optional_item_without_backup_is_skipped(tmp_path):
    live = tmp_path / "plugins_config.json"
    live.write_text("{}")
    (tmp_path / "plugins_config.backup.json").write_text('{"a": 1}')
    key = tmp_path / "site.key"
    items = [{"dest": str(live), "pattern": "plugins_config.backup.json"},
             {"dest": str(key), "pattern": "site.key.backup.*", "optional": True, "validate": "key"}]
    kind, result = run(tmp_path, items=items)
    assert kind == "exit" and result["changed"]
    assert [i["skipped"] for i in result["items"]] == [None, "no backup matches %s/site.key.backup.*" % tmp_path]
    kind, result = run(tmp_path, items=items[1:])
    assert kind == "exit" and not result["changed"] and "Nothing to restore" in result["msg"]
    kind, result = run(tmp_path, items=[dict(items[1], optional=False)])
    assert kind == "fail" and "no backup matches" in result["msg"].lower()


def test_backup_set_leaves_out_items_not_in_the_set(tmp_path):
    for name in (".env.backup.20261125_101010", "docker-compose.backup.20261125_101010"):
        (tmp_path / name).write_text("A=1\n" if name.startswith(".env") else "services: {}\n")
    (tmp_path / "plugins_config.json.backup.20261201_000000").write_text("{}")
    (tmp_path / "plugins_config.json").write_text('{"x": 1}')
    kind, result = run(tmp_path, check_mode=True, backup_set=True, items=[
        {"dest": str(tmp_path / "app.env"), "pattern": ".env.backup.*", "validate": "none"},
        {"dest": str(tmp_path / "other.yml"), "pattern": "docker-compose.backup.*", "validate": "none"},
        {"dest": str(tmp_path / "plugins_config.json"), "pattern": "plugins_config.json.backup.*",
         "backup_set": False}])
    assert kind == "exit", result["msg"]
    assert result["backup_set"] == "20261125_101010"
    assert result["items"][2]["src"].endswith("20261201_000000")


def test_module_symlinked_dest_stays_a_link(tmp_path):
    real = tmp_path / "store" / "settings.json"
    real.parent.mkdir()
    real.write_text('{"v": 2}')
    link = tmp_path / "settings.json"
    link.symlink_to(real)
    (tmp_path / "settings.backup.json").write_text('{"v": 1}')
    kind, result = run(tmp_path, items=[{"dest": str(link), "src": str(tmp_path / "settings.backup.json")}])
    assert kind == "exit" and result["changed"]
    assert link.is_symlink() and real.read_text() == '{"v": 1}'
    assert Path(result["kept"][0]).read_text() == '{"v": 2}'
