"""TLS for the service's HTTP listeners (SCIM, `/metrics`, any other), from the same
certificate files and under the same rules as the gRPC port (docs/auth.md "Transport
security"): `listener_context` is all a listener needs.

The certificate is reloaded without a restart, as on the gRPC port. Python's ssl module
fixes a context's certificate for the connections made from it, so the listener's
context has an `sni_callback`, which OpenSSL runs at every ClientHello (with or without
a server name in it): it compares the files' stamp with the one last loaded, builds a
new context when they changed and the new pair is whole, and moves the connection to the
newest context. A half-written rotation keeps the previous pair, with one WARNING.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from authz_service.api.tls import Stamp, TlsFiles, plaintext_allowed, read_pem, stamp
from authz_service.errors import InvalidArgument, echo

__all__ = ["ReloadingContext", "listener_context"]

log = logging.getLogger(__name__)

_Connection = ssl.SSLObject | ssl.SSLSocket


def listener_context(
    listen: str, tls: TlsFiles | None, *, plaintext: bool, setting: str
) -> ssl.SSLContext | None:
    """The context to serve HTTP at `listen` (the value of `setting`) with, or None for
    plaintext: allowed on loopback, beyond it only with `plaintext` (then a WARNING),
    otherwise InvalidArgument naming `setting`."""
    if tls is None:
        if plaintext_allowed(listen, plaintext=plaintext, setting=setting):
            log.warning(
                "%s: listening on %s without TLS: requests, credentials included, cross "
                "the network in clear text; set AUTHZ_TLS_CERT and AUTHZ_TLS_KEY",
                setting,
                listen,
            )
        return None
    return ReloadingContext(tls).context


class ReloadingContext:
    """`context` is the listener's: it serves the newest whole pair of `files`."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        try:
            self._stamp: Stamp = stamp(files)
        except OSError:  # missing or not reachable: loading it names the setting
            self._stamp = ()
        self._refused: Stamp = ()
        self._latest = self._load()
        self.context = self._load()
        self.context.sni_callback = self._on_hello

    def _on_hello(
        self, connection: _Connection, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        self._refresh()
        if self._latest is not self.context:
            connection.context = self._latest

    def _refresh(self) -> None:
        try:
            current = stamp(self._files)
        except OSError as exc:  # removed mid-rotation: keep serving the previous pair
            current = ()
            problem: Exception = exc
        else:
            if current == self._stamp:
                return
            try:
                self._latest = self._load()
            except InvalidArgument as exc:
                problem = exc
            else:
                self._stamp = current
                log.info("TLS certificate reloaded from %s (HTTP)", self._files.cert)
                return
        if current != self._refused:  # once per state of the files, not per handshake
            self._refused = current
            log.warning(
                "TLS files changed but cannot be used yet (%s); keeping the old ones", problem
            )

    def _load(self) -> ssl.SSLContext:
        files = self._files
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        try:
            context.load_cert_chain(files.cert, files.key, password=_encrypted(files))
            if files.client_ca is not None:
                context.load_verify_locations(cafile=files.client_ca)
                context.verify_mode = ssl.CERT_REQUIRED
        except OSError:  # ssl.SSLError included: say which file, in the gRPC port's words
            read_pem(files)
            raise InvalidArgument(  # read_pem found the files whole: they changed meanwhile
                f"AUTHZ_TLS_CERT `{echo(str(files.cert))}` changed while it was loaded",
                field="AUTHZ_TLS_CERT",
                value=str(files.cert),
            ) from None
        return context


def _encrypted(files: TlsFiles) -> Callable[[], bytes]:
    """The password callback: an encrypted key is refused, never prompted for on a tty."""

    def refuse() -> bytes:
        raise InvalidArgument(
            f"AUTHZ_TLS_KEY file `{echo(str(files.key))}` is not an unencrypted PEM private key",
            field="AUTHZ_TLS_KEY",
            value=str(files.key),
        )

    return refuse
