"""TLS for the client commands (`authz check`, `authz keys`) and the health check.

A command speaks TLS when it is given a CA to trust or a client certificate (flags, else
the AUTHZ_CLIENT_TLS_* settings); otherwise plaintext, as the local demo serves.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from authz_service.cli.files import unreadable
from authz_service.config import Settings
from authz_service.errors import PATH_CHARS, InvalidArgument, echo

__all__ = ["ClientTls", "add_arguments", "api_key_metadata", "failure", "from_args"]


@dataclass(frozen=True, slots=True)
class ClientTls:
    ca: str = ""  # PEM CA the server's certificate must chain to
    cert: str = ""  # PEM client certificate, for a server that requires one (mTLS)
    key: str = ""
    server_name: str = ""  # the name to verify instead of the dialled host

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise InvalidArgument(
                "--tls-cert and --tls-key are given together or not at all",
                field="tls_key" if self.cert else "tls_cert",
                value="",
            )

    @property
    def enabled(self) -> bool:
        return bool(self.ca or self.cert)

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials from the files (system roots without a CA)."""
        # Each file is checked here, before gRPC sees it: gRPC takes any bytes, then logs
        # its C core's complaints at every connection attempt and reports UNAVAILABLE
        # without naming the file.
        root = _read(self.ca, "tls_ca", _certificates) if self.ca else None
        chain = _read(self.cert, "tls_cert", _certificates) if self.cert else None
        key = _read(self.key, "tls_key", _private_key) if self.key else None
        return grpc.ssl_channel_credentials(
            root_certificates=root, private_key=key, certificate_chain=chain
        )

    def options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def aio_channel(self, target: str) -> grpc.aio.Channel:
        if not self.enabled:
            return grpc.aio.insecure_channel(_host_port(target))
        return grpc.aio.secure_channel(_host_port(target), self.credentials(), self.options())

    def channel(self, target: str) -> grpc.Channel:
        if not self.enabled:
            return grpc.insecure_channel(_host_port(target))
        return grpc.secure_channel(_host_port(target), self.credentials(), self.options())


def _host_port(target: str) -> str:
    """`target` if it is host:port with a port gRPC can dial. gRPC takes a larger port
    modulo 65536 (99999 dials 34463): the call, with its API key, would go elsewhere."""
    host, _, port = target.rpartition(":")
    if not (host and port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        raise InvalidArgument(
            f"`{echo(target)}` is not host:port (a port from 1 to 65535)",
            field="server",
            value=target,
        )
    return target


def _read(path: str, name: str, parse: Callable[[bytes], object]) -> bytes:
    option = f"--{name.replace('_', '-')}"
    problem = unreadable(path)
    if problem is not None:
        raise InvalidArgument(
            f"{option} file `{echo(path, PATH_CHARS)}` cannot be read: {problem}",
            field=name,
            value=path,
        )
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(
            f"{option} file `{echo(path, PATH_CHARS)}` cannot be read: {exc.strerror}",
            field=name,
            value=path,
        ) from None
    try:
        parse(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        what = "certificates" if parse is _certificates else "an unencrypted private key"
        raise InvalidArgument(
            f"{option} file `{echo(path, PATH_CHARS)}` is not PEM holding {what}",
            field=name,
            value=path,
        ) from exc
    return data


def _certificates(data: bytes) -> object:
    return x509.load_pem_x509_certificates(data)  # ValueError without any


def _private_key(data: bytes) -> object:
    return serialization.load_pem_private_key(data, password=None)


def api_key_metadata(args: argparse.Namespace, settings: Settings) -> tuple[tuple[str, str], ...]:
    """The `authorization` header of `--api-key`, else AUTHZ_API_KEY; none without a key.

    A header value holds printable ASCII only: gRPC refuses anything else only when the
    call is made, with C-core noise and a traceback. The key is a secret: never echoed."""
    key, source = (args.api_key, "--api-key") if args.api_key else (settings.api_key, "")
    if not key:
        return ()
    if not all(" " <= c <= "~" for c in key):
        raise InvalidArgument(
            f"{source or 'AUTHZ_API_KEY'} holds a control or non-ASCII character, which no "
            "API key has",
            field="api_key",
        )
    return (("authorization", f"Bearer {key}"),)


def failure(err: grpc.aio.AioRpcError) -> str:
    """The line to print for a failed call. Its details may quote the caller's input (the
    dialled target, a refused id): escaped as `echo` escapes, and capped, longer than
    `echo`'s cap so that gRPC's own explanation (`...: Connection refused`) still shows."""
    details = err.details() or ""
    shown = "".join(map(echo, details[:_DETAILS_CHARS]))
    if len(details) > _DETAILS_CHARS:
        shown += f"…({len(details.encode('utf-8', 'surrogatepass'))} bytes)"
    return f"error: {err.code().name}: {shown}"


_DETAILS_CHARS = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-ca", help="PEM CA to trust (AUTHZ_CLIENT_TLS_CA); enables TLS")
    parser.add_argument(
        "--tls-cert", help="PEM client certificate for mTLS (AUTHZ_CLIENT_TLS_CERT)"
    )
    parser.add_argument("--tls-key", help="PEM key of --tls-cert (AUTHZ_CLIENT_TLS_KEY)")
    parser.add_argument(
        "--tls-server-name",
        help="name the server certificate must carry, if not the host dialled",
    )


def from_args(args: argparse.Namespace, settings: Settings) -> ClientTls:
    """Flags over settings, each of the four on its own."""
    return ClientTls(
        ca=args.tls_ca or settings.client_tls_ca,
        cert=args.tls_cert or settings.client_tls_cert,
        key=args.tls_key or settings.client_tls_key,
        server_name=args.tls_server_name or settings.client_tls_server_name,
    )
