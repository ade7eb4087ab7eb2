"""`python -m authz_service.healthcheck`: exit 0 if the local server reports SERVING.

The container's HEALTHCHECK runs this. It asks the standard gRPC health service
(`grpc.health.v1.Health/Check`) of the server on the port of AUTHZ_LISTEN (read through
config, like the server reads it), on loopback when the server binds every interface.
The server reports NOT_SERVING while it drains on shutdown, so a stopping container turns
unhealthy before it stops answering.

When the server speaks TLS, give the check what a client needs (`--tls-ca`, and for
mTLS `--tls-cert`/`--tls-key`, or the AUTHZ_CLIENT_TLS_* settings); `--tls-server-name`
(AUTHZ_CLIENT_TLS_SERVER_NAME) when the certificate does not name the loopback address.

Exit status: 0 SERVING, 1 anything else (NOT_SERVING, unknown service, no answer in time).
Like `authz`'s other commands it lives in the package, but it is a client of the server,
not part of it: nothing else imports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz_service.cli.client_tls import ClientTls, add_arguments, from_args
from authz_service.config import load_settings
from authz_service.errors import AuthzError

__all__ = ["main", "probe_target"]

# A server bound to every interface is probed on loopback.
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def probe_target(listen: str) -> str:
    """The address to probe for a `host:port` the server listens on."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or port == "0":
        raise ValueError(f"cannot probe `{listen}`: it names no fixed port")
    host = _LOOPBACK.get(host, host).strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check(
    target: str, service: str = "", timeout: float = 3.0, tls: ClientTls | None = None
) -> tuple[bool, str]:
    """(healthy, what to print) for one health check of `service` at `target`."""
    with (tls or ClientTls()).channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
            return False, f"unhealthy: {target}: {code}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, f"{status}: {target}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m authz_service.healthcheck",
        description="Exit 0 if the local authz server reports SERVING.",
    )
    parser.add_argument("--target", help="host:port to probe (default: from AUTHZ_LISTEN)")
    parser.add_argument("--service", default="", help="service name ('' = the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        target = args.target or probe_target(settings.listen)
        tls = from_args(args, settings)
        healthy, message = check(target, args.service, args.timeout, tls)
    except (AuthzError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(message, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
