"""Transport security on the gRPC port (docs/auth.md "Transport security").

The server certificate and key (and the client CA, for mTLS) are read from files. gRPC
asks `CertificateFiles.fetch` for a configuration at every new TLS handshake; it returns
a new one only when a file changed and the new pair is whole (the key matches the
certificate), so an operator rotates certificates by replacing the files, without a
restart, and a half-written rotation keeps the old pair until it is complete.
Connections already open keep the certificate they were made with.

Without a certificate the port is plaintext: silently on loopback (the local demo),
otherwise only with the explicit `plaintext` setting, and then with a WARNING.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from authz_service.errors import InvalidArgument, echo

__all__ = [
    "CertificateFiles",
    "TlsFiles",
    "bind",
    "is_loopback",
    "plaintext_allowed",
    "read_pem",
    "stamp",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: every client must present a certificate it signed

    @property
    def paths(self) -> list[Path]:
        return [self.cert, self.key, *([self.client_ca] if self.client_ca else [])]


Stamp = tuple[tuple[int, int, int], ...]


def stamp(files: TlsFiles) -> Stamp:
    """What changes when any of the files is replaced or rewritten; OSError if one is gone."""
    stats = [os.stat(path) for path in files.paths]
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


def read_pem(files: TlsFiles) -> tuple[bytes, bytes, bytes | None]:
    """(certificate, key, client CA or None) as PEM, read and checked to be a whole pair;
    InvalidArgument naming the setting whose file is unreadable or wrong."""
    cert = _read(files.cert, "AUTHZ_TLS_CERT")
    key = _read(files.key, "AUTHZ_TLS_KEY")
    _check_pair(cert, key, files)
    ca = _read(files.client_ca, "AUTHZ_TLS_CLIENT_CA") if files.client_ca else None
    return cert, key, ca


class CertificateFiles:
    """The server's certificate configuration, re-read when its files change."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._stamp: Stamp = ()

    def initial(self) -> grpc.ServerCertificateConfiguration:
        """The first configuration; InvalidArgument naming the file if it is unusable."""
        try:
            current = stamp(self._files)
        except OSError:  # missing or not reachable: reading it names the setting
            current = ()
        config = self._load()
        self._stamp = current
        return config

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's fetcher: a new configuration if the files changed, else None (keep)."""
        try:
            current = stamp(self._files)
            if current == self._stamp:
                return None
            config = self._load()
        except Exception as exc:  # mid-rotation or removed: serve with the previous pair
            log.warning("TLS files changed but cannot be used yet (%s); keeping the old ones", exc)
            return None
        self._stamp = current
        log.info("TLS certificate reloaded from %s", self._files.cert)
        return config

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert, key, ca = read_pem(self._files)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(
            f"{setting} file `{echo(str(path))}` cannot be read: {exc.strerror}",
            field=setting,
            value=str(path),
        ) from None


def _check_pair(cert_pem: bytes, key_pem: bytes, files: TlsFiles) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise InvalidArgument(
            f"AUTHZ_TLS_CERT file `{echo(str(files.cert))}` is not a PEM certificate",
            field="AUTHZ_TLS_CERT",
            value=str(files.cert),
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise InvalidArgument(
            f"AUTHZ_TLS_KEY file `{echo(str(files.key))}` is not an unencrypted PEM private key",
            field="AUTHZ_TLS_KEY",
            value=str(files.key),
        ) from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        raise InvalidArgument(
            f"AUTHZ_TLS_KEY `{echo(str(files.key))}` is not the key of AUTHZ_TLS_CERT",
            field="AUTHZ_TLS_KEY",
            value=str(files.key),
        )


def is_loopback(listen: str) -> bool:
    """True if `host:port` binds only loopback (127.0.0.0/8, ::1, localhost)."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name or an empty host (every interface)
        return False


def plaintext_allowed(listen: str, *, plaintext: bool, setting: str = "AUTHZ_LISTEN") -> bool:
    """Whether a port without TLS may be opened at `listen` (the value of `setting`);
    InvalidArgument if not.

    Returns True when the caller should log the WARNING (beyond loopback, allowed by
    the explicit setting), False when plaintext is unremarkable (loopback)."""
    if is_loopback(listen):
        return False
    if not plaintext:
        raise InvalidArgument(
            f"{setting}: listening on `{echo(listen)}` beyond loopback needs TLS "
            "(AUTHZ_TLS_CERT and AUTHZ_TLS_KEY) or, knowingly, AUTHZ_PLAINTEXT=true "
            "(`--plaintext`)",
            field=setting,
            value=listen,
        )
    return True


def bind(server: grpc.aio.Server, listen: str, tls: TlsFiles | None, *, plaintext: bool) -> int:
    """Bind `listen` with TLS when `tls` is set, else plaintext under the rules above;
    the bound port."""
    if tls is None:
        if plaintext_allowed(listen, plaintext=plaintext):
            log.warning(
                "listening on %s without TLS: every call, API keys included, crosses the "
                "network in clear text; set AUTHZ_TLS_CERT and AUTHZ_TLS_KEY",
                listen,
            )
        return server.add_insecure_port(listen)
    files = CertificateFiles(tls)
    credentials = grpc.dynamic_ssl_server_credentials(
        files.initial(),
        # grpc documents None as "keep the current configuration"; the stubs omit it.
        files.fetch,  # type: ignore[arg-type]
        require_client_authentication=tls.client_ca is not None,
    )
    return server.add_secure_port(listen, credentials)
