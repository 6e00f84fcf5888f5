"""Certificates for the config rollback tests, made with the cryptography library: a CA, a
server certificate it issued for 127.0.0.1/localhost, a mismatched key, an expired one."""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def cert_pem(key, cn="taylordash.local", days=30, start_days=-1, issuer_key=None, issuer_cn="td-test-ca",
             ca=False) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]) if issuer_key else subject
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=start_days))
               .not_valid_after(now + datetime.timedelta(days=days)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def fingerprint(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return ":".join("%02X" % b for b in cert.fingerprint(hashes.SHA256()))


class CertSet:
    """A CA and a server certificate/key it issued, plus a mismatched key and an expired
    certificate, written under ``directory``."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.ca_key = new_key()
        self.key = new_key()
        self.other_key = new_key()
        self.ca = self._write("ca.crt", cert_pem(self.ca_key, cn="td-test-ca", days=365, ca=True))
        self.crt = self._write("server.crt", cert_pem(self.key, issuer_key=self.ca_key))
        self.key_file = self._write("server.key", key_pem(self.key), 0o600)
        self.other_key_file = self._write("other.key", key_pem(self.other_key), 0o600)
        self.expired = self._write("expired.crt", cert_pem(self.key, days=-1, start_days=-30, issuer_key=self.ca_key))
        self.self_signed = self._write("selfsigned.crt", cert_pem(self.key))

    def _write(self, name: str, data: bytes, mode: int = 0o644) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(mode)
        return path
