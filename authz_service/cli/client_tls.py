"""TLS for the client commands (`authz check`, `authz keys`) and the health check.

A command speaks TLS when it is given a CA to trust or a client certificate (flags, else
the AUTHZ_CLIENT_TLS_* settings); otherwise plaintext, as the local demo serves.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from authz_service.config import Settings
from authz_service.errors import InvalidArgument, echo

__all__ = ["ClientTls", "add_arguments", "from_args"]


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
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "tls_ca") if self.ca else None,
            private_key=_read(self.key, "tls_key") if self.key else None,
            certificate_chain=_read(self.cert, "tls_cert") if self.cert else None,
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


def _read(path: str, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(
            f"--{name.replace('_', '-')} file `{echo(path)}` cannot be read: {exc.strerror}",
            field=name,
            value=path,
        ) from None


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
