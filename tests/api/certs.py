"""Certificates made at test time: a CA, and leaves it signs (server or client)."""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, cert: Path, key: Path) -> None:
        """Replace both files atomically (a new inode each), as an operator's tool would."""
        for path, data in ((key, self.key_pem), (cert, self.cert_pem)):
            staging = path.with_suffix(".new")
            staging.write_bytes(data)
            os.replace(staging, path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )


def _leaf(subject: str, ca: Pair, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    # Python 3.13's default TLS context verifies strictly (VERIFY_X509_STRICT): a leaf
    # must name its issuer's key (Authority Key Identifier), as real CAs' leaves do.
    issuer_key = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        _builder(subject, ca.cert.subject, key)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_key),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def make_ca(name: str = "test CA") -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, _name(name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Pair(cert, key)


def make_server(ca: Pair, host: str = "localhost") -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(host), x509.IPAddress(IPv4Address("127.0.0.1"))]
    cert = (
        _leaf(host, ca, key)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Pair(cert, key)


def make_client(ca: Pair, *uris: str, name: str = "client") -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _leaf(name, ca, key).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    if uris:
        sans = [x509.UniformResourceIdentifier(u) for u in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Pair(builder.sign(ca.key, hashes.SHA256()), key)


def trusting(ca: Pair) -> ssl.SSLContext:
    """A client context trusting `ca`, verifying as strictly as Python 3.13's default
    does on every version, so that certificates made here pass there too."""
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def served_certificate(port: int, ca: Pair) -> x509.Certificate:
    """The certificate a new TLS connection to the port is shown (blocking; run in a thread)."""
    context = trusting(ca)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)
