"""Certificate details read with cryptography, spelled as openssl prints them (the snapshot's
values before the module stopped running openssl)."""
from __future__ import annotations

import datetime
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.taylordash.rollback.plugins.module_utils import _certificate as cert


def write_cert(path, attributes, not_after):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    built = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
             .serial_number(1).not_valid_before(not_after - datetime.timedelta(days=30))
             .not_valid_after(not_after).sign(key, hashes.SHA256()))
    path.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    return path


SUBJECTS = [
    [(NameOID.COMMON_NAME, "taylordash.local")],
    [(NameOID.COUNTRY_NAME, "DE"), (NameOID.LOCALITY_NAME, "Köln 漢"), (NameOID.ORGANIZATION_NAME, "Taylor, Dash"),
     (NameOID.ORGANIZATIONAL_UNIT_NAME, 'a"b\\c;d'), (NameOID.COMMON_NAME, " lead#"),
     (NameOID.EMAIL_ADDRESS, "ops@example.org"), (NameOID.DOMAIN_COMPONENT, "example")],
]


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is the reference spelling")
@pytest.mark.parametrize("attributes", SUBJECTS)
@pytest.mark.parametrize("day", [7, 27])
def test_same_values_as_openssl_printed(tmp_path, attributes, day):
    path = write_cert(tmp_path / "c.pem", attributes, datetime.datetime(2029, 2, day, 11, 40, 11))
    out = subprocess.run(["openssl", "x509", "-noout", "-in", str(path), "-fingerprint", "-sha256", "-subject",
                          "-enddate", "-nameopt", "oneline"], capture_output=True, text=True, check=True,
                         env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}).stdout.splitlines()
    expected = dict((line.split("=", 1)[0].strip().lower(), line.split("=", 1)[1].strip()) for line in out)
    info = cert.certificate_file(str(path))
    assert info == {"path": str(path), "exists": True,
                    "sha256_fingerprint": expected["sha256 fingerprint"],
                    "subject": expected["subject"], "not_after": expected["notafter"]}


def test_not_a_certificate_and_missing(tmp_path):
    (tmp_path / "k.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    info = cert.certificate_file(str(tmp_path / "k.pem"))
    assert info["exists"] is True and info["error"].startswith("not a PEM certificate")
    assert cert.certificate_file(str(tmp_path / "none.pem")) == {"path": str(tmp_path / "none.pem"), "exists": False}
    assert cert.certificate_file(str(tmp_path))["exists"] is False  # a directory is no certificate file
    (tmp_path / "big.pem").write_bytes(b"x" * (cert.MAX_PEM_BYTES + 1))
    assert "larger than" in cert.certificate_file(str(tmp_path / "big.pem"))["error"]


def test_format_time_pads_the_day_like_openssl():
    assert cert.format_time(datetime.datetime(2029, 2, 7, 1, 2, 3)) == "Feb  7 01:02:03 2029 GMT"
